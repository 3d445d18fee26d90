/* Reference model: a random graph (fixed seed) and random actions go through the outbox and
 * "tusk fanout"; at the end every home and list feed in Redis must hold exactly what a
 * straightforward SQL query over the tables says.
 *
 * Mastodon's feeds depend on history, not only on the final tables: a reply delivered while
 * you followed its addressee stays after you unfollow them, and merging on follow does not
 * re-filter older deliveries. The actions therefore run in phases, and the query knows them:
 *   1 graph, first statuses, feeds built (regeneration);
 *   2 posts, then deletes (fan-out and removal) -> snapshot follows_p2 / list_accounts_p2;
 *   3 unfollows, blocks (with Mastodon's mutual unfollow), mutes (unmerge / clear);
 *   4 follows of accounts not followed before (merge);
 *   5 more posts and deletes with the final graph.
 * A status of phase 1-2 that reached a feed through a follow that already existed then is
 * judged with the phase-2 follows and list members; everything else with the final ones. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "fanout/fanout.h"
#include "tests/cache/harness.h"

#define NLOCAL 18
#define NACTIVE 14
#define NREMOTE 6
#define NACC (NLOCAL + NREMOTE)
#define NLISTS 5

static th_env env;
static th_env *e = &env;
static uint64_t rng = 0x5eed2024cafef00dULL;
static int64_t acc[NACC];
static int64_t lists[NLISTS];

static uint64_t next(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ULL;
}

static int pick(int n)
{
    return (int)(next() % (uint64_t)n);
}

static bool chance(int percent)
{
    return pick(100) < percent;
}

static bool follows(int64_t a, int64_t b)
{
    return th_scalar(e,
                     "SELECT count(*) FROM follows WHERE account_id = %lld AND"
                     " target_account_id = %lld",
                     (long long)a, (long long)b) > 0;
}

static bool blocked_either(int64_t a, int64_t b)
{
    return th_scalar(e,
                     "SELECT count(*) FROM blocks WHERE (account_id = %lld AND"
                     " target_account_id = %lld) OR (account_id = %lld AND"
                     " target_account_id = %lld)",
                     (long long)a, (long long)b, (long long)b, (long long)a) > 0;
}

/* a random live status, 0 when none */
static int64_t random_status(bool deletable)
{
    /* the first status of each account is never deleted: it keeps every home feed non-empty
     * (an emptied ZSET does not exist in Redis, and an absent feed is rebuilt, not fed) */
    const char *where = deletable ? "deleted_at IS NULL AND id NOT IN"
                                    " (SELECT min(id) FROM statuses GROUP BY account_id)"
                                  : "deleted_at IS NULL";
    int64_t n = th_scalar(e, "SELECT count(*) FROM statuses WHERE %s", where);
    if (n == 0)
        return 0;
    return th_scalar(e, "SELECT id FROM statuses WHERE %s ORDER BY id OFFSET %d LIMIT 1", where,
                     pick((int)n));
}

static void random_post(bool outbox)
{
    static const char *langs[] = {"en", "de", NULL};
    th_status st = {0};
    st.visibility = pick(3);
    st.language = langs[pick(3)];
    if (chance(30))
        st.reply_to = random_status(false);
    if (chance(25))
        st.mentions[0] = acc[pick(NACC)];
    th_post(e, acc[pick(NACC)], &st, outbox);
}

static void random_delete(void)
{
    int64_t id = random_status(true);
    if (id)
        th_delete(e, id, true);
}

static void wait_idle(void)
{
    if (!th_wait_idle(e, 30000)) {
        svc_dump_log(&e->fanout);
        fail_msg("fan-out did not finish");
    }
}

