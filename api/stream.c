/*
 * Streaming: Mastodon's streaming API over WebSocket (/api/v1/streaming) and Server-Sent
 * Events (/api/v1/streaming/user, /list?list=ID, /public), fed by Redis pub/sub (pubsub.c).
 *
 * Each worker keeps a registry channel name -> listening connections. The first local
 * listener of a channel asks the pubsub thread to subscribe, the last one to leave asks it to
 * unsubscribe; a message arrives rendered once (msg.c) and is written by reference to every
 * listener.
 *
 * Memory per idle stream is what decides how many a process holds (10k is the target): the
 * connection struct, one small node per subscription, and nothing else. Client WebSocket
 * frames are parsed by wslay's frame layer, whose context (4 kB of buffer) exists only while
 * a frame is partly received: it is freed whenever every byte handed to it has come back out
 * as complete frames. Server frames are written directly (unmasked, a few header bytes), so
 * one rendered message serves every WebSocket listener.
 *
 * Heartbeats: one timer per worker, not per connection: every sse_heartbeat_ms each SSE
 * stream gets a ":thump" comment, every ws_ping_ms each WebSocket a ping; a WebSocket that
 * sent nothing (no pong either) since the previous ping is closed, as Mastodon does.
 */
#include "api/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <wslay/wslay.h>
#include <xxhash.h>

#define MAX_SUBS_PER_CONN 32
#define MAX_WS_MESSAGE (64 * 1024)
#define WS_CTL_MAX 125

struct api_chan {
    api_chan *next;
    uint64_t hash;
    api_sub *subs;
    uint32_t nsubs;
    uint16_t busy; /* delivering: do not free */
    char name[];
};

struct api_sub {
    api_sub *cprev, *cnext; /* listeners of the channel */
    api_sub *next;          /* subscriptions of the connection */
    api_conn *conn;
    api_chan *ch;
};

/* ==========================================================================================
 * channel registry
 */
static api_chan **chan_slot(api_worker *w, const char *name, size_t len, uint64_t h)
{
    api_chan **pp = &w->chans[h & (w->chan_cap - 1)];
    while (*pp &&
           !((*pp)->hash == h && strlen((*pp)->name) == len && memcmp((*pp)->name, name, len) == 0))
        pp = &(*pp)->next;
    return pp;
}

static bool chans_grow(api_worker *w)
{
    size_t ncap = w->chan_cap ? w->chan_cap * 2 : 256;
    api_chan **nt = calloc(ncap, sizeof(*nt));
    if (!nt)
        return false;
    for (size_t i = 0; i < w->chan_cap; i++) {
        api_chan *c = w->chans[i];
        while (c) {
            api_chan *n = c->next;
            c->next = nt[c->hash & (ncap - 1)];
            nt[c->hash & (ncap - 1)] = c;
            c = n;
        }
    }
    free(w->chans);
    w->chans = nt;
    w->chan_cap = ncap;
    return true;
}

static api_chan *chan_lookup(api_worker *w, const char *name, size_t len)
{
    if (!w->chan_cap)
        return NULL;
    return *chan_slot(w, name, len, XXH3_64bits(name, len));
}

/* drop an empty channel and tell the pubsub thread */
static void chan_release(api_worker *w, api_chan *ch)
{
    if (ch->nsubs || ch->busy)
        return;
    api_chan **pp = chan_slot(w, ch->name, strlen(ch->name), ch->hash);
    if (*pp == ch)
        *pp = ch->next;
    w->nchans--;
    if (w->srv->pubsub)
        api_pubsub_unsub(w->srv->pubsub, w->id, ch->name);
    free(ch);
}

