"""Send one API 3.0 action through the official tencentcloud-sdk-python
(unmodified; TC3-HMAC-SHA256 over HTTPS) and print the answer's `Response`
as JSON. Used by the Rust end-to-end tests (crates/vpcd/tests/libreswan.rs)
for what only 3.0 can ask for, such as an IKEv2 connection.

usage: sdk3_call.py HOST:PORT CERT_PEM CREDENTIALS_JSON REGION ACTION JSON_PARAMS
"""

import json
import os
import sys

# Nothing here talks to anything but vpcd (see sdk_call.py).
PROXY_VARS = ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")


def main():
    host, cert, creds_path, region, action, params = sys.argv[1:7]
    for var in PROXY_VARS:
        os.environ.pop(var, None)
    from tencentcloud.common import credential
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile
    from tencentcloud.vpc.v20170312 import vpc_client

    with open(creds_path) as f:
        creds = json.load(f)
    cred = credential.Credential(creds["secretId"], creds["secretKey"])
    http = HttpProfile(protocol="https", endpoint=host, reqMethod="POST", certification=cert)
    client = vpc_client.VpcClient(cred, region, ClientProfile(httpProfile=http))
    print(json.dumps(client.call_json(action, json.loads(params))["Response"]))


if __name__ == "__main__":
    main()
