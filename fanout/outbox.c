/*
 * The transactional outbox, both ends. The api writes one tusk_outbox row in the same
 * transaction as the status, follow or block it describes (fanout_outbox_*), so the job
 * exists exactly when the write committed. The relay (in every "tusk fanout" process) moves
 * unsent rows to the Redis streams: it locks a batch with FOR UPDATE SKIP LOCKED (several
 * relays share the work), XADDs each row, and marks the batch sent in the same transaction.
 * A crash between XADD and COMMIT re-sends the batch later; jobs are idempotent, so a
 * duplicate costs work, never correctness. With Redis down the transaction rolls back and
 * rows wait; posts are still accepted.
 *
 * The job's read floor: the relay records pg_current_wal_insert_lsn() in the transaction
 * that sees the row, which is at or past the row's commit LSN, so a worker reading through
 * the proxy with SET tusk.min_lsn never meets a replica that misses the new status.
 */
#include "fanout/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------ api side */

int fanout_outbox_add(PGconn *conn, const fanout_job *job, char *err, size_t errlen)
{
    const char *kind = fanout_job_kind_name(job->kind);
    if (!kind) {
        snprintf(err, errlen, "unknown job kind %d", job->kind);
        return -1;
    }
    cache_buf payload;
    cache_buf_init(&payload);
    if (!fanout_job_payload_json(job, &payload)) {
        cache_buf_free(&payload);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const char *params[] = {kind, payload.data};
    PGresult *r = PQexecParams(conn,
                               "WITH o AS (INSERT INTO tusk_outbox (kind, payload)"
                               " VALUES ($1, $2::jsonb) RETURNING id)"
                               " SELECT pg_notify('tusk_outbox', id::text) FROM o",
                               2, NULL, params, NULL, NULL, 0);
    cache_buf_free(&payload);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "outbox insert: %s", fanout_pg_error(conn));
        PQclear(r);
        return -1;
    }
    PQclear(r);
    return 0;
}

int fanout_outbox_status_created(PGconn *conn, int64_t status_id, char *err, size_t errlen)
{
    fanout_job j;
    fanout_job_init(&j);
    j.kind = FANOUT_JOB_STATUS_CREATED;
    j.status_id = status_id;
    return fanout_outbox_add(conn, &j, err, errlen);
}

int fanout_outbox_status_deleted(PGconn *conn, int64_t status_id, int64_t account_id,
                                 int64_t reblog_of_id, int visibility, char *err, size_t errlen)
{
    fanout_job j;
    fanout_job_init(&j);
    j.kind = FANOUT_JOB_STATUS_DELETED;
    j.status_id = status_id;
    j.account_id = account_id;
    j.reblog_of_id = reblog_of_id;
    j.visibility = visibility;
    return fanout_outbox_add(conn, &j, err, errlen);
}

int fanout_outbox_relation(PGconn *conn, int kind, int64_t account_id, int64_t target_account_id,
                           char *err, size_t errlen)
{
    if (kind != FANOUT_JOB_FOLLOW && kind != FANOUT_JOB_UNFOLLOW && kind != FANOUT_JOB_BLOCK &&
        kind != FANOUT_JOB_MUTE) {
        snprintf(err, errlen, "not a relation job kind");
        return -1;
    }
    fanout_job j;
    fanout_job_init(&j);
    j.kind = kind;
    j.account_id = account_id;
    j.target_account_id = target_account_id;
    return fanout_outbox_add(conn, &j, err, errlen);
}

int fanout_outbox_list_member(PGconn *conn, int kind, int64_t list_id, int64_t account_id,
                              char *err, size_t errlen)
{
    if (kind != FANOUT_JOB_LIST_ADD && kind != FANOUT_JOB_LIST_REMOVE) {
        snprintf(err, errlen, "not a list job kind");
        return -1;
    }
    fanout_job j;
    fanout_job_init(&j);
    j.kind = kind;
    j.list_id = list_id;
    j.account_id = account_id;
    return fanout_outbox_add(conn, &j, err, errlen);
}

