/*
 * Statuses: POST /api/v1/statuses, GET and DELETE /api/v1/statuses/:id, and an account's
 * statuses (GET /api/v1/accounts/:id/statuses), with Mastodon's semantics.
 *
 * Posting and deleting are one transaction each on a bg thread (bg.c): the statuses row,
 * its mentions, conversation and counters, and the outbox row that makes fanout deliver it
 * (fanout_outbox_status_created / _deleted, on the same connection), so a post exists with
 * its fan-out or not at all. The Status entity is loaded inside the transaction and answered
 * at once; the commit LSN the proxy reports is kept as the account's token for its next reads.
 *
 * Idempotency-Key (Mastodon's PostStatusService): the key is claimed in Redis with SET NX
 * before the write ("idempotency:status:<account>:<key>" = "pending", 60 s) and set to the
 * new status id for an hour after it, so a retry gets the same status. A retry that arrives
 * while the first is still being written answers 409 (Mastodon would post twice). Without
 * Redis the post goes ahead unguarded.
 *
 * Reading checks Mastodon's StatusPolicy#show? in SQL (one query) and renders through the
 * status cache (hydrate.c).
 */
#include "api/internal.h"

#include "fanout/fanout.h"
#include "llhttp.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDEMPOTENCY_TTL 3600
#define IDEMPOTENCY_PENDING_TTL 60
#define URL_LENGTH 23 /* characters_reserved_per_url */
#define MAX_MENTIONS 50
#define NOW_UTC "(now() AT TIME ZONE 'UTC')"

/* ==========================================================================================
 * small helpers
 */

static void id_text(char out[24], int64_t id)
{
    snprintf(out, 24, "%lld", (long long)id);
}

/* StatusPolicy#show? from the facts of the access query */
static bool may_show(int64_t viewer, int64_t author, int vis, bool follows, bool mentioned,
                     bool blocked)
{
    bool owned = viewer && viewer == author;
    if (vis == CACHE_VIS_DIRECT || vis == CACHE_VIS_LIMITED)
        return owned || mentioned;
    if (vis == CACHE_VIS_PRIVATE)
        return owned || follows || mentioned;
    return !viewer || owned || !blocked;
}

/* the facts may_show needs, for status $1 and viewer $2 (0 = anonymous) */
#define ACCESS_COLUMNS                                                                             \
    "s.account_id, s.visibility, "                                                                 \
    "EXISTS (SELECT 1 FROM follows f WHERE f.account_id = $2 AND f.target_account_id = "           \
    "s.account_id), "                                                                              \
    "EXISTS (SELECT 1 FROM mentions m WHERE m.status_id = s.id AND m.account_id = $2), "           \
    "EXISTS (SELECT 1 FROM blocks b WHERE b.account_id = s.account_id AND b.target_account_id = "  \
    "$2)"

static bool row_may_show(const PGresult *r, int row, int col, int64_t viewer)
{
    int64_t author = strtoll(PQgetvalue(r, row, col), NULL, 10);
    int vis = atoi(PQgetvalue(r, row, col + 1));
    return may_show(viewer, author, vis, PQgetvalue(r, row, col + 2)[0] == 't',
                    PQgetvalue(r, row, col + 3)[0] == 't', PQgetvalue(r, row, col + 4)[0] == 't');
}

/* Mastodon's countable length: characters, a URL counting URL_LENGTH */
static size_t countable_length(const char *s)
{
    size_t n = 0;
    for (const char *p = s; *p;) {
        if ((strncmp(p, "http://", 7) == 0 || strncmp(p, "https://", 8) == 0) &&
            (p == s || p[-1] == ' ' || p[-1] == '\n' || p[-1] == '(')) {
            while (*p && *p != ' ' && *p != '\n' && *p != '\t')
                p++;
            n += URL_LENGTH;
            continue;
        }
        if (((unsigned char)*p & 0xC0) != 0x80)
            n++;
        p++;
    }
    return n;
}

static bool blank(const char *s)
{
    for (; s && *s; s++)
        if (!(*s == ' ' || (*s >= '\t' && *s <= '\r')))
            return false;
    return true;
}

static bool word_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c >= 0x80;
}

static bool user_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* local usernames @mentioned in text (Mastodon's MENTION_RE: "@user" or "@user@ourdomain",
 * not after a word character, '=' or '/'), as a PostgreSQL text[] literal of lowercased
 * names; false when there are none */
