//! CreateCustomerGateway, DescribeCustomerGateways,
//! ModifyCustomerGatewayAttribute, DeleteCustomerGateway: v2's peer
//! ("user") gateways.

use std::net::IpAddr;

use serde::Serialize;
use serde_json::{Map, Value};
use vpcd_store::{UserGw, UserGwFilter};
use vpcd_types::id::UserGwKind;
use vpcd_types::UserGwId;

use super::common::{self, ids_of, unsupported, Filter, IdFilter, Query, Tag};
use super::params::Obj;
use super::{answer, empty, Ctx, Handler};
use crate::api::ApiState;
use crate::clock::format_utc;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ops::select::select;
use crate::ops::user_gw::{self as op, CreateUserGw, DeleteUserGw, RenameUserGw};

/// vpcd's peer gateways have no BGP.
fn refuse_bgp(o: &Obj<'_>) -> ApiResult<()> {
    match o.given("BgpAsn") {
        Some(path) => Err(unsupported(&path, "vpcd does not run BGP over tunnels")),
        None => Ok(()),
    }
}

pub(super) struct Create(CreateUserGw);

impl Handler for Create {
    fn parse(o: &Obj<'_>) -> ApiResult<Self> {
        let name = common::req_name(o, "CustomerGatewayName", ErrorCode::InvalidUserGwName)?;
        let address = op::parse_address(o.req_str("IpAddress")?).map_err(|why| {
            ApiError::wire(ErrorCode::InvalidUserGwAddr, &o.path("IpAddress"), why)
        })?;
        common::no_tags(o)?;
        refuse_bgp(o)?;
        Ok(Create(CreateUserGw { name, address }))
    }

    async fn run(self, api: &ApiState, ctx: &Ctx) -> ApiResult<Map<String, Value>> {
        let gw = op::create_user_gw(api, &ctx.scope, self.0).await?;
        answer(Created {
            customer_gateway: item(&gw),
        })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Created<'a> {
    customer_gateway: Item<'a>,
}

/// A `CustomerGateway` model.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Item<'a> {
    customer_gateway_id: &'a UserGwId,
    customer_gateway_name: &'a str,
    ip_address: IpAddr,
    created_time: String,
    bgp_asn: u64,
    vpn_conn_num: i64,
    tag_set: Vec<Tag>,
}

fn item(g: &UserGw) -> Item<'_> {
    Item {
        customer_gateway_id: &g.un_id,
        customer_gateway_name: &g.name,
        ip_address: g.address,
        created_time: format_utc(g.created_at),
        bgp_asn: 0,
        vpn_conn_num: g.conn_num,
        tag_set: Vec::new(),
    }
}

const FILTERS: &[&str] = &[
    "customer-gateway-id",
    "customer-gateway-name",
    "ip-address",
    "ip-version",
    "tag-key",
    "tag:",
];

pub(super) struct Describe(Query<UserGwKind>);

impl Handler for Describe {
    fn parse(o: &Obj<'_>) -> ApiResult<Self> {
        let id_filters: &[IdFilter] = &[("customer-gateway-id", ids_of::<UserGwKind>)];
        Query::parse(o, "CustomerGatewayIds", FILTERS, id_filters, false).map(Describe)
    }

    async fn run(self, api: &ApiState, ctx: &Ctx) -> ApiResult<Map<String, Value>> {
        let narrow = UserGwFilter {
            id: self.0.narrow_id("customer-gateway-id"),
            name: None,
        };
        let sel = self.0.select(narrow, |g: &UserGw| &g.un_id, passes);
        let scope = &ctx.scope;
        let list = select(sel, |d| op::describe_user_gws(api, scope, d)).await?;
        answer(Described {
            customer_gateway_set: list.items.iter().map(item).collect(),
            total_count: list.total,
        })
    }
}

/// Whether a customer gateway passes one filter.
fn passes(f: &Filter, g: &UserGw) -> bool {
    match f.name.as_str() {
        "customer-gateway-id" => f.any_eq(g.un_id.as_str()),
        "customer-gateway-name" => f.any_eq(&g.name),
        "ip-address" => f.any_eq(&g.address.to_string()),
        "ip-version" => f.any_eq(if g.address.is_ipv4() { "IPv4" } else { "IPv6" }),
        _ => common::tags_match(f, &[]),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Described<'a> {
    customer_gateway_set: Vec<Item<'a>>,
    total_count: u64,
}

pub(super) struct Modify(RenameUserGw);

impl Handler for Modify {
    fn parse(o: &Obj<'_>) -> ApiResult<Self> {
        let user_gw = common::req_id(o, "CustomerGatewayId")?;
        let name = common::req_name(o, "CustomerGatewayName", ErrorCode::InvalidUserGwName)?;
        refuse_bgp(o)?;
        Ok(Modify(RenameUserGw { user_gw, name }))
    }

    async fn run(self, api: &ApiState, ctx: &Ctx) -> ApiResult<Map<String, Value>> {
        op::rename_user_gw(api, &ctx.scope, self.0).await?;
        empty()
    }
}

pub(super) struct Delete(DeleteUserGw);

impl Handler for Delete {
    fn parse(o: &Obj<'_>) -> ApiResult<Self> {
        Ok(Delete(DeleteUserGw {
            user_gw: common::req_id(o, "CustomerGatewayId")?,
        }))
    }

    async fn run(self, api: &ApiState, ctx: &Ctx) -> ApiResult<Map<String, Value>> {
        op::delete_user_gw(api, &ctx.scope, self.0).await?;
        empty()
    }
}
