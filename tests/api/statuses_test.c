/*
 * Integration tests of api/statuses.c against real PostgreSQL and Redis: posting (JSON and
 * form bodies, mentions, replies, counters, the outbox row), Idempotency-Key, showing with
 * Mastodon's visibility rules, deleting (source text, reblogs, counters, cache), an
 * account's statuses with every pagination edge and Link header, and each error status.
 */
#include "tests/api/rest.h"

#include <hiredis/hiredis.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static tc_env env;
static char alice[64], bob[64], writer[64], app[64], dave[64], erin[64], frank[64];
static int64_t alice_id, bob_id, dave_id, erin_id, frank_id;

static int setup(void **state)
{
    tc_env_start(&env, "rate_limit_per_5min = 0\n");
    int pid = (int)getpid();
    snprintf(alice, sizeof(alice), "alice-%d", pid);
    snprintf(bob, sizeof(bob), "bob-%d", pid);
    snprintf(writer, sizeof(writer), "write-%d", pid);
    snprintf(app, sizeof(app), "appw-%d", pid);
    snprintf(dave, sizeof(dave), "dave-%d", pid);
    snprintf(erin, sizeof(erin), "erin-%d", pid);
    snprintf(frank, sizeof(frank), "frank-%d", pid);
    alice_id = env.base + 1;
    bob_id = env.base + 2;
    dave_id = tc_account(&env, 10, "dave", dave, "read write follow");
    erin_id = tc_account(&env, 11, "erin", erin, "read write follow");
    frank_id = tc_account(&env, 12, "frank", frank, "read write follow");
    /* an application token (no user) that may write */
    if (!tc_sql(&env,
                "INSERT INTO oauth_access_tokens (token, created_at, scopes) VALUES "
                "('%s', now(), 'read write')",
                app))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    tc_env_stop(&env);
    return 0;
}

static const char *str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void test_post_json(void **state)
{
    long long before = tc_sql_int(&env,
                                  "SELECT statuses_count FROM account_stats WHERE "
                                  "account_id = %lld",
                                  (long long)alice_id);
    json_t *s = rt_call(&env, "POST", "/api/v1/statuses", alice,
                        "{\"status\":\"Hello @bob and @carol@remote.example <b>x</b>\","
                        "\"visibility\":\"public\",\"language\":\"en\",\"spoiler_text\":\"cw\"}",
                        200, NULL);
    rt_check_status(s);
    int64_t id = rt_id(s);
    assert_true(id > 0);
    /* the status renderer's URLs start with public_url, as the Account's do */
    const char *account_url = str(json_object_get(s, "account"), "url");
    assert_true(strncmp(account_url, "http://social.test/@", 20) == 0);
    char want[256];
    snprintf(want, sizeof(want), "%s/%lld", account_url, (long long)id);
    assert_string_equal(str(s, "url"), want);
    snprintf(want, sizeof(want), "http://social.test/users/%s/statuses/%lld", account_url + 20,
             (long long)id);
    assert_string_equal(str(s, "uri"), want);
    assert_string_equal(str(s, "content"),
                        "<p>Hello @bob and @carol@remote.example &lt;b&gt;x&lt;/b&gt;</p>");
    assert_string_equal(str(s, "visibility"), "public");
    assert_string_equal(str(s, "language"), "en");
    assert_string_equal(str(s, "spoiler_text"), "cw");
    assert_true(json_is_true(json_object_get(s, "sensitive"))); /* a CW makes it sensitive */
    assert_true(json_is_null(json_object_get(s, "in_reply_to_id")));
    assert_int_equal(rt_id(json_object_get(s, "account")), alice_id);
    json_t *m = json_object_get(s, "mentions");
    assert_int_equal(json_array_size(m), 1); /* the remote account is not ours to mention */
    assert_string_equal(str(json_array_get(m, 0), "acct"), "bob");
    assert_true(json_is_false(json_object_get(s, "favourited")));
    json_decref(s);
    /* the rows of the transaction */
    assert_int_equal(tc_sql_int(&env,
                                "SELECT statuses_count FROM account_stats WHERE "
                                "account_id = %lld",
                                (long long)alice_id),
                     before + 1);
    assert_int_equal(
        tc_sql_int(&env, "SELECT count(*) FROM mentions WHERE status_id = %lld", (long long)id), 1);
    assert_int_equal(tc_sql_int(&env,
                                "SELECT count(*) FROM tusk_outbox WHERE kind = 'status_created' "
                                "AND (payload->>'status_id')::bigint = %lld",
                                (long long)id),
                     1);
    assert_int_equal(tc_sql_int(&env,
                                "SELECT count(*) FROM statuses WHERE id = %lld AND local AND NOT "
                                "reply AND conversation_id IS NOT NULL",
                                (long long)id),
                     1);
    /* shown to anyone; the viewer fields only with a token */
    s = rt_call(&env, "GET", rt_fmt("/api/v1/statuses/%lld", (long long)id), NULL, NULL, 200, NULL);
    rt_check_status(s);
    assert_int_equal(rt_id(s), id);
    assert_null(json_object_get(s, "favourited"));
    json_decref(s);
    s = rt_call(&env, "GET", rt_fmt("/api/v1/statuses/%lld", (long long)id), dave, NULL, 200, NULL);
    assert_true(json_is_false(json_object_get(s, "favourited")));
    json_decref(s);
}

