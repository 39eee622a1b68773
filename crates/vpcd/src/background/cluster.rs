//! Several vpcd processes on one database: who is alive, and which vpcd
//! drives each strongSwan gateway node.
//!
//! Every process heartbeats into the store under its name (the task
//! engine's worker id, unique per process start) every
//! `--heartbeat-interval-ms`; a process is alive while its last heartbeat is
//! younger than [`ALIVE_HEARTBEATS`] intervals.
//!
//! A gateway node is driven by exactly one vpcd at a time: the holder of its
//! lease (`--gateway-lease-secs`), renewed on every heartbeat. Only the
//! holder has the node's driver, so only it reconciles the node, follows its
//! live state and runs its connections' tasks (the engine claims only the
//! tasks of nodes it has a driver for, and API-only ones). When the holder
//! dies, its lease expires and another vpcd takes the node over. A holder
//! that cannot renew (say the database is unreachable) lets go of the node
//! by its own clock a second before the lease runs out, so two vpcds never
//! drive a node at once. Nodes are spread: a vpcd takes a free node when it
//! holds fewer than its share (nodes / live vpcds, rounded up) or when the
//! node has stayed free for two intervals, and gives back one node per round
//! while it holds more than its share and another live vpcd holds less. A
//! vpcd that stops gracefully releases its leases and says it stopped; the
//! leases of a vpcd that died on the same machine (same host and PID
//! namespace, its process gone) are released by the next vpcd there at
//! once, so a single-vpcd deployment restarted after a crash drives its
//! gateway nodes immediately, as before clustering existed.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use vpcd_store::{ClusterMember, GatewayNode, Store, StoreError};
use vpcd_types::GatewayNodeId;

use crate::clock::Clock;
use crate::storage_health::StorageHealth;

/// A vpcd is alive while its last heartbeat is younger than this many
/// heartbeat intervals.
pub(crate) const ALIVE_HEARTBEATS: i64 = 3;

/// What a vpcd process tells the others about itself (the heartbeat's
/// `info`, as JSON).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberInfo {
    pub version: String,
    pub pid: u32,
    pub http: Option<String>,
    pub https: Option<String>,
    pub heartbeat_ms: u64,
    /// Set by the last heartbeat of a process that stopped gracefully.
    #[serde(default)]
    pub stopped: bool,
    /// The machine and PID namespace the process runs in: with `pid`, what
    /// lets a vpcd on the same machine see that it died.
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub pid_ns: String,
}

impl MemberInfo {
    /// This process, as the others should see it.
    pub(crate) fn of_this_process(heartbeat: Duration) -> MemberInfo {
        MemberInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            http: None,
            https: None,
            heartbeat_ms: heartbeat.as_millis() as u64,
            stopped: false,
            host: super::hostname().unwrap_or_default(),
            pid_ns: std::fs::read_link("/proc/self/ns/pid")
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        }
    }

    /// Decode a heartbeat's info; unknown or foreign text gives defaults.
    pub fn parse(text: &str) -> MemberInfo {
        serde_json::from_str(text).unwrap_or_default()
    }
}

/// Whether `other` ran on this machine, in this PID namespace, and its
/// process no longer exists. Any doubt (another host, unknown namespace, a
/// reused pid) answers `false`: its lease then simply runs out.
fn died_here(me: &MemberInfo, other: &MemberInfo) -> bool {
    !me.host.is_empty()
        && !me.pid_ns.is_empty()
        && other.host == me.host
        && other.pid_ns == me.pid_ns
        && other.pid != 0
        && other.pid != me.pid
        && !std::path::Path::new(&format!("/proc/{}", other.pid)).exists()
}

/// Whether `member` counts as alive at `now`, given its heartbeat interval
/// (`default_interval_ms` when its info does not say).
pub(crate) fn is_alive(member: &ClusterMember, now: i64, default_interval_ms: u64) -> bool {
    let info = MemberInfo::parse(&member.info);
    if info.stopped {
        return false;
    }
    let interval_ms = if info.heartbeat_ms > 0 {
        info.heartbeat_ms
    } else {
        default_interval_ms
    };
    // Heartbeats are stamped in whole seconds: allow one second of rounding.
    let window_secs = (ALIVE_HEARTBEATS as u64 * interval_ms).div_ceil(1000) as i64;
    now.saturating_sub(member.last_seen) <= window_secs.max(1)
}

/// This process's membership in the cluster.
pub(crate) struct Cluster {
    name: String,
    info: Mutex<MemberInfo>,
    interval: Duration,
    lease_secs: i64,
    state: Mutex<Leases>,
    /// The heartbeat is the write that ends a storage-fault episode.
    storage: StorageHealth,
}

