/*
 * Integration tests of the streaming side of "tusk api" (api/stream.c, pubsub.c, msg.c)
 * against real Redis and PostgreSQL: WebSocket handshake, subscribe/unsubscribe messages,
 * control frames and protocol errors, SSE streams and heartbeats, one Redis subscription per
 * channel per process, the "subscribed:" keys, and 1,000 idle SSE streams (memory per
 * connection and delivery to all of them).
 */
#include "tests/api/client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

static tc_env env;
static char tok_alice[64], tok_bob[64], tok_write[64], tok_statuses[64];
static char chan_alice[64], chan_list[64], list_alice[32], list_bob[32];

static int setup(void **state)
{
    tc_env_start(&env, "ws_ping_ms = 1000\nsse_heartbeat_ms = 1000\nauth_cache_ms = 60000\n");
    int pid = (int)getpid();
    snprintf(tok_alice, sizeof(tok_alice), "alice-%d", pid);
    snprintf(tok_bob, sizeof(tok_bob), "bob-%d", pid);
    snprintf(tok_write, sizeof(tok_write), "write-%d", pid);
    snprintf(tok_statuses, sizeof(tok_statuses), "statuses-%d", pid);
    snprintf(chan_alice, sizeof(chan_alice), "timeline:%lld", (long long)env.base + 1);
    snprintf(list_alice, sizeof(list_alice), "%lld", (long long)env.base + 1);
    snprintf(list_bob, sizeof(list_bob), "%lld", (long long)env.base + 2);
    snprintf(chan_list, sizeof(chan_list), "timeline:list:%s", list_alice);
    return 0;
}

static int teardown(void **state)
{
    tc_env_stop(&env);
    return 0;
}

/* wait until Redis reports n subscribers (processes) of chan */
static bool wait_numsub(const char *chan, long long n, int timeout_ms)
{
    double end = svc_now_ms() + timeout_ms;
    while (svc_now_ms() < end) {
        if (tc_redis_int(&env, "PUBSUB NUMSUB %s", chan) == n)
            return true;
        usleep(10000);
    }
    return false;
}

/* next frame that is not the server's own ping (answered): the server pings every open
 * WebSocket on its worker's tick (ws_ping_ms), which may fall at any moment of a test */
static bool ws_recv_reply(tc_conn *c, int *op, char **payload, size_t *len, int timeout_ms)
{
    double end = svc_now_ms() + timeout_ms;
    for (;;) {
        int left = (int)(end - svc_now_ms());
        if (!tc_ws_recv(c, op, payload, len, left < 0 ? 0 : left))
            return false;
        if (*op != 9)
            return true;
        tc_ws_send(c, 10, true, *payload, *len, true);
        free(*payload);
    }
}

/* next data frame, answering pings on the way */
static bool ws_next(tc_conn *c, int *op, char **payload, size_t *len, int timeout_ms)
{
    double end = svc_now_ms() + timeout_ms;
    for (;;) {
        int left = (int)(end - svc_now_ms());
        if (!ws_recv_reply(c, op, payload, len, left < 0 ? 0 : left))
            return false;
        if (*op != 10)
            return true;
        free(*payload);
    }
}

/* a WebSocket with the token as protocol (NULL: none) */
static tc_conn *ws_open(const char *path, const char *token)
{
    tc_conn *c = tc_open(env.port);
    assert_non_null(c);
    char h[256] = "";
    if (token)
        snprintf(h, sizeof(h), "Sec-WebSocket-Protocol: %s\r\n", token);
    tc_resp r;
    assert_true(tc_ws_handshake(c, path, h, &r));
    if (r.status != 101)
        fail_msg("handshake: %d %s", r.status, r.body);
    tc_resp_free(&r);
    return c;
}

static void ws_send_text(tc_conn *c, const char *s)
{
    assert_true(tc_ws_send(c, 1, true, s, strlen(s), true));
}

