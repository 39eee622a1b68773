//! IKE/IPsec settings, SPD rules, status codes and the tunnel spec given to
//! the data plane.
//!
//! Every enumeration keeps the exact spelling the v2 API documents
//! (`3des-cbc`, `dh-group14`, ...). Defaults are those of the seed document,
//! and where the seed is silent they are the choices recorded in
//! `docs/actions.md`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::id::VpnConnId;
use crate::net::{Cidr, Fqdn};
use crate::secret::Secret;

/// The value is not one of the documented spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected one of: {allowed}")]
pub struct EnumError {
    pub allowed: &'static str,
}

macro_rules! api_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every value, in documentation order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The accepted spellings, for error messages.
            pub const ALLOWED: &'static str = concat!($($text, " "),+);

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = EnumError;
            fn from_str(s: &str) -> Result<Self, EnumError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(EnumError { allowed: Self::ALLOWED.trim_end() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

api_enum!(
    /// IKE phase-1 encryption (`IKESet.propoEncryAlgorithm`).
    IkeEncryption {
        TripleDesCbc => "3des-cbc",
        AesCbc128 => "aes-cbc-128",
        AesCbc192 => "aes-cbc-192",
        AesCbc256 => "aes-cbc-256",
        DesCbc => "des-cbc",
    }
);

api_enum!(
    /// IPsec (ESP) encryption (`encryptAlgorithm`).
    IpsecEncryption {
        TripleDesCbc => "3des-cbc",
        AesCbc128 => "aes-cbc-128",
        AesCbc192 => "aes-cbc-192",
        AesCbc256 => "aes-cbc-256",
        DesCbc => "des-cbc",
        Null => "null",
    }
);

api_enum!(
    /// Authentication / integrity (`propoAuthenAlgorithm`, `integrityAlgorith`).
    AuthAlgorithm {
        Md5 => "md5",
        Sha => "sha",
    }
);

api_enum!(
    /// IKEv1 phase-1 exchange mode.
    ExchangeMode {
        Main => "main",
        Aggressive => "aggressive",
    }
);

api_enum!(
    /// The kind of IKE identity.
    IdentityType {
        Address => "address",
        Fqdn => "fqdn",
    }
);

api_enum!(
    /// IKE Diffie-Hellman group (`IKESet.dhGroupName`).
    DhGroup {
        Group1 => "group1",
        Group2 => "group2",
        Group5 => "group5",
        Group14 => "group14",
        Group24 => "group24",
    }
);

api_enum!(
    /// IPsec perfect forward secrecy group (`IPsecSet.pfsDhGroup`).
    PfsGroup {
        Null => "null",
        DhGroup1 => "dh-group1",
        DhGroup14 => "dh-group14",
        DhGroup2 => "dh-group2",
        DhGroup24 => "dh-group24",
        DhGroup5 => "dh-group5",
    }
);

impl PfsGroup {
    /// The DH group PFS uses, if any.
    pub fn group(self) -> Option<DhGroup> {
        match self {
            PfsGroup::Null => None,
            PfsGroup::DhGroup1 => Some(DhGroup::Group1),
            PfsGroup::DhGroup2 => Some(DhGroup::Group2),
            PfsGroup::DhGroup5 => Some(DhGroup::Group5),
            PfsGroup::DhGroup14 => Some(DhGroup::Group14),
            PfsGroup::DhGroup24 => Some(DhGroup::Group24),
        }
    }
}

/// Published ranges and the defaults chosen where the seed is silent.
pub mod limits {
    use std::ops::RangeInclusive;

    pub const IKE_SA_LIFETIME_SECONDS: RangeInclusive<u32> = 60..=604_800;
    pub const IKE_SA_LIFETIME_DEFAULT: u32 = 86_400;
    pub const IPSEC_SA_LIFETIME_SECONDS: RangeInclusive<u32> = 180..=604_800;
    pub const IPSEC_SA_LIFETIME_DEFAULT: u32 = 3_600;
    /// The seed documents 2560-604800 KB, yet the real service reports a
    /// default of 1843200 KB. The default must itself be a valid explicit
    /// value, so the upper bound is raised to it (see docs/actions.md).
    pub const IPSEC_SA_LIFETIME_TRAFFIC_KB: RangeInclusive<u64> = 2_560..=1_843_200;
    pub const IPSEC_SA_LIFETIME_TRAFFIC_DEFAULT: u64 = 1_843_200;
    /// Bytes in the API's traffic-lifetime KB. The peer devices vpcd writes
    /// configurations for count `lifetime kilobytes` in units of 1024 bytes
    /// (Cisco IOS, Junos); the gateway's own SA uses the same unit, so both
    /// ends of a tunnel rekey after the same amount of traffic (see
    /// docs/actions.md).
    pub const BYTES_PER_KB: u64 = 1_024;
    /// The seed states no default DH group. API 3.0 documents GROUP1 as its
    /// default; vpcd uses group2 so a default tunnel does not use a 768-bit
    /// group (see docs/actions.md).
    pub const DH_GROUP_DEFAULT: super::DhGroup = super::DhGroup::Group2;
}

/// An IKE identity with its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum Identity {
    Address(IpAddr),
    Fqdn(Fqdn),
}

impl Identity {
    pub fn kind(&self) -> IdentityType {
        match self {
            Identity::Address(_) => IdentityType::Address,
            Identity::Fqdn(_) => IdentityType::Fqdn,
        }
    }
    /// The identity as strongSwan and device configurations write it.
    pub fn value(&self) -> String {
        match self {
            Identity::Address(a) => a.to_string(),
            Identity::Fqdn(f) => f.to_string(),
        }
    }
}

/// Phase-1 settings with every default filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IkeSettings {
    pub encryption: IkeEncryption,
    pub authentication: AuthAlgorithm,
    pub exchange_mode: ExchangeMode,
    pub local_identity: Identity,
    pub remote_identity: Identity,
    pub dh_group: DhGroup,
    pub sa_lifetime_seconds: u32,
}

