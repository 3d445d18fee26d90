/*
 * Integration test of the operators' view: the admin console (pgbouncer's columns and types,
 * counters that follow what the test did, SHOW CLIENTS, errors for bad commands, stats users,
 * DISABLE / ENABLE, SET, PAUSE / RESUME) and the HTTP endpoint (/metrics checked by a strict
 * exposition-format parser, /health, /ready, 404) of a real "tusk proxy" on real PostgreSQL.
 */
#include "tests/proxy/pxtest.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proxy/proxy.h"

#include <cmocka.h>

static pxt_proxy px;
static int http_port;

static int setup(void **state)
{
    (void)state;
    if (!getenv("TUSK_PG_PRIMARY_PORT"))
        return 0;
    http_port = svc_free_port();
    char extra[512];
    snprintf(extra, sizeof(extra),
             "pool_mode = transaction\nadmin_users = tusk\nstats_users = tusk_md5\n"
             "admin_listen = 127.0.0.1:%d\n",
             http_port);
    pxt_start(&px, extra, NULL, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (px.port)
        pxt_stop(&px, SIGTERM);
    return 0;
}

static PGconn *admin(const char *user, const char *pw)
{
    return pxt_connect(&px, user, pw, "pgbouncer");
}

/* column names of a SHOW, comma separated; the types too (name/oid) */
static char *columns(PGconn *c, const char *sql, bool types)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    char *out = calloc(1, 4096);
    for (int i = 0; i < PQnfields(r); i++) {
        char one[128];
        if (types)
            snprintf(one, sizeof(one), "%s%s/%u", i ? "," : "", PQfname(r, i), PQftype(r, i));
        else
            snprintf(one, sizeof(one), "%s%s", i ? "," : "", PQfname(r, i));
        strcat(out, one);
    }
    PQclear(r);
    return out;
}

