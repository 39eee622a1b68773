//! The state the API side (HTTP, protocol adapters, operations) sees.
//!
//! It is deliberately narrow: the API side reads and writes the store, and
//! tells the background side that a task is waiting through [`ApiState::tasks`];
//! it never sees the task engine, the data-plane drivers or the cluster.

use crate::storage_health::StorageHealth;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use vpcd_store::{ApiKey, Store};

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::replay::{Replay, Seen};

use crate::clock::Clock;
use crate::metrics::RequestMetrics;
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
    pub(crate) keys: Arc<KeyCache>,
    pub(crate) replay: Arc<Replay>,
    /// Requests answered, for `/metrics`.
    pub(crate) requests: RequestMetrics,
}

/// How long a key read from the store is used without reading it again.
/// A key or account disabled (`vpcd admin`, on any node sharing the
/// database) is refused by every node from at most this long after the
/// change commits: an entry is stamped before its read starts, so it never
/// outlives the change by more. Re-reading one row per key twice a second
/// costs nothing; LISTEN/NOTIFY would need PostgreSQL and would still need a
/// bound for a missed notification, which is this one.
pub(crate) const KEY_TTL: Duration = Duration::from_millis(500);

/// Keys can only enter once the store found them, so the cache holds at
/// most the keys in use; this bounds it anyway.
const MAX_CACHED_KEYS: usize = 100_000;

/// The keys recently read from the store, by SecretId. An unknown SecretId is
/// not cached: a key just created works at once.
#[derive(Default)]
pub(crate) struct KeyCache {
    entries: Mutex<HashMap<String, (Instant, Arc<ApiKey>)>>,
}

impl KeyCache {
    /// The cached key, if it was read less than [`KEY_TTL`] before `now`.
    fn get(&self, secret_id: &str, now: Instant) -> Option<Arc<ApiKey>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(secret_id)
            .filter(|(read_at, _)| now.saturating_duration_since(*read_at) < KEY_TTL)
            .map(|(_, key)| key.clone())
    }

    /// Remember `key` (`None`: it no longer exists) as read at `read_at`,
    /// the moment its read started.
    fn put(&self, secret_id: &str, key: Option<Arc<ApiKey>>, read_at: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let Some(key) = key else {
            entries.remove(secret_id);
            return;
        };
        if entries.len() >= MAX_CACHED_KEYS {
            entries.retain(|_, (at, _)| read_at.saturating_duration_since(*at) < KEY_TTL);
            if entries.len() >= MAX_CACHED_KEYS {
                entries.clear();
            }
        }
        entries.insert(secret_id.to_owned(), (read_at, key));
    }
}

impl ApiState {
    /// The key of `secret_id`, from the cache when it was read less than
    /// [`KEY_TTL`] ago, else from the store.
    pub(crate) async fn key(&self, secret_id: &str) -> ApiResult<Option<Arc<ApiKey>>> {
        let read_at = Instant::now();
        if let Some(key) = self.keys.get(secret_id, read_at) {
            return Ok(Some(key));
        }
        let key = self
            .store
            .find_key(secret_id)
            .await
            .map_err(|e| ApiError::internal(format!("looking up a SecretId: {e}")))?
            .map(Arc::new);
        self.keys.put(secret_id, key.clone(), read_at);
        Ok(key)
    }

    /// Accept `nonce` once for the key within the window (see
    /// [`crate::replay`]); `ts` is the request's Timestamp, `now` what
    /// [`ApiState::fresh`] returned, `writes` whether the action changes
    /// anything.
    pub(crate) async fn nonce(
        &self,
        key: &ApiKey,
        nonce: &str,
        ts: i64,
        now: i64,
        writes: bool,
    ) -> ApiResult<()> {
        match self
            .replay
            .check(&key.secret_id, nonce, ts, now, writes)
            .await
        {
            Ok(Seen::Fresh) => Ok(()),
            Ok(Seen::Replay) => Err(ApiError::wire(
                ErrorCode::RequestReplay,
                "Nonce",
                "this Nonce was already used with this SecretId",
            )),
            Err(e) => Err(ApiError::from_nonce_store(e)),
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(disabled: bool) -> Option<Arc<ApiKey>> {
        Some(Arc::new(ApiKey {
            secret_id: "AKIDcache".into(),
            secret_key: vpcd_types::Secret::new("k"),
            account_id: vpcd_types::AccountId::new(1),
            disabled,
        }))
    }

    /// A key read at `t0` serves until just before `t0 + KEY_TTL`, never at
    /// or after it: a change committed after the read started is seen by
    /// every lookup from `KEY_TTL` later on.
    #[test]
    fn cached_keys_expire_after_the_ttl() {
        let cache = KeyCache::default();
        let t0 = Instant::now();
        assert!(cache.get("AKIDcache", t0).is_none());
        cache.put("AKIDcache", key(false), t0);
        let hit = cache.get("AKIDcache", t0 + KEY_TTL - Duration::from_millis(1));
        assert!(!hit.expect("cached").disabled);
        assert!(cache.get("AKIDcache", t0 + KEY_TTL).is_none());
        assert!(cache.get("AKIDother", t0).is_none());
        // A re-read replaces the entry; a key gone from the store leaves.
        cache.put("AKIDcache", key(true), t0 + KEY_TTL);
        assert!(cache.get("AKIDcache", t0 + KEY_TTL).unwrap().disabled);
        cache.put("AKIDcache", None, t0 + KEY_TTL);
        assert!(cache.get("AKIDcache", t0 + KEY_TTL).is_none());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = KeyCache::default();
        let t0 = Instant::now();
        for n in 0..MAX_CACHED_KEYS + 10 {
            cache.put(&format!("AKID{n}"), key(false), t0);
        }
        assert!(cache.entries.lock().unwrap().len() <= MAX_CACHED_KEYS);
    }
}
