/*
 * Config parsing in pgbouncer's layout: an ini parser (sections, key = value, ';'/'#' comment
 * lines, %include) that hands each key to a callback, and a parser for the libpq-style
 * "key=value key='quoted'" strings that [databases] entries hold. Neither knows what the keys
 * mean: the part that owns a section interprets it and reports bad values through the
 * callback, and the parser adds "file:line: " so every message points at its line.
 *
 * The section in force carries across %include in both directions, as in pgbouncer: an
 * included file may open a section that the including file then continues.
 */
#include "common/common.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INI_MAX_FILE (16u << 20)
#define INI_MAX_SECTION 256

typedef struct ini_state {
    ini_handler handler;
    void *ctx;
    char *err;
    size_t errlen;
    char section[INI_MAX_SECTION];
} ini_state;

static int parse_text(ini_state *st, const char *text, size_t len, const char *name,
                      const char *dir, int depth);
static int parse_line(ini_state *st, char *line, const char *name, const char *dir, int lineno,
                      int depth);
static int include_file(ini_state *st, const char *arg, const char *name, const char *dir,
                        int lineno, int depth);
static int parse_file_at(ini_state *st, const char *path, int depth, const char *from,
                         int from_line);
static void fail_at(ini_state *st, const char *name, int lineno, const char *fmt, ...)
    TUSK_PRINTF(4, 5);
static char *trim(char *s);
static void lower(char *s);

/* parse a pgbouncer.ini-layout file; 0 or -1 with "file:line: message" in err */
int ini_parse_file(const char *path, ini_handler handler, void *ctx, char *err, size_t errlen)
{
    ini_state st = {.handler = handler, .ctx = ctx, .err = err, .errlen = errlen};
    if (errlen)
        err[0] = '\0';
    return parse_file_at(&st, path, 0, NULL, 0);
}

/* parse config text in memory; includes resolve against the working directory */
int ini_parse_string(const char *text, ini_handler handler, void *ctx, char *err, size_t errlen)
{
    ini_state st = {.handler = handler, .ctx = ctx, .err = err, .errlen = errlen};
    if (errlen)
        err[0] = '\0';
    return parse_text(&st, text, strlen(text), NULL, ".", 0);
}

/* call handler for each key=value of a libpq-style connection string */
int connstr_parse(const char *text, connstr_handler handler, void *ctx, char *err, size_t errlen)
{
    size_t n = strlen(text);
    char *buf = malloc(n + 1); /* keys and unescaped values never grow */
    if (!buf) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (errlen)
        err[0] = '\0';
    const char *p = text;
    int rc = 0;
    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            break;
        /* key: up to '=' or whitespace */
        const char *ks = p;
        while (*p && *p != '=' && !isspace((unsigned char)*p))
            p++;
        size_t klen = (size_t)(p - ks);
        while (isspace((unsigned char)*p))
            p++;
        if (klen == 0) {
            snprintf(err, errlen, "missing key before \"=\" in connection string");
            rc = -1;
            break;
        }
        if (*p != '=') {
            snprintf(err, errlen, "missing \"=\" after \"%.*s\" in connection string",
                     (int)(klen > 64 ? 64 : klen), ks);
            rc = -1;
            break;
        }
        p++;
        while (isspace((unsigned char)*p))
            p++;
        char *key = buf;
        memcpy(key, ks, klen);
        key[klen] = '\0';
        char *val = buf + klen + 1;
        size_t vl = 0;
        if (*p == '\'') {
            p++;
            for (;;) {
                if (*p == '\0') {
                    snprintf(err, errlen,
                             "unterminated quoted value for \"%s\" in connection string", key);
                    rc = -1;
                    goto out;
                }
                if (*p == '\\' && p[1]) {
                    val[vl++] = p[1];
                    p += 2;
                } else if (*p == '\'') {
                    p++;
                    break;
                } else {
                    val[vl++] = *p++;
                }
            }
            if (*p && !isspace((unsigned char)*p)) {
                snprintf(err, errlen,
                         "missing whitespace after quoted value for \"%s\" in connection string",
                         key);
                rc = -1;
                break;
            }
        } else {
            while (*p && !isspace((unsigned char)*p)) {
                if (*p == '\\' && p[1]) {
                    val[vl++] = p[1];
                    p += 2;
                } else {
                    val[vl++] = *p++;
                }
            }
        }
        val[vl] = '\0';
        if (handler(ctx, key, val, err, errlen) != 0) {
            if (errlen && err[0] == '\0')
                snprintf(err, errlen, "invalid value for \"%s\" in connection string", key);
            rc = -1;
            break;
        }
    }
out:
    free(buf);
    return rc;
}

/* ---- internals ---- */

/* read and parse one file at some include depth; from/from_line name the %include line */
static int parse_file_at(ini_state *st, const char *path, int depth, const char *from,
                         int from_line)
{
    size_t len = 0;
    char why[512];
    char *text = file_read_all(path, INI_MAX_FILE, &len, why, sizeof(why));
    if (!text) {
        if (depth > 0)
            fail_at(st, from, from_line, "cannot include %s", why);
        else
            snprintf(st->err, st->errlen, "%s", why);
        return -1;
    }
    char *dir = strdup(path);
    if (!dir) {
        free(text);
        snprintf(st->err, st->errlen, "%s: out of memory", path);
        return -1;
    }
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        strcpy(dir, ".");
    int rc = parse_text(st, text, len, path, dir, depth);
    free(dir);
    free(text);
    return rc;
}

