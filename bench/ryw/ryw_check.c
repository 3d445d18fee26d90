/*
 * ryw_check: read-your-writes checker for a routing proxy. Each client thread owns one row
 * of a small table; every iteration it bumps that row to a new value and at once reads it
 * back with a plain autocommit SELECT. A read that does not see the value just written
 * (missing row or older value) is a stale read. Modes:
 *   same   the read runs on the writing connection (what a router must get right by itself);
 *          with --read-port/--read-host the read runs on a second connection to another
 *          server instead, which simulates a router that sends reads to a lagging replica;
 *   token  connection A writes, its ParameterStatus tusk.commit_lsn is handed to connection
 *          B with SET tusk.min_lsn, then B reads (causality passed between sessions).
 * The read also returns pg_is_in_recovery(), so the replica share is seen from the server
 * side. Exit status: 0 when no stale read and no error, 1 on stale reads, 2 otherwise.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum mode { MODE_SAME, MODE_TOKEN };

struct options {
    const char *host;
    const char *port;
    const char *read_host;
    const char *read_port;
    const char *user;
    const char *password;
    const char *dbname;
    const char *table;
    int clients;
    double seconds;
    long iterations; /* per client; 0 = until --time runs out */
    enum mode mode;
    bool extended;
    int key_base;
    double sync_wait;
    int show_stale;
};

struct lat {
    int64_t *ns;
    size_t n, cap;
};

struct client {
    const struct options *opt;
    int id;
    int key;
    pthread_t thread;
    PGconn *w; /* writes (and reads in same mode without a separate read target) */
    PGconn *r; /* reads: == w, or a second connection */
    long iterations;
    long stale, stale_missing, stale_on_replica, stale_on_primary;
    long replica_reads;
    long tokens, no_token;
    long errors;
    bool failed; /* setup failed: takes no part in the run */
    struct lat wlat, rlat, total;
};

static pthread_barrier_t start_barrier;
static struct timespec deadline;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int stale_shown;

static void logf_locked(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Serialises diagnostics of concurrent client threads on stderr. */
static void logf_locked(const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&log_lock);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&log_lock);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool past_deadline(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec > deadline.tv_sec ||
           (ts.tv_sec == deadline.tv_sec && ts.tv_nsec >= deadline.tv_nsec);
}

static bool lat_add(struct lat *l, int64_t ns)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4096;
        int64_t *p = realloc(l->ns, cap * sizeof(*p));
        if (!p)
            return false;
        l->ns = p;
        l->cap = cap;
    }
    l->ns[l->n++] = ns;
    return true;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Percentile p (0..1) of a sorted sample in milliseconds; -1 for an empty one. */
static double pct_ms(const struct lat *l, double p)
{
    if (l->n == 0)
        return -1;
    size_t i = (size_t)(p * (double)l->n);
    if (i >= l->n)
        i = l->n - 1;
    return (double)l->ns[i] / 1e6;
}

