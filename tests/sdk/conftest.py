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

import json
import os
import re
import signal
import ssl
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

import sdkutil

ROOT = Path(__file__).resolve().parents[2]

for _var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
    os.environ.pop(_var, None)


def _binary() -> Path:
    """target/debug/vpcd (or $VPCD_BIN), built if missing."""
    explicit = os.environ.get("VPCD_BIN")
    if explicit:
        return Path(explicit)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    if not target.is_absolute():
        target = ROOT / target
    binary = target / "debug" / "vpcd"
    if not binary.exists():
        subprocess.run(["cargo", "build", "-p", "vpcd"], cwd=ROOT, check=True)
    return binary


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None  # not written yet, or half written


def _log_tail(path: Path, lines: int = 25) -> str:
    """The end of the server's log, without backtrace frames."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    frame = re.compile(r"^\s+(\d+: |at )")
    return "\n".join([line for line in text if not frame.match(line)][-lines:])


class Server:
    """A running `vpcd serve` with its addresses and first-start credentials."""

    def __init__(self, proc, data_dir: Path, log_path: Path, listen: dict, creds: dict):
        self.proc = proc
        self.data_dir = data_dir
        self.log_path = log_path
        self.http = listen["http"]  # "127.0.0.1:NNN"
        self.https = listen["https"]
        self.secret_id = creds["secretId"]
        self.secret_key = creds["secretKey"]
        self.region = creds["region"]
        self.cert = data_dir / "tls" / "cert.pem"

    def log_tail(self, lines: int = 40) -> str:
        return _log_tail(self.log_path, lines)


def _start(tmp: Path, database=None) -> Server:
    data_dir = tmp / "data"
    log_path = tmp / "vpcd.log"
    env = dict(os.environ)
    # The suite runs with the default settings; only the listen addresses
    # and the store are chosen here.
    for var in list(env):
        if var.startswith("VPCD_") and var != "VPCD_LOG":
            del env[var]
    env.setdefault("VPCD_LOG", "info")
    argv = [
        str(_binary()),
        "serve",
        "--data-dir", str(data_dir),
        "--http", "127.0.0.1:0",
        "--https", "127.0.0.1:0",
        "--regions", sdkutil.REGIONS,
    ]
    if database:
        argv += ["--database", database]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 60
    listen = creds = None
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vpcd {' '.join(argv[1:])} exited with status {proc.returncode}; "
                            f"its log ({log_path}) ends:\n{_log_tail(log_path)}", pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"vpcd serve did not become ready in 60 s; its log ({log_path}) ends:\n"
                            f"{_log_tail(log_path)}", pytrace=False)
            listen = listen or _read_json(data_dir / "listen.json")
            creds = creds or _read_json(data_dir / "credentials")
            if listen and creds and _healthy(listen["http"]):
                break
            time.sleep(0.05)
    except BaseException:
        _stop(proc)
        raise
    return Server(proc, data_dir, log_path, listen, creds)


def _healthy(http_addr: str) -> bool:
    try:
        with sdkutil.plain_opener().open(f"http://{http_addr}/healthz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _stop(proc) -> None:
    """SIGTERM by PID, then SIGKILL after a timeout."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _is_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


def _psql(url: str, sql: str) -> None:
    subprocess.run(["psql", "-w", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
                   check=True, stdin=subprocess.DEVNULL, timeout=60)


@pytest.fixture(scope="session")
def database(request):
    """The store behind the server: SQLite in its data directory, then (when
    $VPCD_TEST_PG_URL is set, as scripts/test.sh does) a PostgreSQL database
    of its own, created next to the one named there and dropped afterwards."""
    if request.param == "sqlite":
        yield None
        return
    base = os.environ.get("VPCD_TEST_PG_URL")
    if not base:
        if _is_ci():
            pytest.fail("VPCD_TEST_PG_URL is not set under CI=true: the PostgreSQL run of the SDK suite cannot run")
        pytest.skip("VPCD_TEST_PG_URL is not set: no PostgreSQL run of the SDK suite")
    url = urllib.parse.urlsplit(base)
    name = f"{url.path.lstrip('/') or 'vpcd'}_sdk_{os.getpid()}"
    _psql(base, f'CREATE DATABASE "{name}"')
    try:
        yield urllib.parse.urlunsplit(url._replace(path="/" + name))
    finally:
        _psql(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _stores():
    # Outside CI without PostgreSQL, the PostgreSQL run is left out (the
    # header says so); under CI it is always there, and fails without it.
    if os.environ.get("VPCD_TEST_PG_URL") or _is_ci():
        return ["sqlite", "postgres"]
    return ["sqlite"]


def pytest_report_header(config):
    if "postgres" in _stores():
        return "vpcd stores: SQLite, PostgreSQL (a database next to $VPCD_TEST_PG_URL)"
    return "vpcd stores: SQLite only; the PostgreSQL run is SKIPPED: VPCD_TEST_PG_URL is not set"


def pytest_generate_tests(metafunc):
    if "database" in metafunc.fixturenames:
        metafunc.parametrize("database", _stores(), indirect=True, scope="session")


@pytest.fixture(scope="session")
def server(tmp_path_factory, database):
    srv = _start(tmp_path_factory.mktemp("vpcd"), database)
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
        _stop(srv.proc)
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


def _record_skip(line: str) -> None:
    """Append to the list of skipped tests scripts/test.sh prints at the end
    ($VPCD_TEST_SKIP_LOG), so that a skip shows there with its reason."""
    path = os.environ.get("VPCD_TEST_SKIP_LOG")
    if path:
        with open(path, "a") as f:
            f.write(line.replace("\n", " ") + "\n")


def pytest_runtest_logreport(report):
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _record_skip(f"SDK suite {report.nodeid}: {reason}")


def pytest_terminal_summary(terminalreporter):
    if "postgres" not in _stores():
        _record_skip("SDK suite on PostgreSQL: VPCD_TEST_PG_URL is not set")
        terminalreporter.write_line(
            "NOTE: the PostgreSQL run of the SDK suite was SKIPPED: VPCD_TEST_PG_URL is not set "
            "(scripts/test.sh sets it)"
        )