/* walk the lines of text; name is the file name for messages (NULL for a string) */
static int parse_text(ini_state *st, const char *text, size_t len, const char *name,
                      const char *dir, int depth)
{
    size_t i = 0;
    int lineno = 0;
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        i = 3; /* editors on some systems start UTF-8 files with a byte order mark */
    while (i < len) {
        lineno++;
        const char *nl = memchr(text + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - text) : len;
        size_t ll = end - i;
        if (memchr(text + i, '\0', ll)) {
            fail_at(st, name, lineno, "NUL byte in line");
            return -1;
        }
        char *line = malloc(ll + 1);
        if (!line) {
            fail_at(st, name, lineno, "out of memory");
            return -1;
        }
        memcpy(line, text + i, ll);
        line[ll] = '\0';
        int rc = parse_line(st, line, name, dir, lineno, depth);
        free(line);
        if (rc != 0)
            return -1;
        i = end + 1;
    }
    return 0;
}

/* one line: blank, comment, [section], %include or key = value */
static int parse_line(ini_state *st, char *line, const char *name, const char *dir, int lineno,
                      int depth)
{
    char *p = trim(line);
    if (*p == '\0' || *p == ';' || *p == '#')
        return 0;
    if (*p == '[') {
        char *close = strchr(p, ']');
        if (!close) {
            fail_at(st, name, lineno, "missing ']' in section header");
            return -1;
        }
        char *rest = trim(close + 1);
        if (*rest && *rest != ';' && *rest != '#') {
            fail_at(st, name, lineno, "unexpected text after section header");
            return -1;
        }
        *close = '\0';
        char *sec = trim(p + 1);
        if (*sec == '\0') {
            fail_at(st, name, lineno, "empty section name");
            return -1;
        }
        if (strlen(sec) >= sizeof(st->section)) {
            fail_at(st, name, lineno, "section name too long");
            return -1;
        }
        lower(sec);
        strcpy(st->section, sec);
        return 0;
    }
    if (*p == '%') {
        if (strncmp(p, "%include", 8) == 0 && (p[8] == '\0' || isspace((unsigned char)p[8])))
            return include_file(st, trim(p + 8), name, dir, lineno, depth);
        fail_at(st, name, lineno, "unknown directive \"%.32s\"", p);
        return -1;
    }
    if (st->section[0] == '\0') {
        fail_at(st, name, lineno, "key outside of any section");
        return -1;
    }
    /* database and user names are case-sensitive: only other sections fold their keys */
    bool in_databases = strcmp(st->section, "databases") == 0 || strcmp(st->section, "users") == 0;
    char *key;
    char *rest;
    if (*p == '"') {
        /* quoted name: "" stands for one quote; everything else is kept as written */
        char *o = p;
        char *q = p + 1;
        for (;;) {
            if (*q == '\0') {
                fail_at(st, name, lineno, "unterminated quoted name");
                return -1;
            }
            if (*q == '"') {
                if (q[1] == '"') {
                    *o++ = '"';
                    q += 2;
                    continue;
                }
                q++;
                break;
            }
            *o++ = *q++;
        }
        *o = '\0';
        key = p;
        rest = q;
        while (isspace((unsigned char)*rest))
            rest++;
        if (*rest != '=') {
            fail_at(st, name, lineno, "expected '=' after quoted name");
            return -1;
        }
        if (key[0] == '\0') {
            fail_at(st, name, lineno, "empty name");
            return -1;
        }
        if (!in_databases)
            lower(key);
    } else {
        char *eq = strchr(p, '=');
        if (!eq) {
            fail_at(st, name, lineno, "expected \"key = value\"");
            return -1;
        }
        *eq = '\0';
        key = trim(p);
        rest = eq;
        if (*key == '\0') {
            fail_at(st, name, lineno, "missing key before '='");
            return -1;
        }
        for (char *k = key; *k; k++) {
            if (isspace((unsigned char)*k)) {
                fail_at(st, name, lineno, "space in key \"%.64s\" (quote database names)", key);
                return -1;
            }
        }
        if (!in_databases)
            lower(key);
    }
    char *value = trim(rest + 1);
    char msg[512];
    msg[0] = '\0';
    if (st->handler(st->ctx, st->section, key, value, lineno, msg, sizeof(msg)) != 0) {
        if (msg[0])
            fail_at(st, name, lineno, "%s", msg);
        else
            fail_at(st, name, lineno, "invalid value for \"%.64s\" in [%s]", key, st->section);
        return -1;
    }
    return 0;
}

/* %include path: relative paths resolve against the including file's folder */
static int include_file(ini_state *st, const char *arg, const char *name, const char *dir,
                        int lineno, int depth)
{
    if (*arg == '\0') {
        fail_at(st, name, lineno, "%%include needs a file name");
        return -1;
    }
    if (depth + 1 >= INI_MAX_DEPTH) {
        fail_at(st, name, lineno, "%%include nested too deep (more than %d levels)", INI_MAX_DEPTH);
        return -1;
    }
    size_t n = strlen(dir) + strlen(arg) + 2;
    char *path = malloc(n);
    if (!path) {
        fail_at(st, name, lineno, "out of memory");
        return -1;
    }
    if (arg[0] == '/')
        snprintf(path, n, "%s", arg);
    else
        snprintf(path, n, "%s/%s", dir, arg);
    int rc = parse_file_at(st, path, depth + 1, name, lineno);
    free(path);
    return rc;
}

/* format "file:line: message" (or "line N: message" for a string) into st->err */
static void fail_at(ini_state *st, const char *name, int lineno, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!st->errlen)
        return;
    if (name)
        snprintf(st->err, st->errlen, "%s:%d: %s", name, lineno, msg);
    else
        snprintf(st->err, st->errlen, "line %d: %s", lineno, msg);
}

/* strip leading and trailing whitespace in place */
static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* ASCII lowercase in place */
static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}
