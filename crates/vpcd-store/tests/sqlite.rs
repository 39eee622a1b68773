//! The store conformance suite on SQLite, plus what only SQLite has: a
//! database file that outlives the process and that several processes share.

#[macro_use]
mod common;

use std::sync::Arc;

use tempfile::TempDir;
use vpcd_store::*;

/// A fresh database file in its own temp dir, removed when the guard drops.
async fn fresh() -> Option<(Arc<dyn Store>, TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("vpcd.db"), testing::master_key())
        .await
        .unwrap();
    Some((Arc::new(store), dir))
}

conformance_tests!(fresh);

/// The in-memory variant behaves like a file (one case is enough to show
/// the schema and pools are wired).
#[tokio::test]
async fn in_memory_store_works() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().await.unwrap());
    common::conformance::create_conn_is_atomic(store.clone()).await;
    common::conformance::paging_and_ordering(Arc::new(SqliteStore::in_memory().await.unwrap()))
        .await;
}

#[tokio::test]
async fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vpcd.db");
    let (scope, key) = {
        let store = SqliteStore::open(&path, testing::master_key())
            .await
            .unwrap();
        let account = store.create_account("alice").await.unwrap();
        let key = store.create_key("alice").await.unwrap();
        let scope = Scope {
            account_id: account.id,
            region: "gz".into(),
        };
        let vpc = NewVpc {
            name: "v".into(),
            cidr: "10.0.0.0/16".parse().unwrap(),
        };
        store
            .create_vpc(&scope, vpc, &Limits::default())
            .await
            .unwrap();
        (scope, key)
    };
    // Opening again runs the migrator on an up-to-date schema.
    let store = SqliteStore::open(&path, testing::master_key())
        .await
        .unwrap();
    assert_eq!(store.find_key(&key.secret_id).await.unwrap(), Some(key));
    let (total, vpcs) = store
        .list_vpcs(
            &scope,
            &VpcFilter::default(),
            &Page {
                offset: 0,
                limit: 10,
                order: Order::Name,
                descending: false,
            },
        )
        .await
        .unwrap();
    assert_eq!((total, vpcs[0].name.as_str()), (1, "v"));
}

/// Two stores on one file stand for two vpcd processes: the write lock taken
/// by `BEGIN IMMEDIATE` keeps the quota race-free between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_holds_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vpcd.db");
    let a: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&path, testing::master_key())
            .await
            .unwrap(),
    );
    let b: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&path, testing::master_key())
            .await
            .unwrap(),
    );
    let account = a.create_account("alice").await.unwrap();
    let scope = Scope {
        account_id: account.id,
        region: "gz".into(),
    };
    let limits = Limits {
        vpcs_per_region: 1,
        ..Limits::default()
    };
    let mut set = tokio::task::JoinSet::new();
    for i in 0..20 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (scope, limits) = (scope.clone(), limits.clone());
        set.spawn(async move {
            let vpc = NewVpc {
                name: format!("v{i}"),
                cidr: "10.0.0.0/16".parse().unwrap(),
            };
            store.create_vpc(&scope, vpc, &limits).await
        });
    }
    let mut won = 0;
    for res in set.join_all().await {
        match res {
            Ok(_) => won += 1,
            Err(StoreError::LimitExceeded(Quota::VpcsPerRegion)) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(won, 1);
    // Each process reads what the other wrote.
    let page = Page {
        offset: 0,
        limit: 10,
        order: Order::CreateTime,
        descending: false,
    };
    for store in [&a, &b] {
        let (total, _) = store
            .list_vpcs(&scope, &VpcFilter::default(), &page)
            .await
            .unwrap();
        assert_eq!(total, 1);
    }
}

/// Two stores on one file stand for two vpcd processes: a Nonce seen by one
/// is refused by the other (they share the `<db>-nonces` file), also when
/// both see it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonce_replay_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vpcd.db");
    let a: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&path, testing::master_key())
            .await
            .unwrap(),
    );
    let b: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&path, testing::master_key())
            .await
            .unwrap(),
    );
    let now = 1_700_000_000;
    assert!(a
        .remember_nonce("AKIDx", "1", now, now - 300)
        .await
        .unwrap());
    assert!(!b
        .remember_nonce("AKIDx", "1", now, now - 300)
        .await
        .unwrap());
    for n in 0..20 {
        let mut set = tokio::task::JoinSet::new();
        for store in [a.clone(), b.clone(), a.clone(), b.clone()] {
            set.spawn(async move {
                store
                    .remember_nonce("AKIDx", &format!("r{n}"), now, now - 300)
                    .await
                    .unwrap()
            });
        }
        let fresh = set.join_all().await.into_iter().filter(|f| *f).count();
        assert_eq!(fresh, 1, "nonce r{n} accepted {fresh} times");
    }
    // A reopened store still refuses what was seen before.
    drop((a, b));
    let c = SqliteStore::open(&path, testing::master_key())
        .await
        .unwrap();
    assert!(!c
        .remember_nonce("AKIDx", "1", now, now - 300)
        .await
        .unwrap());
}