static void test_columns(void **state)
{
    (void)state;
    PGconn *a = admin("tusk", "tusk");
    /* as pgbouncer 1.18 answers (names / type oids: 25 text, 23 int4, 1700 numeric) */
    struct {
        const char *sql, *want;
    } t[] = {
        {"SHOW POOLS",
         "database/25,user/25,cl_active/23,cl_waiting/23,cl_active_cancel_req/23,"
         "cl_waiting_cancel_req/23,sv_active/23,sv_active_cancel/23,sv_being_canceled/23,"
         "sv_idle/23,sv_used/23,sv_tested/23,sv_login/23,maxwait/23,maxwait_us/23,pool_mode/25"},
        {"SHOW STATS",
         "database/25,total_xact_count/1700,total_query_count/1700,total_received/1700,"
         "total_sent/1700,total_xact_time/1700,total_query_time/1700,total_wait_time/1700,"
         "avg_xact_count/1700,avg_query_count/1700,avg_recv/1700,avg_sent/1700,"
         "avg_xact_time/1700,avg_query_time/1700,avg_wait_time/1700"},
        {"SHOW STATS_TOTALS", "database/25,xact_count/1700,query_count/1700,"
                              "bytes_received/1700,bytes_sent/1700,xact_time/1700,"
                              "query_time/1700,wait_time/1700"},
        {"show stats_averages", "database/25,xact_count/1700,query_count/1700,"
                                "bytes_received/1700,bytes_sent/1700,xact_time/1700,"
                                "query_time/1700,wait_time/1700"},
        {"SHOW CLIENTS",
         "type/25,user/25,database/25,state/25,addr/25,port/23,local_addr/25,local_port/23,"
         "connect_time/25,request_time/25,wait/23,wait_us/23,close_needed/23,ptr/25,link/25,"
         "remote_pid/23,tls/25,application_name/25"},
        {"SHOW SERVERS",
         "type/25,user/25,database/25,state/25,addr/25,port/23,local_addr/25,local_port/23,"
         "connect_time/25,request_time/25,wait/23,wait_us/23,close_needed/23,ptr/25,link/25,"
         "remote_pid/23,tls/25,application_name/25"},
        {"SHOW DATABASES", "name/25,host/25,port/23,database/25,force_user/25,pool_size/23,"
                           "min_pool_size/23,reserve_pool/23,pool_mode/25,max_connections/23,"
                           "current_connections/23,paused/23,disabled/23"},
        {"SHOW USERS", "name/25,pool_mode/25"},
        {"SHOW CONFIG", "key/25,value/25,default/25,changeable/25"},
        {"SHOW LISTS", "list/25,items/23"},
        {"SHOW TOTALS", "name/25,value/1700"},
        {"SHOW DNS_HOSTS", "hostname/25,ttl/20,addrs/25"},
        {"SHOW DNS_ZONES", "zonename/25,serial/20,count/23"},
        {"SHOW SOCKETS",
         "type/25,user/25,database/25,state/25,addr/25,port/23,local_addr/25,local_port/23,"
         "connect_time/25,request_time/25,wait/23,wait_us/23,close_needed/23,ptr/25,link/25,"
         "remote_pid/23,tls/25,application_name/25,recv_pos/23,pkt_pos/23,pkt_remain/23,"
         "send_pos/23,send_remain/23,pkt_avail/23,send_avail/23"},
        {"SHOW ACTIVE_SOCKETS",
         "type/25,user/25,database/25,state/25,addr/25,port/23,local_addr/25,local_port/23,"
         "connect_time/25,request_time/25,wait/23,wait_us/23,close_needed/23,ptr/25,link/25,"
         "remote_pid/23,tls/25,application_name/25,recv_pos/23,pkt_pos/23,pkt_remain/23,"
         "send_pos/23,send_remain/23,pkt_avail/23,send_avail/23"},
        {"SHOW MEM", "name/25,size/23,used/23,free/23,memtotal/23"},
        {"SHOW VERSION", "version/25"},
        {"SHOW REPLICAS", "database/25,node/23,host/25,port/23,role/25,state/25,replay_lsn/25,"
                          "lag_bytes/1700,lag_ms/1700,banned_until/25,reads_routed/1700,"
                          "reads_per_s/1700"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        char *got = columns(a, t[i].sql, true);
        if (strcmp(got, t[i].want) != 0)
            fail_msg("%s:\n got %s\nwant %s", t[i].sql, got, t[i].want);
        free(got);
    }
    char *v = pxt_value(a, "SHOW VERSION");
    assert_non_null(strstr(v, "PgBouncer 1.18"));
    free(v);
    PQfinish(a);
}

/* a numeric cell of the row whose first column is key */
static long long cell(PGconn *c, const char *sql, const char *key, const char *col)
{
    PGresult *r = PQexec(c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    int ci = PQfnumber(r, col);
    assert_true(ci >= 0);
    long long v = -1;
    for (int i = 0; i < PQntuples(r); i++)
        if (strcmp(PQgetvalue(r, i, 0), key) == 0)
            v = atoll(PQgetvalue(r, i, ci));
    PQclear(r);
    return v;
}

/* ---- HTTP ---- */

static char *http_get(const char *path, int *status)
{
    return pxt_http_get(http_port, path, status);
}

/* strict checker of the Prometheus text format 0.0.4: every sample belongs to the family
 * announced by the HELP and TYPE lines just before it (histograms: _bucket/_sum/_count), names
 * and label names are valid, label values properly quoted and escaped, no duplicate series,
 * values parse, counters end in _total, histogram buckets are cumulative and end in +Inf
 * equal to _count. Fails the test with the offending line. */
static bool name_ok(const char *s, size_t n, bool label)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = isalpha((unsigned char)c) || c == '_' || (!label && c == ':') ||
                  (i > 0 && isdigit((unsigned char)c));
        if (!ok)
            return false;
    }
    return true;
}

typedef struct series {
    char key[512];
} series;

/* Prometheus' own linter, from Debian's prometheus package (scripts/install): a second,
 * independent judge of the exposition format */
static void check_with_promtool(const char *text)
{
    if (access("/usr/bin/promtool", X_OK) != 0) {
        print_message("promtool not installed: only the built-in checker ran\n");
        return;
    }
    char *path = svc_write_temp(".prom", text);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "/usr/bin/promtool check metrics < '%s'", path);
    int rc = system(cmd);
    unlink(path);
    free(path);
    assert_int_equal(rc, 0);
}

