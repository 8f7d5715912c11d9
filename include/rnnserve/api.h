/* api.h - one forward path for every wire format: decode, forward pass, output head, encode.
 *
 * The HTTP layer hands a request body and a model to api_forward with the wire format its route
 * speaks, and gets the response body back (or the error body, in that format's own shape). The
 * wire formats (rnnserve's v1 JSON, the Open Inference Protocol's JSON) sit behind one small
 * interface; nothing here knows of HTTP connections. */
#ifndef RNNSERVE_API_H
#define RNNSERVE_API_H

#include <stddef.h>

#include "rnnserve/model.h"

/* A wire format; opaque. */
typedef struct api_wire api_wire;
const api_wire *api_wire_v1(void); /* rnnserve's JSON (docs/API.md): /forward, /v1/... */
const api_wire *api_wire_v2(void); /* the Open Inference Protocol's JSON: /v2/... */

typedef struct {
    size_t max_batch; /* sequences per request */
    size_t max_steps; /* steps per sequence */
} api_limits;

/* What a forward call processed, for access logs and metrics. */
typedef struct {
    size_t sequences;
    size_t steps;
} api_stats;

/* The whole path for one request in wire format W: decode BODY, run MODEL (and its head),
 * encode. Returns the HTTP status (200 or an error); *out (malloc'ed, the caller frees) holds
 * the response or W's error body either way, NULL only when out of memory. STATS may be NULL. */
int api_forward(const api_wire *w, const rnn_model *model, const char *body, size_t len,
                const api_limits *lim, char **out, size_t *outlen, api_stats *stats);

/* W's error body for STATUS and MESSAGE (v1: {"error": {"status", "message"}}, v2:
 * {"error": "message"}): malloc'ed, NUL-terminated, *len excludes the NUL; NULL when out of
 * memory. */
char *api_error_body(const api_wire *w, int status, const char *message, size_t *len);

/* One model's metadata in W (GET /v1/models/{name} or GET /v2/models/{name}); IS_DEFAULT says
 * whether it is the model /forward serves. Same ownership as api_error_body. */
char *api_model_metadata(const api_wire *w, const rnn_info *info, int is_default, size_t *len);

/* GET /v1/models: {"models": [metadata, ...]} for N models, the first being the default. Same
 * ownership. */
char *api_models_list(const rnn_info *const *infos, size_t n, size_t *len);

#endif
