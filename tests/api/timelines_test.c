/*
 * Integration tests of api/timelines.c and hydrate.c with a real "tusk fanout" on a private
 * Redis: home and list timelines filled by fan-out, 206 + Mastodon-Async-Refresh while a
 * feed is rebuilt, every pagination edge and the exact Link headers, reblogs hydrated with
 * their originals, the PostgreSQL fallback when the status cache is empty, deletes and the
 * direct-visibility check, empty feeds, and live delivery over SSE within a second.
 */
#include "tests/api/rest.h"

#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static tc_env env;
static char app[64], profile[64];
static int64_t pia_id, fred_id, quinn_id, rita_id;
static int64_t posts[5], reblog_id, quinn_status;
static const char *pia = "pia-tok", *fred = "fred-tok", *quinn = "quinn-tok", *rita = "rita-tok";

static int setup(void **state)
{
    tc_env_start_full(&env, "rate_limit_per_5min = 0\nauth_cache_ms = 300\n", true);
    int pid = (int)getpid();
    snprintf(app, sizeof(app), "app-%d", pid);
    snprintf(profile, sizeof(profile), "profile-%d", pid);
    pia_id = tc_account(&env, 10, "pia", pia, "read write follow");
    fred_id = tc_account(&env, 11, "fred", fred, "read write follow");
    quinn_id = tc_account(&env, 12, "quinn", quinn, "read write follow");
    rita_id = tc_account(&env, 13, "rita", rita, "read write follow");
    return 0;
}

static int teardown(void **state)
{
    tc_env_stop(&env);
    return 0;
}

/* GET path; ids of the answer; status in *status; Link header into link (may be NULL) */
static int page(const char *path, const char *token, int64_t *ids, int *status, char *link,
                size_t linkcap)
{
    tc_resp r;
    assert_true(tc_call(&env, "GET", path, token, NULL, &r));
    if (r.status != 200 && r.status != 206)
        fail_msg("GET %s: %d %s", path, r.status, r.body);
    json_t *j = tc_json(&r);
    assert_non_null(j);
    size_t i;
    json_t *e;
    json_array_foreach(j, i, e) rt_check_status(e);
    int n = rt_ids(j, ids, 64);
    json_decref(j);
    if (status)
        *status = r.status;
    if (link) {
        const char *l = tc_header(&r, "link");
        snprintf(link, linkcap, "%s", l ? l : "");
    }
    if (r.status == 206) {
        const char *h = tc_header(&r, "mastodon-async-refresh");
        regex_t re;
        assert_int_equal(
            regcomp(&re, "^id=\"[A-Za-z0-9_-]+--[0-9a-f]{64}\", retry=5$", REG_EXTENDED), 0);
        if (!h || regexec(&re, h, 0, NULL, 0) != 0)
            fail_msg("206 without a good Mastodon-Async-Refresh: %s", h ? h : "(none)");
        regfree(&re);
    } else {
        assert_null(tc_header(&r, "mastodon-async-refresh"));
    }
    tc_resp_free(&r);
    return n;
}

/* read until the feed is no longer being rebuilt */
static int settled(const char *path, const char *token, int64_t *ids)
{
    int st = 0, n = 0;
    for (int i = 0; i < 250; i++) {
        n = page(path, token, ids, &st, NULL, 0);
        if (st == 200)
            return n;
        usleep(20000);
    }
    fail_msg("%s still 206 after 5 s", path);
    return -1;
}

static void wait_fanout(void)
{
    if (!tc_wait_fanout(&env, 10000))
        fail_msg("fanout did not go idle");
}

