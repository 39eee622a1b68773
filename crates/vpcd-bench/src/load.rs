//! Storing a run's resources directly through the store, with vpcd stopped:
//! VPCs, gateways and peer gateways one by one, then the tunnels in bulk with
//! `Store::import_conns`.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ipnet::IpNet;
use vpcd_bench::fixtures::{self, GWS_PER_VPC, USER_GWS, VPCS};
use vpcd_store::{
    AddressSource, ConnFilter, Limits, NewConn, NewUserGw, NewVpc, NewVpnGw, Order, Page, Scope,
    Store, UserGw,
};
use vpcd_types::{Cidr, GatewayNodeId, IdRef, NegotiationType};

use crate::client::Credentials;
use crate::db::Database;
use crate::vpcd::RAISED_QUOTA;

/// Tunnels handed to one `import_conns` call (the store batches further).
const IMPORT_CHUNK: usize = 10_000;
/// Rows per page when reading the stored tunnel ids back.
const ID_PAGE: u32 = 1_000;

/// A gateway as requests name it.
#[derive(Debug, Clone)]
pub(crate) struct Gw {
    pub(crate) vpc_un_id: String,
    pub(crate) un_id: String,
    /// Tunnels stored on it.
    pub(crate) tunnels: u32,
}

/// What a run stored, as the scenarios need it.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) gws: Vec<Gw>,
    pub(crate) user_gws: Vec<String>,
    /// Unified ids of every stored tunnel.
    pub(crate) conn_ids: Vec<String>,
    pub(crate) import_time: Duration,
}

fn raised_limits() -> Limits {
    let n = RAISED_QUOTA;
    Limits {
        vpcs_per_region: n,
        vpn_gws_per_vpc: n,
        user_gws_per_region: n,
        conns_per_vpn_gw: n,
        conns_per_user_gw: n,
        conns_per_region: n,
        conns_per_pair: n,
        pool_addresses_per_account: n,
        ..Limits::default()
    }
}

/// Create the VPCs and gateways (API only, addresses from a pool). Returns
/// what `import` needs.
pub(crate) async fn layout(store: &dyn Store, scope: &Scope) -> anyhow::Result<Layout> {
    let pool: IpNet = "203.0.113.0/24".parse()?;
    let vpcs: Vec<String> = (0..VPCS).map(fixtures::vpc_cidr).collect();
    build(
        store,
        scope,
        &vpcs,
        GWS_PER_VPC,
        AddressSource::Pool(pool),
        NegotiationType::Active,
    )
    .await
}

/// One VPC (`vpc_cidr`) with one VPN gateway on the gateway node `node`,
/// and the [`USER_GWS`] peer gateways of [`layout`], whose addresses
/// (192.0.2.0/24) nobody answers. Tunnels to them are stored `passive`:
/// loaded on the node, waiting for a peer that never calls, so the gateway
/// carries them without negotiating (an `active` one would retry forever).
pub(crate) async fn node_layout(
    store: &dyn Store,
    scope: &Scope,
    node: GatewayNodeId,
    vpc_cidr: &str,
) -> anyhow::Result<Layout> {
    build(
        store,
        scope,
        &[vpc_cidr.to_owned()],
        1,
        AddressSource::Node { node_id: node },
        NegotiationType::Passive,
    )
    .await
}

async fn build(
    store: &dyn Store,
    scope: &Scope,
    vpc_cidrs: &[String],
    gws_per_vpc: usize,
    address: AddressSource,
    negotiation: NegotiationType,
) -> anyhow::Result<Layout> {
    let limits = raised_limits();
    let mut gws = Vec::with_capacity(vpc_cidrs.len() * gws_per_vpc);
    for (v, cidr) in vpc_cidrs.iter().enumerate() {
        let cidr: Cidr = cidr.parse()?;
        let vpc = store
            .create_vpc(
                scope,
                NewVpc {
                    name: format!("bench-vpc-{v}"),
                    cidr,
                },
                &limits,
            )
            .await
            .context("creating a VPC")?;
        for g in 0..gws_per_vpc {
            let gw = store
                .create_vpn_gw(
                    scope,
                    NewVpnGw {
                        vpc_id: vpc.id,
                        name: format!("bench-gw-{v}-{g}"),
                        bandwidth: 5,
                        charge_type: "POSTPAID_BY_HOUR".into(),
                        charge_period: None,
                        address: address.clone(),
                    },
                    &limits,
                )
                .await
                .context("creating a VPN gateway")?;
            gws.push(gw);
        }
    }
    let mut user_gws = Vec::with_capacity(USER_GWS);
    for u in 0..USER_GWS {
        user_gws.push(
            create_user_gw(
                store,
                scope,
                &format!("bench-cgw-{u}"),
                fixtures::user_gw_addr(u),
            )
            .await?,
        );
    }
    Ok(Layout {
        gws,
        user_gws,
        negotiation,
    })
}

