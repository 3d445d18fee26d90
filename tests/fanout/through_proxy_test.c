/*
 * End-to-end data path of a post through the routed proxy (design §1-§2): the test writes a
 * status and its outbox row through "tusk proxy" (primary + both replicas), "tusk fanout"
 * reads followers through the same proxy and LISTENs on the primary. With replay paused on
 * both replicas the follower list exists only on the primary, so the status reaches the
 * follower's home feed only if fanout's SET tusk.min_lsn made the proxy wait and fall back
 * to the primary; after replay resumes, fanout's reads must be served by the replicas.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fanout/fanout.h"
#include "tests/cache/harness.h"

static th_env env;
static svc_proc proxy;
static char *userlist_path; /* the proxy's auth_file, removed at teardown */
static bool proxy_running;
static PGconn *primary_pg; /* the harness's direct connection, put back for teardown */

/* pause (true) or resume replay on one replica, as postgres straight on the node */
static bool replay_set(const char *port_env, bool pause)
{
    char ci[256];
    snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%s user=postgres dbname=postgres",
             svc_env(port_env));
    PGconn *c = PQconnectdb(ci);
    bool ok = PQstatus(c) == CONNECTION_OK;
    if (ok) {
        PGresult *r =
            PQexec(c, pause ? "SELECT pg_wal_replay_pause()" : "SELECT pg_wal_replay_resume()");
        ok = PQresultStatus(r) == PGRES_TUPLES_OK;
        if (!ok)
            fprintf(stderr, "replay %s on %s: %s", pause ? "pause" : "resume", port_env,
                    PQerrorMessage(c));
        PQclear(r);
    }
    PQfinish(c);
    return ok;
}

/* rows in follows as a replica sees them, straight on the node (-1 on error) */
static int64_t replica_follows(const char *port_env)
{
    char ci[256];
    snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%s user=postgres dbname=%s", svc_env(port_env),
             env.dbname);
    PGconn *c = PQconnectdb(ci);
    int64_t n = -1;
    PGresult *r = PQexec(c, "SELECT (SELECT count(*) FROM follows),"
                            " pg_get_wal_replay_pause_state() = 'paused'");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 1), "t") == 0)
        n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    PQfinish(c);
    return n;
}

/* wait until a replica has really paused (the pause takes effect at the next WAL record) */
static int64_t paused_follows(const char *port_env)
{
    for (int i = 0; i < 500; i++) {
        int64_t n = replica_follows(port_env);
        if (n >= 0)
            return n;
        usleep(10000);
    }
    return -1;
}

static PGconn *connect_proxy(const char *db)
{
    char ci[256];
    snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%d dbname=%s user=tusk password=tusk", proxy.port,
             db);
    PGconn *c = PQconnectdb(ci);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("connect proxy %s: %s", db, PQerrorMessage(c));
    return c;
}

/* SHOW ROUTING column col for this test's database, from the admin console */
static int64_t routing_stat(const char *col)
{
    int64_t v = svc_admin_stat(proxy.port, "ROUTING", env.dbname, col);
    assert_true(v >= 0);
    return v;
}

/* both replicas checked and taking reads (a fresh proxy learns roles and lag first) */
static bool replicas_up(int ms)
{
    double deadline = svc_now_ms() + ms;
    for (;;) {
        PGconn *a = connect_proxy("pgbouncer");
        PGresult *r = PQexec(a, "SHOW REPLICAS");
        int up = 0, ri = PQfnumber(r, "role"), si = PQfnumber(r, "state"),
            di = PQfnumber(r, "database");
        for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++)
            up += strcmp(PQgetvalue(r, i, di), env.dbname) == 0 &&
                  strcmp(PQgetvalue(r, i, ri), "replica") == 0 &&
                  strcmp(PQgetvalue(r, i, si), "up") == 0;
        PQclear(r);
        PQfinish(a);
        if (up == 2)
            return true;
        if (svc_now_ms() > deadline)
            return false;
        usleep(50 * 1000);
    }
}

static bool wait_feed(int64_t who, int64_t status, int ms)
{
    double deadline = svc_now_ms() + ms;
    while (svc_now_ms() < deadline) {
        if (th_feed_has(&env, CACHE_FEED_HOME, who, status))
            return true;
        usleep(20000);
    }
    return false;
}

static int setup(void **state)
{
    (void)state;
    th_setup(&env, "fanout_proxy", true, 0);
    char *userlist = svc_write_temp(".txt", "\"tusk\" \"tusk\"\n");
    int port = svc_free_port();
    char ini[2048];
    snprintf(ini, sizeof(ini),
             "[databases]\n"
             "%s = host=127.0.0.1 port=%s dbname=%s user=tusk password=tusk "
             "replicas=127.0.0.1:%s,127.0.0.1:%s\n"
             "[pgbouncer]\n"
             "listen_addr = 127.0.0.1\nlisten_port = %d\nunix_socket_dir =\n"
             "auth_type = scram-sha-256\nauth_file = %s\nadmin_users = tusk\n"
             "pool_mode = transaction\nworkers = 2\nreplica_wait_ms = 200\n",
             env.dbname, svc_env("TUSK_PG_PRIMARY_PORT"), env.dbname,
             svc_env("TUSK_PG_REPLICA1_PORT"), svc_env("TUSK_PG_REPLICA2_PORT"), port, userlist);
    userlist_path = userlist;
    if (!svc_start_role(&proxy, "proxy", ini, port))
        return -1;
    proxy_running = true;
    usleep(400 * 1000); /* the monitors learn the roles */
    /* the test's own SQL goes through the proxy, like the api's */
    primary_pg = env.pg;
    env.pg = connect_proxy(env.dbname);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    bool ok = replay_set("TUSK_PG_REPLICA1_PORT", false);
    ok &= replay_set("TUSK_PG_REPLICA2_PORT", false);
    if (env.fanout_running && th_fanout_stop(&env, SIGTERM) != 0) {
        fprintf(stderr, "tusk fanout exited badly\n");
        ok = false;
    }
    if (primary_pg) {
        PQfinish(env.pg);
        env.pg = primary_pg;
    }
    if (proxy_running && svc_stop_role(&proxy, SIGTERM) != 0) {
        fprintf(stderr, "tusk proxy exited badly (sanitizer report?)\n");
        ok = false;
    }
    if (userlist_path) {
        unlink(userlist_path);
        free(userlist_path);
        userlist_path = NULL;
    }
    th_teardown(&env);
    return ok ? 0 : -1;
}