static void test_home(void **state)
{
    int64_t ids[64];
    int st;
    json_decref(rt_call(&env, "POST", rt_fmt("/api/v1/accounts/%lld/follow", (long long)pia_id),
                        fred, NULL, 200, NULL));
    json_decref(rt_call(&env, "POST", rt_fmt("/api/v1/accounts/%lld/follow", (long long)rita_id),
                        fred, NULL, 200, NULL));
    for (int i = 0; i < 5; i++)
        posts[i] = rt_post(&env, pia, rt_fmt("{\"status\":\"post %d\"}", i));
    quinn_status = rt_post(&env, quinn, "{\"status\":\"quinn's\"}");
    /* a reblog by rita of a status fred does not follow (with its outbox row, as the api
     * would write it) */
    reblog_id = tc_sql_int(&env,
                           "WITH s AS (INSERT INTO statuses (account_id, reblog_of_id, created_at, "
                           "updated_at, local, visibility) VALUES (%lld, %lld, now(), now(), true, "
                           "0) RETURNING id), o AS (INSERT INTO tusk_outbox (kind, payload) SELECT "
                           "'status_created', jsonb_build_object('status_id', id::text) FROM s) "
                           "SELECT id FROM s",
                           (long long)rita_id, (long long)quinn_status);
    assert_true(reblog_id > 0);
    wait_fanout();
    /* never read, so never built: 206 with nothing while fanout rebuilds it from PostgreSQL */
    assert_int_equal(page("/api/v1/timelines/home", fred, ids, &st, NULL, 0), 0);
    assert_int_equal(st, 206);
    int n = settled("/api/v1/timelines/home", fred, ids);
    assert_int_equal(n, 6);
    assert_int_equal(ids[0], reblog_id);
    for (int i = 0; i < 5; i++)
        assert_int_equal(ids[1 + i], posts[4 - i]);
    /* the reblog carries its original */
    json_t *j = rt_call(&env, "GET", "/api/v1/timelines/home?limit=1", fred, NULL, 200, NULL);
    json_t *r = json_array_get(j, 0);
    assert_int_equal(rt_id(json_object_get(r, "reblog")), quinn_status);
    assert_int_equal(rt_id(json_object_get(r, "account")), rita_id);
    assert_int_equal(rt_id(json_object_get(json_object_get(r, "reblog"), "account")), quinn_id);
    json_decref(j);
}

static void test_pagination(void **state)
{
    int64_t ids[64];
    char link[1024], want[1024];
    int st;
    const char *h = "/api/v1/timelines/home";
    int n = page(rt_fmt("%s?limit=2", h), fred, ids, &st, link, sizeof(link));
    assert_int_equal(n, 2);
    snprintf(want, sizeof(want),
             "<http://social.test%s?limit=2&max_id=%lld>; rel=\"next\", "
             "<http://social.test%s?limit=2&min_id=%lld>; rel=\"prev\"",
             h, (long long)posts[4], h, (long long)reblog_id);
    assert_string_equal(link, want);
    /* next page, as a client follows it */
    n = page(rt_fmt("%s?limit=2&max_id=%lld", h, (long long)posts[4]), fred, ids, &st, link,
             sizeof(link));
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], posts[3]);
    assert_int_equal(ids[1], posts[2]);
    /* the default page carries no limit; local=true is carried over as Mastodon does */
    page(rt_fmt("%s?local=true", h), fred, ids, &st, link, sizeof(link));
    snprintf(want, sizeof(want),
             "<http://social.test%s?local=true&max_id=%lld>; rel=\"next\", "
             "<http://social.test%s?local=true&min_id=%lld>; rel=\"prev\"",
             h, (long long)posts[0], h, (long long)reblog_id);
    assert_string_equal(link, want);
    /* limit edges */
    assert_int_equal(page(rt_fmt("%s?limit=0", h), fred, ids, &st, link, sizeof(link)), 0);
    assert_int_equal(st, 200);
    assert_string_equal(link, "");
    assert_int_equal(page(rt_fmt("%s?limit=abc", h), fred, ids, &st, NULL, 0), 0);
    assert_int_equal(page(rt_fmt("%s?limit=41", h), fred, ids, &st, NULL, 0), 6);
    assert_int_equal(page(rt_fmt("%s?limit=-1", h), fred, ids, &st, NULL, 0), 1);
    assert_int_equal(page(rt_fmt("%s?limit=", h), fred, ids, &st, NULL, 0), 0);
    /* bounds */
    assert_int_equal(page(rt_fmt("%s?max_id=1", h), fred, ids, &st, NULL, 0), 0);
    assert_int_equal(page(rt_fmt("%s?max_id=abc", h), fred, ids, &st, NULL, 0), 0);
    assert_int_equal(page(rt_fmt("%s?max_id=9223372036854775807", h), fred, ids, &st, NULL, 0), 6);
    assert_int_equal(
        page(rt_fmt("%s?max_id=%lld", h, (long long)posts[0]), fred, ids, &st, NULL, 0), 0);
    n = page(rt_fmt("%s?since_id=%lld", h, (long long)posts[2]), fred, ids, &st, NULL, 0);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], reblog_id);
    assert_int_equal(ids[2], posts[3]);
    n = page(rt_fmt("%s?since_id=%lld&limit=1", h, (long long)posts[2]), fred, ids, &st, NULL, 0);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], reblog_id); /* since_id: the newest ones */
    n = page(rt_fmt("%s?min_id=%lld&limit=2", h, (long long)posts[1]), fred, ids, &st, link,
             sizeof(link));
    assert_int_equal(n, 2); /* min_id: the ones just above it, newest first */
    assert_int_equal(ids[0], posts[3]);
    assert_int_equal(ids[1], posts[2]);
    snprintf(want, sizeof(want),
             "<http://social.test%s?limit=2&max_id=%lld>; rel=\"next\", "
             "<http://social.test%s?limit=2&min_id=%lld>; rel=\"prev\"",
             h, (long long)posts[2], h, (long long)posts[3]);
    assert_string_equal(link, want);
    n = page(rt_fmt("%s?min_id=%lld&max_id=%lld", h, (long long)posts[0], (long long)posts[3]),
             fred, ids, &st, NULL, 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], posts[2]);
    n = page(rt_fmt("%s?min_id=%lld", h, (long long)reblog_id), fred, ids, &st, NULL, 0);
    assert_int_equal(n, 0); /* nothing newer than the newest */
    /* auth */
    rt_error(&env, "GET", h, NULL, NULL, 401, "The access token is invalid");
    rt_error(&env, "GET", h, profile, NULL, 403, "outside the authorized scopes");
    rt_error(&env, "GET", h, app, NULL, 422, "requires an authenticated user");
}

