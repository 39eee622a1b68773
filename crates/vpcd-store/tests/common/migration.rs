//! Databases made by an older vpcd, migrated in place by a newer one.

use std::path::Path;
use std::sync::Arc;

use sqlx::migrate::Migrator;
use tempfile::TempDir;
use vpcd_store::*;
use vpcd_types::{IdRef, RowId};

/// Make the database of `pool` what an older vpcd left: `engine`'s
/// migrations up to version `last`, then [`OLD_ROWS`]. The pool is closed.
pub(crate) async fn make_old<DB: sqlx::Database>(pool: sqlx::Pool<DB>, engine: &str, last: i64)
where
    DB::Connection: sqlx::migrate::Migrate,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    let (old, _files) = migrator_up_to(engine, last).await;
    old.run(&pool).await.unwrap();
    let settings = serde_json::to_string(&super::conformance::settings(OLD_PSK)).unwrap();
    let rows = OLD_ROWS
        .replace("{settings}", &settings)
        .replace("{secret_key}", OLD_SECRET_KEY);
    sqlx::raw_sql(&rows).execute(&pool).await.unwrap();
    pool.close().await;
}

/// A migrator with `engine`'s migrations up to version `last` only (copied
/// into a temp dir, so their checksums are the real ones).
async fn migrator_up_to(engine: &str, last: i64) -> (Migrator, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(engine);
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let version: i64 = name.split('_').next().unwrap().parse().unwrap();
        if version <= last {
            std::fs::copy(&path, dir.path().join(name)).unwrap();
        }
    }
    let migrator = Migrator::new(dir.path()).await.unwrap();
    (migrator, dir)
}

/// The SecretKey an older vpcd stored in clear.
pub(crate) const OLD_SECRET_KEY: &str = "OldClearSecretKey0123456789abcdE";
/// The pre-shared key of both old connections, stored in clear.
pub(crate) const OLD_PSK: &str = "old-clear-psk-7f3a91";

/// Rows as an older vpcd wrote them (the same SQL on both engines): one
/// account with a key (its SecretKey in clear replaces `{secret_key}`), a VPC, a VPN gateway, three peer gateways and two
/// running connections in region `gz` (their settings, with the pre-shared
/// key in clear, replace `{settings}`), and one vpcd process that sent
/// heartbeats.
const OLD_ROWS: &str = "\
    INSERT INTO accounts (name, created_at) VALUES ('alice', 0); \
    INSERT INTO api_keys (secret_id, secret_key, account_id, created_at) \
        VALUES ('AKIDold', '{secret_key}', 1, 0); \
    INSERT INTO vpcs (un_id, account_id, region, name, cidr, created_at) \
        VALUES ('vpc-aaaaaaaa', 1, 'gz', 'v', '10.0.0.0/16', 0); \
    INSERT INTO vpn_gws (un_id, account_id, region, vpc_id, name, bandwidth, charge_type, \
            address, address_num, created_at) \
        VALUES ('vpngw-aaaaaaaa', 1, 'gz', 1, 'g', 10, 'POSTPAID_BY_HOUR', '203.0.113.1', \
            3405803777, 0); \
    INSERT INTO user_gws (un_id, account_id, region, name, address, created_at) \
        VALUES ('cgw-aaaaaaa1', 1, 'gz', 'u1', '198.51.100.1', 0), \
               ('cgw-aaaaaaa2', 1, 'gz', 'u2', '198.51.100.2', 0), \
               ('cgw-aaaaaaa3', 1, 'gz', 'u3', '198.51.100.3', 0); \
    INSERT INTO vpn_conns (un_id, account_id, region, vpc_id, vpn_gw_id, user_gw_id, name, \
            status, net_status, settings, created_at) \
        VALUES ('vpnx-aaaaaaa1', 1, 'gz', 1, 1, 1, 'c1', 6, 'available', '{settings}', 0), \
               ('vpnx-aaaaaaa2', 1, 'gz', 1, 1, 2, 'c2', 6, 'available', '{settings}', 0); \
    INSERT INTO cluster_nodes (name, started_at, last_seen, info) \
        VALUES ('vpcd-a', 100, 200, 'old');";

/// After the migration the store has what the old rows said: the clear
/// secrets (now sealed: the engine's test looks at the stored bytes), the
/// region's connection count (which the quota reads, and which stays
/// maintained) and the cluster's members.
pub(crate) async fn old_rows_carried_over(store: Arc<dyn Store>) {
    let accounts = store.list_accounts().await.unwrap();
    let scope = Scope {
        account_id: accounts[0].0.id,
        region: "gz".into(),
    };
    let key = store.find_key("AKIDold").await.unwrap().unwrap();
    assert_eq!(key.secret_key.expose(), OLD_SECRET_KEY);
    for conn in ["vpnx-aaaaaaa1", "vpnx-aaaaaaa2"] {
        let id = IdRef::Unified(conn.parse().unwrap());
        let conn = store.get_conn(&scope, &id).await.unwrap().unwrap();
        assert_eq!(conn.settings, super::conformance::settings(OLD_PSK));
    }
    assert_eq!(store.conn_count_check(&scope).await.unwrap(), (2, 2));
    let members = store.list_members().await.unwrap();
    assert_eq!(
        members
            .iter()
            .map(|m| (m.name.as_str(), m.last_seen))
            .collect::<Vec<_>>(),
        [("vpcd-a", 200)]
    );
    // The quota reads the carried-over count, and it is still kept.
    let new = |name: &str| NewConn {
        vpc_id: RowId::new(1),
        vpn_gw_id: RowId::new(1),
        user_gw_id: RowId::new(3),
        name: name.into(),
        settings: super::conformance::settings("psk"),
        tags: Vec::new(),
    };
    let two = Limits {
        conns_per_region: 2,
        ..Limits::default()
    };
    assert!(matches!(
        store.create_conn(&scope, new("c3"), &two).await,
        Err(StoreError::LimitExceeded(Quota::ConnsPerRegion))
    ));
    store
        .create_conn(&scope, new("c3"), &Limits::default())
        .await
        .unwrap();
    assert_eq!(store.conn_count_check(&scope).await.unwrap(), (3, 3));
}
