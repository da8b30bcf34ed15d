#!/usr/bin/env bash
# Sluice SMTP benchmark: one command that installs the peers, builds the load generator and runs
# the same load against sluice, Postfix smtp-sink, aiosmtpd, maildev and Haraka, each pinned to
# CPU 0 with the load generator pinned to CPU 1. Results: bench/results/<timestamp>.json and the
# table in bench/README.md. See bench/README.md for the method.
#
# Usage: bench/run.sh [--quick] [--sluice PATH] [--build-sluice] [--servers a,b,...]
#                     [--sluice-args "ARGS with {config}"] [--no-install] [--no-readme] [--keep]
# Fails fast (set -e) if an install or the load generator build fails; a server that is missing
# or does not start is skipped and named in the report (sluice included).
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH/.." && pwd)"
CMDLINE="bench/run.sh${*:+ $*}"

sluice=""
build_sluice=0
install=1
py_args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --sluice) sluice="$2"; shift 2 ;;
    --build-sluice) build_sluice=1; shift ;;
    --no-install) install=0; shift ;;
    --quick | --no-readme | --keep) py_args+=("$1"); shift ;;
    --servers | --sluice-args | --scenarios | --timeout) py_args+=("$1" "$2"); shift 2 ;;
    -h | --help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

say() { echo "[run.sh] $*" >&2; }

if [[ $(nproc) -lt 2 ]]; then
  say "needs 2 CPUs (server on CPU 0, load generator on CPU 1); found $(nproc)"
  exit 1
fi

# ---- installs (only what is missing) -----------------------------------------------------------
apt_install() {
  local apt=(apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "$@")
  if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}"; then
    apt-get -o DPkg::Lock::Timeout=300 update
    DEBIAN_FRONTEND=noninteractive "${apt[@]}"
  fi
}

if [[ $install -eq 1 ]]; then
  pkgs=()
  [[ -x /usr/sbin/smtp-sink ]] || pkgs+=(postfix)
  /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || pkgs+=(python3-aiosmtpd)
  command -v taskset >/dev/null || pkgs+=(util-linux)
  [[ -x /usr/bin/time ]] || pkgs+=(time)
  command -v g++ >/dev/null || pkgs+=(g++)
  [[ -f /usr/include/boost/asio.hpp ]] || pkgs+=(libboost-dev)
  command -v npm >/dev/null || pkgs+=(npm)
  if [[ ${#pkgs[@]} -gt 0 ]]; then
    say "apt: installing ${pkgs[*]}"
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt_install "${pkgs[@]}"
  fi
  # smtp-sink is all we want from postfix: no mail daemon may stay running.
  if [[ -x /usr/sbin/postfix ]] && /usr/sbin/postfix status >/dev/null 2>&1; then
    say "stopping the postfix daemon the package started"
    /usr/sbin/postfix stop || true
  fi
  if [[ ! -x "$BENCH/node_modules/.bin/maildev" || ! -x "$BENCH/node_modules/.bin/haraka" ]]; then
    say "npm: installing maildev and Haraka into bench/node_modules (versions in bench/package.json)"
    (cd "$BENCH" && if [[ -f package-lock.json ]]; then npm ci --no-audit --no-fund; else
      npm install --no-audit --no-fund; fi)
  fi
fi

# ---- load generator ----------------------------------------------------------------------------
mkdir -p "$BENCH/build"
if [[ ! -x "$BENCH/build/smtp_load" || "$BENCH/smtp_load.cpp" -nt "$BENCH/build/smtp_load" ]]; then
  say "building bench/build/smtp_load"
  g++ -O2 -std=c++20 -pthread -Wall -Wno-mismatched-new-delete \
    -o "$BENCH/build/smtp_load" "$BENCH/smtp_load.cpp"
fi

# ---- sluice ------------------------------------------------------------------------------------
if [[ $build_sluice -eq 1 ]]; then
  say "building sluice (Release, no tests) into build-bench/"
  if cmake -S "$ROOT" -B "$ROOT/build-bench" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DSLUICE_BUILD_TESTS=OFF && ninja -C "$ROOT/build-bench"; then
    [[ -n "$sluice" ]] || sluice="$ROOT/build-bench/bin/sluice"
  else
    say "sluice did not build; it will be skipped"
  fi
fi
if [[ -z "$sluice" ]]; then
  for c in "$ROOT/build-bench/bin/sluice" "$ROOT/build/bin/sluice"; do  # Release build first
    if [[ -x "$c" ]]; then sluice="$c"; break; fi
  done
fi
if [[ -z "$sluice" || ! -x "$sluice" ]]; then
  say "SKIPPING sluice: no binary at ${sluice:-build-bench/bin/sluice or build/bin/sluice}" \
    "(build it: cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release" \
    "-DSLUICE_BUILD_TESTS=OFF && ninja -C build-bench, or pass --build-sluice / --sluice PATH)"
  sluice="${sluice:-$ROOT/build/bin/sluice}"
fi

exec /usr/bin/python3 "$BENCH/lib/bench.py" --sluice "$sluice" --command "$CMDLINE" \
  ${py_args[@]+"${py_args[@]}"}
