/*
 * Follows, follow requests and relationships: POST /api/v1/accounts/:id/follow and
 * /unfollow, GET /api/v1/accounts/relationships, GET /api/v1/follow_requests and POST
 * /api/v1/follow_requests/:account_id/authorize and /reject, with Mastodon's Relationship
 * entity.
 *
 * A follow is one transaction on a bg thread: the follows row (an existing follow only has
 * its options changed, as FollowService does), both accounts' counters, and the outbox row
 * of a "follow" job (fanout merges the target's recent statuses into the home feed) through
 * fanout_outbox_relation; the answer is read inside the same transaction. Unfollow removes
 * the row (list memberships go with it, by the foreign key) and enqueues "unfollow".
 *
 * Locked targets (and silenced followers), as FollowService: the follow becomes a
 * follow_requests row with the options asked for ("requested": true), no counters and no
 * fan-out. Following again changes the request's options; unfollowing cancels it. The target
 * authorizes it through follow_insert, the very path of a direct follow (counters, outbox
 * row, so fan-out merges the statuses), with the request's options, and list memberships
 * held by the request move to the follow (Mastodon's FollowRequest#authorize!); or rejects
 * it (the row goes). Remote targets are followed at once: tusk does not federate, so no
 * Accept would ever come.
 *
 * Not carried over: "endorsed", "domain_blocking" are always false and "note" empty.
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
    "m.id IS NOT NULL, coalesce(m.hide_notifications, false), "                                    \
    "r.id IS NOT NULL, coalesce(r.show_reblogs, false), coalesce(r.notify, false), r.languages, "  \
    "EXISTS (SELECT 1 FROM follow_requests y WHERE y.account_id = a.id AND "                       \
    "y.target_account_id = $1) "                                                                   \
    "FROM unnest($2::bigint[]) WITH ORDINALITY AS q(id, ord) JOIN accounts a ON a.id = q.id "      \
    "LEFT JOIN follows f ON f.account_id = $1 AND f.target_account_id = a.id "                     \
    "LEFT JOIN follow_requests r ON r.account_id = $1 AND r.target_account_id = a.id "             \
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

/* one Relationship from row; the options shown are the follow's, or the pending request's
 * (Mastodon's RelationshipSerializer reads both) */
