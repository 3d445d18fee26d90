/*
 * Endpoints that need no timeline machinery: instance information (v1, v2), nodeinfo,
 * accounts (verify_credentials, show), the streaming health check, and the route table
 * itself. A handler is a function of one api_req; it answers with api_req_finish or
 * api_req_error, now or from a database callback.
 *
 * Instance statistics (users, statuses, domains, active users) are counted in PostgreSQL
 * and cached per worker for a minute: an instance document is fetched by every client at
 * start, and counting on each would be the most expensive request of the API.
 */
#include "api/internal.h"

#include "llhttp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MASTODON_VERSION "4.3.0"
#define STATS_TTL 60.0

/* ==========================================================================================
 * instance statistics
 */
typedef struct stats {
    double at;
    bool valid;
    bool inflight;
    long long users, active_month, active_halfyear, statuses, domains;
} stats;

static _Thread_local stats tstats; /* one per worker thread */

static const api_stmt stats_stmt = {
    "instance_stats",
    "SELECT (SELECT count(*) FROM users u JOIN accounts a ON a.id = u.account_id "
    "WHERE a.suspended_at IS NULL), "
    "(SELECT count(*) FROM users WHERE current_sign_in_at > "
    "(now() AT TIME ZONE 'UTC') - interval '30 days'), "
    "(SELECT count(*) FROM users WHERE current_sign_in_at > "
    "(now() AT TIME ZONE 'UTC') - interval '180 days'), "
    "(SELECT coalesce(sum(s.statuses_count), 0) FROM account_stats s "
    "JOIN accounts a ON a.id = s.account_id WHERE a.domain IS NULL), "
    "(SELECT count(DISTINCT domain) FROM accounts WHERE domain IS NOT NULL)",
    0};

typedef void (*render_fn)(api_req *req);

typedef struct stats_wait {
    api_worker *w;
    api_req *req; /* NULL for a background refresh */
    render_fn render;
} stats_wait;

static void stats_done(void *arg, const PGresult *res, const char *err)
{
    stats_wait *sw = arg;
    tstats.inflight = false;
    if (res && PQntuples(res) == 1 && PQnfields(res) == 5) {
        tstats.users = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        tstats.active_month = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        tstats.active_halfyear = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
        tstats.statuses = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
        tstats.domains = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
        tstats.valid = true;
        tstats.at = ev_now(sw->w->loop);
    }
    /* without a database the document is still served, with zero counts */
    if (sw->req)
        sw->render(sw->req);
    free(sw);
}

/* render with fresh-enough statistics, fetching them first if there are none */
static void with_stats(api_req *req, render_fn render)
{
    api_worker *w = req->w;
    double now = ev_now(w->loop);
    bool stale = !tstats.valid || now - tstats.at > STATS_TTL;
    if (tstats.valid || tstats.inflight) {
        if (stale && !tstats.inflight) {
            stats_wait *sw = calloc(1, sizeof(*sw));
            if (sw) {
                sw->w = w;
                if (api_db_query(w->db, &stats_stmt, NULL, stats_done, sw))
                    tstats.inflight = true;
                else
                    free(sw);
            }
        }
        render(req);
        return;
    }
    stats_wait *sw = calloc(1, sizeof(*sw));
    if (!sw) {
        render(req);
        return;
    }
    sw->w = w;
    sw->req = req;
    sw->render = render;
    tstats.inflight = true;
    if (!api_db_query(w->db, &stats_stmt, NULL, stats_done, sw)) {
        tstats.inflight = false;
        free(sw);
        render(req);
    }
}

/* ==========================================================================================
 * instance documents
 */
static const char *const mime_types[] = {
    "image/jpeg",     "image/png",  "image/gif",     "image/heic",  "image/heif",
    "image/webp",     "image/avif", "video/webm",    "video/mp4",   "video/quicktime",
    "video/ogg",      "audio/wave", "audio/wav",     "audio/x-wav", "audio/x-pn-wave",
    "audio/vnd.wave", "audio/ogg",  "audio/vorbis",  "audio/mpeg",  "audio/mp3",
    "audio/webm",     "audio/flac", "audio/aac",     "audio/m4a",   "audio/x-m4a",
    "audio/mp4",      "audio/3gpp", "video/x-ms-asf"};

