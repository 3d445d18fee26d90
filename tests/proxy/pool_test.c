/*
 * Integration: pooling behaviour of "tusk proxy" against the real primary: named prepared
 * statements across pooled connections in transaction mode, session vs transaction semantics
 * (SET, temp tables, ParameterStatus re-application), pool exhaustion and query_wait_timeout,
 * reload with SIGHUP, a server backend killed mid-query, graceful shutdown with SIGINT, and
 * pgbench -M prepared in transaction mode.
 */
#include "tests/proxy/pxtest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

static void test_prepared_across_pool(void **state)
{
    (void)state;
    pxt_proxy px;
    pxt_start(&px, "pool_mode = transaction\ndefault_pool_size = 2\n", NULL, NULL);
    enum { N = 10 };
    PGconn *c[N];
    for (int i = 0; i < N; i++) {
        c[i] = pxt_connect(&px, "tusk", "tusk", "tusk");
        /* the same name means different statements in different clients */
        char sql[64];
        snprintf(sql, sizeof(sql), "SELECT $1::int + %d", i);
        PGresult *r = PQprepare(c[i], "s1", sql, 1, NULL);
        assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
        PQclear(r);
        /* and the same text under different names shares one server statement */
        char name[16];
        snprintf(name, sizeof(name), "common_%d", i);
        r = PQprepare(c[i], name, "SELECT 'common', $1::text", 1, NULL);
        assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
        PQclear(r);
    }
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < N; i++) {
            int k = (i * 7 + round) % N;
            char v[16];
            snprintf(v, sizeof(v), "%d", round);
            const char *p[1] = {v};
            PGresult *r = PQexecPrepared(c[k], "s1", 1, p, NULL, NULL, 0);
            if (PQresultStatus(r) != PGRES_TUPLES_OK)
                fail_msg("round %d client %d: %s", round, k, PQerrorMessage(c[k]));
            assert_int_equal(atoi(PQgetvalue(r, 0, 0)), round + k);
            PQclear(r);
            char name[16];
            snprintf(name, sizeof(name), "common_%d", k);
            r = PQexecPrepared(c[k], name, 1, p, NULL, NULL, 0);
            assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
            assert_string_equal(PQgetvalue(r, 0, 1), v);
            PQclear(r);
        }
    }
    /* describe works wherever the statement lands */
    for (int i = 0; i < N; i++) {
        PGresult *r = PQdescribePrepared(c[i], "s1");
        assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
        assert_int_equal(PQnparams(r), 1);
        PQclear(r);
    }
    /* inside a transaction block too */
    pxt_exec(c[0], "BEGIN");
    const char *p[1] = {"5"};
    PGresult *r = PQexecPrepared(c[0], "s1", 1, p, NULL, NULL, 0);
    assert_string_equal(PQgetvalue(r, 0, 0), "5");
    PQclear(r);
    pxt_exec(c[0], "COMMIT");
    /* redefining a name without Close fails as on PostgreSQL (42P05, the client's name), the
     * old statement stays, and a batch behind the refused Parse is skipped up to Sync */
    r = PQprepare(c[1], "s1", "SELECT 'other'", 0, NULL);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "42P05");
    assert_non_null(strstr(PQerrorMessage(c[1]), "prepared statement \"s1\" already exists"));
    PQclear(r);
    r = PQexecPrepared(c[1], "s1", 1, p, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "6");
    PQclear(r);
    assert_int_equal(PQenterPipelineMode(c[1]), 1);
    assert_int_equal(PQsendPrepare(c[1], "s1", "SELECT 'other'", 0, NULL), 1);
    assert_int_equal(PQsendQueryPrepared(c[1], "s1", 1, p, NULL, NULL, 0), 1);
    assert_int_equal(PQpipelineSync(c[1]), 1);
    r = PQgetResult(c[1]);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    PQclear(r);
    assert_null(PQgetResult(c[1]));
    r = PQgetResult(c[1]);
    assert_int_equal(PQresultStatus(r), PGRES_PIPELINE_ABORTED);
    PQclear(r);
    assert_null(PQgetResult(c[1]));
    r = PQgetResult(c[1]);
    assert_int_equal(PQresultStatus(r), PGRES_PIPELINE_SYNC);
    PQclear(r);
    assert_int_equal(PQexitPipelineMode(c[1]), 1);
    r = PQexecPrepared(c[1], "s1", 1, p, NULL, NULL, 0);
    assert_string_equal(PQgetvalue(r, 0, 0), "6");
    PQclear(r);
    /* the server side holds shared names, at most 2 servers x (10 + 1) statements */
    long long n =
        pxt_int(c[3], "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'T\\_%'");
    assert_true(n >= 1 && n <= 11);
    for (int i = 0; i < N; i++)
        PQfinish(c[i]);
    pxt_stop(&px, SIGTERM);
}

static void test_session_semantics(void **state)
{
    (void)state;
    pxt_proxy px;
    pxt_start(&px, "pool_mode = session\ndefault_pool_size = 2\n", NULL, NULL);
    PGconn *c = pxt_connect(&px, "tusk", "tusk", "tusk");
    long long pid = pxt_int(c, "SELECT pg_backend_pid()");
    pxt_exec(c, "SET work_mem = '1234kB'");
    pxt_exec(c, "CREATE TEMP TABLE pxt_session_tmp (x int)");
    pxt_exec(c, "INSERT INTO pxt_session_tmp VALUES (1)");
    for (int i = 0; i < 5; i++) {
        char *v = pxt_value(c, "SHOW work_mem");
        assert_string_equal(v, "1234kB");
        free(v);
        assert_int_equal(pxt_int(c, "SELECT pg_backend_pid()"), pid);
        assert_int_equal(pxt_int(c, "SELECT count(*) FROM pxt_session_tmp"), 1);
    }
    PQfinish(c);
    /* the next client gets a clean (DISCARD ALL) server */
    c = pxt_connect(&px, "tusk", "tusk", "tusk");
    char *v = pxt_value(c, "SHOW work_mem");
    assert_string_not_equal(v, "1234kB");
    free(v);
    char *st = pxt_error(c, "SELECT count(*) FROM pxt_session_tmp");
    assert_string_equal(st, "42P01");
    free(st);
    PQfinish(c);
    pxt_stop(&px, SIGTERM);
}

