/*
 * "tusk seed", generation: builds every table of the seed in memory from per-table PRNG
 * streams of one seed and the anchor time, so the rows are a pure function of (seed, flags,
 * --now). The follow graph is a Zipf law on both ends plus "big" accounts with exact follower
 * counts; statuses are produced in time order so replies and reblogs point backwards, and
 * Mastodon's counters (account_stats, status_stats) are computed along the way.
 */
#include "common/common.h"
#include "schema/internal.h"

#include <crypt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool gen_accounts(seed_world *w, char *err, size_t errlen);
static bool gen_follows(seed_world *w, char *err, size_t errlen);
static bool gen_lists(seed_world *w, char *err, size_t errlen);
static bool gen_blocks_mutes(seed_world *w, char *err, size_t errlen);
static bool gen_statuses(seed_world *w, char *err, size_t errlen);
static void gen_password(seed_world *w);

/* ==== public ==== */

/* every table, in dependency order of the generators (lists and blocks need the graph) */
bool schema_seed_generate(seed_world *w, char *err, size_t errlen)
{
    if (!gen_accounts(w, err, errlen) || !gen_follows(w, err, errlen) ||
        !gen_lists(w, err, errlen) || !gen_blocks_mutes(w, err, errlen) ||
        !gen_statuses(w, err, errlen))
        return false;
    gen_password(w);
    return true;
}

/* release the generated arrays */
void schema_seed_free(seed_world *w)
{
    void *ptrs[] = {w->acc_id,          w->acc_ms,          w->acc_flags,
                    w->acc_user,        w->locals,          w->statuses_count,
                    w->followers_count, w->following_count, w->last_status_ms,
                    w->f_src,           w->f_dst,           w->out_off,
                    w->out_edge,        w->l_owner,         w->la_list,
                    w->la_edge,         w->b_pair,          w->m_pair,
                    w->st_id,           w->st_ms,           w->st_conv,
                    w->st_author,       w->st_parent,       w->st_reply_account,
                    w->st_kind,         w->st_vis,          w->st_lang,
                    w->st_replies,      w->st_reblogs,      w->men};
    for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++)
        free(ptrs[i]);
}

/* ==== helpers (the schema_seed_* ones are shared with seed_load.c) ==== */

/* a 64-bit hash of (seed, stream, index) for per-row attributes that need no state */
uint64_t schema_seed_row_hash(const seed_world *w, uint64_t stream, uint64_t idx)
{
    uint64_t st = w->o->seed * 0x9e3779b97f4a7c15ULL ^ (stream << 48) ^ idx;
    schema_splitmix64(&st);
    return schema_splitmix64(&st);
}

static void *xcalloc(size_t n, size_t size, char *err, size_t errlen)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        snprintf(err, errlen, "out of memory (%zu x %zu bytes)", n, size);
    return p;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* n random times in [lo, hi], sorted, and Snowflake ids for them: ms << 16 | tail, the tail
 * a per-ms hash base plus a counter, as timestamp_id() does, so ids are unique and ascend */
static bool make_times_ids(seed_world *w, schema_rng *rng, size_t n, int64_t lo, int64_t hi,
                           uint64_t salt, int64_t *ms, int64_t *ids, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++)
        ms[i] = lo + (int64_t)schema_rng_below(rng, (uint64_t)(hi - lo + 1));
    qsort(ms, n, sizeof *ms, cmp_i64);
    uint32_t k = 0;
    for (size_t i = 0; i < n; i++) {
        k = (i > 0 && ms[i] == ms[i - 1]) ? k + 1 : 0;
        if (k > 0xffff) {
            snprintf(err, errlen, "more than 65536 rows in one millisecond");
            return false;
        }
        uint64_t base = schema_seed_row_hash(w, salt, (uint64_t)ms[i]) & 0xffff;
        ids[i] = (int64_t)(((uint64_t)ms[i] << 16) | ((base + k) & 0xffff));
    }
    return true;
}

