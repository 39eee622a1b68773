"""Documented errors for bad parameters, through the official SDK.

Parameter errors are code 4000 and their message names the parameter;
a resource that does not exist is code 5000 with `<Resource>.NotFound` in
codeDesc (reference §4: the v2 convention for the numeric codes)."""

import pytest

from sdkutil import Client, unique

UNKNOWN_VPC = "vpc-0000zzzz"

CASES = [
    # id, action, params, code, codeDesc, the parameter the message starts with
    ("vpc-cidr-too-big", "CreateVpc", {"vpcName": "n", "cidrBlock": "10.0.0.0/8"}, 4000, "InvalidVpcCidr", "cidrBlock"),
    ("vpc-cidr-public", "CreateVpc", {"vpcName": "n", "cidrBlock": "8.8.0.0/16"}, 4000, "InvalidVpcCidr", "cidrBlock"),
    ("vpc-cidr-garbage", "CreateVpc", {"vpcName": "n", "cidrBlock": "10.0.0.0/33"}, 4000, "InvalidVpcCidr", "cidrBlock"),
    ("vpc-cidr-missing", "CreateVpc", {"vpcName": "n"}, 4000, "MissingParameter", "cidrBlock"),
    ("vpc-name-61", "CreateVpc", {"vpcName": "v" * 61, "cidrBlock": "10.0.0.0/16"}, 4000, "InvalidVpcName", "vpcName"),
    ("vpc-name-missing", "CreateVpc", {"cidrBlock": "10.0.0.0/16"}, 4000, "MissingParameter", "vpcName"),
    ("usergw-addr-missing", "AddUserGw", {"userGwName": "peer"}, 4000, "MissingParameter", "userGwAddr"),
    ("usergw-addr-loopback", "AddUserGw", {"userGwName": "peer", "userGwAddr": "127.0.0.1"}, 4000, "InvalidUserGwAddr", "userGwAddr"),
    ("usergw-addr-multicast", "AddUserGw", {"userGwName": "peer", "userGwAddr": "224.0.0.5"}, 4000, "InvalidUserGwAddr", "userGwAddr"),
    ("usergw-addr-linklocal", "AddUserGw", {"userGwName": "peer", "userGwAddr": "169.254.1.1"}, 4000, "InvalidUserGwAddr", "userGwAddr"),
    ("usergw-addr-garbage", "AddUserGw", {"userGwName": "peer", "userGwAddr": "not-an-ip"}, 4000, "InvalidUserGwAddr", "userGwAddr"),
    ("usergw-name-61", "AddUserGw", {"userGwName": "u" * 61, "userGwAddr": "198.51.100.200"}, 4000, "InvalidUserGwName", "userGwName"),
    ("rungw-unknown-vpc", "RunVpnGw", {"vpcId": UNKNOWN_VPC, "name": "gw", "bandwidth": 5}, 5000, "InvalidVpc.NotFound", "vpcId"),
    ("deletevpc-unknown", "DeleteVpc", {"vpcId": UNKNOWN_VPC}, 5000, "InvalidVpc.NotFound", "vpcId"),
    ("addconn-unknown-vpc", "AddVpnConnEx", {
        "vpcId": UNKNOWN_VPC, "vpnGwId": "vpngw-0000zzzz", "userGwId": "cgw-0000zzzz",
        "userGwCidrBlock": ["10.56.20.1/24"], "preSharedKey": "dgdgd33",
    }, 5000, "InvalidVpc.NotFound", "vpcId"),
    ("usergw-unknown", "DeleteUserGw", {"userGwId": "cgw-0000zzzz"}, 5000, "InvalidUserGw.NotFound", "userGwId"),
]


@pytest.mark.parametrize(
    "action,params,code,code_desc,names", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_parameter(api, action, params, code, code_desc, names):
    api.err(action, params, code=code, code_desc=code_desc, names=names)


def test_bad_parameters_create_nothing(api):
    api.err("CreateVpc", {"vpcName": "v" * 61, "cidrBlock": "10.0.0.0/16"}, 4000, "InvalidVpcName", "vpcName")
    api.err("AddUserGw", {"userGwName": "peer", "userGwAddr": "127.0.0.1"}, 4000, "InvalidUserGwAddr", "userGwAddr")
    assert api.ok("DescribeVpcEx", {})["totalCount"] == 0
    assert api.ok("DescribeUserGw", {})["totalCount"] == 0


def test_run_vpn_gw_bad_bandwidth(api):
    vpc = api.create_vpc()["uniqVpcId"]
    api.err("RunVpnGw", {"vpcId": vpc, "name": unique("gw"), "bandwidth": 7}, 4000, "InvalidParameter", "bandwidth")
    assert api.ok("DescribeVpnGw", {"vpcId": vpc})["totalCount"] == 0


def test_vpc_name_of_60_characters_is_fine(api):
    r = api.ok("CreateVpc", {"vpcName": "v" * 60, "cidrBlock": "192.168.0.0/16"})
    assert api.ok("DescribeVpcEx", {"vpcId": r["uniqVpcId"]})["data"][0]["vpcName"] == "v" * 60


def test_unknown_action(api):
    api.err("NoSuchAction", {}, 4000, "InvalidAction", "Action")


@pytest.mark.parametrize(
    "action,param",
    [("DescribeVpcEx", "vpcName"), ("DescribeVpnGw", "vpnGwName"),
     ("DescribeUserGw", "userGwName"), ("DescribeVpnConn", "vpnConnName")],
)
def test_control_characters_in_name_filters(api, action, param):
    # Names never hold control characters, so such a filter is refused as a
    # bad parameter: never an internal error (a NUL is something PostgreSQL
    # cannot even store).
    for value in ("a\x00b", "a\nb"):
        api.err(action, {param: value}, 4000, "InvalidParameter", param)


def test_secret_id_with_a_nul_is_unknown(api):
    bad = Client(api.server, method=api.method, sign_method=api.sign_method, region=api.region,
                 secret_id="AKID\x00unknown")
    # Looked up like any other SecretId, and not found: not a 6000.
    bad.err("DescribeVpcEx", {}, 4104, "AuthFailure.SecretIdNotFound", "SecretId")
