//! The PostgreSQL engine, for several vpcd processes sharing one database.
//!
//! It runs the same SQL layer as the SQLite engine (and the same
//! conformance suite); what differs is how the rules hold when many
//! connections, from many processes, write at once. Transactions run at
//! READ COMMITTED and every rule that spans rows is enforced by PostgreSQL,
//! never in memory ([`Engine::ROW_LOCKS`]):
//!
//! - **Quotas**: the row a quota hangs off is locked with `SELECT ... FOR
//!   UPDATE` before counting: the VPC for gateways per VPC, and the
//!   per-(account, region) row in `scopes` for everything counted per region
//!   (VPCs, peer gateways, and connections, whose other quotas are all within
//!   that region too). A second creator waits for the first to commit and
//!   then counts its row. The per-region connection count is not counted but
//!   kept on that row (`conns`), read by the `FOR UPDATE` itself.
//! - **Unique names, addresses and ids**: unique indexes. A fresh unified id is
//!   inserted with `ON CONFLICT (un_id) DO NOTHING` and retried on the rare
//!   collision, so no statement has to fail inside a transaction.
//! - **Deletes against new dependants**: the parent row is locked `FOR UPDATE`
//!   before its dependants are looked for, and creators lock it `FOR SHARE`,
//!   so a gateway cannot be deleted under a connection being created on it.
//! - **One running task per connection**: the connection row is locked before
//!   its `active_task` is checked, the update that hands it to a task is
//!   conditional on it still being free, and a partial unique index backs it.
//! - **Task claims**: `FOR UPDATE SKIP LOCKED` picks the oldest runnable task
//!   of the next account (round robin) that no other worker is looking at,
//!   and the lease columns make a claim last beyond the transaction;
//!   `finish_tasks` only succeeds for the lease holder.
//! - **No group commit** (unlike SQLite): PostgreSQL already flushes the WAL
//!   once for the commits of concurrent connections, so each write keeps its
//!   own transaction on its own pooled connection, and row locks are held
//!   for one write, not for a batch.
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
//! - **Storage faults**: a lost server, a refused connection or a full disk
//!   fail the request at hand with
//!   [`StorageUnavailable`](crate::StoreError::StorageUnavailable) within
//!   [`ACQUIRE_TIMEOUT`]. Pooled connections are pinged before use, and one
//!   left inside a transaction is replaced ([`recovering`]), so requests
//!   succeed again as soon as the server is back.
//!
//! Names are stored with the "C" collation, so ordering is bytewise and
//! `ILIKE` folds ASCII letters only, as SQLite's `LIKE` does.

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use sqlx::error::DatabaseError;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions, PgQueryResult};
use sqlx::{ConnectOptions, Connection, Pool, Postgres};
use vpcd_types::ConnStatus;

use crate::model::*;
use crate::sql::EncodedConn;
use crate::sql::{recovering, Engine, Io, Link, Reads, RowsAffected, Sql, SqlStore};
use crate::MasterKey;
use crate::{Result, StoreError};

/// Connections per process. Several vpcd processes share the server's
/// `max_connections` (100 by default).
const POOL_SIZE: u32 = 10;
/// How long a request waits for a free pooled connection. While the server
/// is unreachable this is how long a request takes to be refused; and sqlx
/// retries a refused connect at most every fifth of it, so a server that
/// comes back is used within a second.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// The PostgreSQL implementation of [`Store`](crate::Store).
pub type PgStore = SqlStore<Postgres>;

impl SqlStore<Postgres> {
    /// Connect to `url` (`postgres://` or `postgresql://`), bring the
    /// schema up to date, and check `key` against the database's (sealing
    /// what an older vpcd stored in clear). Errors never repeat the URL (it
    /// may hold a password).
    pub async fn connect(url: &str, key: MasterKey) -> Result<PgStore> {
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
        let pool = recovering(PgPoolOptions::new(), Link::Remote)
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(opts)
            .await
            .map_err(unreachable)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?;
        let read = Reads::Pool(pool.clone());
        SqlStore::from_pools(pool.clone(), read, pool, key).await
    }
}

