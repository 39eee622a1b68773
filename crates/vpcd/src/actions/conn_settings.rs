//! Parsing a connection's settings: pre-shared key, peer ranges (SPD), and
//! the `IKESet.*` / `IPsecSet.*` fields, with the seed's enumerations,
//! ranges, defaults and conditional requirements.
//!
//! The same parser serves AddVpnConnEx (no `base`: omitted fields take their
//! defaults) and ModifyVpnConnEx (`base` = the current settings: omitted
//! fields keep their current value).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::de::{Deserializer, MapAccess, Visitor};
use vpcd_store::Limits;
use vpcd_types::vpn::limits as lim;
use vpcd_types::{
    AuthAlgorithm, Cidr, ConnSettings, DhGroup, ExchangeMode, Fqdn, Identity, IdentityType,
    IkeEncryption, IkeSettings, IpsecEncryption, IpsecSettings, PfsGroup, Secret, SpdRule,
    SpdSource,
};

use crate::error::{ApiError, ApiResult};
use crate::params::Params;

/// What the settings are checked against.
pub(super) struct Context<'a> {
    pub vpc_cidr: &'a Cidr,
    /// The VPN gateway's public address: default local identity.
    pub local_addr: IpAddr,
    /// The peer gateway's address: default remote identity.
    pub remote_addr: IpAddr,
    pub limits: &'a Limits,
}

/// The fields a set may carry; anything else inside `IKESet.`/`IPsecSet.` is
/// a typo worth refusing rather than silently ignoring.
const IKE_FIELDS: &[&str] = &[
    "propoEncryAlgorithm",
    "propoAuthenAlgorithm",
    "exchangeMode",
    "localIdentity",
    "remoteIdentity",
    "localAddress",
    "remoteAddress",
    "localFqdnName",
    "remoteFqdnName",
    "dhGroupName",
    "ikeSaLifetimeSeconds",
    "encryptAlgorithm",
];
const IPSEC_FIELDS: &[&str] = &[
    "encryptAlgorithm",
    "integrityAlgorith",
    "ipsecSaLifetimeSeconds",
    "ipsecSaLifetimeTraffic",
    "pfsDhGroup",
];

pub(super) const PSK_MAX: usize = 128;

/// A pre-shared key: 1-128 printable ASCII characters without spaces. The
/// message never repeats the value.
pub(super) fn parse_psk(value: &str) -> ApiResult<Secret> {
    if value.is_empty() || value.len() > PSK_MAX {
        return Err(ApiError::invalid(
            "preSharedKey",
            format!("must be 1 to {PSK_MAX} characters long"),
        ));
    }
    if !value.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(ApiError::invalid(
            "preSharedKey",
            "must contain only printable ASCII characters, without spaces",
        ));
    }
    Ok(Secret::new(value))
}

fn field<T>(p: &Params, key: &str) -> ApiResult<Option<T>>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    p.opt_parse(key)
}

pub(super) fn parse(
    p: &Params,
    ctx: &Context<'_>,
    base: Option<&ConnSettings>,
) -> ApiResult<ConnSettings> {
    for key in p.keys() {
        let (set, allowed) = if let Some(f) = key.strip_prefix("IKESet.") {
            (f, IKE_FIELDS)
        } else if let Some(f) = key.strip_prefix("IPsecSet.") {
            (f, IPSEC_FIELDS)
        } else {
            continue;
        };
        if !allowed.contains(&set) {
            return Err(ApiError::invalid(
                key,
                format!("unknown field; expected one of: {}", allowed.join(", ")),
            ));
        }
    }

    let pre_shared_key = match (p.raw("preSharedKey"), base) {
        (Some(v), _) => parse_psk(v)?,
        (None, Some(b)) => b.pre_shared_key.clone(),
        (None, None) => return Err(ApiError::missing("preSharedKey")),
    };

    let (spd_source, spd) = parse_spd(p, ctx, base)?;
    let ike = parse_ike(p, ctx, base.map(|b| &b.ike))?;
    let ipsec = parse_ipsec(p, base.map(|b| &b.ipsec))?;
    Ok(ConnSettings {
        pre_shared_key,
        spd_source,
        spd,
        ike,
        ipsec,
    })
}

