//! The store conformance suite on PostgreSQL, one fresh database per test on
//! the server named by `VPCD_TEST_PG_URL` (default: the local server as
//! `postgres`), plus what only matters with several processes on one server:
//! concurrent migration, and invariants across separate connection pools.
//!
//! Under `CI=true` an unreachable server fails every test here; elsewhere
//! they are skipped with the reason printed.

#[macro_use]
mod common;

use std::sync::Arc;

use vpcd_store::testing::ScratchDb;
use vpcd_store::*;

/// A fresh, migrated database; dropped with the guard.
async fn fresh() -> Option<(Arc<dyn Store>, ScratchDb)> {
    let db = ScratchDb::for_test("PostgreSQL store conformance").await?;
    let store = PgStore::connect(db.url(), testing::master_key())
        .await
        .expect("connect and migrate");
    Some((Arc::new(store), db))
}

conformance_tests!(fresh);

/// Migrations apply to an empty database, are a no-op on restart, and two
/// nodes starting at the same moment do not both migrate: sqlx's migrator
/// holds an advisory lock, so the second waits, then finds every version
/// applied. (Had both run the DDL, one would fail on `CREATE TABLE`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrations_apply_once_under_concurrent_starts() {
    let Some(db) = ScratchDb::for_test("concurrent migrations").await else {
        return;
    };
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url().to_owned();
            tokio::spawn(async move { PgStore::connect(&url, testing::master_key()).await })
        })
        .collect();
    let mut stores = Vec::new();
    for s in starts {
        stores.push(s.await.unwrap().expect("every node starts"));
    }
    let applied = applied_migrations(db.url()).await;
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .count();
    assert_eq!(applied.len(), files, "{applied:?}");
    // Each version once, each applied by exactly one run.
    let mut versions: Vec<i64> = applied.iter().map(|(v, _)| *v).collect();
    versions.dedup();
    assert_eq!(versions.len(), applied.len());
    assert!(applied.iter().all(|(_, ok)| *ok));

    // A restart is a no-op: nothing re-applied, data intact.
    stores[0].create_account("alice").await.unwrap();
    let installed_before = installed_on(db.url()).await;
    drop(stores);
    let again = PgStore::connect(db.url(), testing::master_key())
        .await
        .unwrap();
    assert_eq!(applied_migrations(db.url()).await, applied);
    assert_eq!(installed_on(db.url()).await, installed_before);
    assert_eq!(again.list_accounts().await.unwrap().len(), 1);
}

async fn admin(url: &str) -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap()
}

async fn applied_migrations(url: &str) -> Vec<(i64, bool)> {
    let pool = admin(url).await;
    let rows: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    rows
}

async fn installed_on(url: &str) -> Vec<String> {
    let pool = admin(url).await;
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT installed_on::text FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    rows.into_iter().map(|(t,)| t).collect()
}

