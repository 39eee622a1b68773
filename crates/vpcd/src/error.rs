//! API errors: the one table of error codes, and the error type every
//! operation and protocol adapter answers with.
//!
//! Numeric codes for business errors are UNCONFIRMED in the vendor's
//! documentation; vpcd follows the convention of the other v2 products (see
//! docs/actions.md, "Error codes"): 4000 for anything wrong with a parameter,
//! 5000 for a resource that does not exist, 5100 for an operation the
//! resource's state or quota refuses.
//!
//! # Layout
//! - [`ErrorCode`]: every error vpcd answers with: its v2 `codeDesc` and
//!   `code`, and its API 3.0 `Error.Code`. Each protocol adapter renders
//!   its own columns; a few rows exist for one protocol's conditions only
//!   (they say so) and still have a sensible spelling in the other.
//! - [`TaskFailure`]: the `errorCode` a failed task records.
//! - [`Field`]: a request field that an operation's error names. The
//!   operations know no wire format, so each protocol spells the field its
//!   own way ([`Field::v2_name`]); adapter parse errors name the wire key
//!   directly ([`Param::Wire`]).
//! - [`ApiError`]: a code, the parameter at fault, and why; converted from
//!   store errors in one place ([`ApiError::from_store`]).

use std::borrow::Cow;
use std::fmt::Display;

use vpcd_store::{Quota, Resource, StoreError};
use vpcd_types::TunnelClash;

