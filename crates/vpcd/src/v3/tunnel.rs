//! A VPN connection's tunnel as API 3.0 spells it: the pre-shared key,
//! `SecurityPolicyDatabases`, `IKEOptionsSpecification`,
//! `IPSECOptionsSpecification`, and the newer options (IKE version, DPD,
//! negotiation type, health checks, route type, BGP, tags).
//!
//! THE one place that decides which documented 3.0 values vpcd carries
//! out. Each enumerated field has one table: every value 3.0 documents,
//! each with the vpcd value it maps to, or `None` where vpcd cannot carry
//! it out. [`TunnelRequest::into_change`] turns a parsed request into the
//! operation's [`SettingsChange`] and refuses every `None` (and every
//! option vpcd has no counterpart for) with `UnsupportedOperation` naming
//! the field. Rendering reads the same tables backwards.
//!
//! Carried out: IKEv1 and IKEv2, AES-CBC/3DES/DES and AES-GCM (IKEv2 only
//! for the IKE SA), MD5/SHA-1/SHA-2 integrity, every documented DH group,
//! DPD on/off with its timeout and action, the three negotiation types,
//! health-check addresses, traffic lifetimes up to 3.0's maximum.
//! Refused: SM4 and SM3 (strongSwan has no Chinese national ciphers),
//! `RouteType` other than STATIC and `Route`/`BgpConfig` (vpcd's tunnels
//! are policy-based), `HealthCheckConfig` (vpcd sends no NQA probes).
//!
//! A value outside the documented list is a wrong value
//! (`InvalidParameterValue`), not an unsupported one.

use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;
use vpcd_types::vpn::limits as lim;
use vpcd_types::{
    AuthAlgorithm, Cidr, ConnSettings, DhGroup, DpdAction, DpdSettings, ExchangeMode, Fqdn,
    Identity, IdentityType, IkeEncryption, IkeVersion, IpsecEncryption, NegotiationType, PfsGroup,
    Secret,
};

use super::common::unsupported;
use super::params::{invalid, Field, Obj};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ops::conn_settings::{
    parse_psk, Defaults, DpdChange, HealthCheckChange, IdentityChange, IkeChange, IpsecChange,
    SettingsChange, SpdChange,
};
use crate::ops::parse_ipv4;

/// Explicit SPD rules: a VPC-side CIDR and the peer CIDRs it reaches.
type SpdRules = Vec<(Cidr, Vec<Cidr>)>;

/// One field's documented values, each with what vpcd makes of it.
type Table<T> = &'static [(&'static str, Option<T>)];

const IKE_ENCRYPTION: Table<IkeEncryption> = &[
    ("3DES-CBC", Some(IkeEncryption::TripleDesCbc)),
    ("AES-CBC-128", Some(IkeEncryption::AesCbc128)),
    ("AES-CBC-192", Some(IkeEncryption::AesCbc192)),
    ("AES-CBC-256", Some(IkeEncryption::AesCbc256)),
    ("DES-CBC", Some(IkeEncryption::DesCbc)),
    ("SM4", None),
    ("AES128GCM128", Some(IkeEncryption::Aes128Gcm128)),
    ("AES192GCM128", Some(IkeEncryption::Aes192Gcm128)),
    ("AES256GCM128", Some(IkeEncryption::Aes256Gcm128)),
];

const IPSEC_ENCRYPTION: Table<IpsecEncryption> = &[
    ("3DES-CBC", Some(IpsecEncryption::TripleDesCbc)),
    ("AES-CBC-128", Some(IpsecEncryption::AesCbc128)),
    ("AES-CBC-192", Some(IpsecEncryption::AesCbc192)),
    ("AES-CBC-256", Some(IpsecEncryption::AesCbc256)),
    ("DES-CBC", Some(IpsecEncryption::DesCbc)),
    ("SM4", None),
    ("NULL", Some(IpsecEncryption::Null)),
    ("AES128GCM128", Some(IpsecEncryption::Aes128Gcm128)),
    ("AES192GCM128", Some(IpsecEncryption::Aes192Gcm128)),
    ("AES256GCM128", Some(IpsecEncryption::Aes256Gcm128)),
];

