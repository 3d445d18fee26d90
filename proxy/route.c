/*
 * Replica routing and read-your-writes (issue 3, design.md §2): which node runs a client's
 * next transaction, the session state that decides it (pins, read-only default, tusk.route,
 * the client's LSN floor), the commit-LSN capture after a write transaction (before the
 * server connection returns to the pool and before the client sees the ReadyForQuery that
 * ends the transaction), and the process-wide routing state of every [databases] entry
 * (topology monitors, counters) that the admin console and /metrics read.
 */
#include "proxy/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RT_WRITE_SET 4096 /* statement hashes a replica refused with 25006 */
#define RT_MAX_SETS 32    /* untracked session SETs replayed per client */
#define RT_MAX_SET_LEN 2048

/* process-wide extension of px_route_db (the public part stays as internal.h has it) */
typedef struct rt_db {
    px_route_db pub;           /* first member: px_route_db * == rt_db * */
    char *sig;                 /* what the topology was built from */
    _Atomic int primary_reads; /* PX_PRIMARY_READS_* */
    _Atomic int replica_wait_ms;
    _Atomic(router_topology *) cur;           /* == pub.topo, read by the workers */
    _Atomic uint64_t write_set[RT_WRITE_SET]; /* open addressing, insert only */
} rt_db;

/* a statement or portal the proxy answers itself (extended protocol) */
typedef struct rt_lcmd {
    router_tusk_set set; /* ROUTER_TUSK_ROUTE / _MIN_LSN; NONE = SHOW tusk.commit_lsn */
    int route;
    uint64_t lsn;
} rt_lcmd;

#define RT_MAX_LSTMTS 16
enum { RT_EXT_NONE, RT_EXT_LOCAL, RT_EXT_SKIP }; /* LOCAL: answering until Sync; SKIP: error */

/* routing state of one client (worker-local) */
typedef struct px_rclient {
    px_client *c;
    rt_db *db;
    router_class cls;  /* verdict on the last message looked at */
    bool cls_valid;    /* cls belongs to the message get_server is about to route */
    uint64_t cls_hash; /* its text, for the 25006 write set */
    uint64_t floor;    /* read-your-writes: replicas must have replayed this */
    int route;         /* router_override from SET tusk.route */
    bool session_ro;   /* default_transaction_read_only on */
    uint16_t pins;     /* ROUTER_PIN_*: state that cannot be replayed: primary only */
    bool txn_wrote;    /* the running transaction ran something not replica-safe */
    int out_node;      /* node whose outstanding counter this client holds, -1 none */
    router_topology *out_topo;
    int64_t wait_deadline_ms; /* waiting for a replica to reach floor; 0 = not waiting */
    int64_t wait_start_ms;
    ev_timer wait_timer;
    bool timer_on;
    bool force_primary; /* the next transaction re-runs a statement a replica refused */
    /* what the client sent to a replica for its current autocommit statement: one simple
     * Query (25006 re-run, lost replica) or an extended-protocol batch up to its Sync (lost
     * replica); kept as the client sent it */
    uint8_t *retry_msg;
    uint32_t retry_len, retry_cap;
    bool retry_open; /* still taking the client's messages (proxy_route_sent) */
    bool retry_ext;  /* retry_msg is a whole extended batch, Sync included */
    /* session SETs the varcache does not track, replayed on each server (transaction mode) */
    int n_sets;
    char *set_name[RT_MAX_SETS], *set_sql[RT_MAX_SETS];
    char *sets, *set_names; /* the script and the names, rebuilt when they change */
    /* extended protocol: SET tusk.* / SHOW tusk.commit_lsn statements answered by the proxy */
    int ext;      /* RT_EXT_*: where the client's current Parse..Sync batch stands */
    bool ext_err; /* this batch answered an error (ReadyForQuery says so in a transaction) */
    bool has_unnamed, has_lportal;
    rt_lcmd unnamed, lportal;
    char *lportal_name;
    int n_lstmts;
    char *lstmt_name[RT_MAX_LSTMTS];
    rt_lcmd lstmt[RT_MAX_LSTMTS];
} px_rclient;

#define RT_RETRY_MAX 65536 /* larger Query messages are not kept for a re-run */
#define RT_RETRY_KEEP 4096 /* a larger copy is freed when its transaction ends */

static rt_db *route_dbs;
static atomic_int route_waiting; /* clients waiting for a replica to catch up */
static router_classifier *_Atomic route_cls;
static char *route_cls_list;

/* ------------------------------------------------------------------------------------------ */
/* registry                                                                                    */
/* ------------------------------------------------------------------------------------------ */

px_route_db *px_route_db_find(const char *name)
{
    for (rt_db *d = route_dbs; d; d = (rt_db *)d->pub.next)
        if (strcmp(d->pub.name, name) == 0)
            return &d->pub;
    return NULL;
}

px_route_db *px_route_db_next(px_route_db *prev)
{
    return prev ? prev->next : (px_route_db *)route_dbs;
}

/* monitor threads saw an LSN or state change: wake the workers (waiting clients poll too) */
static void route_notify(void *arg)
{
    (void)arg;
    if (atomic_load(&route_waiting) == 0)
        return;
    for (int i = 0; i < px_g.nworkers && i < PX_MAX_WORKERS; i++) {
        px_worker *w = px_g.workers[i];
        if (w && w->loop)
            ev_async_send(w->loop, &w->wake);
    }
}

/* the login the monitors use: the entry's user, else auth_user, else monitor_user */
static void monitor_login(const px_config *cfg, const px_db *d, const char **user, const char **pw)
{
    *user = NULL;
    *pw = NULL;
    if (d->user && *d->user) {
        *user = d->user;
        *pw = d->password;
        if (!*pw && cfg->users_file)
            *pw = userlist_lookup(cfg->users_file, d->user);
        return;
    }
    const char *au = d->auth_user && *d->auth_user ? d->auth_user : cfg->auth_user;
    if (au && *au && cfg->users_file && userlist_lookup(cfg->users_file, au)) {
        *user = au;
        *pw = userlist_lookup(cfg->users_file, au);
        /* a SCRAM secret or md5 hash is no password libpq can use */
        if (*pw && (strncmp(*pw, "SCRAM-SHA-256$", 14) == 0 || strncmp(*pw, "md5", 3) == 0))
            *pw = NULL;
        if (*pw)
            return;
    }
    if (cfg->monitor_user && *cfg->monitor_user) {
        *user = cfg->monitor_user;
        *pw = cfg->monitor_password && *cfg->monitor_password ? cfg->monitor_password : NULL;
    }
}

/* conninfo value, single-quoted with \ and ' escaped */
static void ci_put(pktbuf *b, const char *key, const char *v)
{
    pkt_put_bytes(b, key, strlen(key));
    pkt_put_bytes(b, "='", 2);
    for (const char *p = v; *p; p++) {
        if (*p == '\\' || *p == '\'')
            pkt_put_byte(b, '\\');
        pkt_put_byte(b, (uint8_t)*p);
    }
    pkt_put_bytes(b, "' ", 2);
}

static int db_int(int dbv, int global)
{
    return dbv >= 0 ? dbv : global;
}

