//! CreateVpnGateway, DescribeVpnGateways, ModifyVpnGatewayAttribute,
//! DeleteVpnGateway.

use std::net::IpAddr;

use serde::Serialize;
use serde_json::{Map, Value};
use vpcd_store::{VpnGw, VpnGwFilter};
use vpcd_types::id::{VpcKind, VpnGwKind};
use vpcd_types::{VpcId, VpnGwId};

use super::common::{self, ids_of, unsupported, Filter, IdFilter, Query, Tag};
use super::params::{invalid, Obj};
use super::{answer, empty, Ctx, Handler};
use crate::api::ApiState;
use crate::clock::format_utc;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ops::select::select;
use crate::ops::vpn_gw::{self as op, CreateVpnGw, RenameVpnGw, VpnGwTarget};

const POSTPAID: &str = "POSTPAID_BY_HOUR";
const PREPAID: &str = "PREPAID";
/// The renewal vpcd reports for a prepaid gateway: the documented default
/// (vpcd bills nothing, so it keeps no other choice).
const RENEW_DEFAULT: &str = "NOTIFY_AND_AUTO_RENEW";
const PERIODS: &[i64] = &[1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 24, 36];
/// vpcd's gateways are IPsec gateways in a VPC.
const TYPE: &str = "IPSEC";
const TYPES: &[&str] = &["IPSEC", "SSL", "CCN", "SSL_CCN"];
const IP_STACKS: &[&str] = &["4in4", "6in4", "6in6", "4in6"];

pub(super) struct Create(CreateVpnGw);

impl Handler for Create {
    fn parse(o: &Obj<'_>) -> ApiResult<Self> {
        let vpc = common::req_id(o, "VpcId")?;
        let name = common::req_name(o, "VpnGatewayName", ErrorCode::InvalidVpnGwName)?;
        let bandwidth = o
            .int("InternetMaxBandwidthOut", 0..=i64::MAX)?
            .ok_or_else(|| ApiError::missing(&o.path("InternetMaxBandwidthOut")))?;
        let bandwidth = op::parse_bandwidth(bandwidth)
            .map_err(|why| invalid(&o.path("InternetMaxBandwidthOut"), why))?;
        let charge_type = match o.str("InstanceChargeType")? {
            None => POSTPAID,
            Some(t) if t == POSTPAID || t == PREPAID => t,
            Some(_) => {
                return Err(invalid(
                    &o.path("InstanceChargeType"),
                    format!("expected {POSTPAID} or {PREPAID}"),
                ))
            }
        };
        let prepaid = o.obj("InstanceChargePrepaid")?;
        let charge_period = match (charge_type, prepaid) {
            (PREPAID, Some(p)) => {
                let period = p
                    .int("Period", 1..=36)?
                    .ok_or_else(|| ApiError::missing(&p.path("Period")))?;
                if !PERIODS.contains(&period) {
                    return Err(invalid(
                        &p.path("Period"),
                        "expected one of 1-9, 12, 24, 36 (months)",
                    ));
                }
                match p.str("RenewFlag")? {
                    None | Some(RENEW_DEFAULT) => {}
                    Some("NOTIFY_AND_MANUAL_RENEW") => {
                        return Err(unsupported(
                            &p.path("RenewFlag"),
                            "vpcd bills nothing and renews every prepaid gateway",
                        ))
                    }
                    Some(_) => {
                        return Err(invalid(
                            &p.path("RenewFlag"),
                            "expected NOTIFY_AND_AUTO_RENEW or NOTIFY_AND_MANUAL_RENEW",
                        ))
                    }
                }
                Some(period)
            }
            (PREPAID, None) => return Err(ApiError::missing(&o.path("InstanceChargePrepaid"))),
            (_, Some(_)) => {
                return Err(ApiError::wire(
                    ErrorCode::ParameterConflict,
                    &o.path("InstanceChargePrepaid"),
                    format!("only goes with InstanceChargeType {PREPAID}"),
                ))
            }
            (_, None) => None,
        };
        if let Some(path) = o.given("Zone") {
            return Err(unsupported(&path, "vpcd has no availability zones"));
        }
        match o.str("Type")? {
            None | Some(TYPE) => {}
            Some(t) if TYPES.contains(&t) => {
                return Err(unsupported(
                    &o.path("Type"),
                    "vpcd's VPN gateways are IPSEC gateways in a VPC",
                ))
            }
            Some(_) => {
                return Err(invalid(
                    &o.path("Type"),
                    format!("expected one of: {}", TYPES.join(", ")),
                ))
            }
        }
        common::no_tags(o)?;
        for key in [
            "CdcId",
            "MaxConnection",
            "BgpAsn",
            "SubnetId",
            "AccessSubnet",
        ] {
            if let Some(f) = o.field(key) {
                return Err(unsupported(
                    &f.path,
                    "vpcd's VPN gateways are public IPSEC gateways without BGP, SSL or CDC",
                ));
            }
        }
        for key in ["IsPrivate", "BgpEnable"] {
            if o.bool(key)? == Some(true) {
                return Err(unsupported(
                    &o.path(key),
                    "vpcd's VPN gateways are public IPSEC gateways without BGP",
                ));
            }
        }
        match o.str("IpStack")? {
            None | Some("4in4") => {}
            Some(s) if IP_STACKS.contains(&s) => {
                return Err(unsupported(
                    &o.path("IpStack"),
                    "vpcd's tunnels are IPv4 over IPv4",
                ))
            }
            Some(_) => {
                return Err(invalid(
                    &o.path("IpStack"),
                    format!("expected one of: {}", IP_STACKS.join(", ")),
                ))
            }
        }
        Ok(Create(CreateVpnGw {
            vpc,
            name,
            bandwidth,
            charge_type: charge_type.to_owned(),
            charge_period,
        }))
    }

