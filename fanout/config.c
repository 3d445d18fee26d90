/*
 * The [fanout] section of the config file. The file may be shared with the other roles, so
 * other sections are skipped; an unknown key inside [fanout] is a warning, never fatal, as
 * with the proxy's keys.
 */
#include "fanout/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void fanout_config_defaults(fanout_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cache_config_init(&cfg->cache);
    str_copy(cfg->database, sizeof(cfg->database), "dbname=mastodon");
    const char *def[][2] = {{"default", "4"}, {"push", "2"}, {"ingress", "1"}, {"pull", "1"}};
    for (int i = 0; i < 4; i++) {
        str_copy(cfg->queues[i].name, sizeof(cfg->queues[i].name), def[i][0]);
        cfg->queues[i].concurrency = atoi(def[i][1]);
    }
    cfg->n_queues = 4;
    char host[64] = "fanout";
    if (gethostname(host, sizeof(host)) != 0)
        str_copy(host, sizeof(host), "fanout");
    host[sizeof(host) - 1] = '\0';
    snprintf(cfg->consumer_name, sizeof(cfg->consumer_name), "%.63s-%d", host, (int)getpid());
    cfg->batch_size = 1000;
    cfg->block_ms = 1000;
    cfg->claim_idle_ms = 60000;
    cfg->claim_interval_ms = 5000;
    cfg->max_attempts = 10;
    cfg->relay = true;
    cfg->outbox_poll_ms = 500;
    cfg->outbox_batch = 500;
    cfg->outbox_listen = true;
    cfg->outbox_retention_s = 86400;
    cfg->pg_min_lsn_token = 0;
    cfg->log_level = LOG_INFO;
}

