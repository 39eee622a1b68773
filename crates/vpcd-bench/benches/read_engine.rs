//! What one point read costs on each way of reaching SQLite from tokio
//! (issue 12: "reads on an engine path without a thread hop per query;
//! measure the options"). Not a criterion benchmark: the question is the
//! throughput and the CPU per read of 16 concurrent readers on a 2-worker
//! runtime, as vpcd's DescribeVpnConn by id runs them.
//!
//! The same file (WAL, 1,000 rows of ~600 bytes, read by primary key) is
//! read through:
//! - `sqlx-pool`: sqlx's SQLite pool of 4 read-only connections, as vpcd's
//!   read pool is set up (no ping when a connection is taken). Every
//!   statement is a round trip to the connection's own thread.
//! - `rusqlite-threads`: 4 threads, each with its own rusqlite connection,
//!   fed through one channel; one round trip per read.
//! - `rusqlite-inline`: a rusqlite connection per tokio worker thread,
//!   called synchronously on that thread; no hop at all (the read blocks
//!   the worker for its duration, which a point read by key keeps short).
//!
//! `cargo bench -p vpcd-bench --bench read_engine` (each path 5 s, in
//! turn, twice). Both crates link the same bundled SQLite
//! (libsqlite3-sys).

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::Row;
use tokio::sync::oneshot;
use vpcd_bench::procfs;

const ROWS: i64 = 1000;
const READERS: usize = 16;
const CONNECTIONS: usize = 4;
const SECS: u64 = 5;
const QUERY: &str = "SELECT id, un_id, name, settings, created_at FROM conns WHERE id = ?1";

/// One read's answer, so no path can skip decoding the row.
type Answer = (i64, usize);

/// A way of reading a row by id.
#[derive(Clone)]
enum Path {
    SqlxPool(sqlx::SqlitePool),
    RusqliteThreads(mpsc::SyncSender<(i64, oneshot::Sender<Answer>)>),
    RusqliteInline(Arc<std::path::PathBuf>),
}

thread_local! {
    static INLINE: RefCell<Option<rusqlite::Connection>> = const { RefCell::new(None) };
}

fn open_read_only(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open the database read-only")
}

fn read_row(conn: &rusqlite::Connection, id: i64) -> Answer {
    let mut stmt = conn.prepare_cached(QUERY).expect("prepare");
    stmt.query_row([id], |r| {
        let settings: String = r.get(3)?;
        Ok((r.get::<_, i64>(0)?, settings.len()))
    })
    .expect("row")
}

impl Path {
    fn name(&self) -> &'static str {
        match self {
            Path::SqlxPool(_) => "sqlx-pool",
            Path::RusqliteThreads(_) => "rusqlite-threads",
            Path::RusqliteInline(_) => "rusqlite-inline",
        }
    }

    async fn read(&self, id: i64) -> Answer {
        match self {
            Path::SqlxPool(pool) => {
                let row = sqlx::query(QUERY)
                    .bind(id)
                    .fetch_one(pool)
                    .await
                    .expect("row");
                let settings: String = row.get(3);
                (row.get(0), settings.len())
            }
            Path::RusqliteThreads(tx) => {
                let (reply, answer) = oneshot::channel();
                tx.send((id, reply)).expect("reader threads alive");
                answer.await.expect("answer")
            }
            Path::RusqliteInline(file) => INLINE.with(|c| {
                let mut c = c.borrow_mut();
                let conn = c.get_or_insert_with(|| open_read_only(file));
                read_row(conn, id)
            }),
        }
    }
}

/// CPU seconds this process has used so far (all threads).
fn cpu_time() -> f64 {
    procfs::cpu_secs(std::process::id()).expect("/proc/self/stat")
}

async fn measure(path: Path) -> (f64, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for r in 0..READERS {
        let (path, stop, done) = (path.clone(), stop.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut id = (r as i64 * 61) % ROWS + 1;
            while !stop.load(Ordering::Relaxed) {
                let (got, len) = path.read(id).await;
                assert_eq!((got, len > 500), (id, true));
                done.fetch_add(1, Ordering::Relaxed);
                id = id % ROWS + 1;
                // As a server's request task ends after its read: without
                // it, an inline read never yields and starves the timer.
                tokio::task::yield_now().await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(SECS)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("reader");
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_time() - cpu0;
    let n = done.load(Ordering::Relaxed) as f64;
    (n / secs, cpu / n * 1e6)
}

fn main() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("read.db");
    {
        let conn = rusqlite::Connection::open(&file).expect("create");
        conn.pragma_update(None, "journal_mode", "wal")
            .expect("wal");
        conn.execute_batch(
            "CREATE TABLE conns (id INTEGER PRIMARY KEY, un_id TEXT NOT NULL, \
             name TEXT NOT NULL, settings TEXT NOT NULL, created_at INTEGER NOT NULL)",
        )
        .expect("schema");
        let settings = "x".repeat(560);
        let tx = conn.unchecked_transaction().expect("begin");
        for id in 1..=ROWS {
            tx.execute(
                "INSERT INTO conns VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![
                    id,
                    format!("vpnx-{id:08x}"),
                    format!("conn-{id}"),
                    settings,
                    id
                ],
            )
            .expect("insert");
        }
        tx.commit().expect("commit");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let pool = rt.block_on(async {
        SqlitePoolOptions::new()
            .max_connections(CONNECTIONS as u32)
            .test_before_acquire(false)
            .connect_with(
                SqliteConnectOptions::new()
                    .filename(&file)
                    .journal_mode(SqliteJournalMode::Wal)
                    .read_only(true),
            )
            .await
            .expect("sqlx pool")
    });
    let (tx, rx) = mpsc::sync_channel::<(i64, oneshot::Sender<Answer>)>(1024);
    let rx = Arc::new(Mutex::new(rx));
    for _ in 0..CONNECTIONS {
        let (rx, file) = (rx.clone(), file.clone());
        std::thread::spawn(move || {
            let conn = open_read_only(&file);
            loop {
                let next = rx.lock().expect("queue").recv();
                let Ok((id, reply)) = next else { return };
                let _ = reply.send(read_row(&conn, id));
            }
        });
    }
    let paths = [
        Path::SqlxPool(pool),
        Path::RusqliteThreads(tx),
        Path::RusqliteInline(Arc::new(file.clone())),
    ];
    println!("| round | path | reads/s | CPU µs per read |");
    println!("|---|---|---:|---:|");
    for round in 1..=2 {
        for path in &paths {
            let (rate, cpu) = rt.block_on(measure(path.clone()));
            println!("| {round} | {} | {rate:.0} | {cpu:.1} |", path.name());
        }
    }
}