static void test_cache_fallback_and_delete(void **state)
{
    int64_t ids[64];
    int st;
    const char *h = "/api/v1/timelines/home";
    /* the status cache is gone: the page comes from PostgreSQL and refills it */
    tc_redis_int(&env, "EVAL %s 0",
                 "for _, k in ipairs(redis.call('KEYS', 'tusk:status:*')) do "
                 "redis.call('DEL', k) end return 1");
    assert_int_equal(tc_redis_int(&env, "EXISTS tusk:status:%lld", (long long)posts[4]), 0);
    usleep(1100000); /* past render_fresh_ms: the api asks Redis again */
    assert_int_equal(page(h, fred, ids, &st, NULL, 0), 6);
    assert_int_equal(ids[0], reblog_id);
    assert_int_equal(tc_redis_int(&env, "EXISTS tusk:status:%lld", (long long)posts[4]), 1);
    assert_int_equal(tc_redis_int(&env, "EXISTS tusk:status:%lld", (long long)quinn_status), 1);
    /* a deleted status leaves the page at once, before fanout took it out of the feed (a
     * delete through this process voids the fresh renderings) */
    json_decref(rt_call(&env, "DELETE", rt_fmt("/api/v1/statuses/%lld", (long long)posts[4]), pia,
                        NULL, 200, NULL));
    int n = page(h, fred, ids, &st, NULL, 0);
    assert_int_equal(n, 5);
    assert_int_equal(ids[1], posts[3]);
    wait_fanout();
    assert_int_equal(
        tc_redis_int(&env, "ZRANK feed:home:%lld %lld", (long long)fred_id, (long long)posts[4]),
        -1); /* gone from the feed (nil) */
    /* a direct status that does not mention fred never shows, even if it reached his feed */
    int64_t dm = rt_post(&env, pia, "{\"status\":\"@quinn hush\",\"visibility\":\"direct\"}");
    wait_fanout();
    tc_redis_int(&env, "ZADD feed:home:%lld %lld %lld", (long long)fred_id, (long long)dm,
                 (long long)dm);
    n = page(h, fred, ids, &st, NULL, 0);
    assert_int_equal(n, 5);
    assert_true(ids[0] != dm);
    /* ... while one mentioning him does, delivered by fanout */
    int64_t dm2 = rt_post(&env, pia, "{\"status\":\"@fred hi\",\"visibility\":\"direct\"}");
    wait_fanout();
    n = page(h, fred, ids, &st, NULL, 0);
    assert_int_equal(ids[0], dm2);
}

