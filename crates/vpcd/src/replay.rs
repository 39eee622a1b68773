//! Replay protection: each Nonce (and each TC3 change's signature digest)
//! is accepted once per SecretId while its Timestamp is inside the window.
//!
//! Every sighting is first checked against an in-memory set of the nonces
//! this process accepted, kept until their Timestamp leaves the window (a
//! request with Timestamp `T` is refused on the Timestamp alone once the
//! server's clock passes `T + window`). A replay to the same process never
//! reaches the database. Whether a new nonce also needs the database:
//!
//! - **Shared store (PostgreSQL, several nodes).** Always: the nonce is
//!   inserted in the shared table before the request runs, so a replay sent
//!   to another node is refused there.
//! - **SQLite (one node).** A read accepted on the memory check alone is
//!   answered at once; its nonce is written behind to the nonce file in
//!   batches, off the request path (appended to a table of reads' nonces
//!   that nothing looks up by key, so a batch writes a few pages, not one
//!   per nonce), and a restarted process loads the window's nonces from
//!   that file before it serves. A change (any action
//!   that is not a read) is still inserted before it runs, and so is a
//!   request whose Timestamp is early enough to be a replay of one accepted
//!   while the set was full (see [`MAX_REMEMBERED`]).
//!
//! So a replayed change is always refused, on every node; a replayed read
//! is refused except, on SQLite, within the first moments after a crash of
//! the process (`kill -9`, power loss): the nonces of reads accepted after
//! the last write-behind batch committed (see [`WRITE_BEHIND_EVERY`]) are
//! forgotten, and such a read can be answered once more within its
//! Timestamp window. A replayed read changes nothing.
//!
//! **The nonce store cannot write.** A change is refused (the store's error:
//! 5200 `StorageUnavailable` when the storage is full or unreachable). A read
//! is answered on the memory check alone: replay protection for reads falls
//! back to this process for as long as the fault lasts (logged once per
//! episode), and reads keep working while the database cannot take writes.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::Notify;
use vpcd_store::{Store, StoreError, Timestamp};

use crate::clock::Clock;

/// Most nonces held in memory (about 20 bytes each). Past it, new nonces
/// go to the database on the request path until the window has turned over.
pub(crate) const MAX_REMEMBERED: usize = 1 << 21;

/// How long reads' nonces gather before they are written behind together.
const WRITE_BEHIND_EVERY: std::time::Duration = std::time::Duration::from_millis(20);

/// Seconds between sweeps of expired entries.
const PRUNE_EVERY_SECS: i64 = 10;

/// What became of one sighting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// First sighting: go on.
    Fresh,
    /// Seen before within the window.
    Replay,
}

/// What the replay check needs of the store (its three nonce calls), so a
/// test can put a failing one in its place.
#[async_trait]
pub(crate) trait NonceStore: Send + Sync + 'static {
    async fn remember_nonce(
        &self,
        secret_id: &str,
        nonce: &str,
        now: Timestamp,
        not_before: Timestamp,
    ) -> Result<bool, StoreError>;
    async fn record_nonces(
        &self,
        nonces: &[(String, String)],
        now: Timestamp,
        not_before: Timestamp,
    ) -> Result<(), StoreError>;
    async fn recent_nonces(
        &self,
        not_before: Timestamp,
        limit: usize,
    ) -> Result<Vec<(String, String, Timestamp)>, StoreError>;
}

#[async_trait]
impl NonceStore for Arc<dyn Store> {
    async fn remember_nonce(
        &self,
        secret_id: &str,
        nonce: &str,
        now: Timestamp,
        not_before: Timestamp,
    ) -> Result<bool, StoreError> {
        (**self)
            .remember_nonce(secret_id, nonce, now, not_before)
            .await
    }
    async fn record_nonces(
        &self,
        nonces: &[(String, String)],
        now: Timestamp,
        not_before: Timestamp,
    ) -> Result<(), StoreError> {
        (**self).record_nonces(nonces, now, not_before).await
    }
    async fn recent_nonces(
        &self,
        not_before: Timestamp,
        limit: usize,
    ) -> Result<Vec<(String, String, Timestamp)>, StoreError> {
        (**self).recent_nonces(not_before, limit).await
    }
}

pub(crate) struct Replay {
    store: Box<dyn NonceStore>,
    /// Other processes share the store's nonces (PostgreSQL).
    shared: bool,
    window: i64,
    clock: Clock,
    keys: RandomState,
    state: Mutex<Memory>,
    /// Nonces accepted on the memory check alone, to be written behind.
    behind: Mutex<Vec<(String, String)>>,
    wake_writer: Notify,
    /// The nonce store failed and has not succeeded since (log once).
    failing: AtomicBool,
}

