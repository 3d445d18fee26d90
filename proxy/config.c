/*
 * Proxy configuration in pgbouncer.ini layout: [pgbouncer] settings, [databases] entries
 * (libpq-style strings, plus tusk's "replicas"), [users] entries, the userlist auth_file.
 * A key tusk does not use is a warning, never an error, so a real pgbouncer.ini starts
 * unchanged; a bad value of a key tusk does use is an error with file:line.
 *
 * A loaded config is immutable and reference counted: a reload builds a new one and the
 * workers switch to it at a safe point while pools keep their old one until they re-resolve.
 */
#include "proxy/internal.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum {
    T_STR,
    T_INT,
    T_BOOL,
    T_TIME,
    T_POOLMODE,
    T_AUTHTYPE,
    T_SSLMODE,
    T_LIST,
    T_LOGLEVEL,
    T_PRIMARYREADS,
    T_PIPELINE
};

typedef struct keydef {
    const char *name;
    int type;
    size_t off;
    const char *def;
    long long min, max;
} keydef;

#define K(n, t, f, d, lo, hi)                                                                      \
    {                                                                                              \
        n, t, offsetof(px_config, f), d, lo, hi                                                    \
    }

static const keydef keys[] = {
    K("listen_addr", T_STR, listen_addr, "", 0, 0),
    K("listen_port", T_INT, listen_port, "6432", 1, 65535),
    K("unix_socket_dir", T_STR, unix_socket_dir, "/tmp", 0, 0),
    K("unix_socket_mode", T_INT, unix_socket_mode, "511", 0, 07777),
    K("listen_backlog", T_INT, listen_backlog, "128", 1, 65535),
    K("admin_listen", T_STR, admin_listen, "", 0, 0),
    K("auth_type", T_AUTHTYPE, auth_type, "md5", 0, 0),
    K("auth_file", T_STR, auth_file, "", 0, 0),
    K("auth_hba_file", T_STR, auth_hba_file, "", 0, 0),
    K("auth_query", T_STR, auth_query, "SELECT usename, passwd FROM pg_shadow WHERE usename=$1", 0,
      0),
    K("auth_user", T_STR, auth_user, "", 0, 0),
    K("auth_dbname", T_STR, auth_dbname, "", 0, 0),
    K("admin_users", T_STR, admin_users, "", 0, 0),
    K("stats_users", T_STR, stats_users, "", 0, 0),
    K("logfile", T_STR, logfile, "", 0, 0),
    K("pidfile", T_STR, pidfile, "", 0, 0),
    K("log_connections", T_BOOL, log_connections, "1", 0, 0),
    K("pipeline_reads", T_PIPELINE, pipeline_reads, "on", 0, 0),
    K("pipeline_fast_time", T_TIME, pipeline_fast_time, "0.001", 0, 0),
    K("pipeline_depth", T_INT, pipeline_depth, "3", 1, PX_PIPE_DEPTH_MAX),
    K("busy_poll_time", T_TIME, busy_poll_time, "100us", 0, 0),
    K("tcp_defer_accept", T_BOOL, tcp_defer_accept, "1", 0, 0),
    K("log_disconnections", T_BOOL, log_disconnections, "1", 0, 0),
    K("log_pooler_errors", T_BOOL, log_pooler_errors, "1", 0, 0),
    K("verbose", T_INT, verbose, "0", 0, 10),
    K("workers", T_INT, workers, "0", 0, PX_MAX_WORKERS),
    K("worker_pack_clients", T_INT, worker_pack_clients, "16", 0, 1000000),
    K("pool_mode", T_POOLMODE, pool_mode, "session", 0, 0),
    K("default_pool_size", T_INT, default_pool_size, "20", 0, 100000),
    K("min_pool_size", T_INT, min_pool_size, "0", 0, 100000),
    K("reserve_pool_size", T_INT, reserve_pool_size, "0", 0, 100000),
    K("reserve_pool_timeout", T_TIME, reserve_pool_timeout, "5", 0, 0),
    K("max_client_conn", T_INT, max_client_conn, "100", 1, 10000000),
    K("max_db_connections", T_INT, max_db_connections, "0", 0, 100000),
    K("max_user_connections", T_INT, max_user_connections, "0", 0, 100000),
    K("server_reset_query", T_STR, server_reset_query, "DISCARD ALL", 0, 0),
    K("server_reset_query_always", T_BOOL, server_reset_query_always, "0", 0, 0),
    K("server_check_query", T_STR, server_check_query, "select 1", 0, 0),
    K("server_check_delay", T_TIME, server_check_delay, "30", 0, 0),
    K("query_wait_timeout", T_TIME, query_wait_timeout, "120", 0, 0),
    K("query_timeout", T_TIME, query_timeout, "0", 0, 0),
    K("client_idle_timeout", T_TIME, client_idle_timeout, "0", 0, 0),
    K("idle_transaction_timeout", T_TIME, idle_transaction_timeout, "0", 0, 0),
    K("server_idle_timeout", T_TIME, server_idle_timeout, "600", 0, 0),
    K("server_lifetime", T_TIME, server_lifetime, "3600", 0, 0),
    K("server_connect_timeout", T_TIME, server_connect_timeout, "15", 0, 0),
    K("server_login_retry", T_TIME, server_login_retry, "1", 0, 0),
    K("client_login_timeout", T_TIME, client_login_timeout, "60", 0, 0),
    K("client_packet_timeout", T_TIME, client_packet_timeout, "60", 0, 0),
    K("shutdown_wait_timeout", T_TIME, shutdown_wait_timeout, "60", 0, 0),
    K("ignore_startup_parameters", T_LIST, ignore_startup_parameters, "", 0, 0),
    K("max_prepared_statements", T_INT, max_prepared_statements, "200", 0, 100000),
    K("pkt_buf", T_INT, pkt_buf, "32768", 512, 16 << 20),
    K("tcp_keepalive", T_BOOL, tcp_keepalive, "1", 0, 0),
    K("client_tls_sslmode", T_SSLMODE, client_tls_sslmode, "disable", 0, 0),
    K("client_tls_key_file", T_STR, client_tls_key_file, "", 0, 0),
    K("client_tls_cert_file", T_STR, client_tls_cert_file, "", 0, 0),
    K("client_tls_ca_file", T_STR, client_tls_ca_file, "", 0, 0),
    K("client_tls_ciphers", T_STR, client_tls_ciphers, "", 0, 0),
    K("server_tls_sslmode", T_SSLMODE, server_tls_sslmode, "disable", 0, 0),
    K("server_tls_ca_file", T_STR, server_tls_ca_file, "", 0, 0),
    K("server_tls_key_file", T_STR, server_tls_key_file, "", 0, 0),
    K("server_tls_cert_file", T_STR, server_tls_cert_file, "", 0, 0),
    K("server_tls_ciphers", T_STR, server_tls_ciphers, "", 0, 0),
    K("lag_poll_ms", T_INT, lag_poll_ms, "100", 1, 60000),
    K("max_replica_lag_ms", T_INT, max_replica_lag_ms, "0", 0, 2000000000),
    K("max_replica_lag_bytes", T_INT, max_replica_lag_bytes, "0", 0, 2000000000),
    K("replica_wait_ms", T_INT, replica_wait_ms, "50", 0, 600000),
    K("primary_reads", T_PRIMARYREADS, primary_reads, "overflow", 0, 0),
    K("unsafe_functions", T_STR, unsafe_functions, "", 0, 0),
    K("monitor_user", T_STR, monitor_user, "", 0, 0),
    K("monitor_password", T_STR, monitor_password, "", 0, 0),
};

