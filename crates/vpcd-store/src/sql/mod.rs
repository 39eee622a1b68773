//! The SQL layer both engines share: every statement and every rule of the
//! [`Store`](crate::Store) is written here once, generic over the engine.
//!
//! An engine is sqlx's database type ([`sqlx::Sqlite`], [`sqlx::Postgres`])
//! implementing [`Engine`]: the few things that truly differ between the two
//! (how transactions begin, whether rows are locked, how a unique violation
//! names its key, nonce storage, bulk insert, statistics). Statements use
//! numbered parameters (`$1`, `$2`, ...), which both engines read, and run as
//! prepared statements cached per connection.
//!
//! How the rules hold under concurrency differs by engine and is described in
//! each engine's module: SQLite has one writer and starts every write
//! transaction with `BEGIN IMMEDIATE`, so nothing else writes between a
//! check and the write it guards; PostgreSQL has many writers and locks the
//! rows a check depends on (`FOR UPDATE` / `FOR SHARE`, written here and
//! left out when [`Engine::ROW_LOCKS`] is false).
//!
//! # Layout
//! - this file: [`Engine`], [`Io`] (the sqlx operations the layer uses,
//!   implemented once for any database sqlx supports), [`Sql`] (statement
//!   text and its arguments), [`SqlStore`] and the helpers of its
//!   transactions.
//! - `text`: SQL text and the builders of the list and fetch queries.
//! - `store`: the [`Store`](crate::Store) implementation.
//! - `secrets`: checking the master key at start, sealing what an older
//!   vpcd stored in clear, and key rotation.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering as AtomicOrdering};
use std::sync::{Arc, RwLock};

use ipnet::IpNet;
use sqlx::error::{DatabaseError, ErrorKind};
use sqlx::pool::PoolOptions;
use sqlx::{
    ColumnIndex, Connection, Database, Decode, Encode, Executor, IntoArguments, Pool, Transaction,
    Type,
};
use vpcd_types::id::{IdKind, UnifiedId, UserGwKind, VpcKind, VpnGwKind};
use vpcd_types::{
    AccountId, ConnStatus, GatewayNodeId, IdRef, RowId, TaskId, TaskKind, TunnelFace, UserGwRowId,
    VpcRowId, VpnConnRowId, VpnGwRowId,
};

use crate::common::*;
use crate::master_key::MasterKey;
use crate::model::*;
use crate::{Resource, Result, StoreError};

mod console;
mod diagnostics;
mod monitoring;
mod reads;
mod secrets;
mod store;
pub(crate) mod text;
mod writer;

pub(crate) use reads::Reads;
use reads::{first_of, ReadRow, Size};
use text::*;
use writer::{WriteFuture, Writer};

/// Fresh unified ids (or secret ids) tried before a collision is an error.
const ID_ATTEMPTS: u32 = 8;
/// Expired nonces are pruned at most this often (in the caller's clock).
const NONCE_PRUNE_INTERVAL_SECS: i64 = 10;
/// Rows deleted per pruning statement, so no writer is held long.
const NONCE_PRUNE_BATCH: i64 = 5_000;
/// Pruning batches per interval and table; whatever is left waits for the
/// next one. With the interval this keeps up with 32,000 signed requests a
/// second, so the nonce tables hold about one replay window of nonces, not
/// the process's whole history.
const NONCE_PRUNE_MAX_BATCHES: u32 = 64;
/// Rows per statement of [`Store::record_nonces`] (3 parameters each, well
/// under SQLite's and PostgreSQL's parameter limits).
const NONCE_BATCH_ROWS: usize = 500;
/// Connections written per transaction by `import_conns`.
const IMPORT_BATCH: usize = 10_000;
/// Unified ids per `IN (...)` list (well under either engine's limit on
/// parameters per statement).
const IN_LIST_CHUNK: usize = 1_000;

/// A new connection's JSON columns: its settings and its tags. `pub` for
/// the reason [`Engine`] is: [`Engine::insert_conns`] takes it.
pub struct EncodedConn {
    pub(crate) settings: String,
    pub(crate) tags: String,
}

/// `new`'s settings (its pre-shared key sealed under `key` for the row
/// `un_id`) and tags, as stored.
pub(crate) fn encode_conn(new: &NewConn, key: &MasterKey, un_id: &str) -> Result<EncodedConn> {
    Ok(EncodedConn {
        settings: encode_settings(&new.settings, key, un_id)?,
        tags: serde_json::to_string(&new.tags)
            .map_err(|_| StoreError::Backend("cannot encode connection tags".into()))?,
    })
}

