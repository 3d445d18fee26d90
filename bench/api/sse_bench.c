/*
 * Streaming benchmark of "tusk api": opens N SSE streams (GET /api/v1/streaming/user, one
 * token per stream, so N channels), measures the api process' resident memory per idle
 * stream, then publishes timestamped events to the streams' Redis channels at a steady rate
 * and reports publish-to-delivery latency percentiles.
 *
 *   bench_api_sse --port P --redis-port R --tokens FILE --pid API_PID [--n N] [--rate R]
 *                 [--seconds S]
 *
 * FILE holds "token account_id" lines (tusk seed --tokens). One thread, epoll; the open file
 * limit is raised to what N needs. Prints "key value" lines for bench/api/run.sh.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct client {
    int fd;
    int state; /* 0 connecting, 1 request sent, 2 streaming, -1 dead */
    char token[96];
    long long account;
    char buf[2048];
    size_t len;
} client;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static long rss_kb(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double *lat;
static size_t nlat, latcap;

/* scan a stream's bytes for "data: <seconds>" lines of our events */
static void consume(client *c)
{
    c->buf[c->len] = '\0';
    char *p = c->buf, *last = c->buf;
    for (;;) {
        char *d = strstr(p, "data: ");
        if (!d)
            break;
        char *nl = strchr(d, '\n');
        if (!nl)
            break;
        double sent = strtod(d + 6, NULL);
        if (sent > 0) {
            if (nlat == latcap) {
                latcap = latcap ? latcap * 2 : 4096;
                lat = realloc(lat, latcap * sizeof(*lat));
            }
            lat[nlat++] = now_s() - sent;
        }
        p = last = nl + 1;
    }
    /* keep an unfinished tail, drop what was read */
    size_t keep = c->len - (size_t)(last - c->buf);
    if (keep > 512)
        keep = 0; /* heartbeats and chunk framing only */
    memmove(c->buf, c->buf + c->len - keep, keep);
    c->len = keep;
}

static void on_readable(client *c)
{
    for (;;) {
        ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            c->state = -1;
            close(c->fd);
            return;
        }
        if (n < 0)
            return;
        c->len += (size_t)n;
        if (c->state == 1) {
            c->buf[c->len] = '\0';
            char *end = strstr(c->buf, "\r\n\r\n");
            if (!end) {
                if (c->len >= sizeof(c->buf) - 1)
                    c->len = 0;
                continue;
            }
            if (strncmp(c->buf, "HTTP/1.1 200", 12) != 0) {
                fprintf(stderr, "stream refused: %.60s\n", c->buf);
                c->state = -1;
                close(c->fd);
                return;
            }
            c->state = 2;
            size_t rest = c->len - (size_t)(end + 4 - c->buf);
            memmove(c->buf, end + 4, rest);
            c->len = rest;
        }
        if (c->state == 2)
            consume(c);
    }
}

