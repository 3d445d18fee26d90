/*
 * Follows and relationships: POST /api/v1/accounts/:id/follow and /unfollow, GET
 * /api/v1/accounts/relationships, with Mastodon's Relationship entity.
 *
 * A follow is one transaction on a bg thread: the follows row (an existing follow only has
 * its options changed, as FollowService does), both accounts' counters, and the outbox row
 * of a "follow" job (fanout merges the target's recent statuses into the home feed) through
 * fanout_outbox_relation; the answer is read inside the same transaction. Unfollow removes
 * the row (list memberships go with it, by the foreign key) and enqueues "unfollow".
 *
 * Not carried over: locked accounts get a follow at once, not a follow request (tusk has no
 * follow_requests table); "requested", "endorsed", "domain_blocking" are always false and
 * "note" empty.
 */
#include "api/internal.h"

#include "fanout/fanout.h"
#include "llhttp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RELATIONSHIPS 80
#define NOW_UTC "(now() AT TIME ZONE 'UTC')"

/* the Relationship columns for viewer $1 and account ids $2 (in the order given) */
#define RELATIONSHIP_SQL                                                                           \
    "SELECT a.id, f.id IS NOT NULL, coalesce(f.show_reblogs, false), coalesce(f.notify, false), "  \
    "f.languages, "                                                                                \
    "EXISTS (SELECT 1 FROM follows x WHERE x.account_id = a.id AND x.target_account_id = $1), "    \
    "EXISTS (SELECT 1 FROM blocks b WHERE b.account_id = $1 AND b.target_account_id = a.id), "     \
    "EXISTS (SELECT 1 FROM blocks b WHERE b.account_id = a.id AND b.target_account_id = $1), "     \
    "m.id IS NOT NULL, coalesce(m.hide_notifications, false) "                                     \
    "FROM unnest($2::bigint[]) WITH ORDINALITY AS q(id, ord) JOIN accounts a ON a.id = q.id "      \
    "LEFT JOIN follows f ON f.account_id = $1 AND f.target_account_id = a.id "                     \
    "LEFT JOIN mutes m ON m.account_id = $1 AND m.target_account_id = a.id ORDER BY q.ord"

static bool tval(const PGresult *r, int row, int col)
{
    return PQgetvalue(r, row, col)[0] == 't';
}

/* a text[] value ("{en,"pt-BR"}") as a JSON array */
static void pg_text_array(api_jw *w, const char *v)
{
    api_jw_arr(w);
    if (v && *v == '{') {
        const char *p = v + 1;
        while (*p && *p != '}') {
            char item[64];
            size_t n = 0;
            bool q = *p == '"';
            if (q)
                p++;
            while (*p && (q ? *p != '"' : (*p != ',' && *p != '}'))) {
                if (q && *p == '\\' && p[1])
                    p++;
                if (n + 1 < sizeof(item))
                    item[n++] = *p;
                p++;
            }
            if (q && *p == '"')
                p++;
            item[n] = '\0';
            if (!(n == 4 && !q && strcmp(item, "NULL") == 0))
                api_jw_str(w, item);
            if (*p == ',')
                p++;
        }
    }
    api_jw_arr_end(w);
}

/* one Relationship from row */
static void render_relationship(api_jw *w, const PGresult *r, int row)
{
    bool following = tval(r, row, 1);
    bool muting = tval(r, row, 8);
    api_jw_obj(w);
    api_jw_kstr(w, "id", PQgetvalue(r, row, 0));
    api_jw_kbool(w, "following", following);
    api_jw_kbool(w, "showing_reblogs", following && tval(r, row, 2));
    api_jw_kbool(w, "notifying", following && tval(r, row, 3));
    api_jw_key(w, "languages");
    if (following && !PQgetisnull(r, row, 4))
        pg_text_array(w, PQgetvalue(r, row, 4));
    else
        api_jw_null(w);
    api_jw_kbool(w, "followed_by", tval(r, row, 5));
    api_jw_kbool(w, "blocking", tval(r, row, 6));
    api_jw_kbool(w, "blocked_by", tval(r, row, 7));
    api_jw_kbool(w, "muting", muting);
    api_jw_kbool(w, "muting_notifications", muting && tval(r, row, 9));
    api_jw_kbool(w, "requested", false);
    api_jw_kbool(w, "requested_by", false);
    api_jw_kbool(w, "domain_blocking", false);
    api_jw_kbool(w, "endorsed", false);
    api_jw_kstr(w, "note", "");
    api_jw_obj_end(w);
}

