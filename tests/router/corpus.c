/*
 * SQL corpus: a small grammar-based generator (fixed seed, so every run sees the same
 * queries) that mixes reads, locking reads, writable CTEs, set operations, safe and unsafe
 * function calls (schema-qualified, quoted, odd case), writes, DDL, utility and session
 * commands, with comments and strings in odd places and several statements per query; and
 * hand-written queries as Mastodon (ActiveRecord), pgbench and drivers send them.
 */
#include "tests/router/corpus.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------ */
/* plumbing                                                                             */
/* ------------------------------------------------------------------------------------ */

uint64_t corpus_rand(corpus_rng *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

void corpus_add(corpus *c, const char *sql)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 1024;
        c->items = realloc(c->items, c->cap * sizeof(*c->items));
        if (c->items == NULL)
            abort();
    }
    c->items[c->n] = strdup(sql);
    if (c->items[c->n] == NULL)
        abort();
    c->n++;
}

void corpus_free(corpus *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->items[i]);
    free(c->items);
    c->items = NULL;
    c->n = c->cap = 0;
}

/* Generator state: the query being built and the random stream. */
typedef struct gen {
    corpus_rng rng;
    char *buf;
    size_t len, cap;
    int odd_case; /* percent of keywords written in mixed case */
} gen;

static unsigned rnd(gen *g, unsigned n)
{
    return (unsigned)(corpus_rand(&g->rng) % n);
}

/* True with probability pct percent. */
static int chance(gen *g, unsigned pct)
{
    return rnd(g, 100) < pct;
}

static void raw(gen *g, const char *s)
{
    size_t n = strlen(s);
    if (g->len + n + 1 > g->cap) {
        while (g->len + n + 1 > g->cap)
            g->cap = g->cap ? g->cap * 2 : 4096;
        g->buf = realloc(g->buf, g->cap);
        if (g->buf == NULL)
            abort();
    }
    memcpy(g->buf + g->len, s, n + 1);
    g->len += n;
}

static void rawf(gen *g, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    raw(g, tmp);
}

/* Comments that must never count: keywords, quotes and markers inside. */
static const char *const comments[] = {
    "/* insert into t values (1); */",
    "/* nested /* for update */ still; delete from x */",
    "-- delete from t; select 1 for update\n",
    "/* ' \" $$ $a$ */",
    "--'\n",
    "/**/",
    "/* tusk:replica */",
    "/* select nextval('s') */",
    "-- ;\n",
};

/* White space (or, now and then, a comment) between two tokens. */
static void sep(gen *g)
{
    if (g->len == 0)
        return;
    unsigned r = rnd(g, 100);
    if (r < 82)
        raw(g, " ");
    else if (r < 89)
        raw(g, "\n");
    else if (r < 92)
        raw(g, "\t ");
    else if (r < 95)
        raw(g, "  ");
    else {
        raw(g, " ");
        raw(g, comments[rnd(g, sizeof(comments) / sizeof(comments[0]))]);
        raw(g, " ");
    }
}

/* A keyword or fixed text, written after a separator, sometimes in odd case. */
static void kw(gen *g, const char *s)
{
    sep(g);
    if (!chance(g, (unsigned)g->odd_case) || strchr(s, '$') != NULL) {
        raw(g, s);
        return;
    }
    char tmp[256];
    size_t n = strlen(s);
    if (n >= sizeof(tmp))
        n = sizeof(tmp) - 1;
    int inq = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '\'' || ch == '"')
            inq = !inq;
        if (!inq && ch >= 'a' && ch <= 'z' && chance(g, 50))
            ch = (char)(ch - 32);
        else if (!inq && ch >= 'A' && ch <= 'Z' && chance(g, 50))
            ch = (char)(ch + 32);
        tmp[i] = ch;
    }
    tmp[n] = '\0';
    raw(g, tmp);
}

static const char *pick(gen *g, const char *const *list, size_t n)
{
    return list[rnd(g, (unsigned)n)];
}
#define PICK(g, arr) pick(g, arr, sizeof(arr) / sizeof(arr[0]))

/* ------------------------------------------------------------------------------------ */
/* names and literals                                                                   */
/* ------------------------------------------------------------------------------------ */

static const char *const tables[] = {
    "t1",           "t2",
    "accounts",     "statuses",
    "follows",      "public.accounts",
    "\"Statuses\"", "\"update\"",
    "s1.\"for\"",   "users",
    "mentions",     "pgbench_accounts",
    "blocks",       "\"select\"",
    "temp_data",    "public . statuses",
};

static const char *const columns[] = {
    "id",
    "a",
    "b",
    "name",
    "created_at",
    "account_id",
    "\"update\"",
    "\"for\"",
    "\"select\"",
    "t1.id",
    "x.\"into\"",
    "statuses.id",
    "\"Statuses\".\"Id\"",
    "visibility",
    "abalance",
    "\"delete\"",
    "reblog_of_id",
    "s.a",
    "t1 . b",
    "\"insert\"",
};

static const char *const strings[] = {
    "'abc'",
    "'it''s'",
    "'for update'",
    "'insert into t values (1); --'",
    "E'\\''",
    "E'a\\nb'",
    "E'\\\\'",
    "e'\\' ; delete from t; --'",
    "$$ dollar; with ; delete $$",
    "$a$ insert $b$ into $a$",
    "$tag$ 'quote' \" $tag$",
    "U&'\\0041'",
    "B'101'",
    "X'1F'",
    "N'nat'",
    "''",
    "'a'\n'b'",
    "'/* not a comment */'",
    "'-- not a comment'",
    "'select nextval(''s'')'",
    "'tusk:primary'",
    "'$$'",
};

