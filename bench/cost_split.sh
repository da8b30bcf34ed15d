#!/usr/bin/env bash
# Where a captured message's CPU goes: the same SMTP load (bench/build/smtp_load, 10 KB
# multipart messages, 64 connections, PIPELINING) against four servers, rounds interleaved,
# each server pinned to CPU 0 and the load generator to CPU 1:
#   smtp-sink   Postfix's test sink (the floor of bench/run.sh): accepts and discards
#   no-store    sluice, SMTP listener and pipeline only: a testkit stage answers `discard`,
#               so nothing is written (the pipeline's deferred test stage never runs; it is
#               there because a pipeline must be able to make a message durable)
#   spool       sluice, the message made durable in the kernel's spool (one file per
#               message), then a deferred testkit stage that appends one log line
#   capture     sluice, the capture pipeline of bench/run.sh: SMTP → store (SQLite)
# For each it prints msgs/s and the server's CPU per message (utime+stime of the process
# over the measured messages, from /proc/PID/stat), so the cost of each part of sluice's
# path can be read off by subtraction. See bench/README.md, "Where the CPU goes".
#
# Needs a build tree with the test plugins (build/lib/sluice/test-plugins/testkit.so) and
# /usr/sbin/smtp-sink (bench/run.sh installs Postfix for it).
#
# Usage: bench/cost_split.sh [--build DIR] [--rounds N] [--messages N] [--max-seconds S]
set -euo pipefail
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$BENCH/lib/common.sh"
build="$ROOT/build"
rounds=3
messages=8000
max_seconds=10
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) [[ -n "${2:-}" ]] || die "--build needs a value"; build="$2" ;;
    *) common_option "$1" "${2:-}" || die "unknown option $1" ;;
  esac
  shift 2
done
sluice="$build/bin/sluice"
testkit="$build/lib/sluice/test-plugins"
[[ -x "$sluice" ]] || die "no sluice at $sluice"
[[ -f "$testkit/testkit.so" ]] || die "no testkit.so in $testkit"
[[ -x /usr/sbin/smtp-sink ]] || die "/usr/sbin/smtp-sink missing (run bench/run.sh once)"
build_load
port=25932
# The servers' temp dirs are deleted when the script ends, not after each run: see
# bench/lib/bench.py, Server.cleanup (inode allocation on ext4 without a journal).
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
variants=(smtp-sink no-store spool capture)

config() {  # $1: no-store | spool | capture
  local stages
  case "$1" in
    no-store) stages="      - {plugin: test_verdict, verdict: discard}
      - {plugin: test_deferred, log: ./deferred.log}" ;;
    spool) stages="      - {plugin: test_deferred, log: ./deferred.log}" ;;
    capture) stages="      - {plugin: store, mailbox: default}" ;;
  esac
  cat <<EOF
log: {format: text, level: warn}
spool: {path: ./spool}
services:
  - {name: default, plugin: store, path: ./bench.db, max_messages: 0}
listeners:
  - {name: smtp, plugin: smtp, pipeline: capture, listen: ["127.0.0.1:$port"], max_connections: 1000}
pipelines:
  - name: capture
    stages:
$stages
EOF
}

run_one() {  # $1: variant; prints "msgs/s ok failed cpu_us_per_msg"
  local dir; dir="$(mktemp -d -p "$work")"
  if [[ "$1" == smtp-sink ]]; then
    # smtp-sink's stdout must not be the caller's: this function runs in a command substitution.
    (cd "$dir" && exec taskset -c 0 /usr/sbin/smtp-sink -u nobody "127.0.0.1:$port" 1024 \
      > "$dir/out" 2> "$dir/log") &
  else
    config "$1" > "$dir/sluice.yaml"
    (cd "$dir" && SLUICE_PLUGIN_PATH="$testkit" exec taskset -c 0 "$sluice" serve \
      -c "$dir/sluice.yaml" > "$dir/out" 2> "$dir/log") &
  fi
  local pid=$!
  wait_port $port
  run_load $port 1000 64 5 > /dev/null
  local before after out
  before="$(cpu_ticks "$pid")"
  out="$(run_load $port "$messages" 64 "$max_seconds")"
  after="$(cpu_ticks "$pid")"
  stop "$pid"
  python3 -c '
import json, os, sys
r = json.loads(sys.argv[1])
ticks = int(sys.argv[3]) - int(sys.argv[2])
us = ticks * 1e6 / os.sysconf("SC_CLK_TCK") / max(r["ok"], 1)
print("%.1f %d %d %.0f" % (r["msgs_per_s"], r["ok"], r["failed"], us))' "$out" "$before" "$after"
}

declare -A best cpu
for v in "${variants[@]}"; do best[$v]=0; cpu[$v]=""; done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$rounds"); do
  for v in "${variants[@]}"; do
    read -r rate ok failed us <<< "$(run_one "$v")"
    echo "round $r  $v: $rate msgs/s, $us us CPU per message (ok $ok, failed $failed)"
    best[$v]=$(max_of "${best[$v]}" "$rate")
    cpu[$v]="${cpu[$v]} $us"
  done
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for v in "${variants[@]}"; do
  python3 - "$v" "${best[$v]}" "${best[smtp-sink]}" ${cpu[$v]} <<'EOF'
import statistics, sys
name, rate, sink = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
us = [float(x) for x in sys.argv[4:]]
print("%-9s best %8.0f msgs/s = %.2fx smtp-sink; CPU per message median %.0f us (%s)"
      % (name, rate, rate / sink, statistics.median(us), " / ".join("%.0f" % u for u in us)))
EOF
done