    async fn run(self, api: &ApiState, ctx: &Ctx) -> ApiResult<Map<String, Value>> {
        let gw = op::create_vpn_gw(api, &ctx.scope, self.0).await?;
        answer(Created {
            vpn_gateway: item(&gw),
        })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Created<'a> {
    vpn_gateway: Item<'a>,
}

/// A `VpnGateway` model.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Item<'a> {
    vpn_gateway_id: &'a VpnGwId,
    vpc_id: &'a VpcId,
    vpn_gateway_name: &'a str,
    #[serde(rename = "Type")]
    kind: &'static str,
    /// vpcd's gateways are ready when created.
    state: &'static str,
    public_ip_address: IpAddr,
    renew_flag: &'static str,
    instance_charge_type: &'a str,
    internet_max_bandwidth_out: i64,
    created_time: String,
    expired_time: &'static str,
    is_address_blocked: bool,
    new_purchase_plan: &'static str,
    restrict_state: &'static str,
    zone: &'static str,
    vpn_gateway_quota_set: [(); 0],
    version: &'static str,
    network_instance_id: &'static str,
    cdc_id: &'static str,
    max_connection: u64,
    bgp_asn: u64,
    tag_set: Vec<Tag>,
    is_private: bool,
}

fn item(g: &VpnGw) -> Item<'_> {
    Item {
        vpn_gateway_id: &g.un_id,
        vpc_id: &g.vpc.un_id,
        vpn_gateway_name: &g.name,
        kind: TYPE,
        state: "AVAILABLE",
        public_ip_address: g.address,
        renew_flag: if g.charge_type == PREPAID {
            RENEW_DEFAULT
        } else {
            ""
        },
        instance_charge_type: &g.charge_type,
        internet_max_bandwidth_out: g.bandwidth,
        created_time: format_utc(g.created_at),
        expired_time: "0000-00-00 00:00:00",
        is_address_blocked: false,
        new_purchase_plan: "",
        restrict_state: "NORMAL",
        zone: "",
        vpn_gateway_quota_set: [],
        version: "2.0",
        network_instance_id: "",
        cdc_id: "",
        max_connection: 0,
        bgp_asn: 0,
        tag_set: Vec::new(),
        is_private: false,
    }
}

