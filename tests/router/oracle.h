/*
 * Test oracle for the classifier: PostgreSQL's own grammar (libpg_query) parses a query and
 * the verdict comes from walking the parse tree, independently of router/.
 */
#ifndef TUSK_TESTS_ROUTER_ORACLE_H
#define TUSK_TESTS_ROUTER_ORACLE_H

#include <stdbool.h>

typedef struct oracle_result {
    bool parsed;    /* the grammar accepted the text (otherwise nothing below is set) */
    int statements; /* top-level statements */
    bool safe;      /* every statement replica-safe by design.md §2 (see oracle.c) */
    bool txn_begin; /* a BEGIN / START TRANSACTION */
    bool txn_end;   /* a COMMIT / ROLLBACK / PREPARE TRANSACTION (not TO SAVEPOINT) */
    bool sets;      /* a replayable session-level SET / RESET */
    bool pins;      /* LISTEN, PREPARE, temp objects, WITH HOLD, LOAD, session locks ... */
    bool unpins;    /* UNLISTEN *, DEALLOCATE ALL, DISCARD ALL/TEMP, CLOSE ALL ... */
    bool tusk;      /* SET / RESET tusk.* */
    char why[200];  /* why it is not safe (the first reason found) */
} oracle_result;

/* Sets the extra unsafe functions (same syntax as the classifier's list). */
void oracle_init(const char *extra_unsafe);

/* Parses sql (NUL-terminated) and judges it. */
void oracle_judge(const char *sql, oracle_result *r);

#endif
