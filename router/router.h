/*
 * router: interface of the folder (see router/README.md). Today it holds the query
 * classifier: from the text of a query (simple protocol Query, or extended protocol Parse),
 * decide whether a hot standby may run it, and what it does to the session and to the
 * transaction state, so that the proxy can route it. Lag tracking and topology land here later.
 */
#ifndef TUSK_ROUTER_H
#define TUSK_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>

/* Where a query asks to be sent, by a leading comment or by SET tusk.route. */
typedef enum {
    ROUTER_OVERRIDE_NONE,    /* no override: route by classification ("auto") */
    ROUTER_OVERRIDE_PRIMARY, /* always the primary */
    ROUTER_OVERRIDE_REPLICA  /* a replica, even if the classifier would say primary */
} router_override;

/* A session setting a query changes, when it changes it. */
typedef enum {
    ROUTER_SETTING_UNCHANGED, /* the query does not touch it */
    ROUTER_SETTING_ON,        /* the query turns it on */
    ROUTER_SETTING_OFF        /* the query turns it off (or resets it to the server default) */
} router_setting;

/* What the query sets in tusk's own namespace (SET tusk.*): intercepted, never sent to PG. */
typedef enum {
    ROUTER_TUSK_NONE,    /* no tusk.* setting */
    ROUTER_TUSK_ROUTE,   /* SET tusk.route = primary|replica|auto (RESET/DEFAULT = auto) */
    ROUTER_TUSK_MIN_LSN, /* SET tusk.min_lsn = 'X/Y' (RESET/DEFAULT = 0, which raises nothing) */
    ROUTER_TUSK_BAD      /* a malformed tusk.* setting: answer with an error, see tusk_error */
} router_tusk_set;

/* Flags for router_classify_ex: what the proxy knows about the client's session. */
enum {
    /* The client's standard_conforming_strings is off: backslashes escape in '...' strings. */
    ROUTER_FLAG_SCS_OFF = 1u << 0,
    /* The client's default_transaction_read_only is on: a BEGIN without READ WRITE opens a
     * read-only transaction. */
    ROUTER_FLAG_SESSION_READ_ONLY = 1u << 1,
    /* The client's client_encoding is SJIS, BIG5, GBK, UHC or GB18030, whose two-byte
     * characters may end in the byte of '\'. The server converts before it parses, so such a
     * byte escapes nothing there; in an E'' string (or any string with the SCS flag) the
     * classifier then cannot tell where the string ends and says uncertain. */
    ROUTER_FLAG_CLIENT_MB_BACKSLASH = 1u << 2,
    /* Compute router_class.fingerprint (about 30 ns more for a pgbench -S query). */
    ROUTER_FLAG_FINGERPRINT = 1u << 3,
};

/*
 * The verdict on one query string (all of its top-level statements together). Every field
 * is written by router_classify; booleans default to false.
 */
