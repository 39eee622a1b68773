//! The scenarios and the loop that drives them: N clients, each on its own
//! keep-alive connection, sending one request at a time until the deadline.
//!
//! Latency is measured from just before a request is written until its whole
//! answer has been read; signing happens before the clock starts and is
//! accounted separately, as is the generator's CPU time.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::mpsc;
use vpcd_bench::fixtures;
use vpcd_bench::stats::{micros, Summary};
use vpcd_store::{Scope, Store};
use vpcd_types::{TaskId, TaskStatus};

use crate::client::{check_ok, parse_ok, timed, Api, Conn, Prepared};
use crate::db::Engine;
use crate::load::Stored;
use vpcd_bench::procfs;

/// How long the (d) poller keeps waiting for tasks answered in the window.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);
/// How long one add/delete cycle may wait for its task.
const TASK_LIMIT: Duration = Duration::from_secs(60);
/// The page size of scenario (c).
const PAGE: u32 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub(crate) enum Scenario {
    /// (a) `GET /healthz`: the cheapest thing the server answers.
    Ceiling,
    /// (b) DescribeVpnConn with `vpnConnId`.
    DescribeById,
    /// Diagnostic: (b) with a parameter changed after signing. vpcd decodes,
    /// looks the key up and computes the HMAC, then refuses (4100) before
    /// the Nonce write and the query: the protocol's cost without the store.
    BadSignature,
    /// (c) DescribeVpnConn, a page of 20 filtered by `vpnGwId`, at a random
    /// offset.
    ListPage,
    /// (d) AddVpnConnEx.
    Add,
    /// (e) AddVpnConnEx, wait for the task, DeleteVpnConn, wait for the task.
    Cycle,
}

impl Scenario {
    pub(crate) const ALL: [Scenario; 6] = [
        Scenario::Ceiling,
        Scenario::DescribeById,
        Scenario::BadSignature,
        Scenario::ListPage,
        Scenario::Add,
        Scenario::Cycle,
    ];

    pub(crate) fn parse(s: &str) -> Option<Scenario> {
        Scenario::ALL
            .into_iter()
            .find(|sc| s == sc.key() || s == sc.letter())
    }

    pub(crate) fn letter(self) -> &'static str {
        match self {
            Scenario::Ceiling => "a",
            Scenario::DescribeById => "b",
            Scenario::BadSignature => "x",
            Scenario::ListPage => "c",
            Scenario::Add => "d",
            Scenario::Cycle => "e",
        }
    }

    pub(crate) fn key(self) -> &'static str {
        match self {
            Scenario::Ceiling => "ceiling",
            Scenario::DescribeById => "describe",
            Scenario::BadSignature => "badsig",
            Scenario::ListPage => "list",
            Scenario::Add => "add",
            Scenario::Cycle => "cycle",
        }
    }

    pub(crate) fn title(self) -> &'static str {
        match self {
            Scenario::Ceiling => "(a) GET /healthz (ceiling)",
            Scenario::DescribeById => "(b) DescribeVpnConn by id",
            Scenario::BadSignature => "(x) diagnostic: (b) refused at the signature",
            Scenario::ListPage => "(c) DescribeVpnConn, page of 20 by vpnGwId",
            Scenario::Add => "(d) AddVpnConnEx",
            Scenario::Cycle => "(e) AddVpnConnEx+DeleteVpnConn cycle",
        }
    }
}

/// Everything the clients share.
pub(crate) struct Ctx {
    pub(crate) api: Arc<Api>,
    pub(crate) stored: Arc<Stored>,
    /// Makes the names of added tunnels unique across runs on one database.
    pub(crate) tag: String,
    pub(crate) poll_interval: Duration,
    pub(crate) seq: AtomicU64,
    /// The store on vpcd's database, opened by this process: the (d) poller
    /// reads task rows through it.
    pub(crate) store: Arc<dyn Store>,
    pub(crate) scope: Scope,
    pub(crate) engine: Engine,
}

