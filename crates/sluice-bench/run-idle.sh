#!/usr/bin/env bash
# Idle memory of BENCHMARKS.md ("4. Idle memory"): RSS of `sluice serve` and of `sluice edge`
# as a user would see it, over several starts, with where it goes.
#
# Each start: a fresh data directory, SQLite, pinned to core 0 (taskset). `sluice serve` is
# measured once it answers /readyz and has answered one API request and one OFREP evaluation
# (the SDK flag set imported, a client key made, `GET /v1/environments`, one single-flag
# evaluation), then 2 s idle. `sluice edge` follows such a server and is measured synced, after
# one OFREP evaluation, 2 s idle (as run-edge.sh). RSS is `ps -o rss`; the breakdown (one more
# start each) reads /proc/PID/smaps: the binary's own mapped pages, anonymous memory (heap
# arenas and thread stacks), and the threads by name.
#
#   CARGO_TARGET_DIR=target-rel cargo build --release -p sluice
#   CARGO_TARGET_DIR=target-rel crates/sluice-bench/run-idle.sh
#
# Environment: STARTS (3).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${CARGO_TARGET_DIR:-target}/release"
starts="${STARTS:-3}"
admin="slu_api_00000000000000000000000000000000000000000000000000000000000000ad"
body='{"context":{"targetingKey":"user-1","email":"ann@example.com","version":"2.1.0"}}'
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

wait_up() { # url
  for _ in $(seq 1 200); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "server at $1 did not come up" >&2
  return 1
}

rss_kib() { ps -o rss= -p "$1" | tr -d ' '; }

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

# Where the pages are: per kind of mapping, resident KiB; then the threads by name.
breakdown() { # pid
  awk -v exe="$(readlink "/proc/$1/exe")" '
    /^[0-9a-f]+-[0-9a-f]+ / {
      path = $6
      kind = (path == exe) ? "the binary " $2 : (path ~ /^\// ? "shared libraries" : (path == "" ? "anonymous" : path))
      next
    }
    $1 == "Rss:" { rss[kind] += $2; total += $2 }
    END {
      for (k in rss) if (rss[k] > 0) printf "  %-20s %6d KiB\n", k, rss[k]
      printf "  %-20s %6d KiB\n", "total", total
    }' "/proc/$1/smaps" | sort -k1,1
  printf '  threads: %s\n' "$(cat /proc/"$1"/task/*/comm | sort | uniq -c | awk '{printf "%s %s, ", $1, $2}' | sed 's/, $//')"
}

start_serve() { # dir port -> pid in $started
  mkdir -p "$work/$1"
  SLUICE_ADMIN_TOKEN="$admin" taskset -c 0 "$bin/sluice" serve \
    --listen "127.0.0.1:$2" --data-dir "$work/$1" >"$work/$1.log" 2>&1 &
  started=$!
  pids+=("$started")
  wait_up "http://127.0.0.1:$2/readyz"
  local base="http://127.0.0.1:$2"
  curl -fsS -o /dev/null -X PUT -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
    --data-binary "@$root/tests/sdk/flags.json" "$base/v1/environments/sdk/flags?create_env=true"
  key=$(curl -fsS -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
    -d '{"name":"idle","kind":"client","environment":"sdk"}' "$base/v1/tokens" | jq -r .token)
  curl -fsS -o /dev/null -H "Authorization: Bearer $admin" "$base/v1/environments"
  curl -fsS -o /dev/null -H "X-API-Key: $key" -d "$body" "$base/ofrep/v1/evaluate/flags/targeted"
}

start_edge() { # dir port upstream-port -> pid in $started
  local central="http://127.0.0.1:$3"
  local edge_key
  edge_key=$(curl -fsS -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
    -d "{\"name\":\"edge-$1\",\"kind\":\"edge\",\"environment\":\"sdk\"}" "$central/v1/tokens" | jq -r .token)
  mkdir -p "$work/$1"
  SLUICE_EDGE_KEY="$edge_key" taskset -c 0 "$bin/sluice" edge --upstream "$central" \
    --listen "127.0.0.1:$2" --data-dir "$work/$1" >"$work/$1.log" 2>&1 &
  started=$!
  pids+=("$started")
  wait_up "http://127.0.0.1:$2/readyz"
  curl -fsS -o /dev/null -H "X-API-Key: $key" -d "$body" "http://127.0.0.1:$2/ofrep/v1/evaluate/flags/targeted"
}

stop() { # pid
  kill "$1"
  wait "$1" 2>/dev/null || true
}

measure() { # start-command args... : RSS of $starts starts, then their median
  local rss=()
  for i in $(seq 1 "$starts"); do
    "$1" "$2-$i" "${@:3}"
    sleep 2
    rss+=("$(rss_kib "$started")")
    echo "start $i: ${rss[-1]} KiB"
    stop "$started"
  done
  echo "median: $(printf '%s\n' "${rss[@]}" | median) KiB"
}

echo "## sluice serve: RSS (KiB) after /readyz, one API request and one OFREP evaluation, 2 s idle"
measure start_serve serve 7370

echo
echo "## sluice edge: RSS (KiB) synced, after one OFREP evaluation, 2 s idle"
start_serve central 7370
central_pid=$started
measure start_edge edge 7371 7370

echo
echo "## where it goes (one more start each)"
echo "sluice edge:"
start_edge edge-b 7371 7370
sleep 2
breakdown "$started"
stop "$started"
stop "$central_pid"
echo "sluice serve:"
start_serve serve-b 7370
sleep 2
breakdown "$started"
