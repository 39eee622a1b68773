//! Tunables of the API side.

use std::time::Duration;

use ipnet::IpNet;
use vpcd_store::Limits;

use crate::rate_limit::RateLimit;
use crate::regions::Regions;

/// Tunables of the API side; all are `vpcd serve` flags.
#[derive(Debug, Clone)]
pub struct Settings {
    pub limits: Limits,
    /// Accepted distance between a request's Timestamp and the server clock.
    pub timestamp_window_secs: i64,
    /// Public addresses handed to VPN gateways that have no gateway node.
    pub gw_address_pool: IpNet,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// The regions served, in both protocols' spellings.
    pub regions: Regions,
    /// How long a client may take to send a request's body, once its
    /// headers are in.
    pub body_read_timeout: Duration,
    /// How long a request may take from its headers to its answer (body
    /// included); past it the client gets an error envelope.
    pub request_timeout: Duration,
    /// Each account's request rate.
    pub rate_limit: RateLimit,
    /// The web console (`/console/`).
    pub console: ConsoleSettings,
}

/// The web console's tunables (`--console`, `--console-session-secs`).
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    /// Whether `/console/` is served.
    pub enabled: bool,
    /// How long a sign-in lasts.
    pub session_ttl: Duration,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        ConsoleSettings {
            enabled: true,
            // 12 hours: a working day, not a week.
            session_ttl: Duration::from_secs(12 * 3600),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            limits: Limits::default(),
            timestamp_window_secs: 300,
            gw_address_pool: "203.0.113.0/24".parse().expect("valid pool"),
            max_body_bytes: 64 * 1024,
            regions: Regions::default(),
            body_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            rate_limit: RateLimit::default(),
            console: ConsoleSettings::default(),
        }
    }
}
