//! Whether the storage takes writes now, as `/readyz` reports it and the
//! log tells it: once per episode, not once per refused request.
//!
//! An episode starts with the first refusal for a storage fault (a request
//! answered `StorageUnavailable`, or a failed heartbeat write) and ends with
//! the next write that commits: a heartbeat, every
//! `--heartbeat-interval-ms`, so readiness returns within one interval of
//! the cause going away (the requests themselves do not wait for that: the
//! store takes the next write as soon as it can). Each end of an episode is
//! one log line; the refusals in between only count.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::clock::Clock;

/// Shared by the API adapters and the heartbeat.
#[derive(Clone)]
pub(crate) struct StorageHealth {
    inner: Arc<Inner>,
}

struct Inner {
    clock: Clock,
    /// The start of the current episode (unix seconds), `None` while the
    /// storage takes writes.
    since: Mutex<Option<i64>>,
    /// Refusals in the current episode.
    refused: AtomicU64,
}

/// What `/readyz` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Readiness {
    Ready,
    /// The storage refuses writes since this unix time.
    NotWritable {
        since: i64,
    },
}

impl StorageHealth {
    pub(crate) fn new(clock: Clock) -> Self {
        StorageHealth {
            inner: Arc::new(Inner {
                clock,
                since: Mutex::new(None),
                refused: AtomicU64::new(0),
            }),
        }
    }

    fn since(&self) -> std::sync::MutexGuard<'_, Option<i64>> {
        self.inner.since.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A write was refused because the storage cannot take it. `cause` is
    /// the engine's text (it may name files: the log only, never a client).
    pub(crate) fn refused(&self, cause: Option<&str>) {
        self.inner.refused.fetch_add(1, Ordering::Relaxed);
        let mut since = self.since();
        if since.is_none() {
            *since = Some(self.inner.clock.now());
            tracing::error!(
                cause = cause.unwrap_or("-"),
                "storage not writable: writes are answered StorageUnavailable until it recovers \
                 (reads go on); logged once for this episode"
            );
        }
    }

    /// A write committed: the episode, if any, is over.
    pub(crate) fn wrote(&self) {
        let mut since = self.since();
        if let Some(start) = since.take() {
            let refused = self.inner.refused.swap(0, Ordering::Relaxed);
            tracing::warn!(
                seconds = self.inner.clock.now() - start,
                refused,
                "storage writable again"
            );
        }
    }

    pub(crate) fn readiness(&self) -> Readiness {
        match *self.since() {
            None => Readiness::Ready,
            Some(since) => Readiness::NotWritable { since },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_episode_runs_from_the_first_refusal_to_the_next_write() {
        let clock = Clock::default();
        let h = StorageHealth::new(clock.clone());
        assert_eq!(h.readiness(), Readiness::Ready);
        h.wrote();
        assert_eq!(h.readiness(), Readiness::Ready);
        h.refused(Some("disk full"));
        let start = match h.readiness() {
            Readiness::NotWritable { since } => since,
            Readiness::Ready => panic!("a refusal starts an episode"),
        };
        clock.advance(5);
        h.refused(None);
        // The episode keeps its start.
        assert_eq!(h.readiness(), Readiness::NotWritable { since: start });
        assert_eq!(h.inner.refused.load(Ordering::Relaxed), 2);
        h.wrote();
        assert_eq!(h.readiness(), Readiness::Ready);
        assert_eq!(h.inner.refused.load(Ordering::Relaxed), 0);
        h.refused(None);
        match h.readiness() {
            Readiness::NotWritable { since } => assert!(since >= start + 5),
            Readiness::Ready => panic!("a refusal after the episode starts a new one"),
        }
    }
}
