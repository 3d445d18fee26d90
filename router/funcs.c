/*
 * The unsafe-function set: functions whose call keeps a query off the replicas (they write,
 * need the primary's state, or fail on a hot standby), some of which also pin or unpin the
 * session. Built once from defaults plus the configured list; looked up for every
 * "name(" in a query, so a first-byte bitmap rejects most names before any hashing.
 */
#include "router/internal.h"

#include "common/common.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* A default entry; a trailing '*' makes it a prefix. */
struct fdefault {
    const char *name;
    unsigned flags;
};

/*
 * The design's list (nextval ... dblink*), then additions that fail on a hot standby or only
 * make sense on the primary, then Mastodon's id generator (it calls nextval()).
 */
static const struct fdefault fdefaults[] = {
    {"nextval", RF_UNSAFE},
    {"setval", RF_UNSAFE},
    {"currval", RF_UNSAFE},
    {"lastval", RF_UNSAFE},
    {"pg_advisory_lock", RF_UNSAFE | RF_PIN},
    {"pg_advisory_lock_shared", RF_UNSAFE | RF_PIN},
    {"pg_try_advisory_lock", RF_UNSAFE | RF_PIN},
    {"pg_try_advisory_lock_shared", RF_UNSAFE | RF_PIN},
    {"pg_advisory_unlock_all", RF_UNSAFE | RF_UNPIN},
    {"pg_advisory_*", RF_UNSAFE},
    {"pg_try_advisory_*", RF_UNSAFE},
    {"txid_current", RF_UNSAFE},
    {"pg_current_xact_id", RF_UNSAFE},
    {"pg_notify", RF_UNSAFE},
    {"set_config", RF_UNSAFE | RF_PIN | RF_SETTING},
    {"lo_*", RF_UNSAFE},
    {"lowrite", RF_UNSAFE},
    {"loread", RF_UNSAFE},
    {"dblink*", RF_UNSAFE},
    /* fail during recovery, or act on the server they run on */
    {"pg_current_wal_lsn", RF_UNSAFE},
    {"pg_current_wal_insert_lsn", RF_UNSAFE},
    {"pg_current_wal_flush_lsn", RF_UNSAFE},
    {"pg_switch_wal", RF_UNSAFE},
    {"pg_create_restore_point", RF_UNSAFE},
    {"pg_create_*", RF_UNSAFE}, /* replication slots */
    {"pg_drop_replication_slot", RF_UNSAFE},
    {"pg_replication_slot_advance", RF_UNSAFE},
    {"pg_copy_*", RF_UNSAFE},
    {"pg_logical_*", RF_UNSAFE}, /* slot_get_changes consumes, emit_message writes WAL */
    {"pg_replication_origin_*", RF_UNSAFE},
    {"pg_stat_reset*", RF_UNSAFE},
    {"pg_terminate_backend", RF_UNSAFE},
    {"pg_cancel_backend", RF_UNSAFE},
    {"pg_reload_conf", RF_UNSAFE},
    {"pg_rotate_logfile", RF_UNSAFE},
    {"pg_import_system_collations", RF_UNSAFE},
    {"timestamp_id", RF_UNSAFE},
};

static inline unsigned char lower(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') ? (unsigned char)(ch + 32) : ch;
}

/* FNV-1a over the case-folded name. */
static size_t fhash(const char *name, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ lower((unsigned char)name[i])) * 16777619u;
    return h;
}

/* Adds one name (lower case, no '*') to the exact table; a later duplicate adds its flags. */
static void add_exact(router_classifier *c, const char *name, size_t len, unsigned flags)
{
    size_t mask = c->exact_cap - 1;
    for (size_t h = fhash(name, len);; h++) {
        struct router_fentry *e = &c->exact[h & mask];
        if (e->flags == 0) {
            e->len = (uint8_t)len;
            e->flags = (uint8_t)flags;
            memcpy(e->name, name, len);
            e->name[len] = '\0';
            c->exact_n++;
            return;
        }
        if (e->len == len && memcmp(e->name, name, len) == 0) {
            e->flags |= (uint8_t)flags;
            return;
        }
    }
}

/* Adds a name or prefix ("abc*"); name is normalised already. */
static void add_name(router_classifier *c, const char *name, size_t len, unsigned flags)
{
    unsigned char first = (unsigned char)name[0];
    c->first_char[first >> 3] |= (uint8_t)(1u << (first & 7));
    if (name[len - 1] == '*') {
        struct router_fentry *e = &c->prefix[c->prefix_n++];
        e->len = (uint8_t)(len - 1);
        e->flags = (uint8_t)flags;
        memcpy(e->name, name, len - 1);
        e->name[len - 1] = '\0';
    } else {
        add_exact(c, name, len, flags);
    }
}

