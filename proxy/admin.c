/*
 * The admin console: the virtual database "pgbouncer" (alias "tusk") for users in admin_users
 * (everything) and stats_users (SHOW only). The client side (login check, welcome, reading
 * Query messages) runs in the client's worker; each command runs in the admin thread
 * (admin_http.c), which may wait for the workers' snapshots without ever blocking a worker, and
 * the answer comes back to the worker as a WMSG_CALL. Column names and types follow pgbouncer
 * 1.18, so its exporters and scripts read tusk unchanged; SHOW REPLICAS, SHOW ROUTING and
 * BAN / UNBAN are tusk's own.
 */
#include "proxy/admin.h"

#include <ctype.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define OID_TEXT 25
#define OID_INT4 23
#define OID_INT8 20
#define OID_NUMERIC 1700

/* ------------------------------------------------------------------------------------------ */
/* PAUSE / DISABLE state and SET overrides (process-wide, under one mutex)                     */
/* ------------------------------------------------------------------------------------------ */

typedef struct adm_flag {
    struct adm_flag *next;
    bool paused, disabled;
    char name[];
} adm_flag;

typedef struct adm_override {
    struct adm_override *next;
    char *key, *value;
} adm_override;

static pthread_mutex_t flags_lock = PTHREAD_MUTEX_INITIALIZER;
static adm_flag *flags;
static atomic_int paused_all;
static atomic_int any_flag; /* fast path: no database was ever paused or disabled */
static adm_override *overrides;

static adm_flag *flag_get(const char *db, bool create)
{
    for (adm_flag *f = flags; f; f = f->next)
        if (strcmp(f->name, db) == 0)
            return f;
    if (!create)
        return NULL;
    adm_flag *f = calloc(1, sizeof(*f) + strlen(db) + 1);
    if (!f)
        return NULL;
    strcpy(f->name, db);
    f->next = flags;
    flags = f;
    atomic_store(&any_flag, 1);
    return f;
}

/* is the database paused (PAUSE db or PAUSE)? */
bool px_admin_paused(const char *db)
{
    if (atomic_load(&paused_all))
        return true;
    if (!atomic_load(&any_flag) || !db)
        return false;
    pthread_mutex_lock(&flags_lock);
    adm_flag *f = flag_get(db, false);
    bool r = f && f->paused;
    pthread_mutex_unlock(&flags_lock);
    return r;
}

/* is the database disabled (DISABLE db)? */
bool px_admin_disabled(const char *db)
{
    if (!atomic_load(&any_flag) || !db)
        return false;
    pthread_mutex_lock(&flags_lock);
    adm_flag *f = flag_get(db, false);
    bool r = f && f->disabled;
    pthread_mutex_unlock(&flags_lock);
    return r;
}

/* SET overrides applied to every config loaded after them */
void px_admin_apply_overrides(px_config *cfg)
{
    pthread_mutex_lock(&flags_lock);
    for (adm_override *o = overrides; o; o = o->next) {
        char err[256];
        if (px_config_set(cfg, o->key, o->value, err, sizeof(err)) != 0)
            log_warning("admin SET %s: %s", o->key, err);
    }
    pthread_mutex_unlock(&flags_lock);
}

static bool override_put(const char *key, const char *value)
{
    pthread_mutex_lock(&flags_lock);
    adm_override *o = overrides;
    while (o && strcasecmp(o->key, key) != 0)
        o = o->next;
    bool ok = true;
    if (!o) {
        o = calloc(1, sizeof(*o));
        if (o) {
            o->key = strdup(key);
            o->next = overrides;
            overrides = o;
        }
    }
    if (o) {
        free(o->value);
        o->value = strdup(value);
        ok = o->key && o->value;
    } else {
        ok = false;
    }
    pthread_mutex_unlock(&flags_lock);
    return ok;
}

/* ------------------------------------------------------------------------------------------ */
/* client side (worker thread)                                                                 */
/* ------------------------------------------------------------------------------------------ */

/* is name in a comma / space separated list? */
static bool in_list(const char *list, const char *name)
{
    if (!list)
        return false;
    size_t n = strlen(name);
    const char *p = list;
    while (*p) {
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        const char *e = p;
        while (*e && *e != ',' && !isspace((unsigned char)*e))
            e++;
        if ((size_t)(e - p) == n && strncmp(p, name, n) == 0)
            return true;
        p = e;
    }
    return false;
}

/* the user of an admin-database login: admin_users, stats_users, or refused */
bool px_admin_login_allowed(px_client *c, const px_config *cfg)
{
    if (in_list(cfg->admin_users, c->user))
        c->admin = 2;
    else if (in_list(cfg->stats_users, c->user))
        c->admin = 1;
    else
        c->admin = 0;
    return c->admin != 0;
}

/* AuthenticationOk, a few parameters, a key and ReadyForQuery */
void px_admin_welcome(px_client *c)
{
    px_worker *w = c->io.w;
    pktbuf *b = &w->tmp;
    pktbuf_reset(b);
    pkt_auth(b, 0, NULL, 0);
    pkt_param_status(b, "server_version", "1.18.0/tusk");
    pkt_param_status(b, "server_encoding", "UTF8");
    pkt_param_status(b, "client_encoding", "UTF8");
    pkt_param_status(b, "DateStyle", "ISO");
    pkt_param_status(b, "TimeZone", "UTC");
    pkt_param_status(b, "standard_conforming_strings", "on");
    pkt_param_status(b, "application_name", "");
    uint32_t key[2] = {0, 0};
    if (RAND_bytes((unsigned char *)key, sizeof(key)) != 1)
        key[0] = (uint32_t)c->id;
    pkt_backend_key(b, key[0] | 0x40000000u, key[1]);
    pkt_ready(b, 'I');
    c->state = CL_IDLE;
    c->last_active = px_now(w);
    if (w->cfg->log_connections)
        log_info("client %s login: admin console db=%s user=%s (%s)", c->addr, c->dbname, c->user,
                 c->admin == 2 ? "admin" : "stats");
    if (b->failed || !px_conn_append(&c->io, b->data, b->len) || !px_conn_flush(&c->io)) {
        px_client_close(c, "write error");
        return;
    }
    if (c->io.rlen)
        px_conn_schedule(&c->io);
}

static void send_error(px_client *c, const char *sqlstate, const char *msg, bool ready)
{
    pktbuf *b = &c->io.w->tmp;
    pktbuf_reset(b);
    pkt_error(b, 'E', "ERROR", sqlstate, NULL, "%s", msg);
    if (ready)
        pkt_ready(b, 'I');
    if (b->failed || !px_conn_append(&c->io, b->data, b->len))
        px_client_close(c, "out of memory");
}

