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
//! So the shared SQL layer's row locks are left out here
//! ([`Engine::ROW_LOCKS`] is false).
//!
//! Concurrent writes share that transaction and its fsync: the
//! group-commit writer (`sql/writer.rs`) runs every write queued at the time
//! in one `BEGIN IMMEDIATE` transaction, each in its own savepoint, commits
//! once and only then answers every caller; a failed commit fails the
//! callers of that batch only.
//!
//! Reads use read-only connections through rusqlite, called on the
//! caller's thread, not sqlx (`sqlite_read.rs` says why and when a read runs
//! elsewhere). A list runs its `COUNT(*)` and its page inside one read
//! transaction, so both come from the same snapshot.
//!
//! **Nonces** live in a second database file next to the main one
//! (`<db>-nonces`, e.g. `vpcd.db-nonces`), with its own single-connection
//! write pool, in WAL mode with `synchronous=NORMAL`. Every signed request
//! records its Nonce, so keeping that write off the main file means a read
//! no longer waits behind a durable write on the main writer, and the main
//! file's readers keep their page caches (SQLite drops a connection's cache
//! whenever another connection wrote to the file). The trade-off: with
//! `synchronous=NORMAL` a WAL commit is not fsynced. A crash of vpcd (even
//! `kill -9`) loses nothing, since the commit is in the WAL file in the OS's
//! cache; only an OS crash or a power loss can forget the last nonces, which
//! re-opens replay for those requests within their Timestamp window only
//! (older ones are refused on the Timestamp alone). Everything else stays
//! `synchronous=FULL`. The main file's own `nonces` table (migration 0001)
//! is no longer used by a file-backed store; the in-memory store keeps
//! using it (and its own `read_nonces`).
//!
//! The nonce file has two tables:
//!
//! - `nonces`, keyed by (secret id, nonce), takes the nonces checked on the
//!   request path ([`Store::remember_nonce`](crate::Store::remember_nonce):
//!   a change's, before the change runs). This replay protection is shared
//!   by every process that opens the same database: they all open the same
//!   nonce file, and the single `INSERT ... ON CONFLICT` statement is atomic
//!   under SQLite's write lock.
//! - `read_nonces` takes the nonces vpcd accepted on its in-memory check
//!   and writes behind ([`Store::record_nonces`](crate::Store::record_nonces):
//!   reads'), appended in the order they were seen, with no key and only an
//!   index on `seen_at`: a batch fills the last pages of the table and of
//!   that index, where a key would put each nonce on a page of its own (a
//!   page written per nonce, with millions of nonces in a window). Nothing
//!   looks a nonce up there; a change's nonce is not checked against it,
//!   and needs not be, as the signature covers the action (a signed read
//!   cannot be replayed as a change). A restarted process loads both tables
//!   ([`Store::recent_nonces`](crate::Store::recent_nonces)); when there are
//!   more than it can hold, it checks the rest on the request path, so the
//!   window's read nonces it may not hold are first copied into `nonces`
//!   (one statement, in key order; some 10 s per million on a busy 2-core
//!   machine) before it serves.
//!
//! A nonce file of an older vpcd, which kept every nonce in `nonces`, gets
//! `read_nonces` when opened; what it held is loaded and pruned as before.
//!
//! **Storage faults.** A full disk, a read-only file or an I/O error fails
//! the statement or commit at hand with
//! [`StorageUnavailable`](crate::StoreError::StorageUnavailable); SQLite
//! rolls the transaction back, and the writer connection is replaced if sqlx
//! still counts it as inside one ([`recovering`]), so writes resume as soon
//! as there is room again. Both WAL files are truncated back to a bounded
//! size after each checkpoint (`journal_size_limit`), and both nonce tables
//! are pruned to about one replay window, so neither file grows without bound; in a
//! steady state the nonce file reuses its free pages and needs no new disk
//! space at all.
//!
//! The unique indexes in `migrations/sqlite/` repeat the rules the store
//! checks (names, addresses, unified ids, one running task per connection)
//! so the database refuses what a bug might let through.

use std::path::Path;
use std::time::Duration;

use sqlx::error::DatabaseError;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteQueryResult, SqliteSynchronous,
};
use sqlx::{Pool, Sqlite};
use vpcd_types::ConnStatus;

