"""AddVpnConnEx as the seed document shows it, through the official SDK,
then DescribeVpcTaskResult and DescribeVpnConn with every default."""

import re

import pytest

from sdkutil import unique

SEED_KEYS = {"vpnGwId", "userGwId", "vpnConnId", "taskId", "vpnConnStatus", "preSharedKey", "userGwSubnetList"}


@pytest.fixture
def topology(api):
    """A VPC (10.0.0.0/16, not overlapping the seed's 10.56.20.0/24), a VPN
    gateway in it and a peer gateway."""
    vpc = api.create_vpc(cidr="10.0.0.0/16")
    gw = api.run_vpn_gw(vpc["uniqVpcId"])
    ugw, ugw_addr = api.add_user_gw()
    return {
        "vpcId": vpc["uniqVpcId"],
        "vpnGwId": gw["vpnGwId"],
        "vpnGwAddress": gw["vpnGwAddress"],
        "userGwId": ugw,
        "userGwAddr": ugw_addr,
    }


def seed_params(t):
    # Exactly the seed example's parameters (its ids replaced by ours).
    return {
        "vpcId": t["vpcId"],
        "userGwId": t["userGwId"],
        "vpnGwId": t["vpnGwId"],
        "userGwCidrBlock": ["10.56.20.1/24"],  # the SDK sends userGwCidrBlock.0
        "preSharedKey": "dgdgd33",
    }


def add_and_wait(api, params):
    r = api.ok("AddVpnConnEx", params)
    task = api.wait_task(r["data"]["taskId"])
    assert task["status"] == 0, task
    return r, task


def describe_one(api, t):
    d = api.ok("DescribeVpnConn", {"vpcId": t["vpcId"], "vpnGwId": t["vpnGwId"]})
    assert d["totalCount"] == 1, d
    assert len(d["data"]) == 1, d
    return d["data"][0]


def test_seed_example(api, topology):
    t = topology
    r = api.ok("AddVpnConnEx", seed_params(t))
    data = r["data"]
    assert set(data) == SEED_KEYS, data
    assert data["vpnGwId"] == t["vpnGwId"]
    assert data["userGwId"] == t["userGwId"]
    assert data["vpnConnId"] == 0
    assert isinstance(data["taskId"], int) and not isinstance(data["taskId"], bool) and data["taskId"] > 0, data
    assert data["vpnConnStatus"] == 0
    assert data["preSharedKey"] == "dgdgd33"
    assert data["userGwSubnetList"] == ["10.56.20.1/24"]

    task = api.wait_task(data["taskId"])
    assert task["status"] == 0, task

    c = describe_one(api, t)
    assert c["vpcConnStatus"] == 6, c
    assert c["netStatus"] == "unavailable", c  # API-only mode negotiates nothing
    assert re.match(r"^vpnconn-[a-z0-9]{8}$", c["vpnConnName"]), c
    assert re.match(r"^vpnx-[a-z0-9]{8}$", c["unVpnConnId"]), c
    assert c["unVpcId"] == t["vpcId"]
    assert c["unVpnGwId"] == t["vpnGwId"]
    assert c["unUserGwId"] == t["userGwId"]
    assert c["vpnGwAddress"] == t["vpnGwAddress"]
    assert c["userGwAddress"] == t["userGwAddr"]
    assert c["preSharedKey"] == "dgdgd33"
    assert c["destinationCidr"] == ["10.56.20.1/24"]
    assert c["vpnProto"] == "ip-sec"

    ike = c["IKEArr"]
    assert ike["propoEncryAlgorithm"] == "3des-cbc", ike
    assert ike["propoAuthenAlgorithm"] == "md5", ike
    assert ike["exchangeMode"] == "main", ike
    assert ike["localIdentity"] == "address", ike
    assert ike["localAddress"] == t["vpnGwAddress"], ike
    assert ike["remoteIdentity"] == "address", ike
    assert ike["remoteAddress"] == t["userGwAddr"], ike
    assert ike["dhGroupName"] == "group2", ike
    assert ike["ikeSaLifetimeSeconds"] == "86400", ike

    ipsec = c["IPSECArr"]
    assert ipsec["encryptAlgorithm"] == "3des-cbc", ipsec
    assert ipsec["integrityAlgorith"] == "md5", ipsec
    assert ipsec["ipsecSaLifetimeSeconds"] == "3600", ipsec
    assert ipsec["ipsecSaLifetimeTraffic"] == "1843200", ipsec
    # The seed's value list for pfsDhGroup is "null, dh-group1, ...": the
    # default is that value, "null".
    assert ipsec["pfsDhGroup"] == "null", ipsec

    # The task's result names the new connection (docs/actions.md,
    # DescribeVpcTaskResult: on success the connection's ids).
    assert task["action"] == "create", task
    assert task["output"] == {
        "vpnConnId": c["vpnConnId"],
        "unVpnConnId": c["unVpnConnId"],
        "vpnGwId": t["vpnGwId"],
        "userGwId": t["userGwId"],
    }, task

    # Filtering by the connection's id (either form) finds it.
    for ref in (c["unVpnConnId"], c["vpnConnId"]):
        d = api.ok("DescribeVpnConn", {"vpnConnId": ref})
        assert d["totalCount"] == 1 and d["data"][0]["unVpnConnId"] == c["unVpnConnId"], d