/// Declares [`ErrorCode`] from one table, so each row exists once.
macro_rules! error_codes {
    ($($(#[$m:meta])* $name:ident => ($desc:literal, $code:literal, $v3:literal)),+ $(,)?) => {
        /// Every error an answer can carry.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum ErrorCode {
            $($(#[$m])* $name),+
        }

        impl ErrorCode {
            /// The table: v2 `codeDesc`, the v2 envelope's numeric `code`,
            /// and the API 3.0 `Error.Code` (a common 3.0 code, or the VPC
            /// product's own where one fits better).
            fn row(self) -> (&'static str, i64, &'static str) {
                match self {
                    $(ErrorCode::$name => ($desc, $code, $v3)),+
                }
            }

            /// Every row, for the documentation checks.
            #[cfg(test)]
            pub(crate) const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name),+];
        }
    };
}

error_codes! {
    InvalidParameter => ("InvalidParameter", 4000, "InvalidParameterValue"),
    MissingParameter => ("MissingParameter", 4000, "MissingParameter"),
    InvalidAction => ("InvalidAction", 4000, "InvalidAction"),
    InvalidVpcName => ("InvalidVpcName", 4000, "InvalidParameterValue"),
    InvalidVpcNameInUse => ("InvalidVpcName.InUse", 4000, "InvalidParameterValue.Duplicate"),
    InvalidVpcCidr => ("InvalidVpcCidr", 4000, "InvalidParameterValue"),
    InvalidSubnetCidr => ("InvalidSubnetCidr", 4000, "InvalidParameterValue.SubnetRange"),
    InvalidSubnetName => ("InvalidSubnetName", 4000, "InvalidParameterValue"),
    InvalidVpnGwName => ("InvalidVpnGwName", 4000, "InvalidParameterValue"),
    InvalidVpnGwNameInUse => ("InvalidVpnGwName.InUse", 4000, "InvalidParameterValue.Duplicate"),
    InvalidUserGwName => ("InvalidUserGwName", 4000, "InvalidParameterValue"),
    InvalidUserGwNameInUse => ("InvalidUserGwName.InUse", 4000, "InvalidParameterValue.Duplicate"),
    InvalidUserGwAddr => ("InvalidUserGwAddr", 4000, "InvalidParameterValue"),
    UserGwAddrInUse => ("InvalidUserGw.InUse", 4000, "InvalidParameterValue.Duplicate"),
    InvalidVpnConnName => ("InvalidVpnConnName", 4000, "InvalidParameterValue"),
    InvalidVpnConnNameInUse => ("InvalidVpnConnName.InUse", 4000, "InvalidParameterValue.Duplicate"),
    InvalidVendor => ("InvalidVendor", 4000, "InvalidParameterValue"),
    AuthFailure => ("AuthFailure", 4100, "AuthFailure.SignatureFailure"),
    SecretIdNotFound => ("AuthFailure.SecretIdNotFound", 4104, "AuthFailure.SecretIdNotFound"),
    SecretIdDisabled => ("AuthFailure.SecretIdDisabled", 4110, "AuthFailure.SecretIdNotFound"),
    RequestReplay => ("RequestReplay", 4500, "AuthFailure.SignatureFailure"),
    VpcNotFound => ("InvalidVpc.NotFound", 5000, "ResourceNotFound"),
    VpnGwNotFound => ("InvalidVpnGw.NotFound", 5000, "ResourceNotFound"),
    UserGwNotFound => ("InvalidUserGw.NotFound", 5000, "ResourceNotFound"),
    VpnConnNotFound => ("InvalidVpnConn.NotFound", 5000, "ResourceNotFound"),
    TaskNotFound => ("InvalidTask.NotFound", 5000, "ResourceNotFound"),
    VpcLimitExceeded => ("VpcLimitExceeded", 5100, "LimitExceeded"),
    VpnGwLimitExceeded => ("VpnGwLimitExceeded", 5100, "LimitExceeded"),
    UserGwLimitExceeded => ("UserGwLimitExceeded", 5100, "LimitExceeded"),
    VpnConnLimitExceeded => ("VpnConnLimitExceeded", 5100, "LimitExceeded"),
    VpcCannotDelete => ("InvalidVpc.CannotDelete", 5100, "ResourceInUse"),
    VpnGwCannotDelete => ("InvalidVpnGw.CannotDelete", 5100, "ResourceInUse"),
    UserGwCannotDelete => ("InvalidUserGw.CannotDelete", 5100, "ResourceInUse"),
    InvalidVpnConnState => ("InvalidVpnConnState", 5100, "UnsupportedOperation.InvalidState"),
    /// The storage is full or unreachable: writes (and, with PostgreSQL
    /// down, reads) are refused until it recovers; a retry later succeeds.
    StorageUnavailable => ("StorageUnavailable", 5200, "ResourceUnavailable"),
    InternalError => ("InternalError", 6000, "InternalError"),
    /// The request's type is wrong (a list where a string belongs, ...);
    /// 3.0 tells it apart from a wrong value.
    MalformedParameter => ("InvalidParameter", 4000, "InvalidParameter"),
    /// A field the action does not take (3.0; v2 ignores extra parameters).
    UnknownParameter => ("InvalidParameter", 4000, "UnknownParameter"),
    /// Two fields that exclude each other.
    ParameterConflict => ("InvalidParameter", 4000, "InvalidParameter.Coexist"),
    /// A documented value or field that vpcd does not carry out.
    UnsupportedOperation => ("UnsupportedOperation", 4000, "UnsupportedOperation"),
    /// A region outside the configured list.
    UnsupportedRegion => ("InvalidParameter", 4000, "UnsupportedRegion"),
    /// The request's Timestamp is outside the window.
    SignatureExpire => ("RequestReplay", 4500, "AuthFailure.SignatureExpire"),
    /// An `Authorization` header that is not a well-formed TC3 header.
    InvalidAuthorization => ("AuthFailure", 4100, "AuthFailure.InvalidAuthorization"),
    /// Temporary credentials (`X-TC-Token`, `Token`): vpcd issues none.
    TokenFailure => ("AuthFailure", 4100, "AuthFailure.TokenFailure"),
    /// An API version other than the one served.
    NoSuchVersion => ("InvalidParameter", 4000, "NoSuchVersion"),
    /// An HTTP method or content type the endpoint does not take.
    UnsupportedProtocol => ("InvalidParameter", 4000, "UnsupportedProtocol"),
    /// A body that is not the JSON object it claims to be.
    InvalidRequest => ("InvalidParameter", 4000, "InvalidRequest"),
    /// The account sent requests faster than its rate limit
    /// (`--rate-limit-per-account`); v2's "request quota exceeded".
    RequestLimitExceeded => ("RequestLimitExceeded", 4400, "RequestLimitExceeded"),
}

impl ErrorCode {
    pub(crate) fn code_desc(self) -> &'static str {
        self.row().0
    }

    pub(crate) fn v2_code(self) -> i64 {
        self.row().1
    }

    /// The API 3.0 `Response.Error.Code`.
    pub(crate) fn v3_code(self) -> &'static str {
        self.row().2
    }
}

