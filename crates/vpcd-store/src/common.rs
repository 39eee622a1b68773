//! The rules and helpers of the store that involve no SQL: state
//! transitions, address choice, names, and decoding rows into the model.

use std::collections::HashMap;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::distributions::Alphanumeric;
use rand::rngs::OsRng;
use rand::Rng;
use vpcd_types::id::{UserGwKind, VpnGwKind};
use vpcd_types::{
    Cidr, ConnSettings, ConnStatus, GatewayNodeId, NetStatus, RowId, Secret, TaskKind, TaskStatus,
    UserGwId, VpcId, VpnConnId, VpnGwId,
};

use crate::master_key::{Column, MasterKey};
use crate::model::*;
use crate::{Quota, Resource, Result, StoreError};

/// Cluster members not seen for this long are forgotten by `heartbeat`.
pub(crate) const MEMBER_FORGET_SECS: i64 = 24 * 3600;
/// Suffixes tried by `ensure_gateway_node` for a free default name.
pub(crate) const NODE_NAME_ATTEMPTS: u32 = 1000;

/// A gateway node's address list as stored: a JSON array of strings.
pub(crate) fn encode_addresses(addresses: &[IpAddr]) -> String {
    let text: Vec<String> = addresses.iter().map(IpAddr::to_string).collect();
    serde_json::Value::from(text).to_string()
}

pub(crate) fn decode_addresses(text: &str) -> Result<Vec<IpAddr>> {
    let corrupt = || StoreError::Backend("malformed gateway node addresses in the database".into());
    let list: Vec<String> = serde_json::from_str(text).map_err(|_| corrupt())?;
    list.iter()
        .map(|a| a.parse().map_err(|_| corrupt()))
        .collect()
}

/// The address a new gateway on a node gets: the one the fewest of the
/// node's gateways use (`used`: gateways per address), ties broken by the
/// lowest address. `None` when the node has no address.
pub(crate) fn least_used_address(
    addresses: &[IpAddr],
    used: &HashMap<IpAddr, i64>,
) -> Option<IpAddr> {
    addresses
        .iter()
        .min_by_key(|a| (used.get(a).copied().unwrap_or(0), **a))
        .copied()
}

/// The name `ensure_gateway_node` gives a node it creates: `local` for a
/// UNIX socket, the host of a `tcp://host:port` URI otherwise.
pub(crate) fn default_node_name(vici: &str) -> String {
    let rest = match vici.split_once("://") {
        Some(("unix", _)) | None => return "local".to_owned(),
        Some((_, rest)) => rest,
    };
    let host = rest.split('/').next().unwrap_or("");
    // `[v6]:port`, `host:port` or a bare host.
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    let clean: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if clean.is_empty() {
        "local".to_owned()
    } else {
        clean
    }
}

/// `base` for the first attempt, then `base-2`, `base-3`, ...
pub(crate) fn numbered_name(base: &str, n: u32) -> String {
    if n <= 1 {
        base.to_owned()
    } else {
        format!("{base}-{n}")
    }
}

// ---- small helpers --------------------------------------------------------

pub(crate) fn unix_now() -> Timestamp {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(crate) fn random_alnum(len: usize) -> String {
    OsRng
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Stored data goes through the same parsers as input (never trusted raw).
pub(crate) fn parse<T: FromStr>(text: &str, what: &str) -> Result<T> {
    text.parse().map_err(|_| corrupt(what))
}

pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!("malformed {what} in the database"))
}

pub(crate) fn vanished(what: &str) -> StoreError {
    StoreError::Backend(format!(
        "{what} written in this transaction cannot be read back"
    ))
}

/// A substring pattern for `LIKE ... ESCAPE '\'` in which the caller's `%`,
/// `_` and `\` are literal characters.
pub(crate) fn like_pattern(s: &str) -> String {
    let mut p = String::with_capacity(s.len() + 2);
    p.push('%');
    for ch in s.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(ch);
    }
    p.push('%');
    p
}

pub(crate) fn check_quota(count: i64, limit: u32, quota: Quota) -> Result<()> {
    if count >= i64::from(limit) {
        Err(StoreError::LimitExceeded(quota))
    } else {
        Ok(())
    }
}

