/*
 * Integration: client authentication (trust, cleartext, md5, SCRAM-SHA-256; auth_file with
 * plaintext, md5 hashes and SCRAM secrets; auth_query) and server authentication (SCRAM,
 * md5, password, trust, SCRAM pass-through) through "tusk proxy" against the real primary.
 */
#include "tests/proxy/pxtest.h"

#include "common/common.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

/* connecting works and the session is who it claims */
static void expect_ok(int port, const char *user, const char *pw)
{
    PGconn *c = pxt_try_connect(port, user, pw, "tusk", NULL);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("login as %s failed: %s", user, PQerrorMessage(c));
    char *who = pxt_value(c, "SELECT current_user");
    assert_string_equal(who, user);
    free(who);
    PQfinish(c);
}

/* connecting fails with SQLSTATE-bearing message text */
static void expect_fail(int port, const char *user, const char *pw, const char *needle)
{
    PGconn *c = pxt_try_connect(port, user, pw, "tusk", NULL);
    if (PQstatus(c) == CONNECTION_OK)
        fail_msg("login as %s with password \"%s\" should fail", user, pw);
    if (!strstr(PQerrorMessage(c), needle))
        fail_msg("login as %s: error \"%s\" lacks \"%s\"", user, PQerrorMessage(c), needle);
    PQfinish(c);
}

static void test_md5_plaintext_userlist(void **state)
{
    (void)state;
    pxt_proxy px;
    pxt_start(&px, "auth_type = md5\n", NULL, NULL);
    expect_ok(px.port, "tusk", "tusk");            /* server: scram with the password */
    expect_ok(px.port, "tusk_md5", "md5pass");     /* server: md5 */
    expect_ok(px.port, "tusk_plain", "plainpass"); /* server: cleartext */
    expect_fail(px.port, "tusk", "wrong", "password authentication failed");
    expect_fail(px.port, "nobody", "x", "password authentication failed");
    pxt_stop(&px, SIGTERM);
}

static void test_scram_plaintext_userlist(void **state)
{
    (void)state;
    pxt_proxy px;
    pxt_start(&px, "auth_type = scram-sha-256\n", NULL, NULL);
    expect_ok(px.port, "tusk", "tusk");
    expect_ok(px.port, "tusk_md5", "md5pass");
    expect_ok(px.port, "tusk_plain", "plainpass");
    expect_fail(px.port, "tusk_md5", "md5pasS", "password authentication failed");
    expect_fail(px.port, "ghost", "x", "password authentication failed");
    pxt_stop(&px, SIGTERM);
}

static void test_plain_and_trust(void **state)
{
    (void)state;
    pxt_proxy px;
    pxt_start(&px, "auth_type = plain\n", NULL, NULL);
    expect_ok(px.port, "tusk", "tusk");
    expect_fail(px.port, "tusk", "nope", "password authentication failed");
    pxt_stop(&px, SIGTERM);
    pxt_start(&px, "auth_type = trust\n", NULL, NULL);
    expect_ok(px.port, "tusk_trust", NULL); /* server: trust, no password anywhere */
    expect_ok(px.port, "tusk", NULL);       /* server password from auth_file */
    pxt_stop(&px, SIGTERM);
}

static void test_hashes_and_secrets(void **state)
{
    (void)state;
    /* the real SCRAM secret of "tusk" and md5 hash of "tusk_md5" from the server */
    PGconn *d = pxt_direct("tusk");
    char *secret = pxt_value(d, "SELECT rolpassword FROM pg_authid WHERE rolname = 'tusk'");
    char *md5 = pxt_value(d, "SELECT rolpassword FROM pg_authid WHERE rolname = 'tusk_md5'");
    PQfinish(d);
    assert_int_equal(strncmp(secret, "SCRAM-SHA-256$", 14), 0);
    assert_int_equal(strncmp(md5, "md5", 3), 0);
    char ul[1024];
    snprintf(ul, sizeof(ul), "\"tusk\" \"%s\"\n\"tusk_md5\" \"%s\"\n", secret, md5);
    pxt_proxy px;
    pxt_start(&px, "auth_type = scram-sha-256\n", NULL, ul);
    /* client SCRAM against the secret; the server login reuses the client's proof keys */
    expect_ok(px.port, "tusk", "tusk");
    expect_fail(px.port, "tusk", "tusk2", "password authentication failed");
    /* md5 hash + auth_type scram: PostgreSQL's rule is to refuse */
    expect_fail(px.port, "tusk_md5", "md5pass", "password authentication failed");
    pxt_stop(&px, SIGTERM);
    /* auth_type md5 with a SCRAM secret stored: SCRAM is used, as PostgreSQL does */
    pxt_start(&px, "auth_type = md5\n", NULL, ul);
    expect_ok(px.port, "tusk", "tusk");
    expect_ok(px.port, "tusk_md5", "md5pass"); /* md5 hash: client and server md5 */
    expect_fail(px.port, "tusk_md5", "bad", "password authentication failed");
    pxt_stop(&px, SIGTERM);
    free(secret);
    free(md5);
}

static void test_auth_query(void **state)
{
    (void)state;
    PGconn *d = pxt_direct("tusk");
    pxt_exec(d, "DO $$BEGIN CREATE ROLE pxt_aq LOGIN PASSWORD 'aqpass'; "
                "EXCEPTION WHEN duplicate_object THEN NULL; END$$");
    PQfinish(d);
    pxt_proxy px;
    /* only the auth_user is in the auth_file */
    pxt_start(&px, "auth_type = md5\nauth_user = tusk\n", NULL, "\"tusk\" \"tusk\"\n");
    expect_ok(px.port, "tusk_md5", "md5pass"); /* md5 hash from pg_shadow, md5 to the server */
    expect_ok(px.port, "pxt_aq", "aqpass");    /* SCRAM secret: SCRAM both ways */
    expect_ok(px.port, "pxt_aq", "aqpass");    /* again (pooled server) */
    expect_fail(px.port, "pxt_aq", "wrong", "password authentication failed");
    expect_fail(px.port, "no_such_role", "x", "password authentication failed");
    pxt_stop(&px, SIGTERM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_md5_plaintext_userlist),
        cmocka_unit_test(test_scram_plaintext_userlist),
        cmocka_unit_test(test_plain_and_trust),
        cmocka_unit_test(test_hashes_and_secrets),
        cmocka_unit_test(test_auth_query),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
