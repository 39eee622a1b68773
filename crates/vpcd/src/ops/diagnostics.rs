//! `DescribeVpnConnDiagnostics` (a vpcd extension, on both API versions):
//! why a connection's tunnel is down, in plain words, what it carries, and
//! when it went up and down.
//!
//! # Where the answer comes from
//! Any vpcd of a cluster answers from the database: the vpcd driving the
//! connection's gateway node records what its charon reports
//! (`crate::background::diagnostics`): each failure and up/down event as it
//! happens (coalesced, written at most every couple of seconds per node,
//! one transaction for all of that node's tunnels), and a traffic sample of
//! every tunnel whose counters moved, every `--diagnostics-interval-secs`
//! (10 s by default). The answer says when the sample was taken, so a reader
//! knows its age. Reading charon live from the API side was not chosen: the
//! API side never talks to gateway nodes, and the node may be reachable only
//! from the vpcd that drives it (a UNIX socket).
//!
//! A connection on an API-only gateway has no data plane: the answer says
//! so (`dataPlane` `api-only`, `ipsecNegotiated` false) with no failure, no
//! traffic and no history, rather than inventing any.

use serde::Serialize;
use vpcd_store::{ConnDiagnostics, Scope};
use vpcd_types::diag::{EventReason, LastFailure, Traffic, TunnelEvent};
use vpcd_types::{NetStatus, VpnConnId};

use super::vpn_conn::{self, ConnTarget};
use crate::api::ApiState;
use crate::error::{ApiError, ApiResult, Field};

/// Which data plane serves the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum DataPlane {
    #[serde(rename = "strongswan")]
    StrongSwan,
    #[serde(rename = "api-only")]
    ApiOnly,
}

impl DataPlane {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DataPlane::StrongSwan => "strongswan",
            DataPlane::ApiOnly => "api-only",
        }
    }

    /// What the answer means in this mode.
    pub(crate) fn note(self) -> &'static str {
        match self {
            DataPlane::StrongSwan => {
                "Observed on the gateway node's strongSwan charon. Traffic counters are those of \
                 the SAs installed when sampled (they restart at each rekey)."
            }
            DataPlane::ApiOnly => {
                "API only: no IKE/IPsec is negotiated for this connection's VPN gateway (no \
                 gateway node), so there are no failures, traffic counters or up/down events."
            }
        }
    }
}

/// A connection's diagnostics. Times are Unix seconds; each protocol
/// renders them its own way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Diagnostics {
    pub(crate) vpn_conn_id: VpnConnId,
    pub(crate) data_plane: DataPlane,
    pub(crate) net_status: NetStatus,
    pub(crate) last_failure: Option<Failure>,
    /// When the latest traffic sample was taken, with or without SAs.
    pub(crate) traffic_sampled_at: Option<i64>,
    /// `None` when the tunnel had no installed SA at that sample.
    pub(crate) traffic: Option<TrafficView>,
    /// Newest first.
    pub(crate) history: Vec<Event>,
}

impl Diagnostics {
    /// Whether IKE/IPsec is negotiated at all for the connection.
    pub(crate) fn ipsec_negotiated(&self) -> bool {
        self.data_plane == DataPlane::StrongSwan
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Failure {
    /// A fixed code (`psk-mismatch`, `no-common-proposal`, ...).
    pub(crate) code: &'static str,
    /// The explanation, with the details below worked in.
    pub(crate) message: String,
    /// `ike` or `ipsec`, where known.
    pub(crate) stage: Option<&'static str>,
    pub(crate) peer_offered: Option<String>,
    pub(crate) gateway_allows: Option<String>,
    pub(crate) peer_identity: Option<String>,
    pub(crate) first_at: i64,
    pub(crate) last_at: i64,
}

impl From<LastFailure> for Failure {
    fn from(f: LastFailure) -> Self {
        Failure {
            code: f.kind.code(),
            message: f.message(),
            stage: f.detail.stage.map(|s| s.code()),
            peer_offered: f.detail.peer_offered,
            gateway_allows: f.detail.gateway_allows,
            peer_identity: f.detail.peer_identity,
            first_at: f.first_at,
            last_at: f.last_at,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TrafficView {
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) packets_in: u64,
    pub(crate) packets_out: u64,
    pub(crate) established_at: Option<i64>,
    pub(crate) last_rekey_at: Option<i64>,
}

impl From<Traffic> for TrafficView {
    fn from(t: Traffic) -> Self {
        TrafficView {
            bytes_in: t.bytes_in,
            bytes_out: t.bytes_out,
            packets_in: t.packets_in,
            packets_out: t.packets_out,
            established_at: t.established_at,
            last_rekey_at: t.last_rekey_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Event {
    pub(crate) at: i64,
    /// `up` or `down`.
    pub(crate) state: &'static str,
    /// A fixed code (`negotiated`, `peer-closed`, a failure's code, ...).
    pub(crate) reason: &'static str,
    pub(crate) message: &'static str,
}

impl From<TunnelEvent> for Event {
    fn from(e: TunnelEvent) -> Self {
        let reason: EventReason = e.reason;
        Event {
            at: e.at,
            state: if e.up { "up" } else { "down" },
            reason: reason.code(),
            message: reason.message(),
        }
    }
}

/// The request: one connection (its gateway, when a protocol names it,
/// must hold it).
pub(crate) type DescribeDiagnostics = ConnTarget;

pub(crate) async fn describe_diagnostics(
    api: &ApiState,
    scope: &Scope,
    req: DescribeDiagnostics,
) -> ApiResult<Diagnostics> {
    let conn = vpn_conn::load(api, scope, &req).await?;
    let (data_plane, recorded) = match conn.node_id {
        None => (DataPlane::ApiOnly, ConnDiagnostics::default()),
        Some(_) => (
            DataPlane::StrongSwan,
            api.store
                .conn_diagnostics(conn.id)
                .await
                .map_err(|e| ApiError::from_store(e, Field::VpnConnId))?,
        ),
    };
    Ok(Diagnostics {
        vpn_conn_id: conn.un_id,
        data_plane,
        net_status: conn.net_status,
        last_failure: recorded.last_failure.map(Failure::from),
        traffic_sampled_at: recorded.sampled_at,
        traffic: recorded.traffic.map(TrafficView::from),
        history: recorded.events.into_iter().map(Event::from).collect(),
    })
}
