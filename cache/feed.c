/*
 * Home and list feeds in Redis, kept exactly as Mastodon's FeedManager keeps them so a
 * Mastodon web process can read them: feed:<type>:<id> is a ZSET whose member and score are
 * the status id (the reblog's own id for a reblog); feed:<type>:<id>:reblogs tracks, for
 * each reblogged status in the newest REBLOG_FALLOFF entries, the reblog shown for it, and
 * feed:<type>:<id>:reblogs:<reblog_of_id> holds the extra reblogs hidden behind it.
 *
 * add_to_feed, remove_from_feed and trim are Lua scripts, so one status in one feed is one
 * atomic step and a page of a fan-out is one EVALSHA per shard (the script loops over the
 * page's feeds): Redis runs the conditionals next to the data instead of the client paying a
 * round trip per ZREVRANK/ZSCORE. Scripts touch derived keys (the reblog sets) that are not
 * in KEYS, which is fine on standalone Redis; with sharding every key of a feed lives on the
 * shard of the feed's id.
 *
 * Differences from Mastodon, all to make at-least-once job delivery safe:
 *  - adding a reblog that is already in the feed is a no-op (Mastodon would file it as an
 *    "extra" reblog of itself), so a replayed job changes nothing and publishes nothing;
 *  - removing a hidden extra reblog takes it out of the extra set (Mastodon leaves it there
 *    and could later resurrect a deleted reblog);
 *  - with CACHE_ADD_IF_EXISTS a feed that does not exist and is not being regenerated is
 *    left alone: a missing feed is rebuilt from PostgreSQL when it is next read, while a
 *    partial one (say, after Redis lost its data) would never be repaired.
 */
#include "cache/internal.h"
#include "common/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCRIPT_CHUNK 500 /* feeds (or statuses) per EVALSHA: bounds the time Redis is busy */
#define KEY_CAP 48

/* ------------------------------------------------------------------ Lua */

/* shared by the add scripts: ARGV[1] max items, ARGV[2] falloff, ARGV[3] flags */
#define LUA_PRELUDE                                                                                \
    "local max_items = tonumber(ARGV[1])\n"                                                        \
    "local falloff = tonumber(ARGV[2])\n"                                                          \
    "local flags = tonumber(ARGV[3])\n"                                                            \
    "local if_exists = flags % 2 == 1\n"                                                           \
    "local no_trim = math.floor(flags / 2) % 2 == 1\n"

/* Mastodon's trim. The caller passes the feed's size and whether reblog tracking exists, so
 * the common case (short feed, no reblogs) costs no extra call. */
#define LUA_TRIM                                                                                   \
    "local function trim(feed, card, tracked)\n"                                                   \
    "  if card > max_items then\n"                                                                 \
    "    redis.call('ZREMRANGEBYRANK', feed, 0, -(max_items + 1))\n"                               \
    "  end\n"                                                                                      \
    "  if not tracked then return end\n"                                                           \
    "  local rkey = feed .. ':reblogs'\n"                                                          \
    "  local f = redis.call('ZREVRANGE', feed, falloff, falloff, 'WITHSCORES')\n"                  \
    "  if #f == 0 then return end\n"                                                               \
    "  local old = redis.call('ZRANGEBYSCORE', rkey, 0, f[2])\n"                                   \
    "  for _, rid in ipairs(old) do\n"                                                             \
    "    redis.call('ZREM', rkey, rid)\n"                                                          \
    "    redis.call('DEL', rkey .. ':' .. rid)\n"                                                  \
    "  end\n"                                                                                      \
    "end\n"

/* Is a regeneration marker held? Mastodon 4.4's AsyncRefresh hash while its status is
 * "running" (a "finished" one stays an hour for GET /api/v1_alpha/async_refreshes/:id), or the
 * plain string older tusk and Mastodon versions set. */
#define LUA_RUNNING                                                                                \
    "local function running(m)\n"                                                                  \
    "  local t = redis.call('TYPE', m).ok\n"                                                       \
    "  if t == 'string' then return true end\n"                                                    \
    "  return t == 'hash' and redis.call('HGET', m, 'status') == 'running'\n"                      \
    "end\n"