/* random time in [lo, hi] from a row hash */
int64_t schema_seed_row_time(const seed_world *w, uint64_t stream, uint64_t idx, int64_t lo,
                             int64_t hi)
{
    if (hi <= lo)
        return lo;
    return lo + (int64_t)(schema_seed_row_hash(w, stream, idx) % (uint64_t)(hi - lo + 1));
}

static void shuffle_u32(schema_rng *rng, uint32_t *a, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)schema_rng_below(rng, i);
        uint32_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

/* username of account i: big1.. for the big accounts, then user<i> */
void schema_seed_username(const seed_world *w, size_t i, char *out, size_t cap)
{
    if ((int)i < w->o->nbig)
        snprintf(out, cap, "big%zu", i + 1);
    else
        snprintf(out, cap, "user%zu", i);
}

/* host of a remote account: one of 20 made-up servers */
void schema_seed_remote_host(const seed_world *w, size_t i, char *out, size_t cap)
{
    snprintf(out, cap, "remote%u.example", (unsigned)(schema_seed_row_hash(w, ST_ROWS, i) % 20));
}

/* local accounts have a user; remote ones a domain */
bool schema_seed_is_local(const seed_world *w, size_t i)
{
    return w->acc_flags[i] & ACC_LOCAL;
}

/* does a follow b? binary search in a's bucket (sorted by target) */
static bool follows_edge(const seed_world *w, uint32_t a, uint32_t b)
{
    uint32_t lo = w->out_off[a], hi = w->out_off[a + 1];
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        uint32_t t = w->f_dst[w->out_edge[mid]];
        if (t == b)
            return true;
        if (t < b)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* open-addressing set of (a, b) pairs for blocks and mutes */
typedef struct pairset {
    uint64_t *slot;
    size_t mask;
} pairset;

static bool pairset_init(pairset *s, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n + 16)
        cap <<= 1;
    s->slot = calloc(cap, sizeof(uint64_t));
    s->mask = cap - 1;
    return s->slot != NULL;
}

/* insert; false if present. Key 0 is the empty slot, so store key+1 */
static bool pairset_add(pairset *s, uint32_t a, uint32_t b)
{
    uint64_t key = (((uint64_t)a << 32) | b) + 1;
    uint64_t h = key * 0x9e3779b97f4a7c15ULL;
    for (size_t i = (size_t)(h >> 20) & s->mask;; i = (i + 1) & s->mask) {
        if (s->slot[i] == key)
            return false;
        if (s->slot[i] == 0) {
            s->slot[i] = key;
            return true;
        }
    }
}

/* ==== internal: generation ==== */

/* accounts (big ones first, always local), users' activity */
static bool gen_accounts(seed_world *w, char *err, size_t errlen)
{
    const seed_opts *o = w->o;
    schema_rng rng;
    schema_rng_seed(&rng, o->seed, ST_ACCOUNTS);
    size_t n = w->n = (size_t)o->accounts;
    if ((size_t)o->nbig > n) {
        snprintf(err, errlen, "--big-accounts asks for %d big accounts but --accounts is %zu",
                 o->nbig, n);
        return false;
    }
    if (!(w->acc_id = xcalloc(n, sizeof(int64_t), err, errlen)) ||
        !(w->acc_ms = xcalloc(n, sizeof(int64_t), err, errlen)) ||
        !(w->acc_flags = xcalloc(n, 1, err, errlen)) ||
        !(w->acc_user = xcalloc(n, sizeof(uint32_t), err, errlen)) ||
        !(w->locals = xcalloc(n, sizeof(uint32_t), err, errlen)) ||
        !(w->statuses_count = xcalloc(n, sizeof(uint32_t), err, errlen)) ||
        !(w->followers_count = xcalloc(n, sizeof(uint32_t), err, errlen)) ||
        !(w->following_count = xcalloc(n, sizeof(uint32_t), err, errlen)) ||
        !(w->last_status_ms = xcalloc(n, sizeof(int64_t), err, errlen)))
        return false;
    /* created between two years and 31 days ago: before every status and follow */
    if (!make_times_ids(w, &rng, n, o->now_ms - 730 * DAY_MS, o->now_ms - 31 * DAY_MS, 101,
                        w->acc_ms, w->acc_id, err, errlen))
        return false;
    for (size_t i = 0; i < n; i++) {
        bool local = (int)i < o->nbig || !schema_rng_chance(&rng, o->remote_ratio);
        bool active = schema_rng_chance(&rng, o->active_ratio);
        w->acc_flags[i] = (uint8_t)((local ? ACC_LOCAL : 0) | (local && active ? ACC_ACTIVE : 0));
        if (local) {
            w->locals[w->nlocal++] = (uint32_t)i;
            w->acc_user[i] = (uint32_t)w->nlocal; /* users.id 1.. in account order */
        }
    }
    return true;
}

