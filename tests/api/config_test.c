/* Unit tests of api/config.c (the [api] section) and redis.c's URL parsing. */
#include "api/internal.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static void test_config(void **state)
{
    api_config cfg;
    char err[256];
    api_config_defaults(&cfg);
    assert_int_equal(api_config_parse(&cfg,
                                      "[pgbouncer]\nlisten_port = 6432\n"
                                      "[api]\nlisten = 127.0.0.1:4321\napi_workers = 3\n"
                                      "database = host=x dbname=y\n"
                                      "redis_pubsub = redis://127.0.0.1:7000/2\n"
                                      "public_url = https://social.example/\n"
                                      "max_body_bytes = 64k\nrate_limit_per_5min = 5\n"
                                      "some_future_key = 1\n",
                                      err, sizeof(err)),
                     0);
    assert_string_equal(cfg.listen_host, "127.0.0.1");
    assert_int_equal(cfg.listen_port, 4321);
    assert_int_equal(cfg.workers, 3);
    assert_string_equal(cfg.database, "host=x dbname=y");
    assert_string_equal(cfg.redis_feeds, "redis://127.0.0.1:7000/2"); /* defaults to pubsub */
    assert_string_equal(cfg.public_url, "https://social.example");
    assert_string_equal(cfg.domain, "social.example");
    assert_string_equal(cfg.streaming_url, "wss://social.example");
    assert_int_equal(cfg.max_body_bytes, 65536);
    assert_int_equal(cfg.rate_limit, 5);
    api_config_free(&cfg);

    const char *bad[] = {"[api]\nlisten = nope\n", "[api]\napi_workers = 0\n",
                         "[api]\nredis_pubsub = http://x\n", "[api]\npublic_url = ftp://x\n",
                         "[api]\nmax_body_bytes = 12\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        api_config_defaults(&cfg);
        err[0] = '\0';
        assert_int_equal(api_config_parse(&cfg, bad[i], err, sizeof(err)), -1);
        assert_true(err[0] != '\0');
        api_config_free(&cfg);
    }
    char host[64], pw[64];
    int port, db;
    assert_true(api_redis_parse_url("redis://:secret@10.0.0.1:6380/3", host, sizeof(host), &port,
                                    &db, pw, sizeof(pw)));
    assert_string_equal(host, "10.0.0.1");
    assert_int_equal(port, 6380);
    assert_int_equal(db, 3);
    assert_string_equal(pw, "secret");
    assert_true(api_redis_parse_url("localhost", host, sizeof(host), &port, &db, pw, sizeof(pw)));
    assert_int_equal(port, 6379);
    assert_false(
        api_redis_parse_url("redis://h:99999", host, sizeof(host), &port, &db, pw, sizeof(pw)));
}

/* the keys of timelines and statuses: cache/'s keys in [api], the pool, tokens */
static void test_config_timelines(void **state)
{
    api_config cfg;
    char err[256];
    api_config_defaults(&cfg);
    assert_int_equal(api_config_parse(&cfg,
                                      "[api]\npublic_url = https://social.example\n"
                                      "redis_pubsub = redis://127.0.0.1:7000/2\n",
                                      err, sizeof(err)),
                     0);
    assert_int_equal(cfg.cache.n_feeds, 1); /* feeds follow pub/sub */
    assert_string_equal(cfg.cache.feeds[0].host, "127.0.0.1");
    assert_int_equal(cfg.cache.feeds[0].port, 7000);
    assert_int_equal(cfg.cache.feeds[0].db, 2);
    assert_string_equal(cfg.cache.local_domain, "social.example");
    assert_int_equal(cfg.db_threads, 4);
    assert_int_equal(cfg.lsn_token_ttl_ms, 30000);
    assert_int_equal(cfg.max_status_chars, 500);
    api_config_free(&cfg);

    api_config_defaults(&cfg);
    assert_int_equal(api_config_parse(&cfg,
                                      "[api]\nredis_feeds = redis://a:1/0, redis://b:2/0\n"
                                      "redis_queue = redis://q:3\nstatus_cache_ttl = 60\n"
                                      "local_domain = x.example\ndb_threads = 2\n"
                                      "lsn_token_ttl_ms = 0\nrender_cache_entries = 0\n",
                                      err, sizeof(err)),
                     0);
    assert_int_equal(cfg.cache.n_feeds, 2);
    assert_string_equal(cfg.cache.feeds[1].host, "b");
    assert_true(cfg.cache.have_queue);
    assert_int_equal(cfg.cache.queue.port, 3);
    assert_int_equal(cfg.cache.status_ttl, 60);
    assert_string_equal(cfg.cache.local_domain, "x.example");
    assert_int_equal(cfg.db_threads, 2);
    assert_int_equal(cfg.lsn_token_ttl_ms, 0);
    assert_int_equal(cfg.render_cache_entries, 0);
    api_config_free(&cfg);

    api_config_defaults(&cfg); /* a bare host:port, as redis.c accepts it */
    assert_int_equal(
        api_config_parse(&cfg, "[api]\nredis_pubsub = 10.1.2.3:7001\n", err, sizeof(err)), 0);
    assert_string_equal(cfg.cache.feeds[0].host, "10.1.2.3");
    assert_int_equal(cfg.cache.feeds[0].port, 7001);
    api_config_free(&cfg);

    const char *bad[] = {"[api]\nredis_feeds = unix:///tmp/r.sock\n",
                         "[api]\nredis_feeds = http://x\n", "[api]\ndb_threads = 0\n",
                         "[api]\nstatus_cache_ttl = -1\n", "[api]\nlocal_domain = \n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        api_config_defaults(&cfg);
        err[0] = '\0';
        assert_int_equal(api_config_parse(&cfg, bad[i], err, sizeof(err)), -1);
        assert_true(err[0] != '\0');
        api_config_free(&cfg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_config_timelines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
