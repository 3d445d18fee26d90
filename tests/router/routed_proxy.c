/* Routing test fixture: see routed_proxy.h. */
#include "tests/router/routed_proxy.h"

#include <stdio.h>
#include <unistd.h>

bool routed_proxy_start(routed_proxy *rp, const char *extra_keys)
{
    rp->pport = svc_env_int("TUSK_PG_PRIMARY_PORT");
    rp->r1port = svc_env_int("TUSK_PG_REPLICA1_PORT");
    rp->r2port = svc_env_int("TUSK_PG_REPLICA2_PORT");
    int port = svc_free_port();
    char ini[2048];
    snprintf(ini, sizeof(ini),
             "[databases]\n"
             "tusk = host=127.0.0.1 port=%d dbname=tusk user=tusk password=tusk "
             "replicas=127.0.0.1:%d,127.0.0.1:%d\n"
             "[pgbouncer]\n"
             "listen_addr = 127.0.0.1\nlisten_port = %d\nunix_socket_dir =\n"
             "auth_type = trust\npool_mode = transaction\nworkers = 2\n%s",
             rp->pport, rp->r1port, rp->r2port, port, extra_keys ? extra_keys : "");
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
