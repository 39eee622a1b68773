"""Helpers of the API 3.0 suite: a thin wrapper around the official
tencentcloud-sdk-python client (it builds the SDK's profiles and turns the
SDK's model objects into dicts), tccli runs, unique names, and raw HTTP for
what the SDK does not do on purpose (replays, broken requests)."""

import itertools
import json
import os
import re
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import vpcdsuite
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.http.request import RequestInternal
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.vpc.v20170312 import models, vpc_client

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

# Test regions: one per test (quotas are per region), plus the pairs the
# one-world tests use. Both protocols spell a region either way.
_REGION_COUNT = 1500
REGIONS = ",".join(["ap-guangzhou=gz", "ap-shanghai=sh"] +
                   [f"t3-{i}" for i in range(1, _REGION_COUNT + 1)])
_regions = itertools.count(1)
_names = itertools.count(1)
_addresses = itertools.count(10)


def unique_region() -> str:
    n = next(_regions)
    assert n <= _REGION_COUNT, "ran out of test regions: raise _REGION_COUNT"
    return f"t3-{n}"


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}"


def peer_address() -> str:
    """A fresh peer address from TEST-NET-3 (203.0.113.0/24 is the gateway
    pool, so TEST-NET-2)."""
    n = next(_addresses)
    assert n < 255
    return f"198.51.100.{n}"


def next_second():
    """Wait for the next Unix second. TC3 signs a second-granular timestamp
    and vpcd accepts one signed change once, so repeating the very same
    change (a retry after a refusal) needs a new second, as with the real
    clients, which sleep between retries."""
    time.sleep(1.01 - time.time() % 1)


def plain_opener():
    return vpcdsuite.plain_opener()


