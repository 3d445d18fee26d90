/* Unit tests of proxy/hba.c: auth_hba_file parsing (names, quotes, @includes, addresses,
 * masks, methods), first-match semantics, and the errors of broken files. */
#include "proxy/internal.h"
#include "tests/support/support.h"

#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

static px_hba *load_text(const char *text, char *err, size_t errlen)
{
    char *path = svc_write_temp(".conf", text);
    px_hba *h = px_hba_load(path, err, errlen);
    unlink(path);
    free(path);
    return h;
}

static struct sockaddr_storage ip(const char *a)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, a, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
    } else {
        assert_int_equal(inet_pton(AF_INET6, a, &in6->sin6_addr), 1);
        in6->sin6_family = AF_INET6;
    }
    return ss;
}

static int match(const px_hba *h, const char *addr, bool tls, const char *db, const char *user)
{
    struct sockaddr_storage ss = {0};
    if (addr)
        ss = ip(addr);
    else
        ss.ss_family = AF_UNIX;
    return px_hba_match(h, (struct sockaddr *)&ss, tls, db, user, NULL);
}

static void test_rules(void **state)
{
    (void)state;
    char err[512];
    px_hba *h = load_text("# comment\n"
                          "\n"
                          "local   all        postgres                  peer\n"
                          "local   all        all                       md5   # trailing\n"
                          "hostssl bench      certuser  127.0.0.1/32    cert\n"
                          "host    \"all\"      alice     127.0.0.1/32    trust\n"
                          "host    sameuser   all       10.0.0.0/8      scram-sha-256\n"
                          "host    app,bench  bob,carol 192.168.1.0 255.255.255.0 password\n"
                          "hostnossl all      dave      all             reject\n"
                          "host    all        dave      all             md5\n"
                          "host    all        all       ::1/128         trust\n"
                          "host    all        all       127.0.0.1/32    scram-sha-256\n",
                          err, sizeof(err));
    if (!h)
        fail_msg("load: %s", err);
    assert_int_equal(match(h, NULL, false, "x", "postgres"), PX_HBA_PEER);
    assert_int_equal(match(h, NULL, false, "x", "eve"), PX_HBA_MD5);
    /* hostssl only with TLS */
    assert_int_equal(match(h, "127.0.0.1", true, "bench", "certuser"), PX_HBA_CERT);
    assert_int_equal(match(h, "127.0.0.1", false, "bench", "certuser"), PX_HBA_SCRAM);
    /* a quoted "all" is a database called all */
    assert_int_equal(match(h, "127.0.0.1", false, "all", "alice"), PX_HBA_TRUST);
    assert_int_equal(match(h, "127.0.0.1", false, "bench", "alice"), PX_HBA_SCRAM);
    /* sameuser */
    assert_int_equal(match(h, "10.1.2.3", false, "frank", "frank"), PX_HBA_SCRAM);
    assert_int_equal(match(h, "10.1.2.3", false, "other", "frank"), PX_HBA_NONE);
    /* lists and an address with a mask */
    assert_int_equal(match(h, "192.168.1.77", false, "bench", "carol"), PX_HBA_PASSWORD);
    assert_int_equal(match(h, "192.168.2.77", false, "bench", "carol"), PX_HBA_NONE);
    assert_int_equal(match(h, "192.168.1.77", false, "postgres", "carol"), PX_HBA_NONE);
    /* first match wins; hostnossl only without TLS */
    assert_int_equal(match(h, "8.8.8.8", false, "x", "dave"), PX_HBA_REJECT);
    assert_int_equal(match(h, "8.8.8.8", true, "x", "dave"), PX_HBA_MD5);
    /* IPv6, and an IPv4-mapped address against IPv4 lines */
    assert_int_equal(match(h, "::1", false, "x", "zoe"), PX_HBA_TRUST);
    assert_int_equal(match(h, "::ffff:127.0.0.1", false, "x", "zoe"), PX_HBA_SCRAM);
    assert_int_equal(match(h, "127.0.0.2", false, "x", "zoe"), PX_HBA_NONE);
    int line = -1;
    struct sockaddr_storage ss = ip("127.0.0.1");
    px_hba_match(h, (struct sockaddr *)&ss, false, "x", "zoe", &line);
    assert_int_equal(line, 12);
    px_hba_free(h);
}

