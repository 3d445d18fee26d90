/*
 * The Account entity (Mastodon's REST::AccountSerializer) from accounts + account_stats,
 * written straight into a response. The SELECT list the renderer expects is exported as
 * API_ACCOUNT_COLUMNS so every query that returns accounts uses the same one.
 *
 * Local notes are plain text in the table and HTML in the API (Mastodon renders them):
 * escaped, paragraphs on blank lines, <br /> on single newlines. Remote notes are HTML
 * already. Media URLs follow Mastodon's storage layout, or missing.png when there is none.
 */
#include "api/internal.h"

#include <stdlib.h>
#include <string.h>

const char API_ACCOUNT_COLUMNS[] =
    "a.id, a.username, a.domain, a.display_name, a.note, a.url, a.uri, a.locked, a.created_at, "
    "a.avatar_file_name, a.avatar_remote_url, a.header_file_name, a.header_remote_url, "
    "a.fields, a.actor_type, a.discoverable, a.memorial, a.indexable, a.hide_collections, "
    "coalesce(s.statuses_count, 0), coalesce(s.followers_count, 0), "
    "coalesce(s.following_count, 0), s.last_status_at";

enum {
    C_ID,
    C_USERNAME,
    C_DOMAIN,
    C_DISPLAY_NAME,
    C_NOTE,
    C_URL,
    C_URI,
    C_LOCKED,
    C_CREATED_AT,
    C_AVATAR_FILE,
    C_AVATAR_REMOTE,
    C_HEADER_FILE,
    C_HEADER_REMOTE,
    C_FIELDS,
    C_ACTOR_TYPE,
    C_DISCOVERABLE,
    C_MEMORIAL,
    C_INDEXABLE,
    C_HIDE_COLLECTIONS,
    C_STATUSES,
    C_FOLLOWERS,
    C_FOLLOWING,
    C_LAST_STATUS_AT,
    C_COUNT
};
_Static_assert(C_COUNT == API_ACCOUNT_NCOLS, "API_ACCOUNT_NCOLS must match the column list");

typedef struct row {
    const PGresult *res;
    int r, c0;
} row;

static const char *val(const row *x, int col)
{
    return PQgetisnull(x->res, x->r, x->c0 + col) ? NULL : PQgetvalue(x->res, x->r, x->c0 + col);
}

static bool bval(const row *x, int col)
{
    const char *v = val(x, col);
    return v && v[0] == 't';
}

static void kbool_or_null(api_jw *w, const char *key, const row *x, int col)
{
    api_jw_key(w, key);
    if (!val(x, col))
        api_jw_null(w);
    else
        api_jw_bool(w, bval(x, col));
}

/* plain text -> the HTML Mastodon shows for local text */
static void text_to_html(api_buf *out, const char *s)
{
    if (!s || !*s)
        return;
    api_buf_puts(out, "<p>");
    for (const char *p = s; *p; p++) {
        switch (*p) {
        case '&':
            api_buf_puts(out, "&amp;");
            break;
        case '<':
            api_buf_puts(out, "&lt;");
            break;
        case '>':
            api_buf_puts(out, "&gt;");
            break;
        case '"':
            api_buf_puts(out, "&quot;");
            break;
        case '\'':
            api_buf_puts(out, "&#39;");
            break;
        case '\r':
            break;
        case '\n':
            if (p[1] == '\n' || (p[1] == '\r' && p[2] == '\n')) {
                api_buf_puts(out, "</p><p>");
                while (p[1] == '\n' || p[1] == '\r')
                    p++;
            } else {
                api_buf_puts(out, "<br />");
            }
            break;
        default:
            api_buf_putc(out, *p);
        }
    }
    api_buf_puts(out, "</p>");
}

/* Paperclip's id_partition: 000/000/001 */
static void id_partition(api_buf *out, const char *id)
{
    char pad[32];
    size_t l = strlen(id);
    if (l >= sizeof(pad))
        return;
    size_t width = l < 9 ? 9 : ((l + 2) / 3) * 3;
    memset(pad, '0', width - l);
    memcpy(pad + width - l, id, l);
    for (size_t i = 0; i < width; i += 3) {
        if (i)
            api_buf_putc(out, '/');
        api_buf_append(out, pad + i, 3);
    }
}

