/*
 * The status cache: every status the feeds point at is stored once in Redis, msgpack-encoded
 * under tusk:status:<id> with a TTL, together with what rendering it needs (its account and
 * mentions), so a timeline page is one MGET per shard instead of a join per request. Misses
 * are loaded from PostgreSQL in one query per batch and written back. The record is an array
 * led by a format version: a reader that meets another version treats it as a miss.
 *
 * The embedded account counters (statuses_count...) are as fresh as the TTL; deletes and
 * edits invalidate the record explicitly.
 */
#include "cache/internal.h"
#include "common/common.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FORMAT_VERSION 1
#define STATUS_FIELDS 21
#define ACCOUNT_FIELDS 16

/* ------------------------------------------------------------------ free */

static void account_clear(cache_account *a)
{
    free(a->username);
    free(a->domain);
    free(a->display_name);
    free(a->note);
    free(a->url);
    free(a->uri);
    free(a->avatar);
    free(a->header);
    free(a->fields_json);
    memset(a, 0, sizeof(*a));
}

void cache_status_free(cache_status *s)
{
    if (!s)
        return;
    free(s->text);
    free(s->spoiler_text);
    free(s->language);
    free(s->uri);
    free(s->url);
    account_clear(&s->account);
    for (size_t i = 0; i < s->n_mentions; i++) {
        free(s->mentions[i].username);
        free(s->mentions[i].domain);
        free(s->mentions[i].url);
    }
    free(s->mentions);
    cache_status_free(s->reblog);
    free(s);
}

/* ------------------------------------------------------------------ msgpack encode */

static int buf_write(void *data, const char *buf, size_t len)
{
    return cache_buf_append(data, buf, len) ? 0 : -1;
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    if (!s) {
        msgpack_pack_nil(pk);
        return;
    }
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_account(msgpack_packer *pk, const cache_account *a)
{
    msgpack_pack_array(pk, ACCOUNT_FIELDS);
    msgpack_pack_int64(pk, a->id);
    pack_str(pk, a->username ? a->username : "");
    pack_str(pk, a->domain);
    pack_str(pk, a->display_name ? a->display_name : "");
    pack_str(pk, a->note ? a->note : "");
    pack_str(pk, a->url);
    pack_str(pk, a->uri);
    pack_str(pk, a->avatar);
    pack_str(pk, a->header);
    pack_str(pk, a->fields_json ? a->fields_json : "[]");
    msgpack_pack_int(pk, (a->locked ? 1 : 0) | (a->bot ? 2 : 0) | (a->group ? 4 : 0) |
                             (a->discoverable ? 8 : 0));
    msgpack_pack_int64(pk, a->created_at_ms);
    msgpack_pack_int64(pk, a->last_status_at_ms);
    msgpack_pack_int64(pk, a->statuses_count);
    msgpack_pack_int64(pk, a->followers_count);
    msgpack_pack_int64(pk, a->following_count);
}

bool cache_status_encode(const cache_status *s, cache_buf *out)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, buf_write);
    msgpack_pack_array(&pk, STATUS_FIELDS);
    msgpack_pack_int(&pk, FORMAT_VERSION);
    msgpack_pack_int64(&pk, s->id);
    msgpack_pack_int64(&pk, s->account_id);
    msgpack_pack_int64(&pk, s->created_at_ms);
    msgpack_pack_int64(&pk, s->edited_at_ms);
    msgpack_pack_int64(&pk, s->in_reply_to_id);
    msgpack_pack_int64(&pk, s->in_reply_to_account_id);
    msgpack_pack_int64(&pk, s->reblog_of_id);
    msgpack_pack_int64(&pk, s->reblog_account_id);
    msgpack_pack_int(&pk, s->visibility);
    msgpack_pack_int(&pk, (s->sensitive ? 1 : 0) | (s->reply ? 2 : 0) | (s->local ? 4 : 0));
    pack_str(&pk, s->text ? s->text : "");
    pack_str(&pk, s->spoiler_text ? s->spoiler_text : "");
    pack_str(&pk, s->language);
    pack_str(&pk, s->uri);
    pack_str(&pk, s->url);
    msgpack_pack_int64(&pk, s->replies_count);
    msgpack_pack_int64(&pk, s->reblogs_count);
    msgpack_pack_int64(&pk, s->favourites_count);
    pack_account(&pk, &s->account);
    msgpack_pack_array(&pk, (uint32_t)s->n_mentions);
    for (size_t i = 0; i < s->n_mentions; i++) {
        msgpack_pack_array(&pk, 4);
        msgpack_pack_int64(&pk, s->mentions[i].account_id);
        pack_str(&pk, s->mentions[i].username ? s->mentions[i].username : "");
        pack_str(&pk, s->mentions[i].domain);
        pack_str(&pk, s->mentions[i].url);
    }
    return !out->oom;
}

