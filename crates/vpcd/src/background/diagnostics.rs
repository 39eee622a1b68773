//! Recording what a driven gateway node's charon says about its tunnels, so
//! that any vpcd of the cluster can answer `DescribeVpnConnDiagnostics`
//! (`crate::ops::diagnostics` says why the database and not a live read).
//!
//! One task per driven node follows the driver's
//! [`watch_all`](StrongSwanDriver::watch_all) stream (failures in a fixed
//! vocabulary, up/down events with reasons) and samples the SAs' traffic
//! every `--diagnostics-interval-secs`. Writes are rare and batched:
//! - everything pending for the node goes in one transaction, at most every
//!   [`FLUSH`], and only when something is pending;
//! - a failure that repeats (charon retries every few seconds) is written
//!   again only when it changes or a minute has passed;
//! - a traffic sample is written only for tunnels whose counters (or SAs)
//!   changed since the last write, so an idle tunnel costs nothing.
//!
//! Before anything is written, a failure's details (proposal names, the
//! peer's identity: already allowlisted by the driver) are dropped if they
//! contain the connection's pre-shared key, whatever the peer sent.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;
use vpcd_dataplane::strongswan::{Observation, StrongSwanDriver, Watched};
use vpcd_store::{DiagnosticsBatch, LastFailure, Store, Traffic, TunnelEvent};
use vpcd_types::diag::FailureDetail;
use vpcd_types::{GatewayNodeId, Secret, VpnConnId};

use super::cluster::Cluster;
use crate::clock::Clock;

/// Pending observations are written at most this often.
pub(crate) const FLUSH: Duration = Duration::from_secs(2);
/// A failure that repeats unchanged is written again after this long.
const REFRESH_SECS: i64 = 60;
/// At most this many events wait for a write (the oldest are dropped
/// while the store refuses writes).
const PENDING_EVENTS_MAX: usize = 10_000;

/// What waits to be written, and what was written last.
#[derive(Default)]
struct Recorder {
    failures: HashMap<VpnConnId, (vpcd_types::diag::FailureKind, FailureDetail, i64)>,
    events: Vec<(VpnConnId, TunnelEvent)>,
    traffic: HashMap<VpnConnId, Option<Traffic>>,
    traffic_at: i64,
    written_failures: HashMap<VpnConnId, LastFailure>,
    written_traffic: HashMap<VpnConnId, Option<Traffic>>,
}

impl Recorder {
    fn observe(&mut self, o: Observation) {
        match o {
            Observation::Failure {
                conn,
                kind,
                detail,
                at,
            } => {
                self.failures.insert(conn, (kind, detail, at));
            }
            Observation::Event {
                conn,
                up,
                reason,
                at,
            } => {
                if up {
                    // A failure after this starts a new run.
                    self.written_failures.remove(&conn);
                }
                if self.events.len() >= PENDING_EVENTS_MAX {
                    self.events.remove(0);
                }
                self.events.push((conn, TunnelEvent { at, up, reason }));
            }
        }
    }

    /// A traffic sample of the node's tunnels with SAs (`now`): pending for
    /// each tunnel whose sample differs from the last one written.
    fn sample(&mut self, live: HashMap<VpnConnId, Traffic>, now: i64) {
        let mut changed: HashMap<VpnConnId, Option<Traffic>> = HashMap::new();
        for (conn, written) in &self.written_traffic {
            if written.is_some() && !live.contains_key(conn) {
                changed.insert(conn.clone(), None);
            }
        }
        for (conn, t) in live {
            if self.written_traffic.get(&conn) != Some(&Some(t)) {
                changed.insert(conn, Some(t));
            }
        }
        if !changed.is_empty() {
            self.traffic.extend(changed);
            self.traffic_at = now;
        }
    }

    fn is_empty(&self) -> bool {
        self.failures.is_empty() && self.events.is_empty() && self.traffic.is_empty()
    }

    /// The batch to write now (leaving out failures that repeat within
    /// [`REFRESH_SECS`]), or `None`.
    fn batch(&mut self) -> Option<DiagnosticsBatch> {
        let mut failures = Vec::new();
        for (conn, (kind, detail, at)) in self.failures.drain() {
            let f = match self.written_failures.get(&conn) {
                Some(w) if w.kind == kind && w.detail == detail => {
                    if at - w.last_at < REFRESH_SECS {
                        continue;
                    }
                    LastFailure {
                        last_at: at,
                        ..w.clone()
                    }
                }
                _ => LastFailure {
                    kind,
                    detail,
                    first_at: at,
                    last_at: at,
                },
            };
            failures.push((conn, f));
        }
        let batch = DiagnosticsBatch {
            failures,
            events: std::mem::take(&mut self.events),
            traffic: self.traffic.drain().collect(),
            traffic_at: self.traffic_at,
        };
        (!batch.is_empty()).then_some(batch)
    }

