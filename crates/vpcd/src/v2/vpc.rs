//! CreateVpc, DescribeVpcEx, DeleteVpc.

use serde::Serialize;
use vpcd_store::{Scope, Vpc, VpcFilter};
use vpcd_types::id::VpcKind;
use vpcd_types::{Cidr, IdRef, VpcId, VpcRowId};

use super::params::Params;
use super::{format_time, name_filter, page, Reply};
use crate::api::ApiState;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ops::vpc::{self as op, CreateVpc, DeleteVpc};
use crate::ops::{Describe, Name};

pub(super) async fn create(api: &ApiState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let name = p.req_with("vpcName", ErrorCode::InvalidVpcName, Name::parse)?;
    let cidr = op::parse_cidr(p.req_str("cidrBlock")?)
        .map_err(|why| ApiError::wire(ErrorCode::InvalidVpcCidr, "cidrBlock", why))?;
    let mut subnets = Vec::new();
    for i in p.array_sets("subnetSet")? {
        let cidr_key = format!("subnetSet.{i}.cidrBlock");
        let name_key = format!("subnetSet.{i}.subnetName");
        subnets.push(
            p.req_parse::<Cidr>(&cidr_key)
                .map_err(|e| e.with_code(ErrorCode::InvalidSubnetCidr))?,
        );
        p.req_with(&name_key, ErrorCode::InvalidSubnetName, Name::parse)?;
    }
    let req = CreateVpc {
        name,
        cidr,
        subnets,
    };
    let vpc = op::create_vpc(api, scope, req).await?;
    Reply::top_level(Created {
        vpc_id: vpc.id,
        uniq_vpc_id: &vpc.un_id,
        vpc_name: &vpc.name,
        cidr_block: &vpc.cidr,
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Created<'a> {
    vpc_id: VpcRowId,
    uniq_vpc_id: &'a VpcId,
    vpc_name: &'a str,
    cidr_block: &'a Cidr,
}

pub(super) async fn describe(api: &ApiState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let req = Describe {
        filter: VpcFilter {
            id: p.opt_parse::<IdRef<VpcKind>>("vpcId")?,
            name: name_filter(p, "vpcName")?,
        },
        page: page(p, "vpcName")?,
    };
    let list = op::describe_vpcs(api, scope, req).await?;
    Reply::list(list.total, list.items.iter().map(item))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Item<'a> {
    vpc_id: VpcRowId,
    un_vpc_id: &'a VpcId,
    vpc_name: &'a str,
    cidr_block: &'a Cidr,
    vpn_gw_num: i64,
    create_time: String,
}

fn item(v: &Vpc) -> Item<'_> {
    Item {
        vpc_id: v.id,
        un_vpc_id: &v.un_id,
        vpc_name: &v.name,
        cidr_block: &v.cidr,
        vpn_gw_num: v.vpn_gw_num,
        create_time: format_time(v.created_at),
    }
}

pub(super) async fn delete(api: &ApiState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let req = DeleteVpc {
        vpc: p.req_parse("vpcId")?,
    };
    op::delete_vpc(api, scope, req).await?;
    Ok(Reply::empty())
}
