//! A connection's settings: pre-shared key, peer ranges (SPD), IKE and
//! IPsec.
//!
//! A request carries a [`SettingsChange`]: the values the caller gave,
//! already parsed into their types. [`resolve`] completes it against a
//! [`Base`]: the protocol's defaults for a new connection (where the
//! pre-shared key and the peer ranges are required) or the connection's
//! current settings for a modification (where every omitted value is kept).
//! It then checks what only the whole picture shows: the peer's ranges
//! against the VPC and the quotas, an identity type against its value, a
//! cipher against the IKE version, the health-check addresses.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

use vpcd_store::Limits;
use vpcd_types::{
    AuthAlgorithm, Cidr, ConnSettings, DhGroup, DpdAction, DpdSettings, ExchangeMode, Fqdn,
    HealthCheck, Identity, IdentityType, IkeEncryption, IkeSettings, IkeVersion, IpsecEncryption,
    IpsecSettings, NegotiationType, PfsGroup, Secret, SpdRule, SpdSource,
};

use crate::error::{ApiError, ApiResult, ErrorCode, Field, Side, Why};

const PSK_MAX: usize = 128;

/// A pre-shared key: 1-128 printable ASCII characters without spaces. The
/// reason never repeats the value.
pub(crate) fn parse_psk(value: &str) -> Result<Secret, String> {
    if value.is_empty() || value.len() > PSK_MAX {
        return Err(format!("must be 1 to {PSK_MAX} characters long"));
    }
    if !value.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err("must contain only printable ASCII characters, without spaces".to_owned());
    }
    Ok(Secret::new(value))
}

/// The settings a request gives; `None` takes the default or keeps the
/// current value.
#[derive(Debug, Default)]
pub(crate) struct SettingsChange {
    pub(crate) pre_shared_key: Option<Secret>,
    pub(crate) spd: Option<SpdChange>,
    pub(crate) ike: IkeChange,
    pub(crate) ipsec: IpsecChange,
    pub(crate) dpd: DpdChange,
    pub(crate) negotiation: Option<NegotiationType>,
    pub(crate) health_check: HealthCheckChange,
}

/// Dead peer detection: on or off, its timeout and action.
#[derive(Debug, Default)]
pub(crate) struct DpdChange {
    pub(crate) enabled: Option<bool>,
    pub(crate) timeout_seconds: Option<u32>,
    pub(crate) action: Option<DpdAction>,
}

/// The in-tunnel health check: on or off, and its two addresses (each
/// drawn from [`HealthCheck::range`] when a check is turned on without
/// one).
#[derive(Debug, Default)]
pub(crate) struct HealthCheckChange {
    pub(crate) enabled: Option<bool>,
    pub(crate) local: Option<Ipv4Addr>,
    pub(crate) remote: Option<Ipv4Addr>,
}

/// The peer's ranges.
#[derive(Debug)]
pub(crate) enum SpdChange {
    /// Peer CIDR blocks, each reached from the whole VPC.
    PeerCidrs(Vec<Cidr>),
    /// Explicit rules: a VPC-side CIDR and the peer CIDRs it reaches.
    Rules(Vec<(Cidr, Vec<Cidr>)>),
}

#[derive(Debug, Default)]
pub(crate) struct IkeChange {
    pub(crate) encryption: Option<IkeEncryption>,
    pub(crate) authentication: Option<AuthAlgorithm>,
    pub(crate) exchange_mode: Option<ExchangeMode>,
    pub(crate) dh_group: Option<DhGroup>,
    pub(crate) sa_lifetime_seconds: Option<u32>,
    pub(crate) local: IdentityChange,
    pub(crate) remote: IdentityChange,
    pub(crate) version: Option<IkeVersion>,
}

/// One side's identity: its type, and the address or FQDN that type uses.
#[derive(Debug, Default)]
pub(crate) struct IdentityChange {
    pub(crate) kind: Option<IdentityType>,
    pub(crate) address: Option<IpAddr>,
    pub(crate) fqdn: Option<Fqdn>,
}

