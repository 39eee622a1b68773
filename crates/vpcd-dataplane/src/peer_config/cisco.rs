//! Cisco IOS crypto map configuration (IKEv1).
//!
//! Each construct, and the guide it follows (Cisco IOS Security
//! Configuration Guide and Command Reference, 12.4T-15.x; the per-feature
//! guides where a keyword was introduced):
//! - `crypto keyring` / `pre-shared-key address A key K` and `crypto isakmp
//!   profile` with `keyring`, `self-identity address|fqdn`, `match identity
//!   address A MASK | host NAME`, `initiate mode aggressive`: "ISAKMP
//!   Profile Overview" / "Certificate to ISAKMP Profile Mapping" (IOS
//!   12.2(15)T+).
//! - `crypto isakmp policy N` with `encryption des|3des|aes|aes 192|aes 256`
//!   (`aes` alone is the 128-bit key: the AES feature guide, 12.2(13)T, has
//!   no `aes 128`), `hash md5|sha`, `authentication pre-share`, `group
//!   1|2|5|14|24`, `lifetime 60-86400`: "Configuring Internet Key Exchange
//!   for IPsec VPNs".
//! - `crypto isakmp keepalive SECONDS RETRY periodic`: "IPsec Dead Peer
//!   Detection Periodic Message Option".
//! - `crypto ipsec transform-set NAME esp-des|esp-3des|esp-aes|esp-aes
//!   192|esp-aes 256|esp-null esp-md5-hmac|esp-sha-hmac` with `mode tunnel`,
//!   `crypto map NAME N ipsec-isakmp` with `set peer`, `set transform-set`,
//!   `set isakmp-profile`, `set pfs groupN`, `set security-association
//!   lifetime seconds 120-86400 | kilobytes 2560-4294967295`, `match address
//!   ACL`, and `crypto map NAME` on the interface: "Configuring Security for
//!   VPNs with IPsec". Kilobytes are 1024 bytes there, as on the gateway
//!   (see `traffic_lifetime_means_the_same_on_both_ends`).
//! - `ip access-list extended NAME` / `permit ip SRC WILDCARD DST
//!   WILDCARD`: "IP Access List Overview".

use std::fmt::Write as _;

use ipnet::IpNet;
use vpcd_types::{
    AuthAlgorithm, ExchangeMode, Identity, IkeEncryption, IkeVersion, IpsecEncryption, TunnelSpec,
};

use super::{header, not_covered, peer_view, v2_groups, PeerConfigError, Setting};
use crate::strongswan::render;

fn cisco_psk(psk: &str) -> Result<&str, PeerConfigError> {
    if psk.bytes().any(|b| matches!(b, b'?' | b'"' | b'\\')) {
        return Err(PeerConfigError::PreSharedKey(
            "the characters ? \" \\ cannot be entered safely in Cisco IOS; choose another key",
        ));
    }
    if psk.starts_with(['!', '#']) {
        return Err(PeerConfigError::PreSharedKey(
            "a key starting with ! or # could be read as a comment by Cisco IOS",
        ));
    }
    if matches!(psk, "0" | "6" | "7") {
        return Err(PeerConfigError::PreSharedKey(
            "a key of 0, 6 or 7 alone is read as an encryption type by Cisco IOS",
        ));
    }
    Ok(psk)
}

fn wildcard(net: &IpNet) -> String {
    match net {
        IpNet::V4(n) => format!("{} {}", n.network(), n.hostmask()),
        IpNet::V6(n) => n.to_string(),
    }
}