static void test_transaction_semantics(void **state)
{
    (void)state;
    pxt_proxy px;
    /* one worker: both clients share the one server */
    pxt_start(&px, "pool_mode = transaction\ndefault_pool_size = 1\nworkers = 1\n", NULL, NULL);
    PGconn *a = pxt_connect(&px, "tusk", "tusk", "tusk");
    PGconn *b = pxt_connect(&px, "tusk", "tusk", "tusk");
    /* a temp table lives within its transaction */
    pxt_exec(a, "BEGIN");
    pxt_exec(a, "CREATE TEMP TABLE pxt_txn_tmp (x int) ON COMMIT DROP");
    pxt_exec(a, "INSERT INTO pxt_txn_tmp SELECT generate_series(1, 10)");
    assert_int_equal(pxt_int(a, "SELECT sum(x) FROM pxt_txn_tmp"), 55);
    pxt_exec(a, "COMMIT");
    /* SET in transaction mode sticks for its client only, even on one shared server */
    char *tz_default = pxt_value(b, "SHOW TimeZone");
    pxt_exec(a, "SET TimeZone = 'Asia/Tokyo'");
    assert_string_equal(PQparameterStatus(a, "TimeZone"), "Asia/Tokyo");
    for (int i = 0; i < 3; i++) {
        char *va = pxt_value(a, "SHOW TimeZone");
        char *vb = pxt_value(b, "SHOW TimeZone");
        assert_string_equal(va, "Asia/Tokyo");
        assert_string_equal(vb, tz_default);
        free(va);
        free(vb);
    }
    /* startup parameters too */
    PGconn *c = pxt_try_connect(px.port, "tusk", "tusk", "tusk",
                                "application_name=pxt_app options='-c DateStyle=SQL,DMY'");
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    char *app = pxt_value(c, "SELECT current_setting('application_name')");
    assert_string_equal(app, "pxt_app");
    free(app);
    char *ds = pxt_value(c, "SHOW DateStyle");
    assert_string_equal(ds, "SQL, DMY");
    free(ds);
    char *dsb = pxt_value(b, "SHOW DateStyle");
    assert_string_not_equal(dsb, "SQL, DMY");
    free(dsb);
    char *appb = pxt_value(b, "SELECT current_setting('application_name')");
    assert_string_not_equal(appb, "pxt_app");
    free(appb);
    free(tz_default);
    PQfinish(c);
    PQfinish(a);
    PQfinish(b);
    pxt_stop(&px, SIGTERM);
}

static void test_pool_exhaustion(void **state)
{
    (void)state;
    pxt_proxy px;
    pxt_start(&px, "pool_mode = transaction\ndefault_pool_size = 1\nquery_wait_timeout = 1\n", NULL,
              NULL);
    PGconn *a = pxt_connect(&px, "tusk", "tusk", "tusk");
    PGconn *b = pxt_connect(&px, "tusk", "tusk", "tusk");
    pxt_exec(a, "BEGIN");
    assert_int_equal(pxt_int(a, "SELECT 1"), 1);
    double t0 = svc_now_ms();
    PGresult *r = PQexec(b, "SELECT 2");
    double waited = svc_now_ms() - t0;
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    if (!msg)
        msg = PQerrorMessage(b);
    assert_non_null(strstr(msg, "query_wait_timeout"));
    PQclear(r);
    assert_true(waited > 800 && waited < 4000);
    pxt_exec(a, "COMMIT");
    /* the pool is usable again */
    PGconn *c = pxt_connect(&px, "tusk", "tusk", "tusk");
    assert_int_equal(pxt_int(c, "SELECT 3"), 3);
    assert_int_equal(pxt_int(a, "SELECT 4"), 4);
    PQfinish(a);
    PQfinish(b);
    PQfinish(c);
    pxt_stop(&px, SIGTERM);
}

static void test_reload(void **state)
{
    (void)state;
    pxt_proxy px;
    pxt_start(&px, "pool_mode = transaction\ndefault_pool_size = 1\nquery_wait_timeout = 2\n", NULL,
              NULL);
    PGconn *a = pxt_connect(&px, "tusk", "tusk", "tusk");
    assert_int_equal(pxt_int(a, "SELECT 1"), 1);
    pxt_reload(&px, "pool_mode = transaction\ndefault_pool_size = 3\nquery_wait_timeout = 2\n",
               NULL);
    assert_int_equal(pxt_int(a, "SELECT 2"), 2);
    /* three transactions at once now fit */
    PGconn *c[3];
    long long pids[3];
    for (int i = 0; i < 3; i++) {
        c[i] = pxt_connect(&px, "tusk", "tusk", "tusk");
        pxt_exec(c[i], "BEGIN");
        pids[i] = pxt_int(c[i], "SELECT pg_backend_pid()");
    }
    assert_true(pids[0] != pids[1] && pids[1] != pids[2] && pids[0] != pids[2]);
    for (int i = 0; i < 3; i++) {
        pxt_exec(c[i], "COMMIT");
        PQfinish(c[i]);
    }
    /* a broken config is refused; the running one stays */
    FILE *f = fopen(px.proc.config_path, "w");
    fputs("[pgbouncer]\npool_mode = nonsense\n", f);
    fclose(f);
    kill(px.proc.pid, SIGHUP);
    usleep(300 * 1000);
    assert_int_equal(pxt_int(a, "SELECT 3"), 3);
    PQfinish(a);
    assert_int_equal(pxt_stop(&px, SIGINT), 0);
}

static void wait_for_backend(PGconn *direct, const char *marker, long long *pid)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT pid FROM pg_stat_activity WHERE query LIKE '%%%s%%' AND pid <> "
             "pg_backend_pid() AND state = 'active'",
             marker);
    for (int i = 0; i < 100; i++) {
        PGresult *r = PQexec(direct, sql);
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
            *pid = atoll(PQgetvalue(r, 0, 0));
            PQclear(r);
            return;
        }
        PQclear(r);
        usleep(50000);
    }
    fail_msg("backend running %s not found", marker);
}