/* Mastodon's add_to_feed (+ trim when added); returns 1 added, 0 not, -1 feed missing. An
 * original status into a feed without reblog tracking costs three calls: ZCARD, EXISTS and
 * ZADD (measured about 3 us per feed inside one EVALSHA). */
#define LUA_ADD                                                                                    \
    LUA_RUNNING                                                                                    \
    "local function add(feed, marker, id, rid)\n"                                                  \
    "  local card = redis.call('ZCARD', feed)\n"                                                   \
    "  if card == 0 and if_exists and not running(marker) then return -1 end\n"                    \
    "  local rkey = feed .. ':reblogs'\n"                                                          \
    "  local tracked = redis.call('EXISTS', rkey) == 1\n"                                          \
    "  if rid ~= '0' and rid ~= '' then\n"                                                         \
    "    if card > 0 then\n"                                                                       \
    "      if redis.call('ZSCORE', feed, id) then return 0 end\n"                                  \
    "      local rank = redis.call('ZREVRANK', feed, rid)\n"                                       \
    "      if rank and rank < falloff then return 0 end\n"                                         \
    "    end\n"                                                                                    \
    "    if redis.call('ZADD', rkey, 'NX', id, rid) == 1 then\n"                                   \
    "      redis.call('ZADD', feed, id, id)\n"                                                     \
    "      tracked = true\n"                                                                       \
    "    else\n"                                                                                   \
    "      redis.call('SADD', rkey .. ':' .. rid, id)\n"                                           \
    "      return 0\n"                                                                             \
    "    end\n"                                                                                    \
    "  else\n"                                                                                     \
    "    if tracked and redis.call('ZSCORE', rkey, id) then return 0 end\n"                        \
    "    if redis.call('ZADD', feed, id, id) == 0 then return 0 end\n"                             \
    "  end\n"                                                                                      \
    "  if not no_trim then trim(feed, card + 1, tracked) end\n"                                    \
    "  return 1\n"                                                                                 \
    "end\n"

/* numeric order of two decimal id strings without going through doubles */
#define LUA_LT                                                                                     \
    "local function lt(a, b)\n"                                                                    \
    "  if #a ~= #b then return #a < #b end\n"                                                      \
    "  return a < b\n"                                                                             \
    "end\n"

/* Mastodon's remove_from_feed; returns 1 when the entry left the feed */
#define LUA_REMOVE                                                                                 \
    "local function remove(feed, id, rid)\n"                                                       \
    "  local rkey = feed .. ':reblogs'\n"                                                          \
    "  if rid ~= '0' and rid ~= '' then\n"                                                         \
    "    local set = rkey .. ':' .. rid\n"                                                         \
    "    if not redis.call('ZREVRANK', feed, id) then\n"                                           \
    "      redis.call('SREM', set, id)\n"                                                          \
    "      return 0\n"                                                                             \
    "    end\n"                                                                                    \
    "    redis.call('SREM', set, id)\n"                                                            \
    "    redis.call('ZREM', rkey, rid)\n"                                                          \
    "    local best = nil\n"                                                                       \
    "    for _, m in ipairs(redis.call('SMEMBERS', set)) do\n"                                     \
    "      if best == nil or lt(m, best) then best = m end\n"                                      \
    "    end\n"                                                                                    \
    "    if best then\n"                                                                           \
    "      redis.call('ZADD', feed, best, best)\n"                                                 \
    "      redis.call('ZADD', rkey, best, rid)\n"                                                  \
    "    end\n"                                                                                    \
    "  else\n"                                                                                     \
    "    redis.call('DEL', rkey .. ':' .. id)\n"                                                   \
    "    redis.call('ZREM', rkey, id)\n"                                                           \
    "  end\n"                                                                                      \
    "  return redis.call('ZREM', feed, id)\n"                                                      \
    "end\n"

