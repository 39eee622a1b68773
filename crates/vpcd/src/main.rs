//! The `vpcd` binary: `serve`, `call`, `admin`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;
use vpcd::server::ServeConfig;
use vpcd::{RateLimit, Regions, Settings};
use vpcd_auth::SignatureMethod;
use vpcd_store::Limits;

#[derive(Parser)]
#[command(
    name = "vpcd",
    version,
    about = "A Tencent Cloud VPC API v2 compatible VPN control plane"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as text (default) or as one JSON object per line, each
    /// line of an API request carrying its `request_id`.
    #[arg(long, global = true, env = "VPCD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the v2 API over HTTP and HTTPS.
    Serve(Box<ServeArgs>),
    /// Sign and send one v2 request: `vpcd call AddVpnConnEx vpcId=... IKESet.dhGroupName=group2`.
    Call(CallArgs),
    /// Manage accounts, keys and gateway nodes, and show the cluster,
    /// directly on the database.
    Admin(AdminArgs),
}

#[derive(Args)]
struct DbArgs {
    /// Data directory (SQLite database, TLS certificate, credentials file).
    #[arg(long, env = "VPCD_DATA_DIR", default_value = "./vpcd-data")]
    data_dir: PathBuf,
    /// Database URL: sqlite://PATH or postgres://... (default: SQLite in the data directory).
    #[arg(long, env = "VPCD_DATABASE_URL")]
    database: Option<String>,
    /// File holding the master key that seals API SecretKeys and PSKs in the
    /// database (64 hex digits, e.g. from `openssl rand -hex 32`). Default:
    /// <data-dir>/master.key, created on the first start. Every vpcd sharing
    /// a database needs the same key; a given file must exist.
    #[arg(long, env = "VPCD_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Plain HTTP listen address ("off" to disable).
    #[arg(long, env = "VPCD_HTTP", default_value = "127.0.0.1:8080")]
    http: String,
    /// HTTPS listen address ("off" to disable).
    #[arg(long, env = "VPCD_HTTPS", default_value = "127.0.0.1:8443")]
    https: String,
    /// PEM certificate for HTTPS (default: self-signed, generated in <data-dir>/tls/).
    #[arg(long, env = "VPCD_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS.
    #[arg(long, env = "VPCD_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Region written to the first-start credentials file.
    #[arg(long, env = "VPCD_REGION", default_value = "gz")]
    region: String,
    /// The regions served: `3.0-name=short-code,...` (an entry without `=`
    /// is one name for both protocols). Default: the public regions, e.g.
    /// `ap-guangzhou=gz`. Resources are stored under the short code.
    #[arg(long, env = "VPCD_REGIONS")]
    regions: Option<Regions>,
    /// Accepted distance between a request's Timestamp and the server clock, in seconds.
    #[arg(long, env = "VPCD_TIMESTAMP_WINDOW", default_value_t = 300)]
    timestamp_window: i64,
    /// Public addresses for VPN gateways without a gateway node.
    #[arg(long, env = "VPCD_GW_ADDRESS_POOL", default_value = "203.0.113.0/24")]
    gw_address_pool: IpNet,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "VPCD_MAX_BODY_BYTES", default_value_t = 65536)]
    max_body_bytes: usize,
    /// Seconds a worker owns a claimed task before another may take it over.
    #[arg(long, env = "VPCD_TASK_LEASE_SECS", default_value_t = 30)]
    task_lease_secs: i64,
    /// Tasks of gateway nodes (and of API-only gateways with --api-only-delay-ms) applied
    /// concurrently by this process; API-only tasks without a delay are applied in batches
    /// and need no worker (0: serve the API only, apply no tasks at all).
    #[arg(long, env = "VPCD_WORKERS", default_value_t = 4)]
    workers: usize,
    /// VICI URI of a single local strongSwan gateway node
    /// (`unix:///path/charon.vici` or `tcp://host:port`). Without it and
    /// without nodes registered by `vpcd admin gateway-node add`, vpcd runs API only:
    /// no IPsec is negotiated.
    #[arg(long, env = "VPCD_CHARON")]
    charon: Option<String>,
    /// Public address of the --charon node, used by its VPN gateways (repeat
    /// for several; each gateway gets its own while there are free ones).
    #[arg(long = "public-ip", env = "VPCD_PUBLIC_IP", value_delimiter = ',')]
    public_ip: Vec<std::net::IpAddr>,
    /// How often gateway nodes are reconciled with the database, in seconds.
    #[arg(long, env = "VPCD_RECONCILE_INTERVAL_SECS", default_value_t = 30)]
    reconcile_interval_secs: u64,
    /// Simulated latency of each API-only data-plane change, in milliseconds
    /// (to test client automation against realistic task timing).
    #[arg(long, env = "VPCD_API_ONLY_DELAY_MS", default_value_t = 0)]
    api_only_delay_ms: u64,
    /// How often this process heartbeats to the cluster and renews its
    /// gateway node leases, in milliseconds.
    #[arg(long, env = "VPCD_HEARTBEAT_INTERVAL_MS", default_value_t = 2000)]
    heartbeat_interval_ms: u64,
    /// Seconds a gateway node lease lasts without renewal: how long a dead
    /// vpcd's gateway nodes wait before another vpcd drives them.
    #[arg(long, env = "VPCD_GATEWAY_LEASE_SECS", default_value_t = 10)]
    gateway_lease_secs: i64,
    /// Seconds a finished task is kept (DescribeVpcTaskResult finds it)
    /// before it is deleted; 0 keeps tasks for ever. Default: 7 days.
    #[arg(long, env = "VPCD_TASK_RETENTION_SECS", default_value_t = vpcd::server::DEFAULT_TASK_RETENTION_SECS)]
    task_retention_secs: i64,
    /// Seconds between samples of each tunnel's traffic counters for
    /// DescribeVpnConnDiagnostics (only counters that moved are written).
    #[arg(long, env = "VPCD_DIAGNOSTICS_INTERVAL_SECS", default_value_t = 10)]
    diagnostics_interval_secs: u64,
    /// Milliseconds a client may take to send a request's headers (also
    /// how long an idle HTTP/2 connection may go unanswered); slower or
    /// silent clients are disconnected.
    #[arg(long, env = "VPCD_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000)]
    header_read_timeout_ms: u64,
    /// Milliseconds a client may take to send a request's body once its
    /// headers are in; a slower body is refused and the connection closed.
    #[arg(long, env = "VPCD_BODY_READ_TIMEOUT_MS", default_value_t = 10_000)]
    body_read_timeout_ms: u64,
    /// Milliseconds a request may take from its headers to its answer,
    /// body included; past it the client gets an error envelope.
    #[arg(long, env = "VPCD_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    request_timeout_ms: u64,
    /// Milliseconds a connection may stay open with no request in progress
    /// (counted from its start or its last answer): idle keep-alive
    /// connections and connections that never send a byte are closed.
    #[arg(long, env = "VPCD_IDLE_TIMEOUT_MS", default_value_t = 30_000)]
    idle_timeout_ms: u64,
    /// Connections each listener (HTTP, HTTPS) serves at once; one more
    /// waits up to the header-read timeout for a free slot, then is closed.
    #[arg(long, env = "VPCD_MAX_CONNECTIONS", default_value_t = 1024)]
    max_connections: usize,
    /// Serve Prometheus metrics at http://ADDR/metrics, on a listener of its
    /// own (never the API ports), e.g. 127.0.0.1:9100. Default: off.
    #[arg(long, env = "VPCD_METRICS", default_value = "off")]
    metrics: String,
    /// Signed requests per second each account may send on average (0: no
    /// limit); more are refused with RequestLimitExceeded (v2 code 4400).
    #[arg(long, env = "VPCD_RATE_LIMIT_PER_ACCOUNT", default_value_t = 20.0)]
    rate_limit_per_account: f64,
    /// Signed requests an account may send at once, above its rate.
    #[arg(long, env = "VPCD_RATE_LIMIT_BURST", default_value_t = 40)]
    rate_limit_burst: u32,
    /// The web console at /console/ on the same listeners: on or off.
    #[arg(long, env = "VPCD_CONSOLE", default_value = "on", value_parser = ["on", "off"])]
    console: String,
    /// How long a console sign-in lasts, in seconds (default 12 hours).
    #[arg(long, env = "VPCD_CONSOLE_SESSION_SECS", default_value_t = 43_200)]
    console_session_secs: u64,
    #[command(flatten)]
    limits: LimitArgs,
}