/* listen to chan on c; false if c already does, or is at its limit */
static bool sub_add(api_conn *c, const char *name)
{
    api_worker *w = c->w;
    size_t len = strlen(name);
    for (api_sub *s = c->subs; s; s = s->next)
        if (strcmp(s->ch->name, name) == 0)
            return true; /* already: Mastodon ignores a repeated subscribe */
    if (c->nsubs >= MAX_SUBS_PER_CONN)
        return false;
    uint64_t h = XXH3_64bits(name, len);
    if ((!w->chan_cap || w->nchans + 1 > w->chan_cap) && !chans_grow(w) && !w->chan_cap)
        return false;
    api_chan **slot = chan_slot(w, name, len, h);
    api_chan *ch = *slot;
    api_sub *s = calloc(1, sizeof(*s));
    if (!s)
        return false;
    if (!ch) {
        ch = calloc(1, sizeof(*ch) + len + 1);
        if (!ch) {
            free(s);
            return false;
        }
        ch->hash = h;
        memcpy(ch->name, name, len + 1);
        *slot = ch;
        w->nchans++;
        if (w->srv->pubsub)
            api_pubsub_sub(w->srv->pubsub, w->id, ch->name);
    }
    s->conn = c;
    s->ch = ch;
    s->cnext = ch->subs;
    if (ch->subs)
        ch->subs->cprev = s;
    ch->subs = s;
    ch->nsubs++;
    s->next = c->subs;
    c->subs = s;
    c->nsubs++;
    return true;
}

static void sub_unlink(api_worker *w, api_sub *s)
{
    api_chan *ch = s->ch;
    if (s->cprev)
        s->cprev->cnext = s->cnext;
    else
        ch->subs = s->cnext;
    if (s->cnext)
        s->cnext->cprev = s->cprev;
    ch->nsubs--;
    free(s);
    chan_release(w, ch);
}

/* stop listening to name on c */
static void sub_remove(api_conn *c, const char *name)
{
    for (api_sub **pp = &c->subs; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->ch->name, name) == 0) {
            api_sub *s = *pp;
            *pp = s->next;
            c->nsubs--;
            sub_unlink(c->w, s);
            return;
        }
    }
}

/* a stream connection closes */
void api_stream_conn_closed(api_conn *c)
{
    while (c->subs) {
        api_sub *s = c->subs;
        c->subs = s->next;
        sub_unlink(c->w, s);
    }
    c->nsubs = 0;
    if (c->ws) {
        wslay_frame_context_free(c->ws);
        c->ws = NULL;
    }
    free(c->ws_msg);
    c->ws_msg = NULL;
    free(c->ws_ctl);
    c->ws_ctl = NULL;
}

/* write one rendered message to every listener of its channel on this worker */
void api_stream_deliver(api_worker *w, api_msg *m)
{
    api_chan *ch = chan_lookup(w, m->data, m->chan_len);
    if (!ch)
        return;
    ch->busy++;
    api_sub *s = ch->subs;
    while (s) {
        /* writing may close s->conn, which unlinks s (only s: one sub per conn and channel) */
        api_sub *next = s->cnext;
        api_conn *c = s->conn;
        if (c->state == CONN_WS && !(c->flags & CONN_F_WS_CLOSING))
            api_conn_write_msg(c, m, m->ws_off, m->ws_len);
        else if (c->state == CONN_SSE)
            api_conn_write_msg(c, m, (c->flags & CONN_F_HTTP10) ? m->raw_off : m->sse_off,
                               (c->flags & CONN_F_HTTP10) ? m->raw_len : m->sse_len);
        s = next;
    }
    ch->busy--;
    chan_release(w, ch);
}

/* free the registry (connections are all closed by now) */
void api_stream_worker_free(api_worker *w)
{
    for (size_t i = 0; i < w->chan_cap; i++) {
        api_chan *c = w->chans[i];
        while (c) {
            api_chan *n = c->next;
            free(c);
            c = n;
        }
    }
    free(w->chans);
    w->chans = NULL;
    w->chan_cap = w->nchans = 0;
}

/* ==========================================================================================
 * stream names -> channels (Mastodon's streaming/index.js channelNameToIds)
 */
