/*
 * The small HTTP/1.1 server behind `admin_listen` (tusk proxy's admin thread, tusk fanout's
 * main loop): GET and HEAD only, one request per connection, 8 kB of request head, a 10 s
 * deadline, non-blocking on the caller's libev loop, so a client that connects and says
 * nothing costs a timer, not a stalled loop. What to answer is the caller's handler.
 */
#include "common/common.h"

#include <ev.h>

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ADMIN_HTTP_MAX_REQ 8192
#define ADMIN_HTTP_DEADLINE 10.0

typedef struct admin_conn {
    ev_io rio, wio;
    ev_timer deadline;
    int fd;
    struct admin_http *srv;
    struct admin_conn *prev, *next;
    char req[ADMIN_HTTP_MAX_REQ + 1];
    size_t rlen;
    char *out;
    size_t out_len, wpos;
} admin_conn;

struct admin_http {
    struct ev_loop *loop;
    ev_io listen_io;
    int fd;
    admin_http_handler handler;
    void *arg;
    admin_conn *conns; /* open connections, closed by admin_http_stop */
};

bool admin_http_put(admin_http_reply *r, const void *data, size_t len)
{
    if (r->failed)
        return false;
    if (r->len + len + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 1024;
        while (cap < r->len + len + 1)
            cap *= 2;
        char *nb = realloc(r->body, cap);
        if (!nb) {
            r->failed = true;
            return false;
        }
        r->body = nb;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, len);
    r->len += len;
    r->body[r->len] = '\0';
    return true;
}

void admin_http_text(admin_http_reply *r, int code, const char *text)
{
    r->code = code;
    r->ctype = "text/plain; charset=utf-8";
    r->len = 0;
    admin_http_put(r, text, strlen(text));
}

static const char *reason_of(int code)
{
    switch (code) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

static void conn_close(admin_conn *h)
{
    struct ev_loop *loop = h->srv->loop;
    ev_io_stop(loop, &h->rio);
    ev_io_stop(loop, &h->wio);
    ev_timer_stop(loop, &h->deadline);
    close(h->fd);
    if (h->prev)
        h->prev->next = h->next;
    else
        h->srv->conns = h->next;
    if (h->next)
        h->next->prev = h->prev;
    free(h->out);
    free(h);
}

static void write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    admin_conn *h = (admin_conn *)((char *)io - offsetof(admin_conn, wio));
    (void)loop;
    (void)revents;
    while (h->wpos < h->out_len) {
        ssize_t n = send(h->fd, h->out + h->wpos, h->out_len - h->wpos, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            conn_close(h);
            return;
        }
        h->wpos += (size_t)n;
    }
    shutdown(h->fd, SHUT_WR);
    conn_close(h);
}

/* the head and (unless HEAD) the body go out in one buffer */
static void respond(admin_conn *h, admin_http_reply *r, bool head)
{
    if (r->failed)
        admin_http_text(r, 500, "out of memory\n");
    if (r->failed) {
        conn_close(h);
        return;
    }
    char hdr[512];
    int n = snprintf(hdr, sizeof(hdr),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                     r->code, reason_of(r->code), r->ctype ? r->ctype : "text/plain; charset=utf-8",
                     r->len);
    size_t body = head ? 0 : r->len;
    h->out = malloc((size_t)n + body);
    if (!h->out) {
        conn_close(h);
        return;
    }
    memcpy(h->out, hdr, (size_t)n);
    if (body)
        memcpy(h->out + n, r->body, body);
    h->out_len = (size_t)n + body;
    ev_io_stop(h->srv->loop, &h->rio);
    ev_io_start(h->srv->loop, &h->wio);
}