static void check_exposition(const char *text)
{
    char fam[128] = "", type[32] = "";
    bool have_help = false;
    series *seen = calloc(20000, sizeof(*seen));
    int nseen = 0;
    double last_bucket = -1;
    char bucket_series[512] = "";
    char *copy = strdup(text);
    size_t tl = strlen(text);
    assert_true(tl > 0 && text[tl - 1] == '\n');
    char *save = NULL;
    int lineno = 0;
    char famseen[200][128];
    int nfam = 0;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        if (strncmp(line, "# HELP ", 7) == 0) {
            const char *n = line + 7;
            size_t nl = strcspn(n, " ");
            if (!name_ok(n, nl, false) || n[nl] != ' ')
                fail_msg("line %d: bad HELP: %s", lineno, line);
            snprintf(fam, sizeof(fam), "%.*s", (int)nl, n);
            for (int i = 0; i < nfam; i++)
                if (strcmp(famseen[i], fam) == 0)
                    fail_msg("line %d: family %s announced twice", lineno, fam);
            if (nfam < 200)
                snprintf(famseen[nfam++], sizeof(famseen[0]), "%s", fam);
            have_help = true;
            type[0] = '\0';
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char n[128], t[32], extra[8];
            if (sscanf(line + 7, "%127s %31s %7s", n, t, extra) != 2 || !have_help ||
                strcmp(n, fam) != 0)
                fail_msg("line %d: TYPE without its HELP: %s", lineno, line);
            if (strcmp(t, "counter") && strcmp(t, "gauge") && strcmp(t, "histogram"))
                fail_msg("line %d: unexpected type %s", lineno, t);
            if (strcmp(t, "counter") == 0 && (strlen(n) < 6 || strcmp(n + strlen(n) - 6, "_total")))
                fail_msg("line %d: counter %s does not end in _total", lineno, n);
            snprintf(type, sizeof(type), "%s", t);
            continue;
        }
        if (line[0] == '#')
            fail_msg("line %d: unexpected comment: %s", lineno, line);
        if (!type[0])
            fail_msg("line %d: sample before HELP/TYPE: %s", lineno, line);
        /* name */
        size_t nl = strcspn(line, "{ ");
        if (!name_ok(line, nl, false))
            fail_msg("line %d: bad metric name: %s", lineno, line);
        char name[128];
        snprintf(name, sizeof(name), "%.*s", (int)nl, line);
        bool ok = strcmp(name, fam) == 0;
        const char *suffix = "";
        if (strcmp(type, "histogram") == 0) {
            size_t fl = strlen(fam);
            ok = strncmp(name, fam, fl) == 0 &&
                 (strcmp(name + fl, "_bucket") == 0 || strcmp(name + fl, "_sum") == 0 ||
                  strcmp(name + fl, "_count") == 0);
            suffix = name + fl;
        }
        if (!ok)
            fail_msg("line %d: sample %s outside its family %s", lineno, name, fam);
        const char *p = line + nl;
        char le[256] = "";
        char labels_wo_le[512];
        snprintf(labels_wo_le, sizeof(labels_wo_le), "%s|", fam); /* series of this family */
        if (*p == '{') {
            p++;
            bool first = true;
            while (*p != '}') {
                if (!first) {
                    if (*p != ',')
                        fail_msg("line %d: expected , in labels: %s", lineno, line);
                    p++;
                }
                first = false;
                size_t ll = strcspn(p, "=");
                if (!name_ok(p, ll, true) || p[ll] != '=' || p[ll + 1] != '"')
                    fail_msg("line %d: bad label: %s", lineno, line);
                char lname[64];
                snprintf(lname, sizeof(lname), "%.*s", (int)ll, p);
                p += ll + 2;
                char val[256];
                size_t vo = 0;
                while (*p && *p != '"') {
                    if (*p == '\\') {
                        p++;
                        if (*p != '\\' && *p != '"' && *p != 'n')
                            fail_msg("line %d: bad escape: %s", lineno, line);
                    }
                    if (vo + 1 < sizeof(val))
                        val[vo++] = *p;
                    p++;
                }
                val[vo] = '\0';
                if (*p != '"')
                    fail_msg("line %d: unterminated label value: %s", lineno, line);
                p++;
                if (strcmp(lname, "le") == 0)
                    snprintf(le, sizeof(le), "%s", val);
                else {
                    strncat(labels_wo_le, lname, sizeof(labels_wo_le) - strlen(labels_wo_le) - 1);
                    strncat(labels_wo_le, "=", sizeof(labels_wo_le) - strlen(labels_wo_le) - 1);
                    strncat(labels_wo_le, val, sizeof(labels_wo_le) - strlen(labels_wo_le) - 1);
                    strncat(labels_wo_le, ",", sizeof(labels_wo_le) - strlen(labels_wo_le) - 1);
                }
            }
            p++;
        }
        if (*p != ' ')
            fail_msg("line %d: expected a space before the value: %s", lineno, line);
        p++;
        char *end;
        double v = strtod(p, &end);
        if (end == p || (*end != '\0' && *end != ' '))
            fail_msg("line %d: bad value: %s", lineno, line);
        if (*end == ' ') {
            /* optional timestamp: integer milliseconds */
            char *e2;
            strtoll(end + 1, &e2, 10);
            if (*e2)
                fail_msg("line %d: bad timestamp: %s", lineno, line);
        }
        if ((strcmp(type, "counter") == 0 || *suffix) && v < 0)
            fail_msg("line %d: negative counter: %s", lineno, line);
        char key[512];
        snprintf(key, sizeof(key), "%.*s", (int)(p - 1 - line), line);
        for (int i = 0; i < nseen; i++)
            if (strcmp(seen[i].key, key) == 0)
                fail_msg("line %d: duplicate series %s", lineno, key);
        if (nseen < 20000)
            snprintf(seen[nseen++].key, sizeof(seen[0].key), "%s", key);
        if (strcmp(suffix, "_bucket") == 0) {
            if (!le[0])
                fail_msg("line %d: bucket without le: %s", lineno, line);
            if (strcmp(bucket_series, labels_wo_le) != 0) {
                snprintf(bucket_series, sizeof(bucket_series), "%s", labels_wo_le);
                last_bucket = -1;
            }
            if (v < last_bucket)
                fail_msg("line %d: buckets not cumulative: %s", lineno, line);
            last_bucket = v;
        } else if (strcmp(suffix, "_count") == 0) {
            if (strcmp(bucket_series, labels_wo_le) != 0 || v != last_bucket)
                fail_msg("line %d: _count differs from the +Inf bucket: %s", lineno, line);
        }
    }
    free(copy);
    free(seen);
}

