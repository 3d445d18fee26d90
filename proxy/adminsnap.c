/*
 * Snapshots of the workers' figures for the operators' views. Pools, clients, servers and
 * their px_stats belong to one worker thread and are plain (non-atomic) fields, so they are
 * never read from another thread: the collector posts a WMSG_CALL to each worker, the worker
 * copies its figures into its own part, and the collector waits for all parts. A part that
 * comes late (a worker stuck longer than the timeout) is freed by whoever drops the last
 * reference, so a slow worker never touches freed memory.
 */
#include "proxy/admin.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const double adm_hist_bounds[ADM_HIST_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                  0.05,   0.1,   0.25,   0.5,   1,    5};

typedef struct snap_req {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int refs, pending;
    bool with_conns;
    adm_snap parts[PX_MAX_WORKERS];
    bool done[PX_MAX_WORKERS];
} snap_req;

typedef struct snap_job {
    snap_req *req;
    int idx;
} snap_job;

/* latency histogram bucket index of a duration */
int px_hist_bucket(double seconds)
{
    for (int i = 0; i < ADM_HIST_BUCKETS; i++)
        if (seconds <= adm_hist_bounds[i])
            return i;
    return ADM_HIST_BUCKETS;
}

static void req_unref(snap_req *r)
{
    pthread_mutex_lock(&r->lock);
    int left = --r->refs;
    pthread_mutex_unlock(&r->lock);
    if (left > 0)
        return;
    for (int i = 0; i < PX_MAX_WORKERS; i++)
        adm_snap_free(&r->parts[i]);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    free(r);
}

static adm_pool_row *add_pool(adm_snap *s)
{
    if (s->n_pools == s->cap_pools) {
        int cap = s->cap_pools ? s->cap_pools * 2 : 16;
        adm_pool_row *n = realloc(s->pools, (size_t)cap * sizeof(*n));
        if (!n)
            return NULL;
        s->pools = n;
        s->cap_pools = cap;
    }
    adm_pool_row *r = &s->pools[s->n_pools++];
    memset(r, 0, sizeof(*r));
    return r;
}

static adm_conn_row *add_conn(adm_snap *s)
{
    if (s->n_conns == s->cap_conns) {
        int cap = s->cap_conns ? s->cap_conns * 2 : 32;
        adm_conn_row *n = realloc(s->conns, (size_t)cap * sizeof(*n));
        if (!n)
            return NULL;
        s->conns = n;
        s->cap_conns = cap;
    }
    adm_conn_row *r = &s->conns[s->n_conns++];
    memset(r, 0, sizeof(*r));
    return r;
}

/* "1.2.3.4:567" -> host and port */
static void split_addr(const char *a, char *host, size_t cap, int *port)
{
    const char *colon = strrchr(a, ':');
    if (!colon || strcmp(a, "unix") == 0) {
        snprintf(host, cap, "%s", a);
        *port = 0;
        return;
    }
    size_t n = (size_t)(colon - a);
    if (n >= cap)
        n = cap - 1;
    memcpy(host, a, n);
    host[n] = '\0';
    *port = atoi(colon + 1);
}

static void local_addr(int fd, char *host, size_t cap, int *port)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    host[0] = '\0';
    *port = 0;
    if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, host, (socklen_t)cap);
        *port = ntohs(in->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, (socklen_t)cap);
        *port = ntohs(in6->sin6_port);
    } else {
        snprintf(host, cap, "unix");
    }
}

static const char *client_state(const px_client *c)
{
    switch (c->state) {
    case CL_ACTIVE:
    case CL_IDLE:
        return "active";
    case CL_WAITING:
    case CL_WELCOME:
    case CL_AUTHQ:
        return "waiting";
    default:
        return "login";
    }
}

static const char *server_state(const px_server *s)
{
    switch (s->state) {
    case SV_ACTIVE:
        return "active";
    case SV_IDLE:
        return "idle";
    case SV_USED:
        return "tested";
    default:
        return "new";
    }
}

