//! Persistence for vpcd: the [`Store`] trait and its engines.
//!
//! Only this crate knows SQL. Every invariant that spans rows (quotas, unique
//! names, one tunnel per gateway pair, one running task per connection) is
//! enforced inside a single database transaction here, never by a
//! read-then-write in the caller, so it holds across several vpcd processes.
//!
//! # Layout
//! - [`model`]: rows and inputs.
//! - `sql`: the store itself, written once over an engine: every statement,
//!   transaction and check, and the `Engine` trait naming what the engines do
//!   differently.
//! - `sqlite`: the embedded default (WAL mode, one writer connection,
//!   group commit through `sql/writer.rs`).
//! - `postgres`: for several vpcd processes on one database (row locks,
//!   `SKIP LOCKED` claims, advisory-locked migrations).
//! - `common`: the rules that involve no SQL: state transitions, address
//!   choice, row decoding (where sealed secrets are opened).
//! - [`MasterKey`] (`master_key`): secrets at rest, sealed under a key kept
//!   outside the database.
//! - `migrations/sqlite/`, `migrations/postgres/`: each engine's schema,
//!   applied by sqlx's migrator.
//! - [`testing`]: throwaway PostgreSQL databases and a claim-any-task helper
//!   for test suites.
//! - `tests/common/conformance.rs`: the behaviour every engine must show,
//!   run against SQLite by `tests/sqlite.rs` and against PostgreSQL by
//!   `tests/postgres.rs`.

use std::net::IpAddr;

use async_trait::async_trait;
use vpcd_types::id::{UserGwKind, VpcKind, VpnConnKind, VpnGwKind};
use vpcd_types::{
    GatewayNodeId, IdRef, NetStatus, TaskId, UserGwRowId, VpcRowId, VpnConnId, VpnConnRowId,
    VpnGwRowId,
};

mod common;
mod console;
mod master_key;
pub mod model;
mod postgres;
mod sql;
mod sqlite;
mod sqlite_read;
pub mod testing;

pub use console::{ConsoleLogin, ConsoleSession, ConsoleStore, NewConsoleSession};
pub use master_key::{KeyFileError, MasterKey};
pub use model::*;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Which resource an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Vpc,
    VpnGw,
    UserGw,
    VpnConn,
    Task,
    Account,
    Key,
    GatewayNode,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0:?} not found")]
    NotFound(Resource),
    /// The name is already used where it must be unique.
    #[error("{0:?} name in use")]
    NameInUse(Resource),
    /// A peer gateway with this address already exists.
    #[error("address in use")]
    AddressInUse,
    #[error("quota {0:?} reached")]
    LimitExceeded(Quota),
    /// The resource still has dependants (gateways, tunnels).
    #[error("{0:?} still in use")]
    InUse(Resource),
    /// The connection has an unfinished task.
    #[error("connection busy with task {0}")]
    Busy(TaskId),
    /// The connection's state does not allow the operation (for example a
    /// reset of a tunnel whose creation failed).
    #[error("connection state does not allow this")]
    InvalidState,
    #[error("address pool exhausted")]
    PoolExhausted,
    /// Another account's tunnel on the same gateway node could be taken
    /// for this one ([`vpcd_types::TunnelFace::clash`]).
    #[error("clashes with another account's tunnel on the gateway node: {0:?}")]
    TunnelClash(vpcd_types::TunnelClash),
    /// The storage cannot take writes (or answer at all) for now: the disk
    /// is full, the database is read-only, or the server is unreachable.
    /// Nothing of the refused operation was written, and the store recovers
    /// by itself once the cause is gone. The text is the engine's, for the
    /// log only: it may name files.
    #[error("storage unavailable: {0}")]
    StorageUnavailable(String),
    /// The master key given does not open the database's secrets: they
    /// were sealed under another key.
    #[error(
        "the master key does not open this database: its secrets were sealed under another \
         master key (every vpcd sharing a database needs the same key file)"
    )]
    WrongMasterKey,
    #[error("database error: {0}")]
    Backend(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if storage_fault(&e) {
            StoreError::StorageUnavailable(e.to_string())
        } else {
            StoreError::Backend(e.to_string())
        }
    }
}

