//! A VPN connection's tunnel as API 3.0 spells it: the pre-shared key,
//! `SecurityPolicyDatabases`, `IKEOptionsSpecification`,
//! `IPSECOptionsSpecification`, and the newer options (IKE version, DPD,
//! negotiation type, health checks, route type, BGP, tags).
//!
//! THE one place that decides which documented 3.0 values vpcd carries
//! out. Each enumerated field has one table: every value 3.0 documents,
//! each with the vpcd value it maps to, or `None` where vpcd cannot carry
//! it out yet. [`TunnelRequest::into_change`] turns a parsed request into
//! the operation's [`SettingsChange`] and refuses every `None` (and every
//! option vpcd has no counterpart for) with `UnsupportedOperation` naming
//! the field. Supporting a new value (IKEv2, GCM, groups 19-21, DPD
//! settings, ...) is: a vpcd-types variant, its `Some` here, and the
//! operation's field; rendering reads the same tables backwards.
//!
//! A value outside the documented list is a wrong value
//! (`InvalidParameterValue`), not an unsupported one.

use std::net::IpAddr;

use serde::Serialize;
use vpcd_dataplane::strongswan::render::DPD_TIMEOUT_SECONDS;
use vpcd_types::vpn::limits as lim;
use vpcd_types::{
    AuthAlgorithm, Cidr, ConnSettings, DhGroup, ExchangeMode, Fqdn, Identity, IdentityType,
    IkeEncryption, IpsecEncryption, PfsGroup, Secret,
};

use super::common::unsupported;
use super::params::{invalid, Field, Obj};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ops::conn_settings::{
    parse_psk, Defaults, IdentityChange, IkeChange, IpsecChange, SettingsChange, SpdChange,
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
    ("AES128GCM128", None),
    ("AES192GCM128", None),
    ("AES256GCM128", None),
];

const IPSEC_ENCRYPTION: Table<IpsecEncryption> = &[
    ("3DES-CBC", Some(IpsecEncryption::TripleDesCbc)),
    ("AES-CBC-128", Some(IpsecEncryption::AesCbc128)),
    ("AES-CBC-192", Some(IpsecEncryption::AesCbc192)),
    ("AES-CBC-256", Some(IpsecEncryption::AesCbc256)),
    ("DES-CBC", Some(IpsecEncryption::DesCbc)),
    ("SM4", None),
    ("NULL", Some(IpsecEncryption::Null)),
    ("AES128GCM128", None),
    ("AES192GCM128", None),
    ("AES256GCM128", None),
];

/// IKE spells SHA-1 `SHA`...
const IKE_AUTHENTICATION: Table<AuthAlgorithm> = &[
    ("MD5", Some(AuthAlgorithm::Md5)),
    ("SHA", Some(AuthAlgorithm::Sha)),
    ("SHA-256", None),
    ("SHA-512", None),
];

/// ...IPsec spells it `SHA1`.
const IPSEC_INTEGRITY: Table<AuthAlgorithm> = &[
    ("MD5", Some(AuthAlgorithm::Md5)),
    ("SHA1", Some(AuthAlgorithm::Sha)),
    ("SHA-256", None),
    ("SHA-512", None),
    ("SHA-384", None),
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
    ("GROUP15", None),
    ("GROUP16", None),
    ("GROUP19", None),
    ("GROUP20", None),
    ("GROUP21", None),
    ("GROUP24", Some(DhGroup::Group24)),
];

const PFS_GROUP: Table<PfsGroup> = &[
    ("NULL", Some(PfsGroup::Null)),
    ("DH-GROUP1", Some(PfsGroup::DhGroup1)),
    ("DH-GROUP2", Some(PfsGroup::DhGroup2)),
    ("DH-GROUP5", Some(PfsGroup::DhGroup5)),
    ("DH-GROUP14", Some(PfsGroup::DhGroup14)),
    ("DH-GROUP15", None),
    ("DH-GROUP16", None),
    ("DH-GROUP19", None),
    ("DH-GROUP20", None),
    ("DH-GROUP21", None),
    ("DH-GROUP24", Some(PfsGroup::DhGroup24)),
];

