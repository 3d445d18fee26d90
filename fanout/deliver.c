/*
 * Fan-out of one status (Mastodon's FanOutOnWriteService + FeedInsertWorker, batched): the
 * author's own home feed, then the home feeds of active local followers a page at a time,
 * then the lists that include the author, then the public streams. Mastodon enqueues one
 * Sidekiq job per follower; here one job walks the followers in pages of batch_size:
 *
 *   once per job: the status (through the status cache) and the relations keyed by its own
 *     accounts (who blocks or mutes the author or a mentioned account, whom the author
 *     blocks, whose exclusive lists hold the author), one query, kept in id sets;
 *   1 query per page: the followers (keyset on follows(target_account_id, account_id)) with
 *     their follow's languages and show_reblogs and whether each follows the replied-to
 *     account, the one relation keyed by the receiver;
 *   the filter, in memory, per follower (cache_filter_home);
 *   1 EVALSHA per feeds shard and 500 feeds (add_to_feed + trim in Lua, ~3 us per feed);
 *   1 MGET of subscribed:timeline:<id> and 1 PUBLISH pipeline for the feeds that got it.
 * The next page's query is in flight while the current page is in Redis. Nothing is queried
 * or allocated per follower; page buffers are sized once per job.
 *
 * Measured (bench/fanout, 2 cores shared with PostgreSQL and Redis): a 100k-follower post
 * reaches every feed at about 0.6 of redis-benchmark's pipelined ZADD rate; before the
 * relations moved to the job level, a page spent most of its time re-reading the author's
 * relationships (the exclusive-list join alone ran 1M comparisons per page for an account in
 * 5,000 lists).
 *
 * Deletion walks the same sets (all local followers, not only active ones, since a user may
 * have gone idle after the status reached their feed) and removes with remove_from_feed.
 *
 * Progress (stage, last follower id) is saved after each page, so a worker that takes over a
 * job from a dead one resumes at the page that was in flight; replaying a page is harmless
 * because add/remove report "already done" and nothing is published twice.
 */
#include "fanout/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { STAGE_SELF = 0, STAGE_FOLLOWERS, STAGE_LISTS, STAGE_PUBLIC, STAGE_DONE };

/* Relations keyed by the status' own accounts (who blocks or mutes the author or a
 * mentioned account, whom the author blocks, whose exclusive lists hold the author): one
 * query per job, bounded by those accounts' relationship counts, kept in id sets. */
static const char job_facts_sql[] =
    "SELECT 1, account_id FROM blocks WHERE target_account_id = ANY($2::bigint[])"
    " UNION ALL SELECT 2, account_id FROM mutes WHERE target_account_id = ANY($2::bigint[])"
    " UNION ALL SELECT CASE WHEN account_id = $1 THEN 3 ELSE 4 END, target_account_id"
    " FROM blocks WHERE account_id = ANY($3::bigint[])"
    " UNION ALL SELECT 6, l.account_id FROM list_accounts la JOIN lists l ON l.id = la.list_id"
    " WHERE la.account_id = $1 AND l.exclusive";

/* a page of active local followers with their follow's languages and show_reblogs, and
 * (receiver-keyed, so per page) whether each follows the replied-to account ($4) */
static const char home_page_sql[] =
    "SELECT f.account_id, array_to_string(f.languages, ','), NOT f.show_reblogs,"
    " g.id IS NOT NULL FROM follows f JOIN users u ON u.account_id = f.account_id"
    " LEFT JOIN follows g ON g.account_id = f.account_id AND g.target_account_id = $4"
    " WHERE f.target_account_id = $1 AND f.account_id > $2"
    /* the same bound on users lets the planner merge-join from the cursor on */
    " AND u.account_id > $2"
    " AND u.current_sign_in_at > timezone('UTC', now()) - interval '7 days'"
    " AND ($5::bigint[] IS NULL OR f.account_id = ANY($5::bigint[]))"
    " ORDER BY f.account_id LIMIT $3";

/* lists that include the author (Mastodon's lists_for_local_distribution), with the owner's
 * follow of the author, whether the owner follows the replied-to account, and whether that
 * account is a member of the list */
