/*
 * The consumer threads. Each queue of the `queues` setting gets as many threads as its
 * concurrency; a thread serves its own queue and, when that is empty, the queues listed
 * after it (lower priority), so idle high-priority workers help with pull work but a busy
 * default queue is never slowed by pull jobs on its threads.
 *
 * Delivery is at-least-once (Redis Streams consumer groups): a thread reads an entry with
 * XREADGROUP (it becomes pending for this consumer), runs the job, and only after the job's
 * effects are written does XACK + XDEL. A worker that dies leaves its entries pending; every
 * thread periodically XAUTOCLAIMs entries idle for claim_idle_ms and runs them. A long job
 * keeps its entry fresh (XCLAIM ... JUSTID after each page) so it is not claimed while its
 * worker is alive, and saves its progress so a taker resumes at the page in flight. An entry
 * delivered more than max_attempts times goes to tusk:queue:dead.
 */
#include "fanout/internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct worker_thread {
    pthread_t tid;
    bool started;
    const fanout_config *cfg;
    fanout_worker w;
    int first_queue; /* serves queues[first_queue .. n_queues-1] */
    char streams[FANOUT_MAX_QUEUES][64];
    int n_streams;
    char consumer[192];
    bool groups_ready;
    double next_claim_ms;
} worker_thread;

static worker_thread *threads;
static int n_threads;

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void sleep_ms(int ms)
{
    usleep((useconds_t)ms * 1000);
}

const char *fanout_pg_error(PGconn *conn)
{
    static _Thread_local char buf[512];
    const char *m = conn ? PQerrorMessage(conn) : "no connection";
    size_t n = 0;
    for (; *m && n < sizeof(buf) - 1; m++) {
        char ch = *m == '\n' || *m == '\t' ? ' ' : *m;
        if (ch == ' ' && (n == 0 || buf[n - 1] == ' '))
            continue;
        buf[n++] = ch;
    }
    while (n && buf[n - 1] == ' ')
        n--;
    buf[n] = '\0';
    return buf;
}

