//! [`RecordingDriver`]: the desired state of every tunnel, kept for tests to
//! inspect, and failures injected on demand.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use vpcd_types::{NetStatus, TunnelSpec, VpnConnId};

use crate::{DriverError, VpnDriver};

/// A [`VpnDriver`] that negotiates nothing and records the last spec applied
/// to each tunnel, pre-shared key included; that is why it exists only for
/// tests (the production stand-in, [`crate::ApiOnlyDriver`], keeps nothing).
///
/// [`RecordingDriver::fail_next`] makes the next changes fail, to drive the
/// task engine through its failure paths.
#[derive(Default)]
pub struct RecordingDriver {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    tunnels: HashMap<VpnConnId, TunnelSpec>,
    failures: VecDeque<DriverError>,
}

impl RecordingDriver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Make the next change (apply, remove or reset) fail with `err`
    /// instead of taking effect. Queued: each call fails one more change.
    pub fn fail_next(&self, err: DriverError) {
        self.lock().failures.push_back(err);
    }

    /// The spec last applied (or reset) for `id`, until it is removed.
    pub fn tunnel(&self, id: &VpnConnId) -> Option<TunnelSpec> {
        self.lock().tunnels.get(id).cloned()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update is a single insert/remove/pop, so a panic elsewhere
        // while the lock was held cannot leave the state half-changed.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take the next injected failure, or run `change` on the state.
    fn change(&self, change: impl FnOnce(&mut State)) -> Result<(), DriverError> {
        let mut st = self.lock();
        if let Some(err) = st.failures.pop_front() {
            return Err(err);
        }
        change(&mut st);
        Ok(())
    }
}

#[async_trait]
impl VpnDriver for RecordingDriver {
    fn describe(&self) -> String {
        "recording (tests)".to_owned()
    }

    async fn apply(&self, spec: &TunnelSpec) -> Result<(), DriverError> {
        self.change(|st| {
            st.tunnels.insert(spec.name.clone(), spec.clone());
        })
    }

    async fn remove(&self, id: &VpnConnId) -> Result<(), DriverError> {
        self.change(|st| {
            st.tunnels.remove(id);
        })
    }

    /// Like a real reset, this installs `spec` whether or not the tunnel was
    /// there before.
    async fn reset(&self, spec: &TunnelSpec) -> Result<(), DriverError> {
        self.apply(spec).await
    }

    async fn loaded(&self) -> Result<Vec<VpnConnId>, DriverError> {
        let mut ids: Vec<VpnConnId> = self.lock().tunnels.keys().cloned().collect();
        ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Ok(ids)
    }

    /// Nothing is negotiated, so every recorded tunnel is unavailable.
    async fn net_status(&self) -> Result<HashMap<VpnConnId, NetStatus>, DriverError> {
        Ok(self
            .lock()
            .tunnels
            .keys()
            .map(|id| (id.clone(), NetStatus::Unavailable))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{spec_custom, spec_default};

    #[tokio::test]
    async fn records_the_last_spec_until_removed() {
        let d = RecordingDriver::new();
        let mut a = spec_default();
        let b = spec_custom();
        d.apply(&a).await.unwrap();
        d.apply(&b).await.unwrap();
        a.settings.ipsec.sa_lifetime_seconds = 1_234;
        d.reset(&a).await.unwrap();
        assert_eq!(d.tunnel(&a.name), Some(a.clone()));
        // vpnx-cust0001 sorts before vpnx-dflt0001.
        assert_eq!(
            d.loaded().await.unwrap(),
            vec![b.name.clone(), a.name.clone()]
        );
        let status = d.net_status().await.unwrap();
        assert_eq!(status.len(), 2);
        assert!(status.values().all(|s| *s == NetStatus::Unavailable));
        d.remove(&b.name).await.unwrap();
        d.remove(&b.name).await.unwrap();
        assert_eq!(d.tunnel(&b.name), None);
        assert_eq!(d.loaded().await.unwrap(), vec![a.name.clone()]);
    }

    #[tokio::test]
    async fn injected_failures_are_returned_in_order_and_change_nothing() {
        let d = RecordingDriver::new();
        let spec = spec_default();
        let first = DriverError::Unreachable("socket gone".into());
        let second = DriverError::Rejected("proposal refused".into());
        d.fail_next(first.clone());
        d.fail_next(second.clone());
        assert_eq!(d.apply(&spec).await, Err(first));
        assert_eq!(d.tunnel(&spec.name), None, "a failed apply records nothing");
        // Queries do not consume failures.
        assert!(d.loaded().await.unwrap().is_empty());
        assert_eq!(d.reset(&spec).await, Err(second));
        assert_eq!(d.tunnel(&spec.name), None);
        // The queue is drained: the next change goes through.
        d.apply(&spec).await.unwrap();
        d.fail_next(DriverError::Unreachable("charon down".into()));
        assert!(d.remove(&spec.name).await.is_err());
        assert_eq!(d.tunnel(&spec.name), Some(spec), "a failed remove keeps it");
    }
}
