/*
 * Hydration: status ids (from a feed or a query) -> rendered Status entities, without
 * blocking the worker's loop.
 *
 *   1. One MGET of tusk:status:<id> per feeds shard holding some of the ids (cache/'s
 *      msgpack records, which carry the account and mentions).
 *   2. Records of reblogs need their original: one more MGET round for those.
 *   3. Whatever was not in Redis (expired, never cached, Redis down) goes to a bg thread as
 *      one cache_status_fetch call: one PostgreSQL query for the lot (after SET tusk.min_lsn
 *      for the viewer), written back to Redis by cache/ for the next reader.
 *
 * Rendering a status (msgpack decode + JSON) costs more than everything else on the page,
 * and a popular status is rendered for every follower who reads it. So each worker keeps
 * the JSON it rendered, keyed by status id and checked against the XXH3 hash of the record
 * Redis returned (for a reblog, of both records): while the record is unchanged the
 * rendering is reused, and any change in Redis (a new TTL load with fresh counters, an
 * invalidation) misses by itself. Only the per-viewer variant (authenticated requests: the
 * viewer fields are constant, tusk has no favourites or bookmarks) is memoized, and never
 * for direct or limited statuses (they need the mentions checked per viewer).
 *
 * A rendering checked against Redis less than render_fresh_ms ago is used without asking
 * Redis again, unless a status was deleted through this process since (the server's
 * status_gen moved): the MGET of a page's records is ~20 kB from Redis per request, the
 * largest cost of a hot timeline. The price is that a status deleted through another api
 * process may show for that long (about as long as fan-out takes to drop it from the feed);
 * counters embedded in cached records are as old as status_cache_ttl anyway.
 *
 * Cost of a page of 20 in the steady state: no Redis call for hot statuses (otherwise one
 * MGET round trip and 20 hashes of ~1 kB), 20 probes of a set's tags; the renderings are
 * written to the socket from where they are (api_req_finish_hydrated), not copied. Keeping
 * hot renderings fresh costs one ~1 kB record per status per worker per half window, in
 * batched MGETs off the requests' paths (below).
 */
