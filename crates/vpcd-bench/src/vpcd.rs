//! Running the real `vpcd serve` binary: start it on a data directory with
//! HTTP and HTTPS (its self-signed certificate) on 127.0.0.1:0, find the
//! bound addresses in `listen.json`, wait until
//! it is idle, stop it with SIGTERM (by PID).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::client::Credentials;
use crate::procfs;

/// Every quota, raised so that no scenario is refused by one.
const QUOTA_FLAGS: &[&str] = &[
    "--limit-vpcs-per-region",
    "--limit-vpn-gws-per-vpc",
    "--limit-user-gws-per-region",
    "--limit-conns-per-vpn-gw",
    "--limit-conns-per-user-gw",
    "--limit-conns-per-region",
    "--limit-conns-per-pair",
    "--limit-pool-addresses-per-account",
];
pub(crate) const RAISED_QUOTA: u32 = 10_000_000;

/// A running `vpcd serve`.
pub(crate) struct Vpcd {
    child: Child,
    pub(crate) pid: u32,
    pub(crate) addr: SocketAddr,
    pub(crate) https_addr: SocketAddr,
    /// From start until `listen.json` appeared.
    pub(crate) ready_after: Duration,
}

#[derive(serde::Deserialize)]
struct Listen {
    http: Option<SocketAddr>,
    https: Option<SocketAddr>,
}

/// The command line `start` runs (for the report), with `extra` flags at
/// the end (a gateway node: `--charon`, `--public-ip`).
pub(crate) fn command_line(
    data_dir: &Path,
    database: Option<&str>,
    extra: &[String],
) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "serve".into(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--http".into(),
        "127.0.0.1:0".into(),
        "--https".into(),
        "127.0.0.1:0".into(),
        // One account drives every measured request.
        "--rate-limit-per-account".into(),
        "0".into(),
    ];
    if let Some(db) = database {
        args.extend(["--database".into(), db.into()]);
    }
    for flag in QUOTA_FLAGS {
        args.extend([(*flag).into(), RAISED_QUOTA.to_string()]);
    }
    args.extend_from_slice(extra);
    args
}

impl Vpcd {
    pub(crate) async fn start(
        bin: &Path,
        data_dir: &Path,
        database: Option<&str>,
        extra: &[String],
    ) -> anyhow::Result<Vpcd> {
        let listen = data_dir.join("listen.json");
        let _ = std::fs::remove_file(&listen);
        let log = |name: &str| -> anyhow::Result<std::fs::File> {
            Ok(std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(data_dir.join(name))?)
        };
        let mut cmd = Command::new(bin);
        cmd.args(command_line(data_dir, database, extra))
            .stdin(Stdio::null())
            .stdout(log("vpcd.stdout")?)
            .stderr(log("vpcd.stderr")?);
        // The caller's VPCD_* settings must not change what is measured.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("VPCD_") {
                cmd.env_remove(k);
            }
        }
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id();
        let (addr, https_addr) = loop {
            if let Some(status) = child.try_wait()? {
                let tail = tail(&data_dir.join("vpcd.stderr"));
                bail!("vpcd exited with {status} before listening:\n{tail}");
            }
            if let Ok(text) = std::fs::read(&listen) {
                if let Ok(Listen {
                    http: Some(addr),
                    https: Some(https),
                }) = serde_json::from_slice(&text)
                {
                    break (addr, https);
                }
            }
            if started.elapsed() > Duration::from_secs(120) {
                let _ = child.kill();
                bail!("vpcd did not write {} within 120 s", listen.display());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Ok(Vpcd {
            child,
            pid,
            addr,
            https_addr,
            ready_after: started.elapsed(),
        })
    }

    /// Wait until the process has used (almost) no CPU for a second: its
    /// start-up work (reconciling every stored tunnel into the data-plane
    /// driver) is done. Returns how long that took.
    pub(crate) async fn settle(&mut self, limit: Duration) -> anyhow::Result<Duration> {
        let start = Instant::now();
        let step = Duration::from_millis(500);
        let mut quiet = 0;
        let mut last = procfs::cpu_secs(self.pid)?;
        while quiet < 2 && start.elapsed() < limit {
            tokio::time::sleep(step).await;
            if let Some(status) = self.child.try_wait()? {
                bail!("vpcd exited with {status}");
            }
            let now = procfs::cpu_secs(self.pid)?;
            quiet = if now - last <= 0.02 { quiet + 1 } else { 0 };
            last = now;
        }
        Ok(start.elapsed())
    }

    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then wait for the graceful shutdown (SIGKILL after 30 s).
    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        // Already gone (and reaped, so its PID may be another process's).
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.child.kill()?;
        self.child.wait()?;
        bail!(
            "vpcd (pid {}) ignored SIGTERM for 30 s and was killed",
            self.pid
        )
    }
}

impl Drop for Vpcd {
    fn drop(&mut self) {
        // Only reached on an error path: never leave a server behind.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub(crate) fn read_credentials(data_dir: &Path) -> anyhow::Result<Credentials> {
    let path = data_dir.join("credentials");
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// `target/release/vpcd` of this workspace (or of `CARGO_TARGET_DIR`).
pub(crate) fn default_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    target.join("release").join("vpcd")
}

/// `cargo build --release -p vpcd`, so a stale binary is never measured.
pub(crate) fn build_release() -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "vpcd"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .context("running cargo build --release -p vpcd")?;
    if !status.success() {
        bail!("cargo build --release -p vpcd failed ({status})");
    }
    Ok(())
}
