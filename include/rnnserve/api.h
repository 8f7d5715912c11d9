/* api.h - one forward path for every wire format: decode, forward pass, output head, encode.
 *
 * The HTTP layer hands a request body and a model to api_forward with the wire format its route
 * speaks, and gets the response body back (or the error body, in that format's own shape). The
 * wire formats (rnnserve's v1 JSON, the Open Inference Protocol's JSON) sit behind one small
 * interface; nothing here knows of HTTP connections. Generation (api_gen_*) has its own call:
 * the same v1 body plus its fields, a run of many steps, an answer plain or one event at a time. */
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

/* How a request body is framed. Without Inference-Header-Content-Length it is all JSON; with
 * it (the binary tensor data extension, /v2 only) it is a JSON header of header_len bytes, then
 * the raw bytes of the inputs whose parameters give a binary_data_size, in the header's order. */
typedef struct {
    int binary;        /* the request gave Inference-Header-Content-Length */
    size_t header_len; /* its value */
} api_framing;

/* Reads an Inference-Header-Content-Length value (NULL: the request has none) into *F: 0, or -1
 * with a message for a 400 in err[errlen] (not a decimal byte count). */
int api_framing_parse(const char *value, api_framing *f, char *err, size_t errlen);

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
/* api_decode of a body framed as F says (NULL: all JSON, as api_decode). A header length past
 * the body, binary sizes that do not add up to the bytes after the header, or binary framing on
 * a format without it are 400s naming what is wrong. */
int api_decode_framed(const api_wire *w, const rnn_model *model, const char *body, size_t len,
                      const api_framing *f, const api_limits *lim, api_call **out, char **errbody,
                      size_t *errlen);

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

/* After api_finish: the response's Inference-Header-Content-Length, its JSON header's length
 * when binary tensors follow it (outputs asked for with "binary_data" or "binary_data_output"),
 * else 0 (all JSON; error bodies always). */
size_t api_call_header_len(const api_call *c);
/* After api_finish: "application/octet-stream" for a binary response, else the wire's type. */
const char *api_call_content_type(const api_call *c);

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

/* ---- Generation (POST /v1/models/{name}/generate and a session's generate; wire_generate.c):
 * v1's forward body plus "steps", "temperature", "top_k", "seed", "stream"; the run is
 * generate.c's, many engine steps in one call, so a scheduler runs it as a job of its own rather
 * than merging it into a pass. A call is used by one thread at a time. */

typedef struct api_gen_call api_gen_call; /* one decoded generate request: its prompt, its
                                             parameters, its result buffers, its answer */

/* The state a generation continues from in place of the body's (a session's): one sequence's
 * h0 and c0 (NULL without a cell), (L*D, H) each, borrowed until the run is over. */
typedef struct {
    const float *h0, *c0;
} api_gen_state;

/* Decodes a generate BODY for MODEL (with FROM's state when not NULL: the body then holds one
 * prompt, which may be empty, and no h0 or c0) and allocates its result buffers. Returns 200 and
 * a new call in *out (free with api_gen_free), or the error status (400, 413, 500 out of memory)
 * with v1's error body in *errbody (malloc'ed, the caller frees; NULL only when out of memory)
 * and *out NULL. MODEL must outlive the call. */
int api_gen_decode(const rnn_model *model, const char *body, size_t len, const api_limits *lim,
                   const api_gen_state *from, api_gen_call **out, char **errbody, size_t *errlen);

/* The prompt batch (with FROM's state as its h0/c0); borrowed, valid as long as the call. */
const rnn_batch *api_gen_batch(const api_gen_call *c);
/* Sequences, and the steps run: the prompts' plus every sequence's generated ones (for a
 * session's one sequence, the steps it advances by). */
void api_gen_stats(const api_gen_call *c, api_stats *stats);
/* Estimated FLOPs of the whole run: the prompts' steps and one step per sequence per generated
 * step, each a step of every layer (and the head). */
double api_gen_flops(const api_gen_call *c);
/* "timeout_ms" in microseconds from the request's arrival; 0 when not given. */
int64_t api_gen_timeout_us(const api_gen_call *c);
/* The body's "stream": 1 true, 0 false, -1 not given (the caller decides, e.g. by Accept). */
int api_gen_stream(const api_gen_call *c);

/* Runs the generation on the call's prompt into its own buffers, asking STOP(STOP_CTX) between
 * steps (NULL: never stops). EMIT (NULL: a plain answer) gets each generated step's event data,
 * {"step": s, "tokens": [id, ...]} or {"step": s, "forecast": [[row], ...]}, one line of JSON,
 * borrowed for the call; nonzero stops the run. Returns 0, RNN_STOPPED when STOP or EMIT said
 * so, API_GEN_NOT_FINITE with err[errlen] when the model's values are not finite (a token
 * model's logits, or a step's forecast that JSON cannot carry: the caller answers 422), or -1
 * with err[errlen] (the engine's failure). */
#define API_GEN_NOT_FINITE (-3)
int api_gen_run(api_gen_call *c, int (*stop)(void *), void *stop_ctx,
                int (*emit)(void *ctx, const char *data, size_t len), void *emit_ctx, char *err,
                size_t errlen);

/* After api_gen_run returned 0: the final states, (B, L, H) each as h0/c0 (cell NULL without a
 * cell); borrowed, valid as long as the call. */
const float *api_gen_hidden(const api_gen_call *c);
const float *api_gen_cell(const api_gen_call *c);

/* After api_gen_run returned 0: encodes the answer, {"model", "tokens" or "forecast", "hidden",
 * "cell"}, into the call, still open for api_gen_extra_fields until api_gen_answer closes it.
 * Returns 200, or the error status (422 a value JSON cannot carry, 500 out of memory) with v1's
 * error body in *errbody (malloc'ed, the caller frees; NULL only when out of memory). */
int api_gen_encode(api_gen_call *c, char **errbody, size_t *errlen);
/* Between api_gen_encode and api_gen_answer: JSON object members ("\"session\":\"...\"", copied)
 * appended to the answer after a comma. 0, or -1 when out of memory (JSON_MEMBERS NULL: its
 * caller's building ran out), and api_gen_answer then fails. */
int api_gen_extra_fields(api_gen_call *c, const char *json_members);
/* The encoded answer, closed: 200 with it in *out (malloc'ed, the caller frees; *outlen bytes),
 * or 500 with v1's error body there (NULL only when out of memory). The answer, plain, is also
 * a stream's done event's data. */
int api_gen_answer(api_gen_call *c, char **out, size_t *outlen);

/* v1's error body for a generate request (a failure after decoding: the scheduler's 503, a
 * 422, an error event's data): same ownership as api_error_body. */
char *api_gen_error_body(int status, const char *message, size_t *len);

void api_gen_free(api_gen_call *c);

#endif
