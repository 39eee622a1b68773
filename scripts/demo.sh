#!/usr/bin/env bash
# A real IPsec tunnel made by vpcd, end to end: `sudo bash scripts/demo.sh`.
#
# It builds two network namespaces on this machine, a "cloud" gateway and a
# "peer" (customer) gateway, each running its own strongSwan charon, starts
# `vpcd serve` with the cloud charon as its gateway node, creates a VPC, a VPN
# gateway, a peer gateway and a tunnel through the v2 API with `vpcd call`,
# loads the peer's side from GetVpnConnConfig into the peer charon, waits for
# DescribeVpnConn to report netStatus "available" and pings across the tunnel.
# Everything it created is removed on every exit (success, failure, Ctrl-C).
#
# Network safety: the two namespaces are joined only by a veth pair created
# directly inside them; nothing is attached to a host interface and nothing
# routes to the host. "Public" addresses are documentation ranges (cloud
# 203.0.113.1/24, peer 198.51.100.1/24), inner addresses /32s on lo (cloud
# 10.100.0.1, peer 10.200.0.1). vpcd itself listens on 127.0.0.1 (a free
# port) and reaches the cloud charon over a unix socket.
#
# Needs: root, iproute2, ping, python3, strongSwan 5.9 with kernel-libipsec
# (strongswan-charon strongswan-swanctl libcharon-extra-plugins
# libstrongswan-standard-plugins, as `bash scripts/test.sh` installs), and a
# built vpcd (`cargo build -p vpcd`; another binary with VPCD_BIN=path).
#
# Exit status: 0 when the ping crossed the tunnel, non-zero otherwise.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VPCD=${VPCD_BIN:-$ROOT/target/debug/vpcd}
CHARON=/usr/sbin/charon-systemd
LIBIPSEC=/usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so

CLOUD_NS="vpcd-demo-$$-c"
PEER_NS="vpcd-demo-$$-p"
VETH=vpcd0
CLOUD_PUBLIC=203.0.113.1
PEER_PUBLIC=198.51.100.1
CLOUD_INNER=10.100.0.1
PEER_INNER=10.200.0.1
VPC_CIDR=10.100.0.0/16
IDC_CIDR=10.200.0.0/16
NET_WAIT_SECS=30

STATE=""
VPCD_PID=""
CLOUD_PID=""
PEER_PID=""
INTERRUPTED=false

T0=$SECONDS
step() { printf '\n==== [%s +%ss] %s ====\n' "$(date +%H:%M:%S)" "$((SECONDS - T0))" "$*"; }
note() { printf '  %s\n' "$*"; }
die() {
    printf '\nFAILED: %s\n' "$*" >&2
    exit 1
}

# Stop one process we started, by PID: SIGTERM, then SIGKILL after 5 s.
stop_pid() {
    local name=$1 pid=$2 i
    [[ -n "$pid" ]] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            note "$name (pid $pid) ignored SIGTERM, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
    note "stopped $name (pid $pid)"
}

# Print the end of a log file (never the first-start credentials).
show_tail() {
    local title=$1 file=$2
    [[ -s "$file" ]] || return 0
    printf '\n---- last lines of %s ----\n' "$title" >&2
    grep -v -i 'secretkey' "$file" | tail -n 25 >&2 || true
}