#[derive(Debug, Default)]
pub(crate) struct IpsecChange {
    pub(crate) encryption: Option<IpsecEncryption>,
    pub(crate) integrity: Option<AuthAlgorithm>,
    pub(crate) sa_lifetime_seconds: Option<u32>,
    pub(crate) sa_lifetime_traffic_kb: Option<u64>,
    pub(crate) pfs: Option<PfsGroup>,
}

/// The algorithm defaults of a new connection. They belong to the protocol
/// (v2 and API 3.0 document different ones), so the adapter supplies them.
#[derive(Debug)]
pub(crate) struct Defaults {
    pub(crate) ike_encryption: IkeEncryption,
    pub(crate) ike_authentication: AuthAlgorithm,
    pub(crate) exchange_mode: ExchangeMode,
    pub(crate) dh_group: DhGroup,
    pub(crate) ike_sa_lifetime_seconds: u32,
    pub(crate) ipsec_encryption: IpsecEncryption,
    pub(crate) ipsec_integrity: AuthAlgorithm,
    pub(crate) ipsec_sa_lifetime_seconds: u32,
    pub(crate) ipsec_sa_lifetime_traffic_kb: u64,
    pub(crate) pfs: PfsGroup,
    pub(crate) ike_version: IkeVersion,
    pub(crate) dpd: DpdSettings,
    pub(crate) negotiation: NegotiationType,
}

/// What a change completes.
pub(crate) enum Base<'a> {
    New(&'a Defaults),
    Existing(&'a ConnSettings),
}

/// What the settings are checked against.
pub(crate) struct Context<'a> {
    pub(crate) vpc_cidr: &'a Cidr,
    /// The VPN gateway's public address: default local identity.
    pub(crate) local_addr: IpAddr,
    /// The peer gateway's address: default remote identity.
    pub(crate) remote_addr: IpAddr,
    pub(crate) limits: &'a Limits,
}

pub(crate) fn resolve(
    change: SettingsChange,
    base: Base<'_>,
    ctx: &Context<'_>,
) -> ApiResult<ConnSettings> {
    let (existing, ike_base, ipsec_base, dpd_base, negotiation_base, health_base) = match base {
        Base::New(d) => (
            None,
            new_ike(d, ctx),
            new_ipsec(d),
            d.dpd,
            d.negotiation,
            None,
        ),
        Base::Existing(s) => (
            Some(s),
            s.ike.clone(),
            s.ipsec.clone(),
            s.dpd,
            s.negotiation,
            s.health_check,
        ),
    };
    let pre_shared_key = match (change.pre_shared_key, existing) {
        (Some(k), _) => k,
        (None, Some(s)) => s.pre_shared_key.clone(),
        (None, None) => return Err(ApiError::missing_field(Field::PreSharedKey)),
    };
    let (spd_source, spd) = match (change.spd, existing) {
        (Some(c), _) => resolve_spd(c, ctx)?,
        (None, Some(s)) => (s.spd_source, s.spd.clone()),
        (None, None) => return Err(ApiError::missing_field(Field::PeerRanges)),
    };
    let ike = resolve_ike(change.ike, ike_base, ctx)?;
    check_version(&ike)?;
    let dpd = DpdSettings {
        enabled: change.dpd.enabled.unwrap_or(dpd_base.enabled),
        timeout_seconds: change
            .dpd
            .timeout_seconds
            .unwrap_or(dpd_base.timeout_seconds),
        action: change.dpd.action.unwrap_or(dpd_base.action),
    };
    Ok(ConnSettings {
        pre_shared_key,
        spd_source,
        spd,
        ike,
        ipsec: resolve_ipsec(change.ipsec, ipsec_base),
        dpd,
        negotiation: change.negotiation.unwrap_or(negotiation_base),
        health_check: resolve_health_check(change.health_check, health_base)?,
    })
}