pub(crate) fn ipv4_num(addr: IpAddr) -> Option<i64> {
    match addr {
        IpAddr::V4(v4) => Some(i64::from(u32::from(v4))),
        IpAddr::V6(_) => None,
    }
}

/// A connection's settings as stored: their JSON with the pre-shared key
/// sealed under `key` for the connection `un_id`.
pub(crate) fn encode_settings(
    settings: &ConnSettings,
    key: &MasterKey,
    un_id: &str,
) -> Result<String> {
    let stored = ConnSettings {
        pre_shared_key: Secret::new(key.seal(
            Column::Psk,
            un_id,
            settings.pre_shared_key.expose(),
        )?),
        ..settings.clone()
    };
    // The serde error could quote a value; say only what failed.
    serde_json::to_string(&stored)
        .map_err(|_| StoreError::Backend("cannot encode connection settings".into()))
}

/// The field of the stored settings that holds the (sealed) pre-shared key.
pub(crate) const PSK_FIELD: &str = "pre_shared_key";

/// The settings stored for connection `un_id`, their pre-shared key
/// unsealed.
fn decode_settings(text: &str, key: &MasterKey, un_id: &str) -> Result<ConnSettings> {
    // The serde error could quote part of the document: report only which
    // row is damaged.
    let mut settings: ConnSettings =
        serde_json::from_str(text).map_err(|_| corrupt("connection settings"))?;
    settings.pre_shared_key = key.open(Column::Psk, un_id, settings.pre_shared_key.expose())?;
    Ok(settings)
}

/// The first and last host address of an IPv4 pool, as numbers (network
/// and broadcast excluded, except in a /31 or /32, RFC 3021).
pub(crate) fn pool_range(net: ipnet::IpNet) -> Result<(i64, i64)> {
    let ipnet::IpNet::V4(v4) = net else {
        return Err(StoreError::Backend(
            "only IPv4 gateway address pools are supported".into(),
        ));
    };
    let first = i64::from(u32::from(v4.network()));
    let last = i64::from(u32::from(v4.broadcast()));
    Ok(if v4.prefix_len() >= 31 {
        (first, last)
    } else {
        (first + 1, last - 1)
    })
}

/// The address found by the lowest-free query, checked against the pool.
pub(crate) fn pool_address(free: Option<i64>, (lo, hi): (i64, i64)) -> Result<IpAddr> {
    match free {
        Some(n) if (lo..=hi).contains(&n) => {
            let n = u32::try_from(n).map_err(|_| corrupt("gateway address"))?;
            Ok(IpAddr::V4(n.into()))
        }
        _ => Err(StoreError::PoolExhausted),
    }
}

// ---- decoding rows --------------------------------------------------------

/// Typed column access to a result row, so rows are decoded into the model
/// by one set of functions.
pub(crate) trait StoreRow {
    fn opt_int(&self, col: &str) -> Result<Option<i64>>;
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    /// A boolean column (an integer 0/1 in SQLite).
    fn flag(&self, col: &str) -> Result<bool>;

    fn int(&self, col: &str) -> Result<i64> {
        self.opt_int(col)?.ok_or_else(|| null(col))
    }
    /// A row id of kind `K`.
    fn id<K>(&self, col: &str) -> Result<RowId<K>> {
        self.int(col).map(RowId::new)
    }
    fn opt_id<K>(&self, col: &str) -> Result<Option<RowId<K>>> {
        Ok(self.opt_int(col)?.map(RowId::new))
    }
    fn text(&self, col: &str) -> Result<String> {
        self.opt_text(col)?.ok_or_else(|| null(col))
    }
}

fn null(col: &str) -> StoreError {
    StoreError::Backend(format!("unexpected NULL in column {col}"))
}

pub(crate) fn account_from_row(row: &impl StoreRow) -> Result<Account> {
    Ok(Account {
        id: row.id("id")?,
        name: row.text("name")?,
        disabled: row.flag("disabled")?,
        created_at: row.int("created_at")?,
    })
}

