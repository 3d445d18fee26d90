/*
 * Home and list timelines: GET /api/v1/timelines/home and /api/v1/timelines/list/:id, read
 * from the Redis feeds cache/ and fanout/ maintain (Mastodon's feed:home:<id> and
 * feed:list:<id> ZSETs), hydrated by hydrate.c.
 *
 * One pipelined round trip to the feed's shard asks the three things a page needs: does the
 * feed exist, is its regeneration marker set, and the ids of the page (ZREVRANGEBYSCORE, or
 * ZRANGEBYSCORE for min_id, as Mastodon's Feed#from_redis). Scores are doubles and round ids
 * above 2^53, so the range is asked with inclusive bounds and a little slack and the exact
 * bounds are applied to the member strings, as cache_feed_range does; should filtering leave
 * the page short while Redis had more, the next chunk is asked (rare: only ids that share a
 * rounded score with the bound).
 *
 * A feed being rebuilt answers 206 with what it holds and Mastodon-Async-Refresh. A feed
 * that is absent (Redis lost it, or its owner was inactive) gets a rebuild requested
 * (fanout_request_regeneration, on a bg thread) and the same 206.
 *
 * Empty feeds: a rebuild that finds nothing leaves no key (Redis keeps no empty ZSET), and
 * fan-out does not write to absent feeds, so "absent" cannot tell "never built" from
 * "built, empty". The process remembers when it last asked for a feed's rebuild; absent
 * again within EMPTY_MEMO_SECONDS of that (and no marker: the rebuild is over) means empty,
 * answered 200 [] as Mastodon answers an empty feed. Posts that arrived since were dropped
 * by fan-out, so while such a feed keeps being read it is rebuilt again in the background
 * at most every EMPTY_REFRESH_SECONDS: a new post shows within about that long. A follow or
 * list change through this process forgets the entry (the next read is a 206 rebuild).
 */
#include "api/internal.h"

#include "fanout/fanout.h"
#include "llhttp.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EMPTY_MEMO_SECONDS 30.0
#define EMPTY_REFRESH_SECONDS 2.0
#define MEMO_SLOTS 4096
#define RANGE_SLACK 16

/* ==========================================================================================
 * memo of feeds rebuilt recently
 */
typedef struct memo_slot {
    int type;
    int64_t id;
    double at;
} memo_slot;

struct api_feedmemo {
    pthread_mutex_t lock;
    memo_slot slots[MEMO_SLOTS];
};

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static memo_slot *memo_slot_of(api_feedmemo *m, int type, int64_t id)
{
    uint64_t h = ((uint64_t)id * 2 + (uint64_t)type) * 0x9e3779b97f4a7c15ull;
    return &m->slots[(h >> 40) % MEMO_SLOTS];
}

api_feedmemo *api_feedmemo_new(void)
{
    api_feedmemo *m = calloc(1, sizeof(*m));
    if (m)
        pthread_mutex_init(&m->lock, NULL);
    return m;
}

void api_feedmemo_free(api_feedmemo *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* a rebuild of the feed was requested now */
static void memo_note(api_feedmemo *m, int type, int64_t id)
{
    pthread_mutex_lock(&m->lock);
    memo_slot *s = memo_slot_of(m, type, id);
    s->type = type;
    s->id = id;
    s->at = mono_now();
    pthread_mutex_unlock(&m->lock);
}

/* seconds since a rebuild of the feed was requested; -1 when not remembered */
static double memo_age(api_feedmemo *m, int type, int64_t id)
{
    pthread_mutex_lock(&m->lock);
    memo_slot *s = memo_slot_of(m, type, id);
    double age = s->id == id && s->type == type ? mono_now() - s->at : -1;
    pthread_mutex_unlock(&m->lock);
    return age;
}

/* the feed may have gained entries: the next absent read rebuilds it */
void api_feedmemo_forget(api_feedmemo *m, int type, int64_t id)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    memo_slot *s = memo_slot_of(m, type, id);
    if (s->id == id && s->type == type)
        s->id = 0;
    pthread_mutex_unlock(&m->lock);
}

/* ==========================================================================================
 * a timeline request
 */
typedef struct tl {
    api_req *req;
    int type;
    int64_t feed_id;
    api_page page;
    char path[64];
    int replies; /* outstanding replies of the first pipeline */
    bool failed;
    bool exists, marker;
    int64_t ids[40 + 1];
    size_t nids;
    size_t offset; /* of the next range chunk */
    bool more;     /* Redis may hold more matching members */
    int state;
    int regen; /* fanout_request_regeneration's answer */
} tl;

