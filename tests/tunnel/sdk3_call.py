"""Send one API 3.0 action through the official tencentcloud-sdk-python
(3.1.195, unmodified; TC3-HMAC-SHA256, POST JSON over HTTP on loopback) and
print its `Response` as JSON. Used by the Rust end-to-end tunnel tests
(crates/vpcd/tests/tunnel.rs) for the tunnels API 3.0 makes.

usage: sdk3_call.py HOST:PORT CREDENTIALS_JSON REGION ACTION JSON_PARAMS
"""

import json
import os
import sys

PROXY_VARS = ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")


def main():
    endpoint, creds_path, region, action, params = sys.argv[1:6]
    for var in PROXY_VARS:
        os.environ.pop(var, None)
    from tencentcloud.common import credential
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
        TencentCloudSDKException,
    )
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile
    from tencentcloud.vpc.v20170312 import models, vpc_client

    with open(creds_path) as f:
        creds = json.load(f)
    hp = HttpProfile(protocol="http", endpoint=endpoint, reqMethod="POST", reqTimeout=30)
    client = vpc_client.VpcClient(
        credential.Credential(creds["secretId"], creds["secretKey"]),
        region,
        ClientProfile(signMethod="TC3-HMAC-SHA256", httpProfile=hp),
    )
    try:
        # The typed call: the request model is built from the parameters and
        # the answer parsed into the response model.
        req = getattr(models, action + "Request")()
        req.from_json_string(params)
        resp = getattr(client, action)(req)
        print(resp.to_json_string())
    except TencentCloudSDKException as e:
        print(json.dumps({"Error": {"Code": e.code, "Message": e.message}}))


if __name__ == "__main__":
    main()
