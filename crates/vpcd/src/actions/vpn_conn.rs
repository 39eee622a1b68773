//! AddVpnConnEx, DescribeVpnConn, ModifyVpnConnEx, DeleteVpnConn,
//! ResetVpnConnSA.

use rand::Rng;
use serde_json::{json, Map, Value};
use vpcd_store::{ConnChange, ConnFilter, NewConn, Resource, Scope, StoreError, VpnConn};
use vpcd_types::id::{VpcKind, VpnConnKind, VpnGwKind};
use vpcd_types::{ConnSettings, IdRef, Identity, SpdSource, TaskId};

use super::conn_settings::{self, Context};
use super::{format_time, name_filter, opt_name, parse_page, req_id, user_gw, vpc, vpn_gw, Reply};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;

/// The name given to a connection created without `vpnConnName` (the seed's
/// own example omits it).
fn default_name() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let suffix: String = (0..8)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("vpnconn-{suffix}")
}

/// The peer ranges as the caller wrote them.
fn user_gw_subnets(s: &ConnSettings) -> Vec<String> {
    s.spd
        .iter()
        .flat_map(|r| r.remote.iter().map(|c| c.as_given().to_owned()))
        .collect()
}

pub(super) async fn add(state: &AppState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let vpc = vpc::load(state, scope, p, "vpcId").await?;
    let gw = vpn_gw::load(state, scope, p, Some(vpc.id)).await?;
    let user_gw = user_gw::load(state, scope, p).await?;
    let name = opt_name(p, "vpnConnName", "InvalidVpnConnName")?.unwrap_or_else(default_name);
    let settings = conn_settings::parse(
        p,
        &Context {
            vpc_cidr: &vpc.cidr,
            local_addr: gw.address,
            remote_addr: user_gw.address,
            limits: &state.settings.limits,
        },
        None,
    )?;
    let (conn, task) = state
        .store
        .create_conn(
            scope,
            NewConn {
                vpc_id: vpc.id,
                vpn_gw_id: gw.id,
                user_gw_id: user_gw.id,
                name,
                settings,
            },
            &state.settings.limits,
        )
        .await
        .map_err(|e| match e {
            StoreError::NameInUse(_) => ApiError::invalid_as(
                "InvalidVpnConnName.InUse",
                "vpnConnName",
                "a VPN connection with this name already exists in the VPC",
            ),
            StoreError::NotFound(Resource::VpnGw) => ApiError::from_store(e, "vpnGwId"),
            StoreError::NotFound(Resource::UserGw) => ApiError::from_store(e, "userGwId"),
            StoreError::NotFound(_) => ApiError::from_store(e, "vpcId"),
            other => ApiError::from_store(other, "vpnGwId"),
        })?;
    state.engine.wake();
    Ok(Reply::Data(json!({
        "vpnGwId": gw.un_id.to_string(),
        "userGwId": user_gw.un_id.to_string(),
        // Creation is asynchronous: the connection id is known from
        // DescribeVpcTaskResult, as on the real service.
        "vpnConnId": 0,
        "taskId": task.id,
        "vpnConnStatus": conn.status.code(),
        "preSharedKey": conn.settings.pre_shared_key.expose(),
        "userGwSubnetList": user_gw_subnets(&conn.settings),
    })))
}

fn identity_fields(prefix: &str, id: &Identity, m: &mut Map<String, Value>) {
    m.insert(format!("{prefix}Identity"), json!(id.kind().as_str()));
    let (addr, fqdn) = match id {
        Identity::Address(a) => (a.to_string(), String::new()),
        Identity::Fqdn(f) => (String::new(), f.to_string()),
    };
    m.insert(format!("{prefix}Address"), json!(addr));
    m.insert(format!("{prefix}FqdnName"), json!(fqdn));
}

