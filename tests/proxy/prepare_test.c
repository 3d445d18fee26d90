/* Unit tests of proxy/prepare.c (statement registry, client names, server LRU) and
 * proxy/varcache.c (interning, SET generation). */
#include "proxy/internal.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

static void test_registry_dedup(void **state)
{
    (void)state;
    px_stmt_registry reg = {0};
    const uint8_t t23[4] = {0, 0, 0, 23};
    px_stmt *a = px_stmt_get(&reg, "SELECT $1", 9, 1, t23);
    px_stmt *b = px_stmt_get(&reg, "SELECT $1", 9, 1, t23);
    px_stmt *c = px_stmt_get(&reg, "SELECT $1", 9, 0, NULL);  /* types differ */
    px_stmt *d = px_stmt_get(&reg, "SELECT $1 ", 10, 1, t23); /* text differs */
    assert_ptr_equal(a, b);
    assert_ptr_not_equal(a, c);
    assert_ptr_not_equal(a, d);
    assert_string_not_equal(a->name, c->name);
    assert_int_equal(strncmp(a->name, "T_", 2), 0);
    assert_int_equal(strlen(a->name), 18);
    assert_int_equal(reg.count, 3);
    assert_int_equal(a->refs, 2);
    px_stmt_unref(&reg, b);
    px_stmt_unref(&reg, a);
    px_stmt_unref(&reg, c);
    assert_int_equal(reg.count, 1);
    px_stmt_unref(&reg, d);
    assert_int_equal(reg.count, 0);
    /* many statements: the table grows */
    px_stmt *many[1000];
    for (int i = 0; i < 1000; i++) {
        char q[32];
        snprintf(q, sizeof(q), "SELECT %d", i);
        many[i] = px_stmt_get(&reg, q, strlen(q), 0, NULL);
    }
    for (int i = 0; i < 1000; i++) {
        char q[32];
        snprintf(q, sizeof(q), "SELECT %d", i);
        px_stmt *again = px_stmt_get(&reg, q, strlen(q), 0, NULL);
        assert_ptr_equal(again, many[i]);
        px_stmt_unref(&reg, again);
        px_stmt_unref(&reg, many[i]);
    }
    assert_int_equal(reg.count, 0);
    px_stmt_registry_free(&reg);
}

static void test_client_names(void **state)
{
    (void)state;
    px_stmt_registry reg = {0};
    px_client_stmts m = {0};
    px_stmt *a = px_stmt_get(&reg, "SELECT 1", 8, 0, NULL);
    px_stmt *b = px_stmt_get(&reg, "SELECT 2", 8, 0, NULL);
    assert_true(px_cstmts_put(&m, "s1", a, &reg));
    assert_true(px_cstmts_put(&m, "s2", a, &reg));
    assert_ptr_equal(px_cstmts_get(&m, "s1"), a);
    assert_ptr_equal(px_cstmts_get(&m, "s2"), a);
    assert_null(px_cstmts_get(&m, "s3"));
    /* redefining a name replaces it */
    assert_true(px_cstmts_put(&m, "s1", b, &reg));
    assert_ptr_equal(px_cstmts_get(&m, "s1"), b);
    assert_true(px_cstmts_del(&m, "s2", &reg));
    assert_false(px_cstmts_del(&m, "s2", &reg));
    for (int i = 0; i < 300; i++) {
        char n[16];
        snprintf(n, sizeof(n), "p%d", i);
        assert_true(px_cstmts_put(&m, n, b, &reg));
    }
    assert_ptr_equal(px_cstmts_get(&m, "p299"), b);
    px_stmt_unref(&reg, a);
    px_stmt_unref(&reg, b);
    assert_int_equal(reg.count, 1); /* b still held by names */
    px_cstmts_free(&m, &reg);
    assert_int_equal(reg.count, 0);
    px_stmt_registry_free(&reg);
}

static void test_server_lru(void **state)
{
    (void)state;
    px_stmt_registry reg = {0};
    px_server_stmts s = {0};
    px_stmt *st[5];
    for (int i = 0; i < 5; i++) {
        char q[16];
        snprintf(q, sizeof(q), "SELECT %d", i);
        st[i] = px_stmt_get(&reg, q, strlen(q), 0, NULL);
        assert_true(px_sstmts_add(&s, st[i]));
    }
    /* least recently used: the first added */
    assert_ptr_equal(px_sstmts_lru(&s), st[0]);
    assert_true(px_sstmts_has(&s, st[0], true)); /* touch moves it to the front */
    assert_ptr_equal(px_sstmts_lru(&s), st[1]);
    assert_true(px_sstmts_del(&s, st[1], &reg));
    assert_false(px_sstmts_has(&s, st[1], false));
    assert_ptr_equal(px_sstmts_lru(&s), st[2]);
    assert_int_equal(s.count, 4);
    for (int i = 0; i < 5; i++)
        px_stmt_unref(&reg, st[i]);
    px_sstmts_free(&s, &reg);
    assert_int_equal(reg.count, 0);
    px_stmt_registry_free(&reg);
}

static void test_intern_and_sync_sql(void **state)
{
    (void)state;
    px_intern t = {0};
    px_istr *a = px_intern_get(&t, "UTC", 3);
    px_istr *b = px_intern_get(&t, "UTC", 3);
    px_istr *c = px_intern_get(&t, "Europe/Paris", 12);
    assert_ptr_equal(a, b);
    assert_ptr_not_equal(a, c);
    px_istr *want[VAR_COUNT] = {0}, *have[VAR_COUNT] = {0};
    want[VAR_TIMEZONE] = c;
    have[VAR_TIMEZONE] = a;
    px_istr *app = px_intern_get(&t, "it's \\ app", 10);
    want[VAR_APPLICATION_NAME] = app;
    want[VAR_CLIENT_ENCODING] = a; /* same as have: no SET */
    have[VAR_CLIENT_ENCODING] = a;
    px_istr *sp = px_intern_get(&t, "\"$user\", public", 15);
    want[VAR_SEARCH_PATH] = sp;
    pktbuf sql;
    pktbuf_init(&sql, NULL, 0);
    assert_int_equal(px_var_sync_sql(want, have, &sql), 3);
    pkt_put_byte(&sql, 0);
    assert_string_equal((char *)sql.data,
                        "SET TimeZone = 'Europe/Paris';"
                        "SET application_name = E'it''s \\\\ app';"
                        "SELECT pg_catalog.set_config('search_path', '\"$user\", public', false);");
    pktbuf_free(&sql);
    assert_int_equal(px_var_index("datestyle"), VAR_DATESTYLE);
    assert_int_equal(px_var_index("TIMEZONE"), VAR_TIMEZONE);
    assert_int_equal(px_var_index("work_mem"), -1);
    px_intern_put(&t, a);
    px_intern_put(&t, b);
    px_intern_put(&t, c);
    px_intern_put(&t, app);
    px_intern_put(&t, sp);
    assert_int_equal(t.count, 0);
    px_intern_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry_dedup),
        cmocka_unit_test(test_client_names),
        cmocka_unit_test(test_server_lru),
        cmocka_unit_test(test_intern_and_sync_sql),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
