/*
 * proxy: internal interface shared by the files of proxy/ (not by other parts; their interface
 * is proxy/proxy.h). See proxy/README.md for how the pieces cooperate.
 *
 * Threading: every client, server connection and pool belongs to exactly one worker (one
 * thread, one libev loop) and is touched only by that thread. What workers share sits in
 * px_global behind one mutex (cancel keys, connection counters, SCRAM keys) or is read-only
 * and reference counted (px_config).
 */
#ifndef TUSK_PROXY_INTERNAL_H
#define TUSK_PROXY_INTERNAL_H

#include "common/common.h"
#include "proxy/proxy.h"
#include "router/router.h"

#include <ev.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

/* ------------------------------------------------------------------------------------------ */
/* limits                                                                                      */
/* ------------------------------------------------------------------------------------------ */

#define PX_MAX_STARTUP_LEN 10000     /* PostgreSQL's MAX_STARTUP_PACKET_LENGTH */
#define PX_MAX_MSG_LEN 0x3fffffffu   /* largest length field accepted (PG's 1 GB limit) */
#define PX_MAX_LOGIN_MSG 8192        /* password / SASL messages */
#define PX_MAX_WHOLE_MSG (16u << 20) /* messages the proxy must see whole (Parse text) */
#define PX_MAX_WORKERS 64
#define PX_PIPE_DEPTH_MAX 4 /* pipeline_depth: reads a server may hold behind the running one */
#define PX_HIST_BUCKETS 12  /* latency histogram buckets of px_stats */
#define PX_DEFAULT_PKT_BUF 32768
#define PX_PROTO_V3 196608u
#define PX_SSL_REQUEST 80877103u
#define PX_GSSENC_REQUEST 80877104u
#define PX_CANCEL_REQUEST 80877102u

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* ------------------------------------------------------------------------------------------ */
/* pktbuf.c: protocol v3 message codec                                                         */
/* ------------------------------------------------------------------------------------------ */

static inline uint32_t pkt_get_u32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint16_t pkt_get_u16(const uint8_t *p)
{
    return (uint16_t)(((uint16_t)p[0] << 8) | p[1]);
}
static inline void pkt_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* a growable (or fixed) buffer that messages are built into */
typedef struct pktbuf {
    uint8_t *data;
    size_t len, cap;
    size_t msg_start; /* where the message being built starts */
    bool fixed;       /* data is caller storage: never realloc'd */
    bool failed;      /* out of memory / out of space: contents are unusable */
} pktbuf;

/* use caller storage (fixed, never grows) or, with storage NULL, a heap buffer */
void pktbuf_init(pktbuf *b, uint8_t *storage, size_t cap);
/* release a heap buffer */
void pktbuf_free(pktbuf *b);
/* forget the contents, keep the memory */
void pktbuf_reset(pktbuf *b);
/* make room for n more bytes; false (and failed set) if impossible */
bool pktbuf_reserve(pktbuf *b, size_t n);
/* start a message; type 0 = untyped (startup packet, SSLRequest) */
void pkt_begin(pktbuf *b, uint8_t type);
void pkt_put_byte(pktbuf *b, uint8_t v);
void pkt_put_int16(pktbuf *b, uint16_t v);
void pkt_put_int32(pktbuf *b, uint32_t v);
void pkt_put_bytes(pktbuf *b, const void *p, size_t n);
/* a C string with its NUL */
void pkt_put_str(pktbuf *b, const char *s);
/* patch the length field of the message started by pkt_begin */
void pkt_end(pktbuf *b);

/* ErrorResponse (or NoticeResponse with type 'N'): S, V, C, M fields, optional detail */
void pkt_error(pktbuf *b, uint8_t type, const char *severity, const char *sqlstate,
               const char *detail, const char *fmt, ...) TUSK_PRINTF(6, 7);
void pkt_param_status(pktbuf *b, const char *name, const char *value);
void pkt_ready(pktbuf *b, char status);
void pkt_auth(pktbuf *b, uint32_t code, const void *data, size_t len);
void pkt_backend_key(pktbuf *b, uint32_t pid, uint32_t key);
void pkt_query(pktbuf *b, const char *sql);
void pkt_simple(pktbuf *b, uint8_t type); /* a message with an empty body: '1','3','S','H',.. */
void pkt_close(pktbuf *b, char what, const char *name);
void pkt_parse(pktbuf *b, const char *name, const char *query, size_t qlen, uint16_t ntypes,
               const uint8_t *types_be);
void pkt_cancel_request(pktbuf *b, uint32_t pid, uint32_t key);

/* header of a typed message: 1 = complete header (type, total = 1 + length field),
 * 0 = fewer than 5 bytes available, -1 = length field out of range (< 4 or > PX_MAX_MSG_LEN) */
int pkt_header(const uint8_t *p, size_t avail, uint8_t *type, uint32_t *total);

/* bounds-checked reader over a message body */
typedef struct pkt_reader {
    const uint8_t *p;
    size_t len, pos;
    bool bad; /* a read ran past the end or a string had no NUL */
} pkt_reader;
void pkt_reader_init(pkt_reader *r, const uint8_t *body, size_t len);
uint8_t pkt_read_byte(pkt_reader *r);
uint16_t pkt_read_int16(pkt_reader *r);
uint32_t pkt_read_int32(pkt_reader *r);
/* NUL-terminated string inside the body; "" and bad set when it runs off the end */
const char *pkt_read_str(pkt_reader *r);
const uint8_t *pkt_read_bytes(pkt_reader *r, size_t n);

/* value of field code (e.g. 'C' SQLSTATE, 'M' message, 'V' severity) of an Error/Notice body */
const char *pkt_error_field(const uint8_t *body, size_t len, char code);

/* one name/value pair of a startup packet; return false to stop (error) */
typedef bool (*pkt_startup_cb)(void *ctx, const char *name, const char *value);
/* parse the parameters of a v3 StartupMessage body (after length and version):
 * 0 ok, -1 malformed (missing terminator, odd pair, empty name) */
int pkt_startup_params(const uint8_t *p, size_t len, pkt_startup_cb cb, void *ctx);

/* ------------------------------------------------------------------------------------------ */
/* config.c: pgbouncer.ini layout                                                              */
/* ------------------------------------------------------------------------------------------ */