static bool mentioned_usernames(const char *text, const char *domain, api_buf *out)
{
    int n = 0;
    api_buf_putc(out, '{');
    for (const char *p = text; *p && n < MAX_MENTIONS; p++) {
        if (*p != '@')
            continue;
        if (p > text && (word_char((unsigned char)p[-1]) || p[-1] == '=' || p[-1] == '/'))
            continue;
        const char *u = p + 1;
        const char *e = u;
        /* [a-z0-9_]+ with '.' and '-' allowed inside, not at the end */
        while (user_char(*e) || ((*e == '.' || *e == '-') && user_char(e[1])))
            e++;
        if (e == u)
            continue;
        if (*e == '@') {
            const char *d = e + 1;
            size_t dl = 0;
            while (word_char((unsigned char)d[dl]) || d[dl] == '.' || d[dl] == '-')
                dl++;
            while (dl && (d[dl - 1] == '.' || d[dl - 1] == '-'))
                dl--;
            if (dl && !(strlen(domain) == dl && strncasecmp(d, domain, dl) == 0)) {
                p = d + dl - 1; /* a remote account: not delivered here */
                continue;
            }
        }
        if (n++)
            api_buf_putc(out, ',');
        api_buf_putc(out, '"');
        for (const char *c = u; c < e; c++)
            api_buf_putc(out, (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c));
        api_buf_putc(out, '"');
        p = e - 1;
    }
    api_buf_putc(out, '}');
    return n > 0;
}

/* a language code we store (ISO 639-1/3 lowercase, optional region); else none */
static bool language_ok(const char *l)
{
    size_t n = 0;
    while (l[n] >= 'a' && l[n] <= 'z')
        n++;
    if (n < 2 || n > 3)
        return false;
    if (!l[n])
        return true;
    if (l[n] != '-' && l[n] != '_')
        return false;
    size_t m = 0;
    for (const char *r = l + n + 1; *r; r++, m++)
        if (!((*r >= 'a' && *r <= 'z') || (*r >= 'A' && *r <= 'Z')))
            return false;
    return m >= 2 && m <= 4;
}

/* ==========================================================================================
 * POST /api/v1/statuses
 */
typedef struct post {
    api_req *req;
    int64_t account_id;
    char *text;
    char *spoiler;
    char language[16];
    int visibility;
    bool sensitive;
    int64_t reply_to;
    char *idem_key; /* Redis key, or NULL */
    size_t idem_len;
    bool claimed; /* we hold the pending claim */
    /* results (bg) */
    int status;
    char error[256];
    int64_t status_id;
    api_buf json;
} post;

static void post_free(post *p)
{
    free(p->text);
    free(p->spoiler);
    free(p->idem_key);
    api_buf_free(&p->json);
    free(p);
}

static void post_fail(post *p, int status, const char *msg)
{
    api_req_error(p->req, status, msg);
    post_free(p);
}

/* forget a claim whose write did not happen */
static void idem_release(post *p)
{
    if (!p->claimed)
        return;
    redisAsyncContext *ac = api_worker_shard(p->req->w, p->account_id);
    if (ac)
        redisAsyncCommand(ac, NULL, NULL, "DEL %b", p->idem_key, p->idem_len);
}

/* run a statement of the write; false after a failure was recorded */
static PGresult *wexec(api_bg_ctx *ctx, post *p, const char *sql, int n, const char *const *params)
{
    char state[6];
    PGresult *r = api_bg_exec(ctx, sql, n, params, p->error, sizeof(p->error), state);
    if (!r) {
        log_warning("post status: %s", p->error);
        p->status = 503;
        snprintf(p->error, sizeof(p->error), "Service unavailable");
    }
    return r;
}

static bool wcmd(api_bg_ctx *ctx, post *p, const char *sql, int n, const char *const *params)
{
    PGresult *r = wexec(ctx, p, sql, n, params);
    PQclear(r);
    return r != NULL;
}