/* the follow graph: big accounts get exactly the asked number of distinct local followers;
 * the rest follows a Zipf law on both ends (few accounts are followed by many, few follow
 * many), in-degrees capped at half the accounts so only big accounts are huge */
static bool gen_follows(seed_world *w, char *err, size_t errlen)
{
    const seed_opts *o = w->o;
    schema_rng rng;
    schema_rng_seed(&rng, o->seed, ST_FOLLOWS);
    size_t n = w->n, K = (size_t)o->nbig;
    uint64_t big_total = 0;
    for (size_t k = 0; k < K; k++) {
        if ((uint64_t)o->big[k] > w->nlocal - 1) {
            snprintf(err, errlen,
                     "big account %zu wants %lld followers but there are only %zu other local "
                     "accounts (raise --accounts or lower --remote-ratio)",
                     k + 1, o->big[k], w->nlocal - 1);
            return false;
        }
        big_total += (uint64_t)o->big[k];
    }
    if ((uint64_t)o->follows < big_total) {
        snprintf(err, errlen,
                 "--follows %lld is less than the big accounts' followers (%llu); --follows "
                 "counts every follows row",
                 o->follows, (unsigned long long)big_total);
        return false;
    }
    uint64_t rest = (uint64_t)o->follows - big_total;
    size_t M = n - K;
    uint64_t cap = n <= 2 ? n - 1 : (n - 1) / 2;
    if (rest > 0 && (M == 0 || (uint64_t)M * cap < rest)) {
        snprintf(err, errlen,
                 "--follows %lld is too many for %zu accounts: at most %llu besides the big "
                 "accounts' (each account followed by at most half of the others)",
                 o->follows, n, (unsigned long long)((uint64_t)M * cap));
        return false;
    }
    w->nf = (size_t)o->follows;
    if (!(w->f_src = xcalloc(w->nf, sizeof(uint32_t), err, errlen)) ||
        !(w->f_dst = xcalloc(w->nf, sizeof(uint32_t), err, errlen)))
        return false;
    size_t e = 0;

    /* big accounts: partial Fisher-Yates over the local accounts, skipping the account */
    uint32_t *perm = xcalloc(w->nlocal, sizeof(uint32_t), err, errlen);
    if (!perm)
        return false;
    memcpy(perm, w->locals, w->nlocal * sizeof(uint32_t));
    for (size_t k = 0; k < K; k++) {
        size_t pos = 0;
        for (long long got = 0; got < o->big[k]; pos++) {
            size_t j = pos + (size_t)schema_rng_below(&rng, w->nlocal - pos);
            uint32_t t = perm[pos];
            perm[pos] = perm[j];
            perm[j] = t;
            if (perm[pos] == k)
                continue;
            w->f_src[e] = perm[pos];
            w->f_dst[e] = (uint32_t)k;
            e++;
            got++;
        }
    }
    free(perm);

    if (rest > 0) {
        /* in-degree per popularity rank, then the rank -> account mapping shuffled */
        schema_zipf zt, zf;
        uint64_t *deg = xcalloc(M, sizeof(uint64_t), err, errlen);
        uint32_t *rank_t = xcalloc(M, sizeof(uint32_t), err, errlen);
        uint32_t *rank_f = xcalloc(n, sizeof(uint32_t), err, errlen);
        uint32_t *mark = xcalloc(n, sizeof(uint32_t), err, errlen);
        uint32_t *all = xcalloc(n, sizeof(uint32_t), err, errlen);
        if (!deg || !rank_t || !rank_f || !mark || !all || !schema_zipf_init(&zt, M, 1.0)) {
            free(deg), free(rank_t), free(rank_f), free(mark), free(all);
            snprintf(err, errlen, "out of memory");
            return false;
        }
        if (!schema_zipf_init(&zf, n, 0.7)) {
            schema_zipf_free(&zt);
            free(deg), free(rank_t), free(rank_f), free(mark), free(all);
            snprintf(err, errlen, "out of memory");
            return false;
        }
        uint64_t assigned = 0;
        for (size_t r = 0; r < M; r++) {
            uint64_t d = (uint64_t)floor((double)rest * schema_zipf_prob(&zt, r));
            deg[r] = d > cap ? cap : d;
            assigned += deg[r];
        }
        /* what rounding and the cap left over goes one by one to the top ranks with room */
        while (assigned < rest) {
            for (size_t r = 0; r < M && assigned < rest; r++) {
                if (deg[r] < cap) {
                    deg[r]++;
                    assigned++;
                }
            }
        }
        for (size_t r = 0; r < M; r++)
            rank_t[r] = (uint32_t)(K + r);
        shuffle_u32(&rng, rank_t, M);
        for (size_t i = 0; i < n; i++)
            rank_f[i] = all[i] = (uint32_t)i;
        shuffle_u32(&rng, rank_f, n);
        for (size_t r = 0; r < M; r++) {
            uint32_t t = rank_t[r];
            uint64_t d = deg[r];
            uint32_t stamp = (uint32_t)r + 1;
            if (d > n / 8) {
                /* dense: uniform distinct sample, rejection would crawl */
                size_t pos = 0;
                for (uint64_t got = 0; got < d; pos++) {
                    size_t j = pos + (size_t)schema_rng_below(&rng, n - pos);
                    uint32_t x = all[pos];
                    all[pos] = all[j];
                    all[j] = x;
                    if (all[pos] == t)
                        continue;
                    w->f_src[e] = all[pos];
                    w->f_dst[e] = t;
                    e++;
                    got++;
                }
                continue;
            }
            /* sparse: followers drawn by their own Zipf activity rank, duplicates rejected;
             * after many rejections fall back to uniform so the loop always ends */
            uint64_t attempts = 0;
            for (uint64_t got = 0; got < d; attempts++) {
                uint32_t a = attempts < 8 * d + 64 ? rank_f[schema_zipf_sample(&zf, &rng)]
                                                   : (uint32_t)schema_rng_below(&rng, n);
                if (a == t || mark[a] == stamp)
                    continue;
                mark[a] = stamp;
                w->f_src[e] = a;
                w->f_dst[e] = t;
                e++;
                got++;
            }
        }
        schema_zipf_free(&zt);
        schema_zipf_free(&zf);
        free(deg), free(rank_t), free(rank_f), free(mark), free(all);
    }
    if (e != w->nf) {
        snprintf(err, errlen, "internal error: %zu follows generated, %zu asked", e, w->nf);
        return false;
    }

    /* counters and the CSR by follower, each bucket sorted by target (two counting sorts) */
    uint32_t *in_off = xcalloc(n + 1, sizeof(uint32_t), err, errlen);
    uint32_t *in_edge = xcalloc(w->nf, sizeof(uint32_t), err, errlen);
    w->out_off = xcalloc(n + 1, sizeof(uint32_t), err, errlen);
    w->out_edge = xcalloc(w->nf, sizeof(uint32_t), err, errlen);
    if (!in_off || !in_edge || !w->out_off || !w->out_edge) {
        free(in_off), free(in_edge);
        return false;
    }
    for (size_t i = 0; i < w->nf; i++) {
        w->followers_count[w->f_dst[i]]++;
        w->following_count[w->f_src[i]]++;
    }
    for (size_t i = 0; i < n; i++) {
        in_off[i + 1] = in_off[i] + w->followers_count[i];
        w->out_off[i + 1] = w->out_off[i] + w->following_count[i];
    }
    uint32_t *fill = xcalloc(n, sizeof(uint32_t), err, errlen);
    if (!fill) {
        free(in_off), free(in_edge);
        return false;
    }
    for (size_t i = 0; i < w->nf; i++)
        in_edge[in_off[w->f_dst[i]] + fill[w->f_dst[i]]++] = (uint32_t)i;
    memset(fill, 0, n * sizeof(uint32_t));
    for (size_t t = 0; t < n; t++)
        for (uint32_t k = in_off[t]; k < in_off[t + 1]; k++) {
            uint32_t ed = in_edge[k], s = w->f_src[ed];
            w->out_edge[w->out_off[s] + fill[s]++] = ed;
        }
    free(fill), free(in_off), free(in_edge);
    return true;
}

