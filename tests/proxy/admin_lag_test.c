/*
 * Integration test of the routing figures of the operators' view while the router works: reads
 * sent through a database with replicas show up in SHOW REPLICAS / SHOW ROUTING and /metrics;
 * lag rises in both while replay is paused on a replica (SERIAL: it pauses a shared standby);
 * BAN / UNBAN; and the status page rendered by headless Chromium shows a non-blank lag chart
 * (the PNG is decoded here with zlib; skipped when Chromium is not installed).
 */
#include "tests/proxy/pxtest.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

static pxt_proxy px;
static int http_port;
static bool replay_paused;

static PGconn *replica1(void)
{
    char ci[256];
    snprintf(ci, sizeof(ci), "host=%s port=%s user=postgres dbname=tusk", svc_env("TUSK_PG_HOST"),
             svc_env("TUSK_PG_REPLICA1_PORT"));
    PGconn *c = PQconnectdb(ci);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    return c;
}

static void set_replay(bool pause)
{
    PGconn *c = replica1();
    PGresult *r =
        PQexec(c, pause ? "SELECT pg_wal_replay_pause()" : "SELECT pg_wal_replay_resume()");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    PQfinish(c);
    replay_paused = pause;
}

static int setup(void **state)
{
    (void)state;
    http_port = svc_free_port();
    char extra[512], db[512];
    snprintf(extra, sizeof(extra),
             "pool_mode = transaction\nadmin_users = tusk\nadmin_listen = 127.0.0.1:%d\n"
             "monitor_user = tusk\nmonitor_password = tusk\n",
             http_port);
    snprintf(db, sizeof(db), "routed = host=%s port=%s dbname=tusk replicas=%s:%s,%s:%s\n",
             svc_env("TUSK_PG_HOST"), svc_env("TUSK_PG_PRIMARY_PORT"), svc_env("TUSK_PG_HOST"),
             svc_env("TUSK_PG_REPLICA1_PORT"), svc_env("TUSK_PG_HOST"),
             svc_env("TUSK_PG_REPLICA2_PORT"));
    pxt_start(&px, extra, db, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (replay_paused) {
        PGconn *c = replica1();
        PQclear(PQexec(c, "SELECT pg_wal_replay_resume()"));
        PQfinish(c);
    }
    if (px.port)
        pxt_stop(&px, SIGTERM);
    return 0;
}

static char *http_get(const char *path, int *status)
{
    return pxt_http_get(http_port, path, status);
}

/* value of the sample whose name+labels start with prefix */
static double metric(const char *text, const char *prefix)
{
    const char *p = strstr(text, prefix);
    if (!p)
        return -1;
    const char *eol = strchr(p, '\n');
    const char *sp = p;
    while (sp < eol && *sp != ' ')
        sp++;
    return strtod(sp + 1, NULL);
}

/* numeric column of a SHOW REPLICAS row (database routed, node idx) */
static double replica_cell(PGconn *a, int node, const char *col)
{
    PGresult *r = PQexec(a, "SHOW REPLICAS");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    double v = -1;
    int ci = PQfnumber(r, col);
    for (int i = 0; i < PQntuples(r); i++)
        if (strcmp(PQgetvalue(r, i, 0), "routed") == 0 && atoi(PQgetvalue(r, i, 1)) == node)
            v = strtod(PQgetvalue(r, i, ci), NULL);
    PQclear(r);
    return v;
}

static char *replica_text(PGconn *a, int node, const char *col)
{
    PGresult *r = PQexec(a, "SHOW REPLICAS");
    char *v = NULL;
    int ci = PQfnumber(r, col);
    for (int i = 0; i < PQntuples(r); i++)
        if (strcmp(PQgetvalue(r, i, 0), "routed") == 0 && atoi(PQgetvalue(r, i, 1)) == node)
            v = strdup(PQgetvalue(r, i, ci));
    PQclear(r);
    return v ? v : strdup("");
}

static double routing_reads(PGconn *a)
{
    PGresult *r = PQexec(a, "SHOW ROUTING");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    double t = -1;
    for (int i = 0; i < PQntuples(r); i++)
        if (strcmp(PQgetvalue(r, i, 0), "routed") == 0) {
            t = 0;
            for (int k = 1; k <= 6; k++) /* reads_replica .. reads_primary_pinned */
                t += strtod(PQgetvalue(r, i, k), NULL);
        }
    PQclear(r);
    return t;
}

static void test_reads_and_lag(void **state)
{
    (void)state;
    PGconn *a = pxt_connect(&px, "tusk", "tusk", "pgbouncer");
    /* the monitors find the roles */
    char *role = NULL;
    for (int i = 0; i < 100; i++) {
        free(role);
        role = replica_text(a, 1, "role");
        if (strcmp(role, "replica") == 0)
            break;
        usleep(50000);
    }
    assert_string_equal(role, "replica");
    free(role);
    char *prole = replica_text(a, 0, "role");
    assert_string_equal(prole, "primary");
    free(prole);

    PGconn *c = pxt_connect(&px, "tusk", "tusk", "routed");
    pxt_exec(c, "SELECT 1");
    double r0 = routing_reads(a);
    double n0 = replica_cell(a, 1, "reads_routed") + replica_cell(a, 2, "reads_routed") +
                replica_cell(a, 0, "reads_routed");
    int st;
    char *m0 = http_get("/metrics", &st);
    double mr0 = metric(m0, "tusk_routed_reads_total{database=\"routed\",route=\"replica\"");
    const int N = 30;
    for (int i = 0; i < N; i++)
        pxt_exec(c, "SELECT 1");
    double r1 = routing_reads(a);
    assert_true(r1 - r0 == N); /* every read counted once, in some reason */
    double n1 = replica_cell(a, 1, "reads_routed") + replica_cell(a, 2, "reads_routed") +
                replica_cell(a, 0, "reads_routed");
    char *m1 = http_get("/metrics", &st);
    double mr1 = metric(m1, "tusk_routed_reads_total{database=\"routed\",route=\"replica\"");
    /* the replica reads of /metrics and of the nodes agree */
    assert_true(mr1 - mr0 == n1 - n0);
    assert_true(n1 - n0 > 0);
    free(m0);
    free(m1);

    /* pause replay on replica 1 and write: its lag rises in the console and in /metrics */
    assert_true(replica_cell(a, 1, "lag_bytes") < 1e6);
    set_replay(true);
    PGconn *w = pxt_direct("tusk");
    pxt_exec(w, "CREATE TABLE IF NOT EXISTS admin_lag_test(x int)");
    double lag_b = 0, lag_ms = 0, mlag_b = 0, mlag_s = 0;
    for (int i = 0; i < 60; i++) {
        pxt_exec(w, "INSERT INTO admin_lag_test SELECT generate_series(1, 2000)");
        usleep(100000);
        lag_b = replica_cell(a, 1, "lag_bytes");
        lag_ms = replica_cell(a, 1, "lag_ms");
        if (lag_b > 100000 && lag_ms > 1500)
            break;
    }
    assert_true(lag_b > 100000);
    assert_true(lag_ms > 1500);
    char *m2 = http_get("/metrics", &st);
    mlag_b = metric(m2, "tusk_replica_lag_bytes{database=\"routed\",node=\"1\"");
    mlag_s = metric(m2, "tusk_replica_lag_seconds{database=\"routed\",node=\"1\"");
    assert_true(mlag_b >= lag_b);
    assert_true(mlag_s >= 1.5);
    /* replica 2 kept up */
    assert_true(metric(m2, "tusk_replica_lag_bytes{database=\"routed\",node=\"2\"") < lag_b);
    free(m2);
    pxt_exec(w, "DROP TABLE admin_lag_test");
    PQfinish(w);

    /* BAN / UNBAN */
    pxt_exec(a, "BAN routed 2");
    char *s = replica_text(a, 2, "state");
    assert_non_null(strstr(s, "banned"));
    free(s);
    pxt_exec(a, "UNBAN routed 2");
    s = replica_text(a, 2, "state");
    assert_null(strstr(s, "banned"));
    free(s);

    /* the status page shows the lag; keep replay paused while Chromium draws it */
    PQfinish(c);
    PQfinish(a);
}

/* ---- a tiny PNG reader (8-bit RGB / RGBA, not interlaced) ---- */

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint8_t *png_decode(const char *path, int *w, int *h, int *bpp)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)sz);
    assert_int_equal(fread(buf, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    assert_memory_equal(buf, "\x89PNG\r\n\x1a\n", 8);
    uint8_t *idat = malloc((size_t)sz);
    size_t ilen = 0;
    int depth = 0, ctype = 0, interlace = 0;
    for (long pos = 8; pos + 12 <= sz;) {
        uint32_t len = be32(buf + pos);
        const uint8_t *type = buf + pos + 4, *data = buf + pos + 8;
        assert_true(pos + 12 + (long)len <= sz);
        if (memcmp(type, "IHDR", 4) == 0) {
            *w = (int)be32(data);
            *h = (int)be32(data + 4);
            depth = data[8];
            ctype = data[9];
            interlace = data[12];
        } else if (memcmp(type, "IDAT", 4) == 0) {
            memcpy(idat + ilen, data, len);
            ilen += len;
        }
        pos += 12 + len;
    }
    assert_int_equal(depth, 8);
    assert_int_equal(interlace, 0);
    assert_true(ctype == 2 || ctype == 6);
    *bpp = ctype == 6 ? 4 : 3;
    size_t stride = (size_t)*w * (size_t)*bpp;
    uLongf rawlen = (uLongf)((stride + 1) * (size_t)*h);
    uint8_t *raw = malloc(rawlen);
    assert_int_equal(uncompress(raw, &rawlen, idat, (uLong)ilen), Z_OK);
    assert_int_equal(rawlen, (stride + 1) * (size_t)*h);
    uint8_t *img = calloc(stride * (size_t)*h, 1);
    for (int y = 0; y < *h; y++) {
        uint8_t ft = raw[(size_t)y * (stride + 1)];
        const uint8_t *src = raw + (size_t)y * (stride + 1) + 1;
        uint8_t *dst = img + (size_t)y * stride;
        const uint8_t *up = y ? dst - stride : NULL;
        for (size_t x = 0; x < stride; x++) {
            int a = x >= (size_t)*bpp ? dst[x - (size_t)*bpp] : 0;
            int b = up ? up[x] : 0;
            int c = (up && x >= (size_t)*bpp) ? up[x - (size_t)*bpp] : 0;
            int v = src[x];
            switch (ft) {
            case 0:
                break;
            case 1:
                v += a;
                break;
            case 2:
                v += b;
                break;
            case 3:
                v += (a + b) / 2;
                break;
            case 4: {
                int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
                v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
                break;
            }
            default:
                fail_msg("bad PNG filter %d", ft);
            }
            dst[x] = (uint8_t)v;
        }
    }
    free(raw);
    free(idat);
    free(buf);
    return img;
}

static void test_status_page_screenshot(void **state)
{
    (void)state;
    if (svc_sh("command -v chromium >/dev/null 2>&1") != 0)
        skip();
    /* the chart needs some seconds of history, some with lag: replay is still paused */
    PGconn *w = pxt_direct("tusk");
    pxt_exec(w, "CREATE TABLE IF NOT EXISTS admin_lag_test2(x int)");
    for (int i = 0; i < 25; i++) {
        pxt_exec(w, "INSERT INTO admin_lag_test2 SELECT generate_series(1, 1000)");
        usleep(100000);
    }
    pxt_exec(w, "DROP TABLE admin_lag_test2");
    PQfinish(w);
    char dir[] = "/tmp/tusk-shot-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char png[300];
    snprintf(png, sizeof(png), "%s/page.png", dir);
    int rc = svc_sh("cd %s && timeout 60 chromium --headless --no-sandbox --disable-gpu "
                    "--disable-quic --no-first-run --disable-background-networking "
                    "--disable-component-update --disable-sync --user-data-dir=%s/profile "
                    "--screenshot=%s --window-size=1200,900 http://127.0.0.1:%d/ "
                    ">%s/chromium.log 2>&1",
                    dir, dir, png, http_port, dir);
    assert_int_equal(rc, 0);
    set_replay(false);
    int w_ = 0, h_ = 0, bpp = 0;
    uint8_t *img = png_decode(png, &w_, &h_, &bpp);
    assert_int_equal(w_, 1200);
    assert_int_equal(h_, 900);
    /* chart pixels: the blue fill / stroke of the lag area (links are pure blue / purple, the
     * page background white, the chart background grey) */
    long chart = 0, nonwhite = 0;
    for (int y = 0; y < h_; y++)
        for (int x = 0; x < w_; x++) {
            const uint8_t *p = img + ((size_t)y * (size_t)w_ + (size_t)x) * (size_t)bpp;
            if (p[2] > p[0] + 40 && p[1] > p[0] + 20)
                chart++;
            if (p[0] < 250 || p[1] < 250 || p[2] < 250)
                nonwhite++;
        }
    free(img);
    if (chart < 100 || nonwhite < 10000)
        fail_msg("status page looks blank: %ld chart pixels, %ld non-white", chart, nonwhite);
    svc_sh("rm -rf %s", dir);
}

int main(void)
{
    if (!getenv("TUSK_PG_PRIMARY_PORT") || !getenv("TUSK_PG_REPLICA1_PORT")) {
        fprintf(stderr, "no services (scripts/services); skipped\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_and_lag),
        cmocka_unit_test(test_status_page_screenshot),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
