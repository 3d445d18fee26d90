/*
 * api: declarations shared by the files of this folder (not an interface for other parts;
 * api/api.h is). See api/README.md for how the pieces cooperate:
 *
 *   server.c     listeners, worker threads, connections, HTTP/1.1 parsing (llhttp), limits,
 *                timeouts, output queues
 *   request.c    one request from parse to answer: params, auth, rate limit, handler, reply
 *   router.c     method + path pattern -> handler
 *   jsonw.c      JSON writer (UTF-8 validating)          form.c    urlencoded decoding
 *   ratelimit.c  fixed-window limiter per token / IP     auth.c    Bearer tokens and scopes
 *   db.c         per-worker pool of non-blocking libpq connections
 *   redis.c      hiredis async connections with reconnect
 *   pubsub.c     the process's one Redis pub/sub connection, shared by all streams
 *   stream.c     WebSocket and SSE streaming connections, per-worker channel registry
 *   endpoints.c  instance, nodeinfo, accounts, health   account.c Account entity
 *   statuses.c   post, show, delete, account statuses   relations.c follows, follow requests
 *   timelines.c  home and list timelines                lists.c     lists and members
 *   refresh.c    async refreshes (Mastodon-Async-Refresh ids, /api/v1_alpha/async_refreshes)
 *   hydrate.c    status ids -> Status JSON (status cache, PostgreSQL fallback, render memo)
 *   paging.c     pagination parameters, Link headers    lsn.c       commit-LSN tokens
 *   bg.c         blocking pool for outbox transactions and cache/fanout's blocking calls
 *   config.c     the [api] section of tusk.ini
 */
#ifndef TUSK_API_INTERNAL_H
#define TUSK_API_INTERNAL_H

#include "common/common.h"

#include "cache/cache.h"

#include <ev.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* ------------------------------------------------------------------------------------------
 * buf.c: growable byte buffer. An allocation failure sets oom and turns later appends into
 * no-ops, so writers need not check every call; whoever sends the buffer checks oom once.
 */
typedef struct api_buf {
    char *data;
    size_t len;
    size_t cap;
    bool oom;
} api_buf;

/* make room for n more bytes; false (and oom set) if memory ran out */
bool api_buf_reserve(api_buf *b, size_t n);
/* append len bytes */
void api_buf_append(api_buf *b, const void *data, size_t len);
/* append a NUL-terminated string */
void api_buf_puts(api_buf *b, const char *s);
/* append one byte */
void api_buf_putc(api_buf *b, char c);
/* append printf-formatted text */
void api_buf_printf(api_buf *b, const char *fmt, ...) TUSK_PRINTF(2, 3);
/* append a decimal integer */
void api_buf_put_int(api_buf *b, long long v);
/* append one Redis command (RESP array of bulk strings) */
void api_buf_resp(api_buf *b, int argc, const char *const *argv, const size_t *lens);
/* forget the contents, keep the allocation */
void api_buf_reset(api_buf *b);
/* release the allocation */
void api_buf_free(api_buf *b);
/* NUL-terminate without counting the NUL in len; returns data (never NULL unless oom) */
const char *api_buf_cstr(api_buf *b);

/* ------------------------------------------------------------------------------------------
 * jsonw.c: JSON writer straight into an api_buf. Strings are validated as UTF-8; an invalid
 * byte becomes U+FFFD, so the output is always valid JSON whatever the database holds.
 * Commas are placed automatically: call key/value functions in document order.
 */
typedef struct api_jw {
    api_buf *b;
    bool comma; /* a value was written at this level: the next one needs a ',' */
} api_jw;

void api_jw_init(api_jw *w, api_buf *b);
void api_jw_obj(api_jw *w);
void api_jw_obj_end(api_jw *w);
void api_jw_arr(api_jw *w);
void api_jw_arr_end(api_jw *w);
/* object key (NUL-terminated, escaped) */
void api_jw_key(api_jw *w, const char *key);
/* string value; NULL writes null */
void api_jw_str(api_jw *w, const char *s);
/* string value of len bytes (may contain NUL, escaped as \u0000) */
void api_jw_strn(api_jw *w, const char *s, size_t len);
void api_jw_int(api_jw *w, long long v);
void api_jw_bool(api_jw *w, bool v);
void api_jw_null(api_jw *w);
/* a value that is already JSON text (inserted as is) */
void api_jw_raw(api_jw *w, const char *json, size_t len);
/* a jansson value (serialized compactly) */
void api_jw_json(api_jw *w, const json_t *v);
/* key + value shortcuts */
void api_jw_kstr(api_jw *w, const char *key, const char *s);
void api_jw_kint(api_jw *w, const char *key, long long v);
void api_jw_kbool(api_jw *w, const char *key, bool v);
void api_jw_knull(api_jw *w, const char *key);
/* escape len bytes as the inside of a JSON string (no quotes) into b */
void api_json_escape(api_buf *b, const char *s, size_t len);
/* is s valid UTF-8 (RFC 3629) */
bool api_utf8_valid(const char *s, size_t len);

