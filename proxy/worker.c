/*
 * Workers: one thread and one libev loop each. Every worker has its own SO_REUSEPORT listening
 * socket per TCP address (the kernel spreads new connections over them) and watches the one
 * shared unix socket; a client, its pools and their server connections then stay in that
 * worker for life, so the data path takes no locks. Workers talk to each other only through
 * their inbox (a locked list + ev_async): reloads, cancel requests, shutdown.
 *
 * Each pass of the loop ends with px_worker_drain: connections queued for processing run
 * (deferred so no callback re-enters another) and closed connections are freed (so nothing
 * on the stack of a callback points at freed memory).
 */
#include "proxy/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define JANITOR_PERIOD 0.2

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents);
static void wake_cb(struct ev_loop *loop, ev_async *a, int revents);
static void janitor_cb(struct ev_loop *loop, ev_timer *t, int revents);
static void poll_check_cb(struct ev_loop *loop, ev_check *c, int revents);
static void poll_configure(px_worker *w);
static void poll_idle_cb(struct ev_loop *loop, ev_idle *i, int revents);
static void *worker_main(void *arg);
static void worker_stop_listening(px_worker *w);

static int unix_fd = -1;
static char unix_path[108];

/* ------------------------------------------------------------------------------------------ */
/* listening sockets                                                                           */
/* ------------------------------------------------------------------------------------------ */

typedef struct listen_addr {
    struct sockaddr_storage sa;
    socklen_t len;
} listen_addr;

/* the TCP addresses of listen_addr ("*" = every IPv4 and IPv6 address) */
static int resolve_listen(const px_config *cfg, listen_addr *out, int max, char *err, size_t errlen)
{
    int n = 0;
    const char *p = cfg->listen_addr;
    char port[16];
    snprintf(port, sizeof(port), "%d", cfg->listen_port);
    while (p && *p && n < max) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        char host[256];
        while (l && (*p == ' ' || *p == '\t')) {
            p++;
            l--;
        }
        while (l && (p[l - 1] == ' ' || p[l - 1] == '\t'))
            l--;
        if (l >= sizeof(host)) {
            snprintf(err, errlen, "listen_addr entry too long");
            return -1;
        }
        memcpy(host, p, l);
        host[l] = '\0';
        p = e ? e + 1 : NULL;
        if (!*host)
            continue;
        struct addrinfo hints = {.ai_family = AF_UNSPEC,
                                 .ai_socktype = SOCK_STREAM,
                                 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
        struct addrinfo *res = NULL;
        int rc = getaddrinfo(strcmp(host, "*") == 0 ? NULL : host, port, &hints, &res);
        if (rc != 0) {
            snprintf(err, errlen, "listen_addr \"%s\": %s", host, gai_strerror(rc));
            return -1;
        }
        for (struct addrinfo *ai = res; ai && n < max; ai = ai->ai_next) {
            bool dup = false;
            for (int i = 0; i < n; i++)
                if (out[i].len == ai->ai_addrlen &&
                    memcmp(&out[i].sa, ai->ai_addr, out[i].len) == 0)
                    dup = true;
            if (dup)
                continue;
            memcpy(&out[n].sa, ai->ai_addr, ai->ai_addrlen);
            out[n].len = ai->ai_addrlen;
            n++;
        }
        freeaddrinfo(res);
    }
    return n;
}

static int tcp_listener(const listen_addr *a, int backlog, bool reuseport, bool defer, char *err,
                        size_t errlen)
{
    int fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (defer) {
        /* the kernel hands the connection over with its startup packet: one wake-up less per
         * connection; the value bounds how long a silent one may sit (pgbouncer's 45 s) */
        int secs = 45;
        setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof(secs));
    }
    if (a->sa.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&a->sa, a->len) != 0 || listen(fd, backlog) != 0) {
        char host[INET6_ADDRSTRLEN] = "?";
        int port = 0;
        if (a->sa.ss_family == AF_INET) {
            inet_ntop(AF_INET, &((const struct sockaddr_in *)&a->sa)->sin_addr, host, sizeof(host));
            port = ntohs(((const struct sockaddr_in *)&a->sa)->sin_port);
        } else {
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&a->sa)->sin6_addr, host,
                      sizeof(host));
            port = ntohs(((const struct sockaddr_in6 *)&a->sa)->sin6_port);
        }
        snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int make_unix_listener(const px_config *cfg, char *err, size_t errlen)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    int l = snprintf(un.sun_path, sizeof(un.sun_path), "%s/.s.PGSQL.%d", cfg->unix_socket_dir,
                     cfg->listen_port);
    if (l < 0 || (size_t)l >= sizeof(un.sun_path)) {
        snprintf(err, errlen, "unix_socket_dir too long");
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    /* a socket file nobody answers on is left over from a crash: replace it */
    if (connect(fd, (struct sockaddr *)&un, sizeof(un)) == 0) {
        snprintf(err, errlen, "%s is in use by another process", un.sun_path);
        close(fd);
        return -1;
    }
    close(fd);
    unlink(un.sun_path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&un, sizeof(un)) != 0 ||
        listen(fd, cfg->listen_backlog) != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", un.sun_path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    chmod(un.sun_path, (mode_t)cfg->unix_socket_mode);
    strcpy(unix_path, un.sun_path);
    return fd;
}