/* build (or keep) the routing state of one entry */
static void configure_db(px_config *cfg, const px_db *d)
{
    const char *user, *pw;
    monitor_login(cfg, d, &user, &pw);
    pktbuf ci;
    pktbuf_init(&ci, NULL, 0);
    ci_put(&ci, "dbname", d->dbname ? d->dbname : d->name);
    if (user)
        ci_put(&ci, "user", user);
    if (pw)
        ci_put(&ci, "password", pw);
    ci_put(&ci, "application_name", "tusk-monitor");
    pkt_put_byte(&ci, 0);
    int lag_ms = db_int(d->max_replica_lag_ms, cfg->max_replica_lag_ms);
    int lag_bytes = db_int(d->max_replica_lag_bytes, cfg->max_replica_lag_bytes);
    const char *hosts[ROUTER_MAX_NODES];
    int ports[ROUTER_MAX_NODES], weights[ROUTER_MAX_NODES];
    int n = d->n_nodes < ROUTER_MAX_NODES ? d->n_nodes : ROUTER_MAX_NODES;
    const char *wl = d->replica_weights;
    pktbuf sig;
    pktbuf_init(&sig, NULL, 0);
    for (int i = 0; i < n; i++) {
        hosts[i] = d->nodes[i].host;
        ports[i] = d->nodes[i].port;
        weights[i] = 1;
        if (i > 0 && wl && *wl) {
            int v = atoi(wl);
            weights[i] = v > 0 ? v : 1;
            wl = strchr(wl, ',');
            wl = wl ? wl + 1 : NULL;
        }
        char part[400];
        snprintf(part, sizeof(part), "%s:%d*%d,", hosts[i], ports[i], weights[i]);
        pkt_put_bytes(&sig, part, strlen(part));
    }
    char tail[128];
    snprintf(tail, sizeof(tail), "|%d|%d|%d|", cfg->lag_poll_ms, lag_ms, lag_bytes);
    pkt_put_bytes(&sig, tail, strlen(tail));
    pkt_put_bytes(&sig, ci.data, ci.len);
    pkt_put_byte(&sig, 0);
    if (ci.failed || sig.failed) {
        log_error("routing for database \"%s\": out of memory", d->name);
        goto out;
    }
    rt_db *rd = (rt_db *)px_route_db_find(d->name);
    if (!rd) {
        rd = calloc(1, sizeof(*rd));
        if (!rd || !(rd->pub.name = strdup(d->name))) {
            free(rd);
            goto out;
        }
        rd->pub.next = (px_route_db *)route_dbs;
    }
    atomic_store(&rd->primary_reads, db_int(d->primary_reads, cfg->primary_reads));
    atomic_store(&rd->replica_wait_ms, db_int(d->replica_wait_ms, cfg->replica_wait_ms));
    if (rd->sig && strcmp(rd->sig, (char *)sig.data) == 0)
        goto publish; /* same nodes and monitor settings: keep the running monitors */
    router_topology_config tc = {
        .conninfo_extra = (const char *)ci.data,
        .lag_poll_ms = cfg->lag_poll_ms,
        .max_replica_lag_ms = lag_ms,
        .max_replica_lag_bytes = lag_bytes,
        .ban_ms = 1000,
        .connect_timeout_s = 2,
    };
    router_topology *topo = router_topology_new(&tc, n, hosts, ports, weights);
    if (!topo || router_topology_start(topo, route_notify, NULL) != 0) {
        log_error("routing for database \"%s\": cannot start the topology monitors", d->name);
        if (topo)
            router_topology_free(topo);
        if (!rd->sig) {
            free(rd->pub.name);
            free(rd);
        }
        goto out;
    }
    if (!user)
        log_warning("routing for database \"%s\": no monitor login (set user= on the entry, "
                    "auth_user, or monitor_user / monitor_password)",
                    d->name);
    router_topology *old = atomic_load(&rd->cur);
    rd->pub.topo = topo;
    atomic_store(&rd->cur, topo);
    if (old)
        router_topology_stop(old); /* workers may still read it: kept until exit */
    free(rd->sig);
    rd->sig = strdup((char *)sig.data);
    log_info("routing for database \"%s\": %d node(s), lag_poll_ms %d", d->name, n,
             cfg->lag_poll_ms);
publish:
    if (route_dbs != rd && !px_route_db_find(d->name))
        route_dbs = rd; /* next was set to the old head above */
out:
    pktbuf_free(&ci);
    pktbuf_free(&sig);
}

void px_route_configure(px_config *cfg)
{
    const char *list = cfg->unsafe_functions ? cfg->unsafe_functions : "";
    if (!atomic_load(&route_cls) || !route_cls_list || strcmp(route_cls_list, list) != 0) {
        router_classifier *nc = router_classifier_new(list);
        if (!nc) {
            log_error("unsafe_functions: bad list; keeping the previous one");
            if (!atomic_load(&route_cls))
                nc = router_classifier_new(NULL);
        }
        if (nc) {
            atomic_store(&route_cls, nc); /* the old one stays: workers may be using it */
            free(route_cls_list);
            route_cls_list = strdup(list);
        }
    }
    for (int i = 0; i < cfg->n_dbs; i++) {
        const px_db *d = &cfg->dbs[i];
        if (strcmp(d->name, "*") == 0 || d->n_nodes < 2)
            continue; /* one node: nothing to route, no monitors */
        configure_db(cfg, d);
    }
}

/* a statement (a simple Query's or an unnamed Parse's text) another client's may wait behind
 * on one server connection (pipeline_reads): one statement that reads, leaves no session state, and
 * does not start or end a transaction, so the server is back in the same state after it */
uint64_t proxy_route_pipeline_shape(const char *q, size_t qlen)
{
    router_classifier *cls = atomic_load(&route_cls);
    if (!cls)
        return 0;
    router_class k;
    router_classify_ex(cls, q, qlen, ROUTER_FLAG_FINGERPRINT, &k);
    bool ok = k.replica_safe && k.statements == 1 && !k.uncertain && !k.txn_begin && !k.txn_end &&
              !k.txn_read_only && !k.sets_session_state && !k.reset_all && !k.pins && !k.unpins &&
              k.tusk_set == ROUTER_TUSK_NONE && k.default_read_only == ROUTER_SETTING_UNCHANGED;
    return ok ? k.fingerprint : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* per-client state                                                                            */
/* ------------------------------------------------------------------------------------------ */

static uint64_t text_hash(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h | 1; /* 0 marks an empty slot */
}

static bool write_set_has(rt_db *rd, uint64_t h)
{
    for (int i = 0; i < 8; i++) {
        uint64_t v = atomic_load(&rd->write_set[(h + (uint64_t)i) % RT_WRITE_SET]);
        if (v == h)
            return true;
        if (v == 0)
            return false;
    }
    return false;
}

static void write_set_add(rt_db *rd, uint64_t h)
{
    for (int i = 0; i < 8; i++) {
        _Atomic uint64_t *slot = &rd->write_set[(h + (uint64_t)i) % RT_WRITE_SET];
        uint64_t expect = 0;
        if (atomic_compare_exchange_strong(slot, &expect, h) || expect == h)
            return;
    }
    /* full neighbourhood: bounded, the next 25006 answers for it */
}

static void wait_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    px_rclient *rt = container_of(t, px_rclient, wait_timer);
    px_client *c = rt->c;
    if (!c->io.closed && c->io.rlen)
        px_conn_schedule(&c->io);
    px_worker_drain(c->io.w);
}

static void wait_stop(px_rclient *rt)
{
    if (rt->timer_on) {
        ev_timer_stop(rt->c->io.w->loop, &rt->wait_timer);
        rt->timer_on = false;
    }
    if (rt->wait_deadline_ms)
        atomic_fetch_sub(&route_waiting, 1);
    rt->wait_deadline_ms = 0;
}

