"""Send one v2 action through the official SDK (qcloudapi-sdk-python 2.0.15,
unmodified) and print the JSON answer. Used by the Rust end-to-end tunnel
tests (crates/vpcd/tests/tunnel.rs), which need the real client for
AddVpnConnEx.

usage: sdk_call.py HOST:PORT CERT_PEM CREDENTIALS_JSON ACTION JSON_PARAMS
"""

import json
import os
import sys


# The SDK sends through https_proxy and ignores no_proxy: with a proxy set,
# every signed request (the PSK of AddVpnConnEx included) would go to it
# instead of to vpcd. Nothing here talks to anything but vpcd.
PROXY_VARS = ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")


def main():
    host, cert, creds_path, action, params = sys.argv[1:6]
    for var in PROXY_VARS:
        os.environ.pop(var, None)
    # The SDK is hard-wired to HTTPS; trust vpcd's self-signed certificate.
    os.environ["SSL_CERT_FILE"] = cert
    from QcloudApi.modules.vpc import Vpc
    from QcloudApi.qcloudapi import QcloudApi

    # The vpc module pins requestHost to the vendor's host: point it at vpcd
    # (configuration at run time; the SDK's code is untouched).
    Vpc.requestHost = host
    with open(creds_path) as f:
        creds = json.load(f)
    service = QcloudApi(
        "vpc",
        {
            "secretId": creds["secretId"],
            "secretKey": creds["secretKey"],
            "Region": creds["region"],
            "method": "POST",
            "SignatureMethod": "HmacSHA256",
        },
    )
    answer = service.call(action, json.loads(params))
    if isinstance(answer, bytes):
        answer = answer.decode()
    print(answer)


if __name__ == "__main__":
    main()
