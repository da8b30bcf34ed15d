#!/usr/bin/env bash
# scripts/fuzz.sh [seconds-per-target] [target...] — build the libFuzzer targets
# (build-fuzz/, clang, SLUICE_FUZZ=ON) and run each briefly, one at a time on one core.
#
# First replays tests/fuzz/regressions/<target>/ (inputs that once crashed); then fuzzes
# for the given seconds (default 60) from the seeds in tests/fuzz/corpus/<target>/ plus a
# working corpus kept in build-fuzz/fuzz-corpus/<target>/ (not in git). Crashes are
# written to tests/fuzz/artifacts/<target>/. Exits non-zero if any target failed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-60}"
shift || true
build="${SLUICE_FUZZ_BUILD_DIR:-$root/build-fuzz}"

if [[ ! -f "$build/build.ninja" ]]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang -DSLUICE_FUZZ=ON -DSLUICE_BUILD_TESTS=OFF
fi

all_targets=(fuzz_proxy fuzz_xclient fuzz_htpasswd fuzz_sasl fuzz_config fuzz_mailpit_flags fuzz_smtp_command fuzz_smtp_data fuzz_mime fuzz_html_check fuzz_search)
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=()
  for t in "${all_targets[@]}"; do
    # Targets whose sources are absent are not defined by tests/fuzz/CMakeLists.txt.
    if ninja -C "$build" -t targets all 2>/dev/null | grep -q "^$t:"; then targets+=("$t"); fi
  done
fi
ninja -C "$build" -j2 "${targets[@]}"

status=0
for t in "${targets[@]}"; do
  bin="$build/bin/$t"
  seeds="$root/tests/fuzz/corpus/$t"
  regressions="$root/tests/fuzz/regressions/$t"
  work="$build/fuzz-corpus/$t"
  artifacts="$root/tests/fuzz/artifacts/$t"
  mkdir -p "$work" "$artifacts" "$seeds"
  echo "== $t: regressions"
  if [[ -d "$regressions" ]] && compgen -G "$regressions/*" >/dev/null; then
    if ! "$bin" "$regressions"/* >"$build/$t.regressions.log" 2>&1; then
      echo "!! $t: a regression input fails again: see $build/$t.regressions.log"; status=1
    fi
  fi
  echo "== $t: fuzzing for ${seconds}s"
  if ! "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -max_len=4096 -print_final_stats=1 -artifact_prefix="$artifacts/" "$work" "$seeds" \
      2>"$build/$t.log"; then
    echo "!! $t failed: see $build/$t.log and $artifacts/"
    status=1
  fi
  grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb|^Done|ERROR' "$build/$t.log" || true
done
exit $status
