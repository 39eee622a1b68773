//! A connection's settings as v2 sends them: `preSharedKey`,
//! `userGwCidrBlock.n` or `spdAcl`, and the `IKESet.*` / `IPsecSet.*`
//! fields, parsed into the operation's
//! [`SettingsChange`]. What
//! depends on more than one value (defaults, the VPC, identity types) is the
//! operation's business.

use std::fmt;
use std::ops::RangeInclusive;

use serde::de::{Deserializer, MapAccess, Visitor};
use vpcd_types::vpn::limits as lim;
use vpcd_types::{
    AuthAlgorithm, Cidr, DhGroup, ExchangeMode, IdentityType, IkeEncryption, IpsecEncryption,
    PfsGroup,
};

use super::params::Params;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ops::conn_settings::{
    parse_psk, IdentityChange, IkeChange, IpsecChange, SettingsChange, SpdChange,
};
use crate::ops::parse_ipv4;

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

pub(super) fn settings_change(p: &Params) -> ApiResult<SettingsChange> {
    for key in p.keys() {
        let (field, allowed) = if let Some(f) = key.strip_prefix("IKESet.") {
            (f, IKE_FIELDS)
        } else if let Some(f) = key.strip_prefix("IPsecSet.") {
            (f, IPSEC_FIELDS)
        } else {
            continue;
        };
        if !allowed.contains(&field) {
            return Err(ApiError::invalid(
                key,
                format!("unknown field; expected one of: {}", allowed.join(", ")),
            ));
        }
    }
    Ok(SettingsChange {
        pre_shared_key: p.opt_with("preSharedKey", ErrorCode::InvalidParameter, parse_psk)?,
        spd: spd_change(p)?,
        ike: ike_change(p)?,
        ipsec: ipsec_change(p)?,
        // v2 has no fields for these: a new v2 tunnel takes v2's defaults,
        // a modified one keeps what it has (also what API 3.0 set).
        ..SettingsChange::default()
    })
}

/// An enumerated value among the spellings v2 documents (API 3.0 added
/// more to the same types; v2 keeps its own list).
fn v2_enum<T>(
    p: &Params,
    key: &str,
    parse: fn(&str) -> Result<T, vpcd_types::EnumError>,
) -> ApiResult<Option<T>> {
    p.opt_str(key)?
        .map(|v| parse(v).map_err(|e| ApiError::invalid(key, e)))
        .transpose()
}

/// A lifetime in seconds, within the range vpcd-types gives for it.
fn seconds(p: &Params, key: &str, range: &RangeInclusive<u32>) -> ApiResult<Option<u32>> {
    let range = i64::from(*range.start())..=i64::from(*range.end());
    Ok(p.opt_int(key, range)?.map(|n| n as u32))
}

fn ike_change(p: &Params) -> ApiResult<IkeChange> {
    Ok(IkeChange {
        encryption: v2_enum(p, "IKESet.propoEncryAlgorithm", IkeEncryption::parse_v2)?,
        authentication: v2_enum(p, "IKESet.propoAuthenAlgorithm", AuthAlgorithm::parse_v2)?,
        exchange_mode: p.opt_parse::<ExchangeMode>("IKESet.exchangeMode")?,
        dh_group: v2_enum(p, "IKESet.dhGroupName", DhGroup::parse_v2)?,
        sa_lifetime_seconds: seconds(
            p,
            "IKESet.ikeSaLifetimeSeconds",
            &lim::IKE_SA_LIFETIME_SECONDS,
        )?,
        local: identity_change(p, "local")?,
        remote: identity_change(p, "remote")?,
        version: None,
    })
}

fn identity_change(p: &Params, side: &str) -> ApiResult<IdentityChange> {
    let addr_key = format!("IKESet.{side}Address");
    Ok(IdentityChange {
        kind: p.opt_parse::<IdentityType>(&format!("IKESet.{side}Identity"))?,
        address: p
            .opt_str(&addr_key)?
            .map(|v| parse_ipv4(v).map_err(|why| ApiError::invalid(&addr_key, why)))
            .transpose()?,
        fqdn: p.opt_parse(&format!("IKESet.{side}FqdnName"))?,
    })
}

fn ipsec_change(p: &Params) -> ApiResult<IpsecChange> {
    // The seed lists encryptAlgorithm under IKESet although it is an IPsec
    // setting; both places are accepted, not both at once.
    let enc_ike = v2_enum(p, "IKESet.encryptAlgorithm", IpsecEncryption::parse_v2)?;
    let enc_ipsec = v2_enum(p, "IPsecSet.encryptAlgorithm", IpsecEncryption::parse_v2)?;
    if enc_ike.is_some() && enc_ipsec.is_some() {
        return Err(ApiError::invalid(
            "IPsecSet.encryptAlgorithm",
            "give encryptAlgorithm under IPsecSet or IKESet, not both",
        ));
    }
    let traffic = &lim::IPSEC_SA_LIFETIME_TRAFFIC_KB;
    Ok(IpsecChange {
        encryption: enc_ipsec.or(enc_ike),
        integrity: v2_enum(p, "IPsecSet.integrityAlgorith", AuthAlgorithm::parse_v2)?,
        sa_lifetime_seconds: seconds(
            p,
            "IPsecSet.ipsecSaLifetimeSeconds",
            &lim::IPSEC_SA_LIFETIME_SECONDS,
        )?,
        sa_lifetime_traffic_kb: p
            .opt_int(
                "IPsecSet.ipsecSaLifetimeTraffic",
                *traffic.start() as i64..=*traffic.end() as i64,
            )?
            .map(|n| n as u64),
        pfs: v2_enum(p, "IPsecSet.pfsDhGroup", PfsGroup::parse_v2)?,
    })
}

