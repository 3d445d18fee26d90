/* Unit tests of api/router.c: patterns, captures, 404 vs 405, specificity. */
#include "api/internal.h"

#include "llhttp.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static void h_a(api_req *r)
{
}
static void h_b(api_req *r)
{
}
static void h_c(api_req *r)
{
}
static void h_d(api_req *r)
{
}

static api_router *make(void)
{
    api_router *r = api_router_new();
    api_route routes[] = {
        {HTTP_GET, "/api/v1/accounts/:id", h_a, "read:accounts", ROUTE_AUTH_OPTIONAL, 0},
        {HTTP_GET, "/api/v1/accounts/verify_credentials", h_b, NULL, 0, 0},
        {HTTP_POST, "/api/v1/accounts/:id/follow", h_c, "write:follows", 0, 0},
        {HTTP_DELETE, "/api/v1/lists/:list_id/accounts/:id", h_d, NULL, 0, 0},
        {HTTP_GET, "/", h_d, NULL, 0, 0},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        assert_true(api_router_add(r, &routes[i]));
    return r;
}

static const api_route *match(api_router *r, int method, const char *path, api_route_params *p,
                              int *status, uint64_t *allow)
{
    return api_router_match(r, method, path, strlen(path), p, status, allow);
}

static void test_captures(void **state)
{
    api_router *r = make();
    api_route_params p;
    int st;
    uint64_t allow;
    const api_route *rt = match(r, HTTP_GET, "/api/v1/accounts/123", &p, &st, &allow);
    assert_non_null(rt);
    assert_ptr_equal(rt->handler, h_a);
    assert_int_equal(st, 200);
    assert_int_equal(p.n, 1);
    assert_string_equal(p.name[0], "id");
    assert_int_equal(p.len[0], 3);
    assert_memory_equal(p.val[0], "123", 3);
    assert_true(rt->scope_mask != 0);

    rt = match(r, HTTP_DELETE, "/api/v1/lists/5/accounts/77/", &p, &st, &allow);
    assert_non_null(rt);
    assert_int_equal(p.n, 2);
    assert_string_equal(p.name[0], "list_id");
    assert_memory_equal(p.val[0], "5", 1);
    assert_string_equal(p.name[1], "id");
    assert_memory_equal(p.val[1], "77", 2);
    api_router_free(r);
}

static void test_literal_beats_capture(void **state)
{
    api_router *r = make();
    int st;
    const api_route *rt =
        match(r, HTTP_GET, "/api/v1/accounts/verify_credentials", NULL, &st, NULL);
    assert_non_null(rt);
    assert_ptr_equal(rt->handler, h_b);
    api_router_free(r);
}

static void test_404_405(void **state)
{
    api_router *r = make();
    int st;
    uint64_t allow = 0;
    assert_null(match(r, HTTP_GET, "/api/v1/nothing", NULL, &st, &allow));
    assert_int_equal(st, 404);
    assert_null(match(r, HTTP_GET, "/api/v1/accounts", NULL, &st, &allow));
    assert_int_equal(st, 404);
    assert_null(match(r, HTTP_GET, "/api/v1/accounts/1/follow", NULL, &st, &allow));
    assert_int_equal(st, 405);
    assert_true(allow & (1ull << HTTP_POST));
    char hdr[64];
    api_router_allow_header(allow, hdr, sizeof(hdr));
    assert_string_equal(hdr, "POST");
    assert_null(match(r, HTTP_PUT, "/api/v1/accounts/1", NULL, &st, &allow));
    assert_int_equal(st, 405);
    api_router_allow_header(allow, hdr, sizeof(hdr));
    assert_string_equal(hdr, "GET, HEAD");
    /* empty segments never match a capture */
    assert_null(match(r, HTTP_GET, "/api/v1/accounts//follow", NULL, &st, &allow));
    api_router_free(r);
}

static void test_head_and_root(void **state)
{
    api_router *r = make();
    int st;
    const api_route *rt = match(r, HTTP_HEAD, "/api/v1/accounts/9", NULL, &st, NULL);
    assert_non_null(rt);
    assert_ptr_equal(rt->handler, h_a);
    rt = match(r, HTTP_GET, "/", NULL, &st, NULL);
    assert_non_null(rt);
    assert_ptr_equal(rt->handler, h_d);
    api_router_free(r);
}

static void test_bad_routes(void **state)
{
    api_router *r = make();
    api_route dup = {HTTP_GET, "/api/v1/accounts/:other", h_c, NULL, 0, 0};
    assert_false(api_router_add(r, &dup)); /* same shape as /accounts/:id */
    api_route nosl = {HTTP_GET, "api/v1", h_c, NULL, 0, 0};
    assert_false(api_router_add(r, &nosl));
    api_route empty = {HTTP_GET, "/a//b", h_c, NULL, 0, 0};
    assert_false(api_router_add(r, &empty));
    api_route badscope = {HTTP_GET, "/x", h_c, "read:nonsense", 0, 0};
    assert_false(api_router_add(r, &badscope));
    api_route many = {HTTP_GET, "/:a/:b/:c/:d/:e", h_c, NULL, 0, 0};
    assert_false(api_router_add(r, &many));
    api_route_params p;
    int st;
    /* too many segments in a request path: 404, not a crash */
    assert_null(match(r, HTTP_GET, "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p", &p, &st, NULL));
    assert_int_equal(st, 404);
    api_router_free(r);
}

static void test_full_table_registers(void **state)
{
    api_router *r = api_router_new();
    assert_true(api_routes_register(r));
    int st;
    assert_non_null(match(r, HTTP_GET, "/api/v2/instance", NULL, &st, NULL));
    assert_non_null(match(r, HTTP_GET, "/api/v1/streaming/list", NULL, &st, NULL));
    api_router_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_captures),   cmocka_unit_test(test_literal_beats_capture),
        cmocka_unit_test(test_404_405),    cmocka_unit_test(test_head_and_root),
        cmocka_unit_test(test_bad_routes), cmocka_unit_test(test_full_table_registers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