static const char *const numbers[] = {"1", "0", "42", "3.14", "1e5", ".5", "10.", "$1", "$2"};

/* ------------------------------------------------------------------------------------ */
/* expressions                                                                          */
/* ------------------------------------------------------------------------------------ */

static void gen_select(gen *g, int depth, int top);
static void gen_expr(gen *g, int depth);

static const char *const safe_funcs[] = {
    "lower(%)",
    "upper(%)",
    "coalesce(%, %)",
    "count(*)",
    "count(distinct %)",
    "sum(%)",
    "max(%)",
    "now()",
    "date_trunc('day', %)",
    "length(%)",
    "substring(% from 1 for 3)",
    "substring(%, 1, 2)",
    "position('a' in %)",
    "extract(epoch from %)",
    "greatest(%, %)",
    "md5(%)",
    "abs(%)",
    "random()",
    "json_build_object('k', %)",
    "array_agg(% order by %)",
    "string_agg(%, ',')",
    "row_number() over (partition by % order by %)",
    "to_char(%, 'YYYY')",
    "pg_catalog.lower(%)",
    "\"lower\"(%)",
    "current_setting('search_path')",
    "pg_is_in_recovery()",
    "version()",
    "format('%%s', %)",
    "regexp_replace(%, 'a', 'b')",
    "trim(both ' ' from %)",
    "overlay(% placing 'y' from 1 for 2)",
    "nullif(%, %)",
    "left(%, 2)",
    "pg_typeof(%)",
    "pg_sleep(0)",
    "txid_current_snapshot()",
    "nextval_like(%)",
    "my_writer_reader(%)",
    "public.\"nextval\" + 1",
};

static const char *const unsafe_funcs[] = {
    "nextval('s')",
    "pg_catalog.nextval('s')",
    "\"nextval\"('s')",
    "NextVal('s')",
    "pg_catalog . nextval ('s')",
    "nextval /* c */ ('s')",
    "setval('s', 10)",
    "currval('s')",
    "lastval()",
    "pg_advisory_lock(1)",
    "pg_advisory_xact_lock(1)",
    "pg_try_advisory_lock(1)",
    "pg_try_advisory_xact_lock_shared(1)",
    "pg_advisory_unlock(1)",
    "pg_advisory_unlock_all()",
    "txid_current()",
    "pg_current_xact_id()",
    "pg_notify('ch', %)",
    "set_config('a.b', 'c', false)",
    "lo_import('/tmp/f')",
    "lo_unlink(1)",
    "lowrite(0, 'x')",
    "dblink('conn', 'select 1')",
    "dblink_exec('conn', 'delete from t')",
    "my_writer(%)",
    "public.my_writer()",
    "audit.log_event('x')",
    "log_anything(1)",
    "\"Bump_Counter\"(1)",
    "timestamp_id('statuses')",
    "pg_current_wal_lsn()",
    "\"pg_catalog\".\"setval\"('s', 1)",
};

/* Writes a function template, each % becoming an expression. */
static void gen_func(gen *g, const char *tpl, int depth)
{
    sep(g);
    for (const char *p = tpl; *p; p++) {
        if (*p == '%' && p[1] == '%') {
            raw(g, "%");
            p++;
        } else if (*p == '%') {
            gen_expr(g, depth + 1);
        } else {
            char ch[2] = {*p, 0};
            raw(g, ch);
        }
    }
}

static void gen_leaf(gen *g)
{
    unsigned r = rnd(g, 100);
    if (r < 55)
        kw(g, PICK(g, columns));
    else if (r < 75)
        kw(g, PICK(g, numbers));
    else if (r < 97)
        kw(g, PICK(g, strings));
    else
        kw(g, chance(g, 50) ? "update" : "\"nextval\""); /* a column named like a keyword */
}

/* An operand of an operator: a leaf, or an expression in parentheses. */
static void gen_operand(gen *g, int depth)
{
    if (chance(g, 50)) {
        gen_leaf(g);
        return;
    }
    kw(g, "(");
    gen_expr(g, depth + 1);
    kw(g, ")");
}

