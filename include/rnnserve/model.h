/* model.h - a loaded recurrent model: shapes and weights in the layout the engine wants.
 *
 * Built from one config entry, with weights from a safetensors file or inline tensors, checked
 * tensor by tensor against PyTorch's state_dict names and shapes. Immutable once loaded, so any
 * number of threads may run forward passes on one model at once. */
#ifndef RNNSERVE_MODEL_H
#define RNNSERVE_MODEL_H

#include <stdbool.h>
#include <stddef.h>

#include "rnnserve/config.h"

typedef struct rnn_model rnn_model;

/* What a caller may know of a model (B, T are per request; these are fixed). */
typedef struct {
    const char *name;
    rnn_cell_type type;
    rnn_nonlinearity nonlinearity; /* meaningful for RNN_CELL_RNN only */
    int input_size;                /* I */
    int hidden_size;               /* H */
    int num_layers;                /* L */
    int num_directions;            /* D: 1, or 2 when bidirectional */
    int gates;                     /* G: 1 rnn, 4 lstm, 3 gru */
    bool bias;
    size_t parameters; /* number of scalars in the state_dict (a head's and embedding's included) */
    int head_size;     /* O, the output head's width (its Linear's out_features); 0: no head */
    rnn_head_activation head_activation;
    int vocab_size; /* V, the input embedding's num_embeddings: the model then takes token ids in
                       [0, V), each standing for its row of the embedding; 0: no embedding */
} rnn_info;

/* Loads the model described by M. On success returns 0 and stores a new model in *out (free with
 * rnn_model_free). On failure returns -1 and writes one message naming the file and tensor, in
 * PyTorch's words where it has some ("missing key(s) in state_dict: ..."), into err[errlen]. */
int rnn_model_load(const cfg_model *m, rnn_model **out, char *err, size_t errlen);

void rnn_model_free(rnn_model *m);

/* Borrowed; valid as long as the model. */
const rnn_info *rnn_model_info(const rnn_model *m);

/* One human line: "rnn tanh, input_size 1, hidden_size 4, 1 layer, unidirectional, bias,
 * 28 parameters" into buf[len]. */
void rnn_info_summary(const rnn_info *info, char *buf, size_t len);

#endif
