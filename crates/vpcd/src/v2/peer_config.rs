//! DescribeUserGwVendor and GetVpnConnConfig.

use serde::Serialize;
use vpcd_store::Scope;
use vpcd_types::{VpnConnId, VpnConnRowId};

use super::params::Params;
use super::Reply;
use crate::api::ApiState;
use crate::error::ApiResult;
use crate::ops::peer_config::{self as op, GetPeerConfig, VendorChoice};

pub(super) fn vendors() -> ApiResult<Reply> {
    let list = op::list_vendors();
    Reply::list(
        list.total,
        list.items.iter().map(|v| VendorItem {
            vendorname: v.vendorname,
            platform: v.platform,
            software: v.software,
        }),
    )
}

#[derive(Serialize)]
struct VendorItem {
    vendorname: &'static str,
    platform: &'static str,
    software: &'static str,
}

pub(super) async fn config(api: &ApiState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let req = GetPeerConfig {
        conn: p.req_parse("vpnConnId")?,
        vpn_gw: None,
        vendor: VendorChoice {
            name: p.req_str("vendorname")?.to_owned(),
            platform: p.opt_str("platform")?.map(str::to_owned),
            software: p.opt_str("software")?.map(str::to_owned),
        },
        interface: p.opt_str("interfaceName")?.map(str::to_owned),
    };
    let c = op::peer_config(api, scope, req).await?;
    Reply::data(Config {
        vpn_conn_id: c.conn.id,
        un_vpn_conn_id: &c.conn.un_id,
        vendorname: c.vendor.vendorname,
        platform: c.vendor.platform,
        software: c.vendor.software,
        config_file_info: &c.text,
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Config<'a> {
    vpn_conn_id: VpnConnRowId,
    un_vpn_conn_id: &'a VpnConnId,
    vendorname: &'static str,
    platform: &'static str,
    software: &'static str,
    config_file_info: &'a str,
}
