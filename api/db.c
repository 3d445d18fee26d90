/*
 * Per-worker pool of PostgreSQL connections used without blocking the event loop: libpq's
 * asynchronous API (PQconnectStart/PQconnectPoll, PQsendQueryPrepared, PQconsumeInput) driven
 * by ev_io watchers. Every statement is a named prepared statement, prepared lazily on each
 * server connection the first time it runs there (through tusk proxy in production, which
 * keeps named statements working in transaction pooling).
 *
 * Queries queue FIFO and go to the first idle connection. A connection that breaks fails its
 * query and reconnects with backoff; while no connection can be made, new queries fail fast
 * (the handler answers 503) instead of piling up.
 */
#include "api/internal.h"

#include <stdlib.h>
#include <string.h>

#define DB_MAX_QUEUE 10000

enum { PGC_DOWN, PGC_CONNECTING, PGC_IDLE, PGC_SETLSN, PGC_PREPARE, PGC_QUERY };

typedef struct job {
    struct job *next;
    const api_stmt *st;
    api_db_cb cb;
    void *arg;
    const char **params;
    char lsn[32]; /* read floor to state first ("" = none) */
} job;

typedef struct pgc {
    api_db *db;
    PGconn *conn;
    ev_io io;
    int io_events;
    ev_timer retry;  /* reconnect backoff */
    ev_timer qtimer; /* query timeout */
    int state;
    job *job;
    PGresult *result;
    const api_stmt **prepared;
    size_t nprep, prepcap;
    double backoff;
    uint64_t floor; /* highest tusk.min_lsn stated on this connection */
} pgc;

struct api_db {
    struct ev_loop *loop;
    char *conninfo;
    int size;
    int timeout_ms;
    pgc *conns;
    job *qhead, *qtail;
    size_t qlen;
    bool down;
    bool closing;
    pgc *current; /* connection whose job's callback is running */
};

static void start_connect(pgc *c);
static void io_cb(struct ev_loop *loop, ev_io *w, int revents);
static void dispatch(api_db *db);

/* watch the connection's socket for these events */
static void watch(pgc *c, int events)
{
    int fd = c->conn ? PQsocket(c->conn) : -1;
    if (c->io_events == events && c->io.fd == fd && ev_is_active(&c->io))
        return;
    ev_io_stop(c->db->loop, &c->io);
    c->io_events = events;
    if (fd < 0 || !events)
        return;
    ev_io_set(&c->io, fd, events);
    ev_io_start(c->db->loop, &c->io);
}

/* a job ends: run its callback, free it */
static void job_finish(job *j, const PGresult *res, const char *err)
{
    j->cb(j->arg, res, err);
    free(j);
}

/* does the job's read floor need stating on c? Only a tusk proxy reports tusk.commit_lsn
 * (a plain PostgreSQL would reject the SET), and a floor at or below what the session
 * already has is a no-op worth skipping. */
static bool needs_floor(pgc *c, const job *j)
{
    uint64_t want, have;
    if (!j->lsn[0] || !api_lsn_parse(j->lsn, &want))
        return false;
    const char *cl = PQparameterStatus(c->conn, "tusk.commit_lsn");
    if (!cl)
        return false;
    if (api_lsn_parse(cl, &have) && have >= want)
        return false;
    return want > c->floor;
}

/* fail every queued job (no connection can be made, or shutdown) */
static void fail_queue(api_db *db, const char *err)
{
    while (db->qhead) {
        job *j = db->qhead;
        db->qhead = j->next;
        db->qlen--;
        job_finish(j, NULL, err);
    }
    db->qtail = NULL;
}

/* any connection up or on its way up */
static bool any_alive(api_db *db)
{
    for (int i = 0; i < db->size; i++)
        if (db->conns[i].state != PGC_DOWN)
            return true;
    return false;
}