static void test_server_killed(void **state)
{
    (void)state;
    pxt_proxy px;
    pxt_start(&px, "pool_mode = transaction\ndefault_pool_size = 2\n", NULL, NULL);
    PGconn *d = pxt_direct("tusk");
    PGconn *a = pxt_connect(&px, "tusk", "tusk", "tusk");
    char marker[64], sql[128];
    snprintf(marker, sizeof(marker), "pxt_kill_%d", (int)getpid());
    snprintf(sql, sizeof(sql), "SELECT pg_sleep(30) /* %s */", marker);
    assert_int_equal(PQsendQuery(a, sql), 1);
    long long pid;
    wait_for_backend(d, marker, &pid);
    char kill_sql[64];
    snprintf(kill_sql, sizeof(kill_sql), "SELECT pg_terminate_backend(%lld)", pid);
    pxt_exec(d, kill_sql);
    PGresult *r = PQgetResult(a);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "57P01");
    PQclear(r);
    while ((r = PQgetResult(a)))
        PQclear(r);
    /* the client goes on with another server */
    assert_int_equal(PQstatus(a), CONNECTION_OK);
    assert_int_equal(pxt_int(a, "SELECT 42"), 42);
    assert_true(pxt_int(a, "SELECT pg_backend_pid()") != pid);
    /* killed while idle in the pool: replaced without anybody noticing */
    PGresult *pr = PQexec(d, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                             "usename = 'tusk' AND datname = 'tusk' AND state = 'idle' AND "
                             "pid <> pg_backend_pid()");
    PQclear(pr);
    usleep(100 * 1000);
    assert_int_equal(pxt_int(a, "SELECT 43"), 43);
    PQfinish(a);
    PQfinish(d);
    pxt_stop(&px, SIGTERM);
}

static void test_graceful_shutdown(void **state)
{
    (void)state;
    pxt_proxy px;
    pxt_start(&px, "pool_mode = transaction\ndefault_pool_size = 2\nshutdown_wait_timeout = 10\n",
              NULL, NULL);
    PGconn *a = pxt_connect(&px, "tusk", "tusk", "tusk");
    PGconn *idle = pxt_connect(&px, "tusk", "tusk", "tusk");
    pxt_exec(a, "BEGIN");
    assert_int_equal(pxt_int(a, "SELECT 1"), 1);
    kill(px.proc.pid, SIGINT);
    usleep(300 * 1000);
    /* the running transaction finishes */
    assert_int_equal(pxt_int(a, "SELECT 2"), 2);
    pxt_exec(a, "COMMIT");
    /* the idle client was told and closed */
    PGresult *r = PQexec(idle, "SELECT 3");
    assert_int_not_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    /* no new connections */
    usleep(300 * 1000);
    PGconn *late = pxt_try_connect(px.port, "tusk", "tusk", "tusk", NULL);
    assert_int_not_equal(PQstatus(late), CONNECTION_OK);
    PQfinish(late);
    PQfinish(a);
    PQfinish(idle);
    assert_int_equal(pxt_stop(&px, SIGINT), 0);
}

static void ensure_pgbench_tables(void)
{
    PGconn *d = pxt_direct("bench");
    PGresult *r = PQexec(d, "SELECT 1 FROM pg_tables WHERE tablename = 'pgbench_accounts'");
    bool have = PQntuples(r) == 1;
    PQclear(r);
    PQfinish(d);
    if (have)
        return;
    int rc = svc_sh("PGPASSWORD=tusk '%s/pgbench' -i -s 1 -q -h %s -p %d -U tusk bench "
                    ">/dev/null 2>&1",
                    svc_env("TUSK_PG_BIN"), svc_env("TUSK_PG_HOST"),
                    svc_env_int("TUSK_PG_PRIMARY_PORT"));
    assert_int_equal(rc, 0);
}

static void test_pgbench_prepared(void **state)
{
    (void)state;
    ensure_pgbench_tables();
    pxt_proxy px;
    pxt_start(&px, "pool_mode = transaction\ndefault_pool_size = 2\n", NULL, NULL);
    char out[] = "/tmp/tusk-pxt-pgbench-XXXXXX";
    int fd = mkstemp(out);
    close(fd);
    int rc = svc_sh("PGPASSWORD=tusk '%s/pgbench' -M prepared -S -T 5 -c 8 -j 2 -h 127.0.0.1 "
                    "-p %d -U tusk bench >%s 2>&1",
                    svc_env("TUSK_PG_BIN"), px.port, out);
    FILE *f = fopen(out, "r");
    char line[512];
    bool zero_failed = false;
    double tps = 0;
    while (f && fgets(line, sizeof(line), f)) {
        fputs(line, stderr);
        if (strstr(line, "number of failed transactions: 0 "))
            zero_failed = true;
        if (strncmp(line, "tps = ", 6) == 0)
            tps = atof(line + 6);
    }
    if (f)
        fclose(f);
    unlink(out);
    assert_int_equal(rc, 0);
    assert_true(zero_failed);
    assert_true(tps > 100);
    pxt_stop(&px, SIGTERM);
}

static long long count_app(PGconn *d, const char *app)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s'", app);
    return pxt_int(d, sql);
}

static bool wait_count(PGconn *d, const char *app, long long want, int ms)
{
    double t0 = svc_now_ms();
    while (svc_now_ms() - t0 < ms) {
        if (count_app(d, app) == want)
            return true;
        usleep(50 * 1000);
    }
    fprintf(stderr, "%s: %lld server connections, want %lld\n", app, count_app(d, app), want);
    return false;
}

static void test_limits(void **state)
{
    (void)state;
    char app[64], db[256];
    snprintf(app, sizeof(app), "pxt_minpool_%d", (int)getpid());
    snprintf(db, sizeof(db),
             "minpool = host=%s port=%d dbname=tusk application_name=%s min_pool_size=2 "
             "pool_size=4\n",
             svc_env("TUSK_PG_HOST"), svc_env_int("TUSK_PG_PRIMARY_PORT"), app);
    pxt_proxy px;
    pxt_start(&px,
              "pool_mode = transaction\nmax_client_conn = 6\nserver_idle_timeout = 1\n"
              "default_pool_size = 1\nreserve_pool_size = 1\nreserve_pool_timeout = 0.3\n"
              "query_wait_timeout = 5\n",
              db, NULL);
    PGconn *d = pxt_direct("tusk");
    /* min_pool_size opens servers once the pool exists (first client) */
    PGconn *c[6];
    c[0] = pxt_connect(&px, "tusk", "tusk", "minpool");
    assert_true(wait_count(d, app, 2, 3000));
    /* four transactions at once: four servers; afterwards back to min_pool_size */
    for (int i = 1; i < 4; i++)
        c[i] = pxt_connect(&px, "tusk", "tusk", "minpool");
    for (int i = 0; i < 4; i++)
        pxt_exec(c[i], "BEGIN");
    assert_int_equal(count_app(d, app), 4);
    for (int i = 0; i < 4; i++)
        pxt_exec(c[i], "COMMIT");
    assert_true(wait_count(d, app, 2, 4000));
    /* max_client_conn = 6: the seventh client is refused */
    c[4] = pxt_connect(&px, "tusk", "tusk", "tusk");
    c[5] = pxt_connect(&px, "tusk", "tusk", "tusk");
    PGconn *x = pxt_try_connect(px.port, "tusk", "tusk", "tusk", NULL);
    assert_int_not_equal(PQstatus(x), CONNECTION_OK);
    assert_non_null(strstr(PQerrorMessage(x), "max_client_conn"));
    PQfinish(x);
    /* reserve pool: pool_size 1 busy, a second client gets the reserve after 0.3 s */
    pxt_exec(c[4], "BEGIN");
    assert_int_equal(pxt_int(c[4], "SELECT 1"), 1);
    double t0 = svc_now_ms();
    assert_int_equal(pxt_int(c[5], "SELECT 2"), 2);
    double waited = svc_now_ms() - t0;
    assert_true(waited >= 250 && waited < 3000);
    pxt_exec(c[4], "COMMIT");
    for (int i = 0; i < 6; i++)
        PQfinish(c[i]);
    PQfinish(d);
    pxt_stop(&px, SIGTERM);
}

