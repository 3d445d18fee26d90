/*
 * Bearer tokens and OAuth scopes, as Mastodon (Doorkeeper) sees them.
 *
 * A token is a row of oauth_access_tokens that is not revoked and not expired; its
 * resource_owner_id is a users.id, whose account_id is the acting account. Tokens of an
 * application without a user (client credentials) are valid but have no account.
 *
 * Scopes: a route names the scopes that grant it ("read:accounts"); a token carrying that
 * scope, or its parent ("read"), passes. The legacy "follow" scope grants the follow, block
 * and mute sub-scopes, as in Mastodon.
 *
 * Lookups are cached per worker thread for a short time (auth_cache_ms) so a busy client
 * costs one query per TTL, not one per request; a revoked token therefore keeps working for
 * at most that long. Unknown tokens are cached too (briefly), so a client hammering with a
 * bad token does not turn into a query storm.
 */
#include "api/internal.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static const char *const scope_names[] = {
    "read",
    "read:accounts",
    "read:blocks",
    "read:bookmarks",
    "read:favourites",
    "read:filters",
    "read:follows",
    "read:lists",
    "read:mutes",
    "read:notifications",
    "read:search",
    "read:statuses",
    "write",
    "write:accounts",
    "write:blocks",
    "write:bookmarks",
    "write:conversations",
    "write:favourites",
    "write:filters",
    "write:follows",
    "write:lists",
    "write:media",
    "write:mutes",
    "write:notifications",
    "write:reports",
    "write:statuses",
    "follow",
    "push",
    "profile",
    "crypto",
    "admin:read",
    "admin:write",
};
#define NSCOPES (sizeof(scope_names) / sizeof(scope_names[0]))

/* bit of a scope name */
api_scopes api_scope_bit(const char *name, size_t len)
{
    for (size_t i = 0; i < NSCOPES; i++)
        if (strlen(scope_names[i]) == len && memcmp(scope_names[i], name, len) == 0)
            return 1ull << i;
    if (len > 11 && memcmp(name, "admin:read:", 11) == 0)
        return api_scope_bit("admin:read", 10);
    if (len > 12 && memcmp(name, "admin:write:", 12) == 0)
        return api_scope_bit("admin:write", 11);
    return 0;
}

/* space-separated scopes -> mask (unknown names are ignored) */
api_scopes api_scopes_parse(const char *text)
{
    api_scopes m = 0;
    if (!text)
        return 0;
    const char *p = text;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *s = p;
        while (*p && *p != ' ')
            p++;
        if (p > s)
            m |= api_scope_bit(s, (size_t)(p - s));
    }
    return m;
}

/* the token scopes that grant one required scope */
static api_scopes grantors(const char *name, size_t len)
{
    api_scopes bit = api_scope_bit(name, len);
    if (!bit)
        return 0;
    api_scopes m = bit;
    if (len > 5 && memcmp(name, "read:", 5) == 0)
        m |= api_scope_bit("read", 4);
    if (len > 6 && memcmp(name, "write:", 6) == 0)
        m |= api_scope_bit("write", 5);
    static const char *const follow_implies[] = {"read:follows", "write:follows", "read:blocks",
                                                 "write:blocks", "read:mutes",    "write:mutes"};
    for (size_t i = 0; i < sizeof(follow_implies) / sizeof(follow_implies[0]); i++)
        if (strlen(follow_implies[i]) == len && memcmp(follow_implies[i], name, len) == 0)
            m |= api_scope_bit("follow", 6);
    if (len > 11 && memcmp(name, "admin:read:", 11) == 0)
        m |= api_scope_bit("admin:read", 10);
    if (len > 12 && memcmp(name, "admin:write:", 12) == 0)
        m |= api_scope_bit("admin:write", 11);
    return m;
}

/* "profile read:accounts" (any of) -> mask of granting token scopes; 0 if a name is unknown */
api_scopes api_scopes_required(const char *spec)
{
    api_scopes m = 0;
    const char *p = spec;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *s = p;
        while (*p && *p != ' ')
            p++;
        if (p > s) {
            api_scopes g = grantors(s, (size_t)(p - s));
            if (!g)
                return 0;
            m |= g;
        }
    }
    return m;
}

/* ---------------------------------------------------------------------------------------
 * per-worker cache
 */
#define CACHE_BUCKETS 16384 /* 10k+ live tokens per worker: chains stay under one */
#define CACHE_MAX 65536
#define NEGATIVE_TTL_MS 2000

typedef struct cache_entry {
    struct cache_entry *next;
    uint64_t hash;
    double expires; /* ev_now seconds */
    int status;     /* 200 or 401 */
    api_auth auth;
    char token[]; /* NUL-terminated */
} cache_entry;

struct api_auth_cache {
    int ttl_ms;
    size_t n;
    cache_entry *b[CACHE_BUCKETS];
};

/* an empty cache */
api_auth_cache *api_auth_cache_new(int ttl_ms)
{
    api_auth_cache *c = calloc(1, sizeof(*c));
    if (c)
        c->ttl_ms = ttl_ms;
    return c;
}

