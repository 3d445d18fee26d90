/* Entry point of "tusk api": reads the [api] section of the config and runs the server. */
#include "api/api.h"
#include "api/internal.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: tusk api -c FILE\n\n"
                 "Mastodon-compatible REST subset and streaming API.\n"
                 "FILE holds an [api] section (see api/README.md).\n");
}

/* "tusk api -c FILE" */
int api_main(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "tusk api: unexpected argument \"%s\"\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    log_set_role("api");
    api_config cfg;
    api_config_defaults(&cfg);
    char err[512];
    if (api_config_load(&cfg, path, err, sizeof(err)) != 0) {
        fprintf(stderr, "tusk api: %s\n", err);
        api_config_free(&cfg);
        return 1;
    }
    log_set_level(cfg.log_level);
    if (cfg.logfile && log_set_file(cfg.logfile) != 0) {
        fprintf(stderr, "tusk api: cannot open logfile %s\n", cfg.logfile);
        api_config_free(&cfg);
        return 1;
    }
    int rc = api_server_run(&cfg);
    api_config_free(&cfg);
    return rc;
}
