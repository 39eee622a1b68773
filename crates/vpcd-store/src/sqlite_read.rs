//! Reads of an SQLite database file, run on the caller's thread.
//!
//! sqlx runs every SQLite statement on a thread of the connection's own and
//! hands the rows back over a channel: each read is a round trip between a
//! tokio worker and that thread. Measured on a 2-core machine
//! (`crates/vpcd-bench/benches/read_engine.rs`), that hop made a point read
//! cost 32-36 µs of CPU, against 3.1-3.3 µs for the same read through
//! rusqlite on the worker itself (7.5-7.9 µs on rusqlite threads of its own);
//! and it was 38% of DescribeVpnConn's profile. So reads of a database file
//! go through rusqlite here, while writes keep sqlx's single writer (the
//! group commit, `sql/writer.rs`).
//!
//! # Why a read may run on a tokio worker
//! A read of a page, a row by id or a count costs microseconds to a few
//! milliseconds of CPU, whichever thread runs it: running it where the
//! request already is costs no more than the hop it replaces. Two things
//! could make a read long, and neither runs inline:
//! - **Waiting on a lock.** A reader in WAL mode does not wait for writers,
//!   only, rarely, for another connection recovering the WAL index. Inline
//!   reads never wait ([`Connection::busy_timeout`] zero): one that finds
//!   the database busy is run again on tokio's blocking threads, which
//!   wait up to [`BUSY_TIMEOUT`] as the other connections do.
//! - **Reading everything.** Reads that walk a whole table (the desired
//!   state of a node, the account list, the metrics' counts) are marked
//!   [`Size::Bulk`] and go to the blocking threads as well.
//!
//! # Connections
//! Read-only connections, kept in a small idle list. An inline read holds
//! one for the length of the call and never across an `.await`, so the
//! connections in use are at most the threads running reads; beyond
//! [`KEEP`] a connection is opened for the read and closed after it. A
//! connection whose read failed is closed, not kept: nothing of a failed
//! read (an open transaction, a statement left running) reaches the next.
//!
//! A connection loads the planner's statistics when it opens and keeps
//! them: after an import refreshed them ([`Readers::renew`]), connections
//! opened before are closed as they come back, not kept.
//!
//! Statements are prepared once per connection and cached. Parameters are
//! numbered (`$1`, `$2`, ...) as in the rest of the SQL layer; SQLite sees
//! `$n` as a parameter named `$n`, numbered in order of first use, so each is
//! bound by its name rather than by its position.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::common::StoreRow;
use crate::sql::{Arg, Sql};
use crate::sqlite::{is_storage_code, BUSY_TIMEOUT};
use crate::{Result, StoreError};

/// Connections kept open between reads (the most threads that read at once
/// on a small machine: the tokio workers and a few blocking threads).
const KEEP: usize = 8;
/// Prepared statements cached per connection (the SQL layer's read
/// statements, of which the list queries come in a few shapes each).
const STATEMENTS: usize = 128;

/// How much a read may walk, which decides where it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Size {
    /// A row by key, a page, a count of one filter: on the caller's thread.
    Bounded,
    /// A whole table or a tenant's every row: on a blocking thread.
    Bulk,
}

/// The read-only connections of one database file.
pub(crate) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<(u64, Connection)>>,
    /// Bumped by [`Readers::renew`]; a connection opened in an older one is
    /// not kept.
    generation: AtomicU64,
    /// Connections open now, idle or reading.
    open: AtomicU32,
}

/// A result row: the statement's column names and this row's values.
pub(crate) struct Row {
    columns: Arc<[String]>,
    values: Vec<Value>,
}

impl Readers {
    /// The readers of the database file at `path`, which must exist (the
    /// writer created it and brought its schema up to date). One
    /// connection is opened now, so a file that cannot be read fails here.
    pub(crate) fn open(path: &Path) -> Result<Arc<Readers>> {
        let readers = Readers {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
            generation: AtomicU64::new(0),
            open: AtomicU32::new(0),
        };
        let (generation, first) = readers.connect()?;
        readers.give_back(generation, first);
        Ok(Arc::new(readers))
    }

