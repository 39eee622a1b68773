//! The embedded SQLite engine.
//!
//! One database file in WAL mode with `synchronous=FULL`, so a write that was
//! answered survives a crash or a power loss. Writes go through a pool of
//! exactly one connection and every write transaction starts with
//! `BEGIN IMMEDIATE`: the quota counts and uniqueness checks made inside it
//! cannot race another writer, neither in this process (the pool queues them)
//! nor in another process on the same file (SQLite's write lock, waited on for
//! up to [`BUSY_TIMEOUT`]). A deferred `BEGIN` would not do: a transaction
//! that reads before it writes could not upgrade to a writer once another
//! connection committed, and SQLite reports that as busy without waiting.
//! The per-region connection quota reads a count kept in `conn_counts`
//! (migration 0004), updated in the same write transactions that insert or
//! delete connection rows (`create_conn`, `import_conns`, `finish_task`).
//!
//! Reads use a few read-only connections. A list runs its `COUNT(*)` and its
//! page inside one read transaction, so both come from the same snapshot.
//!
//! **Nonces** live in a second database file next to the main one
//! (`<db>-nonces`, e.g. `vpcd.db-nonces`), with its own single-connection
//! write pool, in WAL mode with `synchronous=NORMAL`. Every signed request
//! records its Nonce, so keeping that write off the main file means a read
//! no longer waits behind a durable write on the main writer, and the main
//! file's readers keep their page caches (SQLite drops a connection's cache
//! whenever another connection wrote to the file). Replay protection is still
//! shared by every process that opens the same database: they all open the
//! same nonce file, and the single `INSERT ... ON CONFLICT` statement is
//! atomic under SQLite's write lock. The trade-off: with `synchronous=NORMAL`
//! a WAL commit is not fsynced. A crash of vpcd (even `kill -9`) loses
//! nothing, since the commit is in the WAL file in the OS's cache; only an OS
//! crash or a power loss can forget the last nonces, which re-opens replay
//! for those requests within their Timestamp window only (older ones are
//! refused on the Timestamp alone). Everything else stays `synchronous=FULL`.
//! The main file's own `nonces` table (migration 0001) is no longer used by a
//! file-backed store; the in-memory store keeps using it.
//!
//! The unique indexes in `migrations/sqlite/` repeat the rules checked here
//! (names, addresses, unified ids, one running task per connection) so the
//! database refuses what a bug in this file might let through.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering as AtomicOrdering};
use std::time::Duration;

use async_trait::async_trait;
use ipnet::IpNet;
use sqlx::error::ErrorKind;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};
use vpcd_types::id::{IdKind, UnifiedId, UserGwKind, VpcKind, VpnConnKind, VpnGwKind};
use vpcd_types::{ConnStatus, IdRef, NetStatus, Secret, TaskKind, TaskStatus};

use crate::common::*;
use crate::model::*;
use crate::{Resource, Result, Store, StoreError};

/// How long a statement waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Read-only connections; writes always use exactly one.
const READERS: u32 = 4;
/// Fresh unified ids tried before a collision is reported as an error.
const ID_ATTEMPTS: u32 = 8;
/// Expired nonces are pruned at most this often (in the caller's clock).
const NONCE_PRUNE_INTERVAL_SECS: i64 = 60;
/// Rows deleted per pruning statement, so the writer is never held long.
const NONCE_PRUNE_BATCH: i64 = 2_000;
/// Pruning batches per interval; whatever is left waits for the next one.
const NONCE_PRUNE_MAX_BATCHES: u32 = 16;

/// Connections written per transaction by `import_conns`.
const IMPORT_BATCH: usize = 10_000;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

type Tx = Transaction<'static, Sqlite>;
type Query<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>;