/// An API key, its SecretKey unsealed (signatures are checked with it in
/// clear).
pub(crate) fn key_from_row(row: &impl StoreRow, key: &MasterKey) -> Result<ApiKey> {
    let secret_id = row.text("secret_id")?;
    let secret_key = key.open(Column::SecretKey, &secret_id, &row.text("secret_key")?)?;
    Ok(ApiKey {
        secret_id,
        secret_key,
        account_id: row.id("account_id")?,
        disabled: row.flag("key_disabled")? || row.flag("account_disabled")?,
    })
}

/// The VPC columns, under `prefix` (`""` or `"vpc_"`).
fn vpc_ref_from_row(row: &impl StoreRow, prefix: &str) -> Result<VpcRef> {
    Ok(VpcRef {
        id: row.id(&format!("{prefix}id"))?,
        un_id: parse::<VpcId>(&row.text(&format!("{prefix}un_id"))?, "vpc id")?,
        name: row.text(&format!("{prefix}name"))?,
        cidr: parse::<Cidr>(&row.text(&format!("{prefix}cidr"))?, "vpc cidr")?,
    })
}

pub(crate) fn vpc_from_row(row: &impl StoreRow) -> Result<Vpc> {
    let r = vpc_ref_from_row(row, "")?;
    Ok(Vpc {
        id: r.id,
        un_id: r.un_id,
        name: r.name,
        cidr: r.cidr,
        vpn_gw_num: row.int("vpn_gw_num")?,
        created_at: row.int("created_at")?,
    })
}

pub(crate) fn vpn_gw_from_row(row: &impl StoreRow) -> Result<VpnGw> {
    Ok(VpnGw {
        id: row.id("id")?,
        un_id: parse::<VpnGwId>(&row.text("un_id")?, "vpn gateway id")?,
        vpc: vpc_ref_from_row(row, "vpc_")?,
        name: row.text("name")?,
        bandwidth: row.int("bandwidth")?,
        charge_type: row.text("charge_type")?,
        charge_period: row.opt_int("charge_period")?,
        address: parse::<IpAddr>(&row.text("address")?, "gateway address")?,
        node_id: row.opt_id("node_id")?,
        conn_num: row.int("conn_num")?,
        created_at: row.int("created_at")?,
    })
}

pub(crate) fn user_gw_from_row(row: &impl StoreRow) -> Result<UserGw> {
    Ok(UserGw {
        id: row.id("id")?,
        un_id: parse::<UserGwId>(&row.text("un_id")?, "peer gateway id")?,
        name: row.text("name")?,
        address: parse::<IpAddr>(&row.text("address")?, "peer address")?,
        conn_num: row.int("conn_num")?,
        created_at: row.int("created_at")?,
    })
}

/// A connection's stored `status` code.
pub(crate) fn conn_status(code: i64) -> Result<ConnStatus> {
    ConnStatus::from_code(code).ok_or_else(|| corrupt("connection status"))
}

/// A connection's stored `net_status` text.
pub(crate) fn net_status_of(text: &str) -> Result<NetStatus> {
    match text {
        "available" => Ok(NetStatus::Available),
        "unavailable" => Ok(NetStatus::Unavailable),
        _ => Err(corrupt("connection net status")),
    }
}

/// What a connection shows of its VPC and gateways, and its gateway's
/// node.
pub(crate) struct ConnParents {
    pub(crate) vpc: VpcRef,
    pub(crate) vpn_gw: GwRef<VpnGwKind>,
    pub(crate) user_gw: GwRef<UserGwKind>,
    pub(crate) node_id: Option<GatewayNodeId>,
}

/// A connection's parents from the columns `vpc_*`, `gw_*` and `ugw_*`
/// (`gw_node_id` for the node), as a connection's rows name them.
pub(crate) fn conn_parents_from_row(row: &impl StoreRow) -> Result<ConnParents> {
    Ok(ConnParents {
        vpc: vpc_ref_from_row(row, "vpc_")?,
        vpn_gw: GwRef {
            id: row.id("gw_id")?,
            un_id: parse::<VpnGwId>(&row.text("gw_un_id")?, "vpn gateway id")?,
            name: row.text("gw_name")?,
            address: parse::<IpAddr>(&row.text("gw_address")?, "gateway address")?,
        },
        user_gw: GwRef {
            id: row.id("ugw_id")?,
            un_id: parse::<UserGwId>(&row.text("ugw_un_id")?, "peer gateway id")?,
            name: row.text("ugw_name")?,
            address: parse::<IpAddr>(&row.text("ugw_address")?, "peer address")?,
        },
        node_id: row.opt_id("gw_node_id")?,
    })
}