/* the expected feeds, as SQL functions over the tables and the phase-2 snapshots */
static const char model_sql[] =
    "CREATE FUNCTION model_reply_ok(u bigint, s statuses, p2 boolean) RETURNS boolean AS $$"
    "  SELECT s.in_reply_to_account_id IS NULL OR s.in_reply_to_account_id IN (u, s.account_id)"
    "   OR CASE WHEN p2 THEN EXISTS (SELECT 1 FROM follows_p2 f WHERE f.account_id = u"
    "            AND f.target_account_id = s.in_reply_to_account_id)"
    "      ELSE EXISTS (SELECT 1 FROM follows f WHERE f.account_id = u"
    "            AND f.target_account_id = s.in_reply_to_account_id) END"
    "$$ LANGUAGE sql STABLE;"
    /* Mastodon's filter_from_home? minus the exclusive-list rule, for receiver u */
    "CREATE FUNCTION model_home_ok(u bigint, s statuses, p2 boolean) RETURNS boolean AS $$"
    "  SELECT s.account_id = u OR ("
    "   NOT (s.reply AND (s.in_reply_to_id IS NULL OR s.in_reply_to_account_id IS NULL))"
    "   AND NOT EXISTS (SELECT 1 FROM follows f WHERE f.account_id = u"
    "        AND f.target_account_id = s.account_id AND cardinality(f.languages) > 0"
    "        AND s.language IS NOT NULL AND NOT s.language = ANY (f.languages))"
    "   AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.account_id = u AND (b.target_account_id ="
    "        s.account_id OR b.target_account_id IN (SELECT m.account_id FROM mentions m"
    "        WHERE m.status_id = s.id AND NOT m.silent)))"
    "   AND NOT EXISTS (SELECT 1 FROM mutes b WHERE b.account_id = u AND (b.target_account_id ="
    "        s.account_id OR b.target_account_id IN (SELECT m.account_id FROM mentions m"
    "        WHERE m.status_id = s.id AND NOT m.silent)))"
    "   AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.account_id = s.account_id"
    "        AND b.target_account_id = u)"
    "   AND model_reply_ok(u, s, p2))"
    "$$ LANGUAGE sql STABLE;"
    "CREATE FUNCTION model_home(u bigint, p2max bigint) RETURNS SETOF bigint AS $$"
    "  SELECT s.id FROM statuses s WHERE s.deleted_at IS NULL AND ("
    "   s.account_id = u OR ("
    "    s.visibility IN (0, 1, 2)"
    "    AND EXISTS (SELECT 1 FROM follows f WHERE f.account_id = u"
    "         AND f.target_account_id = s.account_id)"
    "    AND NOT EXISTS (SELECT 1 FROM lists l JOIN list_accounts la ON la.list_id = l.id"
    "         WHERE l.account_id = u AND l.exclusive AND la.account_id = s.account_id)"
    "    AND model_home_ok(u, s, s.id <= p2max AND EXISTS (SELECT 1 FROM follows_p2 f"
    "         WHERE f.account_id = u AND f.target_account_id = s.account_id))))"
    "$$ LANGUAGE sql STABLE;"
    "CREATE FUNCTION model_list(lid bigint, p2max bigint) RETURNS SETOF bigint AS $$"
    "  SELECT s.id FROM lists l JOIN list_accounts la ON la.list_id = l.id"
    "  JOIN statuses s ON s.account_id = la.account_id"
    "  CROSS JOIN LATERAL (SELECT s.id <= p2max AND EXISTS (SELECT 1 FROM list_accounts_p2 q"
    "       WHERE q.list_id = l.id AND q.account_id = s.account_id) AS p2) ph"
    "  WHERE l.id = lid AND s.deleted_at IS NULL AND s.visibility IN (0, 1, 2)"
    "   AND (NOT (s.reply OR s.in_reply_to_id IS NOT NULL)"
    "        OR s.in_reply_to_account_id IS NOT DISTINCT FROM s.account_id"
    "        OR s.in_reply_to_account_id = l.account_id OR l.replies_policy = 1"
    "        OR (l.replies_policy = 0 AND CASE WHEN ph.p2 THEN EXISTS (SELECT 1 FROM"
    "             list_accounts_p2 q WHERE q.list_id = l.id"
    "             AND q.account_id = s.in_reply_to_account_id)"
    "           ELSE EXISTS (SELECT 1 FROM list_accounts q WHERE q.list_id = l.id"
    "             AND q.account_id = s.in_reply_to_account_id) END))"
    "   AND model_home_ok(l.account_id, s, ph.p2)"
    "$$ LANGUAGE sql STABLE;";