#include "api/internal.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* ==========================================================================================
 * the per-worker render cache: set-associative (RC_WAYS entries per set, least recently
 * used replaced), so two hot statuses whose ids hash alike do not evict each other on every
 * page (direct-mapped, 18% of the benchmark's 13k hot statuses did, each costing a decode
 * and a render per read). A rendering is a refcounted blob so a page in flight keeps the
 * ones it took even if the entry is replaced meanwhile (one thread per cache: plain
 * counters).
 *
 * Refresh ahead: a rendering read when it is older than 1/2 to 3/4 (jittered per entry) of
 * render_fresh_ms is queued, and once per loop iteration (ev_prepare) the queued ids go to
 * Redis (at most RC_FLUSH_MAX, in MGETs of RC_REVAL_BATCH per shard, on a connection of their
 * own), off every request's path; the answer confirms them (or voids those whose record
 * changed or vanished). Hot statuses thus stay fresh and a page needs no second round trip; before
 * this, each status went stale once per second per worker and the page that found it stale
 * waited for an MGET of its own (63% of the benchmark's pages). A rendering older than
 * render_fresh_ms is still never served without asking Redis.
 */
#define RC_WAYS 4
#define RC_QUEUE_MAX 8192 /* ids waiting for a revalidation */
#define RC_FLUSH_MAX 256  /* ids sent per loop iteration */
#define RC_REVAL_BATCH 64 /* ids per MGET: ~64 kB, so Redis interleaves other clients */
#define RC_HASH_MIX 0x9e3779b97f4a7c15ull

typedef struct rc_blob {
    uint32_t refs;
    uint32_t len;
    char data[];
} rc_blob;

static void blob_unref(rc_blob *b)
{
    if (b && --b->refs == 0)
        free(b);
}

typedef struct rc_entry {
    int64_t id;
    int64_t orig_id; /* reblog_of_id (0 for none): its record is part of the check */
    uint64_t hash;   /* of the record(s) rendered: own, or own mixed with the original's */
    uint64_t hash1;  /* of the status's own record */
    double checked;  /* ev_now of the last time Redis confirmed it */
    uint64_t gen;    /* the server's status_gen then */
    uint32_t used;   /* the cache's clock at the last use: LRU within the set */
    bool queued;     /* a revalidation is queued or in flight */
    int visibility;
    int64_t account_id;
    rc_blob *blob;
} rc_entry;

struct api_rcache {
    size_t set_mask;
    uint32_t clock;
    rc_entry *e;   /* (set_mask + 1) * RC_WAYS */
    int64_t *tags; /* the ids of e, 0 when empty: a set's four in one cache line */
    int64_t *queue;
    size_t nqueue;
};

/* the hash a reblog's rendering is checked against: its record's and the original's */
static uint64_t rc_mix(uint64_t hash1, const char *orig_rec, size_t len)
{
    return hash1 ^ (XXH3_64bits(orig_rec, len) * RC_HASH_MIX);
}

api_rcache *api_rcache_new(size_t entries)
{
    size_t sets = 1;
    while (sets * RC_WAYS < entries && sets < ((size_t)1 << 28))
        sets <<= 1;
    api_rcache *rc = calloc(1, sizeof(*rc));
    if (!rc)
        return NULL;
    rc->e = calloc(sets * RC_WAYS, sizeof(rc_entry));
    size_t tag_bytes = (sets * RC_WAYS * sizeof(int64_t) + 63) & ~(size_t)63;
    rc->tags = aligned_alloc(64, tag_bytes);
    rc->queue = malloc(RC_QUEUE_MAX * sizeof(*rc->queue));
    if (rc->tags)
        memset(rc->tags, 0, tag_bytes);
    if (!rc->e || !rc->tags || !rc->queue) {
        free(rc->e);
        free(rc->tags);
        free(rc->queue);
        free(rc);
        return NULL;
    }
    rc->set_mask = sets - 1;
    return rc;
}

void api_rcache_free(api_rcache *rc)
{
    if (!rc)
        return;
    for (size_t i = 0; i < (rc->set_mask + 1) * RC_WAYS; i++)
        blob_unref(rc->e[i].blob);
    free(rc->e);
    free(rc->tags);
    free(rc->queue);
    free(rc);
}

/* index of the first entry of id's set */
static size_t rc_set(const api_rcache *rc, int64_t id)
{
    uint64_t h = (uint64_t)id * RC_HASH_MIX;
    return ((h ^ (h >> 29)) & rc->set_mask) * RC_WAYS;
}

/* the entry holding id's rendering */
static rc_entry *rc_find(api_rcache *rc, int64_t id)
{
    size_t set = rc_set(rc, id);
    for (int i = 0; i < RC_WAYS; i++)
        if (rc->tags[set + i] == id)
            return &rc->e[set + i];
    return NULL;
}

/* the rendering of id if it matches hash (then confirmed as of now) */
static rc_entry *rc_get(api_rcache *rc, int64_t id, uint64_t hash, double now, uint64_t gen)
{
    if (!rc)
        return NULL;
    rc_entry *e = rc_find(rc, id);
    if (!e || e->hash != hash)
        return NULL;
    e->checked = now;
    e->gen = gen;
    e->used = ++rc->clock;
    return e;
}

/* the rendering of id if it was confirmed within fresh seconds and nothing was deleted;
 * queued for a revalidation when older than refresh seconds */
static const rc_entry *rc_fresh(api_rcache *rc, int64_t id, double now, double fresh, uint64_t gen)
{
    if (!rc || fresh <= 0)
        return NULL;
    rc_entry *e = rc_find(rc, id);
    if (!e || e->gen != gen || now - e->checked >= fresh)
        return NULL;
    e->used = ++rc->clock;
    /* due between 1/2 and 3/4 of fresh, a different point per entry and per confirmation:
     * renderings confirmed together (a batch, the first pages after a start) would
     * otherwise come due together and be revalidated in one burst every half window */
    uint64_t h = ((uint64_t)id ^ (uint64_t)(e->checked * 1000.0)) * RC_HASH_MIX;
    double refresh = fresh * (0.5 + 0.25 * (double)(h >> 40) / (double)(1 << 24));
    if (now - e->checked >= refresh && !e->queued && rc->nqueue < RC_QUEUE_MAX) {
        e->queued = true;
        rc->queue[rc->nqueue++] = id;
    }
    return e;
}

static void rc_put(api_rcache *rc, int64_t id, uint64_t hash, uint64_t hash1, int64_t orig_id,
                   const cache_status *s, const char *json, size_t len, double now, uint64_t gen)
{
    if (!rc || len > 1u << 20)
        return;
    size_t base = rc_set(rc, id);
    rc_entry *set = &rc->e[base], *e = NULL;
    for (int i = 0; i < RC_WAYS && !e; i++)
        if (rc->tags[base + i] == id)
            e = &set[i];
    for (int i = 0; i < RC_WAYS && !e; i++)
        if (!rc->tags[base + i])
            e = &set[i];
    if (!e) {
        e = &set[0];
        for (int i = 1; i < RC_WAYS; i++)
            if ((int32_t)(set[i].used - e->used) < 0)
                e = &set[i];
    }
    rc_blob *b = malloc(sizeof(*b) + len);
    if (!b)
        return;
    rc->tags[base + (size_t)(e - set)] = id;
    b->refs = 1;
    b->len = (uint32_t)len;
    memcpy(b->data, json, len);
    blob_unref(e->blob);
    e->blob = b;
    e->id = id;
    e->orig_id = orig_id;
    e->hash = hash;
    e->hash1 = hash1;
    e->checked = now;
    e->gen = gen;
    e->used = ++rc->clock;
    e->queued = false;
    e->account_id = s->account_id;
    e->visibility = s->visibility;
}

/* ------------------------------------------------------------------------------------------
 * refresh ahead
 */
typedef struct reval {
    api_worker *w;
    double sent; /* what a match confirms: the records as of this time or later */
    uint64_t gen;
    size_t n, nkeys;
    int64_t ids[RC_REVAL_BATCH];
    int64_t origs[RC_REVAL_BATCH];
} reval;

/* "tusk:status:<id>" (cache_status_key's format) without printf */
static size_t status_key(char out[40], int64_t id)
{
    memcpy(out, "tusk:status:", 12);
    return 12 + (size_t)api_i64_text(out + 12, id);
}

static void reval_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    reval *rv = privdata;
    api_rcache *rc = rv->w->rcache;
    redisReply *r = reply;
    bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == rv->nkeys;
    size_t k = 0;
    for (size_t i = 0; i < rv->n; i++) {
        const redisReply *r1 = ok ? r->element[k] : NULL, *r2 = NULL;
        k++;
        if (rv->origs[i]) {
            r2 = ok ? r->element[k] : NULL;
            k++;
        }
        rc_entry *e = rc ? rc_find(rc, rv->ids[i]) : NULL;
        if (!e || !e->queued)
            continue; /* replaced meanwhile */
        e->queued = false;
        if (!ok || e->orig_id != rv->origs[i])
            continue; /* Redis failed: the entry ages as it would have */
        bool same = r1->type == REDIS_REPLY_STRING && XXH3_64bits(r1->str, r1->len) == e->hash1;
        if (same && rv->origs[i])
            same = r2->type == REDIS_REPLY_STRING && rc_mix(e->hash1, r2->str, r2->len) == e->hash;
        if (!same) {
            e->checked = -1e300; /* changed or gone: the next read asks Redis and re-renders */
        } else if (rv->gen >= e->gen) {
            e->gen = rv->gen;
            if (rv->sent > e->checked)
                e->checked = rv->sent;
        }
    }
    free(rv);
}