/* process the admin client's messages */
size_t px_admin_pass(px_client *c, const uint8_t *data, size_t len)
{
    size_t pos = 0;
    while (pos < len && !c->io.closed && c->state == CL_IDLE) {
        uint8_t type;
        uint32_t total;
        int h = pkt_header(data + pos, len - pos, &type, &total);
        if (h == 0)
            break;
        if (h < 0 || total > 65536) {
            px_client_fail(c, "08P01", "invalid message length");
            return pos;
        }
        if (len - pos < total) {
            c->io.need = total;
            break;
        }
        c->io.need = 0;
        const uint8_t *body = data + pos + 5;
        size_t blen = total - 5;
        pos += total;
        switch (type) {
        case 'X':
            px_client_close(c, "client sent Terminate");
            return pos;
        case 'Q': {
            if (blen == 0 || body[blen - 1] != 0) {
                px_client_fail(c, "08P01", "malformed Query message");
                return pos;
            }
            c->state = CL_WAITING;
            c->wait_start = px_now(c->io.w);
            px_admin_submit(c->io.w, c, (const char *)body);
            break;
        }
        case 'S':
            send_error(c, "0A000", "the admin console supports only the simple query protocol",
                       true);
            break;
        case 'H':
            break;
        default:
            /* Parse / Bind / Execute ...: the error comes with the Sync */
            break;
        }
    }
    if (!c->io.closed)
        px_conn_flush(&c->io);
    return pos;
}

/* ------------------------------------------------------------------------------------------ */
/* result building                                                                             */
/* ------------------------------------------------------------------------------------------ */

typedef struct col {
    const char *name;
    uint32_t oid;
} col;

static void row_desc(pktbuf *b, const col *cols, int n)
{
    pkt_begin(b, 'T');
    pkt_put_int16(b, (uint16_t)n);
    for (int i = 0; i < n; i++) {
        pkt_put_str(b, cols[i].name);
        pkt_put_int32(b, 0);
        pkt_put_int16(b, 0);
        pkt_put_int32(b, cols[i].oid);
        pkt_put_int16(b, cols[i].oid == OID_INT4 ? 4 : cols[i].oid == OID_INT8 ? 8 : 0xffff);
        pkt_put_int32(b, 0xffffffffu);
        pkt_put_int16(b, 0);
    }
    pkt_end(b);
}

/* a DataRow of n text values (NULL = SQL NULL) */
static void data_row(pktbuf *b, const char *const *v, int n)
{
    pkt_begin(b, 'D');
    pkt_put_int16(b, (uint16_t)n);
    for (int i = 0; i < n; i++) {
        if (!v[i]) {
            pkt_put_int32(b, 0xffffffffu);
            continue;
        }
        size_t l = strlen(v[i]);
        pkt_put_int32(b, (uint32_t)l);
        pkt_put_bytes(b, v[i], l);
    }
    pkt_end(b);
}

static void complete(pktbuf *b, const char *tag)
{
    pkt_begin(b, 'C');
    pkt_put_str(b, tag);
    pkt_end(b);
}

static void err(pktbuf *b, const char *sqlstate, const char *fmt, const char *arg)
{
    char msg[512];
    snprintf(msg, sizeof(msg), fmt, arg ? arg : "");
    pkt_error(b, 'E', "ERROR", sqlstate, NULL, "%s", msg);
}

/* rows of text cells: a small helper so each SHOW builds its cells with snprintf */
typedef struct cells {
    char v[32][160];
    const char *p[32];
    int n;
} cells;

static void cells_reset(cells *c)
{
    c->n = 0;
}

static void cell(cells *c, const char *fmt, ...) TUSK_PRINTF(2, 3);
static void cell(cells *c, const char *fmt, ...)
{
    if (c->n >= 32)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->v[c->n], sizeof(c->v[0]), fmt, ap);
    va_end(ap);
    c->p[c->n] = c->v[c->n];
    c->n++;
}

static void cells_emit(pktbuf *b, cells *c)
{
    data_row(b, c->p, c->n);
    cells_reset(c);
}