static void test_post_form(void **state)
{
    tc_resp r;
    assert_true(tc_request(env.port, "POST", "/api/v1/statuses",
                           rt_fmt("Authorization: Bearer %s\r\nContent-Type: "
                                  "application/x-www-form-urlencoded\r\n",
                                  alice),
                           "status=form+%C3%A9t%C3%A9&visibility=private&sensitive=1", &r));
    assert_int_equal(r.status, 200);
    json_t *s = tc_json(&r);
    assert_string_equal(str(s, "content"), "<p>form \xc3\xa9t\xc3\xa9</p>");
    assert_string_equal(str(s, "visibility"), "private");
    assert_true(json_is_true(json_object_get(s, "sensitive")));
    assert_true(json_is_null(json_object_get(s, "language")));
    json_decref(s);
    tc_resp_free(&r);
}

static void test_post_errors(void **state)
{
    const char *ok = "{\"status\":\"x\"}";
    rt_error(&env, "POST", "/api/v1/statuses", NULL, ok, 401, "The access token is invalid");
    rt_error(&env, "POST", "/api/v1/statuses", "nope", ok, 401, "The access token is invalid");
    rt_error(&env, "POST", "/api/v1/statuses", bob, ok, 403, "outside the authorized scopes");
    rt_error(&env, "POST", "/api/v1/statuses", app, ok, 422, "requires an authenticated user");
    rt_error(&env, "POST", "/api/v1/statuses", alice, "{}", 422, "Text can't be blank");
    rt_error(&env, "POST", "/api/v1/statuses", alice, "{\"status\":\"  \\n \"}", 422,
             "Text can't be blank");
    char big[700];
    memset(big, 'a', 501);
    big[501] = '\0';
    char body[2048];
    snprintf(body, sizeof(body), "{\"status\":\"%s\"}", big);
    rt_error(&env, "POST", "/api/v1/statuses", alice, body, 422,
             "Text character limit of 500 exceeded");
    /* 500 characters (multi-byte ones count once) are fine; a CW counts toward the limit */
    big[0] = '\0';
    for (int i = 0; i < 250; i++)
        strcat(big, "\xc3\xa9");
    snprintf(body, sizeof(body), "{\"status\":\"%s%s\"}", big, big);
    rt_post(&env, alice, body);
    snprintf(body, sizeof(body), "{\"status\":\"%s%s\",\"spoiler_text\":\"!\"}", big, big);
    rt_error(&env, "POST", "/api/v1/statuses", alice, body, 422, "character limit");
    rt_error(&env, "POST", "/api/v1/statuses", alice, "{\"status\":\"x\",\"visibility\":\"all\"}",
             422, "Visibility is not included in the list");
    rt_error(&env, "POST", "/api/v1/statuses", alice,
             "{\"status\":\"x\",\"in_reply_to_id\":\"999999999\"}", 404,
             "does not appear to exist");
    rt_error(&env, "POST", "/api/v1/statuses", alice,
             "{\"status\":\"x\",\"in_reply_to_id\":\"abc\"}", 404, "does not appear to exist");
    rt_error(&env, "POST", "/api/v1/statuses", alice, "{\"status\":", 400, "Invalid JSON");
    rt_error(&env, "POST", "/api/v1/statuses", alice, "[1]", 400, "JSON object");
    /* nothing was written by the failures */
    assert_int_equal(tc_sql_int(&env, "SELECT count(*) FROM statuses WHERE text = 'x'"), 0);
}

