//! VPN connections: create, describe, modify, delete, reset. Every change
//! is asynchronous: it records a task, which the background side applies to
//! the data plane, and answers with that task.

use rand::Rng;
use vpcd_store::{ConnChange, ConnFilter, NewConn, Resource, Scope, StoreError, Task, VpnConn};
use vpcd_types::id::{UserGwKind, VpnConnKind};
use vpcd_types::{IdRef, Tag, TunnelClash};

use super::conn_settings::{self, Base, Context, Defaults, SettingsChange};
use super::vpn_gw::{self, VpnGwTarget};
use super::{user_gw, Describe, List, Name};
use crate::api::ApiState;
use crate::error::{ApiError, ApiResult, ErrorCode, Field, Side};

pub(crate) struct CreateConn {
    /// The VPN gateway, in its VPC.
    pub(crate) vpn_gw: VpnGwTarget,
    pub(crate) user_gw: IdRef<UserGwKind>,
    /// `None`: a generated `vpnconn-xxxxxxxx`.
    pub(crate) name: Option<Name>,
    pub(crate) settings: SettingsChange,
    /// What omitted settings default to.
    pub(crate) defaults: &'static Defaults,
    /// Resource tags (API 3.0), keys unique.
    pub(crate) tags: Vec<Tag>,
}

/// A connection and the task that applies its change.
pub(crate) struct ConnTask {
    pub(crate) conn: VpnConn,
    pub(crate) task: Task,
}

pub(crate) async fn create_conn(
    api: &ApiState,
    scope: &Scope,
    req: CreateConn,
) -> ApiResult<ConnTask> {
    let gw = vpn_gw::load_target(api, scope, &req.vpn_gw).await?;
    let user_gw = user_gw::load(api, scope, &req.user_gw).await?;
    let name = req.name.map_or_else(default_name, Name::into_string);
    let settings = conn_settings::resolve(
        req.settings,
        Base::New(req.defaults),
        &Context {
            vpc_cidr: &gw.vpc.cidr,
            local_addr: gw.address,
            remote_addr: user_gw.address,
            limits: &api.settings.limits,
        },
    )?;
    let remote_identity = Field::identity(Side::Remote, &settings.ike.remote_identity);
    let new = NewConn {
        vpc_id: gw.vpc.id,
        vpn_gw_id: gw.id,
        user_gw_id: user_gw.id,
        name,
        settings,
        tags: req.tags,
    };
    let (conn, task) = api
        .store
        .create_conn(scope, new, &api.settings.limits)
        .await
        .map_err(|e| match e {
            StoreError::NameInUse(_) => name_in_use(),
            StoreError::NotFound(Resource::VpnGw) => ApiError::from_store(e, Field::VpnGwId),
            StoreError::NotFound(Resource::UserGw) => ApiError::from_store(e, Field::UserGwId),
            StoreError::NotFound(_) => ApiError::from_store(e, Field::VpcId),
            StoreError::TunnelClash(clash) => clash_error(clash, remote_identity),
            other => ApiError::from_store(other, Field::VpnGwId),
        })?;
    api.tasks.notify_one();
    Ok(ConnTask { conn, task })
}

/// The name given to a connection created without one (the seed's own
/// example omits it).
fn default_name() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let suffix: String = (0..8)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("vpnconn-{suffix}")
}

/// A tunnel another account's tunnel on the gateway node could be taken
/// for: the peer gateway when the addresses are the same, else the remote
/// identity (`remote_identity`: its field).
fn clash_error(clash: TunnelClash, remote_identity: Field) -> ApiError {
    let field = match clash {
        TunnelClash::Endpoints => Field::UserGwId,
        TunnelClash::Identities => remote_identity,
    };
    ApiError::from_store(StoreError::TunnelClash(clash), field)
}

fn name_in_use() -> ApiError {
    ApiError::field(
        ErrorCode::InvalidVpnConnNameInUse,
        Field::VpnConnName,
        "a VPN connection with this name already exists in the VPC",
    )
}

pub(crate) async fn describe_conns(
    api: &ApiState,
    scope: &Scope,
    req: Describe<ConnFilter>,
) -> ApiResult<List<VpnConn>> {
    let page = api.store.list_conns(scope, &req.filter, &req.page).await;
    List::from_store(page, Field::VpnConnId)
}

/// A connection, and (when given) the VPN gateway and VPC it must belong
/// to.
pub(crate) struct ConnTarget {
    pub(crate) vpn_gw: Option<VpnGwTarget>,
    pub(crate) conn: IdRef<VpnConnKind>,
}

pub(crate) struct ModifyConn {
    pub(crate) target: ConnTarget,
    pub(crate) name: Option<Name>,
    pub(crate) settings: SettingsChange,
}

pub(crate) async fn modify_conn(api: &ApiState, scope: &Scope, req: ModifyConn) -> ApiResult<Task> {
    let conn = load(api, scope, &req.target).await?;
    let settings = conn_settings::resolve(
        req.settings,
        Base::Existing(&conn.settings),
        &Context {
            vpc_cidr: &conn.vpc.cidr,
            local_addr: conn.vpn_gw.address,
            remote_addr: conn.user_gw.address,
            limits: &api.settings.limits,
        },
    )?;
    let remote_identity = Field::identity(Side::Remote, &settings.ike.remote_identity);
    let change = ConnChange {
        name: req.name.map(Name::into_string),
        settings: Some(settings),
    };
    match api.store.begin_modify(scope, conn.id, change).await {
        Err(StoreError::TunnelClash(clash)) => Err(clash_error(clash, remote_identity)),
        begun => started(api, begun),
    }
}

pub(crate) async fn delete_conn(api: &ApiState, scope: &Scope, req: ConnTarget) -> ApiResult<Task> {
    let conn = load(api, scope, &req).await?;
    started(api, api.store.begin_delete(scope, conn.id).await)
}

/// Tear down and re-negotiate the connection's SAs.
pub(crate) async fn reset_conn(api: &ApiState, scope: &Scope, req: ConnTarget) -> ApiResult<Task> {
    let conn = load(api, scope, &req).await?;
    started(api, api.store.begin_reset(scope, conn.id).await)
}

/// The connection; the gateway and VPC named with it must exist and hold
/// it.
pub(super) async fn load(api: &ApiState, scope: &Scope, target: &ConnTarget) -> ApiResult<VpnConn> {
    let gw_id = match &target.vpn_gw {
        Some(gw) => Some(vpn_gw::load_target(api, scope, gw).await?.id),
        None => None,
    };
    api.store
        .get_conn(scope, &target.conn)
        .await
        .map_err(|e| ApiError::from_store(e, Field::VpnConnId))?
        .filter(|c| gw_id.is_none_or(|g| c.vpn_gw.id == g))
        .ok_or_else(|| {
            ApiError::not_found(ErrorCode::VpnConnNotFound, Field::VpnConnId, &target.conn)
        })
}

/// The task a change to an existing connection started (the workers are
/// told), or why the store refused it.
fn started(api: &ApiState, begun: vpcd_store::Result<Task>) -> ApiResult<Task> {
    let task = begun.map_err(|e| match e {
        StoreError::NameInUse(_) => name_in_use(),
        other => ApiError::from_store(other, Field::VpnConnId),
    })?;
    api.tasks.notify_one();
    Ok(task)
}