/* send one batch to its shard (when it cannot go, it is freed and its entries unqueued) */
static void reval_send(api_worker *w, reval *rv, int shard)
{
    api_rcache *rc = w->rcache;
    redisAsyncContext *ac = w->reval[shard] ? api_redis_ctx(w->reval[shard]) : NULL;
    api_buf cmd = {0};
    if (ac) {
        const char *argv[1 + 2 * RC_REVAL_BATCH];
        size_t lens[1 + 2 * RC_REVAL_BATCH];
        char(*keys)[40] = malloc(rv->nkeys * sizeof(*keys));
        if (keys) {
            argv[0] = "MGET";
            lens[0] = 4;
            size_t k = 0;
            for (size_t i = 0; i < rv->n; i++) {
                lens[1 + k] = status_key(keys[k], rv->ids[i]);
                argv[1 + k] = keys[k];
                k++;
                if (rv->origs[i]) {
                    lens[1 + k] = status_key(keys[k], rv->origs[i]);
                    argv[1 + k] = keys[k];
                    k++;
                }
            }
            api_buf_resp(&cmd, (int)k + 1, argv, lens);
            free(keys);
            if (!cmd.oom &&
                redisAsyncFormattedCommand(ac, reval_cb, rv, cmd.data, cmd.len) == REDIS_OK) {
                api_buf_free(&cmd);
                return;
            }
        }
    }
    api_buf_free(&cmd);
    for (size_t i = 0; i < rv->n; i++) {
        rc_entry *e = rc_find(rc, rv->ids[i]);
        if (e)
            e->queued = false;
    }
    free(rv);
}

