//! Configuration for the customer's device: the other end of a tunnel,
//! written from the peer's point of view (local and remote swapped).
//!
//! Used by DescribeUserGwVendor ([`vendors`]) and GetVpnConnConfig
//! ([`render`]). A file is written only for settings its device can
//! negotiate: [`capability`] is the table that decides.
//!
//! # Injection safety
//! The only free-form inputs are the pre-shared key (1-128 printable ASCII
//! characters, so `"`, `#`, `{`, `\`, `;`, `$` can occur) and the interface
//! name. Everything else comes from closed alphabets: addresses, CIDRs,
//! FQDNs (`[A-Za-z0-9.-]`), algorithm keywords and numbers.
//! - The interface name must match `[A-Za-z][A-Za-z0-9/._:-]{0,63}`, else
//!   [`PeerConfigError::InterfaceName`].
//! - strongSwan and Juniper get the key hex-encoded (`secret = 0x...`,
//!   `pre-shared-key hexadecimal ...`), Libreswan base64 (`PSK 0s...`): no
//!   character of the key reaches the file.
//! - Cisco IOS has no encoded form for ISAKMP keys, so the key is written as
//!   is, and keys the IOS parser would misread (`?` opens help, `"`/`\` are
//!   quote/escape characters on some trains, a bare `0`/`6`/`7` is an
//!   encryption-type keyword, a leading `!`/`#` reads as a comment) are
//!   refused with
//!   [`PeerConfigError::PreSharedKey`].
//! - The connection name never appears; generated object names are fixed.

use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;
use vpcd_types::{Identity, TunnelSpec};

use crate::strongswan::render;

pub use capability::{supports, Refusal, Setting};

pub mod capability;
mod cisco;
mod juniper;
mod libreswan;
mod strongswan;

/// A device configuration vpcd can generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vendor {
    /// Stable key, e.g. `strongswan`.
    pub key: &'static str,
    pub vendorname: &'static str,
    pub platform: &'static str,
    pub software: &'static str,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    StrongSwan,
    Libreswan,
    CiscoIos,
    JuniperSrx,
}

static VENDORS: [Vendor; 4] = [
    Vendor {
        key: "strongswan",
        vendorname: "strongSwan",
        platform: "Linux",
        software: "strongSwan 5.8+ (swanctl.conf)",
        kind: Kind::StrongSwan,
    },
    Vendor {
        key: "libreswan",
        vendorname: "Libreswan",
        platform: "Linux",
        software: "Libreswan 4.x and 5.x (ipsec.conf)",
        kind: Kind::Libreswan,
    },
    Vendor {
        key: "cisco",
        vendorname: "Cisco",
        platform: "ISR",
        software: "IOS 15.x",
        kind: Kind::CiscoIos,
    },
    Vendor {
        key: "juniper",
        vendorname: "Juniper",
        platform: "SRX",
        software: "Junos 12.3+",
        kind: Kind::JuniperSrx,
    },
];

/// Every supported device, in display order.
pub fn vendors() -> &'static [Vendor] {
    &VENDORS
}

/// Look a vendor up by its key (`strongswan`, `libreswan`, `cisco`, `juniper`).
pub fn vendor(key: &str) -> Option<&'static Vendor> {
    VENDORS.iter().find(|v| v.key == key)
}

/// Why no configuration was produced. Messages name the API parameter at
/// fault and never contain the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerConfigError {
    #[error("interfaceName: expected a letter followed by up to 63 letters, digits or / . _ : -")]
    InterfaceName,
    #[error("preSharedKey: {0}")]
    PreSharedKey(&'static str),
    /// A setting of the connection the target device cannot negotiate
    /// (the [`capability`] table).
    #[error("{0}")]
    Unsupported(Refusal),
}

/// The configuration for `vendor`'s device at the far end of `spec`.
///
/// `interface_name` is the device's outside interface (Cisco: where the
/// crypto map goes, default `GigabitEthernet0/0`; Juniper: the IKE external
/// interface, default `ge-0/0/0.0`); strongSwan and Libreswan ignore it.
pub fn render(
    vendor: &Vendor,
    spec: &TunnelSpec,
    interface_name: Option<&str>,
) -> Result<String, PeerConfigError> {
    if let Some(i) = interface_name {
        check_interface(i)?;
    }
    let psk = spec.settings.pre_shared_key.expose();
    let valid_psk =
        (1..=128).contains(&psk.len()) && psk.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if !valid_psk {
        return Err(PeerConfigError::PreSharedKey(
            "expected 1-128 printable ASCII characters without spaces",
        ));
    }
    capability::check(vendor, spec).map_err(PeerConfigError::Unsupported)?;
    match vendor.kind {
        Kind::StrongSwan => Ok(strongswan::strongswan(spec)),
        Kind::Libreswan => Ok(libreswan::libreswan(spec)),
        Kind::CiscoIos => cisco::cisco(spec, interface_name.unwrap_or("GigabitEthernet0/0")),
        Kind::JuniperSrx => juniper::juniper(spec, interface_name.unwrap_or("ge-0/0/0.0")),
    }
}