static void post_run(api_bg_ctx *ctx, void *arg)
{
    post *p = arg;
    char acc[24], reply[24], conv[24] = "", sid[24];
    id_text(acc, p->account_id);
    p->status = 503;
    snprintf(p->error, sizeof(p->error), "Service unavailable");
    if (!api_bg_pg(ctx, p->error, sizeof(p->error))) {
        snprintf(p->error, sizeof(p->error), "Service unavailable");
        return;
    }
    if (!wcmd(ctx, p, "BEGIN", 0, NULL))
        return;
    int64_t reply_account = 0;
    bool parent_counts = false;
    if (p->reply_to) {
        id_text(reply, p->reply_to);
        const char *params[] = {reply, acc};
        PGresult *r = wexec(ctx, p,
                            "SELECT " ACCESS_COLUMNS ", s.conversation_id FROM statuses s "
                            "WHERE s.id = $1 AND s.deleted_at IS NULL",
                            2, params);
        if (!r)
            goto rollback;
        if (PQntuples(r) != 1 || !row_may_show(r, 0, 0, p->account_id)) {
            PQclear(r);
            p->status = 404;
            snprintf(p->error, sizeof(p->error),
                     "The post you are trying to reply to does not appear to exist.");
            goto rollback;
        }
        reply_account = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        if (!PQgetisnull(r, 0, 5))
            str_copy(conv, sizeof(conv), PQgetvalue(r, 0, 5));
        PQclear(r);
        /* Mastodon counts a reply on its parent when the reply is distributable */
        parent_counts = p->visibility <= CACHE_VIS_PRIVATE;
    }
    if (!conv[0]) {
        PGresult *r = wexec(ctx, p,
                            "INSERT INTO conversations (created_at, updated_at) VALUES (" NOW_UTC
                            ", " NOW_UTC ") RETURNING id",
                            0, NULL);
        if (!r)
            goto rollback;
        str_copy(conv, sizeof(conv), PQgetvalue(r, 0, 0));
        PQclear(r);
    }
    char vis[4], reply_acc[24];
    snprintf(vis, sizeof(vis), "%d", p->visibility);
    id_text(reply_acc, reply_account);
    const char *ins[] = {p->text,
                         p->spoiler,
                         p->sensitive ? "t" : "f",
                         vis,
                         p->language[0] ? p->language : NULL,
                         p->reply_to ? "t" : "f",
                         p->reply_to ? reply : NULL,
                         p->reply_to ? reply_acc : NULL,
                         conv,
                         acc};
    PGresult *r =
        wexec(ctx, p,
              "INSERT INTO statuses (text, spoiler_text, sensitive, visibility, language, "
              "reply, in_reply_to_id, in_reply_to_account_id, conversation_id, local, "
              "account_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, "
              "$8, $9, true, $10, " NOW_UTC ", " NOW_UTC ") RETURNING id",
              10, ins);
    if (!r)
        goto rollback;
    p->status_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    id_text(sid, p->status_id);
    api_buf names = {0};
    if (mentioned_usernames(p->text, ctx->cfg->domain, &names) && !names.oom) {
        const char *mp[] = {sid, api_buf_cstr(&names)};
        bool ok = wcmd(ctx, p,
                       "INSERT INTO mentions (status_id, account_id, silent, created_at, "
                       "updated_at) SELECT $1, a.id, false, " NOW_UTC ", " NOW_UTC
                       " FROM accounts a WHERE a.domain IS NULL AND lower(a.username) = "
                       "ANY($2::text[]) ON CONFLICT DO NOTHING",
                       2, mp);
        if (!ok) {
            api_buf_free(&names);
            goto rollback;
        }
    }
    api_buf_free(&names);
    const char *one[] = {sid};
    if (!wcmd(ctx, p,
              "INSERT INTO status_stats (status_id, created_at, updated_at) VALUES ($1, " NOW_UTC
              ", " NOW_UTC ")",
              1, one))
        goto rollback;
    if (parent_counts) {
        const char *pp[] = {reply};
        if (!wcmd(ctx, p,
                  "INSERT INTO status_stats (status_id, replies_count, created_at, updated_at) "
                  "VALUES ($1, 1, " NOW_UTC ", " NOW_UTC ") ON CONFLICT (status_id) DO UPDATE "
                  "SET replies_count = status_stats.replies_count + 1, updated_at = " NOW_UTC,
                  1, pp))
            goto rollback;
    }
    /* Mastodon does not count direct statuses on the account */
    if (p->visibility != CACHE_VIS_DIRECT) {
        const char *ap[] = {acc};
        if (!wcmd(ctx, p,
                  "INSERT INTO account_stats (account_id, statuses_count, created_at, "
                  "updated_at, last_status_at) VALUES ($1, 1, " NOW_UTC ", " NOW_UTC ", " NOW_UTC
                  ") ON CONFLICT (account_id) DO UPDATE SET statuses_count = "
                  "account_stats.statuses_count + 1, last_status_at = " NOW_UTC
                  ", updated_at = " NOW_UTC,
                  1, ap))
            goto rollback;
    }
    char err[256];
    if (fanout_outbox_status_created(ctx->pg, p->status_id, err, sizeof(err)) != 0) {
        log_warning("post status: %s", err);
        goto rollback;
    }
    cache_status *st = NULL;
    if (cache_status_load_pg(ctx->pg, &p->status_id, 1, &st, err, sizeof(err)) != 0 || !st) {
        log_warning("post status: reading it back: %s", st ? err : "not found");
        goto rollback;
    }
    bool rendered = api_render_status(&p->json, st, ctx->cfg, true, false);
    cache_status_free(st);
    if (!rendered || !wcmd(ctx, p, "COMMIT", 0, NULL))
        goto rollback;
    api_bg_note_commit(ctx, p->account_id);
    p->status = 200;
    return;
rollback:
    if (ctx->pg)
        PQclear(PQexec(ctx->pg, "ROLLBACK"));
}

