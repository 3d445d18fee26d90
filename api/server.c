/*
 * HTTP/1.1 server: worker threads, each with its own libev loop and its own SO_REUSEPORT
 * listening socket, so the kernel spreads connections and a connection never leaves its
 * thread (no locks on the request path). Requests are parsed by llhttp; keep-alive and
 * pipelining are handled by pausing the parser after each message, answering it (now, or
 * later for an async handler, during which the connection stops reading), then resuming on
 * the bytes that followed.
 *
 * Memory: an idle connection holds its struct and llhttp state only. Input is read into a
 * per-worker scratch buffer and copied into a request only as far as the request needs it;
 * output is written at once and only the part the socket would not take is queued. Stream
 * messages are queued by reference, not copied.
 *
 * Limits: header bytes (431), body bytes (413, decided from Content-Length before the body
 * arrives), request_timeout_ms from the first byte of a request to its last (408), keep-alive
 * idle timeout, max_connections per worker. After an error answer the connection is closed
 * "lingering": our side shuts down writing and discards input for a while, so the client
 * reads the answer instead of a reset.
 */
#include "api/internal.h"

#include "llhttp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define RBUF_SIZE (64 * 1024)
#define LINGER_SECONDS 2.0
#define HTTP_OUT_HIGH_WATER (256 * 1024) /* stop reading requests while this much is queued */
#define MAX_IOV 64

struct api_outchunk {
    api_outchunk *next;
    api_msg *msg; /* shared bytes, or NULL when the bytes follow the struct */
    const char *ptr;
    uint32_t len;
    char data[];
};

static llhttp_settings_t parser_settings;
static pthread_once_t settings_once = PTHREAD_ONCE_INIT;

static void conn_io_cb(struct ev_loop *loop, ev_io *w, int revents);
static void conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void conn_feed(api_conn *c, const char *data, size_t len);
static void conn_update_io(api_conn *c);
static void conn_flush(api_conn *c);
static void conn_free(api_conn *c);
static void conn_arm_timer(api_conn *c, double seconds);
static void conn_after_output(api_conn *c);

/* ==========================================================================================
 * connection output
 */

/* queue what the socket did not take */
static bool queue_chunk(api_conn *c, const char *data, size_t len, api_msg *m)
{
    api_outchunk *ch;
    if (m) {
        ch = malloc(sizeof(*ch));
        if (!ch)
            return false;
        api_msg_ref(m);
        ch->ptr = data;
    } else {
        ch = malloc(sizeof(*ch) + len);
        if (!ch)
            return false;
        memcpy(ch->data, data, len);
        ch->ptr = ch->data;
    }
    ch->msg = m;
    ch->len = (uint32_t)len;
    ch->next = NULL;
    if (c->out_tail)
        c->out_tail->next = ch;
    else
        c->out_head = ch;
    c->out_tail = ch;
    c->out_bytes += (uint32_t)len;
    return true;
}

/* write iov now if nothing is queued, queue the rest */
static void conn_writev(api_conn *c, struct iovec *iov, int n, api_msg *m)
{
    if (c->flags & CONN_F_CLOSED)
        return;
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    if (total == 0)
        return;
    size_t sent = 0;
    if (!c->out_head) {
        ssize_t r = writev(c->fd, iov, n);
        if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            api_conn_close(c, "write failed");
            return;
        }
        if (r > 0)
            sent = (size_t)r;
    }
    if (sent == total)
        return;
    /* streams: a client this far behind is not reading; drop it rather than grow */
    if ((c->state == CONN_SSE || c->state == CONN_WS) &&
        c->out_bytes + (total - sent) > c->w->srv->cfg->stream_queue_bytes) {
        api_conn_close(c, "stream client too slow");
        return;
    }
    for (int i = 0; i < n; i++) {
        size_t l = iov[i].iov_len;
        if (sent >= l) {
            sent -= l;
            continue;
        }
        if (!queue_chunk(c, (const char *)iov[i].iov_base + sent, l - sent, m)) {
            api_conn_close(c, "out of memory");
            return;
        }
        sent = 0;
    }
    conn_update_io(c);
}

/* queue several pieces (copied) */
void api_conn_writev(api_conn *c, struct iovec *iov, int n)
{
    conn_writev(c, iov, n, NULL);
}

/* close after flushing, if the answer asked for it and nothing is queued */
void api_conn_kick(api_conn *c)
{
    if (api_conn_open(c) && !c->out_head)
        conn_after_output(c);
}

/* queue bytes (copied) */
void api_conn_write(api_conn *c, const void *data, size_t len)
{
    struct iovec iov = {(void *)data, len};
    conn_writev(c, &iov, 1, NULL);
}

/* queue a slice of a shared message (referenced) */
void api_conn_write_msg(api_conn *c, api_msg *m, uint32_t off, uint32_t len)
{
    struct iovec iov = {m->data + off, len};
    conn_writev(c, &iov, 1, m);
}

