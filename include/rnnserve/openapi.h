/* openapi.h - docs/openapi.json (the OpenAPI 3.1 description of the HTTP surface), compiled in.
 *
 * The Makefile turns the JSON into C (tools/embed.sh) at build time, so GET /openapi.json serves
 * exactly the committed document; tests/test_openapi.c keeps it true to the routes. */
#ifndef RNNSERVE_OPENAPI_H
#define RNNSERVE_OPENAPI_H

#include <stddef.h>

/* The document, UTF-8, followed by a NUL that openapi_json_len does not count. */
extern const unsigned char openapi_json[];
extern const size_t openapi_json_len;

#endif
