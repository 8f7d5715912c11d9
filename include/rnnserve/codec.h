/* codec.h - TRANSITIONAL: the names server.c and test_layout.c still call, over api.h's one
 * forward path (src/forward.c; the v1 JSON is src/wire_v1.c). Delete with their last use: the
 * split server speaks api.h directly. */
#ifndef RNNSERVE_CODEC_H
#define RNNSERVE_CODEC_H

#include "rnnserve/api.h"

typedef api_limits codec_limits;
typedef api_stats codec_stats;

static inline int codec_forward(const rnn_model *model, const char *body, size_t len,
                                const codec_limits *lim, char **out, size_t *outlen,
                                codec_stats *stats)
{
    return api_forward(api_wire_v1(), model, body, len, lim, out, outlen, stats);
}

static inline char *codec_encode_error(int status, const char *message, size_t *len)
{
    return api_error_body(api_wire_v1(), status, message, len);
}

static inline char *codec_encode_model(const rnn_info *info, int is_default, size_t *len)
{
    return api_model_metadata(api_wire_v1(), info, is_default, len);
}

static inline char *codec_encode_models(const rnn_info *const *infos, size_t n, size_t *len)
{
    return api_models_list(infos, n, len);
}

#endif