static void release_outstanding(px_rclient *rt)
{
    if (rt->out_node >= 0 && rt->out_topo) {
        router_node *n = router_topology_node(rt->out_topo, rt->out_node);
        if (n)
            atomic_fetch_sub(&n->outstanding, 1);
    }
    rt->out_node = -1;
    rt->out_topo = NULL;
}

static px_rclient *rclient(px_client *c)
{
    if (c->rt)
        return c->rt;
    px_rclient *rt = calloc(1, sizeof(*rt));
    if (!rt)
        return NULL;
    rt->c = c;
    rt->out_node = -1;
    rt->db = (rt_db *)px_route_db_find(c->pool ? c->pool->dbname : c->dbname);
    ev_timer_init(&rt->wait_timer, wait_timer_cb, 0.001, 0.001);
    c->rt = rt;
    return rt;
}

void proxy_route_client_free(px_client *c)
{
    px_rclient *rt = c->rt;
    if (!rt)
        return;
    wait_stop(rt);
    release_outstanding(rt);
    free(rt->retry_msg);
    for (int i = 0; i < rt->n_sets; i++) {
        free(rt->set_name[i]);
        free(rt->set_sql[i]);
    }
    free(rt->sets);
    free(rt->set_names);
    for (int i = 0; i < rt->n_lstmts; i++)
        free(rt->lstmt_name[i]);
    free(rt->lportal_name);
    free(rt);
    c->rt = NULL;
}

/* rebuild the script ("stmt;" each) and the names ("name\n" each) */
static void sets_rebuild(px_rclient *rt)
{
    free(rt->sets);
    free(rt->set_names);
    rt->sets = rt->set_names = NULL;
    if (rt->n_sets == 0)
        return;
    size_t a = 1, b = 1;
    for (int i = 0; i < rt->n_sets; i++) {
        a += strlen(rt->set_sql[i]) + 2;
        b += strlen(rt->set_name[i]) + 1;
    }
    rt->sets = malloc(a);
    rt->set_names = malloc(b);
    if (!rt->sets || !rt->set_names) {
        free(rt->sets);
        free(rt->set_names);
        rt->sets = rt->set_names = NULL;
        return;
    }
    char *p = rt->sets, *q = rt->set_names;
    for (int i = 0; i < rt->n_sets; i++) {
        p += sprintf(p, "%s;\n", rt->set_sql[i]);
        q += sprintf(q, "%s\n", rt->set_name[i]);
    }
}

static void sets_clear(px_rclient *rt)
{
    for (int i = 0; i < rt->n_sets; i++) {
        free(rt->set_name[i]);
        free(rt->set_sql[i]);
    }
    rt->n_sets = 0;
    sets_rebuild(rt);
}

/* remember a session SET / RESET of a setting the varcache does not track */
static void sets_note(px_rclient *rt, const router_class *k, const char *q, size_t qn)
{
    const char *name = k->set_name;
    if (!name[0] || k->statements != 1 || px_var_index(name) >= 0 || qn > RT_MAX_SET_LEN)
        return;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '.'))
            return; /* replayed as RESET name: keep to plain names */
    while (qn && (q[qn - 1] == ';' || q[qn - 1] == ' ' || q[qn - 1] == '\n' || q[qn - 1] == '\t' ||
                  q[qn - 1] == '\r'))
        qn--;
    char *sql = strndup(q, qn);
    if (!sql)
        return;
    int i = 0;
    while (i < rt->n_sets && strcmp(rt->set_name[i], name) != 0)
        i++;
    if (i == rt->n_sets) {
        if (rt->n_sets == RT_MAX_SETS) {
            free(sql);
            log_warning("client %s: more than %d session settings; %s is not replayed", rt->c->addr,
                        RT_MAX_SETS, name);
            return;
        }
        rt->set_name[i] = strdup(name);
        if (!rt->set_name[i]) {
            free(sql);
            return;
        }
        rt->n_sets++;
    } else {
        free(rt->set_sql[i]);
    }
    rt->set_sql[i] = sql;
    sets_rebuild(rt);
}

/* what puts a setting back to its default */
static void put_reset(pktbuf *b, const char *name)
{
    const char *sql;
    char buf[128];
    if (strcmp(name, "session_characteristics") == 0)
        sql = "RESET default_transaction_read_only;RESET default_transaction_isolation;"
              "RESET default_transaction_deferrable;";
    else if (strcmp(name, "session_authorization") == 0)
        sql = "RESET SESSION AUTHORIZATION;";
    else {
        snprintf(buf, sizeof(buf), "RESET %s;", name);
        sql = buf;
    }
    pkt_put_bytes(b, sql, strlen(sql));
}

static bool str_eq(const char *a, const char *b)
{
    return (a ? a : "")[0] == (b ? b : "")[0] && strcmp(a ? a : "", b ? b : "") == 0;
}

/* the server now has the client's settings */
static void sets_copy_to(px_server *s, const px_rclient *rt)
{
    if (str_eq(s->rt_sets, rt->sets) && str_eq(s->rt_set_names, rt->set_names))
        return;
    free(s->rt_sets);
    free(s->rt_set_names);
    s->rt_sets = rt->sets ? strdup(rt->sets) : NULL;
    s->rt_set_names = rt->set_names ? strdup(rt->set_names) : NULL;
}

void proxy_route_sync_sets(px_server *s, px_client *c)
{
    px_rclient *rt = c->rt;
    if (!rt || s->pool->mode == PM_SESSION || str_eq(s->rt_sets, rt->sets))
        return;
    pktbuf sql;
    pktbuf_init(&sql, NULL, 0);
    /* settings the server has and the client does not: back to the default */
    for (const char *p = s->rt_set_names; p && *p;) {
        const char *e = strchr(p, '\n');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        char name[64];
        if (l < sizeof(name)) {
            memcpy(name, p, l);
            name[l] = '\0';
            bool keep = false;
            for (int i = 0; i < rt->n_sets && !keep; i++)
                keep = strcmp(rt->set_name[i], name) == 0;
            if (!keep)
                put_reset(&sql, name);
        }
        p = e ? e + 1 : NULL;
    }
    if (rt->sets)
        pkt_put_bytes(&sql, rt->sets, strlen(rt->sets));
    pkt_put_byte(&sql, 0);
    if (!sql.failed && sql.len > 1 &&
        !px_server_internal_query(s, INTQ_SETVARS, (const char *)sql.data))
        log_warning("could not queue the session settings of client %s", c->addr);
    pktbuf_free(&sql);
    sets_copy_to(s, rt);
}

static unsigned client_flags(const px_client *c, const px_rclient *rt)
{
    unsigned f = 0;
    const px_istr *scs = c->vars[VAR_STANDARD_CONFORMING_STRINGS];
    if (scs && strcasecmp(scs->s, "off") == 0)
        f |= ROUTER_FLAG_SCS_OFF;
    const px_istr *enc = c->vars[VAR_CLIENT_ENCODING];
    if (enc) {
        static const char *const mb[] = {"sjis", "shift_jis", "big5",   "gbk",
                                         "uhc",  "gb18030",   "win936", "win950"};
        for (size_t i = 0; i < sizeof(mb) / sizeof(mb[0]); i++)
            if (strcasecmp(enc->s, mb[i]) == 0)
                f |= ROUTER_FLAG_CLIENT_MB_BACKSLASH;
    }
    if (rt->session_ro)
        f |= ROUTER_FLAG_SESSION_READ_ONLY;
    return f;
}

