/* kserve.h - the Open Inference Protocol (KServe v2) JSON for rnnserve's models.
 *
 * Tensors are rectangular there: the ragged batch travels as a zero-padded `input`
 * [batch, max_len, input_size] plus a `lengths` [batch] tensor, and the results come back in
 * PyTorch's own layouts: `output` [batch, max_len, D*H] (zero past each length, as
 * pad_packed_sequence gives), `h_n` and `c_n` [L*D, batch, H]. Errors use the protocol's
 * {"error": "message"} body. */
#ifndef RNNSERVE_KSERVE_H
#define RNNSERVE_KSERVE_H

#include <stddef.h>

#include "rnnserve/codec.h"
#include "rnnserve/engine.h"

/* POST /v2/models/{name}/infer: decode BODY, run MODEL, encode. Returns the HTTP status; *out
 * (malloc'ed, the caller frees) holds the response or {"error": "..."} either way, NULL only
 * when out of memory. STATS may be NULL. */
int kserve_infer(const rnn_model *model, const char *body, size_t len, const codec_limits *lim,
                 char **out, size_t *outlen, codec_stats *stats);

/* GET /v2/models/{name}: name, platform, inputs and outputs with datatypes and shapes (-1 for
 * the batch and time dimensions). New malloc'ed NUL-terminated buffer; NULL when out of
 * memory. */
char *kserve_model_metadata(const rnn_info *info, size_t *len);

/* {"error": "MESSAGE"}, malloc'ed and NUL-terminated; NULL when out of memory. */
char *kserve_encode_error(const char *message, size_t *len);

#endif
