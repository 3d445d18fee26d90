/*
 * Integration: malformed and hostile input over raw sockets. Every case must end with a
 * protocol ErrorResponse to that client and a closed connection; a client logged in next to
 * them keeps working and the proxy's memory does not grow.
 */
#include "tests/proxy/pxtest.h"

#include "common/common.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

static pxt_proxy px;
static PGconn *bystander;

static int setup(void **state)
{
    (void)state;
    /* the sanitizer's quarantine would look like growth in the memory check */
    const char *old = getenv("ASAN_OPTIONS");
    char opts[512];
    snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=1", old ? old : "", old ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    pxt_start(&px,
              "pool_mode = transaction\nclient_login_timeout = 1\nclient_packet_timeout = 1\n"
              "max_client_conn = 5000\nignore_startup_parameters = extra_float_digits\n",
              NULL, NULL);
    bystander = pxt_connect(&px, "tusk", "tusk", "tusk");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    PQfinish(bystander);
    pxt_stop(&px, SIGTERM);
    return 0;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* send bytes on a fresh connection, expect ErrorResponse with sqlstate, then EOF */
static void expect_error_close(int fd, const char *sqlstate, int timeout_ms)
{
    char body[1024];
    int t = pxt_raw_read_until(fd, 'E', body, sizeof(body), timeout_ms);
    if (t != 'E')
        fail_msg("no ErrorResponse (want %s)", sqlstate);
    const char *got = pxt_sqlstate(body, sizeof(body));
    if (strcmp(got, sqlstate) != 0)
        fail_msg("SQLSTATE %s, want %s", got, sqlstate);
    assert_true(pxt_raw_eof(fd, timeout_ms));
    close(fd);
}

static void bystander_ok(void)
{
    assert_int_equal(pxt_int(bystander, "SELECT 99"), 99);
}

/* md5 login of tusk_md5 over a raw socket; returns the fd at ReadyForQuery */
static int raw_login(const char *xname, const char *xvalue)
{
    int fd = pxt_raw_connect(px.port);
    uint8_t pkt[512];
    size_t n = pxt_startup_packet(pkt, sizeof(pkt), "tusk_md5", "tusk", xname, xvalue);
    pxt_raw_send(fd, pkt, n);
    char body[1024];
    int t = pxt_raw_read_until(fd, 'R', body, sizeof(body), 3000);
    assert_int_equal(t, 'R');
    assert_int_equal((uint8_t)body[3], 5); /* md5 */
    char hash[36], resp[36];
    auth_md5_hash("md5pass", "tusk_md5", hash);
    auth_md5_salted(hash, (const uint8_t *)body + 4, resp);
    uint8_t p[64];
    p[0] = 'p';
    put32(p + 1, 4 + 36);
    memcpy(p + 5, resp, 36);
    pxt_raw_send(fd, p, 5 + 36);
    assert_int_equal(pxt_raw_read_until(fd, 'Z', body, sizeof(body), 3000), 'Z');
    return fd;
}

static void test_startup_lengths(void **state)
{
    (void)state;
    uint32_t lens[] = {0x7fffffffu, 0x80000000u, 0xffffffffu, 20000, 10001, 3, 0};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        int fd = pxt_raw_connect(px.port);
        uint8_t pkt[8];
        put32(pkt, lens[i]);
        put32(pkt + 4, 196608);
        pxt_raw_send(fd, pkt, 8);
        expect_error_close(fd, "08P01", 3000);
    }
    /* a 20 kB startup packet that is actually sent */
    int fd = pxt_raw_connect(px.port);
    uint8_t *big = calloc(1, 20000);
    put32(big, 20000);
    put32(big + 4, 196608);
    memset(big + 8, 'a', 20000 - 10);
    pxt_raw_send(fd, big, 20000);
    free(big);
    expect_error_close(fd, "08P01", 3000);
    bystander_ok();
}

