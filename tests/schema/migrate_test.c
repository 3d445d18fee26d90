/* Integration tests for "tusk migrate" (schema/migrate.c) against the real PostgreSQL of
 * scripts/services: applies everything once, is idempotent, two concurrent migrators apply
 * each file exactly once, timestamp_id() has Mastodon's layout, bad DSNs fail clearly. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "schema/internal.h"
#include "tests/schema/db.h"
#include "tests/support/support.h"

static const char *bin(void)
{
    return svc_env("TUSK_BIN");
}

static int count_lines_with(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static void test_migrate_twice(void **state)
{
    char name[64], dsn[256], *out = NULL;
    tdb_create("twice", name, sizeof name, dsn, sizeof dsn);
    size_t known;
    assert_non_null(schema_migrations(&known));

    int rc = tdb_run(&out, "%s migrate '%s'", bin(), dsn);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "applied 0001_mastodon_core"));
    assert_int_equal(count_lines_with(out, "applied "), (int)known);
    free(out);

    PGconn *c = tdb_connect(dsn);
    assert_int_equal(tdb_int(c, "SELECT count(*) FROM tusk_schema_migrations"), (long long)known);
    /* Mastodon's tables and tusk's outbox exist, with the key columns */
    assert_int_equal(tdb_int(c, "SELECT count(*) FROM information_schema.tables WHERE "
                                "table_schema = 'public' AND table_name IN ('accounts', "
                                "'account_stats', 'users', 'statuses', 'follows', 'lists', "
                                "'list_accounts', 'blocks', 'mutes', 'mentions', "
                                "'oauth_applications', 'oauth_access_tokens', 'status_stats', "
                                "'tusk_outbox')"),
                     14);
    assert_int_equal(tdb_int(c, "SELECT count(*) FROM information_schema.columns WHERE "
                                "table_name = 'lists' AND column_name IN ('replies_policy', "
                                "'exclusive')"),
                     2);
    assert_int_equal(tdb_int(c, "SELECT count(*) FROM pg_indexes WHERE indexname IN "
                                "('index_follows_on_account_id_and_target_account_id', "
                                "'index_accounts_on_username_and_domain_lower', "
                                "'index_statuses_20190820', 'index_tusk_outbox_unsent')"),
                     4);

    rc = tdb_run(&out, "%s migrate '%s'", bin(), dsn);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "nothing to do"));
    assert_int_equal(count_lines_with(out, "applied "), 0);
    free(out);
    assert_int_equal(tdb_int(c, "SELECT count(*) FROM tusk_schema_migrations"), (long long)known);

    /* --status lists them as applied */
    rc = tdb_run(&out, "%s migrate --status '%s'", bin(), dsn);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "0 pending"));
    free(out);

    /* the library entry point agrees: nothing left to do */
    char err[512];
    assert_int_equal(schema_migrate(dsn, NULL, err, sizeof err), 0);
    PQfinish(c);
    tdb_drop(name);
}

static void test_concurrent_migrators(void **state)
{
    char name[64], dsn[256];
    tdb_create("conc", name, sizeof name, dsn, sizeof dsn);
    size_t known;
    assert_non_null(schema_migrations(&known));
    /* both started before either finishes; their outputs are collected after */
    char outa[256], outb[256];
    snprintf(outa, sizeof outa, "/tmp/%s_a.out", name);
    snprintf(outb, sizeof outb, "/tmp/%s_b.out", name);
    char *out = NULL;
    int rc = tdb_run(&out,
                     "%s migrate '%s' >%s 2>&1 & a=$!; %s migrate '%s' >%s 2>&1 & b=$!; "
                     "wait $a; ra=$?; wait $b; rb=$?; exit $((ra + rb))",
                     bin(), dsn, outa, bin(), dsn, outb);
    free(out);
    char *ta = NULL, *tb = NULL;
    assert_int_equal(tdb_run(&ta, "cat %s", outa), 0);
    assert_int_equal(tdb_run(&tb, "cat %s", outb), 0);
    if (rc != 0)
        fail_msg("concurrent migrate failed:\n--- a\n%s\n--- b\n%s", ta, tb);
    /* every migration ran exactly once across the two */
    assert_int_equal(count_lines_with(ta, "applied ") + count_lines_with(tb, "applied "),
                     (int)known);
    free(ta);
    free(tb);
    remove(outa);
    remove(outb);
    PGconn *c = tdb_connect(dsn);
    assert_int_equal(tdb_int(c, "SELECT count(*) FROM tusk_schema_migrations"), (long long)known);
    PQfinish(c);
    tdb_drop(name);
}

