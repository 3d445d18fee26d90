/*
 * Integration: the data path through "tusk proxy" with libpq against the real primary:
 * simple and extended queries, pipeline mode with an error inside, COPY both ways, rows and
 * parameters larger than 1 MB, errors in the middle of a transaction, cancel, NOTICE and
 * NOTIFY, the unix socket.
 */
#include "tests/proxy/pxtest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

static pxt_proxy px;

static int setup(void **state)
{
    (void)state;
    pxt_start(&px, "pool_mode = transaction\ndefault_pool_size = 4\n", NULL, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pxt_stop(&px, SIGTERM);
    return 0;
}

static void test_simple(void **state)
{
    (void)state;
    PGconn *c = pxt_connect(&px, "tusk", "tusk", "tusk");
    assert_int_equal(pxt_int(c, "SELECT 41 + 1"), 42);
    /* several statements in one Query: the last result wins */
    assert_int_equal(pxt_int(c, "SELECT 1; SELECT 2; SELECT 3"), 3);
    /* empty query */
    PGresult *r = PQexec(c, "");
    assert_int_equal(PQresultStatus(r), PGRES_EMPTY_QUERY);
    PQclear(r);
    /* server parameters reached the client */
    assert_non_null(PQparameterStatus(c, "server_version"));
    assert_string_equal(PQparameterStatus(c, "client_encoding"), "UTF8");
    assert_true(PQbackendPID(c) != 0);
    PQfinish(c);
}

static void notice_rx(void *arg, const PGresult *res)
{
    int *n = arg;
    const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    if (m && strcmp(m, "hello from the server") == 0)
        (*n)++;
}

static void test_notice(void **state)
{
    (void)state;
    PGconn *c = pxt_connect(&px, "tusk", "tusk", "tusk");
    int got = 0;
    PQsetNoticeReceiver(c, notice_rx, &got);
    pxt_exec(c, "DO $$BEGIN RAISE NOTICE 'hello from the server'; END$$");
    assert_int_equal(got, 1);
    PQfinish(c);
}

static void test_extended(void **state)
{
    (void)state;
    PGconn *c = pxt_connect(&px, "tusk", "tusk", "tusk");
    const char *vals[2] = {"20", "22"};
    PGresult *r =
        PQexecParams(c, "SELECT $1::int + $2::int, $1::text || 'x'", 2, NULL, vals, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "42");
    assert_string_equal(PQgetvalue(r, 0, 1), "20x");
    PQclear(r);
    /* binary result */
    r = PQexecParams(c, "SELECT 258::int4", 0, NULL, NULL, NULL, NULL, 1);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQgetlength(r, 0, 0), 4);
    const unsigned char *b = (const unsigned char *)PQgetvalue(r, 0, 0);
    assert_int_equal(b[2], 1);
    assert_int_equal(b[3], 2);
    PQclear(r);
    /* named statement: prepare, describe, execute many times */
    r = PQprepare(c, "add1", "SELECT $1::int + 1", 1, NULL);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    r = PQdescribePrepared(c, "add1");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    assert_int_equal(PQnparams(r), 1);
    assert_int_equal(PQnfields(r), 1);
    PQclear(r);
    for (int i = 0; i < 50; i++) {
        char v[16];
        snprintf(v, sizeof(v), "%d", i);
        const char *p[1] = {v};
        r = PQexecPrepared(c, "add1", 1, p, NULL, NULL, 0);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        assert_int_equal(atoi(PQgetvalue(r, 0, 0)), i + 1);
        PQclear(r);
    }
    /* a statement that does not exist: the server's error */
    r = PQexecPrepared(c, "nope", 0, NULL, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "26000");
    PQclear(r);
    /* a bad statement fails to prepare, and the connection goes on */
    r = PQprepare(c, "bad", "SELEC 1", 0, NULL);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    PQclear(r);
    assert_int_equal(pxt_int(c, "SELECT 7"), 7);
    PQfinish(c);
}