static void serve(tl *t);
static void range_cb(redisAsyncContext *ac, void *reply, void *privdata);
static void exists_cb(redisAsyncContext *ac, void *reply, void *privdata);

/* "feed:home:<id>" / "feed:list:<id>", as cache_feed_key writes it, without printf */
size_t api_feed_key(char out[48], int type, int64_t id)
{
    const char *pre = type == CACHE_FEED_LIST ? "feed:list:" : "feed:home:";
    memcpy(out, pre, 10);
    return 10 + (size_t)api_i64_text(out + 10, id);
}

/* "account:<id>:regeneration" / "list:<id>:regeneration", as cache_regeneration_key */
size_t api_marker_key(char out[48], int type, int64_t id)
{
    size_t n = type == CACHE_FEED_LIST ? 5 : 8;
    memcpy(out, type == CACHE_FEED_LIST ? "list:" : "account:", n);
    n += (size_t)api_i64_text(out + n, id);
    memcpy(out + n, ":regeneration", 14);
    return n + 13;
}

static const char *const home_keep[] = {"local", "limit", NULL};
static const char *const list_keep[] = {"limit", NULL};

static void tl_fail(tl *t, int status, const char *msg)
{
    api_req_error(t->req, status, msg);
    free(t);
}

/* how many members to ask for: the exact bounds are applied to the member strings, so a
 * bounded range asks a little more than the page in case some share the bound's rounded
 * score; an unbounded one (the first page, the common case) needs no slack */
static long range_count(const tl *t)
{
    bool bounded = t->page.has_max || t->page.has_min || t->page.has_since;
    return t->page.limit + (bounded ? RANGE_SLACK : 0);
}

/* one command, formatted straight into RESP (no printf: every page sends three) */
static bool send_argv(tl *t, redisAsyncContext *ac, int argc, const char *const *argv,
                      redisCallbackFn *cb, void *privdata)
{
    size_t lens[8];
    for (int i = 0; i < argc && i < 8; i++)
        lens[i] = strlen(argv[i]);
    api_buf *b = &t->req->w->cmdbuf;
    api_buf_reset(b);
    api_buf_resp(b, argc, argv, lens);
    return !b->oom && redisAsyncFormattedCommand(ac, cb, privdata, b->data, b->len) == REDIS_OK;
}

/* send one range chunk */
static bool send_range(tl *t, redisAsyncContext *ac)
{
    char key[48], lo[24], hi[24], off[24], cnt[24];
    const char *argv[7];
    api_feed_key(key, t->type, t->feed_id);
    api_i64_text(off, (int64_t)t->offset);
    api_i64_text(cnt, range_count(t));
    if (t->page.has_min) {
        api_i64_text(lo, t->page.min_id);
        api_i64_text(hi, t->page.max_id);
        argv[0] = "ZRANGEBYSCORE";
        argv[2] = lo;
        argv[3] = t->page.has_max ? hi : "+inf";
    } else {
        api_i64_text(hi, t->page.max_id);
        api_i64_text(lo, t->page.since_id);
        argv[0] = "ZREVRANGEBYSCORE";
        argv[2] = t->page.has_max ? hi : "+inf";
        argv[3] = t->page.has_since ? lo : "-inf";
    }
    argv[1] = key;
    argv[4] = "LIMIT";
    argv[5] = off;
    argv[6] = cnt;
    return send_argv(t, ac, 7, argv, range_cb, t);
}

/* keep the members that pass the exact bounds */
static void take_range(tl *t, redisReply *r)
{
    for (size_t i = 0; i < r->elements && t->nids < (size_t)t->page.limit; i++) {
        redisReply *e = r->element[i];
        int64_t v;
        if (e->type != REDIS_REPLY_STRING || !api_parse_id(e->str, e->len, &v))
            continue;
        if (t->page.has_max && v >= t->page.max_id)
            continue;
        if (t->page.has_min) {
            if (v <= t->page.min_id)
                continue;
        } else if (t->page.has_since && v <= t->page.since_id) {
            continue;
        }
        t->ids[t->nids++] = v;
    }
    t->offset += r->elements;
    t->more = r->elements == (size_t)range_count(t);
}

/* EXISTS of the feed (privdata's low bit clear), or the state of its regeneration marker
 * (set): HGET marker status, which is "running" or "finished" in Mastodon 4.4's AsyncRefresh
 * hash; a WRONGTYPE error is the older plain string marker, held only while running */
