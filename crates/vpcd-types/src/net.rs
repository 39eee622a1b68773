//! Network values: CIDRs as the caller wrote them, FQDN identities, and the
//! rules for a peer gateway's public address.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// A CIDR block that remembers its original spelling.
///
/// The seed's own example sends `10.56.20.1/24` (host bits set) and expects
/// it echoed back unchanged, so the text is kept for answers while
/// [`Cidr::net`] (host bits cleared) is what every rule and the data plane use.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Cidr {
    given: String,
    net: IpNet,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected an IPv4 CIDR block such as 10.0.0.0/16")]
pub struct CidrError;

impl Cidr {
    /// The network with host bits cleared.
    pub fn net(&self) -> IpNet {
        self.net
    }
    /// The text exactly as the caller sent it.
    pub fn as_given(&self) -> &str {
        &self.given
    }
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.net.contains(&other.net) || other.net.contains(&self.net)
    }
    pub fn contains(&self, other: &Cidr) -> bool {
        self.net.contains(&other.net)
    }
}

impl FromStr for Cidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Self, CidrError> {
        // Only IPv4 is served by the v2 API. An explicit prefix length is
        // required: a bare address is a common mistake worth reporting.
        if !s.contains('/') || s.len() > 18 {
            return Err(CidrError);
        }
        match s.parse::<IpNet>() {
            Ok(net @ IpNet::V4(_)) => Ok(Cidr {
                given: s.to_owned(),
                net: net.trunc(),
            }),
            _ => Err(CidrError),
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.given)
    }
}
impl fmt::Debug for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cidr({})", self.given)
    }
}

impl serde::Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.given)
    }
}
impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A fully qualified domain name used as an IKE identity.
///
/// Only letters, digits, `-` and `.` in labels of 1-63 characters, at most
/// 253 characters in all. This alphabet is what keeps an FQDN from carrying
/// syntax into strongSwan or into a generated device configuration.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Fqdn(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a domain name of letters, digits, '-' and '.', at most 253 characters")]
pub struct FqdnError;

impl Fqdn {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Fqdn {
    type Err = FqdnError;
    fn from_str(s: &str) -> Result<Self, FqdnError> {
        let s = s.strip_suffix('.').unwrap_or(s);
        if s.is_empty() || s.len() > 253 {
            return Err(FqdnError);
        }
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        // A dotted quad would be read back as an address identity.
        if !s.split('.').all(label_ok) || s.parse::<IpAddr>().is_ok() {
            return Err(FqdnError);
        }
        Ok(Fqdn(s.to_owned()))
    }
}

impl fmt::Display for Fqdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for Fqdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fqdn({})", self.0)
    }
}
impl serde::Serialize for Fqdn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}
impl<'de> serde::Deserialize<'de> for Fqdn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether an address can be a peer gateway's public address: IPv4, and not
/// multicast, loopback, link-local (169.254/16), unspecified or broadcast.
pub fn is_valid_peer_address(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => {
            !(v4.is_multicast()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast())
        }
        IpAddr::V6(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_keeps_spelling_and_truncates() {
        let c: Cidr = "10.56.20.1/24".parse().unwrap();
        assert_eq!(c.as_given(), "10.56.20.1/24");
        assert_eq!(c.net().to_string(), "10.56.20.0/24");
    }

    #[test]
    fn cidr_rejects() {
        for bad in ["10.0.0.1", "10.0.0.0/33", "::/0", "abc", "10.0.0.0/8/8", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn fqdn_alphabet() {
        assert!("vpn.example.com".parse::<Fqdn>().is_ok());
        for bad in [
            "a\"b.com", "a b", "x{y}", "a#b", "a\nb", "1.2.3.4", "", "-a.com",
        ] {
            assert!(bad.parse::<Fqdn>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn peer_addresses() {
        for bad in [
            "127.0.0.1",
            "224.0.0.1",
            "169.254.1.1",
            "0.0.0.0",
            "255.255.255.255",
        ] {
            assert!(!is_valid_peer_address(bad.parse().unwrap()), "{bad}");
        }
        assert!(is_valid_peer_address("198.51.100.7".parse().unwrap()));
    }

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_overlap_and_containment() {
        let vpc = cidr("10.0.0.0/16");
        let inside = cidr("10.0.5.7/24");
        let beside = cidr("10.1.0.0/16");
        assert!(vpc.contains(&inside));
        assert!(vpc.contains(&vpc));
        assert!(!inside.contains(&vpc));
        assert!(!vpc.contains(&beside));
        // Overlap is symmetric: either one containing the other.
        assert!(vpc.overlaps(&inside));
        assert!(inside.overlaps(&vpc));
        assert!(!vpc.overlaps(&beside));
        assert!(!beside.overlaps(&vpc));
    }

    #[test]
    fn cidr_length_bound() {
        // 18 characters: the longest IPv4 CIDR in its usual spelling.
        assert_eq!(cidr("255.255.255.255/32").net().prefix_len(), 32);
        assert!("255.255.255.255/032".parse::<Cidr>().is_err());
        assert!("10.0.0.0/16".repeat(100).parse::<Cidr>().is_err());
    }

    #[test]
    fn cidr_formats_as_given() {
        let c = cidr("10.56.20.1/24");
        assert_eq!(c.to_string(), "10.56.20.1/24");
        assert_eq!(format!("{c:?}"), "Cidr(10.56.20.1/24)");
    }

    #[test]
    fn fqdn_length_bound_and_spelling() {
        let label = |c: char, n: usize| c.to_string().repeat(n);
        // 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 characters.
        let longest = format!(
            "{}.{}.{}.{}",
            label('a', 63),
            label('b', 63),
            label('c', 63),
            label('d', 61)
        );
        assert_eq!(longest.len(), 253);
        assert_eq!(longest.parse::<Fqdn>().unwrap().as_str(), longest);
        let too_long = format!("{longest}d");
        assert!(too_long.parse::<Fqdn>().is_err());
        assert!(format!("{}.x", label('a', 64)).parse::<Fqdn>().is_err());
        // A trailing dot is dropped.
        let f: Fqdn = "gw.example.com.".parse().unwrap();
        assert_eq!(f.as_str(), "gw.example.com");
        assert_eq!(f.to_string(), "gw.example.com");
        assert_eq!(format!("{f:?}"), "Fqdn(gw.example.com)");
    }
}
