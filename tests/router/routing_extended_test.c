/*
 * Integration test of SET tusk.* / SHOW tusk.commit_lsn sent over the extended protocol
 * (PQexecParams, PQprepare + PQexecPrepared, pipelines) through tusk proxy (proxy/route.c)
 * against the real primary and two streaming replicas: the proxy must answer them itself and
 * apply them, never pass them to PostgreSQL (which would accept them silently).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/router/routed_proxy.h"
#include "tests/support/support.h"

static routed_proxy rp;
static int pport, r1port, r2port;

static PGconn *connect_proxy(void)
{
    return routed_connect(rp.proc.port);
}

static bool is_replica(int port)
{
    return port == r1port || port == r2port;
}

/* PQexecParams without parameters; the result must have status want */
static PGresult *params(PGconn *c, const char *sql, ExecStatusType want)
{
    PGresult *r = PQexecParams(c, sql, 0, NULL, NULL, NULL, NULL, 0);
    if (PQresultStatus(r) != want)
        fail_msg("%s: %s %s", sql, PQresStatus(PQresultStatus(r)), PQerrorMessage(c));
    return r;
}

static void params_ok(PGconn *c, const char *sql)
{
    PQclear(params(c, sql, PGRES_COMMAND_OK));
}

/* where a read ran: its server port, and that server is not in recovery exactly when primary */
static int read_port(PGconn *c, bool extended)
{
    const char *sql = "SELECT inet_server_port(), pg_is_in_recovery()";
    PGresult *r = extended ? PQexecParams(c, sql, 0, NULL, NULL, NULL, NULL, 0) : PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("read: %s", PQerrorMessage(c));
    int port = atoi(PQgetvalue(r, 0, 0));
    assert_int_equal(port == pport, strcmp(PQgetvalue(r, 0, 1), "f") == 0);
    PQclear(r);
    return port;
}

static int setup(void **state)
{
    (void)state;
    if (!routed_proxy_start(&rp, "max_prepared_statements = 100\nadmin_users = tusk\n"
                                 "max_replica_lag_ms = 2000\nreplica_wait_ms = 50\n"))
        return -1;
    pport = rp.pport;
    r1port = rp.r1port;
    r2port = rp.r2port;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return routed_proxy_stop(&rp);
}

/* a floor no replica has reached: reads wait replica_wait_ms, then go to the primary */
static void test_min_lsn(void **state)
{
    (void)state;
    PGconn *c = connect_proxy();
    assert_int_not_equal(read_port(c, true), pport);
    params_ok(c, "SET tusk.min_lsn = '0/FFFFFFFF'");
    double t0 = svc_now_ms();
    assert_int_equal(read_port(c, true), pport);
    assert_true(svc_now_ms() - t0 >= 45);
    assert_int_equal(read_port(c, false), pport);
    PGresult *r = params(c, "SHOW tusk.commit_lsn", PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 1);
    assert_int_equal(PQnfields(r), 1);
    assert_string_equal(PQfname(r, 0), "tusk.commit_lsn");
    assert_string_equal(PQgetvalue(r, 0, 0), "0/FFFFFFFF");
    PQclear(r);
    /* never reached PostgreSQL */
    r = params(c, "SELECT current_setting('tusk.min_lsn', true)", PGRES_TUPLES_OK);
    assert_true(PQgetisnull(r, 0, 0) || PQgetvalue(r, 0, 0)[0] == '\0');
    PQclear(r);
    PQfinish(c);
}

/* SET tusk.route by PQexecParams and by a prepared statement */
static void test_route(void **state)
{
    (void)state;
    PGconn *c = connect_proxy();
    params_ok(c, "SET tusk.route = primary");
    for (int i = 0; i < 4; i++) {
        assert_int_equal(read_port(c, true), pport);
        assert_int_equal(read_port(c, false), pport);
    }
    PGresult *r = PQprepare(c, "to_replica", "SET tusk.route = replica", 0, NULL);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    r = PQdescribePrepared(c, "to_replica");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    assert_int_equal(PQnparams(r), 0);
    assert_int_equal(PQnfields(r), 0);
    PQclear(r);
    assert_int_equal(read_port(c, true), pport); /* prepared, not yet executed */
    r = PQexecPrepared(c, "to_replica", 0, NULL, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    assert_string_equal(PQcmdStatus(r), "SET");
    PQclear(r);
    for (int i = 0; i < 4; i++)
        assert_int_not_equal(read_port(c, true), pport);
    params_ok(c, "RESET tusk.route");
    /* the name parsed again as an ordinary statement: it goes to PostgreSQL */
    r = PQprepare(c, "to_replica", "SELECT inet_server_port()", 0, NULL);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    r = PQexecPrepared(c, "to_replica", 0, NULL, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_not_equal(atoi(PQgetvalue(r, 0, 0)), 0);
    PQclear(r);
    PQfinish(c);
}

/* a bad value errors and the connection goes on; other settings still reach PostgreSQL */
static void test_errors_and_passthrough(void **state)
{
    (void)state;
    PGconn *c = connect_proxy();
    PGresult *r = params(c, "SET tusk.min_lsn = 'not-an-lsn'", PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "22023");
    PQclear(r);
    assert_int_not_equal(read_port(c, true), pport);     /* still usable, floor unchanged */
    r = params(c, "SHOW tusk.route", PGRES_FATAL_ERROR); /* PostgreSQL: unknown parameter */
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "42704");
    PQclear(r);
    params_ok(c, "BEGIN");
    params_ok(c, "SET LOCAL work_mem = '7MB'");
    r = params(c, "SHOW work_mem", PGRES_TUPLES_OK); /* reached PostgreSQL */
    assert_string_equal(PQgetvalue(r, 0, 0), "7MB");
    PQclear(r);
    params_ok(c, "SET tusk.route = primary"); /* inside a transaction: answered, status T */
    assert_int_equal(PQtransactionStatus(c), PQTRANS_INTRANS);
    params_ok(c, "COMMIT");
    assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);
    assert_int_equal(read_port(c, true), pport);
    PQfinish(c);
}

