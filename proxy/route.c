/*
 * The two hooks where replica routing and read-your-writes plug in (issue 3): which node runs
 * a client's next transaction, and what happens on a server connection after a transaction
 * finished and before it returns to the pool (the commit-LSN capture). Today every
 * transaction goes to the primary and nothing runs between transactions.
 */
#include "proxy/internal.h"

#include <string.h>

/* node index (0 = primary) for the client's next transaction; msg is its first message
 * (whole, or the start of a message too large to buffer) */
int proxy_route_pick(const px_client *c, const uint8_t *msg, size_t len)
{
    (void)c;
    (void)msg;
    (void)len;
    return 0;
}

/* a transaction finished on s (ReadyForQuery 'I', nothing outstanding) and s is about to go
 * back to the pool. Return true to release it now; to run a query first (for example
 * "SELECT pg_current_wal_insert_lsn()" after a write), queue it with
 * px_server_internal_query(s, INTQ_LSN, ...) and return false: internal_done() in server.c
 * sees INTQ_LSN complete, and must then release the server (px_pool_release). */
bool proxy_txn_finished(px_server *s)
{
    (void)s;
    return true;
}

/* ---- routing state registry (filled by the router integration) ---- */

static px_route_db *route_dbs;

px_route_db *px_route_db_find(const char *name)
{
    for (px_route_db *d = route_dbs; d; d = d->next)
        if (strcmp(d->name, name) == 0)
            return d;
    return NULL;
}

px_route_db *px_route_db_next(px_route_db *prev)
{
    return prev ? prev->next : route_dbs;
}