/* ------------------------------------------------------------------ msgpack decode */

/* A bounds-checked reader for the subset of msgpack the encoder writes (ints, strings, nil,
 * arrays). msgpack-c's unpacker allocates an array's elements from its declared length before
 * looking at the data, so one corrupt length byte could ask for gigabytes; here every length
 * is checked against the bytes that remain, and strings are copied straight out. */
typedef struct mp_reader {
    const uint8_t *p;
    const uint8_t *end;
    bool bad;
} mp_reader;

static bool mp_need(mp_reader *r, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = true;
        return false;
    }
    return true;
}

static uint64_t mp_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* an array header; its count, or -1 */
static int64_t mp_array(mp_reader *r)
{
    if (!mp_need(r, 1))
        return -1;
    uint8_t b = *r->p++;
    uint64_t n;
    if (b >= 0x90 && b <= 0x9f)
        n = b & 0x0f;
    else if (b == 0xdc && mp_need(r, 2))
        n = mp_be(r->p, 2), r->p += 2;
    else if (b == 0xdd && mp_need(r, 4))
        n = mp_be(r->p, 4), r->p += 4;
    else {
        r->bad = true;
        return -1;
    }
    /* every element takes at least one byte */
    if (n > (uint64_t)(r->end - r->p)) {
        r->bad = true;
        return -1;
    }
    return (int64_t)n;
}

static bool get_int(mp_reader *r, int64_t *v)
{
    if (!mp_need(r, 1))
        return false;
    uint8_t b = *r->p++;
    int n = 0;
    bool sign = false;
    if (b <= 0x7f) {
        *v = b;
        return true;
    }
    if (b >= 0xe0) {
        *v = (int8_t)b;
        return true;
    }
    switch (b) {
    case 0xcc:
        n = 1;
        break;
    case 0xcd:
        n = 2;
        break;
    case 0xce:
        n = 4;
        break;
    case 0xcf:
        n = 8;
        break;
    case 0xd0:
        n = 1;
        sign = true;
        break;
    case 0xd1:
        n = 2;
        sign = true;
        break;
    case 0xd2:
        n = 4;
        sign = true;
        break;
    case 0xd3:
        n = 8;
        sign = true;
        break;
    default:
        r->bad = true;
        return false;
    }
    if (!mp_need(r, (size_t)n))
        return false;
    uint64_t u = mp_be(r->p, n);
    r->p += n;
    if (sign) {
        int shift = 64 - 8 * n;
        *v = shift ? (int64_t)(u << shift) >> shift : (int64_t)u;
    } else {
        if (u > (uint64_t)INT64_MAX) {
            r->bad = true;
            return false;
        }
        *v = (int64_t)u;
    }
    return true;
}

/* a string (or nil when allow_nil) into a fresh copy */
static bool get_str(mp_reader *r, char **out, bool allow_nil)
{
    *out = NULL;
    if (!mp_need(r, 1))
        return false;
    uint8_t b = *r->p++;
    uint64_t n;
    if (b == 0xc0) {
        if (!allow_nil)
            r->bad = true;
        return allow_nil;
    }
    if (b >= 0xa0 && b <= 0xbf)
        n = b & 0x1f;
    else if (b == 0xd9 && mp_need(r, 1))
        n = *r->p++;
    else if (b == 0xda && mp_need(r, 2))
        n = mp_be(r->p, 2), r->p += 2;
    else if (b == 0xdb && mp_need(r, 4))
        n = mp_be(r->p, 4), r->p += 4;
    else {
        r->bad = true;
        return false;
    }
    if (!mp_need(r, (size_t)n))
        return false;
    char *p = malloc((size_t)n + 1);
    if (!p) {
        r->bad = true;
        return false;
    }
    memcpy(p, r->p, (size_t)n);
    p[n] = '\0';
    r->p += n;
    *out = p;
    return true;
}