/// The numbers of `spec`'s IKE and PFS DH groups, for the files that cover
/// the v2 API's groups only (1, 2, 5, 14, 24).
fn v2_groups(spec: &TunnelSpec) -> Result<(u32, Option<u32>), PeerConfigError> {
    let number = |setting: Setting, g: vpcd_types::DhGroup| {
        if vpcd_types::DhGroup::V2.contains(&g) {
            Ok(capability::dh_number(g))
        } else {
            Err(not_covered(setting))
        }
    };
    let (ike, ipsec) = (&spec.settings.ike, &spec.settings.ipsec);
    let ike_group = number(Setting::IkeDhGroup(ike.dh_group), ike.dh_group)?;
    let pfs_group = ipsec
        .pfs
        .group()
        .map(|g| number(Setting::PfsGroup(ipsec.pfs), g))
        .transpose()?;
    Ok((ike_group, pfs_group))
}

/// A value a device's file has no keyword for. Unreachable while the
/// capability table refuses the value first ([`render`] checks it before
/// writing); kept so that a table change cannot produce a wrong file.
fn not_covered(setting: Setting) -> PeerConfigError {
    PeerConfigError::Unsupported(Refusal {
        setting,
        reason: "this value is not covered by this device's configuration".to_owned(),
    })
}

fn check_interface(name: &str) -> Result<(), PeerConfigError> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphabetic()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"/._:-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(PeerConfigError::InterfaceName)
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The peer's (local, remote) identities and addresses.
struct PeerView<'a> {
    local_addr: IpAddr,
    remote_addr: IpAddr,
    local_id: &'a Identity,
    remote_id: &'a Identity,
    /// (peer-side net, cloud-side net).
    pairs: Vec<(IpNet, IpNet)>,
}

fn peer_view(spec: &TunnelSpec) -> PeerView<'_> {
    PeerView {
        local_addr: spec.remote_addr,
        remote_addr: spec.local_addr,
        local_id: &spec.settings.ike.remote_identity,
        remote_id: &spec.settings.ike.local_identity,
        pairs: render::spd_pairs(spec)
            .into_iter()
            .map(|(vpc, idc)| (idc, vpc))
            .collect(),
    }
}

