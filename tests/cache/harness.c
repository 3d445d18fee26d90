/* Harness of the cache and fanout integration tests: see harness.h. */
#include "tests/cache/harness.h"
#include "fanout/fanout.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static PGconn *connect_db(const char *db)
{
    char dsn[512];
    snprintf(dsn, sizeof(dsn), "host=%s port=%s user=%s password=%s dbname=%s",
             svc_env("TUSK_PG_HOST"), svc_env("TUSK_PG_PRIMARY_PORT"), svc_env("TUSK_PG_USER"),
             svc_env("TUSK_PG_PASSWORD"), db);
    PGconn *c = PQconnectdb(dsn);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("connect %s: %s", db, PQerrorMessage(c));
    PGresult *r = PQexec(c, "SET client_min_messages = warning");
    PQclear(r);
    return c;
}

static void start_private_redis(th_env *e)
{
    if (!e->redis_port) {
        e->redis_port = svc_free_port();
        snprintf(e->redis_dir, sizeof(e->redis_dir), "/tmp/tusk-redis-%d", e->redis_port);
        mkdir(e->redis_dir, 0700);
    }
    pid_t pid = fork();
    if (pid == 0) {
        char port[16];
        snprintf(port, sizeof(port), "%d", e->redis_port);
        if (!freopen("/dev/null", "w", stdout))
            _exit(127);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", e->redis_dir, "--protected-mode", "no", (char *)NULL);
        _exit(127);
    }
    e->redis_pid = pid;
    for (int i = 0; i < 200; i++) {
        redisContext *r = redisConnect("127.0.0.1", e->redis_port);
        if (r && !r->err) {
            redisReply *rep = redisCommand(r, "PING");
            bool ok = rep && rep->type == REDIS_REPLY_STATUS;
            if (rep)
                freeReplyObject(rep);
            redisFree(r);
            if (ok)
                return;
        } else if (r) {
            redisFree(r);
        }
        usleep(20000);
    }
    fail_msg("private redis-server on %d did not start", e->redis_port);
}

void th_redis_stop(th_env *e, bool save)
{
    assert_true(e->redis_pid > 0);
    redisReply *r = redisCommand(e->r, save ? "SHUTDOWN SAVE" : "SHUTDOWN NOSAVE");
    if (r)
        freeReplyObject(r);
    waitpid(e->redis_pid, NULL, 0);
    e->redis_pid = 0;
    redisFree(e->r);
    e->r = NULL;
}

void th_redis_start(th_env *e)
{
    start_private_redis(e);
    th_redis_reconnect(e);
}

void th_redis_reconnect(th_env *e)
{
    if (e->r)
        redisFree(e->r);
    e->r = redisConnect("127.0.0.1", e->redis_port);
    if (!e->r || e->r->err)
        fail_msg("redis connect %d failed", e->redis_port);
    redisReply *rep = redisCommand(e->r, "SELECT %d", e->redis_db);
    freeReplyObject(rep);
    cache_close(e->c);
    e->c = cache_open(&e->ccfg);
}

void th_setup(th_env *e, const char *name, bool own_redis, int redis_db)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->dbname, sizeof(e->dbname), "tl_%s_%d", name, (int)getpid());
    PGconn *admin = connect_db(svc_env("TUSK_PG_DB"));
    char sql[256];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", e->dbname);
    PQclear(PQexec(admin, sql));
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s TEMPLATE template0", e->dbname);
    PGresult *r = PQexec(admin, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(admin));
    PQclear(r);
    PQfinish(admin);
    snprintf(e->dsn, sizeof(e->dsn), "host=%s port=%s user=%s password=%s dbname=%s",
             svc_env("TUSK_PG_HOST"), svc_env("TUSK_PG_PRIMARY_PORT"), svc_env("TUSK_PG_USER"),
             svc_env("TUSK_PG_PASSWORD"), e->dbname);
    if (svc_sh("'%s' migrate -q '%s' >/dev/null", svc_env("TUSK_BIN"), e->dsn) != 0)
        fail_msg("tusk migrate failed");
    e->pg = connect_db(e->dbname);

    if (own_redis) {
        start_private_redis(e);
        e->redis_db = 0;
    } else {
        e->redis_port = svc_env_int("TUSK_REDIS_PORT");
        e->redis_db = redis_db;
    }
    snprintf(e->redis_url, sizeof(e->redis_url), "redis://127.0.0.1:%d/%d", e->redis_port,
             e->redis_db);
    cache_config_init(&e->ccfg);
    char err[256];
    if (cache_config_set(&e->ccfg, "redis_url", e->redis_url, err, sizeof(err)) != 1)
        fail_msg("%s", err);
    cache_config_set(&e->ccfg, "local_domain", "tusk.test", err, sizeof(err));
    th_redis_reconnect(e);
    if (!own_redis) {
        redisReply *rep = redisCommand(e->r, "FLUSHDB");
        freeReplyObject(rep);
    }
}

