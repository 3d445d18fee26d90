/*
 * Harness of the cache and fanout integration tests: a fresh PostgreSQL database per test
 * (migrated with "$TUSK_BIN migrate"), a private redis-server per test (so tests run in
 * parallel without sharing key space; Mastodon's key names cannot take a prefix), and
 * helpers that create Mastodon rows, post statuses with their outbox row, read feeds the
 * way the api does, and run "tusk fanout".
 */
#ifndef TUSK_TEST_HARNESS_H
#define TUSK_TEST_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "cache/cache.h"
#include "tests/support/support.h"

typedef struct th_env {
    char dbname[64];
    char dsn[512];
    PGconn *pg;
    int redis_port;
    pid_t redis_pid; /* 0 when using the services' Redis */
    int redis_db;
    char redis_url[128];
    char redis_dir[128];
    cache_config ccfg;
    cache *c;
    redisContext *r; /* a plain connection for assertions */
    svc_proc fanout;
    bool fanout_running;
} th_env;

/* a fresh database named after the test; own_redis starts a private redis-server, otherwise
 * the services' Redis is used with db number redis_db (FLUSHDB first) */
void th_setup(th_env *e, const char *name, bool own_redis, int redis_db);
void th_teardown(th_env *e);

/* (re)connect the assertion connection and the cache handle (after a Redis restart) */
void th_redis_reconnect(th_env *e);

/* stop the private redis-server (SHUTDOWN SAVE keeps its data when save is true) and start
 * it again on the same port and directory */
void th_redis_stop(th_env *e, bool save);
void th_redis_start(th_env *e);

/* run SQL (printf-style); the test fails on error */
void th_exec(th_env *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* first column of the first row as an integer (0 when NULL / no row) */
int64_t th_scalar(th_env *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* an account; local ones get a users row, active = signed in now (else 30 days ago) */
int64_t th_account(th_env *e, const char *username, bool local, bool active);
/* follows row; languages NULL or "{en,de}" */
int64_t th_follow(th_env *e, int64_t from, int64_t to, bool show_reblogs, const char *languages);
void th_block(th_env *e, int64_t from, int64_t to);
void th_mute(th_env *e, int64_t from, int64_t to);
/* list of owner; replies_policy 0 list, 1 followed, 2 none */
int64_t th_list(th_env *e, int64_t owner, int replies_policy, bool exclusive);
/* list member (through the owner's follow, which must exist unless member == owner) */
void th_list_add(th_env *e, int64_t list, int64_t account);

typedef struct th_status {
    int64_t reply_to;     /* status replied to */
    bool orphan_reply;    /* reply flag set, no parent */
    int64_t reblog_of;    /* status reblogged */
    int visibility;       /* 0..4 */
    const char *language; /* NULL = none */
    const char *text;     /* NULL = "status" */
    int64_t mentions[4];  /* accounts mentioned (0-terminated) */
} th_status;
/* insert a status (and its mentions) and, when outbox, its outbox row in the same transaction
 * (fanout_outbox_status_created) */
int64_t th_post(th_env *e, int64_t author, const th_status *opt, bool outbox);
/* delete a status (soft, like Mastodon's discard) with its outbox row */
void th_delete(th_env *e, int64_t status_id, bool outbox);

/* feed members newest first into out (up to max); the count */
size_t th_feed(th_env *e, int type, int64_t id, int64_t *out, size_t max);
bool th_feed_has(th_env *e, int type, int64_t id, int64_t status_id);
int64_t th_zcard(th_env *e, const char *key);
bool th_exists(th_env *e, const char *key);
/* what the api would serve: rebuild the feed first when it is absent */
size_t th_read_feed(th_env *e, int type, int64_t id, int64_t *out, size_t max);
/* build a feed now (regeneration) */
void th_build_feed(th_env *e, int type, int64_t id);

/* run "tusk fanout" on this env; extra is appended to the [fanout] section */
void th_fanout_start(th_env *e, const char *extra);
/* SIGTERM (or sig) and wait */
int th_fanout_stop(th_env *e, int sig);
/* start another fanout process (for takeover tests) */
void th_fanout_start_proc(th_env *e, svc_proc *p, const char *extra);
/* wait until the outbox is sent and every queue stream is empty; false on timeout */
bool th_wait_idle(th_env *e, int timeout_ms);

#endif
