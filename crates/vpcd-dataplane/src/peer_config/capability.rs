//! The capability table: which connection settings each device's software
//! can negotiate. It is the one place that says so: [`super::render`]
//! refuses a connection with a setting its vendor cannot do (naming the
//! setting and what to change) instead of writing a file that cannot load,
//! and docs/actions.md shows the same table ([`markdown`] writes it; a test
//! checks the copy).
//!
//! Sources, per vendor (facts only):
//! - strongSwan 5.8+ with the openssl plugin: every value the API offers
//!   (the namespace tests negotiate them against vpcd's own charon).
//! - Libreswan 4.x and 5.x (`ipsec.conf(5)`, measured with 4.10's `algparse`
//!   in IKEv1 and IKEv2 mode, a unit test keeps the two in step): DES is
//!   gone, and so are the MODP groups below 1536 bits (groups 1 and 2) and
//!   the RFC 5114 group 24; AES-GCM for the IKE SA and the elliptic-curve
//!   groups 19-21 for PFS exist with IKEv2 only. IKEv1 is accepted only when
//!   `config setup` says `ikev1-policy=accept` (the file says so).
//! - Cisco IOS 15.x (Security Configuration Guide, IKE and IPsec chapters):
//!   `crypto isakmp policy` takes `encryption des|3des|aes 128|192|256`,
//!   `hash md5|sha`, `group 1|2|5|14|24`; transform sets take `esp-des`,
//!   `esp-3des`, `esp-aes 128|192|256`, `esp-null` with `esp-md5-hmac` or
//!   `esp-sha-hmac`; `set pfs group1|2|5|14|24`; aggressive mode through the
//!   ISAKMP profile's `initiate mode aggressive`.
//! - Juniper SRX, Junos 12.3X48 and later (CLI reference, `security ike` and
//!   `security ipsec`): IKE `encryption-algorithm des-cbc|3des-cbc|aes-128-cbc|
//!   aes-192-cbc|aes-256-cbc`, `authentication-algorithm md5|sha1`,
//!   `dh-group group1|group2|group5|group14|group24`; IPsec `hmac-md5-96`,
//!   `hmac-sha1-96`, the same ciphers, and no `encryption-algorithm` for
//!   ESP-NULL; `perfect-forward-secrecy keys group1..group24`; policy `mode
//!   main|aggressive`; gateway `version v1-only|v2-only`.
//!
//! vpcd's Cisco file is an IKEv1 crypto map, and neither it nor the Junos
//! file covers what API 3.0 added (SHA-2, AES-GCM, groups 15-21): those are
//! refused, not written without a way to prove the result here.

use std::fmt;

use vpcd_types::{
    AuthAlgorithm, DhGroup, ExchangeMode, IkeEncryption, IkeVersion, IpsecEncryption, PfsGroup,
    TunnelSpec,
};

use super::{vendors, Kind, Vendor};

/// One negotiable value of a connection, by the setting that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Setting {
    IkeVersion(IkeVersion),
    IkeEncryption(IkeEncryption),
    IkeIntegrity(AuthAlgorithm),
    IkeDhGroup(DhGroup),
    ExchangeMode(ExchangeMode),
    IpsecEncryption(IpsecEncryption),
    IpsecIntegrity(AuthAlgorithm),
    PfsGroup(PfsGroup),
}