pub(super) fn conn_json(c: &VpnConn) -> Value {
    let s = &c.settings;
    let mut ike = Map::new();
    ike.insert(
        "propoEncryAlgorithm".into(),
        json!(s.ike.encryption.as_str()),
    );
    ike.insert(
        "propoAuthenAlgorithm".into(),
        json!(s.ike.authentication.as_str()),
    );
    ike.insert("exchangeMode".into(), json!(s.ike.exchange_mode.as_str()));
    identity_fields("local", &s.ike.local_identity, &mut ike);
    identity_fields("remote", &s.ike.remote_identity, &mut ike);
    ike.insert("dhGroupName".into(), json!(s.ike.dh_group.as_str()));
    ike.insert(
        "ikeSaLifetimeSeconds".into(),
        json!(s.ike.sa_lifetime_seconds.to_string()),
    );
    let ipsec = json!({
        "encryptAlgorithm": s.ipsec.encryption.as_str(),
        "integrityAlgorith": s.ipsec.integrity.as_str(),
        "ipsecSaLifetimeSeconds": s.ipsec.sa_lifetime_seconds.to_string(),
        "ipsecSaLifetimeTraffic": s.ipsec.sa_lifetime_traffic_kb.to_string(),
        "pfsDhGroup": s.ipsec.pfs.as_str(),
        "encapMode": "tunnel",
        "securityProto": "ESP",
    });
    let spd_acl: Map<String, Value> = s
        .spd
        .iter()
        .map(|r| {
            (
                r.local.as_given().to_owned(),
                json!(r.remote.iter().map(|c| c.as_given()).collect::<Vec<_>>()),
            )
        })
        .collect();
    let source: Vec<&str> = s.spd.iter().map(|r| r.local.as_given()).collect();
    json!({
        "vpcId": c.vpc.id,
        "unVpcId": c.vpc.un_id.to_string(),
        "vpcName": c.vpc.name,
        "vpcCidrBlock": c.vpc.cidr.to_string(),
        "vpnGwId": c.vpn_gw.id,
        "unVpnGwId": c.vpn_gw.un_id.to_string(),
        "vpnGwName": c.vpn_gw.name,
        "vpnGwAddress": c.vpn_gw.address.to_string(),
        "vpnConnId": c.id,
        "unVpnConnId": c.un_id.to_string(),
        "vpnConnName": c.name,
        "userGwId": c.user_gw.id,
        "unUserGwId": c.user_gw.un_id.to_string(),
        "userGwName": c.user_gw.name,
        "userGwAddress": c.user_gw.address.to_string(),
        "vpcConnStatus": c.status.code(),
        "netStatus": c.net_status.as_str(),
        "preSharedKey": s.pre_shared_key.expose(),
        "sourceCidr": source,
        "destinationCidr": user_gw_subnets(s),
        "spdAcl": spd_acl,
        "spdSource": match s.spd_source {
            SpdSource::UserGwCidrBlock => "userGwCidrBlock",
            SpdSource::SpdAcl => "spdAcl",
        },
        "vpnProto": "ip-sec",
        "createTime": format_time(c.created_at),
        "IKEArr": ike,
        "IPSECArr": ipsec,
    })
}

pub(super) async fn describe(state: &AppState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let filter = ConnFilter {
        vpc: p.opt_parse::<IdRef<VpcKind>>("vpcId")?,
        vpn_gw: p.opt_parse::<IdRef<VpnGwKind>>("vpnGwId")?,
        id: p.opt_parse::<IdRef<VpnConnKind>>("vpnConnId")?,
        name: name_filter(p, "vpnConnName")?,
    };
    let page = parse_page(p, "vpnConnName")?;
    let (total, rows) = state
        .store
        .list_conns(scope, &filter, &page)
        .await
        .map_err(|e| ApiError::from_store(e, "vpnConnId"))?;
    Ok(Reply::List {
        total,
        items: rows.iter().map(conn_json).collect(),
    })
}

/// `vpcId`, `vpnGwId`, `vpnConnId` must all exist and belong together.
async fn load(state: &AppState, scope: &Scope, p: &Params) -> ApiResult<VpnConn> {
    let vpc = vpc::load(state, scope, p, "vpcId").await?;
    let gw = vpn_gw::load(state, scope, p, Some(vpc.id)).await?;
    let id: IdRef<VpnConnKind> = req_id(p, "vpnConnId")?;
    state
        .store
        .get_conn(scope, &id)
        .await
        .map_err(|e| ApiError::from_store(e, "vpnConnId"))?
        .filter(|c| c.vpn_gw.id == gw.id)
        .ok_or_else(|| ApiError::not_found(Resource::VpnConn, "vpnConnId", &id))
}

fn task_reply(task_id: TaskId) -> Reply {
    Reply::Data(json!({ "taskId": task_id }))
}

fn conn_store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NameInUse(_) => ApiError::invalid_as(
            "InvalidVpnConnName.InUse",
            "vpnConnName",
            "a VPN connection with this name already exists in the VPC",
        ),
        other => ApiError::from_store(other, "vpnConnId"),
    }
}

pub(super) async fn modify(state: &AppState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let conn = load(state, scope, p).await?;
    let name = opt_name(p, "vpnConnName", "InvalidVpnConnName")?;
    let settings = conn_settings::parse(
        p,
        &Context {
            vpc_cidr: &conn.vpc.cidr,
            local_addr: conn.vpn_gw.address,
            remote_addr: conn.user_gw.address,
            limits: &state.settings.limits,
        },
        Some(&conn.settings),
    )?;
    let task = state
        .store
        .begin_modify(
            scope,
            conn.id,
            ConnChange {
                name,
                settings: Some(settings),
            },
        )
        .await
        .map_err(conn_store_error)?;
    state.engine.wake();
    Ok(task_reply(task.id))
}

pub(super) async fn delete(state: &AppState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let conn = load(state, scope, p).await?;
    let task = state
        .store
        .begin_delete(scope, conn.id)
        .await
        .map_err(conn_store_error)?;
    state.engine.wake();
    Ok(task_reply(task.id))
}

pub(super) async fn reset(state: &AppState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let conn = load(state, scope, p).await?;
    let task = state
        .store
        .begin_reset(scope, conn.id)
        .await
        .map_err(conn_store_error)?;
    state.engine.wake();
    Ok(task_reply(task.id))
}
