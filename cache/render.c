/*
 * JSON rendering of Mastodon's REST entities (Status, Account) from cached records. Shared by
 * the fan-out (streaming payloads) and the api (REST answers), so a client sees the same
 * bytes on both paths. Ids are strings, as in Mastodon; times are ISO 8601 UTC with
 * milliseconds. Strings are escaped per RFC 8259, with invalid UTF-8 replaced by U+FFFD and
 * U+2028/U+2029 escaped so the output is also safe inside JavaScript.
 */
#include "cache/internal.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* length of the valid UTF-8 sequence at p (at most avail bytes), 0 when invalid */
static size_t utf8_seq(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0];
    size_t n;
    unsigned int cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    /* overlong forms, surrogates and values past U+10FFFF */
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

bool cache_json_string(cache_buf *out, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    if (!s)
        return cache_buf_puts(out, "null");
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s);
    cache_buf_append(out, "\"", 1);
    size_t run = 0; /* bytes copied verbatim are batched */
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        const char *esc = NULL;
        char ubuf[7];
        size_t step = 1;
        if (c == '"')
            esc = "\\\"";
        else if (c == '\\')
            esc = "\\\\";
        else if (c == '\n')
            esc = "\\n";
        else if (c == '\r')
            esc = "\\r";
        else if (c == '\t')
            esc = "\\t";
        else if (c == '\b')
            esc = "\\b";
        else if (c == '\f')
            esc = "\\f";
        else if (c < 0x20) {
            ubuf[0] = '\\';
            ubuf[1] = 'u';
            ubuf[2] = '0';
            ubuf[3] = '0';
            ubuf[4] = hex[c >> 4];
            ubuf[5] = hex[c & 15];
            ubuf[6] = '\0';
            esc = ubuf;
        } else if (c >= 0x80) {
            step = utf8_seq(p + i, len - i);
            if (step == 0) {
                esc = "\xef\xbf\xbd"; /* U+FFFD for each bad byte */
                step = 1;
            } else if (step == 3 && c == 0xe2 && p[i + 1] == 0x80 &&
                       (p[i + 2] == 0xa8 || p[i + 2] == 0xa9)) {
                esc = p[i + 2] == 0xa8 ? "\\u2028" : "\\u2029";
            }
        }
        if (esc) {
            if (run)
                cache_buf_append(out, p + i - run, run);
            run = 0;
            cache_buf_puts(out, esc);
        } else {
            run += step;
        }
        i += step;
    }
    if (run)
        cache_buf_append(out, p + len - run, run);
    return cache_buf_append(out, "\"", 1);
}

void cache_format_time(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    int frac = (int)(ms - (int64_t)t * 1000);
    struct tm tm;
    char date[24];
    gmtime_r(&t, &tm);
    if (strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        date[0] = '\0';
    snprintf(out, 32, "%.20s.%03uZ", date, (unsigned)frac % 1000u);
}

/* "2019-12-08" (Mastodon gives last_status_at as a date) */
static void format_date(int64_t ms, char out[16])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    if (strftime(out, 16, "%Y-%m-%d", &tm) == 0)
        out[0] = '\0';
}

/* HTML-escape s into out */
static void html_escape(cache_buf *out, const char *s, size_t len)
{
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        const char *e = NULL;
        switch (s[i]) {
        case '&':
            e = "&amp;";
            break;
        case '<':
            e = "&lt;";
            break;
        case '>':
            e = "&gt;";
            break;
        case '"':
            e = "&quot;";
            break;
        case '\'':
            e = "&#39;";
            break;
        default:
            run++;
            continue;
        }
        if (run)
            cache_buf_append(out, s + i - run, run);
        run = 0;
        cache_buf_puts(out, e);
    }
    if (run)
        cache_buf_append(out, s + len - run, run);
}

bool cache_render_plain_content(cache_buf *out, const char *text)
{
    if (!text || !*text)
        return cache_buf_puts(out, "");
    /* paragraphs are separated by blank lines; single newlines become <br /> */
    const char *p = text;
    size_t len = strlen(text);
    const char *end = text + len;
    while (p < end) {
        const char *para_end = strstr(p, "\n\n");
        if (!para_end)
            para_end = end;
        if (para_end > p) {
            cache_buf_puts(out, "<p>");
            const char *q = p;
            while (q < para_end) {
                const char *nl = memchr(q, '\n', (size_t)(para_end - q));
                const char *line_end = nl ? nl : para_end;
                html_escape(out, q, (size_t)(line_end - q));
                if (!nl)
                    break;
                cache_buf_puts(out, "<br />");
                q = nl + 1;
            }
            cache_buf_puts(out, "</p>");
        }
        p = para_end;
        while (p < end && *p == '\n')
            p++;
    }
    return !out->oom;
}

static void json_key(cache_buf *out, const char *key, bool *first)
{
    if (!*first)
        cache_buf_append(out, ",", 1);
    *first = false;
    cache_buf_printf(out, "\"%s\":", key);
}