/* socket writable: send queued chunks */
static void conn_flush(api_conn *c)
{
    while (c->out_head) {
        struct iovec iov[MAX_IOV];
        int n = 0;
        for (api_outchunk *ch = c->out_head; ch && n < MAX_IOV; ch = ch->next) {
            iov[n].iov_base = (void *)ch->ptr;
            iov[n].iov_len = ch->len;
            n++;
        }
        ssize_t r = writev(c->fd, iov, n);
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                break;
            api_conn_close(c, "write failed");
            return;
        }
        size_t left = (size_t)r;
        c->out_bytes -= (uint32_t)left;
        while (left && c->out_head) {
            api_outchunk *ch = c->out_head;
            if (left < ch->len) {
                ch->ptr += left;
                ch->len -= (uint32_t)left;
                left = 0;
                break;
            }
            left -= ch->len;
            c->out_head = ch->next;
            if (!c->out_head)
                c->out_tail = NULL;
            if (ch->msg)
                api_msg_unref(ch->msg);
            free(ch);
        }
    }
    if (!c->out_head)
        conn_after_output(c);
    if (!(c->flags & CONN_F_CLOSED))
        conn_update_io(c);
}

/* free queued output */
static void drop_output(api_conn *c)
{
    api_outchunk *ch = c->out_head;
    while (ch) {
        api_outchunk *n = ch->next;
        if (ch->msg)
            api_msg_unref(ch->msg);
        free(ch);
        ch = n;
    }
    c->out_head = c->out_tail = NULL;
    c->out_bytes = 0;
}

/* ==========================================================================================
 * connection state
 */

/* which events the connection waits for */
static void conn_update_io(api_conn *c)
{
    if (c->flags & CONN_F_CLOSED)
        return;
    int ev = 0;
    if (c->out_head)
        ev |= EV_WRITE;
    bool reading = !(c->flags & CONN_F_READ_EOF);
    /* A busy connection keeps its read interest until input actually arrives (a pipelining
     * client, or EOF): switching it off and on around every async request cost an epoll_ctl
     * per request (libev re-adds the fd, the kernel answers EEXIST). */
    if (c->state == CONN_HTTP &&
        ((c->flags & CONN_F_CLOSE_AFTER) || c->out_bytes > HTTP_OUT_HIGH_WATER ||
         (c->flags & (CONN_F_BUSY | CONN_F_READ_HELD)) == (CONN_F_BUSY | CONN_F_READ_HELD)))
        reading = false;
    if (reading)
        ev |= EV_READ;
    if (ev == c->io.events && ev_is_active(&c->io))
        return;
    ev_io_stop(c->w->loop, &c->io);
    ev_io_set(&c->io, c->fd, ev);
    if (ev)
        ev_io_start(c->w->loop, &c->io);
}

static void conn_arm_timer(api_conn *c, double seconds)
{
    ev_timer_stop(c->w->loop, &c->timer);
    ev_timer_set(&c->timer, seconds, 0);
    ev_timer_start(c->w->loop, &c->timer);
}

/* start the lingering close: answer sent, stop writing, discard input for a while */
static void conn_linger(api_conn *c)
{
    if (c->state == CONN_LINGER || (c->flags & CONN_F_CLOSED))
        return;
    c->state = CONN_LINGER;
    shutdown(c->fd, SHUT_WR);
    if (c->flags & CONN_F_READ_EOF) {
        api_conn_close(c, NULL);
        return;
    }
    conn_arm_timer(c, LINGER_SECONDS);
    conn_update_io(c);
}

/* the output queue just emptied */
static void conn_after_output(api_conn *c)
{
    if (c->flags & CONN_F_CLOSED)
        return;
    if (c->state == CONN_HTTP && (c->flags & CONN_F_CLOSE_AFTER) && !(c->flags & CONN_F_BUSY))
        conn_linger(c);
    else if (c->state == CONN_HTTP && (c->flags & CONN_F_READ_EOF) && !(c->flags & CONN_F_BUSY))
        api_conn_close(c, NULL);
    else if (c->state == CONN_WS && (c->flags & CONN_F_WS_CLOSING))
        api_conn_close(c, NULL);
}

static void drop_parser(api_conn *c)
{
    free(c->parser);
    c->parser = NULL;
}

/* is it open */
bool api_conn_open(const api_conn *c)
{
    return !(c->flags & CONN_F_CLOSED);
}

/* hold memory during an async operation */
void api_conn_hold(api_conn *c)
{
    c->refs++;
}

/* drop a hold; frees a closed connection when it was the last */
void api_conn_release(api_conn *c)
{
    if (c->refs > 0)
        c->refs--;
    if (c->refs == 0 && (c->flags & CONN_F_CLOSED))
        conn_free(c);
}

static void conn_free(api_conn *c)
{
    if (c->req)
        api_req_release(c->w, c->req);
    free(c);
}

