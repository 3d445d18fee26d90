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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
