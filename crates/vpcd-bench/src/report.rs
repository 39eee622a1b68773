//! Markdown tables of a run's figures, ready for BENCHMARKS.md, and the
//! issue's targets checked against them.

use std::fmt::Write as _;

use vpcd_bench::stats::{ms, Summary};

use crate::scenario::{Phase, Scenario};

/// One (database, tunnel count) combination.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct RunReport {
    pub(crate) database: &'static str,
    pub(crate) tunnels: usize,
    pub(crate) import_s: f64,
    pub(crate) db_bytes_per_tunnel: f64,
    pub(crate) vpcd_ready_s: f64,
    pub(crate) vpcd_settle_s: f64,
    pub(crate) rss_settled: u64,
    pub(crate) rss_peak: u64,
    /// vpcd's CPU use while idle (`--idle-secs`), in cores.
    pub(crate) idle_cores: Option<f64>,
    /// Each scenario with the ceiling measured just before it.
    pub(crate) pairs: Vec<(Phase, Option<Phase>)>,
}

impl RunReport {
    fn find(&self, s: Scenario) -> Option<&(Phase, Option<Phase>)> {
        self.pairs.iter().find(|(_, p)| {
            p.as_ref()
                .map_or(s == Scenario::Ceiling, |p| p.scenario == s)
        })
    }

    /// The scenario's own run (the ceiling's first run for (a)).
    pub(crate) fn phase(&self, s: Scenario) -> Option<&Phase> {
        self.find(s).map(|(base, p)| p.as_ref().unwrap_or(base))
    }

    /// requests/s of the scenario over the ceiling measured just before it.
    pub(crate) fn ratio(&self, s: Scenario) -> Option<f64> {
        let (base, p) = self.find(s)?;
        Some(p.as_ref().map_or(1.0, |p| p.rps() / base.rps()))
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1024.0 / 1024.0)
}

fn lat(s: &Summary) -> String {
    format!("{} / {} / {}", ms(s.p50_us), ms(s.p99_us), ms(s.max_us))
}

pub(crate) fn run_table(r: &RunReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "#### {} tunnels, {}\n\nimport {:.1} s ({:.0} tunnels/s); {:.0} database bytes per tunnel; \
         vpcd listening after {:.2} s, idle after {:.1} s more; RSS idle {}, peak (VmHWM) {}\n",
        r.tunnels,
        r.database,
        r.import_s,
        r.tunnels as f64 / r.import_s.max(1e-9),
        r.db_bytes_per_tunnel,
        r.vpcd_ready_s,
        r.vpcd_settle_s,
        mib(r.rss_settled),
        mib(r.rss_peak),
    );
    if let Some(c) = r.idle_cores {
        let _ = writeln!(out, "vpcd CPU while idle: {c:.3} cores\n");
    }
    out.push_str(
        "| scenario | req/s | ceiling req/s just before | ratio | p50 / p99 / max ms | errors | \
         vpcd CPU | PostgreSQL CPU | generator CPU | gen µs/req (signing) | load1 |\n\
         |---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for (base, p) in &r.pairs {
        let (ph, ceiling) = match p {
            Some(p) => (p, Some(base)),
            None => (base, None),
        };
        let _ = writeln!(
            out,
            "| {} | {:.0} | {} | {} | {} | {} | {:.2} cores | {} | {:.2} cores | {:.1} ({:.1}) | {:.2} |",
            ph.scenario.title(),
            ph.rps(),
            ceiling.map_or("-".into(), |c| format!("{:.0}", c.rps())),
            ceiling.map_or("1".into(), |c| format!("{:.1}%", 100.0 * ph.rps() / c.rps())),
            lat(&ph.latency),
            ph.errors,
            ph.vpcd_cpu_s / ph.elapsed_s,
            ph.db_cpu_s
                .map_or("-".into(), |d| format!("{:.2} cores", d / ph.elapsed_s)),
            ph.gen_cpu_s / ph.elapsed_s,
            ph.gen_us_per_req(),
            ph.sign_us(),
            ph.load1,
        );
    }
    for (_, p) in &r.pairs {
        let Some(p) = p else { continue };
        if let Some(t) = &p.task {
            let _ = writeln!(
                out,
                "\n(d) answer -> task success (single poller reading the store, {} reads, read p50 {} ms): \
                 p50 / p99 / max {} ms over {} tasks; {} failed, {} unfinished",
                t.polls,
                ms(t.poll_latency.p50_us),
                lat(&t.to_success),
                t.to_success.count,
                t.failed,
                t.unfinished,
            );
        }
        if let Some(c) = &p.cycles {
            let _ = writeln!(
                out,
                "\n(e) {} cycles, {:.1} cycles/s; a whole cycle p50 / p99 / max {} ms; \
                 {} task polls ({:.1} per cycle) are part of req/s",
                c.cycles,
                p.cycles_per_s().unwrap_or(0.0),
                lat(&c.latency),
                c.polls,
                c.polls as f64 / c.cycles.max(1) as f64,
            );
        }
        if let Some(e) = &p.first_error {
            let _ = writeln!(out, "\n{} first error: {e}", p.scenario.title());
        }
    }
    out
}

