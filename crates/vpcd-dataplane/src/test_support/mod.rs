//! Test doubles and fixtures for this crate's tests and the server's.
//!
//! # Layout
//! - `spec`: ready-made [`TunnelSpec`](vpcd_types::TunnelSpec)s on the test
//!   bed's addresses.
//! - `recording`: [`RecordingDriver`], a driver that keeps what it is told
//!   and fails on demand.

mod recording;
mod spec;

pub use recording::RecordingDriver;
pub use spec::{
    rule, spec_between, spec_custom, spec_default, spec_ikev2_gcm, spec_null_esp, CLOUD_ADDR,
    PEER_ADDR,
};
