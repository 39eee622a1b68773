"""Fixtures of the API 3.0 suite: one `vpcd serve` per store (SQLite, and
PostgreSQL when $VPCD_TEST_PG_URL is set), and clients of the official
tencentcloud-sdk-python 3.1.195 and tccli 3.1.189.1, used unmodified and
pointed at the server by configuration only (endpoint, protocol,
certificate). Proxy variables are cleared for this process and every child,
so nothing leaves 127.0.0.1."""

import json
import os
import re
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

import sdk3util

ROOT = Path(__file__).resolve().parents[2]

for _var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY",
             "no_proxy", "NO_PROXY"):
    os.environ.pop(_var, None)


def _binary() -> Path:
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
        return None


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    frame = re.compile(r"^\s+(\d+: |at )")
    return "\n".join([line for line in text if not frame.match(line)][-lines:])


class Server:
    """A running `vpcd serve`: addresses, certificate, first-start key."""

    def __init__(self, proc, data_dir: Path, log_path: Path, listen: dict, creds: dict):
        self.proc = proc
        self.data_dir = data_dir
        self.log_path = log_path
        self.http = listen["http"]
        self.https = listen["https"]
        self.secret_id = creds["secretId"]
        self.secret_key = creds["secretKey"]
        self.cert = data_dir / "tls" / "cert.pem"

    def log_tail(self) -> str:
        return _log_tail(self.log_path)


def _start(tmp: Path, database=None) -> Server:
    data_dir = tmp / "data"
    log_path = tmp / "vpcd.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VPCD_") or k == "VPCD_LOG"}
    env.setdefault("VPCD_LOG", "info")
    argv = [str(_binary()), "serve", "--data-dir", str(data_dir),
            "--http", "127.0.0.1:0", "--https", "127.0.0.1:0",
            "--regions", sdk3util.REGIONS,
            # Tasks take a moment, as on the real service; tests poll them.
            "--api-only-delay-ms", "50"]
    if database:
        argv += ["--database", database]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 60
    listen = creds = None
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vpcd exited with status {proc.returncode}; log:\n{_log_tail(log_path)}",
                            pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"vpcd did not become ready in 60 s; log:\n{_log_tail(log_path)}",
                            pytrace=False)
            listen = listen or _read_json(data_dir / "listen.json")
            creds = creds or _read_json(data_dir / "credentials")
            if listen and creds and _healthy(listen["http"]):
                break
            time.sleep(0.05)
    except BaseException:
        _stop(proc)
        raise
    return Server(proc, data_dir, log_path, listen, creds)


def _healthy(addr: str) -> bool:
    try:
        with sdk3util.plain_opener().open(f"http://{addr}/healthz", timeout=2) as r:
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


def _stores():
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
def database(request):
    if request.param == "sqlite":
        yield None
        return
    base = os.environ.get("VPCD_TEST_PG_URL")
    if not base:
        if _is_ci():
            pytest.fail("VPCD_TEST_PG_URL is not set under CI=true: the PostgreSQL run cannot run")
        pytest.skip("VPCD_TEST_PG_URL is not set: no PostgreSQL run of the 3.0 suite")
    url = urllib.parse.urlsplit(base)
    name = f"{url.path.lstrip('/') or 'vpcd'}_sdk3_{os.getpid()}"
    _psql(base, f'CREATE DATABASE "{name}"')
    try:
        yield urllib.parse.urlunsplit(url._replace(path="/" + name))
    finally:
        _psql(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def server(tmp_path_factory, database):
    srv = _start(tmp_path_factory.mktemp("vpcd3"), database)
    try:
        yield srv
    finally:
        _stop(srv.proc)
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
        _record_skip(f"API 3.0 suite {report.nodeid}: {reason}")


def pytest_terminal_summary(terminalreporter):
    if "postgres" not in _stores():
        _record_skip("API 3.0 suite on PostgreSQL: VPCD_TEST_PG_URL is not set")
        terminalreporter.write_line(
            "NOTE: the PostgreSQL run of the 3.0 suite was SKIPPED: VPCD_TEST_PG_URL is not set")