/* "{1,2,3}" */
static void id_array(api_buf *b, const int64_t *ids, int n)
{
    api_buf_putc(b, '{');
    for (int i = 0; i < n; i++) {
        if (i)
            api_buf_putc(b, ',');
        api_buf_put_int(b, ids[i]);
    }
    api_buf_putc(b, '}');
}

/* ==========================================================================================
 * GET /api/v1/accounts/relationships
 */
static const api_stmt relationships_stmt = {"relationships", RELATIONSHIP_SQL, 2};

static void relationships_loaded(void *arg, const PGresult *res, const char *err)
{
    api_req *req = arg;
    if (!res) {
        api_req_error(req, 503, "Service unavailable");
        return;
    }
    api_jw w;
    api_req_json(req, &w);
    api_jw_arr(&w);
    for (int i = 0; i < PQntuples(res); i++)
        render_relationship(&w, res, i);
    api_jw_arr_end(&w);
    api_req_finish(req, 200);
}

static void relationships(api_req *req)
{
    int64_t raw[MAX_RELATIONSHIPS], ids[MAX_RELATIONSHIPS];
    int n = api_param_ids(req, "id", raw, MAX_RELATIONSHIPS), k = 0;
    for (int i = 0; i < n; i++) {
        bool dup = raw[i] <= 0;
        for (int j = 0; j < k && !dup; j++)
            dup = ids[j] == raw[i];
        if (!dup)
            ids[k++] = raw[i];
    }
    if (k == 0) {
        api_buf_puts(&req->resp, "[]");
        api_req_finish(req, 200);
        return;
    }
    char viewer[24];
    snprintf(viewer, sizeof(viewer), "%lld", (long long)req->auth.account_id);
    api_buf arr = {0};
    id_array(&arr, ids, k);
    const char *params[] = {viewer, api_buf_cstr(&arr)};
    bool ok =
        !arr.oom && api_req_query(req, &relationships_stmt, params, relationships_loaded, req);
    api_buf_free(&arr);
    if (!ok)
        api_req_error(req, 503, "Service unavailable");
}

/* ==========================================================================================
 * follow / unfollow
 */
typedef struct rel_job {
    api_req *req;
    bool follow;
    int64_t account_id, target_id;
    int reblogs, notify; /* -1 = not given */
    bool languages_given;
    char *languages; /* text[] literal or NULL */
    int status;
    char error[128];
    PGresult *rel; /* the relationship, read in the transaction */
} rel_job;

static void rel_free(rel_job *j)
{
    PQclear(j->rel);
    free(j->languages);
    free(j);
}

static PGresult *rexec(api_bg_ctx *ctx, const char *sql, int n, const char *const *params)
{
    char err[512], state[6];
    PGresult *r = api_bg_exec(ctx, sql, n, params, err, sizeof(err), state);
    if (!r)
        log_warning("follow: %s", err);
    return r;
}

static bool rcmd(api_bg_ctx *ctx, const char *sql, int n, const char *const *params)
{
    PGresult *r = rexec(ctx, sql, n, params);
    PQclear(r);
    return r != NULL;
}

