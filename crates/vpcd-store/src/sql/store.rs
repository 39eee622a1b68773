//! [`Store`] on any [`Engine`]: each operation's transaction, checks and
//! statements, written once.

use std::collections::HashSet;
use std::net::IpAddr;

use async_trait::async_trait;
use vpcd_types::id::{UserGwKind, VpcKind, VpnConnKind, VpnGwKind};
use vpcd_types::{
    ConnStatus, GatewayNodeId, IdRef, NetStatus, Secret, TaskId, TaskKind, TaskStatus, UserGwRowId,
    VpcRowId, VpnConnId, VpnConnRowId, VpnGwRowId,
};

use super::text::*;
use super::*;
use crate::master_key::{Column, MasterKey};
use crate::{Quota, Store};

#[async_trait]
impl<DB: Engine> Store for SqlStore<DB> {
    // ---- accounts and keys -------------------------------------------

    async fn create_account(&self, name: &str) -> Result<Account> {
        let now = unix_now();
        let name = name.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                let name = name.as_str();
                let q = Sql::new(
            "INSERT INTO accounts (name, disabled, created_at) VALUES ($1, FALSE, $2) RETURNING id",
        )
        .arg(name)
        .arg(now);
                let row = DB::one(&mut *tx, q)
                    .await
                    .map_err(name_taken::<DB>(Resource::Account, None))?;
                Ok(Account {
                    id: row.id("id")?,
                    name: name.to_owned(),
                    disabled: false,
                    created_at: now,
                })
            })
        })
        .await
    }

    async fn list_accounts(&self) -> Result<Vec<(Account, Vec<ApiKey>)>> {
        let (accounts, keys) = self
            .read_pair(
                Sql::new("SELECT id, name, disabled, created_at FROM accounts ORDER BY id"),
                Sql::new(format!(
                    "{KEY_SELECT} ORDER BY k.account_id, k.created_at, k.secret_id"
                )),
                Size::Bulk,
            )
            .await?;
        let master = self.key();
        let mut out = Vec::with_capacity(accounts.len());
        for row in &accounts {
            out.push((account_from_row(row)?, Vec::new()));
        }
        for row in &keys {
            let key = key_from_row(row, &master)?;
            // Both lists are ordered by account id.
            if let Ok(i) = out.binary_search_by_key(&key.account_id, |(a, _)| a.id) {
                out[i].1.push(key);
            }
        }
        Ok(out)
    }

    async fn create_key(&self, account: &str) -> Result<ApiKey> {
        let account = account.to_owned();
        let master = self.key();
        self.write(move |tx| {
            Box::pin(async move {
                let account = account.as_str();
                let find = Sql::new(format!(
                    "SELECT id, disabled FROM accounts WHERE name = $1{}",
                    lock::<DB>(FOR_SHARE)
                ))
                .arg(account);
                let row = DB::opt(&mut *tx, find)
                    .await?
                    .ok_or(StoreError::NotFound(Resource::Account))?;
                let account_id: AccountId = row.id("id")?;
                let now = unix_now();
                for _ in 0..ID_ATTEMPTS {
                    let secret_id = format!("AKID{}", random_alnum(32));
                    let secret_key = Secret::new(random_alnum(32));
                    let insert = Sql::new(
                "INSERT INTO api_keys (secret_id, secret_key, account_id, disabled, created_at) \
                 VALUES ($1, $2, $3, FALSE, $4) ON CONFLICT (secret_id) DO NOTHING",
            )
            .arg(&secret_id)
            .arg(master.seal(Column::SecretKey, &secret_id, secret_key.expose())?)
            .arg(account_id)
            .arg(now);
                    if DB::execute(&mut *tx, insert).await? == 1 {
                        return Ok(ApiKey {
                            secret_id,
                            secret_key,
                            account_id,
                            disabled: row.flag("disabled")?,
                        });
                    }
                }
                Err(StoreError::Backend(
                    "no free SecretId after several tries".into(),
                ))
            })
        })
        .await
    }

    async fn set_account_disabled(&self, account: &str, disabled: bool) -> Result<()> {
        let q = Sql::new("UPDATE accounts SET disabled = $1 WHERE name = $2")
            .arg(disabled)
            .arg(account);
        self.update_one(q, Resource::Account).await
    }

    async fn set_key_disabled(&self, secret_id: &str, disabled: bool) -> Result<()> {
        let q = Sql::new("UPDATE api_keys SET disabled = $1 WHERE secret_id = $2")
            .arg(disabled)
            .arg(secret_id);
        self.update_one(q, Resource::Key).await
    }

    async fn find_key(&self, secret_id: &str) -> Result<Option<ApiKey>> {
        let q = Sql::new(format!("{KEY_SELECT} WHERE k.secret_id = $1")).arg(secret_id);
        let row = self.read_opt(q).await?;
        row.as_ref()
            .map(|r| key_from_row(r, &self.key()))
            .transpose()
    }

    async fn remember_nonce(
        &self,
        secret_id: &str,
        nonce: &str,
        now: Timestamp,
        not_before: Timestamp,
    ) -> Result<bool> {
        let q = Sql::new(NONCE_INSERT)
            .arg(secret_id)
            .arg(nonce)
            .arg(now)
            .arg(not_before);
        let fresh = DB::record_nonce(&self.nonces, q).await? == 1;
        self.maybe_prune_nonces(now, not_before).await;
        Ok(fresh)
    }

    async fn record_nonces(
        &self,
        nonces: &[(String, String)],
        now: Timestamp,
        not_before: Timestamp,
    ) -> Result<()> {
        let table = DB::READ_NONCES.unwrap_or("nonces");
        for chunk in nonces.chunks(NONCE_BATCH_ROWS) {
            let mut q = Sql::new(format!(
                "INSERT INTO {table} (secret_id, nonce, seen_at) VALUES "
            ));
            for (i, (secret_id, nonce)) in chunk.iter().enumerate() {
                q.push(if i == 0 { "(" } else { ", (" });
                q.bind(secret_id)
                    .push(", ")
                    .bind(nonce)
                    .push(", ")
                    .bind(now);
                q.push(")");
            }
            if DB::READ_NONCES.is_none() {
                // As `remember_nonce`: a sighting older than the window is
                // replaced, so pruning never forgets a nonce still in it.
                q.push(
                    " ON CONFLICT (secret_id, nonce) DO UPDATE SET seen_at = excluded.seen_at \
                     WHERE nonces.seen_at < ",
                )
                .bind(not_before);
            }
            DB::record_nonce(&self.nonces, q).await?;
        }
        self.maybe_prune_nonces(now, not_before).await;
        Ok(())
    }

    async fn recent_nonces(
        &self,
        not_before: Timestamp,
        limit: usize,
    ) -> Result<Vec<(String, String, Timestamp)>> {
        let mut conn = self.nonces.acquire().await?;
        let mut q = Sql::new("SELECT secret_id, nonce, seen_at FROM nonces WHERE seen_at >= $1");
        if let Some(table) = DB::READ_NONCES {
            q.push(&format!(
                " UNION ALL SELECT secret_id, nonce, seen_at FROM {table} WHERE seen_at >= $1"
            ));
        }
        q.push(" ORDER BY seen_at DESC LIMIT $2");
        let q = q
            .arg(not_before)
            .arg(i64::try_from(limit).unwrap_or(i64::MAX));
        let rows = DB::fetch(&mut conn, q)
            .await?
            .iter()
            .map(|r| Ok((r.text("secret_id")?, r.text("nonce")?, r.int("seen_at")?)))
            .collect::<Result<Vec<_>>>()?;
        drop(conn);
        if let (Some(table), Some((_, _, oldest))) =
            (DB::READ_NONCES, rows.get(limit.wrapping_sub(1)))
        {
            // There may be more than the caller can hold, and it will check
            // the Timestamps they could be replays of with `remember_nonce`,
            // which looks in `nonces` only: copy the read nonces it may not
            // hold there first, in one statement and in key order (each
            // page of `nonces`' key is then written once, not once a row).
            let q = Sql::new(format!(
                "INSERT INTO nonces (secret_id, nonce, seen_at) \
                 SELECT secret_id, nonce, seen_at FROM {table} \
                 WHERE seen_at >= $1 AND seen_at <= $2 ORDER BY secret_id, nonce \
                 ON CONFLICT (secret_id, nonce) DO UPDATE SET seen_at = excluded.seen_at \
                 WHERE nonces.seen_at < excluded.seen_at"
            ))
            .arg(not_before)
            .arg(*oldest);
            DB::record_nonce(&self.nonces, q).await?;
        }
        Ok(rows)
    }

    // ---- VPCs -------------------------------------------------------------

    async fn create_vpc(&self, scope: &Scope, new: NewVpc, limits: &Limits) -> Result<Vpc> {
        let scope = scope.clone();
        let limits = limits.clone();
        self.write(move |tx| {
            Box::pin(async move {
                let (scope, limits) = (&scope, &limits);
                Self::lock_scope(&mut *tx, scope).await?;
                if Self::taken_in_scope(&mut *tx, "vpcs", "name", scope, &new.name).await? {
                    return Err(StoreError::NameInUse(Resource::Vpc));
                }
                let count = Self::count_in_scope(&mut *tx, "vpcs", scope).await?;
                check_quota(count, limits.vpcs_per_region, Quota::VpcsPerRegion)?;
                let now = unix_now();
                let (id, _) = Self::insert_unified::<VpcKind>(
                    &mut *tx,
                    |un_id| {
                        Ok(Sql::new(
                            "INSERT INTO vpcs (un_id, account_id, region, name, cidr, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (un_id) DO NOTHING RETURNING id",
                        )
                        .arg(un_id)
                        .arg(scope.account_id)
                        .arg(&scope.region)
                        .arg(&new.name)
                        .arg(new.cidr.as_given())
                        .arg(now))
                    },
                    name_taken::<DB>(Resource::Vpc, Some("name")),
                )
                .await?;
                let vpc = Self::fetch_vpc(&mut *tx, scope, &IdRef::Numeric(id.get()))
                    .await?
                    .ok_or_else(|| vanished("vpc"))?;
                Ok(vpc)
            })
        })
        .await
    }

    async fn get_vpc(&self, scope: &Scope, id: &IdRef<VpcKind>) -> Result<Option<Vpc>> {
        let row = self.read_opt(vpc_by_ref::<DB>(scope, id)).await?;
        row.as_ref().map(vpc_from_row).transpose()
    }

    async fn list_vpcs(
        &self,
        scope: &Scope,
        f: &VpcFilter,
        page: &Page,
    ) -> Result<(u64, Vec<Vpc>)> {
        let count = vpc_query::<DB>("SELECT COUNT(*) AS n FROM vpcs v", scope, f);
        let mut list = vpc_query::<DB>(VPC_SELECT, scope, f);
        push_page(&mut list, page, "v");
        self.list(count, list, page, f.id.is_some(), vpc_from_row)
            .await
    }

    async fn rename_vpc(&self, scope: &Scope, id: VpcRowId, name: &str) -> Result<()> {
        self.rename(scope, "vpcs", id, name, Resource::Vpc).await
    }

    async fn delete_vpc(&self, scope: &Scope, id: VpcRowId) -> Result<()> {
        self.delete_unused(Some(scope), id, &VPC_PARENT).await
    }

    // ---- VPN gateways -----------------------------------------------------

    async fn create_vpn_gw(&self, scope: &Scope, new: NewVpnGw, limits: &Limits) -> Result<VpnGw> {
        let scope = scope.clone();
        let limits = limits.clone();
        self.write(move |tx| {
            Box::pin(async move {
                let (scope, limits) = (&scope, &limits);
                // The VPC row carries the per-VPC quota.
                let vpc = Sql::new(format!(
                    "SELECT id FROM vpcs WHERE id = $1 AND account_id = $2 AND region = $3{}",
                    lock::<DB>(FOR_UPDATE)
                ))
                .arg(new.vpc_id)
                .arg(scope.account_id)
                .arg(&scope.region);
                if DB::opt(&mut *tx, vpc).await?.is_none() {
                    return Err(StoreError::NotFound(Resource::Vpc));
                }
                let count =
                    Sql::new("SELECT COUNT(*) AS n FROM vpn_gws WHERE vpc_id = $1").arg(new.vpc_id);
                let count = DB::one(&mut *tx, count).await?.int("n")?;
                check_quota(count, limits.vpn_gws_per_vpc, Quota::VpnGwsPerVpc)?;
                // Pool addresses are global and node addresses are spread by use:
                // both choices must see every gateway created before them.
                if let Some(lock) = DB::ADDRESS_LOCK {
                    DB::execute(&mut *tx, Sql::new(lock)).await?;
                }
                let (address, node_id) = match new.address {
                    AddressSource::Pool(net) => {
                        // Counted across regions: the pool is shared by all.
                        let held = Sql::new(
                            "SELECT COUNT(*) AS n FROM vpn_gws \
                             WHERE account_id = $1 AND node_id IS NULL",
                        )
                        .arg(scope.account_id);
                        let held = DB::one(&mut *tx, held).await?.int("n")?;
                        check_quota(
                            held,
                            limits.pool_addresses_per_account,
                            Quota::PoolAddressesPerAccount,
                        )?;
                        (Self::pick_pool_address(&mut *tx, net).await?, None)
                    }
                    AddressSource::Node { node_id } => (
                        Self::pick_node_address(&mut *tx, node_id).await?,
                        Some(node_id),
                    ),
                };
                let now = unix_now();
                let (id, _) = Self::insert_unified::<VpnGwKind>(
                    &mut *tx,
                    |un_id| {
                        Ok(Sql::new(
                    "INSERT INTO vpn_gws (un_id, account_id, region, vpc_id, name, bandwidth, \
                         charge_type, charge_period, address, address_num, node_id, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                     ON CONFLICT (un_id) DO NOTHING RETURNING id",
                )
                .arg(un_id)
                .arg(scope.account_id)
                .arg(&scope.region)
                .arg(new.vpc_id)
                .arg(&new.name)
                .arg(new.bandwidth)
                .arg(&new.charge_type)
                .arg(new.charge_period)
                .arg(address.to_string())
                .arg(ipv4_num(address))
                .arg(node_id)
                .arg(now))
                    },
                    fk_means(StoreError::NotFound(Resource::GatewayNode)),
                )
                .await?;
                let gw = Self::fetch_vpn_gw(&mut *tx, scope, &IdRef::Numeric(id.get()))
                    .await?
                    .ok_or_else(|| vanished("vpn gateway"))?;
                Ok(gw)
            })
        })
        .await
    }

    async fn get_vpn_gw(&self, scope: &Scope, id: &IdRef<VpnGwKind>) -> Result<Option<VpnGw>> {
        let row = self.read_opt(vpn_gw_by_ref::<DB>(scope, id)).await?;
        row.as_ref().map(vpn_gw_from_row).transpose()
    }

    async fn list_vpn_gws(
        &self,
        scope: &Scope,
        f: &VpnGwFilter,
        page: &Page,
    ) -> Result<(u64, Vec<VpnGw>)> {
        let count = vpn_gw_query::<DB>("SELECT COUNT(*) AS n FROM vpn_gws g", scope, f);
        let mut list = vpn_gw_query::<DB>(VPN_GW_SELECT, scope, f);
        push_page(&mut list, page, "g");
        self.list(count, list, page, f.id.is_some(), vpn_gw_from_row)
            .await
    }

    async fn rename_vpn_gw(&self, scope: &Scope, id: VpnGwRowId, name: &str) -> Result<()> {
        self.rename(scope, "vpn_gws", id, name, Resource::VpnGw)
            .await
    }

    async fn delete_vpn_gw(&self, scope: &Scope, id: VpnGwRowId) -> Result<()> {
        self.delete_unused(Some(scope), id, &VPN_GW_PARENT).await
    }

    // ---- peer (customer) gateways -----------------------------------------

    async fn create_user_gw(
        &self,
        scope: &Scope,
        new: NewUserGw,
        limits: &Limits,
    ) -> Result<UserGw> {
        let scope = scope.clone();
        let limits = limits.clone();
        self.write(move |tx| {
            Box::pin(async move {
                let (scope, limits) = (&scope, &limits);
                Self::lock_scope(&mut *tx, scope).await?;
                if Self::taken_in_scope(&mut *tx, "user_gws", "name", scope, &new.name).await? {
                    return Err(StoreError::NameInUse(Resource::UserGw));
                }
                let address = new.address.to_string();
                if Self::taken_in_scope(&mut *tx, "user_gws", "address", scope, &address).await? {
                    return Err(StoreError::AddressInUse);
                }
                let count = Self::count_in_scope(&mut *tx, "user_gws", scope).await?;
                check_quota(count, limits.user_gws_per_region, Quota::UserGwsPerRegion)?;
                let now = unix_now();
                let (id, _) = Self::insert_unified::<UserGwKind>(
                    &mut *tx,
                    |un_id| {
                        Ok(Sql::new(
                    "INSERT INTO user_gws (un_id, account_id, region, name, address, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (un_id) DO NOTHING RETURNING id",
                )
                .arg(un_id)
                .arg(scope.account_id)
                .arg(&scope.region)
                .arg(&new.name)
                .arg(&address)
                .arg(now))
                    },
                    |e| {
                        if is_unique::<DB>(&e, Some("address")) {
                            StoreError::AddressInUse
                        } else {
                            name_taken::<DB>(Resource::UserGw, Some("name"))(e)
                        }
                    },
                )
                .await?;
                let gw = Self::fetch_user_gw(&mut *tx, scope, &IdRef::Numeric(id.get()))
                    .await?
                    .ok_or_else(|| vanished("peer gateway"))?;
                Ok(gw)
            })
        })
        .await
    }

    async fn get_user_gw(&self, scope: &Scope, id: &IdRef<UserGwKind>) -> Result<Option<UserGw>> {
        let row = self.read_opt(user_gw_by_ref::<DB>(scope, id)).await?;
        row.as_ref().map(user_gw_from_row).transpose()
    }

    async fn list_user_gws(
        &self,
        scope: &Scope,
        f: &UserGwFilter,
        page: &Page,
    ) -> Result<(u64, Vec<UserGw>)> {
        let count = user_gw_query::<DB>("SELECT COUNT(*) AS n FROM user_gws u", scope, f);
        let mut list = user_gw_query::<DB>(USER_GW_SELECT, scope, f);
        push_page(&mut list, page, "u");
        self.list(count, list, page, f.id.is_some(), user_gw_from_row)
            .await
    }

    async fn rename_user_gw(&self, scope: &Scope, id: UserGwRowId, name: &str) -> Result<()> {
        self.rename(scope, "user_gws", id, name, Resource::UserGw)
            .await
    }

    async fn delete_user_gw(&self, scope: &Scope, id: UserGwRowId) -> Result<()> {
        self.delete_unused(Some(scope), id, &USER_GW_PARENT).await
    }

    // ---- VPN connections and their tasks ----------------------------------

    async fn create_conn(
        &self,
        scope: &Scope,
        new: NewConn,
        limits: &Limits,
    ) -> Result<(VpnConn, Task)> {
        let master = self.key();
        let scope = scope.clone();
        let limits = limits.clone();
        self.write(move |tx| {
            Box::pin(async move {
                let (scope, limits) = (&scope, &limits);
                // Every connection quota counts within this (account, region):
                // its row in `scopes` serializes the creators that could race
                // for a slot and carries the per-region count. One statement
                // holds the parents FOR SHARE, so none can be deleted
                // meanwhile, and reads the name clash and the other counts.
                //
                // The scope row is locked last, right before the commit, so
                // concurrent adds of one scope (PostgreSQL) wait for each
                // other only for that count and the commit, not for every
                // statement of the add. With row locks, the counts read
                // before it can miss an add that commits meanwhile, so they
                // are read again once the lock is held (a fresh statement
                // sees every add committed before it; the others wait for
                // the lock). SQLite's single writer makes the first reading
                // exact.
                let checks = Sql::new(format!(
                    "SELECT v.id AS vpc_id, v.un_id AS vpc_un_id, v.name AS vpc_name, \
                       v.cidr AS vpc_cidr, g.id AS gw_id, g.un_id AS gw_un_id, \
                       g.name AS gw_name, g.address AS gw_address, g.node_id AS gw_node_id, \
                       g.vpc_id AS gw_vpc_id, u.id AS ugw_id, u.un_id AS ugw_un_id, \
                       u.name AS ugw_name, u.address AS ugw_address, \
                       (SELECT COUNT(*) FROM vpn_conns WHERE account_id = $4 AND region = $5 \
                            AND vpc_id = $1 AND name = $6) AS clash, \
                       {} \
                     FROM vpcs v, vpn_gws g, user_gws u \
                     WHERE v.id = $1 AND v.account_id = $4 AND v.region = $5 \
                       AND g.id = $2 AND g.account_id = $4 AND g.region = $5 \
                       AND u.id = $3 AND u.account_id = $4 AND u.region = $5{}",
                    conn_quota_counts("$2", "$3"),
                    lock::<DB>(" FOR SHARE OF v, g, u")
                ))
                .arg(new.vpc_id)
                .arg(new.vpn_gw_id)
                .arg(new.user_gw_id)
                .arg(scope.account_id)
                .arg(&scope.region)
                .arg(&new.name);
                let Some(checks) = DB::opt(&mut *tx, checks).await? else {
                    // A parent is missing: name the first, as the checks
                    // one by one would.
                    ImportParents::default()
                        .check::<DB>(tx, scope, &new)
                        .await?;
                    return Err(vanished("parent"));
                };
                if checks.id::<VpcKind>("gw_vpc_id")? != new.vpc_id {
                    return Err(StoreError::NotFound(Resource::VpnGw));
                }
                if checks.int("clash")? > 0 {
                    return Err(StoreError::NameInUse(Resource::VpnConn));
                }
                check_conn_quotas(&checks, 0, limits)?;
                // The answer's VPC and gateways, as they are locked now.
                let parents = conn_parents_from_row(&checks)?;
                if let Some(node) = parents.node_id {
                    let face = TunnelFace {
                        local_addr: parents.vpn_gw.address,
                        remote_addr: parents.user_gw.address,
                        local_identity: &new.settings.ike.local_identity,
                        remote_identity: &new.settings.ike.remote_identity,
                    };
                    Self::check_node_tenants(&mut *tx, &master, node, scope.account_id, &face)
                        .await?;
                }

                let now = unix_now();
                let gw_un_ids = [
                    parents.vpn_gw.un_id.as_str(),
                    parents.user_gw.un_id.as_str(),
                ];
                // The connection and its task owning it: one statement
                // where the engine can, else one each.
                let (conn_id, conn_un_id, task_id) = if DB::WRITES_IN_WITH {
                    let (row, conn_un_id) = Self::insert_unified_row::<VpnConnKind>(
                        &mut *tx,
                        |un_id| {
                            // The pre-shared key is sealed for this row's id.
                            let encoded = encode_conn(&new, &master, &un_id)?;
                            Ok(conn_with_task_insert(
                                &un_id,
                                scope,
                                &new,
                                &encoded,
                                now,
                                TaskKind::Create,
                                gw_un_ids,
                            ))
                        },
                        name_taken::<DB>(Resource::VpnConn, Some("name")),
                    )
                    .await?;
                    (row.id("id")?, conn_un_id, row.id("task_id")?)
                } else {
                    let (conn_id, conn_un_id) = Self::insert_unified::<VpnConnKind>(
                        &mut *tx,
                        |un_id| {
                            // The pre-shared key is sealed for this row's id.
                            let encoded = encode_conn(&new, &master, &un_id)?;
                            let mut q = conn_insert(
                                &un_id,
                                scope,
                                &new,
                                ConnStatus::Creating,
                                &encoded,
                                now,
                            );
                            q.push(" RETURNING id");
                            Ok(q)
                        },
                        name_taken::<DB>(Resource::VpnConn, Some("name")),
                    )
                    .await?;
                    let [gw, ugw] = gw_un_ids;
                    let task_id = Self::insert_task(
                        &mut *tx,
                        scope,
                        TaskKind::Create,
                        conn_id,
                        [conn_un_id.as_str(), gw, ugw],
                        now,
                    )
                    .await?;
                    let own = Sql::new("UPDATE vpn_conns SET active_task = $1 WHERE id = $2")
                        .arg(task_id)
                        .arg(conn_id);
                    DB::execute(&mut *tx, own).await?;
                    (conn_id, conn_un_id, task_id)
                };
                let per_region = Self::count_scope_conn(&mut *tx, scope).await?;
                check_quota(per_region, limits.conns_per_region, Quota::ConnsPerRegion)?;
                if DB::ROW_LOCKS {
                    let again = DB::one(
                        &mut *tx,
                        Sql::new(format!("SELECT {}", conn_quota_counts("$1", "$2")))
                            .arg(new.vpn_gw_id)
                            .arg(new.user_gw_id),
                    )
                    .await?;
                    // The new row is counted now: one more than before it.
                    check_conn_quotas(&again, 1, limits)?;
                }
                // Both rows as inserted, without reading them back.
                let task = Task {
                    id: task_id,
                    kind: TaskKind::Create,
                    status: TaskStatus::Running,
                    conn_id,
                    conn_un_id: conn_un_id.clone(),
                    vpn_gw_un_id: parents.vpn_gw.un_id.clone(),
                    user_gw_un_id: parents.user_gw.un_id.clone(),
                    error: None,
                    attempts: 0,
                    created_at: now,
                    finished_at: None,
                };
                let conn = VpnConn {
                    id: conn_id,
                    un_id: conn_un_id,
                    vpc: parents.vpc,
                    vpn_gw: parents.vpn_gw,
                    user_gw: parents.user_gw,
                    name: new.name,
                    status: ConnStatus::Creating,
                    net_status: NetStatus::Unavailable,
                    settings: new.settings,
                    tags: new.tags,
                    active_task: Some(task_id),
                    node_id: parents.node_id,
                    created_at: now,
                };
                Ok((conn, task))
            })
        })
        .await
    }

    async fn get_conn(&self, scope: &Scope, id: &IdRef<VpnConnKind>) -> Result<Option<VpnConn>> {
        let row = self.read_opt(conn_by_ref::<DB>(scope, id)).await?;
        let master = self.key();
        row.as_ref().map(|r| conn_from_row(r, &master)).transpose()
    }

    async fn list_conns(
        &self,
        scope: &Scope,
        f: &ConnFilter,
        page: &Page,
    ) -> Result<(u64, Vec<VpnConn>)> {
        let count = conn_query::<DB>("SELECT COUNT(*) AS n FROM vpn_conns c", scope, f);
        let list = conn_page_query::<DB>(scope, f, page);
        let master = self.key();
        self.list(count, list, page, f.id.is_some(), |r| {
            conn_from_row(r, &master)
        })
        .await
    }

    async fn begin_modify(
        &self,
        scope: &Scope,
        conn_id: VpnConnRowId,
        change: ConnChange,
    ) -> Result<Task> {
        self.begin_task(scope, conn_id, TaskKind::Modify, Some(change))
            .await
    }

    async fn begin_delete(&self, scope: &Scope, conn_id: VpnConnRowId) -> Result<Task> {
        self.begin_task(scope, conn_id, TaskKind::Delete, None)
            .await
    }

    async fn begin_reset(&self, scope: &Scope, conn_id: VpnConnRowId) -> Result<Task> {
        self.begin_task(scope, conn_id, TaskKind::Reset, None).await
    }

    async fn get_task(&self, scope: &Scope, task_id: TaskId) -> Result<Option<Task>> {
        let q = Sql::new(format!(
            "{TASK_SELECT} WHERE id = $1 AND account_id = $2 AND region = $3"
        ))
        .arg(task_id)
        .arg(scope.account_id)
        .arg(&scope.region);
        let row = self.read_opt(q).await?;
        row.as_ref().map(task_from_row).transpose()
    }

    async fn label_task(&self, task_id: TaskId, request_id: &str) -> Result<()> {
        let q = Sql::new("UPDATE tasks SET request_id = $1 WHERE id = $2 AND request_id IS NULL")
            .arg(request_id)
            .arg(task_id);
        self.write(move |tx| {
            Box::pin(async move {
                let labelled = DB::execute(&mut *tx, q).await.map_err(|e| {
                    if is_unique::<DB>(&e, None) {
                        StoreError::InUse(Resource::Task)
                    } else {
                        e.into()
                    }
                })?;
                if labelled == 0 {
                    return Err(StoreError::NotFound(Resource::Task));
                }
                Ok(())
            })
        })
        .await
    }

    async fn get_task_by_request(&self, scope: &Scope, request_id: &str) -> Result<Option<Task>> {
        let q = Sql::new(format!(
            "{TASK_SELECT} WHERE request_id = $1 AND account_id = $2 AND region = $3"
        ))
        .arg(request_id)
        .arg(scope.account_id)
        .arg(&scope.region);
        let row = self.read_opt(q).await?;
        row.as_ref().map(task_from_row).transpose()
    }

    // ---- the task engine --------------------------------------------------

    async fn claim_tasks_on(
        &self,
        worker: &str,
        now: Timestamp,
        lease_secs: i64,
        nodes: &[Option<GatewayNodeId>],
        max: usize,
    ) -> Result<Vec<ClaimedTask>> {
        if nodes.is_empty() || max == 0 {
            return Ok(Vec::new());
        }
        let (worker, nodes) = (worker.to_owned(), nodes.to_vec());
        let cursor = self.claim_cursor.clone();
        let master = self.key();
        self.write(move |tx| {
            Box::pin(async move {
                // Round robin by account, starting after the last account
                // served. With row locks (concurrent claimers) row by row,
                // passing over the rows others hold; on the single writer
                // the whole batch in one statement. Then one statement
                // reads the claimed tasks' connections.
                let after = cursor.load(AtomicOrdering::Relaxed);
                let mut tasks = Vec::new();
                if DB::ROW_LOCKS {
                    let mut from = after;
                    // The accounts served by the pass that began at the
                    // start of the order (none yet unless it began there).
                    let mut pass = (after == i64::MIN).then(Vec::new);
                    while tasks.len() < max {
                        let q = claim_query::<DB>(&worker, now, lease_secs, &nodes, from);
                        let Some(row) = DB::opt(&mut *tx, q).await? else {
                            if let Some(&[account]) = pass.as_deref() {
                                // A whole pass found one account alone with
                                // runnable tasks: take the rest of the batch
                                // from it in one statement, not two
                                // statements a task.
                                let n = max - tasks.len();
                                let q = claim_account_query::<DB>(
                                    &worker, now, lease_secs, &nodes, account, n,
                                );
                                let mut batch = DB::fetch(&mut *tx, q)
                                    .await?
                                    .iter()
                                    .map(task_from_row)
                                    .collect::<Result<Vec<_>>>()?;
                                // RETURNING follows no order: oldest first.
                                batch.sort_by_key(|t| t.id);
                                tasks.extend(batch.into_iter().map(|t| (account, t)));
                                break;
                            }
                            if from == i64::MIN {
                                break;
                            }
                            from = i64::MIN;
                            pass = Some(Vec::new());
                            continue;
                        };
                        from = row.int("account_id")?;
                        if let Some(pass) = pass.as_mut() {
                            pass.push(from);
                        }
                        tasks.push((from, task_from_row(&row)?));
                    }
                } else {
                    let q = claim_batch_query(&worker, now, lease_secs, &nodes, after, max);
                    for row in DB::fetch(&mut *tx, q).await? {
                        tasks.push((row.int("account_id")?, task_from_row(&row)?));
                    }
                    tasks = in_turns(tasks, after);
                }
                let Some(&(last, _)) = tasks.last() else {
                    return Ok(Vec::new());
                };
                cursor.store(last, AtomicOrdering::Relaxed);
                let ids: Vec<VpnConnRowId> = tasks.iter().map(|(_, t)| t.conn_id).collect();
                let mut conns: HashMap<VpnConnRowId, VpnConn> = HashMap::new();
                for row in DB::fetch(&mut *tx, conns_by_id(&ids)).await? {
                    let conn = conn_from_row(&row, &master)?;
                    conns.insert(conn.id, conn);
                }
                let mut claimed = Vec::with_capacity(tasks.len());
                for (_, task) in tasks {
                    match conns.remove(&task.conn_id) {
                        Some(conn) => claimed.push(ClaimedTask { task, conn }),
                        None => {
                            // Cannot happen while every running task's
                            // connection row exists; fail the task rather
                            // than wedge the queue behind it forever.
                            tracing::error!(
                                task_id = task.id.get(),
                                "running task without its connection; failing it"
                            );
                            let fail = Sql::new(
                                "UPDATE tasks SET status = 1, error_code = 'InternalError', \
                                     error_msg = 'the connection no longer exists', \
                                     finished_at = $1, lease_owner = NULL, lease_until = NULL \
                                 WHERE id = $2",
                            )
                            .arg(now)
                            .arg(task.id);
                            DB::execute(&mut *tx, fail).await?;
                        }
                    }
                }
                Ok(claimed)
            })
        })
        .await
    }

    async fn finish_tasks(
        &self,
        worker: &str,
        now: Timestamp,
        outcomes: Vec<(TaskId, std::result::Result<(), TaskError>)>,
    ) -> Result<Vec<bool>> {
        if outcomes.is_empty() {
            return Ok(Vec::new());
        }
        let worker = worker.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                // Successes (nearly all) in a few statements for the whole
                // batch; failures one by one.
                let succeeded: Vec<TaskId> = outcomes
                    .iter()
                    .filter(|(_, o)| o.is_ok())
                    .map(|(id, _)| *id)
                    .collect();
                let done = Self::finish_succeeded(tx, &succeeded, &worker, now).await?;
                let mut finished = Vec::with_capacity(outcomes.len());
                for (task_id, outcome) in outcomes {
                    finished.push(match outcome {
                        Ok(()) => done.contains(&task_id),
                        Err(e) => Self::finish_one(tx, task_id, &worker, now, Err(e)).await?,
                    });
                }
                Ok(finished)
            })
        })
        .await
    }

    async fn task_lease_holders(&self) -> Result<Vec<String>> {
        let q = Sql::new(
            "SELECT DISTINCT lease_owner FROM tasks \
             WHERE status = 2 AND lease_owner IS NOT NULL ORDER BY lease_owner",
        );
        let rows = self.read_rows(q, Size::Bulk).await?;
        rows.iter().map(|r| r.text("lease_owner")).collect()
    }

    async fn release_task_leases(&self, holder: &str) -> Result<u64> {
        let q = Sql::new(
            "UPDATE tasks SET lease_owner = NULL, lease_until = NULL \
             WHERE status = 2 AND lease_owner = $1",
        )
        .arg(holder);
        self.write(move |tx| Box::pin(async move { Ok(DB::execute(tx, q).await?) }))
            .await
    }

    // ---- live state and reconciliation ------------------------------------

    async fn set_net_status(&self, changes: &[(VpnConnId, NetStatus)]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        // One statement per state and chunk of ids, rows in a fixed order.
        let mut sorted: Vec<&(VpnConnId, NetStatus)> = changes.iter().collect();
        sorted.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        let mut updates = Vec::new();
        for state in [NetStatus::Available, NetStatus::Unavailable] {
            let ids: Vec<&VpnConnId> = sorted
                .iter()
                .filter(|(_, s)| *s == state)
                .map(|(id, _)| id)
                .collect();
            for chunk in ids.chunks(IN_LIST_CHUNK) {
                let mut q = Sql::new("UPDATE vpn_conns SET net_status = $1 WHERE net_status <> $1")
                    .arg(state.as_str());
                q.push(" AND un_id IN (");
                for (i, id) in chunk.iter().enumerate() {
                    q.push(if i == 0 { "" } else { ", " }).bind(id.as_str());
                }
                q.push(")");
                updates.push(q);
            }
        }
        self.write(move |tx| {
            Box::pin(async move {
                for q in updates {
                    DB::execute(&mut *tx, q).await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn record_diagnostics(&self, batch: DiagnosticsBatch) -> Result<()> {
        self.record_diagnostics_batch(batch).await
    }

    async fn conn_diagnostics(&self, conn: VpnConnRowId) -> Result<ConnDiagnostics> {
        self.read_conn_diagnostics(conn).await
    }

    async fn desired_conns(&self, node_id: Option<GatewayNodeId>) -> Result<Vec<VpnConn>> {
        let rows = self
            .read_rows(desired_query::<DB>(node_id), Size::Bulk)
            .await?;
        let master = self.key();
        rows.iter().map(|r| conn_from_row(r, &master)).collect()
    }

    // ---- bulk load ------------------------------------------------------------

    async fn import_conns(&self, scope: &Scope, conns: Vec<NewConn>) -> Result<u64> {
        let mut parents = ImportParents::default();
        let mut inserted = 0u64;
        let master = self.key();
        // Each row's pre-shared key is sealed for its own (fresh) id.
        let row = |c: &NewConn| -> Result<(String, EncodedConn)> {
            let un_id = fresh_id::<VpnConnKind>();
            let encoded = encode_conn(c, &master, &un_id)?;
            Ok((un_id, encoded))
        };
        let now = unix_now();
        let mut rows = conns.into_iter().peekable();
        while rows.peek().is_some() {
            let batch: Vec<NewConn> = rows.by_ref().take(IMPORT_BATCH).collect();
            let mut tx = self.begin_write().await?;
            // The scope's row first, as create_conn takes it: the batch adds
            // to its connection count.
            Self::lock_scope(&mut tx, scope).await?;
            for new in &batch {
                parents.check::<DB>(&mut tx, scope, new).await?;
            }
            let mut pending: Vec<(String, &NewConn, EncodedConn)> = batch
                .iter()
                .map(|c| row(c).map(|(un_id, encoded)| (un_id, c, encoded)))
                .collect::<Result<_>>()?;
            let before = inserted;
            // Rows whose random id was taken come back missing and go again
            // with a new id.
            for _ in 0..ID_ATTEMPTS {
                if pending.is_empty() {
                    break;
                }
                let written = DB::insert_conns(&mut tx, scope, now, &pending)
                    .await
                    .map_err(name_taken::<DB>(Resource::VpnConn, Some("name")))?;
                inserted += written.len() as u64;
                let written: HashSet<String> = written.into_iter().collect();
                pending.retain(|p| !written.contains(&p.0));
                for p in &mut pending {
                    (p.0, p.2) = row(p.1)?;
                }
            }
            if !pending.is_empty() {
                return Err(StoreError::Backend(
                    "no free connection id after several tries".into(),
                ));
            }
            let added = i64::try_from(inserted - before).unwrap_or(i64::MAX);
            Self::add_scope_conns(&mut tx, scope.account_id, &scope.region, added).await?;
            tx.commit().await?;
        }
        // Statistics for the planner, now that the table's shape may have
        // changed by orders of magnitude.
        let mut conn = self.write.acquire().await?;
        DB::execute_raw(&mut conn, DB::ANALYZE).await?;
        if let Reads::Direct(readers) = &self.read {
            readers.renew();
        }
        Ok(inserted)
    }

    async fn conn_count_check(&self, scope: &Scope) -> Result<(u64, u64)> {
        // One statement: both figures from the same snapshot.
        let q = Sql::new(
            "SELECT \
               COALESCE((SELECT conns FROM scopes \
                         WHERE account_id = $1 AND region = $2), 0) AS kept, \
               (SELECT COUNT(*) FROM vpn_conns WHERE account_id = $1 AND region = $2) \
                   AS counted",
        )
        .arg(scope.account_id)
        .arg(&scope.region);
        let row = self.read_one(q, Size::Bulk).await?;
        Ok((row.int("kept")? as u64, row.int("counted")? as u64))
    }

    // ---- gateway nodes ----------------------------------------------------------

    async fn add_gateway_node(
        &self,
        name: &str,
        vici: &str,
        addresses: &[IpAddr],
    ) -> Result<GatewayNode> {
        let mut tx = self.begin_write().await?;
        let q = Sql::new(format!(
            "INSERT INTO gateway_nodes (name, vici, addresses, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING {GATEWAY_NODE_COLUMNS}"
        ))
        .arg(name)
        .arg(vici)
        .arg(encode_addresses(addresses))
        .arg(unix_now());
        let row = DB::one(&mut tx, q)
            .await
            .map_err(name_taken::<DB>(Resource::GatewayNode, None))?;
        tx.commit().await?;
        gateway_node_from_row(&row)
    }

    async fn ensure_gateway_node(&self, vici: &str, addresses: &[IpAddr]) -> Result<GatewayNode> {
        let encoded = encode_addresses(addresses);
        let base = default_node_name(vici);
        let mut n = 1;
        let mut tx = self.begin_write().await?;
        loop {
            let update = Sql::new(format!(
                "UPDATE gateway_nodes SET addresses = $1 WHERE vici = $2 \
                 RETURNING {GATEWAY_NODE_COLUMNS}"
            ))
            .arg(&encoded)
            .arg(vici);
            if let Some(row) = DB::opt(&mut tx, update).await? {
                tx.commit().await?;
                return gateway_node_from_row(&row);
            }
            // Nothing conflicting is inserted; a conflict on the URI means
            // another vpcd created the node meanwhile (the update above then
            // finds it), one on the name means the next suffix.
            let create = Sql::new(format!(
                "INSERT INTO gateway_nodes (name, vici, addresses, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING \
                 RETURNING {GATEWAY_NODE_COLUMNS}"
            ))
            .arg(numbered_name(&base, n))
            .arg(vici)
            .arg(&encoded)
            .arg(unix_now());
            if let Some(row) = DB::opt(&mut tx, create).await? {
                tx.commit().await?;
                return gateway_node_from_row(&row);
            }
            let uri = Sql::new("SELECT id FROM gateway_nodes WHERE vici = $1").arg(vici);
            if DB::opt(&mut tx, uri).await?.is_none() {
                n += 1;
                if n > NODE_NAME_ATTEMPTS {
                    return Err(StoreError::NameInUse(Resource::GatewayNode));
                }
            }
        }
    }

    async fn list_gateway_nodes(&self) -> Result<Vec<GatewayNode>> {
        let q = Sql::new(format!(
            "SELECT {GATEWAY_NODE_COLUMNS} FROM gateway_nodes ORDER BY id"
        ));
        let rows = self.read_rows(q, Size::Bulk).await?;
        rows.iter().map(gateway_node_from_row).collect()
    }

    async fn remove_gateway_node(&self, id: GatewayNodeId) -> Result<()> {
        self.delete_unused(None, id, &GATEWAY_NODE_PARENT).await
    }

    // ---- the cluster of vpcd processes ------------------------------------------

    async fn heartbeat(&self, member: &str, now: Timestamp, info: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let seen = Sql::new(
            "INSERT INTO cluster_members (name, started_at, last_seen, info) \
             VALUES ($1, $2, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET last_seen = excluded.last_seen, info = excluded.info",
        )
        .arg(member)
        .arg(now)
        .arg(info);
        DB::execute(&mut tx, seen).await?;
        let forget = Sql::new("DELETE FROM cluster_members WHERE last_seen < $1")
            .arg(now.saturating_sub(MEMBER_FORGET_SECS));
        DB::execute(&mut tx, forget).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_members(&self) -> Result<Vec<ClusterMember>> {
        let q =
            Sql::new("SELECT name, started_at, last_seen, info FROM cluster_members ORDER BY name");
        let rows = self.read_rows(q, Size::Bulk).await?;
        rows.iter().map(member_from_row).collect()
    }

    async fn acquire_gateway_lease(
        &self,
        gateway_node_id: GatewayNodeId,
        holder: &str,
        now: Timestamp,
        ttl_secs: i64,
    ) -> Result<bool> {
        // One statement: the conflict clause takes the row over only when
        // it is ours or expired, so two vpcds can never both get `true` (on
        // PostgreSQL a concurrent acquirer waits on the row and then
        // re-checks the condition against the winner's lease).
        let mut tx = self.begin_write().await?;
        let q = Sql::new(
            "INSERT INTO gateway_leases (gateway_node_id, holder, until) VALUES ($1, $2, $3) \
             ON CONFLICT (gateway_node_id) DO UPDATE \
             SET holder = excluded.holder, until = excluded.until \
             WHERE gateway_leases.holder = excluded.holder OR gateway_leases.until < $4",
        )
        .arg(gateway_node_id)
        .arg(holder)
        .arg(now.saturating_add(ttl_secs))
        .arg(now);
        let taken = DB::execute(&mut tx, q)
            .await
            .map_err(fk_means(StoreError::NotFound(Resource::GatewayNode)))?;
        tx.commit().await?;
        Ok(taken == 1)
    }

    async fn release_gateway_lease(
        &self,
        gateway_node_id: GatewayNodeId,
        holder: &str,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let q = Sql::new("DELETE FROM gateway_leases WHERE gateway_node_id = $1 AND holder = $2")
            .arg(gateway_node_id)
            .arg(holder);
        DB::execute(&mut tx, q).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn gateway_leases(&self) -> Result<Vec<GatewayLease>> {
        let q = Sql::new(
            "SELECT gateway_node_id, holder, until FROM gateway_leases ORDER BY gateway_node_id",
        );
        let rows = self.read_rows(q, Size::Bulk).await?;
        rows.iter().map(lease_from_row).collect()
    }

    // ---- upkeep -------------------------------------------------------------------

    async fn prune_tasks(&self, finished_before: Timestamp, batch: u32) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let q = Sql::new(PRUNE_TASKS)
            .arg(finished_before)
            .arg(i64::from(batch));
        let deleted = DB::execute(&mut tx, q).await?;
        tx.commit().await?;
        Ok(deleted)
    }

    async fn rotate_master_key(&self, new_key: MasterKey) -> Result<Resealed> {
        self.rotate_key(new_key).await
    }

    // ---- monitoring (`monitoring.rs`) -------------------------------------------

    async fn task_counts(&self, now: Timestamp) -> Result<TaskCounts> {
        self.count_tasks(now).await
    }

    async fn conn_counts(&self) -> Result<Vec<ConnCount>> {
        self.count_conns().await
    }

    fn pool_use(&self) -> Vec<PoolUse> {
        self.pools_in_use()
    }
}

impl<DB: Engine> SqlStore<DB> {
    /// Finish the tasks `ids` as succeeded inside the write transaction
    /// `tx`, those whose lease `worker` still holds (see
    /// [`Store::finish_tasks`]), and move their connections on; the ids
    /// finished. One statement for the tasks, one per kind of transition
    /// for the connections, one per scope that lost connections.
    async fn finish_succeeded(
        tx: &mut DB::Connection,
        ids: &[TaskId],
        worker: &str,
        now: Timestamp,
    ) -> Result<HashSet<TaskId>> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let mut q = Sql::new(
            "UPDATE tasks SET status = 0, error_code = NULL, error_msg = NULL, finished_at = ",
        );
        q.bind(now)
            .push(", lease_owner = NULL, lease_until = NULL WHERE status = 2 AND lease_owner = ")
            .bind(worker)
            .push(" AND id IN (");
        for (i, id) in ids.iter().enumerate() {
            q.push(if i == 0 { "" } else { ", " }).bind(*id);
        }
        q.push(") RETURNING id, kind, conn_id");
        let mut done = HashSet::with_capacity(ids.len());
        // (task, connection) by the connection's next state; `None`: removed.
        let mut moves: HashMap<Option<ConnStatus>, Vec<(TaskId, VpnConnRowId)>> = HashMap::new();
        for row in DB::fetch(&mut *tx, q).await? {
            let task_id: TaskId = row.id("id")?;
            let kind = parse::<TaskKind>(&row.text("kind")?, "task kind")?;
            moves
                .entry(state_after(kind, true))
                .or_default()
                .push((task_id, row.id("conn_id")?));
            done.insert(task_id);
        }
        // Each connection has at most one unfinished task, so a connection
        // of the list whose active task is one of the list's is that one's.
        let ids_of = |q: &mut Sql, pairs: &[(TaskId, VpnConnRowId)]| {
            q.push(" WHERE id IN (");
            for (i, (_, conn)) in pairs.iter().enumerate() {
                q.push(if i == 0 { "" } else { ", " }).bind(*conn);
            }
            q.push(") AND active_task IN (");
            for (i, (task, _)) in pairs.iter().enumerate() {
                q.push(if i == 0 { "" } else { ", " }).bind(*task);
            }
            q.push(")");
        };
        for (next, pairs) in &moves {
            match next {
                Some(status) => {
                    let mut q = Sql::new("UPDATE vpn_conns SET status = ");
                    q.bind(status.code()).push(", active_task = NULL");
                    ids_of(&mut q, pairs);
                    DB::execute(&mut *tx, q).await?;
                }
                None => {
                    let mut q = Sql::new("DELETE FROM vpn_conns");
                    ids_of(&mut q, pairs);
                    q.push(" RETURNING account_id, region");
                    let mut gone: HashMap<(AccountId, String), i64> = HashMap::new();
                    for row in DB::fetch(&mut *tx, q).await? {
                        *gone
                            .entry((row.id("account_id")?, row.text("region")?))
                            .or_default() += 1;
                    }
                    for ((account_id, region), n) in gone {
                        Self::add_scope_conns(&mut *tx, account_id, &region, -n).await?;
                    }
                }
            }
        }
        Ok(done)
    }

    /// Finish one task inside the write transaction `tx`: see
    /// [`Store::finish_tasks`].
    async fn finish_one(
        tx: &mut DB::Connection,
        task_id: TaskId,
        worker: &str,
        now: Timestamp,
        outcome: std::result::Result<(), TaskError>,
    ) -> Result<bool> {
        let (status, error) = match &outcome {
            Ok(()) => (TaskStatus::Success, None),
            Err(e) => (TaskStatus::Failed, Some(e)),
        };
        // Only the lease holder of a still-running task may finish it: a
        // worker whose lease expired and was taken over gets `false`, and a
        // task is never finished twice.
        let finish = Sql::new(
            "UPDATE tasks SET status = $1, error_code = $2, error_msg = $3, finished_at = $4, \
                 lease_owner = NULL, lease_until = NULL \
             WHERE id = $5 AND status = 2 AND lease_owner = $6 RETURNING kind, conn_id",
        )
        .arg(status.code())
        .arg(error.map(|e| e.error_code.clone()))
        .arg(error.map(|e| e.error_msg.clone()))
        .arg(now)
        .arg(task_id)
        .arg(worker);
        let Some(row) = DB::opt(&mut *tx, finish).await? else {
            return Ok(false);
        };
        let kind = parse::<TaskKind>(&row.text("kind")?, "task kind")?;
        let conn_id: VpnConnRowId = row.id("conn_id")?;
        match state_after(kind, outcome.is_ok()) {
            Some(status) => {
                let q = Sql::new(
                    "UPDATE vpn_conns SET status = $1, active_task = NULL \
                     WHERE id = $2 AND active_task = $3",
                )
                .arg(status.code())
                .arg(conn_id)
                .arg(task_id);
                DB::execute(&mut *tx, q).await?;
            }
            None => {
                let q = Sql::new(
                    "DELETE FROM vpn_conns WHERE id = $1 AND active_task = $2 \
                     RETURNING account_id, region",
                )
                .arg(conn_id)
                .arg(task_id);
                if let Some(gone) = DB::opt(&mut *tx, q).await? {
                    let (account_id, region) = (gone.id("account_id")?, gone.text("region")?);
                    Self::add_scope_conns(&mut *tx, account_id, &region, -1).await?;
                }
            }
        }
        Ok(true)
    }

    /// A list's total and one page of it, both from one read snapshot.
    ///
    /// When the filter names a row by its own id (`by_id`) at most one row
    /// matches, so one statement is enough: at offset 0 the page holds the
    /// whole result and is its own count; past it the page is empty and
    /// only the count is read. Otherwise the count and the page are read in
    /// one read transaction.
    async fn list<T>(
        &self,
        count: Sql,
        page_query: Sql,
        page: &Page,
        by_id: bool,
        decode: impl Fn(&ReadRow<DB>) -> Result<T>,
    ) -> Result<(u64, Vec<T>)> {
        let (total, rows) = if by_id && page.offset == 0 && page.limit > 0 {
            let rows = self.read_rows(page_query, Size::Bounded).await?;
            (i64::try_from(rows.len()).unwrap_or(i64::MAX), rows)
        } else if by_id {
            let total = self.read_one(count, Size::Bounded).await?.int("n")?;
            (total, Vec::new())
        } else {
            let (count, rows) = self.read_pair(count, page_query, Size::Bounded).await?;
            (first_of(count)?.int("n")?, rows)
        };
        let items = rows.iter().map(decode).collect::<Result<_>>()?;
        Ok((u64::try_from(total).unwrap_or(0), items))
    }

    /// Run an update of one row by key; `NotFound(what)` if none matched.
    async fn update_one(&self, q: Sql, what: Resource) -> Result<()> {
        self.write(move |tx| {
            Box::pin(async move {
                if DB::execute(&mut *tx, q).await? == 0 {
                    return Err(StoreError::NotFound(what));
                }
                Ok(())
            })
        })
        .await
    }

    /// Rename a VPC or gateway of the scope. Where names are unique (VPCs,
    /// peer gateways) the unique index decides a race between two renames.
    async fn rename(
        &self,
        scope: &Scope,
        table: &str,
        id: impl Into<Arg>,
        name: &str,
        what: Resource,
    ) -> Result<()> {
        let q = Sql::new(format!(
            "UPDATE {table} SET name = $1 WHERE id = $2 AND account_id = $3 AND region = $4"
        ))
        .arg(name)
        .arg(id)
        .arg(scope.account_id)
        .arg(&scope.region);
        self.write(move |tx| {
            Box::pin(async move {
                let renamed = DB::execute(&mut *tx, q)
                    .await
                    .map_err(name_taken::<DB>(what, None))?;
                if renamed == 0 {
                    return Err(StoreError::NotFound(what));
                }
                Ok(())
            })
        })
        .await
    }
}

/// Claimed tasks `(account, task)` in the order of a round-robin claim
/// that started after account `after`: by turn (each account's oldest
/// first, then each one's second oldest, ...), within a turn the accounts
/// after `after` first, then from the lowest.
fn in_turns(mut tasks: Vec<(i64, Task)>, after: i64) -> Vec<(i64, Task)> {
    tasks.sort_by_key(|(account, task)| (*account, task.id.get()));
    let mut turns = Vec::with_capacity(tasks.len());
    let mut prev: Option<(i64, usize)> = None;
    for (account, task) in tasks {
        let turn = match prev {
            Some((a, turn)) if a == account => turn + 1,
            _ => 0,
        };
        prev = Some((account, turn));
        turns.push((turn, account <= after, account, task));
    }
    turns.sort_by_key(|(turn, wrapped, account, _)| (*turn, *wrapped, *account));
    turns
        .into_iter()
        .map(|(_, _, account, task)| (account, task))
        .collect()
}
