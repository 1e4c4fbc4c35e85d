#!/usr/bin/env bash
# BENCHMARKS.md "Memory of a 10,000-flag import": RSS of `sluice serve` before and after
# importing 10,000 flags over HTTP, after importing them again, and after one single-flag
# change; ROUNDS fresh servers, medians printed last. Compare with `snapshot-memory 10000`
# (the compiled snapshot's own size), which the script also runs.
#
#   cargo build --release -p sluice -p sluice-bench
#   crates/sluice-bench/run-import-memory.sh            # BIN=target/release by default
#
# Environment: ROUNDS (3), BIN (directory holding `sluice` and `snapshot-memory`), SETTLE
# (seconds between a step and its RSS reading, 1 by default: an allocator that returns memory
# in the background needs longer to show it).
set -euo pipefail

bin="${BIN:-${CARGO_TARGET_DIR:-target}/release}"
rounds="${ROUNDS:-3}"
settle="${SETTLE:-1}"
admin="slu_api_00000000000000000000000000000000000000000000000000000000000000ad"
port=7290
work="$(mktemp -d)"
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }
import() { # env file
  curl -fsS -o /dev/null -X PUT -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
    --data-binary "@$2" "http://127.0.0.1:$port/v1/environments/$1/flags?create_env=true"
}

"$bin/snapshot-memory" 10000
"$bin/snapshot-memory" 10000 --print >"$work/10k.json"
echo "document: $(($(stat -c %s "$work/10k.json") / 1024)) KiB"

for r in $(seq 1 "$rounds"); do
  rm -rf "$work/data" && mkdir -p "$work/data"
  SLUICE_ADMIN_TOKEN="$admin" "$bin/sluice" serve --listen "127.0.0.1:$port" \
    --data-dir "$work/data" >"$work/serve.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 200); do
    curl -sS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null && break
    sleep 0.1
  done
  sleep 1
  before=$(rss_kib "$pid")
  import big "$work/10k.json"
  sleep "$settle"
  first=$(rss_kib "$pid")
  import big "$work/10k.json"
  sleep "$settle"
  second=$(rss_kib "$pid")
  rev=$(curl -fsS -H "Authorization: Bearer $admin" \
    "http://127.0.0.1:$port/v1/environments/big/flags/flag-00000" | jq -r .revision)
  curl -fsS -o /dev/null -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
    -d "{\"change\":{\"op\":\"set-state\",\"enabled\":false},\"base_revision\":$rev}" \
    "http://127.0.0.1:$port/v1/environments/big/flags/flag-00000/changes"
  sleep "$settle"
  change=$(rss_kib "$pid")
  echo "round $r: before $before KiB, after import $first (+$((first - before))), after re-import $second (+$((second - before))), after one flag change $change (+$((change - before)))"
  echo "$((first - before)) $((second - before)) $((change - before))" >>"$work/deltas"
  kill "$pid" && wait "$pid" 2>/dev/null || true
  pid=""
done
for col in 1 2 3; do
  cut -d' ' -f"$col" "$work/deltas" | median
done | paste -sd' ' | awk '{printf "median growth (KiB): import +%s, re-import +%s, one flag change +%s\n", $1, $2, $3}'
