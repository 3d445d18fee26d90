/*
 * Stream plumbing: moving bytes between a socket and the other side of a link with as few
 * copies and system calls as possible.
 *
 * Reads land in the worker's scratch buffer. A processing pass walks the complete messages in
 * it and marks what to forward as ranges of that buffer (px_fwd); at the end of the pass the
 * range goes to the peer socket in one send(), without a copy. Only what the kernel does not
 * take is copied into the peer's wbuf, and only bytes left unprocessed (a partial message)
 * are copied into the connection's own rbuf. So a connection between queries owns no buffer,
 * and a query/answer round trip costs one recv and one send per direction.
 *
 * While a peer's wbuf holds data the source stops reading (TCP back-pressure reaches the
 * sender); it resumes when the wbuf drains.
 */
#include "proxy/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/err.h>

/* an I/O buffer of w->buf_size bytes from the worker's free list */
uint8_t *px_buf_get(px_worker *w)
{
    if (w->n_free_bufs > 0)
        return w->free_bufs[--w->n_free_bufs];
    return malloc(w->buf_size);
}

/* give a buffer back: standard ones are kept (bounded), others freed */
void px_buf_put(px_worker *w, uint8_t *buf, uint32_t cap)
{
    if (!buf)
        return;
    if (cap == w->buf_size && w->n_free_bufs < w->max_free_bufs) {
        w->free_bufs[w->n_free_bufs++] = buf;
        return;
    }
    free(buf);
}

/* set up a connection around a connected socket */
void px_conn_init(px_conn *c, px_worker *w, int fd, uint8_t kind)
{
    memset(c, 0, sizeof(*c));
    c->fd = fd;
    c->kind = kind;
    c->w = w;
    ev_io_init(&c->wio, px_conn_write_cb, fd, EV_WRITE);
}

/* start the read watcher (callback set by the owner with ev_set_cb before) */
void px_conn_start(px_conn *c)
{
    if (!c->closed && !c->read_paused)
        ev_io_start(c->w->loop, &c->rio);
}

/* stop watchers, free TLS and buffers, close the socket */
void px_conn_shutdown(px_conn *c)
{
    px_worker *w = c->w;
    ev_io_stop(w->loop, &c->rio);
    ev_io_stop(w->loop, &c->wio);
    if (c->ssl) {
        SSL_shutdown(c->ssl); /* best effort close_notify; never blocks on a non-blocking fd */
        SSL_free(c->ssl);
        c->ssl = NULL;
        ERR_clear_error();
    }
    px_buf_put(w, c->rbuf, c->rcap);
    c->rbuf = NULL;
    c->rcap = c->rlen = 0;
    px_buf_put(w, c->wbuf, c->wcap);
    c->wbuf = NULL;
    c->wcap = c->wpos = c->wlen = 0;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->closed = true;
}

/* socket read through TLS when present: >0 bytes, 0 eof, -1 error, -2 would block */
ssize_t px_conn_recv(px_conn *c, uint8_t *buf, size_t len)
{
    if (c->ssl) {
        ERR_clear_error();
        int n = SSL_read(c->ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len));
        if (n > 0)
            return n;
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_READ)
            return -2;
        if (e == SSL_ERROR_WANT_WRITE) {
            c->want_write_tls = true;
            ev_io_start(c->w->loop, &c->wio);
            return -2;
        }
        if (e == SSL_ERROR_ZERO_RETURN)
            return 0;
        return -1;
    }
    for (;;) {
        ssize_t n = recv(c->fd, buf, len, 0);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return -2;
        return -1;
    }
}

/* socket write through TLS: bytes taken, -1 error, -2 would block */
ssize_t px_conn_send(px_conn *c, const uint8_t *buf, size_t len)
{
    if (c->ssl) {
        ERR_clear_error();
        int n = SSL_write(c->ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len));
        if (n > 0)
            return n;
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
            return -2;
        return -1;
    }
    for (;;) {
        ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return -2;
        return -1;
    }
}