/* close the socket now; memory stays while async work holds it */
void api_conn_close(api_conn *c, const char *why)
{
    if (c->flags & CONN_F_CLOSED)
        return;
    api_worker *w = c->w;
    if (why)
        log_debug("closing connection fd %d: %s", c->fd, why);
    c->flags |= CONN_F_CLOSED;
    ev_io_stop(w->loop, &c->io);
    ev_timer_stop(w->loop, &c->timer);
    if (c->state == CONN_SSE || c->state == CONN_WS) {
        api_stream_conn_closed(c);
        if (c->sprev)
            c->sprev->snext = c->snext;
        else if (w->streams == c)
            w->streams = c->snext;
        if (c->snext)
            c->snext->sprev = c->sprev;
        c->sprev = c->snext = NULL;
        w->nstreams--;
    }
    close(c->fd);
    c->fd = -1;
    drop_output(c);
    free(c->pending);
    c->pending = NULL;
    c->pending_len = 0;
    drop_parser(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    w->nconns--;
    if (!ev_is_active(&w->accept_io) && !atomic_load(&w->stopping) && w->listen_fd >= 0 &&
        !ev_is_active(&w->accept_retry))
        ev_io_start(w->loop, &w->accept_io);
    if (c->req && !(c->flags & CONN_F_BUSY)) {
        api_req_release(w, c->req);
        c->req = NULL;
    }
    if (c->refs == 0)
        conn_free(c);
}

/* switch to streaming */
void api_conn_become_stream(api_conn *c, int state)
{
    api_worker *w = c->w;
    c->state = (uint8_t)state;
    ev_timer_stop(w->loop, &c->timer);
    c->flags &= (uint16_t) ~(CONN_F_IN_REQUEST | CONN_F_CLOSE_AFTER);
    c->snext = w->streams;
    c->sprev = NULL;
    if (w->streams)
        w->streams->sprev = c;
    w->streams = c;
    w->nstreams++;
    if (state == CONN_WS)
        c->flags |= CONN_F_WS_ALIVE;
}

/* the request is answered: go on with pipelined bytes or wait for the next request */
void api_conn_request_done(api_conn *c)
{
    api_worker *w = c->w;
    bool was_busy = c->flags & CONN_F_BUSY;
    c->flags &= (uint16_t) ~(CONN_F_BUSY | CONN_F_READ_HELD);
    if (c->req) {
        api_req_release(w, c->req);
        c->req = NULL;
    }
    if (c->flags & CONN_F_CLOSED) {
        if (was_busy)
            api_conn_release(c);
        return;
    }
    /* the hold taken at dispatch is dropped at the end: conn_feed below may close c */
    api_conn_hold(c);
    if (was_busy)
        c->refs--;
    if (c->state != CONN_HTTP)
        drop_parser(c);
    if (c->pending && !(c->flags & CONN_F_CLOSED)) {
        char *buf = c->pending;
        size_t len = c->pending_len;
        c->pending = NULL;
        c->pending_len = 0;
        if (c->state == CONN_HTTP)
            conn_feed(c, buf, len);
        else if (c->state == CONN_WS)
            api_stream_ws_input(c, buf, len);
        free(buf);
    }
    if (!(c->flags & CONN_F_CLOSED)) {
        if (c->state == CONN_HTTP && !(c->flags & CONN_F_BUSY) && !c->out_head)
            conn_after_output(c);
        if (!(c->flags & CONN_F_CLOSED) && c->state == CONN_HTTP &&
            !(c->flags & (CONN_F_BUSY | CONN_F_IN_REQUEST | CONN_F_CLOSE_AFTER)) &&
            c->state != CONN_LINGER)
            conn_arm_timer(c, w->srv->cfg->keepalive_timeout_ms / 1000.0);
        conn_update_io(c);
    }
    api_conn_release(c);
}

/* ==========================================================================================
 * HTTP parsing (llhttp callbacks)
 */

static api_req *cur_req(llhttp_t *p)
{
    api_conn *c = p->data;
    return c->req;
}

/* count bytes against max_header_bytes */
static bool header_budget(api_req *req, size_t n)
{
    req->header_bytes += n;
    if (req->header_bytes > req->w->srv->cfg->max_header_bytes) {
        req->error = 431;
        return false;
    }
    return true;
}

static int on_message_begin(llhttp_t *p)
{
    api_conn *c = p->data;
    if (!c->req)
        c->req = api_req_new(c->w, c);
    return c->req ? 0 : HPE_USER;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    api_req *req = cur_req(p);
    if (!header_budget(req, len))
        return HPE_USER;
    api_buf_append(&req->head_buf, at, len);
    req->url_len += (uint32_t)len;
    return 0;
}

static int on_url_complete(llhttp_t *p)
{
    api_buf_putc(&cur_req(p)->head_buf, '\0');
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    api_req *req = cur_req(p);
    if (!header_budget(req, len))
        return HPE_USER;
    if (req->last_was_value || req->nheaders == 0) {
        if (req->nheaders == API_MAX_HEADERS) {
            req->error = 431;
            return HPE_USER;
        }
        api_header *h = &req->headers[req->nheaders++];
        h->name_off = (uint32_t)req->head_buf.len;
        h->name_len = 0;
        h->val_off = 0;
        h->val_len = 0;
        req->last_was_value = false;
    }
    api_buf_append(&req->head_buf, at, len);
    req->headers[req->nheaders - 1].name_len += (uint32_t)len;
    return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    api_req *req = cur_req(p);
    api_buf_putc(&req->head_buf, '\0');
    req->headers[req->nheaders - 1].val_off = (uint32_t)req->head_buf.len;
    req->last_was_value = true;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    api_req *req = cur_req(p);
    if (!header_budget(req, len))
        return HPE_USER;
    if (req->nheaders == 0)
        return HPE_USER;
    api_buf_append(&req->head_buf, at, len);
    req->headers[req->nheaders - 1].val_len += (uint32_t)len;
    return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    api_req *req = cur_req(p);
    api_buf_putc(&req->head_buf, '\0');
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    api_conn *c = p->data;
    api_req *req = c->req;
    if (req->head_buf.oom) {
        req->error = 503;
        return -1;
    }
    req->method = llhttp_get_method(p);
    req->http10 = llhttp_get_http_major(p) == 1 && llhttp_get_http_minor(p) == 0;
    req->upgrade = llhttp_get_upgrade(p);
    const api_config *cfg = c->w->srv->cfg;
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > cfg->max_body_bytes) {
        req->error = 413;
        return -1;
    }
    size_t el;
    const char *expect = api_req_header(req, "expect", &el);
    if (expect && el == 12 && strncasecmp(expect, "100-continue", 12) == 0 && !req->http10)
        api_conn_write(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    api_conn *c = p->data;
    api_req *req = c->req;
    if (req->body.len + len > c->w->srv->cfg->max_body_bytes) {
        req->error = 413;
        return HPE_USER;
    }
    api_buf_append(&req->body, at, len);
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    api_conn *c = p->data;
    c->req->keepalive = llhttp_should_keep_alive(p);
    return HPE_PAUSED;
}

static void init_settings(void)
{
    llhttp_settings_init(&parser_settings);
    parser_settings.on_message_begin = on_message_begin;
    parser_settings.on_url = on_url;
    parser_settings.on_url_complete = on_url_complete;
    parser_settings.on_header_field = on_header_field;
    parser_settings.on_header_field_complete = on_header_field_complete;
    parser_settings.on_header_value = on_header_value;
    parser_settings.on_header_value_complete = on_header_value_complete;
    parser_settings.on_headers_complete = on_headers_complete;
    parser_settings.on_body = on_body;
    parser_settings.on_message_complete = on_message_complete;
}

/* save bytes that follow a request being handled asynchronously */
static void save_pending(api_conn *c, const char *data, size_t len)
{
    if (!len)
        return;
    char *p = malloc(len);
    if (!p) {
        api_conn_close(c, "out of memory");
        return;
    }
    memcpy(p, data, len);
    c->pending = p;
    c->pending_len = (uint32_t)len;
}

/* parse and answer requests in data (HTTP state, not busy) */
static void conn_feed(api_conn *c, const char *data, size_t len)
{
    api_worker *w = c->w;
    while (len > 0 && c->state == CONN_HTTP &&
           !(c->flags & (CONN_F_BUSY | CONN_F_CLOSED | CONN_F_CLOSE_AFTER))) {
        llhttp_t *p = c->parser;
        if (!(c->flags & CONN_F_IN_REQUEST)) {
            c->flags |= CONN_F_IN_REQUEST;
            conn_arm_timer(c, w->srv->cfg->request_timeout_ms / 1000.0);
        }
        llhttp_errno_t err = llhttp_execute(p, data, len);
        if (err == HPE_OK)
            return;
        if (err == HPE_PAUSED) {
            size_t used = (size_t)(llhttp_get_error_pos(p) - data);
            data += used;
            len -= used;
            llhttp_resume(p);
            c->flags = (uint16_t)((c->flags & ~CONN_F_IN_REQUEST) | CONN_F_BUSY);
            ev_timer_stop(w->loop, &c->timer);
            api_conn_hold(c); /* dropped by api_conn_request_done */
            bool upgrade = c->req->upgrade;
            api_req_dispatch(c->req); /* may answer, and release the request, at once */
            if (c->flags & CONN_F_CLOSED)
                return;
            if (c->flags & CONN_F_BUSY) {
                save_pending(c, data, len);
                conn_update_io(c);
                return;
            }
            if (c->state == CONN_HTTP && upgrade) {
                /* an Upgrade we did not take: the rest of the stream is not HTTP */
                c->flags |= CONN_F_CLOSE_AFTER;
                if (!c->out_head)
                    conn_linger(c);
                return;
            }
            continue;
        }
        /* a parse error or a limit */
        api_req *req = c->req;
        int status = req && req->error ? req->error : 400;
        const char *msg = status == 413   ? "Request body too large"
                          : status == 431 ? "Request header fields too large"
                          : status == 503 ? "Service unavailable"
                                          : "Bad request";
        if (status == 400)
            log_debug("bad request: %s (%s)", llhttp_errno_name(err),
                      llhttp_get_error_reason(p) ? llhttp_get_error_reason(p) : "");
        c->flags &= (uint16_t)~CONN_F_IN_REQUEST;
        api_req_fail_early(c, status, msg);
        return;
    }
    if (len > 0 && !(c->flags & CONN_F_CLOSED)) {
        if (c->state == CONN_WS)
            api_stream_ws_input(c, data, len);
        /* anything after an SSE request or a closing answer is ignored */
    }
    if (c->state != CONN_HTTP)
        drop_parser(c);
}

/* ==========================================================================================
 * socket events
 */

static void conn_readable(api_conn *c)
{
    api_worker *w = c->w;
    if (c->state == CONN_HTTP && (c->flags & (CONN_F_BUSY | CONN_F_CLOSE_AFTER))) {
        /* input while a request is handled: leave it in the socket, in order, until done */
        c->flags |= CONN_F_READ_HELD;
        conn_update_io(c);
        return;
    }
    for (int i = 0; i < 8; i++) {
        ssize_t n = recv(c->fd, w->rbuf, w->rbuf_cap, 0);
        if (n > 0) {
            switch (c->state) {
            case CONN_HTTP:
                if (c->flags & (CONN_F_BUSY | CONN_F_CLOSE_AFTER)) {
                    /* should not happen (reading is off), but never lose order */
                    break;
                }
                conn_feed(c, w->rbuf, (size_t)n);
                break;
            case CONN_WS:
                api_stream_ws_input(c, w->rbuf, (size_t)n);
                break;
            default:
                break; /* SSE and linger: discard */
            }
            if (c->flags & CONN_F_CLOSED)
                return;
            if ((size_t)n < w->rbuf_cap)
                return;
            if (c->state == CONN_HTTP && (c->flags & (CONN_F_BUSY | CONN_F_CLOSE_AFTER)))
                return;
            continue;
        }
        if (n == 0) {
            c->flags |= CONN_F_READ_EOF;
            if (c->state == CONN_HTTP && (c->flags & CONN_F_BUSY)) {
                conn_update_io(c); /* answer, then close */
                return;
            }
            if (c->state == CONN_HTTP && c->out_head) {
                conn_update_io(c);
                return;
            }
            api_conn_close(c, NULL);
            return;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        api_conn_close(c, "read failed");
        return;
    }
}

static void conn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    api_conn *c = w->data;
    api_conn_hold(c);
    if (revents & EV_WRITE)
        conn_flush(c);
    if ((revents & EV_READ) && !(c->flags & CONN_F_CLOSED))
        conn_readable(c);
    api_conn_release(c);
}

static void conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    api_conn *c = w->data;
    if (c->state == CONN_LINGER) {
        api_conn_close(c, NULL);
        return;
    }
    if (c->state != CONN_HTTP || (c->flags & CONN_F_BUSY))
        return;
    if (c->flags & CONN_F_IN_REQUEST) {
        c->flags &= (uint16_t)~CONN_F_IN_REQUEST;
        api_req_fail_early(c, 408, "Request timeout");
        return;
    }
    api_conn_close(c, "idle");
}

