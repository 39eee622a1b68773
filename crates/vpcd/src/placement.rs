//! Where new VPN gateways go.
//!
//! The background side publishes the registered gateway nodes
//! ([`Placement::set_nodes`]); the API side picks one for each new gateway
//! ([`Placement::choose`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::RwLock;

use vpcd_types::GatewayNodeId;

/// The registered gateway nodes, or (none registered) API only with an
/// address from the pool. The store picks the node's address.
#[derive(Default)]
pub(crate) struct Placement {
    nodes: RwLock<Vec<GatewayNodeId>>,
    next: AtomicUsize,
}

impl Placement {
    pub(crate) fn set_nodes(&self, nodes: Vec<GatewayNodeId>) {
        *self.nodes.write().unwrap_or_else(|p| p.into_inner()) = nodes;
    }

    /// The node for the next gateway, spreading gateways over nodes in
    /// turn; `None`: API only.
    pub(crate) fn choose(&self) -> Option<GatewayNodeId> {
        let nodes = self.nodes.read().unwrap_or_else(|p| p.into_inner());
        if nodes.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        Some(nodes[i % nodes.len()])
    }
}
