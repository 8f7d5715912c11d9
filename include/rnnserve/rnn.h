/* rnn.h - the model layer's vocabulary: recurrent cell types, nonlinearities, head activations.
 *
 * The words every floor above the engine uses to talk about a model. It sits in the model layer
 * so that the config file (which parses these words) includes it, never the reverse: the engine's
 * includes carry nothing of the server's settings. */
#ifndef RNNSERVE_RNN_H
#define RNNSERVE_RNN_H

#include <stdbool.h>

typedef enum { RNN_CELL_RNN, RNN_CELL_LSTM, RNN_CELL_GRU, RNN_N_CELLS } rnn_cell_type;
typedef enum { RNN_TANH, RNN_RELU } rnn_nonlinearity;
typedef enum { RNN_HEAD_NONE, RNN_HEAD_SIGMOID, RNN_HEAD_SOFTMAX } rnn_head_activation;

/* What the floors above the engine may know of a cell type: one row per type in src/cells.c
 * (the engine's own part of the row, its step functions, stays private to the engine). */
typedef struct {
    const char *name;  /* the config's "type": "rnn", "lstm", "gru" */
    int gates;         /* G: row blocks of weight_ih/weight_hh (1, 4, 3) */
    bool has_cell;     /* carries a cell state c beside h (LSTM): c0 in, cell out */
    bool nonlinearity; /* takes a "nonlinearity" (tanh or relu; RNN): the others' are fixed */
} rnn_cell_desc;

/* The row for T (a valid rnn_cell_type). Borrowed, static. */
const rnn_cell_desc *rnn_cell_describe(rnn_cell_type t);
/* The type named NAME ("rnn", "lstm", "gru"); -1 when none. */
int rnn_cell_by_name(const char *name);

const char *rnn_nonlinearity_name(rnn_nonlinearity n);
const char *rnn_head_activation_name(rnn_head_activation a);

#endif