enum { PM_SESSION = 0, PM_TRANSACTION = 1, PM_STATEMENT = 2 };
enum { AUTH_TRUST = 0, AUTH_ANY, AUTH_PLAIN, AUTH_MD5, AUTH_SCRAM, AUTH_HBA, AUTH_CERT };
enum { TLS_DISABLE = 0, TLS_ALLOW, TLS_PREFER, TLS_REQUIRE, TLS_VERIFY_CA, TLS_VERIFY_FULL };

typedef struct px_node {
    char *host; /* "/dir" = unix socket directory */
    int port;
    struct sockaddr_storage addr; /* resolved at load time */
    socklen_t addrlen;
    bool resolved;
} px_node;

/* one [databases] entry */
typedef struct px_db {
    char *name;      /* as clients name it; "*" is the fallback */
    char *dbname;    /* on the server; NULL = the name clients use */
    char *user;      /* forced server login user; NULL = the client's */
    char *password;  /* for the forced user or the client's user; NULL = from auth_file */
    char *auth_user; /* per-database auth_user for auth_query */
    int pool_size, min_pool_size, reserve_pool, max_db_connections; /* -1 = global */
    int pool_mode;                                                  /* -1 = global */
    char *client_encoding, *datestyle, *timezone, *application_name;
    px_node *nodes; /* [0] primary, then the replicas */
    int n_nodes;
    /* routing (route.c); -1 / NULL = the [pgbouncer] value */
    char *replica_weights; /* comma list of weights, one per replica */
    int max_replica_lag_ms, max_replica_lag_bytes, replica_wait_ms, primary_reads;
} px_db;

/* one [users] entry */
typedef struct px_usercfg {
    char *name;
    int pool_mode;            /* -1 = database / global */
    int max_user_connections; /* -1 = global */
    int pool_size;            /* -1 = database / global */
} px_usercfg;

/* hba.c: auth_hba_file (pg_hba.conf format) */
typedef struct px_hba px_hba;
enum {
    PX_HBA_NONE = 0, /* no line matched: rejected */
    PX_HBA_TRUST,
    PX_HBA_REJECT,
    PX_HBA_MD5,
    PX_HBA_PASSWORD,
    PX_HBA_SCRAM,
    PX_HBA_CERT,
    PX_HBA_PEER,
};
/* parse the file whole; NULL with err set on any bad line */
px_hba *px_hba_load(const char *path, char *err, size_t errlen);
void px_hba_free(px_hba *h);
/* the method of the first line matching the connection (AF_UNIX for local), PX_HBA_NONE if
 * none; *line gets the line number (0 if none) */
int px_hba_match(const px_hba *h, const struct sockaddr *sa, bool tls, const char *db,
                 const char *user, int *line);

typedef struct px_config {
    atomic_int refs;
    char *path;
    /* listening */
    char *listen_addr;
    int listen_port;
    char *unix_socket_dir;
    int unix_socket_mode;
    int listen_backlog;
    char *admin_listen;
    /* auth */
    int auth_type;
    char *auth_file;
    char *auth_query;
    char *auth_user;
    char *auth_dbname;
    userlist *users_file; /* loaded auth_file, NULL when none */
    char *auth_hba_file;
    struct px_hba *hba; /* loaded auth_hba_file (auth_type = hba) */
    char *admin_users, *stats_users;
    /* logging / process */
    char *logfile, *pidfile;
    bool log_connections, log_disconnections, log_pooler_errors;
    int pipeline_reads;        /* PX_PIPE_*: a read may be sent behind another on a busy server */
    double pipeline_fast_time; /* ... behind a query whose shape runs faster than this */
    int pipeline_depth;        /* ... and behind at most this many others */
    bool tcp_defer_accept;     /* accept only once the startup packet is there (Linux) */
    double busy_poll_time;     /* longest a worker polls for work before it sleeps; 0 = never */
    int verbose;
    int workers;
    int worker_pack_clients; /* new connections go to worker 0 while it has fewer (steer.c) */
    /* pools */
    int pool_mode;
    int default_pool_size, min_pool_size, reserve_pool_size;
    double reserve_pool_timeout;
    int max_client_conn, max_db_connections, max_user_connections;
    char *server_reset_query;
    bool server_reset_query_always;
    char *server_check_query;
    double server_check_delay;
    double query_wait_timeout, query_timeout, client_idle_timeout, idle_transaction_timeout;
    double server_idle_timeout, server_lifetime, server_connect_timeout, server_login_retry;
    double client_login_timeout, client_packet_timeout, shutdown_wait_timeout;
    char *ignore_startup_parameters; /* comma list, lowercased */
    int max_prepared_statements;
    int pkt_buf;
    bool tcp_keepalive;
    char *application_name_default;
    /* TLS */
    int client_tls_sslmode;
    char *client_tls_key_file, *client_tls_cert_file, *client_tls_ca_file, *client_tls_ciphers;
    int server_tls_sslmode;
    char *server_tls_ca_file, *server_tls_key_file, *server_tls_cert_file, *server_tls_ciphers;
    SSL_CTX *client_tls, *server_tls;
    /* databases and users */
    px_db *dbs;
    int n_dbs;
    px_db *fallback; /* the "*" entry or NULL */
    px_usercfg *users;
    int n_users;
    int n_warnings; /* keys accepted but not used */
    /* routing (route.c) */
    int lag_poll_ms, max_replica_lag_ms, max_replica_lag_bytes, replica_wait_ms;
    int primary_reads; /* PX_PRIMARY_READS_* */
    char *unsafe_functions;
    char *monitor_user, *monitor_password;
} px_config;

enum { PX_PRIMARY_READS_OFF = 0, PX_PRIMARY_READS_ON, PX_PRIMARY_READS_OVERFLOW };
/* pipeline_reads: never; only a read that would wait for a server; any read that can */
enum { PX_PIPE_OFF = 0, PX_PIPE_QUEUED, PX_PIPE_ON };
/* "off" / "queued" / "on" -> PX_PIPE_*, -1 if none */
int px_parse_pipeline_reads(const char *s);
/* "off" / "on" / "overflow" -> PX_PRIMARY_READS_*, -1 if none */
int px_parse_primary_reads(const char *s);

/* load FILE; NULL with the reason in err. Unknown keys are warnings, never errors. */
px_config *px_config_load(const char *path, char *err, size_t errlen);
/* parse config text in memory (tests); base_dir for relative auth_file (NULL = cwd) */
px_config *px_config_parse(const char *text, char *err, size_t errlen);
/* build TLS contexts and resolve addresses; false with err */
bool px_config_prepare(px_config *cfg, char *err, size_t errlen);
px_config *px_config_ref(px_config *cfg);
/* the socket address of a node (resolved at load time, else now) */
bool px_node_addr(const px_node *n, struct sockaddr_storage *out, socklen_t *len, char *err,
                  size_t errlen);
