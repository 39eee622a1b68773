//! `vpcd admin`: accounts, keys, strongSwan gateway nodes, and the vpcd
//! processes of the cluster, directly on the database.
//!
//! Two kinds of thing are easily confused here: a *member* is a vpcd process
//! (`vpcd admin members`); a *gateway node* is a strongSwan charon that
//! serves VPN gateways (`vpcd admin gateway-node ...`).
//!
//! Every command opens the database with its master key, as `vpcd serve`
//! does ([`open_store`]); `vpcd admin master-key rotate` replaces that key.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use vpcd_dataplane::strongswan::StrongSwanDriver;
use vpcd_store::{MasterKey, Store};
use vpcd_types::GatewayNodeId;

use crate::background::cluster::{is_alive, MemberInfo, ALIVE_HEARTBEATS};
use crate::clock::Clock;
use crate::data_dir::{master_key_path, rotated_key_path};

/// Open the database (`database`: a URL or path; default: SQLite in the
/// data directory) with its master key (`master_key_file`; default:
/// `master.key` in the data directory, created on first use), as `vpcd
/// serve` does.
pub async fn open_store(
    data_dir: &Path,
    database: Option<&str>,
    master_key_file: Option<&Path>,
) -> anyhow::Result<Arc<dyn Store>> {
    crate::data_dir::restrict_umask();
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    let url = database.map_or_else(|| crate::server::default_database(data_dir), str::to_owned);
    crate::data_dir::open_store(data_dir, &url, master_key_file).await
}

/// `vpcd admin master-key rotate`: seal every secret of the database under a
/// new master key, in one transaction, then retire the old key.
///
/// Without `new_key_file` a fresh key replaces the current key file (it is
/// written beside it as `<file>.new` first and renamed over it once the
/// database is sealed under it, so an interruption loses no key). With
/// `new_key_file`, that file's key is used (a fresh key is written there if
/// it does not exist) and the current file is left for the operator to
/// delete: every vpcd must then be started with the new file.
///
/// Refused while vpcd processes are alive on the database (unless `force`):
/// they hold the old key and could no longer read the secrets.
pub async fn rotate_master_key(
    store: &dyn Store,
    data_dir: &Path,
    master_key_file: Option<&Path>,
    new_key_file: Option<&Path>,
    force: bool,
) -> anyhow::Result<()> {
    let now = Clock::default().now();
    let alive: Vec<String> = store
        .list_members()
        .await?
        .into_iter()
        .filter(|m| is_alive(m, now, 2000))
        .map(|m| m.name)
        .collect();
    if !alive.is_empty() && !force {
        anyhow::bail!(
            "vpcd processes are running on this database ({}): stop them first (they hold \
             the old key and could no longer read the secrets), or pass --force",
            alive.join(", ")
        );
    }
    let current = master_key_path(data_dir, master_key_file);
    let (new_key, target) = match new_key_file {
        Some(path) if path.exists() => (MasterKey::read(path)?, path.to_owned()),
        Some(path) => {
            let key = MasterKey::generate();
            key.write_new(path)?;
            (key, path.to_owned())
        }
        None => {
            let pending = rotated_key_path(&current);
            let key = MasterKey::generate();
            key.write_new(&pending).with_context(|| {
                format!(
                    "an earlier rotation may have stopped: if the database opens with {}, \
                     delete {} and try again; otherwise that file holds its key",
                    current.display(),
                    pending.display()
                )
            })?;
            (key, pending)
        }
    };
    let done = store.rotate_master_key(new_key).await.with_context(|| {
        format!(
            "rotating the master key (the database still opens with {} unless the commit \
             itself failed; {} holds the new key)",
            current.display(),
            target.display()
        )
    })?;
    println!(
        "re-sealed {} API SecretKeys and {} pre-shared keys under the new master key",
        done.secret_keys, done.psks
    );
    if new_key_file.is_none() {
        std::fs::rename(&target, &current).with_context(|| {
            format!(
                "the database is sealed under the key in {}: move it to {}",
                target.display(),
                current.display()
            )
        })?;
        println!(
            "{} holds the new key; the old key no longer opens the database",
            current.display()
        );
    } else {
        println!(
            "the database now opens with {} only: start every vpcd with --master-key-file {} \
             (VPCD_MASTER_KEY_FILE) and delete {}",
            target.display(),
            target.display(),
            current.display()
        );
    }
    Ok(())
}

/// Print accounts with their keys; secret keys are never printed here.
pub async fn list_accounts(store: &dyn Store) -> anyhow::Result<()> {
    for (account, keys) in store.list_accounts().await? {
        println!(
            "account {:>4}  {:<24} {}",
            account.id.get(),
            account.name,
            if account.disabled {
                "disabled"
            } else {
                "active"
            }
        );
        for k in keys {
            println!(
                "    key {}  {}",
                k.secret_id,
                if k.disabled { "disabled" } else { "active" }
            );
        }
    }
    Ok(())
}

/// Create an account with one key pair and print the pair once.
pub async fn create_account(store: &dyn Store, name: &str) -> anyhow::Result<()> {
    store.create_account(name).await?;
    create_key(store, name).await
}

