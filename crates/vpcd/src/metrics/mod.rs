//! `/metrics` in the Prometheus (OpenMetrics) text format, on a listener of
//! its own (`--metrics ADDR`, off by default), never on the API ports.
//! Every metric is described in `docs/metrics.md`.
//!
//! Two kinds of values:
//! - counters kept as requests are answered (`requests`): requests by
//!   protocol, action and code, and their latency;
//! - values read at scrape time: the task queue and connections by state
//!   and health from the store (so every vpcd of a cluster reports the same
//!   cluster-wide numbers, whichever one is scraped), the connection pools,
//!   the gateway nodes this process drives (`background::node_health`),
//!   cluster membership and gateway-node leases, and storage health.
//!
//! Label values are bounded and never carry a secret, a resource id or
//! client text: actions and codes come from the tables, states from enums,
//! gateway nodes by their operator-given names.
//!
//! # Layout
//! - `requests`: the request counters the HTTP layer feeds.
//! - this file: the scrape and the listener.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use vpcd_store::{Store, TaskCounts};
use vpcd_types::{ConnStatus, NetStatus};

use crate::background::cluster::is_alive;
use crate::background::Monitor;
use crate::clock::Clock;
use crate::storage_health::{Readiness, StorageHealth};

mod requests;

pub(crate) use requests::{Protocol, RequestMetrics, SUCCESS};