void px_config_unref(px_config *cfg);
/* the [databases] entry for a name clients use: exact match, else the "*" fallback, else NULL */
const px_db *px_config_find_db(const px_config *cfg, const char *name);
const px_usercfg *px_config_find_user(const px_config *cfg, const char *name);
/* is name (a startup parameter) in ignore_startup_parameters? */
bool px_config_ignored_param(const px_config *cfg, const char *name);
/* the [pgbouncer] keys, for SHOW CONFIG and SET (admin.c): count, name / default of key i,
 * its value in cfg as text, and setting it (0 ok, -1 bad value or unknown key, err set) */
int px_config_key_count(void);
const char *px_config_key_name(int i);
const char *px_config_key_default(int i);
void px_config_key_value(const px_config *cfg, int i, char *buf, size_t cap);
int px_config_set(px_config *cfg, const char *key, const char *value, char *err, size_t errlen);
/* names for log lines and SHOW CONFIG */
const char *px_pool_mode_name(int mode);
const char *px_auth_type_name(int type);

/* ------------------------------------------------------------------------------------------ */
/* varcache.c: tracked ParameterStatus values                                                  */
/* ------------------------------------------------------------------------------------------ */

enum {
    VAR_CLIENT_ENCODING = 0,
    VAR_DATESTYLE,
    VAR_TIMEZONE,
    VAR_INTERVALSTYLE,
    VAR_STANDARD_CONFORMING_STRINGS,
    VAR_APPLICATION_NAME,
    VAR_SEARCH_PATH,
    VAR_COUNT
};

/* an interned, reference-counted value: equal values of one worker share one object, so
 * "client and server agree" is a pointer comparison */
typedef struct px_istr {
    struct px_istr *next;
    uint32_t refs, hash;
    uint32_t len;
    char s[];
} px_istr;

typedef struct px_intern {
    px_istr **buckets;
    uint32_t nbuckets, count;
} px_intern;

/* index of a tracked parameter (case-insensitive name), -1 if not tracked */
int px_var_index(const char *name);
/* canonical spelling of a tracked parameter ("DateStyle") */
const char *px_var_name(int idx);
px_istr *px_intern_get(px_intern *t, const char *s, size_t len);
px_istr *px_intern_ref(px_istr *v);
void px_intern_put(px_intern *t, px_istr *v);
void px_intern_free(px_intern *t);
/* replace *slot with value (NULL allowed), handling references */
void px_var_set(px_intern *t, px_istr **slot, px_istr *value);
/* append "SET name = 'value';" for each var where want differs from have; returns count */
int px_var_sync_sql(px_istr *const *want, px_istr *const *have, pktbuf *sql);

/* ------------------------------------------------------------------------------------------ */
/* connection plumbing (io.c)                                                                  */
/* ------------------------------------------------------------------------------------------ */

struct px_worker;
struct px_pool;
struct px_client;
struct px_server;

typedef struct px_list {
    struct px_list *prev, *next;
} px_list;

static inline void px_list_init(px_list *l)
{
    l->prev = l->next = l;
}
static inline bool px_list_empty(const px_list *l)
{
    return l->next == l;
}
static inline void px_list_add_tail(px_list *head, px_list *e)
{
    e->prev = head->prev;
    e->next = head;
    head->prev->next = e;
    head->prev = e;
}
static inline void px_list_add_head(px_list *head, px_list *e)
{
    e->next = head->next;
    e->prev = head;
    head->next->prev = e;
    head->next = e;
}
static inline void px_list_del(px_list *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
    e->prev = e->next = e;
}

enum { PX_CONN_CLIENT = 1, PX_CONN_SERVER = 2 };

/*
 * One socket. Reads land in the worker's scratch buffer; only bytes left unprocessed (a partial
 * message, or data held back while the peer's socket is full) move into the private rbuf, so an
 * idle connection owns no buffer. Output goes straight from the input buffer to the peer socket
 * when possible (no copy); what the kernel does not take waits in wbuf.
 */
typedef struct px_conn {
    int fd;
    uint8_t kind;        /* PX_CONN_CLIENT / PX_CONN_SERVER */
    bool closed;         /* closing: skip everything, freed at the end of the loop pass */
    bool read_paused;    /* reading stopped because the peer's output is backed up */
    bool queued;         /* on the worker's run queue */
    bool want_write_tls; /* TLS read needs the socket writable (renegotiation) */
    bool is_unix;
    uint8_t pass_fwd; /* when pass_left > 0: 1 forward, 0 skip */
    ev_io rio, wio;
    SSL *ssl;
    uint8_t *rbuf; /* unprocessed input [0, rlen) */
    uint32_t rcap, rlen;
    uint8_t *wbuf; /* pending output [wpos, wlen) */
    uint32_t wcap, wpos, wlen;
    uint32_t pass_left;   /* bytes of a large message still streaming through */
    uint32_t need;        /* bytes the next message needs whole (sizes rbuf), 0 = default */
    double last_progress; /* last time a partial message grew (client_packet_timeout) */
    struct px_conn *runq_next;
    struct px_conn *zombie_next;
    struct px_worker *w;
} px_conn;

/* pending zero-copy output of one processing pass */
typedef struct px_fwd {
    px_conn *dst; /* NULL: bytes are dropped */
    const uint8_t *p;
    size_t n;
} px_fwd;

void px_conn_init(px_conn *c, struct px_worker *w, int fd, uint8_t kind);
/* stop watchers, free TLS and buffers, close the socket */
void px_conn_shutdown(px_conn *c);
/* queue generated bytes for sending (copied) */
bool px_conn_append(px_conn *c, const void *p, size_t n);
/* try to send pending output; false if the connection failed */
bool px_conn_flush(px_conn *c);
/* has unsent output */
static inline bool px_conn_backlogged(const px_conn *c)
{
    return c->wlen > c->wpos;
}

