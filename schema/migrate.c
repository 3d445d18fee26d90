/*
 * "tusk migrate": applies the SQL files of schema/migrations (compiled into the binary) in
 * version order. Each migration runs in its own transaction that first takes a
 * transaction-level advisory lock and re-checks tusk_schema_migrations, so two migrators
 * started together apply each file exactly once, and the lock is released with the
 * transaction (safe through a transaction-pooling proxy, unlike a session lock).
 */
#include "common/common.h"
#include "schema/internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* pg_advisory_xact_lock key: "tuskmigr" as a big-endian bigint */
#define MIGRATE_LOCK_KEY "8391086542148692338"
#define MIGRATE_MAX 256

static int migrate_apply(PGconn *conn, const schema_migration *m, FILE *out, char *err,
                         size_t errlen);
static bool exec_ok(PGconn *conn, const char *sql, char *err, size_t errlen);
static void format_server_error(const PGresult *res, const schema_migration *m, char *err,
                                size_t errlen);
static int migrate_status(const char *dsn);
static void trim_newline(char *s);
static void notice_quiet(void *arg, const PGresult *res);

/* ==== public ==== */

/* sort and validate the embedded files; names are allocated only once all are valid */
int schema_migration_list(const schema_embedded_file *files, size_t n, schema_migration *out,
                          char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        const char *f = files[i].file;
        size_t len = strlen(f);
        size_t digits = 0;
        while (isdigit((unsigned char)f[digits]))
            digits++;
        bool ok = digits > 0 && digits <= 9 && f[digits] == '_' && len >= digits + 6 &&
                  strcmp(f + len - 4, ".sql") == 0;
        for (size_t k = digits + 1; ok && k < len - 4; k++)
            ok = isalnum((unsigned char)f[k]) || f[k] == '_';
        if (!ok) {
            snprintf(err, errlen, "migration file \"%s\": name must be NNNN_name.sql", f);
            return -1;
        }
        long version = strtol(f, NULL, 10);
        if (version <= 0) {
            snprintf(err, errlen, "migration file \"%s\": version must be positive", f);
            return -1;
        }
        /* insertion sort (the list is short); name holds the file name until the end */
        size_t j = i;
        while (j > 0 && out[j - 1].version > version) {
            out[j] = out[j - 1];
            j--;
        }
        if (j > 0 && out[j - 1].version == version) {
            snprintf(err, errlen, "migrations \"%s\" and \"%s\" have the same version %ld", f,
                     out[j - 1].name, version);
            return -1;
        }
        out[j] = (schema_migration){.version = version, .name = f, .sql = files[i].text};
    }
    for (size_t i = 0; i < n; i++) {
        char *name = strndup(out[i].name, strlen(out[i].name) - 4); /* drop ".sql" */
        if (!name) {
            schema_migration_list_free(out, i);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        out[i].name = name;
    }
    return 0;
}

/* release the names schema_migration_list allocated */
void schema_migration_list_free(schema_migration *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((char *)list[i].name);
        list[i].name = NULL;
    }
}

/* the embedded migrations in order (built once; the names live for the process) */
const schema_migration *schema_migrations(size_t *count)
{
    static schema_migration list[MIGRATE_MAX];
    static size_t n;
    static bool built, ok;
    if (!built) {
        built = true;
        char err[256];
        if (schema_embedded_migrations_count > MIGRATE_MAX) {
            log_error("too many migrations (%zu)", schema_embedded_migrations_count);
        } else if (schema_migration_list(schema_embedded_migrations,
                                         schema_embedded_migrations_count, list, err,
                                         sizeof err) != 0) {
            log_error("%s", err);
        } else {
            n = schema_embedded_migrations_count;
            ok = true;
        }
    }
    *count = ok ? n : 0;
    return ok ? list : NULL;
}

