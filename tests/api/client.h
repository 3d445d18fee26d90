/*
 * A small HTTP/1.1 and WebSocket client for the API's integration tests: raw sockets, so
 * tests control every byte (pipelining, partial requests, bad frames), plus the shared setup
 * (a fresh database with the schema and a few accounts and tokens, a running "tusk api").
 */
#ifndef TUSK_TESTS_API_CLIENT_H
#define TUSK_TESTS_API_CLIENT_H

#include "tests/support/support.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tc_conn {
    int fd;
    char buf[256 * 1024];
    size_t len;
} tc_conn;

typedef struct tc_resp {
    int status;
    char head[16384]; /* status line and headers, NUL-terminated */
    char *body;       /* NUL-terminated */
    size_t body_len;
} tc_resp;

/* connect to 127.0.0.1:port (receive timeout 5 s); NULL on failure */
tc_conn *tc_open(int port);
void tc_close(tc_conn *c);
/* write all of s */
bool tc_send(tc_conn *c, const char *s, size_t len);
bool tc_sends(tc_conn *c, const char *s);
/* read one response (Content-Length or chunked body; none for HEAD when head_only) */
bool tc_read(tc_conn *c, tc_resp *r, bool head_only);
void tc_resp_free(tc_resp *r);
/* header value (case-insensitive name) copied into a static buffer; NULL if absent */
const char *tc_header(const tc_resp *r, const char *name);
/* body parsed as JSON (caller decrefs); NULL if not JSON */
json_t *tc_json(const tc_resp *r);
/* one request on a fresh connection: "GET", path, extra header lines (each ending \r\n) */
bool tc_request(int port, const char *method, const char *path, const char *headers,
                const char *body, tc_resp *r);
/* wait until the peer closes (true) or timeout_ms passes (false); discards data */
bool tc_wait_closed(tc_conn *c, int timeout_ms);
/* read at least n more bytes into c->buf within timeout_ms */
bool tc_fill(tc_conn *c, size_t n, int timeout_ms);

/* WebSocket */
bool tc_ws_handshake(tc_conn *c, const char *path, const char *extra_headers, tc_resp *r);
bool tc_ws_send(tc_conn *c, int opcode, bool fin, const void *data, size_t len, bool mask);
/* next frame: opcode, payload (malloc'd, NUL-terminated) */
bool tc_ws_recv(tc_conn *c, int *opcode, char **payload, size_t *len, int timeout_ms);

/* SSE: next "event:" + "data:" pair from a chunked stream (skips comments unless
 * want_comment); event/data malloc'd */
bool tc_sse_next(tc_conn *c, char **event, char **data, bool want_comment, int timeout_ms);

/* environment shared by the integration tests */
typedef struct tc_env {
    char dsn[512];
    char dbname[64];
    int redis_port;
    svc_proc api;
    int port;
    int64_t base;    /* id base: accounts base+1.., unique per test process */
    pid_t redis_pid; /* private redis-server of tc_env_start_full, 0 otherwise */
    char redis_dir[128];
    svc_proc fanout;
    bool fanout_running;
} tc_env;
/* fresh database (schema + seed), then "tusk api" with extra [api] lines */
void tc_env_start(tc_env *env, const char *extra_config);
/* the same on a private redis-server (feeds, queue and pub/sub of this test alone: fanout's
 * queue streams and feed keys cannot be shared with other tests), plus "tusk fanout" when
 * with_fanout (timelines, streaming deliveries) */
void tc_env_start_full(tc_env *env, const char *extra_config, bool with_fanout);
void tc_env_stop(tc_env *env);
/* an active local account with a users row and a token (scopes e.g. "read write follow");
 * returns the account id (base + n) */
int64_t tc_account(tc_env *env, int n, const char *username, const char *token, const char *scopes);
/* one request with a bearer token (NULL: none) and a JSON body (NULL: none) */
bool tc_call(tc_env *env, const char *method, const char *path, const char *token,
             const char *json_body, tc_resp *r);
/* first column of the first row as an integer (-1 on error or no row) */
long long tc_sql_int(tc_env *env, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* wait until fanout sent every outbox row and emptied its queues; false on timeout */
bool tc_wait_fanout(tc_env *env, int timeout_ms);
/* run SQL on the test database; false on error (printed) */
bool tc_sql(tc_env *env, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* PUBLISH chan msg to Redis; returns receivers or -1 */
long long tc_publish(tc_env *env, const char *chan, const char *msg);
/* an integer reply of a Redis command */
long long tc_redis_int(tc_env *env, const char *fmt, ...);
/* resident memory of a process in kB */
long tc_rss_kb(pid_t pid);

#endif
