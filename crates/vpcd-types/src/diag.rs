//! What a tunnel says about itself: why its last negotiation failed, what it
//! carries, and when it went up and down.
//!
//! The data plane observes these (the strongSwan driver reads them from
//! charon's VICI events and `list-sas`), the store keeps them, and the
//! `DescribeVpnConnDiagnostics` operation answers with them. Every reason is
//! one of a fixed set of kinds with a fixed explanation; the only free text
//! that travels with a failure is a detail that passed [`safe_detail`]
//! (proposal names, an identity), never a line of charon's log as such.

use std::fmt;
use std::str::FromStr;

/// Why a negotiation failed, in words an operator can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The two sides hold different pre-shared keys.
    PskMismatch,
    /// No proposal offered by one side is allowed by the other.
    NoCommonProposal,
    /// The peer presents an identity this connection does not expect (or
    /// refuses the gateway's).
    IdentityMismatch,
    /// The peer's protected networks do not match the connection's SPD
    /// rules.
    TrafficSelectorMismatch,
    /// The peer does not answer (charon gave up retransmitting).
    PeerNotAnswering,
    /// An established tunnel's peer stopped answering dead peer detection.
    DpdTimeout,
}

impl FailureKind {
    pub const ALL: [FailureKind; 6] = [
        FailureKind::PskMismatch,
        FailureKind::NoCommonProposal,
        FailureKind::IdentityMismatch,
        FailureKind::TrafficSelectorMismatch,
        FailureKind::PeerNotAnswering,
        FailureKind::DpdTimeout,
    ];

    /// The stable code (API answers, the database).
    pub fn code(self) -> &'static str {
        match self {
            FailureKind::PskMismatch => "psk-mismatch",
            FailureKind::NoCommonProposal => "no-common-proposal",
            FailureKind::IdentityMismatch => "identity-mismatch",
            FailureKind::TrafficSelectorMismatch => "traffic-selector-mismatch",
            FailureKind::PeerNotAnswering => "peer-not-answering",
            FailureKind::DpdTimeout => "dpd-timeout",
        }
    }

    /// What happened and what to do, in plain words.
    pub fn explanation(self) -> &'static str {
        match self {
            FailureKind::PskMismatch => {
                "Pre-shared key mismatch: the peer's messages could not be authenticated with \
                 this connection's pre-shared key. Set the same key on both sides."
            }
            FailureKind::NoCommonProposal => {
                "No common proposal: none of the algorithms one side offered is allowed by the \
                 other. Make the peer's IKE and IPsec settings (encryption, integrity, DH group, \
                 PFS) match the connection's."
            }
            FailureKind::IdentityMismatch => {
                "Identity mismatch: the peer identifies itself differently from what this \
                 connection expects (or refuses the gateway's identity). Make the local and \
                 remote identities of both sides agree."
            }
            FailureKind::TrafficSelectorMismatch => {
                "Protected networks mismatch: the peer proposes networks that do not match the \
                 connection's SPD rules (VPC and customer CIDR blocks). Make both sides list the \
                 same networks."
            }
            FailureKind::PeerNotAnswering => {
                "Peer not answering: the gateway's IKE messages got no reply. Check that the \
                 peer's IKE daemon runs, that it is reachable at the customer gateway's address \
                 (UDP 500 and 4500), and that it has this connection configured."
            }
            FailureKind::DpdTimeout => {
                "Dead peer detection timeout: the established tunnel's peer stopped answering \
                 and the gateway closed it; it is being negotiated again. Check the peer device \
                 and the path to it."
            }
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Not a known code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown diagnostic code")]
pub struct UnknownCode;

impl FromStr for FailureKind {
    type Err = UnknownCode;
    fn from_str(s: &str) -> Result<Self, UnknownCode> {
        FailureKind::ALL
            .into_iter()
            .find(|k| k.code() == s)
            .ok_or(UnknownCode)
    }
}

/// Which negotiation a proposal belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// IKE (phase 1).
    Ike,
    /// IPsec / the CHILD SA (phase 2).
    Ipsec,
}

impl Stage {
    pub fn code(self) -> &'static str {
        match self {
            Stage::Ike => "ike",
            Stage::Ipsec => "ipsec",
        }
    }
}

impl FromStr for Stage {
    type Err = UnknownCode;
    fn from_str(s: &str) -> Result<Self, UnknownCode> {
        match s {
            "ike" => Ok(Stage::Ike),
            "ipsec" => Ok(Stage::Ipsec),
            _ => Err(UnknownCode),
        }
    }
}

/// One failure as observed, with the safe details the log gave.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FailureDetail {
    /// IKE or IPsec, where known.
    pub stage: Option<Stage>,
    /// The proposals the peer offered (charon's names, e.g.
    /// `IKE:AES_CBC_128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_2048`).
    pub peer_offered: Option<String>,
    /// The proposals the gateway allows for this connection.
    pub gateway_allows: Option<String>,
    /// The identity the peer presented (an address or a domain name).
    pub peer_identity: Option<String>,
}

impl FailureDetail {
    /// Whether any detail is known.
    pub fn is_empty(&self) -> bool {
        *self == FailureDetail::default()
    }
}

/// A connection's last negotiation failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastFailure {
    pub kind: FailureKind,
    pub detail: FailureDetail,
    /// When this failure was first seen in its current run (Unix seconds).
    pub first_at: i64,
    /// When it was last seen (Unix seconds; refreshed at most about once a
    /// minute while it repeats).
    pub last_at: i64,
}