/* answer a SET tusk.* ourselves: CommandComplete + ReadyForQuery (or an error) */
static void answer_tusk_set(px_client *c, px_rclient *rt, const router_class *k)
{
    pktbuf *b = &c->io.w->tmp;
    pktbuf_reset(b);
    if (k->tusk_set == ROUTER_TUSK_BAD) {
        pkt_error(b, 'E', "ERROR", "22023", NULL, "%s",
                  k->tusk_error ? k->tusk_error : "invalid tusk setting");
    } else {
        if (k->tusk_set == ROUTER_TUSK_ROUTE)
            rt->route = k->tusk_route;
        else if (k->tusk_set == ROUTER_TUSK_MIN_LSN && k->tusk_min_lsn > rt->floor)
            rt->floor = k->tusk_min_lsn;
        pkt_begin(b, 'C');
        pkt_put_str(b, "SET");
        pkt_end(b);
    }
    char st = c->txn_status ? c->txn_status : 'I';
    if (k->tusk_set == ROUTER_TUSK_BAD && st == 'T')
        st = 'E';
    pkt_ready(b, st);
    if (b->failed || !px_conn_append(&c->io, b->data, b->len) || !px_conn_flush(&c->io))
        px_client_close(c, "write error");
}

/* SHOW tusk.commit_lsn: the client's floor, answered by the proxy */
static bool is_show_commit_lsn(const char *q, size_t n)
{
    while (n && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')) {
        q++;
        n--;
    }
    while (n && (q[n - 1] == ' ' || q[n - 1] == ';' || q[n - 1] == '\n' || q[n - 1] == '\0'))
        n--;
    return n == 20 && strncasecmp(q, "show tusk.commit_lsn", 20) == 0;
}

static void put_lsn_rowdesc(pktbuf *b)
{
    pkt_begin(b, 'T');
    pkt_put_int16(b, 1);
    pkt_put_str(b, "tusk.commit_lsn");
    pkt_put_int32(b, 0);
    pkt_put_int16(b, 0);
    pkt_put_int32(b, 25); /* text */
    pkt_put_int16(b, 0xffff);
    pkt_put_int32(b, 0xffffffffu);
    pkt_put_int16(b, 0);
    pkt_end(b);
}

/* DataRow with the floor + CommandComplete */
static void put_lsn_row(pktbuf *b, const px_rclient *rt)
{
    char lsn[32];
    router_format_lsn(rt->floor, lsn);
    pkt_begin(b, 'D');
    pkt_put_int16(b, 1);
    pkt_put_int32(b, (uint32_t)strlen(lsn));
    pkt_put_bytes(b, lsn, strlen(lsn));
    pkt_end(b);
    pkt_begin(b, 'C');
    pkt_put_str(b, "SHOW");
    pkt_end(b);
}

static void answer_show_lsn(px_client *c, px_rclient *rt)
{
    pktbuf *b = &c->io.w->tmp;
    pktbuf_reset(b);
    put_lsn_rowdesc(b);
    put_lsn_row(b, rt);
    pkt_ready(b, c->txn_status ? c->txn_status : 'I');
    if (b->failed || !px_conn_append(&c->io, b->data, b->len) || !px_conn_flush(&c->io))
        px_client_close(c, "write error");
}

/* ------------------------------------------------------------------------------------------ */
/* SET tusk.* / SHOW tusk.commit_lsn over the extended protocol                                */
/* ------------------------------------------------------------------------------------------ */

/* queue b (built in the worker's tmp buffer) for the client; data_pass flushes it */
static void ext_send(px_client *c, pktbuf *b)
{
    if (b->failed || !px_conn_append(&c->io, b->data, b->len))
        px_client_close(c, "write error");
}

static void ext_simple(px_client *c, uint8_t type)
{
    pktbuf *b = &c->io.w->tmp;
    pktbuf_reset(b);
    pkt_simple(b, type);
    ext_send(c, b);
}

/* answer an error and ignore everything up to Sync, as PostgreSQL does */
static void ext_error(px_client *c, px_rclient *rt, const char *state, const char *msg)
{
    pktbuf *b = &c->io.w->tmp;
    pktbuf_reset(b);
    pkt_error(b, 'E', "ERROR", state, NULL, "%s", msg);
    ext_send(c, b);
    rt->ext = RT_EXT_SKIP;
    rt->ext_err = true;
}

/* a local statement in the middle of a batch the server is running: the answers must come in
 * order, so the server itself fails the batch (it then skips to Sync) with a Parse that fails
 * in parse analysis, its message saying why */
static bool ext_reject(px_client *c, px_fwd *f)
{
    static const char q[] =
        "SELECT 'SET tusk.* must be sent alone, before other statements of the pipeline'::int";
    pktbuf *b = &c->io.w->tmp;
    pktbuf_reset(b);
    pkt_parse(b, "", q, sizeof(q) - 1, 0, NULL);
    if (b->failed || !c->server || !px_server_expect(c->server, EXP_PARSE, 0, NULL)) {
        px_client_fail(c, "53200", "out of memory");
        return true;
    }
    px_fwd_emit(f, b->data, b->len);
    return true;
}

static rt_lcmd *lstmt_find(px_rclient *rt, const char *name)
{
    if (!*name)
        return rt->has_unnamed ? &rt->unnamed : NULL;
    for (int i = 0; i < rt->n_lstmts; i++)
        if (strcmp(rt->lstmt_name[i], name) == 0)
            return &rt->lstmt[i];
    return NULL;
}

static void lstmt_drop(px_rclient *rt, const char *name)
{
    if (!*name) {
        rt->has_unnamed = false;
        return;
    }
    for (int i = 0; i < rt->n_lstmts; i++)
        if (strcmp(rt->lstmt_name[i], name) == 0) {
            free(rt->lstmt_name[i]);
            rt->n_lstmts--;
            rt->lstmt_name[i] = rt->lstmt_name[rt->n_lstmts];
            rt->lstmt[i] = rt->lstmt[rt->n_lstmts];
            return;
        }
}

static bool lstmt_put(px_rclient *rt, const char *name, const rt_lcmd *cmd)
{
    lstmt_drop(rt, name);
    if (!*name) {
        rt->unnamed = *cmd;
        rt->has_unnamed = true;
        return true;
    }
    if (rt->n_lstmts == RT_MAX_LSTMTS)
        return false;
    char *n = strdup(name);
    if (!n)
        return false;
    rt->lstmt_name[rt->n_lstmts] = n;
    rt->lstmt[rt->n_lstmts++] = *cmd;
    return true;
}

static bool lportal_is(const px_rclient *rt, const char *name)
{
    return rt->has_lportal && strcmp(rt->lportal_name ? rt->lportal_name : "", name) == 0;
}

static void lportal_clear(px_rclient *rt)
{
    rt->has_lportal = false;
    free(rt->lportal_name);
    rt->lportal_name = NULL;
}

/* the rows of a Describe of a local statement or portal */
static void ext_describe(px_client *c, const rt_lcmd *cmd, bool stmt)
{
    pktbuf *b = &c->io.w->tmp;
    pktbuf_reset(b);
    if (stmt) {
        pkt_begin(b, 't');
        pkt_put_int16(b, 0);
        pkt_end(b);
    }
    if (cmd->set == ROUTER_TUSK_NONE)
        put_lsn_rowdesc(b);
    else
        pkt_simple(b, 'n');
    ext_send(c, b);
}

static void ext_execute(px_client *c, px_rclient *rt, const rt_lcmd *cmd)
{
    pktbuf *b = &c->io.w->tmp;
    pktbuf_reset(b);
    if (cmd->set == ROUTER_TUSK_NONE) {
        put_lsn_row(b, rt);
    } else {
        if (cmd->set == ROUTER_TUSK_ROUTE)
            rt->route = cmd->route;
        else if (cmd->set == ROUTER_TUSK_MIN_LSN && cmd->lsn > rt->floor)
            rt->floor = cmd->lsn;
        pkt_begin(b, 'C');
        pkt_put_str(b, "SET");
        pkt_end(b);
    }
    ext_send(c, b);
}

