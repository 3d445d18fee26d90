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

/* connecting fails and the message says why (any database, extra conninfo) */
static void expect_fail_ex(int port, const char *user, const char *pw, const char *db,
                           const char *extra, const char *needle)
{
    PGconn *c = pxt_try_connect(port, user, pw, db, extra);
    if (PQstatus(c) == CONNECTION_OK)
        fail_msg("login as %s@%s should fail", user, db);
    if (!strstr(PQerrorMessage(c), needle))
        fail_msg("login as %s@%s: error \"%s\" lacks \"%s\"", user, db, PQerrorMessage(c), needle);
    PQfinish(c);
}

/* auth_type = hba: each line's method, hostssl + cert with client certificates, peer on the
 * unix socket, reject lines and missing lines, with PostgreSQL's messages */
static void test_hba(void **state)
{
    (void)state;
    char dir[] = "/tmp/tusk-pxt-hba-XXXXXX";
    assert_non_null(mkdtemp(dir));
    int rc = svc_sh(
        "cd %s && chmod 755 . && "
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
        "-subj /CN=tusk-test-ca >/dev/null 2>&1 && "
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout srv.key -out srv.pem -days 2 "
        "-subj /CN=localhost >/dev/null 2>&1 && "
        "for cn in tusk other; do "
        "openssl req -newkey rsa:2048 -nodes -keyout $cn.key -out $cn.csr -subj /CN=$cn "
        ">/dev/null 2>&1 && openssl x509 -req -in $cn.csr -CA ca.pem -CAkey ca.key "
        "-CAcreateserial -out $cn.pem -days 2 >/dev/null 2>&1 && chmod 600 $cn.key || exit 1; "
        "done",
        dir);
    if (rc != 0)
        skip();
    char hba[1024];
    snprintf(hba, sizeof(hba),
             "# tusk test\n"
             "local   all    postgres               peer\n"
             "local   all    all                    reject\n"
             "hostssl bench  tusk        127.0.0.1/32  cert\n"
             "host    all    tusk_trust  127.0.0.1/32  trust\n"
             "host    all    tusk_md5    127.0.0.1 255.255.255.255 md5\n"
             "host    all    tusk_plain  127.0.0.1/32  password\n"
             "host    all    tusk        127.0.0.1/32  scram-sha-256\n"
             "host    all    shunned     all           reject\n");
    char path[256];
    snprintf(path, sizeof(path), "%s/hba.conf", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(hba, f);
    fclose(f);
    char extra[1024];
    snprintf(extra, sizeof(extra),
             "auth_type = hba\nauth_hba_file = %s\nunix_socket_dir = %s\n"
             "client_tls_sslmode = prefer\nclient_tls_key_file = %s/srv.key\n"
             "client_tls_cert_file = %s/srv.pem\nclient_tls_ca_file = %s/ca.pem\n",
             path, dir, dir, dir, dir);
    pxt_proxy px;
    pxt_start(&px, extra, NULL, NULL);
    expect_ok(px.port, "tusk_trust", "not-the-password"); /* trust */
    expect_ok(px.port, "tusk_md5", "md5pass");
    expect_fail(px.port, "tusk_md5", "wrong", "password authentication failed");
    expect_ok(px.port, "tusk_plain", "plainpass");
    expect_ok(px.port, "tusk", "tusk");
    expect_fail(px.port, "postgres", "",
                "no pg_hba.conf entry for host \"127.0.0.1\", user "
                "\"postgres\", database \"tusk\", no encryption");
    expect_fail(px.port, "shunned", "x", "pg_hba.conf rejects connection for host \"127.0.0.1\"");

    /* hostssl + cert: the client certificate's CN is the user */
    char ci[1024];
    snprintf(ci, sizeof(ci), "sslmode=require sslcert=%s/tusk.pem sslkey=%s/tusk.key", dir, dir);
    PGconn *c = pxt_try_connect(px.port, "tusk", "", "bench", ci);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("cert login: %s", PQerrorMessage(c));
    char *who = pxt_value(c, "SELECT current_user");
    assert_string_equal(who, "tusk");
    free(who);
    PQfinish(c);
    snprintf(ci, sizeof(ci), "sslmode=require sslcert=%s/other.pem sslkey=%s/other.key", dir, dir);
    expect_fail_ex(px.port, "tusk", "", "bench", ci,
                   "certificate authentication failed for user \"tusk\"");
    snprintf(ci, sizeof(ci), "sslmode=require sslcert=/nonexistent sslkey=/nonexistent");
    expect_fail_ex(px.port, "tusk", "tusk", "bench", ci,
                   "connection requires a valid client certificate");
    /* without TLS the hostssl line does not apply: the scram line does */
    c = pxt_try_connect(px.port, "tusk", "tusk", "bench", NULL);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PQfinish(c);

    /* unix socket: peer for postgres (as root: refused; as the postgres OS user: in), and
     * the reject line for everyone else */
    char sock[512];
    snprintf(sock, sizeof(sock), "host=%s port=%d dbname=tusk user=postgres", dir, px.port);
    c = PQconnectdb(sock);
    assert_int_not_equal(PQstatus(c), CONNECTION_OK);
    assert_non_null(strstr(PQerrorMessage(c), "Peer authentication failed for user \"postgres\""));
    PQfinish(c);
    rc = svc_sh("test \"$(runuser -u postgres -- %s/psql -XAt -h %s -p %d -U postgres -d tusk "
                "-c 'SELECT current_user')\" = postgres",
                svc_env("TUSK_PG_BIN"), dir, px.port);
    assert_int_equal(rc, 0);
    snprintf(sock, sizeof(sock), "host=%s port=%d dbname=tusk user=tusk password=tusk", dir,
             px.port);
    c = PQconnectdb(sock);
    assert_int_not_equal(PQstatus(c), CONNECTION_OK);
    assert_non_null(strstr(PQerrorMessage(c), "rejects connection for host \"[local]\""));
    PQfinish(c);
    pxt_stop(&px, SIGTERM);

    /* auth_type = cert for everyone */
    snprintf(extra, sizeof(extra),
             "auth_type = cert\nclient_tls_sslmode = require\nclient_tls_key_file = %s/srv.key\n"
             "client_tls_cert_file = %s/srv.pem\nclient_tls_ca_file = %s/ca.pem\n",
             dir, dir, dir);
    pxt_start(&px, extra, NULL, NULL);
    snprintf(ci, sizeof(ci), "sslmode=require sslcert=%s/tusk.pem sslkey=%s/tusk.key", dir, dir);
    c = pxt_try_connect(px.port, "tusk", "", "tusk", ci);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("auth_type = cert: %s", PQerrorMessage(c));
    PQfinish(c);
    expect_fail_ex(px.port, "tusk_md5", "md5pass", "tusk", ci,
                   "certificate authentication failed for user \"tusk_md5\"");
    pxt_stop(&px, SIGTERM);
    svc_sh("rm -rf %s", dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_md5_plaintext_userlist),
        cmocka_unit_test(test_scram_plaintext_userlist),
        cmocka_unit_test(test_plain_and_trust),
        cmocka_unit_test(test_hashes_and_secrets),
        cmocka_unit_test(test_auth_query),
        cmocka_unit_test(test_hba),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
