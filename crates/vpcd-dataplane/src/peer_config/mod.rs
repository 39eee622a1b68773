//! Configuration for the customer's device: the other end of a tunnel,
//! written from the peer's point of view (local and remote swapped).
//!
//! Used by DescribeUserGwVendor ([`vendors`]) and GetVpnConnConfig
//! ([`render`]).
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
use vpcd_types::{Identity, IkeVersion, TunnelSpec};

use crate::strongswan::render;

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
        software: "Libreswan 4.x (ipsec.conf)",
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
    /// A setting the target device cannot express.
    #[error("{param}: {reason}")]
    Unsupported {
        param: &'static str,
        reason: &'static str,
    },
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
    if vendor.kind != Kind::StrongSwan && spec.settings.ike.version == IkeVersion::V2 {
        return Err(PeerConfigError::Unsupported {
            param: "IKESet.ikeVersion",
            reason: "this device's configuration covers IKEv1 tunnels only",
        });
    }
    match vendor.kind {
        Kind::StrongSwan => Ok(strongswan::strongswan(spec)),
        Kind::Libreswan => libreswan::libreswan(spec),
        Kind::CiscoIos => cisco::cisco(spec, interface_name.unwrap_or("GigabitEthernet0/0")),
        Kind::JuniperSrx => juniper::juniper(spec, interface_name.unwrap_or("ge-0/0/0.0")),
    }
}

/// A value API 3.0 added that a device file does not cover (yet).
fn not_covered(param: &'static str) -> PeerConfigError {
    PeerConfigError::Unsupported {
        param,
        reason: "this value is not covered by this device's configuration",
    }
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
    /// file that carries one (Cisco and Junos count kilobytes of 1024 bytes).
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
            let text = render(vendor("libreswan").unwrap(), &with_psk(psk), None).unwrap();
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
        for key in ["libreswan", "cisco", "juniper"] {
            let e = render(vendor(key).unwrap(), &s, None).unwrap_err();
            assert!(
                e.to_string().starts_with("IKESet.ikeVersion:"),
                "{key}: {e}"
            );
        }
        // IKEv1 with an AES-GCM ESP: refused by field, not mistranslated.
        let mut s = spec_default();
        s.settings.ipsec.encryption = vpcd_types::IpsecEncryption::Aes128Gcm128;
        for key in ["libreswan", "cisco", "juniper"] {
            let e = render(vendor(key).unwrap(), &s, None).unwrap_err();
            assert!(
                e.to_string().starts_with("IPsecSet.encryptAlgorithm:"),
                "{key}: {e}"
            );
        }
    }

    #[test]
    fn libreswan_refuses_what_it_cannot_do() {
        let mut s = spec_default();
        s.settings.ike.encryption = IkeEncryption::DesCbc;
        let e = render(vendor("libreswan").unwrap(), &s, None).unwrap_err();
        assert!(e.to_string().starts_with("IKESet.propoEncryAlgorithm:"));
    }
}
