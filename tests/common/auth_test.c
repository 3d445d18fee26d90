/* Tests for common/auth.c (md5, SCRAM-SHA-256 both sides) and the base64 helpers in util.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common/common.h"

/* RFC 7677 section 3 */
#define RFC_CLIENT_NONCE "rOprNGfwEbeRWgbNEkqO"
#define RFC_SERVER_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_SALT "W22ZaJ0SNY7soEsUEjb6gQ=="
#define RFC_CLIENT_FIRST "n,,n=user,r=" RFC_CLIENT_NONCE
#define RFC_SERVER_FIRST "r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE ",s=" RFC_SALT ",i=4096"
#define RFC_CLIENT_FINAL                                                                           \
    "c=biws,r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE ",p=dHzbZapWIk4jUhN+"                            \
    "Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

/* taken from a real PostgreSQL 15+ pg_authid: role tusk, password "tusk" */
#define PG_TUSK_SECRET                                                                             \
    "SCRAM-SHA-256$4096:1Tabod9uBLXUcMJFzilaNg==$LRGFzcK0SoZyXxiNXcx6UVR1/CgryncPKzfRwZ+cImY=:"    \
    "XCV8XNBdv0LsVuILXkvndg3GKH41ewsHgMBsLTlKqoc="
/* pg_authid of tusk_md5 with password "md5pass" */
#define PG_MD5_SECRET "md5c7005eb66cb5c183f79f4dc8bf6312b7"

static void rfc_secret(auth_scram_secret *s)
{
    uint8_t salt[32];
    int n = b64_decode(RFC_SALT, strlen(RFC_SALT), salt, sizeof(salt));
    assert_int_equal(n, 16);
    assert_true(auth_scram_secret_from_password("pencil", salt, (size_t)n, 4096, s));
}

static void test_rfc7677_vector(void **state)
{
    auth_scram_secret secret;
    rfc_secret(&secret);
    char buf[AUTH_SCRAM_MAX_MSG + 1];

    auth_scram_client c;
    auth_scram_client_init_password(&c, "pencil");
    auth_scram_client_set_user(&c, "user");
    auth_scram_client_set_nonce(&c, RFC_CLIENT_NONCE);
    int n = auth_scram_client_first(&c, buf, sizeof(buf));
    assert_int_equal(n, strlen(RFC_CLIENT_FIRST));
    assert_string_equal(buf, RFC_CLIENT_FIRST);

    auth_scram_server s;
    auth_scram_server_init(&s, &secret);
    auth_scram_server_set_nonce(&s, RFC_SERVER_NONCE);
    n = auth_scram_server_first(&s, buf, (size_t)n, buf, sizeof(buf));
    assert_int_equal(n, strlen(RFC_SERVER_FIRST));
    assert_string_equal(buf, RFC_SERVER_FIRST);

    char final[AUTH_SCRAM_MAX_MSG + 1];
    n = auth_scram_client_final(&c, buf, (size_t)n, final, sizeof(final));
    assert_int_equal(n, strlen(RFC_CLIENT_FINAL));
    assert_string_equal(final, RFC_CLIENT_FINAL);

    n = auth_scram_server_final(&s, final, (size_t)n, buf, sizeof(buf));
    assert_int_equal(n, strlen(RFC_SERVER_FINAL));
    assert_string_equal(buf, RFC_SERVER_FINAL);
    assert_true(auth_scram_client_verify_server(&c, buf, (size_t)n));
    assert_memory_equal(auth_scram_server_client_key(&s), c.client_key, 32);
}

/* run a whole exchange; returns true when both sides accept */
static bool exchange(auth_scram_client *c, const auth_scram_secret *secret, uint8_t ck[32])
{
    char a[AUTH_SCRAM_MAX_MSG + 1];
    char b[AUTH_SCRAM_MAX_MSG + 1];
    auth_scram_server s;
    auth_scram_server_init(&s, secret);
    int n = auth_scram_client_first(c, a, sizeof(a));
    assert_true(n > 0);
    n = auth_scram_server_first(&s, a, (size_t)n, b, sizeof(b));
    assert_true(n > 0);
    n = auth_scram_client_final(c, b, (size_t)n, a, sizeof(a));
    assert_true(n > 0);
    n = auth_scram_server_final(&s, a, (size_t)n, b, sizeof(b));
    if (n < 0) {
        assert_non_null(s.error);
        assert_null(auth_scram_server_client_key(&s));
        return false;
    }
    if (ck)
        memcpy(ck, auth_scram_server_client_key(&s), 32);
    bool ok = auth_scram_client_verify_server(c, b, (size_t)n);
    auth_scram_server_clear(&s);
    return ok;
}