cleanup() {
    local rc=$?
    # A second Ctrl-C must not cut the cleanup short.
    trap '' INT TERM
    trap - EXIT
    set +e
    # A command killed by the signal (Ctrl-C reaches the whole process group).
    ((rc > 128)) && INTERRUPTED=true
    if [[ -n "$STATE" && $rc -ne 0 ]] && ! $INTERRUPTED; then
        show_tail "vpcd.log" "$STATE/vpcd.log"
        show_tail "the cloud charon log" "$STATE/cloud/charon.log"
        show_tail "the peer charon log" "$STATE/peer/charon.log"
    fi
    step "cleanup"
    stop_pid vpcd "$VPCD_PID"
    stop_pid "cloud charon" "$CLOUD_PID"
    stop_pid "peer charon" "$PEER_PID"
    # Backstops: a background job whose PID was not recorded yet (a signal
    # right after it started), anything still running inside the namespaces.
    local pid ns
    for pid in $(jobs -p); do
        kill -0 "$pid" 2>/dev/null && stop_pid "background job" "$pid"
    done
    for ns in "$CLOUD_NS" "$PEER_NS"; do
        if [[ -e "/run/netns/$ns" ]]; then
            for pid in $(ip netns pids "$ns" 2>/dev/null); do
                stop_pid "process in $ns" "$pid"
            done
            ip netns del "$ns" && note "deleted namespace $ns"
        fi
    done
    if [[ -n "$STATE" && -d "$STATE" ]]; then
        rm -rf -- "$STATE" && note "removed $STATE"
    fi
    if ((rc == 0)); then
        printf '\nDemo finished: a real IPsec tunnel, made through the v2 API, carried the ping.\n'
    elif $INTERRUPTED; then
        printf '\nInterrupted; everything the demo created is removed.\n' >&2
    else
        printf '\nDemo FAILED (exit %s); everything it created is removed.\n' "$rc" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'INTERRUPTED=true; exit 130' INT
trap 'INTERRUPTED=true; exit 143' TERM

# Read JSON documents (vpcd call --wait prints two) from stdin and print the
# value at a dotted path (numbers index arrays) in the last one.
jget() {
    python3 -c '
import json, sys
text, dec, docs, i = sys.stdin.read(), json.JSONDecoder(), [], 0
while True:
    while i < len(text) and text[i].isspace():
        i += 1
    if i >= len(text):
        break
    doc, i = dec.raw_decode(text, i)
    docs.append(doc)
try:
    v = docs[-1]
    for k in sys.argv[1].split("."):
        v = v[int(k)] if isinstance(v, list) else v[k]
except (IndexError, KeyError, TypeError, ValueError):
    sys.exit("no %s in the answer" % sys.argv[1])
print(v if isinstance(v, str) else json.dumps(v))
' "$1"
}

# vpcd call against this demo's server; the answer is kept in $STATE/last.json.
call() {
    local rc=0
    "$VPCD" call --endpoint "$ENDPOINT" --credentials "$STATE/vpcd/credentials" "$@" \
        >"$STATE/last.json" 2>"$STATE/last.err" || rc=$?
    ((rc > 128)) && exit "$rc" # killed by a signal (Ctrl-C)
    if ((rc != 0)); then
        local action
        for action in "$@"; do [[ "$action" == --* ]] || break; done
        sed 's/\("preSharedKey": *"\)[^"]*/\1<redacted>/' "$STATE/last.json" "$STATE/last.err" >&2
        die "vpcd call $action"
    fi
}
answer() { jget "$1" <"$STATE/last.json"; }

strongswan_conf() {
    local dir=$1
    # One setting per line: a value runs to the end of its line.
    cat <<EOF
charon {
  load_modular = no
  # kernel-libipsec (userspace ESP over a TUN device) must come before kernel-netlink
  load = random nonce openssl aes sha1 sha2 md5 hmac gmp kdf pem pkcs1 pubkey x509 kernel-libipsec kernel-netlink socket-default vici
  install_routes = yes
  install_virtual_ip = no
  retransmit_tries = 3
  retransmit_timeout = 1.0
  retransmit_base = 1.4
  filelog {
    main {
      path = $dir/charon.log
      time_format = %H:%M:%S
      default = 1
      ike = 2
      cfg = 2
      knl = 1
      flush_line = yes
    }
  }
  plugins {
    vici {
      socket = unix://$dir/charon.vici
    }
  }
}
swanctl {
  load = pem pkcs1 x509 pubkey random
}
EOF
}

# Start a charon inside a namespace with a private strongswan.conf and a
# private /run (the bind mount lives in `ip netns exec`'s own mount namespace),
# then wait until its VICI socket answers. Sets the global named by $3.
start_charon() {
    local ns=$1 dir=$2 var=$3 pid i
    # shellcheck disable=SC2016 # $1 and $2 are expanded by the inner sh
    STRONGSWAN_CONF="$dir/strongswan.conf" ip netns exec "$ns" \
        sh -c 'mount --bind "$1" /run && exec "$2"' sh "$dir/run" "$CHARON" \
        </dev/null >"$dir/charon.out" 2>&1 &
    pid=$!
    printf -v "$var" '%s' "$pid"
    for ((i = 0; i < 100; i++)); do
        if STRONGSWAN_CONF="$dir/strongswan.conf" swanctl --stats --uri "unix://$dir/charon.vici" >/dev/null 2>&1; then
            note "charon in $ns: pid $pid, VICI unix://$dir/charon.vici"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$dir/charon.out" >&2
            die "the charon in $ns exited"
        fi
        sleep 0.1
    done
    die "the charon in $ns did not open its VICI socket within 10 s"
}

# ---------------------------------------------------------------------------
step "checks"
[[ "$(id -u)" == 0 ]] || die "run as root (network namespaces): sudo bash scripts/demo.sh"
for tool in ip ping python3 swanctl mount; do
    command -v "$tool" >/dev/null || die "\`$tool\` not found"
done
[[ -x "$CHARON" ]] || die "$CHARON missing (install strongswan-charon)"
[[ -e "$LIBIPSEC" ]] || die "$LIBIPSEC missing (install libcharon-extra-plugins)"
[[ -x "$VPCD" ]] || die "$VPCD not found: build it first with \`cargo build -p vpcd\`"
# Settings for other vpcd instances (VPCD_DATABASE_URL, VPCD_ENDPOINT, ...)
# must not leak into this one.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^VPCD_' || true)
note "vpcd:       $VPCD"

# ---------------------------------------------------------------------------
step "1. two namespaces, a veth between them, a charon in each"
STATE=$(mktemp -d "/tmp/vpcd-demo-$$.XXXXXX")
note "state dir:  $STATE"
for side in cloud peer; do
    mkdir -p "$STATE/$side/run"
    strongswan_conf "$STATE/$side" >"$STATE/$side/strongswan.conf"
done
ip netns add "$CLOUD_NS"
ip netns add "$PEER_NS"
for ns in "$CLOUD_NS" "$PEER_NS"; do
    ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
# Both ends are born inside the demo's namespaces: nothing touches the host.
ip link add "$VETH" netns "$CLOUD_NS" type veth peer name "$VETH" netns "$PEER_NS"
ip -n "$CLOUD_NS" link set lo up
ip -n "$CLOUD_NS" link set "$VETH" up
ip -n "$CLOUD_NS" addr add "$CLOUD_PUBLIC/24" dev "$VETH"
ip -n "$CLOUD_NS" route add 198.51.100.0/24 dev "$VETH"
ip -n "$CLOUD_NS" addr add "$CLOUD_INNER/32" dev lo
ip -n "$PEER_NS" link set lo up
ip -n "$PEER_NS" link set "$VETH" up
ip -n "$PEER_NS" addr add "$PEER_PUBLIC/24" dev "$VETH"
ip -n "$PEER_NS" route add 203.0.113.0/24 dev "$VETH"
ip -n "$PEER_NS" addr add "$PEER_INNER/32" dev lo
note "$CLOUD_NS: $VETH $CLOUD_PUBLIC/24, lo $CLOUD_INNER/32"
note "$PEER_NS: $VETH $PEER_PUBLIC/24, lo $PEER_INNER/32"
ip netns exec "$CLOUD_NS" ping -n -q -c 1 -W 2 "$PEER_PUBLIC" >/dev/null ||
    die "$CLOUD_PUBLIC cannot reach $PEER_PUBLIC over the veth"
note "outer path works: $CLOUD_PUBLIC -> $PEER_PUBLIC over the veth"
if ip netns exec "$CLOUD_NS" ping -n -q -c 1 -W 1 -I "$CLOUD_INNER" "$PEER_INNER" >/dev/null 2>&1; then
    die "$PEER_INNER answers before any tunnel exists"
fi
note "inner path before the tunnel: $CLOUD_INNER -> $PEER_INNER gets no answer (no route)"
start_charon "$CLOUD_NS" "$STATE/cloud" CLOUD_PID
start_charon "$PEER_NS" "$STATE/peer" PEER_PID

# ---------------------------------------------------------------------------
step "2. vpcd serve, with the cloud charon as its gateway node"
NO_COLOR=1 "$VPCD" serve --data-dir "$STATE/vpcd" --http 127.0.0.1:0 --https off \
    --charon "unix://$STATE/cloud/charon.vici" --public-ip "$CLOUD_PUBLIC" \
    </dev/null >"$STATE/vpcd.log" 2>&1 &
VPCD_PID=$!
for ((i = 0; ; i++)); do
    [[ -s "$STATE/vpcd/listen.json" && -s "$STATE/vpcd/credentials" ]] && break
    kill -0 "$VPCD_PID" 2>/dev/null || die "vpcd serve exited"
    ((i < 300)) || die "vpcd did not write $STATE/vpcd/listen.json within 30 s"
    sleep 0.1
done
ENDPOINT="http://$(jget http <"$STATE/vpcd/listen.json")"
note "vpcd: pid $VPCD_PID, $ENDPOINT, log $STATE/vpcd.log"

# ---------------------------------------------------------------------------
step "3. VPC, VPN gateway, peer gateway and tunnel through the v2 API"
call CreateVpc vpcName=demo "cidrBlock=$VPC_CIDR"
VPC_ID=$(answer uniqVpcId)
note "CreateVpc      -> $VPC_ID ($VPC_CIDR)"
call RunVpnGw "vpcId=$VPC_ID" name=demo-gw bandwidth=5
VPNGW_ID=$(answer data.vpnGwId)
VPNGW_ADDR=$(answer data.vpnGwAddress)
note "RunVpnGw       -> $VPNGW_ID, public address $VPNGW_ADDR"
[[ "$VPNGW_ADDR" == "$CLOUD_PUBLIC" ]] || die "the VPN gateway got $VPNGW_ADDR, expected $CLOUD_PUBLIC"
call AddUserGw userGwName=demo-peer "userGwAddr=$PEER_PUBLIC"
USERGW_ID=$(answer userGwId)
note "AddUserGw      -> $USERGW_ID ($PEER_PUBLIC)"
PSK="demo-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
call --wait AddVpnConnEx "vpcId=$VPC_ID" "vpnGwId=$VPNGW_ID" "userGwId=$USERGW_ID" \
    vpnConnName=demo-tunnel "preSharedKey=$PSK" "userGwCidrBlock.0=$IDC_CIDR"
CONN_ID=$(answer data.output.unVpnConnId)
note "AddVpnConnEx   -> $CONN_ID, task $(answer data.taskId): succeeded ($VPC_CIDR <-> $IDC_CIDR, API defaults: IKEv1 main mode)"

# ---------------------------------------------------------------------------
step "4. the peer's configuration from GetVpnConnConfig, loaded into the peer charon"
call GetVpnConnConfig "vpnConnId=$CONN_ID" vendorname=strongSwan
answer data.configFileInfo >"$STATE/peer/swanctl.conf"
note "$(answer data.vendorname) $(answer data.software): $(wc -l <"$STATE/peer/swanctl.conf") lines -> $STATE/peer/swanctl.conf"
sed -e 's/^/    | /' -e 's/\(secret *= *\).*/\1<redacted>/' "$STATE/peer/swanctl.conf"
if ! STRONGSWAN_CONF="$STATE/peer/strongswan.conf" swanctl --load-all --noprompt \
    --file "$STATE/peer/swanctl.conf" --uri "unix://$STATE/peer/charon.vici" >"$STATE/load.out" 2>&1; then
    cat "$STATE/load.out" >&2
    die "swanctl --load-all into the peer charon"
fi
# (swanctl also looks for certificate directories next to the file: none here)
grep -v '^opening directory' "$STATE/load.out" | sed 's/^/  swanctl: /'

# ---------------------------------------------------------------------------
step "5. waiting (up to ${NET_WAIT_SECS}s) for DescribeVpnConn netStatus = available"
deadline=$((SECONDS + NET_WAIT_SECS))
while :; do
    call DescribeVpnConn "vpnConnId=$CONN_ID"
    NET=$(answer data.0.netStatus)
    STATUS=$(answer data.0.vpcConnStatus)
    [[ "$NET" == available ]] && break
    ((SECONDS < deadline)) || die "netStatus still '$NET' (vpcConnStatus $STATUS) after ${NET_WAIT_SECS}s"
    sleep 0.5
done
note "$CONN_ID: vpcConnStatus $STATUS, netStatus $NET"
STRONGSWAN_CONF="$STATE/peer/strongswan.conf" swanctl --list-sas --uri "unix://$STATE/peer/charon.vici" |
    sed 's/^/    peer| /'

# ---------------------------------------------------------------------------
step "6. ping across the tunnel: $CLOUD_INNER ($CLOUD_NS) -> $PEER_INNER ($PEER_NS)"
ip netns exec "$CLOUD_NS" ping -n -c 3 -W 2 -I "$CLOUD_INNER" "$PEER_INNER" ||
    die "no answer from $PEER_INNER through the tunnel"
note "the peer's CHILD SA counters after the ping (ESP in UDP/4500 on the veth):"
STRONGSWAN_CONF="$STATE/peer/strongswan.conf" swanctl --list-sas --uri "unix://$STATE/peer/charon.vici" |
    grep -E '^ +(in|out) ' | sed 's/^ */    peer| /'
note "SUCCESS: $CLOUD_INNER reached $PEER_INNER through the IPsec tunnel $CONN_ID"
