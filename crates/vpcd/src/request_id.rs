//! One id per API request, and what the HTTP layer learns about the request
//! while a protocol handles it.
//!
//! The HTTP layer makes a [`RequestInfo`] for every API request and runs the
//! request inside its [`RequestInfo::span`], so every log line the request
//! causes carries `request_id` (in the JSON log format, in the line's
//! `span` object). API 3.0 answers with the same id as `Response.RequestId`
//! (and labels the task an asynchronous action starts with it), so an
//! operator can go from a client's answer straight to its log lines.
//!
//! The protocol adapters note which action the request asked for
//! ([`RequestInfo::set_action`]); the HTTP layer counts the request under
//! it (`metrics`). Only names from the action tables are kept, never the
//! client's text, so the set of values is bounded.

use std::fmt;
use std::sync::OnceLock;

/// A request's id: a random (version 4) UUID in lower-case hex, as Tencent
/// Cloud's own RequestIds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestId(String);

impl RequestId {
    pub(crate) fn new() -> RequestId {
        let mut b: [u8; 16] = rand::random();
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
        RequestId(format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        ))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One API request as the HTTP layer follows it.
#[derive(Debug)]
pub(crate) struct RequestInfo {
    pub(crate) id: RequestId,
    action: OnceLock<&'static str>,
}

impl RequestInfo {
    pub(crate) fn new() -> RequestInfo {
        RequestInfo {
            id: RequestId::new(),
            action: OnceLock::new(),
        }
    }

    /// The span every log line of this request is written in.
    pub(crate) fn span(&self, protocol: &'static str) -> tracing::Span {
        tracing::info_span!("request", request_id = %self.id, protocol)
    }

    /// Note the action the request names: a name from an action table
    /// (`Action::name`). The first one noted stays.
    pub(crate) fn set_action(&self, name: &'static str) {
        let _ = self.action.set(name);
    }

    /// The action noted, if the request named a known one.
    pub(crate) fn action(&self) -> Option<&'static str> {
        self.action.get().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_v4_uuids() {
        let a = RequestId::new();
        let a = a.as_str();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
        assert!(a
            .bytes()
            .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_ne!(a, RequestId::new().as_str());
    }

    #[test]
    fn the_first_action_noted_stays() {
        let info = RequestInfo::new();
        assert_eq!(info.action(), None);
        info.set_action("CreateVpc");
        info.set_action("DeleteVpc");
        assert_eq!(info.action(), Some("CreateVpc"));
    }
}
