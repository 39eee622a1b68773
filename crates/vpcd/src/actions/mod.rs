//! One module per resource; one function per Action. Each parses its
//! parameters into typed values, calls the store, and builds the documented
//! answer. No SQL here, no HTTP here.

use serde_json::{Map, Value};
use vpcd_store::{Order, Page, Scope};

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;

mod conn_settings;
mod peer_config;
mod task;
mod user_gw;
mod vpc;
mod vpn_conn;
mod vpn_gw;

/// Where the payload goes in the envelope (reference §4).
pub enum Reply {
    /// `"data": {...}`
    Data(Value),
    /// `"totalCount": n, "data": [...]`
    List { total: u64, items: Vec<Value> },
    /// Fields beside `code`/`message`.
    TopLevel(Map<String, Value>),
}

/// Every routed action. `docs/actions.md` must document each one (a test
/// checks it).
pub const ACTIONS: &[&str] = &[
    "CreateVpc",
    "DescribeVpcEx",
    "DeleteVpc",
    "RunVpnGw",
    "DescribeVpnGw",
    "ModifyVpnGw",
    "DeleteVpnGw",
    "AddUserGw",
    "DescribeUserGw",
    "ModifyUserGw",
    "DeleteUserGw",
    "AddVpnConnEx",
    "DescribeVpnConn",
    "ModifyVpnConnEx",
    "DeleteVpnConn",
    "ResetVpnConnSA",
    "DescribeVpcTaskResult",
    "DescribeUserGwVendor",
    "GetVpnConnConfig",
];

pub async fn dispatch(
    state: &AppState,
    scope: &Scope,
    action: &str,
    p: &Params,
) -> ApiResult<Reply> {
    match action {
        "CreateVpc" => vpc::create(state, scope, p).await,
        "DescribeVpcEx" => vpc::describe(state, scope, p).await,
        "DeleteVpc" => vpc::delete(state, scope, p).await,
        "RunVpnGw" => vpn_gw::run(state, scope, p).await,
        "DescribeVpnGw" => vpn_gw::describe(state, scope, p).await,
        "ModifyVpnGw" => vpn_gw::modify(state, scope, p).await,
        "DeleteVpnGw" => vpn_gw::delete(state, scope, p).await,
        "AddUserGw" => user_gw::add(state, scope, p).await,
        "DescribeUserGw" => user_gw::describe(state, scope, p).await,
        "ModifyUserGw" => user_gw::modify(state, scope, p).await,
        "DeleteUserGw" => user_gw::delete(state, scope, p).await,
        "AddVpnConnEx" => vpn_conn::add(state, scope, p).await,
        "DescribeVpnConn" => vpn_conn::describe(state, scope, p).await,
        "ModifyVpnConnEx" => vpn_conn::modify(state, scope, p).await,
        "DeleteVpnConn" => vpn_conn::delete(state, scope, p).await,
        "ResetVpnConnSA" => vpn_conn::reset(state, scope, p).await,
        "DescribeVpcTaskResult" => task::describe(state, scope, p).await,
        "DescribeUserGwVendor" => peer_config::vendors(state, scope, p).await,
        "GetVpnConnConfig" => peer_config::config(state, scope, p).await,
        other => Err(ApiError::invalid_as(
            "InvalidAction",
            "Action",
            format!(
                "`{}` is not an action vpcd serves; see docs/actions.md",
                printable(other)
            ),
        )),
    }
}

/// Cut a caller's value down for an error message: at most 64 characters,
/// control characters replaced.
pub(crate) fn printable(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

pub(crate) const NAME_MAX: usize = 60;

/// A resource name: 1-60 characters, no control characters. Names never
/// reach a configuration file unescaped, but a newline in a name is always a
/// mistake.
pub(crate) fn parse_name(value: &str, param: &str, code_desc: &str) -> ApiResult<String> {
    let len = value.chars().count();
    if len == 0 || len > NAME_MAX {
        return Err(ApiError::invalid_as(
            code_desc,
            param,
            format!("must be 1 to {NAME_MAX} characters long (got {len})"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::invalid_as(
            code_desc,
            param,
            "must not contain control characters",
        ));
    }
    Ok(value.to_owned())
}

pub(crate) fn req_name(p: &Params, param: &str, code_desc: &str) -> ApiResult<String> {
    match p.raw(param) {
        None => Err(ApiError::missing(param)),
        Some(v) => parse_name(v, param, code_desc),
    }
}

pub(crate) fn opt_name(p: &Params, param: &str, code_desc: &str) -> ApiResult<Option<String>> {
    p.raw(param)
        .map(|v| parse_name(v, param, code_desc))
        .transpose()
}

/// A name filter of a Describe action (substring match).
pub(crate) fn name_filter(p: &Params, param: &str) -> ApiResult<Option<String>> {
    match p.opt_str(param)? {
        Some(v) if v.chars().count() > NAME_MAX => Err(ApiError::invalid(
            param,
            format!("must be at most {NAME_MAX} characters long"),
        )),
        // No stored name has one, and some databases refuse NUL in text.
        Some(v) if v.chars().any(char::is_control) => Err(ApiError::invalid(
            param,
            "must not contain control characters",
        )),
        v => Ok(v.map(str::to_owned)),
    }
}

pub(crate) const PAGE_MAX: i64 = 50;

/// `offset`, `limit`, `orderField` (`createTime` or the resource's name
/// field), `orderDirection` (`asc`/`desc`, default `desc`).
pub(crate) fn parse_page(p: &Params, name_field: &str) -> ApiResult<Page> {
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

/// `createTime` as the v2 API writes it: `YYYY-MM-DD HH:MM:SS`, UTC.
pub(crate) fn format_time(unix: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_default()
}

/// Parse an id parameter (unified or numeric form).
pub(crate) fn req_id<T>(p: &Params, param: &str) -> ApiResult<T>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    p.req_parse(param)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format() {
        assert_eq!(format_time(1_465_185_768), "2016-06-06 04:02:48");
    }

    #[test]
    fn names() {
        assert!(parse_name(&"x".repeat(60), "n", "D").is_ok());
        assert!(parse_name(&"é".repeat(60), "n", "D").is_ok());
        let e = parse_name(&"x".repeat(61), "n", "D").unwrap_err();
        assert_eq!((e.code, e.code_desc.as_str()), (4000, "D"));
        assert!(e.message.starts_with("n:"));
        assert!(parse_name("a\nb", "n", "D").is_err());
        assert!(parse_name("", "n", "D").is_err());
    }
}
