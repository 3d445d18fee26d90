/*
 * Pagination the way Mastodon's controllers do it, since clients follow its Link headers
 * blindly: limit_param (absent -> default, else min(|to_i|, max): "abc" and "0" give empty
 * pages, "-5" gives 5), max_id/since_id/min_id taken with Ruby's to_i when present, and
 * Link headers built like Rails' url helpers: absolute URLs (public_url), the carried
 * parameters plus max_id (next) or min_id/since_id (prev), sorted, CGI-escaped.
 */
#include "api/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ruby's String#to_i */
int64_t api_ruby_to_i(const char *s)
{
    if (!s)
        return 0;
    while (*s == ' ' || (*s >= '\t' && *s <= '\r'))
        s++;
    bool neg = false;
    if (*s == '+' || *s == '-')
        neg = *s++ == '-';
    uint64_t v = 0;
    bool big = false;
    for (; (*s >= '0' && *s <= '9') || (*s == '_' && s[1] >= '0' && s[1] <= '9'); s++) {
        if (*s == '_')
            continue; /* Ruby allows 1_000 */
        if (v > (UINT64_MAX - 9) / 10)
            big = true;
        else
            v = v * 10 + (uint64_t)(*s - '0');
    }
    if (big || v > (uint64_t)INT64_MAX)
        return neg ? INT64_MIN : INT64_MAX;
    return neg ? -(int64_t)v : (int64_t)v;
}

/* Mastodon's limit_param */
long api_limit_param(api_req *req, long def, long max)
{
    const char *p = api_req_param(req, "limit");
    if (!p)
        return def;
    int64_t v = api_ruby_to_i(p);
    if (v < 0)
        v = v == INT64_MIN ? INT64_MAX : -v;
    return v > max ? max : (long)v;
}

/* present? in Rails: not nil and not only whitespace */
static bool present(const char *s)
{
    if (!s)
        return false;
    for (; *s; s++)
        if (!(*s == ' ' || (*s >= '\t' && *s <= '\r')))
            return true;
    return false;
}

/* limit and the three id bounds */
void api_page_parse(api_req *req, long def, long max, api_page *p)
{
    memset(p, 0, sizeof(*p));
    p->limit = api_limit_param(req, def, max);
    const char *v = api_req_param(req, "max_id");
    if ((p->has_max = present(v)))
        p->max_id = api_ruby_to_i(v);
    v = api_req_param(req, "since_id");
    if ((p->has_since = present(v)))
        p->since_id = api_ruby_to_i(v);
    v = api_req_param(req, "min_id");
    if ((p->has_min = present(v)))
        p->min_id = api_ruby_to_i(v);
}

/* ActiveModel::Type::Boolean */
bool api_param_bool(api_req *req, const char *name, bool dflt)
{
    const char *v = api_req_param(req, name);
    if (!v || !*v)
        return dflt;
    static const char *const falsy[] = {"0", "f", "F", "false", "FALSE", "off", "OFF"};
    for (size_t i = 0; i < sizeof(falsy) / sizeof(falsy[0]); i++)
        if (strcmp(v, falsy[i]) == 0)
            return false;
    return true;
}

/* CGI.escape: unreserved bytes stay, space becomes '+', the rest %XX */
static void cgi_escape(api_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '_' || c == '.' || c == '-' || c == '~') {
            api_buf_putc(b, (char)c);
        } else if (c == ' ') {
            api_buf_putc(b, '+');
        } else {
            api_buf_putc(b, '%');
            api_buf_putc(b, hex[c >> 4]);
            api_buf_putc(b, hex[c & 15]);
        }
    }
}

/* one link: <url?sorted pairs>; rel="rel". Every page answers two of these, so the pairs
 * are built in one buffer and sorted in place (at most 16: insertion sort), no printf */
static void one_link(api_req *req, api_buf *out, const char *path, const char *const *keep,
                     const char *key, int64_t id, const char *rel)
{
    size_t off[16];
    int n = 0;
    api_buf tmp = {0};
    for (int i = 0; keep && keep[i] && n < 15; i++) {
        json_t *v = req->params ? json_object_get(req->params, keep[i]) : NULL;
        if (!v || !(json_is_string(v) || json_is_integer(v) || json_is_boolean(v)))
            continue;
        const char *sv = api_req_param(req, keep[i]);
        if (!sv)
            continue;
        off[n++] = tmp.len;
        cgi_escape(&tmp, keep[i]);
        api_buf_putc(&tmp, '=');
        cgi_escape(&tmp, sv);
        api_buf_putc(&tmp, '\0');
    }
    char idtext[24];
    off[n++] = tmp.len;
    cgi_escape(&tmp, key);
    api_buf_putc(&tmp, '=');
    api_buf_append(&tmp, idtext, (size_t)api_i64_text(idtext, id));
    api_buf_putc(&tmp, '\0');
    if (tmp.oom) {
        out->oom = true;
        api_buf_free(&tmp);
        return;
    }
    for (int i = 1; i < n; i++) {
        size_t x = off[i];
        int j = i;
        while (j > 0 && strcmp(tmp.data + off[j - 1], tmp.data + x) > 0) {
            off[j] = off[j - 1];
            j--;
        }
        off[j] = x;
    }
    api_buf_putc(out, '<');
    api_buf_puts(out, req->w->srv->cfg->public_url);
    api_buf_puts(out, path);
    for (int i = 0; i < n; i++) {
        api_buf_putc(out, i ? '&' : '?');
        api_buf_puts(out, tmp.data + off[i]);
    }
    api_buf_puts(out, ">; rel=\"");
    api_buf_puts(out, rel);
    api_buf_putc(out, '"');
    api_buf_free(&tmp);
}

/* the Link header of a page */
void api_link_header(api_req *req, const char *path, const char *const *keep, bool next,
                     int64_t next_max_id, bool prev, const char *prev_key, int64_t prev_id)
{
    if (!next && !prev)
        return;
    api_buf v = {0};
    if (next)
        one_link(req, &v, path, keep, "max_id", next_max_id, "next");
    if (next && prev)
        api_buf_puts(&v, ", ");
    if (prev)
        one_link(req, &v, path, keep, prev_key, prev_id, "prev");
    if (!v.oom && v.len) {
        /* longer than api_req_add_header's line buffer when a kept value is huge */
        api_buf_puts(&req->resp_hdrs, "Link: ");
        api_buf_append(&req->resp_hdrs, v.data, v.len);
        api_buf_puts(&req->resp_hdrs, "\r\n");
    }
    api_buf_free(&v);
}

/* strict id of one JSON value */
static int64_t value_id(json_t *v)
{
    int64_t id;
    if (json_is_integer(v))
        return json_integer_value(v) > 0 ? json_integer_value(v) : 0;
    if (json_is_string(v) && api_parse_id(json_string_value(v), json_string_length(v), &id))
        return id;
    return 0;
}

/* ids of a string or array parameter; 0 for an entry that is not an id */
int api_param_ids(api_req *req, const char *name, int64_t *out, int max)
{
    json_t *v = req->params ? json_object_get(req->params, name) : NULL;
    if (!v)
        return 0;
    if (!json_is_array(v)) {
        if (max < 1)
            return 0;
        out[0] = value_id(v);
        return 1;
    }
    int n = 0;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        if (n >= max)
            break;
        out[n++] = value_id(e);
    }
    return n;
}
