//! `vpcd-bench`: the load generator.
//!
//! ```sh
//! cargo build --release -p vpcd
//! cargo run -p vpcd-bench --release -- all --tunnels 1000,100000 --database sqlite,postgres
//! ```
//!
//! For each database and tunnel count it starts the real `vpcd serve`
//! release binary on a fresh data directory (HTTP on 127.0.0.1:0, every
//! quota raised), stops it, stores the tunnels directly through the store
//! (`Store::import_conns`), starts it again, waits until it is idle, and runs
//! each scenario right after a run of the ceiling (`GET /healthz`), so every
//! ratio compares two measurements taken moments apart on the same machine.
//! Traffic goes to 127.0.0.1 only; every run is bounded by `--duration`.
//!
//! The generator runs on one thread (a current-thread tokio runtime), so it
//! can never take more than one of the machine's cores; its CPU time and its
//! signing time are measured and reported beside every figure.
//!
//! # Layout
//! - `client`: keep-alive HTTP/1.1 connections and request signing.
//! - `vpcd`: starting, settling and stopping the server process.
//! - `db`: the fresh SQLite file or PostgreSQL database of a run.
//! - `load`: storing gateways and tunnels through the store.
//! - `scenario`: scenarios (a)-(e) and the client loops.
//! - `report`: tables and the issue's targets.
//! - `procfs`: CPU time, RSS, load and machine facts from `/proc`.

mod client;
mod db;
mod load;
mod procfs;
mod report;
mod scenario;
mod vpcd;

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use vpcd_store::Scope;

use crate::client::Api;
use crate::db::{Database, Engine};
use crate::report::RunReport;
use crate::scenario::{Ctx, Scenario};
use crate::vpcd::Vpcd;

#[derive(Parser, Debug)]
#[command(
    name = "vpcd-bench",
    about = "Load generator for vpcd: throughput and latency side by side with the machine's ceiling"
)]
struct Cli {
    /// all, or one of: ceiling (a), describe (b), list (c), add (d), cycle (e).
    scenario: String,
    /// Concurrent clients, each on its own keep-alive connection.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds each scenario (and each ceiling run before it) lasts.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Stored tunnels, comma-separated (e.g. 1000,100000).
    #[arg(long, default_value = "1000", value_delimiter = ',')]
    tunnels: Vec<usize>,
    /// sqlite, postgres, or both comma-separated. PostgreSQL is used when
    /// postgres://postgres@127.0.0.1:5432/postgres answers.
    #[arg(long, default_value = "sqlite", value_delimiter = ',')]
    database: Vec<String>,
    /// The vpcd binary (default: target/release/vpcd of this workspace).
    #[arg(long)]
    vpcd: Option<PathBuf>,
    /// Do not run `cargo build --release -p vpcd` first.
    #[arg(long)]
    no_build: bool,
    /// Milliseconds between task polls.
    #[arg(long, default_value_t = 2)]
    poll_ms: u64,
    /// Also write every figure as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn scenarios(arg: &str) -> anyhow::Result<Vec<Scenario>> {
    if arg == "all" {
        return Ok(Scenario::ALL.to_vec());
    }
    arg.split(',')
        .map(|s| {
            Scenario::parse(s).with_context(|| {
                format!("unknown scenario {s:?}: all, ceiling, describe, list, add or cycle")
            })
        })
        .collect()
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let wanted = scenarios(&cli.scenario)?;
    let engines: Vec<Engine> = cli
        .database
        .iter()
        .map(|d| Engine::parse(d))
        .collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(cli.clients > 0, "--clients must be at least 1");
    anyhow::ensure!(
        (1..=600).contains(&cli.duration),
        "--duration must be 1 to 600 seconds"
    );
    for &t in &cli.tunnels {
        anyhow::ensure!(
            (vpcd_bench::fixtures::GATEWAYS * 20..=1_000_000).contains(&t),
            "--tunnels {t}: between {} (a full page on every gateway) and 1000000",
            vpcd_bench::fixtures::GATEWAYS * 20
        );
    }
    let bin = cli.vpcd.clone().unwrap_or_else(vpcd::default_binary);
    if cli.vpcd.is_none() && !cli.no_build {
        eprintln!("building vpcd: cargo build --release -p vpcd");
        vpcd::build_release()?;
    }
    anyhow::ensure!(
        bin.exists(),
        "{} not found: run cargo build --release -p vpcd",
        bin.display()
    );

    println!(
        "## vpcd-bench {}\n",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    );
    println!("- machine: {}", procfs::machine());
    println!("- vpcd: {}", bin.display());
    println!(
        "- {} clients, {} s per scenario and per ceiling run before it; poll interval {} ms",
        cli.clients, cli.duration, cli.poll_ms
    );
    println!(
        "- vpcd serve {}",
        vpcd::command_line(std::path::Path::new("<tmp>"), None).join(" ")
    );
    println!();

