/*
 * Integration tests of api/relations.c: follow and unfollow (the follows row, both counters,
 * the outbox job, options on an existing follow, list memberships going with the follow),
 * the Relationship entity, GET /api/v1/accounts/relationships, and the error statuses.
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
static char bob[64], dave[64], erin[64], frank[64];
static int64_t alice_id, dave_id, erin_id, frank_id;

static int setup(void **state)
{
    tc_env_start(&env, "rate_limit_per_5min = 0\n");
    int pid = (int)getpid();
    snprintf(bob, sizeof(bob), "bob-%d", pid);
    snprintf(dave, sizeof(dave), "dave-%d", pid);
    snprintf(erin, sizeof(erin), "erin-%d", pid);
    snprintf(frank, sizeof(frank), "frank-%d", pid);
    alice_id = env.base + 1;
    dave_id = tc_account(&env, 10, "dave", dave, "read write follow");
    erin_id = tc_account(&env, 11, "erin", erin, "follow read:follows");
    frank_id = tc_account(&env, 12, "frank", frank, "read write follow");
    return 0;
}

static int teardown(void **state)
{
    tc_env_stop(&env);
    return 0;
}

static bool b(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_boolean(v))
        fail_msg("relationship field %s missing", k);
    return json_is_true(v);
}

/* every field of Mastodon's Relationship entity */
static void check_relationship(json_t *r, int64_t id)
{
    static const char *const bools[] = {
        "following", "showing_reblogs", "notifying",       "followed_by",
        "blocking",  "blocked_by",      "muting",          "muting_notifications",
        "requested", "requested_by",    "domain_blocking", "endorsed"};
    assert_int_equal(rt_id(r), id);
    for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++)
        b(r, bools[i]);
    assert_true(json_is_string(json_object_get(r, "note")));
    assert_non_null(json_object_get(r, "languages"));
}

static long long stat(int64_t account, const char *col)
{
    return tc_sql_int(&env,
                      "SELECT coalesce((SELECT %s FROM account_stats WHERE account_id = "
                      "%lld), 0)",
                      col, (long long)account);
}

static long long outbox(const char *kind, int64_t from, int64_t to)
{
    return tc_sql_int(&env,
                      "SELECT count(*) FROM tusk_outbox WHERE kind = '%s' AND "
                      "(payload->>'account_id')::bigint = %lld AND "
                      "(payload->>'target_account_id')::bigint = %lld",
                      kind, (long long)from, (long long)to);
}

static void test_follow_unfollow(void **state)
{
    const char *fp = rt_fmt("/api/v1/accounts/%lld/follow", (long long)dave_id);
    const char *up = rt_fmt("/api/v1/accounts/%lld/unfollow", (long long)dave_id);
    /* erin's token has the legacy "follow" scope, which grants write:follows */
    json_t *r = rt_call(&env, "POST", fp, erin, NULL, 200, NULL);
    check_relationship(r, dave_id);
    assert_true(b(r, "following"));
    assert_true(b(r, "showing_reblogs"));
    assert_false(b(r, "notifying"));
    assert_false(b(r, "followed_by"));
    assert_false(b(r, "requested"));
    assert_true(json_is_null(json_object_get(r, "languages")));
    json_decref(r);
    assert_int_equal(stat(erin_id, "following_count"), 1);
    assert_int_equal(stat(dave_id, "followers_count"), 1);
    assert_int_equal(outbox("follow", erin_id, dave_id), 1);
    /* following again changes only the options: no counter, no new job */
    r = rt_call(&env, "POST", fp, erin,
                "{\"reblogs\":false,\"notify\":true,\"languages\":[\"en\",\"de\"]}", 200, NULL);
    assert_true(b(r, "following"));
    assert_false(b(r, "showing_reblogs"));
    assert_true(b(r, "notifying"));
    json_t *langs = json_object_get(r, "languages");
    assert_int_equal(json_array_size(langs), 2);
    assert_string_equal(json_string_value(json_array_get(langs, 0)), "en");
    json_decref(r);
    r = rt_call(&env, "POST", fp, erin, "{}", 200, NULL); /* options not given are kept */
    assert_false(b(r, "showing_reblogs"));
    json_decref(r);
    assert_int_equal(stat(erin_id, "following_count"), 1);
    assert_int_equal(outbox("follow", erin_id, dave_id), 1);
    assert_int_equal(tc_sql_int(&env,
                                "SELECT count(*) FROM follows WHERE account_id = %lld AND "
                                "target_account_id = %lld AND NOT show_reblogs AND notify AND "
                                "languages = '{en,de}'",
                                (long long)erin_id, (long long)dave_id),
                     1);
    /* dave sees erin as a follower */
    r = rt_call(&env, "GET", rt_fmt("/api/v1/accounts/relationships?id=%lld", (long long)erin_id),
                dave, NULL, 200, NULL);
    assert_int_equal(json_array_size(r), 1);
    assert_true(b(json_array_get(r, 0), "followed_by"));
    assert_false(b(json_array_get(r, 0), "following"));
    json_decref(r);
    /* a list membership goes with the follow */
    long long list = tc_sql_int(&env,
                                "INSERT INTO lists (account_id, title, created_at, updated_at) "
                                "VALUES (%lld, 'l', now(), now()) RETURNING id",
                                (long long)erin_id);
    assert_true(tc_sql(&env,
                       "INSERT INTO list_accounts (list_id, account_id, follow_id) SELECT %lld, "
                       "%lld, id FROM follows WHERE account_id = %lld AND target_account_id = %lld",
                       list, (long long)dave_id, (long long)erin_id, (long long)dave_id));
    r = rt_call(&env, "POST", up, erin, NULL, 200, NULL);
    check_relationship(r, dave_id);
    assert_false(b(r, "following"));
    assert_false(b(r, "showing_reblogs"));
    assert_true(json_is_null(json_object_get(r, "languages")));
    json_decref(r);
    assert_int_equal(stat(erin_id, "following_count"), 0);
    assert_int_equal(stat(dave_id, "followers_count"), 0);
    assert_int_equal(outbox("unfollow", erin_id, dave_id), 1);
    assert_int_equal(
        tc_sql_int(&env, "SELECT count(*) FROM list_accounts WHERE list_id = %lld", list), 0);
    /* unfollowing someone not followed: the relationship, nothing written */
    json_decref(rt_call(&env, "POST", up, erin, NULL, 200, NULL));
    assert_int_equal(outbox("unfollow", erin_id, dave_id), 1);
    assert_int_equal(stat(erin_id, "following_count"), 0);
}

