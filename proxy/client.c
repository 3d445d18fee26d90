/*
 * Client side of the protocol: the login (startup packet, SSL/GSS negotiation, cancel
 * requests, trust / cleartext / md5 / SCRAM-SHA-256 authentication against auth_file or
 * auth_query, client certificates, peer credentials, auth_hba_file rules, the welcome) and the
 * client half of the data path: each message a logged-in client sends is checked, gets a server if
 * it has none (pool.c), and is forwarded, with named prepared statements rewritten in transaction
 * mode.
 *
 * Every forwarded message that will be answered is recorded in the server's expected-response
 * queue (server.c), so the server side knows which answers to forward, which to swallow and
 * where to insert answers the proxy gives itself (ParseComplete/CloseComplete of statements
 * the server already has or that only the proxy knew about).
 */
#include "proxy/admin.h"
#include "proxy/internal.h"

#include <arpa/inet.h>
#include <openssl/x509.h>
#include <pwd.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { LG_STARTUP = 0, LG_TLS, LG_PASSWORD, LG_SASL_FINAL };

struct px_login {
    uint8_t phase;
    uint8_t method; /* what the client is asked for: AUTH_TRUST/PLAIN/MD5/SCRAM */
    uint8_t want;   /* what start_auth chose: auth_type, or the auth_hba_file line's method */
    bool tls;       /* TLS handshake done */
    uint8_t salt[4];
    px_config *cfg; /* the config the login started with (reference) */
    const px_db *db;
    char *stored; /* password or secret to check against */
    auth_scram_server scram;
    struct sockaddr_storage peer; /* AF_UNIX for unix sockets (auth_hba_file local lines) */
};

static void client_read_cb(struct ev_loop *loop, ev_io *io, int revents);
static size_t login_pass(px_client *c, const uint8_t *data, size_t len);
static size_t data_pass(px_client *c, const uint8_t *data, size_t len);
static void login_free(px_client *c);
static void start_auth(px_client *c);
static void auth_ok(px_client *c);
static void send_now(px_client *c, pktbuf *b);

/* ------------------------------------------------------------------------------------------ */
/* public                                                                                      */
/* ------------------------------------------------------------------------------------------ */

/* a new client socket from accept() */
void px_client_accept(px_worker *w, int fd, const struct sockaddr *sa, socklen_t salen,
                      bool is_unix, bool data_ready)
{
    px_client *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return;
    }
    px_conn_init(&c->io, w, fd, PX_CONN_CLIENT);
    ev_io_init(&c->io.rio, client_read_cb, fd, EV_READ);
    c->io.is_unix = is_unix;
    c->id = ++w->next_id;
    c->state = CL_LOGIN;
    c->txn_status = 'I';
    c->connect_time = c->last_active = px_now(w);
    c->login = calloc(1, sizeof(*c->login));
    if (!c->login) {
        close(fd);
        free(c);
        return;
    }
    c->login->cfg = px_config_ref(w->cfg);
    if (is_unix)
        c->login->peer.ss_family = AF_UNIX;
    else if (salen <= sizeof(c->login->peer))
        memcpy(&c->login->peer, sa, salen);
    if (is_unix) {
        snprintf(c->addr, sizeof(c->addr), "unix");
    } else if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        snprintf(c->addr, sizeof(c->addr), "%s:%d", ip, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        char ip[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        snprintf(c->addr, sizeof(c->addr), "[%s]:%d", ip, ntohs(in6->sin6_port));
    }
    px_list_add_tail(&w->login_clients, &c->node);
    w->n_clients++;
    px_steer_update(w->cfg);
    int n = atomic_fetch_add(&px_g.n_clients, 1) + 1;
    px_conn_start(&c->io);
    if (n > w->cfg->max_client_conn) {
        px_client_fail(c, "53300", "no more connections allowed (max_client_conn)");
        return;
    }
    if (data_ready) /* TCP_DEFER_ACCEPT: the startup packet is there; read it in this pass */
        ev_feed_event(w->loop, &c->io.rio, EV_READ);
}

/* send an ErrorResponse (FATAL) and close */
void px_client_fail(px_client *c, const char *sqlstate, const char *fmt, ...)
{
    if (c->io.closed)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pktbuf *b = &c->io.w->tmp;
    pktbuf_reset(b);
    pkt_error(b, 'E', "FATAL", sqlstate, NULL, "%s", msg);
    px_conn_append(&c->io, b->data, b->len);
    px_client_close(c, msg);
}

/* send a prepared ErrorResponse and close */
void px_client_fail_raw(px_client *c, const uint8_t *msg, size_t len)
{
    if (c->io.closed)
        return;
    px_conn_append(&c->io, msg, len);
    const char *m = len > 5 ? pkt_error_field(msg + 5, len - 5, 'M') : NULL;
    px_client_close(c, m ? m : "server error");
}

/* close a client: its server is kept (clean) or closed (mid-transaction) */
void px_client_close(px_client *c, const char *reason)
{
    if (c->io.closed)
        return;
    px_worker *w = c->io.w;
    px_config *cfg = w->cfg;
    if (c->state != CL_LOGIN && cfg->log_disconnections)
        log_info("client %s %s@%s disconnected: %s", c->addr, c->user ? c->user : "?",
                 c->dbname ? c->dbname : "?", reason);
    else if (c->state == CL_LOGIN)
        log_debug("client %s closed during login: %s", c->addr, reason);
    px_server *s = c->server;
    if (s && c->pipelined) {
        px_pool_pipe_drop(s, c); /* its answers are dropped when its turn comes */
        s = NULL;
    } else if (s && s->pipe_n) {
        s->client = NULL; /* the server passes to the next client after this query */
        c->server = NULL;
        s = NULL;
    }
    if (s) {
        s->client = NULL;
        c->server = NULL;
        if (px_server_at_boundary(s) && !px_conn_backlogged(&s->io) && !s->io.pass_left &&
            !c->io.pass_left)
            px_pool_release(s);
        else
            px_server_close(s, "client disconnected while the server was busy");
    }
    px_pool_client_unlist(c);
    if (c->io.wlen > c->io.wpos)
        px_conn_flush(&c->io); /* best effort: the error message we just queued */
    px_cancel_unregister(c);
    if (c->stmts) {
        px_cstmts_free(c->stmts, &w->stmts);
        free(c->stmts);
        c->stmts = NULL;
    }
    for (int i = 0; i < VAR_COUNT; i++)
        px_var_set(&w->intern, &c->vars[i], NULL);
    login_free(c);
    px_conn_shutdown(&c->io);
    c->state = CL_CLOSED;
    atomic_fetch_sub(&px_g.n_clients, 1);
    w->n_clients--;
    px_steer_update(w->cfg);
    c->io.zombie_next = w->zombies;
    w->zombies = &c->io;
}

/* free a closed client (end of the loop pass) */
void px_client_free(px_client *c)
{
    proxy_route_client_free(c);
    free(c->user);
    free(c->dbname);
    free(c);
}

/* a waiting client got its server */
void px_client_linked(px_client *c)
{
    if (c->authq) {
        px_config *cfg = c->login ? c->login->cfg : c->io.w->cfg;
        if (!px_server_auth_query(c->server, cfg->auth_query, c->user)) {
            px_client_fail(c, "08006", "could not send auth_query");
            return;
        }
        return;
    }
    if (c->io.rlen > 0 || c->io.pass_left)
        px_conn_schedule(&c->io);
}

