//! The Tencent Cloud VPC API v2 adapter: `Action=` and flat `key=value`
//! parameters in, the v2 JSON envelope out.
//!
//! For each action it parses the parameters into the operation's typed
//! request, runs the operation (`crate::ops`), and renders the typed
//! result exactly as v2 clients expect it. It holds no business rule.
//!
//! # Layout
//! - `protocol`: common parameters, signature, Timestamp window, Nonce
//!   replay, and the envelope.
//! - `params`: flat parameter decoding (repeats, arrays, nested-set
//!   spellings, typed getters).
//! - [`Action`]: the table of routed actions; `dispatch` maps each to its
//!   adapter.
//! - `vpc`, `vpn_gw`, `user_gw`, `vpn_conn`, `task`, `peer_config`,
//!   `diagnostics` (the vpcd extension DescribeVpnConnDiagnostics): one file
//!   per resource: parse each action's parameters, render its result.
//!   `conn_settings` parses a connection's IKE/IPsec/SPD parameters.

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use vpcd_store::{Order, Page, Scope, VpcRef};
use vpcd_types::{Cidr, VpcId, VpcRowId};

use crate::api::ApiState;
use crate::clock::format_utc as format_time;
use crate::error::{printable, ApiError, ApiResult, ErrorCode};
use crate::ops::parse_name_filter;
pub use params::Params;
pub(crate) use vpn_conn::DEFAULTS as CONN_DEFAULTS;

mod conn_settings;
mod diagnostics;
mod params;
mod peer_config;
pub(crate) mod protocol;
mod task;
mod user_gw;
mod vpc;
mod vpn_conn;
mod vpn_gw;

/// The path v2 is served on.
pub(crate) const PATH: &str = "/v2/index.php";

/// Declares [`Action`] from one list of names: the enum, its names, and
/// [`Action::ALL`], so the list of routed actions exists once.
macro_rules! actions {
    ($($name:ident),+ $(,)?) => {
        /// Every routed v2 action. `docs/actions.md` documents each one (a
        /// test checks it).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Action {
            $($name),+
        }

        impl Action {
            pub const ALL: &'static [Action] = &[$(Action::$name),+];

            /// The `Action=` value.
            pub fn name(self) -> &'static str {
                match self {
                    $(Action::$name => stringify!($name)),+
                }
            }
        }
    };
}

actions! {
    CreateVpc,
    DescribeVpcEx,
    DeleteVpc,
    RunVpnGw,
    DescribeVpnGw,
    ModifyVpnGw,
    DeleteVpnGw,
    AddUserGw,
    DescribeUserGw,
    ModifyUserGw,
    DeleteUserGw,
    AddVpnConnEx,
    DescribeVpnConn,
    ModifyVpnConnEx,
    DeleteVpnConn,
    ResetVpnConnSA,
    DescribeVpcTaskResult,
    DescribeUserGwVendor,
    GetVpnConnConfig,
    DescribeVpnConnDiagnostics,
}

impl Action {
    /// Whether the action changes anything (its Nonce is then recorded
    /// durably before it runs: see `crate::replay`).
    pub(crate) fn writes(self) -> bool {
        use Action::*;
        !matches!(
            self,
            DescribeVpcEx
                | DescribeVpnGw
                | DescribeUserGw
                | DescribeVpnConn
                | DescribeVpcTaskResult
                | DescribeUserGwVendor
                | GetVpnConnConfig
                | DescribeVpnConnDiagnostics
        )
    }

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
                        "`{}` is not an action vpcd serves; see docs/actions.md",
                        printable(name)
                    ),
                )
            })
    }
}

/// Run one authenticated action (also the console's way into the API's
/// decoding and operations, see `crate::console::forms`).
pub(crate) async fn dispatch(
    api: &ApiState,
    scope: &Scope,
    action: Action,
    p: &Params,
) -> ApiResult<Reply> {
    use Action::*;
    match action {
        CreateVpc => vpc::create(api, scope, p).await,
        DescribeVpcEx => vpc::describe(api, scope, p).await,
        DeleteVpc => vpc::delete(api, scope, p).await,
        RunVpnGw => vpn_gw::run(api, scope, p).await,
        DescribeVpnGw => vpn_gw::describe(api, scope, p).await,
        ModifyVpnGw => vpn_gw::modify(api, scope, p).await,
        DeleteVpnGw => vpn_gw::delete(api, scope, p).await,
        AddUserGw => user_gw::add(api, scope, p).await,
        DescribeUserGw => user_gw::describe(api, scope, p).await,
        ModifyUserGw => user_gw::modify(api, scope, p).await,
        DeleteUserGw => user_gw::delete(api, scope, p).await,
        AddVpnConnEx => vpn_conn::add(api, scope, p).await,
        DescribeVpnConn => vpn_conn::describe(api, scope, p).await,
        ModifyVpnConnEx => vpn_conn::modify(api, scope, p).await,
        DeleteVpnConn => vpn_conn::delete(api, scope, p).await,
        ResetVpnConnSA => vpn_conn::reset(api, scope, p).await,
        DescribeVpcTaskResult => task::describe(api, scope, p).await,
        DescribeUserGwVendor => peer_config::vendors(),
        GetVpnConnConfig => peer_config::config(api, scope, p).await,
        DescribeVpnConnDiagnostics => diagnostics::describe(api, scope, p).await,
    }
}