/// What vpcd does today for options it has no setting for: `Some(())`
/// marks the one value that describes it.
const IKE_VERSION: Table<()> = &[("IKEV1", Some(())), ("IKEV2", None)];
/// Policy-based tunnels from SPD rules, which 3.0 calls `STATIC`.
const ROUTE_TYPE: Table<()> = &[
    ("STATIC", Some(())),
    ("StaticRoute", None),
    ("Policy", None),
    ("Bgp", None),
];
/// vpcd initiates every tunnel at once (strongSwan `start_action = start`).
const NEGOTIATION_TYPE: Table<()> = &[
    ("active", Some(())),
    ("passive", None),
    ("flowTrigger", None),
];
/// Dead peers are detected and the tunnel re-initiated (`dpd_action = restart`).
const DPD_ACTION: Table<()> = &[("clear", None), ("restart", Some(()))];
/// DPD is always on.
const DPD_ENABLE: &[(i64, bool)] = &[(0, false), (1, true)];

/// The largest IPsec SA traffic lifetime 3.0 documents, in KB; vpcd takes
/// up to [`lim::IPSEC_SA_LIFETIME_TRAFFIC_KB`]'s end.
const TRAFFIC_KB_MAX_3: i64 = 4_294_967_295;

/// The 3.0 defaults of a new connection (CreateVpnConnection's
/// documentation), where vpcd can carry them out: the DH group is vpcd's
/// (group2, not GROUP1's 768 bits, as for v2), and the traffic lifetime
/// vpcd's largest (3.0 documents 4096000000 KB).
pub(super) static DEFAULTS: Defaults = Defaults {
    ike_encryption: IkeEncryption::TripleDesCbc,
    ike_authentication: AuthAlgorithm::Sha,
    exchange_mode: ExchangeMode::Main,
    dh_group: lim::DH_GROUP_DEFAULT,
    ike_sa_lifetime_seconds: lim::IKE_SA_LIFETIME_DEFAULT,
    ipsec_encryption: IpsecEncryption::AesCbc128,
    ipsec_integrity: AuthAlgorithm::Sha,
    ipsec_sa_lifetime_seconds: 14_400,
    ipsec_sa_lifetime_traffic_kb: *lim::IPSEC_SA_LIFETIME_TRAFFIC_KB.end(),
    pfs: PfsGroup::Null,
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
    negotiation_type: Option<Pick<()>>,
    dpd_enable: Option<(String, i64)>,
    dpd_timeout: Option<(String, i64)>,
    dpd_action: Option<Pick<()>>,
    health_check: Option<(String, bool)>,
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
    version: Option<Pick<()>>,
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
    traffic_kb: Option<(String, i64)>,
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
    refuse_if_given("HealthCheckLocalIp", "vpcd runs no in-tunnel health checks");
    refuse_if_given(
        "HealthCheckRemoteIp",
        "vpcd runs no in-tunnel health checks",
    );
    refuse_if_given("HealthCheckConfig", "vpcd runs no in-tunnel health checks");
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
        dpd_enable: o.int("DpdEnable", 0..=1)?.map(|v| (o.path("DpdEnable"), v)),
        dpd_timeout: o
            .int_text("DpdTimeout", 0..=i64::from(u32::MAX))?
            .map(|v| (o.path("DpdTimeout"), v)),
        dpd_action: pick(o, "DpdAction", DPD_ACTION)?,
        health_check: o
            .bool("EnableHealthCheck")?
            .map(|v| (o.path("EnableHealthCheck"), v)),
        unsupported_given,
    })
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
                *lim::IPSEC_SA_LIFETIME_TRAFFIC_KB.start() as i64..=TRAFFIC_KB_MAX_3,
            )?
            .map(|v| (o.path("IPSECSaLifetimeTraffic"), v)),
        pfs: pick(o, "PfsDhGroup", PFS_GROUP)?,
    })
}

/// A picked value vpcd carries out, or the refusal naming its field.
fn carry<T>(p: Option<Pick<T>>, what: &str) -> ApiResult<Option<T>> {
    match p {
        None => Ok(None),
        Some(Pick { value: Some(v), .. }) => Ok(Some(v)),
        Some(Pick { path, text, .. }) => Err(unsupported(
            &path,
            format!("vpcd does not support {what} {text} yet"),
        )),
    }
}