static void post_done(void *arg)
{
    post *p = arg;
    if (p->status != 200) {
        idem_release(p);
        post_fail(p, p->status, p->error);
        return;
    }
    api_req *req = p->req;
    if (p->idem_key) {
        redisAsyncContext *ac = api_worker_shard(req->w, p->account_id);
        if (ac)
            redisAsyncCommand(ac, NULL, NULL, "SET %b %lld EX %d", p->idem_key, p->idem_len,
                              (long long)p->status_id, IDEMPOTENCY_TTL);
    }
    /* a new reply may make an absent feed non-empty: forget "known empty" */
    api_feedmemo_forget(req->w->srv->memo, CACHE_FEED_HOME, p->account_id);
    api_buf_append(&req->resp, p->json.data, p->json.len);
    post_free(p);
    api_req_finish(req, 200);
}

static void post_write(post *p)
{
    if (!api_bg_submit(p->req->w, post_run, post_done, p)) {
        idem_release(p);
        post_fail(p, 503, "Service unavailable");
    }
}

/* the status an earlier request with the same key created */
static void duplicate_ready(api_req *req, void *arg, api_hydrated *h)
{
    post *p = arg;
    if (h->failed) {
        post_fail(p, 503, "Service unavailable");
        return;
    }
    if (h->n == 0) {
        post_write(p); /* deleted since: Mastodon posts anew */
        return;
    }
    api_buf_append(&req->resp, h->items[0].json, h->items[0].len);
    post_free(p);
    api_req_finish(req, 200);
}

static void idem_get_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    post *p = privdata;
    redisReply *r = reply;
    int64_t id;
    if (r && r->type == REDIS_REPLY_STRING && api_parse_id(r->str, r->len, &id)) {
        api_hydrate(p->req, &id, 1, API_HYD_VIEWER, duplicate_ready, p);
        return;
    }
    if (r && r->type == REDIS_REPLY_STRING) {
        api_req_add_header(p->req, "Retry-After: 1");
        post_fail(p, 409, "A request with this Idempotency-Key is being processed");
        return;
    }
    if (!r) {
        post_fail(p, 503, "Service unavailable");
        return;
    }
    post_write(p); /* the claim expired in between: write unguarded */
}

static void idem_claim_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    post *p = privdata;
    redisReply *r = reply;
    if (!r) {
        post_fail(p, 503, "Service unavailable");
        return;
    }
    if (r->type == REDIS_REPLY_STATUS) {
        p->claimed = true;
        post_write(p);
        return;
    }
    /* taken: by a finished request (its status id) or one in flight */
    redisAsyncContext *c = api_worker_shard(p->req->w, p->account_id);
    if (!c || redisAsyncCommand(c, idem_get_cb, p, "GET %b", p->idem_key, p->idem_len) != REDIS_OK)
        post_fail(p, 503, "Service unavailable");
}