    /// Run `qs` in order, from one snapshot of the database; the rows of
    /// each. A bounded read runs here unless the database is busy.
    pub(crate) async fn run(self: &Arc<Self>, qs: Vec<Sql>, size: Size) -> Result<Vec<Vec<Row>>> {
        if size == Size::Bounded {
            match self.run_here(&qs, Patience::None) {
                Err(Attempt::Busy) => {}
                Err(Attempt::Failed(e)) => return Err(e),
                Ok(rows) => return Ok(rows),
            }
        }
        let readers = Arc::clone(self);
        tokio::task::spawn_blocking(move || readers.run_here(&qs, Patience::Wait))
            .await
            .map_err(|_| StoreError::Backend("a database read panicked".into()))?
            .map_err(|attempt| match attempt {
                Attempt::Failed(e) => e,
                Attempt::Busy => StoreError::StorageUnavailable(
                    "the database stayed locked by another connection".into(),
                ),
            })
    }

    /// Have every read from now on use a connection opened from now on
    /// (which loads the statistics the planner has now).
    pub(crate) fn renew(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
        let stale = self
            .idle
            .lock()
            .map(|mut idle| std::mem::take(&mut *idle))
            .unwrap_or_default();
        self.open
            .fetch_sub(u32::try_from(stale.len()).unwrap_or(0), Ordering::Relaxed);
    }

    /// Connections open, and how many of them are idle.
    pub(crate) fn in_use(&self) -> (u32, u32) {
        let idle = self.idle.lock().map(|idle| idle.len()).unwrap_or(0);
        (
            self.open.load(Ordering::Relaxed),
            u32::try_from(idle).unwrap_or(u32::MAX),
        )
    }

    /// The most connections kept open between reads.
    pub(crate) fn kept(&self) -> u32 {
        KEEP as u32
    }

    fn run_here(&self, qs: &[Sql], patience: Patience) -> Result<Vec<Vec<Row>>, Attempt> {
        let (generation, conn) = match self.take() {
            Some(taken) => taken,
            None => self.connect().map_err(Attempt::Failed)?,
        };
        let wait = match patience {
            Patience::None => Duration::ZERO,
            Patience::Wait => BUSY_TIMEOUT,
        };
        let rows = conn
            .busy_timeout(wait)
            .and_then(|()| in_snapshot(&conn, qs));
        match rows {
            Ok(rows) => {
                self.give_back(generation, conn);
                Ok(rows)
            }
            Err(e) => {
                // Closed, not kept: see the module docs.
                drop(conn);
                self.open.fetch_sub(1, Ordering::Relaxed);
                Err(if is_busy(&e) {
                    Attempt::Busy
                } else {
                    Attempt::Failed(store_error(&e))
                })
            }
        }
    }

    fn connect(&self) -> Result<(u64, Connection)> {
        let generation = self.generation.load(Ordering::Relaxed);
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| store_error(&e))?;
        conn.set_prepared_statement_cache_capacity(STATEMENTS);
        self.open.fetch_add(1, Ordering::Relaxed);
        Ok((generation, conn))
    }

    fn take(&self) -> Option<(u64, Connection)> {
        self.idle.lock().ok()?.pop()
    }

    fn give_back(&self, generation: u64, conn: Connection) {
        if generation == self.generation.load(Ordering::Relaxed) {
            if let Ok(mut idle) = self.idle.lock() {
                if idle.len() < KEEP {
                    idle.push((generation, conn));
                    return;
                }
            }
        }
        drop(conn);
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How long a read may wait for a lock another connection holds.
#[derive(Clone, Copy)]
enum Patience {
    None,
    Wait,
}

/// Why a read did not answer.
enum Attempt {
    /// The database was locked and the read would have had to wait.
    Busy,
    Failed(StoreError),
}

/// `qs` on `conn`, in one read transaction when there are several.
fn in_snapshot(conn: &Connection, qs: &[Sql]) -> rusqlite::Result<Vec<Vec<Row>>> {
    if let [q] = qs {
        return Ok(vec![query(conn, q)?]);
    }
    conn.execute_batch("BEGIN")?;
    let rows = qs
        .iter()
        .map(|q| query(conn, q))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    conn.execute_batch("COMMIT")?;
    Ok(rows)
}

fn query(conn: &Connection, q: &Sql) -> rusqlite::Result<Vec<Row>> {
    let (text, args) = q.parts();
    let mut stmt = conn.prepare_cached(text)?;
    for i in 1..=stmt.parameter_count() {
        let arg = stmt
            .parameter_name(i)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| args.get(n.checked_sub(1)?))
            .ok_or(rusqlite::Error::InvalidParameterCount(i, args.len()))?;
        match arg {
            Arg::Int(v) => stmt.raw_bind_parameter(i, v)?,
            Arg::Text(v) => stmt.raw_bind_parameter(i, v)?,
            Arg::Bool(v) => stmt.raw_bind_parameter(i, v)?,
        }
    }
    let columns: Arc<[String]> = stmt.column_names().into_iter().map(str::to_owned).collect();
    let width = columns.len();
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let values = (0..width)
            .map(|i| row.get::<_, Value>(i))
            .collect::<rusqlite::Result<_>>()?;
        out.push(Row {
            columns: Arc::clone(&columns),
            values,
        });
    }
    Ok(out)
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(ErrorCode::DatabaseBusy))
}

