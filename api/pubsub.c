/*
 * The process's Redis pub/sub: one thread, one SUBSCRIBE connection, ONE subscription per
 * channel however many streams of however many workers listen to it.
 *
 * Workers tell this thread when their first local listener of a channel appears and when
 * their last one leaves (a queue + ev_async); the thread keeps, per channel, the set of
 * interested workers. A message is parsed and rendered once (msg.c) and handed by reference
 * to each interested worker, which writes it to its own connections.
 *
 * Per channel the thread runs a small state machine (idle -> subscribing -> subscribed ->
 * unsubscribing) and never issues a SUBSCRIBE while an UNSUBSCRIBE of the same channel is in
 * flight: hiredis keeps one callback per channel name and drops it when the UNSUBSCRIBE
 * reply arrives, so overlapping the two would silently lose the new subscription.
 *
 * While anyone listens to a channel, "subscribed:<channel>" is SET with EX
 * subscribed_ttl_s (1080) and refreshed every subscribed_refresh_s (360), as Mastodon's
 * streaming server does; fan-out only publishes to channels that have the key.
 */
#include "api/internal.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

enum { CH_IDLE, CH_SUBSCRIBING, CH_SUBSCRIBED, CH_UNSUBSCRIBING };
enum { CMD_SUB, CMD_UNSUB };

typedef struct ps_cmd {
    struct ps_cmd *next;
    int op;
    int worker;
    char chan[];
} ps_cmd;

typedef struct ps_chan {
    struct ps_chan *next;
    uint64_t hash;
    uint64_t workers; /* bit per interested worker */
    uint8_t state;
    char name[];
} ps_chan;

struct api_pubsub {
    const api_config *cfg;
    api_worker **workers;
    int nworkers;
    pthread_t thread;
    struct ev_loop *loop;
    ev_async wake;
    ev_timer refresh;
    pthread_mutex_t lock;
    ps_cmd *qhead, *qtail;
    atomic_bool stopping;
    api_redis *sub;
    api_redis *cmd;
    ps_chan **tab;
    size_t cap; /* power of two */
    size_t n;
};

static void send_subscribe(api_pubsub *ps, ps_chan *ch);

/* ------------------------------------------------------------------------------------------
 * channel table
 */
static ps_chan *chan_find(api_pubsub *ps, const char *name, size_t len, uint64_t h, ps_chan ***slot)
{
    ps_chan **pp = &ps->tab[h & (ps->cap - 1)];
    while (*pp) {
        if ((*pp)->hash == h && strlen((*pp)->name) == len && memcmp((*pp)->name, name, len) == 0)
            break;
        pp = &(*pp)->next;
    }
    if (slot)
        *slot = pp;
    return *pp;
}

static bool chan_grow(api_pubsub *ps)
{
    size_t ncap = ps->cap * 2;
    ps_chan **nt = calloc(ncap, sizeof(*nt));
    if (!nt)
        return false;
    for (size_t i = 0; i < ps->cap; i++) {
        ps_chan *c = ps->tab[i];
        while (c) {
            ps_chan *next = c->next;
            c->next = nt[c->hash & (ncap - 1)];
            nt[c->hash & (ncap - 1)] = c;
            c = next;
        }
    }
    free(ps->tab);
    ps->tab = nt;
    ps->cap = ncap;
    return true;
}

static ps_chan *chan_get(api_pubsub *ps, const char *name)
{
    size_t len = strlen(name);
    uint64_t h = XXH3_64bits(name, len);
    ps_chan **slot;
    ps_chan *c = chan_find(ps, name, len, h, &slot);
    if (c)
        return c;
    if (ps->n + 1 > ps->cap && chan_grow(ps))
        chan_find(ps, name, len, h, &slot);
    c = calloc(1, sizeof(*c) + len + 1);
    if (!c)
        return NULL;
    c->hash = h;
    memcpy(c->name, name, len + 1);
    *slot = c;
    ps->n++;
    return c;
}

static void chan_remove(api_pubsub *ps, ps_chan *c)
{
    ps_chan **slot;
    if (chan_find(ps, c->name, strlen(c->name), c->hash, &slot) == c) {
        *slot = c->next;
        ps->n--;
        free(c);
    }
}

/* ------------------------------------------------------------------------------------------
 * Redis
 */

/* "subscribed:<channel>" marks a channel fan-out should publish to */
static void mark_subscribed(api_pubsub *ps, ps_chan *c)
{
    redisAsyncContext *ac = api_redis_ctx(ps->cmd);
    if (!ac)
        return; /* set on (re)connect */
    redisAsyncCommand(ac, NULL, NULL, "SET subscribed:%s 1 EX %d", c->name,
                      ps->cfg->subscribed_ttl_s);
}

