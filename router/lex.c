/*
 * SQL tokenizer for the classifier. It follows PostgreSQL's own scanner (scan.l) where it
 * matters for safety: what is inside a string, a comment or a quoted identifier must never
 * be read as SQL, and what the server reads as SQL must never hide inside something we think
 * is a string. So it knows nested block comments, '' doubling, E'' backslash escapes (and
 * '...' with standard_conforming_strings off), string continuation over a newline (which
 * keeps the E'' mode of the first part), B''/X'' strings without doubling, U&'' and U&"",
 * dollar quoting with tags, and that "--" or "/" "*" end an operator. Everything it does
 * not care about (operators, casts, brackets) comes out as single-character tokens.
 *
 * Cost: each byte is looked at once (dollar-quote bodies through memmem, which is linear);
 * a word costs a lower-casing copy of at most 16 bytes and one hash probe.
 */
#include "router/internal.h"

#include <pthread.h>
#include <string.h>

/* ------------------------------------------------------------------------------------ */
/* keyword table                                                                        */
/* ------------------------------------------------------------------------------------ */

#define KW_MAXLEN 15
#define KW_SLOTS 512

static const char *const kw_names[KW__COUNT] = {
    [KW_ABORT] = "abort",
    [KW_ALL] = "all",
    [KW_ANALYSE] = "analyse",
    [KW_ANALYZE] = "analyze",
    [KW_AND] = "and",
    [KW_ANY] = "any",
    [KW_ARRAY] = "array",
    [KW_AS] = "as",
    [KW_ASC] = "asc",
    [KW_ASYMMETRIC] = "asymmetric",
    [KW_AUTHORIZATION] = "authorization",
    [KW_BEGIN] = "begin",
    [KW_BOTH] = "both",
    [KW_CASE] = "case",
    [KW_CAST] = "cast",
    [KW_CHARACTERISTICS] = "characteristics",
    [KW_CHECK] = "check",
    [KW_CLOSE] = "close",
    [KW_COLLATE] = "collate",
    [KW_COMMIT] = "commit",
    [KW_CONSTRAINTS] = "constraints",
    [KW_CREATE] = "create",
    [KW_DEALLOCATE] = "deallocate",
    [KW_DECLARE] = "declare",
    [KW_DEFAULT] = "default",
    [KW_DELETE] = "delete",
    [KW_DESC] = "desc",
    [KW_DISCARD] = "discard",
    [KW_DISTINCT] = "distinct",
    [KW_DO] = "do",
    [KW_ELSE] = "else",
    [KW_END] = "end",
    [KW_EXCEPT] = "except",
    [KW_EXPLAIN] = "explain",
    [KW_FALSE] = "false",
    [KW_FETCH] = "fetch",
    [KW_FOR] = "for",
    [KW_FROM] = "from",
    [KW_GLOBAL] = "global",
    [KW_GROUP] = "group",
    [KW_HAVING] = "having",
    [KW_HOLD] = "hold",
    [KW_IN] = "in",
    [KW_INSERT] = "insert",
    [KW_INTERSECT] = "intersect",
    [KW_INTO] = "into",
    [KW_ISOLATION] = "isolation",
    [KW_KEY] = "key",
    [KW_LATERAL] = "lateral",
    [KW_LEADING] = "leading",
    [KW_LIMIT] = "limit",
    [KW_LISTEN] = "listen",
    [KW_LOAD] = "load",
    [KW_LOCAL] = "local",
    [KW_MATERIALIZED] = "materialized",
    [KW_MERGE] = "merge",
    [KW_NAMES] = "names",
    [KW_NO] = "no",
    [KW_NOT] = "not",
    [KW_NULL] = "null",
    [KW_OFFSET] = "offset",
    [KW_ON] = "on",
    [KW_ONLY] = "only",
    [KW_OPTION] = "option",
    [KW_OR] = "or",
    [KW_ORDER] = "order",
    [KW_PLACING] = "placing",
    [KW_PREPARE] = "prepare",
    [KW_PREPARED] = "prepared",
    [KW_READ] = "read",
    [KW_RELEASE] = "release",
    [KW_REPLACE] = "replace",
    [KW_RESET] = "reset",
    [KW_RETURNING] = "returning",
    [KW_ROLE] = "role",
    [KW_ROLLBACK] = "rollback",
    [KW_SAVEPOINT] = "savepoint",
    [KW_SCHEMA] = "schema",
    [KW_SELECT] = "select",
    [KW_SERIALIZABLE] = "serializable",
    [KW_SESSION] = "session",
    [KW_SET] = "set",
    [KW_SHARE] = "share",
    [KW_SHOW] = "show",
    [KW_SNAPSHOT] = "snapshot",
    [KW_SOME] = "some",
    [KW_START] = "start",
    [KW_SYMMETRIC] = "symmetric",
    [KW_TABLE] = "table",
    [KW_TEMP] = "temp",
    [KW_TEMPORARY] = "temporary",
    [KW_THEN] = "then",
    [KW_TIME] = "time",
    [KW_TO] = "to",
    [KW_TRAILING] = "trailing",
    [KW_TRANSACTION] = "transaction",
    [KW_TRUE] = "true",
    [KW_UNION] = "union",
    [KW_UNLISTEN] = "unlisten",
    [KW_UNLOGGED] = "unlogged",
    [KW_UPDATE] = "update",
    [KW_USING] = "using",
    [KW_VALUES] = "values",
    [KW_VARIADIC] = "variadic",
    [KW_VERBOSE] = "verbose",
    [KW_WHEN] = "when",
    [KW_WHERE] = "where",
    [KW_WINDOW] = "window",
    [KW_WITH] = "with",
    [KW_WORK] = "work",
    [KW_WRITE] = "write",
    [KW_XML] = "xml",
    [KW_ZONE] = "zone",
};