impl TunnelRequest {
    /// The request as the operation's settings change, or the first field
    /// vpcd cannot carry out.
    pub(super) fn into_change(self) -> ApiResult<SettingsChange> {
        if let Some((path, why)) = self.unsupported_given.into_iter().next() {
            return Err(unsupported(&path, why));
        }
        if let Some((path, true)) = &self.health_check {
            return Err(unsupported(path, "vpcd runs no in-tunnel health checks"));
        }
        carry(self.route_type, "route type")?;
        carry(self.negotiation_type, "negotiation type")?;
        carry(self.dpd_action, "the DPD action")?;
        if let Some((path, v)) = &self.dpd_enable {
            if !DPD_ENABLE.iter().any(|(n, on)| n == v && *on) {
                return Err(unsupported(
                    path,
                    "vpcd always runs dead peer detection (DpdEnable 1)",
                ));
            }
        }
        if let Some((path, v)) = &self.dpd_timeout {
            if *v != i64::from(DPD_TIMEOUT_SECONDS) {
                return Err(unsupported(
                    path,
                    format!("vpcd's DPD timeout is {DPD_TIMEOUT_SECONDS} seconds"),
                ));
            }
        }
        let i = self.ike;
        carry(i.version, "IKE version")?;
        let ike = IkeChange {
            encryption: carry(i.encryption, "IKE encryption")?,
            authentication: carry(i.authentication, "IKE authentication")?,
            exchange_mode: carry(i.exchange_mode, "exchange mode")?,
            dh_group: carry(i.dh_group, "DH group")?,
            sa_lifetime_seconds: i.lifetime,
            local: identity_change(i.local)?,
            remote: identity_change(i.remote)?,
        };
        let p = self.ipsec;
        let traffic_max = *lim::IPSEC_SA_LIFETIME_TRAFFIC_KB.end();
        let sa_lifetime_traffic_kb = match p.traffic_kb {
            Some((path, kb)) if kb as u64 > traffic_max => {
                return Err(unsupported(
                    &path,
                    format!("vpcd supports traffic lifetimes up to {traffic_max} KB"),
                ))
            }
            other => other.map(|(_, kb)| kb as u64),
        };
        let ipsec = IpsecChange {
            encryption: carry(p.encryption, "IPsec encryption")?,
            integrity: carry(p.integrity, "IPsec integrity")?,
            sa_lifetime_seconds: p.lifetime,
            sa_lifetime_traffic_kb,
            pfs: carry(p.pfs, "PFS group")?,
        };
        Ok(SettingsChange {
            pre_shared_key: self.psk,
            spd: self.spd.map(SpdChange::Rules),
            ike,
            ipsec,
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

/// What vpcd does for the options it has no setting for, as 3.0 reports
/// them.
pub(super) struct Fixed {
    pub(super) route_type: &'static str,
    pub(super) negotiation_type: &'static str,
    pub(super) dpd_enable: i64,
    pub(super) dpd_timeout: String,
    pub(super) dpd_action: &'static str,
}

pub(super) fn fixed() -> Fixed {
    let only = |t: Table<()>| spell(t, ());
    Fixed {
        route_type: only(ROUTE_TYPE),
        negotiation_type: only(NEGOTIATION_TYPE),
        dpd_enable: DPD_ENABLE.iter().find(|(_, on)| *on).map_or(1, |(n, _)| *n),
        dpd_timeout: DPD_TIMEOUT_SECONDS.to_string(),
        dpd_action: only(DPD_ACTION),
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
            ike_version: spell(IKE_VERSION, ()),
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
            assert_ne!(spell(IKE_AUTHENTICATION, *v), "", "{v:?}");
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
        let f = fixed();
        assert_eq!(
            (f.route_type, f.negotiation_type, f.dpd_enable, f.dpd_action),
            ("STATIC", "active", 1, "restart")
        );
    }

    /// The 3.0 defaults are valid settings.
    #[test]
    fn defaults_are_in_range() {
        assert!(lim::IPSEC_SA_LIFETIME_SECONDS.contains(&DEFAULTS.ipsec_sa_lifetime_seconds));
        assert!(lim::IKE_SA_LIFETIME_SECONDS.contains(&DEFAULTS.ike_sa_lifetime_seconds));
    }
}
