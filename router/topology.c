/*
 * Topology of a database: which of its nodes is primary now, which replicas are healthy, and
 * how far each lags. One monitor thread per node polls it with plain blocking libpq (a poll
 * is one round trip on a persistent connection, ~0.1 ms on a LAN), so a dead or slow node
 * delays only its own thread. Workers read the results lock-free from atomics.
 *
 * Lag in time must stay true on an idle primary: now() - pg_last_xact_replay_timestamp()
 * grows forever on a caught-up replica when nothing is written. Instead the primary's monitor
 * keeps a ring of (time, WAL LSN) samples; a replica's lag is the age of the newest sample
 * it has not yet replayed past, i.e. how long ago the primary first had WAL the replica still
 * lacks (0 when it has replayed everything the primary had at its last sample).
 *
 * Read-your-writes needs fresher replay positions than a 100 ms poll gives: a client that
 * waits for a floor LSN calls router_topology_want_lsn(), which makes replica monitors poll
 * every millisecond until the floor is replayed or the wait's deadline passes.
 */
#include "common/common.h"
#include "router/router.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct lsn_sample {
    int64_t at_ms;
    uint64_t lsn;
} lsn_sample;

typedef struct monitor {
    router_topology *topo;
    int index;
    pthread_t thread;
    bool started;
    PGconn *conn;
    int backoff_ms;
    bool ever_up; /* first success is not a recovery */
} monitor;

struct router_topology {
    router_topology_config cfg;
    char *conninfo_extra;
    int n;
    router_node nodes[ROUTER_MAX_NODES];
    monitor monitors[ROUTER_MAX_NODES];
    _Atomic int primary_index;
    _Atomic uint64_t primary_lsn;
    _Atomic uint64_t want_floor;
    _Atomic int64_t want_deadline_ms;
    _Atomic bool stopping;
    pthread_mutex_t lock; /* guards ring and the wake-up condition */
    pthread_cond_t wake;
    lsn_sample ring[ROUTER_LSN_RING];
    int ring_head, ring_len;
    void (*notify)(void *arg);
    void *notify_arg;
};

int64_t router_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* create the topology of one database; nodes[0] is the configured primary */
router_topology *router_topology_new(const router_topology_config *cfg, int n_nodes,
                                     const char *const *hosts, const int *ports, const int *weights)
{
    if (n_nodes < 1 || n_nodes > ROUTER_MAX_NODES)
        return NULL;
    router_topology *topo = calloc(1, sizeof(*topo));
    if (!topo)
        return NULL;
    topo->cfg = *cfg;
    if (topo->cfg.lag_poll_ms <= 0)
        topo->cfg.lag_poll_ms = 100;
    if (topo->cfg.ban_ms <= 0)
        topo->cfg.ban_ms = 1000;
    if (topo->cfg.connect_timeout_s <= 0)
        topo->cfg.connect_timeout_s = 2;
    topo->conninfo_extra = strdup(cfg->conninfo_extra ? cfg->conninfo_extra : "");
    topo->cfg.conninfo_extra = topo->conninfo_extra;
    topo->n = n_nodes;
    for (int i = 0; i < n_nodes; i++) {
        router_node *node = &topo->nodes[i];
        snprintf(node->host, sizeof(node->host), "%s", hosts[i]);
        node->port = ports[i];
        node->weight = weights && weights[i] > 0 ? weights[i] : 1;
        node->configured_primary = i == 0;
        atomic_store(&node->role, i == 0 ? ROUTER_ROLE_PRIMARY : ROUTER_ROLE_UNKNOWN);
        /* until the first check says otherwise, replicas take no reads */
        atomic_store(&node->state, i == 0 ? ROUTER_NODE_UP : ROUTER_NODE_DOWN);
        topo->monitors[i].topo = topo;
        topo->monitors[i].index = i;
    }
    atomic_store(&topo->primary_index, 0);
    pthread_mutex_init(&topo->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&topo->wake, &ca);
    pthread_condattr_destroy(&ca);
    return topo;
}

int router_topology_count(const router_topology *topo)
{
    return topo->n;
}

