#!/usr/bin/env bash
# Seeds the API benchmark's data (used by run.sh and ab.sh):
#
#   bench/api/seed.sh TUSK_BINARY SVC_DIR WORK_DIR [--reuse]
#
# 10k local accounts (BENCH_ACCOUNTS), all active, with tokens, 40 follows and 80 statuses
# each, in the database "bench_api", and every account's home feed (the newest 800 statuses
# of the accounts it follows and its own, as a rebuild would) in Redis db 13 (flushed).
# Writes WORK_DIR/tokens.txt ("token account_id" per line) and WORK_DIR/bigfeed (a full
# feed's key, for redis-benchmark). With --reuse, data already there (the database, its
# tokens and 10k feeds) is kept: only the two files are written.
set -euo pipefail
TUSK=${1:?usage: seed.sh TUSK SVC_DIR WORK_DIR [--reuse]}
SVC=${2:?}
WORK=${3:?}
REUSE=${4:-}
# shellcheck disable=SC1091
. "$SVC/env"
ACCOUNTS=${BENCH_ACCOUNTS:-10000}
export PGPASSWORD=$TUSK_PG_PASSWORD
PSQL="psql -X -q -h 127.0.0.1 -p $TUSK_PG_PRIMARY_PORT -U $TUSK_PG_USER"
DB=bench_api
DSN="host=127.0.0.1 port=$TUSK_PG_PRIMARY_PORT user=$TUSK_PG_USER password=$TUSK_PG_PASSWORD dbname=$DB"
RCLI="redis-cli -p $TUSK_REDIS_PORT -n 13"
mkdir -p "$WORK"

tokens() {
    $PSQL -d $DB -At -F ' ' -c "SELECT t.token, u.account_id FROM oauth_access_tokens t
        JOIN users u ON u.id = t.resource_owner_id WHERE t.revoked_at IS NULL ORDER BY t.id" \
        >"$WORK/tokens.txt"
}
bigfeed() {
    $RCLI EVAL "for _, k in ipairs(redis.call('KEYS', 'feed:home:*')) do if redis.call('ZCARD', k) >= 800 then return k end end return ''" 0 >"$WORK/bigfeed"
}

if [ "$REUSE" = --reuse ] &&
    [ "$($PSQL -d "$TUSK_PG_DB" -At -c "SELECT count(*) FROM pg_database WHERE datname = '$DB'")" = 1 ] &&
    [ "$($RCLI DBSIZE)" -ge "$ACCOUNTS" ]; then
    tokens
    if [ "$(wc -l <"$WORK/tokens.txt")" -ge "$ACCOUNTS" ]; then
        bigfeed
        echo "== reusing the seeded data ($(wc -l <"$WORK/tokens.txt") tokens, $($RCLI DBSIZE) keys in Redis db 13)"
        exit 0
    fi
fi

echo "== seeding ($ACCOUNTS accounts, all active, with tokens)"
$PSQL -d "$TUSK_PG_DB" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
"$TUSK" migrate -q "$DSN"
"$TUSK" seed "$DSN" --accounts "$ACCOUNTS" --follows $((ACCOUNTS * 40)) \
    --statuses $((ACCOUNTS * 80)) --active-ratio 1 --remote-ratio 0 --tokens -q >"$WORK/seed.txt"
$PSQL -d $DB -c "VACUUM ANALYZE"
tokens
echo "   $(wc -l <"$WORK/tokens.txt") tokens"

echo "== full home feeds into Redis db 13 (newest 800 of follows + own, as a rebuild)"
$RCLI FLUSHDB >/dev/null
t0=$(date +%s)
$PSQL -d $DB -At -F ' ' -c "
    SELECT u.account_id, x.id FROM users u CROSS JOIN LATERAL (
        SELECT s.id FROM (SELECT f.target_account_id AS a FROM follows f
                          WHERE f.account_id = u.account_id UNION ALL SELECT u.account_id) src
        CROSS JOIN LATERAL (SELECT id FROM statuses s WHERE s.account_id = src.a
                            AND s.deleted_at IS NULL AND s.visibility IN (0, 1, 2)
                            ORDER BY s.id DESC LIMIT 800) s
        ORDER BY s.id DESC LIMIT 800) x" |
    awk 'function flush() {
             if (n == 0) return
             key = "feed:home:" user
             printf "*%d\r\n$4\r\nZADD\r\n$%d\r\n%s\r\n", 2 + 2 * n, length(key), key
             for (i = 1; i <= n; i++)
                 printf "$%d\r\n%s\r\n$%d\r\n%s\r\n", length(ids[i]), ids[i], length(ids[i]), ids[i]
             n = 0
         }
         $1 != user { flush(); user = $1 }
         { ids[++n] = $2 }
         END { flush() }' |
    $RCLI --pipe >/dev/null
FEEDS=$($RCLI DBSIZE)
FULL=$($RCLI EVAL "local n, full = 0, 0 for _, k in ipairs(redis.call('KEYS', 'feed:home:*')) do n = n + 1 if redis.call('ZCARD', k) >= 800 then full = full + 1 end end return {n, full}" 0 | tr '\n' ' ')
echo "   $FEEDS feeds (feeds, full ones: $FULL) in $(($(date +%s) - t0)) s"
bigfeed