static void test_reply(void **state)
{
    int64_t parent = rt_post(&env, alice, "{\"status\":\"parent\"}");
    json_t *s =
        rt_call(&env, "POST", "/api/v1/statuses", dave,
                rt_fmt("{\"status\":\"@alice hi\",\"in_reply_to_id\":\"%lld\"}", (long long)parent),
                200, NULL);
    int64_t reply = rt_id(s);
    assert_int_equal(strtoll(str(s, "in_reply_to_id"), NULL, 10), parent);
    assert_int_equal(strtoll(str(s, "in_reply_to_account_id"), NULL, 10), alice_id);
    json_decref(s);
    assert_int_equal(tc_sql_int(&env,
                                "SELECT replies_count FROM status_stats WHERE status_id = "
                                "%lld",
                                (long long)parent),
                     1);
    assert_int_equal(tc_sql_int(&env,
                                "SELECT count(*) FROM statuses r JOIN statuses p ON p.id = %lld "
                                "WHERE r.id = %lld AND r.reply AND r.conversation_id = "
                                "p.conversation_id",
                                (long long)parent, (long long)reply),
                     1);
    /* a private status of someone alice does not follow cannot be replied to */
    int64_t priv = rt_post(&env, dave, "{\"status\":\"secret\",\"visibility\":\"private\"}");
    rt_error(&env, "POST", "/api/v1/statuses", alice,
             rt_fmt("{\"status\":\"x\",\"in_reply_to_id\":\"%lld\"}", (long long)priv), 404,
             "does not appear to exist");
}

static void test_visibility(void **state)
{
    int64_t priv =
        rt_post(&env, dave, "{\"status\":\"followers only\",\"visibility\":\"private\"}");
    const char *p = rt_fmt("/api/v1/statuses/%lld", (long long)priv);
    rt_error(&env, "GET", p, erin, NULL, 404, "Record not found");
    rt_error(&env, "GET", p, NULL, NULL, 404, "Record not found");
    json_decref(rt_call(&env, "GET", p, dave, NULL, 200, NULL));
    assert_true(tc_sql(&env,
                       "INSERT INTO follows (account_id, target_account_id, created_at, "
                       "updated_at) VALUES (%lld, %lld, now(), now())",
                       (long long)erin_id, (long long)dave_id));
    json_decref(rt_call(&env, "GET", p, erin, NULL, 200, NULL));
    /* direct: the author and the mentioned only */
    int64_t dm = rt_post(&env, dave, "{\"status\":\"@erin psst\",\"visibility\":\"direct\"}");
    p = rt_fmt("/api/v1/statuses/%lld", (long long)dm);
    json_t *s = rt_call(&env, "GET", p, erin, NULL, 200, NULL);
    assert_string_equal(str(s, "visibility"), "direct");
    json_decref(s);
    rt_error(&env, "GET", p, alice, NULL, 404, NULL);
    rt_error(&env, "GET", p, NULL, NULL, 404, NULL);
    /* public, but the author blocks the viewer */
    int64_t pub = rt_post(&env, dave, "{\"status\":\"open\"}");
    assert_true(tc_sql(&env,
                       "INSERT INTO blocks (account_id, target_account_id, created_at, updated_at) "
                       "VALUES (%lld, %lld, now(), now())",
                       (long long)dave_id, (long long)frank_id));
    p = rt_fmt("/api/v1/statuses/%lld", (long long)pub);
    rt_error(&env, "GET", p, frank, NULL, 404, NULL);
    json_decref(rt_call(&env, "GET", p, NULL, NULL, 200, NULL));
    /* ids that cannot exist */
    rt_error(&env, "GET", "/api/v1/statuses/abc", NULL, NULL, 404, "Record not found");
    rt_error(&env, "GET", "/api/v1/statuses/0", NULL, NULL, 404, NULL);
    rt_error(&env, "GET", "/api/v1/statuses/99999999999999999999", NULL, NULL, 404, NULL);
    rt_error(&env, "GET", "/api/v1/statuses/12345", alice, NULL, 404, NULL);
}