/* ------------------------------------------------------------------------------------------ */
/* workers                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static px_worker *worker_new(int idx, px_config *cfg)
{
    px_worker *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->idx = idx;
    w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    if (!w->loop) {
        free(w);
        return NULL;
    }
    ev_set_userdata(w->loop, w);
    w->cfg = px_config_ref(cfg);
    w->buf_size = (uint32_t)cfg->pkt_buf;
    w->scratch_cap = w->buf_size;
    w->scratch = malloc(w->scratch_cap);
    w->max_free_bufs = 128;
    w->free_bufs = calloc((size_t)w->max_free_bufs, sizeof(uint8_t *));
    pthread_mutex_init(&w->inbox_lock, NULL);
    px_list_init(&w->login_clients);
    pktbuf_init(&w->tmp, NULL, 0);
    w->next_id = (uint64_t)idx << 48;
    ev_async_init(&w->wake, wake_cb);
    ev_async_start(w->loop, &w->wake);
    ev_timer_init(&w->janitor, janitor_cb, JANITOR_PERIOD, JANITOR_PERIOD);
    ev_timer_start(w->loop, &w->janitor);
    ev_check_init(&w->poll_check, poll_check_cb);
    ev_idle_init(&w->poll_idle, poll_idle_cb);
    poll_configure(w);

    if (!w->scratch || !w->free_bufs)
        return NULL;
    return w;
}

static void add_listener(px_worker *w, int fd, bool is_unix)
{
    px_listener *l = &w->listeners[w->n_listeners++];
    l->fd = fd;
    l->is_unix = is_unix;
    l->w = w;
    ev_io_init(&l->io, accept_cb, fd, EV_READ);
    ev_io_start(w->loop, &l->io);
}

/* start n workers listening as cfg says */
bool px_workers_start(px_config *cfg, int n, char *err, size_t errlen)
{
    listen_addr addrs[6];
    int na = resolve_listen(cfg, addrs, 6, err, errlen);
    if (na < 0)
        return false;
    /* bind once without SO_REUSEPORT: fails if anyone (even another tusk) holds the port */
    for (int i = 0; i < na; i++) {
        int fd = tcp_listener(&addrs[i], 1, false, false, err, errlen);
        if (fd < 0)
            return false;
        close(fd);
    }
    if (cfg->unix_socket_dir && *cfg->unix_socket_dir) {
        unix_fd = make_unix_listener(cfg, err, errlen);
        if (unix_fd < 0)
            return false;
    }
    if (na == 0 && unix_fd < 0) {
        snprintf(err, errlen, "nothing to listen on");
        return false;
    }
    px_g.nworkers = n;
    for (int i = 0; i < n; i++) {
        px_worker *w = worker_new(i, cfg);
        if (!w) {
            snprintf(err, errlen, "out of memory creating worker %d", i);
            return false;
        }
        px_g.workers[i] = w;
        for (int j = 0; j < na; j++) {
            int fd = tcp_listener(&addrs[j], cfg->listen_backlog, true, cfg->tcp_defer_accept, err,
                                  errlen);
            if (fd < 0)
                return false;
            add_listener(w, fd, false);
        }
        if (unix_fd >= 0)
            add_listener(w, unix_fd, true);
    }
    for (int i = 0; i < n; i++) {
        atomic_fetch_add(&px_g.n_workers_running, 1);
        if (pthread_create(&px_g.workers[i]->thread, NULL, worker_main, px_g.workers[i]) != 0) {
            atomic_fetch_sub(&px_g.n_workers_running, 1);
            snprintf(err, errlen, "cannot start worker thread: %s", strerror(errno));
            return false;
        }
    }
    px_steer_start(cfg);
    return true;
}