void px_conn_pause(px_conn *c);
void px_conn_resume(px_conn *c);
/* the connection whose reading waits for c's output (its linked peer), NULL if none */
px_conn *px_conn_peer(px_conn *c);
/* put a connection on the worker's run queue to process its buffered input */
void px_conn_schedule(px_conn *c);
/* keep data[0..n) as unprocessed input (after a pass) */
bool px_conn_keep(px_conn *c, const uint8_t *data, size_t n);
/* start the read watcher */
void px_conn_start(px_conn *c);

void px_fwd_init(px_fwd *f, px_conn *dst);
/* forward bytes of the input unchanged (extends the pending range when contiguous) */
void px_fwd_bytes(px_fwd *f, const uint8_t *p, size_t n);
/* queue generated bytes after everything forwarded so far */
void px_fwd_emit(px_fwd *f, const void *p, size_t n);
/* end of pass: send what is pending (zero-copy when nothing else waits) */
void px_fwd_finish(px_fwd *f);

/* write watcher callback: flush output, resume the peer once drained */
void px_conn_write_cb(struct ev_loop *loop, ev_io *io, int revents);
/* socket reads/writes through TLS when present; -1 error, -2 would block, 0 eof */
ssize_t px_conn_recv(px_conn *c, uint8_t *buf, size_t len);
ssize_t px_conn_send(px_conn *c, const uint8_t *buf, size_t len);

/* ------------------------------------------------------------------------------------------ */
/* prepare.c: named prepared statements in transaction mode                                    */
/* ------------------------------------------------------------------------------------------ */

/* one distinct (query text, parameter types): one server-side name on every server */
typedef struct px_stmt {
    struct px_stmt *next; /* registry chain */
    uint32_t refs;
    uint64_t hash;
    char name[20]; /* "T_" + 16 hex digits */
    uint32_t qlen;
    uint16_t ntypes;
    uint8_t *types; /* ntypes * 4 bytes, network order (inside the same allocation) */
    char query[];
} px_stmt;

typedef struct px_stmt_registry {
    px_stmt **buckets;
    uint32_t nbuckets, count;
} px_stmt_registry;

/* a client's names -> statements */
typedef struct px_cstmt {
    struct px_cstmt *next;
    px_stmt *stmt;
    uint32_t hash;
    char name[];
} px_cstmt;

typedef struct px_client_stmts {
    px_cstmt **buckets;
    uint32_t nbuckets, count;
} px_client_stmts;

/* which statements a server connection has prepared (LRU) */
typedef struct px_sstmt {
    struct px_sstmt *hnext;
    px_list lru;
    px_stmt *stmt;
} px_sstmt;

typedef struct px_server_stmts {
    px_sstmt **buckets;
    uint32_t nbuckets, count;
    px_list lru; /* most recently used first */
} px_server_stmts;

/* find or create the statement for a Parse body; NULL on malformed types or OOM */
px_stmt *px_stmt_get(px_stmt_registry *reg, const char *query, size_t qlen, uint16_t ntypes,
                     const uint8_t *types_be);
void px_stmt_unref(px_stmt_registry *reg, px_stmt *s);
/* a name of the form the proxy gives statements on servers ("T_" and 16 hex digits) */
bool px_stmt_name_is_shared(const char *name);
void px_stmt_registry_free(px_stmt_registry *reg);
/* client side: bind name to stmt (takes a reference, replaces an old binding) */
bool px_cstmts_put(px_client_stmts *m, const char *name, px_stmt *stmt, px_stmt_registry *reg);
px_stmt *px_cstmts_get(const px_client_stmts *m, const char *name);
/* forget name; true if it existed */
bool px_cstmts_del(px_client_stmts *m, const char *name, px_stmt_registry *reg);
void px_cstmts_free(px_client_stmts *m, px_stmt_registry *reg);
/* server side */
bool px_sstmts_has(px_server_stmts *m, px_stmt *stmt, bool touch);
bool px_sstmts_add(px_server_stmts *m, px_stmt *stmt);
bool px_sstmts_del(px_server_stmts *m, px_stmt *stmt, px_stmt_registry *reg);
/* least recently used statement (for eviction), NULL if empty */
px_stmt *px_sstmts_lru(const px_server_stmts *m);
void px_sstmts_free(px_server_stmts *m, px_stmt_registry *reg);

/* ------------------------------------------------------------------------------------------ */
/* server.c: expected responses of a server connection                                         */
/* ------------------------------------------------------------------------------------------ */

enum {
    EXP_PARSE = 1,
    EXP_BIND,
    EXP_DESC_STMT,
    EXP_DESC_PORTAL,
    EXP_EXECUTE,
    EXP_CLOSE,
    EXP_SYNC,
    EXP_QUERY,      /* simple Query or FunctionCall: everything up to ReadyForQuery */
    EXP_FAKE_PARSE, /* answer ParseComplete ourselves when this reaches the head */
    EXP_FAKE_CLOSE, /* answer CloseComplete ourselves */
    EXP_INTERNAL,   /* a query of the proxy's own: responses go to the server, not a client */
};
#define EXPF_SWALLOW 1   /* the client did not ask: do not forward the response */
#define EXPF_GOT_T 2     /* describe statement: ParameterDescription seen */
#define EXPF_FAILED 0x80 /* internal query: an ErrorResponse came */
#define EXPF_SWITCH 4    /* a pipelined client's first request: the server passes to it here */

enum { INTQ_RESET = 1, INTQ_CHECK, INTQ_SETVARS, INTQ_AUTH, INTQ_LSN };

typedef struct px_exp {
    uint8_t kind, flags, purpose, pad;
    px_stmt *stmt; /* PARSE / CLOSE entries that change the server's statement set */
    /* QUERY / EXECUTE of a routed client: the hash of its statement's text, so that a 25006
     * names the statement that failed even when the client has sent more since (route.c) */
    uint64_t text_hash;
} px_exp;

/* ------------------------------------------------------------------------------------------ */
/* clients, servers, pools                                                                     */
/* ------------------------------------------------------------------------------------------ */

typedef struct px_stats {
    uint64_t xact_count, query_count, server_assignments;
    uint64_t bytes_received, bytes_sent; /* from / to clients */
    uint64_t xact_time_us, query_time_us, wait_time_us;
    uint64_t errors;
    uint64_t prep_hits, prep_misses; /* prepared statement found on the server / injected */
    uint64_t pipelined;              /* reads sent behind another client's (pipeline_reads) */
    uint64_t pipelined_deep;         /* ... behind two or more (pipeline_depth) */
    /* latency histograms (admin.h adm_hist_bounds; last = above every bound), for /metrics */
    uint64_t xact_hist[PX_HIST_BUCKETS + 1], query_hist[PX_HIST_BUCKETS + 1];
} px_stats;
/* bucket of a duration in seconds (adminsnap.c) */
int px_hist_bucket(double seconds);

