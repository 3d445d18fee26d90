/*
 * Redis connections of the three roles (feeds, queue, pubsub), their URLs and config keys,
 * and feed sharding. A handle belongs to one thread; each role gets its own connection even
 * when two roles name the same server, so pipelines of different roles never interleave on
 * one socket. Connections open lazily and reopen after an error, at most every 200 ms, so a
 * Redis outage costs a failed call rather than a blocked thread.
 */
#include "cache/internal.h"
#include "common/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#define RETRY_INTERVAL_MS 200

typedef struct conn_slot {
    const cache_redis_url *url;
    redisContext *ctx;
    double next_try_ms; /* no reconnect before this (monotonic ms) */
    bool scripts;       /* a feeds connection: load the Lua scripts after connecting */
    bool down;          /* the last attempt failed (log the failure once per 10 s) */
    double next_log_ms;
} conn_slot;

struct cache {
    cache_config cfg;
    conn_slot feeds[CACHE_MAX_SHARDS];
    conn_slot queue;
    conn_slot pubsub;
    char sha[CACHE_SCRIPT_COUNT][41];
};

/* ---- config ---- */

/* defaults: one Redis at 127.0.0.1:6379/0 for every role */
void cache_config_init(cache_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->status_ttl = CACHE_DEFAULT_STATUS_TTL;
    cfg->connect_timeout_ms = 1000;
    cfg->command_timeout_ms = 5000;
    str_copy(cfg->local_domain, sizeof(cfg->local_domain), "localhost");
}

const char *cache_config_url_base(const cache_config *cfg, char *buf, size_t cap)
{
    if (cfg->public_url[0])
        return cfg->public_url;
    snprintf(buf, cap, "https://%s", cfg->local_domain);
    return buf;
}

/* parse a Redis URL */
int cache_redis_url_parse(const char *url, cache_redis_url *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->port = 6379;
    const char *p;
    if (strncmp(url, "unix://", 7) == 0) {
        p = url + 7;
        const char *q = strchr(p, '?');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (n == 0 || n >= sizeof(out->unix_path)) {
            snprintf(err, errlen, "bad unix socket path in \"%s\"", url);
            return -1;
        }
        memcpy(out->unix_path, p, n);
        if (q) {
            long long db;
            if (strncmp(q, "?db=", 4) != 0 || !str_to_int(q + 4, 0, 1000000, &db)) {
                snprintf(err, errlen, "bad database in \"%s\" (expected ?db=N)", url);
                return -1;
            }
            out->db = (int)db;
        }
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen, "\"%s\" is not a redis:// or unix:// URL", url);
        return -1;
    }
    p = url + 8;
    const char *at = strchr(p, '@');
    const char *slash = strchr(p, '/');
    if (at && (!slash || at < slash)) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p; /* redis://:pw@ or redis://user:pw@ */
        size_t n = (size_t)(at - pw);
        if (n >= sizeof(out->password)) {
            snprintf(err, errlen, "password too long in Redis URL");
            return -1;
        }
        memcpy(out->password, pw, n);
        p = at + 1;
    }
    const char *end = slash ? slash : p + strlen(p);
    const char *colon = memchr(p, ':', (size_t)(end - p));
    const char *hend = colon ? colon : end;
    size_t hn = (size_t)(hend - p);
    if (hn == 0 || hn >= sizeof(out->host)) {
        snprintf(err, errlen, "missing or too long host in \"%s\"", url);
        return -1;
    }
    memcpy(out->host, p, hn);
    if (colon) {
        char port[16];
        size_t pn = (size_t)(end - colon - 1);
        long long v;
        if (pn == 0 || pn >= sizeof(port)) {
            snprintf(err, errlen, "bad port in \"%s\"", url);
            return -1;
        }
        memcpy(port, colon + 1, pn);
        port[pn] = '\0';
        if (!str_to_int(port, 1, 65535, &v)) {
            snprintf(err, errlen, "bad port in \"%s\"", url);
            return -1;
        }
        out->port = (int)v;
    }
    if (slash && slash[1]) {
        long long db;
        if (!str_to_int(slash + 1, 0, 1000000, &db)) {
            snprintf(err, errlen, "bad database number in \"%s\"", url);
            return -1;
        }
        out->db = (int)db;
    }
    return 0;
}

