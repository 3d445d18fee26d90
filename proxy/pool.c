/*
 * Pools: the server connections of one (database, user, node) in one worker, the clients that
 * belong to it and the clients waiting for one of its servers. Decides when to open, reuse,
 * reset, check, hand over or close a server connection, and owns the limits
 * (pool_size + reserve, max_db_connections, max_user_connections) and the timeouts the janitor
 * enforces.
 *
 * Limits are process-wide: the count of open server connections per (database, user, node)
 * lives in a px_shared_pool that all workers update atomically, so the database sees at most
 * pool_size (+ reserve) connections however many workers there are. A worker whose clients
 * wait while another worker holds more than its fair share makes that worker close (rather
 * than re-idle) a server at its next release, so connections follow the demand.
 */
#include "proxy/admin.h"
#include "proxy/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* seconds a server must have been idle before the janitor gives its slot to another worker */
#define HANDOVER_IDLE 0.1

static void maybe_launch(px_pool *p, bool use_reserve);
static void link_pair(px_pool *p, px_server *s, px_client *c);

/* ------------------------------------------------------------------------------------------ */
/* lookup and settings                                                                         */
/* ------------------------------------------------------------------------------------------ */

/* the pool of (db, server user, node) in this worker, created on first use */
px_pool *px_pool_get(px_worker *w, const char *dbname, const char *user, int node_idx)
{
    for (px_pool *p = w->pools; p; p = p->next)
        if (p->node_idx == node_idx && strcmp(p->dbname, dbname) == 0 && strcmp(p->user, user) == 0)
            return p;
    const px_db *db = px_config_find_db(w->cfg, dbname);
    if (!db || node_idx < 0 || node_idx >= db->n_nodes)
        return NULL;
    px_pool *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->w = w;
    p->dbname = strdup(dbname);
    p->user = strdup(user);
    if (!p->dbname || !p->user) {
        free(p->dbname);
        free(p->user);
        free(p);
        return NULL;
    }
    p->node_idx = node_idx;
    px_list_init(&p->idle_servers);
    px_list_init(&p->active_servers);
    px_list_init(&p->used_servers);
    px_list_init(&p->new_servers);
    px_list_init(&p->waiting_clients);
    px_list_init(&p->active_clients);
    px_list_init(&p->idle_clients);
    px_list_init(&p->welcome_clients);
    pktbuf_init(&p->welcome, NULL, 0);
    pktbuf_init(&p->last_error, NULL, 0);
    p->shared = px_shared_pool_get(dbname, user, node_idx);
    p->db_count = px_shared_count_get("db", dbname);
    p->user_count = px_shared_count_get("user", user);
    if (!p->shared || !p->db_count || !p->user_count) {
        pktbuf_free(&p->welcome);
        pktbuf_free(&p->last_error);
        free(p->dbname);
        free(p->user);
        free(p);
        return NULL;
    }
    px_pool_apply_config(p, w->cfg);
    p->next = w->pools;
    w->pools = p;
    return p;
}

px_pool *px_pool_sibling(px_pool *p, int node_idx)
{
    if (node_idx == p->node_idx)
        return p;
    if (node_idx < 0 || node_idx >= ROUTER_MAX_NODES)
        return NULL;
    if (!p->sibling[node_idx])
        p->sibling[node_idx] = px_pool_get(p->w, p->dbname, p->user, node_idx);
    return p->sibling[node_idx];
}

static int pick(int a, int b, int c)
{
    return a >= 0 ? a : b >= 0 ? b : c;
}

static bool same_node(const px_node *a, const px_node *b)
{
    return a->port == b->port && strcmp(a->host, b->host) == 0;
}

/* re-resolve settings from a (new) config */
void px_pool_apply_config(px_pool *p, px_config *cfg)
{
    const px_db *db = px_config_find_db(cfg, p->dbname);
    if (!db || p->node_idx >= db->n_nodes) {
        if (!p->orphan && p->db)
            log_warning("database \"%s\" is gone from the configuration; its pool drains",
                        p->dbname);
        p->orphan = true;
        return;
    }
    if (p->db) {
        const px_db *old = p->db;
        bool moved =
            !same_node(&old->nodes[p->node_idx], &db->nodes[p->node_idx]) ||
            strcmp(old->dbname ? old->dbname : "", db->dbname ? db->dbname : "") != 0 ||
            strcmp(old->password ? old->password : "", db->password ? db->password : "") != 0;
        if (moved) {
            /* the server side changed: reconnect as connections come back */
            px_list *heads[] = {&p->idle_servers, &p->active_servers, &p->used_servers,
                                &p->new_servers};
            for (int i = 0; i < 4; i++)
                for (px_list *n = heads[i]->next; n != heads[i]; n = n->next)
                    container_of(n, px_server, node)->dirty = true;
            p->have_welcome = false;
        }
    }
    px_config *old_cfg = p->cfg;
    p->cfg = px_config_ref(cfg);
    p->db = db;
    p->orphan = false;
    const px_usercfg *u = px_config_find_user(cfg, p->user);
    p->mode = pick(u ? u->pool_mode : -1, db->pool_mode, cfg->pool_mode);
    p->size = pick(u ? u->pool_size : -1, db->pool_size, cfg->default_pool_size);
    p->min_size = pick(db->min_pool_size, -1, cfg->min_pool_size);
    p->reserve = pick(db->reserve_pool, -1, cfg->reserve_pool_size);
    p->max_db = pick(db->max_db_connections, -1, cfg->max_db_connections);
    p->max_user = pick(u ? u->max_user_connections : -1, -1, cfg->max_user_connections);
    if (old_cfg)
        px_config_unref(old_cfg);
}

