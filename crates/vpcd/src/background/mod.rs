//! The background side: everything vpcd does besides answering requests.
//!
//! The API side records tasks and notifies [`crate::api::ApiState::tasks`];
//! from there on everything happens here, and nothing here calls back into
//! the API side.
//!
//! # Layout
//! - [`engine`]: the task workers: claim a task with a lease, apply it
//!   through the gateway's driver, record the outcome.
//! - [`drivers`]: the driver of each gateway node this process drives, and
//!   the API-only driver.
//! - [`gateway_nodes`]: starting and stopping those drivers as leases come
//!   and go, following each node's live SA state into `netStatus`, and
//!   reconciling what each node has loaded with the database.
//! - [`diagnostics`]: recording what each driven node's charon says about
//!   its tunnels (failures, up/down events, traffic) for
//!   `DescribeVpnConnDiagnostics`.
//! - [`pruning`]: deleting finished tasks past their retention period.
//! - [`cluster`]: heartbeats of vpcd processes, and the leases that decide
//!   which vpcd drives each gateway node; it publishes the set of nodes this
//!   process drives on a `watch` channel that `gateway_nodes` follows.

use crate::storage_health::StorageHealth;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use vpcd_dataplane::VpnDriver;
use vpcd_store::Store;
use vpcd_types::GatewayNodeId;

use crate::clock::Clock;
use crate::placement::Placement;

pub(crate) mod cluster;
pub(crate) mod diagnostics;
pub(crate) mod drivers;
pub(crate) mod engine;
pub(crate) mod gateway_nodes;
mod holder;
pub(crate) mod node_health;
pub(crate) mod pruning;

use cluster::{Cluster, MemberInfo};
use drivers::Drivers;
use engine::Engine;
use gateway_nodes::GatewayNodes;

/// The background side's tunables (all `vpcd serve` flags).
pub(crate) struct Config {
    pub(crate) task_lease_secs: i64,
    /// Tasks applied at once; 0 applies none (an API-only process).
    pub(crate) workers: usize,
    pub(crate) reconcile_interval: Duration,
    /// The driver of gateways without a gateway node...
    pub(crate) api_only: Arc<dyn VpnDriver>,
    /// ...and its simulated latency.
    pub(crate) api_only_delay: Duration,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) gateway_lease_secs: i64,
    /// How long finished tasks are kept; 0 keeps them for ever.
    pub(crate) task_retention_secs: i64,
    /// How often tunnel traffic is sampled for diagnostics.
    pub(crate) diagnostics_interval: Duration,
}

/// Shared with the API side.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Clock,
    pub(crate) placement: Arc<Placement>,
    pub(crate) tasks: Arc<Notify>,
    pub(crate) storage: StorageHealth,
}

pub(crate) struct Background {
    store: Arc<dyn Store>,
    clock: Clock,
    engine: Arc<Engine>,
    cluster: Arc<Cluster>,
    nodes: Arc<GatewayNodes>,
    tasks: Arc<Notify>,
    workers: usize,
    reconcile_interval: Duration,
    /// `None`: finished tasks are kept for ever.
    pruner: Option<Arc<pruning::Pruner>>,
}

impl Background {
    /// Join the cluster and start driving the gateway nodes whose lease is
    /// free, before anything claims a task; nothing runs in the background
    /// until [`Background::spawn`].
    pub(crate) async fn start(
        cfg: Config,
        shared: Shared,
        shutdown: &watch::Receiver<bool>,
    ) -> Background {
        let Shared {
            store,
            clock,
            placement,
            tasks,
            storage,
        } = shared;
        let drivers = Arc::new(Drivers::new(cfg.api_only, cfg.api_only_delay));
        let engine = Arc::new(Engine::new(
            store.clone(),
            drivers.clone(),
            clock.clone(),
            cfg.task_lease_secs,
            cfg.workers,
            tasks.clone(),
        ));
        let cluster = Arc::new(Cluster::new(
            engine.worker_id().to_owned(),
            MemberInfo::of_this_process(cfg.heartbeat_interval),
            cfg.heartbeat_interval,
            cfg.gateway_lease_secs,
            storage,
        ));
        // Take the gateway node leases that are free before driving any node.
        cluster.round(store.as_ref(), &clock).await;
        let nodes = Arc::new(GatewayNodes {
            store: store.clone(),
            clock: clock.clone(),
            drivers,
            cluster: cluster.clone(),
            placement,
            health: Arc::default(),
            diagnostics_interval: cfg.diagnostics_interval,
        });
        nodes.refresh(shutdown).await;
        let pruner = (cfg.task_retention_secs > 0).then(|| {
            Arc::new(pruning::Pruner {
                store: store.clone(),
                clock: clock.clone(),
                retention_secs: cfg.task_retention_secs,
            })
        });
        Background {
            store,
            clock,
            engine,
            cluster,
            nodes,
            tasks,
            workers: cfg.workers,
            reconcile_interval: cfg.reconcile_interval,
            pruner,
        }
    }

    /// Record the bound listen addresses for the next heartbeats.
    pub(crate) fn set_listen(&self, http: Option<SocketAddr>, https: Option<SocketAddr>) {
        self.cluster.set_listen(http, https);
    }

    /// Run the task workers, the gateway nodes, the task pruner and the
    /// cluster membership until `shutdown`.
    pub(crate) fn spawn(&self, shutdown: &watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        let mut tasks = Vec::new();
        if self.workers > 0 {
            tasks.push(tokio::spawn(self.engine.clone().run(shutdown.clone())));
        }
        let (driven_tx, driven_rx) =
            watch::channel::<HashSet<GatewayNodeId>>(self.cluster.driven(self.clock.now()));
        tasks.push(tokio::spawn(self.nodes.clone().run(
            self.reconcile_interval,
            driven_rx,
            self.tasks.clone(),
            shutdown.clone(),
        )));
        if let Some(pruner) = &self.pruner {
            tasks.push(tokio::spawn(pruning::run(
                pruner.clone(),
                pruning::INTERVAL,
                shutdown.clone(),
            )));
        }
        tasks.push(tokio::spawn(cluster::run(
            self.cluster.clone(),
            self.store.clone(),
            self.clock.clone(),
            driven_tx,
            shutdown.clone(),
        )));
        tasks
    }

    /// What the metrics need of the background side: this process's member
    /// name, its gateway nodes' health, its heartbeat interval.
    pub(crate) fn monitor(&self) -> Monitor {
        Monitor {
            member: self.engine.worker_id().to_owned(),
            nodes: self.nodes.health.clone(),
            heartbeat_interval: self.cluster.interval(),
        }
    }

    /// Claim and run one task; whether there was one. Tests drain the queue
    /// with this at a chosen point.
    pub(crate) async fn run_task(&self) -> anyhow::Result<bool> {
        self.engine.run_once().await
    }
}

/// The background side as the metrics scrape sees it.
pub(crate) struct Monitor {
    /// This process's name in the cluster (its heartbeats, its leases).
    pub(crate) member: String,
    pub(crate) nodes: Arc<node_health::NodesHealth>,
    pub(crate) heartbeat_interval: Duration,
}

/// This machine's name, as the kernel has it.
fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
}