/// A connection, its pre-shared key unsealed.
pub(crate) fn conn_from_row(row: &impl StoreRow, key: &MasterKey) -> Result<VpnConn> {
    let status = row.int("status")?;
    let net_status = row.text("net_status")?;
    let un_id = parse::<VpnConnId>(&row.text("un_id")?, "connection id")?;
    let settings = decode_settings(&row.text("settings")?, key, un_id.as_str())?;
    let parents = conn_parents_from_row(row)?;
    Ok(VpnConn {
        id: row.id("id")?,
        un_id,
        vpc: parents.vpc,
        vpn_gw: parents.vpn_gw,
        user_gw: parents.user_gw,
        name: row.text("name")?,
        status: conn_status(status)?,
        net_status: net_status_of(&net_status)?,
        settings,
        tags: serde_json::from_str(&row.text("tags")?).map_err(|_| corrupt("connection tags"))?,
        active_task: row.opt_id("active_task")?,
        node_id: parents.node_id,
        created_at: row.int("created_at")?,
    })
}

pub(crate) fn gateway_node_from_row(row: &impl StoreRow) -> Result<GatewayNode> {
    Ok(GatewayNode {
        id: row.id("id")?,
        name: row.text("name")?,
        vici: row.text("vici")?,
        addresses: decode_addresses(&row.text("addresses")?)?,
        created_at: row.int("created_at")?,
    })
}

pub(crate) fn member_from_row(row: &impl StoreRow) -> Result<ClusterMember> {
    Ok(ClusterMember {
        name: row.text("name")?,
        started_at: row.int("started_at")?,
        last_seen: row.int("last_seen")?,
        info: row.text("info")?,
    })
}

pub(crate) fn lease_from_row(row: &impl StoreRow) -> Result<GatewayLease> {
    Ok((
        row.id("gateway_node_id")?,
        row.text("holder")?,
        row.int("until")?,
    ))
}

pub(crate) fn task_from_row(row: &impl StoreRow) -> Result<Task> {
    let status = row.int("status")?;
    let error_code = row.opt_text("error_code")?;
    let error_msg = row.opt_text("error_msg")?;
    Ok(Task {
        id: row.id("id")?,
        kind: parse::<TaskKind>(&row.text("kind")?, "task kind")?,
        status: TaskStatus::from_code(status).ok_or_else(|| corrupt("task status"))?,
        conn_id: row.id("conn_id")?,
        conn_un_id: parse::<VpnConnId>(&row.text("conn_un_id")?, "connection id")?,
        vpn_gw_un_id: parse::<VpnGwId>(&row.text("vpn_gw_un_id")?, "vpn gateway id")?,
        user_gw_un_id: parse::<UserGwId>(&row.text("user_gw_un_id")?, "peer gateway id")?,
        error: error_code.map(|error_code| TaskError {
            error_code,
            error_msg: error_msg.unwrap_or_default(),
        }),
        attempts: row.int("attempts")?,
        created_at: row.int("created_at")?,
        finished_at: row.opt_int("finished_at")?,
    })
}

/// The connection's state after its task finished (`None`: the connection
/// is removed).
pub(crate) fn state_after(kind: TaskKind, ok: bool) -> Option<ConnStatus> {
    match (kind, ok) {
        (TaskKind::Create, true) => Some(ConnStatus::Running),
        (TaskKind::Create, false) => Some(ConnStatus::CreateFailed),
        (TaskKind::Modify, true) => Some(ConnStatus::Running),
        (TaskKind::Modify, false) => Some(ConnStatus::ModifyFailed),
        (TaskKind::Delete, true) => None,
        (TaskKind::Delete, false) => Some(ConnStatus::DeleteFailed),
        (TaskKind::Reset, _) => Some(ConnStatus::Running),
    }
}