/* a status posted the api's way: row and outbox row in one write transaction */
static int64_t post_through_proxy(int64_t author)
{
    int64_t id = th_post(&env, author, NULL, true);
    const char *lsn = PQparameterStatus(env.pg, "tusk.commit_lsn");
    assert_non_null(lsn);
    assert_non_null(strchr(lsn, '/'));
    /* the proxy announces "0/0" at login: after a write it must be the real commit LSN */
    assert_string_not_equal(lsn, "0/0");
    return id;
}

static void test_post_reaches_follower(void **state)
{
    (void)state;
    /* fanout reads through the proxy, LISTENs on the primary */
    char extra[768];
    snprintf(extra, sizeof(extra), "listen_database = %s\n", env.dsn);
    char saved[sizeof(env.dsn)];
    memcpy(saved, env.dsn, sizeof(saved));
    snprintf(env.dsn, sizeof(env.dsn), "host=127.0.0.1 port=%d dbname=%s user=tusk password=tusk",
             proxy.port, env.dbname);
    th_fanout_start(&env, extra);
    memcpy(env.dsn, saved, sizeof(saved));

    /* 1: both replicas behind; the follow exists only on the primary */
    assert_true(replicas_up(10000)); /* else reads go to the primary as "unhealthy" */
    assert_true(replay_set("TUSK_PG_REPLICA1_PORT", true));
    assert_true(replay_set("TUSK_PG_REPLICA2_PORT", true));
    int64_t follower = th_account(&env, "follower", true, true);
    int64_t author = th_account(&env, "author", true, true);
    th_follow(&env, follower, author, true, NULL);
    /* an active user's feed exists: the follower posted once, then the feed was built */
    th_post(&env, follower, NULL, false);
    th_build_feed(&env, CACHE_FEED_HOME, follower);
    char key[64];
    snprintf(key, sizeof(key), "feed:home:%lld", (long long)follower);
    assert_true(th_exists(&env, key));
    /* server side: both replicas are paused and miss the follow */
    assert_int_equal(paused_follows("TUSK_PG_REPLICA1_PORT"), 0);
    assert_int_equal(paused_follows("TUSK_PG_REPLICA2_PORT"), 0);
    int64_t floor0 = routing_stat("reads_primary_floor");
    int64_t s1 = post_through_proxy(author);
    double t0 = svc_now_ms();
    bool got1 = wait_feed(follower, s1, 5000);
    fprintf(stderr, "paused replicas: status %lld %s after %.0f ms\n", (long long)s1,
            got1 ? "delivered" : "NOT delivered", svc_now_ms() - t0);
    if (!got1) {
        svc_dump_log(&env.fanout);
        fprintf(
            stderr, "outbox unsent %lld, floor reads %lld, replica reads %lld\n",
            (long long)th_scalar(&env, "SELECT count(*) FROM tusk_outbox WHERE sent_at IS NULL"),
            (long long)routing_stat("reads_primary_floor"),
            (long long)routing_stat("reads_replica"));
    }
    assert_true(got1);
    /* the replicas still miss the follow: the follower list was read on the primary */
    assert_int_equal(replica_follows("TUSK_PG_REPLICA1_PORT"), 0);
    assert_int_equal(replica_follows("TUSK_PG_REPLICA2_PORT"), 0);
    /* fanout's floored reads could not use the paused replicas */
    int64_t floor1 = routing_stat("reads_primary_floor");
    fprintf(
        stderr, "reads_primary_floor %lld -> %lld (unhealthy %lld, replica %lld, writes %lld)\n",
        (long long)floor0, (long long)floor1, (long long)routing_stat("reads_primary_unhealthy"),
        (long long)routing_stat("reads_replica"), (long long)routing_stat("writes"));
    assert_true(floor1 > floor0);

    /* 2: replicas catch up; fanout's reads go to them again */
    assert_true(replay_set("TUSK_PG_REPLICA1_PORT", false));
    assert_true(replay_set("TUSK_PG_REPLICA2_PORT", false));
    assert_true(th_wait_idle(&env, 5000));
    int64_t rep0 = routing_stat("reads_replica");
    int64_t s2 = post_through_proxy(author);
    t0 = svc_now_ms();
    bool got2 = wait_feed(follower, s2, 5000);
    fprintf(stderr, "replicas live: status %lld %s after %.0f ms\n", (long long)s2,
            got2 ? "delivered" : "NOT delivered", svc_now_ms() - t0);
    assert_true(got2);
    assert_true(th_feed_has(&env, CACHE_FEED_HOME, follower, s1));
    int64_t rep1 = routing_stat("reads_replica");
    fprintf(stderr, "reads_replica %lld -> %lld\n", (long long)rep0, (long long)rep1);
    assert_true(rep1 > rep0);
}

int main(void)
{
    if (!getenv("TUSK_PG_PRIMARY_PORT") || !getenv("TUSK_PG_REPLICA2_PORT"))
        return 77;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_post_reaches_follower),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
