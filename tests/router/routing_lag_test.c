/*
 * Integration test of lag-aware routing and read-your-writes in tusk proxy against the real
 * primary and two replicas. It pauses replay on replica1 and stops replica2, so it runs alone
 * (SERIAL) and leaves both running again. Where statements ran is read from the server side.
 * The read-your-writes runs use bench/ryw/ryw_check (built by CMake as routing_ryw_check):
 * zero stale reads through the proxy with replica1 paused, and the checker's negative control
 * (reads straight from the paused replica) must report stale reads, proving it can fail.
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

#include "tests/router/routed_proxy.h"
#include "tests/support/support.h"

#ifndef RYW_CHECK_BIN
#error RYW_CHECK_BIN must name the ryw_check binary
#endif

static routed_proxy rp;
static routed_proxy off; /* test_primary_reads_off's own proxy */
static int pport, r1port, r2port;

static PGconn *connect_to(int port, const char *user)
{
    char ci[256];
    snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%d dbname=tusk user=%s password=tusk", port,
             user);
    PGconn *c = PQconnectdb(ci);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("connect %d: %s", port, PQerrorMessage(c));
    return c;
}

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
}

static int port_of(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    int p = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return p;
}

/* how many of n autocommit reads through the proxy ran on port */
static int reads_on(PGconn *c, int port, int n)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        k += port_of(c, "SELECT inet_server_port()") == port;
    return k;
}

static void replay(int port, bool pause)
{
    PGconn *c = connect_to(port, "postgres");
    exec_ok(c, pause ? "SELECT pg_wal_replay_pause()" : "SELECT pg_wal_replay_resume()");
    PQfinish(c);
}

static int run_ryw(const char *args)
{
    int rc = svc_sh("%s -h 127.0.0.1 -d tusk -U tusk -P tusk --table routing_ryw %s", RYW_CHECK_BIN,
                    args);
    return rc;
}

static int setup(void **state)
{
    (void)state;
    if (!routed_proxy_start(&rp,
                            "lag_poll_ms = 50\nmax_replica_lag_ms = 300\nreplica_wait_ms = 50\n"
                            "server_connect_timeout = 2\n"))
        return -1;
    pport = rp.pport;
    r1port = rp.r1port;
    r2port = rp.r2port;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    replay(r1port, false);
    replay(r2port, false);
    return routed_proxy_stop(&rp);
}

/* after each test, passed or failed: both replicas replay again, so that one failure does not
 * fail every test after it */
static int replaying(void **state)
{
    (void)state;
    if (off.proc.pid > 0)
        routed_proxy_stop(&off);
    int ports[2] = {r1port, r2port};
    for (int i = 0; i < 2; i++) {
        char ci[160];
        snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%d dbname=tusk user=postgres password=tusk",
                 ports[i]);
        PGconn *c = PQconnectdb(ci);
        if (PQstatus(c) != CONNECTION_OK && i == 1) { /* a test stopped it and failed */
            PQfinish(c);
            if (svc_node("start", "replica2") != 0)
                return -1;
            c = PQconnectdb(ci);
        }
        PQclear(PQexec(c, "SELECT pg_wal_replay_resume()"));
        PQfinish(c);
    }
    return 0;
}

/* a result of the expected status, or the test fails with the error and the proxy's log */
static void expect_status(PGresult *r, PGconn *c, ExecStatusType want, const routed_proxy *via,
                          const char *what)
{
    if (PQresultStatus(r) == want)
        return;
    svc_dump_log(&via->proc);
    fail_msg("%s: %s, expected %s: %s", what, PQresStatus(PQresultStatus(r)), PQresStatus(want),
             PQerrorMessage(c));
}

/* primary_reads = off: a read after a write waits for a replica to replay it, however long
 * that takes (overflow would give up after replica_wait_ms and read on the primary), and is
 * closed with query_wait_timeout's error when no replica gets there in time */