static void gen_expr(gen *g, int depth)
{
    if (depth > 3) {
        gen_leaf(g);
        return;
    }
    unsigned r = rnd(g, 100);
    if (r < 35) {
        gen_leaf(g);
    } else if (r < 50) {
        gen_func(g, chance(g, 82) ? PICK(g, safe_funcs) : PICK(g, unsafe_funcs), depth);
    } else if (r < 65) {
        static const char *const ops[] = {"+",  "-",  "*",   "=",  "<>",   "<",
                                          ">=", "||", "AND", "OR", "LIKE", "::text ||"};
        gen_operand(g, depth);
        kw(g, PICK(g, ops));
        gen_operand(g, depth);
    } else if (r < 70) {
        gen_operand(g, depth);
        kw(g, chance(g, 50) ? "IS NULL" : "IS NOT NULL");
    } else if (r < 73) {
        kw(g, "NOT");
        gen_operand(g, depth);
    } else if (r < 76) {
        gen_operand(g, depth);
        kw(g, "BETWEEN 1 AND 10");
    } else if (r < 80) {
        gen_operand(g, depth);
        kw(g, "IN (1, 2, 3)");
    } else if (r < 84) {
        gen_operand(g, depth);
        kw(g, "IN (");
        gen_select(g, depth + 1, 0);
        kw(g, ")");
    } else if (r < 84) {
        gen_expr(g, depth + 1);
        kw(g, "IN (");
        gen_select(g, depth + 1, 0);
        kw(g, ")");
    } else if (r < 88) {
        kw(g, chance(g, 80) ? "EXISTS (" : "NOT EXISTS (");
        gen_select(g, depth + 1, 0);
        kw(g, ")");
    } else if (r < 91) {
        kw(g, "(");
        gen_select(g, depth + 1, 0);
        kw(g, ")");
    } else if (r < 94) {
        kw(g, "CASE WHEN");
        gen_expr(g, depth + 1);
        kw(g, "THEN");
        gen_expr(g, depth + 1);
        kw(g, "ELSE");
        gen_expr(g, depth + 1);
        kw(g, "END");
    } else if (r < 96) {
        kw(g, "CAST(");
        gen_expr(g, depth + 1);
        kw(g, "AS int)");
    } else if (r < 98) {
        gen_leaf(g);
        kw(g, "::text");
    } else {
        gen_leaf(g);
        kw(g, "= ANY($1)");
    }
}

/* ------------------------------------------------------------------------------------ */
/* SELECT and friends                                                                   */
/* ------------------------------------------------------------------------------------ */

static void gen_from_item(gen *g, int depth)
{
    unsigned r = rnd(g, 100);
    if (r < 70 || depth > 2) {
        kw(g, PICK(g, tables));
        if (chance(g, 40))
            kw(g, chance(g, 50) ? "AS x" : "s");
    } else if (r < 85) {
        kw(g, chance(g, 20) ? "LATERAL (" : "(");
        gen_select(g, depth + 1, 0);
        kw(g, ") AS sub");
    } else if (r < 93) {
        static const char *const srf[] = {"generate_series(1, 10) g",
                                          "unnest(array[1, 2]) u",
                                          "ROWS FROM (generate_series(1, 2)) r",
                                          "nextval('s') n",
                                          "pg_catalog.generate_series(1,3) g",
                                          "json_each('{}') j"};
        kw(g, PICK(g, srf));
    } else {
        kw(g, "(VALUES (1), (2)) AS v(a)");
    }
}

static void gen_from(gen *g, int depth)
{
    kw(g, "FROM");
    gen_from_item(g, depth);
    int joins = (int)rnd(g, 3);
    for (int i = 0; i < joins; i++) {
        static const char *const jt[] = {"JOIN",       "LEFT JOIN", "INNER JOIN", "LEFT OUTER JOIN",
                                         "CROSS JOIN", ","};
        const char *j = PICK(g, jt);
        kw(g, j);
        gen_from_item(g, depth);
        if (strcmp(j, "CROSS JOIN") != 0 && strcmp(j, ",") != 0) {
            if (chance(g, 15)) {
                kw(g, "USING (id)");
            } else {
                kw(g, "ON");
                gen_expr(g, depth + 1);
            }
        }
    }
}

static void gen_lock(gen *g)
{
    static const char *const locks[] = {"FOR UPDATE",    "FOR SHARE",  "FOR NO KEY UPDATE",
                                        "FOR KEY SHARE", "for update", "FOR /* x */ UPDATE",
                                        "FOR\nSHARE"};
    kw(g, PICK(g, locks));
    if (chance(g, 25))
        kw(g, "OF t1");
    if (chance(g, 25))
        kw(g, chance(g, 50) ? "NOWAIT" : "SKIP LOCKED");
}

static void gen_dml_returning(gen *g, int depth);

static void gen_with(gen *g, int depth)
{
    kw(g, chance(g, 15) ? "WITH RECURSIVE" : "WITH");
    int n = 1 + (int)rnd(g, 2);
    for (int i = 0; i < n; i++) {
        if (i)
            kw(g, ",");
        rawf(g, " c%d", i);
        if (chance(g, 15))
            kw(g, "(a)");
        kw(g, "AS");
        if (chance(g, 10))
            kw(g, chance(g, 50) ? "MATERIALIZED" : "NOT MATERIALIZED");
        kw(g, "(");
        unsigned r = rnd(g, 100);
        if (r < 80)
            gen_select(g, depth + 1, 0);
        else if (r < 85)
            kw(g, "VALUES (1)");
        else
            gen_dml_returning(g, depth + 1);
        kw(g, ")");
        if (chance(g, 8)) {
            static const char *const sc[] = {
                "SEARCH DEPTH FIRST BY a SET ord", "SEARCH BREADTH FIRST BY a SET \"update\"",
                "SEARCH DEPTH FIRST BY a SET by", "CYCLE a SET is_cycle USING path",
                "CYCLE a SET mark TO 1 DEFAULT 0 USING by"};
            kw(g, PICK(g, sc));
        }
    }
}