/* process buffered input (run queue) */
void px_client_run(px_client *c)
{
    px_worker *w = c->io.w;
    if (c->io.closed || (c->server && px_conn_backlogged(&c->server->io)))
        return;
    if (c->state == CL_WAITING || c->state == CL_AUTHQ || c->state == CL_WELCOME)
        return;
    if (c->io.rlen == 0)
        return;
    size_t n = c->state == CL_LOGIN ? login_pass(c, c->io.rbuf, c->io.rlen)
                                    : data_pass(c, c->io.rbuf, c->io.rlen);
    if (!c->io.closed && !px_conn_keep(&c->io, c->io.rbuf + n, c->io.rlen - n))
        px_client_fail(c, "53200", "out of memory");
    /* read again if reading stopped for a full buffer that now has room */
    if (!c->io.closed && c->io.read_paused && c->io.rlen < c->io.rcap &&
        !(c->server && px_conn_backlogged(&c->server->io))) {
        c->io.read_paused = false;
        ev_io_start(w->loop, &c->io.rio);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* reading                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static void client_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    px_client *c = (px_client *)container_of(io, px_conn, rio);
    px_worker *w = c->io.w;
    (void)loop;
    w->io_events++;
    if (c->io.closed)
        return;
    if (c->state == CL_LOGIN && c->login && c->login->phase == LG_TLS) {
        int r = px_tls_handshake(&c->io);
        if (r < 0)
            px_client_close(c, "TLS handshake failed");
        else if (r > 0) {
            c->login->tls = true;
            c->login->phase = LG_STARTUP;
            /* the startup packet may already sit in the TLS buffer: read it now */
            ev_feed_event(w->loop, &c->io.rio, EV_READ);
        }
        px_worker_drain(w);
        return;
    }
    uint8_t *buf;
    size_t cap;
    bool own = c->io.rbuf != NULL;
    if (own) {
        if (c->io.rlen == c->io.rcap) {
            /* full and nothing could be processed: waiting for a server or the peer */
            ev_io_stop(w->loop, &c->io.rio);
            c->io.read_paused = true;
            px_worker_drain(w);
            return;
        }
        buf = c->io.rbuf + c->io.rlen;
        cap = c->io.rcap - c->io.rlen;
    } else {
        buf = w->scratch;
        cap = w->scratch_cap;
    }
    ssize_t n = px_conn_recv(&c->io, buf, cap);
    if (n == -2) {
        px_worker_drain(w);
        return;
    }
    if (n <= 0) {
        px_client_close(c, n == 0 ? "client closed the connection" : "read error");
        px_worker_drain(w);
        return;
    }
    double now = px_now(w);
    c->io.last_progress = now;
    if (c->state >= CL_IDLE) {
        c->last_active = now;
        if (c->pool)
            c->pool->stats.bytes_received += (uint64_t)n;
    }
    const uint8_t *data;
    size_t len;
    if (own) {
        c->io.rlen += (uint32_t)n;
        data = c->io.rbuf;
        len = c->io.rlen;
    } else {
        data = buf;
        len = (size_t)n;
    }
    size_t used = 0;
    if (c->state == CL_LOGIN)
        used = login_pass(c, data, len);
    else if (c->state == CL_IDLE || c->state == CL_ACTIVE)
        used = data_pass(c, data, len);
    /* else waiting for a server / auth_query / welcome: keep everything */
    if (!c->io.closed && !px_conn_keep(&c->io, data + used, len - used))
        px_client_fail(c, "53200", "out of memory");
    if (c->io.ssl && !c->io.closed && SSL_pending(c->io.ssl) > 0)
        ev_feed_event(w->loop, &c->io.rio, EV_READ);
    px_worker_drain(w);
}

/* ------------------------------------------------------------------------------------------ */
/* login                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static void login_free(px_client *c)
{
    px_login *lg = c->login;
    if (!lg)
        return;
    if (lg->stored) {
        memset(lg->stored, 0, strlen(lg->stored));
        free(lg->stored);
    }
    auth_scram_server_clear(&lg->scram);
    px_config_unref(lg->cfg);
    free(lg);
    c->login = NULL;
}

static void send_now(px_client *c, pktbuf *b)
{
    if (b->failed) {
        px_client_close(c, "out of memory");
        return;
    }
    px_conn_append(&c->io, b->data, b->len);
    if (!px_conn_flush(&c->io))
        px_client_close(c, "write error");
}

typedef struct startup_ctx {
    px_client *c;
    px_config *cfg;
    char err[256];
    char errstate[6];
} startup_ctx;

/* "-c name=value --name=value" in the options parameter: tracked vars only */
static bool parse_options(startup_ctx *sc, const char *opts)
{
    px_worker *w = sc->c->io.w;
    char buf[1024];
    if (strlen(opts) >= sizeof(buf))
        goto bad;
    strcpy(buf, opts);
    char *save = NULL;
    bool expect_c = false;
    for (char *tok = strtok_r(buf, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        char *kv;
        if (expect_c) {
            kv = tok;
            expect_c = false;
        } else if (strcmp(tok, "-c") == 0) {
            expect_c = true;
            continue;
        } else if (strncmp(tok, "-c", 2) == 0) {
            kv = tok + 2;
        } else if (strncmp(tok, "--", 2) == 0) {
            kv = tok + 2;
        } else {
            goto bad;
        }
        char *eq = strchr(kv, '=');
        if (!eq)
            goto bad;
        *eq = '\0';
        for (char *p = kv; *p; p++)
            if (*p == '-')
                *p = '_';
        int idx = px_var_index(kv);
        if (idx < 0) {
            if (px_config_ignored_param(sc->cfg, kv))
                continue;
            goto bad;
        }
        px_istr *v = px_intern_get(&w->intern, eq + 1, strlen(eq + 1));
        px_var_set(&w->intern, &sc->c->vars[idx], v);
        px_intern_put(&w->intern, v);
    }
    return true;
bad:
    if (px_config_ignored_param(sc->cfg, "options"))
        return true;
    snprintf(sc->err, sizeof(sc->err), "unsupported startup parameter in options: %.100s", opts);
    strcpy(sc->errstate, "08P01");
    return false;
}

static bool startup_param(void *ctx, const char *name, const char *value)
{
    startup_ctx *sc = ctx;
    px_client *c = sc->c;
    px_worker *w = c->io.w;
    if (strcmp(name, "user") == 0) {
        free(c->user);
        c->user = strdup(value);
        return c->user != NULL;
    }
    if (strcmp(name, "database") == 0) {
        free(c->dbname);
        c->dbname = strdup(value);
        return c->dbname != NULL;
    }
    if (strcmp(name, "options") == 0)
        return parse_options(sc, value);
    if (strncmp(name, "_pq_.", 5) == 0)
        return true; /* protocol extensions: none supported, quietly ignored */
    if (strcmp(name, "replication") == 0) {
        if (str_to_bool(value, &(bool){0}) && strcasecmp(value, "false") != 0 &&
            strcasecmp(value, "off") != 0 && strcasecmp(value, "no") != 0 &&
            strcmp(value, "0") != 0) {
            snprintf(sc->err, sizeof(sc->err), "replication connections are not supported");
            strcpy(sc->errstate, "08P01");
            return false;
        }
        if (strcasecmp(value, "database") == 0) {
            snprintf(sc->err, sizeof(sc->err), "replication connections are not supported");
            strcpy(sc->errstate, "08P01");
            return false;
        }
        return true;
    }
    int idx = px_var_index(name);
    if (idx >= 0) {
        px_istr *v = px_intern_get(&w->intern, value, strlen(value));
        px_var_set(&w->intern, &c->vars[idx], v);
        px_intern_put(&w->intern, v);
        return true;
    }
    if (px_config_ignored_param(sc->cfg, name))
        return true;
    snprintf(sc->err, sizeof(sc->err), "unsupported startup parameter: %.64s", name);
    strcpy(sc->errstate, "08P01");
    return false;
}

/* the virtual admin database: "pgbouncer", or "tusk" unless [databases] defines a real one */
static bool is_admin_db(const px_config *cfg, const char *name)
{
    if (strcmp(name, "pgbouncer") == 0)
        return true;
    if (strcmp(name, "tusk") != 0)
        return false;
    for (int i = 0; i < cfg->n_dbs; i++)
        if (strcmp(cfg->dbs[i].name, name) == 0)
            return false;
    return true;
}

/* process a v3 StartupMessage body (after length and version) */
static void handle_startup(px_client *c, const uint8_t *p, size_t len)
{
    px_login *lg = c->login;
    px_config *cfg = lg->cfg;
    if (cfg->client_tls_sslmode >= TLS_REQUIRE && !lg->tls) {
        px_client_fail(c, "28000", "SSL required");
        return;
    }
    startup_ctx sc = {.c = c, .cfg = cfg};
    if (pkt_startup_params(p, len, startup_param, &sc) != 0) {
        if (sc.err[0])
            px_client_fail(c, sc.errstate, "%s", sc.err);
        else
            px_client_fail(c, "08P01",
                           "invalid startup packet layout: expected terminator as "
                           "last byte");
        return;
    }
    if (!c->user || !*c->user) {
        px_client_fail(c, "28000", "no PostgreSQL user name specified in startup packet");
        return;
    }
    if (!c->dbname || !*c->dbname) {
        free(c->dbname);
        c->dbname = strdup(c->user);
    }
    if (strlen(c->user) > 255 || strlen(c->dbname) > 255) {
        px_client_fail(c, "42622", "user or database name too long");
        return;
    }
    if (is_admin_db(cfg, c->dbname)) {
        /* the admin console (admin.c): admin_users and stats_users only */
        if (!px_admin_login_allowed(c, cfg)) {
            px_client_fail(c, "08P01",
                           "not allowed: user \"%s\" is not in admin_users or "
                           "stats_users",
                           c->user);
            return;
        }
        start_auth(c);
        return;
    }
    if (px_admin_disabled(c->dbname)) {
        px_client_fail(c, "08P01", "database \"%s\" does not allow connections (DISABLE)",
                       c->dbname);
        return;
    }
    lg->db = px_config_find_db(cfg, c->dbname);
    if (!lg->db) {
        px_client_fail(c, "3D000", "no such database: %s", c->dbname);
        return;
    }
    if (cfg->log_connections)
        log_info("client %s login attempt: db=%s user=%s%s", c->addr, c->dbname, c->user,
                 lg->tls ? " tls=on" : "");
    start_auth(c);
}

/* walk the login messages in data */
static size_t login_pass(px_client *c, const uint8_t *data, size_t len)
{
    size_t pos = 0;
    while (!c->io.closed && c->state == CL_LOGIN && pos < len) {
        px_login *lg = c->login;
        const uint8_t *p = data + pos;
        size_t avail = len - pos;
        if (lg->phase == LG_STARTUP) {
            if (avail < 4)
                break;
            uint32_t plen = pkt_get_u32(p);
            if (plen < 8 || plen > PX_MAX_STARTUP_LEN) {
                px_client_fail(c, "08P01", "invalid length of startup packet: %u", plen);
                break;
            }
            if (avail < plen) {
                c->io.need = plen;
                break;
            }
            uint32_t code = pkt_get_u32(p + 4);
            pos += plen;
            c->io.need = 0;
            if (code == PX_SSL_REQUEST && plen == 8) {
                bool tls = lg->cfg->client_tls && !lg->tls;
                uint8_t ans = tls ? 'S' : 'N';
                if (!px_conn_append(&c->io, &ans, 1) || !px_conn_flush(&c->io)) {
                    px_client_close(c, "write error");
                    break;
                }
                if (tls) {
                    if (pos != len) {
                        /* bytes after SSLRequest before the handshake: a buffer-stuffing
                         * attack (CVE-2021-23214); refuse */
                        px_client_fail(c, "08P01", "received unencrypted data after SSL request");
                        break;
                    }
                    c->io.ssl = SSL_new(lg->cfg->client_tls);
                    if (!c->io.ssl || !SSL_set_fd(c->io.ssl, c->io.fd)) {
                        px_client_close(c, "TLS setup failed");
                        break;
                    }
                    SSL_set_accept_state(c->io.ssl);
                    lg->phase = LG_TLS;
                    int r = px_tls_handshake(&c->io);
                    if (r < 0)
                        px_client_close(c, "TLS handshake failed");
                    else if (r > 0) {
                        lg->tls = true;
                        lg->phase = LG_STARTUP;
                    }
                    break;
                }
                continue;
            }
            if (code == PX_GSSENC_REQUEST && plen == 8) {
                uint8_t ans = 'N';
                if (!px_conn_append(&c->io, &ans, 1) || !px_conn_flush(&c->io))
                    px_client_close(c, "write error");
                continue;
            }
            if (code == PX_CANCEL_REQUEST) {
                if (plen == 16)
                    px_cancel_request(pkt_get_u32(p + 8), pkt_get_u32(p + 12));
                px_client_close(c, "cancel request");
                break;
            }
            if ((code >> 16) != 3) {
                px_client_fail(c, "0A000",
                               "unsupported frontend protocol %u.%u: server supports 3.0 to 3.0",
                               code >> 16, code & 0xffff);
                break;
            }
            if ((code & 0xffff) != 0) {
                /* a newer 3.x client: tell it we speak 3.0 (NegotiateProtocolVersion) */
                pktbuf *b = &c->io.w->tmp;
                pktbuf_reset(b);
                pkt_begin(b, 'v');
                pkt_put_int32(b, PX_PROTO_V3);
                pkt_put_int32(b, 0);
                pkt_end(b);
                px_conn_append(&c->io, b->data, b->len);
            }
            handle_startup(c, p + 8, plen - 8);
            continue;
        }
        if (lg->phase == LG_TLS)
            break;
        /* password phase: one 'p' message */
        uint8_t type;
        uint32_t total;
        int h = pkt_header(p, avail, &type, &total);
        if (h == 0)
            break;
        if (h < 0 || total > PX_MAX_LOGIN_MSG) {
            px_client_fail(c, "08P01", "invalid password packet length");
            break;
        }
        if (type != 'p') {
            px_client_fail(c, "08P01", "expected password response, got message type %d", type);
            break;
        }
        if (avail < total) {
            c->io.need = total;
            break;
        }
        pos += total;
        c->io.need = 0;
        const uint8_t *body = p + 5;
        size_t blen = total - 5;
        char errbuf[AUTH_SCRAM_MAX_MSG + 1];
        bool ok = false;
        if (lg->method == AUTH_PLAIN || lg->method == AUTH_MD5) {
            if (blen == 0 || body[blen - 1] != 0 || memchr(body, 0, blen) != body + blen - 1) {
                px_client_fail(c, "08P01", "invalid password packet");
                break;
            }
            const char *pw = (const char *)body;
            const char *st = lg->stored;
            if (lg->method == AUTH_MD5) {
                ok = auth_md5_verify(st, c->user, lg->salt, pw);
            } else if (auth_is_md5_hash(st)) {
                char h5[36];
                auth_md5_hash(pw, c->user, h5);
                ok = strcmp(h5, st) == 0;
            } else if (auth_is_scram_secret(st)) {
                auth_scram_secret sec, mine;
                ok = auth_scram_parse_secret(st, &sec) &&
                     auth_scram_secret_from_password(pw, sec.salt, sec.salt_len, sec.iterations,
                                                     &mine) &&
                     memcmp(sec.stored_key, mine.stored_key, 32) == 0;
            } else {
                ok = strcmp(pw, st) == 0;
            }
            if (!ok) {
                px_client_fail(c, "28P01", "password authentication failed for user \"%s\"",
                               c->user);
                break;
            }
            auth_ok(c);
            continue;
        }
        /* SCRAM */
        pkt_reader r;
        pkt_reader_init(&r, body, blen);
        if (lg->phase == LG_PASSWORD) {
            const char *mech = pkt_read_str(&r);
            uint32_t dlen = pkt_read_int32(&r);
            const uint8_t *d = r.bad || dlen > blen ? NULL : pkt_read_bytes(&r, dlen);
            if (!d || r.bad) {
                px_client_fail(c, "08P01", "malformed SASLInitialResponse");
                break;
            }
            if (strcmp(mech, "SCRAM-SHA-256") != 0) {
                px_client_fail(c, "28000",
                               "client selected an invalid SASL authentication "
                               "mechanism");
                break;
            }
            int n =
                auth_scram_server_first(&lg->scram, (const char *)d, dlen, errbuf, sizeof(errbuf));
            if (n < 0) {
                px_client_fail(c, "08P01", "%s", lg->scram.error ? lg->scram.error : "bad SCRAM");
                break;
            }
            pktbuf *b = &c->io.w->tmp;
            pktbuf_reset(b);
            pkt_auth(b, 11, errbuf, (size_t)n);
            send_now(c, b);
            lg->phase = LG_SASL_FINAL;
            continue;
        }
        int n =
            auth_scram_server_final(&lg->scram, (const char *)body, blen, errbuf, sizeof(errbuf));
        if (n < 0) {
            px_client_fail(c, "28P01", "password authentication failed for user \"%s\"", c->user);
            break;
        }
        const uint8_t *ck = auth_scram_server_client_key(&lg->scram);
        if (ck)
            px_scram_keys_put(c->user, ck, lg->scram.secret.server_key);
        pktbuf *b = &c->io.w->tmp;
        pktbuf_reset(b);
        pkt_auth(b, 12, errbuf, (size_t)n);
        px_conn_append(&c->io, b->data, b->len);
        auth_ok(c);
    }
    return pos;
}

/* the auth_user for auth_query of this client's database, NULL when none */
static const char *authq_user(px_login *lg)
{
    if (lg->db->auth_user && *lg->db->auth_user)
        return lg->db->auth_user;
    if (lg->cfg->auth_user && *lg->cfg->auth_user)
        return lg->cfg->auth_user;
    return NULL;
}

/* ask the client for the right kind of password, given what we store */
static void ask_password(px_client *c)
{
    px_login *lg = c->login;
    px_config *cfg = lg->cfg;
    const char *st = lg->stored;
    bool scram_secret = auth_is_scram_secret(st);
    bool md5_hash = auth_is_md5_hash(st);
    pktbuf *b = &c->io.w->tmp;
    pktbuf_reset(b);
    int want = lg->want;
    if (want == AUTH_MD5 && scram_secret)
        want = AUTH_SCRAM; /* as PostgreSQL does for an md5 line and a SCRAM secret */
    if (want == AUTH_SCRAM && md5_hash) {
        log_warning("user \"%s\" has an md5 password in %s but auth_type is scram-sha-256", c->user,
                    cfg->auth_file && *cfg->auth_file ? "auth_file" : "auth_query");
        px_client_fail(c, "28P01", "password authentication failed for user \"%s\"", c->user);
        return;
    }
    lg->method = (uint8_t)want;
    if (want == AUTH_PLAIN) {
        pkt_auth(b, 3, NULL, 0);
    } else if (want == AUTH_MD5) {
        if (!auth_random_bytes(lg->salt, 4)) {
            px_client_fail(c, "53200", "no random bytes for the md5 salt");
            return;
        }
        pkt_auth(b, 5, lg->salt, 4);
    } else {
        auth_scram_secret sec;
        bool ok;
        if (scram_secret)
            ok = auth_scram_parse_secret(st, &sec);
        else
            ok = auth_scram_secret_from_password(st, NULL, 0, 0, &sec);
        if (!ok) {
            px_client_fail(c, "28P01", "password authentication failed for user \"%s\"", c->user);
            return;
        }
        auth_scram_server_init(&lg->scram, &sec);
        static const char mech[] = "SCRAM-SHA-256\0";
        pkt_auth(b, 10, mech, sizeof(mech)); /* list ends with an empty name */
    }
    lg->phase = LG_PASSWORD;
    send_now(c, b);
}

/* the client's address as PostgreSQL's authentication errors name it */
static const char *peer_host(const px_login *lg, char *buf, size_t cap)
{
    const struct sockaddr *sa = (const struct sockaddr *)&lg->peer;
    if (sa->sa_family == AF_INET)
        return inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)cap);
    if (sa->sa_family == AF_INET6)
        return inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf,
                         (socklen_t)cap);
    return "[local]";
}

