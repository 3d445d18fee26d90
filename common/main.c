/*
 * The tusk binary: one role per process. Dispatches the subcommand to the part that owns it.
 */
#include "common/common.h"
#include "proxy/proxy.h"
#include "fanout/fanout.h"
#include "api/api.h"
#include "schema/schema.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "tusk %s: read-scaling data layer for Mastodon-style servers\n\n"
            "usage: tusk <command> [options]\n\n"
            "commands:\n"
            "  proxy -c FILE     PostgreSQL pooling proxy with replica routing (pgbouncer.ini)\n"
            "  top [HOST:]PORT   terminal view of a proxy's admin_listen figures, every second\n"
            "  fanout -c FILE    timeline fan-out engine (Redis Streams consumer)\n"
            "  api -c FILE       Mastodon-compatible REST and streaming API\n"
            "  migrate DSN       apply schema migrations (safe to run twice)\n"
            "  seed DSN [opts]   generate deterministic demo/benchmark data\n"
            "  --version         print the version\n"
            "  help              this text\n",
            TUSK_VERSION);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0 || strcmp(cmd, "-V") == 0) {
        printf("tusk %s\n", TUSK_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "proxy") == 0)
        return proxy_main(argc - 1, argv + 1);
    if (strcmp(cmd, "top") == 0)
        return proxy_top_main(argc - 1, argv + 1);
    if (strcmp(cmd, "fanout") == 0)
        return fanout_main(argc - 1, argv + 1);
    if (strcmp(cmd, "api") == 0)
        return api_main(argc - 1, argv + 1);
    if (strcmp(cmd, "migrate") == 0)
        return schema_migrate_main(argc - 1, argv + 1);
    if (strcmp(cmd, "seed") == 0)
        return schema_seed_main(argc - 1, argv + 1);
    fprintf(stderr, "tusk: unknown command \"%s\"; try \"tusk help\"\n", cmd);
    return 2;
}
