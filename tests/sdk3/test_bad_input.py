"""Bad input through the SDK: each row answers its documented 3.0 code with
a message that names the field by its 3.0 path, and writes nothing."""

import pytest

import sdk3util

GW = "{gw}"
CGW = "{cgw}"
VPC = "{vpc}"
SPD = [{"LocalCidrBlock": "10.0.0.0/24", "RemoteCidrBlock": ["192.168.10.0/24"]}]


def conn(**over):
    p = {"VpnGatewayId": GW, "CustomerGatewayId": CGW, "VpnConnectionName": "bad",
         "PreShareKey": "k123", "SecurityPolicyDatabases": SPD}
    p.update(over)
    return {k: v for k, v in p.items() if v is not None}


# (action, params, code, field named first in the message)
ROWS = [
    # types
    ("CreateVpc", {"VpcName": 5, "CidrBlock": "10.0.0.0/16"}, "InvalidParameter", "VpcName"),
    ("CreateVpnGateway", {"VpcId": VPC, "VpnGatewayName": "g", "InternetMaxBandwidthOut": "5"},
     "InvalidParameter", "InternetMaxBandwidthOut"),
    ("DescribeVpnConnections", {"VpnConnectionIds": "vpnx-00000000"}, "InvalidParameter", "VpnConnectionIds"),
    ("CreateVpnConnection", conn(IKEOptionsSpecification=["GROUP2"]), "InvalidParameter",
     "IKEOptionsSpecification"),
    ("CreateVpnConnection", conn(EnableHealthCheck="yes"), "InvalidParameter", "EnableHealthCheck"),
    # missing
    ("CreateVpc", {"CidrBlock": "10.0.0.0/16"}, "MissingParameter", "VpcName"),
    ("CreateVpc", {"VpcName": "v"}, "MissingParameter", "CidrBlock"),
    ("CreateVpnConnection", conn(PreShareKey=None), "MissingParameter", "PreShareKey"),
    ("CreateVpnConnection", conn(SecurityPolicyDatabases=None), "MissingParameter", "SecurityPolicyDatabases"),
    ("CreateVpnConnection", conn(SecurityPolicyDatabases=[{"LocalCidrBlock": "10.0.0.0/24"}]),
     "MissingParameter", "SecurityPolicyDatabases.0.RemoteCidrBlock"),
    ("DescribeVpcTaskResult", {}, "MissingParameter", "TaskId"),
    ("DescribeVpcs", {"Filters": [{"Name": "vpc-id"}]}, "MissingParameter", "Filters.0.Values"),
    # unknown fields
    ("CreateVpc", {"VpcName": "v", "CidrBlock": "10.0.0.0/16", "vpcName": "v"}, "UnknownParameter", "vpcName"),
    ("CreateVpnConnection", conn(IKEOptionsSpecification={"DhGroup": "GROUP2"}), "UnknownParameter",
     "IKEOptionsSpecification.DhGroup"),
    ("DeleteVpnConnection", {"VpnGatewayId": GW, "VpnConnectionId": "vpnx-00000000", "VpcId": VPC},
     "UnknownParameter", "VpcId"),
    ("ModifyVpnConnectionAttribute", {"VpnConnectionId": "vpnx-00000000", "RouteType": "STATIC"},
     "UnknownParameter", "RouteType"),
    # out of range, wrong values
    ("CreateVpc", {"VpcName": "x" * 61, "CidrBlock": "10.0.0.0/16"}, "InvalidParameterValue", "VpcName"),
    ("CreateVpc", {"VpcName": "v", "CidrBlock": "8.8.0.0/16"}, "InvalidParameterValue", "CidrBlock"),
    ("CreateVpnGateway", {"VpcId": VPC, "VpnGatewayName": "g", "InternetMaxBandwidthOut": 7},
     "InvalidParameterValue", "InternetMaxBandwidthOut"),
    ("CreateCustomerGateway", {"CustomerGatewayName": "c", "IpAddress": "127.0.0.1"},
     "InvalidParameterValue", "IpAddress"),
    ("DescribeVpcs", {"Limit": "101"}, "InvalidParameterValue", "Limit"),
    ("DescribeVpnGateways", {"Offset": -1}, "InvalidParameterValue", "Offset"),
    ("DescribeVpcs", {"VpcIds": ["vpc-BAD"]}, "InvalidParameterValue", "VpcIds.0"),
    ("DescribeVpcs", {"Filters": [{"Name": "colour", "Values": ["red"]}]}, "InvalidParameterValue",
     "Filters.0.Name"),
    ("CreateVpnConnection", conn(IKEOptionsSpecification={"DhGroupName": "GROUP3"}),
     "InvalidParameterValue", "IKEOptionsSpecification.DhGroupName"),
    ("CreateVpnConnection", conn(IKEOptionsSpecification={"IKESaLifetimeSeconds": 59}),
     "InvalidParameterValue", "IKEOptionsSpecification.IKESaLifetimeSeconds"),
    ("CreateVpnConnection", conn(PreShareKey="has space"), "InvalidParameterValue", "PreShareKey"),
    ("CreateVpnConnection", conn(SecurityPolicyDatabases=[{"LocalCidrBlock": "10.9.0.0/24",
                                                           "RemoteCidrBlock": ["192.168.1.0/24"]}]),
     "InvalidParameterValue", "SecurityPolicyDatabases"),
    ("CreateVpnConnection", conn(SecurityPolicyDatabases=[{"LocalCidrBlock": "10.0.0.0/24",
                                                           "RemoteCidrBlock": ["10.0.5.0/24"]}]),
     "InvalidParameterValue", "SecurityPolicyDatabases"),
    ("CreateVpnConnection", conn(IKEOptionsSpecification={"RemoteIdentity": "FQDN"}),
     "InvalidParameterValue", "IKEOptionsSpecification.RemoteFqdnName"),
    ("DescribeVpcTaskResult", {"TaskId": "soon"}, "InvalidParameterValue", "TaskId"),
    # conflicts
    ("DescribeVpcs", {"VpcIds": [VPC], "Filters": [{"Name": "vpc-id", "Values": [VPC]}]},
     "InvalidParameter.Coexist", "VpcIds"),
    ("CreateVpnConnection", conn(IPSECOptionsSpecification={"IntegrityAlgorith": "MD5",
                                                            "IntegrityAlgorithm": "SHA1"}),
     "InvalidParameter.Coexist", "IPSECOptionsSpecification.IntegrityAlgorithm"),
    ("CreateVpnGateway", {"VpcId": VPC, "VpnGatewayName": "g", "InternetMaxBandwidthOut": 5,
                          "InstanceChargePrepaid": {"Period": 1}}, "InvalidParameter.Coexist",
     "InstanceChargePrepaid"),
    # documented, not carried out by vpcd
    ("CreateVpnConnection", conn(IKEOptionsSpecification={"PropoEncryAlgorithm": "SM4"}),
     "UnsupportedOperation", "IKEOptionsSpecification.PropoEncryAlgorithm"),
    ("CreateVpnConnection", conn(IPSECOptionsSpecification={"EncryptAlgorithm": "SM4"}),
     "UnsupportedOperation", "IPSECOptionsSpecification.EncryptAlgorithm"),
    ("CreateVpnConnection", conn(IPSECOptionsSpecification={"IntegrityAlgorith": "SM3"}),
     "UnsupportedOperation", "IPSECOptionsSpecification.IntegrityAlgorith"),
    ("CreateVpnConnection", conn(HealthCheckConfig={"ProbeInterval": 1000}), "UnsupportedOperation",
     "HealthCheckConfig"),
    ("CreateVpnConnection", conn(RouteType="Bgp"), "UnsupportedOperation", "RouteType"),
    ("CreateVpnConnection", conn(BgpConfig={"TunnelCidr": "169.254.0.0/30", "LocalBgpIp": "169.254.0.1",
                                            "RemoteBgpIp": "169.254.0.2"}), "UnsupportedOperation", "BgpConfig"),
    # the new tunnel options: wrong values and combinations
    ("CreateVpnConnection", conn(IKEOptionsSpecification={"IKEVersion": "IKEV3"}), "InvalidParameterValue",
     "IKEOptionsSpecification.IKEVersion"),
    ("CreateVpnConnection", conn(IKEOptionsSpecification={"PropoEncryAlgorithm": "AES256GCM128"}),
     "InvalidParameterValue", "IKEOptionsSpecification.PropoEncryAlgorithm"),
    ("CreateVpnConnection", conn(IKEOptionsSpecification={"IKEVersion": "IKEV2", "ExchangeMode": "AGGRESSIVE"}),
     "InvalidParameterValue", "IKEOptionsSpecification.ExchangeMode"),
    ("CreateVpnConnection", conn(IKEOptionsSpecification={"PropoAuthenAlgorithm": "SHA-384"}),
     "InvalidParameterValue", "IKEOptionsSpecification.PropoAuthenAlgorithm"),
    ("CreateVpnConnection", conn(NegotiationType="lazy"), "InvalidParameterValue", "NegotiationType"),
    ("CreateVpnConnection", conn(DpdEnable=2), "InvalidParameterValue", "DpdEnable"),
    ("CreateVpnConnection", conn(DpdTimeout="29"), "InvalidParameterValue", "DpdTimeout"),
    ("CreateVpnConnection", conn(DpdTimeout="61"), "InvalidParameterValue", "DpdTimeout"),
    ("CreateVpnConnection", conn(DpdAction="retry"), "InvalidParameterValue", "DpdAction"),
    ("CreateVpnConnection", conn(EnableHealthCheck=True, HealthCheckLocalIp="10.0.0.1"),
     "InvalidParameterValue", "HealthCheckLocalIp"),
    ("CreateVpnConnection", conn(EnableHealthCheck=True, HealthCheckRemoteIp="169.254.0.1"),
     "InvalidParameterValue", "HealthCheckRemoteIp"),
    ("CreateVpnConnection", conn(EnableHealthCheck=True, HealthCheckLocalIp="169.254.128.9",
                                 HealthCheckRemoteIp="169.254.128.9"),
     "InvalidParameterValue", "HealthCheckRemoteIp"),
    ("CreateVpnConnection", conn(HealthCheckLocalIp="169.254.128.9"), "InvalidParameterValue",
     "HealthCheckLocalIp"),
    ("CreateVpnConnection", conn(IPSECOptionsSpecification={"IPSECSaLifetimeTraffic": 4294967296}),
     "InvalidParameterValue", "IPSECOptionsSpecification.IPSECSaLifetimeTraffic"),
    ("CreateVpnConnection", conn(Tags=[{"Key": "k" * 128, "Value": "x"}]), "InvalidParameterValue", "Tags.0.Key"),
    ("CreateVpnConnection", conn(Tags=[{"Key": "k", "Value": "v" * 256}]), "InvalidParameterValue",
     "Tags.0.Value"),
    ("CreateVpc", {"VpcName": "v", "CidrBlock": "10.0.0.0/16", "Tags": [{"Key": "k", "Value": "v"}]},
     "UnsupportedOperation", "Tags"),
    ("CreateVpc", {"VpcName": "v", "CidrBlock": "10.0.0.0/16", "Ipv6CidrBlock": "2001:db8::/56"},
     "UnsupportedOperation", "Ipv6CidrBlock"),
    ("CreateVpnGateway", {"VpcId": VPC, "VpnGatewayName": "g", "InternetMaxBandwidthOut": 5, "Type": "SSL"},
     "UnsupportedOperation", "Type"),
    ("CreateCustomerGateway", {"CustomerGatewayName": "c", "IpAddress": "198.51.100.99", "BgpAsn": 65000},
     "UnsupportedOperation", "BgpAsn"),
    # resources that are not there
    ("CreateVpnConnection", conn(VpnGatewayId="vpngw-00000000"), "ResourceNotFound", "VpnGatewayId"),
    ("DeleteCustomerGateway", {"CustomerGatewayId": "cgw-00000000"}, "ResourceNotFound", "CustomerGatewayId"),
    ("DescribeVpcTaskResult", {"TaskId": "3f2b0c1e-7a9d-4c1b-8e2f-5d6a7b8c9d0e"}, "ResourceNotFound", "TaskId"),
]


