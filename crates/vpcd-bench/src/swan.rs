//! Scenario `strongswan`: AddVpnConnEx through vpcd's strongSwan driver to a
//! real charon, timed from the answer to the tunnel established.
//!
//! Each run (one database, N tunnels on the gateway) has its own test bed,
//! the one the end-to-end tests use (`vpcd_dataplane::testbed`: two network
//! namespaces joined by a veth pair living inside them, documentation
//! addresses, a charon in each), and its own vpcd driving the "cloud"
//! charon as its gateway node over VICI. N-1 background tunnels to peers
//! that do not exist are stored through the store with vpcd stopped; vpcd's
//! start-up reconciliation loads them into the charon, and measuring starts
//! once the charon lists every one of them.
//!
//! The "peer" charon plays the customer. It is loaded once with the
//! strongSwan file vpcd hands out for the measured tunnel's settings (the
//! first, unrecorded cycle checks it against GetVpnConnConfig), made
//! answer-only: every measured tunnel is then one the gateway initiated when
//! vpcd loaded it, with no retry timing of the peer's in the figure. One
//! cycle: AddVpnConnEx; from its answer, poll every `--poll-ms` the task
//! (through the store, as scenario (d)), DescribeVpnConn's `netStatus` (over
//! the API) and the peer charon's SAs (VICI `list-sas`) until the task
//! succeeded, `netStatus` is `available`, and the peer has an established
//! IKE SA with an installed CHILD SA; then DeleteVpnConn, its task, and the
//! peer's SAs gone. Cycles alternate between the runs, so every tunnel count
//! is measured under the same machine load.
//!
//! Everything is removed on success, on error and on SIGINT/SIGTERM: vpcd
//! and the charons are stopped by PID, the namespaces deleted (the test
//! bed's teardown), a PostgreSQL database dropped.

use std::future::Future;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use tokio::signal::unix::{signal, Signal, SignalKind};
use vpcd_bench::fixtures;
use vpcd_bench::stats::{micros, Summary};
use vpcd_dataplane::peer_config;
use vpcd_dataplane::strongswan::{IkeSaInfo, StrongSwanDriver};
use vpcd_dataplane::testbed::{self, Side, Testbed, TestbedConfig};
use vpcd_dataplane::VpnDriver;
use vpcd_store::{Scope, Store};
use vpcd_types::{TaskId, TaskStatus, TunnelSpec, VpnConnId};

use crate::client::{parse_ok, Api, Conn};
use crate::db::{self, Database, Engine};
use crate::report::{self, SwanReport};
use crate::vpcd::Vpcd;
use crate::{load, Cli};
use vpcd_bench::procfs;

/// The scenario's name on the command line.
pub(crate) const NAME: &str = "strongswan";

/// The measured tunnel: the VPC's range (the test bed's inner cloud
/// addresses are in it) and the customer's.
const VPC_CIDR: &str = "10.100.0.0/16";
const IDC_CIDR: &str = "10.200.0.0/24";
const PSK: &str = "bench-psk-strongswan";
/// The name of the peer's connection (any valid id: the peer's file names
/// its connection after the tunnel, which does not exist yet when it is
/// loaded).
const PEER_CONN: &str = "vpnx-bnchpeer";

/// How long a cycle may take to establish its tunnel, and to remove it.
const CYCLE_LIMIT: Duration = Duration::from_secs(60);
/// Timed VICI `list-conns` on the gateway charon once it is loaded.
const LIST_CONNS_SAMPLES: usize = 9;
/// How long vpcd may take to load the background tunnels into the charon.
const LOAD_LIMIT: Duration = Duration::from_secs(900);

/// SIGINT and SIGTERM, registered once for the whole scenario, so that a
/// signal arriving between two steps is not lost: the steps end, and the
/// clean-up runs.
struct Interrupt {
    int: Signal,
    term: Signal,
}

