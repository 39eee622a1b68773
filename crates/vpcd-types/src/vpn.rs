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
    ($(#[$m:meta])* $name:ident {
        $($variant:ident => $text:literal),+ $(,)?
        $(; $($newer:ident => $ntext:literal),+ $(,)?)?
    }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant,)+ $($($newer,)+)? }

        impl $name {
            /// Every value, in documentation order (v2's first).
            pub const ALL: &'static [$name] = &[$($name::$variant,)+ $($($name::$newer,)+)?];
            /// The values v2 documents (the ones after `;` came with API 3.0).
            pub const V2: &'static [$name] = &[$($name::$variant),+];
            /// The accepted spellings, for error messages.
            pub const ALLOWED: &'static str =
                concat!($($text, " ",)+ $($($ntext, " ",)+)?);
            /// The spellings v2 accepts, for its error messages.
            pub const ALLOWED_V2: &'static str = concat!($($text, " "),+);

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ $($($name::$newer => $ntext,)+)? }
            }

            /// Parse one of the spellings v2 documents: v2 requests keep
            /// exactly the values they had before API 3.0 added more.
            pub fn parse_v2(s: &str) -> Result<Self, EnumError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(EnumError { allowed: Self::ALLOWED_V2.trim_end() }),
                }
            }
        }

        impl FromStr for $name {
            type Err = EnumError;
            fn from_str(s: &str) -> Result<Self, EnumError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    $($($ntext => Ok($name::$newer),)+)?
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
        DesCbc => "des-cbc";
        // AES-GCM with a 16-byte (128-bit) ICV; IKEv2 only (IKEv1 has no
        // AEAD for its own SA).
        Aes128Gcm128 => "aes128gcm128",
        Aes192Gcm128 => "aes192gcm128",
        Aes256Gcm128 => "aes256gcm128",
    }
);

impl IkeEncryption {
    /// Whether the cipher authenticates too (AEAD): the IKE SA then needs
    /// no integrity algorithm, only a PRF.
    pub fn is_aead(self) -> bool {
        matches!(
            self,
            IkeEncryption::Aes128Gcm128 | IkeEncryption::Aes192Gcm128 | IkeEncryption::Aes256Gcm128
        )
    }
}

api_enum!(
    /// IPsec (ESP) encryption (`encryptAlgorithm`).
    IpsecEncryption {
        TripleDesCbc => "3des-cbc",
        AesCbc128 => "aes-cbc-128",
        AesCbc192 => "aes-cbc-192",
        AesCbc256 => "aes-cbc-256",
        DesCbc => "des-cbc",
        Null => "null";
        Aes128Gcm128 => "aes128gcm128",
        Aes192Gcm128 => "aes192gcm128",
        Aes256Gcm128 => "aes256gcm128",
    }
);

impl IpsecEncryption {
    /// Whether the cipher authenticates too (AEAD): ESP then carries no
    /// separate integrity algorithm.
    pub fn is_aead(self) -> bool {
        matches!(
            self,
            IpsecEncryption::Aes128Gcm128
                | IpsecEncryption::Aes192Gcm128
                | IpsecEncryption::Aes256Gcm128
        )
    }
}

api_enum!(
    /// Authentication / integrity (`propoAuthenAlgorithm`, `integrityAlgorith`).
    AuthAlgorithm {
        Md5 => "md5",
        Sha => "sha";
        Sha256 => "sha-256",
        Sha384 => "sha-384",
        Sha512 => "sha-512",
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
        Group24 => "group24";
        Group15 => "group15",
        Group16 => "group16",
        Group19 => "group19",
        Group20 => "group20",
        Group21 => "group21",
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
        DhGroup5 => "dh-group5";
        DhGroup15 => "dh-group15",
        DhGroup16 => "dh-group16",
        DhGroup19 => "dh-group19",
        DhGroup20 => "dh-group20",
        DhGroup21 => "dh-group21",
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
            PfsGroup::DhGroup15 => Some(DhGroup::Group15),
            PfsGroup::DhGroup16 => Some(DhGroup::Group16),
            PfsGroup::DhGroup19 => Some(DhGroup::Group19),
            PfsGroup::DhGroup20 => Some(DhGroup::Group20),
            PfsGroup::DhGroup21 => Some(DhGroup::Group21),
        }
    }
}

