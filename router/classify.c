/*
 * Query classifier: decides from the text of a query whether a hot standby may run it, and
 * what it does to the transaction and the session, so the proxy can route it (design.md §2).
 *
 * How: the tokenizer (lex.c) hands out tokens once, left to right. Each top-level statement
 * keeps its first HEAD_MAX tokens (enough to tell BEGIN from SET TRANSACTION from CREATE TEMP)
 * and a handful of facts gathered while its tokens stream past: a locking clause (FOR
 * UPDATE/SHARE/NO KEY UPDATE/KEY SHARE), INTO, a data-modifying keyword (a writable WITH),
 * a call of an unsafe function ("name(" with name on the list, schema or quotes aside),
 * READ ONLY / READ WRITE / SERIALIZABLE, WITH HOLD, pg_temp, and EXPLAIN's options. At the
 * statement's end the head decides what kind of statement it was and the facts decide the
 * verdict. Nothing is allocated; the state is a few hundred bytes on the stack.
 *
 * The rule of thumb is "when in doubt, primary": a word that could be a keyword counts as
 * one, unless PostgreSQL's grammar cannot read it as one where it stands: after '.' or AS
 * it is a name, and INSERT / UPDATE / DELETE / MERGE only begin a statement in the few
 * places dml_can_start() lists (so "select update from t" stays a read). Words in strings,
 * comments and quoted identifiers never count: the tokenizer never hands them out as words.
 * tests/router/classify_oracle_test.c checks all this against PostgreSQL's own parser.
 */
#include "router/internal.h"

#include <string.h>
#include <strings.h>

#define HEAD_MAX 12

/* Where EXPLAIN's statement stands while its tokens stream past. */
enum explain_state {
    EX_NONE,  /* not an EXPLAIN, or its statement began */
    EX_START, /* after EXPLAIN [ANALYZE] [VERBOSE] or after its option list */
    EX_PAREN, /* right after the '(' that follows EXPLAIN: options, or a (SELECT ...) */
    EX_OPTS,  /* inside the option list */
};

/* One top-level statement while it is read. */
typedef struct stmt {
    int ntok;  /* tokens so far */
    int nhead; /* tokens kept in head */
    int depth; /* parenthesis depth */
    rtok head[HEAD_MAX];
    const rtok *prev;             /* previous token (an RT_EOF token before the first) */
    uint8_t prev2_type, prev2_kw; /* the token before prev */
    bool prev_active;             /* prev is a word read as a keyword */
    /* facts */
    bool lock, into, into_temp, dml, unsafe_func, pg_temp, with_hold;
    uint16_t pins, unpins; /* ROUTER_PIN_* from function calls */
    bool ro, rw, serializable, semi_in_parens, unbalanced;
    uint8_t into_state; /* 1 right after INTO, 2 after INTO GLOBAL|LOCAL */
    uint8_t explain;    /* enum explain_state */
    bool explain_analyze, explain_read;
} stmt;

/* What earlier statements of the same query left behind. */
typedef struct qctx {
    const router_classifier *c;
    const char *sql;
    bool session_ro; /* default_transaction_read_only as far as we know */
    /* The default the current transaction started with: a SET of the session default
     * applies from the next transaction, which starts at the first statement after a
     * COMMIT / ROLLBACK in the string (xact_ended) */
    bool xact_ro;
    bool xact_ended;
    bool set_name_set; /* out->set_name was filled by an earlier statement */
} qctx;

/* ------------------------------------------------------------------------------------ */
/* small helpers                                                                        */
/* ------------------------------------------------------------------------------------ */

/* Keyword of head token i, or KW_NONE past the kept head. */
static inline uint8_t hkw(const stmt *st, int i)
{
    return (i < st->nhead && st->head[i].type == RT_WORD) ? st->head[i].kw : KW_NONE;
}

static inline bool is_read_kw(uint8_t kw)
{
    return kw == KW_SELECT || kw == KW_VALUES || kw == KW_TABLE || kw == KW_WITH;
}

/*
 * Copies the text of a word, a quoted identifier or a simple string into buf (at most cap-1
 * bytes, NUL-terminated). Returns the length, or -1 when the token's text cannot be known
 * cheaply (U&, escapes in strings, too long for buf when truncating is not allowed).
 */