/// IKE spells SHA-1 `SHA`...
const IKE_AUTHENTICATION: Table<AuthAlgorithm> = &[
    ("MD5", Some(AuthAlgorithm::Md5)),
    ("SHA", Some(AuthAlgorithm::Sha)),
    ("SHA-256", Some(AuthAlgorithm::Sha256)),
    ("SHA-512", Some(AuthAlgorithm::Sha512)),
];

/// ...IPsec spells it `SHA1`.
const IPSEC_INTEGRITY: Table<AuthAlgorithm> = &[
    ("MD5", Some(AuthAlgorithm::Md5)),
    ("SHA1", Some(AuthAlgorithm::Sha)),
    ("SHA-256", Some(AuthAlgorithm::Sha256)),
    ("SHA-512", Some(AuthAlgorithm::Sha512)),
    ("SHA-384", Some(AuthAlgorithm::Sha384)),
    ("SM3", None),
];

const EXCHANGE_MODE: Table<ExchangeMode> = &[
    ("AGGRESSIVE", Some(ExchangeMode::Aggressive)),
    ("MAIN", Some(ExchangeMode::Main)),
];

const IDENTITY: Table<IdentityType> = &[
    ("ADDRESS", Some(IdentityType::Address)),
    ("FQDN", Some(IdentityType::Fqdn)),
];

const DH_GROUP: Table<DhGroup> = &[
    ("GROUP1", Some(DhGroup::Group1)),
    ("GROUP2", Some(DhGroup::Group2)),
    ("GROUP5", Some(DhGroup::Group5)),
    ("GROUP14", Some(DhGroup::Group14)),
    ("GROUP15", Some(DhGroup::Group15)),
    ("GROUP16", Some(DhGroup::Group16)),
    ("GROUP19", Some(DhGroup::Group19)),
    ("GROUP20", Some(DhGroup::Group20)),
    ("GROUP21", Some(DhGroup::Group21)),
    ("GROUP24", Some(DhGroup::Group24)),
];

const PFS_GROUP: Table<PfsGroup> = &[
    ("NULL", Some(PfsGroup::Null)),
    ("DH-GROUP1", Some(PfsGroup::DhGroup1)),
    ("DH-GROUP2", Some(PfsGroup::DhGroup2)),
    ("DH-GROUP5", Some(PfsGroup::DhGroup5)),
    ("DH-GROUP14", Some(PfsGroup::DhGroup14)),
    ("DH-GROUP15", Some(PfsGroup::DhGroup15)),
    ("DH-GROUP16", Some(PfsGroup::DhGroup16)),
    ("DH-GROUP19", Some(PfsGroup::DhGroup19)),
    ("DH-GROUP20", Some(PfsGroup::DhGroup20)),
    ("DH-GROUP21", Some(PfsGroup::DhGroup21)),
    ("DH-GROUP24", Some(PfsGroup::DhGroup24)),
];

const IKE_VERSION: Table<IkeVersion> = &[
    ("IKEV1", Some(IkeVersion::V1)),
    ("IKEV2", Some(IkeVersion::V2)),
];
/// Policy-based tunnels from SPD rules, which 3.0 calls `STATIC`: `Some(())`
/// marks the one value that describes what vpcd does.
const ROUTE_TYPE: Table<()> = &[
    ("STATIC", Some(())),
    ("StaticRoute", None),
    ("Policy", None),
    ("Bgp", None),
];
/// Initiate at once (`start_action = start`), wait for the peer (`none`),
/// initiate on the first packet (`trap`).
const NEGOTIATION_TYPE: Table<NegotiationType> = &[
    ("active", Some(NegotiationType::Active)),
    ("passive", Some(NegotiationType::Passive)),
    ("flowTrigger", Some(NegotiationType::FlowTrigger)),
];
const DPD_ACTION: Table<DpdAction> = &[
    ("clear", Some(DpdAction::Clear)),
    ("restart", Some(DpdAction::Restart)),
];
const DPD_ENABLE: &[(i64, bool)] = &[(0, false), (1, true)];

