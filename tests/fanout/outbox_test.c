/* Tests for fanout/outbox.c: with Redis down, posts are still accepted (their outbox rows
 * wait), and when Redis returns the relay sends them and every feed ends up right; a relay
 * that sends rows twice (a crash between XADD and COMMIT) changes no feed and publishes
 * nothing twice. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/cache/harness.h"

#define NFOLLOWERS 12
#define OUTAGE_POSTS 20

static th_env env;
static th_env *e = &env;
static int64_t author, followers[NFOLLOWERS];
static int64_t posts[OUTAGE_POSTS + 1];

static void test_outage_without_data_loss(void **state)
{
    author = th_account(e, "ob_author", true, true);
    for (int i = 0; i < NFOLLOWERS; i++) {
        char name[32];
        snprintf(name, sizeof(name), "ob_f%d", i);
        followers[i] = th_account(e, name, true, true);
        th_follow(e, followers[i], author, true, NULL);
        th_post(e, followers[i], NULL, false);
        th_build_feed(e, CACHE_FEED_HOME, followers[i]);
    }
    th_post(e, author, NULL, false);
    th_build_feed(e, CACHE_FEED_HOME, author);
    th_fanout_start(e, "redis_connect_timeout_ms = 200\n");
    posts[0] = th_post(e, author, NULL, true);
    assert_true(th_wait_idle(e, 10000));
    assert_true(th_feed_has(e, CACHE_FEED_HOME, followers[0], posts[0]));

    /* Redis goes away (saving its data, as a persistent Redis does) */
    th_redis_stop(e, true);
    double t0 = svc_now_ms();
    for (int i = 1; i <= OUTAGE_POSTS; i++)
        posts[i] = th_post(e, author, &(th_status){.text = "during outage"}, true);
    /* posting did not wait for Redis */
    assert_true(svc_now_ms() - t0 < 5000);
    usleep(400000);
    assert_int_equal(th_scalar(e, "SELECT count(*) FROM tusk_outbox WHERE sent_at IS NULL"),
                     OUTAGE_POSTS);
    /* the fanout process rides it out */
    assert_int_equal(kill(e->fanout.pid, 0), 0);

    th_redis_start(e);
    if (!th_wait_idle(e, 20000)) {
        svc_dump_log(&e->fanout);
        fail_msg("outbox was not drained after Redis came back");
    }
    for (int f = 0; f < NFOLLOWERS; f++)
        for (int i = 0; i <= OUTAGE_POSTS; i++)
            if (!th_feed_has(e, CACHE_FEED_HOME, followers[f], posts[i]))
                fail_msg("follower %d misses post %d", f, i);
    for (int i = 0; i <= OUTAGE_POSTS; i++)
        assert_true(th_feed_has(e, CACHE_FEED_HOME, author, posts[i]));
    assert_int_equal(th_scalar(e, "SELECT count(*) FROM tusk_outbox WHERE sent_at IS NULL"), 0);
}

static void test_relayed_twice_changes_nothing(void **state)
{
    /* a streaming client on every follower */
    redisContext *sub = redisConnect("127.0.0.1", e->redis_port);
    redisReply *r = redisCommand(sub, "PSUBSCRIBE timeline:*");
    freeReplyObject(r);
    for (int i = 0; i < NFOLLOWERS; i++) {
        r = redisCommand(e->r, "SET subscribed:timeline:%lld 1 EX 600", (long long)followers[i]);
        freeReplyObject(r);
    }
    int64_t before[NFOLLOWERS];
    char key[64];
    for (int i = 0; i < NFOLLOWERS; i++) {
        cache_feed_key(key, sizeof(key), CACHE_FEED_HOME, followers[i]);
        before[i] = th_zcard(e, key);
    }
    /* the relay "crashed" after XADD: every row is sent again */
    th_exec(e, "UPDATE tusk_outbox SET sent_at = NULL");
    assert_true(th_wait_idle(e, 20000));
    for (int i = 0; i < NFOLLOWERS; i++) {
        cache_feed_key(key, sizeof(key), CACHE_FEED_HOME, followers[i]);
        assert_int_equal(th_zcard(e, key), before[i]);
    }
    /* a new post is the only thing published */
    int64_t fresh = th_post(e, author, NULL, true);
    assert_true(th_wait_idle(e, 10000));
    struct timeval tv = {0, 400000};
    redisSetTimeout(sub, tv);
    int updates = 0, public_updates = 0;
    void *reply;
    char want[64];
    snprintf(want, sizeof(want), "\"id\":\"%lld\"", (long long)fresh);
    while (redisGetReply(sub, &reply) == REDIS_OK) {
        redisReply *m = reply;
        assert_non_null(strstr(m->element[3]->str, want));
        if (strncmp(m->element[2]->str, "timeline:public", 15) == 0)
            public_updates++;
        else
            updates++;
        freeReplyObject(m);
    }
    assert_int_equal(updates, NFOLLOWERS);
    assert_int_equal(public_updates, 2); /* timeline:public and timeline:public:local */
    redisFree(sub);
}

static int setup(void **state)
{
    th_setup(e, "outbox", true, 0);
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
        cmocka_unit_test(test_outage_without_data_loss),
        cmocka_unit_test(test_relayed_twice_changes_nothing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