static void fmt_time(double t, char *buf, size_t cap)
{
    if (t <= 0) {
        buf[0] = '\0';
        return;
    }
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(buf, cap, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

/* ------------------------------------------------------------------------------------------ */
/* SHOW commands (admin thread)                                                                */
/* ------------------------------------------------------------------------------------------ */

static void show_pools(pktbuf *b)
{
    static const col cols[] = {{"database", OID_TEXT},
                               {"user", OID_TEXT},
                               {"cl_active", OID_INT4},
                               {"cl_waiting", OID_INT4},
                               {"cl_active_cancel_req", OID_INT4},
                               {"cl_waiting_cancel_req", OID_INT4},
                               {"sv_active", OID_INT4},
                               {"sv_active_cancel", OID_INT4},
                               {"sv_being_canceled", OID_INT4},
                               {"sv_idle", OID_INT4},
                               {"sv_used", OID_INT4},
                               {"sv_tested", OID_INT4},
                               {"sv_login", OID_INT4},
                               {"maxwait", OID_INT4},
                               {"maxwait_us", OID_INT4},
                               {"pool_mode", OID_TEXT}};
    adm_snap s;
    adm_collect(&s, false, 2.0);
    adm_pool_row *rows;
    int n;
    adm_snap_merge_pools(&s, false, &rows, &n);
    row_desc(b, cols, 16);
    cells c;
    cells_reset(&c);
    for (int i = 0; i < n; i++) {
        adm_pool_row *r = &rows[i];
        cell(&c, "%s", r->db);
        cell(&c, "%s", r->user);
        cell(&c, "%d", r->cl_active);
        cell(&c, "%d", r->cl_waiting);
        cell(&c, "0");
        cell(&c, "0");
        cell(&c, "%d", r->sv_active);
        cell(&c, "0");
        cell(&c, "0");
        cell(&c, "%d", r->sv_idle);
        cell(&c, "0");
        cell(&c, "%d", r->sv_used);
        cell(&c, "%d", r->sv_login);
        cell(&c, "%d", (int)r->maxwait);
        cell(&c, "%d", (int)((r->maxwait - (int)r->maxwait) * 1e6));
        cell(&c, "%s", px_pool_mode_name(r->mode));
        cells_emit(b, &c);
    }
    complete(b, "SHOW");
    free(rows);
    adm_snap_free(&s);
}

/* per-database totals: the pools of every user and node summed */
static int db_totals(const adm_snap *s, adm_pool_row **out)
{
    adm_pool_row *rows = calloc((size_t)s->n_pools + 1, sizeof(*rows));
    int k = 0;
    if (!rows) {
        *out = NULL;
        return 0;
    }
    for (int i = 0; i < s->n_pools; i++) {
        const adm_pool_row *p = &s->pools[i];
        int j = 0;
        while (j < k && strcmp(rows[j].db, p->db) != 0)
            j++;
        if (j == k) {
            rows[k] = *p;
            k++;
            continue;
        }
        px_stats *a = &rows[j].st;
        adm_stats_add(a, &p->st);
        a->server_assignments += p->st.server_assignments;
        a->errors += p->st.errors;
    }
    *out = rows;
    return k;
}

static void show_stats(pktbuf *b, int which)
{
    static const col full[] = {{"database", OID_TEXT},
                               {"total_xact_count", OID_NUMERIC},
                               {"total_query_count", OID_NUMERIC},
                               {"total_received", OID_NUMERIC},
                               {"total_sent", OID_NUMERIC},
                               {"total_xact_time", OID_NUMERIC},
                               {"total_query_time", OID_NUMERIC},
                               {"total_wait_time", OID_NUMERIC},
                               {"avg_xact_count", OID_NUMERIC},
                               {"avg_query_count", OID_NUMERIC},
                               {"avg_recv", OID_NUMERIC},
                               {"avg_sent", OID_NUMERIC},
                               {"avg_xact_time", OID_NUMERIC},
                               {"avg_query_time", OID_NUMERIC},
                               {"avg_wait_time", OID_NUMERIC}};
    static const col part[] = {{"database", OID_TEXT},       {"xact_count", OID_NUMERIC},
                               {"query_count", OID_NUMERIC}, {"bytes_received", OID_NUMERIC},
                               {"bytes_sent", OID_NUMERIC},  {"xact_time", OID_NUMERIC},
                               {"query_time", OID_NUMERIC},  {"wait_time", OID_NUMERIC}};
    adm_snap s;
    adm_collect(&s, false, 2.0);
    adm_pool_row *rows;
    int n = db_totals(&s, &rows);
    if (which == 0)
        row_desc(b, full, 15);
    else
        row_desc(b, part, 8);
    cells c;
    cells_reset(&c);
    for (int i = 0; i < n; i++) {
        const px_stats *t = &rows[i].st;
        px_stats a = {0};
        adm_db_averages(rows[i].db, &a);
        cell(&c, "%s", rows[i].db);
        if (which == 0 || which == 1) {
            cell(&c, "%llu", (unsigned long long)t->xact_count);
            cell(&c, "%llu", (unsigned long long)t->query_count);
            cell(&c, "%llu", (unsigned long long)t->bytes_received);
            cell(&c, "%llu", (unsigned long long)t->bytes_sent);
            cell(&c, "%llu", (unsigned long long)t->xact_time_us);
            cell(&c, "%llu", (unsigned long long)t->query_time_us);
            cell(&c, "%llu", (unsigned long long)t->wait_time_us);
        }
        if (which == 0 || which == 2) {
            cell(&c, "%llu", (unsigned long long)a.xact_count);
            cell(&c, "%llu", (unsigned long long)a.query_count);
            cell(&c, "%llu", (unsigned long long)a.bytes_received);
            cell(&c, "%llu", (unsigned long long)a.bytes_sent);
            cell(&c, "%llu", (unsigned long long)a.xact_time_us);
            cell(&c, "%llu", (unsigned long long)a.query_time_us);
            cell(&c, "%llu", (unsigned long long)a.wait_time_us);
        }
        cells_emit(b, &c);
    }
    complete(b, "SHOW");
    free(rows);
    adm_snap_free(&s);
}

/* SHOW CLIENTS (type 'C'), SERVERS ('S'), SOCKETS (0: both, with buffer columns) and
 * ACTIVE_SOCKETS ('A': those with bytes buffered either way) */
static void show_conns(pktbuf *b, char type)
{
    static const col cols[] = {
        {"type", OID_TEXT},         {"user", OID_TEXT},        {"database", OID_TEXT},
        {"state", OID_TEXT},        {"addr", OID_TEXT},        {"port", OID_INT4},
        {"local_addr", OID_TEXT},   {"local_port", OID_INT4},  {"connect_time", OID_TEXT},
        {"request_time", OID_TEXT}, {"wait", OID_INT4},        {"wait_us", OID_INT4},
        {"close_needed", OID_INT4}, {"ptr", OID_TEXT},         {"link", OID_TEXT},
        {"remote_pid", OID_INT4},   {"tls", OID_TEXT},         {"application_name", OID_TEXT},
        {"recv_pos", OID_INT4},     {"pkt_pos", OID_INT4},     {"pkt_remain", OID_INT4},
        {"send_pos", OID_INT4},     {"send_remain", OID_INT4}, {"pkt_avail", OID_INT4},
        {"send_avail", OID_INT4}};
    bool sockets = type == 0 || type == 'A';
    adm_snap s;
    adm_collect(&s, true, 2.0);
    row_desc(b, cols, sockets ? 25 : 18);
    cells c;
    cells_reset(&c);
    for (int i = 0; i < s.n_conns; i++) {
        adm_conn_row *r = &s.conns[i];
        if (sockets ? type == 'A' && !r->rlen && r->wlen == r->wpos && !r->pass_left
                    : r->type != type)
            continue;
        char t1[64], t2[64];
        fmt_time(r->connect_time, t1, sizeof(t1));
        fmt_time(r->request_time, t2, sizeof(t2));
        cell(&c, "%c", r->type);
        cell(&c, "%s", r->user);
        cell(&c, "%s", r->db);
        cell(&c, "%s", r->state);
        cell(&c, "%s", r->addr);
        cell(&c, "%d", r->port);
        cell(&c, "%s", r->local_addr);
        cell(&c, "%d", r->local_port);
        cell(&c, "%s", t1);
        cell(&c, "%s", t2);
        cell(&c, "%d", (int)r->wait);
        cell(&c, "%d", (int)((r->wait - (int)r->wait) * 1e6));
        cell(&c, "%d", r->close_needed ? 1 : 0);
        cell(&c, "0x%llx", (unsigned long long)r->ptr);
        if (r->link)
            cell(&c, "0x%llx", (unsigned long long)r->link);
        else
            cell(&c, "%s", "");
        cell(&c, "%d", r->remote_pid);
        cell(&c, "%s", r->tls ? "TLS" : "");
        cell(&c, "%s", r->app);
        if (sockets) {
            /* input: rlen bytes buffered (a partial message); output: [wpos, wlen) */
            cell(&c, "%u", r->rlen);
            cell(&c, "0");
            cell(&c, "%u", r->pass_left);
            cell(&c, "%u", r->wpos);
            cell(&c, "%u", r->wlen - r->wpos);
            cell(&c, "%u", r->rcap - r->rlen);
            cell(&c, "%u", r->wcap - r->wlen);
        }
        cells_emit(b, &c);
    }
    complete(b, "SHOW");
    adm_snap_free(&s);
}

/* SHOW TOTALS: SHOW STATS summed over the databases, one figure a row */
static void show_totals(pktbuf *b)
{
    static const col cols[] = {{"name", OID_TEXT}, {"value", OID_NUMERIC}};
    adm_snap s;
    adm_collect(&s, false, 2.0);
    adm_pool_row *rows;
    int n = db_totals(&s, &rows);
    px_stats t = {0}, a = {0};
    for (int i = 0; i < n; i++) {
        const px_stats *x = &rows[i].st;
        px_stats y = {0};
        adm_db_averages(rows[i].db, &y);
        adm_stats_add(&t, x);
        a.xact_count += y.xact_count;
        a.query_count += y.query_count;
        a.bytes_received += y.bytes_received;
        a.bytes_sent += y.bytes_sent;
        /* per-transaction times: weighted by each database's rate */
        a.xact_time_us += y.xact_time_us * y.xact_count;
        a.query_time_us += y.query_time_us * y.query_count;
        a.wait_time_us += y.wait_time_us * y.xact_count;
    }
    a.xact_time_us = a.xact_count ? a.xact_time_us / a.xact_count : 0;
    a.query_time_us = a.query_count ? a.query_time_us / a.query_count : 0;
    a.wait_time_us = a.xact_count ? a.wait_time_us / a.xact_count : 0;
    const struct {
        const char *name;
        uint64_t v;
    } items[] = {{"total_xact_count", t.xact_count},       {"total_query_count", t.query_count},
                 {"total_client_bytes", t.bytes_received}, {"total_server_bytes", t.bytes_sent},
                 {"total_xact_time", t.xact_time_us},      {"total_query_time", t.query_time_us},
                 {"total_wait_time", t.wait_time_us},      {"avg_xact_count", a.xact_count},
                 {"avg_query_count", a.query_count},       {"avg_client_bytes", a.bytes_received},
                 {"avg_server_bytes", a.bytes_sent},       {"avg_xact_time", a.xact_time_us},
                 {"avg_query_time", a.query_time_us},      {"avg_wait_time", a.wait_time_us}};
    row_desc(b, cols, 2);
    cells c;
    cells_reset(&c);
    for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++) {
        cell(&c, "%s", items[i].name);
        cell(&c, "%llu", (unsigned long long)items[i].v);
        cells_emit(b, &c);
    }
    complete(b, "SHOW");
    free(rows);
    adm_snap_free(&s);
}

/* SHOW DNS_HOSTS / DNS_ZONES: tusk keeps no DNS cache (it resolves each host when it connects,
 * with getaddrinfo), so the sets are empty; the columns are pgbouncer's */
static void show_dns(pktbuf *b, bool zones)
{
    static const col hosts[] = {{"hostname", OID_TEXT}, {"ttl", OID_INT8}, {"addrs", OID_TEXT}};
    static const col zcols[] = {{"zonename", OID_TEXT}, {"serial", OID_INT8}, {"count", OID_INT4}};
    row_desc(b, zones ? zcols : hosts, 3);
    complete(b, "SHOW");
}

/* servers of db ("" = all) that RECONNECT / RELOAD marked to close (WAIT_CLOSE) */
int adm_servers_closing(const char *db)
{
    adm_snap s;
    adm_collect(&s, true, 2.0);
    int n = 0;
    for (int i = 0; i < s.n_conns; i++)
        n += s.conns[i].type == 'S' && s.conns[i].close_needed &&
             (!*db || strcmp(s.conns[i].db, db) == 0);
    adm_snap_free(&s);
    return n;
}

void adm_console_finish_wait(pktbuf *out)
{
    complete(out, "WAIT_CLOSE");
    pkt_ready(out, 'I');
}

static px_config *cfg_get(void)
{
    /* the workers keep the previous config referenced until they switch, so a reference
     * taken right after the load stays valid */
    return px_config_ref(atomic_load(&px_g.cfg));
}

static void show_databases(pktbuf *b)
{
    static const col cols[] = {{"name", OID_TEXT},
                               {"host", OID_TEXT},
                               {"port", OID_INT4},
                               {"database", OID_TEXT},
                               {"force_user", OID_TEXT},
                               {"pool_size", OID_INT4},
                               {"min_pool_size", OID_INT4},
                               {"reserve_pool", OID_INT4},
                               {"pool_mode", OID_TEXT},
                               {"max_connections", OID_INT4},
                               {"current_connections", OID_INT4},
                               {"paused", OID_INT4},
                               {"disabled", OID_INT4}};
    px_config *cfg = cfg_get();
    adm_snap s;
    adm_collect(&s, false, 2.0);
    row_desc(b, cols, 13);
    cells c;
    cells_reset(&c);
    for (int i = 0; i < cfg->n_dbs; i++) {
        const px_db *d = &cfg->dbs[i];
        int cur = 0;
        for (int k = 0; k < s.n_pools; k++)
            if (strcmp(s.pools[k].db, d->name) == 0)
                cur += s.pools[k].sv_active + s.pools[k].sv_idle + s.pools[k].sv_used +
                       s.pools[k].sv_login;
        cell(&c, "%s", d->name);
        cell(&c, "%s", d->n_nodes > 0 && d->nodes[0].host ? d->nodes[0].host : "");
        cell(&c, "%d", d->n_nodes > 0 ? d->nodes[0].port : 0);
        cell(&c, "%s", d->dbname ? d->dbname : d->name);
        cell(&c, "%s", d->user ? d->user : "");
        cell(&c, "%d", d->pool_size >= 0 ? d->pool_size : cfg->default_pool_size);
        cell(&c, "%d", d->min_pool_size >= 0 ? d->min_pool_size : cfg->min_pool_size);
        cell(&c, "%d", d->reserve_pool >= 0 ? d->reserve_pool : cfg->reserve_pool_size);
        cell(&c, "%s", d->pool_mode >= 0 ? px_pool_mode_name(d->pool_mode) : "");
        cell(&c, "%d",
             d->max_db_connections >= 0 ? d->max_db_connections : cfg->max_db_connections);
        cell(&c, "%d", cur);
        cell(&c, "%d", px_admin_paused(d->name) ? 1 : 0);
        cell(&c, "%d", px_admin_disabled(d->name) ? 1 : 0);
        cells_emit(b, &c);
    }
    /* the admin database, as pgbouncer lists it */
    const char *adm[] = {"pgbouncer", "",          "0", "pgbouncer", "pgbouncer", "2", "0",
                         "0",         "statement", "0", "0",         "0",         "0"};
    char port[16];
    snprintf(port, sizeof(port), "%d", cfg->listen_port);
    adm[2] = port;
    data_row(b, adm, 13);
    complete(b, "SHOW");
    adm_snap_free(&s);
    px_config_unref(cfg);
}

static void show_users(pktbuf *b)
{
    static const col cols[] = {{"name", OID_TEXT}, {"pool_mode", OID_TEXT}};
    px_config *cfg = cfg_get();
    adm_snap s;
    adm_collect(&s, false, 2.0);
    row_desc(b, cols, 2);
    const char **seen = calloc((size_t)(cfg->n_users + s.n_pools + 1), sizeof(char *));
    int ns = 0;
    for (int i = 0; i < cfg->n_users && seen; i++) {
        const px_usercfg *u = &cfg->users[i];
        const char *v[2] = {u->name, u->pool_mode >= 0 ? px_pool_mode_name(u->pool_mode) : ""};
        data_row(b, v, 2);
        seen[ns++] = u->name;
    }
    for (int i = 0; i < s.n_pools && seen; i++) {
        bool dup = false;
        for (int j = 0; j < ns && !dup; j++)
            dup = strcmp(seen[j], s.pools[i].user) == 0;
        if (dup)
            continue;
        const char *v[2] = {s.pools[i].user, ""};
        data_row(b, v, 2);
        seen[ns++] = s.pools[i].user;
    }
    free(seen);
    complete(b, "SHOW");
    adm_snap_free(&s);
    px_config_unref(cfg);
}

static void show_config(pktbuf *b)
{
    static const col cols[] = {
        {"key", OID_TEXT}, {"value", OID_TEXT}, {"default", OID_TEXT}, {"changeable", OID_TEXT}};
    static const char *const fixed[] = {"listen_addr",      "listen_port",    "unix_socket_dir",
                                        "unix_socket_mode", "listen_backlog", "workers",
                                        "pkt_buf",          "pidfile",        "admin_listen"};
    px_config *cfg = cfg_get();
    row_desc(b, cols, 4);
    for (int i = 0; i < px_config_key_count(); i++) {
        char val[1024];
        const char *name = px_config_key_name(i);
        px_config_key_value(cfg, i, val, sizeof(val));
        bool changeable = true;
        for (size_t k = 0; k < sizeof(fixed) / sizeof(fixed[0]); k++)
            if (strcmp(fixed[k], name) == 0)
                changeable = false;
        const char *v[4] = {name, val, px_config_key_default(i), changeable ? "yes" : "no"};
        data_row(b, v, 4);
    }
    complete(b, "SHOW");
    px_config_unref(cfg);
}

static void show_lists(pktbuf *b)
{
    static const col cols[] = {{"list", OID_TEXT}, {"items", OID_INT4}};
    px_config *cfg = cfg_get();
    adm_snap s;
    adm_collect(&s, false, 2.0);
    adm_pool_row *rows;
    int npools;
    adm_snap_merge_pools(&s, false, &rows, &npools);
    int nusers = 0;
    for (int i = 0; i < npools; i++) {
        bool dup = false;
        for (int j = 0; j < i && !dup; j++)
            dup = strcmp(rows[j].user, rows[i].user) == 0;
        nusers += !dup;
    }
    int used_servers = 0;
    for (int i = 0; i < s.n_pools; i++)
        used_servers +=
            s.pools[i].sv_active + s.pools[i].sv_idle + s.pools[i].sv_used + s.pools[i].sv_login;
    row_desc(b, cols, 2);
    cells c;
    cells_reset(&c);
    struct {
        const char *name;
        int v;
    } items[] = {{"databases", cfg->n_dbs + 1},
                 {"users", nusers},
                 {"pools", npools},
                 {"free_clients", 0},
                 {"used_clients", s.n_clients},
                 {"login_clients", s.login_clients},
                 {"free_servers", 0},
                 {"used_servers", used_servers},
                 {"dns_names", 0},
                 {"dns_zones", 0},
                 {"dns_queries", 0},
                 {"dns_pending", 0}};
    for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++) {
        cell(&c, "%s", items[i].name);
        cell(&c, "%d", items[i].v);
        cells_emit(b, &c);
    }
    complete(b, "SHOW");
    free(rows);
    adm_snap_free(&s);
    px_config_unref(cfg);
}