/// Phase-2 settings with every default filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpsecSettings {
    pub encryption: IpsecEncryption,
    pub integrity: AuthAlgorithm,
    pub sa_lifetime_seconds: u32,
    pub sa_lifetime_traffic_kb: u64,
    pub pfs: PfsGroup,
}

impl IpsecSettings {
    /// The traffic lifetime in bytes ([`limits::BYTES_PER_KB`] per KB).
    pub fn sa_lifetime_traffic_bytes(&self) -> u64 {
        self.sa_lifetime_traffic_kb
            .saturating_mul(limits::BYTES_PER_KB)
    }
}

/// One SPD rule: a VPC-side CIDR and the IDC CIDRs it talks to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpdRule {
    pub local: Cidr,
    pub remote: Vec<Cidr>,
}

/// How the caller expressed the peer ranges; answers echo the same form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SpdSource {
    UserGwCidrBlock,
    SpdAcl,
}

/// `vpcConnStatus` in DescribeVpnConn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnStatus {
    Creating = 0,
    CreateFailed = 1,
    Modifying = 2,
    ModifyFailed = 3,
    Deleting = 4,
    DeleteFailed = 5,
    Running = 6,
}

impl ConnStatus {
    pub fn code(self) -> i64 {
        self as i64
    }
    pub fn from_code(code: i64) -> Option<Self> {
        use ConnStatus::*;
        Some(match code {
            0 => Creating,
            1 => CreateFailed,
            2 => Modifying,
            3 => ModifyFailed,
            4 => Deleting,
            5 => DeleteFailed,
            6 => Running,
            _ => return None,
        })
    }
}

/// `netStatus` in DescribeVpnConn: whether an IPsec SA is installed now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetStatus {
    Available,
    Unavailable,
}

impl NetStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NetStatus::Available => "available",
            NetStatus::Unavailable => "unavailable",
        }
    }
}

/// What a task does to its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    Create,
    Modify,
    Delete,
    Reset,
}

impl TaskKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Create => "create",
            TaskKind::Modify => "modify",
            TaskKind::Delete => "delete",
            TaskKind::Reset => "reset",
        }
    }
}

impl FromStr for TaskKind {
    type Err = EnumError;
    fn from_str(s: &str) -> Result<Self, EnumError> {
        Ok(match s {
            "create" => TaskKind::Create,
            "modify" => TaskKind::Modify,
            "delete" => TaskKind::Delete,
            "reset" => TaskKind::Reset,
            _ => {
                return Err(EnumError {
                    allowed: "create modify delete reset",
                })
            }
        })
    }
}

/// `data.status` in DescribeVpcTaskResult.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskStatus {
    Success = 0,
    Failed = 1,
    Running = 2,
}

impl TaskStatus {
    pub fn code(self) -> i64 {
        self as i64
    }
    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            0 => TaskStatus::Success,
            1 => TaskStatus::Failed,
            2 => TaskStatus::Running,
            _ => return None,
        })
    }
}