/// The SQLite implementation of [`Store`].
pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
    /// The nonce database's one connection (the main writer for in-memory).
    nonces: SqlitePool,
    last_nonce_prune: AtomicI64,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Open (creating it if missing) the database file and bring its schema
    /// up to date.
    pub async fn open(path: &Path) -> Result<SqliteStore> {
        let base = SqliteConnectOptions::new()
            .filename(path)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .synchronous(SqliteSynchronous::Full);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .connect_with(
                base.clone()
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal),
            )
            .await?;
        MIGRATOR
            .run(&write)
            .await
            .map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?;
        let read = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(base.read_only(true))
            .await?;
        let nonces = open_nonces(&nonce_path(path)).await?;
        Ok(SqliteStore::from_pools(write, read, nonces))
    }

    /// A private in-memory database, for tests. It has a single connection
    /// that serves reads and writes alike (an in-memory database cannot be
    /// shared between connections without SQLite's shared-cache mode).
    pub async fn in_memory() -> Result<SqliteStore> {
        let opts = SqliteConnectOptions::new()
            .in_memory(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            // Dropping the only connection would drop the database.
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(opts)
            .await?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?;
        Ok(SqliteStore::from_pools(pool.clone(), pool.clone(), pool))
    }

    fn from_pools(write: SqlitePool, read: SqlitePool, nonces: SqlitePool) -> SqliteStore {
        SqliteStore {
            write,
            read,
            nonces,
            last_nonce_prune: AtomicI64::new(i64::MIN),
        }
    }

    async fn begin_write(&self) -> Result<Tx> {
        Ok(self.write.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Delete a VPC or gateway of `scope` unless something still refers to
    /// it: `NotFound` / `InUse` of `parent.resource`. The write transaction
    /// (BEGIN IMMEDIATE) keeps a dependant from appearing in between.
    async fn delete_unused(&self, scope: &Scope, id: i64, parent: &Parent) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let found: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT id FROM {} WHERE id = ?1 AND account_id = ?2 AND region = ?3",
            parent.table
        ))
        .bind(id)
        .bind(scope.account_id)
        .bind(&scope.region)
        .fetch_optional(&mut *tx)
        .await?;
        if found.is_none() {
            return Err(StoreError::NotFound(parent.resource));
        }
        let used: bool = sqlx::query_scalar(&format!(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE {} = ?1)",
            parent.child_table, parent.child_fk
        ))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        if used {
            return Err(StoreError::InUse(parent.resource));
        }
        sqlx::query(&format!("DELETE FROM {} WHERE id = ?1", parent.table))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| in_use_or(e, parent.resource))?;
        tx.commit().await?;
        Ok(())
    }

    async fn begin_read(&self) -> Result<Tx> {
        Ok(self.read.begin().await?)
    }

    /// Delete nonces older than the replay window, at most once per
    /// interval and in small batches. Failures are logged, not returned: the
    /// nonce itself has been recorded by then.
    async fn maybe_prune_nonces(&self, now: Timestamp, not_before: Timestamp) {
        let last = self.last_nonce_prune.load(AtomicOrdering::Relaxed);
        if now < last.saturating_add(NONCE_PRUNE_INTERVAL_SECS)
            || self
                .last_nonce_prune
                .compare_exchange(last, now, AtomicOrdering::Relaxed, AtomicOrdering::Relaxed)
                .is_err()
        {
            return;
        }
        for _ in 0..NONCE_PRUNE_MAX_BATCHES {
            let res = sqlx::query(
                "DELETE FROM nonces WHERE rowid IN \
                 (SELECT rowid FROM nonces WHERE seen_at < ?1 LIMIT ?2)",
            )
            .bind(not_before)
            .bind(NONCE_PRUNE_BATCH)
            .execute(&self.nonces)
            .await;
            match res {
                Ok(r) if r.rows_affected() < NONCE_PRUNE_BATCH as u64 => return,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "pruning old nonces failed");
                    return;
                }
            }
        }
    }

    /// Claim the oldest runnable task, among those on `nodes` if given.
    async fn claim(
        &self,
        worker: &str,
        now: Timestamp,
        lease_secs: i64,
        nodes: Option<&[Option<i64>]>,
    ) -> Result<Option<ClaimedTask>> {
        let mut tx = self.begin_write().await?;
        loop {
            let candidate: Option<i64> = match nodes {
                None => {
                    sqlx::query_scalar(CLAIM_NEXT)
                        .bind(now)
                        .fetch_optional(&mut *tx)
                        .await?
                }
                Some(nodes) => {
                    claim_on_query("", now, nodes)
                        .build_query_scalar()
                        .fetch_optional(&mut *tx)
                        .await?
                }
            };
            let Some(task_id) = candidate else {
                tx.commit().await?;
                return Ok(None);
            };
            let claimed = sqlx::query(
                "UPDATE tasks SET lease_owner = ?1, lease_until = ?2, attempts = attempts + 1 \
                 WHERE id = ?3 AND status = 2 AND (lease_until IS NULL OR lease_until < ?4)",
            )
            .bind(worker)
            .bind(now.saturating_add(lease_secs))
            .bind(task_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if claimed.rows_affected() != 1 {
                continue;
            }
            let conn_id: i64 = sqlx::query_scalar("SELECT conn_id FROM tasks WHERE id = ?1")
                .bind(task_id)
                .fetch_one(&mut *tx)
                .await?;
            match fetch_conn(&mut tx, None, &IdRef::Numeric(conn_id)).await? {
                Some(conn) => {
                    let task = fetch_task(&mut tx, task_id).await?;
                    tx.commit().await?;
                    return Ok(Some(ClaimedTask { task, conn }));
                }
                None => {
                    // Cannot happen while every running task's connection
                    // row exists; fail the task rather than wedge the queue
                    // behind it forever.
                    tracing::error!(task_id, "running task without its connection; failing it");
                    sqlx::query(
                        "UPDATE tasks SET status = 1, error_code = 'InternalError', \
                             error_msg = 'the connection no longer exists', finished_at = ?1, \
                             lease_owner = NULL, lease_until = NULL WHERE id = ?2",
                    )
                    .bind(now)
                    .bind(task_id)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
    }

    /// Create a task row and hand the connection to it, refusing atomically
    /// when another task owns the connection or its state forbids `kind`.
    async fn begin_task(
        &self,
        scope: &Scope,
        conn_id: i64,
        kind: TaskKind,
        change: Option<ConnChange>,
    ) -> Result<Task> {
        let (allowed, new_status) = task_start_rule(kind)?;
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT c.status, c.active_task, c.vpc_id, c.un_id, \
                    g.un_id AS gw_un_id, u.un_id AS ugw_un_id \
             FROM vpn_conns c \
             JOIN vpn_gws g ON g.id = c.vpn_gw_id \
             JOIN user_gws u ON u.id = c.user_gw_id \
             WHERE c.id = ?1 AND c.account_id = ?2 AND c.region = ?3",
        )
        .bind(conn_id)
        .bind(scope.account_id)
        .bind(&scope.region)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound(Resource::VpnConn))?;
        let active: Option<i64> = row.try_get("active_task")?;
        let status: i64 = row.try_get("status")?;
        if let Some(task) = active {
            return Err(StoreError::Busy(task));
        }
        if !allowed.iter().any(|s| s.code() == status) {
            return Err(StoreError::InvalidState);
        }
        let vpc_id: i64 = row.try_get("vpc_id")?;
        let (new_name, new_settings) = match change {
            Some(ConnChange { name, settings }) => {
                (name, settings.as_ref().map(encode_settings).transpose()?)
            }
            None => (None, None),
        };
        if let Some(name) = &new_name {
            let clash: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM vpn_conns \
                 WHERE account_id = ?1 AND region = ?2 AND vpc_id = ?3 AND name = ?4 AND id <> ?5",
            )
            .bind(scope.account_id)
            .bind(&scope.region)
            .bind(vpc_id)
            .bind(name)
            .bind(conn_id)
            .fetch_optional(&mut *tx)
            .await?;
            if clash.is_some() {
                return Err(StoreError::NameInUse(Resource::VpnConn));
            }
        }
        let now = unix_now();
        let task_id = insert_task(
            &mut tx,
            scope,
            kind,
            conn_id,
            row.try_get("un_id")?,
            row.try_get("gw_un_id")?,
            row.try_get("ugw_un_id")?,
            now,
        )
        .await?;
        // Conditional on the connection still being free, so the refusal is
        // race-free in any engine, not only under SQLite's single writer.
        let allowed = allowed
            .iter()
            .map(|s| s.code().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let updated = sqlx::query(&format!(
            "UPDATE vpn_conns SET active_task = ?1, status = COALESCE(?2, status), \
                 name = COALESCE(?3, name), settings = COALESCE(?4, settings) \
             WHERE id = ?5 AND active_task IS NULL AND status IN ({allowed})"
        ))
        .bind(task_id)
        .bind(new_status.map(ConnStatus::code))
        .bind(new_name)
        .bind(new_settings)
        .bind(conn_id)
        .execute(&mut *tx)
        .await
        .map_err(|e| match unique_violation(&e) {
            Some(m) if m.contains(".name") => StoreError::NameInUse(Resource::VpnConn),
            _ => e.into(),
        })?;
        if updated.rows_affected() != 1 {
            let active: Option<i64> =
                sqlx::query_scalar("SELECT active_task FROM vpn_conns WHERE id = ?1")
                    .bind(conn_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .flatten();
            return Err(match active {
                Some(t) => StoreError::Busy(t),
                None => StoreError::InvalidState,
            });
        }
        let task = fetch_task(&mut tx, task_id).await?;
        tx.commit().await?;
        Ok(task)
    }
}

#[async_trait]
impl Store for SqliteStore {
    // ---- accounts and keys -------------------------------------------

    async fn create_account(&self, name: &str) -> Result<Account> {
        let now = unix_now();
        let mut tx = self.begin_write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO accounts (name, disabled, created_at) VALUES (?1, 0, ?2) RETURNING id",
        )
        .bind(name)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match unique_violation(&e) {
            Some(_) => StoreError::NameInUse(Resource::Account),
            None => e.into(),
        })?;
        tx.commit().await?;
        Ok(Account {
            id,
            name: name.to_owned(),
            disabled: false,
            created_at: now,
        })
    }

    async fn list_accounts(&self) -> Result<Vec<(Account, Vec<ApiKey>)>> {
        let mut tx = self.begin_read().await?;
        let accounts =
            sqlx::query("SELECT id, name, disabled, created_at FROM accounts ORDER BY id")
                .fetch_all(&mut *tx)
                .await?;
        let keys = sqlx::query(&format!(
            "{KEY_SELECT} ORDER BY k.account_id, k.created_at, k.secret_id"
        ))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut out = Vec::with_capacity(accounts.len());
        for row in &accounts {
            out.push((account_from_row(row)?, Vec::new()));
        }
        for row in &keys {
            let key = key_from_row(row)?;
            // Both lists are ordered by account id.
            if let Ok(i) = out.binary_search_by_key(&key.account_id, |(a, _)| a.id) {
                out[i].1.push(key);
            }
        }
        Ok(out)
    }

    async fn create_key(&self, account: &str) -> Result<ApiKey> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query("SELECT id, disabled FROM accounts WHERE name = ?1")
            .bind(account)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound(Resource::Account))?;
        let account_id: i64 = row.try_get("id")?;
        let account_disabled: i64 = row.try_get("disabled")?;
        let now = unix_now();
        let mut attempt = 0;
        let (secret_id, secret_key) = loop {
            attempt += 1;
            let secret_id = format!("AKID{}", random_alnum(32));
            let secret_key = Secret::new(random_alnum(32));
            let res = sqlx::query(
                "INSERT INTO api_keys (secret_id, secret_key, account_id, disabled, created_at) \
                 VALUES (?1, ?2, ?3, 0, ?4)",
            )
            .bind(&secret_id)
            .bind(secret_key.expose())
            .bind(account_id)
            .bind(now)
            .execute(&mut *tx)
            .await;
            match res {
                Ok(_) => break (secret_id, secret_key),
                Err(e) if attempt < ID_ATTEMPTS && unique_violation(&e).is_some() => continue,
                Err(e) => return Err(e.into()),
            }
        };
        tx.commit().await?;
        Ok(ApiKey {
            secret_id,
            secret_key,
            account_id,
            disabled: account_disabled != 0,
        })
    }

    async fn set_account_disabled(&self, account: &str, disabled: bool) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let res = sqlx::query("UPDATE accounts SET disabled = ?1 WHERE name = ?2")
            .bind(i64::from(disabled))
            .bind(account)
            .execute(&mut *tx)
            .await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::NotFound(Resource::Account));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn set_key_disabled(&self, secret_id: &str, disabled: bool) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let res = sqlx::query("UPDATE api_keys SET disabled = ?1 WHERE secret_id = ?2")
            .bind(i64::from(disabled))
            .bind(secret_id)
            .execute(&mut *tx)
            .await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::NotFound(Resource::Key));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn find_key(&self, secret_id: &str) -> Result<Option<ApiKey>> {
        let mut conn = self.read.acquire().await?;
        let row = sqlx::query(&format!("{KEY_SELECT} WHERE k.secret_id = ?1"))
            .bind(secret_id)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn remember_nonce(
        &self,
        secret_id: &str,
        nonce: &str,
        now: Timestamp,
        not_before: Timestamp,
    ) -> Result<bool> {
        // One statement, so the check and the insert cannot be separated:
        // the primary key makes a concurrent duplicate conflict, and the
        // conflict only overwrites an entry that is outside the window.
        let res = sqlx::query(
            "INSERT INTO nonces (secret_id, nonce, seen_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (secret_id, nonce) DO UPDATE SET seen_at = excluded.seen_at \
             WHERE nonces.seen_at < ?4",
        )
        .bind(secret_id)
        .bind(nonce)
        .bind(now)
        .bind(not_before)
        .execute(&self.nonces)
        .await?;
        let fresh = res.rows_affected() == 1;
        self.maybe_prune_nonces(now, not_before).await;
        Ok(fresh)
    }

    // ---- VPCs -------------------------------------------------------------

    async fn create_vpc(&self, scope: &Scope, new: NewVpc, limits: &Limits) -> Result<Vpc> {
        let mut tx = self.begin_write().await?;
        if exists(
            &mut tx,
            "SELECT 1 FROM vpcs WHERE account_id = ?1 AND region = ?2 AND name = ?3",
            scope,
            &new.name,
        )
        .await?
        {
            return Err(StoreError::NameInUse(Resource::Vpc));
        }
        let count = count_in_scope(&mut tx, "vpcs", scope).await?;
        check_quota(count, limits.vpcs_per_region, Quota::VpcsPerRegion)?;
        let (account, region, name, cidr) = (
            scope.account_id,
            scope.region.clone(),
            new.name.clone(),
            new.cidr.as_given().to_owned(),
        );
        let now = unix_now();
        let (id, _) = insert_unified::<VpcKind, _>(
            &mut tx,
            "INSERT INTO vpcs (un_id, account_id, region, name, cidr, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
            move |q| {
                q.bind(account)
                    .bind(region.clone())
                    .bind(name.clone())
                    .bind(cidr.clone())
                    .bind(now)
            },
        )
        .await
        .map_err(|e| match unique_violation(&e) {
            Some(m) if m.contains(".name") => StoreError::NameInUse(Resource::Vpc),
            _ if is_fk_violation(&e) => StoreError::NotFound(Resource::Account),
            _ => e.into(),
        })?;
        let vpc = fetch_vpc(&mut tx, scope, &IdRef::Numeric(id))
            .await?
            .ok_or_else(|| vanished("vpc"))?;
        tx.commit().await?;
        Ok(vpc)
    }

    async fn get_vpc(&self, scope: &Scope, id: &IdRef<VpcKind>) -> Result<Option<Vpc>> {
        let mut conn = self.read.acquire().await?;
        fetch_vpc(&mut conn, scope, id).await
    }

    async fn list_vpcs(
        &self,
        scope: &Scope,
        f: &VpcFilter,
        page: &Page,
    ) -> Result<(u64, Vec<Vpc>)> {
        let mut tx = self.begin_read().await?;
        let mut count = vpc_query("SELECT COUNT(*) FROM vpcs v", scope, f);
        let total: i64 = count.build_query_scalar().fetch_one(&mut *tx).await?;
        let mut list = vpc_query(VPC_SELECT, scope, f);
        push_page(&mut list, page, "v");
        let rows = list.build().fetch_all(&mut *tx).await?;
        tx.commit().await?;
        let vpcs = rows.iter().map(vpc_from_row).collect::<Result<_>>()?;
        Ok((total as u64, vpcs))
    }

    async fn rename_vpc(&self, scope: &Scope, id: i64, name: &str) -> Result<()> {
        // The unique index on (account, region, name) decides a clash.
        let res = sqlx::query(
            "UPDATE vpcs SET name = ?1 WHERE id = ?2 AND account_id = ?3 AND region = ?4",
        )
        .bind(name)
        .bind(id)
        .bind(scope.account_id)
        .bind(&scope.region)
        .execute(&self.write)
        .await
        .map_err(|e| match unique_violation(&e) {
            Some(_) => StoreError::NameInUse(Resource::Vpc),
            None => e.into(),
        })?;
        if res.rows_affected() == 0 {
            return Err(StoreError::NotFound(Resource::Vpc));
        }
        Ok(())
    }

    async fn delete_vpc(&self, scope: &Scope, id: i64) -> Result<()> {
        self.delete_unused(scope, id, &VPC_PARENT).await
    }

    // ---- VPN gateways -----------------------------------------------------

    async fn create_vpn_gw(&self, scope: &Scope, new: NewVpnGw, limits: &Limits) -> Result<VpnGw> {
        let mut tx = self.begin_write().await?;
        let vpc: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM vpcs WHERE id = ?1 AND account_id = ?2 AND region = ?3",
        )
        .bind(new.vpc_id)
        .bind(scope.account_id)
        .bind(&scope.region)
        .fetch_optional(&mut *tx)
        .await?;
        if vpc.is_none() {
            return Err(StoreError::NotFound(Resource::Vpc));
        }
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM vpn_gws WHERE vpc_id = ?1")
            .bind(new.vpc_id)
            .fetch_one(&mut *tx)
            .await?;
        check_quota(count, limits.vpn_gws_per_vpc, Quota::VpnGwsPerVpc)?;
        let (address, node_id) = match new.address {
            AddressSource::Pool(net) => (pick_pool_address(&mut tx, net).await?, None),
            AddressSource::Node { node_id } => {
                (pick_node_address(&mut tx, node_id).await?, Some(node_id))
            }
        };
        let address_num = ipv4_num(address);
        let (account, region) = (scope.account_id, scope.region.clone());
        let NewVpnGw {
            vpc_id,
            name,
            bandwidth,
            charge_type,
            charge_period,
            ..
        } = new;
        let now = unix_now();
        let (id, _) = insert_unified::<VpnGwKind, _>(
            &mut tx,
            "INSERT INTO vpn_gws (un_id, account_id, region, vpc_id, name, bandwidth, \
                 charge_type, charge_period, address, address_num, node_id, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) RETURNING id",
            move |q| {
                q.bind(account)
                    .bind(region.clone())
                    .bind(vpc_id)
                    .bind(name.clone())
                    .bind(bandwidth)
                    .bind(charge_type.clone())
                    .bind(charge_period)
                    .bind(address.to_string())
                    .bind(address_num)
                    .bind(node_id)
                    .bind(now)
            },
        )
        .await?;
        let gw = fetch_vpn_gw(&mut tx, scope, &IdRef::Numeric(id))
            .await?
            .ok_or_else(|| vanished("vpn gateway"))?;
        tx.commit().await?;
        Ok(gw)
    }

    async fn get_vpn_gw(&self, scope: &Scope, id: &IdRef<VpnGwKind>) -> Result<Option<VpnGw>> {
        let mut conn = self.read.acquire().await?;
        fetch_vpn_gw(&mut conn, scope, id).await
    }

    async fn list_vpn_gws(
        &self,
        scope: &Scope,
        f: &VpnGwFilter,
        page: &Page,
    ) -> Result<(u64, Vec<VpnGw>)> {
        let mut tx = self.begin_read().await?;
        let mut count = vpn_gw_query("SELECT COUNT(*) FROM vpn_gws g", scope, f);
        let total: i64 = count.build_query_scalar().fetch_one(&mut *tx).await?;
        let mut list = vpn_gw_query(VPN_GW_SELECT, scope, f);
        push_page(&mut list, page, "g");
        let rows = list.build().fetch_all(&mut *tx).await?;
        tx.commit().await?;
        let gws = rows.iter().map(vpn_gw_from_row).collect::<Result<_>>()?;
        Ok((total as u64, gws))
    }

    async fn rename_vpn_gw(&self, scope: &Scope, id: i64, name: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let res = sqlx::query(
            "UPDATE vpn_gws SET name = ?1 WHERE id = ?2 AND account_id = ?3 AND region = ?4",
        )
        .bind(name)
        .bind(id)
        .bind(scope.account_id)
        .bind(&scope.region)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::NotFound(Resource::VpnGw));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn delete_vpn_gw(&self, scope: &Scope, id: i64) -> Result<()> {
        self.delete_unused(scope, id, &VPN_GW_PARENT).await
    }

    // ---- peer (customer) gateways -----------------------------------------

    async fn create_user_gw(
        &self,
        scope: &Scope,
        new: NewUserGw,
        limits: &Limits,
    ) -> Result<UserGw> {
        let mut tx = self.begin_write().await?;
        if exists(
            &mut tx,
            "SELECT 1 FROM user_gws WHERE account_id = ?1 AND region = ?2 AND name = ?3",
            scope,
            &new.name,
        )
        .await?
        {
            return Err(StoreError::NameInUse(Resource::UserGw));
        }
        let address = new.address.to_string();
        if exists(
            &mut tx,
            "SELECT 1 FROM user_gws WHERE account_id = ?1 AND region = ?2 AND address = ?3",
            scope,
            &address,
        )
        .await?
        {
            return Err(StoreError::AddressInUse);
        }
        let count = count_in_scope(&mut tx, "user_gws", scope).await?;
        check_quota(count, limits.user_gws_per_region, Quota::UserGwsPerRegion)?;
        let (account, region, name) = (scope.account_id, scope.region.clone(), new.name.clone());
        let now = unix_now();
        let (id, _) = insert_unified::<UserGwKind, _>(
            &mut tx,
            "INSERT INTO user_gws (un_id, account_id, region, name, address, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
            move |q| {
                q.bind(account)
                    .bind(region.clone())
                    .bind(name.clone())
                    .bind(address.clone())
                    .bind(now)
            },
        )
        .await
        .map_err(|e| match unique_violation(&e) {
            Some(m) if m.contains(".name") => StoreError::NameInUse(Resource::UserGw),
            Some(m) if m.contains(".address") => StoreError::AddressInUse,
            _ if is_fk_violation(&e) => StoreError::NotFound(Resource::Account),
            _ => e.into(),
        })?;
        let gw = fetch_user_gw(&mut tx, scope, &IdRef::Numeric(id))
            .await?
            .ok_or_else(|| vanished("peer gateway"))?;
        tx.commit().await?;
        Ok(gw)
    }

    async fn get_user_gw(&self, scope: &Scope, id: &IdRef<UserGwKind>) -> Result<Option<UserGw>> {
        let mut conn = self.read.acquire().await?;
        fetch_user_gw(&mut conn, scope, id).await
    }

    async fn list_user_gws(
        &self,
        scope: &Scope,
        f: &UserGwFilter,
        page: &Page,
    ) -> Result<(u64, Vec<UserGw>)> {
        let mut tx = self.begin_read().await?;
        let mut count = user_gw_query("SELECT COUNT(*) FROM user_gws u", scope, f);
        let total: i64 = count.build_query_scalar().fetch_one(&mut *tx).await?;
        let mut list = user_gw_query(USER_GW_SELECT, scope, f);
        push_page(&mut list, page, "u");
        let rows = list.build().fetch_all(&mut *tx).await?;
        tx.commit().await?;
        let gws = rows.iter().map(user_gw_from_row).collect::<Result<_>>()?;
        Ok((total as u64, gws))
    }

    async fn rename_user_gw(&self, scope: &Scope, id: i64, name: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM user_gws WHERE id = ?1 AND account_id = ?2 AND region = ?3",
        )
        .bind(id)
        .bind(scope.account_id)
        .bind(&scope.region)
        .fetch_optional(&mut *tx)
        .await?;
        if found.is_none() {
            return Err(StoreError::NotFound(Resource::UserGw));
        }
        let clash: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM user_gws \
             WHERE account_id = ?1 AND region = ?2 AND name = ?3 AND id <> ?4",
        )
        .bind(scope.account_id)
        .bind(&scope.region)
        .bind(name)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if clash.is_some() {
            return Err(StoreError::NameInUse(Resource::UserGw));
        }
        sqlx::query("UPDATE user_gws SET name = ?1 WHERE id = ?2")
            .bind(name)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| match unique_violation(&e) {
                Some(_) => StoreError::NameInUse(Resource::UserGw),
                None => e.into(),
            })?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_user_gw(&self, scope: &Scope, id: i64) -> Result<()> {
        self.delete_unused(scope, id, &USER_GW_PARENT).await
    }

    // ---- VPN connections and their tasks ----------------------------------

    async fn create_conn(
        &self,
        scope: &Scope,
        new: NewConn,
        limits: &Limits,
    ) -> Result<(VpnConn, Task)> {
        let settings = encode_settings(&new.settings)?;
        let mut tx = self.begin_write().await?;

        // Everything the connection hangs off must still be there, in scope.
        let vpc: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM vpcs WHERE id = ?1 AND account_id = ?2 AND region = ?3",
        )
        .bind(new.vpc_id)
        .bind(scope.account_id)
        .bind(&scope.region)
        .fetch_optional(&mut *tx)
        .await?;
        if vpc.is_none() {
            return Err(StoreError::NotFound(Resource::Vpc));
        }
        let gw_un_id: String = sqlx::query_scalar(
            "SELECT un_id FROM vpn_gws \
             WHERE id = ?1 AND vpc_id = ?2 AND account_id = ?3 AND region = ?4",
        )
        .bind(new.vpn_gw_id)
        .bind(new.vpc_id)
        .bind(scope.account_id)
        .bind(&scope.region)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound(Resource::VpnGw))?;
        let ugw_un_id: String = sqlx::query_scalar(
            "SELECT un_id FROM user_gws WHERE id = ?1 AND account_id = ?2 AND region = ?3",
        )
        .bind(new.user_gw_id)
        .bind(scope.account_id)
        .bind(&scope.region)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound(Resource::UserGw))?;

        let clash: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM vpn_conns \
             WHERE account_id = ?1 AND region = ?2 AND vpc_id = ?3 AND name = ?4",
        )
        .bind(scope.account_id)
        .bind(&scope.region)
        .bind(new.vpc_id)
        .bind(&new.name)
        .fetch_optional(&mut *tx)
        .await?;
        if clash.is_some() {
            return Err(StoreError::NameInUse(Resource::VpnConn));
        }

        let per_gw: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM vpn_conns WHERE vpn_gw_id = ?1")
            .bind(new.vpn_gw_id)
            .fetch_one(&mut *tx)
            .await?;
        check_quota(per_gw, limits.conns_per_vpn_gw, Quota::ConnsPerVpnGw)?;
        let per_user_gw: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM vpn_conns WHERE user_gw_id = ?1")
                .bind(new.user_gw_id)
                .fetch_one(&mut *tx)
                .await?;
        check_quota(per_user_gw, limits.conns_per_user_gw, Quota::ConnsPerUserGw)?;
        // Maintained in conn_counts (migration 0004) rather than counted.
        let per_region = scope_conns(&mut tx, scope.account_id, &scope.region).await?;
        check_quota(per_region, limits.conns_per_region, Quota::ConnsPerRegion)?;
        let per_pair: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM vpn_conns WHERE vpn_gw_id = ?1 AND user_gw_id = ?2",
        )
        .bind(new.vpn_gw_id)
        .bind(new.user_gw_id)
        .fetch_one(&mut *tx)
        .await?;
        check_quota(per_pair, limits.conns_per_pair, Quota::ConnsPerPair)?;

        let (account, region) = (scope.account_id, scope.region.clone());
        let NewConn {
            vpc_id,
            vpn_gw_id,
            user_gw_id,
            name,
            ..
        } = new;
        let now = unix_now();
        let (conn_id, conn_un_id) = insert_unified::<VpnConnKind, _>(
            &mut tx,
            "INSERT INTO vpn_conns (un_id, account_id, region, vpc_id, vpn_gw_id, user_gw_id, \
                 name, status, net_status, active_task, settings, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'unavailable', NULL, ?9, ?10) RETURNING id",
            move |q| {
                q.bind(account)
                    .bind(region.clone())
                    .bind(vpc_id)
                    .bind(vpn_gw_id)
                    .bind(user_gw_id)
                    .bind(name.clone())
                    .bind(ConnStatus::Creating.code())
                    .bind(settings.clone())
                    .bind(now)
            },
        )
        .await
        .map_err(|e| match unique_violation(&e) {
            Some(m) if m.contains(".name") => StoreError::NameInUse(Resource::VpnConn),
            _ => e.into(),
        })?;
        add_scope_conns(&mut tx, scope.account_id, &scope.region, 1).await?;
        let task_id = insert_task(
            &mut tx,
            scope,
            TaskKind::Create,
            conn_id,
            conn_un_id.to_string(),
            gw_un_id,
            ugw_un_id,
            now,
        )
        .await?;
        sqlx::query("UPDATE vpn_conns SET active_task = ?1 WHERE id = ?2")
            .bind(task_id)
            .bind(conn_id)
            .execute(&mut *tx)
            .await?;
        let conn = fetch_conn(&mut tx, Some(scope), &IdRef::Numeric(conn_id))
            .await?
            .ok_or_else(|| vanished("connection"))?;
        let task = fetch_task(&mut tx, task_id).await?;
        tx.commit().await?;
        Ok((conn, task))
    }

    async fn get_conn(&self, scope: &Scope, id: &IdRef<VpnConnKind>) -> Result<Option<VpnConn>> {
        let mut conn = self.read.acquire().await?;
        fetch_conn(&mut conn, Some(scope), id).await
    }

    async fn list_conns(
        &self,
        scope: &Scope,
        f: &ConnFilter,
        page: &Page,
    ) -> Result<(u64, Vec<VpnConn>)> {
        let mut tx = self.begin_read().await?;
        let mut count = conn_query("SELECT COUNT(*) FROM vpn_conns c", scope, f);
        let total: i64 = count.build_query_scalar().fetch_one(&mut *tx).await?;
        let mut list = conn_page_query("", scope, f, page);
        let rows = list.build().fetch_all(&mut *tx).await?;
        tx.commit().await?;
        let conns = rows.iter().map(conn_from_row).collect::<Result<_>>()?;
        Ok((total as u64, conns))
    }

    async fn begin_modify(&self, scope: &Scope, conn_id: i64, change: ConnChange) -> Result<Task> {
        self.begin_task(scope, conn_id, TaskKind::Modify, Some(change))
            .await
    }

    async fn begin_delete(&self, scope: &Scope, conn_id: i64) -> Result<Task> {
        self.begin_task(scope, conn_id, TaskKind::Delete, None)
            .await
    }

    async fn begin_reset(&self, scope: &Scope, conn_id: i64) -> Result<Task> {
        self.begin_task(scope, conn_id, TaskKind::Reset, None).await
    }

    async fn get_task(&self, scope: &Scope, task_id: i64) -> Result<Option<Task>> {
        let mut conn = self.read.acquire().await?;
        let row = sqlx::query(&format!(
            "{TASK_SELECT} WHERE id = ?1 AND account_id = ?2 AND region = ?3"
        ))
        .bind(task_id)
        .bind(scope.account_id)
        .bind(&scope.region)
        .fetch_optional(&mut *conn)
        .await?;
        row.as_ref().map(task_from_row).transpose()
    }

    async fn label_task(&self, task_id: i64, request_id: &str) -> Result<()> {
        let res =
            sqlx::query("UPDATE tasks SET request_id = ?1 WHERE id = ?2 AND request_id IS NULL")
                .bind(request_id)
                .bind(task_id)
                .execute(&self.write)
                .await
                .map_err(|e| match unique_violation(&e) {
                    Some(_) => StoreError::InUse(Resource::Task),
                    None => e.into(),
                })?;
        if res.rows_affected() == 0 {
            return Err(StoreError::NotFound(Resource::Task));
        }
        Ok(())
    }

    async fn get_task_by_request(&self, scope: &Scope, request_id: &str) -> Result<Option<Task>> {
        let mut conn = self.read.acquire().await?;
        let row = sqlx::query(&format!(
            "{TASK_SELECT} WHERE request_id = ?1 AND account_id = ?2 AND region = ?3"
        ))
        .bind(request_id)
        .bind(scope.account_id)
        .bind(&scope.region)
        .fetch_optional(&mut *conn)
        .await?;
        row.as_ref().map(task_from_row).transpose()
    }

    // ---- the task engine --------------------------------------------------

    async fn claim_task(
        &self,
        worker: &str,
        now: Timestamp,
        lease_secs: i64,
    ) -> Result<Option<ClaimedTask>> {
        self.claim(worker, now, lease_secs, None).await
    }

    async fn claim_task_on(
        &self,
        worker: &str,
        now: Timestamp,
        lease_secs: i64,
        nodes: &[Option<i64>],
    ) -> Result<Option<ClaimedTask>> {
        if nodes.is_empty() {
            return Ok(None);
        }
        self.claim(worker, now, lease_secs, Some(nodes)).await
    }

    async fn finish_task(
        &self,
        task_id: i64,
        worker: &str,
        now: Timestamp,
        outcome: std::result::Result<(), TaskError>,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query("SELECT kind, conn_id FROM tasks WHERE id = ?1")
            .bind(task_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let kind = parse::<TaskKind>(&row.try_get::<String, _>("kind")?, "task kind")?;
        let conn_id: i64 = row.try_get("conn_id")?;
        let (status, error) = match &outcome {
            Ok(()) => (TaskStatus::Success, None),
            Err(e) => (TaskStatus::Failed, Some(e)),
        };
        // Only the lease holder of a still-running task may finish it: a
        // worker whose lease expired and was taken over gets `false`, and a
        // task is never finished twice.
        let finished = sqlx::query(
            "UPDATE tasks SET status = ?1, error_code = ?2, error_msg = ?3, finished_at = ?4, \
                 lease_owner = NULL, lease_until = NULL \
             WHERE id = ?5 AND status = 2 AND lease_owner = ?6",
        )
        .bind(status.code())
        .bind(error.map(|e| e.error_code.clone()))
        .bind(error.map(|e| e.error_msg.clone()))
        .bind(now)
        .bind(task_id)
        .bind(worker)
        .execute(&mut *tx)
        .await?;
        if finished.rows_affected() != 1 {
            return Ok(false);
        }
        let ok = outcome.is_ok();
        match state_after(kind, ok) {
            Some(status) => {
                sqlx::query(
                    "UPDATE vpn_conns SET status = ?1, active_task = NULL \
                     WHERE id = ?2 AND active_task = ?3",
                )
                .bind(status.code())
                .bind(conn_id)
                .bind(task_id)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                let gone: Option<(i64, String)> = sqlx::query_as(
                    "DELETE FROM vpn_conns WHERE id = ?1 AND active_task = ?2 \
                     RETURNING account_id, region",
                )
                .bind(conn_id)
                .bind(task_id)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some((account_id, region)) = gone {
                    add_scope_conns(&mut tx, account_id, &region, -1).await?;
                }
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    // ---- live state and reconciliation ------------------------------------

    async fn set_net_status(&self, changes: &[(String, NetStatus)]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for (un_id, status) in changes {
            sqlx::query(
                "UPDATE vpn_conns SET net_status = ?1 WHERE un_id = ?2 AND net_status <> ?1",
            )
            .bind(status.as_str())
            .bind(un_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn desired_conns(&self, node_id: Option<i64>) -> Result<Vec<VpnConn>> {
        let mut qb = desired_query("", node_id);
        let mut conn = self.read.acquire().await?;
        let rows = qb.build().fetch_all(&mut *conn).await?;
        rows.iter().map(conn_from_row).collect()
    }

    // ---- bulk load ------------------------------------------------------------

    async fn import_conns(&self, scope: &Scope, conns: Vec<NewConn>) -> Result<u64> {
        let mut parents = ImportParents::default();
        let mut inserted = 0u64;
        let now = unix_now();
        let mut rows = conns.into_iter().peekable();
        while rows.peek().is_some() {
            let mut tx = self.begin_write().await?;
            let before = inserted;
            for new in rows.by_ref().take(IMPORT_BATCH) {
                parents.check(&mut tx, scope, &new).await?;
                let settings = encode_settings(&new.settings)?;
                let (account, region) = (scope.account_id, scope.region.clone());
                let NewConn {
                    vpc_id,
                    vpn_gw_id,
                    user_gw_id,
                    name,
                    ..
                } = new;
                insert_unified::<VpnConnKind, _>(
                    &mut tx,
                    "INSERT INTO vpn_conns (un_id, account_id, region, vpc_id, vpn_gw_id, \
                         user_gw_id, name, status, net_status, active_task, settings, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'unavailable', NULL, ?9, ?10) \
                     RETURNING id",
                    move |q| {
                        q.bind(account)
                            .bind(region.clone())
                            .bind(vpc_id)
                            .bind(vpn_gw_id)
                            .bind(user_gw_id)
                            .bind(name.clone())
                            .bind(ConnStatus::Running.code())
                            .bind(settings.clone())
                            .bind(now)
                    },
                )
                .await
                .map_err(|e| match unique_violation(&e) {
                    Some(m) if m.contains(".name") => StoreError::NameInUse(Resource::VpnConn),
                    _ => e.into(),
                })?;
                inserted += 1;
            }
            add_scope_conns(
                &mut tx,
                scope.account_id,
                &scope.region,
                (inserted - before) as i64,
            )
            .await?;
            tx.commit().await?;
        }
        // Statistics for the planner, now that the tables' shape may have
        // changed by orders of magnitude (the plans of an empty database
        // stay right without them, but a bulk load is when they matter).
        sqlx::query("ANALYZE").execute(&self.write).await?;
        Ok(inserted)
    }

    async fn conn_count_check(&self, scope: &Scope) -> Result<(u64, u64)> {
        // One read transaction: both figures from the same snapshot.
        let mut tx = self.read.begin().await?;
        let kept = scope_conns(&mut tx, scope.account_id, &scope.region).await?;
        let counted = count_in_scope(&mut tx, "vpn_conns", scope).await?;
        tx.commit().await?;
        Ok((kept as u64, counted as u64))
    }

    // ---- gateway nodes ----------------------------------------------------------

    async fn add_gateway_node(
        &self,
        name: &str,
        vici: &str,
        addresses: &[IpAddr],
    ) -> Result<GatewayNode> {
        let mut tx = self.begin_write().await?;
        let node = insert_gateway_node(&mut tx, name, vici, addresses).await?;
        tx.commit().await?;
        Ok(node)
    }

    async fn ensure_gateway_node(&self, vici: &str, addresses: &[IpAddr]) -> Result<GatewayNode> {
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query("UPDATE gateway_nodes SET addresses = ?1 WHERE vici = ?2")
            .bind(encode_addresses(addresses))
            .bind(vici)
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() == 0 {
            // The writer lock is held: the names seen here stay free.
            let base = default_node_name(vici);
            let mut n = 1;
            loop {
                let name = numbered_name(&base, n);
                match insert_gateway_node(&mut tx, &name, vici, addresses).await {
                    Err(StoreError::NameInUse(_)) if n < NODE_NAME_ATTEMPTS => n += 1,
                    other => {
                        other?;
                        break;
                    }
                }
            }
        }
        let row = sqlx::query(&format!("{GATEWAY_NODE_SELECT} WHERE vici = ?1"))
            .bind(vici)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        gateway_node_from_row(&row)
    }

    async fn list_gateway_nodes(&self) -> Result<Vec<GatewayNode>> {
        let mut conn = self.read.acquire().await?;
        let rows = sqlx::query(&format!("{GATEWAY_NODE_SELECT} ORDER BY id"))
            .fetch_all(&mut *conn)
            .await?;
        rows.iter().map(gateway_node_from_row).collect()
    }

    async fn remove_gateway_node(&self, id: i64) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let found: Option<i64> = sqlx::query_scalar("SELECT id FROM gateway_nodes WHERE id = ?1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if found.is_none() {
            return Err(StoreError::NotFound(Resource::GatewayNode));
        }
        let gws: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM vpn_gws WHERE node_id = ?1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        if gws > 0 {
            return Err(StoreError::InUse(Resource::GatewayNode));
        }
        sqlx::query("DELETE FROM gateway_nodes WHERE id = ?1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- the cluster of vpcd processes ------------------------------------------

    async fn heartbeat(&self, node: &str, now: Timestamp, info: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO cluster_nodes (name, started_at, last_seen, info) VALUES (?1, ?2, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET last_seen = excluded.last_seen, info = excluded.info",
        )
        .bind(node)
        .bind(now)
        .bind(info)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM cluster_nodes WHERE last_seen < ?1")
            .bind(now.saturating_sub(CLUSTER_NODE_FORGET_SECS))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_cluster_nodes(&self) -> Result<Vec<ClusterNode>> {
        let mut conn = self.read.acquire().await?;
        let rows = sqlx::query(
            "SELECT name, started_at, last_seen, info FROM cluster_nodes ORDER BY name",
        )
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(cluster_node_from_row).collect()
    }

    async fn acquire_gateway_lease(
        &self,
        gateway_node_id: i64,
        holder: &str,
        now: Timestamp,
        ttl_secs: i64,
    ) -> Result<bool> {
        // One statement: the conflict clause takes the row over only when
        // it is ours or expired, so two vpcds can never both get `true`.
        let res = sqlx::query(
            "INSERT INTO gateway_leases (gateway_node_id, holder, until) VALUES (?1, ?2, ?3) \
             ON CONFLICT (gateway_node_id) DO UPDATE \
             SET holder = excluded.holder, until = excluded.until \
             WHERE gateway_leases.holder = excluded.holder OR gateway_leases.until < ?4",
        )
        .bind(gateway_node_id)
        .bind(holder)
        .bind(now.saturating_add(ttl_secs))
        .bind(now)
        .execute(&self.write)
        .await
        .map_err(|e| {
            if is_fk_violation(&e) {
                StoreError::NotFound(Resource::GatewayNode)
            } else {
                e.into()
            }
        })?;
        Ok(res.rows_affected() == 1)
    }

    async fn release_gateway_lease(&self, gateway_node_id: i64, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM gateway_leases WHERE gateway_node_id = ?1 AND holder = ?2")
            .bind(gateway_node_id)
            .bind(holder)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn gateway_leases(&self) -> Result<Vec<GatewayLease>> {
        let mut conn = self.read.acquire().await?;
        let rows = sqlx::query(
            "SELECT gateway_node_id, holder, until FROM gateway_leases ORDER BY gateway_node_id",
        )
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(lease_from_row).collect()
    }
}

/// The parents an import has already found in its scope, so each is looked
/// up once however many connections hang off it.
#[derive(Default)]
struct ImportParents {
    vpcs: HashSet<i64>,
    /// VPN gateway id -> its VPC.
    vpn_gws: HashMap<i64, i64>,
    user_gws: HashSet<i64>,
}

impl ImportParents {
    async fn check(
        &mut self,
        conn: &mut SqliteConnection,
        scope: &Scope,
        new: &NewConn,
    ) -> Result<()> {
        if !self.vpcs.contains(&new.vpc_id) {
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM vpcs WHERE id = ?1 AND account_id = ?2 AND region = ?3",
            )
            .bind(new.vpc_id)
            .bind(scope.account_id)
            .bind(&scope.region)
            .fetch_optional(&mut *conn)
            .await?;
            found.ok_or(StoreError::NotFound(Resource::Vpc))?;
            self.vpcs.insert(new.vpc_id);
        }
        if let Entry::Vacant(slot) = self.vpn_gws.entry(new.vpn_gw_id) {
            let vpc: Option<i64> = sqlx::query_scalar(
                "SELECT vpc_id FROM vpn_gws WHERE id = ?1 AND account_id = ?2 AND region = ?3",
            )
            .bind(new.vpn_gw_id)
            .bind(scope.account_id)
            .bind(&scope.region)
            .fetch_optional(&mut *conn)
            .await?;
            let vpc = vpc.ok_or(StoreError::NotFound(Resource::VpnGw))?;
            slot.insert(vpc);
        }
        if self.vpn_gws.get(&new.vpn_gw_id) != Some(&new.vpc_id) {
            return Err(StoreError::NotFound(Resource::VpnGw));
        }
        if !self.user_gws.contains(&new.user_gw_id) {
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM user_gws WHERE id = ?1 AND account_id = ?2 AND region = ?3",
            )
            .bind(new.user_gw_id)
            .bind(scope.account_id)
            .bind(&scope.region)
            .fetch_optional(&mut *conn)
            .await?;
            found.ok_or(StoreError::NotFound(Resource::UserGw))?;
            self.user_gws.insert(new.user_gw_id);
        }
        Ok(())
    }
}

async fn insert_gateway_node(
    conn: &mut SqliteConnection,
    name: &str,
    vici: &str,
    addresses: &[IpAddr],
) -> Result<GatewayNode> {
    let now = unix_now();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO gateway_nodes (name, vici, addresses, created_at) VALUES (?1, ?2, ?3, ?4) \
         RETURNING id",
    )
    .bind(name)
    .bind(vici)
    .bind(encode_addresses(addresses))
    .bind(now)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| match unique_violation(&e) {
        Some(_) => StoreError::NameInUse(Resource::GatewayNode),
        None => e.into(),
    })?;
    Ok(GatewayNode {
        id,
        name: name.to_owned(),
        vici: vici.to_owned(),
        addresses: addresses.to_vec(),
        created_at: now,
    })
}

/// The node's address used by the fewest of its gateways (ties: the
/// lowest). Runs inside the create transaction, under the writer lock.
async fn pick_node_address(conn: &mut SqliteConnection, node_id: i64) -> Result<IpAddr> {
    let addresses: String = sqlx::query_scalar("SELECT addresses FROM gateway_nodes WHERE id = ?1")
        .bind(node_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotFound(Resource::GatewayNode))?;
    let addresses = decode_addresses(&addresses)?;
    let rows = sqlx::query(
        "SELECT address, COUNT(*) AS n FROM vpn_gws WHERE node_id = ?1 GROUP BY address",
    )
    .bind(node_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut used = HashMap::new();
    for row in &rows {
        let address = parse::<IpAddr>(&row.try_get::<String, _>("address")?, "gateway address")?;
        used.insert(address, row.try_get::<i64, _>("n")?);
    }
    least_used_address(&addresses, &used).ok_or(StoreError::PoolExhausted)
}

// ---- SQL text -------------------------------------------------------------

const KEY_SELECT: &str = "SELECT k.secret_id, k.secret_key, k.account_id, \
     k.disabled AS key_disabled, a.disabled AS account_disabled \
     FROM api_keys k JOIN accounts a ON a.id = k.account_id";

const VPC_SELECT: &str = "SELECT v.id, v.un_id, v.name, v.cidr, v.created_at, \
     (SELECT COUNT(*) FROM vpn_gws g WHERE g.vpc_id = v.id) AS vpn_gw_num \
     FROM vpcs v";

const VPN_GW_SELECT: &str = "SELECT g.id, g.un_id, g.name, g.bandwidth, g.charge_type, \
     g.charge_period, g.address, g.node_id, g.created_at, \
     v.id AS vpc_id, v.un_id AS vpc_un_id, v.name AS vpc_name, v.cidr AS vpc_cidr, \
     (SELECT COUNT(*) FROM vpn_conns c WHERE c.vpn_gw_id = g.id) AS conn_num \
     FROM vpn_gws g JOIN vpcs v ON v.id = g.vpc_id";

const USER_GW_SELECT: &str = "SELECT u.id, u.un_id, u.name, u.address, u.created_at, \
     (SELECT COUNT(*) FROM vpn_conns c WHERE c.user_gw_id = u.id) AS conn_num \
     FROM user_gws u";

const CONN_COLUMNS: &str = "SELECT c.id, c.un_id, c.name, c.status, c.net_status, c.settings, \
     c.active_task, c.created_at, \
     v.id AS vpc_id, v.un_id AS vpc_un_id, v.name AS vpc_name, v.cidr AS vpc_cidr, \
     g.id AS gw_id, g.un_id AS gw_un_id, g.name AS gw_name, g.address AS gw_address, \
     g.node_id AS gw_node_id, \
     u.id AS ugw_id, u.un_id AS ugw_un_id, u.name AS ugw_name, u.address AS ugw_address";

const CONN_JOINS: &str = " JOIN vpcs v ON v.id = c.vpc_id \
     JOIN vpn_gws g ON g.id = c.vpn_gw_id \
     JOIN user_gws u ON u.id = c.user_gw_id";

/// Every column of a connection with its VPC and gateways.
fn conn_select() -> String {
    format!("{CONN_COLUMNS} FROM vpn_conns c{CONN_JOINS}")
}

/// The oldest runnable task. `status = 2` is written literally so the
/// partial index `tasks_running` applies.
const CLAIM_NEXT: &str = "SELECT id FROM tasks WHERE status = 2 \
     AND (lease_until IS NULL OR lease_until < ?1) ORDER BY id LIMIT 1";

/// The lowest free address in `[?1, ?2]`: either `?1` itself or one past a
/// used address whose successor is free, both found through the address
/// index without reading every gateway.
const POOL_LOWEST_FREE: &str = "SELECT MIN(x) FROM ( \
     SELECT ?1 AS x WHERE NOT EXISTS (SELECT 1 FROM vpn_gws WHERE address_num = ?1) \
     UNION ALL \
     SELECT g.address_num + 1 FROM vpn_gws g \
     WHERE g.address_num >= ?1 AND g.address_num < ?2 \
       AND NOT EXISTS (SELECT 1 FROM vpn_gws h WHERE h.address_num = g.address_num + 1))";

const GATEWAY_NODE_SELECT: &str = "SELECT id, name, vici, addresses, created_at FROM gateway_nodes";

const TASK_SELECT: &str = "SELECT id, kind, status, conn_id, conn_un_id, vpn_gw_un_id, \
     user_gw_un_id, error_code, error_msg, attempts, created_at, finished_at FROM tasks";

// ---- query builders -------------------------------------------------------

fn push_scope(qb: &mut QueryBuilder<'_, Sqlite>, alias: &str, scope: &Scope) {
    push_scope_with(qb, alias, scope, false);
}

/// The tenancy filter. With `via_parent`, the caller also filters on a
/// parent (VPC, VPN gateway) whose index is far more selective than the
/// scope's; the unary `+` keeps SQLite from choosing the scope index instead
/// just because it matches the ORDER BY (without statistics it would, and
/// then walk every row of the tenant to fill one page).
fn push_scope_with(
    qb: &mut QueryBuilder<'_, Sqlite>,
    alias: &str,
    scope: &Scope,
    via_parent: bool,
) {
    let plus = if via_parent { "+" } else { "" };
    qb.push(format!(" WHERE {plus}{alias}.account_id = "))
        .push_bind(scope.account_id)
        .push(format!(" AND {plus}{alias}.region = "))
        .push_bind(scope.region.clone());
}

/// `col = n` for a numeric id, `un_col = 'x-...'` for a unified one.
fn push_own_id<K: IdKind>(qb: &mut QueryBuilder<'_, Sqlite>, alias: &str, id: &IdRef<K>) {
    match id {
        IdRef::Numeric(n) => {
            qb.push(format!(" AND {alias}.id = ")).push_bind(*n);
        }
        IdRef::Unified(u) => {
            qb.push(format!(" AND {alias}.un_id = "))
                .push_bind(u.as_str().to_owned());
        }
    }
}

/// A foreign key matched by either id form; the unified form resolves
/// through the parent's unique index. The parent's scope needs no check: the
/// child row is already filtered by the caller's scope.
fn push_fk_id<K: IdKind>(
    qb: &mut QueryBuilder<'_, Sqlite>,
    fk_col: &str,
    parent_table: &str,
    id: &IdRef<K>,
) {
    match id {
        IdRef::Numeric(n) => {
            qb.push(format!(" AND {fk_col} = ")).push_bind(*n);
        }
        IdRef::Unified(u) => {
            qb.push(format!(
                " AND {fk_col} = (SELECT id FROM {parent_table} WHERE un_id = "
            ))
            .push_bind(u.as_str().to_owned())
            .push(")");
        }
    }
}

fn push_name_filter(qb: &mut QueryBuilder<'_, Sqlite>, col: &str, name: &Option<String>) {
    if let Some(name) = name {
        qb.push(format!(" AND {col} LIKE "))
            .push_bind(like_pattern(name))
            .push(" ESCAPE '\\'");
    }
}

/// Ordering, tie-broken by id in the same direction.
fn push_order(qb: &mut QueryBuilder<'_, Sqlite>, page: &Page, alias: &str) {
    let dir = if page.descending { "DESC" } else { "ASC" };
    let col = match page.order {
        Order::CreateTime => "created_at",
        Order::Name => "name",
    };
    qb.push(format!(" ORDER BY {alias}.{col} {dir}, {alias}.id {dir}"));
}

/// Ordering, then the page window.
fn push_page(qb: &mut QueryBuilder<'_, Sqlite>, page: &Page, alias: &str) {
    push_order(qb, page, alias);
    qb.push(" LIMIT ")
        .push_bind(i64::from(page.limit))
        .push(" OFFSET ")
        .push_bind(i64::from(page.offset));
}

fn vpc_query(head: &str, scope: &Scope, f: &VpcFilter) -> QueryBuilder<'static, Sqlite> {
    let mut qb = QueryBuilder::new(head);
    push_scope(&mut qb, "v", scope);
    if let Some(id) = &f.id {
        push_own_id(&mut qb, "v", id);
    }
    push_name_filter(&mut qb, "v.name", &f.name);
    qb
}

fn vpn_gw_query(head: &str, scope: &Scope, f: &VpnGwFilter) -> QueryBuilder<'static, Sqlite> {
    let mut qb = QueryBuilder::new(head);
    push_scope_with(&mut qb, "g", scope, f.vpc.is_some());
    if let Some(vpc) = &f.vpc {
        push_fk_id(&mut qb, "g.vpc_id", "vpcs", vpc);
    }
    if let Some(id) = &f.id {
        push_own_id(&mut qb, "g", id);
    }
    push_name_filter(&mut qb, "g.name", &f.name);
    qb
}

fn user_gw_query(head: &str, scope: &Scope, f: &UserGwFilter) -> QueryBuilder<'static, Sqlite> {
    let mut qb = QueryBuilder::new(head);
    push_scope(&mut qb, "u", scope);
    if let Some(id) = &f.id {
        push_own_id(&mut qb, "u", id);
    }
    push_name_filter(&mut qb, "u.name", &f.name);
    qb
}

fn conn_query(head: &str, scope: &Scope, f: &ConnFilter) -> QueryBuilder<'static, Sqlite> {
    let mut qb = QueryBuilder::new(head);
    push_scope_with(&mut qb, "c", scope, f.vpc.is_some() || f.vpn_gw.is_some());
    if let Some(vpc) = &f.vpc {
        push_fk_id(&mut qb, "c.vpc_id", "vpcs", vpc);
    }
    if let Some(gw) = &f.vpn_gw {
        push_fk_id(&mut qb, "c.vpn_gw_id", "vpn_gws", gw);
    }
    if let Some(id) = &f.id {
        push_own_id(&mut qb, "c", id);
    }
    push_name_filter(&mut qb, "c.name", &f.name);
    qb
}

/// One page of connections. A deferred join: the page of ids is cut from a
/// covering index and only those rows are joined, so a deep offset skips
/// index entries instead of joined rows. `prefix` is for `EXPLAIN`.
fn conn_page_query(
    prefix: &str,
    scope: &Scope,
    f: &ConnFilter,
    page: &Page,
) -> QueryBuilder<'static, Sqlite> {
    let mut qb = conn_query(
        &format!("{prefix}{CONN_COLUMNS} FROM (SELECT c.id FROM vpn_conns c"),
        scope,
        f,
    );
    push_page(&mut qb, page, "c");
    qb.push(format!(") p JOIN vpn_conns c ON c.id = p.id{CONN_JOINS}"));
    push_order(&mut qb, page, "c");
    qb
}

/// The oldest runnable task whose connection's gateway is on one of
/// `nodes` (`None`: API only). `prefix` is for `EXPLAIN`.
fn claim_on_query(
    prefix: &str,
    now: Timestamp,
    nodes: &[Option<i64>],
) -> QueryBuilder<'static, Sqlite> {
    let mut qb = QueryBuilder::new(format!(
        "{prefix}SELECT t.id FROM tasks t \
         JOIN vpn_conns c ON c.id = t.conn_id JOIN vpn_gws g ON g.id = c.vpn_gw_id \
         WHERE t.status = 2 AND (t.lease_until IS NULL OR t.lease_until < "
    ));
    qb.push_bind(now).push(") AND (0");
    let ids: Vec<i64> = nodes.iter().flatten().copied().collect();
    if !ids.is_empty() {
        qb.push(" OR g.node_id IN (");
        let mut list = qb.separated(", ");
        for id in ids {
            list.push_bind(id);
        }
        qb.push(")");
    }
    if nodes.contains(&None) {
        qb.push(" OR g.node_id IS NULL");
    }
    qb.push(") ORDER BY t.id LIMIT 1");
    qb
}