/// A failed read as the store reports it: a storage fault (the file cannot
/// be read) or a backend error. rusqlite's messages hold no argument values.
fn store_error(e: &rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _) if is_storage_code(f.extended_code) => {
            StoreError::StorageUnavailable(e.to_string())
        }
        _ => StoreError::Backend(e.to_string()),
    }
}

impl Row {
    fn value(&self, col: &str) -> Result<&Value> {
        self.columns
            .iter()
            .position(|c| c == col)
            .map(|i| &self.values[i])
            .ok_or_else(|| StoreError::Backend(format!("no column {col} in the row")))
    }
}

fn wrong_type(col: &str, want: &str) -> StoreError {
    StoreError::Backend(format!("column {col} is not {want}"))
}

impl StoreRow for Row {
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        match self.value(col)? {
            Value::Null => Ok(None),
            Value::Integer(v) => Ok(Some(*v)),
            _ => Err(wrong_type(col, "an integer")),
        }
    }

    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        match self.value(col)? {
            Value::Null => Ok(None),
            Value::Text(v) => Ok(Some(v.clone())),
            _ => Err(wrong_type(col, "text")),
        }
    }

    /// SQLite keeps booleans as integers; any but 0 is true (as sqlx reads
    /// them).
    fn flag(&self, col: &str) -> Result<bool> {
        match self.value(col)? {
            Value::Integer(v) => Ok(*v != 0),
            _ => Err(wrong_type(col, "a boolean")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A WAL database file with one table `t (n)` holding 1, its writer,
    /// and its readers.
    fn fixture() -> (tempfile::TempDir, Connection, Arc<Readers>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (1);",
            )
            .unwrap();
        let readers = Readers::open(&path).unwrap();
        (dir, writer, readers)
    }

    fn count() -> Sql {
        Sql::new("SELECT COUNT(*) AS n FROM t")
    }

    async fn one(readers: &Arc<Readers>, q: Sql) -> Result<Row> {
        let mut rows = readers.run(vec![q], Size::Bounded).await?;
        Ok(rows.remove(0).remove(0))
    }

    #[tokio::test]
    async fn parameters_are_bound_by_their_number_not_their_place() {
        let (_dir, _writer, readers) = fixture();
        let q = Sql::new("SELECT $2 AS b, $1 AS a, $2 AS again, $3 AS none, $4 AS yes")
            .arg("x")
            .arg(7)
            .arg(Option::<i64>::None)
            .arg(true);
        let row = one(&readers, q).await.unwrap();
        assert_eq!(row.int("b").unwrap(), 7);
        assert_eq!(row.text("a").unwrap(), "x");
        assert_eq!(row.int("again").unwrap(), 7);
        assert_eq!(row.opt_int("none").unwrap(), None);
        assert!(row.flag("yes").unwrap());
        // A column asked for as the wrong type, or not there, is an error.
        assert!(row.int("a").is_err());
        assert!(row.text("missing").is_err());
    }

    #[tokio::test]
    async fn a_statement_without_its_argument_fails_cleanly() {
        let (_dir, _writer, readers) = fixture();
        let q = Sql::new("SELECT $1 AS a, $2 AS b").arg(1);
        assert!(matches!(
            one(&readers, q).await,
            Err(StoreError::Backend(_))
        ));
    }

    /// A read that failed inside its snapshot leaves nothing open: the next
    /// read sees what was written since.
    #[tokio::test]
    async fn a_failed_read_leaves_no_snapshot_behind() {
        let (_dir, writer, readers) = fixture();
        let broken = Sql::new("SELECT n FROM no_such_table");
        assert!(readers
            .run(vec![count(), broken], Size::Bounded)
            .await
            .is_err());
        writer.execute_batch("INSERT INTO t VALUES (2)").unwrap();
        assert_eq!(one(&readers, count()).await.unwrap().int("n").unwrap(), 2);
        let (open, idle) = readers.in_use();
        assert_eq!((open, idle), (1, 1));
    }

    /// Several statements come from one snapshot.
    #[tokio::test]
    async fn statements_of_one_read_share_a_snapshot() {
        let (_dir, _writer, readers) = fixture();
        let rows = readers
            .run(
                vec![count(), Sql::new("SELECT n FROM t ORDER BY n")],
                Size::Bulk,
            )
            .await
            .unwrap();
        assert_eq!(rows[0][0].int("n").unwrap(), 1);
        assert_eq!(rows[1].len(), 1);
    }

    /// How often the statement `text` was prepared again on `conn` after
    /// reading by a key with two different values.
    fn reprepared(conn: &Connection, text: &str) -> i32 {
        for key in ["k-1", "k-2", "k-3"] {
            query(conn, &Sql::new(text).arg(key)).unwrap();
        }
        conn.prepare_cached(text)
            .unwrap()
            .get_status(rusqlite::StatementStatus::RePrepare)
    }

    /// The statistics an import leaves (the engine's `ANALYZE`) do not make
    /// a read by key prepare its statement again for each key: with STAT4
    /// samples left in place, it would.
    #[test]
    fn statistics_after_an_import_keep_reads_prepared() {
        use crate::sql::Engine as _;
        let by_key = "SELECT n FROM k WHERE key = $1";
        for (analyze, expect_reprepares) in [("ANALYZE", true), (sqlx::Sqlite::ANALYZE, false)] {
            let dir = tempfile::tempdir().unwrap();
            let conn = Connection::open(dir.path().join("s.db")).unwrap();
            conn.execute_batch(
                "CREATE TABLE k (n INTEGER PRIMARY KEY, key TEXT NOT NULL); \
                 CREATE INDEX k_key ON k (key);",
            )
            .unwrap();
            for n in 0..500 {
                conn.execute("INSERT INTO k (key) VALUES (?1)", [format!("k-{}", n % 50)])
                    .unwrap();
            }
            conn.execute_batch(analyze).unwrap();
            let fresh = Connection::open(dir.path().join("s.db")).unwrap();
            assert_eq!(
                reprepared(&fresh, by_key) > 0,
                expect_reprepares,
                "after {analyze}"
            );
        }
    }

    /// After `renew`, no connection opened before it serves a read (each
    /// loaded the statistics of its time).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn renewed_readers_close_the_connections_opened_before() {
        let (_dir, _writer, readers) = fixture();
        let (generation, old) = readers.take().unwrap();
        readers.renew();
        assert_eq!(readers.in_use(), (1, 0));
        // A read in flight during the renewal gives back an old connection.
        readers.give_back(generation, old);
        assert_eq!(readers.in_use(), (0, 0));
        one(&readers, count()).await.unwrap();
        assert_eq!(readers.in_use(), (1, 1));
        let (g, _conn) = readers.take().unwrap();
        assert_eq!(g, generation + 1);
    }

    /// An inline read never waits for a lock; one that finds the database
    /// locked is run again where waiting is harmless, and answers once the
    /// lock is gone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_locked_database_is_waited_for_off_the_worker() {
        let (dir, writer, readers) = fixture();
        drop(writer);
        // In exclusive locking mode, a WAL writer keeps every reader out
        // until it closes.
        let holder = Connection::open(dir.path().join("r.db")).unwrap();
        holder
            .execute_batch(
                "PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; INSERT INTO t VALUES (2); COMMIT;",
            )
            .unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(holder);
        });
        let n = one(&readers, count()).await.unwrap().int("n").unwrap();
        assert_eq!(n, 2);
        release.join().unwrap();
    }
}
