/*
 * Fan-out benchmark (driven by bench/fanout/run.sh, which seeds the data and starts
 * "tusk fanout"). For each run it measures, side by side:
 *   - Redis' own ceiling: redis-benchmark's pipelined ZADD rate on the same server;
 *   - end-to-end deliveries per second of a post by an account with ~100k active followers
 *     and one with ~10k: from the COMMIT of the status + outbox row to the moment its job is
 *     acknowledged (every feed written), deliveries counted by tusk fanout's own metric;
 * then the time to rebuild (regenerate) the home feed of an account following 1,000
 * accounts. Prints medians and the ratio to the ZADD ceiling.
 */
#include "cache/cache.h"
#include "fanout/fanout.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_RUNS 20

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "bench_fanout: %s: %s\n", what, detail ? detail : "");
    exit(1);
}

static PGresult *q(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
        die(sql, PQerrorMessage(pg));
    return r;
}

static int64_t scalar(PGconn *pg, const char *sql)
{
    PGresult *r = q(pg, sql);
    int64_t v = PQntuples(r) && !PQgetisnull(r, 0, 0) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    return v;
}

/* GET a path of the fanout admin endpoint and return one counter from it */
static long long metric(int port, const char *name)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        die("connect to the fanout admin port", NULL);
    const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
    if (write(fd, req, sizeof(req) - 1) != (ssize_t)sizeof(req) - 1)
        die("write", NULL);
    static char buf[65536];
    size_t got = 0;
    ssize_t n;
    while ((n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
        got += (size_t)n;
    close(fd);
    buf[got] = '\0';
    char key[128];
    snprintf(key, sizeof(key), "\n%s ", name);
    char *p = strstr(buf, key);
    if (!p)
        die("metric not found", name);
    return atoll(p + strlen(key));
}

static long long int_reply(redisContext *r, const char *cmd)
{
    redisReply *rep = redisCommand(r, cmd);
    if (!rep || rep->type != REDIS_REPLY_INTEGER)
        die("redis", cmd);
    long long v = rep->integer;
    freeReplyObject(rep);
    return v;
}

/* redis-benchmark's pipelined ZADD rate against the same server */
static double zadd_ceiling(int port, int db)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd),
             "redis-benchmark -h 127.0.0.1 -p %d --dbnum %d -r 1000000 -n 1000000 -P 64 -q"
             " zadd tusk:bench:zset __rand_int__ ele:__rand_int__ 2>/dev/null",
             port, db);
    FILE *f = popen(cmd, "r");
    if (!f)
        die("popen redis-benchmark", NULL);
    char line[512];
    double rate = 0;
    while (fgets(line, sizeof(line), f)) {
        /* "...: 654321.00 requests per second, p50=..." (progress lines end in \r) */
        char *p = strstr(line, "requests per second");
        if (!p)
            continue;
        char *colon = NULL;
        for (char *c = line; c < p; c++)
            if (*c == ':')
                colon = c;
        if (colon)
            rate = atof(colon + 1);
    }
    pclose(f);
    return rate; /* 0 when redis-benchmark failed; the caller retries */
}

