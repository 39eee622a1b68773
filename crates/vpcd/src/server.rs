//! `vpcd serve`: wiring the store, the task engine, the data plane and the
//! HTTP/HTTPS listeners, and shutting them down in order.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;
use vpcd_dataplane::strongswan::StrongSwanDriver;
use vpcd_dataplane::{ApiOnlyDriver, VpnDriver};
use vpcd_store::Store;
use vpcd_types::{ConnStatus, GatewayNodeId, NetStatus, VpnConnId};

use crate::app::{AppState, Clock, Drivers, Placement, Settings};
use crate::cluster::{Cluster, NodeInfo};
use crate::engine::{spec_of, Engine};

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
    pub reconcile_interval: Duration,
    /// Simulated data-plane latency of the API-only driver (for testing
    /// client automation against realistic task timing).
    pub api_only_delay: Duration,
    /// A single local gateway node: its VICI URI (`--charon`)...
    pub charon: Option<String>,
    /// ...and the public addresses its VPN gateways use (`--public-ip`).
    pub public_ips: Vec<std::net::IpAddr>,
    /// How often this process heartbeats and renews gateway node leases.
    pub heartbeat_interval: Duration,
    /// How long a gateway node lease lasts without renewal.
    pub gateway_lease_secs: i64,
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
            reconcile_interval: Duration::from_secs(30),
            api_only_delay: Duration::ZERO,
            charon: None,
            public_ips: Vec::new(),
            heartbeat_interval: Duration::from_secs(2),
            gateway_lease_secs: 10,
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
    cfg.database
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", cfg.data_dir.join("vpcd.db").display()))
}

