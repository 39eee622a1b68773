//! VPN gateways: create (placed on a gateway node, or API only), describe,
//! rename, delete.

use vpcd_store::{AddressSource, NewVpnGw, Scope, VpnGw, VpnGwFilter};
use vpcd_types::id::{VpcKind, VpnGwKind};
use vpcd_types::{IdRef, VpcRowId};

use super::{vpc, Describe, List, Name};
use crate::api::ApiState;
use crate::error::{ApiError, ApiResult, ErrorCode, Field};

/// The bandwidths (Mbps) a VPN gateway may have.
const BANDWIDTHS: &[i64] = &[5, 10, 20, 50, 100];

pub(crate) fn parse_bandwidth(mbps: i64) -> Result<i64, &'static str> {
    if BANDWIDTHS.contains(&mbps) {
        Ok(mbps)
    } else {
        Err("expected one of 5, 10, 20, 50, 100 (Mbps)")
    }
}

/// A charge type. vpcd has no billing: it is checked for shape and echoed.
pub(crate) fn parse_charge_type(value: &str) -> Result<String, &'static str> {
    if value.len() <= 32
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        Ok(value.to_owned())
    } else {
        Err("expected at most 32 letters, digits or '_'")
    }
}

pub(crate) struct CreateVpnGw {
    pub(crate) vpc: IdRef<VpcKind>,
    pub(crate) name: Name,
    pub(crate) bandwidth: i64,
    pub(crate) charge_type: String,
    pub(crate) charge_period: Option<i64>,
}

pub(crate) async fn create_vpn_gw(
    api: &ApiState,
    scope: &Scope,
    req: CreateVpnGw,
) -> ApiResult<VpnGw> {
    let vpc = vpc::load(api, scope, &req.vpc).await?;
    let address = match api.placement.choose() {
        Some(node_id) => AddressSource::Node { node_id },
        None => AddressSource::Pool(api.settings.gw_address_pool),
    };
    let new = NewVpnGw {
        vpc_id: vpc.id,
        name: req.name.into_string(),
        bandwidth: req.bandwidth,
        charge_type: req.charge_type,
        charge_period: req.charge_period,
        address,
    };
    api.store
        .create_vpn_gw(scope, new, &api.settings.limits)
        .await
        .map_err(|e| ApiError::from_store(e, Field::VpcId))
}

pub(crate) async fn describe_vpn_gws(
    api: &ApiState,
    scope: &Scope,
    req: Describe<VpnGwFilter>,
) -> ApiResult<List<VpnGw>> {
    let page = api.store.list_vpn_gws(scope, &req.filter, &req.page).await;
    List::from_store(page, Field::VpnGwId)
}

/// A VPN gateway, and (when given) the VPC it must belong to.
pub(crate) struct VpnGwTarget {
    pub(crate) vpc: Option<IdRef<VpcKind>>,
    pub(crate) vpn_gw: IdRef<VpnGwKind>,
}

/// A change to a gateway's attributes: its name (`None` keeps it; the
/// gateway must exist either way).
pub(crate) struct RenameVpnGw {
    pub(crate) target: VpnGwTarget,
    pub(crate) name: Option<Name>,
}

pub(crate) async fn rename_vpn_gw(
    api: &ApiState,
    scope: &Scope,
    req: RenameVpnGw,
) -> ApiResult<()> {
    let gw = load_target(api, scope, &req.target).await?;
    let Some(name) = req.name else {
        return Ok(());
    };
    api.store
        .rename_vpn_gw(scope, gw.id, name.as_str())
        .await
        .map_err(|e| ApiError::from_store(e, Field::VpnGwName))
}

pub(crate) async fn delete_vpn_gw(
    api: &ApiState,
    scope: &Scope,
    req: VpnGwTarget,
) -> ApiResult<()> {
    let gw = load_target(api, scope, &req).await?;
    api.store
        .delete_vpn_gw(scope, gw.id)
        .await
        .map_err(|e| ApiError::from_store(e, Field::VpnGwId))
}

/// The gateway, checked to be in the VPC when one is named.
pub(crate) async fn load_target(
    api: &ApiState,
    scope: &Scope,
    target: &VpnGwTarget,
) -> ApiResult<VpnGw> {
    let vpc_id = match &target.vpc {
        Some(id) => Some(vpc::load(api, scope, id).await?.id),
        None => None,
    };
    load(api, scope, &target.vpn_gw, vpc_id).await
}

/// Look up a gateway; it must belong to `vpc_id` when given (a gateway of
/// another VPC is reported as not found, like the real service).
pub(crate) async fn load(
    api: &ApiState,
    scope: &Scope,
    id: &IdRef<VpnGwKind>,
    vpc_id: Option<VpcRowId>,
) -> ApiResult<VpnGw> {
    api.store
        .get_vpn_gw(scope, id)
        .await
        .map_err(|e| ApiError::from_store(e, Field::VpnGwId))?
        .filter(|g| vpc_id.is_none_or(|v| g.vpc.id == v))
        .ok_or_else(|| ApiError::not_found(ErrorCode::VpnGwNotFound, Field::VpnGwId, id))
}
