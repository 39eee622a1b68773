//! The PostgreSQL engine, for several vpcd processes sharing one database.
//!
//! It behaves exactly like the SQLite engine (the same conformance suite runs
//! against both); what differs is how the rules hold when many connections,
//! from many processes, write at once. Transactions run at READ COMMITTED and
//! every rule that spans rows is enforced by PostgreSQL, never in memory:
//!
//! - **Quotas**: the row a quota hangs off is locked with `SELECT ... FOR
//!   UPDATE` before counting: the VPC for gateways per VPC, and a per-(account,
//!   region) row in `scope_locks` for everything counted per region (VPCs, peer
//!   gateways, and connections, whose other quotas are all within that region
//!   too). A second creator waits for the first to commit and then counts its
//!   row. The per-region connection count is not counted but kept on that
//!   `scope_locks` row (`conns`, migration 0003), read by the `FOR UPDATE`
//!   itself and updated in the transactions that insert or delete
//!   connection rows (`create_conn`, `import_conns`, `finish_task`).
//! - **Unique names, addresses and ids**: unique indexes. A fresh unified id is
//!   inserted with `ON CONFLICT (un_id) DO NOTHING` and retried on the rare
//!   collision, so no statement has to fail inside a transaction.
//! - **Deletes against new dependants**: the parent row is locked `FOR UPDATE`
//!   before its dependants are counted, and creators lock it `FOR SHARE`, so a
//!   gateway cannot be deleted under a connection being created on it.
//! - **One running task per connection**: the connection row is locked before
//!   its `active_task` is checked, the update that hands it to a task is
//!   conditional on it still being free, and a partial unique index backs it.
//! - **Task claims**: `FOR UPDATE SKIP LOCKED` picks the oldest runnable task
//!   no other worker is looking at, and the lease columns make a claim last
//!   beyond the transaction; `finish_task` only succeeds for the lease holder.
//! - **Nonces**: one `INSERT ... ON CONFLICT DO UPDATE ... WHERE` statement,
//!   in a transaction with `SET LOCAL synchronous_commit = off`: the commit
//!   is visible to every other connection (and so every vpcd process) at
//!   once, and the primary key still makes a concurrent duplicate lose, but
//!   the request does not wait for the WAL flush. A crash of PostgreSQL, or
//!   of vpcd, loses nothing already flushed; an OS crash or power loss can
//!   forget the nonces of the last few hundred milliseconds
//!   (`wal_writer_delay` x 3 at most). That only re-opens replay for those
//!   requests, and only within their Timestamp window (a replay outside it is
//!   refused on the Timestamp alone). Every other write stays
//!   `synchronous_commit = on`.
//! - **Gateway addresses**: the choice of a pool or node address is made under
//!   a transaction-scoped advisory lock, since pool addresses are global.
//! - **Migrations**: sqlx's migrator holds a session advisory lock (keyed by
//!   the database name) while it checks and applies migrations, so of several
//!   nodes starting at once exactly one migrates and the others find the
//!   schema up to date.
//!
//! Names are stored with the "C" collation, so ordering is bytewise and
//! `ILIKE` folds ASCII letters only, as SQLite's `LIKE` does.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering as AtomicOrdering};
use std::time::Duration;

use async_trait::async_trait;
use ipnet::IpNet;
use sqlx::error::ErrorKind;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Connection, Postgres, QueryBuilder, Row, Transaction};
use vpcd_types::id::{IdKind, UnifiedId, UserGwKind, VpcKind, VpnConnKind, VpnGwKind};
use vpcd_types::{ConnStatus, IdRef, NetStatus, Secret, TaskKind, TaskStatus};

use crate::common::*;
use crate::model::*;
use crate::{Resource, Result, Store, StoreError};

/// Connections per process. Several vpcd processes share the server's
/// `max_connections` (100 by default).
const POOL_SIZE: u32 = 10;
/// How long a request waits for a free pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// Fresh unified ids tried before a collision is reported as an error.
const ID_ATTEMPTS: u32 = 8;
/// Expired nonces are pruned at most this often (in the caller's clock).
const NONCE_PRUNE_INTERVAL_SECS: i64 = 60;
/// Rows deleted per pruning statement.
const NONCE_PRUNE_BATCH: i64 = 2_000;
/// Pruning batches per interval; whatever is left waits for the next one.
const NONCE_PRUNE_MAX_BATCHES: u32 = 16;
/// Connections written per transaction by `import_conns`.
const IMPORT_BATCH: usize = 10_000;
/// The transaction-scoped advisory lock under which gateway addresses are
/// chosen ("vpcdaddr").
const ADDRESS_LOCK: i64 = 0x7670_6364_6164_6472;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

type Tx = Transaction<'static, Postgres>;

/// The PostgreSQL implementation of [`Store`].
pub struct PgStore {
    pool: PgPool,
    last_nonce_prune: AtomicI64,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connect to `url` (`postgres://` or `postgresql://`) and bring the
    /// schema up to date. Errors never repeat the URL (it may hold a
    /// password).
    pub async fn connect(url: &str) -> Result<PgStore> {
        let opts = PgConnectOptions::from_str(url)
            .map_err(|_| StoreError::Backend("malformed PostgreSQL URL".into()))?
            .application_name("vpcd");
        let unreachable =
            |e: sqlx::Error| StoreError::Backend(format!("cannot connect to PostgreSQL: {e}"));
        // One direct connection first: the pool would retry a refused
        // connection until its acquire timeout, and start-up should fail
        // fast and say why.
        opts.connect()
            .await
            .map_err(unreachable)?
            .close()
            .await
            .ok();
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(opts)
            .await
            .map_err(unreachable)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?;
        Ok(PgStore {
            pool,
            last_nonce_prune: AtomicI64::new(i64::MIN),
        })
    }

    async fn begin_write(&self) -> Result<Tx> {
        Ok(self.pool.begin().await?)
    }