/* POST /api/v1/statuses */
static void create_status(api_req *req)
{
    const api_config *cfg = req->w->srv->cfg;
    const char *text = api_req_param(req, "status");
    const char *spoiler = api_req_param(req, "spoiler_text");
    const char *visibility = api_req_param(req, "visibility");
    const char *language = api_req_param(req, "language");
    const char *reply = api_req_param(req, "in_reply_to_id");
    if (!text)
        text = "";
    if (!spoiler)
        spoiler = "";
    post *p = calloc(1, sizeof(*p));
    if (!p) {
        api_req_error(req, 503, "Service unavailable");
        return;
    }
    p->req = req;
    p->account_id = req->auth.account_id;
    if (reply && !blank(reply)) {
        if (!api_parse_id(reply, strlen(reply), &p->reply_to)) {
            post_fail(p, 404, "The post you are trying to reply to does not appear to exist.");
            return;
        }
    }
    if (blank(text)) {
        post_fail(p, 422, "Validation failed: Text can't be blank");
        return;
    }
    if (countable_length(text) + countable_length(spoiler) > (size_t)cfg->max_status_chars) {
        char msg[128];
        snprintf(msg, sizeof(msg), "Validation failed: Text character limit of %d exceeded",
                 cfg->max_status_chars);
        post_fail(p, 422, msg);
        return;
    }
    p->visibility = CACHE_VIS_PUBLIC;
    if (visibility && *visibility) {
        static const char *const names[] = {"public", "unlisted", "private", "direct"};
        p->visibility = -1;
        for (int i = 0; i < 4; i++)
            if (strcmp(visibility, names[i]) == 0)
                p->visibility = i;
        if (p->visibility < 0) {
            post_fail(p, 422, "Validation failed: Visibility is not included in the list");
            return;
        }
    }
    /* Mastodon: a content warning makes the status sensitive */
    p->sensitive = api_param_bool(req, "sensitive", false) || !blank(spoiler);
    if (language && language_ok(language))
        str_copy(p->language, sizeof(p->language), language);
    p->text = strdup(text);
    p->spoiler = strdup(spoiler);
    if (!p->text || !p->spoiler) {
        post_fail(p, 503, "Service unavailable");
        return;
    }
    size_t kl = 0;
    const char *key = api_req_header(req, "idempotency-key", &kl);
    if (key && kl > 0) {
        char prefix[64];
        int pl =
            snprintf(prefix, sizeof(prefix), "idempotency:status:%lld:", (long long)p->account_id);
        p->idem_key = malloc((size_t)pl + kl + 1);
        if (!p->idem_key) {
            post_fail(p, 503, "Service unavailable");
            return;
        }
        memcpy(p->idem_key, prefix, (size_t)pl);
        memcpy(p->idem_key + pl, key, kl);
        p->idem_len = (size_t)pl + kl;
        p->idem_key[p->idem_len] = '\0';
        redisAsyncContext *ac = api_worker_shard(req->w, p->account_id);
        if (ac && redisAsyncCommand(ac, idem_claim_cb, p, "SET %b pending NX EX %d", p->idem_key,
                                    p->idem_len, IDEMPOTENCY_PENDING_TTL) == REDIS_OK)
            return;
        log_warning("Idempotency-Key ignored: Redis unavailable");
    }
    post_write(p);
}

/* ==========================================================================================
 * GET /api/v1/statuses/:id
 */
static const api_stmt access_stmt = {
    "status_access",
    "SELECT " ACCESS_COLUMNS " FROM statuses s WHERE s.id = $1 AND s.deleted_at IS NULL", 2};

typedef struct show {
    api_req *req;
    int64_t id;
} show;

static void show_ready(api_req *req, void *arg, api_hydrated *h)
{
    free(arg);
    if (h->failed) {
        api_req_error(req, 503, "Service unavailable");
        return;
    }
    if (h->n == 0) {
        api_req_error(req, 404, "Record not found");
        return;
    }
    api_buf_append(&req->resp, h->items[0].json, h->items[0].len);
    api_req_finish(req, 200);
}

static void show_access(void *arg, const PGresult *res, const char *err)
{
    show *s = arg;
    api_req *req = s->req;
    if (!res) {
        free(s);
        api_req_error(req, 503, "Service unavailable");
        return;
    }
    if (PQntuples(res) != 1 || !row_may_show(res, 0, 0, req->auth.account_id)) {
        free(s);
        api_req_error(req, 404, "Record not found");
        return;
    }
    int64_t id = s->id;
    api_hydrate(req, &id, 1, req->authed && req->auth.account_id ? API_HYD_VIEWER : 0, show_ready,
                s);
}

static void show_status(api_req *req)
{
    int64_t id;
    if (!api_req_id_param(req, "id", &id))
        return;
    show *s = malloc(sizeof(*s));
    if (!s) {
        api_req_error(req, 503, "Service unavailable");
        return;
    }
    s->req = req;
    s->id = id;
    char ids[24], viewer[24];
    id_text(ids, id);
    id_text(viewer, req->auth.account_id);
    const char *params[] = {ids, viewer};
    if (!api_req_query(req, &access_stmt, params, show_access, s)) {
        free(s);
        api_req_error(req, 503, "Service unavailable");
    }
}

/* ==========================================================================================
 * DELETE /api/v1/statuses/:id
 */
typedef struct del {
    api_req *req;
    int64_t id;
    int64_t account_id;
    int status;
    char error[256];
    api_buf json;
} del;

