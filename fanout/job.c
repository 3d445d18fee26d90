/*
 * Jobs and their two encodings: the field/value pairs of a Redis Streams entry (what workers
 * read) and the JSON payload of an outbox row (what the api writes). Both carry the same
 * names, so the relay copies an outbox row into a stream entry field by field.
 */
#include "fanout/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[FANOUT_JOB_KIND_COUNT] = {
    NULL,    "status_created", "status_deleted", "follow",      "unfollow",
    "block", "mute",           "list_add",       "list_remove", "regenerate",
};

void fanout_job_init(fanout_job *job)
{
    memset(job, 0, sizeof(*job));
    job->visibility = -1;
}

const char *fanout_job_kind_name(int kind)
{
    if (kind <= FANOUT_JOB_NONE || kind >= FANOUT_JOB_KIND_COUNT)
        return NULL;
    return kind_names[kind];
}

int fanout_job_kind_from_name(const char *name, size_t len)
{
    for (int k = 1; k < FANOUT_JOB_KIND_COUNT; k++)
        if (strlen(kind_names[k]) == len && memcmp(kind_names[k], name, len) == 0)
            return k;
    return FANOUT_JOB_NONE;
}

const char *fanout_job_queue(int kind)
{
    switch (kind) {
    case FANOUT_JOB_FOLLOW:
    case FANOUT_JOB_UNFOLLOW:
    case FANOUT_JOB_LIST_ADD:
    case FANOUT_JOB_LIST_REMOVE:
        return "pull";
    default:
        return "default";
    }
}

int fanout_stream_key(char *buf, size_t cap, const char *queue)
{
    return snprintf(buf, cap, "tusk:queue:%s", queue);
}

/* the integer fields, in encoding order */
typedef struct int_field {
    const char *name;
    size_t offset;
} int_field;

static const int_field int_fields[] = {
    {"outbox_id", offsetof(fanout_job, outbox_id)},
    {"status_id", offsetof(fanout_job, status_id)},
    {"account_id", offsetof(fanout_job, account_id)},
    {"target_account_id", offsetof(fanout_job, target_account_id)},
    {"list_id", offsetof(fanout_job, list_id)},
    {"reblog_of_id", offsetof(fanout_job, reblog_of_id)},
};
#define N_INT_FIELDS (sizeof(int_fields) / sizeof(int_fields[0]))

static int64_t *int_at(fanout_job *job, size_t i)
{
    return (int64_t *)((char *)job + int_fields[i].offset);
}

static int64_t int_of(const fanout_job *job, size_t i)
{
    return *(const int64_t *)((const char *)job + int_fields[i].offset);
}

int fanout_job_encode(const fanout_job *job, const char **argv, size_t *lens, char storage[][32])
{
    int n = 0, s = 0;
#define PUT(str)                                                                                   \
    do {                                                                                           \
        argv[n] = (str);                                                                           \
        lens[n] = strlen(argv[n]);                                                                 \
        n++;                                                                                       \
    } while (0)
    PUT("kind");
    PUT(fanout_job_kind_name(job->kind) ? fanout_job_kind_name(job->kind) : "");
    for (size_t i = 0; i < N_INT_FIELDS; i++) {
        int64_t v = int_of(job, i);
        if (!v)
            continue;
        snprintf(storage[s], 32, "%lld", (long long)v);
        PUT(int_fields[i].name);
        PUT(storage[s]);
        s++;
    }
    if (job->visibility >= 0) {
        snprintf(storage[s], 32, "%d", job->visibility);
        PUT("visibility");
        PUT(storage[s]);
        s++;
    }
    if (job->kind == FANOUT_JOB_REGENERATE) {
        PUT("feed");
        PUT(job->feed_type == CACHE_FEED_LIST ? "list" : "home");
    }
    if (job->lsn[0]) {
        PUT("lsn");
        PUT(job->lsn);
    }
#undef PUT
    return n;
}

/* a whole decimal integer in len bytes */
static bool parse_int(const char *s, size_t len, int64_t *out)
{
    bool neg = len > 0 && s[0] == '-';
    size_t i = neg ? 1 : 0;
    if (i == len || len - i > 19)
        return false;
    int64_t v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        if (v > (INT64_MAX - (s[i] - '0')) / 10)
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = neg ? -v : v;
    return true;
}