/// The 3.0 defaults of a new connection (CreateVpnConnection's
/// documentation), except the DH group, which is vpcd's (group2, not
/// GROUP1's 768 bits, as for v2).
pub(super) static DEFAULTS: Defaults = Defaults {
    ike_encryption: IkeEncryption::TripleDesCbc,
    ike_authentication: AuthAlgorithm::Sha,
    exchange_mode: ExchangeMode::Main,
    dh_group: lim::DH_GROUP_DEFAULT,
    ike_sa_lifetime_seconds: lim::IKE_SA_LIFETIME_DEFAULT,
    ipsec_encryption: IpsecEncryption::AesCbc128,
    ipsec_integrity: AuthAlgorithm::Sha,
    ipsec_sa_lifetime_seconds: 14_400,
    ipsec_sa_lifetime_traffic_kb: 4_096_000_000,
    pfs: PfsGroup::Null,
    ike_version: IkeVersion::V1,
    dpd: DpdSettings {
        enabled: false,
        timeout_seconds: lim::DPD_TIMEOUT_DEFAULT,
        action: DpdAction::Restart,
    },
    negotiation: NegotiationType::Active,
};

/// A documented value as the request gave it: where, how it was spelled,
/// and what vpcd makes of it (`None`: nothing yet).
pub(super) struct Pick<T> {
    path: String,
    text: &'static str,
    value: Option<T>,
}

/// Read an enumerated field: a value outside the table is wrong.
fn pick<T: Copy>(o: &Obj<'_>, key: &str, table: Table<T>) -> ApiResult<Option<Pick<T>>> {
    let Some(f) = o.field(key) else {
        return Ok(None);
    };
    let given = f.str()?;
    let (text, value) = table
        .iter()
        .find(|(text, _)| *text == given)
        .ok_or_else(|| {
            let all: Vec<&str> = table.iter().map(|(t, _)| *t).collect();
            invalid(&f.path, format!("expected one of: {}", all.join(", ")))
        })?;
    Ok(Some(Pick {
        path: f.path,
        text,
        value: *value,
    }))
}

/// The 3.0 spelling of a vpcd value (the first entry that maps to it).
fn spell<T: PartialEq + Copy>(table: Table<T>, v: T) -> &'static str {
    table
        .iter()
        .find(|(_, x)| *x == Some(v))
        .map_or("", |(text, _)| text)
}