typedef enum { RES_OK, RES_ERROR, RES_LIST } resolve_rc;

typedef struct resolved {
    char chan[160];
    int status;
    const char *error;
    int64_t list_id;
} resolved;

static bool has_scope(const api_auth *a, const char *spec)
{
    return a->scopes & api_scopes_required(spec);
}

/* which channel a stream name means for this identity; lists need a database check */
static resolve_rc resolve(const api_auth *auth, bool authed, const char *stream, const char *list,
                          const char *tag, resolved *out)
{
    out->status = 400;
    out->error = NULL;
    bool is_public = strncmp(stream, "public", 6) == 0 && (stream[6] == '\0' || stream[6] == ':');
    bool is_hashtag = strcmp(stream, "hashtag") == 0 || strcmp(stream, "hashtag:local") == 0;
    if (!is_public && !is_hashtag) {
        if (!authed || auth->account_id == 0) {
            out->status = 401;
            out->error = "Missing access token";
            return RES_ERROR;
        }
        const char *need =
            strcmp(stream, "user:notification") == 0 ? "read:notifications" : "read:statuses";
        if (!has_scope(auth, need)) {
            out->status = 401;
            out->error = "Access token does not cover required scopes";
            return RES_ERROR;
        }
    }
    if (strcmp(stream, "user") == 0) {
        snprintf(out->chan, sizeof(out->chan), "timeline:%lld", (long long)auth->account_id);
        return RES_OK;
    }
    if (strcmp(stream, "user:notification") == 0) {
        snprintf(out->chan, sizeof(out->chan), "timeline:%lld:notifications",
                 (long long)auth->account_id);
        return RES_OK;
    }
    if (strcmp(stream, "direct") == 0) {
        snprintf(out->chan, sizeof(out->chan), "timeline:direct:%lld", (long long)auth->account_id);
        return RES_OK;
    }
    static const char *const publics[] = {"public",        "public:media",
                                          "public:local",  "public:local:media",
                                          "public:remote", "public:remote:media"};
    for (size_t i = 0; i < sizeof(publics) / sizeof(publics[0]); i++) {
        if (strcmp(stream, publics[i]) == 0) {
            snprintf(out->chan, sizeof(out->chan), "timeline:%s", stream);
            return RES_OK;
        }
    }
    if (is_hashtag) {
        size_t tl = tag ? strlen(tag) : 0;
        if (tl == 0 || tl > 100 || strpbrk(tag, " :\r\n")) {
            out->error = "No tag for stream provided";
            return RES_ERROR;
        }
        char low[128];
        for (size_t i = 0; i <= tl; i++)
            low[i] = (char)((tag[i] >= 'A' && tag[i] <= 'Z') ? tag[i] + 32 : tag[i]);
        snprintf(out->chan, sizeof(out->chan), "timeline:hashtag:%s%s", low,
                 stream[7] == ':' ? ":local" : "");
        return RES_OK;
    }
    if (strcmp(stream, "list") == 0) {
        if (!list || !api_parse_id(list, strlen(list), &out->list_id)) {
            out->status = 404;
            out->error = "Not authorized to stream this list";
            return RES_ERROR;
        }
        snprintf(out->chan, sizeof(out->chan), "timeline:list:%lld", (long long)out->list_id);
        return RES_LIST;
    }
    out->error = "Unknown stream type";
    return RES_ERROR;
}

static const api_stmt list_owner_stmt = {"stream_list_owner",
                                         "SELECT account_id FROM lists WHERE id = $1", 1};

/* ==========================================================================================
 * WebSocket output
 */

/* a server frame (unmasked) */
static void ws_send(api_conn *c, int opcode, const void *data, size_t len)
{
    uint8_t hdr[10];
    size_t hl = api_ws_frame_header(hdr, opcode, len);
    struct iovec iov[2] = {{hdr, hl}, {(void *)data, len}};
    api_conn_writev(c, iov, len ? 2 : 1);
}

