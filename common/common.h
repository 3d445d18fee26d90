/*
 * common: what several parts of tusk share: logging, the pgbouncer.ini-layout config
 * parser, the userlist.txt parser, password hashing (md5, SCRAM-SHA-256) and small helpers.
 * This header is the interface of the folder.
 */
#ifndef TUSK_COMMON_H
#define TUSK_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <strings.h>

#define TUSK_MUST_CHECK __attribute__((warn_unused_result))
#define TUSK_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* ---- logging (log.c) ---- */
enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARNING, LOG_ERROR, LOG_FATAL };
void log_set_level(int level);
int log_get_level(void);
void log_set_role(const char *role);
int log_set_file(const char *path);
int log_level_from_name(const char *name);
void log_write(int level, const char *fmt, ...) TUSK_PRINTF(2, 3);
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_get_level() <= LOG_DEBUG)                                                          \
            log_write(LOG_DEBUG, __VA_ARGS__);                                                     \
    } while (0)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_warning(...) log_write(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)
#define log_fatal(...) log_write(LOG_FATAL, __VA_ARGS__)

#endif
