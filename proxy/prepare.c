/*
 * Named prepared statements in transaction mode. A client's statement names map to
 * worker-wide statements, one per distinct (query text, parameter types), each with one
 * server-side name "T_<xxh64>". Every server connection remembers which of them it has
 * prepared (LRU bounded by max_prepared_statements), so the forwarder can prepare a statement
 * lazily on whatever server a client's Bind lands on. The rewriting itself is in client.c.
 */
#include "proxy/internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY /* XXH64_state_t on the stack */
#include <xxhash.h>

static uint64_t stmt_hash(const char *query, size_t qlen, uint16_t ntypes, const uint8_t *types,
                          uint64_t seed)
{
    XXH64_state_t st;
    XXH64_reset(&st, seed);
    XXH64_update(&st, query, qlen);
    uint8_t n[2] = {(uint8_t)(ntypes >> 8), (uint8_t)ntypes};
    XXH64_update(&st, n, 2);
    if (ntypes)
        XXH64_update(&st, types, (size_t)ntypes * 4);
    return XXH64_digest(&st);
}

static bool stmt_equal(const px_stmt *s, const char *query, size_t qlen, uint16_t ntypes,
                       const uint8_t *types)
{
    return s->qlen == qlen && s->ntypes == ntypes && memcmp(s->query, query, qlen) == 0 &&
           (ntypes == 0 || memcmp(s->types, types, (size_t)ntypes * 4) == 0);
}

static bool name_taken(const px_stmt_registry *reg, uint64_t h)
{
    for (px_stmt *s = reg->buckets[h & (reg->nbuckets - 1)]; s; s = s->next)
        if (s->hash == h)
            return true;
    return false;
}

/* find or create the statement for a Parse (takes a reference) */
px_stmt *px_stmt_get(px_stmt_registry *reg, const char *query, size_t qlen, uint16_t ntypes,
                     const uint8_t *types_be)
{
    uint64_t h = stmt_hash(query, qlen, ntypes, types_be, 0);
    if (reg->nbuckets) {
        /* a colliding text gets the next seed's hash: look along that chain too */
        for (uint64_t seed = 0; seed < 4; seed++) {
            uint64_t hh = seed ? stmt_hash(query, qlen, ntypes, types_be, seed) : h;
            bool taken = false;
            for (px_stmt *s = reg->buckets[hh & (reg->nbuckets - 1)]; s; s = s->next) {
                if (s->hash != hh)
                    continue;
                taken = true;
                if (stmt_equal(s, query, qlen, ntypes, types_be)) {
                    s->refs++;
                    return s;
                }
            }
            if (!taken)
                break;
        }
    }
    if (reg->count >= reg->nbuckets) {
        uint32_t nb = reg->nbuckets ? reg->nbuckets * 2 : 256;
        px_stmt **b = calloc(nb, sizeof(*b));
        if (!b)
            return NULL;
        for (uint32_t i = 0; i < reg->nbuckets; i++) {
            px_stmt *s = reg->buckets[i];
            while (s) {
                px_stmt *n = s->next;
                s->next = b[s->hash & (nb - 1)];
                b[s->hash & (nb - 1)] = s;
                s = n;
            }
        }
        free(reg->buckets);
        reg->buckets = b;
        reg->nbuckets = nb;
    }
    uint64_t seed = 0;
    while (name_taken(reg, h) && seed < 1000)
        h = stmt_hash(query, qlen, ntypes, types_be, ++seed);
    px_stmt *s = malloc(sizeof(*s) + qlen + 1 + (size_t)ntypes * 4);
    if (!s)
        return NULL;
    s->refs = 1;
    s->hash = h;
    snprintf(s->name, sizeof(s->name), "T_%016llx", (unsigned long long)h); /* see below */
    s->qlen = (uint32_t)qlen;
    s->ntypes = ntypes;
    memcpy(s->query, query, qlen);
    s->query[qlen] = '\0';
    s->types = (uint8_t *)s->query + qlen + 1;
    if (ntypes)
        memcpy(s->types, types_be, (size_t)ntypes * 4);
    s->next = reg->buckets[h & (reg->nbuckets - 1)];
    reg->buckets[h & (reg->nbuckets - 1)] = s;
    reg->count++;
    return s;
}