/// What IKEv1 cannot do: an AEAD cipher for the IKE SA itself (strongSwan
/// and the RFCs define AES-GCM for IKEv2 SAs only). Aggressive mode is an
/// IKEv1 exchange; an IKEv2 tunnel has none.
fn check_version(ike: &IkeSettings) -> ApiResult<()> {
    match ike.version {
        IkeVersion::V1 if ike.encryption.is_aead() => Err(ApiError::field_why(
            ErrorCode::InvalidParameter,
            Field::IkeEncryption,
            Why::text(format!("{} needs IKEv2 (", ike.encryption))
                .field(Field::IkeVersion)
                .then("); IKEv1 has no AEAD cipher for its own SA"),
        )),
        IkeVersion::V2 if ike.exchange_mode == ExchangeMode::Aggressive => {
            Err(ApiError::field_why(
                ErrorCode::InvalidParameter,
                Field::ExchangeMode,
                Why::text("aggressive mode is an IKEv1 exchange; with ")
                    .field(Field::IkeVersion)
                    .then(" IKEv2 give MAIN"),
            ))
        }
        _ => Ok(()),
    }
}

/// The health check after a change: off, or on with two distinct
/// addresses in [`HealthCheck::range`]. Addresses are only taken with the
/// check on; turning it on without one draws it from the range.
fn resolve_health_check(
    c: HealthCheckChange,
    base: Option<HealthCheck>,
) -> ApiResult<Option<HealthCheck>> {
    let enabled = c.enabled.unwrap_or(base.is_some());
    if !enabled {
        for (side, given) in [(Side::Local, c.local), (Side::Remote, c.remote)] {
            if given.is_some() {
                return Err(ApiError::field_why(
                    ErrorCode::InvalidParameter,
                    Field::HealthCheckIp(side),
                    Why::text("is only used when ")
                        .field(Field::EnableHealthCheck)
                        .then(" is true"),
                ));
            }
        }
        return Ok(None);
    }
    let range = HealthCheck::range();
    for (side, given) in [(Side::Local, c.local), (Side::Remote, c.remote)] {
        if let Some(a) = given {
            if !range.contains(&a) {
                return Err(invalid(
                    Field::HealthCheckIp(side),
                    format!("{a} must lie in {range}"),
                ));
            }
        }
    }
    let local = c
        .local
        .or(base.map(|b| b.local))
        .unwrap_or_else(|| random_in(range, None));
    let remote = c
        .remote
        .or(base.map(|b| b.remote))
        .unwrap_or_else(|| random_in(range, Some(local)));
    if local == remote {
        return Err(ApiError::field_why(
            ErrorCode::InvalidParameter,
            Field::HealthCheckIp(Side::Remote),
            Why::text(format!("{remote} is also "))
                .field(Field::HealthCheckIp(Side::Local))
                .then("; the two ends need different addresses"),
        ));
    }
    Ok(Some(HealthCheck { local, remote }))
}

/// A host address of `range` other than `not` (the range's own network
/// and broadcast addresses excluded).
fn random_in(range: ipnet::Ipv4Net, not: Option<Ipv4Addr>) -> Ipv4Addr {
    use rand::Rng;
    let base = u32::from(range.network());
    let hosts = (1u32 << (32 - range.prefix_len())) - 2;
    let mut rng = rand::thread_rng();
    loop {
        let a = Ipv4Addr::from(base + 1 + rng.gen_range(0..hosts));
        if Some(a) != not {
            return a;
        }
    }
}

/// A new connection's IKE settings before the caller's changes: the
/// defaults, identified by the two gateways' addresses.
fn new_ike(d: &Defaults, ctx: &Context<'_>) -> IkeSettings {
    IkeSettings {
        encryption: d.ike_encryption,
        authentication: d.ike_authentication,
        exchange_mode: d.exchange_mode,
        local_identity: Identity::Address(ctx.local_addr),
        remote_identity: Identity::Address(ctx.remote_addr),
        dh_group: d.dh_group,
        sa_lifetime_seconds: d.ike_sa_lifetime_seconds,
        version: d.ike_version,
    }
}