bool proxy_route_ext_active(const px_client *c)
{
    const px_rclient *rt = c->rt;
    return rt && (rt->ext != RT_EXT_NONE || rt->has_unnamed || rt->n_lstmts || rt->has_lportal);
}

bool proxy_route_ext(px_client *c, px_fwd *f, const uint8_t *msg, size_t len, size_t total)
{
    px_rclient *rt = c->rt;
    uint8_t type = msg[0];
    if (rt->ext == RT_EXT_SKIP) {
        if (type != 'S')
            return true;
        rt->ext = RT_EXT_NONE;
        lportal_clear(rt);
        char st = c->txn_status ? c->txn_status : 'I';
        if (rt->ext_err && st == 'T')
            st = 'E';
        rt->ext_err = false;
        pktbuf *b = &c->io.w->tmp;
        pktbuf_reset(b);
        pkt_ready(b, st);
        ext_send(c, b);
        return true;
    }
    bool local = rt->ext == RT_EXT_LOCAL;
    bool idle = local || !c->server || c->server->qlen == 0;
    if (len < total) {
        rt->ext = RT_EXT_NONE; /* too large to be ours: it goes to the server */
        return false;
    }
    pkt_reader r;
    pkt_reader_init(&r, msg + 5, len - 5);
    switch (type) {
    case 'S':
    case 'H':
        if (!local)
            return false;
        if (type == 'S') {
            rt->ext = RT_EXT_NONE;
            rt->ext_err = false;
            lportal_clear(rt);
            pktbuf *b = &c->io.w->tmp;
            pktbuf_reset(b);
            pkt_ready(b, c->txn_status ? c->txn_status : 'I');
            ext_send(c, b);
        }
        return true;
    case 'P': {
        /* a new statement under a local name replaces ours; proxy_route_message decides */
        const char *name = pkt_read_str(&r);
        if (!r.bad && lstmt_find(rt, name))
            lstmt_drop(rt, name);
        return false;
    }
    case 'B': {
        const char *portal = pkt_read_str(&r);
        const char *sname = pkt_read_str(&r);
        if (r.bad)
            break;
        rt_lcmd *cmd = lstmt_find(rt, sname);
        if (!cmd) {
            if (lportal_is(rt, portal))
                lportal_clear(rt);
            break;
        }
        if (!idle)
            return ext_reject(c, f);
        lportal_clear(rt);
        if (*portal && !(rt->lportal_name = strdup(portal))) {
            ext_error(c, rt, "53200", "out of memory");
            return true;
        }
        rt->lportal = *cmd;
        rt->has_lportal = true;
        rt->ext = RT_EXT_LOCAL;
        ext_simple(c, '2');
        return true;
    }
    case 'D':
    case 'C': {
        uint8_t what = pkt_read_byte(&r);
        const char *name = pkt_read_str(&r);
        if (r.bad)
            break;
        rt_lcmd *cmd = what == 'S'            ? lstmt_find(rt, name)
                       : lportal_is(rt, name) ? &rt->lportal
                                              : NULL;
        if (!cmd)
            break;
        if (type == 'C') {
            if (what == 'S')
                lstmt_drop(rt, name);
            else
                lportal_clear(rt);
            if (!idle)
                return false; /* the server answers CloseComplete for a name it lacks */
            rt->ext = RT_EXT_LOCAL;
            ext_simple(c, '3');
            return true;
        }
        if (!idle)
            return ext_reject(c, f);
        rt->ext = RT_EXT_LOCAL;
        ext_describe(c, cmd, what == 'S');
        return true;
    }
    case 'E': {
        const char *portal = pkt_read_str(&r);
        if (r.bad || !lportal_is(rt, portal))
            break;
        if (!idle)
            return ext_reject(c, f);
        rt->ext = RT_EXT_LOCAL;
        ext_execute(c, rt, &rt->lportal);
        return true;
    }
    default:
        break;
    }
    rt->ext = RT_EXT_NONE; /* the rest of the batch goes to a server, its Sync too */
    return false;
}

/* an intercepted Parse: keep the statement locally and answer ParseComplete */
static bool ext_parse(px_client *c, px_rclient *rt, px_fwd *f, const router_class *k, bool idle,
                      const uint8_t *msg, size_t len)
{
    if (!idle)
        return ext_reject(c, f);
    if (k->tusk_set == ROUTER_TUSK_BAD) {
        ext_error(c, rt, "22023", k->tusk_error ? k->tusk_error : "invalid tusk setting");
        return true;
    }
    rt_lcmd cmd = {.set = k->tusk_set, .route = k->tusk_route, .lsn = k->tusk_min_lsn};
    const char *name = (const char *)msg + 5;
    (void)len; /* proxy_route_message checked that the name is terminated */
    if (!lstmt_put(rt, name, &cmd)) {
        ext_error(c, rt, "53400", "too many SET tusk.* prepared statements");
        return true;
    }
    rt->ext = RT_EXT_LOCAL;
    ext_simple(c, '1');
    return true;
}

bool proxy_route_message(px_client *c, px_fwd *f, const uint8_t *msg, size_t len)
{
    router_classifier *cls = atomic_load(&route_cls);
    if (!cls || len < 5)
        return false;
    if (!c->rt && (!c->pool || !px_route_db_find(c->pool->dbname)))
        return false; /* not a routed database: no per-client state, nothing to do */
    px_rclient *rt = rclient(c);
    if (!rt)
        return false;
    const char *q = NULL;
    size_t qn = 0;
    uint8_t type = msg[0];
    if (type == 'Q') {
        q = (const char *)msg + 5;
        qn = strnlen(q, len - 5);
    } else if (type == 'P') {
        const char *name = (const char *)msg + 5;
        size_t nl = strnlen(name, len - 5);
        if (nl + 1 >= len - 5)
            return false;
        q = name + nl + 1;
        qn = strnlen(q, len - 5 - nl - 1);
    } else {
        /* Bind of a named statement opening a transaction: its Parse text decides */
        if (c->server || !c->stmts)
            return false;
        const char *portal = (const char *)msg + 5;
        size_t pl = strnlen(portal, len - 5);
        if (pl + 1 >= len - 5)
            return false;
        const char *sname = portal + pl + 1;
        if (!*sname)
            return false;
        px_stmt *st = px_cstmts_get(c->stmts, sname);
        if (!st)
            return false;
        q = st->query;
        qn = st->qlen;
    }
    router_class *k = &rt->cls;
    router_classify_ex(cls, q, qn, client_flags(c, rt), k);
    rt->cls_valid = !c->server; /* the first message of a transaction: pick reads it */
    rt->cls_hash = text_hash((const uint8_t *)q, qn);
    bool idle_server = !c->server || c->server->qlen == 0;
    if (type == 'Q' && k->tusk_set != ROUTER_TUSK_NONE && idle_server) {
        answer_tusk_set(c, rt, k);
        rt->cls_valid = false;
        return true;
    }
    if (type == 'Q' && idle_server && is_show_commit_lsn(q, qn)) {
        answer_show_lsn(c, rt);
        rt->cls_valid = false;
        return true;
    }
    if (type == 'P' && (k->tusk_set != ROUTER_TUSK_NONE || is_show_commit_lsn(q, qn))) {
        rt->cls_valid = false; /* tusk_set NONE here: SHOW tusk.commit_lsn */
        return ext_parse(c, rt, f, k, idle_server, msg, len);
    }
    rt->ext = RT_EXT_NONE; /* this message goes to a server: so does the rest of the batch */
    if (k->default_read_only == ROUTER_SETTING_ON)
        rt->session_ro = true;
    else if (k->default_read_only == ROUTER_SETTING_OFF)
        rt->session_ro = false;
    if (k->reset_all)
        sets_clear(rt);
    else if (k->sets_session_state)
        sets_note(rt, k, q, qn);
    /* undoing one kind of state (UNLISTEN *) keeps the pins of the others (a temp table) */
    rt->pins = (uint16_t)((rt->pins & ~k->unpins) | k->pins);
    if (!k->replica_safe || (rt->db && write_set_has(rt->db, rt->cls_hash)))
        rt->txn_wrote = true;
    return false;
}