/* sum of the samples of a metric whose labels contain want (e.g. database="tusk") */
static double metric_sum(const char *text, const char *metric, const char *want)
{
    double t = 0;
    size_t ml = strlen(metric);
    for (const char *l = text; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l)) {
        if (strncmp(l, metric, ml) != 0 || (l[ml] != '{' && l[ml] != ' '))
            continue;
        const char *eol = strchr(l, '\n');
        size_t len = eol ? (size_t)(eol - l) : strlen(l);
        char line[1024];
        snprintf(line, sizeof(line), "%.*s", (int)len, l);
        if (want && !strstr(line, want))
            continue;
        t += strtod(strrchr(line, ' ') + 1, NULL);
    }
    return t;
}

static void test_counters_follow(void **state)
{
    (void)state;
    PGconn *a = admin("tusk", "tusk");
    PGconn *c = pxt_connect(&px, "tusk", "tusk", "tusk");
    pxt_exec(c, "SELECT 1"); /* the pool exists */
    int st;
    char *m0 = http_get("/metrics", &st);
    assert_int_equal(st, 200);
    check_exposition(m0);
    check_with_promtool(m0);
    double q0 = metric_sum(m0, "tusk_queries_total", "database=\"tusk\"");
    double x0 = metric_sum(m0, "tusk_transactions_total", "database=\"tusk\"");
    long long c0 = cell(a, "SHOW STATS_TOTALS", "tusk", "query_count");
    const int N = 37;
    for (int i = 0; i < N; i++)
        pxt_exec(c, "SELECT 1");
    /* the counters are read from the workers at request time: exact at once */
    long long c1 = cell(a, "SHOW STATS_TOTALS", "tusk", "query_count");
    assert_int_equal(c1 - c0, N);
    assert_int_equal(cell(a, "SHOW STATS", "tusk", "total_query_count") - c0, N);
    char *m1 = http_get("/metrics", &st);
    assert_int_equal(st, 200);
    check_exposition(m1);
    double q1 = metric_sum(m1, "tusk_queries_total", "database=\"tusk\"");
    double x1 = metric_sum(m1, "tusk_transactions_total", "database=\"tusk\"");
    assert_true(q1 - q0 == N);
    assert_true(x1 - x0 == N);
    double h1 = metric_sum(m1, "tusk_query_duration_seconds_count", "database=\"tusk\"");
    assert_true(h1 >= q1 - 1); /* every query lands in the histogram */
    /* prepared statements: each execution is a hit or a miss of the server's cache */
    double p0 = metric_sum(m1, "tusk_prepared_statement_hits_total", "database=\"tusk\"") +
                metric_sum(m1, "tusk_prepared_statement_misses_total", "database=\"tusk\"");
    PGresult *pr = PQprepare(c, "adm_st", "SELECT $1::int", 0, NULL);
    assert_int_equal(PQresultStatus(pr), PGRES_COMMAND_OK);
    PQclear(pr);
    const int M = 5;
    for (int i = 0; i < M; i++) {
        const char *v[1] = {"7"};
        pr = PQexecPrepared(c, "adm_st", 1, v, NULL, NULL, 0);
        assert_int_equal(PQresultStatus(pr), PGRES_TUPLES_OK);
        PQclear(pr);
    }
    char *m2 = http_get("/metrics", &st);
    check_exposition(m2);
    double miss = metric_sum(m2, "tusk_prepared_statement_misses_total", "database=\"tusk\"");
    double p1 = metric_sum(m2, "tusk_prepared_statement_hits_total", "database=\"tusk\"") + miss;
    assert_true(p1 - p0 >= M);
    assert_true(miss >= 1);
    free(m2);
    /* SHOW POOLS: our client is active in the tusk pool */
    assert_true(cell(a, "SHOW POOLS", "tusk", "cl_active") >= 1);
    /* SHOW CLIENTS lists both of us */
    PGresult *r = PQexec(a, "SHOW CLIENTS");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    int mine = 0, adm = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        if (strcmp(PQgetvalue(r, i, 2), "tusk") == 0 && strcmp(PQgetvalue(r, i, 1), "tusk") == 0)
            mine++;
        if (strcmp(PQgetvalue(r, i, 2), "pgbouncer") == 0)
            adm++;
    }
    PQclear(r);
    assert_int_equal(mine, 1);
    assert_int_equal(adm, 1);
    /* a second client appears */
    PGconn *c2 = pxt_connect(&px, "tusk_md5", "md5pass", "tusk");
    pxt_exec(c2, "SELECT 1");
    r = PQexec(a, "SHOW CLIENTS");
    int n2 = 0;
    for (int i = 0; i < PQntuples(r); i++)
        n2 += strcmp(PQgetvalue(r, i, 2), "tusk") == 0;
    PQclear(r);
    assert_int_equal(n2, 2);
    PQfinish(c2);
    free(m0);
    free(m1);
    PQfinish(c);
    PQfinish(a);
}

