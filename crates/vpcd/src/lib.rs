//! vpcd: a VPN control plane that serves the Tencent Cloud VPC API v2.
//!
//! # Layout
//! - [`http`]: the `/v2/index.php` and `/healthz` endpoints (the only module
//!   that knows HTTP).
//! - [`protocol`]: common parameters, signature, replay checks, dispatch and
//!   the JSON envelope.
//! - [`params`]: decoding flat `key.n.sub=value` parameters.
//! - [`actions`]: one function per Action; request parsing and answers.
//! - [`error`]: the API error type and its code table.
//! - [`engine`]: the task worker applying connection tasks to the data plane.
//! - [`cluster`]: heartbeats and gateway node leases when several vpcd
//!   processes share one database.
//! - [`server`]: `vpcd serve` wiring, reconciliation and health polling.
//! - [`client`]: `vpcd call`.
//! - [`admin`]: `vpcd admin`.
//! - `data_dir`: owner-only modes for the data directory and its secrets.
//! - `log_safe`: attacker-controlled text in log lines.

pub mod actions;
pub mod admin;
pub mod app;
pub mod client;
pub mod cluster;
pub(crate) mod data_dir;
pub mod engine;
pub mod error;
pub mod http;
pub(crate) mod log_safe;
pub mod params;
pub mod protocol;
pub mod server;
pub mod tls;
