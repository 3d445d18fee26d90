/*
 * Integration test of tusk proxy following a promotion: on a private cluster (its own primary
 * and two replicas from scripts/services, so the shared one stays intact) the primary is
 * stopped and replica1 promoted; writes through the running proxy must reach the new primary
 * without a restart or reload, and reads keep working.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/support.h"

static char dir[64];
static int base;
static bool cluster_up;
static svc_proc proxy;

/* the port that ran sql through the proxy, -1 on error (a new connection each time) */
static int try_port(const char *sql)
{
    char ci[256];
    snprintf(ci, sizeof(ci),
             "host=127.0.0.1 port=%d dbname=tusk user=tusk password=tusk connect_timeout=3",
             proxy.port);
    PGconn *c = PQconnectdb(ci);
    int port = -1;
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
            port = atoi(PQgetvalue(r, 0, 0));
        PQclear(r);
    }
    PQfinish(c);
    return port;
}

static int node(const char *action, const char *name)
{
    return svc_sh("'%s/scripts/services' node '%s' %s %s >/dev/null 2>&1",
                  svc_env("TUSK_SOURCE_DIR"), dir, action, name);
}

static int setup(void **state)
{
    (void)state;
    /* five consecutive free ports: primary, replica1, replica2, redis, proxy (outgoing
     * connections of busy neighbours can hold every other port for a while: look further) */
    base = 0;
    for (int tries = 0; tries < 2000 && !base; tries++) {
        int b = svc_free_port();
        int got = 1;
        while (got < 5 && svc_claim_port(b + got))
            got++;
        if (got == 5)
            base = b;
        else
            while (--got >= 0)
                svc_release_port(b + got);
    }
    if (!base) {
        fprintf(stderr, "no five consecutive free ports: skipped\n");
        exit(77);
    }
    snprintf(dir, sizeof(dir), "/tmp/tusk-rt-failover-%d", base);
    if (svc_sh("'%s/scripts/services' start '%s' %d >/dev/null 2>&1", svc_env("TUSK_SOURCE_DIR"),
               dir, base) != 0) {
        fprintf(stderr, "cannot start a private cluster in %s\n", dir);
        return -1;
    }
    cluster_up = true;
    int port = base + 4;
    char ini[2048];
    snprintf(ini, sizeof(ini),
             "[databases]\n"
             "tusk = host=127.0.0.1 port=%d dbname=tusk user=tusk password=tusk "
             "replicas=127.0.0.1:%d,127.0.0.1:%d\n"
             "[pgbouncer]\n"
             "listen_addr = 127.0.0.1\nlisten_port = %d\nunix_socket_dir =\n"
             "auth_type = trust\npool_mode = transaction\nworkers = 2\n"
             "lag_poll_ms = 50\nserver_connect_timeout = 2\nserver_login_retry = 0.2\n",
             base, base + 1, base + 2, port);
    if (!svc_start_role(&proxy, "proxy", ini, port))
        return -1;
    usleep(400 * 1000);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    int rc = 0;
    if (proxy.pid > 0) {
        int st = svc_stop_role(&proxy, 15);
        if (st != 0)
            fprintf(stderr, "tusk proxy exited with status %d (sanitizer report?)\n", st);
        rc = st == 0 ? 0 : -1;
    }
    if (cluster_up) {
        svc_sh("'%s/scripts/services' stop '%s' >/dev/null 2>&1", svc_env("TUSK_SOURCE_DIR"), dir);
        svc_sh("rm -rf '%s'", dir);
    }
    return rc;
}

static void test_promotion(void **state)
{
    (void)state;
    assert_int_equal(try_port("CREATE TABLE failover_t (id serial, p int); "
                              "SELECT inet_server_port()"),
                     base);
    assert_int_equal(try_port("INSERT INTO failover_t (p) VALUES (inet_server_port()) "
                              "RETURNING p"),
                     base);
    int r = try_port("SELECT inet_server_port()");
    assert_true(r == base + 1 || r == base + 2);

    assert_int_equal(node("stop", "primary"), 0);
    assert_int_equal(node("promote", "replica1"), 0);
    double dl = svc_now_ms() + 20000;
    int p = -1;
    while (svc_now_ms() < dl) {
        p = try_port("INSERT INTO failover_t (p) VALUES (inet_server_port()) RETURNING p");
        if (p == base + 1)
            break;
        usleep(200 * 1000);
    }
    assert_int_equal(p, base + 1); /* the write reached the promoted replica */
    for (int i = 0; i < 10; i++) {
        int q = try_port("INSERT INTO failover_t (p) VALUES (inet_server_port()) RETURNING p");
        assert_int_equal(q, base + 1);
        q = try_port("SELECT inet_server_port()");
        assert_true(q == base + 1 || q == base + 2);
    }
}

int main(void)
{
    svc_env("TUSK_BIN");
    svc_env("TUSK_SOURCE_DIR");
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_promotion)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
