/* Unit tests of api/jsonw.c: the JSON writer's escaping, UTF-8 validation and structure. */
#include "api/internal.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static char *escape(const char *s, size_t len)
{
    static char out[1024];
    api_buf b = {0};
    api_jw w;
    api_jw_init(&w, &b);
    api_jw_strn(&w, s, len);
    assert_false(b.oom);
    assert_true(b.len < sizeof(out));
    memcpy(out, b.data, b.len);
    out[b.len] = '\0';
    api_buf_free(&b);
    return out;
}

#define ESC(lit) escape(lit, sizeof(lit) - 1)

static void test_plain_and_escapes(void **state)
{
    assert_string_equal(ESC("hello"), "\"hello\"");
    assert_string_equal(ESC("a\"b\\c"), "\"a\\\"b\\\\c\"");
    assert_string_equal(ESC("\n\r\t\b\f"), "\"\\n\\r\\t\\b\\f\"");
    assert_string_equal(ESC("\x01\x1f"), "\"\\u0001\\u001f\"");
    assert_string_equal(ESC("a\0b"), "\"a\\u0000b\"");
    assert_string_equal(ESC("/<script>"), "\"/<script>\"");
    assert_string_equal(ESC("\x7f"), "\"\x7f\"");
}

static void test_every_control_char_escaped(void **state)
{
    for (int c = 0; c < 0x20; c++) {
        char in[1] = {(char)c};
        const char *out = escape(in, 1);
        assert_int_equal(out[1], '\\');
    }
}

static void test_valid_utf8_passes(void **state)
{
    assert_string_equal(ESC("caf\xc3\xa9"), "\"caf\xc3\xa9\"");           /* U+00E9 */
    assert_string_equal(ESC("\xe2\x82\xac"), "\"\xe2\x82\xac\"");         /* U+20AC */
    assert_string_equal(ESC("\xf0\x9f\x90\x98"), "\"\xf0\x9f\x90\x98\""); /* U+1F418 */
    assert_string_equal(ESC("\xef\xbf\xbf"), "\"\xef\xbf\xbf\"");         /* U+FFFF */
    assert_string_equal(ESC("\xf4\x8f\xbf\xbf"), "\"\xf4\x8f\xbf\xbf\""); /* U+10FFFF */
}

static void test_invalid_utf8_replaced(void **state)
{
    assert_string_equal(ESC("a\xff"
                            "b"),
                        "\"a\\ufffdb\"");
    assert_string_equal(ESC("\xc3"), "\"\\ufffd\"");                       /* truncated */
    assert_string_equal(ESC("\xc0\xaf"), "\"\\ufffd\\ufffd\"");            /* overlong '/' */
    assert_string_equal(ESC("\xe0\x80\xaf"), "\"\\ufffd\\ufffd\\ufffd\""); /* overlong */
    assert_string_equal(ESC("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\""); /* surrogate */
    assert_string_equal(ESC("\xf4\x90\x80\x80"), "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* >10FFFF */
    assert_string_equal(ESC("\x80"), "\"\\ufffd\"");            /* lone continuation */
    assert_string_equal(ESC("\xe2\x82"), "\"\\ufffd\\ufffd\""); /* cut at the end */
    assert_true(api_utf8_valid("caf\xc3\xa9", 5));
    assert_false(api_utf8_valid("\xc3(", 2));
}

static void test_structure(void **state)
{
    api_buf b = {0};
    api_jw w;
    api_jw_init(&w, &b);
    api_jw_obj(&w);
    api_jw_kstr(&w, "id", "1");
    api_jw_kint(&w, "n", -42);
    api_jw_kbool(&w, "t", true);
    api_jw_knull(&w, "z");
    api_jw_kstr(&w, "nul", NULL);
    api_jw_key(&w, "arr");
    api_jw_arr(&w);
    api_jw_int(&w, 1);
    api_jw_obj(&w);
    api_jw_obj_end(&w);
    api_jw_arr(&w);
    api_jw_arr_end(&w);
    api_jw_raw(&w, "{\"x\":1}", 7);
    api_jw_arr_end(&w);
    api_jw_kint(&w, "max", 9223372036854775807LL);
    api_jw_kint(&w, "min", (-9223372036854775807LL - 1));
    api_jw_obj_end(&w);
    assert_string_equal(api_buf_cstr(&b),
                        "{\"id\":\"1\",\"n\":-42,\"t\":true,\"z\":null,\"nul\":null,"
                        "\"arr\":[1,{},[],{\"x\":1}],\"max\":9223372036854775807,"
                        "\"min\":-9223372036854775808}");
    /* what we write parses */
    json_t *j = json_loads(b.data, 0, NULL);
    assert_non_null(j);
    json_decref(j);
    api_buf_free(&b);
}

static void test_output_always_parses(void **state)
{
    /* every single byte value and a few random sequences yield valid JSON */
    unsigned seed = 12345;
    for (int round = 0; round < 2000; round++) {
        char in[16];
        size_t n = (size_t)(round % 16);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            in[i] = (char)(seed >> 16);
        }
        api_buf b = {0};
        api_jw w;
        api_jw_init(&w, &b);
        api_jw_arr(&w);
        api_jw_strn(&w, in, n);
        api_jw_arr_end(&w);
        json_error_t e;
        json_t *j = json_loadb(b.data, b.len, JSON_ALLOW_NUL, &e);
        if (!j) {
            api_buf_free(&b);
            fail_msg("round %d: %s", round, e.text);
        }
        json_decref(j);
        api_buf_free(&b);
    }
}

static void test_jansson_value(void **state)
{
    api_buf b = {0};
    api_jw w;
    api_jw_init(&w, &b);
    api_jw_obj(&w);
    json_t *v = json_pack("{s:i,s:[s]}", "a", 1, "b", "x");
    api_jw_key(&w, "v");
    api_jw_json(&w, v);
    api_jw_kint(&w, "after", 2);
    api_jw_obj_end(&w);
    json_decref(v);
    assert_string_equal(api_buf_cstr(&b), "{\"v\":{\"a\":1,\"b\":[\"x\"]},\"after\":2}");
    api_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_and_escapes), cmocka_unit_test(test_every_control_char_escaped),
        cmocka_unit_test(test_valid_utf8_passes), cmocka_unit_test(test_invalid_utf8_replaced),
        cmocka_unit_test(test_structure),         cmocka_unit_test(test_output_always_parses),
        cmocka_unit_test(test_jansson_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
