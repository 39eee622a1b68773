//! CreateVpnConnection, DescribeVpnConnections,
//! ModifyVpnConnectionAttribute, DeleteVpnConnection, ResetVpnConnection.
//!
//! Every change is asynchronous, as in v2: it starts a task, whose
//! DescribeVpcTaskResult `TaskId` is the RequestId of the call.

use serde::Serialize;
use serde_json::{Map, Value};
use vpcd_store::{ConnFilter, VpnConn};
use vpcd_types::id::{UserGwKind, VpcKind, VpnConnKind, VpnGwKind};
use vpcd_types::{ConnStatus, IdRef, NetStatus, UserGwId, VpcId, VpnConnId, VpnGwId};

use super::common::{self, ids_of, unsupported, Filter, IdFilter, Query, Tag};
use super::params::Obj;
use super::tunnel::{self, IkeSpec, IpsecSpec, SpdItem, TunnelRequest};
use super::{answer, empty, task, Ctx, Handler};
use crate::api::ApiState;
use crate::clock::format_utc;
use crate::error::{ApiResult, ErrorCode};
use crate::ops::select::select;
use crate::ops::vpn_conn::{self as op, ConnTarget, CreateConn, ModifyConn};
use crate::ops::vpn_gw::VpnGwTarget;
use crate::ops::Name;

/// The 3.0 `State` of a connection, from its task state machine: the
/// documented PENDING / AVAILABLE / DELETING, UPDATING while a modification
/// runs, and `<state>_ERROR` after a failed task (as VpnGateway's states
/// spell failures).
fn state(s: ConnStatus) -> &'static str {
    match s {
        ConnStatus::Creating => "PENDING",
        ConnStatus::CreateFailed => "PENDING_ERROR",
        ConnStatus::Modifying => "UPDATING",
        ConnStatus::ModifyFailed => "UPDATING_ERROR",
        ConnStatus::Deleting => "DELETING",
        ConnStatus::DeleteFailed => "DELETING_ERROR",
        ConnStatus::Running => "AVAILABLE",
    }
}

/// `NetStatus`: whether an IPsec SA is up now (live tunnel health).
fn net_status(s: NetStatus) -> &'static str {
    match s {
        NetStatus::Available => "AVAILABLE",
        NetStatus::Unavailable => "UNAVAILABLE",
    }
}

pub(super) struct Create {
    vpn_gw: VpnGwTarget,
    user_gw: IdRef<UserGwKind>,
    name: Name,
    tunnel: TunnelRequest,
    tags: Vec<vpcd_types::Tag>,
}

impl Handler for Create {
    fn parse(o: &Obj<'_>) -> ApiResult<Self> {
        let vpn_gw = VpnGwTarget {
            vpc: common::opt_id(o, "VpcId")?,
            vpn_gw: common::req_id(o, "VpnGatewayId")?,
        };
        let user_gw = common::req_id(o, "CustomerGatewayId")?;
        let name = common::req_name(o, "VpnConnectionName", ErrorCode::InvalidVpnConnName)?;
        let tunnel = tunnel::parse(o, true)?;
        let tags = common::tags(o)?;
        Ok(Create {
            vpn_gw,
            user_gw,
            name,
            tunnel,
            tags,
        })
    }

    async fn run(self, api: &ApiState, ctx: &Ctx) -> ApiResult<Map<String, Value>> {
        let req = CreateConn {
            vpn_gw: self.vpn_gw,
            user_gw: self.user_gw,
            name: Some(self.name),
            settings: self.tunnel.into_change()?,
            defaults: &tunnel::DEFAULTS,
            tags: self.tags,
        };
        let op::ConnTask { conn, task } = op::create_conn(api, &ctx.scope, req).await?;
        task::record(api, ctx, &task).await?;
        answer(Created {
            vpn_connection: item(&conn),
        })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Created<'a> {
    vpn_connection: Item<'a>,
}

/// A `VpnConnection` model.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Item<'a> {
    vpn_connection_id: &'a VpnConnId,
    vpn_connection_name: &'a str,
    vpc_id: &'a VpcId,
    vpn_gateway_id: &'a VpnGwId,
    customer_gateway_id: &'a UserGwId,
    pre_share_key: &'a str,
    vpn_proto: &'static str,
    encrypt_proto: &'static str,
    route_type: &'static str,
    created_time: String,
    state: &'static str,
    net_status: &'static str,
    security_policy_database_set: Vec<SpdItem<'a>>,
    #[serde(rename = "IKEOptionsSpecification")]
    ike_options_specification: IkeSpec,
    #[serde(rename = "IPSECOptionsSpecification")]
    ipsec_options_specification: IpsecSpec,
    enable_health_check: bool,
    health_check_local_ip: String,
    health_check_remote_ip: String,
    /// Only with a health check (3.0: "not returned when no health check
    /// is configured").
    #[serde(skip_serializing_if = "Option::is_none")]
    health_check_status: Option<&'static str>,
    dpd_enable: i64,
    dpd_timeout: String,
    dpd_action: &'static str,
    tag_set: Vec<Tag>,
    negotiation_type: &'static str,
    bgp_config: Option<()>,
    health_check_config: Option<()>,
}

