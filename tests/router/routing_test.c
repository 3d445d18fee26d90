/*
 * Integration test of replica routing in tusk proxy (proxy/route.c) against the real primary
 * and two streaming replicas, in transaction mode: where each statement ran is read from the
 * server side (inet_server_port() in the statement itself), never from the proxy's counters.
 * Covers reads / writes, transactions, BEGIN READ ONLY, session read-only default, overrides,
 * SET tusk.*, pins, the extended protocol, and the tusk.commit_lsn ParameterStatus.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "router/router.h"
#include "tests/router/routed_proxy.h"
#include "tests/support/support.h"

static routed_proxy rp;
static int pport, r1port, r2port;

static PGconn *connect_proxy(void)
{
    return routed_connect(rp.proc.port);
}

/* the server port that ran sql (its first column must be inet_server_port()) */
static int port_of(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    int p = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return p;
}

static bool is_replica(int port)
{
    return port == r1port || port == r2port;
}

/* the next reads reach a replica within 5 s. The session's own writes raise its floor, and on a
 * loaded machine the replicas may take longer than replica_wait_ms to replay them, sending a
 * read or two to the primary: that is correct, and not a pin. A pinned session never gets
 * there. */
static bool reaches_replica(PGconn *c)
{
    double deadline = svc_now_ms() + 5000;
    while (!is_replica(port_of(c, "SELECT inet_server_port()"))) {
        if (svc_now_ms() > deadline)
            return false;
        usleep(20 * 1000);
    }
    return true;
}

static int setup(void **state)
{
    (void)state;
    /* replica_wait_ms: the reads right after a write wait for a replica to replay it even
     * on a loaded machine (at 50 ms they fell to the primary in a full ctest run) */
    if (!routed_proxy_start(&rp, "max_replica_lag_ms = 2000\nreplica_wait_ms = 1000\n"
                                 "admin_users = tusk\n"))
        return -1;
    pport = rp.pport;
    r1port = rp.r1port;
    r2port = rp.r2port;
    PGconn *c = connect_proxy();
    routed_exec(c, "CREATE TABLE IF NOT EXISTS routing_t (id int primary key, v int)");
    routed_exec(c, "DELETE FROM routing_t");
    PQfinish(c);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return routed_proxy_stop(&rp);
}

/* autocommit reads spread over both replicas; writes run on the primary */
static void test_reads_and_writes(void **state)
{
    (void)state;
    PGconn *c = connect_proxy();
    int seen1 = 0, seen2 = 0;
    for (int i = 0; i < 40; i++) {
        int p = port_of(c, "SELECT inet_server_port()");
        assert_true(is_replica(p));
        seen1 += p == r1port;
        seen2 += p == r2port;
    }
    assert_true(seen1 > 0 && seen2 > 0);
    assert_int_equal(port_of(c, "INSERT INTO routing_t VALUES (1, 1) RETURNING inet_server_port()"),
                     pport);
    /* a locking read and nextval() are not replica-safe */
    assert_int_equal(port_of(c, "SELECT inet_server_port() FROM routing_t FOR UPDATE"), pport);
    routed_exec(c, "CREATE SEQUENCE IF NOT EXISTS routing_seq");
    assert_int_equal(port_of(c, "SELECT inet_server_port(), nextval('routing_seq')"), pport);
    PQfinish(c);
}

/* rows larger than the proxy's buffers stream through from a replica in order after their
 * RowDescription (which the proxy holds while a 25006 may still come), simple and extended */
