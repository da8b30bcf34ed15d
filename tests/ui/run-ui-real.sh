#!/bin/sh
# run-ui-real.sh <tests/ui source dir> <work dir> <sluice binary> — the web UI browser test
# against the real binary: starts sluice (smtp → mime → store, the http listener on
# 127.0.0.1 port 0) with a config of its own, reads the bound address from the ready file,
# runs ui-test.mjs with SLUICE_UI_BASES at its web root and at /mailbox/team/, then stops it. Skips (77) like
# run-ui-test.sh when node, npm or Chromium is missing.
set -eu
src=$1
work=$2
sluice=$3

command -v node >/dev/null 2>&1 || { echo "SKIP: node is not installed"; exit 77; }
command -v npm >/dev/null 2>&1 || { echo "SKIP: npm is not installed"; exit 77; }
chromium=${CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || { echo "SKIP: $chromium not found"; exit 77; }

run="$work/real"
rm -rf "$run"
mkdir -p "$run"
cp "$src/package.json" "$src/package-lock.json" "$src/mock-server.mjs" "$src/ui-test.mjs" "$run/"
cat > "$run/sluice.yaml" <<YAML
log: {format: text, level: info}
spool: {path: ./spool}
services:
  - {name: default, plugin: store, path: ./store.db}
listeners:
  - {name: http, plugin: http, pipeline: capture, listen: ["127.0.0.1:0"]}
pipelines:
  - name: capture
    stages:
      - {plugin: mime}
      - {plugin: store, mailbox: default}
      # A deferred stage whose endpoint refuses connections (port 1 on loopback): every
      # message gets a "retry" entry in its delivery log, which the Deliveries tab shows.
      - {plugin: webhook, url: "http://127.0.0.1:1/hook", retry: {initial: 10m, max: 1h, lifetime: 1d}}
  # Declares the mailbox "team" (sends through /mailbox/team/ are stored there).
  - name: team
    stages:
      - {plugin: store, mailbox: team}
YAML
cd "$run"
npm ci --no-audit --no-fund --loglevel=error || { echo "FAIL: npm ci failed"; exit 1; }
"$sluice" serve -c "$run/sluice.yaml" --ready-file "$run/ready.json" > "$run/sluice.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
i=0
while [ ! -s "$run/ready.json" ]; do
  i=$((i + 1))
  if [ $i -gt 100 ] || ! kill -0 $pid 2>/dev/null; then
    echo "FAIL: sluice did not become ready"; cat "$run/sluice.log"; exit 1
  fi
  sleep 0.1
done
addr=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["listeners"]["http"][0])' "$run/ready.json")
CHROMIUM=$chromium SLUICE_UI_BASES="http://$addr/,http://$addr/mailbox/team/" UI_TEST_OUT="$work/out-real" node ui-test.mjs
