/* model.c - loads a model's weights and lays them out for the engine.
 *
 * Owns the mapping from PyTorch state_dict names and shapes to rnn_model: every expected tensor
 * must be present with its exact shape, and (under the prefix) nothing else may be, worded as
 * load_state_dict(strict=True) words it. All weights live in one allocation. */
#include "model_impl.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cells_impl.h"
#include "rnnserve/safetensors.h"
#include "rnnserve/sysres.h"

/* A tensor offered by the weight source, whichever kind it is. */
typedef struct {
    const char *name; /* full name, prefix included */
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t numel;
    const st_tensor *st;    /* from a safetensors file, or */
    const cfg_tensor *inln; /* inline in the config */
    int used;
} src_tensor;

typedef struct {
    const char *where; /* file path or "config models[i].weights" for messages */
    st_file *file;
    src_tensor *t;
    size_t n;
} source;

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static void shape_str(char *buf, size_t len, int ndim, const int64_t *shape)
{
    size_t n = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < len)
        snprintf(buf + n, len - n, "]");
}

/* Opens the model's weights. On failure nothing stays open and err says why. */
static int source_open(const cfg_model *m, source *s, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    if (m->weights_path) {
        s->where = m->weights_path;
        if (st_open(m->weights_path, &s->file, err, errlen) < 0)
            return -1;
        s->n = st_count(s->file);
    } else {
        s->where = "inline weights";
        s->n = m->n_tensors;
    }
    s->t = calloc(s->n ? s->n : 1, sizeof *s->t);
    if (!s->t) {
        st_close(s->file);
        s->file = NULL;
        return fail(err, errlen, "%s: out of memory", s->where);
    }
    for (size_t i = 0; i < s->n; i++) {
        src_tensor *t = &s->t[i];
        if (s->file) {
            const st_tensor *st = st_at(s->file, i);
            t->st = st;
            t->name = st->name;
            t->ndim = st->ndim;
            memcpy(t->shape, st->shape, sizeof t->shape);
            t->numel = st->numel;
        } else {
            const cfg_tensor *ct = &m->tensors[i];
            t->inln = ct;
            t->name = ct->name;
            t->ndim = ct->ndim;
            t->shape[0] = ct->shape[0];
            t->shape[1] = ct->shape[1];
            t->numel = ct->numel;
        }
    }
    return 0;
}

static void source_close(source *s)
{
    st_close(s->file);
    free(s->t);
}

static src_tensor *source_find(source *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->t[i].name, name) == 0)
            return &s->t[i];
    return NULL;
}

/* Copies tensor NAME (prefix + base) of the expected shape into dst. Missing tensors are
 * collected into MISSING rather than failing at once, so one message can list them all. */
static int take(source *s, const cfg_model *m, const char *base, int ndim, int64_t d0, int64_t d1,
                float *dst, char *missing, size_t mlen, char *err, size_t errlen)
{
    char name[512];
    snprintf(name, sizeof name, "%s%s", m->prefix, base);
    src_tensor *t = source_find(s, name);
    if (!t) {
        size_t n = strlen(missing);
        snprintf(missing + n, mlen - n, "%s\"%s\"", n ? ", " : "", name);
        return 0;
    }
    t->used = 1;
    int64_t want[2] = {d0, d1};
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = t->shape[i] == want[i];
    if (!ok) {
        char got[128], exp[128];
        shape_str(got, sizeof got, t->ndim, t->shape);
        shape_str(exp, sizeof exp, ndim, want);
        return fail(err, errlen,
                    "%s: size mismatch for \"%s\": shape %s in the weights, but the config "
                    "(type %s, input_size %d, hidden_size %d%s) needs %s",
                    s->where, name, got, rnn_cell_describe(m->type)->name, m->input_size,
                    m->hidden_size, m->bidirectional ? ", bidirectional" : "", exp);
    }
    if (t->st) {
        if (st_read_f32(s->file, t->st, dst, err, errlen) < 0)
            return -1;
    } else {
        memcpy(dst, t->inln->data, t->numel * sizeof(float));
    }
    for (size_t i = 0; i < t->numel; i++)
        if (!isfinite(dst[i]))
            return fail(err, errlen, "%s: tensor \"%s\" holds a non-finite value (%g) at index %zu",
                        s->where, name, (double)dst[i], i);
    return 0;
}

