"""Transport: HTTPS with the server's self-signed certificate (what the SDK
needs), and plain HTTP (which the SDK cannot do) checked with urllib and the
SDK's own `Sign` class."""

import pytest
from QcloudApi.common.api_exception import ApiClientNetworkException

import sdkutil
from sdkutil import Client


def test_healthz_over_plain_http(server):
    with sdkutil.plain_opener().open(f"http://{server.http}/healthz", timeout=5) as r:
        assert r.status == 200


def test_healthz_over_https(server):
    with sdkutil.https_opener(server.cert).open(f"https://{server.https}/healthz", timeout=5) as r:
        assert r.status == 200


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_signed_request_over_plain_http(server, sign_method, method):
    region = sdkutil.unique_region()
    params = {"Action": "CreateVpc", "Region": region, "vpcName": sdkutil.unique("plain"),
              "cidrBlock": "172.16.0.0/16", "RequestClient": "SDK_PYTHON_2.0.15"}
    # Signed for the host as sent: "127.0.0.1:PORT".
    p = sdkutil.sign_params(server, server.http, method, params, sign_method=sign_method)
    url = f"http://{server.http}/v2/index.php"
    opener = sdkutil.plain_opener()
    if method == "GET":
        r = sdkutil.fetch_json(opener, f"{url}?{sdkutil.encode(p)}")
    else:
        r = sdkutil.fetch_json(opener, url, sdkutil.encode(p))
    assert r["code"] == 0, r
    assert r["uniqVpcId"].startswith("vpc-"), r
    # The same VPC through the SDK over HTTPS.
    api = Client(server, region=region)
    assert api.ok("DescribeVpcEx", {"vpcId": r["uniqVpcId"]})["totalCount"] == 1


def test_sdk_refuses_an_untrusted_certificate(server, monkeypatch, tmp_path):
    # Proves the suite really verifies TLS: without the server's certificate
    # in SSL_CERT_FILE the SDK's connection fails.
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-such-bundle.pem"))
    with pytest.raises(ApiClientNetworkException) as e:
        Client(server, region=sdkutil.unique_region()).raw("DescribeVpcEx", {})
    assert "CERTIFICATE_VERIFY_FAILED" in str(e.value.message), e.value.message
