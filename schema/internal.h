/*
 * schema internals shared by migrate.c, seed.c, copy.c, prng.c and the unit tests: the
 * deterministic PRNG and Zipf sampler, the migration list builder and the COPY writer.
 */
#ifndef TUSK_SCHEMA_INTERNAL_H
#define TUSK_SCHEMA_INTERNAL_H

#include "schema/schema.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- migrations_data.c (generated at build time from schema/migrations/ *.sql) ---- */
typedef struct schema_embedded_file {
    const char *file; /* "0001_mastodon_core.sql" */
    const char *text;
} schema_embedded_file;
extern const schema_embedded_file schema_embedded_migrations[];
extern const size_t schema_embedded_migrations_count;

/* ---- migrate.c ---- */
/* turn files into migrations sorted by version: names must be NNNN_word.sql with a unique
 * positive version; out must hold n entries. 0 or -1 with err filled. */
int schema_migration_list(const schema_embedded_file *files, size_t n, schema_migration *out,
                          char *err, size_t errlen);
/* free the names of a list built by schema_migration_list */
void schema_migration_list_free(schema_migration *list, size_t n);

/* ---- prng.c: splitmix64 seeding + xoshiro256**, identical output on every platform ---- */
typedef struct schema_rng {
    uint64_t s[4];
} schema_rng;
/* one splitmix64 step (also a good 64-bit mixer for deriving sub-seeds) */
uint64_t schema_splitmix64(uint64_t *state);
/* seed a generator; stream separates independent sequences of the same seed */
void schema_rng_seed(schema_rng *rng, uint64_t seed, uint64_t stream);
/* next 64 random bits */
uint64_t schema_rng_next(schema_rng *rng);
/* uniform in [0, n), unbiased (Lemire's multiply-and-reject); n > 0 */
uint64_t schema_rng_below(schema_rng *rng, uint64_t n);
/* uniform double in [0, 1) with 53 random bits */
double schema_rng_double(schema_rng *rng);
/* true with probability p */
bool schema_rng_chance(schema_rng *rng, double p);

/* Zipf-like sampler over ranks 0..n-1 with P(r) proportional to 1/(r+1)^s, by binary search
 * in a cumulative table (n doubles). s = 0 is uniform. */
typedef struct schema_zipf {
    size_t n;
    double s;
    double *cdf; /* cdf[r] = P(rank <= r), cdf[n-1] = 1 */
} schema_zipf;
/* build the table; false on n == 0, s < 0 or out of memory */
bool schema_zipf_init(schema_zipf *z, size_t n, double s);
/* a rank in [0, n): 0 is the most likely */
size_t schema_zipf_sample(const schema_zipf *z, schema_rng *rng);
/* probability of rank r (for tests and for sizing) */
double schema_zipf_prob(const schema_zipf *z, size_t r);
void schema_zipf_free(schema_zipf *z);

/* ---- copy.c: COPY ... FROM STDIN in text format through one big buffer ---- */
typedef struct schema_copy {
    PGconn *conn;
    const char *table;
    char *buf;
    size_t len, cap;
    uint64_t rows, total;
    double started, last_report;
    bool progress, tty, failed;
    char err[1024];
} schema_copy;
/* start "COPY table (columns) FROM STDIN"; total is for the progress line (0: unknown) */
bool schema_copy_begin(schema_copy *c, PGconn *conn, const char *table, const char *columns,
                       uint64_t total, bool progress);
