"""Every 3.0 action through the official SDK (typed models: an answer the
models cannot hold fails, see pytest.ini) in every request style, and
through tccli."""

import json

import pytest

import sdk3util


def test_vpc_gateway_customer_gateway_lifecycle(api):
    vpc_id = api.vpc("10.8.0.0/16")
    api.call("ModifyVpcAttribute", {"VpcId": vpc_id, "VpcName": "renamed", "EnableMulticast": "false"})
    v = api.call("DescribeVpcs", {"Filters": [{"Name": "vpc-name", "Values": ["enam"]}]})
    assert [x["VpcName"] for x in v["VpcSet"]] == ["renamed"], v

    gw = api.vpn_gw(vpc_id)
    assert gw["State"] == "AVAILABLE" and gw["Type"] == "IPSEC" and gw["VpcId"] == vpc_id, gw
    assert gw["InternetMaxBandwidthOut"] == 5 and gw["InstanceChargeType"] == "POSTPAID_BY_HOUR"
    pre = api.call("CreateVpnGateway", {"VpcId": vpc_id, "VpnGatewayName": "prepaid",
                                         "InternetMaxBandwidthOut": 10, "InstanceChargeType": "PREPAID",
                                         "InstanceChargePrepaid": {"Period": 12}})["VpnGateway"]
    assert pre["RenewFlag"] == "NOTIFY_AND_AUTO_RENEW", pre
    api.call("ModifyVpnGatewayAttribute", {"VpnGatewayId": gw["VpnGatewayId"], "VpnGatewayName": "gw-renamed"})
    r = api.call("DescribeVpnGateways", {"Filters": [{"Name": "vpc-id", "Values": [vpc_id]},
                                                     {"Name": "vpn-gateway-name", "Values": ["gw-renamed", "prepaid"]}],
                                         "Limit": 1})
    assert r["TotalCount"] == 2 and len(r["VpnGatewaySet"]) == 1, r
    r = api.call("DescribeVpnGateways", {"VpnGatewayIds": [gw["VpnGatewayId"]]})
    assert r["VpnGatewaySet"][0]["VpnGatewayName"] == "gw-renamed", r

    cgw = api.cgw("198.51.100.200")
    api.call("ModifyCustomerGatewayAttribute", {"CustomerGatewayId": cgw["CustomerGatewayId"],
                                                "CustomerGatewayName": "peer-renamed"})
    r = api.call("DescribeCustomerGateways", {"Filters": [{"Name": "ip-address", "Values": ["198.51.100.200"]}]})
    assert [c["CustomerGatewayName"] for c in r["CustomerGatewaySet"]] == ["peer-renamed"], r
    vendors = api.call("DescribeCustomerGatewayVendors")["CustomerGatewayVendorSet"]
    assert {"strongSwan", "Libreswan", "Cisco", "Juniper"} <= {v["VendorName"] for v in vendors}

    # Deletions in dependency order; in-use refusals first.
    api.err("DeleteVpc", {"VpcId": vpc_id}, "ResourceInUse", "VpcId")
    for g in (gw, pre):
        api.call("DeleteVpnGateway", {"VpnGatewayId": g["VpnGatewayId"]})
    api.call("DeleteCustomerGateway", {"CustomerGatewayId": cgw["CustomerGatewayId"]})
    sdk3util.next_second()  # the same DeleteVpc again: a new signature
    api.call("DeleteVpc", {"VpcId": vpc_id})
    assert api.call("DescribeVpcs")["TotalCount"] == 0
    assert api.call("DescribeVpnGateways")["TotalCount"] == 0
    assert api.call("DescribeCustomerGateways")["TotalCount"] == 0


