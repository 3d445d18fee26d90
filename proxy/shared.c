/*
 * What workers share: connection counters per (database, user, node), per database and per
 * user (limits hold for the whole process), and secrets learnt at client login (SCRAM
 * ClientKey/ServerKey, auth_query results) that server logins of the same user reuse.
 * Entries are created under px_g.lock and never freed (they are few: one per pool key), so
 * pools keep plain pointers to them; counters are atomics.
 */
#include "proxy/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

px_global px_g = {.lock = PTHREAD_MUTEX_INITIALIZER};

typedef struct px_scram_keys {
    struct px_scram_keys *next;
    bool have_keys;
    uint8_t client_key[32], server_key[32];
    char *secret; /* from auth_query */
    char user[];
} px_scram_keys;

/* the shared counters of (db, user, node) */
px_shared_pool *px_shared_pool_get(const char *db, const char *user, int node)
{
    size_t dl = strlen(db), ul = strlen(user);
    char key[600];
    if (dl + ul + 16 > sizeof(key))
        return NULL;
    memcpy(key, db, dl + 1);
    memcpy(key + dl + 1, user, ul + 1);
    int klen = (int)(dl + ul + 2);
    klen += 1 + snprintf(key + klen, sizeof(key) - (size_t)klen, "%d", node);
    pthread_mutex_lock(&px_g.lock);
    px_shared_pool *sp;
    for (sp = px_g.shared_pools; sp; sp = sp->next)
        if (sp->klen == (size_t)klen && memcmp(sp->key, key, (size_t)klen) == 0)
            break;
    if (!sp) {
        sp = calloc(1, sizeof(*sp) + (size_t)klen);
        if (sp) {
            memcpy(sp->key, key, (size_t)klen);
            sp->klen = (size_t)klen;
            sp->next = px_g.shared_pools;
            px_g.shared_pools = sp;
        }
    }
    pthread_mutex_unlock(&px_g.lock);
    return sp;
}

/* a named process-wide counter ("db"/"user" + name) */
px_shared_count *px_shared_count_get(const char *kind, const char *name)
{
    size_t kl = strlen(kind), nl = strlen(name);
    pthread_mutex_lock(&px_g.lock);
    px_shared_count *sc;
    for (sc = px_g.shared_counts; sc; sc = sc->next)
        if (strncmp(sc->name, kind, kl) == 0 && sc->name[kl] == ':' &&
            strcmp(sc->name + kl + 1, name) == 0)
            break;
    if (!sc) {
        sc = calloc(1, sizeof(*sc) + kl + nl + 2);
        if (sc) {
            memcpy(sc->name, kind, kl);
            sc->name[kl] = ':';
            memcpy(sc->name + kl + 1, name, nl + 1);
            sc->next = px_g.shared_counts;
            px_g.shared_counts = sc;
        }
    }
    pthread_mutex_unlock(&px_g.lock);
    return sc;
}

/* caller holds the lock */
static px_scram_keys *keys_entry(const char *user, bool create)
{
    for (px_scram_keys *k = px_g.scram_keys; k; k = k->next)
        if (strcmp(k->user, user) == 0)
            return k;
    if (!create)
        return NULL;
    size_t ul = strlen(user);
    px_scram_keys *k = calloc(1, sizeof(*k) + ul + 1);
    if (!k)
        return NULL;
    memcpy(k->user, user, ul + 1);
    k->next = px_g.scram_keys;
    px_g.scram_keys = k;
    return k;
}

/* SCRAM keys learnt from a client's login */
bool px_scram_keys_get(const char *user, uint8_t client_key[32], uint8_t server_key[32])
{
    pthread_mutex_lock(&px_g.lock);
    px_scram_keys *k = keys_entry(user, false);
    bool ok = k && k->have_keys;
    if (ok) {
        memcpy(client_key, k->client_key, 32);
        memcpy(server_key, k->server_key, 32);
    }
    pthread_mutex_unlock(&px_g.lock);
    return ok;
}

/* remember a user's SCRAM keys for server logins */
void px_scram_keys_put(const char *user, const uint8_t client_key[32], const uint8_t server_key[32])
{
    pthread_mutex_lock(&px_g.lock);
    px_scram_keys *k = keys_entry(user, true);
    if (k) {
        memcpy(k->client_key, client_key, 32);
        memcpy(k->server_key, server_key, 32);
        k->have_keys = true;
    }
    pthread_mutex_unlock(&px_g.lock);
}

/* a password hash auth_query returned, for server logins of that user */
void px_user_secret_put(const char *user, const char *secret)
{
    pthread_mutex_lock(&px_g.lock);
    px_scram_keys *k = keys_entry(user, true);
    if (k && (!k->secret || strcmp(k->secret, secret) != 0)) {
        char *d = strdup(secret);
        if (d) {
            free(k->secret);
            k->secret = d;
        }
    }
    pthread_mutex_unlock(&px_g.lock);
}

/* the secret auth_query returned for user; false if none */
bool px_user_secret_get(const char *user, char *buf, size_t cap)
{
    pthread_mutex_lock(&px_g.lock);
    px_scram_keys *k = keys_entry(user, false);
    bool ok = k && k->secret && strlen(k->secret) < cap;
    if (ok)
        strcpy(buf, k->secret);
    pthread_mutex_unlock(&px_g.lock);
    return ok;
}
