//! Rows as the rest of vpcd sees them, and the inputs that create them.

use std::net::IpAddr;

use ipnet::IpNet;
use vpcd_types::id::{UnifiedId, UserGwKind, VpcKind, VpnConnKind, VpnGwKind};
use vpcd_types::row::RowKind;
use vpcd_types::{
    AccountId, Cidr, ConnSettings, ConnStatus, GatewayNodeId, IdRef, NetStatus, RowId, Secret, Tag,
    TaskId, TaskKind, TaskStatus, TunnelSpec, UserGwId, UserGwRowId, VpcId, VpcRowId, VpnConnId,
    VpnConnRowId, VpnGwId, VpnGwRowId,
};

/// Every resource belongs to one account and one region. Every store call on
/// a resource takes the caller's scope, and a resource outside it behaves
/// exactly like a missing one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    pub account_id: AccountId,
    pub region: String,
}

/// Unix seconds.
pub type Timestamp = i64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub name: String,
    pub disabled: bool,
    pub created_at: Timestamp,
}

/// An API key pair. `secret_key` never leaves the process except in the
/// first-start credentials file and `vpcd admin key create` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub secret_id: String,
    pub secret_key: Secret,
    pub account_id: AccountId,
    /// The key or its account is disabled.
    pub disabled: bool,
}

/// How many secrets a master-key change sealed anew.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resealed {
    /// API SecretKeys.
    pub secret_keys: u64,
    /// Connections' pre-shared keys.
    pub psks: u64,
}

/// Published quotas; every one is configurable (`vpcd serve --help`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub vpcs_per_region: u32,
    pub vpn_gws_per_vpc: u32,
    pub user_gws_per_region: u32,
    pub conns_per_vpn_gw: u32,
    pub conns_per_user_gw: u32,
    pub conns_per_region: u32,
    /// Tunnels between one peer gateway and one VPN gateway.
    pub conns_per_pair: u32,
    pub spd_rules_per_conn: u32,
    pub cidrs_per_spd_rule: u32,
    /// VPN gateways of one account (all regions) holding an address of the
    /// shared pool, so that no account can take the whole pool.
    pub pool_addresses_per_account: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            vpcs_per_region: 5,
            vpn_gws_per_vpc: 10,
            user_gws_per_region: 20,
            conns_per_vpn_gw: 20,
            conns_per_user_gw: 10,
            conns_per_region: 100,
            conns_per_pair: 1,
            spd_rules_per_conn: 10,
            cidrs_per_spd_rule: 50,
            pool_addresses_per_account: 32,
        }
    }
}

/// Which quota was hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    VpcsPerRegion,
    VpnGwsPerVpc,
    UserGwsPerRegion,
    ConnsPerVpnGw,
    ConnsPerUserGw,
    ConnsPerRegion,
    ConnsPerPair,
    PoolAddressesPerAccount,
}

