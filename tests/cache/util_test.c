/* Tests for cache/util.c: the growable buffer and the sorted id set. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "cache/cache.h"

static void test_buf(void **state)
{
    cache_buf b;
    cache_buf_init(&b);
    assert_true(cache_buf_puts(&b, "abc"));
    assert_true(cache_buf_printf(&b, "-%d-", 42));
    assert_string_equal(b.data, "abc-42-");
    /* a long formatted piece takes the slow path */
    char big[1000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_true(cache_buf_printf(&b, "%s!", big));
    assert_int_equal(b.len, 7 + 999 + 1);
    assert_int_equal(b.data[b.len - 1], '!');
    cache_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    assert_true(cache_buf_append(&b, "\0z", 2));
    assert_int_equal(b.len, 2);
    cache_buf_free(&b);
    assert_null(b.data);
}

static void test_idset(void **state)
{
    cache_idset s;
    cache_idset_init(&s);
    assert_false(cache_idset_has(&s, 1));
    for (int64_t i = 1000; i > 0; i -= 3) /* out of order */
        assert_true(cache_idset_add(&s, i * 1000003));
    assert_true(cache_idset_has(&s, 1000 * 1000003));
    assert_true(cache_idset_has(&s, 1 * 1000003));
    assert_false(cache_idset_has(&s, 2 * 1000003));
    assert_true(cache_idset_add(&s, 5)); /* after sorting, more adds */
    assert_true(cache_idset_has(&s, 5));
    cache_idset_clear(&s);
    assert_false(cache_idset_has(&s, 5));
    cache_idset_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_buf), cmocka_unit_test(test_idset)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