static void show_mem(pktbuf *b)
{
    static const col cols[] = {{"name", OID_TEXT},
                               {"size", OID_INT4},
                               {"used", OID_INT4},
                               {"free", OID_INT4},
                               {"memtotal", OID_INT4}};
    px_config *cfg = cfg_get();
    adm_snap s;
    adm_collect(&s, false, 2.0);
    int used_servers = 0;
    for (int i = 0; i < s.n_pools; i++)
        used_servers +=
            s.pools[i].sv_active + s.pools[i].sv_idle + s.pools[i].sv_used + s.pools[i].sv_login;
    row_desc(b, cols, 5);
    cells c;
    cells_reset(&c);
    struct {
        const char *name;
        int size, used, free;
    } items[] = {{"pool_cache", (int)sizeof(px_pool), s.n_pools, 0},
                 {"client_cache", (int)sizeof(px_client), s.n_clients, 0},
                 {"server_cache", (int)sizeof(px_server), used_servers, 0},
                 {"iobuf_cache", cfg->pkt_buf, 0, s.free_bufs}};
    for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++) {
        cell(&c, "%s", items[i].name);
        cell(&c, "%d", items[i].size);
        cell(&c, "%d", items[i].used);
        cell(&c, "%d", items[i].free);
        cell(&c, "%d", items[i].size * (items[i].used + items[i].free));
        cells_emit(b, &c);
    }
    complete(b, "SHOW");
    adm_snap_free(&s);
    px_config_unref(cfg);
}

