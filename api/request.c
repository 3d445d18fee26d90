/*
 * One request from "fully read" to "answered": URL split, CORS preflight, routing, parameter
 * decoding (query string, then a form or JSON body merged over it, as Rails merges params),
 * Bearer token lookup and scope check, rate limit, the handler, and the response head.
 *
 * The pipeline may wait once (the token lookup); the handler may wait as long as it likes.
 * Either way the connection reads nothing more until the answer is written, which is what
 * keeps pipelined answers in order.
 *
 * Every answer is JSON with Content-Type "application/json; charset=utf-8" (errors are
 * {"error":"..."} as in Mastodon), except the streaming handshakes and the health check.
 */
#include "api/internal.h"

#include "llhttp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <xxhash.h>

#define MAX_FREE_REQS 64
#define FINISH_MAX_IOV 96 /* body pieces written in one go: a page of 40 statuses is 81 */
#define JSON_CT "application/json; charset=utf-8"

static void after_auth(void *arg, int status, const api_auth *auth);
static void run_handler(api_req *req);

/* ------------------------------------------------------------------------------------------
 * request structs: recycled per worker so steady-state traffic allocates nothing here
 */

/* a clean request for connection c */
api_req *api_req_new(api_worker *w, api_conn *c)
{
    api_req *req = w->free_reqs;
    if (req) {
        w->free_reqs = req->next_free;
        w->nfree_reqs--;
    } else {
        req = calloc(1, sizeof(*req));
        if (!req)
            return NULL;
    }
    /* keep the buffers' memory, reset everything else */
    api_buf head = req->head_buf, body = req->body, resp = req->resp, hdrs = req->resp_hdrs;
    memset(req, 0, sizeof(*req));
    req->head_buf = head;
    req->body = body;
    req->resp = resp;
    req->resp_hdrs = hdrs;
    api_buf_reset(&req->head_buf);
    api_buf_reset(&req->body);
    api_buf_reset(&req->resp);
    api_buf_reset(&req->resp_hdrs);
    req->w = w;
    req->conn = c;
    req->content_type = JSON_CT;
    return req;
}

/* give a request back; big buffers are freed so one large upload does not stay resident */
void api_req_release(api_worker *w, api_req *req)
{
    json_decref(req->params);
    req->params = NULL;
    if (w->nfree_reqs >= MAX_FREE_REQS) {
        api_buf_free(&req->head_buf);
        api_buf_free(&req->body);
        api_buf_free(&req->resp);
        api_buf_free(&req->resp_hdrs);
        free(req);
        return;
    }
    if (req->body.cap > 64 * 1024)
        api_buf_free(&req->body);
    if (req->resp.cap > 256 * 1024)
        api_buf_free(&req->resp);
    if (req->head_buf.cap > 16 * 1024)
        api_buf_free(&req->head_buf);
    req->next_free = w->free_reqs;
    w->free_reqs = req;
    w->nfree_reqs++;
}

/* ------------------------------------------------------------------------------------------
 * accessors for handlers
 */

/* header value by case-insensitive name */
const char *api_req_header(const api_req *req, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    for (int i = 0; i < req->nheaders; i++) {
        const api_header *h = &req->headers[i];
        if (h->name_len == nl && strncasecmp(req->head_buf.data + h->name_off, name, nl) == 0) {
            if (len)
                *len = h->val_len;
            return req->head_buf.data + h->val_off;
        }
    }
    return NULL;
}

/* ":name" from the route as a bigint id */
bool api_req_id_param(api_req *req, const char *name, int64_t *out)
{
    for (int i = 0; i < req->rp.n; i++) {
        if (strcmp(req->rp.name[i], name) == 0 && api_parse_id(req->rp.val[i], req->rp.len[i], out))
            return true;
    }
    api_req_error(req, 404, "Record not found");
    return false;
}

