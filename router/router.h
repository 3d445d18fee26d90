/* router: interface of the folder (see router/README.md). */
#ifndef TUSK_ROUTER_H
#define TUSK_ROUTER_H

#endif
