#!/usr/bin/env bash
# The project's one test command: `bash scripts/test.sh`.
#
# On a fresh Debian 12 machine (as root) it installs what the tests need, then
# runs every check: rustfmt, clippy, the Rust tests (unit, store, network
# namespace end-to-end) and the Python suites that drive the server through
# the official Tencent Cloud clients: the v2 SDK (tests/sdk), and the API 3.0
# SDK and tccli (tests/sdk3). Set-up is idempotent and quick when
# everything is already there.
#
# Environment:
#   CI=true          anything that cannot be set up or run is a failure
#                    (outside CI such parts are skipped, with the reason printed)
#   SKIP_SETUP=1     do not touch apt, PostgreSQL's installation or .venv
#   PYTEST_ARGS      extra arguments for pytest (e.g. "-k replay -x")
#
# At start and at exit it removes what killed runs left behind (namespaces,
# their charons, test databases, processes of this script's runs; see
# "Leftovers" below). It ends with the list of skipped tests and their
# reasons; under CI=true a skip is a failure.
#
# Exit status: 0 when every step passed, non-zero otherwise.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

SCRIPT_START=$SECONDS
is_ci() { [[ "${CI:-}" == "true" || "${CI:-}" == "1" ]]; }
step() { printf '\n==== [%s] %s ====\n' "$(date +%H:%M:%S)" "$*"; }
note() { printf '  %s\n' "$*"; }
warn() { printf '  WARNING: %s\n' "$*" >&2; }
die() {
    printf '\nFAILED: %s\n' "$*" >&2
    exit 1
}