/// The outcome of one scenario run.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Phase {
    pub(crate) scenario: Scenario,
    pub(crate) clients: usize,
    pub(crate) elapsed_s: f64,
    /// Answered requests (for (e) including the task polls).
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    /// Latency of the scenario's requests (for (e): the Add and Delete
    /// answers, not the polls).
    pub(crate) latency: Summary,
    /// Requests that were signed, and the time signing them took.
    pub(crate) signed: u64,
    pub(crate) sign_s: f64,
    pub(crate) gen_cpu_s: f64,
    pub(crate) vpcd_cpu_s: f64,
    /// PostgreSQL's CPU seconds (SQLite's are part of vpcd's).
    pub(crate) db_cpu_s: Option<f64>,
    pub(crate) load1: f64,
    /// (d): from the AddVpnConnEx answer to the task's success.
    pub(crate) task: Option<TaskStats>,
    /// (e): whole cycles.
    pub(crate) cycles: Option<CycleStats>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct TaskStats {
    pub(crate) to_success: Summary,
    pub(crate) failed: u64,
    pub(crate) unfinished: u64,
    pub(crate) polls: u64,
    /// Latency of the poller's own reads (with the poll interval, its
    /// resolution).
    pub(crate) poll_latency: Summary,
}

#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct CycleStats {
    pub(crate) cycles: u64,
    pub(crate) latency: Summary,
    pub(crate) polls: u64,
}

impl Phase {
    pub(crate) fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed_s
    }

    pub(crate) fn cycles_per_s(&self) -> Option<f64> {
        self.cycles
            .as_ref()
            .map(|c| c.cycles as f64 / self.elapsed_s)
    }

    /// Microseconds of signing per signed request.
    pub(crate) fn sign_us(&self) -> f64 {
        if self.signed == 0 {
            0.0
        } else {
            self.sign_s * 1e6 / self.signed as f64
        }
    }

    /// Generator CPU microseconds per answered request (for (d) this
    /// includes the poller's reads of the store).
    pub(crate) fn gen_us_per_req(&self) -> f64 {
        self.gen_cpu_s * 1e6 / self.requests.max(1) as f64
    }
}

/// A tiny xorshift generator: per client, no locking, no syscalls.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, n: usize) -> usize {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x % n.max(1) as u64) as usize
    }
}

#[derive(Default)]
struct ClientOut {
    requests: u64,
    errors: u64,
    first_error: Option<String>,
    lat_us: Vec<u64>,
    signed: u64,
    sign: Duration,
    cycles: u64,
    cycle_us: Vec<u64>,
    polls: u64,
}

impl ClientOut {
    fn error(&mut self, e: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e);
        }
    }

    /// Sign a request, accounting the time.
    fn sign(&mut self, api: &Api, action: &str, params: &[(String, String)]) -> Prepared {
        let (path, t) = timed(|| api.signed(action, params));
        self.signed += 1;
        self.sign += t;
        path
    }
}

fn kv(k: &str, v: impl ToString) -> (String, String) {
    (k.to_owned(), v.to_string())
}

/// The parameters of an AddVpnConnEx on a random gateway.
fn add_params(ctx: &Ctx, rng: &mut Rng) -> Vec<(String, String)> {
    let seq = ctx.seq.fetch_add(1, Ordering::Relaxed) as usize;
    let gws = &ctx.stored.gws;
    let gw = &gws[rng.below(gws.len())];
    let ugw = &ctx.stored.user_gws[rng.below(ctx.stored.user_gws.len())];
    fixtures::add_conn_params(
        &gw.vpc_un_id,
        &gw.un_id,
        ugw,
        &format!("{}-{seq}", ctx.tag),
        &fixtures::idc_cidr(seq),
        &format!("bench-psk-{seq}"),
    )
}

/// The next request of a simple scenario.
fn next_request(ctx: &Ctx, scenario: Scenario, rng: &mut Rng, out: &mut ClientOut) -> Prepared {
    match scenario {
        Scenario::Ceiling => Prepared::get("/healthz"),
        Scenario::DescribeById => {
            let ids = &ctx.stored.conn_ids;
            let id = &ids[rng.below(ids.len())];
            out.sign(&ctx.api, "DescribeVpnConn", &[kv("vpnConnId", id)])
        }
        Scenario::BadSignature => {
            let ids = &ctx.stored.conn_ids;
            let i = rng.below(ids.len());
            let path = out.sign(&ctx.api, "DescribeVpnConn", &[kv("vpnConnId", &ids[i])]);
            // Unified ids all have one length: the request stays the same
            // size and shape, only the signature no longer matches.
            path.replaced(&ids[i], &ids[(i + 1) % ids.len()])
        }
        Scenario::ListPage => {
            let gws = &ctx.stored.gws;
            let gw = &gws[rng.below(gws.len())];
            let last = gw.tunnels.saturating_sub(PAGE) as usize;
            let params = [
                kv("vpnGwId", &gw.un_id),
                kv("offset", rng.below(last + 1)),
                kv("limit", PAGE),
            ];
            out.sign(&ctx.api, "DescribeVpnConn", &params)
        }
        Scenario::Add => {
            let params = add_params(ctx, rng);
            out.sign(&ctx.api, "AddVpnConnEx", &params)
        }
        Scenario::Cycle => unreachable!("cycles have their own loop"),
    }
}

