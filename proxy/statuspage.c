/*
 * The status page at "/": one glance at the nodes (role, state, lag, reads) and, per replica,
 * a chart of its lag over the last 15 minutes drawn here as inline SVG from the sampler's
 * history ring. No JavaScript and nothing fetched from elsewhere; a meta refresh reloads it.
 */
#include "proxy/admin.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static void out(pktbuf *b, const char *fmt, ...) TUSK_PRINTF(2, 3);
static void out(pktbuf *b, const char *fmt, ...)
{
    char tmp[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        pkt_put_bytes(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* HTML-escaped copy */
static const char *h(const char *s, char *buf, size_t cap)
{
    size_t o = 0;
    for (; *s && o + 7 < cap; s++) {
        const char *r = *s == '<'   ? "&lt;"
                        : *s == '>' ? "&gt;"
                        : *s == '&' ? "&amp;"
                        : *s == '"' ? "&quot;"
                                    : NULL;
        if (r) {
            memcpy(buf + o, r, strlen(r));
            o += strlen(r);
        } else {
            buf[o++] = *s;
        }
    }
    buf[o] = '\0';
    return buf;
}

#define CW 900 /* chart width */
#define CH 160 /* chart height */

static void chart(pktbuf *b, const adm_node_hist *hs)
{
    /* scale: at least 1 s, else the largest lag seen, rounded up */
    double maxv = 1.0;
    for (int i = 0; i < hs->count; i++) {
        int k = (hs->head - hs->count + i + ADM_LAG_HISTORY) % ADM_LAG_HISTORY;
        if (hs->lag_s[k] > maxv)
            maxv = hs->lag_s[k];
    }
    double top = 1;
    while (top < maxv)
        top *= 2;
    out(b,
        "<svg class=\"chart\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
        "xmlns=\"http://www.w3.org/2000/svg\">"
        "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#f4f6fa\" stroke=\"#99a\"/>",
        CW, CH + 20, CW, CH + 20, CW, CH);
    for (int g = 1; g < 4; g++)
        out(b, "<line x1=\"0\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"#dde\"/>", CW, CH * g / 4,
            CH * g / 4);
    /* a filled area of the lag, newest at the right edge; gaps where the node was down */
    double dx = (double)CW / (ADM_LAG_HISTORY - 1);
    bool open = false;
    double first_x = 0, last_x = 0;
    for (int i = 0; i < hs->count; i++) {
        int k = (hs->head - hs->count + i + ADM_LAG_HISTORY) % ADM_LAG_HISTORY;
        double x = CW - (hs->count - 1 - i) * dx;
        float v = hs->lag_s[k];
        if (v < 0) {
            if (open)
                out(b,
                    " L%.1f,%d Z\" fill=\"#3b7dd8\" fill-opacity=\"0.35\" stroke=\"#1f5fb4\" "
                    "stroke-width=\"2\"/>",
                    last_x, CH);
            open = false;
            out(b,
                "<rect x=\"%.1f\" y=\"0\" width=\"%.1f\" height=\"%d\" fill=\"#e05050\" "
                "fill-opacity=\"0.5\"/>",
                x, dx + 0.5, CH);
            continue;
        }
        double y = CH - (v / top) * (CH - 4);
        if (y < 2)
            y = 2;
        if (y > CH - 3)
            y = CH - 3; /* a zero lag still draws a visible line */
        if (!open) {
            out(b, "<path d=\"M%.1f,%d L%.1f,%.1f", x, CH, x, y);
            open = true;
            first_x = x;
        } else {
            out(b, " L%.1f,%.1f", x, y);
        }
        last_x = x;
    }
    (void)first_x;
    if (open)
        out(b,
            " L%.1f,%d Z\" fill=\"#3b7dd8\" fill-opacity=\"0.35\" stroke=\"#1f5fb4\" "
            "stroke-width=\"2\"/>",
            last_x, CH);
    out(b,
        "<text x=\"4\" y=\"14\" font-size=\"12\" fill=\"#333\">%g s</text>"
        "<text x=\"4\" y=\"%d\" font-size=\"12\" fill=\"#333\">-15 min</text>"
        "<text x=\"%d\" y=\"%d\" font-size=\"12\" fill=\"#333\" text-anchor=\"end\">now</text>"
        "</svg>",
        top, CH + 15, CW - 4, CH + 15);
}

/* the HTML status page */
bool adm_status_page(pktbuf *b)
{
    char t[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(t, sizeof(t), "%Y-%m-%d %H:%M:%S UTC", &tm);
    out(b, "<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
           "<meta http-equiv=\"refresh\" content=\"5\"><title>tusk proxy</title>"
           "<style>body{font-family:sans-serif;margin:16px;background:#fff;color:#222}"
           "table{border-collapse:collapse;margin-bottom:16px}"
           "td,th{border:1px solid #ccd;padding:4px 10px;text-align:left}"
           "th{background:#e8ecf4}.up{color:#08791c;font-weight:bold}"
           ".down{color:#c01818;font-weight:bold}.lagging,.banned{color:#b06000;font-weight:bold}"
           "h2{font-size:16px;margin:12px 0 4px}</style></head><body>");
    out(b, "<h1>tusk proxy</h1><p>%s &middot; %d clients &middot; %d workers</p>", t,
        atomic_load(&px_g.n_clients), px_g.nworkers);
    out(b, "<table><tr><th>database</th><th>node</th><th>host</th><th>role</th><th>state</th>"
           "<th>lag</th><th>lag bytes</th><th>reads/s</th><th>reads</th></tr>");
    int nodes = 0;
    for (px_route_db *d = px_route_db_next(NULL); d; d = px_route_db_next(d)) {
        if (!d->topo)
            continue;
        int n = router_topology_count(d->topo);
        for (int i = 0; i < n; i++) {
            router_node *nd = router_topology_node(d->topo, i);
            char e1[200], e2[600];
            int st = atomic_load(&nd->state), role = atomic_load(&nd->role);
            bool banned = atomic_load(&nd->admin_banned) ||
                          atomic_load(&nd->banned_until_ms) > router_now_ms();
            const char *sn = banned                      ? "banned"
                             : st == ROUTER_NODE_DOWN    ? "down"
                             : st == ROUTER_NODE_LAGGING ? "lagging"
                                                         : "up";
            out(b,
                "<tr><td>%s</td><td>%d</td><td>%s:%d</td><td>%s</td><td class=\"%s\">%s</td>"
                "<td>%.3f s</td><td>%llu</td><td>%.1f</td><td>%llu</td></tr>",
                h(d->name, e1, sizeof(e1)), i, h(nd->host, e2, sizeof(e2)), nd->port,
                role == ROUTER_ROLE_PRIMARY   ? "primary"
                : role == ROUTER_ROLE_REPLICA ? "replica"
                                              : "unknown",
                sn, sn, (double)atomic_load(&nd->lag_ms) / 1000.0,
                (unsigned long long)atomic_load(&nd->lag_bytes), adm_reads_per_s(nd),
                (unsigned long long)atomic_load(&nd->reads_routed));
            nodes++;
        }
    }
    if (!nodes)
        out(b, "<tr><td colspan=\"9\">no routing state yet (no database with replicas)</td></tr>");
    out(b, "</table>");
    /* the history list belongs to the admin thread, which is the thread running this */
    for (adm_node_hist *hs = adm_history(); hs; hs = hs->next) {
        if (!hs->d->topo || atomic_load(&hs->n->role) == ROUTER_ROLE_PRIMARY)
            continue;
        char e1[200], e2[600];
        out(b, "<h2>%s &middot; node %d &middot; %s:%d &middot; replay lag, last 15 minutes</h2>",
            h(hs->d->name, e1, sizeof(e1)), hs->idx, h(hs->n->host, e2, sizeof(e2)), hs->n->port);
        chart(b, hs);
    }
    out(b, "<p><a href=\"/metrics\">/metrics</a> &middot; <a href=\"/health\">/health</a> "
           "&middot; <a href=\"/ready\">/ready</a></p></body></html>\n");
    return !b->failed;
}