void th_teardown(th_env *e)
{
    if (e->fanout_running)
        th_fanout_stop(e, SIGTERM);
    cache_close(e->c);
    if (e->r)
        redisFree(e->r);
    if (e->redis_pid > 0) {
        kill(e->redis_pid, SIGKILL);
        waitpid(e->redis_pid, NULL, 0);
        svc_sh("rm -rf '%s'", e->redis_dir);
    }
    if (e->pg)
        PQfinish(e->pg);
    PGconn *admin = connect_db(svc_env("TUSK_PG_DB"));
    char sql[256];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", e->dbname);
    PQclear(PQexec(admin, sql));
    PQfinish(admin);
}

static PGresult *vexec(th_env *e, const char *fmt, va_list ap)
{
    char sql[8192];
    vsnprintf(sql, sizeof(sql), fmt, ap);
    PGresult *r = PQexec(e->pg, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("SQL failed: %s\n%s", sql, PQerrorMessage(e->pg));
    return r;
}

void th_exec(th_env *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    PQclear(vexec(e, fmt, ap));
    va_end(ap);
}

int64_t th_scalar(th_env *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    PGresult *r = vexec(e, fmt, ap);
    va_end(ap);
    int64_t v = 0;
    if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

int64_t th_account(th_env *e, const char *username, bool local, bool active)
{
    int64_t id = th_scalar(e,
                           "INSERT INTO accounts (username, domain, created_at, updated_at)"
                           " VALUES ('%s', %s, now(), now()) RETURNING id",
                           username, local ? "NULL" : "'remote.test'");
    th_exec(e,
            "INSERT INTO account_stats (account_id, created_at, updated_at)"
            " VALUES (%lld, now(), now())",
            (long long)id);
    if (local)
        th_exec(e,
                "INSERT INTO users (account_id, email, created_at, updated_at, current_sign_in_at)"
                " VALUES (%lld, '%s@tusk.test', now(), now(), timezone('UTC', now())%s)",
                (long long)id, username, active ? "" : " - interval '30 days'");
    return id;
}

int64_t th_follow(th_env *e, int64_t from, int64_t to, bool show_reblogs, const char *languages)
{
    char langs[128];
    if (languages)
        snprintf(langs, sizeof(langs), "'%s'", languages);
    else
        snprintf(langs, sizeof(langs), "NULL");
    return th_scalar(e,
                     "INSERT INTO follows (account_id, target_account_id, show_reblogs, languages,"
                     " created_at, updated_at) VALUES (%lld, %lld, %s, %s, now(), now())"
                     " RETURNING id",
                     (long long)from, (long long)to, show_reblogs ? "true" : "false", langs);
}

void th_block(th_env *e, int64_t from, int64_t to)
{
    th_exec(e,
            "INSERT INTO blocks (account_id, target_account_id, created_at, updated_at)"
            " VALUES (%lld, %lld, now(), now())",
            (long long)from, (long long)to);
}

void th_mute(th_env *e, int64_t from, int64_t to)
{
    th_exec(e,
            "INSERT INTO mutes (account_id, target_account_id, created_at, updated_at)"
            " VALUES (%lld, %lld, now(), now())",
            (long long)from, (long long)to);
}

int64_t th_list(th_env *e, int64_t owner, int replies_policy, bool exclusive)
{
    return th_scalar(e,
                     "INSERT INTO lists (account_id, title, replies_policy, exclusive, created_at,"
                     " updated_at) VALUES (%lld, 'l', %d, %s, now(), now()) RETURNING id",
                     (long long)owner, replies_policy, exclusive ? "true" : "false");
}

void th_list_add(th_env *e, int64_t list, int64_t account)
{
    th_exec(e,
            "INSERT INTO list_accounts (list_id, account_id, follow_id)"
            " SELECT %lld, %lld, (SELECT f.id FROM follows f JOIN lists l ON l.id = %lld"
            " WHERE f.account_id = l.account_id AND f.target_account_id = %lld)",
            (long long)list, (long long)account, (long long)list, (long long)account);
}

int64_t th_post(th_env *e, int64_t author, const th_status *opt, bool outbox)
{
    th_status none = {0};
    if (!opt)
        opt = &none;
    th_exec(e, "BEGIN");
    char reply_to[32] = "NULL", reply_acc[80] = "NULL", reblog[32] = "NULL", lang[40] = "NULL";
    if (opt->reply_to) {
        snprintf(reply_to, sizeof(reply_to), "%lld", (long long)opt->reply_to);
        snprintf(reply_acc, sizeof(reply_acc), "(SELECT account_id FROM statuses WHERE id = %lld)",
                 (long long)opt->reply_to);
    }
    if (opt->reblog_of)
        snprintf(reblog, sizeof(reblog), "%lld", (long long)opt->reblog_of);
    if (opt->language)
        snprintf(lang, sizeof(lang), "'%s'", opt->language);
    int64_t id = th_scalar(
        e,
        "INSERT INTO statuses (account_id, text, in_reply_to_id, in_reply_to_account_id, reply,"
        " reblog_of_id, visibility, language, local, created_at, updated_at)"
        " VALUES (%lld, '%s', %s, %s, %s, %s, %d, %s, true, now(), now()) RETURNING id",
        (long long)author, opt->text ? opt->text : "status", reply_to, reply_acc,
        opt->reply_to || opt->orphan_reply ? "true" : "false", reblog, opt->visibility, lang);
    for (int i = 0; i < 4 && opt->mentions[i]; i++)
        th_exec(e,
                "INSERT INTO mentions (status_id, account_id, created_at, updated_at)"
                " VALUES (%lld, %lld, now(), now())",
                (long long)id, (long long)opt->mentions[i]);
    if (outbox) {
        char err[256];
        if (fanout_outbox_status_created(e->pg, id, err, sizeof(err)) != 0)
            fail_msg("%s", err);
    }
    th_exec(e, "COMMIT");
    return id;
}

void th_delete(th_env *e, int64_t status_id, bool outbox)
{
    th_exec(e, "BEGIN");
    int64_t author =
        th_scalar(e, "SELECT account_id FROM statuses WHERE id = %lld", (long long)status_id);
    int64_t reblog =
        th_scalar(e, "SELECT reblog_of_id FROM statuses WHERE id = %lld", (long long)status_id);
    int vis =
        (int)th_scalar(e, "SELECT visibility FROM statuses WHERE id = %lld", (long long)status_id);
    th_exec(e, "UPDATE statuses SET deleted_at = now() WHERE id = %lld", (long long)status_id);
    if (outbox) {
        char err[256];
        if (fanout_outbox_status_deleted(e->pg, status_id, author, reblog, vis, err, sizeof(err)) !=
            0)
            fail_msg("%s", err);
    }
    th_exec(e, "COMMIT");
}

size_t th_feed(th_env *e, int type, int64_t id, int64_t *out, size_t max)
{
    char key[64];
    cache_feed_key(key, sizeof(key), type, id);
    redisReply *r = redisCommand(e->r, "ZREVRANGE %s 0 -1", key);
    assert_non_null(r);
    size_t n = 0;
    for (size_t i = 0; i < r->elements && n < max; i++)
        out[n++] = strtoll(r->element[i]->str, NULL, 10);
    freeReplyObject(r);
    return n;
}

bool th_feed_has(th_env *e, int type, int64_t id, int64_t status_id)
{
    char key[64];
    cache_feed_key(key, sizeof(key), type, id);
    redisReply *r = redisCommand(e->r, "ZSCORE %s %lld", key, (long long)status_id);
    assert_non_null(r);
    bool has = r->type == REDIS_REPLY_STRING;
    freeReplyObject(r);
    return has;
}

int64_t th_zcard(th_env *e, const char *key)
{
    redisReply *r = redisCommand(e->r, "ZCARD %s", key);
    assert_non_null(r);
    int64_t n = r->integer;
    freeReplyObject(r);
    return n;
}

bool th_exists(th_env *e, const char *key)
{
    redisReply *r = redisCommand(e->r, "EXISTS %s", key);
    assert_non_null(r);
    bool v = r->integer == 1;
    freeReplyObject(r);
    return v;
}

void th_build_feed(th_env *e, int type, int64_t id)
{
    char err[512];
    if (cache_feed_populate(e->c, e->pg, type, id, err, sizeof(err)) < 0)
        fail_msg("populate: %s", err);
}

size_t th_read_feed(th_env *e, int type, int64_t id, int64_t *out, size_t max)
{
    int st = cache_feed_state(e->c, type, id);
    assert_true(st >= 0);
    if (st == CACHE_FEED_ABSENT) {
        assert_int_equal(cache_regeneration_claim(e->c, type, id, 60), 1);
        th_build_feed(e, type, id);
        cache_regeneration_release(e->c, type, id);
    }
    return th_feed(e, type, id, out, max);
}

void th_fanout_start_proc(th_env *e, svc_proc *p, const char *extra)
{
    char ini[4096];
    int port = svc_free_port();
    snprintf(ini, sizeof(ini),
             "[fanout]\n"
             "database = %s\n"
             "redis_url = %s\n"
             "local_domain = tusk.test\n"
             "queues = default:2,pull:1\n"
             "admin_listen = 127.0.0.1:%d\n"
             "outbox_poll_ms = 100\n"
             "block_ms = 200\n"
             "%s\n",
             e->dsn, e->redis_url, port, extra ? extra : "");
    if (!svc_start_role(p, "fanout", ini, port))
        fail_msg("tusk fanout did not start");
}

void th_fanout_start(th_env *e, const char *extra)
{
    th_fanout_start_proc(e, &e->fanout, extra);
    e->fanout_running = true;
}

int th_fanout_stop(th_env *e, int sig)
{
    if (!e->fanout_running)
        return -1;
    e->fanout_running = false;
    char *log = e->fanout.log_path ? strdup(e->fanout.log_path) : NULL;
    int rc = svc_stop_role(&e->fanout, sig);
    if (log) {
        unlink(log);
        free(log);
    }
    return rc;
}

bool th_wait_idle(th_env *e, int timeout_ms)
{
    double deadline = svc_now_ms() + timeout_ms;
    int quiet = 0;
    while (svc_now_ms() < deadline) {
        int64_t unsent = th_scalar(e, "SELECT count(*) FROM tusk_outbox WHERE sent_at IS NULL");
        int64_t queued = 0;
        const char *streams[] = {"tusk:queue:default", "tusk:queue:pull"};
        for (int i = 0; i < 2; i++) {
            redisReply *r = redisCommand(e->r, "XLEN %s", streams[i]);
            if (!r) {
                th_redis_reconnect(e);
                queued = 1;
                break;
            }
            queued += r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
            freeReplyObject(r);
        }
        if (unsent == 0 && queued == 0) {
            if (++quiet >= 2)
                return true;
        } else {
            quiet = 0;
        }
        usleep(20000);
    }
    return false;
}