/* make room for n more output bytes */
static bool wbuf_reserve(px_conn *c, size_t n)
{
    if (c->wpos == c->wlen)
        c->wpos = c->wlen = 0;
    if ((size_t)c->wlen + n <= c->wcap)
        return true;
    if (c->wpos > 0) {
        memmove(c->wbuf, c->wbuf + c->wpos, c->wlen - c->wpos);
        c->wlen -= c->wpos;
        c->wpos = 0;
        if ((size_t)c->wlen + n <= c->wcap)
            return true;
    }
    px_worker *w = c->w;
    if (!c->wbuf && n <= w->buf_size) {
        c->wbuf = px_buf_get(w);
        if (!c->wbuf)
            return false;
        c->wcap = w->buf_size;
        return true;
    }
    size_t cap = c->wcap ? c->wcap : w->buf_size;
    while (cap < (size_t)c->wlen + n)
        cap *= 2;
    if (cap > (size_t)PX_MAX_MSG_LEN * 2)
        return false;
    uint8_t *nb;
    if (c->wcap == w->buf_size) {
        /* leaving the standard size: the old buffer goes back to the free list */
        nb = malloc(cap);
        if (!nb)
            return false;
        memcpy(nb, c->wbuf, c->wlen);
        px_buf_put(w, c->wbuf, c->wcap);
    } else {
        nb = realloc(c->wbuf, cap);
        if (!nb)
            return false;
    }
    c->wbuf = nb;
    c->wcap = (uint32_t)cap;
    return true;
}

/* queue generated bytes (copied) */
bool px_conn_append(px_conn *c, const void *p, size_t n)
{
    if (c->closed)
        return false;
    if (!n)
        return true;
    if (!wbuf_reserve(c, n))
        return false;
    memcpy(c->wbuf + c->wlen, p, n);
    c->wlen += (uint32_t)n;
    return true;
}

static void wbuf_release_if_empty(px_conn *c)
{
    if (c->wpos == c->wlen && c->wbuf) {
        px_buf_put(c->w, c->wbuf, c->wcap);
        c->wbuf = NULL;
        c->wcap = c->wpos = c->wlen = 0;
    }
}

/* try to send pending output; false if the connection failed */
bool px_conn_flush(px_conn *c)
{
    if (c->closed)
        return false;
    while (c->wpos < c->wlen) {
        ssize_t n = px_conn_send(c, c->wbuf + c->wpos, c->wlen - c->wpos);
        if (n == -2) {
            ev_io_start(c->w->loop, &c->wio);
            return true;
        }
        if (n < 0)
            return false;
        c->wpos += (uint32_t)n;
    }
    if (!c->want_write_tls)
        ev_io_stop(c->w->loop, &c->wio);
    wbuf_release_if_empty(c);
    return true;
}

/* stop reading: the peer cannot take more now */
void px_conn_pause(px_conn *c)
{
    if (c->read_paused || c->closed)
        return;
    c->read_paused = true;
    ev_io_stop(c->w->loop, &c->rio);
}

/* read again and process what is buffered */
void px_conn_resume(px_conn *c)
{
    if (!c->read_paused || c->closed)
        return;
    c->read_paused = false;
    ev_io_start(c->w->loop, &c->rio);
    if (c->rlen > 0)
        px_conn_schedule(c);
}

/* queue a connection to process its buffered input at the end of this loop pass */
void px_conn_schedule(px_conn *c)
{
    if (c->queued || c->closed)
        return;
    c->queued = true;
    c->runq_next = NULL;
    px_worker *w = c->w;
    if (w->runq_tail)
        w->runq_tail->runq_next = c;
    else
        w->runq_head = c;
    w->runq_tail = c;
}

