//! The strongSwan data plane: charon driven over VICI.
//!
//! # Layout
//! - [`render`]: pure `TunnelSpec` -> VICI messages (`load-shared`,
//!   `load-conn`), plus the mirrored connection for the customer's side.
//!   Public only for the benchmarks, which time [`render::load_conn`] and
//!   [`render::load_shared`].
//! - `diagnose`: charon's log lines to plain reasons (pure), for
//!   [`StrongSwanDriver::watch_all`].
//! - `vici`: a small VICI client (framing; encoding by `serde_vici`).
//! - [`StrongSwanDriver`]: the [`crate::VpnDriver`] over that client, with
//!   [`StrongSwanDriver::watch`] for live net status.
//!
//! # Deployment notes
//! charon needs the `vici` plugin, and for aggressive-mode tunnels (where it
//! may answer as responder)
//! `charon.i_dont_care_about_security_and_use_aggressive_mode_psk = yes`.

mod diagnose;
mod driver;
pub mod render;
mod vici;

pub use diagnose::Observation;
#[cfg(any(test, feature = "testbed"))]
pub use driver::ConnInfo;
pub use driver::{ChildSaInfo, IkeSaInfo, StrongSwanDriver, Watched};
pub use vici::EndpointError;