impl Setting {
    /// The v2 parameter that holds the setting (the server spells it per
    /// protocol).
    pub fn param(self) -> &'static str {
        match self {
            // API 3.0 only: `IKEOptionsSpecification.IKEVersion`.
            Setting::IkeVersion(_) => "IKEVersion",
            Setting::IkeEncryption(_) => "IKESet.propoEncryAlgorithm",
            Setting::IkeIntegrity(_) => "IKESet.propoAuthenAlgorithm",
            Setting::IkeDhGroup(_) => "IKESet.dhGroupName",
            Setting::ExchangeMode(_) => "IKESet.exchangeMode",
            Setting::IpsecEncryption(_) => "IPsecSet.encryptAlgorithm",
            Setting::IpsecIntegrity(_) => "IPsecSet.integrityAlgorith",
            Setting::PfsGroup(_) => "IPsecSet.pfsDhGroup",
        }
    }

    /// The value in the v2 API's spelling.
    pub fn value(self) -> &'static str {
        match self {
            Setting::IkeVersion(v) => v.as_str(),
            Setting::IkeEncryption(v) => v.as_str(),
            Setting::IkeIntegrity(v) | Setting::IpsecIntegrity(v) => v.as_str(),
            Setting::IkeDhGroup(v) => v.as_str(),
            Setting::ExchangeMode(v) => v.as_str(),
            Setting::IpsecEncryption(v) => v.as_str(),
            Setting::PfsGroup(v) => v.as_str(),
        }
    }

    /// The settings of one connection, in parameter order.
    pub fn of(spec: &TunnelSpec) -> Vec<Setting> {
        let ike = &spec.settings.ike;
        let ipsec = &spec.settings.ipsec;
        vec![
            Setting::IkeVersion(ike.version),
            Setting::IkeEncryption(ike.encryption),
            Setting::IkeIntegrity(ike.authentication),
            Setting::IkeDhGroup(ike.dh_group),
            Setting::ExchangeMode(ike.exchange_mode),
            Setting::IpsecEncryption(ipsec.encryption),
            Setting::IpsecIntegrity(ipsec.integrity),
            Setting::PfsGroup(ipsec.pfs),
        ]
    }

    /// Every value of every setting, in documentation order.
    pub fn all() -> Vec<Setting> {
        let mut out = Vec::new();
        out.extend(
            IkeEncryption::ALL
                .iter()
                .copied()
                .map(Setting::IkeEncryption),
        );
        out.extend(
            AuthAlgorithm::ALL
                .iter()
                .copied()
                .map(Setting::IkeIntegrity),
        );
        out.extend(DhGroup::ALL.iter().copied().map(Setting::IkeDhGroup));
        out.extend(ExchangeMode::ALL.iter().copied().map(Setting::ExchangeMode));
        out.extend(
            IpsecEncryption::ALL
                .iter()
                .copied()
                .map(Setting::IpsecEncryption),
        );
        out.extend(
            AuthAlgorithm::ALL
                .iter()
                .copied()
                .map(Setting::IpsecIntegrity),
        );
        out.extend(PfsGroup::ALL.iter().copied().map(Setting::PfsGroup));
        out
    }
}

/// Why a vendor's device cannot negotiate a setting, and what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub setting: Setting,
    /// E.g. "Libreswan 4 and later do not support DH group 2: modify the
    /// connection to DH group 14".
    pub reason: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.setting.param(), self.reason)
    }
}

/// The group's number (`group2` and `dh-group2` are both DH group 2).
pub(super) fn dh_number(g: DhGroup) -> u32 {
    match g {
        DhGroup::Group1 => 1,
        DhGroup::Group2 => 2,
        DhGroup::Group5 => 5,
        DhGroup::Group14 => 14,
        DhGroup::Group15 => 15,
        DhGroup::Group16 => 16,
        DhGroup::Group19 => 19,
        DhGroup::Group20 => 20,
        DhGroup::Group21 => 21,
        DhGroup::Group24 => 24,
    }
}

/// Whether `vendor`'s software can negotiate `setting` on a tunnel of IKE
/// version `version` (a few values depend on it: Libreswan has no AES-GCM
/// for an IKEv1 SA and no elliptic-curve groups for IKEv1 PFS).
pub fn supports(vendor: &Vendor, version: IkeVersion, setting: Setting) -> Result<(), Refusal> {
    let refuse = |reason: String| Err(Refusal { setting, reason });
    match vendor.kind {
        // Every value of the API (the namespace tests negotiate them).
        Kind::StrongSwan => Ok(()),
        Kind::Libreswan => libreswan(version, setting).map_or(Ok(()), refuse),
        Kind::CiscoIos => newer_than_the_file("Cisco IOS", setting, true).map_or(Ok(()), refuse),
        Kind::JuniperSrx => newer_than_the_file("Junos", setting, false).map_or(Ok(()), refuse),
    }
}

const LIBRESWAN: &str = "Libreswan 4 and later";