static void test_large_rows(void **state)
{
    (void)state;
    PGconn *c = connect_proxy();
    static const int sizes[] = {1000, 70000, 300000, 2100000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        for (int extended = 0; extended < 2; extended++) {
            char sql[128];
            snprintf(sql, sizeof(sql), "SELECT inet_server_port(), repeat('y', %d) || 'z'",
                     sizes[i]);
            PGresult *r =
                extended ? PQexecParams(c, sql, 0, NULL, NULL, NULL, NULL, 0) : PQexec(c, sql);
            if (PQresultStatus(r) != PGRES_TUPLES_OK)
                fail_msg("%d bytes (%s): %s", sizes[i], extended ? "extended" : "simple",
                         PQerrorMessage(c));
            assert_true(is_replica(atoi(PQgetvalue(r, 0, 0))));
            const char *v = PQgetvalue(r, 0, 1);
            assert_int_equal(PQgetlength(r, 0, 1), sizes[i] + 1);
            assert_int_equal(v[0], 'y');
            assert_int_equal(v[sizes[i]], 'z');
            PQclear(r);
        }
    }
    PQfinish(c);
}

/* read-your-writes: the commit LSN comes back as ParameterStatus, the next read sees the row */
static void test_commit_lsn(void **state)
{
    (void)state;
    PGconn *c = connect_proxy();
    for (int i = 0; i < 50; i++) {
        char sql[128];
        snprintf(sql, sizeof(sql), "INSERT INTO routing_t VALUES (%d, %d)", 100 + i, i);
        routed_exec(c, sql);
        const char *lsn = PQparameterStatus(c, "tusk.commit_lsn");
        uint64_t v;
        assert_non_null(lsn);
        assert_true(router_parse_lsn(lsn, &v) && v > 0);
        snprintf(sql, sizeof(sql), "SELECT v, pg_is_in_recovery() FROM routing_t WHERE id = %d",
                 100 + i);
        PGresult *r = PQexec(c, sql);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        assert_int_equal(PQntuples(r), 1);
        assert_int_equal(atoi(PQgetvalue(r, 0, 0)), i);
        PQclear(r);
    }
    /* SHOW tusk.commit_lsn answers the floor */
    PGresult *r = PQexec(c, "SHOW tusk.commit_lsn");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), PQparameterStatus(c, "tusk.commit_lsn"));
    PQclear(r);
    PQfinish(c);
}