static void test_pipeline(void **state)
{
    (void)state;
    PGconn *c = pxt_connect(&px, "tusk", "tusk", "tusk");
    assert_int_equal(PQenterPipelineMode(c), 1);
    const int n = 200;
    for (int i = 0; i < n; i++) {
        char v[16];
        snprintf(v, sizeof(v), "%d", i);
        const char *p[1] = {v};
        const char *sql = i == 120 ? "SELECT 1 / ($1::int - 120)" : "SELECT $1::int * 2";
        assert_int_equal(PQsendQueryParams(c, sql, 1, NULL, p, NULL, NULL, 0), 1);
        if (i == 99)
            assert_int_equal(PQpipelineSync(c), 1);
    }
    assert_int_equal(PQpipelineSync(c), 1);
    int ok = 0, failed = 0, aborted = 0, syncs = 0;
    for (int i = 0; i < n + 2;) {
        PGresult *r = PQgetResult(c);
        if (!r)
            continue; /* end of one query's results */
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_TUPLES_OK) {
            assert_int_equal(atoi(PQgetvalue(r, 0, 0)), 2 * (i - syncs));
            ok++;
        } else if (st == PGRES_FATAL_ERROR) {
            assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "22012");
            failed++;
        } else if (st == PGRES_PIPELINE_ABORTED) {
            aborted++;
        } else if (st == PGRES_PIPELINE_SYNC) {
            syncs++;
        } else {
            fail_msg("unexpected status %s", PQresStatus(st));
        }
        PQclear(r);
        i++;
    }
    assert_int_equal(ok, 120);
    assert_int_equal(failed, 1);
    assert_int_equal(aborted, n - 121);
    assert_int_equal(syncs, 2);
    assert_int_equal(PQexitPipelineMode(c), 1);
    assert_int_equal(pxt_int(c, "SELECT 5"), 5);
    PQfinish(c);
}

static void test_copy(void **state)
{
    (void)state;
    PGconn *c = pxt_connect(&px, "tusk", "tusk", "tusk");
    char table[64];
    snprintf(table, sizeof(table), "pxt_copy_%d", (int)getpid());
    char sql[256];
    snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s; CREATE TABLE %s (a int, b text)", table,
             table);
    pxt_exec(c, sql);
    snprintf(sql, sizeof(sql), "COPY %s FROM STDIN", table);
    PGresult *r = PQexec(c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_COPY_IN);
    PQclear(r);
    char line[128];
    for (int i = 0; i < 20000; i++) {
        int l = snprintf(line, sizeof(line), "%d\trow number %d with some padding text\n", i, i);
        assert_int_equal(PQputCopyData(c, line, l), 1);
    }
    assert_int_equal(PQputCopyEnd(c, NULL), 1);
    r = PQgetResult(c);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    assert_string_equal(PQcmdTuples(r), "20000");
    PQclear(r);
    while ((r = PQgetResult(c)))
        PQclear(r);
    /* COPY OUT */
    snprintf(sql, sizeof(sql), "COPY %s TO STDOUT", table);
    r = PQexec(c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_COPY_OUT);
    PQclear(r);
    int rows = 0;
    long long sum = 0;
    char *buf;
    int l;
    while ((l = PQgetCopyData(c, &buf, 0)) > 0) {
        sum += atoi(buf);
        rows++;
        PQfreemem(buf);
    }
    assert_int_equal(l, -1);
    r = PQgetResult(c);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    while ((r = PQgetResult(c)))
        PQclear(r);
    assert_int_equal(rows, 20000);
    assert_true(sum == 19999LL * 20000 / 2);
    /* COPY FROM STDIN that the client aborts */
    snprintf(sql, sizeof(sql), "COPY %s FROM STDIN", table);
    r = PQexec(c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_COPY_IN);
    PQclear(r);
    assert_int_equal(PQputCopyData(c, "1\tx\n", 4), 1);
    assert_int_equal(PQputCopyEnd(c, "changed my mind"), 1);
    r = PQgetResult(c);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    PQclear(r);
    while ((r = PQgetResult(c)))
        PQclear(r);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
    assert_int_equal(pxt_int(c, sql), 20000);
    snprintf(sql, sizeof(sql), "DROP TABLE %s", table);
    pxt_exec(c, sql);
    PQfinish(c);
}

