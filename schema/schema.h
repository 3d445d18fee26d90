/*
 * schema: interface of the folder (see schema/README.md). The Mastodon-compatible tables,
 * their migrations compiled into the binary, "tusk migrate" and "tusk seed".
 */
#ifndef TUSK_SCHEMA_H
#define TUSK_SCHEMA_H

#include <stddef.h>
#include <stdio.h>

/* one migration compiled into the binary (from schema/migrations/NNNN_name.sql) */
typedef struct schema_migration {
    long version;     /* NNNN of the file name */
    const char *name; /* file name without ".sql", e.g. "0001_mastodon_core" */
    const char *sql;  /* the whole file */
} schema_migration;

/* the embedded migrations in version order; NULL (and *count 0) if the set is inconsistent,
 * which the build's unit test prevents */
const schema_migration *schema_migrations(size_t *count);

/* apply every pending migration to the database at dsn (libpq key=value string or URL), each
 * in its own transaction under an advisory lock, so concurrent callers are safe. Progress
 * lines go to out (may be NULL). Returns the number applied (0: nothing to do) or -1 with
 * a message naming the migration and the server's error in err. Tests of other parts call
 * this to create the schema in a fresh database. */
int schema_migrate(const char *dsn, FILE *out, char *err, size_t errlen);

/* "tusk migrate [--status] [-q] DSN" */
int schema_migrate_main(int argc, char **argv);
/* "tusk seed DSN [options]" (see schema/README.md) */
int schema_seed_main(int argc, char **argv);

#endif