fn header(out: &mut String, comment: &str, spec: &TunnelSpec) {
    // The id is `vpnx-` + [a-z0-9]{8}; no user-chosen text is written.
    let _ = writeln!(
        out,
        "{comment} vpcd tunnel {} - configuration for the customer gateway {}",
        spec.name, spec.remote_addr
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{spec_custom, spec_default};
    use base64::Engine as _;
    use vpcd_types::IkeEncryption;
    use vpcd_types::Secret;

    /// Keys that try to break out of every format's quoting.
    const HOSTILE: &[&str] = &[
        "a\"b",
        "x'y",
        "#comment",
        "}{",
        "\\",
        "ab;cd",
        "$(id)",
        "\"}secrets{ike-x{secret=owned}}#",
        "x\\nid=1",
        "0xdeadbeef",
        "0sAAAA",
        "!",
        "%any",
        "~`^|<>&*",
    ];

    fn with_psk(psk: &str) -> TunnelSpec {
        let mut s = spec_default();
        s.settings.pre_shared_key = Secret::new(psk);
        s
    }

    fn lines_with<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.contains(needle)).collect()
    }

    #[test]
    fn vendor_list() {
        let keys: Vec<_> = vendors().iter().map(|v| v.key).collect();
        assert_eq!(keys, ["strongswan", "libreswan", "cisco", "juniper"]);
        assert_eq!(vendor("juniper").unwrap().vendorname, "Juniper");
    }

    #[test]
    fn snapshots() {
        for v in vendors() {
            for (label, spec) in [("default", spec_default()), ("custom", spec_custom())] {
                match render(v, &spec, None) {
                    Ok(text) => insta::assert_snapshot!(format!("peer_{}_{label}", v.key), text),
                    Err(e) => {
                        insta::assert_snapshot!(format!("peer_{}_{label}", v.key), e.to_string())
                    }
                }
            }
        }
    }

    /// The API's traffic lifetime (KB) means the same number of bytes on
    /// both ends of a tunnel: the gateway's own CHILD SAs and every device
    /// file that carries one (Cisco and Junos count kilobytes of 1024 bytes,
    /// Libreswan's `KiB` is 1024 bytes too).
    #[test]
    fn traffic_lifetime_means_the_same_on_both_ends() {
        let spec = spec_custom();
        let kb = spec.settings.ipsec.sa_lifetime_traffic_kb;
        let bytes = kb * 1024;
        let cloud = crate::strongswan::render::load_conn(&spec);
        assert!(!cloud.conn.children.0.is_empty());
        for (name, child) in &cloud.conn.children.0 {
            assert_eq!(child.life_bytes, bytes, "{name}");
        }
        let file = |key: &str| render(vendor(key).unwrap(), &spec, None).unwrap();
        let strongswan = file("strongswan");
        let lines = lines_with(&strongswan, "life_bytes =");
        assert!(!lines.is_empty(), "{strongswan}");
        for l in lines {
            assert_eq!(l.trim(), format!("life_bytes = {bytes}"));
        }
        assert_eq!(
            lines_with(&file("libreswan"), "ipsec-max-bytes"),
            [format!("\tipsec-max-bytes={kb}KiB")]
        );
        assert_eq!(
            lines_with(&file("cisco"), "lifetime kilobytes"),
            [format!(" set security-association lifetime kilobytes {kb}")]
        );
        assert_eq!(
            lines_with(&file("juniper"), "lifetime-kilobytes"),
            [format!(
                "set security ipsec proposal vpcd-ipsec-proposal lifetime-kilobytes {kb}"
            )]
        );
    }

    /// The spellings the vendors' guides give (module docs of cisco.rs and
    /// juniper.rs): IOS's AES-128 is `aes`/`esp-aes` (no `128`), and Junos
    /// takes at most 4294967294 KB, one less than API 3.0's maximum.
    #[test]
    fn cisco_and_junos_spell_values_as_their_guides_do() {
        let mut spec = spec_custom();
        spec.settings.ike.encryption = IkeEncryption::AesCbc128;
        spec.settings.ipsec.encryption = vpcd_types::IpsecEncryption::AesCbc128;
        let ios = render(vendor("cisco").unwrap(), &spec, None).unwrap();
        assert_eq!(lines_with(&ios, " encryption "), [" encryption aes"]);
        assert_eq!(
            lines_with(&ios, "crypto ipsec transform-set"),
            ["crypto ipsec transform-set vpcd-ts esp-aes esp-sha-hmac"]
        );
        let junos = |kb: u64| {
            let mut s = spec_custom();
            s.settings.ipsec.sa_lifetime_traffic_kb = kb;
            render(vendor("juniper").unwrap(), &s, None).unwrap()
        };
        let at_max = junos(4_294_967_294);
        assert_eq!(
            lines_with(&at_max, "lifetime-kilobytes"),
            ["set security ipsec proposal vpcd-ipsec-proposal lifetime-kilobytes 4294967294"]
        );
        assert!(!at_max.contains("nearest bound"), "{at_max}");
        let above = junos(4_294_967_295);
        assert_eq!(
            lines_with(&above, "lifetime-kilobytes"),
            ["set security ipsec proposal vpcd-ipsec-proposal lifetime-kilobytes 4294967294"]
        );
        assert_eq!(
            lines_with(&above, "nearest bound"),
            ["# Lifetimes outside the Junos ranges are brought to the nearest bound."]
        );
        // IKE lifetimes below 180 s come up to the Junos minimum, and say so.
        let mut s = spec_custom();
        s.settings.ike.sa_lifetime_seconds = 60;
        let short = render(vendor("juniper").unwrap(), &s, None).unwrap();
        assert_eq!(
            lines_with(&short, "ike proposal vpcd-ike-proposal lifetime-seconds"),
            ["set security ike proposal vpcd-ike-proposal lifetime-seconds 180"]
        );
        assert!(short.contains("nearest bound"), "{short}");
    }

    /// Lifetimes above the IOS and Libreswan maximum (86400 s) are capped,
    /// each file saying so exactly when it capped one of the two.
    #[test]
    fn lifetime_caps_are_said_exactly_when_made() {
        let cases = [
            ((86_400, 86_400), (86_400, 86_400), false),
            ((86_401, 3_600), (86_400, 3_600), true),
            ((3_600, 604_800), (3_600, 86_400), true),
        ];
        for ((ike, ipsec), (ike_written, ipsec_written), capped) in cases {
            let mut spec = spec_custom();
            spec.settings.ike.sa_lifetime_seconds = ike;
            spec.settings.ipsec.sa_lifetime_seconds = ipsec;
            let ios = render(vendor("cisco").unwrap(), &spec, None).unwrap();
            assert_eq!(
                ios.contains("! Lifetimes above 86400 s are capped to the IOS maximum."),
                capped,
                "{ike} {ipsec}: {ios}"
            );
            let isakmp: Vec<_> = ios
                .lines()
                .filter(|l| l.starts_with(" lifetime "))
                .collect();
            assert_eq!(isakmp, [format!(" lifetime {ike_written}")]);
            assert_eq!(
                lines_with(&ios, "lifetime seconds"),
                [format!(
                    " set security-association lifetime seconds {ipsec_written}"
                )]
            );
            let lsw = render(vendor("libreswan").unwrap(), &spec, None).unwrap();
            assert_eq!(
                lsw.contains("\t# Lifetimes above 86400 s are capped to the Libreswan maximum."),
                capped,
                "{ike} {ipsec}: {lsw}"
            );
            assert_eq!(
                lines_with(&lsw, "lifetime="),
                [
                    format!("\tikelifetime={ike_written}s"),
                    format!("\tsalifetime={ipsec_written}s")
                ]
            );
        }
    }

    #[test]
    fn strongswan_encodes_the_key() {
        for psk in HOSTILE {
            let text = render(vendor("strongswan").unwrap(), &with_psk(psk), None).unwrap();
            let expected = format!("secret = 0x{}", hex(psk.as_bytes()));
            assert_eq!(lines_with(&text, "secret =").len(), 1, "{text}");
            assert_eq!(lines_with(&text, &expected).len(), 1, "{text}");
            // Structure unchanged: same sections, balanced braces.
            assert_eq!(text.matches('{').count(), text.matches('}').count());
            assert_eq!(lines_with(&text, "secrets {").len(), 1);
            assert_eq!(lines_with(&text, "connections {").len(), 1);
            if psk.len() > 3 {
                assert!(!text.contains(psk), "{psk:?} leaked");
            }
        }
    }

    #[test]
    fn libreswan_encodes_the_key() {
        for psk in HOSTILE {
            let mut spec = with_psk(psk);
            spec.settings.ike.dh_group = vpcd_types::DhGroup::Group14;
            let text = render(vendor("libreswan").unwrap(), &spec, None).unwrap();
            let b64 = base64::engine::general_purpose::STANDARD.encode(psk.as_bytes());
            let secrets = lines_with(&text, ": PSK");
            assert_eq!(
                secrets,
                vec![format!("198.51.100.1 203.0.113.1 : PSK 0s{b64}").as_str()]
            );
            if psk.len() > 3 {
                assert!(!text.contains(psk), "{psk:?} leaked");
            }
        }
    }

    #[test]
    fn juniper_encodes_the_key() {
        for psk in HOSTILE {
            let text = render(vendor("juniper").unwrap(), &with_psk(psk), None).unwrap();
            let keyline = lines_with(&text, "pre-shared-key hexadecimal");
            assert_eq!(
                keyline,
                vec![format!(
                    "set security ike policy vpcd-ike-policy pre-shared-key hexadecimal {}",
                    hex(psk.as_bytes())
                )
                .as_str()]
            );
            // Every line is a comment or a single `set` statement.
            assert!(text
                .lines()
                .all(|l| l.starts_with("# ") || (l.starts_with("set ") && !l.contains(';'))));
        }
    }

    #[test]
    fn cisco_writes_safe_keys_once_and_refuses_the_rest() {
        for psk in HOSTILE {
            let r = render(vendor("cisco").unwrap(), &with_psk(psk), None);
            let unsafe_chars = psk.contains(['?', '"', '\\']) || psk.starts_with(['!', '#']);
            match r {
                Err(e) => {
                    assert!(unsafe_chars, "{psk:?} refused: {e}");
                    assert!(e.to_string().starts_with("preSharedKey:"));
                    assert!(psk.len() < 4 || !e.to_string().contains(psk));
                }
                Ok(text) => {
                    assert!(!unsafe_chars, "{psk:?} accepted");
                    // Exactly one line carries the key, at its end, as the
                    // last whitespace-separated token.
                    let with_key: Vec<_> = text
                        .lines()
                        .filter(|l| !l.starts_with('!') && l.split(' ').any(|t| t == *psk))
                        .collect();
                    assert_eq!(
                        with_key,
                        vec![format!(" pre-shared-key address 203.0.113.1 key {psk}").as_str()]
                    );
                }
            }
        }
        for psk in ["what?", "6", "0"] {
            let e = render(vendor("cisco").unwrap(), &with_psk(psk), None).unwrap_err();
            assert!(matches!(e, PeerConfigError::PreSharedKey(_)), "{psk}");
        }
    }

    #[test]
    fn interface_names_are_checked() {
        let s = spec_default();
        for bad in [
            "",
            "ge-0/0/0.0; delete security",
            "Gi0/0\n crypto map x",
            "0abc",
            "a b",
            "a\"b",
            &"a".repeat(65),
        ] {
            for v in vendors() {
                assert_eq!(
                    render(v, &s, Some(bad)),
                    Err(PeerConfigError::InterfaceName),
                    "{bad:?}"
                );
            }
        }
        let cisco = render(vendor("cisco").unwrap(), &s, Some("GigabitEthernet0/1.100")).unwrap();
        assert!(cisco.contains("\ninterface GigabitEthernet0/1.100\n"));
        let junos = render(vendor("juniper").unwrap(), &s, Some("ge-0/0/3.0")).unwrap();
        assert!(junos.contains("external-interface ge-0/0/3.0\n"));
        assert_eq!(
            PeerConfigError::InterfaceName.to_string().split(':').next(),
            Some("interfaceName")
        );
    }

    #[test]
    fn keys_outside_the_api_alphabet_are_refused() {
        for bad in ["", "a b", "tab\there", "new\nline", "é", &"k".repeat(129)] {
            for v in vendors() {
                let e = render(v, &with_psk(bad), None).unwrap_err();
                assert!(e.to_string().starts_with("preSharedKey:"), "{bad:?}");
            }
        }
    }

    /// The strongSwan file covers IKEv2 and GCM; the other devices' files
    /// refuse such a tunnel, naming the setting.
    #[test]
    fn ikev2_gcm_files() {
        let s = crate::test_support::spec_ikev2_gcm(vpcd_types::NegotiationType::Active);
        let text = render(vendor("strongswan").unwrap(), &s, None).unwrap();
        insta::assert_snapshot!("peer_strongswan_ikev2_gcm", text);
        // Libreswan does all of it (IKEv2); the capability table refuses
        // the rest, naming the first setting the device's file cannot do.
        let lsw = render(vendor("libreswan").unwrap(), &s, None).unwrap();
        assert!(lsw.contains("\tike=aes_gcm256-sha2_256;dh19\n"), "{lsw}");
        assert!(lsw.contains("\tesp=aes_gcm256;dh20\n"), "{lsw}");
        for (key, param) in [
            ("cisco", "IKEVersion:"),
            ("juniper", "IKESet.propoEncryAlgorithm:"),
        ] {
            let e = render(vendor(key).unwrap(), &s, None).unwrap_err();
            assert!(e.to_string().starts_with(param), "{key}: {e}");
        }
        // IKEv1 with an AES-GCM ESP: refused by field, not mistranslated.
        let mut s = spec_custom();
        s.settings.ipsec.encryption = vpcd_types::IpsecEncryption::Aes128Gcm128;
        for key in ["cisco", "juniper"] {
            let e = render(vendor(key).unwrap(), &s, None).unwrap_err();
            assert!(
                e.to_string().starts_with("IPsecSet.encryptAlgorithm:"),
                "{key}: {e}"
            );
        }
        let lsw = render(vendor("libreswan").unwrap(), &s, None).unwrap();
        assert!(lsw.contains("\tesp=aes_gcm128;modp2048\n"), "{lsw}");
    }

    #[test]
    fn libreswan_refuses_what_it_cannot_do() {
        let libreswan = vendor("libreswan").unwrap();
        // The v2 API's defaults use DH group 2.
        assert_eq!(
            render(libreswan, &spec_default(), None)
                .unwrap_err()
                .to_string(),
            "IKESet.dhGroupName: Libreswan 4 and later do not support DH group 2: \
             modify the connection to DH group 14"
        );
        let mut s = spec_custom();
        s.settings.ike.encryption = IkeEncryption::DesCbc;
        let e = render(libreswan, &s, None).unwrap_err();
        assert!(
            e.to_string().starts_with("IKESet.propoEncryAlgorithm:"),
            "{e}"
        );
        let mut s = spec_custom();
        s.settings.ipsec.pfs = vpcd_types::PfsGroup::DhGroup1;
        let e = render(libreswan, &s, None).unwrap_err();
        assert_eq!(
            e,
            PeerConfigError::Unsupported(Refusal {
                setting: Setting::PfsGroup(vpcd_types::PfsGroup::DhGroup1),
                reason: "Libreswan 4 and later do not support DH group 1 for PFS: modify the \
                         connection to PFS with DH group 14, or to no PFS"
                    .into()
            })
        );
    }

    /// Every file is written from the capability table's point of view: a
    /// vendor gets a file exactly when the table allows every setting.
    #[test]
    fn render_follows_the_capability_table() {
        for spec in variants::all().into_iter().map(|(_, s)| s) {
            for v in vendors() {
                let table = capability::check(v, &spec);
                match render(v, &spec, None) {
                    Ok(_) => assert_eq!(table, Ok(()), "{}", v.key),
                    Err(PeerConfigError::Unsupported(r)) => assert_eq!(table, Err(r)),
                    Err(e) => panic!("{}: {e}", v.key),
                }
            }
        }
    }

    /// IKEv2: Junos gets `version v2-only` and no exchange mode (an IKEv1
    /// notion); Libreswan `ikev2=insist`, no `aggressive=`, and no `config
    /// setup` part; Cisco's IKEv1 crypto map is refused, naming the version.
    #[test]
    fn ikev2_files() {
        let mut spec = spec_custom();
        spec.settings.ike.version = vpcd_types::IkeVersion::V2;
        let junos = render(vendor("juniper").unwrap(), &spec, None).unwrap();
        assert!(junos.contains(" version v2-only\n"), "{junos}");
        assert!(!junos.contains(" mode "), "{junos}");
        let lsw = render(vendor("libreswan").unwrap(), &spec, None).unwrap();
        assert!(lsw.contains("\tikev2=insist\n"), "{lsw}");
        assert!(
            !lsw.contains("aggressive=") && !lsw.contains("config setup"),
            "{lsw}"
        );
        assert!(
            lsw.contains("# Part 1 of 2: /etc/ipsec.d/vpcd.conf"),
            "{lsw}"
        );
        assert!(
            lsw.contains("# Part 2 of 2: /etc/ipsec.d/vpcd.secrets"),
            "{lsw}"
        );
        let e = render(vendor("cisco").unwrap(), &spec, None).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("IKEVersion: vpcd's Cisco IOS configuration covers IKEv1"),
            "{e}"
        );
    }

    /// docs/actions.md shows the table as the code has it.
    #[test]
    fn the_documented_capability_table_is_the_code_s() {
        let docs = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/actions.md"),
        )
        .unwrap();
        let table = capability::markdown();
        // A header, its rule, then one row per value.
        assert_eq!(table.lines().count(), Setting::all().len() + 2, "{table}");
        assert!(
            table.starts_with("| setting | value | strongSwan | Libreswan | Cisco | Juniper |\n")
        );
        assert!(
            table.contains("| `IKESet.dhGroupName` | `group2` | yes | **no** | yes | yes |\n"),
            "{table}"
        );
        assert!(
            docs.contains(&table),
            "docs/actions.md must contain the capability table:\n{table}"
        );
    }
}