static void test_exchange_password_and_passthrough(void **state)
{
    auth_scram_secret secret;
    assert_true(auth_scram_secret_from_password("s3cret pass", NULL, 0, 0, &secret));
    assert_int_equal(secret.iterations, 4096);
    assert_int_equal(secret.salt_len, 16);

    auth_scram_client c;
    auth_scram_client_init_password(&c, "s3cret pass");
    uint8_t ck[32];
    assert_true(exchange(&c, &secret, ck));
    auth_scram_client_clear(&c);

    /* the proxy logs in to a server holding the same secret with the recovered key */
    auth_scram_client k;
    auth_scram_client_init_keys(&k, ck, secret.server_key);
    assert_true(exchange(&k, &secret, NULL));

    /* a wrong ServerKey is caught when the server's signature does not match */
    uint8_t bad[32];
    memcpy(bad, secret.server_key, 32);
    bad[0] ^= 1;
    auth_scram_client_init_keys(&k, ck, bad);
    assert_false(exchange(&k, &secret, NULL));
    assert_string_equal(k.error, "invalid SCRAM server signature");

    /* a wrong ClientKey is rejected by the server */
    memcpy(bad, ck, 32);
    bad[31] ^= 0x80;
    auth_scram_client_init_keys(&k, bad, secret.server_key);
    assert_false(exchange(&k, &secret, NULL));
}

static void test_wrong_password(void **state)
{
    auth_scram_secret secret;
    assert_true(auth_scram_secret_from_password("right", NULL, 0, 1000, &secret));
    auth_scram_client c;
    auth_scram_client_init_password(&c, "wrong");
    char a[AUTH_SCRAM_MAX_MSG + 1];
    char b[AUTH_SCRAM_MAX_MSG + 1];
    auth_scram_server s;
    auth_scram_server_init(&s, &secret);
    int n = auth_scram_client_first(&c, a, sizeof(a));
    n = auth_scram_server_first(&s, a, (size_t)n, b, sizeof(b));
    n = auth_scram_client_final(&c, b, (size_t)n, a, sizeof(a));
    assert_true(n > 0);
    assert_int_equal(auth_scram_server_final(&s, a, (size_t)n, b, sizeof(b)), -1);
    assert_string_equal(s.error, "password authentication failed");
    assert_null(auth_scram_server_client_key(&s));
    /* the state stays failed: a retry with the same message is refused too */
    assert_int_equal(auth_scram_server_final(&s, a, (size_t)n, b, sizeof(b)), -1);
}

/* server-first on msg must fail, with an error containing want */
static void server_first_fails(const char *msg, size_t len, const char *want)
{
    auth_scram_secret secret;
    rfc_secret(&secret);
    auth_scram_server s;
    auth_scram_server_init(&s, &secret);
    char out[AUTH_SCRAM_MAX_MSG + 1];
    int n = auth_scram_server_first(&s, msg, len, out, sizeof(out));
    if (n != -1)
        fail_msg("accepted client-first \"%s\"", msg);
    assert_non_null(s.error);
    if (!strstr(s.error, want))
        fail_msg("\"%s\": error \"%s\" lacks \"%s\"", msg, s.error, want);
    assert_int_equal(auth_scram_server_final(&s, "c=biws", 6, out, sizeof(out)), -1);
}

