/* Tests for fanout/job.c: stream-entry encoding and decoding of jobs, outbox payloads. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <jansson.h>
#include <string.h>

#include "fanout/fanout.h"

/* encode, then decode from the argv the encoder produced */
static void round_trip(const fanout_job *in, fanout_job *out)
{
    const char *argv[FANOUT_JOB_MAX_FIELDS];
    size_t lens[FANOUT_JOB_MAX_FIELDS];
    char storage[FANOUT_JOB_MAX_FIELDS][32];
    int n = fanout_job_encode(in, argv, lens, storage);
    assert_true(n >= 2 && n % 2 == 0 && n <= FANOUT_JOB_MAX_FIELDS);
    assert_string_equal(argv[0], "kind");
    char err[128];
    if (fanout_job_decode(argv, lens, (size_t)n, out, err, sizeof(err)) != 0)
        fail_msg("decode: %s", err);
}

static void test_round_trip_every_kind(void **state)
{
    for (int k = 1; k < FANOUT_JOB_KIND_COUNT; k++) {
        fanout_job j, d;
        fanout_job_init(&j);
        j.kind = k;
        j.outbox_id = 12;
        j.status_id = 108012345678901234;
        j.account_id = 9223372036854775807LL;
        j.target_account_id = 3;
        j.list_id = 4;
        j.reblog_of_id = k == FANOUT_JOB_STATUS_DELETED ? 5 : 0;
        j.visibility = k == FANOUT_JOB_STATUS_DELETED ? 3 : -1;
        j.feed_type = k == FANOUT_JOB_REGENERATE ? CACHE_FEED_LIST : CACHE_FEED_HOME;
        strcpy(j.lsn, "16/B374D848");
        round_trip(&j, &d);
        assert_int_equal(d.kind, k);
        assert_int_equal(d.outbox_id, 12);
        assert_int_equal(d.status_id, j.status_id);
        assert_int_equal(d.account_id, j.account_id);
        assert_int_equal(d.target_account_id, 3);
        assert_int_equal(d.list_id, 4);
        assert_int_equal(d.reblog_of_id, j.reblog_of_id);
        assert_int_equal(d.visibility, j.visibility);
        assert_int_equal(d.feed_type, j.feed_type);
        assert_string_equal(d.lsn, "16/B374D848");
        assert_string_equal(fanout_job_kind_name(k), fanout_job_kind_name(d.kind));
    }
}

static int decode_strs(const char **strs, size_t n, fanout_job *j)
{
    size_t lens[32];
    for (size_t i = 0; i < n; i++)
        lens[i] = strlen(strs[i]);
    char err[128];
    return fanout_job_decode(strs, lens, n, j, err, sizeof(err));
}

static void test_decode_errors(void **state)
{
    fanout_job j;
    const char *no_kind[] = {"status_id", "1"};
    assert_int_equal(decode_strs(no_kind, 2, &j), -1);
    const char *unknown[] = {"kind", "explode", "status_id", "1"};
    assert_int_equal(decode_strs(unknown, 4, &j), -1);
    const char *missing[] = {"kind", "status_created"};
    assert_int_equal(decode_strs(missing, 2, &j), -1);
    const char *follow_missing[] = {"kind", "follow", "account_id", "1"};
    assert_int_equal(decode_strs(follow_missing, 4, &j), -1);
    const char *bad_int[] = {"kind", "status_created", "status_id", "12x"};
    assert_int_equal(decode_strs(bad_int, 4, &j), -1);
    const char *neg[] = {"kind", "status_created", "status_id", "-5"};
    assert_int_equal(decode_strs(neg, 4, &j), -1);
    const char *overflow[] = {"kind", "status_created", "status_id", "99999999999999999999"};
    assert_int_equal(decode_strs(overflow, 4, &j), -1);
    const char *odd[] = {"kind", "status_created", "status_id"};
    assert_int_equal(decode_strs(odd, 3, &j), -1);
    const char *bad_vis[] = {"kind", "status_deleted", "status_id", "1", "account_id",
                             "2",    "visibility",     "9"};
    assert_int_equal(decode_strs(bad_vis, 8, &j), -1);
    const char *bad_feed[] = {"kind", "regenerate", "account_id", "1", "feed", "tags"};
    assert_int_equal(decode_strs(bad_feed, 6, &j), -1);
    /* unknown fields are ignored, so newer producers do not break older workers */
    const char *extra[] = {"kind", "status_created", "status_id", "7", "future", "x"};
    assert_int_equal(decode_strs(extra, 6, &j), 0);
    assert_int_equal(j.status_id, 7);
    /* a list regeneration needs the list id */
    const char *regen[] = {"kind", "regenerate", "feed", "list", "account_id", "3"};
    assert_int_equal(decode_strs(regen, 6, &j), -1);
}

static void test_queues(void **state)
{
    assert_string_equal(fanout_job_queue(FANOUT_JOB_STATUS_CREATED), "default");
    assert_string_equal(fanout_job_queue(FANOUT_JOB_BLOCK), "default");
    assert_string_equal(fanout_job_queue(FANOUT_JOB_FOLLOW), "pull");
    assert_string_equal(fanout_job_queue(FANOUT_JOB_LIST_REMOVE), "pull");
    char key[64];
    fanout_stream_key(key, sizeof(key), "default");
    assert_string_equal(key, "tusk:queue:default");
    assert_int_equal(fanout_job_kind_from_name("mute", 4), FANOUT_JOB_MUTE);
    assert_int_equal(fanout_job_kind_from_name("mutex", 5), FANOUT_JOB_NONE);
    assert_null(fanout_job_kind_name(0));
    assert_null(fanout_job_kind_name(FANOUT_JOB_KIND_COUNT));
}

static void test_payload_json(void **state)
{
    fanout_job j;
    fanout_job_init(&j);
    j.kind = FANOUT_JOB_STATUS_DELETED;
    j.outbox_id = 99;
    j.status_id = 108012345678901234;
    j.account_id = 2;
    j.visibility = 0;
    cache_buf b;
    cache_buf_init(&b);
    assert_true(fanout_job_payload_json(&j, &b));
    json_error_t err;
    json_t *v = json_loads(b.data, 0, &err);
    assert_non_null(v);
    assert_string_equal(json_string_value(json_object_get(v, "status_id")), "108012345678901234");
    assert_string_equal(json_string_value(json_object_get(v, "account_id")), "2");
    assert_string_equal(json_string_value(json_object_get(v, "visibility")), "0");
    assert_null(json_object_get(v, "kind"));      /* its own column */
    assert_null(json_object_get(v, "outbox_id")); /* the row's id */
    json_decref(v);
    cache_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_kind),
        cmocka_unit_test(test_decode_errors),
        cmocka_unit_test(test_queues),
        cmocka_unit_test(test_payload_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