/// What differs between the engines. Implemented by [`sqlx::Sqlite`]
/// (`crate::sqlite`) and [`sqlx::Postgres`] (`crate::postgres`).
///
/// `pub` (like [`Io`], [`Sql`] and [`Record`]) only because the public
/// `SqliteStore` and `PgStore` name [`SqlStore`], whose impls it bounds;
/// this module is private, so no other crate can name or implement it.
pub trait Engine: Io {
    /// Starts every write transaction.
    const BEGIN_WRITE: &'static str;
    /// Starts a read transaction: one snapshot for a count and its page.
    const BEGIN_READ: &'static str;
    /// Whether statements lock the rows their checks depend on (`FOR
    /// UPDATE`, `FOR SHARE`, `SKIP LOCKED`). Without it, the single writer
    /// serializes every write transaction instead.
    const ROW_LOCKS: bool;
    /// Whether a statement's `WITH` clauses may insert and update, each
    /// seeing none of the others' rows (PostgreSQL): then an add inserts
    /// its connection and task in one statement ([`conn_with_task_insert`]).
    const WRITES_IN_WITH: bool = false;
    /// The case-insensitive `LIKE` (ASCII letters only on both engines).
    const LIKE: &'static str;
    /// Put before a column to keep the planner from using an index on it
    /// (`+` for SQLite, which would otherwise pick the scope index to save a
    /// sort and then walk the tenant's every row); empty where unneeded.
    const NOT_INDEXED: &'static str;
    /// Each deletes up to `$2` nonces seen before `$1` from one of the
    /// tables nonces are kept in.
    const PRUNE_NONCES: &'static [&'static str];
    /// Where [`Store::record_nonces`](crate::Store::record_nonces) appends
    /// the nonces accepted on a process's memory check, when that is not
    /// `nonces` itself: SQLite's `read_nonces`, rows in the order they were
    /// seen and no key to look one up by (see `crate::sqlite`). `None`:
    /// they are inserted in `nonces` like any other (PostgreSQL).
    const READ_NONCES: Option<&'static str>;
    /// Refreshes the planner's statistics after a bulk load (run outside
    /// any transaction).
    const ANALYZE: &'static str;
    /// Taken in the transaction that picks a new gateway's address, where
    /// several writers could otherwise pick the same one.
    const ADDRESS_LOCK: Option<&'static str>;
    /// Run on the writer connection before and after a transaction that
    /// replaces secrets, so the replaced values leave no copy in the
    /// database's free space (SQLite's `secure_delete`); `None` where the
    /// engine has no such switch.
    const SECURE_DELETE: Option<(&'static str, &'static str)>;
    /// Run after secrets were replaced, outside any transaction, to drop the
    /// old copies from the files (SQLite: checkpoint and truncate the WAL;
    /// PostgreSQL: rewrite the tables, leaving no dead row versions).
    const SCRUB: &'static [&'static str];
    /// Whether writes go through the group-commit writer (`writer`): one
    /// transaction and one commit for every write queued at the time.
    const GROUP_COMMIT: bool;
    /// Whether writes, reads and nonces share one connection pool
    /// (PostgreSQL) rather than each having their own (SQLite).
    const ONE_POOL: bool;

    /// Whether a unique violation is on a key whose last column is `col`.
    fn unique_on(e: &dyn DatabaseError, col: &str) -> bool;

    /// Run the nonce insert `q` as the engine stores nonces; the rows it
    /// affected.
    fn record_nonce(pool: &Pool<Self>, q: Sql) -> impl Future<Output = Result<u64>> + Send;

    /// Insert running connections of `scope`, each `(fresh unified id, the
    /// connection, its encoded settings)`, with
    /// `ON CONFLICT (un_id) DO NOTHING`; the unified ids written.
    fn insert_conns<'c>(
        conn: &'c mut Self::Connection,
        scope: &'c Scope,
        now: Timestamp,
        rows: &'c [(String, &'c NewConn, EncodedConn)],
    ) -> impl Future<Output = Result<Vec<String>, sqlx::Error>> + Send + 'c;
}

/// The sqlx operations the layer uses. Implemented once below for every
/// database whose driver supports the types used here, so sqlx's trait
/// bounds are written in this one place rather than on every function.
pub trait Io: Database {
    fn fetch<'c>(
        conn: &'c mut Self::Connection,
        q: Sql,
    ) -> impl Future<Output = Result<Vec<Record<Self>>, sqlx::Error>> + Send + 'c;

    /// Rows affected.
    fn execute<'c>(
        conn: &'c mut Self::Connection,
        q: Sql,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'c;

    /// One statement without parameters, not prepared (the simple-query
    /// protocol, for what cannot run in a transaction block).
    fn execute_raw<'c>(
        conn: &'c mut Self::Connection,
        text: &'static str,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'c;

    /// The first row `q` returns, if any.
    fn opt<'c>(
        conn: &'c mut Self::Connection,
        q: Sql,
    ) -> impl Future<Output = Result<Option<Record<Self>>, sqlx::Error>> + Send + 'c {
        let rows = Self::fetch(conn, q);
        async move { Ok(rows.await?.into_iter().next()) }
    }

    /// The first row `q` returns; an error if none.
    fn one<'c>(
        conn: &'c mut Self::Connection,
        q: Sql,
    ) -> impl Future<Output = Result<Record<Self>, sqlx::Error>> + Send + 'c {
        let row = Self::opt(conn, q);
        async move { row.await?.ok_or(sqlx::Error::RowNotFound) }
    }

    fn opt_int(row: &Self::Row, col: &str) -> Result<Option<i64>>;
    fn opt_text(row: &Self::Row, col: &str) -> Result<Option<String>>;
    fn flag(row: &Self::Row, col: &str) -> Result<bool>;
}