static void del_free(del *d)
{
    api_buf_free(&d->json);
    free(d);
}

static PGresult *dexec(api_bg_ctx *ctx, del *d, const char *sql, int n, const char *const *params)
{
    char err[512], state[6];
    PGresult *r = api_bg_exec(ctx, sql, n, params, err, sizeof(err), state);
    if (!r)
        log_warning("delete status: %s", err);
    return r;
}

static bool dcmd(api_bg_ctx *ctx, del *d, const char *sql, int n, const char *const *params)
{
    PGresult *r = dexec(ctx, d, sql, n, params);
    PQclear(r);
    return r != NULL;
}

/* statuses_count - 1 of an account (not for direct statuses, as they were never counted) */
static bool uncount(api_bg_ctx *ctx, del *d, const char *account)
{
    const char *p[] = {account};
    return dcmd(ctx, d,
                "UPDATE account_stats SET statuses_count = greatest(statuses_count - 1, 0), "
                "updated_at = " NOW_UTC " WHERE account_id = $1",
                1, p);
}

static void del_run(api_bg_ctx *ctx, void *arg)
{
    del *d = arg;
    char sid[24], acc[24], err[256];
    id_text(sid, d->id);
    id_text(acc, d->account_id);
    d->status = 503;
    snprintf(d->error, sizeof(d->error), "Service unavailable");
    if (!api_bg_pg(ctx, err, sizeof(err)) || !dcmd(ctx, d, "BEGIN", 0, NULL))
        return;
    const char *p2[] = {sid, acc};
    PGresult *r = dexec(ctx, d,
                        "SELECT visibility, coalesce(reblog_of_id, 0), coalesce(in_reply_to_id, 0) "
                        "FROM statuses WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL "
                        "FOR UPDATE",
                        2, p2);
    if (!r)
        goto rollback;
    if (PQntuples(r) != 1) {
        PQclear(r);
        d->status = 404;
        snprintf(d->error, sizeof(d->error), "Record not found");
        goto rollback;
    }
    int vis = atoi(PQgetvalue(r, 0, 0));
    int64_t reblog_of = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    int64_t parent = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
    PQclear(r);
    /* the answer: the status as it was, with its source text */
    cache_status *st = NULL, *orig = NULL;
    if (cache_status_load_pg(ctx->pg, &d->id, 1, &st, err, sizeof(err)) != 0 || !st) {
        log_warning("delete status: %s", st ? err : "row vanished");
        goto rollback;
    }
    if (reblog_of && cache_status_load_pg(ctx->pg, &reblog_of, 1, &orig, err, sizeof(err)) == 0)
        st->reblog = orig;
    bool rendered = api_render_status(&d->json, st, ctx->cfg, true, true);
    cache_status_free(st);
    if (!rendered)
        goto rollback;
    /* discard_with_reblogs: the status and every reblog of it */
    if (!dcmd(ctx, d,
              "UPDATE statuses SET deleted_at = " NOW_UTC ", updated_at = " NOW_UTC
              " WHERE id = $1",
              1, p2))
        goto rollback;
    r = dexec(ctx, d,
              "UPDATE statuses SET deleted_at = " NOW_UTC ", updated_at = " NOW_UTC
              " WHERE reblog_of_id = $1 AND deleted_at IS NULL RETURNING id, account_id, "
              "visibility",
              1, p2);
    if (!r)
        goto rollback;
    int nreb = PQntuples(r);
    int64_t *gone = malloc(((size_t)nreb + 1) * sizeof(*gone));
    if (!gone) {
        PQclear(r);
        goto rollback;
    }
    gone[0] = d->id;
    bool ok = true;
    for (int i = 0; ok && i < nreb; i++) {
        int64_t rid = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        int64_t racc = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        int rvis = atoi(PQgetvalue(r, i, 2));
        gone[i + 1] = rid;
        /* fanout does not follow reblogs: one delete job per reblog, as RemoveStatusService */
        ok = fanout_outbox_status_deleted(ctx->pg, rid, racc, d->id, rvis, err, sizeof(err)) == 0;
        if (ok && rvis != CACHE_VIS_DIRECT)
            ok = uncount(ctx, d, PQgetvalue(r, i, 1));
    }
    PQclear(r);
    ok = ok && fanout_outbox_status_deleted(ctx->pg, d->id, d->account_id, reblog_of, vis, err,
                                            sizeof(err)) == 0;
    if (ok && vis != CACHE_VIS_DIRECT)
        ok = uncount(ctx, d, acc);
    if (ok && parent && vis <= CACHE_VIS_PRIVATE) {
        char ps[24];
        id_text(ps, parent);
        const char *pp[] = {ps};
        ok = dcmd(ctx, d,
                  "UPDATE status_stats SET replies_count = greatest(replies_count - 1, 0) WHERE "
                  "status_id = $1",
                  1, pp);
    }
    if (ok && reblog_of) {
        char os[24];
        id_text(os, reblog_of);
        const char *op[] = {os};
        ok = dcmd(ctx, d,
                  "UPDATE status_stats SET reblogs_count = greatest(reblogs_count - 1, 0) WHERE "
                  "status_id = $1",
                  1, op);
    }
    if (!ok || !dcmd(ctx, d, "COMMIT", 0, NULL)) {
        if (!ok)
            log_warning("delete status: %s", err);
        free(gone);
        goto rollback;
    }
    api_bg_note_commit(ctx, d->account_id);
    /* renderings memoized by the workers of this process are checked again from now on */
    atomic_fetch_add(&ctx->srv->status_gen, 1);
    /* readers through the cache must not see it any more (fanout drops it again later) */
    cache_status_invalidate(ctx->cache, gone, (size_t)nreb + 1);
    free(gone);
    d->status = 200;
    return;
rollback:
    if (ctx->pg)
        PQclear(PQexec(ctx->pg, "ROLLBACK"));
}

