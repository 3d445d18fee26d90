/* Tests for cache/redis.c: Redis URLs, the cache config keys and shard selection. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "cache/cache.h"

static void test_url_parse(void **state)
{
    cache_redis_url u;
    char err[128];
    assert_int_equal(cache_redis_url_parse("redis://127.0.0.1:6380/3", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 3);
    assert_string_equal(u.password, "");
    assert_int_equal(cache_redis_url_parse("redis://cache.local", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "cache.local");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    assert_int_equal(cache_redis_url_parse("redis://:s3cret@h:1/2", &u, err, sizeof(err)), 0);
    assert_string_equal(u.password, "s3cret");
    assert_string_equal(u.host, "h");
    assert_int_equal(cache_redis_url_parse("redis://user:pw@h/", &u, err, sizeof(err)), 0);
    assert_string_equal(u.password, "pw");
    assert_int_equal(u.db, 0);
    assert_int_equal(cache_redis_url_parse("unix:///run/redis.sock?db=4", &u, err, sizeof(err)), 0);
    assert_string_equal(u.unix_path, "/run/redis.sock");
    assert_int_equal(u.db, 4);
}

static void test_url_errors(void **state)
{
    cache_redis_url u;
    char err[128];
    const char *bad[] = {
        "http://x",      "redis://",     "redis://h:0", "redis://h:70000", "redis://h:x",
        "redis://h/abc", "redis://h/-1", "unix://",     "unix:///s?db=x",  ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(cache_redis_url_parse(bad[i], &u, err, sizeof(err)), -1);
        assert_true(err[0] != '\0');
    }
}

static void test_config_keys(void **state)
{
    cache_config cfg;
    char err[128];
    cache_config_init(&cfg);
    assert_int_equal(cache_config_set(&cfg, "redis_feeds",
                                      "redis://a:1/0, redis://b:2/0 redis://c:3/0", err,
                                      sizeof(err)),
                     1);
    assert_int_equal(cfg.n_feeds, 3);
    assert_string_equal(cfg.feeds[2].host, "c");
    assert_int_equal(cache_config_set(&cfg, "redis_url", "redis://q:9/1", err, sizeof(err)), 1);
    /* redis_url fills only the roles not named yet */
    assert_int_equal(cfg.n_feeds, 3);
    assert_true(cfg.have_queue);
    assert_string_equal(cfg.queue.host, "q");
    assert_int_equal(cache_config_set(&cfg, "redis_pubsub", "redis://p:8/0", err, sizeof(err)), 1);
    assert_string_equal(cfg.pubsub.host, "p");
    assert_int_equal(cache_config_set(&cfg, "status_cache_ttl", "120", err, sizeof(err)), 1);
    assert_int_equal(cfg.status_ttl, 120);
    assert_int_equal(cache_config_set(&cfg, "status_cache_ttl", "0", err, sizeof(err)), -1);
    assert_int_equal(cache_config_set(&cfg, "local_domain", "social.example", err, sizeof(err)), 1);
    assert_string_equal(cfg.local_domain, "social.example");
    char base[320];
    assert_string_equal(cache_config_url_base(&cfg, base, sizeof(base)), "https://social.example");
    assert_int_equal(cache_config_set(&cfg, "public_url", "http://h:3000//", err, sizeof(err)), 1);
    assert_string_equal(cache_config_url_base(&cfg, base, sizeof(base)), "http://h:3000");
    assert_int_equal(cache_config_set(&cfg, "public_url", "ftp://h", err, sizeof(err)), -1);
    assert_int_equal(cache_config_set(&cfg, "public_url", "https://a\"b", err, sizeof(err)), -1);
    assert_int_equal(cache_config_set(&cfg, "redis_feeds", ",", err, sizeof(err)), -1);
    assert_int_equal(cache_config_set(&cfg, "listen_addr", "x", err, sizeof(err)), 0);
    char many[2048] = "";
    for (int i = 0; i < CACHE_MAX_SHARDS + 1; i++)
        strcat(many, "redis://h:1/0,");
    assert_int_equal(cache_config_set(&cfg, "redis_feeds", many, err, sizeof(err)), -1);
}

static void test_shard_selection(void **state)
{
    /* one instance: everything on shard 0 */
    assert_int_equal(cache_shard_of(1, 123456789), 0);
    assert_int_equal(cache_shard_of(0, 42), 0);
    /* the documented rule: XXH3_64bits of the id's decimal text modulo the count */
    int counts[4] = {0};
    for (int64_t id = 1; id <= 40000; id++) {
        char buf[24];
        int n = snprintf(buf, sizeof(buf), "%lld", (long long)id * 7919);
        int expect = (int)(XXH3_64bits(buf, (size_t)n) % 4);
        int got = cache_shard_of(4, id * 7919);
        assert_int_equal(got, expect);
        counts[got]++;
    }
    /* and it spreads: each shard within 5% of a quarter */
    for (int s = 0; s < 4; s++)
        assert_true(counts[s] > 9500 && counts[s] < 10500);
    /* stable for a given id */
    assert_int_equal(cache_shard_of(7, 108012345678901234), cache_shard_of(7, 108012345678901234));
}

static void test_keys(void **state)
{
    char buf[64];
    cache_feed_key(buf, sizeof(buf), CACHE_FEED_HOME, 42);
    assert_string_equal(buf, "feed:home:42");
    cache_feed_key(buf, sizeof(buf), CACHE_FEED_LIST, 7);
    assert_string_equal(buf, "feed:list:7");
    cache_regeneration_key(buf, sizeof(buf), CACHE_FEED_HOME, 42);
    assert_string_equal(buf, "account:42:regeneration");
    cache_status_key(buf, sizeof(buf), 9);
    assert_string_equal(buf, "tusk:status:9");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_parse),   cmocka_unit_test(test_url_errors),
        cmocka_unit_test(test_config_keys), cmocka_unit_test(test_shard_selection),
        cmocka_unit_test(test_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