/* in a pipeline after statements already sent to a server: the batch fails, in order */
static void test_pipeline(void **state)
{
    (void)state;
    PGconn *c = connect_proxy();
    assert_int_equal(PQenterPipelineMode(c), 1);
    assert_int_equal(PQsendQueryParams(c, "SELECT 1", 0, NULL, NULL, NULL, NULL, 0), 1);
    assert_int_equal(PQsendQueryParams(c, "SET tusk.route = primary", 0, NULL, NULL, NULL, NULL, 0),
                     1);
    assert_int_equal(PQpipelineSync(c), 1);
    PGresult *r = PQgetResult(c);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    assert_null(PQgetResult(c));
    r = PQgetResult(c);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_non_null(strstr(PQresultErrorMessage(r), "must be sent alone"));
    PQclear(r);
    assert_null(PQgetResult(c));
    r = PQgetResult(c);
    assert_int_equal(PQresultStatus(r), PGRES_PIPELINE_SYNC);
    PQclear(r);
    /* alone in its batch, in a pipeline: answered */
    assert_int_equal(PQsendQueryParams(c, "SET tusk.route = primary", 0, NULL, NULL, NULL, NULL, 0),
                     1);
    assert_int_equal(PQpipelineSync(c), 1);
    r = PQgetResult(c);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    assert_null(PQgetResult(c));
    r = PQgetResult(c);
    assert_int_equal(PQresultStatus(r), PGRES_PIPELINE_SYNC);
    PQclear(r);
    assert_int_equal(PQexitPipelineMode(c), 1);
    assert_int_equal(read_port(c, false), pport);
    PQfinish(c);
}

/* the whole answer to what was sent, ReadyForQuery included, arrives within 2 s */
static void answer_within_2s(PGconn *c, const char *what)
{
    double end = svc_now_ms() + 2000;
    while (PQconsumeInput(c) && PQisBusy(c)) {
        struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
        int left = (int)(end - svc_now_ms());
        if (left <= 0 || poll(&p, 1, left) != 1)
            fail_msg("%s: no complete answer while the database is paused", what);
    }
}

/* sql (extended protocol) completes without any server: the database is PAUSEd */
static void answered_alone(PGconn *c, const char *sql, ExecStatusType want)
{
    assert_int_equal(PQsendQueryParams(c, sql, 0, NULL, NULL, NULL, NULL, 0), 1);
    answer_within_2s(c, sql);
    PGresult *r;
    int n = 0;
    while ((r = PQgetResult(c))) {
        assert_int_equal(PQresultStatus(r), want);
        PQclear(r);
        n++;
        answer_within_2s(c, sql);
    }
    assert_int_equal(n, 1);
}

/* the proxy answers the whole sequence, Sync included: no server is taken */
static void test_no_server(void **state)
{
    (void)state;
    PGconn *c = connect_proxy();
    PGresult *r = PQprepare(c, "p1", "SET tusk.route = primary", 0, NULL);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    char ci[256];
    snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%d dbname=pgbouncer user=tusk", rp.proc.port);
    PGconn *a = PQconnectdb(ci);
    assert_int_equal(PQstatus(a), CONNECTION_OK);
    r = PQexec(a, "PAUSE tusk");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    answered_alone(c, "SET tusk.min_lsn = '0/10'", PGRES_COMMAND_OK);
    answered_alone(c, "SHOW tusk.commit_lsn", PGRES_TUPLES_OK);
    answered_alone(c, "SET tusk.min_lsn = 'x'", PGRES_FATAL_ERROR);
    assert_int_equal(PQsendQueryPrepared(c, "p1", 0, NULL, NULL, NULL, 0), 1);
    answer_within_2s(c, "p1");
    while ((r = PQgetResult(c))) {
        assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
        PQclear(r);
        answer_within_2s(c, "p1");
    }
    struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
    /* a real query does wait for the pause: the check above means something */
    assert_int_equal(PQsendQueryParams(c, "SELECT 1", 0, NULL, NULL, NULL, NULL, 0), 1);
    assert_int_equal(poll(&p, 1, 300), 0);
    r = PQexec(a, "RESUME tusk");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(a);
    while ((r = PQgetResult(c))) {
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        PQclear(r);
    }
    assert_int_equal(read_port(c, true), pport);
    PQfinish(c);
}

