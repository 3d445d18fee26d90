/*
 * Deterministic mutation fuzzing of the classifier: corpus queries get byte flips,
 * truncations, deletions, splices and insertions of quotes, comment markers, dollar tags,
 * semicolons and keywords. Each mutant is classified from an exactly-sized buffer (ASan sees
 * any over-read); the verdict must be self-consistent, and whenever PostgreSQL's grammar
 * accepts the mutant, the classifier must not call it replica-safe unless the parse tree
 * agrees (the must-never property). Fixed seed; runs for TUSK_FUZZ_SECONDS (default 12).
 */
#include "router/router.h"
#include "tests/router/corpus.h"
#include "tests/router/oracle.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#define FUZZ_SEED 0x66757a7a2d726f75ULL
#define MAX_MUTANT 8192

static const char *const inserts[] = {
    "'",
    "\"",
    "$$",
    "$a$",
    "/*",
    "*/",
    "--",
    "\n",
    ";",
    "(",
    ")",
    "E'",
    "\\",
    "''",
    "U&\"",
    "U&'",
    " for update",
    " into x",
    " insert into t values (1)",
    " nextval('s')",
    "\r",
    " delete",
    " with x as (delete from t returning *) ",
    "$",
    "e'\\'",
    " /* tusk:replica */ ",
    "\0",
    " uescape '!'",
    " analyze",
    "B'",
    "X'",
    " set ",
    " begin ",
    " read only",
};

static double elapsed_s(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* One random edit of buf[0..*n) in place (capacity MAX_MUTANT). */
static void mutate(corpus_rng *rng, const corpus *c, char *buf, size_t *n)
{
    unsigned op = (unsigned)(corpus_rand(rng) % 7);
    size_t pos = *n ? (size_t)(corpus_rand(rng) % (*n + 1)) : 0;
    switch (op) {
    case 0: /* flip a byte */
        if (*n)
            buf[pos % *n] ^= (char)(1u << (corpus_rand(rng) % 8));
        break;
    case 1: /* truncate */
        *n = pos;
        break;
    case 2: /* delete a range */
        if (pos < *n) {
            size_t k = 1 + (size_t)(corpus_rand(rng) % 8);
            if (pos + k > *n)
                k = *n - pos;
            memmove(buf + pos, buf + pos + k, *n - pos - k);
            *n -= k;
        }
        break;
    case 3: /* random byte */
        if (*n)
            buf[pos % *n] = (char)(corpus_rand(rng) & 0xff);
        break;
    case 4: /* splice the tail of another corpus item */
    {
        const char *other = c->items[corpus_rand(rng) % c->n];
        size_t olen = strlen(other);
        size_t from = olen ? (size_t)(corpus_rand(rng) % olen) : 0;
        size_t k = olen - from;
        if (pos + k > MAX_MUTANT)
            k = MAX_MUTANT - pos;
        memcpy(buf + pos, other + from, k);
        *n = pos + k;
        break;
    }
    default: /* insert a marker */
    {
        size_t which = (size_t)(corpus_rand(rng) % (sizeof(inserts) / sizeof(inserts[0])));
        const char *ins = inserts[which];
        size_t k = ins[0] ? strlen(ins) : 1; /* "\0" inserts one NUL byte */
        if (*n + k > MAX_MUTANT)
            break;
        memmove(buf + pos + k, buf + pos, *n - pos);
        memcpy(buf + pos, ins, k);
        *n += k;
        break;
    }
    }
}

/* Shows a mutant on one line. */
static void show(const char *what, const char *sql, size_t n, const char *why)
{
    char line[300];
    size_t k = 0;
    for (size_t i = 0; i < n && k < sizeof(line) - 5; i++) {
        unsigned char ch = (unsigned char)sql[i];
        if (ch >= 32 && ch < 127) {
            line[k++] = (char)ch;
        } else {
            k += (size_t)snprintf(line + k, sizeof(line) - k, "\\x%02x", ch);
        }
    }
    line[k] = '\0';
    print_message("%s: %s  -- %s\n", what, line, why);
}

static void test_mutants(void **state)
{
    (void)state;
    router_classifier *cls = router_classifier_new(CORPUS_EXTRA_UNSAFE);
    assert_non_null(cls);
    oracle_init(CORPUS_EXTRA_UNSAFE);
    corpus c = {0};
    corpus_add_real_world(&c);
    corpus_generate(&c, FUZZ_SEED, 3000);

    double budget = 12;
    const char *env = getenv("TUSK_FUZZ_SECONDS");
    if (env != NULL && atof(env) > 0)
        budget = atof(env);

    corpus_rng rng = {FUZZ_SEED};
    char *work = malloc(MAX_MUTANT);
    char *term = malloc(MAX_MUTANT + 1);
    assert_non_null(work);
    assert_non_null(term);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t mutants = 0, parsed = 0, safe = 0, violations = 0, inconsistent = 0;
    while (elapsed_s(&t0) < budget) {
        for (int batch = 0; batch < 64; batch++) {
            const char *src = c.items[corpus_rand(&rng) % c.n];
            size_t n = strlen(src);
            if (n > MAX_MUTANT)
                n = MAX_MUTANT;
            memcpy(work, src, n);
            int edits = 1 + (int)(corpus_rand(&rng) % 4);
            for (int e = 0; e < edits; e++)
                mutate(&rng, &c, work, &n);
            mutants++;

            /* exactly n bytes on the heap, no terminator: ASan catches any over-read */
            char *exact = malloc(n ? n : 1);
            assert_non_null(exact);
            memcpy(exact, work, n);
            router_class r, r2;
            router_classify(cls, exact, n, &r);
            router_classify_ex(cls, exact, n,
                               ROUTER_FLAG_SCS_OFF | ROUTER_FLAG_SESSION_READ_ONLY |
                                   ROUTER_FLAG_CLIENT_MB_BACKSLASH,
                               &r2);
            free(exact);

            const char *bad = NULL;
            if (r.uncertain && r.replica_safe)
                bad = "uncertain but replica-safe";
            else if (r.statements < 0)
                bad = "negative statement count";
            else if ((r.tusk_set == ROUTER_TUSK_BAD) != (r.tusk_error != NULL))
                bad = "tusk_error does not match tusk_set";
            else if (r.truncated)
                bad = "truncated below the scan limit";
            else if (r2.uncertain && r2.replica_safe)
                bad = "uncertain but replica-safe (flags)";
            if (bad != NULL) {
                if (inconsistent++ < 10)
                    show("INCONSISTENT", work, n, bad);
                continue;
            }

            memcpy(term, work, n);
            term[n] = '\0'; /* the oracle, like the server, stops at a NUL byte */
            oracle_result o;
            oracle_judge(term, &o);
            if (!o.parsed)
                continue;
            parsed++;
            safe += o.safe;
            if (r.replica_safe && !o.safe && violations++ < 10)
                show("MUST-NEVER: replica-safe but", work, n, o.why);
        }
    }
    print_message("fuzz: %zu mutants in %.1f s, %zu parsed by PostgreSQL's grammar (%zu safe); "
                  "%zu must-never violations, %zu inconsistent verdicts\n",
                  mutants, elapsed_s(&t0), parsed, safe, violations, inconsistent);
    free(work);
    free(term);
    corpus_free(&c);
    router_classifier_free(cls);
    assert_true(mutants >= 1000);
    assert_true(parsed >= 100);
    assert_int_equal(violations, 0);
    assert_int_equal(inconsistent, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mutants),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
