"""One world, two protocols: what v2 (qcloudapi-sdk-python, the official v2
SDK) creates, 3.0 (tencentcloud-sdk-python) describes, modifies and deletes,
with the same ids, states, tasks and regions; and the other way round."""

import json
import ssl
import time

import pytest
from QcloudApi.qcloudapi import QcloudApi

import sdk3util


class V2:
    """The v2 SDK, pointed at the server's HTTPS listener (it speaks only
    HTTPS with the default certificate store)."""

    def __init__(self, server, region):
        self.server = server
        self.region = region

    def call(self, action, params=None):
        cfg = {"secretId": self.server.secret_id, "secretKey": self.server.secret_key,
               "Region": self.region, "method": "GET", "SignatureMethod": "HmacSHA256"}
        body = QcloudApi("vpc", cfg).call(action, dict(params or {}), req_timeout=30)
        r = json.loads(body)
        assert r["code"] == 0, f"{action} {params!r} -> {r!r}"
        return r

    def wait(self, task_id):
        for _ in range(600):
            d = self.call("DescribeVpcTaskResult", {"taskId": task_id})["data"]
            if d["status"] != 2:
                return d
            time.sleep(0.05)
        raise AssertionError(f"task {task_id} still running")


@pytest.fixture
def v2(server, monkeypatch):
    from QcloudApi.modules.vpc import Vpc
    monkeypatch.setattr(Vpc, "requestHost", server.https)
    monkeypatch.setenv("SSL_CERT_FILE", str(server.cert))
    assert ssl.get_default_verify_paths().cafile == str(server.cert)
    # One region, spelled the v2 way here and the 3.0 way below.
    return V2(server, "sh")


@pytest.fixture
def v3(server):
    return sdk3util.Api(server, region="ap-shanghai")


def test_v2_connection_seen_modified_deleted_through_3(v2, v3):
    vpc = v2.call("CreateVpc", {"vpcName": sdk3util.unique("w2"), "cidrBlock": "10.20.0.0/16"})["uniqVpcId"]
    gw = v2.call("RunVpnGw", {"vpcId": vpc, "name": "gw2", "bandwidth": 5})["data"]["vpnGwId"]
    cgw = v2.call("AddUserGw", {"userGwName": sdk3util.unique("p2"),
                                "userGwAddr": sdk3util.peer_address()})["userGwId"]
    task = v2.call("AddVpnConnEx", {"vpcId": vpc, "vpnGwId": gw, "userGwId": cgw, "vpnConnName": "from-v2",
                                    "preSharedKey": "v2key", "userGwCidrBlock.0": "172.30.0.0/16",
                                    "IKESet.dhGroupName": "group14"})["data"]["taskId"]
    conn_id = v2.wait(task)["output"]["unVpnConnId"]

    # 3.0 sees it: same ids, 3.0 spellings, the v2 peer list as one SPD rule.
    c = v3.conn_by_id(conn_id)
    assert (c["VpcId"], c["VpnGatewayId"], c["CustomerGatewayId"]) == (vpc, gw, cgw)
    assert c["State"] == "AVAILABLE" and c["PreShareKey"] == "v2key"
    assert c["IKEOptionsSpecification"]["DhGroupName"] == "GROUP14"
    assert c["SecurityPolicyDatabaseSet"] == [{"LocalCidrBlock": "10.20.0.0/16",
                                              "RemoteCidrBlock": ["172.30.0.0/16"]}]
    # The v2 task is followed through 3.0 by its number.
    assert v3.call("DescribeVpcTaskResult", {"TaskId": str(task)})["Status"] == "SUCCESS"

    m = v3.call("ModifyVpnConnectionAttribute", {
        "VpnConnectionId": conn_id, "PreShareKey": "v3key",
        "IKEOptionsSpecification": {"PropoEncryAlgorithm": "AES-CBC-192"}})
    assert v3.wait_task(m["RequestId"])["Status"] == "SUCCESS"
    item = v2.call("DescribeVpnConn", {"vpnConnId": conn_id})["data"][0]
    assert item["preSharedKey"] == "v3key"
    assert item["IKEArr"]["propoEncryAlgorithm"] == "aes-cbc-192"
    assert item["IKEArr"]["dhGroupName"] == "group14", "kept"

    d = v3.call("DeleteVpnConnection", {"VpnGatewayId": gw, "VpnConnectionId": conn_id})
    assert v3.wait_task(d["RequestId"])["Status"] == "SUCCESS"
    assert v2.call("DescribeVpnConn", {"vpnConnId": conn_id})["totalCount"] == 0


