#!/usr/bin/env bash
# API benchmark: home timeline reads and streaming, next to Redis' own ceiling.
#
#   bench/api/run.sh BUILD_DIR SVC_DIR [RUNS]
#
# BUILD_DIR should be a release build (cmake -DCMAKE_BUILD_TYPE=Release, no sanitizers) with
# the targets tusk and bench_api_sse built. SVC_DIR holds services started with
# scripts/services (its env file is read). Uses the database "bench_api" and Redis db 13
# (flushed).
#
#  1. seeds 10k local accounts, all active, with tokens (tusk seed), 400k follows and 800k
#     statuses, and gives every account a full home feed (up to 800 entries, the newest
#     statuses of the accounts it follows and its own, as a rebuild would) straight into
#     Redis (seed.sh; BENCH_REUSE=1 keeps data a previous run seeded);
#  2. warms up (auth caches, status cache, render caches) with one wrk run;
#  3. RUNS times: redis-benchmark ZREVRANGEBYSCORE ... LIMIT 0 20 on a full feed (-P 1 -c 50,
#     the ceiling) and wrk (2 threads, 64/128/256 connections, 10 s) on
#     GET /api/v1/timelines/home?limit=20 with a Lua script rotating the 10k tokens, and
#     once more at 128 connections with render_fresh_ms = 0 (one MGET of the status cache per
#     page, nothing served from the render memo without asking Redis);
#  4. RUNS times on a fresh api process: 10k concurrent SSE streams (bench_api_sse): RSS per
#     idle stream and publish-to-delivery latency;
#  and prints medians.
set -euo pipefail
BUILD=$(cd "${1:?usage: run.sh BUILD_DIR SVC_DIR [RUNS]}" && pwd)
SVC=${2:?usage: run.sh BUILD_DIR SVC_DIR [RUNS]}
RUNS=${3:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC1091
. "$SVC/env"
TUSK=$BUILD/tusk
SSE=$BUILD/api/bench_api_sse
[ -x "$TUSK" ] && [ -x "$SSE" ] || { echo "build tusk and bench_api_sse first" >&2; exit 1; }
command -v wrk >/dev/null && command -v redis-benchmark >/dev/null ||
    { echo "wrk and redis-benchmark are needed" >&2; exit 1; }
STREAMS=${BENCH_STREAMS:-10000}
DB=bench_api
DSN="host=127.0.0.1 port=$TUSK_PG_PRIMARY_PORT user=$TUSK_PG_USER password=$TUSK_PG_PASSWORD dbname=$DB"
RDB=13
# a port with no socket at all on it (the free range overlaps the ephemeral one, and a
# TIME-WAIT client socket there blocks a listener)
PORT=$((TUSK_FREE_PORT_BASE + 95))
while [ -n "$(ss -Htan "( sport = :$PORT )" 2>/dev/null)" ]; do PORT=$((PORT + 1)); done
WORK=$(mktemp -d /tmp/tusk-bench-api-XXXXXX)
API=""
stop_api() {
    if [ -n "$API" ]; then
        kill "$API" 2>/dev/null || true
        wait "$API" 2>/dev/null || true
        API=""
    fi
}
trap 'stop_api; rm -rf "$WORK"' EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "n/a" }'; }

"$HERE/seed.sh" "$TUSK" "$SVC" "$WORK" ${BENCH_REUSE:+--reuse}
BIGFEED=$(cat "$WORK/bigfeed")

start_api() { # extra [api] lines as arguments
    cat >"$WORK/api.ini" <<INI
[api]
listen = 127.0.0.1:$PORT
api_workers = 2
database = $DSN
db_pool_size = 4
redis_pubsub = redis://127.0.0.1:$TUSK_REDIS_PORT/$RDB
public_url = https://bench.example
rate_limit_per_5min = 0
rate_limit_unauthenticated_per_5min = 0
auth_cache_ms = 600000
render_cache_entries = 65536
log_level = warning
INI
    for line in "$@"; do echo "$line" >>"$WORK/api.ini"; done
    "$TUSK" api -c "$WORK/api.ini" >"$WORK/api.log" 2>&1 &
    API=$!
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "tusk api did not start" >&2
    cat "$WORK/api.log" >&2
    exit 1
}

run_wrk() { # connections -> "rps p99_ms non2xx"
    wrk -t2 -c"$1" -d10s --latency -s "$HERE/home.lua" "http://127.0.0.1:$PORT" -- "$WORK/tokens.txt" \
        >"$WORK/wrk.txt" 2>&1
    awk '/Requests\/sec/ { rps = $2 }
         /^ +99%/ { v = $2; if (v ~ /ms$/) { sub(/ms/, "", v) } else if (v ~ /us$/) { sub(/us/, "", v); v = v / 1000 } else if (v ~ /s$/) { sub(/s/, "", v); v = v * 1000 }; p99 = v }
         /Non-2xx/ { bad = $NF }
         END { printf "%s %s %d\n", rps, p99, bad }' "$WORK/wrk.txt"
}