/// Libreswan's refusals (module docs), or `None`.
fn libreswan(version: IkeVersion, setting: Setting) -> Option<String> {
    let lacks = |g: DhGroup| matches!(g, DhGroup::Group1 | DhGroup::Group2 | DhGroup::Group24);
    let ecp = |g: DhGroup| matches!(g, DhGroup::Group19 | DhGroup::Group20 | DhGroup::Group21);
    match setting {
        Setting::IkeEncryption(IkeEncryption::DesCbc)
        | Setting::IpsecEncryption(IpsecEncryption::DesCbc) => Some(format!(
            "{LIBRESWAN} do not support DES: modify the connection to 3DES or AES \
             (aes-cbc-128 or stronger)"
        )),
        Setting::IkeEncryption(e) if e.is_aead() && version == IkeVersion::V1 => Some(format!(
            "{LIBRESWAN} support AES-GCM for the IKE SA with IKEv2 only: modify the \
             connection to IKEv2 or to AES-CBC"
        )),
        Setting::IkeDhGroup(g) if lacks(g) => Some(format!(
            "{LIBRESWAN} do not support DH group {}: modify the connection to DH group 14",
            dh_number(g)
        )),
        Setting::PfsGroup(p) => match p.group() {
            Some(g) if lacks(g) => Some(format!(
                "{LIBRESWAN} do not support DH group {} for PFS: modify the connection \
                 to PFS with DH group 14, or to no PFS",
                dh_number(g)
            )),
            Some(g) if ecp(g) && version == IkeVersion::V1 => Some(format!(
                "{LIBRESWAN} support DH group {} for PFS with IKEv2 only: modify the \
                 connection to IKEv2, or to PFS with DH group 14",
                dh_number(g)
            )),
            _ => None,
        },
        _ => None,
    }
}

/// The values API 3.0 added that vpcd's file for a device written for
/// IKEv1 crypto maps or proposals (Cisco IOS) or for IKEv1 and IKEv2
/// proposals with the classic algorithms (Junos) does not cover yet, or
/// `None`. Refused rather than guessed: these files cannot be proven here.
fn newer_than_the_file(device: &str, setting: Setting, ikev1_only: bool) -> Option<String> {
    let file = format!("vpcd's {device} configuration");
    match setting {
        Setting::IkeVersion(IkeVersion::V2) if ikev1_only => Some(format!(
            "{file} covers IKEv1 tunnels only: modify the connection to IKEv1"
        )),
        Setting::IkeEncryption(e) if e.is_aead() => Some(format!(
            "{file} does not cover AES-GCM: modify the connection to AES-CBC"
        )),
        Setting::IpsecEncryption(e) if e.is_aead() => Some(format!(
            "{file} does not cover AES-GCM: modify the connection to AES-CBC"
        )),
        Setting::IkeIntegrity(a) | Setting::IpsecIntegrity(a)
            if !matches!(a, AuthAlgorithm::Md5 | AuthAlgorithm::Sha) =>
        {
            Some(format!(
                "{file} does not cover SHA-2: modify the connection to SHA-1 (sha)"
            ))
        }
        Setting::IkeDhGroup(g) if !v2_group(g) => Some(format!(
            "{file} does not cover DH group {}: modify the connection to DH group 14",
            dh_number(g)
        )),
        Setting::PfsGroup(p) => match p.group() {
            Some(g) if !v2_group(g) => Some(format!(
                "{file} does not cover DH group {} for PFS: modify the connection to PFS \
                 with DH group 14, or to no PFS",
                dh_number(g)
            )),
            _ => None,
        },
        _ => None,
    }
}

/// The groups the v2 API offers (1, 2, 5, 14, 24).
fn v2_group(g: DhGroup) -> bool {
    DhGroup::V2.contains(&g)
}

/// The first setting of `spec` that `vendor` cannot negotiate, if any.
pub fn check(vendor: &Vendor, spec: &TunnelSpec) -> Result<(), Refusal> {
    let version = spec.settings.ike.version;
    Setting::of(spec)
        .into_iter()
        .try_for_each(|s| supports(vendor, version, s))
}

/// The table as Markdown, for docs/actions.md: one row per setting value,
/// one column per vendor: `yes`, `no`, or the one IKE version it works with.
pub fn markdown() -> String {
    let mut out = String::from("| setting | value |");
    for v in vendors() {
        out.push_str(&format!(" {} |", v.vendorname));
    }
    out.push_str("\n|---|---|");
    for _ in vendors() {
        out.push_str("---|");
    }
    out.push('\n');
    for s in Setting::all() {
        out.push_str(&format!("| `{}` | `{}` |", s.param(), s.value()));
        for v in vendors() {
            let v1 = supports(v, IkeVersion::V1, s).is_ok();
            let v2 = supports(v, IkeVersion::V2, s).is_ok();
            out.push_str(match (v1, v2) {
                (true, true) => " yes |",
                (false, false) => " **no** |",
                (true, false) => " IKEv1 only |",
                (false, true) => " IKEv2 only |",
            });
        }
        out.push('\n');
    }
    out
}