impl Engine for Postgres {
    const BEGIN_WRITE: &'static str = "BEGIN";
    const BEGIN_READ: &'static str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
    const ROW_LOCKS: bool = true;
    const WRITES_IN_WITH: bool = true;
    const LIKE: &'static str = "ILIKE";
    const NOT_INDEXED: &'static str = "";
    const PRUNE_NONCES: &'static [&'static str] = &["DELETE FROM nonces WHERE ctid IN \
         (SELECT ctid FROM nonces WHERE seen_at < $1 LIMIT $2)"];
    /// Every nonce is inserted up front, so every process finds it.
    const READ_NONCES: Option<&'static str> = None;
    /// The visibility map as well as the statistics (VACUUM): without it the
    /// counts and pages over the new rows cannot be index-only scans. Only
    /// the connections' table is loaded (no task rows are written). VACUUM
    /// cannot run in a transaction block, hence the simple-query protocol.
    const ANALYZE: &'static str = "VACUUM (ANALYZE) vpn_conns";
    /// Transaction-scoped advisory lock "vpcdaddr" (0x7670636461646472).
    const ADDRESS_LOCK: Option<&'static str> =
        Some("SELECT pg_advisory_xact_lock(8534430576648938610)");
    /// PostgreSQL keeps a replaced row's old version until VACUUM; see
    /// [`Engine::SCRUB`].
    const SECURE_DELETE: Option<(&'static str, &'static str)> = None;
    /// Rewrite both tables, so no dead row version keeps a replaced value.
    /// (Copies in the server's WAL archive or older backups are beyond
    /// vpcd's reach.) Runs once per clear-text upgrade or rotation.
    const SCRUB: &'static [&'static str] = &["VACUUM FULL api_keys", "VACUUM FULL vpn_conns"];
    /// No: PostgreSQL already shares one WAL flush among the commits of
    /// concurrent connections, and funnelling every write through one
    /// connection would serialize what row locks let run side by side (and
    /// hold each scope's lock for a whole batch).
    const GROUP_COMMIT: bool = false;
    const ONE_POOL: bool = true;

    /// The constraint (or unique index) named: they are `<table>_<column>`
    /// in the schema.
    fn unique_on(e: &dyn DatabaseError, col: &str) -> bool {
        e.constraint()
            .is_some_and(|c| c.ends_with(&format!("_{col}")))
    }

    /// The commit does not wait for its WAL flush (`synchronous_commit =
    /// off`, for this transaction only): see the module docs on nonces.
    /// The setting rides with `BEGIN` in one message, one round trip.
    async fn record_nonce(pool: &Pool<Postgres>, q: Sql) -> Result<u64> {
        let mut tx = pool
            .begin_with("BEGIN; SET LOCAL synchronous_commit = off")
            .await?;
        let n = Postgres::execute(&mut tx, q).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// One statement for the whole batch.
    fn insert_conns<'c>(
        conn: &'c mut PgConnection,
        scope: &'c Scope,
        now: Timestamp,
        rows: &'c [(String, &'c NewConn, EncodedConn)],
    ) -> impl Future<Output = Result<Vec<String>, sqlx::Error>> + Send + 'c {
        let column = |f: fn(&(String, &NewConn, EncodedConn)) -> String| -> Vec<String> {
            rows.iter().map(f).collect()
        };
        let ids: Vec<[i64; 3]> = rows
            .iter()
            .map(|(_, c, _)| [c.vpc_id.get(), c.vpn_gw_id.get(), c.user_gw_id.get()])
            .collect();
        let (un_ids, names, settings, tags) = (
            column(|r| r.0.clone()),
            column(|r| r.1.name.clone()),
            column(|r| r.2.settings.clone()),
            column(|r| r.2.tags.clone()),
        );
        async move {
            sqlx::query_scalar(
                "INSERT INTO vpn_conns (un_id, account_id, region, vpc_id, vpn_gw_id, \
                     user_gw_id, name, status, net_status, active_task, settings, tags, \
                     created_at) \
                 SELECT x.u, $1, $2, x.v, x.g, x.ug, x.n, $3, 'unavailable', NULL, x.s, x.t, $4 \
                 FROM UNNEST($5::text[], $6::bigint[], $7::bigint[], $8::bigint[], \
                             $9::text[], $10::text[], $11::text[]) AS x(u, v, g, ug, n, s, t) \
                 ON CONFLICT (un_id) DO NOTHING RETURNING un_id",
            )
            .bind(scope.account_id.get())
            .bind(&scope.region)
            .bind(ConnStatus::Running.code())
            .bind(now)
            .bind(un_ids)
            .bind(ids.iter().map(|i| i[0]).collect::<Vec<_>>())
            .bind(ids.iter().map(|i| i[1]).collect::<Vec<_>>())
            .bind(ids.iter().map(|i| i[2]).collect::<Vec<_>>())
            .bind(names)
            .bind(settings)
            .bind(tags)
            .fetch_all(conn)
            .await
        }
    }
}

/// SQLSTATE classes and codes that say the server cannot serve now rather
/// than that the statement is wrong: connection exceptions (08),
/// insufficient resources such as a full disk (53), a server shutting down
/// or starting (57P01-57P03), system and I/O errors (58), and a read-only
/// (standby) server (25006).
pub(crate) fn is_storage_fault(e: &sqlx::postgres::PgDatabaseError) -> bool {
    let code = e.code();
    ["08", "53", "58"]
        .iter()
        .any(|class| code.starts_with(class))
        || ["57P01", "57P02", "57P03", "25006"].contains(&code)
}

impl RowsAffected for PgQueryResult {
    fn rows_affected(&self) -> u64 {
        PgQueryResult::rows_affected(self)
    }
}
