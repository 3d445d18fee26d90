/*
 * Growable byte buffer used for request heads, bodies and responses. Failures latch into
 * b->oom instead of being reported per call: JSON rendering appends hundreds of small pieces
 * and checking each would drown the code; the sender checks once.
 */
#include "api/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* make room for n more bytes (grows by doubling) */
bool api_buf_reserve(api_buf *b, size_t n)
{
    if (b->oom)
        return false;
    if (b->len + n + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) {
        if (cap > SIZE_MAX / 2) {
            b->oom = true;
            return false;
        }
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

/* append len bytes */
void api_buf_append(api_buf *b, const void *data, size_t len)
{
    if (len == 0 || !api_buf_reserve(b, len))
        return;
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

/* append a string */
void api_buf_puts(api_buf *b, const char *s)
{
    api_buf_append(b, s, strlen(s));
}

/* append one byte */
void api_buf_putc(api_buf *b, char c)
{
    if (!api_buf_reserve(b, 1))
        return;
    b->data[b->len++] = c;
}

/* append formatted text */
void api_buf_printf(api_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = true;
        return;
    }
    if ((size_t)n < sizeof(small)) {
        api_buf_append(b, small, (size_t)n);
        return;
    }
    if (!api_buf_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* append a decimal integer without printf's cost */
void api_buf_put_int(api_buf *b, long long v)
{
    char tmp[24];
    char *p = tmp + sizeof(tmp);
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    api_buf_append(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

/* one Redis command in RESP, as hiredis's formatters write it, without their printf and
 * sds reallocations (hot path: every timeline page sends three or four) */
void api_buf_resp(api_buf *b, int argc, const char *const *argv, const size_t *lens)
{
    size_t need = 16;
    for (int i = 0; i < argc; i++)
        need += lens[i] + 16;
    if (!api_buf_reserve(b, need))
        return;
    api_buf_putc(b, '*');
    api_buf_put_int(b, argc);
    api_buf_append(b, "\r\n", 2);
    for (int i = 0; i < argc; i++) {
        api_buf_putc(b, '$');
        api_buf_put_int(b, (long long)lens[i]);
        api_buf_append(b, "\r\n", 2);
        api_buf_append(b, argv[i], lens[i]);
        api_buf_append(b, "\r\n", 2);
    }
}

/* forget contents */
void api_buf_reset(api_buf *b)
{
    b->len = 0;
    b->oom = false;
}

/* release memory */
void api_buf_free(api_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->oom = false;
}

/* NUL-terminated view */
const char *api_buf_cstr(api_buf *b)
{
    if (!api_buf_reserve(b, 0))
        return NULL;
    b->data[b->len] = '\0';
    return b->data;
}
