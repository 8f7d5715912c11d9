/* fuzz_config.c - libFuzzer target: a config file, through cfg_load_buffer, and then, for every
 * model whose weights are inline and small, rnn_model_load and one forward pass.
 *
 * Weight files named by the config are not opened (a fuzzed path could name anything on the
 * machine); fuzz_safetensors covers that reader. A loaded config must satisfy the ranges the
 * rest of the server trusts without checking again. */
#include "fuzz.h"
#include "rnnserve/engine.h"

/* Inline models larger than this many floats are only parsed, not loaded: rnn_model_load
 * allocates the config's declared size before it compares tensors, and a one-line config can
 * declare gigabytes (tests/test_badinput.c covers that path at startup). */
#define FZ_CONFIG_MAX_FLOATS ((size_t)1 << 20)

static size_t fz_config_floats(const cfg_model *m)
{
    size_t H = (size_t)m->hidden_size, D = m->bidirectional ? 2 : 1;
    size_t G = m->type == RNN_CELL_LSTM ? 4 : m->type == RNN_CELL_GRU ? 3 : 1;
    size_t total = 0;
    for (size_t l = 0; l < (size_t)m->num_layers; l++) {
        size_t in = l == 0 ? (size_t)m->input_size : D * H;
        total += D * (G * H * in + G * H * H + 3 * G * H + H);
    }
    return total;
}

/* One forward pass of two sequences (2 steps and 0 steps) through a freshly loaded model. */
static void fz_config_forward(const rnn_model *model)
{
    const rnn_info *in = rnn_model_info(model);
    int32_t lengths[2] = {2, 0};
    float *x = calloc(2 * (size_t)in->input_size, sizeof *x);
    FZ_CHECK(x != NULL, "out of memory");
    for (size_t k = 0; k < 2 * (size_t)in->input_size; k++)
        x[k] = 0.25f * (float)(k % 5) - 0.5f;
    rnn_batch b = {.batch = 2, .lengths = lengths, .x = x};
    size_t n_out, n_hid, n_cell;
    rnn_result_sizes(model, &b, &n_out, &n_hid, &n_cell);
    rnn_result r;
    memset(&r, 0, sizeof r);
    r.outputs = malloc(n_out * sizeof(float) + 1);
    r.hidden = malloc(n_hid * sizeof(float) + 1);
    r.cell = in->type == RNN_CELL_LSTM ? malloc(n_cell * sizeof(float) + 1) : NULL;
    char err[256];
    FZ_CHECK(r.outputs && r.hidden, "out of memory");
    FZ_CHECK(rnn_forward(model, &b, &r, err, sizeof err) == 0, "forward: %s", err);
    free(r.outputs);
    free(r.hidden);
    free(r.cell);
    free(x);
}

static void fz_config_check(const cfg_config *c)
{
    const cfg_server *s = &c->server;
    FZ_CHECK(s->host && s->host[0], "empty host");
    FZ_CHECK(s->port >= 0 && s->port <= 65535, "port %d", s->port);
    FZ_CHECK(s->threads >= 0 && s->max_batch >= 1 && s->max_steps >= 1 && s->max_body_bytes >= 1,
             "limits");
    FZ_CHECK(s->timeout_s >= 1 && s->timeout_s <= 86400, "timeout_s %d", s->timeout_s);
    FZ_CHECK(s->max_connections >= 1, "max_connections %d", s->max_connections);
    for (size_t i = 0; i < s->n_cors_origins; i++)
        FZ_CHECK(s->cors_origins[i] != NULL, "cors_origins[%zu] is NULL", i);
    FZ_CHECK(c->n_models >= 1, "no model");
    for (size_t i = 0; i < c->n_models; i++) {
        const cfg_model *m = &c->models[i];
        FZ_CHECK(m->name && m->name[0] && cfg_find_model(c, m->name) == m,
                 "model %zu: name missing or not unique", i);
        FZ_CHECK(m->input_size >= 1 && m->input_size <= 65536 && m->hidden_size >= 1 &&
                     m->hidden_size <= 65536 && m->num_layers >= 1 && m->num_layers <= 64,
                 "model %zu: sizes %d %d %d", i, m->input_size, m->hidden_size, m->num_layers);
        FZ_CHECK(m->prefix != NULL, "model %zu: NULL prefix", i);
        FZ_CHECK(!m->weights_path != !m->tensors || (m->tensors == NULL && m->n_tensors == 0),
                 "model %zu: both or neither of weights_path and tensors", i);
        for (size_t t = 0; t < m->n_tensors; t++) {
            const cfg_tensor *ct = &m->tensors[t];
            FZ_CHECK(ct->ndim == 1 || ct->ndim == 2, "tensor %zu: ndim %d", t, ct->ndim);
            size_t n = (size_t)ct->shape[0] * (ct->ndim == 2 ? (size_t)ct->shape[1] : 1);
            FZ_CHECK(n == ct->numel, "tensor %s: numel %zu, shape says %zu", ct->name, ct->numel,
                     n);
        }
    }
}

int fz_config_one(const uint8_t *data, size_t size)
{
    cfg_config *c = NULL;
    char err[1024];
    err[0] = '\0';
    if (cfg_load_buffer((const char *)data, size, "/nonexistent-fuzz-dir", &c, err, sizeof err) <
        0) {
        FZ_CHECK(c == NULL, "a failed load returned a config");
        FZ_CHECK(err[0] != '\0' && memchr(err, '\0', sizeof err), "no message");
        return 0;
    }
    fz_config_check(c);
    for (size_t i = 0; i < c->n_models; i++) {
        const cfg_model *m = &c->models[i];
        if (m->weights_path || fz_config_floats(m) > FZ_CONFIG_MAX_FLOATS)
            continue;
        rnn_model *model = NULL;
        err[0] = '\0';
        if (rnn_model_load(m, &model, err, sizeof err) < 0) {
            FZ_CHECK(model == NULL && err[0], "a failed load returned a model or no message");
            continue;
        }
        const rnn_info *in = rnn_model_info(model);
        FZ_CHECK(in->input_size == m->input_size && in->hidden_size == m->hidden_size &&
                     in->num_layers == m->num_layers,
                 "info disagrees with the config");
        fz_config_forward(model);
        rnn_model_free(model);
    }
    cfg_free(c);
    return 0;
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fz_config_one(data, size);
}
#endif