/// What a scrape reads.
pub(crate) struct Scraper {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Clock,
    pub(crate) storage: StorageHealth,
    pub(crate) requests: RequestMetrics,
    pub(crate) monitor: Monitor,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TunnelLabels {
    state: &'static str,
    health: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabel {
    node: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeChangeLabels {
    node: String,
    change: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DrivenByLabel {
    driven_by: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: &'static str,
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabel {
    pool: &'static str,
}

/// A connection state's label (`vpcConnStatus`, by name).
fn conn_state(s: ConnStatus) -> &'static str {
    match s {
        ConnStatus::Creating => "creating",
        ConnStatus::CreateFailed => "create_failed",
        ConnStatus::Modifying => "modifying",
        ConnStatus::ModifyFailed => "modify_failed",
        ConnStatus::Deleting => "deleting",
        ConnStatus::DeleteFailed => "delete_failed",
        ConnStatus::Running => "running",
    }
}

const CONN_STATES: [ConnStatus; 7] = [
    ConnStatus::Creating,
    ConnStatus::CreateFailed,
    ConnStatus::Modifying,
    ConnStatus::ModifyFailed,
    ConnStatus::Deleting,
    ConnStatus::DeleteFailed,
    ConnStatus::Running,
];

/// A gateway node's name as a label value: the operator chose it, but it
/// is kept to characters no exposition format needs to escape.
fn node_label(name: &str) -> String {
    name.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn gauge(v: impl TryInto<i64>) -> Gauge {
    let g = Gauge::default();
    g.set(v.try_into().unwrap_or(i64::MAX));
    g
}

fn family<L>(values: impl IntoIterator<Item = (L, i64)>) -> Family<L, Gauge>
where
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static,
{
    let f = Family::<L, Gauge>::default();
    for (labels, v) in values {
        f.get_or_create(&labels).set(v);
    }
    f
}

impl Scraper {
    /// The whole exposition, as of now. A store read that fails leaves its
    /// metrics out and sets `vpcd_scrape_store_ok` to 0.
    pub(crate) async fn render(&self) -> Result<String, std::fmt::Error> {
        let now = self.clock.now();
        let mut reg = Registry::with_prefix("vpcd");
        reg.register(
            "requests",
            "API requests answered, by protocol (v2, v3), action and answer code",
            self.requests.requests.clone(),
        );
        reg.register(
            "request_duration_seconds",
            "Time from a request's arrival to its answer, by protocol and action",
            self.requests.latency.clone(),
        );
        let mut store_ok = true;

        match self.store.task_counts(now).await {
            Ok(t) => register_tasks(&mut reg, &t, now),
            Err(e) => {
                tracing::warn!(error = %e, "metrics: reading the task queue failed");
                store_ok = false;
            }
        }

        match self.store.conn_counts().await {
            Ok(counts) => {
                let mut values = Vec::new();
                for state in CONN_STATES {
                    for health in [NetStatus::Available, NetStatus::Unavailable] {
                        let n = counts
                            .iter()
                            .find(|c| c.status == state && c.net_status == health)
                            .map_or(0, |c| c.count);
                        let labels = TunnelLabels {
                            state: conn_state(state),
                            health: health.as_str(),
                        };
                        values.push((labels, i64::try_from(n).unwrap_or(i64::MAX)));
                    }
                }
                reg.register(
                    "tunnels",
                    "VPN connections of every account, by state (vpcConnStatus) and health (netStatus)",
                    family(values),
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics: counting connections failed");
                store_ok = false;
            }
        }

        let pools = self.store.pool_use();
        reg.register(
            "db_pool_connections",
            "Open database connections of each pool, in use or idle",
            family(pools.iter().flat_map(|p| {
                [
                    (
                        PoolLabels {
                            pool: p.pool,
                            state: "in_use",
                        },
                        i64::from(p.open.saturating_sub(p.idle)),
                    ),
                    (
                        PoolLabels {
                            pool: p.pool,
                            state: "idle",
                        },
                        i64::from(p.idle),
                    ),
                ]
            })),
        );
        reg.register(
            "db_pool_max_connections",
            "The most connections each database pool opens",
            family(
                pools
                    .iter()
                    .map(|p| (PoolLabel { pool: p.pool }, i64::from(p.max))),
            ),
        );

        if let Err(e) = self.register_nodes(&mut reg, now).await {
            tracing::warn!(error = %e, "metrics: reading gateway nodes and members failed");
            store_ok = false;
        }

        let writable = matches!(self.storage.readiness(), Readiness::Ready);
        reg.register(
            "storage_writable",
            "1 while the storage takes writes (what /readyz reports), 0 during a storage fault",
            gauge(i64::from(writable)),
        );
        reg.register(
            "scrape_store_ok",
            "1 if every store read of this scrape worked; 0 if some metrics are missing",
            gauge(i64::from(store_ok)),
        );

        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg)?;
        Ok(out)
    }

    /// Gateway nodes (this process's view of those it drives, and who
    /// drives each) and cluster membership.
    async fn register_nodes(&self, reg: &mut Registry, now: i64) -> vpcd_store::Result<()> {
        let nodes = self.store.list_gateway_nodes().await?;
        let members = self.store.list_members().await?;
        let leases = self.store.gateway_leases().await?;
        let interval_ms = self.monitor.heartbeat_interval.as_millis() as u64;
        let alive = |name: &str| {
            members
                .iter()
                .any(|m| m.name == name && is_alive(m, now, interval_ms))
        };
        let alive_count = members
            .iter()
            .filter(|m| is_alive(m, now, interval_ms))
            .count();
        reg.register(
            "cluster_members",
            "vpcd processes sharing the database, by whether their heartbeats are current",
            family([
                (StateLabel { state: "alive" }, alive_count as i64),
                (
                    StateLabel { state: "dead" },
                    (members.len() - alive_count) as i64,
                ),
            ]),
        );
        let (mut mine, mut other, mut nobody) = (0, 0, 0);
        for node in &nodes {
            let holder = leases
                .iter()
                .find(|(id, holder, until)| *id == node.id && *until >= now && alive(holder))
                .map(|(_, holder, _)| holder.as_str());
            match holder {
                Some(h) if h == self.monitor.member => mine += 1,
                Some(_) => other += 1,
                None => nobody += 1,
            }
        }
        reg.register(
            "gateway_nodes",
            "Registered strongSwan gateway nodes, by who drives them: this vpcd, another live vpcd, or nobody",
            family([
                (DrivenByLabel { driven_by: "this_process" }, mine),
                (DrivenByLabel { driven_by: "another_process" }, other),
                (DrivenByLabel { driven_by: "nobody" }, nobody),
            ]),
        );

        let name_of = |id| {
            nodes
                .iter()
                .find(|n| n.id == id)
                .map(|n| node_label(&n.name))
        };
        let seen: Vec<(String, crate::background::node_health::NodeHealth)> = self
            .monitor
            .nodes
            .snapshot()
            .into_iter()
            .filter_map(|(id, h)| Some((name_of(id)?, h)))
            .collect();
        let node = |name: &String| NodeLabel { node: name.clone() };
        reg.register(
            "gateway_node_charon_reachable",
            "1 if the node's charon answered over VICI the last time, 0 if not (nodes this vpcd drives)",
            family(
                seen.iter()
                    .filter_map(|(n, h)| Some((node(n), i64::from(h.reachable?)))),
            ),
        );
        reg.register(
            "gateway_node_tunnels_loaded",
            "Tunnels loaded on the node's charon after the last reconciliation (nodes this vpcd drives)",
            family(seen.iter().filter_map(|(n, h)| {
                Some((node(n), i64::try_from(h.tunnels_loaded?).unwrap_or(i64::MAX)))
            })),
        );
        let passes: Vec<_> = seen
            .iter()
            .filter_map(|(n, h)| Some((n, h.last_reconcile?)))
            .collect();
        reg.register(
            "gateway_node_last_reconcile_timestamp_seconds",
            "When the last reconciliation of the node ended (Unix seconds)",
            family(passes.iter().map(|(n, p)| (node(n), p.at))),
        );
        reg.register(
            "gateway_node_last_reconcile_success",
            "1 if the last reconciliation of the node went through, 0 if it failed (retried at the next)",
            family(passes.iter().map(|(n, p)| (node(n), i64::from(p.ok)))),
        );
        reg.register(
            "gateway_node_last_reconcile_changes",
            "What the last reconciliation changed: missing tunnels loaded, stale tunnels unloaded",
            family(passes.iter().flat_map(|(n, p)| {
                [
                    (
                        NodeChangeLabels {
                            node: (*n).clone(),
                            change: "loaded",
                        },
                        i64::try_from(p.loaded).unwrap_or(i64::MAX),
                    ),
                    (
                        NodeChangeLabels {
                            node: (*n).clone(),
                            change: "unloaded",
                        },
                        i64::try_from(p.unloaded).unwrap_or(i64::MAX),
                    ),
                ]
            })),
        );
        Ok(())
    }
}

fn register_tasks(reg: &mut Registry, t: &TaskCounts, now: i64) {
    reg.register(
        "tasks",
        "Tasks of every account: queued (waiting for a worker, or its lease expired), running (leased), failed (kept until pruned)",
        family([
            (StateLabel { state: "queued" }, to_i64(t.queued)),
            (StateLabel { state: "running" }, to_i64(t.running)),
            (StateLabel { state: "failed" }, to_i64(t.failed)),
        ]),
    );
    let age = t
        .oldest_queued_at
        .map_or(0, |at| now.saturating_sub(at).max(0));
    reg.register(
        "task_oldest_queued_age_seconds",
        "How long the oldest queued task has waited; 0 when none is queued",
        gauge(age),
    );
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

async fn metrics(State(scraper): State<Arc<Scraper>>) -> Response {
    match scraper.render().await {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n").into_response(),
    }
}

/// Serve `/metrics` on `addr` until `shutdown`; the address bound (port 0
/// resolves here) and the server's task.
pub(crate) async fn serve(
    addr: SocketAddr,
    scraper: Arc<Scraper>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics listener on {addr}"))?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(scraper);
    let task = tokio::spawn(async move {
        let stop = async move {
            let _ = shutdown.changed().await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %e, "metrics listener failed");
        }
    });
    Ok((bound, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_labels_need_no_escaping() {
        assert_eq!(node_label("gw-1.example:4502"), "gw-1.example:4502");
        assert_eq!(node_label("a\"b\\c\nd e"), "a_b_c_d_e");
        assert_eq!(node_label(&"x".repeat(100)).len(), 64);
    }
}