/* avatar / header URL */
static void media_url(api_jw *w, const api_config *cfg, const row *x, int file_col, int remote_col,
                      const char *kind)
{
    const char *remote = val(x, remote_col);
    const char *file = val(x, file_col);
    api_buf u = {0};
    if (remote && *remote) {
        api_buf_puts(&u, remote);
    } else if (file && *file) {
        api_buf_puts(&u, cfg->public_url);
        api_buf_puts(&u, "/system/accounts/");
        api_buf_puts(&u, kind);
        api_buf_putc(&u, '/');
        id_partition(&u, val(x, C_ID));
        api_buf_puts(&u, "/original/");
        api_buf_puts(&u, file);
    } else {
        api_buf_puts(&u, cfg->public_url);
        api_buf_puts(&u, strcmp(kind, "avatars") == 0 ? "/avatars/original/missing.png"
                                                      : "/headers/original/missing.png");
    }
    api_jw_strn(w, u.data ? u.data : "", u.len);
    api_buf_free(&u);
}

/* accounts.fields jsonb: [{"name":..,"value":..,"verified_at":..}] */
static void fields(api_jw *w, const row *x, bool local)
{
    api_jw_arr(w);
    const char *text = val(x, C_FIELDS);
    json_t *arr = text ? json_loads(text, 0, NULL) : NULL;
    if (json_is_array(arr)) {
        size_t i;
        json_t *f;
        json_array_foreach(arr, i, f)
        {
            const char *name = json_string_value(json_object_get(f, "name"));
            const char *value = json_string_value(json_object_get(f, "value"));
            if (!name || !value)
                continue;
            api_jw_obj(w);
            api_jw_kstr(w, "name", name);
            api_jw_key(w, "value");
            if (local) {
                api_buf h = {0};
                for (const char *p = value; *p; p++) {
                    if (*p == '<')
                        api_buf_puts(&h, "&lt;");
                    else if (*p == '>')
                        api_buf_puts(&h, "&gt;");
                    else if (*p == '&')
                        api_buf_puts(&h, "&amp;");
                    else
                        api_buf_putc(&h, *p);
                }
                api_jw_strn(w, h.data ? h.data : "", h.len);
                api_buf_free(&h);
            } else {
                api_jw_str(w, value);
            }
            api_jw_kstr(w, "verified_at", json_string_value(json_object_get(f, "verified_at")));
            api_jw_obj_end(w);
        }
    }
    json_decref(arr);
    api_jw_arr_end(w);
}