#[derive(Default)]
struct Leases {
    /// Gateway node -> (end of our lease by our clock, tenure number).
    held: HashMap<GatewayNodeId, (i64, u64)>,
    /// Gateway node -> when this process first saw it free.
    free_since: HashMap<GatewayNodeId, i64>,
    next_tenure: u64,
}

impl Cluster {
    pub(crate) fn new(
        name: String,
        info: MemberInfo,
        interval: Duration,
        lease_secs: i64,
        storage: StorageHealth,
    ) -> Self {
        Cluster {
            name,
            info: Mutex::new(info),
            interval,
            lease_secs: lease_secs.max(2),
            state: Mutex::new(Leases::default()),
            storage,
        }
    }

    /// Record the bound listen addresses (known only after the database and
    /// the leases were set up) for the next heartbeats.
    pub(crate) fn set_listen(&self, http: Option<SocketAddr>, https: Option<SocketAddr>) {
        let mut info = self.info.lock().unwrap_or_else(|p| p.into_inner());
        info.http = http.map(|a| a.to_string());
        info.https = https.map(|a| a.to_string());
    }

    /// How often this process heartbeats.
    pub(crate) fn interval(&self) -> Duration {
        self.interval
    }

    fn leases(&self) -> std::sync::MutexGuard<'_, Leases> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current tenure on `node` if this process may drive it now: it
    /// holds the lease and, by its own clock, the lease has more than a
    /// second to run. A driver's helpers stop when the tenure they started
    /// under is over.
    pub(crate) fn tenure(&self, node: GatewayNodeId, now: i64) -> Option<u64> {
        let leases = self.leases();
        match leases.held.get(&node) {
            Some((until, tenure)) if now + 1 < *until => Some(*tenure),
            _ => None,
        }
    }

    /// Gateway nodes this process may drive now.
    pub(crate) fn driven(&self, now: i64) -> HashSet<GatewayNodeId> {
        self.leases()
            .held
            .iter()
            .filter(|(_, (until, _))| now + 1 < *until)
            .map(|(id, _)| *id)
            .collect()
    }

    /// One heartbeat and one round of leases. Store errors are logged: a
    /// lease that cannot be renewed simply runs out.
    pub(crate) async fn round(&self, store: &dyn Store, clock: &Clock) {
        let now = clock.now();
        let info = {
            let info = self.info.lock().unwrap_or_else(|p| p.into_inner());
            serde_json::to_string(&*info).unwrap_or_default()
        };
        // A storage fault is logged once per episode (`StorageHealth`), not
        // once per round.
        match store.heartbeat(&self.name, now, &info).await {
            Ok(()) => self.storage.wrote(),
            Err(StoreError::StorageUnavailable(cause)) => self.storage.refused(Some(&cause)),
            Err(e) => tracing::warn!(error = %e, "cluster heartbeat failed"),
        }
        match self.lease_round(store, now).await {
            Ok(()) | Err(StoreError::StorageUnavailable(_)) => {}
            Err(e) => tracing::warn!(error = %e, "gateway node leases could not be renewed"),
        }
        // Leases we could not renew end by our clock.
        self.leases().held.retain(|node, (until, _)| {
            let keep = now + 1 < *until;
            if !keep {
                tracing::warn!(node = %node, "gateway node lease ran out; no longer driving it");
            }
            keep
        });
    }

