/* Helpers of the schema integration tests: a throw-away database per test run, queries,
 * and running the tusk binary. */
#ifndef TUSK_TESTS_SCHEMA_DB_H
#define TUSK_TESTS_SCHEMA_DB_H

#include <libpq-fe.h>
#include <stdbool.h>

/* create database "schema_test_<pid>_<tag>" as the postgres superuser; fills dsn (for user
 * tusk, password auth) and returns its name (static buffer per call site is the caller's) */
void tdb_create(const char *tag, char *name, size_t namecap, char *dsn, size_t dsncap);
/* drop it (WITH (FORCE)) */
void tdb_drop(const char *name);
/* connect or fail the test */
PGconn *tdb_connect(const char *dsn);
/* first column of the first row of a query as a long long; fails the test on error */
long long tdb_int(PGconn *conn, const char *sql);
/* same as text into out */
void tdb_text(PGconn *conn, const char *sql, char *out, size_t cap);
/* run a shell command line, capture stdout+stderr into a malloc'ed string; returns the exit
 * status (or -1) */
int tdb_run(char **output, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
