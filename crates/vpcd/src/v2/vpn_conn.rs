//! AddVpnConnEx, DescribeVpnConn, ModifyVpnConnEx, DeleteVpnConn,
//! ResetVpnConnSA.

use std::net::IpAddr;

use serde::Serialize;
use serde_json::{Map, Value};
use vpcd_store::{ConnFilter, Scope, Task, VpnConn};
use vpcd_types::id::{VpcKind, VpnConnKind, VpnGwKind};
use vpcd_types::vpn::limits as lim;
use vpcd_types::{
    AuthAlgorithm, Cidr, ConnSettings, DpdAction, DpdSettings, ExchangeMode, IdRef, Identity,
    IkeEncryption, IkeVersion, IpsecEncryption, NegotiationType, PfsGroup, SpdSource, TaskId,
    UserGwId, UserGwRowId, VpnConnId, VpnConnRowId, VpnGwId, VpnGwRowId,
};

use super::conn_settings::settings_change;
use super::params::Params;
use super::{format_time, name_filter, page, vpn_gw, Reply, VpcOf};
use crate::api::ApiState;
use crate::error::{ApiResult, ErrorCode};
use crate::ops::conn_settings::Defaults;
use crate::ops::vpn_conn::{self as op, ConnTarget, CreateConn, ModifyConn};
use crate::ops::{Describe, Name};

/// The seed's defaults for the settings AddVpnConnEx omits.
pub(crate) static DEFAULTS: Defaults = Defaults {
    ike_encryption: IkeEncryption::TripleDesCbc,
    ike_authentication: AuthAlgorithm::Md5,
    exchange_mode: ExchangeMode::Main,
    dh_group: lim::DH_GROUP_DEFAULT,
    ike_sa_lifetime_seconds: lim::IKE_SA_LIFETIME_DEFAULT,
    ipsec_encryption: IpsecEncryption::TripleDesCbc,
    ipsec_integrity: AuthAlgorithm::Md5,
    ipsec_sa_lifetime_seconds: lim::IPSEC_SA_LIFETIME_DEFAULT,
    ipsec_sa_lifetime_traffic_kb: lim::IPSEC_SA_LIFETIME_TRAFFIC_DEFAULT,
    pfs: PfsGroup::Null,
    // v2 has no fields for these: its tunnels do what every tunnel did
    // before API 3.0 (IKEv1, DPD on at 30 s with restart, initiated at once).
    ike_version: IkeVersion::V1,
    dpd: DpdSettings {
        enabled: true,
        timeout_seconds: lim::DPD_TIMEOUT_DEFAULT,
        action: DpdAction::Restart,
    },
    negotiation: NegotiationType::Active,
};

fn conn_name(p: &Params) -> ApiResult<Option<Name>> {
    p.opt_with("vpnConnName", ErrorCode::InvalidVpnConnName, Name::parse)
}

