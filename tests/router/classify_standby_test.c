/*
 * The classifier against a real hot standby: every probe and corpus query (generated and
 * real-world) that the classifier calls replica-safe is run on replica1; none may fail for a reason
 * that only a standby gives (read-only transaction 25006, "during recovery", "hot standby",
 * "recovery is in progress"). Other errors (no such table, $1 without a value) are fine: the
 * corpus refers to tables that need not exist. Skipped without the services' environment.
 */
#include "router/router.h"
#include "tests/router/corpus.h"
#include "tests/support/support.h"

#include <libpq-fe.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

/* Statements that get far enough to meet the standby's refusals (or not). */
static const char *const probes[] = {
    "SELECT nextval('s')",
    "SELECT setval('s', 5)",
    "VALUES (nextval('s'))",
    "SELECT * FROM nextval('s')",
    "SELECT id, nextval('s') FROM t1",
    "SELECT pg_current_wal_lsn()",
    "SELECT pg_current_wal_insert_lsn()",
    "SELECT pg_switch_wal()",
    "SELECT txid_current()",
    "SELECT pg_current_xact_id()",
    "SELECT pg_notify('c', 'x')",
    "SELECT lo_creat(-1)",
    "SELECT pg_create_restore_point('x')",
    "SELECT pg_logical_emit_message(true, 'x', 'y')",
    "SELECT * FROM t1 FOR UPDATE",
    "SELECT * FROM t1 FOR SHARE",
    "SELECT * FROM t1 FOR NO KEY UPDATE",
    "SELECT * FROM t1 FOR KEY SHARE",
    "SELECT * INTO t9 FROM t1",
    "WITH x AS (DELETE FROM t1 RETURNING *) SELECT * FROM x",
    "WITH x AS (SELECT 1) UPDATE t1 SET a = 2",
    "CREATE TEMP TABLE tt (a int)",
    "LISTEN x",
    "NOTIFY x",
    "EXPLAIN ANALYZE SELECT nextval('s')",
    "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY; SELECT 1",
    "BEGIN READ WRITE",
    "BEGIN; SET TRANSACTION READ WRITE",
    "BEGIN READ ONLY; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; SELECT 1",
    "SET transaction_read_only = off",
    "BEGIN READ ONLY; SELECT * FROM t1; COMMIT",
    "SET default_transaction_read_only = off; BEGIN; SELECT 1",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE; SELECT 1",
    "EXPLAIN SELECT * FROM t1",
    "TABLE t1",
    "SELECT id FROM t1 WHERE update IS NULL",
};

/* Whether an error is one that only a hot standby raises. */
static bool standby_error(const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    if (state && strcmp(state, "25006") == 0)
        return true;
    return msg && (strstr(msg, "recovery") || strstr(msg, "hot standby") ||
                   strstr(msg, "read-only transaction"));
}

/* Notices (no transaction in progress, SET LOCAL outside a transaction) are expected. */
static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* Connects to a node of the test services; fails the test when it cannot. */
static PGconn *connect_node(const char *port_var, const char *db)
{
    char conninfo[512];
    snprintf(conninfo, sizeof(conninfo),
             "host=%s port=%d dbname=%s user=%s password=%s connect_timeout=5 "
             "options='-c statement_timeout=2000'",
             svc_env("TUSK_PG_HOST"), svc_env_int(port_var), db, svc_env("TUSK_PG_USER"),
             svc_env("TUSK_PG_PASSWORD"));
    PGconn *conn = PQconnectdb(conninfo);
    if (PQstatus(conn) != CONNECTION_OK)
        fail_msg("cannot connect to %s: %s", port_var, PQerrorMessage(conn));
    PQsetNoticeProcessor(conn, quiet, NULL);
    return conn;
}

static void exec_ok(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(res));
    PQclear(res);
}

/*
 * A database of its own (so nothing of the other tests is touched) with the sequence and
 * tables the corpus uses most, one row each: only then do the queries get far enough for
 * nextval() and friends to run and meet the standby's refusal.
 */
