/*
 * Server side of the protocol: opening a connection to a PostgreSQL node, logging in
 * (TLS, startup, trust / cleartext / md5 / SCRAM-SHA-256 with the password or with a ClientKey
 * learnt from the client's own SCRAM login), and the response half of the data path.
 *
 * Every request forwarded to a server is recorded in its expected-response queue (a ring of
 * px_exp). Walking the responses against that queue tells, for each message, whether the
 * client asked for it (forward), the proxy did (swallow: injected Parse, LRU Close, SET of
 * session parameters, reset/check/auth queries), or whether the proxy must answer something
 * itself at that point (fake ParseComplete/CloseComplete). An ErrorResponse makes the server
 * skip to the next Sync, and the queue skips with it. ReadyForQuery with an empty queue is a
 * transaction boundary: in transaction mode the server goes back to the pool there.
 */
#include "proxy/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { SL_CONNECT = 0, SL_SSLREQ, SL_TLS, SL_AUTH };

struct px_slogin {
    uint8_t phase;
    bool scram_started;
    auth_scram_client scram;
    pktbuf params; /* ParameterStatus messages of untracked parameters (pool welcome) */
};

static void server_read_cb(struct ev_loop *loop, ev_io *io, int revents);
static void server_connect_cb(struct ev_loop *loop, ev_io *io, int revents);
static size_t login_pass(px_server *s, const uint8_t *data, size_t len);
static size_t data_pass(px_server *s, const uint8_t *data, size_t len);
static void server_lost(px_server *s, const char *why);
static void login_failed(px_server *s, const uint8_t *err, size_t errlen, const char *fmt, ...)
    TUSK_PRINTF(4, 5);
static bool send_startup(px_server *s);
static void tls_failed(px_server *s);

/* ------------------------------------------------------------------------------------------ */
/* connecting                                                                                  */
/* ------------------------------------------------------------------------------------------ */

/* open a new server connection for the pool */
bool px_server_connect(px_pool *p)
{
    px_worker *w = p->w;
    const px_node *node = &p->db->nodes[p->node_idx < p->db->n_nodes ? p->node_idx : 0];
    struct sockaddr_storage addr;
    socklen_t alen;
    char err[256];
    p->last_connect_attempt = px_now(w);
    if (!px_node_addr(node, &addr, &alen, err, sizeof(err))) {
        px_pool_slot_release(p);
        pktbuf *b = &w->tmp;
        pktbuf_reset(b);
        pkt_error(b, 'E', "FATAL", "08001", NULL, "%s", err);
        px_pool_server_gone(p, b->data, b->len);
        return false;
    }
    int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        px_pool_slot_release(p);
        pktbuf *b = &w->tmp;
        pktbuf_reset(b);
        pkt_error(b, 'E', "FATAL", "08001", NULL, "could not create socket: %s", strerror(errno));
        px_pool_server_gone(p, b->data, b->len);
        return false;
    }
    if (addr.ss_family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (w->cfg->tcp_keepalive)
            setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    }
    px_server *s = calloc(1, sizeof(*s));
    if (s)
        s->login = calloc(1, sizeof(*s->login));
    if (!s || !s->login) {
        free(s);
        close(fd);
        px_pool_slot_release(p);
        return false;
    }
    pktbuf_init(&s->login->params, NULL, 0);
    px_conn_init(&s->io, w, fd, PX_CONN_SERVER);
    s->io.is_unix = addr.ss_family == AF_UNIX;
    ev_io_init(&s->io.rio, server_read_cb, fd, EV_READ);
    ev_io_init(&s->io.wio, server_connect_cb, fd, EV_WRITE);
    s->id = ++w->next_id;
    s->pool = p;
    s->node_idx = p->node_idx;
    s->txn_status = 'I';
    s->connect_time = s->last_used = px_now(w);
    px_list_init(&s->node);
    s->state = 0;
    px_pool_server_set_state(s, SV_CONNECTING);
    w->n_servers++;
    int rc = connect(fd, (struct sockaddr *)&addr, alen);
    if (rc != 0 && errno != EINPROGRESS) {
        login_failed(s, NULL, 0, "could not connect to server %s:%d: %s", node->host, node->port,
                     strerror(errno));
        return false;
    }
    ev_io_start(w->loop, &s->io.wio);
    return true;
}

static void server_connect_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    px_server *s = (px_server *)container_of(io, px_conn, wio);
    px_worker *w = s->io.w;
    (void)revents;
    ev_io_stop(loop, io);
    if (s->login->phase == SL_TLS) {
        int r = px_tls_handshake(&s->io);
        if (r < 0)
            tls_failed(s);
        else if (r > 0 && !send_startup(s))
            login_failed(s, NULL, 0, "could not send the startup packet");
        px_worker_drain(w);
        return;
    }
    int err = 0;
    socklen_t el = sizeof(err);
    getsockopt(s->io.fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) {
        const px_node *node = &s->pool->db->nodes[s->node_idx];
        login_failed(s, NULL, 0, "could not connect to server %s:%d: %s", node->host, node->port,
                     strerror(err));
        px_worker_drain(w);
        return;
    }
    /* from now on the write watcher flushes output */
    ev_set_cb(&s->io.wio, px_conn_write_cb);
    px_pool_server_set_state(s, SV_LOGIN);
    ev_io_start(loop, &s->io.rio);
    px_config *cfg = w->cfg;
    if (cfg->server_tls && !s->io.is_unix) {
        pktbuf *b = &w->tmp;
        pktbuf_reset(b);
        pkt_put_int32(b, 8);
        pkt_put_int32(b, PX_SSL_REQUEST);
        s->login->phase = SL_SSLREQ;
        if (!px_conn_append(&s->io, b->data, b->len) || !px_conn_flush(&s->io))
            login_failed(s, NULL, 0, "could not send SSLRequest");
    } else if (!send_startup(s)) {
        login_failed(s, NULL, 0, "could not send the startup packet");
    }
    px_worker_drain(w);
}

