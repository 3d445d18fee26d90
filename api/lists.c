/*
 * Lists: GET/POST /api/v1/lists, GET/PUT/DELETE /api/v1/lists/:id and
 * GET/POST/DELETE /api/v1/lists/:id/accounts, with Mastodon's List entity (id, title,
 * replies_policy followed|list|none, exclusive) and validations.
 *
 * Lists themselves are single statements on the async pool (a list row carries no fan-out);
 * the commit LSN each reports becomes the account's read token. Membership changes are
 * transactions on a bg thread because each member added or removed writes its outbox row
 * (fanout_outbox_list_member: fanout merges or unmerges the member's statuses in the list
 * feed). As in Mastodon, only accounts the owner follows (or the owner) may be added (422
 * otherwise), unknown accounts are 404, an account already in the list is 422. Deleting a
 * list drops its Redis feed (cache_feed_clean, on a bg thread).
 */
#include "api/internal.h"

#include "fanout/fanout.h"
#include "llhttp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_LIMIT 50 /* List::PER_ACCOUNT_LIMIT */
#define MAX_MEMBERS_PER_CALL 250
#define NOW_UTC "(now() AT TIME ZONE 'UTC')"
#define LIST_COLUMNS "id, title, replies_policy, exclusive"

static const char *const policy_names[] = {"list", "followed", "none"}; /* by column value */

static void id_text(char out[24], int64_t id)
{
    snprintf(out, 24, "%lld", (long long)id);
}

/* the List entity of a row of LIST_COLUMNS */
static void render_list(api_jw *w, const PGresult *r, int row)
{
    int policy = atoi(PQgetvalue(r, row, 2));
    api_jw_obj(w);
    api_jw_kstr(w, "id", PQgetvalue(r, row, 0));
    api_jw_kstr(w, "title", PQgetvalue(r, row, 1));
    api_jw_kstr(w, "replies_policy", policy >= 0 && policy <= 2 ? policy_names[policy] : "list");
    api_jw_kbool(w, "exclusive", PQgetvalue(r, row, 3)[0] == 't');
    api_jw_obj_end(w);
}

/* after a write on the async pool: the account's token for its next reads */
static void note_write(api_req *req)
{
    api_lsn_note(req->w->srv->lsn, req->auth.account_id, api_db_commit_lsn(req->w->db));
}

/* replies_policy from a name; -1 when it is not one */
static int policy_of(const char *v)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(v, policy_names[i]) == 0)
            return i;
    return -1;
}

static bool blank(const char *s)
{
    for (; s && *s; s++)
        if (!(*s == ' ' || (*s >= '\t' && *s <= '\r')))
            return false;
    return true;
}

/* ==========================================================================================
 * list rows
 */
static const api_stmt lists_stmt = {
    "lists", "SELECT " LIST_COLUMNS " FROM lists WHERE account_id = $1 ORDER BY id", 1};
static const api_stmt list_stmt = {
    "list", "SELECT " LIST_COLUMNS " FROM lists WHERE id = $1 AND account_id = $2", 2};
static const api_stmt list_create_stmt = {
    "list_create",
    "INSERT INTO lists (account_id, title, replies_policy, exclusive, created_at, updated_at) "
    "SELECT $1, $2, $3, $4, " NOW_UTC ", " NOW_UTC " WHERE (SELECT count(*) FROM lists WHERE "
    "account_id = $1) < $5 RETURNING " LIST_COLUMNS,
    5};
static const api_stmt list_update_stmt = {
    "list_update",
    "UPDATE lists SET title = coalesce($3, title), replies_policy = coalesce($4::int, "
    "replies_policy), exclusive = coalesce($5::bool, exclusive), updated_at = " NOW_UTC
    " WHERE id = $1 AND account_id = $2 RETURNING " LIST_COLUMNS,
    5};
static const api_stmt list_delete_stmt = {
    "list_delete", "DELETE FROM lists WHERE id = $1 AND account_id = $2 RETURNING id", 2};

static void lists_loaded(void *arg, const PGresult *res, const char *err)
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
        render_list(&w, res, i);
    api_jw_arr_end(&w);
    api_req_finish(req, 200);
}

/* GET /api/v1/lists */
static void lists_index(api_req *req)
{
    char acc[24];
    id_text(acc, req->auth.account_id);
    const char *params[] = {acc};
    if (!api_req_query(req, &lists_stmt, params, lists_loaded, req))
        api_req_error(req, 503, "Service unavailable");
}

