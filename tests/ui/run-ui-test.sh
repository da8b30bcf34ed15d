#!/bin/sh
# run-ui-test.sh <tests/ui source dir> <work dir> <webui dir> — the ctest entry of the web UI
# browser test. Copies the test into the work dir, installs its npm packages there with
# `npm ci` (exactly package-lock.json; the source tree stays clean) and runs ui-test.mjs.
# Exit 77 (ctest: skipped) with a message when node, npm or Chromium is missing.
set -eu
src=$1
work=$2
webui=$3

command -v node >/dev/null 2>&1 || { echo "SKIP: node is not installed (Debian: apt-get install nodejs npm)"; exit 77; }
node -e 'process.exit(parseInt(process.versions.node) >= 18 ? 0 : 1)' || { echo "SKIP: node $(node --version) is older than 18"; exit 77; }
command -v npm >/dev/null 2>&1 || { echo "SKIP: npm is not installed (Debian: apt-get install npm)"; exit 77; }
chromium=${CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || { echo "SKIP: $chromium not found (scripts/install-deps.sh installs Debian's chromium)"; exit 77; }

mkdir -p "$work/run"
cp "$src/package.json" "$src/package-lock.json" "$src/mock-server.mjs" "$src/ui-test.mjs" "$work/run/"
cd "$work/run"
npm ci --no-audit --no-fund --loglevel=error || {
  echo "FAIL: npm ci could not install tests/ui/package-lock.json (is the npm registry reachable?)"
  exit 1
}
CHROMIUM=$chromium SLUICE_WEBUI_DIR=$webui UI_TEST_OUT=${UI_TEST_OUT:-$work/out} exec node ui-test.mjs