/// Connection variants for the checks with Libreswan's own programs.
#[cfg(test)]
pub(crate) mod variants {
    use vpcd_types::{
        DhGroup, ExchangeMode, Identity, IkeEncryption, IkeVersion, IpsecEncryption, PfsGroup,
        TunnelSpec,
    };

    use super::Setting;
    use crate::test_support::{rule, spec_custom};

    /// Give `spec` the value `s`.
    pub(crate) fn apply(spec: &mut TunnelSpec, s: Setting) {
        let (ike, ipsec) = (&mut spec.settings.ike, &mut spec.settings.ipsec);
        match s {
            Setting::IkeVersion(v) => ike.version = v,
            Setting::IkeEncryption(v) => ike.encryption = v,
            Setting::IkeIntegrity(v) => ike.authentication = v,
            Setting::IkeDhGroup(v) => ike.dh_group = v,
            Setting::ExchangeMode(v) => ike.exchange_mode = v,
            Setting::IpsecEncryption(v) => ipsec.encryption = v,
            Setting::IpsecIntegrity(v) => ipsec.integrity = v,
            Setting::PfsGroup(v) => ipsec.pfs = v,
        }
    }

    /// A connection Libreswan can do (aes-cbc-256, sha, group 14, PFS
    /// group 14, aggressive mode, FQDN identities, two SPD pairs).
    pub(crate) fn base() -> TunnelSpec {
        spec_custom()
    }

