/*
 * Test oracle: parses a query with PostgreSQL's real grammar (libpg_query, JSON parse tree)
 * and decides from the tree, without any of router/'s code, what design.md §2 says about it.
 *
 * Safe statements: SelectStmt without lockingClause / intoClause / Insert-Update-Delete-Merge
 * nodes anywhere and without unsafe FuncCall; VariableShowStmt; ExplainStmt of such a
 * SelectStmt without analyze (or analyze false); VariableSetStmt except those a hot standby
 * refuses (transaction read-write, serializable, snapshot import); TransactionStmt BEGIN /
 * START with READ ONLY and without SERIALIZABLE, COMMIT, ROLLBACK, SAVEPOINT, RELEASE,
 * ROLLBACK TO. Everything else is not safe.
 */
#include "tests/router/oracle.h"

#include <ctype.h>
#include <jansson.h>
#include <pg_query.h>
#include <stdio.h>
#include <string.h>

/* Function names as PostgreSQL compares them (quoted names keep their case). */
static const char *const exact_unsafe[] = {
    "nextval",
    "setval",
    "currval",
    "lastval",
    "txid_current",
    "pg_current_xact_id",
    "pg_notify",
    "set_config",
    "lowrite",
    "loread",
    "pg_current_wal_lsn",
    "pg_current_wal_insert_lsn",
    "pg_current_wal_flush_lsn",
    "pg_switch_wal",
    "pg_drop_replication_slot",
    "pg_replication_slot_advance",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_import_system_collations",
    "timestamp_id",
};
static const char *const prefix_unsafe[] = {
    "pg_advisory_", "pg_try_advisory_",       "lo_",           "dblink", "pg_create_", "pg_copy_",
    "pg_logical_",  "pg_replication_origin_", "pg_stat_reset",
};
static const char *const pin_funcs[] = {"pg_advisory_lock", "pg_advisory_lock_shared",
                                        "pg_try_advisory_lock", "pg_try_advisory_lock_shared",
                                        "set_config"};

static struct {
    char name[64];
    bool prefix;
} extra[32];
static int nextra;

void oracle_init(const char *list)
{
    nextra = 0;
    for (const char *p = list; p && *p && nextra < 32;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char item[64] = {0};
        size_t len = 0;
        bool quoted = false;
        for (size_t i = 0; i < n; i++) {
            char ch = p[i];
            if (ch == '"') {
                quoted = true;
                continue;
            }
            if (isspace((unsigned char)ch))
                continue;
            if (ch == '.') {
                len = 0; /* keep the last component */
                continue;
            }
            if (len < sizeof(item) - 1)
                item[len++] = ch;
        }
        item[len] = '\0';
        if (len > 0) {
            bool prefix = item[len - 1] == '*';
            if (prefix)
                item[len - 1] = '\0';
            if (!quoted)
                for (char *s = item; *s; s++)
                    *s = (char)tolower((unsigned char)*s);
            strcpy(extra[nextra].name, item);
            extra[nextra].prefix = prefix;
            nextra++;
        }
        p = comma ? comma + 1 : p + n;
    }
}

static bool in_list(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, list[i]) == 0)
            return true;
    return false;
}

static bool func_unsafe(const char *name)
{
    if (in_list(name, exact_unsafe, sizeof(exact_unsafe) / sizeof(exact_unsafe[0])))
        return true;
    for (size_t i = 0; i < sizeof(prefix_unsafe) / sizeof(prefix_unsafe[0]); i++)
        if (strncmp(name, prefix_unsafe[i], strlen(prefix_unsafe[i])) == 0)
            return true;
    for (int i = 0; i < nextra; i++) {
        if (extra[i].prefix ? strncmp(name, extra[i].name, strlen(extra[i].name)) == 0
                            : strcmp(name, extra[i].name) == 0)
            return true;
    }
    return false;
}

/* What a walk over a subtree found. */
typedef struct facts {
    bool lock, into, into_temp, dml, unsafe, pin, unpin;
    char func[64];
} facts;

static const char *sval(json_t *string_node)
{
    json_t *s = json_object_get(json_object_get(string_node, "String"), "sval");
    return json_is_string(s) ? json_string_value(s) : "";
}

