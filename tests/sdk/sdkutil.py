"""Helpers of the SDK suite: a thin wrapper around the official SDK's
``QcloudApi`` (it only builds the SDK's config and decodes the answer), unique
names, and plain urllib access for what the SDK cannot do."""

import itertools
import json
import ssl
import time
import urllib.parse
import urllib.request

from QcloudApi.qcloudapi import QcloudApi

_counter = itertools.count(1)


def vpc_module_class():
    """The SDK's ``Vpc`` service class (whose ``requestHost`` the session
    points at the server)."""
    from QcloudApi.modules.vpc import Vpc

    return Vpc


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_counter)}"


# vpcd serves only the regions it is configured with (`--regions`): the
# session starts it with these, one per test (quotas are per region).
_REGION_COUNT = 2000
REGIONS = ",".join(["ap-guangzhou=gz"] + [f"test-{i}" for i in range(1, _REGION_COUNT + 1)])
_region_counter = itertools.count(1)


def unique_region() -> str:
    n = next(_region_counter)
    assert n <= _REGION_COUNT, "ran out of test regions: raise _REGION_COUNT"
    return f"test-{n}"


_addr_counter = itertools.count(1)


def unique_peer_address() -> str:
    """A fresh peer address from TEST-NET-2 (198.51.100.0/24), never .7
    (kept for tests that want the example address)."""
    n = next(_addr_counter)
    host = 10 + n
    assert host < 255, "ran out of peer addresses"
    return f"198.51.100.{host}"


def plain_opener():
    """urllib without proxies (everything here talks to 127.0.0.1)."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def https_opener(cafile):
    ctx = ssl.create_default_context(cafile=str(cafile))
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx)
    )


def fetch_json(opener, url, data=None, timeout=10):
    if isinstance(data, str):
        data = data.encode()
    req = urllib.request.Request(url, data=data)
    if data is not None:
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    with opener.open(req, timeout=timeout) as r:
        assert r.status == 200, r.status
        return json.loads(r.read())


class Client:
    """One SDK configuration: HTTP method, signature method, region, key."""

    def __init__(self, server, method="GET", sign_method="HmacSHA1", region=None, secret_id=None, secret_key=None):
        self.server = server
        self.method = method
        self.sign_method = sign_method
        self.region = region or server.region
        self.secret_id = secret_id or server.secret_id
        self.secret_key = secret_key or server.secret_key

    def config(self):
        # The SDK's own config keys ('Region' is the default region it sends).
        return {
            "secretId": self.secret_id,
            "secretKey": self.secret_key,
            "Region": self.region,
            "method": self.method,
            "SignatureMethod": self.sign_method,
        }

    def sdk(self):
        return QcloudApi("vpc", self.config())

    def raw(self, action, params=None):
        """Call through the SDK; return the decoded envelope, whatever its code."""
        body = self.sdk().call(action, dict(params or {}), req_timeout=30)
        if isinstance(body, bytes):
            body = body.decode("utf-8")
        return json.loads(body)

    def ok(self, action, params=None):
        """Call and require code 0."""
        r = self.raw(action, params)
        assert r.get("code") == 0, f"{action} {params!r} -> {r!r}"
        assert r.get("codeDesc") == "Success", r
        assert r.get("message") == "", r
        return r

    def err(self, action, params, code, code_desc, names=None):
        """Call and require the error answer `expect_error` describes."""
        return expect_error(self.raw(action, params), code, code_desc, names, f"{action} {params!r}")

    # ---- building blocks -------------------------------------------------

    def create_vpc(self, cidr="10.0.0.0/16", name=None):
        r = self.ok("CreateVpc", {"vpcName": name or unique("vpc"), "cidrBlock": cidr})
        return r

    def run_vpn_gw(self, vpc_id, name=None, bandwidth=5):
        r = self.ok("RunVpnGw", {"vpcId": vpc_id, "name": name or unique("gw"), "bandwidth": bandwidth})
        return r["data"]

    def add_user_gw(self, addr=None, name=None):
        addr = addr or unique_peer_address()
        r = self.ok("AddUserGw", {"userGwName": name or unique("peer"), "userGwAddr": addr})
        return r["userGwId"], addr

    def wait_task(self, task_id, timeout=30.0):
        """Poll DescribeVpcTaskResult until the task ends; return its data."""
        deadline = time.monotonic() + timeout
        while True:
            data = self.ok("DescribeVpcTaskResult", {"taskId": task_id})["data"]
            if data["status"] != 2:
                return data
            assert time.monotonic() < deadline, f"task {task_id} still running after {timeout} s: {data!r}"
            time.sleep(0.1)


def expect_error(r, code, code_desc, names=None, what="answer"):
    """Require an error envelope with exactly `code` and `codeDesc` and a
    non-empty message; with `names`, the message must start with that
    parameter's name, as docs/actions.md documents ("<parameter>: <why>")."""
    assert set(r) == {"code", "message", "codeDesc"}, f"{what} -> {r!r}"
    assert (r["code"], r["codeDesc"]) == (code, code_desc), f"{what} -> {r!r}"
    assert isinstance(r["message"], str) and r["message"], f"{what} -> {r!r}"
    if names is not None:
        assert r["message"].startswith(f"{names}: "), f"{what}: message does not start with {names!r}: {r!r}"
    return r


def sign_params(server, host, method, params, sign_method="HmacSHA256", secret_key=None):
    """Sign v2 parameters with the SDK's own ``Sign`` class; return them with
    the common parameters and ``Signature`` added."""
    from QcloudApi.common.sign import Sign

    p = dict(params)
    p.setdefault("Region", server.region)
    p.setdefault("SecretId", server.secret_id)
    p.setdefault("Nonce", int.from_bytes(__import__("os").urandom(7), "big") + 1)
    p.setdefault("Timestamp", int(time.time()))
    p.setdefault("SignatureMethod", sign_method)
    p["Signature"] = Sign(server.secret_id, secret_key or server.secret_key).make(
        host, "/v2/index.php", p, method, p["SignatureMethod"]
    )
    return p


def encode(params):
    return urllib.parse.urlencode(params)