static void handle_request(admin_conn *h)
{
    admin_http_reply r = {.code = 200};
    char method[16], target[1024];
    const char *sp = strchr(h->req, ' ');
    bool head = false;
    if (sscanf(h->req, "%15s %1023s HTTP/1.%*c", method, target) != 2 || !sp ||
        strncmp(sp + 1 + strlen(target), " HTTP/1.", 8) != 0) {
        admin_http_text(&r, 400, "bad request\n");
    } else if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        admin_http_text(&r, 405, "only GET and HEAD\n");
    } else {
        head = method[0] == 'H';
        char *q = strchr(target, '?');
        if (q)
            *q = '\0';
        h->srv->handler(h->srv->arg, target, &r);
    }
    respond(h, &r, head);
    free(r.body);
}

static void read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    admin_conn *h = (admin_conn *)((char *)io - offsetof(admin_conn, rio));
    (void)loop;
    (void)revents;
    ssize_t n = recv(h->fd, h->req + h->rlen, ADMIN_HTTP_MAX_REQ - h->rlen, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        conn_close(h);
        return;
    }
    h->rlen += (size_t)n;
    h->req[h->rlen] = '\0';
    admin_http_reply r = {.code = 200};
    if (memchr(h->req, '\0', h->rlen)) {
        admin_http_text(&r, 400, "bad request\n");
    } else if (strstr(h->req, "\r\n\r\n") || strstr(h->req, "\n\n")) {
        handle_request(h);
        return;
    } else if (h->rlen >= ADMIN_HTTP_MAX_REQ) {
        admin_http_text(&r, 431, "request too large\n");
    } else {
        return; /* more to come */
    }
    respond(h, &r, false);
    free(r.body);
}

static void deadline_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    conn_close((admin_conn *)((char *)t - offsetof(admin_conn, deadline)));
}

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    admin_http *s = (admin_http *)((char *)io - offsetof(admin_http, listen_io));
    (void)revents;
    for (;;) {
        int fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        admin_conn *h = calloc(1, sizeof(*h));
        if (!h) {
            close(fd);
            continue;
        }
        h->fd = fd;
        h->srv = s;
        h->next = s->conns;
        if (s->conns)
            s->conns->prev = h;
        s->conns = h;
        ev_io_init(&h->rio, read_cb, fd, EV_READ);
        ev_io_init(&h->wio, write_cb, fd, EV_WRITE);
        ev_timer_init(&h->deadline, deadline_cb, ADMIN_HTTP_DEADLINE, 0);
        ev_io_start(loop, &h->rio);
        ev_timer_start(loop, &h->deadline);
    }
}

/* "host:port" (host may be [v6], empty or *) -> listening socket */
static int listen_on(const char *spec, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (!colon || !colon[1]) {
        snprintf(err, errlen, "admin_listen: expected host:port, got \"%.64s\"", spec);
        return -1;
    }
    size_t hl = (size_t)(colon - spec);
    if (hl >= sizeof(host))
        hl = sizeof(host) - 1;
    memcpy(host, spec, hl);
    host[hl] = '\0';
    if (host[0] == '[' && hl > 1 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE},
                    *res = NULL;
    const char *h = host[0] && strcmp(host, "*") != 0 ? host : NULL;
    int rc = getaddrinfo(h, colon + 1, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, errlen, "admin_listen %s: %s", spec, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 64) != 0) {
        snprintf(err, errlen, "admin_listen %s: %s", spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    return fd;
}

admin_http *admin_http_start(struct ev_loop *loop, const char *spec, admin_http_handler handler,
                             void *arg, char *err, size_t errlen)
{
    admin_http *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "admin_listen: out of memory");
        return NULL;
    }
    s->fd = listen_on(spec, err, errlen);
    if (s->fd < 0) {
        free(s);
        return NULL;
    }
    s->loop = loop;
    s->handler = handler;
    s->arg = arg;
    ev_io_init(&s->listen_io, accept_cb, s->fd, EV_READ);
    ev_io_start(loop, &s->listen_io);
    return s;
}

void admin_http_stop(admin_http *s)
{
    if (!s)
        return;
    while (s->conns)
        conn_close(s->conns);
    ev_io_stop(s->loop, &s->listen_io);
    close(s->fd);
    free(s);
}
