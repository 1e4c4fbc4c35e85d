#!/usr/bin/env bash
# BENCHMARKS.md, "HTTP gateway": a small GET direct to an upstream (a bare axum handler,
# `bare-hello`) against the same GET through `sluice serve`'s HTTP gateway, in both audit
# modes (`before`: each call's admission committed before it is forwarded, concurrent calls
# sharing commits; `after`: the call's record written after the response, in batches).
#
# A bare reverse proxy on the same stack (`bare-proxy`: axum + reqwest, nothing else) is
# measured too: the ceiling of any gateway built this way on this host. When nginx is
# installed, so is nginx as a plain reverse proxy (one worker, keep-alive to the upstream, no
# access log): what the fastest widely deployed proxy does in the same place.
#
# UPSTREAM_WORK_US=N makes the upstream spend N µs of processor on each request before it
# answers (`bare-hello ADDR N`), as an API's handler does; with 0 (the default) it does
# nothing, so that a ratio to direct measures the proxy against an empty handler.
#
# The servers are pinned to core 0 and wrk to core 1 (taskset). Only 127.0.0.1 is used.
#
#   cargo build --release -p sluice -p sluice-bench --bin sluice --bin bare-hello --bin bare-proxy
#
# Needs wrk, curl, jq, sqlite3 and taskset.
#   crates/sluice-bench/run-http-gateway.sh
#
# MODE=callgrind: instructions per call instead, which a loaded host does not change — the bare
# proxy and `sluice serve` under `valgrind --tool=callgrind --instr-atstart=no` (the upstream is
# not), instrumentation on after a warm-up, `wrk -t1 -c8 -d$DURATION`, instructions divided by
# the calls served. The ratio bare proxy / gateway is the one to compare across commits.
#
# Environment: MODE (throughput), KEEP (callgrind: copy each profile to $KEEP.<target>), ROUNDS
# (3), DURATION (10s), CONNECTIONS ("8 64": one set of
# rounds per count).
set -euo pipefail

bin="${CARGO_TARGET_DIR:-target}/release"
rounds="${ROUNDS:-3}"
duration="${DURATION:-10s}"
connections="${CONNECTIONS:-8 64}"
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

taskset -c 0 "$bin/bare-hello" 127.0.0.1:7191 "${UPSTREAM_WORK_US:-0}" &
pids+=("$!")
wait_up "http://127.0.0.1:7191/"
cg=()
if [ "${MODE:-throughput}" = callgrind ]; then
  cg=(valgrind --tool=callgrind --instr-atstart=no "--callgrind-out-file=$work/%p.cg")
