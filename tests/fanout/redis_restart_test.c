/* The shared Redis of the services is stopped while statuses are posted, then started again
 * empty (it keeps no data). Posts are accepted throughout; afterwards the relay sends the
 * waiting jobs, no feed is left half-filled (a lost feed stays absent instead of holding
 * only the newest statuses), and every feed a user reads is what PostgreSQL says it should
 * be. SERIAL: it stops a server other tests use. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/cache/harness.h"

#define NUSERS 8
#define POSTS 10

static th_env env;
static th_env *e = &env;
static bool redis_stopped;

/* what the home feed of u must hold (every user follows every other, no filters apply) */
static size_t expected(int64_t u, int64_t *out, size_t max)
{
    PGresult *r;
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT s.id FROM statuses s WHERE s.deleted_at IS NULL AND (s.account_id = %lld"
             " OR s.account_id IN (SELECT target_account_id FROM follows WHERE account_id = %lld))"
             " ORDER BY s.id DESC",
             (long long)u, (long long)u);
    r = PQexec(e->pg, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    size_t n = 0;
    for (int i = 0; i < PQntuples(r) && n < max; i++)
        out[n++] = strtoll(PQgetvalue(r, i, 0), NULL, 10);
    PQclear(r);
    return n;
}

static void test_redis_restart_while_posting(void **state)
{
    int64_t users[NUSERS];
    for (int i = 0; i < NUSERS; i++) {
        char name[32];
        snprintf(name, sizeof(name), "rr_%d", i);
        users[i] = th_account(e, name, true, true);
    }
    for (int i = 0; i < NUSERS; i++)
        for (int j = 0; j < NUSERS; j++)
            if (i != j)
                th_follow(e, users[i], users[j], true, NULL);
    for (int i = 0; i < NUSERS; i++) {
        th_post(e, users[i], NULL, false);
        th_build_feed(e, CACHE_FEED_HOME, users[i]);
    }
    th_fanout_start(e, "redis_connect_timeout_ms = 200\n");
    int64_t before = th_post(e, users[0], NULL, true);
    assert_true(th_wait_idle(e, 10000));
    assert_true(th_feed_has(e, CACHE_FEED_HOME, users[1], before));

    assert_int_equal(svc_node("stop", "redis"), 0);
    redis_stopped = true;
    for (int i = 0; i < POSTS; i++)
        th_post(e, users[i % NUSERS], NULL, true);
    usleep(300000);
    assert_int_equal(th_scalar(e, "SELECT count(*) FROM tusk_outbox WHERE sent_at IS NULL"), POSTS);
    assert_int_equal(svc_node("start", "redis"), 0);
    redis_stopped = false;
    th_redis_reconnect(e);
    if (!th_wait_idle(e, 20000)) {
        svc_dump_log(&e->fanout);
        fail_msg("jobs were not relayed after Redis came back");
    }
    /* Redis came back empty: the feeds are gone, and none was recreated half-full */
    for (int i = 0; i < NUSERS; i++)
        assert_int_equal(cache_feed_state(e->c, CACHE_FEED_HOME, users[i]), CACHE_FEED_ABSENT);
    /* reading rebuilds each from PostgreSQL: exactly the expected statuses */
    for (int i = 0; i < NUSERS; i++) {
        int64_t got[128], want[128];
        size_t ng = th_read_feed(e, CACHE_FEED_HOME, users[i], got, 128);
        size_t nw = expected(users[i], want, 128);
        assert_int_equal(ng, nw);
        for (size_t k = 0; k < nw; k++)
            assert_int_equal(got[k], want[k]);
    }
    /* and the fan-out keeps them current from now on */
    int64_t after = th_post(e, users[2], NULL, true);
    assert_true(th_wait_idle(e, 10000));
    for (int i = 0; i < NUSERS; i++)
        assert_true(th_feed_has(e, CACHE_FEED_HOME, users[i], after));
}

static int setup(void **state)
{
    th_setup(e, "redisrestart", false, 11);
    return 0;
}

static int teardown(void **state)
{
    if (redis_stopped)
        svc_node("start", "redis");
    redisReply *r = redisCommand(e->r, "FLUSHDB");
    if (r)
        freeReplyObject(r);
    th_teardown(e);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_restart_while_posting),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