def test_3_connection_seen_modified_deleted_through_v2(v2, v3):
    vpc_id, cgw = v3.vpc("10.21.0.0/16"), v3.cgw()
    gw = v3.vpn_gw(vpc_id)
    created = v3.conn(gw, cgw, SecurityPolicyDatabases=[{"LocalCidrBlock": "10.21.1.0/24",
                                                         "RemoteCidrBlock": ["172.31.0.0/16"]}])
    conn_id = created["VpnConnection"]["VpnConnectionId"]
    v3.wait_task(created["RequestId"])

    # v2 lists the VPC in region `sh`, and the connection with its spdAcl.
    vpcs = v2.call("DescribeVpcEx", {"vpcId": vpc_id})
    assert vpcs["totalCount"] == 1, vpcs
    item = v2.call("DescribeVpnConn", {"vpnConnId": conn_id})["data"][0]
    assert item["vpcConnStatus"] == 6 and item["spdAcl"] == {"10.21.1.0/24": ["172.31.0.0/16"]}, item
    assert item["IPSECArr"]["encryptAlgorithm"] == "aes-cbc-128"

    task = v2.call("ModifyVpnConnEx", {"vpcId": vpc_id, "vpnGwId": gw["VpnGatewayId"], "vpnConnId": conn_id,
                                       "IPsecSet.pfsDhGroup": "dh-group5"})["data"]["taskId"]
    v2.wait(task)
    assert v3.conn_by_id(conn_id)["IPSECOptionsSpecification"]["PfsDhGroup"] == "DH-GROUP5"

    task = v2.call("DeleteVpnConn", {"vpcId": vpc_id, "vpnGwId": gw["VpnGatewayId"],
                                     "vpnConnId": conn_id})["data"]["taskId"]
    v2.wait(task)
    assert v3.call("DescribeVpnConnections", {"VpnConnectionIds": [conn_id]})["TotalCount"] == 0
    # The rest through v2 too.
    v2.call("DeleteVpnGw", {"vpcId": vpc_id, "vpnGwId": gw["VpnGatewayId"]})
    v2.call("DeleteUserGw", {"userGwId": cgw["CustomerGatewayId"]})
    v2.call("DeleteVpc", {"vpcId": vpc_id})
    assert v3.call("DescribeVpcs", {"VpcIds": [vpc_id]})["TotalCount"] == 0


def test_quotas_are_shared(server, v2):
    # Five VPCs per region: three through each protocol cannot all fit.
    region_v3 = sdk3util.unique_region()
    v3 = sdk3util.Api(server, region=region_v3)
    other = V2(server, region_v3)
    for i in range(3):
        v3.vpc(f"10.{40 + i}.0.0/16")
    for i in range(2):
        other.call("CreateVpc", {"vpcName": sdk3util.unique("q"), "cidrBlock": f"10.{50 + i}.0.0/16"})
    v3.err("CreateVpc", {"VpcName": "sixth", "CidrBlock": "10.60.0.0/16"}, "LimitExceeded", "VpcName")


def test_v2_connection_changed_to_ikev2_through_3_stays_truthful_in_v2(v2, v3):
    vpc = v2.call("CreateVpc", {"vpcName": sdk3util.unique("w5"), "cidrBlock": "10.50.0.0/16"})["uniqVpcId"]
    gw = v2.call("RunVpnGw", {"vpcId": vpc, "name": "gw5", "bandwidth": 5})["data"]["vpnGwId"]
    cgw = v2.call("AddUserGw", {"userGwName": sdk3util.unique("p5"),
                                "userGwAddr": sdk3util.peer_address()})["userGwId"]
    task = v2.call("AddVpnConnEx", {"vpcId": vpc, "vpnGwId": gw, "userGwId": cgw,
                                    "preSharedKey": "v2key5", "userGwCidrBlock.0": "172.31.0.0/16"}
                   )["data"]["taskId"]
    conn_id = v2.wait(task)["output"]["unVpnConnId"]
    # What a v2 tunnel does, as 3.0 reports it: IKEv1, DPD on (30 s,
    # restart), initiated at once, no health check.
    c = v3.conn_by_id(conn_id)
    assert c["IKEOptionsSpecification"]["IKEVersion"] == "IKEV1"
    assert (c["DpdEnable"], c["DpdTimeout"], c["DpdAction"], c["NegotiationType"]) == (1, "30", "restart", "active")
    assert "ikeVersion" not in v2.call("DescribeVpnConn", {"vpnConnId": conn_id})["data"][0]["IKEArr"]

    m = v3.call("ModifyVpnConnectionAttribute", {
        "VpnConnectionId": conn_id,
        "IKEOptionsSpecification": {"IKEVersion": "IKEV2", "PropoEncryAlgorithm": "AES256GCM128",
                                    "PropoAuthenAlgorithm": "SHA-256", "DhGroupName": "GROUP19"},
        "IPSECOptionsSpecification": {"EncryptAlgorithm": "AES128GCM128", "PfsDhGroup": "DH-GROUP21"},
        "DpdTimeout": "50", "NegotiationType": "passive"})
    assert v3.wait_task(m["RequestId"])["Status"] == "SUCCESS"
    # v2 shows the new values in its own spelling, and the IKE version
    # (a field it only shows for IKEv2 tunnels).
    item = v2.call("DescribeVpnConn", {"vpnConnId": conn_id})["data"][0]
    assert item["IKEArr"]["ikeVersion"] == "ikev2"
    assert (item["IKEArr"]["propoEncryAlgorithm"], item["IKEArr"]["propoAuthenAlgorithm"],
            item["IKEArr"]["dhGroupName"]) == ("aes256gcm128", "sha-256", "group19")
    assert (item["IPSECArr"]["encryptAlgorithm"], item["IPSECArr"]["pfsDhGroup"]) == ("aes128gcm128", "dh-group21")
    # A v2 modification keeps what 3.0 set.
    task = v2.call("ModifyVpnConnEx", {"vpcId": vpc, "vpnGwId": gw, "vpnConnId": conn_id,
                                       "preSharedKey": "v2key6"})["data"]["taskId"]
    v2.wait(task)
    c = v3.conn_by_id(conn_id)
    assert (c["IKEOptionsSpecification"]["IKEVersion"], c["DpdTimeout"], c["NegotiationType"],
            c["PreShareKey"]) == ("IKEV2", "50", "passive", "v2key6")