static void test_transactions(void **state)
{
    (void)state;
    PGconn *c = connect_proxy();
    for (int i = 0; i < 5; i++) {
        routed_exec(c, "BEGIN");
        assert_int_equal(port_of(c, "SELECT inet_server_port()"), pport);
        assert_int_equal(port_of(c, "SELECT inet_server_port()"), pport);
        routed_exec(c, "COMMIT");
        routed_exec(c, "BEGIN READ ONLY");
        int p = port_of(c, "SELECT inet_server_port()");
        assert_true(is_replica(p));
        assert_int_equal(port_of(c, "SELECT inet_server_port()"), p); /* same node throughout */
        routed_exec(c, "COMMIT");
        routed_exec(c, "START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
        assert_true(is_replica(port_of(c, "SELECT inet_server_port()")));
        routed_exec(c, "ROLLBACK");
    }
    /* the session's read-only default makes a plain BEGIN read-only */
    routed_exec(c, "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY");
    routed_exec(c, "BEGIN");
    assert_true(is_replica(port_of(c, "SELECT inet_server_port()")));
    routed_exec(c, "COMMIT");
    routed_exec(c, "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE");
    routed_exec(c, "BEGIN");
    assert_int_equal(port_of(c, "SELECT inet_server_port()"), pport);
    routed_exec(c, "COMMIT");
    PQfinish(c);
}

static void test_overrides(void **state)
{
    (void)state;
    PGconn *c = connect_proxy();
    for (int i = 0; i < 5; i++) {
        assert_int_equal(port_of(c, "/* tusk:primary */ SELECT inet_server_port()"), pport);
        assert_true(is_replica(port_of(c, "SELECT inet_server_port()")));
    }
    routed_exec(c, "SET tusk.route = primary");
    for (int i = 0; i < 5; i++)
        assert_int_equal(port_of(c, "SELECT inet_server_port()"), pport);
    routed_exec(c, "SET tusk.route = auto");
    assert_true(is_replica(port_of(c, "SELECT inet_server_port()")));
    /* intercepted: PostgreSQL never sees tusk.route */
    PGresult *r = PQexec(c, "SELECT current_setting('tusk.route', true)");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_true(PQgetisnull(r, 0, 0) || PQgetvalue(r, 0, 0)[0] == '\0');
    PQclear(r);
    r = PQexec(c, "SET tusk.route = sideways");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    PQclear(r);
    assert_true(is_replica(port_of(c, "SELECT inet_server_port()"))); /* still usable */
    /* a floor no replica has: waits replica_wait_ms, then the primary */
    routed_exec(c, "SET tusk.min_lsn = 'FFFF/0'");
    double t0 = svc_now_ms();
    assert_int_equal(port_of(c, "SELECT inet_server_port()"), pport);
    assert_true(svc_now_ms() - t0 >= 45);
    assert_int_equal(port_of(c, "/* tusk:replica */ SELECT inet_server_port()") != pport, 1);
    PQfinish(c);
}

/* a temp table pins the session to the primary */
static void test_pins(void **state)
{
    (void)state;
    PGconn *c = connect_proxy();
    assert_true(is_replica(port_of(c, "SELECT inet_server_port()")));
    routed_exec(c, "CREATE TEMP TABLE routing_tmp (x int)");
    routed_exec(c, "INSERT INTO routing_tmp VALUES (7)");
    for (int i = 0; i < 10; i++)
        assert_int_equal(port_of(c, "SELECT inet_server_port(), x FROM routing_tmp"), pport);
    routed_exec(c, "LISTEN routing_chan");
    assert_int_equal(port_of(c, "SELECT inet_server_port()"), pport);
    /* undoing the LISTEN leaves the temp table's pin; DISCARD TEMP lifts the last one */
    routed_exec(c, "UNLISTEN *");
    assert_int_equal(port_of(c, "SELECT inet_server_port(), x FROM routing_tmp"), pport);
    routed_exec(c, "DISCARD TEMP");
    assert_true(reaches_replica(c));
    PQfinish(c);
    c = connect_proxy(); /* a new session is free again */
    assert_true(is_replica(port_of(c, "SELECT inet_server_port()")));
    PQfinish(c);
}

/* extended protocol: unnamed and named statements keep their verdict */
static void test_extended(void **state)
{
    (void)state;
    PGconn *c = connect_proxy();
    for (int i = 0; i < 5; i++) {
        PGresult *r = PQexecParams(c, "SELECT inet_server_port(), $1::int", 1, NULL,
                                   (const char *const[]){"5"}, NULL, NULL, 0);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        assert_true(is_replica(atoi(PQgetvalue(r, 0, 0))));
        PQclear(r);
    }
    PGresult *r =
        PQprepare(c, "rd", "SELECT inet_server_port() FROM routing_t WHERE id = $1", 1, NULL);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    r = PQprepare(c, "wr", "INSERT INTO routing_t VALUES ($1::int, 0) RETURNING inet_server_port()",
                  1, NULL);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof(id), "%d", 1000 + i);
        const char *v[] = {id};
        r = PQexecPrepared(c, "wr", 1, v, NULL, NULL, 0);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        assert_int_equal(atoi(PQgetvalue(r, 0, 0)), pport);
        PQclear(r);
        assert_non_null(PQparameterStatus(c, "tusk.commit_lsn"));
        r = PQexecPrepared(c, "rd", 1, v, NULL, NULL, 0);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        assert_int_equal(PQntuples(r), 1); /* read-your-writes */
        assert_true(is_replica(atoi(PQgetvalue(r, 0, 0))));
        PQclear(r);
    }
    PQfinish(c);
}

/* a function the classifier cannot see writing: the replica's 25006 is retried on the primary
 * without the client seeing it, and the statement goes to the primary from then on */