router_node *router_topology_node(router_topology *topo, int i)
{
    return i >= 0 && i < topo->n ? &topo->nodes[i] : NULL;
}

int router_topology_primary(const router_topology *topo)
{
    return atomic_load(&((router_topology *)topo)->primary_index);
}

uint64_t router_topology_primary_lsn(const router_topology *topo)
{
    return atomic_load(&((router_topology *)topo)->primary_lsn);
}

/* the age of the newest sample the replica has not replayed past; 0 when caught up */
static uint64_t lag_ms_for(router_topology *topo, uint64_t replay_lsn, int64_t now)
{
    uint64_t lag = 0;
    pthread_mutex_lock(&topo->lock);
    if (topo->ring_len > 0) {
        /* walk from newest to oldest: the oldest sample with lsn > replay is when the primary
         * first had WAL the replica lacks */
        int64_t first_unreplayed = -1;
        for (int k = 0; k < topo->ring_len; k++) {
            int idx = (topo->ring_head - 1 - k + ROUTER_LSN_RING) % ROUTER_LSN_RING;
            if (topo->ring[idx].lsn > replay_lsn)
                first_unreplayed = topo->ring[idx].at_ms;
            else
                break;
        }
        if (first_unreplayed >= 0 && now > first_unreplayed)
            lag = (uint64_t)(now - first_unreplayed);
    }
    pthread_mutex_unlock(&topo->lock);
    return lag;
}

static void ring_push(router_topology *topo, uint64_t lsn, int64_t now)
{
    pthread_mutex_lock(&topo->lock);
    topo->ring[topo->ring_head].at_ms = now;
    topo->ring[topo->ring_head].lsn = lsn;
    topo->ring_head = (topo->ring_head + 1) % ROUTER_LSN_RING;
    if (topo->ring_len < ROUTER_LSN_RING)
        topo->ring_len++;
    pthread_mutex_unlock(&topo->lock);
}

/* pick the node that serves writes: the configured primary while it is up and not in
 * recovery, otherwise any reachable node that left recovery (a promoted replica) */
static void elect_primary(router_topology *topo)
{
    int cur = atomic_load(&topo->primary_index);
    router_node *c = &topo->nodes[cur];
    if (atomic_load(&c->role) == ROUTER_ROLE_PRIMARY && atomic_load(&c->state) != ROUTER_NODE_DOWN)
        return;
    for (int i = 0; i < topo->n; i++) {
        router_node *node = &topo->nodes[i];
        if (atomic_load(&node->role) == ROUTER_ROLE_PRIMARY &&
            atomic_load(&node->state) != ROUTER_NODE_DOWN) {
            atomic_store(&topo->primary_index, i);
            return;
        }
    }
}

static bool parse_lsn_text(const char *s, uint64_t *out)
{
    unsigned hi, lo;
    if (!s || sscanf(s, "%X/%X", &hi, &lo) != 2)
        return false;
    *out = ((uint64_t)hi << 32) | lo;
    return true;
}

static void mark_down(monitor *m, const char *why)
{
    router_topology *topo = m->topo;
    router_node *node = &topo->nodes[m->index];
    int64_t now = router_now_ms();
    bool was_up = atomic_exchange(&node->state, ROUTER_NODE_DOWN) != ROUTER_NODE_DOWN;
    atomic_fetch_add(&node->checks_failed, 1);
    m->backoff_ms = m->backoff_ms ? m->backoff_ms * 2 : topo->cfg.ban_ms;
    if (m->backoff_ms > 30000)
        m->backoff_ms = 30000;
    atomic_store(&node->banned_until_ms, now + m->backoff_ms);
    if (m->conn) {
        PQfinish(m->conn);
        m->conn = NULL;
    }
    if (was_up) {
        log_warning("node %s:%d is down (%s); banned from routing for %d ms", node->host,
                    node->port, why, m->backoff_ms);
        elect_primary(topo);
        if (topo->notify)
            topo->notify(topo->notify_arg);
    }
}