static void test_large_rows(void **state)
{
    (void)state;
    PGconn *c = pxt_connect(&px, "tusk", "tusk", "tusk");
    /* a 3 MB row from the server */
    PGresult *r = PQexec(c, "SELECT repeat('x', 3000000), 'tail'");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQgetlength(r, 0, 0), 3000000);
    assert_string_equal(PQgetvalue(r, 0, 1), "tail");
    PQclear(r);
    /* a 2 MB parameter to the server */
    size_t n = 2u << 20;
    char *big = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    big[n] = 0;
    const char *p[1] = {big};
    r = PQexecParams(c,
                     "SELECT length($1::text), $1::text = repeat('abcdefghijklmnopqrstuvwxyz', "
                     "80659) || 'abcdefghijklmnopqr'",
                     1, NULL, p, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(atoi(PQgetvalue(r, 0, 0)), (int)n);
    assert_string_equal(PQgetvalue(r, 0, 1), "t");
    PQclear(r);
    /* a 2 MB simple query */
    char *q = malloc(n + 64);
    int l = snprintf(q, n + 64, "SELECT length('%s')", big);
    (void)l;
    assert_int_equal(pxt_int(c, q), (int)n);
    free(q);
    free(big);
    /* many rows */
    assert_int_equal(pxt_int(c, "SELECT count(*) FROM (SELECT repeat('y', 1000) FROM "
                                "generate_series(1, 20000)) s"),
                     20000);
    r = PQexec(c, "SELECT repeat('z', 1000) FROM generate_series(1, 5000)");
    assert_int_equal(PQntuples(r), 5000);
    PQclear(r);
    assert_int_equal(pxt_int(c, "SELECT 1"), 1);
    PQfinish(c);
}

static void test_error_mid_transaction(void **state)
{
    (void)state;
    PGconn *c = pxt_connect(&px, "tusk", "tusk", "tusk");
    pxt_exec(c, "BEGIN");
    assert_int_equal(PQtransactionStatus(c), PQTRANS_INTRANS);
    char *st = pxt_error(c, "SELECT 1/0");
    assert_string_equal(st, "22012");
    free(st);
    assert_int_equal(PQtransactionStatus(c), PQTRANS_INERROR);
    st = pxt_error(c, "SELECT 1");
    assert_string_equal(st, "25P02");
    free(st);
    pxt_exec(c, "ROLLBACK");
    assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);
    assert_int_equal(pxt_int(c, "SELECT 2"), 2);
    /* an error in an extended-protocol batch */
    const char *v[1] = {"0"};
    PGresult *r = PQexecParams(c, "SELECT 1 / $1::int", 1, NULL, v, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    PQclear(r);
    assert_int_equal(pxt_int(c, "SELECT 3"), 3);
    PQfinish(c);
}

static void test_cancel(void **state)
{
    (void)state;
    PGconn *c = pxt_connect(&px, "tusk", "tusk", "tusk");
    /* cancel while idle: ignored */
    PGcancel *cn = PQgetCancel(c);
    char err[256];
    assert_int_equal(PQcancel(cn, err, sizeof(err)), 1);
    assert_int_equal(pxt_int(c, "SELECT 11"), 11);
    double t0 = svc_now_ms();
    assert_int_equal(PQsendQuery(c, "SELECT pg_sleep(20)"), 1);
    usleep(300 * 1000);
    assert_int_equal(PQcancel(cn, err, sizeof(err)), 1);
    PGresult *r = PQgetResult(c);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "57014");
    PQclear(r);
    while ((r = PQgetResult(c)))
        PQclear(r);
    assert_true(svc_now_ms() - t0 < 5000);
    assert_int_equal(pxt_int(c, "SELECT 12"), 12);
    PQfreeCancel(cn);
    /* a bogus key: nothing happens to anybody */
    PGconn *c2 = pxt_connect(&px, "tusk", "tusk", "tusk");
    int fd = pxt_raw_connect(px.port);
    uint8_t pkt[16] = {0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e, 1, 2, 3, 4, 5, 6, 7, 8};
    pxt_raw_send(fd, pkt, sizeof(pkt));
    assert_true(pxt_raw_eof(fd, 2000));
    close(fd);
    assert_int_equal(pxt_int(c2, "SELECT 13"), 13);
    PQfinish(c2);
    PQfinish(c);
}