static void test_include(void **state)
{
    (void)state;
    char *users = svc_write_temp(".txt", "u1, u2\nu3\n");
    char text[1024];
    snprintf(text, sizeof(text), "host all @%s 0.0.0.0/0 md5\nhost all all 0.0.0.0/0 reject\n",
             users);
    char err[512];
    px_hba *h = load_text(text, err, sizeof(err));
    if (!h)
        fail_msg("load: %s", err);
    assert_int_equal(match(h, "1.2.3.4", false, "d", "u2"), PX_HBA_MD5);
    assert_int_equal(match(h, "1.2.3.4", false, "d", "u3"), PX_HBA_MD5);
    assert_int_equal(match(h, "1.2.3.4", false, "d", "u4"), PX_HBA_REJECT);
    px_hba_free(h);
    unlink(users);
    free(users);
}

static void expect_error(const char *text, const char *want)
{
    char err[512] = "";
    px_hba *h = load_text(text, err, sizeof(err));
    if (h)
        fail_msg("accepted: %s", text);
    if (!strstr(err, want))
        fail_msg("error for %s: \"%s\", expected \"%s\"", text, err, want);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("hostx all all 0.0.0.0/0 md5\n", "unknown connection type");
    expect_error("host all all 0.0.0.0/0 md6\n", "unknown authentication method \"md6\"");
    expect_error("host all all 0.0.0.0/0\n", "too few fields");
    expect_error("host all all 300.0.0.1/32 md5\n", "bad address");
    expect_error("host all all 10.0.0.0/33 md5\n", "bad address");
    expect_error("host all all 10.0.0.0 md5\n", "needs a /prefix or a mask");
    expect_error("host all all db.example.com md5\n", "host names are not supported");
    expect_error("host all all 10.0.0.0 255.0.x.0 md5\n", "bad mask");
    expect_error("host all +admins 0.0.0.0/0 md5\n", "not supported");
    expect_error("host all all samenet md5\n", "not supported");
    expect_error("host \"all all 0.0.0.0/0 md5\n", "unterminated quote");
    expect_error("host all all 0.0.0.0/0 peer\n", "peer is only for local");
    expect_error("host all @/nonexistent/file 0.0.0.0/0 md5\n", "cannot open");
    expect_error("host all ,, 0.0.0.0/0 md5\n", "empty name");
    /* the line number is in the message */
    expect_error("# ok\nlocal all all trust\nlocal all all bogus\n", "line 3");
    char err[256];
    assert_null(px_hba_load("/nonexistent/hba.conf", err, sizeof(err)));
    assert_non_null(strstr(err, "cannot open auth_hba_file"));
}

/* the config: auth_type = hba needs the file, and a broken file refuses the config */
static void test_config(void **state)
{
    (void)state;
    char err[512];
    px_config *cfg = px_config_parse("[pgbouncer]\nlisten_addr = 127.0.0.1\nauth_type = hba\n", err,
                                     sizeof(err));
    assert_null(cfg);
    assert_non_null(strstr(err, "auth_hba_file"));
    char *hba = svc_write_temp(".conf", "host all all 0.0.0.0/0 bogus\n");
    char text[512];
    snprintf(text, sizeof(text),
             "[pgbouncer]\nlisten_addr = 127.0.0.1\nauth_type = hba\nauth_hba_file = %s\n", hba);
    assert_null(px_config_parse(text, err, sizeof(err)));
    assert_non_null(strstr(err, "unknown authentication method"));
    FILE *f = fopen(hba, "w");
    assert_non_null(f);
    fputs("host all all 0.0.0.0/0 md5\n", f);
    fclose(f);
    cfg = px_config_parse(text, err, sizeof(err));
    if (!cfg)
        fail_msg("%s", err);
    assert_int_equal(cfg->auth_type, AUTH_HBA);
    assert_non_null(cfg->hba);
    assert_int_equal(match(cfg->hba, "1.2.3.4", false, "d", "u"), PX_HBA_MD5);
    px_config_unref(cfg);
    unlink(hba);
    free(hba);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_include),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