/* {"error": msg, "status": n} as a text frame */
static void ws_send_error(api_conn *c, int status, const char *msg)
{
    api_buf b = {0};
    api_jw w;
    api_jw_init(&w, &b);
    api_jw_obj(&w);
    api_jw_kstr(&w, "error", msg);
    api_jw_kint(&w, "status", status);
    api_jw_obj_end(&w);
    if (!b.oom)
        ws_send(c, WSLAY_TEXT_FRAME, b.data, b.len);
    api_buf_free(&b);
}

/* send a close frame and close once it is out */
static void ws_close(api_conn *c, uint16_t code, const char *reason)
{
    if (c->flags & CONN_F_WS_CLOSING)
        return;
    uint8_t p[2 + 64];
    size_t rl = reason ? strlen(reason) : 0;
    if (rl > 64)
        rl = 64;
    p[0] = (uint8_t)(code >> 8);
    p[1] = (uint8_t)code;
    if (rl)
        memcpy(p + 2, reason, rl);
    ws_send(c, WSLAY_CONNECTION_CLOSE, p, 2 + rl);
    c->flags |= CONN_F_WS_CLOSING;
    api_conn_kick(c);
}

/* ==========================================================================================
 * subscribing a connection
 */
typedef struct list_check {
    api_conn *c;
    api_req *req; /* SSE: the request to answer; NULL for WebSocket */
    int64_t account_id;
    char chan[160];
    char list[24];
} list_check;

static void sse_start(api_req *req, const char *chan);

static void list_checked(void *arg, const PGresult *res, const char *err)
{
    list_check *lc = arg;
    api_conn *c = lc->c;
    bool ok = false;
    int status = 404;
    const char *msg = "Not authorized to stream this list";
    if (!res) {
        status = 503;
        msg = "Service unavailable";
    } else if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
        ok = strtoll(PQgetvalue(res, 0, 0), NULL, 10) == lc->account_id;
    }
    if (lc->req) {
        if (ok)
            sse_start(lc->req, lc->chan);
        else
            api_req_error(lc->req, status == 503 ? 503 : 404, status == 503 ? msg : "Not found");
    } else if (api_conn_open(c) && c->state == CONN_WS) {
        if (!ok)
            ws_send_error(c, status == 503 ? 503 : 401, msg);
        else if (!sub_add(c, lc->chan))
            ws_send_error(c, 400, "Too many subscriptions");
        api_conn_release(c);
    } else {
        api_conn_release(c);
    }
    free(lc);
}

/* start a list ownership check; false if it could not be queued */
static bool check_list(api_conn *c, api_req *req, const resolved *r)
{
    list_check *lc = calloc(1, sizeof(*lc));
    if (!lc)
        return false;
    lc->c = c;
    lc->req = req;
    lc->account_id = c->auth.account_id ? c->auth.account_id : (req ? req->auth.account_id : 0);
    snprintf(lc->chan, sizeof(lc->chan), "%s", r->chan);
    snprintf(lc->list, sizeof(lc->list), "%lld", (long long)r->list_id);
    const char *params[1] = {lc->list};
    if (!req)
        api_conn_hold(c);
    if (!api_db_query(c->w->db, &list_owner_stmt, params, list_checked, lc)) {
        if (!req)
            api_conn_release(c);
        free(lc);
        return false;
    }
    return true;
}

/* subscribe a WebSocket connection to a stream (from ?stream= or a message) */
static void ws_subscribe(api_conn *c, const char *stream, const char *list, const char *tag)
{
    resolved r;
    resolve_rc rc = resolve(&c->auth, c->auth.token_id != 0, stream, list, tag, &r);
    if (rc == RES_ERROR) {
        ws_send_error(c, r.status, r.error);
        return;
    }
    if (rc == RES_LIST) {
        if (!check_list(c, NULL, &r))
            ws_send_error(c, 503, "Service unavailable");
        return;
    }
    if (!sub_add(c, r.chan))
        ws_send_error(c, 400, "Too many subscriptions");
}