/*
 * Normalises one configured entry into out (lower case, quotes and schema dropped, "*" kept
 * at the end). Returns its length, 0 for an empty entry, -1 when it is not a name, -2 when
 * it is longer than PostgreSQL keeps.
 */
static int normalise_entry(const char *p, size_t n, char out[ROUTER_NAME_MAX + 2])
{
    while (n > 0 && isspace((unsigned char)p[0])) {
        p++;
        n--;
    }
    while (n > 0 && isspace((unsigned char)p[n - 1]))
        n--;
    if (n == 0)
        return 0;
    /* keep what follows the last dot outside double quotes: "s"."f" and s.f name f */
    size_t start = 0;
    bool inq = false;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '"')
            inq = !inq;
        else if (p[i] == '.' && !inq)
            start = i + 1;
    }
    size_t len = 0;
    bool star = false;
    for (size_t i = start; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == '"')
            continue;
        if (star)
            return -1; /* '*' only at the end */
        if (ch == '*') {
            star = true;
            continue;
        }
        if (!(isalnum(ch) || ch == '_' || ch == '$' || ch >= 0x80))
            return -1;
        if (len >= ROUTER_NAME_MAX)
            return -2;
        out[len++] = (char)lower(ch);
    }
    if (len == 0)
        return -1;
    if (star)
        out[len++] = '*';
    out[len] = '\0';
    return (int)len;
}

/* Counts the comma-separated entries of a list (an upper bound on the names it adds). */
static size_t count_entries(const char *list)
{
    size_t n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    return n;
}

/* ------------------------------------------------------------------------------------ */
/* public                                                                               */
/* ------------------------------------------------------------------------------------ */

router_classifier *router_classifier_new(const char *extra)
{
    router_lex_global_init();
    size_t ndef = sizeof(fdefaults) / sizeof(fdefaults[0]);
    size_t nextra = extra ? count_entries(extra) : 0;
    size_t cap = 16;
    while (cap < 2 * (ndef + nextra))
        cap *= 2;
    router_classifier *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->scan_limit = ROUTER_DEFAULT_SCAN_LIMIT;
    c->exact_cap = cap;
    c->exact = calloc(cap, sizeof(*c->exact));
    c->prefix = calloc(ndef + nextra, sizeof(*c->prefix));
    if (c->exact == NULL || c->prefix == NULL) {
        router_classifier_free(c);
        return NULL;
    }
    for (size_t i = 0; i < ndef; i++)
        add_name(c, fdefaults[i].name, strlen(fdefaults[i].name), fdefaults[i].flags);
    for (const char *p = extra; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char name[ROUTER_NAME_MAX + 2];
        int len = normalise_entry(p, n, name);
        if (len < 0) {
            log_error("unsafe_functions: \"%.*s\" %s (expected names like my_func, "
                      "schema.my_func or my_prefix*, separated by commas)",
                      (int)n, p, len == -2 ? "is longer than 63 bytes" : "is not a function name");
            router_classifier_free(c);
            return NULL;
        }
        if (len > 0)
            add_name(c, name, (size_t)len, RF_UNSAFE);
        p = comma ? comma + 1 : p + n;
    }
    return c;
}

void router_classifier_free(router_classifier *c)
{
    if (c == NULL)
        return;
    free(c->exact);
    free(c->prefix);
    free(c);
}

void router_classifier_set_scan_limit(router_classifier *c, size_t bytes)
{
    if (bytes == 0)
        bytes = 1;
    if (bytes > UINT32_MAX)
        bytes = UINT32_MAX; /* token offsets are 32-bit */
    c->scan_limit = bytes;
}

unsigned router_funcs_lookup(const router_classifier *c, const char *name, size_t len)
{
    if (len == 0)
        return 0;
    unsigned char first = lower((unsigned char)name[0]);
    if (!(c->first_char[first >> 3] & (1u << (first & 7))))
        return 0;
    if (len > ROUTER_NAME_MAX)
        len = ROUTER_NAME_MAX; /* the server truncates identifiers the same way */
    size_t mask = c->exact_cap - 1;
    for (size_t h = fhash(name, len);; h++) {
        const struct router_fentry *e = &c->exact[h & mask];
        if (e->flags == 0)
            break;
        if (e->len != len)
            continue;
        size_t i = 0;
        while (i < len && lower((unsigned char)name[i]) == (unsigned char)e->name[i])
            i++;
        if (i == len)
            return e->flags;
    }
    for (size_t k = 0; k < c->prefix_n; k++) {
        const struct router_fentry *e = &c->prefix[k];
        if (e->len > len)
            continue;
        size_t i = 0;
        while (i < e->len && lower((unsigned char)name[i]) == (unsigned char)e->name[i])
            i++;
        if (i == e->len)
            return e->flags;
    }
    return 0;
}

bool router_function_is_unsafe(const router_classifier *c, const char *name, size_t len)
{
    return (router_funcs_lookup(c, name, len) & RF_UNSAFE) != 0;
}