/// Everything about one connection's tunnel that the connection owner chose.
/// Stored as one JSON document beside the indexed columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnSettings {
    pub pre_shared_key: Secret,
    pub spd_source: SpdSource,
    pub spd: Vec<SpdRule>,
    pub ike: IkeSettings,
    pub ipsec: IpsecSettings,
}

/// The complete desired state of one tunnel, as handed to a data-plane
/// driver. The connection's unified id names it on the gateway node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelSpec {
    pub name: VpnConnId,
    /// The VPN gateway's public address (IKE local address).
    pub local_addr: IpAddr,
    /// The peer gateway's public address (IKE remote address).
    pub remote_addr: IpAddr,
    pub settings: ConnSettings,
}

/// What a tunnel shows a charon before any pre-shared key is used: its two
/// addresses and its two identities.
#[derive(Debug, Clone, Copy)]
pub struct TunnelFace<'a> {
    /// The VPN gateway's address.
    pub local_addr: IpAddr,
    /// The peer gateway's address.
    pub remote_addr: IpAddr,
    pub local_identity: &'a Identity,
    pub remote_identity: &'a Identity,
}

/// Why two tenants' tunnels cannot be loaded on one charon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelClash {
    /// The same local and remote address: charon picks a connection for an
    /// incoming IKE_SA_INIT by its addresses, so it could pick either.
    Endpoints,
    /// The same two identities, in either order: charon looks a pre-shared
    /// key up by the identities it owns, so one tenant's key could be used
    /// for the other's tunnel.
    Identities,
}

/// Identities as charon compares them: an FQDN without regard to case.
fn same_identity(a: &Identity, b: &Identity) -> bool {
    match (a, b) {
        (Identity::Address(x), Identity::Address(y)) => x == y,
        (Identity::Fqdn(x), Identity::Fqdn(y)) => {
            x.to_string().eq_ignore_ascii_case(&y.to_string())
        }
        _ => false,
    }
}