/* the Account entity of one row */
void api_account_render(api_jw *w, const api_config *cfg, const PGresult *res, int r, int col,
                        bool credential)
{
    row x = {res, r, col};
    const char *id = val(&x, C_ID);
    const char *username = val(&x, C_USERNAME) ? val(&x, C_USERNAME) : "";
    const char *domain = val(&x, C_DOMAIN);
    bool local = !domain || !*domain;
    char tbuf[32];
    api_buf tmp = {0};

    api_jw_obj(w);
    api_jw_kstr(w, "id", id);
    api_jw_kstr(w, "username", username);
    api_jw_key(w, "acct");
    api_buf_puts(&tmp, username);
    if (!local) {
        api_buf_putc(&tmp, '@');
        api_buf_puts(&tmp, domain);
    }
    api_jw_strn(w, tmp.data ? tmp.data : "", tmp.len);

    api_jw_kstr(w, "display_name", val(&x, C_DISPLAY_NAME) ? val(&x, C_DISPLAY_NAME) : "");
    api_jw_kbool(w, "locked", bval(&x, C_LOCKED));
    const char *actor = val(&x, C_ACTOR_TYPE);
    api_jw_kbool(w, "bot",
                 actor && (strcmp(actor, "Application") == 0 || strcmp(actor, "Service") == 0));
    kbool_or_null(w, "discoverable", &x, C_DISCOVERABLE);
    api_jw_kbool(w, "indexable", bval(&x, C_INDEXABLE));
    api_jw_kbool(w, "group", actor && strcmp(actor, "Group") == 0);
    api_jw_key(w, "created_at");
    if (api_iso_time(val(&x, C_CREATED_AT), tbuf)) {
        /* Mastodon shows the day only: midnight UTC */
        memcpy(tbuf + 11, "00:00:00.000Z", 14);
        api_jw_str(w, tbuf);
    } else {
        api_jw_null(w);
    }
    api_jw_key(w, "note");
    api_buf_reset(&tmp);
    if (local)
        text_to_html(&tmp, val(&x, C_NOTE));
    else
        api_buf_puts(&tmp, val(&x, C_NOTE) ? val(&x, C_NOTE) : "");
    api_jw_strn(w, tmp.data ? tmp.data : "", tmp.len);

    api_jw_key(w, "url");
    api_buf_reset(&tmp);
    if (local) {
        api_buf_puts(&tmp, cfg->public_url);
        api_buf_puts(&tmp, "/@");
        api_buf_puts(&tmp, username);
    } else {
        const char *u = val(&x, C_URL) && *val(&x, C_URL) ? val(&x, C_URL) : val(&x, C_URI);
        api_buf_puts(&tmp, u ? u : "");
    }
    api_jw_strn(w, tmp.data ? tmp.data : "", tmp.len);
    api_jw_key(w, "uri");
    api_buf_reset(&tmp);
    if (local) {
        api_buf_puts(&tmp, cfg->public_url);
        api_buf_puts(&tmp, "/users/");
        api_buf_puts(&tmp, username);
    } else {
        api_buf_puts(&tmp, val(&x, C_URI) ? val(&x, C_URI) : "");
    }
    api_jw_strn(w, tmp.data ? tmp.data : "", tmp.len);
    api_buf_free(&tmp);

    api_jw_key(w, "avatar");
    media_url(w, cfg, &x, C_AVATAR_FILE, C_AVATAR_REMOTE, "avatars");
    api_jw_key(w, "avatar_static");
    media_url(w, cfg, &x, C_AVATAR_FILE, C_AVATAR_REMOTE, "avatars");
    api_jw_key(w, "header");
    media_url(w, cfg, &x, C_HEADER_FILE, C_HEADER_REMOTE, "headers");
    api_jw_key(w, "header_static");
    media_url(w, cfg, &x, C_HEADER_FILE, C_HEADER_REMOTE, "headers");

    api_jw_kint(w, "followers_count", strtoll(val(&x, C_FOLLOWERS), NULL, 10));
    api_jw_kint(w, "following_count", strtoll(val(&x, C_FOLLOWING), NULL, 10));
    api_jw_kint(w, "statuses_count", strtoll(val(&x, C_STATUSES), NULL, 10));
    api_jw_key(w, "last_status_at");
    if (api_iso_time(val(&x, C_LAST_STATUS_AT), tbuf))
        api_jw_strn(w, tbuf, 10); /* a date, as Mastodon gives it */
    else
        api_jw_null(w);
    kbool_or_null(w, "hide_collections", &x, C_HIDE_COLLECTIONS);
    if (bval(&x, C_MEMORIAL))
        api_jw_kbool(w, "memorial", true);
    api_jw_key(w, "emojis");
    api_jw_arr(w);
    api_jw_arr_end(w);
    api_jw_key(w, "fields");
    fields(w, &x, local);
    if (local) {
        api_jw_key(w, "roles");
        api_jw_arr(w);
        api_jw_arr_end(w);
    }
    if (credential) {
        /* CredentialAccount: what the owner edits */
        api_jw_key(w, "source");
        api_jw_obj(w);
        api_jw_kstr(w, "privacy", "public");
        api_jw_kbool(w, "sensitive", false);
        api_jw_knull(w, "language");
        api_jw_kstr(w, "note", val(&x, C_NOTE) ? val(&x, C_NOTE) : "");
        api_jw_key(w, "fields");
        fields(w, &x, false);
        api_jw_kint(w, "follow_requests_count", 0);
        api_jw_kbool(w, "hide_collections", bval(&x, C_HIDE_COLLECTIONS));
        kbool_or_null(w, "discoverable", &x, C_DISCOVERABLE);
        api_jw_kbool(w, "indexable", bval(&x, C_INDEXABLE));
        api_jw_obj_end(w);
        api_jw_key(w, "role");
        api_jw_obj(w);
        api_jw_kstr(w, "id", "-99");
        api_jw_kstr(w, "name", "");
        api_jw_kstr(w, "permissions", "65536");
        api_jw_kstr(w, "color", "");
        api_jw_kbool(w, "highlighted", false);
        api_jw_obj_end(w);
    }
    api_jw_obj_end(w);
}