static void test_ws_handshake(void **state)
{
    tc_conn *c = tc_open(env.port);
    tc_resp r;
    char h[256];
    snprintf(h, sizeof(h), "Sec-WebSocket-Protocol: %s\r\n", tok_alice);
    assert_true(tc_ws_handshake(c, "/api/v1/streaming", h, &r));
    assert_int_equal(r.status, 101);
    assert_string_equal(tc_header(&r, "sec-websocket-accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_string_equal(tc_header(&r, "sec-websocket-protocol"), tok_alice);
    assert_string_equal(tc_header(&r, "upgrade"), "websocket");
    tc_resp_free(&r);
    tc_close(c);
    /* invalid token: 401 before the upgrade */
    c = tc_open(env.port);
    assert_true(tc_ws_handshake(c, "/api/v1/streaming", "Sec-WebSocket-Protocol: bad\r\n", &r));
    assert_int_equal(r.status, 401);
    assert_string_equal(tc_header(&r, "content-type"), "application/json; charset=utf-8");
    tc_resp_free(&r);
    assert_true(tc_wait_closed(c, 3000));
    tc_close(c);
    /* no key, wrong version, not an upgrade */
    assert_true(tc_request(env.port, "GET", "/api/v1/streaming",
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Version: 13\r\n",
                           NULL, &r));
    assert_int_equal(r.status, 400);
    tc_resp_free(&r);
    assert_true(tc_request(env.port, "GET", "/api/v1/streaming",
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                           "Sec-WebSocket-Version: 8\r\n",
                           NULL, &r));
    assert_int_equal(r.status, 426);
    assert_string_equal(tc_header(&r, "sec-websocket-version"), "13");
    tc_resp_free(&r);
    assert_true(tc_request(env.port, "GET", "/api/v1/streaming", NULL, NULL, &r));
    assert_int_equal(r.status, 400);
    tc_resp_free(&r);
    /* without a token the socket opens, but the user stream needs one */
    c = ws_open("/api/v1/streaming", NULL);
    ws_send_text(c, "{\"type\":\"subscribe\",\"stream\":\"user\"}");
    int op;
    char *p;
    size_t l;
    assert_true(ws_next(c, &op, &p, &l, 2000));
    json_t *j = json_loads(p, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 401);
    json_decref(j);
    free(p);
    tc_close(c);
}

static void test_ws_subscribe_receive(void **state)
{
    tc_conn *c = ws_open("/api/v1/streaming", tok_alice);
    ws_send_text(c, "{\"type\":\"subscribe\",\"stream\":\"user\"}");
    assert_true(wait_numsub(chan_alice, 1, 2000));
    assert_true(tc_redis_int(&env, "TTL subscribed:%s", chan_alice) > 1000);
    double t0 = svc_now_ms();
    assert_int_equal(tc_publish(&env, chan_alice,
                                "{\"event\":\"update\",\"payload\":{\"id\":\"42\",\"content\":\"<p>"
                                "x \\\"y\\\"</p>\"}}"),
                     1);
    int op;
    char *p;
    size_t l;
    assert_true(ws_next(c, &op, &p, &l, 1000));
    double dt = svc_now_ms() - t0;
    assert_true(dt < 1000);
    assert_int_equal(op, 1);
    json_t *ev = json_loads(p, 0, NULL);
    assert_non_null(ev);
    assert_string_equal(json_string_value(json_array_get(json_object_get(ev, "stream"), 0)),
                        "user");
    assert_string_equal(json_string_value(json_object_get(ev, "event")), "update");
    const char *payload = json_string_value(json_object_get(ev, "payload"));
    assert_non_null(payload); /* a JSON string, as Mastodon sends it */
    json_t *st = json_loads(payload, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(st, "id")), "42");
    assert_string_equal(json_string_value(json_object_get(st, "content")), "<p>x \"y\"</p>");
    json_decref(st);
    json_decref(ev);
    free(p);
    tc_publish(&env, chan_alice, "{\"event\":\"delete\",\"payload\":\"42\"}");
    assert_true(ws_next(c, &op, &p, &l, 1000));
    assert_string_equal(p, "{\"stream\":[\"user\"],\"event\":\"delete\",\"payload\":\"42\"}");
    free(p);
    /* a message that is not JSON is dropped, the stream goes on */
    tc_publish(&env, chan_alice, "garbage");
    tc_publish(&env, chan_alice, "{\"event\":\"delete\",\"payload\":\"43\"}");
    assert_true(ws_next(c, &op, &p, &l, 1000));
    assert_non_null(strstr(p, "\"43\""));
    free(p);
    /* unsubscribe: the process leaves the channel */
    ws_send_text(c, "{\"type\":\"unsubscribe\",\"stream\":\"user\"}");
    assert_true(wait_numsub(chan_alice, 0, 2000));
    tc_publish(&env, chan_alice, "{\"event\":\"delete\",\"payload\":\"44\"}");
    assert_false(ws_next(c, &op, &p, &l, 300));
    tc_close(c);
}

static void test_ws_query_stream_and_lists(void **state)
{
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/streaming?stream=user&access_token=%s", tok_statuses);
    tc_conn *c = ws_open(path, NULL);
    assert_true(wait_numsub(chan_alice, 1, 2000));
    char msg[256];
    snprintf(msg, sizeof(msg), "{\"type\":\"subscribe\",\"stream\":\"list\",\"list\":\"%s\"}",
             list_alice);
    ws_send_text(c, msg);
    assert_true(wait_numsub(chan_list, 1, 2000));
    tc_publish(&env, chan_list, "{\"event\":\"update\",\"payload\":{\"id\":\"7\"}}");
    int op;
    char *p;
    size_t l;
    assert_true(ws_next(c, &op, &p, &l, 1000));
    json_t *ev = json_loads(p, 0, NULL);
    json_t *stream = json_object_get(ev, "stream");
    assert_string_equal(json_string_value(json_array_get(stream, 0)), "list");
    assert_string_equal(json_string_value(json_array_get(stream, 1)), list_alice);
    json_decref(ev);
    free(p);
    /* someone else's list, and a list id given as a number */
    snprintf(msg, sizeof(msg), "{\"type\":\"subscribe\",\"stream\":[\"list\"],\"list\":%s}",
             list_bob);
    ws_send_text(c, msg);
    assert_true(ws_next(c, &op, &p, &l, 2000));
    ev = json_loads(p, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(ev, "error")),
                        "Not authorized to stream this list");
    assert_int_equal(json_integer_value(json_object_get(ev, "status")), 401);
    json_decref(ev);
    free(p);
    /* unknown stream, junk messages (ignored) */
    ws_send_text(c, "not json at all");
    ws_send_text(c, "{\"type\":\"subscribe\",\"stream\":\"bogus\"}");
    assert_true(ws_next(c, &op, &p, &l, 2000));
    assert_non_null(strstr(p, "Unknown stream type"));
    free(p);
    tc_close(c);
    assert_true(wait_numsub(chan_alice, 0, 2000));
    assert_true(wait_numsub(chan_list, 0, 2000));
}

