/*
 * cache: interface of the folder (see cache/README.md). Mastodon-compatible home and list
 * feeds in Redis (FeedManager's keys, reblog aggregation, trim and filters), their rebuild
 * from PostgreSQL, the msgpack status cache, the Status/Account JSON entities, and the Redis
 * connections of the three roles (feeds, sharded by xxHash; queue; pubsub).
 *
 * Threading: a `cache` handle holds one connection per Redis role and is used by one thread
 * at a time; every thread (fanout worker, api worker) opens its own.
 */
#ifndef TUSK_CACHE_H
#define TUSK_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

/* Mastodon's FeedManager constants */
#define CACHE_MAX_ITEMS 800           /* entries kept per feed */
#define CACHE_REBLOG_FALLOFF 40       /* a reblog is hidden if the original is this close */
#define CACHE_MERGE_LIMIT 200         /* MAX_ITEMS / 4: statuses merged on follow */
#define CACHE_POPULATE_LIMIT 400      /* MAX_ITEMS / 2: per account when a feed is rebuilt */
#define CACHE_ACTIVE_SECONDS 604800   /* User::ACTIVE_DURATION: 7 days */
#define CACHE_REGENERATION_TTL 86400  /* the regeneration marker's expiry (Mastodon: 1 day) */
#define CACHE_MAX_SHARDS 16           /* redis_feeds instances */
#define CACHE_DEFAULT_STATUS_TTL 3600 /* seconds a cached status lives */

