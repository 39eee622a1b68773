//! Request counters and latency, kept by the HTTP layer for every API
//! request, labelled with bounded values only: the protocol (`v2`, `v3`),
//! the action from the protocol's action table (`unknown` for anything
//! else, a missing one included), and the answer's code from the error
//! table (`Success`, a v2 `codeDesc` or a 3.0 `Error.Code`), set by the
//! adapter that made the answer (`crate::answer`). Labels are `&'static str`,
//! so no client text, id or secret can become a label value.

use std::time::Duration;

#[cfg(test)]
use crate::error::ErrorCode;
use crate::request_id::RequestInfo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

/// The label of a request whose action is not one of ours.
pub(crate) const UNKNOWN_ACTION: &str = "unknown";
/// The code label of a successful answer, in both protocols.
pub(crate) const SUCCESS: &str = "Success";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    V2,
    V3,
}

impl Protocol {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Protocol::V2 => "v2",
            Protocol::V3 => "v3",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    protocol: &'static str,
    action: &'static str,
    code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct LatencyLabels {
    protocol: &'static str,
    action: &'static str,
}

/// `vpcd_requests_total` and `vpcd_request_duration_seconds`.
#[derive(Debug, Clone)]
pub(crate) struct RequestMetrics {
    pub(super) requests: Family<RequestLabels, Counter>,
    pub(super) latency: Family<LatencyLabels, Histogram>,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        RequestMetrics {
            requests: Family::default(),
            // 1 ms to about 16 s, doubling: a read answers in a few
            // milliseconds, a write waits for its commit.
            latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 15))
            }),
        }
    }
}

impl RequestMetrics {
    /// Count one answered request: `code` is its answer's code label (from
    /// the error table, or [`SUCCESS`]), `took` the time from its arrival
    /// to the answer.
    pub(crate) fn observe(
        &self,
        protocol: Protocol,
        info: &RequestInfo,
        code: &'static str,
        took: Duration,
    ) {
        let action = info.action().unwrap_or(UNKNOWN_ACTION);
        self.requests
            .get_or_create(&RequestLabels {
                protocol: protocol.label(),
                action,
                code,
            })
            .inc();
        self.latency
            .get_or_create(&LatencyLabels {
                protocol: protocol.label(),
                action,
            })
            .observe(took.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_actions_collapse_to_one_label() {
        let m = RequestMetrics::default();
        let info = RequestInfo::new();
        m.observe(
            Protocol::V2,
            &info,
            ErrorCode::InvalidAction.code_desc(),
            Duration::from_millis(3),
        );
        let known = RequestInfo::new();
        known.set_action("CreateVpc");
        m.observe(Protocol::V3, &known, SUCCESS, Duration::from_millis(3));
        let mut text = String::new();
        let mut reg = prometheus_client::registry::Registry::default();
        reg.register("requests", "", m.requests.clone());
        prometheus_client::encoding::text::encode(&mut text, &reg).unwrap();
        assert!(
            text.contains(
                r#"requests_total{protocol="v2",action="unknown",code="InvalidAction"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"requests_total{protocol="v3",action="CreateVpc",code="Success"} 1"#),
            "{text}"
        );
    }
}
