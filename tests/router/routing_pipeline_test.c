/*
 * pipeline_reads on a routed database (proxy/pool.c, proxy/route.c) against the real primary
 * and a replica: a read sent behind another client's read on the replica's server connection
 * gets its own answer, and when the read in front loses its backend or is refused with 25006,
 * or the pipelined read is refused, every statement still runs, once, on a node that can run
 * it, with no error for the client. One replica, one server connection per node and one
 * worker, so concurrent reads meet on the replica's only server. Where a statement ran is read
 * from the server side (inet_server_port()); that a read really was pipelined, from the
 * proxy's tusk_pipelined_reads_total: a scenario whose timing did not pipeline is run again.
 * A client whose write re-ran on the primary reads once before the next scenario, so that its
 * read-your-writes wait for the replica does not delay the statement under test.
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

enum { ATTEMPTS = 8 };

static routed_proxy rp;
static int http;

/* the one row of a query sent with PQsendQuery: column col as an int; fails on an error */
static long long result_int(PGconn *c, int col, const char *what)
{
    PGresult *r;
    long long v = -1;
    int rows = 0;
    while ((r = PQgetResult(c))) {
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            fail_msg("%s: %s", what, PQerrorMessage(c));
        v = atoll(PQgetvalue(r, 0, col));
        rows += PQntuples(r);
        PQclear(r);
    }
    assert_int_equal(rows, 1);
    return v;
}

/* the sum of a counter over the proxy's pools (of one node, or any: node < 0) */
static double node_sum(const char *name, int node)
{
    int st = 0;
    char *m = svc_http_get(http, "/metrics", &st);
    assert_non_null(m);
    assert_int_equal(st, 200);
    char key[96], label[32];
    snprintf(key, sizeof(key), "\n%s{", name);
    snprintf(label, sizeof(label), "node=\"%d\"", node);
    double n = 0;
    for (const char *p = m; (p = strstr(p, key)); p++) {
        const char *end = strchr(p, '}');
        const char *at = strstr(p, label);
        if (node < 0 || (at && at < end))
            n += strtod(strchr(end, ' ') + 1, NULL);
    }
    free(m);
    return n;
}

static double pool_sum(const char *name)
{
    return node_sum(name, -1);
}

static double pipelined(void)
{
    return pool_sum("tusk_pipelined_reads_total");
}

/* a read whose shape the proxy has seen run fast on the replica: reads may go behind it */
static void warm(PGconn *c, const char *fmt, int times)
{
    for (int i = 0; i < times; i++) {
        char sql[160];
        snprintf(sql, sizeof(sql), fmt, i);
        routed_exec(c, sql);
    }
}

/* the long read in front, of rows rows: a shape of the test's and the attempt's own (the
 * alias), first run fast 6 times, so reads may go behind it. Its own run, once it has
 * answered, marks its shape slow, and it must not make the next attempt's so */
static void front_read(PGconn *c, char *sql, size_t cap, const char *test, int attempt, long rows)
{
    char fast[128];
    snprintf(fast, sizeof(fast), "SELECT count(*) FROM generate_series(1, 10), (SELECT %%d) %s%d",
             test, attempt);
    warm(c, fast, 6);
    snprintf(sql, cap, "SELECT count(*) FROM generate_series(1, %ld), (SELECT 1) %s%d", rows, test,
             attempt);
}

/* a's statement, then 0.2 ms later b's: b's may go behind a's (sent less than
 * pipeline_fast_time before) */
static void send_pair(PGconn *a, const char *front, PGconn *b, const char *behind)
{
    if (!PQsendQuery(a, front))
        fail_msg("send %s: %s", front, PQerrorMessage(a));
    usleep(200);
    if (!PQsendQuery(b, behind))
        fail_msg("send %s: %s", behind, PQerrorMessage(b));
}

