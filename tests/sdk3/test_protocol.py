"""The 3.0 protocol seen from the official SDK: every request style over HTTP
and HTTPS, the envelope, signatures, the Timestamp window, replay
protection, temporary credentials, regions."""

import copy
import json
import time

import pytest

import sdk3util
from sdk3util import UUID, Api


def test_every_style_creates_and_describes(api):
    vpc = api.call("CreateVpc", {"VpcName": sdk3util.unique("style"), "CidrBlock": "10.2.0.0/16"})
    vpc_id = vpc["Vpc"]["VpcId"]
    assert vpc_id.startswith("vpc-")
    assert vpc["Vpc"]["CidrBlock"] == "10.2.0.0/16"
    r = api.call("DescribeVpcs", {"VpcIds": [vpc_id]})
    assert r["TotalCount"] == 1 and r["VpcSet"][0]["VpcId"] == vpc_id, r
    # Flattened lists and objects, in every style.
    r = api.call("DescribeVpcs", {"Filters": [{"Name": "vpc-id", "Values": [vpc_id, "vpc-00000000"]},
                                              {"Name": "cidr-block", "Values": ["10.2.0.0/16"]}]})
    assert [v["VpcId"] for v in r["VpcSet"]] == [vpc_id], r


def test_errors_raise_with_code_and_request_id(api):
    e = api.err("DeleteVpc", {"VpcId": "vpc-00000000"}, "ResourceNotFound", "VpcId", typed=True)
    assert "does not exist" in e.message


def test_answers_are_exactly_application_json(tc3):
    for action, params in [("DescribeVpcs", {}), ("DeleteVpc", {"VpcId": "vpc-00000000"})]:
        content_type, body = tc3.send(tc3.signed(action, params))
        assert content_type == "application/json"
        assert UUID.match(body["RequestId"]), body


def test_replayed_tc3_change_is_refused_and_read_answered(tc3):
    req = tc3.signed("CreateVpc", {"VpcName": sdk3util.unique("replay"), "CidrBlock": "10.0.0.0/16"})
    _, first = tc3.send(copy.deepcopy(req))
    assert "Vpc" in first, first
    _, second = tc3.send(copy.deepcopy(req))
    assert second["Error"]["Code"] == "AuthFailure.SignatureFailure", second
    assert second["Error"]["Message"].startswith("Authorization:"), second
    # Nothing was written twice.
    assert tc3.call("DescribeVpcs")["TotalCount"] == 1
    # The same change as another action is the same signature: refused too.
    swapped = copy.deepcopy(req)
    swapped.header["X-TC-Action"] = "DeleteVpc"
    assert tc3.send(swapped)[1]["Error"]["Code"] == "AuthFailure.SignatureFailure"
    read = tc3.signed("DescribeVpcs", {})
    for _ in range(3):
        _, body = tc3.send(copy.deepcopy(read))
        assert body["TotalCount"] == 1, body


@pytest.mark.parametrize("sign", ["HmacSHA1", "HmacSHA256"])
def test_replayed_form_nonce_is_refused(server, sign):
    api = Api(server, method="GET", sign=sign, region=sdk3util.unique_region())
    req = api.signed("DescribeVpcs", {})
    assert "TotalCount" in api.send(copy.deepcopy(req))[1]
    body = api.send(copy.deepcopy(req))[1]
    assert body["Error"]["Code"] == "AuthFailure.SignatureFailure", body
    assert body["Error"]["Message"].startswith("Nonce:"), body


def test_tampered_tc3_body_is_refused(tc3):
    req = tc3.signed("CreateVpc", {"VpcName": "a", "CidrBlock": "10.0.0.0/16"})
    req.data = req.data.replace('"a"', '"b"')
    body = tc3.send(req)[1]
    assert body["Error"]["Code"] == "AuthFailure.SignatureFailure", body
    assert tc3.call("DescribeVpcs")["TotalCount"] == 0


def test_stale_timestamp_is_refused(tc3, monkeypatch):
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 3600)
    req = tc3.signed("DescribeVpcs", {})
    monkeypatch.setattr(time, "time", real)
    body = tc3.send(req)[1]
    assert body["Error"]["Code"] == "AuthFailure.SignatureExpire", body
    assert body["Error"]["Message"].startswith("X-TC-Timestamp:"), body