/* lists of local accounts, members taken from the owner's follows */
static bool gen_lists(seed_world *w, char *err, size_t errlen)
{
    const seed_opts *o = w->o;
    schema_rng rng;
    schema_rng_seed(&rng, o->seed, ST_LISTS);
    w->nl = (size_t)(o->lists >= 0 ? o->lists : (long long)w->nlocal / 10);
    if (w->nl == 0)
        return true;
    uint32_t *owners = xcalloc(w->nlocal, sizeof(uint32_t), err, errlen);
    if (!owners)
        return false;
    size_t nown = 0;
    for (size_t i = 0; i < w->nlocal; i++)
        if (w->following_count[w->locals[i]] > 0)
            owners[nown++] = w->locals[i];
    if (nown == 0) {
        free(owners);
        snprintf(err, errlen, "cannot make %zu lists: no local account follows anyone", w->nl);
        return false;
    }
    w->l_owner = xcalloc(w->nl, sizeof(uint32_t), err, errlen);
    size_t cap = w->nl * 8 + 16;
    w->la_list = xcalloc(cap, sizeof(uint32_t), err, errlen);
    w->la_edge = xcalloc(cap, sizeof(uint32_t), err, errlen);
    uint32_t *tmp = NULL;
    size_t tmpcap = 0;
    if (!w->l_owner || !w->la_list || !w->la_edge) {
        free(owners);
        return false;
    }
    for (size_t l = 0; l < w->nl; l++) {
        uint32_t owner = owners[schema_rng_below(&rng, nown)];
        w->l_owner[l] = owner;
        uint32_t deg = w->following_count[owner];
        uint32_t members = 1 + (uint32_t)schema_rng_below(&rng, deg < 15 ? deg : 15);
        if (deg > tmpcap) {
            free(tmp);
            tmpcap = deg;
            if (!(tmp = xcalloc(tmpcap, sizeof(uint32_t), err, errlen))) {
                free(owners);
                return false;
            }
        }
        memcpy(tmp, w->out_edge + w->out_off[owner], deg * sizeof(uint32_t));
        for (uint32_t k = 0; k < members; k++) { /* partial Fisher-Yates: distinct members */
            uint32_t j = k + (uint32_t)schema_rng_below(&rng, deg - k);
            uint32_t x = tmp[k];
            tmp[k] = tmp[j];
            tmp[j] = x;
            if (w->nla == cap) {
                cap *= 2;
                uint32_t *a = realloc(w->la_list, cap * sizeof(uint32_t));
                if (a)
                    w->la_list = a;
                uint32_t *b = realloc(w->la_edge, cap * sizeof(uint32_t));
                if (b)
                    w->la_edge = b;
                if (!a || !b) {
                    free(owners), free(tmp);
                    snprintf(err, errlen, "out of memory");
                    return false;
                }
            }
            w->la_list[w->nla] = (uint32_t)l;
            w->la_edge[w->nla] = tmp[k];
            w->nla++;
        }
    }
    free(owners), free(tmp);
    return true;
}