#[derive(Args)]
struct LimitArgs {
    #[arg(long, env = "VPCD_LIMIT_VPCS_PER_REGION", default_value_t = 5)]
    limit_vpcs_per_region: u32,
    #[arg(long, env = "VPCD_LIMIT_VPN_GWS_PER_VPC", default_value_t = 10)]
    limit_vpn_gws_per_vpc: u32,
    #[arg(long, env = "VPCD_LIMIT_USER_GWS_PER_REGION", default_value_t = 20)]
    limit_user_gws_per_region: u32,
    #[arg(long, env = "VPCD_LIMIT_CONNS_PER_VPN_GW", default_value_t = 20)]
    limit_conns_per_vpn_gw: u32,
    #[arg(long, env = "VPCD_LIMIT_CONNS_PER_USER_GW", default_value_t = 10)]
    limit_conns_per_user_gw: u32,
    #[arg(long, env = "VPCD_LIMIT_CONNS_PER_REGION", default_value_t = 100)]
    limit_conns_per_region: u32,
    /// Tunnels between one peer gateway and one VPN gateway.
    #[arg(long, env = "VPCD_LIMIT_CONNS_PER_PAIR", default_value_t = 1)]
    limit_conns_per_pair: u32,
    #[arg(long, env = "VPCD_LIMIT_SPD_RULES", default_value_t = 10)]
    limit_spd_rules: u32,
    #[arg(long, env = "VPCD_LIMIT_CIDRS_PER_SPD_RULE", default_value_t = 50)]
    limit_cidrs_per_spd_rule: u32,
    /// VPN gateways of one account (all regions together) holding an
    /// address of --gw-address-pool, so no account can take the whole pool.
    #[arg(
        long,
        env = "VPCD_LIMIT_POOL_ADDRESSES_PER_ACCOUNT",
        default_value_t = 32
    )]
    limit_pool_addresses_per_account: u32,
}