void adm_stats_add(px_stats *to, const px_stats *x)
{
    to->xact_count += x->xact_count;
    to->query_count += x->query_count;
    to->bytes_received += x->bytes_received;
    to->bytes_sent += x->bytes_sent;
    to->xact_time_us += x->xact_time_us;
    to->query_time_us += x->query_time_us;
    to->wait_time_us += x->wait_time_us;
}

static void conn_buffers(adm_conn_row *r, const px_conn *io)
{
    r->rlen = io->rlen;
    r->rcap = io->rcap;
    r->wpos = io->wpos;
    r->wlen = io->wlen;
    r->wcap = io->wcap;
    r->pass_left = io->pass_left;
}

static void add_client_row(adm_snap *s, px_client *c, double now)
{
    if (c->io.closed || c->state == CL_LOGIN)
        return;
    adm_conn_row *r = add_conn(s);
    if (!r)
        return;
    r->type = 'C';
    snprintf(r->user, sizeof(r->user), "%s", c->user ? c->user : "");
    snprintf(r->db, sizeof(r->db), "%s", c->dbname ? c->dbname : "");
    snprintf(r->state, sizeof(r->state), "%s", client_state(c));
    split_addr(c->addr, r->addr, sizeof(r->addr), &r->port);
    local_addr(c->io.fd, r->local_addr, sizeof(r->local_addr), &r->local_port);
    if (c->vars[VAR_APPLICATION_NAME])
        snprintf(r->app, sizeof(r->app), "%s", c->vars[VAR_APPLICATION_NAME]->s);
    r->connect_time = c->connect_time;
    r->request_time = c->last_active;
    r->wait = c->state == CL_WAITING ? now - c->wait_start : 0;
    r->ptr = (uint64_t)(uintptr_t)c;
    r->link = (uint64_t)(uintptr_t)c->server;
    r->tls = c->io.ssl != NULL;
    conn_buffers(r, &c->io);
    r->admin = c->admin != 0;
    r->prepared = c->stmts ? (int)c->stmts->count : 0;
    r->node = c->server ? c->server->node_idx : 0;
}

static void add_server_row(adm_snap *s, px_server *sv)
{
    if (sv->io.closed)
        return;
    adm_conn_row *r = add_conn(s);
    if (!r)
        return;
    px_pool *p = sv->pool;
    r->type = 'S';
    snprintf(r->user, sizeof(r->user), "%s", p->user);
    snprintf(r->db, sizeof(r->db), "%s", p->dbname);
    snprintf(r->state, sizeof(r->state), "%s", server_state(sv));
    if (p->db && sv->node_idx < p->db->n_nodes) {
        snprintf(r->addr, sizeof(r->addr), "%s", p->db->nodes[sv->node_idx].host);
        r->port = p->db->nodes[sv->node_idx].port;
    }
    local_addr(sv->io.fd, r->local_addr, sizeof(r->local_addr), &r->local_port);
    if (sv->vars[VAR_APPLICATION_NAME])
        snprintf(r->app, sizeof(r->app), "%s", sv->vars[VAR_APPLICATION_NAME]->s);
    r->connect_time = sv->connect_time;
    r->request_time = sv->last_used;
    r->ptr = (uint64_t)(uintptr_t)sv;
    r->link = (uint64_t)(uintptr_t)sv->client;
    r->remote_pid = (int)sv->backend_pid;
    r->tls = sv->io.ssl != NULL;
    r->close_needed = sv->dirty;
    conn_buffers(r, &sv->io);
    r->node = sv->node_idx;
    r->prepared = (int)sv->stmts.count;
}

static void add_list_clients(adm_snap *s, px_list *head, double now)
{
    for (px_list *n = head->next; n != head; n = n->next)
        add_client_row(s, container_of(n, px_client, node), now);
}

static void add_list_servers(adm_snap *s, px_list *head)
{
    for (px_list *n = head->next; n != head; n = n->next)
        add_server_row(s, container_of(n, px_server, node));
}

