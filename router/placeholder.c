/* router: placeholder until the part lands. */
#include "router/router.h"
int router_placeholder(void);
int router_placeholder(void)
{
    return 0;
}
