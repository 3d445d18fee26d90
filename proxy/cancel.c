/*
 * Cancel keys. Each client gets its own (pid, key) in BackendKeyData; a CancelRequest may
 * arrive on any worker (a new connection), so the keys live in one process-wide table. The
 * worker owning the client is told through its inbox and, if the client's query is running,
 * opens a connection to that server and sends the server's real key.
 */
#include "proxy/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct px_cancel_ent {
    uint32_t pid, key; /* pid 0 = free slot */
    int worker;
    px_client *client;
    uint64_t client_id;
} px_cancel_ent;

struct px_cancel_conn {
    ev_io io;
    px_worker *w;
    uint8_t pkt[16];
    uint8_t sent;
};

static uint32_t slot_of(uint32_t pid, uint32_t cap)
{
    return (pid * 2654435761u) & (cap - 1);
}

/* caller holds the lock */
static bool table_grow(void)
{
    uint32_t nc = px_g.cancel_cap ? px_g.cancel_cap * 2 : 1024;
    px_cancel_ent *nt = calloc(nc, sizeof(*nt));
    if (!nt)
        return false;
    for (uint32_t i = 0; i < px_g.cancel_cap; i++) {
        px_cancel_ent *e = &px_g.cancel[i];
        if (!e->pid)
            continue;
        uint32_t j = slot_of(e->pid, nc);
        while (nt[j].pid)
            j = (j + 1) & (nc - 1);
        nt[j] = *e;
    }
    free(px_g.cancel);
    px_g.cancel = nt;
    px_g.cancel_cap = nc;
    return true;
}

/* caller holds the lock */
static px_cancel_ent *table_find(uint32_t pid)
{
    if (!px_g.cancel_cap)
        return NULL;
    uint32_t j = slot_of(pid, px_g.cancel_cap);
    while (px_g.cancel[j].pid) {
        if (px_g.cancel[j].pid == pid)
            return &px_g.cancel[j];
        j = (j + 1) & (px_g.cancel_cap - 1);
    }
    return NULL;
}

/* give c a unique (pid, key) and register it */
void px_cancel_register(px_client *c)
{
    uint32_t rnd[2];
    pthread_mutex_lock(&px_g.lock);
    if (px_g.cancel_count * 2 >= px_g.cancel_cap && !table_grow()) {
        pthread_mutex_unlock(&px_g.lock);
        c->cancel_pid = c->cancel_key = 0;
        return;
    }
    do {
        if (!auth_random_bytes(rnd, sizeof(rnd))) {
            rnd[0] = (uint32_t)random();
            rnd[1] = (uint32_t)random() ^ (uint32_t)(uintptr_t)c;
        }
        rnd[0] &= 0x7fffffff; /* looks like a pid: positive */
    } while (rnd[0] == 0 || table_find(rnd[0]));
    uint32_t j = slot_of(rnd[0], px_g.cancel_cap);
    while (px_g.cancel[j].pid)
        j = (j + 1) & (px_g.cancel_cap - 1);
    px_g.cancel[j] = (px_cancel_ent){rnd[0], rnd[1], c->io.w->idx, c, c->id};
    px_g.cancel_count++;
    pthread_mutex_unlock(&px_g.lock);
    c->cancel_pid = rnd[0];
    c->cancel_key = rnd[1];
}

/* forget c's key (before it is freed) */
void px_cancel_unregister(px_client *c)
{
    if (!c->cancel_pid)
        return;
    pthread_mutex_lock(&px_g.lock);
    px_cancel_ent *e = table_find(c->cancel_pid);
    if (e && e->client == c) {
        /* backward-shift deletion keeps linear probing chains intact */
        uint32_t cap = px_g.cancel_cap;
        uint32_t i = (uint32_t)(e - px_g.cancel);
        uint32_t j = i;
        for (;;) {
            j = (j + 1) & (cap - 1);
            if (!px_g.cancel[j].pid)
                break;
            uint32_t k = slot_of(px_g.cancel[j].pid, cap);
            if ((j > i && (k <= i || k > j)) || (j < i && (k <= i && k > j))) {
                px_g.cancel[i] = px_g.cancel[j];
                i = j;
            }
        }
        px_g.cancel[i].pid = 0;
        px_g.cancel[i].client = NULL;
        px_g.cancel_count--;
    }
    pthread_mutex_unlock(&px_g.lock);
    c->cancel_pid = 0;
}

/* a CancelRequest arrived: pass it to the worker that owns the client */
void px_cancel_request(uint32_t pid, uint32_t key)
{
    pthread_mutex_lock(&px_g.lock);
    px_cancel_ent *e = table_find(pid);
    px_wmsg *m = NULL;
    int worker = -1;
    if (e && e->key == key) {
        m = calloc(1, sizeof(*m));
        if (m) {
            m->kind = WMSG_CANCEL;
            m->client = e->client;
            m->client_id = e->client_id;
            m->pid = pid;
            m->key = key;
            worker = e->worker;
        }
    }
    pthread_mutex_unlock(&px_g.lock);
    if (!m) {
        log_debug("cancel request for an unknown key ignored");
        return;
    }
    px_worker_post(px_g.workers[worker], m);
}

/* in the owning worker: check the client is still there, then cancel its query */
void px_cancel_deliver(px_worker *w, px_wmsg *m)
{
    pthread_mutex_lock(&px_g.lock);
    px_cancel_ent *e = table_find(m->pid);
    bool alive = e && e->client == m->client && e->client_id == m->client_id && e->key == m->key;
    pthread_mutex_unlock(&px_g.lock);
    (void)w;
    if (alive)
        px_client_cancel(m->client);
}

static void cancel_conn_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct px_cancel_conn *cc = container_of(io, struct px_cancel_conn, io);
    (void)revents;
    if (!cc->sent) {
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (!err && send(io->fd, cc->pkt, 16, MSG_NOSIGNAL) == 16) {
            /* wait for the server to close: it has read the request by then */
            cc->sent = 1;
            ev_io_stop(loop, io);
            ev_io_set(io, io->fd, EV_READ);
            ev_io_start(loop, io);
            return;
        }
        log_warning("could not send a cancel request to the server: %s",
                    strerror(err ? err : errno));
    }
    ev_io_stop(loop, io);
    close(io->fd);
    free(cc);
}

/* open a connection to a server and send its real cancel key */
void px_cancel_send(px_worker *w, const px_node *node, uint32_t pid, uint32_t key)
{
    struct sockaddr_storage addr;
    socklen_t alen;
    char err[256];
    if (!px_node_addr(node, &addr, &alen, err, sizeof(err))) {
        log_warning("cancel: %s", err);
        return;
    }
    int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (connect(fd, (struct sockaddr *)&addr, alen) != 0 && errno != EINPROGRESS) {
        log_warning("cancel: could not connect to %s:%d: %s", node->host, node->port,
                    strerror(errno));
        close(fd);
        return;
    }
    struct px_cancel_conn *cc = calloc(1, sizeof(*cc));
    if (!cc) {
        close(fd);
        return;
    }
    cc->w = w;
    pkt_put_u32(cc->pkt, 16);
    pkt_put_u32(cc->pkt + 4, PX_CANCEL_REQUEST);
    pkt_put_u32(cc->pkt + 8, pid);
    pkt_put_u32(cc->pkt + 12, key);
    ev_io_init(&cc->io, cancel_conn_cb, fd, EV_WRITE);
    ev_io_start(w->loop, &cc->io);
    log_debug("cancel request sent to backend %u", pid);
}