/* one list row answered (404 when there is none) */
static void list_row(void *arg, const PGresult *res, const char *err)
{
    api_req *req = arg;
    if (!res) {
        api_req_error(req, 503, "Service unavailable");
        return;
    }
    if (req->method != HTTP_GET)
        note_write(req);
    if (PQntuples(res) != 1) {
        api_req_error(req, 404, "Record not found");
        return;
    }
    api_jw w;
    api_req_json(req, &w);
    render_list(&w, res, 0);
    api_req_finish(req, 200);
}

static void list_created(void *arg, const PGresult *res, const char *err)
{
    api_req *req = arg;
    if (res && PQntuples(res) == 0) {
        api_req_error(req, 422, "Validation failed: You have reached the maximum number of lists");
        return;
    }
    list_row(arg, res, err);
}

/* the optional fields of POST and PUT; false after answering 422 */
static bool list_fields(api_req *req, const char **title, char policy[4], const char **policy_p,
                        const char **exclusive, bool create)
{
    *title = api_req_param(req, "title");
    if ((create || *title) && blank(*title)) {
        api_req_error(req, 422, "Validation failed: Title can't be blank");
        return false;
    }
    const char *rp = api_req_param(req, "replies_policy");
    *policy_p = NULL;
    if (rp) {
        int p = policy_of(rp);
        if (p < 0) {
            api_req_error(req, 422,
                          "Validation failed: Replies policy is not included in the "
                          "list");
            return false;
        }
        snprintf(policy, 4, "%d", p);
        *policy_p = policy;
    } else if (create) {
        *policy_p = "0";
    }
    *exclusive = NULL;
    if (api_req_param(req, "exclusive"))
        *exclusive = api_param_bool(req, "exclusive", false) ? "t" : "f";
    else if (create)
        *exclusive = "f";
    return true;
}

/* POST /api/v1/lists */
static void list_create(api_req *req)
{
    const char *title, *policy_p, *exclusive;
    char policy[4], acc[24], limit[8];
    if (!list_fields(req, &title, policy, &policy_p, &exclusive, true))
        return;
    id_text(acc, req->auth.account_id);
    snprintf(limit, sizeof(limit), "%d", LIST_LIMIT);
    const char *params[] = {acc, title, policy_p, exclusive, limit};
    if (!api_req_query(req, &list_create_stmt, params, list_created, req))
        api_req_error(req, 503, "Service unavailable");
}

/* GET /api/v1/lists/:id */
static void list_show(api_req *req)
{
    int64_t id;
    if (!api_req_id_param(req, "id", &id))
        return;
    char ids[24], acc[24];
    id_text(ids, id);
    id_text(acc, req->auth.account_id);
    const char *params[] = {ids, acc};
    if (!api_req_query(req, &list_stmt, params, list_row, req))
        api_req_error(req, 503, "Service unavailable");
}

/* PUT /api/v1/lists/:id */
static void list_update(api_req *req)
{
    int64_t id;
    if (!api_req_id_param(req, "id", &id))
        return;
    const char *title, *policy_p, *exclusive;
    char policy[4], ids[24], acc[24];
    if (!list_fields(req, &title, policy, &policy_p, &exclusive, false))
        return;
    id_text(ids, id);
    id_text(acc, req->auth.account_id);
    const char *params[] = {ids, acc, title, policy_p, exclusive};
    if (!api_req_query(req, &list_update_stmt, params, list_row, req))
        api_req_error(req, 503, "Service unavailable");
}

/* ------------------------------------------------------------------------------------------
 * DELETE /api/v1/lists/:id: the row, then the feed in Redis
 */
typedef struct list_del {
    api_req *req;
    int64_t id;
} list_del;

static void clean_run(api_bg_ctx *ctx, void *arg)
{
    list_del *d = arg;
    if (cache_feed_clean(ctx->cache, CACHE_FEED_LIST, &d->id, 1) != 0)
        log_warning("list %lld deleted, its feed could not be dropped from Redis",
                    (long long)d->id);
}

static void clean_done(void *arg)
{
    list_del *d = arg;
    api_req *req = d->req;
    free(d);
    api_buf_puts(&req->resp, "{}");
    api_req_finish(req, 200);
}

