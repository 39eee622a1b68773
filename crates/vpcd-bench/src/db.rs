//! The database a run stores its tunnels in: a fresh SQLite file in the data
//! directory, or a fresh PostgreSQL database that is dropped afterwards.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use sqlx::{Connection as _, Executor as _};

use vpcd_bench::procfs;

/// The PostgreSQL server tried when `--database postgres` is asked for.
pub(crate) const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub(crate) fn parse(s: &str) -> anyhow::Result<Engine> {
        match s {
            "sqlite" => Ok(Engine::Sqlite),
            "postgres" => Ok(Engine::Postgres),
            other => anyhow::bail!("--database {other:?}: expected sqlite or postgres"),
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }
}

/// One run's database.
pub(crate) enum Database {
    Sqlite { file: PathBuf },
    Postgres { name: String, url: String },
}

impl Database {
    /// Create a fresh database for a run in `data_dir`.
    pub(crate) async fn create(engine: Engine, data_dir: &Path) -> anyhow::Result<Database> {
        match engine {
            Engine::Sqlite => Ok(Database::Sqlite {
                file: data_dir.join("vpcd.db"),
            }),
            Engine::Postgres => {
                let name = format!(
                    "vpcd_bench_{}_{:08x}",
                    std::process::id(),
                    rand::random::<u32>()
                );
                let mut admin = pg_admin().await?;
                admin
                    .execute(format!("CREATE DATABASE {name}").as_str())
                    .await
                    .context("creating the benchmark database")?;
                let base = PG_ADMIN_URL
                    .rsplit_once('/')
                    .map_or(PG_ADMIN_URL, |(base, _)| base);
                let url = format!("{base}/{name}");
                Ok(Database::Postgres { name, url })
            }
        }
    }

    /// The `--database` value for `vpcd serve` (`None`: its default, SQLite
    /// in the data directory).
    pub(crate) fn serve_flag(&self) -> Option<&str> {
        match self {
            Database::Sqlite { .. } => None,
            Database::Postgres { url, .. } => Some(url),
        }
    }

    /// The URL the store is opened with.
    pub(crate) fn store_url(&self) -> String {
        match self {
            Database::Sqlite { file } => format!("sqlite://{}", file.display()),
            Database::Postgres { url, .. } => url.clone(),
        }
    }

    /// Bytes the connection data occupies: for SQLite the file plus its WAL
    /// after a checkpoint that empties the WAL; for PostgreSQL the
    /// connection table with its indexes and TOAST.
    pub(crate) async fn conn_bytes(&self) -> anyhow::Result<u64> {
        match self {
            Database::Sqlite { file } => {
                let mut c =
                    sqlx::SqliteConnection::connect(&format!("sqlite://{}", file.display()))
                        .await?;
                c.execute("PRAGMA wal_checkpoint(TRUNCATE)").await?;
                c.close().await?;
                let wal = PathBuf::from(format!("{}-wal", file.display()));
                Ok(procfs::file_len(file) + procfs::file_len(&wal))
            }
            Database::Postgres { url, .. } => {
                let mut c = sqlx::PgConnection::connect(url).await?;
                let bytes: i64 = sqlx::query_scalar("SELECT pg_total_relation_size('vpn_conns')")
                    .fetch_one(&mut c)
                    .await?;
                c.close().await?;
                Ok(bytes as u64)
            }
        }
    }

    /// PostgreSQL: `VACUUM ANALYZE`, as autovacuum would soon after a bulk
    /// load, so the figures are those of a steady state: the planner sees
    /// 100k rows rather than an empty table, and the visibility map lets
    /// `COUNT(*)` use index-only scans (without it the quota counts of one
    /// AddVpnConnEx took 67 ms instead of 15 ms at 100k tunnels). SQLite:
    /// nothing; vpcd never runs `ANALYZE` there, and its plans are measured
    /// as deployed.
    pub(crate) async fn analyze(&self) -> anyhow::Result<()> {
        if let Database::Postgres { url, .. } = self {
            let mut c = sqlx::PgConnection::connect(url).await?;
            c.execute("VACUUM ANALYZE").await?;
            c.close().await?;
        }
        Ok(())
    }

    /// Drop a PostgreSQL database (SQLite goes with the data directory).
    pub(crate) async fn drop_db(self) -> anyhow::Result<()> {
        if let Database::Postgres { name, .. } = self {
            let mut admin = pg_admin().await?;
            admin
                .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await
                .context("dropping the benchmark database")?;
        }
        Ok(())
    }
}

async fn pg_admin() -> anyhow::Result<sqlx::PgConnection> {
    tokio::time::timeout(
        Duration::from_secs(5),
        sqlx::PgConnection::connect(PG_ADMIN_URL),
    )
    .await
    .context("PostgreSQL did not answer within 5 s")?
    .context("connecting to PostgreSQL")
}

/// Whether runs on `engine` can go ahead: PostgreSQL is skipped, saying
/// so in the report, when it does not answer.
pub(crate) async fn available(engine: Engine) -> bool {
    if engine == Engine::Sqlite {
        return true;
    }
    match pg_admin().await {
        Ok(c) => {
            let _ = c.close().await;
            true
        }
        Err(e) => {
            println!("PostgreSQL skipped: {PG_ADMIN_URL} is not reachable: {e:#}\n");
            false
        }
    }
}