static void version_string(api_jw *w)
{
    api_jw_str(w, MASTODON_VERSION " (compatible; tusk " TUSK_VERSION ")");
}

static void url_join(api_jw *w, const char *base, const char *path)
{
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s%s", base, path);
    api_jw_str(w, buf);
}

static void statuses_config(api_jw *w)
{
    api_jw_key(w, "statuses");
    api_jw_obj(w);
    api_jw_kint(w, "max_characters", 500);
    api_jw_kint(w, "max_media_attachments", 4);
    api_jw_kint(w, "characters_reserved_per_url", 23);
    api_jw_obj_end(w);
}

static void media_config(api_jw *w, bool v2)
{
    api_jw_key(w, "media_attachments");
    api_jw_obj(w);
    api_jw_key(w, "supported_mime_types");
    api_jw_arr(w);
    for (size_t i = 0; i < sizeof(mime_types) / sizeof(mime_types[0]); i++)
        api_jw_str(w, mime_types[i]);
    api_jw_arr_end(w);
    if (v2)
        api_jw_kint(w, "description_limit", 1500);
    api_jw_kint(w, "image_size_limit", 16777216);
    api_jw_kint(w, "image_matrix_limit", 33177600);
    api_jw_kint(w, "video_size_limit", 103809024);
    api_jw_kint(w, "video_frame_rate_limit", 120);
    api_jw_kint(w, "video_matrix_limit", 8294400);
    api_jw_obj_end(w);
}

static void polls_config(api_jw *w)
{
    api_jw_key(w, "polls");
    api_jw_obj(w);
    api_jw_kint(w, "max_options", 4);
    api_jw_kint(w, "max_characters_per_option", 50);
    api_jw_kint(w, "min_expiration", 300);
    api_jw_kint(w, "max_expiration", 2629746);
    api_jw_obj_end(w);
}

static void empty_array(api_jw *w, const char *key)
{
    api_jw_key(w, key);
    api_jw_arr(w);
    api_jw_arr_end(w);
}

/* REST::V1::InstanceSerializer */
static void render_instance_v1(api_req *req)
{
    const api_config *cfg = req->w->srv->cfg;
    api_jw w;
    api_req_json(req, &w);
    api_jw_obj(&w);
    api_jw_kstr(&w, "uri", cfg->domain);
    api_jw_kstr(&w, "title", cfg->title);
    api_jw_kstr(&w, "short_description", cfg->description);
    api_jw_kstr(&w, "description", cfg->description);
    api_jw_kstr(&w, "email", cfg->contact_email);
    api_jw_key(&w, "version");
    version_string(&w);
    api_jw_key(&w, "urls");
    api_jw_obj(&w);
    api_jw_kstr(&w, "streaming_api", cfg->streaming_url);
    api_jw_obj_end(&w);
    api_jw_key(&w, "stats");
    api_jw_obj(&w);
    api_jw_kint(&w, "user_count", tstats.users);
    api_jw_kint(&w, "status_count", tstats.statuses);
    api_jw_kint(&w, "domain_count", tstats.domains);
    api_jw_obj_end(&w);
    api_jw_key(&w, "thumbnail");
    url_join(&w, cfg->public_url, "/packs/media/images/preview.png");
    api_jw_key(&w, "languages");
    api_jw_arr(&w);
    api_jw_str(&w, "en");
    api_jw_arr_end(&w);
    api_jw_kbool(&w, "registrations", false);
    api_jw_kbool(&w, "approval_required", false);
    api_jw_kbool(&w, "invites_enabled", false);
    api_jw_key(&w, "configuration");
    api_jw_obj(&w);
    api_jw_key(&w, "accounts");
    api_jw_obj(&w);
    api_jw_kint(&w, "max_featured_tags", 10);
    api_jw_obj_end(&w);
    statuses_config(&w);
    media_config(&w, false);
    polls_config(&w);
    api_jw_obj_end(&w);
    api_jw_knull(&w, "contact_account");
    empty_array(&w, "rules");
    api_jw_obj_end(&w);
    req->cache_control = "max-age=180, public";
    api_req_finish(req, 200);
}