/// Paging and ordering shared by every Describe action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub offset: u32,
    pub limit: u32,
    pub order: Order,
    pub descending: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    CreateTime,
    Name,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vpc {
    pub id: VpcRowId,
    pub un_id: VpcId,
    pub name: String,
    pub cidr: Cidr,
    pub vpn_gw_num: i64,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewVpc {
    pub name: String,
    pub cidr: Cidr,
}

#[derive(Debug, Clone, Default)]
pub struct VpcFilter {
    pub id: Option<IdRef<VpcKind>>,
    /// Substring match.
    pub name: Option<String>,
}

/// The VPC a gateway or connection lives in, as answers show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpcRef {
    pub id: VpcRowId,
    pub un_id: VpcId,
    pub name: String,
    pub cidr: Cidr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpnGw {
    pub id: VpnGwRowId,
    pub un_id: VpnGwId,
    pub vpc: VpcRef,
    pub name: String,
    pub bandwidth: i64,
    pub charge_type: String,
    /// Echoed, never acted on: vpcd has no billing.
    pub charge_period: Option<i64>,
    pub address: IpAddr,
    /// The gateway node serving it; `None` means API only.
    pub node_id: Option<GatewayNodeId>,
    pub conn_num: i64,
    pub created_at: Timestamp,
}

/// Where a new gateway's public address comes from.
#[derive(Debug, Clone)]
pub enum AddressSource {
    /// The lowest address of the pool (network and broadcast excluded) not
    /// yet held by any gateway.
    Pool(IpNet),
    /// One of a gateway node's addresses, chosen by the store inside the
    /// create transaction: the address used by the fewest VPN gateways of
    /// that node (ties: the lowest). Each gateway gets its own address while
    /// the node has free ones; only when gateways outnumber addresses do
    /// they share.
    Node { node_id: GatewayNodeId },
}

#[derive(Debug, Clone)]
pub struct NewVpnGw {
    pub vpc_id: VpcRowId,
    pub name: String,
    pub bandwidth: i64,
    pub charge_type: String,
    pub charge_period: Option<i64>,
    pub address: AddressSource,
}

#[derive(Debug, Clone, Default)]
pub struct VpnGwFilter {
    pub vpc: Option<IdRef<VpcKind>>,
    pub id: Option<IdRef<VpnGwKind>>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserGw {
    pub id: UserGwRowId,
    pub un_id: UserGwId,
    pub name: String,
    pub address: IpAddr,
    pub conn_num: i64,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewUserGw {
    pub name: String,
    pub address: IpAddr,
}

#[derive(Debug, Clone, Default)]
pub struct UserGwFilter {
    pub id: Option<IdRef<UserGwKind>>,
    pub name: Option<String>,
}

/// A short view of a gateway (`K`: its kind) as a connection shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GwRef<K: RowKind> {
    pub id: RowId<K>,
    pub un_id: UnifiedId<K>,
    pub name: String,
    pub address: IpAddr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpnConn {
    pub id: VpnConnRowId,
    pub un_id: VpnConnId,
    pub vpc: VpcRef,
    pub vpn_gw: GwRef<VpnGwKind>,
    pub user_gw: GwRef<UserGwKind>,
    pub name: String,
    pub status: ConnStatus,
    pub net_status: NetStatus,
    pub settings: ConnSettings,
    /// API 3.0 resource tags, in the order given at creation.
    pub tags: Vec<Tag>,
    /// The unfinished task that owns this connection, if any.
    pub active_task: Option<TaskId>,
    /// The gateway node of its VPN gateway; `None` means API only.
    pub node_id: Option<GatewayNodeId>,
    pub created_at: Timestamp,
}

impl VpnConn {
    /// The desired state of the connection's tunnel, as drivers (and the
    /// peer configuration) take it.
    pub fn tunnel_spec(&self) -> TunnelSpec {
        TunnelSpec {
            name: self.un_id.clone(),
            local_addr: self.vpn_gw.address,
            remote_addr: self.user_gw.address,
            settings: self.settings.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewConn {
    pub vpc_id: VpcRowId,
    pub vpn_gw_id: VpnGwRowId,
    pub user_gw_id: UserGwRowId,
    pub name: String,
    pub settings: ConnSettings,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, Default)]
pub struct ConnFilter {
    pub vpc: Option<IdRef<VpcKind>>,
    pub vpn_gw: Option<IdRef<VpnGwKind>>,
    pub id: Option<IdRef<VpnConnKind>>,
    /// Substring match.
    pub name: Option<String>,
}

/// A change to an existing connection; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct ConnChange {
    pub name: Option<String>,
    pub settings: Option<ConnSettings>,
}

/// The outcome recorded on a finished task.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskError {
    pub error_code: String,
    pub error_msg: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub id: TaskId,
    pub kind: TaskKind,
    pub status: TaskStatus,
    pub conn_id: VpnConnRowId,
    pub conn_un_id: VpnConnId,
    pub vpn_gw_un_id: VpnGwId,
    pub user_gw_un_id: UserGwId,
    pub error: Option<TaskError>,
    /// How many times a worker claimed it (more than 1 after a crash).
    pub attempts: i64,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

/// A task a worker holds a lease on, with everything the driver needs.
#[derive(Debug, Clone)]
pub struct ClaimedTask {
    pub task: Task,
    pub conn: VpnConn,
}

/// A strongSwan gateway node (a charon reached over VICI) that vpcd drives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayNode {
    pub id: GatewayNodeId,
    pub name: String,
    /// The VICI endpoint, e.g. `unix:///var/run/charon.vici` or
    /// `tcp://192.0.2.10:4502`. Unique.
    pub vici: String,
    /// Public addresses VPN gateways placed on the node may use, in the
    /// order they were given.
    pub addresses: Vec<IpAddr>,
    pub created_at: Timestamp,
}

/// A vpcd process of the cluster (a member; "node" is kept for strongSwan
/// gateway nodes), as its heartbeats describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMember {
    /// The process's worker id (unique per process start).
    pub name: String,
    pub started_at: Timestamp,
    pub last_seen: Timestamp,
    /// Free text from the member: version, pid, listen addresses.
    pub info: String,
}

/// Which gateway node holds a lease: `(gateway node id, holder, until)`;
/// the lease is held through `until` inclusive.
pub type GatewayLease = (GatewayNodeId, String, Timestamp);

/// The task queue at one moment, for monitoring (all accounts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TaskCounts {
    /// Unfinished tasks no worker holds a current lease on: never claimed,
    /// or their lease expired (a worker died), so the next claim takes them.
    pub queued: u64,
    /// Unfinished tasks a worker holds a current lease on.
    pub running: u64,
    /// Failed tasks still kept (finished tasks are deleted after the
    /// retention period).
    pub failed: u64,
    /// When the oldest queued task was created; `None` with none queued.
    pub oldest_queued_at: Option<Timestamp>,
}

/// How many connections (all accounts) are in one state with one live
/// health, for monitoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnCount {
    pub status: ConnStatus,
    pub net_status: NetStatus,
    pub count: u64,
}