/* ------------------------------------------------------------------------------------------ */
/* the decision                                                                                */
/* ------------------------------------------------------------------------------------------ */

/* is some replica up (only behind the floor), so that waiting may help? */
static bool replica_may_catch_up(router_topology *topo, int primary)
{
    int64_t now = router_now_ms();
    for (int i = 0; i < router_topology_count(topo); i++) {
        router_node *n = router_topology_node(topo, i);
        if (i == primary || atomic_load(&n->role) != ROUTER_ROLE_REPLICA ||
            atomic_load(&n->state) != ROUTER_NODE_UP || atomic_load(&n->admin_banned))
            continue;
        int64_t b = atomic_load(&n->banned_until_ms);
        if (!b || b <= now)
            return true;
    }
    return false;
}

static int take(px_rclient *rt, router_topology *topo, int node)
{
    router_node *n = router_topology_node(topo, node);
    if (n) {
        atomic_fetch_add(&n->outstanding, 1);
        rt->out_node = node;
        rt->out_topo = topo;
    }
    return node;
}

static int to_primary(px_rclient *rt, router_topology *topo, int primary, atomic_uint_fast64_t *why)
{
    wait_stop(rt);
    if (why)
        atomic_fetch_add(why, 1);
    return take(rt, topo, primary);
}

static void retry_forget(px_rclient *rt)
{
    rt->retry_len = 0;
    rt->retry_open = false;
    rt->retry_ext = false;
}

/* Keeps what the client sends to a replica for an autocommit statement, so that it can run
 * again on the primary when the replica refuses it (25006) or dies before answering: a whole
 * simple Query, or an extended batch of unnamed Parse, Bind, Describe, Execute and Flush up to
 * its Sync. A named Parse or a Close changes the client's statement names, so a batch with one
 * is not kept (running it twice would not be the same); nor is anything streamed or larger
 * than RT_RETRY_MAX. */
void proxy_route_sent(px_client *c, const uint8_t *msg, size_t take, size_t total)
{
    px_rclient *rt = c->rt;
    if (!rt || !rt->retry_open)
        return;
    uint8_t type = msg[0];
    bool ok = take == total && total >= 5 && rt->retry_len + total <= RT_RETRY_MAX;
    switch (type) {
    case 'Q':
        ok = ok && rt->retry_len == 0;
        break;
    case 'P':
        ok = ok && total > 5 && msg[5] == '\0'; /* the unnamed statement */
        break;
    case 'B':
    case 'D':
    case 'E':
    case 'H':
    case 'S':
        break;
    default:
        ok = false;
    }
    if (ok && rt->retry_cap < rt->retry_len + total) {
        uint32_t cap = rt->retry_len + (uint32_t)total;
        cap = cap < 256 ? 256 : cap;
        uint8_t *nb = realloc(rt->retry_msg, cap);
        ok = nb != NULL;
        if (nb) {
            rt->retry_msg = nb;
            rt->retry_cap = cap;
        }
    }
    if (!ok) {
        retry_forget(rt);
        return;
    }
    memcpy(rt->retry_msg + rt->retry_len, msg, total);
    rt->retry_len += (uint32_t)total;
    if (type == 'Q' || type == 'S') {
        rt->retry_open = false;
        rt->retry_ext = type == 'S';
    }
}

void proxy_route_sent_none(px_client *c)
{
    if (c->rt && c->rt->retry_open)
        retry_forget(c->rt);
}

static int to_replica(px_rclient *rt, router_topology *topo, int r)
{
    px_route_stats *st = &rt->db->pub.stats;
    if (rt->wait_deadline_ms) {
        atomic_fetch_add(&st->ryw_waits, 1);
        atomic_fetch_add(&st->ryw_wait_us, (uint64_t)(router_now_ms() - rt->wait_start_ms) * 1000);
    }
    wait_stop(rt);
    atomic_fetch_add(&st->reads_replica, 1);
    router_node *n = router_topology_node(topo, r);
    if (n)
        atomic_fetch_add(&n->reads_routed, 1);
    rt->txn_wrote = false;
    return take(rt, topo, r);
}

static int pick(px_rclient *rt, const uint8_t *msg, size_t len);

/* primary_reads = off: a read no replica can serve now waits for one (caught up, back up,
 * under the lag limits) as a client waits for a pool, up to query_wait_timeout, and is then
 * closed the way pgbouncer closes a client whose wait timed out. Never the primary. */
static int wait_for_replica(px_rclient *rt, router_topology *topo)
{
    px_client *c = rt->c;
    px_route_stats *st = &rt->db->pub.stats;
    int64_t now = router_now_ms();
    double limit = c->io.w->cfg->query_wait_timeout;
    if (!rt->wait_deadline_ms) {
        rt->wait_start_ms = now;
        rt->wait_deadline_ms = limit > 0 ? now + (int64_t)(limit * 1000) : INT64_MAX;
        atomic_fetch_add(&route_waiting, 1);
        /* fast polling for a short while; the monitors' wake-ups and a slower poll after */
        int64_t fast = now + 1000;
        router_topology_want_lsn(topo, rt->floor,
                                 fast < rt->wait_deadline_ms ? fast : rt->wait_deadline_ms);
        rt->wait_timer.repeat = 0.01; /* long waits poll slower */
        ev_timer_again(c->io.w->loop, &rt->wait_timer);
        rt->timer_on = true;
        return -1;
    }
    if (now < rt->wait_deadline_ms)
        return -1;
    wait_stop(rt);
    atomic_fetch_add(&st->ryw_wait_timeouts, 1);
    px_client_fail(c, "08P01",
                   "query_wait_timeout: no replica could serve the read within %g s "
                   "(primary_reads = off)",
                   limit);
    return -1;
}

int proxy_route_pick(const px_client *cc, const uint8_t *msg, size_t len)
{
    px_rclient *rt = cc->rt;
    if (!rt)
        return 0;
    retry_forget(rt);
    int node = pick(rt, msg, len);
    if (node >= 0 && rt->out_node == node && rt->out_topo) {
        router_node *n = router_topology_node(rt->out_topo, node);
        /* from here proxy_route_sent keeps what the client sends */
        rt->retry_open = n && atomic_load(&n->role) == ROUTER_ROLE_REPLICA &&
                         rt->c->txn_status != 'T' && rt->c->txn_status != 'E';
    }
    return node;
}

