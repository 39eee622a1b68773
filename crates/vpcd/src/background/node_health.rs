//! What this process last saw of each gateway node it drives: whether its
//! charon answered, how many tunnels it had loaded, and the last
//! reconciliation (when, whether it worked, what it changed). Written by
//! `gateway_nodes`, read by the metrics scrape; kept in memory only, since
//! each vpcd reports the nodes it drives itself.

use std::collections::HashMap;
use std::sync::Mutex;

use vpcd_store::Timestamp;
use vpcd_types::GatewayNodeId;

/// One gateway node as last seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct NodeHealth {
    /// Whether the charon answered the last time it was asked; `None`
    /// before the first attempt.
    pub(crate) reachable: Option<bool>,
    /// Tunnels the charon had loaded after the last reconciliation that
    /// read them.
    pub(crate) tunnels_loaded: Option<u64>,
    pub(crate) last_reconcile: Option<Reconciled>,
}

/// One reconciliation pass over a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reconciled {
    pub(crate) at: Timestamp,
    /// Whether it went through; a failed pass is retried at the next one.
    pub(crate) ok: bool,
    /// Missing tunnels it loaded.
    pub(crate) loaded: u64,
    /// Stale tunnels it unloaded.
    pub(crate) unloaded: u64,
}

/// Every driven node's [`NodeHealth`].
#[derive(Debug, Default)]
pub(crate) struct NodesHealth {
    nodes: Mutex<HashMap<GatewayNodeId, NodeHealth>>,
}

impl NodesHealth {
    fn update(&self, node: GatewayNodeId, f: impl FnOnce(&mut NodeHealth)) {
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        f(nodes.entry(node).or_default());
    }

    /// The charon of `node` answered (or not).
    pub(crate) fn reachable(&self, node: GatewayNodeId, yes: bool) {
        self.update(node, |h| h.reachable = Some(yes));
    }

    /// A reconciliation pass ended; `loaded_now` is how many tunnels the
    /// node has after it, when the pass got that far.
    pub(crate) fn reconciled(
        &self,
        node: GatewayNodeId,
        pass: Reconciled,
        loaded_now: Option<u64>,
    ) {
        self.update(node, |h| {
            h.last_reconcile = Some(pass);
            if loaded_now.is_some() {
                h.tunnels_loaded = loaded_now;
            }
        });
    }

    /// This process no longer drives `node`: whoever does now reports it.
    pub(crate) fn forget(&self, node: GatewayNodeId) {
        self.nodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&node);
    }

    /// Every node seen, by id.
    pub(crate) fn snapshot(&self) -> Vec<(GatewayNodeId, NodeHealth)> {
        let nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<_> = nodes.iter().map(|(id, h)| (*id, *h)).collect();
        all.sort_by_key(|(id, _)| id.get());
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_forgets() {
        let h = NodesHealth::default();
        let a = GatewayNodeId::new(1);
        let b = GatewayNodeId::new(2);
        h.reachable(b, false);
        h.reachable(a, true);
        let pass = Reconciled {
            at: 100,
            ok: true,
            loaded: 2,
            unloaded: 1,
        };
        h.reconciled(a, pass, Some(5));
        // A failed pass that never read the node keeps the last count.
        let failed = Reconciled {
            at: 130,
            ok: false,
            loaded: 0,
            unloaded: 0,
        };
        h.reconciled(a, failed, None);
        assert_eq!(
            h.snapshot(),
            [
                (
                    a,
                    NodeHealth {
                        reachable: Some(true),
                        tunnels_loaded: Some(5),
                        last_reconcile: Some(failed),
                    }
                ),
                (
                    b,
                    NodeHealth {
                        reachable: Some(false),
                        ..NodeHealth::default()
                    }
                ),
            ]
        );
        h.forget(a);
        assert_eq!(h.snapshot().len(), 1);
    }
}