static void test_primary_reads_off(void **state)
{
    (void)state;
    assert_true(routed_proxy_start(&off, "lag_poll_ms = 50\nreplica_wait_ms = 50\n"
                                         "primary_reads = off\nquery_wait_timeout = 2\n"));
    PGconn *w = connect_to(pport, "tusk");
    exec_ok(w, "CREATE TABLE IF NOT EXISTS routing_off (id int primary key)");
    exec_ok(w, "TRUNCATE routing_off");
    PQfinish(w);
    replay(r1port, true);
    replay(r2port, true);
    PGconn *c = connect_to(off.proc.port, "tusk");
    exec_ok(c, "INSERT INTO routing_off VALUES (1)"); /* the floor: no replica has it */
    double t0 = svc_now_ms();
    assert_int_equal(PQsendQuery(c, "SELECT inet_server_port(), count(*) FROM routing_off"), 1);
    usleep(600 * 1000);
    replay(r1port, false);
    PGresult *r = PQgetResult(c);
    char what[96];
    snprintf(what, sizeof(what), "the read after the write, %.0f ms after it was sent",
             svc_now_ms() - t0);
    expect_status(r, c, PGRES_TUPLES_OK, &off, what);
    assert_int_equal(atoi(PQgetvalue(r, 0, 0)), r1port);
    assert_int_equal(atoi(PQgetvalue(r, 0, 1)), 1);
    assert_true(svc_now_ms() - t0 >= 550);
    PQclear(r);
    while ((r = PQgetResult(c)))
        PQclear(r);

    /* nothing catches up within query_wait_timeout: the client is told why and closed */
    replay(r1port, true);
    exec_ok(c, "INSERT INTO routing_off VALUES (2)");
    t0 = svc_now_ms();
    r = PQexec(c, "SELECT count(*) FROM routing_off");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_non_null(strstr(PQerrorMessage(c), "primary_reads = off"));
    double waited = svc_now_ms() - t0;
    assert_true(waited >= 1900 && waited < 6000);
    PQclear(r);
    PQfinish(c);
    replay(r1port, false);
    replay(r2port, false);
    /* caught up again: reads run on replicas */
    c = connect_to(off.proc.port, "tusk");
    assert_true(reads_on(c, pport, 10) == 0);
    PQfinish(c);
    assert_int_equal(routed_proxy_stop(&off), 0);
}

/* replica1 paused: excluded once over max_replica_lag_ms, back after resume */
static void test_paused_replica(void **state)
{
    (void)state;
    PGconn *c = connect_to(rp.proc.port, "tusk");
    PGconn *w = connect_to(pport, "tusk");
    exec_ok(w, "CREATE TABLE IF NOT EXISTS routing_lag (id serial primary key, t timestamptz)");
    double dl0 = svc_now_ms() + 5000; /* a previous run may have left it behind */
    bool used = false;
    while (!used && svc_now_ms() < dl0)
        used = reads_on(c, r1port, 20) > 0 || (usleep(100 * 1000), false);
    assert_true(used);
    replay(r1port, true);
    /* keep WAL moving so the lag grows: over 300 ms within about a second */
    double dl = svc_now_ms() + 5000;
    bool excluded = false;
    while (svc_now_ms() < dl && !excluded) {
        exec_ok(w, "INSERT INTO routing_lag (t) VALUES (now())");
        usleep(50 * 1000);
        excluded = svc_now_ms() > 0 && reads_on(c, r1port, 10) == 0;
    }
    assert_true(excluded);
    for (int i = 0; i < 5; i++)
        exec_ok(w, "INSERT INTO routing_lag (t) VALUES (now())");
    assert_int_equal(reads_on(c, r1port, 40), 0); /* stays out while paused */

    /* read-your-writes with replica1 paused: zero stale reads, same session and token */
    char args[256];
    snprintf(args, sizeof(args), "-p %d -c 4 -T 3 -m same", rp.proc.port);
    assert_int_equal(run_ryw(args), 0);
    snprintf(args, sizeof(args), "-p %d -c 4 -T 3 -m token", rp.proc.port);
    assert_int_equal(run_ryw(args), 0);
    /* negative control: the checker sees staleness when reads go to the paused replica */
    snprintf(args, sizeof(args), "-p %d -c 2 -n 50 -m same --sync-wait 1 --read-port %d",
             rp.proc.port, r1port);
    assert_int_equal(run_ryw(args), 1); /* 1 = stale reads found */

    replay(r1port, false);
    dl = svc_now_ms() + 5000;
    bool back = false;
    while (svc_now_ms() < dl && !back) {
        usleep(100 * 1000);
        back = reads_on(c, r1port, 20) > 0;
    }
    assert_true(back);
    PQfinish(w);
    PQfinish(c);
}