fn new_ipsec(d: &Defaults) -> IpsecSettings {
    IpsecSettings {
        encryption: d.ipsec_encryption,
        integrity: d.ipsec_integrity,
        sa_lifetime_seconds: d.ipsec_sa_lifetime_seconds,
        sa_lifetime_traffic_kb: d.ipsec_sa_lifetime_traffic_kb,
        pfs: d.pfs,
    }
}

fn resolve_ike(c: IkeChange, base: IkeSettings, ctx: &Context<'_>) -> ApiResult<IkeSettings> {
    Ok(IkeSettings {
        encryption: c.encryption.unwrap_or(base.encryption),
        authentication: c.authentication.unwrap_or(base.authentication),
        exchange_mode: c.exchange_mode.unwrap_or(base.exchange_mode),
        local_identity: identity(c.local, Side::Local, &base.local_identity, ctx.local_addr)?,
        remote_identity: identity(
            c.remote,
            Side::Remote,
            &base.remote_identity,
            ctx.remote_addr,
        )?,
        dh_group: c.dh_group.unwrap_or(base.dh_group),
        sa_lifetime_seconds: c.sa_lifetime_seconds.unwrap_or(base.sa_lifetime_seconds),
        version: c.version.unwrap_or(base.version),
    })
}

/// One side's identity: its type, then the address or FQDN that type
/// needs. An address identity without an address is the gateway's own.
fn identity(
    c: IdentityChange,
    side: Side,
    base: &Identity,
    default_addr: IpAddr,
) -> ApiResult<Identity> {
    let kind_is = |field: Field, kind: &str| {
        let why = Why::text("is only used when ")
            .field(Field::IdentityType(side))
            .then(format!(" is {kind}"));
        ApiError::field_why(ErrorCode::InvalidParameter, field, why)
    };
    match c.kind.unwrap_or(base.kind()) {
        IdentityType::Address => {
            if c.fqdn.is_some() {
                return Err(kind_is(Field::IdentityFqdn(side), "fqdn"));
            }
            let addr = match (c.address, base) {
                (Some(a), _) => a,
                (None, Identity::Address(a)) => *a,
                (None, Identity::Fqdn(_)) => default_addr,
            };
            // The gateway speaks for its own address only: another address
            // of its gateway node may be another tenant's gateway (issue 11,
            // finding 7). The peer's may differ from its address (NAT).
            if side == Side::Local && c.address.is_some() && addr != default_addr {
                return Err(invalid(
                    Field::IdentityAddress(side),
                    format!("must be the VPN gateway's public address {default_addr}"),
                ));
            }
            Ok(Identity::Address(addr))
        }
        IdentityType::Fqdn => {
            if c.address.is_some() {
                return Err(kind_is(Field::IdentityAddress(side), "address"));
            }
            match (c.fqdn, base) {
                (Some(f), _) => Ok(Identity::Fqdn(f)),
                (None, Identity::Fqdn(f)) => Ok(Identity::Fqdn(f.clone())),
                (None, Identity::Address(_)) => Err(ApiError::field_why(
                    ErrorCode::InvalidParameter,
                    Field::IdentityFqdn(side),
                    Why::text("is required when ")
                        .field(Field::IdentityType(side))
                        .then(" is fqdn"),
                )),
            }
        }
    }
}

fn resolve_ipsec(c: IpsecChange, base: IpsecSettings) -> IpsecSettings {
    IpsecSettings {
        encryption: c.encryption.unwrap_or(base.encryption),
        integrity: c.integrity.unwrap_or(base.integrity),
        sa_lifetime_seconds: c.sa_lifetime_seconds.unwrap_or(base.sa_lifetime_seconds),
        sa_lifetime_traffic_kb: c
            .sa_lifetime_traffic_kb
            .unwrap_or(base.sa_lifetime_traffic_kb),
        pfs: c.pfs.unwrap_or(base.pfs),
    }
}