/* deliver a message to the workers listening to its channel */
static void on_message(api_pubsub *ps, const char *chan, size_t chanlen, const char *text,
                       size_t len)
{
    ps_chan *c = chan_find(ps, chan, chanlen, XXH3_64bits(chan, chanlen), NULL);
    if (!c || !c->workers)
        return;
    api_msg *m = api_msg_render(chan, chanlen, text, len);
    if (!m)
        return;
    for (int i = 0; i < ps->nworkers; i++) {
        if (c->workers & (1ull << i)) {
            api_msg_ref(m);
            api_worker_deliver(ps->workers[i], m);
        }
    }
    api_msg_unref(m);
}

/* every reply of the SUBSCRIBE connection: subscribe/unsubscribe confirmations, messages */
static void on_sub_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply *reply = r;
    api_pubsub *ps = privdata;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = reply->element[0]->str;
    const char *chan = reply->element[1]->str;
    size_t chanlen = reply->element[1]->len;
    if (strcmp(kind, "message") == 0) {
        if (reply->element[2]->type == REDIS_REPLY_STRING)
            on_message(ps, chan, chanlen, reply->element[2]->str, reply->element[2]->len);
        return;
    }
    ps_chan *c = chan_find(ps, chan, chanlen, XXH3_64bits(chan, chanlen), NULL);
    if (!c)
        return;
    if (strcmp(kind, "subscribe") == 0) {
        c->state = CH_SUBSCRIBED;
        log_debug("subscribed to %s", c->name);
        if (!c->workers) {
            redisAsyncContext *sac = api_redis_ctx(ps->sub);
            if (sac) {
                redisAsyncCommand(sac, on_sub_reply, ps, "UNSUBSCRIBE %s", c->name);
                c->state = CH_UNSUBSCRIBING;
            }
        }
    } else if (strcmp(kind, "unsubscribe") == 0) {
        c->state = CH_IDLE;
        log_debug("unsubscribed from %s", c->name);
        if (c->workers)
            send_subscribe(ps, c);
        else
            chan_remove(ps, c);
    }
}

static void send_subscribe(api_pubsub *ps, ps_chan *c)
{
    redisAsyncContext *ac = api_redis_ctx(ps->sub);
    if (!ac)
        return; /* subscribed on (re)connect */
    redisAsyncCommand(ac, on_sub_reply, ps, "SUBSCRIBE %s", c->name);
    c->state = CH_SUBSCRIBING;
}

/* after (re)connecting: subscribe again to everything wanted */
static void sub_connected(api_redis *r, void *arg)
{
    api_pubsub *ps = arg;
    for (size_t i = 0; i < ps->cap; i++) {
        ps_chan *c = ps->tab[i];
        while (c) {
            ps_chan *next = c->next;
            c->state = CH_IDLE;
            if (c->workers)
                send_subscribe(ps, c);
            else
                chan_remove(ps, c);
            c = next;
        }
    }
}

/* refresh every "subscribed:" key */
static void refresh_all(api_pubsub *ps)
{
    for (size_t i = 0; i < ps->cap; i++)
        for (ps_chan *c = ps->tab[i]; c; c = c->next)
            if (c->workers)
                mark_subscribed(ps, c);
}

static void cmd_connected(api_redis *r, void *arg)
{
    refresh_all(arg);
}

static void refresh_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    refresh_all(t->data);
}

/* ------------------------------------------------------------------------------------------
 * commands from workers
 */
static void apply(api_pubsub *ps, ps_cmd *cmd)
{
    uint64_t bit = 1ull << cmd->worker;
    if (cmd->op == CMD_SUB) {
        ps_chan *c = chan_get(ps, cmd->chan);
        if (!c) {
            log_error("out of memory subscribing to %s", cmd->chan);
            return;
        }
        bool was_wanted = c->workers != 0;
        c->workers |= bit;
        if (!was_wanted) {
            mark_subscribed(ps, c);
            if (c->state == CH_IDLE)
                send_subscribe(ps, c);
            /* SUBSCRIBING/SUBSCRIBED: nothing to do; UNSUBSCRIBING: resubscribed on reply */
        }
        return;
    }
    size_t len = strlen(cmd->chan);
    ps_chan *c = chan_find(ps, cmd->chan, len, XXH3_64bits(cmd->chan, len), NULL);
    if (!c)
        return;
    c->workers &= ~bit;
    if (c->workers)
        return;
    if (c->state == CH_SUBSCRIBED) {
        redisAsyncContext *ac = api_redis_ctx(ps->sub);
        if (ac) {
            redisAsyncCommand(ac, on_sub_reply, ps, "UNSUBSCRIBE %s", c->name);
            c->state = CH_UNSUBSCRIBING;
        }
    } else if (c->state == CH_IDLE) {
        chan_remove(ps, c);
    }
    /* SUBSCRIBING: unsubscribed when the confirmation arrives */
}