/* ------------------------------------------------------------------ direct enqueue */

/* append an XADD of job to ctx */
static int append_xadd(redisContext *ctx, const fanout_job *job)
{
    const char *argv[3 + FANOUT_JOB_MAX_FIELDS];
    size_t lens[3 + FANOUT_JOB_MAX_FIELDS];
    char storage[FANOUT_JOB_MAX_FIELDS][32];
    char stream[64];
    fanout_stream_key(stream, sizeof(stream), fanout_job_queue(job->kind));
    argv[0] = "XADD";
    lens[0] = 4;
    argv[1] = stream;
    lens[1] = strlen(stream);
    argv[2] = "*";
    lens[2] = 1;
    int n = fanout_job_encode(job, argv + 3, lens + 3, storage);
    return redisAppendCommandArgv(ctx, 3 + n, argv, lens) == REDIS_OK ? 0 : -1;
}

int fanout_enqueue(cache *c, const fanout_job *job)
{
    redisContext *ctx = cache_queue_ctx(c);
    if (!ctx)
        return -1;
    if (append_xadd(ctx, job) != 0) {
        cache_ctx_broken(c, ctx);
        return -1;
    }
    redisReply *r;
    if (cache_read_replies(c, ctx, 1, &r) != 0)
        return -1;
    int rc = r->type == REDIS_REPLY_STRING ? 0 : -1;
    if (rc)
        log_warning("XADD: %s", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    freeReplyObject(r);
    return rc;
}

int fanout_request_regeneration(cache *c, int feed_type, int64_t feed_id)
{
    int claimed = cache_regeneration_claim(c, feed_type, feed_id, CACHE_REGENERATION_TTL);
    if (claimed <= 0)
        return claimed;
    fanout_job j;
    fanout_job_init(&j);
    j.kind = FANOUT_JOB_REGENERATE;
    j.feed_type = feed_type;
    if (feed_type == CACHE_FEED_LIST)
        j.list_id = feed_id;
    else
        j.account_id = feed_id;
    if (fanout_enqueue(c, &j) != 0) {
        /* nobody will rebuild: let the next request try again */
        cache_regeneration_abort(c, feed_type, feed_id);
        return -1;
    }
    return 1;
}

/* ------------------------------------------------------------------ relay */

struct fanout_relay {
    const fanout_config *cfg;
    cache *cache;
    PGconn *pg;
    PGconn *listen;
    double next_cleanup_ms;
    double next_connect_ms;
    double next_log_ms; /* connection failures are logged at most every 10 s */
};

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

fanout_relay *fanout_relay_new(const fanout_config *cfg)
{
    fanout_relay *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->cfg = cfg;
    r->cache = cache_open(&cfg->cache);
    if (!r->cache) {
        free(r);
        return NULL;
    }
    return r;
}

void fanout_relay_free(fanout_relay *r)
{
    if (!r)
        return;
    if (r->pg)
        PQfinish(r->pg);
    if (r->listen)
        PQfinish(r->listen);
    cache_close(r->cache);
    free(r);
}

/* (re)connect both connections; false when PostgreSQL is unreachable */
static bool relay_connect(fanout_relay *r)
{
    if (r->pg && PQstatus(r->pg) == CONNECTION_OK &&
        (!r->cfg->outbox_listen || (r->listen && PQstatus(r->listen) == CONNECTION_OK)))
        return true;
    double now = mono_ms();
    if (now < r->next_connect_ms)
        return false;
    r->next_connect_ms = now + 1000;
    if (!r->pg || PQstatus(r->pg) != CONNECTION_OK) {
        if (r->pg)
            PQfinish(r->pg);
        r->pg = PQconnectdb(r->cfg->database);
        if (PQstatus(r->pg) != CONNECTION_OK) {
            if (now >= r->next_log_ms) {
                log_warning("outbox relay: cannot connect: %s", fanout_pg_error(r->pg));
                r->next_log_ms = now + 10000;
            }
            PQfinish(r->pg);
            r->pg = NULL;
            return false;
        }
    }
    if (r->cfg->outbox_listen && (!r->listen || PQstatus(r->listen) != CONNECTION_OK)) {
        if (r->listen)
            PQfinish(r->listen);
        const char *dsn = r->cfg->listen_database[0] ? r->cfg->listen_database : r->cfg->database;
        r->listen = PQconnectdb(dsn);
        PGresult *res =
            PQstatus(r->listen) == CONNECTION_OK ? PQexec(r->listen, "LISTEN tusk_outbox") : NULL;
        if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
            log_warning("outbox relay: LISTEN failed: %s", fanout_pg_error(r->listen));
            PQclear(res);
            PQfinish(r->listen);
            r->listen = NULL;
            return true; /* polling still works */
        }
        PQclear(res);
        PQsetnonblocking(r->listen, 1);
    }
    return true;
}