/// p99 at the larger tunnel count over p99 at the smaller, per scenario.
pub(crate) fn scale_table(small: &RunReport, large: &RunReport) -> String {
    let mut out = format!(
        "#### {}: p99 at {} tunnels vs {}\n\n| scenario | p99 ms at {} | p99 ms at {} | x | ratio to ceiling at {} | at {} |\n|---|---:|---:|---:|---:|---:|\n",
        small.database, large.tunnels, small.tunnels, small.tunnels, large.tunnels, small.tunnels, large.tunnels
    );
    for s in Scenario::ALL {
        let (Some(a), Some(b)) = (small.phase(s), large.phase(s)) else {
            continue;
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.2} | {:.1}% | {:.1}% |",
            s.title(),
            ms(a.latency.p99_us),
            ms(b.latency.p99_us),
            b.latency.p99_us as f64 / a.latency.p99_us.max(1) as f64,
            100.0 * small.ratio(s).unwrap_or(f64::NAN),
            100.0 * large.ratio(s).unwrap_or(f64::NAN),
        );
    }
    out
}

/// The targets, measured (never asserted).
pub(crate) fn targets(runs: &[RunReport]) -> String {
    let mut out =
        String::from("#### Targets\n\n| target | run | measured | verdict |\n|---|---|---:|---|\n");
    let mut row = |target: &str, run: &RunReport, measured: String, met: bool, by: String| {
        let _ = writeln!(
            out,
            "| {target} | {} tunnels, {} | {measured} | {} {by} |",
            run.tunnels,
            run.database,
            if met { "met" } else { "MISSED" }
        );
    };
    for r in runs {
        if let Some(x) = r.ratio(Scenario::DescribeById) {
            row(
                "DescribeVpnConn by id >= 40% of ceiling",
                r,
                format!("{:.1}%", 100.0 * x),
                x >= 0.40,
                format!("({:.2}x the target)", x / 0.40),
            );
        }
        if let Some(x) = r.ratio(Scenario::Add) {
            row(
                "AddVpnConnEx >= 15% of ceiling",
                r,
                format!("{:.1}%", 100.0 * x),
                x >= 0.15,
                format!("({:.2}x the target)", x / 0.15),
            );
        }
        let limit = 150.0 * 1024.0 * 1024.0;
        if r.tunnels >= 100_000 {
            row(
                "vpcd RSS <= 150 MB at 100k",
                r,
                mib(r.rss_peak),
                (r.rss_peak as f64) <= limit,
                format!("({:.2}x the limit)", r.rss_peak as f64 / limit),
            );
        }
    }
    let by_db =
        |db: &str| -> Vec<&RunReport> { runs.iter().filter(|r| r.database == db).collect() };
    for db in ["sqlite", "postgres"] {
        let rs = by_db(db);
        let (Some(small), Some(large)) = (
            rs.iter().min_by_key(|r| r.tunnels),
            rs.iter().max_by_key(|r| r.tunnels),
        ) else {
            continue;
        };
        if small.tunnels == large.tunnels {
            continue;
        }
        for s in Scenario::ALL {
            let (Some(a), Some(b)) = (small.phase(s), large.phase(s)) else {
                continue;
            };
            let x = b.latency.p99_us as f64 / a.latency.p99_us.max(1) as f64;
            row(
                &format!(
                    "p99 at {} <= 1.2x p99 at {}: {}",
                    large.tunnels,
                    small.tunnels,
                    s.title()
                ),
                large,
                format!("{x:.2}x"),
                x <= 1.2,
                format!("({} vs {} ms)", ms(b.latency.p99_us), ms(a.latency.p99_us)),
            );
        }
    }
    out
}

/// Scenario `strongswan` on one database and tunnel count.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct SwanReport {
    pub(crate) database: &'static str,
    /// Tunnels on the gateway while measuring: the measured one and the
    /// background ones.
    pub(crate) tunnels: usize,
    /// From vpcd's start until the charon listed every background tunnel.
    pub(crate) background_loaded_s: f64,
    /// One VICI `list-conns` on the gateway charon (every tunnel loaded),
    /// what each of vpcd's net-status snapshots starts with.
    pub(crate) list_conns: Summary,
    /// The AddVpnConnEx request itself.
    pub(crate) add_answer: Summary,
    /// From the AddVpnConnEx answer.
    pub(crate) to_task_success: Summary,
    pub(crate) to_net_available: Summary,
    pub(crate) to_peer_installed: Summary,
    /// CPU over the recorded cycles, in cores.
    pub(crate) vpcd_cores: f64,
    pub(crate) charon_cores: f64,
    /// vpcd's and the gateway charon's CPU while no cycle ran
    /// (`--idle-secs`), in cores.
    pub(crate) idle_cores: Option<(f64, f64)>,
    /// The 1-minute load when the recorded cycles began.
    pub(crate) load1: f64,
}

pub(crate) fn swan_table(runs: &[SwanReport]) -> String {
    let mut out = String::from(
        "#### strongSwan: answer to tunnel established (p50 / p99 / max ms)\n\n\
         | tunnels on the gateway | database | cycles | AddVpnConnEx answer | answer -> task success | \
         answer -> netStatus available | answer -> peer CHILD_SA installed | CPU vpcd / gateway charon | \
         idle | background loaded after | list-conns p50 | load1 |\n\
         |---:|---|---:|---|---|---|---|---:|---:|---:|---:|---:|\n",
    );
    for r in runs {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {:.2} / {:.2} cores | {} | {:.1} s | {} ms | {:.2} |",
            r.tunnels,
            r.database,
            r.to_task_success.count,
            lat(&r.add_answer),
            lat(&r.to_task_success),
            lat(&r.to_net_available),
            lat(&r.to_peer_installed),
            r.vpcd_cores,
            r.charon_cores,
            r.idle_cores
                .map_or("-".into(), |(v, c)| format!("{v:.2} / {c:.2} cores")),
            r.background_loaded_s,
            ms(r.list_conns.p50_us),
            r.load1,
        );
    }
    out
}
