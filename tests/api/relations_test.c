/*
 * Integration tests of api/relations.c: follow and unfollow (the follows row, both counters,
 * the outbox job, options on an existing follow, list memberships going with the follow),
 * follow requests (locked targets and silenced followers: the request and its options,
 * requested / requested_by, GET /api/v1/follow_requests with its Link paging, authorize
 * through the follow path, reject, unfollow cancelling), the Relationship entity, GET
 * /api/v1/accounts/relationships, and the error statuses.
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

static long long requests(int64_t from, int64_t to)
{
    return tc_sql_int(&env,
                      "SELECT count(*) FROM follow_requests WHERE account_id = %lld AND "
                      "target_account_id = %lld",
                      (long long)from, (long long)to);
}

static long long request_id(int64_t from, int64_t to)
{
    return tc_sql_int(&env,
                      "SELECT id FROM follow_requests WHERE account_id = %lld AND "
                      "target_account_id = %lld",
                      (long long)from, (long long)to);
}

/* GET path as token: the account ids (into ids) and the Link header (into link) */
static int request_page(const char *path, const char *token, int64_t *ids, char *link, size_t cap)
{
    tc_resp r;
    json_t *j = rt_call(&env, "GET", path, token, NULL, 200, &r);
    const char *l = tc_header(&r, "link");
    snprintf(link, cap, "%s", l ? l : "");
    tc_resp_free(&r);
    int n = rt_ids(j, ids, 16);
    for (int i = 0; i < n; i++)
        assert_true(json_is_string(json_object_get(json_array_get(j, (size_t)i), "acct")));
    json_decref(j);
    return n;
}