static void expect_error(PGconn *a, const char *sql)
{
    PGresult *r = PQexec(a, sql);
    if (PQresultStatus(r) != PGRES_FATAL_ERROR)
        fail_msg("%s: expected an error, got %s", sql, PQresStatus(PQresultStatus(r)));
    PQclear(r);
    assert_int_equal(PQstatus(a), CONNECTION_OK);
}

static void test_bad_commands(void **state)
{
    (void)state;
    PGconn *a = admin("tusk", "tusk");
    const char *bad[] = {"SHOW FOO",
                         "BOGUS",
                         "SHOW",
                         "KILL",
                         "KILL nosuchdb",
                         "SET nokey = 1",
                         "SET default_pool_size = banana",
                         "SET listen_port = 1",
                         "BAN tusk",
                         "BAN nodb 1",
                         "PAUSE a b",
                         "SHOW POOLS extra",
                         "select * from pg_class",
                         "DISABLE"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_error(a, bad[i]);
    /* still alive and answering */
    char *v = pxt_value(a, "SHOW VERSION");
    free(v);
    /* extended protocol is refused, the session survives */
    PGresult *r = PQexecParams(a, "SHOW POOLS", 0, NULL, NULL, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    PQclear(r);
    v = pxt_value(a, "SHOW VERSION");
    free(v);
    /* a stats user may look but not touch */
    PGconn *s = admin("tusk_md5", "md5pass");
    PQclear(PQexec(s, "SHOW POOLS"));
    char *st = pxt_error(s, "RELOAD");
    assert_string_equal(st, "42501");
    free(st);
    PQfinish(s);
    /* other users cannot log in to the console */
    PGconn *n = pxt_try_connect(px.port, "tusk_plain", "plainpass", "pgbouncer", NULL);
    assert_int_not_equal(PQstatus(n), CONNECTION_OK);
    PQfinish(n);
    PGconn *w = pxt_try_connect(px.port, "tusk", "wrong", "pgbouncer", NULL);
    assert_int_not_equal(PQstatus(w), CONNECTION_OK);
    PQfinish(w);
    PQfinish(a);
}

static void test_admin_commands(void **state)
{
    (void)state;
    PGconn *a = admin("tusk", "tusk");
    /* DISABLE refuses new clients, ENABLE lets them in again */
    pxt_exec(a, "DISABLE bench");
    assert_int_equal(cell(a, "SHOW DATABASES", "bench", "disabled"), 1);
    PGconn *b = pxt_try_connect(px.port, "tusk", "tusk", "bench", NULL);
    assert_int_not_equal(PQstatus(b), CONNECTION_OK);
    PQfinish(b);
    pxt_exec(a, "ENABLE bench");
    b = pxt_connect(&px, "tusk", "tusk", "bench");
    pxt_exec(b, "SELECT 1");
    /* PAUSE holds new transactions, RESUME runs them */
    pxt_exec(a, "PAUSE bench");
    assert_int_equal(PQsendQuery(b, "SELECT 42"), 1);
    struct pollfd p = {.fd = PQsocket(b), .events = POLLIN};
    assert_int_equal(poll(&p, 1, 500), 0); /* no answer while paused */
    pxt_exec(a, "RESUME bench");
    PGresult *r;
    bool got = false;
    while ((r = PQgetResult(b))) {
        if (PQresultStatus(r) == PGRES_TUPLES_OK)
            got = strcmp(PQgetvalue(r, 0, 0), "42") == 0;
        PQclear(r);
    }
    assert_true(got);
    /* KILL closes the database's clients */
    pxt_exec(a, "KILL bench");
    for (int i = 0; i < 50; i++) {
        PQclear(PQexec(b, "SELECT 1"));
        if (PQstatus(b) != CONNECTION_OK)
            break;
        usleep(20000);
    }
    assert_int_not_equal(PQstatus(b), CONNECTION_OK);
    PQfinish(b);
    /* SET changes a runtime setting (applied by a reload) */
    pxt_exec(a, "SET default_pool_size = 7");
    char *v = NULL;
    for (int i = 0; i < 50; i++) {
        free(v);
        PGresult *cr = PQexec(a, "SHOW CONFIG");
        v = NULL;
        for (int k = 0; k < PQntuples(cr); k++)
            if (strcmp(PQgetvalue(cr, k, 0), "default_pool_size") == 0)
                v = strdup(PQgetvalue(cr, k, 1));
        PQclear(cr);
        if (v && strcmp(v, "7") == 0)
            break;
        usleep(50000);
    }
    assert_string_equal(v, "7");
    free(v);
    pxt_exec(a, "RECONNECT tusk");
    pxt_exec(a, "RELOAD");
    PQfinish(a);
}

static void test_http(void **state)
{
    (void)state;
    int st;
    char *b = http_get("/health", &st);
    assert_int_equal(st, 200);
    free(b);
    b = http_get("/ready", &st);
    assert_int_equal(st, 200);
    free(b);
    b = http_get("/nope", &st);
    assert_int_equal(st, 404);
    free(b);
    b = http_get("/", &st);
    assert_int_equal(st, 200);
    assert_non_null(strstr(b, "<meta http-equiv=\"refresh\""));
    assert_null(strstr(b, "<script"));
    free(b);
    /* garbage gets 400, never a crash */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)http_port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    const char junk[] = "\x01\x02garbage\r\n\r\n";
    assert_true(send(fd, junk, sizeof(junk) - 1, 0) > 0);
    char buf[256] = "";
    struct pollfd p = {.fd = fd, .events = POLLIN};
    assert_true(poll(&p, 1, 3000) == 1);
    assert_true(recv(fd, buf, sizeof(buf) - 1, 0) > 0);
    assert_non_null(strstr(buf, " 400 "));
    close(fd);
    b = http_get("/ready", &st);
    assert_int_equal(st, 200);
    free(b);
}

/* "tusk top" (proxy_top_main) draws two screens from /metrics and exits */
static void test_top(void **state)
{
    (void)state;
    char out[] = "/tmp/tusk-top-XXXXXX";
    int fd = mkstemp(out);
    assert_true(fd >= 0);
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fd, 1);
        char addr[64];
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", http_port);
        char *argv[] = {"top", "-n", "2", addr, NULL};
        _exit(proxy_top_main(4, argv));
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char buf[8192] = "";
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    assert_true(n > 0);
    close(fd);
    unlink(out);
    assert_non_null(strstr(buf, "QUERIES/s"));
    assert_non_null(strstr(buf, "tusk "));
    /* a proxy that is not there: an error, not a hang */
    pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        char *argv[] = {"top", "-n", "1", "127.0.0.1:1", NULL};
        _exit(proxy_top_main(4, argv));
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
}