static void test_server_first_malformed(void **state)
{
    static const struct {
        const char *msg;
        const char *want;
    } cases[] = {
        {"", "malformed"},
        {"x,,n=,r=abc", "channel-binding flag"},
        {"n", "comma expected"},
        {"n,", "comma expected"},
        {"n,n=,r=abc", "comma expected"},
        {"n,a=admin,n=,r=abc", "authorization identity"},
        {"p=tls-server-end-point,,n=,r=abc", "channel binding is not supported"},
        {"n,,", "malformed"},
        {"n,,r=abc", "expected n= and r="},
        {"n,,n=", "expected n= and r="},
        {"n,,n=user", "expected n= and r="},
        {"n,,r=abc,n=user", "expected n= and r="},
        {"n,,n=,r=", "invalid client nonce"},
        {"n,,n=,r=ab c", "invalid client nonce"},
        {"n,,n=,r=ab\x01", "invalid client nonce"},
        {"n,,n=,r=abc,", "bad attribute syntax"},
        {"n,,n=,r=abc,x", "bad attribute syntax"},
        {"n,,n=,,r=abc", "bad attribute syntax"},
        {"n,,m=ext,n=,r=abc", "unsupported SCRAM extension"},
        {"n,,N=,r=abc", "expected n= and r="},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        server_first_fails(cases[i].msg, strlen(cases[i].msg), cases[i].want);
    server_first_fails("n,,n=\0,r=abc", 12, "NUL");
    char big[AUTH_SCRAM_MAX_MSG + 20];
    memset(big, 'a', sizeof(big));
    memcpy(big, "n,,n=,r=", 8);
    server_first_fails(big, sizeof(big), "too long");
    /* a nonce longer than we keep */
    char longnonce[300];
    memset(longnonce, 'x', sizeof(longnonce) - 1);
    longnonce[sizeof(longnonce) - 1] = '\0';
    memcpy(longnonce, "n,,n=,r=", 8);
    server_first_fails(longnonce, strlen(longnonce), "invalid client nonce");

    /* extensions after the nonce, and 'y' (client could bind, thinks we cannot), are fine */
    auth_scram_secret secret;
    rfc_secret(&secret);
    auth_scram_server s;
    char out[AUTH_SCRAM_MAX_MSG + 1];
    auth_scram_server_init(&s, &secret);
    const char *ok = "y,,n=someone,r=abc,x=ignored";
    assert_true(auth_scram_server_first(&s, ok, strlen(ok), out, sizeof(out)) > 0);
    assert_true(strncmp(out, "r=abc", 5) == 0);
    /* 24 random nonce chars from 18 bytes */
    assert_int_equal(strchr(out, ',') - out, 2 + 3 + 24);
    /* and a small output buffer is refused, never overflowed */
    auth_scram_server_init(&s, &secret);
    char tiny[16];
    assert_int_equal(auth_scram_server_first(&s, ok, strlen(ok), tiny, sizeof(tiny)), -1);
    assert_string_equal(s.error, "output buffer too small");
}

/* a server that has answered the RFC client-first */
static void rfc_server(auth_scram_server *s)
{
    auth_scram_secret secret;
    rfc_secret(&secret);
    auth_scram_server_init(s, &secret);
    auth_scram_server_set_nonce(s, RFC_SERVER_NONCE);
    char out[AUTH_SCRAM_MAX_MSG + 1];
    assert_int_equal(
        auth_scram_server_first(s, RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST), out, sizeof(out)),
        strlen(RFC_SERVER_FIRST));
}

static void server_final_fails(const char *msg, size_t len, const char *want)
{
    auth_scram_server s;
    rfc_server(&s);
    char out[AUTH_SCRAM_MAX_MSG + 1];
    if (auth_scram_server_final(&s, msg, len, out, sizeof(out)) != -1)
        fail_msg("accepted client-final \"%s\"", msg);
    if (!strstr(s.error, want))
        fail_msg("\"%s\": error \"%s\" lacks \"%s\"", msg, s.error, want);
}

#define NONCE RFC_CLIENT_NONCE RFC_SERVER_NONCE
#define PROOF "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="