static void gen_simple_select(gen *g, int depth, int top)
{
    kw(g, "SELECT");
    if (chance(g, 8))
        kw(g, chance(g, 50) ? "DISTINCT" : "DISTINCT ON (a)");
    int n = 1 + (int)rnd(g, 3);
    for (int i = 0; i < n; i++) {
        if (i)
            kw(g, ",");
        if (chance(g, 10)) {
            kw(g, chance(g, 50) ? "*" : "t1.*");
            continue;
        }
        gen_expr(g, depth + 1);
        if (chance(g, 20)) {
            static const char *const labels[] = {"AS x", "AS \"for\"",    "AS update", "AS into",
                                                 "y",    "AS \"delete\"", "AS select"};
            kw(g, PICK(g, labels));
        }
    }
    if (top && chance(g, 3)) {
        static const char *const intos[] = {"INTO new_t", "INTO TEMP tmp_t",
                                            "INTO TEMPORARY TABLE t9", "INTO UNLOGGED u_t",
                                            "INTO pg_temp.tt"};
        kw(g, PICK(g, intos));
    }
    if (chance(g, 85))
        gen_from(g, depth);
    if (chance(g, 60)) {
        kw(g, "WHERE");
        gen_expr(g, depth + 1);
    }
    if (chance(g, 12)) {
        kw(g, "GROUP BY 1");
        if (chance(g, 30)) {
            kw(g, "HAVING");
            gen_expr(g, depth + 1);
        }
    }
}

/* A SELECT (or VALUES / TABLE in a set operation); top: may carry INTO. */
static void gen_select(gen *g, int depth, int top)
{
    if (depth < 2 && chance(g, 12))
        gen_with(g, depth);
    if (depth < 3 && chance(g, 7)) {
        static const char *const setops[] = {"UNION", "UNION ALL", "INTERSECT", "EXCEPT"};
        kw(g, "(");
        gen_simple_select(g, depth + 1, 0);
        kw(g, ")");
        kw(g, PICK(g, setops));
        if (chance(g, 70)) {
            kw(g, "(");
            gen_simple_select(g, depth + 1, 0);
            kw(g, ")");
        } else {
            gen_simple_select(g, depth + 1, 0);
        }
    } else {
        gen_simple_select(g, depth, top);
    }
    if (chance(g, 30)) {
        kw(g, "ORDER BY");
        gen_expr(g, depth + 2);
        if (chance(g, 50))
            kw(g, chance(g, 50) ? "DESC" : "ASC NULLS LAST");
    }
    if (chance(g, 30)) {
        static const char *const lims[] = {"LIMIT 20", "LIMIT $2", "LIMIT 1 OFFSET 10",
                                           "FETCH FIRST 5 ROWS ONLY", "OFFSET 2 ROWS"};
        kw(g, PICK(g, lims));
    }
    if (chance(g, top ? 7 : 2))
        gen_lock(g);
}

/* ------------------------------------------------------------------------------------ */
/* writes                                                                               */
/* ------------------------------------------------------------------------------------ */

static void gen_insert(gen *g, int depth)
{
    kw(g, "INSERT INTO");
    kw(g, PICK(g, tables));
    if (chance(g, 50))
        kw(g, "(a, b)");
    if (chance(g, 70)) {
        kw(g, "VALUES (");
        gen_expr(g, depth + 2);
        kw(g, ",");
        gen_expr(g, depth + 2);
        kw(g, ")");
    } else {
        gen_select(g, depth + 1, 0);
    }
    if (chance(g, 20))
        kw(g, chance(g, 50) ? "ON CONFLICT (a) DO NOTHING"
                            : "ON CONFLICT (a) DO UPDATE SET b = excluded.b");
}

static void gen_update(gen *g, int depth)
{
    kw(g, "UPDATE");
    kw(g, PICK(g, tables));
    kw(g, "SET b =");
    gen_expr(g, depth + 2);
    if (chance(g, 20)) {
        kw(g, "FROM");
        gen_from_item(g, depth + 1);
    }
    if (chance(g, 70)) {
        kw(g, "WHERE");
        gen_expr(g, depth + 1);
    }
}

static void gen_delete(gen *g, int depth)
{
    kw(g, "DELETE FROM");
    kw(g, PICK(g, tables));
    if (chance(g, 15))
        kw(g, "USING t2");
    if (chance(g, 80)) {
        kw(g, "WHERE");
        gen_expr(g, depth + 1);
    }
}

static void gen_dml_returning(gen *g, int depth)
{
    unsigned r = rnd(g, 3);
    if (r == 0)
        gen_insert(g, depth);
    else if (r == 1)
        gen_update(g, depth);
    else
        gen_delete(g, depth);
    kw(g, chance(g, 50) ? "RETURNING *" : "RETURNING id");
}

static void gen_write(gen *g)
{
    if (chance(g, 15))
        gen_with(g, 0);
    unsigned r = rnd(g, 100);
    if (r < 35)
        gen_insert(g, 0);
    else if (r < 65)
        gen_update(g, 0);
    else if (r < 90)
        gen_delete(g, 0);
    else {
        kw(g, "MERGE INTO t1 USING t2 ON t1.id = t2.id WHEN MATCHED THEN UPDATE SET b = t2.b"
              " WHEN NOT MATCHED THEN INSERT (id, b) VALUES (t2.id, t2.b)");
        return;
    }
    if (chance(g, 25))
        kw(g, "RETURNING *");
}

/* ------------------------------------------------------------------------------------ */
/* everything else                                                                      */
/* ------------------------------------------------------------------------------------ */