static const char list_page_sql[] =
    "SELECT l.id, array_to_string(fo.languages, ','), NOT coalesce(fo.show_reblogs, true),"
    " g.id IS NOT NULL, l.account_id, l.replies_policy, lr.id IS NOT NULL"
    " FROM list_accounts la JOIN lists l ON l.id = la.list_id"
    " JOIN users u ON u.account_id = l.account_id"
    " LEFT JOIN follows fo ON fo.account_id = l.account_id AND fo.target_account_id = $1"
    " LEFT JOIN follows g ON g.account_id = l.account_id AND g.target_account_id = $4"
    " LEFT JOIN list_accounts lr ON lr.list_id = l.id AND lr.account_id = $4"
    " WHERE la.account_id = $1 AND (la.follow_id IS NOT NULL OR l.account_id = $1)"
    " AND u.current_sign_in_at > timezone('UTC', now()) - interval '7 days'"
    " AND l.id > $2 AND $5::bigint[] IS NULL ORDER BY l.id LIMIT $3";

/* deletion: every local follower / every list with the author */
static const char delete_home_sql[] =
    "SELECT f.account_id FROM follows f JOIN users u ON u.account_id = f.account_id"
    " WHERE f.target_account_id = $1 AND f.account_id > $2 AND u.account_id > $2"
    " ORDER BY f.account_id LIMIT $3";
static const char delete_list_sql[] =
    "SELECT la.list_id FROM list_accounts la WHERE la.account_id = $1 AND la.list_id > $2"
    " ORDER BY la.list_id LIMIT $3";

/* the status' facts every page uses */
typedef struct job_ctx {
    fanout_worker *w;
    const fanout_job *job;
    cache_status *st;
    cache_filter_status fs;
    char author[24];
    cache_buf check; /* int8[] literal: author, mentions, reblogged author and its mentions */
    char blockers[64];
    char reply_target[24]; /* "" = NULL */
    cache_buf mention_only;
    bool restrict_mentions; /* direct/limited: only mentioned followers */
    cache_buf event;
    /* page buffers, batch_size entries each */
    int64_t *ids;
    char **langs;
    bool *hide;
    int64_t *owners;
    int *policies;
    bool *follows_target;
    bool *target_in_list;
    int *results;
    int64_t *deliver;
    int64_t *added;
    /* the job-level relations */
    cache_idset blocking, muting, blocked_by, blocked_by_reblog, exclusive;
    /* where the time went, for the debug log */
    double pg_wait_ms, redis_ms;
    int pages;
} job_ctx;

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void ctx_free(job_ctx *j)
{
    cache_status_free(j->st);
    cache_buf_free(&j->event);
    cache_buf_free(&j->check);
    cache_buf_free(&j->mention_only);
    free(j->ids);
    free(j->langs);
    free(j->hide);
    free(j->owners);
    free(j->policies);
    free(j->follows_target);
    free(j->target_in_list);
    free(j->results);
    free(j->deliver);
    free(j->added);
    cache_idset_free(&j->blocking);
    cache_idset_free(&j->muting);
    cache_idset_free(&j->blocked_by);
    cache_idset_free(&j->blocked_by_reblog);
    cache_idset_free(&j->exclusive);
}

static bool ctx_alloc(job_ctx *j, size_t batch)
{
    j->ids = malloc(batch * sizeof(*j->ids));
    j->langs = malloc(batch * sizeof(*j->langs));
    j->hide = malloc(batch * sizeof(*j->hide));
    j->owners = malloc(batch * sizeof(*j->owners));
    j->policies = malloc(batch * sizeof(*j->policies));
    j->follows_target = malloc(batch * sizeof(*j->follows_target));
    j->target_in_list = malloc(batch * sizeof(*j->target_in_list));
    j->results = malloc(batch * sizeof(*j->results));
    j->deliver = malloc(batch * sizeof(*j->deliver));
    j->added = malloc(batch * sizeof(*j->added));
    cache_idset_init(&j->blocking);
    cache_idset_init(&j->muting);
    cache_idset_init(&j->blocked_by);
    cache_idset_init(&j->blocked_by_reblog);
    cache_idset_init(&j->exclusive);
    return j->ids && j->langs && j->hide && j->owners && j->policies && j->follows_target &&
           j->target_in_list && j->results && j->deliver && j->added;
}