    /// Every value of every setting on [`base`]; both exchange modes with
    /// both identity kinds; no PFS; one, two and four SPD pairs; the
    /// longest lifetimes.
    pub(crate) fn all() -> Vec<(String, TunnelSpec)> {
        let mut out = Vec::new();
        for version in IkeVersion::ALL {
            for s in Setting::all() {
                let mut spec = base();
                spec.settings.ike.version = *version;
                apply(&mut spec, s);
                out.push((format!("{version}: {}={}", s.param(), s.value()), spec));
            }
        }
        // IKEv2 with AES-GCM everywhere and elliptic-curve groups.
        let mut spec = base();
        spec.settings.ike.version = IkeVersion::V2;
        spec.settings.ike.encryption = IkeEncryption::Aes256Gcm128;
        spec.settings.ike.authentication = vpcd_types::AuthAlgorithm::Sha256;
        spec.settings.ike.dh_group = DhGroup::Group19;
        spec.settings.ipsec.encryption = IpsecEncryption::Aes128Gcm128;
        spec.settings.ipsec.pfs = PfsGroup::DhGroup20;
        out.push(("IKEv2, AES-GCM, groups 19 and 20".into(), spec));
        for mode in ExchangeMode::ALL {
            for fqdn in [false, true] {
                let mut spec = base();
                spec.settings.ike.exchange_mode = *mode;
                if !fqdn {
                    spec.settings.ike.local_identity = Identity::Address(spec.local_addr);
                    spec.settings.ike.remote_identity = Identity::Address(spec.remote_addr);
                }
                let id = if fqdn { "fqdn" } else { "address" };
                out.push((format!("{mode} mode, {id} identities"), spec));
            }
        }
        let mut spec = base();
        spec.settings.ipsec.pfs = PfsGroup::Null;
        out.push(("no PFS".into(), spec));
        let mut spec = base();
        spec.settings.spd = vec![rule("10.100.0.0/24", &["10.200.0.0/24"])];
        out.push(("one SPD pair".into(), spec));
        let mut spec = base();
        spec.settings.spd = vec![
            rule("10.100.0.0/24", &["10.200.0.0/24", "10.200.1.0/24"]),
            rule("10.100.1.0/24", &["10.200.0.0/24", "10.200.1.0/24"]),
        ];
        out.push(("four SPD pairs".into(), spec));
        let mut spec = base();
        spec.settings.ike.sa_lifetime_seconds = *vpcd_types::limits::IKE_SA_LIFETIME_SECONDS.end();
        spec.settings.ipsec.sa_lifetime_seconds =
            *vpcd_types::limits::IPSEC_SA_LIFETIME_SECONDS.end();
        out.push(("longest lifetimes".into(), spec));
        // The same shapes (identities, PFS, SPD pairs, lifetimes) on IKEv2.
        let shapes: Vec<_> = out
            .iter()
            .filter(|(label, s)| {
                s.settings.ike.version == IkeVersion::V1
                    && !label.starts_with(&format!("{}:", IkeVersion::V1))
            })
            .cloned()
            .collect();
        for (label, mut spec) in shapes {
            spec.settings.ike.version = IkeVersion::V2;
            out.push((format!("IKEv2, {label}"), spec));
        }
        // The v2 defaults with the one change Libreswan needs.
        let mut spec = crate::test_support::spec_default();
        spec.settings.ike.dh_group = DhGroup::Group14;
        out.push(("v2 defaults, group14".into(), spec));
        let mut spec = base();
        spec.settings.ike.encryption = IkeEncryption::TripleDesCbc;
        spec.settings.ipsec.encryption = IpsecEncryption::Null;
        out.push(("3des IKE, ESP-NULL".into(), spec));
        out
    }
}