async fn simple_client(
    ctx: Arc<Ctx>,
    scenario: Scenario,
    mut conn: Conn,
    seed: u64,
    deadline: Instant,
    tasks: Option<mpsc::UnboundedSender<(i64, Instant)>>,
) -> ClientOut {
    let mut out = ClientOut::default();
    let mut rng = Rng::new(seed);
    while Instant::now() < deadline {
        let req = next_request(&ctx, scenario, &mut rng, &mut out);
        let t0 = Instant::now();
        let res = conn.send(&req).await;
        let t1 = Instant::now();
        let body = match res {
            Ok(b) => b,
            Err(e) => {
                out.error(format!("{e:#}"));
                match ctx.api.connect().await {
                    Ok(c) => conn = c,
                    Err(_) => break,
                }
                continue;
            }
        };
        out.requests += 1;
        out.lat_us.push(micros(t1 - t0));
        let checked = match (scenario, &tasks) {
            (Scenario::Ceiling, _) => {
                if body.starts_with(br#"{"status":"ok""#) {
                    Ok(())
                } else {
                    Err("healthz did not say ok".to_owned())
                }
            }
            (Scenario::BadSignature, _) => {
                if body.starts_with(br#"{"code":4100,"#) {
                    Ok(())
                } else {
                    Err(format!(
                        "expected code 4100: {}",
                        String::from_utf8_lossy(&body)
                    ))
                }
            }
            (Scenario::Add, Some(tx)) => parse_ok(&body).and_then(|v| {
                let id = v["data"]["taskId"].as_i64().ok_or("no data.taskId")?;
                let _ = tx.send((id, t1));
                Ok(())
            }),
            _ => check_ok(&body),
        };
        if let Err(e) = checked {
            out.error(e);
        }
    }
    out
}

/// Poll one task until it ends. Returns the time it ended (as observed)
/// and its parsed answer.
async fn wait_task(
    ctx: &Ctx,
    conn: &mut Conn,
    out: &mut ClientOut,
    task_id: i64,
) -> Result<(Instant, serde_json::Value), String> {
    let give_up = Instant::now() + TASK_LIMIT;
    loop {
        tokio::time::sleep(ctx.poll_interval).await;
        let path = out.sign(&ctx.api, "DescribeVpcTaskResult", &[kv("taskId", task_id)]);
        let body = conn.send(&path).await.map_err(|e| format!("{e:#}"))?;
        let seen = Instant::now();
        out.polls += 1;
        out.requests += 1;
        let v = parse_ok(&body)?;
        match v["data"]["status"].as_i64() {
            Some(0) => return Ok((seen, v)),
            Some(1) => return Err(format!("task {task_id} failed: {}", v["data"]["output"])),
            _ if Instant::now() > give_up => {
                return Err(format!("task {task_id} still running after {TASK_LIMIT:?}"))
            }
            _ => {}
        }
    }
}

/// Scenario (e): one whole cycle at a time.
async fn cycle_client(ctx: Arc<Ctx>, mut conn: Conn, seed: u64, deadline: Instant) -> ClientOut {
    let mut out = ClientOut::default();
    let mut rng = Rng::new(seed);
    while Instant::now() < deadline {
        match one_cycle(&ctx, &mut conn, &mut rng, &mut out).await {
            Ok(us) => {
                out.cycles += 1;
                out.cycle_us.push(us);
            }
            Err(e) => {
                out.error(e);
                match ctx.api.connect().await {
                    Ok(c) => conn = c,
                    Err(_) => break,
                }
            }
        }
    }
    out
}