/* blocks between accounts with no follow either way (Mastodon removes follows on block);
 * mutes mostly of accounts the muter follows, where they matter for home feeds */
static bool gen_blocks_mutes(seed_world *w, char *err, size_t errlen)
{
    const seed_opts *o = w->o;
    for (int pass = 0; pass < 2; pass++) {
        size_t want = (size_t)(pass == 0 ? o->blocks : o->mutes);
        if (want == 0)
            continue;
        if (w->n < 2) {
            snprintf(err, errlen, "blocks and mutes need at least 2 accounts");
            return false;
        }
        schema_rng rng;
        schema_rng_seed(&rng, o->seed, pass == 0 ? ST_BLOCKS : ST_MUTES);
        uint32_t *pairs = xcalloc(2 * want, sizeof(uint32_t), err, errlen);
        pairset set;
        if (!pairs || !pairset_init(&set, want)) {
            free(pairs);
            snprintf(err, errlen, "out of memory");
            return false;
        }
        size_t got = 0;
        uint64_t attempts = 0, limit = 100 * (uint64_t)want + 1000;
        while (got < want && attempts++ < limit) {
            uint32_t a, b;
            if (pass == 1 && w->nf > 0 && schema_rng_chance(&rng, 0.7)) {
                size_t ed = (size_t)schema_rng_below(&rng, w->nf);
                a = w->f_src[ed];
                b = w->f_dst[ed];
            } else {
                a = (uint32_t)schema_rng_below(&rng, w->n);
                b = (uint32_t)schema_rng_below(&rng, w->n);
                if (a == b)
                    continue;
                if (pass == 0 && (follows_edge(w, a, b) || follows_edge(w, b, a)))
                    continue;
            }
            if (!pairset_add(&set, a, b))
                continue;
            pairs[2 * got] = a;
            pairs[2 * got + 1] = b;
            got++;
        }
        free(set.slot);
        if (got < want) {
            free(pairs);
            snprintf(err, errlen,
                     "could only find %zu distinct %s pairs of the %zu asked; lower "
                     "--%s",
                     got, pass == 0 ? "block" : "mute", want, pass == 0 ? "blocks" : "mutes");
            return false;
        }
        if (pass == 0) {
            w->b_pair = pairs;
            w->nb = got;
        } else {
            w->m_pair = pairs;
            w->nm = got;
        }
    }
    return true;
}

