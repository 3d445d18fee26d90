/* Entry point of "tusk api". Not built yet: prints what to use instead. */
#include "api/api.h"
#include <stdio.h>

int api_main(int argc, char **argv)
{
    fprintf(stderr, "tusk api: this role is not built yet\n");
    return 1;
}
