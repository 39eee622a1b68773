//! ipsec.conf and ipsec.secrets for a Libreswan peer (4.x and 5.x).
//!
//! The text has up to three parts, each opened by a `# Part N of M: FILE`
//! line that says where it goes:
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

use std::fmt::Write as _;

use base64::Engine as _;
use vpcd_types::{DhGroup, ExchangeMode, Identity, PfsGroup, TunnelSpec};

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

/// Libreswan spells the MODP groups as strongSwan does (`modp2048`), and
/// the RFC 5114 group as `dh24` (refused by the capability table anyway).
fn libreswan_dh(g: DhGroup) -> &'static str {
    match g {
        DhGroup::Group24 => "dh24",
        other => render::dh_group(other),
    }
}

/// The `ike=` proposal, e.g. `aes256-sha1;modp2048`.
pub(super) fn ike_alg(spec: &TunnelSpec) -> String {
    let ike = &spec.settings.ike;
    format!(
        "{}-{};{}",
        render::ike_encryption(ike.encryption),
        render::integrity(ike.authentication),
        libreswan_dh(ike.dh_group)
    )
}

/// The `esp=` proposal, e.g. `aes256-sha1;modp2048` (PFS) or `null-md5`.
pub(super) fn esp_alg(spec: &TunnelSpec) -> String {
    let ipsec = &spec.settings.ipsec;
    let mut esp = format!(
        "{}-{}",
        render::esp_encryption(ipsec.encryption),
        render::integrity(ipsec.integrity)
    );
    if let Some(g) = ipsec.pfs.group() {
        esp.push(';');
        esp.push_str(libreswan_dh(g));
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
    let _ = writeln!(
        out,
        "\n{PART}1 of 3: /etc/ipsec.conf, in its `config setup` section (IKEv1 is refused without it)"
    );
    out.push_str("config setup\n\tikev1-policy=accept\n");
    let _ = writeln!(
        out,
        "\n{PART}2 of 3: /etc/ipsec.d/vpcd.conf (/etc/ipsec.conf includes /etc/ipsec.d/*.conf)"
    );
    out.push_str("conn vpcd-base\n");
    let mut kv = |k: &str, val: &str| {
        let _ = writeln!(out, "\t{k}={val}");
    };
    kv("type", "tunnel");
    kv("ikev2", "no");
    kv("authby", "secret");
    kv(
        "aggressive",
        if ike.exchange_mode == ExchangeMode::Aggressive {
            "yes"
        } else {
            "no"
        },
    );
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
    kv("dpdtimeout", &format!("{}", render::DPD_TIMEOUT_SECONDS));
    kv("dpdaction", "restart");
    kv("keyingtries", "%forever");
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
    let _ = writeln!(out, "\n{PART}3 of 3: /etc/ipsec.d/vpcd.secrets");
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