/// One database connection pool's use, for monitoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUse {
    /// `main` (PostgreSQL: one pool for everything); SQLite: `write` (its
    /// one writer), `read` and `nonces`.
    pub pool: &'static str,
    /// Connections open now, idle or in use.
    pub open: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// The most the pool opens (SQLite's `read`: the most kept open between
    /// reads; a read beyond them opens one for itself).
    pub max: u32,
}

pub use vpcd_types::diag::{LastFailure, Traffic, TunnelEvent};

/// The up/down events kept per connection (the newest).
pub const EVENTS_KEPT: usize = 20;

/// What a driving vpcd observed on a gateway node since its last write,
/// recorded in one transaction ([`crate::Store::record_diagnostics`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiagnosticsBatch {
    /// Each connection's latest failure (replaces the one recorded).
    pub failures: Vec<(VpnConnId, LastFailure)>,
    /// Up/down events, oldest first.
    pub events: Vec<(VpnConnId, TunnelEvent)>,
    /// Traffic samples taken at `traffic_at`; `None`: the tunnel had no
    /// installed SA then.
    pub traffic: Vec<(VpnConnId, Option<Traffic>)>,
    pub traffic_at: Timestamp,
}

impl DiagnosticsBatch {
    pub fn is_empty(&self) -> bool {
        self.failures.is_empty() && self.events.is_empty() && self.traffic.is_empty()
    }
}

/// What is recorded about one connection's tunnel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnDiagnostics {
    pub last_failure: Option<LastFailure>,
    /// The latest traffic sample; `None` when the tunnel had no installed
    /// SA at the latest sample (or none was taken).
    pub traffic: Option<Traffic>,
    /// When the latest traffic sample was taken (with or without SAs).
    pub sampled_at: Option<Timestamp>,
    /// Up/down events, newest first, at most [`EVENTS_KEPT`].
    pub events: Vec<TunnelEvent>,
}