/// Why a task failed, as DescribeVpcTaskResult shows it in `errorCode`.
/// These never reach an envelope, so they have no numeric code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskFailure {
    /// The gateway node is not driven by the vpcd that ran the task.
    GatewayNodeUnavailable,
    /// The gateway node did not answer.
    GatewayNodeUnreachable,
    /// The gateway node refused the configuration.
    DataPlaneRejected,
    /// A failed task that recorded no reason.
    TaskFailed,
}

impl TaskFailure {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TaskFailure::GatewayNodeUnavailable => "GatewayNodeUnavailable",
            TaskFailure::GatewayNodeUnreachable => "GatewayNodeUnreachable",
            TaskFailure::DataPlaneRejected => "DataPlaneRejected",
            TaskFailure::TaskFailed => "TaskFailed",
        }
    }
}

/// One side of a tunnel's IKE identities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Local,
    Remote,
}

/// A request field named by an operation's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    VpcId,
    VpcName,
    /// The VPC's CIDR block.
    CidrBlock,
    /// The CIDR block of the n-th subnet given with a new VPC.
    SubnetCidrBlock(usize),
    VpnGwId,
    /// The gateway's name (v2 spells it `name` on RunVpnGw, whose
    /// operation never names it in an error).
    VpnGwName,
    UserGwId,
    UserGwName,
    UserGwAddr,
    VpnConnId,
    VpnConnName,
    PreSharedKey,
    /// The peer's ranges, in whichever form the protocol takes them.
    PeerRanges,
    /// All of the peer CIDR blocks reached from the whole VPC.
    PeerCidrBlocks,
    /// The n-th of those.
    PeerCidrBlock(usize),
    /// Explicit SPD rules (VPC-side CIDR -> peer CIDRs).
    SpdRules,
    IdentityType(Side),
    IdentityAddress(Side),
    IdentityFqdn(Side),
    IkeEncryption,
    IkeAuthentication,
    ExchangeMode,
    IkeDhGroup,
    /// API 3.0 only (v2 tunnels are IKEv1); v2 spells it as 3.0 does.
    IkeVersion,
    IpsecEncryption,
    IpsecIntegrity,
    PfsDhGroup,
    /// API 3.0 only, like the fields below it.
    EnableHealthCheck,
    HealthCheckIp(Side),
    TaskId,
    Vendor,
    InterfaceName,
}

impl Field {
    /// The v2 parameter name.
    pub(crate) fn v2_name(self) -> Cow<'static, str> {
        let side = |s: Side| match s {
            Side::Local => "local",
            Side::Remote => "remote",
        };
        Cow::Borrowed(match self {
            Field::VpcId => "vpcId",
            Field::VpcName => "vpcName",
            Field::CidrBlock => "cidrBlock",
            Field::SubnetCidrBlock(i) => return format!("subnetSet.{i}.cidrBlock").into(),
            Field::VpnGwId => "vpnGwId",
            Field::VpnGwName => "vpnGwName",
            Field::UserGwId => "userGwId",
            Field::UserGwName => "userGwName",
            Field::UserGwAddr => "userGwAddr",
            Field::VpnConnId => "vpnConnId",
            Field::VpnConnName => "vpnConnName",
            Field::PreSharedKey => "preSharedKey",
            Field::PeerRanges => "userGwCidrBlock.n or spdAcl",
            Field::PeerCidrBlocks => "userGwCidrBlock.n",
            Field::PeerCidrBlock(i) => return format!("userGwCidrBlock.{i}").into(),
            Field::SpdRules => "spdAcl",
            Field::IdentityType(s) => return format!("IKESet.{}Identity", side(s)).into(),
            Field::IdentityAddress(s) => return format!("IKESet.{}Address", side(s)).into(),
            Field::IdentityFqdn(s) => return format!("IKESet.{}FqdnName", side(s)).into(),
            Field::IkeEncryption => "IKESet.propoEncryAlgorithm",
            Field::IkeAuthentication => "IKESet.propoAuthenAlgorithm",
            Field::ExchangeMode => "IKESet.exchangeMode",
            Field::IkeDhGroup => "IKESet.dhGroupName",
            Field::IkeVersion => "IKEOptionsSpecification.IKEVersion",
            Field::IpsecEncryption => "IPsecSet.encryptAlgorithm",
            Field::IpsecIntegrity => "IPsecSet.integrityAlgorith",
            Field::PfsDhGroup => "IPsecSet.pfsDhGroup",
            Field::EnableHealthCheck => "EnableHealthCheck",
            Field::HealthCheckIp(Side::Local) => "HealthCheckLocalIp",
            Field::HealthCheckIp(Side::Remote) => "HealthCheckRemoteIp",
            Field::TaskId => "taskId",
            Field::Vendor => "vendorname",
            Field::InterfaceName => "interfaceName",
        })
    }
}