/* Tensors under the prefix (all of them without one) that the model does not use. */
static int check_unexpected(source *s, const cfg_model *m, char *err, size_t errlen)
{
    char list[1024] = "";
    size_t n = 0, count = 0;
    const char *hint = "";
    size_t plen = strlen(m->prefix);
    for (size_t i = 0; i < s->n; i++) {
        src_tensor *t = &s->t[i];
        if (t->used || strncmp(t->name, m->prefix, plen) != 0)
            continue;
        count++;
        if (n < sizeof list)
            n += (size_t)snprintf(list + n, sizeof list - n, "%s\"%s\"", n ? ", " : "", t->name);
        const char *base = t->name + plen;
        if (strstr(base, "_reverse") && !m->bidirectional)
            hint = " (the weights are bidirectional: set \"bidirectional\": true)";
        else if (strncmp(base, "weight_hr_l", 11) == 0)
            hint = " (LSTM proj_size is not supported)";
        else if (strncmp(base, "bias_", 5) == 0 && !m->bias)
            hint = " (the weights have biases: set \"bias\": true)";
        else if (!*hint && strncmp(base, "weight_", 7) == 0)
            hint = " (does num_layers match the model?)";
        else if (!*hint && plen == 0 && strchr(base, '.'))
            hint = " (a module's state_dict: set \"prefix\", e.g. \"rnn.\")";
    }
    if (count == 0)
        return 0;
    return fail(err, errlen, "%s: unexpected key(s) in state_dict: %s%s", s->where, list, hint);
}

/* The output head: a Linear (O, D*H) named by its full state_dict keys (no prefix: a module's
 * fc sits beside its rnn, e.g. "fc.weight" next to "rnn.weight_ih_l0"). */
static int load_head(source *s, const cfg_model *cm, rnn_model *m, size_t *params, char *err,
                     size_t errlen)
{
    const int64_t DH = (int64_t)m->info.num_directions * m->info.hidden_size;
    src_tensor *w = source_find(s, cm->head_weight), *b = NULL;
    if (!w)
        return fail(err, errlen, "%s: head.weight \"%s\" is not in the weights", s->where,
                    cm->head_weight);
    if (w->ndim != 2 || w->shape[1] != DH || w->shape[0] < 1 || w->shape[0] > 1 << 20)
        return fail(err, errlen,
                    "%s: head.weight \"%s\" must be [out_features, %lld] (num_directions * "
                    "hidden_size), got %d dimensions [%lld, ...]",
                    s->where, cm->head_weight, (long long)DH, w->ndim, (long long)w->shape[0]);
    const size_t O = (size_t)w->shape[0];
    if (cm->head_bias) {
        if (!(b = source_find(s, cm->head_bias)))
            return fail(err, errlen, "%s: head.bias \"%s\" is not in the weights", s->where,
                        cm->head_bias);
        if (b->ndim != 1 || (size_t)b->shape[0] != O)
            return fail(err, errlen, "%s: head.bias \"%s\" must be [%zu] (out_features)", s->where,
                        cm->head_bias, O);
    }
    if (!(m->head_w = malloc(O * (size_t)DH * sizeof(float))) ||
        !(m->head_b = calloc(O, sizeof(float))))
        return fail(err, errlen, "%s: out of memory for the head", s->where);
    src_tensor *parts[2] = {w, b};
    float *dst[2] = {m->head_w, m->head_b};
    for (int i = 0; i < 2 && parts[i]; i++) {
        parts[i]->used = 1;
        if (parts[i]->st
                ? st_read_f32(s->file, parts[i]->st, dst[i], err, errlen) < 0
                : (memcpy(dst[i], parts[i]->inln->data, parts[i]->numel * sizeof(float)), 0))
            return -1;
        for (size_t k = 0; k < parts[i]->numel; k++)
            if (!isfinite(dst[i][k]))
                return fail(err, errlen, "%s: tensor \"%s\" holds a non-finite value at index %zu",
                            s->where, parts[i]->name, k);
        *params += parts[i]->numel;
    }
    m->info.head_size = (int)O;
    m->info.head_activation = cm->head_activation;
    return 0;
}

