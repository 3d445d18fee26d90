/* Unit tests of api/util.c: timestamps, HTTP dates and ids. */
#include "api/internal.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static void test_util(void **state)
{
    char t[32];
    assert_true(api_iso_time("2023-01-02 03:04:05.123456", t));
    assert_string_equal(t, "2023-01-02T03:04:05.123Z");
    assert_true(api_iso_time("2023-01-02 03:04:05", t));
    assert_string_equal(t, "2023-01-02T03:04:05.000Z");
    assert_true(api_iso_time("2023-01-02 03:04:05.5+00", t));
    assert_string_equal(t, "2023-01-02T03:04:05.500Z");
    assert_false(api_iso_time("2023-01-02 03:04:05+02", t));
    assert_false(api_iso_time("yesterday", t));
    assert_false(api_iso_time(NULL, t));
    int64_t id;
    assert_true(api_parse_id("109", 3, &id));
    assert_int_equal(id, 109);
    assert_true(api_parse_id("9223372036854775807", 19, &id));
    assert_false(api_parse_id("9223372036854775808", 19, &id));
    assert_false(api_parse_id("0", 1, &id));
    assert_false(api_parse_id("-1", 2, &id));
    assert_false(api_parse_id("12a", 3, &id));
    assert_false(api_parse_id("", 0, &id));
    char d[40];
    api_http_date(784111777, d);
    assert_string_equal(d, "Sun, 06 Nov 1994 08:49:37 GMT");
}

/* the hot path's printf-free formatting: integers, Redis commands, cache/'s key names */
static void test_fast_formatting(void **state)
{
    char t[24];
    assert_int_equal(api_i64_text(t, 0), 1);
    assert_string_equal(t, "0");
    assert_int_equal(api_i64_text(t, INT64_MAX), 19);
    assert_string_equal(t, "9223372036854775807");
    assert_int_equal(api_i64_text(t, INT64_MIN), 20);
    assert_string_equal(t, "-9223372036854775808");
    api_buf b = {0};
    const char *argv[] = {"HGET", "k\r\n", ""};
    size_t lens[] = {4, 3, 0};
    api_buf_resp(&b, 3, argv, lens);
    assert_string_equal(api_buf_cstr(&b), "*3\r\n$4\r\nHGET\r\n$3\r\nk\r\n\r\n$0\r\n\r\n");
    api_buf_free(&b);
    const int64_t ids[] = {1, 109, 113550812939438607LL, INT64_MAX};
    for (int type = CACHE_FEED_HOME; type <= CACHE_FEED_LIST; type++)
        for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
            char fast[48], slow[64];
            size_t n = api_feed_key(fast, type, ids[i]);
            assert_int_equal(n, (size_t)cache_feed_key(slow, sizeof(slow), type, ids[i]));
            assert_string_equal(fast, slow);
            n = api_marker_key(fast, type, ids[i]);
            assert_int_equal(n, (size_t)cache_regeneration_key(slow, sizeof(slow), type, ids[i]));
            assert_string_equal(fast, slow);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_util),
        cmocka_unit_test(test_fast_formatting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