/* REST::InstanceSerializer (v2) */
static void render_instance_v2(api_req *req)
{
    const api_config *cfg = req->w->srv->cfg;
    api_jw w;
    api_req_json(req, &w);
    api_jw_obj(&w);
    api_jw_kstr(&w, "domain", cfg->domain);
    api_jw_kstr(&w, "title", cfg->title);
    api_jw_key(&w, "version");
    version_string(&w);
    api_jw_kstr(&w, "source_url", "https://github.com/mastodon/mastodon");
    api_jw_kstr(&w, "description", cfg->description);
    api_jw_key(&w, "usage");
    api_jw_obj(&w);
    api_jw_key(&w, "users");
    api_jw_obj(&w);
    api_jw_kint(&w, "active_month", tstats.active_month);
    api_jw_obj_end(&w);
    api_jw_obj_end(&w);
    api_jw_key(&w, "thumbnail");
    api_jw_obj(&w);
    api_jw_key(&w, "url");
    url_join(&w, cfg->public_url, "/packs/media/images/preview.png");
    api_jw_obj_end(&w);
    empty_array(&w, "icon");
    api_jw_key(&w, "languages");
    api_jw_arr(&w);
    api_jw_str(&w, "en");
    api_jw_arr_end(&w);
    api_jw_key(&w, "configuration");
    api_jw_obj(&w);
    api_jw_key(&w, "urls");
    api_jw_obj(&w);
    api_jw_kstr(&w, "streaming", cfg->streaming_url);
    api_jw_knull(&w, "status");
    api_jw_key(&w, "about");
    url_join(&w, cfg->public_url, "/about");
    api_jw_key(&w, "privacy_policy");
    url_join(&w, cfg->public_url, "/privacy-policy");
    api_jw_knull(&w, "terms_of_service");
    api_jw_obj_end(&w);
    api_jw_key(&w, "vapid");
    api_jw_obj(&w);
    api_jw_kstr(&w, "public_key", "");
    api_jw_obj_end(&w);
    api_jw_key(&w, "accounts");
    api_jw_obj(&w);
    api_jw_kint(&w, "max_note_length", 500);
    api_jw_kint(&w, "max_featured_tags", 10);
    api_jw_kint(&w, "max_pinned_statuses", 5);
    api_jw_kint(&w, "max_profile_fields", 4);
    api_jw_kint(&w, "profile_field_name_limit", 255);
    api_jw_kint(&w, "profile_field_value_limit", 255);
    api_jw_obj_end(&w);
    statuses_config(&w);
    media_config(&w, true);
    polls_config(&w);
    api_jw_key(&w, "translation");
    api_jw_obj(&w);
    api_jw_kbool(&w, "enabled", false);
    api_jw_obj_end(&w);
    api_jw_kbool(&w, "limited_federation", false);
    api_jw_obj_end(&w);
    api_jw_key(&w, "registrations");
    api_jw_obj(&w);
    api_jw_kbool(&w, "enabled", false);
    api_jw_kbool(&w, "approval_required", false);
    api_jw_kbool(&w, "reason_required", false);
    api_jw_knull(&w, "message");
    api_jw_knull(&w, "min_age");
    api_jw_knull(&w, "url");
    api_jw_obj_end(&w);
    api_jw_key(&w, "api_versions");
    api_jw_obj(&w);
    api_jw_kint(&w, "mastodon", 2);
    api_jw_obj_end(&w);
    api_jw_key(&w, "contact");
    api_jw_obj(&w);
    api_jw_kstr(&w, "email", cfg->contact_email);
    api_jw_knull(&w, "account");
    api_jw_obj_end(&w);
    empty_array(&w, "rules");
    api_jw_obj_end(&w);
    req->cache_control = "max-age=180, public";
    api_req_finish(req, 200);
}