/// Every tunnel field of CreateVpnConnection and
/// ModifyVpnConnectionAttribute, as parsed from the wire.
pub(super) struct TunnelRequest {
    psk: Option<Secret>,
    spd: Option<SpdRules>,
    ike: IkeRequest,
    ipsec: IpsecRequest,
    route_type: Option<Pick<()>>,
    negotiation_type: Option<Pick<NegotiationType>>,
    dpd_enable: Option<bool>,
    dpd_timeout: Option<u32>,
    dpd_action: Option<Pick<DpdAction>>,
    health_check: HealthCheckChange,
    /// Fields given that vpcd has no counterpart for at all.
    unsupported_given: Vec<(String, &'static str)>,
}

#[derive(Default)]
struct IkeRequest {
    encryption: Option<Pick<IkeEncryption>>,
    authentication: Option<Pick<AuthAlgorithm>>,
    exchange_mode: Option<Pick<ExchangeMode>>,
    local: IdentityRequest,
    remote: IdentityRequest,
    dh_group: Option<Pick<DhGroup>>,
    lifetime: Option<u32>,
    version: Option<Pick<IkeVersion>>,
}

#[derive(Default)]
struct IdentityRequest {
    kind: Option<Pick<IdentityType>>,
    address: Option<IpAddr>,
    fqdn: Option<Fqdn>,
}

#[derive(Default)]
struct IpsecRequest {
    encryption: Option<Pick<IpsecEncryption>>,
    integrity: Option<Pick<AuthAlgorithm>>,
    lifetime: Option<u32>,
    traffic_kb: Option<u64>,
    pfs: Option<Pick<PfsGroup>>,
}

/// Parse the tunnel fields of `o`. `route_fields`: CreateVpnConnection's
/// `RouteType` and `Route`, which the modification does not take.
pub(super) fn parse(o: &Obj<'_>, route_fields: bool) -> ApiResult<TunnelRequest> {
    let psk = o
        .field("PreShareKey")
        .map(|f| {
            f.str()
                .and_then(|v| parse_psk(v).map_err(|why| invalid(&f.path, why)))
        })
        .transpose()?;
    let mut unsupported_given = Vec::new();
    let mut refuse_if_given = |key: &str, why: &'static str| {
        if let Some(path) = o.given(key) {
            unsupported_given.push((path, why));
        }
    };
    refuse_if_given(
        "HealthCheckConfig",
        "vpcd sends no NQA probes; its health check reports the tunnel's SAs",
    );
    refuse_if_given("BgpConfig", "vpcd does not run BGP over tunnels");
    if route_fields {
        refuse_if_given(
            "Route",
            "vpcd's tunnels are policy-based (SecurityPolicyDatabases); it adds no routes",
        );
    }
    Ok(TunnelRequest {
        psk,
        spd: spd(o)?,
        ike: o
            .obj("IKEOptionsSpecification")?
            .map(|i| ike(&i))
            .transpose()?
            .unwrap_or_default(),
        ipsec: o
            .obj("IPSECOptionsSpecification")?
            .map(|i| ipsec(&i))
            .transpose()?
            .unwrap_or_default(),
        route_type: if route_fields {
            pick(o, "RouteType", ROUTE_TYPE)?
        } else {
            None
        },
        negotiation_type: pick(o, "NegotiationType", NEGOTIATION_TYPE)?,
        dpd_enable: o
            .int("DpdEnable", 0..=1)?
            .map(|v| DPD_ENABLE.iter().any(|(n, on)| *n == v && *on)),
        dpd_timeout: o
            .int_text(
                "DpdTimeout",
                i64::from(*lim::DPD_TIMEOUT_SECONDS.start())
                    ..=i64::from(*lim::DPD_TIMEOUT_SECONDS.end()),
            )?
            .map(|v| v as u32),
        dpd_action: pick(o, "DpdAction", DPD_ACTION)?,
        health_check: HealthCheckChange {
            enabled: o.bool("EnableHealthCheck")?,
            local: ipv4(o, "HealthCheckLocalIp")?,
            remote: ipv4(o, "HealthCheckRemoteIp")?,
        },
        unsupported_given,
    })
}

fn ipv4(o: &Obj<'_>, key: &str) -> ApiResult<Option<Ipv4Addr>> {
    o.field(key)
        .map(|f| {
            f.str()?
                .parse::<Ipv4Addr>()
                .map_err(|_| invalid(&f.path, "expected an IPv4 address"))
        })
        .transpose()
}

fn cidr(f: &Field<'_>) -> ApiResult<Cidr> {
    f.str()?.parse::<Cidr>().map_err(|e| invalid(&f.path, e))
}

/// `[{LocalCidrBlock, RemoteCidrBlock: [...]}]`: explicit SPD rules.
fn spd(o: &Obj<'_>) -> ApiResult<Option<SpdRules>> {
    let Some(items) = o.list("SecurityPolicyDatabases", 100)? else {
        return Ok(None);
    };
    let mut rules = Vec::with_capacity(items.len());
    for item in items {
        let r = item.obj()?;
        let local = cidr(&r.required("LocalCidrBlock")?)?;
        let Some(remote) = r.list("RemoteCidrBlock", 100)? else {
            return Err(ApiError::missing(&r.path("RemoteCidrBlock")));
        };
        let remote = remote.iter().map(cidr).collect::<ApiResult<Vec<Cidr>>>()?;
        rules.push((local, remote));
    }
    Ok(Some(rules))
}

fn seconds(
    o: &Obj<'_>,
    key: &str,
    range: &std::ops::RangeInclusive<u32>,
) -> ApiResult<Option<u32>> {
    let range = i64::from(*range.start())..=i64::from(*range.end());
    Ok(o.int(key, range)?.map(|n| n as u32))
}

