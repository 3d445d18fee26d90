/* Small formatting and parsing helpers of the API: timestamps and ids. */
#include "api/internal.h"

#include <stdio.h>
#include <string.h>

static bool digits(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* "2023-01-02 03:04:05.123456" (PostgreSQL, UTC) -> "2023-01-02T03:04:05.123Z" */
bool api_iso_time(const char *pg, char out[32])
{
    if (!pg || strlen(pg) < 19 || !digits(pg, 4) || pg[4] != '-' || !digits(pg + 5, 2) ||
        pg[7] != '-' || !digits(pg + 8, 2) || (pg[10] != ' ' && pg[10] != 'T') ||
        !digits(pg + 11, 2) || pg[13] != ':' || !digits(pg + 14, 2) || pg[16] != ':' ||
        !digits(pg + 17, 2))
        return false;
    char ms[4] = "000";
    const char *p = pg + 19;
    if (*p == '.') {
        p++;
        for (int i = 0; i < 3 && *p >= '0' && *p <= '9'; i++, p++)
            ms[i] = *p;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    /* a timestamptz rendered in UTC ends in "+00"; anything else is not what we asked for */
    if (*p && strcmp(p, "+00") != 0 && strcmp(p, "Z") != 0)
        return false;
    snprintf(out, 32, "%.10sT%.8s.%sZ", pg, pg + 11, ms);
    return true;
}

/* "Tue, 15 Nov 1994 08:12:31 GMT" */
void api_http_date(time_t t, char out[40])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 40, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* a positive decimal bigint, nothing else */
bool api_parse_id(const char *s, size_t len, int64_t *out)
{
    if (len == 0 || len > 19)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v == 0 || v > INT64_MAX)
        return false;
    *out = (int64_t)v;
    return true;
}

/* decimal text of v into out (at least 21 bytes, NUL-terminated); returns the length */
int api_i64_text(char *out, int64_t v)
{
    char tmp[24];
    char *p = tmp + sizeof(tmp);
    uint64_t u = v < 0 ? 0ULL - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    int n = (int)(tmp + sizeof(tmp) - p);
    memcpy(out, p, (size_t)n);
    out[n] = '\0';
    return n;
}