/// Connections to load on a node. Loaded: creating, modifying, modify
/// failed, delete failed, running. Not loaded: create failed (nothing to
/// run) and deleting (going away).
fn desired_query(prefix: &str, node_id: Option<i64>) -> QueryBuilder<'static, Sqlite> {
    let mut qb = QueryBuilder::new(format!("{prefix}{}", conn_select()));
    // `+` keeps the status index (which matches nearly every row) out of
    // the plan: the node's gateways are the selective side.
    qb.push(" WHERE +c.status IN (0, 2, 3, 5, 6)");
    match node_id {
        Some(n) => {
            qb.push(" AND g.node_id = ").push_bind(n);
        }
        None => {
            qb.push(" AND g.node_id IS NULL");
        }
    }
    qb.push(" ORDER BY c.id");
    qb
}

// ---- fetching single rows -------------------------------------------------

async fn fetch_vpc(
    conn: &mut SqliteConnection,
    scope: &Scope,
    id: &IdRef<VpcKind>,
) -> Result<Option<Vpc>> {
    let f = VpcFilter {
        id: Some(id.clone()),
        name: None,
    };
    let mut qb = vpc_query(VPC_SELECT, scope, &f);
    let row = qb.build().fetch_optional(&mut *conn).await?;
    row.as_ref().map(vpc_from_row).transpose()
}

