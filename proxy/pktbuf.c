/*
 * Message codec of the PostgreSQL v3 protocol: builds messages into growable or fixed buffers
 * and reads message headers and bodies with bounds checks. Pure functions, no I/O, so every
 * malformed-input case is unit-tested (tests/proxy/pktbuf_test.c).
 */
#include "proxy/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* use caller storage (fixed) or a heap buffer that grows (storage NULL) */
void pktbuf_init(pktbuf *b, uint8_t *storage, size_t cap)
{
    memset(b, 0, sizeof(*b));
    if (storage) {
        b->data = storage;
        b->cap = cap;
        b->fixed = true;
    }
}

/* release a heap buffer */
void pktbuf_free(pktbuf *b)
{
    if (!b->fixed)
        free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = false;
}

/* forget the contents, keep the memory */
void pktbuf_reset(pktbuf *b)
{
    b->len = 0;
    b->msg_start = 0;
    b->failed = false;
}

/* make room for n more bytes */
bool pktbuf_reserve(pktbuf *b, size_t n)
{
    if (b->failed)
        return false;
    if (b->len + n <= b->cap)
        return true;
    if (b->fixed || b->len + n > (size_t)PX_MAX_MSG_LEN + 64) {
        b->failed = true;
        return false;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n)
        cap *= 2;
    uint8_t *d = realloc(b->data, cap);
    if (!d) {
        b->failed = true;
        return false;
    }
    b->data = d;
    b->cap = cap;
    return true;
}

/* start a message; type 0 = untyped (startup packet) */
void pkt_begin(pktbuf *b, uint8_t type)
{
    if (!pktbuf_reserve(b, 5))
        return;
    b->msg_start = b->len;
    if (type)
        b->data[b->len++] = type;
    memset(b->data + b->len, 0, 4); /* length, patched by pkt_end */
    b->len += 4;
}

/* append one byte */
void pkt_put_byte(pktbuf *b, uint8_t v)
{
    if (pktbuf_reserve(b, 1))
        b->data[b->len++] = v;
}

/* append a network-order int16 */
void pkt_put_int16(pktbuf *b, uint16_t v)
{
    if (pktbuf_reserve(b, 2)) {
        b->data[b->len++] = (uint8_t)(v >> 8);
        b->data[b->len++] = (uint8_t)v;
    }
}

/* append a network-order int32 */
void pkt_put_int32(pktbuf *b, uint32_t v)
{
    if (pktbuf_reserve(b, 4)) {
        pkt_put_u32(b->data + b->len, v);
        b->len += 4;
    }
}

/* append raw bytes */
void pkt_put_bytes(pktbuf *b, const void *p, size_t n)
{
    if (n && pktbuf_reserve(b, n)) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
    }
}

/* a C string with its NUL */
void pkt_put_str(pktbuf *b, const char *s)
{
    pkt_put_bytes(b, s, strlen(s) + 1);
}

/* patch the length of the message started by pkt_begin */
void pkt_end(pktbuf *b)
{
    if (b->failed)
        return;
    size_t at = b->msg_start;
    /* typed messages start with a non-zero type byte; untyped ones with the length, still 0 */
    size_t lenpos = b->data[at] != 0 ? at + 1 : at;
    pkt_put_u32(b->data + lenpos, (uint32_t)(b->len - lenpos));
}

/* ErrorResponse / NoticeResponse */
void pkt_error(pktbuf *b, uint8_t type, const char *severity, const char *sqlstate,
               const char *detail, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pkt_begin(b, type);
    pkt_put_byte(b, 'S');
    pkt_put_str(b, severity);
    pkt_put_byte(b, 'V');
    pkt_put_str(b, severity);
    pkt_put_byte(b, 'C');
    pkt_put_str(b, sqlstate);
    pkt_put_byte(b, 'M');
    pkt_put_str(b, msg);
    if (detail && *detail) {
        pkt_put_byte(b, 'D');
        pkt_put_str(b, detail);
    }
    pkt_put_byte(b, 0);
    pkt_end(b);
}

/* ParameterStatus */
void pkt_param_status(pktbuf *b, const char *name, const char *value)
{
    pkt_begin(b, 'S');
    pkt_put_str(b, name);
    pkt_put_str(b, value);
    pkt_end(b);
}

/* ReadyForQuery */
void pkt_ready(pktbuf *b, char status)
{
    pkt_begin(b, 'Z');
    pkt_put_byte(b, (uint8_t)status);
    pkt_end(b);
}

/* AuthenticationXXX request with its data */
void pkt_auth(pktbuf *b, uint32_t code, const void *data, size_t len)
{
    pkt_begin(b, 'R');
    pkt_put_int32(b, code);
    pkt_put_bytes(b, data, len);
    pkt_end(b);
}

/* BackendKeyData */
void pkt_backend_key(pktbuf *b, uint32_t pid, uint32_t key)
{
    pkt_begin(b, 'K');
    pkt_put_int32(b, pid);
    pkt_put_int32(b, key);
    pkt_end(b);
}

