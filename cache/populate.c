/*
 * Feed maintenance that reads PostgreSQL: rebuilding a feed (Mastodon's populate_home and
 * populate_list), merging an account's statuses into a feed when it is followed or added to
 * a list, unmerging them on unfollow, clearing an account out after a block or mute, and the
 * streaming publish helper those share with the fan-out.
 *
 * Rebuild differs from Mastodon in how it reads, not in what it produces: Mastodon runs one
 * query per followed account (1,000 queries for 1,000 follows) and inserts account by
 * account; here one LATERAL query takes each followed account's newest CACHE_POPULATE_LIMIT
 * statuses, merged newest first, in pages until MAX_ITEMS survive the filter, and the
 * survivors are inserted oldest first, as live delivery would have, in one script call.
 */
#include "cache/internal.h"
#include "common/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POPULATE_PAGE 1000

/* the columns cache_candidates_query expects, for alias s (and r = the reblogged status) */
#define CAND_COLS                                                                                  \
    "s.id, s.account_id, s.reply, s.in_reply_to_id, s.in_reply_to_account_id, s.reblog_of_id,"     \
    " r.account_id, s.language,"                                                                   \
    " ARRAY(SELECT m.account_id FROM mentions m WHERE m.status_id = s.id AND NOT m.silent),"       \
    " CASE WHEN s.reblog_of_id IS NULL THEN '{}'::bigint[] ELSE ARRAY(SELECT m.account_id"         \
    " FROM mentions m WHERE m.status_id = s.reblog_of_id AND NOT m.silent) END"
#define CAND_JOIN " LEFT JOIN statuses r ON r.id = s.reblog_of_id AND r.deleted_at IS NULL"

static const char populate_home_sql[] =
    "WITH ids AS ("
    " SELECT x.id FROM follows f CROSS JOIN LATERAL ("
    "  SELECT st.id FROM statuses st WHERE st.account_id = f.target_account_id"
    "  AND st.deleted_at IS NULL AND st.visibility IN (0, 1, 2)"
    "  ORDER BY st.id DESC LIMIT 400) x"
    " WHERE f.account_id = $1"
    " UNION ALL (SELECT st.id FROM statuses st WHERE st.account_id = $1"
    "  AND st.deleted_at IS NULL ORDER BY st.id DESC LIMIT 400))"
    " SELECT " CAND_COLS " FROM ids JOIN statuses s ON s.id = ids.id" CAND_JOIN
    " WHERE s.id < $2 ORDER BY s.id DESC LIMIT $3";

static const char populate_list_sql[] =
    "WITH ids AS ("
    " SELECT x.id FROM list_accounts la CROSS JOIN LATERAL ("
    "  SELECT st.id FROM statuses st WHERE st.account_id = la.account_id"
    "  AND st.deleted_at IS NULL AND st.visibility IN (0, 1, 2)"
    "  ORDER BY st.id DESC LIMIT 400) x"
    " WHERE la.list_id = $1)"
    " SELECT " CAND_COLS " FROM ids JOIN statuses s ON s.id = ids.id" CAND_JOIN
    " WHERE s.id < $2 ORDER BY s.id DESC LIMIT $3";

static const char merge_sql[] =
    "SELECT " CAND_COLS " FROM statuses s" CAND_JOIN
    " WHERE s.account_id = $1 AND s.deleted_at IS NULL AND s.visibility IN (0, 1, 2)"
    " AND s.id > $2 ORDER BY s.id DESC LIMIT 200";

/* what the list pass needs: owner, policy and members */
typedef struct list_info {
    int64_t owner;
    int replies_policy;
    cache_idset members;
} list_info;

static int load_list(PGconn *pg, int64_t list_id, list_info *li, char *err, size_t errlen)
{
    cache_idset_init(&li->members);
    char id[24];
    cache_id_text(id, list_id);
    const char *params[] = {id};
    PGresult *r = cache_pg_exec(pg,
                                "SELECT account_id, replies_policy, NULL FROM lists WHERE id = $1"
                                " UNION ALL SELECT NULL, NULL, account_id FROM list_accounts"
                                " WHERE list_id = $1",
                                1, params, err, errlen);
    if (!r)
        return -1;
    li->owner = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        if (!PQgetisnull(r, i, 0)) {
            li->owner = cache_pg_int(r, i, 0);
            li->replies_policy = (int)cache_pg_int(r, i, 1);
        } else {
            cache_idset_add(&li->members, cache_pg_int(r, i, 2));
        }
    }
    PQclear(r);
    return li->owner ? 1 : 0; /* 0: the list is gone */
}

