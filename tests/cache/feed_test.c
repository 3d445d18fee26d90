/* Tests for cache/feed.c against a real redis-server: Mastodon's add_to_feed/remove_from_feed
 * semantics (reblog aggregation and REBLOG_FALLOFF), trim at MAX_ITEMS, replay safety, the
 * missing-feed rule, paging with exact ids, regeneration markers and sharding. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/cache/harness.h"

static th_env env;
static th_env *e = &env;

/* ids of the Snowflake shape (ms << 16 | seq) so scores behave as in production */
static int64_t sid(int64_t n)
{
    return (1700000000000LL + n) << 16;
}

static int add(int64_t feed, int64_t id, int64_t reblog_of)
{
    int res = -9;
    assert_int_equal(cache_feed_add_many(e->c, CACHE_FEED_HOME, &feed, 1, id, reblog_of, 0, &res),
                     0);
    return res;
}

static int rem(int64_t feed, int64_t id, int64_t reblog_of)
{
    int res = -9;
    assert_int_equal(cache_feed_remove_many(e->c, CACHE_FEED_HOME, &feed, 1, id, reblog_of, &res),
                     0);
    return res;
}

static bool has(int64_t feed, int64_t id)
{
    return th_feed_has(e, CACHE_FEED_HOME, feed, id);
}

static bool set_has(const char *key, int64_t id)
{
    redisReply *r = redisCommand(e->r, "SISMEMBER %s %lld", key, (long long)id);
    bool v = r->integer == 1;
    freeReplyObject(r);
    return v;
}

static int64_t zscore_int(const char *key, int64_t member)
{
    redisReply *r = redisCommand(e->r, "ZSCORE %s %lld", key, (long long)member);
    int64_t v = r->type == REDIS_REPLY_STRING ? (int64_t)strtod(r->str, NULL) : -1;
    freeReplyObject(r);
    return v;
}

static void test_add_is_idempotent(void **state)
{
    const int64_t feed = 1;
    assert_int_equal(add(feed, sid(1), 0), CACHE_FEED_ADDED);
    assert_int_equal(add(feed, sid(1), 0), CACHE_FEED_SKIPPED);
    assert_int_equal(th_zcard(e, "feed:home:1"), 1);
    /* member and score are the status id */
    assert_int_equal(zscore_int("feed:home:1", sid(1)), (int64_t)(double)sid(1));
    assert_int_equal(rem(feed, sid(1), 0), 1);
    assert_int_equal(rem(feed, sid(1), 0), 0);
}

static void test_reblog_aggregation(void **state)
{
    const int64_t feed = 2;
    const int64_t orig = sid(100);
    assert_int_equal(add(feed, orig, 0), CACHE_FEED_ADDED);
    /* the original is among the newest REBLOG_FALLOFF: a reblog of it is skipped */
    assert_int_equal(add(feed, sid(101), orig), CACHE_FEED_SKIPPED);
    assert_false(has(feed, sid(101)));
    /* push the original down past the falloff */
    for (int i = 0; i < CACHE_REBLOG_FALLOFF; i++)
        assert_int_equal(add(feed, sid(200 + i), 0), CACHE_FEED_ADDED);
    /* now a reblog is inserted, under its own id, and tracked */
    const int64_t r1 = sid(300), r2 = sid(301), r3 = sid(302);
    assert_int_equal(add(feed, r1, orig), CACHE_FEED_ADDED);
    assert_true(has(feed, r1));
    assert_int_equal(zscore_int("feed:home:2:reblogs", orig), (int64_t)(double)r1);
    /* replaying the same reblog changes nothing */
    assert_int_equal(add(feed, r1, orig), CACHE_FEED_SKIPPED);
    assert_false(th_exists(e, "feed:home:2:reblogs:"
                              "0"));
    /* further reblogs hide behind the first, in the reblogs:<orig> set */
    char setkey[96];
    snprintf(setkey, sizeof(setkey), "feed:home:2:reblogs:%lld", (long long)orig);
    assert_int_equal(add(feed, r2, orig), CACHE_FEED_SKIPPED);
    assert_int_equal(add(feed, r3, orig), CACHE_FEED_SKIPPED);
    assert_false(has(feed, r2));
    assert_true(set_has(setkey, r2) && set_has(setkey, r3));
    /* deleting the shown reblog brings back the oldest hidden one */
    assert_int_equal(rem(feed, r1, orig), 1);
    assert_false(has(feed, r1));
    assert_true(has(feed, r2));
    assert_int_equal(zscore_int("feed:home:2:reblogs", orig), (int64_t)(double)r2);
    /* deleting a hidden reblog takes it out of the set (tusk: Mastodon leaves it there) */
    assert_int_equal(rem(feed, r3, orig), 0);
    assert_false(set_has(setkey, r3));
    /* deleting the original drops its tracking entirely */
    assert_int_equal(rem(feed, orig, 0), 1);
    assert_false(th_exists(e, setkey));
    assert_int_equal(zscore_int("feed:home:2:reblogs", orig), -1);
}