static void list_deleted(void *arg, const PGresult *res, const char *err)
{
    list_del *d = arg;
    api_req *req = d->req;
    if (!res || PQntuples(res) != 1) {
        free(d);
        if (res)
            api_req_error(req, 404, "Record not found");
        else
            api_req_error(req, 503, "Service unavailable");
        return;
    }
    note_write(req);
    api_feedmemo_forget(req->w->srv->memo, CACHE_FEED_LIST, d->id);
    if (!api_bg_submit(req->w, clean_run, clean_done, d))
        clean_done(d); /* the feed expires unread; the answer stands */
}

static void list_delete(api_req *req)
{
    int64_t id;
    if (!api_req_id_param(req, "id", &id))
        return;
    list_del *d = malloc(sizeof(*d));
    if (!d) {
        api_req_error(req, 503, "Service unavailable");
        return;
    }
    d->req = req;
    d->id = id;
    char ids[24], acc[24];
    id_text(ids, id);
    id_text(acc, req->auth.account_id);
    const char *params[] = {ids, acc};
    if (!api_req_query(req, &list_delete_stmt, params, list_deleted, d)) {
        free(d);
        api_req_error(req, 503, "Service unavailable");
    }
}

/* ==========================================================================================
 * GET /api/v1/lists/:id/accounts
 */
static char members_sql[2048];
static api_stmt members_stmt = {"list_members", members_sql, 4};

static const char *const members_keep[] = {"limit", NULL};

typedef struct members {
    api_req *req;
    int64_t list_id;
    bool unlimited;
    api_page page;
    char path[64];
} members;

static void members_loaded(void *arg, const PGresult *res, const char *err)
{
    members *m = arg;
    api_req *req = m->req;
    if (!res) {
        free(m);
        api_req_error(req, 503, "Service unavailable");
        return;
    }
    int n = PQntuples(res);
    api_jw w;
    api_req_json(req, &w);
    api_jw_arr(&w);
    for (int i = 0; i < n; i++)
        api_account_render(&w, req->w->srv->cfg, res, i, 0, false);
    api_jw_arr_end(&w);
    if (n && !m->unlimited)
        api_link_header(req, m->path, members_keep, n == m->page.limit,
                        strtoll(PQgetvalue(res, n - 1, 0), NULL, 10), true, "since_id",
                        strtoll(PQgetvalue(res, 0, 0), NULL, 10));
    free(m);
    api_req_finish(req, 200);
}

static void members_owned(void *arg, const PGresult *res, const char *err)
{
    members *m = arg;
    api_req *req = m->req;
    if (!res || PQntuples(res) != 1) {
        free(m);
        if (res)
            api_req_error(req, 404, "Record not found");
        else
            api_req_error(req, 503, "Service unavailable");
        return;
    }
    char ids[24], max[24], since[24], lim[24];
    id_text(ids, m->list_id);
    id_text(max, m->page.max_id);
    id_text(since, m->page.since_id);
    snprintf(lim, sizeof(lim), "%ld", m->page.limit);
    const char *params[] = {ids, m->page.has_max && !m->unlimited ? max : NULL,
                            m->page.has_since && !m->unlimited ? since : NULL,
                            m->unlimited ? NULL : lim};
    if (!api_req_query(req, &members_stmt, params, members_loaded, m)) {
        free(m);
        api_req_error(req, 503, "Service unavailable");
    }
}

static void list_members(api_req *req)
{
    int64_t id;
    if (!api_req_id_param(req, "id", &id))
        return;
    members *m = calloc(1, sizeof(*m));
    if (!m) {
        api_req_error(req, 503, "Service unavailable");
        return;
    }
    m->req = req;
    m->list_id = id;
    api_page_parse(req, 40, 80, &m->page);
    const char *l = api_req_param(req, "limit");
    m->unlimited = l && strcmp(l, "0") == 0; /* Mastodon: limit=0 lists every member */
    snprintf(m->path, sizeof(m->path), "/api/v1/lists/%lld/accounts", (long long)id);
    char ids[24], acc[24];
    id_text(ids, id);
    id_text(acc, req->auth.account_id);
    const char *params[] = {ids, acc};
    if (!api_req_query(req, &list_stmt, params, members_owned, m)) {
        free(m);
        api_req_error(req, 503, "Service unavailable");
    }
}

/* ==========================================================================================
 * POST / DELETE /api/v1/lists/:id/accounts
 */