static void test_session_notify_and_unix_socket(void **state)
{
    (void)state;
    char dir[] = "/tmp/tusk-pxt-sock-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char extra[256];
    snprintf(extra, sizeof(extra), "pool_mode = session\nunix_socket_dir = %s\n", dir);
    pxt_proxy sp;
    pxt_start(&sp, extra, NULL, NULL);
    char ci[512];
    snprintf(ci, sizeof(ci), "host=%s port=%d user=tusk password=tusk dbname=tusk", dir, sp.port);
    PGconn *l = PQconnectdb(ci);
    assert_int_equal(PQstatus(l), CONNECTION_OK);
    pxt_exec(l, "LISTEN pxt_channel");
    PGconn *t = pxt_connect(&sp, "tusk", "tusk", "tusk");
    pxt_exec(t, "NOTIFY pxt_channel, 'payload-1'");
    PGnotify *n = NULL;
    double t0 = svc_now_ms();
    while (!n && svc_now_ms() - t0 < 3000) {
        PQconsumeInput(l);
        n = PQnotifies(l);
        if (!n)
            usleep(20000);
    }
    assert_non_null(n);
    assert_string_equal(n->relname, "pxt_channel");
    assert_string_equal(n->extra, "payload-1");
    PQfreemem(n);
    PQfinish(t);
    PQfinish(l);
    pxt_stop(&sp, SIGTERM);
    rmdir(dir);
}

static void test_tls(void **state)
{
    (void)state;
    char dir[] = "/tmp/tusk-pxt-tls-XXXXXX";
    assert_non_null(mkdtemp(dir));
    int rc = svc_sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s/key.pem -out "
                    "%s/cert.pem -days 2 -subj /CN=localhost >/dev/null 2>&1",
                    dir, dir);
    if (rc != 0)
        skip();
    char extra[512];
    snprintf(extra, sizeof(extra),
             "pool_mode = transaction\nclient_tls_sslmode = require\n"
             "client_tls_key_file = %s/key.pem\nclient_tls_cert_file = %s/cert.pem\n"
             "server_tls_sslmode = prefer\n",
             dir, dir);
    pxt_proxy tp;
    pxt_start(&tp, extra, NULL, NULL);
    PGconn *c = pxt_try_connect(tp.port, "tusk", "tusk", "tusk", "sslmode=require");
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("TLS connect: %s", PQerrorMessage(c));
    assert_int_equal(PQsslInUse(c), 1);
    assert_int_equal(pxt_int(c, "SELECT 21 * 2"), 42);
    /* a big answer and a big request through TLS */
    PGresult *r = PQexec(c, "SELECT repeat('t', 2500000)");
    assert_int_equal(PQgetlength(r, 0, 0), 2500000);
    PQclear(r);
    size_t n = 1u << 20;
    char *big = malloc(n + 1);
    memset(big, 'q', n);
    big[n] = 0;
    const char *p[1] = {big};
    r = PQexecParams(c, "SELECT length($1::text)", 1, NULL, p, NULL, NULL, 0);
    assert_int_equal(atoi(PQgetvalue(r, 0, 0)), (int)n);
    PQclear(r);
    free(big);
    PQfinish(c);
    /* plaintext is refused with sslmode = require */
    c = pxt_try_connect(tp.port, "tusk", "tusk", "tusk", NULL);
    assert_int_not_equal(PQstatus(c), CONNECTION_OK);
    assert_non_null(strstr(PQerrorMessage(c), "SSL required"));
    PQfinish(c);
    pxt_stop(&tp, SIGTERM);
    svc_sh("rm -rf %s", dir);
}