static bool add_mention(seed_world *w, uint32_t status, uint32_t account)
{
    for (size_t k = w->nmen; k > 0 && w->men[2 * (k - 1)] == status; k--)
        if (w->men[2 * (k - 1) + 1] == account)
            return true; /* mentions are unique per (account, status) */
    if (w->nmen == w->men_cap) {
        size_t cap = w->men_cap ? 2 * w->men_cap : 1024;
        uint32_t *m = realloc(w->men, 2 * cap * sizeof(uint32_t));
        if (!m)
            return false;
        w->men = m;
        w->men_cap = cap;
    }
    w->men[2 * w->nmen] = status;
    w->men[2 * w->nmen + 1] = account;
    w->nmen++;
    return true;
}

/* statuses over the last 30 days in time order: originals, replies (threads and replies to
 * others), reblogs of recent public posts, mentions, and Mastodon's counters */
static bool gen_statuses(seed_world *w, char *err, size_t errlen)
{
    const seed_opts *o = w->o;
    schema_rng rng;
    schema_rng_seed(&rng, o->seed, ST_STATUSES);
    size_t ns = w->ns = (size_t)o->statuses, n = w->n;
    if (ns == 0)
        return true;
    if (!(w->st_id = xcalloc(ns, sizeof(int64_t), err, errlen)) ||
        !(w->st_ms = xcalloc(ns, sizeof(int64_t), err, errlen)) ||
        !(w->st_conv = xcalloc(ns, sizeof(int64_t), err, errlen)) ||
        !(w->st_author = xcalloc(ns, sizeof(uint32_t), err, errlen)) ||
        !(w->st_parent = xcalloc(ns, sizeof(int32_t), err, errlen)) ||
        !(w->st_reply_account = xcalloc(ns, sizeof(int32_t), err, errlen)) ||
        !(w->st_kind = xcalloc(ns, 1, err, errlen)) || !(w->st_vis = xcalloc(ns, 1, err, errlen)) ||
        !(w->st_lang = xcalloc(ns, 1, err, errlen)) ||
        !(w->st_replies = xcalloc(ns, sizeof(uint32_t), err, errlen)) ||
        !(w->st_reblogs = xcalloc(ns, sizeof(uint32_t), err, errlen)))
        return false;
    if (ns > INT32_MAX) {
        snprintf(err, errlen, "too many statuses");
        return false;
    }
    if (!make_times_ids(w, &rng, ns, o->now_ms - 30 * DAY_MS, o->now_ms - 60 * 1000, 102, w->st_ms,
                        w->st_id, err, errlen))
        return false;
    schema_zipf za;
    uint32_t *rank_a = xcalloc(n, sizeof(uint32_t), err, errlen);
    int32_t *last_own = xcalloc(n, sizeof(int32_t), err, errlen); /* newest non-reblog */
    if (!rank_a || !last_own || !schema_zipf_init(&za, n, 0.8)) {
        free(rank_a), free(last_own);
        snprintf(err, errlen, "out of memory");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        rank_a[i] = (uint32_t)i;
        last_own[i] = -1;
    }
    shuffle_u32(&rng, rank_a, n);
    const size_t window = 2000; /* replies and reblogs go to recent statuses */
    for (size_t i = 0; i < ns; i++) {
        uint32_t a = rank_a[schema_zipf_sample(&za, &rng)];
        w->st_author[i] = a;
        w->st_parent[i] = -1;
        w->st_reply_account[i] = -1;
        double r = schema_rng_double(&rng);
        uint8_t kind = KIND_ORIGINAL;
        int32_t parent = -1;
        size_t lo = i > window ? i - window : 0;
        if (i > 0 && r < 0.10) { /* reblog a recent public/unlisted non-reblog of another */
            for (int tries = 0; tries < 8 && parent < 0; tries++) {
                size_t j = lo + (size_t)schema_rng_below(&rng, i - lo);
                if (w->st_kind[j] != KIND_REBLOG && w->st_vis[j] <= 1 && w->st_author[j] != a)
                    parent = (int32_t)j;
            }
            if (parent >= 0)
                kind = KIND_REBLOG;
        } else if (i > 0 && r < 0.28) { /* reply: a third continue their own thread */
            if (last_own[a] >= 0 && schema_rng_chance(&rng, 0.33))
                parent = last_own[a];
            for (int tries = 0; tries < 8 && parent < 0; tries++) {
                size_t j = lo + (size_t)schema_rng_below(&rng, i - lo);
                if (w->st_kind[j] != KIND_REBLOG && w->st_vis[j] != 3)
                    parent = (int32_t)j;
            }
            if (parent >= 0)
                kind = KIND_REPLY;
        }
        w->st_kind[i] = kind;
        w->st_parent[i] = parent;
        double v = schema_rng_double(&rng);
        uint8_t vis = v < 0.70 ? 0 : v < 0.85 ? 1 : v < 0.97 ? 2 : 3;
        double lr = schema_rng_double(&rng);
        w->st_lang[i] = lr < 0.60   ? 0
                        : lr < 0.75 ? 1
                        : lr < 0.85 ? 2
                        : lr < 0.92 ? 3
                        : lr < 0.95 ? 4
                                    : 5;
        if (kind == KIND_REBLOG) {
            w->st_vis[i] = v < 0.9 ? 0 : 1;
            w->st_lang[i] = 5; /* NULL: a reblog has no text of its own */
            w->st_conv[i] = 0;
            w->st_reblogs[parent]++;
        } else if (kind == KIND_REPLY) {
            /* a reply is at most as visible as its parent */
            w->st_vis[i] = vis > w->st_vis[parent] ? vis : w->st_vis[parent];
            w->st_conv[i] = w->st_conv[parent];
            /* Mastodon carries the thread's addressee over a self-reply chain */
            uint32_t pa = w->st_author[parent];
            w->st_reply_account[i] = (pa == a && w->st_kind[parent] == KIND_REPLY)
                                         ? w->st_reply_account[parent]
                                         : (int32_t)pa;
            if (w->st_vis[i] <= 1)
                w->st_replies[parent]++;
            if (pa != a && !add_mention(w, (uint32_t)i, pa))
                goto oom;
        } else {
            w->st_vis[i] = vis;
            w->st_conv[i] = (int64_t)++w->nconv;
        }
        if (kind != KIND_REBLOG) {
            last_own[a] = (int32_t)i;
            /* direct messages always mention someone; some other posts do too */
            if ((w->st_vis[i] == 3 || schema_rng_chance(&rng, 0.05)) && n > 1) {
                uint32_t m = (uint32_t)schema_rng_below(&rng, n - 1);
                if (m >= a)
                    m++;
                if (!add_mention(w, (uint32_t)i, m))
                    goto oom;
            }
        }
        if (w->st_vis[i] != 3) { /* Mastodon does not count direct statuses */
            w->statuses_count[a]++;
            w->last_status_ms[a] = w->st_ms[i];
        }
    }
    schema_zipf_free(&za);
    free(rank_a), free(last_own);
    return true;
oom:
    schema_zipf_free(&za);
    free(rank_a), free(last_own);
    snprintf(err, errlen, "out of memory");
    return false;
}