/* once per loop iteration: revalidate the queued renderings, one MGET per shard and batch */
void api_rcache_flush(api_worker *w)
{
    api_rcache *rc = w->rcache;
    if (!rc || rc->nqueue == 0)
        return;
    int nshards = w->nshards > 0 ? w->nshards : 1;
    reval *batch[CACHE_MAX_SHARDS] = {0};
    double now = ev_now(w->loop);
    uint64_t gen = atomic_load(&w->srv->status_gen);
    /* at most RC_FLUSH_MAX per iteration: a burst (say, every rendering voided by a delete
     * and confirmed again at once) is spread over iterations rather than sent in one go,
     * which would keep Redis busy with megabytes of records ahead of the timelines */
    size_t take = rc->nqueue < RC_FLUSH_MAX ? rc->nqueue : RC_FLUSH_MAX;
    for (size_t q = 0; q < take; q++) {
        rc_entry *e = rc_find(rc, rc->queue[q]);
        if (!e || !e->queued)
            continue;
        int sh = cache_shard_of(nshards, e->id);
        if (sh >= CACHE_MAX_SHARDS || (e->orig_id && cache_shard_of(nshards, e->orig_id) != sh)) {
            e->queued = false; /* the normal path checks it when it goes stale */
            continue;
        }
        reval *rv = batch[sh];
        if (!rv) {
            rv = batch[sh] = malloc(sizeof(*rv));
            if (!rv) {
                e->queued = false;
                continue;
            }
            rv->w = w;
            rv->sent = now;
            rv->gen = gen;
            rv->n = rv->nkeys = 0;
        }
        rv->ids[rv->n] = e->id;
        rv->origs[rv->n] = e->orig_id;
        rv->n++;
        rv->nkeys += e->orig_id ? 2 : 1;
        w->st_reval_keys++;
        if (rv->n == RC_REVAL_BATCH) {
            reval_send(w, rv, sh);
            batch[sh] = NULL;
        }
    }
    memmove(rc->queue, rc->queue + take, (rc->nqueue - take) * sizeof(*rc->queue));
    rc->nqueue -= take;
    for (int sh = 0; sh < nshards && sh < CACHE_MAX_SHARDS; sh++)
        if (batch[sh])
            reval_send(w, batch[sh], sh);
}

/* ==========================================================================================
 * rendering
 */

/* Status JSON into out; viewer adds the per-viewer fields, source adds "text" */
bool api_render_status(api_buf *out, const cache_status *s, const api_config *cfg, bool viewer,
                       bool source)
{
    cache_viewer_flags flags = {0};
    cache_buf b;
    cache_buf_init(&b);
    bool ok = cache_render_status(&b, s, cfg ? &cfg->cache : NULL, viewer ? &flags : NULL);
    if (ok && source && b.len > 0 && b.data[b.len - 1] == '}') {
        /* Mastodon's source_requested: the text as typed, next to the rendered content */
        b.len--;
        ok = cache_buf_puts(&b, ",\"text\":") && cache_json_string(&b, s->text ? s->text : "") &&
             cache_buf_puts(&b, "}");
    }
    if (ok)
        api_buf_append(out, b.data, b.len);
    cache_buf_free(&b);
    return ok && !out->oom;
}

