//! The driver used when no gateway node is configured.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use vpcd_types::{NetStatus, TunnelSpec, VpnConnId};

use crate::{DriverError, VpnDriver};

/// API only: no IPsec negotiated. Keeps the desired state of every tunnel in
/// memory so tests can inspect it, and reports every tunnel unavailable,
/// because nothing is negotiated.
///
/// Tests can make the next operations fail with [`ApiOnlyDriver::fail_next`].
#[derive(Default)]
pub struct ApiOnlyDriver {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    tunnels: HashMap<String, TunnelSpec>,
    failures: Vec<DriverError>,
    applied: u64,
}

impl ApiOnlyDriver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Make the next data-plane operation fail with `err` (queued, FIFO).
    pub fn fail_next(&self, err: DriverError) {
        self.lock().failures.push(err);
    }

    /// The desired state last applied for `name`.
    pub fn tunnel(&self, name: &str) -> Option<TunnelSpec> {
        self.lock().tunnels.get(name).cloned()
    }

    /// How many apply/remove/reset operations succeeded.
    pub fn operations(&self) -> u64 {
        self.lock().applied
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave State inconsistent
        // (every update is a single insert/remove), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take_failure(state: &mut State) -> Result<(), DriverError> {
        if state.failures.is_empty() {
            Ok(())
        } else {
            Err(state.failures.remove(0))
        }
    }
}

#[async_trait]
impl VpnDriver for ApiOnlyDriver {
    fn describe(&self) -> String {
        "api-only (no IPsec negotiated)".to_owned()
    }

    async fn apply(&self, spec: &TunnelSpec) -> Result<(), DriverError> {
        let mut st = self.lock();
        Self::take_failure(&mut st)?;
        st.tunnels.insert(spec.name.to_string(), spec.clone());
        st.applied += 1;
        Ok(())
    }

    async fn remove(&self, name: &VpnConnId) -> Result<(), DriverError> {
        let mut st = self.lock();
        Self::take_failure(&mut st)?;
        st.tunnels.remove(name.as_str());
        st.applied += 1;
        Ok(())
    }

    async fn reset(&self, spec: &TunnelSpec) -> Result<(), DriverError> {
        let mut st = self.lock();
        Self::take_failure(&mut st)?;
        if !st.tunnels.contains_key(spec.name.as_str()) {
            st.tunnels.insert(spec.name.to_string(), spec.clone());
        }
        st.applied += 1;
        Ok(())
    }

    async fn loaded(&self) -> Result<Vec<String>, DriverError> {
        Ok(self.lock().tunnels.keys().cloned().collect())
    }

    async fn net_status(&self) -> Result<HashMap<String, NetStatus>, DriverError> {
        Ok(self
            .lock()
            .tunnels
            .keys()
            .map(|k| (k.clone(), NetStatus::Unavailable))
            .collect())
    }
}