    async fn lease_round(&self, store: &dyn Store, now: i64) -> vpcd_store::Result<()> {
        let nodes: Vec<GatewayNode> = store.list_gateway_nodes().await?;
        if nodes.is_empty() {
            self.leases().held.clear();
            return Ok(());
        }
        let interval_ms = self.interval.as_millis() as u64;
        let members = store.list_members().await?;
        let alive: Vec<String> = members
            .iter()
            .filter(|n| n.name != self.name && is_alive(n, now, interval_ms))
            .map(|n| n.name.clone())
            .collect();
        // A vpcd that died on this very machine (kill -9, then a restart)
        // needs no waiting for its leases: its process is provably gone.
        let me = self.info.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let dead_here: HashSet<&str> = members
            .iter()
            .filter(|n| n.name != self.name && died_here(&me, &MemberInfo::parse(&n.info)))
            .map(|n| n.name.as_str())
            .collect();
        let share = nodes.len().div_ceil(alive.len() + 1);
        let mut leases: HashMap<GatewayNodeId, (String, i64)> = store
            .gateway_leases()
            .await?
            .into_iter()
            .map(|(node, holder, until)| (node, (holder, until)))
            .collect();
        for (node, (holder, until)) in leases.iter_mut() {
            if *until >= now && dead_here.contains(holder.as_str()) {
                store.release_gateway_lease(*node, holder).await?;
                tracing::info!(node = %node, holder = %holder, "released the lease of a vpcd that died on this host");
                *until = i64::MIN;
            }
        }
        // Whether another live vpcd holds less than its share (and so would
        // take a node this one gives back).
        let someone_under_share = alive.iter().any(|name| {
            leases
                .values()
                .filter(|(holder, until)| holder == name && *until >= now)
                .count()
                < share
        });
        let patience = 2 * (interval_ms.div_ceil(1000) as i64).max(1);

        let mut held_now = self.leases().held.len();
        for node in &nodes {
            let ours = self.leases().held.contains_key(&node.id);
            let free = match leases.get(&node.id) {
                None => true,
                Some((holder, until)) => holder != &self.name && *until < now,
            };
            let want = if ours {
                true
            } else if free {
                let since = *self.leases().free_since.entry(node.id).or_insert(now);
                held_now < share || now - since >= patience
            } else {
                self.leases().free_since.remove(&node.id);
                false
            };
            if !want {
                continue;
            }
            let got = store
                .acquire_gateway_lease(node.id, &self.name, now, self.lease_secs)
                .await?;
            let mut leases = self.leases();
            if got {
                leases.free_since.remove(&node.id);
                if !ours {
                    leases.next_tenure += 1;
                    let tenure = leases.next_tenure;
                    leases.held.insert(node.id, (now + self.lease_secs, tenure));
                    held_now += 1;
                    tracing::info!(node = %node.id, name = %node.name, "took the gateway node's lease");
                } else if let Some(entry) = leases.held.get_mut(&node.id) {
                    entry.0 = now + self.lease_secs;
                }
            } else if ours {
                leases.held.remove(&node.id);
                held_now -= 1;
                tracing::warn!(node = %node.id, "gateway node lease lost to another vpcd");
            }
        }
        // Forget nodes that were removed; give one back while over share.
        let known: HashSet<GatewayNodeId> = nodes.iter().map(|n| n.id).collect();
        self.leases().held.retain(|id, _| known.contains(id));
        let surplus = {
            let leases = self.leases();
            (leases.held.len() > share && someone_under_share)
                .then(|| leases.held.keys().max().copied())
                .flatten()
        };
        if let Some(node) = surplus {
            self.leases().held.remove(&node);
            store.release_gateway_lease(node, &self.name).await?;
            tracing::info!(
                node = %node,
                share,
                "gave a gateway node back to balance the cluster"
            );
        }
        Ok(())
    }

    /// Give every lease back (graceful shutdown), so others take the nodes
    /// over at once instead of after the lease runs out.
    /// A last heartbeat marks this process stopped, so the others count it
    /// out of the cluster at once.
    pub(crate) async fn release_all(&self, store: &dyn Store, clock: &Clock) {
        let held: Vec<GatewayNodeId> = self.leases().held.drain().map(|(id, _)| id).collect();
        for node in held {
            if let Err(e) = store.release_gateway_lease(node, &self.name).await {
                tracing::warn!(node = %node, error = %e, "releasing a gateway node lease failed");
            }
        }
        let info = {
            let mut info = self.info.lock().unwrap_or_else(|p| p.into_inner());
            info.stopped = true;
            serde_json::to_string(&*info).unwrap_or_default()
        };
        if let Err(e) = store.heartbeat(&self.name, clock.now(), &info).await {
            tracing::warn!(error = %e, "last cluster heartbeat failed");
        }
    }
}

