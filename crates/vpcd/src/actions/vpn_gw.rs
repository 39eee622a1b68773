//! RunVpnGw, DescribeVpnGw, ModifyVpnGw, DeleteVpnGw.

use serde_json::{json, Map, Value};
use vpcd_store::{AddressSource, NewVpnGw, Resource, Scope, VpnGw, VpnGwFilter};
use vpcd_types::id::{VpcKind, VpnGwKind};
use vpcd_types::{IdRef, VpcRowId};

use super::{format_time, name_filter, parse_page, req_id, req_name, vpc, Reply};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;

const BANDWIDTHS: &[i64] = &[5, 10, 20, 50, 100];
/// `vpnGwStatus` of a gateway that is ready.
const STATUS_RUNNING: i64 = 6;

pub(super) async fn run(state: &AppState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let vpc = vpc::load(state, scope, p, "vpcId").await?;
    let name = req_name(p, "name", "InvalidVpnGwName")?;
    let bandwidth = p.opt_int("bandwidth", 0..=i64::MAX)?.unwrap_or(5);
    if !BANDWIDTHS.contains(&bandwidth) {
        return Err(ApiError::invalid(
            "bandwidth",
            "expected one of 5, 10, 20, 50, 100 (Mbps)",
        ));
    }
    // No billing: the charge parameters are checked for shape and echoed.
    let charge_type = match p.opt_str("chargeType")? {
        None => "POSTPAID_BY_HOUR".to_owned(),
        Some(v) if v.len() <= 32 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => {
            v.to_owned()
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "chargeType",
                "expected at most 32 letters, digits or '_'",
            ))
        }
    };
    let charge_period = p.opt_int("period", 1..=120)?;
    let address = match state.placement.choose() {
        Some(node_id) => AddressSource::Node { node_id },
        None => AddressSource::Pool(state.settings.gw_address_pool),
    };
    let gw = state
        .store
        .create_vpn_gw(
            scope,
            NewVpnGw {
                vpc_id: vpc.id,
                name,
                bandwidth,
                charge_type,
                charge_period,
                address,
            },
            &state.settings.limits,
        )
        .await
        .map_err(|e| ApiError::from_store(e, "vpcId"))?;
    Ok(Reply::Data(json!({
        "vpnGwId": gw.un_id.to_string(),
        "vpnGwAddress": gw.address.to_string(),
        "chargeType": gw.charge_type,
        "period": gw.charge_period,
    })))
}

pub(super) fn gw_json(g: &VpnGw) -> Value {
    json!({
        "vpcId": g.vpc.id,
        "unVpcId": g.vpc.un_id.to_string(),
        "vpcName": g.vpc.name,
        "vpcCidrBlock": g.vpc.cidr.to_string(),
        "vpnGwId": g.id,
        "unVpnGwId": g.un_id.to_string(),
        "vpnGwName": g.name,
        "bandwidth": g.bandwidth,
        "vpnGwStatus": STATUS_RUNNING,
        "vpnGwAddress": g.address.to_string(),
        "vpnConnNum": g.conn_num,
        "chargeType": g.charge_type,
        "period": g.charge_period,
        "createTime": format_time(g.created_at),
    })
}

pub(super) async fn describe(state: &AppState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let filter = VpnGwFilter {
        vpc: p.opt_parse::<IdRef<VpcKind>>("vpcId")?,
        id: p.opt_parse::<IdRef<VpnGwKind>>("vpnGwId")?,
        name: name_filter(p, "vpnGwName")?,
    };
    let page = parse_page(p, "vpnGwName")?;
    let (total, rows) = state
        .store
        .list_vpn_gws(scope, &filter, &page)
        .await
        .map_err(|e| ApiError::from_store(e, "vpnGwId"))?;
    Ok(Reply::List {
        total,
        items: rows.iter().map(gw_json).collect(),
    })
}

/// Look up `vpnGwId`; it must belong to `vpc_id` when given (a gateway of
/// another VPC is reported as not found, like the real service).
pub(super) async fn load(
    state: &AppState,
    scope: &Scope,
    p: &Params,
    vpc_id: Option<VpcRowId>,
) -> ApiResult<VpnGw> {
    let id: IdRef<VpnGwKind> = req_id(p, "vpnGwId")?;
    let gw = state
        .store
        .get_vpn_gw(scope, &id)
        .await
        .map_err(|e| ApiError::from_store(e, "vpnGwId"))?
        .filter(|g| vpc_id.is_none_or(|v| g.vpc.id == v))
        .ok_or_else(|| ApiError::not_found(Resource::VpnGw, "vpnGwId", &id))?;
    Ok(gw)
}

pub(super) async fn modify(state: &AppState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let vpc = vpc::load(state, scope, p, "vpcId").await?;
    let gw = load(state, scope, p, Some(vpc.id)).await?;
    let name = req_name(p, "vpnGwName", "InvalidVpnGwName")?;
    state
        .store
        .rename_vpn_gw(scope, gw.id, &name)
        .await
        .map_err(|e| ApiError::from_store(e, "vpnGwName"))?;
    Ok(Reply::TopLevel(Map::new()))
}

pub(super) async fn delete(state: &AppState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let vpc = vpc::load(state, scope, p, "vpcId").await?;
    let gw = load(state, scope, p, Some(vpc.id)).await?;
    state
        .store
        .delete_vpn_gw(scope, gw.id)
        .await
        .map_err(|e| ApiError::from_store(e, "vpnGwId"))?;
    Ok(Reply::TopLevel(Map::new()))
}