static bool decode_account(mp_reader *r, cache_account *a)
{
    int64_t flags;
    if (mp_array(r) != ACCOUNT_FIELDS)
        return false;
    bool ok = get_int(r, &a->id) && get_str(r, &a->username, false) &&
              get_str(r, &a->domain, true) && get_str(r, &a->display_name, false) &&
              get_str(r, &a->note, false) && get_str(r, &a->url, true) &&
              get_str(r, &a->uri, true) && get_str(r, &a->avatar, true) &&
              get_str(r, &a->header, true) && get_str(r, &a->fields_json, false) &&
              get_int(r, &flags) && get_int(r, &a->created_at_ms) &&
              get_int(r, &a->last_status_at_ms) && get_int(r, &a->statuses_count) &&
              get_int(r, &a->followers_count) && get_int(r, &a->following_count);
    if (!ok)
        return false;
    a->locked = flags & 1;
    a->bot = (flags & 2) != 0;
    a->group = (flags & 4) != 0;
    a->discoverable = (flags & 8) != 0;
    return true;
}

static bool decode_status(mp_reader *r, cache_status *s)
{
    int64_t version, vis, flags;
    if (mp_array(r) != STATUS_FIELDS || !get_int(r, &version) || version != FORMAT_VERSION)
        return false;
    if (!(get_int(r, &s->id) && get_int(r, &s->account_id) && get_int(r, &s->created_at_ms) &&
          get_int(r, &s->edited_at_ms) && get_int(r, &s->in_reply_to_id) &&
          get_int(r, &s->in_reply_to_account_id) && get_int(r, &s->reblog_of_id) &&
          get_int(r, &s->reblog_account_id) && get_int(r, &vis) && get_int(r, &flags) &&
          get_str(r, &s->text, false) && get_str(r, &s->spoiler_text, false) &&
          get_str(r, &s->language, true) && get_str(r, &s->uri, true) &&
          get_str(r, &s->url, true) && get_int(r, &s->replies_count) &&
          get_int(r, &s->reblogs_count) && get_int(r, &s->favourites_count) &&
          decode_account(r, &s->account)))
        return false;
    if (vis < 0 || vis > 4)
        return false;
    s->visibility = (int)vis;
    s->sensitive = flags & 1;
    s->reply = (flags & 2) != 0;
    s->local = (flags & 4) != 0;
    int64_t n = mp_array(r);
    if (n < 0)
        return false;
    if (n) {
        s->mentions = calloc((size_t)n, sizeof(*s->mentions));
        if (!s->mentions)
            return false;
    }
    for (int64_t i = 0; i < n; i++) {
        cache_mention *m = &s->mentions[i];
        s->n_mentions = (size_t)i + 1;
        if (mp_array(r) != 4 || !get_int(r, &m->account_id) || !get_str(r, &m->username, false) ||
            !get_str(r, &m->domain, true) || !get_str(r, &m->url, true))
            return false;
    }
    return true;
}

cache_status *cache_status_decode(const char *data, size_t len)
{
    mp_reader r = {(const uint8_t *)data, (const uint8_t *)data + len, false};
    cache_status *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    if (!decode_status(&r, s) || r.bad || r.p != r.end) {
        cache_status_free(s);
        return NULL;
    }
    return s;
}

int cache_status_key(char *buf, size_t cap, int64_t id)
{
    return snprintf(buf, cap, "tusk:status:%lld", (long long)id);
}

/* ------------------------------------------------------------------ PostgreSQL */