/* drop a reference; the statement goes when no client, server or queue holds it */
void px_stmt_unref(px_stmt_registry *reg, px_stmt *s)
{
    if (!s || --s->refs > 0)
        return;
    px_stmt **pp = &reg->buckets[s->hash & (reg->nbuckets - 1)];
    while (*pp && *pp != s)
        pp = &(*pp)->next;
    if (*pp)
        *pp = s->next;
    reg->count--;
    free(s);
}

/* free a registry and whatever it still holds (worker exit) */
void px_stmt_registry_free(px_stmt_registry *reg)
{
    for (uint32_t i = 0; i < reg->nbuckets; i++) {
        px_stmt *s = reg->buckets[i];
        while (s) {
            px_stmt *n = s->next;
            free(s);
            s = n;
        }
    }
    free(reg->buckets);
    memset(reg, 0, sizeof(*reg));
}

/* ---- a client's names ---- */

static uint32_t name_hash(const char *s)
{
    return (uint32_t)XXH64(s, strlen(s), 7);
}

static bool cstmts_grow(px_client_stmts *m)
{
    uint32_t nb = m->nbuckets ? m->nbuckets * 2 : 8;
    px_cstmt **b = calloc(nb, sizeof(*b));
    if (!b)
        return false;
    for (uint32_t i = 0; i < m->nbuckets; i++) {
        px_cstmt *e = m->buckets[i];
        while (e) {
            px_cstmt *n = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
            e = n;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = nb;
    return true;
}

/* bind a client's name to stmt (takes a reference; replaces an older binding) */
bool px_cstmts_put(px_client_stmts *m, const char *name, px_stmt *stmt, px_stmt_registry *reg)
{
    uint32_t h = name_hash(name);
    if (m->nbuckets) {
        for (px_cstmt *e = m->buckets[h & (m->nbuckets - 1)]; e; e = e->next) {
            if (e->hash == h && strcmp(e->name, name) == 0) {
                stmt->refs++;
                px_stmt_unref(reg, e->stmt);
                e->stmt = stmt;
                return true;
            }
        }
    }
    if (m->count >= m->nbuckets && !cstmts_grow(m))
        return false;
    size_t nl = strlen(name);
    px_cstmt *e = malloc(sizeof(*e) + nl + 1);
    if (!e)
        return false;
    memcpy(e->name, name, nl + 1);
    e->hash = h;
    e->stmt = stmt;
    stmt->refs++;
    e->next = m->buckets[h & (m->nbuckets - 1)];
    m->buckets[h & (m->nbuckets - 1)] = e;
    m->count++;
    return true;
}

/* the statement a client's name stands for, NULL if unknown */
px_stmt *px_cstmts_get(const px_client_stmts *m, const char *name)
{
    if (!m || !m->nbuckets)
        return NULL;
    uint32_t h = name_hash(name);
    for (px_cstmt *e = m->buckets[h & (m->nbuckets - 1)]; e; e = e->next)
        if (e->hash == h && strcmp(e->name, name) == 0)
            return e->stmt;
    return NULL;
}

/* forget a name; true if it existed */
bool px_cstmts_del(px_client_stmts *m, const char *name, px_stmt_registry *reg)
{
    if (!m || !m->nbuckets)
        return false;
    uint32_t h = name_hash(name);
    for (px_cstmt **pp = &m->buckets[h & (m->nbuckets - 1)]; *pp; pp = &(*pp)->next) {
        px_cstmt *e = *pp;
        if (e->hash == h && strcmp(e->name, name) == 0) {
            *pp = e->next;
            px_stmt_unref(reg, e->stmt);
            free(e);
            m->count--;
            return true;
        }
    }
    return false;
}

/* forget all of a client's names */
void px_cstmts_free(px_client_stmts *m, px_stmt_registry *reg)
{
    if (!m)
        return;
    for (uint32_t i = 0; i < m->nbuckets; i++) {
        px_cstmt *e = m->buckets[i];
        while (e) {
            px_cstmt *n = e->next;
            px_stmt_unref(reg, e->stmt);
            free(e);
            e = n;
        }
    }
    free(m->buckets);
    memset(m, 0, sizeof(*m));
}

/* ---- a server's prepared set ---- */

static uint32_t ptr_hash(const px_stmt *s)
{
    return (uint32_t)(s->hash ^ (s->hash >> 32));
}

/* is stmt prepared on the server? touch moves it to the front of the LRU */
bool px_sstmts_has(px_server_stmts *m, px_stmt *stmt, bool touch)
{
    if (!m->nbuckets)
        return false;
    for (px_sstmt *e = m->buckets[ptr_hash(stmt) & (m->nbuckets - 1)]; e; e = e->hnext) {
        if (e->stmt == stmt) {
            if (touch && m->lru.next != &e->lru) {
                px_list_del(&e->lru);
                px_list_add_head(&m->lru, &e->lru);
            }
            return true;
        }
    }
    return false;
}

/* record that stmt is (being) prepared on the server (takes a reference) */
bool px_sstmts_add(px_server_stmts *m, px_stmt *stmt)
{
    if (!m->nbuckets) {
        px_list_init(&m->lru);
    }
    if (m->count >= m->nbuckets) {
        uint32_t nb = m->nbuckets ? m->nbuckets * 2 : 16;
        px_sstmt **b = calloc(nb, sizeof(*b));
        if (!b)
            return false;
        for (uint32_t i = 0; i < m->nbuckets; i++) {
            px_sstmt *e = m->buckets[i];
            while (e) {
                px_sstmt *n = e->hnext;
                e->hnext = b[ptr_hash(e->stmt) & (nb - 1)];
                b[ptr_hash(e->stmt) & (nb - 1)] = e;
                e = n;
            }
        }
        free(m->buckets);
        m->buckets = b;
        m->nbuckets = nb;
    }
    px_sstmt *e = malloc(sizeof(*e));
    if (!e)
        return false;
    e->stmt = stmt;
    stmt->refs++;
    uint32_t h = ptr_hash(stmt) & (m->nbuckets - 1);
    e->hnext = m->buckets[h];
    m->buckets[h] = e;
    px_list_add_head(&m->lru, &e->lru);
    m->count++;
    return true;
}

/* forget stmt on this server; true if it was there */
bool px_sstmts_del(px_server_stmts *m, px_stmt *stmt, px_stmt_registry *reg)
{
    if (!m->nbuckets)
        return false;
    for (px_sstmt **pp = &m->buckets[ptr_hash(stmt) & (m->nbuckets - 1)]; *pp; pp = &(*pp)->hnext) {
        px_sstmt *e = *pp;
        if (e->stmt == stmt) {
            *pp = e->hnext;
            px_list_del(&e->lru);
            px_stmt_unref(reg, e->stmt);
            free(e);
            m->count--;
            return true;
        }
    }
    return false;
}

/* least recently used statement of the server */
px_stmt *px_sstmts_lru(const px_server_stmts *m)
{
    if (!m->nbuckets || px_list_empty(&m->lru))
        return NULL;
    return container_of(m->lru.prev, px_sstmt, lru)->stmt;
}

/* forget a server's statements (closed, or DISCARD ALL) */
void px_sstmts_free(px_server_stmts *m, px_stmt_registry *reg)
{
    for (uint32_t i = 0; i < m->nbuckets; i++) {
        px_sstmt *e = m->buckets[i];
        while (e) {
            px_sstmt *n = e->hnext;
            px_stmt_unref(reg, e->stmt);
            free(e);
            e = n;
        }
    }
    free(m->buckets);
    memset(m, 0, sizeof(*m));
}

bool px_stmt_name_is_shared(const char *name)
{
    if (strncmp(name, "T_", 2) != 0 || strlen(name) != 18)
        return false;
    for (int i = 2; i < 18; i++)
        if (!isxdigit((unsigned char)name[i]))
            return false;
    return true;
}
