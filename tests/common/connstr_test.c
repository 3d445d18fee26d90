/* Tests for connstr_parse in common/ini.c: libpq-style key=value strings of [databases]. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/common.h"

typedef struct pairs {
    char out[4096];
    size_t n;
    const char *fail_key;
    size_t longest;
} pairs;

static int pairs_cb(void *ctx, const char *key, const char *value, char *err, size_t errlen)
{
    pairs *p = ctx;
    if (p->fail_key && strcmp(key, p->fail_key) == 0) {
        if (strcmp(key, "silent") != 0)
            snprintf(err, errlen, "unknown parameter \"%s\"", key);
        return -1;
    }
    size_t vl = strlen(value);
    if (vl > p->longest)
        p->longest = vl;
    int n = snprintf(p->out + p->n, sizeof(p->out) - p->n, "[%s]=[%s]", key,
                     vl > 100 ? "<long>" : value);
    assert_true(n > 0 && (size_t)n < sizeof(p->out) - p->n);
    p->n += (size_t)n;
    return 0;
}

/* parse text and compare the pairs seen */
static void parses(const char *text, const char *want)
{
    pairs p = {0};
    char err[256];
    if (connstr_parse(text, pairs_cb, &p, err, sizeof(err)) != 0)
        fail_msg("\"%s\" refused: %s", text, err);
    if (strcmp(p.out, want) != 0)
        fail_msg("\"%s\" gave %s, wanted %s", text, p.out, want);
}

static void fails(const char *text, const char *want)
{
    pairs p = {.fail_key = "bogus"};
    char err[256];
    if (connstr_parse(text, pairs_cb, &p, err, sizeof(err)) != -1)
        fail_msg("\"%s\" accepted", text);
    if (strcmp(err, want) != 0)
        fail_msg("\"%s\": error \"%s\", wanted \"%s\"", text, err, want);
}

static void test_values(void **state)
{
    parses("host=127.0.0.1 port=5432 dbname=tusk",
           "[host]=[127.0.0.1][port]=[5432][dbname]=[tusk]");
    parses("", "");
    parses("   \t ", "");
    parses("  host = h  port =5 user= u ", "[host]=[h][port]=[5][user]=[u]");
    parses("password='it\\'s a secret' user=x", "[password]=[it's a secret][user]=[x]");
    parses("password='back\\\\slash'", "[password]=[back\\slash]");
    parses("a='' b=1", "[a]=[][b]=[1]");
    parses("a= b=1", "[a]=[b=1]"); /* as libpq: the value starts after the spaces */
    parses("a=", "[a]=[]");
    parses("a=x\\ y", "[a]=[x y]");
    parses("application_name='with = and spaces'", "[application_name]=[with = and spaces]");
    parses("host=a,b,c target_session_attrs=any", "[host]=[a,b,c][target_session_attrs]=[any]");
}

static void test_errors(void **state)
{
    fails("host", "missing \"=\" after \"host\" in connection string");
    fails("host=a port", "missing \"=\" after \"port\" in connection string");
    fails("=x", "missing key before \"=\" in connection string");
    fails("a=1 =x", "missing key before \"=\" in connection string");
    fails("password='open", "unterminated quoted value for \"password\" in connection string");
    fails("password='ends with backslash\\'",
          "unterminated quoted value for \"password\" in connection string");
    fails("a='x'y", "missing whitespace after quoted value for \"a\" in connection string");
    fails("host=a bogus=1", "unknown parameter \"bogus\"");
    pairs p = {.fail_key = "silent"};
    char err[256];
    assert_int_equal(connstr_parse("silent=1", pairs_cb, &p, err, sizeof(err)), -1);
    assert_string_equal(err, "invalid value for \"silent\" in connection string");
}

static void test_long(void **state)
{
    size_t vl = 100000;
    char *text = malloc(vl + 64);
    assert_non_null(text);
    strcpy(text, "password='");
    memset(text + 10, 'x', vl);
    strcpy(text + 10 + vl, "' port=1");
    pairs p = {0};
    char err[256];
    assert_int_equal(connstr_parse(text, pairs_cb, &p, err, sizeof(err)), 0);
    assert_int_equal(p.longest, vl);
    assert_string_equal(p.out, "[password]=[<long>][port]=[1]");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
