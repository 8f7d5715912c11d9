/* cells.c - the data of the cell types' table (cells.def): what the floors above the engine may
 * know of a type (rnn.h) and how its weights and biases are laid out (cells_impl.h); and the names
 * of the model layer's enums. Adding a type is a row in cells.def and its steps in engine.c (see
 * docs/ARCHITECTURE.md, "How to add"). */
#include <string.h>

#include "cells_impl.h"
#include "rnnserve/rnn.h"

static const rnn_cell_impl CELLS[RNN_N_CELLS] = {
#define CELL(type, name, gates, has_cell, nonlinearity, gate_names, hh_bias_gate, steps)           \
    [type] = {{name, gates, has_cell, nonlinearity}, gate_names, hh_bias_gate},
#include "cells.def"
#undef CELL
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