static const char *const utility[] = {
    "CREATE TABLE x1 (a int, b text DEFAULT nextval('s'))",
    "CREATE TEMP TABLE tmp1 (a int)",
    "CREATE TEMPORARY TABLE tmp2 AS SELECT 1",
    "CREATE GLOBAL TEMPORARY TABLE tmp3 (a int)",
    "CREATE TEMP VIEW v1 AS SELECT 1",
    "CREATE TEMP SEQUENCE ts1",
    "CREATE TABLE pg_temp.t5 (a int)",
    "CREATE UNLOGGED TABLE u1 (a int)",
    "CREATE TABLE x2 AS SELECT * FROM t1",
    "CREATE INDEX CONCURRENTLY i1 ON t1 (a)",
    "CREATE UNIQUE INDEX i2 ON t1 USING btree (lower(b))",
    "ALTER TABLE t1 ADD COLUMN c int",
    "ALTER TABLE t1 RENAME COLUMN \"select\" TO sel",
    "DROP TABLE IF EXISTS t1, t2 CASCADE",
    "TRUNCATE t1 RESTART IDENTITY",
    "CREATE FUNCTION f1() RETURNS int LANGUAGE sql AS $$ select 1 $$",
    ("CREATE OR REPLACE FUNCTION f2() RETURNS int AS $body$ begin insert into t values (1); "
     "return 1; end $body$ LANGUAGE plpgsql"),
    "CREATE FUNCTION pg_temp.f3() RETURNS int AS 'select 1' LANGUAGE sql",
    "DO $$ begin perform 1; end $$",
    "DO LANGUAGE plpgsql $x$ begin delete from t; end $x$",
    "CALL proc1(1)",
    "LOCK TABLE t1 IN ACCESS EXCLUSIVE MODE",
    "LOCK t1",
    "VACUUM (ANALYZE) t1",
    "VACUUM FULL",
    "ANALYZE t1",
    "ANALYZE",
    "CLUSTER t1 USING i1",
    "REINDEX TABLE t1",
    "GRANT SELECT ON t1 TO r1",
    "REVOKE ALL ON t1 FROM PUBLIC",
    "COMMENT ON TABLE t1 IS 'for update; delete'",
    "REFRESH MATERIALIZED VIEW mv1",
    "CREATE MATERIALIZED VIEW mv1 AS SELECT 1",
    "CREATE SEQUENCE s9",
    "ALTER SEQUENCE s9 RESTART",
    "CHECKPOINT",
    "CREATE RULE r1 AS ON INSERT TO t1 DO INSTEAD (INSERT INTO t2 VALUES (1); DELETE FROM t3)",
    "COPY t1 TO STDOUT",
    "COPY t1 FROM STDIN",
    "COPY (SELECT 1) TO STDOUT WITH (FORMAT csv)",
    "NOTIFY ch1, 'payload'",
    "NOTIFY ch1",
    "LISTEN ch1",
    "LISTEN \"Channel\"",
    "UNLISTEN *",
    "UNLISTEN ch1",
    "PREPARE p1 AS SELECT 1",
    "PREPARE p2 (int) AS INSERT INTO t1 VALUES ($1)",
    "EXECUTE p1",
    "EXECUTE p2(1)",
    "DEALLOCATE p1",
    "DEALLOCATE ALL",
    "DEALLOCATE PREPARE ALL",
    "DECLARE c1 CURSOR FOR SELECT * FROM t1",
    "DECLARE c2 CURSOR WITH HOLD FOR SELECT 1",
    "DECLARE c3 NO SCROLL CURSOR WITHOUT HOLD FOR SELECT 1",
    "DECLARE c4 BINARY CURSOR WITH HOLD FOR SELECT * FROM t1 FOR UPDATE",
    "FETCH 10 FROM c1",
    "FETCH ALL c1",
    "MOVE NEXT IN c1",
    "CLOSE c1",
    "CLOSE ALL",
    "DISCARD ALL",
    "DISCARD PLANS",
    "DISCARD TEMP",
    "DISCARD SEQUENCES",
    "LOAD 'auto_explain'",
    "CREATE SCHEMA s2",
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "ALTER SYSTEM SET work_mem = '4MB'",
    "SECURITY LABEL ON TABLE t1 IS 'x'",
    "CREATE VIEW v2 AS SELECT * FROM t1 FOR UPDATE",
    "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO r1",
    "REASSIGN OWNED BY r1 TO r2",
    "CREATE TABLE \"update\" (\"select\" int)",
    "CREATE TABLE temp (a int)",
    "IMPORT FOREIGN SCHEMA s FROM SERVER srv INTO public",
};

