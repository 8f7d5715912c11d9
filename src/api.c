/* api.c - TEMPORARY shim: the api.h seam over today's codec.c and kserve.c, until the forward
 * path is rebuilt behind it (issue 11). */
#include "rnnserve/api.h"

#include "rnnserve/codec.h"
#include "rnnserve/kserve.h"

struct api_wire {
    int v2;
};
static const api_wire V1 = {0}, V2 = {1};
const api_wire *api_wire_v1(void)
{
    return &V1;
}
const api_wire *api_wire_v2(void)
{
    return &V2;
}

int api_forward(const api_wire *w, const rnn_model *model, const char *body, size_t len,
                const api_limits *lim, char **out, size_t *outlen, api_stats *stats)
{
    codec_limits cl = {lim->max_batch, lim->max_steps};
    codec_stats cs = {0, 0};
    int st = w->v2 ? kserve_infer(model, body, len, &cl, out, outlen, &cs)
                   : codec_forward(model, body, len, &cl, out, outlen, &cs);
    if (stats)
        stats->sequences = cs.sequences, stats->steps = cs.steps;
    return st;
}

char *api_error_body(const api_wire *w, int status, const char *message, size_t *len)
{
    return w->v2 ? kserve_encode_error(message, len) : codec_encode_error(status, message, len);
}

char *api_model_metadata(const api_wire *w, const rnn_info *info, int is_default, size_t *len)
{
    return w->v2 ? kserve_model_metadata(info, len) : codec_encode_model(info, is_default, len);
}

char *api_models_list(const rnn_info *const *infos, size_t n, size_t *len)
{
    return codec_encode_models(infos, n, len);
}