fn item(c: &VpnConn) -> Item<'_> {
    let t = tunnel::render(&c.settings);
    let o = tunnel::options(&c.settings);
    Item {
        vpn_connection_id: &c.un_id,
        vpn_connection_name: &c.name,
        vpc_id: &c.vpc.un_id,
        vpn_gateway_id: &c.vpn_gw.un_id,
        customer_gateway_id: &c.user_gw.un_id,
        pre_share_key: c.settings.pre_shared_key.expose(),
        vpn_proto: "IPSEC",
        encrypt_proto: "IKE",
        route_type: o.route_type,
        created_time: format_utc(c.created_at),
        state: state(c.status),
        net_status: net_status(c.net_status),
        security_policy_database_set: t.spd,
        ike_options_specification: t.ike,
        ipsec_options_specification: t.ipsec,
        enable_health_check: o.enable_health_check,
        health_check_local_ip: o.health_check_local_ip,
        health_check_remote_ip: o.health_check_remote_ip,
        // The health check reports the tunnel's live state: AVAILABLE while
        // an IPsec SA is installed (vpcd sends no NQA probes of its own).
        health_check_status: o.enable_health_check.then(|| net_status(c.net_status)),
        dpd_enable: o.dpd_enable,
        dpd_timeout: o.dpd_timeout,
        dpd_action: o.dpd_action,
        tag_set: common::tag_set(&c.tags),
        negotiation_type: o.negotiation_type,
        bgp_config: None,
        health_check_config: None,
    }
}

const FILTERS: &[&str] = &[
    "vpc-id",
    "vpn-gateway-id",
    "customer-gateway-id",
    "vpn-connection-name",
    "vpn-connection-id",
    "tag-key",
    "tag:",
];

pub(super) struct Describe(Query<VpnConnKind>);

impl Handler for Describe {
    fn parse(o: &Obj<'_>) -> ApiResult<Self> {
        let id_filters: &[IdFilter] = &[
            ("vpc-id", ids_of::<VpcKind>),
            ("vpn-gateway-id", ids_of::<VpnGwKind>),
            ("customer-gateway-id", ids_of::<UserGwKind>),
            ("vpn-connection-id", ids_of::<VpnConnKind>),
        ];
        Query::parse(o, "VpnConnectionIds", FILTERS, id_filters, false).map(Describe)
    }

    async fn run(self, api: &ApiState, ctx: &Ctx) -> ApiResult<Map<String, Value>> {
        // The store narrows by any id a filter names alone; the predicate
        // decides the rest.
        let narrow = ConnFilter {
            vpc: common::single_id(&self.0.filters, "vpc-id"),
            vpn_gw: common::single_id(&self.0.filters, "vpn-gateway-id"),
            id: self.0.narrow_id("vpn-connection-id"),
            name: None,
        };
        let sel = self.0.select(narrow, |c: &VpnConn| &c.un_id, passes);
        let scope = &ctx.scope;
        let list = select(sel, |d| op::describe_conns(api, scope, d)).await?;
        answer(Described {
            total_count: list.total,
            vpn_connection_set: list.items.iter().map(item).collect(),
        })
    }
}

/// Whether a connection passes one filter.
fn passes(f: &Filter, c: &VpnConn) -> bool {
    match f.name.as_str() {
        "vpc-id" => f.any_eq(c.vpc.un_id.as_str()),
        "vpn-gateway-id" => f.any_eq(c.vpn_gw.un_id.as_str()),
        "customer-gateway-id" => f.any_eq(c.user_gw.un_id.as_str()),
        "vpn-connection-name" => f.any_eq(&c.name),
        "vpn-connection-id" => f.any_eq(c.un_id.as_str()),
        _ => common::tags_match(f, &common::tag_set(&c.tags)),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Described<'a> {
    total_count: u64,
    vpn_connection_set: Vec<Item<'a>>,
}

pub(super) struct Modify {
    conn: IdRef<VpnConnKind>,
    name: Option<Name>,
    tunnel: TunnelRequest,
}

impl Handler for Modify {
    fn parse(o: &Obj<'_>) -> ApiResult<Self> {
        let conn = common::req_id(o, "VpnConnectionId")?;
        let name = common::name(o, "VpnConnectionName", ErrorCode::InvalidVpnConnName)?;
        if let Some(f) = o.field("CustomerGatewayId") {
            return Err(unsupported(
                &f.path,
                "a connection keeps its peer gateway; create another connection instead",
            ));
        }
        let tunnel = tunnel::parse(o, false)?;
        Ok(Modify { conn, name, tunnel })
    }

    async fn run(self, api: &ApiState, ctx: &Ctx) -> ApiResult<Map<String, Value>> {
        let req = ModifyConn {
            target: ConnTarget {
                vpn_gw: None,
                conn: self.conn,
            },
            name: self.name,
            settings: self.tunnel.into_change()?,
        };
        let task = op::modify_conn(api, &ctx.scope, req).await?;
        task::record(api, ctx, &task).await?;
        empty()
    }
}

/// `VpnGatewayId` and `VpnConnectionId`, both required.
fn target(o: &Obj<'_>) -> ApiResult<ConnTarget> {
    Ok(ConnTarget {
        vpn_gw: Some(VpnGwTarget {
            vpc: None,
            vpn_gw: common::req_id(o, "VpnGatewayId")?,
        }),
        conn: common::req_id(o, "VpnConnectionId")?,
    })
}

pub(super) struct Delete(ConnTarget);

impl Handler for Delete {
    fn parse(o: &Obj<'_>) -> ApiResult<Self> {
        target(o).map(Delete)
    }

    async fn run(self, api: &ApiState, ctx: &Ctx) -> ApiResult<Map<String, Value>> {
        let task = op::delete_conn(api, &ctx.scope, self.0).await?;
        task::record(api, ctx, &task).await?;
        empty()
    }
}

pub(super) struct Reset(ConnTarget);

impl Handler for Reset {
    fn parse(o: &Obj<'_>) -> ApiResult<Self> {
        target(o).map(Reset)
    }

    async fn run(self, api: &ApiState, ctx: &Ctx) -> ApiResult<Map<String, Value>> {
        let task = op::reset_conn(api, &ctx.scope, self.0).await?;
        task::record(api, ctx, &task).await?;
        empty()
    }
}