/* run home (and list) filters over candidates; keep[] out */
static int filter_for_feed(PGconn *pg, int type, int64_t feed_id, list_info *li,
                           cache_candidate *cands, size_t n, bool *keep, char *err, size_t errlen)
{
    int64_t receiver = type == CACHE_FEED_LIST ? li->owner : feed_id;
    if (cache_filter_candidates(pg, receiver, type == CACHE_FEED_LIST, cands, n, keep, err,
                                errlen) != 0)
        return -1;
    if (type == CACHE_FEED_LIST) {
        for (size_t i = 0; i < n; i++) {
            if (!keep[i])
                continue;
            bool in_list = cands[i].st.in_reply_to_account_id &&
                           cache_idset_has(&li->members, cands[i].st.in_reply_to_account_id);
            keep[i] = cache_filter_list(&cands[i].st, li->owner, li->replies_policy, in_list) ==
                      CACHE_FILTER_NONE;
        }
    }
    return 0;
}

int cache_feed_populate(cache *c, PGconn *pg, int type, int64_t feed_id, char *err, size_t errlen)
{
    list_info li = {0};
    cache_idset_init(&li.members);
    if (type == CACHE_FEED_LIST) {
        int found = load_list(pg, feed_id, &li, err, errlen);
        if (found <= 0) {
            cache_idset_free(&li.members);
            return found; /* a deleted list has nothing to rebuild */
        }
    }
    int64_t *ids = NULL, *rids = NULL;
    size_t n = 0, cap = 0;
    int64_t cursor = INT64_MAX;
    int rc = -1;
    for (;;) {
        char idtxt[24], curtxt[24], limtxt[16];
        cache_id_text(idtxt, feed_id);
        cache_id_text(curtxt, cursor);
        snprintf(limtxt, sizeof(limtxt), "%d", POPULATE_PAGE);
        const char *params[] = {idtxt, curtxt, limtxt};
        cache_candidate *cands = NULL;
        int rows = cache_candidates_query(
            pg, type == CACHE_FEED_LIST ? populate_list_sql : populate_home_sql, 3, params, &cands,
            err, errlen);
        if (rows < 0)
            goto out;
        bool *keep = calloc(rows ? (size_t)rows : 1, sizeof(bool));
        if (!keep ||
            filter_for_feed(pg, type, feed_id, &li, cands, (size_t)rows, keep, err, errlen) != 0) {
            if (!keep)
                snprintf(err, errlen, "out of memory");
            free(keep);
            cache_candidates_free(cands, (size_t)rows);
            goto out;
        }
        for (int i = 0; i < rows; i++) {
            if (!keep[i])
                continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 1024;
                int64_t *a = realloc(ids, cap * sizeof(*a));
                int64_t *b = a ? realloc(rids, cap * sizeof(*b)) : NULL;
                if (a)
                    ids = a;
                if (b)
                    rids = b;
                if (!a || !b) {
                    snprintf(err, errlen, "out of memory");
                    free(keep);
                    cache_candidates_free(cands, (size_t)rows);
                    goto out;
                }
            }
            ids[n] = cands[i].st.id;
            rids[n] = cands[i].st.reblog_of_id;
            n++;
        }
        if (rows > 0)
            cursor = cands[rows - 1].st.id;
        free(keep);
        cache_candidates_free(cands, (size_t)rows);
        if (rows < POPULATE_PAGE || n >= CACHE_MAX_ITEMS)
            break;
    }
    /* oldest first, as live delivery would have inserted them */
    for (size_t i = 0; i < n / 2; i++) {
        int64_t t = ids[i];
        ids[i] = ids[n - 1 - i];
        ids[n - 1 - i] = t;
        t = rids[i];
        rids[i] = rids[n - 1 - i];
        rids[n - 1 - i] = t;
    }
    if (n &&
        cache_feed_add_statuses(c, type, feed_id, ids, rids, n, CACHE_ADD_TRIM_END, NULL) != 0) {
        snprintf(err, errlen, "Redis unavailable while rebuilding feed");
        goto out;
    }
    rc = (int)n;
