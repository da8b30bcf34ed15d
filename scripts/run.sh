#!/usr/bin/env bash
# Installs what is missing, builds Sluice (Release) and starts it on its default
# configuration: SMTP on 127.0.0.1:1025, data under $SLUICE_DATA (default /var/tmp/sluice).
# Extra arguments go to `sluice serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DSLUICE_BUILD_TESTS=OFF
ninja -C build-release
exec build-release/bin/sluice serve "$@"
