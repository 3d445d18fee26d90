/*
 * fanout: declarations shared by the files of this folder only.
 */
#ifndef TUSK_FANOUT_INTERNAL_H
#define TUSK_FANOUT_INTERNAL_H

#include "fanout/fanout.h"
#include "cache/cache.h"
#include "common/common.h"

#include <stdatomic.h>

#define FANOUT_MAX_QUEUES 8

typedef struct fanout_queue {
    char name[32];
    int concurrency;
} fanout_queue;

/* everything "tusk fanout -c FILE" reads from its [fanout] section */
typedef struct fanout_config {
    char database[1024];        /* libpq conninfo (the proxy in production) */
    char listen_database[1024]; /* conninfo for LISTEN (default: database) */
    cache_config cache;
    fanout_queue queues[FANOUT_MAX_QUEUES]; /* in priority order */
    int n_queues;
    char consumer_name[128];
    int batch_size;         /* followers per page */
    int block_ms;           /* XREADGROUP BLOCK */
    int claim_idle_ms;      /* pending this long = its worker is presumed dead */
    int claim_interval_ms;  /* how often each worker looks for such jobs */
    int max_attempts;       /* deliveries before a job goes to tusk:queue:dead */
    bool relay;             /* run the outbox relay in this process */
    int outbox_poll_ms;     /* relay poll interval (NOTIFY wakes it sooner) */
    int outbox_batch;       /* rows per relay transaction */
    bool outbox_listen;     /* LISTEN tusk_outbox */
    int outbox_retention_s; /* delete sent rows older than this; 0 = keep */
    int pg_min_lsn_token;   /* 0 auto, 1 on, -1 off */
    char admin_listen[128]; /* host:port of the health/metrics endpoint, "" = none */
    char logfile[512];
    int log_level;
    int debug_page_delay_ms; /* tests: sleep after each page, to kill a worker mid-job */
} fanout_config;

/* defaults, then the file; -1 with "file:line: message" in err */
int fanout_config_load(fanout_config *cfg, const char *path, char *err, size_t errlen);
/* the same from text (tests) */
int fanout_config_parse(fanout_config *cfg, const char *text, char *err, size_t errlen);
void fanout_config_defaults(fanout_config *cfg);

/* counters shown on /metrics */
typedef struct fanout_metrics {
    atomic_llong jobs_done[FANOUT_JOB_KIND_COUNT];
    atomic_llong jobs_failed;
    atomic_llong jobs_dead;
    atomic_llong jobs_claimed;
    atomic_llong deliveries;
    atomic_llong filtered;
    atomic_llong pages;
    atomic_llong published;
    atomic_llong outbox_relayed;
    atomic_llong outbox_errors;
} fanout_metrics;
extern fanout_metrics fanout_stats;
extern atomic_int fanout_stop;

/* what a job handler works with: one thread's connections and the job's stream entry */
typedef struct fanout_worker {
    const fanout_config *cfg;
    cache *cache;
    PGconn *pg;
    int id;
    const char *stream;   /* the job's stream key */
    const char *entry_id; /* the job's entry id */
    const char *consumer; /* this thread's consumer name in the group */
} fanout_worker;

/* libpq's last error on one line (for the log); a per-thread buffer */
const char *fanout_pg_error(PGconn *conn);

/* connect (or reconnect) the worker's PostgreSQL connection; false when unreachable */
bool fanout_worker_pg(fanout_worker *w);

/* job results */
#define FANOUT_DONE 0
#define FANOUT_RETRY -1 /* transient: leave pending, it is retried */
#define FANOUT_BAD 1    /* cannot ever succeed: dead-letter it */

/* run one job (dispatch by kind) */
int fanout_run_job(fanout_worker *w, const fanout_job *job);
/* status created / deleted (deliver.c) */
int fanout_deliver_created(fanout_worker *w, const fanout_job *job);
int fanout_deliver_deleted(fanout_worker *w, const fanout_job *job);
/* progress of a long job: stored so a worker that takes the job over resumes there; also
 * resets the entry's idle time so it is not claimed while this worker is alive */
void fanout_progress_save(fanout_worker *w, int stage, int64_t cursor);
/* 0 and stage 0 when none */
void fanout_progress_load(fanout_worker *w, int *stage, int64_t *cursor);

/* the consumer threads (worker.c) */
int fanout_workers_start(const fanout_config *cfg);
void fanout_workers_join(void);

/* the outbox relay (outbox.c), driven by the main loop */
typedef struct fanout_relay fanout_relay;
fanout_relay *fanout_relay_new(const fanout_config *cfg);
void fanout_relay_free(fanout_relay *r);
/* move unsent rows to the streams until none is left; number moved or -1 */
int fanout_relay_run(fanout_relay *r);
/* the LISTEN socket (-1 when not listening); call after run so it is set up */
int fanout_relay_listen_fd(fanout_relay *r);
/* consume NOTIFYs; true if any arrived */
bool fanout_relay_drain_notifies(fanout_relay *r);

/* the metrics text (Prometheus exposition format) */
void fanout_metrics_render(cache_buf *out);

#endif