#[tokio::test]
async fn connect_accepts_urls_and_paths() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("a.db").display());
    let store = connect(&url, testing::master_key()).await.unwrap();
    store.create_account("x").await.unwrap();
    assert!(dir.path().join("a.db").exists());

    let plain = dir.path().join("b.db");
    connect(plain.to_str().unwrap(), testing::master_key())
        .await
        .unwrap();
    assert!(plain.exists());

    let short = format!("sqlite:{}", dir.path().join("c.db").display());
    connect(&short, testing::master_key()).await.unwrap();
    assert!(dir.path().join("c.db").exists());

    let mem = connect("sqlite::memory:", MasterKey::generate())
        .await
        .unwrap();
    mem.create_account("x").await.unwrap();
}

/// The bulk-load path the benchmark uses loads 100,000 tunnels completely.
/// How long it takes is printed, not asserted: speed is the benchmark's to
/// measure (BENCHMARKS.md), never a test's.
#[tokio::test]
async fn import_100k_connections() {
    let (store, dir) = fresh().await.unwrap();
    let took = common::bulk::import_100k(store).await;
    println!("imported 100,000 connections in {took:?}");

    // The import ran ANALYZE, and with those statistics a gateway's count
    // and page (as `list_conns` sends them) still come from the gateway's
    // covering index alone, in index order.
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}?mode=ro",
        dir.path().join("vpcd.db").display()
    ))
    .await
    .unwrap();
    let stats: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_stat1 WHERE tbl = 'vpn_conns'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(stats > 0, "vpn_conns not analyzed");
    let scope = "+c.account_id = 1 AND +c.region = 'gz' AND c.vpn_gw_id = 1";
    for (what, sql) in [
        (
            "count",
            format!("SELECT COUNT(*) FROM vpn_conns c WHERE {scope}"),
        ),
        (
            "page",
            format!(
                "SELECT c.id FROM vpn_conns c WHERE {scope} \
                 ORDER BY c.created_at DESC, c.id DESC LIMIT 20 OFFSET 500"
            ),
        ),
    ] {
        let plan: Vec<String> = sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
            .fetch_all(&pool)
            .await
            .unwrap()
            .iter()
            .map(|r| sqlx::Row::get::<String, _>(r, "detail"))
            .collect();
        assert_eq!(
            plan,
            ["SEARCH c USING COVERING INDEX vpn_conns_by_vpn_gw_page (vpn_gw_id=?)"],
            "{what}"
        );
    }
    pool.close().await;
}

/// A database an older vpcd made (schema 0003: before the maintained
/// connection count) is migrated in place when a store opens it.
#[tokio::test]
async fn old_database_migrates_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vpcd.db");
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
    common::migration::make_old(pool, "sqlite", 3).await;
    let store = SqliteStore::open(&path, testing::master_key())
        .await
        .unwrap();
    // The clear secrets were sealed, and their old bytes scrubbed from the
    // files, before the store was handed out.
    no_clear_secret_in(
        dir.path(),
        &[
            common::migration::OLD_SECRET_KEY,
            common::migration::OLD_PSK,
        ],
    );
    common::migration::old_rows_carried_over(Arc::new(store)).await;
}