/* the primary with TLS on (a certificate for "localhost" only), for test_server_tls */
static bool primary_tls(const char *dir, bool on)
{
    PGconn *d = pxt_direct("tusk");
    char sql[512];
    if (on) {
        snprintf(sql, sizeof(sql), "ALTER SYSTEM SET ssl_cert_file = '%s/srv.pem'", dir);
        pxt_exec(d, sql);
        snprintf(sql, sizeof(sql), "ALTER SYSTEM SET ssl_key_file = '%s/srv.key'", dir);
        pxt_exec(d, sql);
        pxt_exec(d, "ALTER SYSTEM SET ssl = on");
    } else {
        pxt_exec(d, "ALTER SYSTEM RESET ssl");
        pxt_exec(d, "ALTER SYSTEM RESET ssl_cert_file");
        pxt_exec(d, "ALTER SYSTEM RESET ssl_key_file");
    }
    PGresult *r = PQexec(d, "SELECT pg_reload_conf()");
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    PQfinish(d);
    /* the reload is asynchronous: wait until new sessions see it */
    for (int i = 0; ok && i < 100; i++) {
        d = pxt_direct("tusk");
        char *v = pxt_value(d, "SHOW ssl");
        bool done = strcmp(v, on ? "on" : "off") == 0;
        free(v);
        PQfinish(d);
        if (done)
            return true;
        usleep(50 * 1000);
    }
    return false;
}

/* a login through the proxy fails because the server's certificate was refused */
static void expect_certificate_refused(int port, const char *db)
{
    PGconn *c = pxt_try_connect(port, "tusk", "tusk", db, NULL);
    assert_int_not_equal(PQstatus(c), CONNECTION_OK);
    if (!strstr(PQerrorMessage(c), "certificate"))
        fail_msg("expected a certificate error, got: %s", PQerrorMessage(c));
    PQfinish(c);
}

/* towards servers: TLS is really used (pg_stat_ssl on the server), verify-ca checks the chain,
 * verify-full the host name or address, and a refused certificate is reported with its
 * reason */
