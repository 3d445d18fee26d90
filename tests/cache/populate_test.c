/* Tests for cache/populate.c against real PostgreSQL and Redis: feed rebuild (own statuses,
 * followed accounts, the home filter, the per-account cap), no double rebuild under
 * concurrency, rebuild racing with a fan-out insert, merge/unmerge on follow/unfollow, clear
 * on block/mute, and list feeds with replies_policy. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fanout/fanout.h"
#include "tests/cache/harness.h"

static th_env env;
static th_env *e = &env;

static bool in(const int64_t *ids, size_t n, int64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

static void test_populate_home(void **state)
{
    int64_t u = th_account(e, "pu_u", true, true);
    int64_t a = th_account(e, "pu_a", true, true);
    int64_t b = th_account(e, "pu_b", true, true);
    int64_t c = th_account(e, "pu_c", true, true);
    int64_t m = th_account(e, "pu_m", true, true);
    int64_t x = th_account(e, "pu_x", true, true);
    int64_t d = th_account(e, "pu_d", false, false); /* remote, prolific */
    th_follow(e, u, a, true, "{en}");
    th_follow(e, u, b, true, NULL);
    th_follow(e, u, x, true, NULL);
    th_follow(e, u, d, true, NULL);
    th_mute(e, u, m);
    th_block(e, x, u);

    th_status direct = {.visibility = CACHE_VIS_DIRECT};
    int64_t own1 = th_post(e, u, NULL, false);
    int64_t own2 = th_post(e, u, &direct, false); /* own statuses of any visibility */
    int64_t c1 = th_post(e, c, NULL, false);
    int64_t a1 = th_post(e, a, &(th_status){.language = "en"}, false);
    int64_t a_de = th_post(e, a, &(th_status){.language = "de"}, false);
    int64_t a_to_c = th_post(e, a, &(th_status){.reply_to = c1}, false);
    int64_t b1 = th_post(e, b, NULL, false);
    int64_t a_to_b = th_post(e, a, &(th_status){.reply_to = b1}, false);
    int64_t a_direct = th_post(e, a, &direct, false);
    int64_t b_m = th_post(e, b, &(th_status){.mentions = {m}}, false);
    int64_t x1 = th_post(e, x, NULL, false);
    int64_t a_orphan = th_post(e, a, &(th_status){.orphan_reply = true}, false);
    /* 450 statuses of d: only the newest CACHE_POPULATE_LIMIT may come in */
    th_exec(e,
            "INSERT INTO statuses (account_id, text, created_at, updated_at)"
            " SELECT %lld, 'd' || g, now(), now() FROM generate_series(1, 450) g",
            (long long)d);

    int64_t feed[CACHE_MAX_ITEMS + 10];
    size_t n = th_read_feed(e, CACHE_FEED_HOME, u, feed, CACHE_MAX_ITEMS + 10);
    assert_true(in(feed, n, own1));
    assert_true(in(feed, n, own2));
    assert_true(in(feed, n, a1));
    assert_true(in(feed, n, a_to_b)); /* reply to someone u follows */
    assert_true(in(feed, n, b1));
    assert_false(in(feed, n, c1));       /* not followed */
    assert_false(in(feed, n, a_de));     /* follow languages {en} */
    assert_false(in(feed, n, a_to_c));   /* reply to someone u does not follow */
    assert_false(in(feed, n, a_direct)); /* direct, not addressed to u */
    assert_false(in(feed, n, b_m));      /* mentions a muted account */
    assert_false(in(feed, n, x1));       /* author blocks u */
    assert_false(in(feed, n, a_orphan)); /* reply without a parent */
    size_t nd = 0;
    int64_t oldest_d = th_scalar(e,
                                 "SELECT min(id) FROM (SELECT id FROM statuses WHERE account_id ="
                                 " %lld ORDER BY id DESC LIMIT 400) t",
                                 (long long)d);
    for (size_t i = 0; i < n; i++) {
        int64_t owner =
            th_scalar(e, "SELECT account_id FROM statuses WHERE id = %lld", (long long)feed[i]);
        if (owner == d) {
            nd++;
            assert_true(feed[i] >= oldest_d);
        }
    }
    assert_int_equal(nd, CACHE_POPULATE_LIMIT);
    assert_int_equal(n, 5 + CACHE_POPULATE_LIMIT);
    /* rebuilding again changes nothing */
    th_build_feed(e, CACHE_FEED_HOME, u);
    int64_t again[CACHE_MAX_ITEMS + 10];
    assert_int_equal(th_feed(e, CACHE_FEED_HOME, u, again, CACHE_MAX_ITEMS + 10), n);
}