@pytest.fixture(scope="module")
def world(server):
    """One VPC, gateway and customer gateway that every row may name."""
    api = sdk3util.Api(server, region=sdk3util.unique_region())
    vpc, gw, cgw = api.topology()
    return api, {"vpc": vpc, "gw": gw["VpnGatewayId"], "cgw": cgw["CustomerGatewayId"]}


def fill(v, ids):
    if isinstance(v, str):
        return v.format(**ids) if v.startswith("{") else v
    if isinstance(v, list):
        return [fill(x, ids) for x in v]
    if isinstance(v, dict):
        return {k: fill(x, ids) for k, x in v.items()}
    return v


def counts(api):
    return tuple(api.call(a)["TotalCount"] for a in
                 ("DescribeVpcs", "DescribeVpnGateways", "DescribeCustomerGateways", "DescribeVpnConnections"))


@pytest.mark.parametrize("action,params,code,field", ROWS,
                         ids=[f"{r[0]}-{r[3]}-{r[2]}" for r in ROWS])
def test_bad_input(world, action, params, code, field):
    api, ids = world
    before = counts(api)
    api.err(action, fill(params, ids), code, field)
    assert counts(api) == before, "nothing is written"


@pytest.mark.parametrize("sign", ["HmacSHA1", "HmacSHA256"])
def test_bad_input_in_the_form_style(server, sign):
    # The same refusals through flattened parameters.
    api = sdk3util.Api(server, method="GET", sign=sign, region=sdk3util.unique_region())
    api.err("CreateVpc", {"VpcName": "v", "CidrBlock": "10.0.0.0/16", "Extra": "1"}, "UnknownParameter", "Extra")
    api.err("DescribeVpcs", {"Filters": [{"Name": "vpc-id", "Values": ["vpc-BAD"]}]},
            "InvalidParameterValue", "Filters.0.Values.0")
    api.err("DescribeVpnGateways", {"Limit": "many"}, "InvalidParameter", "Limit")
    assert api.call("DescribeVpcs")["TotalCount"] == 0
