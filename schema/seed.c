/*
 * "tusk seed": a deterministic generator of Mastodon-shaped data (accounts, users, a
 * power-law follow graph with "big" accounts of exact follower counts, lists, blocks, mutes,
 * statuses with replies, reblogs and mentions, OAuth tokens) loaded with COPY.
 *
 * Design: everything is generated in memory first, from per-table PRNG streams of one seed
 * and an anchor time (--now), then streamed table by table through one COPY each, all in one
 * transaction. Same seed + flags + anchor => byte-identical tables. Ids are chosen here
 * (Snowflake-style ms << 16 | tail for accounts and statuses, 1..n for the rest) and the
 * serial sequences are moved past them, so later inserts by tusk or Mastodon never collide.
 * Counters (account_stats, status_stats) are computed from the generated rows with
 * Mastodon's rules (direct statuses are not counted; replies count only if public/unlisted).
 */
#include "common/common.h"
#include "schema/internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

static int seed_run(const seed_opts *o);

/* ==== public ==== */

/* "tusk seed DSN [options]" */
int schema_seed_main(int argc, char **argv)
{
    seed_opts o = {.accounts = 1000,
                   .follows = -1,
                   .statuses = -1,
                   .lists = -1,
                   .blocks = -1,
                   .mutes = -1,
                   .active_ratio = 0.5,
                   .remote_ratio = 0.1,
                   .seed = 1,
                   .domain = "tusk.test"};
    static const char *usage =
        "usage: tusk seed DSN [options]\n\n"
        "Fills an empty (migrated) database with deterministic Mastodon-shaped data via COPY.\n\n"
        "  --accounts N        accounts, local and remote (default 1000)\n"
        "  --follows N         follows rows in total, big accounts' included\n"
        "                      (default 10 per account plus the big accounts' followers)\n"
        "  --statuses N        statuses, incl. replies and reblogs (default 5 per account)\n"
        "  --lists N           lists (default one per 10 local accounts)\n"
        "  --blocks N          blocks (default accounts / 50)\n"
        "  --mutes N           mutes (default accounts / 50)\n"
        "  --active-ratio F    share of users signed in within 7 days (default 0.5)\n"
        "  --remote-ratio F    share of accounts on other servers (default 0.1)\n"
        "  --big-accounts L    comma list of exact follower counts, e.g. \"100000,10000\":\n"
        "                      accounts big1, big2, ... get exactly that many local followers\n"
        "  --seed S            PRNG seed (default 1)\n"
        "  --now MS            anchor time, ms since the epoch (default: now); the same seed,\n"
        "                      flags and anchor give identical tables\n"
        "  --domain D          local domain for URIs and e-mail (default tusk.test)\n"
        "  --tokens            print \"token account_id username active\" for every user\n"
        "  --truncate          empty the seeded tables first (otherwise they must be empty)\n"
        "  --check-fks         check foreign keys row by row even as a superuser (slower;\n"
        "                      by default a superuser skips them: the data is consistent by\n"
        "                      construction)\n"
        "  -q                  no progress output\n";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long num;
        struct {
            const char *name;
            long long *dst;
            long long min;
        } ints[] = {{"--accounts", &o.accounts, 1}, {"--follows", &o.follows, 0},
                    {"--statuses", &o.statuses, 0}, {"--lists", &o.lists, 0},
                    {"--blocks", &o.blocks, 0},     {"--mutes", &o.mutes, 0}};
        bool matched = false;
        for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
            if (strcmp(a, ints[k].name) != 0)
                continue;
            if (!v || !str_to_int(v, ints[k].min, 100000000, &num)) {
                fprintf(stderr, "tusk seed: %s needs a whole number from %lld to 100000000\n", a,
                        ints[k].min);
                return 2;
            }
            *ints[k].dst = num;
            matched = true;
            i++;
        }
        if (matched)
            continue;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(a, "--active-ratio") == 0 || strcmp(a, "--remote-ratio") == 0) {
            char *end;
            errno = 0;
            double f = v ? strtod(v, &end) : -1;
            if (!v || errno || *end || end == v || !(f >= 0 && f <= 1)) {
                fprintf(stderr, "tusk seed: %s needs a number from 0 to 1\n", a);
                return 2;
            }
            *(a[2] == 'a' ? &o.active_ratio : &o.remote_ratio) = f;
            i++;
        } else if (strcmp(a, "--seed") == 0 || strcmp(a, "--now") == 0) {
            if (!v || !str_to_int(v, 0, INT64_MAX, &num)) {
                fprintf(stderr, "tusk seed: %s needs a non-negative whole number\n", a);
                return 2;
            }
            if (a[2] == 's')
                o.seed = (uint64_t)num;
            else
                o.now_ms = num;
            i++;
        } else if (strcmp(a, "--big-accounts") == 0) {
            if (!v) {
                fprintf(stderr, "tusk seed: --big-accounts needs a list like \"100000,10000\"\n");
                return 2;
            }
            o.nbig = 0;
            char buf[512];
            if (!str_copy(buf, sizeof buf, v)) {
                fprintf(stderr, "tusk seed: --big-accounts list is too long\n");
                return 2;
            }
            for (char *save, *tok = strtok_r(buf, ", ", &save); tok;
                 tok = strtok_r(NULL, ", ", &save)) {
                if (o.nbig == SEED_MAX_BIG || !str_to_int(tok, 1, 100000000, &num)) {
                    fprintf(stderr,
                            "tusk seed: --big-accounts: \"%s\" is not a follower count (at most "
                            "%d counts, each 1..100000000)\n",
                            tok, SEED_MAX_BIG);
                    return 2;
                }
                o.big[o.nbig++] = num;
            }
            i++;
        } else if (strcmp(a, "--domain") == 0) {
            if (!v || !*v || strpbrk(v, " \t\n\\/@")) {
                fprintf(stderr, "tusk seed: --domain needs a host name\n");
                return 2;
            }
            o.domain = v;
            i++;
        } else if (strcmp(a, "--tokens") == 0) {
            o.tokens = true;
        } else if (strcmp(a, "--truncate") == 0) {
            o.truncate = true;
        } else if (strcmp(a, "--check-fks") == 0) {
            o.check_fks = true;
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            o.quiet = true;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "tusk seed: unknown option \"%s\"; try \"tusk seed --help\"\n", a);
            return 2;
        } else if (o.dsn) {
            fprintf(stderr, "tusk seed: more than one DSN given (\"%s\", \"%s\")\n", o.dsn, a);
            return 2;
        } else {
            o.dsn = a;
        }
    }
    if (!o.dsn) {
        fputs(usage, stderr);
        return 2;
    }
    if (o.now_ms == 0) {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        o.now_ms = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    }
    long long big_total = 0;
    for (int k = 0; k < o.nbig; k++)
        big_total += o.big[k];
    if (o.follows < 0) {
        /* ten per account, but never more than the graph can hold (gen_follows caps each
         * ordinary account at half the others as followers) */
        long long ordinary = o.accounts - o.nbig,
                  cap = o.accounts <= 2 ? o.accounts - 1 : (o.accounts - 1) / 2;
        long long want = 10 * o.accounts;
        o.follows = big_total + (want < ordinary * cap / 2 ? want : ordinary * cap / 2);
    }
    if (o.statuses < 0)
        o.statuses = 5 * o.accounts;
    if (o.blocks < 0)
        o.blocks = o.accounts / 50;
    if (o.mutes < 0)
        o.mutes = o.accounts / 50;
    return seed_run(&o);
}