impl Field {
    /// The field that carries `side`'s identity value: its address or its
    /// FQDN.
    pub(crate) fn identity(side: Side, identity: &vpcd_types::Identity) -> Field {
        match identity {
            vpcd_types::Identity::Address(_) => Field::IdentityAddress(side),
            vpcd_types::Identity::Fqdn(_) => Field::IdentityFqdn(side),
        }
    }

    /// The API 3.0 field name, as a path into the request (`Filters.0.Name`
    /// style). Fields 3.0 has no spelling of (subnets given with a VPC, v2's
    /// peer CIDR list) are named after their nearest 3.0 field.
    pub(crate) fn v3_name(self) -> Cow<'static, str> {
        const IKE: &str = "IKEOptionsSpecification";
        const IPSEC: &str = "IPSECOptionsSpecification";
        let side = |s: Side| match s {
            Side::Local => "Local",
            Side::Remote => "Remote",
        };
        Cow::Borrowed(match self {
            Field::VpcId => "VpcId",
            Field::VpcName => "VpcName",
            Field::CidrBlock => "CidrBlock",
            Field::SubnetCidrBlock(i) => return format!("SubnetSet.{i}.CidrBlock").into(),
            Field::VpnGwId => "VpnGatewayId",
            Field::VpnGwName => "VpnGatewayName",
            Field::UserGwId => "CustomerGatewayId",
            Field::UserGwName => "CustomerGatewayName",
            Field::UserGwAddr => "IpAddress",
            Field::VpnConnId => "VpnConnectionId",
            Field::VpnConnName => "VpnConnectionName",
            Field::PreSharedKey => "PreShareKey",
            Field::PeerRanges | Field::PeerCidrBlocks | Field::SpdRules => {
                "SecurityPolicyDatabases"
            }
            Field::PeerCidrBlock(i) => {
                return format!("SecurityPolicyDatabases.0.RemoteCidrBlock.{i}").into()
            }
            Field::IdentityType(s) => return format!("{IKE}.{}Identity", side(s)).into(),
            Field::IdentityAddress(s) => return format!("{IKE}.{}Address", side(s)).into(),
            Field::IdentityFqdn(s) => return format!("{IKE}.{}FqdnName", side(s)).into(),
            Field::IkeEncryption => return format!("{IKE}.PropoEncryAlgorithm").into(),
            Field::IkeAuthentication => return format!("{IKE}.PropoAuthenAlgorithm").into(),
            Field::ExchangeMode => return format!("{IKE}.ExchangeMode").into(),
            Field::IkeDhGroup => return format!("{IKE}.DhGroupName").into(),
            Field::IkeVersion => return format!("{IKE}.IKEVersion").into(),
            Field::IpsecEncryption => return format!("{IPSEC}.EncryptAlgorithm").into(),
            Field::IpsecIntegrity => return format!("{IPSEC}.IntegrityAlgorithm").into(),
            Field::PfsDhGroup => return format!("{IPSEC}.PfsDhGroup").into(),
            Field::EnableHealthCheck => "EnableHealthCheck",
            Field::HealthCheckIp(Side::Local) => "HealthCheckLocalIp",
            Field::HealthCheckIp(Side::Remote) => "HealthCheckRemoteIp",
            Field::TaskId => "TaskId",
            Field::Vendor => "CustomerGatewayVendor",
            Field::InterfaceName => "InterfaceName",
        })
    }
}

