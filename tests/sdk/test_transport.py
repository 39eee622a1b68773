"""Transport: HTTPS with the server's self-signed certificate (what the SDK
needs), and plain HTTP (which the SDK cannot do) checked with urllib and the
SDK's own `Sign` class."""

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from QcloudApi.common.api_exception import ApiClientNetworkException

import sdkutil
from sdkutil import Client

ROOT = Path(__file__).resolve().parents[2]


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


class _FakeProxy:
    """A listening socket on 127.0.0.1 that counts the connections made to
    it and closes each at once: where a proxy variable points."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> int:
        """Stop; return how many connections were made, queued ones included."""
        self._stop.set()
        self._thread.join()
        self.sock.setblocking(False)
        try:
            while True:
                self.sock.accept()[0].close()
                self.connections += 1
        except BlockingIOError:
            pass
        self.sock.close()
        return self.connections


def test_sdk_call_ignores_proxy_variables(server, monkeypatch):
    # The SDK sends through https_proxy (and ignores no_proxy): with one
    # set, it connects to the proxy, not to vpcd. Shown first, in process...
    proxy = _FakeProxy()
    monkeypatch.setenv("https_proxy", proxy.url)
    with pytest.raises(ApiClientNetworkException):
        Client(server, region=sdkutil.unique_region()).raw("DescribeVpcEx", {})
    assert proxy.close() >= 1, "the SDK did not use https_proxy: this test proves nothing"
    # ...then tests/tunnel/sdk_call.py, which the Rust tunnel tests run to
    # send AddVpnConnEx (PSK included), must talk to vpcd only, whatever
    # proxy variables it inherits.
    proxy = _FakeProxy()
    env = dict(os.environ)
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        env[var] = proxy.url
    out = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "tunnel" / "sdk_call.py"), server.https, str(server.cert),
         str(server.data_dir / "credentials"), "DescribeVpcEx", "{}"],
        env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )
    assert proxy.close() == 0, "sdk_call.py connected to the proxy"
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert (answer["code"], answer["codeDesc"]) == (0, "Success"), answer