typedef struct claim_arg {
    th_env *e;
    int64_t account;
    int result;
} claim_arg;

static void *claim_thread(void *p)
{
    claim_arg *a = p;
    cache *c = cache_open(&a->e->ccfg);
    a->result = fanout_request_regeneration(c, CACHE_FEED_HOME, a->account);
    cache_close(c);
    return NULL;
}

static void test_regeneration_runs_once(void **state)
{
    int64_t u = th_account(e, "rg_u", true, true);
    int64_t a = th_account(e, "rg_a", true, true);
    th_follow(e, u, a, true, NULL);
    int64_t s1 = th_post(e, a, NULL, false);
    assert_int_equal(cache_feed_state(e->c, CACHE_FEED_HOME, u), CACHE_FEED_ABSENT);
    /* eight api threads see the feed missing at the same moment */
    pthread_t t[8];
    claim_arg args[8];
    for (int i = 0; i < 8; i++) {
        args[i] = (claim_arg){e, u, -5};
        assert_int_equal(pthread_create(&t[i], NULL, claim_thread, &args[i]), 0);
    }
    int started = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        assert_true(args[i].result == 0 || args[i].result == 1);
        started += args[i].result;
    }
    assert_int_equal(started, 1);
    redisReply *r = redisCommand(e->r, "XLEN tusk:queue:default");
    assert_int_equal(r->integer, 1); /* one rebuild job */
    freeReplyObject(r);
    assert_int_equal(cache_feed_state(e->c, CACHE_FEED_HOME, u), CACHE_FEED_REGENERATING);

    /* a fan-out insert during the rebuild is kept (the marker lets it in) */
    int64_t s2 = th_post(e, a, NULL, false);
    int res;
    assert_int_equal(
        cache_feed_add_many(e->c, CACHE_FEED_HOME, &u, 1, s2, 0, CACHE_ADD_IF_EXISTS, &res), 0);
    assert_int_equal(res, CACHE_FEED_ADDED);
    /* the rebuild (as the worker runs it) merges the rest in, then drops the marker */
    th_build_feed(e, CACHE_FEED_HOME, u);
    assert_int_equal(cache_regeneration_release(e->c, CACHE_FEED_HOME, u), 0);
    assert_int_equal(cache_feed_state(e->c, CACHE_FEED_HOME, u), CACHE_FEED_READY);
    assert_true(th_feed_has(e, CACHE_FEED_HOME, u, s1));
    assert_true(th_feed_has(e, CACHE_FEED_HOME, u, s2));
}

static void test_merge_unmerge(void **state)
{
    int64_t u = th_account(e, "mg_u", true, true);
    int64_t a = th_account(e, "mg_a", true, true);
    int64_t c = th_account(e, "mg_c", true, true);
    int64_t z = th_account(e, "mg_z", true, true);
    int64_t own = th_post(e, u, NULL, false);
    th_build_feed(e, CACHE_FEED_HOME, u);
    int64_t z1 = th_post(e, z, NULL, false);
    int64_t c1 = th_post(e, c, NULL, false);
    int64_t c2 = th_post(e, c, &(th_status){.reply_to = z1}, false); /* u does not follow z */
    int64_t c3 = th_post(e, c, &(th_status){.visibility = CACHE_VIS_DIRECT}, false);
    int64_t a1 = th_post(e, a, NULL, false);
    th_follow(e, u, a, true, NULL);
    char err[256];
    assert_int_equal(cache_feed_merge(e->c, e->pg, CACHE_FEED_HOME, u, a, err, sizeof(err)), 1);
    th_follow(e, u, c, true, NULL);
    assert_int_equal(cache_feed_merge(e->c, e->pg, CACHE_FEED_HOME, u, c, err, sizeof(err)), 1);
    assert_true(th_feed_has(e, CACHE_FEED_HOME, u, c1));
    assert_false(th_feed_has(e, CACHE_FEED_HOME, u, c2));
    assert_false(th_feed_has(e, CACHE_FEED_HOME, u, c3));
    assert_true(th_feed_has(e, CACHE_FEED_HOME, u, a1));
    /* unfollow: every status of c leaves, nothing else */
    th_exec(e, "DELETE FROM follows WHERE account_id = %lld AND target_account_id = %lld",
            (long long)u, (long long)c);
    assert_int_equal(cache_feed_unmerge(e->c, e->pg, CACHE_FEED_HOME, u, c, err, sizeof(err)), 1);
    assert_false(th_feed_has(e, CACHE_FEED_HOME, u, c1));
    assert_true(th_feed_has(e, CACHE_FEED_HOME, u, a1));
    assert_true(th_feed_has(e, CACHE_FEED_HOME, u, own));
    /* merging into a feed that does not exist leaves it absent (rebuilt on read) */
    int64_t v = th_account(e, "mg_v", true, true);
    th_follow(e, v, a, true, NULL);
    assert_int_equal(cache_feed_merge(e->c, e->pg, CACHE_FEED_HOME, v, a, err, sizeof(err)), 0);
    char vkey[64];
    cache_feed_key(vkey, sizeof(vkey), CACHE_FEED_HOME, v);
    assert_false(th_exists(e, vkey));
    assert_int_equal(cache_feed_state(e->c, CACHE_FEED_HOME, v), CACHE_FEED_ABSENT);
}