/* ==========================================================================================
 * one hydration
 */
enum { SL_PENDING, SL_NEED_ORIG, SL_MISS, SL_DONE, SL_GONE };

typedef struct slot {
    int64_t id;
    int state;
    cache_status *st; /* decoded reblog waiting for its original */
    uint64_t hash;    /* of the level-1 record */
    int64_t account_id;
    int visibility;
    uint32_t off, len; /* in the hydration's own buffer, unless blob */
    rc_blob *blob;     /* a memoized rendering (referenced) */
} slot;

typedef struct hyd hyd;

typedef struct mget {
    hyd *h;
    int level; /* 1: the statuses, 2: reblogged originals */
    size_t k;
    size_t *idx; /* slot of each key */
} mget;

/* what the bg thread returns for one missing status */
typedef struct miss {
    size_t at; /* slot */
    int64_t id;
    bool found;
    int64_t account_id;
    int visibility;
    api_buf json;
} miss;

struct hyd {
    api_req *req;
    api_worker *w;
    unsigned flags;
    int64_t viewer;
    double now;   /* the loop's time when the hydration started */
    uint64_t gen; /* the server's status_gen then */
    api_hydrate_cb cb;
    void *arg;
    size_t n;
    slot *slots;
    mget cmds[CACHE_MAX_SHARDS];
    int ncmds;
    int inflight;
    bool level2_done;
    api_hydrated out;
    /* bg */
    miss *misses;
    size_t nmiss;
    char lsn[32];
    bool bg_failed;
};

static void after_level(hyd *h);

static void hyd_free(hyd *h)
{
    for (size_t i = 0; i < h->n; i++) {
        cache_status_free(h->slots[i].st);
        blob_unref(h->slots[i].blob);
    }
    for (int i = 0; i < h->ncmds; i++)
        free(h->cmds[i].idx);
    for (size_t i = 0; i < h->nmiss; i++)
        api_buf_free(&h->misses[i].json);
    free(h->misses);
    free(h->slots);
    api_buf_free(&h->out.json);
    free(h->out.items);
    free(h);
}

/* hand the result to the caller */
static void finish(hyd *h)
{
    h->out.items = calloc(h->n ? h->n : 1, sizeof(api_hitem));
    if (!h->out.items)
        h->out.failed = true;
    for (size_t i = 0; h->out.items && i < h->n; i++) {
        slot *s = &h->slots[i];
        if (s->state != SL_DONE)
            continue;
        api_hitem *it = &h->out.items[h->out.n++];
        it->id = s->id;
        it->account_id = s->account_id;
        it->visibility = s->visibility;
        it->json = s->blob ? s->blob->data : h->out.json.data + s->off;
        it->len = s->len;
    }
    if (h->out.json.oom)
        h->out.failed = true;
    h->cb(h->req, h->arg, &h->out);
    hyd_free(h);
}

/* may the viewer see this direct/limited status in a timeline? */
static bool direct_visible(const hyd *h, const cache_status *s)
{
    if (!(h->flags & API_HYD_FILTER_DIRECT) ||
        (s->visibility != CACHE_VIS_DIRECT && s->visibility != CACHE_VIS_LIMITED))
        return true;
    if (s->account_id == h->viewer)
        return true;
    for (size_t i = 0; i < s->n_mentions; i++)
        if (s->mentions[i].account_id == h->viewer)
            return true;
    return false;
}

/* take a rendering made elsewhere (the bg thread) for slot s */
static void take(hyd *h, slot *s, const char *json, size_t len, int64_t account_id, int vis)
{
    s->off = (uint32_t)h->out.json.len;
    api_buf_append(&h->out.json, json, len);
    s->len = (uint32_t)len;
    s->account_id = account_id;
    s->visibility = vis;
    s->state = SL_DONE;
}

/* take a memoized rendering: referenced, not copied */
static void take_memo(slot *s, const rc_entry *e)
{
    s->blob = e->blob;
    s->blob->refs++;
    s->len = e->blob->len;
    s->account_id = e->account_id;
    s->visibility = e->visibility;
    s->state = SL_DONE;
}