static void instance_v1(api_req *req)
{
    with_stats(req, render_instance_v1);
}

static void instance_v2(api_req *req)
{
    with_stats(req, render_instance_v2);
}

/* /.well-known/nodeinfo */
static void nodeinfo_links(api_req *req)
{
    const api_config *cfg = req->w->srv->cfg;
    api_jw w;
    api_req_json(req, &w);
    api_jw_obj(&w);
    api_jw_key(&w, "links");
    api_jw_arr(&w);
    api_jw_obj(&w);
    api_jw_kstr(&w, "rel", "http://nodeinfo.diaspora.software/ns/schema/2.0");
    api_jw_key(&w, "href");
    url_join(&w, cfg->public_url, "/nodeinfo/2.0");
    api_jw_obj_end(&w);
    api_jw_arr_end(&w);
    api_jw_obj_end(&w);
    req->cache_control = "max-age=259200, public";
    api_req_finish(req, 200);
}

static void render_nodeinfo(api_req *req)
{
    const api_config *cfg = req->w->srv->cfg;
    api_jw w;
    api_req_json(req, &w);
    api_jw_obj(&w);
    api_jw_kstr(&w, "version", "2.0");
    api_jw_key(&w, "software");
    api_jw_obj(&w);
    api_jw_kstr(&w, "name", "tusk");
    api_jw_kstr(&w, "version", TUSK_VERSION);
    api_jw_obj_end(&w);
    api_jw_key(&w, "protocols");
    api_jw_arr(&w);
    api_jw_str(&w, "activitypub");
    api_jw_arr_end(&w);
    api_jw_key(&w, "services");
    api_jw_obj(&w);
    empty_array(&w, "outbound");
    empty_array(&w, "inbound");
    api_jw_obj_end(&w);
    api_jw_key(&w, "usage");
    api_jw_obj(&w);
    api_jw_key(&w, "users");
    api_jw_obj(&w);
    api_jw_kint(&w, "total", tstats.users);
    api_jw_kint(&w, "activeMonth", tstats.active_month);
    api_jw_kint(&w, "activeHalfyear", tstats.active_halfyear);
    api_jw_obj_end(&w);
    api_jw_kint(&w, "localPosts", tstats.statuses);
    api_jw_obj_end(&w);
    api_jw_kbool(&w, "openRegistrations", false);
    api_jw_key(&w, "metadata");
    api_jw_obj(&w);
    api_jw_kstr(&w, "nodeName", cfg->title);
    api_jw_kstr(&w, "nodeDescription", cfg->description);
    api_jw_obj_end(&w);
    api_jw_obj_end(&w);
    req->cache_control = "max-age=1800, public";
    api_req_finish(req, 200);
}

/* /nodeinfo/2.0 */
static void nodeinfo(api_req *req)
{
    with_stats(req, render_nodeinfo);
}

/* ==========================================================================================
 * accounts
 */
static char account_by_id_sql[1024];
static api_stmt account_by_id_stmt = {"account_by_id", account_by_id_sql, 1};

static void verify_credentials(api_req *req);

static void account_loaded(void *arg, const PGresult *res, const char *err)
{
    api_req *req = arg;
    if (!res) {
        api_req_error(req, 503, "Service unavailable");
        return;
    }
    if (PQntuples(res) != 1) {
        api_req_error(req, 404, "Record not found");
        return;
    }
    api_jw w;
    api_req_json(req, &w);
    /* verify_credentials answers a CredentialAccount (with source and role) */
    bool credential = req->route->handler == verify_credentials;
    api_account_render(&w, req->w->srv->cfg, res, 0, 0, credential);
    api_req_finish(req, 200);
}

static void load_account(api_req *req, int64_t id)
{
    char ids[24];
    snprintf(ids, sizeof(ids), "%lld", (long long)id);
    const char *params[1] = {ids};
    if (!api_db_query(req->w->db, &account_by_id_stmt, params, account_loaded, req))
        api_req_error(req, 503, "Service unavailable");
}

