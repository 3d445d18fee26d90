/*
 * COPY writer for "tusk seed": rows are formatted in COPY text format into one 1 MB buffer
 * that goes to the server with PQputCopyData when nearly full, so a million rows cost a
 * thousand round trips of libpq work, not a million. Also draws the per-table progress line
 * on stderr (redrawn in place on a terminal, a line every few seconds otherwise).
 */
#include "schema/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define COPY_BUF_SIZE (1u << 20)
#define COPY_FLUSH_AT (COPY_BUF_SIZE - 64 * 1024) /* leaves room for any one row */

static void copy_flush(schema_copy *c);
static void copy_progress(schema_copy *c, bool final);
static void copy_reserve(schema_copy *c, size_t n);

/* ==== public ==== */

/* seconds on the monotonic clock */
double schema_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "YYYY-MM-DD HH:MM:SS.mmm" in UTC */
void schema_format_ts(int64_t ms, char out[80])
{
    time_t sec = (time_t)(ms / 1000);
    int milli = (int)(ms % 1000);
    if (milli < 0) {
        milli += 1000;
        sec -= 1;
    }
    struct tm tm;
    gmtime_r(&sec, &tm);
    snprintf(out, 80, "%04d-%02d-%02d %02d:%02d:%02d.%03d", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, milli);
}

/* send the COPY command and wait for CopyInResponse */
bool schema_copy_begin(schema_copy *c, PGconn *conn, const char *table, const char *columns,
                       uint64_t total, bool progress)
{
    memset(c, 0, sizeof *c);
    c->conn = conn;
    c->table = table;
    c->total = total;
    c->progress = progress;
    c->tty = isatty(STDERR_FILENO);
    c->started = c->last_report = schema_now();
    c->buf = malloc(COPY_BUF_SIZE);
    if (!c->buf) {
        snprintf(c->err, sizeof c->err, "out of memory");
        c->failed = true;
        return false;
    }
    c->cap = COPY_BUF_SIZE;
    char sql[1024];
    snprintf(sql, sizeof sql, "COPY %s (%s) FROM STDIN", table, columns);
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        snprintf(c->err, sizeof c->err, "COPY %s: %s", table, PQerrorMessage(conn));
        PQclear(res);
        c->failed = true;
        return false;
    }
    PQclear(res);
    return true;
}

/* decimal integer field */
void schema_copy_i64(schema_copy *c, int64_t v)
{
    copy_reserve(c, 24);
    char tmp[24];
    int n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        c->buf[c->len++] = '-';
    while (n)
        c->buf[c->len++] = tmp[--n];
    c->buf[c->len++] = '\t';
}

/* NULL field */
void schema_copy_null(schema_copy *c)
{
    copy_reserve(c, 3);
    memcpy(c->buf + c->len, "\\N\t", 3);
    c->len += 3;
}

/* boolean field */
void schema_copy_bool(schema_copy *c, bool v)
{
    copy_reserve(c, 2);
    c->buf[c->len++] = v ? 't' : 'f';
    c->buf[c->len++] = '\t';
}

/* text field with COPY text-format escaping */
void schema_copy_str(schema_copy *c, const char *s)
{
    size_t n = strlen(s);
    copy_reserve(c, 2 * n + 1);
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        switch (ch) {
        case '\\':
            c->buf[c->len++] = '\\';
            c->buf[c->len++] = '\\';
            break;
        case '\t':
            c->buf[c->len++] = '\\';
            c->buf[c->len++] = 't';
            break;
        case '\n':
            c->buf[c->len++] = '\\';
            c->buf[c->len++] = 'n';
            break;
        case '\r':
            c->buf[c->len++] = '\\';
            c->buf[c->len++] = 'r';
            break;
        default:
            c->buf[c->len++] = ch;
        }
    }
    c->buf[c->len++] = '\t';
}

