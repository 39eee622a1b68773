//! [`StrongSwanDriver`]: the [`VpnDriver`] that drives charon over VICI.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use futures::channel::mpsc;
use futures::{SinkExt, Stream, StreamExt};
use serde::de::IgnoredAny;
use serde::Deserialize;
use tokio::sync::{Mutex, MutexGuard};
use vpcd_types::diag::Traffic;
use vpcd_types::{NetStatus, TunnelSpec, VpnConnId};

use super::diagnose::{Diagnoser, Observation};
use super::render::{self, ById, ByName, Terminate};
use super::vici::{Endpoint, EndpointError, Session, ViciError};
use crate::{DriverError, VpnDriver};

/// How long to wait for charon to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Upper bound for one driver operation (a few VICI round trips).
const OP_TIMEOUT: Duration = Duration::from_secs(10);
/// [`StrongSwanDriver::watch`] re-reads the SAs this often even without
/// events, and the loaded connections with them.
const WATCH_FALLBACK: Duration = Duration::from_secs(2);
/// How long [`StrongSwanDriver::watch`] lets up/down events gather before it
/// reads the SAs: the events of one negotiation (or of many tunnels going
/// down at once) arrive within a few milliseconds and cost one `list-sas`.
/// The deadline is not pushed back by later events, so a steady stream of
/// them cannot hold the read off.
const WATCH_SETTLE: Duration = Duration::from_millis(5);

/// A [`VpnDriver`] for one charon, reached over VICI.
///
/// Cheap to clone (clones share one VICI session). The session is opened on
/// first use and re-opened after any transport error, so the driver survives
/// charon restarts; every operation is bounded by a timeout. Operations are
/// serialized on the session (VICI has no request ids).
///
/// charon must run with `i_dont_care_about_security_and_use_aggressive_mode_psk
/// = yes` for tunnels in aggressive mode, where it answers as responder.
#[derive(Clone)]
pub struct StrongSwanDriver {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Endpoint,
    session: Mutex<Option<Session>>,
    op_timeout: Duration,
    /// [`WATCH_FALLBACK`], longer in tests that must see events alone.
    watch_fallback: Duration,
    /// When this driver last unloaded each tunnel: a tunnel that goes down
    /// just after was closed here, not by the peer.
    closed: std::sync::Mutex<HashMap<VpnConnId, Instant>>,
    /// The loaded vpcd connections, so that an up/down event needs only
    /// `list-sas`. See [`LoadedConns`].
    conns: std::sync::Mutex<LoadedConns>,
}

/// The loaded vpcd connections and their addresses: what `list-conns` last
/// said, kept current by this driver's own loads and unloads. Changed only
/// while the VICI session is held, so it is in step with what charon was
/// told. `None` when it may be wrong (never listed, a new session, which
/// may be a restarted charon, or an operation of ours whose outcome is
/// unknown): the next read lists again. Changes made by others (swanctl, a
/// second vpcd) show at the next periodic listing ([`WATCH_FALLBACK`],
/// every [`VpnDriver::net_status`]).
type LoadedConns = Option<Arc<HashMap<VpnConnId, Addrs>>>;

/// A connection's (local, remote) addresses.
type Addrs = (Vec<IpAddr>, Vec<IpAddr>);

/// What [`StrongSwanDriver::watch_all`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watched {
    /// The live state of every loaded tunnel, whenever one changes (as
    /// [`StrongSwanDriver::watch`]).
    NetStatus(HashMap<VpnConnId, NetStatus>),
    /// A failure or an up/down event with its reason.
    Observed(Observation),
}

/// One IKE SA of a vpcd tunnel, as reported by `list-sas`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeSaInfo {
    /// The connection it belongs to.
    pub name: VpnConnId,
    pub unique_id: u64,
    /// e.g. `ESTABLISHED`, `CONNECTING`.
    pub state: String,
    pub children: Vec<ChildSaInfo>,
}

/// One CHILD SA as reported by `list-sas`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSaInfo {
    /// The child config name (`vpnx-...-1`).
    pub name: String,
    pub unique_id: u64,
    /// e.g. `INSTALLED`, `REKEYING`.
    pub state: String,
    pub spi_in: String,
    pub spi_out: String,
    pub local_ts: Vec<String>,
    pub remote_ts: Vec<String>,
}

/// One loaded vpcd connection as reported by `list-conns` (the parts worth
/// comparing in tests).
#[cfg(any(test, feature = "testbed"))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    pub name: VpnConnId,
    pub local_addrs: Vec<String>,
    pub remote_addrs: Vec<String>,
    /// `(child name, local_ts, remote_ts)`.
    pub children: Vec<(String, Vec<String>, Vec<String>)>,
}

#[derive(Deserialize)]
struct RawIkeSa {
    #[serde(default, rename = "uniqueid")]
    unique_id: Option<String>,
    #[serde(default)]
    state: String,
    /// Seconds since it was established.
    #[serde(default)]
    established: Option<String>,
    #[serde(default, rename = "child-sas")]
    child_sas: HashMap<String, RawChildSa>,
}

#[derive(Deserialize)]
struct RawChildSa {
    #[serde(default)]
    name: String,
    #[serde(default, rename = "uniqueid")]
    unique_id: Option<String>,
    #[serde(default)]
    state: String,
    #[serde(default, rename = "spi-in")]
    spi_in: String,
    #[serde(default, rename = "spi-out")]
    spi_out: String,
    #[serde(default, rename = "local-ts")]
    local_ts: Vec<String>,
    #[serde(default, rename = "remote-ts")]
    remote_ts: Vec<String>,
    #[serde(default, rename = "bytes-in")]
    bytes_in: Option<String>,
    #[serde(default, rename = "bytes-out")]
    bytes_out: Option<String>,
    #[serde(default, rename = "packets-in")]
    packets_in: Option<String>,
    #[serde(default, rename = "packets-out")]
    packets_out: Option<String>,
    /// Seconds since it was installed.
    #[serde(default, rename = "install-time")]
    install_time: Option<String>,
}

/// The addresses of a loaded connection (`list-conns`).
#[derive(Deserialize)]
struct RawConnAddrs {
    #[serde(default)]
    local_addrs: Vec<String>,
    #[serde(default)]
    remote_addrs: Vec<String>,
}