/* GET /api/v1/accounts/verify_credentials */
static void verify_credentials(api_req *req)
{
    load_account(req, req->auth.account_id);
}

/* GET /api/v1/accounts/:id */
static void account_show(api_req *req)
{
    int64_t id;
    if (!api_req_id_param(req, "id", &id))
        return;
    load_account(req, id);
}

/* ==========================================================================================
 * streaming health
 */
static void streaming_health(api_req *req)
{
    api_buf_puts(&req->resp, "OK");
    req->content_type = "text/plain; charset=utf-8"; /* as Mastodon's streaming server */
    api_req_finish(req, 200);
}

/* ==========================================================================================
 * route table
 */
#define STREAM_FLAGS (ROUTE_AUTH_OPTIONAL | ROUTE_STREAM | ROUTE_NO_RATELIMIT)

bool api_endpoints_register(api_router *r)
{
    snprintf(account_by_id_sql, sizeof(account_by_id_sql),
             "SELECT %s FROM accounts a LEFT JOIN account_stats s ON s.account_id = a.id "
             "WHERE a.id = $1",
             API_ACCOUNT_COLUMNS);
    static const api_route routes[] = {
        {HTTP_GET, "/api/v1/instance", instance_v1, NULL, ROUTE_AUTH_NONE, 0},
        {HTTP_GET, "/api/v2/instance", instance_v2, NULL, ROUTE_AUTH_NONE, 0},
        {HTTP_GET, "/.well-known/nodeinfo", nodeinfo_links, NULL, ROUTE_AUTH_NONE, 0},
        {HTTP_GET, "/nodeinfo/2.0", nodeinfo, NULL, ROUTE_AUTH_NONE, 0},
        {HTTP_GET, "/api/v1/accounts/verify_credentials", verify_credentials,
         "profile read:accounts", ROUTE_AUTH_REQUIRED | ROUTE_USER, 0},
        {HTTP_GET, "/api/v1/accounts/:id", account_show, "read:accounts", ROUTE_AUTH_OPTIONAL, 0},
        {HTTP_GET, "/api/v1/streaming/health", streaming_health, NULL,
         ROUTE_AUTH_NONE | ROUTE_NO_RATELIMIT, 0},
        {HTTP_GET, "/api/v1/streaming", api_stream_ws_handler, NULL, STREAM_FLAGS, 0},
        {HTTP_GET, "/api/v1/streaming/user", api_stream_sse_handler, NULL, STREAM_FLAGS, 0},
        {HTTP_GET, "/api/v1/streaming/user/notification", api_stream_sse_handler, NULL,
         STREAM_FLAGS, 0},
        {HTTP_GET, "/api/v1/streaming/public", api_stream_sse_handler, NULL, STREAM_FLAGS, 0},
        {HTTP_GET, "/api/v1/streaming/public/local", api_stream_sse_handler, NULL, STREAM_FLAGS, 0},
        {HTTP_GET, "/api/v1/streaming/public/remote", api_stream_sse_handler, NULL, STREAM_FLAGS,
         0},
        {HTTP_GET, "/api/v1/streaming/hashtag", api_stream_sse_handler, NULL, STREAM_FLAGS, 0},
        {HTTP_GET, "/api/v1/streaming/hashtag/local", api_stream_sse_handler, NULL, STREAM_FLAGS,
         0},
        {HTTP_GET, "/api/v1/streaming/list", api_stream_sse_handler, NULL, STREAM_FLAGS, 0},
        {HTTP_GET, "/api/v1/streaming/direct", api_stream_sse_handler, NULL, STREAM_FLAGS, 0},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (!api_router_add(r, &routes[i])) {
            log_error("bad route %s", routes[i].pattern);
            return false;
        }
    return true;
}

/* every route of the API (other endpoint files register here as they are added) */
bool api_routes_register(api_router *r)
{
    return api_endpoints_register(r) && api_statuses_register(r) && api_timelines_register(r) &&
           api_relations_register(r) && api_lists_register(r) && api_refresh_register(r);
}