/* one check of one node; returns true when it answered */
static bool check_node(monitor *m)
{
    router_topology *topo = m->topo;
    router_node *node = &topo->nodes[m->index];
    if (!m->conn) {
        char ci[1024];
        snprintf(ci, sizeof(ci),
                 "host=%s port=%d connect_timeout=%d application_name=tusk-monitor %s", node->host,
                 node->port, topo->cfg.connect_timeout_s, topo->conninfo_extra);
        m->conn = PQconnectdb(ci);
        if (PQstatus(m->conn) != CONNECTION_OK) {
            char why[256];
            snprintf(why, sizeof(why), "%s", PQerrorMessage(m->conn));
            why[strcspn(why, "\n")] = 0;
            mark_down(m, why);
            return false;
        }
        PGresult *r = PQexec(m->conn, "SET statement_timeout = 2000");
        PQclear(r);
    }
    PGresult *res = PQexec(m->conn, "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() "
                                    "THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        char why[256];
        snprintf(why, sizeof(why), "%s", PQerrorMessage(m->conn));
        why[strcspn(why, "\n")] = 0;
        PQclear(res);
        mark_down(m, why);
        return false;
    }
    bool in_recovery = PQgetvalue(res, 0, 0)[0] == 't';
    uint64_t lsn = 0;
    if (!PQgetisnull(res, 0, 1))
        parse_lsn_text(PQgetvalue(res, 0, 1), &lsn);
    PQclear(res);

    int64_t now = router_now_ms();
    bool changed = false;
    int role = in_recovery ? ROUTER_ROLE_REPLICA : ROUTER_ROLE_PRIMARY;
    if (atomic_exchange(&node->role, role) != role) {
        changed = true;
        log_info("node %s:%d is %s", node->host, node->port, in_recovery ? "a replica" : "primary");
    }
    if (atomic_exchange(&node->lsn, lsn) != lsn)
        changed = true;
    atomic_store(&node->last_ok_ms, now);
    int state = ROUTER_NODE_UP;
    if (!in_recovery) {
        if (m->index == atomic_load(&topo->primary_index) ||
            atomic_load(&topo->nodes[atomic_load(&topo->primary_index)].state) ==
                ROUTER_NODE_DOWN) {
            atomic_store(&topo->primary_lsn, lsn);
            ring_push(topo, lsn, now);
        }
        atomic_store(&node->lag_bytes, 0);
        atomic_store(&node->lag_ms, 0);
    } else {
        uint64_t plsn = atomic_load(&topo->primary_lsn);
        uint64_t lag_bytes = plsn > lsn ? plsn - lsn : 0;
        uint64_t lag_ms = lag_ms_for(topo, lsn, now);
        atomic_store(&node->lag_bytes, lag_bytes);
        atomic_store(&node->lag_ms, lag_ms);
        if ((topo->cfg.max_replica_lag_ms > 0 && lag_ms > (uint64_t)topo->cfg.max_replica_lag_ms) ||
            (topo->cfg.max_replica_lag_bytes > 0 &&
             lag_bytes > (uint64_t)topo->cfg.max_replica_lag_bytes))
            state = ROUTER_NODE_LAGGING;
    }
    int old = atomic_exchange(&node->state, state);
    if (old != state) {
        changed = true;
        if (old == ROUTER_NODE_DOWN && m->ever_up)
            log_info("node %s:%d is reachable again", node->host, node->port);
        else if (state == ROUTER_NODE_LAGGING)
            log_warning("replica %s:%d lags (%llu ms, %llu bytes): no reads until it catches up",
                        node->host, node->port, (unsigned long long)atomic_load(&node->lag_ms),
                        (unsigned long long)atomic_load(&node->lag_bytes));
        else if (old == ROUTER_NODE_LAGGING)
            log_info("replica %s:%d caught up", node->host, node->port);
    }
    /* a recovered node stays banned until its back-off has passed */
    if (atomic_load(&node->banned_until_ms) && now >= atomic_load(&node->banned_until_ms)) {
        atomic_store(&node->banned_until_ms, 0);
        m->backoff_ms = 0;
        changed = true;
    }
    m->ever_up = true;
    elect_primary(topo);
    if (changed && topo->notify)
        topo->notify(topo->notify_arg);
    return true;
}