api_enum!(
    /// The IKE protocol version (API 3.0 `IKEVersion`; v2 tunnels are IKEv1).
    IkeVersion {
        V1 => "ikev1",
        V2 => "ikev2",
    }
);

impl Default for IkeVersion {
    /// Every tunnel made before API 3.0 (and every v2 tunnel) is IKEv1.
    fn default() -> Self {
        IkeVersion::V1
    }
}

api_enum!(
    /// Who starts the negotiation (API 3.0 `NegotiationType`): the gateway
    /// at once, only the peer, or the gateway on the first packet.
    NegotiationType {
        Active => "active",
        Passive => "passive",
        FlowTrigger => "flowTrigger",
    }
);

impl Default for NegotiationType {
    /// The gateway initiates at once, as every tunnel did before API 3.0.
    fn default() -> Self {
        NegotiationType::Active
    }
}

api_enum!(
    /// What the gateway does when dead peer detection declares the peer
    /// gone (API 3.0 `DpdAction`).
    DpdAction {
        Clear => "clear",
        Restart => "restart",
    }
);

/// Dead peer detection. Kept whole when disabled, so a connection reports
/// the timeout and action it would use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DpdSettings {
    pub enabled: bool,
    pub timeout_seconds: u32,
    pub action: DpdAction,
}

impl Default for DpdSettings {
    /// What every tunnel did before API 3.0 made it a setting (and what v2
    /// tunnels still do): on, 30 s, re-initiate.
    fn default() -> Self {
        DpdSettings {
            enabled: true,
            timeout_seconds: limits::DPD_TIMEOUT_DEFAULT,
            action: DpdAction::Restart,
        }
    }
}

/// The in-tunnel health check of a connection: the two addresses its
/// probes travel between (API 3.0 `HealthCheckLocalIp`/`HealthCheckRemoteIp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub local: std::net::Ipv4Addr,
    pub remote: std::net::Ipv4Addr,
}

impl HealthCheck {
    /// The range health-check addresses come from (API 3.0's default range).
    pub fn range() -> ipnet::Ipv4Net {
        ipnet::Ipv4Net::new(std::net::Ipv4Addr::new(169, 254, 128, 0), 17).expect("valid prefix")
    }
}

/// One resource tag (API 3.0 `Tag`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

impl Tag {
    /// Longest key and value, in characters (Tencent's tag limits).
    pub const KEY_MAX: usize = 127;
    pub const VALUE_MAX: usize = 255;

