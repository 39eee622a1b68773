"""The v2 signature, Timestamp window and Nonce replay protection, seen from
the official SDK."""

import time
import urllib.parse

import sdkutil
from sdkutil import Client


def test_replayed_request_is_refused(server, sign_method):
    api = Client(server, method="GET", sign_method=sign_method, region=sdkutil.unique_region())
    url = api.sdk().generateUrl("DescribeVpcEx", {})
    assert url.startswith(f"https://{server.https}/v2/index.php?"), url
    opener = sdkutil.https_opener(server.cert)
    first = sdkutil.fetch_json(opener, url)
    assert first["code"] == 0, first
    second = sdkutil.fetch_json(opener, url)
    sdkutil.expect_error(second, 4500, "RequestReplay", "Nonce")


def test_replayed_post_is_refused(server, sign_method):
    # The same signed POST body twice.
    p = sdkutil.sign_params(server, server.https, "POST", {"Action": "DescribeVpcEx"}, sign_method=sign_method)
    opener = sdkutil.https_opener(server.cert)
    url = f"https://{server.https}/v2/index.php"
    assert sdkutil.fetch_json(opener, url, sdkutil.encode(p))["code"] == 0
    r = sdkutil.fetch_json(opener, url, sdkutil.encode(p))
    sdkutil.expect_error(r, 4500, "RequestReplay", "Nonce")


def test_stale_timestamp_is_refused(api):
    api.err("DescribeVpcEx", {"Timestamp": int(time.time()) - 3600}, 4500, "RequestReplay", "Timestamp")


def test_future_timestamp_is_refused(api):
    api.err("DescribeVpcEx", {"Timestamp": int(time.time()) + 3600}, 4500, "RequestReplay", "Timestamp")


def test_timestamp_inside_window_is_accepted(api):
    api.ok("DescribeVpcEx", {"Timestamp": int(time.time()) - 60})


def test_wrong_secret_key_is_refused(api):
    bad = Client(api.server, method=api.method, sign_method=api.sign_method, region=api.region,
                 secret_key=api.server.secret_key[::-1] + "x")
    r = bad.err("DescribeVpcEx", {}, 4100, "AuthFailure", "Signature")
    assert api.server.secret_key not in r["message"]


def test_unknown_secret_id_is_refused(api):
    bad = Client(api.server, method=api.method, sign_method=api.sign_method, region=api.region,
                 secret_id="AKIDunknownunknownunknownunknown0000")
    bad.err("DescribeVpcEx", {}, 4104, "AuthFailure.SecretIdNotFound", "SecretId")


def test_tampered_parameter_is_refused(server, sign_method):
    p = sdkutil.sign_params(server, server.https, "GET", {"Action": "CreateVpc", "vpcName": "a",
                                                          "cidrBlock": "10.0.0.0/16"}, sign_method=sign_method)
    p["vpcName"] = "b"
    opener = sdkutil.https_opener(server.cert)
    r = sdkutil.fetch_json(opener, f"https://{server.https}/v2/index.php?{sdkutil.encode(p)}")
    sdkutil.expect_error(r, 4100, "AuthFailure", "Signature")


def test_signature_covers_the_host(server, sign_method):
    # Signed for the real service's host, sent to ours: refused.
    p = sdkutil.sign_params(server, "vpc.api.qcloud.com", "GET", {"Action": "DescribeVpcEx"},
                            sign_method=sign_method)
    opener = sdkutil.https_opener(server.cert)
    r = sdkutil.fetch_json(opener, f"https://{server.https}/v2/index.php?{urllib.parse.urlencode(p)}")
    sdkutil.expect_error(r, 4100, "AuthFailure", "Signature")


def test_bad_signature_does_not_burn_the_nonce(server, sign_method):
    # docs/actions.md: the Nonce is recorded only for correctly signed
    # requests, so nobody can burn another caller's nonces.
    opener = sdkutil.https_opener(server.cert)
    url = f"https://{server.https}/v2/index.php"
    forged = sdkutil.sign_params(server, server.https, "POST", {"Action": "DescribeVpcEx"},
                                 sign_method=sign_method, secret_key="not-the-key")
    sdkutil.expect_error(sdkutil.fetch_json(opener, url, sdkutil.encode(forged)), 4100, "AuthFailure", "Signature")
    real = sdkutil.sign_params(server, server.https, "POST",
                               {"Action": "DescribeVpcEx", "Nonce": forged["Nonce"], "Timestamp": forged["Timestamp"]},
                               sign_method=sign_method)
    assert sdkutil.fetch_json(opener, url, sdkutil.encode(real))["code"] == 0
    # ...and that request's Nonce is recorded now.
    sdkutil.expect_error(sdkutil.fetch_json(opener, url, sdkutil.encode(real)), 4500, "RequestReplay", "Nonce")
