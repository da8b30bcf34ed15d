#!/usr/bin/env bash
# The spam stage's cost in the real pipeline: the same SMTP load (bench/build/smtp_load, 10 KB
# multipart messages, 64 connections, PIPELINING) against sluice with three pipelines, rounds
# interleaved, sluice pinned to CPU 0 and the load generator to CPU 1:
#   capture      mime → store
#   spam         mime → spam (native, default rules) → store
#   spam+bayes   mime → spam (native, default rules + a trained Bayes database) → store
# Prints msgs/s per round and the best round of each, and the throughput each spam pipeline
# keeps relative to capture. See bench/README.md, "Spam stage".
#
# Usage: bench/spam_ab.sh [--sluice PATH] [--rounds N] [--messages N] [--max-seconds S]
set -euo pipefail
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH/.." && pwd)"
sluice="$ROOT/build/bin/sluice"
rounds=3
messages=6000
max_seconds=10
while [[ $# -gt 0 ]]; do
  case "$1" in
    --sluice) sluice="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --messages) messages="$2"; shift 2 ;;
    --max-seconds) max_seconds="$2"; shift 2 ;;
    *) echo "spam_ab.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ -x "$sluice" ]] || { echo "spam_ab.sh: no sluice at $sluice" >&2; exit 1; }
mkdir -p "$BENCH/build"
if [[ ! -x "$BENCH/build/smtp_load" || "$BENCH/smtp_load.cpp" -nt "$BENCH/build/smtp_load" ]]; then
  g++ -O2 -std=c++20 -pthread -Wall -Wno-mismatched-new-delete \
    -o "$BENCH/build/smtp_load" "$BENCH/smtp_load.cpp"
fi
port=25931

config() {  # $1: capture | spam | spam+bayes
  local stage="" svc=""
  case "$1" in
    spam) stage="      - {plugin: spam, bayes: none}" ;;
    spam+bayes)
      svc="  - {name: bayes, plugin: spam, path: ./bayes.db, min_spam: 1, min_ham: 1}"
      stage="      - {plugin: spam, bayes: bayes}" ;;
  esac
  cat <<EOF
log: {format: text, level: warn}
spool: {path: ./spool}
services:
  - {name: default, plugin: store, path: ./bench.db, max_messages: 0}
$svc
listeners:
  - {name: smtp, plugin: smtp, pipeline: capture, listen: ["127.0.0.1:$port"], max_connections: 1000}
pipelines:
  - name: capture
    stages:
      - {plugin: mime}
$stage
      - {plugin: store, mailbox: default}
EOF
}

run_one() {  # $1: variant; prints msgs/s
  local dir; dir="$(mktemp -d)"
  config "$1" > "$dir/sluice.yaml"
  if [[ "$1" == spam+bayes ]]; then
    # A database trained on generated mail: 300 spam and 300 ham (bench messages look like ham).
    mkdir -p "$dir/spam" "$dir/ham"
    for i in $(seq 1 300); do
      printf 'From: promo%d@deals.example\r\nSubject: cheap offer %d winner bonus\r\n\r\nexclusive discount casino bonus loan approved offer %d\r\n' "$i" "$i" "$i" > "$dir/spam/$i.eml"
      printf 'From: colleague%d@example.com\r\nSubject: quarterly report %d review\r\n\r\nplease review the attached report for the meeting %d\r\n' "$i" "$i" "$i" > "$dir/ham/$i.eml"
    done
    "$sluice" spam train --spam "$dir/spam" --ham "$dir/ham" --db "$dir/bayes.db" > /dev/null
  fi
  # sluice's stdout must not be the caller's: this function runs in a command substitution.
  (cd "$dir" && exec taskset -c 0 "$sluice" serve -c "$dir/sluice.yaml" > "$dir/out" 2> "$dir/log") &
  local pid=$!
  for _ in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
    sleep 0.1
  done
  taskset -c 1 "$BENCH/build/smtp_load" --server 127.0.0.1:$port --messages 300 --connections 16 \
    --size 10k --pipelining --max-seconds 5 > /dev/null
  local out
  out="$(taskset -c 1 "$BENCH/build/smtp_load" --server 127.0.0.1:$port --messages "$messages" \
    --connections 64 --size 10k --pipelining --max-seconds "$max_seconds")"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print("%.1f %d %d" % (r["msgs_per_s"], r["ok"], r["failed"]))' "$out"
}

declare -A best
for v in capture spam spam+bayes; do best[$v]=0; done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$rounds"); do
  for v in capture spam spam+bayes; do
    result="$(run_one "$v")"
    read -r rate ok failed <<< "$result"
    echo "round $r  $v: $rate msgs/s (ok $ok, failed $failed)"
    best[$v]=$(python3 -c "print(max(${best[$v]}, $rate))")
  done
done
echo "best: capture ${best[capture]}, spam ${best[spam]}, spam+bayes ${best[spam+bayes]} msgs/s"
python3 - "${best[capture]}" "${best[spam]}" "${best[spam+bayes]}" <<'EOF'
import sys
c, s, b = map(float, sys.argv[1:])
for name, v in (("spam", s), ("spam+bayes", b)):
    per_msg = 1e6 / v - 1e6 / c
    print("%-10s keeps %.0f%% of capture's throughput; the stage adds %.0f us per message "
          "(%.0f%% of capture's %.0f us)" % (name, 100 * v / c, per_msg, 100 * per_msg / (1e6 / c), 1e6 / c))
EOF