static void *monitor_main(void *arg)
{
    monitor *m = arg;
    router_topology *topo = m->topo;
    router_node *node = &topo->nodes[m->index];
    while (!atomic_load(&topo->stopping)) {
        bool ok = check_node(m);
        int64_t now = router_now_ms();
        int wait_ms = topo->cfg.lag_poll_ms;
        if (!ok) {
            wait_ms = m->backoff_ms < 1000 ? m->backoff_ms : 1000;
        } else if (atomic_load(&node->role) == ROUTER_ROLE_REPLICA &&
                   atomic_load(&topo->want_deadline_ms) > now &&
                   atomic_load(&node->lsn) < atomic_load(&topo->want_floor)) {
            wait_ms = 1; /* a client waits for this replica to reach its floor */
        }
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += (long)wait_ms * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_mutex_lock(&topo->lock);
        if (!atomic_load(&topo->stopping))
            pthread_cond_timedwait(&topo->wake, &topo->lock, &until);
        pthread_mutex_unlock(&topo->lock);
    }
    if (m->conn) {
        PQfinish(m->conn);
        m->conn = NULL;
    }
    return NULL;
}

int router_topology_start(router_topology *topo, void (*notify)(void *arg), void *arg)
{
    topo->notify = notify;
    topo->notify_arg = arg;
    for (int i = 0; i < topo->n; i++) {
        if (pthread_create(&topo->monitors[i].thread, NULL, monitor_main, &topo->monitors[i]) != 0)
            return -1;
        topo->monitors[i].started = true;
    }
    return 0;
}

void router_topology_stop(router_topology *topo)
{
    pthread_mutex_lock(&topo->lock);
    atomic_store(&topo->stopping, true);
    pthread_cond_broadcast(&topo->wake);
    pthread_mutex_unlock(&topo->lock);
    for (int i = 0; i < topo->n; i++) {
        if (topo->monitors[i].started) {
            pthread_join(topo->monitors[i].thread, NULL);
            topo->monitors[i].started = false;
        }
    }
}

void router_topology_free(router_topology *topo)
{
    if (!topo)
        return;
    router_topology_stop(topo);
    pthread_mutex_destroy(&topo->lock);
    pthread_cond_destroy(&topo->wake);
    free(topo->conninfo_extra);
    free(topo);
}

void router_topology_want_lsn(router_topology *topo, uint64_t floor_lsn, int64_t deadline_ms)
{
    uint64_t cur = atomic_load(&topo->want_floor);
    while (cur < floor_lsn && !atomic_compare_exchange_weak(&topo->want_floor, &cur, floor_lsn))
        ;
    int64_t dl = atomic_load(&topo->want_deadline_ms);
    while (dl < deadline_ms &&
           !atomic_compare_exchange_weak(&topo->want_deadline_ms, &dl, deadline_ms))
        ;
    pthread_mutex_lock(&topo->lock);
    pthread_cond_broadcast(&topo->wake);
    pthread_mutex_unlock(&topo->lock);
}

/* Ties go round-robin from a per-thread counter: a shared one would be one more cache line
 * that every routed read moves between the workers' cores. */
static _Thread_local unsigned pick_rr;

int router_topology_pick_replica(router_topology *topo, uint64_t floor_lsn)
{
    int64_t now = router_now_ms();
    int primary = atomic_load(&topo->primary_index);
    int best = -1;
    double best_score = 0;
    unsigned start = pick_rr++;
    for (int k = 0; k < topo->n; k++) {
        int i = (int)((start + k) % (unsigned)topo->n);
        router_node *node = &topo->nodes[i];
        if (i == primary || atomic_load(&node->role) != ROUTER_ROLE_REPLICA ||
            atomic_load(&node->state) != ROUTER_NODE_UP || atomic_load(&node->admin_banned))
            continue;
        int64_t banned = atomic_load(&node->banned_until_ms);
        if (banned && banned > now)
            continue;
        if (atomic_load(&node->lsn) < floor_lsn)
            continue;
        double score = (atomic_load(&node->outstanding) + 1.0) / node->weight;
        if (best < 0 || score < best_score) {
            best = i;
            best_score = score;
        }
    }
    return best;
}