/* The largest vocabulary: ids travel as float32 on /v2, exact up to 2^24. */
#define MAX_VOCAB (1 << 24)

/* The input embedding: an nn.Embedding's weight [num_embeddings, input_size] named by its full
 * state_dict key (no prefix: it sits beside the rnn, e.g. "embedding.weight"). */
static int load_embedding(source *s, const cfg_model *cm, rnn_model *m, size_t *params, char *err,
                          size_t errlen)
{
    const int64_t I = cm->input_size;
    src_tensor *t = source_find(s, cm->embedding);
    if (!t)
        return fail(err, errlen, "%s: embedding \"%s\" is not in the weights", s->where,
                    cm->embedding);
    if (t->ndim != 2 || t->shape[1] != I || t->shape[0] < 1 || t->shape[0] > MAX_VOCAB) {
        char got[128];
        shape_str(got, sizeof got, t->ndim, t->shape);
        return fail(err, errlen,
                    "%s: embedding \"%s\" must be [num_embeddings, %lld] (num_embeddings 1 to "
                    "%d, embedding_dim == input_size), got %s",
                    s->where, cm->embedding, (long long)I, MAX_VOCAB, got);
    }
    t->used = 1;
    if (!(m->embed = malloc(t->numel * sizeof(float))))
        return fail(err, errlen, "%s: out of memory for the embedding", s->where);
    if (t->st ? st_read_f32(s->file, t->st, m->embed, err, errlen) < 0
              : (memcpy(m->embed, t->inln->data, t->numel * sizeof(float)), 0))
        return -1;
    for (size_t k = 0; k < t->numel; k++)
        if (!isfinite(m->embed[k]))
            return fail(err, errlen,
                        "%s: embedding \"%s\" holds a non-finite value (%g) at index %zu", s->where,
                        cm->embedding, (double)m->embed[k], k);
    *params += t->numel;
    m->info.vocab_size = (int)t->shape[0];
    return 0;
}

/* Layer L, direction D's weights into W (its pointers already carved out of the model's block):
 * the tensors taken from the source (absent ones appended to MISSING), packed for the kernels,
 * and the biases folded as the cell table says. Adds the scalars read to *params. */
