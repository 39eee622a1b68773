//! DescribeUserGwVendor and GetVpnConnConfig: configuration for the
//! customer's own device.

use serde_json::json;
use vpcd_dataplane::peer_config::{self, PeerConfigError, Vendor};
use vpcd_store::{Resource, Scope};
use vpcd_types::id::VpnConnKind;
use vpcd_types::IdRef;

use super::{req_id, Reply};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;

pub(super) async fn vendors(_state: &AppState, _scope: &Scope, _p: &Params) -> ApiResult<Reply> {
    let items: Vec<_> = peer_config::vendors()
        .iter()
        .map(|v| json!({ "vendorname": v.vendorname, "platform": v.platform, "software": v.software }))
        .collect();
    Ok(Reply::List {
        total: items.len() as u64,
        items,
    })
}

/// The device named by `vendorname` (+ `platform`, `software` when given).
fn choose_vendor(p: &Params) -> ApiResult<&'static Vendor> {
    let name = p.req_str("vendorname")?;
    let platform = p.opt_str("platform")?;
    let software = p.opt_str("software")?;
    let matches: Vec<&'static Vendor> = peer_config::vendors()
        .iter()
        .filter(|v| {
            v.vendorname == name
                && platform.is_none_or(|x| x == v.platform)
                && software.is_none_or(|x| x == v.software)
        })
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        _ => {
            let known: Vec<String> = peer_config::vendors()
                .iter()
                .map(|v| format!("{}/{}/{}", v.vendorname, v.platform, v.software))
                .collect();
            Err(ApiError::invalid_as(
                "InvalidVendor",
                "vendorname",
                format!(
                    "no supported device matches; see DescribeUserGwVendor ({})",
                    known.join(", ")
                ),
            ))
        }
    }
}

pub(super) async fn config(state: &AppState, scope: &Scope, p: &Params) -> ApiResult<Reply> {
    let id: IdRef<VpnConnKind> = req_id(p, "vpnConnId")?;
    let vendor = choose_vendor(p)?;
    let interface = p.opt_str("interfaceName")?;
    let conn = state
        .store
        .get_conn(scope, &id)
        .await
        .map_err(|e| ApiError::from_store(e, "vpnConnId"))?
        .ok_or_else(|| ApiError::not_found(Resource::VpnConn, "vpnConnId", &id))?;
    let spec = crate::engine::spec_of(&conn);
    let text = peer_config::render(vendor, &spec, interface).map_err(|e| {
        let param = match &e {
            PeerConfigError::InterfaceName => "interfaceName",
            PeerConfigError::PreSharedKey(_) => "preSharedKey",
            PeerConfigError::Unsupported { param, .. } => param,
        };
        // The Display of the error already starts with the parameter.
        let msg = e.to_string();
        let why = msg
            .split_once(": ")
            .map_or(msg.as_str(), |(_, w)| w)
            .to_owned();
        ApiError::invalid(param, why)
    })?;
    Ok(Reply::Data(json!({
        "vpnConnId": conn.id,
        "unVpnConnId": conn.un_id.to_string(),
        "vendorname": vendor.vendorname,
        "platform": vendor.platform,
        "software": vendor.software,
        "configFileInfo": text,
    })))
}
