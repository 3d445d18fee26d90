/*
 * "tusk fanout -c FILE": loads the [fanout] section, starts the consumer threads, and runs
 * the main thread's libev loop, which drives the outbox relay (woken by NOTIFY tusk_outbox,
 * or by a poll timer) and a small HTTP endpoint for operators (GET /health, GET /metrics).
 * SIGINT/SIGTERM stop it: workers finish the job in hand, unfinished work stays pending in
 * the streams for the next process.
 */
#include "fanout/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

fanout_metrics fanout_stats;
atomic_int fanout_stop;

typedef struct main_state {
    struct ev_loop *loop;
    fanout_config cfg;
    fanout_relay *relay;
    ev_timer relay_timer;
    ev_io listen_io;
    int listen_fd;
    ev_io admin_io;
    ev_signal sigint, sigterm;
} main_state;

static void usage(FILE *out)
{
    fprintf(out, "usage: tusk fanout -c FILE\n\n"
                 "Runs the timeline fan-out: moves tusk_outbox rows to Redis streams and\n"
                 "consumes them (see fanout/README.md for the [fanout] keys).\n");
}

/* ------------------------------------------------------------------ metrics */

void fanout_metrics_render(cache_buf *out)
{
    cache_buf_puts(out, "# TYPE tusk_fanout_jobs_total counter\n");
    for (int k = 1; k < FANOUT_JOB_KIND_COUNT; k++)
        cache_buf_printf(out, "tusk_fanout_jobs_total{kind=\"%s\"} %lld\n", fanout_job_kind_name(k),
                         atomic_load(&fanout_stats.jobs_done[k]));
    struct {
        const char *name;
        atomic_llong *v;
    } counters[] = {
        {"tusk_fanout_job_failures_total", &fanout_stats.jobs_failed},
        {"tusk_fanout_jobs_dead_total", &fanout_stats.jobs_dead},
        {"tusk_fanout_jobs_claimed_total", &fanout_stats.jobs_claimed},
        {"tusk_fanout_deliveries_total", &fanout_stats.deliveries},
        {"tusk_fanout_filtered_total", &fanout_stats.filtered},
        {"tusk_fanout_pages_total", &fanout_stats.pages},
        {"tusk_fanout_published_total", &fanout_stats.published},
        {"tusk_fanout_outbox_relayed_total", &fanout_stats.outbox_relayed},
        {"tusk_fanout_outbox_errors_total", &fanout_stats.outbox_errors},
    };
    for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
        cache_buf_printf(out, "# TYPE %s counter\n%s %lld\n", counters[i].name, counters[i].name,
                         atomic_load(counters[i].v));
}

/* ------------------------------------------------------------------ admin HTTP */

