/*
 * auth_type = hba: the client authentication rules of auth_hba_file, in pg_hba.conf's
 * format as pgbouncer reads it. Lines are "local|host|hostssl|hostnossl DATABASE USER
 * [ADDRESS [MASK]] METHOD [options]"; DATABASE and USER are comma lists of names, "all",
 * "sameuser" (database only), quoted names (a quoted "all" is a name) and @file includes;
 * ADDRESS is "all" or an IPv4/IPv6 address with a /prefix or a MASK. The first line that
 * matches decides; no match rejects. The file is parsed whole when the config is loaded, so a
 * broken file is refused like any broken config and RELOAD keeps the running one.
 */
#include "proxy/internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HBA_MAX_LINE 8192
#define HBA_MAX_INCLUDE_DEPTH 4

typedef struct hba_name {
    char *name;
    bool keyword; /* unquoted all / sameuser */
} hba_name;

typedef struct hba_rule {
    int conn; /* HBA_CONN_* */
    hba_name *dbs, *users;
    int n_dbs, n_users;
    bool any_addr;
    int family; /* AF_INET / AF_INET6 */
    uint8_t addr[16], mask[16];
    int method; /* PX_HBA_* */
    int line;
} hba_rule;

struct px_hba {
    hba_rule *rules;
    int n;
};

enum { HBA_CONN_LOCAL = 1, HBA_CONN_HOST, HBA_CONN_HOSTSSL, HBA_CONN_HOSTNOSSL };

typedef struct parse_ctx {
    const char *path;
    int line;
    char *err;
    size_t errlen;
} parse_ctx;

/* what is shown of a name or path in an error */
#define HBA_SHOW 200

static bool fail(parse_ctx *pc, const char *fmt, const char *what)
{
    char w[HBA_SHOW + 1], m[HBA_SHOW + 128];
    size_t n = strlen(what);
    memcpy(w, what, n > HBA_SHOW ? HBA_SHOW : n);
    w[n > HBA_SHOW ? HBA_SHOW : n] = '\0';
    if (snprintf(m, sizeof(m), fmt, w) < 0)
        m[0] = '\0';
    if (snprintf(pc->err, pc->errlen, "%s line %d: %s", pc->path, pc->line, m) < 0)
        pc->err[0] = '\0';
    return false;
}

/* next whitespace-separated field (quotes keep spaces and commas); NULL at end of line. The
 * field is copied to out with its quotes as they were, so names can be split on commas
 * outside quotes later. */
static const char *next_field(const char *p, char *out, size_t cap, bool *bad)
{
    while (*p == ' ' || *p == '\t')
        p++;
    if (!*p || *p == '#' || *p == '\n' || *p == '\r')
        return NULL;
    size_t n = 0;
    bool q = false;
    while (*p && (q || (*p != ' ' && *p != '\t' && *p != '#' && *p != '\n' && *p != '\r'))) {
        if (*p == '"')
            q = !q;
        if (n + 1 >= cap) {
            *bad = true;
            return NULL;
        }
        out[n++] = *p++;
    }
    if (q)
        *bad = true; /* unterminated quote */
    out[n] = '\0';
    return p;
}

static bool add_name(hba_name **v, int *n, const char *s, size_t len, bool keyword)
{
    hba_name *nv = realloc(*v, sizeof(**v) * (size_t)(*n + 1));
    if (!nv)
        return false;
    *v = nv;
    char *c = strndup(s, len);
    if (!c)
        return false;
    nv[*n].name = c;
    nv[*n].keyword = keyword;
    (*n)++;
    return true;
}

static bool parse_names(parse_ctx *pc, const char *field, hba_name **v, int *n, int depth);

/* @file: names from a file, separated by commas or white space, relative to the hba file */
static bool include_names(parse_ctx *pc, const char *file, hba_name **v, int *n, int depth)
{
    if (depth >= HBA_MAX_INCLUDE_DEPTH)
        return fail(pc, "@%s: includes nested too deep", file);
    char full[4096];
    if (file[0] == '/') {
        if (snprintf(full, sizeof(full), "%s", file) >= (int)sizeof(full))
            return fail(pc, "@%s: path too long", file);
    } else {
        const char *slash = strrchr(pc->path, '/');
        int dl = slash ? (int)(slash - pc->path) : 1;
        if (snprintf(full, sizeof(full), "%.*s/%s", dl, slash ? pc->path : ".", file) >=
            (int)sizeof(full))
            return fail(pc, "@%s: path too long", file);
    }
    FILE *f = fopen(full, "r");
    if (!f)
        return fail(pc, "cannot open the included file %s", full);
    char line[HBA_MAX_LINE];
    bool ok = true;
    while (ok && fgets(line, sizeof(line), f)) {
        const char *p = line;
        char field[HBA_MAX_LINE];
        bool bad = false;
        while (ok && (p = next_field(p, field, sizeof(field), &bad)))
            ok = parse_names(pc, field, v, n, depth + 1);
        if (bad)
            ok = fail(pc, "bad field in %s", full);
    }
    fclose(f);
    return ok;
}

