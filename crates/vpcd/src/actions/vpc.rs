//! CreateVpc, DescribeVpcEx, DeleteVpc.

use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};
use serde_json::{json, Map, Value};
use vpcd_store::{NewVpc, Resource, Scope, Vpc, VpcFilter};
use vpcd_types::id::VpcKind;
use vpcd_types::{Cidr, IdRef};

use super::{format_time, name_filter, parse_page, req_id, req_name, Reply};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;

/// VPC CIDRs must lie in a private range with a prefix of /16 to /28.
fn check_vpc_cidr(c: &Cidr) -> Result<(), &'static str> {
    let IpNet::V4(net) = c.net() else {
        return Err("must be IPv4");
    };
    let private: [Ipv4Net; 3] = [
        Ipv4Net::new(Ipv4Addr::new(10, 0, 0, 0), 8).expect("valid"),
        Ipv4Net::new(Ipv4Addr::new(172, 16, 0, 0), 12).expect("valid"),
        Ipv4Net::new(Ipv4Addr::new(192, 168, 0, 0), 16).expect("valid"),
    ];
    if !private.iter().any(|p| p.contains(&net)) {
        return Err("must lie in 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16");
    }
    if !(16..=28).contains(&net.prefix_len()) {
        return Err("prefix length must be between /16 and /28");
    }
    Ok(())
}

pub(super) async fn create(state: &AppState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let name = req_name(p, "vpcName", "InvalidVpcName")?;
    let cidr_text = p.req_str("cidrBlock")?;
    let cidr: Cidr = cidr_text
        .parse()
        .map_err(|e| ApiError::invalid_as("InvalidVpcCidr", "cidrBlock", e))?;
    check_vpc_cidr(&cidr).map_err(|e| ApiError::invalid_as("InvalidVpcCidr", "cidrBlock", e))?;
    // Subnets are validated (the real API takes them here) but vpcd keeps no
    // subnet resource.
    for (i, _) in p.array_sets("subnetSet")?.iter().enumerate() {
        let key = format!("subnetSet.{i}.cidrBlock");
        let sub: Cidr = p
            .req_parse(&key)
            .map_err(|e| ApiError::invalid_as("InvalidSubnetCidr", &key, e.message))?;
        if !cidr.contains(&sub) {
            return Err(ApiError::invalid_as(
                "InvalidSubnetCidr",
                &key,
                "must lie inside the VPC's cidrBlock",
            ));
        }
        req_name(p, &format!("subnetSet.{i}.subnetName"), "InvalidSubnetName")?;
    }
    let vpc = state
        .store
        .create_vpc(scope, NewVpc { name, cidr }, &state.settings.limits)
        .await
        .map_err(|e| ApiError::from_store(e, "vpcName"))?;
    let mut m = Map::new();
    m.insert("vpcId".into(), json!(vpc.id));
    m.insert("uniqVpcId".into(), json!(vpc.un_id.to_string()));
    m.insert("vpcName".into(), json!(vpc.name));
    m.insert("cidrBlock".into(), json!(vpc.cidr.to_string()));
    Ok(Reply::TopLevel(m))
}

pub(super) fn vpc_json(v: &Vpc) -> Value {
    json!({
        "vpcId": v.id,
        "unVpcId": v.un_id.to_string(),
        "vpcName": v.name,
        "cidrBlock": v.cidr.to_string(),
        "vpnGwNum": v.vpn_gw_num,
        "createTime": format_time(v.created_at),
    })
}

pub(super) async fn describe(state: &AppState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let filter = VpcFilter {
        id: p.opt_parse::<IdRef<VpcKind>>("vpcId")?,
        name: name_filter(p, "vpcName")?,
    };
    let page = parse_page(p, "vpcName")?;
    let (total, rows) = state
        .store
        .list_vpcs(scope, &filter, &page)
        .await
        .map_err(|e| ApiError::from_store(e, "vpcId"))?;
    Ok(Reply::List {
        total,
        items: rows.iter().map(vpc_json).collect(),
    })
}

/// Look a VPC up by the `param` id parameter.
pub(super) async fn load(
    state: &AppState,
    scope: &Scope,
    p: &Params,
    param: &str,
) -> ApiResult<Vpc> {
    let id: IdRef<VpcKind> = req_id(p, param)?;
    state
        .store
        .get_vpc(scope, &id)
        .await
        .map_err(|e| ApiError::from_store(e, param))?
        .ok_or_else(|| ApiError::not_found(Resource::Vpc, param, &id))
}

pub(super) async fn delete(state: &AppState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let vpc = load(state, scope, p, "vpcId").await?;
    state
        .store
        .delete_vpc(scope, vpc.id)
        .await
        .map_err(|e| ApiError::from_store(e, "vpcId"))?;
    Ok(Reply::TopLevel(Map::new()))
}