enum {
    CL_LOGIN = 1, /* startup packet, TLS, password exchange */
    CL_AUTHQ,     /* waiting for the auth_query answer (in the auth pool's waiting list) */
    CL_WELCOME,   /* authenticated, waiting until the pool knows the server's parameters */
    CL_IDLE,      /* logged in, no server */
    CL_WAITING,   /* needs a server, in the pool's waiting list */
    CL_ACTIVE,    /* linked to a server */
    CL_CLOSED,
};

typedef struct px_login px_login; /* client.c: state of a login (freed after it) */

typedef struct px_client {
    px_conn io; /* first member: the conn of an ev_io callback is the client */
    uint8_t state;
    char txn_status;       /* last ReadyForQuery status the client saw */
    bool authq;            /* CL_AUTHQ: linked only to run auth_query */
    bool close_after_txn;  /* graceful shutdown: close when the transaction ends */
    struct px_pool *pool;  /* home pool (primary node) once logged in */
    struct px_pool *lpool; /* the pool whose list holds node (NULL: worker's login list) */
    struct px_server *server;
    px_list node; /* in a pool's (or the worker's login) list */
    uint64_t id;
    uint32_t cancel_pid, cancel_key;
    double connect_time, last_active, wait_start, xact_start, query_start;
    px_istr *vars[VAR_COUNT];
    px_client_stmts *stmts;
    px_login *login;
    char *user;   /* login name */
    char *dbname; /* database name as the client gave it */
    char addr[64];
    uint8_t admin;         /* admin console client: 1 stats_users, 2 admin_users (admin.c) */
    struct px_rclient *rt; /* route.c: routing state, NULL until the first query */
    bool pipelined;        /* in its server's pipe_line: its query waits behind another's */
    bool pipe_msg_ok;      /* its pipelined query may have another behind it in turn */
    uint64_t pipe_key;     /* shape of its pipelined query (px_pool_shape_key) */
    bool pipe_queued;      /* its first pipelined request (EXPF_SWITCH) is on the server */
    bool cancel_pending;   /* a cancel that came while pipelined: sent when its turn comes */
} px_client;

enum {
    SV_CONNECTING = 1, /* TCP connect */
    SV_LOGIN,          /* TLS, startup, authentication */
    SV_IDLE,           /* in the pool, ready */
    SV_ACTIVE,         /* linked to a client */
    SV_USED,           /* running the proxy's own query (reset, check) */
    SV_CLOSED,
};

typedef struct px_slogin px_slogin; /* server.c: state of a server login */

typedef struct px_server {
    px_conn io;
    uint8_t state;
    char txn_status;
    bool dirty;           /* close instead of returning to the pool */
    bool ready_seen;      /* the last message was ReadyForQuery (transaction boundary) */
    uint8_t setvars_mask; /* vars the SET in flight changes */
    struct px_pool *pool;
    px_client *client;
    px_list node;
    uint64_t id;
    uint32_t backend_pid, backend_key;
    int node_idx;
    double connect_time, last_used;
    px_istr *vars[VAR_COUNT];
    px_exp *q; /* expected responses: ring buffer */
    uint32_t qhead, qlen, qcap;
    px_server_stmts stmts;
    px_slogin *login;
    pktbuf *fatal_msg;    /* the FATAL ErrorResponse held back (transaction mode) */
    pktbuf *authq_result; /* INTQ_AUTH: the password column */
    bool authq_null, authq_found;
    bool rt_hold_ready; /* route.c: the client's ReadyForQuery waits for the commit LSN */
    uint64_t rt_lsn;    /* INTQ_LSN: the answer */
    bool rt_sent;       /* route.c: the client got a response of this transaction */
    bool rt_retry;      /* route.c: 25006 swallowed; the statement re-runs on the primary */
    pktbuf *rt_held_t;  /* route.c: RowDescription held until the statement runs */
    char *rt_sets;      /* route.c: untracked session SETs this server has (script) */
    char *rt_set_names; /* route.c: their names, one per line */
    /* pipeline_reads: the clients whose reads were sent behind the current client's, in
     * order; the server passes to the first at the next EXPF_SWITCH entry (pool.c
     * px_pool_pipeline). NULL: a client that left; its answers are dropped */
    px_client *pipe_line[PX_PIPE_DEPTH_MAX];
    uint8_t pipe_n;
    /* shape of the current query (px_pool_shape_key) when another may wait behind it, else
     * 0; its run time is recorded at its ReadyForQuery */
    uint64_t pipe_key;
    double pipe_sent; /* when the current query was sent (or reached the server's head) */
} px_server;

/* process-wide counters of one (database, user, node), shared by the workers */
typedef struct px_shared_pool {
    struct px_shared_pool *next;
    /* the server parameters of the first login (under px_g.lock): a worker whose own pool has
     * not logged in yet welcomes clients with these instead of waiting for a server */
    uint8_t *welcome;
    size_t welcome_len;
    char *welcome_vars[VAR_COUNT];
    atomic_int servers; /* open or opening, all workers */
    atomic_int per_worker[PX_MAX_WORKERS];
    atomic_int waiting[PX_MAX_WORKERS]; /* clients waiting in each worker */
    size_t klen;
    char key[];
} px_shared_pool;

/* process-wide counter with a name (max_db_connections / max_user_connections) */
typedef struct px_shared_count {
    struct px_shared_count *next;
    atomic_int n;
    char name[];
} px_shared_count;

typedef struct px_pool {
    struct px_worker *w;
    struct px_pool *next; /* worker's list */
    char *dbname;         /* as clients name it */
    char *user;           /* server login user (forced or the client's) */
    int node_idx;
    px_config *cfg; /* reference: db points into it */
    const px_db *db;
    bool orphan; /* database removed by a reload: no new clients */
    /* resolved settings */
    int mode, size, min_size, reserve, max_db, max_user;
    px_shared_pool *shared;
    px_shared_count *db_count, *user_count;
    /* lists */
    px_list idle_servers, active_servers, used_servers, new_servers;
    px_list waiting_clients, active_clients, idle_clients, welcome_clients;
    int n_idle, n_active, n_used, n_new;
    int n_waiting, n_active_clients, n_idle_clients, n_welcome;
    /* what servers tell every new client (ParameterStatus minus tracked vars) */
    pktbuf welcome;
    bool have_welcome;
    px_istr *welcome_vars[VAR_COUNT];
    /* last failed server login: its ErrorResponse, and when */
    pktbuf last_error;
    double last_error_time;
    double last_connect_attempt;
    px_stats stats;
    /* the same (db, user) on each node in this worker, looked up once (pools live as long as
     * the worker) */
    struct px_pool *sibling[ROUTER_MAX_NODES];
} px_pool;