async fn fetch_vpn_gw(
    conn: &mut SqliteConnection,
    scope: &Scope,
    id: &IdRef<VpnGwKind>,
) -> Result<Option<VpnGw>> {
    let f = VpnGwFilter {
        id: Some(id.clone()),
        ..VpnGwFilter::default()
    };
    let mut qb = vpn_gw_query(VPN_GW_SELECT, scope, &f);
    let row = qb.build().fetch_optional(&mut *conn).await?;
    row.as_ref().map(vpn_gw_from_row).transpose()
}

async fn fetch_user_gw(
    conn: &mut SqliteConnection,
    scope: &Scope,
    id: &IdRef<UserGwKind>,
) -> Result<Option<UserGw>> {
    let f = UserGwFilter {
        id: Some(id.clone()),
        name: None,
    };
    let mut qb = user_gw_query(USER_GW_SELECT, scope, &f);
    let row = qb.build().fetch_optional(&mut *conn).await?;
    row.as_ref().map(user_gw_from_row).transpose()
}

/// A connection by id; `scope: None` is for the task engine, which works
/// across tenants.
async fn fetch_conn(
    conn: &mut SqliteConnection,
    scope: Option<&Scope>,
    id: &IdRef<VpnConnKind>,
) -> Result<Option<VpnConn>> {
    let mut qb = match scope {
        Some(scope) => conn_query(&conn_select(), scope, &ConnFilter::default()),
        None => {
            let mut qb = QueryBuilder::new(conn_select());
            qb.push(" WHERE 1 = 1");
            qb
        }
    };
    push_own_id(&mut qb, "c", id);
    let row = qb.build().fetch_optional(&mut *conn).await?;
    row.as_ref().map(conn_from_row).transpose()
}

