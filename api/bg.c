/*
 * The blocking pool: a few threads, each with its own blocking libpq connection and its own
 * cache handle (blocking hiredis), for the work an event loop must not wait on.
 *
 * Why threads and not more async code: the writes that matter (a post, a delete, a follow, a
 * list change) must insert their outbox row with fanout_outbox_* in the same transaction,
 * and those calls, like cache_status_fetch (the status cache's PostgreSQL fallback) and
 * fanout_request_regeneration, take blocking handles. Re-implementing them asynchronously
 * would fork fanout's and cache's logic; running them here keeps one implementation. They
 * are the slow, rare path: a timeline page served from Redis never comes here, only its
 * cache misses do.
 *
 * A job is (run, done, arg) for a worker: run executes on a pool thread with the thread's
 * handles, done then runs on the worker's loop (the job is handed back through the worker's
 * list and its ev_async), so handlers never share state across threads: run fills the job's
 * own struct, done reads it. The worker counts its jobs in flight; at shutdown it waits for
 * them before tearing down its loop, and the pool stops after every worker did.
 */
#include "api/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BG_MAX_QUEUE 10000
#define RECONNECT_PAUSE 0.5 /* seconds between connect attempts after a failure */

typedef struct api_bg_job {
    struct api_bg_job *next;
    api_worker *w;
    api_bg_run_fn run;
    api_bg_done_fn done;
    void *arg;
} api_bg_job;

typedef struct thread_ctx {
    api_bg *bg;
    pthread_t thread;
    bool started;
    api_bg_ctx ctx;
    double last_fail; /* monotonic time of the last failed connect */
} thread_ctx;

struct api_bg {
    api_server *srv;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    api_bg_job *head, *tail;
    size_t qlen;
    bool stopping;
    int nthreads;
    thread_ctx *threads;
};

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* leave the connection clean for the next job: no open transaction, no broken socket */
static void tidy_connection(api_bg_ctx *ctx)
{
    if (!ctx->pg)
        return;
    if (PQstatus(ctx->pg) != CONNECTION_OK) {
        PQfinish(ctx->pg);
        ctx->pg = NULL;
        return;
    }
    PGTransactionStatusType ts = PQtransactionStatus(ctx->pg);
    if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR) {
        log_warning("bg job left a transaction open: rolled back");
        PQclear(PQexec(ctx->pg, "ROLLBACK"));
    } else if (ts != PQTRANS_IDLE) {
        PQfinish(ctx->pg);
        ctx->pg = NULL;
    }
}

/* hand a finished job to its worker */
static void complete(api_bg_job *j)
{
    api_worker *w = j->w;
    j->next = NULL;
    pthread_mutex_lock(&w->bg_lock);
    if (w->bg_tail)
        w->bg_tail->next = j;
    else
        w->bg_head = j;
    w->bg_tail = j;
    pthread_mutex_unlock(&w->bg_lock);
    ev_async_send(w->loop, &w->bg_wake);
}

static void *thread_main(void *arg)
{
    thread_ctx *t = arg;
    api_bg *bg = t->bg;
    for (;;) {
        pthread_mutex_lock(&bg->lock);
        while (!bg->head && !bg->stopping)
            pthread_cond_wait(&bg->cond, &bg->lock);
        api_bg_job *j = bg->head;
        if (!j) {
            pthread_mutex_unlock(&bg->lock);
            break; /* stopping and drained */
        }
        bg->head = j->next;
        if (!bg->head)
            bg->tail = NULL;
        bg->qlen--;
        pthread_mutex_unlock(&bg->lock);
        j->run(&t->ctx, j->arg);
        tidy_connection(&t->ctx);
        complete(j);
    }
    return NULL;
}

/* ==========================================================================================
 * the pool
 */

/* start nthreads threads for srv */
api_bg *api_bg_start(api_server *srv, int nthreads)
{
    api_bg *bg = calloc(1, sizeof(*bg));
    if (!bg)
        return NULL;
    bg->srv = srv;
    bg->nthreads = nthreads > 0 ? nthreads : 1;
    bg->threads = calloc((size_t)bg->nthreads, sizeof(thread_ctx));
    if (!bg->threads) {
        free(bg);
        return NULL;
    }
    pthread_mutex_init(&bg->lock, NULL);
    pthread_cond_init(&bg->cond, NULL);
    for (int i = 0; i < bg->nthreads; i++) {
        thread_ctx *t = &bg->threads[i];
        t->bg = bg;
        t->ctx.cfg = srv->cfg;
        t->ctx.srv = srv;
        t->ctx.cache = cache_open(&srv->cfg->cache);
        if (!t->ctx.cache || pthread_create(&t->thread, NULL, thread_main, t) != 0) {
            log_error("cannot start bg thread %d", i);
            api_bg_stop(bg);
            return NULL;
        }
        t->started = true;
    }
    return bg;
}

