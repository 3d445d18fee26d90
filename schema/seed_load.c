/*
 * "tusk seed", loading: streams the generated tables through one COPY each (text format,
 * 1 MB buffers, see copy.c), in foreign-key order, inside the caller's transaction. Each
 * table's secondary indexes are dropped before its COPY and rebuilt after it.
 */
#include "common/common.h"
#include "schema/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const LANGS[] = {"en", "de", "fr", "ja", "es", NULL};
static const char *const WORDS[] = {
    "timeline",  "postgres",   "replica",  "mastodon",   "coffee",  "morning", "release", "garden",
    "weather",   "train",      "music",    "reading",    "cat",     "dog",     "bicycle", "river",
    "tusk",      "fanout",     "latency",  "throughput", "commit",  "index",   "query",   "cache",
    "photo",     "sunset",     "mountain", "library",    "bread",   "walk",    "rain",    "snow",
    "code",      "review",     "deploy",   "friday",     "weekend", "concert", "museum",  "tea",
    "fediverse", "federation", "instance", "toot",       "boost",   "thread",  "moon",    "ocean"};
#define NWORDS (sizeof WORDS / sizeof WORDS[0])

/* ==== internal ==== */

typedef struct load_ctx load_ctx;
static bool load_tables(load_ctx *L);

struct load_ctx {
    seed_world *w;
    PGconn *conn;
    bool progress;
    char *err;
    size_t errlen;
    schema_copy c;
    PGresult *indexes; /* (name, definition) of the indexes dropped for this table's COPY */
};

/* Secondary indexes are dropped before a table's COPY and rebuilt after it, in the same
 * transaction: building a btree by sorting is several times faster than a million random
 * inserts (measured: 1M follows 14 s -> 3 s together with the FK skip of seed.c). Constraint-backed
 * indexes (primary keys) stay. A duplicate in a unique index fails the rebuild, which rolls
 * the whole seed back, so nothing is lost by the drop. */
static bool begin(load_ctx *L, const char *table, const char *cols, size_t total)
{
    const char *params[1] = {table};
    L->indexes = PQexecParams(L->conn,
                              "SELECT c.relname, pg_get_indexdef(c.oid) FROM pg_index x"
                              " JOIN pg_class c ON c.oid = x.indexrelid"
                              " WHERE x.indrelid = $1::regclass AND NOT EXISTS"
                              " (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)"
                              " ORDER BY 1",
                              1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(L->indexes) != PGRES_TUPLES_OK) {
        snprintf(L->err, L->errlen, "listing indexes of %s: %s", table,
                 PQresultErrorMessage(L->indexes));
        PQclear(L->indexes);
        L->indexes = NULL;
        return false;
    }
    for (int r = 0; r < PQntuples(L->indexes); r++) {
        char sql[256];
        snprintf(sql, sizeof sql, "DROP INDEX \"%s\"", PQgetvalue(L->indexes, r, 0));
        PGresult *res = PQexec(L->conn, sql);
        bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok)
            snprintf(L->err, L->errlen, "%s: %s", sql, PQresultErrorMessage(res));
        PQclear(res);
        if (!ok)
            return false;
    }
    if (!schema_copy_begin(&L->c, L->conn, table, cols, total, L->progress)) {
        snprintf(L->err, L->errlen, "%s", L->c.err);
        schema_copy_finish(&L->c);
        return false;
    }
    return true;
}

static bool finish(load_ctx *L)
{
    if (!schema_copy_finish(&L->c)) {
        snprintf(L->err, L->errlen, "%s", L->c.err);
        return false;
    }
    double t0 = schema_now();
    int n = L->indexes ? PQntuples(L->indexes) : 0;
    for (int r = 0; r < n; r++) {
        PGresult *res = PQexec(L->conn, PQgetvalue(L->indexes, r, 1));
        bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok)
            snprintf(L->err, L->errlen, "%s: %s", PQgetvalue(L->indexes, r, 1),
                     PQresultErrorMessage(res));
        PQclear(res);
        if (!ok)
            return false;
    }
    if (strcmp(L->c.table, "follows") == 0)
        L->w->follows_secs = schema_now() - L->c.started;
    if (n > 0 && L->progress && L->c.rows >= 100000)
        fprintf(stderr, "  %-20s %d indexes rebuilt in %.2f s\n", L->c.table, n, schema_now() - t0);
    PQclear(L->indexes);
    L->indexes = NULL;
    return true;
}