static void test_reblog_before_original(void **state)
{
    const int64_t feed = 3;
    const int64_t orig = sid(400), rb = sid(401);
    /* the reblog's delivery overtook the original's */
    assert_int_equal(add(feed, rb, orig), CACHE_FEED_ADDED);
    assert_int_equal(add(feed, orig, 0), CACHE_FEED_SKIPPED);
    assert_false(has(feed, orig));
    assert_true(has(feed, rb));
}

static void test_trim(void **state)
{
    const int64_t feed = 4;
    /* a reblog that will fall behind the falloff point */
    const int64_t old_orig = sid(1);
    const int64_t rb = sid(500);
    for (int i = 0; i < CACHE_REBLOG_FALLOFF + 1; i++)
        add(feed, sid(10 + i), 0);
    assert_int_equal(add(feed, rb, old_orig), CACHE_FEED_ADDED);
    assert_true(th_exists(e, "feed:home:4:reblogs"));
    /* 850 more, one by one: each insert trims like Mastodon's push_to_home */
    int64_t ids[850];
    for (int i = 0; i < 850; i++)
        ids[i] = sid(1000 + i);
    int *res = calloc(850, sizeof(int));
    assert_int_equal(cache_feed_add_statuses(e->c, CACHE_FEED_HOME, feed, ids, NULL, 850, 0, res),
                     0);
    for (int i = 0; i < 850; i++)
        assert_int_equal(res[i], CACHE_FEED_ADDED);
    free(res);
    assert_int_equal(th_zcard(e, "feed:home:4"), CACHE_MAX_ITEMS);
    /* the newest 800 remain */
    int64_t got[CACHE_MAX_ITEMS + 5];
    size_t n = th_feed(e, CACHE_FEED_HOME, feed, got, CACHE_MAX_ITEMS + 5);
    assert_int_equal(n, CACHE_MAX_ITEMS);
    assert_int_equal(got[0], sid(1849));
    assert_int_equal(got[n - 1], sid(1050));
    /* the reblog tracking older than the REBLOG_FALLOFF'th entry is gone */
    assert_false(th_exists(e, "feed:home:4:reblogs"));
    /* trimming once at the end gives the same result */
    const int64_t feed2 = 5;
    assert_int_equal(cache_feed_add_statuses(e->c, CACHE_FEED_HOME, feed2, ids, NULL, 850,
                                             CACHE_ADD_TRIM_END, NULL),
                     0);
    assert_int_equal(th_zcard(e, "feed:home:5"), CACHE_MAX_ITEMS);
}