/* drain and join */
void api_bg_stop(api_bg *bg)
{
    if (!bg)
        return;
    pthread_mutex_lock(&bg->lock);
    bg->stopping = true;
    pthread_cond_broadcast(&bg->cond);
    pthread_mutex_unlock(&bg->lock);
    for (int i = 0; i < bg->nthreads; i++) {
        thread_ctx *t = &bg->threads[i];
        if (t->started)
            pthread_join(t->thread, NULL);
        if (t->ctx.pg)
            PQfinish(t->ctx.pg);
        cache_close(t->ctx.cache);
    }
    pthread_mutex_destroy(&bg->lock);
    pthread_cond_destroy(&bg->cond);
    free(bg->threads);
    free(bg);
}

/* queue a job */
bool api_bg_submit(api_worker *w, api_bg_run_fn run, api_bg_done_fn done, void *arg)
{
    api_bg *bg = w->srv->bg;
    if (!bg || w->shutting)
        return false; /* a stopping worker only waits for the jobs it has */
    api_bg_job *j = malloc(sizeof(*j));
    if (!j)
        return false;
    j->next = NULL;
    j->w = w;
    j->run = run;
    j->done = done;
    j->arg = arg;
    pthread_mutex_lock(&bg->lock);
    if (bg->stopping || bg->qlen >= BG_MAX_QUEUE) {
        pthread_mutex_unlock(&bg->lock);
        free(j);
        return false;
    }
    if (bg->tail)
        bg->tail->next = j;
    else
        bg->head = j;
    bg->tail = j;
    bg->qlen++;
    pthread_cond_signal(&bg->cond);
    pthread_mutex_unlock(&bg->lock);
    w->bg_pending++;
    return true;
}

/* run the done functions of w's finished jobs (on w's loop) */
void api_bg_worker_drain(api_worker *w)
{
    pthread_mutex_lock(&w->bg_lock);
    api_bg_job *j = w->bg_head;
    w->bg_head = w->bg_tail = NULL;
    pthread_mutex_unlock(&w->bg_lock);
    while (j) {
        api_bg_job *next = j->next;
        w->bg_pending--;
        j->done(j->arg);
        free(j);
        j = next;
    }
}

/* ==========================================================================================
 * helpers for run functions
 */

/* the thread's connection, connected on demand */
PGconn *api_bg_pg(api_bg_ctx *ctx, char *err, size_t errlen)
{
    thread_ctx *t = (thread_ctx *)((char *)ctx - offsetof(thread_ctx, ctx));
    if (ctx->pg && PQstatus(ctx->pg) == CONNECTION_OK)
        return ctx->pg;
    if (ctx->pg) {
        PQfinish(ctx->pg);
        ctx->pg = NULL;
    }
    double now = mono_now();
    if (t->last_fail > 0 && now - t->last_fail < RECONNECT_PAUSE) {
        snprintf(err, errlen, "database unavailable");
        return NULL;
    }
    ctx->pg = PQconnectdb(ctx->cfg->database);
    if (!ctx->pg || PQstatus(ctx->pg) != CONNECTION_OK) {
        snprintf(err, errlen, "%s", ctx->pg ? PQerrorMessage(ctx->pg) : "out of memory");
        size_t l = strlen(err);
        while (l && (err[l - 1] == '\n' || err[l - 1] == ' '))
            err[--l] = '\0';
        log_warning("bg database connection failed: %s", err);
        if (ctx->pg)
            PQfinish(ctx->pg);
        ctx->pg = NULL;
        t->last_fail = now;
        return NULL;
    }
    t->last_fail = 0;
    return ctx->pg;
}

/* run one statement */
PGresult *api_bg_exec(api_bg_ctx *ctx, const char *sql, int nparams, const char *const *params,
                      char *err, size_t errlen, char state[6])
{
    if (state)
        state[0] = '\0';
    PGconn *pg = api_bg_pg(ctx, err, errlen);
    if (!pg)
        return NULL;
    PGresult *r = PQexecParams(pg, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        return r;
    const char *msg = r ? PQresultErrorMessage(r) : PQerrorMessage(pg);
    snprintf(err, errlen, "%s", msg && *msg ? msg : "query failed");
    size_t l = strlen(err);
    while (l && err[l - 1] == '\n')
        err[--l] = '\0';
    const char *code = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (state && code)
        str_copy(state, 6, code);
    PQclear(r);
    return NULL;
}

/* SET tusk.min_lsn for the account's token, when there is one and a tusk proxy listens */
void api_bg_min_lsn(api_bg_ctx *ctx, int64_t account_id)
{
    char tok[32], err[256];
    if (!ctx->pg || !api_lsn_get(ctx->srv->lsn, account_id, tok))
        return;
    if (cache_pg_min_lsn(ctx->pg, tok, 0, err, sizeof(err)) != 0)
        log_warning("SET tusk.min_lsn: %s", err);
}

/* keep the commit LSN of the transaction just committed */
void api_bg_note_commit(api_bg_ctx *ctx, int64_t account_id)
{
    if (ctx->pg)
        api_lsn_note(ctx->srv->lsn, account_id, PQparameterStatus(ctx->pg, "tusk.commit_lsn"));
}