/// Create the first account and its key if the database has none, and
/// write them to `<data-dir>/credentials` (mode 0600).
async fn bootstrap(store: &dyn Store, cfg: &ServeConfig) -> anyhow::Result<()> {
    if !store.list_accounts().await?.is_empty() {
        return Ok(());
    }
    match store.create_account("default").await {
        Ok(_) => {}
        // Another node sharing the database bootstrapped at the same moment.
        Err(vpcd_store::StoreError::NameInUse(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    let key = store.create_key("default").await?;
    let path = cfg.data_dir.join("credentials");
    let doc = serde_json::json!({
        "secretId": key.secret_id,
        "secretKey": key.secret_key.expose(),
        "region": cfg.region,
    });
    crate::tls::write_private(&path, serde_json::to_string_pretty(&doc)?.as_bytes())?;
    // The SecretKey is shown once on a terminal, never through the log: when
    // stdout is a file or a pipe (a service manager's log), only where to
    // find it.
    let secret_key = std::io::stdout()
        .is_terminal()
        .then(|| key.secret_key.expose());
    println!(
        "{}",
        first_start_banner(&key.secret_id, secret_key, &cfg.region, &path)
    );
    Ok(())
}

/// What the first start prints; `secret_key` only when stdout is a terminal.
fn first_start_banner(
    secret_id: &str,
    secret_key: Option<&str>,
    region: &str,
    credentials: &Path,
) -> String {
    let key_line = match secret_key {
        Some(k) => format!("  SecretKey: {k}\n"),
        None => "  SecretKey: (not shown: stdout is not a terminal; read it from the file below)\n"
            .to_owned(),
    };
    format!(
        "created account \"default\"\n  SecretId:  {secret_id}\n{key_line}  region:    {region}\nsaved to {} (mode 0600)",
        credentials.display()
    )
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
    start_with(cfg, Arc::new(ApiOnlyDriver)).await
}

/// [`start`] with another driver for gateways on no gateway node (tests
/// pass a recording driver).
pub async fn start_with(cfg: ServeConfig, api_only: Arc<dyn VpnDriver>) -> anyhow::Result<Running> {
    crate::tls::init_crypto();
    let url = database_url(&cfg);
    crate::data_dir::secure(&cfg.data_dir, vpcd_store::sqlite_path(&url))?;
    let store = vpcd_store::connect(&url)
        .await
        .with_context(|| "opening the database")?;
    bootstrap(store.as_ref(), &cfg).await?;
    if let Some(uri) = &cfg.charon {
        anyhow::ensure!(
            !cfg.public_ips.is_empty(),
            "--charon needs at least one --public-ip: the address VPN gateways on that node use"
        );
        StrongSwanDriver::new(uri).map_err(|e| anyhow::anyhow!("--charon {uri}: {e}"))?;
        let node = store.ensure_gateway_node(uri, &cfg.public_ips).await?;
        tracing::info!(node = %node.id, vici = %uri, addresses = ?node.addresses, "local gateway node");
    }

    let clock = Clock::default();
    let drivers = Arc::new(Drivers::new(api_only, cfg.api_only_delay));
    let engine = Arc::new(Engine::new(
        store.clone(),
        drivers.clone(),
        clock.clone(),
        cfg.task_lease_secs,
        cfg.workers,
    ));
    let cluster = Arc::new(Cluster::new(
        engine.worker_id().to_owned(),
        NodeInfo::of_this_process(cfg.heartbeat_interval),
        cfg.heartbeat_interval,
        cfg.gateway_lease_secs,
    ));
    let state = AppState {
        store: store.clone(),
        settings: Arc::new(cfg.settings.clone()),
        clock,
        engine: engine.clone(),
        drivers: drivers.clone(),
        placement: Arc::new(Placement::default()),
        cluster: cluster.clone(),
    };

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // Take the gateway node leases that are free before driving any node.
    crate::cluster::start(&cluster, store.as_ref(), &state.clock).await;
    refresh_nodes(&state, &shutdown_rx).await;
    let app = crate::http::router(state.clone());
    let http_handle = axum_server::Handle::new();
    let https_handle = axum_server::Handle::new();
    let mut bound = Bound {
        http: None,
        https: None,
    };
    let mut tasks = Vec::new();

    if let Some(addr) = cfg.http {
        let listener =
            std::net::TcpListener::bind(addr).with_context(|| format!("binding HTTP on {addr}"))?;
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
        let (cert, key) =
            crate::tls::ensure_cert(&cfg.data_dir, cfg.tls_cert.clone(), cfg.tls_key.clone())?;
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
    cluster.set_listen(bound.http, bound.https);
    tasks.push(tokio::spawn(crate::cluster::run(
        state.clone(),
        shutdown_rx.clone(),
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

/// Make each node's loaded tunnels match the database: load what is missing,
/// unload what is stale. Runs at start and then periodically, so a restarted
/// charon or a restarted vpcd converges without any API call.
///
/// API-only gateways are left out: nothing is negotiated for them, so there
/// is nothing to converge, and a pass would load every row for nothing.
pub async fn reconcile_once(state: &AppState) {
    for (node, driver) in state.drivers.nodes() {
        if let Err(e) = reconcile_node(state, node, driver.as_ref()).await {
            tracing::warn!(node = %node, driver = %driver.describe(), error = %e, "reconciliation failed; will retry");
        }
    }
}

async fn reconcile_node(
    state: &AppState,
    node: GatewayNodeId,
    driver: &dyn VpnDriver,
) -> anyhow::Result<()> {
    let desired = state.store.desired_conns(Some(node)).await?;
    let loaded: HashSet<VpnConnId> = driver.loaded().await?.into_iter().collect();
    let wanted: HashSet<&VpnConnId> = desired.iter().map(|c| &c.un_id).collect();
    for c in &desired {
        // Tunnels with a task in flight are the task's business.
        let settled = matches!(c.status, ConnStatus::Running | ConnStatus::DeleteFailed)
            && c.active_task.is_none();
        if settled && !loaded.contains(&c.un_id) {
            tracing::info!(conn = %c.un_id, "reconcile: loading missing tunnel");
            driver.apply(&spec_of(c)).await?;
        }
    }
    for id in &loaded {
        if !wanted.contains(id) {
            tracing::info!(conn = %id, "reconcile: unloading stale tunnel");
            driver.remove(id).await?;
        }
    }
    Ok(())
}

async fn reconcile_loop(state: AppState, every: Duration, mut shutdown: watch::Receiver<bool>) {
    loop {
        refresh_nodes(&state, &shutdown).await;
        reconcile_once(&state).await;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Pick up gateway nodes registered in the database (at start, and later
/// by `vpcd admin node add`): one strongSwan driver each, and a watcher that
/// follows its live SA state into `netStatus`.
pub async fn refresh_nodes(state: &AppState, shutdown: &watch::Receiver<bool>) {
    let nodes = match state.store.list_gateway_nodes().await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "listing gateway nodes failed");
            return;
        }
    };
    // Only the holder of a node's lease drives it (see `cluster`).
    let now = state.clock.now();
    for node in &nodes {
        if state.cluster.tenure(node.id, now).is_none() {
            if state.drivers.remove_node(node.id).is_some() {
                tracing::info!(node = %node.id, name = %node.name, "no longer driving gateway node");
            }
            continue;
        }
        if state.drivers.get(Some(node.id)).is_some() {
            continue;
        }
        let driver = match StrongSwanDriver::new(&node.vici) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(node = %node.id, vici = %node.vici, error = %e, "bad VICI URI for gateway node");
                continue;
            }
        };
        tracing::info!(node = %node.id, name = %node.name, vici = %node.vici, "driving gateway node");
        // Take over the node's live state before going on, so that no stale
        // "available" from an earlier run (or another vpcd) is served.
        let live = driver.net_status().await.unwrap_or_default();
        match state.store.desired_conns(Some(node.id)).await {
            Ok(desired) if !desired.is_empty() => {
                let changes: Vec<(VpnConnId, NetStatus)> = desired
                    .iter()
                    .map(|c| {
                        let st = live.get(&c.un_id).copied();
                        (c.un_id.clone(), st.unwrap_or(NetStatus::Unavailable))
                    })
                    .collect();
                if let Err(e) = state.store.set_net_status(&changes).await {
                    tracing::warn!(node = %node.id, error = %e, "recording net status failed");
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(node = %node.id, error = %e, "listing the node's tunnels failed")
            }
        }
        tokio::spawn(follow_net_status(
            state.clone(),
            node.id,
            state.cluster.tenure(node.id, now),
            driver.clone(),
            shutdown.clone(),
        ));
        state.drivers.insert_node(node.id, Arc::new(driver));
    }
    state
        .placement
        .set_nodes(nodes.iter().map(|n| n.id).collect());
}

/// Write each change of a node's live SA state to the database. The
/// driver's stream is event-driven (VICI ike-updown/child-updown), with a
/// periodic re-read as a fallback, so `netStatus` follows within a second.
async fn follow_net_status(
    state: AppState,
    node: GatewayNodeId,
    tenure: Option<u64>,
    driver: StrongSwanDriver,
    mut shutdown: watch::Receiver<bool>,
) {
    use futures::StreamExt;
    let mut stream = Box::pin(driver.watch());
    let mut last: HashMap<VpnConnId, NetStatus> = HashMap::new();
    let mut first = true;
    // The event stream is silent while charon is down; a direct check each
    // second notices a dead node (every tunnel unavailable).
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let now = tokio::select! {
            m = stream.next() => match m { Some(m) => m, None => return },
            _ = tick.tick() => match driver.net_status().await {
                Ok(m) => m,
                Err(e) => {
                    tracing::debug!(node = %node, error = %e, "gateway node unreachable");
                    HashMap::new()
                }
            },
            _ = shutdown.changed() => return,
        };
        // The node's lease moved on: its new holder follows it now.
        if state.cluster.tenure(node, state.clock.now()) != tenure {
            return;
        }
        let mut changes: Vec<(VpnConnId, NetStatus)> = now
            .iter()
            .filter(|(k, v)| last.get(*k) != Some(v))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        changes.extend(
            last.keys()
                .filter(|k| !now.contains_key(*k))
                .map(|k| (k.clone(), NetStatus::Unavailable)),
        );
        if first {
            // After a restart the database may still say "available" for a
            // tunnel the node no longer has.
            if let Ok(desired) = state.store.desired_conns(Some(node)).await {
                changes.extend(
                    desired
                        .iter()
                        .filter(|c| !now.contains_key(&c.un_id))
                        .map(|c| (c.un_id.clone(), NetStatus::Unavailable)),
                );
            }
            first = false;
        }
        if changes.is_empty() {
            continue;
        }
        match state.store.set_net_status(&changes).await {
            Ok(()) => last = now,
            Err(e) => tracing::warn!(node = %node, error = %e, "recording net status failed"),
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