use crate::model::*;
use crate::sql::text::conn_insert;
use crate::sql::EncodedConn;
use crate::sql::{recovering, Engine, Io, Link, Reads, RowsAffected, Sql, SqlStore};
use crate::sqlite_read::Readers;
use crate::MasterKey;
use crate::{Result, StoreError};

/// How long a statement waits for another process's write lock.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// What the main file's WAL is cut back to after a checkpoint (it may grow
/// beyond it while readers hold a checkpoint back, or during an import).
const WAL_LIMIT_BYTES: &str = "67108864";
/// The same for the nonce file: its writes are small and constant.
const NONCE_WAL_LIMIT_BYTES: &str = "4194304";

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// The SQLite implementation of [`Store`](crate::Store).
pub type SqliteStore = SqlStore<Sqlite>;

impl SqlStore<Sqlite> {
    /// Open (creating it if missing) the database file, bring its schema
    /// up to date, and check `key` against the database's (sealing what an
    /// older vpcd stored in clear).
    pub async fn open(path: &Path, key: MasterKey) -> Result<SqliteStore> {
        let write = recovering(SqlitePoolOptions::new(), Link::Local)
            .max_connections(1)
            .min_connections(1)
            .connect_with(
                SqliteConnectOptions::new()
                    .filename(path)
                    .foreign_keys(true)
                    .busy_timeout(BUSY_TIMEOUT)
                    .synchronous(SqliteSynchronous::Full)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .pragma("journal_size_limit", WAL_LIMIT_BYTES),
            )
            .await?;
        migrate(&write).await?;
        let read = Reads::Direct(Readers::open(path)?);
        let nonces = open_nonces(&nonce_path(path)).await?;
        SqlStore::from_pools(write, read, nonces, key).await
    }

    /// A private in-memory database, for tests. It has a single connection
    /// that serves reads and writes alike (an in-memory database cannot be
    /// shared between connections without SQLite's shared-cache mode).
    /// Its secrets are sealed under a fresh key that dies with it.
    pub async fn in_memory() -> Result<SqliteStore> {
        let opts = SqliteConnectOptions::new()
            .in_memory(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = recovering(SqlitePoolOptions::new(), Link::Local)
            .max_connections(1)
            .min_connections(1)
            // Dropping the only connection would drop the database.
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(opts)
            .await?;
        migrate(&pool).await?;
        nonce_tables(&pool).await?;
        let read = Reads::Pool(pool.clone());
        SqlStore::from_pools(pool.clone(), read, pool, MasterKey::generate()).await
    }
}

async fn migrate(pool: &SqlitePool) -> Result<()> {
    MIGRATOR
        .run(pool)
        .await
        .map_err(|e| StoreError::Backend(format!("migration failed: {e}")))
}

impl Engine for Sqlite {
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const BEGIN_READ: &'static str = "BEGIN";
    const ROW_LOCKS: bool = false;
    const LIKE: &'static str = "LIKE";
    const NOT_INDEXED: &'static str = "+";
    /// Both tables, oldest first through their `seen_at` indexes: in
    /// `read_nonces` that is the front of the table and of its index.
    const PRUNE_NONCES: &'static [&'static str] = &[
        "DELETE FROM nonces WHERE rowid IN \
         (SELECT rowid FROM nonces WHERE seen_at < $1 LIMIT $2)",
        "DELETE FROM read_nonces WHERE rowid IN \
         (SELECT rowid FROM read_nonces WHERE seen_at < $1 ORDER BY seen_at LIMIT $2)",
    ];
    const READ_NONCES: Option<&'static str> = Some("read_nonces");
    /// Fills `sqlite_stat1`, which the planner reads from then on. The
    /// samples of `sqlite_stat4` (this SQLite is built with STAT4) are
    /// dropped: with them, a statement whose plan read a sample for a bound
    /// value is prepared again each time the value changes, which made a
    /// read by unified id parse and plan its SQL on every request after an
    /// import. The plans need no samples (`tests::queries_use_indexes`).
    const ANALYZE: &'static str = "ANALYZE; DELETE FROM sqlite_stat4; ANALYZE sqlite_schema";
    /// The single writer already serializes address choices.
    const ADDRESS_LOCK: Option<&'static str> = None;
    /// Freed cells and pages are overwritten with zeros.
    const SECURE_DELETE: Option<(&'static str, &'static str)> =
        Some(("PRAGMA secure_delete = ON", "PRAGMA secure_delete = OFF"));
    /// The WAL still holds the pages as they were before: checkpoint it
    /// into the database file and cut it to nothing.
    const SCRUB: &'static [&'static str] = &["PRAGMA wal_checkpoint(TRUNCATE)"];
    /// Every commit waits for an fsync: sharing it is what pays most.
    const GROUP_COMMIT: bool = true;
    const ONE_POOL: bool = false;

    /// SQLite names the key's columns: `UNIQUE constraint failed:
    /// vpn_conns.account_id, vpn_conns.region, vpn_conns.vpc_id,
    /// vpn_conns.name`.
    fn unique_on(e: &dyn DatabaseError, col: &str) -> bool {
        e.message().ends_with(&format!(".{col}"))
    }

    /// One statement on the nonce file's own connection (see the module
    /// docs).
    async fn record_nonce(pool: &Pool<Sqlite>, q: Sql) -> Result<u64> {
        let mut conn = pool.acquire().await?;
        Ok(Sqlite::execute(&mut conn, q).await?)
    }

    /// Row by row: under the single writer, in one transaction, a prepared
    /// insert per row is as fast as SQLite inserts get.
    async fn insert_conns(
        conn: &mut SqliteConnection,
        scope: &Scope,
        now: Timestamp,
        rows: &[(String, &NewConn, EncodedConn)],
    ) -> Result<Vec<String>, sqlx::Error> {
        let mut written = Vec::with_capacity(rows.len());
        for (un_id, new, settings) in rows {
            let q = conn_insert(un_id, scope, new, ConnStatus::Running, settings, now);
            if Sqlite::execute(&mut *conn, q).await? == 1 {
                written.push(un_id.clone());
            }
        }
        Ok(written)
    }
}