static const char status_sql[] =
    "SELECT s.id, s.account_id, (extract(epoch FROM s.created_at) * 1000)::bigint,"
    " (extract(epoch FROM s.edited_at) * 1000)::bigint, s.in_reply_to_id,"
    " s.in_reply_to_account_id, s.reblog_of_id, r.account_id, s.visibility, s.sensitive,"
    " s.reply, coalesce(s.local, a.domain IS NULL), s.text, s.spoiler_text, s.language, s.uri,"
    " s.url, coalesce(ss.replies_count, 0), coalesce(ss.reblogs_count, 0),"
    " coalesce(ss.favourites_count, 0),"
    /* 20: the account */
    " a.username, a.domain, a.display_name, a.note, a.url, a.uri, a.avatar_remote_url,"
    " nullif(a.header_remote_url, ''),"
    " CASE WHEN jsonb_typeof(a.fields) = 'array' THEN a.fields::text ELSE '[]' END,"
    " a.locked, coalesce(a.actor_type IN ('Application', 'Service'), false),"
    " coalesce(a.actor_type = 'Group', false), coalesce(a.discoverable, false),"
    " (extract(epoch FROM a.created_at) * 1000)::bigint,"
    " (extract(epoch FROM st.last_status_at) * 1000)::bigint,"
    " coalesce(st.statuses_count, 0), coalesce(st.followers_count, 0),"
    " coalesce(st.following_count, 0)"
    " FROM statuses s JOIN accounts a ON a.id = s.account_id"
    " LEFT JOIN statuses r ON r.id = s.reblog_of_id AND r.deleted_at IS NULL"
    " LEFT JOIN status_stats ss ON ss.status_id = s.id"
    " LEFT JOIN account_stats st ON st.account_id = a.id"
    " WHERE s.id = ANY($1::bigint[]) AND s.deleted_at IS NULL";

static const char mention_sql[] =
    "SELECT m.status_id, a.id, a.username, a.domain, a.url FROM mentions m"
    " JOIN accounts a ON a.id = m.account_id"
    " WHERE m.status_id = ANY($1::bigint[]) AND NOT m.silent ORDER BY m.status_id, m.id";

static cache_status *status_from_row(const PGresult *r, int i)
{
    cache_status *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->id = cache_pg_int(r, i, 0);
    s->account_id = cache_pg_int(r, i, 1);
    s->created_at_ms = cache_pg_int(r, i, 2);
    s->edited_at_ms = cache_pg_int(r, i, 3);
    s->in_reply_to_id = cache_pg_int(r, i, 4);
    s->in_reply_to_account_id = cache_pg_int(r, i, 5);
    s->reblog_of_id = cache_pg_int(r, i, 6);
    s->reblog_account_id = cache_pg_int(r, i, 7);
    s->visibility = (int)cache_pg_int(r, i, 8);
    s->sensitive = cache_pg_bool(r, i, 9);
    s->reply = cache_pg_bool(r, i, 10);
    s->local = cache_pg_bool(r, i, 11);
    s->text = cache_pg_strdup(r, i, 12);
    s->spoiler_text = cache_pg_strdup(r, i, 13);
    s->language = cache_pg_strdup(r, i, 14);
    s->uri = cache_pg_strdup(r, i, 15);
    s->url = cache_pg_strdup(r, i, 16);
    s->replies_count = cache_pg_int(r, i, 17);
    s->reblogs_count = cache_pg_int(r, i, 18);
    s->favourites_count = cache_pg_int(r, i, 19);
    cache_account *a = &s->account;
    a->id = s->account_id;
    a->username = cache_pg_strdup(r, i, 20);
    a->domain = cache_pg_strdup(r, i, 21);
    a->display_name = cache_pg_strdup(r, i, 22);
    a->note = cache_pg_strdup(r, i, 23);
    a->url = cache_pg_strdup(r, i, 24);
    a->uri = cache_pg_strdup(r, i, 25);
    a->avatar = cache_pg_strdup(r, i, 26);
    a->header = cache_pg_strdup(r, i, 27);
    a->fields_json = cache_pg_strdup(r, i, 28);
    a->locked = cache_pg_bool(r, i, 29);
    a->bot = cache_pg_bool(r, i, 30);
    a->group = cache_pg_bool(r, i, 31);
    a->discoverable = cache_pg_bool(r, i, 32);
    a->created_at_ms = cache_pg_int(r, i, 33);
    a->last_status_at_ms = cache_pg_int(r, i, 34);
    a->statuses_count = cache_pg_int(r, i, 35);
    a->followers_count = cache_pg_int(r, i, 36);
    a->following_count = cache_pg_int(r, i, 37);
    if (!s->text || !s->spoiler_text || !a->username || !a->display_name || !a->note ||
        !a->fields_json) {
        cache_status_free(s);
        return NULL;
    }
    return s;
}