static const char *const txn_and_session[] = {
    "BEGIN",
    "BEGIN READ ONLY",
    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    "BEGIN TRANSACTION READ ONLY, DEFERRABLE",
    "START TRANSACTION READ WRITE",
    "START TRANSACTION READ ONLY",
    "BEGIN ISOLATION LEVEL SERIALIZABLE",
    "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE",
    "BEGIN WORK",
    "BEGIN READ ONLY, READ WRITE",
    "COMMIT",
    "COMMIT AND CHAIN",
    "END",
    "END TRANSACTION",
    "ROLLBACK",
    "ABORT",
    "ROLLBACK AND NO CHAIN",
    "SAVEPOINT sp1",
    "RELEASE SAVEPOINT sp1",
    "RELEASE sp1",
    "ROLLBACK TO SAVEPOINT sp1",
    "ROLLBACK WORK TO sp1",
    "PREPARE TRANSACTION 'gx'",
    "COMMIT PREPARED 'gx'",
    "ROLLBACK PREPARED 'gx'",
    "SET TRANSACTION READ ONLY",
    "SET TRANSACTION READ WRITE",
    "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
    "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
    "SET TRANSACTION SNAPSHOT '00000003-0000001B-1'",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
    "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE",
    "SET search_path = app, public",
    "SET search_path TO DEFAULT",
    "SET SESSION statement_timeout = 5000",
    "SET LOCAL lock_timeout = '1s'",
    "SET TIME ZONE 'UTC'",
    "SET LOCAL TIME ZONE 'UTC'",
    "SET NAMES 'UTF8'",
    "SET SCHEMA 'app'",
    "SET ROLE r1",
    "RESET ROLE",
    "SET SESSION AUTHORIZATION DEFAULT",
    "RESET SESSION AUTHORIZATION",
    "SET XML OPTION DOCUMENT",
    "SET default_transaction_read_only = on",
    "SET default_transaction_read_only TO off",
    "SET default_transaction_read_only = 'true'",
    "SET transaction_read_only = off",
    "SET transaction_read_only = on",
    "SET default_transaction_isolation = 'serializable'",
    "SET default_transaction_isolation TO 'read committed'",
    "SET transaction_isolation = 'serializable'",
    "RESET ALL",
    "RESET search_path",
    "RESET TIME ZONE",
    "RESET TRANSACTION ISOLATION LEVEL",
    "SET application_name = 'for update; delete'",
    "SET my.var = 1",
    "SET \"my\".\"var\" TO 'x'",
    "SET work_mem FROM CURRENT",
    "SET CONSTRAINTS ALL DEFERRED",
    "SET statement_timeout TO DEFAULT",
    "SHOW search_path",
    "SHOW ALL",
    "SHOW TRANSACTION ISOLATION LEVEL",
    "SHOW TIME ZONE",
    "SHOW \"TimeZone\"",
};

static void gen_explain(gen *g)
{
    static const char *const ex[] = {"EXPLAIN",
                                     "EXPLAIN ANALYZE",
                                     "EXPLAIN ANALYSE VERBOSE",
                                     "EXPLAIN VERBOSE",
                                     "EXPLAIN (ANALYZE, BUFFERS)",
                                     "EXPLAIN (COSTS OFF, FORMAT JSON)",
                                     "EXPLAIN (ANALYZE false)",
                                     "EXPLAIN (FORMAT TEXT, analyze)",
                                     "EXPLAIN (\"analyze\")",
                                     "EXPLAIN (SETTINGS)"};
    kw(g, PICK(g, ex));
    unsigned r = rnd(g, 100);
    if (r < 70)
        gen_select(g, 1, 0);
    else if (r < 75)
        kw(g, "VALUES (1)");
    else if (r < 80)
        kw(g, "(SELECT 1)");
    else
        gen_write(g);
}

static void gen_statement(gen *g)
{
    unsigned r = rnd(g, 100);
    if (r < 48) {
        if (chance(g, 4)) {
            kw(g, "(");
            gen_select(g, 0, 0);
            kw(g, ")");
        } else {
            gen_select(g, 0, 1);
        }
    } else if (r < 51) {
        kw(g, "VALUES (1, 'a'), (2,");
        gen_expr(g, 2);
        kw(g, ")");
        if (chance(g, 30))
            kw(g, "ORDER BY 1 LIMIT 1");
    } else if (r < 53) {
        kw(g, chance(g, 50) ? "TABLE" : "TABLE ONLY");
        kw(g, PICK(g, tables));
    } else if (r < 58) {
        gen_explain(g);
    } else if (r < 72) {
        gen_write(g);
    } else if (r < 86) {
        kw(g, PICK(g, utility));
    } else {
        kw(g, PICK(g, txn_and_session));
    }
}

/* One query: optional leading comment, one to three statements. */
static void gen_query(gen *g)
{
    g->len = 0;
    raw(g, "");
    g->odd_case = chance(g, 20) ? 30 : 0;
    if (chance(g, 4)) {
        static const char *const lead[] = {"/* tusk:replica */", "/* tusk:primary */",
                                           "-- tusk:replica\n", "/*tusk:primary*/",
                                           "  /* app:web */ /* tusk:replica */"};
        raw(g, PICK(g, lead));
    }
    unsigned r = rnd(g, 100);
    int n = r < 75 ? 1 : r < 92 ? 2 : 3;
    for (int i = 0; i < n; i++) {
        if (i) {
            static const char *const seps[] = {";", "; ", ";\n", " ; ; ", ";/* c */", ";--x\n"};
            raw(g, PICK(g, seps));
        }
        gen_statement(g);
    }
    if (chance(g, 40))
        raw(g, chance(g, 80) ? ";" : ";\n;");
}

void corpus_generate(corpus *c, uint64_t seed, size_t n)
{
    gen g = {.rng = {seed ? seed : 1}};
    for (size_t i = 0; i < n; i++) {
        gen_query(&g);
        corpus_add(c, g.buf);
    }
    free(g.buf);
}

/* ------------------------------------------------------------------------------------ */
/* real-world queries                                                                   */
/* ------------------------------------------------------------------------------------ */

