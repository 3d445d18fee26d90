/* Unit tests of api/paging.c: Ruby's to_i, Mastodon's limit_param, Rails' boolean cast, id
 * parameters, and Link headers (sorted, CGI-escaped, absolute). */
#include "api/internal.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

/* a request with params from a query string, on a fake worker whose public_url is set */
typedef struct fake {
    api_config cfg;
    api_server srv;
    api_worker w;
    api_req req;
} fake;

static bool add(void *ctx, const char *k, size_t kl, const char *v, size_t vl)
{
    return api_params_add(ctx, k, v);
}

static void fake_init(fake *f, const char *query)
{
    memset(f, 0, sizeof(*f));
    f->cfg.public_url = (char *)"https://social.example";
    f->srv.cfg = &f->cfg;
    f->w.srv = &f->srv;
    f->req.w = &f->w;
    f->req.params = json_object();
    char err[128];
    assert_int_equal(api_form_parse(query, strlen(query), add, f->req.params, err, sizeof(err)), 0);
}

static void fake_free(fake *f)
{
    json_decref(f->req.params);
    api_buf_free(&f->req.resp_hdrs);
}

static void test_ruby_to_i(void **state)
{
    assert_int_equal(api_ruby_to_i("42"), 42);
    assert_int_equal(api_ruby_to_i("  -7x"), -7);
    assert_int_equal(api_ruby_to_i("+3"), 3);
    assert_int_equal(api_ruby_to_i("1_000"), 1000);
    assert_int_equal(api_ruby_to_i("1__0"), 1);
    assert_int_equal(api_ruby_to_i("abc"), 0);
    assert_int_equal(api_ruby_to_i(""), 0);
    assert_int_equal(api_ruby_to_i(NULL), 0);
    assert_true(api_ruby_to_i("99999999999999999999999") == INT64_MAX);
    assert_true(api_ruby_to_i("-99999999999999999999999") == INT64_MIN);
}

static void test_limit_and_page(void **state)
{
    fake f;
    struct {
        const char *q;
        long want;
    } cases[] = {{"", 20},       {"limit=5", 5},   {"limit=41", 40},
                 {"limit=0", 0}, {"limit=abc", 0}, {"limit=-3", 3},
                 {"limit=", 0},  {"limit=7x", 7},  {"limit=-99999999999999999999", 40}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fake_init(&f, cases[i].q);
        assert_int_equal(api_limit_param(&f.req, 20, 40), cases[i].want);
        fake_free(&f);
    }
    api_page p;
    fake_init(&f, "max_id=12&since_id=%20&min_id=x");
    api_page_parse(&f.req, 20, 40, &p);
    assert_true(p.has_max);
    assert_int_equal(p.max_id, 12);
    assert_false(p.has_since); /* blank is not present */
    assert_true(p.has_min);    /* present: to_i gives 0 */
    assert_int_equal(p.min_id, 0);
    fake_free(&f);
}

static void test_bool(void **state)
{
    fake f;
    fake_init(&f, "a=true&b=0&c=f&d=False&e=off&g=&h=1&i=FALSE");
    assert_true(api_param_bool(&f.req, "a", false));
    assert_false(api_param_bool(&f.req, "b", true));
    assert_false(api_param_bool(&f.req, "c", true));
    assert_true(api_param_bool(&f.req, "d", false)); /* Rails is case-sensitive here */
    assert_false(api_param_bool(&f.req, "e", true));
    assert_true(api_param_bool(&f.req, "g", true)); /* blank: the default */
    assert_true(api_param_bool(&f.req, "h", false));
    assert_false(api_param_bool(&f.req, "i", true));
    assert_true(api_param_bool(&f.req, "missing", true));
    fake_free(&f);
}

static void test_ids(void **state)
{
    fake f;
    int64_t ids[4];
    fake_init(&f, "id[]=5&id[]=abc&id[]=7&id[]=8&id[]=9&one=3&neg=-1");
    assert_int_equal(api_param_ids(&f.req, "id", ids, 4), 4);
    assert_int_equal(ids[0], 5);
    assert_int_equal(ids[1], 0);
    assert_int_equal(ids[3], 8);
    assert_int_equal(api_param_ids(&f.req, "one", ids, 4), 1);
    assert_int_equal(ids[0], 3);
    assert_int_equal(api_param_ids(&f.req, "neg", ids, 4), 1);
    assert_int_equal(ids[0], 0);
    assert_int_equal(api_param_ids(&f.req, "none", ids, 4), 0);
    fake_free(&f);
}

static void test_link(void **state)
{
    fake f;
    const char *keep[] = {"local", "limit", NULL};
    fake_init(&f, "limit=5&local=a b&other=x&max_id=1");
    api_link_header(&f.req, "/api/v1/timelines/home", keep, true, 100, true, "min_id", 200);
    api_buf_putc(&f.req.resp_hdrs, '\0');
    assert_string_equal(f.req.resp_hdrs.data,
                        "Link: <https://social.example/api/v1/timelines/home?limit=5&local=a+b&"
                        "max_id=100>; rel=\"next\", <https://social.example/api/v1/timelines/"
                        "home?limit=5&local=a+b&min_id=200>; rel=\"prev\"\r\n");
    fake_free(&f);
    /* escaping, only prev, no header at all */
    const char *k2[] = {"tagged", NULL};
    fake_init(&f, "tagged=%C3%A9%26%3C%0D%0A");
    api_link_header(&f.req, "/p", k2, false, 0, true, "since_id", 3);
    api_buf_putc(&f.req.resp_hdrs, '\0');
    assert_string_equal(f.req.resp_hdrs.data,
                        "Link: <https://social.example/p?since_id=3&tagged=%C3%A9%26%3C%0D%0A>; "
                        "rel=\"prev\"\r\n");
    fake_free(&f);
    fake_init(&f, "");
    api_link_header(&f.req, "/p", k2, false, 0, false, "min_id", 0);
    assert_int_equal(f.req.resp_hdrs.len, 0);
    fake_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ruby_to_i), cmocka_unit_test(test_limit_and_page),
        cmocka_unit_test(test_bool),      cmocka_unit_test(test_ids),
        cmocka_unit_test(test_link),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