static bool rel_is_temp(json_t *rel)
{
    const char *pers = json_string_value(json_object_get(rel, "relpersistence"));
    const char *schema = json_string_value(json_object_get(rel, "schemaname"));
    return (pers && strcmp(pers, "t") == 0) || (schema && strcmp(schema, "pg_temp") == 0);
}

static void walk(json_t *node, facts *f)
{
    if (json_is_array(node)) {
        size_t i;
        json_t *v;
        json_array_foreach(node, i, v) walk(v, f);
        return;
    }
    if (!json_is_object(node))
        return;
    const char *key;
    json_t *v;
    json_object_foreach(node, key, v)
    {
        if (strcmp(key, "FuncCall") == 0) {
            json_t *names = json_object_get(v, "funcname");
            size_t n = json_array_size(names);
            const char *name = n ? sval(json_array_get(names, n - 1)) : "";
            if (func_unsafe(name)) {
                f->unsafe = true;
                snprintf(f->func, sizeof(f->func), "%s", name);
            }
            if (in_list(name, pin_funcs, sizeof(pin_funcs) / sizeof(pin_funcs[0])))
                f->pin = true;
            if (strcmp(name, "pg_advisory_unlock_all") == 0)
                f->unpin = true;
        } else if (strcmp(key, "lockingClause") == 0 && json_array_size(v) > 0) {
            f->lock = true;
        } else if (strcmp(key, "intoClause") == 0) {
            f->into = true;
            if (rel_is_temp(json_object_get(v, "rel")))
                f->into_temp = true;
        } else if (strcmp(key, "InsertStmt") == 0 || strcmp(key, "UpdateStmt") == 0 ||
                   strcmp(key, "DeleteStmt") == 0 || strcmp(key, "MergeStmt") == 0) {
            f->dml = true;
        }
        walk(v, f);
    }
}

/* Text of a constant (A_Const sval, ival, or a bare String), "" when none. */
static const char *const_text(json_t *arg, char *buf, size_t cap)
{
    json_t *c = json_object_get(arg, "A_Const");
    if (c) {
        json_t *s = json_object_get(json_object_get(c, "sval"), "sval");
        if (json_is_string(s))
            return json_string_value(s);
        json_t *iv = json_object_get(c, "ival");
        if (iv) {
            json_t *i = json_object_get(iv, "ival");
            snprintf(buf, cap, "%lld", i ? (long long)json_integer_value(i) : 0LL);
            return buf;
        }
        json_t *b = json_object_get(c, "boolval");
        if (b) {
            json_t *bv = json_object_get(b, "boolval");
            return json_is_true(bv) ? "true" : "false";
        }
    }
    json_t *s = json_object_get(json_object_get(arg, "String"), "sval");
    return json_is_string(s) ? json_string_value(s) : "";
}

static bool text_true(const char *v)
{
    return strcasecmp(v, "on") == 0 || strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0 ||
           strcasecmp(v, "yes") == 0 || strcasecmp(v, "t") == 0;
}

/* Options of BEGIN / SET TRANSACTION: read_only (-1 not given), serializable. */
static void txn_options(json_t *opts, int *read_only, bool *serializable)
{
    size_t i;
    json_t *o;
    char buf[32];
    json_array_foreach(opts, i, o)
    {
        json_t *d = json_object_get(o, "DefElem");
        const char *name = json_string_value(json_object_get(d, "defname"));
        const char *val = const_text(json_object_get(d, "arg"), buf, sizeof(buf));
        if (name && strcmp(name, "transaction_read_only") == 0)
            *read_only = text_true(val);
        if (name && strcmp(name, "transaction_isolation") == 0 &&
            strcasecmp(val, "serializable") == 0)
            *serializable = true;
    }
}

