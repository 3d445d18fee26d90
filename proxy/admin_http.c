/*
 * The admin thread: its own libev loop, so nothing an operator does can stall a worker. It
 * serves the HTTP endpoint on admin_listen (common/adminhttp.c: GET and HEAD only, one request
 * per connection, 8 kB request limit, 10 s deadline), executes the console
 * commands the workers hand it, and once a second samples every node's lag and read counter
 * (the status page's 15-minute chart, reads_per_s) and the per-database totals
 * (SHOW STATS_AVERAGES).
 */
#include "proxy/admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define AVG_WINDOW 61 /* seconds of per-database totals kept for the averages */

typedef struct console_job {
    struct console_job *next;
    px_worker *w;
    px_client *c;
    uint64_t client_id;
    int level;
    char *sql;
    pktbuf out;
    char wait_db[256]; /* WAIT_CLOSE: the database whose servers it waits for ("" all) */
} console_job;

typedef struct db_avg {
    struct db_avg *next;
    char name[64];
    px_stats ring[AVG_WINDOW];
    double at[AVG_WINDOW];
    int head, count;
} db_avg;

static struct ev_loop *aloop;
static pthread_t athread;
static ev_async console_wake;
static ev_timer sampler;
static admin_http *http;
static pthread_mutex_t jobs_lock = PTHREAD_MUTEX_INITIALIZER;
static console_job *jobs;
static pthread_mutex_t hist_lock = PTHREAD_MUTEX_INITIALIZER;
static adm_node_hist *hist;
static db_avg *avgs;

/* ------------------------------------------------------------------------------------------ */
/* console jobs                                                                                */
/* ------------------------------------------------------------------------------------------ */

/* in the client's worker: deliver the answer if the client is still there */
static void console_reply(px_worker *w, void *arg)
{
    console_job *j = arg;
    for (px_list *n = w->login_clients.next; n != &w->login_clients; n = n->next) {
        px_client *c = container_of(n, px_client, node);
        if (c != j->c || c->id != j->client_id || c->io.closed || !c->admin)
            continue;
        c->state = CL_IDLE;
        c->last_active = px_now(w);
        if (j->out.failed || !px_conn_append(&c->io, j->out.data, j->out.len) ||
            !px_conn_flush(&c->io)) {
            px_client_close(c, "write error");
            break;
        }
        if (c->io.rlen)
            px_conn_schedule(&c->io);
        break;
    }
    pktbuf_free(&j->out);
    free(j->sql);
    free(j);
    px_worker_drain(w);
}

/* a console command from a worker: run it in the admin thread */
void px_admin_submit(px_worker *w, px_client *c, const char *sql)
{
    console_job *j = calloc(1, sizeof(*j));
    if (!j || !(j->sql = strdup(sql))) {
        free(j);
        px_client_fail(c, "53200", "out of memory");
        return;
    }
    j->w = w;
    j->c = c;
    j->client_id = c->id;
    j->level = c->admin;
    pthread_mutex_lock(&jobs_lock);
    console_job **pp = &jobs;
    while (*pp)
        pp = &(*pp)->next;
    *pp = j;
    pthread_mutex_unlock(&jobs_lock);
    ev_async_send(aloop, &console_wake);
}

/* the answer goes back to the client's worker */
static void console_done(console_job *j)
{
    px_wmsg *m = calloc(1, sizeof(*m));
    if (m) {
        m->kind = WMSG_CALL;
        m->fn = console_reply;
        m->arg = j;
        px_worker_post(j->w, m);
    } else {
        pktbuf_free(&j->out);
        free(j->sql);
        free(j);
    }
}

/* WAIT_CLOSE answers once the servers it waits for are gone: checked every 100 ms, so the
 * admin thread (HTTP, sampler, other consoles) never blocks on it */
static console_job *waiting;
static ev_timer wait_timer;

static void wait_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    console_job **pp = &waiting;
    while (*pp) {
        console_job *j = *pp;
        if (adm_servers_closing(j->wait_db) > 0) {
            pp = &j->next;
            continue;
        }
        *pp = j->next;
        j->next = NULL;
        adm_console_finish_wait(&j->out);
        console_done(j);
    }
    if (!waiting)
        ev_timer_stop(loop, t);
}