static bool send_startup(px_server *s)
{
    px_pool *p = s->pool;
    const px_db *db = p->db;
    pktbuf *b = &s->io.w->tmp;
    pktbuf_reset(b);
    pkt_begin(b, 0);
    pkt_put_int32(b, PX_PROTO_V3);
    pkt_put_str(b, "user");
    pkt_put_str(b, p->user);
    pkt_put_str(b, "database");
    pkt_put_str(b, db->dbname && *db->dbname ? db->dbname : p->dbname);
    if (db->client_encoding) {
        pkt_put_str(b, "client_encoding");
        pkt_put_str(b, db->client_encoding);
    }
    if (db->datestyle) {
        pkt_put_str(b, "datestyle");
        pkt_put_str(b, db->datestyle);
    }
    if (db->timezone) {
        pkt_put_str(b, "timezone");
        pkt_put_str(b, db->timezone);
    }
    if (db->application_name) {
        pkt_put_str(b, "application_name");
        pkt_put_str(b, db->application_name);
    }
    pkt_put_byte(b, 0);
    pkt_end(b);
    s->login->phase = SL_AUTH;
    return !b->failed && px_conn_append(&s->io, b->data, b->len) && px_conn_flush(&s->io);
}

/* ------------------------------------------------------------------------------------------ */
/* closing                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static void exp_pop(px_server *s);

/* close a server connection; its client (if any) must have been told by the caller */
void px_server_close(px_server *s, const char *reason)
{
    if (s->io.closed)
        return;
    px_worker *w = s->io.w;
    px_pool *p = s->pool;
    bool was_login = s->state == SV_CONNECTING || s->state == SV_LOGIN;
    log_debug("server %s/%s node %d closed: %s", p->dbname, p->user, s->node_idx, reason);
    /* pipelined clients: the requests of each, from its switch on, fail like the current
     * one's (one that has sent nothing yet has none) */
    int n_line = s->pipe_n, line_out[PX_PIPE_DEPTH_MAX] = {0}, line_ready[PX_PIPE_DEPTH_MAX] = {0};
    px_client *line[PX_PIPE_DEPTH_MAX];
    if (n_line) {
        int k = -1;
        for (uint32_t i = 0; i < s->qlen; i++) {
            px_exp *e = &s->q[(s->qhead + i) % s->qcap];
            k += (e->flags & EXPF_SWITCH) != 0;
            if (k < 0 || k >= n_line || e->kind == EXP_INTERNAL)
                continue;
            line_out[k]++;
            if (e->kind == EXP_SYNC || e->kind == EXP_QUERY)
                line_ready[k]++;
        }
        memcpy(line, s->pipe_line, sizeof(line[0]) * (size_t)n_line);
        for (int i = 0; i < n_line; i++)
            if (line[i])
                px_pool_pipe_drop(s, line[i]);
        s->pipe_n = 0;
    }
    if (s->client) {
        px_client *c = s->client;
        s->client = NULL;
        c->server = NULL;
    }
    px_pool_server_set_state(s, SV_CLOSED);
    while (s->qlen)
        exp_pop(s);
    free(s->q);
    s->q = NULL;
    px_sstmts_free(&s->stmts, &w->stmts);
    for (int i = 0; i < VAR_COUNT; i++)
        px_var_set(&w->intern, &s->vars[i], NULL);
    if (s->login) {
        auth_scram_client_clear(&s->login->scram);
        pktbuf_free(&s->login->params);
        free(s->login);
        s->login = NULL;
    }
    if (s->fatal_msg) {
        pktbuf_free(s->fatal_msg);
        free(s->fatal_msg);
        s->fatal_msg = NULL;
    }
    if (s->authq_result) {
        pktbuf_free(s->authq_result);
        free(s->authq_result);
        s->authq_result = NULL;
    }
    px_conn_shutdown(&s->io);
    w->n_servers--;
    px_pool_slot_release(p);
    s->io.zombie_next = w->zombies;
    w->zombies = &s->io;
    if (!was_login)
        px_pool_server_gone(p, NULL, 0);
    for (int i = 0; i < n_line; i++) {
        if (!line[i])
            continue;
        if (line_out[i] > 0 && proxy_route_requeue_next(line[i]))
            line_out[i] = line_ready[i] = 0; /* it runs again on the primary */
        px_client_server_lost(line[i], line_out[i], line_ready[i], NULL, 0);
    }
}

/* free a closed server (end of the loop pass) */
void px_server_free(px_server *s)
{
    if (s->rt_held_t) {
        pktbuf_free(s->rt_held_t);
        free(s->rt_held_t);
    }
    free(s->rt_sets);
    free(s->rt_set_names);
    free(s);
}

/* a login failed: tell the pool (its waiting clients get the error), close */
static void login_failed(px_server *s, const uint8_t *err, size_t errlen, const char *fmt, ...)
{
    if (s->io.closed)
        return;
    px_pool *p = s->pool;
    px_worker *w = s->io.w;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pktbuf eb;
    pktbuf_init(&eb, NULL, 0);
    if (err && errlen) {
        pkt_put_bytes(&eb, err, errlen);
        const char *m = pkt_error_field(err + 5, errlen - 5, 'M');
        log_warning("server login %s/%s failed: %s", p->dbname, p->user, m ? m : msg);
    } else {
        pkt_error(&eb, 'E', "FATAL", "08006", NULL, "%s", msg);
        log_warning("server login %s/%s failed: %s", p->dbname, p->user, msg);
    }
    px_server_close(s, msg);
    (void)w;
    px_pool_server_gone(p, eb.data, eb.len);
    pktbuf_free(&eb);
}

