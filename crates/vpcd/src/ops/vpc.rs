//! VPCs: create, describe, rename, delete.

use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};
use vpcd_store::{NewVpc, Scope, Vpc, VpcFilter};
use vpcd_types::id::VpcKind;
use vpcd_types::{Cidr, IdRef};

use super::{Describe, List, Name};
use crate::api::ApiState;
use crate::error::{ApiError, ApiResult, ErrorCode, Field, Why};

/// A VPC's CIDR block: IPv4, inside a private range, prefix /16 to /28.
pub(crate) fn parse_cidr(text: &str) -> Result<Cidr, String> {
    let cidr: Cidr = text.parse().map_err(|e| format!("{e}"))?;
    let IpNet::V4(net) = cidr.net() else {
        return Err("must be IPv4".to_owned());
    };
    let private: [Ipv4Net; 3] = [
        Ipv4Net::new(Ipv4Addr::new(10, 0, 0, 0), 8).expect("valid"),
        Ipv4Net::new(Ipv4Addr::new(172, 16, 0, 0), 12).expect("valid"),
        Ipv4Net::new(Ipv4Addr::new(192, 168, 0, 0), 16).expect("valid"),
    ];
    if !private.iter().any(|p| p.contains(&net)) {
        return Err("must lie in 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16".to_owned());
    }
    if !(16..=28).contains(&net.prefix_len()) {
        return Err("prefix length must be between /16 and /28".to_owned());
    }
    Ok(cidr)
}

pub(crate) struct CreateVpc {
    pub(crate) name: Name,
    pub(crate) cidr: Cidr,
    /// The CIDR blocks of the subnets given with the VPC: checked (the real
    /// API takes subnets here), not kept, since vpcd has no subnet resource.
    /// Their names are parsed as [`Name`]s by the adapter, then dropped.
    pub(crate) subnets: Vec<Cidr>,
}

pub(crate) async fn create_vpc(api: &ApiState, scope: &Scope, req: CreateVpc) -> ApiResult<Vpc> {
    for (i, subnet) in req.subnets.iter().enumerate() {
        if !req.cidr.contains(subnet) {
            return Err(ApiError::field_why(
                ErrorCode::InvalidSubnetCidr,
                Field::SubnetCidrBlock(i),
                Why::text("must lie inside the VPC's ").field(Field::CidrBlock),
            ));
        }
    }
    let new = NewVpc {
        name: req.name.into_string(),
        cidr: req.cidr,
    };
    api.store
        .create_vpc(scope, new, &api.settings.limits)
        .await
        .map_err(|e| ApiError::from_store(e, Field::VpcName))
}

pub(crate) async fn describe_vpcs(
    api: &ApiState,
    scope: &Scope,
    req: Describe<VpcFilter>,
) -> ApiResult<List<Vpc>> {
    let page = api.store.list_vpcs(scope, &req.filter, &req.page).await;
    List::from_store(page, Field::VpcId)
}

/// A change to a VPC's attributes: its name (`None` keeps it; the VPC
/// must exist either way).
pub(crate) struct RenameVpc {
    pub(crate) vpc: IdRef<VpcKind>,
    pub(crate) name: Option<Name>,
}

pub(crate) async fn rename_vpc(api: &ApiState, scope: &Scope, req: RenameVpc) -> ApiResult<()> {
    let vpc = load(api, scope, &req.vpc).await?;
    let Some(name) = req.name else {
        return Ok(());
    };
    api.store
        .rename_vpc(scope, vpc.id, name.as_str())
        .await
        .map_err(|e| ApiError::from_store(e, Field::VpcName))
}

pub(crate) struct DeleteVpc {
    pub(crate) vpc: IdRef<VpcKind>,
}

pub(crate) async fn delete_vpc(api: &ApiState, scope: &Scope, req: DeleteVpc) -> ApiResult<()> {
    let vpc = load(api, scope, &req.vpc).await?;
    api.store
        .delete_vpc(scope, vpc.id)
        .await
        .map_err(|e| ApiError::from_store(e, Field::VpcId))
}

/// The caller's VPC named by the `vpcId` field.
pub(crate) async fn load(api: &ApiState, scope: &Scope, id: &IdRef<VpcKind>) -> ApiResult<Vpc> {
    api.store
        .get_vpc(scope, id)
        .await
        .map_err(|e| ApiError::from_store(e, Field::VpcId))?
        .ok_or_else(|| ApiError::not_found(ErrorCode::VpcNotFound, Field::VpcId, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vpc_cidrs() {
        assert!(parse_cidr("10.0.0.0/16").is_ok());
        assert!(parse_cidr("192.168.1.0/28").is_ok());
        for bad in ["10.0.0.0/8", "10.0.0.0/29", "8.8.0.0/16", "banana"] {
            assert!(parse_cidr(bad).is_err(), "{bad}");
        }
    }
}
