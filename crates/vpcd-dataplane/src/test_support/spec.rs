//! Ready-made [`TunnelSpec`]s.
//!
//! Addresses follow the test bed's plan: the cloud gateway is
//! `203.0.113.1`, the peer gateway `198.51.100.1`, VPC-side inner networks
//! are in `10.100.0.0/16` and IDC-side ones in `10.200.0.0/16`.

use std::net::IpAddr;

use vpcd_types::{
    limits, AuthAlgorithm, Cidr, ConnSettings, DhGroup, DpdSettings, ExchangeMode, Identity,
    IkeEncryption, IkeSettings, IkeVersion, IpsecEncryption, IpsecSettings, NegotiationType,
    PfsGroup, Secret, SpdRule, SpdSource, TunnelSpec, VpnConnId,
};

/// The cloud gateway's public address in the test bed.
pub const CLOUD_ADDR: &str = "203.0.113.1";
/// The peer gateway's public address in the test bed.
pub const PEER_ADDR: &str = "198.51.100.1";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// An SPD rule from text, e.g. `rule("10.100.0.1/24", &["10.200.0.0/24"])`.
pub fn rule(local: &str, remote: &[&str]) -> SpdRule {
    SpdRule {
        local: local.parse::<Cidr>().expect("test CIDR"),
        remote: remote
            .iter()
            .map(|r| r.parse::<Cidr>().expect("test CIDR"))
            .collect(),
    }
}

/// A spec with every API default (3des-cbc/md5/main/group2, address
/// identities, no PFS) between `local` and `remote`.
pub fn spec_between(
    name: &str,
    local: &str,
    remote: &str,
    psk: &str,
    spd: Vec<SpdRule>,
) -> TunnelSpec {
    let local_addr = ip(local);
    let remote_addr = ip(remote);
    TunnelSpec {
        name: name.parse::<VpnConnId>().expect("test connection id"),
        local_addr,
        remote_addr,
        settings: ConnSettings {
            pre_shared_key: Secret::new(psk),
            spd_source: SpdSource::SpdAcl,
            spd,
            ike: IkeSettings {
                encryption: IkeEncryption::TripleDesCbc,
                authentication: AuthAlgorithm::Md5,
                exchange_mode: ExchangeMode::Main,
                local_identity: Identity::Address(local_addr),
                remote_identity: Identity::Address(remote_addr),
                dh_group: limits::DH_GROUP_DEFAULT,
                sa_lifetime_seconds: limits::IKE_SA_LIFETIME_DEFAULT,
                version: IkeVersion::V1,
            },
            ipsec: IpsecSettings {
                encryption: IpsecEncryption::TripleDesCbc,
                integrity: AuthAlgorithm::Md5,
                sa_lifetime_seconds: limits::IPSEC_SA_LIFETIME_DEFAULT,
                sa_lifetime_traffic_kb: limits::IPSEC_SA_LIFETIME_TRAFFIC_DEFAULT,
                pfs: PfsGroup::Null,
            },
            dpd: DpdSettings::default(),
            negotiation: NegotiationType::Active,
            health_check: None,
        },
    }
}

/// Defaults, one rule `10.100.0.1/24 -> 10.200.0.0/24` (host bits set on
/// purpose, as in the seed's example).
pub fn spec_default() -> TunnelSpec {
    spec_between(
        "vpnx-dflt0001",
        CLOUD_ADDR,
        PEER_ADDR,
        "test-psk-1",
        vec![rule("10.100.0.1/24", &["10.200.0.0/24"])],
    )
}

/// aes-cbc-256, sha, group14, PFS dh-group14, aggressive mode, FQDN
/// identities, two SPD rules.
pub fn spec_custom() -> TunnelSpec {
    let mut s = spec_between(
        "vpnx-cust0001",
        CLOUD_ADDR,
        PEER_ADDR,
        "test-psk-2",
        vec![
            rule("10.100.0.0/24", &["10.200.0.0/24"]),
            rule("10.100.1.0/24", &["10.200.1.0/24"]),
        ],
    );
    let ike = &mut s.settings.ike;
    ike.encryption = IkeEncryption::AesCbc256;
    ike.authentication = AuthAlgorithm::Sha;
    ike.dh_group = DhGroup::Group14;
    ike.exchange_mode = ExchangeMode::Aggressive;
    ike.local_identity = Identity::Fqdn("cloud.vpn.example".parse().expect("fqdn"));
    ike.remote_identity = Identity::Fqdn("idc.customer.example".parse().expect("fqdn"));
    ike.sa_lifetime_seconds = 28_800;
    let ipsec = &mut s.settings.ipsec;
    ipsec.encryption = IpsecEncryption::AesCbc256;
    ipsec.integrity = AuthAlgorithm::Sha;
    ipsec.pfs = PfsGroup::DhGroup14;
    ipsec.sa_lifetime_seconds = 1_800;
    ipsec.sa_lifetime_traffic_kb = 102_400;
    s
}

/// ESP without encryption (`encryptAlgorithm = null`), sha integrity.
pub fn spec_null_esp() -> TunnelSpec {
    let mut s = spec_default();
    s.name = "vpnx-null0001".parse().expect("id");
    s.settings.ipsec.encryption = IpsecEncryption::Null;
    s.settings.ipsec.integrity = AuthAlgorithm::Sha;
    s
}

/// What API 3.0 added: IKEv2, AES-256-GCM for IKE (SHA-256 as PRF) and ESP,
/// group 19 for IKE and PFS dh-group20, DPD after 45 s with `clear`, and
/// the given negotiation type.
pub fn spec_ikev2_gcm(negotiation: NegotiationType) -> TunnelSpec {
    let mut s = spec_default();
    s.name = "vpnx-ikev2001".parse().expect("id");
    let ike = &mut s.settings.ike;
    ike.version = IkeVersion::V2;
    ike.encryption = IkeEncryption::Aes256Gcm128;
    ike.authentication = AuthAlgorithm::Sha256;
    ike.dh_group = DhGroup::Group19;
    let ipsec = &mut s.settings.ipsec;
    ipsec.encryption = IpsecEncryption::Aes256Gcm128;
    ipsec.integrity = AuthAlgorithm::Sha256;
    ipsec.pfs = PfsGroup::DhGroup20;
    s.settings.dpd = DpdSettings {
        enabled: true,
        timeout_seconds: 45,
        action: vpcd_types::DpdAction::Clear,
    };
    s.settings.negotiation = negotiation;
    s
}
