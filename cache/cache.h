/* cache: interface of the folder (see cache/README.md). */
#ifndef TUSK_CACHE_H
#define TUSK_CACHE_H

#endif