static void test_unreachable_server(void **state)
{
    (void)state;
    char db[128];
    snprintf(db, sizeof(db), "dead = host=127.0.0.1 port=%d dbname=tusk\n", svc_free_port());
    pxt_proxy px;
    pxt_start(&px, "pool_mode = transaction\nserver_login_retry = 0.5\n", db, NULL);
    for (int i = 0; i < 3; i++) {
        double t0 = svc_now_ms();
        PGconn *c = pxt_try_connect(px.port, "tusk", "tusk", "dead", NULL);
        assert_int_not_equal(PQstatus(c), CONNECTION_OK);
        assert_non_null(strstr(PQerrorMessage(c), "could not connect to server"));
        assert_true(svc_now_ms() - t0 < 3000);
        PQfinish(c);
        usleep(300 * 1000);
    }
    /* the good database next to it is unaffected */
    PGconn *ok = pxt_connect(&px, "tusk", "tusk", "tusk");
    assert_int_equal(pxt_int(ok, "SELECT 1"), 1);
    PQfinish(ok);
    pxt_stop(&px, SIGTERM);
}

/* more statements than max_prepared_statements: the server's LRU evicts and re-prepares */
static void test_prepared_lru(void **state)
{
    (void)state;
    pxt_proxy px;
    pxt_start(&px,
              "pool_mode = transaction\ndefault_pool_size = 1\nmax_prepared_statements = 3\n"
              "workers = 1\n",
              NULL, NULL);
    PGconn *c = pxt_connect(&px, "tusk", "tusk", "tusk");
    PGconn *d = pxt_connect(&px, "tusk", "tusk", "tusk");
    for (int i = 0; i < 10; i++) {
        char name[16], sql[64];
        snprintf(name, sizeof(name), "q%d", i);
        snprintf(sql, sizeof(sql), "SELECT %d + $1::int", i * 100);
        PGresult *r = PQprepare(c, name, sql, 1, NULL);
        assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
        PQclear(r);
    }
    for (int round = 0; round < 5; round++) {
        for (int i = 9; i >= 0; i--) {
            char name[16];
            snprintf(name, sizeof(name), "q%d", i);
            const char *p[1] = {"7"};
            PGresult *r = PQexecPrepared(c, name, 1, p, NULL, NULL, 0);
            if (PQresultStatus(r) != PGRES_TUPLES_OK)
                fail_msg("%s: %s", name, PQerrorMessage(c));
            assert_int_equal(atoi(PQgetvalue(r, 0, 0)), i * 100 + 7);
            PQclear(r);
        }
        /* another client on the same (only) server in between */
        assert_int_equal(pxt_int(d, "SELECT 5"), 5);
    }
    assert_true(pxt_int(d, "SELECT count(*) FROM pg_prepared_statements") <= 3);
    PQfinish(c);
    PQfinish(d);
    pxt_stop(&px, SIGTERM);
}

/* the first column of the one row a query sent with PQsendQuery returns */
static int pxt_result_int(PGconn *c)
{
    PGresult *r;
    int v = -1, n = 0;
    while ((r = PQgetResult(c))) {
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            fail_msg("%s", PQerrorMessage(c));
        v = atoi(PQgetvalue(r, 0, 0));
        n++;
        PQclear(r);
    }
    assert_int_equal(n, 1);
    return v;
}

/* a gauge of the proxy's /metrics ("name" or "name{labels}") */
static double metric(int http, const char *series)
{
    int st;
    char *m = pxt_http_get(http, "/metrics", &st);
    assert_int_equal(st, 200);
    char key[128];
    snprintf(key, sizeof(key), "\n%s ", series);
    const char *line = strstr(m, key);
    if (!line)
        fail_msg("no %s in /metrics", series);
    double v = strtod(line + strlen(key), NULL);
    free(m);
    return v;
}

/* a counter of the test database's one pool */
static double pool_counter(int http, const char *name)
{
    char series[128];
    snprintf(series, sizeof(series), "%s{database=\"tusk\",user=\"tusk\",node=\"0\"}", name);
    return metric(http, series);
}

/* tusk_pipelined_reads_total from the proxy's /metrics */
static double pipelined_reads(int http)
{
    return pool_counter(http, "tusk_pipelined_reads_total");
}

/* per-worker metrics: where the clients are (the kernel spreads new connections over the
 * workers' SO_REUSEPORT sockets) and how much CPU each worker thread used */
static void test_worker_metrics(void **state)
{
    (void)state;
    int http = svc_free_port();
    char extra[256];
    /* no packing: new connections go to the worker with the fewest clients (steer.c) */
    snprintf(extra, sizeof(extra),
             "pool_mode = transaction\nworkers = 2\nworker_pack_clients = 0\n"
             "admin_listen = 127.0.0.1:%d\n",
             http);
    pxt_proxy px;
    pxt_start(&px, extra, NULL, NULL);
    enum { N = 16 };
    PGconn *c[N];
    for (int i = 0; i < N; i++)
        c[i] = pxt_connect(&px, "tusk", "tusk", "tusk");
    double w0 = metric(http, "tusk_worker_clients{worker=\"0\"}");
    double w1 = metric(http, "tusk_worker_clients{worker=\"1\"}");
    assert_true(w0 + w1 >= N); /* >=: the start-up check's connection may not be gone yet */
    if (fabs(w0 - w1) > 1)
        fail_msg("%d clients are spread %g and %g over the workers", N, w0, w1);
    double busy0 = metric(http, "tusk_worker_cpu_seconds_total{worker=\"0\"}") +
                   metric(http, "tusk_worker_cpu_seconds_total{worker=\"1\"}");
    for (int round = 0; round < 200; round++)
        for (int i = 0; i < N; i++)
            assert_int_equal(pxt_int(c[i], "SELECT 1"), 1);
    double busy1 = metric(http, "tusk_worker_cpu_seconds_total{worker=\"0\"}") +
                   metric(http, "tusk_worker_cpu_seconds_total{worker=\"1\"}");
    /* 3200 round trips (4 system calls each in the proxy) cost the loops over 3 us each */
    if (!(busy1 - busy0 > 0.0096 && busy1 - busy0 < 120))
        fail_msg("the workers' CPU time grew by %g s over 3200 queries", busy1 - busy0);
    for (int i = 0; i < N; i++)
        PQfinish(c[i]);
    pxt_stop(&px, SIGTERM);
}

