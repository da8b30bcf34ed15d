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
ROOT="$(cd "$BENCH/.." && pwd)"
sluice="$ROOT/build/bin/sluice"
rounds=3
messages=20000
max_seconds=15
drain_seconds=180
concurrency=64
pool=64
while [[ $# -gt 0 ]]; do
  case "$1" in
    --sluice) sluice="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --messages) messages="$2"; shift 2 ;;
    --max-seconds) max_seconds="$2"; shift 2 ;;
    --drain-seconds) drain_seconds="$2"; shift 2 ;;
    --concurrency) concurrency="$2"; shift 2 ;;
    --pool) pool="$2"; shift 2 ;;
    *) echo "gateway_bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ -x "$sluice" ]] || { echo "gateway_bench.sh: no sluice at $sluice" >&2; exit 1; }
sink=/usr/sbin/smtp-sink
[[ -x "$sink" ]] || { echo "gateway_bench.sh: $sink missing (Debian package postfix)" >&2; exit 1; }
mkdir -p "$BENCH/build"
load="$BENCH/build/smtp_load"
if [[ ! -x "$load" || "$BENCH/smtp_load.cpp" -nt "$load" ]]; then
  g++ -O2 -std=c++20 -pthread -Wall -Wno-mismatched-new-delete -o "$load" "$BENCH/smtp_load.cpp"
fi
sink_port=25941
gw_port=25942
for p in $sink_port $gw_port; do
  if (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
    echo "gateway_bench.sh: port $p is in use" >&2; exit 1
  fi
done

wait_port() {  # $1: port; bounded: 10 s
  for _ in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0
    sleep 0.1
  done
  echo "gateway_bench.sh: nothing listens on $1" >&2; return 1
}

# smtp-sink -c writes "sess=N quit=N mesg=N\r" whenever a message or a session ends.
sink_count() {  # $1: smtp-sink's output file; prints messages received so far
  tr '\r' '\n' < "$1" | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -1 | sed 's/^$/0/'
}

json_field() {  # $1: JSON, $2: field
  python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"
}

cpu_ticks() {  # $1: pid; user+system clock ticks
  awk '{print $14 + $15}' "/proc/$1/stat"
}

stop() {  # $1: pid
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

run_direct() {  # prints msgs/s ok
  local dir; dir="$(mktemp -d)"
  taskset -c 0 "$sink" -u nobody 127.0.0.1:$sink_port 1024 > /dev/null 2>&1 &
  local spid=$!
  wait_port $sink_port
  taskset -c 1 "$load" --server 127.0.0.1:$sink_port --messages 500 --connections 64 \
    --size 10k --pipelining --max-seconds 5 > /dev/null
  local out
  out="$(taskset -c 1 "$load" --server 127.0.0.1:$sink_port --messages "$messages" \
    --connections 64 --size 10k --pipelining --max-seconds "$max_seconds")"
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
  taskset -c 1 "$load" --server 127.0.0.1:$gw_port --messages $warm --connections 64 \
    --size 10k --pipelining --max-seconds 5 > /dev/null
  for _ in $(seq 1 300); do [[ "$(sink_count "$dir/sink.out")" -ge $warm ]] && break; sleep 0.1; done
  local base; base="$(sink_count "$dir/sink.out")"
  local c0 t0 t1 c1 out
  c0="$(cpu_ticks "$gpid")"
  t0="$(date +%s.%N)"
  out="$(taskset -c 1 "$load" --server 127.0.0.1:$gw_port --messages "$messages" \
    --connections 64 --size 10k --pipelining --max-seconds "$max_seconds")"
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
  best_direct=$(python3 -c "print(max($best_direct, $d))")
  best_acc=$(python3 -c "print(max($best_acc, $acc))")
  best_e2e=$(python3 -c "print(max($best_e2e, $e2e))")
done
python3 - "$best_direct" "$best_acc" "$best_e2e" <<'EOF'
import sys
d, a, e = map(float, sys.argv[1:])
print("best: direct %.1f, gateway accept %.1f (%.3f of direct), gateway end-to-end %.1f (%.3f of direct) msgs/s"
      % (d, a, a / d, e, e / d))
EOF
