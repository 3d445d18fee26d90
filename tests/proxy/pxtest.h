/*
 * Helpers shared by the proxy integration tests: start a "tusk proxy" with a generated
 * pgbouncer.ini against the PostgreSQL of scripts/services, connect through it with libpq,
 * run statements, talk raw protocol over a socket.
 */
#ifndef TUSK_TESTS_PROXY_PXTEST_H
#define TUSK_TESTS_PROXY_PXTEST_H

#include "tests/support/support.h"

#include <libpq-fe.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pxt_proxy {
    svc_proc proc;
    int port;
    char *userlist_path;
} pxt_proxy;

/* start a proxy: [databases] tusk and bench on the primary, a userlist with the test users'
 * plaintext passwords (or userlist_text when given), plus extra lines for [pgbouncer]
 * (pgbouncer_extra, e.g. "pool_mode = transaction\n") and [databases] (db_extra) */
void pxt_start(pxt_proxy *px, const char *pgbouncer_extra, const char *db_extra,
               const char *userlist_text);
/* rewrite the config of a running proxy (same port) and send SIGHUP */
void pxt_reload(pxt_proxy *px, const char *pgbouncer_extra, const char *db_extra);
/* kill a proxy started outside pxt_start at exit if the test fails before stopping it */
void pxt_track(pid_t pid);
void pxt_untrack(pid_t pid);
/* stop with a signal, return the exit status */
int pxt_stop(pxt_proxy *px, int sig);

/* connect through the proxy; NULL-free: fails the test on error */
PGconn *pxt_connect(const pxt_proxy *px, const char *user, const char *password, const char *db);
/* try to connect; returns the connection whatever its status (caller checks, PQfinish) */
PGconn *pxt_try_connect(int port, const char *user, const char *password, const char *db,
                        const char *extra);
/* a direct connection to the primary as postgres (superuser, trust) */
PGconn *pxt_direct(const char *db);

/* run sql, fail the test unless it succeeds */
void pxt_exec(PGconn *c, const char *sql);
/* first column of the first row as a new string (test fails on error) */
char *pxt_value(PGconn *c, const char *sql);
long long pxt_int(PGconn *c, const char *sql);
/* run sql expecting an error; returns its SQLSTATE as a new string */
char *pxt_error(PGconn *c, const char *sql);

/* raw protocol: a TCP connection to the proxy */
int pxt_raw_connect(int port);
void pxt_raw_send(int fd, const void *p, size_t n);
/* a startup packet with user/database (and one extra name/value pair if given) */
size_t pxt_startup_packet(uint8_t *out, size_t cap, const char *user, const char *db,
                          const char *xname, const char *xvalue);
/* read messages until one of type `want` (returned, body copied into body/cap) or EOF/timeout
 * (returns 0) */
int pxt_raw_read_until(int fd, char want, char *body, size_t cap, int timeout_ms);
/* does the peer close the connection within timeout_ms? */
bool pxt_raw_eof(int fd, int timeout_ms);
/* SQLSTATE field of an ErrorResponse body */
const char *pxt_sqlstate(const char *body, size_t len);

/* resident memory of a process in kB */
long pxt_rss_kb(int pid);

/* GET path from 127.0.0.1:port (one request, read to EOF): the body (free it) and the status */
char *pxt_http_get(int port, const char *path, int *status);

#endif