typedef struct member_job {
    api_req *req;
    bool add;
    int64_t list_id;
    int64_t account_id; /* the owner */
    int64_t ids[MAX_MEMBERS_PER_CALL];
    int n;
    int status;
    char error[160];
} member_job;

static PGresult *mexec(api_bg_ctx *ctx, const char *sql, int n, const char *const *params)
{
    char err[512], state[6];
    PGresult *r = api_bg_exec(ctx, sql, n, params, err, sizeof(err), state);
    if (!r)
        log_warning("list members: %s", err);
    return r;
}

static void member_run(api_bg_ctx *ctx, void *arg)
{
    member_job *j = arg;
    char lid[24], acc[24], err[256];
    id_text(lid, j->list_id);
    id_text(acc, j->account_id);
    j->status = 503;
    snprintf(j->error, sizeof(j->error), "Service unavailable");
    if (!api_bg_pg(ctx, err, sizeof(err)))
        return;
    PGresult *r = mexec(ctx, "BEGIN", 0, NULL);
    if (!r)
        return;
    PQclear(r);
    api_buf arr = {0};
    api_buf_putc(&arr, '{');
    for (int i = 0; i < j->n; i++) {
        if (i)
            api_buf_putc(&arr, ',');
        api_buf_put_int(&arr, j->ids[i]);
    }
    api_buf_putc(&arr, '}');
    const char *lp[] = {lid, acc, api_buf_cstr(&arr)};
    /* the list must be the caller's; FOR UPDATE orders concurrent changes of one list */
    r = mexec(ctx, "SELECT 1 FROM lists WHERE id = $1 AND account_id = $2 FOR UPDATE", 2, lp);
    if (!r || arr.oom)
        goto rollback;
    if (PQntuples(r) != 1) {
        PQclear(r);
        j->status = 404;
        snprintf(j->error, sizeof(j->error), "Record not found");
        goto rollback;
    }
    PQclear(r);
    if (j->add) {
        /* Account.find(ids): every id must exist; then each needs the owner's follow */
        r = mexec(ctx,
                  "SELECT q.id, a.id IS NOT NULL, f.id, EXISTS (SELECT 1 FROM list_accounts la "
                  "WHERE la.list_id = $1 AND la.account_id = q.id) FROM unnest($3::bigint[]) AS "
                  "q(id) LEFT JOIN accounts a ON a.id = q.id LEFT JOIN follows f ON f.account_id "
                  "= $2 AND f.target_account_id = q.id",
                  3, lp);
        if (!r)
            goto rollback;
        int rows = PQntuples(r);
        for (int i = 0; i < rows; i++) {
            if (PQgetvalue(r, i, 1)[0] != 't') {
                j->status = 404;
                snprintf(j->error, sizeof(j->error), "Record not found");
                break;
            }
        }
        for (int i = 0; j->status == 503 && i < rows; i++) {
            int64_t who = strtoll(PQgetvalue(r, i, 0), NULL, 10);
            if (PQgetisnull(r, i, 2) && who != j->account_id) {
                j->status = 422;
                snprintf(j->error, sizeof(j->error),
                         "Validation failed: Account follow relationship missing");
            } else if (PQgetvalue(r, i, 3)[0] == 't') {
                j->status = 422;
                snprintf(j->error, sizeof(j->error),
                         "Validation failed: Account has already been taken");
            }
        }
        PQclear(r);
        if (j->status != 503)
            goto rollback;
        r = mexec(ctx,
                  "INSERT INTO list_accounts (list_id, account_id, follow_id) SELECT $1, q.id, "
                  "f.id FROM unnest($3::bigint[]) AS q(id) LEFT JOIN follows f ON f.account_id = "
                  "$2 AND f.target_account_id = q.id RETURNING account_id",
                  3, lp);
    } else {
        r = mexec(ctx,
                  "DELETE FROM list_accounts WHERE list_id = $1 AND account_id = ANY($3::bigint[]) "
                  "AND $2::bigint IS NOT NULL RETURNING account_id",
                  3, lp);
    }
    if (!r)
        goto rollback;
    int kind = j->add ? FANOUT_JOB_LIST_ADD : FANOUT_JOB_LIST_REMOVE;
    bool ok = true;
    for (int i = 0; ok && i < PQntuples(r); i++) {
        int64_t who = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        ok = fanout_outbox_list_member(ctx->pg, kind, j->list_id, who, err, sizeof(err)) == 0;
        if (!ok)
            log_warning("list members: %s", err);
    }
    PQclear(r);
    if (!ok)
        goto rollback;
    r = mexec(ctx, "COMMIT", 0, NULL);
    if (!r)
        goto rollback;
    PQclear(r);
    api_buf_free(&arr);
    api_bg_note_commit(ctx, j->account_id);
    j->status = 200;
    return;
rollback:
    api_buf_free(&arr);
    if (ctx->pg)
        PQclear(PQexec(ctx->pg, "ROLLBACK"));
}

