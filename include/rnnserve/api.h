/* api.h - one forward path for every wire format: decode, forward pass, output head, encode.
 *
 * The HTTP layer hands a request body and a model to api_forward with the wire format its route
 * speaks, and gets the response body back (or the error body, in that format's own shape). The
 * wire formats (rnnserve's v1 JSON, the Open Inference Protocol's JSON) sit behind one small
 * interface; nothing here knows of HTTP connections. */
#ifndef RNNSERVE_API_H
#define RNNSERVE_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rnnserve/engine.h"
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
 * encode (api_decode, api_compute_and_finish, api_call_free). Returns the HTTP status (200 or an
 * error); *out (malloc'ed, the caller frees) holds the response or W's error body either way, NULL
 * only when out of memory. STATS may be NULL. */
int api_forward(const api_wire *w, const rnn_model *model, const char *body, size_t len,
                const api_limits *lim, char **out, size_t *outlen, api_stats *stats);

/* ---- The stages of api_forward, for a caller that runs the forward pass itself (a scheduler
 * merging several decoded requests into one engine pass). A call is used by one thread at a
 * time. */

typedef struct api_call api_call; /* one decoded request: its batch, its result buffers, what it
                                     returns */

/* Decodes BODY for MODEL in wire format W. Returns 200 and a new call in *out (free with
 * api_call_free), or the error status with W's error body in *errbody (malloc'ed, the caller
 * frees; NULL only when out of memory) and *out NULL. MODEL must outlive the call. */
int api_decode(const api_wire *w, const rnn_model *model, const char *body, size_t len,
               const api_limits *lim, api_call **out, char **errbody, size_t *errlen);

const rnn_batch *api_call_batch(const api_call *c); /* borrowed, valid as long as the call */
const rnn_model *api_call_model(const api_call *c);

/* The result buffers, allocated by api_decode for this batch: outputs/hidden/cell sized as
 * rnn_result_sizes says (outputs NULL when the request needs neither outputs nor predictions,
 * hidden/cell NULL when not returned), predictions left for api_finish to fill. Borrowed. */
rnn_result *api_call_result(api_call *c);

/* Estimated FLOPs of its forward pass (and head): what the pass over its own steps costs. */
double api_call_flops(const api_call *c);

/* An upper bound of its encoded response size in bytes (padding included). What padding can
 * cost is bounded at decode: a padded per-step part (v1's "layout": "padded"; v2's output and
 * predictions, always padded) holding more than max(4 x its unpadded values, 1 Mi values) is a
 * 413 there, so this stays within a few times what the request's own steps produce. */
size_t api_call_response_bytes(const api_call *c);
/* How long the request may wait for compute, in microseconds from its arrival, as it asked
 * ("timeout_ms" on v1, parameters.timeout on v2); 0 when it did not ask. */
int64_t api_call_timeout_us(const api_call *c);

/* After rnn_forward filled api_call_result (by anyone: alone or merged with other calls), runs
 * the head when asked and encodes. Returns the status; *out (malloc'ed, the caller frees) holds
 * the body or the error body either way, NULL only when out of memory. STATS may be NULL. */
int api_finish(api_call *c, char **out, size_t *outlen, api_stats *stats);

/* rnn_forward on the call's own batch into its own result buffers (the unmerged path), then
 * api_finish. */
int api_compute_and_finish(api_call *c, char **out, size_t *outlen, api_stats *stats);

/* The call's wire format's error body, for a failure after decoding (e.g. a 503 from a
 * scheduler): same ownership as api_error_body. */
char *api_call_error_body(const api_call *c, int status, const char *message, size_t *len);

void api_call_free(api_call *c);

/* ---- Sessions: a call that steps a state the server keeps (sessions.h). */

/* Runs C from the state H0 (and C0 for an LSTM; NULL: zeros), rows * hidden floats of one
 * sequence, borrowed until the pass is over, in place of any h0/c0 the request gave; and makes
 * the call keep its final hidden (and cell) even when the request does not return them, so that
 * api_call_result has them to carry to the next step. 0, or -1 when out of memory. */
int api_call_use_state(api_call *c, const float *h0, const float *c0);

/* JSON object members ("\"session\":\"...\",\"steps\":5", copied) that api_finish appends to
 * a successful response before its closing brace. 0, or -1 when out of memory. */
int api_call_extra_fields(api_call *c, const char *json_members);

/* The Open Inference Protocol's sequence extension, as a v2 request's "parameters" gave it. */
typedef struct {
    bool given;      /* a sequence_id was sent: the request steps a keyed session */
    bool is_string;  /* the id is STR[LEN] (any bytes), else the number NUM */
    const char *str; /* borrowed from the call */
    size_t len;
    uint64_t num;
    bool start, end; /* sequence_start, sequence_end */
} api_sequence;

/* The call's sequence parameters (never given on v1); borrowed, valid as long as the call. */
const api_sequence *api_call_sequence(const api_call *c);

/* The Content-Type of W's bodies ("application/json" for both formats today). */
const char *api_wire_content_type(const api_wire *w);

/* W's error body for STATUS and MESSAGE (v1: {"error": {"status", "message"}}, v2:
 * {"error": "message"}): malloc'ed, NUL-terminated, *len excludes the NUL; NULL when out of
 * memory. */
char *api_error_body(const api_wire *w, int status, const char *message, size_t *len);

/* One model's metadata in W (GET /v1/models/{name} or GET /v2/models/{name}): its shape, its
 * output head ("head": {"out_features", "activation"}; v1 null, v2 absent without one) and the
 * outputs it has (v1 "outputs": the parts "return" may name; v2 the output tensors, predictions
 * [-1, -1, O] for a head model, c_n for an lstm). IS_DEFAULT says whether it is the model
 * /forward serves. Same ownership as api_error_body. */
char *api_model_metadata(const api_wire *w, const rnn_info *info, int is_default, size_t *len);

/* GET /v1/models: {"models": [metadata, ...]} for N models, the first being the default. Same
 * ownership. */
char *api_models_list(const rnn_info *const *infos, size_t n, size_t *len);

#endif
