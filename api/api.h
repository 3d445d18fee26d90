/* api: interface of the folder (see api/README.md). */
#ifndef TUSK_API_H
#define TUSK_API_H

/* entry point of "tusk api" */
int api_main(int argc, char **argv);

#endif