static int token_text(const qctx *q, const rtok *t, char *buf, size_t cap, bool truncate)
{
    const char *p = q->sql + t->off;
    size_t n = t->len;
    if (t->flags & RTF_UNICODE)
        return -1;
    if (t->type == RT_QIDENT) {
        p++;
        n = n >= 2 ? n - 2 : 0;
    } else if (t->type == RT_STRING) {
        if ((t->flags & RTF_ESCAPES) || p[0] != '\'' || n < 2)
            return -1;
        p++;
        n -= 2;
    } else if (t->type != RT_WORD && t->type != RT_NUMBER) {
        return -1;
    }
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '"' && t->type == RT_QIDENT)
            i++; /* "" stands for one " */
        if (len + 1 >= cap) {
            if (!truncate)
                return -1;
            break;
        }
        buf[len++] = p[i];
    }
    buf[len] = '\0';
    return (int)len;
}

/* Lower-cases ASCII letters in place, as PostgreSQL folds unquoted names. */
static void fold(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s + 32);
}

/* PostgreSQL's parse_bool: 1 true, 0 false, -1 not a boolean (unique prefixes count). */
static int parse_bool(const char *v)
{
    size_t n = strlen(v);
    size_t n2 = n > 2 ? n : 2;
    switch (v[0]) {
    case 't':
    case 'T':
        return strncasecmp(v, "true", n) == 0 ? 1 : -1;
    case 'f':
    case 'F':
        return strncasecmp(v, "false", n) == 0 ? 0 : -1;
    case 'y':
    case 'Y':
        return strncasecmp(v, "yes", n) == 0 ? 1 : -1;
    case 'n':
    case 'N':
        return strncasecmp(v, "no", n) == 0 ? 0 : -1;
    case 'o':
    case 'O':
        if (strncasecmp(v, "on", n2) == 0)
            return 1;
        return strncasecmp(v, "off", n2) == 0 ? 0 : -1;
    case '1':
        return n == 1 ? 1 : -1;
    case '0':
        return n == 1 ? 0 : -1;
    default:
        return -1;
    }
}

/* ------------------------------------------------------------------------------------ */
/* streaming: one token of the current statement                                        */
/* ------------------------------------------------------------------------------------ */

/* "name(": looks the name up in the unsafe set. */
static void function_call(const qctx *q, stmt *st, const rtok *name)
{
    unsigned f;
    if (name->type == RT_WORD) {
        f = router_funcs_lookup(q->c, q->sql + name->off, name->len);
    } else {
        char buf[ROUTER_NAME_MAX + 1];
        int n = token_text(q, name, buf, sizeof(buf), true);
        if (n < 0) {
            st->unsafe_func = true; /* U&"...": any name could hide in its escapes */
            return;
        }
        f = router_funcs_lookup(q->c, buf, (size_t)n);
    }
    if (f & RF_UNSAFE)
        st->unsafe_func = true;
    if (f & RF_PIN)
        st->pins |= (f & RF_SETTING) ? ROUTER_PIN_SETTING : ROUTER_PIN_ADVISORY;
    if (f & RF_UNPIN)
        st->unpins |= ROUTER_PIN_ADVISORY;
}

/* Whether a word or quoted identifier names pg_temp (pg_temp, pg_temp_3, any case). */
static bool is_pg_temp(const qctx *q, const rtok *t)
{
    size_t skip = t->type == RT_QIDENT;
    const char *p = q->sql + t->off + skip;
    return t->len >= 7 + skip && (p[0] == 'p' || p[0] == 'P') && strncasecmp(p, "pg_temp", 7) == 0;
}

/* Whether a word or quoted identifier in EXPLAIN's option list could be ANALYZE. */
static bool is_analyze_option(const qctx *q, const rtok *t, uint8_t kw)
{
    if (kw == KW_ANALYZE || kw == KW_ANALYSE)
        return true;
    if (t->type != RT_QIDENT)
        return false;
    char buf[16];
    int n = token_text(q, t, buf, sizeof(buf), false);
    if (n < 0)
        return (t->flags & RTF_UNICODE) != 0;
    return strcasecmp(buf, "analyze") == 0 || strcasecmp(buf, "analyse") == 0;
}

/*
 * Whether INSERT / UPDATE / DELETE / MERGE may begin a data-modifying statement here, given
 * the two tokens before it (pv, then pv2 before that). Inside a read that happens only:
 *   - in a WITH query's body:   name AS [[NOT] MATERIALIZED] ( INSERT ...
 *   - after the WITH clause:    ... ) DELETE ...
 *   - after SEARCH / CYCLE:     ... SEARCH DEPTH FIRST BY a SET col UPDATE ...
 *                               ... CYCLE a SET mark USING path MERGE ...
 * Anywhere else (after an operator, a comma, "(" of a call, ORDER BY, SELECT, ...) the word
 * is a column named like the keyword, and counting it would only send the query to the
 * primary for nothing. The statement's first word is judged by finish(), not here.
 */
