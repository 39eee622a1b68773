//! The state the API side (HTTP, protocol adapters, operations) sees.
//!
//! It is deliberately narrow: the API side reads and writes the store, and
//! tells the background side that a task is waiting through [`ApiState::tasks`];
//! it never sees the task engine, the data-plane drivers or the cluster.

use crate::storage_health::StorageHealth;
use std::sync::Arc;

use tokio::sync::Notify;
use vpcd_store::{ApiKey, Store};

use crate::error::{ApiError, ApiResult, ErrorCode};

use crate::clock::Clock;
use crate::placement::Placement;
use crate::rate_limit::RateLimiter;
use crate::settings::Settings;

#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) clock: Clock,
    pub(crate) placement: Arc<Placement>,
    /// Notified after a task row commits, so a worker picks it up at once.
    pub(crate) tasks: Arc<Notify>,
    /// Whether the storage takes writes (`/readyz`, the once-per-episode log).
    pub(crate) storage: StorageHealth,
    /// Each account's request rate.
    pub(crate) rate: Arc<RateLimiter>,
}

impl ApiState {
    /// After the signature: the key must be enabled, the Timestamp inside
    /// the window and the account within its request rate. Returns the
    /// server's now.
    pub(crate) fn fresh(&self, key: &ApiKey, ts: i64, param: &str) -> ApiResult<i64> {
        if key.disabled {
            return Err(ApiError::wire(
                ErrorCode::SecretIdDisabled,
                "SecretId",
                "the key or its account is disabled",
            ));
        }
        let now = self.clock.now();
        let window = self.settings.timestamp_window_secs;
        if (now - ts).abs() > window {
            return Err(ApiError::wire(
                ErrorCode::SignatureExpire,
                param,
                format!("more than {window} seconds away from the server's clock"),
            ));
        }
        self.rate.admit(key.account_id)?;
        Ok(now)
    }
}
