/*
 * router internals: the SQL tokenizer (lex.c) and the unsafe-function set (funcs.c) that the
 * classifier (classify.c) is built on. Not part of the folder's interface.
 */
#ifndef TUSK_ROUTER_INTERNAL_H
#define TUSK_ROUTER_INTERNAL_H

#include "router/router.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- tokens (lex.c) ---- */

enum rtok_type {
    RT_EOF = 0,
    RT_WORD,   /* unquoted identifier or keyword; kw says which keyword, if one we care about */
    RT_QIDENT, /* "quoted identifier" or U&"..." (never a keyword) */
    RT_STRING, /* '...', E'...', B'...', X'...', N'...', U&'...', $tag$...$tag$ */
    RT_NUMBER,
    RT_PARAM, /* $1 */
    RT_LPAREN,
    RT_RPAREN,
    RT_SEMI,
    RT_DOT,
    RT_COMMA,
    RT_OP /* any other single character: operators, '=', '*', '[', ':', ... */
};

/* Token flags. */
enum {
    RTF_UNICODE = 1u << 0,  /* U&"..." or U&'...': may contain escapes, its text is not literal */
    RTF_ESCAPES = 1u << 1,  /* a string whose text needs decoding: E'', '' or "" inside,
                               continuation over a newline, dollar quoting */
    RTF_RESERVED = 1u << 2, /* a fully reserved keyword: never a column or table name */
};

/* Keywords the classifier looks at (a subset of PostgreSQL's), sorted. */
enum router_kw {
    KW_NONE = 0,
    KW_ABORT,
    KW_ALL,
    KW_ANALYSE,
    KW_ANALYZE,
    KW_AND,
    KW_ANY,
    KW_ARRAY,
    KW_AS,
    KW_ASC,
    KW_ASYMMETRIC,
    KW_AUTHORIZATION,
    KW_BEGIN,
    KW_BOTH,
    KW_CASE,
    KW_CAST,
    KW_CHARACTERISTICS,
    KW_CHECK,
    KW_CLOSE,
    KW_COLLATE,
    KW_COMMIT,
    KW_CONSTRAINTS,
    KW_CREATE,
    KW_DEALLOCATE,
    KW_DECLARE,
    KW_DEFAULT,
    KW_DELETE,
    KW_DESC,
    KW_DISCARD,
    KW_DISTINCT,
    KW_DO,
    KW_ELSE,
    KW_END,
    KW_EXCEPT,
    KW_EXPLAIN,
    KW_FALSE,
    KW_FETCH,
    KW_FOR,
    KW_FROM,
    KW_GLOBAL,
    KW_GROUP,
    KW_HAVING,
    KW_HOLD,
    KW_IN,
    KW_INSERT,
    KW_INTERSECT,
    KW_INTO,
    KW_ISOLATION,
    KW_KEY,
    KW_LATERAL,
    KW_LEADING,
    KW_LIMIT,
    KW_LISTEN,
    KW_LOAD,
    KW_LOCAL,
    KW_MATERIALIZED,
    KW_MERGE,
    KW_NAMES,
    KW_NO,
    KW_NOT,
    KW_NULL,
    KW_OFFSET,
    KW_ON,
    KW_ONLY,
    KW_OPTION,
    KW_OR,
    KW_ORDER,
    KW_PLACING,
    KW_PREPARE,
    KW_PREPARED,
    KW_READ,
    KW_RELEASE,
    KW_REPLACE,
    KW_RESET,
    KW_RETURNING,
    KW_ROLE,
    KW_ROLLBACK,
    KW_SAVEPOINT,
    KW_SCHEMA,
    KW_SELECT,
    KW_SERIALIZABLE,
    KW_SESSION,
    KW_SET,
    KW_SHARE,
    KW_SHOW,
    KW_SNAPSHOT,
    KW_SOME,
    KW_START,
    KW_SYMMETRIC,
    KW_TABLE,
    KW_TEMP,
    KW_TEMPORARY,
    KW_THEN,
    KW_TIME,
    KW_TO,
    KW_TRAILING,
    KW_TRANSACTION,
    KW_TRUE,
    KW_UNION,
    KW_UNLISTEN,
    KW_UNLOGGED,
    KW_UPDATE,
    KW_USING,
    KW_VALUES,
    KW_VARIADIC,
    KW_VERBOSE,
    KW_WHEN,
    KW_WHERE,
    KW_WINDOW,
    KW_WITH,
    KW_WORK,
    KW_WRITE,
    KW_XML,
    KW_ZONE,
    KW__COUNT
};

typedef struct rtok {
    uint8_t type;  /* enum rtok_type */
    uint8_t kw;    /* enum router_kw, RT_WORD only */
    uint8_t flags; /* RTF_* */
    uint32_t off;  /* byte offset of the token in the query */
    uint32_t len;  /* bytes, quotes and prefixes included */
} rtok;

typedef struct rlex {
    const unsigned char *s;
    size_t pos, end;
    bool scs_off;      /* '...' strings take backslash escapes */
    bool mb_backslash; /* a '\' right after a byte >= 0x80 may belong to that character */
    bool broken;       /* an unterminated string, comment, quoted identifier or dollar quote */
    bool started;      /* a token was seen: later comments cannot carry the override */
    router_override override;
} rlex;

/* Starts tokenizing s[0..len) (len must not exceed UINT32_MAX; s must hold no NUL byte);
 * flags are ROUTER_FLAG_*. */
void router_lex_init(rlex *lx, const char *s, size_t len, unsigned flags);

/* Produces the next token (RT_EOF at the end), skipping white space and comments. */
void router_lex_next(rlex *lx, rtok *t);

/* Builds the keyword table once per process (thread-safe). */
void router_lex_global_init(void);

/* ---- unsafe functions (funcs.c) ---- */

/* Longest name PostgreSQL keeps (NAMEDATALEN - 1); longer identifiers are truncated. */
#define ROUTER_NAME_MAX 63

/* What calling a function means for routing. */
enum {
    RF_UNSAFE = 1u << 0,  /* not on a hot standby / must see the primary's state */
    RF_PIN = 1u << 1,     /* leaves session state behind (session advisory lock, set_config) */
    RF_UNPIN = 1u << 2,   /* releases such state (pg_advisory_unlock_all) */
    RF_SETTING = 1u << 3, /* with RF_PIN: the state is a setting (set_config), not a lock */
};

/* One name of the unsafe set: an exact name or a prefix. */
struct router_fentry {
    uint8_t len;
    uint8_t flags;                  /* RF_*, 0 for an empty slot */
    char name[ROUTER_NAME_MAX + 1]; /* lower case */
};

struct router_classifier {
    size_t scan_limit;
    uint8_t first_char[32];      /* bitmap of the first bytes of all names and prefixes */
    struct router_fentry *exact; /* open addressing, exact_cap slots (a power of two) */
    size_t exact_cap, exact_n;
    struct router_fentry *prefix; /* tried in order when no exact name matched */
    size_t prefix_n;
};

/* Looks up a function name (bytes as written, case-folded here, already unquoted). */
unsigned router_funcs_lookup(const router_classifier *c, const char *name, size_t len);

#endif