/* PostgreSQL's fully reserved keywords among ours (kwlist.h RESERVED_KEYWORD): such a word
 * is never a column, table or CTE name unless quoted. */
static const bool kw_reserved[KW__COUNT] = {
    [KW_ALL] = true,        [KW_ANALYSE] = true,   [KW_ANALYZE] = true,   [KW_AND] = true,
    [KW_ANY] = true,        [KW_ARRAY] = true,     [KW_AS] = true,        [KW_ASC] = true,
    [KW_ASYMMETRIC] = true, [KW_BOTH] = true,      [KW_CASE] = true,      [KW_CAST] = true,
    [KW_CHECK] = true,      [KW_COLLATE] = true,   [KW_CREATE] = true,    [KW_DEFAULT] = true,
    [KW_DESC] = true,       [KW_DISTINCT] = true,  [KW_DO] = true,        [KW_ELSE] = true,
    [KW_END] = true,        [KW_EXCEPT] = true,    [KW_FALSE] = true,     [KW_FETCH] = true,
    [KW_FOR] = true,        [KW_FROM] = true,      [KW_GROUP] = true,     [KW_HAVING] = true,
    [KW_IN] = true,         [KW_INTERSECT] = true, [KW_INTO] = true,      [KW_LATERAL] = true,
    [KW_LEADING] = true,    [KW_LIMIT] = true,     [KW_NOT] = true,       [KW_NULL] = true,
    [KW_OFFSET] = true,     [KW_ON] = true,        [KW_ONLY] = true,      [KW_OR] = true,
    [KW_ORDER] = true,      [KW_PLACING] = true,   [KW_RETURNING] = true, [KW_SELECT] = true,
    [KW_SOME] = true,       [KW_SYMMETRIC] = true, [KW_TABLE] = true,     [KW_THEN] = true,
    [KW_TO] = true,         [KW_TRAILING] = true,  [KW_TRUE] = true,      [KW_UNION] = true,
    [KW_USING] = true,      [KW_VARIADIC] = true,  [KW_WHEN] = true,      [KW_WHERE] = true,
    [KW_WINDOW] = true,     [KW_WITH] = true,
};