static void show_version(pktbuf *b)
{
    static const col cols[] = {{"version", OID_TEXT}};
    row_desc(b, cols, 1);
    char v[128];
    snprintf(v, sizeof(v), "PgBouncer 1.18.0 (tusk %s)", TUSK_VERSION);
    const char *p[1] = {v};
    data_row(b, p, 1);
    complete(b, "SHOW");
}

static const char *role_name(int r)
{
    return r == ROUTER_ROLE_PRIMARY ? "primary" : r == ROUTER_ROLE_REPLICA ? "replica" : "unknown";
}

/* the state of a node as operators read it: banned beats down beats lagging */
static const char *node_state_name(router_node *n)
{
    if (atomic_load(&n->admin_banned))
        return "banned (admin)";
    if (atomic_load(&n->banned_until_ms) > router_now_ms())
        return "banned";
    int st = atomic_load(&n->state);
    return st == ROUTER_NODE_DOWN ? "down" : st == ROUTER_NODE_LAGGING ? "lagging" : "up";
}

static void show_replicas(pktbuf *b)
{
    static const col cols[] = {{"database", OID_TEXT},
                               {"node", OID_INT4},
                               {"host", OID_TEXT},
                               {"port", OID_INT4},
                               {"role", OID_TEXT},
                               {"state", OID_TEXT},
                               {"replay_lsn", OID_TEXT},
                               {"lag_bytes", OID_NUMERIC},
                               {"lag_ms", OID_NUMERIC},
                               {"banned_until", OID_TEXT},
                               {"reads_routed", OID_NUMERIC},
                               {"reads_per_s", OID_NUMERIC}};
    row_desc(b, cols, 12);
    cells c;
    cells_reset(&c);
    for (px_route_db *d = px_route_db_next(NULL); d; d = px_route_db_next(d)) {
        router_topology *t = d->topo;
        if (!t)
            continue;
        int n = router_topology_count(t);
        for (int i = 0; i < n; i++) {
            router_node *nd = router_topology_node(t, i);
            char lsn[32], until[64] = "";
            router_format_lsn(atomic_load(&nd->lsn), lsn);
            int64_t bu = atomic_load(&nd->banned_until_ms), now = router_now_ms();
            if (bu > now)
                fmt_time((double)time(NULL) + (double)(bu - now) / 1000.0, until, sizeof(until));
            cell(&c, "%s", d->name);
            cell(&c, "%d", i);
            cell(&c, "%s", nd->host);
            cell(&c, "%d", nd->port);
            cell(&c, "%s", role_name(atomic_load(&nd->role)));
            cell(&c, "%s", node_state_name(nd));
            cell(&c, "%s", lsn);
            cell(&c, "%llu", (unsigned long long)atomic_load(&nd->lag_bytes));
            cell(&c, "%llu", (unsigned long long)atomic_load(&nd->lag_ms));
            cell(&c, "%s", until);
            cell(&c, "%llu", (unsigned long long)atomic_load(&nd->reads_routed));
            cell(&c, "%.1f", adm_reads_per_s(nd));
            cells_emit(b, &c);
        }
    }
    complete(b, "SHOW");
}

