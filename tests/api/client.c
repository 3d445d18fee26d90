/* Test client for the API's integration tests: see client.h. */
#include "tests/api/client.h"

#include "schema/schema.h"

#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

tc_conn *tc_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return NULL;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    tc_conn *c = calloc(1, sizeof(*c));
    c->fd = fd;
    return c;
}

void tc_close(tc_conn *c)
{
    if (!c)
        return;
    close(c->fd);
    free(c);
}

bool tc_send(tc_conn *c, const char *s, size_t len)
{
    while (len) {
        ssize_t n = send(c->fd, s, len, MSG_NOSIGNAL);
        if (n <= 0)
            return false;
        s += n;
        len -= (size_t)n;
    }
    return true;
}

bool tc_sends(tc_conn *c, const char *s)
{
    return tc_send(c, s, strlen(s));
}

/* read more into the buffer, waiting up to timeout_ms; false on EOF/timeout */
static bool read_more(tc_conn *c, int timeout_ms)
{
    if (c->len == sizeof(c->buf))
        return false;
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    int r = poll(&p, 1, timeout_ms);
    if (r <= 0)
        return false;
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    if (n <= 0)
        return false;
    c->len += (size_t)n;
    return true;
}

bool tc_fill(tc_conn *c, size_t n, int timeout_ms)
{
    double end = svc_now_ms() + timeout_ms;
    while (c->len < n) {
        int left = (int)(end - svc_now_ms());
        if (!read_more(c, left > 0 ? left : 0))
            return false;
    }
    return true;
}

static void consume(tc_conn *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

static char *find_crlfcrlf(tc_conn *c)
{
    for (size_t i = 0; i + 3 < c->len; i++)
        if (memcmp(c->buf + i, "\r\n\r\n", 4) == 0)
            return c->buf + i;
    return NULL;
}

const char *tc_header(const tc_resp *r, const char *name)
{
    static char val[4096];
    size_t nl = strlen(name);
    const char *p = strstr(r->head, "\r\n");
    while (p && p[2]) {
        p += 2;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            const char *e = strstr(v, "\r\n");
            size_t l = e ? (size_t)(e - v) : strlen(v);
            if (l >= sizeof(val))
                l = sizeof(val) - 1;
            memcpy(val, v, l);
            val[l] = '\0';
            return val;
        }
        p = strstr(p, "\r\n");
    }
    return NULL;
}

bool tc_read(tc_conn *c, tc_resp *r, bool head_only)
{
    memset(r, 0, sizeof(*r));
    char *end;
    while (!(end = find_crlfcrlf(c)))
        if (!read_more(c, 5000))
            return false;
    size_t hl = (size_t)(end - c->buf) + 4;
    if (hl >= sizeof(r->head))
        return false;
    memcpy(r->head, c->buf, hl);
    r->head[hl] = '\0';
    consume(c, hl);
    if (sscanf(r->head, "HTTP/1.%*d %d", &r->status) != 1)
        return false;
    const char *cl = tc_header(r, "content-length");
    const char *te = tc_header(r, "transfer-encoding");
    if (head_only || r->status == 101 || r->status == 204 || r->status == 100) {
        r->body = calloc(1, 1);
        return true;
    }
    if (te && strcasecmp(te, "chunked") == 0) {
        r->body = calloc(1, 1);
        return true; /* streams: the caller reads chunks itself */
    }
    size_t n = cl ? strtoul(cl, NULL, 10) : 0;
    if (!tc_fill(c, n, 5000))
        return false;
    r->body = malloc(n + 1);
    memcpy(r->body, c->buf, n);
    r->body[n] = '\0';
    r->body_len = n;
    consume(c, n);
    return true;
}

void tc_resp_free(tc_resp *r)
{
    free(r->body);
    r->body = NULL;
}

json_t *tc_json(const tc_resp *r)
{
    return r->body ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
}

bool tc_request(int port, const char *method, const char *path, const char *headers,
                const char *body, tc_resp *r)
{
    tc_conn *c = tc_open(port);
    if (!c)
        return false;
    char req[16384];
    char cl[64] = "";
    if (body)
        snprintf(cl, sizeof(cl), "%zu\r\n", strlen(body));
    snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: test\r\n%s%s%s\r\n%s", method, path,
             headers ? headers : "", body ? "Content-Length: " : "", cl, body ? body : "");
    bool ok = tc_sends(c, req) && tc_read(c, r, strcmp(method, "HEAD") == 0);
    tc_close(c);
    return ok;
}