/* ------------------------------------------------------------------------------------------
 * form.c: application/x-www-form-urlencoded (bodies and query strings)
 */
/* called with each decoded pair; key and value are NUL-terminated scratch strings valid only
 * during the call; return false to stop (api_form_parse then returns -1 with err unset) */
typedef bool (*api_form_cb)(void *ctx, const char *key, size_t klen, const char *val, size_t vlen);
/* decode "a=1&b=%20x+y"; 0 on success, -1 with a message in err for bad %-escapes or
 * invalid UTF-8 after decoding */
int api_form_parse(const char *s, size_t len, api_form_cb cb, void *ctx, char *err, size_t errlen);
/* percent-decode (and '+' -> ' ' when plus) len bytes into out (at least len+1 bytes);
 * returns the decoded length or -1 on a bad escape */
long api_form_unescape(const char *s, size_t len, char *out, bool plus);
/* add a decoded pair to a params object the Rails way: "a" -> string, "a[]" -> array
 * member, "a[b]" / "a[b][]" -> nested objects; false if the key is malformed or conflicts */
bool api_params_add(json_t *params, const char *key, const char *val);

/* ------------------------------------------------------------------------------------------
 * ratelimit.c: fixed windows per key (Mastodon's rack-attack throttles), shared by all
 * worker threads of the process
 */
typedef struct api_ratelimit api_ratelimit;
typedef struct api_rl_info {
    unsigned limit;
    unsigned remaining;
    time_t reset; /* wall-clock second at which the window ends */
} api_rl_info;
/* limit requests per period seconds; NULL on allocation failure */
api_ratelimit *api_rl_new(unsigned limit, unsigned period);
void api_rl_free(api_ratelimit *rl);
/* count one request for key at time now; false if it is over the limit */
bool api_rl_hit(api_ratelimit *rl, uint64_t key, time_t now, api_rl_info *info);
/* number of keys held (tests) */
size_t api_rl_size(api_ratelimit *rl);

/* ------------------------------------------------------------------------------------------
 * config.c
 */
typedef struct api_config {
    char listen_host[256];
    int listen_port;
    int workers;
    char *database;     /* libpq conninfo */
    char *redis_pubsub; /* redis://host:port[/db] */
    char *redis_feeds;
    char *public_url;    /* "https://example.com", no trailing slash */
    char *streaming_url; /* configuration.urls.streaming; default from public_url */
    char *domain;        /* host[:port] of public_url */
    char *title;
    char *description;
    char *contact_email;
    int rate_limit;        /* per token per 5 minutes; 0 = off */
    int rate_limit_unauth; /* per IP per 5 minutes for requests without a token; 0 = off */
    size_t max_body_bytes;
    size_t max_header_bytes;
    int request_timeout_ms;
    int keepalive_timeout_ms;
    int db_pool_size; /* libpq connections per worker */
    int db_timeout_ms;
    int max_connections; /* per worker */
    size_t stream_queue_bytes;
    int auth_cache_ms;
    int sse_heartbeat_ms;
    int ws_ping_ms;
    int subscribed_refresh_s;
    int subscribed_ttl_s;
    char *logfile;
    int log_level;
    /* timelines and statuses */
    cache_config cache;   /* redis_feeds (shards), redis_queue, status_cache_ttl, local_domain */
    int db_threads;       /* blocking worker threads for write transactions and cache misses */
    int lsn_token_ttl_ms; /* how long an account's commit LSN is handed to its reads */
    int render_cache_entries; /* rendered statuses kept per worker; 0 = off */
    int render_fresh_ms;      /* a rendering checked this recently is used without MGET */
    int max_status_chars;
    char *secret_key_base; /* signs async refresh ids; NULL: a random key per process */
} api_config;

/* defaults for every key */
void api_config_defaults(api_config *cfg);
/* read the [api] section of path; -1 with a message in err */
int api_config_load(api_config *cfg, const char *path, char *err, size_t errlen);
/* same from text (tests) */
int api_config_parse(api_config *cfg, const char *text, char *err, size_t errlen);
void api_config_free(api_config *cfg);

/* ------------------------------------------------------------------------------------------
 * auth.c: scopes and tokens
 */
typedef uint64_t api_scopes;
/* bit of one scope name ("read:statuses"); 0 if unknown */
api_scopes api_scope_bit(const char *name, size_t len);
/* the token's scopes column ("read write follow") as a mask */
api_scopes api_scopes_parse(const char *text);
/* what a route asks for, Mastodon style ("read:accounts" or "profile read:accounts") -> the
 * mask of token scopes that grant it (the scope itself, its parent "read"/"write", and the
 * legacy "follow" for the follow-related sub-scopes) */