/* pgbouncer keys tusk accepts and does not use (said once at info level, not as a warning) */
static const char *const known_unused[] = {"unix_socket_group",
                                           "client_tls_protocols",
                                           "client_tls_dheparams",
                                           "client_tls_ecdhcurve",
                                           "server_tls_protocols",
                                           "server_fast_close",
                                           "application_name_add_host",
                                           "stats_period",
                                           "server_round_robin",
                                           "syslog",
                                           "syslog_facility",
                                           "syslog_ident",
                                           "log_stats",
                                           "autodb_idle_timeout",
                                           "suspend_timeout",
                                           "sbuf_loopcnt",
                                           "max_packet_size",
                                           "so_reuseport",
                                           "tcp_socket_buffer",
                                           "tcp_keepcnt",
                                           "tcp_keepidle",
                                           "tcp_keepintvl",
                                           "tcp_user_timeout",
                                           "dns_max_ttl",
                                           "dns_zone_check_period",
                                           "dns_nxdomain_ttl",
                                           "resolv_conf",
                                           "disable_pqexec",
                                           "service_name",
                                           "job_name",
                                           "conffile",
                                           "user",
                                           "peer_id",
                                           "track_extra_parameters",
                                           "query_wait_notify",
                                           "server_tls13_ciphers",
                                           "client_tls13_ciphers",
                                           "auth_ident_file",
                                           "max_user_client_connections",
                                           "max_db_client_connections",
                                           "client_tls_sslmode_key",
                                           NULL};

typedef struct load_ctx {
    px_config *cfg;
    bool seen[sizeof(keys) / sizeof(keys[0])];
    const char *path; /* for relative auth_file */
} load_ctx;

static int handle_key(void *ctx, const char *section, const char *key, const char *value,
                      int lineno, char *err, size_t errlen);
static int set_key(px_config *cfg, const keydef *k, const char *value, char *err, size_t errlen);
static int parse_db(px_config *cfg, const char *name, const char *value, char *err, size_t errlen);
static int parse_user(px_config *cfg, const char *name, const char *value, char *err,
                      size_t errlen);
