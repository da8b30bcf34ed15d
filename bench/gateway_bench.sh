#!/usr/bin/env bash
# Gateway throughput: SMTP in → rewrite (every recipient to one inbox, From override, subject
# prefix) → relay (deferred) to Postfix's smtp-sink, against direct delivery into smtp-sink.
# 64 connections, 10 KB multipart messages (bench/build/smtp_load --size 10k), PIPELINING.
# sluice is pinned to CPU 0 and the load generator to CPU 1 (bench/README.md, Method).
#
# Two rates for the gateway, because the relay is deferred: sluice answers 250 once the message
# is in the spool and relays it afterwards.
#   accept   messages accepted / wall time of the SMTP load (what the application sees)
#   e2e      messages accepted / time from the start of the load until smtp-sink has received
#            every one of them (smtp-sink -c counts the messages it got; the script polls it)
# The direct figure is smtp_load against smtp-sink alone (smtp-sink pinned to CPU 0 then).
# Rounds are interleaved (direct, gateway, direct, gateway, …); the best round is reported.
#
# Usage: bench/gateway_bench.sh [--sluice PATH] [--rounds N] [--messages N] [--max-seconds S]
#                               [--drain-seconds S] [--concurrency N] [--pool N]
# --concurrency: the relay's retry.concurrency (attempts at once, default 64 here, 16 in the
# stage); --pool: idle upstream connections kept for reuse (pool.size, default 64 here, 4 in
# the stage).
set -euo pipefail
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$BENCH/lib/common.sh"
sluice="$ROOT/build/bin/sluice"
rounds=3
messages=20000
max_seconds=15
drain_seconds=180
concurrency=64
pool=64
while [[ $# -gt 0 ]]; do
  [[ -n "${2:-}" ]] || die "$1 needs a value"
  case "$1" in
    --sluice) sluice="$2" ;;
    --drain-seconds) drain_seconds="$2" ;;
    --concurrency) concurrency="$2" ;;
    --pool) pool="$2" ;;
    *) common_option "$1" "$2" || die "unknown option $1" ;;
  esac
  shift 2
done
[[ -x "$sluice" ]] || die "no sluice at $sluice"
sink=/usr/sbin/smtp-sink
[[ -x "$sink" ]] || die "$sink missing (Debian package postfix)"
build_load
sink_port=25941
gw_port=25942
for p in $sink_port $gw_port; do
  port_free $p || die "port $p is in use"
done

# smtp-sink -c writes "sess=N quit=N mesg=N\r" whenever a message or a session ends.
sink_count() {  # $1: smtp-sink's output file; prints messages received so far
  tr '\r' '\n' < "$1" | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -1 | sed 's/^$/0/'
}

run_direct() {  # prints msgs/s ok
  local dir; dir="$(mktemp -d)"
  taskset -c 0 "$sink" -u nobody 127.0.0.1:$sink_port 1024 > /dev/null 2>&1 &
  local spid=$!
  wait_port $sink_port
  run_load $sink_port 500 64 5 > /dev/null
  local out
  out="$(run_load $sink_port "$messages" 64 "$max_seconds")"
  stop "$spid"
  rm -rf "$dir"
  echo "$(json_field "$out" msgs_per_s) $(json_field "$out" ok)"
}

run_gateway() {  # prints accept_msgs/s e2e_msgs/s ok failed delivered sluice_cpu_pct
  local dir; dir="$(mktemp -d)"
  chmod 755 "$dir"
  cat > "$dir/sluice.yaml" <<EOF
log: {format: text, level: warn}
spool: {path: ./spool}
listeners:
  - {name: smtp, plugin: smtp, pipeline: gateway, listen: ["127.0.0.1:$gw_port"], max_connections: 1000}
pipelines:
  - name: gateway
    stages:
      - plugin: rewrite
        recipients:
          - {match: "*", to: qa@staging.example}
        override_from: noreply@staging.example
        subject_prefix: "[STAGING] "
      - plugin: relay
        timeout: 60s
        retry: {initial: 1s, max: 10s, lifetime: 1h, concurrency: $concurrency}
        smarthost: 127.0.0.1:$sink_port
        security: none
        pool: {size: $pool}
EOF
  # The sink shares CPU 1 with the load generator: CPU 0 is sluice's alone.
  taskset -c 1 "$sink" -c -u nobody 127.0.0.1:$sink_port 1024 > "$dir/sink.out" 2>&1 &
  local spid=$!
  (cd "$dir" && exec taskset -c 0 "$sluice" serve -c "$dir/sluice.yaml" > "$dir/out" 2> "$dir/log") &
  local gpid=$!
  wait_port $sink_port
  wait_port $gw_port
  local warm=500
  run_load $gw_port $warm 64 5 > /dev/null
  for _ in $(seq 1 300); do [[ "$(sink_count "$dir/sink.out")" -ge $warm ]] && break; sleep 0.1; done
  local base; base="$(sink_count "$dir/sink.out")"
  local c0 t0 t1 c1 out
  c0="$(cpu_ticks "$gpid")"
  t0="$(date +%s.%N)"
  out="$(run_load $gw_port "$messages" 64 "$max_seconds")"
  local ok; ok="$(json_field "$out" ok)"
  local want=$((base + ok)) got=0
  local end=$(( $(date +%s) + drain_seconds ))
  while (( $(date +%s) < end )); do
    got="$(sink_count "$dir/sink.out")"
    (( got >= want )) && break
    sleep 0.05
  done
  t1="$(date +%s.%N)"
  c1="$(cpu_ticks "$gpid")"
  stop "$gpid"
  stop "$spid"
  local delivered=$((got - base))
  python3 - "$(json_field "$out" msgs_per_s)" "$ok" "$(json_field "$out" failed)" "$delivered" \
    "$t0" "$t1" "$c0" "$c1" "$(getconf CLK_TCK)" <<'EOF'
import sys
acc, ok, failed, delivered, t0, t1, c0, c1, hz = sys.argv[1:]
wall = float(t1) - float(t0)
cpu = (int(c1) - int(c0)) / int(hz) / wall * 100
print("%s %.1f %s %s %s %.0f" % (acc, int(delivered) / wall, ok, failed, delivered, cpu))
EOF
  if [[ "$delivered" -lt "$ok" ]]; then
    echo "gateway_bench.sh: only $delivered of $ok messages reached smtp-sink in ${drain_seconds}s; log:" >&2
    tail -20 "$dir/log" >&2
  fi
  rm -rf "$dir"
}

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
best_direct=0; best_acc=0; best_e2e=0
for r in $(seq 1 "$rounds"); do
  read -r d dok <<< "$(run_direct)"
  echo "round $r  direct:  $d msgs/s (ok $dok)  [load $(cut -d' ' -f1 /proc/loadavg)]"
  read -r acc e2e ok failed delivered cpu <<< "$(run_gateway)"
  echo "round $r  gateway: accept $acc msgs/s, end-to-end $e2e msgs/s (ok $ok, failed $failed, delivered $delivered, sluice CPU ${cpu}%)  [load $(cut -d' ' -f1 /proc/loadavg)]"
  best_direct=$(max_of "$best_direct" "$d")
  best_acc=$(max_of "$best_acc" "$acc")
  best_e2e=$(max_of "$best_e2e" "$e2e")
done
python3 - "$best_direct" "$best_acc" "$best_e2e" <<'EOF'
import sys
d, a, e = map(float, sys.argv[1:])
print("best: direct %.1f, gateway accept %.1f (%.3f of direct), gateway end-to-end %.1f (%.3f of direct) msgs/s"
      % (d, a, a / d, e, e / d))
EOF
