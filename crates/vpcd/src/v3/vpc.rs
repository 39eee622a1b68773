//! CreateVpc, DescribeVpcs, ModifyVpcAttribute, DeleteVpc.

use serde::Serialize;
use serde_json::{Map, Value};
use vpcd_store::{Vpc, VpcFilter};
use vpcd_types::id::VpcKind;
use vpcd_types::{Cidr, VpcId};

use super::common::{self, ids_of, unsupported, Filter, Query, Tag};
use super::params::{invalid, parse_bool, Obj};
use super::{answer, empty, Ctx, Handler};
use crate::api::ApiState;
use crate::clock::format_utc;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ops::select::select;
use crate::ops::vpc::{self as op, CreateVpc, DeleteVpc, RenameVpc};
use crate::ops::Name;

/// Fields of CreateVpc and ModifyVpcAttribute that configure what vpcd
/// does not have (IPv6, multicast, DHCP options, CCN route publishing):
/// only their "off" values are taken.
fn refuse_vpc_options(o: &Obj<'_>, create: bool) -> ApiResult<()> {
    if create {
        if let Some(path) = o.given("StackType") {
            return Err(unsupported(&path, "vpcd's VPCs are IPv4 only"));
        }
        for key in ["Ipv6CidrBlock", "AddressType"] {
            if let Some(path) = o.given(key) {
                return Err(unsupported(&path, "vpcd's VPCs are IPv4 only"));
            }
        }
    }
    if let Some(f) = o.field("EnableMulticast") {
        if f.bool_text()? {
            return Err(unsupported(&f.path, "vpcd's VPCs have no multicast"));
        }
    }
    if let Some(items) = o.list("DnsServers", 4)? {
        if !items.is_empty() {
            return Err(unsupported(
                &o.path("DnsServers"),
                "vpcd's VPCs have no DHCP options",
            ));
        }
    }
    if let Some(path) = o.given("DomainName") {
        return Err(unsupported(&path, "vpcd's VPCs have no DHCP options"));
    }
    let mut flags = vec!["EnableRouteVpcPublish", "EnableRouteVpcPublishIpv6"];
    if !create {
        flags.push("EnableCdcPublish");
    }
    for key in flags {
        if o.bool(key)? == Some(true) {
            return Err(unsupported(
                &o.path(key),
                "vpcd's VPCs are not attached to a cloud connect network",
            ));
        }
    }
    Ok(())
}

pub(super) struct Create(CreateVpc);

impl Handler for Create {
    fn parse(o: &Obj<'_>) -> ApiResult<Self> {
        let name = common::req_name(o, "VpcName", ErrorCode::InvalidVpcName)?;
        let cidr = o.req_str("CidrBlock").and_then(|v| {
            op::parse_cidr(v)
                .map_err(|why| ApiError::wire(ErrorCode::InvalidVpcCidr, &o.path("CidrBlock"), why))
        })?;
        refuse_vpc_options(o, true)?;
        common::no_tags(o)?;
        Ok(Create(CreateVpc {
            name,
            cidr,
            subnets: Vec::new(),
        }))
    }

    async fn run(self, api: &ApiState, ctx: &Ctx) -> ApiResult<Map<String, Value>> {
        let vpc = op::create_vpc(api, &ctx.scope, self.0).await?;
        answer(Created { vpc: item(&vpc) })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Created<'a> {
    vpc: Item<'a>,
}

/// A `Vpc` model. vpcd's VPCs are IPv4, without DHCP options, multicast or
/// secondary CIDRs: those fields say so.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Item<'a> {
    vpc_name: &'a str,
    vpc_id: &'a VpcId,
    cidr_block: &'a Cidr,
    is_default: bool,
    enable_multicast: bool,
    created_time: String,
    dns_server_set: [&'a str; 0],
    domain_name: &'a str,
    dhcp_options_id: &'a str,
    enable_dhcp: bool,
    ipv6_cidr_block: &'a str,
    tag_set: Vec<Tag>,
    assistant_cidr_set: [(); 0],
    enable_route_vpc_publish: bool,
    ipv6_cidr_block_set: [(); 0],
    enable_route_vpc_publish_ipv6: bool,
    stack_type: Option<&'a str>,
}

fn item(v: &Vpc) -> Item<'_> {
    Item {
        vpc_name: &v.name,
        vpc_id: &v.un_id,
        cidr_block: &v.cidr,
        is_default: false,
        enable_multicast: false,
        created_time: format_utc(v.created_at),
        dns_server_set: [],
        domain_name: "",
        dhcp_options_id: "",
        enable_dhcp: false,
        ipv6_cidr_block: "",
        tag_set: Vec::new(),
        assistant_cidr_set: [],
        enable_route_vpc_publish: false,
        ipv6_cidr_block_set: [],
        enable_route_vpc_publish_ipv6: false,
        stack_type: None,
    }
}