fn invalid(field: Field, why: impl std::fmt::Display) -> ApiError {
    ApiError::field(ErrorCode::InvalidParameter, field, why)
}

fn resolve_spd(c: SpdChange, ctx: &Context<'_>) -> ApiResult<(SpdSource, Vec<SpdRule>)> {
    let cidrs_max = ctx.limits.cidrs_per_spd_rule as usize;
    match c {
        SpdChange::PeerCidrs(blocks) => {
            if blocks.len() > cidrs_max {
                return Err(invalid(
                    Field::PeerCidrBlocks,
                    format!(
                        "at most {cidrs_max} CIDR blocks are allowed (got {})",
                        blocks.len()
                    ),
                ));
            }
            let mut seen = HashSet::new();
            for (i, c) in blocks.iter().enumerate() {
                check_peer_cidr(c, ctx.vpc_cidr, &mut seen)
                    .map_err(|why| invalid(Field::PeerCidrBlock(i), why))?;
            }
            let rule = SpdRule {
                local: ctx.vpc_cidr.clone(),
                remote: blocks,
            };
            Ok((SpdSource::UserGwCidrBlock, vec![rule]))
        }
        SpdChange::Rules(rules) => Ok((SpdSource::SpdAcl, resolve_rules(rules, ctx)?)),
    }
}

fn resolve_rules(rules: Vec<(Cidr, Vec<Cidr>)>, ctx: &Context<'_>) -> ApiResult<Vec<SpdRule>> {
    let bad = |why: String| invalid(Field::SpdRules, why);
    let rules_max = ctx.limits.spd_rules_per_conn as usize;
    let cidrs_max = ctx.limits.cidrs_per_spd_rule as usize;
    if rules.is_empty() || rules.len() > rules_max {
        return Err(bad(format!(
            "must hold 1 to {rules_max} rules (got {})",
            rules.len()
        )));
    }
    let mut out: Vec<SpdRule> = Vec::with_capacity(rules.len());
    for (local, remote) in rules {
        if !ctx.vpc_cidr.contains(&local) {
            return Err(bad(format!(
                "VPC-side CIDR {local} must lie inside the VPC's CIDR {}",
                ctx.vpc_cidr
            )));
        }
        if let Some(other) = out.iter().find(|r| r.local.overlaps(&local)) {
            return Err(bad(format!(
                "VPC-side CIDRs {} and {local} overlap",
                other.local
            )));
        }
        if remote.is_empty() || remote.len() > cidrs_max {
            return Err(bad(format!(
                "rule {local} must list 1 to {cidrs_max} IDC CIDRs (got {})",
                remote.len()
            )));
        }
        let mut seen = HashSet::new();
        for c in remote.iter() {
            check_peer_cidr(c, ctx.vpc_cidr, &mut seen).map_err(bad)?;
        }
        out.push(SpdRule { local, remote });
    }
    Ok(out)
}