out:
    free(ids);
    free(rids);
    cache_idset_free(&li.members);
    return rc;
}

int cache_feed_merge(cache *c, PGconn *pg, int type, int64_t feed_id, int64_t from_account_id,
                     char *err, size_t errlen)
{
    int64_t card = 0, oldest = 0;
    if (cache_feed_head(c, type, feed_id, &card, &oldest) != 0) {
        snprintf(err, errlen, "Redis unavailable");
        return -1;
    }
    if (card == 0) {
        /* a missing feed is rebuilt on its next read; merging would make it look complete */
        int regen = cache_feed_regenerating(c, type, feed_id);
        if (regen < 0) {
            snprintf(err, errlen, "Redis unavailable");
            return -1;
        }
        if (!regen)
            return 0;
    }
    list_info li = {0};
    cache_idset_init(&li.members);
    if (type == CACHE_FEED_LIST) {
        int found = load_list(pg, feed_id, &li, err, errlen);
        if (found <= 0) {
            cache_idset_free(&li.members);
            return found;
        }
    }
    char from[24], min[24];
    cache_id_text(from, from_account_id);
    cache_id_text(min, card >= CACHE_MERGE_LIMIT ? oldest : 0);
    const char *params[] = {from, min};
    cache_candidate *cands = NULL;
    int rows = cache_candidates_query(pg, merge_sql, 2, params, &cands, err, errlen);
    int rc = -1;
    bool *keep = NULL;
    int64_t *ids = NULL, *rids = NULL;
    if (rows < 0)
        goto out0;
    keep = calloc(rows ? (size_t)rows : 1, sizeof(bool));
    ids = malloc((rows ? (size_t)rows : 1) * sizeof(int64_t));
    rids = malloc((rows ? (size_t)rows : 1) * sizeof(int64_t));
    if (!keep || !ids || !rids) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (filter_for_feed(pg, type, feed_id, &li, cands, (size_t)rows, keep, err, errlen) != 0)
        goto out;
    size_t n = 0;
    for (int i = 0; i < rows; i++) {
        if (keep[i]) {
            ids[n] = cands[i].st.id;
            rids[n] = cands[i].st.reblog_of_id;
            n++;
        }
    }
    /* Mastodon merges newest first and trims once at the end */
    if (n && cache_feed_add_statuses(c, type, feed_id, ids, rids, n,
                                     CACHE_ADD_IF_EXISTS | CACHE_ADD_TRIM_END, NULL) != 0) {
        snprintf(err, errlen, "Redis unavailable");
        goto out;
    }
    rc = (int)n;
out:
    cache_candidates_free(cands, rows > 0 ? (size_t)rows : 0);
out0:
    free(keep);
    free(ids);
    free(rids);
    cache_idset_free(&li.members);
    return rc;
}

/* the statuses of a feed that a query picks, removed; publish delete events when asked */
static int remove_selected(cache *c, PGconn *pg, int type, int64_t feed_id, const char *sql,
                           int64_t account_id, bool publish, char *err, size_t errlen)
{
    int64_t *members = NULL;
    size_t n = 0;
    if (cache_feed_members(c, type, feed_id, &members, &n) != 0) {
        snprintf(err, errlen, "Redis unavailable");
        return -1;
    }
    if (n == 0) {
        free(members);
        return 0;
    }
    cache_buf arr;
    cache_buf_init(&arr);
    cache_pg_id_array(&arr, members, n);
    free(members);
    char acc[24];
    cache_id_text(acc, account_id);
    const char *params[] = {acc, arr.data};
    PGresult *r = arr.oom ? NULL : cache_pg_exec(pg, sql, 2, params, err, errlen);
    cache_buf_free(&arr);
    if (!r)
        return -1;
    int rows = PQntuples(r);
    int64_t *ids = malloc((rows ? (size_t)rows : 1) * sizeof(int64_t));
    int64_t *rids = malloc((rows ? (size_t)rows : 1) * sizeof(int64_t));
    int *res = malloc((rows ? (size_t)rows : 1) * sizeof(int));
    int rc = -1;
    if (!ids || !rids || !res) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (int i = 0; i < rows; i++) {
        ids[i] = cache_pg_int(r, i, 0);
        rids[i] = cache_pg_int(r, i, 1);
    }
    if (cache_feed_remove_statuses(c, type, feed_id, ids, rids, (size_t)rows, res) != 0) {
        snprintf(err, errlen, "Redis unavailable");
        goto out;
    }
    int removed = 0;
    for (int i = 0; i < rows; i++) {
        if (res[i] != 1)
            continue;
        removed++;
        if (publish) {
            cache_buf ev;
            cache_buf_init(&ev);
            cache_event_delete(&ev, ids[i]);
            cache_publish_subscribed(c, type == CACHE_FEED_LIST ? "timeline:list:" : "timeline:",
                                     &feed_id, 1, ev.data, ev.len);
            cache_buf_free(&ev);
        }
    }
    rc = removed;
out:
    PQclear(r);
    free(ids);
    free(rids);
    free(res);
    return rc;
}

