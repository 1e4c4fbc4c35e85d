#!/usr/bin/env bash
# The PostgreSQL gateway's figures (BENCHMARKS.md, "PostgreSQL gateway"): pgbench -S through
# the gateway against the same database directly, in one run; added latency per query;
# memory per idle session. Needs a release build of `sluice`, PostgreSQL on 127.0.0.1:5432
# (superuser `postgres` trusted on loopback, the `sluice_scram` hba line that .ci/run adds),
# pgbench and psql.
#   cargo build --release -p sluice && crates/sluice-bench/run-gateway.sh
set -euo pipefail
BIN=${SLUICE_BIN:-target/release/sluice}
T=${T:-15}
ID=$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
DB=gwbench_$ID
ROLE=gwbench_${ID}_r
PW=pw$ID
HTTP=127.0.0.1:${HTTP_PORT:-17171}
PGPORT=${PG_PORT:-16433}
ADMIN=slu_api_$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
WORK=$(mktemp -d)
SU="host=127.0.0.1 port=5432 user=postgres"

# PIN=1: the proxy gets a core of its own. PostgreSQL (its postmaster, so every new backend)
# and pgbench run on CPU 0, the proxies on CPU 1 — for direct and proxied runs alike — as
# when the gateway runs on a host of its own. Without it, all share both cores and a proxy's
# CPU is taken from the database's.
PIN=${PIN:-}
ON_DB=(); ON_PROXY=()
if [ -n "$PIN" ]; then
  PM=$(head -n1 "$(psql "host=127.0.0.1 port=5432 user=postgres dbname=postgres" -Atc 'SHOW data_directory')/postmaster.pid")
  taskset -pc 0 "$PM" >/dev/null
  ON_DB=(taskset -c 0); ON_PROXY=(taskset -c 1)
