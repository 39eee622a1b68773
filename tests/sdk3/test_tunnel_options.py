"""The tunnel options API 3.0 added (IKE version, AES-GCM, SHA-2, DH groups
15-21, DPD, negotiation type, health checks, tags, traffic lifetimes above
v2's): what is set reads back exactly through the official SDK, omitted
values take the documented defaults, and a modification changes only what
it names. Bad values: test_bad_input.py."""

import ipaddress

import pytest

import sdk3util

HC_RANGE = ipaddress.ip_network("169.254.128.0/17")


@pytest.fixture
def api(server):
    return sdk3util.Api(server, region=sdk3util.unique_region())


def created(api, gw, cgw, **extra):
    r = api.conn(gw, cgw, **extra)
    assert api.wait_task(r["RequestId"])["Status"] == "SUCCESS"
    return api.conn_by_id(r["VpnConnection"]["VpnConnectionId"])


def test_every_new_value_reads_back(api):
    _, gw, cgw = api.topology()
    c = created(api, gw, cgw,
                IKEOptionsSpecification={"IKEVersion": "IKEV2", "PropoEncryAlgorithm": "AES192GCM128",
                                         "PropoAuthenAlgorithm": "SHA-512", "DhGroupName": "GROUP21"},
                IPSECOptionsSpecification={"EncryptAlgorithm": "AES256GCM128", "IntegrityAlgorithm": "SHA-256",
                                           "PfsDhGroup": "DH-GROUP16",
                                           "IPSECSaLifetimeTraffic": 4294967295},
                DpdEnable=1, DpdTimeout="60", DpdAction="clear", NegotiationType="flowTrigger",
                EnableHealthCheck=True, HealthCheckLocalIp="169.254.128.10",
                HealthCheckRemoteIp="169.254.255.254",
                Tags=[{"Key": "env", "Value": "prod"}, {"Key": "team"}])
    ike, ipsec = c["IKEOptionsSpecification"], c["IPSECOptionsSpecification"]
    assert (ike["IKEVersion"], ike["PropoEncryAlgorithm"], ike["PropoAuthenAlgorithm"], ike["DhGroupName"]) == \
        ("IKEV2", "AES192GCM128", "SHA-512", "GROUP21")
    assert (ipsec["EncryptAlgorithm"], ipsec["IntegrityAlgorith"], ipsec["IntegrityAlgorithm"],
            ipsec["PfsDhGroup"], ipsec["IPSECSaLifetimeTraffic"]) == \
        ("AES256GCM128", "SHA-256", "SHA-256", "DH-GROUP16", 4294967295)
    assert (c["DpdEnable"], c["DpdTimeout"], c["DpdAction"], c["NegotiationType"]) == (1, "60", "clear", "flowTrigger")
    assert (c["EnableHealthCheck"], c["HealthCheckLocalIp"], c["HealthCheckRemoteIp"]) == \
        (True, "169.254.128.10", "169.254.255.254")
    # No live tunnel (API-only data plane): the health check says so.
    assert c["HealthCheckStatus"] == "UNAVAILABLE"
    assert c["TagSet"] == [{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": ""}]

    # Each group of 3.0's list, for IKE and PFS.
    for group in ("GROUP15", "GROUP16", "GROUP19", "GROUP20"):
        m = api.call("ModifyVpnConnectionAttribute", {
            "VpnConnectionId": c["VpnConnectionId"],
            "IKEOptionsSpecification": {"DhGroupName": group},
            "IPSECOptionsSpecification": {"PfsDhGroup": "DH-" + group, "IntegrityAlgorith": "SHA-384",
                                          "EncryptAlgorithm": "AES-CBC-256"}})
        assert api.wait_task(m["RequestId"])["Status"] == "SUCCESS"
        after = api.conn_by_id(c["VpnConnectionId"])
        assert after["IKEOptionsSpecification"]["DhGroupName"] == group
        assert after["IPSECOptionsSpecification"]["PfsDhGroup"] == "DH-" + group
        assert after["IPSECOptionsSpecification"]["IntegrityAlgorith"] == "SHA-384"
        # Everything not named stays.
        assert after["IKEOptionsSpecification"]["PropoEncryAlgorithm"] == "AES192GCM128"
        assert (after["DpdTimeout"], after["NegotiationType"], after["TagSet"]) == \
            ("60", "flowTrigger", c["TagSet"])


def test_health_check_addresses_default_to_the_documented_range(api):
    _, gw, cgw = api.topology()
    c = created(api, gw, cgw, EnableHealthCheck=True)
    local, remote = (ipaddress.ip_address(c[k]) for k in ("HealthCheckLocalIp", "HealthCheckRemoteIp"))
    assert local in HC_RANGE and remote in HC_RANGE and local != remote, c
    # Turning it off clears them; back on draws new ones.
    m = api.call("ModifyVpnConnectionAttribute", {"VpnConnectionId": c["VpnConnectionId"],
                                                  "EnableHealthCheck": False})
    api.wait_task(m["RequestId"])
    off = api.conn_by_id(c["VpnConnectionId"])
    assert (off["EnableHealthCheck"], off["HealthCheckLocalIp"], off["HealthCheckRemoteIp"]) == (False, "", "")
    assert off.get("HealthCheckStatus") is None, "not returned without a health check"
    m = api.call("ModifyVpnConnectionAttribute", {"VpnConnectionId": c["VpnConnectionId"],
                                                  "EnableHealthCheck": True,
                                                  "HealthCheckRemoteIp": "169.254.130.1"})
    api.wait_task(m["RequestId"])
    on = api.conn_by_id(c["VpnConnectionId"])
    assert on["HealthCheckRemoteIp"] == "169.254.130.1"
    assert ipaddress.ip_address(on["HealthCheckLocalIp"]) in HC_RANGE


def test_dpd_switch_keeps_timeout_and_action(api):
    _, gw, cgw = api.topology()
    c = created(api, gw, cgw, DpdEnable=1, DpdTimeout="40", DpdAction="clear")
    m = api.call("ModifyVpnConnectionAttribute", {"VpnConnectionId": c["VpnConnectionId"], "DpdEnable": 0})
    api.wait_task(m["RequestId"])
    after = api.conn_by_id(c["VpnConnectionId"])
    assert (after["DpdEnable"], after["DpdTimeout"], after["DpdAction"]) == (0, "40", "clear")


def test_tags_filter_connections(api):
    _, gw, cgw = api.topology()
    a = created(api, gw, cgw, Tags=[{"Key": "env", "Value": "prod"}])
    b = created(api, gw, api.cgw(), Tags=[{"Key": "env", "Value": "dev"}, {"Key": "owner", "Value": "ops"}])
    created(api, gw, api.cgw())

    def ids(filters):
        r = api.call("DescribeVpnConnections", {"Filters": filters})
        return sorted(c["VpnConnectionId"] for c in r["VpnConnectionSet"])

    assert ids([{"Name": "tag-key", "Values": ["env"]}]) == sorted([a["VpnConnectionId"], b["VpnConnectionId"]])
    assert ids([{"Name": "tag:env", "Values": ["prod"]}]) == [a["VpnConnectionId"]]
    assert ids([{"Name": "tag:env", "Values": ["prod", "dev"]},
                {"Name": "tag-key", "Values": ["owner"]}]) == [b["VpnConnectionId"]]
    assert ids([{"Name": "tag:owner", "Values": ["nobody"]}]) == []