/* ------------------------------------------------------------------------------------------ */
/* worker.c / main.c                                                                           */
/* ------------------------------------------------------------------------------------------ */

enum { WMSG_RELOAD = 1, WMSG_CANCEL, WMSG_SHUTDOWN, WMSG_REBALANCE, WMSG_CALL };

typedef struct px_wmsg {
    struct px_wmsg *next;
    int kind;
    px_config *cfg;    /* RELOAD: a reference */
    px_client *client; /* CANCEL: the target client (checked against the cancel table) */
    uint64_t client_id;
    uint32_t pid, key;
    int how; /* SHUTDOWN: 0 immediate, 1 graceful */
    /* CALL: run fn(worker, arg) in the worker's thread (admin.c: snapshots, console replies) */
    void (*fn)(struct px_worker *w, void *arg);
    void *arg;
} px_wmsg;

typedef struct px_listener {
    ev_io io;
    int fd;
    bool is_unix;
    struct px_worker *w;
} px_listener;

typedef struct px_cancel_conn px_cancel_conn;

typedef struct px_worker {
    int idx;
    pthread_t thread;
    struct ev_loop *loop;
    px_config *cfg; /* reference */
    px_listener listeners[8];
    int n_listeners;
    ev_async wake;
    ev_timer janitor;
    /* busy polling (worker.c): io_events counts I/O callbacks; the rest adapts the window */
    ev_check poll_check;
    ev_idle poll_idle;
    uint64_t io_events, io_events_seen;
    double poll_window;  /* how long to poll after the last event now (adapts) */
    double last_event;   /* loop time of the last I/O callback seen */
    double poll_started; /* loop time this stretch of polling without work began, or 0 */
    double poll_seconds; /* total time spent polling without work (a metric) */
    pthread_mutex_t inbox_lock;
    px_wmsg *inbox;
    /* scratch read buffer shared by all connections of this worker */
    uint8_t *scratch;
    uint32_t scratch_cap;
    /* free I/O buffers (pkt_buf bytes each) */
    uint8_t **free_bufs;
    int n_free_bufs, max_free_bufs;
    uint32_t buf_size;
    px_conn *runq_head, *runq_tail;
    px_conn *zombies; /* closed conns, freed at the end of the pass (zombie_next) */
    px_pool *pools;
    px_list login_clients; /* clients before login completes */
    atomic_int n_clients;  /* read by other workers' steering (steer.c) */
    int n_servers;
    px_intern intern;
    px_stmt_registry stmts;
    pktbuf tmp;                        /* scratch for building messages */
    struct px_shape_time *shape_times; /* pipeline_reads: recent run times by query shape */
    bool shutting_down;
    int shutdown_how;
    double shutdown_deadline;
    uint64_t next_id;
} px_worker;

/* shared by all workers */
typedef struct px_global {
    pthread_mutex_t lock; /* guards everything below that is not atomic */
    px_config *_Atomic cfg;
    int nworkers;
    px_worker *workers[PX_MAX_WORKERS];
    /* cancel keys: open addressing on pid */
    struct px_cancel_ent *cancel;
    uint32_t cancel_cap, cancel_count;
    px_shared_pool *shared_pools;
    px_shared_count *shared_counts;
    struct px_scram_keys *scram_keys;
    atomic_int n_clients;
    atomic_int n_workers_running;
} px_global;

extern px_global px_g;

/* steer.c: which worker the kernel gives new TCP connections (a BPF program on the
 * SO_REUSEPORT group); start once the listeners exist, update when a worker's client count
 * changes, stop before any listener closes */
void px_steer_start(const px_config *cfg);
void px_steer_update(const px_config *cfg); /* cfg: the caller's reference */
void px_steer_janitor(px_worker *w, double now);
void px_steer_stop(void);
int px_steer_target(void); /* -1: the kernel hashes */
/* is w the worker new connections are packed onto, light load (the one that may busy-poll)? */
bool px_steer_packed(const px_worker *w);

/* allocate / return an I/O buffer of w->buf_size bytes */
uint8_t *px_buf_get(px_worker *w);
void px_buf_put(px_worker *w, uint8_t *buf, uint32_t cap);
/* post a message to a worker's inbox (any thread) */
void px_worker_post(px_worker *w, px_wmsg *m);
/* process the run queue and free closed connections; end of every callback */
void px_worker_drain(px_worker *w);
/* start / stop / join all workers (main.c) */
bool px_workers_start(px_config *cfg, int n, char *err, size_t errlen);
void px_workers_broadcast(int kind, int how, px_config *cfg);
void px_workers_join(void);
/* the pool of (db, user, node) in this worker, created on first use; NULL if no such db */
px_pool *px_pool_get(px_worker *w, const char *dbname, const char *user, int node_idx);
/* p's (db, user) on node node_idx in the same worker (p itself for its own node); NULL when
 * the database has no such node */
px_pool *px_pool_sibling(px_pool *p, int node_idx);
/* shared counters */
px_shared_pool *px_shared_pool_get(const char *db, const char *user, int node);
px_shared_count *px_shared_count_get(const char *kind, const char *name);

/* ------------------------------------------------------------------------------------------ */
/* client.c                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* a new client socket from accept() */
void px_client_accept(px_worker *w, int fd, const struct sockaddr *sa, socklen_t salen,
                      bool is_unix, bool data_ready);
/* a server became ready for this waiting client */
void px_client_linked(px_client *c);
/* the pool finished learning the server's parameters: send the welcome */
void px_client_welcome(px_client *c);
/* send an ErrorResponse and close */
void px_client_fail(px_client *c, const char *sqlstate, const char *fmt, ...) TUSK_PRINTF(3, 4);
/* send a prepared ErrorResponse (bytes) and close */
void px_client_fail_raw(px_client *c, const uint8_t *msg, size_t len);
void px_client_close(px_client *c, const char *reason);
/* the linked server died: tell the client, resync or close it */
void px_client_server_lost(px_client *c, int outstanding, int ready, const uint8_t *err_msg,
                           size_t err_len);