static bool dml_can_start(const rtok *pv, uint8_t pv2_type, uint8_t pv2_kw)
{
    switch (pv->type) {
    case RT_EOF:
    case RT_RPAREN:
        return true;
    case RT_LPAREN:
        return pv2_type == RT_WORD && (pv2_kw == KW_AS || pv2_kw == KW_MATERIALIZED);
    case RT_WORD:
    case RT_QIDENT:
        if (pv->flags & RTF_RESERVED)
            return false;
        return pv2_type == RT_WORD && (pv2_kw == KW_SET || pv2_kw == KW_USING);
    default:
        return false;
    }
}

/* Takes in one token of the statement (not the ';' that ends it). */
static void feed(const qctx *q, stmt *st, const rtok *t)
{
    const rtok *pv = st->prev;
    /* after '.' or AS a word is a name or a label, never a keyword */
    bool active = t->type == RT_WORD && t->kw != KW_NONE && pv->type != RT_DOT &&
                  !(st->prev_active && pv->kw == KW_AS);
    uint8_t kw = active ? t->kw : KW_NONE;
    uint8_t pkw = st->prev_active ? pv->kw : KW_NONE;

    if (st->nhead < HEAD_MAX)
        st->head[st->nhead++] = *t;
    st->ntok++;

    switch (t->type) {
    case RT_LPAREN:
        st->depth++;
        if (pv->type == RT_WORD || pv->type == RT_QIDENT)
            function_call(q, st, pv);
        break;
    case RT_RPAREN:
        if (st->depth == 0)
            st->unbalanced = true;
        else
            st->depth--;
        break;
    case RT_SEMI:
        st->semi_in_parens = true; /* only CREATE RULE does that; we do not follow it */
        break;
    case RT_WORD:
        if (pv->type == RT_QIDENT && (pv->flags & RTF_UNICODE) && t->len == 7 &&
            strncasecmp(q->sql + t->off, "uescape", 7) == 0)
            st->unsafe_func = true; /* U&"..." UESCAPE '!' may spell any name */
        /* fall through */
    case RT_QIDENT:
        if (is_pg_temp(q, t))
            st->pg_temp = true;
        break;
    default:
        break;
    }

    switch (kw) {
    case KW_UPDATE:
    case KW_SHARE:
    case KW_NO:
    case KW_KEY:
        if (pkw == KW_FOR)
            st->lock = true;
        if (kw == KW_UPDATE && dml_can_start(pv, st->prev2_type, st->prev2_kw))
            st->dml = true;
        break;
    case KW_INSERT:
    case KW_DELETE:
    case KW_MERGE:
        if (dml_can_start(pv, st->prev2_type, st->prev2_kw))
            st->dml = true;
        break;
    case KW_INTO:
        st->into = true;
        break;
    case KW_HOLD:
        if (pkw == KW_WITH)
            st->with_hold = true;
        break;
    case KW_ONLY:
        if (pkw == KW_READ)
            st->ro = true;
        break;
    case KW_WRITE:
        if (pkw == KW_READ)
            st->rw = true;
        break;
    case KW_SERIALIZABLE:
        st->serializable = true;
        break;
    default:
        break;
    }

    /* INTO [GLOBAL|LOCAL] TEMP|TEMPORARY, or INTO pg_temp.x */
    if (st->into_state != 0 && kw != KW_INTO) {
        if (st->into_state == 1 && (kw == KW_GLOBAL || kw == KW_LOCAL)) {
            st->into_state = 2;
        } else {
            if (kw == KW_TEMP || kw == KW_TEMPORARY ||
                ((t->type == RT_WORD || t->type == RT_QIDENT) && is_pg_temp(q, t)))
                st->into_temp = true;
            st->into_state = 0;
        }
    }
    if (kw == KW_INTO)
        st->into_state = 1;

    /* EXPLAIN [ANALYZE] [VERBOSE] stmt | EXPLAIN (option, ...) stmt */
    switch (st->explain) {
    case EX_NONE:
        if (st->ntok == 1 && kw == KW_EXPLAIN)
            st->explain = EX_START;
        break;
    case EX_START:
        if (t->type == RT_LPAREN) {
            st->explain = EX_PAREN;
        } else if (kw == KW_ANALYZE || kw == KW_ANALYSE) {
            st->explain_analyze = true;
        } else if (kw != KW_VERBOSE) {
            st->explain_read = is_read_kw(kw);
            st->explain = EX_NONE;
        }
        break;
    case EX_PAREN:
        if (t->type == RT_LPAREN || is_read_kw(kw)) {
            st->explain_read = true; /* EXPLAIN (SELECT ...) */
            st->explain = EX_NONE;
            break;
        }
        st->explain = EX_OPTS;
        /* fall through */
    case EX_OPTS:
        if ((t->type == RT_WORD || t->type == RT_QIDENT) && st->depth == 1 &&
            is_analyze_option(q, t, kw))
            st->explain_analyze = true;
        if (t->type == RT_RPAREN && st->depth == 0)
            st->explain = EX_START;
        break;
    default:
        break;
    }

    st->prev2_type = pv->type;
    st->prev2_kw = pv->kw;
    st->prev = t; /* t stays valid until the next token but one (see router_classify_ex) */
    st->prev_active = active;
}

