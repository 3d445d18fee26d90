/*
 * Integration test of api/hydrate.c's render memo and its refresh ahead, on a private Redis
 * and PostgreSQL (no fan-out: the test writes the feed itself). A rendering is served from
 * the memo while Redis confirmed it less than render_fresh_ms ago; once it is older than
 * half of that, a read queues a revalidation that runs off the request's path, so a record
 * that changed or vanished in Redis (here: invalidated by "another process") is dropped
 * before render_fresh_ms is up, and the next read renders the status afresh.
 */
#include "tests/api/rest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define FRESH_MS 3000

static tc_env env;
static int64_t rex_id;

static int setup(void **state)
{
    /* one worker: one memo, so the timing below is the memo's */
    tc_env_start_full(&env, "rate_limit_per_5min = 0\napi_workers = 1\nrender_fresh_ms = 3000\n",
                      false);
    rex_id = tc_account(&env, 10, "rex", "rex-tok", "read write follow");
    return 0;
}

static int teardown(void **state)
{
    tc_env_stop(&env);
    return 0;
}

/* the home timeline's body contains text */
static bool home_has(const char *text)
{
    tc_resp r;
    json_t *j = rt_call(&env, "GET", "/api/v1/timelines/home", "rex-tok", NULL, 200, &r);
    bool has = strstr(r.body, text) != NULL;
    assert_int_equal(json_array_size(j), 1);
    json_decref(j);
    tc_resp_free(&r);
    return has;
}

static void test_refresh_ahead(void **state)
{
    int64_t id = rt_post(&env, "rex-tok", "{\"status\":\"before\"}");
    /* the feed, as fan-out would have written it (and it exists: no rebuild, no 206) */
    tc_redis_int(&env, "ZADD feed:home:%lld %lld %lld", (long long)rex_id, (long long)id,
                 (long long)id);
    assert_true(home_has("before")); /* cache miss: PostgreSQL, written back to Redis */
    assert_true(home_has("before")); /* from Redis: rendered and memoized */
    double t0 = svc_now_ms();
    /* another process changes it: the row, and the cache record invalidated */
    assert_true(tc_sql(&env, "UPDATE statuses SET text = 'after' WHERE id = %lld", (long long)id));
    assert_int_equal(tc_redis_int(&env, "DEL tusk:status:%lld", (long long)id), 1);
    assert_true(home_has("before")); /* confirmed a moment ago: the memo answers */
    /* past half of render_fresh_ms: still served, and revalidated in the background */
    while (svc_now_ms() - t0 < FRESH_MS * 0.6)
        usleep(20000);
    home_has("before");
    double seen = -1;
    while (svc_now_ms() - t0 < FRESH_MS * 1.5) {
        if (home_has("after")) {
            seen = svc_now_ms() - t0;
            break;
        }
        usleep(50000);
    }
    fprintf(stderr, "change seen after %.0f ms (render_fresh_ms %d)\n", seen, FRESH_MS);
    assert_true(seen > 0);
    /* without the revalidation the memo would have answered until render_fresh_ms */
    assert_true(seen < FRESH_MS * 0.95);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refresh_ahead),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