static uint8_t kw_slot[KW_SLOTS]; /* keyword id or 0; open addressing */
static uint8_t kw_len[KW__COUNT];
static pthread_once_t kw_once = PTHREAD_ONCE_INIT;

/* Hash of a word from its length and three of its letters, case folded (| 0x20 folds
 * ASCII letters; keywords are letters only). Cheap, and collisions are few. */
static inline unsigned kw_hash(const unsigned char *w, size_t n)
{
    return ((unsigned)n * 97u + (w[0] | 0x20u) * 31u + (w[1] | 0x20u) * 7u +
            (w[n - 1] | 0x20u) * 131u) ^
           (unsigned)n << 5;
}

/* Fills kw_slot from kw_names. */
static void kw_build(void)
{
    for (int k = 1; k < KW__COUNT; k++) {
        const char *name = kw_names[k];
        kw_len[k] = (uint8_t)strlen(name);
        unsigned h = kw_hash((const unsigned char *)name, kw_len[k]);
        while (kw_slot[h & (KW_SLOTS - 1)] != 0)
            h++;
        kw_slot[h & (KW_SLOTS - 1)] = (uint8_t)k;
    }
}

void router_lex_global_init(void)
{
    (void)pthread_once(&kw_once, kw_build);
}

/* Finds the keyword id of an unquoted word, or KW_NONE. */
static uint8_t kw_lookup(const unsigned char *w, size_t n)
{
    if (n < 2 || n > KW_MAXLEN)
        return KW_NONE;
    for (unsigned h = kw_hash(w, n);; h++) {
        uint8_t k = kw_slot[h & (KW_SLOTS - 1)];
        if (k == 0)
            return KW_NONE;
        if (kw_len[k] != n)
            continue;
        const char *name = kw_names[k];
        size_t i = 0;
        while (i < n) { /* names are lower-case letters: fold only letters */
            unsigned ch = w[i];
            if (ch >= 'A' && ch <= 'Z')
                ch += 32;
            if (ch != (unsigned char)name[i])
                break;
            i++;
        }
        if (i == n)
            return k;
    }
}

/* ------------------------------------------------------------------------------------ */
/* character classes                                                                    */
/* ------------------------------------------------------------------------------------ */

/* Byte at i, or 0 past the end (the input holds no NUL, so 0 means "end"). */
static inline unsigned peek(const rlex *lx, size_t i)
{
    return i < lx->end ? lx->s[i] : 0;
}

/* Character classes, one table lookup per byte on the hot loops. */
enum { C_SPACE = 1, C_START = 2, C_DIGIT = 4, C_DOLLAR = 8 };

#define RANGE4(c, v) [c] = v, [c + 1] = v, [c + 2] = v, [c + 3] = v
#define RANGE16(c, v) RANGE4(c, v), RANGE4(c + 4, v), RANGE4(c + 8, v), RANGE4(c + 12, v)
#define RANGE64(c, v) RANGE16(c, v), RANGE16(c + 16, v), RANGE16(c + 32, v), RANGE16(c + 48, v)
static const uint8_t cclass[256] = {
    [' '] = C_SPACE,           ['\t'] = C_SPACE,
    ['\n'] = C_SPACE,          ['\r'] = C_SPACE,
    ['\f'] = C_SPACE,          ['\v'] = C_SPACE, /* PostgreSQL 16 and later */
    RANGE16('a', C_START),     RANGE4('a' + 16, C_START),
    RANGE4('a' + 20, C_START), ['y'] = C_START,
    ['z'] = C_START,           RANGE16('A', C_START),
    RANGE4('A' + 16, C_START), RANGE4('A' + 20, C_START),
    ['Y'] = C_START,           ['Z'] = C_START,
    ['_'] = C_START,           RANGE4('0', C_DIGIT),
    RANGE4('4', C_DIGIT),      ['8'] = C_DIGIT,
    ['9'] = C_DIGIT,           ['$'] = C_DOLLAR,
    RANGE64(0x80, C_START),    RANGE64(0xC0, C_START),
};