fn ike(o: &Obj<'_>) -> ApiResult<IkeRequest> {
    Ok(IkeRequest {
        encryption: pick(o, "PropoEncryAlgorithm", IKE_ENCRYPTION)?,
        authentication: pick(o, "PropoAuthenAlgorithm", IKE_AUTHENTICATION)?,
        exchange_mode: pick(o, "ExchangeMode", EXCHANGE_MODE)?,
        local: identity(o, "Local")?,
        remote: identity(o, "Remote")?,
        dh_group: pick(o, "DhGroupName", DH_GROUP)?,
        lifetime: seconds(o, "IKESaLifetimeSeconds", &lim::IKE_SA_LIFETIME_SECONDS)?,
        version: pick(o, "IKEVersion", IKE_VERSION)?,
    })
}

fn identity(o: &Obj<'_>, side: &str) -> ApiResult<IdentityRequest> {
    let address = o
        .field(&format!("{side}Address"))
        .map(|f| parse_ipv4(f.str()?).map_err(|why| invalid(&f.path, why)))
        .transpose()?;
    let fqdn = o
        .field(&format!("{side}FqdnName"))
        .map(|f| f.str()?.parse::<Fqdn>().map_err(|e| invalid(&f.path, e)))
        .transpose()?;
    Ok(IdentityRequest {
        kind: pick(o, &format!("{side}Identity"), IDENTITY)?,
        address,
        fqdn,
    })
}

fn ipsec(o: &Obj<'_>) -> ApiResult<IpsecRequest> {
    // 3.0 documents the integrity algorithm twice, `IntegrityAlgorith`
    // (sic) and `IntegrityAlgorithm`: either, or both when they agree.
    let old = pick(o, "IntegrityAlgorith", IPSEC_INTEGRITY)?;
    let new = pick(o, "IntegrityAlgorithm", IPSEC_INTEGRITY)?;
    let integrity = match (old, new) {
        (Some(a), Some(b)) if a.text != b.text => {
            return Err(ApiError::wire(
                ErrorCode::ParameterConflict,
                &b.path,
                "differs from IntegrityAlgorith; give one, or the same value in both",
            ))
        }
        (a, b) => a.or(b),
    };
    Ok(IpsecRequest {
        encryption: pick(o, "EncryptAlgorithm", IPSEC_ENCRYPTION)?,
        integrity,
        lifetime: seconds(o, "IPSECSaLifetimeSeconds", &lim::IPSEC_SA_LIFETIME_SECONDS)?,
        traffic_kb: o
            .int(
                "IPSECSaLifetimeTraffic",
                *lim::IPSEC_SA_LIFETIME_TRAFFIC_KB_3.start() as i64
                    ..=*lim::IPSEC_SA_LIFETIME_TRAFFIC_KB_3.end() as i64,
            )?
            .map(|v| v as u64),
        pfs: pick(o, "PfsDhGroup", PFS_GROUP)?,
    })
}

/// A picked value vpcd carries out, or the refusal naming its field.
fn carry<T>(p: Option<Pick<T>>, what: &str) -> ApiResult<Option<T>> {
    match p {
        None => Ok(None),
        Some(Pick { value: Some(v), .. }) => Ok(Some(v)),
        Some(Pick { path, text, .. }) => {
            let why = if text.starts_with("SM") {
                "strongSwan cannot negotiate the SM4/SM3 (Chinese national standard) algorithms"
            } else {
                "vpcd's tunnels are policy-based, from SecurityPolicyDatabases (STATIC)"
            };
            Err(unsupported(
                &path,
                format!("vpcd does not support {what} {text}: {why}"),
            ))
        }
    }
}

impl TunnelRequest {
    /// The request as the operation's settings change, or the first field
    /// vpcd cannot carry out.
    pub(super) fn into_change(self) -> ApiResult<SettingsChange> {
        if let Some((path, why)) = self.unsupported_given.into_iter().next() {
            return Err(unsupported(&path, why));
        }
        carry(self.route_type, "route type")?;
        let i = self.ike;
        let ike = IkeChange {
            encryption: carry(i.encryption, "IKE encryption")?,
            authentication: carry(i.authentication, "IKE authentication")?,
            exchange_mode: carry(i.exchange_mode, "exchange mode")?,
            dh_group: carry(i.dh_group, "DH group")?,
            sa_lifetime_seconds: i.lifetime,
            local: identity_change(i.local)?,
            remote: identity_change(i.remote)?,
            version: carry(i.version, "IKE version")?,
        };
        let p = self.ipsec;
        let ipsec = IpsecChange {
            encryption: carry(p.encryption, "IPsec encryption")?,
            integrity: carry(p.integrity, "IPsec integrity")?,
            sa_lifetime_seconds: p.lifetime,
            sa_lifetime_traffic_kb: p.traffic_kb,
            pfs: carry(p.pfs, "PFS group")?,
        };
        Ok(SettingsChange {
            pre_shared_key: self.psk,
            spd: self.spd.map(SpdChange::Rules),
            ike,
            ipsec,
            dpd: DpdChange {
                enabled: self.dpd_enable,
                timeout_seconds: self.dpd_timeout,
                action: carry(self.dpd_action, "DPD action")?,
            },
            negotiation: carry(self.negotiation_type, "negotiation type")?,
            health_check: self.health_check,
        })
    }
}