static int cmp_desc(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* compare a feed with the model; returns the number of differences (printed) */
static int compare(int type, int64_t id, int64_t p2max)
{
    int64_t got[1024], want[1024];
    size_t ng = th_feed(e, type, id, got, 1024);
    PGresult *r;
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT * FROM model_%s(%lld, %lld) ORDER BY 1 DESC",
             type == CACHE_FEED_LIST ? "list" : "home", (long long)id, (long long)p2max);
    r = PQexec(e->pg, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    size_t nw = 0;
    for (int i = 0; i < PQntuples(r) && nw < 1024; i++)
        want[nw++] = strtoll(PQgetvalue(r, i, 0), NULL, 10);
    PQclear(r);
    qsort(got, ng, sizeof(int64_t), cmp_desc);
    int diffs = 0;
    size_t i = 0, j = 0;
    while (i < ng || j < nw) {
        if (j >= nw || (i < ng && got[i] > want[j])) {
            fprintf(stderr, "%s %lld: unexpected status %lld\n",
                    type == CACHE_FEED_LIST ? "list" : "home", (long long)id, (long long)got[i]);
            i++;
            diffs++;
        } else if (i >= ng || got[i] < want[j]) {
            fprintf(stderr, "%s %lld: missing status %lld\n",
                    type == CACHE_FEED_LIST ? "list" : "home", (long long)id, (long long)want[j]);
            j++;
            diffs++;
        } else {
            i++;
            j++;
        }
    }
    return diffs;
}

static void test_reference_model(void **state)
{
    char err[256];
    /* phase 1: accounts, graph, lists, first statuses, feeds */
    for (int i = 0; i < NACC; i++) {
        char name[16];
        snprintf(name, sizeof(name), "m%d", i);
        acc[i] = th_account(e, name, i < NLOCAL, i < NACTIVE);
    }
    for (int i = 0; i < NLOCAL; i++) {
        for (int k = 0; k < 7; k++) {
            int64_t t = acc[pick(NACC)];
            if (t == acc[i] || follows(acc[i], t))
                continue;
            th_follow(e, acc[i], t, true, chance(20) ? "{en}" : NULL);
        }
    }
    for (int k = 0; k < 6; k++) {
        int64_t a = acc[pick(NLOCAL)], b = acc[pick(NACC)];
        if (a != b)
            th_exec(e,
                    "INSERT INTO blocks (account_id, target_account_id, created_at, updated_at)"
                    " VALUES (%lld, %lld, now(), now()) ON CONFLICT DO NOTHING",
                    (long long)a, (long long)b);
        a = acc[pick(NLOCAL)];
        b = acc[pick(NACC)];
        if (a != b)
            th_exec(e,
                    "INSERT INTO mutes (account_id, target_account_id, created_at, updated_at)"
                    " VALUES (%lld, %lld, now(), now()) ON CONFLICT DO NOTHING",
                    (long long)a, (long long)b);
    }
    for (int l = 0; l < NLISTS; l++) {
        int64_t owner = acc[pick(NLOCAL)];
        lists[l] = th_list(e, owner, pick(3), l == 0);
        th_exec(e,
                "INSERT INTO list_accounts (list_id, account_id, follow_id)"
                " SELECT %lld, target_account_id, id FROM follows WHERE account_id = %lld"
                " ORDER BY id LIMIT %d",
                (long long)lists[l], (long long)owner, 1 + pick(3));
    }
    for (int i = 0; i < NACC; i++)
        th_post(e, acc[i], NULL, false);
    for (int k = 0; k < 40; k++)
        random_post(false);
    for (int i = 0; i < NACTIVE; i++)
        th_build_feed(e, CACHE_FEED_HOME, acc[i]);
    for (int l = 0; l < NLISTS; l++)
        if (th_scalar(e,
                      "SELECT count(*) FROM lists l JOIN users u ON u.account_id = l.account_id"
                      " WHERE l.id = %lld AND u.current_sign_in_at > timezone('UTC', now())"
                      " - interval '1 day'",
                      (long long)lists[l]))
            th_build_feed(e, CACHE_FEED_LIST, lists[l]);
    th_fanout_start(e, "batch_size = 4\n");

    /* phase 2: posts, then deletes */
    for (int k = 0; k < 120; k++)
        random_post(true);
    wait_idle();
    for (int k = 0; k < 15; k++)
        random_delete();
    wait_idle();
    th_exec(e, "CREATE TABLE follows_p2 AS SELECT * FROM follows;"
               "CREATE TABLE list_accounts_p2 AS SELECT * FROM list_accounts");
    PGresult *mr = PQexec(e->pg, model_sql);
    if (PQresultStatus(mr) != PGRES_COMMAND_OK)
        fail_msg("model SQL: %s", PQerrorMessage(e->pg));
    PQclear(mr);
    int64_t p2max = th_scalar(e, "SELECT max(id) FROM statuses");

    /* phase 3: unfollows, blocks, mutes */
    for (int k = 0; k < 8; k++) {
        int64_t a = acc[pick(NLOCAL)];
        int64_t t = th_scalar(e,
                              "SELECT target_account_id FROM follows WHERE account_id = %lld"
                              " ORDER BY id LIMIT 1",
                              (long long)a);
        if (!t)
            continue;
        th_exec(e, "BEGIN");
        th_exec(e, "DELETE FROM follows WHERE account_id = %lld AND target_account_id = %lld",
                (long long)a, (long long)t);
        assert_int_equal(fanout_outbox_relation(e->pg, FANOUT_JOB_UNFOLLOW, a, t, err, sizeof(err)),
                         0);
        th_exec(e, "COMMIT");
    }
    for (int k = 0; k < 4; k++) {
        int64_t a = acc[pick(NLOCAL)], b = acc[pick(NACC)];
        if (a == b || blocked_either(a, b))
            continue;
        th_exec(e, "BEGIN");
        th_exec(e,
                "DELETE FROM follows WHERE (account_id = %lld AND target_account_id = %lld)"
                " OR (account_id = %lld AND target_account_id = %lld)",
                (long long)a, (long long)b, (long long)b, (long long)a);
        th_block(e, a, b);
        assert_int_equal(fanout_outbox_relation(e->pg, FANOUT_JOB_BLOCK, a, b, err, sizeof(err)),
                         0);
        th_exec(e, "COMMIT");
    }
    for (int k = 0; k < 4; k++) {
        int64_t a = acc[pick(NLOCAL)], b = acc[pick(NACC)];
        if (a == b || th_scalar(e,
                                "SELECT count(*) FROM mutes WHERE account_id = %lld AND"
                                " target_account_id = %lld",
                                (long long)a, (long long)b))
            continue;
        th_exec(e, "BEGIN");
        th_mute(e, a, b);
        assert_int_equal(fanout_outbox_relation(e->pg, FANOUT_JOB_MUTE, a, b, err, sizeof(err)), 0);
        th_exec(e, "COMMIT");
    }
    wait_idle();

    /* phase 4: new follows merge */
    int merged = 0;
    for (int k = 0; k < 30 && merged < 8; k++) {
        int64_t a = acc[pick(NLOCAL)], b = acc[pick(NACC)];
        if (a == b || follows(a, b) || blocked_either(a, b) ||
            th_scalar(e,
                      "SELECT count(*) FROM follows_p2 WHERE account_id = %lld AND"
                      " target_account_id = %lld",
                      (long long)a, (long long)b))
            continue;
        th_exec(e, "BEGIN");
        th_follow(e, a, b, true, NULL);
        assert_int_equal(fanout_outbox_relation(e->pg, FANOUT_JOB_FOLLOW, a, b, err, sizeof(err)),
                         0);
        th_exec(e, "COMMIT");
        merged++;
    }
    assert_true(merged >= 4);
    wait_idle();

    /* phase 5: life goes on with the final graph */
    for (int k = 0; k < 40; k++)
        random_post(true);
    wait_idle();
    for (int k = 0; k < 5; k++)
        random_delete();
    wait_idle();

    /* every feed against the model */
    int diffs = 0, checked = 0, absent_lists = 0;
    for (int i = 0; i < NLOCAL; i++) {
        int st = cache_feed_state(e->c, CACHE_FEED_HOME, acc[i]);
        if (i >= NACTIVE) {
            /* inactive users get no fan-out, and no half-built feed */
            assert_int_equal(st, CACHE_FEED_ABSENT);
            continue;
        }
        assert_int_equal(st, CACHE_FEED_READY);
        diffs += compare(CACHE_FEED_HOME, acc[i], p2max);
        checked++;
    }
    for (int l = 0; l < NLISTS; l++) {
        int st = cache_feed_state(e->c, CACHE_FEED_LIST, lists[l]);
        int64_t cut = p2max;
        if (st == CACHE_FEED_ABSENT) {
            /* an inactive owner's list, or one an unfollow emptied: a read rebuilds it, from
             * the final tables only */
            int64_t tmp[1024];
            th_read_feed(e, CACHE_FEED_LIST, lists[l], tmp, 1024);
            absent_lists++;
            cut = 0;
        }
        diffs += compare(CACHE_FEED_LIST, lists[l], cut);
        checked++;
    }
    int64_t total = th_scalar(e, "SELECT count(*) FROM statuses");
    fprintf(stderr, "model: %d feeds checked (%d lists rebuilt on read), %lld statuses\n", checked,
            absent_lists, (long long)total);
    assert_int_equal(diffs, 0);
    assert_true(checked == NACTIVE + NLISTS);
}

static int setup(void **state)
{
    th_setup(e, "model", true, 0);
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
        cmocka_unit_test(test_reference_model),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