api_scopes api_scopes_required(const char *spec);

typedef struct api_auth {
    int64_t token_id;
    int64_t user_id;    /* 0 for an application token without a user */
    int64_t account_id; /* 0 likewise */
    api_scopes scopes;
} api_auth;

/* ------------------------------------------------------------------------------------------
 * db.c: per-worker pool of non-blocking libpq connections. Statements are prepared lazily,
 * once per server connection, under "tusk_api_<name>".
 */
typedef struct api_stmt {
    const char *name; /* unique per statement */
    const char *sql;
    int nparams;
} api_stmt;
typedef struct api_db api_db;
/* called once per query: res is the result (PGRES_TUPLES_OK or PGRES_COMMAND_OK) or NULL
 * with err set; res is freed after the call */
typedef void (*api_db_cb)(void *arg, const PGresult *res, const char *err);
api_db *api_db_new(struct ev_loop *loop, const char *conninfo, int size, int timeout_ms);
void api_db_free(api_db *db);
/* queue a query; params are copied. false if the queue is full or the database is known to
 * be down (the callback is not called then) */
bool api_db_query(api_db *db, const api_stmt *st, const char *const *params, api_db_cb cb,
                  void *arg);
/* the same, but the connection first states the read floor min_lsn ("16/B374D848"; NULL or
 * "" for none) with SET tusk.min_lsn, when it is a tusk proxy whose own floor is lower */
bool api_db_query_lsn(api_db *db, const api_stmt *st, const char *const *params,
                      const char *min_lsn, api_db_cb cb, void *arg);
/* inside a callback: the tusk.commit_lsn the connection that ran the query reports ("" when
 * it is not a tusk proxy) */
const char *api_db_commit_lsn(const api_db *db);

/* ------------------------------------------------------------------------------------------
 * redis.c: a hiredis async connection on a libev loop that reconnects by itself
 */
struct redisAsyncContext;
typedef struct api_redis api_redis;
typedef void (*api_redis_connected_cb)(api_redis *r, void *arg);
/* parse "redis://[:password@]host[:port][/db]" (or "host:port"); false on junk */
bool api_redis_parse_url(const char *url, char *host, size_t hostcap, int *port, int *db,
                         char *password, size_t pwcap);
/* start connecting; on_connect runs after every (re)connect, before queued use */
api_redis *api_redis_new(struct ev_loop *loop, const char *url, const char *what,
                         api_redis_connected_cb on_connect, void *arg);
/* the live context, NULL while disconnected */
struct redisAsyncContext *api_redis_ctx(api_redis *r);
void api_redis_free(api_redis *r);

/* ------------------------------------------------------------------------------------------
 * stream messages: one Redis message rendered once for every listener of the process
 */
typedef struct api_msg {
    atomic_uint refs;
    uint32_t chan_len;         /* channel name at data[0] */
    uint32_t ws_off, ws_len;   /* complete WebSocket text frame */
    uint32_t sse_off, sse_len; /* chunked-encoded SSE event ("<hex>\r\n...\r\n") */
    uint32_t raw_off, raw_len; /* the same SSE event without chunk framing */
    char data[];
} api_msg;
void api_msg_ref(api_msg *m);
void api_msg_unref(api_msg *m);
/* render a Redis pub/sub message of channel into the frames clients get; NULL if the message
 * is not {"event":...,"payload":...} JSON (logged) */
api_msg *api_msg_render(const char *chan, size_t chanlen, const char *text, size_t len);
/* the "stream" label of a channel: ["user"], ["list","ID"], ["public"]; written as JSON */
bool api_stream_label(api_jw *w, const char *chan, size_t chanlen);
/* SSE event framing: "event: E\ndata: D\n\n" (each line of D gets its own "data: "); when
 * chunked, wrapped as one HTTP chunk */
void api_sse_frame(api_buf *b, const char *event, const char *data, size_t len, bool chunked);
/* the header of an unmasked server WebSocket frame for len payload bytes; returns its size
 * (2, 4 or 10) */
size_t api_ws_frame_header(uint8_t out[10], int opcode, size_t len);
/* Sec-WebSocket-Accept for a Sec-WebSocket-Key; false if the key is not 16 bytes base64 */
bool api_ws_accept(const char *key, size_t keylen, char out[29]);

struct api_worker;
/* ------------------------------------------------------------------------------------------
 * pubsub.c: one subscription per channel per process
 */
typedef struct api_pubsub api_pubsub;
api_pubsub *api_pubsub_start(const api_config *cfg, struct api_worker **workers, int nworkers);
/* a worker's first local listener of chan appeared / its last one left */
void api_pubsub_sub(api_pubsub *ps, int worker, const char *chan);
void api_pubsub_unsub(api_pubsub *ps, int worker, const char *chan);
void api_pubsub_stop(api_pubsub *ps);