/* "default:4,push:2" */
static int parse_queues(fanout_config *cfg, const char *value, char *err, size_t errlen)
{
    int n = 0;
    const char *p = value;
    while (*p) {
        while (*p == ',' || *p == ' ')
            p++;
        if (!*p)
            break;
        size_t len = strcspn(p, ", ");
        char item[64];
        if (len >= sizeof(item) || n == FANOUT_MAX_QUEUES) {
            snprintf(err, errlen, "too many or too long queue entries");
            return -1;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        p += len;
        char *colon = strchr(item, ':');
        long long conc = 1;
        if (colon) {
            *colon = '\0';
            if (!str_to_int(colon + 1, 0, 64, &conc)) {
                snprintf(err, errlen, "queue \"%s\": concurrency must be 0..64", item);
                return -1;
            }
        }
        if (!item[0] || strlen(item) >= sizeof(cfg->queues[0].name) ||
            strspn(item, "abcdefghijklmnopqrstuvwxyz0123456789_-") != strlen(item)) {
            snprintf(err, errlen, "bad queue name \"%s\"", item);
            return -1;
        }
        for (int i = 0; i < n; i++) {
            if (strcmp(cfg->queues[i].name, item) == 0) {
                snprintf(err, errlen, "queue \"%s\" listed twice", item);
                return -1;
            }
        }
        str_copy(cfg->queues[n].name, sizeof(cfg->queues[n].name), item);
        cfg->queues[n].concurrency = (int)conc;
        n++;
    }
    if (n == 0) {
        snprintf(err, errlen, "queues is empty");
        return -1;
    }
    cfg->n_queues = n;
    return 0;
}

static int set_int(const char *key, const char *value, long long min, long long max, int *out,
                   char *err, size_t errlen)
{
    long long v;
    if (!str_to_int(value, min, max, &v)) {
        snprintf(err, errlen, "%s must be an integer in %lld..%lld", key, min, max);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int set_bool(const char *key, const char *value, bool *out, char *err, size_t errlen)
{
    if (!str_to_bool(value, out)) {
        snprintf(err, errlen, "%s must be on or off", key);
        return -1;
    }
    return 0;
}

static int set_str(const char *key, const char *value, char *dst, size_t cap, char *err,
                   size_t errlen)
{
    if (!str_copy(dst, cap, value)) {
        snprintf(err, errlen, "%s is too long", key);
        return -1;
    }
    return 0;
}

/* one key of [fanout] */
static int handle(void *ctx, const char *section, const char *key, const char *value, int lineno,
                  char *err, size_t errlen)
{
    fanout_config *cfg = ctx;
    if (strcmp(section, "fanout") != 0)
        return 0;
    int used = cache_config_set(&cfg->cache, key, value, err, errlen);
    if (used != 0)
        return used > 0 ? 0 : -1;
    if (strcmp(key, "database") == 0)
        return set_str(key, value, cfg->database, sizeof(cfg->database), err, errlen);
    if (strcmp(key, "listen_database") == 0)
        return set_str(key, value, cfg->listen_database, sizeof(cfg->listen_database), err, errlen);
    if (strcmp(key, "queues") == 0)
        return parse_queues(cfg, value, err, errlen);
    if (strcmp(key, "consumer_name") == 0) {
        if (!*value) {
            snprintf(err, errlen, "consumer_name is empty");
            return -1;
        }
        return set_str(key, value, cfg->consumer_name, sizeof(cfg->consumer_name), err, errlen);
    }
    if (strcmp(key, "batch_size") == 0)
        return set_int(key, value, 1, 100000, &cfg->batch_size, err, errlen);
    if (strcmp(key, "block_ms") == 0)
        return set_int(key, value, 10, 60000, &cfg->block_ms, err, errlen);
    if (strcmp(key, "claim_idle_ms") == 0)
        return set_int(key, value, 100, 86400000, &cfg->claim_idle_ms, err, errlen);
    if (strcmp(key, "claim_interval_ms") == 0)
        return set_int(key, value, 50, 3600000, &cfg->claim_interval_ms, err, errlen);
    if (strcmp(key, "max_attempts") == 0)
        return set_int(key, value, 1, 1000, &cfg->max_attempts, err, errlen);
    if (strcmp(key, "relay") == 0)
        return set_bool(key, value, &cfg->relay, err, errlen);
    if (strcmp(key, "outbox_poll_ms") == 0)
        return set_int(key, value, 10, 600000, &cfg->outbox_poll_ms, err, errlen);
    if (strcmp(key, "outbox_batch") == 0)
        return set_int(key, value, 1, 100000, &cfg->outbox_batch, err, errlen);
    if (strcmp(key, "outbox_listen") == 0)
        return set_bool(key, value, &cfg->outbox_listen, err, errlen);
    if (strcmp(key, "outbox_retention") == 0)
        return set_int(key, value, 0, 365 * 86400, &cfg->outbox_retention_s, err, errlen);
    if (strcmp(key, "pg_min_lsn_token") == 0) {
        bool b;
        if (strcasecmp(value, "auto") == 0)
            cfg->pg_min_lsn_token = 0;
        else if (str_to_bool(value, &b))
            cfg->pg_min_lsn_token = b ? 1 : -1;
        else {
            snprintf(err, errlen, "pg_min_lsn_token must be auto, on or off");
            return -1;
        }
        return 0;
    }
    if (strcmp(key, "admin_listen") == 0)
        return set_str(key, value, cfg->admin_listen, sizeof(cfg->admin_listen), err, errlen);
    if (strcmp(key, "logfile") == 0)
        return set_str(key, value, cfg->logfile, sizeof(cfg->logfile), err, errlen);
    if (strcmp(key, "log_level") == 0) {
        int l = log_level_from_name(value);
        if (l < 0) {
            snprintf(err, errlen, "log_level must be debug, info, warning or error");
            return -1;
        }
        cfg->log_level = l;
        return 0;
    }
    if (strcmp(key, "debug_page_delay_ms") == 0)
        return set_int(key, value, 0, 60000, &cfg->debug_page_delay_ms, err, errlen);
    log_warning("config line %d: unknown key \"%s\" in [fanout] ignored", lineno, key);
    return 0;
}

int fanout_config_load(fanout_config *cfg, const char *path, char *err, size_t errlen)
{
    fanout_config_defaults(cfg);
    return ini_parse_file(path, handle, cfg, err, errlen);
}

int fanout_config_parse(fanout_config *cfg, const char *text, char *err, size_t errlen)
{
    fanout_config_defaults(cfg);
    return ini_parse_string(text, handle, cfg, err, errlen);
}