#[cfg(any(test, feature = "testbed"))]
#[derive(Deserialize)]
struct RawConn {
    #[serde(default)]
    local_addrs: Vec<String>,
    #[serde(default)]
    remote_addrs: Vec<String>,
    #[serde(default)]
    children: HashMap<String, RawConnChild>,
}

#[cfg(any(test, feature = "testbed"))]
#[derive(Deserialize)]
struct RawConnChild {
    #[serde(default, rename = "local-ts")]
    local_ts: Vec<String>,
    #[serde(default, rename = "remote-ts")]
    remote_ts: Vec<String>,
}

/// `log` event.
#[derive(Deserialize)]
struct LogEvent {
    #[serde(default)]
    level: i32,
    #[serde(default, rename = "ikesa-name")]
    ikesa_name: Option<String>,
    #[serde(default, rename = "ikesa-uniqueid")]
    ikesa_uniqueid: Option<String>,
    #[serde(default)]
    msg: String,
}

/// charon log lines (levels 0-1, the only ones VICI forwards) that explain
/// why a tunnel is not up. None of them carries key material.
const FAILURE_HINTS: &[&str] = &[
    "AUTHENTICATION_FAILED",
    "NO_PROPOSAL_CHOSEN",
    "INVALID_ID_INFORMATION",
    "TS_UNACCEPTABLE",
    "calculated HASH does not match",
    "could not decrypt payloads",
    "decryption failed",
    "no shared key found",
    "no matching peer config",
    "no peer config found",
    "no IKE config found",
    "no acceptable",
    "giving up after",
    "peer not responding",
    "DPD check timed out",
    "failed to establish CHILD_SA",
    "establishing CHILD_SA",
];

/// The vpcd connection a charon connection or IKE SA name stands for.
/// Anything else on the node (an operator's own connection, say) is not
/// vpcd's to report or touch, so it is skipped rather than an error.
fn vpcd_conn(name: &str) -> Option<VpnConnId> {
    match name.parse() {
        Ok(id) => Some(id),
        Err(_) => {
            tracing::debug!(name, "ignoring a charon connection that is not vpcd's");
            None
        }
    }
}

fn unreachable(ep: &Endpoint, e: &ViciError) -> DriverError {
    DriverError::Unreachable(format!("charon at {ep}: {e}"))
}

/// `unload-*`/`terminate` answer "not found" with `success = no`; for
/// remove that just means the object is already gone.
fn already_gone(r: Result<(), ViciError>) -> Result<(), ViciError> {
    match r {
        Err(ViciError::Failed(msg)) => {
            tracing::debug!(%msg, "nothing to remove");
            Ok(())
        }
        other => other,
    }
}

/// Run `$body` (an expression using the session `$s`) with a connected
/// session, under the operation timeout. A session that was reused and fails
/// at the transport level may be a stale one from before a charon restart:
/// the operation (always idempotent here) is retried once on a fresh one.
macro_rules! with_session {
    ($self:ident, $s:ident => $body:expr) => {{
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (mut guard, fresh) = match $self.session().await {
                Ok(v) => v,
                Err(e) => break Err(e),
            };
            let Some($s) = guard.as_mut() else {
                unreachable!("session() returns a connected session")
            };
            let outcome = tokio::time::timeout($self.inner.op_timeout, async { $body }).await;
            match outcome {
                Ok(Ok(v)) => break Ok(v),
                Ok(Err(e)) if e.breaks_session() => {
                    *guard = None;
                    if !fresh && attempt == 1 {
                        continue;
                    }
                    break Err(e);
                }
                Ok(Err(e)) => break Err(e),
                Err(_) => {
                    *guard = None;
                    break Err(ViciError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no answer within {:?}", $self.inner.op_timeout),
                    )));
                }
            }
        }
    }};
}

impl StrongSwanDriver {
    /// A driver for the charon whose VICI socket is at `uri`
    /// (`unix:///run/charon.vici` or `tcp://host:port`). Does not connect.
    pub fn new(uri: &str) -> Result<Self, EndpointError> {
        Ok(Self {
            inner: Arc::new(Inner {
                endpoint: uri.parse()?,
                session: Mutex::new(None),
                op_timeout: OP_TIMEOUT,
                watch_fallback: WATCH_FALLBACK,
                closed: Default::default(),
                conns: Default::default(),
            }),
        })
    }

