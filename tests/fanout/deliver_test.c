/* Tests for fanout/deliver.c and the job handlers, end to end: statuses and relationship
 * changes written with their outbox rows, "tusk fanout" running, then the feeds and the
 * streaming messages checked. One follower per home filter rule; lists with each
 * replies_policy; delete; follow/unfollow/block/mute. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fanout/fanout.h"
#include "tests/cache/harness.h"

static th_env env;
static th_env *e = &env;

/* the cast */
static int64_t author, plain, inactive, blocker, muter, blocked, lang_de, excl, ment_muter,
    c_follower, c_acc, m_acc, no_reblogs, mention_target, stranger;
static int64_t excl_list, list_list, list_none, list_followed;
/* posts */
static int64_t c_status, p_plain, p_de, p_reply_c, p_reply_other, p_mention_m, p_reblog, p_direct,
    p_self_reply;

static void wait_idle(void)
{
    if (!th_wait_idle(e, 20000)) {
        svc_dump_log(&e->fanout);
        fail_msg("fan-out did not finish");
    }
}

/* every follower posts once and has its feed built, as active users have */
static int64_t member(const char *name, bool active)
{
    int64_t id = th_account(e, name, true, active);
    th_post(e, id, NULL, false);
    th_build_feed(e, CACHE_FEED_HOME, id);
    return id;
}

static redisContext *subscriber(const char *channel)
{
    redisContext *s = redisConnect("127.0.0.1", e->redis_port);
    redisReply *r =
        redisCommand(s, "%s %s", strchr(channel, '*') ? "PSUBSCRIBE" : "SUBSCRIBE", channel);
    freeReplyObject(r);
    struct timeval tv = {0, 300000};
    redisSetTimeout(s, tv);
    return s;
}

/* messages waiting on a subscriber (reads until a short timeout) */
static int drain(redisContext *s, const char *must_contain)
{
    int n = 0;
    void *reply;
    while (redisGetReply(s, &reply) == REDIS_OK) {
        redisReply *m = reply;
        if (must_contain)
            assert_non_null(strstr(m->element[2]->str, must_contain));
        n++;
        freeReplyObject(m);
    }
    return n;
}

static void subscribe_flag(int64_t account)
{
    redisReply *r =
        redisCommand(e->r, "SET subscribed:timeline:%lld 1 EX 1080", (long long)account);
    freeReplyObject(r);
}

static void test_setup_cast(void **state)
{
    author = member("author", true);
    plain = member("plain", true);
    inactive = member("inactive", false);
    blocker = member("blocker", true);
    muter = member("muter", true);
    blocked = member("blocked", true);
    lang_de = member("lang_de", true);
    excl = member("excl", true);
    ment_muter = member("ment_muter", true);
    c_follower = member("c_follower", true);
    c_acc = member("c_acc", true);
    m_acc = member("m_acc", true);
    no_reblogs = member("no_reblogs", true);
    mention_target = member("mention_target", true);
    stranger = member("stranger", true);
    int64_t followers[] = {plain, inactive,   blocker,    muter, blocked,    lang_de,
                           excl,  ment_muter, c_follower, c_acc, no_reblogs, mention_target};
    for (size_t i = 0; i < sizeof(followers) / sizeof(followers[0]); i++) {
        int64_t f = followers[i];
        th_follow(e, f, author, f != no_reblogs, f == lang_de ? "{de}" : NULL);
    }
    th_follow(e, c_follower, c_acc, true, NULL);
    th_follow(e, plain, c_acc, true, NULL);
    th_block(e, blocker, author);
    th_mute(e, muter, author);
    th_block(e, author, blocked);
    th_mute(e, ment_muter, m_acc);
    excl_list = th_list(e, excl, CACHE_REPLIES_LIST, true);
    th_list_add(e, excl_list, author);
    list_list = th_list(e, plain, CACHE_REPLIES_LIST, false);
    list_none = th_list(e, plain, CACHE_REPLIES_NONE, false);
    list_followed = th_list(e, plain, CACHE_REPLIES_FOLLOWED, false);
    th_list_add(e, list_list, author);
    th_list_add(e, list_list, c_acc);
    th_list_add(e, list_none, author);
    th_list_add(e, list_followed, author);
    c_status = th_post(e, c_acc, NULL, false);
    int64_t lists[] = {excl_list, list_list, list_none, list_followed};
    for (int i = 0; i < 4; i++)
        th_build_feed(e, CACHE_FEED_LIST, lists[i]);
    th_fanout_start(e, "batch_size = 3\n"); /* several pages even for this small cast */
}

