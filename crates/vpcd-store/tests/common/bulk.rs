//! A large bulk load, shared by the engines' test files.

use std::sync::Arc;
use std::time::{Duration, Instant};

use vpcd_store::*;

/// Load 100,000 running connections (100 gateways, 1,000 peers) with
/// `import_conns` and check they are all there; returns how long the
/// import itself took.
pub(crate) async fn import_100k(store: Arc<dyn Store>) -> Duration {
    let account = store.create_account("bench").await.unwrap();
    let scope = Scope {
        account_id: account.id,
        region: "gz".into(),
    };
    let roomy = Limits {
        vpn_gws_per_vpc: 1000,
        user_gws_per_region: 1000,
        pool_addresses_per_account: 1000,
        ..Limits::default()
    };
    let vpc = store
        .create_vpc(
            &scope,
            NewVpc {
                name: "bench".into(),
                cidr: "10.0.0.0/16".parse().unwrap(),
            },
            &roomy,
        )
        .await
        .unwrap();
    let mut gws = Vec::new();
    for i in 0..100 {
        let gw = NewVpnGw {
            vpc_id: vpc.id,
            name: format!("g{i}"),
            bandwidth: 10,
            charge_type: "POSTPAID_BY_HOUR".into(),
            charge_period: None,
            address: AddressSource::Pool("203.0.112.0/23".parse().unwrap()),
        };
        gws.push(store.create_vpn_gw(&scope, gw, &roomy).await.unwrap().id);
    }
    let mut ugws = Vec::new();
    for i in 0..1000u32 {
        let u = NewUserGw {
            name: format!("u{i}"),
            address: std::net::IpAddr::V4((0xC633_6400u32 + i).into()),
        };
        ugws.push(store.create_user_gw(&scope, u, &roomy).await.unwrap().id);
    }
    let settings = super::conformance::settings("bench-psk");
    let conns: Vec<NewConn> = (0..100_000usize)
        .map(|i| NewConn {
            vpc_id: vpc.id,
            vpn_gw_id: gws[i % gws.len()],
            user_gw_id: ugws[i % ugws.len()],
            name: format!("conn-{i:06}"),
            settings: settings.clone(),
            tags: Vec::new(),
        })
        .collect();
    let t = Instant::now();
    assert_eq!(store.import_conns(&scope, conns).await.unwrap(), 100_000);
    let took = t.elapsed();
    let page = Page {
        offset: 0,
        limit: 1,
        order: Order::Name,
        descending: true,
    };
    let (total, last) = store
        .list_conns(&scope, &ConnFilter::default(), &page)
        .await
        .unwrap();
    assert_eq!((total, last[0].name.as_str()), (100_000, "conn-099999"));
    took
}