static void test_ws_control_frames(void **state)
{
    tc_conn *c = ws_open("/api/v1/streaming", tok_alice);
    int op;
    char *p;
    size_t l;
    /* ping -> pong with the same payload */
    assert_true(tc_ws_send(c, 9, true, "abc", 3, true));
    assert_true(ws_recv_reply(c, &op, &p, &l, 2000));
    assert_int_equal(op, 10);
    assert_string_equal(p, "abc");
    free(p);
    /* a subscribe message in two fragments, with a ping between them */
    const char *m = "{\"type\":\"subscribe\",\"stream\":\"user\"}";
    assert_true(tc_ws_send(c, 1, false, m, 10, true));
    assert_true(tc_ws_send(c, 9, true, "", 0, true));
    assert_true(tc_ws_send(c, 0, true, m + 10, strlen(m) - 10, true));
    assert_true(ws_recv_reply(c, &op, &p, &l, 2000));
    assert_int_equal(op, 10);
    free(p);
    assert_true(wait_numsub(chan_alice, 1, 2000));
    /* a frame split across TCP writes (header, then payload byte by byte) */
    tc_ws_send(c, 9, true, "split", 5, true); /* whole, to compare */
    assert_true(ws_recv_reply(c, &op, &p, &l, 2000));
    free(p);
    uint8_t frame[] = {0x89, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2};
    for (size_t i = 0; i < sizeof(frame); i++) {
        tc_send(c, (const char *)frame + i, 1);
        usleep(2000);
    }
    assert_true(ws_recv_reply(c, &op, &p, &l, 2000));
    assert_int_equal(op, 10);
    assert_string_equal(p, "hi");
    free(p);
    /* close from the client: the server answers close and hangs up */
    uint8_t code[2] = {0x03, 0xe8};
    assert_true(tc_ws_send(c, 8, true, code, 2, true));
    assert_true(ws_recv_reply(c, &op, &p, &l, 2000));
    assert_int_equal(op, 8);
    assert_int_equal((uint8_t)p[0] << 8 | (uint8_t)p[1], 1000);
    free(p);
    assert_true(tc_wait_closed(c, 2000));
    tc_close(c);
    assert_true(wait_numsub(chan_alice, 0, 2000));
    /* unmasked client frame: protocol error 1002 */
    c = ws_open("/api/v1/streaming", tok_alice);
    assert_true(tc_ws_send(c, 1, true, "{}", 2, false));
    assert_true(ws_recv_reply(c, &op, &p, &l, 2000));
    assert_int_equal(op, 8);
    assert_int_equal((uint8_t)p[0] << 8 | (uint8_t)p[1], 1002);
    free(p);
    assert_true(tc_wait_closed(c, 2000));
    tc_close(c);
    /* invalid UTF-8 in a text message: 1007 */
    c = ws_open("/api/v1/streaming", tok_alice);
    assert_true(tc_ws_send(c, 1, true, "\xff\xfe", 2, true));
    assert_true(ws_recv_reply(c, &op, &p, &l, 2000));
    assert_int_equal(op, 8);
    assert_int_equal((uint8_t)p[0] << 8 | (uint8_t)p[1], 1007);
    free(p);
    tc_close(c);
    /* a message over the size limit: 1009 */
    c = ws_open("/api/v1/streaming", tok_alice);
    char *big = calloc(1, 70000);
    memset(big, ' ', 69999);
    assert_true(tc_ws_send(c, 1, true, big, 69999, true));
    free(big);
    assert_true(ws_recv_reply(c, &op, &p, &l, 2000));
    assert_int_equal(op, 8);
    assert_int_equal((uint8_t)p[0] << 8 | (uint8_t)p[1], 1009);
    free(p);
    tc_close(c);
}