/* wait up to 3 s until the proxy has exactly n clients (a start-up check's may linger) */
static void wait_clients(int http, double n)
{
    for (int i = 0; i < 300 && metric(http, "tusk_clients_connected") != n; i++)
        usleep(10000);
    assert_true(metric(http, "tusk_clients_connected") == n);
}

static void expect_spread(int http, double want0, double want1, const char *when)
{
    double w0 = metric(http, "tusk_worker_clients{worker=\"0\"}");
    double w1 = metric(http, "tusk_worker_clients{worker=\"1\"}");
    if (w0 != want0 || w1 != want1)
        fail_msg("%s: the workers have %g and %g clients, expected %g and %g", when, w0, w1, want0,
                 want1);
}

/* steering: new connections are packed onto worker 0 below worker_pack_clients, then go to
 * the worker with the fewest; hashing would put 4 in a row on worker 0 one time in 16 */
static void test_steer(void **state)
{
    (void)state;
    int http = svc_free_port();
    char extra[256];
    const char *fmt = "pool_mode = transaction\nworkers = 2\nworker_pack_clients = %d\n"
                      "admin_listen = 127.0.0.1:%d\n";
    snprintf(extra, sizeof(extra), fmt, 4, http);
    pxt_proxy px;
    pxt_start(&px, extra, NULL, NULL);
    wait_clients(http, 0);
    enum { N = 12 };
    PGconn *c[N];
    for (int i = 0; i < 4; i++)
        c[i] = pxt_connect(&px, "tusk", "tusk", "tusk");
    expect_spread(http, 4, 0, "4 clients, packing below 4");
    assert_true(metric(http, "tusk_workers_steer_target") == 1);
    for (int i = 4; i < N; i++)
        c[i] = pxt_connect(&px, "tusk", "tusk", "tusk");
    expect_spread(http, 6, 6, "12 clients, packing below 4");
    for (int i = 0; i < N; i++)
        assert_int_equal(pxt_int(c[i], "SELECT 1"), 1);
    for (int i = 0; i < N; i++)
        PQfinish(c[i]);
    wait_clients(http, 0);
    for (int i = 0; i < 3; i++)
        c[i] = pxt_connect(&px, "tusk", "tusk", "tusk");
    expect_spread(http, 3, 0, "3 clients after all left");
    /* a reload to 0 turns packing off: the next three go to worker 1, which has fewer */
    snprintf(extra, sizeof(extra), fmt, 0, http);
    pxt_reload(&px, extra, NULL);
    usleep(500000); /* the janitor (every 0.2 s) re-steers after a reload */
    for (int i = 3; i < 6; i++)
        c[i] = pxt_connect(&px, "tusk", "tusk", "tusk");
    expect_spread(http, 3, 3, "6 clients, no packing");
    for (int i = 0; i < 6; i++)
        PQfinish(c[i]);
    pxt_stop(&px, SIGTERM);
}

/* a per-worker series summed over the workers there are */
static double worker_sum(int http, const char *family)
{
    int st;
    char *m = pxt_http_get(http, "/metrics", &st);
    assert_int_equal(st, 200);
    double sum = 0;
    int found = 0;
    for (int i = 0;; i++) {
        char key[160];
        snprintf(key, sizeof(key), "\n%s{worker=\"%d\"} ", family, i);
        const char *line = strstr(m, key);
        if (!line)
            break;
        sum += strtod(line + strlen(key), NULL);
        found++;
    }
    free(m);
    if (!found)
        fail_msg("no %s in /metrics", family);
    return sum;
}

static double elapsed_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* (re)write the proxy's config with this busy_poll_time; the first query after a reload may
 * still close a polling stretch begun before it, so the caller's figures start after 3 */
static void busy_poll_config(pxt_proxy *px, int http, const char *value, int pack, bool start)
{
    char extra[256];
    snprintf(extra, sizeof(extra),
             "pool_mode = transaction\nworkers = 2\nworker_pack_clients = %d\n"
             "busy_poll_time = %s\nadmin_listen = 127.0.0.1:%d\n",
             pack, value, http);
    if (start)
        pxt_start(px, extra, NULL, NULL);
    else
        pxt_reload(px, extra, NULL);
}

static void run_selects(PGconn *c, int n, int gap_ms)
{
    for (int i = 0; i < n; i++) {
        if (gap_ms)
            usleep((useconds_t)gap_ms * 1000);
        assert_int_equal(pxt_int(c, "SELECT 1"), 1);
    }
}

/* after a reload to these settings, 300 serial queries must add no polling */
static void expect_no_polling(pxt_proxy *px, int http, PGconn *c, const char *poll_time, int pack,
                              const char *why)
{
    static const char *poll_series = "tusk_worker_busy_poll_seconds_total";
    busy_poll_config(px, http, poll_time, pack, false);
    run_selects(c, 3, 0);
    double p0 = worker_sum(http, poll_series);
    run_selects(c, 300, 0);
    double p1 = worker_sum(http, poll_series);
    if (p1 != p0)
        fail_msg("%s, yet the workers polled %.6f s", why, p1 - p0);
}

/* busy_poll_time: a serial client's round trips are polled through; a worker whose events come
 * further apart than busy_poll_time stops polling (the window adapts); with the load not
 * packed onto one worker, or busy_poll_time = 0 (both set by a reload), no worker polls */
