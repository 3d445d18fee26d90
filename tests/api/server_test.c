/*
 * Integration tests of the HTTP side of "tusk api" (api/server.c, request.c, endpoints.c)
 * against real PostgreSQL and Redis: keep-alive and pipelining, every error status, request
 * limits and timeouts, token auth and scopes, rate limits, and the shapes of the instance,
 * nodeinfo and account documents.
 */
#include "tests/api/client.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define RATE_LIMIT 200

static tc_env env;
static char tok_alice[64], tok_bob[64], tok_write[64], tok_app[64], tok_revoked[64],
    tok_expired[64], tok_rl[64], tok_profile[64], tok_tmp[64];

static int setup(void **state)
{
    char extra[512];
    snprintf(extra, sizeof(extra),
             "request_timeout_ms = 1000\nkeepalive_timeout_ms = 1500\nauth_cache_ms = 300\n"
             "rate_limit_per_5min = %d\nrate_limit_unauthenticated_per_5min = 0\n"
             "max_body_bytes = 4096\nmax_header_bytes = 4096\n"
             "title = Test <Instance>\ncontact_email = admin@social.test\n",
             RATE_LIMIT);
    tc_env_start(&env, extra);
    int pid = (int)getpid();
    snprintf(tok_alice, sizeof(tok_alice), "alice-%d", pid);
    snprintf(tok_bob, sizeof(tok_bob), "bob-%d", pid);
    snprintf(tok_write, sizeof(tok_write), "write-%d", pid);
    snprintf(tok_app, sizeof(tok_app), "app-%d", pid);
    snprintf(tok_revoked, sizeof(tok_revoked), "revoked-%d", pid);
    snprintf(tok_expired, sizeof(tok_expired), "expired-%d", pid);
    snprintf(tok_rl, sizeof(tok_rl), "rl-%d", pid);
    snprintf(tok_profile, sizeof(tok_profile), "profile-%d", pid);
    snprintf(tok_tmp, sizeof(tok_tmp), "tmp-%d", pid);
    return 0;
}

static int teardown(void **state)
{
    tc_env_stop(&env);
    return 0;
}

/* GET with a bearer token (NULL: none) */
static void get(const char *path, const char *token, tc_resp *r)
{
    char h[256] = "";
    if (token)
        snprintf(h, sizeof(h), "Authorization: Bearer %s\r\n", token);
    assert_true(tc_request(env.port, "GET", path, h, NULL, r));
}

/* the answer is a JSON error with this status */
static void assert_error(tc_resp *r, int status, const char *msg)
{
    if (r->status != status)
        fail_msg("expected %d, got %d: %s", status, r->status, r->body);
    assert_string_equal(tc_header(r, "content-type"), "application/json; charset=utf-8");
    json_t *j = tc_json(r);
    assert_non_null(j);
    const char *e = json_string_value(json_object_get(j, "error"));
    assert_non_null(e);
    if (msg && !strstr(e, msg))
        fail_msg("error \"%s\" lacks \"%s\"", e, msg);
    json_decref(j);
}

static void test_instance_v1(void **state)
{
    tc_resp r;
    get("/api/v1/instance", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(tc_header(&r, "content-type"), "application/json; charset=utf-8");
    assert_string_equal(tc_header(&r, "access-control-allow-origin"), "*");
    json_t *j = tc_json(&r);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "uri")), "social.test");
    assert_string_equal(json_string_value(json_object_get(j, "title")), "Test <Instance>");
    assert_string_equal(json_string_value(json_object_get(j, "email")), "admin@social.test");
    assert_non_null(strstr(json_string_value(json_object_get(j, "version")), "compatible"));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "urls"), "streaming_api")),
        "ws://social.test");
    json_t *stats = json_object_get(j, "stats");
    assert_int_equal(json_integer_value(json_object_get(stats, "user_count")), 2);
    assert_int_equal(json_integer_value(json_object_get(stats, "status_count")), 7);
    assert_int_equal(json_integer_value(json_object_get(stats, "domain_count")), 1);
    json_t *conf = json_object_get(j, "configuration");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(conf, "statuses"), "max_characters")),
        500);
    assert_true(json_is_array(json_object_get(j, "rules")));
    assert_true(json_is_boolean(json_object_get(j, "registrations")));
    json_decref(j);
    tc_resp_free(&r);
}