static void test_server_final_malformed(void **state)
{
    static const struct {
        const char *msg;
        const char *want;
    } cases[] = {
        {"", "bad attribute syntax"},
        {"c=biws,r=" NONCE, "expected c=, r= ... p="},
        {"r=" NONCE ",c=biws," PROOF, "expected c=, r= ... p="},
        {"c=biws," PROOF, "expected c=, r= ... p="},
        {"c=biws,r=" NONCE "," PROOF ",x=after", "expected c=, r= ... p="},
        {"c=biws,r=" NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ", "invalid proof"},
        {"c=biws,r=" NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndV!=", "invalid proof"},
        {"c=biws,r=" NONCE ",p=dHzbZapW", "invalid proof"},
        {"c=biws,r=" NONCE ",p=", "invalid proof"},
        {"c=biws,r=" RFC_CLIENT_NONCE "," PROOF, "nonce does not match"},
        {"c=biws,r=" NONCE "x," PROOF, "nonce does not match"},
        {"c=biws,r=" RFC_CLIENT_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k1," PROOF,
         "nonce does not match"},
        {"c=eSws,r=" NONCE "," PROOF, "channel binding check failed"},
        {"c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws,r=" NONCE "," PROOF, "channel binding"},
        {"c=bi!s,r=" NONCE "," PROOF, "channel binding"},
        {"c=,r=" NONCE "," PROOF, "channel binding"},
        {"c=biws,r=" NONCE "," PROOF ",", "bad attribute syntax"},
        /* a proof for a different AuthMessage (an extension was added) */
        {"c=biws,r=" NONCE ",e=x," PROOF, "password authentication failed"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        server_final_fails(cases[i].msg, strlen(cases[i].msg), cases[i].want);
    char big[AUTH_SCRAM_MAX_MSG + 1];
    memset(big, 'a', sizeof(big));
    server_final_fails(big, sizeof(big), "too long");

    /* before client-first */
    auth_scram_secret secret;
    rfc_secret(&secret);
    auth_scram_server s;
    auth_scram_server_init(&s, &secret);
    char out[AUTH_SCRAM_MAX_MSG + 1];
    assert_int_equal(
        auth_scram_server_final(&s, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL), out, sizeof(out)),
        -1);
    assert_string_equal(s.error, "unexpected SCRAM message");

    /* the good message with no room for the answer */
    rfc_server(&s);
    char tiny[10];
    assert_int_equal(
        auth_scram_server_final(&s, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL), tiny, sizeof(tiny)),
        -1);
    assert_null(auth_scram_server_client_key(&s));
}

/* a client that has sent the RFC client-first */
static void rfc_client(auth_scram_client *c)
{
    char out[AUTH_SCRAM_MAX_MSG + 1];
    auth_scram_client_init_password(c, "pencil");
    auth_scram_client_set_user(c, "user");
    auth_scram_client_set_nonce(c, RFC_CLIENT_NONCE);
    assert_true(auth_scram_client_first(c, out, sizeof(out)) > 0);
}

static void client_final_fails(const char *msg, const char *want)
{
    auth_scram_client c;
    rfc_client(&c);
    char out[AUTH_SCRAM_MAX_MSG + 1];
    if (auth_scram_client_final(&c, msg, strlen(msg), out, sizeof(out)) != -1)
        fail_msg("accepted server-first \"%s\"", msg);
    if (!strstr(c.error, want))
        fail_msg("\"%s\": error \"%s\" lacks \"%s\"", msg, c.error, want);
}

static void test_client_malformed(void **state)
{
    static const struct {
        const char *msg;
        const char *want;
    } cases[] = {
        {"", "bad attribute syntax"},
        {"r=" NONCE ",s=" RFC_SALT, "expected r=, s=, i="},
        {"s=" RFC_SALT ",r=" NONCE ",i=4096", "expected r=, s=, i="},
        {"m=x,r=" NONCE ",s=" RFC_SALT ",i=4096", "unsupported SCRAM extension"},
        {"r=" RFC_CLIENT_NONCE ",s=" RFC_SALT ",i=4096", "does not extend"},
        {"r=XOprNGfwEbeRWgbNEkqOabc,s=" RFC_SALT ",i=4096", "does not extend"},
        {"r=rOprNG,s=" RFC_SALT ",i=4096", "does not extend"},
        {"r=" NONCE " x,s=" RFC_SALT ",i=4096", "does not extend"},
        {"r=" NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ=,i=4096", "invalid salt"},
        {"r=" NONCE ",s=,i=4096", "invalid salt"},
        {"r=" NONCE ",s=" RFC_SALT ",i=0", "invalid iteration count"},
        {"r=" NONCE ",s=" RFC_SALT ",i=-1", "invalid iteration count"},
        {"r=" NONCE ",s=" RFC_SALT ",i=4096x", "invalid iteration count"},
        {"r=" NONCE ",s=" RFC_SALT ",i=", "invalid iteration count"},
        {"r=" NONCE ",s=" RFC_SALT ",i=99999999999", "invalid iteration count"},
        {"r=" NONCE ",s=" RFC_SALT ",i=4096,", "bad attribute syntax"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        client_final_fails(cases[i].msg, cases[i].want);

    /* server-final: an error, a wrong signature, garbage */
    static const struct {
        const char *msg;
        const char *want;
    } finals[] = {
        {"e=invalid-proof", "server reported a SCRAM error"},
        {"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G8=", "invalid SCRAM server signature"},
        {"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "invalid SCRAM server signature"},
        {"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4", "expected v="},
        {"x=1", "expected v="},
        {"", "malformed"},
    };
    for (size_t i = 0; i < sizeof(finals) / sizeof(finals[0]); i++) {
        auth_scram_client c;
        rfc_client(&c);
        char out[AUTH_SCRAM_MAX_MSG + 1];
        assert_true(auth_scram_client_final(&c, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), out,
                                            sizeof(out)) > 0);
        assert_false(auth_scram_client_verify_server(&c, finals[i].msg, strlen(finals[i].msg)));
        if (!strstr(c.error, finals[i].want))
            fail_msg("\"%s\": error \"%s\"", finals[i].msg, c.error);
    }

    /* out of order and small buffers */
    auth_scram_client c;
    char out[AUTH_SCRAM_MAX_MSG + 1];
    auth_scram_client_init_password(&c, "pencil");
    assert_int_equal(
        auth_scram_client_final(&c, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), out, sizeof(out)),
        -1);
    assert_false(auth_scram_client_verify_server(&c, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL)));
    auth_scram_client_init_password(&c, "pencil");
    char tiny[20];
    assert_int_equal(auth_scram_client_first(&c, tiny, sizeof(tiny)), -1);
    rfc_client(&c);
    assert_int_equal(
        auth_scram_client_final(&c, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), tiny, sizeof(tiny)),
        -1);
    /* bad test nonce refused */
    auth_scram_client_init_password(&c, "pencil");
    auth_scram_client_set_nonce(&c, "a,b");
    assert_int_equal(auth_scram_client_first(&c, out, sizeof(out)), -1);
    /* user names are escaped */
    auth_scram_client_init_password(&c, "pencil");
    auth_scram_client_set_user(&c, "a,b=c");
    auth_scram_client_set_nonce(&c, "xyz");
    assert_true(auth_scram_client_first(&c, out, sizeof(out)) > 0);
    assert_string_equal(out, "n,,n=a=2Cb=3Dc,r=xyz");
    /* random nonce: 24 base64 chars */
    auth_scram_client_init_password(&c, "pencil");
    assert_int_equal(auth_scram_client_first(&c, out, sizeof(out)), 8 + 24);
    assert_true(strncmp(out, "n,,n=,r=", 8) == 0);
}

static void test_postgres_secret(void **state)
{
    auth_scram_secret secret;
    assert_true(auth_scram_parse_secret(PG_TUSK_SECRET, &secret));
    assert_int_equal(secret.iterations, 4096);
    assert_int_equal(secret.salt_len, 16);
    assert_true(auth_is_scram_secret(PG_TUSK_SECRET));
    char text[256];
    assert_int_equal(auth_scram_format_secret(&secret, text, sizeof(text)), strlen(PG_TUSK_SECRET));
    assert_string_equal(text, PG_TUSK_SECRET);
    assert_int_equal(auth_scram_format_secret(&secret, text, 20), -1);

    /* deriving from the password with PostgreSQL's salt gives PostgreSQL's secret */
    auth_scram_secret derived;
    assert_true(
        auth_scram_secret_from_password("tusk", secret.salt, secret.salt_len, 4096, &derived));
    assert_true(auth_scram_format_secret(&derived, text, sizeof(text)) > 0);
    assert_string_equal(text, PG_TUSK_SECRET);

    auth_scram_client c;
    auth_scram_client_init_password(&c, "tusk");
    assert_true(exchange(&c, &secret, NULL));
    auth_scram_client_init_password(&c, "tusk ");
    assert_false(exchange(&c, &secret, NULL));

    static const char *const bad[] = {
        "",
        "SCRAM-SHA-256",
        "SCRAM-SHA-1$4096:1Tabod9uBLXUcMJFzilaNg==$LRGFzcK0SoZyXxiNXcx6UVR1/CgryncPKzfRwZ+cImY=:"
        "XCV8XNBdv0LsVuILXkvndg3GKH41ewsHgMBsLTlKqoc=",
        "SCRAM-SHA-256$0:1Tabod9uBLXUcMJFzilaNg==$LRGFzcK0SoZyXxiNXcx6UVR1/CgryncPKzfRwZ+cImY=:"
        "XCV8XNBdv0LsVuILXkvndg3GKH41ewsHgMBsLTlKqoc=",
        "SCRAM-SHA-256$x:1Tabod9uBLXUcMJFzilaNg==$LRGFzcK0SoZyXxiNXcx6UVR1/CgryncPKzfRwZ+cImY=:"
        "XCV8XNBdv0LsVuILXkvndg3GKH41ewsHgMBsLTlKqoc=",
        "SCRAM-SHA-256$4096:$LRGFzcK0SoZyXxiNXcx6UVR1/CgryncPKzfRwZ+cImY=:"
        "XCV8XNBdv0LsVuILXkvndg3GKH41ewsHgMBsLTlKqoc=",
        "SCRAM-SHA-256$4096:1Tabod9uBLXUcMJFzilaNg==$LRGFzcK0SoZyXxiNXcx6UVR1/CgryncPKzfRwZ+cIm=:"
        "XCV8XNBdv0LsVuILXkvndg3GKH41ewsHgMBsLTlKqoc=",
        "SCRAM-SHA-256$4096:1Tabod9uBLXUcMJFzilaNg==$LRGFzcK0SoZyXxiNXcx6UVR1/CgryncPKzfRwZ+cImY=",
        "SCRAM-SHA-256$4096:1Tabod9uBLXUcMJFzilaNg==$LRGFzcK0SoZyXxiNXcx6UVR1/CgryncPKzfRwZ+cImY=:"
        "XCV8XNBdv0LsVuILXkvndg3GKH41ewsHgMBsLTlKqoc=x",
        "SCRAM-SHA-256$4096:1Tabod9uBLXUcMJFzilaNg==$LRGFzcK0SoZyXxiNXcx6UVR1/CgryncPKzfRwZ+cImY=:"
        "XCV8XNBdv0LsVuILXkvndg3GKH41ewsHgMBsLTlKqoc",
        PG_MD5_SECRET,
        "tusk",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (auth_is_scram_secret(bad[i]))
            fail_msg("accepted secret \"%s\"", bad[i]);
    }
}

static void test_saslprep(void **state)
{
    uint8_t salt[4] = {1, 2, 3, 4};
    auth_scram_secret a;
    auth_scram_secret b;
    /* soft hyphen maps to nothing, no-break space to a space */
    assert_true(auth_scram_secret_from_password("pen\xc2\xad"
                                                "cil",
                                                salt, 4, 1, &a));
    assert_true(auth_scram_secret_from_password("pencil", salt, 4, 1, &b));
    assert_memory_equal(a.stored_key, b.stored_key, 32);
    assert_true(auth_scram_secret_from_password("a\xc2\xa0z", salt, 4, 1, &a));
    assert_true(auth_scram_secret_from_password("a z", salt, 4, 1, &b));
    assert_memory_equal(a.stored_key, b.stored_key, 32);
    /* a prohibited character (a control) keeps the original bytes, mapping included */
    assert_true(auth_scram_secret_from_password("a\xc2\xad\x01", salt, 4, 1, &a));
    assert_true(auth_scram_secret_from_password("a\x01", salt, 4, 1, &b));
    assert_memory_not_equal(a.stored_key, b.stored_key, 32);
    /* invalid UTF-8 is used as-is (and differs from its "mapped" reading) */
    assert_true(auth_scram_secret_from_password("\xff\xc2\xad", salt, 4, 1, &a));
    assert_true(auth_scram_secret_from_password("\xff", salt, 4, 1, &b));
    assert_memory_not_equal(a.stored_key, b.stored_key, 32);
    /* bad arguments */
    assert_false(auth_scram_secret_from_password("x", salt, 0, 1, &a));
    assert_false(auth_scram_secret_from_password("x", salt, 65, 1, &a));
    assert_false(auth_scram_secret_from_password("x", salt, 4, -1, &a));
    char big[2000];
    memset(big, 'p', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_false(auth_scram_secret_from_password(big, salt, 4, 1, &a));
    auth_scram_client c;
    auth_scram_client_init_password(&c, big);
    char out[AUTH_SCRAM_MAX_MSG + 1];
    assert_int_equal(auth_scram_client_first(&c, out, sizeof(out)), -1);
    assert_string_equal(c.error, "password too long");
}

/* the salt= part of a server-first answer for a mock exchange */
static void mock_salt(const char *user, char *salt, size_t cap)
{
    auth_scram_server s;
    auth_scram_server_init_mock(&s, user);
    const char *first = "n,,n=,r=abc";
    char out[AUTH_SCRAM_MAX_MSG + 1];
    assert_true(auth_scram_server_first(&s, first, strlen(first), out, sizeof(out)) > 0);
    const char *p = strstr(out, ",s=");
    assert_non_null(p);
    const char *e = strstr(p, ",i=4096");
    assert_non_null(e);
    snprintf(salt, cap, "%.*s", (int)(e - p - 3), p + 3);
}

static void test_mock_and_cached_keys(void **state)
{
    char a[64];
    char b[64];
    char c[64];
    mock_salt("ghost", a, sizeof(a));
    mock_salt("ghost", b, sizeof(b));
    mock_salt("phantom", c, sizeof(c));
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_int_equal(strlen(a), 24);

    /* whatever the password, a mock exchange fails like a wrong password */
    char x[AUTH_SCRAM_MAX_MSG + 1];
    char y[AUTH_SCRAM_MAX_MSG + 1];
    auth_scram_server s;
    auth_scram_server_init_mock(&s, "ghost");
    auth_scram_client cl;
    auth_scram_client_init_password(&cl, "anything");
    int n = auth_scram_client_first(&cl, x, sizeof(x));
    n = auth_scram_server_first(&s, x, (size_t)n, y, sizeof(y));
    n = auth_scram_client_final(&cl, y, (size_t)n, x, sizeof(x));
    assert_true(n > 0);
    assert_int_equal(auth_scram_server_final(&s, x, (size_t)n, y, sizeof(y)), -1);
    assert_string_equal(s.error, "password authentication failed");

    /* keys derived once and reused give the RFC client-final */
    uint8_t salt[16];
    assert_int_equal(b64_decode(RFC_SALT, strlen(RFC_SALT), salt, sizeof(salt)), 16);
    uint8_t ck[32];
    uint8_t sk[32];
    assert_true(auth_scram_keys_from_password("pencil", salt, 16, 4096, ck, sk));
    assert_false(auth_scram_keys_from_password("pencil", salt, 0, 4096, ck, sk));
    assert_false(auth_scram_keys_from_password("pencil", salt, 16, 0, ck, sk));
    auth_scram_client_init_keys(&cl, ck, sk);
    auth_scram_client_set_user(&cl, "user");
    auth_scram_client_set_nonce(&cl, RFC_CLIENT_NONCE);
    assert_true(auth_scram_client_first(&cl, x, sizeof(x)) > 0);
    assert_true(
        auth_scram_client_final(&cl, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), x, sizeof(x)) > 0);
    assert_string_equal(x, RFC_CLIENT_FINAL);
    assert_true(auth_scram_client_verify_server(&cl, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL)));
}

/* the per-thread buffer never hands out a byte twice, across refills and after a fork */
static void test_random_bytes(void **state)
{
    (void)state;
    enum { DRAWS = 2000 };
    static uint64_t seen[DRAWS];
    for (int i = 0; i < DRAWS; i++) {
        assert_true(auth_random_bytes(&seen[i], sizeof(seen[i])));
        for (int j = 0; j < i; j++)
            assert_true(seen[j] != seen[i]);
    }
    uint8_t big[4096] = {0}, zero[4096] = {0};
    assert_true(auth_random_bytes(big, sizeof(big)));
    assert_memory_not_equal(big, zero, sizeof(big));
    /* a child must not repeat what the parent draws next */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        uint64_t v = 0;
        _exit(auth_random_bytes(&v, sizeof(v)) && write(fds[1], &v, sizeof(v)) == sizeof(v) ? 0
                                                                                            : 1);
    }
    uint64_t child = 0, parent = 0;
    assert_int_equal(read(fds[0], &child, sizeof(child)), sizeof(child));
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(status, 0);
    assert_true(auth_random_bytes(&parent, sizeof(parent)));
    assert_true(child != parent);
    close(fds[0]);
    close(fds[1]);
}

