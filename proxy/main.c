/*
 * Entry point of "tusk proxy": command line, config, logging, pid file, daemonizing, the
 * workers, and the signals (SIGHUP reloads, SIGTERM stops at once, SIGINT waits for running
 * transactions up to shutdown_wait_timeout). The main thread only handles signals; all
 * traffic runs in the workers.
 */
#include "proxy/admin.h"
#include "proxy/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: tusk proxy [-d] [-v] [-q] -c FILE\n"
                 "       tusk proxy [-d] [-v] [-q] FILE\n\n"
                 "  -c FILE  configuration in pgbouncer.ini layout\n"
                 "  -d       run in the background (daemon)\n"
                 "  -v       more log output (repeat for debug)\n"
                 "  -q       only warnings and errors\n"
                 "signals: HUP reloads the config, TERM stops at once, INT stops after the\n"
                 "running transactions (shutdown_wait_timeout)\n");
}

static void apply_logging(const px_config *cfg, int verbose, bool quiet)
{
    int level = LOG_INFO;
    if (cfg->verbose + verbose >= 1)
        level = LOG_DEBUG;
    if (quiet)
        level = LOG_WARNING;
    log_set_level(level);
    if (cfg->logfile && *cfg->logfile && log_set_file(cfg->logfile) != 0)
        log_warning("cannot open logfile %s: %s; logging to stderr", cfg->logfile, strerror(errno));
}

static bool write_pidfile(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return false;
    fprintf(f, "%d\n", (int)getpid());
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return false;
    }
    return true;
}

static bool daemonize(void)
{
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid > 0)
        _exit(0);
    if (setsid() < 0)
        return false;
    pid = fork();
    if (pid < 0)
        return false;
    if (pid > 0)
        _exit(0);
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
    return true;
}

static px_config *load(const char *path)
{
    char err[1024];
    px_config *cfg = px_config_load(path, err, sizeof(err));
    if (!cfg) {
        log_error("%s", err);
        return NULL;
    }
    px_admin_apply_overrides(cfg); /* SET from the admin console survives reloads */
    if (!px_config_prepare(cfg, err, sizeof(err))) {
        log_error("%s", err);
        px_config_unref(cfg);
        return NULL;
    }
    return cfg;
}

/* entry point of "tusk proxy" */
int proxy_main(int argc, char **argv)
{
    const char *path = NULL;
    bool daemon = false, quiet = false;
    int verbose = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-c") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(a, "-d") == 0 || strcmp(a, "--daemon") == 0) {
            daemon = true;
        } else if (strncmp(a, "-v", 2) == 0 && strspn(a + 1, "v") == strlen(a + 1)) {
            verbose += (int)strlen(a + 1);
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            quiet = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "-R") == 0 || strcmp(a, "-u") == 0) {
            fprintf(stderr, "tusk proxy: option %s is not supported\n", a);
            return 2;
        } else if (a[0] != '-' && !path) {
            path = a;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    log_set_role("proxy");
    if (verbose)
        log_set_level(LOG_DEBUG);
    px_config *cfg = load(path);
    if (!cfg)
        return 1;
    apply_logging(cfg, verbose, quiet);
    if (cfg->n_warnings)
        log_info("%d setting(s) in %s are not used by tusk (see the warnings above)",
                 cfg->n_warnings, path);
    if (daemon && !daemonize()) {
        log_error("cannot daemonize: %s", strerror(errno));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGQUIT);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* workers inherit the mask */
    atomic_store(&px_g.cfg, cfg);
    px_route_configure(cfg);
    char err[512];
    if (!px_workers_start(cfg, cfg->workers, err, sizeof(err))) {
        log_error("%s", err);
        return 1;
    }
    if (!px_admin_start(cfg, err, sizeof(err))) {
        log_error("%s", err);
        px_workers_broadcast(WMSG_SHUTDOWN, 0, NULL);
        px_workers_join();
        return 1;
    }
    if (cfg->pidfile && *cfg->pidfile && !write_pidfile(cfg->pidfile))
        log_warning("cannot write pidfile %s: %s", cfg->pidfile, strerror(errno));
    log_info("tusk %s proxy listening on %s:%d%s%s (%d workers, pool_mode %s, auth_type %s)",
             TUSK_VERSION, cfg->listen_addr && *cfg->listen_addr ? cfg->listen_addr : "-",
             cfg->listen_port, cfg->unix_socket_dir && *cfg->unix_socket_dir ? ", unix " : "",
             cfg->unix_socket_dir ? cfg->unix_socket_dir : "", cfg->workers,
             px_pool_mode_name(cfg->pool_mode), px_auth_type_name(cfg->auth_type));
    bool stopping = false;
    while (atomic_load(&px_g.n_workers_running) > 0) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        int sig = sigtimedwait(&set, NULL, &ts);
        if (sig < 0)
            continue;
        if (sig == SIGHUP) {
            log_info("SIGHUP: reloading %s", path);
            px_config *nc = load(path);
            if (!nc) {
                log_error("reload failed; keeping the running configuration");
                continue;
            }
            px_config *old = atomic_load(&px_g.cfg);
            if (strcmp(nc->listen_addr, old->listen_addr) != 0 ||
                nc->listen_port != old->listen_port || nc->workers != old->workers ||
                nc->pkt_buf != old->pkt_buf)
                log_warning("listen_addr, listen_port, workers and pkt_buf change only on "
                            "restart");
            apply_logging(nc, verbose, quiet);
            atomic_store(&px_g.cfg, nc);
            px_route_configure(nc);
            px_workers_broadcast(WMSG_RELOAD, 0, nc);
            px_config_unref(old);
        } else if (sig == SIGINT && !stopping) {
            log_info("SIGINT: shutting down after the running transactions (at most %g s)",
                     atomic_load(&px_g.cfg)->shutdown_wait_timeout);
            stopping = true;
            px_workers_broadcast(WMSG_SHUTDOWN, 1, NULL);
        } else if (sig == SIGTERM || sig == SIGQUIT || sig == SIGINT) {
            log_info("%s: shutting down now", sig == SIGINT ? "second SIGINT" : "SIGTERM");
            stopping = true;
            px_workers_broadcast(WMSG_SHUTDOWN, 0, NULL);
        }
    }
    px_admin_stop(); /* nothing posts to the workers any more */
    px_workers_join();
    px_config *last = atomic_load(&px_g.cfg);
    if (last->pidfile && *last->pidfile)
        unlink(last->pidfile);
    px_config_unref(last);
    log_info("proxy stopped");
    return 0;
}
