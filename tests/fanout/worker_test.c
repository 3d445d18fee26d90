/* Tests for fanout/worker.c: a "tusk fanout" killed with SIGKILL in the middle of a big
 * fan-out; a second process takes the job over with XAUTOCLAIM, resumes at the page in
 * flight, and every feed ends up with the status exactly once and every streaming client
 * with exactly one update. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/cache/harness.h"

#define FOLLOWERS 3000
#define WATCHED 60

static th_env env;
static th_env *e = &env;

/* the current progress of the job ("stage:cursor"), 0 when none */
static int64_t progress_cursor(int *stage)
{
    redisReply *r = redisCommand(e->r, "KEYS tusk:progress:*");
    int64_t cur = 0;
    *stage = -1;
    if (r->elements == 1) {
        redisReply *v = redisCommand(e->r, "GET %s", r->element[0]->str);
        if (v->type == REDIS_REPLY_STRING) {
            long long c;
            if (sscanf(v->str, "%d:%lld", stage, &c) == 2)
                cur = c;
        }
        freeReplyObject(v);
    }
    freeReplyObject(r);
    return cur;
}

static void test_killed_worker_job_is_finished_by_another(void **state)
{
    int64_t author = th_account(e, "bigauthor", true, true);
    th_exec(e,
            "INSERT INTO accounts (username, created_at, updated_at)"
            " SELECT 'f' || g, now(), now() FROM generate_series(1, %d) g",
            FOLLOWERS);
    th_exec(e, "INSERT INTO users (account_id, email, created_at, updated_at, current_sign_in_at)"
               " SELECT id, username || '@t', now(), now(), timezone('UTC', now()) FROM accounts"
               " WHERE username LIKE 'f%%'");
    th_exec(e,
            "INSERT INTO follows (account_id, target_account_id, created_at, updated_at)"
            " SELECT id, %lld, now(), now() FROM accounts WHERE username LIKE 'f%%'",
            (long long)author);
    /* every follower is an active user with a feed */
    int64_t seed = th_post(e, author, NULL, false);
    PGresult *res = PQexec(e->pg, "SELECT id FROM accounts WHERE username LIKE 'f%' ORDER BY id");
    assert_int_equal(PQntuples(res), FOLLOWERS);
    int64_t *ids = malloc(FOLLOWERS * sizeof(*ids));
    for (int i = 0; i < FOLLOWERS; i++) {
        ids[i] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        redisAppendCommand(e->r, "ZADD feed:home:%lld %lld %lld", (long long)ids[i],
                           (long long)seed, (long long)seed);
    }
    PQclear(res);
    for (int i = 0; i < FOLLOWERS; i++) {
        void *r;
        assert_int_equal(redisGetReply(e->r, &r), REDIS_OK);
        freeReplyObject(r);
    }
    /* streaming clients on followers spread over the whole range */
    redisContext *sub = redisConnect("127.0.0.1", e->redis_port);
    redisReply *r = redisCommand(sub, "PSUBSCRIBE timeline:*");
    freeReplyObject(r);
    for (int i = 0; i < WATCHED; i++) {
        r = redisCommand(e->r, "SET subscribed:timeline:%lld 1 EX 600",
                         (long long)ids[i * (FOLLOWERS / WATCHED)]);
        freeReplyObject(r);
    }

    /* worker A: small pages, slowed down, and presumed dead after 800 ms of silence */
    svc_proc a;
    th_fanout_start_proc(e, &a,
                         "batch_size = 100\ndebug_page_delay_ms = 40\nclaim_idle_ms = 800\n"
                         "claim_interval_ms = 200\nqueues = default:1\n");
    int64_t status = th_post(e, author, NULL, true);
    /* kill it once a few pages are done */
    int stage = -1;
    int64_t cursor = 0;
    double deadline = svc_now_ms() + 15000;
    while (svc_now_ms() < deadline) {
        cursor = progress_cursor(&stage);
        if (stage == 1 && cursor >= ids[500])
            break;
        usleep(5000);
    }
    assert_int_equal(stage, 1);
    char *a_log = strdup(a.log_path);
    assert_int_equal(svc_stop_role(&a, SIGKILL), 128 + SIGKILL);
    unlink(a_log);
    free(a_log);
    int before = 0;
    for (int i = 0; i < FOLLOWERS; i++)
        before += th_feed_has(e, CACHE_FEED_HOME, ids[i], status);
    assert_true(before > 0 && before < FOLLOWERS);
    /* the job is still pending under A's consumer */
    r = redisCommand(e->r, "XPENDING tusk:queue:default tusk-fanout");
    assert_int_equal(r->element[0]->integer, 1);
    freeReplyObject(r);

    /* worker B takes it over */
    th_fanout_start(e, "claim_idle_ms = 800\nclaim_interval_ms = 200\n");
    if (!th_wait_idle(e, 30000)) {
        svc_dump_log(&e->fanout);
        fail_msg("job was not finished");
    }
    for (int i = 0; i < FOLLOWERS; i++) {
        if (!th_feed_has(e, CACHE_FEED_HOME, ids[i], status))
            fail_msg("follower %d (%lld) misses the status", i, (long long)ids[i]);
    }
    r = redisCommand(e->r, "XPENDING tusk:queue:default tusk-fanout");
    assert_int_equal(r->element[0]->integer, 0);
    freeReplyObject(r);
    /* every watched follower got exactly one update */
    struct timeval tv = {0, 500000};
    redisSetTimeout(sub, tv);
    int *count = calloc(WATCHED, sizeof(int));
    void *reply;
    while (redisGetReply(sub, &reply) == REDIS_OK) {
        redisReply *m = reply;
        int64_t ch = strtoll(m->element[2]->str + strlen("timeline:"), NULL, 10);
        for (int i = 0; i < WATCHED; i++)
            if (ids[i * (FOLLOWERS / WATCHED)] == ch)
                count[i]++;
        freeReplyObject(m);
    }
    for (int i = 0; i < WATCHED; i++)
        if (count[i] != 1)
            fail_msg("watched follower %d got %d updates", i, count[i]);
    /* B says it claimed and resumed rather than starting over */
    assert_int_equal(svc_sh("grep -q 'resuming' '%s'", e->fanout.log_path), 0);
    free(count);
    free(ids);
    redisFree(sub);
}

static int setup(void **state)
{
    th_setup(e, "worker", true, 0);
    return 0;
}

static int teardown(void **state)
{
    th_teardown(e);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_killed_worker_job_is_finished_by_another),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
