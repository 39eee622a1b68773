//! The data-plane driver of each gateway node this process drives, and the
//! driver for gateways that have no node (API only).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use vpcd_dataplane::{DriverError, VpnDriver};
use vpcd_types::{GatewayNodeId, NetStatus, TunnelSpec, VpnConnId};

pub(crate) struct Drivers {
    api_only: Arc<dyn VpnDriver>,
    /// Whether the API-only driver answers at once (no simulated latency):
    /// then its tasks need no worker, see [`super::engine`].
    api_only_instant: bool,
    nodes: RwLock<HashMap<GatewayNodeId, Arc<dyn VpnDriver>>>,
}

impl Drivers {
    /// `api_only` serves gateways without a node (tests pass a recording
    /// driver), each change delayed by `delay` (simulated data-plane
    /// latency).
    pub(crate) fn new(api_only: Arc<dyn VpnDriver>, delay: Duration) -> Self {
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
            api_only_instant: delay.is_zero(),
            nodes: RwLock::new(HashMap::new()),
        }
    }

    pub(crate) fn insert_node(&self, node_id: GatewayNodeId, driver: Arc<dyn VpnDriver>) {
        self.nodes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(node_id, driver);
    }

    /// Stop driving a node (its lease moved to another vpcd).
    pub(crate) fn remove_node(&self, node_id: GatewayNodeId) -> Option<Arc<dyn VpnDriver>> {
        self.nodes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&node_id)
    }

    /// The gateway nodes this process has a driver for, and `None` for API
    /// only: whose tasks this process may run.
    pub(crate) fn driven(&self) -> Vec<Option<GatewayNodeId>> {
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

    /// Whether API-only tasks are applied at once, in memory: no simulated
    /// data-plane latency.
    pub(crate) fn api_only_instant(&self) -> bool {
        self.api_only_instant
    }

    /// The driver for a gateway placed on `node` (`None`: API only).
    pub(crate) fn get(&self, node: Option<GatewayNodeId>) -> Option<Arc<dyn VpnDriver>> {
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
    pub(crate) fn nodes(&self) -> Vec<(GatewayNodeId, Arc<dyn VpnDriver>)> {
        self.nodes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, d)| (*k, d.clone()))
            .collect()
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
    async fn remove(&self, id: &VpnConnId) -> Result<(), DriverError> {
        tokio::time::sleep(self.delay).await;
        self.inner.remove(id).await
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