impl TunnelFace<'_> {
    /// Whether `self` and `other`, loaded on one charon for two tenants,
    /// could be taken for each other. An address identity that differs
    /// from the peer's address (a peer behind NAT) is fine as long as the
    /// pair of identities is not another tenant's.
    pub fn clash(&self, other: &TunnelFace<'_>) -> Option<TunnelClash> {
        if self.local_addr == other.local_addr && self.remote_addr == other.remote_addr {
            return Some(TunnelClash::Endpoints);
        }
        let (a, b) = (self.local_identity, self.remote_identity);
        let (c, d) = (other.local_identity, other.remote_identity);
        let same_pair = (same_identity(a, c) && same_identity(b, d))
            || (same_identity(a, d) && same_identity(b, c));
        same_pair.then_some(TunnelClash::Identities)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunnels_clash_on_endpoints_or_on_the_pair_of_identities() {
        let addr = |s: &str| Identity::Address(s.parse().unwrap());
        let fqdn = |s: &str| Identity::Fqdn(s.parse().unwrap());
        let (g, p, q) = (
            addr("203.0.113.1"),
            addr("198.51.100.1"),
            addr("198.51.100.2"),
        );
        let nat = addr("10.0.0.1");
        let face = |local: IpAddr, remote: IpAddr, l, r| TunnelFace {
            local_addr: local,
            remote_addr: remote,
            local_identity: l,
            remote_identity: r,
        };
        let (ga, pa, qa) = (
            "203.0.113.1".parse().unwrap(),
            "198.51.100.1".parse().unwrap(),
            "198.51.100.2".parse().unwrap(),
        );
        let a = face(ga, pa, &g, &p);
        // Same endpoints, whatever the identities.
        let nat_b = face(ga, pa, &g, &nat);
        assert_eq!(nat_b.clash(&a), Some(TunnelClash::Endpoints));
        // Another peer claiming A's peer identity, or the same pair reversed.
        assert_eq!(
            face(ga, qa, &g, &p).clash(&a),
            Some(TunnelClash::Identities)
        );
        assert_eq!(
            face(ga, qa, &p, &g).clash(&a),
            Some(TunnelClash::Identities)
        );
        // Another peer behind NAT with its own identity: fine.
        assert_eq!(face(ga, qa, &g, &nat).clash(&a), None);
        assert_eq!(face(ga, qa, &g, &q).clash(&a), None);
        // FQDNs compare without regard to case.
        let (x, y) = (fqdn("cloud.example"), fqdn("IDC.example"));
        let y2 = fqdn("idc.EXAMPLE");
        let f = face(ga, pa, &x, &y);
        assert_eq!(
            face(ga, qa, &x, &y2).clash(&f),
            Some(TunnelClash::Identities)
        );
        assert_eq!(face(ga, qa, &x, &q).clash(&f), None);
    }

    #[test]
    fn enums_round_trip_their_spelling() {
        for v in IkeEncryption::ALL {
            assert_eq!(v.as_str().parse::<IkeEncryption>().unwrap(), *v);
        }
        for v in PfsGroup::ALL {
            assert_eq!(v.as_str().parse::<PfsGroup>().unwrap(), *v);
        }
        assert!("AES-CBC-128".parse::<IkeEncryption>().is_err());
        assert_eq!(
            "x".parse::<AuthAlgorithm>().unwrap_err().to_string(),
            "expected one of: md5 sha"
        );
    }

    #[test]
    fn traffic_lifetime_kb_is_1024_bytes() {
        let mut s = IpsecSettings {
            encryption: IpsecEncryption::AesCbc128,
            integrity: AuthAlgorithm::Sha,
            sa_lifetime_seconds: 3600,
            sa_lifetime_traffic_kb: 2_560,
            pfs: PfsGroup::Null,
        };
        assert_eq!(s.sa_lifetime_traffic_bytes(), 2_621_440);
        s.sa_lifetime_traffic_kb = limits::IPSEC_SA_LIFETIME_TRAFFIC_DEFAULT;
        assert_eq!(s.sa_lifetime_traffic_bytes(), 1_887_436_800);
        s.sa_lifetime_traffic_kb = u64::MAX;
        assert_eq!(s.sa_lifetime_traffic_bytes(), u64::MAX);
    }

    #[test]
    fn status_codes() {
        for c in 0..=6 {
            assert_eq!(ConnStatus::from_code(c).unwrap().code(), c);
        }
        assert!(ConnStatus::from_code(7).is_none());
    }

    #[test]
    fn pfs_groups_name_their_dh_group() {
        let expected = [
            (PfsGroup::Null, None),
            (PfsGroup::DhGroup1, Some(DhGroup::Group1)),
            (PfsGroup::DhGroup2, Some(DhGroup::Group2)),
            (PfsGroup::DhGroup5, Some(DhGroup::Group5)),
            (PfsGroup::DhGroup14, Some(DhGroup::Group14)),
            (PfsGroup::DhGroup24, Some(DhGroup::Group24)),
        ];
        assert_eq!(expected.len(), PfsGroup::ALL.len());
        for (pfs, group) in expected {
            assert_eq!(pfs.group(), group, "{pfs:?}");
        }
    }

    #[test]
    fn identity_values() {
        let a = Identity::Address("203.0.113.1".parse().unwrap());
        let f = Identity::Fqdn("gw.example.com".parse().unwrap());
        assert_eq!(
            (a.kind(), a.value()),
            (IdentityType::Address, "203.0.113.1".to_owned())
        );
        assert_eq!(
            (f.kind(), f.value()),
            (IdentityType::Fqdn, "gw.example.com".to_owned())
        );
    }

    #[test]
    fn net_status_and_task_spellings() {
        assert_eq!(NetStatus::Available.as_str(), "available");
        assert_eq!(NetStatus::Unavailable.as_str(), "unavailable");
        for (kind, text) in [
            (TaskKind::Create, "create"),
            (TaskKind::Modify, "modify"),
            (TaskKind::Delete, "delete"),
            (TaskKind::Reset, "reset"),
        ] {
            assert_eq!(kind.as_str(), text);
            assert_eq!(text.parse::<TaskKind>().unwrap(), kind);
        }
        assert_eq!(
            "Create".parse::<TaskKind>().unwrap_err().to_string(),
            "expected one of: create modify delete reset"
        );
    }

    #[test]
    fn task_status_codes() {
        for (status, code) in [
            (TaskStatus::Success, 0),
            (TaskStatus::Failed, 1),
            (TaskStatus::Running, 2),
        ] {
            assert_eq!(status.code(), code);
            assert_eq!(TaskStatus::from_code(code), Some(status));
        }
        assert_eq!(TaskStatus::from_code(3), None);
        assert_eq!(TaskStatus::from_code(-1), None);
    }
}
