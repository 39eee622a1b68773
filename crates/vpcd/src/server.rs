//! `vpcd serve`: wiring the store, the API side, the background side and the
//! HTTP/HTTPS listeners, and shutting them down in order. Nothing here holds
//! behaviour of its own beyond start-up (bootstrap credentials, the
//! `--charon` gateway node) and shutdown.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{watch, Notify};
use vpcd_dataplane::strongswan::StrongSwanDriver;
use vpcd_dataplane::{ApiOnlyDriver, VpnDriver};
use vpcd_store::Store;

use crate::api::{ApiState, KeyCache};
use crate::background::{self, Background};
use crate::clock::Clock;
use crate::conn_guard::Guard;
use crate::placement::Placement;
use crate::rate_limit::RateLimiter;
use crate::replay::Replay;
use crate::settings::Settings;
use crate::storage_health::StorageHealth;

/// Everything `vpcd serve` needs, already parsed.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; default: SQLite in the data dir.
    pub database: Option<String>,
    /// The file holding the master key that seals the database's secrets
    /// (`--master-key-file`); default: `master.key` in the data directory,
    /// created on the first start.
    pub master_key_file: Option<PathBuf>,
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
    /// How long a finished task is kept (and DescribeVpcTaskResult finds
    /// it) before it is deleted; 0 keeps tasks for ever.
    pub task_retention_secs: i64,
    /// How often each driven gateway node's tunnel traffic is sampled for
    /// DescribeVpnConnDiagnostics (only changed counters are written).
    pub diagnostics_interval: Duration,
    /// How long a client may take to send a request's headers, counted
    /// from the connection's first byte (`--header-read-timeout`). A slow
    /// or silent client is disconnected after it.
    pub header_read_timeout: Duration,
    /// How long a connection may stay open with no request in progress,
    /// counted from its start or the end of its last request
    /// (`--idle-timeout-ms`): idle keep-alive connections and connections
    /// that never send a byte are closed after it.
    pub idle_timeout: Duration,
    /// Connections each listener serves at once (`--max-connections`); one
    /// more waits up to the header-read timeout for a free slot, then is
    /// closed.
    pub max_connections: usize,
    /// Where `/metrics` is served (`--metrics`); `None`: nowhere. Never on
    /// the API listeners.
    pub metrics: Option<SocketAddr>,
}

impl ServeConfig {
    /// Defaults for a data directory, as `vpcd serve` has them.
    pub fn new(data_dir: PathBuf) -> Self {
        ServeConfig {
            data_dir,
            database: None,
            master_key_file: None,
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
            task_retention_secs: DEFAULT_TASK_RETENTION_SECS,
            diagnostics_interval: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_connections: 1024,
            metrics: None,
        }
    }
}

/// How long finished tasks are kept by default: a week.
pub const DEFAULT_TASK_RETENTION_SECS: i64 = 7 * 24 * 3600;

/// The addresses actually bound (port 0 resolves here).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Bound {
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
    /// The `/metrics` listener, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<SocketAddr>,
}

fn database_url(cfg: &ServeConfig) -> String {
    cfg.database
        .clone()
        .unwrap_or_else(|| default_database(&cfg.data_dir))
}

/// The database used when none is given: SQLite in the data directory.
pub(crate) fn default_database(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join("vpcd.db").display())
}

/// Create the first account and its key if the database has none, and
/// write them to `<data-dir>/credentials` (mode 0600).
async fn bootstrap(store: &dyn Store, cfg: &ServeConfig) -> anyhow::Result<()> {
    if !store.list_accounts().await?.is_empty() {
        return Ok(());
    }
    match store.create_account("default").await {
        Ok(_) => {}
        // Another vpcd sharing the database bootstrapped at the same moment.
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

/// Disconnect clients that send their headers too slowly (issue 11,
/// finding 2): hyper enforces the timeout only when given a timer.
fn slow_clients(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    cfg: &ServeConfig,
) {
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(cfg.header_read_timeout);
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .keep_alive_interval(cfg.header_read_timeout)
        .keep_alive_timeout(cfg.header_read_timeout);
}

/// The cap on connections and the idle timeout of one listener.
fn conn_limits(cfg: &ServeConfig) -> crate::conn_guard::Limits {
    crate::conn_guard::Limits {
        max_connections: cfg.max_connections,
        slot_wait: cfg.header_read_timeout,
        idle_timeout: cfg.idle_timeout,
    }
}

/// The soft limit on open files raised to the hard limit, so many
/// connections do not starve the database of file descriptors.
fn raise_open_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        let from = lim.current;
        lim.current = lim.maximum;
        match setrlimit(Resource::Nofile, lim) {
            Ok(()) => tracing::debug!(?from, to = ?lim.maximum, "raised the open-file limit"),
            Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
        }
    }
}

