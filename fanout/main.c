/* Entry point of "tusk fanout". Not built yet: prints what to use instead. */
#include "fanout/fanout.h"
#include <stdio.h>

int fanout_main(int argc, char **argv)
{
    fprintf(stderr, "tusk fanout: this role is not built yet\n");
    return 1;
}