/* apply pending migrations; returns how many ran or -1 */
int schema_migrate(const char *dsn, FILE *out, char *err, size_t errlen)
{
    size_t count;
    const schema_migration *list = schema_migrations(&count);
    if (!list) {
        snprintf(err, errlen, "the migrations compiled into this binary are inconsistent");
        return -1;
    }
    PGconn *conn = PQconnectdb(dsn);
    if (PQstatus(conn) != CONNECTION_OK) {
        snprintf(err, errlen, "cannot connect to the database: %s", PQerrorMessage(conn));
        trim_newline(err);
        PQfinish(conn);
        return -1;
    }
    PQsetNoticeReceiver(conn, notice_quiet, NULL);
    int applied = -1;
    /* the bookkeeping table itself, under the same lock: two concurrent CREATE TABLE IF NOT
     * EXISTS can otherwise both pass the check and one fails on pg_type's unique index */
    if (!exec_ok(conn,
                 "BEGIN; SELECT pg_advisory_xact_lock(" MIGRATE_LOCK_KEY ");"
                 "CREATE TABLE IF NOT EXISTS tusk_schema_migrations ("
                 " version bigint PRIMARY KEY,"
                 " name text NOT NULL,"
                 " applied_at timestamptz NOT NULL DEFAULT now()); COMMIT",
                 err, errlen))
        goto done;

    /* which versions ran already (re-checked under the lock before each apply) */
    PGresult *res = PQexec(conn, "SELECT version, name FROM tusk_schema_migrations ORDER BY 1");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "reading tusk_schema_migrations: %s", PQresultErrorMessage(res));
        trim_newline(err);
        PQclear(res);
        goto done;
    }
    bool done_v[MIGRATE_MAX] = {false};
    long highest = 0;
    for (int r = 0; r < PQntuples(res); r++) {
        long v = strtol(PQgetvalue(res, r, 0), NULL, 10);
        if (v > highest)
            highest = v;
        bool known = false;
        for (size_t i = 0; i < count; i++) {
            if (list[i].version == v) {
                done_v[i] = true;
                known = true;
            }
        }
        if (!known)
            fprintf(stderr,
                    "tusk migrate: warning: the database has migration %ld (%s) that this "
                    "binary does not know; it was made by a newer tusk\n",
                    v, PQgetvalue(res, r, 1));
    }
    PQclear(res);

    applied = 0;
    for (size_t i = 0; i < count; i++) {
        if (done_v[i])
            continue;
        int rc = migrate_apply(conn, &list[i], out, err, errlen);
        if (rc < 0) {
            applied = -1;
            goto done;
        }
        applied += rc;
        if (list[i].version > highest)
            highest = list[i].version;
    }
    if (applied == 0 && out)
        fprintf(out, "nothing to do: the database is at version %ld (%zu migrations known)\n",
                highest, count);
done:
    PQfinish(conn);
    return applied;
}

/* "tusk migrate [--status] [-q] DSN" */
int schema_migrate_main(int argc, char **argv)
{
    const char *dsn = NULL;
    bool quiet = false, status = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            printf("usage: tusk migrate [--status] [-q] DSN\n\n"
                   "Applies the schema migrations compiled into tusk that the database has not\n"
                   "run yet, in order, each in its own transaction; safe to run twice or from\n"
                   "two processes at once. DSN is a libpq connection string or URL, e.g.\n"
                   "\"host=127.0.0.1 port=5432 dbname=mastodon user=mastodon\" or\n"
                   "postgresql://mastodon@127.0.0.1/mastodon\n\n"
                   "  --status   list the migrations and whether each has run; change nothing\n"
                   "  -q         print nothing on success\n");
            return 0;
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            quiet = true;
        } else if (strcmp(a, "--status") == 0) {
            status = true;
        } else if (strcmp(a, "-c") == 0) {
            fprintf(stderr, "tusk migrate: -c is not supported yet; pass the DSN directly\n");
            return 2;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "tusk migrate: unknown option \"%s\"; try \"tusk migrate --help\"\n",
                    a);
            return 2;
        } else if (dsn) {
            fprintf(stderr, "tusk migrate: more than one DSN given (\"%s\", \"%s\")\n", dsn, a);
            return 2;
        } else {
            dsn = a;
        }
    }
    if (!dsn) {
        fprintf(stderr, "usage: tusk migrate [--status] [-q] DSN\n");
        return 2;
    }
    if (status)
        return migrate_status(dsn);
    char err[2048];
    int n = schema_migrate(dsn, quiet ? NULL : stdout, err, sizeof err);
    if (n < 0) {
        fprintf(stderr, "tusk migrate: %s\n", err);
        return 1;
    }
    return 0;
}

/* ==== internal ==== */

/* one migration in one transaction; 1 applied, 0 someone else did it meanwhile, -1 error */
static int migrate_apply(PGconn *conn, const schema_migration *m, FILE *out, char *err,
                         size_t errlen)
{
    double t0 = schema_now();
    if (!exec_ok(conn, "BEGIN; SELECT pg_advisory_xact_lock(" MIGRATE_LOCK_KEY ")", err, errlen))
        return -1;
    char vbuf[32];
    snprintf(vbuf, sizeof vbuf, "%ld", m->version);
    const char *params[2] = {vbuf, m->name};
    PGresult *res = PQexecParams(conn, "SELECT 1 FROM tusk_schema_migrations WHERE version = $1", 1,
                                 NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "reading tusk_schema_migrations: %s", PQresultErrorMessage(res));
        trim_newline(err);
        PQclear(res);
        PQclear(PQexec(conn, "ROLLBACK"));
        return -1;
    }
    bool already = PQntuples(res) > 0;
    PQclear(res);
    if (already) { /* a concurrent migrator got there first */
        PQclear(PQexec(conn, "ROLLBACK"));
        return 0;
    }
    res = PQexec(conn, m->sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
        format_server_error(res, m, err, errlen);
        PQclear(res);
        PQclear(PQexec(conn, "ROLLBACK"));
        return -1;
    }
    PQclear(res);
    res = PQexecParams(conn, "INSERT INTO tusk_schema_migrations (version, name) VALUES ($1, $2)",
                       2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        snprintf(err, errlen, "%s.sql: recording it: %s", m->name, PQresultErrorMessage(res));
        trim_newline(err);
        PQclear(res);
        PQclear(PQexec(conn, "ROLLBACK"));
        return -1;
    }
    PQclear(res);
    res = PQexec(conn, "COMMIT");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        snprintf(err, errlen, "%s.sql: COMMIT: %s", m->name, PQresultErrorMessage(res));
        trim_newline(err);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    if (out)
        fprintf(out, "applied %s (%.0f ms)\n", m->name, (schema_now() - t0) * 1000);
    return 1;
}

