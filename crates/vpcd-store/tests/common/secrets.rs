//! Secrets at rest, for the engine tests that look at what is stored: the
//! secrets to look for, and the master-key rules every engine follows.

use vpcd_store::*;
use vpcd_types::{IdRef, Secret};

/// The pre-shared key given to the connection [`write_secrets`] creates...
pub(crate) const PSK: &str = "psk-at-rest-3c9e1d77";
/// ...and the one it is modified to.
pub(crate) const PSK_MODIFIED: &str = "psk-at-rest-modified-51ab";

/// An account with a key, and a connection whose pre-shared key is
/// [`PSK`], then modified to [`PSK_MODIFIED`]: the clear secrets the
/// database must not hold (the SecretKey, both PSKs).
pub(crate) async fn write_secrets(store: &dyn Store) -> Vec<String> {
    let account = store.create_account("carol").await.unwrap();
    let key = store.create_key("carol").await.unwrap();
    let scope = Scope {
        account_id: account.id,
        region: "gz".into(),
    };
    let vpc = store
        .create_vpc(
            &scope,
            NewVpc {
                name: "v".into(),
                cidr: "10.0.0.0/16".parse().unwrap(),
            },
            &Limits::default(),
        )
        .await
        .unwrap();
    let gw = store
        .create_vpn_gw(
            &scope,
            NewVpnGw {
                vpc_id: vpc.id,
                name: "g".into(),
                bandwidth: 10,
                charge_type: "POSTPAID_BY_HOUR".into(),
                charge_period: None,
                address: AddressSource::Pool("203.0.113.0/24".parse().unwrap()),
            },
            &Limits::default(),
        )
        .await
        .unwrap();
    let ugw = store
        .create_user_gw(
            &scope,
            NewUserGw {
                name: "u".into(),
                address: "198.51.100.7".parse().unwrap(),
            },
            &Limits::default(),
        )
        .await
        .unwrap();
    let new = NewConn {
        vpc_id: vpc.id,
        vpn_gw_id: gw.id,
        user_gw_id: ugw.id,
        name: "c".into(),
        settings: super::conformance::settings(PSK),
        tags: Vec::new(),
    };
    let (conn, _) = store
        .create_conn(&scope, new, &Limits::default())
        .await
        .unwrap();
    testing::claim_any(store, "w", 0, 30)
        .await
        .unwrap()
        .unwrap();
    let done = store
        .finish_task(conn.active_task.unwrap(), "w", 1, Ok(()))
        .await
        .unwrap();
    assert!(done);
    let change = ConnChange {
        name: None,
        settings: Some(super::conformance::settings(PSK_MODIFIED)),
    };
    store.begin_modify(&scope, conn.id, change).await.unwrap();
    // Read back in clear through the store.
    let back = store
        .get_conn(&scope, &IdRef::Numeric(conn.id.get()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.settings.pre_shared_key, Secret::new(PSK_MODIFIED));
    assert_eq!(
        store
            .find_key(&key.secret_id)
            .await
            .unwrap()
            .unwrap()
            .secret_key,
        key.secret_key
    );
    vec![
        key.secret_key.expose().to_owned(),
        PSK.to_owned(),
        PSK_MODIFIED.to_owned(),
    ]
}

/// `open` opens the same database with a given key. A wrong key is refused
/// with `WrongMasterKey`; after a rotation the old key is refused and the
/// new one reads every secret.
pub(crate) async fn master_key_rules<S, F>(open: F)
where
    S: Store,
    F: AsyncFn(MasterKey) -> Result<S>,
{
    let (old, new) = (MasterKey::generate(), MasterKey::generate());
    let store = open(old.clone()).await.unwrap();
    write_secrets(&store).await;
    let key = store.list_accounts().await.unwrap()[0].1[0].clone();
    drop(store);
    let refused = open(new.clone())
        .await
        .err()
        .expect("a wrong key is refused");
    assert!(matches!(refused, StoreError::WrongMasterKey), "{refused}");
    assert!(refused.to_string().contains("master key"), "{refused}");

    let store = open(old.clone()).await.unwrap();
    let done = store.rotate_master_key(new.clone()).await.unwrap();
    assert_eq!(
        done,
        Resealed {
            secret_keys: 1,
            psks: 1
        }
    );
    drop(store);
    assert!(matches!(
        open(old.clone()).await.err(),
        Some(StoreError::WrongMasterKey)
    ));
    let store = open(new).await.unwrap();
    assert_eq!(store.find_key(&key.secret_id).await.unwrap(), Some(key));
    let scope = Scope {
        account_id: store.list_accounts().await.unwrap()[0].0.id,
        region: "gz".into(),
    };
    let (_, conns) = store
        .list_conns(
            &scope,
            &ConnFilter::default(),
            &Page {
                offset: 0,
                limit: 10,
                order: Order::CreateTime,
                descending: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(conns[0].settings.pre_shared_key, Secret::new(PSK_MODIFIED));
}
