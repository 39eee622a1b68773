//! Junos (SRX) `set` statements, for a route-based VPN on `st0.0` with one
//! traffic selector per SPD pair.
//!
//! Each construct, and the guide it follows (Junos OS CLI Reference and
//! "IPsec VPNs for Security Devices", 12.3X48 and later):
//! - `security ike proposal`: `authentication-method pre-shared-keys`,
//!   `dh-group groupN`, `authentication-algorithm md5|sha1`,
//!   `encryption-algorithm des-cbc|3des-cbc|aes-128-cbc|aes-192-cbc|
//!   aes-256-cbc`, `lifetime-seconds 180-86400`.
//! - `security ike policy`: `mode main|aggressive` (IKEv1 only),
//!   `proposals`, `pre-shared-key hexadecimal HEX` (the key's bytes in
//!   hex, so no character of it reaches the CLI).
//! - `security ike gateway`: `ike-policy`, `address`, `external-interface`,
//!   `local-identity`/`remote-identity inet A | hostname NAME`,
//!   `dead-peer-detection interval 10-60 threshold 1-5`, `version
//!   v1-only|v2-only`.
//! - `security ipsec proposal`: `protocol esp`, `authentication-algorithm
//!   hmac-md5-96|hmac-sha1-96`, `encryption-algorithm` (none for ESP-NULL),
//!   `lifetime-seconds 180-86400`, `lifetime-kilobytes 64-4294967294`
//!   (kilobytes of 1024 bytes, as on the gateway).
//! - `security ipsec policy`: `perfect-forward-secrecy keys groupN`,
//!   `proposals`.
//! - `security ipsec vpn`: `bind-interface st0.0`, `ike gateway`, `ike
//!   ipsec-policy`, `traffic-selector NAME local-ip CIDR remote-ip CIDR`
//!   (12.1X46 and later: one CHILD/Quick Mode SA per selector, as the
//!   gateway has one per SPD pair), `establish-tunnels immediately`.
//! - `interfaces st0 unit 0 family inet`.

use vpcd_types::{AuthAlgorithm, ExchangeMode, Identity, IkeVersion, IpsecEncryption, TunnelSpec};

use super::{header, hex, not_covered, peer_view, v2_groups, PeerConfigError, Setting};
use crate::strongswan::render;

/// The largest `lifetime-kilobytes` Junos accepts.
const JUNOS_MAX_KILOBYTES: u64 = 4_294_967_294;

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
    if ike_life != ike.sa_lifetime_seconds
        || sa_life != ipsec.sa_lifetime_seconds
        || ipsec.sa_lifetime_traffic_kb > JUNOS_MAX_KILOBYTES
    {
        o.push_str("# Lifetimes outside the Junos ranges are brought to the nearest bound.\n");
    }
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
    // API 3.0 allows up to 4294967295 KB; Junos takes up to 4294967294.
    let kb = ipsec.sa_lifetime_traffic_kb.min(JUNOS_MAX_KILOBYTES);
    set(format!("{p} lifetime-kilobytes {kb}"));
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