/// A full disk, a read-only file or directory, an I/O error, or a file that
/// cannot be opened: the storage, not the statement.
pub(crate) fn is_storage_fault(e: &sqlx::sqlite::SqliteError) -> bool {
    e.code()
        .and_then(|c| c.parse::<i32>().ok())
        .is_some_and(is_storage_code)
}

/// Whether SQLite's (extended) result `code` is a storage fault (see
/// [`is_storage_fault`]).
pub(crate) fn is_storage_code(code: i32) -> bool {
    // The low byte of an extended result code is the primary one.
    const FULL: i32 = 13;
    const IOERR: i32 = 10;
    const READONLY: i32 = 8;
    const CANTOPEN: i32 = 14;
    matches!(code & 0xff, FULL | IOERR | READONLY | CANTOPEN)
}

impl RowsAffected for SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        SqliteQueryResult::rows_affected(self)
    }
}

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
        .pragma("journal_size_limit", NONCE_WAL_LIMIT_BYTES)
        .synchronous(SqliteSynchronous::Normal);
    let pool = recovering(SqlitePoolOptions::new(), Link::Local)
        .max_connections(1)
        .min_connections(1)
        .connect_with(opts)
        .await?;
    nonce_tables(&pool).await?;
    Ok(pool)
}

/// Create the nonce tables where missing (a file of an older vpcd has only
/// `nonces`). `nonces` is migration 0001's table; `read_nonces` takes the
/// reads' nonces written behind, appended in the order they were seen:
/// no key, so a row lands on the table's last page and its `seen_at`
/// index entry on that index's last page, where `nonces`'s primary key
/// would put each on a page of its own. They never change shape, so they
/// are created here rather than through a second migrator.
async fn nonce_tables(pool: &SqlitePool) -> Result<()> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS nonces (\
             secret_id TEXT NOT NULL, \
             nonce     TEXT NOT NULL, \
             seen_at   INTEGER NOT NULL, \
             PRIMARY KEY (secret_id, nonce)); \
         CREATE INDEX IF NOT EXISTS nonces_by_seen_at ON nonces (seen_at); \
         CREATE TABLE IF NOT EXISTS read_nonces (\
             secret_id TEXT NOT NULL, \
             nonce     TEXT NOT NULL, \
             seen_at   INTEGER NOT NULL); \
         CREATE INDEX IF NOT EXISTS read_nonces_by_seen_at ON read_nonces (seen_at)",
    )
    .execute(pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use vpcd_types::{AccountId, GatewayNodeId, IdRef};

    use super::*;
    use crate::common::StoreRow;
    use crate::sql::text::*;
    use crate::Store;

    /// The lines of `q`'s query plan.
    async fn plan(conn: &mut SqliteConnection, q: Sql) -> Vec<String> {
        let rows = Sqlite::fetch(conn, q.prefixed("EXPLAIN QUERY PLAN "))
            .await
            .unwrap();
        rows.iter().map(|r| r.text("detail").unwrap()).collect()
    }

    /// Reads that serve pages must never walk a whole table, and must not
    /// depend on statistics: the plans an empty database gets (no ANALYZE
    /// has run yet) must already be right, since a database grows from
    /// empty and ANALYZE only runs after a bulk import.
    #[tokio::test]
    async fn queries_use_indexes() {
        let store = SqliteStore::in_memory().await.unwrap();
        // The in-memory store reads through its one sqlx connection.
        let mut conn = store.write.acquire().await.unwrap();
        let scope = Scope {
            account_id: AccountId::new(1),
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
        let mut plans = Vec::new();
        for f in &conn_filters {
            for p in &pages {
                plans.push((
                    format!("conns {f:?} {p:?}"),
                    plan(&mut conn, conn_page_query::<Sqlite>(&scope, f, p)).await,
                ));
            }
            let count = conn_query::<Sqlite>("SELECT COUNT(*) FROM vpn_conns c", &scope, f);
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
                let mut qb = vpn_gw_query::<Sqlite>(VPN_GW_SELECT, &scope, f);
                push_page(&mut qb, p, "g");
                plans.push((format!("vpn gws {f:?} {p:?}"), plan(&mut conn, qb).await));
            }
        }
        for p in &pages {
            let mut qb = vpc_query::<Sqlite>(VPC_SELECT, &scope, &VpcFilter::default());
            push_page(&mut qb, p, "v");
            plans.push((format!("vpcs {p:?}"), plan(&mut conn, qb).await));
            let mut qb = user_gw_query::<Sqlite>(USER_GW_SELECT, &scope, &UserGwFilter::default());
            push_page(&mut qb, p, "u");
            plans.push((format!("user gws {p:?}"), plan(&mut conn, qb).await));
        }
        let (n7, n8) = (Some(GatewayNodeId::new(7)), Some(GatewayNodeId::new(8)));
        for node in [n7, None] {
            plans.push((
                format!("desired {node:?}"),
                plan(&mut conn, desired_query::<Sqlite>(node)).await,
            ));
        }
        for nodes in [vec![n7, None], vec![n7, n8], vec![None]] {
            plans.push((
                format!("claim on {nodes:?}"),
                plan(&mut conn, claim_batch_query("w", 0, 30, &nodes, 7, 16)).await,
            ));
        }
        plans.push((
            "pool".into(),
            plan(&mut conn, Sql::new(POOL_LOWEST_FREE)).await,
        ));

        // A page by gateway (or VPC): the count and the page's ids come from
        // the parent's covering index alone, never from the table, and the
        // creation-time order is the index's (no sort).
        for (kind, f) in [("vpn_gw", &conn_filters[3]), ("vpc", &conn_filters[2])] {
            let index = format!("USING COVERING INDEX vpn_conns_by_{kind}_page");
            let count = conn_query::<Sqlite>("SELECT COUNT(*) FROM vpn_conns c", &scope, f);
            let lines = plan(&mut conn, count).await;
            assert!(
                lines.len() == 1 && lines[0].contains(&index),
                "count by {kind}: {lines:#?}"
            );
            for p in pages.iter().filter(|p| p.order == Order::CreateTime) {
                let lines = plan(&mut conn, conn_page_query::<Sqlite>(&scope, f, p)).await;
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
                    || line == "SCAN t USING INDEX tasks_running"
                    || line == "SCAN t USING INDEX tasks_running_by_account"
                    // A claim numbers the runnable tasks' turns (those
                    // rows only) in subqueries, then sorts by turn.
                    || (what.starts_with("claim")
                        && (line == "SCAN r" || line.starts_with("SCAN (subquery-")));
                assert!(scan_ok, "{what}: full scan `{line}` in {lines:#?}");
            }
        }
    }

    /// A store on `v.db` in a fresh directory.
    async fn file_store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("v.db"), MasterKey::generate())
            .await
            .unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn file_store_is_durable_and_strict() {
        let (dir, store) = file_store().await;
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
        // Readers cannot write by mistake.
        let write = Sql::new("INSERT INTO accounts (name, created_at) VALUES ('x', 0)");
        assert!(matches!(store.read, crate::sql::Reads::Direct(_)));
        assert!(store
            .read_rows(write, crate::sqlite_read::Size::Bounded)
            .await
            .is_err());
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
        // Both WALs are cut back after a checkpoint, so neither fills the
        // disk.
        let limit = "PRAGMA journal_size_limit";
        assert_eq!(
            num(limit).fetch_one(&mut *n).await.unwrap().to_string(),
            NONCE_WAL_LIMIT_BYTES
        );
        assert_eq!(
            num(limit).fetch_one(&mut *w).await.unwrap().to_string(),
            WAL_LIMIT_BYTES
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

    /// Reads' nonces are appended to `read_nonces`, not inserted under
    /// `nonces`' key, and pruning empties both tables of what left the
    /// window, oldest first through their `seen_at` indexes.
    #[tokio::test]
    async fn read_nonces_are_appended_and_pruned() {
        let (_dir, store) = file_store().await;
        let t0 = 1_700_000_000;
        let batch: Vec<(String, String)> =
            (0..700).map(|n| ("AKIDa".into(), n.to_string())).collect();
        store.record_nonces(&batch, t0, t0 - 600).await.unwrap();
        assert!(store
            .remember_nonce("AKIDa", "w", t0, t0 - 600)
            .await
            .unwrap());
        let counts = || async {
            let mut n = store.nonces.acquire().await.unwrap();
            let mut counts = [0; 2];
            for (count, table) in counts.iter_mut().zip(["nonces", "read_nonces"]) {
                *count = sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {table}"))
                    .fetch_one(&mut *n)
                    .await
                    .unwrap();
            }
            counts
        };
        assert_eq!(counts().await, [1, 700]);
        let mut n = store.nonces.acquire().await.unwrap();
        for prune in Sqlite::PRUNE_NONCES {
            let lines = plan(&mut n, Sql::new(*prune).arg(t0).arg(10)).await;
            assert!(
                lines.iter().any(|l| l.contains("_by_seen_at (seen_at<?)")),
                "{prune}: {lines:#?}"
            );
        }
        drop(n);
        let later = t0 + 10_000;
        store
            .record_nonces(&batch[..2], later, later - 600)
            .await
            .unwrap();
        assert_eq!(counts().await, [0, 2]);
    }

    /// A nonce file of an older vpcd (`nonces` only, every nonce in it)
    /// gets the new table and keeps serving what it holds.
    #[tokio::test]
    async fn older_nonce_files_are_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.db");
        let t0 = 1_700_000_000;
        {
            let old = SqlitePool::connect_with(
                SqliteConnectOptions::new()
                    .filename(nonce_path(&path))
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal),
            )
            .await
            .unwrap();
            sqlx::raw_sql(
                "CREATE TABLE nonces (secret_id TEXT NOT NULL, nonce TEXT NOT NULL, \
                     seen_at INTEGER NOT NULL, PRIMARY KEY (secret_id, nonce)); \
                 CREATE INDEX nonces_by_seen_at ON nonces (seen_at); \
                 INSERT INTO nonces VALUES ('AKIDa', 'read', 1700000000)",
            )
            .execute(&old)
            .await
            .unwrap();
            old.close().await;
        }
        let store = SqliteStore::open(&path, MasterKey::generate())
            .await
            .unwrap();
        let recent = store.recent_nonces(t0 - 600, 10).await.unwrap();
        assert_eq!(recent, [("AKIDa".to_owned(), "read".to_owned(), t0)]);
        assert!(!store
            .remember_nonce("AKIDa", "read", t0, t0 - 600)
            .await
            .unwrap());
        let batch = [("AKIDa".to_owned(), "new".to_owned())];
        store.record_nonces(&batch, t0 + 1, t0 - 600).await.unwrap();
        assert_eq!(store.recent_nonces(t0 - 600, 10).await.unwrap().len(), 2);
    }

    /// `cargo test -p vpcd-store --lib -- --ignored --nocapture page_at_100k`
    /// prints how long every kind of page takes with 100,000 connections in
    /// one tenant (the worst case: tenancy narrows nothing).
    #[tokio::test]
    #[ignore = "benchmark; takes a few seconds"]
    async fn page_at_100k_connections() {
        use std::time::Instant;
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("b.db"), MasterKey::generate())
            .await
            .unwrap();
        let a = s.create_account("a").await.unwrap();
        let scope = Scope {
            account_id: a.id,
            region: "gz".into(),
        };
        let settings = serde_json::to_string(&sample_settings()).unwrap();
        let mut tx = s.write.begin_with(Sqlite::BEGIN_WRITE).await.unwrap();
        for v in 1..=500i64 {
            sqlx::query(
                "INSERT INTO vpcs (id, un_id, account_id, region, name, cidr, created_at) \
                 VALUES (?1, printf('vpc-%08d', ?1), ?2, 'gz', 'v' || ?1, '10.0.0.0/16', 0)",
            )
            .bind(v)
            .bind(a.id.get())
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
            .bind(a.id.get())
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
            .bind(a.id.get())
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
            .bind(a.id.get())
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

    /// `cargo test -p vpcd-store --release --lib -- --ignored --nocapture
    /// group_commit` prints AddVpnConnEx's store write (`create_conn`) from
    /// 16 concurrent callers on a file database, with the group-commit
    /// writer and without it (one transaction and fsync per call, as
    /// before), alternating.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "benchmark; takes a few seconds"]
    async fn group_commit_throughput() {
        use std::time::Instant;
        const CLIENTS: usize = 16;
        const PER_CLIENT: usize = 150;
        for round in 0..3 {
            for grouped in [false, true] {
                let dir = tempfile::tempdir().unwrap();
                let mut s =
                    SqliteStore::open(&dir.path().join("b.db"), crate::testing::master_key())
                        .await
                        .unwrap();
                if !grouped {
                    s.writer = None;
                }
                let s = std::sync::Arc::new(s);
                let a = s.create_account("a").await.unwrap();
                let scope = Scope {
                    account_id: a.id,
                    region: "gz".into(),
                };
                let limits = Limits {
                    conns_per_vpn_gw: u32::MAX,
                    conns_per_region: u32::MAX,
                    conns_per_pair: u32::MAX,
                    conns_per_user_gw: u32::MAX,
                    ..Limits::default()
                };
                let vpc = s
                    .create_vpc(
                        &scope,
                        NewVpc {
                            name: "v".into(),
                            cidr: "10.0.0.0/16".parse().unwrap(),
                        },
                        &limits,
                    )
                    .await
                    .unwrap();
                let gw = NewVpnGw {
                    vpc_id: vpc.id,
                    name: "g".into(),
                    bandwidth: 10,
                    charge_type: "POSTPAID_BY_HOUR".into(),
                    charge_period: None,
                    address: AddressSource::Pool("203.0.113.0/24".parse().unwrap()),
                };
                let gw = s.create_vpn_gw(&scope, gw, &limits).await.unwrap();
                let ugw = NewUserGw {
                    name: "u".into(),
                    address: "198.51.100.1".parse().unwrap(),
                };
                let ugw = s.create_user_gw(&scope, ugw, &limits).await.unwrap();
                let started = Instant::now();
                let mut clients = Vec::new();
                for c in 0..CLIENTS {
                    let (s, scope, limits) = (s.clone(), scope.clone(), limits.clone());
                    let (vpc, gw, ugw) = (vpc.id, gw.id, ugw.id);
                    clients.push(tokio::spawn(async move {
                        let mut took = Vec::with_capacity(PER_CLIENT);
                        for i in 0..PER_CLIENT {
                            let new = NewConn {
                                vpc_id: vpc,
                                vpn_gw_id: gw,
                                user_gw_id: ugw,
                                name: format!("c{c}-{i}"),
                                settings: sample_settings(),
                                tags: Vec::new(),
                            };
                            let t = Instant::now();
                            s.create_conn(&scope, new, &limits).await.unwrap();
                            took.push(t.elapsed());
                        }
                        took
                    }));
                }
                let mut took = Vec::new();
                for c in clients {
                    took.extend(c.await.unwrap());
                }
                let elapsed = started.elapsed();
                took.sort();
                let p = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)];
                println!(
                    "round {round} group commit {grouped:<5}: {:>6.0} creates/s, p50 {:?}, p99 {:?}",
                    took.len() as f64 / elapsed.as_secs_f64(),
                    p(0.5),
                    p(0.99)
                );
            }
        }
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
                version: IkeVersion::V1,
            },
            ipsec: IpsecSettings {
                encryption: IpsecEncryption::AesCbc128,
                integrity: AuthAlgorithm::Sha,
                sa_lifetime_seconds: 3_600,
                sa_lifetime_traffic_kb: 1_843_200,
                pfs: PfsGroup::Null,
            },
            dpd: DpdSettings::default(),
            negotiation: NegotiationType::Active,
            health_check: None,
        }
    }
}
