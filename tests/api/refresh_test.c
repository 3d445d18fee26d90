/*
 * Integration tests of api/refresh.c: GET /api/v1_alpha/async_refreshes/:id answering the
 * refresh a 206 home or list timeline announced in Mastodon-Async-Refresh, against a real
 * Redis (private, no fan-out: the test holds the regeneration markers itself) and
 * PostgreSQL. Both marker forms: tusk's plain string (running while it exists) and Mastodon
 * 4.4's AsyncRefresh hash (status running/finished, result_count); the signed id format;
 * 404 for tampered, foreign and finished-and-gone refreshes; 401, 403 and 422 as Mastodon's
 * doorkeeper_authorize! :read and require_user! answer them.
 */
#include "tests/api/rest.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define SECRET "refresh-test-secret"

static tc_env env;
static int64_t rex_id;
static char app_tok[64], alice_tok[64];

static int setup(void **state)
{
    tc_env_start_full(
        &env, "rate_limit_per_5min = 0\nauth_cache_ms = 300\nsecret_key_base = " SECRET "\n",
        false);
    rex_id = tc_account(&env, 10, "rex", "rex-tok", "read write follow");
    tc_account(&env, 11, "sue", "sue-tok", "read:statuses");
    snprintf(app_tok, sizeof(app_tok), "app-%d", (int)getpid());
    snprintf(alice_tok, sizeof(alice_tok), "alice-%d", (int)getpid());
    return 0;
}

static int teardown(void **state)
{
    tc_env_stop(&env);
    return 0;
}

/* the id the api must give for key under secret: base64url(JSON string)--hex HMAC-SHA256,
 * the HMAC key being HMAC-SHA256(secret, "async_refreshes") */
