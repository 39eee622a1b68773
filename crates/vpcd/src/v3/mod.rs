//! The Tencent Cloud API 3.0 adapter (service `vpc`, version `2017-03-12`):
//! `POST /` with a JSON body and `X-TC-*` headers (TC3-HMAC-SHA256), or GET
//! and form POST with the common parameters among the form fields
//! (`HmacSHA1`/`HmacSHA256`); answers are `{"Response": {...}}`.
//!
//! For each action it parses the request into the operation's typed request,
//! runs the operation (`crate::ops`, the same ones v2 runs, so both
//! protocols see one world), and renders the typed result as the 3.0 models
//! expect it. It holds no business rule.
//!
//! # Layout
//! - `protocol`: common parameters (headers or form fields), both
//!   signature styles, Timestamp window, replay protection, RequestId, the
//!   envelope.
//! - `params`: the action parameters as one tree (from JSON or flattened
//!   form), typed getters that record what they read, `UnknownParameter`
//!   for the rest.
//! - [`Action`]: the table of routed actions (name, whether it changes
//!   anything, its handler); `dispatch` runs a `Handler`.
//! - `common`: what several resources share: ids, names, paging, `Filters`,
//!   `Tags`, times.
//! - `vpc`, `vpn_gw`, `customer_gw`, `vpn_conn`, `task`, `peer_config`: one
//!   file per resource: each action's handler (parse, run, render);
//!   `diagnostics`: the vpcd extension DescribeVpnConnDiagnostics.
//! - `tunnel`: a connection's IKE/IPsec/SPD fields and the newer tunnel
//!   options, mapped onto what vpcd carries out, in one place.

use std::future::Future;

use serde::Serialize;
use serde_json::{Map, Value};
use vpcd_store::Scope;

use crate::api::ApiState;
use crate::error::{printable, ApiError, ApiResult, ErrorCode};
use params::{Obj, Params};

mod common;
mod customer_gw;
mod diagnostics;
mod params;
mod peer_config;
pub(crate) mod protocol;
mod task;
mod tunnel;
mod vpc;
mod vpn_conn;
mod vpn_gw;

/// The path 3.0 is served on.
pub(crate) const PATH: &str = "/";
/// The API version served.
pub(crate) const VERSION: &str = "2017-03-12";
/// The TC3 credential scope's service.
pub(crate) const SERVICE: &str = "vpc";

/// What an action may do: read only, or change something. A signed
/// TC3 request that changes something is accepted once (see `protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Read,
    Write,
}

/// Declares [`Action`] and `dispatch` from one table, so the list of routed
/// actions, their effect and their handlers exist once.
macro_rules! actions {
    ($($name:ident => $effect:ident, $handler:ty;)+) => {
        /// Every routed 3.0 action. `docs/api3.md` documents each one (a test
        /// checks it).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Action {
            $($name),+
        }

        impl Action {
            pub const ALL: &'static [Action] = &[$(Action::$name),+];

            /// The `X-TC-Action` / `Action` value.
            pub fn name(self) -> &'static str {
                match self {
                    $(Action::$name => stringify!($name)),+
                }
            }

            /// Whether the action changes anything.
            pub fn writes(self) -> bool {
                match self {
                    $(Action::$name => Effect::$effect == Effect::Write),+
                }
            }
        }

        async fn dispatch(
            api: &ApiState,
            ctx: &Ctx,
            action: Action,
            p: &Params,
        ) -> ApiResult<Map<String, Value>> {
            match action {
                $(Action::$name => run::<$handler>(api, ctx, p).await),+
            }
        }
    };
}

actions! {
    CreateVpc => Write, vpc::Create;
    DescribeVpcs => Read, vpc::Describe;
    ModifyVpcAttribute => Write, vpc::Modify;
    DeleteVpc => Write, vpc::Delete;
    CreateVpnGateway => Write, vpn_gw::Create;
    DescribeVpnGateways => Read, vpn_gw::Describe;
    ModifyVpnGatewayAttribute => Write, vpn_gw::Modify;
    DeleteVpnGateway => Write, vpn_gw::Delete;
    CreateCustomerGateway => Write, customer_gw::Create;
    DescribeCustomerGateways => Read, customer_gw::Describe;
    ModifyCustomerGatewayAttribute => Write, customer_gw::Modify;
    DeleteCustomerGateway => Write, customer_gw::Delete;
    DescribeCustomerGatewayVendors => Read, peer_config::Vendors;
    CreateVpnConnection => Write, vpn_conn::Create;
    DescribeVpnConnections => Read, vpn_conn::Describe;
    ModifyVpnConnectionAttribute => Write, vpn_conn::Modify;
    DeleteVpnConnection => Write, vpn_conn::Delete;
    ResetVpnConnection => Write, vpn_conn::Reset;
    DownloadCustomerGatewayConfiguration => Read, peer_config::Download;
    DescribeVpcTaskResult => Read, task::Describe;
    DescribeVpnConnDiagnostics => Read, diagnostics::Describe;
}

impl Action {
    fn parse(name: &str) -> ApiResult<Action> {
        Action::ALL
            .iter()
            .copied()
            .find(|a| a.name() == name)
            .ok_or_else(|| {
                ApiError::wire(
                    ErrorCode::InvalidAction,
                    "Action",
                    format!(
                        "`{}` is not an action vpcd serves; see docs/api3.md",
                        printable(name)
                    ),
                )
            })
    }
}

/// Who is calling, and which request this is.
pub(crate) struct Ctx {
    pub(crate) scope: Scope,
    /// This request's RequestId, which also names the task an asynchronous
    /// action starts (DescribeVpcTaskResult's `TaskId`).
    pub(crate) request_id: String,
}

/// One action: its request parsed from the parameters, then run.
pub(crate) trait Handler: Sized + Send {
    /// Parse the request. Every field the action takes is read here (see
    /// `params`); nothing is written.
    fn parse(p: &Obj<'_>) -> ApiResult<Self>;

    /// Run the operation and render the answer's fields (without
    /// `RequestId`).
    fn run(
        self,
        api: &ApiState,
        ctx: &Ctx,
    ) -> impl Future<Output = ApiResult<Map<String, Value>>> + Send;
}

/// Parse, refuse unknown fields, and only then run: an action never writes
/// for a request that has a field it does not take.
async fn run<H: Handler>(api: &ApiState, ctx: &Ctx, p: &Params) -> ApiResult<Map<String, Value>> {
    let request = H::parse(&p.root())?;
    p.finish()?;
    request.run(api, ctx).await
}

/// An answer's fields, from a struct that serializes as an object.
fn answer(v: impl Serialize) -> ApiResult<Map<String, Value>> {
    match serde_json::to_value(v).map_err(ApiError::internal)? {
        Value::Object(m) => Ok(m),
        other => Err(ApiError::internal(format!(
            "an answer is not an object: {other}"
        ))),
    }
}

/// An answer with nothing but its RequestId.
fn empty() -> ApiResult<Map<String, Value>> {
    Ok(Map::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse_by_name() {
        for a in Action::ALL {
            assert_eq!(Action::parse(a.name()), Ok(*a));
        }
        assert_eq!(
            Action::parse("AddVpnConnEx").unwrap_err().code,
            ErrorCode::InvalidAction
        );
        assert!(Action::CreateVpnConnection.writes());
        assert!(!Action::DescribeVpnConnections.writes());
        assert!(!Action::DownloadCustomerGatewayConfiguration.writes());
    }
}