static void show_routing(pktbuf *b)
{
    static const col cols[] = {{"database", OID_TEXT},
                               {"reads_replica", OID_NUMERIC},
                               {"reads_primary_floor", OID_NUMERIC},
                               {"reads_primary_unhealthy", OID_NUMERIC},
                               {"reads_primary_override", OID_NUMERIC},
                               {"reads_primary_policy", OID_NUMERIC},
                               {"reads_primary_pinned", OID_NUMERIC},
                               {"writes", OID_NUMERIC},
                               {"retries_25006", OID_NUMERIC},
                               {"ryw_waits", OID_NUMERIC},
                               {"ryw_wait_ms", OID_NUMERIC},
                               {"ryw_wait_timeouts", OID_NUMERIC},
                               {"lsn_captures", OID_NUMERIC}};
    row_desc(b, cols, 13);
    cells c;
    cells_reset(&c);
    for (px_route_db *d = px_route_db_next(NULL); d; d = px_route_db_next(d)) {
        px_route_stats *s = &d->stats;
        cell(&c, "%s", d->name);
        cell(&c, "%llu", (unsigned long long)atomic_load(&s->reads_replica));
        cell(&c, "%llu", (unsigned long long)atomic_load(&s->reads_primary_floor));
        cell(&c, "%llu", (unsigned long long)atomic_load(&s->reads_primary_unhealthy));
        cell(&c, "%llu", (unsigned long long)atomic_load(&s->reads_primary_override));
        cell(&c, "%llu", (unsigned long long)atomic_load(&s->reads_primary_policy));
        cell(&c, "%llu", (unsigned long long)atomic_load(&s->reads_primary_pinned));
        cell(&c, "%llu", (unsigned long long)atomic_load(&s->writes));
        cell(&c, "%llu", (unsigned long long)atomic_load(&s->retries_25006));
        cell(&c, "%llu", (unsigned long long)atomic_load(&s->ryw_waits));
        cell(&c, "%llu", (unsigned long long)(atomic_load(&s->ryw_wait_us) / 1000));
        cell(&c, "%llu", (unsigned long long)atomic_load(&s->ryw_wait_timeouts));
        cell(&c, "%llu", (unsigned long long)atomic_load(&s->lsn_captures));
        cells_emit(b, &c);
    }
    complete(b, "SHOW");
}

static void show_help(pktbuf *b)
{
    pkt_begin(b, 'N');
    pkt_put_byte(b, 'S');
    pkt_put_str(b, "NOTICE");
    pkt_put_byte(b, 'C');
    pkt_put_str(b, "00000");
    pkt_put_byte(b, 'M');
    pkt_put_str(b, "Console usage");
    pkt_put_byte(b, 'D');
    pkt_put_str(b, "\n\tSHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION\n"
                   "\tSHOW SOCKETS|ACTIVE_SOCKETS|LISTS|MEM\n"
                   "\tSHOW DNS_HOSTS|DNS_ZONES\n"
                   "\tSHOW STATS|STATS_TOTALS|STATS_AVERAGES|TOTALS\n"
                   "\tSHOW REPLICAS|ROUTING\n"
                   "\tSET key = arg\n\tRELOAD\n\tPAUSE [<db>]\n\tRESUME [<db>]\n"
                   "\tDISABLE <db>\n\tENABLE <db>\n\tRECONNECT [<db>]\n\tKILL <db>\n"
                   "\tBAN <db> <node>\n\tUNBAN <db> <node>\n\tSHUTDOWN\n\tWAIT_CLOSE [<db>]");
    pkt_put_byte(b, 0);
    pkt_end(b);
    complete(b, "SHOW");
}

/* ------------------------------------------------------------------------------------------ */
/* commands that change things                                                                 */
/* ------------------------------------------------------------------------------------------ */

/* run fn(worker, strdup(db)) in every worker; fn frees its argument */
static void broadcast_call(void (*fn)(px_worker *, void *), const char *db)
{
    for (int i = 0; i < px_g.nworkers; i++) {
        px_wmsg *m = calloc(1, sizeof(*m));
        char *arg = strdup(db ? db : "");
        if (!m || !arg) {
            free(m);
            free(arg);
            continue;
        }
        m->kind = WMSG_CALL;
        m->fn = fn;
        m->arg = arg;
        px_worker_post(px_g.workers[i], m);
    }
}

static bool db_match(const char *want, const px_pool *p)
{
    return !*want || strcmp(want, p->dbname) == 0;
}

/* KILL db: close the database's clients and servers */
static void kill_in_worker(px_worker *w, void *arg)
{
    char *db = arg;
    for (px_pool *p = w->pools; p; p = p->next) {
        if (!db_match(db, p))
            continue;
        px_list *lists[] = {&p->active_clients, &p->idle_clients, &p->waiting_clients,
                            &p->welcome_clients};
        for (size_t i = 0; i < 4; i++)
            while (!px_list_empty(lists[i])) {
                px_client *c = container_of(lists[i]->next, px_client, node);
                px_client_fail(c, "08P01", "database killed by the admin console (KILL)");
                if (lists[i]->next == &c->node)
                    px_list_del(&c->node); /* never loop on a client that stayed */
            }
        px_list *sl[] = {&p->idle_servers, &p->active_servers, &p->used_servers, &p->new_servers};
        for (size_t i = 0; i < 4; i++)
            while (!px_list_empty(sl[i])) {
                px_server *s = container_of(sl[i]->next, px_server, node);
                px_server_close(s, "KILL from the admin console");
                if (sl[i]->next == &s->node)
                    px_list_del(&s->node);
            }
    }
    free(db);
    px_worker_drain(w);
}

