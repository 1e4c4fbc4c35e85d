#!/usr/bin/env bash
# Figures 3 and 4 of BENCHMARKS.md: AuthZEN decisions over HTTP on loopback against a bare
# axum handler, and idle RSS against a bare axum binary.
#
# Servers are pinned to core 0 and wrk to core 1 (taskset). Only 127.0.0.1 is used.
#
#   CARGO_TARGET_DIR=target-bench cargo build --release -p sluice -p sluice-bench
#   CARGO_TARGET_DIR=target-bench crates/sluice-bench/run-http.sh
#
# Environment: ROUNDS (3), DURATION (10s), CONNECTIONS (32).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
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
    curl -sS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "server at $1 did not come up" >&2
  return 1
}

rss_kib() { ps -o rss= -p "$1" | tr -d ' '; }

start_sluice() { # name port -> pid in $started
  mkdir -p "$work/$1"
  SLUICE_ADMIN_TOKEN="$admin" taskset -c 0 "$bin/sluice" serve \
    --listen "127.0.0.1:$2" --data-dir "$work/$1" >"$work/$1.log" 2>&1 &
  started=$!
  pids+=("$started")
  wait_up "http://127.0.0.1:$2/healthz"
}

policy() { # record_allowed_decisions
  cat <<EOF
users: [alice, bob]
groups:
  oncall: [alice]
  leads: [bob]
environments:
  production: { protected: true }
entitlements:
  - name: flags-prod-operator
    scopes:
      - resource: "flag:production/**"
        actions: [toggle]
    requesters: [group:oncall]
    max_duration: 8h
    approval: { required: 1, approvers: [group:leads] }
    auto_approve: { requester_in: [group:oncall], max_duration: 8h }
audit: { record_allowed_decisions: $1 }
EOF
}

setup_sluice() { # port record_allowed_decisions
  local base="http://127.0.0.1:$1"
  policy "$2" | jq -Rs '{source: .}' | curl -fsS -o /dev/null -H "Authorization: Bearer $admin" \
    -H 'Content-Type: application/json' -d @- "$base/v1/policy"
  local alice
  alice=$(curl -fsS -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
    -d '{"principal":"alice","name":"bench"}' "$base/v1/tokens" | jq -r .token)
  curl -fsS -o /dev/null -H "Authorization: Bearer $alice" -H 'Content-Type: application/json' \
    -d '{"entitlement":"flags-prod-operator","duration":"8h","reason":"bench"}' "$base/v1/requests"
  local d
  d=$(curl -fsS -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
    -d '{"subject":{"type":"user","id":"alice"},"action":{"name":"toggle"},"resource":{"type":"flag","id":"production/checkout-v2"}}' \
    "$base/access/v1/evaluation" | jq -r .decision)
  [ "$d" = "true" ] || { echo "expected an allow from $base, got $d" >&2; exit 1; }
}

echo "## idle RSS (KiB), 2 s after start, 3 starts each"
for i in $(seq 1 3); do
  start_sluice "idle$i" $((7170 + i))
  p=$started
  sleep 2
  s=$(rss_kib "$p")
  kill "$p"; wait "$p" 2>/dev/null || true
  taskset -c 0 "$bin/bare-hello" "127.0.0.1:$((7180 + i))" &
  h=$!
  pids+=("$h")
  wait_up "http://127.0.0.1:$((7180 + i))/"
  sleep 2
  b=$(rss_kib "$h")
  kill "$h"; wait "$h" 2>/dev/null || true
  echo "start $i: sluice serve ${s} KiB, bare-hello ${b} KiB"
done
start_sluice idle-policy 7179
p=$started
setup_sluice 7179 true
sleep 2
echo "sluice serve with the policy applied, one token and one live grant: $(rss_kib "$p") KiB"
kill "$p"; wait "$p" 2>/dev/null || true

echo
echo "## AuthZEN evaluation over loopback: wrk -t1 -c$connections -d$duration, $rounds rounds, interleaved"
taskset -c 0 "$bin/bare-authzen" 127.0.0.1:7082 &
pids+=("$!")
wait_up "http://127.0.0.1:7082/access/v1/evaluation"
start_sluice audited 7070
setup_sluice 7070 true
start_sluice allows-unrecorded 7071
setup_sluice 7071 false

run_wrk() { # url
  SLUICE_TOKEN="$admin" taskset -c 1 wrk -t1 "-c$connections" "-d$duration" --latency \
    -s "$here/wrk/evaluation.lua" "$1"
}
for r in $(seq 1 "$rounds"); do
  for target in bare:7082 audited:7070 allows-unrecorded:7071; do
    name="${target%%:*}"
    port="${target##*:}"
    out=$(run_wrk "http://127.0.0.1:$port/access/v1/evaluation")
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    echo "round $r $name: ${rps} req/s, p99 ${p99}${non2xx:+, non-2xx $non2xx}"
  done
done