/* the limit of open server connections (all workers) */
int px_pool_limit(const px_pool *p)
{
    return p->size;
}

/* ------------------------------------------------------------------------------------------ */
/* list bookkeeping                                                                            */
/* ------------------------------------------------------------------------------------------ */

static void update_waiting(px_pool *p)
{
    atomic_store_explicit(&p->shared->waiting[p->w->idx], p->n_waiting + p->n_welcome,
                          memory_order_relaxed);
}

/* remove a client from whatever list holds it */
void px_pool_client_unlist(px_client *c)
{
    px_pool *lp = c->lpool;
    px_list_del(&c->node);
    if (!lp)
        return;
    switch (c->state) {
    case CL_WELCOME:
        lp->n_welcome--;
        update_waiting(lp);
        break;
    case CL_IDLE:
        lp->n_idle_clients--;
        break;
    case CL_WAITING:
        lp->n_waiting--;
        update_waiting(lp);
        break;
    case CL_ACTIVE:
        lp->n_active_clients--;
        break;
    }
    c->lpool = NULL;
}

/* move a client to the list of its new state (lp: the pool whose list; NULL = worker login) */
void px_pool_client_set_state(px_client *c, int state, px_pool *lp)
{
    px_pool_client_unlist(c);
    c->state = (uint8_t)state;
    if (!lp) {
        if (state == CL_LOGIN)
            px_list_add_tail(&c->io.w->login_clients, &c->node);
        return;
    }
    c->lpool = lp;
    switch (state) {
    case CL_WELCOME:
        px_list_add_tail(&lp->welcome_clients, &c->node);
        lp->n_welcome++;
        update_waiting(lp);
        break;
    case CL_IDLE:
        px_list_add_tail(&lp->idle_clients, &c->node);
        lp->n_idle_clients++;
        break;
    case CL_WAITING:
        px_list_add_tail(&lp->waiting_clients, &c->node);
        lp->n_waiting++;
        update_waiting(lp);
        break;
    case CL_ACTIVE:
        px_list_add_tail(&lp->active_clients, &c->node);
        lp->n_active_clients++;
        break;
    default:
        c->lpool = NULL;
        break;
    }
}

/* move a server to the list of its new state */
void px_pool_server_set_state(px_server *s, int state)
{
    px_pool *p = s->pool;
    if (s->state) {
        px_list_del(&s->node);
        switch (s->state) {
        case SV_CONNECTING:
        case SV_LOGIN:
            p->n_new--;
            break;
        case SV_IDLE:
            p->n_idle--;
            break;
        case SV_ACTIVE:
            p->n_active--;
            break;
        case SV_USED:
            p->n_used--;
            break;
        }
    }
    s->state = (uint8_t)state;
    switch (state) {
    case SV_CONNECTING:
    case SV_LOGIN:
        px_list_add_tail(&p->new_servers, &s->node);
        p->n_new++;
        break;
    case SV_IDLE:
        /* most recently used first: warm caches, and idle ones age out at the tail */
        px_list_add_head(&p->idle_servers, &s->node);
        p->n_idle++;
        break;
    case SV_ACTIVE:
        px_list_add_tail(&p->active_servers, &s->node);
        p->n_active++;
        break;
    case SV_USED:
        px_list_add_tail(&p->used_servers, &s->node);
        p->n_used++;
        break;
    }
}

static int n_servers(const px_pool *p)
{
    return p->n_idle + p->n_active + p->n_used + p->n_new;
}

/* ------------------------------------------------------------------------------------------ */
/* slots: process-wide limits                                                                  */
/* ------------------------------------------------------------------------------------------ */

static bool inc_below(atomic_int *v, int limit)
{
    int cur = atomic_load(v);
    while (limit <= 0 || cur < limit) {
        if (atomic_compare_exchange_weak(v, &cur, cur + 1))
            return true;
    }
    return false;
}

