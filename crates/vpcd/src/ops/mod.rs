//! The API operations, shared by every wire protocol.
//!
//! Each operation takes a typed request (built by a protocol adapter from
//! its wire format) and the caller's `Scope`, calls the store, and returns
//! a typed result that the adapter renders. Operations know no wire format:
//! their errors name a [`Field`](crate::error::Field), which each protocol
//! spells its own way.
//!
//! The domain rules every protocol needs live here once, as parsers the
//! adapters call on wire values ([`Name::parse`], [`vpc::parse_cidr`],
//! [`conn_settings::parse_psk`], ...) and as checks the operations make on
//! whole requests (a subnet inside its VPC, a peer range outside it, an
//! identity type and its value).
//!
//! # Layout
//! - [`vpc`], [`vpn_gw`], [`user_gw`], [`vpn_conn`], [`task`],
//!   [`peer_config`]: one file per resource, each with its requests,
//!   results and operations.
//! - [`conn_settings`]: a connection's IKE/IPsec/SPD settings: the typed
//!   change a request carries and how it resolves against defaults or the
//!   current settings.
//! - [`diagnostics`]: why a connection's tunnel is down, its traffic and
//!   its up/down history (a vpcd extension, `DescribeVpnConnDiagnostics`).
//! - [`select`]: Describe requests with a predicate the store cannot
//!   express (API 3.0's `Filters`).

use std::net::IpAddr;

use vpcd_store::Page;

use crate::error::{ApiError, ApiResult, Field};

pub(crate) mod conn_settings;
pub(crate) mod diagnostics;
pub(crate) mod peer_config;
pub(crate) mod select;
pub(crate) mod task;
pub(crate) mod user_gw;
pub(crate) mod vpc;
pub(crate) mod vpn_conn;
pub(crate) mod vpn_gw;

/// One page of a Describe operation's matches.
pub(crate) struct List<T> {
    /// All matches, not just this page.
    pub(crate) total: u64,
    pub(crate) items: Vec<T>,
}

impl<T> List<T> {
    /// A page as the store answers it; a failure names `field`.
    fn from_store(page: vpcd_store::Result<(u64, Vec<T>)>, field: Field) -> ApiResult<List<T>> {
        let (total, items) = page.map_err(|e| ApiError::from_store(e, field))?;
        Ok(List { total, items })
    }
}

/// A Describe request: which resources, and which page of them.
pub(crate) struct Describe<F> {
    pub(crate) filter: F,
    pub(crate) page: Page,
}

pub(crate) const NAME_MAX: usize = 60;

/// A resource name: 1-60 characters, no control characters. Names never
/// reach a configuration file unescaped, but a newline in a name is always a
/// mistake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Name(String);

impl Name {
    pub(crate) fn parse(value: &str) -> Result<Name, String> {
        let len = value.chars().count();
        if len == 0 || len > NAME_MAX {
            return Err(format!(
                "must be 1 to {NAME_MAX} characters long (got {len})"
            ));
        }
        if value.chars().any(char::is_control) {
            return Err("must not contain control characters".to_owned());
        }
        Ok(Name(value.to_owned()))
    }

    pub(crate) fn into_string(self) -> String {
        self.0
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// An IPv4 address (the only family the API serves).
pub(crate) fn parse_ipv4(value: &str) -> Result<IpAddr, &'static str> {
    value
        .parse::<IpAddr>()
        .ok()
        .filter(IpAddr::is_ipv4)
        .ok_or("expected an IPv4 address")
}

/// A name filter of a Describe operation (substring match).
pub(crate) fn parse_name_filter(value: &str) -> Result<String, String> {
    if value.chars().count() > NAME_MAX {
        return Err(format!("must be at most {NAME_MAX} characters long"));
    }
    // No stored name has one, and some databases refuse NUL in text.
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(Name::parse(&"x".repeat(60)).is_ok());
        assert!(Name::parse(&"é".repeat(60)).is_ok());
        assert_eq!(
            Name::parse(&"x".repeat(61)).unwrap_err(),
            "must be 1 to 60 characters long (got 61)"
        );
        assert!(Name::parse("a\nb").is_err());
        assert!(Name::parse("").is_err());
        assert!(parse_name_filter(&"x".repeat(61)).is_err());
        assert!(parse_name_filter("a\u{0}").is_err());
        assert_eq!(parse_name_filter("ab").unwrap(), "ab");
    }
}