/* one request per connection, answered at once: health checks and scrapes are tiny */
static void admin_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    int fd = accept(w->fd, NULL, NULL);
    if (fd < 0)
        return;
    struct timeval tv = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    char req[2048];
    size_t got = 0;
    while (got < sizeof(req) - 1) {
        ssize_t n = recv(fd, req + got, sizeof(req) - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
            break;
    }
    req[got] = '\0';
    cache_buf body;
    cache_buf_init(&body);
    const char *status = "200 OK";
    const char *ctype = "text/plain; charset=utf-8";
    if (strncmp(req, "GET /metrics", 12) == 0) {
        fanout_metrics_render(&body);
        ctype = "text/plain; version=0.0.4";
    } else if (strncmp(req, "GET /health", 11) == 0 || strncmp(req, "GET / ", 6) == 0) {
        cache_buf_puts(&body, "OK\n");
    } else {
        status = "404 Not Found";
        cache_buf_puts(&body, "not found\n");
    }
    cache_buf head;
    cache_buf_init(&head);
    cache_buf_printf(&head,
                     "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, ctype, body.len);
    if (send(fd, head.data, head.len, MSG_NOSIGNAL) == (ssize_t)head.len && body.len)
        (void)send(fd, body.data, body.len, MSG_NOSIGNAL);
    cache_buf_free(&head);
    cache_buf_free(&body);
    close(fd);
}

static int admin_listen(const char *spec)
{
    char host[128];
    const char *colon = strrchr(spec, ':');
    long long port;
    if (!colon || (size_t)(colon - spec) >= sizeof(host) ||
        !str_to_int(colon + 1, 1, 65535, &port)) {
        log_error("admin_listen must be host:port, not \"%s\"", spec);
        return -1;
    }
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (!host[0] || strcmp(host, "*") == 0)
        sa.sin_addr.s_addr = htonl(INADDR_ANY);
    else if (inet_pton(AF_INET, strcmp(host, "localhost") == 0 ? "127.0.0.1" : host,
                       &sa.sin_addr) != 1) {
        log_error("admin_listen: bad IPv4 address \"%s\"", host);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 64) != 0) {
        log_error("admin_listen %s: %s", spec, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* ------------------------------------------------------------------ relay driving */

static void relay_now(main_state *st);

static void listen_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    main_state *st = w->data;
    fanout_relay_drain_notifies(st->relay);
    relay_now(st);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    relay_now(w->data);
}

/* move outbox rows now; keep the LISTEN watcher on the current socket */
static void relay_now(main_state *st)
{
    if (atomic_load(&fanout_stop))
        return;
    fanout_relay_run(st->relay);
    int fd = fanout_relay_listen_fd(st->relay);
    if (fd != st->listen_fd) {
        if (st->listen_fd >= 0)
            ev_io_stop(st->loop, &st->listen_io);
        st->listen_fd = fd;
        if (fd >= 0) {
            ev_io_init(&st->listen_io, listen_cb, fd, EV_READ);
            st->listen_io.data = st;
            ev_io_start(st->loop, &st->listen_io);
        }
    }
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    log_info("signal %d: stopping", w->signum);
    atomic_store(&fanout_stop, 1);
    ev_break(loop, EVBREAK_ALL);
}

int fanout_main(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
            path = argv[++i];
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    static main_state st;
    char err[512];
    log_set_role("fanout");
    if (fanout_config_load(&st.cfg, path, err, sizeof(err)) != 0) {
        fprintf(stderr, "tusk fanout: %s\n", err);
        return 1;
    }
    log_set_level(st.cfg.log_level);
    if (st.cfg.logfile[0] && log_set_file(st.cfg.logfile) != 0) {
        fprintf(stderr, "tusk fanout: cannot open logfile %s\n", st.cfg.logfile);
        return 1;
    }
    /* a blocking XREADGROUP must end before the socket timeout does */
    if (st.cfg.cache.command_timeout_ms < st.cfg.block_ms + 1000)
        st.cfg.cache.command_timeout_ms = st.cfg.block_ms + 1000;
    signal(SIGPIPE, SIG_IGN);

    st.loop = ev_default_loop(0);
    int admin_fd = -1;
    if (st.cfg.admin_listen[0]) {
        admin_fd = admin_listen(st.cfg.admin_listen);
        if (admin_fd < 0)
            return 1;
        ev_io_init(&st.admin_io, admin_cb, admin_fd, EV_READ);
        ev_io_start(st.loop, &st.admin_io);
    }

    /* workers must not take SIGINT/SIGTERM: the loop's handler does */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    int started = fanout_workers_start(&st.cfg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (started != 0) {
        atomic_store(&fanout_stop, 1);
        fanout_workers_join();
        return 1;
    }
    ev_signal_init(&st.sigint, signal_cb, SIGINT);
    ev_signal_init(&st.sigterm, signal_cb, SIGTERM);
    ev_signal_start(st.loop, &st.sigint);
    ev_signal_start(st.loop, &st.sigterm);

    st.listen_fd = -1;
    if (st.cfg.relay) {
        st.relay = fanout_relay_new(&st.cfg);
        if (!st.relay) {
            log_error("out of memory");
            atomic_store(&fanout_stop, 1);
            fanout_workers_join();
            return 1;
        }
        double every = st.cfg.outbox_poll_ms / 1000.0;
        ev_timer_init(&st.relay_timer, timer_cb, 0.0, every);
        st.relay_timer.data = &st;
        ev_timer_start(st.loop, &st.relay_timer);
    }
    log_info("fanout running: %d queue(s), consumer %s, relay %s", st.cfg.n_queues,
             st.cfg.consumer_name, st.cfg.relay ? "on" : "off");
    ev_run(st.loop, 0);

    atomic_store(&fanout_stop, 1);
    fanout_workers_join();
    fanout_relay_free(st.relay);
    if (admin_fd >= 0)
        close(admin_fd);
    log_info("fanout stopped");
    return 0;
}