/// Secrets at rest (issue 11): no SecretKey or pre-shared key in clear in
/// any file of the database (the database, its WAL and shared memory, the
/// nonce database) while the store runs, the WAL holding the writes.
#[tokio::test]
async fn no_secret_in_clear_in_any_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("vpcd.db"), testing::master_key())
        .await
        .unwrap();
    let secrets = common::secrets::write_secrets(&store).await;
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let files = no_clear_secret_in(dir.path(), &secrets);
    for f in ["vpcd.db", "vpcd.db-wal", "vpcd.db-shm", "vpcd.db-nonces"] {
        assert!(files.iter().any(|n| n == f), "{f} not among {files:?}");
    }
}

/// Every file in `dir` holds none of `secrets`; the files' names.
fn no_clear_secret_in(dir: &std::path::Path, secrets: &[&str]) -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let bytes = std::fs::read(entry.path()).unwrap();
        for s in secrets {
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "{name} holds a secret in clear"
            );
        }
        names.push(name);
    }
    names
}

/// A store opened with another master key is refused; a rotation re-seals
/// everything, after which only the new key opens the database.
#[tokio::test]
async fn master_key_is_checked_and_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vpcd.db");
    common::secrets::master_key_rules(async |key| SqliteStore::open(&path, key).await).await;
}

/// A full disk: creates are refused with `StorageUnavailable` (and leave
/// nothing behind) while reads keep working; once the filesystem is grown,
/// the very next write succeeds, without reopening the store.
#[tokio::test]
async fn writes_resume_after_disk_full() {
    use common::faults::{can_make_faults, Tmpfs, Workload};
    if !can_make_faults("disk-full test") {
        return;
    }
    let fs = Tmpfs::mount("1m");
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&fs.path().join("vpcd.db"), testing::master_key())
            .await
            .unwrap(),
    );
    let mut work = Workload::new(store.clone()).await;
    let mut steps = 0;
    while work.refused.is_empty() {
        work.step().await;
        steps += 1;
        assert!(steps < 100_000, "the disk never filled");
    }
    // Full: more refusals (each must be StorageUnavailable), reads served.
    for _ in 0..20 {
        work.step().await;
    }
    let now = 1_700_000_000;
    let nonce = store
        .remember_nonce("AKIDf", "during", now, now - 300)
        .await;
    println!(
        "while full: {} refused; nonce: {nonce:?}",
        work.refused.len()
    );
    println!("answers while full: {:?}", work.errors);
    work.check_reads().await;

    fs.resize("64m");
    assert!(
        work.step().await,
        "the first write after growing failed: {:?}",
        work.errors
    );
    for _ in 0..20 {
        assert!(work.step().await);
    }
    assert!(store
        .remember_nonce("AKIDf", "after", now, now - 300)
        .await
        .unwrap());
    work.check().await;
    println!("after growing: {} created in all", work.made.len());
    drop(work);
    drop(store);
}

/// The same through group commits: bursts of concurrent creates fill the
/// disk, so whole batches fail at their commit (or at a statement); every
/// caller of a failed batch is refused with `StorageUnavailable` and left
/// nothing, the writer survives, and once the filesystem is grown the next
/// bursts all succeed, without reopening the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_writes_resume_after_disk_full() {
    use common::faults::{can_make_faults, Tmpfs, Workload};
    if !can_make_faults("batched disk-full test") {
        return;
    }
    let fs = Tmpfs::mount("1m");
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&fs.path().join("vpcd.db"), testing::master_key())
            .await
            .unwrap(),
    );
    let mut work = Workload::new(store.clone()).await;
    let mut bursts = 0;
    while work.refused.is_empty() {
        work.burst(16).await;
        bursts += 1;
        assert!(bursts < 10_000, "the disk never filled");
    }
    for _ in 0..5 {
        work.burst(16).await;
    }
    println!(
        "while full: {} refused of {} answered; answers: {:?}",
        work.refused.len(),
        work.refused.len() + work.made.len(),
        work.errors
    );
    work.check_reads().await;

    fs.resize("64m");
    assert_eq!(
        work.burst(16).await,
        16,
        "writes after growing failed: {:?}",
        work.errors
    );
    for _ in 0..5 {
        assert_eq!(work.burst(16).await, 16);
    }
    work.check().await;
    println!("after growing: {} created in all", work.made.len());
    drop(work);
    drop(store);
}