static bool parse_time(const char *s, double *out);
static int parse_pool_mode(const char *s);
static int parse_auth_type(const char *s);
static int parse_sslmode(const char *s);
static bool finish(px_config *cfg, const char *path, char *err, size_t errlen);
static void free_db(px_db *d);
static char *xstrdup(const char *s);
static bool resolve_node(px_node *n, char *err, size_t errlen);

/* ------------------------------------------------------------------------------------------ */

/* load FILE; NULL with the reason in err */
px_config *px_config_load(const char *path, char *err, size_t errlen)
{
    px_config *cfg = calloc(1, sizeof(*cfg));
    load_ctx *lc = calloc(1, sizeof(*lc));
    if (!cfg || !lc) {
        free(cfg);
        free(lc);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&cfg->refs, 1);
    cfg->path = xstrdup(path);
    lc->cfg = cfg;
    lc->path = path;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (set_key(cfg, &keys[i], keys[i].def, err, errlen) != 0)
            abort(); /* defaults are valid */
    if (ini_parse_file(path, handle_key, lc, err, errlen) != 0 || !finish(cfg, path, err, errlen)) {
        free(lc);
        px_config_unref(cfg);
        return NULL;
    }
    free(lc);
    return cfg;
}

/* parse config text (tests) */
px_config *px_config_parse(const char *text, char *err, size_t errlen)
{
    px_config *cfg = calloc(1, sizeof(*cfg));
    load_ctx *lc = calloc(1, sizeof(*lc));
    if (!cfg || !lc) {
        free(cfg);
        free(lc);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&cfg->refs, 1);
    cfg->path = xstrdup("(string)");
    lc->cfg = cfg;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (set_key(cfg, &keys[i], keys[i].def, err, errlen) != 0)
            abort();
    if (ini_parse_string(text, handle_key, lc, err, errlen) != 0 ||
        !finish(cfg, NULL, err, errlen)) {
        free(lc);
        px_config_unref(cfg);
        return NULL;
    }
    free(lc);
    return cfg;
}

/* TLS contexts and addresses: done once the config is known to be valid */
bool px_config_prepare(px_config *cfg, char *err, size_t errlen)
{
    for (int i = 0; i < cfg->n_dbs; i++)
        for (int j = 0; j < cfg->dbs[i].n_nodes; j++)
            if (!resolve_node(&cfg->dbs[i].nodes[j], err, errlen))
                log_warning("database \"%s\": %s (retried at connect time)", cfg->dbs[i].name, err);
    if (cfg->client_tls_sslmode != TLS_DISABLE) {
        cfg->client_tls = px_tls_server_ctx(cfg, err, errlen);
        if (!cfg->client_tls)
            return false;
    }
    if (cfg->server_tls_sslmode != TLS_DISABLE) {
        cfg->server_tls = px_tls_client_ctx(cfg, err, errlen);
        if (!cfg->server_tls)
            return false;
    }
    err[0] = '\0';
    return true;
}

/* take a reference */
px_config *px_config_ref(px_config *cfg)
{
    atomic_fetch_add(&cfg->refs, 1);
    return cfg;
}

/* drop a reference; the last one frees the config */
void px_config_unref(px_config *cfg)
{
    if (!cfg || atomic_fetch_sub(&cfg->refs, 1) != 1)
        return;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (keys[i].type == T_STR || keys[i].type == T_LIST)
            free(*(char **)((char *)cfg + keys[i].off));
    for (int i = 0; i < cfg->n_dbs; i++)
        free_db(&cfg->dbs[i]);
    free(cfg->dbs);
    for (int i = 0; i < cfg->n_users; i++)
        free(cfg->users[i].name);
    free(cfg->users);
    userlist_free(cfg->users_file);
    px_hba_free(cfg->hba);
    if (cfg->client_tls)
        SSL_CTX_free(cfg->client_tls);
    if (cfg->server_tls)
        SSL_CTX_free(cfg->server_tls);
    free(cfg->path);
    free(cfg);
}

/* the entry for a database name: exact, else "*" */
const px_db *px_config_find_db(const px_config *cfg, const char *name)
{
    for (int i = 0; i < cfg->n_dbs; i++)
        if (strcmp(cfg->dbs[i].name, name) == 0)
            return &cfg->dbs[i];
    return cfg->fallback;
}

/* the [users] entry of a user, NULL if none */
const px_usercfg *px_config_find_user(const px_config *cfg, const char *name)
{
    for (int i = 0; i < cfg->n_users; i++)
        if (strcmp(cfg->users[i].name, name) == 0)
            return &cfg->users[i];
    return NULL;
}

/* is a startup parameter listed in ignore_startup_parameters? */
bool px_config_ignored_param(const px_config *cfg, const char *name)
{
    const char *p = cfg->ignore_startup_parameters;
    size_t n = strlen(name);
    while (p && *p) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && strncasecmp(p, name, n) == 0)
            return true;
        p = e ? e + 1 : NULL;
    }
    return false;
}