/* auth_query finished (ok=false: no such user / failure) */
void px_client_authq_done(px_client *c, bool found, const char *passwd);
/* free a closed client (end of the loop pass) */
void px_client_free(px_client *c);
/* process a client's buffered input (run queue) */
void px_client_run(px_client *c);
/* janitor check of one client */
void px_client_check_timeouts(px_client *c, double now);
/* CancelRequest for this client */
void px_client_cancel(px_client *c);

/* ------------------------------------------------------------------------------------------ */
/* server.c                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* open a new server connection for the pool (a slot must be reserved); false if it failed
 * at once (the slot is released) */
bool px_server_connect(px_pool *p);
void px_server_close(px_server *s, const char *reason);
/* queue an expected response */
bool px_server_expect(px_server *s, uint8_t kind, uint8_t flags, px_stmt *stmt);
/* send the proxy's own query; responses are swallowed */
bool px_server_internal_query(px_server *s, int purpose, const char *sql);
/* SET the client's session parameters where the server's differ (swallowed) */
bool px_server_sync_vars(px_server *s, px_client *c);
/* send Parse/Bind/Execute/Sync of auth_query for user */
bool px_server_auth_query(px_server *s, const char *query, const char *user);
/* emit fake responses at the head of the queue into f (or the client directly) */
void px_server_emit_fakes(px_server *s, px_fwd *f);
void px_server_run(px_server *s);
/* free a closed server (end of the loop pass) */
void px_server_free(px_server *s);
void px_server_check_timeouts(px_server *s, double now);
/* no responses outstanding and the last status was idle */
static inline bool px_server_at_boundary(const px_server *s)
{
    return s->qlen == 0 && s->txn_status == 'I' && s->ready_seen;
}

/* ------------------------------------------------------------------------------------------ */
/* pool.c                                                                                      */
/* ------------------------------------------------------------------------------------------ */

/* pipeline_reads: send the client's read at msg (avail bytes buffered from there) behind a
 * busy server's read instead of waking or waiting for another server; true when linked */
bool px_pool_pipeline(px_pool *p, px_client *c, const uint8_t *msg, size_t avail);
/* pipeline_reads: the key under which a pool's query shape's run times are kept, for the read
 * at msg: a whole simple Query or a whole unnamed read batch up to its Sync (unrouted clients);
 * 0 when it may not be pipelined. And a read of that key that ran for `seconds` */
uint64_t px_pool_read_key(px_pool *p, const px_client *c, const uint8_t *msg, size_t avail);
void px_pool_shape_ran(px_worker *w, uint64_t key, double seconds);
/* pipeline_reads: the read now running on s is of a fast shape; link the first waiting
 * client behind it when its buffered message is a read that may be pipelined */
void px_pool_pipe_pull(px_server *s);
/* the server reached its EXPF_SWITCH entry (or answered all with a linked client whose read
 * is not out yet): the current client is done, the first of the line takes over */
void px_pool_pipe_switch(px_server *s);
/* a pipelined client leaves: unlinked, and its answers are dropped when its turn comes */
void px_pool_pipe_drop(px_server *s, px_client *c);
/* is a client's read linked behind c's on s (c current or pipelined there)? c's further
 * messages then wait until the server has passed on from c */
bool px_pool_pipe_behind(const px_server *s, const px_client *c);
/* a client needs a server: link now (true) or queue it (false: client state CL_WAITING) */
bool px_pool_acquire(px_pool *p, px_client *c);
/* the transaction on s finished or its client left: reuse, reset or close it */
void px_pool_release(px_server *s);
/* a server finished login or its own query and is ready for work */
void px_pool_server_ready(px_server *s);
/* a server connection is gone (already unlinked); wake or fail waiters */
void px_pool_server_gone(px_pool *p, const uint8_t *err, size_t errlen);
/* remove a client from whatever pool list it is in */
void px_pool_client_unlist(px_client *c);
/* move a client to the list of state in pool lp (NULL: the worker's login list) */
void px_pool_client_set_state(px_client *c, int state, px_pool *lp);
void px_pool_server_set_state(px_server *s, int state);
/* clients wait for the pool's server parameters: get a server logged in */
void px_pool_need_welcome(px_pool *p);
/* publish the pool's server parameters to the other workers */
void px_pool_share_welcome(px_pool *p);
/* the pool knows its server parameters: welcome all waiting clients */
void px_pool_welcome_all(px_pool *p);
/* a server connection closed: give its slot back */
void px_pool_slot_release(px_pool *p);
/* open servers for waiting clients now (another worker freed a slot) */
void px_pool_kick(px_pool *p);
/* janitor: timeouts, min_pool_size, rebalancing between workers */
void px_pool_janitor(px_pool *p, double now);
/* re-resolve settings after a reload */
void px_pool_apply_config(px_pool *p, px_config *cfg);
void px_pool_free(px_pool *p);
/* the effective limits */
int px_pool_limit(const px_pool *p);

/* ------------------------------------------------------------------------------------------ */
/* route.c: the one place that picks a node for a transaction                                  */
/* ------------------------------------------------------------------------------------------ */

/*
 * Routing state of one [databases] entry, process-wide, kept across reloads (looked up by
 * name; a reload that changes an entry's nodes replaces its topology). Written by route.c
 * and the topology monitors, read by the admin console, /metrics and the status page.
 */
typedef struct px_route_stats {
    atomic_uint_fast64_t reads_replica;           /* replica-safe reads served by a replica */
    atomic_uint_fast64_t reads_primary_floor;     /* no replica had replayed the client's floor */
    atomic_uint_fast64_t reads_primary_unhealthy; /* no healthy replica under the lag limits */
    atomic_uint_fast64_t reads_primary_override;  /* tusk:primary comment / tusk.route */
    atomic_uint_fast64_t reads_primary_policy;    /* primary_reads = on: the primary took it */
    atomic_uint_fast64_t reads_primary_pinned;    /* session pinned (temp table, LISTEN, ...) */
    atomic_uint_fast64_t writes;                  /* classifier said write / not replica-safe */
    atomic_uint_fast64_t retries_25006;           /* replica said read_only_sql_transaction */
    atomic_uint_fast64_t ryw_waits;               /* reads that waited for a replica to catch up */
    atomic_uint_fast64_t ryw_wait_us;             /* total time of those waits */
    atomic_uint_fast64_t ryw_wait_timeouts;       /* waits that fell back to the primary */
    atomic_uint_fast64_t lsn_captures;            /* commit LSNs fetched after writes */
} px_route_stats;

