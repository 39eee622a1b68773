//! The data plane: what turns a stored connection into a negotiated tunnel.
//!
//! [`VpnDriver`] is the seam between the task engine and a gateway node. The
//! task worker calls it once per task, with the complete desired state
//! ([`TunnelSpec`]); drivers must therefore be idempotent: applying the same
//! spec twice, or removing a tunnel that is already gone, succeeds.
//!
//! # Layout
//! - `api_only`: [`ApiOnlyDriver`], the driver used when no gateway node is
//!   configured ("API only: no IPsec negotiated"). It accepts every change,
//!   negotiates nothing and keeps nothing.
//! - [`strongswan`]: the real data plane, charon driven over VICI
//!   ([`StrongSwanDriver`]); `strongswan::render` is the pure mapping from a
//!   spec to VICI messages.
//! - [`peer_config`]: configuration for the customer's device (strongSwan,
//!   Libreswan, Cisco IOS, Juniper SRX), safe against hostile keys.
//! - `testbed` (feature `testbed`): two network namespaces with a charon
//!   each, for end-to-end tests.
//! - `test_support` (tests and feature `testbed`): ready-made specs and a
//!   recording driver with failure injection.

use std::collections::HashMap;

use async_trait::async_trait;
use vpcd_types::{NetStatus, TunnelSpec, VpnConnId};

mod api_only;
pub mod peer_config;
pub mod strongswan;
#[cfg(any(test, feature = "testbed"))]
pub mod test_support;
#[cfg(feature = "testbed")]
pub mod testbed;

pub use api_only::ApiOnlyDriver;
pub use strongswan::StrongSwanDriver;

/// A data-plane operation failed. The message is shown to API callers in
/// DescribeVpcTaskResult, so it must never carry a pre-shared key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// The gateway node could not be reached (socket missing, refused, timed out).
    #[error("gateway node unreachable: {0}")]
    Unreachable(String),
    /// The node refused the configuration.
    #[error("gateway node rejected the configuration: {0}")]
    Rejected(String),
}

/// One gateway node's data plane.
#[async_trait]
pub trait VpnDriver: Send + Sync + 'static {
    /// A short description for logs, e.g. `api-only` or the VICI address.
    fn describe(&self) -> String;

    /// Install or replace the tunnel described by `spec`, touching no other
    /// tunnel on the node.
    async fn apply(&self, spec: &TunnelSpec) -> Result<(), DriverError>;

    /// Remove the tunnel and tear down its SAs. Removing an unknown tunnel
    /// succeeds.
    async fn remove(&self, id: &VpnConnId) -> Result<(), DriverError>;

    /// Tear down and re-negotiate the tunnel's SAs.
    async fn reset(&self, spec: &TunnelSpec) -> Result<(), DriverError>;

    /// The vpcd tunnels currently loaded on the node (for reconciliation).
    /// Whatever else the node has loaded is not vpcd's and is left out.
    async fn loaded(&self) -> Result<Vec<VpnConnId>, DriverError>;

    /// The live state of every loaded vpcd tunnel. A tunnel missing from the
    /// map is unavailable.
    async fn net_status(&self) -> Result<HashMap<VpnConnId, NetStatus>, DriverError>;
}