impl LimitArgs {
    fn limits(&self) -> Limits {
        Limits {
            vpcs_per_region: self.limit_vpcs_per_region,
            vpn_gws_per_vpc: self.limit_vpn_gws_per_vpc,
            user_gws_per_region: self.limit_user_gws_per_region,
            conns_per_vpn_gw: self.limit_conns_per_vpn_gw,
            conns_per_user_gw: self.limit_conns_per_user_gw,
            conns_per_region: self.limit_conns_per_region,
            conns_per_pair: self.limit_conns_per_pair,
            spd_rules_per_conn: self.limit_spd_rules,
            cidrs_per_spd_rule: self.limit_cidrs_per_spd_rule,
            pool_addresses_per_account: self.limit_pool_addresses_per_account,
        }
    }
}

#[derive(Args)]
struct CallArgs {
    /// The Action, e.g. DescribeVpnConn.
    action: String,
    /// Parameters as key=value (arrays as name.N=..., sets as IKESet.field=...).
    params: Vec<String>,
    #[arg(long, env = "VPCD_ENDPOINT", default_value = "http://127.0.0.1:8080")]
    endpoint: String,
    #[arg(long, env = "VPCD_REGION")]
    region: Option<String>,
    #[arg(long, env = "VPCD_SECRET_ID")]
    secret_id: Option<String>,
    #[arg(long, env = "VPCD_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    /// Credentials file written by `vpcd serve` on first start.
    #[arg(
        long,
        env = "VPCD_CREDENTIALS",
        default_value = "./vpcd-data/credentials"
    )]
    credentials: PathBuf,
    /// Send a POST with a form body instead of a GET.
    #[arg(long)]
    post: bool,
    /// HmacSHA1 or HmacSHA256.
    #[arg(long, default_value = "HmacSHA256")]
    signature_method: String,
    /// Trust this PEM certificate (e.g. <data-dir>/tls/cert.pem) for HTTPS.
    #[arg(long, env = "VPCD_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Poll a returned taskId until the task ends; fail if the task fails.
    #[arg(long)]
    wait: bool,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 120)]
    wait_timeout: u64,
}

#[derive(Args)]
struct AdminArgs {
    #[command(flatten)]
    db: DbArgs,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Accounts.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// API keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// strongSwan gateway nodes (charons reached over VICI) that serve VPN
    /// gateways.
    GatewayNode {
        #[command(subcommand)]
        command: GatewayNodeCommand,
    },
    /// The cluster's members (vpcd processes), their liveness, and the
    /// gateway nodes each one drives.
    Members,
    /// The master key that seals API SecretKeys and PSKs in the database.
    MasterKey {
        #[command(subcommand)]
        command: MasterKeyCommand,
    },
}