static void test_busy_poll(void **state)
{
    (void)state;
    static const char *poll_series = "tusk_worker_busy_poll_seconds_total";
    int http = svc_free_port();
    pxt_proxy px;
    busy_poll_config(&px, http, "20ms", 16, true);
    PGconn *c = pxt_connect(&px, "tusk", "tusk", "tusk");

    /* back-to-back queries: every gap is far under 20 ms, so the worker polls through them */
    double p0 = worker_sum(http, poll_series);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    run_selects(c, 300, 0);
    double p1 = worker_sum(http, poll_series), wall = elapsed_since(&t0);
    /* each polled gap is the client's turnaround, a few us: 300 of them on a fast machine
     * add up to under 0.5 ms (0.47 ms seen), while a worker that never polls adds exactly 0 */
    if (!(p1 - p0 > 0.0001 && p1 - p0 < wall + 0.1))
        fail_msg("300 serial queries in %.3f s: the workers polled %.6f s", wall, p1 - p0);

    /* a query every 20 ms with busy_poll_time 2 ms: polling the full 2 ms after every answer
     * would add up to over 60 ms; the adapted window polls a quarter of it, once per query */
    busy_poll_config(&px, http, "2ms", 16, false);
    run_selects(c, 3, 0);
    p0 = worker_sum(http, poll_series);
    run_selects(c, 30, 20);
    p1 = worker_sum(http, poll_series);
    if (p1 - p0 > 0.040)
        fail_msg("30 queries 20 ms apart: the workers polled %.6f s (busy_poll_time 2 ms)",
                 p1 - p0);

    /* no packing (worker_pack_clients = 0): no loop is alone with the light load, none polls */
    expect_no_polling(&px, http, c, "20ms", 0, "worker_pack_clients = 0");
    /* busy_poll_time = 0: no polling at all */
    expect_no_polling(&px, http, c, "0", 16, "busy_poll_time = 0");
    PQfinish(c);
    pxt_stop(&px, SIGTERM);
}

/* a query by the simple protocol, or (extended) by PQsendQueryParams: unnamed Parse, Bind,
 * Describe, Execute, Sync */
static bool send_read(PGconn *c, const char *sql, bool extended)
{
    return extended ? PQsendQueryParams(c, sql, 0, NULL, NULL, NULL, NULL, 0) : PQsendQuery(c, sql);
}

/* pipeline_reads: with 2 servers and 8 busy clients, reads are sent behind other clients'
 * reads, up to depth of them. Every answer must reach its own client: each query names its
 * client and round, and some clients mix in errors, transactions, writes, session SETs and a
 * client that leaves while its read waits behind another (or between two others). extended:
 * the even clients' single statements go as extended-protocol batches, so both kinds queue
 * behind both kinds. */
static void pipeline_reads_run(bool extended, int depth)
{
    int http = svc_free_port();
    char extra[256];
    snprintf(extra, sizeof(extra),
             "pool_mode = transaction\ndefault_pool_size = 2\npipeline_reads = 1\n"
             "pipeline_depth = %d\nadmin_listen = 127.0.0.1:%d\n",
             depth, http);
    pxt_proxy px;
    pxt_start(&px, extra, NULL, NULL);
    enum { N = 8, ROUNDS = 150 };
    PGconn *c[N];
    for (int i = 0; i < N; i++)
        c[i] = pxt_connect(&px, "tusk", "tusk", "tusk");
    PGconn *setup = pxt_connect(&px, "tusk", "tusk", "tusk");
    pxt_exec(setup, "CREATE TABLE IF NOT EXISTS pxt_pipe (id int, v int)");
    PQfinish(setup);
    pxt_exec(c[5], "SET application_name = 'pipe5'"); /* its reads need its own setting */
    for (int round = 0; round < ROUNDS; round++) {
        char sql[N][160];
        for (int i = 0; i < N; i++) {
            if (i == 3 && round % 7 == 0)
                snprintf(sql[i], sizeof(sql[i]), "SELECT %d, %d, 1/0", i, round);
            else if (i == 4 && round % 5 == 0)
                snprintf(sql[i], sizeof(sql[i]),
                         "BEGIN; INSERT INTO pxt_pipe VALUES (%d, %d); SELECT %d, %d; COMMIT", i,
                         round, i, round);
            else if (i == 5)
                snprintf(sql[i], sizeof(sql[i]),
                         "SELECT %d, %d, current_setting('application_name')", i, round);
            else
                snprintf(sql[i], sizeof(sql[i]),
                         "SELECT %d, %d, count(*) FROM generate_series(1, 3000)", i, round);
            bool tx = i == 4 && round % 5 == 0; /* several statements: simple only */
            if (!send_read(c[i], sql[i], extended && i % 2 == 0 && !tx))
                fail_msg("send %d: %s", i, PQerrorMessage(c[i]));
        }
        for (int i = 0; i < N; i++) {
            PGresult *r;
            bool got = false;
            while ((r = PQgetResult(c[i]))) {
                ExecStatusType st = PQresultStatus(r);
                if (i == 3 && round % 7 == 0) {
                    assert_int_equal(st, PGRES_FATAL_ERROR);
                    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "22012");
                    got = true;
                } else if (st == PGRES_TUPLES_OK) {
                    if (atoi(PQgetvalue(r, 0, 0)) != i || atoi(PQgetvalue(r, 0, 1)) != round)
                        fail_msg("client %d round %d got the answer of client %s round %s", i,
                                 round, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
                    if (i == 5)
                        assert_string_equal(PQgetvalue(r, 0, 2), "pipe5");
                    got = true;
                } else if (st != PGRES_COMMAND_OK) {
                    fail_msg("client %d round %d: %s", i, round, PQerrorMessage(c[i]));
                }
                PQclear(r);
            }
            assert_true(got);
        }
        if (round % 30 == 15) {
            /* a client that leaves while its read may be waiting behind another's, and
             * (pipeline_depth above 1) in front of others */
            PGconn *q = pxt_connect(&px, "tusk", "tusk", "tusk");
            for (int i = 0; i < N; i++) { /* the shape known fast from the rounds */
                send_read(c[i], "SELECT 0, 0, count(*) FROM generate_series(1, 9000)",
                          extended && i % 2 == 0);
                if (i == N / 2)
                    send_read(q, "SELECT 0, 0, count(*) FROM generate_series(1, 9000)", extended);
            }
            PQfinish(q);
            for (int i = 0; i < N; i++) {
                PGresult *r;
                while ((r = PQgetResult(c[i]))) {
                    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
                    PQclear(r);
                }
            }
        }
    }
    long long rows = pxt_int(c[0], "SELECT count(*) FROM pxt_pipe");
    assert_true(rows >= ROUNDS / 5);
    pxt_exec(c[0], "DROP TABLE pxt_pipe");
    double piped = pipelined_reads(http);
    if (piped < 10)
        fail_msg("only %g reads were pipelined", piped);
    double deep = pool_counter(http, "tusk_pipelined_deep_reads_total");
    if (depth == 1 && deep != 0)
        fail_msg("%g reads were sent behind two others with pipeline_depth = 1", deep);
    if (depth > 1 && deep < 5)
        fail_msg("only %g of %g pipelined reads went behind two others (pipeline_depth = %d)", deep,
                 piped, depth);
    for (int i = 0; i < N; i++)
        PQfinish(c[i]);
    assert_int_equal(pxt_stop(&px, SIGTERM), 0);
}

