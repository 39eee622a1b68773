//! Helpers shared by the end-to-end tests.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use vpcd_dataplane::peer_config;
use vpcd_dataplane::testbed::{Side, Testbed};
use vpcd_dataplane::{StrongSwanDriver, VpnDriver};
use vpcd_types::{NetStatus, TunnelSpec, VpnConnId};

/// Poll `cond` every 50 ms until it holds; panic after `limit`. Returns how
/// long it took (printed by `timing`, never asserted: `limit` only ends a
/// hung test).
pub async fn wait_for<F, Fut>(what: &str, limit: Duration, mut cond: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if cond().await {
            return start.elapsed();
        }
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether `name` is reported available.
pub async fn available(driver: &StrongSwanDriver, name: &VpnConnId) -> bool {
    driver
        .net_status()
        .await
        .map(|m| m.get(name) == Some(&NetStatus::Available))
        .unwrap_or(false)
}

/// The customer's swanctl.conf for `spec`.
pub fn peer_swanctl(spec: &TunnelSpec) -> String {
    let v = peer_config::vendor("strongswan").expect("vendor");
    peer_config::render(v, spec, None).expect("peer config")
}

/// Configure the peer gateway with `specs` (one swanctl.conf).
pub fn configure_peer(tb: &Testbed, specs: &[&TunnelSpec]) {
    let conf: String = specs.iter().map(|s| peer_swanctl(s)).collect();
    tb.load_swanctl(Side::Peer, &conf)
        .expect("swanctl --load-all on the peer");
}

/// An async ping that does not block the runtime.
pub async fn ping(tb: &Testbed, side: Side, src: &str, dst: &str) -> bool {
    let ns = tb.netns(side).to_owned();
    let (src, dst) = (src.to_owned(), dst.to_owned());
    tokio::task::spawn_blocking(move || {
        std::process::Command::new("ip")
            .args([
                "netns", "exec", &ns, "ping", "-n", "-q", "-c1", "-W1", "-I", &src, &dst,
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// Everything logged through `tracing` by this test binary.
pub fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let for_writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || Tee(for_writer.clone()))
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buf
    })
    .clone()
}

struct Tee(Arc<Mutex<Vec<u8>>>);

impl Write for Tee {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(data);
        std::io::stderr().write_all(data)?;
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn logs_text() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

/// Print a measured duration in a greppable form.
pub fn timing(test: &str, what: &str, d: Duration) {
    eprintln!("TIMING {test}: {what} {:.3}s", d.as_secs_f64());
}

/// Wait for a tunnel to be available and pass traffic both ways.
pub async fn wait_up(
    test: &str,
    tb: &Testbed,
    driver: &StrongSwanDriver,
    name: &VpnConnId,
    pairs: &[(&str, &str)],
) {
    let t = wait_for(
        &format!("{name} available"),
        Duration::from_secs(20),
        || available(driver, name),
    )
    .await;
    timing(test, &format!("{name} available after"), t);
    for (cloud, peer) in pairs {
        let t = wait_for(
            &format!("ping {cloud} -> {peer}"),
            Duration::from_secs(10),
            || ping(tb, Side::Cloud, cloud, peer),
        )
        .await;
        timing(test, &format!("first ping {cloud}->{peer} after"), t);
        wait_for(
            &format!("ping {peer} -> {cloud}"),
            Duration::from_secs(10),
            || ping(tb, Side::Peer, peer, cloud),
        )
        .await;
    }
}