/* simple Query */
void pkt_query(pktbuf *b, const char *sql)
{
    pkt_begin(b, 'Q');
    pkt_put_str(b, sql);
    pkt_end(b);
}

/* a message with an empty body */
void pkt_simple(pktbuf *b, uint8_t type)
{
    pkt_begin(b, type);
    pkt_end(b);
}

/* Close of a statement ('S') or portal ('P') */
void pkt_close(pktbuf *b, char what, const char *name)
{
    pkt_begin(b, 'C');
    pkt_put_byte(b, (uint8_t)what);
    pkt_put_str(b, name);
    pkt_end(b);
}

/* Parse */
void pkt_parse(pktbuf *b, const char *name, const char *query, size_t qlen, uint16_t ntypes,
               const uint8_t *types_be)
{
    pkt_begin(b, 'P');
    pkt_put_str(b, name);
    pkt_put_bytes(b, query, qlen);
    pkt_put_byte(b, 0);
    pkt_put_int16(b, ntypes);
    pkt_put_bytes(b, types_be, (size_t)ntypes * 4);
    pkt_end(b);
}

/* CancelRequest (untyped, 16 bytes) */
void pkt_cancel_request(pktbuf *b, uint32_t pid, uint32_t key)
{
    if (!pktbuf_reserve(b, 16))
        return;
    pkt_put_int32(b, 16);
    pkt_put_int32(b, PX_CANCEL_REQUEST);
    pkt_put_int32(b, pid);
    pkt_put_int32(b, key);
}

/* header of a typed message */
int pkt_header(const uint8_t *p, size_t avail, uint8_t *type, uint32_t *total)
{
    if (avail < 5)
        return 0;
    uint32_t len = pkt_get_u32(p + 1);
    if (len < 4 || len > PX_MAX_MSG_LEN)
        return -1;
    *type = p[0];
    *total = len + 1;
    return 1;
}

/* read a message body from its start */
void pkt_reader_init(pkt_reader *r, const uint8_t *body, size_t len)
{
    r->p = body;
    r->len = len;
    r->pos = 0;
    r->bad = false;
}

/* next byte; 0 and bad set past the end */
uint8_t pkt_read_byte(pkt_reader *r)
{
    if (r->pos + 1 > r->len) {
        r->bad = true;
        return 0;
    }
    return r->p[r->pos++];
}

/* next network-order int16 */
uint16_t pkt_read_int16(pkt_reader *r)
{
    if (r->pos + 2 > r->len) {
        r->bad = true;
        return 0;
    }
    uint16_t v = pkt_get_u16(r->p + r->pos);
    r->pos += 2;
    return v;
}

/* next network-order int32 */
uint32_t pkt_read_int32(pkt_reader *r)
{
    if (r->pos + 4 > r->len) {
        r->bad = true;
        return 0;
    }
    uint32_t v = pkt_get_u32(r->p + r->pos);
    r->pos += 4;
    return v;
}

/* NUL-terminated string inside the body */
const char *pkt_read_str(pkt_reader *r)
{
    if (r->pos >= r->len) {
        r->bad = true;
        return "";
    }
    const uint8_t *s = r->p + r->pos;
    const uint8_t *nul = memchr(s, 0, r->len - r->pos);
    if (!nul) {
        r->bad = true;
        return "";
    }
    r->pos += (size_t)(nul - s) + 1;
    return (const char *)s;
}

/* next n bytes; NULL and bad set when fewer remain */
const uint8_t *pkt_read_bytes(pkt_reader *r, size_t n)
{
    if (n > r->len - r->pos || r->pos > r->len) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->p + r->pos;
    r->pos += n;
    return p;
}

/* field of an ErrorResponse / NoticeResponse body */
const char *pkt_error_field(const uint8_t *body, size_t len, char code)
{
    pkt_reader r;
    pkt_reader_init(&r, body, len);
    while (!r.bad && r.pos < r.len) {
        uint8_t f = pkt_read_byte(&r);
        if (f == 0)
            break;
        const char *v = pkt_read_str(&r);
        if (r.bad)
            break;
        if (f == (uint8_t)code)
            return v;
    }
    return NULL;
}

/* the parameters of a StartupMessage */
int pkt_startup_params(const uint8_t *p, size_t len, pkt_startup_cb cb, void *ctx)
{
    pkt_reader r;
    pkt_reader_init(&r, p, len);
    for (;;) {
        if (r.pos >= r.len)
            return -1; /* the list must end with an empty name */
        if (r.p[r.pos] == 0) {
            r.pos++;
            return r.pos == r.len ? 0 : -1;
        }
        const char *name = pkt_read_str(&r);
        const char *value = pkt_read_str(&r);
        if (r.bad)
            return -1;
        if (!cb(ctx, name, value))
            return -1;
    }
}
