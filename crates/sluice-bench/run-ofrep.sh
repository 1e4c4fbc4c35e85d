#!/usr/bin/env bash
# The OFREP figures of BENCHMARKS.md ("Flags (issue 3)"): single-flag, bulk and 304-bulk
# requests per second and p99 against a bare axum handler in the same run, the memory of a
# 10,000-flag snapshot, and idle RSS.
#
# Servers are pinned to core 0 and wrk to core 1 (taskset). Only 127.0.0.1 is used.
#
#   CARGO_TARGET_DIR=target-ofrep cargo build --release -p sluice -p sluice-bench
#   CARGO_TARGET_DIR=target-ofrep crates/sluice-bench/run-ofrep.sh
#
# MODE=callgrind: instructions per request instead, which a loaded host does not change — both
# servers under `valgrind --tool=callgrind --instr-atstart=no`, instrumentation switched on after
# a warm-up, `wrk -t1 -c4 -d$DURATION`, instructions divided by the requests served; the ratio
# bare/Sluice is the one to compare across commits (it is not the throughput ratio).
#
# Environment: MODE (throughput), CASES (callgrind: "single bulk bulk-distinct bulk304"), KEEP
# (callgrind: copy each profile to $KEEP.<case>.<server>), ROUNDS (3),
# DURATION (10s), CONNECTIONS (32), TESTBED (the
# flagd testbed, default ../shared/conformance/flagd-testbed beside the repository).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${CARGO_TARGET_DIR:-target}/release"
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

import() { # base env file [query]; creates the environment if it is new
  local q="${4:-?}"
  [ "$q" = "?" ] || q="$q&"
  curl -fsS -o /dev/null -X PUT -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
    --data-binary "@$3" "$1/v1/environments/$2/flags${q}create_env=true"
}

client_key() { # base env
  curl -fsS -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
    -d "{\"name\":\"bench-$2\",\"kind\":\"client\",\"environment\":\"$2\"}" "$1/v1/tokens" | jq -r .token
}

tag_of() { # base key -> the ETag of the bulk answer for $body
  curl -fsS -D - -o /dev/null -H "X-API-Key: $2" -d "$body" "$1/ofrep/v1/evaluate/flags" |
    awk 'tolower($1) == "etag:" {print $2}' | tr -d '\r'
}

answered_3xx() { # 3xx answers of the bulk route so far (the server's own count)
  curl -fsS http://127.0.0.1:7070/metrics |
    awk '/^sluice_http_requests_total\{/ && /route="\/ofrep\/v1\/evaluate\/flags"/ && /status="3xx"/ {n += $NF} END {print n + 0}'
}

