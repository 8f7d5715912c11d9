/* cells.c - the table of recurrent cell types, and the names of the model layer's enums.
 *
 * One row per cell type, the only place that tells the types apart: its public part (rnn.h) and
 * the engine's (cells_impl.h: bias folding, the step functions). Adding a type is a row here and
 * its steps in engine.c (see docs/ARCHITECTURE.md, "How to add"). */
#include <string.h>

#include "cells_impl.h"
#include "rnnserve/rnn.h"

/* Gates in PyTorch's order (torch.nn.LSTM: W_ii|W_if|W_ig|W_io; torch.nn.GRU: W_ir|W_iz|W_in). */
static const rnn_cell_impl CELLS[RNN_N_CELLS] = {
    [RNN_CELL_RNN] = {{"rnn", 1, false, true}, "h", -1, eng_step_rnn, eng_ref_rnn},
    [RNN_CELL_LSTM] = {{"lstm", 4, true, false}, "i f g o", -1, eng_step_lstm, eng_ref_lstm},
    [RNN_CELL_GRU] = {{"gru", 3, false, false}, "r z n", 2, eng_step_gru, eng_ref_gru},
};

const rnn_cell_impl *rnn_cell_impl_of(rnn_cell_type t)
{
    return &CELLS[(unsigned)t < RNN_N_CELLS ? t : RNN_CELL_RNN];
}

const rnn_cell_desc *rnn_cell_describe(rnn_cell_type t)
{
    return &rnn_cell_impl_of(t)->desc;
}

int rnn_cell_by_name(const char *name)
{
    for (int t = 0; t < RNN_N_CELLS; t++)
        if (strcmp(CELLS[t].desc.name, name) == 0)
            return t;
    return -1;
}

const char *rnn_nonlinearity_name(rnn_nonlinearity n)
{
    return n == RNN_RELU ? "relu" : "tanh";
}

const char *rnn_head_activation_name(rnn_head_activation a)
{
    static const char *const names[] = {"none", "sigmoid", "softmax"};
    return (unsigned)a < 3 ? names[a] : "none";
}