/* an int8[] literal of ids */
static void id_literal(cache_buf *b, const int64_t *first, size_t nfirst, const cache_mention *m,
                       size_t nm)
{
    cache_buf_puts(b, "{");
    bool any = false;
    for (size_t i = 0; i < nfirst; i++, any = true)
        cache_buf_printf(b, any ? ",%lld" : "%lld", (long long)first[i]);
    for (size_t i = 0; i < nm; i++, any = true)
        cache_buf_printf(b, any ? ",%lld" : "%lld", (long long)m[i].account_id);
    cache_buf_puts(b, "}");
}

/* fill the status-level parameters; false when memory ran out */
static bool ctx_prepare(job_ctx *j)
{
    const cache_status *s = j->st;
    cache_status_filter_view(s, &j->fs);
    if (s->reblog_of_id && !s->reblog)
        j->fs.reblog_account_id = 0; /* the reblogged status is gone */
    snprintf(j->author, sizeof(j->author), "%lld", (long long)s->account_id);
    /* everyone whose block or mute hides the status */
    id_literal(&j->check, &s->account_id, 1, s->mentions, s->n_mentions);
    if (s->reblog) {
        j->check.len--; /* reopen the literal */
        cache_buf_printf(&j->check, ",%lld", (long long)s->reblog->account_id);
        for (size_t i = 0; i < s->reblog->n_mentions; i++)
            cache_buf_printf(&j->check, ",%lld", (long long)s->reblog->mentions[i].account_id);
        cache_buf_puts(&j->check, "}");
        snprintf(j->blockers, sizeof(j->blockers), "{%lld,%lld}", (long long)s->account_id,
                 (long long)s->reblog->account_id);
    } else {
        snprintf(j->blockers, sizeof(j->blockers), "{%lld}", (long long)s->account_id);
    }
    /* replies to a third account need the follows of that account */
    j->reply_target[0] = '\0';
    if (s->in_reply_to_account_id && s->in_reply_to_account_id != s->account_id)
        snprintf(j->reply_target, sizeof(j->reply_target), "%lld",
                 (long long)s->in_reply_to_account_id);
    /* direct and limited statuses reach only the mentioned followers */
    j->restrict_mentions = s->visibility >= CACHE_VIS_DIRECT;
    id_literal(&j->mention_only, NULL, 0, s->mentions, s->n_mentions);
    return !j->check.oom && !j->mention_only.oom;
}

/* send the query for the page after cursor */
static bool send_page(job_ctx *j, const char *sql, int64_t cursor)
{
    char cur[24], lim[16];
    snprintf(cur, sizeof(cur), "%lld", (long long)cursor);
    snprintf(lim, sizeof(lim), "%d", j->w->cfg->batch_size);
    /* $5: direct and limited statuses reach only mentioned followers, and no list */
    const char *params[5] = {j->author, cur, lim, j->reply_target[0] ? j->reply_target : NULL,
                             j->restrict_mentions ? j->mention_only.data : NULL};
    if (!PQsendQueryParams(j->w->pg, sql, 5, NULL, params, NULL, NULL, 0)) {
        log_warning("fanout: %s", fanout_pg_error(j->w->pg));
        return false;
    }
    return true;
}

/* the single result of a sent query (NULL on error, after draining) */
static PGresult *get_page(job_ctx *j)
{
    PGresult *res = NULL, *r;
    while ((r = PQgetResult(j->w->pg)) != NULL) {
        if (res)
            PQclear(res);
        res = r;
    }
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_warning("fanout page query: %s", fanout_pg_error(j->w->pg));
        PQclear(res);
        return NULL;
    }
    return res;
}

