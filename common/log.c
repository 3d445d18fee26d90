/*
 * Logging with levels. One line per event, prefixed with time, level and role, written to
 * stderr (or a log file) with a single write() so lines from worker threads never interleave.
 */
#include "common/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/time.h>

static int log_min_level = LOG_INFO;
static int log_fd = 2;
static const char *log_role = "tusk";

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR", "FATAL"};

/* set the lowest level that is printed */
void log_set_level(int level)
{
    log_min_level = level;
}

int log_get_level(void)
{
    return log_min_level;
}

/* name the role in every line, e.g. "proxy" */
void log_set_role(const char *role)
{
    log_role = role;
}

/* send lines to a file instead of stderr; returns -1 when it cannot be opened */
int log_set_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    if (log_fd != 2)
        close(log_fd);
    log_fd = fd;
    return 0;
}

/* parse "debug", "info", "warning", "error"; -1 if unknown */
int log_level_from_name(const char *name)
{
    static const char *const lower[] = {"debug", "info", "warning", "error", "fatal"};
    for (int i = 0; i < 5; i++)
        if (strcasecmp(name, lower[i]) == 0)
            return i;
    if (strcasecmp(name, "warn") == 0)
        return LOG_WARNING;
    return -1;
}

void log_write(int level, const char *fmt, ...)
{
    if (level < log_min_level)
        return;
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02d %02d:%02d:%02d.%03d %s [%d] %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (int)(tv.tv_usec / 1000), log_role, (int)getpid(),
                     level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n += m;
    if (n > (int)sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t w = write(log_fd, line, n);
    (void)w;
}
