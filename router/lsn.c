/*
 * LSN text: PostgreSQL writes a WAL position as two hexadecimal halves, "16/B374D848". The
 * proxy reads it from SET tusk.min_lsn and from pg_current_wal_lsn(), and writes it into the
 * tusk.commit_lsn ParameterStatus.
 */
#include "router/router.h"

#include <stdio.h>

/* Parses up to 8 hex digits at *p into *half; moves *p past them. */
static bool hex_half(const char **p, uint32_t *half)
{
    uint32_t v = 0;
    int n = 0;
    for (;; n++) {
        char ch = (*p)[n];
        unsigned d;
        if (ch >= '0' && ch <= '9')
            d = (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            d = (unsigned)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F')
            d = (unsigned)(ch - 'A' + 10);
        else
            break;
        if (n == 8)
            return false;
        v = v << 4 | d;
    }
    if (n == 0)
        return false;
    *p += n;
    *half = v;
    return true;
}

bool router_parse_lsn(const char *text, uint64_t *lsn)
{
    uint32_t hi, lo;
    if (text == NULL || !hex_half(&text, &hi) || *text++ != '/' || !hex_half(&text, &lo) ||
        *text != '\0')
        return false;
    *lsn = (uint64_t)hi << 32 | lo;
    return true;
}

void router_format_lsn(uint64_t lsn, char out[32])
{
    snprintf(out, 32, "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
}