static int64_t col_int(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* a page result into the page arrays (langs point into res) */
static size_t parse_page(job_ctx *j, PGresult *res, bool lists)
{
    size_t n = (size_t)PQntuples(res);
    if (n > (size_t)j->w->cfg->batch_size)
        n = (size_t)j->w->cfg->batch_size;
    for (size_t i = 0; i < n; i++) {
        int row = (int)i;
        j->ids[i] = col_int(res, row, 0);
        j->langs[i] = PQgetisnull(res, row, 1) ? NULL : PQgetvalue(res, row, 1);
        j->hide[i] = PQgetvalue(res, row, 2)[0] == 't';
        j->follows_target[i] = PQgetvalue(res, row, 3)[0] == 't';
        if (lists) {
            j->owners[i] = col_int(res, row, 4);
            j->policies[i] = (int)col_int(res, row, 5);
            j->target_in_list[i] = PQgetvalue(res, row, 6)[0] == 't';
        }
    }
    return n;
}

/* the job-level relations (see job_facts_sql) */
static bool load_job_facts(job_ctx *j)
{
    const char *params[] = {j->author, j->check.data, j->blockers};
    PGresult *res = PQexecParams(j->w->pg, job_facts_sql, 3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_warning("fanout: %s", fanout_pg_error(j->w->pg));
        PQclear(res);
        return false;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        int64_t id = col_int(res, i, 1);
        switch (col_int(res, i, 0)) {
        case 1:
            cache_idset_add(&j->blocking, id);
            break;
        case 2:
            cache_idset_add(&j->muting, id);
            break;
        case 3:
            cache_idset_add(&j->blocked_by, id);
            break;
        case 4:
            cache_idset_add(&j->blocked_by_reblog, id);
            break;
        case 6:
            cache_idset_add(&j->exclusive, id);
            break;
        }
    }
    PQclear(res);
    return true;
}

/* the home filter's facts for receiver (a follower, or a list owner) */
static void facts_for(job_ctx *j, int64_t receiver, const char *langs, bool hide,
                      bool follows_target, cache_filter_facts *f)
{
    memset(f, 0, sizeof(*f));
    f->author_in_exclusive_list = cache_idset_has(&j->exclusive, receiver);
    f->languages = langs;
    f->blocking = cache_idset_has(&j->blocking, receiver);
    f->muting = cache_idset_has(&j->muting, receiver);
    f->blocked_by_author = cache_idset_has(&j->blocked_by, receiver);
    f->blocked_by_reblog_author = cache_idset_has(&j->blocked_by_reblog, receiver);
    if (j->fs.reblog_of_id && j->fs.reblog_account_id == j->fs.account_id)
        f->blocked_by_reblog_author = f->blocked_by_author; /* self-reblog: one CASE row */
    f->follows_reply_target = follows_target;
    f->hides_reblogs = hide;
}

/* wait a little when a test asked for it (to kill a worker in the middle of a job) */
static void debug_delay(job_ctx *j)
{
    if (j->w->cfg->debug_page_delay_ms > 0)
        usleep((useconds_t)j->w->cfg->debug_page_delay_ms * 1000);
}

/* add to feeds and publish; n feeds in j->deliver. -1 on Redis error */
static int deliver_feeds(job_ctx *j, int type, size_t n)
{
    if (n == 0)
        return 0;
    if (cache_feed_add_many(j->w->cache, type, j->deliver, n, j->st->id, j->st->reblog_of_id,
                            CACHE_ADD_IF_EXISTS, j->results) != 0)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (j->results[i] == CACHE_FEED_ADDED)
            j->added[k++] = j->deliver[i];
    atomic_fetch_add(&fanout_stats.deliveries, (long long)k);
    if (k) {
        int p = cache_publish_subscribed(
            j->w->cache, type == CACHE_FEED_LIST ? "timeline:list:" : "timeline:", j->added, k,
            j->event.data, j->event.len);
        if (p > 0)
            atomic_fetch_add(&fanout_stats.published, p);
    }
    return 0;
}

/* walk pages of sql; handle() turns each into deliveries. -1 on error */
static int walk_pages(job_ctx *j, const char *sql, bool home, int stage, int64_t cursor,
                      int (*handle)(job_ctx *, size_t))
{
    if (!send_page(j, sql, cursor))
        return -1;
    for (;;) {
        double t0 = mono_ms();
        PGresult *res = get_page(j);
        j->pg_wait_ms += mono_ms() - t0;
        if (!res)
            return -1;
        size_t n = parse_page(j, res, !home);
        bool more = n == (size_t)j->w->cfg->batch_size;
        int64_t last = n ? j->ids[n - 1] : cursor;
        /* start the next page's query while this one goes to Redis */
        bool sent = more && send_page(j, sql, last);
        t0 = mono_ms();
        int rc = handle(j, n);
        j->redis_ms += mono_ms() - t0;
        j->pages++;
        PQclear(res); /* langs point into it: only now */
        atomic_fetch_add(&fanout_stats.pages, 1);
        if (rc != 0 || (more && !sent)) {
            if (sent) {
                PGresult *drop = get_page(j);
                PQclear(drop);
            }
            return -1;
        }
        fanout_progress_save(j->w, stage, last);
        debug_delay(j);
        if (!more)
            return 0;
    }
}

static int handle_followers(job_ctx *j, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        cache_filter_facts f;
        facts_for(j, j->ids[i], j->langs[i], j->hide[i], j->follows_target[i], &f);
        if (cache_filter_home(&j->fs, j->ids[i], &f, false) == CACHE_FILTER_NONE)
            j->deliver[k++] = j->ids[i];
    }
    atomic_fetch_add(&fanout_stats.filtered, (long long)(n - k));
    return deliver_feeds(j, CACHE_FEED_HOME, k);
}

