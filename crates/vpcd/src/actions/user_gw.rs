//! AddUserGw, DescribeUserGw, ModifyUserGw, DeleteUserGw.

use std::net::IpAddr;

use serde_json::{json, Map, Value};
use vpcd_store::{NewUserGw, Resource, Scope, UserGw, UserGwFilter};
use vpcd_types::id::UserGwKind;
use vpcd_types::net::is_valid_peer_address;
use vpcd_types::IdRef;

use super::{format_time, name_filter, parse_page, req_id, req_name, Reply};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;

pub(super) async fn add(state: &AppState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let name = req_name(p, "userGwName", "InvalidUserGwName")?;
    let addr_text = p.req_str("userGwAddr")?;
    let address: IpAddr = addr_text
        .parse()
        .ok()
        .filter(|a: &IpAddr| a.is_ipv4())
        .ok_or_else(|| {
            ApiError::invalid_as(
                "InvalidUserGwAddr",
                "userGwAddr",
                "expected an IPv4 address",
            )
        })?;
    if !is_valid_peer_address(address) {
        return Err(ApiError::invalid_as(
            "InvalidUserGwAddr",
            "userGwAddr",
            "must not be multicast, loopback, link-local (169.254/16), 0.0.0.0 or 255.255.255.255",
        ));
    }
    let gw = state
        .store
        .create_user_gw(scope, NewUserGw { name, address }, &state.settings.limits)
        .await
        .map_err(|e| match e {
            vpcd_store::StoreError::AddressInUse => ApiError::from_store(e, "userGwAddr"),
            other => ApiError::from_store(other, "userGwName"),
        })?;
    let mut m = Map::new();
    m.insert("userGwId".into(), json!(gw.un_id.to_string()));
    Ok(Reply::TopLevel(m))
}

pub(super) fn user_gw_json(g: &UserGw) -> Value {
    json!({
        "userGwId": g.id,
        "unUserGwId": g.un_id.to_string(),
        "userGwName": g.name,
        "userGwAddr": g.address.to_string(),
        "vpnConnNum": g.conn_num,
        "createTime": format_time(g.created_at),
    })
}

pub(super) async fn describe(state: &AppState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let filter = UserGwFilter {
        id: p.opt_parse::<IdRef<UserGwKind>>("userGwId")?,
        name: name_filter(p, "userGwName")?,
    };
    let page = parse_page(p, "userGwName")?;
    let (total, rows) = state
        .store
        .list_user_gws(scope, &filter, &page)
        .await
        .map_err(|e| ApiError::from_store(e, "userGwId"))?;
    Ok(Reply::List {
        total,
        items: rows.iter().map(user_gw_json).collect(),
    })
}

pub(super) async fn load(state: &AppState, scope: &Scope, p: &Params) -> ApiResult<UserGw> {
    let id: IdRef<UserGwKind> = req_id(p, "userGwId")?;
    state
        .store
        .get_user_gw(scope, &id)
        .await
        .map_err(|e| ApiError::from_store(e, "userGwId"))?
        .ok_or_else(|| ApiError::not_found(Resource::UserGw, "userGwId", &id))
}

pub(super) async fn modify(state: &AppState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let gw = load(state, scope, p).await?;
    let name = req_name(p, "userGwName", "InvalidUserGwName")?;
    state
        .store
        .rename_user_gw(scope, gw.id, &name)
        .await
        .map_err(|e| ApiError::from_store(e, "userGwName"))?;
    Ok(Reply::TopLevel(Map::new()))
}

pub(super) async fn delete(state: &AppState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let gw = load(state, scope, p).await?;
    state
        .store
        .delete_user_gw(scope, gw.id)
        .await
        .map_err(|e| ApiError::from_store(e, "userGwId"))?;
    Ok(Reply::TopLevel(Map::new()))
}