/* following_count of account and followers_count of target move by delta */
static bool count_follow(api_bg_ctx *ctx, const char *account, const char *target, int delta)
{
    const char *p[] = {account, target, delta > 0 ? "1" : "-1"};
    return rcmd(ctx,
                "INSERT INTO account_stats (account_id, following_count, followers_count, "
                "created_at, updated_at) VALUES ($1, greatest($3::int, 0), 0, " NOW_UTC ", " NOW_UTC
                "), ($2, 0, greatest($3::int, 0), " NOW_UTC ", " NOW_UTC ") "
                "ON CONFLICT (account_id) DO UPDATE SET "
                "following_count = greatest(account_stats.following_count + CASE WHEN "
                "account_stats.account_id = $1 THEN $3::int ELSE 0 END, 0), "
                "followers_count = greatest(account_stats.followers_count + CASE WHEN "
                "account_stats.account_id = $2 THEN $3::int ELSE 0 END, 0), updated_at = " NOW_UTC,
                3, p);
}

static void rel_run(api_bg_ctx *ctx, void *arg)
{
    rel_job *j = arg;
    char acc[24], tgt[24], arr[64], err[256];
    snprintf(acc, sizeof(acc), "%lld", (long long)j->account_id);
    snprintf(tgt, sizeof(tgt), "%lld", (long long)j->target_id);
    snprintf(arr, sizeof(arr), "{%lld}", (long long)j->target_id);
    j->status = 503;
    snprintf(j->error, sizeof(j->error), "Service unavailable");
    if (!api_bg_pg(ctx, err, sizeof(err)) || !rcmd(ctx, "BEGIN", 0, NULL))
        return;
    const char *p2[] = {acc, tgt};
    PGresult *r = rexec(ctx,
                        "SELECT EXISTS (SELECT 1 FROM blocks b WHERE (b.account_id = $1 AND "
                        "b.target_account_id = a.id) OR (b.account_id = a.id AND "
                        "b.target_account_id = $1)) FROM accounts a WHERE a.id = $2 AND "
                        "a.suspended_at IS NULL",
                        2, p2);
    if (!r)
        goto rollback;
    /* FollowService: no such account, or oneself: not found; a block: not allowed */
    if (PQntuples(r) != 1 || (j->follow && j->account_id == j->target_id)) {
        PQclear(r);
        j->status = 404;
        snprintf(j->error, sizeof(j->error), "Record not found");
        goto rollback;
    }
    bool blocked = tval(r, 0, 0);
    PQclear(r);
    bool changed = false;
    if (j->follow) {
        if (blocked) {
            j->status = 403;
            snprintf(j->error, sizeof(j->error), "This action is not allowed");
            goto rollback;
        }
        const char *fp[] = {acc,
                            tgt,
                            j->reblogs < 0 ? NULL
                            : j->reblogs   ? "t"
                                           : "f",
                            j->notify < 0 ? NULL
                            : j->notify   ? "t"
                                          : "f",
                            j->languages,
                            j->languages_given ? "t" : "f"};
        r = rexec(ctx,
                  "INSERT INTO follows (created_at, updated_at, account_id, target_account_id, "
                  "show_reblogs, notify, languages) VALUES (" NOW_UTC ", " NOW_UTC ", $1, $2, "
                  "coalesce($3::bool, true), coalesce($4::bool, false), $5::varchar[]) "
                  "ON CONFLICT (account_id, target_account_id) DO UPDATE SET "
                  "show_reblogs = coalesce($3::bool, follows.show_reblogs), "
                  "notify = coalesce($4::bool, follows.notify), "
                  "languages = CASE WHEN $6::bool THEN $5::varchar[] ELSE follows.languages END, "
                  "updated_at = " NOW_UTC " RETURNING (xmax = 0)",
                  6, fp);
        if (!r)
            goto rollback;
        changed = PQntuples(r) == 1 && tval(r, 0, 0);
        PQclear(r);
    } else {
        r = rexec(ctx,
                  "DELETE FROM follows WHERE account_id = $1 AND target_account_id = $2 "
                  "RETURNING id",
                  2, p2);
        if (!r)
            goto rollback;
        changed = PQntuples(r) > 0;
        PQclear(r);
    }
    if (changed) {
        int kind = j->follow ? FANOUT_JOB_FOLLOW : FANOUT_JOB_UNFOLLOW;
        if (!count_follow(ctx, acc, tgt, j->follow ? 1 : -1))
            goto rollback;
        if (fanout_outbox_relation(ctx->pg, kind, j->account_id, j->target_id, err, sizeof(err)) !=
            0) {
            log_warning("follow: %s", err);
            goto rollback;
        }
    }
    const char *rp[] = {acc, arr};
    j->rel = rexec(ctx, RELATIONSHIP_SQL, 2, rp);
    if (!j->rel || PQntuples(j->rel) != 1 || !rcmd(ctx, "COMMIT", 0, NULL))
        goto rollback;
    api_bg_note_commit(ctx, j->account_id);
    j->status = 200;
    return;
rollback:
    if (ctx->pg)
        PQclear(PQexec(ctx->pg, "ROLLBACK"));
}