/* ------------------------------------------------------------------------------------ */
/* SET / RESET                                                                          */
/* ------------------------------------------------------------------------------------ */

/*
 * Reads a parameter name (a.b."c") from head token *i on into buf, lower case (GUC names
 * compare without case). Returns its length; -1 when no name starts there (not SQL); -2 when
 * its spelling cannot be known (U&, longer than buf, running past the kept head). *i moves
 * past the name.
 */
static int read_name(const qctx *q, const stmt *st, int *i, char *buf, size_t cap)
{
    size_t len = 0;
    bool ok = true;
    if (*i >= st->nhead || (st->head[*i].type != RT_WORD && st->head[*i].type != RT_QIDENT))
        return -1;
    for (;;) {
        if (*i >= st->nhead)
            return st->ntok > st->nhead ? -2 : -1; /* past the head, or "a." and nothing */
        const rtok *t = &st->head[*i];
        if (t->type != RT_WORD && t->type != RT_QIDENT)
            return -1; /* a dot not followed by a name */
        char part[ROUTER_NAME_MAX + 1];
        int n = token_text(q, t, part, sizeof(part), true);
        if (n < 0 || len + (size_t)n + 2 > cap) {
            ok = false;
        } else {
            fold(part);
            memcpy(buf + len, part, (size_t)n);
            len += (size_t)n;
        }
        (*i)++;
        if (*i < st->nhead && st->head[*i].type == RT_DOT) {
            if (ok)
                buf[len++] = '.';
            (*i)++;
            continue;
        }
        break;
    }
    buf[len] = '\0';
    return ok ? (int)len : -2;
}

/* Records the first session-level SET / RESET's name. */
static void note_set(qctx *q, router_class *out, const char *name)
{
    out->sets_session_state = true;
    if (q->set_name_set)
        return;
    q->set_name_set = true;
    size_t n = strlen(name);
    if (n >= sizeof(out->set_name))
        n = 0;
    memcpy(out->set_name, name, n);
    out->set_name[n] = '\0';
}

/* Marks a malformed tusk.* setting. */
static void tusk_bad(router_class *out, const char *why)
{
    out->tusk_set = ROUTER_TUSK_BAD;
    out->tusk_route = ROUTER_OVERRIDE_NONE;
    out->tusk_min_lsn = 0;
    out->tusk_error = why;
}

/*
 * SET / RESET tusk.*: value is the head index of the value (-1 for RESET, -2 for a form
 * without a value such as FROM CURRENT).
 */
