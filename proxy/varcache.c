/*
 * ParameterStatus cache: the session parameters a client can change and a pooled server must
 * match (client_encoding, DateStyle, TimeZone, IntervalStyle, standard_conforming_strings,
 * application_name, search_path). Values are interned per worker so comparing a client's
 * values with a server's is seven pointer comparisons; the SET statements that bring a
 * server in line are built here.
 */
#include "proxy/internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const var_names[VAR_COUNT] = {
    "client_encoding",  "DateStyle",   "TimeZone", "IntervalStyle", "standard_conforming_strings",
    "application_name", "search_path",
};

/* index of a tracked parameter, -1 if not tracked */
int px_var_index(const char *name)
{
    for (int i = 0; i < VAR_COUNT; i++)
        if (strcasecmp(name, var_names[i]) == 0)
            return i;
    return -1;
}

/* canonical spelling of a tracked parameter */
const char *px_var_name(int idx)
{
    return idx >= 0 && idx < VAR_COUNT ? var_names[idx] : "?";
}

static uint32_t hash_str(const char *s, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a: values are short */
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= 16777619u;
    }
    return h;
}

/* intern a value (takes a reference) */
px_istr *px_intern_get(px_intern *t, const char *s, size_t len)
{
    uint32_t h = hash_str(s, len);
    if (t->nbuckets) {
        for (px_istr *v = t->buckets[h & (t->nbuckets - 1)]; v; v = v->next) {
            if (v->hash == h && v->len == len && memcmp(v->s, s, len) == 0) {
                v->refs++;
                return v;
            }
        }
    }
    if (t->count >= t->nbuckets) {
        uint32_t nb = t->nbuckets ? t->nbuckets * 2 : 64;
        px_istr **b = calloc(nb, sizeof(*b));
        if (!b)
            return NULL;
        for (uint32_t i = 0; i < t->nbuckets; i++) {
            px_istr *v = t->buckets[i];
            while (v) {
                px_istr *n = v->next;
                v->next = b[v->hash & (nb - 1)];
                b[v->hash & (nb - 1)] = v;
                v = n;
            }
        }
        free(t->buckets);
        t->buckets = b;
        t->nbuckets = nb;
    }
    px_istr *v = malloc(sizeof(*v) + len + 1);
    if (!v)
        return NULL;
    v->refs = 1;
    v->hash = h;
    v->len = (uint32_t)len;
    memcpy(v->s, s, len);
    v->s[len] = '\0';
    v->next = t->buckets[h & (t->nbuckets - 1)];
    t->buckets[h & (t->nbuckets - 1)] = v;
    t->count++;
    return v;
}

/* take another reference (NULL allowed) */
px_istr *px_intern_ref(px_istr *v)
{
    if (v)
        v->refs++;
    return v;
}

/* drop a reference; the value goes when nobody holds it */
void px_intern_put(px_intern *t, px_istr *v)
{
    if (!v || --v->refs > 0)
        return;
    px_istr **pp = &t->buckets[v->hash & (t->nbuckets - 1)];
    while (*pp && *pp != v)
        pp = &(*pp)->next;
    if (*pp)
        *pp = v->next;
    t->count--;
    free(v);
}

/* free the table and every value (worker exit) */
void px_intern_free(px_intern *t)
{
    for (uint32_t i = 0; i < t->nbuckets; i++) {
        px_istr *v = t->buckets[i];
        while (v) {
            px_istr *n = v->next;
            free(v);
            v = n;
        }
    }
    free(t->buckets);
    memset(t, 0, sizeof(*t));
}

/* replace *slot with value (both may be NULL) */
void px_var_set(px_intern *t, px_istr **slot, px_istr *value)
{
    if (*slot == value)
        return;
    px_intern_ref(value);
    px_intern_put(t, *slot);
    *slot = value;
}

/* a literal that means the same whatever standard_conforming_strings is */
static void put_literal(pktbuf *b, const char *s)
{
    bool backslash = strchr(s, '\\') != NULL;
    if (backslash)
        pkt_put_byte(b, 'E');
    pkt_put_byte(b, '\'');
    for (const char *p = s; *p; p++) {
        if (*p == '\'' || (backslash && *p == '\\'))
            pkt_put_byte(b, (uint8_t)*p);
        pkt_put_byte(b, (uint8_t)*p);
    }
    pkt_put_byte(b, '\'');
}

/* "SET a = '..';SET b = '..';" for every var where want differs from have */
int px_var_sync_sql(px_istr *const *want, px_istr *const *have, pktbuf *sql)
{
    int n = 0;
    for (int i = 0; i < VAR_COUNT; i++) {
        if (!want[i] || want[i] == have[i])
            continue;
        if (i == VAR_SEARCH_PATH) {
            /* the reported value is a list ("$user", public): set_config takes it verbatim */
            pkt_put_bytes(sql, "SELECT pg_catalog.set_config('search_path', ", 44);
            put_literal(sql, want[i]->s);
            pkt_put_bytes(sql, ", false)", 8);
        } else {
            pkt_put_bytes(sql, "SET ", 4);
            pkt_put_bytes(sql, var_names[i], strlen(var_names[i]));
            pkt_put_bytes(sql, " = ", 3);
            put_literal(sql, want[i]->s);
        }
        pkt_put_byte(sql, ';');
        n++;
    }
    return n;
}
