/* Helpers of the schema integration tests (see db.h). */
#include "tests/schema/db.h"
#include "tests/support/support.h"

#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static PGconn *admin(void)
{
    char dsn[256];
    snprintf(dsn, sizeof dsn, "host=%s port=%s user=postgres dbname=postgres",
             svc_env("TUSK_PG_HOST"), svc_env("TUSK_PG_PRIMARY_PORT"));
    PGconn *c = tdb_connect(dsn);
    PQclear(PQexec(c, "SET client_min_messages = warning")); /* no "does not exist" notice */
    return c;
}

void tdb_create(const char *tag, char *name, size_t namecap, char *dsn, size_t dsncap)
{
    snprintf(name, namecap, "schema_test_%d_%s", (int)getpid(), tag);
    PGconn *c = admin();
    char sql[256];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    PQclear(PQexec(c, sql));
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
    snprintf(dsn, dsncap, "host=%s port=%s user=%s password=%s dbname=%s", svc_env("TUSK_PG_HOST"),
             svc_env("TUSK_PG_PRIMARY_PORT"), svc_env("TUSK_PG_USER"), svc_env("TUSK_PG_PASSWORD"),
             name);
}

void tdb_drop(const char *name)
{
    PGconn *c = admin();
    char sql[256];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
}

PGconn *tdb_connect(const char *dsn)
{
    PGconn *c = PQconnectdb(dsn);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("connect %s: %s", dsn, PQerrorMessage(c));
    return c;
}

long long tdb_int(PGconn *conn, const char *sql)
{
    char buf[64];
    tdb_text(conn, sql, buf, sizeof buf);
    return strtoll(buf, NULL, 10);
}

void tdb_text(PGconn *conn, const char *sql, char *out, size_t cap)
{
    PGresult *r = PQexec(conn, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    snprintf(out, cap, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
}

int tdb_run(char **output, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char full[4200];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p)
        return -1;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += n;
        if (cap - len < 1024) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb)
                break;
            buf = nb;
        }
    }
    if (buf)
        buf[len] = '\0';
    int st = pclose(p);
    *output = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
