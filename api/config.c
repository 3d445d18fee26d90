/*
 * The [api] section of tusk.ini. The same file may hold the proxy's and fanout's sections;
 * those are skipped here. Unknown keys in [api] are warned about, never fatal, so a newer
 * config still starts an older binary.
 */
#include "api/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* defaults for every key */
void api_config_defaults(api_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->listen_host, sizeof(cfg->listen_host), "127.0.0.1");
    cfg->listen_port = 3000;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->workers = n > 0 ? (int)(n > 16 ? 16 : n) : 2;
    cfg->rate_limit = 300;
    cfg->rate_limit_unauth = 300;
    cfg->max_body_bytes = 1u << 20;
    cfg->max_header_bytes = 16384;
    cfg->request_timeout_ms = 10000;
    cfg->keepalive_timeout_ms = 75000;
    cfg->db_pool_size = 4;
    cfg->db_timeout_ms = 10000;
    cfg->max_connections = 20000;
    cfg->stream_queue_bytes = 4u << 20;
    cfg->auth_cache_ms = 10000;
    cfg->sse_heartbeat_ms = 15000;
    cfg->ws_ping_ms = 30000;
    cfg->subscribed_refresh_s = 360;
    cfg->subscribed_ttl_s = 1080;
    cfg->log_level = LOG_INFO;
    cache_config_init(&cfg->cache);
    cfg->db_threads = 4;
    cfg->lsn_token_ttl_ms = 30000;
    cfg->render_cache_entries = 16384;
    cfg->render_fresh_ms = 1000;
    cfg->max_status_chars = 500;
}

static bool set_str(char **dst, const char *v)
{
    char *s = strdup(v);
    if (!s)
        return false;
    free(*dst);
    *dst = s;
    return true;
}

/* "1048576", "64k", "1M" */
static bool parse_size(const char *v, size_t *out)
{
    char num[32];
    size_t l = strlen(v);
    if (l == 0 || l >= sizeof(num))
        return false;
    memcpy(num, v, l + 1);
    unsigned long long mul = 1;
    char last = num[l - 1];
    if (last == 'k' || last == 'K')
        mul = 1024;
    else if (last == 'm' || last == 'M')
        mul = 1024 * 1024;
    if (mul > 1)
        num[l - 1] = '\0';
    long long n;
    if (!str_to_int(num, 0, (1LL << 40) / (long long)mul, &n))
        return false;
    *out = (size_t)n * mul;
    return true;
}

/* "host:port", "[::1]:port", "*:port" or "port" */
static bool parse_listen(api_config *cfg, const char *v)
{
    const char *colon = strrchr(v, ':');
    const char *port = colon ? colon + 1 : v;
    long long p;
    if (!str_to_int(port, 1, 65535, &p))
        return false;
    cfg->listen_port = (int)p;
    if (!colon)
        return true;
    size_t hl = (size_t)(colon - v);
    if (hl >= 2 && v[0] == '[' && v[hl - 1] == ']') {
        v++;
        hl -= 2;
    }
    if (hl == 0 || hl >= sizeof(cfg->listen_host))
        return false;
    memcpy(cfg->listen_host, v, hl);
    cfg->listen_host[hl] = '\0';
    if (strcmp(cfg->listen_host, "*") == 0)
        snprintf(cfg->listen_host, sizeof(cfg->listen_host), "0.0.0.0");
    return true;
}

typedef struct int_key {
    const char *name;
    size_t off;
    long long min, max;
} int_key;

#define IK(n, f, lo, hi)                                                                           \
    {                                                                                              \
        n, offsetof(api_config, f), lo, hi                                                         \
    }
static const int_key int_keys[] = {
    IK("api_workers", workers, 1, 64),
    IK("workers", workers, 1, 64),
    IK("rate_limit_per_5min", rate_limit, 0, 100000000),
    IK("rate_limit_unauthenticated_per_5min", rate_limit_unauth, 0, 100000000),
    IK("request_timeout_ms", request_timeout_ms, 100, 3600000),
    IK("keepalive_timeout_ms", keepalive_timeout_ms, 100, 3600000),
    IK("db_pool_size", db_pool_size, 1, 256),
    IK("db_timeout_ms", db_timeout_ms, 0, 3600000),
    IK("max_connections", max_connections, 16, 1000000),
    IK("auth_cache_ms", auth_cache_ms, 0, 3600000),
    IK("sse_heartbeat_ms", sse_heartbeat_ms, 100, 3600000),
    IK("ws_ping_ms", ws_ping_ms, 100, 3600000),
    IK("subscribed_refresh_s", subscribed_refresh_s, 1, 86400),
    IK("subscribed_ttl_s", subscribed_ttl_s, 1, 86400 * 7),
    IK("db_threads", db_threads, 1, 256),
    IK("lsn_token_ttl_ms", lsn_token_ttl_ms, 0, 3600000),
    IK("render_cache_entries", render_cache_entries, 0, 10000000),
    IK("render_fresh_ms", render_fresh_ms, 0, 60000),
    IK("max_status_chars", max_status_chars, 1, 100000),
};