/* RECONNECT db: servers are closed when they come back to the pool, idle ones now */
static void reconnect_in_worker(px_worker *w, void *arg)
{
    char *db = arg;
    for (px_pool *p = w->pools; p; p = p->next) {
        if (!db_match(db, p))
            continue;
        px_list *sl[] = {&p->active_servers, &p->used_servers};
        for (size_t i = 0; i < 2; i++)
            for (px_list *n = sl[i]->next; n != sl[i]; n = n->next)
                container_of(n, px_server, node)->dirty = true;
        while (!px_list_empty(&p->idle_servers)) {
            px_server *s = container_of(p->idle_servers.next, px_server, node);
            px_server_close(s, "RECONNECT from the admin console");
            if (p->idle_servers.next == &s->node)
                px_list_del(&s->node);
        }
    }
    free(db);
    px_worker_drain(w);
}

/* RESUME: clients whose query waited in their buffer during PAUSE run it now */
static void resume_in_worker(px_worker *w, void *arg)
{
    char *db = arg;
    for (px_pool *p = w->pools; p; p = p->next) {
        if (!db_match(db, p))
            continue;
        for (px_list *n = p->idle_clients.next; n != &p->idle_clients; n = n->next) {
            px_client *c = container_of(n, px_client, node);
            if (c->io.rlen > 0 && !c->io.closed)
                px_conn_schedule(&c->io);
        }
    }
    free(db);
    px_worker_drain(w);
}

static bool db_known(const char *db)
{
    px_config *cfg = cfg_get();
    bool ok = false;
    for (int i = 0; i < cfg->n_dbs && !ok; i++)
        ok = strcmp(cfg->dbs[i].name, db) == 0;
    px_config_unref(cfg);
    return ok;
}

/* BAN / UNBAN db node (node: index or host:port) */
static void ban(pktbuf *b, const char *db, const char *node, bool on)
{
    px_route_db *d = px_route_db_find(db);
    if (!d || !d->topo) {
        err(b, "3D000", "no routing state for database \"%s\"", db);
        return;
    }
    int n = router_topology_count(d->topo);
    router_node *target = NULL;
    char *end;
    long idx = strtol(node, &end, 10);
    if (*node && !*end && idx >= 0 && idx < n)
        target = router_topology_node(d->topo, (int)idx);
    for (int i = 0; i < n && !target; i++) {
        router_node *x = router_topology_node(d->topo, i);
        char hp[300];
        snprintf(hp, sizeof(hp), "%s:%d", x->host, x->port);
        if (strcmp(hp, node) == 0)
            target = x;
    }
    if (!target) {
        err(b, "42704", "no such node: %s", node);
        return;
    }
    atomic_store(&target->admin_banned, on ? 1 : 0);
    log_info("admin console: %s %s node %s", on ? "BAN" : "UNBAN", db, node);
    complete(b, on ? "BAN" : "UNBAN");
}

static void set_cmd(pktbuf *b, const char *args)
{
    /* key = value (value may be quoted) */
    char key[128], value[1024];
    const char *eq = strchr(args, '=');
    if (!eq) {
        err(b, "42601", "syntax error: SET key = value%s", "");
        return;
    }
    size_t kl = (size_t)(eq - args);
    while (kl && isspace((unsigned char)args[kl - 1]))
        kl--;
    if (kl == 0 || kl >= sizeof(key)) {
        err(b, "42601", "syntax error: SET key = value%s", "");
        return;
    }
    memcpy(key, args, kl);
    key[kl] = '\0';
    const char *v = eq + 1;
    while (isspace((unsigned char)*v))
        v++;
    snprintf(value, sizeof(value), "%s", v);
    size_t vl = strlen(value);
    while (vl && isspace((unsigned char)value[vl - 1]))
        value[--vl] = '\0';
    if (vl >= 2 && value[0] == '\'' && value[vl - 1] == '\'') {
        memmove(value, value + 1, vl - 2);
        value[vl - 2] = '\0';
    }
    /* validate on a scratch config first: a bad value is an error, nothing changes */
    px_config *cfg = cfg_get();
    static const char *const fixed[] = {"listen_addr",      "listen_port",    "unix_socket_dir",
                                        "unix_socket_mode", "listen_backlog", "workers",
                                        "pkt_buf",          "pidfile",        "admin_listen"};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        if (strcasecmp(fixed[i], key) == 0) {
            px_config_unref(cfg);
            err(b, "55000", "%s can be changed only by a restart", key);
            return;
        }
    char e[256] = "";
    px_config *scratch = px_config_parse("", e, sizeof(e));
    int rc = scratch ? px_config_set(scratch, key, value, e, sizeof(e)) : -1;
    if (scratch)
        px_config_unref(scratch);
    px_config_unref(cfg);
    if (rc != 0) {
        err(b, "22023", "SET failed: %s", e[0] ? e : "out of memory");
        return;
    }
    if (!override_put(key, value)) {
        err(b, "53200", "out of memory%s", "");
        return;
    }
    /* the main thread reloads the file and applies every override (main.c) */
    kill(getpid(), SIGHUP);
    char tag[1200];
    snprintf(tag, sizeof(tag), "SET %s=%s", key, value);
    complete(b, tag);
}

/* ------------------------------------------------------------------------------------------ */
/* the dispatcher                                                                              */
/* ------------------------------------------------------------------------------------------ */

/* split "WORD rest": first word upper-cased into w, rest trimmed */
static const char *word(const char *s, char *w, size_t cap)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = 0;
    while (*s && !isspace((unsigned char)*s) && *s != ';') {
        if (n + 1 < cap)
            w[n++] = (char)toupper((unsigned char)*s);
        s++;
    }
    w[n] = '\0';
    while (isspace((unsigned char)*s))
        s++;
    return s;
}

/* WAIT_CLOSE with servers still to close: the database it waits for (admin thread only) */
static bool wait_close_pending;
static char wait_close_db[256];