static void test_ws_server_ping(void **state)
{
    /* a client that never answers: pinged within ws_ping_ms, closed one interval later */
    tc_conn *c = ws_open("/api/v1/streaming", tok_alice);
    int op;
    char *p;
    size_t l;
    double t0 = svc_now_ms();
    assert_true(tc_ws_recv(c, &op, &p, &l, 3000));
    assert_int_equal(op, 9);
    free(p);
    assert_true(tc_wait_closed(c, 3000));
    assert_true(svc_now_ms() - t0 < 4500);
    tc_close(c);
    /* one that answers stays open */
    c = ws_open("/api/v1/streaming", tok_alice);
    t0 = svc_now_ms();
    while (svc_now_ms() - t0 < 2600) {
        if (tc_ws_recv(c, &op, &p, &l, 200)) {
            if (op == 9)
                tc_ws_send(c, 10, true, p, l, true);
            free(p);
        }
    }
    assert_true(tc_ws_send(c, 9, true, "x", 1, true));
    bool got_pong = false;
    for (int i = 0; i < 5 && !got_pong; i++) {
        if (!tc_ws_recv(c, &op, &p, &l, 1000))
            break;
        if (op == 9)
            tc_ws_send(c, 10, true, p, l, true);
        got_pong = op == 10;
        free(p);
    }
    assert_true(got_pong);
    tc_close(c);
}