async fn fetch_task(conn: &mut SqliteConnection, task_id: i64) -> Result<Task> {
    let row = sqlx::query(&format!("{TASK_SELECT} WHERE id = ?1"))
        .bind(task_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| vanished("task"))?;
    task_from_row(&row)
}

// ---- writing helpers ------------------------------------------------------

/// Run an `INSERT ... RETURNING id` whose first parameter is a fresh unified
/// id, retrying with another id when the random one is already taken.
async fn insert_unified<K, F>(
    conn: &mut SqliteConnection,
    sql: &str,
    bind_rest: F,
) -> std::result::Result<(i64, UnifiedId<K>), sqlx::Error>
where
    K: IdKind,
    F: for<'q> Fn(Query<'q>) -> Query<'q> + Send,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let un_id = UnifiedId::<K>::random();
        let query = bind_rest(sqlx::query(sql).bind(un_id.as_str().to_owned()));
        match query.fetch_one(&mut *conn).await {
            Ok(row) => return Ok((row.try_get(0)?, un_id)),
            Err(e)
                if attempt < ID_ATTEMPTS
                    && unique_violation(&e).is_some_and(|m| m.contains(".un_id")) =>
            {
                continue
            }
            Err(e) => return Err(e),
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn insert_task(
    conn: &mut SqliteConnection,
    scope: &Scope,
    kind: TaskKind,
    conn_id: i64,
    conn_un_id: String,
    vpn_gw_un_id: String,
    user_gw_un_id: String,
    now: Timestamp,
) -> Result<i64> {
    let id = sqlx::query_scalar(
        "INSERT INTO tasks (account_id, region, kind, status, conn_id, conn_un_id, \
             vpn_gw_un_id, user_gw_un_id, attempts, created_at) \
         VALUES (?1, ?2, ?3, 2, ?4, ?5, ?6, ?7, 0, ?8) RETURNING id",
    )
    .bind(scope.account_id)
    .bind(&scope.region)
    .bind(kind.as_str())
    .bind(conn_id)
    .bind(conn_un_id)
    .bind(vpn_gw_un_id)
    .bind(user_gw_un_id)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    Ok(id)
}

/// Whether `sql` (bound to account, region and `value`) finds a row.
async fn exists(
    conn: &mut SqliteConnection,
    sql: &str,
    scope: &Scope,
    value: &str,
) -> Result<bool> {
    let row = sqlx::query(sql)
        .bind(scope.account_id)
        .bind(&scope.region)
        .bind(value)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.is_some())
}