static int pick(px_rclient *rt, const uint8_t *msg, size_t len)
{
    (void)msg;
    (void)len;
    if (!rt->db)
        return 0;
    px_client *c = rt->c;
    rt_db *rd = rt->db;
    router_topology *topo = atomic_load(&rd->cur);
    if (!topo || c->pool->db->n_nodes < 2)
        return 0;
    release_outstanding(rt);
    px_route_stats *st = &rd->pub.stats;
    int primary = router_topology_primary(topo);
    if (primary < 0 || primary >= c->pool->db->n_nodes)
        primary = 0;
    bool valid = rt->cls_valid;
    rt->cls_valid = false;
    if (rt->force_primary) {
        rt->force_primary = false;
        return to_primary(rt, topo, primary, &st->writes);
    }
    const router_class *k = &rt->cls;
    if (c->pool->mode == PM_SESSION) {
        /* one server for the whole session: a replica only when asked for */
        int r = rt->route == ROUTER_OVERRIDE_REPLICA ? router_topology_pick_replica(topo, 0) : -1;
        if (r >= 0)
            return to_replica(rt, topo, r);
        return to_primary(rt, topo, primary, NULL); /* not a per-statement decision */
    }
    if (!valid) /* a message the router did not read (FunctionCall, huge Parse) */
        return to_primary(rt, topo, primary, &st->writes);
    int ov = k->override != ROUTER_OVERRIDE_NONE ? (int)k->override : rt->route;
    if (rt->pins)
        return to_primary(rt, topo, primary, &st->reads_primary_pinned);
    if (ov == ROUTER_OVERRIDE_PRIMARY)
        return to_primary(rt, topo, primary, &st->reads_primary_override);
    if (ov == ROUTER_OVERRIDE_REPLICA) {
        int r = router_topology_pick_replica(topo, 0);
        if (r >= 0)
            return to_replica(rt, topo, r);
        return to_primary(rt, topo, primary, &st->reads_primary_unhealthy);
    }
    if (!k->replica_safe || write_set_has(rd, rt->cls_hash))
        return to_primary(rt, topo, primary, &st->writes);
    int policy = atomic_load(&rd->primary_reads);
    int r = router_topology_pick_replica(topo, rt->floor);
    if (r >= 0 && policy == PX_PRIMARY_READS_ON && !rt->wait_deadline_ms) {
        /* the primary is one more candidate, weight 1 */
        router_node *pn = router_topology_node(topo, primary);
        router_node *rn = router_topology_node(topo, r);
        if (pn && rn &&
            atomic_load(&pn->outstanding) + 1.0 <
                (atomic_load(&rn->outstanding) + 1.0) / (rn->weight > 0 ? rn->weight : 1)) {
            rt->txn_wrote = false;
            return to_primary(rt, topo, primary, &st->reads_primary_policy);
        }
    }
    if (r >= 0)
        return to_replica(rt, topo, r);
    if (policy == PX_PRIMARY_READS_OFF)
        return wait_for_replica(rt, topo);
    /* no replica can serve it now: wait a little if one may catch up */
    int64_t now = router_now_ms();
    int wait_ms = atomic_load(&rd->replica_wait_ms);
    bool behind = rt->floor > 0 && router_topology_pick_replica(topo, 0) >= 0;
    if (!rt->wait_deadline_ms && wait_ms > 0 && (behind || replica_may_catch_up(topo, primary))) {
        rt->wait_start_ms = now;
        rt->wait_deadline_ms = now + wait_ms;
        atomic_fetch_add(&route_waiting, 1);
        router_topology_want_lsn(topo, rt->floor, rt->wait_deadline_ms);
        rt->wait_timer.repeat = 0.001;
        ev_timer_again(c->io.w->loop, &rt->wait_timer);
        rt->timer_on = true;
        return -1;
    }
    if (rt->wait_deadline_ms && now < rt->wait_deadline_ms)
        return -1;
    bool waited = rt->wait_deadline_ms != 0;
    if (waited)
        atomic_fetch_add(&st->ryw_wait_timeouts, 1);
    rt->txn_wrote = false;
    return to_primary(rt, topo, primary,
                      behind ? &st->reads_primary_floor : &st->reads_primary_unhealthy);
}

/* ------------------------------------------------------------------------------------------ */
/* after a transaction: commit LSN                                                             */
/* ------------------------------------------------------------------------------------------ */

static bool capture_wanted(px_server *s)
{
    px_client *c = s->client;
    if (!c || !c->rt || !c->rt->db || !c->rt->txn_wrote || s->pool->mode == PM_SESSION)
        return false;
    router_topology *topo = atomic_load(&c->rt->db->cur);
    if (!topo || s->pool->db->n_nodes < 2)
        return false;
    int primary = router_topology_primary(topo);
    return s->node_idx == (primary < 0 ? 0 : primary);
}

bool proxy_route_hold_ready(px_server *s)
{
    px_client *c = s->client;
    if (!c || s->pipe_n || c->io.pass_left || px_conn_backlogged(&s->io) || c->close_after_txn ||
        s->io.w->shutting_down || !capture_wanted(s))
        return false;
    s->rt_hold_ready = true;
    return true;
}

/* send the held ReadyForQuery (with tusk.commit_lsn first when known) */
static void release_ready(px_server *s, bool with_lsn)
{
    px_client *c = s->client;
    s->rt_hold_ready = false;
    if (!c || c->io.closed)
        return;
    pktbuf *b = &s->io.w->tmp;
    pktbuf_reset(b);
    if (with_lsn) {
        char lsn[32];
        router_format_lsn(s->rt_lsn, lsn);
        pkt_param_status(b, "tusk.commit_lsn", lsn);
    }
    pkt_ready(b, 'I');
    if (b->failed || !px_conn_append(&c->io, b->data, b->len) || !px_conn_flush(&c->io))
        px_client_close(c, "write error");
}

/* put the Query kept for a re-run back first in the client's input; its next pick is the
 * primary. There it may write (a replica refused it with 25006, or died before it could), so
 * its commit LSN is captured as the client's floor, whatever the write set had room to
 * remember: a read after it must not miss what it wrote. */
static void requeue(px_client *c, px_rclient *rt)
{
    rt->force_primary = true;
    rt->txn_wrote = true;
    size_t old = c->io.rlen;
    uint8_t *buf = malloc(rt->retry_len + old);
    if (!buf) {
        px_client_fail(c, "53200", "out of memory");
        return;
    }
    memcpy(buf, rt->retry_msg, rt->retry_len);
    if (old)
        memcpy(buf + rt->retry_len, c->io.rbuf, old);
    bool ok = px_conn_keep(&c->io, buf, rt->retry_len + old);
    free(buf);
    retry_forget(rt);
    if (!ok)
        px_client_fail(c, "53200", "out of memory");
}

bool proxy_route_pool_failed(px_client *c, px_pool *p)
{
    px_rclient *rt = c->rt;
    if (!rt || !rt->db || c->io.closed || c->server || p->mode == PM_SESSION || p == c->pool ||
        c->txn_status != 'I')
        return false;
    router_topology *topo = atomic_load(&rt->db->cur);
    int primary = topo ? router_topology_primary(topo) : 0;
    if (p->node_idx == (primary < 0 ? 0 : primary))
        return false;
    release_outstanding(rt);
    rt->force_primary = true;
    rt->cls_valid = true; /* the verdict of the buffered message still holds */
    px_pool_client_set_state(c, CL_IDLE, c->pool);
    px_conn_schedule(&c->io);
    return true;
}

/* what the server still owes is (the rest of) exactly the kept statement: one Query, or the
 * requests of one batch ending in its Sync (Parse entries the proxy added included) */