/* RECONNECT marks a busy server (close_needed = 1); WAIT_CLOSE answers only once it is gone,
 * without holding up the rest of the console; SHOW TOTALS sums SHOW STATS */
static void test_wait_close(void **state)
{
    (void)state;
    PGconn *a = admin("tusk", "tusk");
    PGconn *w = admin("tusk", "tusk");
    PGconn *x = pxt_connect(&px, "tusk", "tusk", "tusk");
    pxt_exec(x, "BEGIN");
    pxt_exec(x, "SELECT 1");
    pxt_exec(a, "RECONNECT tusk");
    PGresult *r = PQexec(a, "SHOW SERVERS");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    int marked = 0, col = PQfnumber(r, "close_needed");
    for (int i = 0; i < PQntuples(r); i++)
        marked += atoi(PQgetvalue(r, i, col));
    PQclear(r);
    assert_int_equal(marked, 1); /* the one in a transaction; idle ones closed at once */
    assert_true(PQsendQuery(w, "WAIT_CLOSE tusk"));
    double t0 = svc_now_ms();
    while (svc_now_ms() - t0 < 400) {
        assert_true(PQconsumeInput(w));
        assert_true(PQisBusy(w));      /* still waiting */
        r = PQexec(a, "SHOW VERSION"); /* the console goes on meanwhile */
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        PQclear(r);
        usleep(50 * 1000);
    }
    pxt_exec(x, "COMMIT"); /* the server is released, so closed */
    r = PQgetResult(w);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    assert_string_equal(PQcmdStatus(r), "WAIT_CLOSE");
    PQclear(r);
    assert_null(PQgetResult(w));
    assert_true(svc_now_ms() - t0 < 3000);
    r = PQexec(w, "WAIT_CLOSE"); /* nothing to wait for */
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    r = PQexec(w, "SUSPEND");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "0A000");
    PQclear(r);
    /* SHOW TOTALS: the sum of SHOW STATS_TOTALS over databases */
    long long sum = 0, totals = -1;
    r = PQexec(a, "SHOW STATS_TOTALS");
    for (int i = 0; i < PQntuples(r); i++)
        sum += atoll(PQgetvalue(r, i, PQfnumber(r, "query_count")));
    PQclear(r);
    r = PQexec(a, "SHOW TOTALS");
    for (int i = 0; i < PQntuples(r); i++)
        if (strcmp(PQgetvalue(r, i, 0), "total_query_count") == 0)
            totals = atoll(PQgetvalue(r, i, 1));
    assert_int_equal(PQntuples(r), 14);
    PQclear(r);
    assert_true(totals >= sum && totals <= sum + 2); /* the console's own may land between */
    PQfinish(x);
    PQfinish(w);
    PQfinish(a);
}

int main(void)
{
    if (!getenv("TUSK_PG_PRIMARY_PORT")) {
        fprintf(stderr, "no services (scripts/services); skipped\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_columns),      cmocka_unit_test(test_counters_follow),
        cmocka_unit_test(test_bad_commands), cmocka_unit_test(test_http),
        cmocka_unit_test(test_top),          cmocka_unit_test(test_admin_commands),
        cmocka_unit_test(test_wait_close),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
