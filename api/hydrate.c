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
 * MGET round trip and 20 hashes of ~1 kB), 20 probes, 20 copies of the JSON into the answer.
 */
#include "api/internal.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* ==========================================================================================
 * the per-worker render cache: direct-mapped, one entry per slot, replaced on collision.
 * A rendering is a refcounted blob so a page in flight keeps the ones it took even if the
 * entry is replaced meanwhile (one thread per cache: plain counters).
 */
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
    uint64_t hash;
    double checked; /* ev_now of the last time Redis confirmed it */
    uint64_t gen;   /* the server's status_gen then */
    int64_t account_id;
    int visibility;
    rc_blob *blob;
} rc_entry;

struct api_rcache {
    size_t mask;
    rc_entry *e;
};

api_rcache *api_rcache_new(size_t entries)
{
    size_t n = 1;
    while (n < entries && n < ((size_t)1 << 30))
        n <<= 1;
    api_rcache *rc = calloc(1, sizeof(*rc));
    if (!rc)
        return NULL;
    rc->e = calloc(n, sizeof(rc_entry));
    if (!rc->e) {
        free(rc);
        return NULL;
    }
    rc->mask = n - 1;
    return rc;
}

void api_rcache_free(api_rcache *rc)
{
    if (!rc)
        return;
    for (size_t i = 0; i <= rc->mask; i++)
        blob_unref(rc->e[i].blob);
    free(rc->e);
    free(rc);
}

static rc_entry *rc_slot(api_rcache *rc, int64_t id)
{
    uint64_t h = (uint64_t)id * 0x9e3779b97f4a7c15ull;
    return &rc->e[(h ^ (h >> 29)) & rc->mask];
}

/* the rendering of id if it matches hash (then confirmed as of now) */
static rc_entry *rc_get(api_rcache *rc, int64_t id, uint64_t hash, double now, uint64_t gen)
{
    if (!rc)
        return NULL;
    rc_entry *e = rc_slot(rc, id);
    if (!e->blob || e->id != id || e->hash != hash)
        return NULL;
    e->checked = now;
    e->gen = gen;
    return e;
}

/* the rendering of id if it was confirmed within fresh seconds and nothing was deleted */
static const rc_entry *rc_fresh(api_rcache *rc, int64_t id, double now, double fresh, uint64_t gen)
{
    if (!rc || fresh <= 0)
        return NULL;
    rc_entry *e = rc_slot(rc, id);
    if (!e->blob || e->id != id || e->gen != gen || now - e->checked >= fresh)
        return NULL;
    return e;
}

static void rc_put(api_rcache *rc, int64_t id, uint64_t hash, const cache_status *s,
                   const char *json, size_t len, double now, uint64_t gen)
{
    if (!rc || len > 1u << 20)
        return;
    rc_entry *e = rc_slot(rc, id);
    rc_blob *b = malloc(sizeof(*b) + len);
    if (!b)
        return;
    b->refs = 1;
    b->len = (uint32_t)len;
    memcpy(b->data, json, len);
    blob_unref(e->blob);
    e->blob = b;
    e->id = id;
    e->hash = hash;
    e->checked = now;
    e->gen = gen;
    e->account_id = s->account_id;
    e->visibility = s->visibility;
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
    size_t *idx;      /* slot of each key */
    char (*keys)[32]; /* "tusk:status:<id>" */
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
    for (int i = 0; i < h->ncmds; i++) {
        free(h->cmds[i].idx);
        free(h->cmds[i].keys);
    }
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
    s->off = (uint32_t)before;
    s->len = (uint32_t)(h->out.json.len - before);
    s->account_id = st->account_id;
    s->visibility = st->visibility;
    s->state = SL_DONE;
    if (viewer && !(h->flags & API_HYD_SOURCE) && st->visibility != CACHE_VIS_DIRECT &&
        st->visibility != CACHE_VIS_LIMITED)
        rc_put(h->w->rcache, s->id, hash, st, h->out.json.data + before, s->len, h->now, h->gen);
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
    uint64_t hash = s->hash ^ (XXH3_64bits(rec, len) * 0x9e3779b97f4a7c15ull);
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

/* MGET the records of slots in state want (level 1: their ids; level 2: their originals) */
static void send_level(hyd *h, int level, int want)
{
    api_worker *w = h->w;
    int nshards = w->nshards > 0 ? w->nshards : 1;
    for (int sh = 0; sh < nshards; sh++) {
        size_t k = 0;
        for (size_t i = 0; i < h->n; i++) {
            slot *s = &h->slots[i];
            int64_t key_id = level == 1 ? s->id : (s->st ? s->st->reblog_of_id : 0);
            if (s->state == want && key_id && cache_shard_of(nshards, key_id) == sh)
                k++;
        }
        if (!k)
            continue;
        redisAsyncContext *ac = api_redis_ctx(w->shards[sh]);
        if (!ac || h->ncmds >= CACHE_MAX_SHARDS) {
            for (size_t i = 0; i < h->n; i++) {
                slot *s = &h->slots[i];
                int64_t key_id = level == 1 ? s->id : (s->st ? s->st->reblog_of_id : 0);
                if (s->state == want && key_id && cache_shard_of(nshards, key_id) == sh) {
                    cache_status_free(s->st);
                    s->st = NULL;
                    s->state = SL_MISS; /* Redis down: PostgreSQL has them */
                }
            }
            continue;
        }
        mget *m = &h->cmds[h->ncmds];
        m->h = h;
        m->level = level;
        m->k = 0;
        m->idx = malloc(k * sizeof(*m->idx));
        m->keys = malloc(k * sizeof(*m->keys));
        const char **argv = malloc((k + 1) * sizeof(*argv));
        size_t *lens = malloc((k + 1) * sizeof(*lens));
        if (!m->idx || !m->keys || !argv || !lens) {
            free(m->idx);
            free(m->keys);
            free(argv);
            free(lens);
            m->idx = NULL;
            m->keys = NULL;
            h->out.failed = true;
            continue;
        }
        h->ncmds++;
        argv[0] = "MGET";
        lens[0] = 4;
        for (size_t i = 0; i < h->n; i++) {
            slot *s = &h->slots[i];
            int64_t key_id = level == 1 ? s->id : (s->st ? s->st->reblog_of_id : 0);
            if (s->state != want || !key_id || cache_shard_of(nshards, key_id) != sh)
                continue;
            m->idx[m->k] = i;
            lens[m->k + 1] = (size_t)cache_status_key(m->keys[m->k], 32, key_id);
            argv[m->k + 1] = m->keys[m->k];
            m->k++;
        }
        h->inflight++;
        if (redisAsyncCommandArgv(ac, mget_cb, m, (int)m->k + 1, argv, lens) != REDIS_OK) {
            h->inflight--;
            for (size_t j = 0; j < m->k; j++) {
                slot *s = &h->slots[m->idx[j]];
                cache_status_free(s->st);
                s->st = NULL;
                s->state = SL_MISS;
            }
        }
        free(argv);
        free(lens);
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
        if (e)
            take_memo(&slots[i], e);
    }
    send_level(h, 1, SL_PENDING);
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