/* name of a pool mode for log lines */
const char *px_pool_mode_name(int mode)
{
    return mode == PM_TRANSACTION ? "transaction" : mode == PM_STATEMENT ? "statement" : "session";
}

/* name of an auth_type for log lines */
const char *px_auth_type_name(int type)
{
    static const char *const n[] = {"trust", "any", "plain", "md5", "scram-sha-256", "hba", "cert"};
    return type >= 0 && type <= AUTH_CERT ? n[type] : "?";
}

/* ------------------------------------------------------------------------------------------ */

static int handle_key(void *ctx, const char *section, const char *key, const char *value,
                      int lineno, char *err, size_t errlen)
{
    load_ctx *lc = ctx;
    px_config *cfg = lc->cfg;
    if (strcmp(section, "pgbouncer") == 0 || strcmp(section, "tusk") == 0) {
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
            if (strcmp(keys[i].name, key) == 0) {
                lc->seen[i] = true;
                return set_key(cfg, &keys[i], value, err, errlen);
            }
        }
        for (int i = 0; known_unused[i]; i++) {
            if (strcmp(known_unused[i], key) == 0) {
                log_info("config line %d: \"%s\" is a pgbouncer setting tusk does not use; ignored",
                         lineno, key);
                cfg->n_warnings++;
                return 0;
            }
        }
        log_warning("config line %d: unknown setting \"%s\" in [%s]; ignored", lineno, key,
                    section);
        cfg->n_warnings++;
        return 0;
    }
    if (strcmp(section, "databases") == 0)
        return parse_db(cfg, key, value, err, errlen);
    if (strcmp(section, "users") == 0)
        return parse_user(cfg, key, value, err, errlen);
    /* one tusk.ini serves all three roles: the other roles' sections are theirs */
    if (strcmp(section, "fanout") == 0 || strcmp(section, "api") == 0)
        return 0;
    log_warning("config line %d: section [%s] is not used by tusk; \"%s\" ignored", lineno, section,
                key);
    cfg->n_warnings++;
    return 0;
}

static int set_key(px_config *cfg, const keydef *k, const char *value, char *err, size_t errlen)
{
    void *field = (char *)cfg + k->off;
    switch (k->type) {
    case T_STR: {
        char *s = xstrdup(value);
        free(*(char **)field);
        *(char **)field = s;
        return 0;
    }
    case T_LIST: {
        /* lowercase, no spaces: matched against startup parameter names */
        char *s = malloc(strlen(value) + 1);
        size_t o = 0;
        for (const char *p = value; *p; p++)
            if (!isspace((unsigned char)*p))
                s[o++] = (char)tolower((unsigned char)*p);
        s[o] = '\0';
        free(*(char **)field);
        *(char **)field = s;
        return 0;
    }
    case T_INT: {
        long long v;
        if (!str_to_int(value, k->min, k->max, &v)) {
            snprintf(err, errlen, "%s: expected an integer from %lld to %lld, got \"%.64s\"",
                     k->name, k->min, k->max, value);
            return -1;
        }
        *(int *)field = (int)v;
        return 0;
    }
    case T_BOOL: {
        bool b;
        if (!str_to_bool(value, &b)) {
            snprintf(err, errlen, "%s: expected a boolean, got \"%.64s\"", k->name, value);
            return -1;
        }
        *(bool *)field = b;
        return 0;
    }
    case T_TIME: {
        double t;
        if (!parse_time(value, &t)) {
            snprintf(err, errlen, "%s: expected seconds (e.g. 30, 0.5, 250ms), got \"%.64s\"",
                     k->name, value);
            return -1;
        }
        *(double *)field = t;
        return 0;
    }
    case T_PIPELINE: {
        int m = px_parse_pipeline_reads(value);
        if (m < 0) {
            snprintf(err, errlen, "%s: expected off, queued or on, got \"%.64s\"", k->name, value);
            return -1;
        }
        *(int *)field = m;
        return 0;
    }
    case T_PRIMARYREADS: {
        int m = px_parse_primary_reads(value);
        if (m < 0) {
            snprintf(err, errlen, "%s: expected off, on or overflow, got \"%.64s\"", k->name,
                     value);
            return -1;
        }
        *(int *)field = m;
        return 0;
    }
    case T_POOLMODE: {
        int m = parse_pool_mode(value);
        if (m < 0) {
            snprintf(err, errlen, "pool_mode: expected session or transaction, got \"%.64s\"",
                     value);
            return -1;
        }
        *(int *)field = m;
        return 0;
    }
    case T_AUTHTYPE: {
        int a = parse_auth_type(value);
        if (a < 0) {
            snprintf(err, errlen,
                     "auth_type: expected trust, md5, scram-sha-256, plain or any, got \"%.64s\"",
                     value);
            return -1;
        }
        *(int *)field = a;
        return 0;
    }
    case T_SSLMODE: {
        int m = parse_sslmode(value);
        if (m < 0) {
            snprintf(err, errlen,
                     "%s: expected disable, allow, prefer, require, verify-ca or verify-full, got "
                     "\"%.64s\"",
                     k->name, value);
            return -1;
        }
        *(int *)field = m;
        return 0;
    }
    }
    return -1;
}