/* an SSE stream's head; false if the status is not 200 */
static tc_conn *sse_open(const char *path, const char *token, int *status)
{
    tc_conn *c = tc_open(env.port);
    char req[512];
    char auth[256] = "";
    if (token)
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", token);
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n%s\r\n",
             path, auth);
    assert_true(tc_sends(c, req));
    tc_resp r;
    assert_true(tc_read(c, &r, false));
    *status = r.status;
    if (r.status == 200) {
        assert_string_equal(tc_header(&r, "content-type"), "text/event-stream");
        assert_string_equal(tc_header(&r, "transfer-encoding"), "chunked");
    }
    tc_resp_free(&r);
    return c;
}

static void test_sse_user(void **state)
{
    int st;
    tc_conn *c = sse_open("/api/v1/streaming/user", tok_alice, &st);
    assert_int_equal(st, 200);
    char *ev, *data;
    assert_true(tc_sse_next(c, &ev, &data, true, 2000)); /* ":)" first, as Mastodon */
    assert_string_equal(data, ":)\n");
    free(ev);
    free(data);
    assert_true(wait_numsub(chan_alice, 1, 2000));
    double t0 = svc_now_ms();
    tc_publish(&env, chan_alice, "{\"event\":\"update\",\"payload\":{\"id\":\"5\",\"x\":[1,2]}}");
    assert_true(tc_sse_next(c, &ev, &data, false, 1000));
    assert_true(svc_now_ms() - t0 < 1000);
    assert_string_equal(ev, "update");
    assert_string_equal(data, "{\"id\":\"5\",\"x\":[1,2]}");
    free(ev);
    free(data);
    tc_publish(&env, chan_alice, "{\"event\":\"delete\",\"payload\":\"5\"}");
    assert_true(tc_sse_next(c, &ev, &data, false, 1000));
    assert_string_equal(ev, "delete");
    assert_string_equal(data, "5");
    free(ev);
    free(data);
    /* heartbeat comment */
    assert_true(tc_sse_next(c, &ev, &data, true, 2500));
    assert_string_equal(data, ":thump\n");
    free(ev);
    free(data);
    tc_close(c);
    assert_true(wait_numsub(chan_alice, 0, 2000));
}