/* Judges one VariableSetStmt; returns safety. */
static bool judge_set(json_t *b, oracle_result *r, char *why, size_t cap)
{
    const char *kind = json_string_value(json_object_get(b, "kind"));
    const char *name = json_string_value(json_object_get(b, "name"));
    bool local = json_is_true(json_object_get(b, "is_local"));
    json_t *args = json_object_get(b, "args");
    char buf[32];
    const char *val =
        json_array_size(args) ? const_text(json_array_get(args, 0), buf, sizeof(buf)) : "";
    if (!kind)
        kind = "";
    if (!name)
        name = "";
    if (strncmp(name, "tusk.", 5) == 0) {
        r->tusk = true;
        return true;
    }
    if (strcmp(kind, "VAR_SET_MULTI") == 0) {
        int ro = -1;
        bool ser = false;
        txn_options(args, &ro, &ser);
        if (strcmp(name, "TRANSACTION SNAPSHOT") == 0) {
            snprintf(why, cap, "SET TRANSACTION SNAPSHOT");
            return false;
        }
        if (strcmp(name, "TRANSACTION") == 0) {
            if (ro == 0 || ser) {
                snprintf(why, cap, "SET TRANSACTION read write or serializable");
                return false;
            }
            return true;
        }
        /* SESSION CHARACTERISTICS */
        if (!local)
            r->sets = true;
        if (ser) {
            if (!local)
                r->pins = true;
            snprintf(why, cap, "session characteristics serializable");
            return false;
        }
        return true;
    }
    if (strcmp(kind, "VAR_RESET_ALL") == 0) {
        r->sets = true;
        r->unpins = true; /* set_config() values and a serializable default go */
        return true;
    }
    bool reset = strcmp(kind, "VAR_RESET") == 0;
    bool deflt = strcmp(kind, "VAR_SET_DEFAULT") == 0;
    if (strcmp(name, "transaction_read_only") == 0) {
        if (!reset && (deflt || !text_true(val))) {
            snprintf(why, cap, "SET transaction_read_only off");
            return false;
        }
        return true;
    }
    if (strcmp(name, "transaction_isolation") == 0) {
        if (!reset && !deflt && strcasecmp(val, "serializable") == 0) {
            snprintf(why, cap, "SET transaction_isolation serializable");
            return false;
        }
        return true;
    }
    if (strncmp(name, "transaction_", 12) == 0)
        return true;
    if (!local)
        r->sets = true;
    if (strcmp(name, "default_transaction_isolation") == 0 && !reset && !deflt &&
        strcasecmp(val, "serializable") == 0) {
        if (!local)
            r->pins = true;
        snprintf(why, cap, "default isolation serializable");
        return local;
    }
    if (strcmp(name, "default_transaction_isolation") == 0 && !local)
        r->unpins = true; /* another level: a serializable default is gone */
    return true;
}

