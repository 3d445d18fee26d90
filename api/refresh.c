/*
 * Mastodon 4.4's async refreshes: GET /api/v1_alpha/async_refreshes/:id, the endpoint the
 * Mastodon-Async-Refresh header of a 206 home or list timeline points to.
 *
 * A refresh is a Redis key: the feed's regeneration marker ("account:<id>:regeneration",
 * "list:<id>:regeneration"). Mastodon 4.4 keeps it as a hash {status: running|finished,
 * [result_count]} (1 day while running, 1 hour once finished); tusk's fan-out may still
 * hold the older plain string "true", which only exists while the rebuild runs. Both are
 * read with one HMGET: a WRONGTYPE error is the string form, i.e. running.
 *
 * The id is the key signed the way Rails' MessageVerifier signs a value, so a client can
 * only ask about refreshes this server announced: base64url(JSON string of the key), "--",
 * hex HMAC-SHA256 of that text. The HMAC key is derived from [api] secret_key_base (share it
 * between api processes behind one load balancer); without one, each process draws a random
 * key and ids verify only in the process that issued them. The ids are not byte-compatible
 * with a Mastodon web process's (different serializer and secret derivation).
 */
#include "api/internal.h"

#include "llhttp.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REFRESH_KEY_MAX 48

/* ==========================================================================================
 * signing
 */

/* the HMAC key of the process, from secret_key_base or random */
bool api_refresh_init(api_server *srv)
{
    const char *secret = srv->cfg->secret_key_base;
    if (secret && secret[0]) {
        unsigned int n = 0;
        return HMAC(EVP_sha256(), secret, (int)strlen(secret),
                    (const unsigned char *)"async_refreshes", 15, srv->refresh_key, &n) != NULL &&
               n == sizeof(srv->refresh_key);
    }
    log_info("secret_key_base is not set: async refresh ids verify only in this process");
    return RAND_bytes(srv->refresh_key, sizeof(srv->refresh_key)) == 1;
}

/* hex HMAC-SHA256 of text under the process key */
static bool sign(const api_server *srv, const char *text, size_t len, char hex[65])
{
    unsigned char mac[32];
    unsigned int n = 0;
    if (!HMAC(EVP_sha256(), srv->refresh_key, (int)sizeof(srv->refresh_key),
              (const unsigned char *)text, len, mac, &n) ||
        n != sizeof(mac))
        return false;
    hex_encode(mac, sizeof(mac), hex);
    return true;
}

/* the signed id of a refresh key */
bool api_refresh_id(const api_server *srv, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    char json[REFRESH_KEY_MAX + 4];
    if (kl > REFRESH_KEY_MAX || strpbrk(key, "\"\\"))
        return false; /* our keys never need escaping */
    json[0] = '"';
    memcpy(json + 1, key, kl);
    json[kl + 1] = '"';
    size_t jl = kl + 2;
    if (cap < (jl + 2) / 3 * 4 + 2 + 64 + 1)
        return false;
    int en = b64url_encode(json, jl, out, cap);
    if (en < 0)
        return false;
    size_t n = (size_t)en;
    char hex[65];
    if (!sign(srv, out, n, hex))
        return false;
    memcpy(out + n, "--", 2);
    memcpy(out + n + 2, hex, 65);
    return true;
}

/* a key this server signs: "account:<id>:regeneration" or "list:<id>:regeneration" */
static bool refresh_key_parse(const char *key, size_t len, int *type, int64_t *id)
{
    static const char suffix[] = ":regeneration";
    size_t sl = sizeof(suffix) - 1, pl;
    if (len > 8 && memcmp(key, "account:", 8) == 0) {
        *type = CACHE_FEED_HOME;
        pl = 8;
    } else if (len > 5 && memcmp(key, "list:", 5) == 0) {
        *type = CACHE_FEED_LIST;
        pl = 5;
    } else {
        return false;
    }
    return len > pl + sl && memcmp(key + len - sl, suffix, sl) == 0 &&
           api_parse_id(key + pl, len - pl - sl, id);
}