/// The parameter an error is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Param {
    /// Named by an operation; each protocol spells it.
    Field(Field),
    /// Named by a protocol adapter, exactly as it appeared on the wire.
    Wire(String),
}

impl Param {
    pub(crate) fn v2_name(&self) -> Cow<'_, str> {
        match self {
            Param::Field(f) => f.v2_name(),
            Param::Wire(key) => Cow::Borrowed(key),
        }
    }

    pub(crate) fn v3_name(&self) -> Cow<'_, str> {
        match self {
            Param::Field(f) => f.v3_name(),
            Param::Wire(key) => Cow::Borrowed(key),
        }
    }
}

/// Why a request was refused: text, where it may name other fields (which
/// each protocol spells its own way).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Why(Vec<WhyPart>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum WhyPart {
    Text(String),
    Field(Field),
    /// Detail for the server's log only (it may name files): never rendered.
    LogOnly(String),
}

impl Why {
    pub(crate) fn text(t: impl Display) -> Self {
        Why(vec![WhyPart::Text(t.to_string())])
    }

    /// Append more text.
    pub(crate) fn then(mut self, t: impl Display) -> Self {
        self.0.push(WhyPart::Text(t.to_string()));
        self
    }

    /// Append another field's name.
    pub(crate) fn field(mut self, f: Field) -> Self {
        self.0.push(WhyPart::Field(f));
        self
    }

    /// Attach detail for the server's log, which no answer shows.
    fn log_only(mut self, detail: impl Display) -> Self {
        self.0.push(WhyPart::LogOnly(detail.to_string()));
        self
    }

    /// The detail attached with [`Why::log_only`], if any.
    pub(crate) fn log_detail(&self) -> Option<&str> {
        self.0.iter().find_map(|p| match p {
            WhyPart::LogOnly(d) => Some(d.as_str()),
            _ => None,
        })
    }

