/* version.c - `rnnserve --version`: our version and the libraries actually loaded at run time
 * (which can differ from the headers we were built with). */
#include "rnnserve/version.h"

#include <jansson.h>
#include <microhttpd.h>

#include "rnnserve/engine.h"

void rnnserve_print_version(FILE *out)
{
    fprintf(out, "rnnserve %s\n", RNNSERVE_VERSION);
    fprintf(out, "libmicrohttpd %s\n", MHD_get_version());
    fprintf(out, "jansson %s\n", jansson_version_str());
    /* loaded on demand (the engine needs it only without AVX2): this loads it */
    fprintf(out, "openblas %s\n", rnn_blas_config());
}