/* auth cert: a TLS connection whose verified client certificate names the user (CN) */
static void cert_auth(px_client *c)
{
    X509 *cert = c->io.ssl ? SSL_get0_peer_certificate(c->io.ssl) : NULL;
    if (!cert || SSL_get_verify_result(c->io.ssl) != X509_V_OK) {
        px_client_fail(c, "28000", "connection requires a valid client certificate");
        return;
    }
    char cn[256];
    int n =
        X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, (int)sizeof(cn));
    if (n < 0 || (size_t)n != strlen(cn) || strcmp(cn, c->user) != 0) {
        log_info("client %s: certificate CN \"%s\" is not user \"%s\"", c->addr, n < 0 ? "" : cn,
                 c->user);
        px_client_fail(c, "28000", "certificate authentication failed for user \"%s\"", c->user);
        return;
    }
    auth_ok(c);
}

/* auth peer: the unix socket's other end runs as the operating-system user of that name */
static void peer_auth(px_client *c)
{
    struct ucred cr;
    socklen_t len = sizeof(cr);
    struct passwd pw, *found = NULL;
    char buf[2048];
    if (!c->io.is_unix || getsockopt(c->io.fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0 ||
        getpwuid_r(cr.uid, &pw, buf, sizeof(buf), &found) != 0 || !found ||
        strcmp(found->pw_name, c->user) != 0) {
        px_client_fail(c, "28000", "Peer authentication failed for user \"%s\"", c->user);
        return;
    }
    auth_ok(c);
}

/* auth_type = hba: the method of the first matching auth_hba_file line (AUTH_*), or -1 when
 * the client was answered already (trust, peer, reject, no line) */
static int hba_method(px_client *c)
{
    px_login *lg = c->login;
    int line = 0;
    int m = px_hba_match(lg->cfg->hba, (const struct sockaddr *)&lg->peer, c->io.ssl != NULL,
                         c->dbname, c->user, &line);
    char host[INET6_ADDRSTRLEN];
    const char *h = peer_host(lg, host, sizeof(host));
    switch (m) {
    case PX_HBA_TRUST:
        auth_ok(c);
        return -1;
    case PX_HBA_PEER:
        peer_auth(c);
        return -1;
    case PX_HBA_MD5:
        return AUTH_MD5;
    case PX_HBA_SCRAM:
        return AUTH_SCRAM;
    case PX_HBA_PASSWORD:
        return AUTH_PLAIN;
    case PX_HBA_CERT:
        return AUTH_CERT;
    case PX_HBA_REJECT:
        log_info("client %s: auth_hba_file line %d rejects %s@%s", c->addr, line, c->user,
                 c->dbname);
        px_client_fail(c, "28000",
                       "pg_hba.conf rejects connection for host \"%s\", user \"%s\", database "
                       "\"%s\", %s",
                       h, c->user, c->dbname, c->io.ssl ? "SSL encryption" : "no encryption");
        return -1;
    default:
        px_client_fail(c, "28000",
                       "no pg_hba.conf entry for host \"%s\", user \"%s\", database \"%s\", %s", h,
                       c->user, c->dbname, c->io.ssl ? "SSL encryption" : "no encryption");
        return -1;
    }
}

/* decide how this client authenticates */
static void start_auth(px_client *c)
{
    px_login *lg = c->login;
    px_config *cfg = lg->cfg;
    if (cfg->auth_type == AUTH_TRUST || cfg->auth_type == AUTH_ANY) {
        auth_ok(c);
        return;
    }
    int want = cfg->auth_type == AUTH_HBA ? hba_method(c) : cfg->auth_type;
    if (want < 0)
        return;
    if (want == AUTH_CERT) {
        cert_auth(c);
        return;
    }
    lg->want = (uint8_t)want;
    const char *stored = NULL;
    if (lg->db && lg->db->password && *lg->db->password && lg->db->user &&
        strcmp(lg->db->user, c->user) == 0)
        stored = lg->db->password;
    if (!stored && cfg->users_file)
        stored = userlist_lookup(cfg->users_file, c->user);
    if (stored) {
        lg->stored = strdup(stored);
        if (!lg->stored) {
            px_client_fail(c, "53200", "out of memory");
            return;
        }
        ask_password(c);
        return;
    }
    const char *au = lg->db ? authq_user(lg) : NULL; /* admin console: auth_file only */
    if (cfg->auth_query && *cfg->auth_query && au) {
        const char *adb = cfg->auth_dbname && *cfg->auth_dbname ? cfg->auth_dbname : c->dbname;
        px_pool *ap = px_pool_get(c->io.w, adb, au, 0);
        if (!ap) {
            px_client_fail(c, "3D000", "no such database for auth_query: %s", adb);
            return;
        }
        px_pool_client_unlist(c);
        c->authq = true;
        c->state = CL_AUTHQ;
        c->pool = ap;
        if (px_pool_acquire(ap, c))
            px_client_linked(c);
        return;
    }
    /* unknown user: same answer as a wrong password, like PostgreSQL */
    log_info("client %s: user \"%s\" is not in auth_file and no auth_query is set", c->addr,
             c->user);
    px_client_fail(c, "28P01", "password authentication failed for user \"%s\"", c->user);
}

/* auth_query answered: continue the login with the password it found */
void px_client_authq_done(px_client *c, bool found, const char *passwd)
{
    if (c->io.closed)
        return;
    c->authq = false;
    c->pool = NULL;
    px_pool_client_set_state(c, CL_LOGIN, NULL);
    if (!found || !passwd || !*passwd) {
        px_client_fail(c, "28P01", "password authentication failed for user \"%s\"", c->user);
        return;
    }
    c->login->stored = strdup(passwd);
    if (!c->login->stored) {
        px_client_fail(c, "53200", "out of memory");
        return;
    }
    /* the server login of this user's pools may need the secret too */
    px_user_secret_put(c->user, passwd);
    ask_password(c);
    if (!c->io.closed && c->io.rlen)
        px_conn_schedule(&c->io);
}

/* authenticated: join the pool, welcome now or when the pool knows its server parameters */
static void auth_ok(px_client *c)
{
    if (c->admin) {
        login_free(c);
        px_admin_welcome(c);
        return;
    }
    px_worker *w = c->io.w;
    px_login *lg = c->login;
    const char *server_user = lg->db->user && *lg->db->user ? lg->db->user : c->user;
    px_pool *p = px_pool_get(w, c->dbname, server_user, 0);
    if (!p) {
        px_client_fail(c, "3D000", "no such database: %s", c->dbname);
        return;
    }
    if (p->orphan) {
        px_client_fail(c, "3D000", "database \"%s\" was removed from the configuration", c->dbname);
        return;
    }
    c->pool = p;
    px_pool_client_set_state(c, CL_WELCOME, p);
    px_pool_need_welcome(p);
}

/* send AuthenticationOk, the parameters, our cancel key and ReadyForQuery */
void px_client_welcome(px_client *c)
{
    px_worker *w = c->io.w;
    px_pool *p = c->pool;
    for (int i = 0; i < VAR_COUNT; i++)
        if (!c->vars[i] && p->welcome_vars[i])
            px_var_set(&w->intern, &c->vars[i], p->welcome_vars[i]);
    px_cancel_register(c);
    pktbuf *b = &w->tmp;
    pktbuf_reset(b);
    pkt_auth(b, 0, NULL, 0);
    pkt_put_bytes(b, p->welcome.data, p->welcome.len);
    for (int i = 0; i < VAR_COUNT; i++)
        if (c->vars[i])
            pkt_param_status(b, px_var_name(i), c->vars[i]->s);
    /* a routed database announces its floor from the start, so a client (fanout, api) can
     * tell at login that SET tusk.min_lsn will be understood */
    if (px_route_db_find(p->dbname))
        pkt_param_status(b, "tusk.commit_lsn", "0/0");
    pkt_backend_key(b, c->cancel_pid, c->cancel_key);
    pkt_ready(b, 'I');
    login_free(c);
    px_pool_client_set_state(c, CL_IDLE, p);
    c->last_active = px_now(w);
    if (w->cfg->log_connections)
        log_info("client %s login: db=%s user=%s", c->addr, c->dbname, c->user);
    send_now(c, b);
    if (!c->io.closed && c->io.rlen)
        px_conn_schedule(&c->io);
}

/* ------------------------------------------------------------------------------------------ */
/* data path                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static bool frontend_type_ok(uint8_t t)
{
    switch (t) {
    case 'Q':
    case 'P':
    case 'B':
    case 'E':
    case 'D':
    case 'C':
    case 'S':
    case 'H':
    case 'X':
    case 'F':
    case 'd':
    case 'c':
    case 'f':
        return true;
    default:
        return false;
    }
}

/* can a message of this type go through in pieces when it does not fit a buffer? */
static bool streamable(uint8_t t, bool tracking)
{
    return t == 'Q' || t == 'd' || t == 'F' || t == 'B' || (t == 'P' && !tracking);
}

static bool tracking_on(const px_client *c)
{
    return c->pool->mode != PM_SESSION && c->io.w->cfg->max_prepared_statements > 0;
}

/* a protocol violation: error and close */
static void protocol_error(px_client *c, const char *what)
{
    px_client_fail(c, "08P01", "%s", what);
}

/* does a simple query drop all prepared statements (DISCARD ALL / DEALLOCATE ALL)? */
static bool drops_prepared(const uint8_t *q, size_t len)
{
    size_t i = 0;
    while (i < len && (q[i] == ' ' || q[i] == '\n' || q[i] == '\t' || q[i] == '\r'))
        i++;
    if (len - i >= 11 && strncasecmp((const char *)q + i, "DISCARD ALL", 11) == 0)
        return true;
    if (len - i >= 10 && strncasecmp((const char *)q + i, "DEALLOCATE", 10) == 0) {
        const char *rest = (const char *)q + i + 10;
        size_t rl = len - i - 10;
        while (rl && (*rest == ' ' || *rest == '\n' || *rest == '\t')) {
            rest++;
            rl--;
        }
        if (rl >= 7 && strncasecmp(rest, "PREPARE", 7) == 0) {
            rest += 7;
            rl -= 7;
            while (rl && (*rest == ' ' || *rest == '\n' || *rest == '\t')) {
                rest++;
                rl--;
            }
        }
        return rl >= 3 && strncasecmp(rest, "ALL", 3) == 0;
    }
    return false;
}

/* make sure stmt is prepared on the client's server, injecting Parse (and an LRU eviction) */
static bool ensure_prepared(px_client *c, px_fwd *f, px_stmt *stmt)
{
    px_server *s = c->server;
    px_worker *w = c->io.w;
    if (px_sstmts_has(&s->stmts, stmt, true)) {
        s->pool->stats.prep_hits++;
        return true;
    }
    s->pool->stats.prep_misses++; /* the server lacks it: Parse injected (metrics.c) */
    pktbuf *b = &w->tmp;
    pktbuf_reset(b);
    int max = w->cfg->max_prepared_statements;
    while (max > 0 && s->stmts.count >= (uint32_t)max) {
        px_stmt *old = px_sstmts_lru(&s->stmts);
        if (!old)
            break;
        pkt_close(b, 'S', old->name);
        if (!px_server_expect(s, EXP_CLOSE, EXPF_SWALLOW, old))
            return false;
        px_sstmts_del(&s->stmts, old, &w->stmts);
    }
    pkt_parse(b, stmt->name, stmt->query, stmt->qlen, stmt->ntypes, stmt->types);
    if (b->failed || !px_server_expect(s, EXP_PARSE, EXPF_SWALLOW, stmt) ||
        !px_sstmts_add(&s->stmts, stmt))
        return false;
    px_fwd_emit(f, b->data, b->len);
    return true;
}

/* Parse of a name the client already uses, without a Close: PostgreSQL refuses it. The
 * server says so itself, in order with the rest of the batch and with the client's name:
 * the name is parsed twice there (the first one swallowed if it succeeds), so the second
 * fails with 42P05 and the server skips to Sync as the client expects. */
static bool refuse_redefinition(px_client *c, px_fwd *f, const char *name)
{
    px_server *s = c->server;
    pktbuf *b = &c->io.w->tmp;
    pktbuf_reset(b);
    pkt_parse(b, name, "", 0, 0, NULL);
    pkt_parse(b, name, "", 0, 0, NULL);
    if (b->failed || !px_server_expect(s, EXP_PARSE, EXPF_SWALLOW, NULL) ||
        !px_server_expect(s, EXP_PARSE, 0, NULL))
        return false;
    px_fwd_emit(f, b->data, b->len);
    return true;
}

/* the client needs a server for its next message: true when linked now */
static bool get_server(px_client *c, const uint8_t *msg, size_t len, size_t avail)
{
    px_worker *w = c->io.w;
    if (w->shutting_down && w->shutdown_how == 0) {
        px_client_fail(c, "57P01", "the proxy is shutting down");
        return false;
    }
    int node = proxy_route_pick(c, msg, len);
    if (node < 0)
        return false; /* waiting for a replica to catch up: route.c reschedules the client */
    px_pool *p = c->pool;
    px_pool *np = px_pool_sibling(p, node);
    if (np)
        p = np;
    if (px_pool_pipeline(p, c, msg, avail))
        return true;
    return px_pool_acquire(p, c);
}

/* walk a logged-in client's messages; returns the bytes consumed */
static size_t data_pass(px_client *c, const uint8_t *data, size_t len)
{
    if (c->admin)
        return px_admin_pass(c, data, len);
    px_worker *w = c->io.w;
    size_t pos = 0;
    px_fwd f;
    px_fwd_init(&f, c->server ? &c->server->io : NULL);
    bool tracking = tracking_on(c);
    uint32_t bufsz = w->buf_size;
    while (pos < len && !c->io.closed) {
        const uint8_t *p = data + pos;
        size_t avail = len - pos;
        if (c->io.pass_left) {
            size_t n = avail < c->io.pass_left ? avail : c->io.pass_left;
            if (c->io.pass_fwd)
                px_fwd_bytes(&f, p, n);
            c->io.pass_left -= (uint32_t)n;
            pos += n;
            continue;
        }
        uint8_t type;
        uint32_t total;
        int h = pkt_header(p, avail, &type, &total);
        if (h == 0)
            break;
        if (h < 0) {
            protocol_error(c, "invalid message length");
            break;
        }
        if (!frontend_type_ok(type)) {
            char m[64];
            snprintf(m, sizeof(m), "invalid frontend message type %d", type);
            protocol_error(c, m);
            break;
        }
        if (type == 'X') {
            pos += avail < total ? avail : total;
            px_fwd_finish(&f);
            px_client_close(c, "client sent Terminate");
            return pos;
        }
        bool whole = avail >= total;
        if (!whole) {
            if (total <= bufsz) {
                c->io.need = total;
                break;
            }
            if (!streamable(type, tracking)) {
                if (type == 'P' && total <= PX_MAX_WHOLE_MSG) {
                    c->io.need = total; /* grows rbuf to hold the whole Parse */
                    break;
                }
                protocol_error(c, "message too large");
                break;
            }
        }
        c->io.need = 0;
        if (c->rt && proxy_route_ext_active(c) &&
            proxy_route_ext(c, &f, p, whole ? total : avail, total)) {
            if (!whole) { /* dropped while skipping to Sync after an error */
                c->io.pass_left = total - (uint32_t)avail;
                c->io.pass_fwd = 0;
            }
            pos += whole ? total : avail; /* answered by the proxy (SET tusk.*, extended) */
            proxy_route_sent_none(c);
            continue;
        }
        if (whole && (type == 'Q' || type == 'P' || type == 'B') &&
            proxy_route_message(c, &f, p, total)) {
            pos += total; /* answered by the proxy (SET tusk.*) */
            proxy_route_sent_none(c);
            continue;
        }
        if (c->server && px_pool_pipe_behind(c->server, c))
            break; /* another client's read is queued behind ours: this waits for the switch */
        if (c->server && c->server->rt_retry)
            break; /* a replica refused the last statement (25006): it runs again on the
                    * primary first, so nothing may join it on this server meanwhile */
        if (!c->server) {
            /* PAUSE: the message waits in the buffer until RESUME (admin.c) */
            if (px_admin_paused(c->dbname) || !get_server(c, p, whole ? total : avail, avail))
                break; /* waiting; the message stays buffered */
            px_fwd_init(&f, &c->server->io);
            tracking = tracking_on(c);
        }
        px_server *s = c->server;
        bool ok = true;
        size_t take = whole ? total : avail;
        switch (type) {
        case 'Q':
        case 'F': {
            if (c->txn_status == 'I')
                c->xact_start = px_now(w);
            c->query_start = px_now(w);
            uint8_t fl = 0;
            if (c->pipelined && !c->pipe_queued) {
                fl = EXPF_SWITCH; /* the server passes to this client here */
                c->pipe_queued = true;
                c->pipe_msg_ok = true; /* px_pool_pipeline checked it */
            } else if (w->cfg->pipeline_reads && !c->pipelined) {
                s->pipe_key = type == 'Q' && c->txn_status == 'I' && s->qlen == 0 && whole &&
                                      proxy_route_pipe_ok(c, s)
                                  ? px_pool_read_key(s->pool, c, p, total)
                                  : 0;
                s->pipe_sent = c->query_start;
            }
            ok = px_server_expect(s, EXP_QUERY, fl, NULL);
            if (ok && c->rt)
                s->q[(s->qhead + s->qlen - 1) % s->qcap].text_hash = proxy_route_text_hash(c);
            if (type == 'Q' && tracking && whole && drops_prepared(p + 5, total - 5)) {
                px_sstmts_free(&s->stmts, &w->stmts);
                px_cstmts_free(c->stmts, &w->stmts); /* the client's names are free again */
            }
            px_fwd_bytes(&f, p, take);
            if (s->pipe_key && (c->pipelined || s->client == c))
                px_pool_pipe_pull(s); /* a waiting read may queue behind this one */
            break;
        }
        case 'S':
            ok = px_server_expect(s, EXP_SYNC, 0, NULL);
            px_fwd_bytes(&f, p, take);
            if (s->pipe_key && (c->pipelined || s->client == c))
                px_pool_pipe_pull(s); /* the read batch is out: a waiting read may follow */
            break;
        case 'E':
            if (c->txn_status == 'I' && s->qlen == 0)
                c->xact_start = px_now(w);
            c->query_start = px_now(w);
            ok = px_server_expect(s, EXP_EXECUTE, 0, NULL);
            if (ok && c->rt)
                s->q[(s->qhead + s->qlen - 1) % s->qcap].text_hash = proxy_route_text_hash(c);
            px_fwd_bytes(&f, p, take);
            break;
        case 'H':
        case 'd':
        case 'c':
        case 'f':
            px_fwd_bytes(&f, p, take);
            break;
        case 'P': {
            uint8_t fl = 0;
            if (c->pipelined && !c->pipe_queued) {
                /* the unnamed read batch px_pool_pipeline linked: the server passes to this
                 * client at its Parse */
                fl = EXPF_SWITCH;
                c->pipe_queued = true;
                c->pipe_msg_ok = true;
                c->xact_start = c->query_start = px_now(w);
            } else if (w->cfg->pipeline_reads && !c->pipelined && s->qlen == 0) {
                s->pipe_key = c->txn_status == 'I' ? px_pool_read_key(s->pool, c, p, avail) : 0;
                s->pipe_sent = px_now(w);
            }
            if (!tracking || !whole) {
                ok = px_server_expect(s, EXP_PARSE, fl, NULL);
                px_fwd_bytes(&f, p, take);
                break;
            }
            pkt_reader r;
            pkt_reader_init(&r, p + 5, total - 5);
            const char *name = pkt_read_str(&r);
            const char *query = pkt_read_str(&r);
            uint16_t nt = pkt_read_int16(&r);
            const uint8_t *types = pkt_read_bytes(&r, (size_t)nt * 4);
            if (r.bad) {
                protocol_error(c, "malformed Parse message");
                return pos;
            }
            if (!*name) {
                ok = px_server_expect(s, EXP_PARSE, fl, NULL);
                px_fwd_bytes(&f, p, take);
                break;
            }
            if (c->stmts && px_cstmts_get(c->stmts, name) && !px_stmt_name_is_shared(name)) {
                ok = refuse_redefinition(c, &f, name);
                break;
            }
            px_stmt *st = px_stmt_get(&w->stmts, query, strlen(query), nt, types);
            if (!st) {
                ok = false;
                break;
            }
            if (!c->stmts)
                c->stmts = calloc(1, sizeof(*c->stmts));
            ok = c->stmts && px_cstmts_put(c->stmts, name, st, &w->stmts);
            if (ok) {
                if (px_sstmts_has(&s->stmts, st, true)) {
                    ok = px_server_expect(s, EXP_FAKE_PARSE, 0, NULL);
                    if (ok && s->qlen == 1)
                        px_server_emit_fakes(s, NULL);
                } else {
                    /* prepare under the shared name; the client gets this ParseComplete */
                    ok = ensure_prepared(c, &f, st);
                    if (ok)
                        s->q[(s->qhead + s->qlen - 1) % s->qcap].flags &= ~EXPF_SWALLOW;
                }
            }
            px_stmt_unref(&w->stmts, st);
            break;
        }
        case 'B': {
            /* portal and statement names come first; only they change */
            const uint8_t *b0 = p + 5;
            size_t blen = take - 5;
            const uint8_t *e1 = memchr(b0, 0, blen);
            const uint8_t *e2 = e1 ? memchr(e1 + 1, 0, blen - (size_t)(e1 + 1 - b0)) : NULL;
            if (!e2) {
                if (whole) {
                    protocol_error(c, "malformed Bind message");
                    return pos;
                }
                if (avail < 4096 && total > avail) {
                    c->io.need = total < bufsz ? total : bufsz;
                    goto wait_more; /* names not here yet */
                }
                protocol_error(c, "Bind names too long");
                return pos;
            }
            const char *sname = (const char *)e1 + 1;
            px_stmt *st = tracking && *sname ? px_cstmts_get(c->stmts, sname) : NULL;
            if (!st) {
                ok = px_server_expect(s, EXP_BIND, 0, NULL);
                px_fwd_bytes(&f, p, take); /* unknown names: the server answers the error */
            } else {
                ok = ensure_prepared(c, &f, st) && px_server_expect(s, EXP_BIND, 0, NULL);
                size_t prefix = (size_t)(e2 + 1 - p);
                size_t portal_len = (size_t)(e1 - b0) + 1;
                /* the length field: old length - old statement name + new statement name */
                size_t newlen = (size_t)total - 1 - strlen(sname) + strlen(st->name);
                pktbuf *b = &w->tmp;
                pktbuf_reset(b);
                pkt_put_byte(b, 'B');
                pkt_put_int32(b, (uint32_t)newlen);
                pkt_put_bytes(b, b0, portal_len);
                pkt_put_str(b, st->name);
                px_fwd_emit(&f, b->data, b->len);
                px_fwd_bytes(&f, p + prefix, take - prefix);
            }
            break;
        }
        case 'D':
        case 'C': {
            pkt_reader r;
            pkt_reader_init(&r, p + 5, total - 5);
            uint8_t what = pkt_read_byte(&r);
            const char *name = pkt_read_str(&r);
            if (r.bad || (what != 'S' && what != 'P')) {
                protocol_error(c, type == 'D' ? "malformed Describe message"
                                              : "malformed Close message");
                return pos;
            }
            if (!tracking || what == 'P' || !*name) {
                ok = px_server_expect(s,
                                      type == 'C'   ? EXP_CLOSE
                                      : what == 'S' ? EXP_DESC_STMT
                                                    : EXP_DESC_PORTAL,
                                      0, NULL);
                px_fwd_bytes(&f, p, take);
                break;
            }
            if (type == 'C') {
                /* the shared statement stays on the servers; the client's name goes */
                px_cstmts_del(c->stmts, name, &w->stmts);
                ok = px_server_expect(s, EXP_FAKE_CLOSE, 0, NULL);
                if (ok && s->qlen == 1)
                    px_server_emit_fakes(s, NULL);
                break;
            }
            px_stmt *st = px_cstmts_get(c->stmts, name);
            if (!st) {
                ok = px_server_expect(s, EXP_DESC_STMT, 0, NULL);
                px_fwd_bytes(&f, p, take);
                break;
            }
            ok = ensure_prepared(c, &f, st) && px_server_expect(s, EXP_DESC_STMT, 0, NULL);
            pktbuf *b = &w->tmp;
            pktbuf_reset(b);
            pkt_begin(b, 'D');
            pkt_put_byte(b, 'S');
            pkt_put_str(b, st->name);
            pkt_end(b);
            px_fwd_emit(&f, b->data, b->len);
            break;
        }
        }
        if (!ok) {
            px_fwd_finish(&f);
            px_client_fail(c, "53200", "out of memory");
            return pos;
        }
        if (c->rt)
            proxy_route_sent(c, p, take, total);
        if (!whole) {
            c->io.pass_left = total - (uint32_t)avail;
            c->io.pass_fwd = 1;
        }
        pos += take;
        continue;
    wait_more:
        break;
    }
    px_fwd_finish(&f);
    if (!c->io.closed && px_conn_backlogged(&c->io) && !px_conn_flush(&c->io))
        px_client_close(c, "write error");
    if (!c->io.closed && c->server && px_conn_backlogged(&c->server->io))
        px_conn_pause(&c->io);
    return pos;
}

/* ------------------------------------------------------------------------------------------ */
/* server loss, timeouts, cancel                                                               */
/* ------------------------------------------------------------------------------------------ */

/* the linked server died. Transaction mode: an error for the outstanding requests and one
 * ReadyForQuery per Sync/Query the client still waits for, and the client goes on with another
 * server; a client inside a transaction, or in session mode, is closed (its session is gone). */
void px_client_server_lost(px_client *c, int outstanding, int ready, const uint8_t *err_msg,
                           size_t err_len)
{
    if (c->io.closed)
        return;
    px_worker *w = c->io.w;
    const char *state = "08006";
    const char *detail = NULL;
    if (err_msg && err_len > 5) {
        const char *cs = pkt_error_field(err_msg + 5, err_len - 5, 'C');
        const char *m = pkt_error_field(err_msg + 5, err_len - 5, 'M');
        if (cs && strlen(cs) == 5)
            state = cs;
        detail = m;
    }
    if (c->authq) {
        px_client_fail(c, state, "auth_query failed: server connection lost%s%s",
                       detail ? ": " : "", detail ? detail : "");
        return;
    }
    c->io.pass_left = 0;
    if (c->pool->mode == PM_SESSION || (outstanding == 0 && c->txn_status != 'I')) {
        px_client_fail(c, state, "server connection lost%s%s", detail ? ": " : "",
                       detail ? detail : "");
        return;
    }
    px_pool_client_set_state(c, CL_IDLE, c->pool);
    if (outstanding > 0) {
        pktbuf *b = &w->tmp;
        pktbuf_reset(b);
        pkt_error(b, 'E', "ERROR", state,
                  "the server connection was lost; the transaction was "
                  "rolled back",
                  "%s", detail ? detail : "server closed the connection unexpectedly");
        for (int i = 0; i < ready; i++)
            pkt_ready(b, 'I');
        c->txn_status = 'I';
        send_now(c, b);
    }
    if (!c->io.closed && c->io.read_paused)
        px_conn_resume(&c->io);
    else if (!c->io.closed && c->io.rlen)
        px_conn_schedule(&c->io);
}

/* the janitor's look at one client */
void px_client_check_timeouts(px_client *c, double now)
{
    px_config *cfg = c->io.w->cfg;
    if (c->io.closed)
        return;
    if (c->login || c->state == CL_WELCOME || c->state == CL_AUTHQ) {
        if (cfg->client_login_timeout > 0 && now - c->connect_time > cfg->client_login_timeout)
            px_client_fail(c, "08P01", "client_login_timeout: login not completed within %g s",
                           cfg->client_login_timeout);
        return;
    }
    /* a partial message (buffered, or streaming through) that stopped growing */
    bool partial = c->io.pass_left > 0 || (c->io.rlen > 0 && c->io.need > c->io.rlen);
    if (partial && cfg->client_packet_timeout > 0 &&
        now - c->io.last_progress > cfg->client_packet_timeout) {
        px_client_fail(c, "08P01", "client_packet_timeout: incomplete message for %g s",
                       cfg->client_packet_timeout);
        return;
    }
    if (c->state == CL_WAITING) {
        if (cfg->query_wait_timeout > 0 && now - c->wait_start > cfg->query_wait_timeout)
            px_client_fail(c, "57014",
                           "query_wait_timeout: no server connection became free within %g s",
                           cfg->query_wait_timeout);
        return;
    }
    if (c->state == CL_IDLE) {
        if (cfg->client_idle_timeout > 0 && now - c->last_active > cfg->client_idle_timeout)
            px_client_fail(c, "08006", "client_idle_timeout: idle for more than %g s",
                           cfg->client_idle_timeout);
        return;
    }
    if (c->state == CL_ACTIVE && c->server) {
        px_server *s = c->server;
        if (s->qlen == 0 && s->txn_status != 'I' && cfg->idle_transaction_timeout > 0 &&
            now - c->last_active > cfg->idle_transaction_timeout) {
            px_client_fail(c, "25P03",
                           "idle_transaction_timeout: idle in transaction for more "
                           "than %g s",
                           cfg->idle_transaction_timeout);
            return;
        }
        if (s->qlen > 0 && cfg->query_timeout > 0 && now - c->query_start > cfg->query_timeout) {
            px_client_fail(c, "57014", "query_timeout: query ran for more than %g s",
                           cfg->query_timeout);
            return;
        }
        if (s->qlen == 0 && s->txn_status == 'I' && c->pool->mode == PM_SESSION &&
            cfg->client_idle_timeout > 0 && now - c->last_active > cfg->client_idle_timeout)
            px_client_fail(c, "08006", "client_idle_timeout: idle for more than %g s",
                           cfg->client_idle_timeout);
    }
}

/* a CancelRequest for this client: forward it to the backend running its query */
void px_client_cancel(px_client *c)
{
    px_server *s = c->server;
    if (c->pipelined) {
        c->cancel_pending = true; /* the server runs another client's query now */
        return;
    }
    if (c->io.closed || !s || s->qlen == 0 || s->state != SV_ACTIVE)
        return; /* idle: nothing to cancel */
    const px_db *db = s->pool->db;
    if (s->node_idx < db->n_nodes)
        px_cancel_send(c->io.w, &db->nodes[s->node_idx], s->backend_pid, s->backend_key);
}