static int load_dir(source *src, const cfg_model *cm, const rnn_cell_impl *cell, size_t l, size_t d,
                    rnn_dir *w, size_t *params, char *missing, size_t missing_len, char *err,
                    size_t errlen)
{
    const size_t H = (size_t)cm->hidden_size, G = (size_t)cell->desc.gates, in = w->in;
    const char *sfx = d ? "_reverse" : "";
    char name[64];
    snprintf(name, sizeof name, "weight_ih_l%zu%s", l, sfx);
    if (take(src, cm, name, 2, (int64_t)(G * H), (int64_t)in, (float *)w->w_ih, missing,
             missing_len, err, errlen) < 0)
        return -1;
    snprintf(name, sizeof name, "weight_hh_l%zu%s", l, sfx);
    if (take(src, cm, name, 2, (int64_t)(G * H), (int64_t)H, (float *)w->w_hh, missing, missing_len,
             err, errlen) < 0)
        return -1;
    *params += G * H * (in + H);
    /* The engine's own kernels read the weights transposed into column panels; packed once
     * here, so a forward pass never re-lays them out. */
    if (kern_pack(&w->ih, w->w_ih, in, G, H, in) < 0 || kern_pack(&w->hh, w->w_hh, H, G, H, H) < 0)
        return fail(err, errlen, "model \"%s\": cannot allocate its packed weights", cm->name);
    if (cm->bias) {
        snprintf(name, sizeof name, "bias_ih_l%zu%s", l, sfx);
        if (take(src, cm, name, 1, (int64_t)(G * H), 0, (float *)w->b_ih, missing, missing_len, err,
                 errlen) < 0)
            return -1;
        snprintf(name, sizeof name, "bias_hh_l%zu%s", l, sfx);
        if (take(src, cm, name, 1, (int64_t)(G * H), 0, (float *)w->b_hh, missing, missing_len, err,
                 errlen) < 0)
            return -1;
        *params += 2 * G * H;
    }
    /* Biases that can be added once to the input projection: all of b_ih, and b_hh except the
     * table's hh_bias_gate (GRU's n gate), which PyTorch applies inside r * (W_hn h + b_hn):
     * that part is kept apart in bhn. */
    float *bx = (float *)w->bx, *bhn = (float *)w->bhn;
    const size_t apart = cell->hh_bias_gate >= 0 ? (size_t)cell->hh_bias_gate * H : G * H;
    for (size_t j = 0; j < G * H; j++)
        bx[j] = w->b_ih[j] + ((j >= apart && j < apart + H) ? 0.0f : w->b_hh[j]);
    if (cell->hh_bias_gate >= 0)
        memcpy(bhn, w->b_hh + apart, H * sizeof(float));
    return 0;
}

/* A guess at why the names in MISSING are absent, for the end of the message; "" when none. */
static const char *missing_hint(const source *src, const cfg_model *cm, const char *missing)
{
    /* When no expected name matched at all, the weights are under a module prefix rather than
     * lacking biases or a direction. */
    int any_used = 0;
    for (size_t i = 0; i < src->n; i++)
        any_used |= src->t[i].used;
    if (!any_used && cm->prefix[0] == '\0' && src->n > 0 && strchr(src->t[0].name, '.'))
        return " (the weights look like a module's state_dict: set \"prefix\", e.g. \"rnn.\")";
    if (strstr(missing, "_reverse"))
        return " (the weights are unidirectional: set \"bidirectional\": false?)";
    if (strstr(missing, "bias_"))
        return " (the weights have no biases: set \"bias\": false?)";
    return "";
}

