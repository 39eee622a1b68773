//! vpcd: a VPN control plane that serves the Tencent Cloud VPC API, v2 and
//! 3.0, over one world of resources.
//!
//! The crate reads top-down. A request goes `http` -> [`v2`] or [`v3`] (the
//! wire protocols) -> `ops` (the operation, protocol-free) -> the store, and a
//! change becomes a task that the `background` side applies to the data
//! plane. The API side sees only `api::ApiState`; the background side
//! never calls back into it; [`server`] wires the two. No module imports a
//! module that imports it back (`tests/module_graph.rs` checks).
//!
//! # Layout
//! - `http`: the `/v2/index.php`, `/` (API 3.0) and `/healthz` endpoints
//!   (the only module that knows HTTP).
//! - [`v2`]: the v2 adapter: common parameters, signature and replay
//!   checks, the action table, flat parameter decoding, each action's
//!   parsing and rendering, the envelope.
//! - [`v3`]: the API 3.0 adapter (`/`): TC3 and form signatures, JSON and
//!   flattened parameters, its action table, each action's parsing and
//!   rendering, the `{"Response": ...}` envelope.
//! - `regions`: one region namespace for both protocols.
//! - `ops`: one typed request and result per operation, and the domain
//!   rules every protocol shares.
//! - `error`: the one table of error codes, and the API error type.
//! - `api`: the narrow state of the API side.
//! - `background`: the task engine, gateway-node drivers, reconciliation,
//!   `netStatus` following, cluster membership and gateway-node leases.
//! - [`server`]: `vpcd serve`: wiring, start-up and graceful shutdown.
//! - `settings`, `clock`, `placement`: API tunables, the injectable
//!   clock, where new VPN gateways go.
//! - [`client`]: `vpcd call`; [`admin`]: `vpcd admin`; `tls`: the HTTPS
//!   certificate.
//! - `conn_guard`: the cap on connections and the idle timeout.
//! - `data_dir`: owner-only modes for the data directory and its secrets.
//! - `rate_limit`: the per-account request rate limit.
//! - `log_safe`: attacker-controlled text in log lines.
//! - `metrics`: `/metrics` on its own listener (`--metrics`).
//! - `request_id`: one id per request, in its log lines and (API 3.0) its
//!   answer.
//! - `console`: the web console at `/console/` (sign-in, sessions, pages,
//!   forms through the v2 decoding and the same operations).
//!
//! The crate's interface is small: what the `vpcd` binary and the
//! integration tests use ([`server`], [`Settings`], [`client`], [`admin`],
//! [`v2::Action`], [`v3::Action`], [`MemberInfo`], [`Regions`], [`RateLimit`]). Everything else is `pub(crate)`.

pub mod admin;
pub(crate) mod answer;
pub(crate) mod api;
pub(crate) mod background;
pub mod client;
pub(crate) mod clock;
pub(crate) mod conn_guard;
pub(crate) mod console;
pub(crate) mod data_dir;
pub(crate) mod error;
pub(crate) mod http;
pub(crate) mod log_safe;
pub(crate) mod metrics;
pub(crate) mod ops;
pub(crate) mod placement;
pub(crate) mod rate_limit;
pub(crate) mod regions;
pub(crate) mod replay;
pub(crate) mod request_id;
pub mod server;
pub(crate) mod settings;
pub(crate) mod storage_health;
pub(crate) mod tls;
pub mod v2;
pub mod v3;

pub use background::cluster::MemberInfo;
pub use rate_limit::RateLimit;
pub use regions::Regions;
pub use settings::{ConsoleSettings, Settings};
