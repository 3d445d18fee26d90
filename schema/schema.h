/* schema: interface of the folder (see schema/README.md). */
#ifndef TUSK_SCHEMA_H
#define TUSK_SCHEMA_H

int schema_migrate_main(int argc, char **argv);
int schema_seed_main(int argc, char **argv);

#endif
