/*
 * Classifier benchmark: classifies the test corpus (generated queries plus real-world ones)
 * over and over and reports the cost per query in nanoseconds, the median of several runs,
 * overall and for short reads (the proxy's hot case). Usage: bench_classify [runs]
 * Build without sanitizers for numbers worth quoting (-DTUSK_SANITIZE=OFF, Release).
 */
#include "router/router.h"
#include "tests/router/corpus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CORPUS_SEED 0x7475736b2d726f75ULL

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* CPU time: robust on a shared machine */
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median ns per query over runs passes of reps repetitions of items[0..n). */
static double measure(const router_classifier *c, char **items, const size_t *lens, size_t n,
                      int runs, int reps, size_t *sink)
{
    double *per = calloc((size_t)runs, sizeof(double));
    if (per == NULL)
        return -1;
    for (int r = 0; r < runs; r++) {
        double t0 = now_ns();
        for (int k = 0; k < reps; k++) {
            for (size_t i = 0; i < n; i++) {
                router_class out;
                router_classify(c, items[i], lens[i], &out);
                *sink += out.replica_safe + (size_t)out.statements;
            }
        }
        per[r] = (now_ns() - t0) / ((double)n * reps);
    }
    qsort(per, (size_t)runs, sizeof(double), cmp_double);
    double med = per[runs / 2];
    free(per);
    return med;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 7;
    if (runs < 1)
        runs = 1;
    router_classifier *c = router_classifier_new(CORPUS_EXTRA_UNSAFE);
    if (c == NULL) {
        fprintf(stderr, "bench_classify: cannot build the classifier\n");
        return 1;
    }
    corpus all = {0};
    corpus_add_real_world(&all);
    corpus_generate(&all, CORPUS_SEED, 24000);
    size_t *lens = calloc(all.n, sizeof(size_t));
    char **reads = calloc(all.n, sizeof(char *));
    size_t *rlens = calloc(all.n, sizeof(size_t));
    if (lens == NULL || reads == NULL || rlens == NULL)
        return 1;
    size_t bytes = 0, nreads = 0, rbytes = 0;
    for (size_t i = 0; i < all.n; i++) {
        lens[i] = strlen(all.items[i]);
        bytes += lens[i];
        router_class out;
        router_classify(c, all.items[i], lens[i], &out);
        if (out.replica_safe && out.statements == 1 && lens[i] <= 256) {
            reads[nreads] = all.items[i];
            rlens[nreads++] = lens[i];
            rbytes += lens[i];
        }
    }
    /* pgbench -S, the proxy's steady state in the benchmark */
    char *pgb[] = {"SELECT abalance FROM pgbench_accounts WHERE aid = 48213;"};
    size_t pgbl[] = {strlen(pgb[0])};

    size_t sink = 0;
    double all_ns = measure(c, all.items, lens, all.n, runs, 5, &sink);
    double read_ns = measure(c, reads, rlens, nreads, runs, 10, &sink);
    double pgb_ns = measure(c, pgb, pgbl, 1, runs, 2000000, &sink);
    printf("corpus: %zu queries, %.0f bytes on average\n", all.n, (double)bytes / (double)all.n);
    printf("all queries:          %7.1f ns/query  (%.2f ns/byte)  median of %d runs\n", all_ns,
           all_ns * (double)all.n / (double)bytes, runs);
    printf("short replica reads:  %7.1f ns/query  (%zu queries, %.0f bytes on average)\n", read_ns,
           nreads, nreads ? (double)rbytes / (double)nreads : 0.0);
    printf("pgbench -S select:    %7.1f ns/query  (%zu bytes)\n", pgb_ns, pgbl[0]);
    if (sink == 42)
        printf("\n");
    free(lens);
    free(reads);
    free(rlens);
    corpus_free(&all);
    router_classifier_free(c);
    return 0;
}
