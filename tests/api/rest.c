/* Helpers of the REST integration tests: see rest.h. */
#include "tests/api/rest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

json_t *rt_call(tc_env *env, const char *method, const char *path, const char *token,
                const char *json_body, int want, tc_resp *keep)
{
    tc_resp r;
    if (!tc_call(env, method, path, token, json_body, &r))
        fail_msg("%s %s: no answer", method, path);
    char body[512];
    snprintf(body, sizeof(body), "%s", r.body ? r.body : "");
    if (r.status != want) {
        int got = r.status;
        tc_resp_free(&r);
        fail_msg("%s %s: expected %d, got %d: %s", method, path, want, got, body);
    }
    const char *ct = tc_header(&r, "content-type");
    if (!ct || strcmp(ct, "application/json; charset=utf-8") != 0) {
        tc_resp_free(&r);
        fail_msg("%s %s: content type is not JSON", method, path);
    }
    json_t *j = tc_json(&r);
    if (!j) {
        tc_resp_free(&r);
        fail_msg("%s %s: body is not JSON: %s", method, path, body);
    }
    if (keep)
        *keep = r;
    else
        tc_resp_free(&r);
    return j;
}

void rt_error(tc_env *env, const char *method, const char *path, const char *token,
              const char *json_body, int want, const char *msg)
{
    json_t *j = rt_call(env, method, path, token, json_body, want, NULL);
    const char *e = json_string_value(json_object_get(j, "error"));
    if (!e)
        fail_msg("%s %s: no \"error\" in the answer", method, path);
    if (msg && !strstr(e, msg))
        fail_msg("%s %s: error \"%s\" lacks \"%s\"", method, path, e, msg);
    json_decref(j);
}

int64_t rt_id(json_t *entity)
{
    const char *s = json_string_value(json_object_get(entity, "id"));
    if (!s)
        fail_msg("entity without a string id");
    return strtoll(s, NULL, 10);
}

int64_t rt_post(tc_env *env, const char *token, const char *json_body)
{
    json_t *j = rt_call(env, "POST", "/api/v1/statuses", token, json_body, 200, NULL);
    rt_check_status(j);
    int64_t id = rt_id(j);
    json_decref(j);
    return id;
}

int rt_ids(json_t *arr, int64_t *out, int max)
{
    if (!json_is_array(arr))
        fail_msg("not an array");
    int n = 0;
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        if (n < max)
            out[n++] = rt_id(e);
    }
    return n;
}

void rt_check_status(json_t *s)
{
    static const char *const strs[] = {"id",      "uri",        "created_at",
                                       "content", "visibility", "spoiler_text"};
    static const char *const ints[] = {"reblogs_count", "favourites_count", "replies_count"};
    static const char *const arrays[] = {"media_attachments", "mentions", "tags", "emojis"};
    static const char *const present[] = {"url",      "in_reply_to_id", "in_reply_to_account_id",
                                          "reblog",   "poll",           "card",
                                          "language", "edited_at"};
    if (!json_is_object(s))
        fail_msg("status is not an object");
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        if (!json_is_string(json_object_get(s, strs[i])))
            fail_msg("status field %s missing or not a string", strs[i]);
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
        if (!json_is_integer(json_object_get(s, ints[i])))
            fail_msg("status field %s missing or not an integer", ints[i]);
    for (size_t i = 0; i < sizeof(arrays) / sizeof(arrays[0]); i++)
        if (!json_is_array(json_object_get(s, arrays[i])))
            fail_msg("status field %s missing or not an array", arrays[i]);
    for (size_t i = 0; i < sizeof(present) / sizeof(present[0]); i++)
        if (!json_object_get(s, present[i]))
            fail_msg("status field %s missing", present[i]);
    if (!json_is_boolean(json_object_get(s, "sensitive")))
        fail_msg("status field sensitive missing");
    json_t *a = json_object_get(s, "account");
    if (!json_is_object(a) || !json_is_string(json_object_get(a, "id")) ||
        !json_is_string(json_object_get(a, "acct")) ||
        !json_is_integer(json_object_get(a, "statuses_count")))
        fail_msg("status account missing or incomplete");
}

const char *rt_fmt(const char *fmt, ...)
{
    static char buf[8][1024];
    static int at;
    char *b = buf[at++ % 8];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, sizeof(buf[0]), fmt, ap);
    va_end(ap);
    return b;
}