static void exists_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    uintptr_t p = (uintptr_t)privdata;
    tl *t = (tl *)(p & ~(uintptr_t)1);
    redisReply *r = reply;
    if (!(p & 1)) {
        if (!r || r->type != REDIS_REPLY_INTEGER)
            t->failed = true;
        else
            t->exists = r->integer != 0;
    } else if (!r) {
        t->failed = true;
    } else if (r->type == REDIS_REPLY_NIL) {
        t->marker = false;
    } else if (r->type == REDIS_REPLY_STRING) {
        t->marker = r->len == 7 && memcmp(r->str, "running", 7) == 0;
    } else if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "WRONGTYPE", 9) == 0) {
        t->marker = true;
    } else {
        t->failed = true;
    }
    if (--t->replies == 0)
        serve(t);
}

static void range_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    tl *t = privdata;
    redisReply *r = reply;
    if (!r || r->type != REDIS_REPLY_ARRAY)
        t->failed = true;
    else
        take_range(t, r);
    if (t->replies > 0) {
        if (--t->replies == 0)
            serve(t);
        return;
    }
    serve(t); /* a follow-up chunk */
}

/* the hydrated page is ready */
static void page_ready(api_req *req, void *arg, api_hydrated *h)
{
    tl *t = arg;
    if (h->failed) {
        tl_fail(t, 503, "Service unavailable");
        return;
    }
    if (h->n)
        api_link_header(req, t->path, t->type == CACHE_FEED_HOME ? home_keep : list_keep, true,
                        h->items[h->n - 1].id, true, "min_id", h->items[0].id);
    int status = 200;
    if (t->state != CACHE_FEED_READY) {
        /* Mastodon's AsyncRefresh: GET /api/v1_alpha/async_refreshes/<id> tells how the
         * rebuild goes; the client may retry after this many seconds (5, as Mastodon's home) */
        char key[48], id[160];
        api_marker_key(key, t->type, t->feed_id);
        if (api_refresh_id(req->w->srv, key, id, sizeof(id)))
            api_req_add_header(req, "Mastodon-Async-Refresh: id=\"%s\", retry=5", id);
        status = 206;
    }
    free(t);
    api_req_finish_hydrated(req, status, h);
}

static void hydrate_page(tl *t)
{
    api_hydrate(t->req, t->ids, t->nids, API_HYD_VIEWER | API_HYD_FILTER_DIRECT, page_ready, t);
}

/* a rebuild nobody waits for (an empty feed being read again) */
typedef struct bg_regen {
    int type;
    int64_t feed_id;
} bg_regen;

static void bg_regen_run(api_bg_ctx *ctx, void *arg)
{
    bg_regen *g = arg;
    if (fanout_request_regeneration(ctx->cache, g->type, g->feed_id) < 0)
        log_warning("feed rebuild request failed (Redis)");
}

static void bg_regen_done(void *arg)
{
    free(arg);
}

static void regen_run(api_bg_ctx *ctx, void *arg)
{
    tl *t = arg;
    t->regen = fanout_request_regeneration(ctx->cache, t->type, t->feed_id);
}

static void regen_done(void *arg)
{
    tl *t = arg;
    if (t->regen < 0) {
        tl_fail(t, 503, "Service unavailable");
        return;
    }
    memo_note(t->req->w->srv->memo, t->type, t->feed_id);
    t->nids = 0; /* nothing to show yet */
    hydrate_page(t);
}

/* every reply of the pipeline (and follow-up chunks) arrived */
static void serve(tl *t)
{
    if (t->failed) {
        tl_fail(t, 503, "Service unavailable");
        return;
    }
    if (t->nids < (size_t)t->page.limit && t->more) {
        redisAsyncContext *ac = api_worker_shard(t->req->w, t->feed_id);
        if (ac && send_range(t, ac))
            return;
        tl_fail(t, 503, "Service unavailable");
        return;
    }
    if (t->page.has_min) {
        /* collected oldest first: pages are newest first */
        for (size_t i = 0; i < t->nids / 2; i++) {
            int64_t x = t->ids[i];
            t->ids[i] = t->ids[t->nids - 1 - i];
            t->ids[t->nids - 1 - i] = x;
        }
    }
    double age = t->marker || t->exists ? -1 : memo_age(t->req->w->srv->memo, t->type, t->feed_id);
    if (t->marker) {
        t->state = CACHE_FEED_REGENERATING;
    } else if (t->exists) {
        t->state = CACHE_FEED_READY;
    } else if (age >= 0 && age < EMPTY_MEMO_SECONDS) {
        t->state = CACHE_FEED_READY; /* rebuilt a moment ago and still absent: empty */
        if (age >= EMPTY_REFRESH_SECONDS) {
            bg_regen *g = malloc(sizeof(*g));
            if (g) {
                g->type = t->type;
                g->feed_id = t->feed_id;
                if (api_bg_submit(t->req->w, bg_regen_run, bg_regen_done, g))
                    memo_note(t->req->w->srv->memo, t->type, t->feed_id);
                else
                    free(g);
            }
        }
    } else {
        t->state = CACHE_FEED_ABSENT;
        if (!api_bg_submit(t->req->w, regen_run, regen_done, t))
            tl_fail(t, 503, "Service unavailable");
        return;
    }
    hydrate_page(t);
}