/* a new client */
static void conn_new(api_worker *w, int fd, const struct sockaddr_storage *sa)
{
    api_conn *c = calloc(1, sizeof(*c));
    llhttp_t *p = malloc(sizeof(llhttp_t));
    if (!c || !p) {
        free(c);
        free(p);
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->w = w;
    c->fd = fd;
    if (sa->ss_family == AF_INET)
        c->peer = ((const struct sockaddr_in *)sa)->sin_addr.s_addr;
    llhttp_init(p, HTTP_REQUEST, &parser_settings);
    p->data = c;
    c->parser = p;
    ev_io_init(&c->io, conn_io_cb, fd, EV_READ);
    c->io.data = c;
    ev_timer_init(&c->timer, conn_timer_cb, 0, 0);
    c->timer.data = c;
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    ev_io_start(w->loop, &c->io);
    conn_arm_timer(c, w->srv->cfg->request_timeout_ms / 1000.0);
}

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    api_worker *w = io->data;
    for (int i = 0; i < 64; i++) {
        if (w->nconns >= w->srv->cfg->max_connections) {
            ev_io_stop(loop, &w->accept_io); /* resumes when a connection closes */
            return;
        }
        struct sockaddr_storage sa;
        socklen_t sl = sizeof(sa);
        int fd = accept4(w->listen_fd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                log_warning("accept: %s; pausing accepts for 100 ms", strerror(errno));
                ev_io_stop(loop, &w->accept_io);
                ev_timer_set(&w->accept_retry, 0.1, 0);
                ev_timer_start(loop, &w->accept_retry);
            }
            return;
        }
        conn_new(w, fd, &sa);
    }
}

