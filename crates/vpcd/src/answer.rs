//! An API answer as the protocol adapters hand it to the HTTP layer: the
//! JSON text the client gets, and the code it is counted under.
//!
//! The adapters render straight to text: a v2 success writes its envelope
//! around a payload already rendered from its typed struct
//! ([`serde_json::value::RawValue`]), never through a `Value` tree, which
//! cost more than the read itself in a DescribeVpnConn profile (issue 12).
//! The code label is set where the answer is made, from the error table
//! (an [`ErrorCode`](crate::error::ErrorCode)'s v2 `codeDesc` or 3.0 code,
//! or [`SUCCESS`]), so no client text can become a metrics label.

use serde::Serialize;

use crate::metrics::SUCCESS;

/// A rendered answer.
pub(crate) struct Answer {
    body: Vec<u8>,
    code: &'static str,
}

impl Answer {
    /// `v` rendered, counted under `code` (a label from the error table).
    pub(crate) fn new(v: &impl Serialize, code: &'static str) -> Answer {
        match serde_json::to_vec(v) {
            Ok(body) => Answer { body, code },
            // Answers are structs of strings and numbers and maps with
            // string keys, which always render; should one ever not, the
            // client still gets JSON, and the log says why.
            Err(e) => {
                tracing::error!(error = %e, "an answer could not be rendered");
                Answer {
                    body: br#"{"error":"the answer could not be rendered"}"#.to_vec(),
                    code,
                }
            }
        }
    }

    /// A success.
    pub(crate) fn success(v: &impl Serialize) -> Answer {
        Answer::new(v, SUCCESS)
    }

    /// The code the answer is counted under.
    pub(crate) fn code(&self) -> &'static str {
        self.code
    }

    /// The JSON text.
    pub(crate) fn into_body(self) -> Vec<u8> {
        self.body
    }
}
