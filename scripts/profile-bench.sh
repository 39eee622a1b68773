#!/usr/bin/env bash
# Profile vpcd under one vpcd-bench scenario: `perf record` (call graphs) and
# `strace -c` (syscall counts), each for 5 s in the middle of the scenario
# itself (after its ceiling run). Needs root, perf and strace.
#
#   scripts/profile-bench.sh SCENARIO OUT_DIR [vpcd-bench options...]
#   scripts/profile-bench.sh describe /tmp/prof-describe --database sqlite \
#       --vpcd target/release/vpcd --no-build
#
# Then: perf report -i OUT_DIR/perf.data --no-children --sort sym -g none
# and OUT_DIR/strace.txt (read counts per answer; strace slows vpcd down).
set -euo pipefail
scenario=${1:?scenario: describe, list, add, badsig or ceiling}
out=${2:?output directory}
shift 2
bench=${VPCD_BENCH:-target/release/vpcd-bench}
duration=16
mkdir -p "$out"
case $scenario in
    describe) mark='(b) DescribeVpnConn by id' ;;
    list) mark='(c) DescribeVpnConn, page' ;;
    add) mark='(d) AddVpnConnEx' ;;
    badsig) mark='(x) diagnostic' ;;
    ceiling) mark='(a) GET /healthz' ;;
    *) echo "unknown scenario $scenario" >&2; exit 2 ;;
esac
# Signed requests never leave through a proxy.
env -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY -u all_proxy -u ALL_PROXY \
    "$bench" "$scenario" --duration "$duration" "$@" >"$out/bench.out" 2>"$out/bench.err" &
bench_pid=$!
trap 'kill "$bench_pid" 2>/dev/null || true' EXIT
until grep -qF "$mark" "$out/bench.err" 2>/dev/null; do
    kill -0 "$bench_pid" 2>/dev/null || { echo "vpcd-bench ended early: see $out/bench.err" >&2; exit 1; }
    sleep 0.2
done
# The mark is printed before the scenario's own ceiling run: wait it out.
sleep $((duration + 2))
vpcd_pid=$(pgrep -n -P "$bench_pid")
perf record -F 999 -g --call-graph dwarf,16384 -p "$vpcd_pid" -o "$out/perf.data" -- sleep 5 >/dev/null 2>&1
strace -f -c -p "$vpcd_pid" -o "$out/strace.txt" &
strace_pid=$!
sleep 5
kill -INT "$strace_pid"
wait "$strace_pid" || true
wait "$bench_pid"
trap - EXIT
echo "profile in $out (perf.data, strace.txt, bench.out)"