static void accept_retry_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    api_worker *w = t->data;
    if (!atomic_load(&w->stopping))
        ev_io_start(loop, &w->accept_io);
}

/* ==========================================================================================
 * workers
 */

/* "Date:" value, formatted once per second */
const char *api_worker_date(api_worker *w)
{
    time_t now = (time_t)ev_now(w->loop);
    if (now != w->date_sec) {
        w->date_sec = now;
        api_http_date(now, w->date);
    }
    return w->date;
}

/* the feeds connection when it is up */
struct redisAsyncContext *api_worker_feeds(api_worker *w)
{
    return api_redis_ctx(w->feeds);
}

/* the feeds shard of an account, list or status id */
struct redisAsyncContext *api_worker_shard(api_worker *w, int64_t id)
{
    if (w->nshards <= 0)
        return NULL;
    return api_redis_ctx(w->shards[cache_shard_of(w->nshards, id)]);
}

/* queue a message for the worker's listeners (called from the pubsub thread) */
void api_worker_deliver(api_worker *w, api_msg *m)
{
    pthread_mutex_lock(&w->inbox_lock);
    if (w->inbox_len == w->inbox_cap) {
        size_t nc = w->inbox_cap ? w->inbox_cap * 2 : 64;
        api_msg **ni = realloc(w->inbox, nc * sizeof(*ni));
        if (!ni) {
            pthread_mutex_unlock(&w->inbox_lock);
            api_msg_unref(m);
            return;
        }
        w->inbox = ni;
        w->inbox_cap = nc;
    }
    w->inbox[w->inbox_len++] = m;
    pthread_mutex_unlock(&w->inbox_lock);
    ev_async_send(w->loop, &w->wake);
}