/* post one status with its outbox row, wait until its job is done; ms and deliveries */
static double post_and_wait(PGconn *pg, redisContext *r, int admin_port, int64_t author,
                            long long *deliveries)
{
    long long before = metric(admin_port, "tusk_fanout_deliveries_total");
    PQclear(q(pg, "BEGIN"));
    char sql[256];
    snprintf(sql, sizeof(sql),
             "INSERT INTO statuses (account_id, text, local, created_at, updated_at)"
             " VALUES (%lld, 'benchmark post', true, now(), now()) RETURNING id",
             (long long)author);
    int64_t id = scalar(pg, sql);
    char err[256];
    if (fanout_outbox_status_created(pg, id, err, sizeof(err)) != 0)
        die("outbox", err);
    PQclear(q(pg, "COMMIT"));
    double t0 = now_ms();
    /* the job exists once the relay sent the row; it is done once nothing is queued or
     * pending (entries are deleted on acknowledgement) */
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM tusk_outbox WHERE sent_at IS NULL");
    double deadline = t0 + 120000;
    while (scalar(pg, sql) > 0) {
        if (now_ms() > deadline)
            die("timeout", "outbox row not relayed");
        usleep(200);
    }
    while (int_reply(r, "XLEN tusk:queue:default") > 0) {
        if (now_ms() > deadline)
            die("timeout", "job not finished");
        usleep(200);
    }
    double t1 = now_ms();
    *deliveries = metric(admin_port, "tusk_fanout_deliveries_total") - before;
    return t1 - t0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    const char *dsn = NULL;
    int redis_port = 6379, redis_db = 0, admin_port = 0, runs = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--dsn"))
            dsn = argv[i + 1];
        else if (!strcmp(argv[i], "--redis-port"))
            redis_port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--redis-db"))
            redis_db = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--admin-port"))
            admin_port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--runs"))
            runs = atoi(argv[i + 1]);
    }
    if (!dsn || !admin_port || runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr, "usage: bench_fanout --dsn DSN --redis-port P --redis-db N"
                        " --admin-port P [--runs N]\n");
        return 2;
    }
    PGconn *pg = PQconnectdb(dsn);
    if (PQstatus(pg) != CONNECTION_OK)
        die("connect", PQerrorMessage(pg));
    redisContext *r = redisConnect("127.0.0.1", redis_port);
    if (!r || r->err)
        die("redis connect", r ? r->errstr : NULL);
    redisReply *rep = redisCommand(r, "SELECT %d", redis_db);
    freeReplyObject(rep);

    int64_t big[2] = {scalar(pg, "SELECT id FROM accounts WHERE username = 'big1'"),
                      scalar(pg, "SELECT id FROM accounts WHERE username = 'big2'")};
    long long followers[2];
    for (int b = 0; b < 2; b++) {
        char sql[256];
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM follows f JOIN users u ON u.account_id = f.account_id"
                 " WHERE f.target_account_id = %lld"
                 " AND u.current_sign_in_at > timezone('UTC', now()) - interval '7 days'",
                 (long long)big[b]);
        followers[b] = scalar(pg, sql);
    }
    printf("accounts %lld, active followers: big1 %lld, big2 %lld\n",
           (long long)scalar(pg, "SELECT count(*) FROM accounts"), followers[0], followers[1]);

    double zadd[MAX_RUNS], rate[2][MAX_RUNS], lat[2][MAX_RUNS];
    long long deliv[2] = {0, 0};
    /* warm-up posts (caches, connections); a checkpoint now rather than during a run */
    PQclear(q(pg, "CHECKPOINT"));
    for (int w = 0; w < 2; w++)
        for (int b = 0; b < 2; b++)
            post_and_wait(pg, r, admin_port, big[b], &deliv[b]);
    double ratio[2][MAX_RUNS];
    for (int run = 0; run < runs; run++) {
        zadd[run] = zadd_ceiling(redis_port, redis_db);
        for (int attempt = 0; attempt < 3 && zadd[run] <= 0; attempt++)
            zadd[run] = zadd_ceiling(redis_port, redis_db);
        if (zadd[run] <= 0)
            die("redis-benchmark gave no rate", "is redis-benchmark installed?");
        rep = redisCommand(r, "DEL tusk:bench:zset");
        freeReplyObject(rep);
        for (int b = 0; b < 2; b++) {
            long long d;
            lat[b][run] = post_and_wait(pg, r, admin_port, big[b], &d);
            rate[b][run] = d / (lat[b][run] / 1000.0);
            ratio[b][run] = rate[b][run] / zadd[run];
            deliv[b] = d;
        }
        printf("run %d: zadd %.0f/s | big1 %lld deliveries in %.1f ms = %.0f/s | big2 %lld in "
               "%.1f ms = %.0f/s\n",
               run + 1, zadd[run], deliv[0], lat[0][run], rate[0][run], deliv[1], lat[1][run],
               rate[1][run]);
        fflush(stdout);
    }

    /* regeneration of a feed following 1,000 accounts */
    PQclear(q(pg, "DELETE FROM follows WHERE account_id = (SELECT id FROM accounts WHERE"
                  " username = 'regen_probe')"));
    PQclear(q(pg, "DELETE FROM users WHERE account_id = (SELECT id FROM accounts WHERE"
                  " username = 'regen_probe')"));
    PQclear(q(pg, "DELETE FROM accounts WHERE username = 'regen_probe'"));
    int64_t probe = scalar(pg, "INSERT INTO accounts (username, created_at, updated_at)"
                               " VALUES ('regen_probe', now(), now()) RETURNING id");
    char sql[512];
    snprintf(sql, sizeof(sql),
             "INSERT INTO follows (account_id, target_account_id, created_at, updated_at)"
             " SELECT %lld, a.id, now(), now() FROM accounts a WHERE a.id <> %lld"
             " AND EXISTS (SELECT 1 FROM statuses s WHERE s.account_id = a.id)"
             " ORDER BY a.id LIMIT 1000",
             (long long)probe, (long long)probe);
    PQclear(q(pg, sql));
    cache_config cc;
    cache_config_init(&cc);
    char url[64], err[512];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/%d", redis_port, redis_db);
    if (cache_config_set(&cc, "redis_url", url, err, sizeof(err)) != 1)
        die("redis url", err);
    cache *c = cache_open(&cc);
    double regen[MAX_RUNS];
    int entries = 0;
    for (int run = 0; run < runs; run++) {
        cache_feed_clean(c, CACHE_FEED_HOME, &probe, 1);
        double t0 = now_ms();
        entries = cache_feed_populate(c, pg, CACHE_FEED_HOME, probe, err, sizeof(err));
        regen[run] = now_ms() - t0;
        if (entries < 0)
            die("populate", err);
    }
    double mz = median(zadd, runs), m1 = median(rate[0], runs), m2 = median(rate[1], runs);
    double l2 = median(lat[1], runs), l1 = median(lat[0], runs), mr = median(regen, runs);
    /* the ratio is taken within each run (the ZADD rate right before the posts), then the
     * median: on a shared machine both move together */
    double r1 = median(ratio[0], runs), r2 = median(ratio[1], runs);
    printf("\nmedians over %d runs\n", runs);
    printf("  redis-benchmark pipelined ZADD      %10.0f /s\n", mz);
    printf("  fan-out, %6lld followers            %10.0f deliveries/s  (%.2f of ZADD)  %.1f ms\n",
           followers[0], m1, r1, l1);
    printf("  fan-out, %6lld followers            %10.0f deliveries/s  (%.2f of ZADD)  %.1f ms\n",
           followers[1], m2, r2, l2);
    printf("  10k-follower post, commit to last feed %.1f ms\n", l2);
    printf("  regenerate a feed following 1000 accounts: %.1f ms (%d entries)\n", mr, entries);
    cache_close(c);
    redisFree(r);
    PQfinish(pg);
    return 0;
}
