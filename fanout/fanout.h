/* fanout: interface of the folder (see fanout/README.md). */
#ifndef TUSK_FANOUT_H
#define TUSK_FANOUT_H

/* entry point of "tusk fanout" */
int fanout_main(int argc, char **argv);

#endif
