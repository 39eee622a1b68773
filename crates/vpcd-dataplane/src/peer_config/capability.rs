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
//! - Libreswan 4.x and 5.x (`ipsec.conf(5)`, measured with 4.10's `algparse`):
//!   DES is gone, and so are the MODP groups below 1536 bits (groups 1 and 2)
//!   and the RFC 5114 group 24. IKEv1 is accepted only when `config setup`
//!   says `ikev1-policy=accept` (the file says so).
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
//!   main|aggressive`.

use std::fmt;

use vpcd_types::{
    AuthAlgorithm, DhGroup, ExchangeMode, IkeEncryption, IpsecEncryption, PfsGroup, TunnelSpec,
};

use super::{vendors, Kind, Vendor};

/// One negotiable value of a connection, by the setting that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Setting {
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
fn dh_number(g: DhGroup) -> u32 {
    match g {
        DhGroup::Group1 => 1,
        DhGroup::Group2 => 2,
        DhGroup::Group5 => 5,
        DhGroup::Group14 => 14,
        DhGroup::Group24 => 24,
    }
}

const LIBRESWAN: &str = "Libreswan 4 and later";

/// Whether `vendor`'s software can negotiate `setting`.
pub fn supports(vendor: &Vendor, setting: Setting) -> Result<(), Refusal> {
    let refuse = |reason: String| Err(Refusal { setting, reason });
    match vendor.kind {
        // Every value of the API; Cisco IOS 15.x and Junos 12.3X48+ have a
        // keyword for each IKEv1 value (module docs).
        Kind::StrongSwan | Kind::CiscoIos | Kind::JuniperSrx => Ok(()),
        Kind::Libreswan => match setting {
            Setting::IkeEncryption(IkeEncryption::DesCbc)
            | Setting::IpsecEncryption(IpsecEncryption::DesCbc) => refuse(format!(
                "{LIBRESWAN} do not support DES: modify the connection to 3DES or AES \
                 (aes-cbc-128 or stronger)"
            )),
            Setting::IkeDhGroup(g) if libreswan_lacks(g) => refuse(format!(
                "{LIBRESWAN} do not support DH group {}: modify the connection to DH group 14",
                dh_number(g)
            )),
            Setting::PfsGroup(p) => match p.group() {
                Some(g) if libreswan_lacks(g) => refuse(format!(
                    "{LIBRESWAN} do not support DH group {} for PFS: modify the connection \
                     to PFS with DH group 14, or to no PFS",
                    dh_number(g)
                )),
                _ => Ok(()),
            },
            _ => Ok(()),
        },
    }
}

/// DH groups missing from Libreswan 4.x/5.x: MODP 768 and 1024 (disabled
/// at build time since 4.0) and the RFC 5114 group 24 (removed).
fn libreswan_lacks(g: DhGroup) -> bool {
    matches!(g, DhGroup::Group1 | DhGroup::Group2 | DhGroup::Group24)
}

/// The first setting of `spec` that `vendor` cannot negotiate, if any.
pub fn check(vendor: &Vendor, spec: &TunnelSpec) -> Result<(), Refusal> {
    Setting::of(spec)
        .into_iter()
        .try_for_each(|s| supports(vendor, s))
}

/// The table as Markdown, for docs/actions.md: one row per setting value,
/// one column per vendor, `yes` or `no`.
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
            out.push_str(match supports(v, s) {
                Ok(()) => " yes |",
                Err(_) => " **no** |",
            });
        }
        out.push('\n');
    }
    out
}
