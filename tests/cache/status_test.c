/* Tests for cache/status.c: msgpack encode/decode of cached statuses. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"

static cache_status *sample(void)
{
    cache_status *s = calloc(1, sizeof(*s));
    s->id = 108012345678901234;
    s->account_id = 108000000000000001;
    s->created_at_ms = 1700000000123;
    s->edited_at_ms = 0;
    s->in_reply_to_id = 108012345678900000;
    s->in_reply_to_account_id = 5;
    s->reblog_of_id = 0;
    s->visibility = CACHE_VIS_PRIVATE;
    s->sensitive = true;
    s->reply = true;
    s->local = true;
    s->text = strdup("Grüße \"aus\" Köln 🐘\nzweite Zeile");
    s->spoiler_text = strdup("");
    s->language = strdup("de");
    s->uri = NULL;
    s->url = strdup("https://x.test/@a/1");
    s->replies_count = 3;
    s->reblogs_count = 4;
    s->favourites_count = 1ll << 40;
    s->account.id = s->account_id;
    s->account.username = strdup("alice");
    s->account.domain = NULL;
    s->account.display_name = strdup("Alice ✨");
    s->account.note = strdup("<p>hi</p>");
    s->account.fields_json = strdup("[{\"name\":\"a\",\"value\":\"b\"}]");
    s->account.bot = true;
    s->account.discoverable = true;
    s->account.created_at_ms = 1600000000000;
    s->account.last_status_at_ms = 1700000000000;
    s->account.statuses_count = 12;
    s->account.followers_count = 100000;
    s->account.following_count = 7;
    s->n_mentions = 2;
    s->mentions = calloc(2, sizeof(cache_mention));
    s->mentions[0].account_id = 5;
    s->mentions[0].username = strdup("bob");
    s->mentions[1].account_id = 6;
    s->mentions[1].username = strdup("carol");
    s->mentions[1].domain = strdup("remote.test");
    s->mentions[1].url = strdup("https://remote.test/@carol");
    return s;
}

static void assert_str_or_null(const char *a, const char *b)
{
    if (!a || !b)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

static void test_round_trip(void **state)
{
    cache_status *s = sample();
    cache_buf b;
    cache_buf_init(&b);
    assert_true(cache_status_encode(s, &b));
    cache_status *d = cache_status_decode(b.data, b.len);
    assert_non_null(d);
    assert_int_equal(d->id, s->id);
    assert_int_equal(d->account_id, s->account_id);
    assert_int_equal(d->created_at_ms, s->created_at_ms);
    assert_int_equal(d->edited_at_ms, 0);
    assert_int_equal(d->in_reply_to_id, s->in_reply_to_id);
    assert_int_equal(d->in_reply_to_account_id, 5);
    assert_int_equal(d->visibility, CACHE_VIS_PRIVATE);
    assert_true(d->sensitive && d->reply && d->local);
    assert_string_equal(d->text, s->text);
    assert_string_equal(d->spoiler_text, "");
    assert_string_equal(d->language, "de");
    assert_null(d->uri);
    assert_string_equal(d->url, s->url);
    assert_int_equal(d->favourites_count, 1ll << 40);
    assert_string_equal(d->account.username, "alice");
    assert_null(d->account.domain);
    assert_string_equal(d->account.display_name, "Alice ✨");
    assert_string_equal(d->account.fields_json, s->account.fields_json);
    assert_true(d->account.bot && d->account.discoverable);
    assert_false(d->account.locked || d->account.group);
    assert_int_equal(d->account.followers_count, 100000);
    assert_int_equal(d->account.last_status_at_ms, 1700000000000);
    assert_int_equal(d->n_mentions, 2);
    assert_int_equal(d->mentions[1].account_id, 6);
    assert_str_or_null(d->mentions[0].domain, NULL);
    assert_string_equal(d->mentions[1].domain, "remote.test");
    assert_string_equal(d->mentions[1].url, "https://remote.test/@carol");
    /* encoding the decoded copy gives the same bytes */
    cache_buf b2;
    cache_buf_init(&b2);
    assert_true(cache_status_encode(d, &b2));
    assert_int_equal(b.len, b2.len);
    assert_memory_equal(b.data, b2.data, b.len);
    cache_buf_free(&b);
    cache_buf_free(&b2);
    cache_status_free(s);
    cache_status_free(d);
}

static void test_bad_input(void **state)
{
    cache_status *s = sample();
    cache_buf b;
    cache_buf_init(&b);
    assert_true(cache_status_encode(s, &b));
    /* every truncation is refused, never a crash */
    for (size_t n = 0; n < b.len; n++)
        assert_null(cache_status_decode(b.data, n));
    /* trailing garbage */
    cache_buf_append(&b, "x", 1);
    assert_null(cache_status_decode(b.data, b.len));
    /* another format version */
    cache_buf_reset(&b);
    assert_true(cache_status_encode(s, &b));
    /* array16 header (0xdc, 2-byte length), then the version */
    assert_int_equal((unsigned char)b.data[0], 0xdc);
    assert_int_equal((unsigned char)b.data[3], 1);
    b.data[3] = 2;
    assert_null(cache_status_decode(b.data, b.len));
    /* random bytes */
    srand(7);
    for (int round = 0; round < 2000; round++) {
        char junk[64];
        size_t n = (size_t)(rand() % 64);
        for (size_t i = 0; i < n; i++)
            junk[i] = (char)rand();
        cache_status_free(cache_status_decode(junk, n));
    }
    /* flipping any single byte never crashes (it may still decode) */
    cache_buf_reset(&b);
    assert_true(cache_status_encode(s, &b));
    for (size_t i = 0; i < b.len; i++) {
        char saved = b.data[i];
        b.data[i] ^= 0x5a;
        cache_status_free(cache_status_decode(b.data, b.len));
        b.data[i] = saved;
    }
    cache_buf_free(&b);
    cache_status_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_round_trip),
                                       cmocka_unit_test(test_bad_input)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
