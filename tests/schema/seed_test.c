/* Integration tests for "tusk seed" (schema/seed.c) against the real PostgreSQL of
 * scripts/services: counts match the flags, big accounts get exact follower counts, counters
 * agree with the rows, tokens resolve to users, the same seed gives identical tables. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include "schema/internal.h"
#include "tests/schema/db.h"
#include "tests/support/support.h"

static char g_name[64], g_dsn[256];
static long long g_now;

#define FLAGS                                                                                      \
    "--accounts 1500 --follows 12000 --statuses 4000 --lists 60 --blocks 30 --mutes 40 "           \
    "--big-accounts 600,250 --active-ratio 0.6 -q"

static int setup(void **state)
{
    char err[512];
    tdb_create("seed", g_name, sizeof g_name, g_dsn, sizeof g_dsn);
    if (schema_migrate(g_dsn, NULL, err, sizeof err) < 0) {
        fprintf(stderr, "migrate: %s\n", err);
        return -1;
    }
    struct timeval tv;
    gettimeofday(&tv, NULL);
    g_now = (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    return 0;
}

static int teardown(void **state)
{
    tdb_drop(g_name);
    return 0;
}

/* md5 over the rows of a table in id order: equal checksums, equal tables */
static void checksum(PGconn *c, const char *table, char out[64])
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT md5(string_agg(t::text, '|' ORDER BY t.id)) FROM %s t",
             table);
    tdb_text(c, sql, out, 64);
}

static void run_seed(const char *extra, int expect_rc, char **out)
{
    int rc = tdb_run(out, "%s seed '%s' %s --now %lld %s", svc_env("TUSK_BIN"), g_dsn, FLAGS, g_now,
                     extra);
    if (rc != expect_rc)
        fail_msg("tusk seed exited %d, expected %d:\n%s", rc, expect_rc, *out);
}

static void test_counts_and_consistency(void **state)
{
    char *out = NULL;
    /* --check-fks: foreign keys are checked row by row, proving the data satisfies them */
    run_seed("--seed 7 --check-fks", 0, &out);
    free(out);
    PGconn *c = tdb_connect(g_dsn);
    assert_int_equal(tdb_int(c, "SELECT count(*) FROM accounts"), 1500);
    assert_int_equal(tdb_int(c, "SELECT count(*) FROM follows"), 12000);
    assert_int_equal(tdb_int(c, "SELECT count(*) FROM statuses"), 4000);
    assert_int_equal(tdb_int(c, "SELECT count(*) FROM lists"), 60);
    assert_int_equal(tdb_int(c, "SELECT count(*) FROM blocks"), 30);
    assert_int_equal(tdb_int(c, "SELECT count(*) FROM mutes"), 40);
    assert_int_equal(tdb_int(c, "SELECT count(*) FROM account_stats"), 1500);
    /* one user per local account, one token per user */
    long long local = tdb_int(c, "SELECT count(*) FROM accounts WHERE domain IS NULL");
    assert_true(local > 1200 && local < 1500); /* default --remote-ratio 0.1 */
    assert_int_equal(tdb_int(c, "SELECT count(*) FROM users"), local);
    assert_int_equal(tdb_int(c, "SELECT count(*) FROM oauth_access_tokens t JOIN users u ON "
                                "u.id = t.resource_owner_id JOIN accounts a ON a.id = "
                                "u.account_id WHERE t.revoked_at IS NULL AND a.domain IS NULL "
                                "AND t.scopes = 'read write follow'"),
                     local);
    /* big accounts: exact follower counts, all local followers */
    assert_int_equal(tdb_int(c, "SELECT count(*) FROM follows f JOIN accounts a ON a.id = "
                                "f.target_account_id JOIN accounts x ON x.id = f.account_id "
                                "WHERE a.username = 'big1' AND x.domain IS NULL"),
                     600);
    assert_int_equal(tdb_int(c, "SELECT count(*) FROM follows f JOIN accounts a ON a.id = "
                                "f.target_account_id WHERE a.username = 'big2'"),
                     250);
    /* a power law: the most followed ordinary account has far more than the median */
    assert_true(tdb_int(c, "SELECT max(n) FROM (SELECT count(*) n FROM follows f JOIN accounts "
                           "a ON a.id = f.target_account_id WHERE a.username NOT LIKE 'big%' "
                           "GROUP BY 1 = 1, target_account_id) x") > 100);
    /* account_stats agrees with the rows, by Mastodon's rules */
    assert_int_equal(tdb_int(c, "SELECT count(*) FROM account_stats s WHERE followers_count <> "
                                "(SELECT count(*) FROM follows f WHERE f.target_account_id = "
                                "s.account_id) OR following_count <> (SELECT count(*) FROM "
                                "follows f WHERE f.account_id = s.account_id) OR statuses_count "
                                "<> (SELECT count(*) FROM statuses t WHERE t.account_id = "
                                "s.account_id AND t.visibility <> 3)"),
                     0);
    assert_int_equal(tdb_int(c, "SELECT count(*) FROM status_stats s WHERE reblogs_count <> "
                                "(SELECT count(*) FROM statuses r WHERE r.reblog_of_id = "
                                "s.status_id) OR replies_count <> (SELECT count(*) FROM statuses "
                                "r WHERE r.in_reply_to_id = s.status_id AND r.visibility IN "
                                "(0, 1))"),
                     0);
    /* the mix: replies, reblogs, every visibility, several languages */
    assert_true(tdb_int(c, "SELECT count(*) FROM statuses WHERE reply") > 300);
    assert_true(tdb_int(c, "SELECT count(*) FROM statuses WHERE reblog_of_id IS NOT NULL") > 200);
    assert_int_equal(tdb_int(c, "SELECT count(DISTINCT visibility) FROM statuses"), 4);
    assert_true(tdb_int(c, "SELECT count(DISTINCT language) FROM statuses") >= 4);
    /* activity: --active-ratio 0.6 of users signed in within 7 days of --now */
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT round(100.0 * count(*) FILTER (WHERE current_sign_in_at > "
             "to_timestamp(%lld / 1000.0) AT TIME ZONE 'UTC' - interval '7 days') / count(*)) "
             "FROM users",
             g_now);
    assert_in_range(tdb_int(c, sql), 55, 65);
    /* list members are followed by the list owner, through follow_id */
    assert_int_equal(tdb_int(c, "SELECT count(*) FROM list_accounts la JOIN lists l ON l.id = "
                                "la.list_id LEFT JOIN follows f ON f.id = la.follow_id WHERE "
                                "f.account_id IS DISTINCT FROM l.account_id OR "
                                "f.target_account_id <> la.account_id"),
                     0);
    assert_int_equal(tdb_int(c, "SELECT count(DISTINCT replies_policy) FROM lists"), 3);
    assert_true(tdb_int(c, "SELECT count(*) FROM lists WHERE exclusive") > 0);
    /* blocks never coexist with a follow either way */
    assert_int_equal(tdb_int(c, "SELECT count(*) FROM blocks b JOIN follows f ON (f.account_id "
                                "= b.account_id AND f.target_account_id = b.target_account_id) OR "
                                "(f.account_id = b.target_account_id AND f.target_account_id = "
                                "b.account_id)"),
                     0);
    /* ids: Snowflake layout in the past, and sequences moved past the seeded ids */
    assert_true(tdb_int(c, "SELECT count(*) FROM statuses WHERE id >> 16 <> (extract(epoch FROM "
                           "created_at AT TIME ZONE 'UTC') * 1000)::bigint") == 0);
    assert_true(tdb_int(c, "SELECT (timestamp_id('statuses') > max(id))::int FROM statuses") == 1);
    assert_int_equal(tdb_int(c, "SELECT nextval('follows_id_seq')"), 12001);
    PQfinish(c);
}

static void test_deterministic(void **state)
{
    PGconn *c = tdb_connect(g_dsn);
    char f1[64], s1[64], a1[64], f2[64], s2[64], a2[64], f3[64];
    char *out = NULL;
    run_seed("--seed 11 --truncate", 0, &out);
    free(out);
    checksum(c, "follows", f1);
    checksum(c, "statuses", s1);
    checksum(c, "accounts", a1);
    /* same seed again, this time asking for the tokens */
    run_seed("--seed 11 --truncate --tokens", 0, &out);
    checksum(c, "follows", f2);
    checksum(c, "statuses", s2);
    checksum(c, "accounts", a2);
    assert_string_equal(f1, f2);
    assert_string_equal(s1, s2);
    assert_string_equal(a1, a2);
    /* a printed token resolves to the account printed next to it */
    const char *line = strstr(out, "tokens (token account_id username active):\n");
    assert_non_null(line);
    line = strchr(line, '\n') + 1;
    char token[64], user[64];
    long long account;
    int active;
    assert_int_equal(sscanf(line, "%63s %lld %63s %d", token, &account, user, &active), 4);
    assert_int_equal(strlen(token), 43);
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT a.id FROM oauth_access_tokens t JOIN users u ON u.id = t.resource_owner_id "
             "JOIN accounts a ON a.id = u.account_id WHERE t.token = '%s' AND a.username = '%s'",
             token, user);
    assert_int_equal(tdb_int(c, sql), account);
    free(out);
    /* a different seed gives different data (the checksum is not blind) */
    run_seed("--seed 12 --truncate", 0, &out);
    free(out);
    checksum(c, "follows", f3);
    assert_string_not_equal(f1, f3);
    PQfinish(c);
}