static int on_key(void *ctx, const char *section, const char *key, const char *value, int lineno,
                  char *err, size_t errlen)
{
    api_config *cfg = ctx;
    if (strcmp(section, "api") != 0)
        return 0;
    for (size_t i = 0; i < sizeof(int_keys) / sizeof(int_keys[0]); i++) {
        if (strcmp(key, int_keys[i].name) != 0)
            continue;
        long long v;
        if (!str_to_int(value, int_keys[i].min, int_keys[i].max, &v)) {
            snprintf(err, errlen, "%s must be an integer in [%lld, %lld]", key, int_keys[i].min,
                     int_keys[i].max);
            return -1;
        }
        *(int *)((char *)cfg + int_keys[i].off) = (int)v;
        return 0;
    }
    bool ok = true;
    if (strcmp(key, "listen") == 0) {
        if (!parse_listen(cfg, value)) {
            snprintf(err, errlen, "listen must be host:port");
            return -1;
        }
    } else if (strcmp(key, "database") == 0) {
        ok = set_str(&cfg->database, value);
    } else if (strcmp(key, "redis_pubsub") == 0) {
        char host[256], pw[256];
        int port, db;
        if (!api_redis_parse_url(value, host, sizeof(host), &port, &db, pw, sizeof(pw))) {
            snprintf(err, errlen, "%s must be redis://host:port[/db]", key);
            return -1;
        }
        ok = set_str(&cfg->redis_pubsub, value);
    } else if (strcmp(key, "redis_feeds") == 0) {
        /* one URL, or several (sharded as cache/ shards them): the cache config decides */
        if (cache_config_set(&cfg->cache, key, value, err, errlen) != 1)
            return -1;
        for (int i = 0; i < cfg->cache.n_feeds; i++)
            if (cfg->cache.feeds[i].unix_path[0]) {
                snprintf(err, errlen, "redis_feeds: unix sockets are not supported by tusk api");
                return -1;
            }
        ok = set_str(&cfg->redis_feeds, value);
    } else if (strcmp(key, "redis_queue") == 0 || strcmp(key, "status_cache_ttl") == 0 ||
               strcmp(key, "local_domain") == 0 || strcmp(key, "redis_connect_timeout_ms") == 0 ||
               strcmp(key, "redis_timeout_ms") == 0) {
        if (cache_config_set(&cfg->cache, key, value, err, errlen) != 1)
            return -1;
    } else if (strcmp(key, "public_url") == 0) {
        if (strncmp(value, "http://", 7) != 0 && strncmp(value, "https://", 8) != 0) {
            snprintf(err, errlen, "public_url must start with http:// or https://");
            return -1;
        }
        ok = set_str(&cfg->public_url, value);
    } else if (strcmp(key, "streaming_url") == 0) {
        ok = set_str(&cfg->streaming_url, value);
    } else if (strcmp(key, "title") == 0) {
        ok = set_str(&cfg->title, value);
    } else if (strcmp(key, "description") == 0) {
        ok = set_str(&cfg->description, value);
    } else if (strcmp(key, "contact_email") == 0) {
        ok = set_str(&cfg->contact_email, value);
    } else if (strcmp(key, "secret_key_base") == 0) {
        ok = set_str(&cfg->secret_key_base, value);
    } else if (strcmp(key, "logfile") == 0) {
        ok = set_str(&cfg->logfile, value);
    } else if (strcmp(key, "log_level") == 0) {
        int l = log_level_from_name(value);
        if (l < 0) {
            snprintf(err, errlen, "log_level must be debug, info, warning or error");
            return -1;
        }
        cfg->log_level = l;
    } else if (strcmp(key, "max_body_bytes") == 0 || strcmp(key, "max_header_bytes") == 0 ||
               strcmp(key, "stream_queue_bytes") == 0) {
        size_t v;
        if (!parse_size(value, &v) || v < 1024) {
            snprintf(err, errlen, "%s must be a size of at least 1024 (suffix k or M allowed)",
                     key);
            return -1;
        }
        if (key[4] == 'b')
            cfg->max_body_bytes = v;
        else if (key[4] == 'h')
            cfg->max_header_bytes = v;
        else
            cfg->stream_queue_bytes = v;
    } else {
        log_warning("line %d: unknown key \"%s\" in [api] ignored", lineno, key);
    }
    if (!ok) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* fill what the file left out from what it gave */
static int finish(api_config *cfg, char *err, size_t errlen)
{
    bool ok = true;
    if (!cfg->database)
        ok &= set_str(&cfg->database, "");
    if (!cfg->redis_pubsub)
        ok &= set_str(&cfg->redis_pubsub, "redis://127.0.0.1:6379");
    /* cache/ wants a scheme; redis_pubsub may be a bare host:port */
    char pubsub_url[600];
    snprintf(pubsub_url, sizeof(pubsub_url), "%s%s",
             strstr(cfg->redis_pubsub, "://") ? "" : "redis://", cfg->redis_pubsub);
    if (!cfg->redis_feeds) {
        ok &= set_str(&cfg->redis_feeds, cfg->redis_pubsub);
        if (ok && cache_config_set(&cfg->cache, "redis_feeds", pubsub_url, err, errlen) != 1)
            return -1;
    }
    if (!cfg->cache.have_pubsub &&
        cache_config_set(&cfg->cache, "redis_pubsub", pubsub_url, err, errlen) != 1)
        return -1;
    if (!cfg->public_url) {
        char u[300];
        snprintf(u, sizeof(u), "http://%s:%d", cfg->listen_host, cfg->listen_port);
        ok &= set_str(&cfg->public_url, u);
    }
    if (!ok)
        goto oom;
    size_t ul = strlen(cfg->public_url);
    while (ul > 8 && cfg->public_url[ul - 1] == '/')
        cfg->public_url[--ul] = '\0';
    const char *host = strstr(cfg->public_url, "://") + 3;
    size_t hl = strcspn(host, "/");
    free(cfg->domain);
    cfg->domain = strndup(host, hl);
    if (!cfg->domain)
        goto oom;
    /* URLs the status renderer builds (cache/render.c) name this host, as Account URLs do */
    if (strcmp(cfg->cache.local_domain, "localhost") == 0)
        str_copy(cfg->cache.local_domain, sizeof(cfg->cache.local_domain), cfg->domain);
    if (!cfg->cache.public_url[0] &&
        cache_config_set(&cfg->cache, "public_url", cfg->public_url, err, errlen) != 1)
        return -1;
    if (!cfg->streaming_url) {
        char u[600];
        bool tls = strncmp(cfg->public_url, "https://", 8) == 0;
        snprintf(u, sizeof(u), "%s://%s", tls ? "wss" : "ws", host);
        if (!set_str(&cfg->streaming_url, u))
            goto oom;
    }
    if (!cfg->title && !set_str(&cfg->title, "tusk"))
        goto oom;
    if (!cfg->description && !set_str(&cfg->description, ""))
        goto oom;
    if (!cfg->contact_email && !set_str(&cfg->contact_email, ""))
        goto oom;
    if (cfg->subscribed_ttl_s <= cfg->subscribed_refresh_s) {
        snprintf(err, errlen, "subscribed_ttl_s must be larger than subscribed_refresh_s");
        return -1;
    }
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

/* read the [api] section of a file */
int api_config_load(api_config *cfg, const char *path, char *err, size_t errlen)
{
    if (ini_parse_file(path, on_key, cfg, err, errlen) != 0)
        return -1;
    return finish(cfg, err, errlen);
}

/* the same from text */
int api_config_parse(api_config *cfg, const char *text, char *err, size_t errlen)
{
    if (ini_parse_string(text, on_key, cfg, err, errlen) != 0)
        return -1;
    return finish(cfg, err, errlen);
}

/* release strings */
void api_config_free(api_config *cfg)
{
    free(cfg->database);
    free(cfg->redis_pubsub);
    free(cfg->redis_feeds);
    free(cfg->public_url);
    free(cfg->streaming_url);
    free(cfg->domain);
    free(cfg->title);
    free(cfg->description);
    free(cfg->contact_email);
    free(cfg->logfile);
    free(cfg->secret_key_base);
    memset(cfg, 0, sizeof(*cfg));
}
