/* Unit tests of api/form.c: urlencoded decoding and Rails-style parameter nesting. */
#include "api/internal.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static bool add(void *ctx, const char *k, size_t kl, const char *v, size_t vl)
{
    return api_params_add(ctx, k, v);
}

/* decode s into a compact JSON string of the params */
static char *decode(const char *s, int *rc)
{
    static char out[1024];
    char err[128] = "";
    json_t *p = json_object();
    *rc = api_form_parse(s, strlen(s), add, p, err, sizeof(err));
    char *d = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS);
    snprintf(out, sizeof(out), "%s", d);
    free(d);
    json_decref(p);
    return out;
}

static void test_unescape(void **state)
{
    char out[64];
    assert_int_equal(api_form_unescape("a%20b+c", 7, out, true), 5);
    assert_string_equal(out, "a b c");
    assert_int_equal(api_form_unescape("a+b", 3, out, false), 3);
    assert_string_equal(out, "a+b");
    assert_int_equal(api_form_unescape("%e2%82%AC", 9, out, true), 3);
    assert_string_equal(out, "\xe2\x82\xac");
    assert_int_equal(api_form_unescape("%", 1, out, true), -1);
    assert_int_equal(api_form_unescape("%4", 2, out, true), -1);
    assert_int_equal(api_form_unescape("%zz", 3, out, true), -1);
    assert_int_equal(api_form_unescape("", 0, out, true), 0);
}

static void test_pairs(void **state)
{
    int rc;
    assert_string_equal(decode("a=1&b=two+words&c=", &rc),
                        "{\"a\":\"1\",\"b\":\"two words\",\"c\":\"\"}");
    assert_int_equal(rc, 0);
    assert_string_equal(decode("flag&&x=%3D%26", &rc), "{\"flag\":\"\",\"x\":\"=&\"}");
    assert_int_equal(rc, 0);
    assert_string_equal(decode("", &rc), "{}");
    assert_string_equal(decode("a=1&a=2", &rc), "{\"a\":\"2\"}"); /* last wins, as in Rails */
    assert_string_equal(decode("=novalue", &rc), "{}");           /* empty key skipped */
}

static void test_nesting(void **state)
{
    int rc;
    assert_string_equal(decode("ids[]=1&ids[]=2", &rc), "{\"ids\":[\"1\",\"2\"]}");
    assert_int_equal(rc, 0);
    assert_string_equal(decode("poll[options][]=a&poll[options][]=b&poll[expires_in]=60", &rc),
                        "{\"poll\":{\"expires_in\":\"60\",\"options\":[\"a\",\"b\"]}}");
    assert_int_equal(rc, 0);
    assert_string_equal(decode("ids%5B%5D=7", &rc), "{\"ids\":[\"7\"]}");
    assert_int_equal(rc, 0);
}

static void test_errors(void **state)
{
    int rc;
    decode("a=%zz", &rc);
    assert_int_equal(rc, -1);
    decode("a=%ff", &rc); /* a lone 0xff byte is not UTF-8 */
    assert_int_equal(rc, -1);
    decode("a=%00", &rc);
    assert_int_equal(rc, -1);
    decode("a[=1", &rc);
    assert_int_equal(rc, -1);
    decode("[x]=1", &rc);
    assert_int_equal(rc, -1);
    decode("a=1&a[]=2", &rc); /* string then array: conflict */
    assert_int_equal(rc, -1);
    decode("a[][b]=1", &rc);
    assert_int_equal(rc, -1);
    char err[64] = "";
    json_t *p = json_object();
    assert_int_equal(api_form_parse("x=%g0", 5, add, p, err, sizeof(err)), -1);
    assert_true(strstr(err, "encoding") != NULL);
    json_decref(p);
}

static void test_long_input(void **state)
{
    /* longer than the parser's stack scratch */
    char s[3000];
    memset(s, 'v', sizeof(s));
    memcpy(s, "k=", 2);
    s[sizeof(s) - 1] = '\0';
    int rc;
    const char *out = decode(s, &rc);
    assert_int_equal(rc, 0);
    assert_true(strncmp(out, "{\"k\":\"vvv", 9) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unescape),   cmocka_unit_test(test_pairs),
        cmocka_unit_test(test_nesting),    cmocka_unit_test(test_errors),
        cmocka_unit_test(test_long_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