/* post a message to a worker (any thread) */
void px_worker_post(px_worker *w, px_wmsg *m)
{
    m->next = NULL;
    pthread_mutex_lock(&w->inbox_lock);
    px_wmsg **pp = &w->inbox;
    while (*pp)
        pp = &(*pp)->next;
    *pp = m;
    pthread_mutex_unlock(&w->inbox_lock);
    ev_async_send(w->loop, &w->wake);
}

/* tell every worker (reload: each gets its own config reference) */
void px_workers_broadcast(int kind, int how, px_config *cfg)
{
    for (int i = 0; i < px_g.nworkers; i++) {
        px_wmsg *m = calloc(1, sizeof(*m));
        if (!m)
            continue;
        m->kind = kind;
        m->how = how;
        m->cfg = cfg ? px_config_ref(cfg) : NULL;
        px_worker_post(px_g.workers[i], m);
    }
}

/* wait for all workers to finish and free them */
void px_workers_join(void)
{
    for (int i = 0; i < px_g.nworkers; i++) {
        px_worker *w = px_g.workers[i];
        if (!w)
            continue;
        pthread_join(w->thread, NULL);
        /* messages that came after the loop ended: run the calls (their owner waits for or
         * frees the argument; the thread is gone, so this thread owns the worker now) */
        px_wmsg *m = w->inbox;
        w->inbox = NULL;
        while (m) {
            px_wmsg *next = m->next;
            if (m->kind == WMSG_CALL)
                m->fn(w, m->arg);
            if (m->cfg)
                px_config_unref(m->cfg);
            free(m);
            m = next;
        }
        for (int j = 0; j < w->n_listeners; j++)
            if (!w->listeners[j].is_unix && w->listeners[j].fd >= 0)
                close(w->listeners[j].fd);
        while (w->pools) {
            px_pool *p = w->pools;
            w->pools = p->next;
            px_pool_free(p);
        }
        for (int j = 0; j < w->n_free_bufs; j++)
            free(w->free_bufs[j]);
        free(w->free_bufs);
        free(w->scratch);
        pktbuf_free(&w->tmp);
        px_stmt_registry_free(&w->stmts);
        free(w->shape_times);
        px_intern_free(&w->intern);
        px_config_unref(w->cfg);
        ev_loop_destroy(w->loop);
        pthread_mutex_destroy(&w->inbox_lock);
        free(w);
        px_g.workers[i] = NULL;
    }
    if (unix_fd >= 0) {
        close(unix_fd);
        unlink(unix_path);
        unix_fd = -1;
    }
}

