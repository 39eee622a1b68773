//! Domain newtypes shared by every vpcd crate.
//!
//! Nothing here does I/O (but [`testing`], which serves tests). Every value that crosses the API boundary is parsed
//! into one of these types exactly once ("parse, don't validate"), and data
//! read back from storage goes through the same parsers.
//!
//! # Layout
//! - [`diag`]: what a tunnel says about itself: failure kinds and their
//!   plain explanations, up/down events, traffic counters.
//! - [`id`]: unified resource ids (`vpc-xxxxxxxx`, ...) and id references that
//!   also accept the legacy numeric form.
//! - [`row`]: [`row::RowId`], the database id of a row, typed by its kind
//!   (`VpcRowId`, `TaskId`, `GatewayNodeId`, ...).
//! - [`secret`]: [`secret::Secret`], a redacting, zeroizing, constant-time
//!   comparable string used for pre-shared keys and API secret keys.
//! - [`net`]: CIDRs that remember how the caller wrote them, FQDNs, peer
//!   address rules.
//! - [`vpn`]: IKE/IPsec enumerations with their API spellings and defaults,
//!   SPD rules, connection and task status codes, and [`vpn::TunnelSpec`], the
//!   complete desired state handed to a data-plane driver.
//! - [`testing`]: the one rule for tests that cannot run here ([`testing::in_ci`],
//!   [`testing::skip`]).

pub mod diag;
pub mod id;
pub mod net;
pub mod row;
pub mod secret;
pub mod testing;
pub mod vpn;

pub use id::{IdRef, UserGwId, VpcId, VpnConnId, VpnGwId};
pub use net::{Cidr, Fqdn};
pub use row::{
    AccountId, GatewayNodeId, RowId, TaskId, UserGwRowId, VpcRowId, VpnConnRowId, VpnGwRowId,
};
pub use secret::Secret;
pub use vpn::*;
