/* cells.c - the table of recurrent cell types, and the names of the model layer's enums.
 *
 * One row per cell type: adding a type starts here (see docs/ARCHITECTURE.md, "How to add"). */
#include <string.h>

#include "rnnserve/rnn.h"

static const rnn_cell_desc CELLS[RNN_N_CELLS] = {
    [RNN_CELL_RNN] = {"rnn", 1, false},
    [RNN_CELL_LSTM] = {"lstm", 4, true},
    [RNN_CELL_GRU] = {"gru", 3, false},
};

const rnn_cell_desc *rnn_cell_describe(rnn_cell_type t)
{
    return &CELLS[(unsigned)t < RNN_N_CELLS ? t : RNN_CELL_RNN];
}

int rnn_cell_by_name(const char *name)
{
    for (int t = 0; t < RNN_N_CELLS; t++)
        if (strcmp(CELLS[t].name, name) == 0)
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
