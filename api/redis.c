/*
 * hiredis asynchronous connections on a libev loop (hiredis's own libev adapter), with the
 * things a long-running server needs and hiredis leaves out: parsing redis:// URLs, AUTH and
 * SELECT after connecting, and reconnecting with backoff when Redis goes away. The owner is
 * told after each (re)connect so it can restore its state (pubsub.c resubscribes).
 */
#include "api/internal.h"

#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct api_redis {
    struct ev_loop *loop;
    char host[256];
    int port;
    int db;
    char password[256];
    char what[32];
    redisAsyncContext *ac; /* NULL while disconnected */
    bool connected;
    bool closing;
    ev_timer retry;
    double backoff;
    int failures; /* consecutive failed connects: only the first is a warning */
    api_redis_connected_cb on_connect;
    void *arg;
};

/* parse a Redis URL */
bool api_redis_parse_url(const char *url, char *host, size_t hostcap, int *port, int *db,
                         char *password, size_t pwcap)
{
    *port = 6379;
    *db = 0;
    if (pwcap)
        password[0] = '\0';
    const char *p = url;
    if (strncmp(p, "redis://", 8) == 0)
        p += 8;
    else if (strstr(p, "://"))
        return false;
    const char *at = strchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p; /* "user:pass@" or "pass@" */
        size_t pl = (size_t)(at - pw);
        if (pl >= pwcap)
            return false;
        memcpy(password, pw, pl);
        password[pl] = '\0';
        p = at + 1;
    }
    const char *end = p + strcspn(p, "/");
    const char *colon = memchr(p, ':', (size_t)(end - p));
    const char *hend = colon ? colon : end;
    size_t hl = (size_t)(hend - p);
    if (hl == 0 || hl >= hostcap)
        return false;
    memcpy(host, p, hl);
    host[hl] = '\0';
    if (colon) {
        char tmp[16];
        size_t pl = (size_t)(end - colon - 1);
        long long v;
        if (pl == 0 || pl >= sizeof(tmp))
            return false;
        memcpy(tmp, colon + 1, pl);
        tmp[pl] = '\0';
        if (!str_to_int(tmp, 1, 65535, &v))
            return false;
        *port = (int)v;
    }
    if (*end == '/' && end[1]) {
        long long v;
        if (!str_to_int(end + 1, 0, 1000000, &v))
            return false;
        *db = (int)v;
    }
    return true;
}

static void start(api_redis *r);

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    start(w->data);
}

/* schedule the next attempt */
static void schedule(api_redis *r)
{
    r->ac = NULL;
    r->connected = false;
    if (r->closing || ev_is_active(&r->retry))
        return;
    r->backoff = r->backoff < 0.1 ? 0.1 : r->backoff * 2;
    if (r->backoff > 2)
        r->backoff = 2;
    ev_timer_set(&r->retry, r->backoff, 0);
    ev_timer_start(r->loop, &r->retry);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    api_redis *r = ac->data;
    if (status != REDIS_OK) {
        log_warning("redis %s (%s:%d): connect failed: %s", r->what, r->host, r->port, ac->errstr);
        schedule(r); /* hiredis frees the context after this callback */
        return;
    }
    r->connected = true;
    r->backoff = 0;
    r->failures = 0;
    log_info("redis %s connected (%s:%d)", r->what, r->host, r->port);
    if (r->on_connect)
        r->on_connect(r, r->arg);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    api_redis *r = ac->data;
    if (!r)
        return;
    if (!r->closing)
        log_warning("redis %s (%s:%d) disconnected: %s", r->what, r->host, r->port,
                    status == REDIS_OK ? "closed" : ac->errstr);
    schedule(r);
}

/* begin connecting */
static void start(api_redis *r)
{
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
    if (!ac) {
        schedule(r);
        return;
    }
    if (ac->err) {
        log_warning("redis %s (%s:%d): %s", r->what, r->host, r->port, ac->errstr);
        redisAsyncFree(ac);
        schedule(r);
        return;
    }
    ac->data = r;
    /* keep the reader's buffer however large it grew: hiredis frees an idle one above 16 kB,
     * and a connection that regularly takes 20-64 kB replies (status MGETs) would allocate
     * and free it again and again (malloc_consolidate showed in profiles) */
    ac->c.reader->maxbuf = 0;
    if (redisLibevAttach(r->loop, ac) != REDIS_OK) {
        redisAsyncFree(ac);
        schedule(r);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    r->ac = ac;
    /* queued now, sent first once the socket connects */
    if (r->password[0])
        redisAsyncCommand(ac, NULL, NULL, "AUTH %s", r->password);
    if (r->db)
        redisAsyncCommand(ac, NULL, NULL, "SELECT %d", r->db);
}

/* a self-reconnecting connection to url */
api_redis *api_redis_new(struct ev_loop *loop, const char *url, const char *what,
                         api_redis_connected_cb on_connect_cb, void *arg)
{
    api_redis *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    if (!api_redis_parse_url(url, r->host, sizeof(r->host), &r->port, &r->db, r->password,
                             sizeof(r->password))) {
        free(r);
        return NULL;
    }
    r->loop = loop;
    snprintf(r->what, sizeof(r->what), "%s", what);
    r->on_connect = on_connect_cb;
    r->arg = arg;
    ev_timer_init(&r->retry, retry_cb, 0, 0);
    r->retry.data = r;
    start(r);
    return r;
}

/* the context when connected */
redisAsyncContext *api_redis_ctx(api_redis *r)
{
    return r && r->connected ? r->ac : NULL;
}

/* disconnect (pending callbacks run with NULL replies) and free */
void api_redis_free(api_redis *r)
{
    if (!r)
        return;
    r->closing = true;
    ev_timer_stop(r->loop, &r->retry);
    if (r->ac) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        redisAsyncFree(ac); /* calls on_disconnect, which sees closing */
    }
    free(r);
}