    /// The same driver with another per-operation timeout (default 10 s)
    /// and watch fallback (default [`WATCH_FALLBACK`]).
    #[cfg(test)]
    fn with_timeouts(self, op_timeout: Duration, watch_fallback: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                endpoint: self.inner.endpoint.clone(),
                session: Mutex::new(None),
                op_timeout,
                watch_fallback,
                closed: Default::default(),
                conns: Default::default(),
            }),
        }
    }

    /// A connected session, and whether it was opened just now.
    async fn session(&self) -> Result<(MutexGuard<'_, Option<Session>>, bool), ViciError> {
        let mut guard = self.inner.session.lock().await;
        if guard.is_some() {
            return Ok((guard, false));
        }
        let s = connect(&self.inner.endpoint).await?;
        // Maybe a restarted charon, or one an operation timed out on.
        *self.conns() = None;
        *guard = Some(s);
        Ok((guard, true))
    }

    fn conns(&self) -> std::sync::MutexGuard<'_, LoadedConns> {
        self.inner
            .conns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Note in the cache that `name` is loaded with `addrs` (`Some`), is
    /// not loaded (`None`), or, after a failed command, that the cache may
    /// be wrong (`Err`). Called with the session held. (An operation cut
    /// off by the timeout drops the session, and the next one clears the
    /// cache.)
    fn note_conn(&self, name: &VpnConnId, outcome: Result<Option<Addrs>, ()>) {
        let mut cache = self.conns();
        match (outcome, cache.as_mut()) {
            (Err(()), _) => *cache = None,
            (Ok(_), None) => {}
            (Ok(Some(addrs)), Some(m)) => {
                Arc::make_mut(m).insert(name.clone(), addrs);
            }
            (Ok(None), Some(m)) => {
                if m.contains_key(name) {
                    Arc::make_mut(m).remove(name);
                }
            }
        }
    }

    fn unreachable(&self, e: &ViciError) -> DriverError {
        unreachable(&self.inner.endpoint, e)
    }

    /// Map a failure of a command that carries no secret.
    fn map_err(&self, e: ViciError) -> DriverError {
        match e {
            ViciError::Failed(msg) => DriverError::Rejected(msg),
            ViciError::Unknown(what) => DriverError::Rejected(format!(
                "charon does not support {what} (vici plugin too old?)"
            )),
            other => self.unreachable(&other),
        }
    }

    /// The ids of the shared secrets charon holds (`get-shared`; the
    /// secrets themselves are never returned by charon).
    #[cfg(any(test, feature = "testbed"))]
    pub async fn shared_ids(&self) -> Result<Vec<String>, DriverError> {
        #[derive(Deserialize)]
        struct Keys {
            #[serde(default)]
            keys: Vec<String>,
        }
        let k: Keys = with_session!(self, s => s.request("get-shared", &()).await)
            .map_err(|e| self.map_err(e))?;
        Ok(k.keys)
    }

    /// Every IKE SA of a vpcd tunnel, with its CHILD SAs.
    pub async fn list_sas(&self) -> Result<Vec<IkeSaInfo>, DriverError> {
        let raw: Vec<HashMap<String, RawIkeSa>> =
            with_session!(self, s => s.stream("list-sas", "list-sa", &()).await)
                .map_err(|e| self.map_err(e))?;
        let mut out = Vec::new();
        for (name, ike) in raw.into_iter().flatten() {
            let Some(name) = vpcd_conn(&name) else {
                continue;
            };
            let mut children: Vec<ChildSaInfo> = ike
                .child_sas
                .into_values()
                .map(|c| ChildSaInfo {
                    name: c.name,
                    unique_id: parse_id(c.unique_id),
                    state: c.state,
                    spi_in: c.spi_in,
                    spi_out: c.spi_out,
                    local_ts: c.local_ts,
                    remote_ts: c.remote_ts,
                })
                .collect();
            children.sort_by_key(|c| c.unique_id);
            out.push(IkeSaInfo {
                name,
                unique_id: parse_id(ike.unique_id),
                state: ike.state,
                children,
            });
        }
        out.sort_by(|a, b| (a.name.as_str(), a.unique_id).cmp(&(b.name.as_str(), b.unique_id)));
        Ok(out)
    }

    /// Every loaded vpcd connection.
    #[cfg(any(test, feature = "testbed"))]
    pub async fn list_conns(&self) -> Result<Vec<ConnInfo>, DriverError> {
        let raw: Vec<HashMap<String, RawConn>> =
            with_session!(self, s => s.stream("list-conns", "list-conn", &()).await)
                .map_err(|e| self.map_err(e))?;
        let mut out: Vec<ConnInfo> = raw
            .into_iter()
            .flatten()
            .filter_map(|(name, c)| {
                let name = vpcd_conn(&name)?;
                let mut children: Vec<_> = c
                    .children
                    .into_iter()
                    .map(|(n, ch)| (n, ch.local_ts, ch.remote_ts))
                    .collect();
                children.sort();
                Some(ConnInfo {
                    name,
                    local_addrs: c.local_addrs,
                    remote_addrs: c.remote_addrs,
                    children,
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
        Ok(out)
    }

    async fn load(&self, spec: &TunnelSpec) -> Result<(), DriverError> {
        let shared = render::load_shared(spec);
        let conn = render::load_conn(spec);
        let name = spec.name.as_str();
        let loaded_with = (
            ip_addrs(&conn.conn.local_addrs),
            ip_addrs(&conn.conn.remote_addrs),
        );
        let r = with_session!(self, s => {
            let r = async {
                s.call("load-shared", &shared).await?;
                s.call("load-conn", &conn).await.map_err(|e| match e {
                    ViciError::Failed(msg) => ViciError::Failed(format!("load-conn {name}: {msg}")),
                    other => other,
                })
            }
            .await;
            self.note_conn(&spec.name, r.as_ref().map(|()| Some(loaded_with.clone())).map_err(|_| ()));
            r
        });
        r.map_err(|e| match e {
            // charon's answer to load-shared is never echoed: the request
            // carried the key, so its error text is not trusted to omit it.
            ViciError::Failed(msg) if !msg.starts_with("load-conn ") => {
                DriverError::Rejected(format!("charon refused the pre-shared key of {name}"))
            }
            other => self.map_err(other),
        })
    }

    /// Unload the connection (closing its SAs), terminate any IKE SA left
    /// under its name, and unload its key.
    async fn unload(&self, id: &VpnConnId) -> Result<(), DriverError> {
        self.note_closed(id);
        let name = id.as_str();
        let shared_id = render::shared_id(id);
        with_session!(self, s => {
            // Unloading first means no new SA can be accepted for this name
            // while the old ones are being torn down.
            let r = already_gone(s.call("unload-conn", &ByName { name }).await);
            self.note_conn(id, r.as_ref().map(|()| None).map_err(|_| ()));
            r?;
            already_gone(
                s.call(
                    "terminate",
                    &Terminate { ike: name, timeout: 2000, force: true },
                )
                .await,
            )?;
            already_gone(s.call("unload-shared", &ById { id: &shared_id }).await)
        })
        .map_err(|e| self.map_err(e))
    }

    /// A stream of net-status snapshots, one whenever the status of any
    /// loaded tunnel changes (and a first one as soon as charon answers).
    ///
    /// Driven by VICI `ike-updown`/`child-updown` events, so a change is
    /// seen within milliseconds: an event costs one `list-sas`, the loaded
    /// connections being cached (see [`LoadedConns`]). Every 2 s the SAs
    /// are re-read anyway and the loaded connections listed again, so a
    /// missed event, a charon restart (after which the event session is
    /// re-opened) or a connection loaded by someone else costs at most
    /// that long. While running it also logs, at warn level, the reasons
    /// charon gives for a failing tunnel (authentication failure, proposal
    /// mismatch, peer not responding...), which never contain key material.
    ///
    /// The background task ends when the stream is dropped.
    pub fn watch(&self) -> impl Stream<Item = HashMap<VpnConnId, NetStatus>> + Send + 'static {
        let (tx, rx) = mpsc::channel(4);
        let driver = self.clone();
        tokio::spawn(async move { driver.watch_loop(tx, false).await });
        rx.filter_map(|w| {
            futures::future::ready(match w {
                Watched::NetStatus(m) => Some(m),
                Watched::Observed(_) => None,
            })
        })
    }

    /// [`watch`](Self::watch), and besides the net status what charon's
    /// log and the SA changes explain ([`Observation`]): each negotiation
    /// failure of a vpcd tunnel, in a fixed vocabulary
    /// (`super::diagnose`), and each up/down transition with its reason.
    /// Transitions are reported from the second snapshot on (the first one
    /// is the state found, not a change). Does not log the reasons (that is
    /// `watch`'s job).
    pub fn watch_all(&self) -> impl Stream<Item = Watched> + Send + 'static {
        let (tx, rx) = mpsc::channel(64);
        let driver = self.clone();
        tokio::spawn(async move { driver.watch_loop(tx, true).await });
        rx
    }

    fn note_closed(&self, id: &VpnConnId) {
        let now = Instant::now();
        let mut closed = self
            .inner
            .closed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        closed.retain(|_, t| now.duration_since(*t) < Duration::from_secs(120));
        closed.insert(id.clone(), now);
    }

    /// Every loaded vpcd tunnel's status, and their addresses. The loaded
    /// connections come from the cache ([`LoadedConns`]), listed again
    /// (`list-conns`) when `relist` or when the cache is unknown; the SAs are
    /// always read (`list-sas`). A connection with an SA that is not loaded
    /// (being unloaded, say) is left out, so never reported available.
    async fn snapshot(
        &self,
        relist: bool,
    ) -> Result<
        (
            HashMap<VpnConnId, NetStatus>,
            Arc<HashMap<VpnConnId, Addrs>>,
        ),
        DriverError,
    > {
        let (sas, conns) = with_session!(self, s => {
            if relist || self.conns().is_none() {
                let raw: Vec<HashMap<String, RawConnAddrs>> =
                    s.stream("list-conns", "list-conn", &()).await?;
                let listed: HashMap<VpnConnId, Addrs> = raw
                    .into_iter()
                    .flatten()
                    .filter_map(|(name, c)| {
                        Some((vpcd_conn(&name)?, (ip_addrs(&c.local_addrs), ip_addrs(&c.remote_addrs))))
                    })
                    .collect();
                *self.conns() = Some(Arc::new(listed));
            }
            let sas: Vec<HashMap<String, RawIkeSa>> = s.stream("list-sas", "list-sa", &()).await?;
            // Taken with the session still held, so no load or unload of
            // ours falls between the listings and this.
            let conns = self.conns().clone().unwrap_or_default();
            Ok::<_, ViciError>((sas, conns))
        })
        .map_err(|e| self.map_err(e))?;
        let mut out: HashMap<VpnConnId, NetStatus> = conns
            .keys()
            .map(|id| (id.clone(), NetStatus::Unavailable))
            .collect();
        for (name, ike) in sas.into_iter().flatten() {
            let up = ike.state == "ESTABLISHED"
                && ike.child_sas.values().any(|c| c.state == "INSTALLED");
            if !up {
                continue;
            }
            if let Some(st) = vpcd_conn(&name).and_then(|id| out.get_mut(&id)) {
                *st = NetStatus::Available;
            }
        }
        Ok((out, conns))
    }

    /// The traffic of every vpcd tunnel that has an established IKE SA with
    /// an installed CHILD SA (`list-sas`): bytes and packets summed over its
    /// installed CHILD SAs, when the IKE SA was established and when a
    /// CHILD SA was last rekeyed. Tunnels without SAs are left out.
    pub async fn traffic(&self) -> Result<HashMap<VpnConnId, Traffic>, DriverError> {
        let raw: Vec<HashMap<String, RawIkeSa>> =
            with_session!(self, s => s.stream("list-sas", "list-sa", &()).await)
                .map_err(|e| self.map_err(e))?;
        Ok(traffic_of(raw, unix_now()))
    }

    async fn watch_loop(self, mut tx: mpsc::Sender<Watched>, diagnose: bool) {
        let mut last: Option<HashMap<VpnConnId, NetStatus>> = None;
        let mut reasons = ReasonLog::default();
        let mut diag = Diagnoser::default();
        'session: while !tx.is_closed() {
            let (ev_tx, mut ev_rx) = mpsc::channel::<(String, Vec<u8>)>(64);
            // The event session is read by its own task, so that a frame is
            // never abandoned half-read by the select below.
            let reader = tokio::spawn(read_events(self.inner.endpoint.clone(), ev_tx));
            // The first look follows the event session's "connected".
            let mut next_check = Instant::now() + self.inner.watch_fallback;
            let mut followup: Option<Instant> = None;
            // When the loaded connections are next listed rather than
            // taken from the cache.
            let mut relist_at = Instant::now();
            loop {
                let wait = next_check.saturating_duration_since(Instant::now());
                tokio::select! {
                    ev = ev_rx.next() => match ev {
                        Some((name, payload)) => {
                            if name == "log" {
                                if !diagnose {
                                    reasons.consider(&payload);
                                } else if let Some(o) = diagnose_line(&mut diag, &payload) {
                                    if tx.send(Watched::Observed(o)).await.is_err() {
                                        reader.abort();
                                        break 'session;
                                    }
                                }
                            } else {
                                if name == "connected" {
                                    // Maybe a restarted charon.
                                    relist_at = Instant::now();
                                }
                                // child-updown "down" fires before the SA
                                // is gone: look now and once more shortly.
                                next_check = next_check.min(Instant::now() + WATCH_SETTLE);
                                followup = Some(Instant::now() + Duration::from_millis(300));
                            }
                        }
                        None => break,
                    },
                    _ = tokio::time::sleep(wait) => {
                        if tx.is_closed() {
                            break;
                        }
                        let relist = Instant::now() >= relist_at;
                        if relist {
                            relist_at = Instant::now() + self.inner.watch_fallback;
                        }
                        if let Ok((now, conns)) = self.snapshot(relist).await {
                            if last.as_ref() != Some(&now) {
                                let mut out = Vec::new();
                                if diagnose {
                                    diag.set_conns(
                                        conns.iter().map(|(id, (l, r))| (id.clone(), l.clone(), r.clone())),
                                    );
                                    if let Some(prev) = &last {
                                        out = self.transitions(&mut diag, prev, &now);
                                    }
                                }
                                last = Some(now.clone());
                                out.push(Watched::NetStatus(now));
                                for w in out {
                                    if tx.send(w).await.is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        next_check = followup
                            .take()
                            .unwrap_or_else(|| Instant::now() + self.inner.watch_fallback);
                    }
                }
            }
            reader.abort();
            if !tx.is_closed() {
                // charon is gone or restarting: try again shortly.
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }

    /// The up/down transitions from `prev` to `now`, with their reasons.
    fn transitions(
        &self,
        diag: &mut Diagnoser,
        prev: &HashMap<VpnConnId, NetStatus>,
        now: &HashMap<VpnConnId, NetStatus>,
    ) -> Vec<Watched> {
        let closed: Vec<(VpnConnId, Instant)> = self
            .inner
            .closed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(c, t)| (c.clone(), *t))
            .collect();
        for (conn, t) in &closed {
            diag.closed_here(conn, *t);
        }
        let up = |m: &HashMap<VpnConnId, NetStatus>, c: &VpnConnId| {
            m.get(c) == Some(&NetStatus::Available)
        };
        let mut conns: Vec<&VpnConnId> = prev.keys().chain(now.keys()).collect();
        conns.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        conns.dedup();
        let (instant, at) = (Instant::now(), unix_now());
        conns
            .into_iter()
            .filter(|c| up(prev, c) != up(now, c))
            .map(|c| Watched::Observed(diag.transition(c, up(now, c), instant, at)))
            .collect()
    }
}

/// Unix seconds now.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// One `log` event through the diagnosis.
fn diagnose_line(diag: &mut Diagnoser, payload: &[u8]) -> Option<Observation> {
    let ev = Session::decode_event::<LogEvent>(payload).ok()?;
    if ev.level > 1 {
        return None;
    }
    let uid = ev.ikesa_uniqueid.and_then(|u| u.parse().ok());
    diag.log(
        ev.ikesa_name.as_deref(),
        uid,
        &ev.msg,
        Instant::now(),
        unix_now(),
    )
}

/// [`StrongSwanDriver::traffic`] from the raw `list-sas` answer at `now`.
fn traffic_of(raw: Vec<HashMap<String, RawIkeSa>>, now: i64) -> HashMap<VpnConnId, Traffic> {
    let num = |v: &Option<String>| v.as_deref().and_then(|x| x.parse::<u64>().ok());
    let ago = |v: &Option<String>| num(v).map(|s| now - i64::try_from(s).unwrap_or(0));
    let mut out: HashMap<VpnConnId, Traffic> = HashMap::new();
    for (name, ike) in raw.into_iter().flatten() {
        let Some(name) = vpcd_conn(&name) else {
            continue;
        };
        if ike.state != "ESTABLISHED" {
            continue;
        }
        let installed: Vec<&RawChildSa> = ike
            .child_sas
            .values()
            .filter(|c| c.state == "INSTALLED")
            .collect();
        if installed.is_empty() {
            continue;
        }
        let established = ago(&ike.established);
        let t = out.entry(name).or_default();
        for c in &installed {
            t.bytes_in += num(&c.bytes_in).unwrap_or(0);
            t.bytes_out += num(&c.bytes_out).unwrap_or(0);
            t.packets_in += num(&c.packets_in).unwrap_or(0);
            t.packets_out += num(&c.packets_out).unwrap_or(0);
            // A CHILD SA installed well after its IKE SA came up replaced
            // one: a rekey (a second's slack for the first one).
            if let (Some(installed), Some(est)) = (ago(&c.install_time), established) {
                if installed > est + 1 {
                    t.last_rekey_at = t.last_rekey_at.max(Some(installed));
                }
            }
        }
        // Of several IKE SAs (during a reauthentication), the newest.
        t.established_at = t.established_at.max(established);
    }
    out
}

async fn connect(ep: &Endpoint) -> Result<Session, ViciError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, Session::connect(ep)).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(ViciError::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "connect timed out",
        ))),
    }
}