static void rel_done(void *arg)
{
    rel_job *j = arg;
    api_req *req = j->req;
    if (j->status != 200) {
        api_req_error(req, j->status, j->error);
        rel_free(j);
        return;
    }
    /* the home feed may gain (or lose) entries: an empty-feed memo is stale now */
    api_feedmemo_forget(req->w->srv->memo, CACHE_FEED_HOME, j->account_id);
    api_jw w;
    api_req_json(req, &w);
    render_relationship(&w, j->rel, 0);
    rel_free(j);
    api_req_finish(req, 200);
}

/* languages[]: codes of letters and '-', as a varchar[] literal */
static bool languages_param(api_req *req, rel_job *j)
{
    json_t *v = req->params ? json_object_get(req->params, "languages") : NULL;
    if (!v)
        return true;
    j->languages_given = true;
    if (!json_is_array(v) || json_array_size(v) == 0)
        return true; /* empty: every language */
    api_buf b = {0};
    api_buf_putc(&b, '{');
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        const char *s = json_string_value(e);
        if (!s || !*s || strlen(s) > 16 ||
            strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_") != strlen(s)) {
            api_buf_free(&b);
            return false;
        }
        if (i)
            api_buf_putc(&b, ',');
        api_buf_puts(&b, s);
    }
    api_buf_putc(&b, '}');
    j->languages = b.oom ? NULL : strdup(api_buf_cstr(&b));
    api_buf_free(&b);
    return j->languages != NULL;
}

static void relate(api_req *req, bool follow)
{
    int64_t id;
    if (!api_req_id_param(req, "id", &id))
        return;
    rel_job *j = calloc(1, sizeof(*j));
    if (!j) {
        api_req_error(req, 503, "Service unavailable");
        return;
    }
    j->req = req;
    j->follow = follow;
    j->account_id = req->auth.account_id;
    j->target_id = id;
    j->reblogs = api_req_param(req, "reblogs") ? api_param_bool(req, "reblogs", true) : -1;
    j->notify = api_req_param(req, "notify") ? api_param_bool(req, "notify", false) : -1;
    if (follow && !languages_param(req, j)) {
        rel_free(j);
        api_req_error(req, 422, "Validation failed: Languages are not valid language codes");
        return;
    }
    if (!api_bg_submit(req->w, rel_run, rel_done, j)) {
        rel_free(j);
        api_req_error(req, 503, "Service unavailable");
    }
}

/* POST /api/v1/accounts/:id/follow */
static void follow(api_req *req)
{
    relate(req, true);
}

/* POST /api/v1/accounts/:id/unfollow */
static void unfollow(api_req *req)
{
    relate(req, false);
}

bool api_relations_register(api_router *r)
{
    static const api_route routes[] = {
        {HTTP_GET, "/api/v1/accounts/relationships", relationships, "read:follows",
         ROUTE_AUTH_REQUIRED | ROUTE_USER, 0},
        {HTTP_POST, "/api/v1/accounts/:id/follow", follow, "write:follows",
         ROUTE_AUTH_REQUIRED | ROUTE_USER, 0},
        {HTTP_POST, "/api/v1/accounts/:id/unfollow", unfollow, "write:follows",
         ROUTE_AUTH_REQUIRED | ROUTE_USER, 0},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (!api_router_add(r, &routes[i]))
            return false;
    return true;
}