/* text of status i: words, with the @mentions first as Mastodon clients write them */
static void status_text(const seed_world *w, size_t i, size_t men_first, size_t men_end, char *out,
                        size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t k = men_first; k < men_end; k++) {
        uint32_t acc = w->men[2 * k + 1];
        char u[32], host[64];
        schema_seed_username(w, acc, u, sizeof u);
        if (schema_seed_is_local(w, acc)) {
            len += (size_t)snprintf(out + len, cap - len, "@%s ", u);
        } else {
            schema_seed_remote_host(w, acc, host, sizeof host);
            len += (size_t)snprintf(out + len, cap - len, "@%s@%s ", u, host);
        }
        if (len >= cap)
            return;
    }
    uint64_t h = schema_seed_row_hash(w, ST_ROWS + 1, i);
    int words = 4 + (int)(h % 20);
    for (int k = 0; k < words && len + 16 < cap; k++) {
        h = h * 6364136223846793005ULL + 1442695040888963407ULL;
        len +=
            (size_t)snprintf(out + len, cap - len, "%s%s", k ? " " : "", WORDS[(h >> 33) % NWORDS]);
    }
    if (len + 16 < cap)
        snprintf(out + len, cap - len, " #%zu", i);
}

/* COPY every table; on failure the caller rolls back (dropped indexes come back with it) */
bool schema_seed_load(seed_world *w, PGconn *conn, char *err, size_t errlen)
{
    load_ctx L = {.w = w, .conn = conn, .progress = !w->o->quiet, .err = err, .errlen = errlen};
    bool ok = load_tables(&L);
    PQclear(L.indexes);
    return ok;
}