int cache_status_load_pg(PGconn *pg, const int64_t *ids, size_t n, cache_status **out, char *err,
                         size_t errlen)
{
    for (size_t i = 0; i < n; i++)
        out[i] = NULL;
    if (n == 0)
        return 0;
    cache_buf arr;
    cache_buf_init(&arr);
    if (!cache_pg_id_array(&arr, ids, n)) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const char *params[] = {arr.data};
    PGresult *r = cache_pg_exec(pg, status_sql, 1, params, err, errlen);
    if (!r) {
        cache_buf_free(&arr);
        return -1;
    }
    int rows = PQntuples(r);
    for (int i = 0; i < rows; i++) {
        cache_status *s = status_from_row(r, i);
        if (!s)
            continue;
        bool placed = false;
        for (size_t k = 0; k < n; k++) {
            if (ids[k] == s->id && !out[k]) {
                if (placed) {
                    /* the same id asked twice: each slot owns a copy */
                    cache_status *dup = status_from_row(r, i);
                    out[k] = dup;
                } else {
                    out[k] = s;
                    placed = true;
                }
            }
        }
        if (!placed)
            cache_status_free(s);
    }
    PQclear(r);
    if (rows == 0) {
        cache_buf_free(&arr);
        return 0;
    }
    r = cache_pg_exec(pg, mention_sql, 1, params, err, errlen);
    cache_buf_free(&arr);
    if (!r) {
        for (size_t k = 0; k < n; k++) {
            cache_status_free(out[k]);
            out[k] = NULL;
        }
        return -1;
    }
    int mrows = PQntuples(r);
    for (int i = 0; i < mrows; i++) {
        int64_t sid = cache_pg_int(r, i, 0);
        for (size_t k = 0; k < n; k++) {
            cache_status *s = out[k];
            if (!s || s->id != sid)
                continue;
            cache_mention *m = realloc(s->mentions, (s->n_mentions + 1) * sizeof(*m));
            if (!m)
                continue;
            s->mentions = m;
            m = &s->mentions[s->n_mentions++];
            m->account_id = cache_pg_int(r, i, 1);
            m->username = cache_pg_strdup(r, i, 2);
            m->domain = cache_pg_strdup(r, i, 3);
            m->url = cache_pg_strdup(r, i, 4);
        }
    }
    PQclear(r);
    return 0;
}

/* ------------------------------------------------------------------ through Redis */

