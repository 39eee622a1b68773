//! Helpers for test suites (this crate's conformance suite, vpcd's API and
//! cluster tests).
//!
//! Throwaway PostgreSQL databases: one fresh database per test, created on
//! the server named by `VPCD_TEST_PG_URL` and dropped when the guard goes.
//! Under `CI=true` a server that cannot be reached is a test failure;
//! elsewhere the test is skipped with the reason printed.
//!
//! [`claim_any`]: run the queue without gateway-node leases.
//! [`master_key`]: the master key of the test process's databases.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use vpcd_types::GatewayNodeId;

use crate::{ClaimedTask, MasterKey, Result, Store, StoreError, Timestamp};

/// Claim the oldest runnable task of any gateway node or API-only gateway:
/// [`Store::claim_task_on`] over every node the store knows.
pub async fn claim_any(
    store: &dyn Store,
    worker: &str,
    now: Timestamp,
    lease_secs: i64,
) -> Result<Option<ClaimedTask>> {
    let mut nodes: Vec<Option<GatewayNodeId>> = store
        .list_gateway_nodes()
        .await?
        .into_iter()
        .map(|n| Some(n.id))
        .collect();
    nodes.push(None);
    store.claim_task_on(worker, now, lease_secs, &nodes).await
}

/// One master key per test process, so a test can open a database again
/// without carrying its key along. Random: no key is written in the source.
pub fn master_key() -> MasterKey {
    static KEY: std::sync::OnceLock<MasterKey> = std::sync::OnceLock::new();
    KEY.get_or_init(MasterKey::generate).clone()
}

/// The environment variable naming the PostgreSQL server for tests.
pub const PG_URL_VAR: &str = "VPCD_TEST_PG_URL";
/// Where tests look when `VPCD_TEST_PG_URL` is not set.
pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database created for one test; dropped (with `WITH (FORCE)`, which
/// ends connections still open to it) when this guard is dropped.
#[derive(Debug)]
pub struct ScratchDb {
    admin_url: String,
    name: String,
    url: String,
}

impl ScratchDb {
    /// Create a database with a unique name on the server `admin_url`
    /// points at (any database of it serves to connect).
    pub async fn create(admin_url: &str) -> Result<ScratchDb> {
        let name = format!(
            "vpcd_t_{}_{:016x}",
            std::process::id(),
            rand::random::<u64>()
        );
        let mut admin = admin_connect(admin_url).await?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await?;
        let _ = admin.close().await;
        Ok(ScratchDb {
            url: with_database(admin_url, &name)?,
            admin_url: admin_url.to_owned(),
            name,
        })
    }

    /// A fresh database on the test server, or `None` (after printing why)
    /// outside CI when the server cannot be reached. Panics under CI.
    pub async fn for_test(what: &str) -> Option<ScratchDb> {
        let admin = std::env::var(PG_URL_VAR).unwrap_or_else(|_| DEFAULT_PG_URL.to_owned());
        match ScratchDb::create(&admin).await {
            Ok(db) => Some(db),
            Err(e) if in_ci() => {
                panic!("{what}: PostgreSQL is required under CI=true ({PG_URL_VAR}): {e}")
            }
            Err(e) => {
                vpcd_types::testing::skip(
                    what,
                    &format!(
                        "no PostgreSQL server to test against ({e}); \
                         set {PG_URL_VAR} to a server where databases can be created"
                    ),
                );
                None
            }
        }
    }

    /// The URL of the new database.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs in sync code, often inside a runtime: use a private
        // runtime on a thread of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut admin = admin_connect(&admin_url).await.ok()?;
                let res = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut admin)
                    .await;
                let _ = admin.close().await;
                res.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

pub use vpcd_types::testing::in_ci;

async fn admin_connect(url: &str) -> Result<sqlx::PgConnection> {
    let opts = PgConnectOptions::from_str(url)
        .map_err(|_| StoreError::Backend("malformed PostgreSQL URL".into()))?;
    opts.connect()
        .await
        .map_err(|e| StoreError::Backend(format!("cannot connect to PostgreSQL: {e}")))
}

/// `url` with its database (the path) replaced by `db`; the query string,
/// if any, is kept.
fn with_database(url: &str, db: &str) -> Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority = base
        .find("://")
        .map(|i| i + 3)
        .ok_or_else(|| StoreError::Backend("malformed PostgreSQL URL".into()))?;
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| i + authority);
    let mut out = format!("{}/{db}", &base[..path]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_replaced() {
        let cases = [
            (
                "postgres://postgres@127.0.0.1:5432/postgres",
                "postgres://postgres@127.0.0.1:5432/x",
            ),
            (
                "postgres://u:p@h/db?sslmode=disable",
                "postgres://u:p@h/x?sslmode=disable",
            ),
            ("postgresql://h:5432", "postgresql://h:5432/x"),
        ];
        for (url, want) in cases {
            assert_eq!(with_database(url, "x").unwrap(), want);
        }
        assert!(with_database("nonsense", "x").is_err());
    }
}