/// A peer (IDC) range: outside the VPC, not a repeat of an earlier one
/// (`seen`: the networks so far, a set so long lists cost linear time).
fn check_peer_cidr(c: &Cidr, vpc: &Cidr, seen: &mut HashSet<IpNet>) -> Result<(), String> {
    if c.overlaps(vpc) {
        return Err(format!(
            "{c} overlaps the VPC's CIDR {vpc}; the peer's ranges must lie outside the VPC"
        ));
    }
    if !seen.insert(c.net()) {
        return Err(format!("{c} is given twice"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: Defaults = Defaults {
        ike_encryption: IkeEncryption::TripleDesCbc,
        ike_authentication: AuthAlgorithm::Md5,
        exchange_mode: ExchangeMode::Main,
        dh_group: DhGroup::Group2,
        ike_sa_lifetime_seconds: 86_400,
        ipsec_encryption: IpsecEncryption::TripleDesCbc,
        ipsec_integrity: AuthAlgorithm::Md5,
        ipsec_sa_lifetime_seconds: 3_600,
        ipsec_sa_lifetime_traffic_kb: 1_843_200,
        pfs: PfsGroup::Null,
        ike_version: IkeVersion::V1,
        dpd: DpdSettings {
            enabled: true,
            timeout_seconds: 30,
            action: DpdAction::Restart,
        },
        negotiation: NegotiationType::Active,
    };

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn run(change: SettingsChange, base: Base<'_>) -> ApiResult<ConnSettings> {
        let vpc = cidr("10.0.0.0/16");
        let limits = Limits::default();
        let ctx = Context {
            vpc_cidr: &vpc,
            local_addr: "203.0.113.1".parse().unwrap(),
            remote_addr: "198.51.100.2".parse().unwrap(),
            limits: &limits,
        };
        resolve(change, base, &ctx)
    }

    fn new_conn(spd: SpdChange) -> SettingsChange {
        SettingsChange {
            pre_shared_key: Some(Secret::new("k")),
            spd: Some(spd),
            ..SettingsChange::default()
        }
    }

    fn field_of(e: &ApiError) -> String {
        e.param.as_ref().unwrap().v2_name().into_owned()
    }

    #[test]
    fn defaults_and_gateway_identities() {
        let s = run(
            new_conn(SpdChange::PeerCidrs(vec![cidr("10.56.20.1/24")])),
            Base::New(&DEFAULTS),
        )
        .unwrap();
        assert_eq!(s.ike.dh_group, DhGroup::Group2);
        assert_eq!(
            s.ike.local_identity,
            Identity::Address("203.0.113.1".parse().unwrap())
        );
        assert_eq!(
            s.ike.remote_identity,
            Identity::Address("198.51.100.2".parse().unwrap())
        );
        assert_eq!(s.spd_source, SpdSource::UserGwCidrBlock);
        assert_eq!(s.spd[0].local, cidr("10.0.0.0/16"));
        assert_eq!(s.ipsec.sa_lifetime_traffic_kb, 1_843_200);
    }

    #[test]
    fn a_new_connection_needs_a_key_and_ranges() {
        let e = run(SettingsChange::default(), Base::New(&DEFAULTS)).unwrap_err();
        assert_eq!(
            (e.code, field_of(&e).as_str()),
            (ErrorCode::MissingParameter, "preSharedKey")
        );
        let e = run(
            SettingsChange {
                pre_shared_key: Some(Secret::new("k")),
                ..SettingsChange::default()
            },
            Base::New(&DEFAULTS),
        )
        .unwrap_err();
        assert_eq!(field_of(&e), "userGwCidrBlock.n or spdAcl");
    }

    #[test]
    fn a_modification_keeps_what_it_does_not_name() {
        let mut change = new_conn(SpdChange::PeerCidrs(vec![cidr("192.168.0.0/24")]));
        change.ike.local = IdentityChange {
            kind: Some(IdentityType::Fqdn),
            fqdn: Some("a.example".parse().unwrap()),
            address: None,
        };
        let first = run(change, Base::New(&DEFAULTS)).unwrap();
        let mut change = SettingsChange::default();
        change.ipsec.pfs = Some(PfsGroup::DhGroup14);
        let second = run(change, Base::Existing(&first)).unwrap();
        assert_eq!(second.ike.local_identity, first.ike.local_identity);
        assert_eq!(second.spd, first.spd);
        assert_eq!(second.pre_shared_key, first.pre_shared_key);
        assert_eq!(second.ipsec.pfs, PfsGroup::DhGroup14);
    }

    #[test]
    fn identity_type_and_value_must_agree() {
        let mut change = new_conn(SpdChange::PeerCidrs(vec![cidr("192.168.0.0/24")]));
        change.ike.remote.kind = Some(IdentityType::Fqdn);
        let e = run(change, Base::New(&DEFAULTS)).unwrap_err();
        assert_eq!(field_of(&e), "IKESet.remoteFqdnName");
        assert_eq!(
            e.why.render(Field::v2_name),
            "is required when IKESet.remoteIdentity is fqdn"
        );
        let mut change = new_conn(SpdChange::PeerCidrs(vec![cidr("192.168.0.0/24")]));
        change.ike.local.fqdn = Some("a.example".parse().unwrap());
        let e = run(change, Base::New(&DEFAULTS)).unwrap_err();
        assert_eq!(field_of(&e), "IKESet.localFqdnName");
    }

    /// Issue 11, finding 7: the local address identity is the gateway's own
    /// address; the remote one may differ from the peer's (NAT).
    #[test]
    fn local_address_identity_is_the_gateways_own_address() {
        let mut change = new_conn(SpdChange::PeerCidrs(vec![cidr("192.168.0.0/24")]));
        change.ike.local.address = Some("8.8.8.8".parse().unwrap());
        let e = run(change, Base::New(&DEFAULTS)).unwrap_err();
        assert_eq!(field_of(&e), "IKESet.localAddress");
        assert_eq!(
            e.why.render(Field::v2_name),
            "must be the VPN gateway's public address 203.0.113.1"
        );
        let mut change = new_conn(SpdChange::PeerCidrs(vec![cidr("192.168.0.0/24")]));
        change.ike.local.address = Some("203.0.113.1".parse().unwrap());
        change.ike.remote.address = Some("10.9.9.9".parse().unwrap());
        let s = run(change, Base::New(&DEFAULTS)).unwrap();
        assert_eq!(
            s.ike.remote_identity,
            Identity::Address("10.9.9.9".parse().unwrap())
        );
    }

    #[test]
    fn peer_ranges_lie_outside_the_vpc_once_each() {
        for (blocks, at) in [
            (vec!["10.0.3.0/24"], "userGwCidrBlock.0"),
            (
                vec!["192.168.1.0/24", "192.168.1.9/24"],
                "userGwCidrBlock.1",
            ),
        ] {
            let blocks = blocks.into_iter().map(cidr).collect();
            let e = run(new_conn(SpdChange::PeerCidrs(blocks)), Base::New(&DEFAULTS)).unwrap_err();
            assert_eq!(field_of(&e), at);
        }
    }

    #[test]
    fn spd_rules() {
        let rule = |l: &str, r: &[&str]| (cidr(l), r.iter().map(|c| cidr(c)).collect());
        let ok = run(
            new_conn(SpdChange::Rules(vec![
                rule("10.0.0.5/24", &["172.123.10.5/16"]),
                rule("10.0.1.0/24", &["192.168.1.0/24", "192.168.2.0/24"]),
            ])),
            Base::New(&DEFAULTS),
        )
        .unwrap();
        assert_eq!(ok.spd.len(), 2);
        assert_eq!(ok.spd_source, SpdSource::SpdAcl);
        for bad in [
            vec![rule("10.1.0.0/24", &["172.16.0.0/16"])],
            vec![rule("10.0.0.0/24", &["10.0.5.0/24"])],
            vec![
                rule("10.0.0.0/24", &["172.16.0.0/16"]),
                rule("10.0.0.0/25", &["172.17.0.0/16"]),
            ],
            vec![rule("10.0.0.0/24", &[])],
            vec![],
        ] {
            let e = run(new_conn(SpdChange::Rules(bad)), Base::New(&DEFAULTS)).unwrap_err();
            assert_eq!(field_of(&e), "spdAcl");
        }
    }

    fn field3(e: &ApiError) -> String {
        e.param.as_ref().unwrap().v3_name().into_owned()
    }

    /// An AEAD cipher for the IKE SA needs IKEv2; aggressive mode needs
    /// IKEv1. Either order of giving them is checked on the result.
    #[test]
    fn ike_version_rules() {
        let mut c = new_conn(SpdChange::PeerCidrs(vec![cidr("192.168.0.0/24")]));
        c.ike.encryption = Some(IkeEncryption::Aes128Gcm128);
        let e = run(c, Base::New(&DEFAULTS)).unwrap_err();
        assert_eq!(
            field3(&e),
            "IKEOptionsSpecification.PropoEncryAlgorithm",
            "{e:?}"
        );
        assert!(e
            .why
            .render(Field::v3_name)
            .contains("IKEOptionsSpecification.IKEVersion"));

        let mut c = new_conn(SpdChange::PeerCidrs(vec![cidr("192.168.0.0/24")]));
        c.ike.encryption = Some(IkeEncryption::Aes128Gcm128);
        c.ike.version = Some(IkeVersion::V2);
        let v2 = run(c, Base::New(&DEFAULTS)).unwrap();
        // ESP may use GCM under either version.
        let mut back = SettingsChange::default();
        back.ike.version = Some(IkeVersion::V1);
        assert!(run(back, Base::Existing(&v2)).is_err(), "GCM IKE stays");
        let mut agg = SettingsChange::default();
        agg.ike.exchange_mode = Some(ExchangeMode::Aggressive);
        let e = run(agg, Base::Existing(&v2)).unwrap_err();
        assert_eq!(field3(&e), "IKEOptionsSpecification.ExchangeMode");
        let mut esp = SettingsChange::default();
        esp.ipsec.encryption = Some(IpsecEncryption::Aes256Gcm128);
        esp.ike.version = Some(IkeVersion::V1);
        esp.ike.encryption = Some(IkeEncryption::AesCbc128);
        let s = run(esp, Base::Existing(&v2)).unwrap();
        assert_eq!(
            (s.ike.version, s.ipsec.encryption),
            (IkeVersion::V1, IpsecEncryption::Aes256Gcm128)
        );
    }

    #[test]
    fn health_check_addresses() {
        let hc = |enabled, local: Option<&str>, remote: Option<&str>| HealthCheckChange {
            enabled,
            local: local.map(|a| a.parse().unwrap()),
            remote: remote.map(|a| a.parse().unwrap()),
        };
        let range = HealthCheck::range();
        for _ in 0..50 {
            let h = resolve_health_check(hc(Some(true), None, None), None)
                .unwrap()
                .unwrap();
            assert!(range.contains(&h.local) && range.contains(&h.remote));
            assert_ne!(h.local, h.remote);
            assert_ne!(h.local, range.network());
            assert_ne!(h.remote, range.broadcast());
        }
        let given = resolve_health_check(
            hc(Some(true), Some("169.254.128.1"), Some("169.254.128.2")),
            None,
        )
        .unwrap();
        // Kept by a change that does not name them; cleared when turned off.
        assert_eq!(
            resolve_health_check(hc(None, None, None), given).unwrap(),
            given
        );
        assert_eq!(
            resolve_health_check(hc(Some(false), None, None), given).unwrap(),
            None
        );
        for (change, at) in [
            (hc(Some(true), Some("10.0.0.1"), None), "HealthCheckLocalIp"),
            (
                hc(Some(true), None, Some("169.254.127.255")),
                "HealthCheckRemoteIp",
            ),
            (hc(None, Some("169.254.128.1"), None), "HealthCheckLocalIp"),
            (
                hc(Some(true), Some("169.254.128.1"), Some("169.254.128.1")),
                "HealthCheckRemoteIp",
            ),
        ] {
            let e = resolve_health_check(change, None).unwrap_err();
            assert_eq!(field3(&e), at);
        }
    }

    #[test]
    fn psk_reasons_never_echo_the_key() {
        let why = parse_psk("secret value").unwrap_err();
        assert!(!why.contains("secret value"));
        assert!(parse_psk(&"k".repeat(129)).is_err());
        assert!(parse_psk("").is_err());
        assert_eq!(parse_psk("dgdgd33").unwrap().expose(), "dgdgd33");
    }
}