static void test_missing_feed_rule(void **state)
{
    const int64_t feeds[3] = {6, 7, 8};
    int res[3];
    /* 6 exists, 7 is being regenerated, 8 is absent */
    add(6, sid(1), 0);
    assert_int_equal(cache_regeneration_claim(e->c, CACHE_FEED_HOME, 7, 60), 1);
    assert_int_equal(cache_feed_state(e->c, CACHE_FEED_HOME, 6), CACHE_FEED_READY);
    assert_int_equal(cache_feed_state(e->c, CACHE_FEED_HOME, 7), CACHE_FEED_REGENERATING);
    assert_int_equal(cache_feed_state(e->c, CACHE_FEED_HOME, 8), CACHE_FEED_ABSENT);
    assert_int_equal(
        cache_feed_add_many(e->c, CACHE_FEED_HOME, feeds, 3, sid(2), 0, CACHE_ADD_IF_EXISTS, res),
        0);
    assert_int_equal(res[0], CACHE_FEED_ADDED);
    assert_int_equal(res[1], CACHE_FEED_ADDED);
    assert_int_equal(res[2], CACHE_FEED_MISSING);
    assert_false(th_exists(e, "feed:home:8"));
    /* only one claimer wins; release lets the next one in */
    assert_int_equal(cache_regeneration_claim(e->c, CACHE_FEED_HOME, 7, 60), 0);
    assert_int_equal(cache_feed_regenerating(e->c, CACHE_FEED_HOME, 7), 1);
    assert_true(th_exists(e, "account:7:regeneration"));
    assert_int_equal(cache_regeneration_release(e->c, CACHE_FEED_HOME, 7), 0);
    assert_int_equal(cache_feed_regenerating(e->c, CACHE_FEED_HOME, 7), 0);
    /* Mastodon 4.4's AsyncRefresh: "finished" stays an hour for clients polling the refresh,
     * and does not hold back fan-out nor the next claim */
    redisReply *r = redisCommand(e->r, "HGET account:7:regeneration status");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "finished");
    freeReplyObject(r);
    r = redisCommand(e->r, "TTL account:7:regeneration");
    assert_true(r->integer > 3500 && r->integer <= 3600);
    freeReplyObject(r);
    assert_int_equal(cache_feed_state(e->c, CACHE_FEED_HOME, 7), CACHE_FEED_READY);
    assert_int_equal(cache_regeneration_claim(e->c, CACHE_FEED_HOME, 7, 60), 1);
    assert_int_equal(cache_regeneration_abort(e->c, CACHE_FEED_HOME, 7), 0);
    assert_false(th_exists(e, "account:7:regeneration"));
    /* the plain string of older versions counts as running */
    freeReplyObject(redisCommand(e->r, "SET account:8:regeneration true EX 60"));
    assert_int_equal(cache_feed_regenerating(e->c, CACHE_FEED_HOME, 8), 1);
    assert_int_equal(cache_feed_state(e->c, CACHE_FEED_HOME, 8), CACHE_FEED_REGENERATING);
    assert_int_equal(cache_regeneration_claim(e->c, CACHE_FEED_HOME, 8, 60), 0);
    freeReplyObject(redisCommand(e->r, "DEL account:8:regeneration"));
    assert_int_equal(cache_regeneration_claim(e->c, CACHE_FEED_LIST, 7, 60), 1);
    assert_true(th_exists(e, "list:7:regeneration"));
}

