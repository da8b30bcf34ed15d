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
source "$BENCH/lib/common.sh"
sluice="$ROOT/build/bin/sluice"
rounds=3
messages=6000
max_seconds=10
while [[ $# -gt 0 ]]; do
  case "$1" in
    --sluice) [[ -n "${2:-}" ]] || die "--sluice needs a value"; sluice="$2" ;;
    *) common_option "$1" "${2:-}" || die "unknown option $1" ;;
  esac
  shift 2
done
[[ -x "$sluice" ]] || die "no sluice at $sluice"
build_load
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
  wait_port $port
  run_load $port 300 16 5 > /dev/null
  local out
  out="$(run_load $port "$messages" 64 "$max_seconds")"
  stop "$pid"
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
    best[$v]=$(max_of "${best[$v]}" "$rate")
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
