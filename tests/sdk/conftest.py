"""Fixtures of the SDK suite: one `vpcd serve` per session, and clients of
the official Tencent Cloud API v2 SDK (qcloudapi-sdk-python 2.0.15, used
unmodified) pointed at it.

The SDK is pointed at the local server by configuration only:
- its vpc module hard-codes ``requestHost = 'vpc.api.qcloud.com'`` as a class
  attribute; the session sets that attribute to the server's HTTPS address;
- it always speaks HTTPS with Python's default certificate verification; the
  session sets ``SSL_CERT_FILE`` to the server's self-signed certificate
  before any connection is made;
- it honours ``https_proxy``; the session removes proxy variables so that
  nothing leaves 127.0.0.1.
"""

import os
import ssl
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))

import sdkutil  # noqa: E402
import vpcdsuite  # noqa: E402

vpcdsuite.clear_proxies()


@pytest.fixture(scope="session")
def database(request):
    """SQLite, then (with $VPCD_TEST_PG_URL) a PostgreSQL database of its own."""
    yield from vpcdsuite.database(request.param, "SDK suite", "sdk")


def pytest_report_header(config):
    return vpcdsuite.report_header()


def pytest_generate_tests(metafunc):
    vpcdsuite.parametrize_stores(metafunc)


@pytest.fixture(scope="session")
def server(tmp_path_factory, database):
    srv = vpcdsuite.start(tmp_path_factory.mktemp("vpcd"), ["--regions", sdkutil.REGIONS], database)
    # Trust the server's self-signed certificate for every HTTPS connection
    # the SDK makes (it uses Python's default SSL context, which reads
    # SSL_CERT_FILE each time one is created).
    old_cert_file = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = str(srv.cert)
    assert ssl.get_default_verify_paths().cafile == str(srv.cert), ssl.get_default_verify_paths()
    vpc_class = sdkutil.vpc_module_class()
    old_host = vpc_class.requestHost
    vpc_class.requestHost = srv.https
    try:
        yield srv
    finally:
        vpc_class.requestHost = old_host
        if old_cert_file is None:
            os.environ.pop("SSL_CERT_FILE", None)
        else:
            os.environ["SSL_CERT_FILE"] = old_cert_file
        vpcdsuite.stop(srv.proc)
        rc = srv.proc.returncode
        if rc != 0:
            print(f"\nvpcd serve exited with status {rc} on SIGTERM; log tail:\n{srv.log_tail()}")


VARIANTS = [
    ("GET", "HmacSHA1"),
    ("GET", "HmacSHA256"),
    ("POST", "HmacSHA1"),
    ("POST", "HmacSHA256"),
]


@pytest.fixture(params=VARIANTS, ids=[f"{m}-{s}" for m, s in VARIANTS])
def api(request, server):
    """An SDK client for one (HTTP method, signature method) pair, in a
    region of its own so that tests never see each other's resources or
    quotas."""
    method, sign_method = request.param
    return sdkutil.Client(server, method=method, sign_method=sign_method, region=sdkutil.unique_region())


@pytest.fixture(params=["HmacSHA1", "HmacSHA256"])
def sign_method(request):
    return request.param


def pytest_runtest_logreport(report):
    vpcdsuite.record_skipped_test("SDK suite", report)


def pytest_terminal_summary(terminalreporter):
    if "postgres" not in vpcdsuite.stores():
        vpcdsuite.record_skip("SDK suite on PostgreSQL: VPCD_TEST_PG_URL is not set")
        terminalreporter.write_line(
            "NOTE: the PostgreSQL run of the SDK suite was SKIPPED: VPCD_TEST_PG_URL is not set "
            "(scripts/test.sh sets it)"
        )