/// Whether `e` says the storage itself cannot serve (full, read-only, gone)
/// rather than that a statement or a rule failed.
fn storage_fault(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            if let Some(e) = db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
                sqlite::is_storage_fault(e)
            } else if let Some(e) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                postgres::is_storage_fault(e)
            } else {
                false
            }
        }
        // The server went away, or no connection could be made (or freed)
        // in time.
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => true,
        _ => false,
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Open the store named by `url_or_path`: `postgres://...` or
/// `postgresql://...` for PostgreSQL; `sqlite://PATH`, `sqlite:PATH` or a
/// plain file path (created if missing) for SQLite, or `sqlite::memory:` for
/// a private in-memory database. Either way the schema is brought up to date
/// and `key` checked against the database's (`WrongMasterKey`), and secrets
/// an older vpcd stored in clear are sealed under it.
pub async fn connect(url_or_path: &str, key: MasterKey) -> Result<std::sync::Arc<dyn Store>> {
    // Never echo the URL in an error: it may carry a password.
    if url_or_path.starts_with("postgres://") || url_or_path.starts_with("postgresql://") {
        return Ok(std::sync::Arc::new(
            PgStore::connect(url_or_path, key).await?,
        ));
    }
    if sqlite_spelling(url_or_path) == ":memory:" {
        return Ok(std::sync::Arc::new(SqliteStore::in_memory().await?));
    }
    let path = sqlite_path(url_or_path)
        .ok_or_else(|| StoreError::Backend("empty database path".into()))?;
    Ok(std::sync::Arc::new(SqliteStore::open(path, key).await?))
}

/// The SQLite database file that [`connect`] opens for `url_or_path`: `None`
/// for PostgreSQL, an in-memory database or an empty path. The server keeps
/// this file and its siblings (`-wal`, `-shm`, nonces) private to its owner.
pub fn sqlite_path(url_or_path: &str) -> Option<&std::path::Path> {
    if url_or_path.starts_with("postgres://") || url_or_path.starts_with("postgresql://") {
        return None;
    }
    let path = sqlite_spelling(url_or_path);
    (!path.is_empty() && path != ":memory:").then(|| std::path::Path::new(path))
}

/// `url_or_path` without its `sqlite://` or `sqlite:` prefix.
fn sqlite_spelling(url_or_path: &str) -> &str {
    url_or_path
        .strip_prefix("sqlite://")
        .or_else(|| url_or_path.strip_prefix("sqlite:"))
        .unwrap_or(url_or_path)
}