static void wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    api_pubsub *ps = a->data;
    pthread_mutex_lock(&ps->lock);
    ps_cmd *q = ps->qhead;
    ps->qhead = ps->qtail = NULL;
    pthread_mutex_unlock(&ps->lock);
    while (q) {
        ps_cmd *next = q->next;
        if (!atomic_load(&ps->stopping))
            apply(ps, q);
        free(q);
        q = next;
    }
    if (atomic_load(&ps->stopping)) {
        ev_timer_stop(loop, &ps->refresh);
        ev_async_stop(loop, &ps->wake);
        api_redis_free(ps->sub);
        api_redis_free(ps->cmd);
        ps->sub = ps->cmd = NULL;
        ev_break(loop, EVBREAK_ALL);
    }
}

static void push(api_pubsub *ps, int op, int worker, const char *chan)
{
    size_t len = strlen(chan);
    ps_cmd *c = malloc(sizeof(*c) + len + 1);
    if (!c) {
        log_error("out of memory (pub/sub command)");
        return;
    }
    c->next = NULL;
    c->op = op;
    c->worker = worker;
    memcpy(c->chan, chan, len + 1);
    pthread_mutex_lock(&ps->lock);
    if (ps->qtail)
        ps->qtail->next = c;
    else
        ps->qhead = c;
    ps->qtail = c;
    pthread_mutex_unlock(&ps->lock);
    ev_async_send(ps->loop, &ps->wake);
}

/* a worker now listens to chan */
void api_pubsub_sub(api_pubsub *ps, int worker, const char *chan)
{
    push(ps, CMD_SUB, worker, chan);
}

/* a worker no longer listens to chan */
void api_pubsub_unsub(api_pubsub *ps, int worker, const char *chan)
{
    push(ps, CMD_UNSUB, worker, chan);
}

static void *ps_main(void *arg)
{
    api_pubsub *ps = arg;
    ev_run(ps->loop, 0);
    return NULL;
}

/* start the thread and its connections */
api_pubsub *api_pubsub_start(const api_config *cfg, api_worker **workers, int nworkers)
{
    if (nworkers > 64)
        return NULL;
    api_pubsub *ps = calloc(1, sizeof(*ps));
    if (!ps)
        return NULL;
    ps->cfg = cfg;
    ps->workers = workers;
    ps->nworkers = nworkers;
    ps->cap = 256;
    ps->tab = calloc(ps->cap, sizeof(*ps->tab));
    ps->loop = ev_loop_new(EVFLAG_AUTO);
    pthread_mutex_init(&ps->lock, NULL);
    if (!ps->tab || !ps->loop)
        goto fail;
    ev_async_init(&ps->wake, wake_cb);
    ps->wake.data = ps;
    ev_async_start(ps->loop, &ps->wake);
    ev_timer_init(&ps->refresh, refresh_cb, cfg->subscribed_refresh_s, cfg->subscribed_refresh_s);
    ps->refresh.data = ps;
    ev_timer_start(ps->loop, &ps->refresh);
    ps->sub = api_redis_new(ps->loop, cfg->redis_pubsub, "pubsub", sub_connected, ps);
    ps->cmd = api_redis_new(ps->loop, cfg->redis_pubsub, "pubsub-keys", cmd_connected, ps);
    if (!ps->sub || !ps->cmd)
        goto fail;
    if (pthread_create(&ps->thread, NULL, ps_main, ps) != 0)
        goto fail;
    return ps;
fail:
    api_redis_free(ps->sub);
    api_redis_free(ps->cmd);
    if (ps->loop)
        ev_loop_destroy(ps->loop);
    free(ps->tab);
    pthread_mutex_destroy(&ps->lock);
    free(ps);
    return NULL;
}

/* stop the thread, free everything */
void api_pubsub_stop(api_pubsub *ps)
{
    if (!ps)
        return;
    atomic_store(&ps->stopping, true);
    ev_async_send(ps->loop, &ps->wake);
    pthread_join(ps->thread, NULL);
    ps_cmd *q = ps->qhead;
    while (q) {
        ps_cmd *n = q->next;
        free(q);
        q = n;
    }
    for (size_t i = 0; i < ps->cap; i++) {
        ps_chan *c = ps->tab[i];
        while (c) {
            ps_chan *n = c->next;
            free(c);
            c = n;
        }
    }
    free(ps->tab);
    ev_loop_destroy(ps->loop);
    pthread_mutex_destroy(&ps->lock);
    free(ps);
}