static void tusk_setting(const qctx *q, const stmt *st, router_class *out, const char *name,
                         int value, bool local)
{
    if (out->tusk_set != ROUTER_TUSK_NONE) {
        tusk_bad(out, "only one tusk.* setting per query");
        return;
    }
    bool route = strcmp(name, "tusk.route") == 0;
    bool lsn = strcmp(name, "tusk.min_lsn") == 0;
    if (!route && !lsn) {
        tusk_bad(out, "unknown tusk setting: tusk.route and tusk.min_lsn exist");
        return;
    }
    if (local) {
        tusk_bad(out, "SET LOCAL is not supported for tusk.* settings");
        return;
    }
    if (value == -2 || (value >= 0 && st->ntok != value + 1) || value >= st->nhead) {
        tusk_bad(out, route ? "tusk.route takes one value: primary, replica or auto"
                            : "tusk.min_lsn takes one value, an LSN such as '16/B374D848'");
        return;
    }
    const rtok *v = value >= 0 ? &st->head[value] : NULL;
    bool is_default = v == NULL || (v->type == RT_WORD && v->kw == KW_DEFAULT);
    char buf[40];
    int n = (v && !is_default && (v->type == RT_WORD || v->type == RT_STRING))
                ? token_text(q, v, buf, sizeof(buf), false)
                : -1;
    if (route) {
        out->tusk_set = ROUTER_TUSK_ROUTE;
        if (is_default || (n >= 0 && strcasecmp(buf, "auto") == 0))
            out->tusk_route = ROUTER_OVERRIDE_NONE;
        else if (n >= 0 && strcasecmp(buf, "primary") == 0)
            out->tusk_route = ROUTER_OVERRIDE_PRIMARY;
        else if (n >= 0 && strcasecmp(buf, "replica") == 0)
            out->tusk_route = ROUTER_OVERRIDE_REPLICA;
        else
            tusk_bad(out, "tusk.route must be primary, replica or auto");
    } else {
        out->tusk_set = ROUTER_TUSK_MIN_LSN;
        out->tusk_min_lsn = 0;
        if (!is_default &&
            (v->type != RT_STRING || n < 0 || !router_parse_lsn(buf, &out->tusk_min_lsn)))
            tusk_bad(out, "tusk.min_lsn must be an LSN such as '16/B374D848'");
    }
}

/* Isolation level text: true when it is (or could be) serializable. */
static bool value_serializable(const qctx *q, const stmt *st, int value)
{
    if (value < 0 || value >= st->nhead)
        return value != -1; /* unknown: assume the worst; RESET (-1) goes back to default */
    const rtok *v = &st->head[value];
    if (v->type == RT_WORD && (v->kw == KW_DEFAULT || v->kw == KW_SERIALIZABLE))
        return v->kw == KW_SERIALIZABLE;
    char buf[24];
    if (token_text(q, v, buf, sizeof(buf), false) < 0)
        return true;
    return strcasecmp(buf, "serializable") == 0;
}

/* Boolean value: 1, 0, or -1 when unknown. DEFAULT counts as off. */
static int value_bool(const qctx *q, const stmt *st, int value)
{
    if (value < 0 || value >= st->nhead)
        return value == -1 ? 0 : -1;
    const rtok *v = &st->head[value];
    if (v->type == RT_WORD && v->kw == KW_DEFAULT)
        return 0;
    char buf[16];
    if (token_text(q, v, buf, sizeof(buf), false) < 0)
        return -1;
    return parse_bool(buf);
}

/*
 * A generic SET name = value / RESET name. value: head index of the value, -1 for RESET,
 * -2 when the value is not known (FROM CURRENT). Returns whether a standby may run it.
 */
static bool generic_set(qctx *q, const stmt *st, router_class *out, const char *name, int value,
                        bool local)
{
    if (strncmp(name, "tusk.", 5) == 0) {
        tusk_setting(q, st, out, name, value, local);
        return true;
    }
    if (strcmp(name, "transaction_read_only") == 0) {
        int b = value_bool(q, st, value);
        if (b == 1)
            out->txn_read_only = true;
        if (value == -1)
            return true; /* RESET: back to the session default, fine on a standby */
        if (b != 1)
            out->txn_read_write = true;
        return b == 1;
    }
    if (strcmp(name, "transaction_isolation") == 0)
        return !value_serializable(q, st, value);
    if (strncmp(name, "transaction_", 12) == 0)
        return true; /* transaction_deferrable: this transaction only */
    if (local)
        return true;
    note_set(q, out, name);
    if (strcmp(name, "default_transaction_read_only") == 0) {
        int b = value_bool(q, st, value);
        q->session_ro = b == 1; /* unknown counts as off: BEGIN then stays on the primary */
        out->default_read_only = b == 1 ? ROUTER_SETTING_ON : ROUTER_SETTING_OFF;
    } else if (strcmp(name, "default_transaction_isolation") == 0 &&
               value_serializable(q, st, value)) {
        out->pins |= ROUTER_PIN_SERIALIZABLE; /* a hot standby refuses serializable */
        return false;
    } else if (strcmp(name, "default_transaction_isolation") == 0) {
        out->unpins |= ROUTER_PIN_SERIALIZABLE;
    }
    return true;
}

