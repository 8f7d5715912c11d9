/* engine.h - the forward pass of an Elman RNN, LSTM or GRU over a ragged batch.
 *
 * Exactly PyTorch's semantics with packed sequences: each sequence is run over its own steps,
 * its final state is the one at its own last step, and the backward direction starts at its own
 * last element. Everything is flat float32; the engine knows nothing of JSON or HTTP. */
#ifndef RNNSERVE_ENGINE_H
#define RNNSERVE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "rnnserve/model.h"

/* A ragged batch of B sequences stored back to back.
 *   x:       (sum(lengths), I)  sequence i's steps start at row offset(i) = sum_{j<i} lengths[j]
 *   lengths: (B)                0 <= lengths[i]
 *   h0, c0:  (B, L*D, H) or NULL for zeros; rows in PyTorch h_n order (layer-major, then
 *            direction). c0 is for LSTM only. */
typedef struct {
    size_t batch;
    const int32_t *lengths;
    const float *x;
    const float *h0;
    const float *c0;
    /* Polled between time steps when not NULL: a nonzero return stops the pass, which then
     * returns RNN_STOPPED (its results are partial). For the scheduler's cancellation. */
    int (*stop)(void *ctx);
    void *stop_ctx;
} rnn_batch;

/* rnn_forward's return when the batch's stop callback asked it to stop. */
#define RNN_STOPPED (-2)

/* Where the results go; the caller allocates (rnn_result_sizes says how much). Any pointer may be
 * NULL when that part is not wanted: the work is done all the same, but nothing is stored.
 *   outputs: (sum(lengths), D*H)  top layer at every step, forward half then backward half
 *   hidden:  (B, L*D, H)          each sequence's final hidden state at its own last step
 *   cell:    (B, L*D, H)          LSTM only: final cell state
 *   predictions: (sum(lengths), O) the output head at every step; filled by rnn_head_forward
 *                from outputs, never by rnn_forward
 *   out_rows:    (B) pointers, or NULL: when given, sequence i's output rows go to out_rows[i]
 *                (lengths[i] rows of D*H floats, back to back) instead of into outputs. A caller
 *                whose sequences' rows belong to several buffers (the scheduler's merged pass,
 *                a padded wire layout) has them written in place, with no copy afterwards. */
typedef struct {
    float *outputs;
    float *hidden;
    float *cell;
    float *predictions;
    float *const *out_rows;
} rnn_result;

/* Number of floats each part of rnn_result needs for BATCH on MODEL. */
void rnn_result_sizes(const rnn_model *m, const rnn_batch *b, size_t *n_outputs, size_t *n_hidden,
                      size_t *n_cell);

/* Runs the forward pass. Returns 0, or -1 with a message in err[errlen] when the batch is
 * inconsistent (negative length) or scratch memory cannot be had. Thread-safe: scratch memory is
 * per call, the model is only read. Results may hold non-finite values (a relu model can
 * overflow); checking them is the caller's business. */
int rnn_forward(const rnn_model *m, const rnn_batch *b, rnn_result *r, char *err, size_t errlen);

/* Pure-C reference of the same computation, one sequence at a time with naive loops: slow, and
 * here to test rnn_forward against. Same contract. */
int rnn_forward_reference(const rnn_model *m, const rnn_batch *b, rnn_result *r, char *err,
                          size_t errlen);

/* Threads BLAS may use inside one forward pass. Callers that run several passes at once (the
 * server's compute pool) set 1 so that the cores are not oversubscribed. Process-wide. The
 * engine calls BLAS only on CPUs without AVX2 (its own kernels run elsewhere), and loads it
 * (dlopen of libopenblas.so.0, else a CBLAS libblas.so.3) only then; the setting is kept and
 * applied when it loads. Keep it at 1 when rnn_set_threads is above 1. */
void rnn_set_blas_threads(int n);

/* The model's output head on ROWS rows of top-layer outputs:
 *   outputs (rows, D*H) -> predictions (rows, O) = act(outputs . W^T + b)
 * with act none, sigmoid (elementwise) or softmax (over each row's O values). Returns 0, or -1
 * when the model has no head (rnn_info.head_size == 0). Thread-safe. */
int rnn_head_forward(const rnn_model *m, const float *outputs, size_t rows, float *predictions);

/* The BLAS library, loading it if needed (for --version and benchmarks): its configuration
 * string (OpenBLAS's openblas_get_config), and the kernel it picked for this CPU (OpenBLAS's
 * openblas_get_corename; OPENBLAS_CORETYPE overrides it). "not found" without one. */
const char *rnn_blas_config(void);
const char *rnn_blas_corename(void);

/* Threads one forward pass may use (process-wide; default 1). A pass shares a layer's hidden
 * units, in blocks of 64 taken from a common counter at every step, between up to N threads (the
 * caller's and helpers the engine starts on first use, idle on a condition variable between
 * passes) when, at the start of that layer: no other rnn_forward call is running in the process;
 * the layer is large enough to gain (at least 64 units per thread and ~1 MFLOP per recurrent
 * step; below that the per-step hand-off costs more than it saves); and the last shared layer
 * did not find the other cores busy (helpers that took well under their share of the blocks,
 * or kept the caller waiting at the step barriers for a quarter of the layer, turn sharing off
 * for 2 seconds). Otherwise the layer runs on the caller's thread alone, so
 * passes running concurrently never use more threads than there are passes. Results are
 * identical whatever the split. */
void rnn_set_threads(int n);
int rnn_get_threads(void);

/* Unmaps the large scratch blocks the engine keeps between passes (a large pass's scratch is
 * kept for the next ones; a small pass releases it only after two seconds without a large one).
 * For a process going quiet; thread-safe, cheap when nothing is kept. */
void rnn_release_scratch(void);

/* The instruction set the engine's kernels run on: "avx512", "avx2" or "generic" (picked at run
 * time from the CPU; for logs and benchmarks). */
const char *rnn_kernels_isa(void);

#endif