fn identity_change(r: IdentityRequest) -> ApiResult<IdentityChange> {
    Ok(IdentityChange {
        kind: carry(r.kind, "identity type")?,
        address: r.address,
        fqdn: r.fqdn,
    })
}

/// `SecurityPolicyDatabaseSet` item.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SpdItem<'a> {
    local_cidr_block: &'a str,
    remote_cidr_block: Vec<&'a str>,
}

/// `IKEOptionsSpecification` of an answer.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct IkeSpec {
    propo_encry_algorithm: &'static str,
    propo_authen_algorithm: &'static str,
    exchange_mode: &'static str,
    local_identity: &'static str,
    remote_identity: &'static str,
    local_address: String,
    remote_address: String,
    local_fqdn_name: String,
    remote_fqdn_name: String,
    dh_group_name: &'static str,
    #[serde(rename = "IKESaLifetimeSeconds")]
    ike_sa_lifetime_seconds: u32,
    #[serde(rename = "IKEVersion")]
    ike_version: &'static str,
}

/// `IPSECOptionsSpecification` of an answer (both spellings of the
/// integrity algorithm, as the model has both).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct IpsecSpec {
    encrypt_algorithm: &'static str,
    integrity_algorith: &'static str,
    #[serde(rename = "IPSECSaLifetimeSeconds")]
    ipsec_sa_lifetime_seconds: u32,
    pfs_dh_group: &'static str,
    #[serde(rename = "IPSECSaLifetimeTraffic")]
    ipsec_sa_lifetime_traffic: u64,
    integrity_algorithm: &'static str,
}

/// The tunnel part of a `VpnConnection` answer.
pub(super) struct Rendered<'a> {
    pub(super) spd: Vec<SpdItem<'a>>,
    pub(super) ike: IkeSpec,
    pub(super) ipsec: IpsecSpec,
}

/// The connection-level options of a `VpnConnection` answer.
pub(super) struct Options {
    pub(super) route_type: &'static str,
    pub(super) negotiation_type: &'static str,
    pub(super) dpd_enable: i64,
    pub(super) dpd_timeout: String,
    pub(super) dpd_action: &'static str,
    pub(super) enable_health_check: bool,
    /// "" without a health check.
    pub(super) health_check_local_ip: String,
    pub(super) health_check_remote_ip: String,
}

pub(super) fn options(s: &ConnSettings) -> Options {
    let (local, remote) = s.health_check.map_or((String::new(), String::new()), |h| {
        (h.local.to_string(), h.remote.to_string())
    });
    Options {
        route_type: spell(ROUTE_TYPE, ()),
        negotiation_type: spell(NEGOTIATION_TYPE, s.negotiation),
        dpd_enable: DPD_ENABLE
            .iter()
            .find(|(_, on)| *on == s.dpd.enabled)
            .map_or(0, |(n, _)| *n),
        dpd_timeout: s.dpd.timeout_seconds.to_string(),
        dpd_action: spell(DPD_ACTION, s.dpd.action),
        enable_health_check: s.health_check.is_some(),
        health_check_local_ip: local,
        health_check_remote_ip: remote,
    }
}

/// An identity's 3.0 fields: type, address, FQDN ("" where unused).
fn identity_fields(id: &Identity) -> (&'static str, String, String) {
    let kind = spell(IDENTITY, id.kind());
    match id {
        Identity::Address(a) => (kind, a.to_string(), String::new()),
        Identity::Fqdn(f) => (kind, String::new(), f.to_string()),
    }
}