static void test_protocol_versions(void **state)
{
    (void)state;
    uint32_t versions[] = {0x00020000u, 0x00040000u, 0x12345678u};
    for (size_t i = 0; i < 3; i++) {
        int fd = pxt_raw_connect(px.port);
        uint8_t pkt[64];
        size_t n = pxt_startup_packet(pkt, sizeof(pkt), "tusk", "tusk", NULL, NULL);
        put32(pkt + 4, versions[i]);
        pxt_raw_send(fd, pkt, n);
        expect_error_close(fd, "0A000", 3000);
    }
    /* 3.2 (a newer libpq): NegotiateProtocolVersion, then the login goes on in 3.0 */
    int fd = pxt_raw_connect(px.port);
    uint8_t pkt[64];
    size_t n = pxt_startup_packet(pkt, sizeof(pkt), "tusk_md5", "tusk", NULL, NULL);
    put32(pkt + 4, 0x00030002u);
    pxt_raw_send(fd, pkt, n);
    char body[256];
    assert_int_equal(pxt_raw_read_until(fd, 'v', body, sizeof(body), 3000), 'v');
    close(fd);
    bystander_ok();
}

static void test_negotiation_requests(void **state)
{
    (void)state;
    /* SSLRequest and GSSENCRequest get 'N'; the startup that follows works */
    int fd = pxt_raw_connect(px.port);
    uint8_t req[8];
    put32(req, 8);
    put32(req + 4, 80877103);
    pxt_raw_send(fd, req, 8);
    char c = 0;
    assert_int_equal(recv(fd, &c, 1, 0), 1);
    assert_int_equal(c, 'N');
    put32(req + 4, 80877104);
    pxt_raw_send(fd, req, 8);
    assert_int_equal(recv(fd, &c, 1, 0), 1);
    assert_int_equal(c, 'N');
    uint8_t pkt[64];
    size_t n = pxt_startup_packet(pkt, sizeof(pkt), "tusk_md5", "tusk", NULL, NULL);
    pxt_raw_send(fd, pkt, n);
    char body[256];
    assert_int_equal(pxt_raw_read_until(fd, 'R', body, sizeof(body), 3000), 'R');
    close(fd);
    /* a cancel request of the wrong length: closed quietly */
    fd = pxt_raw_connect(px.port);
    uint8_t cr[12];
    put32(cr, 12);
    put32(cr + 4, 80877102);
    put32(cr + 8, 1);
    pxt_raw_send(fd, cr, 12);
    assert_true(pxt_raw_eof(fd, 3000));
    close(fd);
}

static void test_startup_parameters(void **state)
{
    (void)state;
    /* listed in ignore_startup_parameters: accepted */
    int fd = raw_login("extra_float_digits", "2");
    close(fd);
    /* not listed: refused like pgbouncer does */
    fd = pxt_raw_connect(px.port);
    uint8_t pkt[128];
    size_t n = pxt_startup_packet(pkt, sizeof(pkt), "tusk_md5", "tusk", "lc_messages", "C");
    pxt_raw_send(fd, pkt, n);
    expect_error_close(fd, "08P01", 3000);
    /* no user */
    fd = pxt_raw_connect(px.port);
    n = pxt_startup_packet(pkt, sizeof(pkt), "", "tusk", NULL, NULL);
    pxt_raw_send(fd, pkt, n);
    expect_error_close(fd, "28000", 3000);
    /* unterminated parameter list */
    fd = pxt_raw_connect(px.port);
    n = pxt_startup_packet(pkt, sizeof(pkt), "tusk_md5", "tusk", NULL, NULL);
    pkt[n - 1] = 'x';
    pxt_raw_send(fd, pkt, n);
    expect_error_close(fd, "08P01", 3000);
    /* unknown database */
    fd = pxt_raw_connect(px.port);
    n = pxt_startup_packet(pkt, sizeof(pkt), "tusk_md5", "nodb", NULL, NULL);
    pxt_raw_send(fd, pkt, n);
    expect_error_close(fd, "3D000", 3000);
    bystander_ok();
}

