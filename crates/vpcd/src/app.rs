//! Shared state and settings of a running vpcd.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use std::time::Duration;

use async_trait::async_trait;
use ipnet::IpNet;
use vpcd_dataplane::{DriverError, VpnDriver};
use vpcd_store::{Limits, Store};
use vpcd_types::{GatewayNodeId, NetStatus, TunnelSpec, VpnConnId};

use crate::engine::Engine;

/// Tunables of the API layer; all are `vpcd serve` flags.
#[derive(Debug, Clone)]
pub struct Settings {
    pub limits: Limits,
    /// Accepted distance between a request's Timestamp and the server clock.
    pub timestamp_window_secs: i64,
    /// Public addresses handed to VPN gateways that have no gateway node.
    pub gw_address_pool: IpNet,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            limits: Limits::default(),
            timestamp_window_secs: 300,
            gw_address_pool: "203.0.113.0/24".parse().expect("valid pool"),
            max_body_bytes: 64 * 1024,
        }
    }
}

/// Wall-clock seconds, injectable so tests can move time.
#[derive(Clone, Default)]
pub struct Clock {
    offset: Arc<std::sync::atomic::AtomicI64>,
}

impl Clock {
    pub fn now(&self) -> i64 {
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        real + self.offset.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Shift the clock (tests only).
    pub fn advance(&self, secs: i64) {
        self.offset
            .fetch_add(secs, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The data-plane driver of each gateway node, and the API-only driver for
/// gateways that have none.
pub struct Drivers {
    api_only: Arc<dyn VpnDriver>,
    nodes: RwLock<HashMap<GatewayNodeId, Arc<dyn VpnDriver>>>,
}

impl Drivers {
    /// `api_only` serves gateways on no node (tests pass a recording
    /// driver); a non-zero `delay` is waited before each of its changes.
    pub fn new(api_only: Arc<dyn VpnDriver>, delay: Duration) -> Self {
        let api_only: Arc<dyn VpnDriver> = if delay.is_zero() {
            api_only
        } else {
            Arc::new(Delayed {
                inner: api_only,
                delay,
            })
        };
        Drivers {
            api_only,
            nodes: RwLock::new(HashMap::new()),
        }
    }

    pub fn insert_node(&self, node_id: GatewayNodeId, driver: Arc<dyn VpnDriver>) {
        self.nodes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(node_id, driver);
    }

    /// Stop driving a node (its lease moved to another vpcd).
    pub fn remove_node(&self, node_id: GatewayNodeId) -> Option<Arc<dyn VpnDriver>> {
        self.nodes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&node_id)
    }

    /// The gateway nodes this process has a driver for, and `None` for API
    /// only: whose tasks this process may run.
    pub fn driven(&self) -> Vec<Option<GatewayNodeId>> {
        let mut v = vec![None];
        v.extend(
            self.nodes
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .keys()
                .map(|k| Some(*k)),
        );
        v
    }

    /// The driver for a gateway placed on `node` (`None`: API only).
    pub fn get(&self, node: Option<GatewayNodeId>) -> Option<Arc<dyn VpnDriver>> {
        match node {
            None => Some(self.api_only.clone()),
            Some(id) => self
                .nodes
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(&id)
                .cloned(),
        }
    }

    /// The driver of every gateway node this process drives, by node id.
    pub fn nodes(&self) -> Vec<(GatewayNodeId, Arc<dyn VpnDriver>)> {
        self.nodes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, d)| (*k, d.clone()))
            .collect()
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub settings: Arc<Settings>,
    pub clock: Clock,
    pub engine: Arc<Engine>,
    pub drivers: Arc<Drivers>,
    pub placement: Arc<Placement>,
    /// Heartbeats and gateway node leases (several vpcds on one database).
    pub cluster: Arc<crate::cluster::Cluster>,
}

/// Where new VPN gateways go: the registered gateway nodes, or (none
/// registered) API only with an address from the pool. The store picks the
/// node's address.
#[derive(Default)]
pub struct Placement {
    nodes: RwLock<Vec<GatewayNodeId>>,
    next: std::sync::atomic::AtomicUsize,
}

impl Placement {
    pub fn set_nodes(&self, nodes: Vec<GatewayNodeId>) {
        *self.nodes.write().unwrap_or_else(|p| p.into_inner()) = nodes;
    }

    /// The node for the next gateway, spreading gateways over nodes in turn.
    pub fn choose(&self) -> Option<GatewayNodeId> {
        let nodes = self.nodes.read().unwrap_or_else(|p| p.into_inner());
        if nodes.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(nodes[i % nodes.len()])
    }
}

/// A driver that waits before each change: simulated data-plane latency.
struct Delayed {
    inner: Arc<dyn VpnDriver>,
    delay: Duration,
}

#[async_trait]
impl VpnDriver for Delayed {
    fn describe(&self) -> String {
        format!(
            "{} with {:?} simulated latency",
            self.inner.describe(),
            self.delay
        )
    }
    async fn apply(&self, spec: &TunnelSpec) -> Result<(), DriverError> {
        tokio::time::sleep(self.delay).await;
        self.inner.apply(spec).await
    }
    async fn remove(&self, name: &VpnConnId) -> Result<(), DriverError> {
        tokio::time::sleep(self.delay).await;
        self.inner.remove(name).await
    }
    async fn reset(&self, spec: &TunnelSpec) -> Result<(), DriverError> {
        tokio::time::sleep(self.delay).await;
        self.inner.reset(spec).await
    }
    async fn loaded(&self) -> Result<Vec<VpnConnId>, DriverError> {
        self.inner.loaded().await
    }
    async fn net_status(&self) -> Result<HashMap<VpnConnId, NetStatus>, DriverError> {
        self.inner.net_status().await
    }
}