pub(super) fn cisco(spec: &TunnelSpec, iface: &str) -> Result<String, PeerConfigError> {
    let psk = cisco_psk(spec.settings.pre_shared_key.expose())?;
    let v = peer_view(spec);
    let ike = &spec.settings.ike;
    let ipsec = &spec.settings.ipsec;
    if ike.version != IkeVersion::V1 {
        // ISAKMP policies and crypto maps are IKEv1.
        return Err(not_covered(Setting::IkeVersion(ike.version)));
    }
    let enc = match ike.encryption {
        IkeEncryption::TripleDesCbc => "3des",
        IkeEncryption::DesCbc => "des",
        // `aes` is AES-128: `encryption aes 128` is not in the guide.
        IkeEncryption::AesCbc128 => "aes",
        IkeEncryption::AesCbc192 => "aes 192",
        IkeEncryption::AesCbc256 => "aes 256",
        IkeEncryption::Aes128Gcm128 | IkeEncryption::Aes192Gcm128 | IkeEncryption::Aes256Gcm128 => {
            return Err(not_covered(Setting::IkeEncryption(ike.encryption)))
        }
    };
    let esp_enc = match ipsec.encryption {
        IpsecEncryption::TripleDesCbc => "esp-3des",
        IpsecEncryption::DesCbc => "esp-des",
        // `esp-aes` is AES-128, as for the ISAKMP policy.
        IpsecEncryption::AesCbc128 => "esp-aes",
        IpsecEncryption::AesCbc192 => "esp-aes 192",
        IpsecEncryption::AesCbc256 => "esp-aes 256",
        IpsecEncryption::Null => "esp-null",
        IpsecEncryption::Aes128Gcm128
        | IpsecEncryption::Aes192Gcm128
        | IpsecEncryption::Aes256Gcm128 => {
            return Err(not_covered(Setting::IpsecEncryption(ipsec.encryption)))
        }
    };
    let esp_auth = match ipsec.integrity {
        AuthAlgorithm::Md5 => "esp-md5-hmac",
        AuthAlgorithm::Sha => "esp-sha-hmac",
        AuthAlgorithm::Sha256 | AuthAlgorithm::Sha384 | AuthAlgorithm::Sha512 => {
            return Err(not_covered(Setting::IpsecIntegrity(ipsec.integrity)))
        }
    };
    let (ike_group, pfs_group) = v2_groups(spec)?;
    let ike_hash = match ike.authentication {
        AuthAlgorithm::Md5 => "md5",
        AuthAlgorithm::Sha => "sha",
        AuthAlgorithm::Sha256 | AuthAlgorithm::Sha384 | AuthAlgorithm::Sha512 => {
            return Err(not_covered(Setting::IkeIntegrity(ike.authentication)))
        }
    };
    let mut o = String::new();
    header(&mut o, "!", spec);
    o.push_str("! Paste in configuration mode (configure terminal).\n");
    // IOS accepts ISAKMP lifetimes of 60-86400 s and IPsec ones of
    // 120-86400 s; the lower bounds are within the API's ranges.
    let ike_life = ike.sa_lifetime_seconds.min(86_400);
    let sa_life = ipsec.sa_lifetime_seconds.min(86_400);
    if ike_life != ike.sa_lifetime_seconds || sa_life != ipsec.sa_lifetime_seconds {
        o.push_str("! Lifetimes above 86400 s are capped to the IOS maximum.\n");
    }
    // Keyed by the peer's address whatever its identity: in main mode the
    // identity arrives encrypted with the key, so IOS can only look a key
    // up by address (a `hostname` key serves aggressive mode alone).
    o.push_str("crypto keyring vpcd-keyring\n");
    let _ = writeln!(o, " pre-shared-key address {} key {psk}", v.remote_addr);
    o.push_str("!\ncrypto isakmp policy 10\n");
    let _ = writeln!(o, " encryption {enc}");
    let _ = writeln!(o, " hash {ike_hash}");
    o.push_str(" authentication pre-share\n");
    let _ = writeln!(o, " group {ike_group}");
    let _ = writeln!(o, " lifetime {ike_life}");
    let _ = writeln!(
        o,
        "!\ncrypto isakmp keepalive {} 3 periodic",
        render::DPD_DELAY_SECONDS
    );
    o.push_str("!\ncrypto isakmp profile vpcd-profile\n keyring vpcd-keyring\n");
    match v.local_id {
        Identity::Fqdn(f) => {
            let _ = writeln!(
                o,
                " ! self-identity fqdn sends hostname + ip domain-name: they must form {f}"
            );
            o.push_str(" self-identity fqdn\n");
        }
        Identity::Address(_) => o.push_str(" self-identity address\n"),
    }
    match v.remote_id {
        Identity::Fqdn(f) => {
            let _ = writeln!(o, " match identity host {f}");
        }
        Identity::Address(a) => {
            let _ = writeln!(o, " match identity address {a} 255.255.255.255");
        }
    }
    if ike.exchange_mode == ExchangeMode::Aggressive {
        o.push_str(" initiate mode aggressive\n");
    }
    let _ = writeln!(
        o,
        "!\ncrypto ipsec transform-set vpcd-ts {esp_enc} {esp_auth}\n mode tunnel"
    );
    o.push_str("!\nip access-list extended vpcd-acl\n");
    for (local, remote) in &v.pairs {
        let _ = writeln!(o, " permit ip {} {}", wildcard(local), wildcard(remote));
    }
    o.push_str("!\ncrypto map vpcd-map 10 ipsec-isakmp\n");
    let _ = writeln!(o, " set peer {}", v.remote_addr);
    o.push_str(" set transform-set vpcd-ts\n set isakmp-profile vpcd-profile\n");
    if let Some(g) = pfs_group {
        let _ = writeln!(o, " set pfs group{g}");
    }
    let _ = writeln!(o, " set security-association lifetime seconds {sa_life}");
    let _ = writeln!(
        o,
        " set security-association lifetime kilobytes {}",
        ipsec.sa_lifetime_traffic_kb
    );
    o.push_str(" match address vpcd-acl\n!\n");
    let _ = writeln!(o, "interface {iface}\n crypto map vpcd-map\n!\nend");
    Ok(o)
}
