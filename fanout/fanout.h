/*
 * fanout: interface of the folder (see fanout/README.md). The fan-out engine ("tusk fanout":
 * outbox relay + Redis Streams workers) and the calls the api role makes to enqueue work:
 * an outbox row written inside the api's own write transaction, so a committed post always
 * gets its fan-out, even when Redis is down at the time.
 */
#ifndef TUSK_FANOUT_H
#define TUSK_FANOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "cache/cache.h"

/* entry point of "tusk fanout -c FILE" */
int fanout_main(int argc, char **argv);

/* ---------------------------------------------------------------- jobs */
enum fanout_job_kind {
    FANOUT_JOB_NONE = 0,
    FANOUT_JOB_STATUS_CREATED, /* status_id: self, followers' home feeds, lists, public */
    FANOUT_JOB_STATUS_DELETED, /* status_id, account_id, reblog_of_id, visibility */
    FANOUT_JOB_FOLLOW,         /* account_id follows target_account_id: merge */
    FANOUT_JOB_UNFOLLOW,       /* unmerge from home and the follower's lists */
    FANOUT_JOB_BLOCK,          /* account_id blocks target_account_id: clear both ways */
    FANOUT_JOB_MUTE,           /* account_id mutes target_account_id: clear */
    FANOUT_JOB_LIST_ADD,       /* account_id added to list_id: merge into the list */
    FANOUT_JOB_LIST_REMOVE,    /* account_id removed from list_id: unmerge */
    FANOUT_JOB_REGENERATE,     /* rebuild feed (feed_type, account_id or list_id) */
    FANOUT_JOB_KIND_COUNT
};

typedef struct fanout_job {
    int kind;
    int64_t outbox_id; /* the outbox row it came from; 0 when enqueued directly */
    int64_t status_id;
    int64_t account_id;
    int64_t target_account_id;
    int64_t list_id;
    int64_t reblog_of_id;
    int visibility; /* status_deleted: the deleted status' visibility; -1 = unknown */
    int feed_type;  /* regenerate: CACHE_FEED_HOME or CACHE_FEED_LIST */
    char lsn[32];   /* commit LSN floor for reads ("" = none) */
} fanout_job;

#define FANOUT_JOB_MAX_FIELDS 22 /* field and value strings of an encoded job */

/* a job with nothing set */
void fanout_job_init(fanout_job *job);
/* "status_created", ...; NULL for an unknown kind */
const char *fanout_job_kind_name(int kind);
/* kind from its name; FANOUT_JOB_NONE when unknown */
int fanout_job_kind_from_name(const char *name, size_t len);
/* the queue a kind goes to: "default" (statuses, blocks, mutes, regeneration) or "pull"
 * (merge and unmerge, as Mastodon's MergeWorker/UnmergeWorker) */
const char *fanout_job_queue(int kind);
/* stream field/value strings (argv-style, lengths in lens) for XADD; storage holds the number
 * texts and must outlive argv. Returns the string count (even). */
int fanout_job_encode(const fanout_job *job, const char **argv, size_t *lens, char storage[][32]);
/* rebuild a job from a stream entry's field/value strings; -1 with err on a malformed or
 * incomplete job */
int fanout_job_decode(const char *const *strs, const size_t *lens, size_t n, fanout_job *job,
                      char *err, size_t errlen);
/* the job's arguments as the JSON object stored in tusk_outbox.payload */
bool fanout_job_payload_json(const fanout_job *job, cache_buf *out);

/* ---------------------------------------------------------------- outbox (api side) */
/* Insert the job's outbox row on conn, which must be inside the caller's write transaction:
 * the row commits or rolls back with the write it describes. Also NOTIFY tusk_outbox so the
 * relay wakes at once. 0, or -1 with the server's message in err. */
int fanout_outbox_add(PGconn *conn, const fanout_job *job, char *err, size_t errlen);
/* the outbox row for a new status (call in the transaction that inserted it) */
int fanout_outbox_status_created(PGconn *conn, int64_t status_id, char *err, size_t errlen);
/* the outbox row for a deleted status: author, reblog_of_id (0 if none) and visibility are
 * passed because the row may be gone when the job runs */
int fanout_outbox_status_deleted(PGconn *conn, int64_t status_id, int64_t account_id,
                                 int64_t reblog_of_id, int visibility, char *err, size_t errlen);
/* follow / unfollow / block / mute of target by account */
int fanout_outbox_relation(PGconn *conn, int kind, int64_t account_id, int64_t target_account_id,
                           char *err, size_t errlen);
/* account added to / removed from a list (kind FANOUT_JOB_LIST_ADD or _LIST_REMOVE) */
int fanout_outbox_list_member(PGconn *conn, int kind, int64_t list_id, int64_t account_id,
                              char *err, size_t errlen);

/* ---------------------------------------------------------------- direct enqueue */
/* XADD a job to its queue stream on the queue Redis (no outbox: for work that has no
 * database write behind it). 0 or -1. */
int fanout_enqueue(cache *c, const fanout_job *job);
/* the api's "feed is missing" path: take the regeneration marker and enqueue the rebuild.
 * 1 when a rebuild was started, 0 when one is already running, -1 on Redis error. The api
 * answers 206 with Mastodon-Async-Refresh while cache_feed_regenerating() says so. */
int fanout_request_regeneration(cache *c, int feed_type, int64_t feed_id);

/* ---------------------------------------------------------------- streams */
/* the stream of a queue: "tusk:queue:<name>" */
int fanout_stream_key(char *buf, size_t cap, const char *queue);
#define FANOUT_GROUP "tusk-fanout"

#endif
