/*
 * application/x-www-form-urlencoded decoding, for bodies and query strings, and the Rails
 * convention for structured keys ("ids[]=1&ids[]=2", "poll[options][]=a") that Mastodon
 * clients use. Decoded text must be UTF-8: Rails rejects anything else with 400, and so do we.
 */
#include "api/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* percent-decode len bytes into out (len+1 bytes); -1 on a bad escape */
long api_form_unescape(const char *s, size_t len, char *out, bool plus)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= len)
                return -1;
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            out[o++] = (char)(h * 16 + l);
            i += 2;
        } else if (c == '+' && plus) {
            out[o++] = ' ';
        } else {
            out[o++] = c;
        }
    }
    out[o] = '\0';
    return (long)o;
}

/* decode "k=v&k2=v2"; empty pairs ("a=1&&b=2") are skipped as browsers do */
int api_form_parse(const char *s, size_t len, api_form_cb cb, void *ctx, char *err, size_t errlen)
{
    char small[512];
    char *scratch = small;
    if (len + 2 > sizeof(small)) {
        scratch = malloc(len + 2);
        if (!scratch) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    int rc = 0;
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && s[end] != '&')
            end++;
        if (end > i) {
            size_t eq = i;
            while (eq < end && s[eq] != '=')
                eq++;
            /* key and value share the scratch: key first, value after its NUL */
            long kl = api_form_unescape(s + i, eq - i, scratch, true);
            long vl = 0;
            char *val = NULL;
            if (kl >= 0) {
                val = scratch + kl + 1;
                vl = eq < end ? api_form_unescape(s + eq + 1, end - eq - 1, val, true) : 0;
                if (eq >= end)
                    val[0] = '\0';
            }
            if (kl < 0 || vl < 0) {
                snprintf(err, errlen, "invalid %%-encoding in form data");
                rc = -1;
                break;
            }
            if (!api_utf8_valid(scratch, (size_t)kl) || !api_utf8_valid(val, (size_t)vl)) {
                snprintf(err, errlen, "form data is not valid UTF-8");
                rc = -1;
                break;
            }
            if (memchr(scratch, '\0', (size_t)kl) || memchr(val, '\0', (size_t)vl)) {
                snprintf(err, errlen, "NUL byte in form data");
                rc = -1;
                break;
            }
            if (kl > 0 && !cb(ctx, scratch, (size_t)kl, val, (size_t)vl)) {
                if (errlen && err[0] == '\0')
                    snprintf(err, errlen, "invalid parameter name");
                rc = -1;
                break;
            }
        }
        i = end + 1;
    }
    if (scratch != small)
        free(scratch);
    return rc;
}

/* split "a[b][]" into its parts; returns the count or -1 if malformed. parts point into
 * buf, a copy of key */
static int split_key(char *buf, char **parts, int max)
{
    int n = 0;
    char *br = strchr(buf, '[');
    if (br == buf)
        return -1; /* "[x]" has no base name */
    parts[n++] = buf;
    if (!br)
        return n;
    char *p = br;
    while (*p) {
        if (*p != '[' || n >= max)
            return -1;
        char *close = strchr(p, ']');
        if (!close)
            return -1;
        *p = '\0'; /* ends the previous part */
        *close = '\0';
        parts[n++] = p + 1; /* "" for "[]" */
        p = close + 1;
    }
    return n;
}

/* Rails-style nesting: a, a[], a[b], a[b][], a[][b] is not supported (rare, ambiguous) */
bool api_params_add(json_t *params, const char *key, const char *val)
{
    char buf[256];
    if (strlen(key) >= sizeof(buf))
        return false;
    strcpy(buf, key);
    char *parts[8];
    int n = split_key(buf, parts, 8);
    if (n < 1)
        return false;
    json_t *cur = params;
    for (int i = 0; i < n; i++) {
        bool last = i == n - 1;
        bool next_is_array = !last && parts[i + 1][0] == '\0';
        if (parts[i][0] == '\0') {
            /* "[]": append to the array cur; only allowed as the last part */
            if (!last || !json_is_array(cur))
                return false;
            return json_array_append_new(cur, json_string(val)) == 0;
        }
        if (!json_is_object(cur))
            return false;
        if (last)
            return json_object_set_new(cur, parts[i], json_string(val)) == 0;
        json_t *child = json_object_get(cur, parts[i]);
        if (!child) {
            child = next_is_array ? json_array() : json_object();
            if (!child || json_object_set_new(cur, parts[i], child) != 0)
                return false;
        } else if (next_is_array ? !json_is_array(child) : !json_is_object(child)) {
            return false;
        }
        cur = child;
    }
    return false;
}