static void test_bad_password_messages(void **state)
{
    (void)state;
    /* wrong message type during authentication */
    int fd = pxt_raw_connect(px.port);
    uint8_t pkt[128];
    size_t n = pxt_startup_packet(pkt, sizeof(pkt), "tusk_md5", "tusk", NULL, NULL);
    pxt_raw_send(fd, pkt, n);
    char body[256];
    assert_int_equal(pxt_raw_read_until(fd, 'R', body, sizeof(body), 3000), 'R');
    uint8_t q[10] = {'Q', 0, 0, 0, 9, 'x', 'y', 'z', 'w', 0};
    pxt_raw_send(fd, q, sizeof(q));
    expect_error_close(fd, "08P01", 3000);
    /* an enormous password message */
    fd = pxt_raw_connect(px.port);
    pxt_raw_send(fd, pkt, n);
    assert_int_equal(pxt_raw_read_until(fd, 'R', body, sizeof(body), 3000), 'R');
    uint8_t p[5] = {'p'};
    put32(p + 1, 0x40000000u);
    pxt_raw_send(fd, p, 5);
    expect_error_close(fd, "08P01", 3000);
    /* a password without its NUL */
    fd = pxt_raw_connect(px.port);
    pxt_raw_send(fd, pkt, n);
    assert_int_equal(pxt_raw_read_until(fd, 'R', body, sizeof(body), 3000), 'R');
    uint8_t pw[9] = {'p', 0, 0, 0, 8, 'a', 'b', 'c', 'd'};
    pxt_raw_send(fd, pw, sizeof(pw));
    expect_error_close(fd, "08P01", 3000);
    bystander_ok();
}

static void test_garbage_after_login(void **state)
{
    (void)state;
    /* unknown message types */
    const uint8_t types[] = {'Z', 'R', 'K', 'T', 0, 0xff, '1'};
    for (size_t i = 0; i < sizeof(types); i++) {
        int fd = raw_login(NULL, NULL);
        uint8_t m[5] = {types[i], 0, 0, 0, 4};
        pxt_raw_send(fd, m, 5);
        expect_error_close(fd, "08P01", 3000);
    }
    /* length fields out of range */
    uint32_t lens[] = {0x80000000u, 0xffffffffu, 0x7fffffffu, 3, 0};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        int fd = raw_login(NULL, NULL);
        uint8_t m[5] = {'Q'};
        put32(m + 1, lens[i]);
        pxt_raw_send(fd, m, 5);
        expect_error_close(fd, "08P01", 3000);
    }
    /* a malformed Bind and Parse */
    int fd = raw_login(NULL, NULL);
    uint8_t b[8] = {'B', 0, 0, 0, 7, 'a', 'b', 'c'};
    pxt_raw_send(fd, b, sizeof(b));
    expect_error_close(fd, "08P01", 3000);
    fd = raw_login(NULL, NULL);
    uint8_t pm[9] = {'P', 0, 0, 0, 8, 's', 0, 'x', 'y'};
    pxt_raw_send(fd, pm, sizeof(pm));
    expect_error_close(fd, "08P01", 3000);
    bystander_ok();
}

static void test_stalls(void **state)
{
    (void)state;
    /* half a startup packet, then nothing: client_login_timeout (1 s) */
    double t0 = svc_now_ms();
    int fd = pxt_raw_connect(px.port);
    uint8_t half[6] = {0, 0, 0, 40, 0, 3};
    pxt_raw_send(fd, half, sizeof(half));
    expect_error_close(fd, "08P01", 4000);
    assert_true(svc_now_ms() - t0 < 3500);
    /* connected, nothing sent: with tcp_defer_accept (the default, as pgbouncer) the kernel
     * keeps such a connection from the proxy; without it, client_login_timeout closes it */
    fd = pxt_raw_connect(px.port);
    assert_false(pxt_raw_eof(fd, 1500));
    close(fd);
    pxt_proxy nodefer;
    pxt_start(&nodefer, "tcp_defer_accept = 0\nclient_login_timeout = 1\n", NULL, NULL);
    fd = pxt_raw_connect(nodefer.port);
    expect_error_close(fd, "08P01", 4000);
    assert_int_equal(pxt_stop(&nodefer, SIGTERM), 0);
    /* logged in, half a message: client_packet_timeout (1 s) */
    fd = raw_login(NULL, NULL);
    uint8_t q[15] = {'Q', 0, 0, 0, 100, 'S', 'E', 'L', 'E', 'C', 'T', ' ', '1', '2', '3'};
    pxt_raw_send(fd, q, sizeof(q));
    t0 = svc_now_ms();
    expect_error_close(fd, "08P01", 4000);
    assert_true(svc_now_ms() - t0 < 3500);
    /* a huge message that starts streaming, then stalls */
    fd = raw_login(NULL, NULL);
    uint8_t big[5 + 40000];
    memset(big, 'x', sizeof(big));
    big[0] = 'Q';
    put32(big + 1, 10 << 20);
    memcpy(big + 5, "SELECT '", 8);
    pxt_raw_send(fd, big, sizeof(big));
    expect_error_close(fd, "08P01", 4000);
    bystander_ok();
}