/* field writers: each appends one column and a tab; end_row replaces the last tab */
void schema_copy_i64(schema_copy *c, int64_t v);
void schema_copy_null(schema_copy *c);
void schema_copy_bool(schema_copy *c, bool v);
/* text with COPY escaping of backslash, tab, newline and carriage return */
void schema_copy_str(schema_copy *c, const char *s);
/* printf-formatted text (escaped like schema_copy_str) */
void schema_copy_fmt(schema_copy *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* UTC timestamp "YYYY-MM-DD HH:MM:SS.mmm" from milliseconds since the epoch */
void schema_copy_ts(schema_copy *c, int64_t ms);
/* finish the row; flushes to the server when the buffer is nearly full */
void schema_copy_end_row(schema_copy *c);
/* flush, end the COPY and check the server's answer; false with c->err filled */
bool schema_copy_finish(schema_copy *c);
/* format ms since the epoch as above into out (23 characters used) */
void schema_format_ts(int64_t ms, char out[80]);
/* seconds since an arbitrary start (monotonic) */
double schema_now(void);

/* ---- seed.c, seed_gen.c, seed_load.c: "tusk seed" ---- */
#define SEED_MAX_BIG 32
#define DAY_MS (86400LL * 1000)

/* independent PRNG streams: changing one table's flags leaves the others' data alone */
enum {
    ST_ACCOUNTS = 1,
    ST_FOLLOWS,
    ST_LISTS,
    ST_BLOCKS,
    ST_MUTES,
    ST_STATUSES,
    ST_TOKENS,
    ST_ROWS, /* per-row cosmetic attributes, hashed by (table, index) */
};

/* what "tusk seed" was asked for (flags resolved to numbers) */
typedef struct seed_opts {
    const char *dsn;
    long long accounts, follows, statuses, lists, blocks, mutes; /* -1: default */
    double active_ratio, remote_ratio;
    uint64_t seed;
    long long big[SEED_MAX_BIG];
    int nbig;
    bool tokens, truncate, quiet, check_fks;
    int64_t now_ms;
    const char *domain;
} seed_opts;

enum { ACC_LOCAL = 1, ACC_ACTIVE = 2 };
enum { KIND_ORIGINAL = 0, KIND_REPLY = 1, KIND_REBLOG = 2 };

typedef struct seed_world {
    const seed_opts *o;
    /* accounts: index i; ids ascend with i */
    size_t n, nlocal;
    int64_t *acc_id, *acc_ms;
    uint8_t *acc_flags;
    uint32_t *acc_user; /* users.id, 0 for remote accounts */
    uint32_t *locals;   /* indexes of local accounts */
    uint32_t *statuses_count, *followers_count, *following_count;
    int64_t *last_status_ms; /* 0: none */
    /* follows: edge e has id e+1 */
    size_t nf;
    uint32_t *f_src, *f_dst;
    uint32_t *out_off, *out_edge; /* CSR by follower, each bucket sorted by target */
    /* lists and their members (edge = the owner's follow of the member) */
    size_t nl, nla;
    uint32_t *l_owner;
    uint32_t *la_list, *la_edge;
    /* blocks, mutes: pairs (account, target) */
    size_t nb, nm;
    uint32_t *b_pair, *m_pair; /* 2 per row */
    /* statuses in time order: status i has the i-th smallest id */
    size_t ns, nconv;
    int64_t *st_id, *st_ms, *st_conv;
    uint32_t *st_author;
    int32_t *st_parent;        /* in_reply_to or reblog_of index, -1 */
    int32_t *st_reply_account; /* in_reply_to_account_id index, -1 */
    uint8_t *st_kind, *st_vis, *st_lang;
    uint32_t *st_replies, *st_reblogs;
    size_t nmen, men_cap;
    uint32_t *men; /* pairs (status, account) */
    char password_hash[128];
    double follows_secs; /* COPY plus index rebuild, for the summary */
} seed_world;

/* generate every table in memory from o (seed_gen.c); false with err filled */
bool schema_seed_generate(seed_world *w, char *err, size_t errlen);
/* COPY every table inside the caller's transaction (seed_load.c); false with err filled,
 * the caller then rolls back */
bool schema_seed_load(seed_world *w, PGconn *conn, char *err, size_t errlen);
/* release what schema_seed_generate allocated */
void schema_seed_free(seed_world *w);
/* 64-bit hash of (seed, stream, index): per-row attributes that need no PRNG state */
uint64_t schema_seed_row_hash(const seed_world *w, uint64_t stream, uint64_t idx);
/* time in [lo, hi] from a row hash */
int64_t schema_seed_row_time(const seed_world *w, uint64_t stream, uint64_t idx, int64_t lo,
                             int64_t hi);
/* username of account i: big1.. for the big accounts, then user<i> */
void schema_seed_username(const seed_world *w, size_t i, char *out, size_t cap);
/* host name of remote account i */
void schema_seed_remote_host(const seed_world *w, size_t i, char *out, size_t cap);
/* is account i local? */
bool schema_seed_is_local(const seed_world *w, size_t i);
/* next 43-character URL-safe token of a token stream (Doorkeeper's shape) */
void schema_seed_token(schema_rng *rng, char out[44]);

#endif
