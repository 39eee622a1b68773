//! From charon's log lines to plain reasons: why a tunnel's negotiation
//! failed and why it went down. Pure: fed the VICI `log` events and the
//! tunnels' up/down transitions, it returns [`Observation`]s.
//!
//! # What is read, and what never leaves
//! Only lines matching one of the patterns in [`clue`] mean anything; every
//! other line is ignored. A match yields a fixed [`FailureKind`] or
//! [`EventReason`], plus at most a proposal list or a peer identity, each
//! passed through [`safe_detail`]. No log text is forwarded as such, so
//! nothing charon might print (never a key, but the rule does not rely on
//! that) reaches an answer.
//!
//! # Attributing a line to a tunnel
//! A line carries the IKE SA's name (the vpcd connection id) once charon
//! has chosen the connection; before that (a responder that has not yet
//! matched the peer's identity, where a wrong IKEv1 key shows) it carries
//! only the SA's unique id. The addresses of that SA come from the packet
//! lines ("received packet: from R[500] to L[500]"), and (gateway address,
//! peer address) names exactly one vpcd tunnel on a node (the store's clash
//! rule), so such lines are attributed through the loaded connections'
//! addresses.
//!
//! # One SA, one story
//! Clues are collected per IKE SA: an IKEv1 initiator with a wrong key sees
//! only garbled answers and then "giving up after 3 retransmits", which is
//! a key mismatch, not a silent peer; "giving up" on an established SA that
//! was sending DPD requests is a DPD timeout.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use vpcd_types::diag::{safe_detail, EventReason, FailureDetail, FailureKind, Stage};
use vpcd_types::VpnConnId;

/// What the driver reports besides net status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// A negotiation of the tunnel failed.
    Failure {
        conn: VpnConnId,
        kind: FailureKind,
        detail: FailureDetail,
        /// Unix seconds.
        at: i64,
    },
    /// The tunnel went up or down.
    Event {
        conn: VpnConnId,
        up: bool,
        reason: EventReason,
        /// Unix seconds.
        at: i64,
    },
}

/// What one log line says, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Clue {
    /// The line alone names a failure.
    Failure(FailureKind),
    /// A notify of this kind came from the peer: its meaning depends on the
    /// SA's stage.
    PeerRefusedProposals,
    PeerRefusedId,
    /// The proposals compared when none matched.
    Offered(Stage, String),
    Allowed(Stage, String),
    /// The comparison above found nothing.
    NoProposal,
    /// The responder looked for a config for this peer identity.
    PeerIdentity(Option<String>),
    /// Payloads could not be decrypted or parsed (IKEv1 with a wrong key).
    Garbled,
    /// Retransmits exhausted.
    GaveUp,
    DpdSent,
    /// An IKEv1 DPD timeout with `dpd_action = restart`.
    Restarting,
    Established,
    PeerDeleted,
    /// Addresses of the SA: (local, remote).
    Addresses(Option<IpAddr>, Option<IpAddr>),
}

/// The proposal list after `prefix`, e.g. "IKE:AES_CBC_128/..., IKE:...".
fn proposals(msg: &str, prefix: &str) -> Option<(Stage, String)> {
    let list = msg.strip_prefix(prefix)?.trim();
    let stage = if list.starts_with("IKE:") {
        Stage::Ike
    } else {
        Stage::Ipsec
    };
    Some((stage, safe_detail(list)?))
}

/// `203.0.113.1[500]` -> the address.
fn host(s: &str) -> Option<IpAddr> {
    s.split('[').next()?.trim().parse().ok()
}