impl<DB: Database> Io for DB
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> &'q str: ColumnIndex<DB::Row>,
    DB::QueryResult: RowsAffected,
{
    async fn fetch(conn: &mut DB::Connection, q: Sql) -> Result<Vec<Record<DB>>, sqlx::Error> {
        let rows = bind::<DB>(&q.text, q.args).fetch_all(conn).await?;
        Ok(rows.into_iter().map(Record).collect())
    }

    async fn execute(conn: &mut DB::Connection, q: Sql) -> Result<u64, sqlx::Error> {
        Ok(bind::<DB>(&q.text, q.args)
            .execute(conn)
            .await?
            .rows_affected())
    }

    async fn execute_raw(conn: &mut DB::Connection, text: &'static str) -> Result<(), sqlx::Error> {
        // A bare string has no arguments: PostgreSQL gets it through the
        // simple-query protocol, unprepared.
        conn.execute(text).await?;
        Ok(())
    }

    fn opt_int(row: &DB::Row, col: &str) -> Result<Option<i64>> {
        Ok(sqlx::Row::try_get(row, col)?)
    }
    fn opt_text(row: &DB::Row, col: &str) -> Result<Option<String>> {
        Ok(sqlx::Row::try_get(row, col)?)
    }
    fn flag(row: &DB::Row, col: &str) -> Result<bool> {
        Ok(sqlx::Row::try_get(row, col)?)
    }
}

/// `args` bound to `text`, in order.
fn bind<'q, DB: Database>(
    text: &'q str,
    args: Vec<Arg>,
) -> sqlx::query::Query<'q, DB, DB::Arguments<'q>>
where
    Option<i64>: Encode<'q, DB> + Type<DB>,
    Option<String>: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
{
    args.into_iter()
        .fold(sqlx::query(text), |query, arg| match arg {
            Arg::Int(v) => query.bind(v),
            Arg::Text(v) => query.bind(v),
            Arg::Bool(v) => query.bind(v),
        })
}

/// The number of rows a statement changed (each driver's query result has
/// it, as an inherent method).
pub trait RowsAffected {
    fn rows_affected(&self) -> u64;
}

/// A statement's text and its arguments, `$1` first. Not `Debug`: the
/// arguments may hold a pre-shared key.
pub struct Sql {
    text: String,
    args: Vec<Arg>,
}