const FILTERS: &[&str] = &[
    "vpc-id",
    "vpn-gateway-id",
    "vpn-gateway-name",
    "type",
    "public-ip-address",
    "renew-flag",
    "zone",
    "tag-key",
    "tag:",
];

pub(super) struct Describe(Query<VpnGwKind>);

impl Handler for Describe {
    fn parse(o: &Obj<'_>) -> ApiResult<Self> {
        let id_filters: &[IdFilter] = &[
            ("vpc-id", ids_of::<VpcKind>),
            ("vpn-gateway-id", ids_of::<VpnGwKind>),
        ];
        Query::parse(o, "VpnGatewayIds", FILTERS, id_filters, false).map(Describe)
    }

    async fn run(self, api: &ApiState, ctx: &Ctx) -> ApiResult<Map<String, Value>> {
        let narrow = VpnGwFilter {
            vpc: common::single_id(&self.0.filters, "vpc-id"),
            id: self.0.narrow_id("vpn-gateway-id"),
            name: None,
        };
        let sel = self.0.select(narrow, |g: &VpnGw| &g.un_id, passes);
        let scope = &ctx.scope;
        let list = select(sel, |d| op::describe_vpn_gws(api, scope, d)).await?;
        answer(Described {
            total_count: list.total,
            vpn_gateway_set: list.items.iter().map(item).collect(),
        })
    }
}

/// Whether a gateway passes one filter (on its fields as answers show them).
fn passes(f: &Filter, g: &VpnGw) -> bool {
    let shown = item(g);
    match f.name.as_str() {
        "vpc-id" => f.any_eq(g.vpc.un_id.as_str()),
        "vpn-gateway-id" => f.any_eq(g.un_id.as_str()),
        "vpn-gateway-name" => f.any_eq(&g.name),
        "type" => f.any_eq(shown.kind),
        "public-ip-address" => f.any_eq(&g.address.to_string()),
        "renew-flag" => f.any_eq(shown.renew_flag),
        "zone" => f.any_eq(shown.zone),
        _ => common::tags_match(f, &shown.tag_set),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Described<'a> {
    total_count: u64,
    vpn_gateway_set: Vec<Item<'a>>,
}

pub(super) struct Modify(RenameVpnGw);

impl Handler for Modify {
    fn parse(o: &Obj<'_>) -> ApiResult<Self> {
        let vpn_gw = common::req_id(o, "VpnGatewayId")?;
        let name = common::name(o, "VpnGatewayName", ErrorCode::InvalidVpnGwName)?;
        if let Some(f) = o.field("InstanceChargeType") {
            return Err(unsupported(
                &f.path,
                "vpcd bills nothing; the charge type stays",
            ));
        }
        for key in ["BgpAsn", "MaxConnection"] {
            if let Some(f) = o.field(key) {
                return Err(unsupported(
                    &f.path,
                    "vpcd's VPN gateways are IPSEC gateways without BGP or SSL",
                ));
            }
        }
        Ok(Modify(RenameVpnGw {
            target: VpnGwTarget { vpc: None, vpn_gw },
            name,
        }))
    }

    async fn run(self, api: &ApiState, ctx: &Ctx) -> ApiResult<Map<String, Value>> {
        op::rename_vpn_gw(api, &ctx.scope, self.0).await?;
        empty()
    }
}

pub(super) struct Delete(VpnGwTarget);

impl Handler for Delete {
    fn parse(o: &Obj<'_>) -> ApiResult<Self> {
        Ok(Delete(VpnGwTarget {
            vpc: None,
            vpn_gw: common::req_id(o, "VpnGatewayId")?,
        }))
    }

    async fn run(self, api: &ApiState, ctx: &Ctx) -> ApiResult<Map<String, Value>> {
        op::delete_vpn_gw(api, &ctx.scope, self.0).await?;
        empty()
    }
}