static void test_list_timeline(void **state)
{
    int64_t ids[64];
    int st;
    char link[1024], want[1024], path[128];
    json_t *l = rt_call(&env, "POST", "/api/v1/lists", fred, "{\"title\":\"pia\"}", 200, NULL);
    int64_t list = rt_id(l);
    json_decref(l);
    json_decref(rt_call(&env, "POST", rt_fmt("/api/v1/lists/%lld/accounts", (long long)list), fred,
                        rt_fmt("{\"account_ids\":[\"%lld\"]}", (long long)pia_id), 200, NULL));
    wait_fanout();
    snprintf(path, sizeof(path), "/api/v1/timelines/list/%lld", (long long)list);
    int n = page(path, fred, ids, &st, NULL, 0);
    assert_int_equal(st, 206); /* rebuilt on first read */
    n = settled(path, fred, ids);
    assert_int_equal(n, 4); /* pia's public posts 0..3; direct ones stay out of lists */
    assert_int_equal(ids[0], posts[3]);
    n = page(rt_fmt("%s?limit=2", path), fred, ids, &st, link, sizeof(link));
    snprintf(want, sizeof(want),
             "<http://social.test%s?limit=2&max_id=%lld>; rel=\"next\", "
             "<http://social.test%s?limit=2&min_id=%lld>; rel=\"prev\"",
             path, (long long)posts[2], path, (long long)posts[3]);
    assert_string_equal(link, want);
    /* live: a new post lands in the list feed */
    int64_t p5 = rt_post(&env, pia, "{\"status\":\"for the list\"}");
    wait_fanout();
    n = page(path, fred, ids, &st, NULL, 0);
    assert_int_equal(n, 5);
    assert_int_equal(ids[0], p5);
    /* while a rebuild runs: 206 with what is there */
    tc_redis_int(&env, "SET list:%lld:regeneration true", (long long)list);
    n = page(path, fred, ids, &st, NULL, 0);
    assert_int_equal(st, 206);
    assert_int_equal(n, 5);
    tc_redis_int(&env, "DEL list:%lld:regeneration", (long long)list);
    /* someone else's list, an unknown one, a bad id */
    rt_error(&env, "GET", path, quinn, NULL, 404, "Record not found");
    rt_error(&env, "GET", "/api/v1/timelines/list/9999", fred, NULL, 404, NULL);
    rt_error(&env, "GET", "/api/v1/timelines/list/x", fred, NULL, 404, NULL);
    rt_error(&env, "GET", path, NULL, NULL, 401, NULL);
}

/* is the home feed's rebuild running: tusk fan-out's string marker exists, or Mastodon 4.4's
 * AsyncRefresh hash says "running" (a finished one stays an hour); 1, 0, -1 on error */
static long long rebuilding(int64_t account)
{
    return tc_redis_int(&env, "EVAL %s 1 account:%lld:regeneration",
                        "local t = redis.call('TYPE', KEYS[1]).ok if t == 'string' then return 1 "
                        "elseif t == 'hash' and redis.call('HGET', KEYS[1], 'status') == "
                        "'running' then return 1 end return 0",
                        (long long)account);
}

static void test_empty_feed(void **state)
{
    int64_t ids[64];
    int st;
    tc_account(&env, 14, "sam", "sam-tok", "read");
    assert_int_equal(page("/api/v1/timelines/home", "sam-tok", ids, &st, NULL, 0), 0);
    assert_int_equal(st, 206);
    for (int i = 0; i < 250 && rebuilding(env.base + 14) != 0; i++)
        usleep(20000);
    /* rebuilt and still empty (Redis keeps no empty ZSET): 200 [] without another rebuild */
    assert_int_equal(page("/api/v1/timelines/home", "sam-tok", ids, &st, NULL, 0), 0);
    assert_int_equal(st, 200);
    assert_int_equal(rebuilding(env.base + 14), 0);
    /* a follow (through this process) ends "known empty": rebuilt with pia's posts */
    json_decref(rt_call(&env, "POST", rt_fmt("/api/v1/accounts/%lld/follow", (long long)pia_id),
                        "sam-tok", NULL, 403, NULL)); /* a read token cannot follow */
    assert_true(tc_sql(&env, "UPDATE oauth_access_tokens SET scopes = 'read write' WHERE token = "
                             "'sam-tok'"));
    usleep(400000); /* the token cache (auth_cache_ms) */
    json_decref(rt_call(&env, "POST", rt_fmt("/api/v1/accounts/%lld/follow", (long long)pia_id),
                        "sam-tok", NULL, 200, NULL));
    wait_fanout();
    assert_int_equal(page("/api/v1/timelines/home", "sam-tok", ids, &st, NULL, 0), 0);
    assert_int_equal(st, 206);
    assert_true(settled("/api/v1/timelines/home", "sam-tok", ids) >= 5);
}