    let mut reports = Vec::new();
    for &engine in &engines {
        if engine == Engine::Postgres {
            if let Err(why) = db::pg_reachable().await {
                println!(
                    "PostgreSQL skipped: {} is not reachable: {why}\n",
                    db::PG_ADMIN_URL
                );
                continue;
            }
        }
        for &tunnels in &cli.tunnels {
            match one_run(&cli, &bin, engine, tunnels, &wanted).await {
                Ok(Some(r)) => {
                    println!("{}", report::run_table(&r));
                    reports.push(r);
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(e.context(format!("{} tunnels on {}", tunnels, engine.name())))
                }
            }
        }
    }
    for engine in &engines {
        let rs: Vec<&RunReport> = reports
            .iter()
            .filter(|r| r.database == engine.name())
            .collect();
        if let (Some(small), Some(large)) = (
            rs.iter().min_by_key(|r| r.tunnels),
            rs.iter().max_by_key(|r| r.tunnels),
        ) {
            if small.tunnels != large.tunnels {
                println!("{}", report::scale_table(small, large));
            }
        }
    }
    if !reports.is_empty() {
        println!("{}", report::targets(&reports));
    }
    if let Some(path) = &cli.json {
        std::fs::write(path, serde_json::to_vec_pretty(&reports)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// One database and tunnel count, on a fresh data directory. `None` when the
/// database cannot be used by this build of vpcd (reported, not an error).
async fn one_run(
    cli: &Cli,
    bin: &std::path::Path,
    engine: Engine,
    tunnels: usize,
    wanted: &[Scenario],
) -> anyhow::Result<Option<RunReport>> {
    let dir = tempfile::Builder::new().prefix("vpcd-bench-").tempdir()?;
    let database = Database::create(engine, dir.path()).await?;
    let result = measure(cli, bin, engine, tunnels, wanted, dir.path(), &database).await;
    database.drop_db().await?;
    result
}

async fn measure(
    cli: &Cli,
    bin: &std::path::Path,
    engine: Engine,
    tunnels: usize,
    wanted: &[Scenario],
    dir: &std::path::Path,
    database: &Database,
) -> anyhow::Result<Option<RunReport>> {
    eprintln!(
        "[{} / {tunnels}] first start (creates the account)",
        engine.name()
    );
    let first = match Vpcd::start(bin, dir, database.serve_flag()).await {
        Ok(v) => v,
        Err(e) if engine == Engine::Postgres => {
            println!("PostgreSQL skipped: this vpcd cannot serve it yet: {e:#}\n");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    first.stop().await?;
    let creds = vpcd::read_credentials(dir)?;

    eprintln!(
        "[{} / {tunnels}] storing {tunnels} tunnels through the store",
        engine.name()
    );
    let store = vpcd_store::connect(&database.store_url())
        .await
        .context("opening the store")?;
    let key = store
        .find_key(&creds.secret_id)
        .await?
        .context("the credentials' key is not in the database")?;
    let scope = Scope {
        account_id: key.account_id,
        region: creds.region.clone(),
    };
    let layout = load::layout(store.as_ref(), &scope).await?;
    let before = database.conn_bytes().await?;
    let stored = load::import(store.as_ref(), &scope, &layout, tunnels).await?;
    let after = database.conn_bytes().await?;
    // For SQLite the growth of the file; PostgreSQL's figure is the
    // connection table's own size, which needs no baseline.
    let db_bytes = match engine {
        Engine::Sqlite => after.saturating_sub(before),
        Engine::Postgres => after,
    };

    eprintln!("[{} / {tunnels}] starting vpcd", engine.name());
    let mut server = Vpcd::start(bin, dir, database.serve_flag()).await?;
    let settle = server.settle(Duration::from_secs(300)).await?;
    let rss_settled = procfs::status_kb(server.pid, "VmRSS")?;
    let api = Api::new(server.addr, creds);
    let ctx = Arc::new(Ctx {
        api,
        stored: Arc::new(stored),
        tag: format!("add{:08x}", rand::random::<u32>()),
        poll_interval: Duration::from_millis(cli.poll_ms),
        seq: AtomicU64::new(0),
        store,
        scope,
    });
    scenario::verify(&ctx)
        .await
        .context("checking the answers")?;

    let duration = Duration::from_secs(cli.duration);
    let mut pairs = Vec::new();
    // Warm up the server (and the page cache) without recording anything.
    scenario::run(
        &ctx,
        Scenario::Ceiling,
        cli.clients,
        Duration::from_secs(1),
        server.pid,
    )
    .await?;
    let started = Instant::now();
    // (e) before (d): the cycles leave the tunnel count as it was, the adds
    // grow it.
    let mut order: Vec<Scenario> = wanted.to_vec();
    order.sort_by_key(|s| match s {
        Scenario::Add => 10,
        other => *other as u8,
    });
    for &s in &order {
        eprintln!("[{} / {tunnels}] {} ...", engine.name(), s.title());
        let base =
            scenario::run(&ctx, Scenario::Ceiling, cli.clients, duration, server.pid).await?;
        if s == Scenario::Ceiling {
            pairs.push((base, None));
            continue;
        }
        let p = scenario::run(&ctx, s, cli.clients, duration, server.pid).await?;
        eprintln!(
            "    {:.0} req/s vs ceiling {:.0} ({:.1}%), p99 {} ms, {} errors",
            p.rps(),
            base.rps(),
            100.0 * p.rps() / base.rps(),
            vpcd_bench::stats::ms(p.latency.p99_us),
            p.errors
        );
        pairs.push((base, Some(p)));
    }
    eprintln!(
        "[{} / {tunnels}] scenarios took {:.0} s",
        engine.name(),
        started.elapsed().as_secs_f64()
    );
    anyhow::ensure!(server.alive(), "vpcd died during the run");
    let rss_peak = procfs::status_kb(server.pid, "VmHWM")?;
    let ready = server.ready_after;
    server.stop().await?;
    Ok(Some(RunReport {
        database: engine.name(),
        tunnels,
        import_s: ctx.stored.import_time.as_secs_f64(),
        db_bytes_per_tunnel: db_bytes as f64 / tunnels as f64,
        vpcd_ready_s: ready.as_secs_f64(),
        vpcd_settle_s: settle.as_secs_f64(),
        rss_settled,
        rss_peak,
        pairs,
    }))
}