/* one bcrypt hash of "password" shared by every seeded user (Devise's format), so a web
 * sign-in works in a demo; computed once, cost 10 like Devise's default */
static void gen_password(seed_world *w)
{
    static const char alphabet[] =
        "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    char setting[32] = "$2b$10$";
    schema_rng rng;
    schema_rng_seed(&rng, w->o->seed, ST_TOKENS + 100);
    for (int i = 0; i < 22; i++)
        setting[7 + i] = alphabet[schema_rng_below(&rng, 64)];
    setting[29] = '\0';
    w->password_hash[0] = '\0';
    struct crypt_data *cd = calloc(1, sizeof *cd);
    if (!cd)
        return;
    const char *h = crypt_r("password", setting, cd);
    if (h && h[0] == '$')
        str_copy(w->password_hash, sizeof w->password_hash, h);
    free(cd);
}

/* 43-character URL-safe token from 32 random bytes, like Doorkeeper's */
void schema_seed_token(schema_rng *rng, char out[44])
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t raw[33];
    for (int i = 0; i < 32; i += 8) {
        uint64_t x = schema_rng_next(rng);
        memcpy(raw + i, &x, 8); /* byte order matters for determinism across hosts: */
        for (int b = 0; b < 8; b++)
            raw[i + b] = (uint8_t)(x >> (8 * b));
    }
    raw[32] = 0;
    int o = 0;
    for (int i = 0; i < 33 && o < 43; i += 3) {
        uint32_t v = ((uint32_t)raw[i] << 16) | ((uint32_t)raw[i + 1] << 8) | raw[i + 2];
        for (int k = 3; k >= 0 && o < 43; k--)
            out[o++] = b64[(v >> (6 * k)) & 63];
    }
    out[43] = '\0';
}
