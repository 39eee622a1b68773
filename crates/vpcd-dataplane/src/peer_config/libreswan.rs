//! ipsec.conf and ipsec.secrets for a Libreswan peer (4.x and 5.x).
//!
//! The text has three parts (two for IKEv2), each opened by a `# Part N of
//! M: FILE` line that says where it goes:
//! 1. IKEv1 only: the `config setup` line Libreswan needs to accept IKEv1 at
//!    all (`ikev1-policy=accept`; 4.x builds and 5.x refuse IKEv1 otherwise).
//!    A `config setup` section in an included file is ignored, so it goes in
//!    /etc/ipsec.conf itself.
//! 2. The connections, /etc/ipsec.d/vpcd.conf: a base `conn` that the one
//!    per SPD pair includes with `also=`. Each key is written once per
//!    connection, base and child together: Libreswan refuses a connection in
//!    which an `also=` brings a key the connection sets again.
//! 3. The key, /etc/ipsec.d/vpcd.secrets.
//!
//! Only settings the [`super::capability`] table allows reach this file.
//!
//! # One file for 4.x and 5.x
//! Both are proven here (4.10, Debian 12; 5.2, Debian 13: readwriteconf
//! over every variant, pluto in the namespace tests). Where they differ:
//! - IKEv1: both drop it unless `config setup` has `ikev1-policy=accept`
//!   (5.0 made `drop` the default; Debian's 4.10 refuses IKEv1 too).
//! - The IKE version is `ikev2=no|insist`, 4.x's key: 5.x prefers
//!   `keyexchange=ikev1|ikev2`, which 4.x does not have, and maps `ikev2=`
//!   onto it without a word.
//! - `dpdaction=restart` is written commented out: 4.x needs it to restart a
//!   tunnel whose peer DPD declared dead (its default is `hold`); 5.x always
//!   revives `auto=start` conns and warns that the key is obsolete.
//! - `keyingtries=%forever`: 4.x retries for ever with it; 5.x ignores it
//!   silently.
//! - `ipsec-max-bytes=<KB>KiB` (the API's traffic lifetime): both read
//!   `KiB` as 1024 bytes, the gateway's KB.
//! - `dpdtimeout` is IKEv1-only in 5.x (IKEv2 uses its retransmits); both
//!   accept it on an IKEv2 conn.

use std::fmt::Write as _;

use base64::Engine as _;
use vpcd_types::{
    AuthAlgorithm, DhGroup, ExchangeMode, Identity, IkeEncryption, IkeVersion, IpsecEncryption,
    PfsGroup, TunnelSpec,
};

use super::{header, peer_view};
use crate::strongswan::render;

/// Libreswan's maximum for `ikelifetime` and `salifetime` (ipsec.conf(5)).
const MAX_LIFETIME_SECONDS: u32 = 86_400;

/// The line that opens each part (tests split the text on it).
pub(crate) const PART: &str = "# Part ";

fn libreswan_id(id: &Identity) -> String {
    match id {
        Identity::Address(a) => a.to_string(),
        // `@` keeps pluto from resolving the name.
        Identity::Fqdn(f) => format!("@{f}"),
    }
}

// Libreswan's algorithm names (`ipsec.conf(5)`, `algparse`). Values the
// capability table refuses still get their names (`des`, `modp768`, ...):
// the table, not this file, decides what is offered.

/// Libreswan names the CBC ciphers (and `null`) as strongSwan does.
fn ike_enc(e: IkeEncryption) -> &'static str {
    match e {
        // 16-byte ICV, as the API's `...GCM128` says.
        IkeEncryption::Aes128Gcm128 => "aes_gcm128",
        IkeEncryption::Aes192Gcm128 => "aes_gcm192",
        IkeEncryption::Aes256Gcm128 => "aes_gcm256",
        cbc => render::ike_encryption(cbc),
    }
}

fn esp_enc(e: IpsecEncryption) -> &'static str {
    match e {
        IpsecEncryption::Aes128Gcm128 => "aes_gcm128",
        IpsecEncryption::Aes192Gcm128 => "aes_gcm192",
        IpsecEncryption::Aes256Gcm128 => "aes_gcm256",
        cbc => render::esp_encryption(cbc),
    }
}

fn integrity(a: AuthAlgorithm) -> &'static str {
    match a {
        AuthAlgorithm::Md5 => "md5",
        AuthAlgorithm::Sha => "sha1",
        AuthAlgorithm::Sha256 => "sha2_256",
        AuthAlgorithm::Sha384 => "sha2_384",
        AuthAlgorithm::Sha512 => "sha2_512",
    }
}

fn dh(g: DhGroup) -> &'static str {
    match g {
        DhGroup::Group1 => "modp768",
        DhGroup::Group2 => "modp1024",
        DhGroup::Group5 => "modp1536",
        DhGroup::Group14 => "modp2048",
        DhGroup::Group15 => "modp3072",
        DhGroup::Group16 => "modp4096",
        DhGroup::Group19 => "dh19",
        DhGroup::Group20 => "dh20",
        DhGroup::Group21 => "dh21",
        DhGroup::Group24 => "dh24",
    }
}

/// The `ike=` proposal, e.g. `aes256-sha1;modp2048`; with AES-GCM (IKEv2)
/// the second name is the PRF, e.g. `aes_gcm256-sha2_256;dh19`.
pub(super) fn ike_alg(spec: &TunnelSpec) -> String {
    let ike = &spec.settings.ike;
    format!(
        "{}-{};{}",
        ike_enc(ike.encryption),
        integrity(ike.authentication),
        dh(ike.dh_group)
    )
}

