#!/usr/bin/env bash
# Fan-out benchmark: seeds 100k accounts (big1 with 100k active followers, big2 with 10k),
# gives every follower of the two a feed (active users have one), starts "tusk fanout",
# and runs bench_fanout, which reports deliveries/s next to redis-benchmark's pipelined ZADD
# rate measured in the same run, the 10k-follower post latency, and the time to regenerate
# a feed that follows 1,000 accounts (medians of RUNS runs).
#
#   bench/fanout/run.sh BUILD_DIR SVC_DIR [RUNS]
#
# SVC_DIR holds services started with scripts/services (its env file is read). Uses the
# database "bench_fanout" and Redis db 14 (flushed).
set -euo pipefail
BUILD=$(cd "${1:?usage: run.sh BUILD_DIR SVC_DIR [RUNS]}" && pwd)
SVC=${2:?usage: run.sh BUILD_DIR SVC_DIR [RUNS]}
RUNS=${3:-5}
# shellcheck disable=SC1091
. "$SVC/env"
TUSK=$BUILD/tusk
BENCH=$BUILD/fanout/bench_fanout
[ -x "$TUSK" ] && [ -x "$BENCH" ] || { echo "build tusk and bench_fanout first" >&2; exit 1; }
export PGPASSWORD=$TUSK_PG_PASSWORD
PSQL="psql -X -q -h 127.0.0.1 -p $TUSK_PG_PRIMARY_PORT -U $TUSK_PG_USER"
DB=bench_fanout
DSN="host=127.0.0.1 port=$TUSK_PG_PRIMARY_PORT user=$TUSK_PG_USER password=$TUSK_PG_PASSWORD dbname=$DB"
RDB=14
RCLI="redis-cli -p $TUSK_REDIS_PORT -n $RDB"

echo "== seeding (100k accounts, big1 100k followers, big2 10k)"
$PSQL -d "$TUSK_PG_DB" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
"$TUSK" migrate -q "$DSN"
"$TUSK" seed "$DSN" --accounts 100100 --remote-ratio 0 --active-ratio 1 \
    --big-accounts 100000,10000 -q
$PSQL -d $DB -c "VACUUM ANALYZE"

echo "== giving the followers of big1 and big2 a feed"
$RCLI FLUSHDB >/dev/null
$PSQL -d $DB -At -F ' ' -c "
    SELECT f.account_id, (SELECT max(s.id) FROM statuses s WHERE s.account_id = f.target_account_id)
    FROM follows f JOIN accounts a ON a.id = f.target_account_id
    WHERE a.username IN ('big1', 'big2')" |
    awk '{ printf "*4\r\n$4\r\nZADD\r\n$%d\r\nfeed:home:%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n",
           length("feed:home:" $1), $1, length($2), $2, length($2), $2 }' |
    $RCLI --pipe >/dev/null

ADMIN=$((TUSK_FREE_PORT_BASE + 90))
CONF=$(mktemp /tmp/tusk-bench-fanout-XXXXXX.ini)
LOG=$CONF.log
cat > "$CONF" <<INI
[fanout]
database = $DSN
redis_url = redis://127.0.0.1:$TUSK_REDIS_PORT/$RDB
queues = default:2,pull:1
batch_size = 1000
admin_listen = 127.0.0.1:$ADMIN
outbox_poll_ms = 50
log_level = warning
INI
"$TUSK" fanout -c "$CONF" >"$LOG" 2>&1 &
FANOUT=$!
trap 'kill $FANOUT 2>/dev/null; wait $FANOUT 2>/dev/null; rm -f "$CONF"' EXIT
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$ADMIN") 2>/dev/null && break
    sleep 0.1
done

echo "== measuring ($RUNS runs)"
"$BENCH" --dsn "$DSN" --redis-port "$TUSK_REDIS_PORT" --redis-db $RDB --admin-port $ADMIN --runs "$RUNS"
