/*
 * libFuzzer target for the classifier (built only with -DTUSK_FUZZ=ON and clang; see
 * router/README.md). Each input is classified as is (the first byte also picks the session
 * flags for a second run); the verdict must be self-consistent, and when PostgreSQL's
 * grammar accepts the input, replica-safe must agree with the parse tree. Set
 * TUSK_FUZZ_SEEDS=DIR to have the test corpus written into DIR as seed files first.
 */
#include "router/router.h"
#include "tests/router/corpus.h"
#include "tests/router/oracle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static router_classifier *cls;

/* Builds the classifier; writes seed files when TUSK_FUZZ_SEEDS names a directory. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    cls = router_classifier_new(CORPUS_EXTRA_UNSAFE);
    if (cls == NULL)
        abort();
    oracle_init(CORPUS_EXTRA_UNSAFE);
    const char *dir = getenv("TUSK_FUZZ_SEEDS");
    if (dir != NULL) {
        corpus c = {0};
        corpus_add_real_world(&c);
        corpus_generate(&c, 0x7475736b2d726f75ULL, 2000);
        for (size_t i = 0; i < c.n; i++) {
            char path[4096];
            snprintf(path, sizeof(path), "%s/seed-%05zu.sql", dir, i);
            FILE *f = fopen(path, "w");
            if (f == NULL) {
                perror(path);
                abort();
            }
            fputs(c.items[i], f);
            fclose(f);
        }
        corpus_free(&c);
    }
    return 0;
}

/* Classifies one input and checks the verdict. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    router_class r;
    router_classify(cls, (const char *)data, size, &r);
    if (r.uncertain && r.replica_safe)
        abort();
    if ((r.tusk_set == ROUTER_TUSK_BAD) != (r.tusk_error != NULL))
        abort();
    router_class r2;
    unsigned flags = size ? data[0] & 7u : 0;
    router_classify_ex(cls, (const char *)data, size, flags, &r2);
    if (r2.uncertain && r2.replica_safe)
        abort();
    if (!r.replica_safe || size > 100000)
        return 0;
    char *term = malloc(size + 1);
    if (term == NULL)
        return 0;
    memcpy(term, data, size);
    term[size] = '\0';
    oracle_result o;
    oracle_judge(term, &o);
    free(term);
    if (o.parsed && !o.safe) {
        fprintf(stderr, "must-never: replica-safe, but the parser says: %s\n", o.why);
        abort();
    }
    return 0;
}
