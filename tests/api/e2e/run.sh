#!/usr/bin/env bash
# End-to-end test of tusk api with masto.js (ctest: api_e2e_masto, label integration).
#
#   tests/api/e2e/run.sh BUILD_DIR
#
# Needs the services of scripts/services (their env exported, as scripts/test does), node and
# npm. Installs masto.js once per build directory with "npm ci" from the committed
# package-lock.json (into BUILD_DIR/tests/api/e2e, never into the source tree), seeds a fresh
# database with "tusk seed --tokens", starts a private redis-server, "tusk api" and "tusk
# fanout", and runs e2e.mjs. Exit 77 (skipped) without services, node or npm, or when npm
# cannot reach the registry.
set -uo pipefail
SRC=$(cd "$(dirname "$0")" && pwd)
BUILD=$(cd "${1:?usage: run.sh BUILD_DIR}" && pwd)
TUSK=${TUSK_BIN:-$BUILD/tusk}

skip() {
    echo "SKIPPED: $*"
    exit 77
}
[ -n "${TUSK_PG_PRIMARY_PORT:-}" ] || skip "no services (TUSK_PG_PRIMARY_PORT unset)"
command -v node >/dev/null 2>&1 || skip "node is not installed"
command -v npm >/dev/null 2>&1 || skip "npm is not installed"
command -v redis-server >/dev/null 2>&1 || skip "redis-server is not installed"
[ -x "$TUSK" ] || { echo "no tusk binary at $TUSK" >&2; exit 1; }

# ---- masto.js, once per build directory (again when the lock file changes)
WORK=$BUILD/tests/api/e2e
mkdir -p "$WORK"
cp "$SRC/package.json" "$SRC/package-lock.json" "$SRC/e2e.mjs" "$WORK/"
STAMP=$WORK/node_modules/.tusk-lock
if ! cmp -s "$SRC/package-lock.json" "$STAMP" 2>/dev/null; then
    echo "installing masto.js (npm ci)"
    if ! (cd "$WORK" && timeout 300 npm ci --no-audit --no-fund --loglevel=error); then
        skip "npm ci failed (is the npm registry reachable?)"
    fi
    cp "$SRC/package-lock.json" "$STAMP"
fi

# ---- a free port: spread by pid; no socket of any state on it (a TIME-WAIT one blocks a
# listener that does not set SO_REUSEADDR)
BASE=${TUSK_FREE_PORT_BASE:-40000}
NEXT=$((BASE + 4000 + ($$ % 400) * 8))
PORT=0
port_used() {
    if command -v ss >/dev/null 2>&1; then
        [ -n "$(ss -Htan "( sport = :$1 )" 2>/dev/null)" ]
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
    fi
}
free_port() { # sets PORT (no subshell: NEXT must advance)
    while port_used $NEXT; do NEXT=$((NEXT + 1)); done
    PORT=$NEXT
    NEXT=$((NEXT + 1))
}

DB=api_e2e_$$
DSN="host=127.0.0.1 port=$TUSK_PG_PRIMARY_PORT user=${TUSK_PG_USER:-tusk} password=${TUSK_PG_PASSWORD:-tusk} dbname=$DB"
export PGPASSWORD=${TUSK_PG_PASSWORD:-tusk}
PSQL="psql -X -q -h 127.0.0.1 -p $TUSK_PG_PRIMARY_PORT -U ${TUSK_PG_USER:-tusk} -d ${TUSK_PG_DB:-tusk}"
TMP=$(mktemp -d /tmp/tusk-e2e-XXXXXX)
PIDS=()

cleanup() {
    local rc=$?
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
        for f in "$TMP"/*.log; do
            [ -s "$f" ] && { echo "---- $f"; tail -40 "$f"; }
        done
    fi
    $PSQL -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT

wait_port() {
    for _ in $(seq 1 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listens on port $1 ($2)" >&2
    return 1
}

# ---- database: schema and a few seeded accounts with tokens
$PSQL -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null || exit 1
"$TUSK" migrate -q "$DSN" || exit 1
"$TUSK" seed "$DSN" --accounts 20 --follows 60 --statuses 60 --active-ratio 1 --remote-ratio 0 \
    --tokens -q >"$TMP/seed.txt" || exit 1
TOKENS=$(sed -n '/^tokens/,$p' "$TMP/seed.txt" | tail -n +2)
TOKEN_AUTHOR=$(echo "$TOKENS" | sed -n 3p | cut -d' ' -f1)
TOKEN_READER=$(echo "$TOKENS" | sed -n 4p | cut -d' ' -f1)
[ -n "$TOKEN_AUTHOR" ] && [ -n "$TOKEN_READER" ] || { echo "no tokens from tusk seed" >&2; exit 1; }

# ---- private redis, tusk api, tusk fanout
free_port
REDIS_PORT=$PORT
free_port
API_PORT=$PORT
free_port
ADMIN_PORT=$PORT
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP" \
    --protected-mode no >"$TMP/redis.log" 2>&1 &
PIDS+=($!)
wait_port "$REDIS_PORT" redis || exit 1
cat >"$TMP/tusk.ini" <<INI
[api]
listen = 127.0.0.1:$API_PORT
api_workers = 2
database = $DSN
redis_pubsub = redis://127.0.0.1:$REDIS_PORT
public_url = http://127.0.0.1:$API_PORT
rate_limit_per_5min = 0
log_level = ${E2E_API_LOG:-info}

[fanout]
database = $DSN
redis_url = redis://127.0.0.1:$REDIS_PORT
public_url = http://127.0.0.1:$API_PORT
queues = default:2,pull:1
admin_listen = 127.0.0.1:$ADMIN_PORT
outbox_poll_ms = 50
block_ms = 200
log_level = ${E2E_API_LOG:-info}
INI
"$TUSK" api -c "$TMP/tusk.ini" >"$TMP/api.log" 2>&1 &
PIDS+=($!)
"$TUSK" fanout -c "$TMP/tusk.ini" >"$TMP/fanout.log" 2>&1 &
PIDS+=($!)
wait_port "$API_PORT" "tusk api" || exit 1
wait_port "$ADMIN_PORT" "tusk fanout" || exit 1

# ---- the client
(cd "$WORK" && API_URL="http://127.0.0.1:$API_PORT" TOKEN_AUTHOR=$TOKEN_AUTHOR \
    TOKEN_READER=$TOKEN_READER timeout 60 node e2e.mjs)
rc=$?
[ $rc -eq 0 ] || { echo "e2e.mjs failed ($rc)" >&2; exit 1; }

# the servers must still be up and stop cleanly (sanitizer builds report leaks at exit)
for p in "${PIDS[@]:1}"; do
    kill "$p" || { echo "a server died during the test" >&2; exit 1; }
done
for p in "${PIDS[@]:1}"; do
    wait "$p" || { echo "a server exited with status $? on SIGTERM" >&2; exit 1; }
done
PIDS=("${PIDS[0]}")
exit 0