/// One argument. `None` binds NULL of the type.
pub(crate) enum Arg {
    Int(Option<i64>),
    Text(Option<String>),
    Bool(bool),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Arg {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Arg {
        Arg::Int(v)
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Arg {
        Arg::Bool(v)
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Arg {
        Arg::Text(Some(v))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Arg {
        Arg::Text(v)
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Arg {
        Arg::Text(Some(v.to_owned()))
    }
}
impl<K> From<RowId<K>> for Arg {
    fn from(v: RowId<K>) -> Arg {
        Arg::Int(Some(v.get()))
    }
}
impl<K> From<Option<RowId<K>>> for Arg {
    fn from(v: Option<RowId<K>>) -> Arg {
        Arg::Int(v.map(RowId::get))
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Arg {
        Arg::Text(Some(v.clone()))
    }
}

impl Sql {
    /// A statement whose text numbers its own parameters; [`Sql::arg`] gives
    /// them in order.
    pub(crate) fn new(text: impl Into<String>) -> Sql {
        Sql {
            text: text.into(),
            args: Vec::new(),
        }
    }

    /// The next argument, for a parameter the text already names.
    pub(crate) fn arg(mut self, arg: impl Into<Arg>) -> Sql {
        self.args.push(arg.into());
        self
    }

    /// Append text.
    pub(crate) fn push(&mut self, text: &str) -> &mut Sql {
        self.text.push_str(text);
        self
    }

    /// Append the next parameter (`$n`) and its argument.
    pub(crate) fn bind(&mut self, arg: impl Into<Arg>) -> &mut Sql {
        self.args.push(arg.into());
        let n = self.args.len();
        self.text.push_str(&format!("${n}"));
        self
    }

    /// The text and the arguments, for a driver other than sqlx's.
    pub(crate) fn parts(&self) -> (&str, &[Arg]) {
        (&self.text, &self.args)
    }

    /// The same statement after `prefix` (`EXPLAIN ...` in tests).
    #[cfg(test)]
    pub(crate) fn prefixed(mut self, prefix: &str) -> Sql {
        self.text.insert_str(0, prefix);
        self
    }
}

/// A result row, read through [`StoreRow`].
pub struct Record<DB: Database>(DB::Row);

impl<DB: Io> StoreRow for Record<DB> {
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        DB::opt_int(&self.0, col)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        DB::opt_text(&self.0, col)
    }
    fn flag(&self, col: &str) -> Result<bool> {
        DB::flag(&self.0, col)
    }
}

/// Whether `e` is a unique violation, on a key whose last column is `col`
/// if given.
fn is_unique<DB: Engine>(e: &sqlx::Error, col: Option<&str>) -> bool {
    match e {
        sqlx::Error::Database(db) if db.kind() == ErrorKind::UniqueViolation => {
            col.is_none_or(|col| DB::unique_on(db.as_ref(), col))
        }
        _ => false,
    }
}

/// A unique violation on a name (or, with no column given, on any key)
/// means the name is taken.
fn name_taken<DB: Engine>(
    what: Resource,
    col: Option<&'static str>,
) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| {
        if is_unique::<DB>(&e, col) {
            StoreError::NameInUse(what)
        } else {
            e.into()
        }
    }
}

/// A foreign-key violation means `err`: a missing parent on insert, a
/// dependant that appeared on delete.
fn fk_means(err: StoreError) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(db) if db.kind() == ErrorKind::ForeignKeyViolation => err,
        _ => e.into(),
    }
}

/// `cols` of the row `id` of `table` in the scope, held `FOR SHARE` so it
/// cannot be deleted before the transaction ends. `cols` and `table` are
/// this module's constants.
fn shared_in_scope<DB: Engine>(cols: &str, table: &str, id: impl Into<Arg>, scope: &Scope) -> Sql {
    Sql::new(format!(
        "SELECT {cols} FROM {table} WHERE id = $1 AND account_id = $2 AND region = $3{}",
        lock::<DB>(FOR_SHARE)
    ))
    .arg(id)
    .arg(scope.account_id)
    .arg(&scope.region)
}

/// A fresh random unified id as text.
fn fresh_id<K: IdKind>() -> String {
    UnifiedId::<K>::random().as_str().to_owned()
}

/// The per-gateway, per-peer and per-pair connection quotas, on a row
/// with the columns of [`conn_quota_counts`] that counts `own` rows of the
/// connection being created (0 before it is inserted, 1 after).
pub(crate) fn check_conn_quotas(row: &impl StoreRow, own: i64, limits: &Limits) -> Result<()> {
    check_quota(
        row.int("per_gw")? - own,
        limits.conns_per_vpn_gw,
        Quota::ConnsPerVpnGw,
    )?;
    check_quota(
        row.int("per_user_gw")? - own,
        limits.conns_per_user_gw,
        Quota::ConnsPerUserGw,
    )?;
    check_quota(
        row.int("per_pair")? - own,
        limits.conns_per_pair,
        Quota::ConnsPerPair,
    )
}

/// Where a pool's connections live, which decides how they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    /// An SQLite file in this process: there is no other end that could hang
    /// up, so a connection is not pinged when it is taken (each ping is a
    /// round trip to the connection's thread, on every request). sqlx's
    /// SQLite worker lowers its transaction count only once a queued
    /// `ROLLBACK` has run, so a connection given back at depth 0 has nothing
    /// queued and needs no ping either.
    Local,
    /// A PostgreSQL server: pinged when taken (the server may have closed it)
    /// and when given back, since sqlx lowers the count as soon as it queues
    /// a dropped transaction's `ROLLBACK`, and only running it tells.
    Remote,
}

/// `opts` with the check every pooled connection passes when it is given
/// back: a connection still inside a transaction is closed (the pool opens a
/// fresh one) instead of being reused.
///
/// This is how a failed statement or commit cannot wedge a writer. A
/// dropped [`Transaction`] queues a `ROLLBACK`; but after "database or disk
/// is full" (or an I/O error) SQLite has already rolled the transaction back
/// itself, that `ROLLBACK` fails, and sqlx's connection keeps counting one
/// open transaction, so every later `BEGIN` on it would fail until a
/// restart. The ping first lets the queued `ROLLBACK` run, so a connection
/// whose rollback worked is kept.
pub(crate) fn recovering<DB: Database>(opts: PoolOptions<DB>, link: Link) -> PoolOptions<DB> {
    opts.test_before_acquire(link == Link::Remote)
        .after_release(move |conn, _| {
            Box::pin(async move {
                if link == Link::Local && !conn.is_in_transaction() {
                    return Ok(true);
                }
                conn.ping().await?;
                if conn.is_in_transaction() {
                    tracing::warn!(
                        "a failed transaction left its database connection unusable; \
                         replacing the connection"
                    );
                    return Ok(false);
                }
                Ok(true)
            })
        })
}

/// The [`Store`](crate::Store) on engine `DB`: [`crate::SqliteStore`] or
/// [`crate::PgStore`].
pub struct SqlStore<DB: Database> {
    /// Write transactions (SQLite: its one writer connection).
    pub(crate) write: Pool<DB>,
    /// Reads outside write transactions (`reads`).
    pub(crate) read: Reads<DB>,
    /// Where nonces are recorded (SQLite: a file of their own).
    pub(crate) nonces: Pool<DB>,
    last_nonce_prune: AtomicI64,
    /// What secrets are sealed under; replaced by a key rotation.
    key: RwLock<Arc<MasterKey>>,
    /// The group-commit writer, where the engine has one.
    pub(crate) writer: Option<Writer<DB>>,
    /// The account whose task this process claimed last: the next claim
    /// starts after it (round robin by account).
    claim_cursor: Arc<AtomicI64>,
}

impl<DB: Database> std::fmt::Debug for SqlStore<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("engine", &DB::NAME)
            .finish_non_exhaustive()
    }
}

impl<DB: Engine> SqlStore<DB> {
    /// The store over these pools, its secrets sealed under `key`: checked
    /// against the database's key, and the clear values of an older vpcd
    /// sealed, before the store is returned.
    pub(crate) async fn from_pools(
        write: Pool<DB>,
        read: Reads<DB>,
        nonces: Pool<DB>,
        key: MasterKey,
    ) -> Result<Self> {
        let writer = DB::GROUP_COMMIT.then(|| Writer::start(write.clone()));
        let store = SqlStore {
            write,
            read,
            nonces,
            last_nonce_prune: AtomicI64::new(i64::MIN),
            key: RwLock::new(Arc::new(key)),
            writer,
            claim_cursor: Arc::new(AtomicI64::new(i64::MIN)),
        };
        store.adopt_key().await?;
        Ok(store)
    }