    /// A tag: a key of 1-127 characters and a value of at most 255, both
    /// without control characters.
    pub fn parse(key: &str, value: &str) -> Result<Tag, String> {
        let clean = |s: &str| !s.chars().any(char::is_control);
        if key.is_empty() || key.chars().count() > Self::KEY_MAX || !clean(key) {
            return Err(format!(
                "the tag key must be 1 to {} characters without control characters",
                Self::KEY_MAX
            ));
        }
        if value.chars().count() > Self::VALUE_MAX || !clean(value) {
            return Err(format!(
                "the tag value must be at most {} characters without control characters",
                Self::VALUE_MAX
            ));
        }
        Ok(Tag {
            key: key.to_owned(),
            value: value.to_owned(),
        })
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
    /// API 3.0 `DpdTimeout`: seconds without an answer before the peer is
    /// declared dead (Tencent documents 30-60, default 30).
    pub const DPD_TIMEOUT_SECONDS: RangeInclusive<u32> = 30..=60;
    pub const DPD_TIMEOUT_DEFAULT: u32 = 30;
    /// API 3.0 documents traffic lifetimes up to this many KB (v2 stops at
    /// [`IPSEC_SA_LIFETIME_TRAFFIC_KB`]'s end).
    pub const IPSEC_SA_LIFETIME_TRAFFIC_KB_3: RangeInclusive<u64> = 2_560..=4_294_967_295;
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
    /// Absent from settings stored before API 3.0: IKEv1.
    #[serde(default)]
    pub version: IkeVersion,
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
    /// The fields below came with API 3.0; settings stored before it lack
    /// them and read back as what vpcd did then (see each type's default).
    #[serde(default)]
    pub dpd: DpdSettings,
    #[serde(default)]
    pub negotiation: NegotiationType,
    /// `None`: no in-tunnel health check.
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
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
            "expected one of: md5 sha sha-256 sha-384 sha-512"
        );
    }

    /// Settings stored before API 3.0 lack its fields; they read back as
    /// what vpcd did then: IKEv1, DPD on (30 s, restart), initiated at once,
    /// no health check.
    #[test]
    fn settings_stored_before_api3_read_back_as_before() {
        let old = r#"{"pre_shared_key":"k","spd_source":"spdAcl",
            "spd":[{"local":"10.0.0.0/16","remote":["10.1.0.0/16"]}],
            "ike":{"encryption":"3des-cbc","authentication":"md5","exchange_mode":"main",
                "local_identity":{"type":"address","value":"203.0.113.1"},
                "remote_identity":{"type":"address","value":"198.51.100.1"},
                "dh_group":"group2","sa_lifetime_seconds":86400},
            "ipsec":{"encryption":"3des-cbc","integrity":"md5","sa_lifetime_seconds":3600,
                "sa_lifetime_traffic_kb":1843200,"pfs":"null"}}"#;
        let s: ConnSettings = serde_json::from_str(old).unwrap();
        assert_eq!(s.ike.version, IkeVersion::V1);
        assert_eq!(
            s.dpd,
            DpdSettings {
                enabled: true,
                timeout_seconds: 30,
                action: DpdAction::Restart
            }
        );
        assert_eq!(s.negotiation, NegotiationType::Active);
        assert_eq!(s.health_check, None);
        let again: ConnSettings =
            serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(again, s);
    }

    /// v2 parses only the spellings it documents; the values API 3.0 added
    /// are a wrong value to it, and its message lists only its own.
    #[test]
    fn v2_keeps_its_own_spellings() {
        assert_eq!(
            IkeEncryption::parse_v2("aes-cbc-256"),
            Ok(IkeEncryption::AesCbc256)
        );
        assert_eq!(
            IkeEncryption::parse_v2("aes256gcm128")
                .unwrap_err()
                .to_string(),
            "expected one of: 3des-cbc aes-cbc-128 aes-cbc-192 aes-cbc-256 des-cbc"
        );
        assert!(DhGroup::parse_v2("group19").is_err());
        assert!(PfsGroup::parse_v2("dh-group21").is_err());
        assert!(AuthAlgorithm::parse_v2("sha-256").is_err());
        for v in DhGroup::ALL {
            assert_eq!(v.as_str().parse::<DhGroup>().unwrap(), *v);
            assert_eq!(
                DhGroup::parse_v2(v.as_str()).is_ok(),
                DhGroup::V2.contains(v)
            );
        }
        for t in ["", "x".repeat(128).as_str(), "a\nb"] {
            assert!(Tag::parse(t, "v").is_err(), "{t:?}");
        }
        assert!(Tag::parse("k", &"v".repeat(256)).is_err());
        assert_eq!(Tag::parse("k", "").unwrap().value, "");
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
            (PfsGroup::DhGroup15, Some(DhGroup::Group15)),
            (PfsGroup::DhGroup16, Some(DhGroup::Group16)),
            (PfsGroup::DhGroup19, Some(DhGroup::Group19)),
            (PfsGroup::DhGroup20, Some(DhGroup::Group20)),
            (PfsGroup::DhGroup21, Some(DhGroup::Group21)),
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