static void test_range_exact_ids(void **state)
{
    const int64_t feed = 9;
    /* 40 ids inside one millisecond: many share a double score */
    int64_t base = sid(5000);
    for (int i = 0; i < 40; i++)
        add(feed, base + i, 0);
    int64_t out[64];
    size_t n;
    assert_int_equal(cache_feed_range(e->c, CACHE_FEED_HOME, feed, 0, 0, 0, 10, out, &n), 0);
    assert_int_equal(n, 10);
    assert_int_equal(out[0], base + 39);
    assert_int_equal(out[9], base + 30);
    /* max_id is exclusive and exact */
    assert_int_equal(cache_feed_range(e->c, CACHE_FEED_HOME, feed, base + 20, 0, 0, 5, out, &n), 0);
    assert_int_equal(n, 5);
    assert_int_equal(out[0], base + 19);
    assert_int_equal(out[4], base + 15);
    /* since_id: newest first, above it */
    assert_int_equal(cache_feed_range(e->c, CACHE_FEED_HOME, feed, 0, base + 37, 0, 10, out, &n),
                     0);
    assert_int_equal(n, 2);
    assert_int_equal(out[0], base + 39);
    assert_int_equal(out[1], base + 38);
    /* min_id: the ones just above it, answered newest first */
    assert_int_equal(cache_feed_range(e->c, CACHE_FEED_HOME, feed, 0, 0, base + 10, 3, out, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(out[0], base + 13);
    assert_int_equal(out[2], base + 11);
    /* members in full, oldest first */
    int64_t *all;
    size_t cnt;
    assert_int_equal(cache_feed_members(e->c, CACHE_FEED_HOME, feed, &all, &cnt), 0);
    assert_int_equal(cnt, 40);
    assert_int_equal(all[0], base);
    free(all);
}

static void test_clean(void **state)
{
    const int64_t feed = 10;
    for (int i = 0; i < CACHE_REBLOG_FALLOFF; i++)
        add(feed, sid(10 + i), 0);
    add(feed, sid(100), sid(1));
    add(feed, sid(101), sid(1)); /* hidden: creates the reblogs:<id> set */
    char setkey[96];
    snprintf(setkey, sizeof(setkey), "feed:home:10:reblogs:%lld", (long long)sid(1));
    assert_true(th_exists(e, setkey));
    assert_int_equal(cache_feed_clean(e->c, CACHE_FEED_HOME, &feed, 1), 0);
    assert_false(th_exists(e, "feed:home:10"));
    assert_false(th_exists(e, "feed:home:10:reblogs"));
    assert_false(th_exists(e, setkey));
}

static void test_noscript_recovery(void **state)
{
    /* an operator flushed the script cache: the next call reloads and succeeds */
    redisReply *r = redisCommand(e->r, "SCRIPT FLUSH");
    freeReplyObject(r);
    assert_int_equal(add(11, sid(1), 0), CACHE_FEED_ADDED);
    r = redisCommand(e->r, "SCRIPT FLUSH");
    freeReplyObject(r);
    assert_int_equal(cache_feed_trim(e->c, CACHE_FEED_HOME, 11), 0);
}

static void test_redis_down_is_an_error(void **state)
{
    cache_config cfg;
    char err[128];
    cache_config_init(&cfg);
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", svc_free_port());
    cache_config_set(&cfg, "redis_url", url, err, sizeof(err));
    cache *c = cache_open(&cfg);
    int64_t feed = 1;
    int res;
    assert_int_equal(cache_feed_add_many(c, CACHE_FEED_HOME, &feed, 1, 5, 0, 0, &res), -1);
    assert_int_equal(cache_feed_state(c, CACHE_FEED_HOME, 1), -1);
    cache_close(c);
}

/* two redis-servers as redis_feeds: every key of a feed lands on cache_shard_of's choice */
static void test_sharding(void **state)
{
    th_env second;
    th_setup(&second, "feedshard", true, 0);
    cache_config cfg;
    char err[128], urls[300];
    cache_config_init(&cfg);
    snprintf(urls, sizeof(urls), "%.128s,%.128s", e->redis_url, second.redis_url);
    assert_int_equal(cache_config_set(&cfg, "redis_feeds", urls, err, sizeof(err)), 1);
    cache *c = cache_open(&cfg);
    int64_t feeds[64];
    int res[64];
    for (int i = 0; i < 64; i++)
        feeds[i] = 1000 + i;
    assert_int_equal(cache_feed_add_many(c, CACHE_FEED_HOME, feeds, 64, sid(9), 0, 0, res), 0);
    int on[2] = {0, 0};
    for (int i = 0; i < 64; i++) {
        assert_int_equal(res[i], CACHE_FEED_ADDED);
        int s = cache_shard_of(2, feeds[i]);
        on[s]++;
        th_env *holder = s == 0 ? e : &second;
        th_env *other = s == 0 ? &second : e;
        assert_true(th_feed_has(holder, CACHE_FEED_HOME, feeds[i], sid(9)));
        assert_false(th_feed_has(other, CACHE_FEED_HOME, feeds[i], sid(9)));
    }
    assert_true(on[0] > 10 && on[1] > 10);
    /* removal finds them on the same shards */
    assert_int_equal(cache_feed_remove_many(c, CACHE_FEED_HOME, feeds, 64, sid(9), 0, res), 0);
    for (int i = 0; i < 64; i++)
        assert_int_equal(res[i], 1);
    cache_close(c);
    th_teardown(&second);
}

static int setup(void **state)
{
    th_setup(e, "feed", true, 0);
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
        cmocka_unit_test(test_add_is_idempotent),
        cmocka_unit_test(test_reblog_aggregation),
        cmocka_unit_test(test_reblog_before_original),
        cmocka_unit_test(test_trim),
        cmocka_unit_test(test_missing_feed_rule),
        cmocka_unit_test(test_range_exact_ids),
        cmocka_unit_test(test_clean),
        cmocka_unit_test(test_noscript_recovery),
        cmocka_unit_test(test_redis_down_is_an_error),
        cmocka_unit_test(test_sharding),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