static void test_md5(void **state)
{
    char out[36];
    auth_md5_hash("md5pass", "tusk_md5", out);
    assert_string_equal(out, PG_MD5_SECRET);
    assert_true(auth_is_md5_hash(PG_MD5_SECRET));
    assert_false(auth_is_md5_hash("md5c7005eb66cb5c183f79f4dc8bf6312b"));
    assert_false(auth_is_md5_hash("md5c7005eb66cb5c183f79f4dc8bf6312bz"));
    assert_false(auth_is_md5_hash("md5pass"));
    assert_false(auth_is_md5_hash(PG_TUSK_SECRET));

    const uint8_t salt[4] = {1, 2, 3, 4};
    const uint8_t salt2[4] = {0xde, 0xad, 0xbe, 0xef};
    auth_md5_salted(PG_MD5_SECRET, salt, out);
    assert_string_equal(out, "md54013ebc39b439ebde4136078a963afb2");
    auth_md5_salted(PG_MD5_SECRET, salt2, out);
    assert_string_equal(out, "md5f9d3039315e746c12c0853441b89a370");

    /* stored hash or stored plaintext both verify */
    assert_true(auth_md5_verify(PG_MD5_SECRET, "tusk_md5", salt2, out));
    assert_true(auth_md5_verify("md5C7005EB66CB5C183F79F4DC8BF6312B7", "tusk_md5", salt2, out));
    assert_true(auth_md5_verify("md5pass", "tusk_md5", salt2, out));
    assert_false(auth_md5_verify("md5pass", "other", salt2, out));
    assert_false(auth_md5_verify("md5pasS", "tusk_md5", salt2, out));
    assert_false(auth_md5_verify(PG_MD5_SECRET, "tusk_md5", salt, out));
    assert_false(auth_md5_verify(PG_MD5_SECRET, "tusk_md5", salt2, "md5f9d3039315e746c12c08"));
    assert_false(auth_md5_verify(PG_MD5_SECRET, "tusk_md5", salt2, ""));
    char longer[40];
    snprintf(longer, sizeof(longer), "%sx", out);
    assert_false(auth_md5_verify(PG_MD5_SECRET, "tusk_md5", salt2, longer));
    /* a SCRAM secret cannot answer md5 */
    assert_false(auth_md5_verify(PG_TUSK_SECRET, "tusk", salt2, out));
}

