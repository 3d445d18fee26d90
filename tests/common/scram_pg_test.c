/*
 * Integration test for the client side of common/auth.c against a real PostgreSQL: speaks the
 * startup and authentication part of the wire protocol over a raw socket and logs in with
 * SCRAM-SHA-256 (password and pass-through keys) and md5, expecting AuthenticationOk.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <libpq-fe.h>
#include "common/common.h"
#include "tests/support/support.h"

typedef struct msg {
    char type;
    uint32_t len; /* payload length */
    uint8_t data[8192];
} msg;

static int pg_connect(void)
{
    int port = svc_env_int("TUSK_PG_PRIMARY_PORT");
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {.tv_sec = 10};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void send_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        assert_true(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

static void recv_all(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = read(fd, p, len);
        if (n <= 0)
            fail_msg("server closed the connection");
        p += n;
        len -= (size_t)n;
    }
}

static void put32(uint8_t *p, uint32_t v)
{
    v = htonl(v);
    memcpy(p, &v, 4);
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return ntohl(v);
}

static void read_msg(int fd, msg *m)
{
    uint8_t hdr[5];
    recv_all(fd, hdr, 5);
    m->type = (char)hdr[0];
    uint32_t len = get32(hdr + 1);
    assert_true(len >= 4 && len - 4 <= sizeof(m->data));
    m->len = len - 4;
    recv_all(fd, m->data, m->len);
}

static void send_startup(int fd, const char *user)
{
    uint8_t buf[256];
    size_t n = 8;
    put32(buf + 4, 196608);
    n += (size_t)snprintf((char *)buf + n, sizeof(buf) - n, "user") + 1;
    n += (size_t)snprintf((char *)buf + n, sizeof(buf) - n, "%s", user) + 1;
    n += (size_t)snprintf((char *)buf + n, sizeof(buf) - n, "database") + 1;
    n += (size_t)snprintf((char *)buf + n, sizeof(buf) - n, "tusk") + 1;
    buf[n++] = 0;
    put32(buf, (uint32_t)n);
    send_all(fd, buf, n);
}

/* 'p' message carrying payload (SASLResponse, PasswordMessage); with mech: SASLInitialResponse */
static void send_p(int fd, const char *mech, const void *data, size_t len)
{
    uint8_t buf[4096];
    size_t n = 5;
    buf[0] = 'p';
    if (mech) {
        size_t ml = strlen(mech) + 1;
        memcpy(buf + n, mech, ml);
        n += ml;
        put32(buf + n, (uint32_t)len);
        n += 4;
    }
    assert_true(n + len <= sizeof(buf));
    memcpy(buf + n, data, len);
    n += len;
    put32(buf + 1, (uint32_t)(n - 1));
    send_all(fd, buf, n);
}

/* auth request code of an 'R' message, failing on an ErrorResponse */
static uint32_t expect_auth(int fd, msg *m)
{
    read_msg(fd, m);
    if (m->type == 'E')
        return 0xffffffffu;
    assert_int_equal(m->type, 'R');
    assert_true(m->len >= 4);
    return get32(m->data);
}

/* after AuthenticationOk: read up to ReadyForQuery, then say goodbye */
static void finish(int fd, msg *m)
{
    for (;;) {
        read_msg(fd, m);
        if (m->type == 'E')
            fail_msg("error after authentication");
        if (m->type == 'Z')
            break;
    }
    uint8_t term[5] = {'X', 0, 0, 0, 4};
    send_all(fd, term, 5);
}

/* SCRAM login with a prepared client; returns true on AuthenticationOk */
static bool scram_login(const char *user, auth_scram_client *c)
{
    msg *m = malloc(sizeof(*m));
    assert_non_null(m);
    int fd = pg_connect();
    send_startup(fd, user);
    uint32_t code = expect_auth(fd, m);
    assert_int_equal(code, 10); /* AuthenticationSASL */
    /* mechanism list: NUL-terminated names ending with an empty one */
    bool has = false;
    for (size_t i = 4; i < m->len && m->data[i];) {
        const char *name = (const char *)m->data + i;
        if (strcmp(name, "SCRAM-SHA-256") == 0)
            has = true;
        i += strlen(name) + 1;
    }
    assert_true(has);

    char out[AUTH_SCRAM_MAX_MSG + 1];
    int n = auth_scram_client_first(c, out, sizeof(out));
    assert_true(n > 0);
    send_p(fd, "SCRAM-SHA-256", out, (size_t)n);
    code = expect_auth(fd, m);
    assert_int_equal(code, 11); /* SASLContinue */
    n = auth_scram_client_final(c, (const char *)m->data + 4, m->len - 4, out, sizeof(out));
    if (n < 0)
        fail_msg("client-final: %s", c->error);
    send_p(fd, NULL, out, (size_t)n);
    code = expect_auth(fd, m);
    bool ok = false;
    if (code == 12) { /* SASLFinal */
        if (!auth_scram_client_verify_server(c, (const char *)m->data + 4, m->len - 4))
            fail_msg("server signature: %s", c->error);
        code = expect_auth(fd, m);
        assert_int_equal(code, 0);
        finish(fd, m);
        ok = true;
    } else {
        assert_int_equal(m->type, 'E'); /* 28P01 password authentication failed */
    }
    close(fd);
    free(m);
    return ok;
}

static void test_scram_password(void **state)
{
    auth_scram_client c;
    auth_scram_client_init_password(&c, svc_env("TUSK_PG_PASSWORD"));
    assert_true(scram_login(svc_env("TUSK_PG_USER"), &c));
    auth_scram_client_init_password(&c, "not the password");
    assert_false(scram_login(svc_env("TUSK_PG_USER"), &c));
}

/* the role's secret, read as the trusted superuser */
static void fetch_secret(const char *role, char *out, size_t cap)
{
    char conninfo[256];
    snprintf(conninfo, sizeof(conninfo), "host=127.0.0.1 port=%s user=postgres dbname=tusk",
             svc_env("TUSK_PG_PRIMARY_PORT"));
    PGconn *conn = PQconnectdb(conninfo);
    if (PQstatus(conn) != CONNECTION_OK)
        fail_msg("connect: %s", PQerrorMessage(conn));
    const char *params[1] = {role};
    PGresult *r = PQexecParams(conn, "select rolpassword from pg_authid where rolname = $1", 1,
                               NULL, params, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 1);
    assert_true(str_copy(out, cap, PQgetvalue(r, 0, 0)));
    PQclear(r);
    PQfinish(conn);
}

static void test_scram_passthrough(void **state)
{
    /* the proxy side: a client proves the password to us, we keep its ClientKey */
    char text[256];
    fetch_secret(svc_env("TUSK_PG_USER"), text, sizeof(text));
    auth_scram_secret secret;
    assert_true(auth_scram_parse_secret(text, &secret));
    auth_scram_server s;
    auth_scram_server_init(&s, &secret);
    auth_scram_client front;
    auth_scram_client_init_password(&front, svc_env("TUSK_PG_PASSWORD"));
    char a[AUTH_SCRAM_MAX_MSG + 1];
    char b[AUTH_SCRAM_MAX_MSG + 1];
    int n = auth_scram_client_first(&front, a, sizeof(a));
    n = auth_scram_server_first(&s, a, (size_t)n, b, sizeof(b));
    n = auth_scram_client_final(&front, b, (size_t)n, a, sizeof(a));
    n = auth_scram_server_final(&s, a, (size_t)n, b, sizeof(b));
    assert_true(n > 0);
    assert_true(auth_scram_client_verify_server(&front, b, (size_t)n));

    /* and log in to PostgreSQL with the keys only */
    auth_scram_client back;
    auth_scram_client_init_keys(&back, auth_scram_server_client_key(&s), secret.server_key);
    assert_true(scram_login(svc_env("TUSK_PG_USER"), &back));
}

/* md5 login; true on AuthenticationOk */
static bool md5_login(const char *user, const char *password)
{
    msg *m = malloc(sizeof(*m));
    assert_non_null(m);
    int fd = pg_connect();
    send_startup(fd, user);
    uint32_t code = expect_auth(fd, m);
    assert_int_equal(code, 5); /* AuthenticationMD5Password */
    assert_int_equal(m->len, 8);
    char hash[36];
    char answer[36];
    auth_md5_hash(password, user, hash);
    auth_md5_salted(hash, m->data + 4, answer);
    send_p(fd, NULL, answer, 36); /* with its NUL */
    code = expect_auth(fd, m);
    bool ok = code == 0;
    if (ok)
        finish(fd, m);
    else
        assert_int_equal(m->type, 'E');
    close(fd);
    free(m);
    return ok;
}

static void test_md5(void **state)
{
    assert_true(md5_login("tusk_md5", "md5pass"));
    assert_false(md5_login("tusk_md5", "md5pas"));
    /* what PostgreSQL stores is what auth_md5_hash computes */
    char text[256];
    char hash[36];
    fetch_secret("tusk_md5", text, sizeof(text));
    auth_md5_hash("md5pass", "tusk_md5", hash);
    assert_string_equal(text, hash);
}

int main(void)
{
    svc_env("TUSK_PG_PRIMARY_PORT");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scram_password),
        cmocka_unit_test(test_scram_passthrough),
        cmocka_unit_test(test_md5),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