/* ------------------------------------------------------------------------------------------
 * server.c: workers and connections
 */
typedef struct api_req api_req;
typedef struct api_conn api_conn;
typedef struct api_outchunk api_outchunk;
typedef struct api_router api_router;
typedef struct api_auth_cache api_auth_cache;
typedef struct api_chan api_chan;
typedef struct api_sub api_sub;

typedef struct api_server {
    const api_config *cfg;
    api_router *router;
    api_ratelimit *rl;      /* per token */
    api_ratelimit *rl_anon; /* per IP */
    api_pubsub *pubsub;
    struct api_worker **workers;
    int nworkers;
    struct api_bg *bg;               /* blocking pool (bg.c) */
    struct api_lsn_table *lsn;       /* commit-LSN tokens per account (lsn.c) */
    struct api_feedmemo *memo;       /* feeds known empty (timelines.c) */
    atomic_uint_fast64_t status_gen; /* bumped by every status delete in this process */
    uint8_t refresh_key[32];         /* signs async refresh ids (refresh.c) */
} api_server;

/* one per thread: everything a connection touches lives here, so no locks on the hot path */
typedef struct api_worker {
    int id;
    api_server *srv;
    struct ev_loop *loop;
    int listen_fd;
    ev_io accept_io;
    ev_async wake; /* stop request or pub/sub deliveries */
    ev_timer tick; /* heartbeats (SSE comment, WebSocket ping), date cache */
    ev_timer accept_retry;
    atomic_bool stopping;
    api_db *db;
    api_redis *feeds;   /* = shards[0] */
    api_redis **shards; /* one per redis_feeds instance (cache_shard_of) */
    api_redis **reval;  /* the same, for render revalidations (hydrate.c); may be NULL */
    int nshards;
    struct api_rcache *rcache; /* rendered statuses (hydrate.c) */
    api_auth_cache *auth;
    api_conn *conns; /* every open connection (doubly linked) */
    int nconns;
    api_conn *streams; /* streaming connections (second list, for heartbeats) */
    int nstreams;
    api_req *free_reqs; /* recycled request structs */
    int nfree_reqs;
    char *rbuf; /* read scratch shared by the worker's connections */
    size_t rbuf_cap;
    api_buf scratch; /* response body scratch */
    api_buf cmdbuf;  /* Redis commands being formatted (hydrate.c, timelines.c) */
    ev_prepare prep; /* once per loop iteration: batched work (render revalidations) */
    char date[40];   /* "Date: ..." value, refreshed per second */
    time_t date_sec;
    /* channel registry (stream.c) */
    api_chan **chans;
    size_t chan_cap;
    size_t nchans;
    /* pub/sub deliveries from the pubsub thread */
    pthread_mutex_t inbox_lock;
    api_msg **inbox;
    size_t inbox_len;
    size_t inbox_cap;
    double next_sse_beat;
    double next_ws_ping;
    /* bg.c completions */
    ev_async bg_wake;
    pthread_mutex_t bg_lock;
    struct api_bg_job *bg_head, *bg_tail;
    int bg_pending; /* jobs submitted whose done function has not run */
    bool shutting;  /* shutdown began: waiting for bg jobs before the loop ends */
    /* hydration counters, logged at shutdown (how well the render memo does) */
    uint64_t st_hydrations, st_hyd_mget, st_statuses, st_memo_fresh, st_renders, st_reval_keys;
} api_worker;

enum api_conn_state {
    CONN_HTTP = 0, /* reading or waiting for requests */
    CONN_LINGER,   /* answered and closing: discard what the client still sends */
    CONN_SSE,      /* text/event-stream */
    CONN_WS,       /* WebSocket */
};

enum {
    CONN_F_CLOSED = 1u << 0, /* fd closed; memory waits for refs to drop */
    CONN_F_BUSY = 1u << 1,   /* a request is being handled (async) */
    CONN_F_CLOSE_AFTER = 1u << 2,
    CONN_F_HTTP10 = 1u << 3,   /* stream without chunked encoding */
    CONN_F_WS_ALIVE = 1u << 4, /* the client sent something since the last ping */
    CONN_F_WS_CLOSING = 1u << 5,
    CONN_F_READ_EOF = 1u << 6,
    CONN_F_IN_REQUEST = 1u << 7, /* bytes of an incomplete request received */
    CONN_F_READ_HELD = 1u << 8,  /* input arrived while busy: reading is off until done */
};

/* Kept small: 10k idle streams per process is the target. Buffers (request, input,
 * output, WebSocket frame parser) are allocated only while in use. */