static void del_done(void *arg)
{
    del *d = arg;
    api_req *req = d->req;
    if (d->status != 200) {
        api_req_error(req, d->status, d->error);
        del_free(d);
        return;
    }
    api_buf_append(&req->resp, d->json.data, d->json.len);
    del_free(d);
    api_req_finish(req, 200);
}

static void delete_status(api_req *req)
{
    int64_t id;
    if (!api_req_id_param(req, "id", &id))
        return;
    del *d = calloc(1, sizeof(*d));
    if (!d) {
        api_req_error(req, 503, "Service unavailable");
        return;
    }
    d->req = req;
    d->id = id;
    d->account_id = req->auth.account_id;
    if (!api_bg_submit(req->w, del_run, del_done, d)) {
        del_free(d);
        api_req_error(req, 503, "Service unavailable");
    }
}

/* ==========================================================================================
 * GET /api/v1/accounts/:id/statuses
 */
static const api_stmt account_rel_stmt = {
    "account_statuses_rel",
    "SELECT a.id, EXISTS (SELECT 1 FROM blocks b WHERE b.account_id = a.id AND "
    "b.target_account_id = $2), EXISTS (SELECT 1 FROM follows f WHERE f.account_id = $2 AND "
    "f.target_account_id = a.id) FROM accounts a WHERE a.id = $1",
    2};

#define ACCOUNT_STATUSES_WHERE                                                                     \
    " FROM statuses s WHERE s.account_id = $1 AND s.deleted_at IS NULL"                            \
    " AND ($2::bigint IS NULL OR s.id < $2) AND ($3::bigint IS NULL OR s.id > $3)"                 \
    " AND (s.visibility = ANY($5::int[]) OR ($6::bigint > 0 AND EXISTS (SELECT 1 FROM mentions m"  \
    " WHERE m.status_id = s.id AND m.account_id = $6)))"                                           \
    " AND (NOT $7::bool OR NOT s.reply OR s.in_reply_to_account_id = s.account_id)"                \
    " AND (NOT $8::bool OR s.reblog_of_id IS NULL)"

static const api_stmt account_statuses_stmt = {
    "account_statuses", "SELECT s.id" ACCOUNT_STATUSES_WHERE " ORDER BY s.id DESC LIMIT $4", 8};
static const api_stmt account_statuses_min_stmt = {
    "account_statuses_min", "SELECT s.id" ACCOUNT_STATUSES_WHERE " ORDER BY s.id ASC LIMIT $4", 8};

static const char *const account_statuses_keep[] = {
    "limit", "pinned", "tagged", "only_media", "exclude_replies", "exclude_reblogs", NULL};

typedef struct acct_st {
    api_req *req;
    int64_t account_id;
    api_page page;
    char path[64];
} acct_st;

static void acct_st_fail(acct_st *a, int status, const char *msg)
{
    api_req_error(a->req, status, msg);
    free(a);
}

static void acct_st_ready(api_req *req, void *arg, api_hydrated *h)
{
    acct_st *a = arg;
    if (h->failed) {
        acct_st_fail(a, 503, "Service unavailable");
        return;
    }
    if (h->n)
        api_link_header(req, a->path, account_statuses_keep, h->n == (size_t)a->page.limit,
                        h->items[h->n - 1].id, true, "min_id", h->items[0].id);
    free(a);
    api_req_finish_hydrated(req, 200, h);
}

