//! ipsec.conf and ipsec.secrets for a Libreswan peer.

use std::fmt::Write as _;

use base64::Engine as _;
use vpcd_types::{AuthAlgorithm, DhGroup, ExchangeMode, Identity, PfsGroup, TunnelSpec};

use super::{header, not_covered, peer_view, PeerConfigError};
use crate::strongswan::render;

fn libreswan_id(id: &Identity) -> String {
    match id {
        Identity::Address(a) => a.to_string(),
        // `@` keeps pluto from resolving the name.
        Identity::Fqdn(f) => format!("@{f}"),
    }
}

fn libreswan_enc(param: &'static str, name: &'static str) -> Result<&'static str, PeerConfigError> {
    if name == "des" {
        return Err(PeerConfigError::Unsupported {
            param,
            reason: "des-cbc is not supported by Libreswan",
        });
    }
    if name.contains("gcm") {
        return Err(not_covered(param));
    }
    Ok(name)
}

fn libreswan_integrity(
    param: &'static str,
    a: AuthAlgorithm,
) -> Result<&'static str, PeerConfigError> {
    match a {
        AuthAlgorithm::Md5 | AuthAlgorithm::Sha => Ok(render::integrity(a)),
        AuthAlgorithm::Sha256 | AuthAlgorithm::Sha384 | AuthAlgorithm::Sha512 => {
            Err(not_covered(param))
        }
    }
}

fn libreswan_dh(param: &'static str, g: DhGroup) -> Result<&'static str, PeerConfigError> {
    match g {
        DhGroup::Group1 | DhGroup::Group24 => Err(PeerConfigError::Unsupported {
            param,
            reason: "this DH group was removed from Libreswan",
        }),
        DhGroup::Group15
        | DhGroup::Group16
        | DhGroup::Group19
        | DhGroup::Group20
        | DhGroup::Group21 => Err(not_covered(param)),
        other => Ok(render::dh_group(other)),
    }
}

pub(super) fn libreswan(spec: &TunnelSpec) -> Result<String, PeerConfigError> {
    let v = peer_view(spec);
    let ike = &spec.settings.ike;
    let ipsec = &spec.settings.ipsec;
    let ike_alg = format!(
        "{}-{};{}",
        libreswan_enc(
            "IKESet.propoEncryAlgorithm",
            render::ike_encryption(ike.encryption)
        )?,
        libreswan_integrity("IKESet.propoAuthenAlgorithm", ike.authentication)?,
        libreswan_dh("IKESet.dhGroupName", ike.dh_group)?
    );
    let mut esp = format!(
        "{}-{}",
        libreswan_enc(
            "IPsecSet.encryptAlgorithm",
            render::esp_encryption(ipsec.encryption)
        )?,
        libreswan_integrity("IPsecSet.integrityAlgorith", ipsec.integrity)?
    );
    if let Some(g) = ipsec.pfs.group() {
        esp.push(';');
        esp.push_str(libreswan_dh("IPsecSet.pfsDhGroup", g)?);
    }
    let mut out = String::new();
    header(&mut out, "#", spec);
    out.push_str("# /etc/ipsec.d/vpcd.conf\n");
    out.push_str("conn vpcd-base\n");
    let mut kv = |k: &str, val: &str| {
        let _ = writeln!(out, "\t{k}={val}");
    };
    kv("auto", "ignore");
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
    kv("ike", &ike_alg);
    kv("esp", &esp);
    kv(
        "pfs",
        if ipsec.pfs == PfsGroup::Null {
            "no"
        } else {
            "yes"
        },
    );
    kv("ikelifetime", &format!("{}s", ike.sa_lifetime_seconds));
    kv("salifetime", &format!("{}s", ipsec.sa_lifetime_seconds));
    kv("dpddelay", &format!("{}", render::DPD_DELAY_SECONDS));
    kv(
        "dpdtimeout",
        &format!("{}", vpcd_types::limits::DPD_TIMEOUT_DEFAULT),
    );
    kv("dpdaction", "restart");
    kv("keyingtries", "%forever");
    for (i, (local, remote)) in v.pairs.iter().enumerate() {
        let _ = writeln!(out, "\nconn vpcd-{}", i + 1);
        let _ = writeln!(out, "\talso=vpcd-base");
        let _ = writeln!(out, "\tleftsubnet={local}");
        let _ = writeln!(out, "\trightsubnet={remote}");
        let _ = writeln!(out, "\tauto=start");
    }
    out.push_str("\n# /etc/ipsec.d/vpcd.secrets\n");
    let b64 = base64::engine::general_purpose::STANDARD
        .encode(spec.settings.pre_shared_key.expose().as_bytes());
    let _ = writeln!(
        out,
        "{} {} : PSK 0s{b64}",
        libreswan_id(v.local_id),
        libreswan_id(v.remote_id)
    );
    Ok(out)
}