bool fanout_worker_pg(fanout_worker *w)
{
    if (w->pg && PQstatus(w->pg) == CONNECTION_OK)
        return true;
    if (w->pg) {
        PQfinish(w->pg);
        w->pg = NULL;
    }
    w->pg = PQconnectdb(w->cfg->database);
    if (PQstatus(w->pg) != CONNECTION_OK) {
        log_warning("worker %d: cannot connect to PostgreSQL: %s", w->id, fanout_pg_error(w->pg));
        PQfinish(w->pg);
        w->pg = NULL;
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------ progress */

static void progress_key(fanout_worker *w, char *buf, size_t cap)
{
    snprintf(buf, cap, "tusk:progress:%s:%s", w->stream ? w->stream : "",
             w->entry_id ? w->entry_id : "");
}

void fanout_progress_save(fanout_worker *w, int stage, int64_t cursor)
{
    if (!w->entry_id)
        return;
    redisContext *ctx = cache_queue_ctx(w->cache);
    if (!ctx)
        return;
    char key[160], val[48];
    progress_key(w, key, sizeof(key));
    snprintf(val, sizeof(val), "%d:%lld", stage, (long long)cursor);
    if (redisAppendCommand(ctx, "SET %s %s EX 86400", key, val) != REDIS_OK ||
        redisAppendCommand(ctx, "XCLAIM %s %s %s 0 %s JUSTID", w->stream, FANOUT_GROUP, w->consumer,
                           w->entry_id) != REDIS_OK) {
        cache_ctx_broken(w->cache, ctx);
        return;
    }
    redisReply *r[2];
    if (cache_read_replies(w->cache, ctx, 2, r) == 0) {
        freeReplyObject(r[0]);
        freeReplyObject(r[1]);
    }
}

void fanout_progress_load(fanout_worker *w, int *stage, int64_t *cursor)
{
    *stage = 0;
    *cursor = 0;
    if (!w->entry_id)
        return;
    redisContext *ctx = cache_queue_ctx(w->cache);
    if (!ctx)
        return;
    char key[160];
    progress_key(w, key, sizeof(key));
    redisReply *r = redisCommand(ctx, "GET %s", key);
    if (!r) {
        cache_ctx_broken(w->cache, ctx);
        return;
    }
    if (r->type == REDIS_REPLY_STRING) {
        int s;
        long long c;
        if (sscanf(r->str, "%d:%lld", &s, &c) == 2 && s >= 0 && s < 16 && c >= 0) {
            *stage = s;
            *cursor = c;
            log_info("worker %d: resuming %s at stage %d after %lld", w->id, w->entry_id, s, c);
        }
    }
    freeReplyObject(r);
}

/* ------------------------------------------------------------------ jobs */

static int for_owned_lists(fanout_worker *w, int64_t owner, int64_t other, bool clear)
{
    char id[24], err[256];
    snprintf(id, sizeof(id), "%lld", (long long)owner);
    const char *params[] = {id};
    PGresult *res = PQexecParams(w->pg, "SELECT id FROM lists WHERE account_id = $1", 1, NULL,
                                 params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_warning("fanout: %s", fanout_pg_error(w->pg));
        PQclear(res);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < PQntuples(res) && rc == 0; i++) {
        int64_t list = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        int n = clear ? cache_feed_clear_account(w->cache, w->pg, CACHE_FEED_LIST, list, other, err,
                                                 sizeof(err))
                      : cache_feed_unmerge(w->cache, w->pg, CACHE_FEED_LIST, list, other, err,
                                           sizeof(err));
        if (n < 0) {
            log_warning("fanout: list %lld: %s", (long long)list, err);
            rc = -1;
        }
    }
    PQclear(res);
    return rc;
}

int fanout_run_job(fanout_worker *w, const fanout_job *job)
{
    char err[512];
    if (!fanout_worker_pg(w))
        return FANOUT_RETRY;
    if (job->kind == FANOUT_JOB_STATUS_CREATED)
        return fanout_deliver_created(w, job);
    if (job->kind == FANOUT_JOB_STATUS_DELETED)
        return fanout_deliver_deleted(w, job);
    if (cache_pg_min_lsn(w->pg, job->lsn, w->cfg->pg_min_lsn_token, err, sizeof(err)) != 0) {
        log_warning("fanout: %s", err);
        return FANOUT_RETRY;
    }
    int n = 0;
    switch (job->kind) {
    case FANOUT_JOB_FOLLOW:
        n = cache_feed_merge(w->cache, w->pg, CACHE_FEED_HOME, job->account_id,
                             job->target_account_id, err, sizeof(err));
        break;
    case FANOUT_JOB_UNFOLLOW:
        n = cache_feed_unmerge(w->cache, w->pg, CACHE_FEED_HOME, job->account_id,
                               job->target_account_id, err, sizeof(err));
        if (n >= 0 && for_owned_lists(w, job->account_id, job->target_account_id, false) != 0)
            return FANOUT_RETRY;
        break;
    case FANOUT_JOB_BLOCK:
        /* Mastodon: AfterBlockService clears the blocker's feeds; the mutual unfollow that
         * BlockService performs unmerges the blocker's statuses from the target's feeds */
        n = cache_feed_clear_account(w->cache, w->pg, CACHE_FEED_HOME, job->account_id,
                                     job->target_account_id, err, sizeof(err));
        if (n >= 0 && for_owned_lists(w, job->account_id, job->target_account_id, true) != 0)
            return FANOUT_RETRY;
        if (n >= 0)
            n = cache_feed_unmerge(w->cache, w->pg, CACHE_FEED_HOME, job->target_account_id,
                                   job->account_id, err, sizeof(err));
        if (n >= 0 && for_owned_lists(w, job->target_account_id, job->account_id, false) != 0)
            return FANOUT_RETRY;
        break;
    case FANOUT_JOB_MUTE:
        n = cache_feed_clear_account(w->cache, w->pg, CACHE_FEED_HOME, job->account_id,
                                     job->target_account_id, err, sizeof(err));
        if (n >= 0 && for_owned_lists(w, job->account_id, job->target_account_id, true) != 0)
            return FANOUT_RETRY;
        break;
    case FANOUT_JOB_LIST_ADD:
        n = cache_feed_merge(w->cache, w->pg, CACHE_FEED_LIST, job->list_id, job->account_id, err,
                             sizeof(err));
        break;
    case FANOUT_JOB_LIST_REMOVE:
        n = cache_feed_unmerge(w->cache, w->pg, CACHE_FEED_LIST, job->list_id, job->account_id, err,
                               sizeof(err));
        break;
    case FANOUT_JOB_REGENERATE: {
        int64_t id = job->feed_type == CACHE_FEED_LIST ? job->list_id : job->account_id;
        n = cache_feed_populate(w->cache, w->pg, job->feed_type, id, err, sizeof(err));
        if (n >= 0)
            cache_regeneration_release(w->cache, job->feed_type, id);
        break;
    }
    default:
        return FANOUT_BAD;
    }
    if (n < 0) {
        log_warning("fanout: %s job: %s", fanout_job_kind_name(job->kind), err);
        return FANOUT_RETRY;
    }
    return FANOUT_DONE;
}

/* ------------------------------------------------------------------ stream handling */

static bool reply_is_error(const redisReply *r, const char *prefix)
{
    return r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, prefix, strlen(prefix)) == 0;
}

/* XGROUP CREATE ... 0 MKSTREAM for every served stream ("0": entries the relay added while no
 * group existed, e.g. right after Redis restarted, are not skipped) */
static bool ensure_groups(worker_thread *t, redisContext *ctx)
{
    for (int i = 0; i < t->n_streams; i++) {
        redisReply *r =
            redisCommand(ctx, "XGROUP CREATE %s %s 0 MKSTREAM", t->streams[i], FANOUT_GROUP);
        if (!r) {
            cache_ctx_broken(t->w.cache, ctx);
            return false;
        }
        bool ok = r->type != REDIS_REPLY_ERROR || reply_is_error(r, "BUSYGROUP");
        if (!ok)
            log_warning("XGROUP CREATE %s: %s", t->streams[i], r->str);
        freeReplyObject(r);
        if (!ok)
            return false;
    }
    t->groups_ready = true;
    return true;
}

/* XACK + XDEL + progress cleanup, one round trip */
static void finish_entry(worker_thread *t, const char *stream, const char *id)
{
    redisContext *ctx = cache_queue_ctx(t->w.cache);
    if (!ctx)
        return;
    char key[160];
    snprintf(key, sizeof(key), "tusk:progress:%s:%s", stream, id);
    if (redisAppendCommand(ctx, "XACK %s %s %s", stream, FANOUT_GROUP, id) != REDIS_OK ||
        redisAppendCommand(ctx, "XDEL %s %s", stream, id) != REDIS_OK ||
        redisAppendCommand(ctx, "DEL %s", key) != REDIS_OK) {
        cache_ctx_broken(t->w.cache, ctx);
        return;
    }
    redisReply *r[3];
    if (cache_read_replies(t->w.cache, ctx, 3, r) == 0)
        for (int i = 0; i < 3; i++)
            freeReplyObject(r[i]);
}

/* move an entry that can never run to tusk:queue:dead, then finish it */
static void dead_letter(worker_thread *t, const char *stream, const redisReply *entry,
                        const char *why)
{
    redisContext *ctx = cache_queue_ctx(t->w.cache);
    if (!ctx)
        return;
    const redisReply *fields = entry->elements > 1 ? entry->element[1] : NULL;
    size_t nf = fields && fields->type == REDIS_REPLY_ARRAY ? fields->elements : 0;
    const char **argv = malloc((9 + nf) * sizeof(*argv));
    size_t *lens = malloc((9 + nf) * sizeof(*lens));
    if (argv && lens) {
        size_t n = 0;
#define A(s, l) (argv[n] = (s), lens[n] = (l), n++)
        A("XADD", 4);
        A("tusk:queue:dead", 15);
        A("*", 1);
        A("stream", 6);
        A(stream, strlen(stream));
        A("entry", 5);
        A(entry->element[0]->str, entry->element[0]->len);
        A("error", 5);
        A(why, strlen(why));
        for (size_t i = 0; i < nf; i++)
            A(fields->element[i]->str ? fields->element[i]->str : "",
              fields->element[i]->str ? fields->element[i]->len : 0);
#undef A
        redisReply *r = redisCommandArgv(ctx, (int)n, argv, lens);
        if (r)
            freeReplyObject(r);
        else
            cache_ctx_broken(t->w.cache, ctx);
    }
    free(argv);
    free(lens);
    atomic_fetch_add(&fanout_stats.jobs_dead, 1);
    log_error("job %s on %s moved to tusk:queue:dead: %s", entry->element[0]->str, stream, why);
    finish_entry(t, stream, entry->element[0]->str);
}

/* run one stream entry ([id, [field, value, ...]]); false when it must be retried */
static bool process_entry(worker_thread *t, const char *stream, const redisReply *entry)
{
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements < 2 ||
        entry->element[0]->type != REDIS_REPLY_STRING)
        return true;
    const char *id = entry->element[0]->str;
    const redisReply *fields = entry->element[1];
    if (fields->type != REDIS_REPLY_ARRAY) {
        /* the entry was deleted (XDEL by a finished duplicate): just acknowledge */
        finish_entry(t, stream, id);
        return true;
    }
    const char *strs[64];
    size_t lens[64];
    size_t n = fields->elements < 64 ? fields->elements : 64;
    for (size_t i = 0; i < n; i++) {
        strs[i] = fields->element[i]->str ? fields->element[i]->str : "";
        lens[i] = fields->element[i]->str ? fields->element[i]->len : 0;
    }
    fanout_job job;
    char err[160];
    if (fanout_job_decode(strs, lens, n, &job, err, sizeof(err)) != 0) {
        dead_letter(t, stream, entry, err);
        return true;
    }
    t->w.stream = stream;
    t->w.entry_id = id;
    double t0 = mono_ms();
    int rc = fanout_run_job(&t->w, &job);
    /* a passing database or Redis hiccup: try again here before leaving the entry pending
     * for XAUTOCLAIM (claim_idle_ms later) */
    for (int attempt = 0; rc == FANOUT_RETRY && attempt < 3 && !atomic_load(&fanout_stop);
         attempt++) {
        atomic_fetch_add(&fanout_stats.jobs_failed, 1);
        sleep_ms(100 << (2 * attempt));
        rc = fanout_run_job(&t->w, &job);
    }
    t->w.stream = NULL;
    t->w.entry_id = NULL;
    if (rc == FANOUT_DONE) {
        finish_entry(t, stream, id);
        atomic_fetch_add(&fanout_stats.jobs_done[job.kind], 1);
        log_debug("worker %d: %s %s done in %.1f ms", t->w.id, fanout_job_kind_name(job.kind), id,
                  mono_ms() - t0);
        return true;
    }
    if (rc == FANOUT_BAD) {
        dead_letter(t, stream, entry, "job cannot be processed");
        return true;
    }
    atomic_fetch_add(&fanout_stats.jobs_failed, 1);
    return false;
}