fi
cleanup() {
  [ -n "${PM:-}" ] && taskset -pc "0-$(( $(nproc) - 1 ))" "$PM" >/dev/null || true
  [ -n "${SLUICE_PID:-}" ] && kill "$SLUICE_PID" 2>/dev/null || true
  [ -f "$WORK/pgb/pgb.pid" ] && kill "$(cat "$WORK/pgb/pgb.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  psql "$SU dbname=postgres" -qc "DROP DATABASE IF EXISTS $DB" -c "DROP ROLE IF EXISTS $ROLE" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

psql "$SU dbname=postgres" -qc "CREATE ROLE $ROLE LOGIN PASSWORD '$PW' IN ROLE sluice_scram" -c "CREATE DATABASE $DB"
pgbench -i -s 1 -q "$SU dbname=$DB" 2>/dev/null
psql "$SU dbname=$DB" -qc "GRANT SELECT ON ALL TABLES IN SCHEMA public TO $ROLE"

cat > "$WORK/sluice.yaml" <<YAML
listen: $HTTP
pg_listen: 127.0.0.1:$PGPORT
pg_allow_plaintext_loopback: true
databases:
  - name: bench
    upstream: { host: 127.0.0.1, port: 5432, dbname: $DB }
    roles: [{ action: read, user: $ROLE, password_env: BENCH_PW }]
    log: session-log
  - name: bench-strict
    upstream: { host: 127.0.0.1, port: 5432, dbname: $DB }
    roles: [{ action: read, user: $ROLE, password_env: BENCH_PW }]
    log: strict
YAML
cat > "$WORK/policy.yaml" <<YAML
users: [alice, bob]
entitlements:
  - name: bench-read
    scopes:
      - { resource: "db:bench", actions: [read] }
      - { resource: "db:bench-strict", actions: [read] }
    requesters: [alice]
    max_duration: 2h
    approval: { required: 1, approvers: [bob] }
    auto_approve: { requester_in: [alice], max_duration: 2h }
YAML
SLUICE_ADMIN_TOKEN=$ADMIN BENCH_PW=$PW "${ON_PROXY[@]}" "$BIN" serve --config "$WORK/sluice.yaml" --data-dir "$WORK/data" 2>"$WORK/serve.log" &
SLUICE_PID=$!
for _ in $(seq 1 50); do curl -sf "http://$HTTP/healthz" >/dev/null && break; sleep 0.2; done
api() { curl -sf -H "Authorization: Bearer $1" -H 'content-type: application/json' -d "$3" "http://$HTTP$2"; }
api "$ADMIN" /v1/policy "$(python3 -c 'import json,sys; print(json.dumps({"source": open(sys.argv[1]).read()}))' "$WORK/policy.yaml")" >/dev/null
TOKEN=$(api "$ADMIN" /v1/tokens '{"principal":"alice","name":"bench"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
api "$TOKEN" /v1/requests '{"entitlement":"bench-read","duration":"1h","reason":"bench"}' >/dev/null

DIRECT="host=127.0.0.1 port=5432 user=$ROLE dbname=$DB"
GATEWAY="host=127.0.0.1 port=$PGPORT user=alice dbname=bench sslmode=disable"
STRICT="host=127.0.0.1 port=$PGPORT user=alice dbname=bench-strict sslmode=disable"
GATEWAY_TLS="host=127.0.0.1 port=$PGPORT user=alice dbname=bench sslmode=require"
tps() { PGPASSWORD=$1 "${ON_DB[@]}" pgbench -n -S -c 8 -j 2 -T "$T" "$2" 2>/dev/null | awk '/^tps/ {print int($3)}'; }

# A reference proxy, when installed (`apt-get install pgbouncer`): PgBouncer in session mode
# over the same database, so the gateway's ratio can be read against the cost of any proxy
# hop on this machine.
PGB_PORT=${PGB_PORT:-16434}
BOUNCER=""
if command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ]; then
  chmod 755 "$WORK"; mkdir -p "$WORK/pgb"
  printf '"%s" "%s"\n' "$ROLE" "$PW" > "$WORK/userlist.txt"
  cat > "$WORK/pgbouncer.ini" <<INI
[databases]
bench = host=127.0.0.1 port=5432 dbname=$DB
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = plain
auth_file = $WORK/userlist.txt
pool_mode = session
max_client_conn = 100
default_pool_size = 20
logfile = $WORK/pgb/pgb.log
pidfile = $WORK/pgb/pgb.pid
INI
  chmod 644 "$WORK"/userlist.txt "$WORK"/pgbouncer.ini
  # PgBouncer will not run as root.
  PGB_USER=(); if [ "$(id -u)" = 0 ]; then PGB_USER=(-u postgres); chown postgres "$WORK/pgb"; fi
  "${ON_PROXY[@]}" "$(command -v pgbouncer || echo /usr/sbin/pgbouncer)" -d "${PGB_USER[@]}" "$WORK/pgbouncer.ini"
  sleep 0.5
  BOUNCER="host=127.0.0.1 port=$PGB_PORT user=$ROLE dbname=bench sslmode=disable"
fi

# A proxy's CPU per transaction (user + system time of its process over a run, divided by the
# transactions of that run): unlike throughput, it hardly moves with other load on the host.
CLK=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Runs pgbench through a proxy whose pid is $1; sets `out` to its tps and `us` to the proxy's
# CPU µs per transaction.
# PERF=FILE: also record a CPU profile of the gateway (`perf record -g`) during its first run.
proxied() {
  local c0 c1
  if [ -n "${PERF:-}" ] && [ "$1" = "$SLUICE_PID" ]; then
    perf record -q -F 999 -g -p "$1" -o "$PERF" -- sleep "$T" >/dev/null 2>&1 &
    PERF=""
  fi
  c0=$(cpu "$1"); out=$(tps "$2" "$3"); c1=$(cpu "$1")
  us=$(python3 -c "print(round(($c1 - $c0) / $CLK * 1e6 / max(1, $out * $T), 1))")
}

ROUNDS=${ROUNDS:-5}
echo "pgbench -S -c 8 -j 2 -T $T (select-only), $ROUNDS rounds, direct and gateway alternating:"
ratios=(); bratios=(); gcpu=(); bcpu=()
for round in $(seq 1 "$ROUNDS"); do
  if (( round % 2 )); then d=$(tps "$PW" "$DIRECT"); proxied "$SLUICE_PID" "$TOKEN" "$GATEWAY"
  else proxied "$SLUICE_PID" "$TOKEN" "$GATEWAY"; d=$(tps "$PW" "$DIRECT"); fi
  g=$out; gcpu+=("$us")
  r=$(python3 -c "print(round($g/$d, 3))")
  ratios+=("$r")
  line="  round $round: direct $d tps, gateway (session-log) $g tps, ratio $r, $us µs CPU/tx"
  if [ -n "$BOUNCER" ]; then
    proxied "$(cat "$WORK/pgb/pgb.pid")" "$PW" "$BOUNCER"; b=$out; bcpu+=("$us")
    rb=$(python3 -c "print(round($b/$d, 3))"); bratios+=("$rb")
    line="$line; pgbouncer $b tps, ratio $rb, $us µs CPU/tx"
  fi
  echo "$line"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "  median ratio, gateway/direct: $(median "${ratios[@]}"); gateway CPU per transaction: $(median "${gcpu[@]}") µs"
[ -n "$BOUNCER" ] && echo "  median ratio, pgbouncer/direct: $(median "${bratios[@]}"); pgbouncer CPU per transaction: $(median "${bcpu[@]}") µs"
echo "  gateway, TLS (sslmode=require): $(tps "$TOKEN" "$GATEWAY_TLS") tps"
echo "  gateway, strict mode: $(tps "$TOKEN" "$STRICT") tps"

lat() {
  rm -f "$WORK"/lat.*
  PGPASSWORD=$1 "${ON_DB[@]}" pgbench -n -S -c 1 -T 10 -l --log-prefix="$WORK/lat" "$2" >/dev/null 2>&1
  cat "$WORK"/lat.* | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {printf "p50 %d µs, p99 %d µs (%d queries)", a[int(NR*0.5)], a[int(NR*0.99)], NR}'
}
echo "latency per transaction, 1 client, -T 10:"
echo "  direct:  $(lat "$PW" "$DIRECT")"
echo "  gateway: $(lat "$TOKEN" "$GATEWAY")"

N=${IDLE:-30}
rss() { awk '/VmRSS/ {print $2}' "/proc/$SLUICE_PID/status"; }
before=$(rss)
for _ in $(seq 1 "$N"); do
  (sleep 15 | PGPASSWORD=$TOKEN psql -X -q "$GATEWAY" >/dev/null 2>&1 &)
done
sleep 5
after=$(rss)
echo "memory: RSS $before KiB before, $after KiB with $N idle sessions: $(( (after - before) / N )) KiB per idle session"