pub(super) async fn add(api: &ApiState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let req = CreateConn {
        vpn_gw: vpn_gw::target(p)?,
        user_gw: p.req_parse("userGwId")?,
        name: conn_name(p)?,
        settings: settings_change(p)?,
        defaults: &DEFAULTS,
        tags: Vec::new(),
    };
    let op::ConnTask { conn, task } = op::create_conn(api, scope, req).await?;
    Reply::data(Created {
        vpn_gw_id: &conn.vpn_gw.un_id,
        user_gw_id: &conn.user_gw.un_id,
        // Creation is asynchronous: the connection id is known from
        // DescribeVpcTaskResult, as on the real service.
        vpn_conn_id: 0,
        task_id: task.id,
        vpn_conn_status: conn.status.code(),
        pre_shared_key: conn.settings.pre_shared_key.expose(),
        user_gw_subnet_list: peer_ranges(&conn.settings),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Created<'a> {
    vpn_gw_id: &'a VpnGwId,
    user_gw_id: &'a UserGwId,
    vpn_conn_id: i64,
    task_id: TaskId,
    vpn_conn_status: i64,
    pre_shared_key: &'a str,
    user_gw_subnet_list: Vec<&'a str>,
}

/// The peer ranges as the caller wrote them.
fn peer_ranges(s: &ConnSettings) -> Vec<&str> {
    s.spd
        .iter()
        .flat_map(|r| r.remote.iter().map(Cidr::as_given))
        .collect()
}

pub(super) async fn describe(api: &ApiState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let req = Describe {
        filter: ConnFilter {
            vpc: p.opt_parse::<IdRef<VpcKind>>("vpcId")?,
            vpn_gw: p.opt_parse::<IdRef<VpnGwKind>>("vpnGwId")?,
            id: p.opt_parse::<IdRef<VpnConnKind>>("vpnConnId")?,
            name: name_filter(p, "vpnConnName")?,
        },
        page: page(p, "vpnConnName")?,
    };
    let list = op::describe_conns(api, scope, req).await?;
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
    vpn_gw_address: IpAddr,
    vpn_conn_id: VpnConnRowId,
    un_vpn_conn_id: &'a VpnConnId,
    vpn_conn_name: &'a str,
    user_gw_id: UserGwRowId,
    un_user_gw_id: &'a UserGwId,
    user_gw_name: &'a str,
    user_gw_address: IpAddr,
    vpc_conn_status: i64,
    net_status: &'static str,
    pre_shared_key: &'a str,
    source_cidr: Vec<&'a str>,
    destination_cidr: Vec<&'a str>,
    spd_acl: Map<String, Value>,
    spd_source: &'static str,
    vpn_proto: &'static str,
    create_time: String,
    #[serde(rename = "IKEArr")]
    ike_arr: IkeArr,
    #[serde(rename = "IPSECArr")]
    ipsec_arr: IpsecArr,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IkeArr {
    propo_encry_algorithm: &'static str,
    propo_authen_algorithm: &'static str,
    exchange_mode: &'static str,
    local_identity: &'static str,
    local_address: String,
    local_fqdn_name: String,
    remote_identity: &'static str,
    remote_address: String,
    remote_fqdn_name: String,
    dh_group_name: &'static str,
    ike_sa_lifetime_seconds: String,
    /// Only for a tunnel API 3.0 made IKEv2: v2 documents no such field,
    /// and every tunnel v2 can make is IKEv1 (see docs/actions.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    ike_version: Option<&'static str>,
}

/// Lifetimes are strings in v2 answers.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IpsecArr {
    encrypt_algorithm: &'static str,
    integrity_algorith: &'static str,
    ipsec_sa_lifetime_seconds: String,
    ipsec_sa_lifetime_traffic: String,
    pfs_dh_group: &'static str,
    encap_mode: &'static str,
    security_proto: &'static str,
}

/// An identity's type, address and FQDN; the one not used is "".
fn identity_fields(id: &Identity) -> (&'static str, String, String) {
    match id {
        Identity::Address(a) => (id.kind().as_str(), a.to_string(), String::new()),
        Identity::Fqdn(f) => (id.kind().as_str(), String::new(), f.to_string()),
    }
}

fn item(c: &VpnConn) -> Item<'_> {
    let s = &c.settings;
    let (local_identity, local_address, local_fqdn_name) = identity_fields(&s.ike.local_identity);
    let (remote_identity, remote_address, remote_fqdn_name) =
        identity_fields(&s.ike.remote_identity);
    Item {
        vpc: VpcOf::new(&c.vpc),
        vpn_gw_id: c.vpn_gw.id,
        un_vpn_gw_id: &c.vpn_gw.un_id,
        vpn_gw_name: &c.vpn_gw.name,
        vpn_gw_address: c.vpn_gw.address,
        vpn_conn_id: c.id,
        un_vpn_conn_id: &c.un_id,
        vpn_conn_name: &c.name,
        user_gw_id: c.user_gw.id,
        un_user_gw_id: &c.user_gw.un_id,
        user_gw_name: &c.user_gw.name,
        user_gw_address: c.user_gw.address,
        vpc_conn_status: c.status.code(),
        net_status: c.net_status.as_str(),
        pre_shared_key: s.pre_shared_key.expose(),
        source_cidr: s.spd.iter().map(|r| r.local.as_given()).collect(),
        destination_cidr: peer_ranges(s),
        spd_acl: s
            .spd
            .iter()
            .map(|r| {
                let remote: Vec<Value> =
                    r.remote.iter().map(|c| Value::from(c.as_given())).collect();
                (r.local.as_given().to_owned(), Value::Array(remote))
            })
            .collect(),
        spd_source: match s.spd_source {
            SpdSource::UserGwCidrBlock => "userGwCidrBlock",
            SpdSource::SpdAcl => "spdAcl",
        },
        vpn_proto: "ip-sec",
        create_time: format_time(c.created_at),
        ike_arr: IkeArr {
            propo_encry_algorithm: s.ike.encryption.as_str(),
            propo_authen_algorithm: s.ike.authentication.as_str(),
            exchange_mode: s.ike.exchange_mode.as_str(),
            local_identity,
            local_address,
            local_fqdn_name,
            remote_identity,
            remote_address,
            remote_fqdn_name,
            dh_group_name: s.ike.dh_group.as_str(),
            ike_sa_lifetime_seconds: s.ike.sa_lifetime_seconds.to_string(),
            ike_version: (s.ike.version != IkeVersion::V1).then(|| s.ike.version.as_str()),
        },
        ipsec_arr: IpsecArr {
            encrypt_algorithm: s.ipsec.encryption.as_str(),
            integrity_algorith: s.ipsec.integrity.as_str(),
            ipsec_sa_lifetime_seconds: s.ipsec.sa_lifetime_seconds.to_string(),
            ipsec_sa_lifetime_traffic: s.ipsec.sa_lifetime_traffic_kb.to_string(),
            pfs_dh_group: s.ipsec.pfs.as_str(),
            encap_mode: "tunnel",
            security_proto: "ESP",
        },
    }
}

/// `vpcId`, `vpnGwId` and `vpnConnId`, all required in v2.
fn target(p: &Params) -> ApiResult<ConnTarget> {
    Ok(ConnTarget {
        vpn_gw: Some(vpn_gw::target(p)?),
        conn: p.req_parse("vpnConnId")?,
    })
}

fn task_reply(task: &Task) -> ApiResult<Reply> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct TaskOnly {
        task_id: TaskId,
    }
    Reply::data(TaskOnly { task_id: task.id })
}

pub(super) async fn modify(api: &ApiState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let req = ModifyConn {
        target: target(p)?,
        name: conn_name(p)?,
        settings: settings_change(p)?,
    };
    task_reply(&op::modify_conn(api, scope, req).await?)
}

pub(super) async fn delete(api: &ApiState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    task_reply(&op::delete_conn(api, scope, target(p)?).await?)
}

pub(super) async fn reset(api: &ApiState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    task_reply(&op::reset_conn(api, scope, target(p)?).await?)
}