static void test_locked_account(void **state)
{
    /* tusk has no follow requests: a locked account is followed at once */
    assert_true(
        tc_sql(&env, "UPDATE accounts SET locked = true WHERE id = %lld", (long long)frank_id));
    json_t *r = rt_call(&env, "POST", rt_fmt("/api/v1/accounts/%lld/follow", (long long)frank_id),
                        dave, NULL, 200, NULL);
    assert_true(b(r, "following"));
    assert_false(b(r, "requested"));
    json_decref(r);
}

static void test_relationships(void **state)
{
    assert_true(tc_sql(&env,
                       "INSERT INTO blocks (account_id, target_account_id, created_at, updated_at) "
                       "VALUES (%lld, %lld, now(), now())",
                       (long long)dave_id, (long long)alice_id));
    assert_true(tc_sql(&env,
                       "INSERT INTO mutes (account_id, target_account_id, created_at, updated_at, "
                       "hide_notifications) VALUES (%lld, %lld, now(), now(), false)",
                       (long long)dave_id, (long long)erin_id));
    json_t *r = rt_call(
        &env, "GET",
        rt_fmt("/api/v1/accounts/relationships?id[]=%lld&id[]=%lld&id[]=777&id[]=abc&id[]=%lld",
               (long long)erin_id, (long long)alice_id, (long long)erin_id),
        dave, NULL, 200, NULL);
    /* in the order asked, unknown ids left out, duplicates once */
    assert_int_equal(json_array_size(r), 2);
    json_t *e = json_array_get(r, 0), *a = json_array_get(r, 1);
    check_relationship(e, erin_id);
    check_relationship(a, alice_id);
    assert_true(b(e, "muting"));
    assert_false(b(e, "muting_notifications"));
    assert_true(b(a, "blocking"));
    assert_false(b(a, "blocked_by"));
    json_decref(r);
    r = rt_call(&env, "GET", rt_fmt("/api/v1/accounts/relationships?id[]=%lld", (long long)dave_id),
                rt_fmt("alice-%d", (int)getpid()), NULL, 200, NULL);
    assert_true(b(json_array_get(r, 0), "blocked_by"));
    json_decref(r);
    r = rt_call(&env, "GET", "/api/v1/accounts/relationships", dave, NULL, 200, NULL);
    assert_int_equal(json_array_size(r), 0);
    json_decref(r);
    /* JSON body with numbers works too */
    r = rt_call(&env, "GET", "/api/v1/accounts/relationships", dave,
                rt_fmt("{\"id\":[%lld]}", (long long)erin_id), 200, NULL);
    assert_int_equal(json_array_size(r), 1);
    json_decref(r);
    rt_error(&env, "GET", "/api/v1/accounts/relationships", NULL, NULL, 401, NULL);
    rt_error(&env, "GET", "/api/v1/accounts/relationships", rt_fmt("profile-%d", (int)getpid()),
             NULL, 403, NULL);
}

static void test_follow_errors(void **state)
{
    const char *fp = rt_fmt("/api/v1/accounts/%lld/follow", (long long)dave_id);
    rt_error(&env, "POST", fp, NULL, NULL, 401, "The access token is invalid");
    rt_error(&env, "POST", fp, bob, NULL, 403, "outside the authorized scopes");
    rt_error(&env, "POST", rt_fmt("/api/v1/accounts/%lld/follow", (long long)erin_id), erin, NULL,
             404, "Record not found"); /* oneself */
    rt_error(&env, "POST", "/api/v1/accounts/4242/follow", erin, NULL, 404, "Record not found");
    rt_error(&env, "POST", "/api/v1/accounts/x/follow", erin, NULL, 404, NULL);
    rt_error(&env, "POST", "/api/v1/accounts/4242/unfollow", erin, NULL, 404, NULL);
    rt_error(&env, "GET", fp, erin, NULL, 405, NULL);
    /* blocks either way forbid it */
    rt_error(&env, "POST", rt_fmt("/api/v1/accounts/%lld/follow", (long long)alice_id), dave, NULL,
             403, "This action is not allowed");
    rt_error(&env, "POST", fp, rt_fmt("alice-%d", (int)getpid()), NULL, 403,
             "This action is not allowed");
    rt_error(&env, "POST", fp, erin, "{\"languages\":[\"e n\"]}", 422, "Languages");
    assert_int_equal(outbox("follow", alice_id, dave_id), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_follow_unfollow),
        cmocka_unit_test(test_locked_account),
        cmocka_unit_test(test_relationships),
        cmocka_unit_test(test_follow_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