static bool field_is(const char *s, size_t len, const char *name)
{
    return strlen(name) == len && memcmp(s, name, len) == 0;
}

int fanout_job_decode(const char *const *strs, const size_t *lens, size_t n, fanout_job *job,
                      char *err, size_t errlen)
{
    fanout_job_init(job);
    if (n % 2 != 0) {
        snprintf(err, errlen, "odd number of fields");
        return -1;
    }
    for (size_t i = 0; i < n; i += 2) {
        const char *f = strs[i], *v = strs[i + 1];
        size_t fl = lens[i], vl = lens[i + 1];
        if (field_is(f, fl, "kind")) {
            job->kind = fanout_job_kind_from_name(v, vl);
            if (job->kind == FANOUT_JOB_NONE) {
                snprintf(err, errlen, "unknown job kind \"%.*s\"", (int)(vl > 40 ? 40 : vl), v);
                return -1;
            }
            continue;
        }
        bool known = false;
        for (size_t k = 0; k < N_INT_FIELDS; k++) {
            if (field_is(f, fl, int_fields[k].name)) {
                if (!parse_int(v, vl, int_at(job, k)) || *int_at(job, k) < 0) {
                    snprintf(err, errlen, "bad %s", int_fields[k].name);
                    return -1;
                }
                known = true;
                break;
            }
        }
        if (known)
            continue;
        if (field_is(f, fl, "visibility")) {
            int64_t vis;
            if (!parse_int(v, vl, &vis) || vis < 0 || vis > 4) {
                snprintf(err, errlen, "bad visibility");
                return -1;
            }
            job->visibility = (int)vis;
        } else if (field_is(f, fl, "feed")) {
            if (field_is(v, vl, "home"))
                job->feed_type = CACHE_FEED_HOME;
            else if (field_is(v, vl, "list"))
                job->feed_type = CACHE_FEED_LIST;
            else {
                snprintf(err, errlen, "bad feed type");
                return -1;
            }
        } else if (field_is(f, fl, "lsn")) {
            if (vl >= sizeof(job->lsn)) {
                snprintf(err, errlen, "lsn too long");
                return -1;
            }
            memcpy(job->lsn, v, vl);
            job->lsn[vl] = '\0';
        }
        /* unknown fields are ignored: newer producers may add some */
    }
    /* what each kind cannot do without */
    bool ok;
    switch (job->kind) {
    case FANOUT_JOB_STATUS_CREATED:
        ok = job->status_id > 0;
        break;
    case FANOUT_JOB_STATUS_DELETED:
        ok = job->status_id > 0 && job->account_id > 0;
        break;
    case FANOUT_JOB_FOLLOW:
    case FANOUT_JOB_UNFOLLOW:
    case FANOUT_JOB_BLOCK:
    case FANOUT_JOB_MUTE:
        ok = job->account_id > 0 && job->target_account_id > 0;
        break;
    case FANOUT_JOB_LIST_ADD:
    case FANOUT_JOB_LIST_REMOVE:
        ok = job->list_id > 0 && job->account_id > 0;
        break;
    case FANOUT_JOB_REGENERATE:
        ok = job->feed_type == CACHE_FEED_LIST ? job->list_id > 0 : job->account_id > 0;
        break;
    default:
        snprintf(err, errlen, "job without kind");
        return -1;
    }
    if (!ok) {
        snprintf(err, errlen, "%s job misses an id", fanout_job_kind_name(job->kind));
        return -1;
    }
    return 0;
}

bool fanout_job_payload_json(const fanout_job *job, cache_buf *out)
{
    const char *argv[FANOUT_JOB_MAX_FIELDS];
    size_t lens[FANOUT_JOB_MAX_FIELDS];
    char storage[FANOUT_JOB_MAX_FIELDS][32];
    int n = fanout_job_encode(job, argv, lens, storage);
    cache_buf_append(out, "{", 1);
    bool first = true;
    /* skip "kind" (a column of its own) and outbox_id (the row's id) */
    for (int i = 2; i < n; i += 2) {
        if (strcmp(argv[i], "outbox_id") == 0)
            continue;
        if (!first)
            cache_buf_append(out, ",", 1);
        first = false;
        cache_json_string(out, argv[i]);
        cache_buf_append(out, ":", 1);
        cache_json_string(out, argv[i + 1]);
    }
    return cache_buf_append(out, "}", 1);
}
