/* Tests for cache/render.c: JSON escaping, UTF-8 handling and the Status/Account entities
 * (checked by parsing the output with jansson). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"

static char *json_of(const char *s)
{
    cache_buf b;
    cache_buf_init(&b);
    cache_json_string(&b, s);
    return b.data;
}

static void test_escaping(void **state)
{
    char *j = json_of("a\"b\\c\n\t\r\b\f\x01\x1f/");
    assert_string_equal(j, "\"a\\\"b\\\\c\\n\\t\\r\\b\\f\\u0001\\u001f/\"");
    free(j);
    j = json_of("ünïcödé 🐘");
    assert_string_equal(j, "\"ünïcödé 🐘\"");
    free(j);
    /* U+2028/2029 are escaped (valid JSON, and safe inside JavaScript) */
    j = json_of("a\xe2\x80\xa8"
                "b\xe2\x80\xa9");
    assert_string_equal(j, "\"a\\u2028b\\u2029\"");
    free(j);
    j = json_of(NULL);
    assert_string_equal(j, "null");
    free(j);
}

static void test_invalid_utf8(void **state)
{
    const char *bad[] = {
        "\xff",             /* never valid */
        "\xc3",             /* truncated */
        "\xc0\xaf",         /* overlong '/' */
        "\xe0\x80\xaf",     /* overlong */
        "\xed\xa0\x80",     /* surrogate */
        "\xf4\x90\x80\x80", /* past U+10FFFF */
        "ok\x80ok",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *j = json_of(bad[i]);
        json_error_t err;
        json_t *v = json_loads(j, JSON_DECODE_ANY, &err);
        assert_non_null(v); /* jansson rejects invalid UTF-8: the output must be valid */
        assert_non_null(strstr(j, "\xef\xbf\xbd"));
        json_decref(v);
        free(j);
    }
}

static void test_time(void **state)
{
    char t[32];
    cache_format_time(1575776913901, t);
    assert_string_equal(t, "2019-12-08T03:48:33.901Z");
    cache_format_time(0, t);
    assert_string_equal(t, "1970-01-01T00:00:00.000Z");
}

static void test_plain_content(void **state)
{
    cache_buf b;
    cache_buf_init(&b);
    cache_render_plain_content(&b, "Hi <b>&\n\"you\"\n\nnext\n\n\n");
    assert_string_equal(b.data, "<p>Hi &lt;b&gt;&amp;<br />&quot;you&quot;</p><p>next</p>");
    cache_buf_reset(&b);
    cache_render_plain_content(&b, "");
    assert_true(b.len == 0);
    cache_buf_free(&b);
}

static cache_status *make(int64_t id, const char *text)
{
    cache_status *s = calloc(1, sizeof(*s));
    s->id = id;
    s->account_id = 77;
    s->created_at_ms = 1575776913901;
    s->local = true;
    s->text = strdup(text);
    s->spoiler_text = strdup("cw: \"x\"");
    s->account.id = 77;
    s->account.username = strdup("alice");
    s->account.display_name = strdup("Al\\ice");
    s->account.note = strdup("");
    s->account.fields_json = strdup("[]");
    s->account.created_at_ms = 1575776913901;
    return s;
}