typedef struct db_ctx {
    px_config *cfg;
    px_db *db;
    char *replicas;
    char *host;
    int port;
} db_ctx;

static int parse_int_field(const char *key, const char *value, int *out, char *err, size_t errlen)
{
    long long v;
    if (!str_to_int(value, 0, 1000000, &v)) {
        snprintf(err, errlen, "%s: expected a non-negative integer, got \"%.64s\"", key, value);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int db_key(void *ctx, const char *key, const char *value, char *err, size_t errlen)
{
    db_ctx *dc = ctx;
    px_db *d = dc->db;
    char **str = NULL;
    if (strcmp(key, "dbname") == 0)
        str = &d->dbname;
    else if (strcmp(key, "user") == 0)
        str = &d->user;
    else if (strcmp(key, "password") == 0)
        str = &d->password;
    else if (strcmp(key, "auth_user") == 0)
        str = &d->auth_user;
    else if (strcmp(key, "client_encoding") == 0)
        str = &d->client_encoding;
    else if (strcmp(key, "datestyle") == 0)
        str = &d->datestyle;
    else if (strcmp(key, "timezone") == 0)
        str = &d->timezone;
    else if (strcmp(key, "application_name") == 0)
        str = &d->application_name;
    else if (strcmp(key, "replicas") == 0)
        str = &dc->replicas;
    else if (strcmp(key, "replica_weights") == 0)
        str = &d->replica_weights;
    else if (strcmp(key, "host") == 0)
        str = &dc->host;
    if (str) {
        free(*str);
        *str = xstrdup(value);
        return 0;
    }
    if (strcmp(key, "port") == 0) {
        long long v;
        if (!str_to_int(value, 1, 65535, &v)) {
            snprintf(err, errlen, "port: expected 1..65535, got \"%.64s\"", value);
            return -1;
        }
        dc->port = (int)v;
        return 0;
    }
    if (strcmp(key, "pool_size") == 0)
        return parse_int_field(key, value, &d->pool_size, err, errlen);
    if (strcmp(key, "min_pool_size") == 0)
        return parse_int_field(key, value, &d->min_pool_size, err, errlen);
    if (strcmp(key, "reserve_pool") == 0 || strcmp(key, "reserve_pool_size") == 0)
        return parse_int_field(key, value, &d->reserve_pool, err, errlen);
    if (strcmp(key, "max_db_connections") == 0)
        return parse_int_field(key, value, &d->max_db_connections, err, errlen);
    if (strcmp(key, "max_replica_lag_ms") == 0)
        return parse_int_field(key, value, &d->max_replica_lag_ms, err, errlen);
    if (strcmp(key, "max_replica_lag_bytes") == 0)
        return parse_int_field(key, value, &d->max_replica_lag_bytes, err, errlen);
    if (strcmp(key, "replica_wait_ms") == 0)
        return parse_int_field(key, value, &d->replica_wait_ms, err, errlen);
    if (strcmp(key, "primary_reads") == 0) {
        d->primary_reads = px_parse_primary_reads(value);
        if (d->primary_reads < 0) {
            snprintf(err, errlen, "primary_reads: expected off, on or overflow, got \"%.64s\"",
                     value);
            return -1;
        }
        return 0;
    }
    if (strcmp(key, "pool_mode") == 0) {
        d->pool_mode = parse_pool_mode(value);
        if (d->pool_mode < 0) {
            snprintf(err, errlen, "pool_mode: expected session or transaction, got \"%.64s\"",
                     value);
            return -1;
        }
        return 0;
    }
    log_warning("database \"%s\": key \"%s\" is not used by tusk; ignored", d->name, key);
    dc->cfg->n_warnings++;
    return 0;
}

/* "host:port" or "host" (port of the primary); IPv6 as "[::1]:5432" */
static bool parse_node(const char *s, size_t len, int default_port, px_node *n)
{
    char buf[512];
    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *host = buf;
    char *port = NULL;
    if (host[0] == '[') {
        char *e = strchr(host, ']');
        if (!e)
            return false;
        *e = '\0';
        host++;
        if (e[1] == ':')
            port = e + 2;
        else if (e[1] != '\0')
            return false;
    } else {
        char *c = strrchr(host, ':');
        if (c && host[0] != '/') {
            *c = '\0';
            port = c + 1;
        }
    }
    long long p = default_port;
    if (port && !str_to_int(port, 1, 65535, &p))
        return false;
    if (!*host)
        return false;
    n->host = xstrdup(host);
    n->port = (int)p;
    return true;
}

static int parse_db(px_config *cfg, const char *name, const char *value, char *err, size_t errlen)
{
    for (int i = 0; i < cfg->n_dbs; i++) {
        if (strcmp(cfg->dbs[i].name, name) == 0) {
            snprintf(err, errlen, "database \"%.64s\" is defined twice", name);
            return -1;
        }
    }
    px_db *dbs = realloc(cfg->dbs, sizeof(px_db) * (size_t)(cfg->n_dbs + 1));
    if (!dbs) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    cfg->dbs = dbs;
    px_db *d = &dbs[cfg->n_dbs];
    memset(d, 0, sizeof(*d));
    d->name = xstrdup(name);
    d->pool_size = d->min_pool_size = d->reserve_pool = d->max_db_connections = -1;
    d->pool_mode = -1;
    d->max_replica_lag_ms = d->max_replica_lag_bytes = d->replica_wait_ms = -1;
    d->primary_reads = -1;
    cfg->n_dbs++;
    db_ctx dc = {.cfg = cfg, .db = d, .port = 5432};
    int rc = connstr_parse(value, db_key, &dc, err, errlen);
    if (rc == 0) {
        const char *host = dc.host && *dc.host ? dc.host : "/var/run/postgresql";
        if (strchr(host, ',')) {
            log_warning("database \"%s\": several hosts given; tusk uses the first as primary "
                        "(list replicas in replicas=)",
                        name);
        }
        size_t hlen = strcspn(host, ",");
        int nrep = 0;
        if (dc.replicas && *dc.replicas) {
            nrep = 1;
            for (const char *p = dc.replicas; *p; p++)
                nrep += *p == ',';
        }
        d->nodes = calloc((size_t)(1 + nrep), sizeof(px_node));
        d->nodes[0].host = malloc(hlen + 1);
        memcpy(d->nodes[0].host, host, hlen);
        d->nodes[0].host[hlen] = '\0';
        d->nodes[0].port = dc.port;
        d->n_nodes = 1;
        const char *p = dc.replicas;
        while (nrep && p && *p) {
            const char *e = strchr(p, ',');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            while (l && isspace((unsigned char)*p)) {
                p++;
                l--;
            }
            while (l && isspace((unsigned char)p[l - 1]))
                l--;
            if (!parse_node(p, l, dc.port, &d->nodes[d->n_nodes])) {
                snprintf(err, errlen, "database \"%.64s\": bad replica \"%.*s\" (want host:port)",
                         name, (int)(l > 64 ? 64 : l), p);
                rc = -1;
                break;
            }
            d->n_nodes++;
            p = e ? e + 1 : NULL;
        }
    }
    free(dc.replicas);
    free(dc.host);
    return rc;
}

typedef struct user_ctx {
    px_config *cfg;
    px_usercfg *u;
} user_ctx;

static int user_key(void *ctx, const char *key, const char *value, char *err, size_t errlen)
{
    user_ctx *uc = ctx;
    if (strcmp(key, "pool_mode") == 0) {
        uc->u->pool_mode = parse_pool_mode(value);
        if (uc->u->pool_mode < 0) {
            snprintf(err, errlen, "pool_mode: expected session or transaction, got \"%.64s\"",
                     value);
            return -1;
        }
        return 0;
    }
    if (strcmp(key, "max_user_connections") == 0)
        return parse_int_field(key, value, &uc->u->max_user_connections, err, errlen);
    if (strcmp(key, "pool_size") == 0)
        return parse_int_field(key, value, &uc->u->pool_size, err, errlen);
    log_warning("user \"%s\": key \"%s\" is not used by tusk; ignored", uc->u->name, key);
    uc->cfg->n_warnings++;
    return 0;
}

static int parse_user(px_config *cfg, const char *name, const char *value, char *err, size_t errlen)
{
    px_usercfg *us = realloc(cfg->users, sizeof(px_usercfg) * (size_t)(cfg->n_users + 1));
    if (!us) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    cfg->users = us;
    px_usercfg *u = &us[cfg->n_users++];
    u->name = xstrdup(name);
    u->pool_mode = u->max_user_connections = u->pool_size = -1;
    user_ctx uc = {cfg, u};
    return connstr_parse(value, user_key, &uc, err, errlen);
}

/* seconds, with optional unit: "30", "0.5", "250ms", "2s", "5min", "1h" */
static bool parse_time(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || v < 0 || !isfinite(v))
        return false;
    while (isspace((unsigned char)*end))
        end++;
    if (*end == '\0' || strcmp(end, "s") == 0)
        *out = v;
    else if (strcmp(end, "ms") == 0)
        *out = v / 1000.0;
    else if (strcmp(end, "us") == 0)
        *out = v / 1e6;
    else if (strcmp(end, "min") == 0)
        *out = v * 60;
    else if (strcmp(end, "h") == 0)
        *out = v * 3600;
    else
        return false;
    return true;
}

/* primary_reads = off|on|overflow; -1 if none of them */
int px_parse_primary_reads(const char *s)
{
    if (strcasecmp(s, "off") == 0 || strcasecmp(s, "false") == 0 || strcmp(s, "0") == 0)
        return PX_PRIMARY_READS_OFF;
    if (strcasecmp(s, "on") == 0 || strcasecmp(s, "true") == 0 || strcmp(s, "1") == 0)
        return PX_PRIMARY_READS_ON;
    if (strcasecmp(s, "overflow") == 0)
        return PX_PRIMARY_READS_OVERFLOW;
    return -1;
}

/* pipeline_reads = off|queued|on; -1 if none of them */
int px_parse_pipeline_reads(const char *s)
{
    if (strcasecmp(s, "off") == 0 || strcasecmp(s, "false") == 0 || strcmp(s, "0") == 0)
        return PX_PIPE_OFF;
    if (strcasecmp(s, "queued") == 0)
        return PX_PIPE_QUEUED;
    if (strcasecmp(s, "on") == 0 || strcasecmp(s, "true") == 0 || strcmp(s, "1") == 0)
        return PX_PIPE_ON;
    return -1;
}

static int parse_pool_mode(const char *s)
{
    if (strcasecmp(s, "session") == 0)
        return PM_SESSION;
    if (strcasecmp(s, "transaction") == 0)
        return PM_TRANSACTION;
    if (strcasecmp(s, "statement") == 0)
        return PM_STATEMENT;
    return -1;
}

static int parse_auth_type(const char *s)
{
    if (strcasecmp(s, "trust") == 0)
        return AUTH_TRUST;
    if (strcasecmp(s, "any") == 0)
        return AUTH_ANY;
    if (strcasecmp(s, "plain") == 0 || strcasecmp(s, "password") == 0)
        return AUTH_PLAIN;
    if (strcasecmp(s, "md5") == 0)
        return AUTH_MD5;
    if (strcasecmp(s, "scram-sha-256") == 0)
        return AUTH_SCRAM;
    if (strcasecmp(s, "hba") == 0)
        return AUTH_HBA;
    if (strcasecmp(s, "cert") == 0)
        return AUTH_CERT;
    return -1;
}

static int parse_sslmode(const char *s)
{
    static const char *const n[] = {"disable", "allow",     "prefer",
                                    "require", "verify-ca", "verify-full"};
    for (int i = 0; i < 6; i++)
        if (strcasecmp(s, n[i]) == 0)
            return i;
    return -1;
}

/* checks across keys, auth_file, defaults that depend on other keys */
static bool finish(px_config *cfg, const char *path, char *err, size_t errlen)
{
    if (cfg->auth_type == AUTH_HBA) {
        if (!cfg->auth_hba_file || !*cfg->auth_hba_file) {
            snprintf(err, errlen, "auth_type = hba needs auth_hba_file");
            return false;
        }
        char full[4096];
        const char *hf = cfg->auth_hba_file;
        if (hf[0] != '/' && path && access(hf, R_OK) != 0) {
            const char *slash = strrchr(path, '/'); /* as auth_file: the config's folder */
            if (slash) {
                snprintf(full, sizeof(full), "%.*s/%s", (int)(slash - path), path, hf);
                hf = full;
            }
        }
        cfg->hba = px_hba_load(hf, err, errlen);
        if (!cfg->hba)
            return false;
    }
    if (cfg->pool_mode == PM_STATEMENT) {
        log_warning("pool_mode = statement is served as transaction");
        cfg->n_warnings++;
    }
    if (cfg->auth_file && *cfg->auth_file) {
        char full[4096];
        const char *af = cfg->auth_file;
        if (af[0] != '/' && path) {
            /* pgbouncer resolves relative paths against the working directory; so do we, but
             * fall back to the config's folder so a config + userlist pair can move together */
            if (access(af, R_OK) != 0) {
                const char *slash = strrchr(path, '/');
                if (slash) {
                    snprintf(full, sizeof(full), "%.*s/%s", (int)(slash - path), path, af);
                    af = full;
                }
            }
        }
        char uerr[512];
        cfg->users_file = userlist_load(af, uerr, sizeof(uerr));
        if (!cfg->users_file) {
            /* like pgbouncer: start anyway; logins that need the file fail */
            log_warning("auth_file: %s; logins needing a password will fail", uerr);
            cfg->n_warnings++;
        }
    }
    for (int i = 0; i < cfg->n_dbs; i++) {
        if (strcmp(cfg->dbs[i].name, "*") == 0)
            cfg->fallback = &cfg->dbs[i];
        if (cfg->dbs[i].pool_mode == PM_STATEMENT)
            cfg->dbs[i].pool_mode = PM_TRANSACTION;
    }
    if (cfg->pool_mode == PM_STATEMENT)
        cfg->pool_mode = PM_TRANSACTION;
    if (cfg->workers <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->workers = n < 1 ? 1 : n > PX_MAX_WORKERS ? PX_MAX_WORKERS : (int)n;
    }
    if (cfg->pkt_buf < 8192)
        cfg->pkt_buf = 8192; /* smaller buffers only cost syscalls */
    if ((!cfg->listen_addr || !*cfg->listen_addr) &&
        (!cfg->unix_socket_dir || !*cfg->unix_socket_dir)) {
        snprintf(err, errlen, "nothing to listen on: set listen_addr or unix_socket_dir");
        return false;
    }
    if (cfg->client_tls_sslmode >= TLS_ALLOW &&
        (!cfg->client_tls_key_file || !*cfg->client_tls_key_file || !cfg->client_tls_cert_file ||
         !*cfg->client_tls_cert_file)) {
        snprintf(err, errlen,
                 "client_tls_sslmode = %s needs client_tls_key_file and "
                 "client_tls_cert_file",
                 cfg->client_tls_sslmode == TLS_REQUIRE ? "require" : "allow/prefer");
        return false;
    }
    return true;
}

/* the socket address of a node: resolved at load time, or now (blocking DNS) if that failed */
bool px_node_addr(const px_node *n, struct sockaddr_storage *out, socklen_t *len, char *err,
                  size_t errlen)
{
    if (n->resolved) {
        memcpy(out, &n->addr, n->addrlen);
        *len = n->addrlen;
        return true;
    }
    px_node tmp = *n;
    if (!resolve_node(&tmp, err, errlen))
        return false;
    memcpy(out, &tmp.addr, tmp.addrlen);
    *len = tmp.addrlen;
    return true;
}

static bool resolve_node(px_node *n, char *err, size_t errlen)
{
    memset(&n->addr, 0, sizeof(n->addr));
    if (n->host[0] == '/') {
        struct sockaddr_un *un = (struct sockaddr_un *)&n->addr;
        un->sun_family = AF_UNIX;
        int l = snprintf(un->sun_path, sizeof(un->sun_path), "%s/.s.PGSQL.%d", n->host, n->port);
        if (l < 0 || (size_t)l >= sizeof(un->sun_path)) {
            snprintf(err, errlen, "unix socket path too long: %s", n->host);
            return false;
        }
        n->addrlen = sizeof(*un);
        n->resolved = true;
        return true;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    char port[16];
    snprintf(port, sizeof(port), "%d", n->port);
    int rc = getaddrinfo(n->host, port, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, errlen, "cannot resolve host \"%s\": %s", n->host, gai_strerror(rc));
        return false;
    }
    memcpy(&n->addr, res->ai_addr, res->ai_addrlen);
    n->addrlen = res->ai_addrlen;
    n->resolved = true;
    freeaddrinfo(res);
    return true;
}

static void free_db(px_db *d)
{
    free(d->name);
    free(d->dbname);
    free(d->user);
    free(d->password);
    free(d->auth_user);
    free(d->client_encoding);
    free(d->datestyle);
    free(d->timezone);
    free(d->application_name);
    free(d->replica_weights);
    for (int i = 0; i < d->n_nodes; i++)
        free(d->nodes[i].host);
    free(d->nodes);
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d) {
        log_fatal("out of memory");
        abort();
    }
    return d;
}