fn parse_ike(p: &Params, ctx: &Context<'_>, base: Option<&IkeSettings>) -> ApiResult<IkeSettings> {
    let encryption = field::<IkeEncryption>(p, "IKESet.propoEncryAlgorithm")?
        .or(base.map(|b| b.encryption))
        .unwrap_or(IkeEncryption::TripleDesCbc);
    let authentication = field::<AuthAlgorithm>(p, "IKESet.propoAuthenAlgorithm")?
        .or(base.map(|b| b.authentication))
        .unwrap_or(AuthAlgorithm::Md5);
    let exchange_mode = field::<ExchangeMode>(p, "IKESet.exchangeMode")?
        .or(base.map(|b| b.exchange_mode))
        .unwrap_or(ExchangeMode::Main);
    let dh_group = field::<DhGroup>(p, "IKESet.dhGroupName")?
        .or(base.map(|b| b.dh_group))
        .unwrap_or(lim::DH_GROUP_DEFAULT);
    let sa_lifetime_seconds = p
        .opt_int(
            "IKESet.ikeSaLifetimeSeconds",
            i64::from(*lim::IKE_SA_LIFETIME_SECONDS.start())
                ..=i64::from(*lim::IKE_SA_LIFETIME_SECONDS.end()),
        )?
        .map(|n| n as u32)
        .or(base.map(|b| b.sa_lifetime_seconds))
        .unwrap_or(lim::IKE_SA_LIFETIME_DEFAULT);
    let local_identity = identity(p, "local", ctx.local_addr, base.map(|b| &b.local_identity))?;
    let remote_identity = identity(
        p,
        "remote",
        ctx.remote_addr,
        base.map(|b| &b.remote_identity),
    )?;
    Ok(IkeSettings {
        encryption,
        authentication,
        exchange_mode,
        local_identity,
        remote_identity,
        dh_group,
        sa_lifetime_seconds,
    })
}

/// One side's identity: its type, then the address or FQDN that type needs.
fn identity(
    p: &Params,
    side: &str,
    default_addr: IpAddr,
    base: Option<&Identity>,
) -> ApiResult<Identity> {
    let kind_key = format!("IKESet.{side}Identity");
    let addr_key = format!("IKESet.{side}Address");
    let fqdn_key = format!("IKESet.{side}FqdnName");
    let kind = field::<IdentityType>(p, &kind_key)?
        .or(base.map(Identity::kind))
        .unwrap_or(IdentityType::Address);
    match kind {
        IdentityType::Address => {
            if p.contains(&fqdn_key) {
                return Err(ApiError::invalid(
                    &fqdn_key,
                    format!("is only used when {kind_key} is fqdn"),
                ));
            }
            let addr = match p.opt_str(&addr_key)? {
                Some(v) => v
                    .parse::<IpAddr>()
                    .ok()
                    .filter(IpAddr::is_ipv4)
                    .ok_or_else(|| ApiError::invalid(&addr_key, "expected an IPv4 address"))?,
                None => match base {
                    Some(Identity::Address(a)) => *a,
                    _ => default_addr,
                },
            };
            Ok(Identity::Address(addr))
        }
        IdentityType::Fqdn => {
            if p.contains(&addr_key) {
                return Err(ApiError::invalid(
                    &addr_key,
                    format!("is only used when {kind_key} is address"),
                ));
            }
            match p.opt_str(&fqdn_key)? {
                Some(v) => v
                    .parse::<Fqdn>()
                    .map(Identity::Fqdn)
                    .map_err(|e| ApiError::invalid(&fqdn_key, e)),
                None => match base {
                    Some(Identity::Fqdn(f)) => Ok(Identity::Fqdn(f.clone())),
                    _ => Err(ApiError::invalid(
                        &fqdn_key,
                        format!("is required when {kind_key} is fqdn"),
                    )),
                },
            }
        }
    }
}