# Clean-up actions run on any exit (success, failure, Ctrl-C).
CLEANUP=()
on_exit() {
    local rc=$?
    local i
    for ((i = ${#CLEANUP[@]} - 1; i >= 0; i--)); do
        eval "${CLEANUP[$i]}" || true
    done
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------
step "environment"
if [[ -z "$(command -v cargo || true)" && -f "$HOME/.cargo/env" ]]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null || die "cargo is not on PATH (the Rust toolchain comes with the machine; it cannot be fetched here)"
IS_ROOT=false
[[ "$(id -u)" == "0" ]] && IS_ROOT=true
note "repo:  $ROOT"
note "user:  $(id -un) (root: $IS_ROOT), CI=${CI:-<unset>}"
note "cargo: $(cargo --version)"
if ! $IS_ROOT; then
    if is_ci; then
        die "must run as root under CI=true (network-namespace tests and package installation need it)"
    fi
    warn "not root: packages cannot be installed and the network-namespace tests will skip"
fi

# ---------------------------------------------------------------------------
# Leftovers of killed runs: a run that is killed (SIGKILL, a CI timeout)
# gets no chance to remove what its tests made. Tests name what they make
# after the PID of the process that made it:
#   namespaces vpcd-<pid>-<n>-c/-p (the strongSwan test bed) and
#     vpcd-demo-<pid>-c/-p (scripts/demo.sh), with the charons inside them;
#   databases vpcd_t_<pid>_<16 hex> (store, API and cluster tests),
#     <db>_sdk_<pid> (the SDK suite) and vpcd_test_<pid>_<time> (this script).
# What belongs to a PID that no longer runs is stale and is removed; what
# belongs to a running process (another run going on now) is left alone.
# Every process this script starts carries VPCD_TESTSH_RUN=<pid>.<start
# time> in its environment (children inherit it); those of a run that is
# gone, and at exit this run's own that outlived their test, are stopped by
# PID. The sweep runs at start and at exit.
proc_start_time() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }
RUN_TAG="$$.$(proc_start_time $$)"
export VPCD_TESTSH_RUN="$RUN_TAG"
pid_running() { kill -0 "$1" 2>/dev/null; }
tag_running() { [[ "$(proc_start_time "${1%%.*}")" == "${1#*.}" ]]; }
descends_from_us() {
    local pid=$1
    while [[ -n "$pid" && "$pid" != 0 && "$pid" != 1 ]]; do
        [[ "$pid" == "$$" ]] && return 0
        pid=$(awk '/^PPid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
    done
    return 1
}
stop_pids() {
    local pid
    (($# > 0)) || return 0
    kill -TERM "$@" 2>/dev/null || true
    for pid in "$@"; do
        for _ in $(seq 50); do pid_running "$pid" || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
}
sweep_processes() {
    local at_exit=$1 dir pid tag stale=()
    for dir in /proc/[0-9]*; do
        pid=${dir#/proc/}
        tag=$({ tr '\0' '\n' <"$dir/environ"; } 2>/dev/null | sed -n 's/^VPCD_TESTSH_RUN=//p') || true
        [[ -n "$tag" ]] || continue
        if [[ "$tag" == "$RUN_TAG" ]]; then
            $at_exit || continue
            descends_from_us "$pid" && continue # this script's own subshells
        elif tag_running "$tag"; then
            continue # another run, going on now
        fi
        note "stopping leftover process $pid ($(tr '\0' ' ' <"$dir/cmdline" 2>/dev/null | cut -c1-100))"
        stale+=("$pid")
    done
    stop_pids "${stale[@]}"
}
sweep_namespaces() {
    local ns pids
    $IS_ROOT || return 0
    for ns in $(ip netns list 2>/dev/null | awk '{ print $1 }'); do
        [[ "$ns" =~ ^vpcd-([0-9]+)-[0-9]+-[cp]$ || "$ns" =~ ^vpcd-demo-([0-9]+)-[cp]$ ]] || continue
        pid_running "${BASH_REMATCH[1]}" && continue
        read -r -a pids <<<"$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')"
        note "removing leftover namespace $ns (its maker, pid ${BASH_REMATCH[1]}, is gone; stopping ${#pids[@]} process(es) in it)"
        stop_pids "${pids[@]}"
        ip netns del "$ns" || warn "could not delete namespace $ns"
    done
}
sweep_databases() {
    local db pid
    [[ -n "${PG_SWEEP:-}" ]] || return 0
    for db in $(psql -w -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -Atqc \
        'SELECT datname FROM pg_database' 2>/dev/null); do
        if [[ "$db" =~ ^vpcd_t_([0-9]+)_[0-9a-f]{16}$ || "$db" =~ ^vpcd_test_([0-9]+)_[0-9]+$ ||
            "$db" =~ ^[a-z0-9_]+_sdk_([0-9]+)$ ]]; then
            pid=${BASH_REMATCH[1]}
            pid_running "$pid" && continue
            note "dropping leftover database $db (its maker, pid $pid, is gone)"
            psql -w -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -qc \
                "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null || warn "could not drop $db"
        fi
    done
}
sweep() {
    sweep_processes "$1"
    sweep_namespaces
    sweep_databases
}
step "leftovers of earlier runs"
sweep false
CLEANUP+=("sweep true")

# Tests that skip say why in this file (VPCD_TEST_SKIP_LOG: Rust tests and
# the SDK suite append '<test>: <reason>' lines); the summary lists them.
SKIP_LOG=$(mktemp)
CLEANUP+=("rm -f '$SKIP_LOG'")
export VPCD_TEST_SKIP_LOG="$SKIP_LOG"
skipped() { printf '%s\n' "$*" >>"$SKIP_LOG"; }

# ---------------------------------------------------------------------------
# Debian packages.
APT_PACKAGES=(
    strongswan-charon strongswan-swanctl libcharon-extra-plugins
    libstrongswan-standard-plugins charon-systemd
    iputils-ping tcpdump iproute2 postgresql-client
    # kill/pgrep (tests and this script), TLS roots for pip, the C compiler
    # that crates with C code (ring, bundled SQLite) build with
    procps ca-certificates gcc libc6-dev
    # the web console's browser test (crates/vpcd/tests/console.rs): headless
    # Chromium driven through chromedriver, both from Debian
    chromium chromium-driver fonts-dejavu-core
)

pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# The PIDs of strongSwan daemons running in the host's network namespace
# right now (those of tests, inside namespaces of their own, are not counted).
strongswan_pids() {
    local name pid host_ns
    host_ns=$(readlink /proc/self/ns/net)
    for name in charon charon-systemd starter; do
        for pid in $(pgrep -x "$name" 2>/dev/null || true); do
            if [[ "$(readlink "/proc/$pid/ns/net" 2>/dev/null || true)" == "$host_ns" ]]; then
                echo "$pid"
            fi
        done
    done | sort
}

# Install Debian packages without letting their maintainer scripts start any
# daemon (strongSwan would otherwise start a charon on the host).
apt_install() {
    local pkgs=("$@")
    $IS_ROOT || die "cannot install ${pkgs[*]}: not root"
    local before
    before=$(strongswan_pids)
    local made_policy=false
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\n# scripts/test.sh: no daemon starts during package installation\nexit 101\n' \
            >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        made_policy=true
        CLEANUP+=("rm -f /usr/sbin/policy-rc.d")
    fi
    local log
    log=$(mktemp)
    CLEANUP+=("rm -f '$log'")
    if [[ -z "${APT_UPDATED:-}" ]]; then
        note "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -q >"$log" 2>&1 ||
            { cat "$log"; die "apt-get update failed"; }
        APT_UPDATED=1
    fi
    note "apt-get install --no-install-recommends ${pkgs[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q \
        --no-install-recommends "${pkgs[@]}" >"$log" 2>&1 ||
        { cat "$log"; die "apt-get install failed"; }
    note "installed: $(grep -c '^Setting up ' "$log" || true) package(s)"
    if $made_policy; then
        rm -f /usr/sbin/policy-rc.d
    fi
    # Where systemd runs, charon-systemd's package enables strongswan.service:
    # the tests run their own charons in network namespaces, never one on
    # the host, so keep it from starting at boot too.
    if [[ -d /run/systemd/system ]] && [[ " ${pkgs[*]} " == *" charon-systemd "* ]]; then
        note "disabling strongswan.service on the host"
        systemctl disable --now strongswan.service >/dev/null 2>&1 || true
    fi
    # Belt and braces: stop any strongSwan daemon the installation started
    # (by PID: only those that were not running before).
    local after pid
    after=$(strongswan_pids)
    for pid in $(comm -13 <(echo "$before") <(echo "$after")); do
        warn "package installation started $(ps -o comm= -p "$pid" 2>/dev/null || echo '?') (pid $pid): stopping it"
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in $(comm -13 <(echo "$before") <(echo "$after")); do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
}

step "Debian packages"
if [[ -n "${SKIP_SETUP:-}" ]]; then
    note "SKIP_SETUP is set: not checking"
else
    missing=()
    for p in "${APT_PACKAGES[@]}"; do
        pkg_installed "$p" || missing+=("$p")
    done
    # A Python that can make virtualenvs (Debian splits venv/ensurepip out).
    if ! command -v python3 >/dev/null; then
        missing+=(python3 python3-venv)
    elif ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
        missing+=(python3-venv)
    fi
    if ((${#missing[@]} == 0)); then
        note "all present"
    elif $IS_ROOT; then
        apt_install "${missing[@]}"
    else
        warn "missing packages (cannot install without root): ${missing[*]}"
    fi
fi
# ---------------------------------------------------------------------------
# Libreswan, the second real peer (crates/vpcd/tests/libreswan.rs, and the
# readwriteconf/algparse unit tests of the peer configurations). Its package
# conflicts with strongSwan's, so it is not installed: `apt-get download`
# fetches the .deb into .cache/libreswan/ and `dpkg -x` extracts it there
# (tests find it through VPCD_LIBRESWAN_DIR); only its libraries are
# installed. Idempotent: nothing is fetched when the extracted pluto runs.
LIBRESWAN_LIBS=(libldns3 libevent-core-2.1-7 libevent-pthreads-2.1-7 libunbound8 libcurl3-nss libnss3-tools)
LIBRESWAN_CACHE="$ROOT/.cache/libreswan"
export VPCD_LIBRESWAN_DIR="$LIBRESWAN_CACHE/root"
libreswan_setup() {
    local pluto="$VPCD_LIBRESWAN_DIR/usr/libexec/ipsec/pluto" missing=() p deb
    for p in "${LIBRESWAN_LIBS[@]}"; do
        pkg_installed "$p" || missing+=("$p")
    done
    if ((${#missing[@]} > 0)); then
        $IS_ROOT || { warn "Libreswan's libraries are missing (${missing[*]}) and we are not root"; return 1; }
        apt_install "${missing[@]}"
    fi
    if "$pluto" --version >/dev/null 2>&1; then
        note "present: $("$pluto" --version 2>&1 | cut -d' ' -f1-2) in $VPCD_LIBRESWAN_DIR"
        return 0
    fi
    mkdir -p "$LIBRESWAN_CACHE"
    deb=$(find "$LIBRESWAN_CACHE" -maxdepth 1 -name 'libreswan_*.deb' | head -1)
    if [[ -z "$deb" ]]; then
        note "apt-get download libreswan (into $LIBRESWAN_CACHE)"
        (cd "$LIBRESWAN_CACHE" && apt-get download -q libreswan >/dev/null 2>&1) ||
            { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -q >/dev/null 2>&1 &&
                (cd "$LIBRESWAN_CACHE" && apt-get download -q libreswan >/dev/null 2>&1); } ||
            { warn "apt-get download libreswan failed"; return 1; }
        deb=$(find "$LIBRESWAN_CACHE" -maxdepth 1 -name 'libreswan_*.deb' | head -1)
    fi
    rm -rf "$VPCD_LIBRESWAN_DIR"
    dpkg -x "$deb" "$VPCD_LIBRESWAN_DIR" || { warn "dpkg -x $deb failed"; return 1; }
    "$pluto" --version >/dev/null 2>&1 || { warn "the extracted $pluto does not run"; return 1; }
    note "extracted $(basename "$deb") into $VPCD_LIBRESWAN_DIR"
}
step "Libreswan (extracted, not installed)"
if [[ -n "${SKIP_SETUP:-}" ]]; then
    note "SKIP_SETUP is set: not checking ($VPCD_LIBRESWAN_DIR is used if it is there)"
elif ! libreswan_setup; then
    is_ci && die "Libreswan is required under CI=true"
    note "the Libreswan tests will skip and say why"
fi

# Libreswan 5 (Debian 13's package, scripts/libreswan5/README.md): fetched
# with apt against a private trixie source list and state under
# .cache/libreswan5/ (the machine's apt setup is not touched), extracted
# there, plus a stand-in for the one library Debian 12 lacks.
LIBRESWAN5_LIBS=(libcurl3-gnutls libldns3 libevent-core-2.1-7 libevent-pthreads-2.1-7 libunbound8 libnss3-tools)
LIBRESWAN5_CACHE="$ROOT/.cache/libreswan5"
export VPCD_LIBRESWAN5_DIR="$LIBRESWAN5_CACHE/root"
libreswan5_setup() {
    local pluto="$VPCD_LIBRESWAN5_DIR/usr/libexec/ipsec/pluto" libs="$VPCD_LIBRESWAN5_DIR/usr/lib/x86_64-linux-gnu"
    local missing=() p deb apt
    for p in "${LIBRESWAN5_LIBS[@]}"; do
        pkg_installed "$p" || missing+=("$p")
    done
    if ((${#missing[@]} > 0)); then
        $IS_ROOT || { warn "Libreswan 5's libraries are missing (${missing[*]}) and we are not root"; return 1; }
        apt_install "${missing[@]}"
    fi
    if LD_LIBRARY_PATH="$libs" "$pluto" --version >/dev/null 2>&1; then
        note "present: $(LD_LIBRARY_PATH="$libs" "$pluto" --version 2>&1 | cut -d' ' -f1-2) in $VPCD_LIBRESWAN5_DIR"
        return 0
    fi
    mkdir -p "$LIBRESWAN5_CACHE/lists/partial" "$LIBRESWAN5_CACHE/apt/archives/partial"
    printf 'deb http://deb.debian.org/debian trixie main\n' >"$LIBRESWAN5_CACHE/sources.list"
    apt=(-q -o "Dir::Etc::sourcelist=$LIBRESWAN5_CACHE/sources.list" -o Dir::Etc::sourceparts=/dev/null
        -o "Dir::State::Lists=$LIBRESWAN5_CACHE/lists" -o "Dir::Cache=$LIBRESWAN5_CACHE/apt"
        -o APT::Get::List-Cleanup=0)
    deb=$(find "$LIBRESWAN5_CACHE" -maxdepth 1 -name 'libreswan_5*.deb' | head -1)
    if [[ -z "$deb" ]]; then
        note "apt-get download libreswan/trixie (into $LIBRESWAN5_CACHE)"
        apt-get "${apt[@]}" update >/dev/null 2>&1 &&
            (cd "$LIBRESWAN5_CACHE" && apt-get "${apt[@]}" download libreswan/trixie >/dev/null 2>&1) ||
            { warn "apt-get download libreswan/trixie failed"; return 1; }
        deb=$(find "$LIBRESWAN5_CACHE" -maxdepth 1 -name 'libreswan_5*.deb' | head -1)
    fi
    rm -rf "$VPCD_LIBRESWAN5_DIR"
    dpkg -x "$deb" "$VPCD_LIBRESWAN5_DIR" || { warn "dpkg -x $deb failed"; return 1; }
    mkdir -p "$libs"
    cc -shared -fPIC -O1 -Wl,--version-script=<(echo 'OPENLDAP_2.200 { global: *; };') \
        -Wl,-soname,libldap.so.2 -o "$libs/libldap.so.2" "$ROOT/scripts/libreswan5/ldapstub.c" &&
        cc -shared -fPIC -Wl,--version-script=<(echo 'OPENLDAP_2.200 { global: *; };') \
            -Wl,-soname,liblber.so.2 -o "$libs/liblber.so.2" -x c /dev/null ||
        { warn "building the libldap stand-in failed"; return 1; }
    LD_LIBRARY_PATH="$libs" "$pluto" --version >/dev/null 2>&1 || { warn "the extracted $pluto does not run"; return 1; }
    note "extracted $(basename "$deb") into $VPCD_LIBRESWAN5_DIR"
}
step "Libreswan 5 (Debian 13's, extracted, not installed)"
if [[ -n "${SKIP_SETUP:-}" ]]; then
    note "SKIP_SETUP is set: not checking ($VPCD_LIBRESWAN5_DIR is used if it is there)"
elif ! libreswan5_setup; then
    is_ci && die "Libreswan 5 is required under CI=true"
    note "the Libreswan 5 tests will skip and say why"
fi

running=$(strongswan_pids | tr '\n' ' ')
if [[ -n "${running// /}" ]]; then
    warn "strongSwan daemons are running on the host (pids: $running); this script did not start them and leaves them alone"
fi

# ---------------------------------------------------------------------------
step "Python virtualenv (.venv)"
VENV="$ROOT/.venv"
REQ="$ROOT/requirements-test.txt"
STAMP="$VENV/.requirements.sha256"
want_hash=$(sha256sum "$REQ" | cut -d' ' -f1)
venv_ok() {
    [[ -x "$VENV/bin/python" ]] &&
        "$VENV/bin/python" -c 'import QcloudApi.qcloudapi, tencentcloud.vpc, tccli, pytest' 2>/dev/null &&
        [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want_hash" ]]
}
if venv_ok; then
    note "up to date ($("$VENV/bin/python" --version), $("$VENV/bin/python" -m pytest --version 2>&1 | head -1))"
elif [[ -n "${SKIP_SETUP:-}" ]]; then
    die ".venv is missing or stale and SKIP_SETUP is set"
else
    if ! [[ -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
        rm -rf "$VENV"
        note "creating $VENV with $(command -v python3) ($(python3 --version))"
        python3 -m venv "$VENV"
    fi
    note "pip install --require-hashes -r requirements-test.txt"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install -q --require-hashes -r "$REQ"
    echo "$want_hash" >"$STAMP"
    "$VENV/bin/python" -c 'import QcloudApi.qcloudapi, tencentcloud.vpc, tccli, pytest' ||
        die ".venv does not import QcloudApi, tencentcloud, tccli and pytest"
fi

# ---------------------------------------------------------------------------
step "PostgreSQL"
PG_HOST=127.0.0.1
PG_PORT=5432
PG_SKIP_REASON=""
pg_ok() {
    PGCONNECT_TIMEOUT=5 psql -w -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres \
        -Atqc 'select 1' >/dev/null 2>&1
}
# The server answers on the port (whether or not it lets us in).
pg_listening() {
    pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 5 >/dev/null 2>&1
}
# The Debian clusters (version and name) configured for our port.
pg_our_clusters() {
    command -v pg_lsclusters >/dev/null || return 0
    pg_lsclusters -h 2>/dev/null | awk -v port="$PG_PORT" '$3 == port { print $1 "/" $2 }'
}
pg_start_clusters() {
    local c
    for c in $(pg_our_clusters); do
        note "starting cluster $c"
        pg_ctlcluster --skip-systemctl-redirect "${c%/*}" "${c#*/}" start || true
    done
    for _ in $(seq 30); do pg_listening && return 0; sleep 1; done
    return 1
}
# A Debian cluster, freshly installed or preinstalled, only takes passwords
# on TCP; the tests connect as postgres from loopback without one, as on the
# project's machines. The rule goes first in pg_hba.conf, once.
pg_trust_loopback() {
    local c hba
    for c in $(pg_our_clusters); do
        hba="/etc/postgresql/$c/pg_hba.conf"
        [[ -f "$hba" ]] || continue
        grep -q '^# scripts/test.sh' "$hba" && continue
        note "allowing trust auth from 127.0.0.1 in $hba"
        {
            echo "# scripts/test.sh: the test suite connects as postgres from loopback without a password"
            echo "host all all 127.0.0.1/32 trust"
            echo "host all all ::1/128 trust"
            cat "$hba"
        } >"$hba.new"
        chown --reference="$hba" "$hba.new"
        chmod --reference="$hba" "$hba.new"
        mv "$hba.new" "$hba"
        pg_ctlcluster --skip-systemctl-redirect "${c%/*}" "${c#*/}" reload || true
    done
    for _ in $(seq 10); do pg_ok && return 0; sleep 1; done
    return 1
}

if ! command -v psql >/dev/null; then
    PG_SKIP_REASON="psql (postgresql-client) is not installed"
elif pg_ok; then
    note "reachable on $PG_HOST:$PG_PORT"
elif [[ -n "${SKIP_SETUP:-}" ]]; then
    PG_SKIP_REASON="not reachable on $PG_HOST:$PG_PORT (SKIP_SETUP is set, so not starting, configuring or installing it)"
elif ! $IS_ROOT; then
    PG_SKIP_REASON="not reachable on $PG_HOST:$PG_PORT and not root, so cannot start, configure or install it"
else
    note "cannot connect as postgres to $PG_HOST:$PG_PORT"
    if ! pg_listening && [[ -z "$(pg_our_clusters)" ]] && ! pkg_installed postgresql; then
        note "the PostgreSQL server is not installed: installing it"
        apt_install postgresql
    fi
    # Stopped (preinstalled, or just installed with its daemon held back):
    # start it. Then, listening but refusing us: add the trust rule.
    pg_listening || pg_start_clusters || true
    if pg_listening && ! pg_ok; then
        pg_trust_loopback || true
    fi
    if pg_ok; then
        note "reachable on $PG_HOST:$PG_PORT"
    elif pg_listening; then
        PG_SKIP_REASON="the server on $PG_HOST:$PG_PORT refuses postgres without a password (no Debian cluster of this machine serves that port, so its pg_hba.conf was not changed)"
    else
        PG_SKIP_REASON="nothing listens on $PG_HOST:$PG_PORT after starting/installing the server"
    fi
fi

if [[ -z "$PG_SKIP_REASON" ]]; then
    PG_SWEEP=1
    sweep_databases
    PG_DB="vpcd_test_$$_$(date +%s)"
    psql -w -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qc \
        "CREATE DATABASE \"$PG_DB\"" || die "could not create database $PG_DB"
    CLEANUP+=("psql -w -h $PG_HOST -p $PG_PORT -U postgres -d postgres -qc 'DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)' >/dev/null && echo '  dropped database $PG_DB'")
    export VPCD_TEST_PG_URL="postgres://postgres@$PG_HOST:$PG_PORT/$PG_DB"
    note "VPCD_TEST_PG_URL=$VPCD_TEST_PG_URL (dropped at exit)"
else
    unset VPCD_TEST_PG_URL
    if is_ci; then
        die "PostgreSQL is required under CI=true: $PG_SKIP_REASON"
    fi
    printf '\n  *** PostgreSQL tests are SKIPPED: %s ***\n\n' "$PG_SKIP_REASON"
    skipped "PostgreSQL tests (store conformance, cluster, API and SDK suites on PostgreSQL): $PG_SKIP_REASON"
fi

# ---------------------------------------------------------------------------
# The checks. Each runs even if an earlier one failed, so one run shows
# everything that is wrong; the script fails if any failed.
FAILED=()
PASSED=()
run_step() {
    local name=$1
    shift
    step "$name"
    note "\$ $*"
    local t0=$SECONDS rc=0
    "$@" || rc=$?
    if ((rc == 0)); then
        note "-> $name: OK ($((SECONDS - t0))s)"
        PASSED+=("$name")
    else
        note "-> $name: FAILED with exit status $rc ($((SECONDS - t0))s)"
        FAILED+=("$name")
    fi
}

run_step "cargo fmt" cargo fmt --all --check
run_step "cargo clippy" cargo clippy --workspace --all-targets --all-features -- -D warnings
# With VPCD_TEST_PG_URL set, this run covers PostgreSQL: the store conformance
# suite (tests/postgres.rs), the multi-node cluster tests, and the API suite
# (each app on a fresh database of its own). The API suite then runs once more
# on SQLite, so both engines are covered. Without PostgreSQL, the first run is
# the SQLite one and the PostgreSQL tests say they were skipped (CI fails above).
run_step "cargo test" cargo test --workspace --all-features --no-fail-fast
if [[ -n "${VPCD_TEST_PG_URL:-}" ]]; then
    run_step "cargo test (API suite on SQLite)" \
        env -u VPCD_TEST_PG_URL cargo test --workspace --all-features --no-fail-fast --test api --test snapshots
fi

# The binary the SDK suite starts. The same cargo invocation as the tests
# (same features, so nothing is rebuilt after them); it leaves
# target/debug/vpcd in place because the vpcd crate has integration tests.
step "build target/debug/vpcd for the SDK suite"
if cargo test --workspace --all-features --no-run --quiet &&
    { [[ -x "${CARGO_TARGET_DIR:-target}/debug/vpcd" ]] || cargo build -p vpcd; }; then
    read -r -a extra <<<"${PYTEST_ARGS:-}"
    run_step "SDK suite (pytest)" "$VENV/bin/python" -m pytest tests/sdk -q "${extra[@]}"
    run_step "API 3.0 suite (pytest)" "$VENV/bin/python" -m pytest tests/sdk3 -q "${extra[@]}"
else
    note "-> building target/debug/vpcd FAILED: the SDK suites cannot run"
    FAILED+=("build target/debug/vpcd" "SDK suite (pytest)" "API 3.0 suite (pytest)")
fi

step "summary ($((SECONDS - SCRIPT_START))s)"
for s in "${PASSED[@]}"; do note "ok      $s"; done
for s in "${FAILED[@]}"; do note "FAILED  $s"; done
if [[ -s "$SKIP_LOG" ]]; then
    note ""
    note "skipped ($(sort -u "$SKIP_LOG" | wc -l)), with the reason each gave:"
    sort -u "$SKIP_LOG" | while IFS= read -r line; do note "  SKIPPED $line"; done
    if is_ci; then
        FAILED+=("no skips under CI")
        note "FAILED  no skips under CI: everything must run under CI=true"
    fi
else
    note "skipped: none"
fi
if ((${#FAILED[@]} > 0)); then
    die "${#FAILED[@]} step(s) failed: ${FAILED[*]}"
fi
echo "all checks passed"