/* a parameter as a string; numbers and booleans are converted in place */
const char *api_req_param(api_req *req, const char *name)
{
    if (!req->params)
        return NULL;
    json_t *v = json_object_get(req->params, name);
    if (!v)
        return NULL;
    if (json_is_string(v))
        return json_string_value(v);
    char buf[64];
    if (json_is_integer(v))
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, sizeof(buf), "%.17g", json_real_value(v));
    else if (json_is_true(v))
        snprintf(buf, sizeof(buf), "true");
    else if (json_is_false(v))
        snprintf(buf, sizeof(buf), "false");
    else
        return NULL;
    if (json_object_set_new(req->params, name, json_string(buf)) != 0)
        return NULL;
    return json_string_value(json_object_get(req->params, name));
}

/* JSON writer on the response body */
void api_req_json(api_req *req, api_jw *w)
{
    api_jw_init(w, &req->resp);
}

/* extra response header */
void api_req_add_header(api_req *req, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line) || strpbrk(line, "\r\n"))
        return; /* never let a value split the head */
    api_buf_append(&req->resp_hdrs, line, (size_t)n);
    api_buf_append(&req->resp_hdrs, "\r\n", 2);
}

const char *api_status_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}

/* ------------------------------------------------------------------------------------------
 * responses
 */

/* the head every answer carries; the caller appends its own lines and the blank line */
static void common_head(api_buf *h, api_worker *w, int status, const char *ctype, size_t body_len,
                        bool close, bool http10)
{
    api_buf_puts(h, "HTTP/1.1 ");
    api_buf_put_int(h, status);
    api_buf_putc(h, ' ');
    api_buf_puts(h, api_status_reason(status));
    api_buf_puts(h, "\r\nDate: ");
    api_buf_puts(h, api_worker_date(w));
    api_buf_puts(h, "\r\nContent-Type: ");
    api_buf_puts(h, ctype);
    api_buf_puts(h, "\r\nContent-Length: ");
    api_buf_put_int(h, (long long)body_len);
    api_buf_puts(h, "\r\nAccess-Control-Allow-Origin: *\r\n");
    if (close)
        api_buf_puts(h, "Connection: close\r\n");
    else if (http10)
        api_buf_puts(h, "Connection: keep-alive\r\n");
}

/* write the head and the body pieces, and move the connection on */
static void finish_iov(api_req *req, int status, struct iovec *body, int nbody, size_t body_len)
{
    api_conn *c = req->conn;
    if (req->done)
        return;
    req->done = true;
    req->status = status;
    if (api_conn_open(c)) {
        struct iovec err_body;
        if (req->resp.oom || req->resp_hdrs.oom) {
            status = 503;
            api_buf_reset(&req->resp);
            api_buf_reset(&req->resp_hdrs);
            api_buf_puts(&req->resp, "{\"error\":\"Service unavailable\"}");
            err_body.iov_base = req->resp.data;
            err_body.iov_len = req->resp.len;
            body = &err_body;
            nbody = 1;
            body_len = req->resp.len;
        }
        bool close = !req->keepalive || req->upgrade;
        api_buf *h = &req->w->scratch;
        api_buf_reset(h);
        common_head(h, req->w, status, req->content_type, body_len, close, req->http10);
        if (status != 204) {
            api_buf_puts(h, "Cache-Control: ");
            api_buf_puts(h, req->cache_control ? req->cache_control : "private, no-store");
            api_buf_puts(h, "\r\n");
        }
        if (req->rl_set) {
            char reset[32];
            struct tm tm;
            time_t t = req->rl.reset;
            gmtime_r(&t, &tm);
            strftime(reset, sizeof(reset), "%Y-%m-%dT%H:%M:%S.000Z", &tm);
            api_buf_printf(h,
                           "X-RateLimit-Limit: %u\r\nX-RateLimit-Remaining: %u\r\n"
                           "X-RateLimit-Reset: %s\r\n",
                           req->rl.limit, req->rl.remaining, reset);
        }
        api_buf_append(h, req->resp_hdrs.data, req->resp_hdrs.len);
        api_buf_puts(h, "\r\n");
        if (h->oom) {
            api_conn_close(c, "out of memory");
        } else {
            struct iovec iov[1 + FINISH_MAX_IOV];
            int n = 1;
            iov[0].iov_base = h->data;
            iov[0].iov_len = h->len;
            for (int i = 0; !req->head && i < nbody && n < 1 + FINISH_MAX_IOV; i++)
                if (body[i].iov_len)
                    iov[n++] = body[i];
            if (close)
                c->flags |= CONN_F_CLOSE_AFTER;
            api_conn_writev(c, iov, n); /* what the socket does not take now is copied */
        }
    }
    api_conn_request_done(c);
}