static void test_locked_account(void **state)
{
    char alice[64];
    snprintf(alice, sizeof(alice), "alice-%d", (int)getpid());
    const char *dave_fp = rt_fmt("/api/v1/accounts/%lld/follow", (long long)frank_id);
    assert_true(
        tc_sql(&env, "UPDATE accounts SET locked = true WHERE id = %lld", (long long)frank_id));
    /* a locked account: a request with the options asked for, no follow, no counters, no job */
    json_t *r = rt_call(&env, "POST", dave_fp, dave, "{\"reblogs\":false,\"languages\":[\"en\"]}",
                        200, NULL);
    check_relationship(r, frank_id);
    assert_false(b(r, "following"));
    assert_true(b(r, "requested"));
    assert_false(b(r, "showing_reblogs"));
    assert_false(b(r, "notifying"));
    assert_string_equal(json_string_value(json_array_get(json_object_get(r, "languages"), 0)),
                        "en");
    json_decref(r);
    assert_int_equal(requests(dave_id, frank_id), 1);
    assert_int_equal(tc_sql_int(&env,
                                "SELECT count(*) FROM follows WHERE account_id = %lld AND "
                                "target_account_id = %lld",
                                (long long)dave_id, (long long)frank_id),
                     0);
    assert_int_equal(stat(frank_id, "followers_count"), 0);
    assert_int_equal(outbox("follow", dave_id, frank_id), 0);
    /* asking again changes the request's options (the ones not given are kept) */
    r = rt_call(&env, "POST", dave_fp, dave, "{\"notify\":true}", 200, NULL);
    assert_true(b(r, "requested"));
    assert_true(b(r, "notifying"));
    assert_false(b(r, "showing_reblogs"));
    json_decref(r);
    assert_int_equal(requests(dave_id, frank_id), 1);
    /* frank sees it as requested_by */
    r = rt_call(&env, "GET", rt_fmt("/api/v1/accounts/relationships?id=%lld", (long long)dave_id),
                frank, NULL, 200, NULL);
    assert_true(b(json_array_get(r, 0), "requested_by"));
    assert_false(b(json_array_get(r, 0), "followed_by"));
    json_decref(r);
    /* two more requests, then frank's list, newest first, paged by request id */
    json_decref(rt_call(&env, "POST", dave_fp, erin, NULL, 200, NULL));
    json_decref(rt_call(&env, "POST", dave_fp, alice, NULL, 200, NULL));
    int64_t ids[16];
    char link[1024], want[1024];
    assert_int_equal(request_page("/api/v1/follow_requests", frank, ids, link, sizeof(link)), 3);
    assert_int_equal(ids[0], alice_id);
    assert_int_equal(ids[1], erin_id);
    assert_int_equal(ids[2], dave_id);
    assert_int_equal(
        request_page("/api/v1/follow_requests?limit=2", frank, ids, link, sizeof(link)), 2);
    snprintf(want, sizeof(want),
             "<http://social.test/api/v1/follow_requests?limit=2&max_id=%lld>; rel=\"next\", "
             "<http://social.test/api/v1/follow_requests?limit=2&since_id=%lld>; rel=\"prev\"",
             request_id(erin_id, frank_id), request_id(alice_id, frank_id));
    assert_string_equal(link, want);
    assert_int_equal(request_page(rt_fmt("/api/v1/follow_requests?limit=2&max_id=%lld",
                                         request_id(erin_id, frank_id)),
                                  frank, ids, link, sizeof(link)),
                     1);
    assert_int_equal(ids[0], dave_id);
    assert_null(strstr(link, "rel=\"next\"")); /* a short page: no next */
    assert_int_equal(
        request_page(rt_fmt("/api/v1/follow_requests?since_id=%lld", request_id(erin_id, frank_id)),
                     frank, ids, link, sizeof(link)),
        1);
    assert_int_equal(ids[0], alice_id);
    assert_int_equal(request_page("/api/v1/follow_requests", dave, ids, link, sizeof(link)), 0);
    assert_string_equal(link, "");

    /* authorize: the follow is made as a direct one (counters, outbox row for fan-out) with
     * the request's options; a list membership the request held moves to the follow */
    long long list = tc_sql_int(&env,
                                "INSERT INTO lists (account_id, title, created_at, updated_at) "
                                "VALUES (%lld, 'locked', now(), now()) RETURNING id",
                                (long long)dave_id);
    assert_true(tc_sql(&env,
                       "INSERT INTO list_accounts (list_id, account_id, follow_request_id) "
                       "VALUES (%lld, %lld, %lld)",
                       list, (long long)frank_id, request_id(dave_id, frank_id)));
    r = rt_call(&env, "POST", rt_fmt("/api/v1/follow_requests/%lld/authorize", (long long)dave_id),
                frank, NULL, 200, NULL);
    check_relationship(r, dave_id);
    assert_true(b(r, "followed_by"));
    assert_false(b(r, "requested_by"));
    assert_false(b(r, "following"));
    json_decref(r);
    assert_int_equal(requests(dave_id, frank_id), 0);
    assert_int_equal(tc_sql_int(&env,
                                "SELECT count(*) FROM follows WHERE account_id = %lld AND "
                                "target_account_id = %lld AND NOT show_reblogs AND notify AND "
                                "languages = '{en}'",
                                (long long)dave_id, (long long)frank_id),
                     1);
    assert_int_equal(stat(frank_id, "followers_count"), 1);
    assert_int_equal(outbox("follow", dave_id, frank_id), 1);
    assert_int_equal(tc_sql_int(&env,
                                "SELECT count(*) FROM list_accounts la JOIN follows f ON f.id = "
                                "la.follow_id WHERE la.list_id = %lld AND la.follow_request_id IS "
                                "NULL AND f.account_id = %lld",
                                list, (long long)dave_id),
                     1);
    r = rt_call(&env, "GET", rt_fmt("/api/v1/accounts/relationships?id=%lld", (long long)frank_id),
                dave, NULL, 200, NULL);
    assert_true(b(json_array_get(r, 0), "following"));
    assert_false(b(json_array_get(r, 0), "requested"));
    assert_true(b(json_array_get(r, 0), "notifying"));
    json_decref(r);
    /* nothing pending any more: 404, as FollowRequest.find_by! */
    rt_error(&env, "POST", rt_fmt("/api/v1/follow_requests/%lld/authorize", (long long)dave_id),
             frank, NULL, 404, "Record not found");
    rt_error(&env, "POST", rt_fmt("/api/v1/follow_requests/%lld/reject", (long long)dave_id), frank,
             NULL, 404, "Record not found");
    /* a followed locked account is followed again without a request (options only) */
    r = rt_call(&env, "POST", dave_fp, dave, "{\"reblogs\":true}", 200, NULL);
    assert_true(b(r, "following"));
    assert_false(b(r, "requested"));
    assert_true(b(r, "showing_reblogs"));
    json_decref(r);
    assert_int_equal(requests(dave_id, frank_id), 0);

    /* reject: the request goes with the list memberships it held; nothing else */
    long long elist = tc_sql_int(&env,
                                 "INSERT INTO lists (account_id, title, created_at, updated_at) "
                                 "VALUES (%lld, 'e', now(), now()) RETURNING id",
                                 (long long)erin_id);
    assert_true(tc_sql(&env,
                       "INSERT INTO list_accounts (list_id, account_id, follow_request_id) "
                       "VALUES (%lld, %lld, %lld)",
                       elist, (long long)frank_id, request_id(erin_id, frank_id)));
    r = rt_call(&env, "POST", rt_fmt("/api/v1/follow_requests/%lld/reject", (long long)erin_id),
                frank, NULL, 200, NULL);
    check_relationship(r, erin_id);
    assert_false(b(r, "requested_by"));
    assert_false(b(r, "followed_by"));
    json_decref(r);
    assert_int_equal(requests(erin_id, frank_id), 0);
    assert_int_equal(outbox("follow", erin_id, frank_id), 0);
    assert_int_equal(
        tc_sql_int(&env, "SELECT count(*) FROM list_accounts WHERE list_id = %lld", elist), 0);

    /* unfollow cancels a pending request (no counters, no job) */
    r = rt_call(&env, "POST", rt_fmt("/api/v1/accounts/%lld/unfollow", (long long)frank_id), alice,
                NULL, 200, NULL);
    assert_false(b(r, "requested"));
    assert_false(b(r, "following"));
    json_decref(r);
    assert_int_equal(requests(alice_id, frank_id), 0);
    assert_int_equal(outbox("unfollow", alice_id, frank_id), 0);

    /* a silenced follower asks even an unlocked account (FollowService) */
    assert_true(tc_sql(&env, "UPDATE accounts SET silenced_at = now() WHERE id = %lld",
                       (long long)frank_id));
    r = rt_call(&env, "POST", rt_fmt("/api/v1/accounts/%lld/follow", (long long)erin_id), frank,
                NULL, 200, NULL);
    assert_true(b(r, "requested"));
    json_decref(r);
    json_decref(rt_call(&env, "POST", rt_fmt("/api/v1/accounts/%lld/unfollow", (long long)erin_id),
                        frank, NULL, 200, NULL));
    assert_int_equal(requests(frank_id, erin_id), 0);
    assert_true(tc_sql(&env, "UPDATE accounts SET silenced_at = NULL WHERE id = %lld",
                       (long long)frank_id));
    /* a locked remote account is followed at once (no federation: no Accept would come) */
    int64_t carol = env.base + 3;
    assert_true(
        tc_sql(&env, "UPDATE accounts SET locked = true WHERE id = %lld", (long long)carol));
    r = rt_call(&env, "POST", rt_fmt("/api/v1/accounts/%lld/follow", (long long)carol), dave, NULL,
                200, NULL);
    assert_true(b(r, "following"));
    assert_false(b(r, "requested"));
    json_decref(r);
    json_decref(rt_call(&env, "POST", rt_fmt("/api/v1/accounts/%lld/unfollow", (long long)carol),
                        dave, NULL, 200, NULL));
}