static int setup(void **state)
{
    (void)state;
    http = svc_free_port();
    char extra[512];
    snprintf(extra, sizeof(extra),
             "workers = 1\ndefault_pool_size = 1\nprimary_reads = off\npipeline_reads = on\n"
             "pipeline_depth = 3\n"
             /* "fast" generously: the warm-up runs and the 0.2 ms between the two sends stay
              * under it even on a loaded CI machine */
             "pipeline_fast_time = 50ms\n"
             "max_replica_lag_ms = 5000\nadmin_listen = 127.0.0.1:%d\n",
             http);
    if (!routed_proxy_start_n(&rp, 1, extra))
        return -1;
    PGconn *c = routed_connect(rp.proc.port);
    routed_exec(c, "CREATE TABLE IF NOT EXISTS routing_pipe_t (v int)");
    /* a write the classifier cannot see: replicas refuse it with 25006, after sleeping */
    routed_exec(c, "CREATE OR REPLACE FUNCTION routing_pipe_write(ms int) RETURNS int LANGUAGE sql "
                   "VOLATILE AS $$ SELECT pg_sleep(ms / 1000.0); "
                   "INSERT INTO routing_pipe_t VALUES (ms) RETURNING inet_server_port() $$");
    PQfinish(c);
    usleep(300 * 1000); /* the replica has them */
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    PGconn *c = routed_connect(rp.proc.port);
    routed_exec(c, "DROP FUNCTION IF EXISTS routing_pipe_write(int)");
    routed_exec(c, "DROP TABLE IF EXISTS routing_pipe_t");
    PQfinish(c);
    return routed_proxy_stop(&rp);
}

/* six clients read at once through the replica's one server: each gets its own answers,
 * reads wait behind up to three others */
static void test_answers(void **state)
{
    (void)state;
    enum { N = 6, ROUNDS = 120 };
    PGconn *c[N];
    for (int i = 0; i < N; i++)
        c[i] = routed_connect(rp.proc.port);
    double before = pipelined(), deep_before = pool_sum("tusk_pipelined_deep_reads_total");
    const char *assigned = "tusk_server_assignments_total";
    double primary_before = node_sum(assigned, 0), replica_before = node_sum(assigned, 1);
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < N; i++) {
            char sql[128];
            snprintf(sql, sizeof(sql), "SELECT inet_server_port(), %d, %d", i, round);
            assert_true(PQsendQuery(c[i], sql));
        }
        for (int i = 0; i < N; i++) {
            PGresult *r;
            int rows = 0;
            while ((r = PQgetResult(c[i]))) {
                if (PQresultStatus(r) != PGRES_TUPLES_OK)
                    fail_msg("client %d round %d: %s", i, round, PQerrorMessage(c[i]));
                if (atoi(PQgetvalue(r, 0, 1)) != i || atoi(PQgetvalue(r, 0, 2)) != round)
                    fail_msg("client %d round %d got client %s round %s's answer", i, round,
                             PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2));
                assert_int_equal(atoi(PQgetvalue(r, 0, 0)), rp.r1port);
                rows++;
                PQclear(r);
            }
            assert_int_equal(rows, 1);
        }
    }
    double piped = pipelined() - before;
    if (piped < 10)
        fail_msg("only %g of %d reads were pipelined", piped, N * ROUNDS);
    double deep = pool_sum("tusk_pipelined_deep_reads_total") - deep_before;
    if (deep < 5)
        fail_msg("only %g of %g pipelined reads went behind two others", deep, piped);
    /* a server of the node that ran them was assigned to each read: the replica's pool
     * counts them, not the clients' home pool (node 0) */
    double on_primary = node_sum(assigned, 0) - primary_before;
    double on_replica = node_sum(assigned, 1) - replica_before;
    if (on_primary != 0 || on_replica != N * ROUNDS)
        fail_msg("server assignments: %g on the primary, %g on the replica, for %d reads",
                 on_primary, on_replica, N * ROUNDS);
    for (int i = 0; i < N; i++)
        PQfinish(c[i]);
}

/* a read of a shape of its own each attempt, so never known fast: nothing is pipelined
 * behind it */
static void never_fast(char *sql, size_t cap, const char *select, int attempt)
{
    int n = snprintf(sql, cap, "%s", select);
    for (int i = 0; i <= attempt; i++)
        n += snprintf(sql + n, cap - (size_t)n, ", %d", i);
}

/* terminate the replica's backend running the long read in front; how many were */
static int kill_front(PGconn *replica)
{
    PGresult *r = PQexec(replica, "SELECT count(pg_terminate_backend(pid)) FROM "
                                  "pg_stat_activity WHERE query LIKE "
                                  "'SELECT count(*) FROM generate_series(1, 8000000)%'");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    int killed = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return killed;
}