/* ---- key table access for the admin console (SHOW CONFIG, SET) ---- */

/* number of [pgbouncer] keys tusk knows */
int px_config_key_count(void)
{
    return (int)(sizeof(keys) / sizeof(keys[0]));
}

/* name of key i */
const char *px_config_key_name(int i)
{
    return keys[i].name;
}

/* default value of key i as text */
const char *px_config_key_default(int i)
{
    return keys[i].def;
}

/* value of key i in cfg as text (as SHOW CONFIG prints it) */
void px_config_key_value(const px_config *cfg, int i, char *buf, size_t cap)
{
    const void *field = (const char *)cfg + keys[i].off;
    switch (keys[i].type) {
    case T_STR:
    case T_LIST: {
        const char *s = *(char *const *)field;
        snprintf(buf, cap, "%s", s ? s : "");
        return;
    }
    case T_BOOL:
        snprintf(buf, cap, "%d", *(const bool *)field ? 1 : 0);
        return;
    case T_TIME:
        snprintf(buf, cap, "%g", *(const double *)field);
        return;
    case T_POOLMODE:
        snprintf(buf, cap, "%s", px_pool_mode_name(*(const int *)field));
        return;
    case T_AUTHTYPE:
        snprintf(buf, cap, "%s", px_auth_type_name(*(const int *)field));
        return;
    case T_PIPELINE: {
        static const char *const names[] = {"off", "queued", "on"};
        snprintf(buf, cap, "%s", names[*(const int *)field]);
        return;
    }
    default:
        snprintf(buf, cap, "%d", *(const int *)field);
        return;
    }
}

/* set key to value in cfg (a private copy not yet shared with workers) */
int px_config_set(px_config *cfg, const char *key, const char *value, char *err, size_t errlen)
{
    for (int i = 0; i < px_config_key_count(); i++)
        if (strcasecmp(keys[i].name, key) == 0)
            return set_key(cfg, &keys[i], value, err, errlen);
    snprintf(err, errlen, "unknown setting: %.64s", key);
    return -1;
}