struct Memory {
    /// Keyed 64-bit fingerprint of (SecretId, nonce) -> last second its
    /// Timestamp is inside the window. The keys are random per process, so
    /// nobody can aim at a collision; a chance one refuses an honest request
    /// (never accepts a replay).
    seen: HashMap<u64, i64, BuildHasherDefault<Prehashed>>,
    /// The last time a nonce may have been accepted without being in `seen`
    /// (the set was full).
    blind_until: i64,
    next_prune: i64,
}

impl Replay {
    /// The replay check of a store that other processes share (`shared`)
    /// or that this process serves alone; on the latter, the nonces of the
    /// last two windows are loaded first (a previous process's).
    pub(crate) async fn start(
        store: impl NonceStore,
        shared: bool,
        window: i64,
        clock: Clock,
    ) -> Result<Arc<Replay>, StoreError> {
        let now = clock.now();
        let replay = Replay {
            store: Box::new(store),
            shared,
            window,
            clock,
            keys: RandomState::new(),
            state: Mutex::new(Memory {
                seen: HashMap::default(),
                blind_until: i64::MIN / 2,
                next_prune: now + PRUNE_EVERY_SECS,
            }),
            behind: Mutex::new(Vec::new()),
            wake_writer: Notify::new(),
            failing: AtomicBool::new(false),
        };
        if !shared {
            let recent = replay
                .store
                .recent_nonces(now - 2 * window, MAX_REMEMBERED + 1)
                .await?;
            let mut m = replay.state.lock().unwrap_or_else(|p| p.into_inner());
            if recent.len() > MAX_REMEMBERED {
                m.blind_until = now;
            }
            for (secret_id, nonce, seen_at) in recent.iter().take(MAX_REMEMBERED) {
                // Its Timestamp was at most `seen_at + window`.
                let until = seen_at + 2 * window;
                m.seen.insert(
                    replay.keys.hash_one((secret_id.as_str(), nonce.as_str())),
                    until,
                );
            }
        }
        Ok(Arc::new(replay))
    }

    /// Accept `nonce` once for `secret_id`. `ts` is the request's Timestamp
    /// (already inside the window), `now` the server's clock, `writes`
    /// whether the action changes anything.
    pub(crate) async fn check(
        &self,
        secret_id: &str,
        nonce: &str,
        ts: i64,
        now: i64,
        writes: bool,
    ) -> Result<Seen, StoreError> {
        let fingerprint = self.keys.hash_one((secret_id, nonce));
        let (in_memory, blind) = {
            let mut m = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if now >= m.next_prune {
                m.seen.retain(|_, until| *until >= now);
                m.next_prune = now + PRUNE_EVERY_SECS;
            }
            if m.seen.get(&fingerprint).is_some_and(|until| *until >= now) {
                return Ok(Seen::Replay);
            }
            let in_memory = m.seen.len() < MAX_REMEMBERED || m.seen.contains_key(&fingerprint);
            if in_memory {
                m.seen.insert(fingerprint, ts + self.window);
            } else {
                m.blind_until = now;
            }
            // The earlier sighting of a replay had |ts - then| <= window.
            (in_memory, ts <= m.blind_until + self.window)
        };
        if in_memory && !self.shared && !writes && !blind {
            self.behind
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((secret_id.to_owned(), nonce.to_owned()));
            self.wake_writer.notify_one();
            return Ok(Seen::Fresh);
        }
        match self
            .store
            .remember_nonce(secret_id, nonce, now, now - 2 * self.window)
            .await
        {
            Ok(fresh) => {
                self.healthy();
                Ok(if fresh { Seen::Fresh } else { Seen::Replay })
            }
            Err(e) if writes || !in_memory => {
                // Refused: the client may retry with the same nonce.
                if in_memory {
                    let mut m = self.state.lock().unwrap_or_else(|p| p.into_inner());
                    m.seen.remove(&fingerprint);
                }
                Err(e)
            }
            Err(e) => {
                self.failed(&e);
                Ok(Seen::Fresh)
            }
        }
    }