struct api_conn {
    ev_io io;
    ev_timer timer;
    api_worker *w;
    api_conn *prev, *next;   /* w->conns */
    api_conn *sprev, *snext; /* w->streams */
    int fd;
    uint8_t state;
    uint16_t flags;
    uint16_t refs; /* async operations holding the connection */
    uint32_t peer; /* IPv4 address (network order), 0 for others */
    api_req *req;  /* request in progress */
    void *parser;  /* llhttp_t, NULL in stream states */
    char *pending; /* unparsed bytes waiting while a request is handled */
    uint32_t pending_len;
    uint32_t out_bytes;
    api_outchunk *out_head, *out_tail;
    /* streams */
    api_sub *subs;
    void *ws;             /* wslay frame context while a client frame is in flight */
    uint64_t ws_fed;      /* bytes handed to the frame parser */
    uint64_t ws_consumed; /* bytes of complete frames it returned */
    uint64_t ws_frame_left;
    char *ws_msg; /* text message being reassembled from fragments */
    uint32_t ws_msg_len;
    uint8_t *ws_ctl; /* a control frame that arrived split */
    uint8_t ws_ctl_len;
    uint8_t ws_msg_op;
    uint8_t nsubs;
    api_auth auth; /* streams keep the identity they connected with */
};

struct iovec;
/* queue bytes for the client (copied); sends at once when nothing is queued */
void api_conn_write(api_conn *c, const void *data, size_t len);
/* the same for several pieces (one syscall when the socket takes them all) */
void api_conn_writev(api_conn *c, struct iovec *iov, int n);
/* after an answer that closes the connection: close once the output is flushed */
void api_conn_kick(api_conn *c);
/* queue bytes of a shared message (no copy: the message is referenced) */
void api_conn_write_msg(api_conn *c, api_msg *m, uint32_t off, uint32_t len);
/* close now (fd released; memory after the last reference is dropped) */
void api_conn_close(api_conn *c, const char *why);
/* take / drop a reference that keeps c's memory while an async operation runs */
void api_conn_hold(api_conn *c);
void api_conn_release(api_conn *c);
/* is the connection still open? */
bool api_conn_open(const api_conn *c);
/* a handler finished the request on c; go on with pipelined input */
void api_conn_request_done(api_conn *c);
/* switch c to a stream state (SSE or WS) after its handshake was written */
void api_conn_become_stream(api_conn *c, int state);
/* the worker of the calling thread's pub/sub deliveries arrived (pubsub.c -> worker) */
void api_worker_deliver(api_worker *w, api_msg *m);
/* current "Date:" header value */
const char *api_worker_date(api_worker *w);
/* the worker's async connection to redis_feeds (hiredis, libev adapter) for handlers that
 * read timelines; NULL while disconnected (answer 503 then) */
struct redisAsyncContext *api_worker_feeds(api_worker *w);

/* run the server until SIGINT/SIGTERM; 0 on clean exit */
int api_server_run(api_config *cfg);

/* ------------------------------------------------------------------------------------------
 * router.c
 */
typedef void (*api_handler)(api_req *req);
enum {
    ROUTE_AUTH_NONE = 0,     /* token ignored */
    ROUTE_AUTH_OPTIONAL = 1, /* checked if present */
    ROUTE_AUTH_REQUIRED = 2, /* 401 without a valid token */
    ROUTE_USER = 4,          /* 422 for application tokens without a user */
    ROUTE_NO_RATELIMIT = 8,
    ROUTE_STREAM = 16,   /* streaming handshake: token also from Sec-WebSocket-Protocol */
    ROUTE_RAW_BODY = 32, /* do not parse the body into params */
};
#define API_ROUTE_MAX_PARAMS 4
typedef struct api_route {
    int method; /* llhttp method number */
    const char *pattern;
    api_handler handler;
    const char *scopes; /* NULL: no scope needed */
    unsigned flags;
    api_scopes scope_mask; /* computed from scopes */
} api_route;
typedef struct api_route_params {
    int n;
    const char *name[API_ROUTE_MAX_PARAMS];
    const char *val[API_ROUTE_MAX_PARAMS];
    uint16_t len[API_ROUTE_MAX_PARAMS];
} api_route_params;

api_router *api_router_new(void);
void api_router_free(api_router *r);
/* add a route (the struct is copied); false on a bad pattern or duplicate */
bool api_router_add(api_router *r, const api_route *route);
/* match; NULL with *status 404 (no such path) or 405 (path exists, not for this method:
 * *allow gets a mask of 1 << method, HEAD implied by GET) */
const api_route *api_router_match(const api_router *r, int method, const char *path, size_t len,
                                  api_route_params *params, int *status, uint64_t *allow);
/* "GET, POST" for an allow mask */
void api_router_allow_header(uint64_t allow, char *out, size_t cap);
/* register every endpoint of endpoints.c and stream.c */
bool api_routes_register(api_router *r);

/* ------------------------------------------------------------------------------------------
 * request.c: the request handlers see
 */
