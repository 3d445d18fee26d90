/* Unit tests of api/ratelimit.c: fixed windows as rack-attack counts them. */
#include "api/internal.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static void test_limit_and_headers(void **state)
{
    api_ratelimit *rl = api_rl_new(3, 300);
    api_rl_info info;
    time_t t = 1700000100; /* 1700000100 / 300 = 5666667 exactly: a window start */
    assert_true(api_rl_hit(rl, 42, t, &info));
    assert_int_equal(info.limit, 3);
    assert_int_equal(info.remaining, 2);
    assert_int_equal(info.reset, t + 300);
    assert_true(api_rl_hit(rl, 42, t + 10, &info));
    assert_true(api_rl_hit(rl, 42, t + 20, &info));
    assert_int_equal(info.remaining, 0);
    assert_false(api_rl_hit(rl, 42, t + 30, &info));
    assert_int_equal(info.remaining, 0);
    assert_false(api_rl_hit(rl, 42, t + 299, &info));
    /* other keys are independent */
    assert_true(api_rl_hit(rl, 43, t + 30, &info));
    /* next window: fresh */
    assert_true(api_rl_hit(rl, 42, t + 300, &info));
    assert_int_equal(info.remaining, 2);
    assert_int_equal(info.reset, t + 600);
    api_rl_free(rl);
}

static void test_many_keys_bounded(void **state)
{
    api_ratelimit *rl = api_rl_new(1, 60);
    time_t t = 6000;
    for (uint64_t k = 1; k <= 20000; k++)
        assert_true(api_rl_hit(rl, k * 0x9e3779b97f4a7c15ull, t, NULL));
    assert_int_equal(api_rl_size(rl), 20000);
    for (uint64_t k = 1; k <= 20000; k++)
        assert_false(api_rl_hit(rl, k * 0x9e3779b97f4a7c15ull, t + 1, NULL));
    /* a new window forgets the old keys as shards are touched */
    for (uint64_t k = 1; k <= 20000; k++)
        assert_true(api_rl_hit(rl, k * 0x9e3779b97f4a7c15ull, t + 60, NULL));
    assert_int_equal(api_rl_size(rl), 20000);
    api_rl_free(rl);
}

static void test_key_zero(void **state)
{
    api_ratelimit *rl = api_rl_new(1, 60);
    assert_true(api_rl_hit(rl, 0, 0, NULL));
    assert_false(api_rl_hit(rl, 0, 1, NULL));
    api_rl_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limit_and_headers),
        cmocka_unit_test(test_many_keys_bounded),
        cmocka_unit_test(test_key_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
