# Shared by the bench scripts (cost_split.sh, gateway_bench.sh, spam_ab.sh); sourced, not run.
# The caller sets BENCH (the bench/ directory) and `set -euo pipefail` before sourcing; this
# sets ROOT (the repository) and SCRIPT (the caller's name, for error messages).
ROOT="$(cd "$BENCH/.." && pwd)"
SCRIPT="$(basename "$0")"

die() {  # $*: message
  echo "$SCRIPT: $*" >&2
  exit 1
}

# The options every script takes. Returns 1 when $1 is not one of them; the caller shifts 2.
common_option() {  # $1: option, $2: its value
  [[ -n "${2:-}" ]] || die "$1 needs a value"
  case "$1" in
    --rounds) rounds="$2" ;;
    --messages) messages="$2" ;;
    --max-seconds) max_seconds="$2" ;;
    *) return 1 ;;
  esac
}

# Builds the load generator when it is missing or older than its source; sets LOAD.
build_load() {
  mkdir -p "$BENCH/build"
  LOAD="$BENCH/build/smtp_load"
  if [[ ! -x "$LOAD" || "$BENCH/smtp_load.cpp" -nt "$LOAD" ]]; then
    g++ -O2 -std=c++20 -pthread -Wall -Wno-mismatched-new-delete -o "$LOAD" "$BENCH/smtp_load.cpp"
  fi
}

# The load of every script: 10 KB multipart messages with PIPELINING, from CPU 1.
run_load() {  # $1: port, $2: messages, $3: connections, $4: max seconds; prints smtp_load's JSON
  taskset -c 1 "$LOAD" --server "127.0.0.1:$1" --messages "$2" --connections "$3" \
    --size 10k --pipelining --max-seconds "$4"
}

port_free() {  # $1: port; fails when something listens on it
  ! (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null
}

wait_port() {  # $1: port; bounded: 10 s
  for _ in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$SCRIPT: nothing listens on $1" >&2
  return 1
}

cpu_ticks() {  # $1: pid; user+system clock ticks of the process so far
  awk '{print $14 + $15}' "/proc/$1/stat"
}

stop() {  # $1: pid; SIGTERM, then SIGKILL after 5 s
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

json_field() {  # $1: JSON object, $2: field
  python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"
}

max_of() {  # $1 $2: numbers
  python3 -c "print(max($1, $2))"
}