/// The mapping from charon's lines (levels 0 and 1, the ones VICI
/// forwards; strongSwan 5.9) to clues. Samples of each are in the tests.
pub(crate) fn clue(msg: &str) -> Option<Clue> {
    use Clue::*;
    let has = |s: &str| msg.contains(s);
    // Order matters where lines share words.
    if let Some(p) = proposals(msg, "received proposals:") {
        return Some(Offered(p.0, p.1));
    }
    if let Some(p) = proposals(msg, "configured proposals:") {
        return Some(Allowed(p.0, p.1));
    }
    if has("received NO_PROPOSAL_CHOSEN") {
        return Some(PeerRefusedProposals);
    }
    if has("received INVALID_ID_INFORMATION") {
        return Some(PeerRefusedId);
    }
    if has("no proposal found")
        || has("no acceptable proposal found")
        || has("no matching proposal found")
    {
        return Some(NoProposal);
    }
    if has("received AUTHENTICATION_FAILED")
        || has("but MAC mismatched")
        || has("calculated HASH does not match HASH payload")
    {
        return Some(Failure(FailureKind::PskMismatch));
    }
    if has("could not decrypt payloads")
        || has("decryption failed?")
        || has("message parsing failed")
        || has("ignore malformed INFORMATIONAL")
    {
        return Some(Garbled);
    }
    if let Some(rest) = msg
        .strip_prefix("looking for pre-shared key peer configs matching ")
        .or_else(|| msg.strip_prefix("looking for peer configs matching "))
    {
        // "L...R[ID]" (IKEv1) or "L[ID]...R[ID]" (IKEv2).
        let remote = rest.rsplit("...").next().unwrap_or("");
        let id = remote
            .split_once('[')
            .and_then(|(_, id)| id.strip_suffix(']'))
            .and_then(safe_detail)
            .filter(|id| looks_like_identity(id));
        return Some(PeerIdentity(id));
    }
    if has("no peer config found") || has("no matching peer config found") {
        return Some(Failure(FailureKind::IdentityMismatch));
    }
    if has("TS_UNACCEPTABLE")
        || has("no matching CHILD_SA config found")
        || has("traffic selectors") && has("unacceptable")
    {
        return Some(Failure(FailureKind::TrafficSelectorMismatch));
    }
    if has("DPD check timed out") {
        return Some(Failure(FailureKind::DpdTimeout));
    }
    if has("giving up after") || has("peer not responding") {
        return Some(GaveUp);
    }
    if has("sending DPD request") {
        return Some(DpdSent);
    }
    if msg.starts_with("restarting CHILD_SA") {
        return Some(Restarting);
    }
    if msg.starts_with("IKE_SA ") && has(" established between ") {
        return Some(Established);
    }
    if msg.starts_with("received DELETE for") {
        return Some(PeerDeleted);
    }
    if let Some(rest) = msg.strip_prefix("received packet: from ") {
        // "R[p] to L[p] (n bytes)"
        let (r, l) = rest.split_once(" to ")?;
        return Some(Addresses(host(l), host(r)));
    }
    if let Some(rest) = msg.strip_prefix("sending packet: from ") {
        let (l, r) = rest.split_once(" to ")?;
        return Some(Addresses(host(l), host(r)));
    }
    if let Some((r, _)) = msg.split_once(" is initiating a") {
        return Some(Addresses(None, host(r)));
    }
    None
}