/* a locked account's statuses reach a follower's home only once the request is authorized,
 * and then through fan-out's merge (the authorize wrote a follow outbox row) */
static void test_follow_request(void **state)
{
    int64_t ids[64];
    int64_t tom_id = tc_account(&env, 15, "tom", "tom-tok", "read write follow");
    assert_true(
        tc_sql(&env, "UPDATE accounts SET locked = true WHERE id = %lld", (long long)tom_id));
    int64_t t1 = rt_post(&env, "tom-tok", "{\"status\":\"locked one\"}");
    int64_t t2 = rt_post(&env, "tom-tok", "{\"status\":\"locked two\"}");
    json_t *r = rt_call(&env, "POST", rt_fmt("/api/v1/accounts/%lld/follow", (long long)tom_id),
                        fred, NULL, 200, NULL);
    assert_true(json_is_true(json_object_get(r, "requested")));
    json_decref(r);
    wait_fanout();
    int n = settled("/api/v1/timelines/home", fred, ids);
    for (int i = 0; i < n; i++)
        assert_true(ids[i] != t1 && ids[i] != t2);
    json_decref(rt_call(&env, "POST",
                        rt_fmt("/api/v1/follow_requests/%lld/authorize", (long long)fred_id),
                        "tom-tok", NULL, 200, NULL));
    wait_fanout();
    n = settled("/api/v1/timelines/home", fred, ids);
    assert_true(n >= 2);
    assert_int_equal(ids[0], t2);
    assert_int_equal(ids[1], t1);
}

static void test_streaming(void **state)
{
    tc_conn *c = tc_open(env.port);
    assert_non_null(c);
    char req[512];
    snprintf(req, sizeof(req),
             "GET /api/v1/streaming/user HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n",
             fred);
    assert_true(tc_sends(c, req));
    tc_resp r;
    assert_true(tc_read(c, &r, false));
    assert_int_equal(r.status, 200);
    tc_resp_free(&r);
    char *ev = NULL, *data = NULL;
    assert_true(tc_sse_next(c, &ev, &data, true, 2000)); /* ":)" */
    free(ev);
    free(data);
    /* the subscription is registered asynchronously: wait for the subscribed: key */
    for (int i = 0;
         i < 100 && tc_redis_int(&env, "EXISTS subscribed:timeline:%lld", (long long)fred_id) != 1;
         i++)
        usleep(10000);
    double t0 = svc_now_ms();
    int64_t id = rt_post(&env, pia, "{\"status\":\"live\"}");
    assert_true(tc_sse_next(c, &ev, &data, false, 1000));
    double took = svc_now_ms() - t0;
    assert_string_equal(ev, "update");
    json_t *s = json_loads(data, 0, NULL);
    rt_check_status(s);
    assert_int_equal(rt_id(s), id);
    json_decref(s);
    free(ev);
    free(data);
    fprintf(stderr, "post to SSE update: %.0f ms\n", took);
    assert_true(took < 1000);
    json_decref(rt_call(&env, "DELETE", rt_fmt("/api/v1/statuses/%lld", (long long)id), pia, NULL,
                        200, NULL));
    assert_true(tc_sse_next(c, &ev, &data, false, 1000));
    assert_string_equal(ev, "delete");
    assert_int_equal(strtoll(data, NULL, 10), id);
    free(ev);
    free(data);
    tc_close(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_home),
        cmocka_unit_test(test_pagination),
        cmocka_unit_test(test_cache_fallback_and_delete),
        cmocka_unit_test(test_list_timeline),
        cmocka_unit_test(test_empty_feed),
        cmocka_unit_test(test_follow_request),
        cmocka_unit_test(test_streaming),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