static void expected_id(const char *secret, const char *key, char *out, size_t cap)
{
    unsigned char k[32], mac[32];
    unsigned int n;
    assert_non_null(HMAC(EVP_sha256(), secret, (int)strlen(secret),
                         (const unsigned char *)"async_refreshes", 15, k, &n));
    char json[128];
    snprintf(json, sizeof(json), "\"%s\"", key);
    unsigned char b64[256];
    int bl = EVP_EncodeBlock(b64, (const unsigned char *)json, (int)strlen(json));
    while (bl > 0 && b64[bl - 1] == '=')
        bl--;
    b64[bl] = '\0';
    for (int i = 0; i < bl; i++)
        b64[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
    assert_non_null(HMAC(EVP_sha256(), k, 32, b64, (size_t)bl, mac, &n));
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    assert_true((size_t)bl + 2 + 64 < cap);
    memcpy(out, b64, (size_t)bl);
    memcpy(out + bl, "--", 2);
    memcpy(out + bl + 2, hex, 65);
}

/* GET path; its status, and the id of its Mastodon-Async-Refresh header into id ("" when
 * there is none; the header's format is checked) */
static int timeline(const char *path, const char *token, char *id, size_t cap)
{
    tc_resp r;
    assert_true(tc_call(&env, "GET", path, token, NULL, &r));
    int st = r.status;
    const char *h = tc_header(&r, "mastodon-async-refresh");
    id[0] = '\0';
    if (h) {
        regex_t re;
        regmatch_t m[2];
        assert_int_equal(
            regcomp(&re, "^id=\"([A-Za-z0-9_-]+--[0-9a-f]{64})\", retry=5$", REG_EXTENDED), 0);
        if (regexec(&re, h, 2, m, 0) != 0)
            fail_msg("bad Mastodon-Async-Refresh: %s", h);
        snprintf(id, cap, "%.*s", (int)(m[1].rm_eo - m[1].rm_so), h + m[1].rm_so);
        regfree(&re);
    }
    tc_resp_free(&r);
    return st;
}

/* GET the refresh: its status (NULL for null) and result_count (-1 for null) */
static void refresh(const char *id, const char *token, const char *want_status,
                    long long want_count)
{
    json_t *j = rt_call(&env, "GET", rt_fmt("/api/v1_alpha/async_refreshes/%s", id), token, NULL,
                        200, NULL);
    assert_int_equal(json_object_size(j), 1);
    json_t *a = json_object_get(j, "async_refresh");
    assert_true(json_is_object(a));
    assert_int_equal(json_object_size(a), 3);
    assert_string_equal(json_string_value(json_object_get(a, "id")), id);
    json_t *st = json_object_get(a, "status");
    if (want_status)
        assert_string_equal(json_string_value(st), want_status);
    else
        assert_true(json_is_null(st));
    json_t *c = json_object_get(a, "result_count");
    if (want_count < 0)
        assert_true(json_is_null(c));
    else
        assert_int_equal(json_integer_value(c), want_count);
    json_decref(j);
}

static void test_home_refresh(void **state)
{
    char id[256], want[256], key[64];
    snprintf(key, sizeof(key), "account:%lld:regeneration", (long long)rex_id);
    /* no feed: the api asks for a rebuild (nobody runs it here) and announces the refresh */
    assert_int_equal(timeline("/api/v1/timelines/home", "rex-tok", id, sizeof(id)), 206);
    expected_id(SECRET, key, want, sizeof(want));
    assert_string_equal(id, want);
    /* tusk's marker: a plain string while the rebuild runs */
    assert_int_equal(tc_redis_int(&env, "EXISTS %s", key), 1);
    refresh(id, "rex-tok", "running", -1);
    /* another account may ask too (Mastodon checks the signature, not the owner) */
    refresh(id, alice_tok, "running", -1);

    /* Mastodon 4.4's AsyncRefresh hash, running, with a count */
    tc_redis_int(&env, "DEL %s", key);
    tc_redis_int(&env, "HSET %s status running result_count 3", key);
    refresh(id, "rex-tok", "running", 3);
    char again[256];
    assert_int_equal(timeline("/api/v1/timelines/home", "rex-tok", again, sizeof(again)), 206);
    assert_string_equal(again, id);

    /* finished: kept for an hour in Mastodon; the timeline is no longer partial */
    tc_redis_int(&env, "HSET %s status finished", key);
    refresh(id, "rex-tok", "finished", 3);
    assert_int_equal(timeline("/api/v1/timelines/home", "rex-tok", again, sizeof(again)), 200);
    assert_string_equal(again, "");

    /* gone (expired, or tusk's marker deleted when the rebuild ended) */
    tc_redis_int(&env, "DEL %s", key);
    rt_error(&env, "GET", rt_fmt("/api/v1_alpha/async_refreshes/%s", id), "rex-tok", NULL, 404,
             "Record not found");
}

static void test_list_refresh(void **state)
{
    char id[256], want[256], key[64];
    int64_t list = env.base + 1; /* alice's list */
    snprintf(key, sizeof(key), "list:%lld:regeneration", (long long)list);
    assert_int_equal(
        timeline(rt_fmt("/api/v1/timelines/list/%lld", (long long)list), alice_tok, id, sizeof(id)),
        206);
    expected_id(SECRET, key, want, sizeof(want));
    assert_string_equal(id, want);
    refresh(id, alice_tok, "running", -1);
    tc_redis_int(&env, "DEL %s", key);
}

static void test_errors(void **state)
{
    char id[256], bad[256], key[64];
    snprintf(key, sizeof(key), "account:%lld:regeneration", (long long)rex_id);
    tc_redis_int(&env, "SET %s true", key);
    expected_id(SECRET, key, id, sizeof(id));
    refresh(id, "rex-tok", "running", -1);
    /* a digest changed in its last digit */
    snprintf(bad, sizeof(bad), "%s", id);
    bad[strlen(bad) - 1] = bad[strlen(bad) - 1] == '0' ? '1' : '0';
    rt_error(&env, "GET", rt_fmt("/api/v1_alpha/async_refreshes/%s", bad), "rex-tok", NULL, 404,
             "Record not found");
    /* signed with another secret */
    expected_id("another-secret", key, bad, sizeof(bad));
    rt_error(&env, "GET", rt_fmt("/api/v1_alpha/async_refreshes/%s", bad), "rex-tok", NULL, 404,
             "Record not found");
    /* a key the api never signs, signed the right way: only feed markers are answered */
    expected_id(SECRET, "tusk:status:1", bad, sizeof(bad));
    rt_error(&env, "GET", rt_fmt("/api/v1_alpha/async_refreshes/%s", bad), "rex-tok", NULL, 404,
             "Record not found");
    /* not an id at all */
    const char *junk[] = {"abc", "--", "YWJj--zz", "%22", "a--0123456789abcdef"};
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
        rt_error(&env, "GET", rt_fmt("/api/v1_alpha/async_refreshes/%s", junk[i]), "rex-tok", NULL,
                 404, "Record not found");
    /* Mastodon: doorkeeper_authorize! :read, require_user! */
    rt_error(&env, "GET", rt_fmt("/api/v1_alpha/async_refreshes/%s", id), NULL, NULL, 401,
             "The access token is invalid");
    rt_error(&env, "GET", rt_fmt("/api/v1_alpha/async_refreshes/%s", id), "sue-tok", NULL, 403,
             "This action is outside the authorized scopes");
    rt_error(&env, "GET", rt_fmt("/api/v1_alpha/async_refreshes/%s", id), app_tok, NULL, 422,
             "This method requires an authenticated user");
    rt_error(&env, "POST", rt_fmt("/api/v1_alpha/async_refreshes/%s", id), "rex-tok", NULL, 405,
             "Method not allowed");
    tc_redis_int(&env, "DEL %s", key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_home_refresh),
        cmocka_unit_test(test_list_refresh),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
