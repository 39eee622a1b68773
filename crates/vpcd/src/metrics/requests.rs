//! Request counters and latency, kept by the HTTP layer for every API
//! request, labelled with bounded values only: the protocol (`v2`, `v3`),
//! the action from the protocol's action table (`unknown` for anything
//! else, a missing one included), and the answer's code from the error
//! table (`Success`, a v2 `codeDesc` or a 3.0 `Error.Code`; `other` if an
//! envelope ever carried a code the table lacks). No client text, id or
//! secret can become a label value.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use serde_json::Value;

use crate::error::ErrorCode;
use crate::request_id::RequestInfo;

/// The label of a request whose action is not one of ours.
pub(crate) const UNKNOWN_ACTION: &str = "unknown";
/// The code label of a successful answer, in both protocols.
pub(crate) const SUCCESS: &str = "Success";
/// The code label of an answer whose code is not in the error table.
const OTHER: &str = "other";

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
    /// Count one answered request: `envelope` is the answer the client
    /// gets, `took` the time from its arrival to the answer.
    pub(crate) fn observe(
        &self,
        protocol: Protocol,
        info: &RequestInfo,
        envelope: &Value,
        took: Duration,
    ) {
        let action = info.action().unwrap_or(UNKNOWN_ACTION);
        let code = match protocol {
            Protocol::V2 => v2_code(envelope),
            Protocol::V3 => v3_code(envelope),
        };
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

/// A v2 answer's `codeDesc`, as the error table spells it.
fn v2_code(envelope: &Value) -> &'static str {
    match envelope["codeDesc"].as_str() {
        Some(SUCCESS) if envelope["code"] == 0 => SUCCESS,
        Some(desc) => ErrorCode::ALL
            .iter()
            .map(|c| c.code_desc())
            .find(|d| *d == desc)
            .unwrap_or(OTHER),
        None => OTHER,
    }
}

/// A 3.0 answer's `Error.Code` as the error table spells it, or `Success`.
fn v3_code(envelope: &Value) -> &'static str {
    let response = &envelope["Response"];
    match response.get("Error") {
        None if response.is_object() => SUCCESS,
        None => OTHER,
        Some(e) => {
            let code = e["Code"].as_str().unwrap_or_default();
            ErrorCode::ALL
                .iter()
                .map(|c| c.v3_code())
                .find(|c| *c == code)
                .unwrap_or(OTHER)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn codes_come_from_the_table_only() {
        assert_eq!(v2_code(&json!({"code": 0, "codeDesc": "Success"})), SUCCESS);
        assert_eq!(
            v2_code(&json!({"code": 4100, "codeDesc": "AuthFailure"})),
            "AuthFailure"
        );
        assert_eq!(
            v2_code(&json!({"code": 4000, "codeDesc": "vpc-12345678 secret"})),
            OTHER
        );
        assert_eq!(v2_code(&json!({})), OTHER);
        assert_eq!(v3_code(&json!({"Response": {"RequestId": "x"}})), SUCCESS);
        assert_eq!(
            v3_code(&json!({"Response": {"Error": {"Code": "AuthFailure.SignatureFailure"}}})),
            ErrorCode::AuthFailure.v3_code()
        );
        assert_eq!(
            v3_code(&json!({"Response": {"Error": {"Code": "made-up"}}})),
            OTHER
        );
        assert_eq!(v3_code(&json!(null)), OTHER);
    }

    #[test]
    fn unknown_actions_collapse_to_one_label() {
        let m = RequestMetrics::default();
        let info = RequestInfo::new();
        m.observe(
            Protocol::V2,
            &info,
            &json!({"code": 4000, "codeDesc": "InvalidAction"}),
            Duration::from_millis(3),
        );
        let known = RequestInfo::new();
        known.set_action("CreateVpc");
        m.observe(
            Protocol::V3,
            &known,
            &json!({"Response": {"RequestId": "r"}}),
            Duration::from_millis(3),
        );
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