/// Libreswan's own programs judge the files: `readwriteconf` (its parser;
/// prints a message for what it refuses, exit status 0 either way) and
/// `algparse` (its algorithm tables), of Libreswan 4.10 (Debian 12) and
/// 5.2 (Debian 13), the two major versions the file is written for.
#[cfg(test)]
mod libreswan_programs {
    use std::path::{Path, PathBuf};

    use super::variants;
    use super::*;
    use crate::testbed::{
        libreswan5_programs, libreswan_command, libreswan_programs, LibreswanFiles,
    };

    /// Each Libreswan this machine has, by major version; a missing one is
    /// skipped with its reason (a failure under CI).
    fn installs(test: &str) -> Vec<(u8, PathBuf)> {
        let mut out = Vec::new();
        for (major, found) in [(4, libreswan_programs()), (5, libreswan5_programs())] {
            match found {
                Ok(p) => out.push((major, p)),
                Err(why) => vpcd_types::testing::skip(&format!("{test} (Libreswan {major})"), &why),
            }
        }
        out
    }

    fn run(dir: &Path, program: &str, args: &[&str]) -> (String, String) {
        let out = libreswan_command(dir, program).args(args).output().unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Every variant's file, through each version's parser: no message,
    /// and each conn read back with the file's values. 4.x prints every
    /// key (lifetimes in milliseconds, `ikev2=insist` as `yes`); 5.2's
    /// printer leaves out identities, subnets and yes/no values, so there
    /// only what it prints is compared (lifetimes in seconds).
    #[test]
    fn readwriteconf_accepts_every_generated_file() {
        let installs = installs("readwriteconf_accepts_every_generated_file");
        let tmp = tempfile::tempdir().unwrap();
        let libreswan = vendor("libreswan").unwrap();
        for (major, dir) in installs {
            let mut checked = 0;
            for (label, spec) in variants::all() {
                let text = match render(libreswan, &spec, None) {
                    Ok(t) => t,
                    Err(PeerConfigError::Unsupported(_)) => continue,
                    Err(e) => panic!("{label}: {e}"),
                };
                let files = LibreswanFiles::split(&text).unwrap();
                let conns = tmp.path().join("vpcd.conf");
                let conf = tmp.path().join("ipsec.conf");
                std::fs::write(&conns, &files.conns).unwrap();
                std::fs::write(&conf, files.ipsec_conf(&conns)).unwrap();
                let (out, messages) =
                    run(&dir, "readwriteconf", &["--config", conf.to_str().unwrap()]);
                assert_eq!(
                    messages, "",
                    "{label}: Libreswan {major}'s readwriteconf refuses\n{text}"
                );
                if spec.settings.ike.version == vpcd_types::IkeVersion::V1 {
                    assert!(out.contains("ikev1-policy"), "{label}: {out}");
                }
                readback(major, &label, &spec, &out);
                checked += 1;
            }
            assert!(
                checked >= 40,
                "Libreswan {major}: only {checked} variants were rendered"
            );
        }
    }

    /// What Libreswan `major` made of each conn, key by key.
    fn readback(major: u8, label: &str, spec: &TunnelSpec, out: &str) {
        let view = peer_view(spec);
        let ike = &spec.settings.ike;
        let ike_life = u64::from(ike.sa_lifetime_seconds.min(86_400));
        let sa_life = u64::from(spec.settings.ipsec.sa_lifetime_seconds.min(86_400));
        for (i, (local, remote)) in view.pairs.iter().enumerate() {
            let head = format!("conn vpcd-{}\n", i + 1);
            let block = out
                .split_once(&head)
                .map(|(_, rest)| rest.split("\nconn ").next().unwrap_or(rest))
                .unwrap_or_else(|| panic!("{label}: no {head} in\n{out}"));
            // The last conn ends the output without a newline.
            let block = format!("{block}\n");
            let mut want = vec![
                format!("ike={}\n", libreswan::ike_alg(spec)),
                format!("\tesp={}\n", libreswan::esp_alg(spec)),
                format!("\tleft={}\n", view.local_addr),
                format!("\tright={}\n", view.remote_addr),
                "\tauthby=secret\n".to_owned(),
                "auto=start\n".to_owned(),
            ];
            if major == 4 {
                let ikev2 = match ike.version {
                    vpcd_types::IkeVersion::V1 => "no",
                    vpcd_types::IkeVersion::V2 => "yes",
                };
                want.extend([
                    format!("\tikev2={ikev2}\n"),
                    format!("\tleftsubnet={local}\n"),
                    format!("\trightsubnet={remote}\n"),
                    format!("\tikelifetime={}\n", ike_life * 1000),
                    format!("\tsalifetime={}\n", sa_life * 1000),
                ]);
            } else {
                want.extend([
                    format!("\tikelifetime={ike_life}\n"),
                    format!("\tsalifetime={sa_life}\n"),
                ]);
            }
            // KiB read as 1024 bytes, as the gateway counts.
            want.push(format!(
                "ipsec-max-bytes={}\n",
                spec.settings.ipsec.sa_lifetime_traffic_bytes()
            ));
            for w in want {
                assert!(
                    block.contains(&w),
                    "{label}: Libreswan {major}: {w:?} not in\n{block}"
                );
            }
        }
        assert!(
            !out.contains(&format!("conn vpcd-{}\n", view.pairs.len() + 1)),
            "{label}: {out}"
        );
    }

    /// The table's Libreswan column, value by value and IKE version by
    /// version, against each version's algorithm parser.
    #[test]
    fn algparse_agrees_with_the_capability_table() {
        let installs = installs("algparse_agrees_with_the_capability_table");
        let libreswan = vendor("libreswan").unwrap();
        for (major, dir) in installs {
            for version in vpcd_types::IkeVersion::ALL {
                for s in Setting::all() {
                    let mut spec = variants::base();
                    spec.settings.ike.version = *version;
                    variants::apply(&mut spec, s);
                    let (proposal, pfs) = match s {
                        Setting::ExchangeMode(_) | Setting::IkeVersion(_) => continue,
                        Setting::IkeEncryption(_)
                        | Setting::IkeIntegrity(_)
                        | Setting::IkeDhGroup(_) => {
                            (format!("ike={}", libreswan::ike_alg(&spec)), false)
                        }
                        _ => (
                            format!("esp={}", libreswan::esp_alg(&spec)),
                            spec.settings.ipsec.pfs.group().is_some(),
                        ),
                    };
                    let v = match version {
                        vpcd_types::IkeVersion::V1 => "-v1",
                        vpcd_types::IkeVersion::V2 => "-v2",
                    };
                    let pfs = if pfs { "-pfs=yes" } else { "-pfs=no" };
                    let (out, err) = run(&dir, "algparse", &[v, pfs, &proposal]);
                    let parsed = format!("{out}{err}");
                    let accepted = !parsed.contains("ERROR");
                    assert_eq!(
                        accepted,
                        supports(libreswan, *version, s).is_ok(),
                        "Libreswan {major}, {version} {}={}: algparse says\n{parsed}",
                        s.param(),
                        s.value()
                    );
                }
            }
        }
    }
}