static void render_relationship(api_jw *w, const PGresult *r, int row)
{
    bool following = tval(r, row, 1);
    bool muting = tval(r, row, 8);
    bool requested = tval(r, row, 10);
    api_jw_obj(w);
    api_jw_kstr(w, "id", PQgetvalue(r, row, 0));
    api_jw_kbool(w, "following", following);
    api_jw_kbool(w, "showing_reblogs", following ? tval(r, row, 2) : requested && tval(r, row, 11));
    api_jw_kbool(w, "notifying", following ? tval(r, row, 3) : requested && tval(r, row, 12));
    api_jw_key(w, "languages");
    int lcol = following ? 4 : requested ? 13 : -1;
    if (lcol >= 0 && !PQgetisnull(r, row, lcol))
        pg_text_array(w, PQgetvalue(r, row, lcol));
    else
        api_jw_null(w);
    api_jw_kbool(w, "followed_by", tval(r, row, 5));
    api_jw_kbool(w, "blocking", tval(r, row, 6));
    api_jw_kbool(w, "blocked_by", tval(r, row, 7));
    api_jw_kbool(w, "muting", muting);
    api_jw_kbool(w, "muting_notifications", muting && tval(r, row, 9));
    api_jw_kbool(w, "requested", requested);
    api_jw_kbool(w, "requested_by", tval(r, row, 14));
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
 * follow / unfollow / authorize / reject: one transaction each on a bg thread
 */
enum { OP_FOLLOW, OP_UNFOLLOW, OP_AUTHORIZE, OP_REJECT };

typedef struct rel_job {
    api_req *req;
    int op;
    int64_t account_id;  /* the requester: the acting account, or (authorize, reject) :id */
    int64_t target_id;   /* the followed account */
    int64_t viewer_id;   /* whose Relationship is answered (the acting account) */
    int64_t subject_id;  /* about whom */
    int reblogs, notify; /* -1 = not given */
    bool languages_given;
    char *languages; /* varchar[] literal or NULL */
    int status;
    char error[128];
    bool feed_changed; /* the requester's home feed gains or loses statuses */
    PGresult *rel;     /* the relationship, read in the transaction */
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

static const char *opt_bool(int v)
{
    return v < 0 ? NULL : v ? "t" : "f";
}

/* The follow account -> target with these options (NULL: keep, or the default for a new
 * one), and when it is new its counters and its outbox row: the one path of a direct follow
 * and of an authorized request. *follow_id gets the follows row's id. */
static bool follow_insert(api_bg_ctx *ctx, rel_job *j, const char *acc, const char *tgt,
                          const char *reblogs, const char *notify, const char *languages,
                          bool languages_given, char follow_id[24])
{
    const char *fp[] = {acc, tgt, reblogs, notify, languages, languages_given ? "t" : "f"};
    PGresult *r =
        rexec(ctx,
              "INSERT INTO follows (created_at, updated_at, account_id, target_account_id, "
              "show_reblogs, notify, languages) VALUES (" NOW_UTC ", " NOW_UTC ", $1, $2, "
              "coalesce($3::bool, true), coalesce($4::bool, false), $5::varchar[]) "
              "ON CONFLICT (account_id, target_account_id) DO UPDATE SET "
              "show_reblogs = coalesce($3::bool, follows.show_reblogs), "
              "notify = coalesce($4::bool, follows.notify), "
              "languages = CASE WHEN $6::bool THEN $5::varchar[] ELSE follows.languages END, "
              "updated_at = " NOW_UTC " RETURNING (xmax = 0), id",
              6, fp);
    if (!r)
        return false;
    bool created = PQntuples(r) == 1 && tval(r, 0, 0);
    snprintf(follow_id, 24, "%s", PQntuples(r) == 1 ? PQgetvalue(r, 0, 1) : "0");
    PQclear(r);
    if (!created)
        return true;
    char err[256];
    if (!count_follow(ctx, acc, tgt, 1))
        return false;
    if (fanout_outbox_relation(ctx->pg, FANOUT_JOB_FOLLOW, j->account_id, j->target_id, err,
                               sizeof(err)) != 0) {
        log_warning("follow: %s", err);
        return false;
    }
    j->feed_changed = true;
    return true;
}

/* FollowService: follow, change the options of a follow or a pending request, or (locked
 * target, silenced follower) request */
static bool do_follow(api_bg_ctx *ctx, rel_job *j, const char *acc, const char *tgt, bool request)
{
    const char *p2[] = {acc, tgt};
    PGresult *r = rexec(ctx,
                        "SELECT EXISTS (SELECT 1 FROM follows WHERE account_id = $1 AND "
                        "target_account_id = $2), EXISTS (SELECT 1 FROM follow_requests WHERE "
                        "account_id = $1 AND target_account_id = $2)",
                        2, p2);
    if (!r)
        return false;
    bool following = tval(r, 0, 0), requested = tval(r, 0, 1);
    PQclear(r);
    char follow_id[24];
    if (following || !(requested || request))
        return follow_insert(ctx, j, acc, tgt, opt_bool(j->reblogs), opt_bool(j->notify),
                             j->languages, j->languages_given, follow_id);
    const char *fp[] = {acc,
                        tgt,
                        opt_bool(j->reblogs),
                        opt_bool(j->notify),
                        j->languages,
                        j->languages_given ? "t" : "f"};
    return rcmd(ctx,
                "INSERT INTO follow_requests (created_at, updated_at, account_id, "
                "target_account_id, show_reblogs, notify, languages) VALUES (" NOW_UTC ", " NOW_UTC
                ", $1, $2, coalesce($3::bool, true), coalesce($4::bool, false), "
                "$5::varchar[]) ON CONFLICT (account_id, target_account_id) DO UPDATE SET "
                "show_reblogs = coalesce($3::bool, follow_requests.show_reblogs), "
                "notify = coalesce($4::bool, follow_requests.notify), "
                "languages = CASE WHEN $6::bool THEN $5::varchar[] ELSE "
                "follow_requests.languages END, updated_at = " NOW_UTC,
                6, fp);
}

/* UnfollowService: the follow goes (counters, outbox row), or else the pending request */
static bool do_unfollow(api_bg_ctx *ctx, rel_job *j, const char *acc, const char *tgt)
{
    const char *p2[] = {acc, tgt};
    PGresult *r = rexec(ctx,
                        "DELETE FROM follows WHERE account_id = $1 AND target_account_id = $2 "
                        "RETURNING id",
                        2, p2);
    if (!r)
        return false;
    bool removed = PQntuples(r) > 0;
    PQclear(r);
    if (!removed)
        return rcmd(ctx,
                    "DELETE FROM follow_requests WHERE account_id = $1 AND target_account_id = $2",
                    2, p2);
    char err[256];
    if (!count_follow(ctx, acc, tgt, -1))
        return false;
    if (fanout_outbox_relation(ctx->pg, FANOUT_JOB_UNFOLLOW, j->account_id, j->target_id, err,
                               sizeof(err)) != 0) {
        log_warning("unfollow: %s", err);
        return false;
    }
    j->feed_changed = true;
    return true;
}

/* AuthorizeFollowService / RejectFollowService: 404 without a pending request. Authorizing
 * follows with the request's options through follow_insert, then moves the request's list
 * memberships to the follow before the request goes (its foreign key would drop them). */
static bool do_answer(api_bg_ctx *ctx, rel_job *j, const char *acc, const char *tgt)
{
    const char *p2[] = {acc, tgt};
    PGresult *r = rexec(ctx,
                        "SELECT id, show_reblogs, notify, languages FROM follow_requests WHERE "
                        "account_id = $1 AND target_account_id = $2 FOR UPDATE",
                        2, p2);
    if (!r)
        return false;
    if (PQntuples(r) != 1) {
        PQclear(r);
        j->status = 404;
        snprintf(j->error, sizeof(j->error), "Record not found");
        return false;
    }
    char req_id[24], follow_id[24];
    snprintf(req_id, sizeof(req_id), "%s", PQgetvalue(r, 0, 0));
    bool ok = true;
    if (j->op == OP_AUTHORIZE) {
        ok = follow_insert(ctx, j, acc, tgt, PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2),
                           PQgetisnull(r, 0, 3) ? NULL : PQgetvalue(r, 0, 3), true, follow_id);
        const char *lp[] = {follow_id, req_id};
        ok = ok && rcmd(ctx,
                        "UPDATE list_accounts SET follow_id = $1, follow_request_id = NULL "
                        "WHERE follow_request_id = $2",
                        2, lp);
    }
    PQclear(r);
    const char *dp[] = {req_id};
    return ok && rcmd(ctx, "DELETE FROM follow_requests WHERE id = $1", 1, dp);
}

static void rel_run(api_bg_ctx *ctx, void *arg)
{
    rel_job *j = arg;
    char acc[24], tgt[24], viewer[24], subject[24], arr[64], err[256];
    snprintf(acc, sizeof(acc), "%lld", (long long)j->account_id);
    snprintf(tgt, sizeof(tgt), "%lld", (long long)j->target_id);
    snprintf(viewer, sizeof(viewer), "%lld", (long long)j->viewer_id);
    snprintf(subject, sizeof(subject), "%lld", (long long)j->subject_id);
    snprintf(arr, sizeof(arr), "{%lld}", (long long)j->subject_id);
    j->status = 503;
    snprintf(j->error, sizeof(j->error), "Service unavailable");
    if (!api_bg_pg(ctx, err, sizeof(err)) || !rcmd(ctx, "BEGIN", 0, NULL))
        return;
    /* the account asked about: blocks either way, locked, and whether the viewer is silenced */
    const char *p2[] = {viewer, subject};
    PGresult *r = rexec(ctx,
                        "SELECT EXISTS (SELECT 1 FROM blocks b WHERE (b.account_id = $1 AND "
                        "b.target_account_id = a.id) OR (b.account_id = a.id AND "
                        "b.target_account_id = $1)), a.locked AND a.domain IS NULL, "
                        "EXISTS (SELECT 1 FROM accounts v WHERE v.id = $1 AND v.silenced_at IS "
                        "NOT NULL) FROM accounts a WHERE a.id = $2 AND a.suspended_at IS NULL",
                        2, p2);
    if (!r)
        goto rollback;
    /* FollowService: no such account, or oneself: not found; a block: not allowed */
    if (PQntuples(r) != 1 || (j->op == OP_FOLLOW && j->account_id == j->target_id)) {
        PQclear(r);
        j->status = 404;
        snprintf(j->error, sizeof(j->error), "Record not found");
        goto rollback;
    }
    bool blocked = tval(r, 0, 0), request = tval(r, 0, 1) || tval(r, 0, 2);
    PQclear(r);
    bool ok;
    switch (j->op) {
    case OP_FOLLOW:
        if (blocked) {
            j->status = 403;
            snprintf(j->error, sizeof(j->error), "This action is not allowed");
            goto rollback;
        }
        ok = do_follow(ctx, j, acc, tgt, request);
        break;
    case OP_UNFOLLOW:
        ok = do_unfollow(ctx, j, acc, tgt);
        break;
    default:
        ok = do_answer(ctx, j, acc, tgt);
        break;
    }
    if (!ok)
        goto rollback;
    const char *rp[] = {viewer, arr};
    j->rel = rexec(ctx, RELATIONSHIP_SQL, 2, rp);
    if (!j->rel || PQntuples(j->rel) != 1 || !rcmd(ctx, "COMMIT", 0, NULL))
        goto rollback;
    api_bg_note_commit(ctx, j->viewer_id);
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
    /* the follower's home feed gains (or loses) entries: an empty-feed memo is stale now */
    if (j->feed_changed || j->op == OP_FOLLOW)
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

static void relate(api_req *req, int op)
{
    int64_t id;
    if (!api_req_id_param(req, op == OP_AUTHORIZE || op == OP_REJECT ? "account_id" : "id", &id))
        return;
    rel_job *j = calloc(1, sizeof(*j));
    if (!j) {
        api_req_error(req, 503, "Service unavailable");
        return;
    }
    j->req = req;
    j->op = op;
    j->viewer_id = req->auth.account_id;
    j->subject_id = id;
    bool outgoing = op == OP_FOLLOW || op == OP_UNFOLLOW;
    j->account_id = outgoing ? req->auth.account_id : id;
    j->target_id = outgoing ? id : req->auth.account_id;
    j->reblogs = api_req_param(req, "reblogs") ? api_param_bool(req, "reblogs", true) : -1;
    j->notify = api_req_param(req, "notify") ? api_param_bool(req, "notify", false) : -1;
    if (op == OP_FOLLOW && !languages_param(req, j)) {
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
    relate(req, OP_FOLLOW);
}

/* POST /api/v1/accounts/:id/unfollow */
static void unfollow(api_req *req)
{
    relate(req, OP_UNFOLLOW);
}

/* POST /api/v1/follow_requests/:account_id/authorize */
static void authorize(api_req *req)
{
    relate(req, OP_AUTHORIZE);
}

/* POST /api/v1/follow_requests/:account_id/reject */
static void reject(api_req *req)
{
    relate(req, OP_REJECT);
}

/* ==========================================================================================
 * GET /api/v1/follow_requests: the accounts asking to follow the viewer, newest request
 * first, paged by the requests' ids (Mastodon's paginate_by_max_id: max_id, since_id)
 */
static char requests_sql[2048];
static api_stmt requests_stmt = {"follow_requests", requests_sql, 4};
static const char *const requests_keep[] = {"limit", NULL};

static void requests_loaded(void *arg, const PGresult *res, const char *err)
{
    api_req *req = arg;
    if (!res) {
        api_req_error(req, 503, "Service unavailable");
        return;
    }
    int n = PQntuples(res);
    long limit = api_limit_param(req, 40, 80);
    api_jw w;
    api_req_json(req, &w);
    api_jw_arr(&w);
    for (int i = 0; i < n; i++)
        api_account_render(&w, req->w->srv->cfg, res, i, 1, false);
    api_jw_arr_end(&w);
    if (n)
        api_link_header(req, "/api/v1/follow_requests", requests_keep, n == limit,
                        strtoll(PQgetvalue(res, n - 1, 0), NULL, 10), true, "since_id",
                        strtoll(PQgetvalue(res, 0, 0), NULL, 10));
    api_req_finish(req, 200);
}

static void follow_requests(api_req *req)
{
    api_page page;
    api_page_parse(req, 40, 80, &page);
    if (page.limit <= 0) {
        api_buf_puts(&req->resp, "[]");
        api_req_finish(req, 200);
        return;
    }
    char viewer[24], max[24], since[24], limit[24];
    api_i64_text(viewer, req->auth.account_id);
    api_i64_text(max, page.max_id);
    api_i64_text(since, page.since_id);
    api_i64_text(limit, page.limit);
    const char *params[] = {viewer, page.has_max ? max : NULL, page.has_since ? since : NULL,
                            limit};
    if (!api_req_query(req, &requests_stmt, params, requests_loaded, req))
        api_req_error(req, 503, "Service unavailable");
}

bool api_relations_register(api_router *r)
{
    snprintf(requests_sql, sizeof(requests_sql),
             "SELECT fr.id, %s FROM follow_requests fr JOIN accounts a ON a.id = fr.account_id "
             "LEFT JOIN account_stats s ON s.account_id = a.id WHERE fr.target_account_id = $1 "
             "AND a.suspended_at IS NULL AND ($2::bigint IS NULL OR fr.id < $2) "
             "AND ($3::bigint IS NULL OR fr.id > $3) ORDER BY fr.id DESC LIMIT $4",
             API_ACCOUNT_COLUMNS);
    static const api_route routes[] = {
        {HTTP_GET, "/api/v1/accounts/relationships", relationships, "read:follows",
         ROUTE_AUTH_REQUIRED | ROUTE_USER, 0},
        {HTTP_POST, "/api/v1/accounts/:id/follow", follow, "write:follows",
         ROUTE_AUTH_REQUIRED | ROUTE_USER, 0},
        {HTTP_POST, "/api/v1/accounts/:id/unfollow", unfollow, "write:follows",
         ROUTE_AUTH_REQUIRED | ROUTE_USER, 0},
        {HTTP_GET, "/api/v1/follow_requests", follow_requests, "read:follows",
         ROUTE_AUTH_REQUIRED | ROUTE_USER, 0},
        {HTTP_POST, "/api/v1/follow_requests/:account_id/authorize", authorize, "write:follows",
         ROUTE_AUTH_REQUIRED | ROUTE_USER, 0},
        {HTTP_POST, "/api/v1/follow_requests/:account_id/reject", reject, "write:follows",
         ROUTE_AUTH_REQUIRED | ROUTE_USER, 0},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (!api_router_add(r, &routes[i]))
            return false;
    return true;
}