static void test_instance_v2(void **state)
{
    tc_resp r;
    get("/api/v2/instance", NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *j = tc_json(&r);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "domain")), "social.test");
    json_t *conf = json_object_get(j, "configuration");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(conf, "urls"), "streaming")),
        "ws://social.test");
    assert_true(json_is_object(json_object_get(conf, "statuses")));
    assert_true(json_is_object(json_object_get(conf, "media_attachments")));
    assert_true(json_is_object(json_object_get(conf, "polls")));
    assert_true(json_is_object(json_object_get(conf, "accounts")));
    assert_true(json_is_object(json_object_get(json_object_get(j, "usage"), "users")));
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_object_get(j, "usage"), "users"), "active_month")),
                     1);
    assert_true(json_is_object(json_object_get(j, "registrations")));
    assert_true(json_is_object(json_object_get(j, "contact")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "contact"), "email")),
                        "admin@social.test");
    assert_true(json_is_string(json_object_get(json_object_get(j, "thumbnail"), "url")));
    assert_true(json_is_array(json_object_get(j, "languages")));
    assert_true(json_is_array(json_object_get(j, "rules")));
    assert_true(json_is_string(json_object_get(j, "version")));
    assert_true(json_is_string(json_object_get(j, "source_url")));
    json_decref(j);
    tc_resp_free(&r);
}

static void test_nodeinfo(void **state)
{
    tc_resp r;
    get("/.well-known/nodeinfo", NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *j = tc_json(&r);
    json_t *link = json_array_get(json_object_get(j, "links"), 0);
    assert_string_equal(json_string_value(json_object_get(link, "rel")),
                        "http://nodeinfo.diaspora.software/ns/schema/2.0");
    assert_string_equal(json_string_value(json_object_get(link, "href")),
                        "http://social.test/nodeinfo/2.0");
    json_decref(j);
    tc_resp_free(&r);
    get("/nodeinfo/2.0", NULL, &r);
    assert_int_equal(r.status, 200);
    j = tc_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "version")), "2.0");
    assert_true(json_is_string(json_object_get(json_object_get(j, "software"), "name")));
    assert_true(json_is_array(json_object_get(j, "protocols")));
    json_t *users = json_object_get(json_object_get(j, "usage"), "users");
    assert_int_equal(json_integer_value(json_object_get(users, "total")), 2);
    assert_true(json_is_integer(json_object_get(users, "activeMonth")));
    assert_true(json_is_integer(json_object_get(json_object_get(j, "usage"), "localPosts")));
    assert_true(json_is_boolean(json_object_get(j, "openRegistrations")));
    json_decref(j);
    tc_resp_free(&r);
}

static void test_health_head_options(void **state)
{
    tc_resp r;
    get("/api/v1/streaming/health", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "OK");
    tc_resp_free(&r);
    assert_true(tc_request(env.port, "HEAD", "/api/v1/instance", NULL, NULL, &r));
    assert_int_equal(r.status, 200);
    assert_true(atoi(tc_header(&r, "content-length")) > 100);
    tc_resp_free(&r);
    assert_true(tc_request(env.port, "OPTIONS", "/api/v1/accounts/1",
                           "Origin: http://x\r\nAccess-Control-Request-Method: GET\r\n", NULL, &r));
    assert_int_equal(r.status, 204);
    assert_non_null(strstr(tc_header(&r, "access-control-allow-headers"), "Authorization"));
    assert_string_equal(tc_header(&r, "content-type"), "application/json; charset=utf-8");
    tc_resp_free(&r);
}

/* the Account entity: every field design.md lists */
static void check_account(json_t *a, const char *id, const char *acct)
{
    static const char *const fields[] = {"id",
                                         "username",
                                         "acct",
                                         "url",
                                         "display_name",
                                         "note",
                                         "avatar",
                                         "avatar_static",
                                         "header",
                                         "header_static",
                                         "locked",
                                         "fields",
                                         "emojis",
                                         "bot",
                                         "group",
                                         "discoverable",
                                         "created_at",
                                         "last_status_at",
                                         "statuses_count",
                                         "followers_count",
                                         "following_count"};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (!json_object_get(a, fields[i]))
            fail_msg("account lacks %s", fields[i]);
    assert_string_equal(json_string_value(json_object_get(a, "id")), id);
    assert_string_equal(json_string_value(json_object_get(a, "acct")), acct);
    assert_true(json_is_array(json_object_get(a, "fields")));
    assert_true(json_is_array(json_object_get(a, "emojis")));
    assert_true(json_is_integer(json_object_get(a, "statuses_count")));
    assert_true(json_is_boolean(json_object_get(a, "bot")));
    assert_true(json_is_boolean(json_object_get(a, "locked")));
}