static void console_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)a;
    (void)revents;
    pthread_mutex_lock(&jobs_lock);
    console_job *j = jobs;
    jobs = NULL;
    pthread_mutex_unlock(&jobs_lock);
    while (j) {
        console_job *next = j->next;
        pktbuf_init(&j->out, NULL, 0);
        if (adm_console_exec(j->sql, j->level, &j->out, j->wait_db, sizeof(j->wait_db))) {
            console_done(j);
        } else {
            j->next = waiting;
            waiting = j;
            if (!ev_is_active(&wait_timer))
                ev_timer_again(loop, &wait_timer);
        }
        j = next;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* sampler                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* the history list (owned by the admin thread; readers in it need no lock) */
adm_node_hist *adm_history(void)
{
    return hist;
}

/* reads per second of a node over the last second */
double adm_reads_per_s(const router_node *n)
{
    double r = 0;
    pthread_mutex_lock(&hist_lock);
    for (adm_node_hist *h = hist; h; h = h->next)
        if (h->n == n)
            r = h->reads_per_s;
    pthread_mutex_unlock(&hist_lock);
    return r;
}

static adm_node_hist *hist_get(px_route_db *d, router_node *n, int idx)
{
    for (adm_node_hist *h = hist; h; h = h->next)
        if (h->n == n)
            return h;
    adm_node_hist *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->d = d;
    h->n = n;
    h->idx = idx;
    h->last_reads = atomic_load(&n->reads_routed);
    /* append, so the page lists nodes in configuration order */
    adm_node_hist **pp = &hist;
    while (*pp)
        pp = &(*pp)->next;
    *pp = h;
    return h;
}

static void sample_nodes(void)
{
    pthread_mutex_lock(&hist_lock);
    for (px_route_db *d = px_route_db_next(NULL); d; d = px_route_db_next(d)) {
        router_topology *t = d->topo;
        if (!t)
            continue;
        int n = router_topology_count(t);
        for (int i = 0; i < n; i++) {
            router_node *nd = router_topology_node(t, i);
            adm_node_hist *h = hist_get(d, nd, i);
            if (!h)
                continue;
            uint64_t reads = atomic_load(&nd->reads_routed);
            h->reads_per_s = (double)(reads - h->last_reads);
            h->last_reads = reads;
            float v = atomic_load(&nd->state) == ROUTER_NODE_DOWN
                          ? -1.0f
                          : (float)atomic_load(&nd->lag_ms) / 1000.0f;
            h->lag_s[h->head] = v;
            h->head = (h->head + 1) % ADM_LAG_HISTORY;
            if (h->count < ADM_LAG_HISTORY)
                h->count++;
        }
    }
    pthread_mutex_unlock(&hist_lock);
}

static db_avg *avg_get(const char *name)
{
    for (db_avg *a = avgs; a; a = a->next)
        if (strcmp(a->name, name) == 0)
            return a;
    db_avg *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    snprintf(a->name, sizeof(a->name), "%s", name);
    a->next = avgs;
    avgs = a;
    return a;
}

static void sample_totals(double now)
{
    adm_snap s;
    adm_collect(&s, false, 0.5);
    /* totals per database */
    for (db_avg *a = avgs; a; a = a->next) {
        px_stats t = {0};
        for (int i = 0; i < s.n_pools; i++) {
            if (strcmp(s.pools[i].db, a->name) != 0)
                continue;
            adm_stats_add(&t, &s.pools[i].st);
        }
        a->ring[a->head] = t;
        a->at[a->head] = now;
        a->head = (a->head + 1) % AVG_WINDOW;
        if (a->count < AVG_WINDOW)
            a->count++;
    }
    for (int i = 0; i < s.n_pools; i++)
        avg_get(s.pools[i].db);
    adm_snap_free(&s);
}

/* per-second rates and per-transaction / per-query times over the last minute (as pgbouncer's
 * stats_period averages) */
bool adm_db_averages(const char *db, px_stats *avg)
{
    memset(avg, 0, sizeof(*avg));
    for (db_avg *a = avgs; a; a = a->next) {
        if (strcmp(a->name, db) != 0 || a->count < 2)
            continue;
        int last = (a->head + AVG_WINDOW - 1) % AVG_WINDOW;
        int first = a->count < AVG_WINDOW ? 0 : a->head;
        const px_stats *l = &a->ring[last], *f = &a->ring[first];
        double dt = a->at[last] - a->at[first];
        if (dt <= 0)
            return false;
        uint64_t dx = l->xact_count - f->xact_count, dq = l->query_count - f->query_count;
        avg->xact_count = (uint64_t)((double)dx / dt);
        avg->query_count = (uint64_t)((double)dq / dt);
        avg->bytes_received = (uint64_t)((double)(l->bytes_received - f->bytes_received) / dt);
        avg->bytes_sent = (uint64_t)((double)(l->bytes_sent - f->bytes_sent) / dt);
        avg->xact_time_us = dx ? (l->xact_time_us - f->xact_time_us) / dx : 0;
        avg->query_time_us = dq ? (l->query_time_us - f->query_time_us) / dq : 0;
        avg->wait_time_us = dx ? (l->wait_time_us - f->wait_time_us) / dx : 0;
        return true;
    }
    return false;
}

static void sampler_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)t;
    (void)revents;
    sample_nodes();
    sample_totals(ev_now(loop));
}