typedef struct px_route_db {
    struct px_route_db *next;
    char *name;            /* [databases] entry name */
    router_topology *topo; /* node 0 = configured primary, then replicas, as in px_db.nodes */
    px_route_stats stats;
} px_route_db;

/* the routing state of a database entry, NULL if unknown (call from any thread) */
px_route_db *px_route_db_find(const char *name);
/* iterate all: first NULL gives the head (under no lock: entries are never freed while the
 * process runs; a replaced topology is kept until exit) */
px_route_db *px_route_db_next(px_route_db *prev);

/* node index (0 = configured primary) for a client's next transaction, given its first message;
 * -1 = the client waits for a replica to catch up (its message stays buffered; route.c
 * reschedules it) */
int proxy_route_pick(const px_client *c, const uint8_t *msg, size_t len);
/* a transaction finished on s (ReadyForQuery 'I', nothing outstanding), before s goes back to
 * the pool: true when s may be released now, false when the hook queued its own query (s is
 * released when that query completes). The commit-LSN capture goes here. */
bool proxy_txn_finished(px_server *s);
/* pipeline_reads: may c's read go behind another client's on s, or another's behind c's? */
bool proxy_route_pipe_ok(const px_client *c, const px_server *s);
/* a routed client's read sent behind another's on a server now lost: put it back to run on
 * the primary; false when it cannot be (the caller fails it) */
bool proxy_route_requeue_next(px_client *c);
/* (re)build the routing state of every [databases] entry: start-up and reload (main thread) */
void px_route_configure(px_config *cfg);
/* a client message the router looks at ('Q', 'P', 'B', whole): classify it, track session
 * state; true when the proxy answered it itself (SET tusk.*) and it must not be forwarded
 * (a Parse may instead emit a failing Parse through f, see route.c ext_reject) */
bool proxy_route_message(px_client *c, px_fwd *f, const uint8_t *msg, size_t len);
/* may this statement text wait behind another client's on a server (pipeline_reads)? Its
 * shape (router_class.fingerprint) when it may, else 0 */
uint64_t proxy_route_pipeline_shape(const char *q, size_t qlen);
/* does the client have SET tusk.* statements, portals or a batch the proxy answers itself
 * (extended protocol)? Then every message goes through proxy_route_ext first */
bool proxy_route_ext_active(const px_client *c);
/* a client message (len of its total bytes here) while proxy_route_ext_active: true when the
 * proxy answered or dropped it */
bool proxy_route_ext(px_client *c, px_fwd *f, const uint8_t *msg, size_t len, size_t total);
/* the client is being freed */
void proxy_route_client_free(px_client *c);
/* s died while running a client's autocommit Query on a replica before anything of the answer
 * reached the client: true when the Query was put back into the client's input for the
 * primary (the client is then not told about the loss) */
bool proxy_route_requeue(px_server *s);
/* the text hash of the statement the client's last Query or Bind named (px_exp.text_hash) */
uint64_t proxy_route_text_hash(const px_client *c);
/* a client message went to its server as the client sent it (take of total bytes), or one
 * was answered by the proxy instead: what a re-run on the primary would send (route.c) */
void proxy_route_sent(px_client *c, const uint8_t *msg, size_t take, size_t total);
void proxy_route_sent_none(px_client *c);
/* the replica pool p cannot log in: true when c (waiting for p) was sent back to be routed to
 * the primary instead of getting the error */
bool proxy_route_pool_failed(px_client *c, px_pool *p);
/* c was just linked to s (transaction mode): replay the client's other SETs where s differs */
void proxy_route_sync_sets(px_server *s, px_client *c);
/* the ReadyForQuery 'I' ending a transaction on s: true to hold it back until the commit LSN
 * is known (proxy_txn_finished then queries it) */
bool proxy_route_hold_ready(px_server *s);
/* INTQ_LSN: its DataRow, and its end (sends the held ReadyForQuery, releases s) */
void proxy_route_lsn_row(px_server *s, const uint8_t *body, size_t len);
void proxy_route_lsn_done(px_server *s, bool failed);
/* an ErrorResponse for a client's statement (25006 on a replica: remember it as a write) */
bool proxy_route_server_error(px_server *s, const uint8_t *body, size_t len);
/* a response to forward on s: true when route.c keeps it (a RowDescription held while a
 * replica may still refuse the statement with 25006); otherwise it first sends what it held */
bool proxy_route_forward(px_server *s, px_fwd *f, uint8_t type, const uint8_t *msg, size_t len);

/* ------------------------------------------------------------------------------------------ */
/* cancel.c                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* give c a unique (pid, key) and register it */
void px_cancel_register(px_client *c);
void px_cancel_unregister(px_client *c);
/* a CancelRequest arrived (any worker): route it to the owner */
void px_cancel_request(uint32_t pid, uint32_t key);
/* the owning worker handles it (checks the client is still there) */
void px_cancel_deliver(px_worker *w, px_wmsg *m);
/* open a connection to a server and send its real cancel key */
void px_cancel_send(px_worker *w, const px_node *node, uint32_t pid, uint32_t key);

/* ------------------------------------------------------------------------------------------ */
/* tls.c                                                                                       */
/* ------------------------------------------------------------------------------------------ */

SSL_CTX *px_tls_server_ctx(const px_config *cfg, char *err, size_t errlen);
SSL_CTX *px_tls_client_ctx(const px_config *cfg, char *err, size_t errlen);
/* drive a handshake: 1 done, 0 in progress (watchers set), -1 failed */
int px_tls_handshake(px_conn *c);

/* SCRAM keys learnt from clients, to log in to servers without the password */
bool px_scram_keys_get(const char *user, uint8_t client_key[32], uint8_t server_key[32]);
void px_scram_keys_put(const char *user, const uint8_t client_key[32],
                       const uint8_t server_key[32]);
/* password hashes learnt through auth_query, for server logins of that user */
void px_user_secret_put(const char *user, const char *secret);
bool px_user_secret_get(const char *user, char *buf, size_t cap);

/* monotonic seconds (cheap: the loop's cached time) */
static inline double px_now(px_worker *w)
{
    return ev_now(w->loop);
}

#endif
