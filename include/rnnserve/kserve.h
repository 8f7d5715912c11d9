/* kserve.h - TRANSITIONAL: the names server.c still calls, over api.h's one forward path (the
 * Open Inference Protocol's JSON is src/wire_v2.c). Delete with their last use: the split server
 * speaks api.h directly. */
#ifndef RNNSERVE_KSERVE_H
#define RNNSERVE_KSERVE_H

#include "rnnserve/api.h"
#include "rnnserve/codec.h"

static inline int kserve_infer(const rnn_model *model, const char *body, size_t len,
                               const codec_limits *lim, char **out, size_t *outlen,
                               codec_stats *stats)
{
    return api_forward(api_wire_v2(), model, body, len, lim, out, outlen, stats);
}

static inline char *kserve_model_metadata(const rnn_info *info, size_t *len)
{
    return api_model_metadata(api_wire_v2(), info, 0, len);
}

static inline char *kserve_encode_error(const char *message, size_t *len)
{
    return api_error_body(api_wire_v2(), 400, message, len);
}

#endif