/// The scope's connection count, maintained in `conn_counts` by every
/// transaction that inserts or deletes connection rows (no row: none yet).
async fn scope_conns(conn: &mut SqliteConnection, account_id: i64, region: &str) -> Result<i64> {
    let n: Option<i64> =
        sqlx::query_scalar("SELECT conns FROM conn_counts WHERE account_id = ?1 AND region = ?2")
            .bind(account_id)
            .bind(region)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(n.unwrap_or(0))
}

/// Add `delta` (negative: rows deleted) to the scope's connection count,
/// inside the write transaction that inserted or deleted the rows.
async fn add_scope_conns(
    conn: &mut SqliteConnection,
    account_id: i64,
    region: &str,
    delta: i64,
) -> Result<()> {
    // Not an upsert: SQLite checks `conns >= 0` on the row an upsert would
    // insert before it turns into the update, which refuses any decrement.
    let updated = sqlx::query(
        "UPDATE conn_counts SET conns = conns + ?3 WHERE account_id = ?1 AND region = ?2",
    )
    .bind(account_id)
    .bind(region)
    .bind(delta)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 0 {
        // The scope's first connections (a negative delta fails the CHECK).
        sqlx::query("INSERT INTO conn_counts (account_id, region, conns) VALUES (?1, ?2, ?3)")
            .bind(account_id)
            .bind(region)
            .bind(delta)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Rows of `table` in the scope. `table` is one of this file's constants.
async fn count_in_scope(conn: &mut SqliteConnection, table: &str, scope: &Scope) -> Result<i64> {
    let n = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM {table} WHERE account_id = ?1 AND region = ?2"
    ))
    .bind(scope.account_id)
    .bind(&scope.region)
    .fetch_one(&mut *conn)
    .await?;
    Ok(n)
}