typedef struct router_class {
    /* Every statement may run on a hot standby: SELECT / VALUES / TABLE / SHOW / EXPLAIN
     * (without ANALYZE) of such a read, with no locking clause (FOR UPDATE, FOR SHARE, FOR NO
     * KEY UPDATE, FOR KEY SHARE), no SELECT ... INTO, no data-modifying WITH, no call of an
     * unsafe function; or a SET / RESET a standby accepts (session-level ones also set
     * sets_session_state), or transaction control that cannot start a read-write transaction
     * (BEGIN ... READ ONLY, COMMIT, ROLLBACK, SAVEPOINT, ...). EXPLAIN of anything else
     * (even a plain EXPLAIN INSERT, which writes nothing) is not, nor are COPY, cursors and
     * EXECUTE. An empty query (only comments, or nothing) is replica-safe. False when
     * uncertain. */
    bool replica_safe;
    /* A statement opens a transaction block: BEGIN / START TRANSACTION (usually the first). */
    bool txn_begin;
    /* The transaction is read only: BEGIN / START TRANSACTION ... READ ONLY (or without READ
     * WRITE when the session default is read only), SET TRANSACTION READ ONLY,
     * SET transaction_read_only = on. */
    bool txn_read_only;
    /* A statement names READ WRITE for its transaction (BEGIN / START / SET TRANSACTION). */
    bool txn_read_write;
    /* A statement ends a transaction block: COMMIT / END / ROLLBACK / ABORT (also AND CHAIN),
     * PREPARE TRANSACTION. Not ROLLBACK TO SAVEPOINT, not COMMIT / ROLLBACK PREPARED. */
    bool txn_end;
    /* A session-level SET / RESET that can be replayed on another server (not SET LOCAL,
     * not SET TRANSACTION, not tusk.*): the proxy tracks it. set_name names the first one. */
    bool sets_session_state;
    /* Normalised (lower-case) name of the first session-level SET / RESET: "search_path",
     * "timezone" (SET TIME ZONE), "client_encoding" (SET NAMES), "role",
     * "session_authorization", "xmloption", "session_characteristics" (SET SESSION
     * CHARACTERISTICS AS TRANSACTION ...); "" for RESET ALL or a name over 63 bytes. */
    char set_name[64];
    /* RESET ALL or DISCARD ALL: every tracked setting goes back to its default. */
    bool reset_all;
    /* The session default for read-only transactions changes: SET [SESSION]
     * default_transaction_read_only, SET SESSION CHARACTERISTICS AS TRANSACTION READ
     * ONLY|WRITE, RESET default_transaction_read_only, RESET ALL, DISCARD ALL (last one wins). */
    router_setting default_read_only;
    /* Something that cannot be replayed on another server: LISTEN, SQL PREPARE, CREATE
     * TEMP / TEMPORARY (or in schema pg_temp), SELECT ... INTO TEMP, session-level advisory
     * locks (pg_advisory_lock, pg_try_advisory_lock and their _shared forms), DECLARE ... WITH
     * HOLD, LOAD, set_config() (its is_local argument is not looked at), a session default
     * isolation of SERIALIZABLE (a hot standby refuses every read then), or a query longer
     * than the scan limit (see truncated). The proxy keeps the client on the primary. */
    bool pins_session;
    /* Undoes pinning state: UNLISTEN *, DEALLOCATE [PREPARE] ALL, DISCARD ALL / TEMP, CLOSE
     * ALL, pg_advisory_unlock_all(). The proxy decides whether the client is free again. */
    bool unpins_session;
    /* The kinds of state behind pins_session / unpins_session (ROUTER_PIN_* bits), so that
     * undoing one kind (UNLISTEN *) leaves a client pinned by another (a temp table). */
    uint16_t pins, unpins;
    /* A comment whose whole text is tusk:primary or tusk:replica (block or -- comment,
     * any case, spaces allowed) before the first token of the query. */
    router_override override;
    /* Number of non-empty top-level statements. */
    int statements;
    /* SET / RESET of tusk.route or tusk.min_lsn: intercepted by the proxy, never sent to
     * PostgreSQL. Valid only as the single statement of the query (else ROUTER_TUSK_BAD). */
    router_tusk_set tusk_set;
    router_override tusk_route; /* ROUTER_TUSK_ROUTE: NONE means auto */
    uint64_t tusk_min_lsn;      /* ROUTER_TUSK_MIN_LSN: the LSN */
    const char *tusk_error;     /* ROUTER_TUSK_BAD: static message for an ErrorResponse */
    /* The classifier could not tell (unterminated string, comment or quoted identifier,
     * unbalanced parentheses, ';' inside parentheses, truncated): replica_safe is false. */
    bool uncertain;
    /* The query was longer than the scan limit; only its start was looked at. Uncertain and
     * pins_session are set too, as a pinning statement may hide in the part not read. */
    bool truncated;
    /* Hash of the query's shape: its tokens with the values of strings and numbers left out,
     * so `... WHERE aid = 1` and `... WHERE aid = 2` share it (as pg_stat_statements' queryid
     * does, but from the text alone: case and quoting of names count). Never 0. The proxy keeps
     * how long each shape runs (pipeline_reads). Only with ROUTER_FLAG_FINGERPRINT, else 0. */
    uint64_t fingerprint;
} router_class;

/* Kinds of session state that pin a client to the primary (router_class.pins / unpins). */
enum {
    ROUTER_PIN_LISTEN = 1u << 0,       /* LISTEN; undone by UNLISTEN * */
    ROUTER_PIN_PREPARE = 1u << 1,      /* SQL PREPARE; DEALLOCATE ALL */
    ROUTER_PIN_TEMP = 1u << 2,         /* temp tables; DISCARD TEMP */
    ROUTER_PIN_ADVISORY = 1u << 3,     /* session advisory locks; pg_advisory_unlock_all() */
    ROUTER_PIN_CURSOR = 1u << 4,       /* WITH HOLD cursors; CLOSE ALL */
    ROUTER_PIN_LOAD = 1u << 5,         /* LOAD: nothing undoes it */
    ROUTER_PIN_SETTING = 1u << 6,      /* set_config(); RESET ALL */
    ROUTER_PIN_SERIALIZABLE = 1u << 7, /* serializable default; RESET ALL, another level */
    ROUTER_PIN_UNKNOWN = 1u << 8,      /* a query longer than the scan limit */
    /* DISCARD ALL undoes every kind but LOAD */
    ROUTER_PIN_DISCARD_ALL = 0x1ffu & ~(1u << 5),
};

/* Holds the unsafe-function set (defaults + config) and the scan limit; read-only after
 * creation, so one instance may be shared by every worker thread. */
typedef struct router_classifier router_classifier;

/* Builds a classifier. extra_unsafe_functions: comma-separated function names (may be NULL
 * or empty) added to the defaults; "name*" matches a prefix, a schema prefix ("s.f") and
 * double quotes are ignored, case does not matter. Returns NULL (and logs why) on a bad list. */
router_classifier *router_classifier_new(const char *extra_unsafe_functions);

/* Frees a classifier (NULL is fine). */
void router_classifier_free(router_classifier *c);