static bool cached(int64_t id)
{
    return tc_redis_int(&env, "EXISTS tusk:status:%lld", (long long)id) == 1;
}

static void test_delete(void **state)
{
    long long before = tc_sql_int(&env,
                                  "SELECT statuses_count FROM account_stats WHERE "
                                  "account_id = %lld",
                                  (long long)alice_id);
    int64_t id = rt_post(&env, alice, "{\"status\":\"to be <deleted>\",\"spoiler_text\":\"s\"}");
    const char *p = rt_fmt("/api/v1/statuses/%lld", (long long)id);
    json_decref(rt_call(&env, "GET", p, NULL, NULL, 200, NULL)); /* now in the status cache */
    assert_true(cached(id));
    /* a reblog of it by dave */
    long long reblog = tc_sql_int(&env,
                                  "INSERT INTO statuses (account_id, reblog_of_id, created_at, "
                                  "updated_at, local) VALUES (%lld, %lld, now(), now(), true) "
                                  "RETURNING id",
                                  (long long)dave_id, (long long)id);
    assert_true(reblog > 0);
    rt_error(&env, "DELETE", p, dave, NULL, 404, "Record not found"); /* not his */
    rt_error(&env, "DELETE", p, bob, NULL, 403, NULL);
    rt_error(&env, "DELETE", p, NULL, NULL, 401, NULL);
    rt_error(&env, "DELETE", "/api/v1/statuses/424242", alice, NULL, 404, NULL);
    json_t *s = rt_call(&env, "DELETE", p, writer, NULL, 200, NULL); /* a write-only token */
    rt_check_status(s);
    assert_int_equal(rt_id(s), id);
    assert_string_equal(str(s, "text"), "to be <deleted>"); /* the source, as Mastodon */
    assert_string_equal(str(s, "content"), "<p>to be &lt;deleted&gt;</p>");
    json_decref(s);
    assert_int_equal(tc_sql_int(&env,
                                "SELECT count(*) FROM statuses WHERE id IN (%lld, %lld) AND "
                                "deleted_at IS NOT NULL",
                                (long long)id, reblog),
                     2);
    assert_int_equal(tc_sql_int(&env,
                                "SELECT count(*) FROM tusk_outbox WHERE kind = 'status_deleted' "
                                "AND (payload->>'status_id')::bigint IN (%lld, %lld)",
                                (long long)id, reblog),
                     2);
    assert_int_equal(tc_sql_int(&env,
                                "SELECT statuses_count FROM account_stats WHERE "
                                "account_id = %lld",
                                (long long)alice_id),
                     before);
    assert_false(cached(id));
    rt_error(&env, "GET", p, NULL, NULL, 404, NULL);
    rt_error(&env, "DELETE", p, alice, NULL, 404, NULL);
    rt_error(&env, "GET", rt_fmt("/api/v1/statuses/%lld", reblog), NULL, NULL, 404, NULL);
}