static void test_sse_lists_and_errors(void **state)
{
    int st;
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/streaming/list?list=%s", list_alice);
    tc_conn *c = sse_open(path, tok_alice, &st);
    assert_int_equal(st, 200);
    assert_true(wait_numsub(chan_list, 1, 2000));
    tc_publish(&env, chan_list, "{\"event\":\"update\",\"payload\":{\"id\":\"9\"}}");
    char *ev, *data;
    assert_true(tc_sse_next(c, &ev, &data, false, 1000));
    assert_string_equal(data, "{\"id\":\"9\"}");
    free(ev);
    free(data);
    tc_close(c);
    struct {
        const char *path;
        const char *token;
        int status;
    } cases[] = {
        {NULL, NULL, 404}, /* bob's list, filled below */
        {"/api/v1/streaming/list?list=abc", tok_alice, 404},
        {"/api/v1/streaming/user", NULL, 401},
        {"/api/v1/streaming/user", tok_write, 401},
        {"/api/v1/streaming/user", "invalid-token", 401},
        {"/api/v1/streaming/nonsense", tok_alice, 404},
        {"/api/v1/streaming/hashtag", tok_alice, 400},
    };
    char bobs[128];
    snprintf(bobs, sizeof(bobs), "/api/v1/streaming/list?list=%s", list_bob);
    cases[0].path = bobs;
    cases[0].token = tok_alice;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tc_resp r;
        char h[256] = "";
        if (cases[i].token)
            snprintf(h, sizeof(h), "Authorization: Bearer %s\r\n", cases[i].token);
        assert_true(tc_request(env.port, "GET", cases[i].path, h, NULL, &r));
        if (r.status != cases[i].status)
            fail_msg("%s: %d, want %d", cases[i].path, r.status, cases[i].status);
        assert_string_equal(tc_header(&r, "content-type"), "application/json; charset=utf-8");
        json_t *j = tc_json(&r);
        assert_non_null(json_object_get(j, "error"));
        json_decref(j);
        tc_resp_free(&r);
    }
    /* public needs no token; a hashtag stream with a tag is fine */
    c = sse_open("/api/v1/streaming/public", NULL, &st);
    assert_int_equal(st, 200);
    tc_close(c);
    c = sse_open("/api/v1/streaming/hashtag?tag=Cats", NULL, &st);
    assert_int_equal(st, 200);
    tc_close(c);
}

static void test_shared_subscription(void **state)
{
    enum { N = 5 };
    tc_conn *sse[N], *ws[N];
    for (int i = 0; i < N; i++) {
        int st;
        sse[i] = sse_open("/api/v1/streaming/user", tok_alice, &st);
        assert_int_equal(st, 200);
        char path[128];
        snprintf(path, sizeof(path), "/api/v1/streaming?stream=user&access_token=%s", tok_alice);
        ws[i] = ws_open(path, NULL);
    }
    usleep(200 * 1000);
    /* ten listeners on two workers: still one subscriber for Redis */
    assert_true(wait_numsub(chan_alice, 1, 2000));
    long long ttl = tc_redis_int(&env, "TTL subscribed:%s", chan_alice);
    assert_true(ttl > 1000 && ttl <= 1080);
    assert_int_equal(tc_publish(&env, chan_alice, "{\"event\":\"delete\",\"payload\":\"77\"}"), 1);
    for (int i = 0; i < N; i++) {
        char *ev, *data;
        assert_true(tc_sse_next(sse[i], &ev, &data, false, 1000));
        assert_string_equal(data, "77");
        free(ev);
        free(data);
        int op;
        char *p;
        size_t l;
        assert_true(ws_next(ws[i], &op, &p, &l, 1000));
        assert_non_null(strstr(p, "\"77\""));
        free(p);
    }
    /* closing some keeps the subscription; closing all drops it */
    for (int i = 0; i < N - 1; i++) {
        tc_close(sse[i]);
        tc_close(ws[i]);
    }
    usleep(200 * 1000);
    assert_int_equal(tc_redis_int(&env, "PUBSUB NUMSUB %s", chan_alice), 1);
    tc_close(sse[N - 1]);
    tc_close(ws[N - 1]);
    assert_true(wait_numsub(chan_alice, 0, 2000));
    /* a new listener right after resubscribes cleanly */
    int st;
    tc_conn *c = sse_open("/api/v1/streaming/user", tok_alice, &st);
    assert_true(wait_numsub(chan_alice, 1, 2000));
    tc_publish(&env, chan_alice, "{\"event\":\"delete\",\"payload\":\"78\"}");
    char *ev, *data;
    assert_true(tc_sse_next(c, &ev, &data, false, 1000));
    free(ev);
    free(data);
    tc_close(c);
}