static void ws_unsubscribe(api_conn *c, const char *stream, const char *list, const char *tag)
{
    resolved r;
    resolve_rc rc = resolve(&c->auth, c->auth.token_id != 0, stream, list, tag, &r);
    if (rc == RES_ERROR) {
        ws_send_error(c, r.status, r.error);
        return;
    }
    sub_remove(c, r.chan);
}

/* "stream" may be a string or an array whose first element names it (Mastodon firstParam) */
static const char *first_param(json_t *v)
{
    if (json_is_array(v))
        v = json_array_get(v, 0);
    return json_string_value(v);
}

/* a string or number parameter as text */
static const char *param_text(json_t *v, char *buf, size_t cap)
{
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf;
    }
    return NULL;
}

/* a complete text message from the client */
static void ws_message(api_conn *c, const char *text, size_t len)
{
    json_t *root = json_loadb(text, len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root); /* Mastodon ignores what it cannot parse */
        return;
    }
    const char *type = json_string_value(json_object_get(root, "type"));
    const char *stream = first_param(json_object_get(root, "stream"));
    char lb[32];
    const char *list = param_text(json_object_get(root, "list"), lb, sizeof(lb));
    const char *tag = json_string_value(json_object_get(root, "tag"));
    if (type && stream) {
        if (strcmp(type, "subscribe") == 0)
            ws_subscribe(c, stream, list, tag);
        else if (strcmp(type, "unsubscribe") == 0)
            ws_unsubscribe(c, stream, list, tag);
    }
    json_decref(root);
}

/* ==========================================================================================
 * WebSocket input: wslay's frame layer, fed from the bytes the server read
 */
static _Thread_local const char *in_ptr;
static _Thread_local size_t in_len;

static ssize_t ws_recv_cb(uint8_t *buf, size_t len, int flags, void *user)
{
    api_conn *c = user;
    if (in_len == 0)
        return -1; /* wslay reports WANT_READ */
    size_t n = len < in_len ? len : in_len;
    memcpy(buf, in_ptr, n);
    in_ptr += n;
    in_len -= n;
    c->ws_fed += n;
    return (ssize_t)n;
}

static ssize_t ws_send_cb(const uint8_t *data, size_t len, int flags, void *user)
{
    return -1; /* we write frames ourselves */
}

static int ws_genmask_cb(uint8_t *buf, size_t len, void *user)
{
    memset(buf, 0, len);
    return 0;
}

static const struct wslay_frame_callbacks ws_callbacks = {ws_send_cb, ws_recv_cb, ws_genmask_cb};

/* append a piece of the current message or control frame */
static bool ws_collect(api_conn *c, const uint8_t *data, size_t len, size_t max)
{
    if (c->ws_msg_len + len > max)
        return false;
    if (!c->ws_msg) {
        c->ws_msg = malloc(max + 1);
        if (!c->ws_msg)
            return false;
    }
    memcpy(c->ws_msg + c->ws_msg_len, data, len);
    c->ws_msg_len += (uint32_t)len;
    return true;
}

/* a control frame is complete (its payload is in ctl) */
static void ws_control(api_conn *c, int opcode, const uint8_t *ctl, size_t len)
{
    if (opcode == WSLAY_PING) {
        ws_send(c, WSLAY_PONG, ctl, len);
    } else if (opcode == WSLAY_CONNECTION_CLOSE) {
        uint16_t code = 1000;
        if (len == 1) {
            ws_close(c, 1002, "bad close frame");
            return;
        }
        if (len >= 2)
            code = (uint16_t)(ctl[0] << 8 | ctl[1]);
        (void)code;
        ws_close(c, 1000, NULL);
    }
    /* pong: being alive is all it says */
}

