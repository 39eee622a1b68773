//! The driver used when no gateway node is configured.

use std::collections::HashMap;

use async_trait::async_trait;
use vpcd_types::{NetStatus, TunnelSpec, VpnConnId};

use crate::{DriverError, VpnDriver};

/// API only: no IPsec negotiated.
///
/// Every change succeeds and nothing is kept: no pre-shared key, no spec,
/// not even the set of tunnels, so a region of a million API-only tunnels
/// costs no memory here. Since nothing is loaded anywhere, [`loaded`] is
/// empty and [`net_status`] reports no tunnel, i.e. every tunnel is
/// unavailable.
///
/// [`loaded`]: VpnDriver::loaded
/// [`net_status`]: VpnDriver::net_status
#[derive(Debug, Default, Clone, Copy)]
pub struct ApiOnlyDriver;

#[async_trait]
impl VpnDriver for ApiOnlyDriver {
    fn describe(&self) -> String {
        "api-only (no IPsec negotiated)".to_owned()
    }

    async fn apply(&self, _spec: &TunnelSpec) -> Result<(), DriverError> {
        Ok(())
    }

    async fn remove(&self, _id: &VpnConnId) -> Result<(), DriverError> {
        Ok(())
    }

    async fn reset(&self, _spec: &TunnelSpec) -> Result<(), DriverError> {
        Ok(())
    }

    async fn loaded(&self) -> Result<Vec<VpnConnId>, DriverError> {
        Ok(Vec::new())
    }

    async fn net_status(&self) -> Result<HashMap<VpnConnId, NetStatus>, DriverError> {
        Ok(HashMap::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{spec_custom, spec_default};

    /// The driver is a unit struct: there is no field a key could be kept
    /// in, and after any sequence of changes every tunnel is unavailable.
    #[tokio::test]
    async fn keeps_nothing_and_reports_every_tunnel_unavailable() {
        assert_eq!(std::mem::size_of::<ApiOnlyDriver>(), 0);
        let d = ApiOnlyDriver;
        let (a, b) = (spec_default(), spec_custom());
        d.apply(&a).await.unwrap();
        d.apply(&b).await.unwrap();
        d.reset(&a).await.unwrap();
        d.remove(&b.name).await.unwrap();
        d.remove(&b.name).await.unwrap();
        assert!(d.loaded().await.unwrap().is_empty());
        let status = d.net_status().await.unwrap();
        assert_eq!(status.get(&a.name), None, "missing means unavailable");
        assert!(status.is_empty());
        assert_eq!(d.describe(), "api-only (no IPsec negotiated)");
    }
}