/* run a utility statement list; false with the server's message */
static bool exec_ok(PGconn *conn, const char *sql, char *err, size_t errlen)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s", PQresultErrorMessage(res));
        trim_newline(err);
        PQclear(res);
        PQclear(PQexec(conn, "ROLLBACK"));
        return false;
    }
    PQclear(res);
    return true;
}

/* "0001_x.sql:42: ERROR:  relation ... (SQLSTATE 42P07)" plus detail, hint and context.
 * The server's position counts characters of the whole multi-statement text, which is the
 * whole file, so it maps straight to a line of the file. */
static void format_server_error(const PGresult *res, const schema_migration *m, char *err,
                                size_t errlen)
{
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
    const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
    const char *context = PQresultErrorField(res, PG_DIAG_CONTEXT);
    char where[64] = "";
    if (pos) {
        long chars = strtol(pos, NULL, 10), seen = 0, line = 1;
        for (const unsigned char *p = (const unsigned char *)m->sql; *p && seen < chars - 1; p++) {
            if ((*p & 0xc0) != 0x80) /* count UTF-8 characters, not bytes */
                seen++;
            if (*p == '\n')
                line++;
        }
        snprintf(where, sizeof where, ":%ld", line);
    }
    if (!msg) { /* no server error fields: the connection itself failed */
        snprintf(err, errlen, "%s.sql: %s", m->name, PQresultErrorMessage(res));
        trim_newline(err);
        return;
    }
    int n = snprintf(err, errlen, "%s.sql%s: %s: %s (SQLSTATE %s)", m->name, where,
                     sev ? sev : "ERROR", msg, state ? state : "?");
    if (detail && n >= 0 && (size_t)n < errlen)
        n += snprintf(err + n, errlen - (size_t)n, "\nDETAIL: %s", detail);
    if (hint && n >= 0 && (size_t)n < errlen)
        n += snprintf(err + n, errlen - (size_t)n, "\nHINT: %s", hint);
    if (context && n >= 0 && (size_t)n < errlen)
        n += snprintf(err + n, errlen - (size_t)n, "\nCONTEXT: %s", context);
    if (n >= 0 && (size_t)n < errlen)
        snprintf(err + n, errlen - (size_t)n,
                 "\nThe migration was rolled back; nothing of it "
                 "was applied.");
}

/* "--status": one line per known migration */
static int migrate_status(const char *dsn)
{
    size_t count;
    const schema_migration *list = schema_migrations(&count);
    if (!list) {
        fprintf(stderr, "tusk migrate: the migrations compiled into this binary are "
                        "inconsistent\n");
        return 1;
    }
    PGconn *conn = PQconnectdb(dsn);
    if (PQstatus(conn) != CONNECTION_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(conn));
        trim_newline(msg);
        fprintf(stderr, "tusk migrate: cannot connect to the database: %s\n", msg);
        PQfinish(conn);
        return 1;
    }
    PGresult *res = PQexec(conn, "SELECT version, to_char(applied_at, 'YYYY-MM-DD HH24:MI:SS') "
                                 "FROM tusk_schema_migrations ORDER BY 1");
    bool have_table = PQresultStatus(res) == PGRES_TUPLES_OK;
    int pending = 0;
    for (size_t i = 0; i < count; i++) {
        const char *when = NULL;
        for (int r = 0; have_table && r < PQntuples(res); r++)
            if (strtol(PQgetvalue(res, r, 0), NULL, 10) == list[i].version)
                when = PQgetvalue(res, r, 1);
        printf("%-32s %s%s\n", list[i].name, when ? "applied " : "pending", when ? when : "");
        pending += when == NULL;
    }
    printf("%d pending\n", pending);
    PQclear(res);
    PQfinish(conn);
    return 0;
}

/* libpq messages end in a newline; ours are embedded in longer lines */
static void trim_newline(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
}

/* NOTICEs (e.g. "relation already exists, skipping") are noise for an operator */
static void notice_quiet(void *arg, const PGresult *res)
{
    (void)arg;
    (void)res;
}
