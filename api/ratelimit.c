/*
 * Request rate limits in fixed windows, as Mastodon's rack-attack throttles count them: a key
 * may make `limit` requests in each period-aligned window (300 per 5 minutes by default);
 * X-RateLimit-Reset is the end of the window. Shared by the worker threads of a process,
 * split into shards with their own lock so threads rarely contend. A shard is cleared when
 * its window ends, so memory is bounded by the keys seen within one window.
 */
#include "api/internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define RL_SHARDS 64

typedef struct rl_entry {
    uint64_t key; /* 0 = empty slot */
    uint32_t count;
} rl_entry;

typedef struct rl_shard {
    pthread_mutex_t lock;
    rl_entry *tab;
    size_t cap; /* power of two */
    size_t used;
    uint64_t window;
} rl_shard;

struct api_ratelimit {
    unsigned limit;
    unsigned period;
    rl_shard shards[RL_SHARDS];
};

/* a limiter of limit requests per period seconds */
api_ratelimit *api_rl_new(unsigned limit, unsigned period)
{
    api_ratelimit *rl = calloc(1, sizeof(*rl));
    if (!rl)
        return NULL;
    rl->limit = limit;
    rl->period = period ? period : 1;
    for (int i = 0; i < RL_SHARDS; i++)
        pthread_mutex_init(&rl->shards[i].lock, NULL);
    return rl;
}

/* release it */
void api_rl_free(api_ratelimit *rl)
{
    if (!rl)
        return;
    for (int i = 0; i < RL_SHARDS; i++) {
        free(rl->shards[i].tab);
        pthread_mutex_destroy(&rl->shards[i].lock);
    }
    free(rl);
}

/* slot of key in a table (linear probing) */
static rl_entry *find_slot(rl_entry *tab, size_t cap, uint64_t key)
{
    size_t mask = cap - 1;
    size_t i = (size_t)(key ^ (key >> 29)) & mask;
    while (tab[i].key && tab[i].key != key)
        i = (i + 1) & mask;
    return &tab[i];
}

/* double the table; false on allocation failure */
static bool grow(rl_shard *s)
{
    size_t ncap = s->cap ? s->cap * 2 : 64;
    rl_entry *nt = calloc(ncap, sizeof(*nt));
    if (!nt)
        return false;
    for (size_t i = 0; i < s->cap; i++)
        if (s->tab[i].key)
            *find_slot(nt, ncap, s->tab[i].key) = s->tab[i];
    free(s->tab);
    s->tab = nt;
    s->cap = ncap;
    return true;
}

/* count a request; false when key is over its limit in the current window */
bool api_rl_hit(api_ratelimit *rl, uint64_t key, time_t now, api_rl_info *info)
{
    if (key == 0)
        key = 1;
    uint64_t window = (uint64_t)now / rl->period;
    rl_shard *s = &rl->shards[(key >> 7) % RL_SHARDS];
    uint32_t count;
    pthread_mutex_lock(&s->lock);
    if (s->window != window) {
        if (s->tab)
            memset(s->tab, 0, s->cap * sizeof(*s->tab));
        s->used = 0;
        s->window = window;
    }
    if ((s->used + 1) * 4 > s->cap * 3 && !grow(s)) {
        /* no memory for bookkeeping: let the request through rather than fail it */
        pthread_mutex_unlock(&s->lock);
        if (info) {
            info->limit = rl->limit;
            info->remaining = rl->limit;
            info->reset = (time_t)((window + 1) * rl->period);
        }
        return true;
    }
    rl_entry *e = find_slot(s->tab, s->cap, key);
    if (!e->key) {
        e->key = key;
        e->count = 0;
        s->used++;
    }
    if (e->count <= rl->limit)
        e->count++;
    count = e->count;
    pthread_mutex_unlock(&s->lock);
    if (info) {
        info->limit = rl->limit;
        info->remaining = count >= rl->limit ? 0 : rl->limit - count;
        info->reset = (time_t)((window + 1) * rl->period);
    }
    return count <= rl->limit;
}

/* keys held in all shards */
size_t api_rl_size(api_ratelimit *rl)
{
    size_t n = 0;
    for (int i = 0; i < RL_SHARDS; i++) {
        pthread_mutex_lock(&rl->shards[i].lock);
        n += rl->shards[i].used;
        pthread_mutex_unlock(&rl->shards[i].lock);
    }
    return n;
}
