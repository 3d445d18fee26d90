/* Helpers of the proxy integration tests (see pxtest.h). */
#include "tests/proxy/pxtest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

static char *make_ini(int port, const char *userlist, const char *pgbouncer_extra,
                      const char *db_extra)
{
    const char *host = svc_env("TUSK_PG_HOST");
    int pg = svc_env_int("TUSK_PG_PRIMARY_PORT");
    char *buf = malloc(8192);
    snprintf(buf, 8192,
             "[databases]\n"
             "tusk = host=%s port=%d dbname=tusk\n"
             "bench = host=%s port=%d dbname=bench\n"
             "%s\n"
             "[pgbouncer]\n"
             "listen_addr = 127.0.0.1\n"
             "listen_port = %d\n"
             "unix_socket_dir =\n"
             "auth_type = md5\n"
             "auth_file = %s\n"
             "log_connections = 0\n"
             "log_disconnections = 0\n"
             "workers = 2\n"
             "%s\n",
             host, pg, host, pg, db_extra ? db_extra : "", port, userlist,
             pgbouncer_extra ? pgbouncer_extra : "");
    return buf;
}

/* the proxy whose log a failure prints */
static pxt_proxy *current;

/* proxies still running: a failed test longjmps past its pxt_stop, so whatever is left is
 * killed at exit instead of outliving the test */
static pid_t running[64];

static void kill_leftovers(void)
{
    for (int i = 0; i < 64; i++) {
        if (running[i] > 0) {
            kill(running[i], SIGKILL);
            waitpid(running[i], NULL, 0);
            running[i] = 0;
        }
    }
}

/* remember a started proxy (pid) so it cannot outlive the test */
void pxt_track(pid_t pid)
{
    static bool registered;
    if (!registered) {
        atexit(kill_leftovers);
        registered = true;
    }
    for (int i = 0; i < 64; i++) {
        if (running[i] == 0) {
            running[i] = pid;
            return;
        }
    }
}

/* forget a proxy that was stopped */
void pxt_untrack(pid_t pid)
{
    for (int i = 0; i < 64; i++)
        if (running[i] == pid)
            running[i] = 0;
}

static void dump_current(void)
{
    if (current && current->proc.pid > 0)
        svc_dump_log(&current->proc);
}

static const char *default_userlist = "\"tusk\" \"tusk\"\n"
                                      "\"tusk_md5\" \"md5pass\"\n"
                                      "\"tusk_plain\" \"plainpass\"\n";

void pxt_start(pxt_proxy *px, const char *pgbouncer_extra, const char *db_extra,
               const char *userlist_text)
{
    memset(px, 0, sizeof(*px));
    px->userlist_path = svc_write_temp(".txt", userlist_text ? userlist_text : default_userlist);
    px->port = svc_free_port();
    char *ini = make_ini(px->port, px->userlist_path, pgbouncer_extra, db_extra);
    bool ok = svc_start_role(&px->proc, "proxy", ini, px->port);
    free(ini);
    if (px->proc.pid > 0)
        pxt_track(px->proc.pid);
    current = px;
    if (!ok)
        fail_msg("tusk proxy did not start");
}

void pxt_reload(pxt_proxy *px, const char *pgbouncer_extra, const char *db_extra)
{
    char *ini = make_ini(px->port, px->userlist_path, pgbouncer_extra, db_extra);
    FILE *f = fopen(px->proc.config_path, "w");
    assert_non_null(f);
    fputs(ini, f);
    fclose(f);
    free(ini);
    kill(px->proc.pid, SIGHUP);
    usleep(300 * 1000);
}

int pxt_stop(pxt_proxy *px, int sig)
{
    if (current == px)
        current = NULL;
    pid_t pid = px->proc.pid;
    char *log = px->proc.log_path ? strdup(px->proc.log_path) : NULL;
    /* svc_stop_role frees the paths; keep the log for a failure report */
    svc_proc copy = px->proc;
    copy.log_path = log;
    int st = svc_stop_role(&px->proc, sig);
    pxt_untrack(pid);
    if (st != 0 && pid > 0) {
        fprintf(stderr, "tusk proxy exited with status %d\n", st);
        svc_dump_log(&copy);
    }
    if (log) {
        unlink(log);
        free(log);
    }
    if (st != 0 && pid > 0)
        fail_msg("tusk proxy exited with status %d (crash, sanitizer report or leak)", st);
    if (px->userlist_path) {
        unlink(px->userlist_path);
        free(px->userlist_path);
        px->userlist_path = NULL;
    }
    return st;
}