/// A started vpcd: its listeners, its API side and its background side.
pub struct Running {
    pub bound: Bound,
    api: ApiState,
    background: Background,
    shutdown_tx: watch::Sender<bool>,
    http_handle: axum_server::Handle,
    https_handle: axum_server::Handle,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Start everything and return once the listeners are bound.
pub async fn start(cfg: ServeConfig) -> anyhow::Result<Running> {
    start_with(cfg, Arc::new(ApiOnlyDriver)).await
}

/// [`start`] with another data-plane driver for VPN gateways that have no
/// gateway node (tests pass one that records what it is told).
pub async fn start_with(cfg: ServeConfig, api_only: Arc<dyn VpnDriver>) -> anyhow::Result<Running> {
    crate::tls::init_crypto();
    raise_open_file_limit();
    let url = database_url(&cfg);
    crate::data_dir::secure(&cfg.data_dir, vpcd_store::sqlite_path(&url))?;
    let store =
        crate::data_dir::open_store(&cfg.data_dir, &url, cfg.master_key_file.as_deref()).await?;
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
    // A SQLite file is served by one vpcd (several nodes need PostgreSQL):
    // its replay check may then answer reads from memory.
    let shared_nonces = vpcd_store::sqlite_path(&url).is_none();
    let replay = Replay::start(
        store.clone(),
        shared_nonces,
        cfg.settings.timestamp_window_secs,
        clock.clone(),
    )
    .await
    .with_context(|| "loading recent nonces")?;
    let api = ApiState {
        store: store.clone(),
        settings: Arc::new(cfg.settings.clone()),
        clock: clock.clone(),
        placement: Arc::new(Placement::default()),
        tasks: Arc::new(Notify::new()),
        storage: StorageHealth::new(clock.clone()),
        rate: Arc::new(RateLimiter::new(cfg.settings.rate_limit)),
        keys: Arc::new(KeyCache::default()),
        replay: replay.clone(),
        requests: Default::default(),
    };
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let background = Background::start(
        background::Config {
            task_lease_secs: cfg.task_lease_secs,
            workers: cfg.workers,
            reconcile_interval: cfg.reconcile_interval,
            api_only,
            api_only_delay: cfg.api_only_delay,
            heartbeat_interval: cfg.heartbeat_interval,
            gateway_lease_secs: cfg.gateway_lease_secs,
            task_retention_secs: cfg.task_retention_secs,
            diagnostics_interval: cfg.diagnostics_interval,
        },
        background::Shared {
            store: store.clone(),
            clock: api.clock.clone(),
            placement: api.placement.clone(),
            tasks: api.tasks.clone(),
            storage: api.storage.clone(),
        },
        &shutdown_rx,
    )
    .await;
    let app = crate::http::router(api.clone());
    let http_handle = axum_server::Handle::new();
    let https_handle = axum_server::Handle::new();
    let mut bound = Bound {
        http: None,
        https: None,
        metrics: None,
    };
    let mut tasks = vec![tokio::spawn(replay.write_behind(shutdown_rx.clone()))];
    if let Some(addr) = cfg.metrics {
        let scraper = Arc::new(crate::metrics::Scraper {
            store: store.clone(),
            clock: clock.clone(),
            storage: api.storage.clone(),
            requests: api.requests.clone(),
            monitor: background.monitor(),
        });
        let (addr, task) = crate::metrics::serve(addr, scraper, shutdown_rx.clone()).await?;
        bound.metrics = Some(addr);
        tasks.push(task);
    }

    if let Some(addr) = cfg.http {
        let listener =
            std::net::TcpListener::bind(addr).with_context(|| format!("binding HTTP on {addr}"))?;
        listener.set_nonblocking(true)?;
        bound.http = Some(listener.local_addr()?);
        let mut server = axum_server::from_tcp(listener)
            .handle(http_handle.clone())
            .map(|plain| Guard::new(plain, conn_limits(&cfg)));
        slow_clients(server.http_builder(), &cfg);
        let server = server.serve(app.clone().into_make_service());
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
        let mut server = axum_server::from_tcp_rustls(listener, tls)
            .handle(https_handle.clone())
            .map(|tls| Guard::new(tls, conn_limits(&cfg)));
        slow_clients(server.http_builder(), &cfg);
        let server = server.serve(
            app.layer(axum::Extension(crate::console::OverTls))
                .into_make_service(),
        );
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
    tracing::info!(http = ?bound.http, https = ?bound.https, metrics = ?bound.metrics, database = %redact_url(&url), "vpcd serving");

    background.set_listen(bound.http, bound.https);
    // `--workers 0` makes a vpcd that serves the API but applies no tasks.
    tasks.extend(background.spawn(&shutdown_rx));
    Ok(Running {
        bound,
        api,
        background,
        shutdown_tx,
        http_handle,
        https_handle,
        tasks,
    })
}

impl Running {
    pub fn store(&self) -> Arc<dyn Store> {
        self.api.store.clone()
    }

    /// Claim and run one task; whether there was one. With `workers: 0`,
    /// tests drain the task queue with this at a chosen point.
    pub async fn run_task(&self) -> anyhow::Result<bool> {
        self.background.run_task().await
    }

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
        // Nonces of the last requests, for the next process.
        self.api.replay.flush().await;
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