static PGconn *connect_to(const struct options *o, const char *host, const char *port, int id,
                          const char *role)
{
    char appname[64];
    snprintf(appname, sizeof(appname), "ryw_check_%s_%d", role, id);
    const char *keys[] = {
        "host", "port", "user", "password", "dbname", "application_name", "connect_timeout", NULL};
    const char *vals[] = {host, port, o->user, o->password, o->dbname, appname, "10", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 0);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        logf_locked("ryw_check: client %d: cannot connect to %s:%s: %s", id, host, port,
                    c ? PQerrorMessage(c) : "out of memory\n");
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* Runs one statement, with its single parameter inlined (simple protocol) or bound
 * (extended protocol, unnamed statement, so it also works through transaction pooling). */
static PGresult *run(const struct client *cl, PGconn *c, const char *sql_simple,
                     const char *sql_ext, int nparams, const char *const *params)
{
    if (cl->opt->extended && sql_ext)
        return PQexecParams(c, sql_ext, nparams, NULL, params, NULL, NULL, 0);
    return PQexec(c, sql_simple);
}

static bool result_ok(struct client *cl, PGconn *c, PGresult *res, ExecStatusType want,
                      const char *what)
{
    if (res && PQresultStatus(res) == want)
        return true;
    cl->errors++;
    if (cl->errors <= 3)
        logf_locked("ryw_check: client %d: %s failed: %s", cl->id, what,
                    res ? PQresultErrorMessage(res) : PQerrorMessage(c));
    if (PQstatus(c) == CONNECTION_BAD)
        PQreset(c);
    return false;
}

/* Creates this client's row if needed and returns its current value, or -1. */
static long long setup_row(struct client *cl)
{
    const struct options *o = cl->opt;
    char sql[256];
    snprintf(
        sql, sizeof(sql),
        "INSERT INTO %s (k, v) VALUES (%d, 0) ON CONFLICT (k) DO UPDATE SET v = %s.v RETURNING v",
        o->table, cl->key, o->table);
    PGresult *res = PQexec(cl->w, sql);
    if (!result_ok(cl, cl->w, res, PGRES_TUPLES_OK, "row setup") || PQntuples(res) != 1) {
        PQclear(res);
        return -1;
    }
    long long v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return v;
}

/* Waits (bounded) until the read connection sees the row at the value the run starts
 * from, so a replica that is merely slow to receive a new table does not count as stale.
 * A read target that never catches up (replay paused) is reported, then the run goes on. */
static void wait_visible(struct client *cl, long long v)
{
    if (cl->r == cl->w)
        return;
    char sql[160];
    snprintf(sql, sizeof(sql), "SELECT v FROM %s WHERE k = %d", cl->opt->table, cl->key);
    int64_t until = now_ns() + (int64_t)(cl->opt->sync_wait * 1e9);
    for (;;) {
        PGresult *res = PQexec(cl->r, sql);
        bool seen = res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
                    strtoll(PQgetvalue(res, 0, 0), NULL, 10) >= v;
        PQclear(res);
        if (seen)
            return;
        if (now_ns() >= until) {
            logf_locked(
                "ryw_check: client %d: read target does not show the row at %lld after %.1f s; "
                "running anyway\n",
                cl->id, v, cl->opt->sync_wait);
            return;
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* where: 1 read on a replica, 0 on the primary, -1 unknown (no row came back) */
static void note_stale(struct client *cl, long long want, const char *got, int where)
{
    cl->stale++;
    if (where < 0)
        cl->stale_missing++;
    else if (where > 0)
        cl->stale_on_replica++;
    else
        cl->stale_on_primary++;
    pthread_mutex_lock(&log_lock);
    if (stale_shown < cl->opt->show_stale) {
        stale_shown++;
        fprintf(stderr, "ryw_check: stale read: client %d key %d wrote %lld, read %s from a %s\n",
                cl->id, cl->key, want, got ? got : "no row",
                where > 0    ? "replica"
                : where == 0 ? "primary"
                             : "server that has no row");
    }
    pthread_mutex_unlock(&log_lock);
}

static bool iterate(struct client *cl, long long want)
{
    const struct options *o = cl->opt;
    char sql[200], vbuf[24], kbuf[16];
    snprintf(vbuf, sizeof(vbuf), "%lld", want);
    snprintf(kbuf, sizeof(kbuf), "%d", cl->key);
    const char *params[2] = {vbuf, kbuf};
    char sql_ext[160];

    int64_t t0 = now_ns();
    snprintf(sql, sizeof(sql), "UPDATE %s SET v = %lld WHERE k = %d", o->table, want, cl->key);
    snprintf(sql_ext, sizeof(sql_ext), "UPDATE %s SET v = $1 WHERE k = $2", o->table);
    PGresult *res = run(cl, cl->w, sql, sql_ext, 2, params);
    if (!result_ok(cl, cl->w, res, PGRES_COMMAND_OK, "write")) {
        PQclear(res);
        return false;
    }
    if (strcmp(PQcmdTuples(res), "1") != 0) {
        PQclear(res);
        cl->errors++;
        logf_locked("ryw_check: client %d: write updated no row (key %d): was the table changed?\n",
                    cl->id, cl->key);
        return false;
    }
    PQclear(res);
    int64_t t1 = now_ns();

    if (o->mode == MODE_TOKEN) {
        const char *tok = PQparameterStatus(cl->w, "tusk.commit_lsn");
        if (!tok || !*tok) {
            cl->no_token++;
        } else {
            char set[96];
            /* an LSN is hex digits and a slash; anything else is not passed on */
            if (strspn(tok, "0123456789ABCDEFabcdef/") != strlen(tok) || strlen(tok) > 40) {
                cl->errors++;
                logf_locked("ryw_check: client %d: malformed tusk.commit_lsn '%s'\n", cl->id, tok);
                return false;
            }
            snprintf(set, sizeof(set), "SET tusk.min_lsn = '%s'", tok);
            res = PQexec(cl->r, set);
            if (!result_ok(cl, cl->r, res, PGRES_COMMAND_OK, "SET tusk.min_lsn")) {
                PQclear(res);
                return false;
            }
            PQclear(res);
            cl->tokens++;
        }
    }

    snprintf(sql, sizeof(sql), "SELECT v, pg_is_in_recovery() FROM %s WHERE k = %d", o->table,
             cl->key);
    snprintf(sql_ext, sizeof(sql_ext), "SELECT v, pg_is_in_recovery() FROM %s WHERE k = $1",
             o->table);
    res = run(cl, cl->r, sql, sql_ext, 1, params + 1);
    int64_t t2 = now_ns();
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (state && strcmp(state, "42P01") == 0) {
        /* the table this run created is not there yet: the read went to a lagging node */
        note_stale(cl, want, NULL, -1);
    } else if (!result_ok(cl, cl->r, res, PGRES_TUPLES_OK, "read")) {
        PQclear(res);
        return false;
    } else if (PQntuples(res) == 0) {
        note_stale(cl, want, NULL, -1);
    } else {
        bool on_replica = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
        if (on_replica)
            cl->replica_reads++;
        if (strtoll(PQgetvalue(res, 0, 0), NULL, 10) != want)
            note_stale(cl, want, PQgetvalue(res, 0, 0), on_replica ? 1 : 0);
    }
    PQclear(res);
    cl->iterations++;
    if (!lat_add(&cl->wlat, t1 - t0) || !lat_add(&cl->rlat, t2 - t1) ||
        !lat_add(&cl->total, t2 - t0)) {
        cl->errors++;
        logf_locked("ryw_check: client %d: out of memory for latencies\n", cl->id);
        return false;
    }
    return true;
}

static void *client_main(void *arg)
{
    struct client *cl = arg;
    const struct options *o = cl->opt;
    long long v = -1;

    cl->w = connect_to(o, o->host, o->port, cl->id, "w");
    if (cl->w) {
        bool separate = o->mode == MODE_TOKEN || o->read_host || o->read_port;
        if (separate)
            cl->r = connect_to(o, o->read_host ? o->read_host : o->host,
                               o->read_port ? o->read_port : o->port, cl->id, "r");
        else
            cl->r = cl->w;
        if (cl->r)
            v = setup_row(cl);
        if (v >= 0)
            wait_visible(cl, v);
    }
    cl->failed = v < 0;
    pthread_barrier_wait(&start_barrier);
    pthread_barrier_wait(&start_barrier);
    if (cl->failed)
        return NULL;

    long consecutive_errors = 0;
    while (!past_deadline() && (o->iterations == 0 || cl->iterations < o->iterations)) {
        v++;
        if (iterate(cl, v)) {
            consecutive_errors = 0;
        } else if (++consecutive_errors >= 100) {
            logf_locked("ryw_check: client %d: giving up after %ld errors in a row\n", cl->id,
                        consecutive_errors);
            break;
        }
    }
    return NULL;
}

static bool merge(struct lat *into, const struct lat *from)
{
    for (size_t i = 0; i < from->n; i++)
        if (!lat_add(into, from->ns[i]))
            return false;
    return true;
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: ryw_check [options]\n"
        "  -h, --host HOST        server (proxy) to write and read through (127.0.0.1)\n"
        "  -p, --port PORT        its port (required)\n"
        "      --read-host HOST   send the reads to another server (simulates a bad router)\n"
        "      --read-port PORT   port of that server\n"
        "  -U, --user USER        (tusk)   -P, --password PW (PGPASSWORD or tusk)\n"
        "  -d, --dbname DB        (bench)\n"
        "  -c, --clients N        client threads, one connection each (8)\n"
        "  -T, --time S           run time in seconds (10)\n"
        "  -n, --iterations N     stop each client after N iterations (0 = no limit)\n"
        "  -m, --mode same|token  read on the writing session, or on a second session that\n"
        "                         gets the writer's tusk.commit_lsn via SET tusk.min_lsn (same)\n"
        "  -M, --protocol simple|extended   query protocol (simple)\n"
        "      --table NAME       table to use, created if missing (ryw_check)\n"
        "      --key-base N       first row key, to run several checkers on one table (0)\n"
        "      --sync-wait S      before the run, wait up to S s for the read target to see\n"
        "                         the rows (5)\n"
        "      --show-stale N     print the first N stale reads (5)\n"
        "Exit status 0: no stale read, no error; 1: stale reads; 2: errors or bad usage.\n");
}

static bool parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static bool parse_double(const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= min && v <= max))
        return false;
    *out = v;
    return true;
}

static bool valid_ident(const char *s)
{
    if (!*s || strlen(s) > 48 || !((*s >= 'a' && *s <= 'z') || *s == '_'))
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == strlen(s);
}

static bool valid_port(const char *s)
{
    long v;
    return parse_long(s, 1, 65535, &v);
}

static int parse_args(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'h'},
        {"port", required_argument, NULL, 'p'},
        {"read-host", required_argument, NULL, 'H'},
        {"read-port", required_argument, NULL, 'R'},
        {"user", required_argument, NULL, 'U'},
        {"password", required_argument, NULL, 'P'},
        {"dbname", required_argument, NULL, 'd'},
        {"clients", required_argument, NULL, 'c'},
        {"time", required_argument, NULL, 'T'},
        {"iterations", required_argument, NULL, 'n'},
        {"mode", required_argument, NULL, 'm'},
        {"protocol", required_argument, NULL, 'M'},
        {"table", required_argument, NULL, 't'},
        {"key-base", required_argument, NULL, 'k'},
        {"sync-wait", required_argument, NULL, 'w'},
        {"show-stale", required_argument, NULL, 's'},
        {"help", no_argument, NULL, '?'},
        {NULL, 0, NULL, 0},
    };
    const char *pw = getenv("PGPASSWORD");
    *o = (struct options){.host = "127.0.0.1",
                          .user = "tusk",
                          .password = pw ? pw : "tusk",
                          .dbname = "bench",
                          .table = "ryw_check",
                          .clients = 8,
                          .seconds = 10,
                          .sync_wait = 5,
                          .show_stale = 5};
    long l;
    int ch;
    while ((ch = getopt_long(argc, argv, "h:p:U:P:d:c:T:n:m:M:", longopts, NULL)) != -1) {
        switch (ch) {
        case 'h':
            o->host = optarg;
            break;
        case 'p':
            o->port = optarg;
            break;
        case 'H':
            o->read_host = optarg;
            break;
        case 'R':
            o->read_port = optarg;
            break;
        case 'U':
            o->user = optarg;
            break;
        case 'P':
            o->password = optarg;
            break;
        case 'd':
            o->dbname = optarg;
            break;
        case 't':
            o->table = optarg;
            break;
        case 'c':
            if (!parse_long(optarg, 1, 1000, &l))
                goto bad;
            o->clients = (int)l;
            break;
        case 'T':
            if (!parse_double(optarg, 0.1, 86400, &o->seconds))
                goto bad;
            break;
        case 'n':
            if (!parse_long(optarg, 0, 1000000000L, &o->iterations))
                goto bad;
            break;
        case 'k':
            if (!parse_long(optarg, 0, 1000000000L, &l))
                goto bad;
            o->key_base = (int)l;
            break;
        case 'w':
            if (!parse_double(optarg, 0, 600, &o->sync_wait))
                goto bad;
            break;
        case 's':
            if (!parse_long(optarg, 0, 1000000, &l))
                goto bad;
            o->show_stale = (int)l;
            break;
        case 'm':
            if (strcmp(optarg, "same") == 0)
                o->mode = MODE_SAME;
            else if (strcmp(optarg, "token") == 0)
                o->mode = MODE_TOKEN;
            else
                goto bad;
            break;
        case 'M':
            if (strcmp(optarg, "simple") == 0)
                o->extended = false;
            else if (strcmp(optarg, "extended") == 0)
                o->extended = true;
            else
                goto bad;
            break;
        case '?':
            if (optopt == 0 && strcmp(argv[optind - 1], "--help") == 0) {
                usage(stdout);
                exit(0);
            }
            usage(stderr);
            return -1;
        default:
            usage(stderr);
            return -1;
        }
        continue;
    bad:
        for (const struct option *lo = longopts; lo->name; lo++)
            if (lo->val == ch)
                fprintf(stderr, "ryw_check: bad value '%s' for --%s\n", optarg, lo->name);
        return -1;
    }
    if (optind != argc) {
        fprintf(stderr, "ryw_check: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (!o->port) {
        fprintf(stderr, "ryw_check: --port is required\n");
        usage(stderr);
        return -1;
    }
    if (!valid_port(o->port) || (o->read_port && !valid_port(o->read_port))) {
        fprintf(stderr, "ryw_check: a port must be a number in 1..65535\n");
        return -1;
    }
    if (!valid_ident(o->table)) {
        fprintf(stderr, "ryw_check: --table must be a lower-case identifier\n");
        return -1;
    }
    if ((long)o->key_base + o->clients > 2000000000L) {
        fprintf(stderr, "ryw_check: --key-base too large\n");
        return -1;
    }
    return 0;
}