/* send the answer built in req->resp */
void api_req_finish(api_req *req, int status)
{
    struct iovec body = {req->resp.data, req->resp.len};
    finish_iov(req, status, &body, 1, req->resp.len);
}

/* "[s1,s2,...]" of hydrated statuses written straight from where the renderings are (the
 * render memo's blobs): a page is ~20 kB, and copying it into the body first cost ~9% of the
 * worker's CPU in the timeline benchmark (cache misses on scattered blobs) */
void api_req_finish_hydrated(api_req *req, int status, const api_hydrated *h)
{
    if (h->n * 2 + 1 > FINISH_MAX_IOV || req->resp.len) {
        api_hydrated_write_array(req, h); /* a huge page, or a body begun: copy */
        api_req_finish(req, status);
        return;
    }
    struct iovec body[FINISH_MAX_IOV];
    int n = 0;
    size_t total = 0;
    for (size_t i = 0; i < h->n; i++) {
        body[n].iov_base = (void *)(i ? "," : "[");
        body[n++].iov_len = 1;
        body[n].iov_base = (void *)h->items[i].json;
        body[n++].iov_len = h->items[i].len;
        total += 1 + h->items[i].len;
    }
    body[n].iov_base = (void *)(h->n ? "]" : "[]");
    body[n].iov_len = h->n ? 1 : 2;
    total += body[n++].iov_len;
    finish_iov(req, status, body, n, total);
}

/* {"error": msg} */
void api_req_error(api_req *req, int status, const char *msg)
{
    api_buf_reset(&req->resp);
    api_jw w;
    api_req_json(req, &w);
    api_jw_obj(&w);
    api_jw_kstr(&w, "error", msg);
    api_jw_obj_end(&w);
    req->content_type = JSON_CT;
    api_req_finish(req, status);
}

/* the handler turned the connection into a stream and wrote its own head */
void api_req_finish_stream(api_req *req)
{
    if (req->done)
        return;
    req->done = true;
    api_conn_request_done(req->conn);
}

/* answer a request the server could not read (parse errors, limits, timeouts) and close */
void api_req_fail_early(api_conn *c, int status, const char *msg)
{
    api_worker *w = c->w;
    api_buf body = {0};
    api_jw jw;
    api_jw_init(&jw, &body);
    api_jw_obj(&jw);
    api_jw_kstr(&jw, "error", msg);
    api_jw_obj_end(&jw);
    api_buf *h = &w->scratch;
    api_buf_reset(h);
    common_head(h, w, status, JSON_CT, body.len, true, false);
    api_buf_puts(h, "\r\n");
    api_buf_append(h, body.data, body.len);
    c->flags |= CONN_F_CLOSE_AFTER;
    if (!h->oom)
        api_conn_write(c, h->data, h->len);
    api_buf_free(&body);
    if (api_conn_open(c) && !c->out_head) {
        api_conn_kick(c); /* nothing queued: start the lingering close now */
    }
}

/* ------------------------------------------------------------------------------------------
 * the pipeline
 */

/* query pairs -> params */
static bool add_pair(void *ctx, const char *key, size_t klen, const char *val, size_t vlen)
{
    return api_params_add(ctx, key, val);
}

