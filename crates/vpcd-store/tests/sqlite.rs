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
    let store = SqliteStore::open(&dir.path().join("vpcd.db"))
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
        let store = SqliteStore::open(&path).await.unwrap();
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
    let store = SqliteStore::open(&path).await.unwrap();
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
    let a: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).await.unwrap());
    let b: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).await.unwrap());
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

#[tokio::test]
async fn connect_accepts_urls_and_paths() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("a.db").display());
    let store = connect(&url).await.unwrap();
    store.create_account("x").await.unwrap();
    assert!(dir.path().join("a.db").exists());

    let plain = dir.path().join("b.db");
    connect(plain.to_str().unwrap()).await.unwrap();
    assert!(plain.exists());

    let short = format!("sqlite:{}", dir.path().join("c.db").display());
    connect(&short).await.unwrap();
    assert!(dir.path().join("c.db").exists());

    let mem = connect("sqlite::memory:").await.unwrap();
    mem.create_account("x").await.unwrap();

    for pg in [
        "postgres://vpcd:hunter2@localhost/vpcd",
        "postgresql://vpcd:hunter2@localhost/vpcd",
    ] {
        match connect(pg).await {
            Err(StoreError::Backend(msg)) => {
                assert!(msg.contains("PostgreSQL"), "{msg}");
                assert!(!msg.contains("hunter2"), "the URL's password leaked: {msg}");
            }
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => panic!("postgres is not implemented yet"),
        }
    }
}

/// The bulk-load path the benchmark uses: 100,000 tunnels must load in well
/// under a minute (the bound here leaves room for a slow debug build).
#[tokio::test]
async fn import_100k_connections() {
    use std::time::{Duration, Instant};
    use vpcd_types::*;
    let (store, _dir) = fresh().await.unwrap();
    let account = store.create_account("bench").await.unwrap();
    let scope = Scope {
        account_id: account.id,
        region: "gz".into(),
    };
    let roomy = Limits {
        vpn_gws_per_vpc: 1000,
        user_gws_per_region: 1000,
        ..Limits::default()
    };
    let vpc = store
        .create_vpc(
            &scope,
            NewVpc {
                name: "bench".into(),
                cidr: "10.0.0.0/16".parse().unwrap(),
            },
            &roomy,
        )
        .await
        .unwrap();
    let mut gws = Vec::new();
    for i in 0..100 {
        let gw = NewVpnGw {
            vpc_id: vpc.id,
            name: format!("g{i}"),
            bandwidth: 10,
            charge_type: "POSTPAID_BY_HOUR".into(),
            charge_period: None,
            address: AddressSource::Pool("203.0.112.0/23".parse().unwrap()),
        };
        gws.push(store.create_vpn_gw(&scope, gw, &roomy).await.unwrap().id);
    }
    let mut ugws = Vec::new();
    for i in 0..1000u32 {
        let u = NewUserGw {
            name: format!("u{i}"),
            address: std::net::IpAddr::V4((0xC633_6400u32 + i).into()),
        };
        ugws.push(store.create_user_gw(&scope, u, &roomy).await.unwrap().id);
    }
    let settings = ConnSettings {
        pre_shared_key: Secret::new("bench-psk"),
        spd_source: SpdSource::UserGwCidrBlock,
        spd: vec![SpdRule {
            local: "10.0.0.0/16".parse().unwrap(),
            remote: vec!["10.56.20.0/24".parse().unwrap()],
        }],
        ike: IkeSettings {
            encryption: IkeEncryption::AesCbc128,
            authentication: AuthAlgorithm::Sha,
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
    };
    let conns: Vec<NewConn> = (0..100_000usize)
        .map(|i| NewConn {
            vpc_id: vpc.id,
            vpn_gw_id: gws[i % gws.len()],
            user_gw_id: ugws[i % ugws.len()],
            name: format!("conn-{i:06}"),
            settings: settings.clone(),
        })
        .collect();
    let t = Instant::now();
    assert_eq!(store.import_conns(&scope, conns).await.unwrap(), 100_000);
    let took = t.elapsed();
    println!("imported 100,000 connections in {took:?}");
    assert!(took < Duration::from_secs(30), "import took {took:?}");
    let page = Page {
        offset: 0,
        limit: 1,
        order: Order::Name,
        descending: true,
    };
    let (total, last) = store
        .list_conns(&scope, &ConnFilter::default(), &page)
        .await
        .unwrap();
    assert_eq!((total, last[0].name.as_str()), (100_000, "conn-099999"));
}