static void json_id(cache_buf *out, const char *key, int64_t id, bool *first)
{
    json_key(out, key, first);
    if (id)
        cache_buf_printf(out, "\"%lld\"", (long long)id);
    else
        cache_buf_puts(out, "null");
}

static void json_str(cache_buf *out, const char *key, const char *v, bool *first)
{
    json_key(out, key, first);
    cache_json_string(out, v);
}

static void json_bool(cache_buf *out, const char *key, bool v, bool *first)
{
    json_key(out, key, first);
    cache_buf_puts(out, v ? "true" : "false");
}

static void json_int(cache_buf *out, const char *key, int64_t v, bool *first)
{
    json_key(out, key, first);
    cache_buf_printf(out, "%lld", (long long)v);
}

static void json_time(cache_buf *out, const char *key, int64_t ms, bool *first)
{
    json_key(out, key, first);
    if (ms) {
        char t[32];
        cache_format_time(ms, t);
        cache_buf_printf(out, "\"%s\"", t);
    } else {
        cache_buf_puts(out, "null");
    }
}

/* the acct of an account: username, or username@domain when remote */
static void acct_of(cache_buf *tmp, const char *username, const char *domain)
{
    cache_buf_reset(tmp);
    cache_buf_puts(tmp, username ? username : "");
    if (domain && *domain) {
        cache_buf_puts(tmp, "@");
        cache_buf_puts(tmp, domain);
    }
}

/* the profile URL of an account */
static void profile_url(cache_buf *tmp, const char *url, const char *username,
                        const cache_config *cfg)
{
    char base[320];
    cache_buf_reset(tmp);
    if (url && *url)
        cache_buf_puts(tmp, url);
    else
        cache_buf_printf(tmp, "%s/@%s", cache_config_url_base(cfg, base, sizeof(base)),
                         username ? username : "");
}

bool cache_render_account(cache_buf *out, const cache_account *a, const cache_config *cfg)
{
    char base_buf[320];
    const char *base = cache_config_url_base(cfg, base_buf, sizeof(base_buf));
    cache_buf tmp;
    cache_buf_init(&tmp);
    bool first = true;
    cache_buf_append(out, "{", 1);
    json_id(out, "id", a->id, &first);
    json_str(out, "username", a->username ? a->username : "", &first);
    acct_of(&tmp, a->username, a->domain);
    json_str(out, "acct", tmp.data ? tmp.data : "", &first);
    json_str(out, "display_name", a->display_name ? a->display_name : "", &first);
    json_bool(out, "locked", a->locked, &first);
    json_bool(out, "bot", a->bot, &first);
    json_bool(out, "discoverable", a->discoverable, &first);
    json_bool(out, "group", a->group, &first);
    /* Mastodon shows the account's creation day at midnight */
    json_time(out, "created_at", a->created_at_ms - a->created_at_ms % 86400000, &first);
    json_str(out, "note", a->note ? a->note : "", &first);
    profile_url(&tmp, a->url, a->username, cfg);
    json_str(out, "url", tmp.data, &first);
    if (a->uri && *a->uri) {
        json_str(out, "uri", a->uri, &first);
    } else {
        cache_buf_reset(&tmp);
        cache_buf_printf(&tmp, "%s/users/%s", base, a->username ? a->username : "");
        json_str(out, "uri", tmp.data, &first);
    }
    cache_buf_reset(&tmp);
    if (a->avatar && *a->avatar)
        cache_buf_puts(&tmp, a->avatar);
    else
        cache_buf_printf(&tmp, "%s/avatars/original/missing.png", base);
    json_str(out, "avatar", tmp.data, &first);
    json_str(out, "avatar_static", tmp.data, &first);
    cache_buf_reset(&tmp);
    if (a->header && *a->header)
        cache_buf_puts(&tmp, a->header);
    else
        cache_buf_printf(&tmp, "%s/headers/original/missing.png", base);
    json_str(out, "header", tmp.data, &first);
    json_str(out, "header_static", tmp.data, &first);
    json_int(out, "followers_count", a->followers_count, &first);
    json_int(out, "following_count", a->following_count, &first);
    json_int(out, "statuses_count", a->statuses_count, &first);
    json_key(out, "last_status_at", &first);
    if (a->last_status_at_ms) {
        char d[16];
        format_date(a->last_status_at_ms, d);
        cache_buf_printf(out, "\"%s\"", d);
    } else {
        cache_buf_puts(out, "null");
    }
    json_key(out, "emojis", &first);
    cache_buf_puts(out, "[]");
    json_key(out, "fields", &first);
    /* fields_json comes from a jsonb column, so it is valid JSON */
    cache_buf_puts(out, a->fields_json && *a->fields_json ? a->fields_json : "[]");
    cache_buf_append(out, "}", 1);
    cache_buf_free(&tmp);
    return !out->oom;
}