static void acct_st_ids(void *arg, const PGresult *res, const char *err)
{
    acct_st *a = arg;
    if (!res) {
        acct_st_fail(a, 503, "Service unavailable");
        return;
    }
    int n = PQntuples(res);
    int64_t ids[40];
    if (n > 40)
        n = 40;
    for (int i = 0; i < n; i++) {
        /* min_id pages come oldest first from SQL; answers are newest first */
        int at = a->page.has_min ? n - 1 - i : i;
        ids[at] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
    }
    api_hydrate(a->req, ids, (size_t)n,
                a->req->authed && a->req->auth.account_id ? API_HYD_VIEWER : 0, acct_st_ready, a);
}

static void acct_st_rel(void *arg, const PGresult *res, const char *err)
{
    acct_st *a = arg;
    api_req *req = a->req;
    if (!res) {
        acct_st_fail(a, 503, "Service unavailable");
        return;
    }
    if (PQntuples(res) != 1) {
        acct_st_fail(a, 404, "Record not found");
        return;
    }
    int64_t viewer = req->auth.account_id;
    bool blocked = PQgetvalue(res, 0, 1)[0] == 't';
    bool following = PQgetvalue(res, 0, 2)[0] == 't';
    /* no pins and no media in tusk: those filters select nothing */
    if ((viewer && viewer != a->account_id && blocked) || api_param_bool(req, "pinned", false) ||
        api_param_bool(req, "only_media", false) || a->page.limit == 0) {
        api_buf_puts(&req->resp, "[]");
        free(a);
        api_req_finish(req, 200);
        return;
    }
    const char *vis = "{0,1}";
    if (viewer && viewer == a->account_id)
        vis = "{0,1,2,3,4}";
    else if (following)
        vis = "{0,1,2}";
    char acc[24], max[24], lower[24], lim[24], v[24];
    id_text(acc, a->account_id);
    id_text(max, a->page.max_id);
    id_text(lower, a->page.has_min ? a->page.min_id : a->page.since_id);
    snprintf(lim, sizeof(lim), "%ld", a->page.limit);
    id_text(v, viewer);
    const char *params[] = {acc,
                            a->page.has_max ? max : NULL,
                            (a->page.has_min || a->page.has_since) ? lower : NULL,
                            lim,
                            vis,
                            v,
                            api_param_bool(req, "exclude_replies", false) ? "t" : "f",
                            api_param_bool(req, "exclude_reblogs", false) ? "t" : "f"};
    const api_stmt *st = a->page.has_min ? &account_statuses_min_stmt : &account_statuses_stmt;
    if (!api_req_query(req, st, params, acct_st_ids, a))
        acct_st_fail(a, 503, "Service unavailable");
}

static void account_statuses(api_req *req)
{
    int64_t id;
    if (!api_req_id_param(req, "id", &id))
        return;
    acct_st *a = calloc(1, sizeof(*a));
    if (!a) {
        api_req_error(req, 503, "Service unavailable");
        return;
    }
    a->req = req;
    a->account_id = id;
    api_page_parse(req, 20, 40, &a->page);
    snprintf(a->path, sizeof(a->path), "/api/v1/accounts/%lld/statuses", (long long)id);
    char ids[24], viewer[24];
    id_text(ids, id);
    id_text(viewer, req->auth.account_id);
    const char *params[] = {ids, viewer};
    if (!api_req_query(req, &account_rel_stmt, params, acct_st_rel, a))
        acct_st_fail(a, 503, "Service unavailable");
}

bool api_statuses_register(api_router *r)
{
    static const api_route routes[] = {
        {HTTP_POST, "/api/v1/statuses", create_status, "write:statuses",
         ROUTE_AUTH_REQUIRED | ROUTE_USER, 0},
        {HTTP_GET, "/api/v1/statuses/:id", show_status, "read:statuses", ROUTE_AUTH_OPTIONAL, 0},
        {HTTP_DELETE, "/api/v1/statuses/:id", delete_status, "write:statuses",
         ROUTE_AUTH_REQUIRED | ROUTE_USER, 0},
        {HTTP_GET, "/api/v1/accounts/:id/statuses", account_statuses, "read:statuses",
         ROUTE_AUTH_OPTIONAL, 0},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (!api_router_add(r, &routes[i]))
            return false;
    return true;
}
