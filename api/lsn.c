/*
 * Commit-LSN tokens of accounts' writes, shared by every worker of the process.
 *
 * After a write through tusk proxy, PQparameterStatus(conn, "tusk.commit_lsn") is the floor
 * that session reached. The next request of the same account may run on another pooled
 * connection (or another worker's), whose proxy session knows nothing of it; so the api
 * keeps the floor per account for lsn_token_ttl_ms and states it with SET tusk.min_lsn
 * before that account's reads. After the TTL every replica has long caught up (or is
 * banned for lag by the proxy), so the entry is dropped.
 *
 * A fixed array of buckets, each an open-addressed slot keyed by account id and guarded by
 * one of 64 mutexes: writes are rare next to reads, and a read is one lock, one probe. A
 * collision evicts the older entry, which only costs that account a read floor.
 */
#include "api/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LSN_SLOTS 65536 /* power of two */
#define LSN_LOCKS 64

typedef struct slot {
    int64_t account_id;
    uint64_t lsn;
    double expires; /* monotonic seconds */
} slot;

struct api_lsn_table {
    double ttl;
    pthread_mutex_t locks[LSN_LOCKS];
    slot slots[LSN_SLOTS];
};

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static size_t slot_of(int64_t id)
{
    uint64_t h = (uint64_t)id * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 48) & (LSN_SLOTS - 1);
}

/* "16/B374D848" -> (0x16 << 32) | 0xB374D848 */
bool api_lsn_parse(const char *s, uint64_t *out)
{
    if (!s)
        return false;
    uint64_t hi = 0, lo = 0;
    int nh = 0, nl = 0;
    const char *p = s;
    for (; *p && *p != '/'; p++, nh++) {
        int d = hexval(*p);
        if (d < 0 || nh >= 8)
            return false;
        hi = hi << 4 | (uint64_t)d;
    }
    if (*p != '/' || nh == 0)
        return false;
    for (p++; *p; p++, nl++) {
        int d = hexval(*p);
        if (d < 0 || nl >= 8)
            return false;
        lo = lo << 4 | (uint64_t)d;
    }
    if (nl == 0)
        return false;
    *out = hi << 32 | lo;
    return true;
}

/* a table whose entries live ttl_ms */
api_lsn_table *api_lsn_new(int ttl_ms)
{
    api_lsn_table *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->ttl = ttl_ms / 1000.0;
    for (int i = 0; i < LSN_LOCKS; i++)
        pthread_mutex_init(&t->locks[i], NULL);
    return t;
}

void api_lsn_free(api_lsn_table *t)
{
    if (!t)
        return;
    for (int i = 0; i < LSN_LOCKS; i++)
        pthread_mutex_destroy(&t->locks[i]);
    free(t);
}

/* remember an account's floor */
void api_lsn_note(api_lsn_table *t, int64_t account_id, const char *lsn)
{
    uint64_t v;
    if (!t || account_id <= 0 || t->ttl <= 0 || !lsn || !api_lsn_parse(lsn, &v))
        return;
    size_t i = slot_of(account_id);
    pthread_mutex_t *m = &t->locks[i % LSN_LOCKS];
    double now = mono_now();
    pthread_mutex_lock(m);
    slot *s = &t->slots[i];
    if (s->account_id == account_id && s->expires > now && s->lsn > v)
        v = s->lsn; /* never lower a floor that is still in force */
    s->account_id = account_id;
    s->lsn = v;
    s->expires = now + t->ttl;
    pthread_mutex_unlock(m);
}

/* the account's floor, formatted as PostgreSQL writes LSNs */
bool api_lsn_get(api_lsn_table *t, int64_t account_id, char out[32])
{
    if (!t || account_id <= 0)
        return false;
    size_t i = slot_of(account_id);
    pthread_mutex_t *m = &t->locks[i % LSN_LOCKS];
    bool found = false;
    uint64_t v = 0;
    pthread_mutex_lock(m);
    slot *s = &t->slots[i];
    if (s->account_id == account_id && s->expires > mono_now()) {
        found = true;
        v = s->lsn;
    }
    pthread_mutex_unlock(m);
    if (found)
        snprintf(out, 32, "%X/%X", (unsigned)(v >> 32), (unsigned)(v & 0xffffffffu));
    return found;
}