/* the connection broke: tell the client (if any) and close */
static void server_lost(px_server *s, const char *why)
{
    if (s->io.closed)
        return;
    if (s->state == SV_CONNECTING || s->state == SV_LOGIN) {
        if (s->fatal_msg)
            login_failed(s, s->fatal_msg->data, s->fatal_msg->len, "%s", why);
        else
            login_failed(s, NULL, 0, "server closed the connection during login: %s", why);
        return;
    }
    px_client *c = s->client;
    int outstanding = 0, ready = 0;
    for (uint32_t i = 0; i < s->qlen; i++) {
        px_exp *e = &s->q[(s->qhead + i) % s->qcap];
        if (e->flags & EXPF_SWITCH)
            break; /* the pipelined client's: px_server_close tells it */
        if (e->kind == EXP_INTERNAL)
            continue;
        outstanding++;
        if (e->kind == EXP_SYNC || e->kind == EXP_QUERY)
            ready++;
    }
    pktbuf *fm = s->fatal_msg;
    s->fatal_msg = NULL;
    bool again = c && ready == 1 && proxy_route_requeue(s);
    if (c) {
        s->client = NULL;
        c->server = NULL;
    }
    log_info("server connection %s/%s (pid %u) lost: %s", s->pool->dbname, s->pool->user,
             s->backend_pid, why);
    px_server_close(s, why);
    if (c && again) {
        /* the statement runs again elsewhere: the client never learns of the loss */
        px_pool_client_set_state(c, CL_IDLE, c->pool);
        if (c->io.read_paused)
            px_conn_resume(&c->io);
        else
            px_conn_schedule(&c->io);
    } else if (c) {
        px_client_server_lost(c, outstanding, ready, fm ? fm->data : NULL, fm ? fm->len : 0);
    }
    if (fm) {
        pktbuf_free(fm);
        free(fm);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* expected responses                                                                          */
/* ------------------------------------------------------------------------------------------ */

/* queue an expected response (takes a reference on stmt) */
bool px_server_expect(px_server *s, uint8_t kind, uint8_t flags, px_stmt *stmt)
{
    if (s->qlen == s->qcap) {
        uint32_t nc = s->qcap ? s->qcap * 2 : 16;
        px_exp *nq = malloc(sizeof(*nq) * nc);
        if (!nq)
            return false;
        for (uint32_t i = 0; i < s->qlen; i++)
            nq[i] = s->q[(s->qhead + i) % s->qcap];
        free(s->q);
        s->q = nq;
        s->qcap = nc;
        s->qhead = 0;
    }
    px_exp *e = &s->q[(s->qhead + s->qlen) % s->qcap];
    e->kind = kind;
    e->flags = flags;
    e->purpose = 0;
    e->stmt = stmt;
    e->text_hash = 0;
    if (stmt)
        stmt->refs++;
    s->qlen++;
    s->ready_seen = false;
    return true;
}

static inline px_exp *exp_head(px_server *s)
{
    return s->qlen ? &s->q[s->qhead] : NULL;
}

static void exp_pop(px_server *s)
{
    px_exp *e = &s->q[s->qhead];
    if (e->stmt)
        px_stmt_unref(&s->io.w->stmts, e->stmt);
    e->stmt = NULL;
    s->qhead = (s->qhead + 1) % s->qcap;
    s->qlen--;
}

/* a request the server skipped (after an error): undo what we assumed it would do */
static void exp_skipped(px_server *s, px_exp *e)
{
    px_worker *w = s->io.w;
    if (e->kind == EXP_PARSE && e->stmt)
        px_sstmts_del(&s->stmts, e->stmt, &w->stmts);
    else if (e->kind == EXP_CLOSE && e->stmt && !px_sstmts_has(&s->stmts, e->stmt, false))
        px_sstmts_add(&s->stmts, e->stmt);
}

/* answer ParseComplete / CloseComplete ourselves for fake entries now at the head */
void px_server_emit_fakes(px_server *s, px_fwd *f)
{
    px_exp *e;
    while ((e = exp_head(s)) && (e->kind == EXP_FAKE_PARSE || e->kind == EXP_FAKE_CLOSE)) {
        uint8_t msg[5] = {e->kind == EXP_FAKE_PARSE ? '1' : '3', 0, 0, 0, 4};
        if (f)
            px_fwd_emit(f, msg, 5);
        else if (s->client)
            px_conn_append(&s->client->io, msg, 5);
        exp_pop(s);
    }
}

/* send the proxy's own simple query; its responses are swallowed */
bool px_server_internal_query(px_server *s, int purpose, const char *sql)
{
    pktbuf *b = &s->io.w->tmp;
    pktbuf_reset(b);
    pkt_query(b, sql);
    if (b->failed || !px_server_expect(s, EXP_INTERNAL, EXPF_SWALLOW, NULL))
        return false;
    s->q[(s->qhead + s->qlen - 1) % s->qcap].purpose = (uint8_t)purpose;
    return px_conn_append(&s->io, b->data, b->len) && px_conn_flush(&s->io);
}

/* bring the server's session parameters in line with the client's (SET, swallowed) */
bool px_server_sync_vars(px_server *s, px_client *c)
{
    px_worker *w = s->io.w;
    bool differ = false;
    for (int i = 0; i < VAR_COUNT; i++)
        if (c->vars[i] && c->vars[i] != s->vars[i])
            differ = true;
    if (!differ)
        return true;
    pktbuf sql;
    pktbuf_init(&sql, NULL, 0);
    uint8_t mask = 0;
    for (int i = 0; i < VAR_COUNT; i++)
        if (c->vars[i] && c->vars[i] != s->vars[i])
            mask |= (uint8_t)(1u << i);
    px_var_sync_sql(c->vars, s->vars, &sql);
    pkt_put_byte(&sql, 0);
    bool ok = !sql.failed && px_server_internal_query(s, INTQ_SETVARS, (char *)sql.data);
    pktbuf_free(&sql);
    if (!ok)
        return false;
    /* assume success now (parameters the server does not report, like search_path on older
     * servers, would otherwise be set again for every transaction) */
    for (int i = 0; i < VAR_COUNT; i++)
        if (mask & (1u << i))
            px_var_set(&w->intern, &s->vars[i], c->vars[i]);
    s->setvars_mask = mask;
    return true;
}

/* Parse/Bind/Execute/Sync of auth_query for user */
bool px_server_auth_query(px_server *s, const char *query, const char *user)
{
    pktbuf *b = &s->io.w->tmp;
    pktbuf_reset(b);
    pkt_parse(b, "", query, strlen(query), 0, NULL);
    pkt_begin(b, 'B');
    pkt_put_str(b, "");
    pkt_put_str(b, "");
    pkt_put_int16(b, 0);
    pkt_put_int16(b, 1);
    pkt_put_int32(b, (uint32_t)strlen(user));
    pkt_put_bytes(b, user, strlen(user));
    pkt_put_int16(b, 0);
    pkt_end(b);
    pkt_begin(b, 'E');
    pkt_put_str(b, "");
    pkt_put_int32(b, 0);
    pkt_end(b);
    pkt_simple(b, 'S');
    if (b->failed || !px_server_expect(s, EXP_INTERNAL, EXPF_SWALLOW, NULL))
        return false;
    s->q[(s->qhead + s->qlen - 1) % s->qcap].purpose = INTQ_AUTH;
    s->authq_found = false;
    s->authq_null = false;
    if (!s->authq_result) {
        s->authq_result = calloc(1, sizeof(pktbuf));
        if (!s->authq_result)
            return false;
    }
    pktbuf_reset(s->authq_result);
    return px_conn_append(&s->io, b->data, b->len) && px_conn_flush(&s->io);
}

/* ------------------------------------------------------------------------------------------ */
/* reading                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* the handshake failed: say why when the certificate was refused (server_tls_sslmode) */
static void tls_failed(px_server *s)
{
    long v = SSL_get_verify_result(s->io.ssl);
    if (v != X509_V_OK)
        login_failed(s, NULL, 0, "TLS handshake with the server failed: certificate: %s",
                     X509_verify_cert_error_string(v));
    else
        login_failed(s, NULL, 0, "TLS handshake with the server failed");
}

static void server_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    px_server *s = (px_server *)container_of(io, px_conn, rio);
    px_worker *w = s->io.w;
    (void)loop;
    w->io_events++;
    (void)revents;
    if (s->io.closed)
        return;
    if (s->login && s->login->phase == SL_TLS) {
        int r = px_tls_handshake(&s->io);
        if (r < 0)
            tls_failed(s);
        else if (r > 0 && !send_startup(s))
            login_failed(s, NULL, 0, "could not send the startup packet");
        px_worker_drain(w);
        return;
    }
    uint8_t *buf;
    size_t cap;
    bool own = s->io.rbuf != NULL;
    if (own) {
        if (s->io.rlen == s->io.rcap) {
            px_conn_pause(&s->io);
            px_worker_drain(w);
            return;
        }
        buf = s->io.rbuf + s->io.rlen;
        cap = s->io.rcap - s->io.rlen;
    } else {
        buf = w->scratch;
        cap = w->scratch_cap;
    }
    ssize_t n = px_conn_recv(&s->io, buf, cap);
    if (n == -2) {
        px_worker_drain(w);
        return;
    }
    if (n <= 0) {
        server_lost(s, n == 0 ? "server closed the connection" : "read error");
        px_worker_drain(w);
        return;
    }
    const uint8_t *data;
    size_t len;
    if (own) {
        s->io.rlen += (uint32_t)n;
        data = s->io.rbuf;
        len = s->io.rlen;
    } else {
        data = buf;
        len = (size_t)n;
    }
    size_t used = s->login ? login_pass(s, data, len) : data_pass(s, data, len);
    if (!s->io.closed && !px_conn_keep(&s->io, data + used, len - used))
        server_lost(s, "out of memory");
    if (s->io.ssl && !s->io.closed && SSL_pending(s->io.ssl) > 0)
        ev_feed_event(w->loop, &s->io.rio, EV_READ);
    px_worker_drain(w);
}

/* process buffered input (run queue, after a pause) */
void px_server_run(px_server *s)
{
    if (s->io.closed || s->io.read_paused || s->io.rlen == 0)
        return;
    size_t used =
        s->login ? login_pass(s, s->io.rbuf, s->io.rlen) : data_pass(s, s->io.rbuf, s->io.rlen);
    if (!s->io.closed && !px_conn_keep(&s->io, s->io.rbuf + used, s->io.rlen - used))
        server_lost(s, "out of memory");
}

/* ------------------------------------------------------------------------------------------ */
/* login                                                                                       */
/* ------------------------------------------------------------------------------------------ */

/* the password or secret to log in to the server with; NULL if none is known */
static const char *server_secret(px_server *s, char *buf, size_t cap)
{
    px_pool *p = s->pool;
    px_config *cfg = p->cfg;
    const px_db *db = p->db;
    if (db->password && *db->password && (!db->user || strcmp(db->user, p->user) == 0))
        return db->password;
    if (cfg->users_file) {
        const char *pw = userlist_lookup(cfg->users_file, p->user);
        if (pw)
            return pw;
    }
    if (px_user_secret_get(p->user, buf, cap))
        return buf;
    return NULL;
}

static bool send_password_msg(px_server *s, const void *data, size_t len, bool with_nul)
{
    pktbuf *b = &s->io.w->tmp;
    pktbuf_reset(b);
    pkt_begin(b, 'p');
    pkt_put_bytes(b, data, len);
    if (with_nul)
        pkt_put_byte(b, 0);
    pkt_end(b);
    return !b->failed && px_conn_append(&s->io, b->data, b->len) && px_conn_flush(&s->io);
}

/* an AuthenticationXXX request from the server */
static bool handle_auth(px_server *s, const uint8_t *body, size_t len)
{
    px_slogin *lg = s->login;
    pkt_reader r;
    pkt_reader_init(&r, body, len);
    uint32_t code = pkt_read_int32(&r);
    if (r.bad) {
        login_failed(s, NULL, 0, "malformed authentication request from server");
        return false;
    }
    char secret_buf[1024];
    const char *user = s->pool->user;
    if (code == 0)
        return true; /* AuthenticationOk: parameters follow */
    const char *secret = server_secret(s, secret_buf, sizeof(secret_buf));
    bool is_md5 = secret && auth_is_md5_hash(secret);
    bool is_scram = secret && auth_is_scram_secret(secret);
    switch (code) {
    case 3: /* cleartext */
        if (!secret || is_md5 || is_scram) {
            login_failed(s, NULL, 0,
                         "server asks for a cleartext password for \"%s\" and none "
                         "is known (set password= or auth_file)",
                         user);
            return false;
        }
        return send_password_msg(s, secret, strlen(secret), true) ||
               (login_failed(s, NULL, 0, "write error"), false);
    case 5: { /* md5 */
        const uint8_t *salt = pkt_read_bytes(&r, 4);
        if (!salt) {
            login_failed(s, NULL, 0, "malformed md5 request from server");
            return false;
        }
        if (!secret || is_scram) {
            login_failed(s, NULL, 0, "server asks for an md5 password for \"%s\" and %s", user,
                         secret ? "only a SCRAM secret is known" : "none is known");
            return false;
        }
        char hash[36], out[36];
        if (is_md5)
            memcpy(hash, secret, 36);
        else
            auth_md5_hash(secret, user, hash);
        auth_md5_salted(hash, salt, out);
        return send_password_msg(s, out, 35, true) ||
               (login_failed(s, NULL, 0, "write error"), false);
    }
    case 10: { /* SASL: list of mechanisms */
        bool found = false;
        for (;;) {
            const char *m = pkt_read_str(&r);
            if (r.bad || !*m)
                break;
            if (strcmp(m, "SCRAM-SHA-256") == 0)
                found = true;
        }
        if (!found) {
            login_failed(s, NULL, 0, "server offers no SASL mechanism tusk supports");
            return false;
        }
        if (!secret || is_md5) {
            login_failed(s, NULL, 0, "server asks for SCRAM for \"%s\" and %s", user,
                         secret ? "only an md5 hash is known" : "no password is known");
            return false;
        }
        if (is_scram) {
            uint8_t ck[32], sk[32];
            auth_scram_secret sec;
            if (!px_scram_keys_get(user, ck, sk) || !auth_scram_parse_secret(secret, &sec)) {
                login_failed(s, NULL, 0,
                             "only a SCRAM secret is known for \"%s\": a client must "
                             "log in with SCRAM first",
                             user);
                return false;
            }
            auth_scram_client_init_keys(&lg->scram, ck, sec.server_key);
        } else {
            auth_scram_client_init_password(&lg->scram, secret);
        }
        char out[AUTH_SCRAM_MAX_MSG + 1];
        int n = auth_scram_client_first(&lg->scram, out, sizeof(out));
        if (n < 0) {
            login_failed(s, NULL, 0, "SCRAM: %s", lg->scram.error ? lg->scram.error : "failed");
            return false;
        }
        lg->scram_started = true;
        pktbuf *b = &s->io.w->tmp;
        pktbuf_reset(b);
        pkt_begin(b, 'p');
        pkt_put_str(b, "SCRAM-SHA-256");
        pkt_put_int32(b, (uint32_t)n);
        pkt_put_bytes(b, out, (size_t)n);
        pkt_end(b);
        if (b->failed || !px_conn_append(&s->io, b->data, b->len) || !px_conn_flush(&s->io)) {
            login_failed(s, NULL, 0, "write error");
            return false;
        }
        return true;
    }
    case 11: { /* SASLContinue */
        char out[AUTH_SCRAM_MAX_MSG + 1];
        if (!lg->scram_started) {
            login_failed(s, NULL, 0, "unexpected SASLContinue from server");
            return false;
        }
        int n =
            auth_scram_client_final(&lg->scram, (const char *)body + 4, len - 4, out, sizeof(out));
        if (n < 0) {
            login_failed(s, NULL, 0, "SCRAM: %s", lg->scram.error ? lg->scram.error : "failed");
            return false;
        }
        return send_password_msg(s, out, (size_t)n, false) ||
               (login_failed(s, NULL, 0, "write error"), false);
    }
    case 12: /* SASLFinal */
        if (!lg->scram_started ||
            !auth_scram_client_verify_server(&lg->scram, (const char *)body + 4, len - 4)) {
            login_failed(s, NULL, 0, "SCRAM: the server's signature is not valid");
            return false;
        }
        return true;
    default:
        login_failed(s, NULL, 0,
                     "server asks for authentication method %u, which tusk does "
                     "not support",
                     code);
        return false;
    }
}

/* the server is logged in: learn its parameters, hand it to the pool */
static void login_done(px_server *s)
{
    px_pool *p = s->pool;
    px_worker *w = s->io.w;
    if (!p->have_welcome) {
        pktbuf_reset(&p->welcome);
        pkt_put_bytes(&p->welcome, s->login->params.data, s->login->params.len);
        for (int i = 0; i < VAR_COUNT; i++)
            px_var_set(&w->intern, &p->welcome_vars[i], s->vars[i]);
        p->have_welcome = !p->welcome.failed;
        if (p->have_welcome)
            px_pool_share_welcome(p);
    }
    auth_scram_client_clear(&s->login->scram);
    pktbuf_free(&s->login->params);
    free(s->login);
    s->login = NULL;
    s->ready_seen = true;
    s->txn_status = 'I';
    log_debug("server %s/%s node %d logged in (pid %u)", p->dbname, p->user, s->node_idx,
              s->backend_pid);
    if (p->have_welcome)
        px_pool_welcome_all(p);
    px_pool_server_ready(s);
}

/* a ParameterStatus: track it on the server (and, when given, the client) */
static void param_status(px_server *s, px_client *c, const uint8_t *body, size_t len,
                         pktbuf *untracked)
{
    pkt_reader r;
    pkt_reader_init(&r, body, len);
    const char *name = pkt_read_str(&r);
    const char *value = pkt_read_str(&r);
    if (r.bad)
        return;
    int idx = px_var_index(name);
    if (idx < 0) {
        if (untracked)
            pkt_param_status(untracked, name, value);
        return;
    }
    px_worker *w = s->io.w;
    px_istr *v = px_intern_get(&w->intern, value, strlen(value));
    if (!v)
        return;
    px_var_set(&w->intern, &s->vars[idx], v);
    if (c)
        px_var_set(&w->intern, &c->vars[idx], v);
    px_intern_put(&w->intern, v);
}

static size_t login_pass(px_server *s, const uint8_t *data, size_t len)
{
    size_t pos = 0;
    while (!s->io.closed && s->login && pos < len) {
        const uint8_t *p = data + pos;
        size_t avail = len - pos;
        if (s->login->phase == SL_SSLREQ) {
            pos++;
            if (p[0] == 'S') {
                s->io.ssl = SSL_new(s->io.w->cfg->server_tls);
                if (!s->io.ssl || !SSL_set_fd(s->io.ssl, s->io.fd)) {
                    login_failed(s, NULL, 0, "TLS setup failed");
                    return pos;
                }
                SSL_set_connect_state(s->io.ssl);
                const px_node *node =
                    &s->pool->db
                         ->nodes[s->pool->node_idx < s->pool->db->n_nodes ? s->pool->node_idx : 0];
                if (node->host[0] != '/') {
                    struct in6_addr ip;
                    bool is_ip = inet_pton(AF_INET, node->host, &ip) == 1 ||
                                 inet_pton(AF_INET6, node->host, &ip) == 1;
                    if (!is_ip)
                        SSL_set_tlsext_host_name(s->io.ssl, node->host);
                    /* verify-full: the certificate must name the host (or address) we
                     * connected to, as libpq checks it */
                    if (s->io.w->cfg->server_tls_sslmode == TLS_VERIFY_FULL &&
                        !(is_ip
                              ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->io.ssl), node->host)
                              : SSL_set1_host(s->io.ssl, node->host))) {
                        login_failed(s, NULL, 0, "TLS setup failed");
                        return pos;
                    }
                }
                s->login->phase = SL_TLS;
                int r = px_tls_handshake(&s->io);
                if (r < 0)
                    tls_failed(s);
                else if (r > 0 && !send_startup(s))
                    login_failed(s, NULL, 0, "could not send the startup packet");
                return pos;
            }
            if (p[0] == 'N' && s->io.w->cfg->server_tls_sslmode < TLS_REQUIRE) {
                if (!send_startup(s))
                    login_failed(s, NULL, 0, "could not send the startup packet");
                continue;
            }
            login_failed(s, NULL, 0, "server does not support TLS (server_tls_sslmode)");
            return pos;
        }
        if (s->login->phase != SL_AUTH)
            return pos;
        uint8_t type;
        uint32_t total;
        int h = pkt_header(p, avail, &type, &total);
        if (h == 0)
            break;
        if (h < 0 || total > 65536) {
            login_failed(s, NULL, 0, "invalid message from server during login");
            return pos;
        }
        if (avail < total) {
            s->io.need = total;
            break;
        }
        s->io.need = 0;
        pos += total;
        const uint8_t *body = p + 5;
        size_t blen = total - 5;
        switch (type) {
        case 'R':
            if (!handle_auth(s, body, blen))
                return pos;
            break;
        case 'E':
            login_failed(s, p, total, "server refused the login");
            return pos;
        case 'S':
            param_status(s, NULL, body, blen, &s->login->params);
            break;
        case 'K':
            if (blen >= 8) {
                s->backend_pid = pkt_get_u32(body);
                s->backend_key = pkt_get_u32(body + 4);
            }
            break;
        case 'Z':
            login_done(s);
            return pos; /* what follows is data for the data path */
        case 'N':
        case 'v':
            break;
        default:
            login_failed(s, NULL, 0, "unexpected message type %d from server during login", type);
            return pos;
        }
    }
    return pos;
}

