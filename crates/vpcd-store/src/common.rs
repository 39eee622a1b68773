//! Engine-independent pieces shared by the SQLite and PostgreSQL engines:
//! the rules themselves are decided here once, the SQL lives in the engines.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::{Result, StoreError};

/// Cluster nodes not seen for this long are forgotten by `heartbeat`.
pub(crate) const CLUSTER_NODE_FORGET_SECS: i64 = 24 * 3600;
/// Suffixes tried by `ensure_gateway_node` for a free default name.
pub(crate) const NODE_NAME_ATTEMPTS: u32 = 1000;

/// A gateway node's address list as stored: a JSON array of strings.
pub(crate) fn encode_addresses(addresses: &[IpAddr]) -> String {
    let text: Vec<String> = addresses.iter().map(IpAddr::to_string).collect();
    serde_json::Value::from(text).to_string()
}

pub(crate) fn decode_addresses(text: &str) -> Result<Vec<IpAddr>> {
    let corrupt = || StoreError::Backend("malformed gateway node addresses in the database".into());
    let list: Vec<String> = serde_json::from_str(text).map_err(|_| corrupt())?;
    list.iter()
        .map(|a| a.parse().map_err(|_| corrupt()))
        .collect()
}

/// The address a new gateway on a node gets: the one the fewest of the
/// node's gateways use (`used`: gateways per address), ties broken by the
/// lowest address. `None` when the node has no address.
pub(crate) fn least_used_address(
    addresses: &[IpAddr],
    used: &HashMap<IpAddr, i64>,
) -> Option<IpAddr> {
    addresses
        .iter()
        .min_by_key(|a| (used.get(a).copied().unwrap_or(0), **a))
        .copied()
}

/// The name `ensure_gateway_node` gives a node it creates: `local` for a
/// UNIX socket, the host of a `tcp://host:port` URI otherwise.
pub(crate) fn default_node_name(vici: &str) -> String {
    let rest = match vici.split_once("://") {
        Some(("unix", _)) | None => return "local".to_owned(),
        Some((_, rest)) => rest,
    };
    let host = rest.split('/').next().unwrap_or("");
    // `[v6]:port`, `host:port` or a bare host.
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    let clean: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if clean.is_empty() {
        "local".to_owned()
    } else {
        clean
    }
}

/// `base` for the first attempt, then `base-2`, `base-3`, ...
pub(crate) fn numbered_name(base: &str, n: u32) -> String {
    if n <= 1 {
        base.to_owned()
    } else {
        format!("{base}-{n}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names() {
        assert_eq!(default_node_name("unix:///var/run/charon.vici"), "local");
        assert_eq!(default_node_name("tcp://192.0.2.10:4502"), "192.0.2.10");
        assert_eq!(default_node_name("tcp://[2001:db8::1]:4502"), "2001-db8--1");
        assert_eq!(
            default_node_name("tcp://gw1.example.com"),
            "gw1.example.com"
        );
        assert_eq!(default_node_name("/var/run/charon.vici"), "local");
        assert_eq!(numbered_name("local", 1), "local");
        assert_eq!(numbered_name("local", 3), "local-3");
    }

    #[test]
    fn least_used_then_lowest() {
        let a: IpAddr = "198.51.100.9".parse().unwrap();
        let b: IpAddr = "198.51.100.8".parse().unwrap();
        let mut used = HashMap::new();
        assert_eq!(least_used_address(&[a, b], &used), Some(b));
        used.insert(b, 1);
        assert_eq!(least_used_address(&[a, b], &used), Some(a));
        used.insert(a, 1);
        assert_eq!(least_used_address(&[a, b], &used), Some(b));
        assert_eq!(least_used_address(&[], &used), None);
    }

    #[test]
    fn addresses_round_trip() {
        let list: Vec<IpAddr> = vec!["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()];
        assert_eq!(decode_addresses(&encode_addresses(&list)).unwrap(), list);
        assert!(decode_addresses("[\"nope\"]").is_err());
    }
}
