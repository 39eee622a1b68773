//! `vpcd serve`: wiring the store, the task engine, the data plane and the
//! HTTP/HTTPS listeners, and shutting them down in order.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;
use vpcd_dataplane::{ApiOnlyDriver, VpnDriver};
use vpcd_store::Store;
use vpcd_types::{ConnStatus, NetStatus, TunnelSpec};

use crate::app::{AppState, Clock, Drivers, Placement, Settings};
use crate::engine::Engine;

/// Everything `vpcd serve` needs, already parsed.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; default: SQLite in the data dir.
    pub database: Option<String>,
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Region written to the first-start credentials file.
    pub region: String,
    pub settings: Settings,
    pub task_lease_secs: i64,
    pub workers: usize,
    pub health_interval: Duration,
    pub reconcile_interval: Duration,
    /// Simulated data-plane latency of the API-only driver (for testing
    /// client automation against realistic task timing).
    pub api_only_delay: Duration,
}

impl ServeConfig {
    /// Defaults for a data directory, as `vpcd serve` has them.
    pub fn new(data_dir: PathBuf) -> Self {
        ServeConfig {
            data_dir,
            database: None,
            http: Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
            https: Some(SocketAddr::from(([127, 0, 0, 1], 8443))),
            tls_cert: None,
            tls_key: None,
            region: "gz".to_owned(),
            settings: Settings::default(),
            task_lease_secs: 30,
            workers: 4,
            health_interval: Duration::from_millis(500),
            reconcile_interval: Duration::from_secs(30),
            api_only_delay: Duration::ZERO,
        }
    }
}

/// The addresses actually bound (port 0 resolves here).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Bound {
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
}

pub fn database_url(cfg: &ServeConfig) -> String {
    cfg.database.clone().unwrap_or_else(|| {
        format!("sqlite://{}", cfg.data_dir.join("vpcd.db").display())
    })
}

/// Create the first account and its key if the database has none, and
/// write them to `<data-dir>/credentials` (mode 0600).
async fn bootstrap(store: &dyn Store, cfg: &ServeConfig) -> anyhow::Result<()> {
    if !store.list_accounts().await?.is_empty() {
        return Ok(());
    }
    store.create_account("default").await?;
    let key = store.create_key("default").await?;
    let path = cfg.data_dir.join("credentials");
    let doc = serde_json::json!({
        "secretId": key.secret_id,
        "secretKey": key.secret_key.expose(),
        "region": cfg.region,
    });
    crate::tls::write_private(&path, serde_json::to_string_pretty(&doc)?.as_bytes())?;
    // Shown once on the terminal, never through the log.
    println!(
        "created account \"default\"\n  SecretId:  {}\n  SecretKey: {}\n  region:    {}\nsaved to {} (mode 0600)",
        key.secret_id,
        key.secret_key.expose(),
        cfg.region,
        path.display()
    );
    Ok(())
}

pub struct Running {
    pub state: AppState,
    pub bound: Bound,
    shutdown_tx: watch::Sender<bool>,
    http_handle: axum_server::Handle,
    https_handle: axum_server::Handle,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Start everything and return once the listeners are bound.
pub async fn start(cfg: ServeConfig) -> anyhow::Result<Running> {
    crate::tls::init_crypto();
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data directory {}", cfg.data_dir.display()))?;
    let url = database_url(&cfg);
    let store = vpcd_store::connect(&url)
        .await
        .with_context(|| "opening the database")?;
    bootstrap(store.as_ref(), &cfg).await?;

    let clock = Clock::default();
    let drivers = Arc::new(Drivers::new(
        Arc::new(ApiOnlyDriver::new()),
        cfg.api_only_delay,
    ));
    let engine = Arc::new(Engine::new(
        store.clone(),
        drivers.clone(),
        clock.clone(),
        cfg.task_lease_secs,
        cfg.workers,
    ));
    let state = AppState {
        store: store.clone(),
        settings: Arc::new(cfg.settings.clone()),
        clock,
        engine: engine.clone(),
        drivers: drivers.clone(),
        placement: Arc::new(Placement::default()),
    };

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let app = crate::http::router(state.clone());
    let http_handle = axum_server::Handle::new();
    let https_handle = axum_server::Handle::new();
    let mut bound = Bound {
        http: None,
        https: None,
    };
    let mut tasks = Vec::new();

    if let Some(addr) = cfg.http {
        let listener = std::net::TcpListener::bind(addr)
            .with_context(|| format!("binding HTTP on {addr}"))?;
        listener.set_nonblocking(true)?;
        bound.http = Some(listener.local_addr()?);
        let server = axum_server::from_tcp(listener)
            .handle(http_handle.clone())
            .serve(app.clone().into_make_service());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = server.await {
                tracing::error!(error = %e, "HTTP listener failed");
            }
        }));
    }
    if let Some(addr) = cfg.https {
        let (cert, key) = crate::tls::ensure_cert(&cfg.data_dir, cfg.tls_cert.clone(), cfg.tls_key.clone())?;
        let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
            .await
            .with_context(|| format!("loading TLS certificate {}", cert.display()))?;
        let listener = std::net::TcpListener::bind(addr)
            .with_context(|| format!("binding HTTPS on {addr}"))?;
        listener.set_nonblocking(true)?;
        bound.https = Some(listener.local_addr()?);
        let server = axum_server::from_tcp_rustls(listener, tls)
            .handle(https_handle.clone())
            .serve(app.into_make_service());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = server.await {
                tracing::error!(error = %e, "HTTPS listener failed");
            }
        }));
    }
    std::fs::write(
        cfg.data_dir.join("listen.json"),
        serde_json::to_vec(&bound)?,
    )?;
    tracing::info!(http = ?bound.http, https = ?bound.https, database = %redact_url(&url), "vpcd serving");

    // `--workers 0` makes a node that serves the API but applies no tasks.
    if cfg.workers > 0 {
        tasks.push(tokio::spawn(engine.clone().run(shutdown_rx.clone())));
    }
    tasks.push(tokio::spawn(reconcile_loop(
        state.clone(),
        cfg.reconcile_interval,
        shutdown_rx.clone(),
    )));
    tasks.push(tokio::spawn(health_loop(
        state.clone(),
        cfg.health_interval,
        shutdown_rx,
    )));
    Ok(Running {
        state,
        bound,
        shutdown_tx,
        http_handle,
        https_handle,
        tasks,
    })
}