static const char *const scripts[CACHE_SCRIPT_COUNT] = {
    /* ADD_ONE: KEYS = feed1, marker1, feed2, marker2, ...; ARGV[4] id, ARGV[5] reblog_of */
    LUA_PRELUDE LUA_TRIM LUA_ADD "local out = {}\n"
                                 "for i = 1, #KEYS, 2 do\n"
                                 "  out[#out + 1] = add(KEYS[i], KEYS[i + 1], ARGV[4], ARGV[5])\n"
                                 "end\n"
                                 "return out\n",
    /* ADD_MANY: KEYS = feed, marker; ARGV[4..] = id, reblog_of pairs */
    LUA_PRELUDE LUA_TRIM LUA_ADD "local out = {}\n"
                                 "for i = 4, #ARGV, 2 do\n"
                                 "  out[#out + 1] = add(KEYS[1], KEYS[2], ARGV[i], ARGV[i + 1])\n"
                                 "end\n"
                                 "return out\n",
    /* REMOVE_ONE: KEYS = feeds; ARGV[1] id, ARGV[2] reblog_of */
    LUA_LT LUA_REMOVE "local out = {}\n"
                      "for i = 1, #KEYS do\n"
                      "  out[#out + 1] = remove(KEYS[i], ARGV[1], ARGV[2])\n"
                      "end\n"
                      "return out\n",
    /* REMOVE_MANY: KEYS[1] feed; ARGV = id, reblog_of pairs */
    LUA_LT LUA_REMOVE "local out = {}\n"
                      "for i = 1, #ARGV, 2 do\n"
                      "  out[#out + 1] = remove(KEYS[1], ARGV[i], ARGV[i + 1])\n"
                      "end\n"
                      "return out\n",
    /* TRIM: KEYS[1] feed; ARGV[1] max items, ARGV[2] falloff */
    "local max_items = tonumber(ARGV[1])\n"
    "local falloff = tonumber(ARGV[2])\n" LUA_TRIM "trim(KEYS[1], redis.call('ZCARD', KEYS[1]),\n"
    "     redis.call('EXISTS', KEYS[1] .. ':reblogs') == 1)\n"
    "return 1\n",
};

const char *cache_script_source(int i)
{
    return scripts[i];
}

/* ------------------------------------------------------------------ keys */

int cache_feed_key(char *buf, size_t cap, int type, int64_t id)
{
    return snprintf(buf, cap, "feed:%s:%lld", type == CACHE_FEED_LIST ? "list" : "home",
                    (long long)id);
}

int cache_regeneration_key(char *buf, size_t cap, int type, int64_t id)
{
    return snprintf(buf, cap, "%s:%lld:regeneration", type == CACHE_FEED_LIST ? "list" : "account",
                    (long long)id);
}

/* ------------------------------------------------------------------ script runner */