/// The states a new task of `kind` may start from, and the state it moves
/// the connection to (`None`: unchanged). `Backend` for a create, which
/// only `create_conn` makes.
pub(crate) fn task_start_rule(
    kind: TaskKind,
) -> Result<(&'static [ConnStatus], Option<ConnStatus>)> {
    use ConnStatus::*;
    Ok(match kind {
        TaskKind::Modify => (&[Running, ModifyFailed], Some(Modifying)),
        TaskKind::Delete => (
            &[Running, CreateFailed, ModifyFailed, DeleteFailed],
            Some(Deleting),
        ),
        TaskKind::Reset => (&[Running], None),
        TaskKind::Create => {
            return Err(StoreError::Backend(
                "create tasks are made by create_conn".into(),
            ))
        }
    })
}

/// A resource that may only be deleted while nothing refers to it: its
/// table, and the table and column of its dependants.
pub(crate) struct Parent {
    pub(crate) table: &'static str,
    pub(crate) child_table: &'static str,
    pub(crate) child_fk: &'static str,
    pub(crate) resource: Resource,
}

/// A VPC is in use while it has VPN gateways.
pub(crate) const VPC_PARENT: Parent = Parent {
    table: "vpcs",
    child_table: "vpn_gws",
    child_fk: "vpc_id",
    resource: Resource::Vpc,
};
/// A VPN gateway is in use while it has connections.
pub(crate) const VPN_GW_PARENT: Parent = Parent {
    table: "vpn_gws",
    child_table: "vpn_conns",
    child_fk: "vpn_gw_id",
    resource: Resource::VpnGw,
};
/// A peer gateway is in use while it has connections.
pub(crate) const USER_GW_PARENT: Parent = Parent {
    table: "user_gws",
    child_table: "vpn_conns",
    child_fk: "user_gw_id",
    resource: Resource::UserGw,
};
/// A gateway node is in use while VPN gateways are placed on it.
pub(crate) const GATEWAY_NODE_PARENT: Parent = Parent {
    table: "gateway_nodes",
    child_table: "vpn_gws",
    child_fk: "node_id",
    resource: Resource::GatewayNode,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(like_pattern("a%b_c\\d"), "%a\\%b\\_c\\\\d%");
        assert_eq!(like_pattern(""), "%%");
    }

    #[test]
    fn random_alnum_alphabet() {
        let s = random_alnum(32);
        assert_eq!(s.len(), 32);
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[test]
    fn pool_ranges() {
        assert_eq!(
            pool_range("192.0.2.0/30".parse().unwrap()).unwrap(),
            (0xC000_0201, 0xC000_0202)
        );
        assert_eq!(
            pool_range("192.0.2.7/32".parse().unwrap()).unwrap(),
            (0xC000_0207, 0xC000_0207)
        );
        assert!(pool_range("2001:db8::/64".parse().unwrap()).is_err());
    }

    #[test]
    fn default_names() {
        assert_eq!(default_node_name("unix:///var/run/charon.vici"), "local");
        assert_eq!(default_node_name("tcp://192.0.2.10:4502"), "192.0.2.10");
        assert_eq!(default_node_name("tcp://[2001:db8::1]:4502"), "2001-db8--1");
        assert_eq!(
            default_node_name("tcp://gw1.example.com"),
            "gw1.example.com"
        );
        assert_eq!(default_node_name("/var/run/charon.vici"), "local");
        assert_eq!(numbered_name("local", 1), "local");
        assert_eq!(numbered_name("local", 3), "local-3");
    }

    #[test]
    fn least_used_then_lowest() {
        let a: IpAddr = "198.51.100.9".parse().unwrap();
        let b: IpAddr = "198.51.100.8".parse().unwrap();
        let mut used = HashMap::new();
        assert_eq!(least_used_address(&[a, b], &used), Some(b));
        used.insert(b, 1);
        assert_eq!(least_used_address(&[a, b], &used), Some(a));
        used.insert(a, 1);
        assert_eq!(least_used_address(&[a, b], &used), Some(b));
        assert_eq!(least_used_address(&[], &used), None);
    }

    #[test]
    fn addresses_round_trip() {
        let list: Vec<IpAddr> = vec!["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()];
        assert_eq!(decode_addresses(&encode_addresses(&list)).unwrap(), list);
        assert!(decode_addresses("[\"nope\"]").is_err());
    }
}