int cache_feed_unmerge(cache *c, PGconn *pg, int type, int64_t feed_id, int64_t from_account_id,
                       char *err, size_t errlen)
{
    return remove_selected(c, pg, type, feed_id,
                           "SELECT id, reblog_of_id FROM statuses"
                           " WHERE account_id = $1 AND id = ANY($2::bigint[])",
                           from_account_id, false, err, errlen);
}

int cache_feed_clear_account(cache *c, PGconn *pg, int type, int64_t feed_id,
                             int64_t target_account_id, char *err, size_t errlen)
{
    return remove_selected(
        c, pg, type, feed_id,
        "SELECT s.id, s.reblog_of_id FROM statuses s"
        " LEFT JOIN statuses r ON r.id = s.reblog_of_id"
        " WHERE s.id = ANY($2::bigint[]) AND (s.account_id = $1 OR r.account_id = $1"
        " OR EXISTS (SELECT 1 FROM mentions m WHERE m.account_id = $1 AND NOT m.silent"
        " AND (m.status_id = s.id OR m.status_id = s.reblog_of_id)))",
        target_account_id, true, err, errlen);
}

/* ------------------------------------------------------------------ streaming */

int cache_publish_subscribed(cache *c, const char *prefix, const int64_t *ids, size_t n,
                             const char *payload, size_t len)
{
    if (n == 0)
        return 0;
    redisContext *ctx = cache_pubsub_ctx(c);
    if (!ctx)
        return -1;
    /* one MGET of subscribed:<channel> keys rather than n EXISTS: one command to dispatch */
    char(*chan)[64] = malloc(n * 64);
    char(*key)[80] = malloc(n * 80);
    const char **argv = malloc((n + 1) * sizeof(*argv));
    int published = -1;
    redisReply *r = NULL;
    if (!chan || !key || !argv)
        goto out;
    argv[0] = "MGET";
    for (size_t i = 0; i < n; i++) {
        snprintf(chan[i], 64, "%s%lld", prefix, (long long)ids[i]);
        snprintf(key[i], 80, "subscribed:%s", chan[i]);
        argv[i + 1] = key[i];
    }
    r = redisCommandArgv(ctx, (int)n + 1, argv, NULL);
    if (!r) {
        cache_ctx_broken(c, ctx);
        goto out;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != n)
        goto out;
    size_t sent = 0;
    for (size_t i = 0; i < n; i++) {
        if (r->element[i]->type == REDIS_REPLY_NIL)
            continue;
        const char *pargv[] = {"PUBLISH", chan[i], payload};
        size_t lens[] = {7, strlen(chan[i]), len};
        if (redisAppendCommandArgv(ctx, 3, pargv, lens) != REDIS_OK) {
            cache_ctx_broken(c, ctx);
            goto out;
        }
        sent++;
    }
    for (size_t i = 0; i < sent; i++) {
        redisReply *pr;
        if (cache_read_replies(c, ctx, 1, &pr) != 0)
            goto out;
        freeReplyObject(pr);
    }
    published = (int)sent;
out:
    if (r)
        freeReplyObject(r);
    free(chan);
    free(key);
    free(argv);
    return published;
}
