/*
 * Steering: which worker's listening socket the kernel hands a new TCP connection to.
 *
 * Left alone, the kernel hashes each connection onto one of the SO_REUSEPORT sockets, so even
 * two clients land on two loops that each sleep and wake for every round trip. At light load
 * one loop serving both is cheaper: it fills one client's gaps with the other's events, and the
 * machine makes fewer context switches (pgbench -S -C, 2 cores: 2.4 against 3.9 per
 * connection). So new connections are packed onto worker 0 while it has fewer than
 * worker_pack_clients clients and its thread was busy under PACK_BUSY_MAX of the last janitor
 * period; past that they go to the worker with the fewest clients, which also spreads a large
 * population more evenly than hashing does.
 *
 * The choice is a one-instruction classic BPF program on each reuseport group ("return k"),
 * replaced only when k changes. A kernel that refuses it leaves the hashing in place.
 */
#include "proxy/internal.h"

#include <errno.h>
#include <limits.h>
#include <linux/filter.h>
#include <string.h>
#include <time.h>

#ifndef SO_ATTACH_REUSEPORT_CBPF
#define SO_ATTACH_REUSEPORT_CBPF 51
#endif
#ifndef SO_DETACH_REUSEPORT_BPF
#define SO_DETACH_REUSEPORT_BPF 68
#endif

#define PACK_BUSY_MAX 0.75 /* worker 0 busier than this takes no more packed clients */

static pthread_mutex_t steer_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int steer_target = -1; /* worker the program sends to; -1: none (hashing) */
static atomic_bool steer_on;
static _Atomic double pack_busy; /* worker 0's busy fraction over the last janitor period */

/* back to hashing on every reuseport group (a socket of each: worker 0's TCP listeners) */
static void detach(void)
{
    px_worker *w0 = px_g.workers[0];
    int unused = 0;
    for (int i = 0; i < w0->n_listeners; i++)
        if (!w0->listeners[i].is_unix && w0->listeners[i].fd >= 0)
            setsockopt(w0->listeners[i].fd, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, &unused,
                       sizeof(unused));
}

/* send every group's new connections to worker target's socket; on a refusal, none */
static bool attach(int target)
{
    px_worker *w0 = px_g.workers[0];
    struct sock_filter code[] = {BPF_STMT(BPF_RET | BPF_K, (uint32_t)target)};
    struct sock_fprog prog = {.len = 1, .filter = code};
    for (int i = 0; i < w0->n_listeners; i++) {
        const px_listener *l = &w0->listeners[i];
        if (l->is_unix || l->fd < 0)
            continue;
        if (setsockopt(l->fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof(prog)) != 0) {
            log_info("steering new connections is not available (%s); the kernel spreads them",
                     strerror(errno));
            detach(); /* a group attached before this one would stay steered */
            return false;
        }
    }
    return true;
}

void px_steer_start(const px_config *cfg)
{
    if (px_g.nworkers < 2)
        return;
    atomic_store(&steer_on, true);
    px_steer_update(cfg);
}

static bool packing(const px_config *cfg)
{
    return atomic_load_explicit(&px_g.workers[0]->n_clients, memory_order_relaxed) <
               cfg->worker_pack_clients &&
           atomic_load_explicit(&pack_busy, memory_order_relaxed) < PACK_BUSY_MAX;
}

bool px_steer_packed(const px_worker *w)
{
    return w->idx == 0 && packing(w->cfg);
}

/* where the next connection should go */
static int choose(const px_config *cfg)
{
    int n = px_g.nworkers;
    if (packing(cfg))
        return 0;
    int best = 0, best_n = INT_MAX;
    for (int i = 0; i < n; i++) {
        int c = atomic_load_explicit(&px_g.workers[i]->n_clients, memory_order_relaxed);
        if (c < best_n) {
            best = i;
            best_n = c;
        }
    }
    return best;
}

void px_steer_update(const px_config *cfg)
{
    if (!atomic_load_explicit(&steer_on, memory_order_relaxed))
        return;
    if (choose(cfg) == atomic_load_explicit(&steer_target, memory_order_relaxed))
        return;
    pthread_mutex_lock(&steer_lock);
    int target = choose(cfg);
    if (atomic_load(&steer_on) && target != atomic_load(&steer_target)) {
        if (attach(target))
            atomic_store(&steer_target, target);
        else
            atomic_store(&steer_on, false);
    }
    pthread_mutex_unlock(&steer_lock);
}

void px_steer_janitor(px_worker *w, double now)
{
    static double last_wall, last_cpu; /* worker 0's thread only */
    struct timespec ts;
    if (w->idx != 0 || clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return;
    /* polling is not work: counted, it would unpack the load that it polls for */
    double cpu = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 - w->poll_seconds;
    if (last_wall > 0 && now > last_wall)
        atomic_store(&pack_busy, (cpu - last_cpu) / (now - last_wall));
    last_wall = now;
    last_cpu = cpu;
    px_steer_update(w->cfg);
}

void px_steer_stop(void)
{
    pthread_mutex_lock(&steer_lock);
    if (atomic_exchange(&steer_on, false) && atomic_load(&steer_target) >= 0)
        detach(); /* hashing over whatever sockets stay open */
    atomic_store(&steer_target, -1);
    pthread_mutex_unlock(&steer_lock);
}

int px_steer_target(void)
{
    return atomic_load(&steer_target);
}