/* reserve room for one more server connection; false at a limit */
static bool slot_reserve_upto(px_pool *p, int limit)
{
    if (limit <= 0)
        return false;
    if (!inc_below(&p->shared->servers, limit))
        return false;
    if (!inc_below(&p->db_count->n, p->max_db)) {
        atomic_fetch_sub(&p->shared->servers, 1);
        return false;
    }
    if (!inc_below(&p->user_count->n, p->max_user)) {
        atomic_fetch_sub(&p->shared->servers, 1);
        atomic_fetch_sub(&p->db_count->n, 1);
        return false;
    }
    atomic_fetch_add(&p->shared->per_worker[p->w->idx], 1);
    return true;
}

/* reserve room for one more server connection within pool_size (+ reserve); false at a limit */
static bool slot_reserve(px_pool *p, bool use_reserve)
{
    return slot_reserve_upto(p, p->size + (use_reserve ? p->reserve : 0));
}

/* give back the room of a server connection that closed */
void px_pool_slot_release(px_pool *p)
{
    atomic_fetch_sub(&p->shared->servers, 1);
    atomic_fetch_sub(&p->db_count->n, 1);
    atomic_fetch_sub(&p->user_count->n, 1);
    atomic_fetch_sub(&p->shared->per_worker[p->w->idx], 1);
}

/* is the last login failure recent enough that we answer with it instead of trying again? */
static bool in_retry_backoff(px_pool *p)
{
    return p->last_error.len > 0 && n_servers(p) == 0 &&
           px_now(p->w) - p->last_error_time < p->cfg->server_login_retry;
}