static void prepare_database(void)
{
    PGconn *p = connect_node("TUSK_PG_PRIMARY_PORT", svc_env("TUSK_PG_DB"));
    PGresult *res = PQexec(p, "SELECT 1 FROM pg_database WHERE datname = 'tusk_router_test'");
    bool exists = PQntuples(res) == 1;
    PQclear(res);
    if (!exists)
        exec_ok(p, "CREATE DATABASE tusk_router_test");
    PQfinish(p);
    p = connect_node("TUSK_PG_PRIMARY_PORT", "tusk_router_test");
    exec_ok(p, "CREATE SEQUENCE IF NOT EXISTS s");
    static const char *const tables[] = {
        "t1",    "t2",     "accounts", "statuses",  "follows",
        "users", "blocks", "mentions", "temp_data", "pgbench_accounts"};
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        char sql[512];
        snprintf(sql, sizeof(sql),
                 "CREATE TABLE IF NOT EXISTS %s (id int, a int, b int, name text, created_at "
                 "timestamptz, account_id int, visibility int, abalance int, reblog_of_id int); "
                 "INSERT INTO %s (id, a, b, name, created_at, account_id, visibility, abalance, "
                 "reblog_of_id) SELECT 1, 1, 1, 'n', now(), 1, 0, 0, NULL "
                 "WHERE NOT EXISTS (SELECT 1 FROM %s)",
                 tables[i], tables[i], tables[i]);
        exec_ok(p, sql);
    }
    res = PQexec(p, "SELECT pg_current_wal_lsn()::text");
    char lsn[64];
    snprintf(lsn, sizeof(lsn), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    PQfinish(p);
    /* wait until replica1 has replayed it (the database may not even exist there yet) */
    char sql[160];
    snprintf(sql, sizeof(sql), "SELECT pg_last_wal_replay_lsn() >= '%s'::pg_lsn", lsn);
    double deadline = svc_now_ms() + 20000;
    for (;;) {
        char conninfo[512];
        snprintf(conninfo, sizeof(conninfo),
                 "host=%s port=%d dbname=tusk_router_test user=%s password=%s connect_timeout=5",
                 svc_env("TUSK_PG_HOST"), svc_env_int("TUSK_PG_REPLICA1_PORT"),
                 svc_env("TUSK_PG_USER"), svc_env("TUSK_PG_PASSWORD"));
        PGconn *r = PQconnectdb(conninfo);
        bool done = false;
        if (PQstatus(r) == CONNECTION_OK) {
            res = PQexec(r, sql);
            done =
                PQresultStatus(res) == PGRES_TUPLES_OK && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
            PQclear(res);
        }
        PQfinish(r);
        if (done)
            return;
        if (svc_now_ms() > deadline)
            fail_msg("replica1 did not replay %s within 20 s", lsn);
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static void test_safe_queries_run_on_standby(void **state)
{
    (void)state;
    prepare_database();
    PGconn *conn = connect_node("TUSK_PG_REPLICA1_PORT", "tusk_router_test");
    PGresult *res = PQexec(conn, "SELECT pg_is_in_recovery()");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "t");
    PQclear(res);

    router_classifier *cls = router_classifier_new(CORPUS_EXTRA_UNSAFE);
    assert_non_null(cls);
    corpus c = {0};
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
        corpus_add(&c, probes[i]);
    corpus_add_real_world(&c);
    corpus_generate(&c, 0x7374616e64627921ULL, 6000);
    size_t ran = 0, ok = 0, failures = 0;
    size_t nprobes = sizeof(probes) / sizeof(probes[0]), refused = 0;
    for (size_t i = 0; i < c.n; i++) {
        router_class r;
        router_classify(cls, c.items[i], strlen(c.items[i]), &r);
        bool probe = i < nprobes; /* probes run either way, to show the standby refuses */
        if (!probe && (!r.replica_safe || r.tusk_set != ROUTER_TUSK_NONE))
            continue;
        ran++;
        res = PQexec(conn, c.items[i]);
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) {
            ok++;
        } else if (standby_error(res)) {
            refused += probe;
            if (r.replica_safe && failures++ < 10)
                print_error("replica-safe query failed on the standby: %s\n  %s", c.items[i],
                            PQresultErrorMessage(res));
        }
        PQclear(res);
        while ((res = PQgetResult(conn)) != NULL)
            PQclear(res);
        if (PQtransactionStatus(conn) != PQTRANS_IDLE)
            PQclear(PQexec(conn, "ROLLBACK"));
        if (PQstatus(conn) != CONNECTION_OK)
            fail_msg("standby connection lost after: %s", c.items[i]);
    }
    print_message("standby: %zu queries run, %zu succeeded; %zu of %zu probes refused by the "
                  "standby; %zu replica-safe queries failed as only a standby fails\n",
                  ran, ok, refused, nprobes, failures);
    corpus_free(&c);
    router_classifier_free(cls);
    PQfinish(conn);
    assert_true(ran >= 1000);
    assert_true(ok >= 200);
    assert_true(refused >= 20); /* the probes do reach the standby's checks */
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_safe_queries_run_on_standby),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