impl Running {
    /// Stop accepting, let requests in flight and running tasks finish
    /// (bounded by `deadline`), then return.
    pub async fn shutdown(self, deadline: Duration) {
        self.http_handle.graceful_shutdown(Some(deadline));
        self.https_handle.graceful_shutdown(Some(deadline));
        let _ = self.shutdown_tx.send(true);
        let all = futures::future::join_all(self.tasks);
        if tokio::time::timeout(deadline + Duration::from_secs(1), all)
            .await
            .is_err()
        {
            tracing::warn!("shutdown deadline passed with work still running");
        }
    }
}

/// Hide a password in a database URL before logging it.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

pub fn spec_of(c: &vpcd_store::VpnConn) -> TunnelSpec {
    TunnelSpec {
        name: c.un_id.clone(),
        local_addr: c.vpn_gw.address,
        remote_addr: c.user_gw.address,
        settings: c.settings.clone(),
    }
}

/// Make each node's loaded tunnels match the database: load what is missing,
/// unload what is stale. Runs at start and then periodically, so a restarted
/// charon or a restarted vpcd converges without any API call.
pub async fn reconcile_once(state: &AppState) {
    for (node, driver) in state.drivers.all() {
        if let Err(e) = reconcile_node(state, node, driver.as_ref()).await {
            tracing::warn!(node = ?node, driver = %driver.describe(), error = %e, "reconciliation failed; will retry");
        }
    }
}

async fn reconcile_node(
    state: &AppState,
    node: Option<i64>,
    driver: &dyn VpnDriver,
) -> anyhow::Result<()> {
    let desired = state.store.desired_conns(node).await?;
    let loaded: HashSet<String> = driver.loaded().await?.into_iter().collect();
    let wanted: HashSet<&str> = desired.iter().map(|c| c.un_id.as_str()).collect();
    for c in &desired {
        // Tunnels with a task in flight are the task's business.
        let settled = matches!(c.status, ConnStatus::Running | ConnStatus::DeleteFailed)
            && c.active_task.is_none();
        if settled && !loaded.contains(c.un_id.as_str()) {
            tracing::info!(conn = %c.un_id, "reconcile: loading missing tunnel");
            driver.apply(&spec_of(c)).await?;
        }
    }
    for name in loaded.iter().filter(|n| n.starts_with("vpnx-")) {
        if !wanted.contains(name.as_str()) {
            if let Ok(id) = name.parse() {
                tracing::info!(conn = %name, "reconcile: unloading stale tunnel");
                driver.remove(&id).await?;
            }
        }
    }
    Ok(())
}

async fn reconcile_loop(state: AppState, every: Duration, mut shutdown: watch::Receiver<bool>) {
    loop {
        reconcile_once(&state).await;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Follow live SA state: poll every node and write changes of `netStatus`.
async fn health_loop(state: AppState, every: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut last: HashMap<Option<i64>, HashMap<String, NetStatus>> = HashMap::new();
    loop {
        for (node, driver) in state.drivers.all() {
            if node.is_none() {
                continue; // API only: nothing is negotiated, nothing changes.
            }
            let now = match driver.net_status().await {
                Ok(m) => m,
                Err(e) => {
                    tracing::debug!(node = ?node, error = %e, "net status poll failed");
                    HashMap::new()
                }
            };
            let prev = last.entry(node).or_default();
            let mut changes: Vec<(String, NetStatus)> = now
                .iter()
                .filter(|(k, v)| prev.get(*k) != Some(v))
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            changes.extend(
                prev.keys()
                    .filter(|k| !now.contains_key(*k))
                    .map(|k| (k.clone(), NetStatus::Unavailable)),
            );
            if !changes.is_empty() {
                match state.store.set_net_status(&changes).await {
                    Ok(()) => *prev = now,
                    Err(e) => tracing::warn!(error = %e, "recording net status failed"),
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Run until SIGTERM or SIGINT, then shut down gracefully.
pub async fn serve(cfg: ServeConfig) -> anyhow::Result<()> {
    let running = start(cfg).await?;
    wait_for_signal().await;
    tracing::info!("shutting down");
    running.shutdown(Duration::from_secs(10)).await;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