static const char *const real_world[] = {
    /* Mastodon through ActiveRecord (prepared statements, marginalia comments) */
    "SELECT \"accounts\".* FROM \"accounts\" WHERE \"accounts\".\"id\" = $1 LIMIT $2",
    "SELECT \"users\".* FROM \"users\" WHERE \"users\".\"id\" = $1 LIMIT $2 "
    "/*application:Mastodon,controller:home,action:index*/",
    "SELECT \"oauth_access_tokens\".* FROM \"oauth_access_tokens\" WHERE "
    "\"oauth_access_tokens\".\"token\" = $1 AND \"oauth_access_tokens\".\"revoked_at\" IS NULL "
    "LIMIT $2",
    "SELECT \"statuses\".\"id\", \"statuses\".\"updated_at\" FROM \"statuses\" WHERE "
    "\"statuses\".\"account_id\" = $1 AND \"statuses\".\"deleted_at\" IS NULL ORDER BY "
    "\"statuses\".\"id\" DESC LIMIT $2",
    "SELECT \"statuses\".* FROM \"statuses\" WHERE \"statuses\".\"deleted_at\" IS NULL AND "
    "\"statuses\".\"id\" IN ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    "SELECT \"statuses\".\"id\" FROM \"statuses\" LEFT OUTER JOIN \"statuses\" \"reblogs\" ON "
    "\"reblogs\".\"id\" = \"statuses\".\"reblog_of_id\" WHERE \"statuses\".\"visibility\" IN (0, "
    "1) "
    "AND (\"statuses\".\"reblog_of_id\" IS NULL OR \"reblogs\".\"account_id\" NOT IN (SELECT "
    "target_account_id FROM blocks WHERE account_id = $1)) ORDER BY \"statuses\".\"id\" DESC "
    "LIMIT 20",
    "SELECT \"statuses\".* FROM \"statuses\" WHERE \"statuses\".\"account_id\" IN (SELECT "
    "\"follows\".\"target_account_id\" FROM \"follows\" WHERE \"follows\".\"account_id\" = $1) "
    "AND \"statuses\".\"id\" < $2 ORDER BY \"statuses\".\"id\" DESC LIMIT $3",
    "WITH RECURSIVE search_tree(id, path) AS (SELECT id, ARRAY[id] FROM statuses WHERE id = $1 "
    "UNION ALL SELECT statuses.id, path || statuses.id FROM search_tree JOIN statuses ON "
    "statuses.in_reply_to_id = search_tree.id WHERE NOT statuses.id = ANY(path)) SELECT id FROM "
    "search_tree ORDER BY path LIMIT $2",
    "SELECT 1 AS one FROM \"blocks\" WHERE \"blocks\".\"account_id\" = $1 AND "
    "\"blocks\".\"target_account_id\" = $2 LIMIT $3",
    "SELECT COUNT(*) FROM \"notifications\" WHERE \"notifications\".\"account_id\" = $1 AND "
    "\"notifications\".\"id\" > $2",
    "SELECT \"follows\".\"account_id\" FROM \"follows\" WHERE \"follows\".\"target_account_id\" "
    "= $1 ORDER BY \"follows\".\"id\" ASC LIMIT $2",
    "SELECT \"account_stats\".* FROM \"account_stats\" WHERE \"account_stats\".\"account_id\" = "
    "$1 LIMIT $2",
    "SELECT \"accounts\".* FROM \"accounts\" WHERE \"accounts\".\"id\" = $1 LIMIT $2 FOR UPDATE",
    "SELECT \"lists\".* FROM \"lists\" INNER JOIN \"list_accounts\" ON \"lists\".\"id\" = "
    "\"list_accounts\".\"list_id\" WHERE \"list_accounts\".\"account_id\" = $1",
    "SELECT \"mentions\".\"account_id\" FROM \"mentions\" WHERE \"mentions\".\"status_id\" = $1 "
    "AND \"mentions\".\"silent\" = FALSE",
    "SELECT \"users\".\"account_id\" FROM \"users\" WHERE \"users\".\"current_sign_in_at\" > $1 "
    "AND \"users\".\"account_id\" IN (SELECT \"follows\".\"account_id\" FROM \"follows\" WHERE "
    "\"follows\".\"target_account_id\" = $2)",
    "UPDATE \"users\" SET \"current_sign_in_at\" = $1, \"last_sign_in_at\" = $2 WHERE "
    "\"users\".\"id\" = $3",
    "INSERT INTO \"statuses\" (\"id\", \"uri\", \"text\", \"created_at\", \"updated_at\", "
    "\"account_id\") VALUES ($1, $2, $3, $4, $5, $6) RETURNING \"id\"",
    "INSERT INTO \"favourites\" (\"account_id\", \"status_id\", \"created_at\", \"updated_at\") "
    "VALUES ($1, $2, $3, $4) ON CONFLICT (\"account_id\", \"status_id\") DO NOTHING RETURNING "
    "\"id\"",
    "UPDATE \"account_stats\" SET \"statuses_count\" = COALESCE(\"statuses_count\", 0) + 1, "
    "\"last_status_at\" = $1 WHERE \"account_stats\".\"id\" = $2",
    "DELETE FROM \"follows\" WHERE \"follows\".\"id\" = $1",
    "SELECT nextval('statuses_id_seq')",
    "SELECT timestamp_id('statuses')",
    "SELECT pg_try_advisory_lock(2945829512)",
    "SELECT pg_advisory_unlock(2945829512)",
    "SELECT \"schema_migrations\".\"version\" FROM \"schema_migrations\" ORDER BY "
    "\"schema_migrations\".\"version\" ASC",
    "SELECT \"ar_internal_metadata\".\"value\" FROM \"ar_internal_metadata\" WHERE "
    "\"ar_internal_metadata\".\"key\" = $1 LIMIT $2",
    "SELECT a.attname, format_type(a.atttypid, a.atttypmod), pg_get_expr(d.adbin, d.adrelid), "
    "a.attnotnull, a.atttypid, a.atttypmod, c.collname, col_description(a.attrelid, a.attnum) "
    "AS comment FROM pg_attribute a LEFT JOIN pg_attrdef d ON a.attrelid = d.adrelid AND "
    "a.attnum = d.adnum LEFT JOIN pg_type t ON a.atttypid = t.oid LEFT JOIN pg_collation c ON "
    "a.attcollation = c.oid AND a.attcollation <> t.typcollation WHERE a.attrelid = "
    "'\"statuses\"'::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
    "SELECT t.oid, t.typname FROM pg_type as t WHERE t.typname IN ('int2', 'int4', 'int8', "
    "'oid', 'float4', 'float8', 'bool')",
    "SELECT c.relname FROM pg_class c LEFT JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = ANY (current_schemas(false)) AND c.relname = 'statuses' AND c.relkind "
    "IN ('r','p')",
    "SET client_min_messages TO 'warning'",
    "SET standard_conforming_strings = on",
    "SET intervalstyle = iso_8601",
    "SET SESSION timezone TO 'UTC'",
    "SHOW max_identifier_length",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT active_record_1",
    "RELEASE SAVEPOINT active_record_1",
    "ROLLBACK TO SAVEPOINT active_record_1",
    "SELECT \"statuses\".\"id\" FROM \"statuses\" WHERE \"statuses\".\"id\" > $1 ORDER BY "
    "\"statuses\".\"id\" LIMIT 1 FOR UPDATE SKIP LOCKED",
    "SELECT DISTINCT \"statuses\".\"account_id\" FROM \"statuses\" WHERE "
    "\"statuses\".\"reblog_of_id\" = $1",
    "SELECT \"tags\".* FROM \"tags\" WHERE (lower(\"tags\".\"name\") = lower($1)) LIMIT $2",
    "SELECT \"custom_emojis\".* FROM \"custom_emojis\" WHERE \"custom_emojis\".\"disabled\" = "
    "FALSE AND \"custom_emojis\".\"domain\" IS NULL ORDER BY \"custom_emojis\".\"shortcode\"",
    "SELECT \"settings\".* FROM \"settings\" WHERE \"settings\".\"thing_type\" IS NULL AND "
    "\"settings\".\"thing_id\" IS NULL AND \"settings\".\"var\" = $1 LIMIT $2",
    "WITH inserted AS (INSERT INTO outbox (status_id, commit_lsn) VALUES ($1, "
    "pg_current_wal_insert_lsn()) RETURNING id) SELECT id FROM inserted",
    /* pgbench: built-in scripts and initialisation */
    "SELECT abalance FROM pgbench_accounts WHERE aid = $1;",
    "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;",
    "BEGIN;",
    "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;",
    "UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2;",
    "UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2;",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, "
    "CURRENT_TIMESTAMP);",
    "END;",
    "select count(*) from pgbench_branches",
    "drop table if exists pgbench_accounts, pgbench_branches, pgbench_history, "
    "pgbench_tellers",
    "create table pgbench_history(tid int,bid int,aid    int,delta int,mtime timestamp,filler "
    "char(22))",
    "copy pgbench_accounts from stdin with (freeze on)",
    "vacuum analyze pgbench_branches",
    "alter table pgbench_branches add primary key (bid)",
    "truncate table pgbench_accounts, pgbench_branches, pgbench_history, pgbench_tellers",
    "select o.n, p.partstrat, pg_catalog.count(i.inhparent) from pg_catalog.pg_class as c join "
    "pg_catalog.pg_namespace as n on (n.oid = c.relnamespace) cross join lateral (select "
    "pg_catalog.array_position(pg_catalog.current_schemas(true), n.nspname)) as o(n) left join "
    "pg_catalog.pg_partitioned_table as p on (p.partrelid = c.oid) left join "
    "pg_catalog.pg_inherits as i on (c.oid = i.inhparent) where c.relname = "
    "'pgbench_accounts' and o.n is not null group by 1, 2 order by 1 asc limit 1",
    "BEGIN; UPDATE pgbench_accounts SET abalance = abalance + -1234 WHERE aid = 1; SELECT "
    "abalance FROM pgbench_accounts WHERE aid = 1; END;",
    /* drivers and tools */
    "SELECT version()",
    "SHOW TRANSACTION ISOLATION LEVEL",
    "select current_schema()",
    "SELECT pg_catalog.set_config('search_path', '', false);",
    "SET extra_float_digits = 3",
    "SET application_name = 'PostgreSQL JDBC Driver'",
    "SELECT 1",
    "",
    ";",
    "/* ping */ SELECT 1",
    "-- health\nSELECT 1",
    "/* tusk:replica */ SELECT \"statuses\".* FROM \"statuses\" WHERE \"statuses\".\"id\" = $1",
    "/* tusk:primary */ SELECT \"accounts\".* FROM \"accounts\" WHERE \"id\" = $1",
    "SET tusk.route = replica",
    "SET tusk.min_lsn = '0/16B3748'",
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()",
    "LISTEN \"timeline:1\"",
    "SELECT * FROM pg_stat_activity WHERE state = 'active'",
};

void corpus_add_real_world(corpus *c)
{
    for (size_t i = 0; i < sizeof(real_world) / sizeof(real_world[0]); i++)
        corpus_add(c, real_world[i]);
}