    /// The master key secrets are sealed under now.
    pub(crate) fn key(&self) -> Arc<MasterKey> {
        // A poisoned lock still holds a whole key: a writer only swaps the Arc.
        self.key
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Every write transaction begins here, so a writer in front of them
    /// (SQLite group commit) is one change. The only writes elsewhere are
    /// the nonces (their own pool, `Engine::record_nonce`) and the
    /// statistics pass after an import.
    ///
    /// A transaction that fails (a statement, or its commit: a full disk, a
    /// lost server) fails its caller only: its connection is rolled back
    /// or replaced when it goes back to the pool ([`recovering`]), so the
    /// next write starts clean. A writer that batches several callers'
    /// transactions must keep that promise per batch.
    async fn begin_write(&self) -> Result<Transaction<'static, DB>> {
        Ok(self.write.begin_with(DB::BEGIN_WRITE).await?)
    }

    /// Run `work` as one write transaction, or as one write of the next
    /// group commit where the engine has a writer (`writer`). `work` owns
    /// what it needs (it may run on the writer's task) and returns `Err` to
    /// have everything it wrote rolled back; its result is answered only
    /// once it is durable.
    async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut DB::Connection) -> WriteFuture<'c, T> + Send + 'static,
    {
        if let Some(writer) = &self.writer {
            return writer.write(work).await;
        }
        let mut tx = self.begin_write().await?;
        let out = work(&mut tx).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Delete a row unless something still refers to it: `NotFound` /
    /// `InUse` of `parent.resource`. The row is locked first (or the single
    /// writer excludes everyone): a dependant being created, which holds the
    /// parent `FOR SHARE`, commits before and is seen, or waits and then
    /// finds the parent gone.
    async fn delete_unused<K: Send + 'static>(
        &self,
        scope: Option<&Scope>,
        id: RowId<K>,
        parent: &'static Parent,
    ) -> Result<()> {
        let scope = scope.cloned();
        self.write(move |tx| {
            Box::pin(async move {
                let scope = scope.as_ref();
                let mut find = Sql::new(format!("SELECT id FROM {} WHERE id = ", parent.table));
                find.bind(id);
                if let Some(scope) = scope {
                    find.push(" AND account_id = ")
                        .bind(scope.account_id)
                        .push(" AND region = ")
                        .bind(&scope.region);
                }
                find.push(lock::<DB>(FOR_UPDATE));
                if DB::opt(&mut *tx, find).await?.is_none() {
                    return Err(StoreError::NotFound(parent.resource));
                }
                let used = DB::one(
                    &mut *tx,
                    Sql::new(format!(
                        "SELECT EXISTS (SELECT 1 FROM {} WHERE {} = $1) AS used",
                        parent.child_table, parent.child_fk
                    ))
                    .arg(id),
                )
                .await?;
                if used.flag("used")? {
                    return Err(StoreError::InUse(parent.resource));
                }
                let delete =
                    Sql::new(format!("DELETE FROM {} WHERE id = $1", parent.table)).arg(id);
                DB::execute(&mut *tx, delete)
                    .await
                    .map_err(fk_means(StoreError::InUse(parent.resource)))?;
                Ok(())
            })
        })
        .await
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
        let pruned = async {
            let mut conn = self.nonces.acquire().await?;
            for prune in DB::PRUNE_NONCES {
                for _ in 0..NONCE_PRUNE_MAX_BATCHES {
                    let q = Sql::new(*prune).arg(not_before).arg(NONCE_PRUNE_BATCH);
                    if DB::execute(&mut conn, q).await? < NONCE_PRUNE_BATCH as u64 {
                        break;
                    }
                }
            }
            Ok::<_, sqlx::Error>(())
        };
        if let Err(e) = pruned.await {
            tracing::warn!(error = %e, "pruning old nonces failed");
        }
    }

    /// Create a task row and hand the connection to it, refusing atomically
    /// when another task owns the connection or its state forbids `kind`.
    async fn begin_task(
        &self,
        scope: &Scope,
        conn_id: VpnConnRowId,
        kind: TaskKind,
        change: Option<ConnChange>,
    ) -> Result<Task> {
        let (allowed, new_status) = task_start_rule(kind)?;
        let scope = scope.clone();
        let key = self.key();
        self.write(move |tx| {
            Box::pin(async move {
                let scope = &scope;
                // The connection row is locked: a concurrent begin_* waits here and
                // then sees this one's task.
                let find = Sql::new(format!(
                    "SELECT c.status, c.active_task, c.vpc_id, c.un_id, \
                    g.un_id AS gw_un_id, u.un_id AS ugw_un_id, \
                    g.node_id, g.address AS gw_address, u.address AS ugw_address \
             FROM vpn_conns c \
             JOIN vpn_gws g ON g.id = c.vpn_gw_id \
             JOIN user_gws u ON u.id = c.user_gw_id \
             WHERE c.id = $1 AND c.account_id = $2 AND c.region = $3{}",
                    lock::<DB>(" FOR UPDATE OF c")
                ))
                .arg(conn_id)
                .arg(scope.account_id)
                .arg(&scope.region);
                let row = DB::opt(&mut *tx, find)
                    .await?
                    .ok_or(StoreError::NotFound(Resource::VpnConn))?;
                if let Some(task) = row.opt_id("active_task")? {
                    return Err(StoreError::Busy(task));
                }
                let status = row.int("status")?;
                if !allowed.iter().any(|s| s.code() == status) {
                    return Err(StoreError::InvalidState);
                }
                let vpc_id: VpcRowId = row.id("vpc_id")?;
                if let (Some(node), Some(settings)) = (
                    row.opt_id("node_id")?,
                    change.as_ref().and_then(|c| c.settings.as_ref()),
                ) {
                    let face = TunnelFace {
                        local_addr: parse(&row.text("gw_address")?, "gateway address")?,
                        remote_addr: parse(&row.text("ugw_address")?, "peer address")?,
                        local_identity: &settings.ike.local_identity,
                        remote_identity: &settings.ike.remote_identity,
                    };
                    Self::check_node_tenants(&mut *tx, &key, node, scope.account_id, &face).await?;
                }
                let conn_un_id = row.text("un_id")?;
                let (new_name, new_settings) = match change {
                    Some(ConnChange { name, settings }) => {
                        // The pre-shared key is sealed for this row's id.
                        let sealed = settings
                            .as_ref()
                            .map(|s| encode_settings(s, &key, &conn_un_id))
                            .transpose()?;
                        (name, sealed)
                    }
                    None => (None, None),
                };
                if let Some(name) = &new_name {
                    let clash = Sql::new(
                        "SELECT id FROM vpn_conns \
                 WHERE account_id = $1 AND region = $2 AND vpc_id = $3 AND name = $4 AND id <> $5",
                    )
                    .arg(scope.account_id)
                    .arg(&scope.region)
                    .arg(vpc_id)
                    .arg(name)
                    .arg(conn_id);
                    if DB::opt(&mut *tx, clash).await?.is_some() {
                        return Err(StoreError::NameInUse(Resource::VpnConn));
                    }
                }
                let task_id = Self::insert_task(
                    &mut *tx,
                    scope,
                    kind,
                    conn_id,
                    [&conn_un_id, &row.text("gw_un_id")?, &row.text("ugw_un_id")?],
                    unix_now(),
                )
                .await?;
                // Conditional on the connection still being free, so the refusal is
                // race-free even without the row lock.
                let allowed = allowed
                    .iter()
                    .map(|s| s.code().to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                let hand_over = Sql::new(format!(
                    "UPDATE vpn_conns SET active_task = $1, status = COALESCE($2, status), \
                 name = COALESCE($3, name), settings = COALESCE($4, settings) \
             WHERE id = $5 AND active_task IS NULL AND status IN ({allowed})"
                ))
                .arg(task_id)
                .arg(new_status.map(ConnStatus::code))
                .arg(new_name)
                .arg(new_settings)
                .arg(conn_id);
                let updated = DB::execute(&mut *tx, hand_over)
                    .await
                    .map_err(name_taken::<DB>(Resource::VpnConn, Some("name")))?;
                if updated != 1 {
                    let now_active = DB::opt(
                        &mut *tx,
                        Sql::new("SELECT active_task FROM vpn_conns WHERE id = $1").arg(conn_id),
                    )
                    .await?;
                    return Err(
                        match now_active
                            .map(|r| r.opt_id("active_task"))
                            .transpose()?
                            .flatten()
                        {
                            Some(t) => StoreError::Busy(t),
                            None => StoreError::InvalidState,
                        },
                    );
                }
                let task = Self::fetch_task(&mut *tx, task_id).await?;
                Ok(task)
            })
        })
        .await
    }

    /// Refuse a tunnel of `account` that a tunnel of another account on
    /// gateway node `node` could be taken for ([`TunnelFace::clash`]): the
    /// tenants of one charon must not disturb each other. The node's row is
    /// locked first, so two accounts' changes on one node are checked one
    /// after the other. Tunnels that are not loaded (failed creations,
    /// deleted ones) do not count.
    async fn check_node_tenants(
        conn: &mut DB::Connection,
        key: &MasterKey,
        node: GatewayNodeId,
        account: AccountId,
        face: &TunnelFace<'_>,
    ) -> Result<()> {
        let lock_node = Sql::new(format!(
            "SELECT id FROM gateway_nodes WHERE id = $1{}",
            lock::<DB>(FOR_UPDATE)
        ))
        .arg(node);
        DB::opt(&mut *conn, lock_node).await?;
        let mut others = Sql::new(conn_select());
        others.push(" WHERE c.status IN (0, 2, 3, 5, 6) AND g.node_id = ");
        others.bind(node);
        others.push(" AND c.account_id <> ");
        others.bind(account);
        for row in DB::fetch(&mut *conn, others).await? {
            let other = conn_from_row(&row, key)?;
            let theirs = TunnelFace {
                local_addr: other.vpn_gw.address,
                remote_addr: other.user_gw.address,
                local_identity: &other.settings.ike.local_identity,
                remote_identity: &other.settings.ike.remote_identity,
            };
            if let Some(clash) = face.clash(&theirs) {
                return Err(StoreError::TunnelClash(clash));
            }
        }
        Ok(())
    }

    // ---- fetching single rows ---------------------------------------------

    async fn fetch_vpc(
        conn: &mut DB::Connection,
        scope: &Scope,
        id: &IdRef<VpcKind>,
    ) -> Result<Option<Vpc>> {
        let row = DB::opt(conn, vpc_by_ref::<DB>(scope, id)).await?;
        row.as_ref().map(vpc_from_row).transpose()
    }

    async fn fetch_vpn_gw(
        conn: &mut DB::Connection,
        scope: &Scope,
        id: &IdRef<VpnGwKind>,
    ) -> Result<Option<VpnGw>> {
        let row = DB::opt(conn, vpn_gw_by_ref::<DB>(scope, id)).await?;
        row.as_ref().map(vpn_gw_from_row).transpose()
    }

    async fn fetch_user_gw(
        conn: &mut DB::Connection,
        scope: &Scope,
        id: &IdRef<UserGwKind>,
    ) -> Result<Option<UserGw>> {
        let row = DB::opt(conn, user_gw_by_ref::<DB>(scope, id)).await?;
        row.as_ref().map(user_gw_from_row).transpose()
    }

    async fn fetch_task(conn: &mut DB::Connection, task_id: TaskId) -> Result<Task> {
        let q = Sql::new(format!("{TASK_SELECT} WHERE id = $1")).arg(task_id);
        let row = DB::opt(conn, q).await?.ok_or_else(|| vanished("task"))?;
        task_from_row(&row)
    }

    // ---- writing helpers --------------------------------------------------

    /// Lock the scope's row in `scopes` (the row per-region quotas are
    /// counted under), creating it on the scope's first resource, and return
    /// the scope's connection count kept on it, exact while it is held.
    /// `NotFound(Account)` for an unknown account.
    async fn lock_scope(conn: &mut DB::Connection, scope: &Scope) -> Result<i64> {
        let select = || {
            Sql::new(format!(
                "SELECT conns FROM scopes WHERE account_id = $1 AND region = $2{}",
                lock::<DB>(FOR_UPDATE)
            ))
            .arg(scope.account_id)
            .arg(&scope.region)
        };
        if let Some(row) = DB::opt(&mut *conn, select()).await? {
            return row.int("conns");
        }
        // A concurrent first creator may insert it meanwhile; then this
        // inserts nothing and the select waits for its lock.
        let create = Sql::new(
            "INSERT INTO scopes (account_id, region) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .arg(scope.account_id)
        .arg(&scope.region);
        DB::execute(&mut *conn, create)
            .await
            .map_err(fk_means(StoreError::NotFound(Resource::Account)))?;
        DB::one(&mut *conn, select()).await?.int("conns")
    }

    /// Add one to the scope's connection count (the row is created on the
    /// scope's first resource) and return the count before: the row stays
    /// locked, so the count is exact until the transaction ends, and a
    /// refusal that rolls back takes the increment with it.
    async fn count_scope_conn(conn: &mut DB::Connection, scope: &Scope) -> Result<i64> {
        let bump = || {
            Sql::new(
                "UPDATE scopes SET conns = conns + 1 \
                 WHERE account_id = $1 AND region = $2 RETURNING conns",
            )
            .arg(scope.account_id)
            .arg(&scope.region)
        };
        if let Some(row) = DB::opt(&mut *conn, bump()).await? {
            return Ok(row.int("conns")? - 1);
        }
        Self::lock_scope(&mut *conn, scope).await?;
        Ok(DB::one(&mut *conn, bump()).await?.int("conns")? - 1)
    }

    /// Add `delta` (negative: rows deleted) to the scope's connection count,
    /// in the transaction that inserted or deleted the rows. The row exists
    /// once a connection was inserted in the scope: `lock_scope` ran first.
    async fn add_scope_conns(
        conn: &mut DB::Connection,
        account_id: AccountId,
        region: &str,
        delta: i64,
    ) -> Result<()> {
        let q =
            Sql::new("UPDATE scopes SET conns = conns + $3 WHERE account_id = $1 AND region = $2")
                .arg(account_id)
                .arg(region)
                .arg(delta);
        if DB::execute(conn, q).await? != 1 {
            return Err(StoreError::Backend(format!(
                "no connection count for account {account_id} in region {region}"
            )));
        }
        Ok(())
    }

    /// Run the `INSERT ... ON CONFLICT (un_id) DO NOTHING RETURNING id` that
    /// `make` builds for a fresh unified id, with another id while the random
    /// one is taken (the statement then inserts nothing and fails nothing).
    /// Other errors go through `on_err`.
    async fn insert_unified<K: IdKind>(
        conn: &mut DB::Connection,
        make: impl Fn(String) -> Result<Sql>,
        on_err: impl FnOnce(sqlx::Error) -> StoreError,
    ) -> Result<(RowId<K>, UnifiedId<K>)> {
        let (row, un_id) = Self::insert_unified_row(conn, make, on_err).await?;
        Ok((row.id("id")?, un_id))
    }

    /// [`Self::insert_unified`], answering the whole row the statement
    /// returned.
    async fn insert_unified_row<K: IdKind>(
        conn: &mut DB::Connection,
        make: impl Fn(String) -> Result<Sql>,
        on_err: impl FnOnce(sqlx::Error) -> StoreError,
    ) -> Result<(Record<DB>, UnifiedId<K>)> {
        let mut inserted = None;
        for _ in 0..ID_ATTEMPTS {
            let un_id = UnifiedId::<K>::random();
            match DB::opt(&mut *conn, make(un_id.as_str().to_owned())?).await {
                Ok(Some(row)) => {
                    inserted = Some((row, un_id));
                    break;
                }
                Ok(None) => continue,
                Err(e) => return Err(on_err(e)),
            }
        }
        inserted.ok_or_else(|| StoreError::Backend("no free unified id after several tries".into()))
    }

    /// A running task of `kind` for connection `conn_id`, whose unified id
    /// and gateways' unified ids are `un_ids`; its id.
    async fn insert_task(
        conn: &mut DB::Connection,
        scope: &Scope,
        kind: TaskKind,
        conn_id: VpnConnRowId,
        un_ids: [&str; 3],
        now: Timestamp,
    ) -> Result<TaskId> {
        let mut q = Sql::new(format!("INSERT INTO tasks ({NEW_TASK_COLUMNS}) VALUES ("));
        push_new_task(&mut q, scope, kind, Some(conn_id), un_ids, now);
        q.push(") RETURNING id");
        DB::one(conn, q).await?.id("id")
    }

    /// Whether a row of `table` in the scope has `col = value`. `table` and
    /// `col` are this module's constants.
    async fn taken_in_scope(
        conn: &mut DB::Connection,
        table: &str,
        col: &str,
        scope: &Scope,
        value: &str,
    ) -> Result<bool> {
        let q = Sql::new(format!(
            "SELECT 1 AS found FROM {table} WHERE account_id = $1 AND region = $2 AND {col} = $3"
        ))
        .arg(scope.account_id)
        .arg(&scope.region)
        .arg(value);
        Ok(DB::opt(conn, q).await?.is_some())
    }

    /// Rows of `table` in the scope. `table` is one of this module's
    /// constants.
    async fn count_in_scope(conn: &mut DB::Connection, table: &str, scope: &Scope) -> Result<i64> {
        let q = Sql::new(format!(
            "SELECT COUNT(*) AS n FROM {table} WHERE account_id = $1 AND region = $2"
        ))
        .arg(scope.account_id)
        .arg(&scope.region);
        DB::one(conn, q).await?.int("n")
    }

    /// The lowest host address of `net` held by no gateway of any account.
    /// Called under the address lock.
    async fn pick_pool_address(conn: &mut DB::Connection, net: IpNet) -> Result<IpAddr> {
        let (lo, hi) = pool_range(net)?;
        let row = DB::one(conn, Sql::new(POOL_LOWEST_FREE).arg(lo).arg(hi)).await?;
        pool_address(row.opt_int("free")?, (lo, hi))
    }

    /// The node's address used by the fewest of its gateways (ties: the
    /// lowest). Called under the address lock; the node row is held
    /// `FOR SHARE` so it cannot be removed meanwhile.
    async fn pick_node_address(
        conn: &mut DB::Connection,
        node_id: GatewayNodeId,
    ) -> Result<IpAddr> {
        let node = Sql::new(format!(
            "SELECT addresses FROM gateway_nodes WHERE id = $1{}",
            lock::<DB>(FOR_SHARE)
        ))
        .arg(node_id);
        let addresses = DB::opt(&mut *conn, node)
            .await?
            .ok_or(StoreError::NotFound(Resource::GatewayNode))?
            .text("addresses")?;
        let addresses = decode_addresses(&addresses)?;
        let usage = Sql::new(
            "SELECT address, COUNT(*) AS n FROM vpn_gws WHERE node_id = $1 GROUP BY address",
        )
        .arg(node_id);
        let mut used = HashMap::new();
        for row in DB::fetch(conn, usage).await? {
            let address = parse::<IpAddr>(&row.text("address")?, "gateway address")?;
            used.insert(address, row.int("n")?);
        }
        least_used_address(&addresses, &used).ok_or(StoreError::PoolExhausted)
    }
}

/// The parents an import has already found (and, where rows are locked,
/// locked `FOR SHARE`) in its scope, so each is looked up once however many
/// connections hang off it.
#[derive(Default)]
struct ImportParents {
    vpcs: HashSet<VpcRowId>,
    /// VPN gateway id -> its VPC.
    vpn_gws: HashMap<VpnGwRowId, VpcRowId>,
    user_gws: HashSet<UserGwRowId>,
}

impl ImportParents {
    async fn check<DB: Engine>(
        &mut self,
        conn: &mut DB::Connection,
        scope: &Scope,
        new: &NewConn,
    ) -> Result<()> {
        if !self.vpcs.contains(&new.vpc_id) {
            DB::opt(
                &mut *conn,
                shared_in_scope::<DB>("id", "vpcs", new.vpc_id, scope),
            )
            .await?
            .ok_or(StoreError::NotFound(Resource::Vpc))?;
            self.vpcs.insert(new.vpc_id);
        }
        if let Entry::Vacant(slot) = self.vpn_gws.entry(new.vpn_gw_id) {
            let gw = shared_in_scope::<DB>("vpc_id", "vpn_gws", new.vpn_gw_id, scope);
            let gw = DB::opt(&mut *conn, gw)
                .await?
                .ok_or(StoreError::NotFound(Resource::VpnGw))?;
            slot.insert(gw.id("vpc_id")?);
        }
        if self.vpn_gws.get(&new.vpn_gw_id) != Some(&new.vpc_id) {
            return Err(StoreError::NotFound(Resource::VpnGw));
        }
        if !self.user_gws.contains(&new.user_gw_id) {
            DB::opt(
                &mut *conn,
                shared_in_scope::<DB>("id", "user_gws", new.user_gw_id, scope),
            )
            .await?
            .ok_or(StoreError::NotFound(Resource::UserGw))?;
            self.user_gws.insert(new.user_gw_id);
        }
        Ok(())
    }
}
