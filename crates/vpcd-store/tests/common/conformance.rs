//! The behaviour every [`Store`] engine must show.
//!
//! Written once against `Arc<dyn Store>` and nothing engine-specific, so the
//! SQLite and PostgreSQL engines are held to the same contract. An engine's
//! test file supplies an async function returning
//! `Some((Arc<dyn Store>, guard))` for a fresh, empty database (the guard
//! keeps a temp dir or a test database alive), or `None` after printing why
//! the engine cannot be tested here, and stamps out one test per case:
//!
//! ```ignore
//! #[macro_use]
//! mod common;
//! async fn fresh() -> Option<(Arc<dyn Store>, TempDir)> { ... }
//! conformance_tests!(fresh);
//! ```

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use vpcd_store::testing::claim_any;
use vpcd_store::*;
use vpcd_types::id::{UserGwKind, VpcKind, VpnConnKind, VpnGwKind};
use vpcd_types::*;

/// One `#[tokio::test]` per conformance case, each on a fresh database made
/// by `$make`.
macro_rules! conformance_tests {
    ($make:path) => {
        conformance_tests!(@cases $make;
            accounts_and_keys,
            key_and_account_disable,
            nonce_replay,
            nonce_replay_is_race_free,
            recorded_nonces_are_replays,
            tenancy_hides_other_scopes,
            ids_resolve_in_both_forms,
            vpc_quota_and_unique_names,
            vpn_gw_quota,
            user_gw_quota_names_and_addresses,
            conn_quota_per_vpn_gw,
            conn_quota_per_user_gw,
            conn_quota_per_region,
            conn_counter_matches_rows,
            conn_quota_per_pair,
            conn_names_unique_per_vpc,
            create_conn_checks_parents,
            create_conn_is_atomic,
            pool_allocation,
            pool_addresses_capped_per_account,
            tenants_on_one_node_cannot_clash,
            node_addresses_spread_then_shared,
            concurrent_node_gateways_spread,
            counters,
            paging_and_ordering,
            name_filter_is_a_literal_substring,
            a_list_by_id_counts_its_row_at_every_offset,
            conn_filters,
            busy_refusal,
            create_task_transitions,
            modify_transitions,
            delete_transitions,
            reset_transitions,
            lease_expiry_hands_task_over,
            claims_oldest_first,
            claims_fair_across_accounts,
            concurrent_batch_claims_of_one_account_take_each_task_once,
            claims_and_finishes_in_batches,
            dead_holders_leases_released,
            concurrent_writes_fail_alone,
            concurrent_claims_take_each_task_once,
            in_use_deletes,
            renames,
            tasks_found_by_request_id,
            net_status_and_desired_conns,
            concurrent_creates_respect_quota,
            concurrent_creates_respect_region_quota,
            concurrent_creates_respect_unique_name,
            claim_task_on_filters_by_node,
            import_conns_bulk,
            gateway_node_registry,
            ensure_gateway_node_finds_or_creates,
            concurrent_ensure_gateway_node,
            heartbeats,
            gateway_leases_are_exclusive,
            concurrent_gateway_lease_has_one_winner,
            concurrent_creates_respect_pair_rule,
            concurrent_mutations_one_wins,
            unknown_account_is_not_found,
            net_status_in_bulk,
            api3_settings_and_tags_round_trip,
            finished_tasks_are_pruned,
            rotation_reseals_every_secret,
            monitoring_counts,
            diagnostics_recorded_bounded_and_deleted,
            console_passwords,
            console_sessions,
        );
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                // `None`: the engine is unavailable here and the maker said why.
                let Some((store, _guard)) = $make().await else {
                    return;
                };
                common::conformance::$case(store).await;
            }
        )*
    };
}

// ---- fixtures ---------------------------------------------------------------

const T0: Timestamp = 1_700_000_000;

macro_rules! assert_err {
    ($res:expr, $pat:pat if $guard:expr) => {{
        let res = $res;
        assert!(
            matches!(res, Err($pat) if $guard),
            "expected Err({} if {}), got {:?}",
            stringify!($pat),
            stringify!($guard),
            res
        );
    }};
    ($res:expr, $pat:pat) => {{
        let res = $res;
        assert!(
            matches!(res, Err($pat)),
            "expected Err({}), got {:?}",
            stringify!($pat),
            res
        );
    }};
}

async fn scope_of(store: &Arc<dyn Store>, account: &str, region: &str) -> Scope {
    let id = match store.create_account(account).await {
        Ok(a) => a.id,
        Err(StoreError::NameInUse(Resource::Account)) => {
            let all = store.list_accounts().await.unwrap();
            all.iter().find(|(a, _)| a.name == account).unwrap().0.id
        }
        Err(e) => panic!("create_account: {e}"),
    };
    Scope {
        account_id: id,
        region: region.to_owned(),
    }
}

async fn scope(store: &Arc<dyn Store>) -> Scope {
    scope_of(store, "alice", "gz").await
}

fn roomy() -> Limits {
    Limits {
        vpcs_per_region: 1000,
        vpn_gws_per_vpc: 1000,
        user_gws_per_region: 1000,
        conns_per_vpn_gw: 1000,
        conns_per_user_gw: 1000,
        conns_per_region: 1000,
        conns_per_pair: 1000,
        spd_rules_per_conn: 10,
        cidrs_per_spd_rule: 50,
        pool_addresses_per_account: 1000,
    }
}

fn page(order: Order, descending: bool, offset: u32, limit: u32) -> Page {
    Page {
        offset,
        limit,
        order,
        descending,
    }
}

fn all() -> Page {
    page(Order::CreateTime, false, 0, 100)
}