def test_connection_lifecycle(api):
    vpc_id, gw, cgw = api.topology()
    created = api.conn(gw, cgw, IKEOptionsSpecification={"PropoEncryAlgorithm": "AES-CBC-256",
                                                         "DhGroupName": "GROUP14"},
                       IPSECOptionsSpecification={"PfsDhGroup": "DH-GROUP2"})
    conn = created["VpnConnection"]
    assert conn["State"] == "PENDING", conn
    task = api.wait_task(created["RequestId"])
    assert task["Status"] == "SUCCESS", task
    assert task["Result"] == [{"ResourceId": conn["VpnConnectionId"], "Status": "SUCCESS"}], task
    c = api.conn_by_id(conn["VpnConnectionId"])
    assert c["State"] == "AVAILABLE" and c["NetStatus"] == "UNAVAILABLE", c
    assert c["IKEOptionsSpecification"]["PropoEncryAlgorithm"] == "AES-CBC-256"
    assert c["IKEOptionsSpecification"]["LocalAddress"] == gw["PublicIpAddress"]
    assert c["IKEOptionsSpecification"]["RemoteAddress"] == cgw["IpAddress"]
    assert c["IPSECOptionsSpecification"]["PfsDhGroup"] == "DH-GROUP2"
    assert c["IPSECOptionsSpecification"]["EncryptAlgorithm"] == "AES-CBC-128", "3.0 default"
    assert c["SecurityPolicyDatabaseSet"] == [{"LocalCidrBlock": "10.0.0.0/24",
                                              "RemoteCidrBlock": ["192.168.10.0/24"]}]
    # 3.0's documented defaults for the options v2 lacks.
    assert (c["DpdEnable"], c["DpdTimeout"], c["DpdAction"], c["NegotiationType"]) == (0, "30", "restart", "active")
    assert c["IKEOptionsSpecification"]["IKEVersion"] == "IKEV1"
    assert c["IPSECOptionsSpecification"]["IPSECSaLifetimeTraffic"] == 4096000000
    assert (c["EnableHealthCheck"], c["HealthCheckLocalIp"], c["TagSet"]) == (False, "", [])
    assert c.get("HealthCheckStatus") is None, "not returned without a health check"

    # Filters: AND across names, OR within values; paging.
    second = api.conn(gw, api.cgw())
    api.wait_task(second["RequestId"])
    both = api.call("DescribeVpnConnections", {"Filters": [
        {"Name": "vpn-gateway-id", "Values": [gw["VpnGatewayId"]]},
        {"Name": "vpn-connection-name", "Values": [conn["VpnConnectionName"],
                                                   second["VpnConnection"]["VpnConnectionName"]]}]})
    assert both["TotalCount"] == 2, both
    one = api.call("DescribeVpnConnections", {"Filters": [
        {"Name": "vpc-id", "Values": [vpc_id]},
        {"Name": "customer-gateway-id", "Values": [cgw["CustomerGatewayId"]]}]})
    assert [x["VpnConnectionId"] for x in one["VpnConnectionSet"]] == [conn["VpnConnectionId"]], one
    page = api.call("DescribeVpnConnections", {"Offset": 1, "Limit": 1})
    assert page["TotalCount"] == 2 and len(page["VpnConnectionSet"]) == 1
    assert page["VpnConnectionSet"][0]["VpnConnectionId"] == conn["VpnConnectionId"], "newest first"

    m = api.call("ModifyVpnConnectionAttribute", {
        "VpnConnectionId": conn["VpnConnectionId"], "VpnConnectionName": "renamed-conn",
        "IPSECOptionsSpecification": {"IntegrityAlgorith": "MD5", "IPSECSaLifetimeSeconds": 3600}})
    assert api.wait_task(m["RequestId"])["Status"] == "SUCCESS"
    c = api.conn_by_id(conn["VpnConnectionId"])
    assert c["VpnConnectionName"] == "renamed-conn"
    assert c["IPSECOptionsSpecification"]["IntegrityAlgorithm"] == "MD5"
    assert c["IPSECOptionsSpecification"]["IPSECSaLifetimeSeconds"] == 3600
    assert c["IPSECOptionsSpecification"]["PfsDhGroup"] == "DH-GROUP2", "kept"

    cfg = api.call("DownloadCustomerGatewayConfiguration", {
        "VpnGatewayId": gw["VpnGatewayId"], "VpnConnectionId": conn["VpnConnectionId"],
        "CustomerGatewayVendor": {"VendorName": "strongSwan", "Platform": "Linux",
                                  "SoftwareVersion": "strongSwan 5.8+ (swanctl.conf)"},
        "InterfaceName": "eth0"})
    assert gw["PublicIpAddress"] in cfg["CustomerGatewayConfiguration"], cfg
    # Libreswan cannot negotiate this connection's PFS group 2: refused, naming the
    # connection's setting and what to change.
    e = api.err("DownloadCustomerGatewayConfiguration", {
        "VpnGatewayId": gw["VpnGatewayId"], "VpnConnectionId": conn["VpnConnectionId"],
        "CustomerGatewayVendor": {"VendorName": "Libreswan", "Platform": "Linux",
                                  "SoftwareVersion": "Libreswan 4.x and 5.x (ipsec.conf)"},
        "InterfaceName": "eth0"}, "InvalidParameterValue", "IPSECOptionsSpecification.PfsDhGroup")
    assert "modify the connection to PFS with DH group 14" in e.message, e.message

    r = api.call("ResetVpnConnection", {"VpnGatewayId": gw["VpnGatewayId"],
                                        "VpnConnectionId": conn["VpnConnectionId"]})
    assert api.wait_task(r["RequestId"])["Status"] == "SUCCESS"

    # DeleteVpnConnection signs the same content as the ResetVpnConnection
    # above (TC3 does not sign the action): it needs a new second.
    sdk3util.next_second()
    for c in (conn, second["VpnConnection"]):
        d = api.call("DeleteVpnConnection", {"VpnGatewayId": gw["VpnGatewayId"],
                                             "VpnConnectionId": c["VpnConnectionId"]})
        assert api.wait_task(d["RequestId"])["Status"] == "SUCCESS"
    assert api.call("DescribeVpnConnections")["TotalCount"] == 0