/* White space as PostgreSQL's scanner knows it (\v since PostgreSQL 16). */
static inline bool is_space(unsigned ch)
{
    return cclass[ch & 0xff] & C_SPACE;
}

static inline bool is_ident_start(unsigned ch)
{
    return cclass[ch & 0xff] & C_START;
}

static inline bool is_digit(unsigned ch)
{
    return cclass[ch & 0xff] & C_DIGIT;
}

/* Identifier continuation without '$' (dollar-quote tags). */
static inline bool is_tag_cont(unsigned ch)
{
    return cclass[ch & 0xff] & (C_START | C_DIGIT);
}

/* ------------------------------------------------------------------------------------ */
/* comments and the override                                                           */
/* ------------------------------------------------------------------------------------ */

/* Compares a comment's text with "tusk:primary" / "tusk:replica", spaces and case aside. */
static router_override comment_override(const unsigned char *p, size_t n)
{
    while (n > 0 && is_space(p[0])) {
        p++;
        n--;
    }
    while (n > 0 && is_space(p[n - 1]))
        n--;
    if (n != 12 || strncasecmp((const char *)p, "tusk:", 5) != 0)
        return ROUTER_OVERRIDE_NONE;
    if (strncasecmp((const char *)p + 5, "primary", 7) == 0)
        return ROUTER_OVERRIDE_PRIMARY;
    if (strncasecmp((const char *)p + 5, "replica", 7) == 0)
        return ROUTER_OVERRIDE_REPLICA;
    return ROUTER_OVERRIDE_NONE;
}

/* Notes the override of a comment met before the first token; the first one wins. */
static void leading_comment(rlex *lx, size_t from, size_t to)
{
    if (lx->started || lx->override != ROUTER_OVERRIDE_NONE)
        return;
    lx->override = comment_override(lx->s + from, to - from);
}

/* Position of the end of line (the \n or \r) at or after i, or the end. */
static size_t line_end(const rlex *lx, size_t i)
{
    while (i < lx->end && lx->s[i] != '\n' && lx->s[i] != '\r')
        i++;
    return i;
}

/* Skips white space and comments. */
static void skip_space(rlex *lx)
{
    for (;;) {
        unsigned ch = peek(lx, lx->pos);
        if (is_space(ch)) {
            lx->pos++;
        } else if (ch == '-' && peek(lx, lx->pos + 1) == '-') {
            size_t e = line_end(lx, lx->pos + 2);
            leading_comment(lx, lx->pos + 2, e);
            lx->pos = e;
        } else if (ch == '/' && peek(lx, lx->pos + 1) == '*') {
            size_t i = lx->pos + 2, depth = 1;
            while (depth > 0) {
                unsigned c = peek(lx, i);
                if (c == 0) {
                    lx->broken = true; /* unterminated: the server rejects the query */
                    break;
                }
                if (c == '/' && peek(lx, i + 1) == '*') {
                    depth++;
                    i += 2;
                } else if (c == '*' && peek(lx, i + 1) == '/') {
                    depth--;
                    i += 2;
                } else {
                    i++;
                }
            }
            if (depth == 0)
                leading_comment(lx, lx->pos + 2, i - 2);
            lx->pos = i;
        } else {
            return;
        }
    }
}

/* ------------------------------------------------------------------------------------ */
/* strings                                                                              */
/* ------------------------------------------------------------------------------------ */

enum qmode { Q_PLAIN, Q_ESCAPE, Q_BITS };

/*
 * After a closing quote at i-1: if white space holding a newline (and -- comments) leads to
 * another quote, PostgreSQL glues the two strings together in the same mode. Returns the
 * position of that quote, or 0.
 */