int fanout_relay_listen_fd(fanout_relay *r)
{
    return r->listen && PQstatus(r->listen) == CONNECTION_OK ? PQsocket(r->listen) : -1;
}

bool fanout_relay_drain_notifies(fanout_relay *r)
{
    if (!r->listen)
        return false;
    if (!PQconsumeInput(r->listen)) {
        log_warning("outbox relay: LISTEN connection lost: %s", fanout_pg_error(r->listen));
        PQfinish(r->listen);
        r->listen = NULL;
        return true; /* run once anyway */
    }
    bool any = false;
    PGnotify *n;
    while ((n = PQnotifies(r->listen)) != NULL) {
        any = true;
        PQfreemem(n);
    }
    return any;
}

/* an integer column, 0 when NULL */
static int64_t row_int(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? 0 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static bool exec_ok(PGconn *pg, const char *sql)
{
    PGresult *res = PQexec(pg, sql);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        log_warning("outbox relay: %s: %s", sql, fanout_pg_error(pg));
    PQclear(res);
    return ok;
}

static const char fetch_sql[] =
    "SELECT o.id, o.kind, e.key, e.value, pg_current_wal_insert_lsn()::text FROM"
    " (SELECT id, kind, payload FROM tusk_outbox WHERE sent_at IS NULL ORDER BY id LIMIT $1"
    " FOR UPDATE SKIP LOCKED) o LEFT JOIN LATERAL jsonb_each_text(o.payload) e ON true"
    " ORDER BY o.id";

/* one batch; rows moved, -1 on error */
static int relay_batch(fanout_relay *r)
{
    if (!exec_ok(r->pg, "BEGIN"))
        return -1;
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", r->cfg->outbox_batch);
    const char *params[] = {lim};
    PGresult *res = PQexecParams(r->pg, fetch_sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_warning("outbox relay: %s", fanout_pg_error(r->pg));
        PQclear(res);
        exec_ok(r->pg, "ROLLBACK");
        return -1;
    }
    int rows = PQntuples(res);
    if (rows == 0) {
        PQclear(res);
        exec_ok(r->pg, "COMMIT");
        return 0;
    }
    redisContext *ctx = cache_queue_ctx(r->cache);
    if (!ctx) {
        PQclear(res);
        exec_ok(r->pg, "ROLLBACK");
        return -1;
    }
    cache_buf ids;
    cache_buf_init(&ids);
    cache_buf_puts(&ids, "{");
    int appended = 0, moved = 0;
    bool io_error = false;
    for (int i = 0; i < rows && !io_error;) {
        /* the rows of one outbox entry: one per payload key */
        int64_t oid = row_int(res, i, 0);
        const char *strs[2 * 16 + 2];
        size_t lens[2 * 16 + 2];
        size_t n = 0;
        strs[n] = "kind";
        lens[n++] = 4;
        strs[n] = PQgetvalue(res, i, 1);
        lens[n] = strlen(strs[n]);
        n++;
        const char *lsn = PQgetvalue(res, i, 4);
        int j = i;
        for (; j < rows && row_int(res, j, 0) == oid; j++) {
            if (PQgetisnull(res, j, 2) || n + 2 > sizeof(strs) / sizeof(strs[0]))
                continue;
            strs[n] = PQgetvalue(res, j, 2);
            lens[n] = strlen(strs[n]);
            n++;
            strs[n] = PQgetvalue(res, j, 3);
            lens[n] = strlen(strs[n]);
            n++;
        }
        i = j;
        cache_buf_printf(&ids, "%s%lld", moved ? "," : "", (long long)oid);
        moved++;
        fanout_job job;
        char err[160];
        if (fanout_job_decode(strs, lens, n, &job, err, sizeof(err)) != 0) {
            /* it can never run: mark it sent so it does not block the outbox */
            log_error("outbox row %lld dropped: %s", (long long)oid, err);
            continue;
        }
        job.outbox_id = oid;
        if (!job.lsn[0])
            str_copy(job.lsn, sizeof(job.lsn), lsn);
        if (append_xadd(ctx, &job) != 0)
            io_error = true;
        else
            appended++;
    }
    PQclear(res);
    cache_buf_puts(&ids, "}");
    bool ok = !io_error;
    for (int k = 0; k < appended && ok; k++) {
        redisReply *rep;
        if (cache_read_replies(r->cache, ctx, 1, &rep) != 0) {
            ok = false;
            break;
        }
        if (rep->type != REDIS_REPLY_STRING) {
            log_warning("outbox relay: XADD: %s",
                        rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
            ok = false;
        }
        freeReplyObject(rep);
    }
    if (!ok) {
        if (io_error || appended)
            cache_ctx_broken(r->cache, ctx);
        cache_buf_free(&ids);
        exec_ok(r->pg, "ROLLBACK");
        atomic_fetch_add(&fanout_stats.outbox_errors, 1);
        return -1;
    }
    const char *uparams[] = {ids.data};
    res = PQexecParams(r->pg, "UPDATE tusk_outbox SET sent_at = now() WHERE id = ANY($1::bigint[])",
                       1, NULL, uparams, NULL, NULL, 0);
    cache_buf_free(&ids);
    bool upd = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!upd)
        log_warning("outbox relay: %s", fanout_pg_error(r->pg));
    PQclear(res);
    if (!upd || !exec_ok(r->pg, "COMMIT")) {
        exec_ok(r->pg, "ROLLBACK");
        return -1;
    }
    atomic_fetch_add(&fanout_stats.outbox_relayed, moved);
    return moved;
}

int fanout_relay_run(fanout_relay *r)
{
    if (!relay_connect(r))
        return -1;
    int total = 0;
    for (;;) {
        int n = relay_batch(r);
        if (n < 0) {
            if (PQstatus(r->pg) != CONNECTION_OK) {
                PQfinish(r->pg);
                r->pg = NULL;
            }
            return total ? total : -1;
        }
        total += n;
        if (n < r->cfg->outbox_batch || atomic_load(&fanout_stop))
            break;
    }
    double now = mono_ms();
    if (r->cfg->outbox_retention_s > 0 && now >= r->next_cleanup_ms) {
        r->next_cleanup_ms = now + 60000;
        char sql[160];
        snprintf(sql, sizeof(sql),
                 "DELETE FROM tusk_outbox WHERE sent_at < now() - interval '%d seconds'",
                 r->cfg->outbox_retention_s);
        PGresult *res = PQexec(r->pg, sql);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            log_warning("outbox cleanup: %s", fanout_pg_error(r->pg));
        PQclear(res);
    }
    return total;
}