/// Two stores with their own pools stand for two vpcd processes: the quota
/// and the unique name hold between them, enforced by the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quota_and_names_hold_across_processes() {
    let Some(db) = ScratchDb::for_test("cross-process quota").await else {
        return;
    };
    let a: Arc<dyn Store> = Arc::new(
        PgStore::connect(db.url(), testing::master_key())
            .await
            .unwrap(),
    );
    let b: Arc<dyn Store> = Arc::new(
        PgStore::connect(db.url(), testing::master_key())
            .await
            .unwrap(),
    );
    let account = a.create_account("alice").await.unwrap();
    let scope = Scope {
        account_id: account.id,
        region: "gz".into(),
    };
    let limits = Limits {
        vpcs_per_region: 3,
        ..Limits::default()
    };
    let mut set = tokio::task::JoinSet::new();
    for i in 0..40 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (scope, limits) = (scope.clone(), limits.clone());
        set.spawn(async move {
            let vpc = NewVpc {
                // Pairs of racers share a name.
                name: format!("v{}", i / 2),
                cidr: "10.0.0.0/16".parse().unwrap(),
            };
            store.create_vpc(&scope, vpc, &limits).await
        });
    }
    let mut won = 0;
    for res in set.join_all().await {
        match res {
            Ok(_) => won += 1,
            Err(StoreError::LimitExceeded(Quota::VpcsPerRegion))
            | Err(StoreError::NameInUse(Resource::Vpc)) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(won, 3);
    let page = Page {
        offset: 0,
        limit: 10,
        order: Order::Name,
        descending: false,
    };
    for store in [&a, &b] {
        let (total, vpcs) = store
            .list_vpcs(&scope, &VpcFilter::default(), &page)
            .await
            .unwrap();
        assert_eq!(total, 3);
        let mut names: Vec<&str> = vpcs.iter().map(|v| v.name.as_str()).collect();
        names.dedup();
        assert_eq!(names.len(), 3);
    }
}

/// A replayed Nonce is refused whichever process sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nonce_replay_across_processes() {
    let Some(db) = ScratchDb::for_test("cross-process nonce").await else {
        return;
    };
    let stores: Vec<Arc<dyn Store>> = vec![
        Arc::new(
            PgStore::connect(db.url(), testing::master_key())
                .await
                .unwrap(),
        ),
        Arc::new(
            PgStore::connect(db.url(), testing::master_key())
                .await
                .unwrap(),
        ),
    ];
    let now = 1_700_000_000;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..30 {
        let store = stores[i % 2].clone();
        set.spawn(async move {
            store
                .remember_nonce("AKIDx", "777", now, now - 300)
                .await
                .unwrap()
        });
    }
    let fresh = set.join_all().await.into_iter().filter(|f| *f).count();
    assert_eq!(fresh, 1);
}

#[tokio::test]
async fn connect_errors_never_show_the_password() {
    for url in [
        "postgres://vpcd:hunter2@127.0.0.1:1/vpcd",
        "postgresql://vpcd:hunter2@127.0.0.1:1/vpcd",
        "postgres://vpcd:hunter2@[::1:bad/vpcd",
    ] {
        match connect(url, testing::master_key()).await {
            Err(StoreError::Backend(msg)) => {
                assert!(msg.contains("PostgreSQL"), "{msg}");
                assert!(!msg.contains("hunter2"), "the URL's password leaked: {msg}");
            }
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => panic!("nothing listens on port 1"),
        }
    }
}

/// `connect` picks the engine by URL scheme.
#[tokio::test]
async fn connect_selects_postgres() {
    let Some(db) = ScratchDb::for_test("connect by URL").await else {
        return;
    };
    for url in [
        db.url().to_owned(),
        db.url().replacen("postgres://", "postgresql://", 1),
    ] {
        let store = connect(&url, testing::master_key()).await.unwrap();
        store
            .create_account(&format!("a-{}", url.len()))
            .await
            .unwrap();
    }
}

/// The bulk-load path on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_100k_connections() {
    let Some((store, db)) = fresh().await else {
        return;
    };
    let took = common::bulk::import_100k(store).await;
    println!("imported 100,000 connections in {took:?}");

    // The import analyzed the table, and a page of one gateway's 1,000
    // tunnels (the queries `list_conns` sends) is served from the
    // gateway's index with the scope in its conditions: no heap filter on
    // every tunnel of the gateway, no sort of them all before the offset.
    let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
    let tuples: f32 =
        sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE relname = 'vpn_conns'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        tuples > 90_000.0,
        "vpn_conns not analyzed: reltuples {tuples}"
    );
    let (account, gw): (i64, i64) =
        sqlx::query_as("SELECT account_id, MIN(vpn_gw_id) FROM vpn_conns GROUP BY account_id")
            .fetch_one(&pool)
            .await
            .unwrap();
    let scope = format!("c.account_id = {account} AND c.region = 'gz' AND c.vpn_gw_id = {gw}");
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
        let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {sql}"))
            .fetch_all(&pool)
            .await
            .unwrap();
        let text = plan.join("\n");
        assert!(
            text.contains("vpn_conns_by_vpn_gw_page") && !text.contains("Sort"),
            "{what}: {text}"
        );
        assert!(
            !plan.iter().any(|l| l.trim_start().starts_with("Filter:")),
            "{what}: {text}"
        );
    }
    pool.close().await;
}