/* run each entry of an XREADGROUP stream reply; false if one must be retried */
static bool process_entries(worker_thread *t, const char *stream, const redisReply *entries)
{
    bool ok = true;
    for (size_t i = 0; i < entries->elements && !atomic_load(&fanout_stop); i++)
        if (!process_entry(t, stream, entries->element[i]))
            ok = false;
    return ok;
}

/* times an entry was delivered (XPENDING), 0 when unknown */
static long long delivery_count(worker_thread *t, redisContext *ctx, const char *stream,
                                const char *id)
{
    redisReply *r = redisCommand(ctx, "XPENDING %s %s %s %s 1", stream, FANOUT_GROUP, id, id);
    if (!r) {
        cache_ctx_broken(t->w.cache, ctx);
        return 0;
    }
    long long n = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
        r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 4)
        n = r->element[0]->element[3]->integer;
    freeReplyObject(r);
    return n;
}

/* take over entries whose worker went quiet (XAUTOCLAIM), a few per stream per pass */
static void claim_pass(worker_thread *t)
{
    for (int s = 0; s < t->n_streams && !atomic_load(&fanout_stop); s++) {
        redisContext *ctx = cache_queue_ctx(t->w.cache);
        if (!ctx)
            return;
        redisReply *r = redisCommand(ctx, "XAUTOCLAIM %s %s %s %d 0-0 COUNT 4", t->streams[s],
                                     FANOUT_GROUP, t->consumer, t->cfg->claim_idle_ms);
        if (!r) {
            cache_ctx_broken(t->w.cache, ctx);
            return;
        }
        if (reply_is_error(r, "NOGROUP"))
            t->groups_ready = false;
        if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
            r->element[1]->type == REDIS_REPLY_ARRAY) {
            const redisReply *entries = r->element[1];
            for (size_t i = 0; i < entries->elements; i++) {
                const redisReply *e = entries->element[i];
                if (e->type != REDIS_REPLY_ARRAY || e->elements < 2)
                    continue;
                atomic_fetch_add(&fanout_stats.jobs_claimed, 1);
                log_info("worker %d: claimed %s from %s", t->w.id, e->element[0]->str,
                         t->streams[s]);
                long long times = delivery_count(t, ctx, t->streams[s], e->element[0]->str);
                if (times > t->cfg->max_attempts) {
                    dead_letter(t, t->streams[s], e, "too many attempts");
                    continue;
                }
                process_entry(t, t->streams[s], e);
                ctx = cache_queue_ctx(t->w.cache);
                if (!ctx)
                    break;
            }
        }
        freeReplyObject(r);
    }
}