/// Subscribe to the events `watch` needs and forward them until the session
/// breaks or the receiver goes away.
async fn read_events(ep: Endpoint, mut tx: mpsc::Sender<(String, Vec<u8>)>) {
    let session = async {
        let mut s = connect(&ep).await?;
        for ev in ["ike-updown", "child-updown", "log"] {
            s.register(ev).await?;
        }
        Ok::<_, ViciError>(s)
    };
    let mut s = match tokio::time::timeout(OP_TIMEOUT, session).await {
        Ok(Ok(s)) => s,
        _ => return,
    };
    // Announce the (re)connection so the watcher re-reads the SAs.
    if tx.send(("connected".into(), Vec::new())).await.is_err() {
        return;
    }
    while let Ok(ev) = s.next_event().await {
        if tx.send(ev).await.is_err() {
            return;
        }
    }
}

/// Logs why tunnels fail, once per (tunnel, reason) a minute.
#[derive(Default)]
struct ReasonLog {
    seen: HashMap<(String, String), Instant>,
}

impl ReasonLog {
    fn consider(&mut self, payload: &[u8]) {
        let Ok(ev) = Session::decode_event::<LogEvent>(payload) else {
            return;
        };
        let Some(name) = ev.ikesa_name else { return };
        if ev.level > 1 || !FAILURE_HINTS.iter().any(|h| ev.msg.contains(h)) {
            return;
        }
        let now = Instant::now();
        self.seen
            .retain(|_, t| now.duration_since(*t) < Duration::from_secs(60));
        if self
            .seen
            .insert((name.clone(), ev.msg.clone()), now)
            .is_none()
        {
            tracing::warn!(tunnel = %name, reason = %ev.msg, "charon reports a tunnel problem");
        }
    }
}

