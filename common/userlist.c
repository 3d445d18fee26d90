/*
 * auth_file in pgbouncer's userlist.txt format: one `"user" "password-or-secret"` per line,
 * `""` standing for a quote inside a field, `;` (or `#`) comment lines and blank lines.
 * The list is parsed once into one string arena plus an array sorted by user name, so a lookup
 * is a binary search with no allocation (it runs once per client login) and 10k users cost
 * little more than the file itself. A user listed twice keeps the later line, as in pgbouncer.
 * Text after the second field is ignored, as pgbouncer ignores it.
 */
#include "common/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#define USERLIST_MAX_FILE (256u << 20)

typedef struct userlist_entry {
    const char *user;
    const char *secret;
    int lineno;
} userlist_entry;

struct userlist {
    char *arena; /* all unescaped fields, NUL-terminated */
    size_t arena_used;
    userlist_entry *entries;
    size_t count;
};

static userlist *parse(const char *text, size_t len, const char *name, char *err, size_t errlen);
static const char *read_field(const char *p, const char *end, char **out, const char **why);
static int entry_cmp(const void *a, const void *b);
static void fail_at(char *err, size_t errlen, const char *name, int lineno, const char *fmt, ...)
    TUSK_PRINTF(5, 6);

/* read an auth_file */
userlist *userlist_load(const char *path, char *err, size_t errlen)
{
    size_t len = 0;
    char *text = file_read_all(path, USERLIST_MAX_FILE, &len, err, errlen);
    if (!text)
        return NULL;
    userlist *list = parse(text, len, path, err, errlen);
    free(text);
    return list;
}

/* parse userlist text in memory */
userlist *userlist_parse(const char *text, char *err, size_t errlen)
{
    return parse(text, strlen(text), NULL, err, errlen);
}

/* the stored password or secret of user, NULL if absent */
const char *userlist_lookup(const userlist *list, const char *user)
{
    if (!list || !user)
        return NULL;
    size_t lo = 0;
    size_t hi = list->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(user, list->entries[mid].user);
        if (c == 0)
            return list->entries[mid].secret;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* number of distinct users */
size_t userlist_count(const userlist *list)
{
    return list ? list->count : 0;
}

/* release a list */
void userlist_free(userlist *list)
{
    if (!list)
        return;
    /* secrets live here: do not leave them in freed heap memory */
    OPENSSL_cleanse(list->arena, list->arena_used);
    free(list->arena);
    free(list->entries);
    free(list);
}

/* ---- internals ---- */

/* parse text; name is the file name for messages, NULL for a string */
static userlist *parse(const char *text, size_t len, const char *name, char *err, size_t errlen)
{
    userlist *list = calloc(1, sizeof(*list));
    /* unescaping never grows a field and each field gets one NUL in place of a quote */
    char *arena = malloc(len + 1);
    size_t cap = 64;
    userlist_entry *entries = malloc(cap * sizeof(*entries));
    if (!list || !arena || !entries) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (errlen)
        err[0] = '\0';
    char *o = arena;
    size_t n = 0;
    int lineno = 0;
    const char *p = text;
    const char *textend = text + len;
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        p += 3;
    while (p < textend) {
        lineno++;
        const char *nl = memchr(p, '\n', (size_t)(textend - p));
        const char *end = nl ? nl : textend;
        if (memchr(p, '\0', (size_t)(end - p))) {
            fail_at(err, errlen, name, lineno, "NUL byte in line");
            goto fail;
        }
        const char *q = p;
        while (q < end && (*q == ' ' || *q == '\t' || *q == '\r'))
            q++;
        if (q == end || *q == ';' || *q == '#') {
            p = end + 1;
            continue;
        }
        const char *why = NULL;
        char *user = o;
        q = read_field(q, end, &o, &why);
        if (!q) {
            fail_at(err, errlen, name, lineno, "user name: %s", why);
            goto fail;
        }
        if (user[0] == '\0') {
            fail_at(err, errlen, name, lineno, "empty user name");
            goto fail;
        }
        if (q < end && *q != ' ' && *q != '\t' && *q != '\r') {
            fail_at(err, errlen, name, lineno, "expected whitespace after the user name");
            goto fail;
        }
        while (q < end && (*q == ' ' || *q == '\t' || *q == '\r'))
            q++;
        char *secret = o;
        q = read_field(q, end, &o, &why);
        if (!q) {
            fail_at(err, errlen, name, lineno, "password: %s", why);
            goto fail;
        }
        if (q < end && *q != ' ' && *q != '\t' && *q != '\r') {
            fail_at(err, errlen, name, lineno, "expected whitespace after the password");
            goto fail;
        }
        if (n == cap) {
            cap *= 2;
            userlist_entry *ne = realloc(entries, cap * sizeof(*entries));
            if (!ne) {
                fail_at(err, errlen, name, lineno, "out of memory");
                goto fail;
            }
            entries = ne;
        }
        entries[n].user = user;
        entries[n].secret = secret;
        entries[n].lineno = lineno;
        n++;
        p = end + 1;
    }
    qsort(entries, n, sizeof(*entries), entry_cmp);
    /* drop duplicates, keeping the entry from the latest line (sorted last among equals) */
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n && strcmp(entries[i].user, entries[i + 1].user) == 0)
            continue;
        entries[w++] = entries[i];
    }
    list->arena = arena;
    list->entries = entries;
    list->count = w;
    list->arena_used = (size_t)(o - arena);
    return list;
fail:
    free(list);
    free(arena);
    free(entries);
    return NULL;
}

/* read one "quoted" field starting at p, unescaping "" into *out (advanced past its NUL);
 * returns the position after the closing quote, NULL with a reason */
static const char *read_field(const char *p, const char *end, char **out, const char **why)
{
    char *o = *out;
    if (p >= end || *p != '"') {
        *why = p >= end || *p == '\r' ? "missing (expected a double-quoted field)"
                                      : "expected a double-quoted field";
        return NULL;
    }
    p++;
    for (;;) {
        if (p >= end) {
            *why = "missing closing double quote";
            return NULL;
        }
        if (*p == '"') {
            if (p + 1 < end && p[1] == '"') {
                *o++ = '"';
                p += 2;
                continue;
            }
            p++;
            break;
        }
        *o++ = *p++;
    }
    *o++ = '\0';
    *out = o;
    return p;
}

/* order by user name, then by line so the latest duplicate sorts last */
static int entry_cmp(const void *a, const void *b)
{
    const userlist_entry *x = a;
    const userlist_entry *y = b;
    int c = strcmp(x->user, y->user);
    if (c)
        return c;
    return (x->lineno > y->lineno) - (x->lineno < y->lineno);
}

/* "file:line: message" or "line N: message" */
static void fail_at(char *err, size_t errlen, const char *name, int lineno, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (name)
        snprintf(err, errlen, "%s:%d: %s", name, lineno, msg);
    else
        snprintf(err, errlen, "line %d: %s", lineno, msg);
}