static void quiet_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static bool create_table(const struct options *o)
{
    PGconn *c = connect_to(o, o->host, o->port, -1, "setup");
    if (!c)
        return false;
    /* "already exists, skipping" on every run after the first is noise */
    PQsetNoticeProcessor(c, quiet_notice, NULL);
    char sql[160];
    snprintf(sql, sizeof(sql),
             "CREATE TABLE IF NOT EXISTS %s (k integer PRIMARY KEY, v bigint NOT NULL)", o->table);
    PGresult *res = PQexec(c, sql);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "ryw_check: cannot create table %s: %s", o->table,
                PQresultErrorMessage(res));
    PQclear(res);
    PQfinish(c);
    return ok;
}

int main(int argc, char **argv)
{
    struct options o;
    if (parse_args(argc, argv, &o) != 0)
        return 2;
    if (!create_table(&o))
        return 2;

    struct client *cls = calloc((size_t)o.clients, sizeof(*cls));
    if (!cls) {
        fprintf(stderr, "ryw_check: out of memory\n");
        return 2;
    }
    if (pthread_barrier_init(&start_barrier, NULL, (unsigned)o.clients + 1) != 0) {
        fprintf(stderr, "ryw_check: pthread_barrier_init failed\n");
        return 2;
    }
    for (int i = 0; i < o.clients; i++) {
        cls[i] = (struct client){.opt = &o, .id = i, .key = o.key_base + i};
        if (pthread_create(&cls[i].thread, NULL, client_main, &cls[i]) != 0) {
            fprintf(stderr, "ryw_check: cannot start client thread %d\n", i);
            /* the started threads would wait at the barrier for ever: end the process */
            return 2;
        }
    }
    /* the clock starts once every client is connected and set up: the first barrier waits
     * for that, the deadline is set while the clients wait at the second one */
    pthread_barrier_wait(&start_barrier);
    int64_t start = now_ns();
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += (time_t)o.seconds;
    deadline.tv_nsec += (long)((o.seconds - (double)(time_t)o.seconds) * 1e9);
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_barrier_wait(&start_barrier);
    for (int i = 0; i < o.clients; i++)
        pthread_join(cls[i].thread, NULL);
    double elapsed = (double)(now_ns() - start) / 1e9;

    struct client sum = {0};
    int failed = 0;
    for (int i = 0; i < o.clients; i++) {
        struct client *c = &cls[i];
        if (c->failed)
            failed++;
        sum.iterations += c->iterations;
        sum.stale += c->stale;
        sum.stale_missing += c->stale_missing;
        sum.stale_on_replica += c->stale_on_replica;
        sum.stale_on_primary += c->stale_on_primary;
        sum.replica_reads += c->replica_reads;
        sum.tokens += c->tokens;
        sum.no_token += c->no_token;
        sum.errors += c->errors;
        if (!merge(&sum.wlat, &c->wlat) || !merge(&sum.rlat, &c->rlat) ||
            !merge(&sum.total, &c->total)) {
            fprintf(stderr, "ryw_check: out of memory\n");
            return 2;
        }
    }
    if (sum.wlat.n)
        qsort(sum.wlat.ns, sum.wlat.n, sizeof(int64_t), cmp_i64);
    if (sum.rlat.n)
        qsort(sum.rlat.ns, sum.rlat.n, sizeof(int64_t), cmp_i64);
    if (sum.total.n)
        qsort(sum.total.ns, sum.total.n, sizeof(int64_t), cmp_i64);

    const char *rh = o.read_host ? o.read_host : o.host, *rp = o.read_port ? o.read_port : o.port;
    printf("ryw_check: mode %s, %s protocol, %d clients, %.1f s, write %s:%s, read %s:%s%s\n",
           o.mode == MODE_TOKEN ? "token" : "same", o.extended ? "extended" : "simple", o.clients,
           elapsed, o.host, o.port, rh, rp,
           o.mode == MODE_SAME && !o.read_host && !o.read_port ? " (same session)" : "");
    printf("iterations        %ld (%.0f/s)\n", sum.iterations,
           elapsed > 0 ? (double)sum.iterations / elapsed : 0);
    printf("stale reads       %ld (no row %ld, from replica %ld, from primary %ld)\n", sum.stale,
           sum.stale_missing, sum.stale_on_replica, sum.stale_on_primary);
    printf("replica reads     %ld (%.1f%%)\n", sum.replica_reads,
           sum.iterations ? 100.0 * (double)sum.replica_reads / (double)sum.iterations : 0);
    if (o.mode == MODE_TOKEN) {
        if (sum.tokens == 0)
            printf(
                "tokens            no token (server sends no tusk.commit_lsn): reads used none\n");
        else
            printf("tokens            %ld handed on, %ld writes without a token\n", sum.tokens,
                   sum.no_token);
    }
    printf("errors            %ld%s\n", sum.errors,
           failed ? " (some clients failed to set up)" : "");
    printf("write latency     p50 %.3f ms  p99 %.3f ms\n", pct_ms(&sum.wlat, 0.50),
           pct_ms(&sum.wlat, 0.99));
    printf("read latency      p50 %.3f ms  p99 %.3f ms\n", pct_ms(&sum.rlat, 0.50),
           pct_ms(&sum.rlat, 0.99));
    printf("write+read        p50 %.3f ms  p99 %.3f ms\n", pct_ms(&sum.total, 0.50),
           pct_ms(&sum.total, 0.99));
    int rc = sum.stale ? 1 : (sum.errors || failed || sum.iterations == 0) ? 2 : 0;
    printf("ryw iterations=%ld stale=%ld replica_reads=%ld errors=%ld tokens=%ld p50_ms=%.3f "
           "p99_ms=%.3f result=%s\n",
           sum.iterations, sum.stale, sum.replica_reads, sum.errors + failed, sum.tokens,
           pct_ms(&sum.total, 0.50), pct_ms(&sum.total, 0.99),
           rc == 0   ? "ok"
           : rc == 1 ? "STALE"
                     : "ERROR");

    for (int i = 0; i < o.clients; i++) {
        if (cls[i].r && cls[i].r != cls[i].w)
            PQfinish(cls[i].r);
        PQfinish(cls[i].w);
        free(cls[i].wlat.ns);
        free(cls[i].rlat.ns);
        free(cls[i].total.ns);
    }
    free(sum.wlat.ns);
    free(sum.rlat.ns);
    free(sum.total.ns);
    free(cls);
    pthread_barrier_destroy(&start_barrier);
    return rc;
}
