//! DescribeCustomerGatewayVendors and DownloadCustomerGatewayConfiguration:
//! the devices vpcd writes configurations for, and one connection's
//! configuration for one of them.

use serde::Serialize;
use serde_json::{Map, Value};

use super::common;
use super::params::Obj;
use super::{answer, Ctx, Handler};
use crate::api::ApiState;
use crate::error::ApiResult;
use crate::ops::peer_config::{self as op, GetPeerConfig, VendorChoice};

pub(super) struct Vendors;

impl Handler for Vendors {
    fn parse(_: &Obj<'_>) -> ApiResult<Self> {
        Ok(Vendors)
    }

    async fn run(self, _: &ApiState, _: &Ctx) -> ApiResult<Map<String, Value>> {
        let list = op::list_vendors();
        answer(VendorSet {
            customer_gateway_vendor_set: list
                .items
                .iter()
                .map(|v| Vendor {
                    platform: v.platform,
                    software_version: v.software,
                    vendor_name: v.vendorname,
                })
                .collect(),
        })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct VendorSet {
    customer_gateway_vendor_set: Vec<Vendor>,
}

/// A `CustomerGatewayVendor` model.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Vendor {
    platform: &'static str,
    software_version: &'static str,
    vendor_name: &'static str,
}

pub(super) struct Download(GetPeerConfig);

impl Handler for Download {
    fn parse(o: &Obj<'_>) -> ApiResult<Self> {
        let vpn_gw = common::req_id(o, "VpnGatewayId")?;
        let conn = common::req_id(o, "VpnConnectionId")?;
        let v = o.required("CustomerGatewayVendor")?.obj()?;
        let vendor = VendorChoice {
            name: v.req_str("VendorName")?.to_owned(),
            platform: Some(v.req_str("Platform")?.to_owned()),
            software: Some(v.req_str("SoftwareVersion")?.to_owned()),
        };
        let interface = Some(o.req_str("InterfaceName")?.to_owned());
        Ok(Download(GetPeerConfig {
            conn,
            vpn_gw: Some(vpn_gw),
            vendor,
            interface,
        }))
    }

    async fn run(self, api: &ApiState, ctx: &Ctx) -> ApiResult<Map<String, Value>> {
        let c = op::peer_config(api, &ctx.scope, self.0).await?;
        answer(Config {
            customer_gateway_configuration: &c.text,
        })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Config<'a> {
    customer_gateway_configuration: &'a str,
}
