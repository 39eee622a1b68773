//! SQL text, and the builders of the list, fetch and claim queries.
//!
//! Every builder returns an [`Sql`] whose parameters are numbered in the
//! order they were pushed, so the same text is sent for the same filters and
//! the prepared statement is reused.

use vpcd_types::id::{IdKind, UserGwKind, VpcKind, VpnConnKind, VpnGwKind};
use vpcd_types::{ConnStatus, GatewayNodeId, IdRef, TaskKind, VpnConnRowId};

use super::EncodedConn;
use super::{Engine, Sql};
use crate::common::like_pattern;
use crate::model::*;

/// Lock clauses, appended where [`Engine::ROW_LOCKS`] holds.
pub(crate) const FOR_UPDATE: &str = " FOR UPDATE";
pub(crate) const FOR_SHARE: &str = " FOR SHARE";

/// `clause` on an engine that locks rows, nothing on one whose single
/// writer already excludes every other.
pub(crate) fn lock<DB: Engine>(clause: &'static str) -> &'static str {
    if DB::ROW_LOCKS {
        clause
    } else {
        ""
    }
}

pub(crate) const KEY_SELECT: &str = "SELECT k.secret_id, k.secret_key, k.account_id, \
     k.disabled AS key_disabled, a.disabled AS account_disabled \
     FROM api_keys k JOIN accounts a ON a.id = k.account_id";

pub(crate) const VPC_SELECT: &str = "SELECT v.id, v.un_id, v.name, v.cidr, v.created_at, \
     (SELECT COUNT(*) FROM vpn_gws g WHERE g.vpc_id = v.id) AS vpn_gw_num \
     FROM vpcs v";

pub(crate) const VPN_GW_SELECT: &str = "SELECT g.id, g.un_id, g.name, g.bandwidth, \
     g.charge_type, g.charge_period, g.address, g.node_id, g.created_at, \
     v.id AS vpc_id, v.un_id AS vpc_un_id, v.name AS vpc_name, v.cidr AS vpc_cidr, \
     (SELECT COUNT(*) FROM vpn_conns c WHERE c.vpn_gw_id = g.id) AS conn_num \
     FROM vpn_gws g JOIN vpcs v ON v.id = g.vpc_id";

pub(crate) const USER_GW_SELECT: &str = "SELECT u.id, u.un_id, u.name, u.address, \
     u.created_at, (SELECT COUNT(*) FROM vpn_conns c WHERE c.user_gw_id = u.id) AS conn_num \
     FROM user_gws u";

const CONN_COLUMNS: &str = "SELECT c.id, c.un_id, c.name, c.status, c.net_status, c.settings, \
     c.tags, c.active_task, c.created_at, \
     v.id AS vpc_id, v.un_id AS vpc_un_id, v.name AS vpc_name, v.cidr AS vpc_cidr, \
     g.id AS gw_id, g.un_id AS gw_un_id, g.name AS gw_name, g.address AS gw_address, \
     g.node_id AS gw_node_id, \
     u.id AS ugw_id, u.un_id AS ugw_un_id, u.name AS ugw_name, u.address AS ugw_address";

const CONN_JOINS: &str = " JOIN vpcs v ON v.id = c.vpc_id \
     JOIN vpn_gws g ON g.id = c.vpn_gw_id \
     JOIN user_gws u ON u.id = c.user_gw_id";

/// The counts the per-gateway, per-peer and per-pair connection quotas
/// read, as columns `per_gw`, `per_user_gw` and `per_pair`; `gw` and
/// `user_gw` are the placeholders of the two gateways' row ids.
pub(crate) fn conn_quota_counts(gw: &str, user_gw: &str) -> String {
    format!(
        "(SELECT COUNT(*) FROM vpn_conns WHERE vpn_gw_id = {gw}) AS per_gw, \
         (SELECT COUNT(*) FROM vpn_conns WHERE user_gw_id = {user_gw}) AS per_user_gw, \
         (SELECT COUNT(*) FROM vpn_conns WHERE vpn_gw_id = {gw} AND user_gw_id = {user_gw}) \
         AS per_pair"
    )
}

/// Every column of a connection with its VPC and gateways.
pub(crate) fn conn_select() -> String {
    format!("{CONN_COLUMNS} FROM vpn_conns c{CONN_JOINS}")
}

/// The lowest free address in `[$1, $2]`: either `$1` itself or one past a
/// used address whose successor is free, both found through the address
/// index without reading every gateway.
pub(crate) const POOL_LOWEST_FREE: &str = "SELECT MIN(x) AS free FROM ( \
     SELECT $1 AS x WHERE NOT EXISTS (SELECT 1 FROM vpn_gws WHERE address_num = $1) \
     UNION ALL \
     SELECT g.address_num + 1 FROM vpn_gws g \
     WHERE g.address_num >= $1 AND g.address_num < $2 \
       AND NOT EXISTS (SELECT 1 FROM vpn_gws h WHERE h.address_num = g.address_num + 1)) p";

pub(crate) const GATEWAY_NODE_COLUMNS: &str = "id, name, vici, addresses, created_at";

pub(crate) const TASK_SELECT: &str = "SELECT id, kind, status, conn_id, conn_un_id, \
     vpn_gw_un_id, user_gw_un_id, error_code, error_msg, attempts, created_at, finished_at \
     FROM tasks";

/// Deletes up to `$2` finished tasks that finished before `$1`, oldest
/// first. `status <> 2` is written literally so the partial index
/// `tasks_finished` applies. A finished task is no connection's active task,
/// so no foreign key stands in the way.
pub(crate) const PRUNE_TASKS: &str = "DELETE FROM tasks WHERE id IN \
     (SELECT id FROM tasks WHERE status <> 2 AND finished_at < $1 \
      ORDER BY finished_at LIMIT $2)";

/// One statement: the primary key makes a concurrent duplicate conflict
/// (on PostgreSQL it waits for the first and then conflicts), and the
/// conflict only overwrites an entry that is outside the window.
pub(crate) const NONCE_INSERT: &str = "INSERT INTO nonces (secret_id, nonce, seen_at) \
     VALUES ($1, $2, $3) \
     ON CONFLICT (secret_id, nonce) DO UPDATE SET seen_at = excluded.seen_at \
     WHERE nonces.seen_at < $4";

/// Insert a connection of `scope` with unified id `un_id` in `status` (no
/// task, down), unless the id is taken.
pub(crate) fn conn_insert(
    un_id: &str,
    scope: &Scope,
    new: &NewConn,
    status: ConnStatus,
    encoded: &EncodedConn,
    now: Timestamp,
) -> Sql {
    conn_insert_owned((un_id, scope, new, status, encoded, now), "NULL")
}

/// [`conn_insert`] of `row` (its arguments in order), with `active_task`
/// set to the SQL expression `owner`.
fn conn_insert_owned(
    row: (&str, &Scope, &NewConn, ConnStatus, &EncodedConn, Timestamp),
    owner: &str,
) -> Sql {
    let (un_id, scope, new, status, encoded, now) = row;
    Sql::new(format!(
        "INSERT INTO vpn_conns (un_id, account_id, region, vpc_id, vpn_gw_id, user_gw_id, \
             name, status, net_status, active_task, settings, tags, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'unavailable', {owner}, $9, $11, $10) \
         ON CONFLICT (un_id) DO NOTHING"
    ))
    .arg(un_id)
    .arg(scope.account_id)
    .arg(&scope.region)
    .arg(new.vpc_id)
    .arg(new.vpn_gw_id)
    .arg(new.user_gw_id)
    .arg(&new.name)
    .arg(status.code())
    .arg(&encoded.settings)
    .arg(now)
    .arg(&encoded.tags)
}

/// The columns of a new task, in the order [`push_new_task`] gives them.
pub(crate) const NEW_TASK_COLUMNS: &str = "account_id, region, kind, status, conn_id, \
     conn_un_id, vpn_gw_un_id, user_gw_un_id, attempts, created_at";

/// The values of [`NEW_TASK_COLUMNS`] for a task of `kind` on the
/// connection `conn` (`None`: `c.id`, the connection inserted by the same
/// statement), whose unified id and gateways' unified ids are `un_ids`: it
/// is running and has never been attempted.
pub(crate) fn push_new_task(
    q: &mut Sql,
    scope: &Scope,
    kind: TaskKind,
    conn: Option<VpnConnRowId>,
    [conn_un_id, vpn_gw_un_id, user_gw_un_id]: [&str; 3],
    now: Timestamp,
) {
    q.bind(scope.account_id)
        .push(", ")
        .bind(&scope.region)
        .push(", ")
        .bind(kind.as_str())
        .push(", 2, ");
    match conn {
        Some(id) => q.bind(id),
        None => q.push("c.id"),
    };
    q.push(", ")
        .bind(conn_un_id)
        .push(", ")
        .bind(vpn_gw_un_id)
        .push(", ")
        .bind(user_gw_un_id)
        .push(", 0, ")
        .bind(now);
}

/// A new connection (as [`conn_insert`]) and its task of `kind` owning it,
/// in one statement, for an engine whose `WITH` clauses may write
/// ([`Engine::WRITES_IN_WITH`]). Returns `id` and `task_id`; no row at all
/// if the connection's random id was taken.
pub(crate) fn conn_with_task_insert(
    un_id: &str,
    scope: &Scope,
    new: &NewConn,
    encoded: &EncodedConn,
    now: Timestamp,
    kind: TaskKind,
    [vpn_gw_un_id, user_gw_un_id]: [&str; 2],
) -> Sql {
    // The task's id is drawn first, so the connection is inserted already
    // owned by it; the foreign key is checked at the end of the statement,
    // when the task row is in.
    let row = (un_id, scope, new, ConnStatus::Creating, encoded, now);
    let mut q = conn_insert_owned(row, "(SELECT id FROM t)");
    q.text.insert_str(
        0,
        "WITH t AS (SELECT nextval(pg_get_serial_sequence('tasks', 'id')) AS id), c AS (",
    );
    q.push(&format!(
        " RETURNING id, active_task), \
         k AS (INSERT INTO tasks (id, {NEW_TASK_COLUMNS}) SELECT c.active_task, "
    ));
    push_new_task(
        &mut q,
        scope,
        kind,
        None,
        [un_id, vpn_gw_un_id, user_gw_un_id],
        now,
    );
    // The scope's row is not locked here: the foreign keys are checked at
    // the end of the statement, and that work would be done under the lock.
    q.push(" FROM c RETURNING id, conn_id) SELECT conn_id AS id, id AS task_id FROM k");
    q
}

// ---- query builders -------------------------------------------------------

/// The tenancy filter. With `via_parent`, the caller also filters on a
/// parent (VPC, VPN gateway) whose index is far more selective than the
/// scope's; [`Engine::NOT_INDEXED`] keeps the planner from choosing the scope
/// index instead just because it matches the ORDER BY.
fn push_scope<DB: Engine>(q: &mut Sql, alias: &str, scope: &Scope, via_parent: bool) {
    let plus = if via_parent { DB::NOT_INDEXED } else { "" };
    q.push(&format!(" WHERE {plus}{alias}.account_id = "))
        .bind(scope.account_id)
        .push(&format!(" AND {plus}{alias}.region = "))
        .bind(&scope.region);
}

/// `id = n` for a numeric id, `un_id = 'x-...'` for a unified one.
pub(crate) fn push_own_id<K: IdKind>(q: &mut Sql, alias: &str, id: &IdRef<K>) {
    match id {
        IdRef::Numeric(n) => q.push(&format!(" AND {alias}.id = ")).bind(*n),
        IdRef::Unified(u) => q.push(&format!(" AND {alias}.un_id = ")).bind(u.as_str()),
    };
}

/// A foreign key matched by either id form; the unified form resolves
/// through the parent's unique index. The parent's scope needs no check: the
/// child row is already filtered by the caller's scope.
fn push_fk_id<K: IdKind>(q: &mut Sql, fk_col: &str, parent_table: &str, id: &IdRef<K>) {
    match id {
        IdRef::Numeric(n) => q.push(&format!(" AND {fk_col} = ")).bind(*n),
        IdRef::Unified(u) => q
            .push(&format!(
                " AND {fk_col} = (SELECT id FROM {parent_table} WHERE un_id = "
            ))
            .bind(u.as_str())
            .push(")"),
    };
}

/// An ASCII case-insensitive substring match, the caller's `%`, `_` and `\`
/// taken literally.
fn push_name_filter<DB: Engine>(q: &mut Sql, col: &str, name: &Option<String>) {
    if let Some(name) = name {
        q.push(&format!(" AND {col} {} ", DB::LIKE))
            .bind(like_pattern(name))
            .push(" ESCAPE '\\'");
    }
}

/// Ordering, tie-broken by id in the same direction.
fn push_order(q: &mut Sql, page: &Page, alias: &str) {
    let dir = if page.descending { "DESC" } else { "ASC" };
    let col = match page.order {
        Order::CreateTime => "created_at",
        Order::Name => "name",
    };
    q.push(&format!(" ORDER BY {alias}.{col} {dir}, {alias}.id {dir}"));
}

/// Ordering, then the page window.
pub(crate) fn push_page(q: &mut Sql, page: &Page, alias: &str) {
    push_order(q, page, alias);
    q.push(" LIMIT ")
        .bind(i64::from(page.limit))
        .push(" OFFSET ")
        .bind(i64::from(page.offset));
}

pub(crate) fn vpc_query<DB: Engine>(head: &str, scope: &Scope, f: &VpcFilter) -> Sql {
    let mut q = Sql::new(head);
    push_scope::<DB>(&mut q, "v", scope, false);
    if let Some(id) = &f.id {
        push_own_id(&mut q, "v", id);
    }
    push_name_filter::<DB>(&mut q, "v.name", &f.name);
    q
}

pub(crate) fn vpn_gw_query<DB: Engine>(head: &str, scope: &Scope, f: &VpnGwFilter) -> Sql {
    let mut q = Sql::new(head);
    push_scope::<DB>(&mut q, "g", scope, f.vpc.is_some());
    if let Some(vpc) = &f.vpc {
        push_fk_id(&mut q, "g.vpc_id", "vpcs", vpc);
    }
    if let Some(id) = &f.id {
        push_own_id(&mut q, "g", id);
    }
    push_name_filter::<DB>(&mut q, "g.name", &f.name);
    q
}

pub(crate) fn user_gw_query<DB: Engine>(head: &str, scope: &Scope, f: &UserGwFilter) -> Sql {
    let mut q = Sql::new(head);
    push_scope::<DB>(&mut q, "u", scope, false);
    if let Some(id) = &f.id {
        push_own_id(&mut q, "u", id);
    }
    push_name_filter::<DB>(&mut q, "u.name", &f.name);
    q
}

pub(crate) fn conn_query<DB: Engine>(head: &str, scope: &Scope, f: &ConnFilter) -> Sql {
    let mut q = Sql::new(head);
    push_scope::<DB>(&mut q, "c", scope, f.vpc.is_some() || f.vpn_gw.is_some());
    if let Some(vpc) = &f.vpc {
        push_fk_id(&mut q, "c.vpc_id", "vpcs", vpc);
    }
    if let Some(gw) = &f.vpn_gw {
        push_fk_id(&mut q, "c.vpn_gw_id", "vpn_gws", gw);
    }
    if let Some(id) = &f.id {
        push_own_id(&mut q, "c", id);
    }
    push_name_filter::<DB>(&mut q, "c.name", &f.name);
    q
}

/// A VPC of the scope by its id: [`VPC_SELECT`]'s columns.
pub(crate) fn vpc_by_ref<DB: Engine>(scope: &Scope, id: &IdRef<VpcKind>) -> Sql {
    let f = VpcFilter {
        id: Some(id.clone()),
        name: None,
    };
    vpc_query::<DB>(VPC_SELECT, scope, &f)
}

/// A VPN gateway of the scope by its id: [`VPN_GW_SELECT`]'s columns.
pub(crate) fn vpn_gw_by_ref<DB: Engine>(scope: &Scope, id: &IdRef<VpnGwKind>) -> Sql {
    let f = VpnGwFilter {
        id: Some(id.clone()),
        ..VpnGwFilter::default()
    };
    vpn_gw_query::<DB>(VPN_GW_SELECT, scope, &f)
}

/// A peer gateway of the scope by its id: [`USER_GW_SELECT`]'s columns.
pub(crate) fn user_gw_by_ref<DB: Engine>(scope: &Scope, id: &IdRef<UserGwKind>) -> Sql {
    let f = UserGwFilter {
        id: Some(id.clone()),
        name: None,
    };
    user_gw_query::<DB>(USER_GW_SELECT, scope, &f)
}

/// A connection of the scope by its id: [`conn_select`]'s columns.
pub(crate) fn conn_by_ref<DB: Engine>(scope: &Scope, id: &IdRef<VpnConnKind>) -> Sql {
    let f = ConnFilter {
        id: Some(id.clone()),
        ..ConnFilter::default()
    };
    conn_query::<DB>(&conn_select(), scope, &f)
}

/// One page of connections. A deferred join: the page of ids is cut from a
/// covering index and only those rows are joined, so a deep offset skips
/// index entries instead of joined rows.
///
/// A filter on the connection's own id matches one row at most, so its
/// first page is the plain join: on SQLite the deferred join would
/// materialize the one id and sort the one row in a temporary B-tree, which
/// doubled the cost of a DescribeVpnConn by id (26 against 14 µs a query).
pub(crate) fn conn_page_query<DB: Engine>(scope: &Scope, f: &ConnFilter, page: &Page) -> Sql {
    if f.id.is_some() && page.offset == 0 && page.limit > 0 {
        return conn_query::<DB>(&conn_select(), scope, f);
    }
    let mut q = conn_query::<DB>(
        &format!("{CONN_COLUMNS} FROM (SELECT c.id FROM vpn_conns c"),
        scope,
        f,
    );
    push_page(&mut q, page, "c");
    q.push(&format!(") p JOIN vpn_conns c ON c.id = p.id{CONN_JOINS}"));
    push_order(&mut q, page, "c");
    q
}

/// The columns a claim returns: [`TASK_SELECT`]'s and `account_id`.
const CLAIMED: &str = " RETURNING id, kind, status, conn_id, conn_un_id, vpn_gw_un_id, \
     user_gw_un_id, error_code, error_msg, attempts, created_at, finished_at, account_id";

/// The runnable tasks (unfinished, never claimed or their lease expired)
/// whose connection's gateway is on one of `nodes` (`None`: API only):
/// `FROM` and `WHERE` over `tasks t`. `status = 2` is written literally so
/// the partial index `tasks_running_by_account` (account, then age)
/// applies.
fn runnable(q: &mut Sql, now: Timestamp, nodes: &[Option<GatewayNodeId>]) {
    q.push(
        " FROM tasks t \
         JOIN vpn_conns c ON c.id = t.conn_id JOIN vpn_gws g ON g.id = c.vpn_gw_id \
         WHERE t.status = 2 AND (t.lease_until IS NULL OR t.lease_until < ",
    )
    .bind(now)
    .push(") AND (1 = 0");
    let ids: Vec<GatewayNodeId> = nodes.iter().flatten().copied().collect();
    if !ids.is_empty() {
        q.push(" OR g.node_id IN (");
        for (i, id) in ids.into_iter().enumerate() {
            q.push(if i == 0 { "" } else { ", " }).bind(id);
        }
        q.push(")");
    }
    if nodes.contains(&None) {
        q.push(" OR g.node_id IS NULL");
    }
    q.push(")");
}

/// The start of a claim: lease to `worker` and count the attempt.
fn lease(worker: &str, now: Timestamp, lease_secs: i64) -> Sql {
    let mut q = Sql::new("UPDATE tasks SET lease_owner = ");
    q.bind(worker)
        .push(", lease_until = ")
        .bind(now.saturating_add(lease_secs))
        .push(", attempts = attempts + 1");
    q
}

/// Claim the oldest runnable task of the first account after
/// `after_account` that has one, returning its columns ([`CLAIMED`]).
/// `SKIP LOCKED`: a task another worker is claiming or finishing right now
/// is passed over, never waited for or taken twice. For engines with row
/// locks, where claimers run concurrently.
pub(crate) fn claim_query<DB: Engine>(
    worker: &str,
    now: Timestamp,
    lease_secs: i64,
    nodes: &[Option<GatewayNodeId>],
    after_account: i64,
) -> Sql {
    let mut q = lease(worker, now, lease_secs);
    q.push(" WHERE id = (SELECT t.id");
    runnable(&mut q, now, nodes);
    q.push(" AND t.account_id > ")
        .bind(after_account)
        .push(" ORDER BY t.account_id, t.id LIMIT 1")
        .push(lock::<DB>(" FOR UPDATE OF t SKIP LOCKED"))
        .push(")")
        .push(CLAIMED);
    q
}

/// Claim up to `max` runnable tasks of one account, oldest first, in one
/// statement, passing over rows other claimers hold (`SKIP LOCKED`), and
/// returning their columns ([`CLAIMED`]). For engines with row locks, once
/// a whole round-robin pass found that account alone with runnable tasks.
pub(crate) fn claim_account_query<DB: Engine>(
    worker: &str,
    now: Timestamp,
    lease_secs: i64,
    nodes: &[Option<GatewayNodeId>],
    account: i64,
    max: usize,
) -> Sql {
    let mut q = lease(worker, now, lease_secs);
    q.push(" WHERE id IN (SELECT t.id");
    runnable(&mut q, now, nodes);
    q.push(" AND t.account_id = ")
        .bind(account)
        .push(" ORDER BY t.id LIMIT ")
        .bind(i64::try_from(max).unwrap_or(i64::MAX))
        .push(lock::<DB>(" FOR UPDATE OF t SKIP LOCKED"))
        .push(")")
        .push(CLAIMED);
    q
}

/// Claim up to `max` runnable tasks in one statement, round robin by
/// account: every account's oldest runnable task first, starting with the
/// first account after `after_account` and wrapping around, then every
/// account's second oldest, and so on; returning their columns
/// ([`CLAIMED`]) in no particular order. For an engine whose one writer
/// runs one claim at a time (SQLite): a concurrent claimer would compute
/// the same batch and find it taken.
pub(crate) fn claim_batch_query(
    worker: &str,
    now: Timestamp,
    lease_secs: i64,
    nodes: &[Option<GatewayNodeId>],
    after_account: i64,
    max: usize,
) -> Sql {
    let mut q = lease(worker, now, lease_secs);
    q.push(
        " WHERE id IN (SELECT id FROM (SELECT t.id, t.account_id, \
           ROW_NUMBER() OVER (PARTITION BY t.account_id ORDER BY t.id) AS turn",
    );
    runnable(&mut q, now, nodes);
    q.push(") r ORDER BY turn, CASE WHEN account_id > ")
        .bind(after_account)
        .push(" THEN 0 ELSE 1 END, account_id LIMIT ")
        .bind(i64::try_from(max).unwrap_or(i64::MAX))
        .push(")")
        .push(CLAIMED);
    q
}

/// The connections with the given row ids, with their parents' columns
/// ([`conn_select`]), for a claim.
pub(crate) fn conns_by_id(ids: &[VpnConnRowId]) -> Sql {
    let mut q = Sql::new(conn_select());
    q.push(" WHERE c.id IN (");
    for (i, id) in ids.iter().enumerate() {
        q.push(if i == 0 { "" } else { ", " }).bind(*id);
    }
    q.push(")");
    q
}

/// Connections to load on a node (`None`: API-only gateways). Loaded:
/// creating, modifying, modify failed, delete failed, running. Not loaded:
/// create failed (nothing to run) and deleting (going away). The status is
/// kept off its index, which matches nearly every row: the node's gateways
/// are the selective side.
pub(crate) fn desired_query<DB: Engine>(node_id: Option<GatewayNodeId>) -> Sql {
    let mut q = Sql::new(conn_select());
    q.push(&format!(
        " WHERE {}c.status IN (0, 2, 3, 5, 6)",
        DB::NOT_INDEXED
    ));
    match node_id {
        Some(n) => q.push(" AND g.node_id = ").bind(n),
        None => q.push(" AND g.node_id IS NULL"),
    };
    q.push(" ORDER BY c.id");
    q
}