/// Create another key pair for an account and print the pair once.
pub async fn create_key(store: &dyn Store, account: &str) -> anyhow::Result<()> {
    let key = store.create_key(account).await?;
    println!("account:   {account}");
    println!("SecretId:  {}", key.secret_id);
    println!("SecretKey: {}", key.secret_key.expose());
    Ok(())
}

/// Register a charon reachable over VICI (`name`: derived from the URI when
/// `None`); new VPN gateways are placed on it.
pub async fn gateway_node_add(
    store: &dyn Store,
    vici: &str,
    public_ips: &[IpAddr],
    name: Option<&str>,
) -> anyhow::Result<()> {
    StrongSwanDriver::new(vici).map_err(|e| anyhow::anyhow!("--vici {vici}: {e}"))?;
    let node = match name {
        Some(n) => store.add_gateway_node(n, vici, public_ips).await?,
        None => store.ensure_gateway_node(vici, public_ips).await?,
    };
    println!("gateway node {} ({}) at {}", node.id, node.name, node.vici);
    Ok(())
}

pub async fn gateway_node_list(store: &dyn Store) -> anyhow::Result<()> {
    for n in store.list_gateway_nodes().await? {
        let addrs: Vec<String> = n.addresses.iter().map(|a| a.to_string()).collect();
        println!(
            "{:>4}  {:<16} {:<40} {}",
            n.id.get(),
            n.name,
            n.vici,
            addrs.join(",")
        );
    }
    Ok(())
}

/// Remove a gateway node that no VPN gateway uses.
pub async fn gateway_node_remove(store: &dyn Store, id: i64) -> anyhow::Result<()> {
    Ok(store.remove_gateway_node(GatewayNodeId::new(id)).await?)
}

/// `vpcd admin members`: every vpcd process that heartbeats into this
/// database, whether it is alive, and which gateway nodes it drives (holds a
/// current lease on); then every gateway node with its driver.
pub async fn members(store: &dyn Store) -> anyhow::Result<()> {
    let now = Clock::default().now();
    let members = store.list_members().await?;
    let gateways = store.list_gateway_nodes().await?;
    let leases = store.gateway_leases().await?;
    let gw_name = |id: GatewayNodeId| {
        gateways
            .iter()
            .find(|g| g.id == id)
            .map_or_else(|| format!("#{id}"), |g| format!("{} (#{id})", g.name))
    };
    println!(
        "vpcd processes: {} (alive while the last heartbeat is younger than {ALIVE_HEARTBEATS} heartbeat intervals)",
        members.len()
    );
    println!(
        "{:<36} {:<5} {:>9} {:<20} {:>7} {:<21} DRIVES",
        "NAME", "STATE", "LAST SEEN", "STARTED", "PID", "HTTP"
    );
    for m in &members {
        let info = MemberInfo::parse(&m.info);
        let alive = is_alive(m, now, 2000);
        let drives: Vec<String> = leases
            .iter()
            .filter(|(_, holder, until)| holder == &m.name && *until >= now)
            .map(|(gw, _, _)| gw_name(*gw))
            .collect();
        println!(
            "{:<36} {:<5} {:>9} {:<20} {:>7} {:<21} {}",
            m.name,
            if alive { "alive" } else { "dead" },
            format!("{}s ago", now.saturating_sub(m.last_seen)),
            rfc3339(m.started_at),
            if info.pid == 0 {
                "-".to_owned()
            } else {
                info.pid.to_string()
            },
            info.http.as_deref().unwrap_or("-"),
            if drives.is_empty() {
                "-".to_owned()
            } else {
                drives.join(", ")
            },
        );
    }
    println!("gateway nodes: {}", gateways.len());
    for g in &gateways {
        let state = match leases.iter().find(|(id, _, _)| *id == g.id) {
            Some((_, holder, until)) if *until >= now => {
                format!("driven by {holder} (lease for {}s more)", until - now)
            }
            Some((_, holder, until)) => format!(
                "NOT DRIVEN: the lease of {holder} expired {}s ago",
                now - until
            ),
            None => "NOT DRIVEN: no vpcd holds its lease".to_owned(),
        };
        println!("  {:<28} {:<36} {state}", gw_name(g.id), g.vici);
    }
    Ok(())
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// Shortest console password `vpcd admin account password` accepts.
const CONSOLE_PASSWORD_MIN: usize = 12;

/// `vpcd admin account password NAME`: set the account's web-console
/// password from the first line of standard input (the password never
/// appears in the process list or shell history), storing only its salted
/// Argon2id hash; `clear` removes it.
pub async fn set_console_password(
    store: &dyn Store,
    name: &str,
    clear: bool,
) -> anyhow::Result<()> {
    if clear {
        store.set_console_password(name, None).await?;
        println!("console password of {name} removed");
        return Ok(());
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = vpcd_types::Secret::new(line.trim_end_matches(['\r', '\n']));
    let len = password.expose().chars().count();
    if !(CONSOLE_PASSWORD_MIN..=1024).contains(&len) {
        anyhow::bail!(
            "the password must be {CONSOLE_PASSWORD_MIN} to 1024 characters long (got {len})"
        );
    }
    let hash = crate::console::session::hash_password(password.expose())
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?;
    store.set_console_password(name, Some(&hash)).await?;
    println!("console password of {name} set");
    Ok(())
}