/* take everything out of the inbox */
static void drain_inbox(api_worker *w, bool deliver)
{
    for (;;) {
        pthread_mutex_lock(&w->inbox_lock);
        api_msg **msgs = w->inbox;
        size_t n = w->inbox_len;
        w->inbox = NULL;
        w->inbox_len = w->inbox_cap = 0;
        pthread_mutex_unlock(&w->inbox_lock);
        if (!n) {
            free(msgs);
            return;
        }
        for (size_t i = 0; i < n; i++) {
            if (deliver)
                api_stream_deliver(w, msgs[i]);
            api_msg_unref(msgs[i]);
        }
        free(msgs);
    }
}

/* second half of a shutdown, once no bg job of the worker is in flight */
static void worker_teardown(api_worker *w)
{
    api_db_free(w->db); /* fails queries in flight: their requests release connections */
    w->db = NULL;
    for (int i = 0; i < w->nshards; i++) {
        api_redis_free(w->shards[i]); /* pending callbacks run with NULL replies */
        w->shards[i] = NULL;
        api_redis_free(w->reval[i]);
        w->reval[i] = NULL;
    }
    w->feeds = NULL;
    ev_async_stop(w->loop, &w->wake);
    ev_async_stop(w->loop, &w->bg_wake);
    ev_prepare_stop(w->loop, &w->prep);
    ev_break(w->loop, EVBREAK_ALL);
}

/* stop accepting, close every connection; the loop ends when the bg jobs are back */
static void worker_shutdown(api_worker *w)
{
    if (w->shutting)
        return;
    w->shutting = true;
    ev_io_stop(w->loop, &w->accept_io);
    ev_timer_stop(w->loop, &w->accept_retry);
    ev_timer_stop(w->loop, &w->tick);
    if (w->listen_fd >= 0) {
        close(w->listen_fd);
        w->listen_fd = -1;
    }
    while (w->conns)
        api_conn_close(w->conns, "shutting down");
    if (w->bg_pending == 0)
        worker_teardown(w);
}

/* bg jobs of this worker finished */
static void bg_wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    api_worker *w = a->data;
    api_bg_worker_drain(w);
    if (w->shutting && w->bg_pending == 0 && w->db)
        worker_teardown(w);
}

static void wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    api_worker *w = a->data;
    if (atomic_load(&w->stopping)) {
        worker_shutdown(w);
        return;
    }
    drain_inbox(w, true);
}

/* before the loop waits: batched work queued by this iteration's requests */
static void prep_cb(struct ev_loop *loop, ev_prepare *p, int revents)
{
    api_rcache_flush(p->data);
}

static void tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    api_worker *w = t->data;
    api_worker_date(w);
    api_stream_tick(w, ev_now(loop));
}

static void *worker_main(void *arg)
{
    api_worker *w = arg;
    ev_run(w->loop, 0);
    return NULL;
}

