/* Unit tests of api/lsn.c: LSN parsing and the per-account token table (floors never go
 * down while in force, expire after the TTL, ignore junk). */
#include "api/internal.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static void test_parse(void **state)
{
    uint64_t v;
    assert_true(api_lsn_parse("16/B374D848", &v));
    assert_true(v == ((uint64_t)0x16 << 32 | 0xB374D848u));
    assert_true(api_lsn_parse("0/0", &v));
    assert_int_equal(v, 0);
    assert_true(api_lsn_parse("FFFFFFFF/ffffffff", &v));
    assert_true(v == UINT64_MAX);
    const char *bad[] = {"",    "/",           "1/",          "/1",   "1/2/3",
                         "G/1", "123456789/1", "1/123456789", " 1/1", "1/1 "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(api_lsn_parse(bad[i], &v));
    assert_false(api_lsn_parse(NULL, &v));
}

static void test_table(void **state)
{
    api_lsn_table *t = api_lsn_new(200);
    assert_non_null(t);
    char out[32];
    assert_false(api_lsn_get(t, 7, out));
    api_lsn_note(t, 7, "0/16B3748");
    assert_true(api_lsn_get(t, 7, out));
    assert_string_equal(out, "0/16B3748");
    api_lsn_note(t, 7, "0/100"); /* lower: the floor stays */
    assert_true(api_lsn_get(t, 7, out));
    assert_string_equal(out, "0/16B3748");
    api_lsn_note(t, 7, "1/0");
    assert_true(api_lsn_get(t, 7, out));
    assert_string_equal(out, "1/0");
    api_lsn_note(t, 8, "");
    api_lsn_note(t, 8, NULL);
    api_lsn_note(t, 8, "junk");
    api_lsn_note(t, 0, "1/1");
    assert_false(api_lsn_get(t, 8, out));
    assert_false(api_lsn_get(t, 0, out));
    usleep(250000);
    assert_false(api_lsn_get(t, 7, out)); /* expired */
    api_lsn_note(t, 7, "0/5");            /* an expired floor does not hold a new lower one up */
    assert_true(api_lsn_get(t, 7, out));
    assert_string_equal(out, "0/5");
    api_lsn_free(t);
    t = api_lsn_new(0); /* TTL 0: tokens off */
    api_lsn_note(t, 7, "1/1");
    assert_false(api_lsn_get(t, 7, out));
    api_lsn_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