static size_t continuation(const rlex *lx, size_t i)
{
    for (;;) { /* horizontal white space and -- comments */
        unsigned c = peek(lx, i);
        if (c == ' ' || c == '\t' || c == '\f')
            i++;
        else if (c == '-' && peek(lx, i + 1) == '-')
            i = line_end(lx, i + 2);
        else
            break;
    }
    if (peek(lx, i) != '\n' && peek(lx, i) != '\r')
        return 0;
    for (;;) { /* any white space, and -- comments that end in a newline */
        unsigned c = peek(lx, i);
        if (c == ' ' || c == '\t' || c == '\f' || c == '\n' || c == '\r') {
            i++;
        } else if (c == '-' && peek(lx, i + 1) == '-') {
            size_t e = line_end(lx, i + 2);
            if (e >= lx->end)
                return 0;
            i = e + 1;
        } else {
            break;
        }
    }
    return peek(lx, i) == '\'' ? i : 0;
}

/* Scans a quoted string whose opening quote is at q; returns the position after it. */
static size_t scan_string(rlex *lx, size_t q, enum qmode mode, uint8_t *flags)
{
    size_t i = q + 1;
    for (;;) {
        if (i >= lx->end) {
            lx->broken = true;
            return lx->end;
        }
        unsigned c = lx->s[i];
        if (c == '\\' && mode == Q_ESCAPE) {
            if (lx->mb_backslash && i > q + 1 && lx->s[i - 1] >= 0x80)
                lx->broken = true; /* maybe the second byte of a character, not an escape */
            *flags |= RTF_ESCAPES;
            i += 2;
            continue;
        }
        if (c != '\'') {
            i++;
            continue;
        }
        if (mode != Q_BITS && peek(lx, i + 1) == '\'') {
            *flags |= RTF_ESCAPES;
            i += 2;
            continue;
        }
        size_t next = continuation(lx, i + 1);
        if (next == 0)
            return i + 1;
        *flags |= RTF_ESCAPES;
        i = next + 1;
    }
}

/* Scans "identifier" with "" doubling; returns the position after it. */
static size_t scan_qident(rlex *lx, size_t q, uint8_t *flags)
{
    size_t i = q + 1;
    for (;;) {
        const unsigned char *dq = memchr(lx->s + i, '"', lx->end - i);
        if (dq == NULL) {
            lx->broken = true;
            return lx->end;
        }
        i = (size_t)(dq - lx->s);
        if (peek(lx, i + 1) != '"')
            return i + 1;
        *flags |= RTF_ESCAPES;
        i += 2;
    }
}

/*
 * At a '$' that is not a parameter: a dollar quote $tag$...$tag$ if a valid opening
 * delimiter is here. Returns the position after the closing delimiter, or 0 when this '$'
 * opens nothing (PostgreSQL then reads it as an operator character).
 */
static size_t scan_dollar(rlex *lx, size_t d)
{
    size_t i = d + 1;
    if (peek(lx, i) != '$') {
        if (!is_ident_start(peek(lx, i)))
            return 0;
        while (is_tag_cont(peek(lx, i)))
            i++;
        if (peek(lx, i) != '$')
            return 0;
    }
    size_t dlen = i - d + 1;
    size_t body = i + 1;
    const unsigned char *close = memmem(lx->s + body, lx->end - body, lx->s + d, dlen);
    if (close == NULL) {
        lx->broken = true;
        return lx->end;
    }
    return (size_t)(close - lx->s) + dlen;
}

/* ------------------------------------------------------------------------------------ */
/* public                                                                               */
/* ------------------------------------------------------------------------------------ */

void router_lex_init(rlex *lx, const char *s, size_t len, unsigned flags)
{
    lx->s = (const unsigned char *)s;
    lx->pos = 0;
    lx->end = len;
    lx->scs_off = (flags & ROUTER_FLAG_SCS_OFF) != 0;
    lx->mb_backslash = (flags & ROUTER_FLAG_CLIENT_MB_BACKSLASH) != 0;
    lx->broken = false;
    lx->started = false;
    lx->override = ROUTER_OVERRIDE_NONE;
}