/* render st (with its reblog attached) for s, memoizing under hash; consumes st */
static void render_slot(hyd *h, slot *s, cache_status *st, uint64_t hash)
{
    if (!direct_visible(h, st)) {
        s->state = SL_GONE;
        cache_status_free(st);
        return;
    }
    bool viewer = h->flags & API_HYD_VIEWER;
    size_t before = h->out.json.len;
    if (!api_render_status(&h->out.json, st, h->w->srv->cfg, viewer, h->flags & API_HYD_SOURCE)) {
        h->out.json.len = before;
        s->state = SL_MISS;
        cache_status_free(st);
        return;
    }
    h->w->st_renders++;
    s->off = (uint32_t)before;
    s->len = (uint32_t)(h->out.json.len - before);
    s->account_id = st->account_id;
    s->visibility = st->visibility;
    s->state = SL_DONE;
    if (viewer && !(h->flags & API_HYD_SOURCE) && st->visibility != CACHE_VIS_DIRECT &&
        st->visibility != CACHE_VIS_LIMITED)
        rc_put(h->w->rcache, s->id, hash, s->hash, st->reblog_of_id, st, h->out.json.data + before,
               s->len, h->now, h->gen);
    cache_status_free(st);
}

/* a level-1 record for slot s */
static void got_record(hyd *h, slot *s, const char *rec, size_t len)
{
    uint64_t hash = XXH3_64bits(rec, len);
    bool memo = (h->flags & API_HYD_VIEWER) && !(h->flags & API_HYD_SOURCE);
    const rc_entry *e = memo ? rc_get(h->w->rcache, s->id, hash, h->now, h->gen) : NULL;
    if (e) {
        take_memo(s, e);
        return;
    }
    cache_status *st = cache_status_decode(rec, len);
    if (!st || st->id != s->id) {
        cache_status_free(st);
        s->state = SL_MISS;
        return;
    }
    s->hash = hash;
    if (st->reblog_of_id) {
        s->st = st;
        s->state = SL_NEED_ORIG;
        return;
    }
    render_slot(h, s, st, hash);
}

/* the original of reblog slot s */
static void got_original(hyd *h, slot *s, const char *rec, size_t len)
{
    uint64_t hash = rc_mix(s->hash, rec, len);
    bool memo = (h->flags & API_HYD_VIEWER) && !(h->flags & API_HYD_SOURCE);
    const rc_entry *e = memo ? rc_get(h->w->rcache, s->id, hash, h->now, h->gen) : NULL;
    if (e) {
        cache_status_free(s->st);
        s->st = NULL;
        take_memo(s, e);
        return;
    }
    cache_status *orig = cache_status_decode(rec, len);
    if (!orig || orig->id != s->st->reblog_of_id) {
        cache_status_free(orig);
        cache_status_free(s->st);
        s->st = NULL;
        s->state = SL_MISS;
        return;
    }
    cache_status *st = s->st;
    s->st = NULL;
    st->reblog = orig;
    render_slot(h, s, st, hash);
}

static void mget_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    mget *m = privdata;
    hyd *h = m->h;
    redisReply *r = reply;
    bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == m->k;
    for (size_t j = 0; j < m->k; j++) {
        slot *s = &h->slots[m->idx[j]];
        redisReply *e = ok ? r->element[j] : NULL;
        bool have = e && e->type == REDIS_REPLY_STRING;
        if (m->level == 1) {
            if (have)
                got_record(h, s, e->str, e->len);
            else
                s->state = SL_MISS;
        } else if (have) {
            got_original(h, s, e->str, e->len);
        } else {
            cache_status_free(s->st);
            s->st = NULL;
            s->state = SL_MISS;
        }
    }
    if (--h->inflight == 0)
        after_level(h);
}

/* the key id of slot s at a level: the status itself, or (level 2) its original */
static int64_t level_key(const slot *s, int level)
{
    return level == 1 ? s->id : (s->st ? s->st->reblog_of_id : 0);
}

/* MGET the records of slots in state want (level 1: their ids; level 2: their originals),
 * one command per shard, formatted straight into RESP (no printf, no argv copies) */
