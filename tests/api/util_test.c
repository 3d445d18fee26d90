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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_util),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
