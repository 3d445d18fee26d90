/*
 * PostgreSQL side of the cache: small libpq helpers, the LSN floor, and Mastodon's
 * "crutches" for one receiver and a batch of statuses: every relationship the home filter
 * needs (blocks, mutes, blocked-by, follows of reply targets, follow languages and
 * show_reblogs, exclusive lists) in ONE query, then a pure decision per status. Used by
 * merge, rebuild and the list pass; the fan-out, which has one status and many receivers,
 * loads the same facts per page of followers (fanout/deliver.c).
 */
#include "cache/internal.h"
#include "common/common.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool cache_pg_id_array(cache_buf *out, const int64_t *ids, size_t n)
{
    cache_buf_append(out, "{", 1);
    for (size_t i = 0; i < n; i++)
        cache_buf_printf(out, i ? ",%lld" : "%lld", (long long)ids[i]);
    return cache_buf_append(out, "}", 1);
}

int64_t cache_pg_int(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return 0;
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

bool cache_pg_bool(const PGresult *r, int row, int col)
{
    return !PQgetisnull(r, row, col) && PQgetvalue(r, row, col)[0] == 't';
}

char *cache_pg_strdup(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return NULL;
    return strdup(PQgetvalue(r, row, col));
}

PGresult *cache_pg_exec(PGconn *pg, const char *sql, int nparams, const char *const *params,
                        char *err, size_t errlen)
{
    PGresult *r = PQexecParams(pg, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        return r;
    snprintf(err, errlen, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(pg));
    /* drop libpq's trailing newline */
    size_t n = strlen(err);
    while (n && (err[n - 1] == '\n' || err[n - 1] == ' '))
        err[--n] = '\0';
    PQclear(r);
    return NULL;
}

int cache_parse_pg_int_array(const char *text, int64_t **out)
{
    *out = NULL;
    if (!text || text[0] != '{')
        return -1;
    size_t cap = 1;
    for (const char *p = text; *p; p++)
        if (*p == ',')
            cap++;
    int64_t *v = malloc(cap * sizeof(*v));
    if (!v)
        return -1;
    size_t n = 0;
    const char *p = text + 1;
    while (*p && *p != '}') {
        char *end;
        long long x = strtoll(p, &end, 10);
        if (end == p) {
            free(v);
            return -1;
        }
        if (n < cap)
            v[n++] = x;
        p = end;
        if (*p == ',')
            p++;
    }
    *out = v;
    return (int)n;
}

/* an LSN looks like "16/B374D848" */
static bool lsn_valid(const char *lsn)
{
    const char *slash = strchr(lsn, '/');
    if (!slash || slash == lsn || !slash[1] || strlen(lsn) > 17)
        return false;
    for (const char *p = lsn; *p; p++)
        if (p != slash && !isxdigit((unsigned char)*p))
            return false;
    return true;
}

int cache_pg_min_lsn(PGconn *pg, const char *lsn, int mode, char *err, size_t errlen)
{
    if (!lsn || !*lsn || mode < 0)
        return 0;
    /* a plain PostgreSQL would reject the setting; only a tusk proxy announces this */
    if (mode == 0 && !PQparameterStatus(pg, "tusk.commit_lsn"))
        return 0;
    if (!lsn_valid(lsn)) {
        snprintf(err, errlen, "invalid LSN \"%s\"", lsn);
        return -1;
    }
    char sql[64];
    snprintf(sql, sizeof(sql), "SET tusk.min_lsn = '%s'", lsn);
    /* simple protocol: the proxy intercepts SET tusk.* only in a Query message */
    PGresult *r = PQexec(pg, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        snprintf(err, errlen, "%s: %s", sql, PQerrorMessage(pg));
        PQclear(r);
        return -1;
    }
    PQclear(r);
    return 0;
}

/* ------------------------------------------------------------------ candidates */

void cache_candidates_free(cache_candidate *c, size_t n)
{
    if (!c)
        return;
    for (size_t i = 0; i < n; i++) {
        free(c[i].language);
        free(c[i].mentions);
    }
    free(c);
}

int cache_candidates_query(PGconn *pg, const char *sql, int nparams, const char *const *params,
                           cache_candidate **out, char *err, size_t errlen)
{
    *out = NULL;
    PGresult *r = cache_pg_exec(pg, sql, nparams, params, err, errlen);
    if (!r)
        return -1;
    int rows = PQntuples(r);
    cache_candidate *c = calloc(rows ? (size_t)rows : 1, sizeof(*c));
    if (!c) {
        PQclear(r);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < rows; i++) {
        cache_candidate *k = &c[i];
        k->st.id = cache_pg_int(r, i, 0);
        k->st.account_id = cache_pg_int(r, i, 1);
        k->st.reply = cache_pg_bool(r, i, 2);
        k->st.in_reply_to_id = cache_pg_int(r, i, 3);
        k->st.in_reply_to_account_id = cache_pg_int(r, i, 4);
        k->st.reblog_of_id = cache_pg_int(r, i, 5);
        k->st.reblog_account_id = cache_pg_int(r, i, 6);
        k->language = cache_pg_strdup(r, i, 7);
        k->st.language = k->language;
        k->reblog_missing = k->st.reblog_of_id && !k->st.reblog_account_id;
        int64_t *m1 = NULL, *m2 = NULL;
        int n1 = cache_parse_pg_int_array(PQgetvalue(r, i, 8), &m1);
        int n2 = cache_parse_pg_int_array(PQgetvalue(r, i, 9), &m2);
        if (n1 < 0)
            n1 = 0;
        if (n2 < 0)
            n2 = 0;
        if (n1 + n2 > 0) {
            k->mentions = malloc((size_t)(n1 + n2) * sizeof(int64_t));
            if (k->mentions) {
                if (n1)
                    memcpy(k->mentions, m1, (size_t)n1 * sizeof(int64_t));
                if (n2)
                    memcpy(k->mentions + n1, m2, (size_t)n2 * sizeof(int64_t));
                k->n_mentions = (size_t)(n1 + n2);
                k->n_own_mentions = (size_t)n1;
            }
        }
        free(m1);
        free(m2);
    }
    PQclear(r);
    *out = c;
    return rows;
}

/* follows of the receiver towards an author: languages and show_reblogs */
typedef struct follow_fact {
    int64_t target;
    char *languages;
    bool hide_reblogs;
} follow_fact;

static int cmp_follow_fact(const void *a, const void *b)
{
    int64_t x = ((const follow_fact *)a)->target, y = ((const follow_fact *)b)->target;
    return x < y ? -1 : x > y;
}

static const follow_fact *find_follow(const follow_fact *f, size_t n, int64_t target)
{
    follow_fact key = {.target = target};
    return bsearch(&key, f, n, sizeof(*f), cmp_follow_fact);
}

static const char crutch_sql[] =
    "SELECT 1, target_account_id, NULL, false FROM blocks"
    " WHERE account_id = $1 AND target_account_id = ANY($2::bigint[])"
    " UNION ALL SELECT 2, target_account_id, NULL, false FROM mutes"
    " WHERE account_id = $1 AND target_account_id = ANY($2::bigint[])"
    " UNION ALL SELECT 3, account_id, NULL, false FROM blocks"
    " WHERE target_account_id = $1 AND account_id = ANY($3::bigint[])"
    " UNION ALL SELECT 4, target_account_id, NULL, false FROM follows"
    " WHERE account_id = $1 AND target_account_id = ANY($4::bigint[])"
    " UNION ALL SELECT 5, target_account_id, array_to_string(languages, ','), NOT show_reblogs"
    " FROM follows WHERE account_id = $1 AND target_account_id = ANY($5::bigint[])"
    " UNION ALL SELECT 6, la.account_id, NULL, false FROM lists l"
    " JOIN list_accounts la ON la.list_id = l.id"
    " WHERE l.account_id = $1 AND l.exclusive AND la.account_id = ANY($5::bigint[])";

int cache_filter_candidates(PGconn *pg, int64_t receiver_id, bool list_timeline,
                            cache_candidate *cands, size_t n, bool *keep, char *err, size_t errlen)
{
    if (n == 0)
        return 0;
    cache_buf check, blockers, targets, authors;
    cache_buf_init(&check);
    cache_buf_init(&blockers);
    cache_buf_init(&targets);
    cache_buf_init(&authors);
    cache_idset blocking, muting, blocked_by, following, exclusive;
    cache_idset_init(&blocking);
    cache_idset_init(&muting);
    cache_idset_init(&blocked_by);
    cache_idset_init(&following);
    cache_idset_init(&exclusive);
    follow_fact *ff = NULL;
    size_t nff = 0;
    int rc = -1;
    PGresult *r = NULL;

    /* the id lists of the query; duplicates are harmless to = ANY() */
    cache_buf_puts(&check, "{");
    cache_buf_puts(&blockers, "{");
    cache_buf_puts(&targets, "{0");
    cache_buf_puts(&authors, "{");
    for (size_t i = 0; i < n; i++) {
        const cache_candidate *k = &cands[i];
        cache_buf_printf(&check, "%s%lld", i ? "," : "", (long long)k->st.account_id);
        cache_buf_printf(&blockers, "%s%lld", i ? "," : "", (long long)k->st.account_id);
        cache_buf_printf(&authors, "%s%lld", i ? "," : "", (long long)k->st.account_id);
        if (k->st.reblog_account_id) {
            cache_buf_printf(&check, ",%lld", (long long)k->st.reblog_account_id);
            cache_buf_printf(&blockers, ",%lld", (long long)k->st.reblog_account_id);
        }
        for (size_t m = 0; m < k->n_mentions; m++)
            cache_buf_printf(&check, ",%lld", (long long)k->mentions[m]);
        if (k->st.in_reply_to_account_id)
            cache_buf_printf(&targets, ",%lld", (long long)k->st.in_reply_to_account_id);
    }
    cache_buf_puts(&check, "}");
    cache_buf_puts(&blockers, "}");
    cache_buf_puts(&targets, "}");
    cache_buf_puts(&authors, "}");
    if (check.oom || blockers.oom || targets.oom || authors.oom) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    char recv[24];
    cache_id_text(recv, receiver_id);
    const char *params[] = {recv, check.data, blockers.data, targets.data, authors.data};
    r = cache_pg_exec(pg, crutch_sql, 5, params, err, errlen);
    if (!r)
        goto out;
    int rows = PQntuples(r);
    ff = calloc(rows ? (size_t)rows : 1, sizeof(*ff));
    if (!ff) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (int i = 0; i < rows; i++) {
        int kind = (int)cache_pg_int(r, i, 0);
        int64_t id = cache_pg_int(r, i, 1);
        switch (kind) {
        case 1:
            cache_idset_add(&blocking, id);
            break;
        case 2:
            cache_idset_add(&muting, id);
            break;
        case 3:
            cache_idset_add(&blocked_by, id);
            break;
        case 4:
            cache_idset_add(&following, id);
            break;
        case 5:
            ff[nff].target = id;
            ff[nff].languages = PQgetisnull(r, i, 2) ? NULL : PQgetvalue(r, i, 2);
            ff[nff].hide_reblogs = cache_pg_bool(r, i, 3);
            nff++;
            break;
        case 6:
            cache_idset_add(&exclusive, id);
            break;
        }
    }
    qsort(ff, nff, sizeof(*ff), cmp_follow_fact);

    for (size_t i = 0; i < n; i++) {
        cache_candidate *k = &cands[i];
        cache_filter_facts f = {0};
        /* everyone whose block or mute hides the status: author, mentioned accounts,
         * reblogged author and the accounts the reblogged status mentions */
        int64_t involved_author = k->st.account_id;
        f.blocking = cache_idset_has(&blocking, involved_author);
        f.muting = cache_idset_has(&muting, involved_author);
        if (k->st.reblog_account_id) {
            f.blocking = f.blocking || cache_idset_has(&blocking, k->st.reblog_account_id);
            f.muting = f.muting || cache_idset_has(&muting, k->st.reblog_account_id);
        }
        for (size_t m = 0; m < k->n_mentions; m++) {
            f.blocking = f.blocking || cache_idset_has(&blocking, k->mentions[m]);
            f.muting = f.muting || cache_idset_has(&muting, k->mentions[m]);
        }
        f.blocked_by_author = cache_idset_has(&blocked_by, k->st.account_id);
        f.blocked_by_reblog_author =
            k->st.reblog_account_id && cache_idset_has(&blocked_by, k->st.reblog_account_id);
        f.follows_reply_target = k->st.in_reply_to_account_id &&
                                 cache_idset_has(&following, k->st.in_reply_to_account_id);
        const follow_fact *fo = find_follow(ff, nff, k->st.account_id);
        f.languages = fo ? fo->languages : NULL;
        f.hides_reblogs = fo ? fo->hide_reblogs : false;
        f.author_in_exclusive_list = cache_idset_has(&exclusive, k->st.account_id);
        keep[i] = cache_filter_home(&k->st, receiver_id, &f, list_timeline) == CACHE_FILTER_NONE;
    }
    rc = 0;
out:
    PQclear(r);
    free(ff);
    cache_buf_free(&check);
    cache_buf_free(&blockers);
    cache_buf_free(&targets);
    cache_buf_free(&authors);
    cache_idset_free(&blocking);
    cache_idset_free(&muting);
    cache_idset_free(&blocked_by);
    cache_idset_free(&following);
    cache_idset_free(&exclusive);
    return rc;
}