static void test_close_statement_protocol(void **state)
{
    (void)state;
    int fd = raw_login(NULL, NULL);
    char body[512];
    /* Parse s1, Sync */
    const char parse[] = "P\0\0\0\x1cs1\0SELECT 5 + $1::int\0\0\0S\0\0\0\x04";
    pxt_raw_send(fd, parse, sizeof(parse) - 1);
    assert_int_equal(pxt_raw_read_until(fd, '1', body, sizeof(body), 3000), '1');
    assert_int_equal(pxt_raw_read_until(fd, 'Z', body, sizeof(body), 3000), 'Z');
    /* Bind s1 ($1 = 2), Execute, Sync */
    const char bind[] = "B\0\0\0\x13\0s1\0\0\0\0\x01\0\0\0\x01"
                        "2\0\0"
                        "E\0\0\0\x09\0\0\0\0\0S\0\0\0\x04";
    pxt_raw_send(fd, bind, sizeof(bind) - 1);
    assert_int_equal(pxt_raw_read_until(fd, '2', body, sizeof(body), 3000), '2');
    assert_int_equal(pxt_raw_read_until(fd, 'D', body, sizeof(body), 3000), 'D');
    assert_int_equal(body[6], '7');
    assert_int_equal(pxt_raw_read_until(fd, 'Z', body, sizeof(body), 3000), 'Z');
    /* Close s1, Sync: answered CloseComplete, ReadyForQuery */
    const char closem[] = "C\0\0\0\x08Ss1\0S\0\0\0\x04";
    pxt_raw_send(fd, closem, sizeof(closem) - 1);
    assert_int_equal(pxt_raw_read_until(fd, '3', body, sizeof(body), 3000), '3');
    assert_int_equal(pxt_raw_read_until(fd, 'Z', body, sizeof(body), 3000), 'Z');
    /* s1 is gone for this client */
    pxt_raw_send(fd, bind, sizeof(bind) - 1);
    assert_int_equal(pxt_raw_read_until(fd, 'E', body, sizeof(body), 3000), 'E');
    assert_string_equal(pxt_sqlstate(body, sizeof(body)), "26000");
    assert_int_equal(pxt_raw_read_until(fd, 'Z', body, sizeof(body), 3000), 'Z');
    /* Terminate */
    const char term[] = "X\0\0\0\x04";
    pxt_raw_send(fd, term, 5);
    assert_true(pxt_raw_eof(fd, 3000));
    close(fd);
}

static void storm(int rounds)
{
    for (int i = 0; i < rounds; i++) {
        int fd = pxt_raw_connect(px.port);
        uint8_t pkt[8];
        put32(pkt, i % 2 ? 0x7fffffffu : 5);
        put32(pkt + 4, 196608);
        pxt_raw_send(fd, pkt, 8);
        char body[256];
        pxt_raw_read_until(fd, 'E', body, sizeof(body), 3000);
        close(fd);
        if (i % 10 == 0) {
            fd = raw_login(NULL, NULL);
            uint8_t m[5] = {'Z', 0, 0, 0, 4};
            pxt_raw_send(fd, m, 5);
            pxt_raw_read_until(fd, 'E', body, sizeof(body), 3000);
            close(fd);
        }
    }
}

static void test_memory_does_not_grow(void **state)
{
    (void)state;
    storm(300);
    long before = pxt_rss_kb(px.proc.pid);
    storm(1500);
    long after = pxt_rss_kb(px.proc.pid);
    fprintf(stderr, "proxy RSS %ld kB -> %ld kB after 1500 bad clients\n", before, after);
    assert_true(before > 0);
    assert_true(after - before < 6 * 1024);
    bystander_ok();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_startup_lengths),
        cmocka_unit_test(test_protocol_versions),
        cmocka_unit_test(test_negotiation_requests),
        cmocka_unit_test(test_startup_parameters),
        cmocka_unit_test(test_bad_password_messages),
        cmocka_unit_test(test_garbage_after_login),
        cmocka_unit_test(test_stalls),
        cmocka_unit_test(test_close_statement_protocol),
        cmocka_unit_test(test_memory_does_not_grow),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