/// The filters DescribeVpcs documents.
const FILTERS: &[&str] = &[
    "vpc-name",
    "is-default",
    "vpc-id",
    "cidr-block",
    "tag-key",
    "tag:",
    "ipv6-cidr-block",
    "isp-type",
    "address-type",
];

pub(super) struct Describe(Query<VpcKind>);

impl Handler for Describe {
    fn parse(o: &Obj<'_>) -> ApiResult<Self> {
        let q = Query::parse(o, "VpcIds", FILTERS, &[("vpc-id", ids_of::<VpcKind>)], true)?;
        for f in q.filters.iter().filter(|f| f.name == "is-default") {
            if f.values.iter().any(|v| parse_bool(v).is_none()) {
                return Err(invalid(&f.path, "is-default takes TRUE or FALSE"));
            }
        }
        Ok(Describe(q))
    }

    async fn run(self, api: &ApiState, ctx: &Ctx) -> ApiResult<Map<String, Value>> {
        let narrow = VpcFilter {
            id: self.0.narrow_id("vpc-id"),
            name: None,
        };
        let sel = self.0.select(narrow, |v: &Vpc| &v.un_id, passes);
        let scope = &ctx.scope;
        let list = select(sel, |d| op::describe_vpcs(api, scope, d)).await?;
        answer(Described {
            total_count: list.total,
            vpc_set: list.items.iter().map(item).collect(),
        })
    }
}

/// Whether a VPC passes one filter.
fn passes(f: &Filter, v: &Vpc) -> bool {
    match f.name.as_str() {
        "vpc-name" => f.any_in(&v.name),
        "vpc-id" => f.any_eq(v.un_id.as_str()),
        "cidr-block" => f.any_eq(v.cidr.as_given()) || f.any_eq(&v.cidr.net().to_string()),
        // No VPC of vpcd is a default VPC.
        "is-default" => f.values.iter().any(|x| parse_bool(x) == Some(false)),
        // IPv6 and ISP filters: vpcd's VPCs have no IPv6 ranges.
        "ipv6-cidr-block" | "isp-type" | "address-type" => false,
        _ => common::tags_match(f, &[]),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Described<'a> {
    total_count: u64,
    vpc_set: Vec<Item<'a>>,
}

pub(super) struct Modify(RenameVpc);

impl Handler for Modify {
    fn parse(o: &Obj<'_>) -> ApiResult<Self> {
        let vpc = common::req_id(o, "VpcId")?;
        let name: Option<Name> = common::name(o, "VpcName", ErrorCode::InvalidVpcName)?;
        refuse_vpc_options(o, false)?;
        Ok(Modify(RenameVpc { vpc, name }))
    }

    async fn run(self, api: &ApiState, ctx: &Ctx) -> ApiResult<Map<String, Value>> {
        op::rename_vpc(api, &ctx.scope, self.0).await?;
        empty()
    }
}

pub(super) struct Delete(DeleteVpc);

impl Handler for Delete {
    fn parse(o: &Obj<'_>) -> ApiResult<Self> {
        Ok(Delete(DeleteVpc {
            vpc: common::req_id(o, "VpcId")?,
        }))
    }

    async fn run(self, api: &ApiState, ctx: &Ctx) -> ApiResult<Map<String, Value>> {
        op::delete_vpc(api, &ctx.scope, self.0).await?;
        empty()
    }
}
