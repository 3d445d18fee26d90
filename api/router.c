/*
 * Router: method + path pattern -> handler. Patterns are literal segments and ":name"
 * captures ("/api/v1/accounts/:id/follow"); a capture matches one non-empty segment. The
 * table is small (tens of routes) and matched by a linear scan over pre-split segments,
 * which costs less than hashing for paths this short. A trailing slash is ignored, as Rails
 * does. HEAD is served by GET routes.
 */
#include "api/internal.h"

#include "llhttp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SEGS 12

typedef struct seg {
    const char *s; /* literal text, or the capture name without ':' */
    uint16_t len;
    bool capture;
} seg;

typedef struct entry {
    api_route route;
    char *pattern; /* owned copy */
    char *names;   /* a second copy, cut into NUL-terminated segments */
    int nsegs;
    seg segs[MAX_SEGS];
} entry;

struct api_router {
    entry *e;
    size_t n, cap;
};

/* an empty router */
api_router *api_router_new(void)
{
    return calloc(1, sizeof(api_router));
}

/* release it */
void api_router_free(api_router *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        free(r->e[i].pattern);
        free(r->e[i].names);
    }
    free(r->e);
    free(r);
}

/* split a path into segments (no leading '/'); -1 if too many */
static int split(const char *path, size_t len, seg *out)
{
    int n = 0;
    size_t i = 0;
    if (len && path[0] == '/')
        i = 1;
    if (len > 1 && path[len - 1] == '/')
        len--;
    while (i < len) {
        size_t j = i;
        while (j < len && path[j] != '/')
            j++;
        if (n >= MAX_SEGS || j - i > 0xFFFF)
            return -1;
        out[n].s = path + i;
        out[n].len = (uint16_t)(j - i);
        out[n].capture = false;
        n++;
        i = j + 1;
    }
    return n;
}

/* segment lists equal as patterns (same literals, captures anywhere the other has one) */
static bool same_shape(const entry *a, const entry *b)
{
    if (a->nsegs != b->nsegs)
        return false;
    for (int i = 0; i < a->nsegs; i++) {
        if (a->segs[i].capture != b->segs[i].capture)
            return false;
        if (!a->segs[i].capture && (a->segs[i].len != b->segs[i].len ||
                                    memcmp(a->segs[i].s, b->segs[i].s, a->segs[i].len)))
            return false;
    }
    return true;
}

/* add a route; false on a bad pattern, duplicate, or allocation failure */
bool api_router_add(api_router *r, const api_route *route)
{
    if (!route->pattern || route->pattern[0] != '/' || !route->handler || route->method < 0 ||
        route->method >= 64)
        return false;
    entry e = {.route = *route};
    e.pattern = strdup(route->pattern);
    e.names = strdup(route->pattern);
    if (!e.pattern || !e.names)
        goto bad;
    e.route.pattern = e.pattern;
    e.nsegs = split(e.names, strlen(e.names), e.segs);
    if (e.nsegs < 0)
        goto bad;
    for (int i = 0; i < e.nsegs; i++)
        e.names[e.segs[i].s - e.names + e.segs[i].len] = '\0'; /* the '/' after it */
    int ncap = 0;
    for (int i = 0; i < e.nsegs; i++) {
        if (e.segs[i].len == 0)
            goto bad; /* "//" */
        if (e.segs[i].s[0] == ':') {
            if (e.segs[i].len < 2 || ++ncap > API_ROUTE_MAX_PARAMS)
                goto bad;
            e.segs[i].capture = true;
            e.segs[i].s++;
            e.segs[i].len--;
        }
    }
    for (size_t i = 0; i < r->n; i++)
        if (r->e[i].route.method == route->method && same_shape(&r->e[i], &e))
            goto bad;
    e.route.scope_mask = route->scopes ? api_scopes_required(route->scopes) : 0;
    if (route->scopes && !e.route.scope_mask)
        goto bad;
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 32;
        entry *ne = realloc(r->e, nc * sizeof(*ne));
        if (!ne)
            goto bad;
        r->e = ne;
        r->cap = nc;
        /* segment pointers point into the owned pattern strings, which did not move */
    }
    r->e[r->n++] = e;
    return true;
bad:
    free(e.pattern);
    free(e.names);
    return false;
}

/* does entry match the split path; fills params */
static bool match_entry(const entry *e, const seg *ps, int n, api_route_params *params)
{
    if (e->nsegs != n)
        return false;
    int np = 0;
    for (int i = 0; i < n; i++) {
        const seg *s = &e->segs[i];
        if (s->capture) {
            if (ps[i].len == 0)
                return false;
            if (params) {
                params->name[np] = s->s;
                params->val[np] = ps[i].s;
                params->len[np] = ps[i].len;
            }
            np++;
        } else if (s->len != ps[i].len || memcmp(s->s, ps[i].s, s->len) != 0) {
            return false;
        }
    }
    if (params)
        params->n = np;
    return true;
}

/* a more specific than b: at the first segment where they differ, a has a literal */
static bool more_specific(const entry *a, const entry *b)
{
    for (int i = 0; i < a->nsegs && i < b->nsegs; i++)
        if (a->segs[i].capture != b->segs[i].capture)
            return !a->segs[i].capture;
    return false;
}

/* find the route for method + path; literal segments win over captures
 * ("/accounts/verify_credentials" before "/accounts/:id") whatever the order of adding */
const api_route *api_router_match(const api_router *r, int method, const char *path, size_t len,
                                  api_route_params *params, int *status, uint64_t *allow)
{
    seg ps[MAX_SEGS];
    int n = split(path, len, ps);
    uint64_t mask = 0;
    const entry *best = NULL;
    if (params)
        params->n = 0;
    if (n >= 0) {
        int want = method == HTTP_HEAD ? HTTP_GET : method;
        for (size_t i = 0; i < r->n; i++) {
            const entry *e = &r->e[i];
            if (!match_entry(e, ps, n, NULL))
                continue;
            if (e->route.method == want) {
                if (!best || more_specific(e, best))
                    best = e;
            } else {
                mask |= 1ull << e->route.method;
                if (e->route.method == HTTP_GET)
                    mask |= 1ull << HTTP_HEAD;
            }
        }
    }
    if (best) {
        match_entry(best, ps, n, params);
        if (status)
            *status = 200;
        if (allow)
            *allow = 0;
        return &best->route;
    }
    if (status)
        *status = mask ? 405 : 404;
    if (allow)
        *allow = mask;
    return NULL;
}

/* "GET, HEAD, POST" */
void api_router_allow_header(uint64_t allow, char *out, size_t cap)
{
    size_t o = 0;
    if (cap)
        out[0] = '\0';
    for (int m = 0; m < 64; m++) {
        if (!(allow & (1ull << m)))
            continue;
        const char *name = llhttp_method_name((llhttp_method_t)m);
        int k = snprintf(out + o, cap - o, "%s%s", o ? ", " : "", name);
        if (k < 0 || (size_t)k >= cap - o)
            break;
        o += (size_t)k;
    }
}