/// `userGwCidrBlock.n` (peer CIDRs reached from the whole VPC) or `spdAcl`
/// (explicit rules), never both.
fn spd_change(p: &Params) -> ApiResult<Option<SpdChange>> {
    let blocks = p.array("userGwCidrBlock")?;
    match (blocks.is_empty(), p.raw("spdAcl")) {
        (false, Some(_)) => Err(ApiError::invalid(
            "spdAcl",
            "give either userGwCidrBlock.n or spdAcl, not both",
        )),
        (true, None) => Ok(None),
        (false, None) => {
            let cidrs = blocks
                .into_iter()
                .map(|(key, v)| v.parse::<Cidr>().map_err(|e| ApiError::invalid(&key, e)))
                .collect::<ApiResult<Vec<Cidr>>>()?;
            Ok(Some(SpdChange::PeerCidrs(cidrs)))
        }
        (true, Some(text)) => Ok(Some(SpdChange::Rules(spd_acl(text)?))),
    }
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
                // A set, so a document with many keys costs linear time.
                let mut seen = std::collections::HashSet::new();
                while let Some((k, v)) = m.next_entry::<String, Vec<String>>()? {
                    if !seen.insert(k.clone()) {
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

fn spd_acl(text: &str) -> ApiResult<Vec<(Cidr, Vec<Cidr>)>> {
    let doc: AclDoc = serde_json::from_str(text).map_err(|e| {
        ApiError::invalid(
            "spdAcl",
            format!("expected a JSON object such as {{\"10.0.0.0/24\":[\"172.16.0.0/16\"]}} ({e})"),
        )
    })?;
    doc.0
        .into_iter()
        .map(|(local, remotes)| {
            let local: Cidr = local.parse().map_err(|e| {
                ApiError::invalid("spdAcl", format!("VPC-side CIDR {local:?}: {e}"))
            })?;
            let remote = remotes
                .iter()
                .map(|r| {
                    r.parse::<Cidr>()
                        .map_err(|e| ApiError::invalid("spdAcl", e))
                })
                .collect::<ApiResult<Vec<Cidr>>>()?;
            Ok((local, remote))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Param;

    fn run(pairs: &[(&str, &str)]) -> ApiResult<SettingsChange> {
        settings_change(&Params::decode(pairs.iter().copied()).unwrap())
    }

    fn named(e: ApiError) -> String {
        e.param
            .as_ref()
            .map(Param::v2_name)
            .unwrap_or_default()
            .into_owned()
    }

    #[test]
    fn fields_parse_into_their_types() {
        let c = run(&[
            ("preSharedKey", "dgdgd33"),
            ("userGwCidrBlock.0", "10.56.20.1/24"),
            ("ikeSet.0.dhGroupName", "group14"),
            ("IKESet.encryptAlgorithm", "aes-cbc-256"),
            ("IPsecSet.ipsecSaLifetimeTraffic", "2560"),
        ])
        .unwrap();
        assert_eq!(c.pre_shared_key.unwrap().expose(), "dgdgd33");
        assert!(
            matches!(c.spd, Some(SpdChange::PeerCidrs(ref v)) if v[0].as_given() == "10.56.20.1/24")
        );
        assert_eq!(c.ike.dh_group, Some(DhGroup::Group14));
        assert_eq!(c.ipsec.encryption, Some(IpsecEncryption::AesCbc256));
        assert_eq!(c.ipsec.sa_lifetime_traffic_kb, Some(2560));
        assert!(run(&[]).unwrap().spd.is_none());
    }

    #[test]
    fn psk_never_echoed_in_errors() {
        let e = run(&[("preSharedKey", "secret value")]).unwrap_err();
        assert_eq!(named(e.clone()), "preSharedKey");
        assert!(!format!("{e:?}").contains("secret value"));
    }

    #[test]
    fn wire_shape_errors_name_the_key() {
        for (pairs, key) in [
            (vec![("IKESet.dhGroup", "group2")], "IKESet.dhGroup"),
            (
                vec![("userGwCidrBlock.0", "192.168.0.0/24"), ("spdAcl", "{}")],
                "spdAcl",
            ),
            (
                vec![("userGwCidrBlock.0", "192.168.1.0")],
                "userGwCidrBlock.0",
            ),
            (
                vec![("IKESet.localAddress", "2001:db8::1")],
                "IKESet.localAddress",
            ),
            (
                vec![
                    ("IKESet.encryptAlgorithm", "null"),
                    ("IPsecSet.encryptAlgorithm", "null"),
                ],
                "IPsecSet.encryptAlgorithm",
            ),
        ] {
            assert_eq!(named(run(&pairs).unwrap_err()), key, "{pairs:?}");
        }
        for bad in [
            "{",
            r#"["10.0.0.0/24"]"#,
            r#"{"10.0.0.0/24":"172.16.0.0/16"}"#,
            r#"{"10.0.0.0/24":["172.16.0.0/33"]}"#,
            r#"{"10.0.0.0/24":["172.16.0.0/16"],"10.0.0.0/24":["172.17.0.0/16"]}"#,
        ] {
            assert_eq!(
                named(run(&[("spdAcl", bad)]).unwrap_err()),
                "spdAcl",
                "{bad}"
            );
        }
    }
}