static void test_follow_request_errors(void **state)
{
    int pid = (int)getpid();
    const char *auth = rt_fmt("/api/v1/follow_requests/%lld/authorize", (long long)dave_id);
    char path[256];
    snprintf(path, sizeof(path), "%s", auth);
    rt_error(&env, "POST", "/api/v1/follow_requests/4242/authorize", frank, NULL, 404,
             "Record not found");
    rt_error(&env, "POST", "/api/v1/follow_requests/4242/reject", frank, NULL, 404,
             "Record not found");
    rt_error(&env, "POST", "/api/v1/follow_requests/x/authorize", frank, NULL, 404, NULL);
    rt_error(&env, "POST", path, NULL, NULL, 401, "The access token is invalid");
    /* bob's token is "read": no write:follows */
    rt_error(&env, "POST", path, bob, NULL, 403, "outside the authorized scopes");
    rt_error(&env, "GET", "/api/v1/follow_requests", rt_fmt("profile-%d", pid), NULL, 403,
             "outside the authorized scopes");
    rt_error(&env, "GET", "/api/v1/follow_requests", rt_fmt("app-%d", pid), NULL, 422,
             "This method requires an authenticated user");
    rt_error(&env, "GET", "/api/v1/follow_requests", NULL, NULL, 401, NULL);
    rt_error(&env, "GET", path, frank, NULL, 405, NULL);
    /* "read" grants read:follows (and the legacy "follow" grants both) */
    json_decref(rt_call(&env, "GET", "/api/v1/follow_requests", bob, NULL, 200, NULL));
    json_decref(rt_call(&env, "GET", "/api/v1/follow_requests?limit=0", erin, NULL, 200, NULL));
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
        cmocka_unit_test(test_follow_unfollow),       cmocka_unit_test(test_locked_account),
        cmocka_unit_test(test_follow_request_errors), cmocka_unit_test(test_relationships),
        cmocka_unit_test(test_follow_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
