/* Tests for the migration list of schema/migrate.c: the embedded files come out in version
 * order with the right names, and malformed or duplicate file names are refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "schema/internal.h"

static void test_embedded_in_order(void **state)
{
    size_t n;
    const schema_migration *m = schema_migrations(&n);
    assert_non_null(m);
    assert_true(n >= 2);
    assert_string_equal(m[0].name, "0001_mastodon_core");
    assert_int_equal(m[0].version, 1);
    assert_non_null(strstr(m[0].sql, "CREATE TABLE statuses"));
    assert_non_null(strstr(m[0].sql, "timestamp_id"));
    for (size_t i = 1; i < n; i++)
        assert_true(m[i].version > m[i - 1].version);
    bool outbox = false;
    for (size_t i = 0; i < n; i++) {
        assert_true(strlen(m[i].sql) > 0);
        outbox |= strstr(m[i].sql, "CREATE TABLE tusk_outbox") != NULL;
    }
    assert_true(outbox);
}

static void test_sorts_by_number(void **state)
{
    schema_embedded_file files[] = {
        {"0010_ten.sql", "10"}, {"0002_two.sql", "2"}, {"0001_one.sql", "1"}, {"3_three.sql", "3"}};
    schema_migration out[4];
    char err[256] = "";
    assert_int_equal(schema_migration_list(files, 4, out, err, sizeof err), 0);
    assert_int_equal(out[0].version, 1);
    assert_string_equal(out[0].name, "0001_one");
    assert_string_equal(out[0].sql, "1");
    assert_int_equal(out[1].version, 2);
    assert_int_equal(out[2].version, 3);
    assert_string_equal(out[2].name, "3_three");
    assert_int_equal(out[3].version, 10); /* numeric, not lexical: 10 after 3 */
    schema_migration_list_free(out, 4);
}

static void test_rejects_duplicates(void **state)
{
    schema_embedded_file files[] = {{"0001_a.sql", ""}, {"0002_b.sql", ""}, {"002_c.sql", ""}};
    schema_migration out[3];
    char err[256] = "";
    assert_int_equal(schema_migration_list(files, 3, out, err, sizeof err), -1);
    assert_non_null(strstr(err, "same version 2"));
}

static void test_rejects_bad_names(void **state)
{
    const char *bad[] = {"abc.sql",       "0001.sql", "0001_x.txt", "0001_a-b.sql",
                         "0000_zero.sql", "_x.sql",   "0001_.sql"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        schema_embedded_file f = {bad[i], ""};
        schema_migration out[1];
        char err[256] = "";
        assert_int_equal(schema_migration_list(&f, 1, out, err, sizeof err), -1);
        assert_non_null(strstr(err, bad[i]));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embedded_in_order),
        cmocka_unit_test(test_sorts_by_number),
        cmocka_unit_test(test_rejects_duplicates),
        cmocka_unit_test(test_rejects_bad_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