/* Default scan limit: bytes of a query the classifier looks at (see router_class.truncated). */
#define ROUTER_DEFAULT_SCAN_LIMIT ((size_t)8 << 20)

/* Changes the scan limit (at least 1 byte); for tests, and for deployments with huge queries. */
void router_classifier_set_scan_limit(router_classifier *c, size_t bytes);

/* Tells whether name (a bare function name, any case) is on the classifier's unsafe list. */
bool router_function_is_unsafe(const router_classifier *c, const char *name, size_t len);

/*
 * Classifies one query string of len bytes (a NUL byte ends it early, as it does for the
 * server). Hot path: one pass over the text, no heap allocation, no locks, a few hundred
 * bytes of stack. Measured on the 2-core test machine: ~105 ns for pgbench's SELECT,
 * ~14 ns per token in general (bench_classify, router/README.md).
 */
void router_classify(const router_classifier *c, const char *sql, size_t len, router_class *out);

/* router_classify with ROUTER_FLAG_* describing the client's session. */
void router_classify_ex(const router_classifier *c, const char *sql, size_t len, unsigned flags,
                        router_class *out);

/* Parses an LSN in PostgreSQL's text form "16/B374D848" (1-8 hex digits on each side). */
bool router_parse_lsn(const char *text, uint64_t *lsn);

/* Formats an LSN as PostgreSQL does ("%X/%X"); out receives a NUL-terminated string. */
void router_format_lsn(uint64_t lsn, char out[32]);

/* ---- topology.c: nodes of a database, their roles, health and replication lag ---- */

#define ROUTER_MAX_NODES 16
#define ROUTER_LSN_RING 9000 /* primary LSN samples: 15 minutes at 100 ms */

typedef enum { ROUTER_ROLE_UNKNOWN = 0, ROUTER_ROLE_PRIMARY, ROUTER_ROLE_REPLICA } router_role;
typedef enum { ROUTER_NODE_UP = 0, ROUTER_NODE_DOWN, ROUTER_NODE_LAGGING } router_node_state;

/* One PostgreSQL server of a database. Written by its monitor thread, read lock-free by the
 * proxy's workers: every field a worker reads is atomic. */
typedef struct router_node {
    char host[256];
    int port;
    int weight;              /* relative share of reads, default 1 */
    bool configured_primary; /* first node of the entry */
    _Atomic int role;        /* router_role, from pg_is_in_recovery() */
    _Atomic int state;       /* router_node_state */
    _Atomic uint64_t lsn;    /* replay LSN (replica) or current WAL LSN (primary) */
    _Atomic uint64_t lag_bytes;
    _Atomic uint64_t lag_ms;
    _Atomic int64_t banned_until_ms; /* monotonic ms; 0 = not banned */
    _Atomic int64_t last_ok_ms;      /* last successful check */
    _Atomic uint64_t checks_failed;
    _Atomic int outstanding; /* queries running on it through the proxy */
    _Atomic uint64_t reads_routed;
    _Atomic int admin_banned; /* BAN from the console */
} router_node;

typedef struct router_topology router_topology;

typedef struct router_topology_config {
    const char
        *conninfo_extra; /* "user=... password=... dbname=..." for the monitor's connections */
    int lag_poll_ms;     /* default 100 */
    int64_t max_replica_lag_ms; /* 0 = no limit */
    int64_t max_replica_lag_bytes;
    int ban_ms; /* first back-off after a failure, doubling up to 30 s */
    int connect_timeout_s;
} router_topology_config;

/* create the topology of one database; nodes[0] is the configured primary */
router_topology *router_topology_new(const router_topology_config *cfg, int n_nodes,
                                     const char *const *hosts, const int *ports,
                                     const int *weights);
/* start one monitor thread per node; notify() is called (from monitor threads) whenever a
 * node's LSN or state changes, so waiting clients can be re-checked */
int router_topology_start(router_topology *topo, void (*notify)(void *arg), void *arg);
void router_topology_stop(router_topology *topo);
void router_topology_free(router_topology *topo);
int router_topology_count(const router_topology *topo);
router_node *router_topology_node(router_topology *topo, int i);
/* index of the node that is primary now (follows promotions); -1 if none is reachable */
int router_topology_primary(const router_topology *topo);
/* a replica that can serve a read with replay LSN >= floor_lsn: healthy, not banned, under the
 * lag limits; among those the fewest outstanding queries per weight. -1 if none. */
int router_topology_pick_replica(router_topology *topo, uint64_t floor_lsn);
/* ask the monitors to poll replicas now and keep polling fast until floor_lsn is replayed or
 * the deadline (monotonic ms) passes: used while a client waits for a replica to catch up */
void router_topology_want_lsn(router_topology *topo, uint64_t floor_lsn, int64_t deadline_ms);
/* current primary's last known WAL LSN */
uint64_t router_topology_primary_lsn(const router_topology *topo);
/* monotonic milliseconds, the clock of banned_until_ms and deadlines */
int64_t router_now_ms(void);

#endif