static void test_base64(void **state)
{
    static const struct {
        const char *raw;
        const char *enc;
    } v[] = {{"", ""},
             {"f", "Zg=="},
             {"fo", "Zm8="},
             {"foo", "Zm9v"},
             {"foob", "Zm9vYg=="},
             {"fooba", "Zm9vYmE="},
             {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char enc[32];
        uint8_t dec[32];
        assert_int_equal(b64_encode(v[i].raw, strlen(v[i].raw), enc, sizeof(enc)),
                         strlen(v[i].enc));
        assert_string_equal(enc, v[i].enc);
        assert_int_equal(b64_decode(v[i].enc, strlen(v[i].enc), dec, sizeof(dec)),
                         strlen(v[i].raw));
        assert_memory_equal(dec, v[i].raw, strlen(v[i].raw));
    }
    uint8_t all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    char enc[B64_ENCODED_SIZE(256)];
    assert_int_equal(b64_encode(all, 256, enc, sizeof(enc)), sizeof(enc) - 1);
    assert_int_equal(b64_encode(all, 256, enc, sizeof(enc) - 1), -1);
    uint8_t dec[256];
    assert_int_equal(b64_decode(enc, strlen(enc), dec, sizeof(dec)), 256);
    assert_memory_equal(dec, all, 256);
    assert_int_equal(b64_decode(enc, strlen(enc), dec, 255), -1);

    static const char *const bad[] = {"Zg=",  "Zg",   "Z===",  "Zm9v=", "Zg==Zg==", "Zh==",
                                      "Zm9=", "Zm 9", "Zm9\n", "=Zm9",  "Zm=v",     "Zm-_"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (b64_decode(bad[i], strlen(bad[i]), dec, sizeof(dec)) != -1)
            fail_msg("decoded \"%s\"", bad[i]);
    }
    /* base64url without padding: RFC 4648's vectors, '-' and '_', and its refusals */
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char u[32], want[32];
        size_t wl = strcspn(v[i].enc, "=");
        memcpy(want, v[i].enc, wl);
        want[wl] = '\0';
        assert_int_equal(b64url_encode(v[i].raw, strlen(v[i].raw), u, sizeof(u)), (int)wl);
        assert_string_equal(u, want);
        assert_int_equal(b64url_decode(u, wl, dec, sizeof(dec)), (int)strlen(v[i].raw));
        assert_memory_equal(dec, v[i].raw, strlen(v[i].raw));
    }
    char u[8];
    assert_int_equal(b64url_encode("\xfb\xff", 2, u, sizeof(u)), 3);
    assert_string_equal(u, "-_8");
    assert_int_equal(b64url_encode("\xfb\xff", 2, u, 4), 3);
    assert_int_equal(b64url_encode("\xfb\xff\xfe", 3, u, 4), -1); /* no room for the NUL */
    static const char *const ubad[] = {"Z", "Zm9vY", "Zm+v", "Zm/v", "Zg==", "Zm 9"};
    for (size_t i = 0; i < sizeof(ubad) / sizeof(ubad[0]); i++) {
        if (b64url_decode(ubad[i], strlen(ubad[i]), dec, sizeof(dec)) != -1)
            fail_msg("decoded \"%s\" as base64url", ubad[i]);
    }
    assert_int_equal(b64url_decode("Zm9vYmFy", 8, dec, 5), -1);
    char hex[9];
    hex_encode("\x01\xab\xff\x00", 4, hex);
    assert_string_equal(hex, "01abff00");
}