static void test_25006_retry(void **state)
{
    (void)state;
    PGconn *c = connect_proxy();
    routed_exec(c, "CREATE OR REPLACE FUNCTION routing_write() RETURNS int LANGUAGE sql VOLATILE "
                   "AS 'INSERT INTO routing_t VALUES (-1 - (SELECT count(*) FROM routing_t), 0) "
                   "RETURNING inet_server_port()'");
    usleep(200 * 1000); /* the function reaches the replicas */
    for (int i = 0; i < 3; i++) {
        char sql[128];
        snprintf(sql, sizeof(sql), "SELECT routing_write(), %d AS run", i);
        PGresult *r = PQexec(c, sql);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        assert_int_equal(PQnfields(r), 2);
        assert_int_equal(atoi(PQgetvalue(r, 0, 0)), pport);
        PQclear(r);
        r = PQexec(c, sql); /* remembered as a write */
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        assert_int_equal(atoi(PQgetvalue(r, 0, 0)), pport);
        PQclear(r);
    }
    assert_true(is_replica(port_of(c, "SELECT inet_server_port()")));
    /* the same through the extended protocol: an unnamed statement, then a named one
     * (Bind, Describe, Execute, Sync re-run on the primary, which the proxy prepares) */
    for (int named = 0; named < 2; named++) {
        const char *sql = named ? "SELECT routing_write(), $1::int AS prepared_run"
                                : "SELECT routing_write(), $1::int AS unnamed_run";
        if (named) {
            PGresult *r = PQprepare(c, "w25006", sql, 1, NULL);
            assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
            PQclear(r);
        }
        for (int i = 0; i < 3; i++) {
            char run[16];
            snprintf(run, sizeof(run), "%d", i);
            const char *v[] = {run};
            PGresult *r = named ? PQexecPrepared(c, "w25006", 1, v, NULL, NULL, 0)
                                : PQexecParams(c, sql, 1, NULL, v, NULL, NULL, 0);
            if (PQresultStatus(r) != PGRES_TUPLES_OK)
                fail_msg("%s run %d: %s", named ? "named" : "unnamed", i, PQerrorMessage(c));
            assert_int_equal(PQnfields(r), 2);
            assert_int_equal(atoi(PQgetvalue(r, 0, 0)), pport);
            assert_int_equal(atoi(PQgetvalue(r, 0, 1)), i);
            PQclear(r);
        }
    }
    PQfinish(c);
}

/* proxy/route.c's statement hash (64-bit FNV-1a, low bit set) and write set size: the test
 * below needs nine statements with one home slot. If route.c changes them, the test says so
 * (its check that the ninth was not remembered fails), and these must follow. */
#define WRITE_SET_SLOTS 4096
static uint64_t route_text_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h | 1;
}

static void mark_sql(char *sql, size_t n, int key)
{
    snprintf(sql, n, "SELECT routing_mark(%d)", key);
}

/* A statement a replica refused runs again on the primary, and that re-run is a write whatever
 * the write set remembers: the client gets its commit LSN and its next read sees the row. The
 * write set is bounded (a full neighbourhood remembers nothing more), so the ninth of nine
 * statements sharing a home slot is the case where the proxy cannot know it from the set. */
