/* codec.h - the forward request and response JSON of spec/API.md, to and from flat arrays.
 *
 * The only place that converts between nested JSON arrays and the engine's flat batch. Errors
 * carry an HTTP status and a message naming the JSON path ("inputs[2][5]: expected 3 numbers,
 * got 2"), so the HTTP layer and the command line report them the same way. */
#ifndef RNNSERVE_CODEC_H
#define RNNSERVE_CODEC_H

#include <stddef.h>

#include "rnnserve/engine.h"

#define CODEC_MSG_LEN 512

typedef struct {
    int status; /* HTTP status: 400, 413, 422; 500/503 when out of memory */
    char message[CODEC_MSG_LEN];
} codec_error;

typedef struct {
    size_t max_batch; /* sequences per request */
    size_t max_steps; /* steps per sequence */
} codec_limits;

/* Parts of the response a request asks for ("return": [...]; all by default). */
enum { CODEC_OUTPUTS = 1, CODEC_HIDDEN = 2, CODEC_CELL = 4, CODEC_PREDICTIONS = 8 };

typedef struct codec_request codec_request;

/* Decodes a forward request body for a model described by INFO. On success returns 0 and stores
 * a new request in *out (free with codec_request_free). On failure returns -1, leaves *out NULL
 * and fills err (400 for malformed or mis-shaped input, 413 over a limit). */
int codec_decode_request(const char *body, size_t len, const rnn_info *info,
                         const codec_limits *lim, codec_request **out, codec_error *err);

void codec_request_free(codec_request *r);

/* The decoded batch; borrowed, valid as long as the request. */
const rnn_batch *codec_request_batch(const codec_request *r);

/* CODEC_* bits of the parts to return; significant digits (1..9) to print. */
unsigned codec_request_parts(const codec_request *r);
int codec_request_precision(const codec_request *r);

/* Total time steps in the request (sum of lengths). */
size_t codec_request_steps(const codec_request *r);

/* Encodes the response for REQ's batch and RES (laid out as engine.h says). On success returns 0
 * and stores a new malloc'ed buffer (not NUL-terminated) in *out and its length in *len; the
 * caller frees it. Returns -1 with err 422 when a value to print is not finite (JSON cannot carry
 * it), naming where, or 500 when out of memory. */
int codec_encode_response(const char *model_name, const rnn_info *info, const codec_request *req,
                          const rnn_result *res, char **out, size_t *len, codec_error *err);

/* {"error": {"status": N, "message": "..."}} as a new malloc'ed buffer (NUL-terminated; *len
 * excludes the NUL). Returns NULL only when out of memory. */
char *codec_encode_error(int status, const char *message, size_t *len);

/* Metadata of one model (GET /v1/models/{name}): {"name", "type", "input_size", "hidden_size",
 * "num_layers", "nonlinearity" (null for lstm/gru), "bias", "bidirectional", "parameters",
 * "default"}. New malloc'ed NUL-terminated buffer, *len excludes the NUL; NULL when out of
 * memory. */
char *codec_encode_model(const rnn_info *info, int is_default, size_t *len);

/* {"models": [metadata, ...]} for N models, the first being the default. Same ownership. */
char *codec_encode_models(const rnn_info *const *infos, size_t n, size_t *len);

/* What a forward call processed, for access logs and metrics. */
typedef struct {
    size_t sequences;
    size_t steps;
} codec_stats;

/* The whole path for one request: decode BODY, run MODEL, encode. Returns the HTTP status (200
 * or an error); *out (malloc'ed, the caller frees) holds the response or the error body either
 * way, NULL only when out of memory. STATS may be NULL. */
int codec_forward(const rnn_model *model, const char *body, size_t len, const codec_limits *lim,
                  char **out, size_t *outlen, codec_stats *stats);

#endif