/// An IP address or a domain name (letters, digits, dots, hyphens; a dot
/// inside): what a vpcd identity is, and nothing else is shown.
fn looks_like_identity(id: &str) -> bool {
    id.parse::<IpAddr>().is_ok()
        || (id.contains('.')
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'))
}

/// How long an IKE SA's clues are kept after its last line.
const SA_TTL: Duration = Duration::from_secs(300);
/// At most this many IKE SAs are followed (the oldest are forgotten).
const SA_MAX: usize = 4096;
/// A reason explains a down transition seen this soon after it.
const REASON_TTL: Duration = Duration::from_secs(60);

#[derive(Default)]
struct SaClues {
    conn: Option<VpnConnId>,
    local: Option<IpAddr>,
    remote: Option<IpAddr>,
    established: bool,
    dpd_sent: bool,
    peer_deleted: bool,
    garbled: bool,
    offered: Option<(Stage, String)>,
    allowed: Option<(Stage, String)>,
    peer_identity: Option<String>,
    seen: Option<Instant>,
}

/// The per-node state of the diagnosis.
#[derive(Default)]
pub(crate) struct Diagnoser {
    sas: HashMap<u64, SaClues>,
    /// (gateway address, peer address) -> tunnel, from the loaded conns.
    by_addr: HashMap<(IpAddr, IpAddr), VpnConnId>,
    /// The latest reason each tunnel might have gone down for.
    reasons: HashMap<VpnConnId, (EventReason, Instant)>,
}

impl Diagnoser {
    /// The loaded tunnels' (gateway addresses, peer addresses).
    pub(crate) fn set_conns(
        &mut self,
        conns: impl IntoIterator<Item = (VpnConnId, Vec<IpAddr>, Vec<IpAddr>)>,
    ) {
        self.by_addr.clear();
        let mut loaded = std::collections::HashSet::new();
        for (id, locals, remotes) in conns {
            loaded.insert(id.clone());
            for l in &locals {
                for r in &remotes {
                    self.by_addr.insert((*l, *r), id.clone());
                }
            }
        }
        // Reasons of tunnels no longer loaded are kept for a while: the
        // down transition of an unloaded tunnel is seen after the unload.
        let now = Instant::now();
        self.reasons
            .retain(|c, (_, t)| loaded.contains(c) || now.duration_since(*t) <= REASON_TTL);
    }

    /// The gateway closed the tunnel (unload, reset) at `at`; a reason
    /// seen later wins.
    pub(crate) fn closed_here(&mut self, conn: &VpnConnId, at: Instant) {
        match self.reasons.get(conn) {
            Some((_, t)) if *t >= at => {}
            _ => {
                self.reasons
                    .insert(conn.clone(), (EventReason::ClosedHere, at));
            }
        }
    }

    /// One log line: `name` and `unique_id` of its IKE SA, if any.
    pub(crate) fn log(
        &mut self,
        name: Option<&str>,
        unique_id: Option<u64>,
        msg: &str,
        now: Instant,
        at: i64,
    ) -> Option<Observation> {
        let clue = clue(msg)?;
        let uid = unique_id?;
        self.forget_old(now);
        let by_addr = &self.by_addr;
        let sa = self.sas.entry(uid).or_default();
        sa.seen = Some(now);
        if sa.conn.is_none() {
            sa.conn = name.and_then(|n| n.parse::<VpnConnId>().ok());
        }
        let mut failure: Option<(FailureKind, FailureDetail)> = None;
        let mut peer_closed = false;
        let stage = |sa: &SaClues| {
            if sa.established {
                Stage::Ipsec
            } else {
                Stage::Ike
            }
        };
        match clue {
            Clue::Failure(FailureKind::IdentityMismatch) => {
                let detail = FailureDetail {
                    peer_identity: sa.peer_identity.clone(),
                    ..FailureDetail::default()
                };
                failure = Some((FailureKind::IdentityMismatch, detail));
            }
            Clue::Failure(kind) => failure = Some((kind, FailureDetail::default())),
            Clue::PeerRefusedProposals => {
                let detail = FailureDetail {
                    stage: Some(stage(sa)),
                    ..FailureDetail::default()
                };
                failure = Some((FailureKind::NoCommonProposal, detail));
            }
            Clue::PeerRefusedId => {
                // IKEv1 Quick Mode answers a traffic selector mismatch with
                // INVALID_ID_INFORMATION.
                let kind = if sa.established {
                    FailureKind::TrafficSelectorMismatch
                } else {
                    FailureKind::IdentityMismatch
                };
                failure = Some((kind, FailureDetail::default()));
            }
            Clue::Offered(st, p) => sa.offered = Some((st, p)),
            Clue::Allowed(st, p) => sa.allowed = Some((st, p)),
            Clue::NoProposal => {
                let offered = sa.offered.take();
                let allowed = sa.allowed.take();
                let st = offered
                    .as_ref()
                    .or(allowed.as_ref())
                    .map(|(s, _)| *s)
                    .unwrap_or_else(|| stage(sa));
                let detail = FailureDetail {
                    stage: Some(st),
                    peer_offered: offered.map(|(_, p)| p),
                    gateway_allows: allowed.map(|(_, p)| p),
                    peer_identity: None,
                };
                failure = Some((FailureKind::NoCommonProposal, detail));
            }
            Clue::PeerIdentity(id) => sa.peer_identity = id,
            Clue::Garbled => {
                if !sa.established {
                    sa.garbled = true;
                    if msg.contains("decrypt") {
                        failure = Some((FailureKind::PskMismatch, FailureDetail::default()));
                    }
                }
            }
            Clue::GaveUp => {
                let kind = if sa.garbled {
                    FailureKind::PskMismatch
                } else if sa.established && sa.dpd_sent {
                    FailureKind::DpdTimeout
                } else {
                    FailureKind::PeerNotAnswering
                };
                failure = Some((kind, FailureDetail::default()));
            }
            Clue::DpdSent => sa.dpd_sent = true,
            Clue::Restarting => {
                if sa.established && sa.dpd_sent && !sa.peer_deleted {
                    failure = Some((FailureKind::DpdTimeout, FailureDetail::default()));
                }
            }
            Clue::Established => {
                sa.established = true;
                sa.garbled = false;
            }
            Clue::PeerDeleted => {
                sa.peer_deleted = true;
                peer_closed = true;
            }
            Clue::Addresses(l, r) => {
                sa.local = sa.local.or(l);
                sa.remote = sa.remote.or(r);
            }
        }
        if sa.conn.is_none() {
            if let (Some(l), Some(r)) = (sa.local, sa.remote) {
                sa.conn = by_addr.get(&(l, r)).cloned();
            }
        }
        let conn = sa.conn.clone()?;
        if peer_closed {
            self.reasons
                .insert(conn.clone(), (EventReason::PeerClosed, now));
        }
        let (kind, detail) = failure?;
        self.reasons
            .insert(conn.clone(), (EventReason::Failure(kind), now));
        Some(Observation::Failure {
            conn,
            kind,
            detail,
            at,
        })
    }

    /// A tunnel went up or down (seen in the net status).
    pub(crate) fn transition(
        &mut self,
        conn: &VpnConnId,
        up: bool,
        now: Instant,
        at: i64,
    ) -> Observation {
        let reason = if up {
            self.reasons.remove(conn);
            EventReason::Negotiated
        } else {
            match self.reasons.get(conn) {
                Some((r, t)) if now.duration_since(*t) <= REASON_TTL => *r,
                _ => EventReason::Unknown,
            }
        };
        Observation::Event {
            conn: conn.clone(),
            up,
            reason,
            at,
        }
    }

    /// Keep the SA table bounded: when full, forget the SAs not heard of
    /// for [`SA_TTL`], and if that is not enough, the older half.
    fn forget_old(&mut self, now: Instant) {
        if self.sas.len() < SA_MAX {
            return;
        }
        self.sas
            .retain(|_, s| s.seen.is_some_and(|t| now.duration_since(t) <= SA_TTL));
        if self.sas.len() >= SA_MAX / 2 {
            let mut seen: Vec<Instant> = self.sas.values().filter_map(|s| s.seen).collect();
            seen.sort();
            let cut = seen[seen.len() / 2];
            self.sas.retain(|_, s| s.seen.is_some_and(|t| t > cut));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> VpnConnId {
        "vpnx-dflt0001".parse().unwrap()
    }

    fn diagnoser() -> Diagnoser {
        let mut d = Diagnoser::default();
        d.set_conns([(
            conn(),
            vec!["203.0.113.1".parse().unwrap()],
            vec!["198.51.100.1".parse().unwrap()],
        )]);
        d
    }

    /// Feed `(name, unique id, message)` lines as charon 5.9.8 wrote them
    /// (captured in the namespace test bed at level 1, the level VICI
    /// forwards); the failures reported.
    fn feed(d: &mut Diagnoser, lines: &[(&str, u64, &str)]) -> Vec<(FailureKind, FailureDetail)> {
        let now = Instant::now();
        lines
            .iter()
            .filter_map(|(name, uid, msg)| {
                let name = (!name.is_empty()).then_some(*name);
                d.log(name, Some(*uid), msg, now, 1000)
            })
            .map(|o| match o {
                Observation::Failure {
                    kind,
                    detail,
                    conn: c,
                    at,
                } => {
                    assert_eq!((c, at), (conn(), 1000));
                    (kind, detail)
                }
                other => panic!("{other:?}"),
            })
            .collect()
    }

    fn kinds(v: &[(FailureKind, FailureDetail)]) -> Vec<FailureKind> {
        v.iter().map(|(k, _)| *k).collect()
    }

    const N: &str = "vpnx-dflt0001";

    /// IKEv1 main mode, the gateway answering a peer with another key: the
    /// SA has no name yet, only its addresses say whose it is.
    #[test]
    fn ikev1_main_mode_wrong_key_as_responder() {
        let mut d = diagnoser();
        let got = feed(
            &mut d,
            &[
                (
                    "",
                    2,
                    "received packet: from 198.51.100.1[500] to 203.0.113.1[500] (176 bytes)",
                ),
                ("", 2, "198.51.100.1 is initiating a Main Mode IKE_SA"),
                (
                    "",
                    2,
                    "selected proposal: IKE:3DES_CBC/HMAC_MD5_96/PRF_HMAC_MD5/MODP_1024",
                ),
                (
                    "",
                    2,
                    "received packet: from 198.51.100.1[4500] to 203.0.113.1[4500] (92 bytes)",
                ),
                ("", 2, "invalid ID_V1 payload length, decryption failed?"),
                ("", 2, "could not decrypt payloads"),
                ("", 2, "message parsing failed"),
                ("", 2, "ID_PROT request with message ID 0 processing failed"),
            ],
        );
        assert!(!got.is_empty());
        assert!(
            kinds(&got).iter().all(|k| *k == FailureKind::PskMismatch),
            "{got:?}"
        );
    }

    /// The same mismatch seen by the initiator: garbled answers, then the
    /// retransmits run out. A key mismatch, not a silent peer.
    #[test]
    fn ikev1_main_mode_wrong_key_as_initiator() {
        let mut d = diagnoser();
        let got = feed(
            &mut d,
            &[
                (
                    N,
                    2,
                    "initiating Main Mode IKE_SA vpnx-dflt0001[2] to 203.0.113.1",
                ),
                (
                    N,
                    2,
                    "selected proposal: IKE:3DES_CBC/HMAC_MD5_96/PRF_HMAC_MD5/MODP_1024",
                ),
                (N, 2, "message parsing failed"),
                (N, 2, "ignore malformed INFORMATIONAL request"),
                (N, 2, "sending retransmit 1 of request message ID 0, seq 3"),
                (N, 2, "giving up after 3 retransmits"),
                (N, 2, "peer not responding, trying again (2/0)"),
            ],
        );
        assert_eq!(kinds(&got), vec![FailureKind::PskMismatch; 2]);
    }

    #[test]
    fn ikev2_and_aggressive_wrong_keys() {
        let mut d = diagnoser();
        for line in [
            "tried 1 shared key for '203.0.113.1' - '198.51.100.1', but MAC mismatched",
            "received AUTHENTICATION_FAILED notify error",
            "received AUTHENTICATION_FAILED error notify",
            "calculated HASH does not match HASH payload",
        ] {
            assert_eq!(
                kinds(&feed(&mut d, &[(N, 3, line)])),
                vec![FailureKind::PskMismatch],
                "{line}"
            );
        }
    }

    /// The gateway as responder compares the peer's proposals with its own
    /// and names both.
    #[test]
    fn proposal_mismatch_names_both_sides() {
        let mut d = diagnoser();
        let got = feed(
            &mut d,
            &[
                (
                    "",
                    2,
                    "received packet: from 198.51.100.1[500] to 203.0.113.1[500] (176 bytes)",
                ),
                ("", 2, "198.51.100.1 is initiating a Main Mode IKE_SA"),
                (
                    "",
                    2,
                    "received proposals: IKE:AES_CBC_128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_2048",
                ),
                (
                    "",
                    2,
                    "configured proposals: IKE:3DES_CBC/HMAC_MD5_96/PRF_HMAC_MD5/MODP_1024",
                ),
                ("", 2, "no proposal found"),
            ],
        );
        assert_eq!(
            got,
            vec![(
                FailureKind::NoCommonProposal,
                FailureDetail {
                    stage: Some(Stage::Ike),
                    peer_offered: Some(
                        "IKE:AES_CBC_128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_2048".into()
                    ),
                    gateway_allows: Some("IKE:3DES_CBC/HMAC_MD5_96/PRF_HMAC_MD5/MODP_1024".into()),
                    peer_identity: None,
                }
            )]
        );
        // Quick Mode (ESP) on an established SA.
        let got = feed(
            &mut d,
            &[
                (N, 4, "IKE_SA vpnx-dflt0001[4] established between 203.0.113.1[203.0.113.1]...198.51.100.1[198.51.100.1]"),
                (N, 4, "received proposals: ESP:AES_CBC_128/HMAC_SHA1_96/MODP_2048/NO_EXT_SEQ"),
                (N, 4, "configured proposals: ESP:3DES_CBC/HMAC_MD5_96/NO_EXT_SEQ"),
                (N, 4, "no matching proposal found, sending NO_PROPOSAL_CHOSEN"),
            ],
        );
        assert_eq!(got[0].1.stage, Some(Stage::Ipsec));
        assert_eq!(
            got[0].1.peer_offered.as_deref(),
            Some("ESP:AES_CBC_128/HMAC_SHA1_96/MODP_2048/NO_EXT_SEQ")
        );
        // As initiator, only the refusal is known.
        let got = feed(
            &mut d,
            &[
                (
                    N,
                    1,
                    "initiating Main Mode IKE_SA vpnx-dflt0001[1] to 198.51.100.1",
                ),
                (N, 1, "received NO_PROPOSAL_CHOSEN error notify"),
            ],
        );
        assert_eq!(
            got,
            vec![(
                FailureKind::NoCommonProposal,
                FailureDetail {
                    stage: Some(Stage::Ike),
                    ..Default::default()
                }
            )]
        );
        let got = feed(
            &mut d,
            &[(N, 5, "received NO_PROPOSAL_CHOSEN notify error")],
        );
        assert_eq!(kinds(&got), vec![FailureKind::NoCommonProposal]);
    }

    #[test]
    fn identity_mismatch_names_the_peers_identity() {
        let mut d = diagnoser();
        let got = feed(
            &mut d,
            &[
                ("", 2, "received packet: from 198.51.100.1[500] to 203.0.113.1[500] (176 bytes)"),
                ("", 2, "looking for pre-shared key peer configs matching 203.0.113.1...198.51.100.1[office.example.net]"),
                ("", 2, "no peer config found"),
            ],
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, FailureKind::IdentityMismatch);
        assert_eq!(
            got[0].1.peer_identity.as_deref(),
            Some("office.example.net")
        );
        // An identity that is neither an address nor a domain name is not
        // shown.
        let got = feed(
            &mut d,
            &[
                ("", 7, "received packet: from 198.51.100.1[500] to 203.0.113.1[500] (176 bytes)"),
                ("", 7, "looking for peer configs matching 203.0.113.1[203.0.113.1]...198.51.100.1[somekey]"),
                ("", 7, "no matching peer config found"),
            ],
        );
        assert_eq!(got[0].1.peer_identity, None);
        assert_eq!(
            kinds(&feed(
                &mut d,
                &[(N, 8, "received INVALID_ID_INFORMATION error notify")]
            )),
            vec![FailureKind::IdentityMismatch]
        );
    }

    #[test]
    fn a_silent_peer_and_a_dead_one() {
        let mut d = diagnoser();
        // Stopped peer: no answer at all.
        let got = feed(
            &mut d,
            &[
                (
                    N,
                    3,
                    "initiating Main Mode IKE_SA vpnx-dflt0001[3] to 198.51.100.1",
                ),
                (N, 3, "sending retransmit 1 of request message ID 0, seq 1"),
                (N, 3, "giving up after 3 retransmits"),
            ],
        );
        assert_eq!(kinds(&got), vec![FailureKind::PeerNotAnswering]);
        // IKEv1 DPD with dpd_action = restart.
        let got = feed(
            &mut d,
            &[
                (N, 2, "IKE_SA vpnx-dflt0001[2] established between 203.0.113.1[203.0.113.1]...198.51.100.1[198.51.100.1]"),
                (N, 2, "sending DPD request"),
                (N, 2, "sending DPD request"),
                (N, 2, "restarting CHILD_SA vpnx-dflt0001-1"),
            ],
        );
        assert_eq!(kinds(&got), vec![FailureKind::DpdTimeout]);
        // IKEv2: the DPD exchange is retransmitted, then given up.
        let got = feed(
            &mut d,
            &[
                (N, 9, "IKE_SA vpnx-dflt0001[9] established between 203.0.113.1[203.0.113.1]...198.51.100.1[198.51.100.1]"),
                (N, 9, "sending DPD request"),
                (N, 9, "retransmit 1 of request with message ID 0"),
                (N, 9, "giving up after 3 retransmits"),
            ],
        );
        assert_eq!(kinds(&got), vec![FailureKind::DpdTimeout]);
        assert_eq!(
            kinds(&feed(
                &mut d,
                &[(N, 9, "DPD check timed out, enforcing DPD action")]
            )),
            vec![FailureKind::DpdTimeout]
        );
    }

    #[test]
    fn down_events_carry_the_latest_reason() {
        let mut d = diagnoser();
        let now = Instant::now();
        let up = d.transition(&conn(), true, now, 5);
        assert_eq!(
            up,
            Observation::Event {
                conn: conn(),
                up: true,
                reason: EventReason::Negotiated,
                at: 5
            }
        );
        for (uid, msg) in [
            (2, "IKE_SA vpnx-dflt0001[2] established between 203.0.113.1[203.0.113.1]...198.51.100.1[198.51.100.1]"),
            (2, "received DELETE for ESP CHILD_SA with SPI e7cfa5b7"),
            (2, "received DELETE for IKE_SA vpnx-dflt0001[2]"),
        ] {
            assert_eq!(d.log(Some(N), Some(uid), msg, now, 6), None);
        }
        let down = d.transition(&conn(), false, now, 7);
        assert_eq!(
            down,
            Observation::Event {
                conn: conn(),
                up: false,
                reason: EventReason::PeerClosed,
                at: 7
            }
        );
        // A close made here after the peer's DELETE is the newer reason; an
        // older one does not replace a newer reason.
        d.closed_here(&conn(), now - Duration::from_millis(1));
        let Observation::Event { reason, .. } = d.transition(&conn(), false, now, 8) else {
            panic!()
        };
        assert_eq!(reason, EventReason::PeerClosed);
        d.closed_here(&conn(), now + Duration::from_millis(1));
        let Observation::Event { reason, .. } = d.transition(&conn(), false, now, 8) else {
            panic!()
        };
        assert_eq!(reason, EventReason::ClosedHere);
        let later = now + REASON_TTL + Duration::from_secs(1);
        let Observation::Event { reason, .. } = d.transition(&conn(), false, later, 9) else {
            panic!()
        };
        assert_eq!(reason, EventReason::Unknown);
    }

    /// Lines of other connections, unnamed SAs from unknown addresses, and
    /// lines without a meaning are not reported.
    #[test]
    fn nothing_is_reported_for_others_or_for_noise() {
        let mut d = diagnoser();
        let now = Instant::now();
        for (name, msg) in [
            (
                Some("office-vpn"),
                "received AUTHENTICATION_FAILED notify error",
            ),
            (None, "received AUTHENTICATION_FAILED notify error"),
            (
                Some(N),
                "selected proposal: IKE:3DES_CBC/HMAC_MD5_96/PRF_HMAC_MD5/MODP_1024",
            ),
            (Some(N), "scheduling rekeying in 13336s"),
        ] {
            assert_eq!(d.log(name, Some(11), msg, now, 1), None, "{msg}");
        }
        // No IKE SA at all.
        assert_eq!(
            d.log(
                Some(N),
                None,
                "received AUTHENTICATION_FAILED notify error",
                now,
                1
            ),
            None
        );
        let mut d = diagnoser();
        d.log(
            None,
            Some(12),
            "received packet: from 192.0.2.9[500] to 203.0.113.1[500] (176 bytes)",
            now,
            1,
        );
        assert_eq!(
            d.log(None, Some(12), "could not decrypt payloads", now, 1),
            None
        );
    }

    /// A proposal list with characters outside the allowlist is dropped,
    /// not cleaned.
    #[test]
    fn odd_details_are_dropped() {
        assert_eq!(clue("received proposals: IKE:AES'--"), None);
        assert_eq!(
            clue("configured proposals: ESP:AES_GCM_16_256/NO_EXT_SEQ, ESP:AES_CBC_256/HMAC_SHA2_256_128/NO_EXT_SEQ"),
            Some(Clue::Allowed(Stage::Ipsec, "ESP:AES_GCM_16_256/NO_EXT_SEQ, ESP:AES_CBC_256/HMAC_SHA2_256_128/NO_EXT_SEQ".into()))
        );
    }

    #[test]
    fn the_sa_table_stays_bounded() {
        let mut d = diagnoser();
        let now = Instant::now();
        for uid in 0..(SA_MAX as u64 * 2) {
            d.log(Some(N), Some(uid), "sending DPD request", now, 1);
        }
        assert!(d.sas.len() <= SA_MAX, "{}", d.sas.len());
    }
}