static void test_str_helpers(void **state)
{
    long long v;
    assert_true(str_to_int(" 42 ", 0, 100, &v));
    assert_int_equal(v, 42);
    assert_true(str_to_int("-5", -10, 10, &v));
    assert_int_equal(v, -5);
    assert_false(str_to_int("101", 0, 100, &v));
    assert_false(str_to_int("4x", 0, 100, &v));
    assert_false(str_to_int("", 0, 100, &v));
    assert_false(str_to_int("99999999999999999999999", 0, 100, &v));
    bool b;
    assert_true(str_to_bool("Yes", &b) && b);
    assert_true(str_to_bool("off", &b) && !b);
    assert_true(str_to_bool("1", &b) && b);
    assert_false(str_to_bool("maybe", &b));
    char dst[4];
    assert_true(str_copy(dst, sizeof(dst), "abc"));
    assert_false(str_copy(dst, sizeof(dst), "abcd"));
    assert_string_equal(dst, "abc");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc7677_vector),
        cmocka_unit_test(test_exchange_password_and_passthrough),
        cmocka_unit_test(test_wrong_password),
        cmocka_unit_test(test_server_first_malformed),
        cmocka_unit_test(test_server_final_malformed),
        cmocka_unit_test(test_client_malformed),
        cmocka_unit_test(test_postgres_secret),
        cmocka_unit_test(test_saslprep),
        cmocka_unit_test(test_mock_and_cached_keys),
        cmocka_unit_test(test_md5),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_str_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