echo "== home timeline"
start_api
echo "   warm-up (10 s)"
run_wrk 128 >/dev/null
for c in 64 128 256 mget; do : >"$WORK/rps.$c"; : >"$WORK/p99.$c"; : >"$WORK/ratio.$c"; done
: >"$WORK/redis"
for run in $(seq 1 "$RUNS"); do
    rb=$(redis-benchmark -p "$TUSK_REDIS_PORT" --dbnum $RDB -n 200000 -P 1 -c 50 -q \
        ZREVRANGEBYSCORE "$BIGFEED" +inf -inf LIMIT 0 20 | tr '\r' '\n' |
        awk '/requests per second/ { for (i = 1; i <= NF; i++) if ($(i+1) == "requests") v = $i } END { print v }')
    echo "$rb" >>"$WORK/redis"
    for c in 64 128 256; do
        read -r rps p99 bad <<<"$(run_wrk $c)"
        echo "   run $run: redis ZREVRANGEBYSCORE $rb/s; wrk -c$c: $rps req/s, p99 $p99 ms, non-2xx $bad"
        echo "$rps" >>"$WORK/rps.$c"
        echo "$p99" >>"$WORK/p99.$c"
        awk -v a="$rps" -v b="$rb" 'BEGIN { printf "%.3f\n", a / b }' >>"$WORK/ratio.$c"
    done
done
API_RSS=$(awk '/VmRSS/ { print $2 }' "/proc/$API/status")
stop_api

echo "== home timeline, every page checked against Redis (render_fresh_ms = 0: one MGET per page)"
start_api "render_fresh_ms = 0"
run_wrk 128 >/dev/null
for run in $(seq 1 "$RUNS"); do
    read -r rps p99 bad <<<"$(run_wrk 128)"
    rb=$(sed -n "${run}p" "$WORK/redis")
    echo "   run $run: wrk -c128: $rps req/s, p99 $p99 ms, non-2xx $bad"
    echo "$rps" >>"$WORK/rps.mget"
    echo "$p99" >>"$WORK/p99.mget"
    awk -v a="$rps" -v b="$rb" 'BEGIN { printf "%.3f\n", a / b }' >>"$WORK/ratio.mget"
done
stop_api

echo "== streaming ($STREAMS SSE streams, fresh api each run)"
: >"$WORK/bps"; : >"$WORK/lp99"; : >"$WORK/lp50"
for run in $(seq 1 "$RUNS"); do
    start_api
    sleep 1
    "$SSE" --port "$PORT" --redis-port "$TUSK_REDIS_PORT" --tokens "$WORK/tokens.txt" \
        --pid "$API" --n "$STREAMS" --rate 2000 --seconds 5 >"$WORK/sse.txt"
    stop_api
    get() { awk -v k="$1" '$1 == k { print $2 }' "$WORK/sse.txt"; }
    echo "   run $run: $(get streams) streams ($(get failed) failed, opened in $(get open_seconds) s)," \
        "$(get bytes_per_stream) B/stream, delivered $(get delivered)/$(get published)," \
        "p50 $(get latency_p50_ms) ms, p99 $(get latency_p99_ms) ms, max $(get latency_max_ms) ms"
    get bytes_per_stream >>"$WORK/bps"
    get latency_p99_ms >>"$WORK/lp99"
    get latency_p50_ms >>"$WORK/lp50"
done

echo
echo "== medians of $RUNS runs"
echo "redis-benchmark ZREVRANGEBYSCORE LIMIT 0 20 (-P 1 -c 50): $(median <"$WORK/redis") req/s"
for c in 64 128 256; do
    echo "GET /api/v1/timelines/home?limit=20, wrk -t2 -c$c: $(median <"$WORK/rps.$c") req/s," \
        "p99 $(median <"$WORK/p99.$c") ms, ratio to Redis $(median <"$WORK/ratio.$c")"
done
echo "GET /api/v1/timelines/home?limit=20 with render_fresh_ms = 0, wrk -t2 -c128:" \
    "$(median <"$WORK/rps.mget") req/s, p99 $(median <"$WORK/p99.mget") ms," \
    "ratio to Redis $(median <"$WORK/ratio.mget")"
echo "api RSS after the timeline runs: $API_RSS kB"
echo "SSE: $STREAMS streams, $(median <"$WORK/bps") B RSS per idle stream," \
    "publish-to-delivery p50 $(median <"$WORK/lp50") ms, p99 $(median <"$WORK/lp99") ms"