    /// `batch` is durable: remember what it holds.
    fn written(&mut self, batch: &DiagnosticsBatch) {
        for (conn, f) in &batch.failures {
            self.written_failures.insert(conn.clone(), f.clone());
        }
        for (conn, t) in &batch.traffic {
            self.written_traffic.insert(conn.clone(), *t);
        }
    }

    /// `batch` could not be written: keep its events and traffic for the
    /// next try (newer observations win); its failures come again anyway.
    fn failed(&mut self, batch: DiagnosticsBatch) {
        let mut events = batch.events;
        events.append(&mut self.events);
        let excess = events.len().saturating_sub(PENDING_EVENTS_MAX);
        events.drain(..excess);
        self.events = events;
        for (conn, t) in batch.traffic {
            self.traffic.entry(conn).or_insert(t);
        }
    }
}

/// Drop the details of `failures` that contain their connection's
/// pre-shared key (`keys`: each connection's key, exposed only for this
/// comparison).
fn without_keys(failures: &mut [(VpnConnId, LastFailure)], keys: &HashMap<VpnConnId, Secret>) {
    for (conn, f) in failures {
        let Some(key) = keys.get(conn) else { continue };
        let key = key.expose();
        let d = &mut f.detail;
        for field in [
            &mut d.peer_offered,
            &mut d.gateway_allows,
            &mut d.peer_identity,
        ] {
            if field.as_deref().is_some_and(|v| v.contains(key)) {
                *field = None;
            }
        }
    }
}

/// One driven node's recorder.
pub(crate) struct NodeRecorder {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Clock,
    pub(crate) cluster: Arc<Cluster>,
    pub(crate) node: GatewayNodeId,
    /// The lease tenure it records under.
    pub(crate) tenure: u64,
    pub(crate) driver: StrongSwanDriver,
    pub(crate) sample_every: Duration,
}