async fn one_cycle(
    ctx: &Ctx,
    conn: &mut Conn,
    rng: &mut Rng,
    out: &mut ClientOut,
) -> Result<u64, String> {
    let params = add_params(ctx, rng);
    let path = out.sign(&ctx.api, "AddVpnConnEx", &params);
    let start = Instant::now();
    let body = conn.send(&path).await.map_err(|e| format!("{e:#}"))?;
    out.lat_us.push(micros(start.elapsed()));
    out.requests += 1;
    let v = parse_ok(&body)?;
    let task = v["data"]["taskId"].as_i64().ok_or("no data.taskId")?;
    let (_, done) = wait_task(ctx, conn, out, task).await?;
    let conn_id = done["data"]["output"]["unVpnConnId"]
        .as_str()
        .ok_or("no output.unVpnConnId")?
        .to_owned();

    let delete = [
        params[0].clone(), // vpcId
        params[1].clone(), // vpnGwId
        kv("vpnConnId", conn_id),
    ];
    let path = out.sign(&ctx.api, "DeleteVpnConn", &delete);
    let t0 = Instant::now();
    let body = conn.send(&path).await.map_err(|e| format!("{e:#}"))?;
    out.lat_us.push(micros(t0.elapsed()));
    out.requests += 1;
    let v = parse_ok(&body)?;
    let task = v["data"]["taskId"].as_i64().ok_or("no data.taskId")?;
    let (end, _) = wait_task(ctx, conn, out, task).await?;
    Ok(micros(end - start))
}

/// The single poller of scenario (d). It reads the task rows through the
/// store, from this process, rather than asking DescribeVpcTaskResult: over
/// the API every poll is a signed request with a durable Nonce write queued
/// behind the very writer being measured, and one poll per task could not
/// keep up with the adds (the first version of this benchmark measured its
/// own backlog). Oldest task first, as the engine claims them.
async fn poller(ctx: Arc<Ctx>, mut rx: mpsc::UnboundedReceiver<(i64, Instant)>) -> TaskStats {
    let mut pending: VecDeque<(i64, Instant)> = VecDeque::new();
    let mut to_success = Vec::new();
    let mut poll_lat = Vec::new();
    let (mut failed, mut polls) = (0, 0);
    let mut closed_at: Option<Instant> = None;
    loop {
        loop {
            match rx.try_recv() {
                Ok(t) => pending.push_back(t),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed_at.get_or_insert_with(Instant::now);
                    break;
                }
            }
        }
        let Some(&(task, answered)) = pending.front() else {
            if closed_at.is_some() {
                break;
            }
            match rx.recv().await {
                Some(t) => pending.push_back(t),
                None => break,
            }
            continue;
        };
        if closed_at.is_some_and(|c| c.elapsed() > DRAIN_LIMIT) {
            break;
        }
        let t0 = Instant::now();
        let status = ctx.store.get_task(&ctx.scope, TaskId::new(task)).await;
        let seen = Instant::now();
        polls += 1;
        poll_lat.push(micros(seen - t0));
        match status.map(|t| t.map(|t| t.status)) {
            Ok(Some(TaskStatus::Success)) => {
                to_success.push(micros(seen.saturating_duration_since(answered)));
                pending.pop_front();
            }
            Ok(Some(TaskStatus::Running)) => tokio::time::sleep(ctx.poll_interval).await,
            _ => {
                failed += 1;
                pending.pop_front();
            }
        }
    }
    TaskStats {
        to_success: Summary::of(&mut to_success),
        failed,
        unfinished: pending.len() as u64,
        polls,
        poll_latency: Summary::of(&mut poll_lat),
    }
}