    /// Write behind until `stop` is true, then flush what is queued. A
    /// batch gathers for [`WRITE_BEHIND_EVERY`] after its first nonce, so a
    /// busy process commits at most about fifty times a second, not once or
    /// more per request (each commit writes its pages, however few nonces it
    /// holds).
    pub(crate) async fn write_behind(
        self: Arc<Self>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                () = self.wake_writer.notified() => {}
                _ = stop.changed() => {}
            }
            if !*stop.borrow() {
                tokio::select! {
                    () = tokio::time::sleep(WRITE_BEHIND_EVERY) => {}
                    _ = stop.changed() => {}
                }
            }
            self.flush().await;
            if *stop.borrow() {
                return;
            }
        }
    }

    /// Write the queued nonces now.
    pub(crate) async fn flush(&self) {
        let batch = std::mem::take(&mut *self.behind.lock().unwrap_or_else(|p| p.into_inner()));
        if batch.is_empty() {
            return;
        }
        let now = self.clock.now();
        match self
            .store
            .record_nonces(&batch, now, now - 2 * self.window)
            .await
        {
            Ok(()) => self.healthy(),
            Err(e) => self.failed(&e),
        }
    }

    fn healthy(&self) {
        if self.failing.swap(false, Ordering::Relaxed) {
            tracing::info!("the nonce store takes writes again");
        }
    }

    fn failed(&self, e: &StoreError) {
        if !self.failing.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %e, "the nonce store cannot take writes; reads are checked against this process's memory only until it can");
        }
    }

    #[cfg(test)]
    fn queued(&self) -> usize {
        self.behind.lock().unwrap().len()
    }
}

