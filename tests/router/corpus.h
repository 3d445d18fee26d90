/*
 * SQL corpus for the classifier's tests and benchmark: a grammar-based generator with a fixed
 * seed, plus hand-written real-world queries (Mastodon/ActiveRecord, pgbench, drivers).
 */
#ifndef TUSK_TESTS_ROUTER_CORPUS_H
#define TUSK_TESTS_ROUTER_CORPUS_H

#include <stddef.h>
#include <stdint.h>

typedef struct corpus {
    char **items;
    size_t n, cap;
} corpus;

/* The unsafe_functions list the tests configure (exercises exact, schema and prefix forms). */
#define CORPUS_EXTRA_UNSAFE "my_writer, audit.log_*, \"Bump_Counter\""

/* Appends n generated queries (each one to three statements), deterministic for a seed. */
void corpus_generate(corpus *c, uint64_t seed, size_t n);

/* Appends the hand-written real-world queries. */
void corpus_add_real_world(corpus *c);

/* Appends one query (copied). */
void corpus_add(corpus *c, const char *sql);

/* Frees every item. */
void corpus_free(corpus *c);

/* Small deterministic PRNG (xorshift64*), shared with the fuzz test. */
typedef struct corpus_rng {
    uint64_t s;
} corpus_rng;
uint64_t corpus_rand(corpus_rng *r);

#endif