/* a stopped replica: new statements go elsewhere at once, without client errors */
static void test_stopped_replica(void **state)
{
    (void)state;
    PGconn *c = connect_to(rp.proc.port, "tusk");
    assert_true(reads_on(c, r2port, 20) > 0); /* pooled connections to replica2 exist */
    assert_int_equal(svc_node("stop", "replica2"), 0);
    int errors = 0;
    for (int i = 0; i < 200; i++) {
        PGresult *r = PQexec(c, "SELECT inet_server_port()");
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            errors++;
            if (PQstatus(c) != CONNECTION_OK)
                PQreset(c);
        } else {
            assert_int_not_equal(atoi(PQgetvalue(r, 0, 0)), r2port);
        }
        PQclear(r);
    }
    assert_int_equal(svc_node("start", "replica2"), 0);
    assert_int_equal(errors, 0);
    double dl = svc_now_ms() + 15000;
    bool back = false;
    while (svc_now_ms() < dl && !back) {
        usleep(200 * 1000);
        back = reads_on(c, r2port, 20) > 0;
    }
    assert_true(back);
    PQfinish(c);
}

/* a replica stopped under pgbench load through the proxy: statements that had not sent anything
 * to their client yet run again on another node, so pgbench sees no error at all. mode is
 * pgbench's -M: simple Query, extended batches (unnamed Parse, Bind, Describe, Execute, Sync)
 * or prepared (Bind, Describe, Execute, Sync of statements prepared before the stop; the
 * primary gets them prepared by the proxy on the re-run). */
static void stop_under_load(const char *mode)
{
    PGconn *c = connect_to(rp.proc.port, "tusk");
    double dl = svc_now_ms() + 15000;
    while (reads_on(c, r2port, 20) == 0 && svc_now_ms() < dl)
        usleep(200 * 1000); /* replica2 takes reads again after the last test stopped it */
    assert_true(reads_on(c, r2port, 20) > 0);
    PQfinish(c);
    char *script = svc_write_temp(".sql", "SELECT inet_server_port();\n");
    char log[] = "/tmp/tusk-routing-pgbench-XXXXXX";
    int fd = mkstemp(log);
    assert_true(fd >= 0);
    close(fd);
    int rc = svc_sh("(sleep 1.5; '%s/scripts/services' node '%s' stop replica2 >/dev/null 2>&1) & "
                    "PGPASSWORD=tusk '%s/pgbench' -n -M %s -f '%s' -c 8 -j 2 -T 4 -h 127.0.0.1 "
                    "-p %d -U tusk tusk > '%s' 2>&1; rc=$?; wait; exit $rc",
                    svc_env("TUSK_SOURCE_DIR"), svc_env("TUSK_SVC_DIR"), svc_env("TUSK_PG_BIN"),
                    mode, script, rp.proc.port, log);
    assert_int_equal(svc_node("start", "replica2"), 0);
    int bad = svc_sh("grep -q 'aborted\\|error\\|failed transactions: [1-9]' '%s'", log);
    if (rc != 0 || bad == 0)
        svc_sh("cat '%s' >&2", log);
    unlink(log);
    unlink(script);
    free(script);
    assert_int_equal(rc, 0);
    assert_int_not_equal(bad, 0); /* grep found nothing */
}

static void test_stop_under_load(void **state)
{
    (void)state;
    stop_under_load("simple");
}

static void test_stop_under_load_extended(void **state)
{
    (void)state;
    stop_under_load("extended");
}

static void test_stop_under_load_prepared(void **state)
{
    (void)state;
    stop_under_load("prepared");
}

int main(void)
{
    svc_env("TUSK_PG_REPLICA2_PORT");
    svc_env("TUSK_BIN");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_primary_reads_off, replaying),
        cmocka_unit_test_teardown(test_paused_replica, replaying),
        cmocka_unit_test_teardown(test_stopped_replica, replaying),
        cmocka_unit_test_teardown(test_stop_under_load, replaying),
        cmocka_unit_test_teardown(test_stop_under_load_extended, replaying),
        cmocka_unit_test_teardown(test_stop_under_load_prepared, replaying),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
