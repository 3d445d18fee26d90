/*
 * Differential test of the classifier against PostgreSQL's real grammar (libpg_query): over
 * the generated and real-world corpus, the classifier must never call a query replica-safe
 * that the parse tree shows to write, lock, call an unsafe function or otherwise need the
 * primary (the must-never property). It also checks the transaction and session flags, and
 * reports how many safe queries it conservatively sends to the primary.
 * TUSK_ORACLE_VERBOSE=1 lists those.
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

#include <cmocka.h>

#define CORPUS_SEED 0x7475736b2d726f75ULL
#define CORPUS_QUERIES 24000

/* Prints a query on one line, shortened. */
static void show(const char *what, const char *sql, const char *why)
{
    char line[240];
    size_t n = 0;
    for (const char *p = sql; *p && n < sizeof(line) - 1; p++)
        line[n++] = (*p == '\n' || *p == '\t') ? ' ' : *p;
    line[n] = '\0';
    print_message("%s: %s%s%s\n", what, line, why ? "  -- " : "", why ? why : "");
}

static void test_corpus_against_parser(void **state)
{
    (void)state;
    router_classifier *cls = router_classifier_new(CORPUS_EXTRA_UNSAFE);
    assert_non_null(cls);
    oracle_init(CORPUS_EXTRA_UNSAFE);
    bool verbose = getenv("TUSK_ORACLE_VERBOSE") != NULL;

    corpus c = {0};
    corpus_add_real_world(&c);
    corpus_generate(&c, CORPUS_SEED, CORPUS_QUERIES);

    size_t parsed = 0, statements = 0, oracle_safe = 0, classifier_safe = 0, conservative = 0;
    size_t violations = 0, mismatches = 0, overpins = 0, uncertain = 0;
    for (size_t i = 0; i < c.n; i++) {
        const char *sql = c.items[i];
        oracle_result o;
        router_class r;
        oracle_judge(sql, &o);
        router_classify(cls, sql, strlen(sql), &r);
        if (!o.parsed)
            continue;
        parsed++;
        statements += (size_t)o.statements;
        oracle_safe += o.safe;
        classifier_safe += r.replica_safe;
        uncertain += r.uncertain;
        if (r.replica_safe && !o.safe) {
            if (violations++ < 20)
                show("MUST-NEVER: replica-safe but", sql, o.why);
        }
        if (o.safe && !r.replica_safe) {
            conservative++;
            if (verbose)
                show("conservative", sql, NULL);
        }
        const char *bad = NULL;
        if (!r.uncertain && r.statements != o.statements)
            bad = "statement count";
        else if (r.txn_begin != o.txn_begin)
            bad = "txn_begin";
        else if (r.txn_end != o.txn_end)
            bad = "txn_end";
        else if (o.pins && !r.pins_session)
            bad = "pins_session missing";
        else if (r.unpins_session != o.unpins)
            bad = "unpins_session";
        else if (!o.tusk && r.sets_session_state != o.sets)
            bad = "sets_session_state";
        else if (o.tusk && o.statements == 1 && r.tusk_set == ROUTER_TUSK_NONE)
            bad = "tusk_set";
        if (bad != NULL && mismatches++ < 20)
            show(bad, sql, NULL);
        if (r.pins_session && !o.pins) {
            overpins++;
            if (verbose)
                show("over-pinned", sql, NULL);
        }
    }
    print_message("corpus: %zu queries, %zu parsed by PostgreSQL's grammar, %zu statements\n", c.n,
                  parsed, statements);
    print_message("oracle: %zu replica-safe; classifier: %zu replica-safe, %zu uncertain\n",
                  oracle_safe, classifier_safe, uncertain);
    print_message("must-never violations: %zu; field mismatches: %zu\n", violations, mismatches);
    print_message("conservative (safe but sent to primary): %zu = %.2f%% of safe queries; "
                  "over-pinned: %zu\n",
                  conservative,
                  oracle_safe ? 100.0 * (double)conservative / (double)oracle_safe : 0.0, overpins);
    size_t total = c.n;
    corpus_free(&c);
    router_classifier_free(cls);
    /* the corpus must stay meaningful: large, mostly valid SQL, with both kinds */
    assert_true(statements >= 20000);
    assert_true(parsed * 100 >= total * 90);
    assert_true(oracle_safe * 100 >= parsed * 30);
    assert_true((parsed - oracle_safe) * 100 >= parsed * 30);
    assert_int_equal(violations, 0);
    assert_int_equal(mismatches, 0);
    /* Conservative routing only costs replica capacity, so it is reported rather than
     * judged; this bound only catches a classifier that stopped telling reads apart. */
    assert_true(conservative * 100 <= oracle_safe * 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus_against_parser),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