/* ---------------------------------------------------------------- growable buffer */
typedef struct cache_buf {
    char *data; /* always NUL-terminated when len > 0 */
    size_t len;
    size_t cap;
    bool oom; /* an append failed: the content is truncated */
} cache_buf;
/* an empty buffer */
void cache_buf_init(cache_buf *b);
/* release the memory */
void cache_buf_free(cache_buf *b);
/* forget the content, keep the memory */
void cache_buf_reset(cache_buf *b);
/* append len bytes; false (and oom set) when memory runs out */
bool cache_buf_append(cache_buf *b, const void *data, size_t len);
/* append a C string */
bool cache_buf_puts(cache_buf *b, const char *s);
/* append formatted text */
bool cache_buf_printf(cache_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---------------------------------------------------------------- sorted id set */
/* A sorted vector of ids: the per-page "crutches" (who blocks, who follows...) are looked up
 * in these. Insert is amortised O(1) when ids arrive sorted, O(n) otherwise; lookup O(log n). */
typedef struct cache_idset {
    int64_t *ids;
    size_t n;
    size_t cap;
    bool sorted;
} cache_idset;
void cache_idset_init(cache_idset *s);
void cache_idset_free(cache_idset *s);
void cache_idset_clear(cache_idset *s);
/* add an id (duplicates are fine); false when memory runs out */
bool cache_idset_add(cache_idset *s, int64_t id);
/* is id in the set? (sorts lazily, hence not const) */
bool cache_idset_has(cache_idset *s, int64_t id);

/* ---------------------------------------------------------------- config and connections */
/* a parsed redis://[:password@]host[:port][/db] (or unix:///path/to.sock?db=N) */
typedef struct cache_redis_url {
    char host[256];
    int port;
    char unix_path[256]; /* non-empty for unix sockets */
    int db;
    char password[256];
} cache_redis_url;
/* parse a Redis URL; -1 with a message in err when it is malformed */
int cache_redis_url_parse(const char *url, cache_redis_url *out, char *err, size_t errlen);

typedef struct cache_config {
    cache_redis_url feeds[CACHE_MAX_SHARDS];
    int n_feeds;
    cache_redis_url queue;
    bool have_queue;
    cache_redis_url pubsub;
    bool have_pubsub;
    int status_ttl;         /* status_cache_ttl, seconds */
    int connect_timeout_ms; /* redis_connect_timeout_ms */
    int command_timeout_ms; /* redis_timeout_ms */
    char local_domain[256]; /* local_domain: host part of local URLs */
    /* public_url: scheme://host[:port] of local URLs, no trailing slash; "" means
     * https://local_domain (cache_config_url_base) */
    char public_url[300];
} cache_config;
/* defaults: one Redis at 127.0.0.1:6379/0 for every role */
void cache_config_init(cache_config *cfg);
/* take one config key if it is ours (redis_feeds, redis_queue, redis_pubsub, redis_url,
 * status_cache_ttl, redis_connect_timeout_ms, redis_timeout_ms, local_domain, public_url): 1
 * when used,
 * 0 when the key is not a cache key, -1 with err filled on a bad value. redis_feeds takes
 * several URLs separated by commas or spaces; unset roles fall back to redis_url, then to
 * redis_feeds' first instance. */
int cache_config_set(cache_config *cfg, const char *key, const char *value, char *err,
                     size_t errlen);
/* the start of local account and status URLs: public_url, else https://local_domain */
const char *cache_config_url_base(const cache_config *cfg, char *buf, size_t cap);

typedef struct cache cache;
/* a handle with lazily opened connections, for one thread; NULL only when out of memory */
cache *cache_open(const cache_config *cfg);
/* close every connection */
void cache_close(cache *c);
/* the configuration the handle was opened with */
const cache_config *cache_get_config(const cache *c);
/* the feeds shard that holds the keys of this account or list id: XXH3_64bits of the id's
 * decimal text, modulo the shard count. The one place that decides placement. */
int cache_shard_of(int n_shards, int64_t id);
/* number of redis_feeds instances */
int cache_shard_count(const cache *c);
/* a connected context for a feeds shard / the queue / pubsub; NULL when Redis cannot be
 * reached right now (the next call retries, at most every 200 ms) */
redisContext *cache_feeds_ctx(cache *c, int shard);
redisContext *cache_queue_ctx(cache *c);
redisContext *cache_pubsub_ctx(cache *c);
/* report an I/O or protocol error on a context: it is closed and reopened on next use */
void cache_ctx_broken(cache *c, redisContext *ctx);
/* read n pipelined replies from ctx into out (each freed by the caller); -1 on I/O error
 * (replies read so far are freed, the context is marked broken) */
int cache_read_replies(cache *c, redisContext *ctx, size_t n, redisReply **out);

/* ---------------------------------------------------------------- feeds */
enum cache_feed_type { CACHE_FEED_HOME = 0, CACHE_FEED_LIST = 1 };

/* "feed:home:<id>" / "feed:list:<id>"; returns the length */
int cache_feed_key(char *buf, size_t cap, int type, int64_t id);
/* the regeneration marker: "account:<id>:regeneration" (Mastodon's) or
 * "list:<id>:regeneration" (tusk's, for list feeds) */
int cache_regeneration_key(char *buf, size_t cap, int type, int64_t id);

/* flags for the add calls */
#define CACHE_ADD_IF_EXISTS 1 /* skip feeds that do not exist and are not being regenerated */
#define CACHE_ADD_NO_TRIM 2   /* do not trim after each insert */
#define CACHE_ADD_TRIM_END 4  /* trim once after the whole batch (add_statuses) */

/* results of add/remove per feed or per status */
#define CACHE_FEED_ADDED 1    /* the entry is new in the feed (publish it) */
#define CACHE_FEED_SKIPPED 0  /* already there, aggregated under another reblog, or absent */
#define CACHE_FEED_MISSING -1 /* the feed does not exist (IF_EXISTS) */

/* one status to many feeds of one type: Mastodon's add_to_feed then trim for each feed. One
 * EVALSHA per shard and chunk of feeds, pipelined. results[i] for feed_ids[i]. Returns 0,
 * -1 when Redis failed (results undefined; the caller retries the whole page). */
int cache_feed_add_many(cache *c, int type, const int64_t *feed_ids, size_t n, int64_t status_id,
                        int64_t reblog_of_id, int flags, int *results);
/* many statuses (ids[i] with reblog_of_ids[i], 0 when not a reblog) into one feed, in the
 * given order; results may be NULL */
int cache_feed_add_statuses(cache *c, int type, int64_t feed_id, const int64_t *ids,
                            const int64_t *reblog_of_ids, size_t n, int flags, int *results);
/* Mastodon's remove_from_feed for one status in many feeds; results[i] 1 when removed */
int cache_feed_remove_many(cache *c, int type, const int64_t *feed_ids, size_t n, int64_t status_id,
                           int64_t reblog_of_id, int *results);
/* remove_from_feed for many statuses of one feed; results may be NULL */
int cache_feed_remove_statuses(cache *c, int type, int64_t feed_id, const int64_t *ids,
                               const int64_t *reblog_of_ids, size_t n, int *results);
/* Mastodon's trim: ZREMRANGEBYRANK 0 -(MAX_ITEMS+1), then drop reblog tracking older than
 * the REBLOG_FALLOFF'th entry */
int cache_feed_trim(cache *c, int type, int64_t feed_id);
/* Mastodon's clean_feeds!: delete the feeds and all their reblog tracking keys */
int cache_feed_clean(cache *c, int type, const int64_t *feed_ids, size_t n);
/* every member of a feed, oldest first, into *ids (malloc'd); -1 on Redis error */
int cache_feed_members(cache *c, int type, int64_t feed_id, int64_t **ids, size_t *n);
/* a page of a feed, newest first, as Mastodon's HomeFeed#get: ids strictly below max_id (0 =
 * none) and above since_id, or the ones just above min_id when min_id != 0. Bounds are
 * applied to the exact member ids (scores are doubles and lose precision above 2^53). *n is
 * the count written (<= limit). */
int cache_feed_range(cache *c, int type, int64_t feed_id, int64_t max_id, int64_t since_id,
                     int64_t min_id, size_t limit, int64_t *out, size_t *n);

enum cache_feed_state {
    CACHE_FEED_READY = 0,        /* the feed exists and no rebuild runs */
    CACHE_FEED_REGENERATING = 1, /* the marker is set: answer 206 Mastodon-Async-Refresh */
    CACHE_FEED_ABSENT = 2        /* neither: the feed must be rebuilt before it is read */
};
/* where a feed stands (one pipelined EXISTS pair); -1 on Redis error */
int cache_feed_state(cache *c, int type, int64_t feed_id);
/* is this feed being rebuilt? (the api's 206 check); -1 on Redis error */
int cache_feed_regenerating(cache *c, int type, int64_t feed_id);
/* take the regeneration marker (Mastodon 4.4's AsyncRefresh hash, status "running", EX ttl;
 * a plain string from older versions counts as running too): 1 when this caller must
 * rebuild, 0 when another one already does, -1 on Redis error */
int cache_regeneration_claim(cache *c, int type, int64_t feed_id, int ttl_seconds);
/* the rebuild is done: status "finished", kept an hour for clients polling the refresh */
int cache_regeneration_release(cache *c, int type, int64_t feed_id);
/* drop the marker: the rebuild will not happen (the next request claims again) */
int cache_regeneration_abort(cache *c, int type, int64_t feed_id);

/* ---------------------------------------------------------------- filters */
/* the status facts the filters look at (a subset of cache_status) */
typedef struct cache_filter_status {
    int64_t id;
    int64_t account_id;
    bool reply;                     /* statuses.reply */
    int64_t in_reply_to_id;         /* 0 = NULL */
    int64_t in_reply_to_account_id; /* 0 = NULL */
    int64_t reblog_of_id;           /* 0 = not a reblog */
    int64_t reblog_account_id;      /* author of the reblogged status; 0 when it is missing */
    const char *language;           /* NULL or "" = none */
} cache_filter_status;

/* what the receiver's relationships say, loaded per page of receivers or per batch of
 * statuses (Mastodon's "crutches") */
typedef struct cache_filter_facts {
    bool author_in_exclusive_list; /* the author is in one of the receiver's exclusive lists */
    const char *languages;         /* receiver's follows.languages for the author, comma-separated;
                                      NULL or "" = every language */
    bool blocking; /* receiver blocks the author, a mentioned account, the reblogged author or
                      an account mentioned in the reblogged status */
    bool muting;   /* receiver mutes one of those */
    bool blocked_by_author;        /* the author blocks the receiver */
    bool follows_reply_target;     /* receiver follows in_reply_to_account_id */
    bool hides_reblogs;            /* receiver follows the author with show_reblogs = false */
    bool blocked_by_reblog_author; /* the reblogged status' author blocks the receiver */
} cache_filter_facts;

/* why a status stays out of a feed; CACHE_FILTER_NONE means deliver. In the order the home
 * filter checks them (Mastodon's filter_from_home?). */
enum cache_filter_reason {
    CACHE_FILTER_NONE = 0,
    CACHE_FILTER_ORPHAN_REPLY,      /* reply whose in_reply_to ids are NULL */
    CACHE_FILTER_EXCLUSIVE_LIST,    /* author in an exclusive list of the receiver (home) */
    CACHE_FILTER_LANGUAGE,          /* follows.languages excludes the status' language */
    CACHE_FILTER_MISSING_REBLOG,    /* reblog of a status that no longer exists */
    CACHE_FILTER_BLOCKING,          /* receiver blocks someone involved */
    CACHE_FILTER_MUTING,            /* receiver mutes someone involved */
    CACHE_FILTER_BLOCKED_BY,        /* the author blocks the receiver */
    CACHE_FILTER_REPLY,             /* reply to someone the receiver does not follow */
    CACHE_FILTER_HIDDEN_REBLOG,     /* follow with show_reblogs = false */
    CACHE_FILTER_REBLOG_BLOCKED_BY, /* reblogged author blocks the receiver */
    CACHE_FILTER_LIST_REPLY         /* list replies_policy keeps this reply out */
};
/* name of a reason, for logs and tests */
const char *cache_filter_reason_name(int reason);
/* Mastodon's filter_from_home? for one receiver; list_timeline = true for the pass a list
 * makes with its owner as receiver (skips the exclusive-list rule) */
int cache_filter_home(const cache_filter_status *s, int64_t receiver_id,
                      const cache_filter_facts *f, bool list_timeline);

enum cache_replies_policy {
    CACHE_REPLIES_LIST = 0,
    CACHE_REPLIES_FOLLOWED = 1,
    CACHE_REPLIES_NONE = 2
};
/* Mastodon's filter_from_list?: reply_target_in_list says whether in_reply_to_account_id is a
 * member of the list */
int cache_filter_list(const cache_filter_status *s, int64_t list_owner_id, int replies_policy,
                      bool reply_target_in_list);
/* does a comma-separated follows.languages list allow this language? */
bool cache_language_allowed(const char *languages, const char *language);

/* ---------------------------------------------------------------- statuses */
typedef struct cache_account {
    int64_t id;
    char *username;
    char *domain; /* NULL = local */
    char *display_name;
    char *note;
    char *url; /* NULL: derived from local_domain */
    char *uri;
    char *avatar; /* remote URL or NULL (the default picture) */
    char *header;
    char *fields_json; /* a JSON array, "[]" when none */
    bool locked;
    bool bot;
    bool group;
    bool discoverable;
    int64_t created_at_ms;
    int64_t last_status_at_ms; /* 0 = never */
    int64_t statuses_count;
    int64_t followers_count;
    int64_t following_count;
} cache_account;

typedef struct cache_mention {
    int64_t account_id;
    char *username;
    char *domain; /* NULL = local */
    char *url;    /* NULL: derived */
} cache_mention;

enum cache_visibility {
    CACHE_VIS_PUBLIC = 0,
    CACHE_VIS_UNLISTED = 1,
    CACHE_VIS_PRIVATE = 2,
    CACHE_VIS_DIRECT = 3,
    CACHE_VIS_LIMITED = 4
};

typedef struct cache_status {
    int64_t id;
    int64_t account_id;
    int64_t created_at_ms;
    int64_t edited_at_ms; /* 0 = never edited */
    int64_t in_reply_to_id;
    int64_t in_reply_to_account_id;
    int64_t reblog_of_id;
    int64_t reblog_account_id;
    int visibility;
    bool sensitive;
    bool reply;
    bool local;
    char *text; /* plain text for local statuses, HTML for remote ones */
    char *spoiler_text;
    char *language; /* NULL = none */
    char *uri;
    char *url;
    int64_t replies_count;
    int64_t reblogs_count;
    int64_t favourites_count;
    cache_account account;
    size_t n_mentions;
    cache_mention *mentions;
    struct cache_status *reblog; /* the reblogged status, filled by cache_status_fetch */
} cache_status;

/* the filter's view of a status */
void cache_status_filter_view(const cache_status *s, cache_filter_status *out);
/* free a status (and its reblog) */
void cache_status_free(cache_status *s);
/* msgpack encoding of a status (without its reblog), as stored under tusk:status:<id> */
bool cache_status_encode(const cache_status *s, cache_buf *out);
/* decode what cache_status_encode wrote; NULL on malformed or foreign data */
cache_status *cache_status_decode(const char *data, size_t len);
/* "tusk:status:<id>" */
int cache_status_key(char *buf, size_t cap, int64_t id);
/* load statuses through the cache: one MGET per shard, misses from PostgreSQL in one query
 * and written back with SETEX; reblogged statuses the same way. out[i] is NULL when ids[i]
 * does not exist (or is deleted). Redis being down only costs misses. -1 with err on a
 * PostgreSQL error. */
int cache_status_fetch(cache *c, PGconn *pg, const int64_t *ids, size_t n, cache_status **out,
                       char *err, size_t errlen);
/* load statuses straight from PostgreSQL (no Redis); out as above */
int cache_status_load_pg(PGconn *pg, const int64_t *ids, size_t n, cache_status **out, char *err,
                         size_t errlen);
/* drop cached copies (after a delete or an edit) */
int cache_status_invalidate(cache *c, const int64_t *ids, size_t n);

/* ---------------------------------------------------------------- JSON entities */
/* per-viewer flags of the Status entity; pass NULL to leave them out */
typedef struct cache_viewer_flags {
    bool favourited;
    bool reblogged;
    bool muted;
    bool bookmarked;
    bool pinned;
} cache_viewer_flags;
/* append a JSON string literal (quotes included); invalid UTF-8 becomes U+FFFD */
bool cache_json_string(cache_buf *out, const char *s);
/* "2019-12-08T03:48:33.901Z" */
void cache_format_time(int64_t ms, char out[32]);
/* Mastodon's REST Status entity (ids as strings); the reblog is nested when s->reblog is set */
bool cache_render_status(cache_buf *out, const cache_status *s, const cache_config *cfg,
                         const cache_viewer_flags *viewer);
/* Mastodon's REST Account entity */
bool cache_render_account(cache_buf *out, const cache_account *a, const cache_config *cfg);
/* the HTML Mastodon shows for a local plain-text status: escaped, <p> per paragraph, <br />
 * per line break */
bool cache_render_plain_content(cache_buf *out, const char *text);

/* ---------------------------------------------------------------- streaming */
/* PUBLISH payload to "<prefix><id>" for every id whose "subscribed:<prefix><id>" key exists:
 * one MGET of the subscribed: keys, then one pipelined PUBLISH round, on the pubsub connection.
 * prefix is "timeline:" or "timeline:list:". Returns the number published, -1 on error. */
int cache_publish_subscribed(cache *c, const char *prefix, const int64_t *ids, size_t n,
                             const char *payload, size_t len);
/* {"event":"update","payload":<status JSON>} */
bool cache_event_update(cache_buf *out, const char *status_json, size_t len);
/* {"event":"delete","payload":"<id>"} */
bool cache_event_delete(cache_buf *out, int64_t status_id);

/* ---------------------------------------------------------------- rebuilding from PostgreSQL */
/* Before reading PostgreSQL for a job, state the LSN floor if the connection goes through a
 * tusk proxy (or mode says so): "SET tusk.min_lsn = 'X/Y'". mode: 0 auto (only when the
 * server reports tusk.commit_lsn), 1 always, -1 never. 0 on success or nothing to do. */
int cache_pg_min_lsn(PGconn *pg, const char *lsn, int mode, char *err, size_t errlen);

/* Mastodon's populate_home / populate_list: rebuild a feed from PostgreSQL (own statuses then
 * each followed account's recent ones, up to CACHE_POPULATE_LIMIT per account, filtered),
 * inserting oldest first, then trim. Does not touch the marker. Returns the number of entries
 * added or -1 (err filled). */
int cache_feed_populate(cache *c, PGconn *pg, int type, int64_t feed_id, char *err, size_t errlen);
/* merge_into_home / merge_into_list: up to CACHE_MERGE_LIMIT recent statuses of from_account,
 * filtered, into an existing feed (a missing feed is left for regeneration) */
int cache_feed_merge(cache *c, PGconn *pg, int type, int64_t feed_id, int64_t from_account_id,
                     char *err, size_t errlen);
/* unmerge_from_home / unmerge_from_list: remove every status of from_account in the feed */
int cache_feed_unmerge(cache *c, PGconn *pg, int type, int64_t feed_id, int64_t from_account_id,
                       char *err, size_t errlen);
/* clear_from_home / clear_from_list: remove statuses from, reblogging or mentioning target,
 * publishing a delete event for each (block and mute) */
int cache_feed_clear_account(cache *c, PGconn *pg, int type, int64_t feed_id,
                             int64_t target_account_id, char *err, size_t errlen);

#endif