/* parse "url, url url" into cfg->feeds */
static int parse_feed_list(cache_config *cfg, const char *value, char *err, size_t errlen)
{
    char item[600];
    int n = 0;
    const char *p = value;
    while (*p) {
        while (*p == ',' || *p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        size_t len = strcspn(p, ", \t");
        if (len >= sizeof(item)) {
            snprintf(err, errlen, "Redis URL too long");
            return -1;
        }
        if (n == CACHE_MAX_SHARDS) {
            snprintf(err, errlen, "at most %d redis_feeds instances", CACHE_MAX_SHARDS);
            return -1;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        if (cache_redis_url_parse(item, &cfg->feeds[n], err, errlen) != 0)
            return -1;
        n++;
        p += len;
    }
    if (n == 0) {
        snprintf(err, errlen, "redis_feeds needs at least one URL");
        return -1;
    }
    cfg->n_feeds = n;
    return 0;
}

/* take one config key if it is ours */
int cache_config_set(cache_config *cfg, const char *key, const char *value, char *err,
                     size_t errlen)
{
    long long v;
    if (strcmp(key, "redis_feeds") == 0)
        return parse_feed_list(cfg, value, err, errlen) == 0 ? 1 : -1;
    if (strcmp(key, "redis_queue") == 0) {
        if (cache_redis_url_parse(value, &cfg->queue, err, errlen) != 0)
            return -1;
        cfg->have_queue = true;
        return 1;
    }
    if (strcmp(key, "redis_pubsub") == 0) {
        if (cache_redis_url_parse(value, &cfg->pubsub, err, errlen) != 0)
            return -1;
        cfg->have_pubsub = true;
        return 1;
    }
    if (strcmp(key, "redis_url") == 0) {
        /* one URL for every role not named on its own */
        cache_redis_url u;
        if (cache_redis_url_parse(value, &u, err, errlen) != 0)
            return -1;
        if (cfg->n_feeds == 0) {
            cfg->feeds[0] = u;
            cfg->n_feeds = 1;
        }
        if (!cfg->have_queue) {
            cfg->queue = u;
            cfg->have_queue = true;
        }
        if (!cfg->have_pubsub) {
            cfg->pubsub = u;
            cfg->have_pubsub = true;
        }
        return 1;
    }
    if (strcmp(key, "status_cache_ttl") == 0) {
        if (!str_to_int(value, 1, 30 * 86400, &v)) {
            snprintf(err, errlen, "status_cache_ttl must be 1..2592000 seconds");
            return -1;
        }
        cfg->status_ttl = (int)v;
        return 1;
    }
    if (strcmp(key, "redis_connect_timeout_ms") == 0 || strcmp(key, "redis_timeout_ms") == 0) {
        if (!str_to_int(value, 10, 600000, &v)) {
            snprintf(err, errlen, "%s must be 10..600000", key);
            return -1;
        }
        if (key[6] == 'c')
            cfg->connect_timeout_ms = (int)v;
        else
            cfg->command_timeout_ms = (int)v;
        return 1;
    }
    if (strcmp(key, "public_url") == 0) {
        size_t n = strlen(value);
        while (n > 8 && value[n - 1] == '/')
            n--; /* "https://x/" and "https://x" name the same base */
        bool scheme = strncmp(value, "http://", 7) == 0 || strncmp(value, "https://", 8) == 0;
        if (!scheme || n >= sizeof(cfg->public_url) || strchr(value, '"') || strchr(value, '\\')) {
            snprintf(err, errlen,
                     "public_url must be http:// or https:// and a host, up to %zu "
                     "bytes (not \"%s\")",
                     sizeof(cfg->public_url) - 1, value);
            return -1;
        }
        memcpy(cfg->public_url, value, n);
        cfg->public_url[n] = '\0';
        return 1;
    }
    if (strcmp(key, "local_domain") == 0) {
        if (!*value || !str_copy(cfg->local_domain, sizeof(cfg->local_domain), value)) {
            snprintf(err, errlen, "local_domain is empty or too long");
            return -1;
        }
        return 1;
    }
    return 0;
}

/* ---- handle ---- */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

/* a handle with lazily opened connections */
cache *cache_open(const cache_config *cfg)
{
    cache *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->cfg = *cfg;
    if (c->cfg.n_feeds == 0) {
        /* nothing configured: localhost default, or the queue's server */
        if (c->cfg.have_queue)
            c->cfg.feeds[0] = c->cfg.queue;
        else {
            char err[64];
            (void)cache_redis_url_parse("redis://127.0.0.1:6379/0", &c->cfg.feeds[0], err,
                                        sizeof(err));
        }
        c->cfg.n_feeds = 1;
    }
    if (!c->cfg.have_queue)
        c->cfg.queue = c->cfg.feeds[0];
    if (!c->cfg.have_pubsub)
        c->cfg.pubsub = c->cfg.feeds[0];
    c->cfg.have_queue = c->cfg.have_pubsub = true;
    for (int i = 0; i < c->cfg.n_feeds; i++) {
        c->feeds[i].url = &c->cfg.feeds[i];
        c->feeds[i].scripts = true;
    }
    c->queue.url = &c->cfg.queue;
    c->pubsub.url = &c->cfg.pubsub;
    return c;
}

static void slot_close(conn_slot *s)
{
    if (s->ctx) {
        redisFree(s->ctx);
        s->ctx = NULL;
    }
}

/* close every connection */
void cache_close(cache *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->cfg.n_feeds; i++)
        slot_close(&c->feeds[i]);
    slot_close(&c->queue);
    slot_close(&c->pubsub);
    free(c);
}

const cache_config *cache_get_config(const cache *c)
{
    return &c->cfg;
}

/* XXH3 of the id's decimal text: any client that can hash a string places keys the same */
int cache_shard_of(int n_shards, int64_t id)
{
    if (n_shards <= 1)
        return 0;
    char buf[24];
    int n = cache_id_text(buf, id);
    return (int)(XXH3_64bits(buf, (size_t)n) % (uint64_t)n_shards);
}

int cache_shard_count(const cache *c)
{
    return c->cfg.n_feeds;
}

/* run a command that must answer OK-ish; false on error */
static bool simple_command(redisContext *ctx, const char *what, int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(ctx, argc, argv, NULL);
    if (!r) {
        log_warning("redis %s: %s", what, ctx->errstr);
        return false;
    }
    bool ok = r->type != REDIS_REPLY_ERROR;
    if (!ok)
        log_warning("redis %s: %s", what, r->str);
    freeReplyObject(r);
    return ok;
}

/* SCRIPT LOAD every script on a feeds connection and remember the SHAs */
static bool load_scripts(cache *c, redisContext *ctx)
{
    for (int i = 0; i < CACHE_SCRIPT_COUNT; i++) {
        redisReply *r = redisCommand(ctx, "SCRIPT LOAD %s", cache_script_source(i));
        if (!r) {
            log_warning("redis SCRIPT LOAD: %s", ctx->errstr);
            return false;
        }
        if (r->type != REDIS_REPLY_STRING || r->len != 40) {
            log_error("redis SCRIPT LOAD of script %d failed: %s", i,
                      r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
            freeReplyObject(r);
            return false;
        }
        memcpy(c->sha[i], r->str, 40);
        c->sha[i][40] = '\0';
        freeReplyObject(r);
    }
    return true;
}

/* connect a slot if needed; NULL when Redis is unreachable */
static redisContext *slot_get(cache *c, conn_slot *s)
{
    if (s->ctx)
        return s->ctx;
    double now = now_ms();
    if (now < s->next_try_ms)
        return NULL;
    s->next_try_ms = now + RETRY_INTERVAL_MS;
    const cache_redis_url *u = s->url;
    struct timeval ct = {c->cfg.connect_timeout_ms / 1000,
                         (c->cfg.connect_timeout_ms % 1000) * 1000};
    redisContext *ctx = u->unix_path[0] ? redisConnectUnixWithTimeout(u->unix_path, ct)
                                        : redisConnectWithTimeout(u->host, u->port, ct);
    if (!ctx || ctx->err) {
        if (!s->down || now >= s->next_log_ms) {
            log_warning("redis %s:%d: %s", u->unix_path[0] ? u->unix_path : u->host, u->port,
                        ctx ? ctx->errstr : "out of memory");
            s->next_log_ms = now + 10000;
        }
        s->down = true;
        if (ctx)
            redisFree(ctx);
        return NULL;
    }
    struct timeval tv = {c->cfg.command_timeout_ms / 1000,
                         (c->cfg.command_timeout_ms % 1000) * 1000};
    redisSetTimeout(ctx, tv);
    redisEnableKeepAlive(ctx);
    if (u->password[0]) {
        const char *argv[] = {"AUTH", u->password};
        if (!simple_command(ctx, "AUTH", 2, argv))
            goto fail;
    }
    if (u->db != 0) {
        char db[16];
        snprintf(db, sizeof(db), "%d", u->db);
        const char *argv[] = {"SELECT", db};
        if (!simple_command(ctx, "SELECT", 2, argv))
            goto fail;
    }
    if (s->scripts && !load_scripts(c, ctx))
        goto fail;
    if (s->down)
        log_info("redis %s:%d: connected again", u->unix_path[0] ? u->unix_path : u->host, u->port);
    s->down = false;
    s->ctx = ctx;
    return ctx;
fail:
    redisFree(ctx);
    return NULL;
}

redisContext *cache_feeds_ctx(cache *c, int shard)
{
    if (shard < 0 || shard >= c->cfg.n_feeds)
        return NULL;
    return slot_get(c, &c->feeds[shard]);
}

redisContext *cache_queue_ctx(cache *c)
{
    return slot_get(c, &c->queue);
}

redisContext *cache_pubsub_ctx(cache *c)
{
    return slot_get(c, &c->pubsub);
}

/* close a context after an error; the next use reconnects */
void cache_ctx_broken(cache *c, redisContext *ctx)
{
    if (!ctx)
        return;
    conn_slot *slots[CACHE_MAX_SHARDS + 2];
    int n = 0;
    for (int i = 0; i < c->cfg.n_feeds; i++)
        slots[n++] = &c->feeds[i];
    slots[n++] = &c->queue;
    slots[n++] = &c->pubsub;
    for (int i = 0; i < n; i++) {
        if (slots[i]->ctx == ctx) {
            slot_close(slots[i]);
            slots[i]->next_try_ms = 0; /* a fresh try right away, then rate-limited */
            return;
        }
    }
}

/* read n pipelined replies */
int cache_read_replies(cache *c, redisContext *ctx, size_t n, redisReply **out)
{
    for (size_t i = 0; i < n; i++) {
        void *r = NULL;
        if (redisGetReply(ctx, &r) != REDIS_OK || !r) {
            log_warning("redis: %s", ctx->errstr[0] ? ctx->errstr : "connection lost");
            for (size_t j = 0; j < i; j++)
                freeReplyObject(out[j]);
            cache_ctx_broken(c, ctx);
            return -1;
        }
        out[i] = r;
    }
    return 0;
}

const char *cache_script_sha(cache *c, int i)
{
    return c->sha[i];
}

/* after NOSCRIPT (SCRIPT FLUSH by an operator): reload on every open feeds connection */
void cache_scripts_reload(cache *c)
{
    for (int i = 0; i < c->cfg.n_feeds; i++) {
        if (c->feeds[i].ctx && !load_scripts(c, c->feeds[i].ctx))
            cache_ctx_broken(c, c->feeds[i].ctx);
    }
}
