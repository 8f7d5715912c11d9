/* model_impl.h - private to model.c and engine.c: the inside of rnn_model.
 *
 * Shapes use the engine's letters: G gates, H hidden, I_l the layer's input width (input_size for
 * layer 0, D*H above), L layers, D directions. Weights keep PyTorch's row-major layout. */
#ifndef RNNSERVE_MODEL_IMPL_H
#define RNNSERVE_MODEL_IMPL_H

#include "kernels.h"
#include "rnnserve/model.h"

/* One layer in one direction. */
typedef struct {
    size_t in;         /* I_l */
    const float *w_ih; /* (G*H, I_l) */
    const float *w_hh; /* (G*H, H) */
    const float *b_ih; /* (G*H), zeros without bias */
    const float *b_hh; /* (G*H), zeros without bias */
    const float *bx;   /* (G*H) added to the input projection: b_ih + b_hh, but GRU's n part
                          of b_hh is left out (it belongs inside r * (...)) */
    const float *bhn;  /* (H) GRU only: b_hh's n part */
    kern_packed ih;    /* w_ih packed for kern_gemm_packed: G groups of H units, K = I_l */
    kern_packed hh;    /* w_hh packed likewise, K = H */
} rnn_dir;

struct rnn_model {
    rnn_info info;
    char *name;
    rnn_dir *dirs; /* (L*D), index l*D + d, PyTorch's h_n row order */
    float *block;  /* every weight above lives here */
    float *head_w; /* (O, D*H): the optional output head, PyTorch Linear layout */
    float *head_b; /* (O), zeros without a bias */
    float *embed;  /* (V, I): the optional input embedding, nn.Embedding's weight */
};

#endif