/* drop every entry */
static void cache_clear(api_auth_cache *c)
{
    for (size_t i = 0; i < CACHE_BUCKETS; i++) {
        cache_entry *e = c->b[i];
        while (e) {
            cache_entry *n = e->next;
            free(e);
            e = n;
        }
        c->b[i] = NULL;
    }
    c->n = 0;
}

/* release it */
void api_auth_cache_free(api_auth_cache *c)
{
    if (!c)
        return;
    cache_clear(c);
    free(c);
}

/* the live entry for token, dropping expired ones in its bucket on the way */
static cache_entry *cache_get(api_auth_cache *c, const char *token, uint64_t h, double now)
{
    cache_entry **pp = &c->b[h % CACHE_BUCKETS];
    while (*pp) {
        cache_entry *e = *pp;
        if (e->expires <= now) {
            *pp = e->next;
            free(e);
            c->n--;
            continue;
        }
        if (e->hash == h && strcmp(e->token, token) == 0)
            return e;
        pp = &e->next;
    }
    return NULL;
}

/* remember a result */
static void cache_put(api_auth_cache *c, const char *token, uint64_t h, double now, int status,
                      const api_auth *auth)
{
    if (c->ttl_ms <= 0)
        return;
    if (c->n >= CACHE_MAX)
        cache_clear(c); /* crude but bounded; a full cache of live tokens refills in one TTL */
    size_t tl = strlen(token);
    cache_entry *e = malloc(sizeof(*e) + tl + 1);
    if (!e)
        return;
    e->hash = h;
    e->status = status;
    double ttl = status == 200
                     ? c->ttl_ms / 1000.0
                     : (c->ttl_ms < NEGATIVE_TTL_MS ? c->ttl_ms : NEGATIVE_TTL_MS) / 1000.0;
    e->expires = now + ttl;
    if (auth)
        e->auth = *auth;
    else
        memset(&e->auth, 0, sizeof(e->auth));
    memcpy(e->token, token, tl + 1);
    cache_entry **head = &c->b[h % CACHE_BUCKETS];
    e->next = *head;
    *head = e;
    c->n++;
}

/* ---------------------------------------------------------------------------------------
 * lookup
 */
static const api_stmt token_stmt = {
    "auth_token",
    "SELECT t.id, t.resource_owner_id, u.account_id, t.scopes "
    "FROM oauth_access_tokens t LEFT JOIN users u ON u.id = t.resource_owner_id "
    "WHERE t.token = $1 AND t.revoked_at IS NULL "
    "AND (t.expires_in IS NULL OR t.created_at + t.expires_in * interval '1 second' > "
    "(now() AT TIME ZONE 'UTC')) LIMIT 1",
    1};

typedef struct lookup {
    api_worker *w;
    api_auth_cb cb;
    void *arg;
    uint64_t hash;
    char token[];
} lookup;

static int64_t col_i64(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return 0;
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* the token query answered */
static void lookup_done(void *arg, const PGresult *res, const char *err)
{
    lookup *l = arg;
    if (!res) {
        log_warning("token lookup failed: %s", err ? err : "?");
        l->cb(l->arg, 503, NULL);
        free(l);
        return;
    }
    double now = ev_now(l->w->loop);
    if (PQntuples(res) == 0) {
        cache_put(l->w->auth, l->token, l->hash, now, 401, NULL);
        l->cb(l->arg, 401, NULL);
        free(l);
        return;
    }
    api_auth a = {
        .token_id = col_i64(res, 0, 0),
        .user_id = col_i64(res, 0, 1),
        .account_id = col_i64(res, 0, 2),
        .scopes = api_scopes_parse(PQgetisnull(res, 0, 3) ? "" : PQgetvalue(res, 0, 3)),
    };
    cache_put(l->w->auth, l->token, l->hash, now, 200, &a);
    l->cb(l->arg, 200, &a);
    free(l);
}

/* resolve a token (cache, then database) */
void api_auth_lookup(api_worker *w, const char *token, api_auth_cb cb, void *arg)
{
    size_t tl = strlen(token);
    uint64_t h = XXH3_64bits(token, tl);
    double now = ev_now(w->loop);
    cache_entry *e = cache_get(w->auth, token, h, now);
    if (e) {
        cb(arg, e->status, e->status == 200 ? &e->auth : NULL);
        return;
    }
    /* Doorkeeper tokens are 43 base64url characters; anything huge is not one of ours */
    if (tl == 0 || tl > 512 || !api_utf8_valid(token, tl)) {
        cb(arg, 401, NULL);
        return;
    }
    lookup *l = malloc(sizeof(*l) + tl + 1);
    if (!l) {
        cb(arg, 503, NULL);
        return;
    }
    l->w = w;
    l->cb = cb;
    l->arg = arg;
    l->hash = h;
    memcpy(l->token, token, tl + 1);
    const char *params[1] = {l->token};
    if (!api_db_query(w->db, &token_stmt, params, lookup_done, l)) {
        free(l);
        cb(arg, 503, NULL);
    }
}
