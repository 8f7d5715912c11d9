/* version.h - rnnserve's version and the versions of the libraries it runs with. */
#ifndef RNNSERVE_VERSION_H
#define RNNSERVE_VERSION_H

#include <stdio.h>

#define RNNSERVE_VERSION "0.1.0"

/* Prints "rnnserve X.Y.Z" and one line per linked library (run-time versions). */
void rnnserve_print_version(FILE *out);

#endif