fn parse_ipsec(p: &Params, base: Option<&IpsecSettings>) -> ApiResult<IpsecSettings> {
    // The seed lists encryptAlgorithm under IKESet although it is an IPsec
    // setting; both places are accepted, not both at once.
    let enc_ike = field::<IpsecEncryption>(p, "IKESet.encryptAlgorithm")?;
    let enc_ipsec = field::<IpsecEncryption>(p, "IPsecSet.encryptAlgorithm")?;
    if enc_ike.is_some() && enc_ipsec.is_some() {
        return Err(ApiError::invalid(
            "IPsecSet.encryptAlgorithm",
            "give encryptAlgorithm under IPsecSet or IKESet, not both",
        ));
    }
    let encryption = enc_ipsec
        .or(enc_ike)
        .or(base.map(|b| b.encryption))
        .unwrap_or(IpsecEncryption::TripleDesCbc);
    let integrity = field::<AuthAlgorithm>(p, "IPsecSet.integrityAlgorith")?
        .or(base.map(|b| b.integrity))
        .unwrap_or(AuthAlgorithm::Md5);
    let sa_lifetime_seconds = p
        .opt_int(
            "IPsecSet.ipsecSaLifetimeSeconds",
            i64::from(*lim::IPSEC_SA_LIFETIME_SECONDS.start())
                ..=i64::from(*lim::IPSEC_SA_LIFETIME_SECONDS.end()),
        )?
        .map(|n| n as u32)
        .or(base.map(|b| b.sa_lifetime_seconds))
        .unwrap_or(lim::IPSEC_SA_LIFETIME_DEFAULT);
    let sa_lifetime_traffic_kb = p
        .opt_int(
            "IPsecSet.ipsecSaLifetimeTraffic",
            *lim::IPSEC_SA_LIFETIME_TRAFFIC_KB.start() as i64
                ..=*lim::IPSEC_SA_LIFETIME_TRAFFIC_KB.end() as i64,
        )?
        .map(|n| n as u64)
        .or(base.map(|b| b.sa_lifetime_traffic_kb))
        .unwrap_or(lim::IPSEC_SA_LIFETIME_TRAFFIC_DEFAULT);
    let pfs = field::<PfsGroup>(p, "IPsecSet.pfsDhGroup")?
        .or(base.map(|b| b.pfs))
        .unwrap_or(PfsGroup::Null);
    Ok(IpsecSettings {
        encryption,
        integrity,
        sa_lifetime_seconds,
        sa_lifetime_traffic_kb,
        pfs,
    })
}

fn parse_spd(
    p: &Params,
    ctx: &Context<'_>,
    base: Option<&ConnSettings>,
) -> ApiResult<(SpdSource, Vec<SpdRule>)> {
    let blocks = p.array("userGwCidrBlock")?;
    let acl = p.raw("spdAcl");
    match (blocks.is_empty(), acl, base) {
        (false, Some(_), _) => Err(ApiError::invalid(
            "spdAcl",
            "give either userGwCidrBlock.n or spdAcl, not both",
        )),
        (true, None, None) => Err(ApiError::missing("userGwCidrBlock.n or spdAcl")),
        (true, None, Some(b)) => Ok((b.spd_source, b.spd.clone())),
        (false, None, _) => {
            let limit = ctx.limits.cidrs_per_spd_rule as usize;
            if blocks.len() > limit {
                return Err(ApiError::invalid(
                    "userGwCidrBlock.n",
                    format!(
                        "at most {limit} CIDR blocks are allowed (got {})",
                        blocks.len()
                    ),
                ));
            }
            let mut remote: Vec<Cidr> = Vec::with_capacity(blocks.len());
            for (key, v) in blocks {
                remote.push(idc_cidr(&key, v, ctx.vpc_cidr, &remote)?);
            }
            Ok((
                SpdSource::UserGwCidrBlock,
                vec![SpdRule {
                    local: ctx.vpc_cidr.clone(),
                    remote,
                }],
            ))
        }
        (true, Some(text), _) => Ok((SpdSource::SpdAcl, parse_spd_acl(text, ctx)?)),
    }
}