def test_named_connection(api, topology):
    t = topology
    name = unique("conn")
    p = dict(seed_params(t), vpnConnName=name)
    add_and_wait(api, p)
    assert describe_one(api, t)["vpnConnName"] == name


@pytest.mark.parametrize(
    "override,code,code_desc,names",
    [
        ({"vpnGwId": "vpngw-0000zzzz"}, 5000, "InvalidVpnGw.NotFound", "vpnGwId"),
        ({"userGwId": "cgw-0000zzzz"}, 5000, "InvalidUserGw.NotFound", "userGwId"),
        ({"vpcId": "vpc-0000zzzz"}, 5000, "InvalidVpc.NotFound", "vpcId"),
        ({"vpnConnName": "c" * 61}, 4000, "InvalidVpnConnName", "vpnConnName"),
        ({"preSharedKey": None}, 4000, "MissingParameter", "preSharedKey"),
        ({"userGwCidrBlock": ["10.56.20.1/33"]}, 4000, "InvalidParameter", "userGwCidrBlock.0"),
        ({"IKESet": {"dhGroupName": "group3"}}, 4000, "InvalidParameter", "IKESet.dhGroupName"),
        ({"IKESet": {"ikeSaLifetimeSeconds": 59}}, 4000, "InvalidParameter", "IKESet.ikeSaLifetimeSeconds"),
        ({"IPsecSet": {"pfsDhGroup": "group2"}}, 4000, "InvalidParameter", "IPsecSet.pfsDhGroup"),
    ],
    ids=["vpngw", "usergw", "vpc", "name-61", "psk-missing", "cidr", "dh-group", "ike-lifetime", "pfs"],
)
def test_add_vpn_conn_errors(api, topology, override, code, code_desc, names):
    p = seed_params(topology)
    for k, v in override.items():
        if v is None:
            p.pop(k)
        else:
            p[k] = v
    api.err("AddVpnConnEx", p, code, code_desc, names)
    assert api.ok("DescribeVpnConn", {"vpcId": topology["vpcId"]})["totalCount"] == 0


@pytest.mark.parametrize(
    "sets",
    [
        {"IKESet": {"dhGroupName": "group14"}},  # IKESet.dhGroupName
        {"IKESet": [{"dhGroupName": "group14"}]},  # IKESet.0.dhGroupName (older docs)
    ],
    ids=["IKESet.x", "IKESet.0.x"],
)
def test_nested_sets_the_sdk_way(api, topology, sets):
    t = topology
    add_and_wait(api, dict(seed_params(t), **sets))
    c = describe_one(api, t)
    assert c["IKEArr"]["dhGroupName"] == "group14", c
    # Everything else keeps its default.
    assert c["IKEArr"]["propoEncryAlgorithm"] == "3des-cbc", c
    assert c["IKEArr"]["ikeSaLifetimeSeconds"] == "86400", c
    assert c["IPSECArr"]["pfsDhGroup"] == "null", c


