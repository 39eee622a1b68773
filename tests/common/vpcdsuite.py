"""What the Python suites (tests/sdk for v2, tests/sdk3 for API 3.0) share:
one `vpcd serve` per store, started from target/debug/vpcd on a fresh data
directory with proxy variables cleared for it and for this process; the
store choice (SQLite, and PostgreSQL when $VPCD_TEST_PG_URL is set or under
CI); and the list of skips scripts/test.sh prints.

Each suite's conftest imports it (`sys.path` gets this directory) and adds
its own clients."""

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

ROOT = Path(__file__).resolve().parents[2]

PROXY_VARS = ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")


def clear_proxies() -> None:
    """Nothing these suites send may leave 127.0.0.1; children inherit this."""
    for var in PROXY_VARS:
        os.environ.pop(var, None)


def plain_opener():
    """urllib without proxies (everything here talks to 127.0.0.1)."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def binary() -> Path:
    """target/debug/vpcd (or $VPCD_BIN), built if missing."""
    explicit = os.environ.get("VPCD_BIN")
    if explicit:
        return Path(explicit)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    if not target.is_absolute():
        target = ROOT / target
    path = target / "debug" / "vpcd"
    if not path.exists():
        subprocess.run(["cargo", "build", "-p", "vpcd"], cwd=ROOT, check=True)
    return path


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None  # not written yet, or half written


def log_tail(path: Path, lines: int = 25) -> str:
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
        return log_tail(self.log_path, lines)


def start(tmp: Path, args, database=None) -> Server:
    """`vpcd serve` on loopback ports of its own, with `args` added; waits
    until it answers /healthz."""
    data_dir = tmp / "data"
    log_path = tmp / "vpcd.log"
    # Only the listen addresses, the store and `args` are chosen here.
    env = {k: v for k, v in os.environ.items() if not k.startswith("VPCD_") or k == "VPCD_LOG"}
    env.setdefault("VPCD_LOG", "info")
    # The suites send one account's requests back to back and create
    # gateways in many regions: no rate limit and the whole address pool
    # for the account, unless `args` says otherwise.
    argv = [str(binary()), "serve", "--data-dir", str(data_dir),
            "--http", "127.0.0.1:0", "--https", "127.0.0.1:0",
            "--rate-limit-per-account", "0",
            "--limit-pool-addresses-per-account", "254", *args]
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
                            f"its log ({log_path}) ends:\n{log_tail(log_path)}", pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"vpcd serve did not become ready in 60 s; its log ({log_path}) ends:\n"
                            f"{log_tail(log_path)}", pytrace=False)
            listen = listen or _read_json(data_dir / "listen.json")
            creds = creds or _read_json(data_dir / "credentials")
            if listen and creds and _healthy(listen["http"]):
                break
            time.sleep(0.05)
    except BaseException:
        stop(proc)
        raise
    return Server(proc, data_dir, log_path, listen, creds)


def _healthy(http_addr: str) -> bool:
    try:
        with plain_opener().open(f"http://{http_addr}/healthz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def stop(proc) -> None:
    """SIGTERM by PID, then SIGKILL after a timeout."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def is_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


def _psql(url: str, sql: str) -> None:
    subprocess.run(["psql", "-w", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
                   check=True, stdin=subprocess.DEVNULL, timeout=60)


def stores():
    # Outside CI without PostgreSQL, the PostgreSQL run is left out (the
    # header says so); under CI it is always there, and fails without it.
    if os.environ.get("VPCD_TEST_PG_URL") or is_ci():
        return ["sqlite", "postgres"]
    return ["sqlite"]


def database(store: str, suite: str, tag: str):
    """The store behind a suite's server, as a generator for a session
    fixture: SQLite in its data directory (None), or a PostgreSQL database
    of its own next to $VPCD_TEST_PG_URL, dropped afterwards."""
    if store == "sqlite":
        yield None
        return
    base = os.environ.get("VPCD_TEST_PG_URL")
    if not base:
        if is_ci():
            pytest.fail(f"VPCD_TEST_PG_URL is not set under CI=true: the PostgreSQL run of the {suite} cannot run")
        pytest.skip(f"VPCD_TEST_PG_URL is not set: no PostgreSQL run of the {suite}")
    url = urllib.parse.urlsplit(base)
    name = f"{url.path.lstrip('/') or 'vpcd'}_{tag}_{os.getpid()}"
    _psql(base, f'CREATE DATABASE "{name}"')
    try:
        yield urllib.parse.urlunsplit(url._replace(path="/" + name))
    finally:
        _psql(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def report_header() -> str:
    if "postgres" in stores():
        return "vpcd stores: SQLite, PostgreSQL (a database next to $VPCD_TEST_PG_URL)"
    return "vpcd stores: SQLite only; the PostgreSQL run is SKIPPED: VPCD_TEST_PG_URL is not set"


def parametrize_stores(metafunc) -> None:
    if "database" in metafunc.fixturenames:
        metafunc.parametrize("database", stores(), indirect=True, scope="session")


def record_skip(line: str) -> None:
    """Append to the list of skipped tests scripts/test.sh prints at the end
    ($VPCD_TEST_SKIP_LOG), so that a skip shows there with its reason."""
    path = os.environ.get("VPCD_TEST_SKIP_LOG")
    if path:
        with open(path, "a") as f:
            f.write(line.replace("\n", " ") + "\n")


def record_skipped_test(suite: str, report) -> None:
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        record_skip(f"{suite} {report.nodeid}: {reason}")