static void test_idempotency(void **state)
{
    const char *h = rt_fmt("Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                           "Idempotency-Key: key-1\r\n",
                           alice);
    tc_resp r1, r2, r3;
    assert_true(tc_request(env.port, "POST", "/api/v1/statuses", h, "{\"status\":\"once\"}", &r1));
    assert_true(tc_request(env.port, "POST", "/api/v1/statuses", h, "{\"status\":\"once\"}", &r2));
    assert_int_equal(r1.status, 200);
    assert_int_equal(r2.status, 200);
    json_t *a = tc_json(&r1), *b = tc_json(&r2);
    assert_int_equal(rt_id(a), rt_id(b));
    assert_int_equal(tc_sql_int(&env, "SELECT count(*) FROM statuses WHERE text = 'once'"), 1);
    /* another account with the same key posts its own */
    const char *hd = rt_fmt("Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                            "Idempotency-Key: key-1\r\n",
                            dave);
    assert_true(tc_request(env.port, "POST", "/api/v1/statuses", hd, "{\"status\":\"once\"}", &r3));
    assert_int_equal(r3.status, 200);
    json_t *c = tc_json(&r3);
    assert_true(rt_id(c) != rt_id(a));
    assert_int_equal(
        tc_redis_int(&env, "EXISTS idempotency:status:%lld:key-1", (long long)alice_id), 1);
    assert_true(tc_redis_int(&env, "TTL idempotency:status:%lld:key-1", (long long)alice_id) >
                3000);
    json_decref(a);
    json_decref(b);
    json_decref(c);
    tc_resp_free(&r1);
    tc_resp_free(&r2);
    tc_resp_free(&r3);
    /* a request still being written holds the key: the retry is told to come back */
    tc_redis_int(&env, "SET idempotency:status:%lld:key-2 pending EX 60", (long long)alice_id);
    h = rt_fmt("Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
               "Idempotency-Key: key-2\r\n",
               alice);
    assert_true(tc_request(env.port, "POST", "/api/v1/statuses", h, "{\"status\":\"twice\"}", &r1));
    assert_int_equal(r1.status, 409);
    assert_string_equal(tc_header(&r1, "retry-after"), "1");
    tc_resp_free(&r1);
    /* a failed post gives its key back */
    h = rt_fmt("Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
               "Idempotency-Key: key-3\r\n",
               alice);
    assert_true(tc_request(env.port, "POST", "/api/v1/statuses", h,
                           "{\"status\":\"x\",\"in_reply_to_id\":\"1\"}", &r1));
    assert_int_equal(r1.status, 404);
    tc_resp_free(&r1);
    /* the DEL goes out on the api's Redis connection right after the answer */
    long long left = 1;
    for (int i = 0; i < 100 && left != 0; i++) {
        usleep(10000);
        left = tc_redis_int(&env, "EXISTS idempotency:status:%lld:key-3", (long long)alice_id);
    }
    assert_int_equal(left, 0);
}

/* ids of GET path by token */
static int list_ids(const char *path, const char *token, int64_t *out, tc_resp *r)
{
    json_t *j = rt_call(&env, "GET", path, token, NULL, 200, r);
    size_t i;
    json_t *e;
    json_array_foreach(j, i, e) rt_check_status(e);
    int n = rt_ids(j, out, 64);
    json_decref(j);
    return n;
}