/* bytes arrived on a WebSocket connection */
void api_stream_ws_input(api_conn *c, const char *data, size_t len)
{
    if (c->flags & CONN_F_WS_CLOSING)
        return; /* after our close frame only the TCP close matters */
    c->flags |= CONN_F_WS_ALIVE;
    if (!c->ws) {
        if (wslay_frame_context_init((wslay_frame_context_ptr *)&c->ws, &ws_callbacks, c) != 0) {
            api_conn_close(c, "out of memory");
            return;
        }
        c->ws_fed = c->ws_consumed = 0;
        c->ws_frame_left = 0;
    }
    in_ptr = data;
    in_len = len;
    for (;;) {
        struct wslay_frame_iocb iocb;
        bool new_frame = c->ws_frame_left == 0;
        ssize_t r = wslay_frame_recv(c->ws, &iocb);
        if (r == WSLAY_ERR_WANT_READ)
            break;
        if (r < 0) {
            ws_close(c, 1002, "protocol error");
            break;
        }
        if (new_frame) {
            size_t hl = 2 +
                        (iocb.payload_length >= 126 ? (iocb.payload_length > 0xFFFF ? 8 : 2) : 0) +
                        (iocb.mask ? 4 : 0);
            c->ws_consumed += hl;
            c->ws_frame_left = iocb.payload_length;
            if (!iocb.mask || iocb.rsv) {
                ws_close(c, 1002, iocb.mask ? "reserved bits set" : "client frames must be masked");
                break;
            }
            if (wslay_is_ctrl_frame(iocb.opcode)) {
                if (iocb.opcode != WSLAY_CONNECTION_CLOSE && iocb.opcode != WSLAY_PING &&
                    iocb.opcode != WSLAY_PONG) {
                    ws_close(c, 1002, "unknown opcode");
                    break;
                }
            } else if (iocb.opcode == WSLAY_CONTINUATION_FRAME) {
                if (!c->ws_msg_op) {
                    ws_close(c, 1002, "continuation without a message");
                    break;
                }
            } else if (iocb.opcode == WSLAY_TEXT_FRAME || iocb.opcode == WSLAY_BINARY_FRAME) {
                if (c->ws_msg_op) {
                    ws_close(c, 1002, "new message inside a fragmented one");
                    break;
                }
                c->ws_msg_op = iocb.opcode;
                c->ws_msg_len = 0;
            } else {
                ws_close(c, 1002, "unknown opcode");
                break;
            }
            if (iocb.payload_length > MAX_WS_MESSAGE) {
                ws_close(c, 1009, "message too big");
                break;
            }
        }
        c->ws_consumed += iocb.data_length;
        c->ws_frame_left -= iocb.data_length;
        bool frame_done = c->ws_frame_left == 0;
        if (wslay_is_ctrl_frame(iocb.opcode)) {
            /* wslay guarantees <= 125 bytes; normally all in one piece, kept per connection
             * only when a frame arrives split */
            if (frame_done && !c->ws_ctl) {
                ws_control(c, iocb.opcode, iocb.data, iocb.data_length);
            } else {
                if (!c->ws_ctl) {
                    c->ws_ctl = malloc(WS_CTL_MAX);
                    c->ws_ctl_len = 0;
                    if (!c->ws_ctl) {
                        api_conn_close(c, "out of memory");
                        break;
                    }
                }
                if (c->ws_ctl_len + iocb.data_length > WS_CTL_MAX) {
                    ws_close(c, 1002, "control frame too long");
                    break;
                }
                memcpy(c->ws_ctl + c->ws_ctl_len, iocb.data, iocb.data_length);
                c->ws_ctl_len = (uint8_t)(c->ws_ctl_len + iocb.data_length);
                if (frame_done) {
                    uint8_t *ctl = c->ws_ctl;
                    c->ws_ctl = NULL;
                    ws_control(c, iocb.opcode, ctl, c->ws_ctl_len);
                    free(ctl);
                }
            }
        } else {
            if (c->ws_msg_op == WSLAY_TEXT_FRAME &&
                !ws_collect(c, iocb.data, iocb.data_length, MAX_WS_MESSAGE)) {
                ws_close(c, 1009, "message too big");
                break;
            }
            if (frame_done && iocb.fin) {
                if (c->ws_msg_op == WSLAY_TEXT_FRAME) {
                    if (!api_utf8_valid(c->ws_msg ? c->ws_msg : "", c->ws_msg_len)) {
                        ws_close(c, 1007, "invalid UTF-8");
                        break;
                    }
                    ws_message(c, c->ws_msg ? c->ws_msg : "", c->ws_msg_len);
                }
                c->ws_msg_op = 0;
                c->ws_msg_len = 0;
                free(c->ws_msg);
                c->ws_msg = NULL;
            }
        }
        if (!api_conn_open(c) || (c->flags & CONN_F_WS_CLOSING))
            break;
    }
    in_ptr = NULL;
    in_len = 0;
    /* idle again: every byte fed came back as whole frames. Free the parser (4 kB). */
    if (api_conn_open(c) && c->ws && c->ws_frame_left == 0 && c->ws_fed == c->ws_consumed &&
        !c->ws_msg_op && !c->ws_ctl) {
        wslay_frame_context_free(c->ws);
        c->ws = NULL;
    }
}