def test_full_ike_and_ipsec_sets(api, topology):
    t = topology
    sets = {
        "IKESet": {
            "propoEncryAlgorithm": "aes-cbc-256",
            "propoAuthenAlgorithm": "sha",
            "exchangeMode": "aggressive",
            "localIdentity": "fqdn",
            "localFqdnName": "gw.example.com",
            "remoteIdentity": "address",
            "remoteAddress": t["userGwAddr"],
            "dhGroupName": "group14",
            "ikeSaLifetimeSeconds": 3600,
        },
        "IPsecSet": {
            "encryptAlgorithm": "aes-cbc-128",
            "integrityAlgorith": "sha",
            "ipsecSaLifetimeSeconds": 1800,
            "ipsecSaLifetimeTraffic": 2560,
            "pfsDhGroup": "dh-group14",
        },
    }
    add_and_wait(api, dict(seed_params(t), **sets))
    c = describe_one(api, t)
    ike, ipsec = c["IKEArr"], c["IPSECArr"]
    assert ike["propoEncryAlgorithm"] == "aes-cbc-256", ike
    assert ike["propoAuthenAlgorithm"] == "sha", ike
    assert ike["exchangeMode"] == "aggressive", ike
    assert ike["localIdentity"] == "fqdn", ike
    assert ike["localFqdnName"] == "gw.example.com", ike
    assert ike["remoteIdentity"] == "address", ike
    assert ike["remoteAddress"] == t["userGwAddr"], ike
    assert ike["dhGroupName"] == "group14", ike
    assert ike["ikeSaLifetimeSeconds"] == "3600", ike
    assert ipsec["encryptAlgorithm"] == "aes-cbc-128", ipsec
    assert ipsec["integrityAlgorith"] == "sha", ipsec
    assert ipsec["ipsecSaLifetimeSeconds"] == "1800", ipsec
    assert ipsec["ipsecSaLifetimeTraffic"] == "2560", ipsec
    assert ipsec["pfsDhGroup"] == "dh-group14", ipsec


def test_modify_and_delete_connection(api, topology):
    t = topology
    add_and_wait(api, seed_params(t))
    c = describe_one(api, t)
    conn = c["unVpnConnId"]

    r = api.ok("ModifyVpnConnEx", {
        "vpcId": t["vpcId"], "vpnGwId": t["vpnGwId"], "vpnConnId": conn,
        "preSharedKey": "newkey42", "IKESet": {"dhGroupName": "group5"},
    })
    assert api.wait_task(r["data"]["taskId"])["status"] == 0
    c = describe_one(api, t)
    assert c["preSharedKey"] == "newkey42", c
    assert c["IKEArr"]["dhGroupName"] == "group5", c
    assert c["destinationCidr"] == ["10.56.20.1/24"], c  # unchanged
    assert c["vpcConnStatus"] == 6, c

    # Gateways in use cannot go (5100: refused by the resource's state).
    api.err("DeleteUserGw", {"userGwId": t["userGwId"]}, 5100, "InvalidUserGw.CannotDelete", "userGwId")
    api.err("DeleteVpnGw", {"vpcId": t["vpcId"], "vpnGwId": t["vpnGwId"]}, 5100, "InvalidVpnGw.CannotDelete",
            "vpnGwId")

    r = api.ok("DeleteVpnConn", {"vpcId": t["vpcId"], "vpnGwId": t["vpnGwId"], "vpnConnId": conn})
    assert api.wait_task(r["data"]["taskId"])["status"] == 0
    assert api.ok("DescribeVpnConn", {"vpcId": t["vpcId"]})["totalCount"] == 0
    api.ok("DeleteUserGw", {"userGwId": t["userGwId"]})
    api.ok("DeleteVpnGw", {"vpcId": t["vpcId"], "vpnGwId": t["vpnGwId"]})
    api.ok("DeleteVpc", {"vpcId": t["vpcId"]})


