/* version.c - `rnnserve --version`: our version and the libraries actually loaded at run time
 * (which can differ from the headers we were built with). */
#include "rnnserve/version.h"

#include <cblas.h>
#include <jansson.h>
#include <microhttpd.h>

void rnnserve_print_version(FILE *out)
{
    fprintf(out, "rnnserve %s\n", RNNSERVE_VERSION);
    fprintf(out, "libmicrohttpd %s\n", MHD_get_version());
    fprintf(out, "jansson %s\n", jansson_version_str());
    fprintf(out, "openblas %s\n", openblas_get_config());
}