/// Everything vpcd persists. Object safe: the server holds an
/// `Arc<dyn Store>` chosen at start-up from the database URL.
#[async_trait]
pub trait Store: ConsoleStore + Send + Sync + 'static {
    // ---- accounts and keys -------------------------------------------
    async fn create_account(&self, name: &str) -> Result<Account>;
    async fn list_accounts(&self) -> Result<Vec<(Account, Vec<ApiKey>)>>;
    /// Create a key pair for the account (by name).
    async fn create_key(&self, account: &str) -> Result<ApiKey>;
    async fn set_account_disabled(&self, account: &str, disabled: bool) -> Result<()>;
    async fn set_key_disabled(&self, secret_id: &str, disabled: bool) -> Result<()>;
    async fn find_key(&self, secret_id: &str) -> Result<Option<ApiKey>>;
    /// Record a nonce. Returns `false` when this (secret id, nonce) was seen
    /// at or after `not_before` (a replay). Entries older than `not_before`
    /// may be forgotten.
    async fn remember_nonce(
        &self,
        secret_id: &str,
        nonce: &str,
        now: Timestamp,
        not_before: Timestamp,
    ) -> Result<bool>;
    /// Record nonces already accepted elsewhere (the API side's write-behind
    /// of nonces it checked in memory), all seen at `now`, for
    /// [`Store::recent_nonces`] to return; older entries than `not_before`
    /// may be forgotten. Whether [`Store::remember_nonce`] refuses them
    /// afterwards is the engine's choice: PostgreSQL inserts them with it
    /// (so it does), SQLite appends them to a table of their own without a
    /// key (so it does not, but see [`Store::recent_nonces`]).
    async fn record_nonces(
        &self,
        nonces: &[(String, String)],
        now: Timestamp,
        not_before: Timestamp,
    ) -> Result<()>;
    /// Every (secret id, nonce, seen at) recorded at or after `not_before`,
    /// at most `limit` of them (newest first): what a restarted single-node
    /// vpcd loads into its in-memory replay check. When `limit` of them come
    /// back there may be more, and [`Store::remember_nonce`] refuses every
    /// one recorded at or after `not_before` from then on, also those
    /// [`Store::record_nonces`] recorded.
    async fn recent_nonces(
        &self,
        not_before: Timestamp,
        limit: usize,
    ) -> Result<Vec<(String, String, Timestamp)>>;

    // ---- VPCs -------------------------------------------------------------
    async fn create_vpc(&self, scope: &Scope, new: NewVpc, limits: &Limits) -> Result<Vpc>;
    async fn get_vpc(&self, scope: &Scope, id: &IdRef<VpcKind>) -> Result<Option<Vpc>>;
    async fn list_vpcs(&self, scope: &Scope, f: &VpcFilter, page: &Page)
        -> Result<(u64, Vec<Vpc>)>;
    /// `NameInUse(Vpc)` when another VPC of the scope has the name.
    async fn rename_vpc(&self, scope: &Scope, id: VpcRowId, name: &str) -> Result<()>;
    /// `InUse(Vpc)` while it has VPN gateways.
    async fn delete_vpc(&self, scope: &Scope, id: VpcRowId) -> Result<()>;

    // ---- VPN gateways -----------------------------------------------------
    async fn create_vpn_gw(&self, scope: &Scope, new: NewVpnGw, limits: &Limits) -> Result<VpnGw>;
    async fn get_vpn_gw(&self, scope: &Scope, id: &IdRef<VpnGwKind>) -> Result<Option<VpnGw>>;
    async fn list_vpn_gws(
        &self,
        scope: &Scope,
        f: &VpnGwFilter,
        page: &Page,
    ) -> Result<(u64, Vec<VpnGw>)>;
    async fn rename_vpn_gw(&self, scope: &Scope, id: VpnGwRowId, name: &str) -> Result<()>;
    /// `InUse(VpnGw)` while it has tunnels.
    async fn delete_vpn_gw(&self, scope: &Scope, id: VpnGwRowId) -> Result<()>;

    // ---- peer (customer) gateways -----------------------------------------
    async fn create_user_gw(
        &self,
        scope: &Scope,
        new: NewUserGw,
        limits: &Limits,
    ) -> Result<UserGw>;
    async fn get_user_gw(&self, scope: &Scope, id: &IdRef<UserGwKind>) -> Result<Option<UserGw>>;
    async fn list_user_gws(
        &self,
        scope: &Scope,
        f: &UserGwFilter,
        page: &Page,
    ) -> Result<(u64, Vec<UserGw>)>;
    async fn rename_user_gw(&self, scope: &Scope, id: UserGwRowId, name: &str) -> Result<()>;
    /// `InUse(UserGw)` while it has tunnels.
    async fn delete_user_gw(&self, scope: &Scope, id: UserGwRowId) -> Result<()>;

    // ---- VPN connections and their tasks ----------------------------------
    /// Insert the connection (status 0) and its create task (status 2) in one
    /// transaction, after checking every quota and the unique name in it,
    /// and (on a gateway node) that no other account's tunnel on the node
    /// clashes with it (`TunnelClash`).
    async fn create_conn(
        &self,
        scope: &Scope,
        new: NewConn,
        limits: &Limits,
    ) -> Result<(VpnConn, Task)>;
    async fn get_conn(&self, scope: &Scope, id: &IdRef<VpnConnKind>) -> Result<Option<VpnConn>>;
    async fn list_conns(
        &self,
        scope: &Scope,
        f: &ConnFilter,
        page: &Page,
    ) -> Result<(u64, Vec<VpnConn>)>;
    /// Store the new desired state (status 2) and a modify task. `Busy` if
    /// another task is unfinished; `TunnelClash` as for `create_conn`.
    async fn begin_modify(
        &self,
        scope: &Scope,
        conn_id: VpnConnRowId,
        change: ConnChange,
    ) -> Result<Task>;
    /// Status 4 and a delete task. `Busy` if another task is unfinished.
    async fn begin_delete(&self, scope: &Scope, conn_id: VpnConnRowId) -> Result<Task>;
    /// A reset task; the status is unchanged. `Busy` if another task is
    /// unfinished, `InvalidState` unless the tunnel is configured (status 6).
    async fn begin_reset(&self, scope: &Scope, conn_id: VpnConnRowId) -> Result<Task>;
    async fn get_task(&self, scope: &Scope, task_id: TaskId) -> Result<Option<Task>>;
    /// Keep the API 3.0 RequestId of the call that started a task, by which
    /// DescribeVpcTaskResult finds it. `NotFound(Task)` when the task does
    /// not exist or already has one; `InUse(Task)` when another task has
    /// this RequestId.
    async fn label_task(&self, task_id: TaskId, request_id: &str) -> Result<()>;
    /// The task of `scope` that [`Store::label_task`] labelled `request_id`.
    async fn get_task_by_request(&self, scope: &Scope, request_id: &str) -> Result<Option<Task>>;

    // ---- the task engine --------------------------------------------------
    /// Claim up to `max` runnable tasks (unfinished and either never
    /// claimed or with an expired lease) of the connections whose VPN
    /// gateway is placed on one of `nodes` (`None` in the list: API-only
    /// gateways), in one transaction. A vpcd passes the gateway nodes whose
    /// lease it holds, so the tasks of a node are run only by the vpcd
    /// driving it. Each claim increments `attempts` and sets the lease to
    /// `now + lease_secs`.
    ///
    /// Fair across accounts: the store claims round robin by account (the
    /// oldest runnable task of the next account after the one it claimed
    /// from last, wrapping around), so one account's burst of tasks delays
    /// another account's task by at most one task per account queued.
    async fn claim_tasks_on(
        &self,
        worker: &str,
        now: Timestamp,
        lease_secs: i64,
        nodes: &[Option<GatewayNodeId>],
        max: usize,
    ) -> Result<Vec<ClaimedTask>>;
    /// [`Store::claim_tasks_on`] for one task.
    async fn claim_task_on(
        &self,
        worker: &str,
        now: Timestamp,
        lease_secs: i64,
        nodes: &[Option<GatewayNodeId>],
    ) -> Result<Option<ClaimedTask>> {
        Ok(self
            .claim_tasks_on(worker, now, lease_secs, nodes, 1)
            .await?
            .pop())
    }
    /// Finish tasks the worker still holds, in one transaction, and apply
    /// each state transition to its connection (create 0->6/1, modify
    /// 2->6/3, delete 4->removed/5, reset back to 6). For each task, in
    /// order: `false`, changing nothing for it, if its lease was lost to
    /// another worker.
    async fn finish_tasks(
        &self,
        worker: &str,
        now: Timestamp,
        outcomes: Vec<(TaskId, std::result::Result<(), TaskError>)>,
    ) -> Result<Vec<bool>>;
    /// [`Store::finish_tasks`] for one task.
    async fn finish_task(
        &self,
        task_id: TaskId,
        worker: &str,
        now: Timestamp,
        outcome: std::result::Result<(), TaskError>,
    ) -> Result<bool> {
        let done = self
            .finish_tasks(worker, now, vec![(task_id, outcome)])
            .await?;
        Ok(done.first().copied().unwrap_or(false))
    }
    /// The holders of leases on unfinished tasks (expired leases included),
    /// each once.
    async fn task_lease_holders(&self) -> Result<Vec<String>>;
    /// Drop every lease `holder` has on an unfinished task, so the next
    /// claim takes those tasks at once instead of when the leases run out:
    /// for a holder known to be dead. The number of tasks released.
    async fn release_task_leases(&self, holder: &str) -> Result<u64>;

    // ---- live state and reconciliation ------------------------------------
    /// Record live SA states by connection unified id. Unknown ids are
    /// ignored.
    async fn set_net_status(&self, changes: &[(VpnConnId, NetStatus)]) -> Result<()>;
    /// Record what a driving vpcd observed about its tunnels, in one
    /// transaction: each failure replaces the connection's last one, events
    /// are appended (only the newest [`EVENTS_KEPT`] per connection are
    /// kept), traffic samples replace the previous sample. Unknown (or
    /// deleted) connection ids are ignored.
    async fn record_diagnostics(&self, batch: DiagnosticsBatch) -> Result<()>;
    /// What is recorded about a connection's tunnel (empty if nothing). The
    /// caller has found the connection in its scope.
    async fn conn_diagnostics(&self, conn: VpnConnRowId) -> Result<ConnDiagnostics>;
    /// Every connection that should be loaded on the node (`None`: API-only
    /// gateways): all but those whose creation failed or that are deleted.
    async fn desired_conns(&self, node_id: Option<GatewayNodeId>) -> Result<Vec<VpnConn>>;

    // ---- bulk load ------------------------------------------------------------
    /// Insert already-configured connections (status 6, no task) into
    /// `scope`: the bulk-load path of the benchmark and of operators'
    /// imports. No quota is checked; names must still be unique per VPC
    /// (`NameInUse(VpnConn)`) and every parent must exist in the scope
    /// (`NotFound`). Rows are written in large batches, one transaction each:
    /// when a batch fails, the batches before it stay. Once every batch is
    /// in, the planner's statistics are refreshed (SQLite `ANALYZE`,
    /// PostgreSQL `VACUUM (ANALYZE) vpn_conns`), so the plans are right
    /// straight after a bulk load. Returns the number of connections
    /// inserted.
    async fn import_conns(&self, scope: &Scope, conns: Vec<NewConn>) -> Result<u64>;
    /// The scope's maintained connection count (what the per-region quota
    /// reads, kept up to date by every insert and delete of a connection)
    /// and the `COUNT(*)` of its connection rows, read in one snapshot: the
    /// two are equal unless the counter drifted. A consistency check for
    /// tests and operators; not on any request path.
    async fn conn_count_check(&self, scope: &Scope) -> Result<(u64, u64)>;

    // ---- gateway nodes ----------------------------------------------------------
    /// Register a strongSwan gateway node. `NameInUse(GatewayNode)` when the
    /// name or the VICI URI is taken.
    async fn add_gateway_node(
        &self,
        name: &str,
        vici: &str,
        addresses: &[IpAddr],
    ) -> Result<GatewayNode>;
    /// The node with this VICI URI, its addresses replaced by `addresses`;
    /// created if missing, named `local` (a UNIX socket) or after the URI's
    /// host, with a `-N` suffix if that name is taken. Safe to call from
    /// several vpcd processes at once.
    async fn ensure_gateway_node(&self, vici: &str, addresses: &[IpAddr]) -> Result<GatewayNode>;
    /// Every gateway node, by id.
    async fn list_gateway_nodes(&self) -> Result<Vec<GatewayNode>>;
    /// `InUse(GatewayNode)` while VPN gateways are placed on it.
    async fn remove_gateway_node(&self, id: GatewayNodeId) -> Result<()>;

    // ---- the cluster of vpcd processes ------------------------------------------
    /// Record that vpcd process `member` is alive at `now` (created on its
    /// first heartbeat). Members not seen for a day are forgotten.
    async fn heartbeat(&self, member: &str, now: Timestamp, info: &str) -> Result<()>;
    /// Every vpcd process that sent a heartbeat, by name.
    async fn list_members(&self) -> Result<Vec<ClusterMember>>;
    /// Take or renew the lease on a gateway node, atomically: `true` (and the
    /// lease runs to `now + ttl_secs`) if it was free, expired (its `until`
    /// is before `now`) or already held by `holder`; `false`, changing
    /// nothing, if another holder's lease is current.
    /// `NotFound(GatewayNode)` for an unknown node.
    async fn acquire_gateway_lease(
        &self,
        gateway_node_id: GatewayNodeId,
        holder: &str,
        now: Timestamp,
        ttl_secs: i64,
    ) -> Result<bool>;
    /// Give the lease up if `holder` has it; otherwise nothing happens.
    async fn release_gateway_lease(
        &self,
        gateway_node_id: GatewayNodeId,
        holder: &str,
    ) -> Result<()>;
    /// Every lease row, current or expired: `(gateway node, holder, until)`,
    /// by gateway node.
    async fn gateway_leases(&self) -> Result<Vec<GatewayLease>>;

    // ---- upkeep -------------------------------------------------------------------
    /// Delete up to `batch` finished tasks (succeeded or failed) that
    /// finished before `finished_before`, oldest first, in one short
    /// transaction; the number deleted. Running tasks are never deleted.
    async fn prune_tasks(&self, finished_before: Timestamp, batch: u32) -> Result<u64>;

    // ---- monitoring (read at scrape time, across all accounts) -------------------
    /// The task queue at `now`, read in one snapshot: queued (unfinished,
    /// no lease or an expired one, so the next claim takes it), running
    /// (a lease current at `now`), failed (kept until pruned), and the
    /// creation time of the oldest queued task.
    async fn task_counts(&self, now: Timestamp) -> Result<TaskCounts>;
    /// The number of connections in each (status, net status) pair that has
    /// any, ordered by status then net status.
    async fn conn_counts(&self) -> Result<Vec<ConnCount>>;
    /// The use of each database connection pool, without touching the
    /// database.
    fn pool_use(&self) -> Vec<PoolUse>;
    /// Seal every secret under `new_key` instead of the store's key, and
    /// record `new_key`'s check, in one transaction: afterwards the database
    /// opens with `new_key` only (this store uses it from then on). The
    /// replaced values are scrubbed from the database's files where the
    /// engine allows (SQLite: `secure_delete` and a truncated WAL;
    /// PostgreSQL: the two tables rewritten).
    async fn rotate_master_key(&self, new_key: MasterKey) -> Result<Resealed>;
}
