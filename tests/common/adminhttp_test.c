/*
 * Unit test of common/adminhttp.c, the admin_listen HTTP server: answers, HEAD, errors for bad
 * requests, and that a client which connects and stays silent does not hold up the others
 * (the server runs on its own loop thread, as in tusk proxy's admin thread).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ev.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/common.h"
#include "tests/support/support.h"

static struct ev_loop *loop;
static ev_async stop_wake;
static pthread_t thread;
static admin_http *srv;
static int port;

static void handler(void *arg, const char *path, admin_http_reply *r)
{
    (void)arg;
    if (strcmp(path, "/hello") == 0) {
        r->ctype = "text/x-test";
        admin_http_put(r, "hello ", 6);
        admin_http_put(r, path, strlen(path));
    } else if (strcmp(path, "/big") == 0) {
        for (int i = 0; i < 100000; i++)
            admin_http_put(r, "0123456789", 10);
    } else {
        admin_http_text(r, 404, "not found\n");
    }
}

static void stop_cb(struct ev_loop *l, ev_async *a, int revents)
{
    (void)a;
    (void)revents;
    ev_break(l, EVBREAK_ALL);
}

static void *run(void *arg)
{
    (void)arg;
    ev_run(loop, 0);
    return NULL;
}

static int setup(void **state)
{
    (void)state;
    loop = ev_loop_new(EVFLAG_AUTO);
    ev_async_init(&stop_wake, stop_cb);
    ev_async_start(loop, &stop_wake);
    port = svc_free_port();
    char spec[64], err[256];
    snprintf(spec, sizeof(spec), "127.0.0.1:%d", port);
    srv = admin_http_start(loop, spec, handler, NULL, err, sizeof(err));
    if (!srv) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return pthread_create(&thread, NULL, run, NULL);
}

static int teardown(void **state)
{
    (void)state;
    ev_async_send(loop, &stop_wake);
    pthread_join(thread, NULL);
    admin_http_stop(srv);
    ev_loop_destroy(loop);
    return 0;
}

static int connect_srv(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* sends raw, reads the whole answer (the server closes); returns a malloc'd string */
static char *exchange(const char *raw, size_t rawlen)
{
    int fd = connect_srv();
    if (rawlen)
        assert_int_equal(send(fd, raw, rawlen, 0), (ssize_t)rawlen);
    size_t cap = 1 << 21, len = 0;
    char *out = malloc(cap + 1);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        assert_int_equal(poll(&p, 1, 5000), 1);
        ssize_t n = recv(fd, out + len, cap - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    out[len] = '\0';
    close(fd);
    return out;
}

static void test_answers(void **state)
{
    (void)state;
    const char *get = "GET /hello?x=1 HTTP/1.1\r\nHost: a\r\n\r\n";
    char *r = exchange(get, strlen(get));
    assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(r, "Content-Type: text/x-test\r\n"));
    assert_non_null(strstr(r, "Content-Length: 12\r\n"));
    assert_non_null(strstr(r, "\r\n\r\nhello /hello"));
    free(r);
    const char *head = "HEAD /hello HTTP/1.0\n\n";
    r = exchange(head, strlen(head));
    assert_non_null(strstr(r, "Content-Length: 12\r\n"));
    assert_null(strstr(r, "hello /hello")); /* no body for HEAD */
    free(r);
    const char *big = "GET /big HTTP/1.1\r\n\r\n";
    r = exchange(big, strlen(big));
    assert_non_null(strstr(r, "Content-Length: 1000000\r\n"));
    assert_int_equal(strlen(strstr(r, "\r\n\r\n") + 4), 1000000);
    free(r);
    const char *missing = "GET /nope HTTP/1.1\r\n\r\n";
    r = exchange(missing, strlen(missing));
    assert_non_null(strstr(r, "HTTP/1.1 404 Not Found\r\n"));
    free(r);
}

static void test_bad_requests(void **state)
{
    (void)state;
    static const struct {
        const char *raw;
        size_t len;
        const char *status;
    } cases[] = {
        {"POST /hello HTTP/1.1\r\n\r\n", 0, "405"},
        {"garbage\r\n\r\n", 0, "400"},
        {"GET /hello HTTP/2\r\n\r\n", 0, "400"},
        {"GET /a\0b HTTP/1.1\r\n\r\n", 22, "400"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = cases[i].len ? cases[i].len : strlen(cases[i].raw);
        char *r = exchange(cases[i].raw, n);
        char want[32];
        snprintf(want, sizeof(want), "HTTP/1.1 %s ", cases[i].status);
        if (strncmp(r, want, strlen(want)) != 0)
            fail_msg("case %zu: %.40s", i, r);
        free(r);
    }
    /* a head that never ends gets 431 once 8 kB are in */
    char *huge = malloc(9000);
    memcpy(huge, "GET / HTTP/1.1\r\n", 16);
    memset(huge + 16, 'a', 9000 - 16);
    char *r = exchange(huge, 9000);
    assert_true(strncmp(r, "HTTP/1.1 431 ", 13) == 0);
    free(r);
    free(huge);
}

/* a silent client (the old fanout endpoint blocked its loop for 1 s on each) delays nobody */
static void test_silent_client(void **state)
{
    (void)state;
    int silent[5];
    for (int i = 0; i < 5; i++)
        silent[i] = connect_srv();
    double t0 = svc_now_ms();
    const char *get = "GET /hello HTTP/1.1\r\n\r\n";
    char *r = exchange(get, strlen(get));
    assert_non_null(strstr(r, "200 OK"));
    free(r);
    assert_true(svc_now_ms() - t0 < 500);
    for (int i = 0; i < 5; i++)
        close(silent[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answers),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_silent_client),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
