/* Tests for common/log.c: level names parse and unknown names are refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "common/common.h"

static void test_level_names(void **state)
{
    assert_int_equal(log_level_from_name("debug"), LOG_DEBUG);
    assert_int_equal(log_level_from_name("INFO"), LOG_INFO);
    assert_int_equal(log_level_from_name("warn"), LOG_WARNING);
    assert_int_equal(log_level_from_name("error"), LOG_ERROR);
    assert_int_equal(log_level_from_name("loud"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_level_names)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
