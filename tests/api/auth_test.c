/* Unit tests of api/auth.c scopes: parsing and Mastodon's implication rules. */
#include "api/internal.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static bool grants(const char *token_scopes, const char *required)
{
    return (api_scopes_parse(token_scopes) & api_scopes_required(required)) != 0;
}

static void test_scopes(void **state)
{
    assert_true(grants("read", "read:accounts"));
    assert_true(grants("read:accounts", "read:accounts"));
    assert_false(grants("read:statuses", "read:accounts"));
    assert_false(grants("write", "read:accounts"));
    assert_true(grants("read write follow push", "write:statuses"));
    assert_true(grants("follow", "write:follows"));
    assert_true(grants("follow", "read:blocks"));
    assert_false(grants("follow", "write:statuses"));
    assert_true(grants("profile", "profile read:accounts"));
    assert_true(grants("read", "profile read:accounts"));
    assert_false(grants("write", "profile read:accounts"));
    assert_false(grants("", "read"));
    assert_false(grants("  bogus  ", "read"));
    assert_true(grants("  read   ", "read:lists"));
    assert_true(grants("admin:read", "admin:read:accounts"));
    assert_int_equal(api_scopes_required("read:nope"), 0);
    assert_int_equal(api_scope_bit("read", 4), api_scopes_parse("read"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scopes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
