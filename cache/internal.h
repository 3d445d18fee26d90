/*
 * cache: declarations shared by the files of this folder only (not part of the interface).
 */
#ifndef TUSK_CACHE_INTERNAL_H
#define TUSK_CACHE_INTERNAL_H

#include "cache/cache.h"

/* the Lua scripts of feed.c, loaded on every feeds connection */
enum {
    CACHE_SCRIPT_ADD_ONE = 0,
    CACHE_SCRIPT_ADD_MANY,
    CACHE_SCRIPT_REMOVE_ONE,
    CACHE_SCRIPT_REMOVE_MANY,
    CACHE_SCRIPT_TRIM,
    CACHE_SCRIPT_COUNT
};
/* the source of script i */
const char *cache_script_source(int i);
/* the SHA1 of script i once a feeds connection loaded it ("" before) */
const char *cache_script_sha(cache *c, int i);
/* reload the scripts on every open feeds connection (after NOSCRIPT) */
void cache_scripts_reload(cache *c);

/* ZCARD and the oldest member of a feed (0 when empty) */
int cache_feed_head(cache *c, int type, int64_t feed_id, int64_t *card, int64_t *oldest);

/* decimal text of an id into buf (at least 21 bytes); returns the length */
int cache_id_text(char *buf, int64_t id);
/* parse a decimal id from a reply string; 0 when it is not one */
int64_t cache_parse_id(const char *s, size_t len);

/* PostgreSQL helpers (pg.c) */
/* "{1,2,3}" array literal of ids */
bool cache_pg_id_array(cache_buf *out, const int64_t *ids, size_t n);
/* integer value of a text column, 0 when NULL */
int64_t cache_pg_int(const PGresult *r, int row, int col);
/* boolean column ('t'), false when NULL */
bool cache_pg_bool(const PGresult *r, int row, int col);
/* copy of a text column, NULL when the value is NULL (or memory ran out) */
char *cache_pg_strdup(const PGresult *r, int row, int col);
/* run a query with text parameters; NULL with err filled unless PGRES_TUPLES_OK or
 * COMMAND_OK */
PGresult *cache_pg_exec(PGconn *pg, const char *sql, int nparams, const char *const *params,
                        char *err, size_t errlen);

/* the statuses a feed rebuild, merge or clear works with: filter facts only */
typedef struct cache_candidate {
    cache_filter_status st;
    char *language;
    int64_t *mentions; /* active mentions of the status, then of the reblogged status */
    size_t n_mentions;
    size_t n_own_mentions; /* the first n_own_mentions belong to the status itself */
    bool reblog_missing;
} cache_candidate;
/* load candidate statuses with a query whose columns are: id, account_id, reply,
 * in_reply_to_id, in_reply_to_account_id, reblog_of_id, reblog_account_id, language,
 * mentions (int8[] text), reblog_mentions (int8[] text). Returns the count or -1. */
int cache_candidates_query(PGconn *pg, const char *sql, int nparams, const char *const *params,
                           cache_candidate **out, char *err, size_t errlen);
void cache_candidates_free(cache_candidate *c, size_t n);
/* decide, for one receiver, which candidates pass the home filter (keep[i]); one query for all
 * the relationships involved. -1 on error. */
int cache_filter_candidates(PGconn *pg, int64_t receiver_id, bool list_timeline,
                            cache_candidate *cands, size_t n, bool *keep, char *err, size_t errlen);
/* parse a PostgreSQL int8[] text value ("{1,2}") into ids (malloc'd); count or -1 */
int cache_parse_pg_int_array(const char *text, int64_t **out);

#endif
