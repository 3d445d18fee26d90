/*
 * The admin thread: its own libev loop, so nothing an operator does can stall a worker. It
 * serves the HTTP endpoint on admin_listen (a deliberately small HTTP/1.1 server: GET and HEAD
 * only, one request per connection, 8 KB request limit, 10 s deadline), executes the console
 * commands the workers hand it, and once a second samples every node's lag and read counter
 * (the status page's 15-minute chart, reads_per_s) and the per-database totals
 * (SHOW STATS_AVERAGES).
 */
#include "proxy/admin.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HTTP_MAX_REQ 8192
#define AVG_WINDOW 61 /* seconds of per-database totals kept for the averages */

typedef struct console_job {
    struct console_job *next;
    px_worker *w;
    px_client *c;
    uint64_t client_id;
    int level;
    char *sql;
    pktbuf out;
} console_job;

typedef struct http_conn {
    ev_io rio, wio;
    ev_timer deadline;
    int fd;
    char req[HTTP_MAX_REQ + 1];
    size_t rlen;
    pktbuf out;
    size_t wpos;
} http_conn;

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
static ev_io listen_io;
static int listen_fd = -1;
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

static void console_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)loop;
    (void)a;
    (void)revents;
    pthread_mutex_lock(&jobs_lock);
    console_job *j = jobs;
    jobs = NULL;
    pthread_mutex_unlock(&jobs_lock);
    while (j) {
        console_job *next = j->next;
        pktbuf_init(&j->out, NULL, 0);
        adm_console_exec(j->sql, j->level, &j->out);
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
            const px_stats *p = &s.pools[i].st;
            t.xact_count += p->xact_count;
            t.query_count += p->query_count;
            t.bytes_received += p->bytes_received;
            t.bytes_sent += p->bytes_sent;
            t.xact_time_us += p->xact_time_us;
            t.query_time_us += p->query_time_us;
            t.wait_time_us += p->wait_time_us;
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

static void http_close(http_conn *h)
{
    ev_io_stop(aloop, &h->rio);
    ev_io_stop(aloop, &h->wio);
    ev_timer_stop(aloop, &h->deadline);
    close(h->fd);
    pktbuf_free(&h->out);
    free(h);
}

static void http_write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    http_conn *h = container_of(io, http_conn, wio);
    (void)loop;
    (void)revents;
    while (h->wpos < h->out.len) {
        ssize_t n = send(h->fd, h->out.data + h->wpos, h->out.len - h->wpos, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            http_close(h);
            return;
        }
        h->wpos += (size_t)n;
    }
    shutdown(h->fd, SHUT_WR);
    http_close(h);
}

static void respond(http_conn *h, int code, const char *reason, const char *ctype,
                    const pktbuf *body, bool head)
{
    char hdr[512];
    int n = snprintf(hdr, sizeof(hdr),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                     code, reason, ctype, body ? body->len : 0);
    pktbuf_reset(&h->out);
    pkt_put_bytes(&h->out, hdr, (size_t)n);
    if (body && !head)
        pkt_put_bytes(&h->out, body->data, body->len);
    if (h->out.failed) {
        http_close(h);
        return;
    }
    ev_io_stop(aloop, &h->rio);
    ev_io_start(aloop, &h->wio);
}

static void respond_text(http_conn *h, int code, const char *reason, const char *text, bool head)
{
    pktbuf b;
    pktbuf_init(&b, NULL, 0);
    pkt_put_bytes(&b, text, strlen(text));
    respond(h, code, reason, "text/plain; charset=utf-8", &b, head);
    pktbuf_free(&b);
}

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

