/*
 * Opens N logged-in, idle client connections to a PostgreSQL-protocol server (a proxy)
 * with libpq's non-blocking connect, prints "ready N" once they are all up, holds them for
 * a few seconds and exits. The benchmark reads the proxy's RSS while they are held.
 *   idle_clients HOST PORT USER PASSWORD DBNAME N HOLD_SECONDS
 */
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: idle_clients HOST PORT USER PASSWORD DBNAME N HOLD_SECONDS\n");
        return 2;
    }
    int n = atoi(argv[6]), hold = atoi(argv[7]);
    struct rlimit rl = {.rlim_cur = n + 64, .rlim_max = n + 64};
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        perror("setrlimit (continuing)");
    const char *keys[] = {"host", "port", "user", "password", "dbname", "sslmode", NULL};
    const char *vals[] = {argv[1], argv[2], argv[3], argv[4], argv[5], "disable", NULL};
    PGconn **conns = calloc(n, sizeof(*conns));
    int *state = calloc(n, sizeof(int)); /* 0 polling, 1 ok, -1 failed */
    int ok = 0, failed = 0, batch = 200;
    for (int start = 0; start < n; start += batch) {
        int end = start + batch < n ? start + batch : n;
        for (int i = start; i < end; i++) {
            conns[i] = PQconnectStartParams(keys, vals, 0);
            if (!conns[i] || PQstatus(conns[i]) == CONNECTION_BAD)
                state[i] = -1, failed++;
        }
        PostgresPollingStatusType want[batch];
        for (int i = start; i < end; i++)
            want[i - start] = PGRES_POLLING_WRITING;
        for (;;) {
            struct pollfd pfd[batch];
            int map[batch], np = 0;
            for (int i = start; i < end; i++) {
                if (state[i] != 0)
                    continue;
                pfd[np].fd = PQsocket(conns[i]);
                pfd[np].events = want[i - start] == PGRES_POLLING_READING ? POLLIN : POLLOUT;
                map[np++] = i;
            }
            if (np == 0)
                break;
            if (poll(pfd, np, 10000) <= 0) {
                for (int k = 0; k < np; k++)
                    state[map[k]] = -1, failed++;
                break;
            }
            for (int k = 0; k < np; k++) {
                if (!pfd[k].revents)
                    continue;
                int i = map[k];
                PostgresPollingStatusType st = PQconnectPoll(conns[i]);
                if (st == PGRES_POLLING_OK)
                    state[i] = 1, ok++;
                else if (st == PGRES_POLLING_FAILED) {
                    if (failed < 3)
                        fprintf(stderr, "connect failed: %s", PQerrorMessage(conns[i]));
                    state[i] = -1, failed++;
                } else
                    want[i - start] = st;
            }
        }
    }
    printf("ready %d failed %d\n", ok, failed);
    fflush(stdout);
    sleep(hold);
    for (int i = 0; i < n; i++)
        if (conns[i])
            PQfinish(conns[i]);
    free(conns);
    free(state);
    return failed ? 1 : 0;
}