/* SET ... ; returns whether a standby may run it. */
static bool set_stmt(qctx *q, const stmt *st, router_class *out)
{
    int i = 1;
    bool local = false;
    if (hkw(st, i) == KW_LOCAL) {
        local = true;
        i++;
    } else if (hkw(st, i) == KW_SESSION && hkw(st, i + 1) != KW_AUTHORIZATION &&
               hkw(st, i + 1) != KW_CHARACTERISTICS) {
        i++;
    }
    uint8_t k = hkw(st, i), k1 = hkw(st, i + 1);
    const char *special = NULL;
    if (k == KW_TRANSACTION) {
        if (k1 == KW_SNAPSHOT)
            return false; /* the snapshot lives on the server that exported it */
        if (st->ro && !st->rw)
            out->txn_read_only = true;
        if (st->rw)
            out->txn_read_write = true;
        return !st->rw && !st->serializable;
    }
    if (k == KW_SESSION && k1 == KW_CHARACTERISTICS) {
        if (local)
            return !st->serializable;
        note_set(q, out, "session_characteristics");
        if (st->ro || st->rw) {
            q->session_ro = st->ro && !st->rw;
            out->default_read_only = q->session_ro ? ROUTER_SETTING_ON : ROUTER_SETTING_OFF;
        }
        if (st->serializable)
            out->pins |= ROUTER_PIN_SERIALIZABLE;
        return !st->serializable;
    }
    if (k == KW_CONSTRAINTS && i == 1)
        return true;
    if (k == KW_TIME && k1 == KW_ZONE)
        special = "timezone";
    else if (k == KW_NAMES)
        special = "client_encoding";
    else if (k == KW_SCHEMA)
        special = "search_path";
    else if (k == KW_ROLE)
        special = "role";
    else if (k == KW_SESSION && k1 == KW_AUTHORIZATION)
        special = "session_authorization";
    else if (k == KW_XML && k1 == KW_OPTION)
        special = "xmloption";
    if (special != NULL) {
        if (!local)
            note_set(q, out, special);
        return true;
    }
    char name[64];
    int n = read_name(q, st, &i, name, sizeof(name));
    if (n == -1)
        return false; /* not SET syntax */
    int value;
    const rtok *sep = i < st->nhead ? &st->head[i] : NULL;
    if (sep == NULL) {
        if (st->ntok <= i)
            return false; /* SET name, and nothing else: not SQL */
        value = -2;       /* a name running past the head: its value is beyond it too */
    } else if (hkw(st, i) == KW_TO || (sep->type == RT_OP && q->sql[sep->off] == '=')) {
        if (st->ntok <= i + 1)
            return false; /* SET name = (nothing) */
        value = i + 1 < st->nhead ? i + 1 : -2;
    } else if (hkw(st, i) == KW_FROM) {
        value = -2; /* FROM CURRENT */
    } else {
        return false; /* not SET syntax */
    }
    if (n < 0) {
        if (!local)
            note_set(q, out, ""); /* session state all the same */
        return false;             /* but which parameter? keep it off the replicas */
    }
    return generic_set(q, st, out, name, value, local);
}

/* RESET ... ; returns whether a standby may run it (always: it only changes settings). */
static bool reset_stmt(qctx *q, const stmt *st, router_class *out)
{
    uint8_t k = hkw(st, 1), k1 = hkw(st, 2);
    if (k == KW_ALL && st->ntok == 2) {
        note_set(q, out, "");
        out->reset_all = true;
        out->unpins |= ROUTER_PIN_SETTING | ROUTER_PIN_SERIALIZABLE;
        q->session_ro = false;
        out->default_read_only = ROUTER_SETTING_OFF;
        return true;
    }
    if (k == KW_TIME && k1 == KW_ZONE) {
        note_set(q, out, "timezone");
        return true;
    }
    if (k == KW_SESSION && k1 == KW_AUTHORIZATION) {
        note_set(q, out, "session_authorization");
        return true;
    }
    if (k == KW_TRANSACTION && k1 == KW_ISOLATION)
        return true; /* this transaction only */
    int i = 1;
    char name[64];
    int n = read_name(q, st, &i, name, sizeof(name));
    if (n == -1)
        return false; /* not RESET syntax */
    if (n < 0) {
        note_set(q, out, "");
        return false;
    }
    if (strncmp(name, "tusk.", 5) == 0 && st->ntok != i) {
        tusk_bad(out, "RESET tusk.* takes no value");
        return true;
    }
    return generic_set(q, st, out, name, -1, false);
}