/// The addresses among `v` (charon also takes names and `%any`).
fn ip_addrs(v: &[String]) -> Vec<IpAddr> {
    v.iter().filter_map(|a| a.parse().ok()).collect()
}

fn parse_id(s: Option<String>) -> u64 {
    s.and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[async_trait]
impl VpnDriver for StrongSwanDriver {
    fn describe(&self) -> String {
        format!("strongswan vici {}", self.inner.endpoint)
    }

    async fn apply(&self, spec: &TunnelSpec) -> Result<(), DriverError> {
        self.load(spec).await?;
        tracing::info!(tunnel = %spec.name, "tunnel configuration loaded");
        Ok(())
    }

    async fn remove(&self, id: &VpnConnId) -> Result<(), DriverError> {
        self.unload(id).await?;
        tracing::info!(tunnel = %id, "tunnel removed");
        Ok(())
    }

    /// Closes the tunnel's SAs and loads it again; `start_action = start`
    /// then re-negotiates without a blocking `initiate`.
    async fn reset(&self, spec: &TunnelSpec) -> Result<(), DriverError> {
        self.unload(&spec.name).await?;
        self.load(spec).await?;
        tracing::info!(tunnel = %spec.name, "tunnel reset");
        Ok(())
    }

    async fn loaded(&self) -> Result<Vec<VpnConnId>, DriverError> {
        let raw: Vec<HashMap<String, IgnoredAny>> =
            with_session!(self, s => s.stream("list-conns", "list-conn", &()).await)
                .map_err(|e| self.map_err(e))?;
        let mut ids: Vec<VpnConnId> = raw
            .into_iter()
            .flat_map(|m| m.into_keys())
            .filter_map(|name| vpcd_conn(&name))
            .collect();
        ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Ok(ids)
    }

    async fn net_status(&self) -> Result<HashMap<VpnConnId, NetStatus>, DriverError> {
        Ok(self.snapshot(true).await?.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::spec_default;
    use serde::Serialize;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::UnixListener;

    #[derive(Serialize)]
    struct Answer {
        success: bool,
        errmsg: String,
    }

    /// What the fake charon sends for one command: the events a streamed
    /// command raises (event name, message), then the answer.
    struct Reply {
        events: Vec<(&'static str, Vec<u8>)>,
        answer: Answer,
    }

    impl From<Answer> for Reply {
        fn from(answer: Answer) -> Self {
            Reply {
                events: Vec::new(),
                answer,
            }
        }
    }

    fn frame(kind: u8, name: Option<&str>, body: &[u8]) -> Vec<u8> {
        let mut out = vec![kind];
        if let Some(n) = name {
            out.push(n.len() as u8);
            out.extend_from_slice(n.as_bytes());
        }
        out.extend_from_slice(body);
        let mut framed = (out.len() as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(&out);
        framed
    }

    /// A fake charon: confirms every event (un)registration and answers
    /// every command with `answer(cmd)`, or never answers when it returns
    /// `None`.
    fn fake_charon(
        dir: &tempfile::TempDir,
        answer: impl Fn(&str) -> Option<Reply> + Send + Sync + 'static,
    ) -> (String, tokio::task::JoinHandle<()>) {
        let (uri, task, _) = fake_charon_with_events(dir, answer);
        (uri, task)
    }

    /// [`fake_charon`], and a sender: each event name sent goes (with an
    /// empty message) to every session that registered for events.
    fn fake_charon_with_events(
        dir: &tempfile::TempDir,
        answer: impl Fn(&str) -> Option<Reply> + Send + Sync + 'static,
    ) -> (
        String,
        tokio::task::JoinHandle<()>,
        tokio::sync::broadcast::Sender<&'static str>,
    ) {
        let path = dir.path().join("fake.vici");
        let listener = UnixListener::bind(&path).unwrap();
        let answer = Arc::new(answer);
        let (events, _) = tokio::sync::broadcast::channel::<&'static str>(16);
        let events_tx = events.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let answer = answer.clone();
                let mut events = events.subscribe();
                tokio::spawn(async move {
                    let mut registered = false;
                    loop {
                        // An event session sends nothing after registering,
                        // so its read may be given up for an event.
                        let len = if registered {
                            tokio::select! {
                                len = sock.read_u32() => len,
                                ev = events.recv() => {
                                    let Ok(ev) = ev else { return };
                                    if sock.write_all(&frame(7, Some(ev), &[])).await.is_err() {
                                        return;
                                    }
                                    continue;
                                }
                            }
                        } else {
                            sock.read_u32().await
                        };
                        let Ok(len) = len else {
                            return;
                        };
                        let mut buf = vec![0; len as usize];
                        if sock.read_exact(&mut buf).await.is_err() {
                            return;
                        }
                        // EVENT_REGISTER / EVENT_UNREGISTER: EVENT_CONFIRM.
                        if buf[0] == 3 || buf[0] == 4 {
                            registered = true;
                            if sock.write_all(&frame(5, None, &[])).await.is_err() {
                                return;
                            }
                            continue;
                        }
                        let cmd =
                            String::from_utf8_lossy(&buf[2..2 + buf[1] as usize]).into_owned();
                        let Some(reply) = answer(&cmd) else {
                            // Hang: keep the socket open, answer nothing.
                            tokio::time::sleep(Duration::from_secs(60)).await;
                            return;
                        };
                        let mut out = Vec::new();
                        for (event, body) in &reply.events {
                            out.extend(frame(7, Some(event), body)); // EVENT
                        }
                        let body = serde_vici::to_vec(&reply.answer).unwrap();
                        out.extend(frame(1, None, &body)); // CMD_RESPONSE
                        if sock.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (format!("unix://{}", path.display()), task, events_tx)
    }

    /// A socket that is not there fails at once with the OS's reason (the
    /// error names the path and "No such file"), not by running into the
    /// connect timeout ("connect timed out").
    #[tokio::test]
    async fn missing_socket_is_unreachable_with_the_reason() {
        let d = StrongSwanDriver::new("unix:///nonexistent/vpcd-test.vici").unwrap();
        let spec = spec_default();
        match d.apply(&spec).await {
            Err(DriverError::Unreachable(msg)) => {
                assert!(!msg.contains(spec.settings.pre_shared_key.expose()));
                assert!(msg.contains("/nonexistent/vpcd-test.vici"), "{msg}");
                assert!(msg.contains("No such file"), "{msg}");
                assert!(!msg.contains("timed out"), "{msg}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            d.net_status().await,
            Err(DriverError::Unreachable(_))
        ));
    }

    #[tokio::test]
    async fn refused_key_is_reported_without_the_key() {
        let dir = tempfile::tempdir().unwrap();
        // A daemon that echoes what it got, key included, in its error.
        let (uri, _t) = fake_charon(&dir, |cmd| {
            Some(
                Answer {
                    success: false,
                    errmsg: format!("{cmd} failed: bad secret test-psk-1"),
                }
                .into(),
            )
        });
        let d = StrongSwanDriver::new(&uri).unwrap();
        let err = d.apply(&spec_default()).await.unwrap_err();
        assert_eq!(
            err,
            DriverError::Rejected("charon refused the pre-shared key of vpnx-dflt0001".into())
        );
    }

    #[tokio::test]
    async fn refused_conn_is_rejected_with_charons_reason() {
        let dir = tempfile::tempdir().unwrap();
        let (uri, _t) = fake_charon(&dir, |cmd| {
            Some(
                Answer {
                    success: cmd != "load-conn",
                    errmsg: "invalid value for: proposals, config discarded".into(),
                }
                .into(),
            )
        });
        let d = StrongSwanDriver::new(&uri).unwrap();
        match d.apply(&spec_default()).await.unwrap_err() {
            DriverError::Rejected(msg) => {
                assert!(
                    msg.contains("load-conn vpnx-dflt0001: invalid value for: proposals"),
                    "{msg}"
                )
            }
            other => panic!("{other:?}"),
        }
        // Removing something charon does not know is fine.
        d.remove(&"vpnx-dflt0001".parse().unwrap()).await.unwrap();
    }

    #[tokio::test]
    async fn a_silent_daemon_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let (uri, _t) = fake_charon(&dir, |_| None);
        let d = StrongSwanDriver::new(&uri)
            .unwrap()
            .with_timeouts(Duration::from_millis(300), WATCH_FALLBACK);
        let start = Instant::now();
        let err = d.loaded().await.unwrap_err();
        assert!(matches!(err, DriverError::Unreachable(_)), "{err:?}");
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    /// A `list-conn` event: connection `name` at 203.0.113.1 (to
    /// `remote_addrs`, left out when empty).
    fn conn_event(name: &'static str, remote_addrs: Vec<&'static str>) -> (&'static str, Vec<u8>) {
        #[derive(Serialize)]
        struct Conn {
            local_addrs: Vec<&'static str>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            remote_addrs: Vec<&'static str>,
        }
        let conn = Conn {
            local_addrs: vec!["203.0.113.1"],
            remote_addrs,
        };
        (
            "list-conn",
            serde_vici::to_vec(&HashMap::from([(name, conn)])).unwrap(),
        )
    }

    /// A `list-sa` event: `name`'s IKE SA established with one CHILD SA
    /// installed.
    fn up_sa_event(name: &'static str) -> (&'static str, Vec<u8>) {
        #[derive(Serialize)]
        struct Child {
            state: &'static str,
        }
        #[derive(Serialize)]
        struct Sa {
            state: &'static str,
            #[serde(rename = "child-sas")]
            child_sas: HashMap<&'static str, Child>,
        }
        let sa = Sa {
            state: "ESTABLISHED",
            child_sas: HashMap::from([("c-1", Child { state: "INSTALLED" })]),
        };
        (
            "list-sa",
            serde_vici::to_vec(&HashMap::from([(name, sa)])).unwrap(),
        )
    }

    /// A node that also carries connections vpcd did not make: one of
    /// vpcd's (up), an operator's own (up), and a `vpnx-` name that is not a
    /// connection id (malformed suffix).
    fn mixed_node(cmd: &str) -> Option<Reply> {
        const NAMES: [&str; 3] = ["vpnx-ours0001", "office-vpn", "vpnx-NOT_AN_ID"];
        let ok = Answer {
            success: true,
            errmsg: String::new(),
        };
        let events = match cmd {
            "list-conns" => NAMES.iter().map(|n| conn_event(n, Vec::new())).collect(),
            "list-sas" => NAMES.iter().map(|n| up_sa_event(n)).collect(),
            _ => Vec::new(),
        };
        Some(Reply { events, answer: ok })
    }

    #[tokio::test]
    async fn connections_that_are_not_vpcds_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (uri, _t) = fake_charon(&dir, mixed_node);
        let d = StrongSwanDriver::new(&uri).unwrap();
        let ours: VpnConnId = "vpnx-ours0001".parse().unwrap();
        assert_eq!(d.loaded().await.unwrap(), vec![ours.clone()]);
        assert_eq!(
            d.net_status().await.unwrap(),
            HashMap::from([(ours.clone(), NetStatus::Available)])
        );
        let sas = d.list_sas().await.unwrap();
        assert_eq!(sas.iter().map(|s| &s.name).collect::<Vec<_>>(), vec![&ours]);
        let conns = d.list_conns().await.unwrap();
        assert_eq!(
            conns.iter().map(|c| &c.name).collect::<Vec<_>>(),
            vec![&ours]
        );
    }

    /// A fake charon whose `list-conns` names the connections in `conns`
    /// (at 203.0.113.1 to 198.51.100.1) and whose `list-sas` has an
    /// established IKE SA with an installed CHILD SA for each name in `up`;
    /// every command it gets is recorded in `cmds`.
    #[derive(Default)]
    struct Charon {
        conns: Vec<&'static str>,
        up: Vec<&'static str>,
        cmds: Vec<String>,
    }

    fn charon_answer(state: &std::sync::Mutex<Charon>, cmd: &str) -> Option<Reply> {
        let mut st = state.lock().unwrap();
        st.cmds.push(cmd.to_owned());
        let events = match cmd {
            "list-conns" => st
                .conns
                .iter()
                .map(|n| conn_event(n, vec!["198.51.100.1"]))
                .collect(),
            "list-sas" => st.up.iter().map(|n| up_sa_event(n)).collect(),
            _ => Vec::new(),
        };
        let answer = Answer {
            success: true,
            errmsg: String::new(),
        };
        Some(Reply { events, answer })
    }

    fn count(state: &std::sync::Mutex<Charon>, cmd: &str) -> usize {
        state
            .lock()
            .unwrap()
            .cmds
            .iter()
            .filter(|c| *c == cmd)
            .count()
    }

    /// An up/down event is answered from `list-sas` alone: the loaded
    /// connections listed when the watch began are not listed again, and
    /// the tunnel that came up is reported available.
    #[tokio::test]
    async fn an_event_reads_the_sas_but_not_the_conns() {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(std::sync::Mutex::new(Charon {
            conns: vec!["vpnx-ours0001", "vpnx-idle0001"],
            ..Default::default()
        }));
        let st = state.clone();
        let (uri, _t, events) = fake_charon_with_events(&dir, move |cmd| charon_answer(&st, cmd));
        // No periodic re-read during the test: only the event can explain
        // what is seen.
        let d = StrongSwanDriver::new(&uri)
            .unwrap()
            .with_timeouts(OP_TIMEOUT, Duration::from_secs(600));
        let mut watch = Box::pin(d.watch());
        let ours: VpnConnId = "vpnx-ours0001".parse().unwrap();
        let idle: VpnConnId = "vpnx-idle0001".parse().unwrap();
        assert_eq!(
            watch.next().await.unwrap(),
            HashMap::from([
                (ours.clone(), NetStatus::Unavailable),
                (idle.clone(), NetStatus::Unavailable)
            ])
        );
        assert_eq!(count(&state, "list-conns"), 1);
        let sas_before = count(&state, "list-sas");
        // The tunnel comes up, and only the event says so. An SA of a
        // connection that is not loaded is not reported.
        state.lock().unwrap().up = vec!["vpnx-ours0001", "vpnx-gone0001"];
        events.send("child-updown").unwrap();
        assert_eq!(
            watch.next().await.unwrap(),
            HashMap::from([(ours, NetStatus::Available), (idle, NetStatus::Unavailable)])
        );
        assert!(count(&state, "list-sas") > sas_before);
        assert_eq!(
            count(&state, "list-conns"),
            1,
            "{:?}",
            state.lock().unwrap().cmds
        );
    }

    /// The driver's own loads and unloads change the cached connections
    /// without a `list-conns`; a tunnel that is not loaded is not
    /// available even with an SA up; the periodic listing (`net_status`)
    /// picks up what others changed.
    #[tokio::test]
    async fn own_loads_and_unloads_are_reflected_without_a_listing() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec_default();
        // An SA up under the name before and after the tunnel is loaded.
        let state = Arc::new(std::sync::Mutex::new(Charon {
            up: vec!["vpnx-dflt0001"],
            ..Default::default()
        }));
        let st = state.clone();
        let (uri, _t) = fake_charon(&dir, move |cmd| charon_answer(&st, cmd));
        let d = StrongSwanDriver::new(&uri).unwrap();
        assert_eq!(d.net_status().await.unwrap(), HashMap::new());
        assert_eq!(count(&state, "list-conns"), 1);

        d.apply(&spec).await.unwrap();
        let (now, conns) = d.snapshot(false).await.unwrap();
        assert_eq!(
            now,
            HashMap::from([(spec.name.clone(), NetStatus::Available)])
        );
        assert_eq!(
            conns.get(&spec.name),
            Some(&(vec![spec.local_addr], vec![spec.remote_addr]))
        );
        d.reset(&spec).await.unwrap();
        assert_eq!(
            d.snapshot(false).await.unwrap().0,
            HashMap::from([(spec.name.clone(), NetStatus::Available)])
        );
        d.remove(&spec.name).await.unwrap();
        assert_eq!(d.snapshot(false).await.unwrap().0, HashMap::new());
        assert_eq!(count(&state, "list-conns"), 1);

        // Loaded by someone else: seen at the next listing.
        state.lock().unwrap().conns = vec!["vpnx-dflt0001"];
        assert_eq!(d.snapshot(false).await.unwrap().0, HashMap::new());
        assert_eq!(
            d.net_status().await.unwrap(),
            HashMap::from([(spec.name.clone(), NetStatus::Available)])
        );
        assert_eq!(count(&state, "list-conns"), 2);
    }

    /// A command charon refuses leaves the cache unknown: the next read
    /// lists the connections again.
    #[tokio::test]
    async fn a_failed_load_lists_the_conns_again() {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(std::sync::Mutex::new(Charon::default()));
        let st = state.clone();
        let (uri, _t) = fake_charon(&dir, move |cmd| {
            let mut r = charon_answer(&st, cmd)?;
            r.answer.success = cmd != "load-conn";
            Some(r)
        });
        let d = StrongSwanDriver::new(&uri).unwrap();
        assert_eq!(d.net_status().await.unwrap(), HashMap::new());
        assert!(d.apply(&spec_default()).await.is_err());
        d.snapshot(false).await.unwrap();
        assert_eq!(count(&state, "list-conns"), 2);
    }

    fn child(state: &str, bytes: u64, packets: u64, installed: u64) -> RawChildSa {
        RawChildSa {
            name: "c".into(),
            unique_id: None,
            state: state.into(),
            spi_in: String::new(),
            spi_out: String::new(),
            local_ts: Vec::new(),
            remote_ts: Vec::new(),
            bytes_in: Some(bytes.to_string()),
            bytes_out: Some((2 * bytes).to_string()),
            packets_in: Some(packets.to_string()),
            packets_out: Some((2 * packets).to_string()),
            install_time: Some(installed.to_string()),
        }
    }

    /// Counters summed over the installed CHILD SAs of established IKE
    /// SAs; times from "seconds ago"; a child installed well after its IKE
    /// SA is a rekey; other connections and SAs not up are left out.
    #[test]
    fn traffic_from_list_sas() {
        let ike = |state: &str, established: u64, children: Vec<(&str, RawChildSa)>| RawIkeSa {
            unique_id: None,
            state: state.into(),
            established: Some(established.to_string()),
            child_sas: children
                .into_iter()
                .map(|(k, c)| (k.to_owned(), c))
                .collect(),
        };
        let raw = vec![
            HashMap::from([(
                "vpnx-ours0001".to_owned(),
                ike(
                    "ESTABLISHED",
                    100,
                    vec![
                        ("a", child("INSTALLED", 168, 2, 100)),
                        ("b", child("INSTALLED", 32, 1, 40)),
                        ("c", child("REKEYED", 1000, 1000, 100)),
                    ],
                ),
            )]),
            HashMap::from([(
                "vpnx-down0001".to_owned(),
                ike("CONNECTING", 0, vec![("a", child("INSTALLED", 1, 1, 0))]),
            )]),
            HashMap::from([(
                "office-vpn".to_owned(),
                ike("ESTABLISHED", 5, vec![("a", child("INSTALLED", 1, 1, 5))]),
            )]),
        ];
        let t = traffic_of(raw, 10_000);
        let ours: VpnConnId = "vpnx-ours0001".parse().unwrap();
        assert_eq!(
            t,
            HashMap::from([(
                ours,
                Traffic {
                    bytes_in: 200,
                    bytes_out: 400,
                    packets_in: 3,
                    packets_out: 6,
                    established_at: Some(9_900),
                    last_rekey_at: Some(9_960),
                }
            )])
        );
    }

    #[test]
    fn bad_uris() {
        assert!(StrongSwanDriver::new("/run/charon.vici").is_err());
        let d = StrongSwanDriver::new("tcp://127.0.0.1:4502").unwrap();
        assert_eq!(d.describe(), "strongswan vici tcp://127.0.0.1:4502");
    }
}
