/* Tests for cache/filter.c: Mastodon's home and list filters, one rule at a time and in order. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cache/cache.h"

#define AUTHOR 10
#define RECEIVER 20
#define OTHER 30

static cache_filter_status plain(void)
{
    cache_filter_status s = {.id = 1000, .account_id = AUTHOR, .language = "en"};
    return s;
}

static cache_filter_status reply_to(int64_t account)
{
    cache_filter_status s = plain();
    s.reply = true;
    s.in_reply_to_id = 999;
    s.in_reply_to_account_id = account;
    return s;
}

static cache_filter_status reblog(int64_t of_account)
{
    cache_filter_status s = plain();
    s.reblog_of_id = 500;
    s.reblog_account_id = of_account;
    s.language = NULL;
    return s;
}

static int home(const cache_filter_status *s, const cache_filter_facts *f)
{
    return cache_filter_home(s, RECEIVER, f, false);
}

static void test_plain_status_is_delivered(void **state)
{
    cache_filter_status s = plain();
    cache_filter_facts f = {0};
    assert_int_equal(home(&s, &f), CACHE_FILTER_NONE);
}

static void test_own_status_is_never_filtered(void **state)
{
    /* every other rule would fire */
    cache_filter_status s = reply_to(OTHER);
    s.in_reply_to_id = 0;
    cache_filter_facts f = {.blocking = true,
                            .muting = true,
                            .blocked_by_author = true,
                            .author_in_exclusive_list = true,
                            .languages = "de"};
    assert_int_equal(cache_filter_home(&s, AUTHOR, &f, false), CACHE_FILTER_NONE);
}

static void test_orphan_reply(void **state)
{
    cache_filter_facts f = {0};
    cache_filter_status s = plain();
    s.reply = true; /* the reply flag with no parent left */
    assert_int_equal(home(&s, &f), CACHE_FILTER_ORPHAN_REPLY);
    s = reply_to(OTHER);
    s.in_reply_to_account_id = 0;
    assert_int_equal(home(&s, &f), CACHE_FILTER_ORPHAN_REPLY);
    /* it comes before every later rule */
    f.author_in_exclusive_list = true;
    f.blocking = true;
    assert_int_equal(home(&s, &f), CACHE_FILTER_ORPHAN_REPLY);
}

static void test_exclusive_list_only_on_home(void **state)
{
    cache_filter_status s = plain();
    cache_filter_facts f = {.author_in_exclusive_list = true, .languages = "de", .blocking = true};
    assert_int_equal(home(&s, &f), CACHE_FILTER_EXCLUSIVE_LIST);
    /* the list pass skips it; the next rule in order (language) decides */
    assert_int_equal(cache_filter_home(&s, RECEIVER, &f, true), CACHE_FILTER_LANGUAGE);
}

static void test_language(void **state)
{
    cache_filter_status s = plain();
    cache_filter_facts f = {.languages = "de,fr", .blocking = true};
    assert_int_equal(home(&s, &f), CACHE_FILTER_LANGUAGE);
    f.languages = "de,en";
    assert_int_equal(home(&s, &f), CACHE_FILTER_BLOCKING);
    f.languages = "";
    assert_int_equal(home(&s, &f), CACHE_FILTER_BLOCKING);
    s.language = NULL; /* no language: always allowed */
    f.languages = "de";
    assert_int_equal(home(&s, &f), CACHE_FILTER_BLOCKING);
    assert_true(cache_language_allowed("en", "en"));
    assert_false(cache_language_allowed("en", "e"));
    assert_false(cache_language_allowed("eng", "en"));
    assert_true(cache_language_allowed("de,en", "en"));
    assert_true(cache_language_allowed(NULL, "en"));
}

static void test_missing_reblog(void **state)
{
    cache_filter_status s = reblog(0);
    cache_filter_facts f = {.blocking = true};
    assert_int_equal(home(&s, &f), CACHE_FILTER_MISSING_REBLOG);
    /* language comes first */
    s.language = "en";
    f.languages = "de";
    assert_int_equal(home(&s, &f), CACHE_FILTER_LANGUAGE);
}

static void test_blocks_mutes_blocked_by_in_order(void **state)
{
    cache_filter_status s = plain();
    cache_filter_facts f = {.blocking = true, .muting = true, .blocked_by_author = true};
    assert_int_equal(home(&s, &f), CACHE_FILTER_BLOCKING);
    f.blocking = false;
    assert_int_equal(home(&s, &f), CACHE_FILTER_MUTING);
    f.muting = false;
    assert_int_equal(home(&s, &f), CACHE_FILTER_BLOCKED_BY);
    f.blocked_by_author = false;
    assert_int_equal(home(&s, &f), CACHE_FILTER_NONE);
}