/* the backend running the read in front is killed: the read behind it never started, so it
 * runs on the primary (the one in front is re-run there too, it had answered nothing) */
static void test_lost_backend(void **state)
{
    (void)state;
    PGconn *a = routed_connect(rp.proc.port), *b = routed_connect(rp.proc.port);
    PGconn *replica = routed_connect(rp.r1port);
    int done = 0;
    for (int attempt = 0; attempt < ATTEMPTS && !done; attempt++) {
        double before = pipelined();
        char front[128], behind[128];
        front_read(a, front, sizeof(front), "lost", attempt, 8000000);
        /* the read in front cannot be the one that goes behind it */
        never_fast(behind, sizeof(behind), "SELECT inet_server_port()", attempt);
        send_pair(a, front, b, behind);
        usleep(150 * 1000);
        double piped = pipelined() - before;
        int killed = kill_front(replica);
        assert_int_equal(result_int(a, 0, "the read in front"), 8000000);
        int port = (int)result_int(b, 0, "the read behind");
        if (piped >= 1 && killed == 1) {
            assert_int_equal(port, rp.pport);
            done++;
        } else {
            assert_true(port == rp.r1port || port == rp.pport);
        }
    }
    if (!done)
        fail_msg("in %d attempts no read was pipelined behind the one that was killed", ATTEMPTS);
    PQfinish(a);
    PQfinish(b);
    PQfinish(replica);
}

/* the same with two reads in line behind the killed one (pipeline_depth): both never
 * started, both run on the primary */
static void test_lost_backend_line(void **state)
{
    (void)state;
    PGconn *a = routed_connect(rp.proc.port), *b = routed_connect(rp.proc.port),
           *c = routed_connect(rp.proc.port);
    PGconn *replica = routed_connect(rp.r1port);
    warm(b, "SELECT inet_server_port(), %d AS second", 6); /* the middle one: known fast */
    int done = 0;
    for (int attempt = 0; attempt < ATTEMPTS && !done; attempt++) {
        double before = pipelined();
        char front[128], second[64], third[128];
        front_read(a, front, sizeof(front), "line", attempt, 8000000);
        snprintf(second, sizeof(second), "SELECT inet_server_port(), %d AS second", attempt);
        /* nothing goes behind it */
        never_fast(third, sizeof(third), "SELECT inet_server_port() AS third", attempt);
        send_pair(a, front, b, second);
        usleep(200);
        if (!PQsendQuery(c, third))
            fail_msg("send %s: %s", third, PQerrorMessage(c));
        usleep(150 * 1000);
        double piped = pipelined() - before;
        int killed = kill_front(replica);
        assert_int_equal(result_int(a, 0, "the read in front"), 8000000);
        int bport = (int)result_int(b, 0, "the second read");
        int cport = (int)result_int(c, 0, "the third read");
        assert_true(bport == rp.r1port || bport == rp.pport);
        assert_true(cport == rp.r1port || cport == rp.pport);
        /* both behind the killed one (not the rare order where b's came first) */
        done += piped >= 2 && killed == 1 && bport == rp.pport && cport == rp.pport;
    }
    if (!done)
        fail_msg("in %d attempts no two reads were in line behind the one that was killed",
                 ATTEMPTS);
    PQfinish(a);
    PQfinish(b);
    PQfinish(c);
    PQfinish(replica);
}

/* a client leaves while its read is in line between two others: its answer is dropped when
 * its turn comes, and the one behind it gets its own */