static void test_status_entity(void **state)
{
    cache_config cfg;
    cache_config_init(&cfg);
    char err[64];
    cache_config_set(&cfg, "local_domain", "social.test", err, sizeof(err));
    cache_status *s = make(108012345678901234, "hello\nworld \x01");
    s->language = strdup("en");
    s->in_reply_to_id = 108000000000000001;
    s->in_reply_to_account_id = 5;
    s->n_mentions = 1;
    s->mentions = calloc(1, sizeof(cache_mention));
    s->mentions[0].account_id = 5;
    s->mentions[0].username = strdup("bob");
    s->mentions[0].domain = strdup("remote.test");
    cache_buf b;
    cache_buf_init(&b);
    cache_viewer_flags vf = {.favourited = true};
    assert_true(cache_render_status(&b, s, &cfg, &vf));
    json_error_t jerr;
    json_t *v = json_loads(b.data, 0, &jerr);
    if (!v)
        fail_msg("invalid JSON (%s): %s", jerr.text, b.data);
    /* ids are strings, exact even beyond 2^53 */
    assert_string_equal(json_string_value(json_object_get(v, "id")), "108012345678901234");
    assert_string_equal(json_string_value(json_object_get(v, "in_reply_to_id")),
                        "108000000000000001");
    assert_string_equal(json_string_value(json_object_get(v, "in_reply_to_account_id")), "5");
    assert_string_equal(json_string_value(json_object_get(v, "created_at")),
                        "2019-12-08T03:48:33.901Z");
    assert_string_equal(json_string_value(json_object_get(v, "visibility")), "public");
    assert_string_equal(json_string_value(json_object_get(v, "language")), "en");
    assert_string_equal(json_string_value(json_object_get(v, "spoiler_text")), "cw: \"x\"");
    assert_string_equal(json_string_value(json_object_get(v, "content")),
                        "<p>hello<br />world \x01</p>");
    assert_string_equal(json_string_value(json_object_get(v, "url")),
                        "https://social.test/@alice/108012345678901234");
    /* public_url (scheme, port) wins over https://local_domain */
    {
        cache_config pc = cfg;
        assert_int_equal(cache_config_set(&pc, "public_url", "http://127.0.0.1:3000/", err,
                                          sizeof(err)),
                         1);
        cache_buf pb;
        cache_buf_init(&pb);
        assert_true(cache_render_status(&pb, s, &pc, &vf));
        json_t *pv = json_loads(pb.data, 0, &jerr);
        assert_non_null(pv);
        assert_string_equal(json_string_value(json_object_get(pv, "url")),
                            "http://127.0.0.1:3000/@alice/108012345678901234");
        assert_string_equal(json_string_value(json_object_get(pv, "uri")),
                            "http://127.0.0.1:3000/users/alice/statuses/108012345678901234");
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(pv, "account"), "url")),
            "http://127.0.0.1:3000/@alice");
        json_decref(pv);
        cache_buf_free(&pb);
    }
    assert_true(json_is_null(json_object_get(v, "reblog")));
    assert_true(json_is_null(json_object_get(v, "edited_at")));
    assert_true(json_is_true(json_object_get(v, "favourited")));
    assert_true(json_is_false(json_object_get(v, "bookmarked")));
    assert_true(json_is_array(json_object_get(v, "media_attachments")));
    json_t *m = json_array_get(json_object_get(v, "mentions"), 0);
    assert_string_equal(json_string_value(json_object_get(m, "acct")), "bob@remote.test");
    assert_string_equal(json_string_value(json_object_get(m, "id")), "5");
    json_t *a = json_object_get(v, "account");
    assert_string_equal(json_string_value(json_object_get(a, "id")), "77");
    assert_string_equal(json_string_value(json_object_get(a, "acct")), "alice");
    assert_string_equal(json_string_value(json_object_get(a, "display_name")), "Al\\ice");
    assert_string_equal(json_string_value(json_object_get(a, "created_at")),
                        "2019-12-08T00:00:00.000Z");
    assert_true(json_is_null(json_object_get(a, "last_status_at")));
    assert_true(json_is_integer(json_object_get(a, "followers_count")));
    json_decref(v);

    /* a reblog nests the original and has no content of its own; no viewer flags */
    cache_status *r = make(108012345678909999, "ignored");
    r->reblog_of_id = s->id;
    r->reblog = s;
    cache_buf_reset(&b);
    assert_true(cache_render_status(&b, r, &cfg, NULL));
    v = json_loads(b.data, 0, &jerr);
    assert_non_null(v);
    assert_string_equal(json_string_value(json_object_get(v, "content")), "");
    assert_true(json_is_null(json_object_get(v, "url")));
    assert_null(json_object_get(v, "favourited"));
    json_t *inner = json_object_get(v, "reblog");
    assert_string_equal(json_string_value(json_object_get(inner, "id")), "108012345678901234");
    json_decref(v);

    /* the streaming envelopes */
    cache_buf ev;
    cache_buf_init(&ev);
    cache_event_update(&ev, b.data, b.len);
    v = json_loads(ev.data, 0, &jerr);
    assert_non_null(v);
    assert_string_equal(json_string_value(json_object_get(v, "event")), "update");
    assert_true(json_is_object(json_object_get(v, "payload")));
    json_decref(v);
    cache_buf_reset(&ev);
    cache_event_delete(&ev, 108012345678901234);
    assert_string_equal(ev.data, "{\"event\":\"delete\",\"payload\":\"108012345678901234\"}");
    cache_buf_free(&ev);
    cache_buf_free(&b);
    cache_status_free(r); /* frees s too */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escaping),      cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_time),          cmocka_unit_test(test_plain_content),
        cmocka_unit_test(test_status_entity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
