//! AddUserGw, DescribeUserGw, ModifyUserGw, DeleteUserGw.

use std::net::IpAddr;

use serde::Serialize;
use vpcd_store::{Scope, UserGw, UserGwFilter};
use vpcd_types::id::UserGwKind;
use vpcd_types::{IdRef, UserGwId, UserGwRowId};

use super::params::Params;
use super::{format_time, name_filter, page, Reply};
use crate::api::ApiState;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ops::user_gw::{self as op, CreateUserGw, DeleteUserGw, RenameUserGw};
use crate::ops::{Describe, Name};

pub(super) async fn add(api: &ApiState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let name = p.req_with("userGwName", ErrorCode::InvalidUserGwName, Name::parse)?;
    let address = op::parse_address(p.req_str("userGwAddr")?)
        .map_err(|why| ApiError::wire(ErrorCode::InvalidUserGwAddr, "userGwAddr", why))?;
    let gw = op::create_user_gw(api, scope, CreateUserGw { name, address }).await?;
    Reply::top_level(Created {
        user_gw_id: &gw.un_id,
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Created<'a> {
    user_gw_id: &'a UserGwId,
}

pub(super) async fn describe(api: &ApiState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let req = Describe {
        filter: UserGwFilter {
            id: p.opt_parse::<IdRef<UserGwKind>>("userGwId")?,
            name: name_filter(p, "userGwName")?,
        },
        page: page(p, "userGwName")?,
    };
    let list = op::describe_user_gws(api, scope, req).await?;
    Reply::list(list.total, list.items.iter().map(item))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Item<'a> {
    user_gw_id: UserGwRowId,
    un_user_gw_id: &'a UserGwId,
    user_gw_name: &'a str,
    user_gw_addr: IpAddr,
    vpn_conn_num: i64,
    create_time: String,
}

fn item(g: &UserGw) -> Item<'_> {
    Item {
        user_gw_id: g.id,
        un_user_gw_id: &g.un_id,
        user_gw_name: &g.name,
        user_gw_addr: g.address,
        vpn_conn_num: g.conn_num,
        create_time: format_time(g.created_at),
    }
}

pub(super) async fn modify(api: &ApiState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let req = RenameUserGw {
        user_gw: p.req_parse("userGwId")?,
        name: p.req_with("userGwName", ErrorCode::InvalidUserGwName, Name::parse)?,
    };
    op::rename_user_gw(api, scope, req).await?;
    Ok(Reply::empty())
}

pub(super) async fn delete(api: &ApiState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let req = DeleteUserGw {
        user_gw: p.req_parse("userGwId")?,
    };
    op::delete_user_gw(api, scope, req).await?;
    Ok(Reply::empty())
}