pub(crate) fn settings(psk: &str) -> ConnSettings {
    ConnSettings {
        pre_shared_key: Secret::new(psk),
        spd_source: SpdSource::UserGwCidrBlock,
        spd: vec![SpdRule {
            local: "10.0.0.0/16".parse().unwrap(),
            remote: vec!["10.56.20.1/24".parse().unwrap()],
        }],
        ike: IkeSettings {
            encryption: IkeEncryption::AesCbc128,
            authentication: AuthAlgorithm::Md5,
            exchange_mode: ExchangeMode::Main,
            local_identity: Identity::Address("203.0.113.1".parse().unwrap()),
            remote_identity: Identity::Fqdn("peer.example.com".parse().unwrap()),
            dh_group: DhGroup::Group2,
            sa_lifetime_seconds: 86_400,
            version: vpcd_types::IkeVersion::V1,
        },
        ipsec: IpsecSettings {
            encryption: IpsecEncryption::AesCbc128,
            integrity: AuthAlgorithm::Sha,
            sa_lifetime_seconds: 3_600,
            sa_lifetime_traffic_kb: 1_843_200,
            pfs: PfsGroup::Null,
        },
        dpd: vpcd_types::DpdSettings::default(),
        negotiation: vpcd_types::NegotiationType::Active,
        health_check: None,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn pool(s: &str) -> AddressSource {
    AddressSource::Pool(s.parse().unwrap())
}

async fn vpc(store: &Arc<dyn Store>, sc: &Scope, name: &str) -> Vpc {
    store
        .create_vpc(
            sc,
            NewVpc {
                name: name.into(),
                cidr: "10.0.0.0/16".parse().unwrap(),
            },
            &roomy(),
        )
        .await
        .unwrap()
}

fn new_gw(vpc_id: VpcRowId, name: &str, address: AddressSource) -> NewVpnGw {
    NewVpnGw {
        vpc_id,
        name: name.into(),
        bandwidth: 10,
        charge_type: "POSTPAID_BY_HOUR".into(),
        charge_period: None,
        address,
    }
}

async fn vpn_gw(store: &Arc<dyn Store>, sc: &Scope, vpc_id: VpcRowId, name: &str) -> VpnGw {
    store
        .create_vpn_gw(sc, new_gw(vpc_id, name, pool("203.0.113.0/24")), &roomy())
        .await
        .unwrap()
}

fn new_user_gw(name: &str, address: &str) -> NewUserGw {
    NewUserGw {
        name: name.into(),
        address: ip(address),
    }
}

async fn user_gw(store: &Arc<dyn Store>, sc: &Scope, name: &str, address: &str) -> UserGw {
    store
        .create_user_gw(sc, new_user_gw(name, address), &roomy())
        .await
        .unwrap()
}

fn new_conn(vpc: VpcRowId, gw: VpnGwRowId, ugw: UserGwRowId, name: &str) -> NewConn {
    NewConn {
        vpc_id: vpc,
        vpn_gw_id: gw,
        user_gw_id: ugw,
        name: name.into(),
        settings: settings("psk-one"),
        tags: Vec::new(),
    }
}

async fn conn(
    store: &Arc<dyn Store>,
    sc: &Scope,
    gw: &VpnGw,
    ugw: &UserGw,
    name: &str,
) -> (VpnConn, Task) {
    let (c, t) = store
        .create_conn(sc, new_conn(gw.vpc.id, gw.id, ugw.id, name), &roomy())
        .await
        .unwrap();
    // The answer is what was stored, though not read back.
    assert_eq!(get_conn(store, sc, c.id).await.as_ref(), Some(&c));
    assert_eq!(store.get_task(sc, t.id).await.unwrap().as_ref(), Some(&t));
    (c, t)
}

/// A VPC with one VPN gateway and one peer gateway.
async fn topology(store: &Arc<dyn Store>, sc: &Scope) -> (Vpc, VpnGw, UserGw) {
    let v = vpc(store, sc, "vpc-main").await;
    let g = vpn_gw(store, sc, v.id, "gw-main").await;
    let u = user_gw(store, sc, "peer-main", "198.51.100.1").await;
    (v, g, u)
}

/// Claim the next task as `worker` and finish it with `outcome`.
async fn run_next(store: &Arc<dyn Store>, outcome: Result<(), TaskError>) -> ClaimedTask {
    let claimed = claim_any(&**store, "worker-1", T0, 30)
        .await
        .unwrap()
        .expect("a runnable task");
    assert!(store
        .finish_task(claimed.task.id, "worker-1", T0 + 1, outcome)
        .await
        .unwrap());
    claimed
}

fn failure(code: &str) -> Result<(), TaskError> {
    Err(TaskError {
        error_code: code.into(),
        error_msg: format!("{code} happened"),
    })
}

async fn get_conn(store: &Arc<dyn Store>, sc: &Scope, id: VpnConnRowId) -> Option<VpnConn> {
    store.get_conn(sc, &IdRef::Numeric(id.get())).await.unwrap()
}

async fn task(store: &Arc<dyn Store>, sc: &Scope, id: TaskId) -> Task {
    store.get_task(sc, id).await.unwrap().expect("task exists")
}

/// A connection that finished creating (status 6).
async fn running_conn(
    store: &Arc<dyn Store>,
    sc: &Scope,
    gw: &VpnGw,
    ugw: &UserGw,
    name: &str,
) -> VpnConn {
    let (c, _) = conn(store, sc, gw, ugw, name).await;
    run_next(store, Ok(())).await;
    let c = get_conn(store, sc, c.id).await.unwrap();
    assert_eq!(c.status, ConnStatus::Running);
    c
}

// ---- accounts, keys, nonces -----------------------------------------------

pub(crate) async fn accounts_and_keys(store: Arc<dyn Store>) {
    let alice = store.create_account("alice").await.unwrap();
    assert_eq!(alice.name, "alice");
    assert!(!alice.disabled);
    assert_err!(
        store.create_account("alice").await,
        StoreError::NameInUse(Resource::Account)
    );
    let bob = store.create_account("bob").await.unwrap();
    assert_ne!(alice.id, bob.id);

    assert_err!(
        store.create_key("nobody").await,
        StoreError::NotFound(Resource::Account)
    );
    let k1 = store.create_key("alice").await.unwrap();
    let k2 = store.create_key("alice").await.unwrap();
    for k in [&k1, &k2] {
        assert_eq!(k.account_id, alice.id);
        assert!(!k.disabled);
        let rest = k.secret_id.strip_prefix("AKID").expect("AKID prefix");
        assert_eq!(rest.len(), 32);
        assert!(rest.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(k.secret_key.expose().len(), 32);
        assert!(k
            .secret_key
            .expose()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric()));
    }
    assert_ne!(k1.secret_id, k2.secret_id);
    assert_ne!(k1.secret_key, k2.secret_key);

    assert_eq!(
        store.find_key(&k1.secret_id).await.unwrap(),
        Some(k1.clone())
    );
    assert_eq!(store.find_key("AKIDdoesnotexist").await.unwrap(), None);

    let list = store.list_accounts().await.unwrap();
    assert_eq!(list.len(), 2);
    let (a, keys) = list.iter().find(|(a, _)| a.id == alice.id).unwrap();
    assert_eq!(a.name, "alice");
    let ids: BTreeSet<_> = keys.iter().map(|k| k.secret_id.clone()).collect();
    assert_eq!(
        ids,
        BTreeSet::from([k1.secret_id.clone(), k2.secret_id.clone()])
    );
    let (_, bob_keys) = list.iter().find(|(a, _)| a.id == bob.id).unwrap();
    assert!(bob_keys.is_empty());
}

pub(crate) async fn key_and_account_disable(store: Arc<dyn Store>) {
    store.create_account("alice").await.unwrap();
    let k1 = store.create_key("alice").await.unwrap();
    let k2 = store.create_key("alice").await.unwrap();

    store.set_key_disabled(&k1.secret_id, true).await.unwrap();
    assert!(
        store
            .find_key(&k1.secret_id)
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    assert!(
        !store
            .find_key(&k2.secret_id)
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    store.set_key_disabled(&k1.secret_id, false).await.unwrap();
    assert!(
        !store
            .find_key(&k1.secret_id)
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    assert_err!(
        store.set_key_disabled("AKIDnope", true).await,
        StoreError::NotFound(Resource::Key)
    );

    store.set_account_disabled("alice", true).await.unwrap();
    for k in [&k1, &k2] {
        assert!(
            store
                .find_key(&k.secret_id)
                .await
                .unwrap()
                .unwrap()
                .disabled
        );
    }
    let list = store.list_accounts().await.unwrap();
    assert!(list[0].0.disabled);
    assert!(list[0].1.iter().all(|k| k.disabled));
    // A key made for a disabled account is disabled too.
    assert!(store.create_key("alice").await.unwrap().disabled);

    store.set_account_disabled("alice", false).await.unwrap();
    assert!(
        !store
            .find_key(&k2.secret_id)
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    assert_err!(
        store.set_account_disabled("nobody", true).await,
        StoreError::NotFound(Resource::Account)
    );
}

/// Nonces written behind in a batch (more than one statement's worth) come
/// back for a restarted process, and recording one twice is no error. A
/// process that asks for fewer than there are checks the rest with
/// `remember_nonce`, which then refuses every one like any seen one.
pub(crate) async fn recorded_nonces_are_replays(store: Arc<dyn Store>) {
    let (now, nb) = (T0, T0 - 300);
    assert!(store.remember_nonce("AKIDa", "7", now, nb).await.unwrap());
    let batch: Vec<(String, String)> = (0..1_200)
        .map(|n| ("AKIDa".to_owned(), n.to_string()))
        .collect();
    store.record_nonces(&batch, now, nb).await.unwrap();
    store.record_nonces(&batch[..3], now + 1, nb).await.unwrap();
    assert!(store
        .remember_nonce("AKIDa", "1200", now + 1, nb)
        .await
        .unwrap());
    assert!(store
        .remember_nonce("AKIDb", "0", now + 1, nb)
        .await
        .unwrap());
    // All of them come back for a restarted process, newest first, bounded.
    let recent = store.recent_nonces(nb, 10_000).await.unwrap();
    let distinct: std::collections::HashSet<_> = recent
        .iter()
        .map(|(id, n, _)| (id.as_str(), n.as_str()))
        .collect();
    assert_eq!(distinct.len(), 1_202);
    assert_eq!(recent[0].2, now + 1);
    assert!(recent
        .iter()
        .any(|(id, n, at)| id == "AKIDa" && n == "7" && *at == now));
    assert!(store.recent_nonces(now + 2, 10).await.unwrap().is_empty());
    assert_eq!(store.recent_nonces(nb, 5).await.unwrap().len(), 5);
    for n in ["0", "7", "499", "500", "1199"] {
        assert!(
            !store.remember_nonce("AKIDa", n, now + 1, nb).await.unwrap(),
            "nonce {n} was recorded"
        );
    }
    assert!(store
        .remember_nonce("AKIDa", "1201", now + 1, nb)
        .await
        .unwrap());
}

pub(crate) async fn nonce_replay(store: Arc<dyn Store>) {
    let window = 300;
    let seen = |now: Timestamp| (now, now - window);
    let (now, nb) = seen(T0);
    assert!(store.remember_nonce("AKIDa", "1", now, nb).await.unwrap());
    let (now, nb) = seen(T0 + 1);
    assert!(!store.remember_nonce("AKIDa", "1", now, nb).await.unwrap());
    assert!(store.remember_nonce("AKIDb", "1", now, nb).await.unwrap());
    assert!(store.remember_nonce("AKIDa", "2", now, nb).await.unwrap());
    // Still inside the window at its very edge.
    let (now, nb) = seen(T0 + window);
    assert!(!store.remember_nonce("AKIDa", "1", now, nb).await.unwrap());
    // Once the first sighting left the window, the nonce is new again...
    let (now, nb) = seen(T0 + window + 1);
    assert!(store.remember_nonce("AKIDa", "1", now, nb).await.unwrap());
    // ...and then remembered from that new sighting.
    let (now, nb) = seen(T0 + window + 2);
    assert!(!store.remember_nonce("AKIDa", "1", now, nb).await.unwrap());
    // Much later, pruning has run; fresh nonces still work.
    let (now, nb) = seen(T0 + 10_000);
    assert!(store.remember_nonce("AKIDa", "2", now, nb).await.unwrap());
    assert!(!store.remember_nonce("AKIDa", "2", now, nb).await.unwrap());
}

pub(crate) async fn nonce_replay_is_race_free(store: Arc<dyn Store>) {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let store = store.clone();
        set.spawn(async move {
            store
                .remember_nonce("AKIDrace", "4242", T0, T0 - 300)
                .await
                .unwrap()
        });
    }
    let fresh = set.join_all().await.into_iter().filter(|f| *f).count();
    assert_eq!(fresh, 1);
}

// ---- tenancy and ids ----------------------------------------------------------

pub(crate) async fn tenancy_hides_other_scopes(store: Arc<dyn Store>) {
    let a = scope_of(&store, "alice", "gz").await;
    let (v, g, u) = topology(&store, &a).await;
    let (c, t) = conn(&store, &a, &g, &u, "conn-a").await;

    let other_account = scope_of(&store, "bob", "gz").await;
    let other_region = scope_of(&store, "alice", "bj").await;
    for s in [&other_account, &other_region] {
        assert_eq!(
            store.get_vpc(s, &IdRef::Numeric(v.id.get())).await.unwrap(),
            None
        );
        assert_eq!(
            store
                .get_vpc(s, &IdRef::Unified(v.un_id.clone()))
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .get_vpn_gw(s, &IdRef::Numeric(g.id.get()))
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .get_vpn_gw(s, &IdRef::Unified(g.un_id.clone()))
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .get_user_gw(s, &IdRef::Numeric(u.id.get()))
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .get_user_gw(s, &IdRef::Unified(u.un_id.clone()))
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .get_conn(s, &IdRef::Numeric(c.id.get()))
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .get_conn(s, &IdRef::Unified(c.un_id.clone()))
                .await
                .unwrap(),
            None
        );
        assert_eq!(store.get_task(s, t.id).await.unwrap(), None);

        assert_eq!(
            store
                .list_vpcs(s, &VpcFilter::default(), &all())
                .await
                .unwrap()
                .0,
            0
        );
        assert_eq!(
            store
                .list_vpn_gws(s, &VpnGwFilter::default(), &all())
                .await
                .unwrap()
                .0,
            0
        );
        assert_eq!(
            store
                .list_user_gws(s, &UserGwFilter::default(), &all())
                .await
                .unwrap()
                .0,
            0
        );
        assert_eq!(
            store
                .list_conns(s, &ConnFilter::default(), &all())
                .await
                .unwrap()
                .0,
            0
        );
        let by_foreign_vpc = ConnFilter {
            vpc: Some(IdRef::Unified(v.un_id.clone())),
            ..ConnFilter::default()
        };
        assert_eq!(
            store
                .list_conns(s, &by_foreign_vpc, &all())
                .await
                .unwrap()
                .0,
            0
        );

        assert_err!(
            store.delete_vpc(s, v.id).await,
            StoreError::NotFound(Resource::Vpc)
        );
        assert_err!(
            store.delete_vpn_gw(s, g.id).await,
            StoreError::NotFound(Resource::VpnGw)
        );
        assert_err!(
            store.delete_user_gw(s, u.id).await,
            StoreError::NotFound(Resource::UserGw)
        );
        assert_err!(
            store.rename_vpn_gw(s, g.id, "x").await,
            StoreError::NotFound(Resource::VpnGw)
        );
        assert_err!(
            store.rename_user_gw(s, u.id, "x").await,
            StoreError::NotFound(Resource::UserGw)
        );
        assert_err!(
            store.begin_modify(s, c.id, ConnChange::default()).await,
            StoreError::NotFound(Resource::VpnConn)
        );
        assert_err!(
            store.begin_delete(s, c.id).await,
            StoreError::NotFound(Resource::VpnConn)
        );
        assert_err!(
            store.begin_reset(s, c.id).await,
            StoreError::NotFound(Resource::VpnConn)
        );
        assert_err!(
            store
                .create_vpn_gw(s, new_gw(v.id, "gw", pool("192.0.2.0/24")), &roomy())
                .await,
            StoreError::NotFound(Resource::Vpc)
        );
        assert_err!(
            store
                .create_conn(s, new_conn(v.id, g.id, u.id, "c"), &roomy())
                .await,
            StoreError::NotFound(Resource::Vpc)
        );

        // Own resources may reuse the other scope's names and addresses.
        let v2 = vpc(&store, s, "vpc-main").await;
        let g2 = vpn_gw(&store, s, v2.id, "gw-main").await;
        let u2 = user_gw(&store, s, "peer-main", "198.51.100.1").await;
        assert_err!(
            store
                .create_conn(s, new_conn(v2.id, g.id, u2.id, "c"), &roomy())
                .await,
            StoreError::NotFound(Resource::VpnGw)
        );
        assert_err!(
            store
                .create_conn(s, new_conn(v2.id, g2.id, u.id, "c"), &roomy())
                .await,
            StoreError::NotFound(Resource::UserGw)
        );
        conn(&store, s, &g2, &u2, "conn-a").await;
    }
    // The first scope still sees exactly its own.
    let (total, conns) = store
        .list_conns(&a, &ConnFilter::default(), &all())
        .await
        .unwrap();
    assert_eq!(total, 1);
    assert_eq!(conns[0].id, c.id);
}

pub(crate) async fn ids_resolve_in_both_forms(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let (v, g, u) = topology(&store, &sc).await;
    let (c, _) = conn(&store, &sc, &g, &u, "c").await;

    let read = store
        .get_vpc(&sc, &IdRef::Numeric(v.id.get()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        read,
        Vpc {
            vpn_gw_num: 1,
            ..v.clone()
        }
    );
    assert_eq!(
        store
            .get_vpc(&sc, &IdRef::Unified(v.un_id.clone()))
            .await
            .unwrap()
            .unwrap()
            .id,
        v.id
    );
    assert_eq!(
        store
            .get_vpn_gw(&sc, &IdRef::Unified(g.un_id.clone()))
            .await
            .unwrap()
            .unwrap()
            .id,
        g.id
    );
    assert_eq!(
        store
            .get_user_gw(&sc, &IdRef::Unified(u.un_id.clone()))
            .await
            .unwrap()
            .unwrap()
            .id,
        u.id
    );
    assert_eq!(
        store
            .get_conn(&sc, &IdRef::Unified(c.un_id.clone()))
            .await
            .unwrap()
            .as_ref(),
        Some(&c)
    );

    assert_eq!(
        store
            .get_vpc(&sc, &IdRef::Numeric(v.id.get() + 1000))
            .await
            .unwrap(),
        None
    );
    let missing: IdRef<VpcKind> = IdRef::Unified(VpcId::random());
    assert_eq!(store.get_vpc(&sc, &missing).await.unwrap(), None);
    let missing: IdRef<VpnGwKind> = IdRef::Unified(VpnGwId::random());
    assert_eq!(store.get_vpn_gw(&sc, &missing).await.unwrap(), None);
    let missing: IdRef<UserGwKind> = IdRef::Unified(UserGwId::random());
    assert_eq!(store.get_user_gw(&sc, &missing).await.unwrap(), None);
    let missing: IdRef<VpnConnKind> = IdRef::Unified(VpnConnId::random());
    assert_eq!(store.get_conn(&sc, &missing).await.unwrap(), None);

    // What a create returns is what a read returns.
    assert_eq!(v.name, "vpc-main");
    assert_eq!(v.cidr.as_given(), "10.0.0.0/16");
    assert_eq!(g.vpc.id, v.id);
    assert_eq!(g.vpc.un_id, v.un_id);
    assert_eq!(g.bandwidth, 10);
    assert_eq!(g.charge_type, "POSTPAID_BY_HOUR");
    assert_eq!(u.address, ip("198.51.100.1"));
    assert_eq!(c.vpc.un_id, v.un_id);
    assert_eq!(c.vpn_gw.un_id, g.un_id);
    assert_eq!(c.vpn_gw.address, g.address);
    assert_eq!(c.user_gw.un_id, u.un_id);
    assert_eq!(c.user_gw.address, u.address);
    assert_eq!(c.settings, settings("psk-one"));
    assert_eq!(c.settings.spd[0].remote[0].as_given(), "10.56.20.1/24");
}

// ---- quotas and uniqueness ----------------------------------------------------

pub(crate) async fn vpc_quota_and_unique_names(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let limits = Limits {
        vpcs_per_region: 2,
        ..roomy()
    };
    let new = |name: &str| NewVpc {
        name: name.into(),
        cidr: "10.0.0.0/16".parse().unwrap(),
    };
    store.create_vpc(&sc, new("one"), &limits).await.unwrap();
    assert_err!(
        store.create_vpc(&sc, new("one"), &limits).await,
        StoreError::NameInUse(Resource::Vpc)
    );
    store.create_vpc(&sc, new("two"), &limits).await.unwrap();
    assert_err!(
        store.create_vpc(&sc, new("three"), &limits).await,
        StoreError::LimitExceeded(Quota::VpcsPerRegion)
    );
    // Quotas are per region.
    let bj = scope_of(&store, "alice", "bj").await;
    store.create_vpc(&bj, new("three"), &limits).await.unwrap();
    assert_eq!(
        store
            .list_vpcs(&sc, &VpcFilter::default(), &all())
            .await
            .unwrap()
            .0,
        2
    );
    // Freeing a slot makes room again.
    let (_, vpcs) = store
        .list_vpcs(&sc, &VpcFilter::default(), &all())
        .await
        .unwrap();
    store.delete_vpc(&sc, vpcs[0].id).await.unwrap();
    store.create_vpc(&sc, new("three"), &limits).await.unwrap();
}

pub(crate) async fn vpn_gw_quota(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let limits = Limits {
        vpn_gws_per_vpc: 2,
        ..roomy()
    };
    let v1 = vpc(&store, &sc, "v1").await;
    let v2 = vpc(&store, &sc, "v2").await;
    let new = |vpc: VpcRowId| new_gw(vpc, "same-name", pool("203.0.113.0/24"));
    store.create_vpn_gw(&sc, new(v1.id), &limits).await.unwrap();
    // VPN gateway names need not be unique.
    store.create_vpn_gw(&sc, new(v1.id), &limits).await.unwrap();
    assert_err!(
        store.create_vpn_gw(&sc, new(v1.id), &limits).await,
        StoreError::LimitExceeded(Quota::VpnGwsPerVpc)
    );
    store.create_vpn_gw(&sc, new(v2.id), &limits).await.unwrap();
    assert_err!(
        store
            .create_vpn_gw(&sc, new(RowId::new(v1.id.get() + 1000)), &limits)
            .await,
        StoreError::NotFound(Resource::Vpc)
    );
}

pub(crate) async fn user_gw_quota_names_and_addresses(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let limits = Limits {
        user_gws_per_region: 2,
        ..roomy()
    };
    store
        .create_user_gw(&sc, new_user_gw("p1", "198.51.100.1"), &limits)
        .await
        .unwrap();
    assert_err!(
        store
            .create_user_gw(&sc, new_user_gw("p1", "198.51.100.2"), &limits)
            .await,
        StoreError::NameInUse(Resource::UserGw)
    );
    assert_err!(
        store
            .create_user_gw(&sc, new_user_gw("p2", "198.51.100.1"), &limits)
            .await,
        StoreError::AddressInUse
    );
    store
        .create_user_gw(&sc, new_user_gw("p2", "198.51.100.2"), &limits)
        .await
        .unwrap();
    assert_err!(
        store
            .create_user_gw(&sc, new_user_gw("p3", "198.51.100.3"), &limits)
            .await,
        StoreError::LimitExceeded(Quota::UserGwsPerRegion)
    );
    let other = scope_of(&store, "bob", "gz").await;
    store
        .create_user_gw(&other, new_user_gw("p1", "198.51.100.1"), &limits)
        .await
        .unwrap();
}

pub(crate) async fn conn_quota_per_vpn_gw(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let limits = Limits {
        conns_per_vpn_gw: 2,
        ..roomy()
    };
    let v = vpc(&store, &sc, "v").await;
    let g = vpn_gw(&store, &sc, v.id, "g").await;
    let g2 = vpn_gw(&store, &sc, v.id, "g2").await;
    let mut peers = Vec::new();
    for i in 1..=3 {
        peers.push(user_gw(&store, &sc, &format!("p{i}"), &format!("198.51.100.{i}")).await);
    }
    for (i, p) in peers.iter().take(2).enumerate() {
        store
            .create_conn(&sc, new_conn(v.id, g.id, p.id, &format!("c{i}")), &limits)
            .await
            .unwrap();
    }
    assert_err!(
        store
            .create_conn(&sc, new_conn(v.id, g.id, peers[2].id, "c3"), &limits)
            .await,
        StoreError::LimitExceeded(Quota::ConnsPerVpnGw)
    );
    store
        .create_conn(&sc, new_conn(v.id, g2.id, peers[2].id, "c3"), &limits)
        .await
        .unwrap();
}

pub(crate) async fn conn_quota_per_user_gw(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let limits = Limits {
        conns_per_user_gw: 2,
        ..roomy()
    };
    let v = vpc(&store, &sc, "v").await;
    let u = user_gw(&store, &sc, "p", "198.51.100.1").await;
    let u2 = user_gw(&store, &sc, "p2", "198.51.100.2").await;
    let mut gws = Vec::new();
    for i in 1..=3 {
        gws.push(vpn_gw(&store, &sc, v.id, &format!("g{i}")).await);
    }
    for (i, g) in gws.iter().take(2).enumerate() {
        store
            .create_conn(&sc, new_conn(v.id, g.id, u.id, &format!("c{i}")), &limits)
            .await
            .unwrap();
    }
    assert_err!(
        store
            .create_conn(&sc, new_conn(v.id, gws[2].id, u.id, "c3"), &limits)
            .await,
        StoreError::LimitExceeded(Quota::ConnsPerUserGw)
    );
    store
        .create_conn(&sc, new_conn(v.id, gws[2].id, u2.id, "c3"), &limits)
        .await
        .unwrap();
}

pub(crate) async fn conn_quota_per_region(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let limits = Limits {
        conns_per_region: 2,
        ..roomy()
    };
    let v1 = vpc(&store, &sc, "v1").await;
    let v2 = vpc(&store, &sc, "v2").await;
    let g1 = vpn_gw(&store, &sc, v1.id, "g1").await;
    let g2 = vpn_gw(&store, &sc, v2.id, "g2").await;
    let u1 = user_gw(&store, &sc, "p1", "198.51.100.1").await;
    let u2 = user_gw(&store, &sc, "p2", "198.51.100.2").await;
    store
        .create_conn(&sc, new_conn(v1.id, g1.id, u1.id, "c"), &limits)
        .await
        .unwrap();
    store
        .create_conn(&sc, new_conn(v2.id, g2.id, u2.id, "c"), &limits)
        .await
        .unwrap();
    assert_err!(
        store
            .create_conn(&sc, new_conn(v1.id, g1.id, u2.id, "c2"), &limits)
            .await,
        StoreError::LimitExceeded(Quota::ConnsPerRegion)
    );
    // Another region has its own count.
    let bj = scope_of(&store, "alice", "bj").await;
    let (_, g, u) = topology(&store, &bj).await;
    store
        .create_conn(&bj, new_conn(g.vpc.id, g.id, u.id, "c"), &limits)
        .await
        .unwrap();
}

/// The maintained per-region connection count always equals the rows':
/// after creates, refused creates (quota, name, missing parent), a failed
/// create task (the row stays), imports (including a refused batch),
/// failed and successful deletes, in two regions.
pub(crate) async fn conn_counter_matches_rows(store: Arc<dyn Store>) {
    async fn check(store: &Arc<dyn Store>, sc: &Scope, expected: u64) {
        let (kept, counted) = store.conn_count_check(sc).await.unwrap();
        assert_eq!((kept, counted), (expected, expected), "counter vs COUNT(*)");
    }
    let sc = scope(&store).await;
    check(&store, &sc, 0).await;
    let limits = Limits {
        conns_per_region: 3,
        ..roomy()
    };
    let (v, g, u) = topology(&store, &sc).await;
    let u2 = user_gw(&store, &sc, "p2", "198.51.100.2").await;
    let (c1, _) = store
        .create_conn(&sc, new_conn(v.id, g.id, u.id, "c1"), &limits)
        .await
        .unwrap();
    check(&store, &sc, 1).await;
    // Refused: the name is taken; a parent is missing. Nothing changes.
    assert_err!(
        store
            .create_conn(&sc, new_conn(v.id, g.id, u2.id, "c1"), &limits)
            .await,
        StoreError::NameInUse(Resource::VpnConn)
    );
    assert_err!(
        store
            .create_conn(
                &sc,
                new_conn(v.id, g.id, RowId::new(u.id.get() + 1000), "cx"),
                &limits
            )
            .await,
        StoreError::NotFound(Resource::UserGw)
    );
    check(&store, &sc, 1).await;
    // The create task fails: the row stays (status 1) and is counted.
    run_next(&store, failure("E1")).await;
    let (c2, _) = store
        .create_conn(&sc, new_conn(v.id, g.id, u2.id, "c2"), &limits)
        .await
        .unwrap();
    run_next(&store, Ok(())).await;
    check(&store, &sc, 2).await;
    // Imports count, and are not held to the quota.
    let imported = store
        .import_conns(
            &sc,
            (0..5)
                .map(|i| new_conn(v.id, g.id, u.id, &format!("i{i}")))
                .collect(),
        )
        .await
        .unwrap();
    assert_eq!(imported, 5);
    check(&store, &sc, 7).await;
    // A refused import batch (a duplicate name) leaves the count alone.
    assert_err!(
        store
            .import_conns(
                &sc,
                vec![
                    new_conn(v.id, g.id, u.id, "j0"),
                    new_conn(v.id, g.id, u.id, "c2"),
                ],
            )
            .await,
        StoreError::NameInUse(Resource::VpnConn)
    );
    check(&store, &sc, 7).await;
    // Over the quota: refused, unchanged.
    assert_err!(
        store
            .create_conn(&sc, new_conn(v.id, g.id, u.id, "c3"), &limits)
            .await,
        StoreError::LimitExceeded(Quota::ConnsPerRegion)
    );
    check(&store, &sc, 7).await;
    // A failed delete keeps the row; a successful one removes it.
    store.begin_delete(&sc, c2.id).await.unwrap();
    run_next(&store, failure("E2")).await;
    check(&store, &sc, 7).await;
    store.begin_delete(&sc, c2.id).await.unwrap();
    run_next(&store, Ok(())).await;
    assert!(get_conn(&store, &sc, c2.id).await.is_none());
    check(&store, &sc, 6).await;
    store.begin_delete(&sc, c1.id).await.unwrap();
    run_next(&store, Ok(())).await;
    check(&store, &sc, 5).await;
    // Down to the quota again, a create fits once more.
    let (_, names) = store
        .list_conns(&sc, &ConnFilter::default(), &all())
        .await
        .unwrap();
    for c in names.iter().filter(|c| c.name.starts_with('i')).take(3) {
        store.begin_delete(&sc, c.id).await.unwrap();
        run_next(&store, Ok(())).await;
    }
    check(&store, &sc, 2).await;
    store
        .create_conn(&sc, new_conn(v.id, g.id, u.id, "c4"), &limits)
        .await
        .unwrap();
    check(&store, &sc, 3).await;
    // Another region keeps its own count; this one is untouched by it.
    let bj = scope_of(&store, "alice", "bj").await;
    check(&store, &bj, 0).await;
    let (_, g, u) = topology(&store, &bj).await;
    store
        .create_conn(&bj, new_conn(g.vpc.id, g.id, u.id, "c"), &limits)
        .await
        .unwrap();
    check(&store, &bj, 1).await;
    check(&store, &sc, 3).await;
}

pub(crate) async fn conn_quota_per_pair(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    // The published default: one tunnel per (peer gateway, VPN gateway).
    let limits = Limits {
        conns_per_pair: 1,
        ..roomy()
    };
    let (v, g, u) = topology(&store, &sc).await;
    let u2 = user_gw(&store, &sc, "p2", "198.51.100.2").await;
    store
        .create_conn(&sc, new_conn(v.id, g.id, u.id, "c1"), &limits)
        .await
        .unwrap();
    assert_err!(
        store
            .create_conn(&sc, new_conn(v.id, g.id, u.id, "c2"), &limits)
            .await,
        StoreError::LimitExceeded(Quota::ConnsPerPair)
    );
    store
        .create_conn(&sc, new_conn(v.id, g.id, u2.id, "c2"), &limits)
        .await
        .unwrap();
    assert_eq!(Limits::default().conns_per_pair, 1);
}

pub(crate) async fn conn_names_unique_per_vpc(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let (v, g, u) = topology(&store, &sc).await;
    let v2 = vpc(&store, &sc, "vpc-two").await;
    let g2 = vpn_gw(&store, &sc, v2.id, "gw-two").await;
    conn(&store, &sc, &g, &u, "tunnel").await;
    assert_err!(
        store
            .create_conn(&sc, new_conn(v.id, g.id, u.id, "tunnel"), &roomy())
            .await,
        StoreError::NameInUse(Resource::VpnConn)
    );
    // The same name in another VPC is fine.
    conn(&store, &sc, &g2, &u, "tunnel").await;
}

pub(crate) async fn create_conn_checks_parents(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let (v, g, u) = topology(&store, &sc).await;
    let v2 = vpc(&store, &sc, "vpc-two").await;
    let g2 = vpn_gw(&store, &sc, v2.id, "gw-two").await;
    assert_err!(
        store
            .create_conn(
                &sc,
                new_conn(RowId::new(v.id.get() + 1000), g.id, u.id, "c"),
                &roomy()
            )
            .await,
        StoreError::NotFound(Resource::Vpc)
    );
    assert_err!(
        store
            .create_conn(
                &sc,
                new_conn(v.id, RowId::new(g.id.get() + 1000), u.id, "c"),
                &roomy()
            )
            .await,
        StoreError::NotFound(Resource::VpnGw)
    );
    // A gateway of another VPC does not belong to this one.
    assert_err!(
        store
            .create_conn(&sc, new_conn(v.id, g2.id, u.id, "c"), &roomy())
            .await,
        StoreError::NotFound(Resource::VpnGw)
    );
    assert_err!(
        store
            .create_conn(
                &sc,
                new_conn(v.id, g.id, RowId::new(u.id.get() + 1000), "c"),
                &roomy()
            )
            .await,
        StoreError::NotFound(Resource::UserGw)
    );
    assert_eq!(
        store
            .list_conns(&sc, &ConnFilter::default(), &all())
            .await
            .unwrap()
            .0,
        0
    );
    assert!(claim_any(&*store, "w", T0, 30).await.unwrap().is_none());
}

pub(crate) async fn create_conn_is_atomic(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let (v, g, u) = topology(&store, &sc).await;
    let (c, t) = conn(&store, &sc, &g, &u, "first").await;
    assert_eq!(c.status, ConnStatus::Creating);
    assert_eq!(c.net_status, NetStatus::Unavailable);
    assert_eq!(c.active_task, Some(t.id));
    assert_eq!(t.kind, TaskKind::Create);
    assert_eq!(t.status, TaskStatus::Running);
    assert_eq!(t.conn_id, c.id);
    assert_eq!(t.conn_un_id, c.un_id);
    assert_eq!(t.vpn_gw_un_id, g.un_id);
    assert_eq!(t.user_gw_un_id, u.un_id);
    assert_eq!(t.attempts, 0);
    assert_eq!(t.error, None);
    assert_eq!(t.finished_at, None);
    assert_eq!(store.get_task(&sc, t.id).await.unwrap(), Some(t.clone()));

    let full = Limits {
        conns_per_region: 1,
        ..roomy()
    };
    assert_err!(
        store
            .create_conn(&sc, new_conn(v.id, g.id, u.id, "second"), &full)
            .await,
        StoreError::LimitExceeded(Quota::ConnsPerRegion)
    );
    assert_err!(
        store
            .create_conn(&sc, new_conn(v.id, g.id, u.id, "first"), &roomy())
            .await,
        StoreError::NameInUse(Resource::VpnConn)
    );
    // Neither a connection nor a task was left behind.
    let (total, conns) = store
        .list_conns(&sc, &ConnFilter::default(), &all())
        .await
        .unwrap();
    assert_eq!(total, 1);
    assert_eq!(conns[0].id, c.id);
    let claimed = claim_any(&*store, "w", T0, 30).await.unwrap().unwrap();
    assert_eq!(claimed.task.id, t.id);
    assert!(claim_any(&*store, "w", T0, 30).await.unwrap().is_none());
}

// ---- gateway addresses ----------------------------------------------------------

/// Issue 11, finding 3: one account's gateways hold at most
/// `pool_addresses_per_account` pool addresses, counted across its regions,
/// so another account still gets one; gateways on a node do not count.
pub(crate) async fn pool_addresses_capped_per_account(store: Arc<dyn Store>) {
    let limits = Limits {
        pool_addresses_per_account: 2,
        ..roomy()
    };
    let gz = scope(&store).await;
    let sh = scope_of(&store, "alice", "sh").await;
    let (vgz, vsh) = (vpc(&store, &gz, "v").await, vpc(&store, &sh, "v").await);
    let net = "203.0.113.0/29";
    store
        .create_vpn_gw(&gz, new_gw(vgz.id, "a", pool(net)), &limits)
        .await
        .unwrap();
    let second = store
        .create_vpn_gw(&sh, new_gw(vsh.id, "b", pool(net)), &limits)
        .await
        .unwrap();
    assert_err!(
        store
            .create_vpn_gw(&gz, new_gw(vgz.id, "c", pool(net)), &limits)
            .await,
        StoreError::LimitExceeded(Quota::PoolAddressesPerAccount)
    );
    let bob = scope_of(&store, "bob", "gz").await;
    let vb = vpc(&store, &bob, "v").await;
    store
        .create_vpn_gw(&bob, new_gw(vb.id, "b", pool(net)), &limits)
        .await
        .unwrap();
    let node = store
        .add_gateway_node("n1", "unix:///run/n1.vici", &[ip("192.0.2.1")])
        .await
        .unwrap();
    store
        .create_vpn_gw(
            &gz,
            new_gw(vgz.id, "on-node", AddressSource::Node { node_id: node.id }),
            &limits,
        )
        .await
        .unwrap();
    // A freed pool address frees the account's share.
    store.delete_vpn_gw(&sh, second.id).await.unwrap();
    store
        .create_vpn_gw(&gz, new_gw(vgz.id, "d", pool(net)), &limits)
        .await
        .unwrap();
}

pub(crate) async fn pool_allocation(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let v = vpc(&store, &sc, "v").await;
    let mk = |name: &str, p: &str| new_gw(v.id, name, pool(p));
    let g1 = store
        .create_vpn_gw(&sc, mk("g1", "203.0.113.0/30"), &roomy())
        .await
        .unwrap();
    let g2 = store
        .create_vpn_gw(&sc, mk("g2", "203.0.113.0/30"), &roomy())
        .await
        .unwrap();
    assert_eq!(g1.address, ip("203.0.113.1"));
    assert_eq!(g2.address, ip("203.0.113.2"));
    assert_eq!(g1.node_id, None);
    assert_err!(
        store
            .create_vpn_gw(&sc, mk("g3", "203.0.113.0/30"), &roomy())
            .await,
        StoreError::PoolExhausted
    );
    // Addresses are global: another account draws from the same pool.
    let bob = scope_of(&store, "bob", "gz").await;
    let vb = vpc(&store, &bob, "v").await;
    assert_err!(
        store
            .create_vpn_gw(&bob, new_gw(vb.id, "b", pool("203.0.113.0/30")), &roomy())
            .await,
        StoreError::PoolExhausted
    );
    let b = store
        .create_vpn_gw(&bob, new_gw(vb.id, "b", pool("203.0.113.0/29")), &roomy())
        .await
        .unwrap();
    assert_eq!(b.address, ip("203.0.113.3"));
    // A freed address is the lowest again.
    store.delete_vpn_gw(&sc, g1.id).await.unwrap();
    let g4 = store
        .create_vpn_gw(&sc, mk("g4", "203.0.113.0/29"), &roomy())
        .await
        .unwrap();
    assert_eq!(g4.address, ip("203.0.113.1"));
    let g5 = store
        .create_vpn_gw(&sc, mk("g5", "203.0.113.0/29"), &roomy())
        .await
        .unwrap();
    assert_eq!(g5.address, ip("203.0.113.4"));
    // A /32 pool has exactly one address.
    let one = store
        .create_vpn_gw(&sc, mk("one", "192.0.2.77/32"), &roomy())
        .await
        .unwrap();
    assert_eq!(one.address, ip("192.0.2.77"));
    assert_err!(
        store
            .create_vpn_gw(&sc, mk("two", "192.0.2.77/32"), &roomy())
            .await,
        StoreError::PoolExhausted
    );
    // A gateway refused by its quota takes no address.
    let tight = Limits {
        vpn_gws_per_vpc: 1,
        ..roomy()
    };
    let v2 = vpc(&store, &sc, "v2").await;
    store
        .create_vpn_gw(&sc, new_gw(v2.id, "a", pool("192.0.2.128/30")), &tight)
        .await
        .unwrap();
    assert_err!(
        store
            .create_vpn_gw(&sc, new_gw(v2.id, "b", pool("192.0.2.128/30")), &tight)
            .await,
        StoreError::LimitExceeded(Quota::VpnGwsPerVpc)
    );
    let last = store
        .create_vpn_gw(&sc, mk("c", "192.0.2.128/30"), &roomy())
        .await
        .unwrap();
    assert_eq!(last.address, ip("192.0.2.130"));
}

/// Issue 11, finding 7: on one gateway node, another account's tunnel may
/// not use the same (gateway address, peer address) nor the same pair of
/// identities, at creation or by a modification; the same account, other
/// nodes and API-only gateways are not concerned, nor are tunnels that are
/// not loaded.
pub(crate) async fn tenants_on_one_node_cannot_clash(store: Arc<dyn Store>) {
    let node = store
        .add_gateway_node("shared", "tcp://192.0.2.10:4502", &[ip("203.0.113.1")])
        .await
        .unwrap();
    let on_node = AddressSource::Node { node_id: node.id };
    let alice = scope(&store).await;
    let bob = scope_of(&store, "bob", "gz").await;
    let va = vpc(&store, &alice, "v").await;
    let vb = vpc(&store, &bob, "v").await;
    let ga = store
        .create_vpn_gw(&alice, new_gw(va.id, "g", on_node.clone()), &roomy())
        .await
        .unwrap();
    let gb = store
        .create_vpn_gw(&bob, new_gw(vb.id, "g", on_node.clone()), &roomy())
        .await
        .unwrap();
    assert_eq!(ga.address, gb.address, "one address: the gateways share it");
    let ua = user_gw(&store, &alice, "peer", "198.51.100.1").await;
    let (a_conn, _) = conn(&store, &alice, &ga, &ua, "a").await;
    // Bob registers Alice's peer address and connects it: refused.
    let same_peer = user_gw(&store, &bob, "peer", "198.51.100.1").await;
    let with_ids = |ugw: &UserGw, local: &str, remote: Identity| {
        let mut s = settings("bobs-key");
        s.ike.local_identity = Identity::Address(ip(local));
        s.ike.remote_identity = remote;
        NewConn {
            settings: s,
            ..new_conn(vb.id, gb.id, ugw.id, "b")
        }
    };
    let alices_ids = a_conn.settings.ike.remote_identity.clone();
    let nat = || Identity::Address(ip("10.1.1.1"));
    assert_err!(
        store
            .create_conn(&bob, with_ids(&same_peer, "203.0.113.1", nat()), &roomy())
            .await,
        StoreError::TunnelClash(TunnelClash::Endpoints)
    );
    // Another peer address with Alice's pair of identities: refused.
    let other_peer = user_gw(&store, &bob, "other", "198.51.100.2").await;
    assert_err!(
        store
            .create_conn(
                &bob,
                with_ids(&other_peer, "203.0.113.1", alices_ids.clone()),
                &roomy()
            )
            .await,
        StoreError::TunnelClash(TunnelClash::Identities)
    );
    // Its own identity behind NAT: accepted; then a modification taking
    // Alice's identities is refused and changes nothing.
    let (b_conn, _) = store
        .create_conn(&bob, with_ids(&other_peer, "203.0.113.1", nat()), &roomy())
        .await
        .unwrap();
    // Both creations applied: Alice's, then Bob's.
    run_next(&store, Ok(())).await;
    run_next(&store, Ok(())).await;
    let mut taken = b_conn.settings.clone();
    taken.ike.remote_identity = alices_ids.clone();
    assert_err!(
        store
            .begin_modify(
                &bob,
                b_conn.id,
                ConnChange {
                    name: None,
                    settings: Some(taken)
                }
            )
            .await,
        StoreError::TunnelClash(TunnelClash::Identities)
    );
    let kept = store
        .get_conn(&bob, &IdRef::Numeric(b_conn.id.get()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.settings.ike.remote_identity, nat());
    assert_eq!(kept.active_task, None);
    // Alice herself may have a second tunnel with the same identities.
    let ua2 = user_gw(&store, &alice, "peer2", "198.51.100.3").await;
    let mut again = new_conn(va.id, ga.id, ua2.id, "a2");
    again.settings.ike.remote_identity = alices_ids.clone();
    store.create_conn(&alice, again, &roomy()).await.unwrap();
}

pub(crate) async fn node_addresses_spread_then_shared(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let v = vpc(&store, &sc, "v").await;
    // Given out of order: ties go to the lowest address, not the first.
    let n = store
        .add_gateway_node(
            "gw1",
            "tcp://192.0.2.10:4502",
            &[ip("198.51.100.9"), ip("198.51.100.8")],
        )
        .await
        .unwrap();
    let on_node = |name: &str| new_gw(v.id, name, AddressSource::Node { node_id: n.id });
    let mut gws = Vec::new();
    for name in ["a", "b", "c", "d"] {
        gws.push(
            store
                .create_vpn_gw(&sc, on_node(name), &roomy())
                .await
                .unwrap(),
        );
    }
    let addrs: Vec<IpAddr> = gws.iter().map(|g| g.address).collect();
    // Each gateway has its own address while there are free ones; then the
    // least used is shared.
    assert_eq!(
        addrs,
        [
            ip("198.51.100.8"),
            ip("198.51.100.9"),
            ip("198.51.100.8"),
            ip("198.51.100.9")
        ]
    );
    assert!(gws.iter().all(|g| g.node_id == Some(n.id)));
    // Freeing .9 once makes it the least used.
    store.delete_vpn_gw(&sc, gws[1].id).await.unwrap();
    let e = store
        .create_vpn_gw(&sc, on_node("e"), &roomy())
        .await
        .unwrap();
    assert_eq!(e.address, ip("198.51.100.9"));
    // A pool skips addresses held by node gateways.
    let p = store
        .create_vpn_gw(&sc, new_gw(v.id, "p", pool("198.51.100.8/29")), &roomy())
        .await
        .unwrap();
    assert_eq!(p.address, ip("198.51.100.10"));
    assert_eq!(
        store
            .get_vpn_gw(&sc, &IdRef::Numeric(gws[0].id.get()))
            .await
            .unwrap()
            .unwrap()
            .node_id,
        Some(n.id)
    );
    // Gateways on another node do not count against this one's addresses.
    let m = store
        .add_gateway_node(
            "gw2",
            "tcp://192.0.2.11:4502",
            &[ip("198.51.100.8"), ip("198.51.100.20")],
        )
        .await
        .unwrap();
    let f = store
        .create_vpn_gw(
            &sc,
            new_gw(v.id, "f", AddressSource::Node { node_id: m.id }),
            &roomy(),
        )
        .await
        .unwrap();
    assert_eq!((f.address, f.node_id), (ip("198.51.100.8"), Some(m.id)));
    // An unknown node, and a node without addresses.
    assert_err!(
        store
            .create_vpn_gw(
                &sc,
                new_gw(
                    v.id,
                    "x",
                    AddressSource::Node {
                        node_id: RowId::new(m.id.get() + 100)
                    }
                ),
                &roomy()
            )
            .await,
        StoreError::NotFound(Resource::GatewayNode)
    );
    let empty = store
        .add_gateway_node("empty", "tcp://192.0.2.12:4502", &[])
        .await
        .unwrap();
    assert_err!(
        store
            .create_vpn_gw(
                &sc,
                new_gw(v.id, "x", AddressSource::Node { node_id: empty.id }),
                &roomy()
            )
            .await,
        StoreError::PoolExhausted
    );
}

/// Gateways created at once on one node still spread over its addresses:
/// the choice is made inside the create transaction.
pub(crate) async fn concurrent_node_gateways_spread(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let v = vpc(&store, &sc, "v").await;
    let addrs: Vec<IpAddr> = (1..=4).map(|i| ip(&format!("198.51.100.{i}"))).collect();
    let n = store
        .add_gateway_node("gw1", "unix:///run/a.vici", &addrs)
        .await
        .unwrap();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..8 {
        let (store, sc) = (store.clone(), sc.clone());
        let new = new_gw(
            v.id,
            &format!("g{i}"),
            AddressSource::Node { node_id: n.id },
        );
        set.spawn(async move { store.create_vpn_gw(&sc, new, &roomy()).await.unwrap() });
    }
    let mut per_addr = std::collections::BTreeMap::new();
    for g in set.join_all().await {
        *per_addr.entry(g.address).or_insert(0) += 1;
    }
    assert_eq!(per_addr.len(), 4, "{per_addr:?}");
    assert!(per_addr.values().all(|n| *n == 2), "{per_addr:?}");
}

// ---- answers: counters, paging, filters -------------------------------------------

pub(crate) async fn counters(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let (v, g, u) = topology(&store, &sc).await;
    // Counters are as of the answer: the VPC was created before its gateway.
    assert_eq!(v.vpn_gw_num, 0);
    assert_eq!(g.conn_num, 0);
    assert_eq!(u.conn_num, 0);
    let g2 = vpn_gw(&store, &sc, v.id, "g2").await;
    let u2 = user_gw(&store, &sc, "p2", "198.51.100.2").await;
    conn(&store, &sc, &g, &u, "c1").await;
    conn(&store, &sc, &g, &u2, "c2").await;
    conn(&store, &sc, &g2, &u2, "c3").await;

    let v = store
        .get_vpc(&sc, &IdRef::Numeric(v.id.get()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v.vpn_gw_num, 2);
    let g = store
        .get_vpn_gw(&sc, &IdRef::Numeric(g.id.get()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(g.conn_num, 2);
    let u2 = store
        .get_user_gw(&sc, &IdRef::Numeric(u2.id.get()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u2.conn_num, 2);

    let (_, gws) = store
        .list_vpn_gws(&sc, &VpnGwFilter::default(), &all())
        .await
        .unwrap();
    assert_eq!(
        gws.iter().map(|g| g.conn_num).collect::<Vec<_>>(),
        vec![2, 1]
    );
    let (_, ugws) = store
        .list_user_gws(&sc, &UserGwFilter::default(), &all())
        .await
        .unwrap();
    assert_eq!(
        ugws.iter().map(|u| u.conn_num).collect::<Vec<_>>(),
        vec![1, 2]
    );
    let (_, vpcs) = store
        .list_vpcs(&sc, &VpcFilter::default(), &all())
        .await
        .unwrap();
    assert_eq!(vpcs[0].vpn_gw_num, 2);
}

fn names<T>(rows: &[T], name: impl Fn(&T) -> &str) -> Vec<String> {
    rows.iter().map(|r| name(r).to_owned()).collect()
}

pub(crate) async fn paging_and_ordering(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    // Created in this order; all within the same second, so creation order
    // is the id tie-break.
    let order = ["b", "a", "d", "c"];
    let v = vpc(&store, &sc, "main").await;
    for (i, n) in order.iter().enumerate() {
        store
            .create_vpc(
                &sc,
                NewVpc {
                    name: (*n).into(),
                    cidr: "10.1.0.0/16".parse().unwrap(),
                },
                &roomy(),
            )
            .await
            .unwrap();
        user_gw(&store, &sc, n, &format!("198.51.100.{}", i + 1)).await;
        vpn_gw(&store, &sc, v.id, n).await;
    }
    let (_, gws) = store
        .list_vpn_gws(&sc, &VpnGwFilter::default(), &all())
        .await
        .unwrap();
    let (_, ugws) = store
        .list_user_gws(&sc, &UserGwFilter::default(), &all())
        .await
        .unwrap();
    for (g, u) in gws.iter().zip(&ugws) {
        conn(&store, &sc, g, u, &g.name).await;
    }

    let cases: &[(Page, &[&str], u64)] = &[
        (
            page(Order::CreateTime, false, 0, 10),
            &["b", "a", "d", "c"],
            4,
        ),
        (
            page(Order::CreateTime, true, 0, 10),
            &["c", "d", "a", "b"],
            4,
        ),
        (page(Order::Name, false, 0, 10), &["a", "b", "c", "d"], 4),
        (page(Order::Name, true, 0, 10), &["d", "c", "b", "a"], 4),
        (page(Order::Name, false, 1, 2), &["b", "c"], 4),
        (page(Order::CreateTime, true, 3, 2), &["b"], 4),
        (page(Order::Name, false, 4, 2), &[], 4),
        (page(Order::Name, false, 0, 0), &[], 4),
    ];
    let only_letters =
        |ns: Vec<String>| -> Vec<String> { ns.into_iter().filter(|n| n.len() == 1).collect() };
    for (p, want, total) in cases {
        let (t, rows) = store
            .list_user_gws(&sc, &UserGwFilter::default(), p)
            .await
            .unwrap();
        assert_eq!(
            (t, names(&rows, |r| &r.name)),
            (
                *total,
                want.iter().map(|s| s.to_string()).collect::<Vec<_>>()
            ),
            "user gws {p:?}"
        );
        let (t, rows) = store
            .list_vpn_gws(&sc, &VpnGwFilter::default(), p)
            .await
            .unwrap();
        assert_eq!(
            (t, names(&rows, |r| &r.name)),
            (
                *total,
                want.iter().map(|s| s.to_string()).collect::<Vec<_>>()
            ),
            "vpn gws {p:?}"
        );
        let (t, rows) = store
            .list_conns(&sc, &ConnFilter::default(), p)
            .await
            .unwrap();
        assert_eq!(
            (t, names(&rows, |r| &r.name)),
            (
                *total,
                want.iter().map(|s| s.to_string()).collect::<Vec<_>>()
            ),
            "conns {p:?}"
        );
    }
    // VPCs: "main" comes first by creation and last by name.
    let (t, rows) = store
        .list_vpcs(
            &sc,
            &VpcFilter::default(),
            &page(Order::CreateTime, false, 0, 10),
        )
        .await
        .unwrap();
    assert_eq!(t, 5);
    assert_eq!(names(&rows, |r| &r.name), ["main", "b", "a", "d", "c"]);
    let (_, rows) = store
        .list_vpcs(&sc, &VpcFilter::default(), &page(Order::Name, true, 0, 10))
        .await
        .unwrap();
    assert_eq!(names(&rows, |r| &r.name), ["main", "d", "c", "b", "a"]);
    let (t, rows) = store
        .list_vpcs(&sc, &VpcFilter::default(), &page(Order::Name, false, 1, 3))
        .await
        .unwrap();
    assert_eq!(
        (t, only_letters(names(&rows, |r| &r.name))),
        (5, vec!["b".to_string(), "c".into(), "d".into()])
    );
}

/// A list's total and the names on its page.
fn listed<T>(list: Result<(u64, Vec<T>)>, name: impl Fn(&T) -> &str) -> (u64, Vec<String>) {
    let (total, rows) = list.unwrap();
    (total, names(&rows, name))
}

/// A list filtered by a row's own id holds at most that row (lists by id
/// are answered with one statement): the total is the same at every offset
/// and the page has the row only at offset 0 with room for it; an id that
/// matches nothing, or a row the other filters exclude, counts 0.
pub(crate) async fn a_list_by_id_counts_its_row_at_every_offset(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let (v, g, u) = topology(&store, &sc).await;
    let (c, _) = conn(&store, &sc, &g, &u, "conn-main").await;
    // A second row of each kind, so a total of 1 is not the table's size.
    let v2 = vpc(&store, &sc, "vpc-other").await;
    let g2 = vpn_gw(&store, &sc, v2.id, "gw-other").await;
    let u2 = user_gw(&store, &sc, "peer-other", "198.51.100.2").await;
    conn(&store, &sc, &g2, &u2, "conn-other").await;
    let name = |n: &str| Some(n.to_string());
    // (offset, limit, total, rows on the page)
    for (offset, limit, total, len) in [(0, 20, 1, 1), (0, 1, 1, 1), (1, 20, 1, 0), (0, 0, 1, 0)] {
        let p = page(Order::CreateTime, false, offset, limit);
        let listed = [
            listed(
                store
                    .list_vpcs(
                        &sc,
                        &VpcFilter {
                            id: Some(IdRef::Unified(v.un_id.clone())),
                            name: None,
                        },
                        &p,
                    )
                    .await,
                |r| &r.name,
            ),
            listed(
                store
                    .list_vpn_gws(
                        &sc,
                        &VpnGwFilter {
                            id: Some(IdRef::Numeric(g.id.get())),
                            ..Default::default()
                        },
                        &p,
                    )
                    .await,
                |r| &r.name,
            ),
            listed(
                store
                    .list_user_gws(
                        &sc,
                        &UserGwFilter {
                            id: Some(IdRef::Unified(u.un_id.clone())),
                            name: None,
                        },
                        &p,
                    )
                    .await,
                |r| &r.name,
            ),
            listed(
                store
                    .list_conns(
                        &sc,
                        &ConnFilter {
                            id: Some(IdRef::Unified(c.un_id.clone())),
                            ..Default::default()
                        },
                        &p,
                    )
                    .await,
                |r| &r.name,
            ),
        ];
        for (got, want) in listed
            .into_iter()
            .zip(["vpc-main", "gw-main", "peer-main", "conn-main"])
        {
            assert_eq!(got, (total, vec![want.to_string(); len]), "{want} at {p:?}");
        }
    }
    let p = page(Order::CreateTime, false, 0, 20);
    let excluded = [
        ConnFilter {
            id: Some(IdRef::Numeric(c.id.get() + 1000)),
            ..Default::default()
        },
        ConnFilter {
            id: Some(IdRef::Unified(c.un_id.clone())),
            name: name("other"),
            ..Default::default()
        },
        ConnFilter {
            id: Some(IdRef::Unified(c.un_id.clone())),
            vpn_gw: Some(IdRef::Numeric(g2.id.get())),
            ..Default::default()
        },
    ];
    for f in excluded {
        let (t, rows) = store.list_conns(&sc, &f, &p).await.unwrap();
        assert_eq!((t, rows.len()), (0, 0), "{f:?}");
    }
    let (t, rows) = store
        .list_vpcs(
            &sc,
            &VpcFilter {
                id: Some(IdRef::Numeric(v.id.get())),
                name: name("other"),
            },
            &p,
        )
        .await
        .unwrap();
    assert_eq!((t, rows.len()), (0, 0));
}

pub(crate) async fn name_filter_is_a_literal_substring(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let all_names = ["a%b", "a_b", "axb", "AXB-2", "back\\slash", "plain"];
    let v = vpc(&store, &sc, "main").await;
    for (i, n) in all_names.iter().enumerate() {
        user_gw(&store, &sc, n, &format!("198.51.100.{}", i + 1)).await;
        vpn_gw(&store, &sc, v.id, n).await;
        store
            .create_vpc(
                &sc,
                NewVpc {
                    name: (*n).into(),
                    cidr: "10.1.0.0/16".parse().unwrap(),
                },
                &roomy(),
            )
            .await
            .unwrap();
    }
    let (_, gws) = store
        .list_vpn_gws(&sc, &VpnGwFilter::default(), &all())
        .await
        .unwrap();
    let (_, ugws) = store
        .list_user_gws(&sc, &UserGwFilter::default(), &all())
        .await
        .unwrap();
    for (g, u) in gws.iter().zip(&ugws) {
        conn(&store, &sc, g, u, &g.name).await;
    }
    // Matching is a substring match, ASCII case-insensitive; `%`, `_` and
    // `\` are ordinary characters.
    let cases: &[(&str, &[&str])] = &[
        ("%", &["a%b"]),
        ("_", &["a_b"]),
        ("\\", &["back\\slash"]),
        ("a%", &["a%b"]),
        ("x", &["axb", "AXB-2"]),
        ("AX", &["axb", "AXB-2"]),
        ("b", &["a%b", "a_b", "axb", "AXB-2", "back\\slash"]),
        ("", &["a%b", "a_b", "axb", "AXB-2", "back\\slash", "plain"]),
        ("nothing", &[]),
    ];
    let p = page(Order::CreateTime, false, 0, 50);
    for (filter, want) in cases {
        let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        let name = Some(filter.to_string());
        let (t, rows) = store
            .list_user_gws(
                &sc,
                &UserGwFilter {
                    name: name.clone(),
                    ..Default::default()
                },
                &p,
            )
            .await
            .unwrap();
        assert_eq!(
            (t as usize, names(&rows, |r| &r.name)),
            (want.len(), want.clone()),
            "user gws {filter:?}"
        );
        let (t, rows) = store
            .list_vpn_gws(
                &sc,
                &VpnGwFilter {
                    name: name.clone(),
                    ..Default::default()
                },
                &p,
            )
            .await
            .unwrap();
        assert_eq!(
            (t as usize, names(&rows, |r| &r.name)),
            (want.len(), want.clone()),
            "vpn gws {filter:?}"
        );
        let (t, rows) = store
            .list_conns(
                &sc,
                &ConnFilter {
                    name: name.clone(),
                    ..Default::default()
                },
                &p,
            )
            .await
            .unwrap();
        assert_eq!(
            (t as usize, names(&rows, |r| &r.name)),
            (want.len(), want.clone()),
            "conns {filter:?}"
        );
        let (t, rows) = store
            .list_vpcs(
                &sc,
                &VpcFilter {
                    name: name.clone(),
                    ..Default::default()
                },
                &p,
            )
            .await
            .unwrap();
        let rows: Vec<String> = names(&rows, |r| &r.name)
            .into_iter()
            .filter(|n| n != "main")
            .collect();
        let extra = usize::from("main".contains(*filter));
        assert_eq!(
            (t as usize, rows),
            (want.len() + extra, want.clone()),
            "vpcs {filter:?}"
        );
    }
}

pub(crate) async fn conn_filters(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let v1 = vpc(&store, &sc, "v1").await;
    let v2 = vpc(&store, &sc, "v2").await;
    let g1 = vpn_gw(&store, &sc, v1.id, "g1").await;
    let g1b = vpn_gw(&store, &sc, v1.id, "g1b").await;
    let g2 = vpn_gw(&store, &sc, v2.id, "g2").await;
    let u = user_gw(&store, &sc, "p", "198.51.100.1").await;
    let (c1, _) = conn(&store, &sc, &g1, &u, "alpha").await;
    let (c2, _) = conn(&store, &sc, &g1b, &u, "beta").await;
    let (c3, _) = conn(&store, &sc, &g2, &u, "alphabet").await;

    let ids = |rows: &[VpnConn]| rows.iter().map(|c| c.id).collect::<Vec<_>>();
    let check = |f: ConnFilter, want: Vec<VpnConnRowId>| {
        let store = store.clone();
        let sc = sc.clone();
        async move {
            let (t, rows) = store.list_conns(&sc, &f, &all()).await.unwrap();
            assert_eq!((t as usize, ids(&rows)), (want.len(), want), "{f:?}");
        }
    };
    check(
        ConnFilter {
            vpc: Some(IdRef::Numeric(v1.id.get())),
            ..Default::default()
        },
        vec![c1.id, c2.id],
    )
    .await;
    check(
        ConnFilter {
            vpc: Some(IdRef::Unified(v2.un_id.clone())),
            ..Default::default()
        },
        vec![c3.id],
    )
    .await;
    check(
        ConnFilter {
            vpn_gw: Some(IdRef::Numeric(g1b.id.get())),
            ..Default::default()
        },
        vec![c2.id],
    )
    .await;
    check(
        ConnFilter {
            vpn_gw: Some(IdRef::Unified(g1.un_id.clone())),
            ..Default::default()
        },
        vec![c1.id],
    )
    .await;
    check(
        ConnFilter {
            id: Some(IdRef::Numeric(c3.id.get())),
            ..Default::default()
        },
        vec![c3.id],
    )
    .await;
    check(
        ConnFilter {
            id: Some(IdRef::Unified(c2.un_id.clone())),
            ..Default::default()
        },
        vec![c2.id],
    )
    .await;
    check(
        ConnFilter {
            name: Some("alpha".into()),
            ..Default::default()
        },
        vec![c1.id, c3.id],
    )
    .await;
    check(
        ConnFilter {
            vpc: Some(IdRef::Unified(v1.un_id.clone())),
            name: Some("alpha".into()),
            ..Default::default()
        },
        vec![c1.id],
    )
    .await;
    check(
        ConnFilter {
            vpc: Some(IdRef::Numeric(v2.id.get())),
            vpn_gw: Some(IdRef::Numeric(g1.id.get())),
            ..Default::default()
        },
        vec![],
    )
    .await;
    check(
        ConnFilter {
            vpc: Some(IdRef::Unified(VpcId::random())),
            ..Default::default()
        },
        vec![],
    )
    .await;

    let (t, gws) = store
        .list_vpn_gws(
            &sc,
            &VpnGwFilter {
                vpc: Some(IdRef::Unified(v1.un_id.clone())),
                ..Default::default()
            },
            &all(),
        )
        .await
        .unwrap();
    assert_eq!(
        (t, gws.iter().map(|g| g.id).collect::<Vec<_>>()),
        (2, vec![g1.id, g1b.id])
    );
    let (t, gws) = store
        .list_vpn_gws(
            &sc,
            &VpnGwFilter {
                id: Some(IdRef::Numeric(g2.id.get())),
                ..Default::default()
            },
            &all(),
        )
        .await
        .unwrap();
    assert_eq!((t, gws[0].id), (1, g2.id));
    let (t, _) = store
        .list_vpcs(
            &sc,
            &VpcFilter {
                id: Some(IdRef::Unified(v2.un_id.clone())),
                name: None,
            },
            &all(),
        )
        .await
        .unwrap();
    assert_eq!(t, 1);
    let (t, _) = store
        .list_user_gws(
            &sc,
            &UserGwFilter {
                id: Some(IdRef::Unified(u.un_id.clone())),
                name: None,
            },
            &all(),
        )
        .await
        .unwrap();
    assert_eq!(t, 1);
}

// ---- API 3.0 settings and tags ----------------------------------------------

/// Every value API 3.0 added to a tunnel, away from its default.
fn api3_settings(psk: &str) -> ConnSettings {
    let mut s = settings(psk);
    s.ike.version = IkeVersion::V2;
    s.ike.encryption = IkeEncryption::Aes256Gcm128;
    s.ike.authentication = AuthAlgorithm::Sha512;
    s.ike.dh_group = DhGroup::Group21;
    s.ipsec.encryption = IpsecEncryption::Aes128Gcm128;
    s.ipsec.integrity = AuthAlgorithm::Sha384;
    s.ipsec.pfs = PfsGroup::DhGroup16;
    s.ipsec.sa_lifetime_traffic_kb = 4_294_967_295;
    s.dpd = DpdSettings {
        enabled: false,
        timeout_seconds: 60,
        action: DpdAction::Clear,
    };
    s.negotiation = NegotiationType::FlowTrigger;
    s.health_check = Some(HealthCheck {
        local: "169.254.128.7".parse().unwrap(),
        remote: "169.254.200.9".parse().unwrap(),
    });
    s
}

/// What API 3.0 adds to a connection (IKE version, new algorithms, DPD,
/// negotiation type, health check, tags) reads back exactly, after create
/// and after a modification; a connection without them reads back as
/// before.
pub(crate) async fn api3_settings_and_tags_round_trip(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let (_, g, u) = topology(&store, &sc).await;
    let tags = vec![
        Tag::parse("env", "prod").unwrap(),
        Tag::parse("城市", "").unwrap(),
    ];
    let mut new = new_conn(g.vpc.id, g.id, u.id, "api3");
    new.settings = api3_settings("psk-3");
    new.tags = tags.clone();
    let (created, _) = store.create_conn(&sc, new, &roomy()).await.unwrap();
    assert_eq!(created.settings, api3_settings("psk-3"));
    assert_eq!(created.tags, tags);
    let read = get_conn(&store, &sc, created.id).await.unwrap();
    assert_eq!(
        (read.settings, read.tags),
        (api3_settings("psk-3"), tags.clone())
    );

    run_next(&store, Ok(())).await;
    let mut changed = api3_settings("psk-3");
    changed.negotiation = NegotiationType::Passive;
    changed.health_check = None;
    store
        .begin_modify(
            &sc,
            created.id,
            ConnChange {
                name: None,
                settings: Some(changed.clone()),
            },
        )
        .await
        .unwrap();
    let read = get_conn(&store, &sc, created.id).await.unwrap();
    assert_eq!(read.settings, changed);
    assert_eq!(read.tags, tags, "a modification keeps the tags");

    let u2 = user_gw(&store, &sc, "p2", "198.51.100.2").await;
    let (plain, _) = conn(&store, &sc, &g, &u2, "plain").await;
    let read = get_conn(&store, &sc, plain.id).await.unwrap();
    assert_eq!(read.settings, settings("psk-one"));
    assert!(read.tags.is_empty());
}

// ---- connection state machine and tasks -------------------------------------------

pub(crate) async fn busy_refusal(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let (_, g, u) = topology(&store, &sc).await;
    let (c, create) = conn(&store, &sc, &g, &u, "c").await;
    let change = || ConnChange {
        name: Some("renamed".into()),
        settings: Some(settings("psk-two")),
    };
    assert_err!(store.begin_modify(&sc, c.id, change()).await, StoreError::Busy(t) if t == create.id);
    assert_err!(store.begin_delete(&sc, c.id).await, StoreError::Busy(t) if t == create.id);
    assert_err!(store.begin_reset(&sc, c.id).await, StoreError::Busy(t) if t == create.id);
    // A refused modify changed nothing.
    let now = get_conn(&store, &sc, c.id).await.unwrap();
    assert_eq!(now.name, "c");
    assert_eq!(now.settings, settings("psk-one"));

    run_next(&store, Ok(())).await;
    let modify = store.begin_modify(&sc, c.id, change()).await.unwrap();
    assert_err!(store.begin_delete(&sc, c.id).await, StoreError::Busy(t) if t == modify.id);
    assert_err!(store.begin_reset(&sc, c.id).await, StoreError::Busy(t) if t == modify.id);
    assert_err!(store.begin_modify(&sc, c.id, change()).await, StoreError::Busy(t) if t == modify.id);
    assert_err!(
        store.begin_delete(&sc, RowId::new(c.id.get() + 1000)).await,
        StoreError::NotFound(Resource::VpnConn)
    );
}

pub(crate) async fn create_task_transitions(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let (_, g, u) = topology(&store, &sc).await;
    let u2 = user_gw(&store, &sc, "p2", "198.51.100.2").await;
    let (ok, ok_task) = conn(&store, &sc, &g, &u, "ok").await;
    let (bad, bad_task) = conn(&store, &sc, &g, &u2, "bad").await;

    let claimed = run_next(&store, Ok(())).await;
    assert_eq!(claimed.task.id, ok_task.id);
    assert_eq!(claimed.task.kind, TaskKind::Create);
    assert_eq!(claimed.task.attempts, 1);
    assert_eq!(claimed.conn.id, ok.id);
    assert_eq!(claimed.conn.settings, settings("psk-one"));
    let c = get_conn(&store, &sc, ok.id).await.unwrap();
    assert_eq!((c.status, c.active_task), (ConnStatus::Running, None));
    let t = task(&store, &sc, ok_task.id).await;
    assert_eq!(
        (t.status, t.error.clone(), t.finished_at),
        (TaskStatus::Success, None, Some(T0 + 1))
    );

    let claimed = run_next(&store, failure("DriverError")).await;
    assert_eq!(claimed.task.id, bad_task.id);
    let c = get_conn(&store, &sc, bad.id).await.unwrap();
    assert_eq!((c.status, c.active_task), (ConnStatus::CreateFailed, None));
    let t = task(&store, &sc, bad_task.id).await;
    assert_eq!(t.status, TaskStatus::Failed);
    assert_eq!(
        t.error,
        Some(TaskError {
            error_code: "DriverError".into(),
            error_msg: "DriverError happened".into()
        })
    );
    // A failed creation can only be deleted.
    assert_err!(
        store.begin_modify(&sc, bad.id, ConnChange::default()).await,
        StoreError::InvalidState
    );
    assert_err!(
        store.begin_reset(&sc, bad.id).await,
        StoreError::InvalidState
    );
    let del = store.begin_delete(&sc, bad.id).await.unwrap();
    assert_eq!(del.kind, TaskKind::Delete);
    assert_eq!(
        get_conn(&store, &sc, bad.id).await.unwrap().status,
        ConnStatus::Deleting
    );
    run_next(&store, Ok(())).await;
    assert_eq!(get_conn(&store, &sc, bad.id).await, None);
    assert!(claim_any(&*store, "w", T0, 30).await.unwrap().is_none());
}

pub(crate) async fn modify_transitions(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let (_, g, u) = topology(&store, &sc).await;
    let u2 = user_gw(&store, &sc, "p2", "198.51.100.2").await;
    let c = running_conn(&store, &sc, &g, &u, "c").await;
    let other = running_conn(&store, &sc, &g, &u2, "other").await;

    // The new desired state is stored at once, with status 2.
    let t = store
        .begin_modify(
            &sc,
            c.id,
            ConnChange {
                name: Some("renamed".into()),
                settings: Some(settings("psk-two")),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (t.kind, t.status, t.conn_id),
        (TaskKind::Modify, TaskStatus::Running, c.id)
    );
    let now = get_conn(&store, &sc, c.id).await.unwrap();
    assert_eq!(
        (now.status, now.active_task),
        (ConnStatus::Modifying, Some(t.id))
    );
    assert_eq!(now.name, "renamed");
    assert_eq!(now.settings, settings("psk-two"));
    let claimed = run_next(&store, Ok(())).await;
    assert_eq!(claimed.task.id, t.id);
    assert_eq!(claimed.conn.settings, settings("psk-two"));
    let now = get_conn(&store, &sc, c.id).await.unwrap();
    assert_eq!((now.status, now.active_task), (ConnStatus::Running, None));

    // A name change only: the settings stay.
    store
        .begin_modify(
            &sc,
            c.id,
            ConnChange {
                name: Some("again".into()),
                settings: None,
            },
        )
        .await
        .unwrap();
    run_next(&store, failure("Boom")).await;
    let now = get_conn(&store, &sc, c.id).await.unwrap();
    assert_eq!(
        (now.status, now.active_task),
        (ConnStatus::ModifyFailed, None)
    );
    assert_eq!(now.name, "again");
    assert_eq!(now.settings, settings("psk-two"));
    assert_err!(store.begin_reset(&sc, c.id).await, StoreError::InvalidState);

    // From "modify failed" a modify may be retried.
    store
        .begin_modify(&sc, c.id, ConnChange::default())
        .await
        .unwrap();
    run_next(&store, Ok(())).await;
    assert_eq!(
        get_conn(&store, &sc, c.id).await.unwrap().status,
        ConnStatus::Running
    );

    // Names stay unique within the VPC; a refusal changes nothing.
    assert_err!(
        store
            .begin_modify(
                &sc,
                c.id,
                ConnChange {
                    name: Some(other.name.clone()),
                    settings: Some(settings("x"))
                }
            )
            .await,
        StoreError::NameInUse(Resource::VpnConn)
    );
    let now = get_conn(&store, &sc, c.id).await.unwrap();
    assert_eq!(
        (now.status, now.active_task, now.name.as_str()),
        (ConnStatus::Running, None, "again")
    );
    assert_eq!(now.settings, settings("psk-two"));
    assert!(claim_any(&*store, "w", T0, 30).await.unwrap().is_none());
    // Keeping one's own name is not a clash.
    store
        .begin_modify(
            &sc,
            c.id,
            ConnChange {
                name: Some("again".into()),
                settings: None,
            },
        )
        .await
        .unwrap();
}

pub(crate) async fn delete_transitions(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let (_, g, u) = topology(&store, &sc).await;
    let c = running_conn(&store, &sc, &g, &u, "c").await;

    let t = store.begin_delete(&sc, c.id).await.unwrap();
    assert_eq!(t.kind, TaskKind::Delete);
    assert_eq!(
        get_conn(&store, &sc, c.id).await.unwrap().status,
        ConnStatus::Deleting
    );
    run_next(&store, failure("Stuck")).await;
    let now = get_conn(&store, &sc, c.id).await.unwrap();
    assert_eq!(
        (now.status, now.active_task),
        (ConnStatus::DeleteFailed, None)
    );
    assert_err!(store.begin_reset(&sc, c.id).await, StoreError::InvalidState);
    assert_err!(
        store.begin_modify(&sc, c.id, ConnChange::default()).await,
        StoreError::InvalidState
    );

    let t2 = store.begin_delete(&sc, c.id).await.unwrap();
    run_next(&store, Ok(())).await;
    assert_eq!(get_conn(&store, &sc, c.id).await, None);
    assert_eq!(
        store
            .list_conns(&sc, &ConnFilter::default(), &all())
            .await
            .unwrap()
            .0,
        0
    );
    // The finished task still describes the connection that is gone.
    let done = task(&store, &sc, t2.id).await;
    assert_eq!(done.status, TaskStatus::Success);
    assert_eq!(done.conn_id, c.id);
    assert_eq!(done.conn_un_id, c.un_id);
    assert_eq!(done.vpn_gw_un_id, g.un_id);
    assert_eq!(done.user_gw_un_id, u.un_id);
    assert_eq!(task(&store, &sc, t.id).await.status, TaskStatus::Failed);
    assert_err!(
        store.begin_delete(&sc, c.id).await,
        StoreError::NotFound(Resource::VpnConn)
    );

    // A tunnel whose modify failed may be deleted too.
    let c2 = running_conn(&store, &sc, &g, &u, "c2").await;
    store
        .begin_modify(&sc, c2.id, ConnChange::default())
        .await
        .unwrap();
    run_next(&store, failure("Nope")).await;
    store.begin_delete(&sc, c2.id).await.unwrap();
    run_next(&store, Ok(())).await;
    assert_eq!(get_conn(&store, &sc, c2.id).await, None);
}

pub(crate) async fn reset_transitions(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let (_, g, u) = topology(&store, &sc).await;
    let c = running_conn(&store, &sc, &g, &u, "c").await;

    let t = store.begin_reset(&sc, c.id).await.unwrap();
    assert_eq!(t.kind, TaskKind::Reset);
    let now = get_conn(&store, &sc, c.id).await.unwrap();
    assert_eq!(
        (now.status, now.active_task),
        (ConnStatus::Running, Some(t.id))
    );
    run_next(&store, Ok(())).await;
    let now = get_conn(&store, &sc, c.id).await.unwrap();
    assert_eq!((now.status, now.active_task), (ConnStatus::Running, None));
    assert_eq!(task(&store, &sc, t.id).await.status, TaskStatus::Success);

    let t = store.begin_reset(&sc, c.id).await.unwrap();
    run_next(&store, failure("NoPeer")).await;
    let now = get_conn(&store, &sc, c.id).await.unwrap();
    assert_eq!((now.status, now.active_task), (ConnStatus::Running, None));
    let t = task(&store, &sc, t.id).await;
    assert_eq!(t.status, TaskStatus::Failed);
    assert_eq!(t.error.unwrap().error_code, "NoPeer");
}

pub(crate) async fn lease_expiry_hands_task_over(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let (_, g, u) = topology(&store, &sc).await;
    let (c, t) = conn(&store, &sc, &g, &u, "c").await;

    let a = claim_any(&*store, "worker-a", T0, 30)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((a.task.id, a.task.attempts), (t.id, 1));
    assert!(claim_any(&*store, "worker-b", T0 + 10, 30)
        .await
        .unwrap()
        .is_none());
    // The lease runs to T0 + 30 inclusive.
    assert!(claim_any(&*store, "worker-b", T0 + 30, 30)
        .await
        .unwrap()
        .is_none());
    let b = claim_any(&*store, "worker-b", T0 + 31, 30)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((b.task.id, b.task.attempts), (t.id, 2));
    assert_eq!(b.conn.id, c.id);

    // The old holder lost it: its finish changes nothing.
    assert!(!store
        .finish_task(t.id, "worker-a", T0 + 32, failure("Late"))
        .await
        .unwrap());
    let now = task(&store, &sc, t.id).await;
    assert_eq!((now.status, now.error), (TaskStatus::Running, None));
    assert_eq!(
        get_conn(&store, &sc, c.id).await.unwrap().status,
        ConnStatus::Creating
    );
    // Nobody else can finish it either.
    assert!(!store
        .finish_task(t.id, "stranger", T0 + 32, Ok(()))
        .await
        .unwrap());

    assert!(store
        .finish_task(t.id, "worker-b", T0 + 33, Ok(()))
        .await
        .unwrap());
    // Never finished twice.
    assert!(!store
        .finish_task(t.id, "worker-b", T0 + 34, failure("Twice"))
        .await
        .unwrap());
    assert!(!store
        .finish_task(t.id, "worker-a", T0 + 34, failure("Twice"))
        .await
        .unwrap());
    let now = task(&store, &sc, t.id).await;
    assert_eq!(
        (now.status, now.finished_at, now.attempts),
        (TaskStatus::Success, Some(T0 + 33), 2)
    );
    assert_eq!(
        get_conn(&store, &sc, c.id).await.unwrap().status,
        ConnStatus::Running
    );
    assert!(claim_any(&*store, "worker-c", T0 + 1000, 30)
        .await
        .unwrap()
        .is_none());
    assert!(!store
        .finish_task(RowId::new(t.id.get() + 1000), "worker-b", T0, Ok(()))
        .await
        .unwrap());
}

pub(crate) async fn claims_oldest_first(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let (v, g, _) = topology(&store, &sc).await;
    let mut tasks = Vec::new();
    for i in 0..3 {
        let u = user_gw(
            &store,
            &sc,
            &format!("u{i}"),
            &format!("198.51.100.{}", i + 10),
        )
        .await;
        let (_, t) = store
            .create_conn(&sc, new_conn(v.id, g.id, u.id, &format!("c{i}")), &roomy())
            .await
            .unwrap();
        tasks.push(t.id);
    }
    let mut claimed = Vec::new();
    for w in ["w1", "w2", "w3"] {
        claimed.push(
            claim_any(&*store, w, T0, 60)
                .await
                .unwrap()
                .unwrap()
                .task
                .id,
        );
    }
    assert_eq!(claimed, tasks);
    assert!(claim_any(&*store, "w4", T0 + 5, 60)
        .await
        .unwrap()
        .is_none());
    // Every lease expired: the oldest comes first again.
    let again = claim_any(&*store, "w4", T0 + 61, 60)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.task.id, tasks[0]);
}

/// Account A queues a burst of 100 tasks, then account B one: B's task is
/// claimed second (round robin by account), not after A's burst drains;
/// within A the oldest still comes first.
pub(crate) async fn claims_fair_across_accounts(store: Arc<dyn Store>) {
    let a = scope_of(&store, "burst", "gz").await;
    let b = scope_of(&store, "quiet", "gz").await;
    let (_, ga, _) = topology(&store, &a).await;
    let mut a_tasks = Vec::new();
    for i in 0..100u32 {
        let u = user_gw(
            &store,
            &a,
            &format!("a{i}"),
            &format!("10.9.{}.{}", i / 200, i % 200 + 1),
        )
        .await;
        a_tasks.push(conn(&store, &a, &ga, &u, &format!("c{i}")).await.1.id);
    }
    let (vb, gb, ub) = topology(&store, &b).await;
    let (_, b_task) = store
        .create_conn(&b, new_conn(vb.id, gb.id, ub.id, "b"), &roomy())
        .await
        .unwrap();
    let mut order = Vec::new();
    while let Some(c) = claim_any(&*store, "w", T0, 60).await.unwrap() {
        store
            .finish_task(c.task.id, "w", T0 + 1, Ok(()))
            .await
            .unwrap();
        order.push(c.task.id);
    }
    assert_eq!(order.len(), 101);
    let at = order.iter().position(|t| *t == b_task.id).unwrap();
    assert!(at <= 1, "B's task claimed at position {at} of {order:?}");
    order.retain(|t| *t != b_task.id);
    assert_eq!(order, a_tasks, "A's tasks not oldest first");
}

/// Several tasks claimed in one call (one per account first), finished in
/// one call; a task whose lease is not the worker's is refused alone.
pub(crate) async fn claims_and_finishes_in_batches(store: Arc<dyn Store>) {
    let a = scope_of(&store, "alice", "gz").await;
    let b = scope_of(&store, "bob", "gz").await;
    let mut made = Vec::new();
    for sc in [&a, &b] {
        let (v, g, _) = topology(&store, sc).await;
        for i in 0..3 {
            let u = user_gw(
                &store,
                sc,
                &format!("u{i}"),
                &format!("198.51.100.{}", i + 10),
            )
            .await;
            let (_, t) = store
                .create_conn(sc, new_conn(v.id, g.id, u.id, &format!("c{i}")), &roomy())
                .await
                .unwrap();
            made.push(t.id);
        }
    }
    let batch = store
        .claim_tasks_on("w1", T0, 60, &[None], 4)
        .await
        .unwrap();
    let got: Vec<TaskId> = batch.iter().map(|c| c.task.id).collect();
    // Alternating accounts, oldest first within each.
    assert_eq!(got, vec![made[0], made[3], made[1], made[4]]);
    for c in &batch {
        assert_eq!(c.task.attempts, 1);
        assert_eq!(c.conn.id, c.task.conn_id);
    }
    let rest = store
        .claim_tasks_on("w2", T0, 60, &[None], 10)
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|c| c.task.id).collect::<Vec<_>>(),
        vec![made[2], made[5]]
    );
    assert!(store
        .claim_tasks_on("w3", T0, 60, &[None], 10)
        .await
        .unwrap()
        .is_empty());
    // w1 finishes its own three tasks and one of w2's: that one is refused.
    let outcomes = vec![
        (batch[0].task.id, Ok(())),
        (rest[0].task.id, Ok(())),
        (batch[1].task.id, failure("Broken")),
        (batch[2].task.id, Ok(())),
    ];
    assert_eq!(
        store.finish_tasks("w1", T0 + 1, outcomes).await.unwrap(),
        vec![true, false, true, true]
    );
    let status = |sc: &Scope, id: TaskId| {
        let (store, sc) = (store.clone(), sc.clone());
        async move { store.get_task(&sc, id).await.unwrap().unwrap().status }
    };
    assert_eq!(status(&a, batch[0].task.id).await, TaskStatus::Success);
    assert_eq!(status(&b, batch[1].task.id).await, TaskStatus::Failed);
    assert_eq!(status(&a, rest[0].task.id).await, TaskStatus::Running);
    assert_eq!(
        store.finish_tasks("w1", T0 + 1, Vec::new()).await.unwrap(),
        Vec::<bool>::new()
    );
}

/// The leases of a holder known to be dead are dropped at once: its tasks
/// are claimable before the lease would have run out; other holders' stay.
pub(crate) async fn dead_holders_leases_released(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let (v, g, _) = topology(&store, &sc).await;
    let mut tasks = Vec::new();
    for i in 0..3 {
        let u = user_gw(
            &store,
            &sc,
            &format!("u{i}"),
            &format!("198.51.100.{}", i + 10),
        )
        .await;
        let (_, t) = store
            .create_conn(&sc, new_conn(v.id, g.id, u.id, &format!("c{i}")), &roomy())
            .await
            .unwrap();
        tasks.push(t.id);
    }
    let dead = claim_any(&*store, "dead", T0, 60).await.unwrap().unwrap();
    let dead2 = claim_any(&*store, "dead", T0, 60).await.unwrap().unwrap();
    let alive = claim_any(&*store, "alive", T0, 60).await.unwrap().unwrap();
    assert_eq!(
        store.task_lease_holders().await.unwrap(),
        vec!["alive".to_owned(), "dead".to_owned()]
    );
    assert!(claim_any(&*store, "new", T0 + 1, 60)
        .await
        .unwrap()
        .is_none());
    assert_eq!(store.release_task_leases("dead").await.unwrap(), 2);
    assert_eq!(store.release_task_leases("nobody").await.unwrap(), 0);
    assert_eq!(
        store.task_lease_holders().await.unwrap(),
        vec!["alive".to_owned()]
    );
    let mut again = [
        claim_any(&*store, "new", T0 + 1, 60)
            .await
            .unwrap()
            .unwrap(),
        claim_any(&*store, "new", T0 + 1, 60)
            .await
            .unwrap()
            .unwrap(),
    ];
    again.sort_by_key(|c| c.task.id);
    assert_eq!(
        again
            .iter()
            .map(|c| (c.task.id, c.task.attempts))
            .collect::<Vec<_>>(),
        vec![(dead.task.id, 2), (dead2.task.id, 2)]
    );
    assert!(claim_any(&*store, "new", T0 + 1, 60)
        .await
        .unwrap()
        .is_none());
    // The dead holder can no longer finish; the live one still can.
    assert!(!store
        .finish_task(dead.task.id, "dead", T0 + 2, Ok(()))
        .await
        .unwrap());
    assert!(store
        .finish_task(alive.task.id, "alive", T0 + 2, Ok(()))
        .await
        .unwrap());
}

/// Many writes at once (on SQLite: one group commit): each makes its own
/// checks against the writes before it, and a refused one leaves the others
/// alone.
pub(crate) async fn concurrent_writes_fail_alone(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let limits = Limits {
        user_gws_per_region: 25,
        ..roomy()
    };
    // 40 creates: names n0..n9 twice each (one of each pair may win) and
    // 20 unique ones, so 30 names, of which the quota takes exactly 25.
    let mut jobs = Vec::new();
    for i in 0..40u32 {
        let (store, sc, limits) = (store.clone(), sc.clone(), limits.clone());
        let name = if i < 20 {
            format!("n{}", i / 2)
        } else {
            format!("m{i}")
        };
        let address = format!("10.8.0.{}", i + 1);
        jobs.push(tokio::spawn(async move {
            let r = store
                .create_user_gw(&sc, new_user_gw(&name, &address), &limits)
                .await;
            (name, r)
        }));
    }
    let mut created = BTreeSet::new();
    let mut refused = 0;
    for j in jobs {
        let (name, r) = j.await.unwrap();
        match r {
            Ok(u) => assert!(created.insert(u.name.clone()), "{name} created twice"),
            Err(StoreError::NameInUse(Resource::UserGw))
            | Err(StoreError::LimitExceeded(Quota::UserGwsPerRegion)) => refused += 1,
            Err(e) => panic!("{name}: {e}"),
        }
    }
    assert_eq!((created.len(), refused), (25, 15));
    let page = Page {
        offset: 0,
        limit: 100,
        order: Order::Name,
        descending: false,
    };
    let (total, rows) = store
        .list_user_gws(&sc, &UserGwFilter::default(), &page)
        .await
        .unwrap();
    assert_eq!(total as usize, created.len());
    assert_eq!(
        rows.into_iter().map(|u| u.name).collect::<BTreeSet<_>>(),
        created
    );
}

/// Batches of one account's tasks claimed by concurrent claimers (one
/// account alone has runnable tasks, so each batch after the first pass is
/// one statement on PostgreSQL): every task is claimed once, and each batch
/// holds its tasks oldest first.
pub(crate) async fn concurrent_batch_claims_of_one_account_take_each_task_once(
    store: Arc<dyn Store>,
) {
    let sc = scope(&store).await;
    let (v, g, _) = topology(&store, &sc).await;
    let mut created = BTreeSet::new();
    for i in 0..40u32 {
        let u = user_gw(&store, &sc, &format!("u{i}"), &format!("10.8.0.{}", i + 1)).await;
        let (_, task) = store
            .create_conn(&sc, new_conn(v.id, g.id, u.id, &format!("c{i}")), &roomy())
            .await
            .unwrap();
        created.insert(task.id);
    }
    let mut set = tokio::task::JoinSet::new();
    for w in 0..4 {
        let store = store.clone();
        set.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store
                    .claim_tasks_on(&format!("w{w}"), T0, 60, &[None], 7)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return mine;
                }
                let ids: Vec<TaskId> = batch.iter().map(|c| c.task.id).collect();
                let mut sorted = ids.clone();
                sorted.sort();
                assert_eq!(ids, sorted, "a batch is oldest first");
                mine.extend(ids);
            }
        });
    }
    let claimed: Vec<TaskId> = set.join_all().await.into_iter().flatten().collect();
    assert_eq!(claimed.len(), 40, "each task once: {claimed:?}");
    assert_eq!(claimed.into_iter().collect::<BTreeSet<_>>(), created);
}

pub(crate) async fn concurrent_claims_take_each_task_once(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let (v, g, _) = topology(&store, &sc).await;
    for i in 0..3 {
        let u = user_gw(
            &store,
            &sc,
            &format!("u{i}"),
            &format!("198.51.100.{}", i + 10),
        )
        .await;
        store
            .create_conn(&sc, new_conn(v.id, g.id, u.id, &format!("c{i}")), &roomy())
            .await
            .unwrap();
    }
    let mut set = tokio::task::JoinSet::new();
    for w in 0..10 {
        let store = store.clone();
        set.spawn(async move {
            claim_any(&*store, &format!("w{w}"), T0, 60)
                .await
                .unwrap()
                .map(|c| c.task.id)
        });
    }
    let claimed: Vec<TaskId> = set.join_all().await.into_iter().flatten().collect();
    assert_eq!(claimed.len(), 3, "{claimed:?}");
    assert_eq!(claimed.iter().collect::<BTreeSet<_>>().len(), 3);
}

pub(crate) async fn in_use_deletes(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let (v, g, u) = topology(&store, &sc).await;
    let c = running_conn(&store, &sc, &g, &u, "c").await;

    assert_err!(
        store.delete_vpc(&sc, v.id).await,
        StoreError::InUse(Resource::Vpc)
    );
    assert_err!(
        store.delete_vpn_gw(&sc, g.id).await,
        StoreError::InUse(Resource::VpnGw)
    );
    assert_err!(
        store.delete_user_gw(&sc, u.id).await,
        StoreError::InUse(Resource::UserGw)
    );

    // While the delete task runs the tunnel still holds its gateways.
    store.begin_delete(&sc, c.id).await.unwrap();
    assert_err!(
        store.delete_vpn_gw(&sc, g.id).await,
        StoreError::InUse(Resource::VpnGw)
    );
    assert_err!(
        store.delete_user_gw(&sc, u.id).await,
        StoreError::InUse(Resource::UserGw)
    );
    run_next(&store, Ok(())).await;

    assert_err!(
        store.delete_vpc(&sc, v.id).await,
        StoreError::InUse(Resource::Vpc)
    );
    store.delete_vpn_gw(&sc, g.id).await.unwrap();
    store.delete_user_gw(&sc, u.id).await.unwrap();
    store.delete_vpc(&sc, v.id).await.unwrap();
    assert_eq!(
        store
            .get_vpc(&sc, &IdRef::Numeric(v.id.get()))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .get_vpn_gw(&sc, &IdRef::Numeric(g.id.get()))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .get_user_gw(&sc, &IdRef::Numeric(u.id.get()))
            .await
            .unwrap(),
        None
    );
    assert_err!(
        store.delete_vpc(&sc, v.id).await,
        StoreError::NotFound(Resource::Vpc)
    );
    assert_err!(
        store.delete_vpn_gw(&sc, g.id).await,
        StoreError::NotFound(Resource::VpnGw)
    );
    assert_err!(
        store.delete_user_gw(&sc, u.id).await,
        StoreError::NotFound(Resource::UserGw)
    );
    // Names and addresses are free again; numeric ids are never reused.
    let v2 = vpc(&store, &sc, "vpc-main").await;
    assert!(v2.id > v.id);
    let u2 = user_gw(&store, &sc, "peer-main", "198.51.100.1").await;
    assert!(u2.id > u.id);
}

pub(crate) async fn renames(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let (v, g, u) = topology(&store, &sc).await;
    let g2 = vpn_gw(&store, &sc, v.id, "gw-two").await;
    let u2 = user_gw(&store, &sc, "peer-two", "198.51.100.2").await;
    let c = running_conn(&store, &sc, &g, &u, "c").await;

    store.rename_vpn_gw(&sc, g2.id, &g.name).await.unwrap();
    let now = store
        .get_vpn_gw(&sc, &IdRef::Numeric(g2.id.get()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.name, g.name);
    store.rename_vpn_gw(&sc, g.id, "gw-renamed").await.unwrap();
    // Connections show their gateways' current names.
    let now = get_conn(&store, &sc, c.id).await.unwrap();
    assert_eq!(now.vpn_gw.name, "gw-renamed");

    assert_err!(
        store.rename_user_gw(&sc, u2.id, &u.name).await,
        StoreError::NameInUse(Resource::UserGw)
    );
    store.rename_user_gw(&sc, u2.id, "peer-two").await.unwrap();
    store
        .rename_user_gw(&sc, u.id, "peer-renamed")
        .await
        .unwrap();
    let now = store
        .get_user_gw(&sc, &IdRef::Numeric(u.id.get()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.name, "peer-renamed");
    assert_eq!(
        get_conn(&store, &sc, c.id).await.unwrap().user_gw.name,
        "peer-renamed"
    );
    let v2 = vpc(&store, &sc, "vpc-two").await;
    assert_err!(
        store.rename_vpc(&sc, v2.id, &v.name).await,
        StoreError::NameInUse(Resource::Vpc)
    );
    store.rename_vpc(&sc, v2.id, "vpc-two").await.unwrap();
    store.rename_vpc(&sc, v.id, "vpc-renamed").await.unwrap();
    let now = store
        .get_vpc(&sc, &IdRef::Numeric(v.id.get()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.name, "vpc-renamed");
    assert_eq!(
        get_conn(&store, &sc, c.id).await.unwrap().vpc.name,
        "vpc-renamed"
    );
    assert_err!(
        store
            .rename_vpc(&sc, RowId::new(v.id.get() + 1000), "x")
            .await,
        StoreError::NotFound(Resource::Vpc)
    );
    assert_err!(
        store
            .rename_vpn_gw(&sc, RowId::new(g.id.get() + 1000), "x")
            .await,
        StoreError::NotFound(Resource::VpnGw)
    );
    assert_err!(
        store
            .rename_user_gw(&sc, RowId::new(u.id.get() + 1000), "x")
            .await,
        StoreError::NotFound(Resource::UserGw)
    );
}

pub(crate) async fn net_status_and_desired_conns(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let v = vpc(&store, &sc, "v").await;
    let node = store
        .add_gateway_node("gw1", "unix:///run/gw1.vici", &[ip("198.51.100.200")])
        .await
        .unwrap();
    let other_node = store
        .add_gateway_node("gw2", "unix:///run/gw2.vici", &[ip("198.51.100.201")])
        .await
        .unwrap();
    let node_gw = store
        .create_vpn_gw(
            &sc,
            new_gw(v.id, "node", AddressSource::Node { node_id: node.id }),
            &roomy(),
        )
        .await
        .unwrap();
    let api_gw = vpn_gw(&store, &sc, v.id, "api").await;
    let mut conns = Vec::new();
    for i in 1..=6 {
        let u = user_gw(&store, &sc, &format!("u{i}"), &format!("198.51.100.{i}")).await;
        conns.push(conn(&store, &sc, &node_gw, &u, &format!("c{i}")).await.0);
    }
    let u7 = user_gw(&store, &sc, "u7", "198.51.100.7").await;
    let (c7, _) = conn(&store, &sc, &api_gw, &u7, "c7").await;

    // c1 ok, c2 fails, c3..c5 ok, c6 stays claimed (creating), c7 ok.
    run_next(&store, Ok(())).await;
    run_next(&store, failure("X")).await;
    for _ in 3..=5 {
        run_next(&store, Ok(())).await;
    }
    let held = claim_any(&*store, "slow", T0, 3_600)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.conn.id, conns[5].id);
    run_next(&store, Ok(())).await;
    // c3: delete failed (5); c4: deleting (4); c5: modify failed (3).
    store.begin_delete(&sc, conns[2].id).await.unwrap();
    run_next(&store, failure("X")).await;
    store.begin_delete(&sc, conns[3].id).await.unwrap();
    claim_any(&*store, "slow", T0, 3_600)
        .await
        .unwrap()
        .unwrap();
    store
        .begin_modify(&sc, conns[4].id, ConnChange::default())
        .await
        .unwrap();
    run_next(&store, failure("X")).await;

    let status = |i: usize| {
        let store = store.clone();
        let sc = sc.clone();
        let id = conns[i].id;
        async move { get_conn(&store, &sc, id).await.unwrap().status }
    };
    assert_eq!(status(0).await, ConnStatus::Running);
    assert_eq!(status(1).await, ConnStatus::CreateFailed);
    assert_eq!(status(2).await, ConnStatus::DeleteFailed);
    assert_eq!(status(3).await, ConnStatus::Deleting);
    assert_eq!(status(4).await, ConnStatus::ModifyFailed);
    assert_eq!(status(5).await, ConnStatus::Creating);

    let desired = store.desired_conns(Some(node.id)).await.unwrap();
    let ids: BTreeSet<VpnConnRowId> = desired.iter().map(|c| c.id).collect();
    let want: BTreeSet<VpnConnRowId> = [0, 2, 4, 5].iter().map(|&i| conns[i].id).collect();
    assert_eq!(ids, want);
    for c in &desired {
        assert_eq!(c.node_id, Some(node.id));
        assert_eq!(c.vpn_gw.address, ip("198.51.100.200"));
        assert_eq!(c.settings, settings("psk-one"));
    }
    let api: Vec<VpnConnRowId> = store
        .desired_conns(None)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(api, vec![c7.id]);
    assert!(store
        .desired_conns(Some(other_node.id))
        .await
        .unwrap()
        .is_empty());

    // Live state, by unified id; unknown ids are ignored.
    store
        .set_net_status(&[
            (conns[0].un_id.clone(), NetStatus::Available),
            ("vpnx-zzzzzzzz".parse().unwrap(), NetStatus::Available),
        ])
        .await
        .unwrap();
    assert_eq!(
        get_conn(&store, &sc, conns[0].id).await.unwrap().net_status,
        NetStatus::Available
    );
    assert_eq!(
        get_conn(&store, &sc, conns[4].id).await.unwrap().net_status,
        NetStatus::Unavailable
    );
    store
        .set_net_status(&[(conns[0].un_id.clone(), NetStatus::Unavailable)])
        .await
        .unwrap();
    assert_eq!(
        get_conn(&store, &sc, conns[0].id).await.unwrap().net_status,
        NetStatus::Unavailable
    );
    store.set_net_status(&[]).await.unwrap();
}

// ---- races --------------------------------------------------------------------------

pub(crate) async fn concurrent_creates_respect_quota(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let (v, g, u) = topology(&store, &sc).await;
    let u2 = user_gw(&store, &sc, "p2", "198.51.100.2").await;
    let limits = Limits {
        conns_per_vpn_gw: 2,
        ..roomy()
    };
    // One slot is taken, one is free.
    store
        .create_conn(&sc, new_conn(v.id, g.id, u2.id, "taken"), &limits)
        .await
        .unwrap();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..50 {
        let (store, sc, limits) = (store.clone(), sc.clone(), limits.clone());
        let new = new_conn(v.id, g.id, u.id, &format!("racer-{i}"));
        set.spawn(async move { store.create_conn(&sc, new, &limits).await });
    }
    let mut won = 0;
    for res in set.join_all().await {
        match res {
            Ok(_) => won += 1,
            Err(StoreError::LimitExceeded(Quota::ConnsPerVpnGw)) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(
        store
            .list_conns(&sc, &ConnFilter::default(), &all())
            .await
            .unwrap()
            .0,
        2
    );
    assert!(claim_any(&*store, "w", T0, 30).await.unwrap().is_some());
    assert!(claim_any(&*store, "w", T0, 30).await.unwrap().is_some());
    assert!(claim_any(&*store, "w", T0, 30).await.unwrap().is_none());
    assert_eq!(store.conn_count_check(&sc).await.unwrap(), (2, 2));
}

/// The last slot of the region, raced for by 50 creates on two gateways,
/// then creates racing deletes for the slots those free: the maintained
/// count admits no more than the quota and stays equal to the rows.
pub(crate) async fn concurrent_creates_respect_region_quota(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let (v, g, u) = topology(&store, &sc).await;
    let g2 = vpn_gw(&store, &sc, v.id, "g2").await;
    let limits = Limits {
        conns_per_region: 3,
        ..roomy()
    };
    store
        .create_conn(&sc, new_conn(v.id, g.id, u.id, "taken-1"), &limits)
        .await
        .unwrap();
    store
        .create_conn(&sc, new_conn(v.id, g2.id, u.id, "taken-2"), &limits)
        .await
        .unwrap();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..50 {
        let (store, sc, limits) = (store.clone(), sc.clone(), limits.clone());
        let gw = if i % 2 == 0 { g.id } else { g2.id };
        let new = new_conn(v.id, gw, u.id, &format!("racer-{i}"));
        set.spawn(async move { store.create_conn(&sc, new, &limits).await });
    }
    let mut won = 0;
    for res in set.join_all().await {
        match res {
            Ok(_) => won += 1,
            Err(StoreError::LimitExceeded(Quota::ConnsPerRegion)) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(store.conn_count_check(&sc).await.unwrap(), (3, 3));
    for _ in 0..3 {
        run_next(&store, Ok(())).await;
    }
    let (_, conns) = store
        .list_conns(&sc, &ConnFilter::default(), &all())
        .await
        .unwrap();
    for c in &conns {
        store.begin_delete(&sc, c.id).await.unwrap();
    }
    let mut set = tokio::task::JoinSet::new();
    for i in 0..3 {
        let store = store.clone();
        set.spawn(async move {
            let worker = format!("w{i}");
            let claimed = claim_any(&*store, &worker, T0, 30)
                .await?
                .expect("a delete task");
            assert!(
                store
                    .finish_task(claimed.task.id, &worker, T0 + 1, Ok(()))
                    .await?
            );
            Ok(false)
        });
    }
    for i in 0..20 {
        let (store, sc, limits) = (store.clone(), sc.clone(), limits.clone());
        let new = new_conn(v.id, g.id, u.id, &format!("late-{i}"));
        set.spawn(async move {
            match store.create_conn(&sc, new, &limits).await {
                Ok(_) => Ok(true),
                Err(StoreError::LimitExceeded(Quota::ConnsPerRegion)) => Ok(false),
                Err(e) => Err(e),
            }
        });
    }
    let mut created = 0u64;
    for res in set.join_all().await {
        if res.unwrap() {
            created += 1;
        }
    }
    assert!(created <= 3, "{created} creates over a quota of 3");
    assert_eq!(
        store.conn_count_check(&sc).await.unwrap(),
        (created, created)
    );
}

pub(crate) async fn concurrent_creates_respect_unique_name(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let (v, g, u) = topology(&store, &sc).await;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (store, sc) = (store.clone(), sc.clone());
        let new = new_conn(v.id, g.id, u.id, "same");
        set.spawn(async move { store.create_conn(&sc, new, &roomy()).await });
    }
    let mut won = 0;
    for res in set.join_all().await {
        match res {
            Ok(_) => won += 1,
            Err(StoreError::NameInUse(Resource::VpnConn)) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(store.conn_count_check(&sc).await.unwrap(), (1, 1));
}

// ---- the task queue by gateway node -----------------------------------------------

pub(crate) async fn claim_task_on_filters_by_node(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let v = vpc(&store, &sc, "v").await;
    let n1 = store
        .add_gateway_node("n1", "unix:///run/n1.vici", &[ip("192.0.2.1")])
        .await
        .unwrap();
    let n2 = store
        .add_gateway_node("n2", "unix:///run/n2.vici", &[ip("192.0.2.2")])
        .await
        .unwrap();
    let on =
        |id: GatewayNodeId, name: &str| new_gw(v.id, name, AddressSource::Node { node_id: id });
    let g1 = store
        .create_vpn_gw(&sc, on(n1.id, "g1"), &roomy())
        .await
        .unwrap();
    let g2 = store
        .create_vpn_gw(&sc, on(n2.id, "g2"), &roomy())
        .await
        .unwrap();
    let g3 = vpn_gw(&store, &sc, v.id, "api").await;
    let mut tasks = Vec::new();
    for (i, g) in [&g1, &g2, &g3].into_iter().enumerate() {
        let u = user_gw(
            &store,
            &sc,
            &format!("u{i}"),
            &format!("198.51.100.{}", i + 1),
        )
        .await;
        tasks.push(conn(&store, &sc, g, &u, &format!("c{i}")).await.1.id);
    }
    let on_nodes = |nodes: Vec<Option<GatewayNodeId>>, now: Timestamp| {
        let store = store.clone();
        async move {
            store
                .claim_task_on("w", now, 30, &nodes)
                .await
                .unwrap()
                .map(|c| c.task.id)
        }
    };
    assert_eq!(on_nodes(vec![], T0).await, None);
    assert_eq!(on_nodes(vec![Some(n2.id)], T0).await, Some(tasks[1]));
    assert_eq!(on_nodes(vec![None], T0).await, Some(tasks[2]));
    assert_eq!(on_nodes(vec![Some(n2.id), None], T0).await, None);
    assert_eq!(
        on_nodes(vec![Some(RowId::new(n2.id.get() + 100))], T0).await,
        None
    );
    assert_eq!(
        on_nodes(vec![Some(n1.id), Some(n2.id)], T0).await,
        Some(tasks[0])
    );
    // The claim is the usual one: attempts, lease, connection.
    let again = store
        .claim_task_on("w2", T0 + 31, 30, &[Some(n1.id)])
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.task.id, again.task.attempts), (tasks[0], 2));
    assert_eq!(again.conn.node_id, Some(n1.id));
    // Unfiltered, the oldest expired task of any node comes first.
    let any = claim_any(&*store, "w3", T0 + 100, 30)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(any.task.id, tasks[0]);
}

// ---- bulk load ----------------------------------------------------------------------

pub(crate) async fn import_conns_bulk(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let v = vpc(&store, &sc, "v").await;
    let mut gws = Vec::new();
    for i in 0..5 {
        gws.push(vpn_gw(&store, &sc, v.id, &format!("g{i}")).await);
    }
    let mut ugws = Vec::new();
    for i in 0..50 {
        ugws.push(
            user_gw(
                &store,
                &sc,
                &format!("u{i}"),
                &format!("198.51.100.{}", i + 1),
            )
            .await,
        );
    }
    let batch: Vec<NewConn> = (0..2_500)
        .map(|i| new_conn(v.id, gws[i % 5].id, ugws[i % 50].id, &format!("imp-{i}")))
        .collect();
    assert_eq!(store.import_conns(&sc, batch).await.unwrap(), 2_500);
    assert_eq!(store.import_conns(&sc, Vec::new()).await.unwrap(), 0);

    let (total, page_rows) = store
        .list_conns(&sc, &ConnFilter::default(), &page(Order::Name, false, 0, 3))
        .await
        .unwrap();
    assert_eq!(total, 2_500);
    assert_eq!(names(&page_rows, |c| &c.name), ["imp-0", "imp-1", "imp-10"]);
    for c in &page_rows {
        assert_eq!(
            (c.status, c.active_task, c.net_status),
            (ConnStatus::Running, None, NetStatus::Unavailable)
        );
        assert_eq!(c.settings, settings("psk-one"));
    }
    // No quota applies (20 per gateway by default), no task is queued.
    let g0 = store
        .get_vpn_gw(&sc, &IdRef::Numeric(gws[0].id.get()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(g0.conn_num, 500);
    assert!(claim_any(&*store, "w", T0, 30).await.unwrap().is_none());
    assert_eq!(store.desired_conns(None).await.unwrap().len(), 2_500);
    // Imported tunnels are ordinary ones afterwards.
    let t = store.begin_delete(&sc, page_rows[0].id).await.unwrap();
    assert_eq!(run_next(&store, Ok(())).await.task.id, t.id);
    assert_eq!(get_conn(&store, &sc, page_rows[0].id).await, None);

    // Names stay unique; a failing batch leaves nothing of itself.
    let clash = vec![
        new_conn(v.id, gws[0].id, ugws[0].id, "fresh"),
        new_conn(v.id, gws[0].id, ugws[0].id, "imp-1"),
    ];
    assert_err!(
        store.import_conns(&sc, clash).await,
        StoreError::NameInUse(Resource::VpnConn)
    );
    let dup = vec![
        new_conn(v.id, gws[0].id, ugws[0].id, "twin"),
        new_conn(v.id, gws[1].id, ugws[1].id, "twin"),
    ];
    assert_err!(
        store.import_conns(&sc, dup).await,
        StoreError::NameInUse(Resource::VpnConn)
    );
    let by_name = |n: &str| ConnFilter {
        name: Some(n.into()),
        ..Default::default()
    };
    for n in ["fresh", "twin"] {
        assert_eq!(
            store.list_conns(&sc, &by_name(n), &all()).await.unwrap().0,
            0
        );
    }
    // Parents must exist in the caller's scope and fit together.
    let v2 = vpc(&store, &sc, "v2").await;
    assert_err!(
        store
            .import_conns(&sc, vec![new_conn(v2.id, gws[0].id, ugws[0].id, "x")])
            .await,
        StoreError::NotFound(Resource::VpnGw)
    );
    let bob = scope_of(&store, "bob", "gz").await;
    let (bv, bg, bu) = topology(&store, &bob).await;
    assert_err!(
        store
            .import_conns(&sc, vec![new_conn(bv.id, bg.id, bu.id, "x")])
            .await,
        StoreError::NotFound(Resource::Vpc)
    );
    assert_err!(
        store
            .import_conns(&sc, vec![new_conn(v.id, gws[0].id, bu.id, "x")])
            .await,
        StoreError::NotFound(Resource::UserGw)
    );
    assert_eq!(
        store
            .list_conns(&sc, &ConnFilter::default(), &all())
            .await
            .unwrap()
            .0,
        2_499
    );
}

// ---- gateway nodes --------------------------------------------------------------------

pub(crate) async fn gateway_node_registry(store: Arc<dyn Store>) {
    assert!(store.list_gateway_nodes().await.unwrap().is_empty());
    let n1 = store
        .add_gateway_node(
            "gw1",
            "tcp://192.0.2.10:4502",
            &[ip("198.51.100.1"), ip("2001:db8::1")],
        )
        .await
        .unwrap();
    assert_eq!(
        (n1.name.as_str(), n1.vici.as_str(), n1.addresses.clone()),
        (
            "gw1",
            "tcp://192.0.2.10:4502",
            vec![ip("198.51.100.1"), ip("2001:db8::1")]
        )
    );
    assert_err!(
        store
            .add_gateway_node("gw1", "tcp://192.0.2.11:4502", &[])
            .await,
        StoreError::NameInUse(Resource::GatewayNode)
    );
    assert_err!(
        store
            .add_gateway_node("gw2", "tcp://192.0.2.10:4502", &[])
            .await,
        StoreError::NameInUse(Resource::GatewayNode)
    );
    let n2 = store
        .add_gateway_node("gw2", "tcp://192.0.2.11:4502", &[ip("198.51.100.2")])
        .await
        .unwrap();
    assert!(n2.id > n1.id);
    assert_eq!(
        store.list_gateway_nodes().await.unwrap(),
        vec![n1.clone(), n2.clone()]
    );

    store.remove_gateway_node(n2.id).await.unwrap();
    assert_err!(
        store.remove_gateway_node(n2.id).await,
        StoreError::NotFound(Resource::GatewayNode)
    );
    // A node keeps its gateways: it cannot go while one is placed on it.
    let sc = scope(&store).await;
    let v = vpc(&store, &sc, "v").await;
    let g = store
        .create_vpn_gw(
            &sc,
            new_gw(v.id, "g", AddressSource::Node { node_id: n1.id }),
            &roomy(),
        )
        .await
        .unwrap();
    assert_err!(
        store.remove_gateway_node(n1.id).await,
        StoreError::InUse(Resource::GatewayNode)
    );
    assert!(store
        .acquire_gateway_lease(n1.id, "vpcd-a", T0, 10)
        .await
        .unwrap());
    store.delete_vpn_gw(&sc, g.id).await.unwrap();
    store.remove_gateway_node(n1.id).await.unwrap();
    assert!(store.list_gateway_nodes().await.unwrap().is_empty());
    // Its lease went with it.
    assert!(store.gateway_leases().await.unwrap().is_empty());
    // The name and URI are free again; ids are never reused.
    let n3 = store
        .add_gateway_node("gw1", "tcp://192.0.2.10:4502", &[])
        .await
        .unwrap();
    assert!(n3.id > n2.id);
}

pub(crate) async fn ensure_gateway_node_finds_or_creates(store: Arc<dyn Store>) {
    let vici = "unix:///var/run/charon.vici";
    let a = store
        .ensure_gateway_node(vici, &[ip("192.0.2.1")])
        .await
        .unwrap();
    assert_eq!((a.name.as_str(), a.vici.as_str()), ("local", vici));
    assert_eq!(a.addresses, vec![ip("192.0.2.1")]);
    // Found again by URI, addresses replaced.
    let b = store
        .ensure_gateway_node(vici, &[ip("192.0.2.2"), ip("192.0.2.1")])
        .await
        .unwrap();
    assert_eq!(
        b,
        GatewayNode {
            addresses: vec![ip("192.0.2.2"), ip("192.0.2.1")],
            ..a.clone()
        }
    );
    assert_eq!(store.list_gateway_nodes().await.unwrap(), vec![b.clone()]);
    // Another socket: the default name is taken, so it is numbered.
    let c = store
        .ensure_gateway_node("unix:///run/other.vici", &[])
        .await
        .unwrap();
    assert_eq!(c.name, "local-2");
    let d = store
        .ensure_gateway_node("tcp://192.0.2.10:4502", &[ip("198.51.100.5")])
        .await
        .unwrap();
    assert_eq!(d.name, "192.0.2.10");
    // A node added by name keeps it when ensured later.
    let e = store
        .add_gateway_node("edge", "tcp://192.0.2.20:4502", &[])
        .await
        .unwrap();
    let e2 = store
        .ensure_gateway_node("tcp://192.0.2.20:4502", &[ip("198.51.100.6")])
        .await
        .unwrap();
    assert_eq!((e2.id, e2.name.as_str()), (e.id, "edge"));
    assert_eq!(store.list_gateway_nodes().await.unwrap().len(), 4);
}

pub(crate) async fn concurrent_ensure_gateway_node(store: Arc<dyn Store>) {
    let mut set = tokio::task::JoinSet::new();
    for i in 0..10 {
        let store = store.clone();
        set.spawn(async move {
            let same = store
                .ensure_gateway_node("unix:///run/shared.vici", &[ip("192.0.2.1")])
                .await
                .unwrap();
            let own = store
                .ensure_gateway_node(&format!("unix:///run/own-{i}.vici"), &[])
                .await
                .unwrap();
            (same.id, own.name)
        });
    }
    let results = set.join_all().await;
    let shared: BTreeSet<GatewayNodeId> = results.iter().map(|(id, _)| *id).collect();
    assert_eq!(shared.len(), 1);
    let names: BTreeSet<String> = results.into_iter().map(|(_, n)| n).collect();
    assert_eq!(names.len(), 10);
    assert_eq!(store.list_gateway_nodes().await.unwrap().len(), 11);
}

// ---- the cluster ------------------------------------------------------------------------

pub(crate) async fn heartbeats(store: Arc<dyn Store>) {
    assert!(store.list_members().await.unwrap().is_empty());
    store.heartbeat("vpcd-b", T0 + 1, "pid 2").await.unwrap();
    store.heartbeat("vpcd-a", T0, "v0.1 pid 1").await.unwrap();
    store
        .heartbeat("vpcd-a", T0 + 5, "v0.1 pid 1 http 127.0.0.1:8080")
        .await
        .unwrap();
    assert_eq!(
        store.list_members().await.unwrap(),
        vec![
            ClusterMember {
                name: "vpcd-a".into(),
                started_at: T0,
                last_seen: T0 + 5,
                info: "v0.1 pid 1 http 127.0.0.1:8080".into(),
            },
            ClusterMember {
                name: "vpcd-b".into(),
                started_at: T0 + 1,
                last_seen: T0 + 1,
                info: "pid 2".into(),
            },
        ]
    );
    // Processes gone for more than a day are forgotten.
    store
        .heartbeat("vpcd-c", T0 + 2 * 86_400, "")
        .await
        .unwrap();
    let names: Vec<String> = store
        .list_members()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names, ["vpcd-c"]);
}

pub(crate) async fn gateway_leases_are_exclusive(store: Arc<dyn Store>) {
    let n = store
        .add_gateway_node("n", "unix:///run/n.vici", &[])
        .await
        .unwrap();
    let m = store
        .add_gateway_node("m", "unix:///run/m.vici", &[])
        .await
        .unwrap();
    let acquire = |holder: &'static str, now: Timestamp| {
        let store = store.clone();
        async move {
            store
                .acquire_gateway_lease(n.id, holder, now, 10)
                .await
                .unwrap()
        }
    };
    assert!(acquire("A", T0).await);
    assert_eq!(
        store.gateway_leases().await.unwrap(),
        vec![(n.id, "A".to_string(), T0 + 10)]
    );
    assert!(!acquire("B", T0 + 5).await);
    // Held through `until` inclusive.
    assert!(!acquire("B", T0 + 10).await);
    // The holder renews.
    assert!(acquire("A", T0 + 8).await);
    assert!(!acquire("B", T0 + 12).await);
    // Expired: anyone takes it, and the old holder is out.
    assert!(acquire("B", T0 + 19).await);
    assert!(!acquire("A", T0 + 20).await);
    assert_eq!(
        store.gateway_leases().await.unwrap(),
        vec![(n.id, "B".to_string(), T0 + 29)]
    );
    // Another node's lease is independent.
    assert!(store
        .acquire_gateway_lease(m.id, "A", T0 + 20, 10)
        .await
        .unwrap());
    // Only the holder releases.
    store.release_gateway_lease(n.id, "A").await.unwrap();
    assert_eq!(store.gateway_leases().await.unwrap().len(), 2);
    store.release_gateway_lease(n.id, "B").await.unwrap();
    assert_eq!(
        store.gateway_leases().await.unwrap(),
        vec![(m.id, "A".to_string(), T0 + 30)]
    );
    assert!(acquire("C", T0 + 21).await);
    assert_err!(
        store
            .acquire_gateway_lease(RowId::new(m.id.get() + 100), "A", T0, 10)
            .await,
        StoreError::NotFound(Resource::GatewayNode)
    );
}

pub(crate) async fn concurrent_gateway_lease_has_one_winner(store: Arc<dyn Store>) {
    let n = store
        .add_gateway_node("n", "unix:///run/n.vici", &[])
        .await
        .unwrap();
    for round in 0..3 {
        // Fresh each round: free, then expired.
        let now = T0 + round * 100;
        let mut set = tokio::task::JoinSet::new();
        for i in 0..20 {
            let store = store.clone();
            set.spawn(async move {
                let holder = format!("vpcd-{round}-{i}");
                let won = store
                    .acquire_gateway_lease(n.id, &holder, now, 30)
                    .await
                    .unwrap();
                (won, holder)
            });
        }
        let winners: Vec<String> = set
            .join_all()
            .await
            .into_iter()
            .filter(|(won, _)| *won)
            .map(|(_, h)| h)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        assert_eq!(
            store.gateway_leases().await.unwrap(),
            vec![(n.id, winners[0].clone(), now + 30)]
        );
    }
}

// ---- more races ---------------------------------------------------------------------------

/// One tunnel per (peer gateway, VPN gateway) pair holds when many creators
/// race for the same pair.
pub(crate) async fn concurrent_creates_respect_pair_rule(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let (v, g, u) = topology(&store, &sc).await;
    let limits = Limits {
        conns_per_pair: 1,
        ..roomy()
    };
    let mut set = tokio::task::JoinSet::new();
    for i in 0..20 {
        let (store, sc, limits) = (store.clone(), sc.clone(), limits.clone());
        let new = new_conn(v.id, g.id, u.id, &format!("pair-{i}"));
        set.spawn(async move { store.create_conn(&sc, new, &limits).await });
    }
    let mut won = 0;
    for res in set.join_all().await {
        match res {
            Ok(_) => won += 1,
            Err(StoreError::LimitExceeded(Quota::ConnsPerPair)) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(won, 1);
}

/// Of many mutations racing on one idle connection, exactly one gets a
/// task; the others are refused as busy with that very task.
pub(crate) async fn concurrent_mutations_one_wins(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let (_, g, u) = topology(&store, &sc).await;
    let c = running_conn(&store, &sc, &g, &u, "c").await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..24 {
        let (store, sc) = (store.clone(), sc.clone());
        set.spawn(async move {
            match i % 3 {
                0 => {
                    let change = ConnChange {
                        name: Some(format!("renamed-{i}")),
                        settings: None,
                    };
                    store.begin_modify(&sc, c.id, change).await
                }
                1 => store.begin_delete(&sc, c.id).await,
                _ => store.begin_reset(&sc, c.id).await,
            }
        });
    }
    let results = set.join_all().await;
    let winners: Vec<&Task> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let winner = winners[0].id;
    for r in &results {
        match r {
            Ok(_) => {}
            Err(StoreError::Busy(t)) => assert_eq!(*t, winner),
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    let now = get_conn(&store, &sc, c.id).await.unwrap();
    assert_eq!(now.active_task, Some(winner));
    // Exactly one task is queued.
    assert!(claim_any(&*store, "w", T0, 30).await.unwrap().is_some());
    assert!(claim_any(&*store, "w", T0, 30).await.unwrap().is_none());
}

// ---- errors and bulk paths shared by both engines ---------------------------------

/// A scope whose account does not exist: every create that counts per
/// region says so (the scope's row refers to the account), on either
/// engine.
pub(crate) async fn unknown_account_is_not_found(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let ghost = Scope {
        account_id: AccountId::new(sc.account_id.get() + 1000),
        region: "gz".into(),
    };
    let new_vpc = NewVpc {
        name: "v".into(),
        cidr: "10.0.0.0/16".parse().unwrap(),
    };
    assert_err!(
        store.create_vpc(&ghost, new_vpc, &roomy()).await,
        StoreError::NotFound(Resource::Account)
    );
    assert_err!(
        store
            .create_user_gw(&ghost, new_user_gw("u", "198.51.100.1"), &roomy())
            .await,
        StoreError::NotFound(Resource::Account)
    );
    // Nothing was left behind for the real account either.
    assert_eq!(
        store
            .list_vpcs(&ghost, &VpcFilter::default(), &all())
            .await
            .unwrap()
            .0,
        0
    );
    assert_eq!(store.conn_count_check(&ghost).await.unwrap(), (0, 0));
    vpc(&store, &sc, "v").await;
}

/// Live states for more connections than one statement takes ids: every
/// one is recorded, unknown ids are ignored, an unchanged state is left.
pub(crate) async fn net_status_in_bulk(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let (v, g, u) = topology(&store, &sc).await;
    let n = 2_345;
    let batch: Vec<NewConn> = (0..n)
        .map(|i| new_conn(v.id, g.id, u.id, &format!("c{i}")))
        .collect();
    store.import_conns(&sc, batch).await.unwrap();
    let conns = store.desired_conns(None).await.unwrap();
    assert_eq!(conns.len(), n);
    // Two thirds up, one third down, and some ids nobody has.
    let mut changes: Vec<(VpnConnId, NetStatus)> = conns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let state = if i % 3 == 0 {
                NetStatus::Unavailable
            } else {
                NetStatus::Available
            };
            (c.un_id.clone(), state)
        })
        .collect();
    changes.extend((0..50).map(|i| {
        let unknown = format!("vpnx-zz{i:06}").parse().unwrap();
        (unknown, NetStatus::Available)
    }));
    store.set_net_status(&changes).await.unwrap();
    let after = store.desired_conns(None).await.unwrap();
    let up = after
        .iter()
        .filter(|c| c.net_status == NetStatus::Available)
        .count();
    assert_eq!(up, n - n.div_ceil(3));
    for (i, c) in conns.iter().enumerate() {
        let want = if i % 3 == 0 {
            NetStatus::Unavailable
        } else {
            NetStatus::Available
        };
        let now = after.iter().find(|a| a.id == c.id).unwrap();
        assert_eq!(now.net_status, want, "{}", c.un_id);
    }
}

pub(crate) async fn tasks_found_by_request_id(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let (_, g, u) = topology(&store, &sc).await;
    let c = running_conn(&store, &sc, &g, &u, "c").await;
    let t = store.begin_reset(&sc, c.id).await.unwrap();
    let rid = "3f2b0c1e-7a9d-4c1b-8e2f-5d6a7b8c9d0e";
    assert!(store.get_task_by_request(&sc, rid).await.unwrap().is_none());
    store.label_task(t.id, rid).await.unwrap();
    let found = store.get_task_by_request(&sc, rid).await.unwrap().unwrap();
    assert_eq!(found.id, t.id);
    // One label per task, one task per label; other scopes see nothing.
    assert_err!(
        store.label_task(t.id, "another").await,
        StoreError::NotFound(Resource::Task)
    );
    run_next(&store, Ok(())).await;
    let t2 = store.begin_reset(&sc, c.id).await.unwrap();
    assert_err!(
        store.label_task(t2.id, rid).await,
        StoreError::InUse(Resource::Task)
    );
    assert_err!(
        store.label_task(RowId::new(t2.id.get() + 1000), "x").await,
        StoreError::NotFound(Resource::Task)
    );
    let other = scope_of(&store, "bob", &sc.region).await;
    assert!(store
        .get_task_by_request(&other, rid)
        .await
        .unwrap()
        .is_none());
    let found = store.get_task_by_request(&sc, rid).await.unwrap().unwrap();
    assert_eq!(
        found.status,
        TaskStatus::Success,
        "a finished task keeps its label"
    );
}

// ---- upkeep ------------------------------------------------------------------

/// Finished tasks older than the cut-off go, a batch at a time, oldest
/// first; running tasks and everything else stay.
pub(crate) async fn finished_tasks_are_pruned(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let (_, g, u) = topology(&store, &sc).await;
    let u2 = user_gw(&store, &sc, "p2", "198.51.100.2").await;
    let u3 = user_gw(&store, &sc, "p3", "198.51.100.3").await;
    // Three tasks finish at T0 + 1 (one of them failed), one stays running.
    let (a, a_task) = conn(&store, &sc, &g, &u, "a").await;
    run_next(&store, Ok(())).await;
    let (_, b_task) = conn(&store, &sc, &g, &u2, "b").await;
    run_next(&store, failure("DriverError")).await;
    let reset = store.begin_reset(&sc, a.id).await.unwrap();
    run_next(&store, Ok(())).await;
    let (c, c_task) = conn(&store, &sc, &g, &u3, "c").await;

    // Nothing finished before T0 + 1.
    assert_eq!(store.prune_tasks(T0 + 1, 100).await.unwrap(), 0);
    assert_eq!(
        task(&store, &sc, a_task.id).await.status,
        TaskStatus::Success
    );
    // Batches: two, then the last one.
    assert_eq!(store.prune_tasks(T0 + 2, 2).await.unwrap(), 2);
    assert_eq!(store.prune_tasks(T0 + 2, 2).await.unwrap(), 1);
    assert_eq!(store.prune_tasks(i64::MAX, 100).await.unwrap(), 0);
    for id in [a_task.id, b_task.id, reset.id] {
        assert_eq!(store.get_task(&sc, id).await.unwrap(), None, "{id}");
    }
    // The running task is kept and still runs; its connection is untouched.
    assert_eq!(
        task(&store, &sc, c_task.id).await.status,
        TaskStatus::Running
    );
    assert_eq!(
        get_conn(&store, &sc, c.id).await.unwrap().active_task,
        Some(c_task.id)
    );
    let claimed = run_next(&store, Ok(())).await;
    assert_eq!(claimed.task.id, c_task.id);
    // Connections whose tasks were pruned take new tasks.
    let m = store
        .begin_modify(&sc, a.id, ConnChange::default())
        .await
        .unwrap();
    assert!(m.id.get() > c_task.id.get(), "task ids are never reused");
}

/// A key rotation re-seals every secret under the new key: the store keeps
/// reading them, and so does a store opened with the new key only.
pub(crate) async fn rotation_reseals_every_secret(store: Arc<dyn Store>) {
    let sc = scope(&store).await;
    let key = store.create_key("alice").await.unwrap();
    let (_, g, u) = topology(&store, &sc).await;
    let (c, _) = conn(&store, &sc, &g, &u, "c").await;
    let done = store
        .rotate_master_key(MasterKey::generate())
        .await
        .unwrap();
    assert_eq!(
        done,
        Resealed {
            secret_keys: 1,
            psks: 1
        }
    );
    assert_eq!(store.find_key(&key.secret_id).await.unwrap(), Some(key));
    assert_eq!(
        get_conn(&store, &sc, c.id).await.unwrap().settings,
        settings("psk-one")
    );
    // New secrets are sealed under the new key too.
    let later = store.create_key("alice").await.unwrap();
    assert_eq!(store.find_key(&later.secret_id).await.unwrap(), Some(later));
}

// ---- monitoring -------------------------------------------------------------

/// What a scrape reads: the task queue (queued, running, failed, the oldest
/// queued), connections by state and health across accounts, and the pools.
pub(crate) async fn monitoring_counts(store: Arc<dyn Store>) {
    let counts = |now| {
        let store = store.clone();
        async move { store.task_counts(now).await.unwrap() }
    };
    assert_eq!(counts(T0).await, TaskCounts::default());
    assert!(store.conn_counts().await.unwrap().is_empty());

    let sc = scope(&store).await;
    let (_, g, u1) = topology(&store, &sc).await;
    let u2 = user_gw(&store, &sc, "peer-2", "198.51.100.2").await;
    let u3 = user_gw(&store, &sc, "peer-3", "198.51.100.3").await;
    let (c1, t1) = conn(&store, &sc, &g, &u1, "c1").await;
    let (c2, t2) = conn(&store, &sc, &g, &u2, "c2").await;
    let (_, t3) = conn(&store, &sc, &g, &u3, "c3").await;
    let queued = counts(T0).await;
    assert_eq!((queued.queued, queued.running, queued.failed), (3, 0, 0));
    let oldest = [t1.created_at, t2.created_at, t3.created_at];
    assert_eq!(queued.oldest_queued_at, oldest.iter().min().copied());

    // A claimed task runs while its lease is current (through T0 + 30) and
    // is queued again once it expired.
    let a = claim_any(&*store, "worker-1", T0, 30)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.task.id, t1.id);
    let during = counts(T0 + 30).await;
    assert_eq!((during.queued, during.running), (2, 1));
    assert_eq!(
        during.oldest_queued_at,
        [t2.created_at, t3.created_at].iter().min().copied()
    );
    let after = counts(T0 + 31).await;
    assert_eq!((after.queued, after.running), (3, 0));
    assert_eq!(after.oldest_queued_at, queued.oldest_queued_at);

    // One fails, one succeeds: the failure is counted, neither is queued.
    assert!(store
        .finish_task(t1.id, "worker-1", T0 + 1, failure("Boom"))
        .await
        .unwrap());
    let b = claim_any(&*store, "worker-1", T0 + 2, 30)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.task.id, t2.id);
    assert!(store
        .finish_task(t2.id, "worker-1", T0 + 3, Ok(()))
        .await
        .unwrap());
    let done = counts(T0 + 3).await;
    assert_eq!(
        (
            done.queued,
            done.running,
            done.failed,
            done.oldest_queued_at
        ),
        (1, 0, 1, Some(t3.created_at))
    );

    // Connections by state and health, every account together.
    store
        .set_net_status(&[(c2.un_id.clone(), NetStatus::Available)])
        .await
        .unwrap();
    let other = scope_of(&store, "other-account", "gz").await;
    let ov = vpc(&store, &other, "vpc-other").await;
    let og = vpn_gw(&store, &other, ov.id, "gw-other").await;
    let ou = user_gw(&store, &other, "peer-other", "198.51.100.9").await;
    conn(&store, &other, &og, &ou, "o1").await;
    let by_state: Vec<(ConnStatus, NetStatus, u64)> = store
        .conn_counts()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.status, c.net_status, c.count))
        .collect();
    assert_eq!(
        by_state,
        [
            (ConnStatus::Creating, NetStatus::Unavailable, 2),
            (ConnStatus::CreateFailed, NetStatus::Unavailable, 1),
            (ConnStatus::Running, NetStatus::Available, 1),
        ]
    );
    assert_eq!(
        get_conn(&store, &sc, c1.id).await.unwrap().status,
        ConnStatus::CreateFailed
    );
    assert_eq!(counts(T0 + 3).await.queued, 2);

    // Pools: something open, never more idle than open or open than allowed.
    let pools = store.pool_use();
    assert!(!pools.is_empty());
    for p in &pools {
        assert!(p.max >= 1 && p.open <= p.max && p.idle <= p.open, "{p:?}");
    }
    let names: BTreeSet<&str> = pools.iter().map(|p| p.pool).collect();
    assert_eq!(names.len(), pools.len(), "each pool once: {pools:?}");
}

// ---- diagnostics ------------------------------------------------------------

/// What a gateway node observed: the last failure replaces the one before,
/// traffic samples replace each other (a sample without SAs clears the
/// counters), only the newest events are kept, unknown connections are
/// ignored, and everything goes with its connection.
pub(crate) async fn diagnostics_recorded_bounded_and_deleted(store: Arc<dyn Store>) {
    use vpcd_types::diag::{EventReason, FailureDetail, FailureKind, Stage};
    let sc = scope(&store).await;
    let (_, g, u) = topology(&store, &sc).await;
    let c = running_conn(&store, &sc, &g, &u, "c").await;
    assert_eq!(
        store.conn_diagnostics(c.id).await.unwrap(),
        ConnDiagnostics::default()
    );
    let nobody: VpnConnId = "vpnx-zzzzzzzz".parse().unwrap();
    let failure = |kind, at| LastFailure {
        kind,
        detail: FailureDetail {
            stage: Some(Stage::Ike),
            peer_offered: Some("IKE:AES_CBC_128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_2048".into()),
            gateway_allows: Some("IKE:3DES_CBC/HMAC_MD5_96/PRF_HMAC_MD5/MODP_1024".into()),
            peer_identity: None,
        },
        first_at: at,
        last_at: at + 5,
    };
    let traffic = Traffic {
        bytes_in: 1_000,
        bytes_out: 2_000,
        packets_in: 10,
        packets_out: 20,
        established_at: Some(T0),
        last_rekey_at: None,
    };
    let event = |i: i64| TunnelEvent {
        at: T0 + i,
        up: i % 2 == 0,
        reason: if i % 2 == 0 {
            EventReason::Negotiated
        } else {
            EventReason::Failure(FailureKind::DpdTimeout)
        },
    };
    let batch = DiagnosticsBatch {
        failures: vec![
            (c.un_id.clone(), failure(FailureKind::NoCommonProposal, T0)),
            (nobody.clone(), failure(FailureKind::PskMismatch, T0)),
        ],
        events: vec![(c.un_id.clone(), event(0)), (nobody.clone(), event(1))],
        traffic: vec![(c.un_id.clone(), Some(traffic)), (nobody.clone(), None)],
        traffic_at: T0 + 7,
    };
    store.record_diagnostics(batch).await.unwrap();
    let d = store.conn_diagnostics(c.id).await.unwrap();
    assert_eq!(
        d.last_failure,
        Some(failure(FailureKind::NoCommonProposal, T0))
    );
    assert_eq!((d.traffic, d.sampled_at), (Some(traffic), Some(T0 + 7)));
    assert_eq!(d.events, vec![event(0)]);

    // A later failure replaces it; a sample without SAs clears the
    // counters; events pile up to the bound, newest first.
    let plain = LastFailure {
        kind: FailureKind::PeerNotAnswering,
        detail: FailureDetail::default(),
        first_at: T0 + 50,
        last_at: T0 + 50,
    };
    let batch = DiagnosticsBatch {
        failures: vec![(c.un_id.clone(), plain.clone())],
        events: (1..30).map(|i| (c.un_id.clone(), event(i))).collect(),
        traffic: vec![(c.un_id.clone(), None)],
        traffic_at: T0 + 60,
    };
    store.record_diagnostics(batch).await.unwrap();
    let d = store.conn_diagnostics(c.id).await.unwrap();
    assert_eq!(d.last_failure, Some(plain));
    assert_eq!((d.traffic, d.sampled_at), (None, Some(T0 + 60)));
    let want: Vec<TunnelEvent> = (10..30).rev().map(event).collect();
    assert_eq!(d.events.len(), EVENTS_KEPT);
    assert_eq!(d.events, want);
    store
        .record_diagnostics(DiagnosticsBatch::default())
        .await
        .unwrap();

    // Deleting the connection deletes what was recorded about it.
    store.begin_delete(&sc, c.id).await.unwrap();
    run_next(&store, Ok(())).await;
    assert_eq!(get_conn(&store, &sc, c.id).await, None);
    assert_eq!(
        store.conn_diagnostics(c.id).await.unwrap(),
        ConnDiagnostics::default()
    );
}

// ---- the web console ----------------------------------------------------------

pub(crate) async fn console_passwords(store: Arc<dyn Store>) {
    let alice = store.create_account("alice").await.unwrap();
    let login = store.console_login("alice").await.unwrap().unwrap();
    assert_eq!(
        login,
        ConsoleLogin {
            account_id: alice.id,
            password_hash: None,
            disabled: false
        }
    );
    assert_eq!(store.console_login("nobody").await.unwrap(), None);
    assert_err!(
        store
            .set_console_password("nobody", Some("$argon2id$x"))
            .await,
        StoreError::NotFound(Resource::Account)
    );
    store
        .set_console_password("alice", Some("$argon2id$v=19$hash"))
        .await
        .unwrap();
    store.set_account_disabled("alice", true).await.unwrap();
    let login = store.console_login("alice").await.unwrap().unwrap();
    assert_eq!(login.password_hash.as_deref(), Some("$argon2id$v=19$hash"));
    assert!(login.disabled);
    store.set_console_password("alice", None).await.unwrap();
    assert_eq!(
        store
            .console_login("alice")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        None
    );
}

fn session(
    hash: &str,
    account: AccountId,
    secret_id: Option<&str>,
    at: Timestamp,
) -> NewConsoleSession {
    NewConsoleSession {
        token_hash: hash.to_owned(),
        account_id: account,
        secret_id: secret_id.map(str::to_owned),
        created_at: at,
        expires_at: at + 100,
    }
}

pub(crate) async fn console_sessions(store: Arc<dyn Store>) {
    let alice = store.create_account("alice").await.unwrap();
    let bob = store.create_account("bob").await.unwrap();
    let key = store.create_key("alice").await.unwrap();
    store
        .create_console_session(session("h-pw", alice.id, None, T0))
        .await
        .unwrap();
    store
        .create_console_session(session("h-key", alice.id, Some(&key.secret_id), T0))
        .await
        .unwrap();
    store
        .create_console_session(session("h-bob", bob.id, None, T0))
        .await
        .unwrap();
    let found = store.find_console_session("h-pw", T0 + 1).await.unwrap();
    assert_eq!(
        found,
        Some(ConsoleSession {
            account_id: alice.id,
            account_name: "alice".into(),
            expires_at: T0 + 100
        })
    );
    assert_eq!(
        store.find_console_session("h-none", T0).await.unwrap(),
        None
    );
    // Expiry: live until just before `expires_at`, gone from it on.
    assert!(store
        .find_console_session("h-pw", T0 + 99)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        store.find_console_session("h-pw", T0 + 100).await.unwrap(),
        None
    );
    // Disabling the key ends the session it opened, not the password one.
    store.set_key_disabled(&key.secret_id, true).await.unwrap();
    assert_eq!(
        store.find_console_session("h-key", T0 + 1).await.unwrap(),
        None
    );
    assert!(store
        .find_console_session("h-pw", T0 + 1)
        .await
        .unwrap()
        .is_some());
    store.set_key_disabled(&key.secret_id, false).await.unwrap();
    assert!(store
        .find_console_session("h-key", T0 + 1)
        .await
        .unwrap()
        .is_some());
    // Disabling the account ends all of its sessions, and only its own.
    store.set_account_disabled("alice", true).await.unwrap();
    assert_eq!(
        store.find_console_session("h-pw", T0 + 1).await.unwrap(),
        None
    );
    assert_eq!(
        store.find_console_session("h-key", T0 + 1).await.unwrap(),
        None
    );
    assert!(store
        .find_console_session("h-bob", T0 + 1)
        .await
        .unwrap()
        .is_some());
    store.set_account_disabled("alice", false).await.unwrap();
    // Sign-out deletes; a second sign-out finds nothing.
    assert!(store.delete_console_session("h-pw").await.unwrap());
    assert!(!store.delete_console_session("h-pw").await.unwrap());
    assert_eq!(
        store.find_console_session("h-pw", T0 + 1).await.unwrap(),
        None
    );
    // A later sign-in sweeps the expired sessions out.
    store
        .create_console_session(session("h-new", bob.id, None, T0 + 500))
        .await
        .unwrap();
    assert!(!store.delete_console_session("h-key").await.unwrap());
    assert!(!store.delete_console_session("h-bob").await.unwrap());
    assert!(store
        .find_console_session("h-new", T0 + 501)
        .await
        .unwrap()
        .is_some());
}
