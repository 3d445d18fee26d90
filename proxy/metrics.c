/*
 * /metrics: everything the operators' view knows, in the Prometheus text exposition format
 * (version 0.0.4). Pool figures come from a worker snapshot (adminsnap.c), routing and node
 * figures from the atomics of px_route_db / router_node. Every family is written whole (HELP,
 * TYPE, then its samples) so the output passes a strict parser.
 */
#include "proxy/admin.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void out(pktbuf *b, const char *fmt, ...) TUSK_PRINTF(2, 3);
static void out(pktbuf *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    pkt_put_bytes(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* a label value with \ " and newline escaped */
static const char *esc(const char *s, char *buf, size_t cap)
{
    size_t o = 0;
    for (; *s && o + 3 < cap; s++) {
        if (*s == '\\' || *s == '"') {
            buf[o++] = '\\';
            buf[o++] = *s;
        } else if (*s == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else {
            buf[o++] = *s;
        }
    }
    buf[o] = '\0';
    return buf;
}

static void family(pktbuf *b, const char *name, const char *type, const char *help)
{
    out(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

typedef struct pool_labels {
    char s[512];
} pool_labels;

static void labels_pool(pool_labels *l, const adm_pool_row *r, bool node)
{
    char d[160], u[160];
    if (node)
        snprintf(l->s, sizeof(l->s), "database=\"%s\",user=\"%s\",node=\"%d\"",
                 esc(r->db, d, sizeof(d)), esc(r->user, u, sizeof(u)), r->node);
    else
        snprintf(l->s, sizeof(l->s), "database=\"%s\",user=\"%s\"", esc(r->db, d, sizeof(d)),
                 esc(r->user, u, sizeof(u)));
}

static void histogram(pktbuf *b, const char *name, const adm_pool_row *rows, int n, bool xact)
{
    for (int i = 0; i < n; i++) {
        pool_labels l;
        labels_pool(&l, &rows[i], true);
        const uint64_t *h = xact ? rows[i].st.xact_hist : rows[i].st.query_hist;
        uint64_t cum = 0;
        for (int k = 0; k < PX_HIST_BUCKETS; k++) {
            cum += h[k];
            out(b, "%s_bucket{%s,le=\"%g\"} %llu\n", name, l.s, adm_hist_bounds[k],
                (unsigned long long)cum);
        }
        cum += h[PX_HIST_BUCKETS];
        out(b, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, l.s, (unsigned long long)cum);
        double sum = (double)(xact ? rows[i].st.xact_time_us : rows[i].st.query_time_us) / 1e6;
        out(b, "%s_sum{%s} %.6f\n", name, l.s, sum);
        out(b, "%s_count{%s} %llu\n", name, l.s, (unsigned long long)cum);
    }
}

/* one counter family over the pools (by node) */
#define POOL_COUNTER(name, help, expr)                                                             \
    do {                                                                                           \
        family(b, name, "counter", help);                                                          \
        for (int i = 0; i < nn; i++) {                                                             \
            const adm_pool_row *r = &bynode[i];                                                    \
            pool_labels l;                                                                         \
            labels_pool(&l, r, true);                                                              \
            out(b, "%s{%s} %.15g\n", name, l.s, (double)(expr));                                   \
        }                                                                                          \
    } while (0)

static void node_metrics(pktbuf *b)
{
    static const struct {
        const char *name, *type, *help;
    } fams[] = {
        {"tusk_node_up", "gauge", "1 when the node answers its monitor, else 0"},
        {"tusk_node_info", "gauge", "Role and state of a node (value always 1)"},
        {"tusk_node_is_primary", "gauge", "1 when the node is the primary now"},
        {"tusk_node_banned", "gauge", "1 when the node is banned (health back-off or BAN)"},
        {"tusk_replica_lag_bytes", "gauge", "WAL bytes the node is behind the primary"},
        {"tusk_replica_lag_seconds", "gauge", "Replay lag of the node in seconds"},
        {"tusk_node_outstanding_queries", "gauge", "Queries running on the node via the proxy"},
        {"tusk_node_reads_routed_total", "counter", "Reads the router sent to the node"},
        {"tusk_node_checks_failed_total", "counter", "Failed health checks of the node"},
    };
    for (size_t f = 0; f < sizeof(fams) / sizeof(fams[0]); f++) {
        family(b, fams[f].name, fams[f].type, fams[f].help);
        for (px_route_db *d = px_route_db_next(NULL); d; d = px_route_db_next(d)) {
            router_topology *t = d->topo;
            if (!t)
                continue;
            int n = router_topology_count(t);
            for (int i = 0; i < n; i++) {
                router_node *nd = router_topology_node(t, i);
                char db[160], host[300];
                char hp[300];
                snprintf(hp, sizeof(hp), "%s:%d", nd->host, nd->port);
                char l[600];
                snprintf(l, sizeof(l), "database=\"%s\",node=\"%d\",host=\"%s\"",
                         esc(d->name, db, sizeof(db)), i, esc(hp, host, sizeof(host)));
                int st = atomic_load(&nd->state), role = atomic_load(&nd->role);
                bool banned = atomic_load(&nd->admin_banned) ||
                              atomic_load(&nd->banned_until_ms) > router_now_ms();
                switch (f) {
                case 0:
                    out(b, "%s{%s} %d\n", fams[f].name, l, st != ROUTER_NODE_DOWN);
                    break;
                case 1:
                    out(b, "%s{%s,role=\"%s\",state=\"%s\"} 1\n", fams[f].name, l,
                        role == ROUTER_ROLE_PRIMARY   ? "primary"
                        : role == ROUTER_ROLE_REPLICA ? "replica"
                                                      : "unknown",
                        st == ROUTER_NODE_DOWN      ? "down"
                        : st == ROUTER_NODE_LAGGING ? "lagging"
                                                    : "up");
                    break;
                case 2:
                    out(b, "%s{%s} %d\n", fams[f].name, l, role == ROUTER_ROLE_PRIMARY);
                    break;
                case 3:
                    out(b, "%s{%s} %d\n", fams[f].name, l, banned);
                    break;
                case 4:
                    out(b, "%s{%s} %llu\n", fams[f].name, l,
                        (unsigned long long)atomic_load(&nd->lag_bytes));
                    break;
                case 5:
                    out(b, "%s{%s} %.3f\n", fams[f].name, l,
                        (double)atomic_load(&nd->lag_ms) / 1000.0);
                    break;
                case 6:
                    out(b, "%s{%s} %d\n", fams[f].name, l, atomic_load(&nd->outstanding));
                    break;
                case 7:
                    out(b, "%s{%s} %llu\n", fams[f].name, l,
                        (unsigned long long)atomic_load(&nd->reads_routed));
                    break;
                default:
                    out(b, "%s{%s} %llu\n", fams[f].name, l,
                        (unsigned long long)atomic_load(&nd->checks_failed));
                    break;
                }
            }
        }
    }
}

static void routing_metrics(pktbuf *b)
{
    char db[160];
    family(b, "tusk_routed_reads_total", "counter",
           "Replica-safe reads by where they ran and why (route, reason)");
    for (px_route_db *d = px_route_db_next(NULL); d; d = px_route_db_next(d)) {
        px_route_stats *s = &d->stats;
        esc(d->name, db, sizeof(db));
        struct {
            const char *route, *reason;
            atomic_uint_fast64_t *v;
        } r[] = {{"replica", "replica", &s->reads_replica},
                 {"primary", "floor_not_reached", &s->reads_primary_floor},
                 {"primary", "no_healthy_replica", &s->reads_primary_unhealthy},
                 {"primary", "override", &s->reads_primary_override},
                 {"primary", "primary_reads_policy", &s->reads_primary_policy},
                 {"primary", "session_pinned", &s->reads_primary_pinned}};
        for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++)
            out(b, "tusk_routed_reads_total{database=\"%s\",route=\"%s\",reason=\"%s\"} %llu\n", db,
                r[i].route, r[i].reason, (unsigned long long)atomic_load(r[i].v));
    }
    static const struct {
        const char *name, *help;
        size_t off;
        double scale;
    } fams[] = {
        {"tusk_routed_writes_total", "Queries the classifier sent to the primary as writes",
         offsetof(px_route_stats, writes), 1},
        {"tusk_read_only_retries_total",
         "Reads retried on the primary after a replica said 25006 read_only_sql_transaction",
         offsetof(px_route_stats, retries_25006), 1},
        {"tusk_ryw_waits_total", "Reads that waited for a replica to replay the client's writes",
         offsetof(px_route_stats, ryw_waits), 1},
        {"tusk_ryw_wait_seconds_total", "Time reads spent waiting for read-your-writes",
         offsetof(px_route_stats, ryw_wait_us), 1e-6},
        {"tusk_ryw_wait_timeouts_total", "Read-your-writes waits that fell back to the primary",
         offsetof(px_route_stats, ryw_wait_timeouts), 1},
        {"tusk_lsn_captures_total", "Commit LSNs fetched after writes",
         offsetof(px_route_stats, lsn_captures), 1},
    };
    for (size_t f = 0; f < sizeof(fams) / sizeof(fams[0]); f++) {
        family(b, fams[f].name, "counter", fams[f].help);
        for (px_route_db *d = px_route_db_next(NULL); d; d = px_route_db_next(d)) {
            atomic_uint_fast64_t *v = (atomic_uint_fast64_t *)((char *)&d->stats + fams[f].off);
            out(b, "%s{database=\"%s\"} %.15g\n", fams[f].name, esc(d->name, db, sizeof(db)),
                (double)atomic_load(v) * fams[f].scale);
        }
    }
}

/* is the primary of every routed database reachable? (no routing state: yes) */
bool adm_primaries_ok(void)
{
    for (px_route_db *d = px_route_db_next(NULL); d; d = px_route_db_next(d))
        if (d->topo && router_topology_primary(d->topo) < 0)
            return false;
    return true;
}

/* Prometheus text exposition of everything */
bool adm_metrics_text(pktbuf *b)
{
    adm_snap s;
    bool all = adm_collect(&s, false, 2.0);
    adm_pool_row *bypool, *bynode;
    int np, nn;
    adm_snap_merge_pools(&s, false, &bypool, &np);
    adm_snap_merge_pools(&s, true, &bynode, &nn);

    family(b, "tusk_up", "gauge", "1 while the proxy runs; 0 when a worker did not answer");
    out(b, "tusk_up %d\n", all ? 1 : 0);
    family(b, "tusk_workers", "gauge", "Worker threads");
    out(b, "tusk_workers %d\n", s.workers);
    family(b, "tusk_worker_clients", "gauge", "Client connections per worker");
    for (int i = 0; i < s.workers; i++)
        out(b, "tusk_worker_clients{worker=\"%d\"} %d\n", i, s.worker_clients[i]);
    family(b, "tusk_worker_cpu_seconds_total", "counter",
           "CPU time each worker thread has used, user and system");
    for (int i = 0; i < s.workers; i++)
        out(b, "tusk_worker_cpu_seconds_total{worker=\"%d\"} %.6f\n", i,
            (double)s.worker_cpu_us[i] / 1e6);
    family(b, "tusk_worker_busy_poll_seconds_total", "counter",
           "Time each worker spent polling for work instead of sleeping (busy_poll_time)");
    for (int i = 0; i < s.workers; i++)
        out(b, "tusk_worker_busy_poll_seconds_total{worker=\"%d\"} %.6f\n", i,
            (double)s.worker_poll_us[i] / 1e6);
    family(b, "tusk_workers_steer_target", "gauge",
           "Worker new TCP connections go to (-1: the kernel spreads them)");
    out(b, "tusk_workers_steer_target %d\n", px_steer_target());
    family(b, "tusk_clients_connected", "gauge", "Client connections, logged in or not");
    out(b, "tusk_clients_connected %d\n", atomic_load(&px_g.n_clients));
    family(b, "tusk_clients_login", "gauge", "Client connections still logging in");
    out(b, "tusk_clients_login %d\n", s.login_clients);

    family(b, "tusk_pool_clients", "gauge", "Clients of a pool by state");
    for (int i = 0; i < np; i++) {
        pool_labels l;
        labels_pool(&l, &bypool[i], false);
        out(b, "tusk_pool_clients{%s,state=\"active\"} %d\n", l.s,
            bypool[i].cl_active - bypool[i].cl_idle);
        out(b, "tusk_pool_clients{%s,state=\"idle\"} %d\n", l.s, bypool[i].cl_idle);
        out(b, "tusk_pool_clients{%s,state=\"waiting\"} %d\n", l.s, bypool[i].cl_waiting);
    }
    family(b, "tusk_pool_maxwait_seconds", "gauge", "How long the oldest waiting client waits");
    for (int i = 0; i < np; i++) {
        pool_labels l;
        labels_pool(&l, &bypool[i], false);
        out(b, "tusk_pool_maxwait_seconds{%s} %.6f\n", l.s, bypool[i].maxwait);
    }
    family(b, "tusk_pool_servers", "gauge", "Server connections of a pool by node and state");
    for (int i = 0; i < nn; i++) {
        pool_labels l;
        labels_pool(&l, &bynode[i], true);
        out(b, "tusk_pool_servers{%s,state=\"active\"} %d\n", l.s, bynode[i].sv_active);
        out(b, "tusk_pool_servers{%s,state=\"idle\"} %d\n", l.s, bynode[i].sv_idle);
        out(b, "tusk_pool_servers{%s,state=\"used\"} %d\n", l.s, bynode[i].sv_used);
        out(b, "tusk_pool_servers{%s,state=\"login\"} %d\n", l.s, bynode[i].sv_login);
    }
    POOL_COUNTER("tusk_queries_total", "Queries run (per database, user and node)",
                 r->st.query_count);
    POOL_COUNTER("tusk_transactions_total", "Transactions run (per database, user and node)",
                 r->st.xact_count);
    POOL_COUNTER("tusk_query_time_seconds_total", "Time spent in queries",
                 (double)r->st.query_time_us / 1e6);
    POOL_COUNTER("tusk_transaction_time_seconds_total", "Time spent in transactions",
                 (double)r->st.xact_time_us / 1e6);
    POOL_COUNTER("tusk_client_wait_seconds_total", "Time clients waited for a server",
                 (double)r->st.wait_time_us / 1e6);
    POOL_COUNTER("tusk_received_bytes_total", "Bytes received from clients", r->st.bytes_received);
    POOL_COUNTER("tusk_sent_bytes_total", "Bytes sent to clients", r->st.bytes_sent);
    POOL_COUNTER("tusk_server_assignments_total", "Times a server was linked to a client",
                 r->st.server_assignments);
    POOL_COUNTER("tusk_server_errors_total", "ErrorResponses from servers", r->st.errors);
    POOL_COUNTER("tusk_prepared_statement_hits_total",
                 "Bind/Describe of a prepared statement the server already had", r->st.prep_hits);
    POOL_COUNTER("tusk_prepared_statement_misses_total",
                 "Prepared statements the proxy had to Parse on the server first",
                 r->st.prep_misses);
    POOL_COUNTER("tusk_pipelined_reads_total",
                 "Reads sent behind another client's read on a busy server (pipeline_reads)",
                 r->st.pipelined);
    POOL_COUNTER("tusk_pipelined_deep_reads_total",
                 "Pipelined reads sent behind two or more others (pipeline_depth)",
                 r->st.pipelined_deep);
    family(b, "tusk_query_duration_seconds", "histogram", "Query latency seen by the proxy");
    histogram(b, "tusk_query_duration_seconds", bynode, nn, false);
    family(b, "tusk_transaction_duration_seconds", "histogram",
           "Transaction latency seen by the proxy");
    histogram(b, "tusk_transaction_duration_seconds", bynode, nn, true);

    node_metrics(b);
    routing_metrics(b);
    free(bypool);
    free(bynode);
    adm_snap_free(&s);
    return !b->failed;
}