static void member_done(void *arg)
{
    member_job *j = arg;
    api_req *req = j->req;
    if (j->status != 200) {
        api_req_error(req, j->status, j->error);
        free(j);
        return;
    }
    api_feedmemo_forget(req->w->srv->memo, CACHE_FEED_LIST, j->list_id);
    free(j);
    api_buf_puts(&req->resp, "{}");
    api_req_finish(req, 200);
}

static void change_members(api_req *req, bool add)
{
    int64_t id;
    if (!api_req_id_param(req, "id", &id))
        return;
    member_job *j = calloc(1, sizeof(*j));
    if (!j) {
        api_req_error(req, 503, "Service unavailable");
        return;
    }
    j->req = req;
    j->add = add;
    j->list_id = id;
    j->account_id = req->auth.account_id;
    int64_t raw[MAX_MEMBERS_PER_CALL];
    int n = api_param_ids(req, "account_ids", raw, MAX_MEMBERS_PER_CALL);
    for (int i = 0; i < n; i++) {
        if (raw[i] <= 0) {
            if (!add)
                continue; /* destroy_all of nothing */
            free(j);
            api_req_error(req, 404, "Record not found");
            return;
        }
        bool dup = false;
        for (int k = 0; k < j->n && !dup; k++)
            dup = j->ids[k] == raw[i];
        if (!dup)
            j->ids[j->n++] = raw[i];
    }
    if (!api_bg_submit(req->w, member_run, member_done, j)) {
        free(j);
        api_req_error(req, 503, "Service unavailable");
    }
}

/* POST /api/v1/lists/:id/accounts */
static void members_add(api_req *req)
{
    change_members(req, true);
}

/* DELETE /api/v1/lists/:id/accounts */
static void members_remove(api_req *req)
{
    change_members(req, false);
}

bool api_lists_register(api_router *r)
{
    snprintf(members_sql, sizeof(members_sql),
             "SELECT %s FROM list_accounts la JOIN accounts a ON a.id = la.account_id "
             "LEFT JOIN account_stats s ON s.account_id = a.id WHERE la.list_id = $1 "
             "AND a.suspended_at IS NULL AND ($2::bigint IS NULL OR a.id < $2) "
             "AND ($3::bigint IS NULL OR a.id > $3) "
             "ORDER BY a.id DESC LIMIT $4",
             API_ACCOUNT_COLUMNS);
    static const api_route routes[] = {
        {HTTP_GET, "/api/v1/lists", lists_index, "read:lists", ROUTE_AUTH_REQUIRED | ROUTE_USER, 0},
        {HTTP_POST, "/api/v1/lists", list_create, "write:lists", ROUTE_AUTH_REQUIRED | ROUTE_USER,
         0},
        {HTTP_GET, "/api/v1/lists/:id", list_show, "read:lists", ROUTE_AUTH_REQUIRED | ROUTE_USER,
         0},
        {HTTP_PUT, "/api/v1/lists/:id", list_update, "write:lists",
         ROUTE_AUTH_REQUIRED | ROUTE_USER, 0},
        {HTTP_DELETE, "/api/v1/lists/:id", list_delete, "write:lists",
         ROUTE_AUTH_REQUIRED | ROUTE_USER, 0},
        {HTTP_GET, "/api/v1/lists/:id/accounts", list_members, "read:lists",
         ROUTE_AUTH_REQUIRED | ROUTE_USER, 0},
        {HTTP_POST, "/api/v1/lists/:id/accounts", members_add, "write:lists",
         ROUTE_AUTH_REQUIRED | ROUTE_USER, 0},
        {HTTP_DELETE, "/api/v1/lists/:id/accounts", members_remove, "write:lists",
         ROUTE_AUTH_REQUIRED | ROUTE_USER, 0},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (!api_router_add(r, &routes[i]))
            return false;
    return true;
}