/* a comma list: name, "quoted name", all, sameuser, @file */
static bool parse_names(parse_ctx *pc, const char *field, hba_name **v, int *n, int depth)
{
    const char *p = field;
    while (*p) {
        char name[HBA_MAX_LINE];
        size_t len = 0;
        bool quoted = false;
        while (*p && *p != ',') {
            if (*p == '"') {
                quoted = true;
                p++;
                while (*p && *p != '"')
                    name[len++] = *p++;
                if (*p == '"')
                    p++;
                continue;
            }
            name[len++] = *p++;
        }
        name[len] = '\0';
        if (*p == ',')
            p++;
        if (len == 0)
            return fail(pc, "empty name in \"%s\"", field);
        if (!quoted && name[0] == '@') {
            if (!include_names(pc, name + 1, v, n, depth))
                return false;
            continue;
        }
        bool keyword = !quoted && (strcmp(name, "all") == 0 || strcmp(name, "sameuser") == 0);
        if (!quoted && (strcmp(name, "samerole") == 0 || strcmp(name, "samegroup") == 0 ||
                        strcmp(name, "replication") == 0 || name[0] == '+'))
            return fail(pc, "\"%s\" is not supported by tusk", name);
        if (!add_name(v, n, name, len, keyword))
            return fail(pc, "%s", "out of memory");
    }
    return true;
}

static bool parse_addr(parse_ctx *pc, hba_rule *r, const char *addr, const char *mask)
{
    if (strcmp(addr, "all") == 0) {
        r->any_addr = true;
        return true;
    }
    if (strcmp(addr, "samehost") == 0 || strcmp(addr, "samenet") == 0)
        return fail(pc, "address \"%s\" is not supported by tusk", addr);
    char a[128];
    if (snprintf(a, sizeof(a), "%s", addr) >= (int)sizeof(a))
        return fail(pc, "bad address \"%s\"", addr);
    char *slash = strchr(a, '/');
    int prefix = -1;
    if (slash) {
        *slash = '\0';
        char *end;
        errno = 0;
        long pl = strtol(slash + 1, &end, 10);
        if (*end || end == slash + 1 || errno || pl < 0)
            return fail(pc, "bad address \"%s\"", addr);
        prefix = (int)pl;
    }
    int bytes;
    if (inet_pton(AF_INET, a, r->addr) == 1) {
        r->family = AF_INET;
        bytes = 4;
    } else if (inet_pton(AF_INET6, a, r->addr) == 1) {
        r->family = AF_INET6;
        bytes = 16;
    } else {
        return fail(pc, "bad address \"%s\" (host names are not supported)", addr);
    }
    if (prefix >= 0) {
        if (mask || prefix > bytes * 8)
            return fail(pc, "bad address \"%s\"", addr);
        for (int i = 0; i < bytes; i++) {
            int bits = prefix - i * 8;
            r->mask[i] = bits >= 8 ? 0xff : bits <= 0 ? 0 : (uint8_t)(0xff << (8 - bits));
        }
    } else {
        if (!mask)
            return fail(pc, "address \"%s\" needs a /prefix or a mask", addr);
        uint8_t m[16];
        if (inet_pton(r->family, mask, m) != 1)
            return fail(pc, "bad mask \"%s\"", mask);
        memcpy(r->mask, m, (size_t)bytes);
    }
    for (int i = 0; i < bytes; i++)
        r->addr[i] &= r->mask[i];
    return true;
}

static int parse_method(const char *m)
{
    static const struct {
        const char *name;
        int method;
    } methods[] = {
        {"trust", PX_HBA_TRUST},       {"reject", PX_HBA_REJECT},       {"md5", PX_HBA_MD5},
        {"password", PX_HBA_PASSWORD}, {"scram-sha-256", PX_HBA_SCRAM}, {"cert", PX_HBA_CERT},
        {"peer", PX_HBA_PEER},
    };
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (strcmp(m, methods[i].name) == 0)
            return methods[i].method;
    return -1;
}

static void rule_free(hba_rule *r)
{
    for (int i = 0; i < r->n_dbs; i++)
        free(r->dbs[i].name);
    for (int i = 0; i < r->n_users; i++)
        free(r->users[i].name);
    free(r->dbs);
    free(r->users);
}