impl LastFailure {
    /// The explanation with the details that make it concrete.
    pub fn message(&self) -> String {
        let mut out = self.kind.explanation().to_owned();
        let d = &self.detail;
        let stage = match d.stage {
            Some(Stage::Ike) => "IKE ",
            Some(Stage::Ipsec) => "IPsec ",
            None => "",
        };
        match (&d.peer_offered, &d.gateway_allows) {
            (Some(p), Some(g)) => out.push_str(&format!(
                " The peer offered {stage}proposals {p}; the gateway allows {g}."
            )),
            (Some(p), None) => out.push_str(&format!(" The peer offered {stage}proposals {p}.")),
            (None, Some(g)) => out.push_str(&format!(
                " The peer accepted none of the gateway's {stage}proposals {g}."
            )),
            (None, None) => {}
        }
        if let Some(id) = &d.peer_identity {
            out.push_str(&format!(" The peer identified itself as {id}."));
        }
        out
    }
}

/// Why a tunnel went up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventReason {
    /// Up: IKE and IPsec SAs negotiated.
    Negotiated,
    /// Down: the peer deleted the SAs.
    PeerClosed,
    /// Down: this gateway closed them (the connection was changed, reset or
    /// deleted).
    ClosedHere,
    /// Down: a negotiation failure.
    Failure(FailureKind),
    /// Down, and charon said nothing that explains it.
    Unknown,
}

impl EventReason {
    pub fn code(self) -> &'static str {
        match self {
            EventReason::Negotiated => "negotiated",
            EventReason::PeerClosed => "peer-closed",
            EventReason::ClosedHere => "closed-here",
            EventReason::Failure(k) => k.code(),
            EventReason::Unknown => "unknown",
        }
    }

    /// In plain words.
    pub fn message(self) -> &'static str {
        match self {
            EventReason::Negotiated => "IKE and IPsec security associations negotiated.",
            EventReason::PeerClosed => "The peer closed the tunnel (it deleted the SAs).",
            EventReason::ClosedHere => {
                "The gateway closed the tunnel: the connection was changed, reset or deleted."
            }
            EventReason::Failure(k) => k.explanation(),
            EventReason::Unknown => "The tunnel went down without a reason given by charon.",
        }
    }
}

impl FromStr for EventReason {
    type Err = UnknownCode;
    fn from_str(s: &str) -> Result<Self, UnknownCode> {
        Ok(match s {
            "negotiated" => EventReason::Negotiated,
            "peer-closed" => EventReason::PeerClosed,
            "closed-here" => EventReason::ClosedHere,
            "unknown" => EventReason::Unknown,
            other => EventReason::Failure(other.parse()?),
        })
    }
}

/// A tunnel went up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelEvent {
    /// Unix seconds.
    pub at: i64,
    pub up: bool,
    pub reason: EventReason,
}

/// Traffic through a tunnel's SAs now installed (summed over its CHILD SAs;
/// the counters restart when an SA is rekeyed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Traffic {
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub packets_out: u64,
    /// When the IKE SA in use was established (Unix seconds).
    pub established_at: Option<i64>,
    /// When a CHILD SA was last rekeyed (installed after the IKE SA was
    /// established), Unix seconds.
    pub last_rekey_at: Option<i64>,
}

/// The longest detail kept.
pub const DETAIL_MAX: usize = 200;

/// `value` if it may be shown as a failure detail: at most [`DETAIL_MAX`]
/// characters, all of them letters, digits or `_ / : , . @ - + space`
/// (what proposal names, addresses and domain names are made of). Anything
/// else is dropped, not cleaned: a detail is either shown as charon wrote
/// it or not at all.
pub fn safe_detail(value: &str) -> Option<String> {
    let value = value.trim();
    let ok = !value.is_empty()
        && value.len() <= DETAIL_MAX
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_/:,.@-+ ".contains(c));
    ok.then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for k in FailureKind::ALL {
            assert_eq!(k.code().parse::<FailureKind>(), Ok(k));
            let r = EventReason::Failure(k);
            assert_eq!(r.code().parse::<EventReason>(), Ok(r));
            assert!(!k.explanation().is_empty());
        }
        for r in [
            EventReason::Negotiated,
            EventReason::PeerClosed,
            EventReason::ClosedHere,
            EventReason::Unknown,
        ] {
            assert_eq!(r.code().parse::<EventReason>(), Ok(r));
        }
        assert!("nonsense".parse::<EventReason>().is_err());
        for s in [Stage::Ike, Stage::Ipsec] {
            assert_eq!(s.code().parse::<Stage>(), Ok(s));
        }
    }

    #[test]
    fn details_are_allowlisted() {
        let p = "IKE:AES_CBC_128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_2048";
        assert_eq!(safe_detail(p).as_deref(), Some(p));
        assert_eq!(
            safe_detail(" office.example.net ").as_deref(),
            Some("office.example.net")
        );
        for bad in [
            "",
            "a'b",
            "x\ny",
            "k=v",
            "\"q\"",
            "tab\there",
            &"a".repeat(201),
        ] {
            assert_eq!(safe_detail(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn messages_carry_the_details() {
        let f = LastFailure {
            kind: FailureKind::NoCommonProposal,
            detail: FailureDetail {
                stage: Some(Stage::Ike),
                peer_offered: Some("IKE:AES_CBC_128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_2048".into()),
                gateway_allows: Some("IKE:3DES_CBC/HMAC_MD5_96/PRF_HMAC_MD5/MODP_1024".into()),
                peer_identity: None,
            },
            first_at: 1,
            last_at: 2,
        };
        let m = f.message();
        assert!(m.starts_with("No common proposal"), "{m}");
        assert!(m.contains("The peer offered IKE proposals IKE:AES_CBC_128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_2048; the gateway allows IKE:3DES_CBC/HMAC_MD5_96/PRF_HMAC_MD5/MODP_1024."), "{m}");
    }
}