#[derive(Subcommand)]
enum MasterKeyCommand {
    /// Seal every secret under a new master key, in one transaction; the old
    /// key no longer opens the database. Stop every vpcd on the database
    /// first.
    Rotate {
        /// Take the new key from this file (a fresh key is written there,
        /// mode 0600, if it does not exist); every vpcd must then be started
        /// with `--master-key-file` naming it. Default: a fresh key replaces
        /// the current key file.
        #[arg(long)]
        new_key_file: Option<PathBuf>,
        /// Rotate even though vpcd processes look alive on the database.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum GatewayNodeCommand {
    /// Register a charon reachable over VICI; new VPN gateways are placed on it.
    Add {
        /// `unix:///path/charon.vici` or `tcp://host:port`.
        #[arg(long)]
        vici: String,
        /// Public address(es) for the node's VPN gateways (repeat or comma-separate).
        #[arg(long = "public-ip", value_delimiter = ',', required = true)]
        public_ip: Vec<std::net::IpAddr>,
        /// A name for the node (default: derived from the VICI URI).
        #[arg(long)]
        name: Option<String>,
    },
    /// List gateway nodes.
    List,
    /// Remove a gateway node that no VPN gateway uses.
    Remove { id: i64 },
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Create an account and its first key pair.
    Create { name: String },
    /// List accounts and their keys.
    List,
    /// Disable an account: its keys stop working.
    Disable { name: String },
    /// Enable a disabled account.
    Enable { name: String },
    /// Set the account's web-console password, read from the first line of
    /// standard input (at least 12 characters); only an Argon2id hash of it
    /// is stored. `--clear` removes it.
    Password {
        name: String,
        #[arg(long)]
        clear: bool,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create another key pair for an account.
    Create { account: String },
    /// Disable one key.
    Disable { secret_id: String },
}

fn parse_listen(v: &str, flag: &str) -> anyhow::Result<Option<SocketAddr>> {
    if v == "off" {
        return Ok(None);
    }
    v.parse()
        .map(Some)
        .with_context(|| format!("--{flag} {v:?} is not host:port or \"off\""))
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("VPCD_LOG")
        .or_else(|_| EnvFilter::try_new("info"))
        .expect("valid default filter");
    use std::io::IsTerminal;
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            // Colours only on a terminal: log files and journald get plain text.
            let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            fmt.with_ansi(ansi).init();
        }
        // One object per line: the event's fields at the top level, the
        // request's span (`request_id`, `protocol`) under `span`.
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

async fn open_store(db: &DbArgs) -> anyhow::Result<std::sync::Arc<dyn vpcd_store::Store>> {
    vpcd::admin::open_store(
        &db.data_dir,
        db.database.as_deref(),
        db.master_key_file.as_deref(),
    )
    .await
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match run(cli).await {
        Ok(code) => std::process::ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(exit_status(&e))
        }
    }
}

/// Exit status 78 (`EX_CONFIG`) when starting again cannot help until an
/// operator acts: the data directory (or database) is on a read-only file
/// system or not permitted. A supervisor told `RestartPreventExitStatus=78`
/// then does not loop. Any other failure: 2.
fn exit_status(e: &anyhow::Error) -> u8 {
    let needs_operator = e.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
            )
        })
    });
    if needs_operator {
        78
    } else {
        2
    }
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Serve(a) => {
            let regions = a.regions.clone().unwrap_or_default();
            if regions.canonical(&a.region).is_none() {
                anyhow::bail!(
                    "--region {:?} is not one of the served regions (--regions {regions})",
                    a.region
                );
            }
            let cfg = ServeConfig {
                data_dir: a.db.data_dir.clone(),
                database: a.db.database.clone(),
                master_key_file: a.db.master_key_file.clone(),
                http: parse_listen(&a.http, "http")?,
                https: parse_listen(&a.https, "https")?,
                tls_cert: a.tls_cert.clone(),
                tls_key: a.tls_key.clone(),
                region: a.region.clone(),
                settings: Settings {
                    limits: a.limits.limits(),
                    timestamp_window_secs: a.timestamp_window,
                    gw_address_pool: a.gw_address_pool,
                    max_body_bytes: a.max_body_bytes,
                    regions,
                    body_read_timeout: Duration::from_millis(a.body_read_timeout_ms.max(1)),
                    request_timeout: Duration::from_millis(a.request_timeout_ms.max(1)),
                    rate_limit: RateLimit {
                        per_second: a.rate_limit_per_account,
                        burst: a.rate_limit_burst,
                    },
                    console: vpcd::ConsoleSettings {
                        enabled: a.console == "on",
                        session_ttl: Duration::from_secs(a.console_session_secs.max(1)),
                    },
                },
                task_lease_secs: a.task_lease_secs,
                workers: a.workers,
                reconcile_interval: Duration::from_secs(a.reconcile_interval_secs),
                api_only_delay: Duration::from_millis(a.api_only_delay_ms),
                charon: a.charon.clone(),
                public_ips: a.public_ip.clone(),
                heartbeat_interval: Duration::from_millis(a.heartbeat_interval_ms.max(100)),
                gateway_lease_secs: a.gateway_lease_secs,
                task_retention_secs: a.task_retention_secs.max(0),
                diagnostics_interval: Duration::from_secs(a.diagnostics_interval_secs.max(1)),
                header_read_timeout: Duration::from_millis(a.header_read_timeout_ms.max(1)),
                idle_timeout: Duration::from_millis(a.idle_timeout_ms.max(1)),
                max_connections: a.max_connections.max(1),
                metrics: parse_listen(&a.metrics, "metrics")?,
            };
            vpcd::server::serve(cfg).await?;
            Ok(0)
        }
        Command::Call(a) => {
            let method = match a.signature_method.as_str() {
                "HmacSHA1" | "HmacSHA256" => SignatureMethod::from_param(Some(&a.signature_method)),
                other => {
                    anyhow::bail!("--signature-method {other:?}: expected HmacSHA1 or HmacSHA256")
                }
            };
            let opts = vpcd::client::CallOptions {
                endpoint: a.endpoint,
                region: a.region,
                secret_id: a.secret_id,
                secret_key: a.secret_key,
                credentials: a.credentials,
                post: a.post,
                method,
                ca_cert: a.ca_cert,
            };
            vpcd::client::run(
                opts,
                &a.action,
                &a.params,
                a.wait,
                Duration::from_secs(a.wait_timeout),
            )
            .await
        }
        Command::Admin(a) => {
            let store = open_store(&a.db).await?;
            match a.command {
                AdminCommand::Account { command } => match command {
                    AccountCommand::Create { name } => {
                        vpcd::admin::create_account(store.as_ref(), &name).await?
                    }
                    AccountCommand::List => vpcd::admin::list_accounts(store.as_ref()).await?,
                    AccountCommand::Disable { name } => {
                        store.set_account_disabled(&name, true).await?
                    }
                    AccountCommand::Enable { name } => {
                        store.set_account_disabled(&name, false).await?
                    }
                    AccountCommand::Password { name, clear } => {
                        vpcd::admin::set_console_password(store.as_ref(), &name, clear).await?
                    }
                },
                AdminCommand::GatewayNode { command } => match command {
                    GatewayNodeCommand::Add {
                        vici,
                        public_ip,
                        name,
                    } => {
                        vpcd::admin::gateway_node_add(
                            store.as_ref(),
                            &vici,
                            &public_ip,
                            name.as_deref(),
                        )
                        .await?
                    }
                    GatewayNodeCommand::List => {
                        vpcd::admin::gateway_node_list(store.as_ref()).await?
                    }
                    GatewayNodeCommand::Remove { id } => {
                        vpcd::admin::gateway_node_remove(store.as_ref(), id).await?
                    }
                },
                AdminCommand::Members => vpcd::admin::members(store.as_ref()).await?,
                AdminCommand::MasterKey {
                    command:
                        MasterKeyCommand::Rotate {
                            new_key_file,
                            force,
                        },
                } => {
                    vpcd::admin::rotate_master_key(
                        store.as_ref(),
                        &a.db.data_dir,
                        a.db.master_key_file.as_deref(),
                        new_key_file.as_deref(),
                        force,
                    )
                    .await?
                }
                AdminCommand::Key { command } => match command {
                    KeyCommand::Create { account } => {
                        vpcd::admin::create_key(store.as_ref(), &account).await?
                    }
                    KeyCommand::Disable { secret_id } => {
                        store.set_key_disabled(&secret_id, true).await?
                    }
                },
            }
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};

    #[derive(Parser)]
    struct Quotas {
        #[command(flatten)]
        limits: LimitArgs,
    }

    /// docs/actions.md: the quota flags default to the published limits,
    /// which are `Limits::default()` (what the library and tests use).
    #[test]
    fn quota_flags_default_to_the_store_defaults() {
        // Without the VPCD_LIMIT_* variables, so the environment of the
        // test run cannot stand in for a default.
        let cmd = Quotas::command().mut_args(|a| a.env(None));
        let matches = cmd.try_get_matches_from(["vpcd"]).unwrap();
        let parsed = Quotas::from_arg_matches(&matches).unwrap();
        assert_eq!(parsed.limits.limits(), Limits::default());
    }
}