static bool parse_line(parse_ctx *pc, const char *line, hba_rule *r, bool *empty)
{
    char f[6][HBA_MAX_LINE];
    int nf = 0;
    bool bad = false;
    const char *p = line;
    while (nf < 6 && (p = next_field(p, f[nf], sizeof(f[nf]), &bad)))
        nf++;
    if (bad)
        return fail(pc, "%s", "unterminated quote or field too long");
    *empty = nf == 0;
    if (nf == 0)
        return true;
    if (strcmp(f[0], "local") == 0)
        r->conn = HBA_CONN_LOCAL;
    else if (strcmp(f[0], "host") == 0)
        r->conn = HBA_CONN_HOST;
    else if (strcmp(f[0], "hostssl") == 0)
        r->conn = HBA_CONN_HOSTSSL;
    else if (strcmp(f[0], "hostnossl") == 0)
        r->conn = HBA_CONN_HOSTNOSSL;
    else
        return fail(pc, "unknown connection type \"%s\"", f[0]);
    int need = r->conn == HBA_CONN_LOCAL ? 4 : 5;
    if (nf < need)
        return fail(pc, "%s", "too few fields");
    if (!parse_names(pc, f[1], &r->dbs, &r->n_dbs, 0) ||
        !parse_names(pc, f[2], &r->users, &r->n_users, 0))
        return false;
    int mi = 3;
    if (r->conn != HBA_CONN_LOCAL) {
        /* ADDRESS MASK METHOD, or ADDRESS METHOD */
        bool with_mask =
            nf >= 6 && parse_method(f[4]) < 0 && !strchr(f[3], '/') && strcmp(f[3], "all") != 0;
        if (!parse_addr(pc, r, f[3], with_mask ? f[4] : NULL))
            return false;
        mi = with_mask ? 5 : 4;
    }
    r->method = parse_method(f[mi]);
    if (r->method < 0)
        return fail(pc, "unknown authentication method \"%s\"", f[mi]);
    if (r->method == PX_HBA_PEER && r->conn != HBA_CONN_LOCAL)
        return fail(pc, "%s", "peer is only for local (unix socket) lines");
    if (mi + 1 < nf || (p && next_field(p, f[0], sizeof(f[0]), &bad)))
        log_warning("%s line %d: options after the method are ignored", pc->path, pc->line);
    return true;
}

px_hba *px_hba_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open auth_hba_file %s: %s", path, strerror(errno));
        return NULL;
    }
    px_hba *h = calloc(1, sizeof(*h));
    parse_ctx pc = {.path = path, .err = err, .errlen = errlen};
    char line[HBA_MAX_LINE];
    bool ok = h != NULL;
    if (!h)
        snprintf(err, errlen, "out of memory");
    while (ok && fgets(line, sizeof(line), f)) {
        pc.line++;
        if (!strchr(line, '\n') && !feof(f)) {
            ok = fail(&pc, "%s", "line too long");
            break;
        }
        hba_rule r = {0};
        bool empty = false;
        ok = parse_line(&pc, line, &r, &empty);
        if (!ok || empty) {
            rule_free(&r);
            continue;
        }
        hba_rule *nr = realloc(h->rules, sizeof(*nr) * (size_t)(h->n + 1));
        if (!nr) {
            rule_free(&r);
            ok = fail(&pc, "%s", "out of memory");
            break;
        }
        r.line = pc.line;
        h->rules = nr;
        h->rules[h->n++] = r;
    }
    fclose(f);
    if (!ok) {
        px_hba_free(h);
        return NULL;
    }
    return h;
}

void px_hba_free(px_hba *h)
{
    if (!h)
        return;
    for (int i = 0; i < h->n; i++)
        rule_free(&h->rules[i]);
    free(h->rules);
    free(h);
}

static bool names_match(const hba_name *v, int n, const char *name, const char *user, bool is_db)
{
    for (int i = 0; i < n; i++) {
        if (v[i].keyword) {
            if (strcmp(v[i].name, "all") == 0)
                return true;
            if (is_db && strcmp(v[i].name, "sameuser") == 0 && strcmp(name, user) == 0)
                return true;
            continue;
        }
        if (strcmp(v[i].name, name) == 0)
            return true;
    }
    return false;
}

static bool addr_match(const hba_rule *r, const struct sockaddr *sa)
{
    if (r->any_addr)
        return true;
    const uint8_t *a;
    uint8_t mapped[4];
    int bytes;
    if (sa->sa_family == AF_INET) {
        a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
        bytes = 4;
    } else if (sa->sa_family == AF_INET6) {
        const uint8_t *a6 = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
        static const uint8_t v4map[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (r->family == AF_INET && memcmp(a6, v4map, 12) == 0) {
            memcpy(mapped, a6 + 12, 4); /* ::ffff:a.b.c.d against an IPv4 line */
            a = mapped;
            bytes = 4;
        } else {
            a = a6;
            bytes = 16;
        }
    } else {
        return false;
    }
    if ((bytes == 4) != (r->family == AF_INET))
        return false;
    for (int i = 0; i < bytes; i++)
        if ((a[i] & r->mask[i]) != r->addr[i])
            return false;
    return true;
}

int px_hba_match(const px_hba *h, const struct sockaddr *sa, bool tls, const char *db,
                 const char *user, int *line)
{
    bool local = sa->sa_family == AF_UNIX;
    for (int i = 0; h && i < h->n; i++) {
        const hba_rule *r = &h->rules[i];
        if (local != (r->conn == HBA_CONN_LOCAL))
            continue;
        if ((r->conn == HBA_CONN_HOSTSSL && !tls) || (r->conn == HBA_CONN_HOSTNOSSL && tls))
            continue;
        if (!names_match(r->dbs, r->n_dbs, db, user, true) ||
            !names_match(r->users, r->n_users, user, user, false))
            continue;
        if (!local && !addr_match(r, sa))
            continue;
        if (line)
            *line = r->line;
        return r->method;
    }
    if (line)
        *line = 0;
    return PX_HBA_NONE;
}