static void test_pipeline_reads(void **state)
{
    (void)state;
    pipeline_reads_run(false, 1);
}

static void test_pipeline_reads_deep(void **state)
{
    (void)state;
    pipeline_reads_run(false, 4); /* the most it takes */
}

static void test_pipeline_reads_extended(void **state)
{
    (void)state;
    pipeline_reads_run(true, 3);
}

/* pipeline_reads never queues a read behind a query whose shape runs slowly: the proxy keeps
 * recent run times per shape (literals left out) and pipelines only behind one that ran
 * under 1 ms its last times. One server, two clients: behind a fast shape reads are
 * pipelined; behind a slow one (same text but for the alias) none is. */
static void test_pipeline_guard(void **state)
{
    (void)state;
    int http = svc_free_port();
    char extra[256];
    snprintf(extra, sizeof(extra),
             "pool_mode = transaction\ndefault_pool_size = 1\npipeline_reads = 1\n"
             "workers = 1\nadmin_listen = 127.0.0.1:%d\n", /* both clients in one pool */
             http);
    pxt_proxy px;
    pxt_start(&px, extra, NULL, NULL);
    PGconn *a = pxt_connect(&px, "tusk", "tusk", "tusk");
    PGconn *b = pxt_connect(&px, "tusk", "tusk", "tusk");
    int round;
    for (round = 0; round < 300 && pipelined_reads(http) == 0; round++) {
        char qa[128], qb[64];
        snprintf(qa, sizeof(qa), "SELECT %d, count(*) AS fast FROM generate_series(1, 1000)",
                 round);
        snprintf(qb, sizeof(qb), "SELECT %d AS b", round);
        assert_true(PQsendQuery(a, qa) && PQsendQuery(b, qb));
        assert_int_equal(pxt_result_int(a), round);
        assert_int_equal(pxt_result_int(b), round);
    }
    if (pipelined_reads(http) == 0)
        fail_msg("no read was pipelined behind a fast one in %d rounds", round);
    double before = pipelined_reads(http);
    for (round = 0; round < 12; round++) {
        char qa[128], qb[64];
        snprintf(qa, sizeof(qa),
                 "SELECT %d, count(*) AS slow FROM generate_series(1, 3000), "
                 "pg_sleep(0.02)",
                 round);
        snprintf(qb, sizeof(qb), "SELECT %d AS b", round);
        assert_true(PQsendQuery(a, qa));
        usleep(3000); /* the slow one is running when the read comes */
        assert_true(PQsendQuery(b, qb));
        assert_int_equal(pxt_result_int(a), round);
        assert_int_equal(pxt_result_int(b), round);
    }
    double after = pipelined_reads(http);
    if (after != before)
        fail_msg("%g reads were pipelined behind a slow query", after - before);
    PQfinish(a);
    PQfinish(b);
    assert_int_equal(pxt_stop(&px, SIGTERM), 0);
}

/* the results of one pipeline-mode batch (up to its Sync): what they were, checked */
static void pipeline_batch(PGconn *c, ExecStatusType want, const char *what)
{
    PGresult *r;
    while ((r = PQgetResult(c))) {
        if (PQresultStatus(r) != want)
            fail_msg("%s: %s %s", what, PQresStatus(PQresultStatus(r)), PQerrorMessage(c));
        PQclear(r);
    }
    r = PQgetResult(c);
    assert_int_equal(PQresultStatus(r), PGRES_PIPELINE_SYNC);
    PQclear(r);
}

/* a cancel for a read waiting in line: sent when the read's turn comes (the sleep behind a
 * fast read is cancelled), or, with another read in line behind it (depth 2), dropped, as the
 * backend could be running that one's by the time it lands (the sleep completes, and so does
 * the read behind). An attempt whose reads did not go in line is run again. */
static void test_pipeline_cancel(void **state)
{
    (void)state;
    int http = svc_free_port();
    char extra[256];
    snprintf(extra, sizeof(extra),
             "pool_mode = transaction\ndefault_pool_size = 1\nworkers = 1\n"
             "pipeline_fast_time = 50ms\npipeline_depth = 2\nadmin_listen = 127.0.0.1:%d\n",
             http);
    pxt_proxy px;
    pxt_start(&px, extra, NULL, NULL);
    PGconn *a = pxt_connect(&px, "tusk", "tusk", "tusk");
    PGconn *b = pxt_connect(&px, "tusk", "tusk", "tusk");
    PGconn *c = pxt_connect(&px, "tusk", "tusk", "tusk");
    PGcancel *bc = PQgetCancel(b);
    assert_non_null(bc);
    int sent = 0, dropped = 0;
    for (int attempt = 0; attempt < 16 && (!sent || !dropped); attempt++) {
        bool behind = attempt % 2 == 1; /* c's read goes in line behind b's */
        char q[128];
        for (int i = 0; i < 6; i++) { /* a's and b's shapes of this attempt: known fast */
            snprintf(q, sizeof(q), "SELECT count(*) AS a%d FROM generate_series(1, %d)", attempt,
                     10 + i);
            assert_int_equal(pxt_int(a, q), 10 + i);
            snprintf(q, sizeof(q), "SELECT 7 AS b%d FROM pg_sleep(0)", attempt);
            assert_int_equal(pxt_int(b, q), 7);
        }
        double before = pipelined_reads(http);
        snprintf(q, sizeof(q), "SELECT count(*) AS a%d FROM generate_series(1, 1000000)", attempt);
        assert_true(PQsendQuery(a, q));
        usleep(300);
        snprintf(q, sizeof(q), "SELECT 7 AS b%d FROM pg_sleep(%s)", attempt, behind ? "0.3" : "3");
        assert_true(PQsendQuery(b, q));
        if (behind) {
            usleep(300);
            assert_true(PQsendQuery(c, "SELECT 5"));
        }
        usleep(2000);
        char err[256];
        assert_int_equal(PQcancel(bc, err, sizeof(err)), 1);
        double t0 = svc_now_ms();
        assert_int_equal(pxt_result_int(a), 1000000);
        PGresult *r = PQgetResult(b);
        ExecStatusType st = PQresultStatus(r);
        const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        bool cancelled = st == PGRES_FATAL_ERROR && code && strcmp(code, "57014") == 0;
        if (!cancelled && st != PGRES_TUPLES_OK)
            fail_msg("attempt %d: %s", attempt, PQerrorMessage(b));
        PQclear(r);
        while ((r = PQgetResult(b)))
            PQclear(r);
        double took = (svc_now_ms() - t0) / 1000.0;
        if (behind)
            assert_int_equal(pxt_result_int(c), 5);
        double piped = pipelined_reads(http) - before;
        if (piped < (behind ? 2 : 1))
            continue; /* not in line: the cancel found b waiting for the server, or idle */
        if (!behind) {
            if (!cancelled || took > 2.0)
                fail_msg("attempt %d: the waiting read was not cancelled at its turn (%.2f s)",
                         attempt, took);
            sent++;
        } else {
            if (cancelled)
                fail_msg("attempt %d: a cancel was sent with another read in line behind", attempt);
            dropped++;
        }
    }
    if (!sent || !dropped)
        fail_msg("in 16 attempts: %d with the read alone in line, %d with one behind it", sent,
                 dropped);
    PQfreeCancel(bc);
    PQfinish(a);
    PQfinish(b);
    PQfinish(c);
    assert_int_equal(pxt_stop(&px, SIGTERM), 0);
}