bool tc_wait_closed(tc_conn *c, int timeout_ms)
{
    double end = svc_now_ms() + timeout_ms;
    for (;;) {
        int left = (int)(end - svc_now_ms());
        if (left <= 0)
            return false;
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (poll(&p, 1, left) <= 0)
            return false;
        char tmp[4096];
        ssize_t n = recv(c->fd, tmp, sizeof(tmp), 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return true;
        if (n < 0)
            return false;
    }
}

/* ---- WebSocket ---- */

bool tc_ws_handshake(tc_conn *c, const char *path, const char *extra, tc_resp *r)
{
    char req[4096];
    snprintf(req, sizeof(req),
             "GET %s HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
             path, extra ? extra : "");
    return tc_sends(c, req) && tc_read(c, r, false);
}

bool tc_ws_send(tc_conn *c, int opcode, bool fin, const void *data, size_t len, bool mask)
{
    uint8_t hdr[14];
    size_t hl = 0;
    hdr[hl++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    uint8_t m = mask ? 0x80 : 0;
    if (len < 126) {
        hdr[hl++] = (uint8_t)(m | len);
    } else if (len < 65536) {
        hdr[hl++] = m | 126;
        hdr[hl++] = (uint8_t)(len >> 8);
        hdr[hl++] = (uint8_t)len;
    } else {
        hdr[hl++] = m | 127;
        for (int i = 7; i >= 0; i--)
            hdr[hl++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
    if (mask) {
        memcpy(hdr + hl, key, 4);
        hl += 4;
    }
    char *frame = malloc(hl + len);
    memcpy(frame, hdr, hl);
    for (size_t i = 0; i < len; i++)
        frame[hl + i] = (char)(((const uint8_t *)data)[i] ^ (mask ? key[i % 4] : 0));
    bool ok = tc_send(c, frame, hl + len);
    free(frame);
    return ok;
}

bool tc_ws_recv(tc_conn *c, int *opcode, char **payload, size_t *len, int timeout_ms)
{
    if (!tc_fill(c, 2, timeout_ms))
        return false;
    uint8_t *b = (uint8_t *)c->buf;
    size_t l = b[1] & 0x7f, off = 2;
    if (l == 126) {
        if (!tc_fill(c, 4, timeout_ms))
            return false;
        l = (size_t)b[2] << 8 | b[3];
        off = 4;
    } else if (l == 127) {
        if (!tc_fill(c, 10, timeout_ms))
            return false;
        l = 0;
        for (int i = 0; i < 8; i++)
            l = l << 8 | b[2 + i];
        off = 10;
    }
    if (!tc_fill(c, off + l, timeout_ms))
        return false;
    *opcode = b[0] & 0x0f;
    *payload = malloc(l + 1);
    memcpy(*payload, c->buf + off, l);
    (*payload)[l] = '\0';
    *len = l;
    consume(c, off + l);
    return true;
}

/* ---- SSE over chunked encoding ---- */

/* next decoded chunk appended to out; false on timeout/EOF */
static bool next_chunk(tc_conn *c, char **out, size_t *outlen, int timeout_ms)
{
    double end = svc_now_ms() + timeout_ms;
    for (;;) {
        char *crlf = memmem(c->buf, c->len, "\r\n", 2);
        if (crlf) {
            size_t n = strtoul(c->buf, NULL, 16);
            size_t hl = (size_t)(crlf - c->buf) + 2;
            int left = (int)(end - svc_now_ms());
            if (left < 0)
                left = 0;
            if (!tc_fill(c, hl + n + 2, left))
                return false;
            *out = realloc(*out, *outlen + n + 1);
            memcpy(*out + *outlen, c->buf + hl, n);
            *outlen += n;
            (*out)[*outlen] = '\0';
            consume(c, hl + n + 2);
            return true;
        }
        int left = (int)(end - svc_now_ms());
        if (left <= 0 || !read_more(c, left))
            return false;
    }
}

bool tc_sse_next(tc_conn *c, char **event, char **data, bool want_comment, int timeout_ms)
{
    double end = svc_now_ms() + timeout_ms;
    for (;;) {
        char *chunk = NULL;
        size_t cl = 0;
        int left = (int)(end - svc_now_ms());
        if (left <= 0 || !next_chunk(c, &chunk, &cl, left)) {
            free(chunk);
            return false;
        }
        if (chunk[0] == ':') {
            if (want_comment) {
                *event = strdup("comment");
                *data = chunk;
                return true;
            }
            free(chunk);
            continue;
        }
        /* "event: E\ndata: D\n\n" */
        char *nl = strchr(chunk, '\n');
        if (!nl || strncmp(chunk, "event: ", 7) != 0 || strncmp(nl + 1, "data: ", 6) != 0) {
            free(chunk);
            return false;
        }
        *event = strndup(chunk + 7, (size_t)(nl - chunk - 7));
        char *d = nl + 7;
        char *dend = strstr(d, "\n\n");
        *data = strndup(d, dend ? (size_t)(dend - d) : strlen(d));
        free(chunk);
        return true;
    }
}

/* ---- environment ---- */

static PGconn *admin_conn(void)
{
    char dsn[512];
    snprintf(dsn, sizeof(dsn), "host=127.0.0.1 port=%s user=tusk password=tusk dbname=tusk",
             svc_env("TUSK_PG_PRIMARY_PORT"));
    PGconn *c = PQconnectdb(dsn);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "connect: %s", PQerrorMessage(c));
        exit(1);
    }
    return c;
}

static void admin_exec(const char *sql)
{
    PGconn *c = admin_conn();
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
        exit(1);
    }
    PQclear(r);
    PQfinish(c);
}

bool tc_sql(tc_env *env, const char *fmt, ...)
{
    char sql[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    PGconn *c = PQconnectdb(env->dsn);
    PGresult *r = PQexec(c, sql);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "sql failed: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return ok;
}

/* a redis-server of this test alone */
static void start_private_redis(tc_env *env)
{
    env->redis_port = svc_free_port();
    snprintf(env->redis_dir, sizeof(env->redis_dir), "/tmp/tusk-api-redis-%d", env->redis_port);
    mkdir(env->redis_dir, 0700);
    pid_t pid = fork();
    if (pid == 0) {
        char port[16];
        snprintf(port, sizeof(port), "%d", env->redis_port);
        if (!freopen("/dev/null", "w", stdout))
            _exit(127);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", env->redis_dir, "--protected-mode", "no",
               (char *)NULL);
        _exit(127);
    }
    env->redis_pid = pid;
    for (int i = 0; i < 250; i++) {
        redisContext *r = redisConnect("127.0.0.1", env->redis_port);
        bool ok = false;
        if (r && !r->err) {
            redisReply *rep = redisCommand(r, "PING");
            ok = rep && rep->type == REDIS_REPLY_STATUS;
            freeReplyObject(rep);
        }
        if (r)
            redisFree(r);
        if (ok)
            return;
        usleep(20000);
    }
    fprintf(stderr, "private redis-server on %d did not start\n", env->redis_port);
    exit(1);
}

static void start_env(tc_env *env, const char *extra, bool own_redis, bool with_fanout);

void tc_env_start(tc_env *env, const char *extra)
{
    start_env(env, extra, false, false);
}

void tc_env_start_full(tc_env *env, const char *extra, bool with_fanout)
{
    start_env(env, extra, true, with_fanout);
}

static void start_env(tc_env *env, const char *extra, bool own_redis, bool with_fanout)
{
    memset(env, 0, sizeof(*env));
    const char *pgport = svc_env("TUSK_PG_PRIMARY_PORT");
    if (own_redis)
        start_private_redis(env);
    else
        env->redis_port = svc_env_int("TUSK_REDIS_PORT");
    snprintf(env->dbname, sizeof(env->dbname), "api_test_%d", (int)getpid());
    char sql[256];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", env->dbname);
    admin_exec(sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", env->dbname);
    admin_exec(sql);
    snprintf(env->dsn, sizeof(env->dsn), "host=127.0.0.1 port=%s user=tusk password=tusk dbname=%s",
             pgport, env->dbname);
    char err[512];
    if (schema_migrate(env->dsn, NULL, err, sizeof(err)) < 0) {
        fprintf(stderr, "migrate: %s\n", err);
        exit(1);
    }
    env->base = 1000000 + (int64_t)(getpid() % 100000) * 100;
    int64_t b = env->base;
    int pid = (int)getpid();
    bool ok = tc_sql(
        env,
        "INSERT INTO accounts (id, username, domain, created_at, updated_at, note, display_name, "
        "fields, actor_type, discoverable) VALUES "
        "(%lld, 'alice', NULL, '2023-04-05 06:07:08', now(), E'Hi <b>there</b>\\n\\nMore', "
        "'Alice \u2728', '[{\"name\":\"site\",\"value\":\"x<y\"}]', 'Person', true), "
        "(%lld, 'bob', NULL, now(), now(), '', 'Bob', NULL, 'Service', NULL), "
        "(%lld, 'carol', 'remote.example', now(), now(), '<p>remote</p>', 'Carol', NULL, 'Group', "
        "false)",
        (long long)b + 1, (long long)b + 2, (long long)b + 3);
    ok =
        ok && tc_sql(env,
                     "INSERT INTO account_stats (account_id, statuses_count, following_count, "
                     "followers_count, "
                     "created_at, updated_at, last_status_at) VALUES (%lld, 7, 2, 3, now(), now(), "
                     "'2024-02-03 10:00:00')",
                     (long long)b + 1);
    ok =
        ok &&
        tc_sql(
            env,
            "INSERT INTO users (id, email, created_at, updated_at, account_id, current_sign_in_at) "
            "VALUES (%lld, 'a%d@x', now(), now(), %lld, now()), (%lld, 'b%d@x', now(), now(), "
            "%lld, "
            "NULL)",
            (long long)b + 1, pid, (long long)b + 1, (long long)b + 2, pid, (long long)b + 2);
    ok = ok &&
         tc_sql(env,
                "INSERT INTO oauth_access_tokens (token, created_at, scopes, resource_owner_id, "
                "revoked_at, expires_in) VALUES "
                "('alice-%d', now(), 'read write follow', %lld, NULL, NULL), "
                "('bob-%d', now(), 'read', %lld, NULL, NULL), "
                "('write-%d', now(), 'write', %lld, NULL, NULL), "
                "('app-%d', now(), 'read', NULL, NULL, NULL), "
                "('revoked-%d', now(), 'read', %lld, now(), NULL), "
                "('expired-%d', now() - interval '1 hour', 'read', %lld, NULL, 60), "
                "('rl-%d', now(), 'read', %lld, NULL, NULL), "
                "('statuses-%d', now(), 'read:statuses', %lld, NULL, NULL), "
                "('profile-%d', now(), 'profile', %lld, NULL, NULL), "
                "('tmp-%d', now(), 'read', %lld, NULL, NULL)",
                pid, (long long)b + 1, pid, (long long)b + 2, pid, (long long)b + 1, pid, pid,
                (long long)b + 1, pid, (long long)b + 1, pid, (long long)b + 1, pid,
                (long long)b + 1, pid, (long long)b + 1, pid, (long long)b + 1);
    ok = ok && tc_sql(env,
                      "INSERT INTO lists (id, account_id, title, created_at, updated_at) VALUES "
                      "(%lld, %lld, 'mine', now(), now()), (%lld, %lld, 'bobs', now(), now())",
                      (long long)b + 1, (long long)b + 1, (long long)b + 2, (long long)b + 2);
    if (!ok)
        exit(1);
    env->port = svc_free_port();
    char ini[4096];
    snprintf(ini, sizeof(ini),
             "[api]\nlisten = 127.0.0.1:%d\napi_workers = 2\ndatabase = %s\n"
             "redis_pubsub = redis://127.0.0.1:%d\npublic_url = http://social.test\n"
             "log_level = debug\n%s",
             env->port, env->dsn, env->redis_port, extra ? extra : "");
    if (!svc_start_role(&env->api, "api", ini, env->port)) {
        fprintf(stderr, "tusk api did not start\n");
        exit(1);
    }
    if (with_fanout) {
        int admin = svc_free_port();
        snprintf(ini, sizeof(ini),
                 "[fanout]\ndatabase = %s\nredis_url = redis://127.0.0.1:%d\n"
                 "public_url = http://social.test\nqueues = default:2,pull:1\n"
                 "admin_listen = 127.0.0.1:%d\noutbox_poll_ms = 50\nblock_ms = 200\n",
                 env->dsn, env->redis_port, admin);
        if (!svc_start_role(&env->fanout, "fanout", ini, admin)) {
            fprintf(stderr, "tusk fanout did not start\n");
            exit(1);
        }
        env->fanout_running = true;
    }
}

int64_t tc_account(tc_env *env, int n, const char *username, const char *token, const char *scopes)
{
    int64_t id = env->base + n;
    bool ok = tc_sql(env,
                     "INSERT INTO accounts (id, username, created_at, updated_at, display_name) "
                     "VALUES (%lld, '%s', now(), now(), '%s')",
                     (long long)id, username, username) &&
              tc_sql(env,
                     "INSERT INTO users (id, email, created_at, updated_at, account_id, "
                     "current_sign_in_at) VALUES (%lld, '%s-%d@x', now(), now(), %lld, now())",
                     (long long)id, username, (int)getpid(), (long long)id) &&
              tc_sql(env,
                     "INSERT INTO oauth_access_tokens (token, created_at, scopes, "
                     "resource_owner_id) VALUES ('%s', now(), '%s', %lld)",
                     token, scopes, (long long)id);
    if (!ok)
        exit(1);
    return id;
}

bool tc_call(tc_env *env, const char *method, const char *path, const char *token,
             const char *json_body, tc_resp *r)
{
    char h[512] = "";
    int n = 0;
    if (token)
        n = snprintf(h, sizeof(h), "Authorization: Bearer %s\r\n", token);
    if (json_body)
        snprintf(h + n, sizeof(h) - (size_t)n, "Content-Type: application/json\r\n");
    return tc_request(env->port, method, path, h, json_body, r);
}

long long tc_sql_int(tc_env *env, const char *fmt, ...)
{
    char sql[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    PGconn *c = PQconnectdb(env->dsn);
    PGresult *r = PQexec(c, sql);
    long long v = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    else if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fprintf(stderr, "sql failed: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return v;
}

bool tc_wait_fanout(tc_env *env, int timeout_ms)
{
    double deadline = svc_now_ms() + timeout_ms;
    int quiet = 0;
    while (svc_now_ms() < deadline) {
        long long unsent =
            tc_sql_int(env, "SELECT count(*) FROM tusk_outbox WHERE sent_at IS NULL");
        long long queued = tc_redis_int(env, "XLEN tusk:queue:default") +
                           tc_redis_int(env, "XLEN tusk:queue:pull");
        /* XLEN counts entries not yet deleted: fanout XDELs each job once it is done */
        if (unsent == 0 && queued == 0) {
            if (++quiet >= 2)
                return true;
        } else {
            quiet = 0;
        }
        usleep(20000);
    }
    return false;
}

void tc_env_stop(tc_env *env)
{
    if (env->fanout_running) {
        env->fanout_running = false;
        svc_proc fcopy = env->fanout;
        char *flog = strdup(env->fanout.log_path);
        int fst = svc_stop_role(&env->fanout, 15);
        if (fst != 0) {
            fcopy.log_path = flog;
            svc_dump_log(&fcopy);
            fprintf(stderr, "tusk fanout exited with status %d\n", fst);
            exit(1);
        }
        unlink(flog);
        free(flog);
    }
    svc_proc copy = env->api;
    char *log = strdup(env->api.log_path);
    int st = svc_stop_role(&env->api, 15);
    if (st != 0) {
        copy.log_path = log;
        svc_dump_log(&copy);
        fprintf(stderr, "tusk api exited with status %d (sanitizer report above?)\n", st);
        exit(1);
    }
    unlink(log);
    free(log);
    char sql[256];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", env->dbname);
    admin_exec(sql);
    if (env->redis_pid > 0) {
        kill(env->redis_pid, SIGKILL);
        waitpid(env->redis_pid, NULL, 0);
        env->redis_pid = 0;
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", env->redis_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", env->redis_dir);
    }
}

long long tc_publish(tc_env *env, const char *chan, const char *msg)
{
    redisContext *r = redisConnect("127.0.0.1", env->redis_port);
    if (!r || r->err)
        return -1;
    redisReply *rep = redisCommand(r, "PUBLISH %s %s", chan, msg);
    long long n = rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
    freeReplyObject(rep);
    redisFree(r);
    return n;
}

long long tc_redis_int(tc_env *env, const char *fmt, ...)
{
    redisContext *r = redisConnect("127.0.0.1", env->redis_port);
    if (!r || r->err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(r, fmt, ap);
    va_end(ap);
    long long n = -1;
    if (rep && rep->type == REDIS_REPLY_INTEGER)
        n = rep->integer;
    else if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
             rep->element[1]->type == REDIS_REPLY_INTEGER)
        n = rep->element[1]->integer; /* PUBSUB NUMSUB ch -> [ch, n] */
    freeReplyObject(rep);
    redisFree(r);
    return n;
}

long tc_rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}
