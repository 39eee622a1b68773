"""Fixtures of the API 3.0 suite: one `vpcd serve` per store (SQLite, and
PostgreSQL when $VPCD_TEST_PG_URL is set; see tests/common/vpcdsuite.py),
and clients of the official tencentcloud-sdk-python 3.1.195 and tccli
3.1.189.1, used unmodified and pointed at the server by configuration only
(endpoint, protocol, certificate). Proxy variables are cleared for this
process and every child, so nothing leaves 127.0.0.1."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))

import sdk3util  # noqa: E402
import vpcdsuite  # noqa: E402

vpcdsuite.clear_proxies()


@pytest.fixture(scope="session")
def database(request):
    """SQLite, then (with $VPCD_TEST_PG_URL) a PostgreSQL database of its own."""
    yield from vpcdsuite.database(request.param, "3.0 suite", "sdk3")


def pytest_report_header(config):
    return vpcdsuite.report_header()


def pytest_generate_tests(metafunc):
    vpcdsuite.parametrize_stores(metafunc)


@pytest.fixture(scope="session")
def server(tmp_path_factory, database):
    # Tasks take a moment, as on the real service; tests poll them.
    args = ["--regions", sdk3util.REGIONS, "--api-only-delay-ms", "50"]
    srv = vpcdsuite.start(tmp_path_factory.mktemp("vpcd3"), args, database)
    try:
        yield srv
    finally:
        vpcdsuite.stop(srv.proc)
        if srv.proc.returncode != 0:
            print(f"\nvpcd exited with status {srv.proc.returncode}; log:\n{srv.log_tail()}")


STYLES = [
    ("POST", "TC3-HMAC-SHA256", "http"),
    ("GET", "TC3-HMAC-SHA256", "http"),
    ("POST", "HmacSHA1", "http"),
    ("GET", "HmacSHA256", "http"),
    ("POST", "TC3-HMAC-SHA256", "https"),
    ("GET", "HmacSHA1", "https"),
    ("POST", "HmacSHA256", "https"),
]


@pytest.fixture(params=STYLES, ids=[f"{m}-{s}-{p}" for m, s, p in STYLES])
def api(request, server):
    """An SDK client in one request style, in a region of its own (so tests
    never see each other's resources or quotas)."""
    method, sign, protocol = request.param
    return sdk3util.Api(server, method=method, sign=sign, protocol=protocol,
                        region=sdk3util.unique_region())


@pytest.fixture
def tc3(server):
    """The SDK's default style (POST JSON, TC3) in a region of its own."""
    return sdk3util.Api(server, region=sdk3util.unique_region())


def pytest_runtest_logreport(report):
    vpcdsuite.record_skipped_test("API 3.0 suite", report)


def pytest_terminal_summary(terminalreporter):
    if "postgres" not in vpcdsuite.stores():
        vpcdsuite.record_skip("API 3.0 suite on PostgreSQL: VPCD_TEST_PG_URL is not set")
        terminalreporter.write_line(
            "NOTE: the PostgreSQL run of the 3.0 suite was SKIPPED: VPCD_TEST_PG_URL is not set")