void router_lex_next(rlex *lx, rtok *t)
{
    skip_space(lx);
    size_t p = lx->pos;
    t->off = (uint32_t)p;
    t->kw = KW_NONE;
    t->flags = 0;
    if (p >= lx->end) {
        t->type = RT_EOF;
        t->len = 0;
        return;
    }
    lx->started = true;
    unsigned c = lx->s[p];
    unsigned c1 = peek(lx, p + 1);
    size_t e = p + 1;
    switch (c) {
    case '(':
        t->type = RT_LPAREN;
        break;
    case ')':
        t->type = RT_RPAREN;
        break;
    case ';':
        t->type = RT_SEMI;
        break;
    case ',':
        t->type = RT_COMMA;
        break;
    case '\'':
        t->type = RT_STRING;
        e = scan_string(lx, p, lx->scs_off ? Q_ESCAPE : Q_PLAIN, &t->flags);
        break;
    case '"':
        t->type = RT_QIDENT;
        e = scan_qident(lx, p, &t->flags);
        break;
    case '$':
        if (is_digit(c1)) {
            t->type = RT_PARAM;
            while (is_digit(peek(lx, e)))
                e++;
        } else {
            size_t de = scan_dollar(lx, p);
            if (de != 0) {
                t->type = RT_STRING;
                t->flags = RTF_ESCAPES;
                e = de;
            } else {
                t->type = RT_OP;
            }
        }
        break;
    case '.':
        if (!is_digit(c1)) {
            t->type = RT_DOT;
            break;
        }
        /* .5 is a number */
        /* fall through */
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
        t->type = RT_NUMBER;
        e = p;
        while (is_digit(peek(lx, e)))
            e++;
        if (peek(lx, e) == '.' && peek(lx, e + 1) != '.') {
            e++;
            while (is_digit(peek(lx, e)))
                e++;
        }
        if (peek(lx, e) == 'e' || peek(lx, e) == 'E') {
            size_t x = e + 1;
            if (peek(lx, x) == '+' || peek(lx, x) == '-')
                x++;
            if (is_digit(peek(lx, x))) {
                e = x;
                while (is_digit(peek(lx, e)))
                    e++;
            }
        }
        /* "1for" is 1 then FOR to PostgreSQL 15: the next token starts right here */
        break;
    default:
        if (!is_ident_start(c)) {
            t->type = RT_OP;
            break;
        }
        if (c1 == '\'') {
            if (c == 'e' || c == 'E') {
                t->type = RT_STRING;
                t->flags = RTF_ESCAPES;
                e = scan_string(lx, p + 1, Q_ESCAPE, &t->flags);
                break;
            }
            if (c == 'b' || c == 'B' || c == 'x' || c == 'X') {
                t->type = RT_STRING;
                e = scan_string(lx, p + 1, Q_BITS, &t->flags);
                break;
            }
            if (c == 'n' || c == 'N') {
                t->type = RT_STRING;
                e = scan_string(lx, p + 1, lx->scs_off ? Q_ESCAPE : Q_PLAIN, &t->flags);
                break;
            }
        }
        if ((c == 'u' || c == 'U') && c1 == '&') {
            unsigned c2 = peek(lx, p + 2);
            if (c2 == '\'') {
                t->type = RT_STRING;
                t->flags = RTF_UNICODE | RTF_ESCAPES;
                e = scan_string(lx, p + 2, Q_PLAIN, &t->flags);
                break;
            }
            if (c2 == '"') {
                t->type = RT_QIDENT;
                t->flags = RTF_UNICODE | RTF_ESCAPES;
                e = scan_qident(lx, p + 2, &t->flags);
                break;
            }
        }
        t->type = RT_WORD;
        while (e < lx->end && (cclass[lx->s[e]] & (C_START | C_DIGIT | C_DOLLAR)))
            e++;
        t->kw = kw_lookup(lx->s + p, e - p);
        if (kw_reserved[t->kw])
            t->flags = RTF_RESERVED;
        break;
    }
    t->len = (uint32_t)(e - p);
    lx->pos = e;
}