/* keep data[0..n) as unprocessed input after a pass (data may already be c->rbuf) */
bool px_conn_keep(px_conn *c, const uint8_t *data, size_t n)
{
    px_worker *w = c->w;
    if (n == 0) {
        px_buf_put(w, c->rbuf, c->rcap);
        c->rbuf = NULL;
        c->rcap = c->rlen = 0;
        c->need = 0;
        return true;
    }
    size_t want = c->need > n ? c->need : n;
    if (want < w->buf_size)
        want = w->buf_size;
    if (c->rbuf && data >= c->rbuf && data < c->rbuf + c->rcap) {
        /* leftover of the private buffer: move it to the front */
        if (data != c->rbuf)
            memmove(c->rbuf, data, n);
        c->rlen = (uint32_t)n;
        if (c->rcap >= want)
            return true;
        uint8_t *nb;
        if (c->rcap == w->buf_size) {
            nb = malloc(want);
            if (!nb)
                return false;
            memcpy(nb, c->rbuf, n);
            px_buf_put(w, c->rbuf, c->rcap);
        } else {
            nb = realloc(c->rbuf, want);
            if (!nb)
                return false;
        }
        c->rbuf = nb;
        c->rcap = (uint32_t)want;
        return true;
    }
    /* leftover of the scratch buffer */
    if (c->rbuf && c->rcap < want) {
        px_buf_put(w, c->rbuf, c->rcap);
        c->rbuf = NULL;
        c->rcap = 0;
    }
    if (!c->rbuf) {
        c->rbuf = want == w->buf_size ? px_buf_get(w) : malloc(want);
        if (!c->rbuf)
            return false;
        c->rcap = (uint32_t)want;
    }
    memcpy(c->rbuf, data, n);
    c->rlen = (uint32_t)n;
    return true;
}

/* start collecting output for dst (NULL: drop it) */
void px_fwd_init(px_fwd *f, px_conn *dst)
{
    f->dst = dst && !dst->closed ? dst : NULL;
    f->p = NULL;
    f->n = 0;
}

/* copy the pending range into the destination's wbuf */
static void fwd_spill(px_fwd *f)
{
    if (f->n && f->dst)
        px_conn_append(f->dst, f->p, f->n);
    f->p = NULL;
    f->n = 0;
}

/* forward input bytes unchanged */
void px_fwd_bytes(px_fwd *f, const uint8_t *p, size_t n)
{
    if (!f->dst || !n)
        return;
    if (f->n && f->p + f->n == p) {
        f->n += n;
        return;
    }
    fwd_spill(f);
    f->p = p;
    f->n = n;
}

/* generated bytes, after everything forwarded so far */
void px_fwd_emit(px_fwd *f, const void *p, size_t n)
{
    if (!f->dst)
        return;
    fwd_spill(f);
    px_conn_append(f->dst, p, n);
}

/* end of a pass: send the pending range straight from the input buffer when nothing else
 * waits; what the kernel does not take is copied */
void px_fwd_finish(px_fwd *f)
{
    px_conn *d = f->dst;
    if (!d)
        return;
    if (d->closed) {
        f->n = 0;
        return;
    }
    if (f->n && d->wpos == d->wlen) {
        const uint8_t *p = f->p;
        size_t n = f->n;
        f->n = 0;
        while (n) {
            ssize_t k = px_conn_send(d, p, n);
            if (k == -2)
                break;
            if (k < 0) {
                /* the owner notices the dead socket on its next read */
                ev_feed_event(d->w->loop, &d->rio, EV_READ);
                return;
            }
            p += k;
            n -= (size_t)k;
        }
        if (n) {
            px_conn_append(d, p, n);
            ev_io_start(d->w->loop, &d->wio);
        }
        return;
    }
    fwd_spill(f);
    if (!px_conn_flush(d))
        ev_feed_event(d->w->loop, &d->rio, EV_READ);
}

/* the connection whose reading waits for c's output to drain */
px_conn *px_conn_peer(px_conn *c)
{
    if (c->kind == PX_CONN_CLIENT) {
        px_client *cl = (px_client *)c;
        return cl->server ? &cl->server->io : NULL;
    }
    px_server *s = (px_server *)c;
    return s->client ? &s->client->io : NULL;
}

/* write watcher: flush output; once drained, let the paused peer read again */
void px_conn_write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    px_conn *c = container_of(io, px_conn, wio);
    px_worker *w = c->w;
    if (c->want_write_tls) {
        /* a TLS read wanted to write: let the reader retry */
        c->want_write_tls = false;
        ev_feed_event(loop, &c->rio, EV_READ);
    }
    if (!px_conn_flush(c)) {
        ev_io_stop(loop, &c->wio);
        ev_feed_event(loop, &c->rio, EV_READ); /* reader sees the error and closes */
    } else if (c->wpos == c->wlen) {
        px_conn *peer = px_conn_peer(c);
        if (peer && peer->read_paused)
            px_conn_resume(peer);
        /* a source that paused and got unlinked meanwhile resumes when relinked */
    }
    px_worker_drain(w);
}