static int handle_lists(job_ctx *j, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (cache_filter_list(&j->fs, j->owners[i], j->policies[i], j->target_in_list[i]) !=
            CACHE_FILTER_NONE)
            continue;
        cache_filter_facts f;
        facts_for(j, j->owners[i], j->langs[i], j->hide[i], j->follows_target[i], &f);
        if (cache_filter_home(&j->fs, j->owners[i], &f, true) == CACHE_FILTER_NONE)
            j->deliver[k++] = j->ids[i];
    }
    atomic_fetch_add(&fanout_stats.filtered, (long long)(n - k));
    return deliver_feeds(j, CACHE_FEED_LIST, k);
}

/* SET NX a marker on the pubsub Redis: true the first time (so replays publish nothing) */
static bool first_time(cache *c, const char *key)
{
    redisContext *ctx = cache_pubsub_ctx(c);
    if (!ctx)
        return false;
    redisReply *r = redisCommand(ctx, "SET %s 1 NX EX 86400", key);
    if (!r) {
        cache_ctx_broken(c, ctx);
        return false;
    }
    bool first = r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    return first;
}

static void publish_public(cache *c, const char *payload, size_t len, bool local)
{
    redisContext *ctx = cache_pubsub_ctx(c);
    if (!ctx)
        return;
    const char *argv[] = {"PUBLISH", "timeline:public", payload};
    size_t lens[] = {7, 15, len};
    int n = 1;
    if (redisAppendCommandArgv(ctx, 3, argv, lens) != REDIS_OK)
        goto broken;
    if (local) {
        const char *argv2[] = {"PUBLISH", "timeline:public:local", payload};
        size_t lens2[] = {7, 21, len};
        if (redisAppendCommandArgv(ctx, 3, argv2, lens2) != REDIS_OK)
            goto broken;
        n++;
    }
    redisReply *r[2];
    if (cache_read_replies(c, ctx, (size_t)n, r) == 0)
        for (int i = 0; i < n; i++)
            freeReplyObject(r[i]);
    return;
broken:
    cache_ctx_broken(c, ctx);
}

/* the delete job leaves tusk:deleted:<id> behind; is it there? */
static bool tombstoned(cache *c, int64_t status_id)
{
    redisContext *ctx = cache_queue_ctx(c);
    if (!ctx)
        return false;
    redisReply *r = redisCommand(ctx, "EXISTS tusk:deleted:%lld", (long long)status_id);
    if (!r) {
        cache_ctx_broken(c, ctx);
        return false;
    }
    bool v = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    return v;
}