static void test_replies(void **state)
{
    cache_filter_facts f = {0};
    cache_filter_status s = reply_to(OTHER);
    assert_int_equal(home(&s, &f), CACHE_FILTER_REPLY);
    f.follows_reply_target = true;
    assert_int_equal(home(&s, &f), CACHE_FILTER_NONE);
    f.follows_reply_target = false;
    s = reply_to(RECEIVER); /* a reply to me */
    assert_int_equal(home(&s, &f), CACHE_FILTER_NONE);
    s = reply_to(AUTHOR); /* a self-reply (thread) */
    assert_int_equal(home(&s, &f), CACHE_FILTER_NONE);
    /* blocks come before the reply rule */
    s = reply_to(OTHER);
    f.follows_reply_target = true;
    f.muting = true;
    assert_int_equal(home(&s, &f), CACHE_FILTER_MUTING);
    /* a reply is not judged by the reblog rules */
    f.muting = false;
    f.hides_reblogs = true;
    assert_int_equal(home(&s, &f), CACHE_FILTER_NONE);
}

static void test_reblogs(void **state)
{
    cache_filter_status s = reblog(OTHER);
    cache_filter_facts f = {.hides_reblogs = true, .blocked_by_reblog_author = true};
    assert_int_equal(home(&s, &f), CACHE_FILTER_HIDDEN_REBLOG);
    f.hides_reblogs = false;
    assert_int_equal(home(&s, &f), CACHE_FILTER_REBLOG_BLOCKED_BY);
    f.blocked_by_reblog_author = false;
    assert_int_equal(home(&s, &f), CACHE_FILTER_NONE);
    /* show_reblogs=false does nothing to an original status */
    s = plain();
    f.hides_reblogs = true;
    assert_int_equal(home(&s, &f), CACHE_FILTER_NONE);
}

static void test_list_replies_policy(void **state)
{
    const int64_t owner = RECEIVER;
    cache_filter_status s = reply_to(OTHER);
    /* list: only replies to list members (or the owner) */
    assert_int_equal(cache_filter_list(&s, owner, CACHE_REPLIES_LIST, false),
                     CACHE_FILTER_LIST_REPLY);
    assert_int_equal(cache_filter_list(&s, owner, CACHE_REPLIES_LIST, true), CACHE_FILTER_NONE);
    /* followed: the list lets it through (the home pass then checks follows) */
    assert_int_equal(cache_filter_list(&s, owner, CACHE_REPLIES_FOLLOWED, false),
                     CACHE_FILTER_NONE);
    /* none: even replies to members stay out */
    assert_int_equal(cache_filter_list(&s, owner, CACHE_REPLIES_NONE, true),
                     CACHE_FILTER_LIST_REPLY);
    /* replies to the owner and self-replies always pass */
    s = reply_to(owner);
    assert_int_equal(cache_filter_list(&s, owner, CACHE_REPLIES_NONE, false), CACHE_FILTER_NONE);
    s = reply_to(AUTHOR);
    assert_int_equal(cache_filter_list(&s, owner, CACHE_REPLIES_NONE, false), CACHE_FILTER_NONE);
    /* not a reply */
    s = plain();
    assert_int_equal(cache_filter_list(&s, owner, CACHE_REPLIES_NONE, false), CACHE_FILTER_NONE);
}

static void test_reason_names(void **state)
{
    assert_string_equal(cache_filter_reason_name(CACHE_FILTER_NONE), "delivered");
    assert_string_equal(cache_filter_reason_name(CACHE_FILTER_LIST_REPLY), "list replies policy");
    assert_string_equal(cache_filter_reason_name(99), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_status_is_delivered),
        cmocka_unit_test(test_own_status_is_never_filtered),
        cmocka_unit_test(test_orphan_reply),
        cmocka_unit_test(test_exclusive_list_only_on_home),
        cmocka_unit_test(test_language),
        cmocka_unit_test(test_missing_reblog),
        cmocka_unit_test(test_blocks_mutes_blocked_by_in_order),
        cmocka_unit_test(test_replies),
        cmocka_unit_test(test_reblogs),
        cmocka_unit_test(test_list_replies_policy),
        cmocka_unit_test(test_reason_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
