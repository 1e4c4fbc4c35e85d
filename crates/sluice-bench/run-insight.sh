#!/usr/bin/env bash
# What counting flag evaluations costs (BENCHMARKS.md, "Flag insight: counting on vs off"):
# two release `sluice serve` processes in the same run, one counting (the default) and one
# started with `--no-evaluation-counts`, the same flags and requests against both.
#
#   CARGO_TARGET_DIR=target-ofrep cargo build --release -p sluice
#   CARGO_TARGET_DIR=target-ofrep crates/sluice-bench/run-insight.sh
#
# Default mode: requests per second, `wrk -t1 -c$CONNECTIONS -d$DURATION`, cases and servers
# interleaved for ROUNDS rounds, servers pinned to core 0 and wrk to core 1.
# MODE=callgrind: instructions per request, which a loaded host does not change — each server
# under `valgrind --tool=callgrind --instr-atstart=no`, instrumentation switched on after a
# warm-up, `wrk -t1 -c4 -d$DURATION`, instructions divided by the requests served.
#
# Environment: MODE (throughput), ROUNDS (3), DURATION (10s), CONNECTIONS (32), TESTBED (the
# flagd testbed, default ../shared/conformance/flagd-testbed beside the repository).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${CARGO_TARGET_DIR:-target}/release"
mode="${MODE:-throughput}"
rounds="${ROUNDS:-3}"
duration="${DURATION:-10s}"
connections="${CONNECTIONS:-32}"
testbed="${TESTBED:-$root/../shared/conformance/flagd-testbed}"
admin="slu_api_00000000000000000000000000000000000000000000000000000000000000ad"
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

wait_up() { # url
  for _ in $(seq 1 600); do
    curl -sS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "server at $1 did not come up" >&2
  return 1
}

start_sluice() { # name port [extra args...] -> pid in $started
  local name=$1 port=$2
  shift 2
  mkdir -p "$work/$name"
  local run=(taskset -c 0)
  if [ "$mode" = callgrind ]; then
    run+=(valgrind --tool=callgrind --instr-atstart=no "--callgrind-out-file=$work/$name.cg")
  fi
  SLUICE_ADMIN_TOKEN="$admin" "${run[@]}" "$bin/sluice" serve \
    --listen "127.0.0.1:$port" --data-dir "$work/$name" "$@" >"$work/$name.log" 2>&1 &
  started=$!
  pids+=("$started")
  wait_up "http://127.0.0.1:$port/healthz"
}

import() { # base env file [query]
  local q="${4:-?}"
  [ "$q" = "?" ] || q="$q&"
  curl -fsS -o /dev/null -X PUT -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
    --data-binary "@$3" "$1/v1/environments/$2/flags${q}create_env=true"
}

client_key() { # base env
  curl -fsS -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
    -d "{\"name\":\"bench-$2\",\"kind\":\"client\",\"environment\":\"$2\"}" "$1/v1/tokens" | jq -r .token
}

jq -s '{flags: (map(.flags) | add),
        "$evaluators": (map(."$evaluators" // {}) | add),
        metadata: (map(.metadata // {}) | add)}' \
  $(ls "$testbed"/flags/*.json | grep -v '/selector') >"$work/testbed.json"

start_sluice on 7170
on_pid=$started
start_sluice off 7171 --no-evaluation-counts
off_pid=$started
declare -A single_key bulk_key
for port in 7170 7171; do
  base="http://127.0.0.1:$port"
  import "$base" testbed "$work/testbed.json" "?mode=lenient"
  import "$base" sdk "$root/tests/sdk/flags.json"
  bulk_key[$port]=$(client_key "$base" testbed)
  single_key[$port]=$(client_key "$base" sdk)
done

run_wrk() { # url key distinct connections duration
  SLUICE_CLIENT_KEY="$2" IF_NONE_MATCH="" DISTINCT="$3" taskset -c 1 wrk -t1 "-c$4" "-d$5" \
    --latency -s "$here/wrk/ofrep.lua" "$1"
}

case_of() { # case port -> path key distinct
  case $1 in
    single) echo "/ofrep/v1/evaluate/flags/targeted ${single_key[$2]} -" ;;
    bulk) echo "/ofrep/v1/evaluate/flags ${bulk_key[$2]} -" ;;
    bulk-distinct) echo "/ofrep/v1/evaluate/flags ${bulk_key[$2]} 1000000" ;;
  esac
}

if [ "$mode" = callgrind ]; then
  echo "## instructions per request under callgrind, wrk -t1 -c4 -d$duration"
  for case in single bulk bulk-distinct; do
    for target in on:7170:$on_pid off:7171:$off_pid; do
      IFS=: read -r name port pid <<<"$target"
      read -r path k distinct <<<"$(case_of "$case" "$port")"
      [ "$distinct" = - ] && distinct=""
      run_wrk "http://127.0.0.1:$port$path" "$k" "$distinct" 4 2s >/dev/null
      callgrind_control -z "$pid" >/dev/null 2>&1
      callgrind_control -i on "$pid" >/dev/null 2>&1
      out=$(run_wrk "http://127.0.0.1:$port$path" "$k" "$distinct" 4 "$duration")
      callgrind_control -i off "$pid" >/dev/null 2>&1
      callgrind_control -d "$pid" >/dev/null 2>&1
      sleep 1
      requests=$(echo "$out" | awk '/requests in/ {print $1}')
      dump=$(ls -t "$work/$name.cg"* | head -1)
      # The dump's `totals:` line: instructions while instrumentation was on.
      instr=$(awk '/^totals:/ {print $2}' "$dump")
      echo "$case counting-$name: $requests requests, $instr instructions, $((instr / requests)) per request"
    done
  done
  exit 0
fi

echo "## OFREP over loopback: wrk -t1 -c$connections -d$duration, $rounds rounds, interleaved"
for r in $(seq 1 "$rounds"); do
  for case in single bulk bulk-distinct; do
    for target in on:7170 off:7171; do
      name="${target%%:*}"
      port="${target##*:}"
      read -r path k distinct <<<"$(case_of "$case" "$port")"
      [ "$distinct" = - ] && distinct=""
      out=$(run_wrk "http://127.0.0.1:$port$path" "$k" "$distinct" "$connections" "$duration")
      rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
      non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
      echo "round $r $case counting-$name: ${rps} req/s${non2xx:+, non-2xx $non2xx}"
    done
  done
done
echo
echo "## stored counts (counting-on server, flushed by the read)"
curl -fsS -H "Authorization: Bearer $admin" "http://127.0.0.1:7170/v1/environments/sdk/evaluations" |
  jq -c '.flags[] | select(.key == "targeted") | {key, evaluations, last_evaluated_at}'
