//! Peer (customer) gateways: create, describe, rename, delete.

use std::net::IpAddr;

use vpcd_store::{NewUserGw, Scope, StoreError, UserGw, UserGwFilter};
use vpcd_types::id::UserGwKind;
use vpcd_types::net::is_valid_peer_address;
use vpcd_types::IdRef;

use super::{parse_ipv4, Describe, List, Name};
use crate::api::ApiState;
use crate::error::{ApiError, ApiResult, ErrorCode, Field};

/// A peer gateway's public address: IPv4, and one a peer can have.
pub(crate) fn parse_address(text: &str) -> Result<IpAddr, &'static str> {
    let address = parse_ipv4(text)?;
    if !is_valid_peer_address(address) {
        return Err(
            "must not be multicast, loopback, link-local (169.254/16), 0.0.0.0 or 255.255.255.255",
        );
    }
    Ok(address)
}

pub(crate) struct CreateUserGw {
    pub(crate) name: Name,
    pub(crate) address: IpAddr,
}

pub(crate) async fn create_user_gw(
    api: &ApiState,
    scope: &Scope,
    req: CreateUserGw,
) -> ApiResult<UserGw> {
    let new = NewUserGw {
        name: req.name.into_string(),
        address: req.address,
    };
    api.store
        .create_user_gw(scope, new, &api.settings.limits)
        .await
        .map_err(|e| match e {
            StoreError::AddressInUse => ApiError::from_store(e, Field::UserGwAddr),
            other => ApiError::from_store(other, Field::UserGwName),
        })
}

pub(crate) async fn describe_user_gws(
    api: &ApiState,
    scope: &Scope,
    req: Describe<UserGwFilter>,
) -> ApiResult<List<UserGw>> {
    let page = api.store.list_user_gws(scope, &req.filter, &req.page).await;
    List::from_store(page, Field::UserGwId)
}

pub(crate) struct RenameUserGw {
    pub(crate) user_gw: IdRef<UserGwKind>,
    pub(crate) name: Name,
}

pub(crate) async fn rename_user_gw(
    api: &ApiState,
    scope: &Scope,
    req: RenameUserGw,
) -> ApiResult<()> {
    let gw = load(api, scope, &req.user_gw).await?;
    api.store
        .rename_user_gw(scope, gw.id, req.name.as_str())
        .await
        .map_err(|e| ApiError::from_store(e, Field::UserGwName))
}

pub(crate) struct DeleteUserGw {
    pub(crate) user_gw: IdRef<UserGwKind>,
}

pub(crate) async fn delete_user_gw(
    api: &ApiState,
    scope: &Scope,
    req: DeleteUserGw,
) -> ApiResult<()> {
    let gw = load(api, scope, &req.user_gw).await?;
    api.store
        .delete_user_gw(scope, gw.id)
        .await
        .map_err(|e| ApiError::from_store(e, Field::UserGwId))
}

pub(crate) async fn load(
    api: &ApiState,
    scope: &Scope,
    id: &IdRef<UserGwKind>,
) -> ApiResult<UserGw> {
    api.store
        .get_user_gw(scope, id)
        .await
        .map_err(|e| ApiError::from_store(e, Field::UserGwId))?
        .ok_or_else(|| ApiError::not_found(ErrorCode::UserGwNotFound, Field::UserGwId, id))
}
