/*
 * "tusk top": a terminal view of a running proxy, refreshed every second. It reads the proxy's
 * /metrics (admin_listen) over plain HTTP, so it needs no credentials and shows exactly the
 * figures Prometheus sees: per database the query and transaction rates, clients and servers;
 * per node its role, state, lag and read rate; the routing reasons.
 */
#include "proxy/proxy.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TOP_MAX 512

typedef struct sample {
    char key[256]; /* metric name + labels */
    double v;
} sample;

typedef struct scrape {
    sample *s;
    int n, cap;
} scrape;

static char *http_get(const char *host, const char *port, const char *path)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0 || !res)
        return NULL;
    int fd = socket(res->ai_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return NULL;
    }
    freeaddrinfo(res);
    char req[512];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                     path, host);
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        close(fd);
        return NULL;
    }
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf)
            break;
        if (len + 4096 > cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0)
            break;
        ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    if (!buf)
        return NULL;
    buf[len] = '\0';
    char *body = strstr(buf, "\r\n\r\n");
    if (!body || strncmp(buf, "HTTP/1.1 200", 12) != 0) {
        free(buf);
        return NULL;
    }
    memmove(buf, body + 4, strlen(body + 4) + 1);
    return buf;
}

static void parse(char *text, scrape *sc)
{
    sc->n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#' || !line[0])
            continue;
        char *sp = strrchr(line, ' ');
        if (!sp)
            continue;
        *sp = '\0';
        if (sc->n == sc->cap) {
            int cap = sc->cap ? sc->cap * 2 : 256;
            sample *ns = realloc(sc->s, (size_t)cap * sizeof(*ns));
            if (!ns)
                return;
            sc->s = ns;
            sc->cap = cap;
        }
        snprintf(sc->s[sc->n].key, sizeof(sc->s[0].key), "%s", line);
        sc->s[sc->n].v = strtod(sp + 1, NULL);
        sc->n++;
    }
}

static double find(const scrape *sc, const char *key, bool *found)
{
    for (int i = 0; i < sc->n; i++)
        if (strcmp(sc->s[i].key, key) == 0) {
            if (found)
                *found = true;
            return sc->s[i].v;
        }
    if (found)
        *found = false;
    return 0;
}

/* value of label name in a key, into out */
static bool label(const char *key, const char *name, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "%s=\"", name);
    const char *p = strstr(key, pat);
    if (!p)
        return false;
    p += strlen(pat);
    size_t n = strcspn(p, "\"");
    if (n >= cap)
        n = cap - 1;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

/* sum of every sample of metric whose label lab equals val */
static double sum_by(const scrape *sc, const char *metric, const char *lab, const char *val)
{
    double t = 0;
    size_t ml = strlen(metric);
    for (int i = 0; i < sc->n; i++) {
        char v[128];
        if (strncmp(sc->s[i].key, metric, ml) == 0 && sc->s[i].key[ml] == '{' &&
            label(sc->s[i].key, lab, v, sizeof(v)) && strcmp(v, val) == 0)
            t += sc->s[i].v;
    }
    return t;
}

/* sum of every sample of a metric */
static double sum_all(const scrape *sc, const char *metric)
{
    double t = 0;
    size_t ml = strlen(metric);
    for (int i = 0; i < sc->n; i++)
        if (strncmp(sc->s[i].key, metric, ml) == 0 &&
            (sc->s[i].key[ml] == '{' || sc->s[i].key[ml] == '\0'))
            t += sc->s[i].v;
    return t;
}

