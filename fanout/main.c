/*
 * "tusk fanout -c FILE": loads the [fanout] section, starts the consumer threads, and runs
 * the main thread's libev loop, which drives the outbox relay (woken by NOTIFY tusk_outbox,
 * or by a poll timer) and a small HTTP endpoint for operators (GET /health, GET /metrics).
 * SIGINT/SIGTERM stop it: workers finish the job in hand, unfinished work stays pending in
 * the streams for the next process.
 */
#include "fanout/internal.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
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
    admin_http *admin;
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

/* /metrics, /health and / (both "OK"); served by common/adminhttp.c on the main loop */
static void admin_request(void *arg, const char *path, admin_http_reply *r)
{
    (void)arg;
    if (strcmp(path, "/metrics") == 0) {
        cache_buf body;
        cache_buf_init(&body);
        fanout_metrics_render(&body);
        r->ctype = "text/plain; version=0.0.4";
        admin_http_put(r, body.data ? body.data : "", body.len);
        cache_buf_free(&body);
    } else if (strcmp(path, "/health") == 0 || strcmp(path, "/") == 0) {
        admin_http_text(r, 200, "OK\n");
    } else {
        admin_http_text(r, 404, "not found\n");
    }
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
    if (st.cfg.admin_listen[0]) {
        char why[256];
        st.admin =
            admin_http_start(st.loop, st.cfg.admin_listen, admin_request, NULL, why, sizeof(why));
        if (!st.admin) {
            log_error("%s", why);
            return 1;
        }
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
    admin_http_stop(st.admin);
    log_info("fanout stopped");
    return 0;
}
