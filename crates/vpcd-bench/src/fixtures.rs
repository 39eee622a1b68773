//! The resources a benchmark run stores and the requests it sends.
//!
//! A run stores [`VPCS`] VPCs with [`GWS_PER_VPC`] VPN gateways each and
//! [`USER_GWS`] peer gateways, then spreads its tunnels evenly over the
//! gateways: tunnel `i` lives on gateway `i % GATEWAYS`. With 10 gateways a
//! list page filtered by `vpnGwId` picks 20 of 100 tunnels at 1k stored
//! tunnels and 20 of 10,000 at 100k, at a random offset: a page must cost the
//! same either way. Peer gateways use the documentation range 192.0.2.0/24;
//! IDC ranges come from 172.16.0.0/12, outside every VPC (10.x.0.0/16).

use std::net::{IpAddr, Ipv4Addr};

use vpcd_types::{
    AuthAlgorithm, Cidr, ConnSettings, DhGroup, ExchangeMode, Identity, IkeEncryption, IkeSettings,
    IpsecEncryption, IpsecSettings, PfsGroup, Secret, SpdRule, SpdSource, TunnelSpec,
};

pub const VPCS: usize = 5;
pub const GWS_PER_VPC: usize = 2;
/// VPN gateways in all.
pub const GATEWAYS: usize = VPCS * GWS_PER_VPC;
/// Peer gateways (at most 254: one documentation /24).
pub const USER_GWS: usize = 200;

/// The CIDR of VPC number `v`.
pub fn vpc_cidr(v: usize) -> String {
    format!("10.{v}.0.0/16")
}

/// The public address of peer gateway number `u`.
pub fn user_gw_addr(u: usize) -> IpAddr {
    assert!(u < 254, "one documentation /24 holds 254 peer gateways");
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, u as u8 + 1))
}

/// The IDC range of tunnel number `i` (4096 distinct /24s, then repeating:
/// ranges only have to be distinct within one tunnel).
pub fn idc_cidr(i: usize) -> String {
    format!("172.{}.{}.0/24", 16 + (i / 256) % 16, i % 256)
}

/// The settings the seed's worked example asks for (AES-256, group14, PFS
/// group14), with every default filled in as vpcd stores them.
pub fn conn_settings(
    vpc_cidr: &str,
    idc_cidr: &str,
    local_addr: IpAddr,
    remote_addr: IpAddr,
    psk: &str,
) -> ConnSettings {
    ConnSettings {
        pre_shared_key: Secret::new(psk),
        spd_source: SpdSource::UserGwCidrBlock,
        spd: vec![SpdRule {
            local: cidr(vpc_cidr),
            remote: vec![cidr(idc_cidr)],
        }],
        ike: IkeSettings {
            encryption: IkeEncryption::AesCbc256,
            authentication: AuthAlgorithm::Md5,
            exchange_mode: ExchangeMode::Main,
            local_identity: Identity::Address(local_addr),
            remote_identity: Identity::Address(remote_addr),
            dh_group: DhGroup::Group14,
            sa_lifetime_seconds: 86_400,
            version: vpcd_types::IkeVersion::V1,
        },
        ipsec: IpsecSettings {
            encryption: IpsecEncryption::TripleDesCbc,
            integrity: AuthAlgorithm::Md5,
            sa_lifetime_seconds: 3_600,
            sa_lifetime_traffic_kb: 1_843_200,
            pfs: PfsGroup::DhGroup14,
        },
        dpd: vpcd_types::DpdSettings::default(),
        negotiation: vpcd_types::NegotiationType::Active,
        health_check: None,
    }
}

fn cidr(s: &str) -> Cidr {
    s.parse().expect("fixture CIDRs are valid")
}

/// The action parameters of a typical AddVpnConnEx: the seed's worked
/// example with a name (common parameters and the signature are added by the
/// signer).
pub fn add_conn_params(
    vpc_id: &str,
    vpn_gw_id: &str,
    user_gw_id: &str,
    name: &str,
    idc_cidr: &str,
    psk: &str,
) -> Vec<(String, String)> {
    [
        ("vpcId", vpc_id),
        ("vpnGwId", vpn_gw_id),
        ("userGwId", user_gw_id),
        ("vpnConnName", name),
        ("preSharedKey", psk),
        ("userGwCidrBlock.0", idc_cidr),
        ("IKESet.propoEncryAlgorithm", "aes-cbc-256"),
        ("IKESet.dhGroupName", "group14"),
        ("IPsecSet.pfsDhGroup", "dh-group14"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// [`add_conn_params`] with fixed ids, for micro-benchmarks.
pub fn typical_add_params() -> Vec<(String, String)> {
    add_conn_params(
        "vpc-bench001",
        "vpngw-bench001",
        "cgw-bench001",
        "bench-000001",
        "172.16.1.0/24",
        "bench-psk-000001",
    )
}

/// The tunnel the engine hands the data plane for a typical connection.
pub fn typical_tunnel_spec() -> TunnelSpec {
    let local = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1));
    let remote = user_gw_addr(0);
    TunnelSpec {
        name: "vpnx-bench001".parse().expect("valid id"),
        local_addr: local,
        remote_addr: remote,
        settings: conn_settings(
            "10.0.0.0/16",
            "172.16.1.0/24",
            local,
            remote,
            "bench-psk-000001",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_are_valid() {
        let spec = typical_tunnel_spec();
        assert_eq!(spec.settings.spd.len(), 1);
        assert_eq!(user_gw_addr(USER_GWS - 1).to_string(), "192.0.2.200");
        assert_eq!(idc_cidr(4096), idc_cidr(0));
        assert_ne!(idc_cidr(255), idc_cidr(256));
        for i in [0, 255, 256, 4095] {
            let c: Cidr = idc_cidr(i).parse().unwrap();
            let vpc: Cidr = vpc_cidr(VPCS - 1).parse().unwrap();
            assert!(!c.overlaps(&vpc));
        }
        assert_eq!(typical_add_params().len(), 9);
    }
}