int main(int argc, char **argv)
{
    int port = 0, rport = 0, pid = 0, n = 10000, rate = 2000;
    double seconds = 5;
    const char *tokens = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port"))
            port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--redis-port"))
            rport = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--pid"))
            pid = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--n"))
            n = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rate"))
            rate = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds"))
            seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--tokens"))
            tokens = argv[i + 1];
    }
    if (!port || !rport || !pid || !tokens || n <= 0) {
        fprintf(stderr, "usage: bench_api_sse --port P --redis-port R --tokens FILE --pid PID "
                        "[--n N] [--rate R] [--seconds S]\n");
        return 2;
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)n + 100) {
        rl.rlim_cur = (rlim_t)n + 100 > rl.rlim_max ? rl.rlim_max : (rlim_t)n + 100;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < (rlim_t)n + 100) {
        n = (int)rl.rlim_cur - 100;
        fprintf(stderr, "open file limit: %d streams only\n", n);
    }
    client *cl = calloc((size_t)n, sizeof(*cl));
    FILE *f = fopen(tokens, "r");
    if (!f || !cl) {
        perror(tokens);
        return 1;
    }
    int have = 0;
    while (have < n && fscanf(f, "%95s %lld%*[^\n]", cl[have].token, &cl[have].account) == 2)
        have++;
    fclose(f);
    n = have;
    long rss0 = rss_kb(pid);
    int ep = epoll_create1(0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    double t0 = now_s();
    int ready = 0, dead = 0, opened = 0;
    struct epoll_event evs[256];
    /* open in batches so the listen backlog and the token lookups keep up */
    while (ready + dead < n && now_s() - t0 < 120) {
        while (opened < n && opened - ready - dead < 500) {
            client *c = &cl[opened++];
            c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            if (c->fd < 0) {
                c->state = -1;
                dead++;
                continue;
            }
            if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS) {
                close(c->fd);
                c->state = -1;
                dead++;
                continue;
            }
            struct epoll_event e = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
            epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e);
        }
        int k = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < k; i++) {
            client *c = evs[i].data.ptr;
            if (c->state == 0 && (evs[i].events & EPOLLOUT)) {
                char req[256];
                int l = snprintf(req, sizeof(req),
                                 "GET /api/v1/streaming/user HTTP/1.1\r\nHost: bench\r\n"
                                 "Authorization: Bearer %s\r\n\r\n",
                                 c->token);
                if (write(c->fd, req, (size_t)l) != l) {
                    close(c->fd);
                    c->state = -1;
                    dead++;
                    continue;
                }
                c->state = 1;
                struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
            } else if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                int before = c->state;
                on_readable(c);
                if (before != 2 && c->state == 2)
                    ready++;
                if (before != -1 && c->state == -1)
                    dead++;
            }
        }
    }
    double open_s = now_s() - t0;
    /* let the api settle (subscriptions, allocator), then measure idle memory */
    double settle = now_s() + 3;
    while (now_s() < settle) {
        int k = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < k; i++)
            on_readable(evs[i].data.ptr);
    }
    long rss1 = rss_kb(pid);
    printf("streams %d\nfailed %d\nopen_seconds %.1f\n", ready, n - ready, open_s);
    printf("rss_before_kb %ld\nrss_after_kb %ld\n", rss0, rss1);
    if (ready > 0)
        printf("bytes_per_stream %.0f\n", (rss1 - rss0) * 1024.0 / ready);
    /* publish at a steady rate to the channels of live streams */
    redisContext *r = redisConnect("127.0.0.1", rport);
    if (!r || r->err) {
        fprintf(stderr, "redis: cannot connect\n");
        return 1;
    }
    nlat = 0;
    long sent = 0;
    double start = now_s(), end = start + seconds;
    unsigned seed = 12345;
    while (now_s() < end) {
        double due = start + (double)sent / rate;
        if (now_s() >= due) {
            client *c = &cl[rand_r(&seed) % (unsigned)n];
            if (c->state == 2) {
                char msg[128];
                snprintf(msg, sizeof(msg), "{\"event\":\"update\",\"payload\":\"%.6f\"}", now_s());
                redisAppendCommand(r, "PUBLISH timeline:%lld %s", c->account, msg);
                redisReply *rep;
                if (redisGetReply(r, (void **)&rep) == REDIS_OK)
                    freeReplyObject(rep);
            }
            sent++;
            continue;
        }
        int k = epoll_wait(ep, evs, 256, 0);
        for (int i = 0; i < k; i++)
            on_readable(evs[i].data.ptr);
        if (k == 0) {
            struct timespec ts = {0, 50000};
            nanosleep(&ts, NULL);
        }
    }
    double drain = now_s() + 1;
    while (now_s() < drain) {
        int k = epoll_wait(ep, evs, 256, 50);
        for (int i = 0; i < k; i++)
            on_readable(evs[i].data.ptr);
    }
    redisFree(r);
    printf("published %ld\ndelivered %zu\n", sent, nlat);
    if (nlat) {
        qsort(lat, nlat, sizeof(*lat), cmp_double);
        printf("latency_p50_ms %.2f\nlatency_p99_ms %.2f\nlatency_max_ms %.2f\n",
               lat[nlat / 2] * 1000, lat[(size_t)(nlat * 0.99)] * 1000, lat[nlat - 1] * 1000);
    }
    for (int i = 0; i < n; i++)
        if (cl[i].state >= 0)
            close(cl[i].fd);
    free(cl);
    free(lat);
    return 0;
}