/* one statement (no ';') */
static void exec_one(const char *stmt, int level, pktbuf *b)
{
    char w1[64], w2[64], w3[256];
    const char *rest = word(stmt, w1, sizeof(w1));
    if (!*w1) {
        pkt_simple(b, 'I'); /* EmptyQueryResponse */
        return;
    }
    if (strcmp(w1, "SHOW") == 0) {
        const char *r2 = word(rest, w2, sizeof(w2));
        if (*r2) {
            err(b, "08P01", "invalid command '%s', use SHOW HELP;", stmt);
            return;
        }
        if (strcmp(w2, "POOLS") == 0)
            show_pools(b);
        else if (strcmp(w2, "STATS") == 0)
            show_stats(b, 0);
        else if (strcmp(w2, "STATS_TOTALS") == 0)
            show_stats(b, 1);
        else if (strcmp(w2, "STATS_AVERAGES") == 0)
            show_stats(b, 2);
        else if (strcmp(w2, "SERVERS") == 0)
            show_conns(b, 'S');
        else if (strcmp(w2, "CLIENTS") == 0)
            show_conns(b, 'C');
        else if (strcmp(w2, "DATABASES") == 0)
            show_databases(b);
        else if (strcmp(w2, "USERS") == 0)
            show_users(b);
        else if (strcmp(w2, "CONFIG") == 0)
            show_config(b);
        else if (strcmp(w2, "LISTS") == 0)
            show_lists(b);
        else if (strcmp(w2, "MEM") == 0)
            show_mem(b);
        else if (strcmp(w2, "VERSION") == 0)
            show_version(b);
        else if (strcmp(w2, "REPLICAS") == 0)
            show_replicas(b);
        else if (strcmp(w2, "ROUTING") == 0)
            show_routing(b);
        else if (strcmp(w2, "HELP") == 0)
            show_help(b);
        else if (strcmp(w2, "TOTALS") == 0)
            show_totals(b);
        else if (strcmp(w2, "SOCKETS") == 0)
            show_conns(b, 0);
        else if (strcmp(w2, "ACTIVE_SOCKETS") == 0)
            show_conns(b, 'A');
        else if (strcmp(w2, "DNS_HOSTS") == 0)
            show_dns(b, false);
        else if (strcmp(w2, "DNS_ZONES") == 0)
            show_dns(b, true);
        else if (strcmp(w2, "FDS") == 0)
            err(b, "0A000", "SHOW FDS is not supported: tusk has no online restart (%s)",
                "it hands no sockets to a new process; restart with SIGINT, which waits for "
                "transactions");
        else
            err(b, "08P01", "invalid command '%s', use SHOW HELP;", stmt);
        return;
    }
    if (strcmp(w1, "SUSPEND") == 0) {
        err(b, "0A000", "SUSPEND is not supported: tusk has no online restart (%s)",
            "it hands no sockets to a new process; restart with SIGINT, which waits for "
            "transactions");
        return;
    }
    static const char *const cmds[] = {"PAUSE", "RESUME",  "RELOAD", "RECONNECT",
                                       "KILL",  "DISABLE", "ENABLE", "SHUTDOWN",
                                       "SET",   "BAN",     "UNBAN",  "WAIT_CLOSE"};
    bool known = false;
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        known = known || strcmp(cmds[i], w1) == 0;
    if (!known) {
        err(b, "08P01", "invalid command '%s', use SHOW HELP;", stmt);
        return;
    }
    if (level < 2) {
        err(b, "42501", "admin access needed: this user is in stats_users only%s", "");
        return;
    }
    if (strcmp(w1, "SET") == 0) {
        set_cmd(b, rest);
        return;
    }
    const char *r2 = word(rest, w2, sizeof(w2));
    /* database names keep their case: take them from the original text */
    char db[256] = "";
    {
        const char *p = rest;
        size_t n = 0;
        while (*p && !isspace((unsigned char)*p) && n + 1 < sizeof(db))
            db[n++] = *p++;
        db[n] = '\0';
    }
    const char *r3 = word(r2, w3, sizeof(w3));
    char node[256] = "";
    snprintf(node, sizeof(node), "%.*s", (int)strcspn(r2, " \t\r\n"), r2);
    bool needs_db =
        strcmp(w1, "KILL") == 0 || strcmp(w1, "DISABLE") == 0 || strcmp(w1, "ENABLE") == 0;
    bool takes_db = needs_db || strcmp(w1, "PAUSE") == 0 || strcmp(w1, "RESUME") == 0 ||
                    strcmp(w1, "RECONNECT") == 0 || strcmp(w1, "WAIT_CLOSE") == 0;
    bool is_ban = strcmp(w1, "BAN") == 0 || strcmp(w1, "UNBAN") == 0;
    if ((needs_db && !*db) || (!takes_db && !is_ban && *db) || (takes_db && *r2) ||
        (is_ban && (!*db || !*node || *r3))) {
        err(b, "42601", "syntax error in '%s', use SHOW HELP;", stmt);
        return;
    }
    if (is_ban) {
        ban(b, db, node, strcmp(w1, "BAN") == 0);
        return;
    }
    if (*db && !db_known(db)) {
        err(b, "3D000", "no such database: %s", db);
        return;
    }
    if (strcmp(w1, "WAIT_CLOSE") == 0) {
        if (adm_servers_closing(db) == 0) {
            complete(b, w1);
        } else {
            wait_close_pending = true; /* adm_console_exec stops here; admin_http.c polls */
            snprintf(wait_close_db, sizeof(wait_close_db), "%s", db);
        }
        return;
    }
    if (strcmp(w1, "RELOAD") == 0) {
        kill(getpid(), SIGHUP);
    } else if (strcmp(w1, "SHUTDOWN") == 0) {
        log_info("admin console: SHUTDOWN");
        kill(getpid(), SIGTERM);
    } else if (strcmp(w1, "KILL") == 0) {
        broadcast_call(kill_in_worker, db);
    } else if (strcmp(w1, "RECONNECT") == 0) {
        broadcast_call(reconnect_in_worker, db);
    } else {
        bool pause = strcmp(w1, "PAUSE") == 0, resume = strcmp(w1, "RESUME") == 0;
        if ((pause || resume) && !*db) {
            atomic_store(&paused_all, pause ? 1 : 0);
        } else {
            pthread_mutex_lock(&flags_lock);
            adm_flag *f = flag_get(db, true);
            if (f) {
                if (pause || resume)
                    f->paused = pause;
                else
                    f->disabled = strcmp(w1, "DISABLE") == 0;
            }
            pthread_mutex_unlock(&flags_lock);
            if (!f) {
                err(b, "53200", "out of memory%s", "");
                return;
            }
        }
        if (resume)
            broadcast_call(resume_in_worker, db);
    }
    log_info("admin console: %s %s", w1, db);
    complete(b, w1);
}

/* run one console command (admin thread) */
bool adm_console_exec(const char *sql, int level, pktbuf *out, char *wait_db, size_t cap)
{
    wait_close_pending = false;
    /* statements separated by ';' (no quoting in console commands except SET values) */
    const char *p = sql;
    bool any = false;
    while (*p) {
        const char *e = p;
        bool q = false;
        while (*e && (q || *e != ';')) {
            if (*e == '\'')
                q = !q;
            e++;
        }
        size_t n = (size_t)(e - p);
        char *stmt = malloc(n + 1);
        if (!stmt) {
            err(out, "53200", "out of memory%s", "");
            break;
        }
        memcpy(stmt, p, n);
        stmt[n] = '\0';
        const char *t = stmt;
        while (isspace((unsigned char)*t))
            t++;
        if (*t || !any) {
            if (*t || !*e)
                exec_one(stmt, level, out);
            any = true;
        }
        free(stmt);
        p = *e ? e + 1 : e;
        if (wait_close_pending) {
            const char *more = p;
            while (isspace((unsigned char)*more) || *more == ';')
                more++;
            if (!*more) {
                snprintf(wait_db, cap, "%s", wait_close_db);
                return false; /* the answer is finished by adm_console_finish_wait */
            }
            wait_close_pending = false;
            err(out, "0A000", "WAIT_CLOSE must be the last command of a query%s", "");
            break;
        }
    }
    if (!any)
        pkt_simple(out, 'I');
    pkt_ready(out, 'I');
    return true;
}
