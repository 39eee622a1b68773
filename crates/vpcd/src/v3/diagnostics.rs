//! DescribeVpnConnDiagnostics (a vpcd extension; docs/api3.md): the
//! connection by `VpnConnectionId` (and, if given, the `VpnGatewayId` that
//! must hold it).

use serde::Serialize;
use serde_json::{Map, Value};
use vpcd_types::VpnConnId;

use super::common;
use super::params::Obj;
use super::{answer, Ctx, Handler};
use crate::api::ApiState;
use crate::clock::format_utc;
use crate::error::ApiResult;
use crate::ops::diagnostics::{self as op, Diagnostics};
use crate::ops::vpn_conn::ConnTarget;
use crate::ops::vpn_gw::VpnGwTarget;

pub(super) struct Describe(ConnTarget);

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Answer<'a> {
    vpn_connection_id: &'a VpnConnId,
    data_plane: &'static str,
    ipsec_negotiated: bool,
    note: &'static str,
    net_status: &'static str,
    last_failure: Option<LastFailure<'a>>,
    traffic_sampled_time: Option<String>,
    traffic: Option<Traffic>,
    history: Vec<Event>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct LastFailure<'a> {
    code: &'static str,
    message: &'a str,
    stage: Option<&'static str>,
    peer_offered: Option<&'a str>,
    gateway_allows: Option<&'a str>,
    peer_identity: Option<&'a str>,
    first_seen_time: String,
    last_seen_time: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Traffic {
    bytes_in: u64,
    bytes_out: u64,
    packets_in: u64,
    packets_out: u64,
    established_time: Option<String>,
    last_rekey_time: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Event {
    time: String,
    state: &'static str,
    reason: &'static str,
    message: &'static str,
}

fn render(d: &Diagnostics) -> Answer<'_> {
    Answer {
        vpn_connection_id: &d.vpn_conn_id,
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
            first_seen_time: format_utc(f.first_at),
            last_seen_time: format_utc(f.last_at),
        }),
        traffic_sampled_time: d.traffic_sampled_at.map(format_utc),
        traffic: d.traffic.map(|t| Traffic {
            bytes_in: t.bytes_in,
            bytes_out: t.bytes_out,
            packets_in: t.packets_in,
            packets_out: t.packets_out,
            established_time: t.established_at.map(format_utc),
            last_rekey_time: t.last_rekey_at.map(format_utc),
        }),
        history: d
            .history
            .iter()
            .map(|e| Event {
                time: format_utc(e.at),
                state: e.state,
                reason: e.reason,
                message: e.message,
            })
            .collect(),
    }
}

impl Handler for Describe {
    fn parse(o: &Obj<'_>) -> ApiResult<Self> {
        let vpn_gw =
            common::opt_id(o, "VpnGatewayId")?.map(|vpn_gw| VpnGwTarget { vpc: None, vpn_gw });
        Ok(Describe(ConnTarget {
            vpn_gw,
            conn: common::req_id(o, "VpnConnectionId")?,
        }))
    }

    async fn run(self, api: &ApiState, ctx: &Ctx) -> ApiResult<Map<String, Value>> {
        let d = op::describe_diagnostics(api, &ctx.scope, self.0).await?;
        answer(render(&d))
    }
}