/// The per-node recorder task. Ends when the node's lease moves on (its new
/// holder records from then on) or at shutdown.
pub(crate) async fn follow(n: NodeRecorder, mut shutdown: watch::Receiver<bool>) {
    let NodeRecorder {
        store,
        clock,
        cluster,
        node,
        tenure,
        driver,
        sample_every,
    } = n;
    let mut stream = Box::pin(driver.watch_all());
    let mut rec = Recorder::default();
    let mut flush = tokio::time::interval(FLUSH);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sample = tokio::time::interval(sample_every);
    sample.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            w = stream.next() => match w {
                Some(Watched::Observed(o)) => rec.observe(o),
                Some(Watched::NetStatus(_)) => {}
                None => return,
            },
            _ = sample.tick() => match driver.traffic().await {
                Ok(live) => rec.sample(live, clock.now()),
                Err(e) => tracing::debug!(node = %node, error = %e, "traffic sample failed"),
            },
            _ = flush.tick() => {
                if cluster.tenure(node, clock.now()) != Some(tenure) {
                    return;
                }
                if rec.is_empty() {
                    continue;
                }
                let Some(mut batch) = rec.batch() else { continue };
                if batch.failures.iter().any(|(_, f)| !f.detail.is_empty()) {
                    match store.desired_conns(Some(node)).await {
                        Ok(conns) => {
                            let keys: HashMap<VpnConnId, Secret> = conns
                                .into_iter()
                                .map(|c| (c.un_id, c.settings.pre_shared_key))
                                .collect();
                            without_keys(&mut batch.failures, &keys);
                        }
                        Err(e) => {
                            // Cannot check: write the failures without details.
                            tracing::debug!(node = %node, error = %e, "listing the node's tunnels failed");
                            for (_, f) in &mut batch.failures {
                                f.detail = FailureDetail { stage: f.detail.stage, ..FailureDetail::default() };
                            }
                        }
                    }
                }
                match store.record_diagnostics(batch.clone()).await {
                    Ok(()) => rec.written(&batch),
                    Err(e) => {
                        tracing::warn!(node = %node, error = %e, "recording tunnel diagnostics failed; will retry");
                        rec.failed(batch);
                    }
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vpcd_types::diag::{EventReason, FailureKind};

    fn conn(n: u8) -> VpnConnId {
        format!("vpnx-test000{n}").parse().unwrap()
    }

    fn failure(c: u8, kind: FailureKind, at: i64) -> Observation {
        Observation::Failure {
            conn: conn(c),
            kind,
            detail: FailureDetail::default(),
            at,
        }
    }

    /// A failure charon repeats every few seconds is written once a minute;
    /// a new kind at once; after the tunnel came up, a new run.
    #[test]
    fn repeated_failures_are_written_rarely() {
        let mut r = Recorder::default();
        r.observe(failure(1, FailureKind::PskMismatch, 100));
        let b = r.batch().unwrap();
        assert_eq!(b.failures[0].1.first_at, 100);
        r.written(&b);
        for at in [103, 106, 130] {
            r.observe(failure(1, FailureKind::PskMismatch, at));
            assert_eq!(r.batch(), None, "at {at}");
        }
        r.observe(failure(1, FailureKind::PskMismatch, 161));
        let b = r.batch().unwrap();
        assert_eq!(
            (b.failures[0].1.first_at, b.failures[0].1.last_at),
            (100, 161)
        );
        r.written(&b);
        r.observe(failure(1, FailureKind::PeerNotAnswering, 162));
        let b = r.batch().unwrap();
        assert_eq!(b.failures[0].1.first_at, 162);
        r.written(&b);
        r.observe(Observation::Event {
            conn: conn(1),
            up: true,
            reason: EventReason::Negotiated,
            at: 170,
        });
        r.observe(failure(1, FailureKind::PeerNotAnswering, 171));
        let b = r.batch().unwrap();
        assert_eq!(b.events.len(), 1);
        assert_eq!(b.failures[0].1.first_at, 171);
    }

    /// Only changed counters are written; a tunnel that lost its SAs is
    /// written once as having none.
    #[test]
    fn traffic_is_written_when_it_changes() {
        let mut r = Recorder::default();
        let t = |b: u64| Traffic {
            bytes_in: b,
            ..Traffic::default()
        };
        r.sample(HashMap::from([(conn(1), t(1)), (conn(2), t(5))]), 10);
        let b = r.batch().unwrap();
        assert_eq!((b.traffic.len(), b.traffic_at), (2, 10));
        r.written(&b);
        r.sample(HashMap::from([(conn(1), t(1)), (conn(2), t(6))]), 20);
        let b = r.batch().unwrap();
        assert_eq!(b.traffic, vec![(conn(2), Some(t(6)))]);
        r.written(&b);
        r.sample(HashMap::from([(conn(2), t(6))]), 30);
        let b = r.batch().unwrap();
        assert_eq!(b.traffic, vec![(conn(1), None)]);
        r.written(&b);
        r.sample(HashMap::from([(conn(2), t(6))]), 40);
        assert_eq!(r.batch(), None);
    }

    #[test]
    fn a_failed_write_is_retried_with_what_came_since() {
        let mut r = Recorder::default();
        let ev = |at| Observation::Event {
            conn: conn(1),
            up: false,
            reason: EventReason::Unknown,
            at,
        };
        r.observe(ev(1));
        let b = r.batch().unwrap();
        r.observe(ev(2));
        r.failed(b);
        let b = r.batch().unwrap();
        assert_eq!(
            b.events.iter().map(|(_, e)| e.at).collect::<Vec<_>>(),
            vec![1, 2]
        );
    }

    #[test]
    fn details_holding_the_key_are_dropped() {
        let mut failures = vec![(
            conn(1),
            LastFailure {
                kind: FailureKind::IdentityMismatch,
                detail: FailureDetail {
                    peer_identity: Some("secret.example.net".into()),
                    gateway_allows: Some("IKE:AES_CBC_128".into()),
                    ..FailureDetail::default()
                },
                first_at: 1,
                last_at: 1,
            },
        )];
        let keys = HashMap::from([(conn(1), Secret::new("secret"))]);
        without_keys(&mut failures, &keys);
        assert_eq!(failures[0].1.detail.peer_identity, None);
        assert_eq!(
            failures[0].1.detail.gateway_allows.as_deref(),
            Some("IKE:AES_CBC_128")
        );
    }
}