static void test_home_filter_rules(void **state)
{
    redisContext *sub_plain = subscriber("timeline:*");
    subscribe_flag(plain);
    subscribe_flag(muter); /* subscribed, but nothing may reach it */

    p_plain = th_post(e, author, NULL, true);
    p_de = th_post(e, author, &(th_status){.language = "de"}, true);
    p_reply_c = th_post(e, author, &(th_status){.reply_to = c_status}, true);
    int64_t stranger_status = th_post(e, stranger, NULL, false);
    p_reply_other = th_post(e, author, &(th_status){.reply_to = stranger_status}, true);
    p_mention_m = th_post(e, author, &(th_status){.mentions = {m_acc}}, true);
    p_self_reply = th_post(e, author, &(th_status){.reply_to = p_plain}, true);
    wait_idle();
    struct {
        int64_t who;
        int64_t status;
        bool expect;
    } cases[] = {
        {author, p_plain, true},       /* own feed */
        {author, p_reply_other, true}, /* own statuses are never filtered */
        {plain, p_plain, true},
        {plain, p_de, true},
        {plain, p_reply_c, true},      /* follows the replied-to account */
        {plain, p_reply_other, false}, /* does not follow the replied-to account */
        {plain, p_mention_m, true},
        {plain, p_self_reply, true},
        {inactive, p_plain, false}, /* 7-day rule */
        {blocker, p_plain, false},  /* blocks the author */
        {muter, p_plain, false},    /* mutes the author */
        {blocked, p_plain, false},  /* the author blocks them */
        {lang_de, p_plain, true},   /* no language on the status */
        {lang_de, p_de, true},
        {excl, p_plain, false}, /* exclusive list */
        {ment_muter, p_plain, true},
        {ment_muter, p_mention_m, false},
        {c_follower, p_reply_c, true},
        {c_acc, p_reply_c, true}, /* a reply to me */
        {c_follower, p_reply_other, false},
        {stranger, p_plain, false}, /* not a follower */
        {stranger, p_reply_other, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool got = th_feed_has(e, CACHE_FEED_HOME, cases[i].who, cases[i].status);
        if (got != cases[i].expect)
            fail_msg("case %zu: account %lld status %lld: expected %d", i, (long long)cases[i].who,
                     (long long)cases[i].status, cases[i].expect);
    }
    th_exec(e, "UPDATE follows SET languages = '{en}' WHERE account_id = %lld", (long long)lang_de);
    int64_t p_fr = th_post(e, author, &(th_status){.language = "fr"}, true);
    wait_idle();
    assert_false(th_feed_has(e, CACHE_FEED_HOME, lang_de, p_fr));
    assert_true(th_feed_has(e, CACHE_FEED_HOME, plain, p_fr));
    /* exactly one update per delivered status on plain's channel, none for the muter */
    int plain_msgs = 0, other = 0;
    void *reply;
    while (redisGetReply(sub_plain, &reply) == REDIS_OK) {
        redisReply *m = reply;
        if (m->elements == 4) {
            char chan[64];
            snprintf(chan, sizeof(chan), "timeline:%lld", (long long)plain);
            if (strcmp(m->element[2]->str, chan) == 0) {
                assert_non_null(strstr(m->element[3]->str, "{\"event\":\"update\""));
                plain_msgs++;
            } else if (strncmp(m->element[2]->str, "timeline:public", 15) != 0) {
                other++;
            }
        }
        freeReplyObject(m);
    }
    assert_int_equal(plain_msgs, 6); /* five of the first six, then p_fr */
    assert_int_equal(other, 0);
    redisFree(sub_plain);
}

static void test_lists(void **state)
{
    /* the exclusive list gets what home did not */
    assert_true(th_feed_has(e, CACHE_FEED_LIST, excl_list, p_plain));
    assert_true(th_feed_has(e, CACHE_FEED_LIST, list_list, p_plain));
    assert_true(th_feed_has(e, CACHE_FEED_LIST, list_none, p_plain));
    assert_true(th_feed_has(e, CACHE_FEED_LIST, list_followed, p_plain));
    /* a reply to c: c is a member of list_list, plain follows c */
    assert_true(th_feed_has(e, CACHE_FEED_LIST, list_list, p_reply_c));
    assert_false(th_feed_has(e, CACHE_FEED_LIST, list_none, p_reply_c));
    assert_true(th_feed_has(e, CACHE_FEED_LIST, list_followed, p_reply_c));
    /* a reply to a stranger: only... nobody (followed policy still needs the follow) */
    assert_false(th_feed_has(e, CACHE_FEED_LIST, list_list, p_reply_other));
    assert_false(th_feed_has(e, CACHE_FEED_LIST, list_none, p_reply_other));
    assert_false(th_feed_has(e, CACHE_FEED_LIST, list_followed, p_reply_other));
    /* self-replies pass every policy */
    assert_true(th_feed_has(e, CACHE_FEED_LIST, list_none, p_self_reply));
}

static void test_reblogs_and_direct(void **state)
{
    /* push c_status out of the falloff window of plain's feed first */
    for (int i = 0; i < CACHE_REBLOG_FALLOFF; i++)
        th_post(e, author, NULL, true);
    p_reblog = th_post(e, author, &(th_status){.reblog_of = c_status}, true);
    p_direct =
        th_post(e, author,
                &(th_status){.visibility = CACHE_VIS_DIRECT, .mentions = {mention_target}}, true);
    wait_idle();
    assert_true(th_feed_has(e, CACHE_FEED_HOME, plain, p_reblog));
    assert_false(th_feed_has(e, CACHE_FEED_HOME, no_reblogs, p_reblog)); /* show_reblogs off */
    assert_true(th_feed_has(e, CACHE_FEED_HOME, c_follower, p_reblog));
    assert_true(th_feed_has(e, CACHE_FEED_HOME, mention_target, p_direct));
    assert_false(th_feed_has(e, CACHE_FEED_HOME, plain, p_direct));
    assert_true(th_feed_has(e, CACHE_FEED_HOME, author, p_direct));
    /* the reblogged author blocks c_follower: a new reblog of c's status stays out */
    th_block(e, c_acc, c_follower);
    int64_t c2 = th_post(e, c_acc, NULL, false);
    for (int i = 0; i < CACHE_REBLOG_FALLOFF; i++)
        th_post(e, author, NULL, true);
    int64_t rb2 = th_post(e, author, &(th_status){.reblog_of = c2}, true);
    wait_idle();
    assert_false(th_feed_has(e, CACHE_FEED_HOME, c_follower, rb2));
    assert_true(th_feed_has(e, CACHE_FEED_HOME, plain, rb2));
}

static void test_delete(void **state)
{
    subscribe_flag(plain);
    char chan[64];
    snprintf(chan, sizeof(chan), "timeline:%lld", (long long)plain);
    redisContext *s = subscriber(chan);
    assert_true(th_feed_has(e, CACHE_FEED_HOME, plain, p_plain));
    th_delete(e, p_plain, true);
    wait_idle();
    int64_t everyone[] = {author, plain, lang_de, ment_muter, c_follower, c_acc};
    for (size_t i = 0; i < sizeof(everyone) / sizeof(everyone[0]); i++)
        assert_false(th_feed_has(e, CACHE_FEED_HOME, everyone[i], p_plain));
    assert_false(th_feed_has(e, CACHE_FEED_LIST, list_list, p_plain));
    assert_false(th_feed_has(e, CACHE_FEED_LIST, excl_list, p_plain));
    char key[48];
    cache_status_key(key, sizeof(key), p_plain);
    assert_false(th_exists(e, key));
    assert_int_equal(drain(s, "\"event\":\"delete\""), 1);
    /* deleting a shown reblog */
    th_delete(e, p_reblog, true);
    wait_idle();
    assert_false(th_feed_has(e, CACHE_FEED_HOME, plain, p_reblog));
    redisFree(s);
}

static void test_relationship_jobs(void **state)
{
    char err[256];
    /* stranger follows the author: the author's recent statuses are merged */
    th_exec(e, "BEGIN");
    th_follow(e, stranger, author, true, NULL);
    assert_int_equal(
        fanout_outbox_relation(e->pg, FANOUT_JOB_FOLLOW, stranger, author, err, sizeof(err)), 0);
    th_exec(e, "COMMIT");
    wait_idle();
    assert_true(th_feed_has(e, CACHE_FEED_HOME, stranger, p_de));
    assert_false(th_feed_has(e, CACHE_FEED_HOME, stranger, p_plain));   /* deleted */
    assert_false(th_feed_has(e, CACHE_FEED_HOME, stranger, p_reply_c)); /* not following c */
    /* plain unfollows: gone from home and from plain's lists */
    th_exec(e, "BEGIN");
    th_exec(e, "DELETE FROM follows WHERE account_id = %lld AND target_account_id = %lld",
            (long long)plain, (long long)author);
    assert_int_equal(
        fanout_outbox_relation(e->pg, FANOUT_JOB_UNFOLLOW, plain, author, err, sizeof(err)), 0);
    th_exec(e, "COMMIT");
    wait_idle();
    assert_false(th_feed_has(e, CACHE_FEED_HOME, plain, p_de));
    assert_false(th_feed_has(e, CACHE_FEED_LIST, list_list, p_de));
    assert_true(th_feed_has(e, CACHE_FEED_LIST, list_list, c_status)); /* others stay */
    /* c_follower mutes the author: cleared */
    assert_true(th_feed_has(e, CACHE_FEED_HOME, c_follower, p_de));
    th_exec(e, "BEGIN");
    th_mute(e, c_follower, author);
    assert_int_equal(
        fanout_outbox_relation(e->pg, FANOUT_JOB_MUTE, c_follower, author, err, sizeof(err)), 0);
    th_exec(e, "COMMIT");
    wait_idle();
    assert_false(th_feed_has(e, CACHE_FEED_HOME, c_follower, p_de));
    /* the author blocks lang_de: lang_de's statuses leave the author's feed... */
    int64_t lang_post = th_post(e, lang_de, NULL, true);
    th_follow(e, author, lang_de, true, NULL);
    wait_idle();
    char errb[256];
    assert_true(
        cache_feed_merge(e->c, e->pg, CACHE_FEED_HOME, author, lang_de, errb, sizeof(errb)) >= 0);
    assert_true(th_feed_has(e, CACHE_FEED_HOME, author, lang_post));
    assert_true(th_feed_has(e, CACHE_FEED_HOME, lang_de, p_de));
    th_exec(e, "BEGIN");
    th_exec(e,
            "DELETE FROM follows WHERE (account_id = %lld AND target_account_id = %lld)"
            " OR (account_id = %lld AND target_account_id = %lld)",
            (long long)author, (long long)lang_de, (long long)lang_de, (long long)author);
    th_block(e, author, lang_de);
    assert_int_equal(
        fanout_outbox_relation(e->pg, FANOUT_JOB_BLOCK, author, lang_de, err, sizeof(err)), 0);
    th_exec(e, "COMMIT");
    wait_idle();
    assert_false(th_feed_has(e, CACHE_FEED_HOME, author, lang_post));
    /* ...and the author's statuses leave lang_de's */
    assert_false(th_feed_has(e, CACHE_FEED_HOME, lang_de, p_de));
    /* list membership jobs */
    int64_t post_c = th_post(e, c_acc, NULL, false);
    th_exec(e, "BEGIN");
    th_list_add(e, list_followed, c_acc);
    assert_int_equal(fanout_outbox_list_member(e->pg, FANOUT_JOB_LIST_ADD, list_followed, c_acc,
                                               err, sizeof(err)),
                     0);
    th_exec(e, "COMMIT");
    wait_idle();
    /* the unfollow above emptied this list, and an empty ZSET does not exist in Redis: the
     * merge leaves the absent feed to a rebuild, which a read triggers */
    int64_t got[64];
    size_t n = th_read_feed(e, CACHE_FEED_LIST, list_followed, got, 64);
    assert_int_equal(n, 4); /* c's four statuses, the author's are gone */
    assert_int_equal(got[0], post_c);
    assert_false(th_feed_has(e, CACHE_FEED_LIST, list_followed, p_de));
    th_exec(e, "BEGIN");
    th_exec(e, "DELETE FROM list_accounts WHERE list_id = %lld AND account_id = %lld",
            (long long)list_followed, (long long)c_acc);
    assert_int_equal(fanout_outbox_list_member(e->pg, FANOUT_JOB_LIST_REMOVE, list_followed, c_acc,
                                               err, sizeof(err)),
                     0);
    th_exec(e, "COMMIT");
    wait_idle();
    assert_false(th_feed_has(e, CACHE_FEED_LIST, list_followed, post_c));
}

static void test_rolled_back_write_has_no_job(void **state)
{
    th_exec(e, "BEGIN");
    int64_t ghost = th_scalar(e,
                              "INSERT INTO statuses (account_id, text, created_at, updated_at)"
                              " VALUES (%lld, 'ghost', now(), now()) RETURNING id",
                              (long long)author);
    char err[256];
    assert_int_equal(fanout_outbox_status_created(e->pg, ghost, err, sizeof(err)), 0);
    th_exec(e, "ROLLBACK");
    assert_int_equal(
        th_scalar(e, "SELECT count(*) FROM tusk_outbox WHERE payload->>'status_id' = '%lld'",
                  (long long)ghost),
        0);
    /* a bad kind is refused before touching the database */
    assert_int_equal(
        fanout_outbox_relation(e->pg, FANOUT_JOB_STATUS_CREATED, 1, 2, err, sizeof(err)), -1);
}

static void test_regeneration_job(void **state)
{
    /* a returning user's feed is missing: the api asks, a worker rebuilds */
    char key[64];
    cache_feed_key(key, sizeof(key), CACHE_FEED_HOME, c_acc);
    redisReply *r = redisCommand(e->r, "DEL %s", key);
    freeReplyObject(r);
    assert_int_equal(cache_feed_state(e->c, CACHE_FEED_HOME, c_acc), CACHE_FEED_ABSENT);
    assert_int_equal(fanout_request_regeneration(e->c, CACHE_FEED_HOME, c_acc), 1);
    assert_int_equal(fanout_request_regeneration(e->c, CACHE_FEED_HOME, c_acc), 0);
    wait_idle();
    assert_int_equal(cache_feed_state(e->c, CACHE_FEED_HOME, c_acc), CACHE_FEED_READY);
    assert_true(th_feed_has(e, CACHE_FEED_HOME, c_acc, p_reply_c));
    assert_true(th_feed_has(e, CACHE_FEED_HOME, c_acc, c_status));
}

/* GET path from the fanout's admin endpoint; the whole answer */
static char *http_get(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    char req[128];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\n\r\n", path);
    assert_int_equal(write(fd, req, (size_t)n), n);
    static char buf[16384];
    size_t got = 0;
    ssize_t r;
    while ((r = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
        got += (size_t)r;
    buf[got] = '\0';
    close(fd);
    return buf;
}

static void test_metrics(void **state)
{
    char *m = http_get(e->fanout.port, "/metrics");
    assert_non_null(strstr(m, "HTTP/1.1 200"));
    char *d = strstr(m, "\ntusk_fanout_deliveries_total ");
    assert_non_null(d);
    assert_true(atoll(d + strlen("\ntusk_fanout_deliveries_total ")) > 20);
    assert_non_null(strstr(m, "tusk_fanout_jobs_total{kind=\"status_created\"}"));
    assert_non_null(strstr(http_get(e->fanout.port, "/health"), "\r\n\r\nOK"));
    assert_non_null(strstr(http_get(e->fanout.port, "/nope"), "404"));
    /* nothing went to the dead-letter stream */
    redisReply *r = redisCommand(e->r, "XLEN tusk:queue:dead");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    assert_int_equal(th_fanout_stop(e, SIGTERM), 0);
}

static int setup(void **state)
{
    th_setup(e, "deliver", true, 0);
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
        cmocka_unit_test(test_setup_cast),
        cmocka_unit_test(test_home_filter_rules),
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_reblogs_and_direct),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_relationship_jobs),
        cmocka_unit_test(test_rolled_back_write_has_no_job),
        cmocka_unit_test(test_regeneration_job),
        cmocka_unit_test(test_metrics),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