fi
taskset -c 0 "${cg[@]}" "$bin/bare-proxy" 127.0.0.1:7192 http://127.0.0.1:7191 &
proxy_pid=$!
pids+=("$proxy_pid")
wait_up "http://127.0.0.1:7192/"
nginx_target=()
if [ "${MODE:-throughput}" != callgrind ] && command -v nginx >/dev/null; then
  mkdir -p "$work/nginx"
  cat >"$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  upstream hello { server 127.0.0.1:7191; keepalive 64; }
  server {
    listen 127.0.0.1:7193;
    location / { proxy_pass http://hello; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGINX
  taskset -c 0 nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &
  pids+=("$!")
  wait_up "http://127.0.0.1:7193/"
  nginx_target=(nginx:http://127.0.0.1:7193/)
fi

cat >"$work/sluice.yaml" <<YAML
http_gateway_listen: 127.0.0.1:8191
http_services:
  - { name: hello-before, upstream: "http://127.0.0.1:7191", audit: before,
      credential: { header: authorization, value_env: BENCH_UPSTREAM_CREDENTIAL } }
  - { name: hello-after, upstream: "http://127.0.0.1:7191", audit: after,
      credential: { header: authorization, value_env: BENCH_UPSTREAM_CREDENTIAL } }
YAML
SLUICE_ADMIN_TOKEN="$admin" BENCH_UPSTREAM_CREDENTIAL="Bearer bench" taskset -c 0 "${cg[@]}" "$bin/sluice" serve \
  --listen 127.0.0.1:7190 --data-dir "$work/data" --config "$work/sluice.yaml" >"$work/sluice.log" 2>&1 &
sluice_pid=$!
pids+=("$sluice_pid")
wait_up "http://127.0.0.1:7190/healthz"

base="http://127.0.0.1:7190"
jq -Rs '{source: .}' <<POLICY | curl -fsS -o /dev/null -H "Authorization: Bearer $admin" \
  -H 'Content-Type: application/json' -d @- "$base/v1/policy"
users: [alice]
service_accounts: [bench-bot]
groups:
  leads: [alice]
entitlements:
  - name: hello
    scopes:
      - resource: "http:hello-*"
        actions: ["GET /"]
    requesters: [bench-bot]
    max_duration: 8h
    approval: { required: 1, approvers: [group:leads] }
    auto_approve: { requester_in: [bench-bot], max_duration: 8h }
POLICY
bot=$(curl -fsS -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
  -d '{"principal":"bench-bot","name":"bench"}' "$base/v1/tokens" | jq -r .token)
curl -fsS -o /dev/null -H "Authorization: Bearer $bot" -H 'Content-Type: application/json' \
  -d '{"entitlement":"hello","duration":"8h","reason":"bench"}' "$base/v1/requests"
for svc in hello-before hello-after; do
  code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $bot" "http://127.0.0.1:8191/$svc/")
  [ "$code" = 200 ] || { echo "expected 200 through $svc, got $code" >&2; exit 1; }
done

if [ "${MODE:-throughput}" = callgrind ]; then
  echo "## instructions per call under callgrind, wrk -t1 -c8 -d$duration"
  for target in bare-proxy:http://127.0.0.1:7192/:$proxy_pid after:http://127.0.0.1:8191/hello-after/:$sluice_pid before:http://127.0.0.1:8191/hello-before/:$sluice_pid; do
    name="${target%%:*}"
    rest="${target#*:}"
    pid="${rest##*:}"
    url="${rest%:*}"
    run() { taskset -c 1 wrk -t1 -c8 "-d$1" -H "Authorization: Bearer $bot" "$url"; }
    run 2s >/dev/null
    callgrind_control -z "$pid" >/dev/null 2>&1
    callgrind_control -i on "$pid" >/dev/null 2>&1
    out=$(run "$duration")
    callgrind_control -i off "$pid" >/dev/null 2>&1
    callgrind_control -d "$pid" >/dev/null 2>&1
    sleep 1
    calls=$(echo "$out" | awk '/requests in/ {print $1}')
    dump=$(ls -t "$work/$pid.cg"* | head -1)
    instr=$(awk '/^totals:/ {print $2}' "$dump")
    echo "$name: $calls calls, $instr instructions, $((instr / calls)) per call"
    [ -z "${KEEP:-}" ] || cp "$dump" "$KEEP.$name"
  done
  exit 0
fi

for c in $connections; do
  echo "## small GET: wrk -t1 -c$c -d$duration --latency, $rounds rounds, interleaved"
  for r in $(seq 1 "$rounds"); do
    for target in direct:http://127.0.0.1:7191/ "${nginx_target[@]}" bare-proxy:http://127.0.0.1:7192/ after:http://127.0.0.1:8191/hello-after/ before:http://127.0.0.1:8191/hello-before/; do
      name="${target%%:*}"
      url="${target#*:}"
      out=$(taskset -c 1 wrk -t1 "-c$c" "-d$duration" --latency -H "Authorization: Bearer $bot" "$url")
      rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
      p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
      p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
      non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
      echo "c$c round $r $name: ${rps} req/s, p50 ${p50}, p99 ${p99}${non2xx:+, non-2xx $non2xx}"
    done
  done
done
# Every call recorded? The call log after the runs, and the entries sealing it.
sleep 0.5
sqlite3 "$work/data/sluice.db" "SELECT 'call log: ' || COUNT(*) || ' records in ' || COUNT(DISTINCT batch_seq) || ' sealed batches; admitted ' || SUM(event = 'admitted') || ', ended ' || SUM(event = 'ended') FROM http_calls"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