/* is this reply Redis' NOSCRIPT error? */
static bool is_noscript(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/*
 * Run a per-feed script for n feeds of one type: feeds are grouped by shard, each group is
 * cut into chunks of SCRIPT_CHUNK, every chunk is one EVALSHA appended to its shard's
 * connection, and all replies are read after everything was sent (a pipeline per shard).
 * with_marker adds each feed's regeneration key after its feed key. tail holds the ARGV.
 * results[i] gets the script's integer for feed_ids[i].
 */
static int run_per_feed(cache *c, int script, int type, const int64_t *feed_ids, size_t n,
                        bool with_marker, const char *const *tail, size_t ntail, int *results,
                        bool retried)
{
    if (n == 0)
        return 0;
    int shards = cache_shard_count(c);
    size_t per_feed = with_marker ? 2 : 1;
    size_t *order = malloc(n * sizeof(*order));
    char(*keys)[KEY_CAP] = malloc(n * per_feed * KEY_CAP);
    const char **argv = malloc((3 + SCRIPT_CHUNK * per_feed + ntail) * sizeof(*argv));
    int rc = -1;
    if (!order || !keys || !argv)
        goto out;

    /* order the feeds by shard (a counting sort), remembering where each came from */
    size_t start[CACHE_MAX_SHARDS + 1] = {0};
    int *shard_of = malloc(n * sizeof(int));
    if (!shard_of)
        goto out;
    for (size_t i = 0; i < n; i++) {
        shard_of[i] = cache_shard_of(shards, feed_ids[i]);
        start[shard_of[i] + 1]++;
    }
    for (int s = 0; s < shards; s++)
        start[s + 1] += start[s];
    size_t fill[CACHE_MAX_SHARDS];
    memcpy(fill, start, sizeof(fill));
    for (size_t i = 0; i < n; i++)
        order[fill[shard_of[i]]++] = i;
    free(shard_of);

    size_t chunks_sent[CACHE_MAX_SHARDS] = {0};
    redisContext *ctxs[CACHE_MAX_SHARDS] = {0};
    char numkeys[16];
    for (int s = 0; s < shards; s++) {
        if (start[s] == start[s + 1])
            continue;
        ctxs[s] = cache_feeds_ctx(c, s);
        if (!ctxs[s])
            goto out_unread;
        for (size_t off = start[s]; off < start[s + 1]; off += SCRIPT_CHUNK) {
            size_t cnt = start[s + 1] - off;
            if (cnt > SCRIPT_CHUNK)
                cnt = SCRIPT_CHUNK;
            size_t argc = 0;
            argv[argc++] = "EVALSHA";
            argv[argc++] = cache_script_sha(c, script);
            snprintf(numkeys, sizeof(numkeys), "%zu", cnt * per_feed);
            argv[argc++] = numkeys;
            for (size_t k = 0; k < cnt; k++) {
                size_t idx = order[off + k];
                char *fk = keys[idx * per_feed];
                cache_feed_key(fk, KEY_CAP, type, feed_ids[idx]);
                argv[argc++] = fk;
                if (with_marker) {
                    char *mk = keys[idx * per_feed + 1];
                    cache_regeneration_key(mk, KEY_CAP, type, feed_ids[idx]);
                    argv[argc++] = mk;
                }
            }
            for (size_t t = 0; t < ntail; t++)
                argv[argc++] = tail[t];
            if (redisAppendCommandArgv(ctxs[s], (int)argc, argv, NULL) != REDIS_OK) {
                cache_ctx_broken(c, ctxs[s]);
                ctxs[s] = NULL;
                goto out_unread;
            }
            chunks_sent[s]++;
        }
    }

    /* read every shard's replies, in the order sent */
    bool noscript = false, failed = false;
    for (int s = 0; s < shards; s++) {
        size_t off = start[s];
        size_t k = 0;
        for (; k < chunks_sent[s] && !failed; k++) {
            redisReply *r = NULL;
            if (cache_read_replies(c, ctxs[s], 1, &r) != 0) {
                ctxs[s] = NULL; /* already closed */
                failed = true;
                break;
            }
            size_t cnt = start[s + 1] - off;
            if (cnt > SCRIPT_CHUNK)
                cnt = SCRIPT_CHUNK;
            if (is_noscript(r)) {
                noscript = true;
            } else if (r->type != REDIS_REPLY_ARRAY || r->elements != cnt) {
                log_warning("feed script: unexpected reply (%s)",
                            r->type == REDIS_REPLY_ERROR ? r->str : "shape");
                failed = true;
            } else {
                for (size_t j = 0; j < cnt; j++)
                    results[order[off + j]] = (int)r->element[j]->integer;
            }
            freeReplyObject(r);
            off += cnt;
        }
        /* replies left unread would desynchronise the connection */
        if (k < chunks_sent[s] && ctxs[s])
            cache_ctx_broken(c, ctxs[s]);
    }
    if (failed)
        goto out;
    if (noscript && !retried) {
        cache_scripts_reload(c);
        rc = run_per_feed(c, script, type, feed_ids, n, with_marker, tail, ntail, results, true);
        goto out;
    }
    rc = noscript ? -1 : 0;
    goto out;

out_unread:
    /* a connection failed while sending: drop the others' pending replies with them */
    for (int s = 0; s < shards; s++)
        if (ctxs[s] && chunks_sent[s])
            cache_ctx_broken(c, ctxs[s]);
out:
    free(order);
    free(keys);
    free(argv);
    return rc;
}

/* run a per-status script on one feed: ARGV = head + (id, reblog_of) pairs, chunked */
static int run_per_status(cache *c, int script, int type, int64_t feed_id, bool with_marker,
                          const char *const *head, size_t nhead, const int64_t *ids,
                          const int64_t *rids, size_t n, int *results, bool retried)
{
    if (n == 0)
        return 0;
    redisContext *ctx = cache_feeds_ctx(c, cache_shard_of(cache_shard_count(c), feed_id));
    if (!ctx)
        return -1;
    char fk[KEY_CAP], mk[KEY_CAP];
    cache_feed_key(fk, sizeof(fk), type, feed_id);
    cache_regeneration_key(mk, sizeof(mk), type, feed_id);
    size_t chunk = n < SCRIPT_CHUNK ? n : SCRIPT_CHUNK;
    const char **argv = malloc((5 + nhead + 2 * chunk) * sizeof(*argv));
    char(*num)[24] = malloc(2 * chunk * 24);
    int rc = -1;
    if (!argv || !num)
        goto out;
    for (size_t off = 0; off < n; off += chunk) {
        size_t cnt = n - off < chunk ? n - off : chunk;
        size_t argc = 0;
        argv[argc++] = "EVALSHA";
        argv[argc++] = cache_script_sha(c, script);
        argv[argc++] = with_marker ? "2" : "1";
        argv[argc++] = fk;
        if (with_marker)
            argv[argc++] = mk;
        for (size_t h = 0; h < nhead; h++)
            argv[argc++] = head[h];
        for (size_t k = 0; k < cnt; k++) {
            cache_id_text(num[2 * k], ids[off + k]);
            cache_id_text(num[2 * k + 1], rids ? rids[off + k] : 0);
            argv[argc++] = num[2 * k];
            argv[argc++] = num[2 * k + 1];
        }
        redisReply *r = redisCommandArgv(ctx, (int)argc, argv, NULL);
        if (!r) {
            cache_ctx_broken(c, ctx);
            goto out;
        }
        if (is_noscript(r) && !retried) {
            freeReplyObject(r);
            cache_scripts_reload(c);
            rc = run_per_status(c, script, type, feed_id, with_marker, head, nhead, ids + off,
                                rids ? rids + off : NULL, n - off, results ? results + off : NULL,
                                true);
            goto out;
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements != cnt) {
            log_warning("feed script: unexpected reply (%s)",
                        r->type == REDIS_REPLY_ERROR ? r->str : "shape");
            freeReplyObject(r);
            goto out;
        }
        if (results)
            for (size_t j = 0; j < cnt; j++)
                results[off + j] = (int)r->element[j]->integer;
        freeReplyObject(r);
    }
    rc = 0;
out:
    free(argv);
    free(num);
    return rc;
}

/* ------------------------------------------------------------------ public operations */

int cache_feed_add_many(cache *c, int type, const int64_t *feed_ids, size_t n, int64_t status_id,
                        int64_t reblog_of_id, int flags, int *results)
{
    char max[16], fall[16], fl[16], id[24], rid[24];
    snprintf(max, sizeof(max), "%d", CACHE_MAX_ITEMS);
    snprintf(fall, sizeof(fall), "%d", CACHE_REBLOG_FALLOFF);
    snprintf(fl, sizeof(fl), "%d", flags & (CACHE_ADD_IF_EXISTS | CACHE_ADD_NO_TRIM));
    cache_id_text(id, status_id);
    cache_id_text(rid, reblog_of_id);
    const char *tail[] = {max, fall, fl, id, rid};
    return run_per_feed(c, CACHE_SCRIPT_ADD_ONE, type, feed_ids, n, true, tail, 5, results, false);
}

int cache_feed_add_statuses(cache *c, int type, int64_t feed_id, const int64_t *ids,
                            const int64_t *reblog_of_ids, size_t n, int flags, int *results)
{
    char max[16], fall[16], fl[16];
    int f = flags & (CACHE_ADD_IF_EXISTS | CACHE_ADD_NO_TRIM);
    if (flags & CACHE_ADD_TRIM_END)
        f |= CACHE_ADD_NO_TRIM;
    snprintf(max, sizeof(max), "%d", CACHE_MAX_ITEMS);
    snprintf(fall, sizeof(fall), "%d", CACHE_REBLOG_FALLOFF);
    snprintf(fl, sizeof(fl), "%d", f);
    const char *head[] = {max, fall, fl};
    if (run_per_status(c, CACHE_SCRIPT_ADD_MANY, type, feed_id, true, head, 3, ids, reblog_of_ids,
                       n, results, false) != 0)
        return -1;
    if (flags & CACHE_ADD_TRIM_END)
        return cache_feed_trim(c, type, feed_id);
    return 0;
}

int cache_feed_remove_many(cache *c, int type, const int64_t *feed_ids, size_t n, int64_t status_id,
                           int64_t reblog_of_id, int *results)
{
    char id[24], rid[24];
    cache_id_text(id, status_id);
    cache_id_text(rid, reblog_of_id);
    const char *tail[] = {id, rid};
    return run_per_feed(c, CACHE_SCRIPT_REMOVE_ONE, type, feed_ids, n, false, tail, 2, results,
                        false);
}

int cache_feed_remove_statuses(cache *c, int type, int64_t feed_id, const int64_t *ids,
                               const int64_t *reblog_of_ids, size_t n, int *results)
{
    return run_per_status(c, CACHE_SCRIPT_REMOVE_MANY, type, feed_id, false, NULL, 0, ids,
                          reblog_of_ids, n, results, false);
}

/* run one command on the feed's shard and hand back the reply (NULL on error) */
static redisReply *feed_command(cache *c, int64_t feed_id, int argc, const char **argv)
{
    redisContext *ctx = cache_feeds_ctx(c, cache_shard_of(cache_shard_count(c), feed_id));
    if (!ctx)
        return NULL;
    redisReply *r = redisCommandArgv(ctx, argc, argv, NULL);
    if (!r) {
        log_warning("redis %s: %s", argv[0], ctx->errstr);
        cache_ctx_broken(c, ctx);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        log_warning("redis %s: %s", argv[0], r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

int cache_feed_trim(cache *c, int type, int64_t feed_id)
{
    char fk[KEY_CAP], max[16], fall[16];
    cache_feed_key(fk, sizeof(fk), type, feed_id);
    snprintf(max, sizeof(max), "%d", CACHE_MAX_ITEMS);
    snprintf(fall, sizeof(fall), "%d", CACHE_REBLOG_FALLOFF);
    for (int attempt = 0; attempt < 2; attempt++) {
        const char *argv[] = {"EVALSHA", cache_script_sha(c, CACHE_SCRIPT_TRIM), "1", fk, max,
                              fall};
        redisContext *ctx = cache_feeds_ctx(c, cache_shard_of(cache_shard_count(c), feed_id));
        if (!ctx)
            return -1;
        redisReply *r = redisCommandArgv(ctx, 6, argv, NULL);
        if (!r) {
            cache_ctx_broken(c, ctx);
            return -1;
        }
        bool retry = is_noscript(r);
        bool ok = r->type != REDIS_REPLY_ERROR;
        freeReplyObject(r);
        if (ok)
            return 0;
        if (!retry)
            return -1;
        cache_scripts_reload(c);
    }
    return -1;
}

int cache_feed_clean(cache *c, int type, const int64_t *feed_ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char fk[KEY_CAP], rk[KEY_CAP + 8];
        cache_feed_key(fk, sizeof(fk), type, feed_ids[i]);
        snprintf(rk, sizeof(rk), "%s:reblogs", fk);
        const char *zr[] = {"ZRANGE", rk, "0", "-1"};
        redisReply *r = feed_command(c, feed_ids[i], 4, zr);
        if (!r)
            return -1;
        size_t nk = 2 + (r->type == REDIS_REPLY_ARRAY ? r->elements : 0);
        const char **argv = malloc((nk + 1) * sizeof(*argv));
        char(*extra)[KEY_CAP + 32] = malloc((nk + 1) * (KEY_CAP + 32));
        if (!argv || !extra) {
            free(argv);
            free(extra);
            freeReplyObject(r);
            return -1;
        }
        size_t argc = 0;
        argv[argc++] = "DEL";
        argv[argc++] = fk;
        argv[argc++] = rk;
        for (size_t j = 0; j + 2 < nk; j++) {
            snprintf(extra[j], KEY_CAP + 32, "%s:%.*s", rk, (int)r->element[j]->len,
                     r->element[j]->str);
            argv[argc++] = extra[j];
        }
        freeReplyObject(r);
        r = feed_command(c, feed_ids[i], (int)argc, argv);
        free(argv);
        free(extra);
        if (!r)
            return -1;
        freeReplyObject(r);
    }
    return 0;
}

int cache_feed_members(cache *c, int type, int64_t feed_id, int64_t **ids, size_t *n)
{
    char fk[KEY_CAP];
    cache_feed_key(fk, sizeof(fk), type, feed_id);
    const char *argv[] = {"ZRANGE", fk, "0", "-1"};
    *ids = NULL;
    *n = 0;
    redisReply *r = feed_command(c, feed_id, 4, argv);
    if (!r)
        return -1;
    if (r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return -1;
    }
    int64_t *out = malloc((r->elements + 1) * sizeof(*out));
    if (!out) {
        freeReplyObject(r);
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < r->elements; i++) {
        int64_t v = cache_parse_id(r->element[i]->str, r->element[i]->len);
        if (v)
            out[k++] = v;
    }
    freeReplyObject(r);
    *ids = out;
    *n = k;
    return 0;
}

/* Scores are doubles: inclusive bounds on the rounded value catch every candidate, and the
 * exact member ids decide. A double near 2^57 covers up to 32 ids, hence the slack. */
int cache_feed_range(cache *c, int type, int64_t feed_id, int64_t max_id, int64_t since_id,
                     int64_t min_id, size_t limit, int64_t *out, size_t *n)
{
    char fk[KEY_CAP], lo[24], hi[24], offs[24], cnts[24];
    cache_feed_key(fk, sizeof(fk), type, feed_id);
    *n = 0;
    if (limit == 0)
        return 0;
    size_t got = 0, offset = 0, ask = limit + 64;
    int64_t lower = min_id ? min_id : since_id;
    for (;;) {
        snprintf(offs, sizeof(offs), "%zu", offset);
        snprintf(cnts, sizeof(cnts), "%zu", ask);
        redisReply *r;
        if (min_id) {
            cache_id_text(lo, min_id);
            if (max_id)
                cache_id_text(hi, max_id);
            const char *argv[] = {"ZRANGEBYSCORE", fk,   lo,  max_id ? hi : "+inf",
                                  "LIMIT",         offs, cnts};
            r = feed_command(c, feed_id, 7, argv);
        } else {
            if (max_id)
                cache_id_text(hi, max_id);
            if (since_id)
                cache_id_text(lo, since_id);
            const char *argv[] = {"ZREVRANGEBYSCORE",
                                  fk,
                                  max_id ? hi : "+inf",
                                  since_id ? lo : "-inf",
                                  "LIMIT",
                                  offs,
                                  cnts};
            r = feed_command(c, feed_id, 7, argv);
        }
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            if (r)
                freeReplyObject(r);
            return -1;
        }
        for (size_t i = 0; i < r->elements && got < limit; i++) {
            int64_t v = cache_parse_id(r->element[i]->str, r->element[i]->len);
            if (!v || (max_id && v >= max_id) || (lower && v <= lower))
                continue;
            out[got++] = v;
        }
        size_t elements = r->elements;
        freeReplyObject(r);
        if (got >= limit || elements < ask)
            break;
        offset += elements;
    }
    if (min_id) {
        /* collected oldest first: answer newest first like every other page */
        for (size_t i = 0; i < got / 2; i++) {
            int64_t t = out[i];
            out[i] = out[got - 1 - i];
            out[got - 1 - i] = t;
        }
    }
    *n = got;
    return 0;
}

/* 1 when the marker KEYS[1] is held (LUA_RUNNING), else 0 */
#define LUA_MARKER_RUNNING LUA_RUNNING "return running(KEYS[1]) and 1 or 0\n"

int cache_feed_state(cache *c, int type, int64_t feed_id)
{
    redisContext *ctx = cache_feeds_ctx(c, cache_shard_of(cache_shard_count(c), feed_id));
    if (!ctx)
        return -1;
    char fk[KEY_CAP], mk[KEY_CAP];
    cache_feed_key(fk, sizeof(fk), type, feed_id);
    cache_regeneration_key(mk, sizeof(mk), type, feed_id);
    if (redisAppendCommand(ctx, "EXISTS %s", fk) != REDIS_OK ||
        redisAppendCommand(ctx, "EVAL %s 1 %s", LUA_MARKER_RUNNING, mk) != REDIS_OK) {
        cache_ctx_broken(c, ctx);
        return -1;
    }
    redisReply *r[2];
    if (cache_read_replies(c, ctx, 2, r) != 0)
        return -1;
    int st = -1;
    if (r[0]->type == REDIS_REPLY_INTEGER && r[1]->type == REDIS_REPLY_INTEGER) {
        if (r[1]->integer)
            st = CACHE_FEED_REGENERATING;
        else
            st = r[0]->integer ? CACHE_FEED_READY : CACHE_FEED_ABSENT;
    }
    freeReplyObject(r[0]);
    freeReplyObject(r[1]);
    return st;
}

int cache_feed_regenerating(cache *c, int type, int64_t feed_id)
{
    char mk[KEY_CAP];
    cache_regeneration_key(mk, sizeof(mk), type, feed_id);
    const char *argv[] = {"EVAL", LUA_MARKER_RUNNING, "1", mk};
    redisReply *r = feed_command(c, feed_id, 4, argv);
    if (!r)
        return -1;
    int v = r->type == REDIS_REPLY_INTEGER ? (r->integer != 0) : -1;
    freeReplyObject(r);
    return v;
}

int cache_regeneration_claim(cache *c, int type, int64_t feed_id, int ttl_seconds)
{
    char mk[KEY_CAP], ttl[16];
    cache_regeneration_key(mk, sizeof(mk), type, feed_id);
    snprintf(ttl, sizeof(ttl), "%d", ttl_seconds > 0 ? ttl_seconds : CACHE_REGENERATION_TTL);
    static const char claim[] = LUA_RUNNING "if running(KEYS[1]) then return 0 end\n"
                                            "redis.call('DEL', KEYS[1])\n"
                                            "redis.call('HSET', KEYS[1], 'status', 'running')\n"
                                            "redis.call('EXPIRE', KEYS[1], ARGV[1])\n"
                                            "return 1\n";
    const char *argv[] = {"EVAL", claim, "1", mk, ttl};
    redisReply *r = feed_command(c, feed_id, 5, argv);
    if (!r)
        return -1;
    int v = r->type == REDIS_REPLY_INTEGER ? (int)r->integer : -1; /* 0: someone holds it */
    freeReplyObject(r);
    return v;
}

int cache_regeneration_release(cache *c, int type, int64_t feed_id)
{
    char mk[KEY_CAP];
    cache_regeneration_key(mk, sizeof(mk), type, feed_id);
    /* "finished" is kept an hour, as Mastodon's AsyncRefresh, for clients polling the id */
    static const char finish[] = "redis.call('DEL', KEYS[1])\n"
                                 "redis.call('HSET', KEYS[1], 'status', 'finished')\n"
                                 "redis.call('EXPIRE', KEYS[1], 3600)\n"
                                 "return 1\n";
    const char *argv[] = {"EVAL", finish, "1", mk};
    redisReply *r = feed_command(c, feed_id, 4, argv);
    if (!r)
        return -1;
    int v = r->type == REDIS_REPLY_INTEGER ? 0 : -1;
    freeReplyObject(r);
    return v;
}

int cache_regeneration_abort(cache *c, int type, int64_t feed_id)
{
    char mk[KEY_CAP];
    cache_regeneration_key(mk, sizeof(mk), type, feed_id);
    const char *argv[] = {"DEL", mk};
    redisReply *r = feed_command(c, feed_id, 2, argv);
    if (!r)
        return -1;
    freeReplyObject(r);
    return 0;
}

/* size of a feed and its oldest member (exact id), one round trip */
int cache_feed_head(cache *c, int type, int64_t feed_id, int64_t *card, int64_t *oldest)
{
    redisContext *ctx = cache_feeds_ctx(c, cache_shard_of(cache_shard_count(c), feed_id));
    if (!ctx)
        return -1;
    char fk[KEY_CAP];
    cache_feed_key(fk, sizeof(fk), type, feed_id);
    if (redisAppendCommand(ctx, "ZCARD %s", fk) != REDIS_OK ||
        redisAppendCommand(ctx, "ZRANGE %s 0 0", fk) != REDIS_OK) {
        cache_ctx_broken(c, ctx);
        return -1;
    }
    redisReply *r[2];
    if (cache_read_replies(c, ctx, 2, r) != 0)
        return -1;
    int rc = -1;
    if (r[0]->type == REDIS_REPLY_INTEGER && r[1]->type == REDIS_REPLY_ARRAY) {
        *card = r[0]->integer;
        *oldest = r[1]->elements ? cache_parse_id(r[1]->element[0]->str, r[1]->element[0]->len) : 0;
        rc = 0;
    }
    freeReplyObject(r[0]);
    freeReplyObject(r[1]);
    return rc;
}