#define API_MAX_HEADERS 64
typedef struct api_header {
    uint32_t name_off, name_len, val_off, val_len;
} api_header;

struct api_req {
    api_req *next_free;
    api_worker *w;
    api_conn *conn;
    int method;
    bool keepalive;
    bool http10;
    bool upgrade;
    bool head; /* HEAD: answer like GET without a body */
    int error; /* status to answer instead of handling (413, 431, ...) */
    /* raw request: url and header bytes in head; headers index into it */
    api_buf head_buf;
    uint32_t url_len;
    int nheaders;
    api_header headers[API_MAX_HEADERS];
    bool last_was_value;
    size_t header_bytes;
    api_buf body;
    /* parsed */
    const char *path; /* into head_buf, NUL-terminated */
    size_t path_len;
    const char *query; /* NUL-terminated, "" if none */
    const api_route *route;
    api_route_params rp;
    json_t *params; /* query + form/JSON body, merged */
    const char *token;
    api_auth auth;
    bool authed;
    api_rl_info rl;
    bool rl_set;
    /* response */
    int status;
    api_buf resp;      /* body */
    api_buf resp_hdrs; /* extra header lines, each ending in \r\n */
    const char *content_type;
    const char *cache_control; /* NULL: "private, no-store" */
    bool done;
    bool async;
};

/* a request was fully read on c: run it (server.c calls this) */
void api_req_dispatch(api_req *req);
/* value of a request header (case-insensitive name); NULL if absent; *len gets its length */
const char *api_req_header(const api_req *req, const char *name, size_t *len);
/* route parameter ":name" as a positive bigint; false (and a 404 answered) if missing or bad */
bool api_req_id_param(api_req *req, const char *name, int64_t *out);
/* parameter from query/body as a string (numbers converted); NULL if absent */
const char *api_req_param(api_req *req, const char *name);
/* JSON writer on the response body */
void api_req_json(api_req *req, api_jw *w);
/* add a response header line ("Name: value") */
void api_req_add_header(api_req *req, const char *fmt, ...) TUSK_PRINTF(2, 3);
/* send the response built in req->resp with this status */
void api_req_finish(api_req *req, int status);
/* answer {"error":msg} */
void api_req_error(api_req *req, int status, const char *msg);
/* the request became a stream: no response will follow */
void api_req_finish_stream(api_req *req);
/* standard reason phrase */
const char *api_status_reason(int status);
/* answer a bad request read by the server (parse error, limits) before any handler; used
 * by server.c when llhttp fails */
void api_req_fail_early(api_conn *c, int status, const char *msg);
/* release a request (returns it to the worker's free list) */
void api_req_release(api_worker *w, api_req *req);
api_req *api_req_new(api_worker *w, api_conn *c);

/* ------------------------------------------------------------------------------------------
 * auth.c: token lookups with a short per-worker cache
 */
typedef void (*api_auth_cb)(void *arg, int status, const api_auth *auth);
api_auth_cache *api_auth_cache_new(int ttl_ms);
void api_auth_cache_free(api_auth_cache *c);
/* resolve a token; cb gets status 200 with auth, 401 for an invalid token, 503 if the
 * database is unavailable. May call cb before returning (cache hit). */
void api_auth_lookup(api_worker *w, const char *token, api_auth_cb cb, void *arg);

/* ------------------------------------------------------------------------------------------
 * stream.c
 */
/* handlers */
void api_stream_ws_handler(api_req *req);
void api_stream_sse_handler(api_req *req);
/* bytes arrived on a WebSocket connection */
void api_stream_ws_input(api_conn *c, const char *data, size_t len);
/* a stream connection is closing: drop its subscriptions */
void api_stream_conn_closed(api_conn *c);
/* every tick: heartbeats due */
void api_stream_tick(api_worker *w, double now);
/* deliver one rendered message to the worker's listeners of its channel */
void api_stream_deliver(api_worker *w, api_msg *m);
/* free the registry at shutdown */
void api_stream_worker_free(api_worker *w);

/* ------------------------------------------------------------------------------------------
 * account.c: the Account entity
 */
/* columns the renderer expects, in order, for "SELECT <API_ACCOUNT_COLUMNS> FROM accounts a
 * LEFT JOIN account_stats s ON s.account_id = a.id" */
extern const char API_ACCOUNT_COLUMNS[];
#define API_ACCOUNT_NCOLS 23
/* write the Account entity of row (columns above starting at col) */
void api_account_render(api_jw *w, const api_config *cfg, const PGresult *res, int row, int col,
                        bool credential);

/* endpoints.c */
bool api_endpoints_register(api_router *r);

/* util: ISO 8601 with milliseconds ("2023-01-02T03:04:05.000Z") of a PostgreSQL timestamp
 * without time zone text holding UTC; false if it does not parse */