static void test_verify_credentials(void **state)
{
    tc_resp r;
    char id[32];
    snprintf(id, sizeof(id), "%lld", (long long)env.base + 1);
    get("/api/v1/accounts/verify_credentials", tok_alice, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(tc_header(&r, "cache-control"), "private, no-store");
    json_t *a = tc_json(&r);
    assert_non_null(a);
    check_account(a, id, "alice");
    assert_string_equal(json_string_value(json_object_get(a, "display_name")), "Alice \u2728");
    assert_string_equal(json_string_value(json_object_get(a, "note")),
                        "<p>Hi &lt;b&gt;there&lt;/b&gt;</p><p>More</p>");
    assert_string_equal(json_string_value(json_object_get(a, "url")), "http://social.test/@alice");
    assert_string_equal(json_string_value(json_object_get(a, "created_at")),
                        "2023-04-05T00:00:00.000Z");
    assert_string_equal(json_string_value(json_object_get(a, "last_status_at")), "2024-02-03");
    assert_int_equal(json_integer_value(json_object_get(a, "statuses_count")), 7);
    assert_int_equal(json_integer_value(json_object_get(a, "followers_count")), 3);
    assert_true(json_is_true(json_object_get(a, "discoverable")));
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(a, "fields"), 0), "value")),
                        "x&lt;y");
    json_t *src = json_object_get(a, "source");
    assert_non_null(src);
    assert_string_equal(json_string_value(json_object_get(src, "note")), "Hi <b>there</b>\n\nMore");
    assert_non_null(json_object_get(a, "role"));
    json_decref(a);
    tc_resp_free(&r);
    /* "profile" is enough for verify_credentials (Mastodon 4.3) */
    get("/api/v1/accounts/verify_credentials", tok_profile, &r);
    assert_int_equal(r.status, 200);
    tc_resp_free(&r);
    /* token in the query string */
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/accounts/verify_credentials?access_token=%s", tok_bob);
    get(path, NULL, &r);
    assert_int_equal(r.status, 200);
    a = tc_json(&r);
    assert_string_equal(json_string_value(json_object_get(a, "username")), "bob");
    assert_true(json_is_true(json_object_get(a, "bot")));
    assert_true(json_is_null(json_object_get(a, "last_status_at")));
    assert_int_equal(json_integer_value(json_object_get(a, "statuses_count")), 0);
    json_decref(a);
    tc_resp_free(&r);
}

static void test_account_show(void **state)
{
    tc_resp r;
    char path[128], id[32];
    snprintf(id, sizeof(id), "%lld", (long long)env.base + 3);
    snprintf(path, sizeof(path), "/api/v1/accounts/%s", id);
    get(path, NULL, &r); /* token optional */
    assert_int_equal(r.status, 200);
    json_t *a = tc_json(&r);
    check_account(a, id, "carol@remote.example");
    assert_string_equal(json_string_value(json_object_get(a, "note")), "<p>remote</p>");
    assert_true(json_is_true(json_object_get(a, "group")));
    assert_null(json_object_get(a, "source"));
    json_decref(a);
    tc_resp_free(&r);
    get(path, tok_bob, &r);
    assert_int_equal(r.status, 200);
    tc_resp_free(&r);
    /* bad ids */
    get("/api/v1/accounts/abc", NULL, &r);
    assert_error(&r, 404, "Record not found");
    tc_resp_free(&r);
    get("/api/v1/accounts/99999999999999999999", NULL, &r);
    assert_error(&r, 404, "Record not found");
    tc_resp_free(&r);
    get("/api/v1/accounts/12345", NULL, &r);
    assert_error(&r, 404, "Record not found");
    tc_resp_free(&r);
    /* a token without the scope: 403 even where a token is optional */
    get(path, tok_write, &r);
    assert_error(&r, 403, "outside the authorized scopes");
    tc_resp_free(&r);
}