/* open a raw SSE connection and read its head; -1 on failure */
static int raw_sse(const char *token)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)env.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    char req[256];
    int n =
        snprintf(req, sizeof(req),
                 "GET /api/v1/streaming/user HTTP/1.1\r\nAuthorization: Bearer %s\r\n\r\n", token);
    if (send(fd, req, (size_t)n, 0) != n) {
        close(fd);
        return -1;
    }
    return fd;
}

static void test_thousand_idle_sse(void **state)
{
    enum { N = 1000 };
    static int fds[N];
    static char seen[N];
    long before = tc_rss_kb(env.api.pid);
    for (int i = 0; i < N; i++) {
        fds[i] = raw_sse(tok_alice);
        assert_true(fds[i] >= 0);
    }
    /* every head and ":)" comment arrived */
    for (int i = 0; i < N; i++) {
        char buf[1024];
        size_t got = 0;
        double end = svc_now_ms() + 5000;
        while (!memmem(buf, got, ":)\n", 3) && svc_now_ms() < end) {
            struct pollfd p = {.fd = fds[i], .events = POLLIN};
            if (poll(&p, 1, 1000) <= 0)
                continue;
            ssize_t n = recv(fds[i], buf + got, sizeof(buf) - got, 0);
            assert_true(n > 0);
            got += (size_t)n;
        }
        assert_non_null(memmem(buf, got, ":)\n", 3));
    }
    usleep(300 * 1000);
    long after = tc_rss_kb(env.api.pid);
    double per = (double)(after - before) / N;
    print_message("1000 idle SSE streams: RSS %ld kB -> %ld kB, %.2f kB per connection%s\n", before,
                  after, per,
#ifdef __SANITIZE_ADDRESS__
                  " (AddressSanitizer build: redzones and quarantine inflate this)"
#else
                  ""
#endif
    );
#ifdef __SANITIZE_ADDRESS__
    assert_true(per < 64);
#else
    assert_true(per < 8);
#endif
    assert_int_equal(tc_redis_int(&env, "PUBSUB NUMSUB %s", chan_alice), 1);
    /* one publish reaches all of them */
    double t0 = svc_now_ms();
    assert_int_equal(tc_publish(&env, chan_alice, "{\"event\":\"delete\",\"payload\":\"1000\"}"),
                     1);
    static double lat[N];
    int done = 0;
    memset(seen, 0, sizeof(seen));
    static struct pollfd pfd[N];
    while (done < N && svc_now_ms() - t0 < 3000) {
        for (int i = 0; i < N; i++) {
            pfd[i].fd = seen[i] ? -1 : fds[i];
            pfd[i].events = POLLIN;
            pfd[i].revents = 0;
        }
        if (poll(pfd, N, 100) <= 0)
            continue;
        for (int i = 0; i < N; i++) {
            if (!(pfd[i].revents & POLLIN))
                continue;
            char buf[512];
            ssize_t n = recv(fds[i], buf, sizeof(buf), 0);
            if (n > 0 && memmem(buf, (size_t)n, "data: 1000", 10)) {
                seen[i] = 1;
                lat[done++] = svc_now_ms() - t0;
            }
        }
    }
    assert_int_equal(done, N);
    print_message("delivery to 1000 SSE streams: first %.1f ms, last %.1f ms\n", lat[0],
                  lat[N - 1]);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    assert_true(wait_numsub(chan_alice, 0, 3000));
    tc_resp r;
    assert_true(tc_request(env.port, "GET", "/api/v1/streaming/health", NULL, NULL, &r));
    assert_int_equal(r.status, 200);
    tc_resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ws_handshake),
        cmocka_unit_test(test_ws_subscribe_receive),
        cmocka_unit_test(test_ws_query_stream_and_lists),
        cmocka_unit_test(test_ws_control_frames),
        cmocka_unit_test(test_ws_server_ping),
        cmocka_unit_test(test_sse_user),
        cmocka_unit_test(test_sse_lists_and_errors),
        cmocka_unit_test(test_shared_subscription),
        cmocka_unit_test(test_thousand_idle_sse),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