    /// Delete a VPC or gateway of `scope` unless something still refers to
    /// it: `NotFound` / `InUse` of `parent.resource`. The row is locked first:
    /// a dependant being created (which holds the parent FOR SHARE) commits
    /// before and is seen, or waits and then finds the parent gone.
    async fn delete_unused(&self, scope: &Scope, id: i64, parent: &Parent) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let found: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT id FROM {} WHERE id = $1 AND account_id = $2 AND region = $3 FOR UPDATE",
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
            "SELECT EXISTS (SELECT 1 FROM {} WHERE {} = $1)",
            parent.child_table, parent.child_fk
        ))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        if used {
            return Err(StoreError::InUse(parent.resource));
        }
        sqlx::query(&format!("DELETE FROM {} WHERE id = $1", parent.table))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| in_use_or(e, parent.resource))?;
        tx.commit().await?;
        Ok(())
    }

    /// A read-only snapshot, so a list's count and its page agree.
    async fn begin_read(&self) -> Result<Tx> {
        Ok(self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?)
    }

    /// Delete nonces older than the replay window, at most once per
    /// interval per process and in small batches. Failures are logged, not
    /// returned: the nonce itself has been recorded by then.
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
                "DELETE FROM nonces WHERE ctid IN \
                 (SELECT ctid FROM nonces WHERE seen_at < $1 LIMIT $2)",
            )
            .bind(not_before)
            .bind(NONCE_PRUNE_BATCH)
            .execute(&self.pool)
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
            // SKIP LOCKED: a task another worker is claiming or finishing
            // right now is passed over, never waited for or taken twice.
            let mut qb = QueryBuilder::<Postgres>::new("UPDATE tasks SET lease_owner = ");
            qb.push_bind(worker.to_owned())
                .push(", lease_until = ")
                .push_bind(now.saturating_add(lease_secs))
                .push(", attempts = attempts + 1 WHERE id = (");
            match nodes {
                None => {
                    qb.push(
                        "SELECT id FROM tasks WHERE status = 2 \
                         AND (lease_until IS NULL OR lease_until < ",
                    )
                    .push_bind(now)
                    .push(") ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED");
                }
                Some(nodes) => {
                    push_claim_on(&mut qb, now, nodes);
                }
            }
            qb.push(") RETURNING id, conn_id");
            let row = qb.build().fetch_optional(&mut *tx).await?;
            let Some(row) = row else {
                tx.commit().await?;
                return Ok(None);
            };
            let task_id: i64 = row.try_get("id")?;
            let conn_id: i64 = row.try_get("conn_id")?;
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
                             error_msg = 'the connection no longer exists', finished_at = $1, \
                             lease_owner = NULL, lease_until = NULL WHERE id = $2",
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
        // The connection row is locked: a concurrent begin_* waits here and
        // then sees this one's task.
        let row = sqlx::query(
            "SELECT c.status, c.active_task, c.vpc_id, c.un_id, \
                    g.un_id AS gw_un_id, u.un_id AS ugw_un_id \
             FROM vpn_conns c \
             JOIN vpn_gws g ON g.id = c.vpn_gw_id \
             JOIN user_gws u ON u.id = c.user_gw_id \
             WHERE c.id = $1 AND c.account_id = $2 AND c.region = $3 \
             FOR UPDATE OF c",
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
                 WHERE account_id = $1 AND region = $2 AND vpc_id = $3 AND name = $4 AND id <> $5",
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
        let allowed = allowed
            .iter()
            .map(|s| s.code().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let updated = sqlx::query(&format!(
            "UPDATE vpn_conns SET active_task = $1, status = COALESCE($2, status), \
                 name = COALESCE($3, name), settings = COALESCE($4, settings) \
             WHERE id = $5 AND active_task IS NULL AND status IN ({allowed})"
        ))
        .bind(task_id)
        .bind(new_status.map(ConnStatus::code))
        .bind(new_name)
        .bind(new_settings)
        .bind(conn_id)
        .execute(&mut *tx)
        .await
        .map_err(|e| match unique_violation(&e) {
            Some(c) if c.ends_with("_name") => StoreError::NameInUse(Resource::VpnConn),
            _ => e.into(),
        })?;
        if updated.rows_affected() != 1 {
            // Unreachable while the row lock is held; kept as a backstop.
            return Err(StoreError::InvalidState);
        }
        let task = fetch_task(&mut tx, task_id).await?;
        tx.commit().await?;
        Ok(task)
    }
}

#[async_trait]
impl Store for PgStore {
    // ---- accounts and keys -------------------------------------------