/* Judges one statement (type, body); returns safety. */
static bool judge_stmt(const char *type, json_t *b, oracle_result *r, char *why, size_t cap)
{
    facts f = {0};
    walk(b, &f);
    if (f.pin)
        r->pins = true;
    if (f.unpin)
        r->unpins = true;
    if (f.unsafe) {
        snprintf(why, cap, "calls %s()", f.func);
        /* keep going for the session flags */
    }
    bool safe = false;
    if (strcmp(type, "SelectStmt") == 0) {
        if (f.into_temp)
            r->pins = true;
        safe = !f.lock && !f.into && !f.dml;
        if (!safe)
            snprintf(why, cap, "select with %s",
                     f.lock   ? "locking clause"
                     : f.into ? "INTO"
                              : "data-modifying WITH");
    } else if (strcmp(type, "VariableShowStmt") == 0) {
        safe = true;
    } else if (strcmp(type, "ExplainStmt") == 0) {
        json_t *q = json_object_get(b, "query");
        bool analyze = false;
        size_t i;
        json_t *o;
        char buf[32];
        json_array_foreach(json_object_get(b, "options"), i, o)
        {
            json_t *d = json_object_get(o, "DefElem");
            const char *name = json_string_value(json_object_get(d, "defname"));
            json_t *arg = json_object_get(d, "arg");
            (void)arg;
            (void)buf;
            if (name && strcmp(name, "analyze") == 0)
                analyze = true; /* design.md: EXPLAIN (ANALYZE ...) is not replica-safe */
        }
        safe = !analyze && json_object_get(q, "SelectStmt") != NULL && !f.lock && !f.into && !f.dml;
        if (!safe)
            snprintf(why, cap, "explain %s", analyze ? "analyze" : "of a non-read");
    } else if (strcmp(type, "VariableSetStmt") == 0) {
        safe = judge_set(b, r, why, cap);
    } else if (strcmp(type, "ConstraintsSetStmt") == 0) {
        safe = true;
    } else if (strcmp(type, "TransactionStmt") == 0) {
        const char *kind = json_string_value(json_object_get(b, "kind"));
        if (!kind)
            kind = "";
        if (strcmp(kind, "TRANS_STMT_BEGIN") == 0 || strcmp(kind, "TRANS_STMT_START") == 0) {
            int ro = -1;
            bool ser = false;
            txn_options(json_object_get(b, "options"), &ro, &ser);
            r->txn_begin = true;
            safe = ro == 1 && !ser;
            if (!safe)
                snprintf(why, cap, "read-write or serializable transaction");
        } else if (strcmp(kind, "TRANS_STMT_COMMIT") == 0 ||
                   strcmp(kind, "TRANS_STMT_ROLLBACK") == 0) {
            r->txn_end = true;
            safe = true;
        } else if (strcmp(kind, "TRANS_STMT_PREPARE") == 0) {
            r->txn_end = true;
            snprintf(why, cap, "PREPARE TRANSACTION");
        } else if (strcmp(kind, "TRANS_STMT_SAVEPOINT") == 0 ||
                   strcmp(kind, "TRANS_STMT_RELEASE") == 0 ||
                   strcmp(kind, "TRANS_STMT_ROLLBACK_TO") == 0) {
            safe = true;
        } else {
            snprintf(why, cap, "%s", kind);
        }
    } else {
        snprintf(why, cap, "%s", type);
        if (strcmp(type, "ListenStmt") == 0 || strcmp(type, "PrepareStmt") == 0 ||
            strcmp(type, "LoadStmt") == 0)
            r->pins = true;
        else if (strcmp(type, "CreateStmt") == 0 && rel_is_temp(json_object_get(b, "relation")))
            r->pins = true;
        else if (strcmp(type, "CreateTableAsStmt") == 0 &&
                 rel_is_temp(json_object_get(json_object_get(b, "into"), "rel")))
            r->pins = true;
        else if (strcmp(type, "ViewStmt") == 0 && rel_is_temp(json_object_get(b, "view")))
            r->pins = true;
        else if (strcmp(type, "CreateSeqStmt") == 0 && rel_is_temp(json_object_get(b, "sequence")))
            r->pins = true;
        else if (strcmp(type, "CreateFunctionStmt") == 0 &&
                 strcmp(sval(json_array_get(json_object_get(b, "funcname"), 0)), "pg_temp") == 0)
            r->pins = true;
        else if (strcmp(type, "DeclareCursorStmt") == 0 &&
                 (json_integer_value(json_object_get(b, "options")) & 0x20))
            r->pins = true;
        else if (strcmp(type, "UnlistenStmt") == 0 && !json_object_get(b, "conditionname"))
            r->unpins = true;
        else if (strcmp(type, "DeallocateStmt") == 0 && !json_object_get(b, "name"))
            r->unpins = true;
        else if (strcmp(type, "ClosePortalStmt") == 0 && !json_object_get(b, "portalname"))
            r->unpins = true;
        else if (strcmp(type, "DiscardStmt") == 0) {
            const char *t = json_string_value(json_object_get(b, "target"));
            if (t && (strcmp(t, "DISCARD_ALL") == 0 || strcmp(t, "DISCARD_TEMP") == 0))
                r->unpins = true;
        }
    }
    return safe && !f.unsafe;
}

void oracle_judge(const char *sql, oracle_result *r)
{
    memset(r, 0, sizeof(*r));
    PgQueryParseResult pr = pg_query_parse(sql);
    if (pr.error) {
        snprintf(r->why, sizeof(r->why), "parse error: %s", pr.error->message);
        pg_query_free_parse_result(pr);
        return;
    }
    json_error_t jerr;
    json_t *root = json_loads(pr.parse_tree, 0, &jerr);
    pg_query_free_parse_result(pr);
    if (root == NULL) {
        snprintf(r->why, sizeof(r->why), "bad JSON: %s", jerr.text);
        return;
    }
    r->parsed = true;
    r->safe = true;
    json_t *stmts = json_object_get(root, "stmts");
    size_t i;
    json_t *s;
    json_array_foreach(stmts, i, s)
    {
        json_t *stmt = json_object_get(s, "stmt");
        const char *type;
        json_t *body;
        json_object_foreach(stmt, type, body)
        {
            char why[200] = "";
            r->statements++;
            if (!judge_stmt(type, body, r, why, sizeof(why)) && r->safe) {
                r->safe = false;
                snprintf(r->why, sizeof(r->why), "%s", why);
            }
        }
    }
    json_decref(root);
}
