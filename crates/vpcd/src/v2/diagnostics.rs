//! DescribeVpnConnDiagnostics (a vpcd extension; docs/actions.md): the
//! connection by `vpnConnId` alone, its diagnostics under `data`.

use serde::Serialize;
use vpcd_store::Scope;
use vpcd_types::VpnConnId;

use super::params::Params;
use super::{format_time, Reply};
use crate::api::ApiState;
use crate::error::ApiResult;
use crate::ops::diagnostics::{self as op, Diagnostics};
use crate::ops::vpn_conn::ConnTarget;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Answer<'a> {
    un_vpn_conn_id: &'a VpnConnId,
    data_plane: &'static str,
    ipsec_negotiated: bool,
    note: &'static str,
    net_status: &'static str,
    last_failure: Option<LastFailure<'a>>,
    traffic_sampled_at: Option<String>,
    traffic: Option<Traffic>,
    history: Vec<Event>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LastFailure<'a> {
    code: &'static str,
    message: &'a str,
    stage: Option<&'static str>,
    peer_offered: Option<&'a str>,
    gateway_allows: Option<&'a str>,
    peer_identity: Option<&'a str>,
    first_seen: String,
    last_seen: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Traffic {
    bytes_in: u64,
    bytes_out: u64,
    packets_in: u64,
    packets_out: u64,
    established_since: Option<String>,
    last_rekey: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    time: String,
    state: &'static str,
    reason: &'static str,
    message: &'static str,
}

fn render(d: &Diagnostics) -> Answer<'_> {
    Answer {
        un_vpn_conn_id: &d.vpn_conn_id,
        data_plane: d.data_plane.as_str(),
        ipsec_negotiated: d.ipsec_negotiated(),
        note: d.data_plane.note(),
        net_status: d.net_status.as_str(),
        last_failure: d.last_failure.as_ref().map(|f| LastFailure {
            code: f.code,
            message: &f.message,
            stage: f.stage,
            peer_offered: f.peer_offered.as_deref(),
            gateway_allows: f.gateway_allows.as_deref(),
            peer_identity: f.peer_identity.as_deref(),
            first_seen: format_time(f.first_at),
            last_seen: format_time(f.last_at),
        }),
        traffic_sampled_at: d.traffic_sampled_at.map(format_time),
        traffic: d.traffic.map(|t| Traffic {
            bytes_in: t.bytes_in,
            bytes_out: t.bytes_out,
            packets_in: t.packets_in,
            packets_out: t.packets_out,
            established_since: t.established_at.map(format_time),
            last_rekey: t.last_rekey_at.map(format_time),
        }),
        history: d
            .history
            .iter()
            .map(|e| Event {
                time: format_time(e.at),
                state: e.state,
                reason: e.reason,
                message: e.message,
            })
            .collect(),
    }
}

pub(super) async fn describe(api: &ApiState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let req = ConnTarget {
        vpn_gw: None,
        conn: p.req_parse("vpnConnId")?,
    };
    let d = op::describe_diagnostics(api, scope, req).await?;
    Reply::data(render(&d))
}