static void test_account_statuses(void **state)
{
    int64_t acct = tc_account(&env, 20, "gina", "gina-tok", "read write follow");
    int64_t viewer = tc_account(&env, 21, "hank", "hank-tok", "read write follow");
    int64_t pub[5];
    for (int i = 0; i < 5; i++)
        pub[i] = rt_post(&env, "gina-tok", rt_fmt("{\"status\":\"public %d\"}", i));
    int64_t priv = rt_post(&env, "gina-tok", "{\"status\":\"p\",\"visibility\":\"private\"}");
    int64_t dm = rt_post(&env, "gina-tok", "{\"status\":\"@hank d\",\"visibility\":\"direct\"}");
    int64_t to_alice =
        rt_post(&env, "gina-tok",
                rt_fmt("{\"status\":\"r\",\"in_reply_to_id\":\"%lld\"}",
                       (long long)rt_post(&env, alice, "{\"status\":\"to reply to\"}")));
    int64_t self =
        rt_post(&env, "gina-tok",
                rt_fmt("{\"status\":\"self\",\"in_reply_to_id\":\"%lld\"}", (long long)pub[4]));
    const char *base = rt_fmt("/api/v1/accounts/%lld/statuses", (long long)acct);
    char path[512];
    int64_t ids[64];
    tc_resp r;
    /* anonymous: public ones (replies included), newest first */
    int n = list_ids(base, NULL, ids, &r);
    assert_int_equal(n, 7);
    assert_int_equal(ids[0], self);
    assert_int_equal(ids[1], to_alice);
    assert_int_equal(ids[2], pub[4]);
    assert_int_equal(ids[6], pub[0]);
    char want[1024];
    snprintf(want, sizeof(want), "<http://social.test%s?min_id=%lld>; rel=\"prev\"", base,
             (long long)self); /* 7 < 20: no next */
    assert_string_equal(tc_header(&r, "link"), want);
    tc_resp_free(&r);
    /* limit=2: both links, exactly as Rails writes them */
    snprintf(path, sizeof(path), "%s?limit=2", base);
    n = list_ids(path, NULL, ids, &r);
    assert_int_equal(n, 2);
    snprintf(want, sizeof(want),
             "<http://social.test%s?limit=2&max_id=%lld>; rel=\"next\", "
             "<http://social.test%s?limit=2&min_id=%lld>; rel=\"prev\"",
             base, (long long)to_alice, base, (long long)self);
    assert_string_equal(tc_header(&r, "link"), want);
    tc_resp_free(&r);
    /* following next */
    snprintf(path, sizeof(path), "%s?limit=2&max_id=%lld", base, (long long)to_alice);
    n = list_ids(path, NULL, ids, &r);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], pub[4]);
    assert_int_equal(ids[1], pub[3]);
    tc_resp_free(&r);
    /* a short last page has no next */
    snprintf(path, sizeof(path), "%s?limit=5&max_id=%lld&exclude_replies=true", base,
             (long long)pub[2]);
    n = list_ids(path, NULL, ids, &r);
    assert_int_equal(n, 2);
    snprintf(want, sizeof(want),
             "<http://social.test%s?exclude_replies=true&limit=5&min_id=%lld>; rel=\"prev\"", base,
             (long long)pub[1]);
    assert_string_equal(tc_header(&r, "link"), want);
    tc_resp_free(&r);
    /* limit edges: 0 and garbage give nothing (Ruby's to_i), 41 is capped, -3 is 3 */
    snprintf(path, sizeof(path), "%s?limit=0", base);
    assert_int_equal(list_ids(path, NULL, ids, &r), 0);
    assert_null(tc_header(&r, "link"));
    tc_resp_free(&r);
    snprintf(path, sizeof(path), "%s?limit=abc", base);
    assert_int_equal(list_ids(path, NULL, ids, NULL), 0);
    snprintf(path, sizeof(path), "%s?limit=41", base);
    assert_int_equal(list_ids(path, NULL, ids, NULL), 7);
    snprintf(path, sizeof(path), "%s?limit=-3", base);
    assert_int_equal(list_ids(path, NULL, ids, NULL), 3);
    snprintf(path, sizeof(path), "%s?limit=2x", base);
    assert_int_equal(list_ids(path, NULL, ids, NULL), 2);
    /* bounds: max_id below everything, max_id above everything, since_id, min_id */
    snprintf(path, sizeof(path), "%s?max_id=1", base);
    assert_int_equal(list_ids(path, NULL, ids, NULL), 0);
    snprintf(path, sizeof(path), "%s?max_id=9223372036854775807&limit=1", base);
    assert_int_equal(list_ids(path, NULL, ids, NULL), 1);
    assert_int_equal(ids[0], self);
    snprintf(path, sizeof(path), "%s?since_id=%lld", base, (long long)pub[3]);
    n = list_ids(path, NULL, ids, NULL);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], self);
    assert_int_equal(ids[2], pub[4]);
    snprintf(path, sizeof(path), "%s?min_id=%lld&limit=2", base, (long long)pub[1]);
    n = list_ids(path, NULL, ids, &r); /* the two just above, newest first */
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], pub[3]);
    assert_int_equal(ids[1], pub[2]);
    snprintf(want, sizeof(want),
             "<http://social.test%s?limit=2&max_id=%lld>; rel=\"next\", "
             "<http://social.test%s?limit=2&min_id=%lld>; rel=\"prev\"",
             base, (long long)pub[2], base, (long long)pub[3]);
    assert_string_equal(tc_header(&r, "link"), want);
    tc_resp_free(&r);
    snprintf(path, sizeof(path), "%s?min_id=%lld&since_id=1&max_id=%lld", base, (long long)pub[0],
             (long long)pub[3]);
    n = list_ids(path, NULL, ids, NULL);
    assert_int_equal(n, 2); /* min_id wins over since_id; max_id still bounds */
    assert_int_equal(ids[0], pub[2]);
    /* filters */
    snprintf(path, sizeof(path), "%s?exclude_replies=1", base);
    n = list_ids(path, NULL, ids, NULL);
    assert_int_equal(n, 6); /* the self-reply stays */
    snprintf(path, sizeof(path), "%s?pinned=true", base);
    assert_int_equal(list_ids(path, NULL, ids, NULL), 0);
    snprintf(path, sizeof(path), "%s?only_media=true", base);
    assert_int_equal(list_ids(path, NULL, ids, NULL), 0);
    snprintf(path, sizeof(path), "%s?pinned=false", base);
    assert_int_equal(list_ids(path, NULL, ids, NULL), 7);
    /* visibility by viewer: mentioned sees the direct one, a follower the private one, the
     * author everything */
    assert_int_equal(list_ids(base, "hank-tok", ids, NULL), 8);
    assert_true(tc_sql(&env,
                       "INSERT INTO follows (account_id, target_account_id, created_at, "
                       "updated_at) VALUES (%lld, %lld, now(), now())",
                       (long long)viewer, (long long)acct));
    assert_int_equal(list_ids(base, "hank-tok", ids, NULL), 9);
    assert_int_equal(list_ids(base, "gina-tok", ids, NULL), 9);
    (void)priv;
    (void)dm;
    /* blocked by the author: nothing */
    assert_true(tc_sql(&env,
                       "INSERT INTO blocks (account_id, target_account_id, created_at, updated_at) "
                       "VALUES (%lld, %lld, now(), now())",
                       (long long)acct, (long long)frank_id));
    assert_int_equal(list_ids(base, frank, ids, NULL), 0);
    /* unknown account, bad id */
    rt_error(&env, "GET", "/api/v1/accounts/77/statuses", NULL, NULL, 404, "Record not found");
    rt_error(&env, "GET", "/api/v1/accounts/x1/statuses", NULL, NULL, 404, NULL);
    /* scopes: a token without read:statuses */
    rt_error(&env, "GET", base, rt_fmt("profile-%d", (int)getpid()), NULL, 403, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_post_json),   cmocka_unit_test(test_post_form),
        cmocka_unit_test(test_post_errors), cmocka_unit_test(test_reply),
        cmocka_unit_test(test_visibility),  cmocka_unit_test(test_delete),
        cmocka_unit_test(test_idempotency), cmocka_unit_test(test_account_statuses),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
