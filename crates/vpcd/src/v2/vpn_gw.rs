//! RunVpnGw, DescribeVpnGw, ModifyVpnGw, DeleteVpnGw.

use std::net::IpAddr;

use serde::Serialize;
use vpcd_store::{Scope, VpnGw, VpnGwFilter};
use vpcd_types::id::{VpcKind, VpnGwKind};
use vpcd_types::{IdRef, VpnGwId, VpnGwRowId};

use super::params::Params;
use super::{format_time, name_filter, page, Reply, VpcOf};
use crate::api::ApiState;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ops::vpn_gw::{self as op, CreateVpnGw, RenameVpnGw, VpnGwTarget};
use crate::ops::{Describe, Name};

/// `vpnGwStatus` of a gateway that is ready (vpcd's always are).
const STATUS_RUNNING: i64 = 6;

pub(super) async fn run(api: &ApiState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let vpc = p.req_parse("vpcId")?;
    let name = p.req_with("name", ErrorCode::InvalidVpnGwName, Name::parse)?;
    let bandwidth = p.opt_int("bandwidth", 0..=i64::MAX)?.unwrap_or(5);
    let bandwidth =
        op::parse_bandwidth(bandwidth).map_err(|why| ApiError::invalid("bandwidth", why))?;
    let charge_type = match p.opt_str("chargeType")? {
        None => "POSTPAID_BY_HOUR".to_owned(),
        Some(v) => op::parse_charge_type(v).map_err(|why| ApiError::invalid("chargeType", why))?,
    };
    let req = CreateVpnGw {
        vpc,
        name,
        bandwidth,
        charge_type,
        charge_period: p.opt_int("period", 1..=120)?,
    };
    let gw = op::create_vpn_gw(api, scope, req).await?;
    Reply::data(Created {
        vpn_gw_id: &gw.un_id,
        vpn_gw_address: gw.address,
        charge_type: &gw.charge_type,
        period: gw.charge_period,
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Created<'a> {
    vpn_gw_id: &'a VpnGwId,
    vpn_gw_address: IpAddr,
    charge_type: &'a str,
    period: Option<i64>,
}

pub(super) async fn describe(api: &ApiState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let req = Describe {
        filter: VpnGwFilter {
            vpc: p.opt_parse::<IdRef<VpcKind>>("vpcId")?,
            id: p.opt_parse::<IdRef<VpnGwKind>>("vpnGwId")?,
            name: name_filter(p, "vpnGwName")?,
        },
        page: page(p, "vpnGwName")?,
    };
    let list = op::describe_vpn_gws(api, scope, req).await?;
    Reply::list(list.total, list.items.iter().map(item))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Item<'a> {
    #[serde(flatten)]
    vpc: VpcOf<'a>,
    vpn_gw_id: VpnGwRowId,
    un_vpn_gw_id: &'a VpnGwId,
    vpn_gw_name: &'a str,
    bandwidth: i64,
    vpn_gw_status: i64,
    vpn_gw_address: IpAddr,
    vpn_conn_num: i64,
    charge_type: &'a str,
    period: Option<i64>,
    create_time: String,
}

fn item(g: &VpnGw) -> Item<'_> {
    Item {
        vpc: VpcOf::new(&g.vpc),
        vpn_gw_id: g.id,
        un_vpn_gw_id: &g.un_id,
        vpn_gw_name: &g.name,
        bandwidth: g.bandwidth,
        vpn_gw_status: STATUS_RUNNING,
        vpn_gw_address: g.address,
        vpn_conn_num: g.conn_num,
        charge_type: &g.charge_type,
        period: g.charge_period,
        create_time: format_time(g.created_at),
    }
}

/// `vpcId` and `vpnGwId`, both required in v2.
pub(super) fn target(p: &Params) -> ApiResult<VpnGwTarget> {
    Ok(VpnGwTarget {
        vpc: Some(p.req_parse("vpcId")?),
        vpn_gw: p.req_parse("vpnGwId")?,
    })
}

pub(super) async fn modify(api: &ApiState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let req = RenameVpnGw {
        target: target(p)?,
        name: Some(p.req_with("vpnGwName", ErrorCode::InvalidVpnGwName, Name::parse)?),
    };
    op::rename_vpn_gw(api, scope, req).await?;
    Ok(Reply::empty())
}

pub(super) async fn delete(api: &ApiState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    op::delete_vpn_gw(api, scope, target(p)?).await?;
    Ok(Reply::empty())
}
