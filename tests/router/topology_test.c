/*
 * Integration test of router/topology.c against the real primary and two streaming replicas:
 * roles are found, lag is 0 on an idle caught-up replica, rises while replay is paused (and
 * the replica is excluded over the threshold), falls back after resume; a stopped replica is
 * marked down and banned, and comes back when started again.
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

#include "common/common.h"
#include "router/router.h"
#include "tests/support/support.h"

static PGconn *connect_port(int port)
{
    char ci[256];
    snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%d dbname=tusk user=postgres", port);
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

/* wait up to ms for cond on node i; returns whether it held */
#define WAIT_FOR(ms, cond)                                                                         \
    ({                                                                                             \
        double _dl = svc_now_ms() + (ms);                                                          \
        bool _ok = false;                                                                          \
        while (svc_now_ms() < _dl) {                                                               \
            if (cond) {                                                                            \
                _ok = true;                                                                        \
                break;                                                                             \
            }                                                                                      \
            usleep(10000);                                                                         \
        }                                                                                          \
        _ok;                                                                                       \
    })

static router_topology *topo;
static int ports[3];

static int setup(void **state)
{
    ports[0] = svc_env_int("TUSK_PG_PRIMARY_PORT");
    ports[1] = svc_env_int("TUSK_PG_REPLICA1_PORT");
    ports[2] = svc_env_int("TUSK_PG_REPLICA2_PORT");
    const char *hosts[3] = {"127.0.0.1", "127.0.0.1", "127.0.0.1"};
    router_topology_config cfg = {.conninfo_extra = "dbname=tusk user=postgres",
                                  .lag_poll_ms = 50,
                                  .max_replica_lag_ms = 300,
                                  .ban_ms = 200};
    topo = router_topology_new(&cfg, 3, hosts, ports, NULL);
    assert_non_null(topo);
    assert_int_equal(router_topology_start(topo, NULL, NULL), 0);
    return 0;
}

static int teardown(void **state)
{
    router_topology_free(topo);
    return 0;
}

/* replay runs on replica1 again whether the test passed or failed: the tests after this
 * program's (the routing fixtures wait for both replicas to replay) must not inherit a pause */
static int resume_replay(void **state)
{
    (void)state;
    PGconn *rc = connect_port(ports[1]);
    PGresult *r = PQexec(rc, "SELECT pg_wal_replay_resume()");
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    PQfinish(rc);
    return ok ? 0 : -1;
}

static void test_roles_and_idle_lag(void **state)
{
    router_node *r1 = router_topology_node(topo, 1), *r2 = router_topology_node(topo, 2);
    assert_true(WAIT_FOR(5000, atomic_load(&r1->state) == ROUTER_NODE_UP &&
                                   atomic_load(&r2->state) == ROUTER_NODE_UP));
    assert_int_equal(atomic_load(&router_topology_node(topo, 0)->role), ROUTER_ROLE_PRIMARY);
    assert_int_equal(atomic_load(&r1->role), ROUTER_ROLE_REPLICA);
    assert_int_equal(router_topology_primary(topo), 0);
    /* idle for a while: a caught-up replica's lag stays 0 however long nothing is written */
    usleep(1200 * 1000);
    assert_true(WAIT_FOR(2000, atomic_load(&r1->lag_ms) == 0 && atomic_load(&r2->lag_ms) == 0));
    assert_int_equal(atomic_load(&r1->lag_bytes), 0);
    assert_true(router_topology_pick_replica(topo, router_topology_primary_lsn(topo)) > 0);
}

static void test_paused_replay_excluded(void **state)
{
    router_node *r1 = router_topology_node(topo, 1);
    PGconn *p = connect_port(ports[0]), *rc = connect_port(ports[1]);
    exec_ok(p, "CREATE TABLE IF NOT EXISTS topo_t (id serial primary key, v text)");
    exec_ok(rc, "SELECT pg_wal_replay_pause()");
    for (int i = 0; i < 20; i++) {
        exec_ok(p, "INSERT INTO topo_t (v) VALUES (repeat('x', 1000))");
        usleep(50000);
    }
    /* lag rises in bytes and time, and over 300 ms the replica takes no reads */
    assert_true(WAIT_FOR(3000, atomic_load(&r1->lag_bytes) > 0));
    assert_true(WAIT_FOR(3000, atomic_load(&r1->lag_ms) > 300));
    assert_true(WAIT_FOR(3000, atomic_load(&r1->state) == ROUTER_NODE_LAGGING));
    /* the other replica has the floor once its next poll sees the last insert (on a loaded
     * machine that may be after the primary's sample) */
    uint64_t floor = router_topology_primary_lsn(topo);
    assert_true(WAIT_FOR(3000, router_topology_pick_replica(topo, floor) == 2));
    for (int i = 0; i < 10; i++)
        assert_int_equal(router_topology_pick_replica(topo, floor), 2);
    exec_ok(rc, "SELECT pg_wal_replay_resume()");
    assert_true(
        WAIT_FOR(5000, atomic_load(&r1->state) == ROUTER_NODE_UP && atomic_load(&r1->lag_ms) == 0));
    PQfinish(p);
    PQfinish(rc);
}

static void test_want_lsn_polls_fast(void **state)
{
    PGconn *p = connect_port(ports[0]);
    exec_ok(p, "INSERT INTO topo_t (v) VALUES ('rw')");
    PGresult *r = PQexec(p, "SELECT pg_current_wal_lsn()");
    uint64_t lsn;
    assert_true(router_parse_lsn(PQgetvalue(r, 0, 0), &lsn));
    PQclear(r);
    double t0 = svc_now_ms();
    router_topology_want_lsn(topo, lsn, router_now_ms() + 1000);
    assert_true(WAIT_FOR(1000, router_topology_pick_replica(topo, lsn) > 0));
    /* with fast polling the floor is seen well under the 50 ms poll period plus replay */
    double waited = svc_now_ms() - t0;
    print_message("replica reached the floor after %.1f ms\n", waited);
    assert_true(waited < 200);
    PQfinish(p);
}

static void test_stopped_replica_banned(void **state)
{
    router_node *r2 = router_topology_node(topo, 2);
    assert_int_equal(svc_node("stop", "replica2"), 0);
    assert_true(WAIT_FOR(5000, atomic_load(&r2->state) == ROUTER_NODE_DOWN));
    assert_true(atomic_load(&r2->banned_until_ms) > 0);
    for (int i = 0; i < 10; i++)
        assert_int_not_equal(router_topology_pick_replica(topo, 0), 2);
    assert_int_equal(svc_node("start", "replica2"), 0);
    assert_true(WAIT_FOR(15000, atomic_load(&r2->state) == ROUTER_NODE_UP &&
                                    atomic_load(&r2->banned_until_ms) == 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roles_and_idle_lag),
        cmocka_unit_test_teardown(test_paused_replay_excluded, resume_replay),
        cmocka_unit_test(test_want_lsn_polls_fast),
        cmocka_unit_test(test_stopped_replica_banned),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