/// Run `scenario` with `clients` clients for `duration`.
pub(crate) async fn run(
    ctx: &Arc<Ctx>,
    scenario: Scenario,
    clients: usize,
    duration: Duration,
    vpcd_pid: u32,
) -> anyhow::Result<Phase> {
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        conns.push(ctx.api.connect().await?);
    }
    let (tx, poll_task) = if scenario == Scenario::Add {
        let (tx, rx) = mpsc::unbounded_channel();
        (Some(tx), Some(tokio::spawn(poller(ctx.clone(), rx))))
    } else {
        (None, None)
    };

    let me = std::process::id();
    let load1 = procfs::loadavg1();
    let pg = ctx.engine == Engine::Postgres;
    let db0 = pg.then(procfs::postgres_cpu_secs);
    let (gen0, vpcd0) = (procfs::cpu_secs(me)?, procfs::cpu_secs(vpcd_pid)?);
    let start = Instant::now();
    let deadline = start + duration;
    let mut set = tokio::task::JoinSet::new();
    for (i, conn) in conns.into_iter().enumerate() {
        let seed = i as u64 + 1 + (scenario as u64) * 1000;
        let ctx = ctx.clone();
        if scenario == Scenario::Cycle {
            set.spawn(cycle_client(ctx, conn, seed, deadline));
        } else {
            set.spawn(simple_client(
                ctx,
                scenario,
                conn,
                seed,
                deadline,
                tx.clone(),
            ));
        }
    }
    drop(tx);
    let outs = set.join_all().await;
    let elapsed = start.elapsed();
    let (gen1, vpcd1) = (procfs::cpu_secs(me)?, procfs::cpu_secs(vpcd_pid)?);
    let db_cpu_s = db0.map(|d0| procfs::postgres_cpu_secs() - d0);
    let task = match poll_task {
        Some(t) => Some(t.await.context("the task poller panicked")?),
        None => None,
    };

    let mut lat = Vec::new();
    let mut cycle_us = Vec::new();
    let mut first_error = None;
    let (mut requests, mut errors, mut signed, mut sign) = (0, 0, 0, Duration::ZERO);
    let (mut cycles, mut polls) = (0, 0);
    for mut o in outs {
        requests += o.requests;
        errors += o.errors;
        signed += o.signed;
        sign += o.sign;
        cycles += o.cycles;
        polls += o.polls;
        lat.append(&mut o.lat_us);
        cycle_us.append(&mut o.cycle_us);
        if first_error.is_none() {
            first_error = o.first_error;
        }
    }
    Ok(Phase {
        scenario,
        clients,
        elapsed_s: elapsed.as_secs_f64(),
        requests,
        errors,
        first_error,
        latency: Summary::of(&mut lat),
        signed,
        sign_s: sign.as_secs_f64(),
        gen_cpu_s: gen1 - gen0,
        vpcd_cpu_s: vpcd1 - vpcd0,
        db_cpu_s,
        load1,
        task,
        cycles: (scenario == Scenario::Cycle).then(|| CycleStats {
            cycles,
            latency: Summary::of(&mut cycle_us),
            polls,
        }),
    })
}

/// One request of each kind, checked in full, before anything is measured:
/// a benchmark of wrong answers measures nothing.
pub(crate) async fn verify(ctx: &Arc<Ctx>) -> anyhow::Result<()> {
    let mut conn = ctx.api.connect().await?;
    let mut out = ClientOut::default();
    let body = conn.get("/healthz").await?;
    anyhow::ensure!(body.starts_with(br#"{"status":"ok""#), "healthz: {body:?}");

    let id = &ctx.stored.conn_ids[ctx.stored.conn_ids.len() / 2];
    let path = out.sign(&ctx.api, "DescribeVpnConn", &[kv("vpnConnId", id)]);
    let v = parse_ok(&conn.send(&path).await?).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        v["totalCount"] == 1 && v["data"][0]["unVpnConnId"] == id.as_str(),
        "DescribeVpnConn by id answered {v}"
    );

    let gw = &ctx.stored.gws[0];
    let offset = gw.tunnels.saturating_sub(PAGE);
    let params = [
        kv("vpnGwId", &gw.un_id),
        kv("offset", offset),
        kv("limit", PAGE),
    ];
    let path = out.sign(&ctx.api, "DescribeVpnConn", &params);
    let v = parse_ok(&conn.send(&path).await?).map_err(anyhow::Error::msg)?;
    let items = v["data"].as_array().map_or(0, Vec::len);
    anyhow::ensure!(
        v["totalCount"] == gw.tunnels && items == PAGE.min(gw.tunnels) as usize,
        "a page of {PAGE} at offset {offset} answered totalCount {} with {items} items",
        v["totalCount"]
    );
    anyhow::ensure!(
        gw.tunnels >= PAGE,
        "every gateway must hold a full page of tunnels (got {})",
        gw.tunnels
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_names() {
        for s in Scenario::ALL {
            assert_eq!(Scenario::parse(s.key()), Some(s));
            assert_eq!(Scenario::parse(s.letter()), Some(s));
        }
        assert_eq!(Scenario::parse("nope"), None);
    }

    #[test]
    fn rng_stays_in_range() {
        let mut r = Rng::new(1);
        assert!((0..1000).all(|_| r.below(7) < 7));
        assert_eq!(r.below(0), 0);
    }
}