def test_numeric_ids_are_accepted(api, topology):
    # "VPC ID or unified ID": the older numeric ids work as inputs too.
    t = topology
    vpc_num = api.ok("DescribeVpcEx", {"vpcId": t["vpcId"]})["data"][0]["vpcId"]
    gw_num = api.ok("DescribeVpnGw", {"vpnGwId": t["vpnGwId"]})["data"][0]["vpnGwId"]
    ugw_num = api.ok("DescribeUserGw", {"userGwId": t["userGwId"]})["data"][0]["userGwId"]
    assert all(isinstance(x, int) for x in (vpc_num, gw_num, ugw_num))
    r, _ = add_and_wait(api, dict(seed_params(t), vpcId=vpc_num, vpnGwId=gw_num, userGwId=ugw_num))
    assert r["data"]["vpnGwId"] == t["vpnGwId"], r  # answered with the unified ids, as in the seed
    assert r["data"]["userGwId"] == t["userGwId"], r
    c = describe_one(api, t)
    assert (c["vpcId"], c["vpnGwId"], c["userGwId"]) == (vpc_num, gw_num, ugw_num), c


def test_spd_acl(api, topology):
    t = topology
    p = seed_params(t)
    del p["userGwCidrBlock"]
    p["spdAcl"] = '{"10.0.0.5/24":["172.123.10.5/16"]}'  # the seed's example
    add_and_wait(api, p)
    c = describe_one(api, t)
    assert c["sourceCidr"] == ["10.0.0.5/24"], c
    assert c["destinationCidr"] == ["172.123.10.5/16"], c


def test_spd_acl_and_cidr_block_together_are_refused(api, topology):
    p = dict(seed_params(topology), spdAcl='{"10.0.0.5/24":["172.123.10.5/16"]}')
    api.err("AddVpnConnEx", p, 4000, "InvalidParameter", "spdAcl")


def test_peer_range_overlapping_the_vpc_is_refused(api):
    vpc = api.create_vpc(cidr="10.56.0.0/16")["uniqVpcId"]
    gw = api.run_vpn_gw(vpc)["vpnGwId"]
    ugw, _ = api.add_user_gw()
    api.err("AddVpnConnEx", {"vpcId": vpc, "vpnGwId": gw, "userGwId": ugw,
                             "userGwCidrBlock": ["10.56.20.1/24"], "preSharedKey": "dgdgd33"},
            4000, "InvalidParameter", "userGwCidrBlock.0")


def test_one_tunnel_per_gateway_pair(api, topology):
    # Published limit: one tunnel per (customer gateway, VPN gateway) pair.
    t = topology
    add_and_wait(api, seed_params(t))
    api.err("AddVpnConnEx", dict(seed_params(t), userGwCidrBlock=["10.57.0.0/24"]),
            5100, "VpnConnLimitExceeded", "vpnGwId")
    # The refused request left nothing behind.
    assert api.ok("DescribeVpnConn", {"vpcId": t["vpcId"]})["totalCount"] == 1


def test_connection_name_in_use(api, topology):
    t = topology
    name = unique("conn")
    add_and_wait(api, dict(seed_params(t), vpnConnName=name))
    other_ugw, _ = api.add_user_gw()
    api.err("AddVpnConnEx", dict(seed_params(t), userGwId=other_ugw, vpnConnName=name),
            4000, "InvalidVpnConnName.InUse", "vpnConnName")


CUSTOM_SETS = {
    "IKESet": {
        "propoEncryAlgorithm": "aes-cbc-192",
        "propoAuthenAlgorithm": "sha",
        "exchangeMode": "aggressive",
        "localIdentity": "fqdn",
        "localFqdnName": "gw.example.com",
        "remoteIdentity": "fqdn",
        "remoteFqdnName": "peer.example.net",
        "dhGroupName": "group14",
        "ikeSaLifetimeSeconds": 7200,
    },
    "IPsecSet": {
        "encryptAlgorithm": "aes-cbc-256",
        "integrityAlgorith": "sha",
        "ipsecSaLifetimeSeconds": 1800,
        "ipsecSaLifetimeTraffic": 4096,
        "pfsDhGroup": "dh-group5",
    },
}


def modify_and_wait(api, t, conn, **params):
    r = api.ok("ModifyVpnConnEx", dict({"vpcId": t["vpcId"], "vpnGwId": t["vpnGwId"], "vpnConnId": conn}, **params))
    task = api.wait_task(r["data"]["taskId"])
    assert (task["status"], task["action"]) == (0, "modify"), task
    return describe_one(api, t)