static void test_leave_in_line(void **state)
{
    (void)state;
    PGconn *a = routed_connect(rp.proc.port), *b = routed_connect(rp.proc.port),
           *d = routed_connect(rp.proc.port);
    warm(b, "SELECT inet_server_port(), %d AS second", 6);
    int done = 0;
    for (int attempt = 0; attempt < ATTEMPTS && !done; attempt++) {
        PGconn *q = routed_connect(rp.proc.port);
        routed_exec(q, "SELECT 1");
        double before = pipelined(), deep_before = pool_sum("tusk_pipelined_deep_reads_total");
        char front[128], second[64], leaver[64], fourth[128];
        front_read(a, front, sizeof(front), "leave", attempt, 1000000);
        snprintf(second, sizeof(second), "SELECT inet_server_port(), %d AS second", attempt);
        snprintf(leaver, sizeof(leaver), "SELECT inet_server_port(), %d AS second",
                 100000 + attempt); /* the shape of b's: known fast, d may go behind it */
        snprintf(fourth, sizeof(fourth), "SELECT inet_server_port() AS fourth, %d", attempt);
        send_pair(a, front, b, second);
        usleep(200);
        assert_true(PQsendQuery(q, leaver));
        usleep(200);
        assert_true(PQsendQuery(d, fourth));
        usleep(1000);
        PQfinish(q);
        assert_int_equal(result_int(a, 0, "the read in front"), 1000000);
        assert_int_equal(result_int(b, 1, "the second read"), attempt);
        assert_int_equal(result_int(d, 1, "the read behind the leaver"), attempt);
        done += pipelined() - before >= 3 &&
                pool_sum("tusk_pipelined_deep_reads_total") - deep_before >= 2;
    }
    if (!done)
        fail_msg("in %d attempts the leaver's read was never in line between two others", ATTEMPTS);
    routed_exec(b, "SELECT 1"); /* the server is still good */
    PQfinish(a);
    PQfinish(b);
    PQfinish(d);
}

/* the read in front is a hidden write: the replica refuses it after its pipelined follower
 * was queued; the write re-runs on the primary and the follower's answer is its own */
static void test_25006_in_front(void **state)
{
    (void)state;
    PGconn *a = routed_connect(rp.proc.port), *b = routed_connect(rp.proc.port);
    /* each text is new (a refused text runs on the primary from then on) but the shape is
     * one, and known fast: the replica refuses it at once */
    warm(a, "SELECT routing_pipe_write(0), %d AS run", 8);
    int done = 0;
    for (int attempt = 0; attempt < ATTEMPTS && !done; attempt++) {
        double before = pipelined();
        char front[128], behind[128];
        routed_exec(a, "SELECT 1"); /* its last write's floor: the replica has caught up */
        snprintf(front, sizeof(front), "SELECT routing_pipe_write(300), %d AS run", attempt);
        snprintf(behind, sizeof(behind), "SELECT inet_server_port(), %d", attempt);
        send_pair(a, front, b, behind);
        int bport = (int)result_int(b, 0, "the read behind");
        assert_int_equal(result_int(a, 0, "the refused write"), rp.pport);
        if (pipelined() - before >= 1) {
            assert_int_equal(bport, rp.r1port);
            done++;
        }
    }
    if (!done)
        fail_msg("in %d attempts no read was pipelined behind the refused one", ATTEMPTS);
    PQfinish(a);
    PQfinish(b);
}

/* the pipelined read is the hidden write: refused after the server passed to it, it re-runs
 * on the primary */
static void test_25006_behind(void **state)
{
    (void)state;
    PGconn *a = routed_connect(rp.proc.port), *b = routed_connect(rp.proc.port);
    int done = 0;
    for (int attempt = 0; attempt < ATTEMPTS && !done; attempt++) {
        double before = pipelined();
        char front[128], behind[128];
        front_read(a, front, sizeof(front), "behind", attempt, 3000000);
        routed_exec(b, "SELECT 1"); /* its last write's floor: the replica has caught up */
        snprintf(behind, sizeof(behind), "SELECT routing_pipe_write(0), %d AS behind",
                 100 + attempt);
        send_pair(a, front, b, behind);
        assert_int_equal(result_int(a, 0, "the read in front"), 3000000);
        assert_int_equal(result_int(b, 0, "the refused write behind"), rp.pport);
        done += pipelined() - before >= 1;
    }
    if (!done)
        fail_msg("in %d attempts the write was never pipelined behind the read", ATTEMPTS);
    PQfinish(a);
    PQfinish(b);
}

int main(void)
{
    svc_env("TUSK_PG_REPLICA1_PORT");
    svc_env("TUSK_BIN");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answers),           cmocka_unit_test(test_lost_backend),
        cmocka_unit_test(test_lost_backend_line), cmocka_unit_test(test_leave_in_line),
        cmocka_unit_test(test_25006_in_front),    cmocka_unit_test(test_25006_behind),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
