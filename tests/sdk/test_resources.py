"""VPCs, VPN gateways and peer (user) gateways through the official SDK,
for GET and POST and for HmacSHA1 and HmacSHA256."""

import ipaddress
import re

from sdkutil import unique

TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
VPC_RE = re.compile(r"^vpc-[a-z0-9]{8}$")
VPNGW_RE = re.compile(r"^vpngw-[a-z0-9]{8}$")
CGW_RE = re.compile(r"^cgw-[a-z0-9]{8}$")
GW_POOL = ipaddress.ip_network("203.0.113.0/24")


def test_create_and_describe_vpc(api):
    name = unique("vpc")
    r = api.ok("CreateVpc", {"vpcName": name, "cidrBlock": "10.0.0.0/16"})
    assert isinstance(r["vpcId"], int) and not isinstance(r["vpcId"], bool), r
    assert VPC_RE.match(r["uniqVpcId"]), r
    un = r["uniqVpcId"]

    listed = api.ok("DescribeVpcEx", {})
    assert listed["totalCount"] == 1, listed
    (item,) = listed["data"]
    assert item["unVpcId"] == un
    assert item["vpcId"] == r["vpcId"]
    assert item["vpcName"] == name
    assert item["cidrBlock"] == "10.0.0.0/16"
    assert TIME_RE.match(item["createTime"]), item

    # Filters by either id form.
    for ref in (un, r["vpcId"]):
        one = api.ok("DescribeVpcEx", {"vpcId": ref})
        assert one["totalCount"] == 1 and one["data"][0]["unVpcId"] == un, one

    api.ok("DeleteVpc", {"vpcId": un})
    assert api.ok("DescribeVpcEx", {})["totalCount"] == 0


def test_vpn_gateway_lifecycle(api):
    vpc = api.create_vpc()["uniqVpcId"]
    name = unique("gw")
    r = api.ok("RunVpnGw", {"vpcId": vpc, "name": name, "bandwidth": 5})
    gw = r["data"]["vpnGwId"]
    assert VPNGW_RE.match(gw), r
    addr = r["data"]["vpnGwAddress"]
    assert ipaddress.ip_address(addr) in GW_POOL, r

    d = api.ok("DescribeVpnGw", {"vpnGwId": gw})
    assert d["totalCount"] == 1, d
    (item,) = d["data"]
    assert item["unVpnGwId"] == gw
    assert item["vpnGwName"] == name
    assert item["unVpcId"] == vpc
    assert item["vpnGwAddress"] == addr
    assert item["bandwidth"] == 5
    assert TIME_RE.match(item["createTime"]), item
    assert api.ok("DescribeVpnGw", {"vpcId": vpc})["totalCount"] == 1

    new_name = unique("gw-renamed")
    api.ok("ModifyVpnGw", {"vpcId": vpc, "vpnGwId": gw, "vpnGwName": new_name})
    assert api.ok("DescribeVpnGw", {"vpnGwId": gw})["data"][0]["vpnGwName"] == new_name

    # A VPC with a gateway cannot be deleted (5100: refused by the
    # resource's state, docs/actions.md "Error codes").
    api.err("DeleteVpc", {"vpcId": vpc}, 5100, "InvalidVpc.CannotDelete", "vpcId")
    assert api.ok("DescribeVpcEx", {"vpcId": vpc})["totalCount"] == 1

    api.ok("DeleteVpnGw", {"vpcId": vpc, "vpnGwId": gw})
    assert api.ok("DescribeVpnGw", {"vpcId": vpc})["totalCount"] == 0
    api.ok("DeleteVpc", {"vpcId": vpc})
    assert api.ok("DescribeVpcEx", {})["totalCount"] == 0


def test_user_gateway_lifecycle(api):
    name = unique("peer")
    r = api.ok("AddUserGw", {"userGwName": name, "userGwAddr": "198.51.100.7"})
    ugw = r["userGwId"]
    assert CGW_RE.match(ugw), r

    d = api.ok("DescribeUserGw", {"userGwId": ugw})
    assert d["totalCount"] == 1, d
    (item,) = d["data"]
    assert item["unUserGwId"] == ugw
    assert item["userGwName"] == name
    assert item["userGwAddr"] == "198.51.100.7"
    assert TIME_RE.match(item["createTime"]), item
    assert api.ok("DescribeUserGw", {})["totalCount"] == 1

    new_name = unique("peer-renamed")
    api.ok("ModifyUserGw", {"userGwId": ugw, "userGwName": new_name})
    assert api.ok("DescribeUserGw", {"userGwId": ugw})["data"][0]["userGwName"] == new_name

    api.ok("DeleteUserGw", {"userGwId": ugw})
    assert api.ok("DescribeUserGw", {})["totalCount"] == 0


def test_run_vpn_gw_defaults_and_echoes(api):
    # docs/actions.md, RunVpnGw: bandwidth defaults to 5, chargeType to
    # POSTPAID_BY_HOUR; period is echoed (absent: null), in the answer and
    # in DescribeVpnGw.
    vpc = api.create_vpc()["uniqVpcId"]
    plain = api.ok("RunVpnGw", {"vpcId": vpc, "name": unique("gw")})["data"]
    assert (plain["chargeType"], plain["period"]) == ("POSTPAID_BY_HOUR", None), plain
    dated = api.ok("RunVpnGw", {"vpcId": vpc, "name": unique("gw"), "period": 12, "bandwidth": 20})["data"]
    assert (dated["chargeType"], dated["period"]) == ("POSTPAID_BY_HOUR", 12), dated
    shown = {g["unVpnGwId"]: g for g in api.ok("DescribeVpnGw", {"vpcId": vpc})["data"]}
    assert (shown[plain["vpnGwId"]]["bandwidth"], shown[plain["vpnGwId"]]["period"]) == (5, None), shown
    assert (shown[dated["vpnGwId"]]["bandwidth"], shown[dated["vpnGwId"]]["period"]) == (20, 12), shown