static void test_auth_errors(void **state)
{
    tc_resp r;
    get("/api/v1/accounts/verify_credentials", NULL, &r);
    assert_error(&r, 401, "The access token is invalid");
    tc_resp_free(&r);
    get("/api/v1/accounts/verify_credentials", "nope", &r);
    assert_error(&r, 401, "The access token is invalid");
    tc_resp_free(&r);
    get("/api/v1/accounts/verify_credentials", tok_revoked, &r);
    assert_error(&r, 401, NULL);
    tc_resp_free(&r);
    get("/api/v1/accounts/verify_credentials", tok_expired, &r);
    assert_error(&r, 401, NULL);
    tc_resp_free(&r);
    get("/api/v1/accounts/verify_credentials", tok_write, &r);
    assert_error(&r, 403, "outside the authorized scopes");
    tc_resp_free(&r);
    get("/api/v1/accounts/verify_credentials", tok_app, &r);
    assert_error(&r, 422, "requires an authenticated user");
    tc_resp_free(&r);
    /* an invalid token on an optional-auth route is still 401, as Doorkeeper does */
    get("/api/v1/accounts/1", "nope", &r);
    assert_error(&r, 401, NULL);
    tc_resp_free(&r);
    /* lowercase scheme */
    char h[128];
    snprintf(h, sizeof(h), "authorization: bearer %s\r\n", tok_alice);
    assert_true(tc_request(env.port, "GET", "/api/v1/accounts/verify_credentials", h, NULL, &r));
    assert_int_equal(r.status, 200);
    tc_resp_free(&r);
}

static void test_token_revocation_after_cache_ttl(void **state)
{
    tc_resp r;
    get("/api/v1/accounts/verify_credentials", tok_tmp, &r);
    assert_int_equal(r.status, 200);
    tc_resp_free(&r);
    assert_true(tc_sql(&env, "UPDATE oauth_access_tokens SET revoked_at = now() WHERE token = '%s'",
                       tok_tmp));
    usleep(400 * 1000); /* auth_cache_ms = 300 */
    /* both workers may have cached it; either way the TTL has passed */
    for (int i = 0; i < 4; i++) {
        get("/api/v1/accounts/verify_credentials", tok_tmp, &r);
        assert_error(&r, 401, NULL);
        tc_resp_free(&r);
    }
}

static void test_routing_errors(void **state)
{
    tc_resp r;
    get("/api/v1/nonexistent", NULL, &r);
    assert_error(&r, 404, "Not found");
    tc_resp_free(&r);
    assert_true(tc_request(env.port, "DELETE", "/api/v1/instance", NULL, NULL, &r));
    assert_error(&r, 405, NULL);
    assert_string_equal(tc_header(&r, "allow"), "GET, HEAD");
    tc_resp_free(&r);
    /* trailing slash and absolute-form URL */
    get("/api/v1/instance/", NULL, &r);
    assert_int_equal(r.status, 200);
    tc_resp_free(&r);
    get("http://social.test/api/v1/streaming/health?x=1", NULL, &r);
    assert_int_equal(r.status, 200);
    tc_resp_free(&r);
}

static void test_bad_bodies(void **state)
{
    tc_resp r;
    assert_true(tc_request(env.port, "GET", "/api/v1/instance",
                           "Content-Type: application/json\r\n", "{\"a\":", &r));
    assert_error(&r, 400, "Invalid JSON");
    tc_resp_free(&r);
    assert_true(tc_request(env.port, "GET", "/api/v1/instance",
                           "Content-Type: application/json; charset=utf-8\r\n", "[1,2]", &r));
    assert_error(&r, 400, "JSON object");
    tc_resp_free(&r);
    assert_true(tc_request(env.port, "GET", "/api/v1/instance",
                           "Content-Type: application/x-www-form-urlencoded\r\n", "a=%zz", &r));
    assert_error(&r, 400, "encoding");
    tc_resp_free(&r);
    assert_true(tc_request(env.port, "GET", "/api/v1/instance",
                           "Content-Type: application/x-www-form-urlencoded\r\n", "a=%C3%28", &r));
    assert_error(&r, 400, "UTF-8");
    tc_resp_free(&r);
    get("/api/v1/instance?x=%", NULL, &r);
    assert_error(&r, 400, NULL);
    tc_resp_free(&r);
    assert_true(tc_request(env.port, "GET", "/api/v1/instance",
                           "Content-Type: multipart/form-data; boundary=x\r\n", "--x--", &r));
    assert_error(&r, 415, NULL);
    tc_resp_free(&r);
    /* good bodies are fine */
    assert_true(tc_request(env.port, "GET", "/api/v1/instance",
                           "Content-Type: application/json\r\n", "{\"a\":[1,{\"b\":null}]}", &r));
    assert_int_equal(r.status, 200);
    tc_resp_free(&r);
}

