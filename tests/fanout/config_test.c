/* Tests for fanout/config.c: the [fanout] section. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "fanout/internal.h"

static void test_defaults_and_keys(void **state)
{
    fanout_config cfg;
    char err[256];
    const char *text = "[pgbouncer]\nlisten_port = 6432\n"
                       "[fanout]\n"
                       "database = host=127.0.0.1 dbname=m\n"
                       "redis_feeds = redis://a:1/0,redis://b:2/0\n"
                       "redis_queue = redis://q:3/1\n"
                       "queues = default:3, pull:1\n"
                       "consumer_name = box-1\n"
                       "batch_size = 250\n"
                       "claim_idle_ms = 1500\n"
                       "pg_min_lsn_token = on\n"
                       "outbox_listen = off\n"
                       "log_level = warning\n"
                       "mystery_key = 1\n";
    assert_int_equal(fanout_config_parse(&cfg, text, err, sizeof(err)), 0);
    assert_string_equal(cfg.database, "host=127.0.0.1 dbname=m");
    assert_int_equal(cfg.cache.n_feeds, 2);
    assert_string_equal(cfg.cache.queue.host, "q");
    assert_int_equal(cfg.n_queues, 2);
    assert_string_equal(cfg.queues[0].name, "default");
    assert_int_equal(cfg.queues[0].concurrency, 3);
    assert_string_equal(cfg.queues[1].name, "pull");
    assert_string_equal(cfg.consumer_name, "box-1");
    assert_int_equal(cfg.batch_size, 250);
    assert_int_equal(cfg.claim_idle_ms, 1500);
    assert_int_equal(cfg.pg_min_lsn_token, 1);
    assert_false(cfg.outbox_listen);
    assert_int_equal(cfg.log_level, LOG_WARNING);
    /* defaults */
    assert_int_equal(fanout_config_parse(&cfg, "[fanout]\n", err, sizeof(err)), 0);
    assert_int_equal(cfg.n_queues, 4);
    assert_string_equal(cfg.queues[3].name, "pull");
    assert_int_equal(cfg.batch_size, 1000);
    assert_int_equal(cfg.pg_min_lsn_token, 0);
    assert_true(cfg.relay);
}

static void test_bad_values(void **state)
{
    fanout_config cfg;
    char err[256];
    const char *bad[] = {
        "[fanout]\nqueues = \n",
        "[fanout]\nqueues = default:x\n",
        "[fanout]\nqueues = a:1,a:2\n",
        "[fanout]\nqueues = BAD!:1\n",
        "[fanout]\nbatch_size = 0\n",
        "[fanout]\npg_min_lsn_token = maybe\n",
        "[fanout]\nredis_url = http://x\n",
        "[fanout]\nlog_level = loud\n",
        "[fanout]\nconsumer_name = \n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(fanout_config_parse(&cfg, bad[i], err, sizeof(err)), -1);
        assert_non_null(strstr(err, "line"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_defaults_and_keys),
                                       cmocka_unit_test(test_bad_values)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