/// A peer gateway named `name` at `address`.
pub(crate) async fn create_user_gw(
    store: &dyn Store,
    scope: &Scope,
    name: &str,
    address: IpAddr,
) -> anyhow::Result<UserGw> {
    store
        .create_user_gw(
            scope,
            NewUserGw {
                name: name.to_owned(),
                address,
            },
            &raised_limits(),
        )
        .await
        .context("creating a peer gateway")
}

/// The account `vpcd serve` created on its first start in `dir`: its
/// credentials, the store on `database` opened with the directory's master
/// key, and the account's scope.
pub(crate) async fn open_account(
    dir: &Path,
    database: &Database,
) -> anyhow::Result<(Credentials, Arc<dyn Store>, Scope)> {
    let creds = crate::vpcd::read_credentials(dir)?;
    // The data directory's master key, which the first start created.
    let key = vpcd_store::MasterKey::read(&dir.join("master.key"))?;
    let store = vpcd_store::connect(&database.store_url(), key)
        .await
        .context("opening the store")?;
    let key = store
        .find_key(&creds.secret_id)
        .await?
        .context("the credentials' key is not in the database")?;
    let scope = Scope {
        account_id: key.account_id,
        region: creds.region.clone(),
    };
    Ok((creds, store, scope))
}

pub(crate) struct Layout {
    gws: Vec<vpcd_store::VpnGw>,
    user_gws: Vec<UserGw>,
    negotiation: NegotiationType,
}

/// Tunnel `i`: gateway `i % gateways`, peer gateway `i % USER_GWS`.
fn new_conn(layout: &Layout, i: usize) -> NewConn {
    let gw = &layout.gws[i % layout.gws.len()];
    let ugw = &layout.user_gws[i % USER_GWS];
    let mut settings = fixtures::conn_settings(
        gw.vpc.cidr.as_given(),
        &fixtures::idc_cidr(i),
        gw.address,
        ugw.address,
        &format!("bench-psk-{i:07}"),
    );
    settings.negotiation = layout.negotiation;
    NewConn {
        vpc_id: gw.vpc.id,
        vpn_gw_id: gw.id,
        user_gw_id: ugw.id,
        name: format!("bench-{i:07}"),
        settings,
        tags: Vec::new(),
    }
}

/// Store `tunnels` configured tunnels and read their ids back.
pub(crate) async fn import(
    store: &dyn Store,
    scope: &Scope,
    layout: &Layout,
    tunnels: usize,
) -> anyhow::Result<Stored> {
    let start = Instant::now();
    let mut done = 0;
    while done < tunnels {
        let chunk: Vec<NewConn> = (done..tunnels.min(done + IMPORT_CHUNK))
            .map(|i| new_conn(layout, i))
            .collect();
        let n = chunk.len();
        let inserted = store
            .import_conns(scope, chunk)
            .await
            .context("import_conns")?;
        anyhow::ensure!(inserted == n as u64, "imported {inserted} of {n}");
        done += n;
    }
    let import_time = start.elapsed();

    let mut conn_ids = Vec::with_capacity(tunnels);
    let mut gws = Vec::with_capacity(layout.gws.len());
    for gw in &layout.gws {
        let filter = ConnFilter {
            vpn_gw: Some(IdRef::Numeric(gw.id.get())),
            ..ConnFilter::default()
        };
        let mut offset = 0;
        let total = loop {
            let page = Page {
                offset,
                limit: ID_PAGE,
                order: Order::CreateTime,
                descending: false,
            };
            let (total, rows) = store.list_conns(scope, &filter, &page).await?;
            conn_ids.extend(rows.iter().map(|c| c.un_id.to_string()));
            offset += ID_PAGE;
            if u64::from(offset) >= total {
                break total;
            }
        };
        gws.push(Gw {
            vpc_un_id: gw.vpc.un_id.to_string(),
            un_id: gw.un_id.to_string(),
            tunnels: total as u32,
        });
    }
    anyhow::ensure!(
        conn_ids.len() == tunnels,
        "read back {} tunnel ids, stored {tunnels}",
        conn_ids.len()
    );
    Ok(Stored {
        gws,
        user_gws: layout
            .user_gws
            .iter()
            .map(|u| u.un_id.to_string())
            .collect(),
        conn_ids,
        import_time,
    })
}
