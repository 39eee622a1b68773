//! Driving the strongSwan gateway nodes whose lease this process holds: a
//! driver for each, a watcher that follows its live SA state into
//! `netStatus`, a recorder of its tunnels' diagnostics
//! (`super::diagnostics`), and reconciliation of what each node has loaded with the
//! database.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use vpcd_dataplane::strongswan::StrongSwanDriver;
use vpcd_dataplane::VpnDriver;
use vpcd_store::Store;
use vpcd_types::{ConnStatus, GatewayNodeId, NetStatus, VpnConnId};

use super::cluster::Cluster;
use super::diagnostics;
use super::drivers::Drivers;
use super::node_health::{NodesHealth, Reconciled};
use crate::clock::Clock;
use crate::placement::Placement;

pub(crate) struct GatewayNodes {
    pub(super) store: Arc<dyn Store>,
    pub(super) clock: Clock,
    pub(super) drivers: Arc<Drivers>,
    pub(super) cluster: Arc<Cluster>,
    pub(super) placement: Arc<Placement>,
    /// What the metrics report of each driven node.
    pub(super) health: Arc<NodesHealth>,
    /// How often each node's tunnel traffic is sampled for diagnostics.
    pub(super) diagnostics_interval: Duration,
}

impl GatewayNodes {
    /// Refresh and reconcile every `every` and whenever the set of driven
    /// nodes changes; then wake the task workers, which may now run the
    /// tasks of a node they did not drive before.
    pub(crate) async fn run(
        self: Arc<Self>,
        every: Duration,
        mut driven: watch::Receiver<HashSet<GatewayNodeId>>,
        tasks: Arc<Notify>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut changed = false;
        loop {
            self.refresh(&shutdown).await;
            self.reconcile_once().await;
            if changed {
                tasks.notify_one();
            }
            changed = tokio::select! {
                _ = tokio::time::sleep(every) => false,
                r = driven.changed() => match r {
                    Ok(()) => true,
                    // The cluster loop ended: shutting down.
                    Err(_) => return,
                },
                _ = shutdown.changed() => return,
            };
        }
    }

    /// Make each node's loaded tunnels match the database: load what is
    /// missing, unload what is stale. Runs at start and then periodically, so
    /// a restarted charon or a restarted vpcd converges without any API call.
    ///
    /// API-only gateways are left out: nothing is negotiated for them, so
    /// there is nothing to converge, and a pass would load every row for
    /// nothing.
    async fn reconcile_once(&self) {
        for (node, driver) in self.drivers.nodes() {
            let mut pass = Reconciled {
                at: self.clock.now(),
                ok: false,
                loaded: 0,
                unloaded: 0,
            };
            let result = self.reconcile_node(node, driver.as_ref(), &mut pass).await;
            pass.ok = result.is_ok();
            let loaded_now = match result {
                Ok(n) => Some(n),
                Err(e) => {
                    tracing::warn!(node = %node, driver = %driver.describe(), error = %e, "reconciliation failed; will retry");
                    None
                }
            };
            self.health.reconciled(node, pass, loaded_now);
        }
    }

    /// One node's pass; counts what it changed in `pass` as it goes, and
    /// answers how many tunnels the node has loaded afterwards.
    async fn reconcile_node(
        &self,
        node: GatewayNodeId,
        driver: &dyn VpnDriver,
        pass: &mut Reconciled,
    ) -> anyhow::Result<u64> {
        let desired = self.store.desired_conns(Some(node)).await?;
        let loaded = driver.loaded().await;
        self.health.reachable(node, loaded.is_ok());
        let loaded: HashSet<VpnConnId> = loaded?.into_iter().collect();
        let wanted: HashSet<&VpnConnId> = desired.iter().map(|c| &c.un_id).collect();
        for c in &desired {
            // Tunnels with a task in flight are the task's business.
            let settled = matches!(c.status, ConnStatus::Running | ConnStatus::DeleteFailed)
                && c.active_task.is_none();
            if settled && !loaded.contains(&c.un_id) {
                tracing::info!(conn = %c.un_id, "reconcile: loading missing tunnel");
                driver.apply(&c.tunnel_spec()).await?;
                pass.loaded += 1;
            }
        }
        for id in &loaded {
            if !wanted.contains(id) {
                tracing::info!(conn = %id, "reconcile: unloading stale tunnel");
                driver.remove(id).await?;
                pass.unloaded += 1;
            }
        }
        Ok((loaded.len() as u64 + pass.loaded).saturating_sub(pass.unloaded))
    }