static void test_25006_write_set_full(void **state)
{
    (void)state;
    PGconn *c = connect_proxy();
    routed_exec(c, "CREATE TABLE IF NOT EXISTS routing_marks (id int)");
    routed_exec(c, "DELETE FROM routing_marks"); /* a row from an earlier run would hide a miss */
    routed_exec(c, "CREATE OR REPLACE FUNCTION routing_mark(int) RETURNS int LANGUAGE sql "
                   "VOLATILE AS 'INSERT INTO routing_marks VALUES ($1) RETURNING "
                   "inet_server_port()'");
    PQfinish(c);
    assert_true(routed_caught_up(&rp)); /* the function is on the replicas: they refuse it */
    enum { N = 9 };
    int keys[N], n = 0;
    uint64_t home = 0;
    char sql[128];
    for (int key = 1000000; n < N; key++) {
        mark_sql(sql, sizeof(sql), key);
        uint64_t slot = route_text_hash(sql) % WRITE_SET_SLOTS;
        if (n == 0)
            home = slot;
        if (slot == home)
            keys[n++] = key;
    }
    for (int i = 0; i < N; i++) {
        c = connect_proxy(); /* no floor: the statement goes to a replica first */
        long long retries = routed_stat(&rp, "retries_25006");
        mark_sql(sql, sizeof(sql), keys[i]);
        assert_int_equal(port_of(c, sql), pport);
        assert_int_equal(routed_stat(&rp, "retries_25006"), retries + 1);
        const char *lsn = PQparameterStatus(c, "tusk.commit_lsn");
        uint64_t floor = 0;
        if (!lsn || !router_parse_lsn(lsn, &floor) || floor == 0)
            fail_msg("statement %d of %d re-run on the primary: tusk.commit_lsn is %s", i + 1, N,
                     lsn ? lsn : "missing");
        char check[160];
        snprintf(check, sizeof(check),
                 "SELECT inet_server_port(), EXISTS (SELECT 1 FROM routing_marks WHERE id = %d)",
                 keys[i]);
        PGresult *r = PQexec(c, check);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        if (strcmp(PQgetvalue(r, 0, 1), "t") != 0)
            fail_msg("statement %d: the read on port %s missed the row it wrote", i + 1,
                     PQgetvalue(r, 0, 0));
        PQclear(r);
        PQfinish(c);
    }
    /* the first is remembered (straight to the primary); the ninth found no room (refused
     * again) */
    long long retries = routed_stat(&rp, "retries_25006");
    c = connect_proxy();
    mark_sql(sql, sizeof(sql), keys[0]);
    assert_int_equal(port_of(c, sql), pport);
    assert_int_equal(routed_stat(&rp, "retries_25006"), retries);
    PQfinish(c);
    c = connect_proxy();
    mark_sql(sql, sizeof(sql), keys[N - 1]);
    assert_int_equal(port_of(c, sql), pport);
    if (routed_stat(&rp, "retries_25006") != retries + 1)
        fail_msg("the ninth statement of one home slot was remembered: does route_text_hash "
                 "still match proxy/route.c?");
    PQfinish(c);
}

static void expect_setting(PGconn *c, const char *name, const char *want, int n)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT current_setting('%s'), inet_server_port()", name);
    for (int i = 0; i < n; i++) {
        PGresult *r = PQexec(c, sql);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        assert_string_equal(PQgetvalue(r, 0, 0), want);
        PQclear(r);
    }
}

/* SETs the proxy does not track as ParameterStatus follow the client from node to node and do
 * not leak to other clients of the same servers */
static void test_session_sets(void **state)
{
    (void)state;
    PGconn *a = connect_proxy();
    PGconn *b = connect_proxy();
    expect_setting(b, "work_mem", "4MB", 1);
    routed_exec(a, "SET work_mem = '7MB'");
    routed_exec(a, "SET statement_timeout TO 12345");
    for (int i = 0; i < 10; i++) {
        expect_setting(a, "work_mem", "7MB", 1);
        expect_setting(b, "work_mem", "4MB", 1);
        expect_setting(a, "statement_timeout", "12345ms", 1);
        expect_setting(b, "statement_timeout", "0", 1);
    }
    routed_exec(a, "BEGIN");
    expect_setting(a, "work_mem", "7MB", 1); /* on the primary too */
    routed_exec(a, "COMMIT");
    routed_exec(a, "RESET work_mem");
    expect_setting(a, "work_mem", "4MB", 10);
    expect_setting(a, "statement_timeout", "12345ms", 4);
    routed_exec(a, "RESET ALL");
    expect_setting(a, "statement_timeout", "0", 10);
    PQfinish(a);
    PQfinish(b);
}

int main(void)
{
    svc_env("TUSK_PG_REPLICA2_PORT");
    svc_env("TUSK_BIN");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_and_writes),
        cmocka_unit_test(test_large_rows),
        cmocka_unit_test(test_commit_lsn),
        cmocka_unit_test(test_transactions),
        cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_pins),
        cmocka_unit_test(test_extended),
        cmocka_unit_test(test_25006_retry),
        cmocka_unit_test(test_25006_write_set_full),
        cmocka_unit_test(test_session_sets),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