    async fn create_account(&self, name: &str) -> Result<Account> {
        let now = unix_now();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO accounts (name, disabled, created_at) VALUES ($1, FALSE, $2) RETURNING id",
        )
        .bind(name)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| match unique_violation(&e) {
            Some(_) => StoreError::NameInUse(Resource::Account),
            None => e.into(),
        })?;
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
            if let Ok(i) = out.binary_search_by_key(&key.account_id, |(a, _)| a.id) {
                out[i].1.push(key);
            }
        }
        Ok(out)
    }

    async fn create_key(&self, account: &str) -> Result<ApiKey> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query("SELECT id, disabled FROM accounts WHERE name = $1 FOR SHARE")
            .bind(account)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound(Resource::Account))?;
        let account_id: i64 = row.try_get("id")?;
        let account_disabled: bool = row.try_get("disabled")?;
        let now = unix_now();
        for _ in 0..ID_ATTEMPTS {
            let secret_id = format!("AKID{}", random_alnum(32));
            let secret_key = Secret::new(random_alnum(32));
            let inserted = sqlx::query(
                "INSERT INTO api_keys (secret_id, secret_key, account_id, disabled, created_at) \
                 VALUES ($1, $2, $3, FALSE, $4) ON CONFLICT (secret_id) DO NOTHING",
            )
            .bind(&secret_id)
            .bind(secret_key.expose())
            .bind(account_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() == 1 {
                tx.commit().await?;
                return Ok(ApiKey {
                    secret_id,
                    secret_key,
                    account_id,
                    disabled: account_disabled,
                });
            }
        }
        Err(StoreError::Backend(
            "no free SecretId after several tries".into(),
        ))
    }

    async fn set_account_disabled(&self, account: &str, disabled: bool) -> Result<()> {
        let res = sqlx::query("UPDATE accounts SET disabled = $1 WHERE name = $2")
            .bind(disabled)
            .bind(account)
            .execute(&self.pool)
            .await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::NotFound(Resource::Account));
        }
        Ok(())
    }

    async fn set_key_disabled(&self, secret_id: &str, disabled: bool) -> Result<()> {
        let res = sqlx::query("UPDATE api_keys SET disabled = $1 WHERE secret_id = $2")
            .bind(disabled)
            .bind(secret_id)
            .execute(&self.pool)
            .await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::NotFound(Resource::Key));
        }
        Ok(())
    }

    async fn find_key(&self, secret_id: &str) -> Result<Option<ApiKey>> {
        let row = sqlx::query(&format!("{KEY_SELECT} WHERE k.secret_id = $1"))
            .bind(secret_id)
            .fetch_optional(&self.pool)
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
        // One statement: a concurrent duplicate waits on the primary key and
        // then takes the conflict branch, which only overwrites an entry
        // outside the window. Whichever node receives the replay, it loses.
        //
        // The commit does not wait for its WAL flush (`synchronous_commit =
        // off`, for this transaction only): see the module docs on nonces.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *tx)
            .await?;
        let res = sqlx::query(
            "INSERT INTO nonces (secret_id, nonce, seen_at) VALUES ($1, $2, $3) \
             ON CONFLICT (secret_id, nonce) DO UPDATE SET seen_at = EXCLUDED.seen_at \
             WHERE nonces.seen_at < $4",
        )
        .bind(secret_id)
        .bind(nonce)
        .bind(now)
        .bind(not_before)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let fresh = res.rows_affected() == 1;
        self.maybe_prune_nonces(now, not_before).await;
        Ok(fresh)
    }

    // ---- VPCs -------------------------------------------------------------

    async fn create_vpc(&self, scope: &Scope, new: NewVpc, limits: &Limits) -> Result<Vpc> {
        let mut tx = self.begin_write().await?;
        lock_scope(&mut tx, scope).await?;
        if exists(
            &mut tx,
            "SELECT 1 FROM vpcs WHERE account_id = $1 AND region = $2 AND name = $3",
            scope,
            &new.name,
        )
        .await?
        {
            return Err(StoreError::NameInUse(Resource::Vpc));
        }
        let count = count_in_scope(&mut tx, "vpcs", scope).await?;
        check_quota(count, limits.vpcs_per_region, Quota::VpcsPerRegion)?;
        let now = unix_now();
        let id = insert_unified::<VpcKind, _>(&mut tx, |un_id| {
            sqlx::query_scalar(
                "INSERT INTO vpcs (un_id, account_id, region, name, cidr, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (un_id) DO NOTHING RETURNING id",
            )
            .bind(un_id)
            .bind(scope.account_id)
            .bind(scope.region.clone())
            .bind(new.name.clone())
            .bind(new.cidr.as_given().to_owned())
            .bind(now)
        })
        .await
        .map_err(|e| match unique_violation(&e) {
            Some(c) if c.ends_with("_name") => StoreError::NameInUse(Resource::Vpc),
            _ => e.into(),
        })?;
        let vpc = fetch_vpc(&mut tx, scope, &IdRef::Numeric(id))
            .await?
            .ok_or_else(|| vanished("vpc"))?;
        tx.commit().await?;
        Ok(vpc)
    }

    async fn get_vpc(&self, scope: &Scope, id: &IdRef<VpcKind>) -> Result<Option<Vpc>> {
        let mut conn = self.pool.acquire().await?;
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
            "UPDATE vpcs SET name = $1 WHERE id = $2 AND account_id = $3 AND region = $4",
        )
        .bind(name)
        .bind(id)
        .bind(scope.account_id)
        .bind(&scope.region)
        .execute(&self.pool)
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
        // The VPC row carries the per-VPC quota.
        let vpc: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM vpcs WHERE id = $1 AND account_id = $2 AND region = $3 FOR UPDATE",
        )
        .bind(new.vpc_id)
        .bind(scope.account_id)
        .bind(&scope.region)
        .fetch_optional(&mut *tx)
        .await?;
        if vpc.is_none() {
            return Err(StoreError::NotFound(Resource::Vpc));
        }
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM vpn_gws WHERE vpc_id = $1")
            .bind(new.vpc_id)
            .fetch_one(&mut *tx)
            .await?;
        check_quota(count, limits.vpn_gws_per_vpc, Quota::VpnGwsPerVpc)?;
        // Pool addresses are global and node addresses are spread by use:
        // both choices must see every gateway created before them.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(ADDRESS_LOCK)
            .execute(&mut *tx)
            .await?;
        let (address, node_id) = match new.address {
            AddressSource::Pool(net) => (pick_pool_address(&mut tx, net).await?, None),
            AddressSource::Node { node_id } => {
                (pick_node_address(&mut tx, node_id).await?, Some(node_id))
            }
        };
        let address_num = ipv4_num(address);
        let now = unix_now();
        let id = insert_unified::<VpnGwKind, _>(&mut tx, |un_id| {
            sqlx::query_scalar(
                "INSERT INTO vpn_gws (un_id, account_id, region, vpc_id, name, bandwidth, \
                     charge_type, charge_period, address, address_num, node_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 ON CONFLICT (un_id) DO NOTHING RETURNING id",
            )
            .bind(un_id)
            .bind(scope.account_id)
            .bind(scope.region.clone())
            .bind(new.vpc_id)
            .bind(new.name.clone())
            .bind(new.bandwidth)
            .bind(new.charge_type.clone())
            .bind(new.charge_period)
            .bind(address.to_string())
            .bind(address_num)
            .bind(node_id)
            .bind(now)
        })
        .await
        .map_err(|e| {
            if is_fk_violation(&e) {
                StoreError::NotFound(Resource::GatewayNode)
            } else {
                e.into()
            }
        })?;
        let gw = fetch_vpn_gw(&mut tx, scope, &IdRef::Numeric(id))
            .await?
            .ok_or_else(|| vanished("vpn gateway"))?;
        tx.commit().await?;
        Ok(gw)
    }

    async fn get_vpn_gw(&self, scope: &Scope, id: &IdRef<VpnGwKind>) -> Result<Option<VpnGw>> {
        let mut conn = self.pool.acquire().await?;
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
        let res = sqlx::query(
            "UPDATE vpn_gws SET name = $1 WHERE id = $2 AND account_id = $3 AND region = $4",
        )
        .bind(name)
        .bind(id)
        .bind(scope.account_id)
        .bind(&scope.region)
        .execute(&self.pool)
        .await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::NotFound(Resource::VpnGw));
        }
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
        lock_scope(&mut tx, scope).await?;
        if exists(
            &mut tx,
            "SELECT 1 FROM user_gws WHERE account_id = $1 AND region = $2 AND name = $3",
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
            "SELECT 1 FROM user_gws WHERE account_id = $1 AND region = $2 AND address = $3",
            scope,
            &address,
        )
        .await?
        {
            return Err(StoreError::AddressInUse);
        }
        let count = count_in_scope(&mut tx, "user_gws", scope).await?;
        check_quota(count, limits.user_gws_per_region, Quota::UserGwsPerRegion)?;
        let now = unix_now();
        let id = insert_unified::<UserGwKind, _>(&mut tx, |un_id| {
            sqlx::query_scalar(
                "INSERT INTO user_gws (un_id, account_id, region, name, address, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (un_id) DO NOTHING RETURNING id",
            )
            .bind(un_id)
            .bind(scope.account_id)
            .bind(scope.region.clone())
            .bind(new.name.clone())
            .bind(address.clone())
            .bind(now)
        })
        .await
        .map_err(|e| match unique_violation(&e) {
            Some(c) if c.ends_with("_name") => StoreError::NameInUse(Resource::UserGw),
            Some(c) if c.ends_with("_address") => StoreError::AddressInUse,
            _ => e.into(),
        })?;
        let gw = fetch_user_gw(&mut tx, scope, &IdRef::Numeric(id))
            .await?
            .ok_or_else(|| vanished("peer gateway"))?;
        tx.commit().await?;
        Ok(gw)
    }

    async fn get_user_gw(&self, scope: &Scope, id: &IdRef<UserGwKind>) -> Result<Option<UserGw>> {
        let mut conn = self.pool.acquire().await?;
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
        // The unique index decides a race between two renames.
        let res = sqlx::query(
            "UPDATE user_gws SET name = $1 WHERE id = $2 AND account_id = $3 AND region = $4",
        )
        .bind(name)
        .bind(id)
        .bind(scope.account_id)
        .bind(&scope.region)
        .execute(&self.pool)
        .await
        .map_err(|e| match unique_violation(&e) {
            Some(_) => StoreError::NameInUse(Resource::UserGw),
            None => e.into(),
        })?;
        if res.rows_affected() == 0 {
            return Err(StoreError::NotFound(Resource::UserGw));
        }
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
        // Every connection quota counts within this (account, region): one
        // lock serializes the creators that could race for a slot. Then the
        // gateways are held FOR SHARE so neither can be deleted meanwhile.
        // The lock row also carries the scope's connection count (the
        // per-region quota), exact while it is held.
        let per_region = lock_scope(&mut tx, scope).await?;
        let vpc: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM vpcs WHERE id = $1 AND account_id = $2 AND region = $3 FOR SHARE",
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
             WHERE id = $1 AND vpc_id = $2 AND account_id = $3 AND region = $4 FOR SHARE",
        )
        .bind(new.vpn_gw_id)
        .bind(new.vpc_id)
        .bind(scope.account_id)
        .bind(&scope.region)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound(Resource::VpnGw))?;
        let ugw_un_id: String = sqlx::query_scalar(
            "SELECT un_id FROM user_gws WHERE id = $1 AND account_id = $2 AND region = $3 \
             FOR SHARE",
        )
        .bind(new.user_gw_id)
        .bind(scope.account_id)
        .bind(&scope.region)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound(Resource::UserGw))?;

        let clash: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM vpn_conns \
             WHERE account_id = $1 AND region = $2 AND vpc_id = $3 AND name = $4",
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

        let counts = sqlx::query(
            "SELECT \
               (SELECT COUNT(*) FROM vpn_conns WHERE vpn_gw_id = $1) AS per_gw, \
               (SELECT COUNT(*) FROM vpn_conns WHERE user_gw_id = $2) AS per_user_gw, \
               (SELECT COUNT(*) FROM vpn_conns WHERE vpn_gw_id = $1 AND user_gw_id = $2) \
                   AS per_pair",
        )
        .bind(new.vpn_gw_id)
        .bind(new.user_gw_id)
        .fetch_one(&mut *tx)
        .await?;
        check_quota(
            counts.try_get("per_gw")?,
            limits.conns_per_vpn_gw,
            Quota::ConnsPerVpnGw,
        )?;
        check_quota(
            counts.try_get("per_user_gw")?,
            limits.conns_per_user_gw,
            Quota::ConnsPerUserGw,
        )?;
        check_quota(per_region, limits.conns_per_region, Quota::ConnsPerRegion)?;
        check_quota(
            counts.try_get("per_pair")?,
            limits.conns_per_pair,
            Quota::ConnsPerPair,
        )?;

        let now = unix_now();
        let mut conn_un_id = String::new();
        let conn_id = insert_unified::<VpnConnKind, _>(&mut tx, |un_id| {
            conn_un_id = un_id.clone();
            sqlx::query_scalar(
                "INSERT INTO vpn_conns (un_id, account_id, region, vpc_id, vpn_gw_id, \
                     user_gw_id, name, status, net_status, active_task, settings, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'unavailable', NULL, $9, $10) \
                 ON CONFLICT (un_id) DO NOTHING RETURNING id",
            )
            .bind(un_id)
            .bind(scope.account_id)
            .bind(scope.region.clone())
            .bind(new.vpc_id)
            .bind(new.vpn_gw_id)
            .bind(new.user_gw_id)
            .bind(new.name.clone())
            .bind(ConnStatus::Creating.code())
            .bind(settings.clone())
            .bind(now)
        })
        .await
        .map_err(|e| match unique_violation(&e) {
            Some(c) if c.ends_with("_name") => StoreError::NameInUse(Resource::VpnConn),
            _ => e.into(),
        })?;
        add_scope_conns(&mut tx, scope.account_id, &scope.region, 1).await?;
        let task_id = insert_task(
            &mut tx,
            scope,
            TaskKind::Create,
            conn_id,
            conn_un_id,
            gw_un_id,
            ugw_un_id,
            now,
        )
        .await?;
        sqlx::query("UPDATE vpn_conns SET active_task = $1 WHERE id = $2")
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
        let mut conn = self.pool.acquire().await?;
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
        let mut list = conn_page_query(scope, f, page);
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
        let row = sqlx::query(&format!(
            "{TASK_SELECT} WHERE id = $1 AND account_id = $2 AND region = $3"
        ))
        .bind(task_id)
        .bind(scope.account_id)
        .bind(&scope.region)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(task_from_row).transpose()
    }

    async fn label_task(&self, task_id: i64, request_id: &str) -> Result<()> {
        let res =
            sqlx::query("UPDATE tasks SET request_id = $1 WHERE id = $2 AND request_id IS NULL")
                .bind(request_id)
                .bind(task_id)
                .execute(&self.pool)
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
        let row = sqlx::query(&format!(
            "{TASK_SELECT} WHERE request_id = $1 AND account_id = $2 AND region = $3"
        ))
        .bind(request_id)
        .bind(scope.account_id)
        .bind(&scope.region)
        .fetch_optional(&self.pool)
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
        let (status, error) = match &outcome {
            Ok(()) => (TaskStatus::Success, None),
            Err(e) => (TaskStatus::Failed, Some(e)),
        };
        let mut tx = self.begin_write().await?;
        // Only the lease holder of a still-running task may finish it; the
        // row lock makes this and a takeover by another worker exclusive.
        let row = sqlx::query(
            "UPDATE tasks SET status = $1, error_code = $2, error_msg = $3, finished_at = $4, \
                 lease_owner = NULL, lease_until = NULL \
             WHERE id = $5 AND status = 2 AND lease_owner = $6 RETURNING kind, conn_id",
        )
        .bind(status.code())
        .bind(error.map(|e| e.error_code.clone()))
        .bind(error.map(|e| e.error_msg.clone()))
        .bind(now)
        .bind(task_id)
        .bind(worker)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let kind = parse::<TaskKind>(&row.try_get::<String, _>("kind")?, "task kind")?;
        let conn_id: i64 = row.try_get("conn_id")?;
        match state_after(kind, outcome.is_ok()) {
            Some(status) => {
                sqlx::query(
                    "UPDATE vpn_conns SET status = $1, active_task = NULL \
                     WHERE id = $2 AND active_task = $3",
                )
                .bind(status.code())
                .bind(conn_id)
                .bind(task_id)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                let gone: Option<(i64, String)> = sqlx::query_as(
                    "DELETE FROM vpn_conns WHERE id = $1 AND active_task = $2 \
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
        // One statement, rows in a fixed order.
        let mut sorted: Vec<&(String, NetStatus)> = changes.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let ids: Vec<String> = sorted.iter().map(|(id, _)| id.clone()).collect();
        let states: Vec<String> = sorted.iter().map(|(_, s)| s.as_str().to_owned()).collect();
        sqlx::query(
            "UPDATE vpn_conns c SET net_status = x.s \
             FROM UNNEST($1::text[], $2::text[]) AS x(u, s) \
             WHERE c.un_id = x.u AND c.net_status <> x.s",
        )
        .bind(ids)
        .bind(states)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn desired_conns(&self, node_id: Option<i64>) -> Result<Vec<VpnConn>> {
        let mut qb = desired_query(node_id);
        let rows = qb.build().fetch_all(&self.pool).await?;
        rows.iter().map(conn_from_row).collect()
    }

    // ---- bulk load ------------------------------------------------------------

    async fn import_conns(&self, scope: &Scope, conns: Vec<NewConn>) -> Result<u64> {
        let mut parents = ImportParents::default();
        let mut inserted = 0u64;
        let now = unix_now();
        let mut rows = conns.into_iter().peekable();
        while rows.peek().is_some() {
            let batch: Vec<NewConn> = rows.by_ref().take(IMPORT_BATCH).collect();
            let mut tx = self.begin_write().await?;
            // The scope's lock row first, as create_conn takes it: the batch
            // adds to its connection count.
            lock_scope(&mut tx, scope).await?;
            let before = inserted;
            for new in &batch {
                parents.check(&mut tx, scope, new).await?;
            }
            let mut pending: Vec<(String, &NewConn, String)> = batch
                .iter()
                .map(|c| Ok((VpnConnKind::fresh_id(), c, encode_settings(&c.settings)?)))
                .collect::<Result<_>>()?;
            // One statement per round; rows whose random id was taken come
            // back missing and go again with a new id.
            for _ in 0..ID_ATTEMPTS {
                if pending.is_empty() {
                    break;
                }
                let written: Vec<String> = sqlx::query_scalar(
                    "INSERT INTO vpn_conns (un_id, account_id, region, vpc_id, vpn_gw_id, \
                         user_gw_id, name, status, net_status, active_task, settings, created_at) \
                     SELECT x.u, $1, $2, x.v, x.g, x.ug, x.n, $3, 'unavailable', NULL, x.s, $4 \
                     FROM UNNEST($5::text[], $6::bigint[], $7::bigint[], $8::bigint[], \
                                 $9::text[], $10::text[]) AS x(u, v, g, ug, n, s) \
                     ON CONFLICT (un_id) DO NOTHING RETURNING un_id",
                )
                .bind(scope.account_id)
                .bind(&scope.region)
                .bind(ConnStatus::Running.code())
                .bind(now)
                .bind(pending.iter().map(|p| p.0.clone()).collect::<Vec<_>>())
                .bind(pending.iter().map(|p| p.1.vpc_id).collect::<Vec<_>>())
                .bind(pending.iter().map(|p| p.1.vpn_gw_id).collect::<Vec<_>>())
                .bind(pending.iter().map(|p| p.1.user_gw_id).collect::<Vec<_>>())
                .bind(pending.iter().map(|p| p.1.name.clone()).collect::<Vec<_>>())
                .bind(pending.iter().map(|p| p.2.clone()).collect::<Vec<_>>())
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| match unique_violation(&e) {
                    Some(c) if c.ends_with("_name") => StoreError::NameInUse(Resource::VpnConn),
                    _ => e.into(),
                })?;
                inserted += written.len() as u64;
                let written: HashSet<String> = written.into_iter().collect();
                pending.retain(|p| !written.contains(&p.0));
                for p in &mut pending {
                    p.0 = VpnConnKind::fresh_id();
                }
            }
            if !pending.is_empty() {
                return Err(StoreError::Backend(
                    "no free connection id after several tries".into(),
                ));
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
        // Statistics for the planner right after the bulk load, rather than
        // whenever autovacuum gets to it, and the visibility map (VACUUM),
        // without which the counts and pages over the new rows cannot be
        // index-only scans. The only table touched is the connections' (no
        // task rows are written). VACUUM cannot run in a transaction block,
        // hence the simple-query protocol.
        sqlx::raw_sql("VACUUM (ANALYZE) vpn_conns")
            .execute(&self.pool)
            .await?;
        Ok(inserted)
    }

    async fn conn_count_check(&self, scope: &Scope) -> Result<(u64, u64)> {
        // One statement: both figures from the same snapshot.
        let (kept, counted): (i64, i64) = sqlx::query_as(
            "SELECT \
               COALESCE((SELECT conns FROM scope_locks \
                         WHERE account_id = $1 AND region = $2), 0), \
               (SELECT COUNT(*) FROM vpn_conns WHERE account_id = $1 AND region = $2)",
        )
        .bind(scope.account_id)
        .bind(&scope.region)
        .fetch_one(&self.pool)
        .await?;
        Ok((kept as u64, counted as u64))
    }

    // ---- gateway nodes ----------------------------------------------------------

    async fn add_gateway_node(
        &self,
        name: &str,
        vici: &str,
        addresses: &[IpAddr],
    ) -> Result<GatewayNode> {
        let row = sqlx::query(&format!(
            "INSERT INTO gateway_nodes (name, vici, addresses, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING {GATEWAY_NODE_COLUMNS}"
        ))
        .bind(name)
        .bind(vici)
        .bind(encode_addresses(addresses))
        .bind(unix_now())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| match unique_violation(&e) {
            Some(_) => StoreError::NameInUse(Resource::GatewayNode),
            None => e.into(),
        })?;
        gateway_node_from_row(&row)
    }

    async fn ensure_gateway_node(&self, vici: &str, addresses: &[IpAddr]) -> Result<GatewayNode> {
        let encoded = encode_addresses(addresses);
        let base = default_node_name(vici);
        let mut n = 1;
        let mut tx = self.begin_write().await?;
        loop {
            let found = sqlx::query(&format!(
                "UPDATE gateway_nodes SET addresses = $1 WHERE vici = $2 \
                 RETURNING {GATEWAY_NODE_COLUMNS}"
            ))
            .bind(&encoded)
            .bind(vici)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = found {
                tx.commit().await?;
                return gateway_node_from_row(&row);
            }
            // Nothing conflicting is inserted; a conflict on the URI means
            // another vpcd created the node meanwhile (the update above then
            // finds it), one on the name means the next suffix.
            let created = sqlx::query(&format!(
                "INSERT INTO gateway_nodes (name, vici, addresses, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING \
                 RETURNING {GATEWAY_NODE_COLUMNS}"
            ))
            .bind(numbered_name(&base, n))
            .bind(vici)
            .bind(&encoded)
            .bind(unix_now())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = created {
                tx.commit().await?;
                return gateway_node_from_row(&row);
            }
            let taken_uri: Option<i64> =
                sqlx::query_scalar("SELECT id FROM gateway_nodes WHERE vici = $1")
                    .bind(vici)
                    .fetch_optional(&mut *tx)
                    .await?;
            if taken_uri.is_none() {
                n += 1;
                if n > NODE_NAME_ATTEMPTS {
                    return Err(StoreError::NameInUse(Resource::GatewayNode));
                }
            }
        }
    }

    async fn list_gateway_nodes(&self) -> Result<Vec<GatewayNode>> {
        let rows = sqlx::query(&format!("{GATEWAY_NODE_SELECT} ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(gateway_node_from_row).collect()
    }

    async fn remove_gateway_node(&self, id: i64) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let found: Option<i64> =
            sqlx::query_scalar("SELECT id FROM gateway_nodes WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        if found.is_none() {
            return Err(StoreError::NotFound(Resource::GatewayNode));
        }
        let gws: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM vpn_gws WHERE node_id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        if gws > 0 {
            return Err(StoreError::InUse(Resource::GatewayNode));
        }
        sqlx::query("DELETE FROM gateway_nodes WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| in_use_or(e, Resource::GatewayNode))?;
        tx.commit().await?;
        Ok(())
    }

    // ---- the cluster of vpcd processes ------------------------------------------

    async fn heartbeat(&self, node: &str, now: Timestamp, info: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO cluster_nodes (name, started_at, last_seen, info) VALUES ($1, $2, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET last_seen = EXCLUDED.last_seen, info = EXCLUDED.info",
        )
        .bind(node)
        .bind(now)
        .bind(info)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM cluster_nodes WHERE last_seen < $1")
            .bind(now.saturating_sub(CLUSTER_NODE_FORGET_SECS))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_cluster_nodes(&self) -> Result<Vec<ClusterNode>> {
        let rows = sqlx::query(
            "SELECT name, started_at, last_seen, info FROM cluster_nodes ORDER BY name",
        )
        .fetch_all(&self.pool)
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
        // One statement: a concurrent acquirer waits on the row and then
        // re-checks the condition against the winner's lease.
        let res = sqlx::query(
            "INSERT INTO gateway_leases (gateway_node_id, holder, until) VALUES ($1, $2, $3) \
             ON CONFLICT (gateway_node_id) DO UPDATE \
             SET holder = EXCLUDED.holder, until = EXCLUDED.until \
             WHERE gateway_leases.holder = EXCLUDED.holder OR gateway_leases.until < $4",
        )
        .bind(gateway_node_id)
        .bind(holder)
        .bind(now.saturating_add(ttl_secs))
        .bind(now)
        .execute(&self.pool)
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
        sqlx::query("DELETE FROM gateway_leases WHERE gateway_node_id = $1 AND holder = $2")
            .bind(gateway_node_id)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn gateway_leases(&self) -> Result<Vec<GatewayLease>> {
        let rows = sqlx::query(
            "SELECT gateway_node_id, holder, until FROM gateway_leases ORDER BY gateway_node_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(lease_from_row).collect()
    }
}

/// A fresh random unified id as text.
trait FreshId {
    fn fresh_id() -> String;
}

impl<K: IdKind> FreshId for K {
    fn fresh_id() -> String {
        UnifiedId::<K>::random().as_str().to_owned()
    }
}

/// The parents an import has already found (and locked `FOR SHARE`) in its
/// scope, so each is looked up once however many connections hang off it.
#[derive(Default)]
struct ImportParents {
    vpcs: HashSet<i64>,
    /// VPN gateway id -> its VPC.
    vpn_gws: HashMap<i64, i64>,
    user_gws: HashSet<i64>,
}

impl ImportParents {
    async fn check(&mut self, conn: &mut PgConnection, scope: &Scope, new: &NewConn) -> Result<()> {
        if !self.vpcs.contains(&new.vpc_id) {
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM vpcs WHERE id = $1 AND account_id = $2 AND region = $3 FOR SHARE",
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
                "SELECT vpc_id FROM vpn_gws WHERE id = $1 AND account_id = $2 AND region = $3 \
                 FOR SHARE",
            )
            .bind(new.vpn_gw_id)
            .bind(scope.account_id)
            .bind(&scope.region)
            .fetch_optional(&mut *conn)
            .await?;
            slot.insert(vpc.ok_or(StoreError::NotFound(Resource::VpnGw))?);
        }
        if self.vpn_gws.get(&new.vpn_gw_id) != Some(&new.vpc_id) {
            return Err(StoreError::NotFound(Resource::VpnGw));
        }
        if !self.user_gws.contains(&new.user_gw_id) {
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM user_gws WHERE id = $1 AND account_id = $2 AND region = $3 \
                 FOR SHARE",
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

fn conn_select() -> String {
    format!("{CONN_COLUMNS} FROM vpn_conns c{CONN_JOINS}")
}

/// The lowest free address in `[$1, $2]`, as in the SQLite engine.
const POOL_LOWEST_FREE: &str = "SELECT MIN(x) FROM ( \
     SELECT $1::bigint AS x WHERE NOT EXISTS (SELECT 1 FROM vpn_gws WHERE address_num = $1) \
     UNION ALL \
     SELECT g.address_num + 1 FROM vpn_gws g \
     WHERE g.address_num >= $1 AND g.address_num < $2 \
       AND NOT EXISTS (SELECT 1 FROM vpn_gws h WHERE h.address_num = g.address_num + 1)) p";

const GATEWAY_NODE_COLUMNS: &str = "id, name, vici, addresses, created_at";
const GATEWAY_NODE_SELECT: &str = "SELECT id, name, vici, addresses, created_at FROM gateway_nodes";

const TASK_SELECT: &str = "SELECT id, kind, status, conn_id, conn_un_id, vpn_gw_un_id, \
     user_gw_un_id, error_code, error_msg, attempts, created_at, finished_at FROM tasks";

// ---- query builders -------------------------------------------------------

/// The tenancy filter.
fn push_scope(qb: &mut QueryBuilder<'_, Postgres>, alias: &str, scope: &Scope) {
    qb.push(format!(" WHERE {alias}.account_id = "))
        .push_bind(scope.account_id)
        .push(format!(" AND {alias}.region = "))
        .push_bind(scope.region.clone());
}

/// `col = n` for a numeric id, `un_col = 'x-...'` for a unified one.
fn push_own_id<K: IdKind>(qb: &mut QueryBuilder<'_, Postgres>, alias: &str, id: &IdRef<K>) {
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

/// A foreign key matched by either id form.
fn push_fk_id<K: IdKind>(
    qb: &mut QueryBuilder<'_, Postgres>,
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

/// ASCII case-insensitive substring match (the columns are "C" collated).
fn push_name_filter(qb: &mut QueryBuilder<'_, Postgres>, col: &str, name: &Option<String>) {
    if let Some(name) = name {
        qb.push(format!(" AND {col} ILIKE "))
            .push_bind(like_pattern(name))
            .push(" ESCAPE '\\'");
    }
}

/// Ordering, tie-broken by id in the same direction.
fn push_order(qb: &mut QueryBuilder<'_, Postgres>, page: &Page, alias: &str) {
    let dir = if page.descending { "DESC" } else { "ASC" };
    let col = match page.order {
        Order::CreateTime => "created_at",
        Order::Name => "name",
    };
    qb.push(format!(" ORDER BY {alias}.{col} {dir}, {alias}.id {dir}"));
}

fn push_page(qb: &mut QueryBuilder<'_, Postgres>, page: &Page, alias: &str) {
    push_order(qb, page, alias);
    qb.push(" LIMIT ")
        .push_bind(i64::from(page.limit))
        .push(" OFFSET ")
        .push_bind(i64::from(page.offset));
}

fn vpc_query(head: &str, scope: &Scope, f: &VpcFilter) -> QueryBuilder<'static, Postgres> {
    let mut qb = QueryBuilder::new(head);
    push_scope(&mut qb, "v", scope);
    if let Some(id) = &f.id {
        push_own_id(&mut qb, "v", id);
    }
    push_name_filter(&mut qb, "v.name", &f.name);
    qb
}

fn vpn_gw_query(head: &str, scope: &Scope, f: &VpnGwFilter) -> QueryBuilder<'static, Postgres> {
    let mut qb = QueryBuilder::new(head);
    push_scope(&mut qb, "g", scope);
    if let Some(vpc) = &f.vpc {
        push_fk_id(&mut qb, "g.vpc_id", "vpcs", vpc);
    }
    if let Some(id) = &f.id {
        push_own_id(&mut qb, "g", id);
    }
    push_name_filter(&mut qb, "g.name", &f.name);
    qb
}

fn user_gw_query(head: &str, scope: &Scope, f: &UserGwFilter) -> QueryBuilder<'static, Postgres> {
    let mut qb = QueryBuilder::new(head);
    push_scope(&mut qb, "u", scope);
    if let Some(id) = &f.id {
        push_own_id(&mut qb, "u", id);
    }
    push_name_filter(&mut qb, "u.name", &f.name);
    qb
}

fn conn_query(head: &str, scope: &Scope, f: &ConnFilter) -> QueryBuilder<'static, Postgres> {
    let mut qb = QueryBuilder::new(head);
    push_scope(&mut qb, "c", scope);
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

/// One page of connections: the page of ids first, then only those rows
/// joined (a deep offset skips index entries, not joined rows).
fn conn_page_query(scope: &Scope, f: &ConnFilter, page: &Page) -> QueryBuilder<'static, Postgres> {
    let mut qb = conn_query(
        &format!("{CONN_COLUMNS} FROM (SELECT c.id FROM vpn_conns c"),
        scope,
        f,
    );
    push_page(&mut qb, page, "c");
    qb.push(format!(") p JOIN vpn_conns c ON c.id = p.id{CONN_JOINS}"));
    push_order(&mut qb, page, "c");
    qb
}

/// The claim's subquery restricted to tasks on `nodes` (`None`: API only).
fn push_claim_on(qb: &mut QueryBuilder<'_, Postgres>, now: Timestamp, nodes: &[Option<i64>]) {
    qb.push(
        "SELECT t.id FROM tasks t \
         JOIN vpn_conns c ON c.id = t.conn_id JOIN vpn_gws g ON g.id = c.vpn_gw_id \
         WHERE t.status = 2 AND (t.lease_until IS NULL OR t.lease_until < ",
    )
    .push_bind(now)
    .push(") AND (g.node_id = ANY(")
    .push_bind(nodes.iter().flatten().copied().collect::<Vec<i64>>())
    .push(")");
    if nodes.contains(&None) {
        qb.push(" OR g.node_id IS NULL");
    }
    qb.push(") ORDER BY t.id LIMIT 1 FOR UPDATE OF t SKIP LOCKED");
}

/// Connections to load on a node (see the SQLite engine).
fn desired_query(node_id: Option<i64>) -> QueryBuilder<'static, Postgres> {
    let mut qb = QueryBuilder::new(conn_select());
    qb.push(" WHERE c.status IN (0, 2, 3, 5, 6)");
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
    conn: &mut PgConnection,
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
    conn: &mut PgConnection,
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
    conn: &mut PgConnection,
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

/// A connection by id; `scope: None` is for the task engine.
async fn fetch_conn(
    conn: &mut PgConnection,
    scope: Option<&Scope>,
    id: &IdRef<VpnConnKind>,
) -> Result<Option<VpnConn>> {
    let mut qb = match scope {
        Some(scope) => conn_query(&conn_select(), scope, &ConnFilter::default()),
        None => {
            let mut qb = QueryBuilder::new(conn_select());
            qb.push(" WHERE TRUE");
            qb
        }
    };
    push_own_id(&mut qb, "c", id);
    let row = qb.build().fetch_optional(&mut *conn).await?;
    row.as_ref().map(conn_from_row).transpose()
}

async fn fetch_task(conn: &mut PgConnection, task_id: i64) -> Result<Task> {
    let row = sqlx::query(&format!("{TASK_SELECT} WHERE id = $1"))
        .bind(task_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| vanished("task"))?;
    task_from_row(&row)
}

// ---- writing helpers ------------------------------------------------------

/// Lock the (account, region) row that per-region quotas count under,
/// creating it on first use. Returns the scope's connection count kept on
/// that row (migration 0003), exact while the lock is held.
async fn lock_scope(conn: &mut PgConnection, scope: &Scope) -> Result<i64> {
    sqlx::query(
        "INSERT INTO scope_locks (account_id, region) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(scope.account_id)
    .bind(&scope.region)
    .execute(&mut *conn)
    .await
    .map_err(|e| {
        if is_fk_violation(&e) {
            StoreError::NotFound(Resource::Account)
        } else {
            e.into()
        }
    })?;
    let conns = sqlx::query_scalar(
        "SELECT conns FROM scope_locks WHERE account_id = $1 AND region = $2 FOR UPDATE",
    )
    .bind(scope.account_id)
    .bind(&scope.region)
    .fetch_one(&mut *conn)
    .await?;
    Ok(conns)
}

/// Add `delta` (negative: rows deleted) to the scope's connection count.
/// The row exists once a connection was inserted in the scope, since
/// `lock_scope` ran first (create_conn, import_conns).
async fn add_scope_conns(
    conn: &mut PgConnection,
    account_id: i64,
    region: &str,
    delta: i64,
) -> Result<()> {
    let updated = sqlx::query(
        "UPDATE scope_locks SET conns = conns + $3 WHERE account_id = $1 AND region = $2",
    )
    .bind(account_id)
    .bind(region)
    .bind(delta)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() != 1 {
        return Err(StoreError::Backend(format!(
            "no connection count for account {account_id} in region {region}"
        )));
    }
    Ok(())
}

/// Run an `INSERT ... ON CONFLICT (un_id) DO NOTHING RETURNING id` built by
/// `make` for a fresh unified id, with another id when the random one is
/// taken (the statement then returns no row and nothing failed).
async fn insert_unified<'q, K, F>(
    conn: &mut PgConnection,
    mut make: F,
) -> std::result::Result<i64, sqlx::Error>
where
    K: IdKind,
    F: FnMut(String) -> sqlx::query::QueryScalar<'q, Postgres, i64, sqlx::postgres::PgArguments>,
{
    for _ in 0..ID_ATTEMPTS {
        let un_id = UnifiedId::<K>::random().as_str().to_owned();
        if let Some(id) = make(un_id).fetch_optional(&mut *conn).await? {
            return Ok(id);
        }
    }
    Err(sqlx::Error::Protocol(
        "no free unified id after several tries".into(),
    ))
}

#[allow(clippy::too_many_arguments)]
async fn insert_task(
    conn: &mut PgConnection,
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
         VALUES ($1, $2, $3, 2, $4, $5, $6, $7, 0, $8) RETURNING id",
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
async fn exists(conn: &mut PgConnection, sql: &str, scope: &Scope, value: &str) -> Result<bool> {
    let row = sqlx::query(sql)
        .bind(scope.account_id)
        .bind(&scope.region)
        .bind(value)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.is_some())
}

/// Rows of `table` in the scope. `table` is one of this file's constants.
async fn count_in_scope(conn: &mut PgConnection, table: &str, scope: &Scope) -> Result<i64> {
    let n = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM {table} WHERE account_id = $1 AND region = $2"
    ))
    .bind(scope.account_id)
    .bind(&scope.region)
    .fetch_one(&mut *conn)
    .await?;
    Ok(n)
}

/// The lowest host address of `net` held by no gateway of any account.
/// Called under the address lock.
async fn pick_pool_address(conn: &mut PgConnection, net: IpNet) -> Result<IpAddr> {
    let (lo, hi) = pool_range(net)?;
    let free: Option<i64> = sqlx::query_scalar(POOL_LOWEST_FREE)
        .bind(lo)
        .bind(hi)
        .fetch_one(&mut *conn)
        .await?;
    pool_address(free, (lo, hi))
}

/// The node's least used address (ties: the lowest). Called under the
/// address lock; the node row is held FOR SHARE so it cannot be removed.
async fn pick_node_address(conn: &mut PgConnection, node_id: i64) -> Result<IpAddr> {
    let addresses: String =
        sqlx::query_scalar("SELECT addresses FROM gateway_nodes WHERE id = $1 FOR SHARE")
            .bind(node_id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(StoreError::NotFound(Resource::GatewayNode))?;
    let addresses = decode_addresses(&addresses)?;
    let rows = sqlx::query(
        "SELECT address, COUNT(*) AS n FROM vpn_gws WHERE node_id = $1 GROUP BY address",
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

// ---- rows and errors ------------------------------------------------------

impl StoreRow for PgRow {
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
        Ok(self.try_get(col)?)
    }
}

/// The constraint (or unique index) a unique violation names; they are
/// named `<table>_<column>` in the schema.
fn unique_violation(e: &sqlx::Error) -> Option<&str> {
    match e {
        sqlx::Error::Database(db) if db.kind() == ErrorKind::UniqueViolation => {
            Some(db.constraint().unwrap_or(""))
        }
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