static void test_timestamp_id_layout(void **state)
{
    char name[64], dsn[256], err[512];
    tdb_create("tsid", name, sizeof name, dsn, sizeof dsn);
    assert_true(schema_migrate(dsn, NULL, err, sizeof err) > 0);
    PGconn *c = tdb_connect(dsn);
    long long before = tdb_int(c, "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint");
    PGresult *r = PQexec(c, "SELECT timestamp_id('statuses') FROM generate_series(1, 2000)");
    long long after = tdb_int(c, "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 2000);
    long long prev_ms = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        long long id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        long long ms = id >> 16;
        /* the high 48 bits are the insert time in ms: within the statement's window */
        assert_in_range(ms, before - 1, after + 1);
        /* later rows never go back in time (within a ms the tail is hashed, so only the ms
         * part is monotonic: "monotonic-ish", as in Mastodon) */
        assert_true(ms >= prev_ms);
        prev_ms = ms;
    }
    PQclear(r);
    assert_int_equal(tdb_int(c, "SELECT count(DISTINCT timestamp_id('statuses')) "
                                "FROM generate_series(1, 5000)"),
                     5000);
    /* it is the default of accounts.id and statuses.id */
    long long id = tdb_int(c, "INSERT INTO accounts (username, created_at, updated_at) VALUES "
                              "('alice', now(), now()) RETURNING id");
    long long now_ms = tdb_int(c, "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint");
    assert_in_range(id >> 16, now_ms - 5000, now_ms);
    char sql[256];
    snprintf(sql, sizeof sql,
             "INSERT INTO statuses (account_id, created_at, updated_at) VALUES (%lld, now(), "
             "now()) RETURNING id",
             id);
    long long sid = tdb_int(c, sql);
    assert_in_range(sid >> 16, now_ms - 5000, now_ms + 5000);
    /* Mastodon's unique (lower(username), lower(domain)) index holds */
    r = PQexec(c, "INSERT INTO accounts (username, created_at, updated_at) VALUES "
                  "('ALICE', now(), now())");
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "23505");
    PQclear(r);
    PQfinish(c);
    tdb_drop(name);
}

static void test_bad_dsn(void **state)
{
    char *out = NULL;
    int port = svc_free_port();
    int rc = tdb_run(&out, "%s migrate 'host=127.0.0.1 port=%d dbname=x connect_timeout=3'", bin(),
                     port);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "cannot connect to the database"));
    assert_non_null(strstr(out, "Connection refused"));
    free(out);

    rc = tdb_run(&out, "%s migrate 'postgresql://%s:%s@%s:%s/no_such_db_here'", bin(),
                 svc_env("TUSK_PG_USER"), svc_env("TUSK_PG_PASSWORD"), svc_env("TUSK_PG_HOST"),
                 svc_env("TUSK_PG_PRIMARY_PORT"));
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "no_such_db_here"));
    assert_non_null(strstr(out, "does not exist"));
    free(out);

    rc = tdb_run(&out, "%s migrate 'this is not a dsn'", bin());
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "tusk migrate: cannot connect"));
    free(out);

    rc = tdb_run(&out, "%s migrate", bin());
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "usage: tusk migrate"));
    free(out);

    rc = tdb_run(&out, "%s migrate --bogus x", bin());
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "unknown option"));
    free(out);
}

int main(void)
{
    svc_env("TUSK_PG_PRIMARY_PORT"); /* skip (77) without services */
    svc_env("TUSK_BIN");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrate_twice),
        cmocka_unit_test(test_concurrent_migrators),
        cmocka_unit_test(test_timestamp_id_layout),
        cmocka_unit_test(test_bad_dsn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