def test_wrong_key_and_unknown_secret_id(server):
    region = sdk3util.unique_region()
    for sign in ["TC3-HMAC-SHA256", "HmacSHA256"]:
        bad = Api(server, sign=sign, region=region, secret_key=server.secret_key[::-1] + "x")
        e = bad.err("DescribeVpcs", {}, "AuthFailure.SignatureFailure")
        assert server.secret_key not in e.message
        unknown = Api(server, sign=sign, region=region, secret_id="AKIDunknownunknownunknown0000")
        unknown.err("DescribeVpcs", {}, "AuthFailure.SecretIdNotFound", "SecretId")


@pytest.mark.parametrize("sign", ["TC3-HMAC-SHA256", "HmacSHA1"])
def test_temporary_credentials_are_refused(server, sign):
    api = Api(server, sign=sign, region=sdk3util.unique_region(), token="some-session-token")
    e = api.err("DescribeVpcs", {}, "AuthFailure.TokenFailure")
    assert "temporary credentials" in e.message


def test_unknown_action_version_and_region(server, tc3):
    tc3.err("AddVpnConnEx", {}, "InvalidAction", "X-TC-Action")
    req = tc3.signed("DescribeVpcs", {})
    req.header["X-TC-Version"] = "2099-01-01"
    assert tc3.send(req)[1]["Error"]["Code"] == "NoSuchVersion"
    mars = Api(server, region="ap-mars")
    mars.err("DescribeVpcs", {}, "UnsupportedRegion", "X-TC-Region")
    form = Api(server, method="GET", sign="HmacSHA256", region="ap-mars")
    form.err("DescribeVpcs", {}, "UnsupportedRegion", "Region")


def test_regions_are_one_namespace(server):
    # ap-shanghai and sh are one region, in the same protocol too.
    long_name = Api(server, region="ap-shanghai")
    short = Api(server, method="GET", sign="HmacSHA1", region="sh")
    vpc_id = long_name.vpc()
    assert short.call("DescribeVpcs", {"VpcIds": [vpc_id]})["TotalCount"] == 1
    short.call("DeleteVpc", {"VpcId": vpc_id})
    assert long_name.call("DescribeVpcs", {"VpcIds": [vpc_id]})["TotalCount"] == 0


def test_body_that_is_not_json(tc3):
    req = tc3.signed("DescribeVpcs", {})
    # Re-sign a broken body with the SDK's own signer: build it by hand.
    client = tc3.client()
    req.data = "{not json"
    date = time.strftime("%Y-%m-%d", time.gmtime(int(req.header["X-TC-Timestamp"])))
    sig = client._get_tc3_signature({}, req, date, "vpc", tc3.cred.secret_key)
    req.header["Authorization"] = (f"TC3-HMAC-SHA256 Credential={tc3.cred.secret_id}/{date}/vpc/tc3_request, "
                                   f"SignedHeaders=content-type;host, Signature={sig}")
    body = tc3.send(req)[1]
    assert body["Error"]["Code"] == "InvalidRequest", body


def test_json_keys_given_twice_are_refused(tc3):
    req = tc3.signed("DescribeVpcs", {})
    client = tc3.client()
    req.data = '{"Limit": 1, "Limit": 2}'
    date = time.strftime("%Y-%m-%d", time.gmtime(int(req.header["X-TC-Timestamp"])))
    sig = client._get_tc3_signature({}, req, date, "vpc", tc3.cred.secret_key)
    req.header["Authorization"] = (f"TC3-HMAC-SHA256 Credential={tc3.cred.secret_id}/{date}/vpc/tc3_request, "
                                   f"SignedHeaders=content-type;host, Signature={sig}")
    body = tc3.send(req)[1]
    assert body["Error"]["Code"] == "InvalidRequest", body
    assert "more than once" in body["Error"]["Message"], body
    json.dumps(body)


def test_secrets_never_reach_the_log(server, tc3):
    psk = "Sup3rSecretPsk-7c1e"
    _, gw, cgw = tc3.topology()
    created = tc3.conn(gw, cgw, PreShareKey=psk)
    tc3.wait_task(created["RequestId"])
    # Refusals of requests that carry the key, and a wrong signature.
    tc3.err("CreateVpnConnection", {"VpnGatewayId": gw["VpnGatewayId"], "CustomerGatewayId": "cgw-00000000",
                                    "VpnConnectionName": "x", "PreShareKey": psk + " x"},
            "InvalidParameterValue", "PreShareKey")
    Api(server, region=tc3.region, secret_key=server.secret_key + "x").err(
        "DescribeVpcs", {}, "AuthFailure.SignatureFailure")
    # The first start prints the new key once, by design; after that, never.
    log = server.log_path.read_text(errors="replace").split("vpcd serving", 1)[1]
    for secret in (psk, server.secret_key):
        assert secret not in log