/* decode query string and body into req->params; false after answering an error */
static bool parse_params(api_req *req)
{
    char err[300] = "";
    req->params = json_object();
    if (!req->params) {
        api_req_error(req, 503, "Service unavailable");
        return false;
    }
    if (req->query[0] && api_form_parse(req->query, strlen(req->query), add_pair, req->params, err,
                                        sizeof(err)) != 0) {
        api_req_error(req, 400, err[0] ? err : "Invalid query string");
        return false;
    }
    if (req->body.len == 0 || (req->route && (req->route->flags & ROUTE_RAW_BODY)))
        return true;
    size_t ctl = 0;
    const char *ct = api_req_header(req, "content-type", &ctl);
    size_t base = 0;
    while (ct && base < ctl && ct[base] != ';' && ct[base] != ' ')
        base++;
    if (ct && base == 16 && strncasecmp(ct, "application/json", 16) == 0) {
        json_error_t jerr;
        json_t *body = json_loadb(req->body.data, req->body.len, 0, &jerr);
        if (!body) {
            snprintf(err, sizeof(err), "Invalid JSON in request body: %s", jerr.text);
            api_req_error(req, 400, err);
            return false;
        }
        if (!json_is_object(body)) {
            json_decref(body);
            api_req_error(req, 400, "Request body must be a JSON object");
            return false;
        }
        json_object_update(req->params, body);
        json_decref(body);
        return true;
    }
    if (ct && base == 33 && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0) {
        if (api_form_parse(req->body.data, req->body.len, add_pair, req->params, err,
                           sizeof(err)) != 0) {
            api_req_error(req, 400, err[0] ? err : "Invalid form data");
            return false;
        }
        return true;
    }
    if (ct && base == 19 && strncasecmp(ct, "multipart/form-data", 19) == 0) {
        api_req_error(req, 415, "multipart/form-data is not supported; send JSON or form data");
        return false;
    }
    /* no or unknown content type: Rails ignores such a body, so do we */
    return true;
}

/* split the URL in head_buf into path and query (NUL-terminated in place) */
static bool split_url(api_req *req)
{
    char *url = req->head_buf.data;
    if (!url || req->url_len == 0)
        return false;
    url[req->url_len] = '\0';
    char *path = url;
    if (strncmp(path, "http://", 7) == 0 || strncmp(path, "https://", 8) == 0) {
        path = strstr(path, "://") + 3;
        path = strchr(path, '/');
        if (!path)
            path = (char *)"/";
    }
    char *hash = strchr(path, '#');
    if (hash)
        *hash = '\0';
    char *q = strchr(path, '?');
    if (q) {
        *q = '\0';
        req->query = q + 1;
    } else {
        req->query = "";
    }
    req->path = path;
    req->path_len = strlen(path);
    return true;
}

/* the token: Authorization: Bearer, access_token param, or (streams) the WebSocket protocol */
static const char *find_token(api_req *req)
{
    size_t l;
    const char *a = api_req_header(req, "authorization", &l);
    if (a && l > 7 && strncasecmp(a, "bearer ", 7) == 0) {
        a += 7;
        while (*a == ' ')
            a++;
        return *a ? a : NULL;
    }
    const char *p = api_req_param(req, "access_token");
    if (p && *p)
        return p;
    if (req->route && (req->route->flags & ROUTE_STREAM)) {
        const char *proto = api_req_header(req, "sec-websocket-protocol", &l);
        if (proto && l)
            return proto;
    }
    return NULL;
}

/* CORS preflight for browser clients */
static void preflight(api_req *req)
{
    api_req_add_header(req, "Access-Control-Allow-Methods: POST, PUT, DELETE, GET, PATCH, "
                            "OPTIONS");
    api_req_add_header(req, "Access-Control-Allow-Headers: Authorization, Content-Type, "
                            "Idempotency-Key, Accept, Cache-Control");
    api_req_add_header(req, "Access-Control-Expose-Headers: Link, X-RateLimit-Reset, "
                            "X-RateLimit-Limit, X-RateLimit-Remaining, X-Request-Id, "
                            "Idempotency-Key");
    api_req_add_header(req, "Access-Control-Max-Age: 7200");
    api_req_finish(req, 204);
}