/* open servers for the clients that wait (none beyond the limits) */
static void maybe_launch(px_pool *p, bool use_reserve)
{
    if (p->orphan || (p->w->shutting_down && p->w->shutdown_how == 0))
        return;
    int want = p->n_waiting - p->n_new;
    if (!p->have_welcome && p->n_welcome > 0 && p->n_new == 0 && want < 1)
        want = 1;
    while (want-- > 0) {
        if (!slot_reserve(p, use_reserve))
            break;
        if (!px_server_connect(p))
            break;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* clients and servers meeting                                                                 */
/* ------------------------------------------------------------------------------------------ */

static void link_pair(px_pool *p, px_server *s, px_client *c)
{
    px_worker *w = p->w;
    double now = px_now(w);
    s->client = c;
    c->server = s;
    px_pool_server_set_state(s, SV_ACTIVE);
    /* a routed client is listed on its home pool (node 0) but waited for, and got, a server
     * of node p: the figures are that node's */
    if (c->state == CL_WAITING)
        p->stats.wait_time_us += (uint64_t)((now - c->wait_start) * 1e6);
    px_pool_client_set_state(c, CL_ACTIVE, c->pool ? c->pool : p);
    p->stats.server_assignments++;
    s->last_used = now;
    if (!c->authq && !px_server_sync_vars(s, c))
        log_warning("could not queue SET for session parameters");
    if (!c->authq && c->rt)
        proxy_route_sync_sets(s, c);
    if (s->io.read_paused)
        px_conn_resume(&s->io);
}

/* the client needs a server: linked now (true), or waiting / failed (false) */
bool px_pool_acquire(px_pool *p, px_client *c)
{
    px_worker *w = p->w;
    if (p->orphan) {
        px_client_fail(c, "3D000", "database \"%s\" was removed from the configuration", p->dbname);
        return false;
    }
    if (p->n_waiting == 0 && !px_list_empty(&p->idle_servers)) {
        px_server *s = container_of(p->idle_servers.next, px_server, node);
        px_config *cfg = w->cfg;
        double now = px_now(w);
        if (cfg->server_check_query && *cfg->server_check_query && cfg->server_check_delay >= 0 &&
            now - s->last_used > cfg->server_check_delay && !c->authq) {
            /* not used for a while: check it first; the client gets it afterwards */
            px_pool_server_set_state(s, SV_USED);
            c->wait_start = now;
            px_pool_client_set_state(c, CL_WAITING, p);
            if (!px_server_internal_query(s, INTQ_CHECK, cfg->server_check_query))
                px_server_close(s, "could not send server_check_query");
            return false;
        }
        link_pair(p, s, c);
        return true;
    }
    if (in_retry_backoff(p)) {
        if (!proxy_route_pool_failed(c, p))
            px_client_fail_raw(c, p->last_error.data, p->last_error.len);
        return false;
    }
    c->wait_start = px_now(w);
    px_pool_client_set_state(c, CL_WAITING, p);
    log_debug("w%d pool %s/%s: client %llu waits (%d waiting, %d idle, %d active, %d new, %d "
              "process-wide)",
              w->idx, p->dbname, p->user, (unsigned long long)c->id, p->n_waiting, p->n_idle,
              p->n_active, p->n_new, atomic_load(&p->shared->servers));
    maybe_launch(p, false);
    return false;
}

/* ------------------------------------------------------------------------------------------ */
/* pipeline_reads                                                                              */
/* ------------------------------------------------------------------------------------------ */

/* A read is sent behind the read another client runs on a busy server: PostgreSQL takes it
 * from its socket the moment it answers the first, instead of sleeping until the proxy hands
 * the server over (queued: a read that would wait for a server), or instead of waking an idle
 * backend (on): on a machine whose cores PostgreSQL, the clients and the proxy share, one
 * backend that answers two reads per wake-up does more work than two that wake for one each.
 * Only autocommit single-statement reads that leave no session state (route.c
 * proxy_route_pipeline_shape) go either side, on servers whose session state is the client's
 * (routed clients: replicas only, route.c proxy_route_pipe_ok), up to pipeline_depth in line
 * behind the running query, and only behind queries of shapes that ran fast (under
 * pipeline_fast_time) their last PIPE_RUNS times, the running one not for longer than that,
 * so a read does not wait behind a slow one. */
#define PIPE_RUNS 4
#define SHAPE_SLOTS 1024 /* per worker, direct-mapped: a miss only means "not known fast" */

typedef struct px_shape_time {
    uint64_t key;
    float worst; /* seconds: the longest recent run, decaying by 1/8 a run */
    uint32_t runs;
} px_shape_time;

/* the end of a message starting at msg + pos within avail bytes, or 0 if it is not there
 * whole or is not of that type */
static size_t msg_end(const uint8_t *msg, size_t pos, size_t avail, uint8_t type)
{
    if (avail - pos < 5 || msg[pos] != type)
        return 0;
    size_t end = pos + 1 + pkt_get_u32(msg + pos + 1);
    return end <= avail && end >= pos + 5 ? end : 0;
}

/* the Parse text of an autocommit read batch at msg (all of it buffered): an unnamed Parse,
 * a Bind of the unnamed statement to the unnamed portal, an optional Describe of that portal,
 * an Execute of it with no row limit, and Sync; the way libpq's PQsendQueryParams sends one.
 * Anything else (names, Flush, a row limit) is not pipelined. false if it is not one. */
static bool ext_read_batch(const uint8_t *msg, size_t avail, const char **q, size_t *qlen)
{
    size_t p_end = msg_end(msg, 0, avail, 'P');
    if (!p_end || msg[5] != '\0')
        return false;
    const uint8_t *text = msg + 6, *nul = memchr(text, 0, p_end - 6);
    if (!nul)
        return false;
    size_t b_end = msg_end(msg, p_end, avail, 'B');
    if (!b_end || b_end - p_end < 7 || msg[p_end + 5] != '\0' || msg[p_end + 6] != '\0')
        return false;
    size_t pos = b_end, d_end = msg_end(msg, pos, avail, 'D');
    if (d_end) {
        if (d_end - pos != 7 || msg[pos + 5] != 'P' || msg[pos + 6] != '\0')
            return false;
        pos = d_end;
    }
    size_t e_end = msg_end(msg, pos, avail, 'E');
    if (!e_end || e_end - pos != 10 || msg[pos + 5] != '\0' || pkt_get_u32(msg + pos + 6) != 0)
        return false;
    size_t s_end = msg_end(msg, e_end, avail, 'S');
    if (!s_end || s_end - e_end != 5)
        return false;
    *q = (const char *)text;
    *qlen = (size_t)(nul - text);
    return true;
}

uint64_t px_pool_read_key(px_pool *p, const px_client *c, const uint8_t *msg, size_t avail)
{
    const char *q;
    size_t qlen;
    if (avail < 6)
        return 0;
    if (msg[0] == 'Q') {
        size_t total = 1 + (size_t)pkt_get_u32(msg + 1);
        if (total > avail || total < 6)
            return 0;
        q = (const char *)msg + 5;
        qlen = strnlen(q, total - 5);
    } else if (msg[0] != 'P' || c->rt || !ext_read_batch(msg, avail, &q, &qlen)) {
        return 0; /* routed clients: their extended batches have the router's own handling */
    }
    uint64_t shape = proxy_route_pipeline_shape(q, qlen);
    if (!shape)
        return 0;
    /* the same text may be fast in one database and slow in another */
    return (shape ^ ((uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull)) | 1;
}

void px_pool_shape_ran(px_worker *w, uint64_t key, double seconds)
{
    if (!w->shape_times) {
        w->shape_times = calloc(SHAPE_SLOTS, sizeof(px_shape_time));
        if (!w->shape_times)
            return;
    }
    px_shape_time *t = &w->shape_times[(key >> 17) % SHAPE_SLOTS];
    float d = (float)seconds;
    if (t->key != key) {
        *t = (px_shape_time){.key = key, .worst = d, .runs = 1};
        return;
    }
    float decayed = t->worst * 0.875f;
    t->worst = d > decayed ? d : decayed;
    if (t->runs < UINT32_MAX)
        t->runs++;
}

static bool shape_is_fast(const px_worker *w, uint64_t key)
{
    if (!key || !w->shape_times)
        return false;
    const px_shape_time *t = &w->shape_times[(key >> 17) % SHAPE_SLOTS];
    return t->key == key && t->runs >= PIPE_RUNS && t->worst < w->cfg->pipeline_fast_time;
}

/* server_reset_query_always: every client gets a reset server, so none is handed over mid-way */
static bool reset_always(const px_config *cfg)
{
    return cfg->server_reset_query_always && cfg->server_reset_query && *cfg->server_reset_query;
}

static bool vars_match(const px_server *s, const px_client *c)
{
    for (int i = 0; i < VAR_COUNT; i++)
        if (c->vars[i] && c->vars[i] != s->vars[i])
            return false;
    return true;
}

/* c's read (of shape key) goes behind the ones on s; the server passes to c after them */
static void pipe_link(px_pool *p, px_server *s, px_client *c, uint64_t key)
{
    s->pipe_line[s->pipe_n++] = c;
    c->server = s;
    c->pipelined = true;
    c->pipe_queued = false;
    c->pipe_key = key;
    if (c->state == CL_WAITING) /* as link_pair */
        p->stats.wait_time_us += (uint64_t)((px_now(p->w) - c->wait_start) * 1e6);
    px_pool_client_set_state(c, CL_ACTIVE, c->pool ? c->pool : p);
    p->stats.server_assignments++;
    p->stats.pipelined++;
    p->stats.pipelined_deep += s->pipe_n >= 2;
}

/* what s still owes is one read to its client and one to each client of its line, each
 * starting at its EXPF_SWITCH: a simple Query, or a batch of at most 5 requests up to its
 * Sync (the running one may be partly answered) */
static bool owes_reads(const px_server *s)
{
    uint32_t reads = 0, run = 0;
    bool open = false; /* a read's requests have started and its end is not reached */
    for (uint32_t i = 0; i < s->qlen; i++) {
        const px_exp *e = &s->q[(s->qhead + i) % s->qcap];
        bool starts = i == 0 || (e->flags & EXPF_SWITCH);
        if (starts == open)
            return false; /* a read starts where the one before it ends, and only there */
        run = starts ? 1 : run + 1;
        open = true;
        if (e->kind == EXP_INTERNAL || run > 5 || (e->kind == EXP_QUERY && run != 1))
            return false;
        if (e->kind == EXP_QUERY || e->kind == EXP_SYNC) {
            open = false;
            reads++;
        }
    }
    return !open && reads == 1u + s->pipe_n;
}

/* may another read join s's line? Each read in it is on the server and of a fast shape */
static bool line_open(const px_worker *w, const px_server *s)
{
    if (s->pipe_n >= w->cfg->pipeline_depth)
        return false;
    for (int i = 0; i < s->pipe_n; i++) {
        const px_client *b = s->pipe_line[i];
        if (!b || !b->pipe_queued || !b->pipe_msg_ok || !shape_is_fast(w, b->pipe_key))
            return false;
    }
    return true;
}

bool px_pool_pipeline(px_pool *p, px_client *c, const uint8_t *msg, size_t avail)
{
    px_worker *w = p->w;
    int mode = w->cfg->pipeline_reads;
    if (mode == PX_PIPE_OFF || p->mode == PM_SESSION || reset_always(w->cfg) || c->authq ||
        c->txn_status != 'I' || avail < 6 || (msg[0] != 'Q' && msg[0] != 'P') || p->n_waiting > 0)
        return false;
    if (mode == PX_PIPE_QUEUED && (p->n_idle > 0 || atomic_load(&p->shared->servers) < p->size))
        return false; /* it would not wait */
    double now = px_now(w);
    px_server *best = NULL;
    px_list *it;
    for (it = p->active_servers.next; it != &p->active_servers; it = it->next) {
        px_server *s = container_of(it, px_server, node);
        if (!s->pipe_key || !s->client || now - s->pipe_sent > w->cfg->pipeline_fast_time ||
            (best && s->pipe_n > best->pipe_n) || !line_open(w, s) || !owes_reads(s) ||
            px_conn_backlogged(&s->io) || !vars_match(s, c) || !shape_is_fast(w, s->pipe_key) ||
            !proxy_route_pipe_ok(c, s))
            continue;
        /* the shortest line; in it, the read sent first: likely answered first */
        if (!best || s->pipe_n < best->pipe_n || s->pipe_sent < best->pipe_sent)
            best = s;
    }
    uint64_t key;
    if (!best || !(key = px_pool_read_key(p, c, msg, avail)))
        return false;
    pipe_link(p, best, c, key);
    return true;
}

void px_pool_pipe_pull(px_server *s)
{
    px_pool *p = s->pool;
    px_worker *w = p->w;
    if (!w->cfg->pipeline_reads || p->mode == PM_SESSION || reset_always(w->cfg) || !s->pipe_key ||
        !s->client || p->n_waiting == 0 || !line_open(w, s) || px_conn_backlogged(&s->io) ||
        !shape_is_fast(w, s->pipe_key) || !owes_reads(s))
        return; /* owes_reads: a client may have sent more behind its read (a BEGIN...) */
    /* the head of the queue only: waiting clients keep their order */
    px_client *c = container_of(p->waiting_clients.next, px_client, node);
    const uint8_t *m = c->io.rbuf;
    if (c->authq || c->txn_status != 'I' || c->io.pass_left || c->io.rlen < 6 ||
        (m[0] != 'Q' && m[0] != 'P') || !vars_match(s, c) || !proxy_route_pipe_ok(c, s) ||
        px_admin_paused(c->dbname))
        return;
    uint64_t key = px_pool_read_key(p, c, m, c->io.rlen);
    if (!key)
        return;
    pipe_link(p, s, c, key);
    px_conn_schedule(&c->io);
}

void px_pool_pipe_switch(px_server *s)
{
    px_worker *w = s->io.w;
    px_client *a = s->client, *b = s->pipe_n ? s->pipe_line[0] : NULL;
    double now = px_now(w);
    if (a && a->rt)
        proxy_txn_finished(s); /* a's transaction ends here (a refused read re-runs) */
    if (s->qlen)
        s->q[s->qhead].flags &= (uint8_t)~EXPF_SWITCH;
    if (s->pipe_n) {
        s->pipe_n--;
        memmove(s->pipe_line, s->pipe_line + 1, s->pipe_n * sizeof(s->pipe_line[0]));
    }
    s->client = b;
    /* b's read may not be on the server yet (px_pool_pipe_pull links before it runs) */
    bool queued = b && b->pipe_queued;
    s->pipe_key = queued && b->pipe_msg_ok ? b->pipe_key : 0;
    s->pipe_sent = now;
    if (a) {
        px_stats *st = &s->pool->stats;
        st->xact_count++;
        st->xact_time_us += (uint64_t)((now - a->xact_start) * 1e6);
        st->xact_hist[px_hist_bucket(now - a->xact_start)]++;
        a->server = NULL;
        px_pool_client_set_state(a, CL_IDLE, a->pool);
        if (a->close_after_txn || w->shutting_down)
            px_client_fail(a, "57P01", "the proxy is shutting down");
        else if (a->io.read_paused)
            px_conn_resume(&a->io);
        else if (a->io.rlen)
            px_conn_schedule(&a->io);
    }
    if (b) {
        b->pipelined = false;
        s->last_used = now;
        if (b->cancel_pending) {
            b->cancel_pending = false;
            /* with reads in line behind b's, the backend may be running one of theirs by the
             * time the cancel lands: b's fast read is left to finish instead */
            if (s->pipe_n == 0)
                px_client_cancel(b);
        }
        if (b->io.rlen)
            px_conn_schedule(&b->io); /* what it sent meanwhile */
        if (queued)                   /* b's read runs now: a waiting one may queue behind it */
            px_pool_pipe_pull(s);
    }
}

void px_pool_pipe_drop(px_server *s, px_client *c)
{
    for (int i = 0; i < s->pipe_n; i++) {
        if (s->pipe_line[i] != c)
            continue;
        if (c->pipe_queued) {
            s->pipe_line[i] = NULL; /* its read is on the server: the slot stays for its answers */
        } else {
            s->pipe_n--; /* nothing of it went out */
            memmove(s->pipe_line + i, s->pipe_line + i + 1,
                    (size_t)(s->pipe_n - i) * sizeof(s->pipe_line[0]));
        }
        break;
    }
    c->server = NULL;
    c->pipelined = false;
    c->cancel_pending = false;
}

bool px_pool_pipe_behind(const px_server *s, const px_client *c)
{
    if (s->client == c)
        return s->pipe_n > 0;
    for (int i = 0; i + 1 < s->pipe_n; i++)
        if (s->pipe_line[i] == c)
            return true;
    return false;
}

/* tell worker i a connection slot is free so its waiting clients need not wait for its
 * janitor */
static void hand_over(int i)
{
    px_wmsg *m = calloc(1, sizeof(*m));
    if (!m)
        return;
    m->kind = WMSG_REBALANCE;
    px_worker_post(px_g.workers[i], m);
}

/* open servers for waiting clients now (a slot may have been freed by another worker) */
void px_pool_kick(px_pool *p)
{
    if (p->n_waiting > 0 && !in_retry_backoff(p))
        maybe_launch(p, false);
    if (p->n_welcome > 0 && !p->have_welcome && p->n_new == 0)
        px_pool_need_welcome(p);
}

/* a server is clean and ready: give it to a waiting client, keep it idle, or close it */
void px_pool_server_ready(px_server *s)
{
    px_pool *p = s->pool;
    px_worker *w = p->w;
    double now = px_now(w);
    if (s->io.closed)
        return;
    if (s->dirty || p->orphan) {
        px_server_close(s, s->dirty ? "configuration changed or server failed a check"
                                    : "database removed");
        return;
    }
    int limit = p->size + p->reserve;
    if (atomic_load(&p->shared->servers) > limit) {
        px_server_close(s, "pool size lowered");
        return;
    }
    if (p->n_waiting > 0) {
        px_client *c = container_of(p->waiting_clients.next, px_client, node);
        link_pair(p, s, c);
        px_client_linked(c);
        return;
    }
    if (w->cfg->server_lifetime > 0 && now - s->connect_time > w->cfg->server_lifetime) {
        px_server_close(s, "server_lifetime");
        return;
    }
    /* fairness between workers: clients waiting elsewhere while we hold more than our share */
    int nw = px_g.nworkers;
    if (nw > 1 && atomic_load(&p->shared->servers) >= p->size) {
        int mine = atomic_load(&p->shared->per_worker[w->idx]);
        int share = (p->size + nw - 1) / nw;
        for (int i = 0; i < nw; i++) {
            if (i == w->idx || atomic_load(&p->shared->waiting[i]) == 0)
                continue;
            int theirs = atomic_load(&p->shared->per_worker[i]);
            /* above our share (hysteresis: no flapping at the share), or they have none */
            if (theirs < share && (mine > share || (theirs == 0 && mine > 0))) {
                px_server_close(s, "handing the connection slot to another worker");
                hand_over(i);
                return;
            }
        }
    }
    s->last_used = now;
    px_pool_server_set_state(s, SV_IDLE);
}

/* the transaction on s ended (or its client left): unlink, reset if needed, reuse */
void px_pool_release(px_server *s)
{
    px_pool *p = s->pool;
    px_worker *w = p->w;
    px_client *c = s->client;
    if (c) {
        s->client = NULL;
        c->server = NULL;
        if (!c->io.closed) {
            px_pool_client_set_state(c, CL_IDLE, c->pool);
            if (c->io.read_paused)
                px_conn_resume(&c->io);
            else if (c->io.rlen)
                px_conn_schedule(&c->io);
        }
    }
    if (s->io.closed)
        return;
    if (s->io.read_paused)
        px_conn_resume(&s->io);
    px_config *cfg = w->cfg;
    bool session_end = !c || c->io.closed;
    if (cfg->server_reset_query && *cfg->server_reset_query &&
        ((p->mode == PM_SESSION && session_end) || cfg->server_reset_query_always)) {
        px_pool_server_set_state(s, SV_USED);
        /* DISCARD ALL drops prepared statements too */
        px_sstmts_free(&s->stmts, &w->stmts);
        if (!px_server_internal_query(s, INTQ_RESET, cfg->server_reset_query))
            px_server_close(s, "could not send server_reset_query");
        return;
    }
    px_pool_server_ready(s);
}

/* a server connection is gone; with err (a failed login) waiting clients get that error */
void px_pool_server_gone(px_pool *p, const uint8_t *err, size_t errlen)
{
    px_worker *w = p->w;
    if (err && errlen) {
        pktbuf_reset(&p->last_error);
        pkt_put_bytes(&p->last_error, err, errlen);
        p->last_error_time = px_now(w);
        if (n_servers(p) == 0) {
            /* nothing else will serve them soon: a clear error now rather than a hang */
            while (!px_list_empty(&p->welcome_clients)) {
                px_client *c = container_of(p->welcome_clients.next, px_client, node);
                px_client_fail_raw(c, err, errlen);
            }
            while (!px_list_empty(&p->waiting_clients)) {
                px_client *c = container_of(p->waiting_clients.next, px_client, node);
                if (!proxy_route_pool_failed(c, p))
                    px_client_fail_raw(c, err, errlen);
            }
        }
        return;
    }
    if (p->n_waiting > 0 || (p->n_welcome > 0 && !p->have_welcome))
        maybe_launch(p, false);
}

/* publish this pool's server parameters for the other workers */
void px_pool_share_welcome(px_pool *p)
{
    px_shared_pool *sp = p->shared;
    pthread_mutex_lock(&px_g.lock);
    if (!sp->welcome) {
        sp->welcome = malloc(p->welcome.len ? p->welcome.len : 1);
        if (sp->welcome) {
            memcpy(sp->welcome, p->welcome.data, p->welcome.len);
            sp->welcome_len = p->welcome.len;
            for (int i = 0; i < VAR_COUNT; i++)
                sp->welcome_vars[i] = p->welcome_vars[i] ? strdup(p->welcome_vars[i]->s) : NULL;
        }
    }
    pthread_mutex_unlock(&px_g.lock);
}

/* take the server parameters another worker learnt; false if there are none yet */
static bool adopt_shared_welcome(px_pool *p)
{
    px_shared_pool *sp = p->shared;
    px_worker *w = p->w;
    bool ok = false;
    pthread_mutex_lock(&px_g.lock);
    if (sp->welcome) {
        pktbuf_reset(&p->welcome);
        pkt_put_bytes(&p->welcome, sp->welcome, sp->welcome_len);
        for (int i = 0; i < VAR_COUNT; i++) {
            px_istr *v = sp->welcome_vars[i] ? px_intern_get(&w->intern, sp->welcome_vars[i],
                                                             strlen(sp->welcome_vars[i]))
                                             : NULL;
            px_var_set(&w->intern, &p->welcome_vars[i], v);
            px_intern_put(&w->intern, v);
        }
        ok = !p->welcome.failed;
    }
    pthread_mutex_unlock(&px_g.lock);
    return ok;
}

/* clients wait for the server parameters: make sure a server is on its way */
void px_pool_need_welcome(px_pool *p)
{
    if (!p->have_welcome && adopt_shared_welcome(p))
        p->have_welcome = true;
    if (p->have_welcome) {
        px_pool_welcome_all(p);
        return;
    }
    if (in_retry_backoff(p)) {
        while (!px_list_empty(&p->welcome_clients)) {
            px_client *c = container_of(p->welcome_clients.next, px_client, node);
            px_client_fail_raw(c, p->last_error.data, p->last_error.len);
        }
        return;
    }
    if (p->n_new == 0)
        maybe_launch(p, false);
}

/* the pool learnt its server parameters: welcome every client that waited for them */
void px_pool_welcome_all(px_pool *p)
{
    while (p->have_welcome && !px_list_empty(&p->welcome_clients)) {
        px_client *c = container_of(p->welcome_clients.next, px_client, node);
        px_client_welcome(c);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* janitor                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static void check_clients(px_list *head, double now)
{
    px_list *n = head->next;
    while (n != head) {
        px_list *next = n->next;
        px_client_check_timeouts(container_of(n, px_client, node), now);
        n = next;
    }
}

static void check_servers(px_list *head, double now)
{
    px_list *n = head->next;
    while (n != head) {
        px_list *next = n->next;
        px_server_check_timeouts(container_of(n, px_server, node), now);
        n = next;
    }
}

/* periodic work of one pool */
void px_pool_janitor(px_pool *p, double now)
{
    px_worker *w = p->w;
    px_config *cfg = w->cfg;
    check_clients(&p->waiting_clients, now);
    check_clients(&p->welcome_clients, now);
    check_clients(&p->idle_clients, now);
    check_clients(&p->active_clients, now);
    check_servers(&p->new_servers, now);
    check_servers(&p->idle_servers, now);
    /* reserve pool: clients waited too long */
    if (p->n_waiting > 0 && p->reserve > 0) {
        px_client *c = container_of(p->waiting_clients.next, px_client, node);
        if (now - c->wait_start >= cfg->reserve_pool_timeout)
            maybe_launch(p, true);
    }
    if (p->n_waiting > 0 && p->n_new == 0 && !in_retry_backoff(p))
        maybe_launch(p, false);
    if (p->n_welcome > 0 && !p->have_welcome && p->n_new == 0)
        px_pool_need_welcome(p);
    /* min_pool_size counts every worker's servers: whichever worker has the pool tops it up
     * (the shared counter keeps the total exact) */
    int nw = px_g.nworkers;
    int min = p->min_size < p->size ? p->min_size : p->size;
    if (!p->orphan && min > 0 && atomic_load(&p->shared->servers) < min && !in_retry_backoff(p) &&
        !w->shutting_down &&
        (p->last_error.len == 0 || now - p->last_error_time >= cfg->server_login_retry)) {
        if (slot_reserve_upto(p, min))
            px_server_connect(p);
    }
    /* idle here for a while another worker's clients wait at the limit: that connection is
     * no use to us right now, so let its slot go (one per tick). Not one that is idle only
     * between two of our transactions: under load, each worker would close the other's
     * connections many times a second. */
    if (nw > 1 && p->n_idle > 0 && atomic_load(&p->shared->servers) >= p->size &&
        now - container_of(p->idle_servers.prev, px_server, node)->last_used >= HANDOVER_IDLE) {
        for (int i = 0; i < nw; i++) {
            if (i != w->idx && atomic_load(&p->shared->waiting[i]) > 0) {
                px_server *s = container_of(p->idle_servers.prev, px_server, node);
                px_server_close(s, "handing the connection slot to another worker");
                hand_over(i);
                break;
            }
        }
    }
}

/* free an empty pool (worker shutdown) */
void px_pool_free(px_pool *p)
{
    px_worker *w = p->w;
    for (int i = 0; i < VAR_COUNT; i++)
        px_var_set(&w->intern, &p->welcome_vars[i], NULL);
    pktbuf_free(&p->welcome);
    pktbuf_free(&p->last_error);
    if (p->cfg)
        px_config_unref(p->cfg);
    free(p->dbname);
    free(p->user);
    free(p);
}