/// The map's keys are already keyed hashes: use them as they are.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    const WINDOW: i64 = 300;

    async fn sqlite() -> (tempfile::TempDir, Arc<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vpcd.db");
        let store = vpcd_store::connect(path.to_str().unwrap(), vpcd_store::testing::master_key())
            .await
            .unwrap();
        (dir, store)
    }

    /// A store whose nonce writes fail while `down` is set, and that counts
    /// the nonces it was asked about on the request path.
    #[derive(Clone)]
    struct Flaky {
        inner: Arc<dyn Store>,
        down: Arc<AtomicBool>,
        asked: Arc<AtomicUsize>,
    }

    #[async_trait]
    impl NonceStore for Flaky {
        async fn remember_nonce(
            &self,
            secret_id: &str,
            nonce: &str,
            now: Timestamp,
            not_before: Timestamp,
        ) -> Result<bool, StoreError> {
            self.asked.fetch_add(1, Ordering::Relaxed);
            if self.down.load(Ordering::Relaxed) {
                return Err(StoreError::StorageUnavailable("disk full".into()));
            }
            self.inner
                .remember_nonce(secret_id, nonce, now, not_before)
                .await
        }
        async fn record_nonces(
            &self,
            nonces: &[(String, String)],
            now: Timestamp,
            not_before: Timestamp,
        ) -> Result<(), StoreError> {
            if self.down.load(Ordering::Relaxed) {
                return Err(StoreError::StorageUnavailable("disk full".into()));
            }
            self.inner.record_nonces(nonces, now, not_before).await
        }
        async fn recent_nonces(
            &self,
            not_before: Timestamp,
            limit: usize,
        ) -> Result<Vec<(String, String, Timestamp)>, StoreError> {
            self.inner.recent_nonces(not_before, limit).await
        }
    }

    fn flaky(inner: &Arc<dyn Store>) -> Flaky {
        Flaky {
            inner: inner.clone(),
            down: Arc::default(),
            asked: Arc::default(),
        }
    }

    /// On one node (SQLite) a read is checked in memory and written behind;
    /// a restarted process loads what was written and still refuses it.
    #[tokio::test]
    async fn single_node_reads_skip_the_store_and_survive_a_restart() {
        let (_dir, store) = sqlite().await;
        let clock = Clock::default();
        let now = clock.now();
        let backing = flaky(&store);
        let replay = Replay::start(backing.clone(), false, WINDOW, clock.clone())
            .await
            .unwrap();
        let read = replay.check("AKIDa", "1", now, now, false).await.unwrap();
        assert_eq!(read, Seen::Fresh);
        assert_eq!(
            backing.asked.load(Ordering::Relaxed),
            0,
            "no trip to the store"
        );
        assert_eq!(replay.queued(), 1);
        assert_eq!(
            replay.check("AKIDa", "1", now, now, false).await.unwrap(),
            Seen::Replay
        );
        // Same nonce, other key: fresh.
        assert_eq!(
            replay.check("AKIDb", "1", now, now, false).await.unwrap(),
            Seen::Fresh
        );
        replay.flush().await;
        assert_eq!(replay.queued(), 0);

        // A change is recorded in the store before it runs.
        let write = replay.check("AKIDa", "2", now, now, true).await.unwrap();
        assert_eq!(write, Seen::Fresh);
        assert_eq!(backing.asked.load(Ordering::Relaxed), 1);
        assert_eq!(replay.queued(), 0);

        // The next process refuses all three, from memory.
        let next = flaky(&store);
        let again = Replay::start(next.clone(), false, WINDOW, clock.clone())
            .await
            .unwrap();
        for (id, nonce) in [("AKIDa", "1"), ("AKIDb", "1"), ("AKIDa", "2")] {
            for writes in [false, true] {
                assert_eq!(
                    again.check(id, nonce, now, now, writes).await.unwrap(),
                    Seen::Replay,
                    "{id} {nonce}"
                );
            }
        }
        assert_eq!(next.asked.load(Ordering::Relaxed), 0);
        // And what the write-behind recorded is in the store itself.
        let recent = store.recent_nonces(now - 600, 10).await.unwrap();
        assert!(recent.iter().any(|(id, n, _)| id == "AKIDb" && n == "1"));
    }

    /// With a shared store (PostgreSQL) every new nonce goes to the store
    /// first, so another node sharing it refuses the replay; a replay to the
    /// same node is refused from memory.
    #[tokio::test]
    async fn shared_store_is_asked_for_every_new_nonce() {
        let (_dir, store) = sqlite().await;
        let clock = Clock::default();
        let now = clock.now();
        let (a_store, b_store) = (flaky(&store), flaky(&store));
        let a = Replay::start(a_store.clone(), true, WINDOW, clock.clone())
            .await
            .unwrap();
        let b = Replay::start(b_store.clone(), true, WINDOW, clock.clone())
            .await
            .unwrap();
        assert_eq!(
            a.check("AKIDa", "9", now, now, false).await.unwrap(),
            Seen::Fresh
        );
        assert_eq!(a_store.asked.load(Ordering::Relaxed), 1);
        assert_eq!(a.queued(), 0);
        assert_eq!(
            b.check("AKIDa", "9", now, now, false).await.unwrap(),
            Seen::Replay
        );
        assert_eq!(
            a.check("AKIDa", "9", now, now, false).await.unwrap(),
            Seen::Replay
        );
        assert_eq!(
            a_store.asked.load(Ordering::Relaxed),
            1,
            "refused from memory"
        );
    }

    /// The nonce store cannot write: a read is answered on the memory check
    /// (and a replay of it to this process is still refused), a change is
    /// refused with the store's error and may be sent again once it can.
    #[tokio::test]
    async fn reads_go_on_and_changes_stop_while_the_nonce_store_cannot_write() {
        let (_dir, store) = sqlite().await;
        let clock = Clock::default();
        let now = clock.now();
        for shared in [true, false] {
            let backing = flaky(&store);
            let replay = Replay::start(backing.clone(), shared, WINDOW, clock.clone())
                .await
                .unwrap();
            backing.down.store(true, Ordering::Relaxed);
            let id = if shared { "AKIDshared" } else { "AKIDone" };
            assert_eq!(
                replay.check(id, "1", now, now, false).await.unwrap(),
                Seen::Fresh
            );
            assert_eq!(
                replay.check(id, "1", now, now, false).await.unwrap(),
                Seen::Replay
            );
            let refused = replay.check(id, "2", now, now, true).await;
            assert!(
                matches!(refused, Err(StoreError::StorageUnavailable(_))),
                "{refused:?}"
            );
            // The write-behind fails too, and is not retried forever.
            replay.flush().await;
            assert_eq!(replay.queued(), 0);
            backing.down.store(false, Ordering::Relaxed);
            assert_eq!(
                replay.check(id, "2", now, now, true).await.unwrap(),
                Seen::Fresh
            );
            assert_eq!(
                replay.check(id, "2", now, now, true).await.unwrap(),
                Seen::Replay
            );
        }
    }

    /// A nonce is remembered until its Timestamp leaves the window, and
    /// forgotten after (the Timestamp check refuses it by then).
    #[tokio::test]
    async fn entries_expire_with_their_timestamp() {
        let (_dir, store) = sqlite().await;
        let clock = Clock::default();
        let now = clock.now();
        let replay = Replay::start(flaky(&store), false, WINDOW, clock.clone())
            .await
            .unwrap();
        let ts = now - 100;
        assert_eq!(
            replay.check("AKIDa", "5", ts, now, false).await.unwrap(),
            Seen::Fresh
        );
        let edge = ts + WINDOW;
        assert_eq!(
            replay.check("AKIDa", "5", ts, edge, false).await.unwrap(),
            Seen::Replay
        );
        let later = edge + PRUNE_EVERY_SECS + 1;
        assert_eq!(
            replay
                .check("AKIDa", "6", later, later, false)
                .await
                .unwrap(),
            Seen::Fresh
        );
        let m = replay.state.lock().unwrap();
        assert_eq!(m.seen.len(), 1, "the expired entry was swept");
    }
}