/* formatted text field (at most 4 kB) */
void schema_copy_fmt(schema_copy *c, const char *fmt, ...)
{
    char tmp[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    schema_copy_str(c, tmp);
}

/* timestamp field; the text of the last second is cached because rows come in bursts
 * with nearby times and gmtime_r dominates otherwise */
void schema_copy_ts(schema_copy *c, int64_t ms)
{
    static __thread int64_t cached_sec = INT64_MIN;
    static __thread char cached[80];
    int64_t sec = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    if (sec != cached_sec) {
        schema_format_ts(sec * 1000, cached);
        cached_sec = sec;
    }
    copy_reserve(c, 25);
    memcpy(c->buf + c->len, cached, 19); /* "YYYY-MM-DD HH:MM:SS" */
    c->len += 19;
    int milli = (int)(ms - sec * 1000);
    c->buf[c->len++] = '.';
    c->buf[c->len++] = (char)('0' + milli / 100);
    c->buf[c->len++] = (char)('0' + milli / 10 % 10);
    c->buf[c->len++] = (char)('0' + milli % 10);
    c->buf[c->len++] = '\t';
}

/* close the row: the trailing tab becomes the newline */
void schema_copy_end_row(schema_copy *c)
{
    if (c->len > 0 && c->buf[c->len - 1] == '\t')
        c->buf[c->len - 1] = '\n';
    c->rows++;
    if (c->len >= COPY_FLUSH_AT) {
        copy_flush(c);
        if (c->progress && (c->rows & 0x3ff) == 0)
            copy_progress(c, false);
    } else if (c->progress && (c->rows & 0xffff) == 0) {
        copy_progress(c, false);
    }
}

/* end the COPY and collect the server's verdict */
bool schema_copy_finish(schema_copy *c)
{
    if (!c->buf) /* begin failed */
        return false;
    copy_flush(c);
    const char *why = c->failed ? "client-side failure" : NULL;
    if (PQputCopyEnd(c->conn, why) != 1 && !c->failed) {
        snprintf(c->err, sizeof c->err, "COPY %s: %s", c->table, PQerrorMessage(c->conn));
        c->failed = true;
    }
    PGresult *res;
    while ((res = PQgetResult(c->conn)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK && !c->failed) {
            snprintf(c->err, sizeof c->err, "COPY %s: %s", c->table, PQresultErrorMessage(res));
            c->failed = true;
        }
        PQclear(res);
    }
    if (c->progress && !c->failed)
        copy_progress(c, true);
    free(c->buf);
    c->buf = NULL;
    return !c->failed;
}

/* ==== internal ==== */

/* make room for n more bytes (flushing first if needed) */
static void copy_reserve(schema_copy *c, size_t n)
{
    if (c->len + n <= c->cap)
        return;
    copy_flush(c);
    if (n > c->cap) {
        char *nb = realloc(c->buf, n);
        if (!nb) {
            /* cannot happen with the row sizes seed writes; fail the COPY, never overrun */
            c->failed = true;
            snprintf(c->err, sizeof c->err, "out of memory");
            abort();
        }
        c->buf = nb;
        c->cap = n;
    }
}

/* hand the buffer to libpq (which sends it; blocking connection) */
static void copy_flush(schema_copy *c)
{
    if (c->len == 0)
        return;
    if (!c->failed && PQputCopyData(c->conn, c->buf, (int)c->len) != 1) {
        snprintf(c->err, sizeof c->err, "COPY %s: %s", c->table, PQerrorMessage(c->conn));
        c->failed = true;
    }
    c->len = 0;
}

/* "  follows      523000/1000000  52%  410k rows/s" */
static void copy_progress(schema_copy *c, bool final)
{
    double now = schema_now();
    if (!final && now - c->last_report < (c->tty ? 0.2 : 3.0))
        return;
    c->last_report = now;
    double secs = now - c->started;
    double rate = secs > 0 ? (double)c->rows / secs : 0;
    char pct[16] = "";
    if (c->total)
        snprintf(pct, sizeof pct, "%3d%%", (int)(100.0 * (double)c->rows / (double)c->total));
    fprintf(stderr, "%s  %-20s %10llu/%-10llu %s %8.0f rows/s%s", c->tty ? "\r" : "", c->table,
            (unsigned long long)c->rows, (unsigned long long)c->total, pct, rate,
            final ? "" : (c->tty ? "" : "\n"));
    if (final)
        fprintf(stderr, "  %.2f s\n", secs);
    fflush(stderr);
}
