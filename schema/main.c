/* Entry points of "tusk migrate" and "tusk seed". Not built yet. */
#include "schema/schema.h"
#include <stdio.h>

int schema_migrate_main(int argc, char **argv)
{
    fprintf(stderr, "tusk migrate: not built yet\n");
    return 1;
}

int schema_seed_main(int argc, char **argv)
{
    fprintf(stderr, "tusk seed: not built yet\n");
    return 1;
}