static void send_level(hyd *h, int level, int want)
{
    api_worker *w = h->w;
    int nshards = w->nshards > 0 ? w->nshards : 1;
    for (int sh = 0; sh < nshards; sh++) {
        size_t k = 0;
        for (size_t i = 0; i < h->n; i++) {
            int64_t key_id = level_key(&h->slots[i], level);
            if (h->slots[i].state == want && key_id && cache_shard_of(nshards, key_id) == sh)
                k++;
        }
        if (!k)
            continue;
        redisAsyncContext *ac = api_redis_ctx(w->shards[sh]);
        size_t *idx = ac && h->ncmds < CACHE_MAX_SHARDS ? malloc(k * sizeof(*idx)) : NULL;
        if (!idx) {
            for (size_t i = 0; i < h->n; i++) {
                slot *s = &h->slots[i];
                int64_t key_id = level_key(s, level);
                if (s->state == want && key_id && cache_shard_of(nshards, key_id) == sh) {
                    cache_status_free(s->st);
                    s->st = NULL;
                    s->state = SL_MISS; /* Redis down: PostgreSQL has them */
                }
            }
            continue;
        }
        mget *m = &h->cmds[h->ncmds++];
        m->idx = idx;
        m->h = h;
        m->level = level;
        m->k = 0;
        api_buf *b = &w->cmdbuf;
        api_buf_reset(b);
        api_buf_putc(b, '*');
        api_buf_put_int(b, (long long)k + 1);
        api_buf_puts(b, "\r\n$4\r\nMGET\r\n");
        for (size_t i = 0; i < h->n; i++) {
            slot *s = &h->slots[i];
            int64_t key_id = level_key(s, level);
            if (s->state != want || !key_id || cache_shard_of(nshards, key_id) != sh)
                continue;
            char key[40];
            size_t kl = status_key(key, key_id);
            api_buf_putc(b, '$');
            api_buf_put_int(b, (long long)kl);
            api_buf_append(b, "\r\n", 2);
            api_buf_append(b, key, kl);
            api_buf_append(b, "\r\n", 2);
            m->idx[m->k++] = i;
        }
        h->inflight++;
        if (b->oom || redisAsyncFormattedCommand(ac, mget_cb, m, b->data, b->len) != REDIS_OK) {
            h->inflight--;
            for (size_t j = 0; j < m->k; j++) {
                slot *s = &h->slots[m->idx[j]];
                cache_status_free(s->st);
                s->st = NULL;
                s->state = SL_MISS;
            }
        }
    }
}

/* ==========================================================================================
 * misses: a bg thread loads them through cache_status_fetch
 */
static void misses_run(api_bg_ctx *ctx, void *arg)
{
    hyd *h = arg;
    char err[512];
    if (!api_bg_pg(ctx, err, sizeof(err))) {
        h->bg_failed = true;
        return;
    }
    if (h->lsn[0] && cache_pg_min_lsn(ctx->pg, h->lsn, 0, err, sizeof(err)) != 0)
        log_warning("SET tusk.min_lsn: %s", err);
    int64_t *ids = malloc(h->nmiss * sizeof(*ids));
    cache_status **out = calloc(h->nmiss, sizeof(*out));
    if (!ids || !out) {
        free(ids);
        free(out);
        h->bg_failed = true;
        return;
    }
    for (size_t i = 0; i < h->nmiss; i++)
        ids[i] = h->misses[i].id;
    if (cache_status_fetch(ctx->cache, ctx->pg, ids, h->nmiss, out, err, sizeof(err)) != 0) {
        log_warning("status cache fallback: %s", err);
        h->bg_failed = true;
    } else {
        for (size_t i = 0; i < h->nmiss; i++) {
            miss *m = &h->misses[i];
            cache_status *st = out[i];
            /* a reblog whose original is gone is gone too (Mastodon discards both) */
            if (!st || (st->reblog_of_id && !st->reblog) || !direct_visible(h, st))
                continue;
            m->found = api_render_status(&m->json, st, ctx->cfg, h->flags & API_HYD_VIEWER,
                                         h->flags & API_HYD_SOURCE);
            m->account_id = st->account_id;
            m->visibility = st->visibility;
        }
    }
    for (size_t i = 0; i < h->nmiss; i++)
        cache_status_free(out[i]);
    free(out);
    free(ids);
}