static void *worker_main(void *arg)
{
    px_worker *w = arg;
    ev_run(w->loop, 0);
    atomic_fetch_sub(&px_g.n_workers_running, 1);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* busy polling                                                                                */
/* ------------------------------------------------------------------------------------------ */

/*
 * A worker that sleeps in epoll_wait pays for every wake-up: a context switch, and on a virtual
 * machine an interrupt to bring the idle core back. For a client that sends one query at a time
 * those wake-ups are most of what the proxy adds to each round trip. So after an event the worker
 * keeps polling (epoll_wait without a timeout, then sched_yield so any runnable task on the core
 * goes first) for up to poll_window before it sleeps.
 *
 * The window adapts the way the kernel's haltpoll cpuidle governor does. When a sleep ends with
 * an event no later than busy_poll_time after the last one, polling would have caught it: the
 * window grows (from a quarter of busy_poll_time, doubling up to it). When a sleep lasts longer,
 * the window halves, down to nothing. A worker whose events come further apart than
 * busy_poll_time therefore stops polling and costs no more CPU than with busy_poll_time = 0;
 * one whose events come close together polls through the gaps instead of sleeping.
 */
#define POLL_CORE_BUSY 10e-6 /* a sched_yield() longer than this ran another task */

static void poll_account(px_worker *w, double now)
{
    if (w->poll_started > 0) {
        w->poll_seconds += now - w->poll_started;
        w->poll_started = 0;
    }
}

static void poll_check_cb(struct ev_loop *loop, ev_check *c, int revents)
{
    px_worker *w = container_of(c, px_worker, poll_check);
    (void)revents;
    if (w->io_events == w->io_events_seen)
        return; /* a timer or nothing: not a sign of load */
    w->io_events_seen = w->io_events;
    double now = ev_now(loop), limit = w->cfg->busy_poll_time;
    double gap = now - w->last_event;
    w->last_event = now;
    poll_account(w, now);
    if (!ev_is_active(&w->poll_idle)) { /* the worker slept (or was not polling) */
        if (gap <= limit)
            w->poll_window =
                w->poll_window < limit / 4 ? limit / 4 : fmin(w->poll_window * 2, limit);
        else
            w->poll_window = w->poll_window / 2 < limit / 4 ? 0 : w->poll_window / 2;
    }
    /* only the loop that light load is packed onto polls: the other cores are then free, and
     * polling on cores that all have work only takes turns with that work */
    if (w->poll_window > 0 && !ev_is_active(&w->poll_idle) && px_steer_packed(w))
        ev_idle_start(loop, &w->poll_idle);
}

/* watch the loop only while busy_poll_time is set: with it off, a pass costs nothing extra */
static void poll_configure(px_worker *w)
{
    bool on = w->cfg->busy_poll_time > 0;
    w->poll_window = fmin(w->poll_window, w->cfg->busy_poll_time); /* a reload may lower it */
    if (on && !ev_is_active(&w->poll_check)) {
        ev_check_start(w->loop, &w->poll_check);
        ev_unref(w->loop); /* watching the loop must not keep it running */
    } else if (!on && ev_is_active(&w->poll_check)) {
        ev_ref(w->loop);
        ev_check_stop(w->loop, &w->poll_check);
        if (ev_is_active(&w->poll_idle))
            ev_idle_stop(w->loop, &w->poll_idle);
        poll_account(w, ev_now(w->loop));
        w->poll_window = 0;
    }
}

/* runs when a poll found nothing to do */
static void poll_idle_cb(struct ev_loop *loop, ev_idle *i, int revents)
{
    px_worker *w = container_of(i, px_worker, poll_idle);
    (void)revents;
    double now = ev_now(loop);
    if (w->poll_started == 0)
        w->poll_started = now;
    if (now - w->last_event >= w->poll_window) {
        poll_account(w, now);
        ev_idle_stop(loop, i);
        return;
    }
    sched_yield();
    /* The yield took long: another task had the core, which is then not idle. Polling on would
     * only take turns with that task, and an event would wait for this thread's next turn, where
     * a sleeping thread is woken at once. Sleep instead. */
    double after = ev_time();
    if (after - now > POLL_CORE_BUSY) {
        poll_account(w, after);
        ev_idle_stop(loop, i);
    }
}

/* run queued connections, free closed ones */
void px_worker_drain(px_worker *w)
{
    for (;;) {
        while (w->runq_head) {
            px_conn *c = w->runq_head;
            w->runq_head = c->runq_next;
            if (!w->runq_head)
                w->runq_tail = NULL;
            c->queued = false;
            if (c->closed)
                continue;
            if (c->kind == PX_CONN_CLIENT)
                px_client_run((px_client *)c);
            else
                px_server_run((px_server *)c);
        }
        if (!w->zombies)
            break;
        while (w->zombies) {
            px_conn *z = w->zombies;
            w->zombies = z->zombie_next;
            if (z->kind == PX_CONN_CLIENT)
                px_client_free((px_client *)z);
            else
                px_server_free((px_server *)z);
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* callbacks                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    px_listener *l = container_of(io, px_listener, io);
    px_worker *w = l->w;
    (void)revents;
    w->io_events++;
    for (int i = 0; i < 32; i++) {
        struct sockaddr_storage sa;
        socklen_t len = sizeof(sa);
        int fd = accept4(l->fd, (struct sockaddr *)&sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                log_warning("accept: %s (raise the open files limit)", strerror(errno));
                /* stop accepting briefly: the janitor starts us again */
                ev_io_stop(loop, io);
            }
            break;
        }
        if (!l->is_unix) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            if (w->cfg->tcp_keepalive)
                setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        }
        px_client_accept(w, fd, (struct sockaddr *)&sa, len, l->is_unix,
                         !l->is_unix && w->cfg->tcp_defer_accept);
    }
    px_worker_drain(w);
}

static void worker_stop_listening(px_worker *w)
{
    px_steer_stop(); /* before a listener closes: the program may name it */
    for (int i = 0; i < w->n_listeners; i++) {
        ev_io_stop(w->loop, &w->listeners[i].io);
        if (!w->listeners[i].is_unix && w->listeners[i].fd >= 0) {
            close(w->listeners[i].fd);
            w->listeners[i].fd = -1;
        }
    }
}

/* close everything and leave the loop */
static void worker_finish(px_worker *w)
{
    while (!px_list_empty(&w->login_clients))
        px_client_close(container_of(w->login_clients.next, px_client, node), "shutdown");
    for (px_pool *p = w->pools; p; p = p->next) {
        px_list *lists[] = {&p->waiting_clients, &p->welcome_clients, &p->idle_clients,
                            &p->active_clients};
        for (int i = 0; i < 4; i++)
            while (!px_list_empty(lists[i]))
                px_client_fail(container_of(lists[i]->next, px_client, node), "57P01",
                               "the proxy is shutting down");
        px_list *sl[] = {&p->idle_servers, &p->active_servers, &p->used_servers, &p->new_servers};
        for (int i = 0; i < 4; i++)
            while (!px_list_empty(sl[i]))
                px_server_close(container_of(sl[i]->next, px_server, node), "shutdown");
    }
    px_worker_drain(w);
    ev_timer_stop(w->loop, &w->janitor);
    ev_async_stop(w->loop, &w->wake);
    ev_break(w->loop, EVBREAK_ALL);
}

/* graceful shutdown: close the clients that are not inside a transaction */
static bool close_idle_clients(px_worker *w)
{
    bool busy = false;
    while (!px_list_empty(&w->login_clients))
        px_client_close(container_of(w->login_clients.next, px_client, node), "shutdown");
    for (px_pool *p = w->pools; p; p = p->next) {
        while (!px_list_empty(&p->idle_clients))
            px_client_fail(container_of(p->idle_clients.next, px_client, node), "57P01",
                           "the proxy is shutting down");
        while (!px_list_empty(&p->welcome_clients))
            px_client_fail(container_of(p->welcome_clients.next, px_client, node), "57P01",
                           "the proxy is shutting down");
        px_list *n = p->active_clients.next;
        while (n != &p->active_clients) {
            px_list *next = n->next;
            px_client *c = container_of(n, px_client, node);
            if (c->server && px_server_at_boundary(c->server) && !c->io.rlen && !c->authq)
                px_client_fail(c, "57P01", "the proxy is shutting down");
            else
                busy = true;
            n = next;
        }
        if (p->n_waiting)
            busy = true;
    }
    return busy;
}

static void wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    px_worker *w = container_of(a, px_worker, wake);
    (void)loop;
    (void)revents;
    pthread_mutex_lock(&w->inbox_lock);
    px_wmsg *m = w->inbox;
    w->inbox = NULL;
    pthread_mutex_unlock(&w->inbox_lock);
    while (m) {
        px_wmsg *next = m->next;
        switch (m->kind) {
        case WMSG_RELOAD:
            px_config_unref(w->cfg);
            w->cfg = m->cfg;
            m->cfg = NULL;
            for (px_pool *p = w->pools; p; p = p->next)
                px_pool_apply_config(p, w->cfg);
            poll_configure(w);
            break;
        case WMSG_CANCEL:
            px_cancel_deliver(w, m);
            break;
        case WMSG_REBALANCE:
            for (px_pool *p = w->pools; p; p = p->next)
                px_pool_kick(p);
            break;
        case WMSG_CALL:
            m->fn(w, m->arg);
            break;
        case WMSG_SHUTDOWN:
            if (!w->shutting_down)
                worker_stop_listening(w);
            w->shutting_down = true;
            w->shutdown_how = m->how;
            if (m->how == 0) {
                px_worker_drain(w);
                worker_finish(w);
            } else {
                w->shutdown_deadline = px_now(w) + w->cfg->shutdown_wait_timeout;
                if (!close_idle_clients(w))
                    worker_finish(w);
            }
            break;
        }
        if (m->cfg)
            px_config_unref(m->cfg);
        free(m);
        m = next;
    }
    px_worker_drain(w);
}

static void janitor_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    px_worker *w = container_of(t, px_worker, janitor);
    (void)revents;
    double now = ev_now(loop);
    if (w->shutting_down) {
        if (now >= w->shutdown_deadline || !close_idle_clients(w)) {
            if (now >= w->shutdown_deadline)
                log_info("shutdown_wait_timeout reached; closing the remaining clients");
            worker_finish(w);
            return;
        }
    }
    px_list *n = w->login_clients.next;
    while (n != &w->login_clients) {
        px_list *next = n->next;
        px_client_check_timeouts(container_of(n, px_client, node), now);
        n = next;
    }
    for (px_pool *p = w->pools; p; p = p->next)
        px_pool_janitor(p, now);
    if (!w->shutting_down)
        px_steer_janitor(w, now);
    if (!w->shutting_down)
        for (int i = 0; i < w->n_listeners; i++)
            if (!ev_is_active(&w->listeners[i].io))
                ev_io_start(loop, &w->listeners[i].io);
    px_worker_drain(w);
}