class Api:
    """One SDK configuration: method, signature, protocol, region, key."""

    def __init__(self, server, method="POST", sign="TC3-HMAC-SHA256", protocol="http",
                 region="ap-guangzhou", secret_id=None, secret_key=None, token=None):
        self.server = server
        self.method = method
        self.sign = sign
        self.protocol = protocol
        self.region = region
        self.endpoint = server.https if protocol == "https" else server.http
        self.cred = credential.Credential(secret_id or server.secret_id,
                                          secret_key or server.secret_key, token)

    def client(self) -> vpc_client.VpcClient:
        hp = HttpProfile(protocol=self.protocol, endpoint=self.endpoint, reqMethod=self.method,
                         reqTimeout=30,
                         certification=str(self.server.cert) if self.protocol == "https" else None)
        return vpc_client.VpcClient(self.cred, self.region,
                                    ClientProfile(signMethod=self.sign, httpProfile=hp))

    def call(self, action: str, params=None) -> dict:
        """The typed SDK call: the request model built from `params`, the
        answer parsed into the response model (an answer field the model
        does not know fails the test, see pytest.ini), returned as a dict."""
        req = getattr(models, action + "Request")()
        req.from_json_string(json.dumps(params or {}))
        resp = getattr(self.client(), action)(req)
        out = json.loads(resp.to_json_string())
        assert UUID.match(out["RequestId"]), out
        return out

    def raw(self, action: str, params=None) -> dict:
        """The untyped call (fields the models do not have reach the server)."""
        return self.client().call_json(action, params or {})["Response"]

    def err(self, action, params, code, field=None, typed=False) -> TencentCloudSDKException:
        """Call and require TencentCloudSDKException with `code`, a RequestId,
        and a message that starts with `field`."""
        with pytest.raises(TencentCloudSDKException) as info:
            if typed:
                self.call(action, params)
            else:
                self.raw(action, params)
        e = info.value
        assert e.code == code, f"{action} {params!r}: {e.code} {e.message}"
        assert UUID.match(e.requestId or ""), e.requestId
        assert e.message, e
        if field is not None:
            assert e.message.startswith(field + ":"), f"message does not name {field}: {e.message}"
        return e

    # ---- building blocks -------------------------------------------------

    def vpc(self, cidr="10.0.0.0/16") -> str:
        return self.call("CreateVpc", {"VpcName": unique("vpc"), "CidrBlock": cidr})["Vpc"]["VpcId"]

    def vpn_gw(self, vpc_id: str) -> dict:
        return self.call("CreateVpnGateway", {"VpcId": vpc_id, "VpnGatewayName": unique("gw"),
                                              "InternetMaxBandwidthOut": 5})["VpnGateway"]

    def cgw(self, address=None) -> dict:
        return self.call("CreateCustomerGateway",
                         {"CustomerGatewayName": unique("cgw"),
                          "IpAddress": address or peer_address()})["CustomerGateway"]

    def topology(self):
        vpc = self.vpc()
        return vpc, self.vpn_gw(vpc), self.cgw()

    def conn(self, gw: dict, cgw: dict, **extra) -> dict:
        params = {"VpnGatewayId": gw["VpnGatewayId"], "CustomerGatewayId": cgw["CustomerGatewayId"],
                  "VpnConnectionName": unique("conn"), "PreShareKey": "psk-123",
                  "SecurityPolicyDatabases": [{"LocalCidrBlock": "10.0.0.0/24",
                                               "RemoteCidrBlock": ["192.168.10.0/24"]}]}
        params.update(extra)
        return self.call("CreateVpnConnection", params)

    def wait_task(self, request_id: str, timeout=30.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            t = self.call("DescribeVpcTaskResult", {"TaskId": request_id})
            if t["Status"] != "RUNNING":
                return t
            assert time.monotonic() < deadline, f"task {request_id} still running: {t}"
            time.sleep(0.05)

    def conn_by_id(self, conn_id: str) -> dict:
        r = self.call("DescribeVpnConnections", {"VpnConnectionIds": [conn_id]})
        assert r["TotalCount"] == 1, r
        return r["VpnConnectionSet"][0]

    # ---- raw requests ------------------------------------------------------

    def signed(self, action: str, params=None) -> RequestInternal:
        """The request the SDK would send, signed, without sending it."""
        c = self.client()
        req = RequestInternal(c._get_endpoint(), self.method, c._requestPath, header={})
        c._build_req_inter(action, dict(params or {}), req)
        return req

    def send(self, req: RequestInternal):
        """Send a built request as is; return (Content-Type, decoded body)."""
        scheme = self.protocol
        url = f"{scheme}://{self.endpoint}{req.uri}"
        data = req.data.encode() if isinstance(req.data, str) else req.data
        if req.method == "GET":
            url = f"{url}?{req.data}"
            data = None
        r = urllib.request.Request(url, data=data, method=req.method, headers=dict(req.header))
        if scheme == "https":
            ctx = ssl.create_default_context(cafile=str(self.server.cert))
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                                 urllib.request.HTTPSHandler(context=ctx))
        else:
            opener = plain_opener()
        with opener.open(r, timeout=30) as resp:
            assert resp.status == 200, resp.status
            return resp.headers.get("Content-Type"), json.loads(resp.read())["Response"]


def tccli(server, home: Path, *args, region="ap-guangzhou"):
    """Run tccli (HOME in a temp dir, credentials from the environment,
    --endpoint at the server's HTTP listener); return (exit status, stdout,
    stderr). tccli verifies HTTPS only against certifi's bundle, which no
    configuration can extend, so it cannot trust vpcd's self-signed
    certificate; the SDK (HttpProfile.certification) is tested over HTTPS."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(HOME=str(home), TENCENTCLOUD_SECRET_ID=server.secret_id,
               TENCENTCLOUD_SECRET_KEY=server.secret_key, TENCENTCLOUD_REGION=region)
    endpoint = f"http://{server.http}"
    exe = Path(sys.executable).with_name("tccli")
    p = subprocess.run([str(exe), "vpc", *args, "--endpoint", endpoint], env=env,
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr
