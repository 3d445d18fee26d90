/*
 * Integration tests of api/lists.c: the List entity, create/show/update/delete with
 * Mastodon's validations and ownership, members (only followed accounts, 404 for unknown
 * ones, 422 for duplicates, outbox jobs), member pagination and Link headers, and scopes.
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

static tc_env env;
static char bob[64], app[64], dave[64], erin[64];
static int64_t alice_id, dave_id, erin_id;

static int setup(void **state)
{
    tc_env_start_full(&env, "rate_limit_per_5min = 0\n", false); /* feed:list keys are ours */
    int pid = (int)getpid();
    snprintf(bob, sizeof(bob), "bob-%d", pid);
    snprintf(app, sizeof(app), "app-%d", pid);
    snprintf(dave, sizeof(dave), "dave-%d", pid);
    snprintf(erin, sizeof(erin), "erin-%d", pid);
    alice_id = env.base + 1;
    dave_id = tc_account(&env, 10, "dave", dave, "read write follow");
    erin_id = tc_account(&env, 11, "erin", erin, "read:lists write:lists");
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

static void check_list(json_t *l, const char *title, const char *policy, bool exclusive)
{
    assert_true(json_is_string(json_object_get(l, "id")));
    assert_string_equal(str(l, "title"), title);
    assert_string_equal(str(l, "replies_policy"), policy);
    assert_true(json_is_boolean(json_object_get(l, "exclusive")));
    assert_int_equal(json_is_true(json_object_get(l, "exclusive")), exclusive);
}

static int64_t create(const char *token, const char *body)
{
    json_t *l = rt_call(&env, "POST", "/api/v1/lists", token, body, 200, NULL);
    int64_t id = rt_id(l);
    json_decref(l);
    return id;
}

static void test_crud(void **state)
{
    json_t *l = rt_call(&env, "POST", "/api/v1/lists", dave, "{\"title\":\"Friends\"}", 200, NULL);
    check_list(l, "Friends", "list", false);
    int64_t a = rt_id(l);
    json_decref(l);
    l = rt_call(&env, "POST", "/api/v1/lists", dave,
                "{\"title\":\"Work\",\"replies_policy\":\"followed\",\"exclusive\":true}", 200,
                NULL);
    check_list(l, "Work", "followed", true);
    int64_t b = rt_id(l);
    json_decref(l);
    /* index: the account's own lists only, oldest first */
    create(erin, "{\"title\":\"not dave's\"}");
    l = rt_call(&env, "GET", "/api/v1/lists", dave, NULL, 200, NULL);
    assert_int_equal(json_array_size(l), 2);
    assert_int_equal(rt_id(json_array_get(l, 0)), a);
    assert_int_equal(rt_id(json_array_get(l, 1)), b);
    json_decref(l);
    /* show, update (partial), delete */
    const char *pa = rt_fmt("/api/v1/lists/%lld", (long long)a);
    l = rt_call(&env, "GET", pa, dave, NULL, 200, NULL);
    check_list(l, "Friends", "list", false);
    json_decref(l);
    l = rt_call(&env, "PUT", pa, dave, "{\"replies_policy\":\"none\"}", 200, NULL);
    check_list(l, "Friends", "none", false);
    json_decref(l);
    l = rt_call(&env, "PUT", pa, dave, "{\"title\":\"Pals\",\"exclusive\":\"1\"}", 200, NULL);
    check_list(l, "Pals", "none", true);
    json_decref(l);
    rt_error(&env, "GET", pa, erin, NULL, 404, "Record not found");
    rt_error(&env, "PUT", pa, erin, "{\"title\":\"mine\"}", 404, "Record not found");
    rt_error(&env, "DELETE", pa, erin, NULL, 404, "Record not found");
    /* its feed in Redis goes with it */
    tc_redis_int(&env, "ZADD feed:list:%lld 1 1", (long long)a);
    l = rt_call(&env, "DELETE", pa, dave, NULL, 200, NULL);
    assert_int_equal(json_object_size(l), 0);
    json_decref(l);
    assert_int_equal(tc_redis_int(&env, "EXISTS feed:list:%lld", (long long)a), 0);
    rt_error(&env, "GET", pa, dave, NULL, 404, NULL);
    rt_error(&env, "DELETE", pa, dave, NULL, 404, NULL);
    rt_error(&env, "GET", "/api/v1/lists/abc", dave, NULL, 404, NULL);
    rt_error(&env, "GET", "/api/v1/lists/987654", dave, NULL, 404, NULL);
}

static void test_validation(void **state)
{
    rt_error(&env, "POST", "/api/v1/lists", dave, "{}", 422, "Title can't be blank");
    rt_error(&env, "POST", "/api/v1/lists", dave, "{\"title\":\"  \"}", 422,
             "Title can't be blank");
    rt_error(&env, "POST", "/api/v1/lists", dave, "{\"title\":\"x\",\"replies_policy\":\"all\"}",
             422, "Replies policy is not included in the list");
    int64_t id = create(dave, "{\"title\":\"v\"}");
    const char *p = rt_fmt("/api/v1/lists/%lld", (long long)id);
    rt_error(&env, "PUT", p, dave, "{\"title\":\"\"}", 422, "Title can't be blank");
    rt_error(&env, "PUT", p, dave, "{\"replies_policy\":\"x\"}", 422, "Replies policy");
    /* the per-account limit of 50 */
    long long have =
        tc_sql_int(&env, "SELECT count(*) FROM lists WHERE account_id = %lld", (long long)erin_id);
    assert_true(tc_sql(&env,
                       "INSERT INTO lists (account_id, title, created_at, updated_at) SELECT "
                       "%lld, 'filler', now(), now() FROM generate_series(1, %lld)",
                       (long long)erin_id, 50 - have));
    rt_error(&env, "POST", "/api/v1/lists", erin, "{\"title\":\"51st\"}", 422,
             "maximum number of lists");
    /* scopes and users */
    rt_error(&env, "POST", "/api/v1/lists", bob, "{\"title\":\"x\"}", 403, NULL);
    rt_error(&env, "GET", "/api/v1/lists", app, NULL, 422, "requires an authenticated user");
    rt_error(&env, "GET", "/api/v1/lists", NULL, NULL, 401, NULL);
    json_decref(rt_call(&env, "GET", "/api/v1/lists", bob, NULL, 200, NULL));
}

static long long outbox(const char *kind, int64_t list, int64_t account)
{
    return tc_sql_int(&env,
                      "SELECT count(*) FROM tusk_outbox WHERE kind = '%s' AND "
                      "(payload->>'list_id')::bigint = %lld AND (payload->>'account_id')::bigint = "
                      "%lld",
                      kind, (long long)list, (long long)account);
}

static void follow(int64_t from, int64_t to)
{
    assert_true(tc_sql(&env,
                       "INSERT INTO follows (account_id, target_account_id, created_at, "
                       "updated_at) VALUES (%lld, %lld, now(), now())",
                       (long long)from, (long long)to));
}

static void test_members(void **state)
{
    int64_t list = create(dave, "{\"title\":\"members\"}");
    char p[128]; /* rt_fmt's buffers rotate: keep the path */
    snprintf(p, sizeof(p), "/api/v1/lists/%lld/accounts", (long long)list);
    int64_t m[4];
    char name[32], tok[32];
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof(name), "member%d", i);
        snprintf(tok, sizeof(tok), "member%d-tok", i);
        m[i] = tc_account(&env, 30 + i, name, tok, "read");
    }
    /* not followed: 422 as Mastodon; unknown: 404; nothing is added by a failed call */
    rt_error(&env, "POST", p, dave, rt_fmt("{\"account_ids\":[\"%lld\"]}", (long long)m[0]), 422,
             "follow relationship missing");
    follow(dave_id, m[0]);
    rt_error(&env, "POST", p, dave,
             rt_fmt("{\"account_ids\":[\"%lld\",\"31337\"]}", (long long)m[0]), 404,
             "Record not found");
    rt_error(&env, "POST", p, dave, "{\"account_ids\":[\"nope\"]}", 404, NULL);
    assert_int_equal(tc_sql_int(&env, "SELECT count(*) FROM list_accounts WHERE list_id = %lld",
                                (long long)list),
                     0);
    for (int i = 1; i < 4; i++)
        follow(dave_id, m[i]);
    /* form body with account_ids[] */
    tc_resp r;
    assert_true(tc_request(
        env.port, "POST", p,
        rt_fmt("Authorization: Bearer %s\r\nContent-Type: "
               "application/x-www-form-urlencoded\r\n",
               dave),
        rt_fmt("account_ids[]=%lld&account_ids[]=%lld", (long long)m[0], (long long)m[1]), &r));
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{}");
    tc_resp_free(&r);
    json_decref(rt_call(&env, "POST", p, dave,
                        rt_fmt("{\"account_ids\":[%lld,%lld]}", (long long)m[2], (long long)m[3]),
                        200, NULL));
    /* the owner may be a member of the owner's list */
    json_decref(rt_call(&env, "POST", p, dave,
                        rt_fmt("{\"account_ids\":[\"%lld\"]}", (long long)dave_id), 200, NULL));
    rt_error(&env, "POST", p, dave, rt_fmt("{\"account_ids\":[\"%lld\"]}", (long long)m[1]), 422,
             "has already been taken");
    for (int i = 0; i < 4; i++)
        assert_int_equal(outbox("list_add", list, m[i]), 1);
    assert_int_equal(tc_sql_int(&env,
                                "SELECT count(*) FROM list_accounts la JOIN follows f ON f.id = "
                                "la.follow_id WHERE la.list_id = %lld",
                                (long long)list),
                     4);
    /* listing: Account entities, newest account first, paged by account id */
    json_t *a = rt_call(&env, "GET", p, dave, NULL, 200, NULL);
    assert_int_equal(json_array_size(a), 5);
    assert_true(json_is_string(json_object_get(json_array_get(a, 0), "acct")));
    json_decref(a);
    a = rt_call(&env, "GET", rt_fmt("%s?limit=2", p), dave, NULL, 200, &r);
    int64_t ids[8];
    assert_int_equal(rt_ids(a, ids, 8), 2);
    assert_int_equal(ids[0], m[3]);
    assert_int_equal(ids[1], m[2]);
    char want[1024];
    snprintf(want, sizeof(want),
             "<http://social.test%s?limit=2&max_id=%lld>; rel=\"next\", "
             "<http://social.test%s?limit=2&since_id=%lld>; rel=\"prev\"",
             p, (long long)m[2], p, (long long)m[3]);
    assert_string_equal(tc_header(&r, "link"), want);
    tc_resp_free(&r);
    json_decref(a);
    a = rt_call(&env, "GET", rt_fmt("%s?limit=2&max_id=%lld", p, (long long)m[2]), dave, NULL, 200,
                NULL);
    assert_int_equal(rt_ids(a, ids, 8), 2);
    assert_int_equal(ids[0], m[1]);
    json_decref(a);
    a = rt_call(&env, "GET", rt_fmt("%s?since_id=%lld", p, (long long)m[1]), dave, NULL, 200, NULL);
    assert_int_equal(rt_ids(a, ids, 8), 2);
    json_decref(a);
    a = rt_call(&env, "GET", rt_fmt("%s?limit=0", p), dave, NULL, 200, &r); /* everyone */
    assert_int_equal(json_array_size(a), 5);
    assert_null(tc_header(&r, "link"));
    tc_resp_free(&r);
    json_decref(a);
    rt_error(&env, "GET", p, erin, NULL, 404, "Record not found");
    /* removal */
    json_decref(rt_call(
        &env, "DELETE", p, dave,
        rt_fmt("{\"account_ids\":[\"%lld\",\"%lld\",\"4444\"]}", (long long)m[0], (long long)m[3]),
        200, NULL));
    assert_int_equal(outbox("list_remove", list, m[0]), 1);
    assert_int_equal(outbox("list_remove", list, m[3]), 1);
    a = rt_call(&env, "GET", p, dave, NULL, 200, NULL);
    assert_int_equal(json_array_size(a), 3);
    json_decref(a);
    rt_error(&env, "DELETE", p, erin, "{\"account_ids\":[\"1\"]}", 404, NULL);
    rt_error(&env, "POST", p, bob, "{\"account_ids\":[\"1\"]}", 403, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crud),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_members),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