/// An IDC-side CIDR: valid, outside the VPC, not a repeat.
fn idc_cidr(key: &str, v: &str, vpc: &Cidr, seen: &[Cidr]) -> ApiResult<Cidr> {
    let c: Cidr = v.parse().map_err(|e| ApiError::invalid(key, e))?;
    if c.overlaps(vpc) {
        return Err(ApiError::invalid(
            key,
            format!(
                "{v} overlaps the VPC's CIDR {vpc}; the peer's ranges must lie outside the VPC"
            ),
        ));
    }
    if seen.iter().any(|s| s.net() == c.net()) {
        return Err(ApiError::invalid(key, format!("{v} is given twice")));
    }
    Ok(c)
}

/// `spdAcl` is a JSON object: VPC CIDR -> list of IDC CIDRs.
struct AclDoc(Vec<(String, Vec<String>)>);

impl<'de> serde::Deserialize<'de> for AclDoc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AclDoc;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object mapping each VPC CIDR to a list of IDC CIDRs")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<AclDoc, A::Error> {
                let mut out: Vec<(String, Vec<String>)> = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, Vec<String>>()? {
                    if out.iter().any(|(seen, _)| *seen == k) {
                        return Err(serde::de::Error::custom(format!("key {k} appears twice")));
                    }
                    out.push((k, v));
                }
                Ok(AclDoc(out))
            }
        }
        d.deserialize_map(V)
    }
}

