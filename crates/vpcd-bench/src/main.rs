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
//! - `swan`: scenario `strongswan`, AddVpnConnEx to a real charon in a
//!   network namespace (the end-to-end tests' test bed), from the answer to
//!   the tunnel established.

mod client;
mod db;
mod load;
mod moto;

mod report;
mod scenario;
mod swan;
mod vpcd;

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;

use crate::client::{Api, Shape};
use crate::db::{Database, Engine};
use crate::report::RunReport;
use crate::scenario::{Ctx, Phase, Scenario};
use crate::vpcd::Vpcd;
use vpcd_bench::procfs;

#[derive(Parser, Debug)]
#[command(
    name = "vpcd-bench",
    about = "Load generator for vpcd: throughput and latency side by side with the machine's ceiling"
)]
struct Cli {
    /// all, or one of: ceiling (a), describe (b), badsig (x), list (c), add
    /// (d), cycle (e); or strongswan on its own (root, strongSwan: AddVpnConnEx
    /// to a real charon, from the answer to the tunnel established).
    scenario: String,
    /// Concurrent clients, each on its own keep-alive connection.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds each scenario (and each ceiling run before it) lasts.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Stored tunnels, comma-separated (e.g. 1000,100000). For strongswan:
    /// tunnels on the gateway, the measured one included (e.g. 1,1000).
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
    /// After vpcd has settled, measure its CPU use while idle for this many
    /// seconds (periodic work such as reconciliation shows here).
    #[arg(long, default_value_t = 0)]
    idle_secs: u64,
    /// Keep the data directory (SQLite database, vpcd's log) for
    /// inspection, and print where it is.
    #[arg(long)]
    keep_data: bool,
    /// How requests travel: http-get (HmacSHA256), http-post (form body),
    /// https-get, https-post, or sdk (what the official v2 SDK sends: HTTPS,
    /// GET, HmacSHA1, RequestClient). The ceiling runs over the same
    /// transport.
    #[arg(long, default_value = "http-get", value_parser = parse_shape)]
    shape: Shape,
    /// Also measure moto_server (PyPI `moto[server]`), started by the bench
    /// from this executable: CreateVpnConnection and DescribeVpnConnections
    /// by id, with ratios to vpcd's (d) and (b).
    #[arg(long)]
    moto: Option<PathBuf>,
    /// strongswan: recorded add/establish/delete cycles per tunnel count.
    #[arg(long, default_value_t = 20)]
    repeats: usize,
}