/* ------------------------------------------------------------------------------------------ */
/* HTTP                                                                                        */
/* ------------------------------------------------------------------------------------------ */

/* is every worker alive and answering? */
static bool serving(void)
{
    if (atomic_load(&px_g.n_workers_running) <= 0)
        return false;
    adm_snap s;
    bool ok = adm_collect(&s, false, 1.0);
    adm_snap_free(&s);
    return ok;
}

static void reply_buf(admin_http_reply *r, bool built, const char *ctype, const pktbuf *b)
{
    if (!built || b->failed) {
        admin_http_text(r, 500, "out of memory\n");
        return;
    }
    r->ctype = ctype;
    admin_http_put(r, b->data, b->len);
}

static void handle_request(void *arg, const char *path, admin_http_reply *r)
{
    (void)arg;
    pktbuf b;
    pktbuf_init(&b, NULL, 0);
    if (strcmp(path, "/metrics") == 0) {
        reply_buf(r, adm_metrics_text(&b), "text/plain; version=0.0.4; charset=utf-8", &b);
    } else if (strcmp(path, "/health") == 0) {
        bool ok = serving() && adm_primaries_ok();
        admin_http_text(r, ok ? 200 : 503, ok ? "ok\n" : "unavailable\n");
    } else if (strcmp(path, "/ready") == 0) {
        bool ok = serving();
        admin_http_text(r, ok ? 200 : 503, ok ? "ready\n" : "not ready\n");
    } else if (strcmp(path, "/") == 0) {
        reply_buf(r, adm_status_page(&b), "text/html; charset=utf-8", &b);
    } else {
        admin_http_text(r, 404, "not found\n");
    }
    pktbuf_free(&b);
}

static ev_async stop_wake;
static bool started;

static void stop_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)a;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static void *admin_main(void *arg)
{
    (void)arg;
    ev_run(aloop, 0);
    return NULL;
}

/* stop and join the admin thread; console jobs still queued are dropped (their clients are
 * being closed by the shutdown anyway) */
void px_admin_stop(void)
{
    if (!started)
        return;
    ev_async_send(aloop, &stop_wake);
    pthread_join(athread, NULL);
    started = false;
    admin_http_stop(http); /* the thread is gone: its loop is ours now */
    http = NULL;
    pthread_mutex_lock(&jobs_lock);
    console_job *j = jobs;
    jobs = NULL;
    pthread_mutex_unlock(&jobs_lock);
    for (int list = 0; list < 2; list++) {
        while (j) {
            console_job *next = j->next;
            if (list)
                pktbuf_free(&j->out);
            free(j->sql);
            free(j);
            j = next;
        }
        j = waiting; /* WAIT_CLOSE answers still due */
        waiting = NULL;
    }
}

/* start the admin thread (and the HTTP endpoint when admin_listen is set) */
bool px_admin_start(px_config *cfg, char *err, size_t errlen)
{
    aloop = ev_loop_new(EVFLAG_AUTO);
    if (!aloop) {
        snprintf(err, errlen, "admin thread: cannot create an event loop");
        return false;
    }
    ev_async_init(&console_wake, console_cb);
    ev_async_start(aloop, &console_wake);
    ev_async_init(&stop_wake, stop_cb);
    ev_async_start(aloop, &stop_wake);
    ev_init(&wait_timer, wait_cb);
    wait_timer.repeat = 0.1;
    ev_timer_init(&sampler, sampler_cb, 1.0, 1.0);
    ev_timer_start(aloop, &sampler);
    if (cfg->admin_listen && *cfg->admin_listen) {
        http = admin_http_start(aloop, cfg->admin_listen, handle_request, NULL, err, errlen);
        if (!http)
            return false;
        log_info("admin HTTP endpoint on %s (/metrics, /health, /ready, /)", cfg->admin_listen);
    }
    if (pthread_create(&athread, NULL, admin_main, NULL) != 0) {
        snprintf(err, errlen, "admin thread: %s", strerror(errno));
        return false;
    }
    started = true;
    return true;
}