/// Where the payload goes in the envelope (reference §4). The payload is
/// rendered when the reply is made, straight from its typed struct
/// (`crate::answer` says why).
pub(crate) enum Reply {
    /// `"data": {...}`
    Data(Box<RawValue>),
    /// `"totalCount": n, "data": [...]`
    List {
        total: u64,
        items: Vec<Box<RawValue>>,
    },
    /// Fields beside `code`/`message`.
    TopLevel(Map<String, Value>),
}

impl Reply {
    fn data(v: impl Serialize) -> ApiResult<Reply> {
        Ok(Reply::Data(to_json(v)?))
    }

    fn list<I: Serialize>(total: u64, items: impl Iterator<Item = I>) -> ApiResult<Reply> {
        let items = items.map(to_json).collect::<ApiResult<_>>()?;
        Ok(Reply::List { total, items })
    }

    /// A struct's fields beside `code`/`message`.
    fn top_level(v: impl Serialize) -> ApiResult<Reply> {
        match serde_json::to_value(v).map_err(ApiError::internal)? {
            Value::Object(m) => Ok(Reply::TopLevel(m)),
            other => Err(ApiError::internal(format!(
                "a top-level answer is not an object: {other}"
            ))),
        }
    }

    /// Success with nothing to say.
    fn empty() -> Reply {
        Reply::TopLevel(Map::new())
    }

    /// The payload as a JSON tree (for the console, which shows it).
    pub(crate) fn into_value(self) -> ApiResult<Value> {
        let tree = |raw: &RawValue| serde_json::from_str(raw.get()).map_err(ApiError::internal);
        Ok(match self {
            Reply::Data(v) => tree(&v)?,
            Reply::List { items, .. } => {
                Value::Array(items.iter().map(|v| tree(v)).collect::<ApiResult<_>>()?)
            }
            Reply::TopLevel(m) => Value::Object(m),
        })
    }
}

/// The VPC a gateway or connection lives in, as their items start.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VpcOf<'a> {
    vpc_id: VpcRowId,
    un_vpc_id: &'a VpcId,
    vpc_name: &'a str,
    vpc_cidr_block: &'a Cidr,
}

impl<'a> VpcOf<'a> {
    fn new(v: &'a VpcRef) -> Self {
        VpcOf {
            vpc_id: v.id,
            un_vpc_id: &v.un_id,
            vpc_name: &v.name,
            vpc_cidr_block: &v.cidr,
        }
    }
}

/// Answers are plain structs of strings and numbers, so this does not fail;
/// if it ever did, the caller gets a 6000, not a panic.
fn to_json(v: impl Serialize) -> ApiResult<Box<RawValue>> {
    serde_json::value::to_raw_value(&v).map_err(ApiError::internal)
}

/// A name filter of a Describe action.
fn name_filter(p: &Params, key: &str) -> ApiResult<Option<String>> {
    p.opt_str(key)?
        .map(|v| parse_name_filter(v).map_err(|why| ApiError::invalid(key, why)))
        .transpose()
}

const PAGE_MAX: i64 = 50;

/// `offset`, `limit`, `orderField` (`createTime` or the resource's name
/// field), `orderDirection` (`asc`/`desc`, default `desc`).
fn page(p: &Params, name_field: &str) -> ApiResult<Page> {
    let offset = p.opt_int("offset", 0..=i64::from(u32::MAX))?.unwrap_or(0) as u32;
    let limit = p.opt_int("limit", 1..=PAGE_MAX)?.unwrap_or(20) as u32;
    let order = match p.opt_str("orderField")? {
        None | Some("createTime") => Order::CreateTime,
        Some(v) if v == name_field => Order::Name,
        Some(_) => {
            return Err(ApiError::invalid(
                "orderField",
                format!("expected createTime or {name_field}"),
            ))
        }
    };
    let descending = match p.opt_str("orderDirection")? {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(_) => return Err(ApiError::invalid("orderDirection", "expected asc or desc")),
    };
    Ok(Page {
        offset,
        limit,
        order,
        descending,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads are the actions that only describe; everything else changes
    /// something and has its Nonce recorded before it runs.
    #[test]
    fn reads_and_writes() {
        for a in Action::ALL {
            let read = a.name().starts_with("Describe") || a.name().starts_with("Get");
            assert_eq!(a.writes(), !read, "{}", a.name());
        }
    }

    #[test]
    fn time_format() {
        assert_eq!(format_time(1_465_185_768), "2016-06-06 04:02:48");
    }

    #[test]
    fn actions_parse_by_name() {
        for a in Action::ALL {
            assert_eq!(Action::parse(a.name()), Ok(*a));
        }
        let e = Action::parse("AddVpnConn\n").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidAction);
    }
}
