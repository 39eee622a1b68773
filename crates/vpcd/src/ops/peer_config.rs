//! Configuration for the customer's own device: the devices vpcd can
//! configure, and one connection's configuration for one of them.

use vpcd_dataplane::peer_config::{self, PeerConfigError, Setting, Vendor};
use vpcd_store::{Scope, VpnConn};
use vpcd_types::id::{VpnConnKind, VpnGwKind};
use vpcd_types::IdRef;

use super::{vpn_gw, List};
use crate::api::ApiState;
use crate::error::{ApiError, ApiResult, ErrorCode, Field};

pub(crate) fn list_vendors() -> List<&'static Vendor> {
    let items: Vec<&'static Vendor> = peer_config::vendors().iter().collect();
    List {
        total: items.len() as u64,
        items,
    }
}

/// A device by name, narrowed by platform and software when given.
pub(crate) struct VendorChoice {
    pub(crate) name: String,
    pub(crate) platform: Option<String>,
    pub(crate) software: Option<String>,
}

pub(crate) struct GetPeerConfig {
    pub(crate) conn: IdRef<VpnConnKind>,
    /// The VPN gateway the connection must belong to, when named.
    pub(crate) vpn_gw: Option<IdRef<VpnGwKind>>,
    pub(crate) vendor: VendorChoice,
    /// The device's outside interface (default: the vendor's usual one).
    pub(crate) interface: Option<String>,
}

pub(crate) struct PeerConfig {
    pub(crate) conn: VpnConn,
    pub(crate) vendor: &'static Vendor,
    /// The configuration file's text.
    pub(crate) text: String,
}

pub(crate) async fn peer_config(
    api: &ApiState,
    scope: &Scope,
    req: GetPeerConfig,
) -> ApiResult<PeerConfig> {
    let vendor = choose_vendor(&req.vendor)?;
    let gw_id = match &req.vpn_gw {
        Some(id) => Some(vpn_gw::load(api, scope, id, None).await?.id),
        None => None,
    };
    let conn = api
        .store
        .get_conn(scope, &req.conn)
        .await
        .map_err(|e| ApiError::from_store(e, Field::VpnConnId))?
        .filter(|c| gw_id.is_none_or(|g| c.vpn_gw.id == g))
        .ok_or_else(|| {
            ApiError::not_found(ErrorCode::VpnConnNotFound, Field::VpnConnId, &req.conn)
        })?;
    let text = peer_config::render(vendor, &conn.tunnel_spec(), req.interface.as_deref())
        .map_err(config_error)?;
    Ok(PeerConfig { conn, vendor, text })
}

fn choose_vendor(choice: &VendorChoice) -> ApiResult<&'static Vendor> {
    let matches: Vec<&'static Vendor> = peer_config::vendors()
        .iter()
        .filter(|v| {
            v.vendorname == choice.name
                && choice.platform.as_deref().is_none_or(|x| x == v.platform)
                && choice.software.as_deref().is_none_or(|x| x == v.software)
        })
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        _ => {
            let known: Vec<String> = peer_config::vendors()
                .iter()
                .map(|v| format!("{}/{}/{}", v.vendorname, v.platform, v.software))
                .collect();
            Err(ApiError::field(
                ErrorCode::InvalidVendor,
                Field::Vendor,
                format!(
                    "no supported device matches; see DescribeUserGwVendor ({})",
                    known.join(", ")
                ),
            ))
        }
    }
}

/// The renderer names the setting the device cannot do (a refusal of the
/// capability table); it becomes a field, so every protocol spells it.
fn config_error(e: PeerConfigError) -> ApiError {
    let field = match &e {
        PeerConfigError::InterfaceName => Field::InterfaceName,
        PeerConfigError::PreSharedKey(_) => Field::PreSharedKey,
        PeerConfigError::Unsupported(r) => match r.setting {
            Setting::IkeVersion(_) => Field::IkeVersion,
            Setting::IkeEncryption(_) => Field::IkeEncryption,
            Setting::IkeIntegrity(_) => Field::IkeAuthentication,
            Setting::IkeDhGroup(_) => Field::IkeDhGroup,
            Setting::ExchangeMode(_) => Field::ExchangeMode,
            Setting::IpsecEncryption(_) => Field::IpsecEncryption,
            Setting::IpsecIntegrity(_) => Field::IpsecIntegrity,
            Setting::PfsGroup(_) => Field::PfsDhGroup,
        },
    };
    // The error's Display starts with the parameter: keep only the reason.
    let msg = e.to_string();
    let why = msg.split_once(": ").map_or(msg.as_str(), |(_, w)| w);
    ApiError::field(ErrorCode::InvalidParameter, field, why)
}