/// The lowest host address of `net` held by no gateway of any account.
async fn pick_pool_address(conn: &mut SqliteConnection, net: IpNet) -> Result<IpAddr> {
    let (lo, hi) = pool_range(net)?;
    let free: Option<i64> = sqlx::query_scalar(POOL_LOWEST_FREE)
        .bind(lo)
        .bind(hi)
        .fetch_one(&mut *conn)
        .await?;
    pool_address(free, (lo, hi))
}

// ---- decoding rows --------------------------------------------------------

impl StoreRow for SqliteRow {
    fn int(&self, col: &str) -> Result<i64> {
        Ok(self.try_get(col)?)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        Ok(self.try_get(col)?)
    }
    fn text(&self, col: &str) -> Result<String> {
        Ok(self.try_get(col)?)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        Ok(self.try_get(col)?)
    }
    fn flag(&self, col: &str) -> Result<bool> {
        Ok(self.try_get::<i64, _>(col)? != 0)
    }
}

// ---- small helpers --------------------------------------------------------

/// The nonce database of the database at `path`: `<path>-nonces`.
fn nonce_path(path: &Path) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push("-nonces");
    p.into()
}

/// Open (creating it if missing) a nonce database: one connection, WAL,
/// `synchronous=NORMAL` (see the module docs for why that is enough).
async fn open_nonces(path: &Path) -> Result<SqlitePool> {
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .busy_timeout(BUSY_TIMEOUT)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .connect_with(opts)
        .await?;
    // The same table as migration 0001's; it never changes shape, so it is
    // created here rather than through a second migrator.
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS nonces (\
             secret_id TEXT NOT NULL, \
             nonce     TEXT NOT NULL, \
             seen_at   INTEGER NOT NULL, \
             PRIMARY KEY (secret_id, nonce))",
    )
    .execute(&pool)
    .await?;
    sqlx::query("CREATE INDEX IF NOT EXISTS nonces_by_seen_at ON nonces (seen_at)")
        .execute(&pool)
        .await?;
    Ok(pool)
}

/// The message of a unique-constraint violation (SQLite names the columns:
/// `UNIQUE constraint failed: vpcs.un_id`).
fn unique_violation(e: &sqlx::Error) -> Option<&str> {
    match e {
        sqlx::Error::Database(db) if db.kind() == ErrorKind::UniqueViolation => Some(db.message()),
        _ => None,
    }
}

fn is_fk_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.kind() == ErrorKind::ForeignKeyViolation)
}