static void handle_request(http_conn *h)
{
    char method[16], target[1024];
    if (sscanf(h->req, "%15s %1023s HTTP/1.%*c", method, target) != 2 ||
        strncmp(strchr(h->req, ' ') + 1 + strlen(target), " HTTP/1.", 8) != 0) {
        respond_text(h, 400, "Bad Request", "bad request\n", false);
        return;
    }
    bool head = strcmp(method, "HEAD") == 0;
    if (!head && strcmp(method, "GET") != 0) {
        respond_text(h, 405, "Method Not Allowed", "only GET and HEAD\n", false);
        return;
    }
    char *q = strchr(target, '?');
    if (q)
        *q = '\0';
    pktbuf b;
    pktbuf_init(&b, NULL, 0);
    if (strcmp(target, "/metrics") == 0) {
        if (adm_metrics_text(&b))
            respond(h, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", &b, head);
        else
            respond_text(h, 500, "Internal Server Error", "out of memory\n", head);
    } else if (strcmp(target, "/health") == 0) {
        bool ok = serving() && adm_primaries_ok();
        respond_text(h, ok ? 200 : 503, ok ? "OK" : "Service Unavailable",
                     ok ? "ok\n" : "unavailable\n", head);
    } else if (strcmp(target, "/ready") == 0) {
        bool ok = serving();
        respond_text(h, ok ? 200 : 503, ok ? "OK" : "Service Unavailable",
                     ok ? "ready\n" : "not ready\n", head);
    } else if (strcmp(target, "/") == 0) {
        if (adm_status_page(&b))
            respond(h, 200, "OK", "text/html; charset=utf-8", &b, head);
        else
            respond_text(h, 500, "Internal Server Error", "out of memory\n", head);
    } else {
        respond_text(h, 404, "Not Found", "not found\n", head);
    }
    pktbuf_free(&b);
}

static void http_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    http_conn *h = container_of(io, http_conn, rio);
    (void)loop;
    (void)revents;
    ssize_t n = recv(h->fd, h->req + h->rlen, HTTP_MAX_REQ - h->rlen, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        http_close(h);
        return;
    }
    h->rlen += (size_t)n;
    h->req[h->rlen] = '\0';
    if (memchr(h->req, '\0', h->rlen)) {
        respond_text(h, 400, "Bad Request", "bad request\n", false);
        return;
    }
    if (strstr(h->req, "\r\n\r\n") || strstr(h->req, "\n\n")) {
        handle_request(h);
        return;
    }
    if (h->rlen >= HTTP_MAX_REQ)
        respond_text(h, 431, "Request Header Fields Too Large", "request too large\n", false);
}

static void http_deadline_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    http_close(container_of(t, http_conn, deadline));
}

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)revents;
    for (;;) {
        int fd = accept(io->fd, NULL, NULL);
        if (fd < 0)
            return;
        if (fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
            close(fd);
            continue;
        }
        http_conn *h = calloc(1, sizeof(*h));
        if (!h) {
            close(fd);
            continue;
        }
        h->fd = fd;
        pktbuf_init(&h->out, NULL, 0);
        ev_io_init(&h->rio, http_read_cb, fd, EV_READ);
        ev_io_init(&h->wio, http_write_cb, fd, EV_WRITE);
        ev_timer_init(&h->deadline, http_deadline_cb, 10.0, 0);
        ev_io_start(loop, &h->rio);
        ev_timer_start(loop, &h->deadline);
    }
}

/* "host:port" (host may be [v6], empty or *) -> listening socket */
static int listen_on(const char *spec, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (!colon || !colon[1]) {
        snprintf(err, errlen, "admin_listen: expected host:port, got \"%.64s\"", spec);
        return -1;
    }
    size_t hl = (size_t)(colon - spec);
    if (hl >= sizeof(host))
        hl = sizeof(host) - 1;
    memcpy(host, spec, hl);
    host[hl] = '\0';
    if (host[0] == '[' && hl > 1 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE},
                    *res = NULL;
    const char *h = host[0] && strcmp(host, "*") != 0 ? host : NULL;
    int rc = getaddrinfo(h, colon + 1, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, errlen, "admin_listen %s: %s", spec, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 64) != 0) {
        snprintf(err, errlen, "admin_listen %s: %s", spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    return fd;
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
    if (listen_fd >= 0)
        close(listen_fd);
    listen_fd = -1;
    pthread_mutex_lock(&jobs_lock);
    console_job *j = jobs;
    jobs = NULL;
    pthread_mutex_unlock(&jobs_lock);
    while (j) {
        console_job *next = j->next;
        free(j->sql);
        free(j);
        j = next;
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
    ev_timer_init(&sampler, sampler_cb, 1.0, 1.0);
    ev_timer_start(aloop, &sampler);
    if (cfg->admin_listen && *cfg->admin_listen) {
        listen_fd = listen_on(cfg->admin_listen, err, errlen);
        if (listen_fd < 0)
            return false;
        ev_io_init(&listen_io, accept_cb, listen_fd, EV_READ);
        ev_io_start(aloop, &listen_io);
        log_info("admin HTTP endpoint on %s (/metrics, /health, /ready, /)", cfg->admin_listen);
    }
    if (pthread_create(&athread, NULL, admin_main, NULL) != 0) {
        snprintf(err, errlen, "admin thread: %s", strerror(errno));
        return false;
    }
    started = true;
    return true;
}