    /// The text, with fields spelled by `name`.
    pub(crate) fn render(&self, name: impl Fn(Field) -> Cow<'static, str>) -> String {
        self.0
            .iter()
            .map(|p| match p {
                WhyPart::Text(t) => Cow::Borrowed(t.as_str()),
                WhyPart::Field(f) => name(*f),
                WhyPart::LogOnly(_) => Cow::Borrowed(""),
            })
            .collect()
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

/// Every error an operation or protocol adapter can answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) code: ErrorCode,
    /// The parameter at fault, when there is one.
    pub(crate) param: Option<Param>,
    pub(crate) why: Why,
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// A field's value is refused by an operation.
    pub(crate) fn field(code: ErrorCode, field: Field, why: impl Display) -> Self {
        Self::field_why(code, field, Why::text(why))
    }

    /// Like [`ApiError::field`], with a reason that names other fields.
    pub(crate) fn field_why(code: ErrorCode, field: Field, why: Why) -> Self {
        ApiError {
            code,
            param: Some(Param::Field(field)),
            why,
        }
    }

    /// A wire parameter is malformed (protocol adapters only).
    pub(crate) fn wire(code: ErrorCode, key: &str, why: impl Display) -> Self {
        ApiError {
            code,
            param: Some(Param::Wire(key.to_owned())),
            why: Why::text(why),
        }
    }

    /// [`ApiError::wire`] with code `InvalidParameter`.
    pub(crate) fn invalid(key: &str, why: impl Display) -> Self {
        Self::wire(ErrorCode::InvalidParameter, key, why)
    }

    /// A required wire parameter is absent.
    pub(crate) fn missing(key: &str) -> Self {
        Self::wire(
            ErrorCode::MissingParameter,
            key,
            "required parameter is missing",
        )
    }

    /// A required field is absent (when only the operation knows that it
    /// is required, as when a modification may keep the current value).
    pub(crate) fn missing_field(field: Field) -> Self {
        Self::field(
            ErrorCode::MissingParameter,
            field,
            "required parameter is missing",
        )
    }

    /// The v2 `message`: `param: why`, every field spelled the v2 way.
    pub(crate) fn v2_message(&self) -> String {
        let why = self.why.render(Field::v2_name);
        match &self.param {
            Some(p) => format!("{}: {why}", p.v2_name()),
            None => why,
        }
    }

    /// The same parameter and reason under a more specific code.
    pub(crate) fn with_code(self, code: ErrorCode) -> Self {
        ApiError { code, ..self }
    }

    /// The resource that `field` names does not exist for this caller
    /// (`code` is its `...NotFound`).
    pub(crate) fn not_found(code: ErrorCode, field: Field, value: impl Display) -> Self {
        Self::field(code, field, format!("{value} does not exist"))
    }

    /// Logs the cause (never shown to the caller) and returns a 6000.
    pub(crate) fn internal(cause: impl Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        ApiError {
            code: ErrorCode::InternalError,
            param: None,
            why: Why::text("internal error; see the server log"),
        }
    }

    /// The storage cannot take the request. The engine's `cause` (it may
    /// name files) goes to the log only, once per episode (`StorageHealth`).
    fn storage_unavailable(cause: String) -> Self {
        ApiError {
            code: ErrorCode::StorageUnavailable,
            param: None,
            why: Why::text("the storage is full or unavailable; nothing was changed, retry later")
                .log_only(cause),
        }
    }

    /// A replay Nonce could not be recorded: a storage fault answers as one
    /// (the request was not carried out), anything else is internal.
    pub(crate) fn from_nonce_store(e: StoreError) -> Self {
        match e {
            StoreError::StorageUnavailable(cause) => Self::storage_unavailable(cause),
            other => Self::internal(format!("recording a Nonce: {other}")),
        }
    }

    /// Map a store failure, naming `field` when it is about a parameter.
    pub(crate) fn from_store(e: StoreError, field: Field) -> Self {
        use ErrorCode as C;
        let of = |code: ErrorCode, why: &str| Self::field(code, field, why);
        match e {
            StoreError::NotFound(r) => match not_found_code(r) {
                Some(code) => of(code, "the resource does not exist"),
                None => Self::internal(format!("{r:?} not found where no API request names one")),
            },
            StoreError::NameInUse(r) => {
                let code = match r {
                    Resource::Vpc => C::InvalidVpcNameInUse,
                    Resource::VpnGw => C::InvalidVpnGwNameInUse,
                    Resource::UserGw => C::InvalidUserGwNameInUse,
                    Resource::VpnConn => C::InvalidVpnConnNameInUse,
                    other => {
                        return Self::internal(format!("{other:?} name in use through the API"))
                    }
                };
                of(code, "the name is already used")
            }
            StoreError::AddressInUse => of(
                C::UserGwAddrInUse,
                "a peer gateway with this address already exists",
            ),
            StoreError::LimitExceeded(q) => {
                let (code, what) = quota_text(q);
                of(code, what)
            }
            StoreError::InUse(r) => {
                let (code, what) = match r {
                    Resource::Vpc => (C::VpcCannotDelete, "the VPC still has VPN gateways"),
                    Resource::VpnGw => (
                        C::VpnGwCannotDelete,
                        "the VPN gateway still has VPN connections",
                    ),
                    Resource::UserGw => (
                        C::UserGwCannotDelete,
                        "the peer gateway still has VPN connections",
                    ),
                    other => return Self::internal(format!("{other:?} in use through the API")),
                };
                of(code, what)
            }
            StoreError::Busy(task) => Self::field(
                C::InvalidVpnConnState,
                field,
                format!("task {task} on this connection is still running; poll DescribeVpcTaskResult and retry"),
            ),
            StoreError::InvalidState => of(
                C::InvalidVpnConnState,
                "the connection's current state does not allow this operation",
            ),
            StoreError::TunnelClash(TunnelClash::Endpoints) => of(
                C::UserGwAddrInUse,
                "another account has a VPN connection between the same VPN gateway address and \
                 peer gateway address on this gateway node; use another peer gateway address or \
                 another VPN gateway",
            ),
            StoreError::TunnelClash(TunnelClash::Identities) => of(
                C::InvalidParameter,
                "another account has a VPN connection on this gateway node with the same pair of \
                 IKE identities (local and remote, in either order); choose other identities",
            ),
            StoreError::PoolExhausted => ApiError {
                code: C::VpnGwLimitExceeded,
                param: None,
                why: Why::text("no free public address is left in the VPN gateway address pool"),
            },
            StoreError::StorageUnavailable(cause) => Self::storage_unavailable(cause),
            StoreError::Backend(msg) => Self::internal(msg),
            e @ StoreError::WrongMasterKey => Self::internal(e),
        }
    }
}

/// The `NotFound` code of the resources an API request can name.
fn not_found_code(r: Resource) -> Option<ErrorCode> {
    match r {
        Resource::Vpc => Some(ErrorCode::VpcNotFound),
        Resource::VpnGw => Some(ErrorCode::VpnGwNotFound),
        Resource::UserGw => Some(ErrorCode::UserGwNotFound),
        Resource::VpnConn => Some(ErrorCode::VpnConnNotFound),
        Resource::Task => Some(ErrorCode::TaskNotFound),
        Resource::Account | Resource::Key | Resource::GatewayNode => None,
    }
}

fn quota_text(q: Quota) -> (ErrorCode, &'static str) {
    use ErrorCode as C;
    match q {
        Quota::VpcsPerRegion => (
            C::VpcLimitExceeded,
            "the VPC quota of this region is reached",
        ),
        Quota::VpnGwsPerVpc => (
            C::VpnGwLimitExceeded,
            "the VPN gateway quota of this VPC is reached",
        ),
        Quota::UserGwsPerRegion => (
            C::UserGwLimitExceeded,
            "the peer gateway quota of this region is reached",
        ),
        Quota::ConnsPerVpnGw => (
            C::VpnConnLimitExceeded,
            "the VPN connection quota of this VPN gateway is reached",
        ),
        Quota::ConnsPerUserGw => (
            C::VpnConnLimitExceeded,
            "the VPN connection quota of this peer gateway is reached",
        ),
        Quota::ConnsPerRegion => (
            C::VpnConnLimitExceeded,
            "the VPN connection quota of this region is reached",
        ),
        Quota::ConnsPerPair => (
            C::VpnConnLimitExceeded,
            "this peer gateway already has the allowed number of connections to this VPN gateway",
        ),
        Quota::PoolAddressesPerAccount => (
            C::VpnGwLimitExceeded,
            "the account holds its share of the shared public gateway addresses (all regions)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/api3.md lists every 3.0 code vpcd answers with, and the v2 row
    /// it corresponds to.
    #[test]
    fn docs_list_every_v3_code() {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api3.md"))
                .expect("docs/api3.md");
        for code in ErrorCode::ALL {
            let row = format!("| `{}` | `{}` |", code.v3_code(), code.code_desc());
            assert!(doc.contains(&row), "docs/api3.md has no row {row}");
        }
    }

    #[test]
    fn why_spells_fields_per_protocol() {
        let why = Why::text("is only used when ")
            .field(Field::IdentityType(Side::Local))
            .then(" is fqdn");
        assert_eq!(
            why.render(Field::v2_name),
            "is only used when IKESet.localIdentity is fqdn"
        );
    }

    #[test]
    fn store_errors_keep_their_codes() {
        let e = ApiError::from_store(StoreError::NameInUse(Resource::Vpc), Field::VpcName);
        assert_eq!(e.code.code_desc(), "InvalidVpcName.InUse");
        assert_eq!(e.code.v2_code(), 4000);
        assert_eq!(e.param, Some(Param::Field(Field::VpcName)));
        let e = ApiError::from_store(
            StoreError::Busy(vpcd_types::TaskId::new(7)),
            Field::VpnConnId,
        );
        assert_eq!(
            (e.code.code_desc(), e.code.v2_code()),
            ("InvalidVpnConnState", 5100)
        );
        let e = ApiError::from_store(
            StoreError::StorageUnavailable("(code: 13) /var/lib/vpcd/vpcd.db is full".into()),
            Field::VpnConnId,
        );
        assert_eq!(
            (e.code.code_desc(), e.code.v2_code(), e.param),
            ("StorageUnavailable", 5200, None)
        );
        // The path reaches the log (once per episode), never the answer.
        let shown = e.why.render(Field::v2_name);
        assert!(!shown.contains("/var/lib"), "{shown}");
        assert!(
            shown.starts_with("the storage is full or unavailable"),
            "{shown}"
        );
        assert_eq!(
            e.why.log_detail(),
            Some("(code: 13) /var/lib/vpcd/vpcd.db is full")
        );
    }
}
