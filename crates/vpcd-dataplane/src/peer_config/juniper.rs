//! Junos (SRX) `set` statements.

use vpcd_types::{AuthAlgorithm, ExchangeMode, Identity, IkeVersion, IpsecEncryption, TunnelSpec};

use super::{header, hex, not_covered, peer_view, v2_groups, PeerConfigError, Setting};
use crate::strongswan::render;

pub(super) fn juniper(spec: &TunnelSpec, iface: &str) -> Result<String, PeerConfigError> {
    let v = peer_view(spec);
    let ike = &spec.settings.ike;
    let ipsec = &spec.settings.ipsec;
    let enc = |setting: Setting, e: &str| match e {
        "3des" => Ok("3des-cbc"),
        "des" => Ok("des-cbc"),
        "aes128" => Ok("aes-128-cbc"),
        "aes192" => Ok("aes-192-cbc"),
        "aes256" => Ok("aes-256-cbc"),
        _ => Err(not_covered(setting)),
    };
    let (ike_group, pfs_group) = v2_groups(spec)?;
    let ike_auth = match ike.authentication {
        AuthAlgorithm::Md5 => "md5",
        AuthAlgorithm::Sha => "sha1",
        AuthAlgorithm::Sha256 | AuthAlgorithm::Sha384 | AuthAlgorithm::Sha512 => {
            return Err(not_covered(Setting::IkeIntegrity(ike.authentication)))
        }
    };
    let esp_auth = match ipsec.integrity {
        AuthAlgorithm::Md5 => "hmac-md5-96",
        AuthAlgorithm::Sha => "hmac-sha1-96",
        AuthAlgorithm::Sha256 | AuthAlgorithm::Sha384 | AuthAlgorithm::Sha512 => {
            return Err(not_covered(Setting::IpsecIntegrity(ipsec.integrity)))
        }
    };
    let ike_enc = enc(
        Setting::IkeEncryption(ike.encryption),
        render::ike_encryption(ike.encryption),
    )?;
    let esp_enc = match ipsec.encryption {
        IpsecEncryption::Null => None,
        e => Some(enc(Setting::IpsecEncryption(e), render::esp_encryption(e))?),
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
    set(format!("{p} dh-group group{ike_group}"));
    set(format!("{p} authentication-algorithm {ike_auth}"));
    set(format!("{p} encryption-algorithm {ike_enc}"));
    set(format!("{p} lifetime-seconds {ike_life}"));
    let p = "security ike policy vpcd-ike-policy";
    if ike.version == IkeVersion::V1 {
        // The exchange mode is an IKEv1 notion.
        set(format!(
            "{p} mode {}",
            match ike.exchange_mode {
                ExchangeMode::Main => "main",
                ExchangeMode::Aggressive => "aggressive",
            }
        ));
    }
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
    set(format!(
        "{p} version {}",
        match ike.version {
            IkeVersion::V1 => "v1-only",
            IkeVersion::V2 => "v2-only",
        }
    ));
    let p = "security ipsec proposal vpcd-ipsec-proposal";
    set(format!("{p} protocol esp"));
    set(format!("{p} authentication-algorithm {esp_auth}"));
    if let Some(e) = esp_enc {
        // No encryption-algorithm statement means ESP-NULL.
        set(format!("{p} encryption-algorithm {e}"));
    }
    set(format!("{p} lifetime-seconds {sa_life}"));
    set(format!(
        "{p} lifetime-kilobytes {}",
        ipsec.sa_lifetime_traffic_kb
    ));
    let p = "security ipsec policy vpcd-ipsec-policy";
    if let Some(g) = pfs_group {
        set(format!("{p} perfect-forward-secrecy keys group{g}"));
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
    Ok(o)
}