static void misses_done(void *arg)
{
    hyd *h = arg;
    if (h->bg_failed)
        h->out.failed = true;
    for (size_t i = 0; i < h->nmiss; i++) {
        miss *m = &h->misses[i];
        slot *s = &h->slots[m->at];
        if (m->found && !h->bg_failed)
            take(h, s, m->json.data, m->json.len, m->account_id, m->visibility);
        else
            s->state = SL_GONE;
    }
    finish(h);
}

/* a round of MGETs is back */
static void after_level(hyd *h)
{
    if (!h->level2_done) {
        h->level2_done = true;
        send_level(h, 2, SL_NEED_ORIG);
        if (h->inflight > 0)
            return;
    }
    size_t nmiss = 0;
    for (size_t i = 0; i < h->n; i++) {
        slot *s = &h->slots[i];
        if (s->state == SL_NEED_ORIG || s->state == SL_PENDING) {
            cache_status_free(s->st);
            s->st = NULL;
            s->state = SL_MISS;
        }
        if (s->state == SL_MISS)
            nmiss++;
    }
    if (nmiss == 0 || h->out.failed) {
        finish(h);
        return;
    }
    h->misses = calloc(nmiss, sizeof(*h->misses));
    if (!h->misses) {
        h->out.failed = true;
        finish(h);
        return;
    }
    for (size_t i = 0; i < h->n; i++) {
        if (h->slots[i].state != SL_MISS)
            continue;
        miss *m = &h->misses[h->nmiss++];
        m->at = i;
        m->id = h->slots[i].id;
    }
    if (!api_req_lsn(h->req, h->lsn))
        h->lsn[0] = '\0';
    if (!api_bg_submit(h->w, misses_run, misses_done, h)) {
        h->out.failed = true;
        finish(h);
    }
}

/* start a hydration */
void api_hydrate(api_req *req, const int64_t *ids, size_t n, unsigned flags, api_hydrate_cb cb,
                 void *arg)
{
    hyd *h = calloc(1, sizeof(*h));
    slot *slots = calloc(n ? n : 1, sizeof(*slots));
    if (!h || !slots) {
        free(h);
        free(slots);
        api_hydrated none = {.failed = true};
        cb(req, arg, &none);
        return;
    }
    h->req = req;
    h->w = req->w;
    h->flags = flags;
    h->now = ev_now(req->w->loop);
    h->gen = atomic_load(&req->w->srv->status_gen);
    h->viewer = req->auth.account_id;
    h->cb = cb;
    h->arg = arg;
    h->n = n;
    h->slots = slots;
    double fresh = req->w->srv->cfg->render_fresh_ms / 1000.0;
    bool memo = (flags & API_HYD_VIEWER) && !(flags & API_HYD_SOURCE);
    for (size_t i = 0; i < n; i++) {
        slots[i].id = ids[i];
        const rc_entry *e = memo ? rc_fresh(h->w->rcache, ids[i], h->now, fresh, h->gen) : NULL;
        if (e) {
            take_memo(&slots[i], e);
            h->w->st_memo_fresh++;
        }
    }
    h->w->st_hydrations++;
    h->w->st_statuses += n;
    size_t before = h->ncmds;
    send_level(h, 1, SL_PENDING);
    if ((size_t)h->ncmds > before)
        h->w->st_hyd_mget++;
    if (h->inflight == 0)
        after_level(h);
}

/* "[a,b,c]" */
void api_hydrated_write_array(api_req *req, const api_hydrated *h)
{
    size_t total = h->n + 2;
    for (size_t i = 0; i < h->n; i++)
        total += h->items[i].len;
    api_buf_reserve(&req->resp, total);
    api_buf_putc(&req->resp, '[');
    for (size_t i = 0; i < h->n; i++) {
        if (i)
            api_buf_putc(&req->resp, ',');
        api_buf_append(&req->resp, h->items[i].json, h->items[i].len);
    }
    api_buf_putc(&req->resp, ']');
}