/* the connection failed: fail its job, schedule a reconnect */
static void conn_broken(pgc *c, const char *why)
{
    api_db *db = c->db;
    char msg[256];
    snprintf(msg, sizeof(msg), "%s", why ? why : "connection lost");
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\t')
            *p = ' '; /* libpq's messages span lines */
    size_t ml = strlen(msg);
    while (ml && msg[ml - 1] == ' ')
        msg[--ml] = '\0';
    watch(c, 0);
    ev_timer_stop(db->loop, &c->qtimer);
    if (c->result) {
        PQclear(c->result);
        c->result = NULL;
    }
    if (c->conn) {
        PQfinish(c->conn);
        c->conn = NULL;
    }
    c->nprep = 0;
    c->floor = 0;
    bool was_connecting = c->state == PGC_CONNECTING;
    c->state = PGC_DOWN;
    if (c->job) {
        job *j = c->job;
        c->job = NULL;
        job_finish(j, NULL, msg);
    }
    if (db->closing)
        return;
    /* one warning per outage, not one per retry of every pooled connection */
    if (!was_connecting)
        log_warning("database connection lost: %s", msg);
    else if (!db->down)
        log_warning("database connection failed: %s", msg);
    else
        log_debug("database connection failed again: %s", msg);
    c->backoff = was_connecting ? (c->backoff < 0.25 ? 0.25 : c->backoff * 2) : 0;
    if (c->backoff > 5)
        c->backoff = 5;
    if (!any_alive(db)) {
        db->down = was_connecting;
        if (db->down)
            fail_queue(db, "database unavailable");
    }
    ev_timer_set(&c->retry, c->backoff, 0);
    ev_timer_start(db->loop, &c->retry);
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    start_connect(w->data);
}

static void qtimeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    conn_broken(w->data, "query timed out");
    dispatch(((pgc *)w->data)->db);
}

/* begin a non-blocking connect */
static void start_connect(pgc *c)
{
    c->conn = PQconnectStart(c->db->conninfo);
    if (!c->conn || PQstatus(c->conn) == CONNECTION_BAD) {
        c->state = PGC_CONNECTING;
        conn_broken(c, c->conn ? PQerrorMessage(c->conn) : "out of memory");
        return;
    }
    c->state = PGC_CONNECTING;
    watch(c, EV_WRITE);
}

/* has this connection prepared st */
static bool is_prepared(pgc *c, const api_stmt *st)
{
    for (size_t i = 0; i < c->nprep; i++)
        if (c->prepared[i] == st)
            return true;
    return false;
}

static void mark_prepared(pgc *c, const api_stmt *st)
{
    if (c->nprep == c->prepcap) {
        size_t nc = c->prepcap ? c->prepcap * 2 : 16;
        const api_stmt **np = realloc(c->prepared, nc * sizeof(*np));
        if (!np)
            return; /* it will be prepared again, and the server says it exists: handled */
        c->prepared = np;
        c->prepcap = nc;
    }
    c->prepared[c->nprep++] = st;
}

static void stmt_name(const api_stmt *st, char *out, size_t cap)
{
    snprintf(out, cap, "tusk_api_%s", st->name);
}

/* flush what libpq has buffered and wait for the answer */
static void after_send(pgc *c)
{
    int r = PQflush(c->conn);
    if (r < 0) {
        conn_broken(c, PQerrorMessage(c->conn));
        return;
    }
    watch(c, r == 1 ? EV_READ | EV_WRITE : EV_READ);
}

/* send the current job's query (stating its read floor and preparing first if needed) */
static void send_job(pgc *c)
{
    job *j = c->job;
    char name[128];
    stmt_name(j->st, name, sizeof(name));
    int ok;
    if (c->state != PGC_SETLSN && needs_floor(c, j)) {
        char sql[64];
        snprintf(sql, sizeof(sql), "SET tusk.min_lsn = '%s'", j->lsn);
        c->state = PGC_SETLSN;
        ok = PQsendQuery(c->conn, sql);
    } else if (!is_prepared(c, j->st)) {
        c->state = PGC_PREPARE;
        ok = PQsendPrepare(c->conn, name, j->st->sql, j->st->nparams, NULL);
    } else {
        c->state = PGC_QUERY;
        ok = PQsendQueryPrepared(c->conn, name, j->st->nparams, j->params, NULL, NULL, 0);
    }
    if (!ok) {
        conn_broken(c, PQerrorMessage(c->conn));
        return;
    }
    after_send(c);
}