bool api_iso_time(const char *pg, char out[32]);
/* RFC 7231 date of t */
void api_http_date(time_t t, char out[40]);
/* strictly a positive decimal bigint */
bool api_parse_id(const char *s, size_t len, int64_t *out);
/* decimal text of v (out: 21 bytes at least, NUL-terminated); returns its length */
int api_i64_text(char *out, int64_t v);

/* ------------------------------------------------------------------------------------------
 * lsn.c: commit-LSN tokens. After a write, the tusk proxy reports the commit LSN of the
 * session as the ParameterStatus "tusk.commit_lsn"; the api keeps it per account for a short
 * while and states it (SET tusk.min_lsn) before that account's later reads on other pooled
 * connections, so a lagging replica never answers them. Process-wide, sharded locks.
 */
typedef struct api_lsn_table api_lsn_table;
/* parse "16/B374D848" into a 64-bit position; false if malformed */
bool api_lsn_parse(const char *s, uint64_t *out);
api_lsn_table *api_lsn_new(int ttl_ms);
void api_lsn_free(api_lsn_table *t);
/* remember lsn as the account's floor (a lower one does not replace a higher one); NULL, ""
 * and malformed values are ignored */
void api_lsn_note(api_lsn_table *t, int64_t account_id, const char *lsn);
/* the account's floor when one was noted within the TTL: true with out filled */
bool api_lsn_get(api_lsn_table *t, int64_t account_id, char out[32]);

/* ------------------------------------------------------------------------------------------
 * bg.c: a small pool of threads with blocking libpq connections and blocking cache handles,
 * for work the event loops must not wait on: write transactions that carry an outbox row
 * (fanout_outbox_* are blocking calls on the transaction's connection), the status cache's
 * PostgreSQL fallback (cache_status_fetch) and regeneration requests. A job's run function
 * executes on a pool thread; its done function then runs on the worker that submitted it.
 */
typedef struct api_bg api_bg;
typedef struct api_bg_ctx {
    const api_config *cfg;
    struct api_server *srv;
    PGconn *pg;   /* NULL until api_bg_pg connects it */
    cache *cache; /* this thread's Redis connections (lazy) */
} api_bg_ctx;
typedef void (*api_bg_run_fn)(api_bg_ctx *ctx, void *arg);
typedef void (*api_bg_done_fn)(void *arg);
api_bg *api_bg_start(struct api_server *srv, int nthreads);
/* finish queued jobs and join the threads (after every worker stopped) */
void api_bg_stop(api_bg *bg);
/* queue a job for worker w; false when the queue is full or the pool is stopping (neither
 * function is called then) */
bool api_bg_submit(struct api_worker *w, api_bg_run_fn run, api_bg_done_fn done, void *arg);
/* on a pool thread: the connection, (re)connected when needed; NULL with err when the
 * database cannot be reached */
PGconn *api_bg_pg(api_bg_ctx *ctx, char *err, size_t errlen);
/* on a pool thread: run SQL with text params; the result (TUPLES_OK or COMMAND_OK) or NULL
 * with the server's message in err (SQLSTATE in state when given) */
PGresult *api_bg_exec(api_bg_ctx *ctx, const char *sql, int nparams, const char *const *params,
                      char *err, size_t errlen, char state[6]);
/* on a pool thread: state account's read floor on the connection (no-op without a token or
 * a tusk proxy) */
void api_bg_min_lsn(api_bg_ctx *ctx, int64_t account_id);
/* on a pool thread: after a COMMIT, keep the session's commit LSN as account's token */
void api_bg_note_commit(api_bg_ctx *ctx, int64_t account_id);
/* worker side (its loop's bg_wake): run the done functions of the worker's finished jobs */
void api_bg_worker_drain(struct api_worker *w);

/* ------------------------------------------------------------------------------------------
 * paging.c: Mastodon's pagination parameters and Link headers
 */
typedef struct api_page {
    long limit;
    bool has_max, has_since, has_min;
    int64_t max_id, since_id, min_id;
} api_page;
/* Ruby's String#to_i (leading blanks, sign, digits up to the first other byte; saturating) */
int64_t api_ruby_to_i(const char *s);
/* Mastodon's limit_param: default when absent, else min(|to_i|, max) */
long api_limit_param(api_req *req, long def, long max);
/* limit + max_id/since_id/min_id (to_i of whatever was given, as Mastodon) */
void api_page_parse(api_req *req, long def, long max, api_page *p);
/* Rails' boolean cast of a parameter: absent or "" -> dflt; false, 0, "0", "f", "false",
 * "off" (any case) -> false; anything else -> true */
bool api_param_bool(api_req *req, const char *name, bool dflt);
/* Link: <public_url path?params&max_id=N>; rel="next", <...&prev_key=M>; rel="prev". keep
 * names the request parameters carried over (NULL-terminated); the query is sorted by name,
 * as Rails writes it. next/prev false leave that link out (no header when both are). */
