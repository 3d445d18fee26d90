/*
 * Deterministic randomness for "tusk seed": splitmix64 to expand a seed, xoshiro256** for
 * the stream, Lemire's unbiased bounded integers and a Zipf-like rank sampler. Everything is
 * integer or IEEE double arithmetic with a fixed evaluation order, so the same seed gives the
 * same data on every machine (the seed tests compare table checksums across runs).
 */
#include "schema/internal.h"

#include <math.h>
#include <stdlib.h>

/* ==== public ==== */

/* one splitmix64 step: advances *state and returns a well-mixed 64-bit value */
uint64_t schema_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* seed from (seed, stream): distinct streams are independent sequences */
void schema_rng_seed(schema_rng *rng, uint64_t seed, uint64_t stream)
{
    uint64_t st = seed ^ (stream * 0xd1342543de82ef95ULL);
    for (int i = 0; i < 4; i++)
        rng->s[i] = schema_splitmix64(&st);
    /* xoshiro's only bad state is all zeros; splitmix64 cannot produce four zeros in a row
     * in practice, but keep the invariant explicit */
    if ((rng->s[0] | rng->s[1] | rng->s[2] | rng->s[3]) == 0)
        rng->s[0] = 1;
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** next value */
uint64_t schema_rng_next(schema_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* uniform in [0, n) without modulo bias */
uint64_t schema_rng_below(schema_rng *rng, uint64_t n)
{
    if (n <= 1)
        return 0;
    unsigned __int128 m = (unsigned __int128)schema_rng_next(rng) * n;
    uint64_t low = (uint64_t)m;
    if (low < n) {
        uint64_t threshold = (0 - n) % n;
        while (low < threshold) {
            m = (unsigned __int128)schema_rng_next(rng) * n;
            low = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

/* uniform double in [0, 1) */
double schema_rng_double(schema_rng *rng)
{
    return (double)(schema_rng_next(rng) >> 11) * 0x1.0p-53;
}

/* true with probability p (p <= 0 never, p >= 1 always) */
bool schema_rng_chance(schema_rng *rng, double p)
{
    return schema_rng_double(rng) < p;
}

/* build the cumulative table of 1/(r+1)^s */
bool schema_zipf_init(schema_zipf *z, size_t n, double s)
{
    z->n = 0;
    z->s = s;
    z->cdf = NULL;
    if (n == 0 || !(s >= 0))
        return false;
    z->cdf = malloc(n * sizeof(double));
    if (!z->cdf)
        return false;
    double sum = 0;
    for (size_t r = 0; r < n; r++) {
        sum += s == 0 ? 1.0 : pow((double)(r + 1), -s);
        z->cdf[r] = sum;
    }
    for (size_t r = 0; r < n; r++)
        z->cdf[r] /= sum;
    z->cdf[n - 1] = 1.0; /* rounding must not leave a gap above the last rank */
    z->n = n;
    return true;
}

/* first rank whose cumulative probability exceeds a uniform draw */
size_t schema_zipf_sample(const schema_zipf *z, schema_rng *rng)
{
    double u = schema_rng_double(rng);
    size_t lo = 0, hi = z->n - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->cdf[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* P(rank == r) */
double schema_zipf_prob(const schema_zipf *z, size_t r)
{
    if (r >= z->n)
        return 0;
    return r == 0 ? z->cdf[0] : z->cdf[r] - z->cdf[r - 1];
}

/* release the table */
void schema_zipf_free(schema_zipf *z)
{
    free(z->cdf);
    z->cdf = NULL;
    z->n = 0;
}
