/* cells_impl.h - private to the model layer (cells.c, engine.c, model.c): the parts of a cell
 * type's row (src/cells.def) that the engine and the model loader read.
 *
 * The data part (how the type's biases fold, its gates' names) is made by cells.c; the step
 * functions' part, the fast block step and the reference step, by engine.c, where they are
 * defined. Adding a cell type is one row in cells.def and its two steps (and kernels.c's kernels
 * if it needs new arithmetic). */
#ifndef RNNSERVE_CELLS_IMPL_H
#define RNNSERVE_CELLS_IMPL_H

#include <stddef.h>

#include "rnnserve/model.h"

struct eng_stage; /* engine.c: one layer in one direction of a pass */

/* The fast step of one block of units [u0, u1) for the k active rows of stage S, on thread TID:
 * reads row j's state at hp[j] (H floats) and its projection row rows[j], writes its units of the
 * new state at hn[j] + u0 (an output row, or the state buffer), and updates its units of the cell
 * state. */
typedef void (*cell_block_step)(struct eng_stage *s, int tid, size_t k, size_t u0, size_t u1,
                                const float *const *rows, const float *const *hp, float *const *hn);

/* The reference step of one sequence: from the gates' input and hidden parts gx, gh (G*H each,
 * biases b_ih and b_hh included), the new h (H) and, for a type with a cell state, c (H). gx may
 * be used as scratch. */
typedef void (*cell_ref_step)(const rnn_info *in, size_t H, double *gx, const double *gh, float *h,
                              float *c);

typedef struct {
    rnn_cell_desc desc;     /* what the floors above may know (rnn_cell_describe) */
    const char *gate_names; /* PyTorch's row blocks of weight_ih, in order, e.g. "i f g o" */
    /* The gate whose b_hh is applied inside the cell rather than folded into the projection
     * (GRU's n: r * (W_hn h + b_hn)); -1 when every gate folds b_ih + b_hh. That gate's
     * recurrent product also starts from zero, not from its projection row. */
    int hh_bias_gate;
} rnn_cell_impl;

/* The step functions' part of a row (engine.c's table). */
typedef struct {
    cell_block_step step;
    cell_ref_step ref_step;
} rnn_cell_steps;

/* The row for T (a valid rnn_cell_type). Borrowed, static. */
const rnn_cell_impl *rnn_cell_impl_of(rnn_cell_type t);

/* The step functions of engine.c, one pair per row (named by the row's `steps`). */
void eng_step_rnn(struct eng_stage *s, int tid, size_t k, size_t u0, size_t u1,
                  const float *const *rows, const float *const *hp, float *const *hn);
void eng_step_lstm(struct eng_stage *s, int tid, size_t k, size_t u0, size_t u1,
                   const float *const *rows, const float *const *hp, float *const *hn);
void eng_step_gru(struct eng_stage *s, int tid, size_t k, size_t u0, size_t u1,
                  const float *const *rows, const float *const *hp, float *const *hn);
void eng_ref_rnn(const rnn_info *in, size_t H, double *gx, const double *gh, float *h, float *c);
void eng_ref_lstm(const rnn_info *in, size_t H, double *gx, const double *gh, float *h, float *c);
void eng_ref_gru(const rnn_info *in, size_t H, double *gx, const double *gh, float *h, float *c);

#endif
