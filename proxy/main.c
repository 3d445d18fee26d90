/* Entry point of "tusk proxy". Not built yet: prints what to use instead. */
#include "proxy/proxy.h"
#include <stdio.h>

int proxy_main(int argc, char **argv)
{
    fprintf(stderr, "tusk proxy: this role is not built yet\n");
    return 1;
}