static void test_merge_window(void **state)
{
    /* a feed with >= MAX_ITEMS/4 entries only takes statuses newer than its oldest */
    int64_t u = th_account(e, "mw_u", true, true);
    int64_t a = th_account(e, "mw_a", true, true);
    int64_t old_a = th_post(e, a, NULL, false);
    /* ids within one millisecond order by a hash-based 16-bit counter that can wrap: let the
     * millisecond part alone order old_a before the feed's statuses */
    usleep(2000);
    th_exec(e,
            "INSERT INTO statuses (account_id, text, created_at, updated_at)"
            " SELECT %lld, 'own', now(), now() FROM generate_series(1, 250)",
            (long long)u);
    usleep(2000);
    int64_t new_a = th_post(e, a, NULL, false);
    th_build_feed(e, CACHE_FEED_HOME, u);
    th_follow(e, u, a, true, NULL);
    char err[256];
    assert_int_equal(cache_feed_merge(e->c, e->pg, CACHE_FEED_HOME, u, a, err, sizeof(err)), 1);
    assert_true(th_feed_has(e, CACHE_FEED_HOME, u, new_a));
    assert_false(th_feed_has(e, CACHE_FEED_HOME, u, old_a));
}

static void test_clear_account(void **state)
{
    int64_t u = th_account(e, "cl_u", true, true);
    int64_t b = th_account(e, "cl_b", true, true);
    int64_t a = th_account(e, "cl_a", true, true);
    th_follow(e, u, a, true, NULL);
    th_follow(e, u, b, true, NULL);
    int64_t b1 = th_post(e, b, NULL, false);
    int64_t a_m = th_post(e, a, &(th_status){.mentions = {b}}, false);
    int64_t a1 = th_post(e, a, NULL, false);
    /* push b1 out of the falloff window so a reblog of it is shown */
    for (int i = 0; i < CACHE_REBLOG_FALLOFF; i++)
        th_post(e, u, NULL, false);
    int64_t a_rb = th_post(e, a, &(th_status){.reblog_of = b1}, false);
    th_build_feed(e, CACHE_FEED_HOME, u);
    assert_true(th_feed_has(e, CACHE_FEED_HOME, u, b1));
    assert_true(th_feed_has(e, CACHE_FEED_HOME, u, a_m));
    assert_true(th_feed_has(e, CACHE_FEED_HOME, u, a_rb));
    /* a streaming client is connected */
    redisReply *r = redisCommand(e->r, "SET subscribed:timeline:%lld 1 EX 60", (long long)u);
    freeReplyObject(r);
    redisContext *sub = redisConnect("127.0.0.1", e->redis_port);
    r = redisCommand(sub, "SUBSCRIBE timeline:%lld", (long long)u);
    freeReplyObject(r);
    th_mute(e, u, b);
    char err[256];
    assert_int_equal(cache_feed_clear_account(e->c, e->pg, CACHE_FEED_HOME, u, b, err, sizeof(err)),
                     3);
    assert_false(th_feed_has(e, CACHE_FEED_HOME, u, b1));
    assert_false(th_feed_has(e, CACHE_FEED_HOME, u, a_m));
    assert_false(th_feed_has(e, CACHE_FEED_HOME, u, a_rb));
    assert_true(th_feed_has(e, CACHE_FEED_HOME, u, a1));
    /* one delete event per removed status */
    int deletes = 0;
    for (int i = 0; i < 3; i++) {
        void *reply;
        assert_int_equal(redisGetReply(sub, &reply), REDIS_OK);
        redisReply *m = reply;
        assert_non_null(strstr(m->element[2]->str, "\"event\":\"delete\""));
        deletes++;
        freeReplyObject(m);
    }
    assert_int_equal(deletes, 3);
    redisFree(sub);
}