static void test_limits(void **state)
{
    tc_resp r;
    /* Content-Length over max_body_bytes: answered before the body is sent */
    tc_conn *c = tc_open(env.port);
    assert_true(tc_sends(c, "POST /api/v1/instance HTTP/1.1\r\nHost: x\r\n"
                            "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"));
    assert_true(tc_read(c, &r, false));
    assert_error(&r, 413, "too large");
    assert_string_equal(tc_header(&r, "connection"), "close");
    tc_resp_free(&r);
    assert_true(tc_wait_closed(c, 3000));
    tc_close(c);
    /* chunked body that grows past the limit */
    c = tc_open(env.port);
    assert_true(tc_sends(c, "POST /api/v1/instance HTTP/1.1\r\nHost: x\r\n"
                            "Transfer-Encoding: chunked\r\n\r\n"));
    char chunk[2100];
    memset(chunk, 'a', sizeof(chunk));
    memcpy(chunk, "800\r\n", 5);
    memcpy(chunk + 5 + 0x800, "\r\n", 2);
    for (int i = 0; i < 3; i++)
        tc_send(c, chunk, 5 + 0x800 + 2);
    assert_true(tc_read(c, &r, false));
    assert_error(&r, 413, NULL);
    tc_resp_free(&r);
    tc_close(c);
    /* headers over max_header_bytes */
    c = tc_open(env.port);
    char big[6000];
    memset(big, 'h', sizeof(big));
    memcpy(big, "GET /api/v1/instance HTTP/1.1\r\nX-Big: ", 38);
    memcpy(big + sizeof(big) - 5, "\r\n\r\n", 5);
    assert_true(tc_send(c, big, sizeof(big) - 1));
    assert_true(tc_read(c, &r, false));
    assert_error(&r, 431, NULL);
    tc_resp_free(&r);
    tc_close(c);
    /* too many header lines */
    c = tc_open(env.port);
    assert_true(tc_sends(c, "GET /api/v1/instance HTTP/1.1\r\n"));
    for (int i = 0; i < 70; i++)
        tc_sends(c, "X: y\r\n");
    tc_sends(c, "\r\n");
    assert_true(tc_read(c, &r, false));
    assert_error(&r, 431, NULL);
    tc_resp_free(&r);
    tc_close(c);
    /* garbage instead of HTTP */
    c = tc_open(env.port);
    assert_true(tc_sends(c, "HELLO\x01\x02 there\r\n\r\n"));
    assert_true(tc_read(c, &r, false));
    assert_error(&r, 400, "Bad request");
    tc_resp_free(&r);
    assert_true(tc_wait_closed(c, 3000));
    tc_close(c);
    /* Expect: 100-continue */
    c = tc_open(env.port);
    assert_true(tc_sends(c, "GET /api/v1/instance HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                            "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n"));
    assert_true(tc_read(c, &r, false));
    assert_int_equal(r.status, 100);
    tc_resp_free(&r);
    assert_true(tc_sends(c, "{}"));
    assert_true(tc_read(c, &r, false));
    assert_int_equal(r.status, 200);
    tc_resp_free(&r);
    tc_close(c);
}

static void test_timeouts(void **state)
{
    tc_resp r;
    /* a request that stops half way: 408 after request_timeout_ms (1 s), then close */
    tc_conn *c = tc_open(env.port);
    double t0 = svc_now_ms();
    assert_true(tc_sends(c, "GET /api/v1/instance HTTP/1.1\r\nHost: x\r\n"));
    assert_true(tc_read(c, &r, false));
    double dt = svc_now_ms() - t0;
    assert_error(&r, 408, "timeout");
    assert_true(dt > 800 && dt < 3000);
    tc_resp_free(&r);
    assert_true(tc_wait_closed(c, 3000));
    tc_close(c);
    /* a slow trickle does not reset the clock */
    c = tc_open(env.port);
    t0 = svc_now_ms();
    const char *req = "GET /api/v1/instance HTTP/1.1\r\nHost: x\r\n\r\n";
    bool answered = false;
    for (size_t i = 0; i < strlen(req) && svc_now_ms() - t0 < 2500; i++) {
        if (!tc_send(c, req + i, 1))
            break;
        usleep(150 * 1000);
        if (tc_fill(c, 1, 0)) {
            answered = tc_read(c, &r, false) && r.status == 408;
            tc_resp_free(&r);
            break;
        }
    }
    tc_close(c);
    assert_true(answered);
    /* an idle keep-alive connection is closed after keepalive_timeout_ms (1.5 s) */
    c = tc_open(env.port);
    assert_true(tc_sends(c, "GET /api/v1/streaming/health HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_true(tc_read(c, &r, false));
    tc_resp_free(&r);
    t0 = svc_now_ms();
    assert_true(tc_wait_closed(c, 4000));
    dt = svc_now_ms() - t0;
    assert_true(dt > 1200);
    tc_close(c);
}

static void test_keepalive_and_pipelining(void **state)
{
    tc_resp r;
    tc_conn *c = tc_open(env.port);
    /* sequential requests on one connection, one of them answered from the database */
    for (int i = 0; i < 3; i++) {
        char req[256];
        snprintf(req, sizeof(req),
                 "GET /api/v1/accounts/verify_credentials HTTP/1.1\r\nHost: x\r\n"
                 "Authorization: Bearer %s\r\n\r\n",
                 tok_alice);
        assert_true(tc_sends(c, req));
        assert_true(tc_read(c, &r, false));
        assert_int_equal(r.status, 200);
        tc_resp_free(&r);
    }
    /* pipelined: async (database) answers first, sync after; order must hold */
    char batch[4096];
    char id2[32];
    snprintf(id2, sizeof(id2), "%lld", (long long)env.base + 2);
    snprintf(batch, sizeof(batch),
             "GET /api/v1/accounts/verify_credentials HTTP/1.1\r\nHost: x\r\n"
             "Authorization: Bearer %s\r\n\r\n"
             "GET /api/v1/streaming/health HTTP/1.1\r\nHost: x\r\n\r\n"
             "GET /api/v1/accounts/%s HTTP/1.1\r\nHost: x\r\n\r\n"
             "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
             "POST /api/v1/instance HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
             "GET /api/v1/instance HTTP/1.1\r\nHost: x\r\n\r\n",
             tok_alice, id2);
    assert_true(tc_sends(c, batch));
    int want[] = {200, 200, 200, 404, 405, 200};
    for (int i = 0; i < 6; i++) {
        assert_true(tc_read(c, &r, false));
        if (r.status != want[i])
            fail_msg("pipelined answer %d: %d, want %d", i, r.status, want[i]);
        if (i == 0)
            assert_non_null(strstr(r.body, "\"username\":\"alice\""));
        if (i == 1)
            assert_string_equal(r.body, "OK");
        if (i == 2)
            assert_non_null(strstr(r.body, "\"username\":\"bob\""));
        tc_resp_free(&r);
    }
    /* Connection: close is honoured */
    assert_true(tc_sends(c, "GET /api/v1/streaming/health HTTP/1.1\r\nConnection: close\r\n\r\n"));
    assert_true(tc_read(c, &r, false));
    assert_int_equal(r.status, 200);
    tc_resp_free(&r);
    assert_true(tc_wait_closed(c, 3000));
    tc_close(c);
    /* HTTP/1.0 without keep-alive closes; with it, stays */
    c = tc_open(env.port);
    assert_true(tc_sends(c, "GET /api/v1/streaming/health HTTP/1.0\r\n\r\n"));
    assert_true(tc_read(c, &r, false));
    assert_int_equal(r.status, 200);
    tc_resp_free(&r);
    assert_true(tc_wait_closed(c, 3000));
    tc_close(c);
    c = tc_open(env.port);
    assert_true(
        tc_sends(c, "GET /api/v1/streaming/health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                    "GET /api/v1/streaming/health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    for (int i = 0; i < 2; i++) {
        assert_true(tc_read(c, &r, false));
        assert_int_equal(r.status, 200);
        assert_string_equal(tc_header(&r, "connection"), "keep-alive");
        tc_resp_free(&r);
    }
    tc_close(c);
}

static void test_rate_limit(void **state)
{
    /* do not straddle a 5-minute window boundary */
    time_t now = time(NULL);
    if (now % 300 > 290)
        sleep((unsigned)(300 - now % 300 + 1));
    tc_conn *c = tc_open(env.port);
    char one[256];
    snprintf(one, sizeof(one),
             "GET /api/v1/accounts/verify_credentials HTTP/1.1\r\nHost: x\r\n"
             "Authorization: Bearer %s\r\n\r\n",
             tok_rl);
    size_t ol = strlen(one);
    char *all = malloc(ol * RATE_LIMIT + 1);
    for (int i = 0; i < RATE_LIMIT; i++)
        memcpy(all + ol * (size_t)i, one, ol);
    all[ol * RATE_LIMIT] = '\0';
    assert_true(tc_sends(c, all)); /* RATE_LIMIT pipelined requests */
    free(all);
    tc_resp r;
    for (int i = 0; i < RATE_LIMIT; i++) {
        assert_true(tc_read(c, &r, false));
        if (r.status != 200)
            fail_msg("request %d: %d %s", i, r.status, r.body);
        assert_int_equal(atoi(tc_header(&r, "x-ratelimit-limit")), RATE_LIMIT);
        assert_int_equal(atoi(tc_header(&r, "x-ratelimit-remaining")), RATE_LIMIT - 1 - i);
        tc_resp_free(&r);
    }
    assert_true(tc_sends(c, one));
    assert_true(tc_read(c, &r, false));
    assert_error(&r, 429, "Too many requests");
    int retry = atoi(tc_header(&r, "retry-after"));
    assert_true(retry >= 1 && retry <= 300);
    assert_int_equal(atoi(tc_header(&r, "x-ratelimit-remaining")), 0);
    const char *reset = tc_header(&r, "x-ratelimit-reset");
    assert_true(reset && strlen(reset) == 24 && reset[10] == 'T' && reset[23] == 'Z');
    tc_resp_free(&r);
    tc_close(c);
    /* other tokens are not affected */
    get("/api/v1/accounts/verify_credentials", tok_bob, &r);
    assert_int_equal(r.status, 200);
    tc_resp_free(&r);
}

/* mutated requests never crash the server */
static void test_fuzz(void **state)
{
    const char *seeds[] = {
        "GET /api/v1/accounts/1?access_token=x&a[]=1 HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /api/v1/instance HTTP/1.1\r\nContent-Type: application/json\r\n"
        "Content-Length: 14\r\n\r\n{\"a\":[1,\"\\u\"]}",
        "GET /api/v1/streaming?stream=user HTTP/1.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n\x81\x85\x01\x02\x03\x04hello",
        "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    };
    unsigned seed = (unsigned)getpid();
    for (int i = 0; i < 300; i++) {
        const char *s = seeds[i % 4];
        char buf[512];
        size_t len = strlen(s);
        memcpy(buf, s, len);
        int flips = 1 + i % 4;
        for (int k = 0; k < flips; k++) {
            seed = seed * 1103515245u + 12345u;
            size_t pos = (seed >> 8) % len;
            seed = seed * 1103515245u + 12345u;
            buf[pos] = (char)(seed >> 16);
        }
        if (i % 7 == 0)
            len = (seed >> 4) % len; /* truncated */
        tc_conn *c = tc_open(env.port);
        assert_non_null(c);
        tc_send(c, buf, len);
        shutdown(c->fd, SHUT_WR);
        tc_wait_closed(c, 2000);
        tc_close(c);
    }
    tc_resp r;
    get("/api/v1/streaming/health", NULL, &r);
    assert_int_equal(r.status, 200);
    tc_resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_instance_v1),
        cmocka_unit_test(test_instance_v2),
        cmocka_unit_test(test_nodeinfo),
        cmocka_unit_test(test_health_head_options),
        cmocka_unit_test(test_verify_credentials),
        cmocka_unit_test(test_account_show),
        cmocka_unit_test(test_auth_errors),
        cmocka_unit_test(test_token_revocation_after_cache_ttl),
        cmocka_unit_test(test_routing_errors),
        cmocka_unit_test(test_bad_bodies),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_keepalive_and_pipelining),
        cmocka_unit_test(test_rate_limit),
        cmocka_unit_test(test_fuzz),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