/* a listening socket of its own for each worker: the kernel balances (SO_REUSEPORT) */
static int make_listener(const api_config *cfg, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char port[16];
    snprintf(port, sizeof(port), "%d", cfg->listen_port);
    int rc = getaddrinfo(cfg->listen_host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "listen %s:%d: %s", cfg->listen_host, cfg->listen_port,
                 gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 4096) == 0)
            break;
        snprintf(err, errlen, "listen %s:%d: %s", cfg->listen_host, cfg->listen_port,
                 strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static api_worker *worker_new(api_server *srv, int id, int listen_fd)
{
    api_worker *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->id = id;
    w->srv = srv;
    w->listen_fd = listen_fd;
    w->loop = ev_loop_new(EVFLAG_AUTO);
    w->rbuf_cap = RBUF_SIZE;
    w->rbuf = malloc(w->rbuf_cap);
    w->auth = api_auth_cache_new(srv->cfg->auth_cache_ms);
    pthread_mutex_init(&w->inbox_lock, NULL);
    pthread_mutex_init(&w->bg_lock, NULL);
    w->nshards = srv->cfg->cache.n_feeds > 0 ? srv->cfg->cache.n_feeds : 1;
    w->shards = calloc((size_t)w->nshards, sizeof(*w->shards));
    w->reval = calloc((size_t)w->nshards, sizeof(*w->reval));
    if (srv->cfg->render_cache_entries > 0)
        w->rcache = api_rcache_new((size_t)srv->cfg->render_cache_entries);
    if (!w->loop || !w->rbuf || !w->auth || !w->shards || !w->reval ||
        (srv->cfg->render_cache_entries > 0 && !w->rcache)) {
        if (w->loop)
            ev_loop_destroy(w->loop);
        free(w->rbuf);
        free(w->shards);
        free(w->reval);
        api_rcache_free(w->rcache);
        api_auth_cache_free(w->auth);
        pthread_mutex_destroy(&w->inbox_lock);
        pthread_mutex_destroy(&w->bg_lock);
        free(w);
        return NULL;
    }
    w->db =
        api_db_new(w->loop, srv->cfg->database, srv->cfg->db_pool_size, srv->cfg->db_timeout_ms);
    if (!w->db) {
        ev_loop_destroy(w->loop);
        free(w->rbuf);
        free(w->shards);
        free(w->reval);
        api_rcache_free(w->rcache);
        api_auth_cache_free(w->auth);
        pthread_mutex_destroy(&w->inbox_lock);
        pthread_mutex_destroy(&w->bg_lock);
        free(w);
        return NULL;
    }
    for (int i = 0; i < w->nshards; i++) {
        char url[700], what[32];
        const cache_redis_url *u = &srv->cfg->cache.feeds[i];
        if (srv->cfg->cache.n_feeds > 0)
            snprintf(url, sizeof(url), "redis://%s%s%s%s:%d/%d", u->password[0] ? ":" : "",
                     u->password, u->password[0] ? "@" : "", u->host, u->port, u->db);
        else
            snprintf(url, sizeof(url), "%s", srv->cfg->redis_feeds);
        snprintf(what, sizeof(what), i ? "feeds%d" : "feeds", i);
        w->shards[i] = api_redis_new(w->loop, url, what, NULL, NULL);
        if (!w->shards[i])
            log_error("redis_feeds shard %d: bad URL", i);
        /* render revalidations get their own connection: their big MGET replies would
         * otherwise hold up the timeline replies queued behind them */
        if (srv->cfg->render_cache_entries > 0 && srv->cfg->render_fresh_ms > 0)
            w->reval[i] = api_redis_new(w->loop, url, "revalidate", NULL, NULL);
    }
    w->feeds = w->shards[0];
    ev_async_init(&w->bg_wake, bg_wake_cb);
    w->bg_wake.data = w;
    ev_async_start(w->loop, &w->bg_wake);
    ev_io_init(&w->accept_io, accept_cb, listen_fd, EV_READ);
    w->accept_io.data = w;
    ev_io_start(w->loop, &w->accept_io);
    ev_timer_init(&w->accept_retry, accept_retry_cb, 0, 0);
    w->accept_retry.data = w;
    ev_async_init(&w->wake, wake_cb);
    w->wake.data = w;
    ev_async_start(w->loop, &w->wake);
    ev_prepare_init(&w->prep, prep_cb);
    w->prep.data = w;
    ev_prepare_start(w->loop, &w->prep);
    ev_timer_init(&w->tick, tick_cb, 1.0, 1.0);
    w->tick.data = w;
    ev_timer_start(w->loop, &w->tick);
    api_worker_date(w);
    double now = ev_now(w->loop);
    w->next_sse_beat = now + srv->cfg->sse_heartbeat_ms / 1000.0;
    w->next_ws_ping = now + srv->cfg->ws_ping_ms / 1000.0;
    return w;
}

static void worker_free(api_worker *w)
{
    if (!w)
        return;
    drain_inbox(w, false);
    api_stream_worker_free(w);
    while (w->free_reqs) {
        api_req *r = w->free_reqs;
        w->free_reqs = r->next_free;
        api_buf_free(&r->head_buf);
        api_buf_free(&r->body);
        api_buf_free(&r->resp);
        api_buf_free(&r->resp_hdrs);
        free(r);
    }
    api_buf_free(&w->scratch);
    api_buf_free(&w->cmdbuf);
    api_auth_cache_free(w->auth);
    api_rcache_free(w->rcache);
    free(w->shards);
    free(w->reval);
    free(w->rbuf);
    ev_loop_destroy(w->loop);
    pthread_mutex_destroy(&w->inbox_lock);
    pthread_mutex_destroy(&w->bg_lock);
    free(w);
}

/* allow many descriptors: streams are long-lived */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            log_warning("could not raise the open file limit: %s", strerror(errno));
    }
}