static void test_list_feeds(void **state)
{
    int64_t o = th_account(e, "li_o", true, true);
    int64_t a = th_account(e, "li_a", true, true);
    int64_t b = th_account(e, "li_b", true, true);
    int64_t c = th_account(e, "li_c", true, true);
    th_follow(e, o, a, true, NULL);
    th_follow(e, o, b, true, NULL);
    th_follow(e, o, c, true, NULL);
    int64_t l_list = th_list(e, o, CACHE_REPLIES_LIST, false);
    int64_t l_none = th_list(e, o, CACHE_REPLIES_NONE, false);
    int64_t l_fol = th_list(e, o, CACHE_REPLIES_FOLLOWED, false);
    int64_t lists[3] = {l_list, l_none, l_fol};
    for (int i = 0; i < 3; i++) {
        th_list_add(e, lists[i], a);
        th_list_add(e, lists[i], b);
    }
    int64_t b1 = th_post(e, b, NULL, false);
    int64_t c1 = th_post(e, c, NULL, false);
    int64_t o1 = th_post(e, o, NULL, false);
    int64_t a_b = th_post(e, a, &(th_status){.reply_to = b1}, false); /* to a member */
    int64_t a_c = th_post(e, a, &(th_status){.reply_to = c1}, false); /* to a followed non-member */
    int64_t a_o = th_post(e, a, &(th_status){.reply_to = o1}, false); /* to the owner */
    for (int i = 0; i < 3; i++)
        th_build_feed(e, CACHE_FEED_LIST, lists[i]);
    /* members' statuses only */
    for (int i = 0; i < 3; i++) {
        assert_true(th_feed_has(e, CACHE_FEED_LIST, lists[i], b1));
        assert_false(th_feed_has(e, CACHE_FEED_LIST, lists[i], c1));
        assert_false(th_feed_has(e, CACHE_FEED_LIST, lists[i], o1));
        assert_true(th_feed_has(e, CACHE_FEED_LIST, lists[i], a_o));
    }
    assert_true(th_feed_has(e, CACHE_FEED_LIST, l_list, a_b));
    assert_false(th_feed_has(e, CACHE_FEED_LIST, l_list, a_c));
    assert_false(th_feed_has(e, CACHE_FEED_LIST, l_none, a_b));
    assert_false(th_feed_has(e, CACHE_FEED_LIST, l_none, a_c));
    assert_true(th_feed_has(e, CACHE_FEED_LIST, l_fol, a_b));
    assert_true(th_feed_has(e, CACHE_FEED_LIST, l_fol, a_c));
    /* removing a member unmerges its statuses */
    char err[256];
    th_exec(e, "DELETE FROM list_accounts WHERE list_id = %lld AND account_id = %lld",
            (long long)l_fol, (long long)b);
    assert_true(cache_feed_unmerge(e->c, e->pg, CACHE_FEED_LIST, l_fol, b, err, sizeof(err)) >= 1);
    assert_false(th_feed_has(e, CACHE_FEED_LIST, l_fol, b1));
    assert_true(th_feed_has(e, CACHE_FEED_LIST, l_fol, a_b));
    /* adding merges */
    th_list_add(e, l_fol, c);
    assert_true(cache_feed_merge(e->c, e->pg, CACHE_FEED_LIST, l_fol, c, err, sizeof(err)) >= 1);
    assert_true(th_feed_has(e, CACHE_FEED_LIST, l_fol, c1));
}

static int setup(void **state)
{
    th_setup(e, "populate", true, 0);
    return 0;
}

static int teardown(void **state)
{
    th_teardown(e);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_populate_home), cmocka_unit_test(test_regeneration_runs_once),
        cmocka_unit_test(test_merge_unmerge), cmocka_unit_test(test_merge_window),
        cmocka_unit_test(test_clear_account), cmocka_unit_test(test_list_feeds),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