/* the key of a signed id; false when the id is malformed or not ours */
bool api_refresh_verify(const api_server *srv, const char *id, size_t len, char *key, size_t cap)
{
    const char *sep = NULL;
    for (size_t i = 0; i + 1 < len; i++)
        if (id[i] == '-' && id[i + 1] == '-')
            sep = id + i; /* the last "--": the digest is hex, the data may hold a '-' */
    if (!sep || (size_t)(id + len - (sep + 2)) != 64)
        return false;
    size_t dl = (size_t)(sep - id);
    char hex[65];
    if (!sign(srv, id, dl, hex) || CRYPTO_memcmp(hex, sep + 2, 64) != 0)
        return false;
    uint8_t json[REFRESH_KEY_MAX + 8];
    int jl = b64url_decode(id, dl, json, sizeof(json));
    if (jl < 3 || json[0] != '"' || json[jl - 1] != '"' || (size_t)(jl - 2) >= cap)
        return false;
    memcpy(key, json + 1, (size_t)jl - 2);
    key[jl - 2] = '\0';
    int type;
    int64_t fid;
    return refresh_key_parse(key, (size_t)jl - 2, &type, &fid);
}

/* ==========================================================================================
 * GET /api/v1_alpha/async_refreshes/:id
 */
typedef struct show {
    api_req *req;
    char id[160];
} show;

static void show_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    show *s = privdata;
    api_req *req = s->req;
    redisReply *r = reply;
    const char *status = NULL;
    size_t status_len = 0;
    bool has_count = false;
    long long count = 0;
    if (!r) {
        free(s);
        api_req_error(req, 503, "Service unavailable");
        return;
    }
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "WRONGTYPE", 9) == 0) {
        status = "running"; /* the plain string marker: held while the rebuild runs */
        status_len = 7;
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
        redisReply *st = r->element[0], *rc = r->element[1];
        if (st->type != REDIS_REPLY_STRING && rc->type != REDIS_REPLY_STRING) {
            free(s);
            api_req_error(req, 404, "Record not found"); /* gone: finished long ago */
            return;
        }
        if (st->type == REDIS_REPLY_STRING) {
            status = st->str;
            status_len = st->len;
        }
        if (rc->type == REDIS_REPLY_STRING) {
            has_count = true; /* Ruby's to_i: leading digits, 0 otherwise */
            count = api_ruby_to_i(rc->str);
        }
    } else {
        free(s);
        api_req_error(req, 503, "Service unavailable");
        return;
    }
    api_jw w;
    api_req_json(req, &w);
    api_jw_obj(&w);
    api_jw_key(&w, "async_refresh");
    api_jw_obj(&w);
    api_jw_kstr(&w, "id", s->id);
    api_jw_key(&w, "status");
    if (status)
        api_jw_strn(&w, status, status_len);
    else
        api_jw_null(&w);
    api_jw_key(&w, "result_count");
    if (has_count)
        api_jw_int(&w, count);
    else
        api_jw_null(&w);
    api_jw_obj_end(&w);
    api_jw_obj_end(&w);
    free(s);
    api_req_finish(req, 200);
}

static void refresh_show(api_req *req)
{
    const char *id = NULL;
    size_t idlen = 0;
    for (int i = 0; i < req->rp.n; i++)
        if (strcmp(req->rp.name[i], "id") == 0) {
            id = req->rp.val[i];
            idlen = req->rp.len[i];
        }
    char key[REFRESH_KEY_MAX + 1];
    int type;
    int64_t feed_id;
    show *s = NULL;
    if (!id || idlen >= sizeof(s->id) ||
        !api_refresh_verify(req->w->srv, id, idlen, key, sizeof(key)) ||
        !refresh_key_parse(key, strlen(key), &type, &feed_id)) {
        api_req_error(req, 404, "Record not found");
        return;
    }
    s = malloc(sizeof(*s));
    redisAsyncContext *ac = api_worker_shard(req->w, feed_id);
    if (!s || !ac) {
        free(s);
        api_req_error(req, 503, "Service unavailable");
        return;
    }
    s->req = req;
    memcpy(s->id, id, idlen);
    s->id[idlen] = '\0';
    if (redisAsyncCommand(ac, show_cb, s, "HMGET %s status result_count", key) != REDIS_OK) {
        free(s);
        api_req_error(req, 503, "Service unavailable");
    }
}

bool api_refresh_register(api_router *r)
{
    /* Mastodon: doorkeeper_authorize! :read (only the whole "read" scope), require_user! */
    static const api_route route = {HTTP_GET, "/api/v1_alpha/async_refreshes/:id", refresh_show,
                                    "read",   ROUTE_AUTH_REQUIRED | ROUTE_USER,    0};
    return api_router_add(r, &route);
}