fn parse_spd_acl(text: &str, ctx: &Context<'_>) -> ApiResult<Vec<SpdRule>> {
    let doc: AclDoc = serde_json::from_str(text).map_err(|e| {
        ApiError::invalid(
            "spdAcl",
            format!("expected a JSON object such as {{\"10.0.0.0/24\":[\"172.16.0.0/16\"]}} ({e})"),
        )
    })?;
    let rules_max = ctx.limits.spd_rules_per_conn as usize;
    let cidrs_max = ctx.limits.cidrs_per_spd_rule as usize;
    if doc.0.is_empty() || doc.0.len() > rules_max {
        return Err(ApiError::invalid(
            "spdAcl",
            format!("must hold 1 to {rules_max} rules (got {})", doc.0.len()),
        ));
    }
    let mut rules: Vec<SpdRule> = Vec::with_capacity(doc.0.len());
    for (local_text, remotes) in doc.0 {
        let local: Cidr = local_text.parse().map_err(|e| {
            ApiError::invalid("spdAcl", format!("VPC-side CIDR {local_text:?}: {e}"))
        })?;
        if !ctx.vpc_cidr.contains(&local) {
            return Err(ApiError::invalid(
                "spdAcl",
                format!(
                    "VPC-side CIDR {local_text} must lie inside the VPC's CIDR {}",
                    ctx.vpc_cidr
                ),
            ));
        }
        if let Some(other) = rules.iter().find(|r| r.local.overlaps(&local)) {
            return Err(ApiError::invalid(
                "spdAcl",
                format!("VPC-side CIDRs {} and {local_text} overlap", other.local),
            ));
        }
        if remotes.is_empty() || remotes.len() > cidrs_max {
            return Err(ApiError::invalid(
                "spdAcl",
                format!(
                    "rule {local_text} must list 1 to {cidrs_max} IDC CIDRs (got {})",
                    remotes.len()
                ),
            ));
        }
        let mut remote: Vec<Cidr> = Vec::with_capacity(remotes.len());
        for r in &remotes {
            let c = idc_cidr("spdAcl", r, ctx.vpc_cidr, &remote)?;
            remote.push(c);
        }
        rules.push(SpdRule { local, remote });
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx_limits() -> Limits {
        Limits::default()
    }

    fn run(pairs: &[(&str, &str)]) -> ApiResult<ConnSettings> {
        let vpc: Cidr = "10.0.0.0/16".parse().unwrap();
        let limits = ctx_limits();
        let ctx = Context {
            vpc_cidr: &vpc,
            local_addr: "203.0.113.1".parse().unwrap(),
            remote_addr: "198.51.100.2".parse().unwrap(),
            limits: &limits,
        };
        let p = Params::from_pairs(pairs.iter().copied()).unwrap();
        parse(&p, &ctx, None)
    }

    #[test]
    fn seed_defaults() {
        let s = run(&[
            ("preSharedKey", "dgdgd33"),
            ("userGwCidrBlock.0", "10.56.20.1/24"),
        ]);
        // 10.56.20.0/24 lies outside 10.0.0.0/16.
        let s = s.unwrap();
        assert_eq!(s.ike.encryption, IkeEncryption::TripleDesCbc);
        assert_eq!(s.ike.authentication, AuthAlgorithm::Md5);
        assert_eq!(s.ike.exchange_mode, ExchangeMode::Main);
        assert_eq!(s.ike.dh_group, DhGroup::Group2);
        assert_eq!(s.ike.sa_lifetime_seconds, 86_400);
        assert_eq!(
            s.ike.local_identity,
            Identity::Address("203.0.113.1".parse().unwrap())
        );
        assert_eq!(
            s.ike.remote_identity,
            Identity::Address("198.51.100.2".parse().unwrap())
        );
        assert_eq!(s.ipsec.encryption, IpsecEncryption::TripleDesCbc);
        assert_eq!(s.ipsec.integrity, AuthAlgorithm::Md5);
        assert_eq!(s.ipsec.sa_lifetime_seconds, 3_600);
        assert_eq!(s.ipsec.sa_lifetime_traffic_kb, 1_843_200);
        assert_eq!(s.ipsec.pfs, PfsGroup::Null);
        assert_eq!(s.spd[0].remote[0].as_given(), "10.56.20.1/24");
    }

    #[test]
    fn psk_never_echoed_in_errors() {
        let e = run(&[
            ("preSharedKey", "secret value"),
            ("userGwCidrBlock.0", "192.168.0.0/24"),
        ])
        .unwrap_err();
        assert!(e.message.starts_with("preSharedKey:"));
        assert!(!e.message.contains("secret value"));
    }

    #[test]
    fn fqdn_identity_requires_its_name() {
        let e = run(&[
            ("preSharedKey", "k"),
            ("userGwCidrBlock.0", "192.168.0.0/24"),
            ("IKESet.localIdentity", "fqdn"),
        ])
        .unwrap_err();
        assert!(
            e.message.starts_with("IKESet.localFqdnName:"),
            "{}",
            e.message
        );
    }

    #[test]
    fn spd_acl_rules() {
        let ok = run(&[
            ("preSharedKey", "k"),
            ("spdAcl", r#"{"10.0.0.5/24":["172.123.10.5/16"],"10.0.1.0/24":["192.168.1.0/24","192.168.2.0/24"]}"#),
        ])
        .unwrap();
        assert_eq!(ok.spd.len(), 2);
        for bad in [
            r#"{"10.1.0.0/24":["172.16.0.0/16"]}"#,
            r#"{"10.0.0.0/24":["10.0.5.0/24"]}"#,
            r#"{"10.0.0.0/24":["172.16.0.0/16"],"10.0.0.0/24":["172.17.0.0/16"]}"#,
            r#"{"10.0.0.0/24":[]}"#,
            r#"{}"#,
            r#"["10.0.0.0/24"]"#,
            r#"{"10.0.0.0/24":"172.16.0.0/16"}"#,
            r#"{"10.0.0.0/24":["172.16.0.0/33"]}"#,
        ] {
            let e = run(&[("preSharedKey", "k"), ("spdAcl", bad)]).unwrap_err();
            assert!(e.message.starts_with("spdAcl:"), "{bad}: {}", e.message);
        }
    }
}