def test_modify_keeps_the_current_values_of_omitted_fields(api, topology):
    # docs/actions.md, ModifyVpnConnEx: omitted fields keep their *current*
    # values, not the defaults. Every setting starts away from its default,
    # so a Modify that fell back to defaults would show here.
    t = topology
    name = unique("conn")
    add_and_wait(api, dict(seed_params(t), vpnConnName=name, **CUSTOM_SETS))
    before = describe_one(api, t)
    assert before["IKEArr"]["localFqdnName"] == "gw.example.com", before
    assert before["IPSECArr"]["ipsecSaLifetimeTraffic"] == "4096", before

    c = modify_and_wait(api, t, before["unVpnConnId"], preSharedKey="newkey42")
    assert c["preSharedKey"] == "newkey42", c
    for key in ("vpnConnName", "IKEArr", "IPSECArr", "sourceCidr", "destinationCidr", "spdAcl", "spdSource"):
        assert c[key] == before[key], (key, c[key], before[key])

    # One field of a set changes; the rest of both sets stay as they were.
    c = modify_and_wait(api, t, before["unVpnConnId"], IKESet={"dhGroupName": "group24"})
    assert c["IKEArr"] == dict(before["IKEArr"], dhGroupName="group24"), c
    assert c["IPSECArr"] == before["IPSECArr"], c
    assert (c["preSharedKey"], c["vpnConnName"]) == ("newkey42", name), c


def test_modify_identity_type_needs_the_matching_value(api, topology):
    t = topology
    add_and_wait(api, seed_params(t))
    c = describe_one(api, t)
    conn = c["unVpnConnId"]
    m = {"vpcId": t["vpcId"], "vpnGwId": t["vpnGwId"], "vpnConnId": conn}
    # address -> fqdn without an FQDN: refused, naming the missing field.
    api.err("ModifyVpnConnEx", dict(m, IKESet={"localIdentity": "fqdn"}), 4000, "InvalidParameter",
            "IKESet.localFqdnName")
    api.err("ModifyVpnConnEx", dict(m, IKESet={"remoteIdentity": "fqdn"}), 4000, "InvalidParameter",
            "IKESet.remoteFqdnName")
    # An FQDN while the identity stays an address: refused too.
    api.err("ModifyVpnConnEx", dict(m, IKESet={"localFqdnName": "b.example.com"}), 4000, "InvalidParameter",
            "IKESet.localFqdnName")
    assert describe_one(api, t)["IKEArr"] == c["IKEArr"]  # nothing changed

    c = modify_and_wait(api, t, conn, IKESet={"localIdentity": "fqdn", "localFqdnName": "a.example.com"})
    assert (c["IKEArr"]["localIdentity"], c["IKEArr"]["localFqdnName"]) == ("fqdn", "a.example.com"), c
    # The current FQDN already fits: fqdn again needs no new name.
    c = modify_and_wait(api, t, conn, IKESet={"localIdentity": "fqdn"})
    assert (c["IKEArr"]["localIdentity"], c["IKEArr"]["localFqdnName"]) == ("fqdn", "a.example.com"), c
    # Back to an address: the gateway's public address fits by default.
    c = modify_and_wait(api, t, conn, IKESet={"localIdentity": "address"})
    assert (c["IKEArr"]["localIdentity"], c["IKEArr"]["localAddress"]) == ("address", t["vpnGwAddress"]), c


def test_both_spellings_of_a_nested_field_are_refused(api, topology):
    # docs/actions.md: `_` in keys means `.`, so giving both spellings is a
    # repeated parameter, whichever way the set itself is written.
    for extra in ({"IKESet.dhGroupName": "group5"}, {"IKESet": {"dhGroupName": "group5"}}):
        p = dict(seed_params(topology), IKESet_dhGroupName="group5", **extra)
        api.err("AddVpnConnEx", p, 4000, "InvalidParameter", "IKESet.dhGroupName")
    assert api.ok("DescribeVpnConn", {"vpcId": topology["vpcId"]})["totalCount"] == 0
