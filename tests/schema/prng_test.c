/* Tests for schema/prng.c: splitmix64 and xoshiro256** reproduce their reference streams,
 * bounded draws stay in range and are unbiased enough, the Zipf sampler follows its law. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include "schema/internal.h"

/* the published splitmix64 outputs for state 0: a port that drifts breaks every seed */
static void test_splitmix64_reference(void **state)
{
    uint64_t st = 0;
    assert_true(schema_splitmix64(&st) == 0xe220a8397b1dcdafULL);
    assert_true(schema_splitmix64(&st) == 0x6e789e6aa1b965f4ULL);
    assert_true(schema_splitmix64(&st) == 0x06c45d188009454fULL);
}

/* xoshiro256** reference: state {1,2,3,4} gives 11520, 0, 1509978240, 1215971899390074240 */
static void test_xoshiro_reference(void **state)
{
    schema_rng r = {{1, 2, 3, 4}};
    assert_true(schema_rng_next(&r) == 11520ULL);
    assert_true(schema_rng_next(&r) == 0ULL);
    assert_true(schema_rng_next(&r) == 1509978240ULL);
    assert_true(schema_rng_next(&r) == 1215971899390074240ULL);
}

static void test_streams_deterministic_and_distinct(void **state)
{
    schema_rng a, b, c, d;
    schema_rng_seed(&a, 42, 1);
    schema_rng_seed(&b, 42, 1);
    schema_rng_seed(&c, 42, 2);
    schema_rng_seed(&d, 43, 1);
    int same_c = 0, same_d = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = schema_rng_next(&a);
        assert_true(x == schema_rng_next(&b));
        same_c += x == schema_rng_next(&c);
        same_d += x == schema_rng_next(&d);
    }
    assert_int_equal(same_c, 0);
    assert_int_equal(same_d, 0);
}

static void test_below_range_and_uniformity(void **state)
{
    schema_rng r;
    schema_rng_seed(&r, 7, 0);
    assert_int_equal(schema_rng_below(&r, 1), 0);
    assert_int_equal(schema_rng_below(&r, 0), 0);
    enum { N = 10, DRAWS = 200000 };
    long hist[N] = {0};
    for (int i = 0; i < DRAWS; i++) {
        uint64_t x = schema_rng_below(&r, N);
        assert_true(x < N);
        hist[x]++;
    }
    /* chi-square with 9 degrees of freedom: 27.9 is the 0.1% tail */
    double chi = 0, expect = (double)DRAWS / N;
    for (int i = 0; i < N; i++)
        chi += (hist[i] - expect) * (hist[i] - expect) / expect;
    assert_true(chi < 27.9);
    /* a bound that is not a power of two and near 2^64 still stays in range */
    for (int i = 0; i < 1000; i++)
        assert_true(schema_rng_below(&r, 0xfffffffffffffff1ULL) < 0xfffffffffffffff1ULL);
}

static void test_double_and_chance(void **state)
{
    schema_rng r;
    schema_rng_seed(&r, 9, 0);
    int hits = 0;
    for (int i = 0; i < 100000; i++) {
        double d = schema_rng_double(&r);
        assert_true(d >= 0.0 && d < 1.0);
        hits += schema_rng_chance(&r, 0.25);
    }
    assert_in_range(hits, 24000, 26000);
    assert_false(schema_rng_chance(&r, 0.0));
    assert_true(schema_rng_chance(&r, 1.0));
}

static void test_zipf_rejects_bad_parameters(void **state)
{
    schema_zipf z;
    assert_false(schema_zipf_init(&z, 0, 1.0));
    assert_false(schema_zipf_init(&z, 10, -0.5));
    assert_false(schema_zipf_init(&z, 10, NAN));
}

static void test_zipf_law(void **state)
{
    schema_zipf z;
    assert_true(schema_zipf_init(&z, 1000, 1.0));
    double sum = 0;
    for (size_t r = 0; r < 1000; r++) {
        sum += schema_zipf_prob(&z, r);
        if (r > 0)
            assert_true(schema_zipf_prob(&z, r) < schema_zipf_prob(&z, r - 1));
    }
    assert_true(fabs(sum - 1.0) < 1e-9);
    assert_true(fabs(schema_zipf_prob(&z, 0) / schema_zipf_prob(&z, 1) - 2.0) < 1e-9);
    assert_true(fabs(schema_zipf_prob(&z, 0) / schema_zipf_prob(&z, 9) - 10.0) < 1e-9);
    assert_true(schema_zipf_prob(&z, 1000) == 0.0);

    schema_rng rng;
    schema_rng_seed(&rng, 3, 0);
    enum { DRAWS = 300000 };
    long *hist = calloc(1000, sizeof(long));
    assert_non_null(hist);
    for (int i = 0; i < DRAWS; i++) {
        size_t r = schema_zipf_sample(&z, &rng);
        assert_true(r < 1000);
        hist[r]++;
    }
    /* the head ranks hit their expected frequency within 5% */
    for (size_t r = 0; r < 5; r++) {
        double expect = schema_zipf_prob(&z, r) * DRAWS;
        assert_true(fabs(hist[r] - expect) < 0.05 * expect);
    }
    assert_true(hist[0] > 5 * hist[20]);
    free(hist);
    schema_zipf_free(&z);
}

static void test_zipf_zero_exponent_is_uniform(void **state)
{
    schema_zipf z;
    assert_true(schema_zipf_init(&z, 4, 0.0));
    for (size_t r = 0; r < 4; r++)
        assert_true(fabs(schema_zipf_prob(&z, r) - 0.25) < 1e-12);
    schema_zipf_free(&z);
    /* n = 1 always samples rank 0 */
    assert_true(schema_zipf_init(&z, 1, 1.2));
    schema_rng rng;
    schema_rng_seed(&rng, 1, 1);
    for (int i = 0; i < 100; i++)
        assert_int_equal(schema_zipf_sample(&z, &rng), 0);
    schema_zipf_free(&z);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_splitmix64_reference),
        cmocka_unit_test(test_xoshiro_reference),
        cmocka_unit_test(test_streams_deterministic_and_distinct),
        cmocka_unit_test(test_below_range_and_uniformity),
        cmocka_unit_test(test_double_and_chance),
        cmocka_unit_test(test_zipf_rejects_bad_parameters),
        cmocka_unit_test(test_zipf_law),
        cmocka_unit_test(test_zipf_zero_exponent_is_uniform),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