int fanout_deliver_created(fanout_worker *w, const fanout_job *job)
{
    job_ctx j;
    memset(&j, 0, sizeof(j));
    j.w = w;
    j.job = job;
    cache_buf_init(&j.event);
    cache_buf_init(&j.check);
    cache_buf_init(&j.mention_only);
    int rc = FANOUT_RETRY;
    char err[256];
    if (!ctx_alloc(&j, (size_t)w->cfg->batch_size))
        goto out;
    if (cache_pg_min_lsn(w->pg, job->lsn, w->cfg->pg_min_lsn_token, err, sizeof(err)) != 0) {
        log_warning("fanout: %s", err);
        goto out;
    }
    cache_status *st[1];
    if (cache_status_fetch(w->cache, w->pg, &job->status_id, 1, st, err, sizeof(err)) != 0) {
        log_warning("fanout: loading status %lld: %s", (long long)job->status_id, err);
        goto out;
    }
    if (!st[0]) {
        /* deleted before it was fanned out (or never committed): nothing to do */
        log_debug("fanout: status %lld is gone", (long long)job->status_id);
        rc = FANOUT_DONE;
        goto out;
    }
    j.st = st[0];
    if (tombstoned(w->cache, job->status_id)) {
        rc = FANOUT_DONE;
        goto out;
    }
    if (!ctx_prepare(&j))
        goto out;
    if (!load_job_facts(&j))
        goto out;
    cache_buf json;
    cache_buf_init(&json);
    cache_render_status(&json, j.st, cache_get_config(w->cache), NULL);
    cache_event_update(&j.event, json.data, json.len);
    cache_buf_free(&json);
    if (j.event.oom)
        goto out;

    double started = mono_ms();
    int stage;
    int64_t cursor;
    fanout_progress_load(w, &stage, &cursor);
    bool wide = j.st->visibility <= CACHE_VIS_PRIVATE;
    if (stage <= STAGE_SELF) {
        /* Mastodon's deliver_to_self: local authors see their own statuses */
        if (!j.st->account.domain) {
            j.deliver[0] = j.st->account_id;
            if (deliver_feeds(&j, CACHE_FEED_HOME, 1) != 0)
                goto out;
        }
        fanout_progress_save(w, STAGE_FOLLOWERS, 0);
        stage = STAGE_FOLLOWERS;
        cursor = 0;
    }
    if (stage == STAGE_FOLLOWERS) {
        if (walk_pages(&j, home_page_sql, true, STAGE_FOLLOWERS, cursor, handle_followers) != 0)
            goto out;
        fanout_progress_save(w, STAGE_LISTS, 0);
        stage = STAGE_LISTS;
        cursor = 0;
    }
    if (stage == STAGE_LISTS) {
        if (wide && walk_pages(&j, list_page_sql, false, STAGE_LISTS, cursor, handle_lists) != 0)
            goto out;
        stage = STAGE_PUBLIC;
    }
    if (stage == STAGE_PUBLIC && j.st->visibility == CACHE_VIS_PUBLIC && !j.st->reblog_of_id) {
        char key[48];
        snprintf(key, sizeof(key), "tusk:published:%lld", (long long)j.st->id);
        if (first_time(w->cache, key))
            publish_public(w->cache, j.event.data, j.event.len, !j.st->account.domain);
    }
    if (tombstoned(w->cache, job->status_id)) {
        /* deleted while this job ran: the delete job may have passed feeds we filled after
         * it, so run the removal once more */
        fanout_job del;
        fanout_job_init(&del);
        del.kind = FANOUT_JOB_STATUS_DELETED;
        del.status_id = j.st->id;
        del.account_id = j.st->account_id;
        del.reblog_of_id = j.st->reblog_of_id;
        del.visibility = j.st->visibility;
        if (fanout_enqueue(w->cache, &del) != 0)
            goto out;
    }
    log_debug("fanout: status %lld: %d pages in %.1f ms (waiting for PostgreSQL %.1f ms, "
              "filters and Redis %.1f ms)",
              (long long)job->status_id, j.pages, mono_ms() - started, j.pg_wait_ms, j.redis_ms);
    rc = FANOUT_DONE;
out:
    ctx_free(&j);
    return rc;
}

/* ------------------------------------------------------------------ deletion */