/* in the worker's thread: copy its figures into part idx */
static void collect_in_worker(px_worker *w, void *arg)
{
    snap_job *job = arg;
    snap_req *r = job->req;
    adm_snap part = {0};
    double now = px_now(w);
    for (px_pool *p = w->pools; p; p = p->next) {
        adm_pool_row *row = add_pool(&part);
        if (!row)
            break;
        snprintf(row->db, sizeof(row->db), "%s", p->dbname);
        snprintf(row->user, sizeof(row->user), "%s", p->user);
        row->node = p->node_idx;
        row->mode = p->mode;
        row->cl_active = p->n_active_clients + p->n_idle_clients;
        row->cl_idle = p->n_idle_clients;
        row->cl_waiting = p->n_waiting + p->n_welcome;
        row->sv_active = p->n_active;
        row->sv_idle = p->n_idle;
        row->sv_used = p->n_used;
        row->sv_login = p->n_new;
        row->st = p->stats;
        if (!px_list_empty(&p->waiting_clients)) {
            px_client *c = container_of(p->waiting_clients.next, px_client, node);
            row->maxwait = now - c->wait_start;
        }
        if (r->with_conns) {
            add_list_clients(&part, &p->active_clients, now);
            add_list_clients(&part, &p->idle_clients, now);
            add_list_clients(&part, &p->waiting_clients, now);
            add_list_clients(&part, &p->welcome_clients, now);
            add_list_servers(&part, &p->active_servers);
            add_list_servers(&part, &p->idle_servers);
            add_list_servers(&part, &p->used_servers);
            add_list_servers(&part, &p->new_servers);
        }
    }
    for (px_list *n = w->login_clients.next; n != &w->login_clients; n = n->next) {
        px_client *c = container_of(n, px_client, node);
        if (c->admin && c->state != CL_LOGIN) {
            if (r->with_conns)
                add_client_row(&part, c, now);
        } else {
            part.login_clients++;
        }
    }
    part.n_clients = w->n_clients;
    part.n_servers = w->n_servers;
    part.free_bufs = w->n_free_bufs;
    struct timespec cpu;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu) == 0) /* this runs in the worker */
        part.cpu_us = (uint64_t)cpu.tv_sec * 1000000u + (uint64_t)cpu.tv_nsec / 1000u;
    part.poll_us = (uint64_t)(w->poll_seconds * 1e6);
    pthread_mutex_lock(&r->lock);
    r->parts[job->idx] = part;
    r->done[job->idx] = true;
    r->pending--;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
    free(job);
    req_unref(r);
}

static void append_part(adm_snap *out, const adm_snap *p)
{
    for (int i = 0; i < p->n_pools; i++) {
        adm_pool_row *r = add_pool(out);
        if (r)
            *r = p->pools[i];
    }
    for (int i = 0; i < p->n_conns; i++) {
        adm_conn_row *r = add_conn(out);
        if (r)
            *r = p->conns[i];
    }
    out->login_clients += p->login_clients;
    out->n_clients += p->n_clients;
    out->n_servers += p->n_servers;
    out->free_bufs += p->free_bufs;
}