    /// Pick up gateway nodes registered in the database (at start, and later
    /// by `vpcd admin gateway-node add`): one strongSwan driver for each node
    /// whose lease this process holds, and a watcher that follows its live
    /// SA state into `netStatus`; drop the drivers of nodes whose lease moved
    /// on. Publishes the registered nodes for placement.
    pub(crate) async fn refresh(self: &Arc<Self>, shutdown: &watch::Receiver<bool>) {
        let nodes = match self.store.list_gateway_nodes().await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "listing gateway nodes failed");
                return;
            }
        };
        let now = self.clock.now();
        for node in &nodes {
            let Some(tenure) = self.cluster.tenure(node.id, now) else {
                if self.drivers.remove_node(node.id).is_some() {
                    self.health.forget(node.id);
                    tracing::info!(node = %node.id, name = %node.name, "no longer driving gateway node");
                }
                continue;
            };
            if self.drivers.get(Some(node.id)).is_some() {
                continue;
            }
            let driver = match StrongSwanDriver::new(&node.vici) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(node = %node.id, vici = %node.vici, error = %e, "bad VICI URI for gateway node");
                    continue;
                }
            };
            tracing::info!(node = %node.id, name = %node.name, vici = %node.vici, "driving gateway node");
            self.take_over_net_status(node.id, &driver).await;
            tokio::spawn(self.clone().follow_net_status(
                node.id,
                tenure,
                driver.clone(),
                shutdown.clone(),
            ));
            let recorder = diagnostics::NodeRecorder {
                store: self.store.clone(),
                clock: self.clock.clone(),
                cluster: self.cluster.clone(),
                node: node.id,
                tenure,
                driver: driver.clone(),
                sample_every: self.diagnostics_interval,
            };
            tokio::spawn(diagnostics::follow(recorder, shutdown.clone()));
            self.drivers.insert_node(node.id, Arc::new(driver));
        }
        self.placement
            .set_nodes(nodes.iter().map(|n| n.id).collect());
    }

    /// Record a node's live state before driving it, so that no stale
    /// "available" from an earlier run (or another vpcd) is served.
    async fn take_over_net_status(&self, node: GatewayNodeId, driver: &StrongSwanDriver) {
        let live = driver.net_status().await.unwrap_or_default();
        match self.store.desired_conns(Some(node)).await {
            Ok(desired) if !desired.is_empty() => {
                let changes: Vec<(VpnConnId, NetStatus)> = desired
                    .iter()
                    .map(|c| {
                        let st = live.get(&c.un_id).copied();
                        (c.un_id.clone(), st.unwrap_or(NetStatus::Unavailable))
                    })
                    .collect();
                if let Err(e) = self.store.set_net_status(&changes).await {
                    tracing::warn!(node = %node, error = %e, "recording net status failed");
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(node = %node, error = %e, "listing the node's tunnels failed")
            }
        }
    }

    /// Write each change of a node's live SA state to the database. The
    /// driver's stream is event-driven (VICI ike-updown/child-updown), with
    /// a periodic re-read as a fallback, so `netStatus` follows within a
    /// second. Ends when the node's lease moves on (its new holder follows
    /// it then) or at shutdown.
    async fn follow_net_status(
        self: Arc<Self>,
        node: GatewayNodeId,
        tenure: u64,
        driver: StrongSwanDriver,
        mut shutdown: watch::Receiver<bool>,
    ) {
        use futures::StreamExt;
        let mut stream = Box::pin(driver.watch());
        let mut last: HashMap<VpnConnId, NetStatus> = HashMap::new();
        let mut first = true;
        // The event stream is silent while charon is down; a direct check
        // each second notices a dead node (every tunnel unavailable).
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let now = tokio::select! {
                m = stream.next() => match m { Some(m) => m, None => return },
                _ = tick.tick() => match driver.net_status().await {
                    Ok(m) => {
                        self.health.reachable(node, true);
                        m
                    }
                    Err(e) => {
                        self.health.reachable(node, false);
                        tracing::debug!(node = %node, error = %e, "gateway node unreachable");
                        HashMap::new()
                    }
                },
                _ = shutdown.changed() => return,
            };
            if self.cluster.tenure(node, self.clock.now()) != Some(tenure) {
                return;
            }
            let mut changes: Vec<(VpnConnId, NetStatus)> = now
                .iter()
                .filter(|(k, v)| last.get(*k) != Some(v))
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            changes.extend(
                last.keys()
                    .filter(|k| !now.contains_key(*k))
                    .map(|k| (k.clone(), NetStatus::Unavailable)),
            );
            if first {
                // After a restart the database may still say "available"
                // for a tunnel the node no longer has.
                if let Ok(desired) = self.store.desired_conns(Some(node)).await {
                    changes.extend(
                        desired
                            .iter()
                            .filter(|c| !now.contains_key(&c.un_id))
                            .map(|c| (c.un_id.clone(), NetStatus::Unavailable)),
                    );
                }
                first = false;
            }
            if changes.is_empty() {
                continue;
            }
            match self.store.set_net_status(&changes).await {
                Ok(()) => last = now,
                Err(e) => tracing::warn!(node = %node, error = %e, "recording net status failed"),
            }
        }
    }
}