/* ------------------------------------------------------------------------------------ */
/* statement verdict                                                                    */
/* ------------------------------------------------------------------------------------ */

/* A read (SELECT ...): no lock, no INTO, no writable WITH, no unsafe call. */
static bool read_ok(const stmt *st)
{
    return !st->lock && !st->into && !st->dml && !st->unsafe_func;
}

/* Ends one statement: folds its verdict into out. */
static void finish(qctx *q, stmt *st, router_class *out)
{
    if (st->ntok == 0)
        return; /* empty statement (";;") */
    out->statements++;
    if (q->xact_ended) {
        q->xact_ro = q->session_ro;
        q->xact_ended = false;
    }
    if (st->semi_in_parens || st->depth != 0 || st->unbalanced)
        out->uncertain = true;
    out->pins |= st->pins;
    out->unpins |= st->unpins;

    int k0 = 0;
    while (k0 < st->nhead && st->head[k0].type == RT_LPAREN)
        k0++;
    uint8_t kw0 = hkw(st, k0), kw1 = hkw(st, k0 + 1);
    bool safe = false;
    if (k0 > 0) {
        if (is_read_kw(kw0)) { /* (SELECT ...) */
            safe = read_ok(st);
            if (st->into_temp)
                out->pins |= ROUTER_PIN_TEMP;
        }
    } else {
        switch (kw0) {
        case KW_SELECT:
        case KW_VALUES:
        case KW_TABLE:
        case KW_WITH:
        case KW_SHOW:
            safe = read_ok(st);
            if (st->into_temp)
                out->pins |= ROUTER_PIN_TEMP;
            break;
        case KW_EXPLAIN:
            safe = st->explain_read && !st->explain_analyze && read_ok(st);
            break;
        case KW_START:
            if (kw1 != KW_TRANSACTION)
                break;
            /* fall through */
        case KW_BEGIN: {
            bool ro = st->rw ? false : (st->ro || q->xact_ro);
            out->txn_begin = true;
            out->txn_read_only = ro;
            out->txn_read_write = st->rw;
            safe = ro && !st->serializable;
            break;
        }
        case KW_COMMIT:
        case KW_END:
        case KW_ABORT:
            if (kw1 == KW_PREPARED)
                break; /* two-phase commit: the primary's business */
            out->txn_end = true;
            q->xact_ended = true;
            safe = true;
            break;
        case KW_ROLLBACK:
            if (kw1 == KW_PREPARED)
                break;
            if (kw1 == KW_TO || hkw(st, 2) == KW_TO) {
                safe = true; /* ROLLBACK [WORK|TRANSACTION] TO [SAVEPOINT] x */
                break;
            }
            out->txn_end = true;
            q->xact_ended = true;
            safe = true;
            break;
        case KW_SAVEPOINT:
        case KW_RELEASE:
            safe = true;
            break;
        case KW_PREPARE:
            if (kw1 == KW_TRANSACTION) {
                out->txn_end = true;
                q->xact_ended = true;
            } else
                out->pins |= ROUTER_PIN_PREPARE; /* SQL-level prepared statement */
            break;
        case KW_SET:
            safe = set_stmt(q, st, out);
            break;
        case KW_RESET:
            safe = reset_stmt(q, st, out);
            break;
        case KW_LISTEN:
            out->pins |= ROUTER_PIN_LISTEN;
            break;
        case KW_LOAD:
            out->pins |= ROUTER_PIN_LOAD;
            break;
        case KW_UNLISTEN:
            if (st->nhead >= 2 && st->head[1].type == RT_OP && q->sql[st->head[1].off] == '*')
                out->unpins |= ROUTER_PIN_LISTEN;
            break;
        case KW_DEALLOCATE:
            if (kw1 == KW_ALL || (kw1 == KW_PREPARE && hkw(st, 2) == KW_ALL))
                out->unpins |= ROUTER_PIN_PREPARE;
            break;
        case KW_DISCARD:
            if (kw1 == KW_ALL) {
                out->unpins |= ROUTER_PIN_DISCARD_ALL;
                out->reset_all = true;
                q->session_ro = false;
                out->default_read_only = ROUTER_SETTING_OFF;
            } else if (kw1 == KW_TEMP || kw1 == KW_TEMPORARY) {
                out->unpins |= ROUTER_PIN_TEMP;
            }
            break;
        case KW_DECLARE:
            if (st->with_hold)
                out->pins |= ROUTER_PIN_CURSOR;
            break;
        case KW_CLOSE:
            if (kw1 == KW_ALL)
                out->unpins |= ROUTER_PIN_CURSOR;
            break;
        case KW_CREATE: {
            int i = 1;
            while (hkw(st, i) == KW_OR || hkw(st, i) == KW_REPLACE || hkw(st, i) == KW_GLOBAL ||
                   hkw(st, i) == KW_LOCAL)
                i++;
            if (hkw(st, i) == KW_TEMP || hkw(st, i) == KW_TEMPORARY || st->pg_temp)
                out->pins |= ROUTER_PIN_TEMP;
            break;
        }
        default:
            break; /* writes, DDL, utility commands, and anything we do not know */
        }
    }
    if (st->unsafe_func)
        safe = false;
    if (!safe)
        out->replica_safe = false;
}