/* a 25006 in the first of two pipelined batches is remembered for the statement that failed,
 * not for the one the client sent after it: the writer goes to the primary from then on, the
 * read that followed it still goes to a replica */
static void test_pipeline_25006(void **state)
{
    (void)state;
    PGconn *c = connect_proxy();
    params_ok(c, "CREATE TABLE IF NOT EXISTS rx_pipe_w (x int)");
    params_ok(c, "CREATE OR REPLACE FUNCTION rx_pipe_write() RETURNS int LANGUAGE sql VOLATILE "
                 "AS 'INSERT INTO rx_pipe_w VALUES (1) RETURNING inet_server_port()'");
    params_ok(c, "DELETE FROM rx_pipe_w");
    PQfinish(c);
    /* the function (and the empty table) must be on both replicas before one can refuse it */
    assert_true(routed_caught_up(&rp));
    c = connect_proxy(); /* a new client: no read-your-writes floor from the DDL */
    static const char *writer = "SELECT rx_pipe_write() AS pipelined_writer";
    static const char *reader =
        "SELECT inet_server_port() AS read_after_writer, (SELECT count(*) FROM rx_pipe_w)";
    assert_true(PQenterPipelineMode(c));
    assert_true(PQsendQueryParams(c, writer, 0, NULL, NULL, NULL, NULL, 0));
    assert_true(PQpipelineSync(c));
    assert_true(PQsendQueryParams(c, reader, 0, NULL, NULL, NULL, NULL, 0));
    assert_true(PQpipelineSync(c));
    PGresult *r = PQgetResult(c);
    /* Either the second batch reached the server before the refusal, and with two batches
     * outstanding the client gets the 25006 and the read runs on that replica; or it came
     * after, waited in the proxy, and the first ran again on the primary. The read then runs
     * behind it there, or, when it reached the proxy after the re-run was over, wherever the
     * re-run's commit LSN allows. Never anything else. */
    bool rerun = PQresultStatus(r) == PGRES_TUPLES_OK;
    if (rerun) {
        assert_int_equal(atoi(PQgetvalue(r, 0, 0)), pport);
    } else {
        assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
        assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "25006");
    }
    PQclear(r);
    assert_null(PQgetResult(c));
    r = PQgetResult(c);
    assert_int_equal(PQresultStatus(r), PGRES_PIPELINE_SYNC);
    PQclear(r);
    r = PQgetResult(c);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQfname(r, 0), "read_after_writer");
    int port = atoi(PQgetvalue(r, 0, 0));
    if (rerun) /* the row the re-run wrote, wherever the read ran */
        assert_string_equal(PQgetvalue(r, 0, 1), "1");
    else /* on the replica that refused the write: nothing was written anywhere */
        assert_true(is_replica(port) && strcmp(PQgetvalue(r, 0, 1), "0") == 0);
    PQclear(r);
    assert_null(PQgetResult(c));
    r = PQgetResult(c);
    assert_int_equal(PQresultStatus(r), PGRES_PIPELINE_SYNC);
    PQclear(r);
    assert_true(PQexitPipelineMode(c));
    PQfinish(c);
    c = connect_proxy();
    PGconn *rd = connect_proxy(); /* writes nothing: no floor, so replicas whatever their lag */
    for (int i = 0; i < 5; i++) {
        r = params(c, writer, PGRES_TUPLES_OK); /* remembered: the primary, no error */
        assert_int_equal(atoi(PQgetvalue(r, 0, 0)), pport);
        PQclear(r);
        r = params(rd, reader, PGRES_TUPLES_OK); /* not remembered as a write */
        assert_true(is_replica(atoi(PQgetvalue(r, 0, 0))));
        PQclear(r);
    }
    PQfinish(rd);
    PQfinish(c);
}

int main(void)
{
    svc_env("TUSK_PG_REPLICA2_PORT");
    svc_env("TUSK_BIN");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_min_lsn),
        cmocka_unit_test(test_route),
        cmocka_unit_test(test_errors_and_passthrough),
        cmocka_unit_test(test_pipeline),
        cmocka_unit_test(test_pipeline_25006),
        cmocka_unit_test(test_no_server),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
