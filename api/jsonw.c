/*
 * JSON writer. Entities are written straight into the response buffer in document order, so
 * rendering a timeline costs one pass and no intermediate tree. Strings from the database or
 * from users are validated as UTF-8 on the way out: an invalid byte becomes U+FFFD, so a
 * client never receives text its JSON parser rejects. Cost per string: one table lookup per
 * ASCII byte, runs of safe bytes copied with one memcpy.
 */
#include "api/internal.h"

#include <stdio.h>
#include <string.h>

/* 0: copy as is; 1: needs an escape; 2: start of a multi-byte sequence (validate) */
static inline int json_class(uint8_t c)
{
    if (c >= 0x80)
        return 2;
    return c < 0x20 || c == '"' || c == '\\';
}

/* length of the valid UTF-8 sequence at p (RFC 3629: no overlongs, no surrogates, at most
 * U+10FFFF), 0 if the bytes there are not one */
static size_t utf8_seq(const uint8_t *p, size_t left)
{
    uint8_t c = p[0];
    if (c < 0x80)
        return 1;
    size_t n;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (left < n)
        return 0;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return n;
}

/* is s valid UTF-8 (form.c uses this for decoded parameters) */
bool api_utf8_valid(const char *s, size_t len)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    while (i < len) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = utf8_seq(p + i, len - i);
        if (!n)
            return false;
        i += n;
    }
    return true;
}

/* escape the inside of a JSON string */
void api_json_escape(api_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0, run = 0;
    if (!api_buf_reserve(b, len + 2))
        return;
    while (i < len) {
        uint8_t c = p[i];
        int k = json_class(c);
        if (k == 0) {
            i++;
            continue;
        }
        if (k == 2) {
            size_t n = utf8_seq(p + i, len - i);
            if (n) {
                i += n;
                continue;
            }
        }
        api_buf_append(b, p + run, i - run);
        if (k == 2) {
            api_buf_append(b, "\\ufffd", 6);
        } else {
            char e[6] = {'\\', 0, 0, 0, 0, 0};
            size_t el = 2;
            switch (c) {
            case '"':
                e[1] = '"';
                break;
            case '\\':
                e[1] = '\\';
                break;
            case '\n':
                e[1] = 'n';
                break;
            case '\r':
                e[1] = 'r';
                break;
            case '\t':
                e[1] = 't';
                break;
            case '\b':
                e[1] = 'b';
                break;
            case '\f':
                e[1] = 'f';
                break;
            default:
                e[1] = 'u';
                e[2] = '0';
                e[3] = '0';
                e[4] = hex[c >> 4];
                e[5] = hex[c & 15];
                el = 6;
            }
            api_buf_append(b, e, el);
        }
        i++;
        run = i;
    }
    api_buf_append(b, p + run, len - run);
}

/* start writing into b */
void api_jw_init(api_jw *w, api_buf *b)
{
    w->b = b;
    w->comma = false;
}

/* a value begins: separate it from the previous one */
static inline void value_start(api_jw *w)
{
    if (w->comma)
        api_buf_putc(w->b, ',');
    w->comma = true;
}

/* '{' */
void api_jw_obj(api_jw *w)
{
    value_start(w);
    api_buf_putc(w->b, '{');
    w->comma = false;
}

/* '}' */
void api_jw_obj_end(api_jw *w)
{
    api_buf_putc(w->b, '}');
    w->comma = true;
}

/* '[' */
void api_jw_arr(api_jw *w)
{
    value_start(w);
    api_buf_putc(w->b, '[');
    w->comma = false;
}

/* ']' */
void api_jw_arr_end(api_jw *w)
{
    api_buf_putc(w->b, ']');
    w->comma = true;
}

/* "key": */
void api_jw_key(api_jw *w, const char *key)
{
    value_start(w);
    api_buf_putc(w->b, '"');
    api_json_escape(w->b, key, strlen(key));
    api_buf_append(w->b, "\":", 2);
    w->comma = false;
}

/* "string" or null */
void api_jw_str(api_jw *w, const char *s)
{
    if (!s) {
        api_jw_null(w);
        return;
    }
    api_jw_strn(w, s, strlen(s));
}

/* "string" of len bytes */
void api_jw_strn(api_jw *w, const char *s, size_t len)
{
    value_start(w);
    api_buf_putc(w->b, '"');
    api_json_escape(w->b, s, len);
    api_buf_putc(w->b, '"');
}

/* integer */
void api_jw_int(api_jw *w, long long v)
{
    value_start(w);
    api_buf_put_int(w->b, v);
}

/* true/false */
void api_jw_bool(api_jw *w, bool v)
{
    value_start(w);
    if (v)
        api_buf_append(w->b, "true", 4);
    else
        api_buf_append(w->b, "false", 5);
}

/* null */
void api_jw_null(api_jw *w)
{
    value_start(w);
    api_buf_append(w->b, "null", 4);
}

/* pre-rendered JSON */
void api_jw_raw(api_jw *w, const char *json, size_t len)
{
    value_start(w);
    api_buf_append(w->b, json, len);
}

/* jansson dump callback into an api_buf */
static int dump_cb(const char *buffer, size_t size, void *data)
{
    api_buf *b = data;
    api_buf_append(b, buffer, size);
    return b->oom ? -1 : 0;
}

/* a jansson value, compact */
void api_jw_json(api_jw *w, const json_t *v)
{
    if (!v) {
        api_jw_null(w);
        return;
    }
    value_start(w);
    if (json_dump_callback(v, dump_cb, w->b, JSON_COMPACT | JSON_ENCODE_ANY) != 0)
        w->b->oom = true;
}

void api_jw_kstr(api_jw *w, const char *key, const char *s)
{
    api_jw_key(w, key);
    api_jw_str(w, s);
}

void api_jw_kint(api_jw *w, const char *key, long long v)
{
    api_jw_key(w, key);
    api_jw_int(w, v);
}

void api_jw_kbool(api_jw *w, const char *key, bool v)
{
    api_jw_key(w, key);
    api_jw_bool(w, v);
}

void api_jw_knull(api_jw *w, const char *key)
{
    api_jw_key(w, key);
    api_jw_null(w);
}