fn parse_shape(s: &str) -> Result<Shape, String> {
    Shape::parse(s).ok_or_else(|| {
        format!("unknown shape {s:?}: http-get, http-post, https-get, https-post or sdk")
    })
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
                format!(
                    "unknown scenario {s:?}: all, ceiling, describe, badsig, list, add, cycle \
                     or strongswan"
                )
            })
        })
        .collect()
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let strongswan = cli.scenario.split(',').any(|s| s == swan::NAME);
    anyhow::ensure!(
        !strongswan || cli.scenario == swan::NAME,
        "{} runs on its own (its own vpcd, test bed and tunnel counts)",
        swan::NAME
    );
    let wanted = if strongswan {
        Vec::new()
    } else {
        scenarios(&cli.scenario)?
    };
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
    if !strongswan {
        for &t in &cli.tunnels {
            anyhow::ensure!(
                (vpcd_bench::fixtures::GATEWAYS * 20..=1_000_000).contains(&t),
                "--tunnels {t}: between {} (a full page on every gateway) and 1000000",
                vpcd_bench::fixtures::GATEWAYS * 20
            );
        }
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
    if strongswan {
        return swan::run(&cli, &bin, &engines).await;
    }

    print_header(&bin, &[]);
    println!(
        "- {} clients, {} s per scenario and per ceiling run before it; poll interval {} ms; request shape {}\n",
        cli.clients, cli.duration, cli.poll_ms, cli.shape.name()
    );

    let mut reports = Vec::new();
    for &engine in &engines {
        if !db::available(engine).await {
            continue;
        }
        // Every tunnel count is stored and served at once, then each
        // scenario runs on one right after the other: the p99s compared
        // across tunnel counts are measured under the same machine load.
        let mut runs = Vec::new();
        for &tunnels in &cli.tunnels {
            match Run::prepare(&cli, &bin, engine, tunnels).await {
                Ok(Some(r)) => runs.push(r),
                Ok(None) => break,
                Err(e) => {
                    for r in runs {
                        r.abandon(&cli).await;
                    }
                    return Err(e.context(format!("{tunnels} tunnels on {}", engine.name())));
                }
            }
        }
        if let Err(e) = measure(&cli, &mut runs, &wanted).await {
            for r in runs {
                r.abandon(&cli).await;
            }
            return Err(e);
        }
        for r in runs {
            let report = r.finish(&cli).await?;
            println!("{}", report::run_table(&report));
            reports.push(report);
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
    if let Some(bin) = &cli.moto {
        println!("{}", side_by_side(&cli, bin, &reports).await?);
    }
    if let Some(path) = &cli.json {
        std::fs::write(path, serde_json::to_vec_pretty(&reports)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The report's first lines: the command, the machine, the vpcd binary and
/// how it is started (`extra`: flags after the common ones).
fn print_header(bin: &std::path::Path, extra: &[String]) {
    println!(
        "## vpcd-bench {}\n",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    );
    println!("- machine: {}", procfs::machine());
    println!("- vpcd: {}", bin.display());
    println!(
        "- vpcd {}",
        vpcd::command_line(std::path::Path::new("<tmp>"), None, extra).join(" ")
    );
}

/// The requests' side of `server` in `shape` (HTTPS trusting the data
/// directory's own certificate).
fn api(
    shape: Shape,
    server: &Vpcd,
    dir: &std::path::Path,
    creds: client::Credentials,
) -> anyhow::Result<Arc<Api>> {
    Ok(if shape.https() {
        let tls = client::tls_trusting(&dir.join("tls").join("cert.pem"))?;
        Api::new(server.https_addr, creds, shape, Some(tls))
    } else {
        Api::new(server.addr, creds, shape, None)
    })
}

/// One database and tunnel count: its data directory, database and
/// running vpcd, and the figures measured on it so far.
struct Run {
    dir: tempfile::TempDir,
    database: Database,
    engine: Engine,
    tunnels: usize,
    server: Vpcd,
    ctx: Arc<Ctx>,
    db_bytes: u64,
    settle: Duration,
    rss_settled: u64,
    idle_cores: Option<f64>,
    pairs: Vec<(Phase, Option<Phase>)>,
}

impl Run {
    /// A fresh data directory and database, the tunnels stored, vpcd
    /// started on them and idle. `None` when this vpcd cannot use the
    /// database (reported, not an error).
    async fn prepare(
        cli: &Cli,
        bin: &std::path::Path,
        engine: Engine,
        tunnels: usize,
    ) -> anyhow::Result<Option<Run>> {
        let dir = tempfile::Builder::new().prefix("vpcd-bench-").tempdir()?;
        let database = Database::create(engine, dir.path()).await?;
        match Run::start(cli, bin, engine, tunnels, dir.path(), &database).await {
            Ok(Some(parts)) => Ok(Some(Run {
                dir,
                database,
                engine,
                tunnels,
                server: parts.0,
                ctx: parts.1,
                db_bytes: parts.2,
                settle: parts.3,
                rss_settled: parts.4,
                idle_cores: parts.5,
                pairs: Vec::new(),
            })),
            other => {
                if let Err(e) = database.drop_db().await {
                    eprintln!("dropping the benchmark database failed: {e:#}");
                }
                other.map(|_| None)
            }
        }
    }

    async fn start(
        cli: &Cli,
        bin: &std::path::Path,
        engine: Engine,
        tunnels: usize,
        dir: &std::path::Path,
        database: &Database,
    ) -> anyhow::Result<Option<(Vpcd, Arc<Ctx>, u64, Duration, u64, Option<f64>)>> {
        let name = engine.name();
        eprintln!("[{name} / {tunnels}] first start (creates the account)");
        let first = match Vpcd::start(bin, dir, database.serve_flag(), &[]).await {
            Ok(v) => v,
            Err(e) if engine == Engine::Postgres => {
                println!("PostgreSQL skipped: this vpcd cannot serve it yet: {e:#}\n");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        first.stop().await?;
        let (creds, store, scope) = load::open_account(dir, database).await?;

        eprintln!("[{name} / {tunnels}] storing {tunnels} tunnels through the store");
        let layout = load::layout(store.as_ref(), &scope).await?;
        let before = database.conn_bytes().await?;
        let stored = load::import(store.as_ref(), &scope, &layout, tunnels).await?;
        database.analyze().await?;
        let after = database.conn_bytes().await?;
        // For SQLite the growth of the file; PostgreSQL's figure is the
        // connection table's own size, which needs no baseline.
        let db_bytes = match engine {
            Engine::Sqlite => after.saturating_sub(before),
            Engine::Postgres => after,
        };

        eprintln!("[{name} / {tunnels}] starting vpcd");
        let mut server = Vpcd::start(bin, dir, database.serve_flag(), &[]).await?;
        let settle = server.settle(Duration::from_secs(300)).await?;
        let rss_settled = procfs::status_kb(server.pid, "VmRSS")?;
        let idle_cores = if cli.idle_secs > 0 {
            let c0 = procfs::cpu_secs(server.pid)?;
            tokio::time::sleep(Duration::from_secs(cli.idle_secs)).await;
            Some((procfs::cpu_secs(server.pid)? - c0) / cli.idle_secs as f64)
        } else {
            None
        };
        let api = api(cli.shape, &server, dir, creds)?;
        let ctx = Arc::new(Ctx {
            api,
            stored: Arc::new(stored),
            tag: format!("add{:08x}", rand::random::<u32>()),
            poll_interval: Duration::from_millis(cli.poll_ms),
            seq: AtomicU64::new(0),
            store,
            scope,
            engine,
        });
        scenario::verify(&ctx)
            .await
            .context("checking the answers")?;
        Ok(Some((
            server,
            ctx,
            db_bytes,
            settle,
            rss_settled,
            idle_cores,
        )))
    }

    /// Stop vpcd, drop the database, and report.
    async fn finish(mut self, cli: &Cli) -> anyhow::Result<RunReport> {
        anyhow::ensure!(
            self.server.alive(),
            "vpcd died during the run ({} / {})",
            self.engine.name(),
            self.tunnels
        );
        let rss_peak = procfs::status_kb(self.server.pid, "VmHWM")?;
        let ready = self.server.ready_after;
        self.server.stop().await?;
        let report = RunReport {
            database: self.engine.name(),
            tunnels: self.tunnels,
            import_s: self.ctx.stored.import_time.as_secs_f64(),
            db_bytes_per_tunnel: self.db_bytes as f64 / self.tunnels as f64,
            vpcd_ready_s: ready.as_secs_f64(),
            vpcd_settle_s: self.settle.as_secs_f64(),
            rss_settled: self.rss_settled,
            rss_peak,
            idle_cores: self.idle_cores,
            pairs: self.pairs,
        };
        if cli.keep_data {
            println!("data directory kept: {}\n", self.dir.keep().display());
        } else {
            self.database.drop_db().await?;
        }
        Ok(report)
    }

    /// On an error path: stop vpcd (by dropping it) and drop the database.
    async fn abandon(self, cli: &Cli) {
        drop(self.server);
        if !cli.keep_data {
            if let Err(e) = self.database.drop_db().await {
                eprintln!("dropping the benchmark database failed: {e:#}");
            }
        }
    }
}

/// Every scenario, each right after a ceiling run on the same server, and
/// each on every run (tunnel count) before the next scenario.
async fn measure(cli: &Cli, runs: &mut [Run], wanted: &[Scenario]) -> anyhow::Result<()> {
    let duration = Duration::from_secs(cli.duration);
    // Warm up each server (and the page cache) without recording anything.
    for r in runs.iter() {
        scenario::run(
            &r.ctx,
            Scenario::Ceiling,
            cli.clients,
            Duration::from_secs(1),
            r.server.pid,
        )
        .await?;
    }
    // (e) before (d): the cycles leave the tunnel count as it was, the adds
    // grow it.
    let mut order: Vec<Scenario> = wanted.to_vec();
    order.sort_by_key(|s| match s {
        Scenario::Add => 10,
        other => *other as u8,
    });
    let started = Instant::now();
    for &s in &order {
        for r in runs.iter_mut() {
            let name = r.engine.name();
            eprintln!("[{name} / {}] {} ...", r.tunnels, s.title());
            let pid = r.server.pid;
            let base = scenario::run(&r.ctx, Scenario::Ceiling, cli.clients, duration, pid).await?;
            if s == Scenario::Ceiling {
                r.pairs.push((base, None));
                continue;
            }
            let p = scenario::run(&r.ctx, s, cli.clients, duration, pid).await?;
            eprintln!(
                "    {:.0} req/s vs ceiling {:.0} ({:.1}%), p99 {} ms, {} errors",
                p.rps(),
                base.rps(),
                100.0 * p.rps() / base.rps(),
                vpcd_bench::stats::ms(p.latency.p99_us),
                p.errors
            );
            r.pairs.push((base, Some(p)));
        }
    }
    eprintln!("scenarios took {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// moto_server measured after vpcd on the same machine, and vpcd's (d) and
/// (b) as multiples of moto's nearest operations.
async fn side_by_side(
    cli: &Cli,
    bin: &std::path::Path,
    reports: &[RunReport],
) -> anyhow::Result<String> {
    let dir = tempfile::Builder::new()
        .prefix("vpcd-bench-moto-")
        .tempdir()?;
    eprintln!(
        "[moto] starting {} and storing {} connections",
        bin.display(),
        moto::STORED
    );
    let m = moto::Moto::start(bin, dir.path()).await?;
    let duration = Duration::from_secs(cli.duration);
    let measured = async {
        eprintln!("[moto] CreateVpnConnection ...");
        let create = m.measure(true, cli.clients, duration).await?;
        eprintln!("[moto] DescribeVpnConnections by id ...");
        let describe = m.measure(false, cli.clients, duration).await?;
        anyhow::Ok((create, describe))
    }
    .await;
    m.stop();
    let (create, describe) = measured?;
    let mut out = format!(
        "### moto side by side (moto_server, {} connections stored; {} clients, {} s each)\n\n\
         | operation | req/s | p50 / p99 ms | errors |\n|---|---:|---|---:|\n",
        moto::STORED,
        cli.clients,
        cli.duration
    );
    for p in [&create, &describe] {
        out += &format!(
            "| moto {} | {:.0} | {} / {} | {}{} |\n",
            p.operation,
            p.rps(),
            vpcd_bench::stats::ms(p.latency.p50_us),
            vpcd_bench::stats::ms(p.latency.p99_us),
            p.errors,
            p.first_error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        );
    }
    out +=
        "\n| vpcd run | scenario | req/s | x moto | % of its ceiling |\n|---|---|---:|---:|---:|\n";
    for r in reports {
        for (base, p) in &r.pairs {
            let Some(p) = p else { continue };
            let moto = match p.scenario {
                Scenario::Add => &create,
                Scenario::DescribeById => &describe,
                _ => continue,
            };
            out += &format!(
                "| {} / {} | {} | {:.0} | {:.1}x | {:.1}% |\n",
                r.database,
                r.tunnels,
                p.scenario.title(),
                p.rps(),
                p.rps() / moto.rps().max(f64::MIN_POSITIVE),
                100.0 * p.rps() / base.rps()
            );
        }
    }
    Ok(out)
}