/// A delete refused by a foreign key means a dependant appeared.
fn in_use_or(e: sqlx::Error, what: Resource) -> StoreError {
    if is_fk_violation(&e) {
        StoreError::InUse(what)
    } else {
        e.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn plan(conn: &mut SqliteConnection, mut qb: QueryBuilder<'_, Sqlite>) -> Vec<String> {
        let rows = qb.build().fetch_all(&mut *conn).await.unwrap();
        rows.iter().map(|r| r.get::<String, _>("detail")).collect()
    }

    /// Reads that serve pages must never walk a whole table. The engine runs
    /// no ANALYZE, so the plans an empty database gets are the plans
    /// production gets.
    #[tokio::test]
    async fn queries_use_indexes() {
        let store = SqliteStore::in_memory().await.unwrap();
        let mut conn = store.read.acquire().await.unwrap();
        let scope = Scope {
            account_id: 1,
            region: "gz".into(),
        };
        let pages: Vec<Page> = [Order::CreateTime, Order::Name]
            .into_iter()
            .flat_map(|order| {
                [false, true].map(|descending| Page {
                    offset: 40,
                    limit: 20,
                    order,
                    descending,
                })
            })
            .collect();
        let vpc = || Some(IdRef::Unified("vpc-aaaaaaaa".parse().unwrap()));
        let conn_filters = [
            ConnFilter::default(),
            ConnFilter {
                vpc: vpc(),
                ..Default::default()
            },
            ConnFilter {
                vpc: Some(IdRef::Numeric(3)),
                ..Default::default()
            },
            ConnFilter {
                vpn_gw: Some(IdRef::Numeric(3)),
                ..Default::default()
            },
            ConnFilter {
                vpc: vpc(),
                vpn_gw: Some(IdRef::Unified("vpngw-aaaaaaaa".parse().unwrap())),
                ..Default::default()
            },
            ConnFilter {
                id: Some(IdRef::Numeric(3)),
                ..Default::default()
            },
            ConnFilter {
                name: Some("x".into()),
                ..Default::default()
            },
        ];
        let e = "EXPLAIN QUERY PLAN ";
        let mut plans = Vec::new();
        for f in &conn_filters {
            for p in &pages {
                plans.push((
                    format!("conns {f:?} {p:?}"),
                    plan(&mut conn, conn_page_query(e, &scope, f, p)).await,
                ));
            }
            let count = conn_query(&format!("{e}SELECT COUNT(*) FROM vpn_conns c"), &scope, f);
            plans.push((format!("count conns {f:?}"), plan(&mut conn, count).await));
        }
        let gw_filters = [
            VpnGwFilter::default(),
            VpnGwFilter {
                vpc: vpc(),
                ..Default::default()
            },
            VpnGwFilter {
                name: Some("x".into()),
                ..Default::default()
            },
        ];
        for f in &gw_filters {
            for p in &pages {
                let mut qb = vpn_gw_query(&format!("{e}{VPN_GW_SELECT}"), &scope, f);
                push_page(&mut qb, p, "g");
                plans.push((format!("vpn gws {f:?} {p:?}"), plan(&mut conn, qb).await));
            }
        }
        for p in &pages {
            let mut qb = vpc_query(&format!("{e}{VPC_SELECT}"), &scope, &VpcFilter::default());
            push_page(&mut qb, p, "v");
            plans.push((format!("vpcs {p:?}"), plan(&mut conn, qb).await));
            let mut qb = user_gw_query(
                &format!("{e}{USER_GW_SELECT}"),
                &scope,
                &UserGwFilter::default(),
            );
            push_page(&mut qb, p, "u");
            plans.push((format!("user gws {p:?}"), plan(&mut conn, qb).await));
        }
        for node in [Some(7), None] {
            plans.push((
                format!("desired {node:?}"),
                plan(&mut conn, desired_query(e, node)).await,
            ));
        }
        let claim = QueryBuilder::new(format!("{e}{CLAIM_NEXT}"));
        plans.push(("claim".into(), plan(&mut conn, claim).await));
        for nodes in [vec![Some(7), None], vec![Some(7), Some(8)], vec![None]] {
            plans.push((
                format!("claim on {nodes:?}"),
                plan(&mut conn, claim_on_query(e, 0, &nodes)).await,
            ));
        }
        plans.push((
            "pool".into(),
            plan(
                &mut conn,
                QueryBuilder::new(format!("{e}{POOL_LOWEST_FREE}")),
            )
            .await,
        ));

        // A page by gateway (or VPC): the count and the page's ids come from
        // the parent's covering index alone, never from the table, and the
        // creation-time order is the index's (no sort).
        for (kind, f) in [("vpn_gw", &conn_filters[3]), ("vpc", &conn_filters[2])] {
            let index = format!("USING COVERING INDEX vpn_conns_by_{kind}_page");
            let count = conn_query(&format!("{e}SELECT COUNT(*) FROM vpn_conns c"), &scope, f);
            let lines = plan(&mut conn, count).await;
            assert!(
                lines.len() == 1 && lines[0].contains(&index),
                "count by {kind}: {lines:#?}"
            );
            for p in pages.iter().filter(|p| p.order == Order::CreateTime) {
                let lines = plan(&mut conn, conn_page_query(e, &scope, f, p)).await;
                assert!(
                    lines.iter().any(|l| l.contains(&index)),
                    "page by {kind}: {lines:#?}"
                );
                let sorts = lines.iter().filter(|l| l.contains("TEMP B-TREE")).count();
                // Only the outer ordering of the 20 joined rows may sort.
                assert!(sorts <= 1, "page by {kind} sorts: {lines:#?}");
            }
        }

        for (what, lines) in &plans {
            if what.starts_with("desired") {
                // Driven from the node's gateways, not from every tunnel
                // whose status qualifies.
                assert!(lines[0].starts_with("SEARCH g USING"), "{what}: {lines:#?}");
            }
            for line in lines {
                let scan_ok = !line.starts_with("SCAN ")
                    || line == "SCAN p"
                    || line == "SCAN CONSTANT ROW"
                    // A partial index holding only the running tasks.
                    || line == "SCAN tasks USING INDEX tasks_running"
                    || line == "SCAN t USING INDEX tasks_running";
                assert!(scan_ok, "{what}: full scan `{line}` in {lines:#?}");
            }
        }
    }

    #[tokio::test]
    async fn file_store_is_durable_and_strict() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("v.db")).await.unwrap();
        let mut w = store.write.acquire().await.unwrap();
        let text = |sql: &'static str| sqlx::query_scalar::<_, String>(sql);
        let num = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql);
        assert_eq!(
            text("PRAGMA journal_mode")
                .fetch_one(&mut *w)
                .await
                .unwrap(),
            "wal"
        );
        // 2 = FULL: the WAL is synced at every commit.
        assert_eq!(
            num("PRAGMA synchronous").fetch_one(&mut *w).await.unwrap(),
            2
        );
        assert_eq!(
            num("PRAGMA foreign_keys").fetch_one(&mut *w).await.unwrap(),
            1
        );
        assert_eq!(
            num("PRAGMA busy_timeout").fetch_one(&mut *w).await.unwrap(),
            5000
        );
        let mut r = store.read.acquire().await.unwrap();
        assert_eq!(
            num("PRAGMA foreign_keys").fetch_one(&mut *r).await.unwrap(),
            1
        );
        assert_eq!(
            num("PRAGMA busy_timeout").fetch_one(&mut *r).await.unwrap(),
            5000
        );
        // Reader connections cannot write by mistake.
        let res = sqlx::query("INSERT INTO accounts (name, created_at) VALUES ('x', 0)")
            .execute(&mut *r)
            .await;
        assert!(res.is_err());
        // Nonces: their own file, WAL, synchronous=NORMAL (1), and the main
        // file's writer never sees them.
        assert!(dir.path().join("v.db-nonces").exists());
        let mut n = store.nonces.acquire().await.unwrap();
        assert_eq!(
            text("PRAGMA journal_mode")
                .fetch_one(&mut *n)
                .await
                .unwrap(),
            "wal"
        );
        assert_eq!(
            num("PRAGMA synchronous").fetch_one(&mut *n).await.unwrap(),
            1
        );
        drop(n);
        assert!(store.remember_nonce("AKIDa", "1", 100, 0).await.unwrap());
        assert_eq!(
            num("SELECT COUNT(*) FROM nonces")
                .fetch_one(&mut *w)
                .await
                .unwrap(),
            0
        );
    }

    /// `cargo test -p vpcd-store --lib -- --ignored --nocapture page_at_100k`
    /// prints how long every kind of page takes with 100,000 connections in
    /// one tenant (the worst case: tenancy narrows nothing).
    #[tokio::test]
    #[ignore = "benchmark; takes a few seconds"]
    async fn page_at_100k_connections() {
        use std::time::Instant;
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("b.db")).await.unwrap();
        let a = s.create_account("a").await.unwrap();
        let scope = Scope {
            account_id: a.id,
            region: "gz".into(),
        };
        let settings = serde_json::to_string(&sample_settings()).unwrap();
        let mut tx = s.begin_write().await.unwrap();
        for v in 1..=500i64 {
            sqlx::query(
                "INSERT INTO vpcs (id, un_id, account_id, region, name, cidr, created_at) \
                 VALUES (?1, printf('vpc-%08d', ?1), ?2, 'gz', 'v' || ?1, '10.0.0.0/16', 0)",
            )
            .bind(v)
            .bind(a.id)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        for g in 1..=5000i64 {
            sqlx::query(
                "INSERT INTO vpn_gws (id, un_id, account_id, region, vpc_id, name, bandwidth, \
                     charge_type, address, address_num, created_at) \
                 VALUES (?1, printf('vpngw-%08d', ?1), ?2, 'gz', ?3, 'g', 10, 'x', \
                     '203.0.113.1', ?1, 0)",
            )
            .bind(g)
            .bind(a.id)
            .bind((g - 1) / 10 + 1)
            .execute(&mut *tx)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO user_gws (id, un_id, account_id, region, name, address, created_at) \
                 VALUES (?1, printf('cgw-%08d', ?1), ?2, 'gz', 'u' || ?1, \
                     printf('10.0.%d.%d', ?1 / 256, ?1 % 256), 0)",
            )
            .bind(g)
            .bind(a.id)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        for c in 0..100_000i64 {
            let g = c / 20 + 1;
            sqlx::query(
                "INSERT INTO vpn_conns (un_id, account_id, region, vpc_id, vpn_gw_id, user_gw_id, \
                     name, status, net_status, settings, created_at) \
                 VALUES (printf('vpnx-%08d', ?1), ?2, 'gz', ?3, ?4, ?5, 'conn-' || ?1, 6, \
                     'available', ?6, ?7)",
            )
            .bind(c)
            .bind(a.id)
            .bind((g - 1) / 10 + 1)
            .bind(g)
            .bind(c % 5000 + 1)
            .bind(&settings)
            .bind(c / 7)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();

        let pages = [
            (Order::CreateTime, true, 0),
            (Order::Name, false, 0),
            (Order::CreateTime, true, 99_980),
        ]
        .map(|(order, descending, offset)| Page {
            offset,
            limit: 20,
            order,
            descending,
        });
        let filters = [
            ConnFilter::default(),
            ConnFilter {
                vpc: Some(IdRef::Numeric(77)),
                ..Default::default()
            },
            ConnFilter {
                vpn_gw: Some(IdRef::Numeric(3333)),
                ..Default::default()
            },
            ConnFilter {
                name: Some("99_9".into()),
                ..Default::default()
            },
            ConnFilter {
                id: Some(IdRef::Unified("vpnx-00054321".parse().unwrap())),
                ..Default::default()
            },
        ];
        let mut worst = Duration::ZERO;
        for f in &filters {
            for p in &pages {
                let t = Instant::now();
                let (total, rows) = s.list_conns(&scope, f, p).await.unwrap();
                let took = t.elapsed();
                worst = worst.max(took);
                println!(
                    "{took:>12?} total={total:<6} rows={:<2} {f:?} {p:?}",
                    rows.len()
                );
            }
        }
        println!("worst page: {worst:?}");
        assert!(worst < Duration::from_millis(500), "a page took {worst:?}");
    }

    fn sample_settings() -> vpcd_types::ConnSettings {
        use vpcd_types::*;
        ConnSettings {
            pre_shared_key: Secret::new("k"),
            spd_source: SpdSource::UserGwCidrBlock,
            spd: vec![SpdRule {
                local: "10.0.0.0/16".parse().unwrap(),
                remote: vec!["10.56.20.1/24".parse().unwrap()],
            }],
            ike: IkeSettings {
                encryption: IkeEncryption::AesCbc128,
                authentication: AuthAlgorithm::Md5,
                exchange_mode: ExchangeMode::Main,
                local_identity: Identity::Address("203.0.113.1".parse().unwrap()),
                remote_identity: Identity::Address("198.51.100.1".parse().unwrap()),
                dh_group: DhGroup::Group2,
                sa_lifetime_seconds: 86_400,
            },
            ipsec: IpsecSettings {
                encryption: IpsecEncryption::AesCbc128,
                integrity: AuthAlgorithm::Sha,
                sa_lifetime_seconds: 3_600,
                sa_lifetime_traffic_kb: 1_843_200,
                pfs: PfsGroup::Null,
            },
        }
    }
}