/* collect every worker's figures; see admin.h */
bool adm_collect(adm_snap *out, bool with_conns, double timeout_s)
{
    memset(out, 0, sizeof(*out));
    int n = px_g.nworkers;
    out->workers = n;
    snap_req *r = calloc(1, sizeof(*r));
    if (!r)
        return false;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    r->refs = 1;
    r->with_conns = with_conns;
    for (int i = 0; i < n; i++) {
        px_worker *w = px_g.workers[i];
        snap_job *job = calloc(1, sizeof(*job));
        px_wmsg *m = calloc(1, sizeof(*m));
        if (!w || !job || !m) {
            free(job);
            free(m);
            continue;
        }
        job->req = r;
        job->idx = i;
        m->kind = WMSG_CALL;
        m->fn = collect_in_worker;
        m->arg = job;
        pthread_mutex_lock(&r->lock);
        r->refs++;
        r->pending++;
        pthread_mutex_unlock(&r->lock);
        px_worker_post(w, m);
    }
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    long long ns = (long long)(timeout_s * 1e9) + dl.tv_nsec;
    dl.tv_sec += (time_t)(ns / 1000000000LL);
    dl.tv_nsec = (long)(ns % 1000000000LL);
    /* short waits: a worker that stopped (shutdown) never answers, so stop waiting then */
    pthread_mutex_lock(&r->lock);
    while (r->pending > 0) {
        struct timespec now, step;
        clock_gettime(CLOCK_REALTIME, &now);
        if (now.tv_sec > dl.tv_sec || (now.tv_sec == dl.tv_sec && now.tv_nsec >= dl.tv_nsec))
            break;
        if (atomic_load(&px_g.n_workers_running) < n)
            break;
        step = now;
        step.tv_nsec += 50 * 1000 * 1000;
        if (step.tv_nsec >= 1000000000L) {
            step.tv_sec++;
            step.tv_nsec -= 1000000000L;
        }
        if (step.tv_sec > dl.tv_sec || (step.tv_sec == dl.tv_sec && step.tv_nsec > dl.tv_nsec))
            step = dl;
        pthread_cond_timedwait(&r->cond, &r->lock, &step);
    }
    bool all = r->pending == 0;
    for (int i = 0; i < n; i++)
        if (r->done[i]) {
            append_part(out, &r->parts[i]);
            out->worker_clients[i] = r->parts[i].n_clients;
            out->worker_cpu_us[i] = r->parts[i].cpu_us;
            out->worker_poll_us[i] = r->parts[i].poll_us;
            out->workers_answered++;
        }
    pthread_mutex_unlock(&r->lock);
    req_unref(r);
    return all;
}

void adm_snap_free(adm_snap *s)
{
    free(s->pools);
    free(s->conns);
    memset(s, 0, sizeof(*s));
}

static void add_stats(px_stats *a, const px_stats *b)
{
    a->xact_count += b->xact_count;
    a->query_count += b->query_count;
    a->server_assignments += b->server_assignments;
    a->bytes_received += b->bytes_received;
    a->bytes_sent += b->bytes_sent;
    a->xact_time_us += b->xact_time_us;
    a->query_time_us += b->query_time_us;
    a->wait_time_us += b->wait_time_us;
    a->errors += b->errors;
    a->prep_hits += b->prep_hits;
    a->prep_misses += b->prep_misses;
    a->pipelined += b->pipelined;
    a->pipelined_deep += b->pipelined_deep;
    for (int i = 0; i <= PX_HIST_BUCKETS; i++) {
        a->xact_hist[i] += b->xact_hist[i];
        a->query_hist[i] += b->query_hist[i];
    }
}

/* sum the pools by (db, user[, node]) */
void adm_snap_merge_pools(const adm_snap *s, bool by_node, adm_pool_row **out, int *n)
{
    adm_pool_row *rows = calloc((size_t)s->n_pools + 1, sizeof(*rows));
    int k = 0;
    if (!rows) {
        *out = NULL;
        *n = 0;
        return;
    }
    for (int i = 0; i < s->n_pools; i++) {
        const adm_pool_row *p = &s->pools[i];
        adm_pool_row *t = NULL;
        for (int j = 0; j < k && !t; j++)
            if (strcmp(rows[j].db, p->db) == 0 && strcmp(rows[j].user, p->user) == 0 &&
                (!by_node || rows[j].node == p->node))
                t = &rows[j];
        if (!t) {
            t = &rows[k++];
            *t = *p;
            if (!by_node)
                t->node = 0;
            continue;
        }
        t->cl_active += p->cl_active;
        t->cl_idle += p->cl_idle;
        t->cl_waiting += p->cl_waiting;
        t->sv_active += p->sv_active;
        t->sv_idle += p->sv_idle;
        t->sv_used += p->sv_used;
        t->sv_login += p->sv_login;
        if (p->maxwait > t->maxwait)
            t->maxwait = p->maxwait;
        add_stats(&t->st, &p->st);
    }
    *out = rows;
    *n = k;
}
