/*
 * Fixture shared by the routing integration tests: a "tusk proxy" in transaction mode whose
 * database "tusk" has the services' primary and both replicas, with trust auth.
 */
#ifndef TUSK_TEST_ROUTED_PROXY_H
#define TUSK_TEST_ROUTED_PROXY_H

#include "tests/support/support.h"

#include <libpq-fe.h>

typedef struct routed_proxy {
    svc_proc proc;
    int pport, r1port, r2port; /* the servers' ports */
} routed_proxy;

/* start the proxy; extra_keys are more [pgbouncer] lines ("key = value\n..."); waits until
 * the lag monitors know the nodes' roles. false (with the proxy's log printed) on failure. */
bool routed_proxy_start(routed_proxy *rp, const char *extra_keys);
/* the same with only the first replica (replicas = 1) or both (2) */
bool routed_proxy_start_n(routed_proxy *rp, int replicas, const char *extra_keys);
/* a connection to 127.0.0.1:port, database and user tusk; fails the running test if refused */
PGconn *routed_connect(int port);
/* run sql; fails the running test unless it succeeds */
void routed_exec(PGconn *c, const char *sql);

/* both replicas replaying and caught up with the primary's current WAL position (up to 30 s):
 * what a test created on the primary is on the replicas too */
bool routed_caught_up(const routed_proxy *rp);
/* a SHOW ROUTING column for database tusk, from the admin console (admin_users = tusk) */
long long routed_stat(const routed_proxy *rp, const char *col);

/* SIGTERM the proxy; -1 (with a message) unless it exited 0, so sanitizer reports fail */
int routed_proxy_stop(routed_proxy *rp);

#endif