/* ------------------------------------------------------------------------------------ */
/* public                                                                               */
/* ------------------------------------------------------------------------------------ */

/* One token into the shape hash: strings and numbers by their type only, everything else by
 * its text, 8 bytes at a time (a multiply-xorshift per word keeps it at a few ns a token). */
static inline uint64_t shape_mix(uint64_t h, const unsigned char *sql, const rtok *t)
{
    h = (h ^ t->type) * 0xff51afd7ed558ccdull;
    if (t->type == RT_STRING || t->type == RT_NUMBER || t->type == RT_PARAM)
        return h ^ (h >> 29);
    const unsigned char *p = sql + t->off;
    for (uint32_t n = t->len; n;) {
        uint64_t w = 0;
        uint32_t take = n < 8 ? n : 8;
        memcpy(&w, p, take);
        h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
        h ^= h >> 32;
        p += take;
        n -= take;
    }
    return h;
}

void router_classify_ex(const router_classifier *c, const char *sql, size_t len, unsigned flags,
                        router_class *out)
{
    memset(out, 0, sizeof(*out));
    out->replica_safe = true;
    if (sql == NULL)
        len = 0;
    const char *nul = len ? memchr(sql, '\0', len) : NULL;
    if (nul != NULL)
        len = (size_t)(nul - sql); /* the server stops reading there too */
    if (len > c->scan_limit) {
        len = c->scan_limit;
        out->truncated = true;
    }

    bool session_ro = (flags & ROUTER_FLAG_SESSION_READ_ONLY) != 0;
    qctx q = {.c = c, .sql = sql, .session_ro = session_ro, .xact_ro = session_ro};
    rlex lx;
    router_lex_init(&lx, sql, len, flags);
    /*
     * Tokens go into a ring of two, so that the previous one is still there when the next
     * arrives, and feed() reads fields rather than copying tokens: a struct copy right after
     * the tokenizer wrote the fields one by one would stall on store forwarding.
     */
    static const rtok none = {.type = RT_EOF};
    rtok ring[2];
    unsigned k = 0;
    stmt st;
    memset(&st, 0, sizeof(st));
    st.prev = &none;
    uint64_t shape = 0x9e3779b97f4a7c15ull;
    bool fingerprint = (flags & ROUTER_FLAG_FINGERPRINT) != 0;
    for (;; k ^= 1) {
        rtok *t = &ring[k];
        router_lex_next(&lx, t);
        if (t->type == RT_EOF)
            break;
        if (fingerprint)
            shape = shape_mix(shape, (const unsigned char *)sql, t);
        if (t->type == RT_SEMI && st.depth == 0) {
            finish(&q, &st, out);
            memset(&st, 0, sizeof(st));
            st.prev = &none;
            continue;
        }
        feed(&q, &st, t);
    }
    finish(&q, &st, out);

    out->override = lx.override;
    out->fingerprint = fingerprint ? shape | 1 : 0;
    if (lx.broken)
        out->uncertain = true;
    if (out->truncated) {
        out->uncertain = true;
        out->pins |= ROUTER_PIN_UNKNOWN;
    }
    out->pins_session = out->pins != 0;
    out->unpins_session = out->unpins != 0;
    if (out->tusk_set != ROUTER_TUSK_NONE && out->statements > 1)
        tusk_bad(out, "SET tusk.* must be sent alone, not with other statements");
    if (out->uncertain)
        out->replica_safe = false;
}

void router_classify(const router_classifier *c, const char *sql, size_t len, router_class *out)
{
    router_classify_ex(c, sql, len, 0, out);
}
