/* Tests for cache/status.c through Redis and PostgreSQL: misses load from PostgreSQL and are
 * written back with a TTL, hits come from one MGET, deleted statuses are absent, reblogs
 * come with their original, invalidation, and Redis being down. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "tests/cache/harness.h"

static th_env env;
static th_env *e = &env;

static void test_fetch_and_refill(void **state)
{
    int64_t a = th_account(e, "sc_a", true, true);
    int64_t b = th_account(e, "sc_b", false, false);
    th_exec(e,
            "UPDATE accounts SET display_name = 'Ä \"b\"', actor_type = 'Service' WHERE id = %lld",
            (long long)b);
    th_exec(
        e,
        "UPDATE account_stats SET statuses_count = 5, followers_count = 7 WHERE account_id = %lld",
        (long long)b);
    int64_t s1 = th_post(e, b, &(th_status){.language = "de", .mentions = {a}}, false);
    th_exec(e,
            "INSERT INTO status_stats (status_id, replies_count, reblogs_count, favourites_count,"
            " created_at, updated_at) VALUES (%lld, 1, 2, 3, now(), now())",
            (long long)s1);
    int64_t s2 = th_post(e, a, NULL, false);
    int64_t rb = th_post(e, a, &(th_status){.reblog_of = s1}, false);
    th_delete(e, s2, false);
    int64_t ids[4] = {s1, s2, rb, 424242};
    cache_status *out[4];
    char err[256];
    assert_int_equal(cache_status_fetch(e->c, e->pg, ids, 4, out, err, sizeof(err)), 0);
    assert_non_null(out[0]);
    assert_null(out[1]); /* deleted */
    assert_non_null(out[2]);
    assert_null(out[3]); /* never existed */
    assert_string_equal(out[0]->account.username, "sc_b");
    assert_string_equal(out[0]->account.domain, "remote.test");
    assert_string_equal(out[0]->account.display_name, "Ä \"b\"");
    assert_true(out[0]->account.bot);
    assert_int_equal(out[0]->account.followers_count, 7);
    assert_int_equal(out[0]->favourites_count, 3);
    assert_string_equal(out[0]->language, "de");
    assert_int_equal(out[0]->n_mentions, 1);
    assert_int_equal(out[0]->mentions[0].account_id, a);
    assert_string_equal(out[0]->mentions[0].username, "sc_a");
    assert_non_null(out[2]->reblog);
    assert_int_equal(out[2]->reblog->id, s1);
    assert_int_equal(out[2]->reblog_account_id, b);
    for (int i = 0; i < 4; i++)
        cache_status_free(out[i]);
    /* written back with the TTL */
    char key[48];
    cache_status_key(key, sizeof(key), s1);
    redisReply *r = redisCommand(e->r, "TTL %s", key);
    assert_true(r->integer > 0 && r->integer <= e->ccfg.status_ttl);
    freeReplyObject(r);
    cache_status_key(key, sizeof(key), s2);
    assert_false(th_exists(e, key));

    /* a hit comes from Redis, not PostgreSQL: change the row underneath */
    th_exec(e, "UPDATE statuses SET text = 'edited' WHERE id = %lld", (long long)s1);
    assert_int_equal(cache_status_fetch(e->c, e->pg, &s1, 1, out, err, sizeof(err)), 0);
    assert_string_equal(out[0]->text, "status");
    cache_status_free(out[0]);
    /* until it is invalidated */
    assert_int_equal(cache_status_invalidate(e->c, &s1, 1), 0);
    assert_int_equal(cache_status_fetch(e->c, e->pg, &s1, 1, out, err, sizeof(err)), 0);
    assert_string_equal(out[0]->text, "edited");
    cache_status_free(out[0]);

    /* a corrupt record is a miss, not a crash */
    cache_status_key(key, sizeof(key), s1);
    r = redisCommand(e->r, "SET %s garbage", key);
    freeReplyObject(r);
    assert_int_equal(cache_status_fetch(e->c, e->pg, &s1, 1, out, err, sizeof(err)), 0);
    assert_non_null(out[0]);
    assert_int_equal(out[0]->id, s1);
    cache_status_free(out[0]);
}

static void test_redis_down(void **state)
{
    int64_t a = th_account(e, "sd_a", true, true);
    int64_t s = th_post(e, a, NULL, false);
    cache_config cfg;
    char err[256], url[64];
    cache_config_init(&cfg);
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", svc_free_port());
    cache_config_set(&cfg, "redis_url", url, err, sizeof(err));
    cache *c = cache_open(&cfg);
    cache_status *out[1];
    assert_int_equal(cache_status_fetch(c, e->pg, &s, 1, out, err, sizeof(err)), 0);
    assert_non_null(out[0]);
    assert_int_equal(out[0]->account_id, a);
    cache_status_free(out[0]);
    cache_close(c);
}

static int setup(void **state)
{
    th_setup(e, "statuscache", true, 0);
    return 0;
}

static int teardown(void **state)
{
    th_teardown(e);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_fetch_and_refill),
                                       cmocka_unit_test(test_redis_down)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