/* run a fully read request */
void api_req_dispatch(api_req *req)
{
    api_server *srv = req->w->srv;
    req->head = req->method == HTTP_HEAD;
    if (!split_url(req)) {
        api_req_error(req, 400, "Bad request");
        return;
    }
    if (req->method == HTTP_OPTIONS) {
        preflight(req);
        return;
    }
    int status = 404;
    uint64_t allow = 0;
    req->route = api_router_match(srv->router, req->method, req->path, req->path_len, &req->rp,
                                  &status, &allow);
    if (!req->route) {
        if (status == 405) {
            char methods[256];
            api_router_allow_header(allow, methods, sizeof(methods));
            api_req_add_header(req, "Allow: %s", methods);
            api_req_error(req, 405, "Method not allowed");
        } else {
            api_req_error(req, 404, "Not found");
        }
        return;
    }
    if (!parse_params(req))
        return;
    unsigned flags = req->route->flags;
    req->token = (flags & (ROUTE_AUTH_OPTIONAL | ROUTE_AUTH_REQUIRED)) ? find_token(req) : NULL;
    if (!req->token) {
        if (flags & ROUTE_AUTH_REQUIRED) {
            api_req_error(req, 401, "The access token is invalid");
            return;
        }
        after_auth(req, 0, NULL);
        return;
    }
    req->async = true;
    api_auth_lookup(req->w, req->token, after_auth, req);
}

/* token resolved (status 200/401/503), or no token (status 0) */
static void after_auth(void *arg, int status, const api_auth *auth)
{
    api_req *req = arg;
    unsigned flags = req->route->flags;
    if (status == 503) {
        api_req_error(req, 503, "Service unavailable");
        return;
    }
    if (status == 401) {
        api_req_error(req, 401, "The access token is invalid");
        return;
    }
    if (status == 200) {
        req->auth = *auth;
        req->authed = true;
        if (req->route->scope_mask && !(auth->scopes & req->route->scope_mask)) {
            api_req_error(req, 403, "This action is outside the authorized scopes");
            return;
        }
    }
    if ((flags & ROUTE_USER) && (!req->authed || req->auth.account_id == 0)) {
        api_req_error(req, 422, "This method requires an authenticated user");
        return;
    }
    if (!(flags & ROUTE_NO_RATELIMIT)) {
        api_server *srv = req->w->srv;
        api_ratelimit *rl = req->authed ? srv->rl : srv->rl_anon;
        if (rl) {
            uint64_t key;
            if (req->authed)
                key = XXH3_64bits(req->token, strlen(req->token));
            else {
                uint32_t ip = req->conn->peer;
                key = XXH3_64bits(&ip, sizeof(ip)) ^ 0x9e3779b97f4a7c15ull;
            }
            req->rl_set = true;
            if (!api_rl_hit(rl, key, time(NULL), &req->rl)) {
                long wait = (long)(req->rl.reset - time(NULL));
                api_req_add_header(req, "Retry-After: %ld", wait > 0 ? wait : 1);
                api_req_error(req, 429, "Too many requests");
                return;
            }
        }
    }
    run_handler(req);
}

static void run_handler(api_req *req)
{
    req->route->handler(req);
}

/* ------------------------------------------------------------------------------------------
 * helpers for handlers
 */

/* the requesting account's commit-LSN token */
bool api_req_lsn(api_req *req, char out[32])
{
    return req->auth.account_id > 0 && api_lsn_get(req->w->srv->lsn, req->auth.account_id, out);
}

/* a read that sees the account's own writes */
bool api_req_query(api_req *req, const api_stmt *st, const char *const *params, api_db_cb cb,
                   void *arg)
{
    char tok[32];
    return api_db_query_lsn(req->w->db, st, params, api_req_lsn(req, tok) ? tok : NULL, cb, arg);
}