static bool owes_only_kept(const px_server *s, const px_rclient *rt)
{
    int queries = 0, syncs = 0;
    uint8_t last = 0;
    for (uint32_t i = 0; i < s->qlen; i++) {
        const px_exp *e = &s->q[(s->qhead + i) % s->qcap];
        if (e->flags & EXPF_SWITCH)
            break; /* the pipelined client's from here */
        if (e->kind == EXP_INTERNAL)
            continue;
        if (e->kind == EXP_CLOSE || e->kind == EXP_FAKE_CLOSE)
            return false;
        queries += e->kind == EXP_QUERY;
        syncs += e->kind == EXP_SYNC;
        last = e->kind;
    }
    return rt->retry_ext ? !queries && syncs == 1 && last == EXP_SYNC : queries == 1 && !syncs;
}

bool proxy_route_requeue(px_server *s)
{
    px_client *c = s->client;
    if (!c || c->io.closed || !c->rt || !c->rt->db || c->rt->retry_len == 0 || c->rt->retry_open ||
        s->rt_sent || s->pool->mode == PM_SESSION || c->io.pass_left || c->txn_status != 'I')
        return false;
    px_rclient *rt = c->rt;
    if (!owes_only_kept(s, rt))
        return false;
    router_topology *topo = atomic_load(&rt->db->cur);
    int primary = topo ? router_topology_primary(topo) : 0;
    if (s->node_idx == (primary < 0 ? 0 : primary))
        return false;
    release_outstanding(rt);
    s->rt_hold_ready = false;
    requeue(c, rt);
    return !c->io.closed;
}

/* the read c had sent behind another client's on a replica that is gone: it never started,
 * so it runs on the primary (the proxy kept it, proxy_route_sent) */
bool proxy_route_requeue_next(px_client *c)
{
    px_rclient *rt = c->rt;
    if (!rt || !rt->db || c->io.closed || rt->retry_len == 0 || rt->retry_open || rt->retry_ext ||
        c->io.pass_left || c->txn_status != 'I')
        return false;
    release_outstanding(rt);
    requeue(c, rt);
    return !c->io.closed;
}

/* pipeline_reads: may c's read go behind another client's on s, or another's behind c's? A
 * routed client's only on a replica (no commit LSN to capture) whose untracked session
 * settings are the client's (nothing to replay first) */
bool proxy_route_pipe_ok(const px_client *c, const px_server *s)
{
    const px_rclient *rt = c->rt;
    if (!rt || !rt->db)
        return true;
    if (rt->force_primary || !str_eq(s->rt_sets, rt->sets))
        return false;
    router_topology *topo = atomic_load(&rt->db->cur);
    router_node *n = topo ? router_topology_node(topo, s->node_idx) : NULL;
    return n && atomic_load(&n->role) == ROUTER_ROLE_REPLICA;
}

uint64_t proxy_route_text_hash(const px_client *c)
{
    return c->rt ? c->rt->cls_hash : 0;
}

bool proxy_txn_finished(px_server *s)
{
    px_client *c = s->client;
    if (!c || !c->rt)
        return true;
    px_rclient *rt = c->rt;
    release_outstanding(rt);
    s->rt_sent = false;
    sets_copy_to(s, rt); /* SETs the client ran here are on this server now */
    if (s->rt_retry) {
        /* the replica refused it before answering anything: run it on the primary */
        s->rt_retry = false;
        requeue(c, rt);
        return true;
    }
    retry_forget(rt);
    if (rt->retry_cap > RT_RETRY_KEEP) {
        /* an idle client keeps no large copy of its last statement */
        free(rt->retry_msg);
        rt->retry_msg = NULL;
        rt->retry_cap = 0;
    }
    bool held = s->rt_hold_ready;
    rt->txn_wrote = false;
    if (!held)
        return true;
    s->rt_lsn = 0;
    if (!px_server_internal_query(s, INTQ_LSN, "SELECT pg_current_wal_insert_lsn()")) {
        release_ready(s, false);
        return true;
    }
    return false;
}

void proxy_route_lsn_row(px_server *s, const uint8_t *body, size_t len)
{
    pkt_reader r;
    pkt_reader_init(&r, body, len);
    if (pkt_read_int16(&r) < 1)
        return;
    uint32_t l = pkt_read_int32(&r);
    if (l == 0xffffffffu || l >= 32)
        return;
    const uint8_t *v = pkt_read_bytes(&r, l);
    if (!v || r.bad)
        return;
    char txt[32];
    memcpy(txt, v, l);
    txt[l] = '\0';
    uint64_t lsn;
    if (router_parse_lsn(txt, &lsn))
        s->rt_lsn = lsn;
}

void proxy_route_lsn_done(px_server *s, bool failed)
{
    px_client *c = s->client;
    bool ok = !failed && s->rt_lsn > 0;
    if (c && c->rt && ok) {
        if (s->rt_lsn > c->rt->floor)
            c->rt->floor = s->rt_lsn;
        if (c->rt->db)
            atomic_fetch_add(&c->rt->db->pub.stats.lsn_captures, 1);
    }
    release_ready(s, ok);
    if (s->io.closed)
        return;
    if (s->qlen == 0 && s->txn_status == 'I')
        px_pool_release(s);
}

bool proxy_route_forward(px_server *s, px_fwd *f, uint8_t type, const uint8_t *msg, size_t len)
{
    px_client *c = s->client;
    /* while a replica may still refuse the kept statement with 25006, what would have to be
     * taken back waits: a simple Query's RowDescription, an extended batch's ParseComplete,
     * BindComplete and Describe answers (the first row, CommandComplete, an error other than
     * 25006 or ReadyForQuery sends them on) */
    bool hold =
        msg && !s->rt_sent && c && c->rt && c->rt->retry_len && !c->rt->retry_open &&
        (c->rt->retry_ext ? type == '1' || type == '2' || type == 't' || type == 'T' || type == 'n'
                          : type == 'T');
    if (hold) {
        if (!s->rt_held_t && !(s->rt_held_t = calloc(1, sizeof(pktbuf))))
            return false;
        pkt_put_bytes(s->rt_held_t, msg, len);
        if (!s->rt_held_t->failed)
            return true;
        pktbuf_reset(s->rt_held_t);
        return false;
    }
    if (s->rt_held_t && s->rt_held_t->len) {
        px_fwd_emit(f, s->rt_held_t->data, s->rt_held_t->len);
        pktbuf_reset(s->rt_held_t);
        s->rt_sent = true;
    }
    return false;
}

bool proxy_route_server_error(px_server *s, const uint8_t *body, size_t len)
{
    px_client *c = s->client;
    if (!c || !c->rt || !c->rt->db)
        return false;
    const char *code = pkt_error_field(body, len, 'C');
    if (!code || strcmp(code, "25006") != 0)
        return false;
    px_rclient *rt = c->rt;
    router_topology *topo = atomic_load(&rt->db->cur);
    int primary = topo ? router_topology_primary(topo) : 0;
    if (s->node_idx == (primary < 0 ? 0 : primary))
        return false;
    /* a replica refused it: the next time it goes to the primary directly. The failing
     * statement is the one at the head of the queue; the client may have sent others since,
     * so rt->cls_hash may name another */
    uint64_t failed = s->qlen ? s->q[s->qhead].text_hash : 0;
    if (failed)
        write_set_add(rt->db, failed);
    if (rt->retry_len == 0 || rt->retry_open || s->rt_sent || !owes_only_kept(s, rt) ||
        s->pool->mode == PM_SESSION || c->close_after_txn || s->io.w->shutting_down ||
        c->io.pass_left)
        return false;
    s->rt_retry = true;
    if (s->rt_held_t)
        pktbuf_reset(s->rt_held_t); /* the re-run sends its own answers */
    atomic_fetch_add(&rt->db->pub.stats.retries_25006, 1);
    return true;
}
