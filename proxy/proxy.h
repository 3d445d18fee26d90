/* proxy: interface of the folder (see proxy/README.md). */
#ifndef TUSK_PROXY_H
#define TUSK_PROXY_H

/* entry point of "tusk proxy" */
int proxy_main(int argc, char **argv);

/* entry point of "tusk top": a terminal view of a proxy's /metrics */
int proxy_top_main(int argc, char **argv);

#endif
