//! The API error type and the one table that maps each kind of failure to
//! the v2 envelope's numeric `code` and string `codeDesc`.
//!
//! Numeric codes for business errors are UNCONFIRMED in the vendor's
//! documentation; vpcd follows the convention of the other v2 products (see
//! docs/actions.md, "Error codes"): 4000 for anything wrong with a parameter,
//! 5000 for a resource that does not exist, 5100 for an operation the
//! resource's state or quota refuses.

use std::fmt::Display;

use vpcd_store::{Quota, Resource, StoreError};

/// Every error an action can answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: i64,
    pub code_desc: String,
    pub message: String,
}

/// The error kinds and their envelope codes. Kept as data so the contract is
/// reviewable in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 4000 `InvalidParameter` (or a documented, more specific codeDesc).
    InvalidParameter,
    MissingParameter,
    /// 4100: the signature does not match.
    AuthFailure,
    /// 4104: unknown SecretId.
    SecretIdNotFound,
    /// 4110: the key or its account is disabled.
    AuthDisabled,
    /// 4500: Nonce repeated or Timestamp out of the window.
    Replay,
    /// 5000: a resource that does not exist (or is not the caller's).
    NotFound,
    /// 5100: the operation is refused by the resource's state or quota.
    OperationFailed,
    /// 6000: internal error. The cause is logged, never shown.
    Internal,
}

impl Kind {
    pub fn code(self) -> i64 {
        match self {
            Kind::InvalidParameter | Kind::MissingParameter => 4000,
            Kind::AuthFailure => 4100,
            Kind::SecretIdNotFound => 4104,
            Kind::AuthDisabled => 4110,
            Kind::Replay => 4500,
            Kind::NotFound => 5000,
            Kind::OperationFailed => 5100,
            Kind::Internal => 6000,
        }
    }

    fn default_desc(self) -> &'static str {
        match self {
            Kind::InvalidParameter => "InvalidParameter",
            Kind::MissingParameter => "MissingParameter",
            Kind::AuthFailure => "AuthFailure",
            Kind::SecretIdNotFound => "AuthFailure.SecretIdNotFound",
            Kind::AuthDisabled => "AuthFailure.SecretIdDisabled",
            Kind::Replay => "RequestReplay",
            Kind::NotFound => "ResourceNotFound",
            Kind::OperationFailed => "FailedOperation",
            Kind::Internal => "InternalError",
        }
    }
}

impl ApiError {
    pub fn new(kind: Kind, code_desc: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            code: kind.code(),
            code_desc: code_desc.into(),
            message: message.into(),
        }
    }

    pub fn of(kind: Kind, message: impl Into<String>) -> Self {
        Self::new(kind, kind.default_desc(), message)
    }

    /// A parameter's value is wrong. The message always starts with the
    /// parameter's name.
    pub fn invalid(param: &str, why: impl Display) -> Self {
        Self::of(Kind::InvalidParameter, format!("{param}: {why}"))
    }

    /// Like [`ApiError::invalid`] with a documented, more specific codeDesc
    /// (e.g. `InvalidVpnConnName`).
    pub fn invalid_as(code_desc: &str, param: &str, why: impl Display) -> Self {
        Self::new(Kind::InvalidParameter, code_desc, format!("{param}: {why}"))
    }

    pub fn missing(param: &str) -> Self {
        Self::of(
            Kind::MissingParameter,
            format!("{param}: required parameter is missing"),
        )
    }

    /// The resource named by `param` does not exist for this caller.
    pub fn not_found(resource: Resource, param: &str, value: impl Display) -> Self {
        Self::new(
            Kind::NotFound,
            format!("{}.NotFound", resource_prefix(resource)),
            format!("{param}: {value} does not exist"),
        )
    }

    /// Logs the cause (never shown to the caller) and returns a 6000.
    pub fn internal(cause: impl Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::of(Kind::Internal, "internal error; see the server log")
    }

    /// Map a store failure, naming the parameter it concerns when it is
    /// about one.
    pub fn from_store(e: StoreError, param: &str) -> Self {
        match e {
            StoreError::NotFound(r) => Self::new(
                Kind::NotFound,
                format!("{}.NotFound", resource_prefix(r)),
                format!("{param}: the resource does not exist"),
            ),
            StoreError::NameInUse(r) => Self::new(
                Kind::InvalidParameter,
                format!("{}Name.InUse", resource_prefix(r)),
                format!("{param}: the name is already used"),
            ),
            StoreError::AddressInUse => Self::new(
                Kind::InvalidParameter,
                "InvalidUserGw.InUse",
                format!("{param}: a peer gateway with this address already exists"),
            ),
            StoreError::LimitExceeded(q) => {
                let (desc, what) = quota_text(q);
                Self::new(Kind::OperationFailed, desc, format!("{param}: {what}"))
            }
            StoreError::InUse(r) => {
                let what = match r {
                    Resource::Vpc => "the VPC still has VPN gateways",
                    Resource::VpnGw => "the VPN gateway still has VPN connections",
                    Resource::UserGw => "the peer gateway still has VPN connections",
                    _ => "the resource is still in use",
                };
                Self::new(
                    Kind::OperationFailed,
                    format!("{}.CannotDelete", resource_prefix(r)),
                    format!("{param}: {what}"),
                )
            }
            StoreError::Busy(task) => Self::new(
                Kind::OperationFailed,
                "InvalidVpnConnState",
                format!("{param}: task {task} on this connection is still running; poll DescribeVpcTaskResult and retry"),
            ),
            StoreError::InvalidState => Self::new(
                Kind::OperationFailed,
                "InvalidVpnConnState",
                format!("{param}: the connection's current state does not allow this operation"),
            ),
            StoreError::PoolExhausted => Self::new(
                Kind::OperationFailed,
                "VpnGwLimitExceeded",
                "no free public address is left in the VPN gateway address pool",
            ),
            StoreError::StorageUnavailable(msg) | StoreError::Backend(msg) => Self::internal(msg),
        }
    }
}

fn resource_prefix(r: Resource) -> &'static str {
    match r {
        Resource::Vpc => "InvalidVpc",
        Resource::VpnGw => "InvalidVpnGw",
        Resource::UserGw => "InvalidUserGw",
        Resource::VpnConn => "InvalidVpnConn",
        Resource::Task => "InvalidTask",
        Resource::Account => "InvalidAccount",
        Resource::Key => "InvalidKey",
        Resource::GatewayNode => "InvalidGatewayNode",
    }
}

fn quota_text(q: Quota) -> (&'static str, &'static str) {
    match q {
        Quota::VpcsPerRegion => (
            "VpcLimitExceeded",
            "the VPC quota of this region is reached",
        ),
        Quota::VpnGwsPerVpc => (
            "VpnGwLimitExceeded",
            "the VPN gateway quota of this VPC is reached",
        ),
        Quota::UserGwsPerRegion => (
            "UserGwLimitExceeded",
            "the peer gateway quota of this region is reached",
        ),
        Quota::ConnsPerVpnGw => (
            "VpnConnLimitExceeded",
            "the VPN connection quota of this VPN gateway is reached",
        ),
        Quota::ConnsPerUserGw => (
            "VpnConnLimitExceeded",
            "the VPN connection quota of this peer gateway is reached",
        ),
        Quota::ConnsPerRegion => (
            "VpnConnLimitExceeded",
            "the VPN connection quota of this region is reached",
        ),
        Quota::ConnsPerPair => (
            "VpnConnLimitExceeded",
            "this peer gateway already has the allowed number of connections to this VPN gateway",
        ),
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