static const char *visibility_name(int v)
{
    static const char *const names[] = {"public", "unlisted", "private", "direct", "limited"};
    return v >= 0 && v <= 4 ? names[v] : "public";
}

bool cache_render_status(cache_buf *out, const cache_status *s, const cache_config *cfg,
                         const cache_viewer_flags *viewer)
{
    char base_buf[320];
    const char *base = cache_config_url_base(cfg, base_buf, sizeof(base_buf));
    cache_buf tmp;
    cache_buf_init(&tmp);
    bool first = true;
    const char *username = s->account.username ? s->account.username : "";
    cache_buf_append(out, "{", 1);
    json_id(out, "id", s->id, &first);
    json_time(out, "created_at", s->created_at_ms, &first);
    json_id(out, "in_reply_to_id", s->in_reply_to_id, &first);
    json_id(out, "in_reply_to_account_id", s->in_reply_to_account_id, &first);
    json_bool(out, "sensitive", s->sensitive, &first);
    json_str(out, "spoiler_text", s->spoiler_text ? s->spoiler_text : "", &first);
    json_str(out, "visibility", visibility_name(s->visibility), &first);
    json_str(out, "language", s->language && *s->language ? s->language : NULL, &first);
    cache_buf_reset(&tmp);
    if (s->uri && *s->uri)
        cache_buf_puts(&tmp, s->uri);
    else
        cache_buf_printf(&tmp, "%s/users/%s/statuses/%lld", base, username, (long long)s->id);
    json_str(out, "uri", tmp.data, &first);
    if (s->reblog_of_id) {
        json_str(out, "url", s->url && *s->url ? s->url : NULL, &first);
    } else {
        cache_buf_reset(&tmp);
        if (s->url && *s->url)
            cache_buf_puts(&tmp, s->url);
        else
            cache_buf_printf(&tmp, "%s/@%s/%lld", base, username, (long long)s->id);
        json_str(out, "url", tmp.data, &first);
    }
    json_int(out, "replies_count", s->replies_count, &first);
    json_int(out, "reblogs_count", s->reblogs_count, &first);
    json_int(out, "favourites_count", s->favourites_count, &first);
    json_time(out, "edited_at", s->edited_at_ms, &first);
    if (viewer) {
        json_bool(out, "favourited", viewer->favourited, &first);
        json_bool(out, "reblogged", viewer->reblogged, &first);
        json_bool(out, "muted", viewer->muted, &first);
        json_bool(out, "bookmarked", viewer->bookmarked, &first);
        json_bool(out, "pinned", viewer->pinned, &first);
    }
    /* content: a reblog has none of its own */
    cache_buf_reset(&tmp);
    if (!s->reblog_of_id) {
        if (s->local)
            cache_render_plain_content(&tmp, s->text);
        else
            cache_buf_puts(&tmp, s->text ? s->text : "");
    }
    json_str(out, "content", tmp.data ? tmp.data : "", &first);
    json_key(out, "reblog", &first);
    if (s->reblog)
        cache_render_status(out, s->reblog, cfg, viewer);
    else
        cache_buf_puts(out, "null");
    json_key(out, "account", &first);
    cache_render_account(out, &s->account, cfg);
    json_key(out, "media_attachments", &first);
    cache_buf_puts(out, "[]");
    json_key(out, "mentions", &first);
    cache_buf_append(out, "[", 1);
    for (size_t i = 0; i < s->n_mentions; i++) {
        const cache_mention *m = &s->mentions[i];
        bool f2 = true;
        if (i)
            cache_buf_append(out, ",", 1);
        cache_buf_append(out, "{", 1);
        json_id(out, "id", m->account_id, &f2);
        json_str(out, "username", m->username ? m->username : "", &f2);
        profile_url(&tmp, m->url, m->username, cfg);
        json_str(out, "url", tmp.data, &f2);
        acct_of(&tmp, m->username, m->domain);
        json_str(out, "acct", tmp.data ? tmp.data : "", &f2);
        cache_buf_append(out, "}", 1);
    }
    cache_buf_append(out, "]", 1);
    json_key(out, "tags", &first);
    cache_buf_puts(out, "[]");
    json_key(out, "emojis", &first);
    cache_buf_puts(out, "[]");
    json_key(out, "card", &first);
    cache_buf_puts(out, "null");
    json_key(out, "poll", &first);
    cache_buf_puts(out, "null");
    cache_buf_append(out, "}", 1);
    cache_buf_free(&tmp);
    return !out->oom;
}

bool cache_event_update(cache_buf *out, const char *status_json, size_t len)
{
    cache_buf_puts(out, "{\"event\":\"update\",\"payload\":");
    cache_buf_append(out, status_json, len);
    return cache_buf_append(out, "}", 1);
}

bool cache_event_delete(cache_buf *out, int64_t status_id)
{
    return cache_buf_printf(out, "{\"event\":\"delete\",\"payload\":\"%lld\"}",
                            (long long)status_id);
}