/* ------------------------------------------------------------------------------------------ */
/* data path                                                                                   */
/* ------------------------------------------------------------------------------------------ */

/* INTQ_AUTH: the passwd column of the DataRow */
static void authq_row(px_server *s, const uint8_t *body, size_t len)
{
    pkt_reader r;
    pkt_reader_init(&r, body, len);
    uint16_t ncol = pkt_read_int16(&r);
    for (uint16_t i = 0; i < ncol && !r.bad; i++) {
        uint32_t l = pkt_read_int32(&r);
        if (l == 0xffffffffu) {
            if (i == 1)
                s->authq_null = true;
            continue;
        }
        const uint8_t *v = pkt_read_bytes(&r, l);
        if (i == 1 && v && s->authq_result) {
            pktbuf_reset(s->authq_result);
            pkt_put_bytes(s->authq_result, v, l);
            pkt_put_byte(s->authq_result, 0);
        }
    }
    if (!r.bad)
        s->authq_found = true;
}

/* one of the proxy's own queries finished (its ReadyForQuery arrived) */
static void internal_done(px_server *s, int purpose, bool failed)
{
    px_worker *w = s->io.w;
    switch (purpose) {
    case INTQ_SETVARS:
        if (failed) {
            /* give up on those values rather than retry on every transaction */
            for (int i = 0; i < VAR_COUNT; i++) {
                if (s->setvars_mask & (1u << i)) {
                    px_var_set(&w->intern, &s->vars[i], NULL);
                    if (s->client)
                        px_var_set(&w->intern, &s->client->vars[i], NULL);
                }
            }
        }
        s->setvars_mask = 0;
        break;
    case INTQ_RESET:
    case INTQ_CHECK:
        if (failed)
            s->dirty = true;
        if (s->qlen == 0 && !s->client)
            px_pool_server_ready(s);
        break;
    case INTQ_AUTH: {
        px_client *c = s->client;
        bool found = s->authq_found && !s->authq_null && !failed && s->authq_result &&
                     s->authq_result->len > 0;
        char *pw = found ? strdup((char *)s->authq_result->data) : NULL;
        if (c) {
            s->client = NULL;
            c->server = NULL;
            px_pool_client_unlist(c);
        }
        if (s->qlen == 0)
            px_pool_server_ready(s);
        if (c)
            px_client_authq_done(c, found && pw, pw);
        if (pw) {
            memset(pw, 0, strlen(pw));
            free(pw);
        }
        break;
    }
    case INTQ_LSN:
        proxy_route_lsn_done(s, failed);
        break;
    }
}