static void test_server_tls(void **state)
{
    (void)state;
    char dir[] = "/tmp/tusk-pxt-stls-XXXXXX";
    assert_non_null(mkdtemp(dir));
    int rc = svc_sh("cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout srv.key -out "
                    "srv.pem -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost "
                    ">/dev/null 2>&1 && openssl req -x509 -newkey rsa:2048 -nodes -keyout "
                    "other.key -out other.pem -days 2 -subj /CN=other >/dev/null 2>&1 && "
                    "chmod 755 . && chmod 600 srv.key && chown postgres srv.key srv.pem",
                    dir);
    if (rc != 0)
        skip();
    int pg = svc_env_int("TUSK_PG_PRIMARY_PORT");
    assert_true(primary_tls(dir, true));
    char dbs[512];
    snprintf(dbs, sizeof(dbs),
             "by_name = host=localhost port=%d dbname=tusk\n"
             "by_addr = host=127.0.0.1 port=%d dbname=tusk\n",
             pg, pg);
    char extra[512];
    snprintf(extra, sizeof(extra),
             "pool_mode = transaction\nserver_tls_sslmode = verify-full\n"
             "server_tls_ca_file = %s/srv.pem\nserver_connect_timeout = 3\n"
             "query_wait_timeout = 5\n",
             dir);
    pxt_proxy tp;
    pxt_start(&tp, extra, dbs, NULL);
    PGconn *c = pxt_connect(&tp, "tusk", "tusk", "by_name");
    char *ssl = pxt_value(c, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
    assert_string_equal(ssl, "t");
    free(ssl);
    PGresult *r = PQexec(c, "SELECT repeat('s', 3000000)");
    assert_int_equal(PQgetlength(r, 0, 0), 3000000);
    PQclear(r);
    PQfinish(c);
    /* the certificate names localhost, not 127.0.0.1: verify-full refuses the address */
    expect_certificate_refused(tp.port, "by_addr");
    pxt_stop(&tp, SIGTERM);

    /* verify-ca with another CA: refused; require: encrypted without checks */
    snprintf(extra, sizeof(extra),
             "pool_mode = transaction\nserver_tls_sslmode = verify-ca\n"
             "server_tls_ca_file = %s/other.pem\nserver_connect_timeout = 3\n"
             "query_wait_timeout = 5\n",
             dir);
    pxt_start(&tp, extra, dbs, NULL);
    expect_certificate_refused(tp.port, "by_name");
    pxt_stop(&tp, SIGTERM);
    pxt_start(&tp, "pool_mode = transaction\nserver_tls_sslmode = require\n", dbs, NULL);
    c = pxt_connect(&tp, "tusk", "tusk", "by_addr");
    ssl = pxt_value(c, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
    assert_string_equal(ssl, "t");
    free(ssl);
    PQfinish(c);
    pxt_stop(&tp, SIGTERM);

    assert_true(primary_tls(dir, false));
    /* require against a server without TLS: a clear error, not a hang */
    pxt_start(&tp,
              "pool_mode = transaction\nserver_tls_sslmode = require\n"
              "query_wait_timeout = 5\n",
              dbs, NULL);
    c = pxt_try_connect(tp.port, "tusk", "tusk", "by_addr", NULL);
    assert_int_not_equal(PQstatus(c), CONNECTION_OK);
    assert_non_null(strstr(PQerrorMessage(c), "server does not support TLS"));
    PQfinish(c);
    pxt_stop(&tp, SIGTERM);
    svc_sh("rm -rf %s", dir);
}

/* Debian's stock pgbouncer.ini, with only its paths, port and one database changed */
static void test_stock_pgbouncer_ini(void **state)
{
    (void)state;
    FILE *f = fopen("/etc/pgbouncer/pgbouncer.ini", "r");
    if (!f)
        skip();
    char *ul = svc_write_temp(".txt", "\"tusk_md5\" \"md5pass\"\n");
    int port = svc_free_port();
    size_t cap = 1 << 20, len = 0;
    char *out = malloc(cap);
    char line[4096];
    while (fgets(line, sizeof(line), f)) {
        char repl[4200];
        if (strncmp(line, "[databases]", 11) == 0)
            snprintf(repl, sizeof(repl), "%stusk = host=%s port=%d dbname=tusk\n", line,
                     svc_env("TUSK_PG_HOST"), svc_env_int("TUSK_PG_PRIMARY_PORT"));
        else if (strncmp(line, "logfile =", 9) == 0 || strncmp(line, "pidfile =", 9) == 0 ||
                 strncmp(line, "unix_socket_dir =", 17) == 0)
            snprintf(repl, sizeof(repl), ";%s", line);
        else if (strncmp(line, "listen_port =", 13) == 0)
            snprintf(repl, sizeof(repl), "listen_port = %d\nunix_socket_dir =\n", port);
        else if (strncmp(line, "auth_file =", 11) == 0)
            snprintf(repl, sizeof(repl), "auth_file = %s\n", ul);
        else
            snprintf(repl, sizeof(repl), "%s", line);
        size_t l = strlen(repl);
        assert_true(len + l < cap);
        memcpy(out + len, repl, l);
        len += l;
    }
    out[len] = 0;
    fclose(f);
    svc_proc p;
    if (!svc_start_role(&p, "proxy", out, port))
        fail_msg("the stock pgbouncer.ini did not start");
    pxt_track(p.pid);
    PGconn *c = pxt_try_connect(port, "tusk_md5", "md5pass", "tusk", NULL);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("connect: %s", PQerrorMessage(c));
    assert_int_equal(pxt_int(c, "SELECT 6 * 7"), 42);
    PQfinish(c);
    pid_t pid = p.pid;
    assert_int_equal(svc_stop_role(&p, SIGTERM), 0);
    pxt_untrack(pid);
    unlink(ul);
    free(ul);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple),
        cmocka_unit_test(test_notice),
        cmocka_unit_test(test_extended),
        cmocka_unit_test(test_pipeline),
        cmocka_unit_test(test_copy),
        cmocka_unit_test(test_large_rows),
        cmocka_unit_test(test_error_mid_transaction),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_session_notify_and_unix_socket),
        cmocka_unit_test(test_server_tls),
        cmocka_unit_test(test_tls),
        cmocka_unit_test(test_stock_pgbouncer_ini),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
