/* Routing test fixture: see routed_proxy.h. */
#include "tests/router/routed_proxy.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>

static long long scalar(int port, const char *sql)
{
    char ci[128];
    snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%d dbname=tusk user=tusk password=tusk", port);
    PGconn *c = PQconnectdb(ci);
    long long v = -1;
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
            v = atoll(PQgetvalue(r, 0, 0));
        PQclear(r);
    }
    PQfinish(c);
    return v;
}

/* Tests before this one stop replicas, pause replay and load the primary: start from both
 * replicas up, replaying, and caught up with the primary, or routing would (rightly) go
 * elsewhere. Up to 30 s. */
bool routed_caught_up(const routed_proxy *rp)
{
    static const char lsn[] = "SELECT pg_current_wal_lsn() - '0/0'";
    static const char replayed[] =
        "SELECT CASE WHEN pg_is_wal_replay_paused() THEN -1 ELSE pg_last_wal_replay_lsn() - '0/0' "
        "END";
    double deadline = svc_now_ms() + 30000;
    long long want = scalar(rp->pport, lsn);
    while (want >= 0 && svc_now_ms() < deadline) {
        if (scalar(rp->r1port, replayed) >= want && scalar(rp->r2port, replayed) >= want)
            return true;
        usleep(50 * 1000);
    }
    fprintf(stderr, "routed_proxy: the replicas did not catch up with the primary in 30 s\n");
    return false;
}

bool routed_proxy_start(routed_proxy *rp, const char *extra_keys)
{
    return routed_proxy_start_n(rp, 2, extra_keys);
}

bool routed_proxy_start_n(routed_proxy *rp, int replicas, const char *extra_keys)
{
    rp->pport = svc_env_int("TUSK_PG_PRIMARY_PORT");
    rp->r1port = svc_env_int("TUSK_PG_REPLICA1_PORT");
    rp->r2port = svc_env_int("TUSK_PG_REPLICA2_PORT");
    if (!routed_caught_up(rp))
        return false;
    int port = svc_free_port();
    char ini[2048], list[64];
    if (replicas == 1)
        snprintf(list, sizeof(list), "127.0.0.1:%d", rp->r1port);
    else
        snprintf(list, sizeof(list), "127.0.0.1:%d,127.0.0.1:%d", rp->r1port, rp->r2port);
    snprintf(ini, sizeof(ini),
             "[databases]\n"
             "tusk = host=127.0.0.1 port=%d dbname=tusk user=tusk password=tusk replicas=%s\n"
             "[pgbouncer]\n"
             "listen_addr = 127.0.0.1\nlisten_port = %d\nunix_socket_dir =\n"
             "auth_type = trust\npool_mode = transaction\nworkers = 2\n%s",
             rp->pport, list, port, extra_keys ? extra_keys : "");
    if (!svc_start_role(&rp->proc, "proxy", ini, port))
        return false;
    usleep(400 * 1000); /* the monitors learn the roles */
    return true;
}

int routed_proxy_stop(routed_proxy *rp)
{
    int st = svc_stop_role(&rp->proc, 15);
    if (st != 0) {
        fprintf(stderr, "tusk proxy exited with status %d (sanitizer report?)\n", st);
        return -1;
    }
    return 0;
}

PGconn *routed_connect(int port)
{
    char ci[256];
    snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%d dbname=tusk user=tusk password=tusk", port);
    PGconn *c = PQconnectdb(ci);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("connect %d: %s", port, PQerrorMessage(c));
    return c;
}

void routed_exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
}

long long routed_stat(const routed_proxy *rp, const char *col)
{
    long long v = svc_admin_stat(rp->proc.port, "ROUTING", "tusk", col);
    if (v < 0)
        fail_msg("SHOW ROUTING has no %s for database tusk", col);
    return v;
}