/* the answer to "SELECT now() = statement_timestamp()": true in a transaction of its own */
static void expect_own_transaction(PGconn *c, int round)
{
    PGresult *r = PQgetResult(c);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    if (strcmp(PQgetvalue(r, 0, 0), "t") != 0)
        fail_msg("round %d: the waiting read ran inside another client's transaction", round);
    PQclear(r);
    while ((r = PQgetResult(c)))
        PQclear(r);
}

/* a client whose read waits in line sends a BEGIN behind it (libpq pipeline mode); a third
 * client waiting for the pool's one server must not be linked behind that BEGIN when the
 * server passes to the second: its read would run inside the second's transaction. The
 * third read asks whether it ran in a transaction of its own. */
static void test_pipeline_not_behind_begin(void **state)
{
    (void)state;
    char extra[160];
    snprintf(extra, sizeof(extra),
             "pool_mode = transaction\ndefault_pool_size = 1\nworkers = 1\n"
             "pipeline_fast_time = 50ms\n");
    pxt_proxy px;
    pxt_start(&px, extra, NULL, NULL);
    PGconn *a = pxt_connect(&px, "tusk", "tusk", "tusk");
    PGconn *b = pxt_connect(&px, "tusk", "tusk", "tusk");
    PGconn *c = pxt_connect(&px, "tusk", "tusk", "tusk");
    for (int i = 0; i < 6; i++) { /* b's shape known fast */
        char q[96];
        snprintf(q, sizeof(q), "SELECT %d AS b", i);
        assert_int_equal(pxt_int(b, q), i);
    }
    assert_int_equal(PQenterPipelineMode(b), 1);
    int waited = 0;
    for (int round = 0; round < 20; round++) {
        /* a's read: a shape of the round's own, known fast (its long run marks it slow) */
        char q[96];
        for (int i = 0; i < 6; i++) {
            snprintf(q, sizeof(q), "SELECT count(*) AS a%d FROM generate_series(1, %d)", round,
                     10 + i);
            assert_int_equal(pxt_int(a, q), 10 + i);
        }
        snprintf(q, sizeof(q), "SELECT count(*) AS a%d FROM generate_series(1, 1500000)", round);
        assert_true(PQsendQuery(a, q));
        usleep(300);
        snprintf(q, sizeof(q), "SELECT %d AS b", round);
        assert_true(PQsendQueryParams(b, q, 0, NULL, NULL, NULL, NULL, 0));
        assert_true(PQpipelineSync(b));
        assert_true(PQsendQueryParams(b, "BEGIN", 0, NULL, NULL, NULL, NULL, 0));
        assert_true(PQpipelineSync(b));
        usleep(10 * 1000); /* b's BEGIN is on the server; a's read still runs */
        assert_true(PQsendQuery(c, "SELECT now() = statement_timestamp()"));
        assert_int_equal(pxt_result_int(a), 1500000);
        pipeline_batch(b, PGRES_TUPLES_OK, "the read in line");
        pipeline_batch(b, PGRES_COMMAND_OK, "the BEGIN behind it");
        /* c waits for b's transaction to end; it may have answered already only if its read
         * went in line before b's BEGIN (a loaded machine delayed that), in a transaction of
         * its own */
        usleep(50 * 1000);
        assert_int_equal(PQconsumeInput(c), 1);
        bool early = !PQisBusy(c);
        if (early)
            expect_own_transaction(c, round);
        assert_true(PQsendQueryParams(b, "COMMIT", 0, NULL, NULL, NULL, NULL, 0));
        assert_true(PQpipelineSync(b));
        pipeline_batch(b, PGRES_COMMAND_OK, "COMMIT");
        if (!early) {
            expect_own_transaction(c, round);
            waited++;
        }
    }
    if (waited < 5)
        fail_msg("the third read waited for the BEGIN's transaction in only %d of 20 rounds",
                 waited);
    PQfinish(a);
    PQfinish(b);
    PQfinish(c);
    assert_int_equal(pxt_stop(&px, SIGTERM), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prepared_across_pool),
        cmocka_unit_test(test_session_semantics),
        cmocka_unit_test(test_transaction_semantics),
        cmocka_unit_test(test_pool_exhaustion),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_server_killed),
        cmocka_unit_test(test_graceful_shutdown),
        cmocka_unit_test(test_pgbench_prepared),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_unreachable_server),
        cmocka_unit_test(test_prepared_lru),
        cmocka_unit_test(test_pipeline_reads),
        cmocka_unit_test(test_pipeline_reads_deep),
        cmocka_unit_test(test_pipeline_reads_extended),
        cmocka_unit_test(test_pipeline_not_behind_begin),
        cmocka_unit_test(test_pipeline_cancel),
        cmocka_unit_test(test_worker_metrics),
        cmocka_unit_test(test_busy_poll),
        cmocka_unit_test(test_steer),
        cmocka_unit_test(test_pipeline_guard),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