/* plain id pages for deletion */
static int walk_ids(fanout_worker *w, const char *sql, int64_t account_id, int stage,
                    int64_t cursor, int type, const fanout_job *job, const cache_buf *event,
                    int64_t *ids, int *results, int64_t *removed)
{
    char acc[24], cur[24], lim[16];
    snprintf(acc, sizeof(acc), "%lld", (long long)account_id);
    snprintf(lim, sizeof(lim), "%d", w->cfg->batch_size);
    for (;;) {
        snprintf(cur, sizeof(cur), "%lld", (long long)cursor);
        const char *params[] = {acc, cur, lim};
        PGresult *res = PQexecParams(w->pg, sql, 3, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            log_warning("fanout delete: %s", fanout_pg_error(w->pg));
            PQclear(res);
            return -1;
        }
        size_t n = (size_t)PQntuples(res);
        for (size_t i = 0; i < n; i++)
            ids[i] = strtoll(PQgetvalue(res, (int)i, 0), NULL, 10);
        PQclear(res);
        if (n && cache_feed_remove_many(w->cache, type, ids, n, job->status_id, job->reblog_of_id,
                                        results) != 0)
            return -1;
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (results[i] == 1)
                removed[k++] = ids[i];
        if (k)
            cache_publish_subscribed(
                w->cache, type == CACHE_FEED_LIST ? "timeline:list:" : "timeline:", removed, k,
                event->data, event->len);
        atomic_fetch_add(&fanout_stats.pages, 1);
        if (n)
            cursor = ids[n - 1];
        fanout_progress_save(w, stage, cursor);
        if (n < (size_t)w->cfg->batch_size)
            return 0;
    }
}

int fanout_deliver_deleted(fanout_worker *w, const fanout_job *job)
{
    size_t batch = (size_t)w->cfg->batch_size;
    int64_t *ids = malloc(batch * sizeof(*ids));
    int64_t *removed = malloc(batch * sizeof(*removed));
    int *results = malloc(batch * sizeof(*results));
    cache_buf event;
    cache_buf_init(&event);
    int rc = FANOUT_RETRY;
    char err[256];
    if (!ids || !removed || !results || !cache_event_delete(&event, job->status_id))
        goto out;
    if (cache_pg_min_lsn(w->pg, job->lsn, w->cfg->pg_min_lsn_token, err, sizeof(err)) != 0) {
        log_warning("fanout: %s", err);
        goto out;
    }
    /* a create job still running (or replayed later) sees this and cleans up after itself */
    redisContext *qctx = cache_queue_ctx(w->cache);
    if (!qctx)
        goto out;
    redisReply *tr =
        redisCommand(qctx, "SET tusk:deleted:%lld 1 EX 86400", (long long)job->status_id);
    if (!tr) {
        cache_ctx_broken(w->cache, qctx);
        goto out;
    }
    freeReplyObject(tr);
    cache_status_invalidate(w->cache, &job->status_id, 1);
    int stage;
    int64_t cursor;
    fanout_progress_load(w, &stage, &cursor);
    if (stage <= STAGE_SELF) {
        int res;
        if (cache_feed_remove_many(w->cache, CACHE_FEED_HOME, &job->account_id, 1, job->status_id,
                                   job->reblog_of_id, &res) != 0)
            goto out;
        if (res == 1)
            cache_publish_subscribed(w->cache, "timeline:", &job->account_id, 1, event.data,
                                     event.len);
        stage = STAGE_FOLLOWERS;
        cursor = 0;
    }
    if (stage == STAGE_FOLLOWERS) {
        if (walk_ids(w, delete_home_sql, job->account_id, STAGE_FOLLOWERS, cursor, CACHE_FEED_HOME,
                     job, &event, ids, results, removed) != 0)
            goto out;
        fanout_progress_save(w, STAGE_LISTS, 0);
        stage = STAGE_LISTS;
        cursor = 0;
    }
    if (stage == STAGE_LISTS) {
        if (walk_ids(w, delete_list_sql, job->account_id, STAGE_LISTS, cursor, CACHE_FEED_LIST, job,
                     &event, ids, results, removed) != 0)
            goto out;
    }
    if ((job->visibility == CACHE_VIS_PUBLIC || job->visibility < 0) && !job->reblog_of_id) {
        char key[48];
        snprintf(key, sizeof(key), "tusk:published:del:%lld", (long long)job->status_id);
        if (first_time(w->cache, key))
            publish_public(w->cache, event.data, event.len, false);
    }
    rc = FANOUT_DONE;
out:
    free(ids);
    free(removed);
    free(results);
    cache_buf_free(&event);
    return rc;
}