/* ==========================================================================================
 * handlers
 */

/* GET /api/v1/streaming (WebSocket handshake) */
void api_stream_ws_handler(api_req *req)
{
    api_conn *c = req->conn;
    size_t l;
    const char *up = api_req_header(req, "upgrade", &l);
    if (!req->upgrade || !up || l != 9 || strncasecmp(up, "websocket", 9) != 0) {
        api_req_error(req, 400, "Expected a WebSocket upgrade");
        return;
    }
    const char *ver = api_req_header(req, "sec-websocket-version", &l);
    if (!ver || l != 2 || memcmp(ver, "13", 2) != 0) {
        api_req_add_header(req, "Sec-WebSocket-Version: 13");
        api_req_error(req, 426, "Unsupported WebSocket version");
        return;
    }
    const char *key = api_req_header(req, "sec-websocket-key", &l);
    char accept[29];
    if (!key || !api_ws_accept(key, l, accept)) {
        api_req_error(req, 400, "Invalid Sec-WebSocket-Key");
        return;
    }
    size_t pl = 0;
    const char *proto = api_req_header(req, "sec-websocket-protocol", &pl);
    api_buf *h = &req->w->scratch;
    api_buf_reset(h);
    api_buf_puts(h, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Accept: ");
    api_buf_puts(h, accept);
    api_buf_puts(h, "\r\n");
    if (proto && pl) {
        /* the client offered its token as the protocol: selecting it is what browsers need */
        size_t first = strcspn(proto, ", ");
        api_buf_puts(h, "Sec-WebSocket-Protocol: ");
        api_buf_append(h, proto, first);
        api_buf_puts(h, "\r\n");
    }
    api_buf_puts(h, "\r\n");
    if (h->oom) {
        api_req_error(req, 503, "Service unavailable");
        return;
    }
    api_conn_write(c, h->data, h->len);
    if (!api_conn_open(c)) {
        api_req_finish_stream(req);
        return;
    }
    if (req->authed)
        c->auth = req->auth;
    api_conn_become_stream(c, CONN_WS);
    const char *stream = api_req_param(req, "stream");
    if (stream && *stream)
        ws_subscribe(c, stream, api_req_param(req, "list"), api_req_param(req, "tag"));
    api_req_finish_stream(req);
}

/* write the SSE head, subscribe, and become a stream */
static void sse_start(api_req *req, const char *chan)
{
    api_conn *c = req->conn;
    if (!api_conn_open(c)) {
        api_req_finish_stream(req);
        return;
    }
    api_buf *h = &req->w->scratch;
    api_buf_reset(h);
    api_buf_puts(h, "HTTP/1.1 200 OK\r\nDate: ");
    api_buf_puts(h, api_worker_date(req->w));
    api_buf_puts(h, "\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
                    "Access-Control-Allow-Origin: *\r\nX-Accel-Buffering: no\r\n");
    if (req->http10)
        api_buf_puts(h, "Connection: close\r\n\r\n:)\n");
    else
        api_buf_puts(h, "Transfer-Encoding: chunked\r\n\r\n3\r\n:)\n\r\n");
    if (h->oom) {
        api_req_error(req, 503, "Service unavailable");
        return;
    }
    if (req->http10)
        c->flags |= CONN_F_HTTP10;
    api_conn_write(c, h->data, h->len);
    if (!api_conn_open(c)) {
        api_req_finish_stream(req);
        return;
    }
    if (req->authed)
        c->auth = req->auth;
    api_conn_become_stream(c, CONN_SSE);
    if (!sub_add(c, chan))
        api_conn_close(c, "cannot subscribe");
    api_req_finish_stream(req);
}

/* GET /api/v1/streaming/<name> (SSE) */
void api_stream_sse_handler(api_req *req)
{
    /* the stream name is the path after /api/v1/streaming/, with '/' read as ':' */
    const char *p = req->path + strlen("/api/v1/streaming/");
    char name[64];
    size_t n = strlen(p);
    while (n && p[n - 1] == '/')
        n--;
    if (n == 0 || n >= sizeof(name)) {
        api_req_error(req, 404, "Not found");
        return;
    }
    for (size_t i = 0; i < n; i++)
        name[i] = p[i] == '/' ? ':' : p[i];
    name[n] = '\0';
    const char *only_media = api_req_param(req, "only_media");
    if (strncmp(name, "public", 6) == 0 && only_media &&
        (strcmp(only_media, "true") == 0 || strcmp(only_media, "1") == 0))
        strncat(name, ":media", sizeof(name) - strlen(name) - 1);
    resolved r;
    resolve_rc rc = resolve(&req->auth, req->authed, name, api_req_param(req, "list"),
                            api_req_param(req, "tag"), &r);
    if (rc == RES_ERROR) {
        api_req_error(req, r.status == 401 ? 401 : (r.status == 400 ? 400 : 404), r.error);
        return;
    }
    if (rc == RES_LIST) {
        if (!check_list(req->conn, req, &r))
            api_req_error(req, 503, "Service unavailable");
        return;
    }
    sse_start(req, r.chan);
}

/* ==========================================================================================
 * heartbeats
 */
void api_stream_tick(api_worker *w, double now)
{
    const api_config *cfg = w->srv->cfg;
    bool sse = now >= w->next_sse_beat;
    bool ws = now >= w->next_ws_ping;
    if (sse)
        w->next_sse_beat = now + cfg->sse_heartbeat_ms / 1000.0;
    if (ws)
        w->next_ws_ping = now + cfg->ws_ping_ms / 1000.0;
    if (!sse && !ws)
        return;
    static const char thump_chunked[] = "7\r\n:thump\n\r\n";
    static const char thump_raw[] = ":thump\n";
    static const uint8_t ping[] = {0x89, 0x00};
    api_conn *c = w->streams;
    while (c) {
        api_conn *next = c->snext; /* c may close below */
        if (c->state == CONN_SSE && sse) {
            if (c->flags & CONN_F_HTTP10)
                api_conn_write(c, thump_raw, sizeof(thump_raw) - 1);
            else
                api_conn_write(c, thump_chunked, sizeof(thump_chunked) - 1);
        } else if (c->state == CONN_WS && ws && !(c->flags & CONN_F_WS_CLOSING)) {
            if (!(c->flags & CONN_F_WS_ALIVE)) {
                api_conn_close(c, "no pong");
            } else {
                c->flags &= (uint16_t)~CONN_F_WS_ALIVE;
                api_conn_write(c, ping, sizeof(ping));
            }
        }
        c = next;
    }
}