# The merged testbed (every flags/ file but selector*), as the server tests merge it.
jq -s '{flags: (map(.flags) | add),
        "$evaluators": (map(."$evaluators" // {}) | add),
        metadata: (map(.metadata // {}) | add)}' \
  $(ls "$testbed"/flags/*.json | grep -v '/selector') >"$work/testbed.json"
# The same without the flag that reads `$flagd.timestamp` (`timestamp-flag`), for the 304 case:
# an environment with a rule that reads the time gets a new tag every second (its answers may
# change every second), so a client holding a tag gets 304s for at most a second. With the
# whole testbed, the "304" case measured cached 200 answers after its first second.
jq '.flags |= with_entries(select(.value | tojson | contains("$flagd.timestamp") | not))' \
  "$work/testbed.json" >"$work/still.json"
body='{"context":{"targetingKey":"user-1","email":"ann@example.com","version":"2.1.0"}}'

if [ "${MODE:-throughput}" = callgrind ]; then
  cg() { # name -> the command prefix that runs a server under callgrind on core 0
    echo taskset -c 0 valgrind --tool=callgrind --instr-atstart=no "--callgrind-out-file=$work/$1.cg"
  }
  mkdir -p "$work/cg"
  # shellcheck disable=SC2046
  SLUICE_ADMIN_TOKEN="$admin" $(cg sluice) "$bin/sluice" serve --listen 127.0.0.1:7070 \
    --data-dir "$work/cg" >"$work/cg.log" 2>&1 &
  sluice_pid=$!
  pids+=("$sluice_pid")
  for _ in $(seq 1 600); do curl -sS -o /dev/null http://127.0.0.1:7070/healthz 2>/dev/null && break; sleep 0.1; done
  base="http://127.0.0.1:7070"
  import "$base" testbed "$work/testbed.json" "?mode=lenient"
  import "$base" still "$work/still.json" "?mode=lenient"
  import "$base" sdk "$root/tests/sdk/flags.json"
  bulk_key=$(client_key "$base" testbed)
  still_key=$(client_key "$base" still)
  single_key=$(client_key "$base" sdk)
  curl -fsS -H "X-API-Key: $bulk_key" -d "$body" "$base/ofrep/v1/evaluate/flags" >"$work/bulk.json"
  curl -fsS -H "X-API-Key: $single_key" -d "$body" "$base/ofrep/v1/evaluate/flags/targeted" >"$work/single.json"
  etag=$(tag_of "$base" "$still_key")
  # shellcheck disable=SC2046
  $(cg bare) "$bin/bare-ofrep" 127.0.0.1:7083 "$work/bulk.json" "$work/single.json" &
  bare_pid=$!
  pids+=("$bare_pid")
  for _ in $(seq 1 600); do curl -sS -o /dev/null -X POST -d '{}' http://127.0.0.1:7083/ofrep/v1/evaluate/flags 2>/dev/null && break; sleep 0.1; done
  echo "## instructions per request under callgrind, wrk -t1 -c4 -d$duration"
  for case in ${CASES:-single bulk bulk-distinct bulk304}; do
    distinct=""
    case $case in
      single) path=/ofrep/v1/evaluate/flags/targeted; k=$single_key; inm="" ;;
      bulk) path=/ofrep/v1/evaluate/flags; k=$bulk_key; inm="" ;;
      bulk-distinct) path=/ofrep/v1/evaluate/flags; k=$bulk_key; inm=""; distinct=1000000 ;;
      bulk304) path=/ofrep/v1/evaluate/flags; k=$still_key; inm=$etag ;;
    esac
    for target in bare:7083:$bare_pid sluice:7070:$sluice_pid; do
      IFS=: read -r name port pid <<<"$target"
      run() {
        SLUICE_CLIENT_KEY="$k" IF_NONE_MATCH="$inm" DISTINCT="$distinct" taskset -c 1 wrk -t1 -c4 "-d$1" \
          -s "$here/wrk/ofrep.lua" "http://127.0.0.1:$port$path"
      }
      run 2s >/dev/null
      callgrind_control -z "$pid" >/dev/null 2>&1
      callgrind_control -i on "$pid" >/dev/null 2>&1
      out=$(run "$duration")
      callgrind_control -i off "$pid" >/dev/null 2>&1
      callgrind_control -d "$pid" >/dev/null 2>&1
      sleep 1
      requests=$(echo "$out" | awk '/requests in/ {print $1}')
      dump=$(ls -t "$work/$name.cg"* | head -1)
      instr=$(awk '/^totals:/ {print $2}' "$dump")
      if [ -n "${KEEP:-}" ]; then cp "$dump" "$KEEP.$case.$name"; fi
      echo "$case $name: $requests requests, $instr instructions, $((instr / requests)) per request"
    done
  done
  exit 0
fi

echo "## idle RSS (KiB), 2 s after start"
start_sluice idle 7270
sleep 2
echo "sluice serve, empty: $(rss_kib "$started") KiB"
base="http://127.0.0.1:7270"
import "$base" testbed "$work/testbed.json" "?mode=lenient"
key=$(client_key "$base" testbed)
curl -fsS -o /dev/null -H "X-API-Key: $key" -d "$body" "$base/ofrep/v1/evaluate/flags"
sleep 2
echo "sluice serve, 74 testbed flags imported and evaluated once: $(rss_kib "$started") KiB"

echo
echo "## 10,000 flags"
"$bin/snapshot-memory" 10000
"$bin/snapshot-memory" 10000 --print >"$work/10k.json"
echo "document: $(($(stat -c %s "$work/10k.json") / 1024)) KiB"
before=$(rss_kib "$started")
import "$base" big "$work/10k.json"
sleep 1
after=$(rss_kib "$started")
echo "sluice serve RSS: ${before} KiB before importing 10,000 flags, ${after} KiB after (+$((after - before)) KiB)"
kill "$started"; wait "$started" 2>/dev/null || true

echo
echo "## OFREP over loopback: wrk -t1 -c$connections -d$duration, $rounds rounds, interleaved"
start_sluice bench 7070
base="http://127.0.0.1:7070"
import "$base" testbed "$work/testbed.json" "?mode=lenient"
import "$base" still "$work/still.json" "?mode=lenient"
import "$base" sdk "$root/tests/sdk/flags.json"
bulk_key=$(client_key "$base" testbed)
still_key=$(client_key "$base" still)
single_key=$(client_key "$base" sdk)
curl -fsS -H "X-API-Key: $bulk_key" -d "$body" "$base/ofrep/v1/evaluate/flags" >"$work/bulk.json"
curl -fsS -H "X-API-Key: $single_key" -d "$body" "$base/ofrep/v1/evaluate/flags/targeted" >"$work/single.json"
etag=$(tag_of "$base" "$still_key")
sleep 1.1
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "X-API-Key: $still_key" -H "If-None-Match: $etag" -d "$body" \
  "$base/ofrep/v1/evaluate/flags")" = 304 ] || { echo "expected a 304 from sluice a second later" >&2; exit 1; }
echo "single answer: $(cat "$work/single.json")"
echo "bulk answer: $(jq '.flags | length' "$work/bulk.json") flags, $(stat -c %s "$work/bulk.json") bytes"
taskset -c 0 "$bin/bare-ofrep" 127.0.0.1:7083 "$work/bulk.json" "$work/single.json" &
pids+=("$!")
wait_up "http://127.0.0.1:7083/"

run_wrk() { # url key if-none-match distinct
  SLUICE_CLIENT_KEY="$2" IF_NONE_MATCH="$3" DISTINCT="$4" taskset -c 1 wrk -t1 "-c$connections" "-d$duration" \
    --latency -s "$here/wrk/ofrep.lua" "$1"
}
for r in $(seq 1 "$rounds"); do
  for case in ${CASES:-single bulk bulk-distinct bulk304}; do
    distinct=""
    case $case in
      single) path=/ofrep/v1/evaluate/flags/targeted; k=$single_key; inm="" ;;
      bulk) path=/ofrep/v1/evaluate/flags; k=$bulk_key; inm="" ;;
      # Every request a new targetingKey: no answer comes from Sluice's answer cache.
      bulk-distinct) path=/ofrep/v1/evaluate/flags; k=$bulk_key; inm=""; distinct=1000000 ;;
      bulk304) path=/ofrep/v1/evaluate/flags; k=$still_key; inm=$etag ;;
    esac
    for target in bare:7083 sluice:7070; do
      name="${target%%:*}"
      port="${target##*:}"
      before=$(answered_3xx)
      out=$(run_wrk "http://127.0.0.1:$port$path" "$k" "$inm" "$distinct")
      rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
      p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
      non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
      echo "round $r $case $name: ${rps} req/s, p99 ${p99}${non2xx:+, non-2xx/3xx $non2xx}"
      if [ "$case" = bulk304 ] && [ "$name" = sluice ]; then
        # Every request of the case must have been a 304 (wrk counts a 200 as a success).
        requests=$(echo "$out" | awk '/requests in/ {print $1}')
        got=$(($(answered_3xx) - before))
        [ "$got" -ge "$requests" ] || { echo "only $got of $requests answers were 304" >&2; exit 1; }
      fi
    done
  done
done
