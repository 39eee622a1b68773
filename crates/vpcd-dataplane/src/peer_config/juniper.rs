//! Junos (SRX) `set` statements.

use vpcd_types::{AuthAlgorithm, DhGroup, ExchangeMode, Identity, IpsecEncryption, TunnelSpec};

use super::{header, hex, peer_view};
use crate::strongswan::render;

pub(super) fn juniper(spec: &TunnelSpec, iface: &str) -> String {
    let v = peer_view(spec);
    let ike = &spec.settings.ike;
    let ipsec = &spec.settings.ipsec;
    let enc = |e: &str| match e {
        "3des" => "3des-cbc",
        "des" => "des-cbc",
        "aes128" => "aes-128-cbc",
        "aes192" => "aes-192-cbc",
        _ => "aes-256-cbc",
    };
    let group = |g: DhGroup| match g {
        DhGroup::Group1 => "group1",
        DhGroup::Group2 => "group2",
        DhGroup::Group5 => "group5",
        DhGroup::Group14 => "group14",
        DhGroup::Group24 => "group24",
    };
    let identity = |id: &Identity| match id {
        Identity::Address(a) => format!("inet {a}"),
        Identity::Fqdn(f) => format!("hostname {f}"),
    };
    // Junos accepts lifetimes of 180-86400 s.
    let ike_life = ike.sa_lifetime_seconds.clamp(180, 86_400);
    let sa_life = ipsec.sa_lifetime_seconds.clamp(180, 86_400);
    let mut o = String::new();
    header(&mut o, "#", spec);
    o.push_str("# Enter in configuration mode, then commit.\n");
    let mut set = |line: String| {
        o.push_str("set ");
        o.push_str(&line);
        o.push('\n');
    };
    let p = "security ike proposal vpcd-ike-proposal";
    set(format!("{p} authentication-method pre-shared-keys"));
    set(format!("{p} dh-group {}", group(ike.dh_group)));
    set(format!(
        "{p} authentication-algorithm {}",
        match ike.authentication {
            AuthAlgorithm::Md5 => "md5",
            AuthAlgorithm::Sha => "sha1",
        }
    ));
    set(format!(
        "{p} encryption-algorithm {}",
        enc(render::ike_encryption(ike.encryption))
    ));
    set(format!("{p} lifetime-seconds {ike_life}"));
    let p = "security ike policy vpcd-ike-policy";
    set(format!(
        "{p} mode {}",
        match ike.exchange_mode {
            ExchangeMode::Main => "main",
            ExchangeMode::Aggressive => "aggressive",
        }
    ));
    set(format!("{p} proposals vpcd-ike-proposal"));
    set(format!(
        "{p} pre-shared-key hexadecimal {}",
        hex(spec.settings.pre_shared_key.expose().as_bytes())
    ));
    let p = "security ike gateway vpcd-gateway";
    set(format!("{p} ike-policy vpcd-ike-policy"));
    set(format!("{p} address {}", v.remote_addr));
    set(format!("{p} external-interface {iface}"));
    set(format!("{p} local-identity {}", identity(v.local_id)));
    set(format!("{p} remote-identity {}", identity(v.remote_id)));
    set(format!(
        "{p} dead-peer-detection interval {} threshold 3",
        render::DPD_DELAY_SECONDS
    ));
    set(format!("{p} version v1-only"));
    let p = "security ipsec proposal vpcd-ipsec-proposal";
    set(format!("{p} protocol esp"));
    set(format!(
        "{p} authentication-algorithm {}",
        match ipsec.integrity {
            AuthAlgorithm::Md5 => "hmac-md5-96",
            AuthAlgorithm::Sha => "hmac-sha1-96",
        }
    ));
    if ipsec.encryption != IpsecEncryption::Null {
        // No encryption-algorithm statement means ESP-NULL.
        set(format!(
            "{p} encryption-algorithm {}",
            enc(render::esp_encryption(ipsec.encryption))
        ));
    }
    set(format!("{p} lifetime-seconds {sa_life}"));
    set(format!(
        "{p} lifetime-kilobytes {}",
        ipsec.sa_lifetime_traffic_kb
    ));
    let p = "security ipsec policy vpcd-ipsec-policy";
    if let Some(g) = ipsec.pfs.group() {
        set(format!("{p} perfect-forward-secrecy keys {}", group(g)));
    }
    set(format!("{p} proposals vpcd-ipsec-proposal"));
    let p = "security ipsec vpn vpcd-vpn";
    set(format!("{p} bind-interface st0.0"));
    set(format!("{p} ike gateway vpcd-gateway"));
    set(format!("{p} ike ipsec-policy vpcd-ipsec-policy"));
    for (i, (local, remote)) in v.pairs.iter().enumerate() {
        set(format!(
            "{p} traffic-selector ts{} local-ip {local} remote-ip {remote}",
            i + 1
        ));
    }
    set(format!("{p} establish-tunnels immediately"));
    set("interfaces st0 unit 0 family inet".to_owned());
    // Site policy, so only said: without it the tunnel comes up but
    // carries nothing (or, as responder, never sees IKE).
    o.push_str("# Also needed, per your zones: st0.0 in a security zone with policies that\n");
    o.push_str("# permit the traffic, and `host-inbound-traffic system-services ike` on the\n");
    o.push_str("# zone of the external interface.\n");
    o
}