/* XREADGROUP on the given streams; the reply or NULL (nothing, or an error) */
static redisReply *read_group(worker_thread *t, int from, int count, int block_ms,
                              const char *start_id)
{
    redisContext *ctx = cache_queue_ctx(t->w.cache);
    if (!ctx)
        return NULL;
    const char *argv[8 + 2 * FANOUT_MAX_QUEUES];
    char blk[16];
    int n = 0;
    argv[n++] = "XREADGROUP";
    argv[n++] = "GROUP";
    argv[n++] = FANOUT_GROUP;
    argv[n++] = t->consumer;
    argv[n++] = "COUNT";
    argv[n++] = "1";
    if (block_ms > 0) {
        snprintf(blk, sizeof(blk), "%d", block_ms);
        argv[n++] = "BLOCK";
        argv[n++] = blk;
    }
    argv[n++] = "STREAMS";
    for (int i = from; i < from + count; i++)
        argv[n++] = t->streams[i];
    for (int i = 0; i < count; i++)
        argv[n++] = start_id;
    redisReply *r = redisCommandArgv(ctx, n, argv, NULL);
    if (!r) {
        /* a BLOCK read that times out on the socket is not an error worth a log line */
        cache_ctx_broken(t->w.cache, ctx);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        if (reply_is_error(r, "NOGROUP"))
            t->groups_ready = false;
        else
            log_warning("XREADGROUP: %s", r->str);
        freeReplyObject(r);
        return NULL;
    }
    if (r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* the stream name of a reply element [name, entries] */
static const char *reply_stream(worker_thread *t, const redisReply *sr)
{
    for (int i = 0; i < t->n_streams; i++)
        if (sr->element[0]->len == strlen(t->streams[i]) &&
            memcmp(sr->element[0]->str, t->streams[i], sr->element[0]->len) == 0)
            return t->streams[i];
    return NULL;
}

/* process a multi-stream XREADGROUP reply in priority order; false if something failed */
static bool process_reply(worker_thread *t, redisReply *r)
{
    bool ok = true;
    for (int s = 0; s < t->n_streams; s++) {
        for (size_t i = 0; i < r->elements; i++) {
            redisReply *sr = r->element[i];
            if (sr->type != REDIS_REPLY_ARRAY || sr->elements != 2)
                continue;
            const char *name = reply_stream(t, sr);
            if (name == t->streams[s] && !process_entries(t, name, sr->element[1]))
                ok = false;
        }
    }
    return ok;
}

static void *worker_main(void *arg)
{
    worker_thread *t = arg;
    /* entries this consumer name already owned (a restart with a fixed consumer_name) */
    bool own_pending = true;
    int backoff = 0;
    while (!atomic_load(&fanout_stop)) {
        redisContext *ctx = cache_queue_ctx(t->w.cache);
        if (!ctx) {
            sleep_ms(200);
            continue;
        }
        if (!t->groups_ready && !ensure_groups(t, ctx)) {
            sleep_ms(200);
            continue;
        }
        if (backoff) {
            sleep_ms(backoff);
        }
        if (own_pending) {
            redisReply *r = read_group(t, 0, t->n_streams, 0, "0");
            own_pending = false;
            if (r) {
                process_reply(t, r);
                freeReplyObject(r);
            }
        }
        double now = mono_ms();
        if (now >= t->next_claim_ms) {
            t->next_claim_ms = now + t->cfg->claim_interval_ms;
            claim_pass(t);
        }
        /* highest priority first, without blocking */
        bool got = false, ok = true;
        for (int s = 0; s < t->n_streams && !got; s++) {
            redisReply *r = read_group(t, s, 1, 0, ">");
            if (!r)
                continue;
            for (size_t i = 0; i < r->elements; i++) {
                redisReply *sr = r->element[i];
                if (sr->type == REDIS_REPLY_ARRAY && sr->elements == 2 &&
                    sr->element[1]->type == REDIS_REPLY_ARRAY && sr->element[1]->elements) {
                    got = true;
                    ok = process_entries(t, t->streams[s], sr->element[1]);
                }
            }
            freeReplyObject(r);
        }
        if (!got) {
            /* nothing anywhere: wait on all of them */
            int wait = t->cfg->block_ms;
            double until_claim = t->next_claim_ms - mono_ms();
            if (until_claim < wait)
                wait = until_claim > 10 ? (int)until_claim : 10;
            redisReply *r = read_group(t, 0, t->n_streams, wait, ">");
            if (r) {
                ok = process_reply(t, r);
                freeReplyObject(r);
            }
        }
        /* a failing job (database or Redis trouble) backs off up to a second */
        backoff = ok ? 0 : (backoff ? (backoff * 2 > 1000 ? 1000 : backoff * 2) : 50);
    }
    if (t->w.pg)
        PQfinish(t->w.pg);
    cache_close(t->w.cache);
    return NULL;
}

int fanout_workers_start(const fanout_config *cfg)
{
    int total = 0;
    for (int q = 0; q < cfg->n_queues; q++)
        total += cfg->queues[q].concurrency;
    threads = calloc(total ? (size_t)total : 1, sizeof(*threads));
    if (!threads)
        return -1;
    int k = 0;
    for (int q = 0; q < cfg->n_queues; q++) {
        for (int c = 0; c < cfg->queues[q].concurrency; c++, k++) {
            worker_thread *t = &threads[k];
            t->cfg = cfg;
            t->w.cfg = cfg;
            t->w.id = k;
            t->w.cache = cache_open(&cfg->cache);
            if (!t->w.cache)
                return -1;
            t->first_queue = q;
            for (int s = q; s < cfg->n_queues; s++)
                fanout_stream_key(t->streams[t->n_streams++], sizeof(t->streams[0]),
                                  cfg->queues[s].name);
            snprintf(t->consumer, sizeof(t->consumer), "%s-%d", cfg->consumer_name, k);
            t->w.consumer = t->consumer;
            if (pthread_create(&t->tid, NULL, worker_main, t) != 0) {
                log_error("cannot start worker thread %d", k);
                return -1;
            }
            t->started = true;
            n_threads = k + 1;
        }
    }
    log_info("%d worker threads started", n_threads);
    return 0;
}

void fanout_workers_join(void)
{
    for (int i = 0; i < n_threads; i++)
        if (threads[i].started)
            pthread_join(threads[i].tid, NULL);
    free(threads);
    threads = NULL;
    n_threads = 0;
}