/* run until SIGINT or SIGTERM */
int api_server_run(api_config *cfg)
{
    pthread_once(&settings_once, init_settings);
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* threads inherit: only sigwait sees them */

    api_server srv = {.cfg = cfg, .nworkers = cfg->workers};
    int rc = 1;
    char err[600] = "";
    pthread_t *threads = NULL;
    int started = 0;
    srv.router = api_router_new();
    srv.rl = cfg->rate_limit > 0 ? api_rl_new((unsigned)cfg->rate_limit, 300) : NULL;
    srv.rl_anon =
        cfg->rate_limit_unauth > 0 ? api_rl_new((unsigned)cfg->rate_limit_unauth, 300) : NULL;
    srv.workers = calloc((size_t)srv.nworkers, sizeof(api_worker *));
    threads = calloc((size_t)srv.nworkers, sizeof(pthread_t));
    srv.lsn = api_lsn_new(cfg->lsn_token_ttl_ms);
    srv.memo = api_feedmemo_new();
    if (!srv.router || !srv.workers || !threads || (cfg->rate_limit > 0 && !srv.rl) ||
        (cfg->rate_limit_unauth > 0 && !srv.rl_anon) || !srv.lsn || !srv.memo) {
        log_error("out of memory");
        goto out;
    }
    if (!api_refresh_init(&srv)) {
        log_error("cannot derive the async refresh key");
        goto out;
    }
    if (!api_routes_register(srv.router)) {
        log_error("route table is inconsistent");
        goto out;
    }
    for (int i = 0; i < srv.nworkers; i++) {
        int fd = make_listener(cfg, err, sizeof(err));
        if (fd < 0) {
            log_error("%s", err);
            goto out;
        }
        srv.workers[i] = worker_new(&srv, i, fd);
        if (!srv.workers[i]) {
            close(fd);
            log_error("cannot create worker %d", i);
            goto out;
        }
    }
    srv.bg = api_bg_start(&srv, cfg->db_threads);
    if (!srv.bg) {
        log_error("cannot start the blocking pool");
        goto out;
    }
    srv.pubsub = api_pubsub_start(cfg, srv.workers, srv.nworkers);
    if (!srv.pubsub) {
        log_error("cannot start the pub/sub thread");
        goto out;
    }
    for (int i = 0; i < srv.nworkers; i++) {
        if (pthread_create(&threads[i], NULL, worker_main, srv.workers[i]) != 0) {
            log_error("cannot start worker thread %d", i);
            break;
        }
        started++;
    }
    if (started == srv.nworkers) {
        log_info("listening on %s:%d with %d workers (public_url %s)", cfg->listen_host,
                 cfg->listen_port, srv.nworkers, cfg->public_url);
        int sig = 0;
        sigwait(&sigs, &sig);
        log_info("%s received, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
        rc = 0;
    }
    for (int i = 0; i < started; i++) {
        atomic_store(&srv.workers[i]->stopping, true);
        ev_async_send(srv.workers[i]->loop, &srv.workers[i]->wake);
    }
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
out:
    if (srv.pubsub)
        api_pubsub_stop(srv.pubsub);
    for (int i = 0; srv.workers && i < srv.nworkers; i++) {
        api_worker *w = srv.workers[i];
        if (w && i >= started) {
            /* never ran: tear down what worker_new set up (no job was ever submitted) */
            atomic_store(&w->stopping, true);
            worker_shutdown(w);
        }
    }
    /* every worker has stopped and waited for its jobs: the pool has nothing left */
    api_bg_stop(srv.bg);
    uint64_t hyd = 0, hyd_mget = 0, sts = 0, fresh = 0, renders = 0, reval = 0;
    for (int i = 0; srv.workers && i < srv.nworkers; i++)
        if (srv.workers[i]) {
            hyd += srv.workers[i]->st_hydrations;
            hyd_mget += srv.workers[i]->st_hyd_mget;
            sts += srv.workers[i]->st_statuses;
            fresh += srv.workers[i]->st_memo_fresh;
            renders += srv.workers[i]->st_renders;
            reval += srv.workers[i]->st_reval_keys;
        }
    if (hyd)
        log_info("hydrations: %llu (%.1f%% waited for an MGET), statuses %llu (%.1f%% fresh in "
                 "the render memo), renders %llu, revalidated %llu",
                 (unsigned long long)hyd, 100.0 * (double)hyd_mget / (double)hyd,
                 (unsigned long long)sts, sts ? 100.0 * (double)fresh / (double)sts : 0.0,
                 (unsigned long long)renders, (unsigned long long)reval);
    for (int i = 0; srv.workers && i < srv.nworkers; i++)
        worker_free(srv.workers[i]);
    free(srv.workers);
    free(threads);
    api_router_free(srv.router);
    api_rl_free(srv.rl);
    api_rl_free(srv.rl_anon);
    api_lsn_free(srv.lsn);
    api_feedmemo_free(srv.memo);
    return rc;
}