static void test_refusals(void **state)
{
    char *out = NULL;
    /* the tables hold data from the previous tests: no silent append */
    run_seed("--seed 1", 1, &out);
    assert_non_null(strstr(out, "--truncate"));
    free(out);
    int rc = tdb_run(&out, "%s seed '%s' --accounts 100 --big-accounts 500 -q --truncate",
                     svc_env("TUSK_BIN"), g_dsn);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "big account 1 wants 500 followers"));
    free(out);
    rc = tdb_run(&out, "%s seed '%s' --accounts 100 --follows 9000 -q --truncate",
                 svc_env("TUSK_BIN"), g_dsn);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "too many"));
    free(out);
    rc = tdb_run(&out, "%s seed '%s' --active-ratio 2", svc_env("TUSK_BIN"), g_dsn);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "--active-ratio needs a number from 0 to 1"));
    free(out);
    rc = tdb_run(&out, "%s seed 'host=127.0.0.1 port=%d connect_timeout=3' -q", svc_env("TUSK_BIN"),
                 svc_free_port());
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "cannot connect to the database"));
    free(out);
    /* a database without the schema: says what to do */
    char name[64], dsn[256];
    tdb_create("empty", name, sizeof name, dsn, sizeof dsn);
    rc = tdb_run(&out, "%s seed '%s' -q", svc_env("TUSK_BIN"), dsn);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "tusk migrate"));
    free(out);
    tdb_drop(name);
    /* the failed runs left the earlier data intact (one transaction) */
    PGconn *c = tdb_connect(g_dsn);
    assert_int_equal(tdb_int(c, "SELECT count(*) FROM follows"), 12000);
    PQfinish(c);
}

int main(void)
{
    svc_env("TUSK_PG_PRIMARY_PORT"); /* skip (77) without services */
    svc_env("TUSK_BIN");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_and_consistency),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
