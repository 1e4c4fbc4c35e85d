#!/usr/bin/env bash
# The edge figures of BENCHMARKS.md ("Evaluation at the edge"): idle RSS of `sluice edge`, and
# OFREP single-flag and bulk requests per second at an edge against the central `sluice serve`
# it follows, in the same run. (Change → edge subscriber latency: `bench-edge`.)
#
# Each server in turn is measured pinned to core 0, wrk on core 1 (taskset); the other server
# stays on core 0 too but is idle. Only 127.0.0.1 is used.
#
#   CARGO_TARGET_DIR=target-ofrep cargo build --release -p sluice -p sluice-bench
#   CARGO_TARGET_DIR=target-ofrep crates/sluice-bench/run-edge.sh
#
# Environment: ROUNDS (3), DURATION (10s), CONNECTIONS (32).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${CARGO_TARGET_DIR:-target}/release"
rounds="${ROUNDS:-3}"
duration="${DURATION:-10s}"
connections="${CONNECTIONS:-32}"
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
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "server at $1 did not come up" >&2
  return 1
}

rss_kib() { ps -o rss= -p "$1" | tr -d ' '; }

token() { # kind env
  curl -fsS -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
    -d "{\"name\":\"bench-$1\",\"kind\":\"$1\",\"environment\":\"$2\"}" "$central/v1/tokens" | jq -r .token
}

mkdir -p "$work/central" "$work/edge"
SLUICE_ADMIN_TOKEN="$admin" taskset -c 0 "$bin/sluice" serve \
  --listen 127.0.0.1:7070 --data-dir "$work/central" >"$work/central.log" 2>&1 &
pids+=("$!")
central=http://127.0.0.1:7070
wait_up "$central/healthz"
curl -fsS -o /dev/null -X PUT -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
  --data-binary "@$root/tests/sdk/flags.json" "$central/v1/environments/sdk/flags?create_env=true"
key=$(token client sdk)
edge_key=$(token edge sdk)

SLUICE_EDGE_KEY="$edge_key" taskset -c 0 "$bin/sluice" edge --upstream "$central" \
  --listen 127.0.0.1:7071 --data-dir "$work/edge" >"$work/edge.log" 2>&1 &
edge_pid=$!
pids+=("$edge_pid")
edge=http://127.0.0.1:7071
wait_up "$edge/readyz"

echo "## idle RSS (KiB)"
sleep 2
echo "sluice edge, synced, 2 s idle: $(rss_kib "$edge_pid") KiB"
body='{"context":{"targetingKey":"user-1","email":"ann@example.com","version":"2.1.0"}}'
for base in "$central" "$edge"; do
  curl -fsS -H "X-API-Key: $key" -d "$body" "$base/ofrep/v1/evaluate/flags/targeted" >"$work/single-${base##*:}.json"
done
cmp "$work/single-7070.json" "$work/single-7071.json" || { echo "the edge answers differently" >&2; exit 1; }
echo "single answer (both): $(cat "$work/single-7071.json")"

run_wrk() { # url
  SLUICE_CLIENT_KEY="$key" taskset -c 1 wrk -t1 "-c$connections" "-d$duration" \
    --latency -s "$here/wrk/ofrep.lua" "$1"
}
echo
echo "## OFREP over loopback: wrk -t1 -c$connections -d$duration, $rounds rounds, interleaved"
for r in $(seq 1 "$rounds"); do
  for case in single bulk; do
    case $case in
      single) path=/ofrep/v1/evaluate/flags/targeted ;;
      bulk) path=/ofrep/v1/evaluate/flags ;;
    esac
    for target in central:7070 edge:7071; do
      name="${target%%:*}"
      port="${target##*:}"
      out=$(run_wrk "http://127.0.0.1:$port$path")
      rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
      p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
      non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
      echo "round $r $case $name: ${rps} req/s, p99 ${p99}${non2xx:+, non-2xx/3xx $non2xx}"
    done
  done
done
sleep 2
echo
echo "sluice edge RSS after the runs, 2 s idle: $(rss_kib "$edge_pid") KiB"