/* ReadyForQuery with nothing outstanding: the transaction (or query) is over */
static void at_boundary(px_server *s)
{
    px_client *c = s->client;
    px_worker *w = s->io.w;
    if (!c) {
        px_pool_release(s);
        return;
    }
    double now = px_now(w);
    px_stats *st = &s->pool->stats;
    if (s->txn_status == 'I') {
        st->xact_count++;
        st->xact_time_us += (uint64_t)((now - c->xact_start) * 1e6);
        st->xact_hist[px_hist_bucket(now - c->xact_start)]++;
    }
    if (c->close_after_txn || (w->shutting_down && s->txn_status == 'I')) {
        if (s->txn_status == 'I') {
            px_client_fail(c, "57P01", "the proxy is shutting down");
            return;
        }
    }
    if (s->txn_status == 'I' && s->pool->mode != PM_SESSION && !c->io.pass_left &&
        !px_conn_backlogged(&s->io)) {
        if (proxy_txn_finished(s))
            px_pool_release(s);
    }
}

static size_t data_pass(px_server *s, const uint8_t *data, size_t len)
{
    px_worker *w = s->io.w;
    size_t pos = 0;
    px_client *c = s->client;
    px_fwd f;
    px_fwd_init(&f, c ? &c->io : NULL);
    uint32_t bufsz = w->buf_size;
    uint64_t sent = 0;
    while (pos < len && !s->io.closed) {
        const uint8_t *p = data + pos;
        size_t avail = len - pos;
        if (s->io.pass_left) {
            size_t n = avail < s->io.pass_left ? avail : s->io.pass_left;
            if (s->io.pass_fwd) {
                px_fwd_bytes(&f, p, n);
                sent += n;
            }
            s->io.pass_left -= (uint32_t)n;
            pos += n;
            continue;
        }
        uint8_t type;
        uint32_t total;
        int h = pkt_header(p, avail, &type, &total);
        if (h == 0)
            break;
        if (h < 0) {
            px_fwd_finish(&f);
            server_lost(s, "invalid message length from server");
            return pos;
        }
        px_exp *e = exp_head(s);
        bool internal = e && e->kind == EXP_INTERNAL;
        bool whole = avail >= total;
        if (!whole) {
            /* rows and COPY data stream through in pieces (no copy, no size limit); the
             * messages the proxy reads wait until whole (rbuf grows for big ones) */
            bool stream = (type == 'D' || type == 'd' || (type == 'N' && total > bufsz)) &&
                          !(internal && total <= bufsz);
            if (!stream) {
                if (total > PX_MAX_WHOLE_MSG) {
                    px_fwd_finish(&f);
                    server_lost(s, "oversized protocol message from server");
                    return pos;
                }
                s->io.need = total;
                break;
            }
            bool fwd = !internal && c;
            if (fwd) {
                proxy_route_forward(s, &f, type, NULL, 0); /* a held RowDescription first */
                px_fwd_bytes(&f, p, avail);
                sent += avail;
            }
            s->io.pass_fwd = fwd;
            s->io.pass_left = total - (uint32_t)avail;
            pos += avail;
            continue;
        }
        s->io.need = 0;
        pos += total;
        const uint8_t *body = p + 5;
        size_t blen = total - 5;
        bool forward = !internal;
        switch (type) {
        case 'S':
            if (internal && e->purpose == INTQ_SETVARS && c) {
                param_status(s, c, body, blen, NULL);
                forward = true; /* the client learns the canonical spelling */
            } else {
                param_status(s, internal ? NULL : c, body, blen, NULL);
            }
            break;
        case 'N':
        case 'A':
            break;
        case 'E': {
            const char *sev = pkt_error_field(body, blen, 'V');
            if (!sev)
                sev = pkt_error_field(body, blen, 'S');
            if (sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0)) {
                /* the connection is going away: held until it closes, then reported */
                if (!s->fatal_msg)
                    s->fatal_msg = calloc(1, sizeof(pktbuf));
                if (s->fatal_msg) {
                    pktbuf_reset(s->fatal_msg);
                    pkt_put_bytes(s->fatal_msg, p, total);
                }
                forward = false;
                break;
            }
            s->pool->stats.errors++;
            if (internal) {
                const char *m = pkt_error_field(body, blen, 'M');
                log_warning("server %s/%s: the proxy's own query (%d) failed: %s", s->pool->dbname,
                            s->pool->user, e->purpose, m ? m : "?");
                e->flags |= EXPF_FAILED;
                break;
            }
            if (c && proxy_route_server_error(s, body, blen))
                forward = false; /* 25006 on a replica: re-run on the primary */
            if (!e || e->kind == EXP_SYNC || e->kind == EXP_QUERY)
                break;
            /* extended protocol: the server skips to the next Sync; so do we */
            while ((e = exp_head(s)) && e->kind != EXP_SYNC && e->kind != EXP_QUERY &&
                   e->kind != EXP_INTERNAL) {
                exp_skipped(s, e);
                exp_pop(s);
            }
            break;
        }
        case 'Z': {
            uint8_t status = blen >= 1 ? body[0] : 'I';
            bool was_internal = false;
            int purpose = 0;
            bool failed = false;
            while ((e = exp_head(s))) {
                uint8_t k = e->kind;
                if (k == EXP_SYNC || k == EXP_QUERY || k == EXP_INTERNAL) {
                    was_internal = k == EXP_INTERNAL;
                    purpose = e->purpose;
                    failed = (e->flags & EXPF_FAILED) != 0;
                    exp_pop(s);
                    break;
                }
                exp_skipped(s, e);
                exp_pop(s);
            }
            s->txn_status = (char)status;
            s->ready_seen = s->qlen == 0;
            s->pool->stats.query_count += was_internal ? 0 : 1;
            if (was_internal) {
                forward = false;
                px_server_emit_fakes(s, &f);
                px_fwd_finish(&f);
                internal_done(s, purpose, failed);
                c = s->io.closed ? NULL : s->client;
                px_fwd_init(&f, c ? &c->io : NULL);
                continue;
            }
            if (s->pipe_key) {
                px_pool_shape_ran(w, s->pipe_key, px_now(w) - s->pipe_sent);
                s->pipe_key = 0;
            }
            if (c) {
                c->txn_status = (char)status;
                s->pool->stats.query_time_us += (uint64_t)((px_now(w) - c->query_start) * 1e6);
                s->pool->stats.query_hist[px_hist_bucket(px_now(w) - c->query_start)]++;
                if (!s->rt_retry)
                    proxy_route_forward(s, &f, 'Z', NULL, 0);
                /* the client's last answer: the server is done or passes to a pipelined one */
                bool last = s->qlen == 0 || (s->q[s->qhead].flags & EXPF_SWITCH);
                if (!(last && status == 'I' && (s->rt_retry || proxy_route_hold_ready(s)))) {
                    px_fwd_bytes(&f, p, total);
                    sent += total;
                }
                px_server_emit_fakes(s, &f);
            }
            if (s->qlen && (s->q[s->qhead].flags & EXPF_SWITCH)) {
                /* pipeline_reads: the next client's answers start here */
                px_fwd_finish(&f);
                px_pool_pipe_switch(s);
                c = s->io.closed ? NULL : s->client;
                px_fwd_init(&f, c ? &c->io : NULL);
                continue;
            }
            if (s->qlen == 0 && s->pipe_n && status == 'I') {
                /* pipeline_reads: the next client was linked (px_pool_pipe_pull) but its read
                 * has not gone out yet; the server is its own now */
                px_fwd_finish(&f);
                px_pool_pipe_switch(s);
                c = s->io.closed ? NULL : s->client;
                px_fwd_init(&f, c ? &c->io : NULL);
                continue;
            }
            if (s->qlen == 0) {
                px_fwd_finish(&f);
                at_boundary(s);
                c = s->io.closed ? NULL : s->client;
                px_fwd_init(&f, c ? &c->io : NULL);
            }
            continue;
        }
        case '1':
            if (e && e->kind == EXP_PARSE) {
                forward = !(e->flags & EXPF_SWALLOW);
                exp_pop(s);
            }
            break;
        case '2':
            if (e && e->kind == EXP_BIND)
                exp_pop(s);
            break;
        case '3':
            if (e && e->kind == EXP_CLOSE) {
                forward = !(e->flags & EXPF_SWALLOW);
                exp_pop(s);
            }
            break;
        case 't':
            if (e && e->kind == EXP_DESC_STMT)
                e->flags |= EXPF_GOT_T;
            break;
        case 'T':
        case 'n':
            if (e && (e->kind == EXP_DESC_STMT || e->kind == EXP_DESC_PORTAL))
                exp_pop(s);
            break;
        case 'C':
        case 'I':
        case 's':
            if (e && e->kind == EXP_EXECUTE)
                exp_pop(s);
            break;
        case 'D':
            if (internal && e->purpose == INTQ_AUTH)
                authq_row(s, body, blen);
            else if (internal && e->purpose == INTQ_LSN)
                proxy_route_lsn_row(s, body, blen);
            break;
        default:
            break;
        }
        if (forward && c && (internal || !proxy_route_forward(s, &f, type, p, total))) {
            px_fwd_bytes(&f, p, total);
            sent += total;
            s->rt_sent |= !internal;
        }
        if (s->qlen &&
            (s->q[s->qhead].kind == EXP_FAKE_PARSE || s->q[s->qhead].kind == EXP_FAKE_CLOSE))
            px_server_emit_fakes(s, &f);
    }
    px_fwd_finish(&f);
    c = s->io.closed ? NULL : s->client;
    if (c) {
        s->pool->stats.bytes_sent += sent; /* the serving node's (a routed client's may not be
                                            * its home pool's) */
        if (px_conn_backlogged(&c->io))
            px_conn_pause(&s->io);
    }
    return pos;
}

/* janitor: timeouts of one server */
void px_server_check_timeouts(px_server *s, double now)
{
    px_config *cfg = s->io.w->cfg;
    if (s->io.closed)
        return;
    if (s->state == SV_CONNECTING || s->state == SV_LOGIN) {
        if (cfg->server_connect_timeout > 0 && now - s->connect_time > cfg->server_connect_timeout)
            login_failed(s, NULL, 0, "server_connect_timeout: no login within %g s",
                         cfg->server_connect_timeout);
        return;
    }
    if (s->state == SV_IDLE) {
        if (cfg->server_lifetime > 0 && now - s->connect_time > cfg->server_lifetime) {
            px_server_close(s, "server_lifetime");
            return;
        }
        if (cfg->server_idle_timeout > 0 && now - s->last_used > cfg->server_idle_timeout &&
            atomic_load(&s->pool->shared->servers) > s->pool->min_size)
            px_server_close(s, "server_idle_timeout");
    }
}