impl Interrupt {
    fn new() -> anyhow::Result<Interrupt> {
        Ok(Interrupt {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    /// `step`, unless a signal comes first.
    async fn guard<T>(
        &mut self,
        step: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        tokio::select! {
            r = step => r,
            _ = self.int.recv() => bail!("interrupted (SIGINT)"),
            _ = self.term.recv() => bail!("interrupted (SIGTERM)"),
        }
    }
}

/// One database and tunnel count: its test bed, vpcd, and what was measured.
struct SwanRun {
    engine: Engine,
    tunnels: usize,
    // Fields drop in this order: vpcd before the charon it drives, the test
    // bed (charons, namespaces) before the directory.
    server: Vpcd,
    tb: Testbed,
    dir: tempfile::TempDir,
    database: Option<Database>,
    api: Arc<Api>,
    conn: Conn,
    store: Arc<dyn Store>,
    scope: Scope,
    peer: StrongSwanDriver,
    vpc: String,
    gw: String,
    user_gw: String,
    gw_addr: IpAddr,
    peer_addr: IpAddr,
    tag: String,
    seq: u64,
    loaded_after: Duration,
    /// VICI `list-conns` on the gateway charon, from this process.
    list_conns: Summary,
    samples: Vec<Sample>,
    /// vpcd's and the gateway charon's CPU seconds when the recorded cycles
    /// began, and the 1-minute load then.
    cpu0: (f64, f64),
    load1: f64,
    /// Their CPU use over the recorded cycles, in cores.
    cores: (f64, f64),
    /// ...and while no cycle ran (`--idle-secs`).
    idle_cores: Option<(f64, f64)>,
}

/// One measured cycle, in microseconds from the AddVpnConnEx answer (the
/// answer itself from the request).
#[derive(Debug, Clone, Copy)]
struct Sample {
    answer: u64,
    task: u64,
    net: u64,
    peer: u64,
}

/// The measured tunnel's settings as the bench sends them, named `name`:
/// what vpcd stores for the AddVpnConnEx of [`add_params`].
fn measured_spec(name: &str, gw: IpAddr, peer: IpAddr) -> anyhow::Result<TunnelSpec> {
    Ok(TunnelSpec {
        name: name.parse().context("tunnel id")?,
        local_addr: gw,
        remote_addr: peer,
        settings: fixtures::conn_settings(VPC_CIDR, IDC_CIDR, gw, peer, PSK),
    })
}

/// The peer's strongSwan file for the measured tunnel, as vpcd hands it out.
fn peer_file(name: &str, gw: IpAddr, peer: IpAddr) -> anyhow::Result<String> {
    let vendor = peer_config::vendor("strongswan").context("no strongSwan vendor")?;
    peer_config::render(vendor, &measured_spec(name, gw, peer)?, None)
        .map_err(|e| anyhow::anyhow!("rendering the peer's file: {e}"))
}

/// The handed-out swanctl.conf made answer-only: every child neither
/// initiates on load nor re-initiates after a close or a dead peer. Each of
/// the three actions must appear once per child as vpcd writes it.
fn answer_only(conf: &str) -> anyhow::Result<String> {
    const SWAPS: [(&str, &str); 3] = [
        ("start_action = start", "start_action = none"),
        ("close_action = restart", "close_action = none"),
        ("dpd_action = restart", "dpd_action = clear"),
    ];
    let mut counts = [0usize; 3];
    let mut out = String::with_capacity(conf.len());
    for line in conf.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        match SWAPS.iter().position(|(from, _)| trimmed == *from) {
            Some(i) => {
                counts[i] += 1;
                out.push_str(indent);
                out.push_str(SWAPS[i].1);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    let children = conf
        .lines()
        .filter(|l| l.trim_start().starts_with("start_action ="))
        .count();
    anyhow::ensure!(
        children > 0 && counts.iter().all(|&c| c == children),
        "the peer's file has {children} children but {counts:?} actions to change"
    );
    Ok(out)
}

/// Whether `sas` holds an established IKE SA with an installed CHILD SA.
fn installed(sas: &[IkeSaInfo]) -> bool {
    sas.iter().any(|ike| {
        ike.state == "ESTABLISHED" && ike.children.iter().any(|c| c.state == "INSTALLED")
    })
}

/// The AddVpnConnEx of the measured tunnel (the fixtures' worked example).
fn add_params(vpc: &str, gw: &str, user_gw: &str, name: &str) -> Vec<(String, String)> {
    fixtures::add_conn_params(vpc, gw, user_gw, name, IDC_CIDR, PSK)
}

fn kv(k: &str, v: impl ToString) -> (String, String) {
    (k.to_owned(), v.to_string())
}

/// Call `check` every `every` until it says yes; when it did (as observed).
async fn poll_until(
    every: Duration,
    deadline: Instant,
    what: &str,
    mut check: impl AsyncFnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<Instant> {
    loop {
        if check().await? {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!("{what}: not within {CYCLE_LIMIT:?}");
        }
        tokio::time::sleep(every).await;
    }
}

/// Whether the task succeeded (an error if it failed).
async fn task_done(store: &dyn Store, scope: &Scope, task: TaskId) -> anyhow::Result<bool> {
    let t = store
        .get_task(scope, task)
        .await?
        .with_context(|| format!("task {task} is not in the database"))?;
    match t.status {
        TaskStatus::Success => Ok(true),
        TaskStatus::Running => Ok(false),
        TaskStatus::Failed => bail!("task {task} failed: {:?}", t.error),
    }
}

/// Whether DescribeVpnConn says the tunnel is `available`.
async fn net_available(api: &Api, conn: &mut Conn, id: &VpnConnId) -> anyhow::Result<bool> {
    let req = api.signed("DescribeVpnConn", &[kv("vpnConnId", id)]);
    let v = parse_ok(&conn.send(&req).await?).map_err(anyhow::Error::msg)?;
    Ok(v["data"][0]["netStatus"] == "available")
}

/// Send a signed request and return its `data.taskId`.
async fn send_task(
    api: &Api,
    conn: &mut Conn,
    action: &str,
    params: &[(String, String)],
) -> anyhow::Result<(TaskId, Instant)> {
    let req = api.signed(action, params);
    let body = conn.send(&req).await?;
    let answered = Instant::now();
    let v = parse_ok(&body)
        .map_err(anyhow::Error::msg)
        .with_context(|| action.to_owned())?;
    let task = v["data"]["taskId"]
        .as_i64()
        .with_context(|| format!("{action}: no data.taskId"))?;
    Ok((TaskId::new(task), answered))
}

/// What [`SwanRun::start`] builds inside a test bed.
struct Parts {
    server: Vpcd,
    api: Arc<Api>,
    conn: Conn,
    store: Arc<dyn Store>,
    scope: Scope,
    vpc: String,
    gw: String,
    user_gw: String,
    loaded_after: Duration,
    list_conns: Summary,
}

impl SwanRun {
    /// A test bed, a database, vpcd started on it with the background
    /// tunnels loaded into the gateway's charon, and the peer configured.
    /// On an error or a signal, whatever was made is removed.
    async fn prepare(
        cli: &Cli,
        bin: &Path,
        engine: Engine,
        tunnels: usize,
        intr: &mut Interrupt,
    ) -> anyhow::Result<SwanRun> {
        let dir = tempfile::Builder::new()
            .prefix("vpcd-bench-swan-")
            .tempdir()?;
        eprintln!(
            "[{} / {tunnels}] test bed: two namespaces, a charon in each",
            engine.name()
        );
        let tb = Testbed::start(TestbedConfig::default())?;
        let peer = StrongSwanDriver::new(&tb.vici_uri(Side::Peer))?;
        let (gw_addr, peer_addr) = bed_addresses(&tb);
        let database = Database::create(engine, dir.path()).await?;
        // The database outlives the guarded step, so that a PostgreSQL one
        // is dropped whatever ends it.
        let started = intr
            .guard(Self::start(
                cli,
                bin,
                engine,
                tunnels,
                &tb,
                dir.path(),
                &database,
            ))
            .await;
        let parts = match started {
            Ok(p) => p,
            Err(e) => {
                if let Err(d) = database.drop_db().await {
                    eprintln!("dropping the benchmark database failed: {d:#}");
                }
                return Err(e);
            }
        };
        Ok(SwanRun {
            engine,
            tunnels,
            server: parts.server,
            tb,
            dir,
            database: Some(database),
            api: parts.api,
            conn: parts.conn,
            store: parts.store,
            scope: parts.scope,
            peer,
            vpc: parts.vpc,
            gw: parts.gw,
            user_gw: parts.user_gw,
            gw_addr,
            peer_addr,
            tag: format!("swan{:08x}", rand::random::<u32>()),
            seq: 0,
            loaded_after: parts.loaded_after,
            list_conns: parts.list_conns,
            samples: Vec::new(),
            cpu0: (0.0, 0.0),
            load1: f64::NAN,
            cores: (f64::NAN, f64::NAN),
            idle_cores: None,
        })
    }

    async fn start(
        cli: &Cli,
        bin: &Path,
        engine: Engine,
        tunnels: usize,
        tb: &Testbed,
        dir: &Path,
        database: &Database,
    ) -> anyhow::Result<Parts> {
        let name = engine.name();
        let vici = tb.vici_uri(Side::Cloud);
        let (gw_addr, peer_addr) = bed_addresses(tb);
        let node_flags: Vec<String> = vec![
            "--charon".into(),
            vici.clone(),
            "--public-ip".into(),
            gw_addr.to_string(),
        ];
        eprintln!("[{name} / {tunnels}] first start (creates the account, registers the node)");
        Vpcd::start(bin, dir, database.serve_flag(), &node_flags)
            .await?
            .stop()
            .await?;
        let (creds, store, scope) = load::open_account(dir, database).await?;
        let node = store
            .list_gateway_nodes()
            .await?
            .into_iter()
            .find(|n| n.vici == vici)
            .context("vpcd did not register the gateway node")?;
        let background = tunnels - 1;
        eprintln!("[{name} / {tunnels}] storing {background} background tunnels through the store");
        let layout = load::node_layout(store.as_ref(), &scope, node.id, VPC_CIDR).await?;
        let peer_gw = load::create_user_gw(store.as_ref(), &scope, "bench-peer", peer_addr).await?;
        let stored = load::import(store.as_ref(), &scope, &layout, background).await?;
        database.analyze().await?;
        let gw = stored.gws.first().context("no gateway stored")?;

        eprintln!("[{name} / {tunnels}] starting vpcd; waiting until the charon has every background tunnel");
        let started = Instant::now();
        let mut server = Vpcd::start(bin, dir, database.serve_flag(), &node_flags).await?;
        let charon = StrongSwanDriver::new(&vici)?;
        loop {
            let loaded = charon.loaded().await?.len();
            if loaded >= background {
                anyhow::ensure!(
                    loaded == background,
                    "the charon has {loaded} tunnels loaded, {background} stored"
                );
                break;
            }
            anyhow::ensure!(server.alive(), "vpcd exited while loading the tunnels");
            anyhow::ensure!(
                started.elapsed() < LOAD_LIMIT,
                "{loaded} of {background} tunnels loaded after {LOAD_LIMIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let loaded_after = started.elapsed();
        server.settle(Duration::from_secs(300)).await?;
        // What every net-status snapshot of vpcd's asks the charon for.
        let mut list = Vec::new();
        for _ in 0..LIST_CONNS_SAMPLES {
            let t0 = Instant::now();
            charon.loaded().await?;
            list.push(micros(t0.elapsed()));
        }

        let conf = answer_only(&peer_file(PEER_CONN, gw_addr, peer_addr)?)?;
        tb.load_swanctl(Side::Peer, &conf)?;
        let api = crate::api(cli.shape, &server, dir, creds)?;
        let conn = api.connect().await?;
        Ok(Parts {
            server,
            api,
            conn,
            store,
            scope,
            vpc: gw.vpc_un_id.clone(),
            gw: gw.un_id.clone(),
            user_gw: peer_gw.un_id.to_string(),
            loaded_after,
            list_conns: Summary::of(&mut list),
        })
    }

    /// One cycle; `check_file`: also compare the peer's file with what
    /// GetVpnConnConfig hands out for the new tunnel.
    async fn cycle(&mut self, poll: Duration, check_file: bool) -> anyhow::Result<Sample> {
        let SwanRun {
            api,
            conn,
            store,
            scope,
            peer,
            vpc,
            gw,
            user_gw,
            gw_addr,
            peer_addr,
            tag,
            seq,
            ..
        } = self;
        anyhow::ensure!(
            peer.list_sas().await?.is_empty(),
            "the peer has SAs before the cycle"
        );
        *seq += 1;
        let name = format!("{tag}-{seq}");
        let params = add_params(vpc, gw, user_gw, &name);
        let sent = Instant::now();
        let (task, answered) = send_task(api, conn, "AddVpnConnEx", &params).await?;
        let id = store
            .get_task(scope, task)
            .await?
            .context("the task is not in the database")?
            .conn_un_id;
        let deadline = answered + CYCLE_LIMIT;
        let store = store.as_ref();
        let (task_at, net_at, peer_at) = tokio::join!(
            poll_until(poll, deadline, "task success", async || {
                task_done(store, scope, task).await
            }),
            poll_until(poll, deadline, "netStatus available", async || {
                net_available(api, conn, &id).await
            }),
            poll_until(
                poll,
                deadline,
                "the peer's CHILD SA installed",
                async || { Ok(installed(&peer.list_sas().await?)) }
            ),
        );
        let since = |at: anyhow::Result<Instant>| -> anyhow::Result<u64> {
            Ok(micros(at?.saturating_duration_since(answered)))
        };
        let sample = Sample {
            answer: micros(answered - sent),
            task: since(task_at)?,
            net: since(net_at)?,
            peer: since(peer_at)?,
        };
        if check_file {
            let req = api.signed(
                "GetVpnConnConfig",
                &[kv("vpnConnId", &id), kv("vendorname", "strongSwan")],
            );
            let v = parse_ok(&conn.send(&req).await?).map_err(anyhow::Error::msg)?;
            let handed = v["data"]["configFileInfo"].as_str().unwrap_or_default();
            let ours = peer_file(id.as_str(), *gw_addr, *peer_addr)?;
            // The file carries the key: name the line, never show it.
            if let Some(n) = handed.lines().zip(ours.lines()).position(|(a, b)| a != b) {
                bail!(
                    "the peer's file differs from GetVpnConnConfig's at line {}",
                    n + 1
                );
            }
            anyhow::ensure!(
                handed.lines().count() == ours.lines().count(),
                "the peer's file and GetVpnConnConfig's differ in length"
            );
        }

        let delete = [kv("vpcId", vpc), kv("vpnGwId", gw), kv("vpnConnId", &id)];
        let (task, answered) = send_task(api, conn, "DeleteVpnConn", &delete).await?;
        let deadline = answered + CYCLE_LIMIT;
        poll_until(poll, deadline, "delete task success", async || {
            task_done(store, scope, task).await
        })
        .await?;
        poll_until(poll, deadline, "the peer's SAs gone", async || {
            Ok(peer.list_sas().await?.is_empty())
        })
        .await?;
        Ok(sample)
    }

    /// vpcd's and the gateway charon's CPU seconds so far.
    fn cpu(&self) -> anyhow::Result<(f64, f64)> {
        let charon = self
            .tb
            .charon_pid(Side::Cloud)
            .context("the gateway charon is not running")?;
        Ok((
            procfs::cpu_secs(self.server.pid)?,
            procfs::cpu_secs(charon)?,
        ))
    }

    /// Stop vpcd, tear the test bed down, drop the database; the figures.
    async fn close(mut self, keep_data: bool) -> anyhow::Result<SwanReport> {
        let alive = self.server.alive();
        let stopped = self.server.stop().await;
        self.tb.teardown();
        let dropped = match self.database.take() {
            Some(db) if !keep_data => db.drop_db().await,
            _ => Ok(()),
        };
        if keep_data {
            println!("data directory kept: {}\n", self.dir.keep().display());
        }
        anyhow::ensure!(alive, "vpcd died during the run");
        stopped?;
        dropped?;
        let col = |f: fn(&Sample) -> u64| {
            let mut v: Vec<u64> = self.samples.iter().map(f).collect();
            Summary::of(&mut v)
        };
        Ok(SwanReport {
            database: self.engine.name(),
            tunnels: self.tunnels,
            background_loaded_s: self.loaded_after.as_secs_f64(),
            list_conns: self.list_conns,
            add_answer: col(|s| s.answer),
            to_task_success: col(|s| s.task),
            to_net_available: col(|s| s.net),
            to_peer_installed: col(|s| s.peer),
            vpcd_cores: self.cores.0,
            charon_cores: self.cores.1,
            idle_cores: self.idle_cores,
            load1: self.load1,
        })
    }
}

/// The gateway's and the peer's public addresses in the test bed.
fn bed_addresses(tb: &Testbed) -> (IpAddr, IpAddr) {
    let c = tb.config();
    (IpAddr::V4(c.cloud_public[0]), IpAddr::V4(c.peer_public[0]))
}

/// Run the scenario for every database and tunnel count of `cli`.
pub(crate) async fn run(cli: &Cli, bin: &Path, engines: &[Engine]) -> anyhow::Result<()> {
    if let Some(why) = testbed::unavailable_reason() {
        bail!(
            "the {NAME} scenario cannot run here: {why} (bash scripts/test.sh installs strongSwan)"
        );
    }
    for &t in &cli.tunnels {
        anyhow::ensure!(
            (1..=100_000).contains(&t),
            "--tunnels {t}: between 1 (the measured tunnel alone) and 100000"
        );
    }
    anyhow::ensure!(cli.repeats > 0, "--repeats must be at least 1");
    let node = [
        "--charon",
        "<the gateway charon>",
        "--public-ip",
        "203.0.113.1",
    ];
    crate::print_header(bin, &node.map(String::from));
    println!(
        "- {} cycles per tunnel count (after one unrecorded), polls every {} ms, request shape {}\n",
        cli.repeats,
        cli.poll_ms,
        cli.shape.name()
    );

    let mut intr = Interrupt::new()?;
    let mut runs: Vec<SwanRun> = Vec::new();
    let outcome = prepare_and_measure(cli, bin, engines, &mut runs, &mut intr).await;
    let mut reports = Vec::new();
    let mut failed = outcome.err();
    for r in runs {
        match r.close(cli.keep_data).await {
            Ok(rep) => reports.push(rep),
            Err(e) => {
                failed.get_or_insert(e);
            }
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    println!("{}", report::swan_table(&reports));
    if let Some(path) = &cli.json {
        std::fs::write(path, serde_json::to_vec_pretty(&reports)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

async fn prepare_and_measure(
    cli: &Cli,
    bin: &Path,
    engines: &[Engine],
    runs: &mut Vec<SwanRun>,
    intr: &mut Interrupt,
) -> anyhow::Result<()> {
    for &engine in engines {
        if !db::available(engine).await {
            continue;
        }
        for &tunnels in &cli.tunnels {
            let r = SwanRun::prepare(cli, bin, engine, tunnels, intr)
                .await
                .with_context(|| format!("{tunnels} tunnels on {}", engine.name()))?;
            runs.push(r);
        }
    }
    let poll = Duration::from_millis(cli.poll_ms);
    for r in runs.iter_mut() {
        eprintln!(
            "[{} / {}] first cycle (unrecorded; checks the peer's file)",
            r.engine.name(),
            r.tunnels
        );
        intr.guard(r.cycle(poll, true)).await?;
    }
    if cli.idle_secs > 0 {
        eprintln!(
            "vpcd's and the charons' CPU while idle, {} s",
            cli.idle_secs
        );
        let before: Vec<(f64, f64)> = runs
            .iter()
            .map(SwanRun::cpu)
            .collect::<anyhow::Result<_>>()?;
        let idle = Duration::from_secs(cli.idle_secs);
        intr.guard(async {
            tokio::time::sleep(idle).await;
            Ok(())
        })
        .await?;
        for (r, (vpcd, charon)) in runs.iter_mut().zip(before) {
            let (v, c) = r.cpu()?;
            let secs = idle.as_secs_f64();
            r.idle_cores = Some(((v - vpcd) / secs, (c - charon) / secs));
            // vpcd closes a connection that sat idle that long.
            r.conn = r.api.connect().await?;
        }
    }
    let started = Instant::now();
    for r in runs.iter_mut() {
        r.cpu0 = r.cpu()?;
        r.load1 = procfs::loadavg1();
    }
    for k in 0..cli.repeats {
        for r in runs.iter_mut() {
            let s = intr.guard(r.cycle(poll, false)).await.with_context(|| {
                format!("cycle {} on {} / {}", k + 1, r.engine.name(), r.tunnels)
            })?;
            eprintln!(
                "[{} / {}] cycle {}: answer -> task {} ms, netStatus available {} ms, peer installed {} ms",
                r.engine.name(),
                r.tunnels,
                k + 1,
                s.task / 1000,
                s.net / 1000,
                s.peer / 1000
            );
            r.samples.push(s);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    for r in runs.iter_mut() {
        let (vpcd, charon) = r.cpu()?;
        r.cores = ((vpcd - r.cpu0.0) / secs, (charon - r.cpu0.1) / secs);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vpcd_dataplane::strongswan::ChildSaInfo;

    fn file() -> String {
        peer_file(
            PEER_CONN,
            "203.0.113.1".parse().unwrap(),
            "198.51.100.1".parse().unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn the_peer_only_answers() {
        let handed = file();
        let ours = answer_only(&handed).unwrap();
        assert!(handed.contains("        start_action = start\n"));
        assert!(ours.contains("        start_action = none\n"));
        assert!(ours.contains("        close_action = none\n"));
        assert!(ours.contains("        dpd_action = clear\n"));
        assert!(!ours.contains("= start\n") && !ours.contains("= restart\n"));
        // Nothing else changes.
        assert_eq!(handed.lines().count(), ours.lines().count());
        let changed = handed
            .lines()
            .zip(ours.lines())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(changed, 3);
        // A file that is not what vpcd writes is refused, not half-changed.
        assert!(
            answer_only(&handed.replace("close_action = restart", "close_action = trap")).is_err()
        );
        assert!(answer_only("connections {}\n").is_err());
    }

    #[test]
    fn the_peer_file_is_the_fixture_tunnel() {
        let f = file();
        assert!(f.contains("local_ts = 10.200.0.0/24"), "{f}");
        assert!(f.contains("remote_ts = 10.100.0.0/16"), "{f}");
        assert!(f.contains("proposals = aes256-md5-modp2048"), "{f}");
        let params = add_params("vpc-1", "vpngw-1", "cgw-1", "n");
        assert!(params.contains(&kv("userGwCidrBlock.0", IDC_CIDR)));
        assert!(params.contains(&kv("preSharedKey", PSK)));
    }

    #[test]
    fn established_means_ike_up_and_a_child_installed() {
        let sa = |ike: &str, child: Option<&str>| IkeSaInfo {
            name: PEER_CONN.parse().unwrap(),
            unique_id: 1,
            state: ike.into(),
            children: child
                .map(|c| ChildSaInfo {
                    name: format!("{PEER_CONN}-1"),
                    unique_id: 1,
                    state: c.into(),
                    spi_in: String::new(),
                    spi_out: String::new(),
                    local_ts: Vec::new(),
                    remote_ts: Vec::new(),
                })
                .into_iter()
                .collect(),
        };
        assert!(!installed(&[]));
        assert!(!installed(&[sa("CONNECTING", None)]));
        assert!(!installed(&[sa("ESTABLISHED", None)]));
        assert!(!installed(&[sa("ESTABLISHED", Some("INSTALLING"))]));
        assert!(installed(&[
            sa("CONNECTING", None),
            sa("ESTABLISHED", Some("INSTALLED"))
        ]));
    }
}