void api_link_header(api_req *req, const char *path, const char *const *keep, bool next,
                     int64_t next_max_id, bool prev, const char *prev_key, int64_t prev_id);
/* ids of a parameter that is a string or an array of strings/numbers ("id[]=1&id[]=2" or
 * "id=1"); returns the count (at most max); an entry that is not an id gives 0 */
int api_param_ids(api_req *req, const char *name, int64_t *out, int max);

/* ------------------------------------------------------------------------------------------
 * hydrate.c: status ids -> rendered Status entities. One MGET per feeds shard of the status
 * cache (and one for reblogged originals), misses from PostgreSQL on a bg thread
 * (cache_status_fetch, which writes them back), rendering memoized per worker by the hash of
 * the cached record (api_rcache).
 */
typedef struct api_hitem {
    int64_t id;
    int64_t account_id;
    int visibility;
    const char *json; /* the rendering, valid during the callback */
    uint32_t len;
} api_hitem;
typedef struct api_hydrated {
    api_buf json;     /* renderings made for this call (items may point elsewhere) */
    api_hitem *items; /* found and visible statuses, in the order asked */
    size_t n;
    bool failed; /* the database could not be read: answer 503 */
} api_hydrated;
enum {
    API_HYD_VIEWER = 1,        /* authenticated: per-viewer fields (favourited, ...) */
    API_HYD_FILTER_DIRECT = 2, /* drop direct statuses neither by nor mentioning the viewer */
    API_HYD_SOURCE = 4,        /* add "text" (the source), as Mastodon's delete answer does */
};
typedef void (*api_hydrate_cb)(api_req *req, void *arg, api_hydrated *h);
/* load and render ids for req; cb runs once (maybe before this returns); h is freed after */
void api_hydrate(api_req *req, const int64_t *ids, size_t n, unsigned flags, api_hydrate_cb cb,
                 void *arg);
/* "[s1,s2,...]" of the items into req->resp */
void api_hydrated_write_array(api_req *req, const api_hydrated *h);
/* answer "[s1,s2,...]" of the items without copying them into req->resp (call it from the
 * hydrate callback, while h is alive) */
void api_req_finish_hydrated(api_req *req, int status, const api_hydrated *h);
typedef struct api_rcache api_rcache;
api_rcache *api_rcache_new(size_t entries);
void api_rcache_free(api_rcache *rc);
/* once per loop iteration: send the worker's queued render revalidations (refresh ahead) */
void api_rcache_flush(api_worker *w);
/* render a status as the API answers it (viewer: per-viewer fields; source: "text") */
bool api_render_status(api_buf *out, const cache_status *s, const api_config *cfg, bool viewer,
                       bool source);

/* ------------------------------------------------------------------------------------------
 * endpoint files: each registers its routes
 */
bool api_statuses_register(api_router *r);
bool api_timelines_register(api_router *r);
bool api_relations_register(api_router *r);
bool api_lists_register(api_router *r);
bool api_refresh_register(api_router *r);

/* refresh.c: Mastodon's async refreshes (the regeneration markers of feeds) */
/* derive the process's signing key from secret_key_base (random without one) */
bool api_refresh_init(api_server *srv);
/* the id a client is given for a refresh key ("account:1:regeneration"): signed, URL-safe */
bool api_refresh_id(const api_server *srv, const char *key, char *out, size_t cap);
/* the key of an id this process (or one sharing secret_key_base) issued; false otherwise */
bool api_refresh_verify(const api_server *srv, const char *id, size_t len, char *key, size_t cap);
/* timelines.c: process-wide memo of feeds found empty after a rebuild (so an empty feed is
 * not rebuilt on every read); a follow or list change in this process forgets the entry */
typedef struct api_feedmemo api_feedmemo;
api_feedmemo *api_feedmemo_new(void);
void api_feedmemo_free(api_feedmemo *m);
void api_feedmemo_forget(api_feedmemo *m, int type, int64_t id);
/* the keys cache/ names (cache_feed_key, cache_regeneration_key) formatted without printf,
 * for the hot path; return their length */
size_t api_feed_key(char out[48], int type, int64_t id);
size_t api_marker_key(char out[48], int type, int64_t id);

/* request.c helpers for handlers */
/* the account's commit-LSN token, if fresh: true with out filled */
bool api_req_lsn(api_req *req, char out[32]);
/* api_db_query_lsn with the requesting account's token */
bool api_req_query(api_req *req, const api_stmt *st, const char *const *params, api_db_cb cb,
                   void *arg);
/* connection to the feeds shard holding keys of this account/list/status id; NULL while
 * disconnected */
struct redisAsyncContext *api_worker_shard(api_worker *w, int64_t id);

#endif