PGconn *pxt_try_connect(int port, const char *user, const char *password, const char *db,
                        const char *extra)
{
    char ci[1024];
    snprintf(ci, sizeof(ci),
             "host=127.0.0.1 port=%d user=%s dbname=%s password='%s' connect_timeout=10 "
             "sslmode=disable %s",
             port, user, db ? db : "tusk", password ? password : "", extra ? extra : "");
    return PQconnectdb(ci);
}

PGconn *pxt_connect(const pxt_proxy *px, const char *user, const char *password, const char *db)
{
    PGconn *c = pxt_try_connect(px->port, user, password, db, NULL);
    if (PQstatus(c) != CONNECTION_OK) {
        svc_dump_log(&px->proc);
        fail_msg("connect through the proxy as %s: %s", user, PQerrorMessage(c));
    }
    return c;
}

PGconn *pxt_direct(const char *db)
{
    char ci[512];
    snprintf(ci, sizeof(ci), "host=%s port=%d user=postgres dbname=%s sslmode=disable",
             svc_env("TUSK_PG_HOST"), svc_env_int("TUSK_PG_PRIMARY_PORT"), db ? db : "tusk");
    PGconn *c = PQconnectdb(ci);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("direct connection: %s", PQerrorMessage(c));
    return c;
}

void pxt_exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        dump_current();
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    }
    PQclear(r);
}

char *pxt_value(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1) {
        dump_current();
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    }
    char *v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

long long pxt_int(PGconn *c, const char *sql)
{
    char *v = pxt_value(c, sql);
    long long n = atoll(v);
    free(v);
    return n;
}

char *pxt_error(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_FATAL_ERROR)
        fail_msg("%s: expected an error, got %s", sql, PQresStatus(PQresultStatus(r)));
    const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    char *v = strdup(s ? s : "");
    PQclear(r);
    return v;
}

int pxt_raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        fail_msg("raw connect: %s", strerror(errno));
    return fd;
}

void pxt_raw_send(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
        if (k <= 0)
            return; /* the proxy may have closed already: tests check the answer */
        b += k;
        n -= (size_t)k;
    }
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

size_t pxt_startup_packet(uint8_t *out, size_t cap, const char *user, const char *db,
                          const char *xname, const char *xvalue)
{
    size_t n = 8;
    const char *kv[6] = {"user", user, "database", db, xname, xvalue};
    for (int i = 0; i < 6; i++) {
        if (!kv[i])
            break;
        size_t l = strlen(kv[i]) + 1;
        assert_true(n + l + 1 < cap);
        memcpy(out + n, kv[i], l);
        n += l;
    }
    out[n++] = 0;
    put32(out, (uint32_t)n);
    put32(out + 4, 196608);
    return n;
}

static bool read_full(int fd, uint8_t *p, size_t n, int timeout_ms)
{
    while (n) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, timeout_ms) <= 0)
            return false;
        ssize_t k = recv(fd, p, n, 0);
        if (k <= 0)
            return false;
        p += k;
        n -= (size_t)k;
    }
    return true;
}

int pxt_raw_read_until(int fd, char want, char *body, size_t cap, int timeout_ms)
{
    for (;;) {
        uint8_t h[5];
        if (!read_full(fd, h, 5, timeout_ms))
            return 0;
        uint32_t len =
            ((uint32_t)h[1] << 24) | ((uint32_t)h[2] << 16) | ((uint32_t)h[3] << 8) | h[4];
        if (len < 4 || len > (1u << 26))
            return 0;
        size_t blen = len - 4;
        char *b = malloc(blen + 1);
        if (!read_full(fd, (uint8_t *)b, blen, timeout_ms)) {
            free(b);
            return 0;
        }
        b[blen] = 0;
        if (h[0] == (uint8_t)want) {
            size_t c = blen < cap ? blen : cap - 1;
            memcpy(body, b, c);
            body[c] = 0;
            if (c + 1 < cap)
                memset(body + c, 0, cap - c);
            free(b);
            return h[0];
        }
        free(b);
    }
}

bool pxt_raw_eof(int fd, int timeout_ms)
{
    uint8_t buf[4096];
    for (;;) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, timeout_ms) <= 0)
            return false;
        ssize_t k = recv(fd, buf, sizeof(buf), 0);
        if (k <= 0)
            return true;
    }
}

const char *pxt_sqlstate(const char *body, size_t len)
{
    size_t i = 0;
    while (i < len && body[i]) {
        char f = body[i++];
        const char *v = body + i;
        i += strlen(v) + 1;
        if (f == 'C')
            return v;
    }
    return "";
}

long pxt_rss_kb(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = atol(line + 6);
    fclose(f);
    return kb;
}

/* one HTTP GET over a fresh connection, for the admin endpoint */
char *pxt_http_get(int port, const char *path, int *status)
{
    char *body = svc_http_get(port, path, status);
    if (!body)
        fail_msg("HTTP GET %s on port %d failed", path, port);
    return body;
}
