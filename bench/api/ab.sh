#!/usr/bin/env bash
# Interleaved comparison of tusk binaries on the home timeline benchmark:
#
#   bench/api/ab.sh SVC_DIR RUNS TUSK_A[@WORKERS] TUSK_B[@WORKERS] ...
#
# On a machine shared with other work, load swings between runs make two separate
# run.sh sessions incomparable; this starts one api per binary (run.sh's [api] settings,
# api_workers 2 unless @N is given) on the same seeded data (seed.sh --reuse), warms each up
# as run.sh does (wrk 10 s at 128 connections), then alternates RUNS rounds of the same wrk
# run (-t2 -c128 -d10s, GET /api/v1/timelines/home?limit=20 with the 10k tokens rotating),
# so every binary sees the same conditions within a round. Prints each run (req/s, p50,
# p99, the api process's CPU per request from /proc, the load average) and the medians.
# BENCH_CONNECTIONS changes the connection count.
set -euo pipefail
SVC=${1:?usage: ab.sh SVC_DIR RUNS TUSK_A[@WORKERS] TUSK_B[@WORKERS] ...}
RUNS=${2:?}
shift 2
[ $# -ge 1 ] || { echo "usage: ab.sh SVC_DIR RUNS TUSK_A[@WORKERS] ..." >&2; exit 1; }
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC1091
. "$SVC/env"
CONNS=${BENCH_CONNECTIONS:-128}
DSN="host=127.0.0.1 port=$TUSK_PG_PRIMARY_PORT user=$TUSK_PG_USER password=$TUSK_PG_PASSWORD dbname=bench_api"
WORK=$(mktemp -d /tmp/tusk-bench-ab-XXXXXX)
PIDS=()
PORTS=()
cleanup() {
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
first=${1%@*}
"$HERE/seed.sh" "$first" "$SVC" "$WORK" --reuse

port=$((TUSK_FREE_PORT_BASE + 80))
for i in $(seq 0 $(($# - 1))); do
    spec=${*:$((i + 1)):1}
    bin=${spec%@*}
    workers=2
    [ "$bin" != "$spec" ] && workers=${spec#*@}
    while [ -n "$(ss -Htan "( sport = :$port )" 2>/dev/null)" ]; do port=$((port + 1)); done
    cat >"$WORK/api$i.ini" <<INI
[api]
listen = 127.0.0.1:$port
api_workers = $workers
database = $DSN
db_pool_size = 4
redis_pubsub = redis://127.0.0.1:$TUSK_REDIS_PORT/13
public_url = https://bench.example
rate_limit_per_5min = 0
rate_limit_unauthenticated_per_5min = 0
auth_cache_ms = 600000
render_cache_entries = 65536
log_level = warning
INI
    "$bin" api -c "$WORK/api$i.ini" >"$WORK/api$i.log" 2>&1 &
    PIDS+=($!)
    PORTS+=("$port")
    port=$((port + 1))
done
for i in "${!PIDS[@]}"; do
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/${PORTS[$i]}") 2>/dev/null && break
        sleep 0.1
    done
    wrk -t2 -c128 -d10s -s "$HERE/home.lua" "http://127.0.0.1:${PORTS[$i]}" -- "$WORK/tokens.txt" >/dev/null
done

: >"$WORK/results"
for run in $(seq 1 "$RUNS"); do
    for i in "${!PIDS[@]}"; do
        pid=${PIDS[$i]}
        cpu0=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
        wrk -t2 -c"$CONNS" -d10s --latency -s "$HERE/home.lua" "http://127.0.0.1:${PORTS[$i]}" \
            -- "$WORK/tokens.txt" >"$WORK/wrk.txt" 2>&1
        cpu1=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
        line=$(awk -v c=$((cpu1 - cpu0)) -v hz="$(getconf CLK_TCK)" '
            function ms(v) {
                if (v ~ /ms$/) { sub(/ms/, "", v); return v }
                if (v ~ /us$/) { sub(/us/, "", v); return v / 1000 }
                sub(/s/, "", v); return v * 1000
            }
            /Requests\/sec/ { rps = $2 } /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) }
            /requests in/ { n = $1 } /Non-2xx/ { bad = $NF }
            END { printf "%.0f %.2f %.2f %.1f %d", rps, p50, p99, c * 1e6 / hz / n, bad }' "$WORK/wrk.txt")
        read -r rps p50 p99 cpu bad <<<"$line"
        echo "$i $line" >>"$WORK/results"
        printf "run %d  %-40s %6s req/s  p50 %6s ms  p99 %7s ms  api %5s us/req  non-2xx %s  load %s\n" \
            "$run" "${*:$((i + 1)):1}" "$rps" "$p50" "$p99" "$cpu" "$bad" "$(cut -d' ' -f1 /proc/loadavg)"
    done
done
echo
echo "== medians of $RUNS runs (wrk -t2 -c$CONNS -d10s)"
for i in "${!PIDS[@]}"; do
    med() { awk -v i="$i" -v c="$1" '$1 == i { print $c }' "$WORK/results" | sort -g |
        awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
    printf "%-40s %6s req/s  p50 %6s ms  p99 %7s ms  api %5s us/req\n" "${*:$((i + 1)):1}" \
        "$(med 2)" "$(med 3)" "$(med 4)" "$(med 5)"
done