def test_busy_connection_refuses_changes(tc3):
    _, gw, cgw = tc3.topology()
    created = tc3.conn(gw, cgw)
    conn_id = created["VpnConnection"]["VpnConnectionId"]
    tc3.err("DeleteVpnConnection", {"VpnGatewayId": gw["VpnGatewayId"], "VpnConnectionId": conn_id},
            "UnsupportedOperation.InvalidState", "VpnConnectionId")
    tc3.wait_task(created["RequestId"])


def test_tccli_unfolded_and_json_arguments(server, tmp_path):
    region = sdk3util.unique_region()
    name = sdk3util.unique("cli")
    rc, out, err = sdk3util.tccli(server, tmp_path, "CreateVpc", "--cli-unfold-argument",
                                  "--VpcName", name, "--CidrBlock", "10.3.0.0/16", region=region)
    assert rc == 0, err
    vpc_id = json.loads(out)["Vpc"]["VpcId"]
    rc, out, err = sdk3util.tccli(server, tmp_path, "CreateVpnGateway", "--cli-unfold-argument",
                                  "--VpcId", vpc_id, "--VpnGatewayName", "g",
                                  "--InternetMaxBandwidthOut", "5", region=region)
    assert rc == 0, err
    gw_id = json.loads(out)["VpnGateway"]["VpnGatewayId"]
    rc, out, err = sdk3util.tccli(server, tmp_path, "CreateCustomerGateway", "--CustomerGatewayName", "p",
                                  "--IpAddress", sdk3util.peer_address(), region=region)
    assert rc == 0, err
    cgw_id = json.loads(out)["CustomerGateway"]["CustomerGatewayId"]
    rc, out, err = sdk3util.tccli(
        server, tmp_path, "CreateVpnConnection", "--cli-unfold-argument",
        "--VpnGatewayId", gw_id, "--CustomerGatewayId", cgw_id, "--VpnConnectionName", "c",
        "--PreShareKey", "k123", "--SecurityPolicyDatabases.0.LocalCidrBlock", "10.3.0.0/24",
        "--SecurityPolicyDatabases.0.RemoteCidrBlock", "172.20.0.0/16",
        "--IKEOptionsSpecification.DhGroupName", "GROUP5", region=region)
    assert rc == 0, err
    conn = json.loads(out)["VpnConnection"]
    assert conn["IKEOptionsSpecification"]["DhGroupName"] == "GROUP5", conn
    # JSON arguments (tccli's default form).
    rc, out, err = sdk3util.tccli(server, tmp_path, "DescribeVpnConnections", "--Filters",
                                  json.dumps([{"Name": "vpn-gateway-id", "Values": [gw_id]}]), region=region)
    assert rc == 0, err
    assert json.loads(out)["TotalCount"] == 1
    # An error: non-zero exit, the code on stderr or stdout.
    rc, out, err = sdk3util.tccli(server, tmp_path, "DeleteVpc", "--VpcId", "vpc-00000000", region=region)
    assert rc != 0
    assert "ResourceNotFound" in out + err, (out, err)