/// Heartbeat and lease rounds until shutdown, publishing the set of driven
/// gateway nodes on `driven` whenever it changes (the gateway-node side
/// starts and stops drivers on it). On shutdown the leases are released.
pub(crate) async fn run(
    cluster: Arc<Cluster>,
    store: Arc<dyn Store>,
    clock: Clock,
    driven: watch::Sender<HashSet<GatewayNodeId>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(cluster.interval) => {}
            _ = shutdown.changed() => break,
        }
        cluster.round(store.as_ref(), &clock).await;
        let now_driven = cluster.driven(clock.now());
        driven.send_if_modified(|current| {
            let changed = *current != now_driven;
            *current = now_driven;
            changed
        });
    }
    cluster.release_all(store.as_ref(), &clock).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(last_seen: i64, info: &str) -> ClusterMember {
        ClusterMember {
            name: "n".into(),
            started_at: 0,
            last_seen,
            info: info.into(),
        }
    }

    #[test]
    fn liveness_is_three_heartbeats() {
        let info = serde_json::to_string(&MemberInfo {
            heartbeat_ms: 2000,
            ..MemberInfo::default()
        })
        .unwrap();
        assert!(is_alive(&member(100, &info), 106, 1000));
        assert!(!is_alive(&member(100, &info), 107, 1000));
        // Without info, the caller's default interval.
        assert!(is_alive(&member(100, "free text"), 103, 1000));
        assert!(!is_alive(&member(100, "free text"), 104, 1000));
        // Sub-second heartbeats still allow a second of rounding.
        let fast = serde_json::to_string(&MemberInfo {
            heartbeat_ms: 200,
            ..MemberInfo::default()
        })
        .unwrap();
        assert!(is_alive(&member(100, &fast), 101, 1000));
        assert!(!is_alive(&member(100, &fast), 102, 1000));
    }

    #[test]
    fn only_a_provably_dead_local_process_counts_as_dead() {
        let me = MemberInfo::of_this_process(Duration::from_secs(2));
        assert!(!me.host.is_empty() && !me.pid_ns.is_empty());
        // A pid that cannot exist (above the kernel's pid_max limit).
        let gone = MemberInfo {
            pid: 0x7fff_fff0,
            ..me.clone()
        };
        assert!(died_here(&me, &gone));
        // Alive (this very process's parent), elsewhere, or unknown.
        let parent = MemberInfo {
            pid: std::os::unix::process::parent_id(),
            ..me.clone()
        };
        assert!(!died_here(&me, &parent));
        assert!(!died_here(&me, &me));
        for other in [
            MemberInfo {
                host: "elsewhere".into(),
                ..gone.clone()
            },
            MemberInfo {
                pid_ns: "pid:[1]".into(),
                ..gone.clone()
            },
            MemberInfo::parse("not json"),
        ] {
            assert!(!died_here(&me, &other), "{other:?}");
        }
    }

    #[tokio::test]
    async fn leases_spread_and_move() {
        let store = vpcd_store::connect("sqlite::memory:", vpcd_store::MasterKey::generate())
            .await
            .unwrap();
        for i in 0..4 {
            store
                .add_gateway_node(&format!("gw{i}"), &format!("unix:///run/{i}.vici"), &[])
                .await
                .unwrap();
        }
        let clock = Clock::default();
        let member = |name: &str| {
            Cluster::new(
                name.into(),
                MemberInfo::default(),
                Duration::from_secs(1),
                5,
                StorageHealth::new(clock.clone()),
            )
        };
        let (a, b) = (member("a"), member("b"));
        // Alone, `a` drives everything.
        a.round(store.as_ref(), &clock).await;
        assert_eq!(a.driven(clock.now()).len(), 4);
        // `b` joins: `a` gives nodes back one per round, `b` takes them.
        for _ in 0..4 {
            b.round(store.as_ref(), &clock).await;
            a.round(store.as_ref(), &clock).await;
        }
        let (da, db) = (a.driven(clock.now()), b.driven(clock.now()));
        assert_eq!((da.len(), db.len()), (2, 2), "{da:?} {db:?}");
        assert!(da.is_disjoint(&db));
        // Balanced: nobody gives anything back.
        b.round(store.as_ref(), &clock).await;
        a.round(store.as_ref(), &clock).await;
        assert_eq!(a.driven(clock.now()), da);
        // `b` stops gracefully and says so: `a` takes its nodes at once.
        b.release_all(store.as_ref(), &clock).await;
        assert!(b.driven(clock.now()).is_empty());
        a.round(store.as_ref(), &clock).await;
        assert_eq!(a.driven(clock.now()).len(), 4);
        // `a` dies (no more rounds): once its leases ran out `c` takes over,
        // and `a`, whose own clock says they ran out, drives nothing.
        let c = member("c");
        c.round(store.as_ref(), &clock).await;
        assert!(c.driven(clock.now()).is_empty(), "a's leases are current");
        clock.advance(6);
        assert!(a.driven(clock.now()).is_empty());
        c.round(store.as_ref(), &clock).await;
        assert_eq!(c.driven(clock.now()).len(), 4);
        assert_eq!(store.gateway_leases().await.unwrap().len(), 4);
        assert!(store
            .gateway_leases()
            .await
            .unwrap()
            .iter()
            .all(|(_, holder, _)| holder == "c"));
    }
}
