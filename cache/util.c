/*
 * Small data structures the cache and fan-out share: a growable byte buffer (JSON, msgpack,
 * SQL array literals) and a sorted id set (per-page relationship lookups).
 */
#include "cache/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* an empty buffer */
void cache_buf_init(cache_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->oom = false;
}

/* release the memory */
void cache_buf_free(cache_buf *b)
{
    free(b->data);
    cache_buf_init(b);
}

/* forget the content, keep the memory */
void cache_buf_reset(cache_buf *b)
{
    b->len = 0;
    b->oom = false;
    if (b->data)
        b->data[0] = '\0';
}

/* make room for extra more bytes plus a NUL */
static bool buf_reserve(cache_buf *b, size_t extra)
{
    if (b->oom)
        return false;
    if (b->len + extra + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
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
bool cache_buf_append(cache_buf *b, const void *data, size_t len)
{
    if (!buf_reserve(b, len))
        return false;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return true;
}

/* append a C string */
bool cache_buf_puts(cache_buf *b, const char *s)
{
    return cache_buf_append(b, s, strlen(s));
}

/* append formatted text */
bool cache_buf_printf(cache_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return false;
    if ((size_t)n < sizeof(small))
        return cache_buf_append(b, small, (size_t)n);
    if (!buf_reserve(b, (size_t)n))
        return false;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return true;
}

/* ---- sorted id set ---- */

void cache_idset_init(cache_idset *s)
{
    s->ids = NULL;
    s->n = 0;
    s->cap = 0;
    s->sorted = true;
}

void cache_idset_free(cache_idset *s)
{
    free(s->ids);
    cache_idset_init(s);
}

void cache_idset_clear(cache_idset *s)
{
    s->n = 0;
    s->sorted = true;
}

/* add an id; keeps track of whether the vector is still sorted */
bool cache_idset_add(cache_idset *s, int64_t id)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        int64_t *p = realloc(s->ids, cap * sizeof(*p));
        if (!p)
            return false;
        s->ids = p;
        s->cap = cap;
    }
    if (s->n > 0 && s->ids[s->n - 1] > id)
        s->sorted = false;
    s->ids[s->n++] = id;
    return true;
}

static int cmp_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* binary search, sorting first if ids arrived out of order */
bool cache_idset_has(cache_idset *s, int64_t id)
{
    if (!s->sorted) {
        qsort(s->ids, s->n, sizeof(*s->ids), cmp_id);
        s->sorted = true;
    }
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->ids[mid] < id)
            lo = mid + 1;
        else if (s->ids[mid] > id)
            hi = mid;
        else
            return true;
    }
    return false;
}

/* decimal text of an id */
int cache_id_text(char *buf, int64_t id)
{
    return snprintf(buf, 21, "%lld", (long long)id);
}

/* parse a decimal id; 0 when it is not one */
int64_t cache_parse_id(const char *s, size_t len)
{
    if (len == 0 || len > 19)
        return 0;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        if (v > (INT64_MAX - (s[i] - '0')) / 10)
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}
