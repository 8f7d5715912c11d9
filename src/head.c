/* head.c - the optional output head: PyTorch's nn.Linear applied to the top layer's output at
 * every step (the usual `self.fc` after an RNN), with an optional sigmoid or softmax.
 *
 * Kept apart from engine.c: it reads the engine's outputs and nothing of the recurrence. */
#include <math.h>

#include "kernels.h"
#include "model_impl.h"
#include "rnnserve/engine.h"

int rnn_head_forward(const rnn_model *m, const float *outputs, size_t rows, float *predictions)
{
    const rnn_info *in = &m->info;
    const size_t O = (size_t)in->head_size, DH = (size_t)(in->num_directions * in->hidden_size);
    if (O == 0)
        return -1;
    /* predictions (rows, O) = b, then += outputs . W^T */
    for (size_t r = 0; r < rows; r++)
        for (size_t o = 0; o < O; o++)
            predictions[r * O + o] = m->head_b[o];
    kern_gemm_xwt(rows, O, DH, outputs, DH, m->head_w, DH, 1.0f, predictions, O);
    if (in->head_activation == RNN_HEAD_SIGMOID) {
        kern_sigmoid(predictions, rows * O);
    } else if (in->head_activation == RNN_HEAD_SOFTMAX) {
        for (size_t r = 0; r < rows; r++) {
            float *p = predictions + r * O, mx = p[0], sum = 0.0f;
            /* subtract the row's max so that exp never overflows, as torch.softmax does */
            for (size_t o = 1; o < O; o++)
                mx = p[o] > mx ? p[o] : mx;
            for (size_t o = 0; o < O; o++)
                sum += (p[o] = expf(p[o] - mx));
            for (size_t o = 0; o < O; o++)
                p[o] /= sum;
        }
    }
    return 0;
}