static bool load_tables(load_ctx *lc)
{
    seed_world *w = lc->w;
    const seed_opts *o = w->o;
    schema_copy *c = &lc->c;
    char u[32], host[64], buf[256];
    const int64_t now = o->now_ms;

    /* accounts */
    if (!begin(lc, "accounts",
               "id, username, domain, public_key, created_at, updated_at, note, display_name, uri, "
               "url, avatar_remote_url, header_remote_url, inbox_url, outbox_url, "
               "shared_inbox_url, followers_url, following_url, locked, fields, actor_type, "
               "discoverable, "
               "memorial, indexable",
               w->n))
        return false;
    for (size_t i = 0; i < w->n; i++) {
        uint64_t h = schema_seed_row_hash(w, ST_ROWS + 2, i);
        bool local = schema_seed_is_local(w, i);
        schema_seed_username(w, i, u, sizeof u);
        schema_copy_i64(c, w->acc_id[i]);
        schema_copy_str(c, u);
        if (local) {
            schema_copy_null(c);
        } else {
            schema_seed_remote_host(w, i, host, sizeof host);
            schema_copy_str(c, host);
        }
        schema_copy_str(c, "");
        schema_copy_ts(c, w->acc_ms[i]);
        schema_copy_ts(c, w->acc_ms[i]);
        schema_copy_fmt(c, "Seeded account %zu.", i);
        if ((int)i < o->nbig)
            schema_copy_fmt(c, "Big Account %zu", i + 1);
        else
            schema_copy_fmt(c, "User %zu", i);
        if (local) {
            schema_copy_str(c, ""); /* Mastodon leaves uri and url empty for local accounts */
            schema_copy_null(c);
            schema_copy_null(c);
            schema_copy_str(c, "");
            for (int k = 0; k < 5; k++)
                schema_copy_str(c, "");
        } else {
            schema_copy_fmt(c, "https://%s/users/%s", host, u);
            schema_copy_fmt(c, "https://%s/@%s", host, u);
            schema_copy_null(c);
            schema_copy_str(c, "");
            schema_copy_fmt(c, "https://%s/users/%s/inbox", host, u);
            schema_copy_fmt(c, "https://%s/users/%s/outbox", host, u);
            schema_copy_fmt(c, "https://%s/inbox", host);
            schema_copy_fmt(c, "https://%s/users/%s/followers", host, u);
            schema_copy_fmt(c, "https://%s/users/%s/following", host, u);
        }
        schema_copy_bool(c, h % 100 < 3); /* locked */
        if ((h >> 8) % 100 < 20)
            schema_copy_fmt(c,
                            "[{\"name\": \"Website\", \"value\": \"https://example.com/%zu\", "
                            "\"verified_at\": null}]",
                            i);
        else
            schema_copy_null(c);
        schema_copy_str(c, (h >> 16) % 100 < 5 ? "Service" : "Person");
        if ((h >> 24) % 100 < 80)
            schema_copy_bool(c, true);
        else
            schema_copy_null(c);
        schema_copy_bool(c, false);
        schema_copy_bool(c, (h >> 32) % 100 < 50);
        schema_copy_end_row(c);
    }
    if (!finish(lc))
        return false;

    /* account_stats */
    if (!begin(lc, "account_stats",
               "id, account_id, statuses_count, following_count, followers_count, created_at, "
               "updated_at, last_status_at",
               w->n))
        return false;
    for (size_t i = 0; i < w->n; i++) {
        schema_copy_i64(c, (int64_t)i + 1);
        schema_copy_i64(c, w->acc_id[i]);
        schema_copy_i64(c, w->statuses_count[i]);
        schema_copy_i64(c, w->following_count[i]);
        schema_copy_i64(c, w->followers_count[i]);
        schema_copy_ts(c, w->acc_ms[i]);
        schema_copy_ts(c, w->last_status_ms[i] ? w->last_status_ms[i] : w->acc_ms[i]);
        if (w->last_status_ms[i])
            schema_copy_ts(c, w->last_status_ms[i]);
        else
            schema_copy_null(c);
        schema_copy_end_row(c);
    }
    if (!finish(lc))
        return false;

    /* one OAuth application owning every seeded token */
    schema_rng trng;
    schema_rng_seed(&trng, o->seed, ST_TOKENS);
    char uid[44], secret[44], token[44];
    schema_seed_token(&trng, uid);
    schema_seed_token(&trng, secret);
    if (!begin(lc, "oauth_applications",
               "id, name, uid, secret, redirect_uri, scopes, created_at, updated_at, superapp, "
               "website, confidential",
               1))
        return false;
    schema_copy_i64(c, 1);
    schema_copy_str(c, "tusk seed");
    schema_copy_str(c, uid);
    schema_copy_str(c, secret);
    schema_copy_str(c, "urn:ietf:wg:oauth:2.0:oob");
    schema_copy_str(c, "read write follow");
    schema_copy_ts(c, now - 731 * DAY_MS);
    schema_copy_ts(c, now - 731 * DAY_MS);
    schema_copy_bool(c, false);
    schema_copy_fmt(c, "https://%s/", o->domain);
    schema_copy_bool(c, true);
    schema_copy_end_row(c);
    if (!finish(lc))
        return false;

    /* users: active ones signed in within the last 7 days, the others 8..365 days ago */
    if (!begin(lc, "users",
               "id, email, created_at, updated_at, encrypted_password, sign_in_count, "
               "current_sign_in_at, last_sign_in_at, confirmed_at, locale, account_id, disabled, "
               "chosen_languages, approved",
               w->nlocal))
        return false;
    for (size_t k = 0; k < w->nlocal; k++) {
        size_t i = w->locals[k];
        uint64_t h = schema_seed_row_hash(w, ST_ROWS + 3, i);
        bool active = w->acc_flags[i] & ACC_ACTIVE;
        int64_t signin =
            active ? schema_seed_row_time(w, ST_ROWS + 4, i, now - 7 * DAY_MS + 3600 * 1000, now)
                   : schema_seed_row_time(w, ST_ROWS + 4, i, now - 365 * DAY_MS, now - 8 * DAY_MS);
        if (signin < w->acc_ms[i])
            signin = w->acc_ms[i];
        schema_seed_username(w, i, u, sizeof u);
        schema_copy_i64(c, w->acc_user[i]);
        schema_copy_fmt(c, "%s@%s", u, o->domain);
        schema_copy_ts(c, w->acc_ms[i]);
        schema_copy_ts(c, signin);
        schema_copy_str(c, w->password_hash);
        schema_copy_i64(c, 1 + (int64_t)(h % 200));
        schema_copy_ts(c, signin);
        schema_copy_ts(c, signin - (int64_t)((h >> 8) % (3 * (uint64_t)DAY_MS)));
        schema_copy_ts(c, w->acc_ms[i]);
        schema_copy_str(c, (h >> 20) % 100 < 80 ? "en" : "de");
        schema_copy_i64(c, w->acc_id[i]);
        schema_copy_bool(c, false);
        if ((h >> 28) % 100 < 10)
            schema_copy_str(c, "{en,de}");
        else
            schema_copy_null(c);
        schema_copy_bool(c, true);
        schema_copy_end_row(c);
    }
    if (!finish(lc))
        return false;

    /* one token per user */
    if (!begin(lc, "oauth_access_tokens",
               "id, token, scopes, created_at, application_id, resource_owner_id, last_used_at",
               w->nlocal))
        return false;
    for (size_t k = 0; k < w->nlocal; k++) {
        size_t i = w->locals[k];
        schema_seed_token(&trng, token);
        schema_copy_i64(c, (int64_t)k + 1);
        schema_copy_str(c, token);
        schema_copy_str(c, "read write follow");
        schema_copy_ts(c, w->acc_ms[i]);
        schema_copy_i64(c, 1);
        schema_copy_i64(c, w->acc_user[i]);
        if (w->acc_flags[i] & ACC_ACTIVE)
            schema_copy_ts(
                c, now - (int64_t)(schema_seed_row_hash(w, ST_ROWS + 5, i) % (uint64_t)DAY_MS));
        else
            schema_copy_null(c);
        schema_copy_end_row(c);
    }
    if (!finish(lc))
        return false;

    /* conversations: one per thread root, ids 1.. in status order */
    if (!begin(lc, "conversations", "id, created_at, updated_at", w->nconv))
        return false;
    for (size_t i = 0, conv = 0; i < w->ns; i++) {
        if (w->st_kind[i] != KIND_ORIGINAL)
            continue;
        schema_copy_i64(c, (int64_t)++conv);
        schema_copy_ts(c, w->st_ms[i]);
        schema_copy_ts(c, w->st_ms[i]);
        schema_copy_end_row(c);
    }
    if (!finish(lc))
        return false;

    /* statuses */
    if (!begin(lc, "statuses",
               "id, uri, text, created_at, updated_at, in_reply_to_id, reblog_of_id, url, "
               "sensitive, visibility, spoiler_text, reply, language, conversation_id, local, "
               "account_id, application_id, in_reply_to_account_id",
               w->ns))
        return false;
    char text[1024];
    for (size_t i = 0, mk = 0; i < w->ns; i++) {
        size_t men_first = mk;
        while (mk < w->nmen && w->men[2 * mk] == i)
            mk++;
        uint32_t a = w->st_author[i];
        bool local = schema_seed_is_local(w, a);
        bool reblog = w->st_kind[i] == KIND_REBLOG;
        uint64_t h = schema_seed_row_hash(w, ST_ROWS + 6, i);
        schema_seed_username(w, a, u, sizeof u);
        if (local)
            snprintf(host, sizeof host, "%s", o->domain);
        else
            schema_seed_remote_host(w, a, host, sizeof host);
        schema_copy_i64(c, w->st_id[i]);
        snprintf(buf, sizeof buf, "https://%s/users/%s/statuses/%lld%s", host, u,
                 (long long)w->st_id[i], reblog ? "/activity" : "");
        schema_copy_str(c, buf);
        if (reblog)
            text[0] = '\0';
        else
            status_text(w, i, men_first, mk, text, sizeof text);
        schema_copy_str(c, text);
        schema_copy_ts(c, w->st_ms[i]);
        schema_copy_ts(c, w->st_ms[i]);
        if (w->st_kind[i] == KIND_REPLY)
            schema_copy_i64(c, w->st_id[w->st_parent[i]]);
        else
            schema_copy_null(c);
        if (reblog)
            schema_copy_i64(c, w->st_id[w->st_parent[i]]);
        else
            schema_copy_null(c);
        if (local || reblog)
            schema_copy_null(c);
        else
            schema_copy_fmt(c, "https://%s/@%s/%lld", host, u, (long long)w->st_id[i]);
        bool sensitive = !reblog && h % 100 < 3;
        schema_copy_bool(c, sensitive);
        schema_copy_i64(c, w->st_vis[i]);
        schema_copy_str(c, sensitive ? "content warning" : "");
        schema_copy_bool(c, w->st_kind[i] == KIND_REPLY);
        if (LANGS[w->st_lang[i]])
            schema_copy_str(c, LANGS[w->st_lang[i]]);
        else
            schema_copy_null(c);
        if (w->st_conv[i])
            schema_copy_i64(c, w->st_conv[i]);
        else
            schema_copy_null(c);
        schema_copy_bool(c, local);
        schema_copy_i64(c, w->acc_id[a]);
        if (local && !reblog)
            schema_copy_i64(c, 1);
        else
            schema_copy_null(c);
        if (w->st_reply_account[i] >= 0)
            schema_copy_i64(c, w->acc_id[w->st_reply_account[i]]);
        else
            schema_copy_null(c);
        schema_copy_end_row(c);
    }
    if (!finish(lc))
        return false;

    /* status_stats: only where a counter is non-zero, as Mastodon creates them lazily */
    size_t nss = 0;
    for (size_t i = 0; i < w->ns; i++)
        nss += w->st_replies[i] || w->st_reblogs[i];
    if (!begin(lc, "status_stats",
               "id, status_id, replies_count, reblogs_count, favourites_count, created_at, "
               "updated_at",
               nss))
        return false;
    for (size_t i = 0, id = 0; i < w->ns; i++) {
        if (!w->st_replies[i] && !w->st_reblogs[i])
            continue;
        schema_copy_i64(c, (int64_t)++id);
        schema_copy_i64(c, w->st_id[i]);
        schema_copy_i64(c, w->st_replies[i]);
        schema_copy_i64(c, w->st_reblogs[i]);
        schema_copy_i64(c, 0);
        schema_copy_ts(c, w->st_ms[i]);
        schema_copy_ts(c, w->st_ms[i]);
        schema_copy_end_row(c);
    }
    if (!finish(lc))
        return false;

    if (!begin(lc, "mentions", "id, status_id, created_at, updated_at, account_id, silent",
               w->nmen))
        return false;
    for (size_t k = 0; k < w->nmen; k++) {
        uint32_t s = w->men[2 * k];
        schema_copy_i64(c, (int64_t)k + 1);
        schema_copy_i64(c, w->st_id[s]);
        schema_copy_ts(c, w->st_ms[s]);
        schema_copy_ts(c, w->st_ms[s]);
        schema_copy_i64(c, w->acc_id[w->men[2 * k + 1]]);
        schema_copy_bool(c, false);
        schema_copy_end_row(c);
    }
    if (!finish(lc))
        return false;

    /* follows */
    if (!begin(lc, "follows",
               "id, created_at, updated_at, account_id, target_account_id, show_reblogs, uri, "
               "notify, languages",
               w->nf))
        return false;
    for (size_t e = 0; e < w->nf; e++) {
        uint32_t a = w->f_src[e], b = w->f_dst[e];
        uint64_t h = schema_seed_row_hash(w, ST_ROWS + 7, e);
        int64_t lo = w->acc_ms[a] > w->acc_ms[b] ? w->acc_ms[a] : w->acc_ms[b];
        int64_t t = lo + (int64_t)(h % (uint64_t)(now - 60 * 1000 - lo));
        schema_copy_i64(c, (int64_t)e + 1);
        schema_copy_ts(c, t);
        schema_copy_ts(c, t);
        schema_copy_i64(c, w->acc_id[a]);
        schema_copy_i64(c, w->acc_id[b]);
        schema_copy_bool(c, (h >> 40) % 100 >= 5); /* 5% hide reblogs */
        if (schema_seed_is_local(w, a))
            schema_copy_fmt(c, "https://%s/follows/%zu", o->domain, e + 1);
        else {
            schema_seed_remote_host(w, a, host, sizeof host);
            schema_copy_fmt(c, "https://%s/follows/%zu", host, e + 1);
        }
        schema_copy_bool(c, (h >> 48) % 100 < 2);
        if ((h >> 56) % 100 < 5) /* 5% only want some languages from this account */
            schema_copy_str(c, "{en}");
        else
            schema_copy_null(c);
        schema_copy_end_row(c);
    }
    if (!finish(lc))
        return false;

    /* lists: replies_policy 0 list / 1 followed / 2 none = 60/30/10%, a fifth exclusive */
    static const char *const titles[] = {"Friends", "Tech", "News", "Family", "Art", "Local"};
    if (!begin(lc, "lists",
               "id, account_id, title, created_at, updated_at, replies_policy, exclusive", w->nl))
        return false;
    for (size_t l = 0; l < w->nl; l++) {
        uint64_t h = schema_seed_row_hash(w, ST_ROWS + 8, l);
        int64_t t =
            schema_seed_row_time(w, ST_ROWS + 9, l, w->acc_ms[w->l_owner[l]], now - 60 * 1000);
        int pol = (int)(h % 100);
        schema_copy_i64(c, (int64_t)l + 1);
        schema_copy_i64(c, w->acc_id[w->l_owner[l]]);
        schema_copy_fmt(c, "%s %zu", titles[(h >> 8) % 6], l + 1);
        schema_copy_ts(c, t);
        schema_copy_ts(c, t);
        schema_copy_i64(c, pol < 60 ? 0 : pol < 90 ? 1 : 2);
        schema_copy_bool(c, (h >> 16) % 100 < 20);
        schema_copy_end_row(c);
    }
    if (!finish(lc))
        return false;
    if (!begin(lc, "list_accounts", "id, list_id, account_id, follow_id", w->nla))
        return false;
    for (size_t k = 0; k < w->nla; k++) {
        schema_copy_i64(c, (int64_t)k + 1);
        schema_copy_i64(c, (int64_t)w->la_list[k] + 1);
        schema_copy_i64(c, w->acc_id[w->f_dst[w->la_edge[k]]]);
        schema_copy_i64(c, (int64_t)w->la_edge[k] + 1);
        schema_copy_end_row(c);
    }
    if (!finish(lc))
        return false;

    /* blocks and mutes */
    for (int pass = 0; pass < 2; pass++) {
        size_t cnt = pass == 0 ? w->nb : w->nm;
        const uint32_t *p = pass == 0 ? w->b_pair : w->m_pair;
        if (!begin(lc, pass == 0 ? "blocks" : "mutes",
                   pass == 0 ? "id, created_at, updated_at, account_id, target_account_id"
                             : "id, created_at, updated_at, account_id, target_account_id, "
                               "hide_notifications",
                   cnt))
            return false;
        for (size_t k = 0; k < cnt; k++) {
            uint32_t a = p[2 * k], b = p[2 * k + 1];
            int64_t lo = w->acc_ms[a] > w->acc_ms[b] ? w->acc_ms[a] : w->acc_ms[b];
            int64_t t =
                schema_seed_row_time(w, ST_ROWS + 10 + (uint64_t)pass, k, lo, now - 60 * 1000);
            schema_copy_i64(c, (int64_t)k + 1);
            schema_copy_ts(c, t);
            schema_copy_ts(c, t);
            schema_copy_i64(c, w->acc_id[a]);
            schema_copy_i64(c, w->acc_id[b]);
            if (pass == 1)
                schema_copy_bool(c, schema_seed_row_hash(w, ST_ROWS + 12, k) % 100 < 80);
            schema_copy_end_row(c);
        }
        if (!finish(lc))
            return false;
    }
    return true;
}

/* tables in dependency order; truncating them all at once needs no CASCADE */