int rnn_model_load(const cfg_model *cm, rnn_model **out, char *err, size_t errlen)
{
    rnn_model *m = NULL;
    source src;
    int have_src = 0;
    char missing[1024] = "";
    *out = NULL;

    const size_t H = (size_t)cm->hidden_size, L = (size_t)cm->num_layers;
    const size_t D = cm->bidirectional ? 2 : 1;
    const rnn_cell_impl *cell = rnn_cell_impl_of(cm->type);
    const size_t G = (size_t)cell->desc.gates;

    /* Sizes first, one allocation for everything (config bounds keep these far from overflow:
     * H, I <= 65536, L <= 64). */
    size_t total = 0;
    for (size_t l = 0; l < L; l++) {
        size_t in = l == 0 ? (size_t)cm->input_size : D * H;
        /* w_ih, w_hh, b_ih, b_hh, bx, bhn */
        total += D * (G * H * in + G * H * H + 3 * G * H + H);
    }
    char limit[64];
    size_t budget = sysres_memory_budget(limit, sizeof limit);
    if (total > budget / sizeof(float)) {
        fail(err, errlen,
             "its weights need %zu MB (%s, input_size %d, hidden_size %d, %zu layer%s%s), more "
             "than the %zu MB of memory this process can still get (%s)",
             (total * sizeof(float) + (1u << 20) - 1) >> 20, rnn_cell_describe(cm->type)->name,
             cm->input_size, cm->hidden_size, L, L == 1 ? "" : "s", D == 2 ? ", bidirectional" : "",
             budget >> 20, limit);
        goto fail;
    }
    m = calloc(1, sizeof *m);
    if (!m || !(m->name = strdup(cm->name)) || !(m->dirs = calloc(L * D, sizeof *m->dirs)) ||
        !(m->block = calloc(total, sizeof(float)))) {
        fail(err, errlen, "model \"%s\": cannot allocate %zu MB for its weights", cm->name,
             total * sizeof(float) >> 20);
        goto fail;
    }
    m->info.name = m->name;
    m->info.type = cm->type;
    m->info.nonlinearity = cm->nonlinearity;
    m->info.input_size = cm->input_size;
    m->info.hidden_size = cm->hidden_size;
    m->info.num_layers = cm->num_layers;
    m->info.num_directions = (int)D;
    m->info.gates = (int)G;
    m->info.bias = cm->bias;

    if (source_open(cm, &src, err, errlen) < 0)
        goto fail;
    have_src = 1;

    float *p = m->block;
    size_t params = 0;
    for (size_t l = 0; l < L; l++) {
        size_t in = l == 0 ? (size_t)cm->input_size : D * H;
        for (size_t d = 0; d < D; d++) {
            rnn_dir *w = &m->dirs[l * D + d];
            w->in = in;
            w->w_ih = p, p += G * H * in;
            w->w_hh = p, p += G * H * H;
            w->b_ih = p, p += G * H;
            w->b_hh = p, p += G * H;
            w->bx = p, p += G * H;
            w->bhn = p, p += H;
            if (load_dir(&src, cm, cell, l, d, w, &params, missing, sizeof missing, err, errlen) <
                0)
                goto fail;
        }
    }
    if (missing[0]) {
        fail(err, errlen, "%s: missing key(s) in state_dict: %s%s", src.where, missing,
             missing_hint(&src, cm, missing));
        goto fail;
    }
    if (cm->head_weight && load_head(&src, cm, m, &params, err, errlen) < 0)
        goto fail;
    if (cm->embedding && load_embedding(&src, cm, m, &params, err, errlen) < 0)
        goto fail;
    if (check_unexpected(&src, cm, err, errlen) < 0)
        goto fail;
    m->info.parameters = params;
    source_close(&src);
    *out = m;
    return 0;

fail:
    if (have_src)
        source_close(&src);
    rnn_model_free(m);
    return -1;
}

void rnn_model_free(rnn_model *m)
{
    if (!m)
        return;
    size_t n = m->dirs ? (size_t)(m->info.num_layers * m->info.num_directions) : 0;
    for (size_t i = 0; i < n; i++) {
        kern_pack_free(&m->dirs[i].ih);
        kern_pack_free(&m->dirs[i].hh);
    }
    free(m->head_w);
    free(m->head_b);
    free(m->embed);
    free(m->block);
    free(m->dirs);
    free(m->name);
    free(m);
}

const rnn_info *rnn_model_info(const rnn_model *m)
{
    return &m->info;
}

void rnn_info_summary(const rnn_info *in, char *buf, size_t len)
{
    const rnn_cell_desc *cell = rnn_cell_describe(in->type);
    snprintf(buf, len, "%s%s%s, input_size %d, hidden_size %d, %d layer%s, %s, %s, %zu parameters",
             cell->name, cell->nonlinearity ? " " : "",
             cell->nonlinearity ? rnn_nonlinearity_name(in->nonlinearity) : "", in->input_size,
             in->hidden_size, in->num_layers, in->num_layers == 1 ? "" : "s",
             in->num_directions == 2 ? "bidirectional" : "unidirectional",
             in->bias ? "bias" : "no bias", in->parameters);
    const size_t n = strlen(buf);
    if (in->vocab_size > 0 && n < len)
        snprintf(buf + n, len - n, ", embedding of %d tokens", in->vocab_size);
}