/* one level of fetch: cached records first, the rest from PostgreSQL, written back */
static int fetch_level(cache *c, PGconn *pg, const int64_t *ids, size_t n, cache_status **out,
                       char *err, size_t errlen)
{
    int shards = cache_shard_count(c);
    char(*keys)[32] = malloc(n * 32);
    const char **argv = malloc((n + 1) * sizeof(*argv));
    size_t *idx = malloc(n * sizeof(*idx));
    int64_t *miss = malloc(n * sizeof(*miss));
    size_t *miss_at = malloc(n * sizeof(*miss_at));
    cache_status **loaded = calloc(n, sizeof(*loaded));
    int rc = -1;
    if (!keys || !argv || !idx || !miss || !miss_at || !loaded) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        out[i] = NULL;
        cache_status_key(keys[i], 32, ids[i]);
    }
    /* one MGET per shard */
    for (int s = 0; s < shards; s++) {
        size_t k = 0;
        argv[0] = "MGET";
        for (size_t i = 0; i < n; i++) {
            if (cache_shard_of(shards, ids[i]) == s) {
                idx[k] = i;
                argv[++k] = keys[i];
            }
        }
        if (k == 0)
            continue;
        redisContext *ctx = cache_feeds_ctx(c, s);
        if (!ctx)
            continue; /* Redis down: everything from PostgreSQL */
        redisReply *r = redisCommandArgv(ctx, (int)k + 1, argv, NULL);
        if (!r) {
            cache_ctx_broken(c, ctx);
            continue;
        }
        if (r->type == REDIS_REPLY_ARRAY && r->elements == k) {
            for (size_t j = 0; j < k; j++) {
                redisReply *e = r->element[j];
                if (e->type == REDIS_REPLY_STRING) {
                    cache_status *st = cache_status_decode(e->str, e->len);
                    if (st && st->id == ids[idx[j]])
                        out[idx[j]] = st;
                    else
                        cache_status_free(st);
                }
            }
        }
        freeReplyObject(r);
    }
    size_t nmiss = 0;
    for (size_t i = 0; i < n; i++) {
        if (!out[i]) {
            miss[nmiss] = ids[i];
            miss_at[nmiss++] = i;
        }
    }
    if (nmiss == 0) {
        rc = 0;
        goto out;
    }
    if (cache_status_load_pg(pg, miss, nmiss, loaded, err, errlen) != 0)
        goto out;
    /* write back what was found, pipelined per shard */
    cache_buf enc;
    cache_buf_init(&enc);
    char ttl[16];
    snprintf(ttl, sizeof(ttl), "%d", cache_get_config(c)->status_ttl);
    size_t pending[CACHE_MAX_SHARDS] = {0};
    for (size_t j = 0; j < nmiss; j++) {
        out[miss_at[j]] = loaded[j];
        if (!loaded[j])
            continue;
        int s = cache_shard_of(shards, miss[j]);
        redisContext *ctx = cache_feeds_ctx(c, s);
        cache_buf_reset(&enc);
        if (!ctx || !cache_status_encode(loaded[j], &enc))
            continue;
        const char *sargv[] = {"SET", keys[miss_at[j]], enc.data, "EX", ttl};
        size_t lens[] = {3, strlen(keys[miss_at[j]]), enc.len, 2, strlen(ttl)};
        if (redisAppendCommandArgv(ctx, 5, sargv, lens) == REDIS_OK)
            pending[s]++;
    }
    cache_buf_free(&enc);
    for (int s = 0; s < shards; s++) {
        for (size_t j = 0; j < pending[s]; j++) {
            redisContext *ctx = cache_feeds_ctx(c, s);
            redisReply *r;
            if (!ctx || cache_read_replies(c, ctx, 1, &r) != 0)
                break;
            freeReplyObject(r);
        }
    }
    rc = 0;
out:
    if (rc != 0 && keys && loaded) {
        for (size_t i = 0; i < n; i++) {
            cache_status_free(out[i]);
            out[i] = NULL;
        }
    }
    free(keys);
    free(argv);
    free(idx);
    free(miss);
    free(miss_at);
    free(loaded);
    return rc;
}

int cache_status_fetch(cache *c, PGconn *pg, const int64_t *ids, size_t n, cache_status **out,
                       char *err, size_t errlen)
{
    if (n == 0)
        return 0;
    if (fetch_level(c, pg, ids, n, out, err, errlen) != 0)
        return -1;
    /* the reblogged statuses, the same way */
    int64_t *rids = malloc(n * sizeof(*rids));
    size_t *at = malloc(n * sizeof(*at));
    cache_status **orig = calloc(n, sizeof(*orig));
    size_t k = 0;
    int rc = 0;
    if (!rids || !at || !orig) {
        rc = -1;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (out[i] && out[i]->reblog_of_id) {
            rids[k] = out[i]->reblog_of_id;
            at[k++] = i;
        }
    }
    if (k && fetch_level(c, pg, rids, k, orig, err, errlen) != 0) {
        rc = -1;
        goto out;
    }
    for (size_t j = 0; j < k; j++)
        out[at[j]]->reblog = orig[j];
out:
    if (rc != 0) {
        for (size_t i = 0; i < n; i++) {
            cache_status_free(out[i]);
            out[i] = NULL;
        }
    }
    free(rids);
    free(at);
    free(orig);
    return rc;
}

int cache_status_invalidate(cache *c, const int64_t *ids, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char key[32];
        cache_status_key(key, sizeof(key), ids[i]);
        redisContext *ctx = cache_feeds_ctx(c, cache_shard_of(cache_shard_count(c), ids[i]));
        if (!ctx) {
            rc = -1;
            continue;
        }
        redisReply *r = redisCommand(ctx, "DEL %s", key);
        if (!r) {
            cache_ctx_broken(c, ctx);
            rc = -1;
            continue;
        }
        freeReplyObject(r);
    }
    return rc;
}