static void draw(const scrape *cur, const scrape *prev, double dt, const char *addr)
{
    time_t now = time(NULL);
    char ts[32];
    strftime(ts, sizeof(ts), "%H:%M:%S", localtime(&now));
    printf("\033[H\033[2Jtusk top - %s - %s - clients %.0f\n\n", addr, ts,
           find(cur, "tusk_clients_connected", NULL));
    printf("%-20s %10s %10s %8s %8s %8s %8s\n", "DATABASE", "QUERIES/s", "XACTS/s", "CL_ACT",
           "CL_WAIT", "SV_ACT", "SV_IDLE");
    char seen[64][128];
    int ns = 0;
    for (int i = 0; i < cur->n && ns < 64; i++) {
        char db[128];
        if (strncmp(cur->s[i].key, "tusk_queries_total{", 19) != 0 ||
            !label(cur->s[i].key, "database", db, sizeof(db)))
            continue;
        bool dup = false;
        for (int k = 0; k < ns && !dup; k++)
            dup = strcmp(seen[k], db) == 0;
        if (dup)
            continue;
        snprintf(seen[ns++], sizeof(seen[0]), "%s", db);
        double q = sum_by(cur, "tusk_queries_total", "database", db);
        double x = sum_by(cur, "tusk_transactions_total", "database", db);
        double pq = prev ? sum_by(prev, "tusk_queries_total", "database", db) : q;
        double px = prev ? sum_by(prev, "tusk_transactions_total", "database", db) : x;
        double ca = 0, cw = 0, sa = 0, si = 0;
        for (int k = 0; k < cur->n; k++) {
            char d[128], st[32];
            const char *key = cur->s[k].key;
            if (!label(key, "database", d, sizeof(d)) || strcmp(d, db) != 0 ||
                !label(key, "state", st, sizeof(st)))
                continue;
            if (strncmp(key, "tusk_pool_clients{", 18) == 0) {
                if (strcmp(st, "waiting") == 0)
                    cw += cur->s[k].v;
                else
                    ca += cur->s[k].v;
            } else if (strncmp(key, "tusk_pool_servers{", 18) == 0) {
                if (strcmp(st, "active") == 0)
                    sa += cur->s[k].v;
                else if (strcmp(st, "idle") == 0)
                    si += cur->s[k].v;
            }
        }
        printf("%-20.20s %10.1f %10.1f %8.0f %8.0f %8.0f %8.0f\n", db, dt > 0 ? (q - pq) / dt : 0,
               dt > 0 ? (x - px) / dt : 0, ca, cw, sa, si);
    }
    printf("\n%-16s %4s %-22s %-8s %-8s %10s %12s %8s\n", "DATABASE", "NODE", "HOST", "ROLE",
           "STATE", "LAG s", "LAG bytes", "READS/s");
    for (int i = 0; i < cur->n; i++) {
        const char *key = cur->s[i].key;
        if (strncmp(key, "tusk_node_info{", 15) != 0)
            continue;
        char db[128], node[16], host[128], role[16], state[16];
        if (!label(key, "database", db, sizeof(db)) || !label(key, "node", node, sizeof(node)) ||
            !label(key, "host", host, sizeof(host)) || !label(key, "role", role, sizeof(role)) ||
            !label(key, "state", state, sizeof(state)))
            continue;
        char k2[512];
        snprintf(k2, sizeof(k2), "{database=\"%s\",node=\"%s\",host=\"%s\"}", db, node, host);
        char kk[600];
        snprintf(kk, sizeof(kk), "tusk_replica_lag_seconds%s", k2);
        double lag = find(cur, kk, NULL);
        snprintf(kk, sizeof(kk), "tusk_replica_lag_bytes%s", k2);
        double lagb = find(cur, kk, NULL);
        snprintf(kk, sizeof(kk), "tusk_node_banned%s", k2);
        bool banned = find(cur, kk, NULL) > 0;
        snprintf(kk, sizeof(kk), "tusk_node_reads_routed_total%s", k2);
        double r = find(cur, kk, NULL), pr = prev ? find(prev, kk, NULL) : r;
        printf("%-16.16s %4s %-22.22s %-8s %-8s %10.3f %12.0f %8.1f\n", db, node, host, role,
               banned ? "banned" : state, lag, lagb, dt > 0 ? (r - pr) / dt : 0);
    }
    printf("\nrouting: replica reads %.0f, primary reads %.0f, 25006 retries %.0f, "
           "ryw waits %.0f\n",
           sum_by(cur, "tusk_routed_reads_total", "route", "replica"),
           sum_by(cur, "tusk_routed_reads_total", "route", "primary"),
           sum_all(cur, "tusk_read_only_retries_total"), sum_all(cur, "tusk_ryw_waits_total"));
    fflush(stdout);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: tusk top [-n COUNT] [HOST:]PORT\n"
               "  HOST:PORT  the proxy's admin_listen (default 127.0.0.1:9127)\n"
               "  -n COUNT   stop after COUNT screens (default: until interrupted)\n");
}

/* entry point of "tusk top" */
int proxy_top_main(int argc, char **argv)
{
    const char *addr = "127.0.0.1:9127";
    long count = -1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            char *end;
            count = strtol(argv[++i], &end, 10);
            if (*end || count < 1) {
                usage(stderr);
                return 2;
            }
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] != '-') {
            addr = argv[i];
        } else {
            usage(stderr);
            return 2;
        }
    }
    char host[256], port[16];
    const char *colon = strrchr(addr, ':');
    if (colon) {
        snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
        snprintf(port, sizeof(port), "%s", colon + 1);
    } else {
        snprintf(host, sizeof(host), "127.0.0.1");
        snprintf(port, sizeof(port), "%s", addr);
    }
    if (!host[0])
        snprintf(host, sizeof(host), "127.0.0.1");
    scrape a = {0}, b = {0};
    scrape *cur = &a, *prev = NULL;
    struct timespec last = {0, 0};
    for (long n = 0; count < 0 || n < count; n++) {
        char *text = http_get(host, port, "/metrics");
        if (!text) {
            fprintf(stderr, "tusk top: cannot read http://%s:%s/metrics: %s\n", host, port,
                    errno ? strerror(errno) : "bad answer");
            free(a.s);
            free(b.s);
            return 1;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        parse(text, cur);
        free(text);
        double dt =
            prev ? (double)(ts.tv_sec - last.tv_sec) + (double)(ts.tv_nsec - last.tv_nsec) / 1e9
                 : 0;
        draw(cur, prev, dt, addr);
        last = ts;
        prev = cur;
        cur = cur == &a ? &b : &a;
        if (count < 0 || n + 1 < count)
            sleep(1);
    }
    free(a.s);
    free(b.s);
    return 0;
}