/// A database an older vpcd made (schema 0002: before the maintained
/// connection count) is migrated in place when a store connects to it.
#[tokio::test]
async fn old_database_migrates_in_place() {
    let Some(db) = ScratchDb::for_test("migration in place").await else {
        return;
    };
    let pool = admin(db.url()).await;
    common::migration::make_old(pool, "postgres", 2).await;
    let store = PgStore::connect(db.url(), testing::master_key())
        .await
        .unwrap();
    no_clear_secret_in_tables(
        db.url(),
        &[
            common::migration::OLD_SECRET_KEY,
            common::migration::OLD_PSK,
        ],
    )
    .await;
    common::migration::old_rows_carried_over(Arc::new(store)).await;
}

/// Secrets at rest (issue 11): no SecretKey or pre-shared key in clear in
/// any row of any table.
#[tokio::test]
async fn no_secret_in_clear_in_any_table() {
    let Some(db) = ScratchDb::for_test("secrets at rest").await else {
        return;
    };
    let store = PgStore::connect(db.url(), testing::master_key())
        .await
        .unwrap();
    let secrets = common::secrets::write_secrets(&store).await;
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    no_clear_secret_in_tables(db.url(), &secrets).await;
}

/// Every row of every table in the public schema, as text, holds none of
/// `secrets`.
async fn no_clear_secret_in_tables(url: &str, secrets: &[&str]) {
    let pool = admin(url).await;
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(tables.iter().any(|t| t == "api_keys") && tables.iter().any(|t| t == "vpn_conns"));
    for table in tables {
        let rows: Vec<String> = sqlx::query_scalar(&format!("SELECT t::text FROM {table} t"))
            .fetch_all(&pool)
            .await
            .unwrap();
        for row in rows {
            for s in secrets {
                assert!(!row.contains(s), "a row of {table} holds a secret in clear");
            }
        }
    }
    pool.close().await;
}

/// A store opened with another master key is refused; a rotation re-seals
/// everything, after which only the new key opens the database.
#[tokio::test]
async fn master_key_is_checked_and_rotates() {
    let Some(db) = ScratchDb::for_test("master key").await else {
        return;
    };
    common::secrets::master_key_rules(async |key| PgStore::connect(db.url(), key).await).await;
}

/// The server stopped for six seconds under a stream of creates, then
/// started again: while it is down creates are refused with
/// `StorageUnavailable` and leave nothing behind; once it is up, writes
/// succeed again without a new store. A private server, never the shared
/// one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_resume_after_server_outage() {
    use common::faults::{can_make_faults, PrivatePg, Workload};
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};
    if !can_make_faults("PostgreSQL outage test") {
        return;
    }
    let Some(pg) = PrivatePg::init() else {
        return;
    };
    let pg = Arc::new(pg);
    let store: Arc<dyn Store> = Arc::new(
        PgStore::connect(&pg.url(), testing::master_key())
            .await
            .unwrap(),
    );
    let mut work = Workload::new(store.clone()).await;
    let restarted = Arc::new(OnceLock::new());
    let load = {
        let restarted = restarted.clone();
        tokio::spawn(async move {
            loop {
                let ok = work.step().await;
                if let (true, Some(at)) = (ok, restarted.get()) {
                    let took: Duration = Instant::now().duration_since(*at);
                    return (work, took);
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let server = pg.clone();
    tokio::task::spawn_blocking(move || {
        server.stop();
        // Longer than the pool waits for a connection, so some creates
        // are refused on the connect, not only on the cut session.
        std::thread::sleep(Duration::from_secs(6));
        server.start();
    })
    .await
    .unwrap();
    restarted.set(Instant::now()).unwrap();
    let (mut work, took) = tokio::time::timeout(Duration::from_secs(60), load)
        .await
        .expect("writes never resumed")
        .unwrap();
    println!(
        "outage: {} created, {} refused; answers: {:?}; first write after the restart \
         succeeded {took:?} after the server was up",
        work.made.len(),
        work.refused.len(),
        work.errors
    );
    assert!(!work.refused.is_empty(), "nothing was refused while down");
    for _ in 0..20 {
        assert!(work.step().await);
    }
    work.check().await;
}