pub(super) fn render(s: &ConnSettings) -> Rendered<'_> {
    let (local_identity, local_address, local_fqdn_name) = identity_fields(&s.ike.local_identity);
    let (remote_identity, remote_address, remote_fqdn_name) =
        identity_fields(&s.ike.remote_identity);
    let integrity = spell(IPSEC_INTEGRITY, s.ipsec.integrity);
    Rendered {
        spd: s
            .spd
            .iter()
            .map(|r| SpdItem {
                local_cidr_block: r.local.as_given(),
                remote_cidr_block: r.remote.iter().map(Cidr::as_given).collect(),
            })
            .collect(),
        ike: IkeSpec {
            propo_encry_algorithm: spell(IKE_ENCRYPTION, s.ike.encryption),
            propo_authen_algorithm: spell(IKE_AUTHENTICATION, s.ike.authentication),
            exchange_mode: spell(EXCHANGE_MODE, s.ike.exchange_mode),
            local_identity,
            remote_identity,
            local_address,
            remote_address,
            local_fqdn_name,
            remote_fqdn_name,
            dh_group_name: spell(DH_GROUP, s.ike.dh_group),
            ike_sa_lifetime_seconds: s.ike.sa_lifetime_seconds,
            ike_version: spell(IKE_VERSION, s.ike.version),
        },
        ipsec: IpsecSpec {
            encrypt_algorithm: spell(IPSEC_ENCRYPTION, s.ipsec.encryption),
            integrity_algorith: integrity,
            ipsec_sa_lifetime_seconds: s.ipsec.sa_lifetime_seconds,
            pfs_dh_group: spell(PFS_GROUP, s.ipsec.pfs),
            ipsec_sa_lifetime_traffic: s.ipsec.sa_lifetime_traffic_kb,
            integrity_algorithm: integrity,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every vpcd value has a 3.0 spelling, so every stored connection
    /// renders completely.
    #[test]
    fn every_vpcd_value_has_a_spelling() {
        for v in IkeEncryption::ALL {
            assert_ne!(spell(IKE_ENCRYPTION, *v), "", "{v:?}");
        }
        for v in IpsecEncryption::ALL {
            assert_ne!(spell(IPSEC_ENCRYPTION, *v), "", "{v:?}");
        }
        for v in AuthAlgorithm::ALL {
            // 3.0 documents no SHA-384 for IKE, so no IKE SA has it.
            if *v != AuthAlgorithm::Sha384 {
                assert_ne!(spell(IKE_AUTHENTICATION, *v), "", "{v:?}");
            }
            assert_ne!(spell(IPSEC_INTEGRITY, *v), "", "{v:?}");
        }
        for v in DhGroup::ALL {
            assert_ne!(spell(DH_GROUP, *v), "", "{v:?}");
        }
        for v in PfsGroup::ALL {
            assert_ne!(spell(PFS_GROUP, *v), "", "{v:?}");
        }
        for v in ExchangeMode::ALL {
            assert_ne!(spell(EXCHANGE_MODE, *v), "", "{v:?}");
        }
        for v in IdentityType::ALL {
            assert_ne!(spell(IDENTITY, *v), "", "{v:?}");
        }
        for v in IkeVersion::ALL {
            assert_ne!(spell(IKE_VERSION, *v), "", "{v:?}");
        }
        for v in NegotiationType::ALL {
            assert_ne!(spell(NEGOTIATION_TYPE, *v), "", "{v:?}");
        }
        for v in DpdAction::ALL {
            assert_ne!(spell(DPD_ACTION, *v), "", "{v:?}");
        }
    }

    fn change(body: serde_json::Value) -> ApiResult<SettingsChange> {
        let params = super::super::params::Params::from_json(body.to_string().as_bytes())?;
        parse(&params.root(), true)?.into_change()
    }

    /// Every documented value of every table: carried out, or refused with
    /// UnsupportedOperation naming its field and saying why (SM4/SM3 and
    /// the route types only).
    #[test]
    fn every_documented_value_is_carried_out_or_refused_by_name() {
        let ike = "IKEOptionsSpecification";
        let esp = "IPSECOptionsSpecification";
        /// (enclosing object, field, its values and whether each is taken)
        type Case<'a> = (Option<&'a str>, &'a str, Vec<(&'a str, bool)>);
        let fields: Vec<Case<'_>> = vec![
            (Some(ike), "PropoEncryAlgorithm", texts(IKE_ENCRYPTION)),
            (Some(ike), "PropoAuthenAlgorithm", texts(IKE_AUTHENTICATION)),
            (Some(ike), "DhGroupName", texts(DH_GROUP)),
            (Some(ike), "IKEVersion", texts(IKE_VERSION)),
            (Some(esp), "EncryptAlgorithm", texts(IPSEC_ENCRYPTION)),
            (Some(esp), "IntegrityAlgorithm", texts(IPSEC_INTEGRITY)),
            (Some(esp), "PfsDhGroup", texts(PFS_GROUP)),
            (None, "NegotiationType", texts(NEGOTIATION_TYPE)),
            (None, "DpdAction", texts(DPD_ACTION)),
            (None, "RouteType", texts(ROUTE_TYPE)),
        ];
        for (outer, key, values) in fields {
            for (text, carried) in values {
                let body = match outer {
                    Some(o) => serde_json::json!({ o: { key: text } }),
                    None => serde_json::json!({ key: text }),
                };
                match change(body) {
                    Ok(_) => assert!(carried, "{key} {text} taken"),
                    Err(e) => {
                        assert!(!carried, "{key} {text}: {e:?}");
                        assert_eq!(e.code, ErrorCode::UnsupportedOperation, "{key} {text}");
                        let name = e.param.as_ref().unwrap().v3_name().into_owned();
                        assert!(name.ends_with(key), "{name}");
                        let why = e.why.render(crate::error::Field::v3_name);
                        assert!(
                            why.contains("strongSwan") || why.contains("policy-based"),
                            "{why}"
                        );
                    }
                }
            }
        }
        let refused: Vec<&str> = [texts(IKE_ENCRYPTION), texts(IPSEC_ENCRYPTION)]
            .concat()
            .into_iter()
            .filter(|(_, carried)| !carried)
            .map(|(t, _)| t)
            .collect();
        assert_eq!(refused, ["SM4", "SM4"]);
    }

    fn texts<T>(t: Table<T>) -> Vec<(&'static str, bool)> {
        t.iter().map(|(s, v)| (*s, v.is_some())).collect()
    }

    #[test]
    fn wrong_values_are_invalid_naming_the_field() {
        for (body, at) in [
            (serde_json::json!({"DpdTimeout": "29"}), "DpdTimeout"),
            (serde_json::json!({"DpdEnable": 2}), "DpdEnable"),
            (
                serde_json::json!({"HealthCheckLocalIp": "::1"}),
                "HealthCheckLocalIp",
            ),
            (
                serde_json::json!({"IPSECOptionsSpecification": {"IPSECSaLifetimeTraffic": 4_294_967_296_u64}}),
                "IPSECOptionsSpecification.IPSECSaLifetimeTraffic",
            ),
        ] {
            let e = change(body).unwrap_err();
            assert_eq!(e.param.as_ref().unwrap().v3_name(), at);
            assert_ne!(e.code, ErrorCode::UnsupportedOperation);
        }
        let c = change(serde_json::json!({"DpdEnable": 1, "DpdTimeout": "60",
            "IPSECOptionsSpecification": {"IPSECSaLifetimeTraffic": 4_294_967_295_u64}}))
        .unwrap();
        assert_eq!(
            (
                c.dpd.enabled,
                c.dpd.timeout_seconds,
                c.ipsec.sa_lifetime_traffic_kb
            ),
            (Some(true), Some(60), Some(4_294_967_295))
        );
    }

    /// The 3.0 defaults are valid settings.
    #[test]
    fn defaults_are_in_range() {
        assert!(lim::IPSEC_SA_LIFETIME_SECONDS.contains(&DEFAULTS.ipsec_sa_lifetime_seconds));
        assert!(lim::IKE_SA_LIFETIME_SECONDS.contains(&DEFAULTS.ike_sa_lifetime_seconds));
    }
}