/* ==== internal ==== */

static void say(const seed_world *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const seed_world *w, const char *fmt, ...)
{
    if (w->o->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fflush(stderr);
}

static const char *const SEED_TABLES[] = {
    "accounts", "account_stats",       "oauth_applications",
    "users",    "oauth_access_tokens", "conversations",
    "statuses", "status_stats",        "mentions",
    "follows",  "follow_requests", /* not seeded; truncated with the rest */
    "lists",    "list_accounts",       "blocks",
    "mutes"};
#define NSEED_TABLES (sizeof SEED_TABLES / sizeof SEED_TABLES[0])

static bool exec_cmd(PGconn *conn, const char *sql, char *err, size_t errlen)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok) {
        snprintf(err, errlen, "%s: %s", sql, PQresultErrorMessage(res));
        size_t n = strlen(err);
        while (n && err[n - 1] == '\n')
            err[--n] = '\0';
    }
    PQclear(res);
    return ok;
}

static void quiet_notice(void *arg, const PGresult *res)
{
    (void)arg;
    (void)res;
}

/* generate, then load everything in one transaction */
static int seed_run(const seed_opts *o)
{
    seed_world w = {.o = o};
    char err[1024] = "";
    double t0 = schema_now();
    int rc = 1;
    PGconn *conn = PQconnectdb(o->dsn);
    if (PQstatus(conn) != CONNECTION_OK) {
        snprintf(err, sizeof err, "cannot connect to the database: %s", PQerrorMessage(conn));
        goto out;
    }
    PQsetNoticeReceiver(conn, quiet_notice, NULL);
    /* the schema must be there, and the tables empty unless --truncate */
    PGresult *res = PQexec(conn, "SELECT (SELECT count(*) FROM (SELECT 1 FROM accounts LIMIT 1) a)"
                                 " + (SELECT count(*) FROM (SELECT 1 FROM follows LIMIT 1) f)"
                                 " + (SELECT count(*) FROM (SELECT 1 FROM statuses LIMIT 1) s)");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(err, sizeof err, "%s(has \"tusk migrate\" run on this database?)",
                 PQresultErrorMessage(res));
        PQclear(res);
        goto out;
    }
    bool has_rows = strcmp(PQgetvalue(res, 0, 0), "0") != 0;
    PQclear(res);
    if (has_rows && !o->truncate) {
        snprintf(err, sizeof err,
                 "the database already has accounts, follows or statuses; pass "
                 "--truncate to replace them");
        goto out;
    }

    say(&w, "tusk seed: generating (seed %llu, anchor --now %lld)\n", (unsigned long long)o->seed,
        (long long)o->now_ms);
    double g0 = schema_now();
    if (!schema_seed_generate(&w, err, sizeof err))
        goto out;
    double gen_secs = schema_now() - g0;
    say(&w, "  generated in %.2f s; loading with COPY\n", gen_secs);

    if (!exec_cmd(conn, "BEGIN", err, sizeof err) ||
        !exec_cmd(conn, "SET LOCAL synchronous_commit = off", err, sizeof err) ||
        !exec_cmd(conn, "SET LOCAL maintenance_work_mem = '256MB'", err, sizeof err))
        goto out;
    if (!o->check_fks) {
        /* Foreign-key checks are row-level triggers, half the cost of loading follows; a
         * superuser can switch them off for this transaction (session_replication_role),
         * and the generator only emits rows whose references exist. This also skips any
         * user triggers on these tables, which is what a bulk seed wants. */
        res = PQexec(conn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user");
        bool super = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
                     strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        PQclear(res);
        if (super &&
            !exec_cmd(conn, "SET LOCAL session_replication_role = replica", err, sizeof err))
            goto rollback;
        if (super)
            say(&w, "  superuser: foreign-key triggers off for the load (--check-fks keeps "
                    "them)\n");
    }
    if (o->truncate) {
        char sql[1024] = "TRUNCATE ";
        for (size_t i = 0; i < NSEED_TABLES; i++) {
            strcat(sql, SEED_TABLES[i]);
            strcat(sql, i + 1 < NSEED_TABLES ? ", " : "");
        }
        if (!exec_cmd(conn, sql, err, sizeof err))
            goto rollback;
    }
    double l0 = schema_now();
    if (!schema_seed_load(&w, conn, err, sizeof err))
        goto rollback;
    /* move serial sequences past the ids used (accounts/statuses use timestamp_id) */
    for (size_t i = 0; i < NSEED_TABLES; i++) {
        if (strcmp(SEED_TABLES[i], "accounts") == 0 || strcmp(SEED_TABLES[i], "statuses") == 0)
            continue;
        char sql[256];
        snprintf(sql, sizeof sql,
                 "SELECT setval(pg_get_serial_sequence('%s', 'id'), COALESCE(max(id), 0) + 1, "
                 "false) FROM %s",
                 SEED_TABLES[i], SEED_TABLES[i]);
        if (!exec_cmd(conn, sql, err, sizeof err))
            goto rollback;
    }
    if (!exec_cmd(conn, "COMMIT", err, sizeof err))
        goto out;
    double load_secs = schema_now() - l0;
    say(&w, "  committed in %.2f s; analyzing\n", load_secs);
    for (size_t i = 0; i < NSEED_TABLES; i++) {
        char sql[64];
        snprintf(sql, sizeof sql, "ANALYZE %s", SEED_TABLES[i]);
        if (!exec_cmd(conn, sql, err, sizeof err))
            goto out;
    }

    size_t active = 0;
    for (size_t k = 0; k < w.nlocal; k++)
        active += (w.acc_flags[w.locals[k]] & ACC_ACTIVE) != 0;
    size_t nss = 0, nrep = 0, nreb = 0;
    for (size_t i = 0; i < w.ns; i++) {
        nss += w.st_replies[i] || w.st_reblogs[i];
        nrep += w.st_kind[i] == KIND_REPLY;
        nreb += w.st_kind[i] == KIND_REBLOG;
    }
    printf("seeded %s (seed %llu, --now %lld):\n", o->domain, (unsigned long long)o->seed,
           (long long)o->now_ms);
    printf("  accounts            %zu (%zu local, %zu remote)\n", w.n, w.nlocal, w.n - w.nlocal);
    printf("  users               %zu (%zu active in the last 7 days)\n", w.nlocal, active);
    printf("  oauth_access_tokens %zu (scopes \"read write follow\")\n", w.nlocal);
    printf("  follows             %zu\n", w.nf);
    for (int k = 0; k < o->nbig; k++)
        printf("    big%d              %u followers\n", k + 1, w.followers_count[k]);
    printf("  statuses            %zu (%zu replies, %zu reblogs)\n", w.ns, nrep, nreb);
    printf("  conversations       %zu\n", w.nconv);
    printf("  status_stats        %zu\n", nss);
    printf("  mentions            %zu\n", w.nmen);
    printf("  lists               %zu (%zu list_accounts)\n", w.nl, w.nla);
    printf("  blocks              %zu\n", w.nb);
    printf("  mutes               %zu\n", w.nm);
    printf("  time                %.2f s (generate %.2f s, load %.2f s; follows %.2f s, "
           "%.0f rows/s with indexes)\n",
           schema_now() - t0, gen_secs, load_secs, w.follows_secs,
           w.follows_secs > 0 ? (double)w.nf / w.follows_secs : 0.0);
    if (o->tokens) {
        schema_rng trng;
        schema_rng_seed(&trng, o->seed, ST_TOKENS);
        char tok[44], u[32];
        schema_seed_token(&trng, tok); /* the application's uid and secret come first */
        schema_seed_token(&trng, tok);
        printf("tokens (token account_id username active):\n");
        for (size_t k = 0; k < w.nlocal; k++) {
            size_t i = w.locals[k];
            schema_seed_token(&trng, tok);
            schema_seed_username(&w, i, u, sizeof u);
            printf("%s %lld %s %d\n", tok, (long long)w.acc_id[i], u,
                   (w.acc_flags[i] & ACC_ACTIVE) != 0);
        }
    }
    rc = 0;
    goto out;
rollback:
    PQclear(PQexec(conn, "ROLLBACK"));
out:
    if (rc != 0) {
        size_t n = strlen(err);
        while (n && err[n - 1] == '\n')
            err[--n] = '\0';
        fprintf(stderr, "tusk seed: %s\n", err);
    }
    PQfinish(conn);
    schema_seed_free(&w);
    return rc;
}