/* start reading a feed */
static void read_feed(api_req *req, int type, int64_t feed_id)
{
    tl *t = calloc(1, sizeof(*t));
    if (!t) {
        api_req_error(req, 503, "Service unavailable");
        return;
    }
    t->req = req;
    t->type = type;
    t->feed_id = feed_id;
    api_page_parse(req, 20, 40, &t->page);
    if (type == CACHE_FEED_HOME)
        memcpy(t->path, "/api/v1/timelines/home", sizeof("/api/v1/timelines/home"));
    else
        snprintf(t->path, sizeof(t->path), "/api/v1/timelines/list/%lld", (long long)feed_id);
    redisAsyncContext *ac = api_worker_shard(req->w, feed_id);
    if (!ac) {
        tl_fail(t, 503, "Service unavailable");
        return;
    }
    char key[48], mkey[48];
    api_feed_key(key, type, feed_id);
    api_marker_key(mkey, type, feed_id);
    /* one pipeline: hiredis writes the three commands together, replies come in order */
    const char *exists[] = {"EXISTS", key};
    const char *hget[] = {"HGET", mkey, "status"};
    bool ok = send_argv(t, ac, 2, exists, exists_cb, t);
    if (ok)
        t->replies++;
    ok = ok && send_argv(t, ac, 3, hget, exists_cb, (void *)((uintptr_t)t | 1));
    if (ok)
        t->replies++;
    if (ok && t->page.limit > 0) {
        t->replies++;
        ok = send_range(t, ac);
        if (!ok)
            t->replies--;
    }
    if (!ok) {
        /* callbacks already queued still run: the last one finishes the request */
        t->failed = true;
        if (t->replies == 0)
            tl_fail(t, 503, "Service unavailable");
    }
}

/* ==========================================================================================
 * handlers
 */

/* GET /api/v1/timelines/home */
static void home(api_req *req)
{
    read_feed(req, CACHE_FEED_HOME, req->auth.account_id);
}

static const api_stmt list_owned_stmt = {
    "list_owned", "SELECT 1 FROM lists WHERE id = $1 AND account_id = $2", 2};

typedef struct list_req {
    api_req *req;
    int64_t list_id;
} list_req;

static void list_owned(void *arg, const PGresult *res, const char *err)
{
    list_req *lr = arg;
    api_req *req = lr->req;
    int64_t id = lr->list_id;
    free(lr);
    if (!res) {
        api_req_error(req, 503, "Service unavailable");
        return;
    }
    if (PQntuples(res) != 1) {
        api_req_error(req, 404, "Record not found");
        return;
    }
    read_feed(req, CACHE_FEED_LIST, id);
}

/* GET /api/v1/timelines/list/:id */
static void list_timeline(api_req *req)
{
    int64_t id;
    if (!api_req_id_param(req, "id", &id))
        return;
    list_req *lr = malloc(sizeof(*lr));
    if (!lr) {
        api_req_error(req, 503, "Service unavailable");
        return;
    }
    lr->req = req;
    lr->list_id = id;
    char ids[24], acc[24];
    snprintf(ids, sizeof(ids), "%lld", (long long)id);
    snprintf(acc, sizeof(acc), "%lld", (long long)req->auth.account_id);
    const char *params[] = {ids, acc};
    if (!api_req_query(req, &list_owned_stmt, params, list_owned, lr)) {
        free(lr);
        api_req_error(req, 503, "Service unavailable");
    }
}

bool api_timelines_register(api_router *r)
{
    static const api_route routes[] = {
        {HTTP_GET, "/api/v1/timelines/home", home, "read:statuses",
         ROUTE_AUTH_REQUIRED | ROUTE_USER, 0},
        {HTTP_GET, "/api/v1/timelines/list/:id", list_timeline, "read:lists",
         ROUTE_AUTH_REQUIRED | ROUTE_USER, 0},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (!api_router_add(r, &routes[i]))
            return false;
    return true;
}