/// The `esp=` proposal, e.g. `aes256-sha1;modp2048` (PFS), `null-md5`, or
/// `aes_gcm256` (AEAD: no integrity algorithm).
pub(super) fn esp_alg(spec: &TunnelSpec) -> String {
    let ipsec = &spec.settings.ipsec;
    let mut esp = esp_enc(ipsec.encryption).to_owned();
    if !ipsec.encryption.is_aead() {
        esp.push('-');
        esp.push_str(integrity(ipsec.integrity));
    }
    if let Some(g) = ipsec.pfs.group() {
        esp.push(';');
        esp.push_str(dh(g));
    }
    esp
}

pub(super) fn libreswan(spec: &TunnelSpec) -> String {
    let v = peer_view(spec);
    let ike = &spec.settings.ike;
    let ipsec = &spec.settings.ipsec;
    let ike_life = ike.sa_lifetime_seconds.min(MAX_LIFETIME_SECONDS);
    let sa_life = ipsec.sa_lifetime_seconds.min(MAX_LIFETIME_SECONDS);

    let mut out = String::new();
    header(&mut out, "#", spec);
    out.push_str("# For Libreswan 4.x and 5.x. Put each part in the file it names, then\n");
    out.push_str(
        "# `ipsec restart` (or `ipsec auto --add` each conn and `ipsec rereadsecrets`).\n",
    );
    let v1 = ike.version == IkeVersion::V1;
    let parts = if v1 { 3 } else { 2 };
    if v1 {
        let _ = writeln!(
            out,
            "\n{PART}1 of 3: /etc/ipsec.conf, in its `config setup` section (IKEv1 is refused without it)"
        );
        out.push_str("config setup\n\tikev1-policy=accept\n");
    }
    let _ = writeln!(
        out,
        "\n{PART}{} of {parts}: /etc/ipsec.d/vpcd.conf (/etc/ipsec.conf includes /etc/ipsec.d/*.conf)",
        parts - 1
    );
    out.push_str("conn vpcd-base\n");
    let mut kv = |k: &str, val: &str| {
        let _ = writeln!(out, "\t{k}={val}");
    };
    kv("type", "tunnel");
    // `insist`: IKEv2 only, neither proposing nor accepting IKEv1.
    kv("ikev2", if v1 { "no" } else { "insist" });
    kv("authby", "secret");
    if v1 {
        // The exchange mode is an IKEv1 notion.
        kv(
            "aggressive",
            if ike.exchange_mode == ExchangeMode::Aggressive {
                "yes"
            } else {
                "no"
            },
        );
    }
    kv("left", &v.local_addr.to_string());
    kv("leftid", &libreswan_id(v.local_id));
    kv("right", &v.remote_addr.to_string());
    kv("rightid", &libreswan_id(v.remote_id));
    kv("ike", &ike_alg(spec));
    kv("esp", &esp_alg(spec));
    kv(
        "pfs",
        if ipsec.pfs == PfsGroup::Null {
            "no"
        } else {
            "yes"
        },
    );
    kv("ikelifetime", &format!("{ike_life}s"));
    kv("salifetime", &format!("{sa_life}s"));
    kv("dpddelay", &format!("{}", render::DPD_DELAY_SECONDS));
    kv(
        "dpdtimeout",
        &format!("{}", vpcd_types::limits::DPD_TIMEOUT_DEFAULT),
    );
    // KiB: 1024 bytes, the gateway's KB (the API's traffic lifetime).
    kv(
        "ipsec-max-bytes",
        &format!("{}KiB", ipsec.sa_lifetime_traffic_kb),
    );
    // 5.x ignores it (and revives the conn by itself).
    kv("keyingtries", "%forever");
    // 4.x holds a tunnel whose peer DPD declared dead unless told to
    // restart it; 5.x always revives `auto=start` conns and warns that
    // `dpdaction=` is obsolete, so the key is left for 4.x users to enable.
    out.push_str(
        "\t# Libreswan 4.x only: uncomment to restart the tunnel when DPD finds the peer dead\n\
         \t# (5.x always does, and warns that dpdaction= is obsolete).\n\
         \t#dpdaction=restart\n",
    );
    if ike_life != ike.sa_lifetime_seconds || sa_life != ipsec.sa_lifetime_seconds {
        out.push_str("\t# Lifetimes above 86400 s are capped to the Libreswan maximum.\n");
    }
    // `auto` only here: the base conn is never loaded on its own (a conn
    // without `auto` is ignored), and setting it in both is a duplicate.
    for (i, (local, remote)) in v.pairs.iter().enumerate() {
        let _ = writeln!(out, "\nconn vpcd-{}", i + 1);
        let _ = writeln!(out, "\talso=vpcd-base");
        let _ = writeln!(out, "\tleftsubnet={local}");
        let _ = writeln!(out, "\trightsubnet={remote}");
        let _ = writeln!(out, "\tauto=start");
    }
    let _ = writeln!(out, "\n{PART}{parts} of {parts}: /etc/ipsec.d/vpcd.secrets");
    let b64 = base64::engine::general_purpose::STANDARD
        .encode(spec.settings.pre_shared_key.expose().as_bytes());
    let _ = writeln!(
        out,
        "{} {} : PSK 0s{b64}",
        libreswan_id(v.local_id),
        libreswan_id(v.remote_id)
    );
    out
}