/* hand queued jobs to idle connections */
static void dispatch(api_db *db)
{
    for (int i = 0; i < db->size && db->qhead; i++) {
        pgc *c = &db->conns[i];
        if (c->state != PGC_IDLE)
            continue;
        job *j = db->qhead;
        db->qhead = j->next;
        if (!db->qhead)
            db->qtail = NULL;
        db->qlen--;
        j->next = NULL;
        c->job = j;
        if (db->timeout_ms > 0) {
            ev_timer_set(&c->qtimer, db->timeout_ms / 1000.0, 0);
            ev_timer_start(db->loop, &c->qtimer);
        }
        send_job(c);
    }
}

/* all results of the command in flight arrived */
static void command_done(pgc *c)
{
    api_db *db = c->db;
    PGresult *res = c->result;
    c->result = NULL;
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (c->state == PGC_SETLSN) {
        uint64_t v;
        if (st != PGRES_COMMAND_OK)
            log_warning("SET tusk.min_lsn failed: %s",
                        res ? PQresultErrorMessage(res) : PQerrorMessage(c->conn));
        /* recorded even on failure: a proxy that refuses it would refuse it every time */
        if (api_lsn_parse(c->job->lsn, &v) && v > c->floor)
            c->floor = v;
        PQclear(res);
        send_job(c); /* state is still SETLSN: the query itself goes now */
        return;
    }
    if (c->state == PGC_PREPARE) {
        const char *code = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        if (st == PGRES_COMMAND_OK || (code && strcmp(code, "42P05") == 0)) {
            mark_prepared(c, c->job->st);
            PQclear(res);
            send_job(c);
            return;
        }
    }
    ev_timer_stop(db->loop, &c->qtimer);
    job *j = c->job;
    c->job = NULL;
    c->state = PGC_IDLE;
    db->current = c;
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        job_finish(j, res, NULL);
    } else {
        char msg[512];
        const char *e = res ? PQresultErrorMessage(res) : PQerrorMessage(c->conn);
        snprintf(msg, sizeof(msg), "%s", e && *e ? e : "query failed");
        size_t ml = strlen(msg);
        while (ml && msg[ml - 1] == '\n')
            msg[--ml] = '\0';
        log_warning("query %s failed: %s", j->st->name, msg);
        job_finish(j, NULL, msg);
    }
    db->current = NULL;
    PQclear(res);
    if (c->conn && PQstatus(c->conn) == CONNECTION_BAD) {
        conn_broken(c, PQerrorMessage(c->conn));
        return;
    }
    dispatch(db);
}

/* socket events: connecting, or a query in flight */
static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    pgc *c = w->data;
    api_db *db = c->db;
    if (c->state == PGC_CONNECTING) {
        switch (PQconnectPoll(c->conn)) {
        case PGRES_POLLING_READING:
            watch(c, EV_READ);
            return;
        case PGRES_POLLING_WRITING:
            watch(c, EV_WRITE);
            return;
        case PGRES_POLLING_OK:
            if (PQsetnonblocking(c->conn, 1) != 0) {
                conn_broken(c, PQerrorMessage(c->conn));
                return;
            }
            c->state = PGC_IDLE;
            c->backoff = 0;
            db->down = false;
            watch(c, EV_READ); /* notice a server that goes away while idle */
            dispatch(db);
            return;
        default:
            conn_broken(c, PQerrorMessage(c->conn));
            return;
        }
    }
    if (c->state == PGC_IDLE) {
        /* unsolicited input: a notice, or the server closing the connection */
        if (!PQconsumeInput(c->conn) || PQstatus(c->conn) == CONNECTION_BAD) {
            conn_broken(c, PQerrorMessage(c->conn));
            dispatch(db);
        }
        return;
    }
    if (revents & EV_WRITE) {
        int r = PQflush(c->conn);
        if (r < 0) {
            conn_broken(c, PQerrorMessage(c->conn));
            dispatch(db);
            return;
        }
        watch(c, r == 1 ? EV_READ | EV_WRITE : EV_READ);
    }
    if (revents & EV_READ) {
        if (!PQconsumeInput(c->conn)) {
            conn_broken(c, PQerrorMessage(c->conn));
            dispatch(db);
            return;
        }
        while (!PQisBusy(c->conn)) {
            PGresult *res = PQgetResult(c->conn);
            if (!res) {
                command_done(c);
                return;
            }
            if (!c->result)
                c->result = res;
            else
                PQclear(res);
        }
    }
}

