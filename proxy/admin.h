/*
 * proxy: internal interface of the operators' view (admin console, HTTP endpoint, metrics,
 * status page). Shared by admin.c, adminsnap.c, admin_http.c, metrics.c and statuspage.c.
 *
 * Threading: one admin thread (admin_http.c) with its own libev loop runs the HTTP endpoint,
 * samples lag and rates each second and executes console commands. Worker-owned figures (pools,
 * clients, servers, px_stats) are never read across threads: the admin thread posts a
 * WMSG_CALL to every worker, each worker copies its own figures into a snapshot part in its
 * thread, and the admin thread waits for the parts (adminsnap.c). Routing figures are atomics
 * (router_node, px_route_stats) and are read directly.
 */
#ifndef TUSK_PROXY_ADMIN_H
#define TUSK_PROXY_ADMIN_H

#include "proxy/internal.h"

#define ADM_LAG_HISTORY 900              /* seconds of lag kept per node for the status page */
#define ADM_HIST_BUCKETS PX_HIST_BUCKETS /* latency histogram buckets (+Inf implied) */

/* upper bounds of the latency histogram buckets, seconds */
extern const double adm_hist_bounds[ADM_HIST_BUCKETS];

/* one pool (database, user, node) of one worker, or their sum */
typedef struct adm_pool_row {
    char db[64], user[64];
    int node, mode;
    int cl_active, cl_waiting, cl_idle;
    int sv_active, sv_idle, sv_used, sv_login;
    double maxwait; /* seconds the oldest waiting client has waited */
    px_stats st;
} adm_pool_row;

/* one client or server connection */
typedef struct adm_conn_row {
    char type; /* 'C' client, 'S' server */
    char user[64], db[64], state[16], addr[64], local_addr[64], app[64];
    int port, local_port, node, remote_pid, prepared;
    bool tls, admin;
    double connect_time, request_time, wait; /* epoch seconds; wait in seconds */
    uint64_t ptr, link;
    bool close_needed; /* server: RECONNECT / RELOAD marked it to close when released */
    /* SHOW SOCKETS: input buffered [0, rlen) of rcap, output [wpos, wlen) of wcap, bytes of a
     * large message still streaming through */
    uint32_t rlen, rcap, wpos, wlen, wcap, pass_left;
} adm_conn_row;

/* what the workers report */
typedef struct adm_snap {
    adm_pool_row *pools;
    int n_pools, cap_pools;
    adm_conn_row *conns;
    int n_conns, cap_conns;
    int workers_answered, workers;
    int login_clients, n_clients, n_servers, free_bufs;
    uint64_t cpu_us;  /* the answering worker thread's CPU time (one worker's part) */
    uint64_t poll_us; /* ... and its time spent busy polling without work */
    /* per worker (index = worker): its clients; its thread's CPU time, user and system; the
     * part of it spent busy polling */
    int worker_clients[PX_MAX_WORKERS];
    uint64_t worker_cpu_us[PX_MAX_WORKERS];
    uint64_t worker_poll_us[PX_MAX_WORKERS];
} adm_snap;

/* collect every worker's figures (conns too when with_conns); waits at most timeout_s. Must
 * not run in a worker thread. Returns false when some worker did not answer in time (the
 * snapshot then holds the workers that did). */
bool adm_collect(adm_snap *out, bool with_conns, double timeout_s);
void adm_snap_free(adm_snap *s);
/* to += x for the SHOW STATS counters (transactions, queries, bytes, times) */
void adm_stats_add(px_stats *to, const px_stats *x);
/* sum the pools over workers and nodes by (db, user) (by_node: keep nodes apart) */
void adm_snap_merge_pools(const adm_snap *s, bool by_node, adm_pool_row **out, int *n);

/* ---- admin thread (admin_http.c) ---- */

/* start the admin thread (HTTP endpoint when admin_listen is set); false with err */
bool px_admin_start(px_config *cfg, char *err, size_t errlen);
/* stop and join the admin thread (before the workers are freed) */
void px_admin_stop(void);
/* a console command from a worker: run it in the admin thread; the reply comes back as a
 * WMSG_CALL to the client's worker */
void px_admin_submit(px_worker *w, px_client *c, const char *sql);

/* per-node history kept by the admin thread's sampler */
typedef struct adm_node_hist {
    struct adm_node_hist *next;
    px_route_db *d;
    router_node *n;
    int idx;
    float lag_s[ADM_LAG_HISTORY]; /* -1 = unknown / down */
    int head, count;              /* next slot, samples stored */
    uint64_t last_reads;
    double reads_per_s;
} adm_node_hist;

/* lock the sampler's history list (the HTTP handlers read it in the same thread; the console
 * commands too, so the lock only guards against the sampler of a future second thread) */
adm_node_hist *adm_history(void);
/* per-second rates and per-transaction / per-query times of a database over the last minute */
bool adm_db_averages(const char *db, px_stats *avg);
/* reads_per_s of a node (0 when unknown) */
double adm_reads_per_s(const router_node *n);

/* ---- console (admin.c) ---- */

/* the client logged in to the admin database: is the user allowed (sets c->admin)? */
bool px_admin_login_allowed(px_client *c, const px_config *cfg);
/* send the welcome of the admin console */
void px_admin_welcome(px_client *c);
/* process the admin client's messages; returns the bytes consumed */
size_t px_admin_pass(px_client *c, const uint8_t *data, size_t len);
/* run one console command (admin thread); the answer (RowDescription/DataRow/CommandComplete
 * or ErrorResponse, then ReadyForQuery) goes into out. False when it ends in a WAIT_CLOSE
 * that has to wait: wait_db names the database ("" all) until adm_servers_closing(wait_db)
 * is 0, then adm_console_finish_wait(out) ends the answer */
bool adm_console_exec(const char *sql, int level, pktbuf *out, char *wait_db, size_t cap);
int adm_servers_closing(const char *db);
void adm_console_finish_wait(pktbuf *out);
/* PAUSE / DISABLE state of a database (any thread) */
bool px_admin_paused(const char *db);
bool px_admin_disabled(const char *db);
/* SET overrides applied to every config loaded after them (main.c reload) */
void px_admin_apply_overrides(px_config *cfg);

/* ---- metrics.c / statuspage.c ---- */

/* Prometheus text exposition of everything; false if out of memory */
bool adm_metrics_text(pktbuf *out);
/* the HTML status page */
bool adm_status_page(pktbuf *out);
/* is the primary of every database reachable (for /health)? */
bool adm_primaries_ok(void);

#endif