/* a pool of size connections to conninfo (connecting starts now) */
api_db *api_db_new(struct ev_loop *loop, const char *conninfo, int size, int timeout_ms)
{
    api_db *db = calloc(1, sizeof(*db));
    if (!db)
        return NULL;
    db->loop = loop;
    db->conninfo = strdup(conninfo ? conninfo : "");
    db->size = size > 0 ? size : 1;
    db->timeout_ms = timeout_ms;
    db->conns = calloc((size_t)db->size, sizeof(pgc));
    if (!db->conninfo || !db->conns) {
        free(db->conninfo);
        free(db->conns);
        free(db);
        return NULL;
    }
    for (int i = 0; i < db->size; i++) {
        pgc *c = &db->conns[i];
        c->db = db;
        ev_io_init(&c->io, io_cb, -1, 0);
        c->io.data = c;
        ev_timer_init(&c->retry, retry_cb, 0, 0);
        c->retry.data = c;
        ev_timer_init(&c->qtimer, qtimeout_cb, 0, 0);
        c->qtimer.data = c;
        start_connect(c);
    }
    return db;
}

/* close every connection; queued and running queries fail with "shutting down" */
void api_db_free(api_db *db)
{
    if (!db)
        return;
    db->closing = true;
    for (int i = 0; i < db->size; i++) {
        pgc *c = &db->conns[i];
        ev_timer_stop(db->loop, &c->retry);
        conn_broken(c, "shutting down");
        free(c->prepared);
    }
    fail_queue(db, "shutting down");
    free(db->conns);
    free(db->conninfo);
    free(db);
}

/* queue a query */
bool api_db_query(api_db *db, const api_stmt *st, const char *const *params, api_db_cb cb,
                  void *arg)
{
    return api_db_query_lsn(db, st, params, NULL, cb, arg);
}

/* the commit LSN the running callback's connection reports */
const char *api_db_commit_lsn(const api_db *db)
{
    const char *v = db->current && db->current->conn
                        ? PQparameterStatus(db->current->conn, "tusk.commit_lsn")
                        : NULL;
    return v ? v : "";
}

/* queue a query that must see at least min_lsn */
bool api_db_query_lsn(api_db *db, const api_stmt *st, const char *const *params,
                      const char *min_lsn, api_db_cb cb, void *arg)
{
    if (db->closing || db->qlen >= DB_MAX_QUEUE)
        return false;
    if (db->down && !any_alive(db))
        return false;
    size_t need = sizeof(job) + (size_t)st->nparams * sizeof(char *);
    for (int i = 0; i < st->nparams; i++)
        if (params[i])
            need += strlen(params[i]) + 1;
    job *j = malloc(need);
    if (!j)
        return false;
    j->next = NULL;
    j->lsn[0] = '\0';
    if (min_lsn)
        str_copy(j->lsn, sizeof(j->lsn), min_lsn);
    j->st = st;
    j->cb = cb;
    j->arg = arg;
    j->params = (const char **)(j + 1);
    char *p = (char *)(j->params + st->nparams);
    for (int i = 0; i < st->nparams; i++) {
        if (!params[i]) {
            j->params[i] = NULL;
            continue;
        }
        size_t l = strlen(params[i]) + 1;
        memcpy(p, params[i], l);
        j->params[i] = p;
        p += l;
    }
    if (db->qtail)
        db->qtail->next = j;
    else
        db->qhead = j;
    db->qtail = j;
    db->qlen++;
    dispatch(db);
    return true;
}
