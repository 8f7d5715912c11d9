/* engine.c - the forward pass over a ragged batch, as PyTorch's packed sequences compute it.
 *
 * Sequences are ordered by length (longest first) so that at step t the still-active ones are a
 * prefix of the state matrix: one product for the recurrent term of exactly the active rows, and
 * a short sequence never pays for a long one. The input projection of all steps of a layer is
 * one big product up front. A naive per-sequence reference sits at the end for the tests.
 *
 * Products run on the hand-written packed kernels (kernels.c: AVX-512, AVX2, or CBLAS sgemm on
 * the generic path, where OpenBLAS beats plain C), the cells on vectorised activations. Each
 * cell type's step (fast and reference) is a function here that cells.c's table points to; the
 * rest of the pass knows the types only through that table.
 *
 * Threads: a layer (one direction) is a "stage". A stage may split its hidden units between
 * threads: the units are cut into blocks of 64, and in every phase (the input projection, then
 * each step) the threads take blocks from a shared counter, so no thread owns fixed units: for
 * each block it takes, a thread computes that block's columns of the projection or of the
 * recurrent product and updates those units of the state. The threads only share the state h,
 * which is double-buffered: each step reads h_t (every unit) and writes the taken blocks' units
 * of h_{t+1}, then all meet at a barrier. One barrier per step, none inside it. See
 * rnn_set_threads for when a stage splits.
 *
 * Letters: B sequences, N = sum of lengths, I_l layer input width, H hidden, G gates, L layers,
 * D directions. */
#include "rnnserve/engine.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "cells_impl.h"
#include "kernels.h"
#include "model_impl.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* N = sum of lengths, with a check that every length is sane. */
static int batch_steps(const rnn_batch *b, size_t *N, size_t *maxT, char *err, size_t errlen)
{
    size_t n = 0, mx = 0;
    for (size_t i = 0; i < b->batch; i++) {
        if (b->lengths[i] < 0)
            return fail(err, errlen, "sequence %zu: negative length %d", i, (int)b->lengths[i]);
        n += (size_t)b->lengths[i];
        if ((size_t)b->lengths[i] > mx)
            mx = (size_t)b->lengths[i];
    }
    *N = n;
    *maxT = mx;
    return 0;
}

void rnn_result_sizes(const rnn_model *m, const rnn_batch *b, size_t *n_outputs, size_t *n_hidden,
                      size_t *n_cell)
{
    const rnn_info *in = &m->info;
    size_t N = 0;
    for (size_t i = 0; i < b->batch; i++)
        N += b->lengths[i] > 0 ? (size_t)b->lengths[i] : 0;
    size_t state = b->batch * (size_t)(in->num_layers * in->num_directions) * in->hidden_size;
    if (n_outputs)
        *n_outputs = N * (size_t)(in->num_directions * in->hidden_size);
    if (n_hidden)
        *n_hidden = state;
    if (n_cell)
        *n_cell = rnn_cell_describe(in->type)->has_cell ? state : 0;
}

/* Sort key for the packed order: longer first, ties by index so the order is deterministic. */
typedef struct {
    int32_t len;
    size_t idx;
} len_idx;

static int by_len_desc(const void *a, const void *b)
{
    const len_idx *x = a, *y = b;
    if (x->len != y->len)
        return x->len > y->len ? -1 : 1;
    return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

/* ---------------------------------------------------------------------------------------------
 * Threads: the setting, the pass counter, the helper team and a spinning barrier. */

#define MAX_THREADS 64

static atomic_int max_threads = 1;   /* rnn_set_threads */
static atomic_int passes;            /* rnn_forward calls in flight, process-wide */
static atomic_llong split_off_until; /* CLOCK_MONOTONIC ns: no splitting before then */

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

void rnn_set_threads(int n)
{
    atomic_store(&max_threads, n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : n);
}

int rnn_get_threads(void)
{
    return atomic_load(&max_threads);
}

const char *rnn_kernels_isa(void)
{
    return kern_isa_name(kern_isa_active());
}

const char *rnn_blas_config(void)
{
    return kern_blas_describe(0);
}

const char *rnn_blas_corename(void)
{
    return kern_blas_describe(1);
}

void rnn_set_blas_threads(int n)
{
    kern_set_blas_threads(n);
}

/* Sense-reversing barrier for the threads of one stage. Spins (the wait is a few microseconds
 * when both threads have a core), and yields after ~2000 pauses (tens of microseconds) so that a
 * thread whose partner was preempted does not burn the partner's core. */
typedef struct {
    atomic_uint count;
    atomic_uint phase;
    unsigned n;
} spin_barrier;

static void barrier_wait(spin_barrier *b)
{
    unsigned ph = atomic_load_explicit(&b->phase, memory_order_acquire);
    if (atomic_fetch_add_explicit(&b->count, 1, memory_order_acq_rel) + 1 == b->n) {
        atomic_store_explicit(&b->count, 0, memory_order_relaxed);
        atomic_store_explicit(&b->phase, ph + 1, memory_order_release);
        return;
    }
    for (unsigned spins = 0; atomic_load_explicit(&b->phase, memory_order_acquire) == ph; spins++) {
        if (spins < 2000)
            CPU_RELAX();
        else
            sched_yield();
    }
}

/* Helpers started on first use and kept (blocked on a condition variable when idle). One pass at
 * a time owns the team. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    int started;             /* helpers running */
    unsigned gen;            /* job generation */
    int pending;             /* helpers still on the current job */
    int want;                /* helpers taking part in the current job */
    void (*fn)(void *, int); /* the job: fn(arg, thread index), index 0 is the owner */
    void *arg;
    atomic_int busy; /* owned by a pass */
} team_t;

static team_t team = {PTHREAD_MUTEX_INITIALIZER,
                      PTHREAD_COND_INITIALIZER,
                      PTHREAD_COND_INITIALIZER,
                      0,
                      0,
                      0,
                      0,
                      NULL,
                      NULL,
                      0};

static void *helper_main(void *p)
{
    int index = (int)(intptr_t)p;
    unsigned seen = 0;
    pthread_mutex_lock(&team.mu);
    for (;;) {
        while (team.gen == seen)
            pthread_cond_wait(&team.go, &team.mu);
        seen = team.gen;
        if (index > team.want)
            continue; /* not needed for this job */
        void (*fn)(void *, int) = team.fn;
        void *arg = team.arg;
        pthread_mutex_unlock(&team.mu);
        fn(arg, index);
        pthread_mutex_lock(&team.mu);
        if (--team.pending == 0)
            pthread_cond_signal(&team.done);
    }
    return NULL;
}

/* Takes the team for up to WANT helpers; returns how many it has (0: run alone). */
static int team_acquire(int want)
{
    if (want <= 0 || atomic_exchange(&team.busy, 1))
        return 0;
    pthread_mutex_lock(&team.mu);
    while (team.started < want) {
        pthread_t th;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        int ok = pthread_create(&th, &at, helper_main, (void *)(intptr_t)(team.started + 1)) == 0;
        pthread_attr_destroy(&at);
        if (!ok)
            break;
        team.started++;
    }
    int got = team.started < want ? team.started : want;
    pthread_mutex_unlock(&team.mu);
    if (got == 0)
        atomic_store(&team.busy, 0);
    return got;
}

static void team_release(void)
{
    atomic_store(&team.busy, 0);
}

/* Runs fn(arg, 0..helpers) with the owner as thread 0; returns when all are done. */
static void team_run(int helpers, void (*fn)(void *, int), void *arg)
{
    pthread_mutex_lock(&team.mu);
    team.fn = fn;
    team.arg = arg;
    team.want = helpers;
    team.pending = helpers;
    team.gen++;
    pthread_cond_broadcast(&team.go);
    pthread_mutex_unlock(&team.mu);
    fn(arg, 0);
    pthread_mutex_lock(&team.mu);
    while (team.pending > 0)
        pthread_cond_wait(&team.done, &team.mu);
    pthread_mutex_unlock(&team.mu);
}

/* ---------------------------------------------------------------------------------------------
 * Scratch: one block per thread, kept between passes when small (a pass of a typical request
 * then allocates nothing), freed at thread exit. Larger blocks are mapped per pass (keeping them
 * per thread would pin the largest request's memory in every thread forever), one of them kept
 * for the next large pass. */

#define SCRATCH_KEEP (4u << 20)

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

typedef struct {
    size_t cap;
    float *mem;
} scratch;

static void scratch_free(void *p)
{
    scratch *s = p;
    if (s) {
        free(s->mem);
        free(s);
    }
}

static void scratch_init(void)
{
    pthread_key_create(&scratch_key, scratch_free);
}

/* A block for one pass: kept thread-local when small, mapped for the pass when large. */
typedef struct {
    float *mem;
    void *map; /* large: the mapping to munmap, or NULL */
    size_t map_len;
} pass_mem;

#define HUGE_PAGE (2u << 20)

/* Large mappings are kept after their passes, for the next large passes: a fresh mapping costs
 * the kernel zeroing every page (~4% of an "L" pass; 3.6% of a server's CPU when two merged
 * binary "M" passes ran side by side and only one mapping was kept). BIG_KEEP of them, one per
 * pass that may run at the same time on two cores. A small pass releases them all once no large
 * pass has ended for BIG_IDLE_NS (merged passes alternate between small and large under steady
 * load, and must not drop them each time), and rnn_release_scratch when the process goes quiet:
 * memory returns to normal soon after large requests stop coming. */
#define BIG_KEEP 2
#define BIG_IDLE_NS 2000000000LL
typedef struct {
    void *map;
    size_t len;
} big_block;
static pthread_mutex_t big_mu = PTHREAD_MUTEX_INITIALIZER;
static big_block big_cache[BIG_KEEP];
static atomic_int big_cached;     /* blocks in big_cache */
static atomic_llong big_last_put; /* when a large pass last ended (now_ns) */

/* Unmaps the cached blocks shorter than BELOW (all of them for SIZE_MAX). */
static void big_release(size_t below)
{
    big_block gone[BIG_KEEP];
    int n = 0;
    pthread_mutex_lock(&big_mu);
    for (int i = 0; i < BIG_KEEP; i++)
        if (big_cache[i].map && big_cache[i].len < below) {
            gone[n++] = big_cache[i];
            big_cache[i] = (big_block){NULL, 0};
            atomic_fetch_sub(&big_cached, 1);
        }
    pthread_mutex_unlock(&big_mu);
    for (int i = 0; i < n; i++)
        munmap(gone[i].map, gone[i].len);
}

/* At least BYTES, 64-byte aligned; NULL when out of memory. A large block is mapped 2 MB-aligned
 * with transparent huge pages requested: 4 KB faults on ~100 MB (an "L" pass) cost several
 * percent of the pass. */
static float *scratch_get(size_t bytes, pass_mem *pm)
{
    memset(pm, 0, sizeof *pm);
    bytes = (bytes + 63) / 64 * 64;
    if (bytes > SCRATCH_KEEP) {
        size_t len = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE + HUGE_PAGE;
        void *p = NULL;
        pthread_mutex_lock(&big_mu);
        for (int i = 0; i < BIG_KEEP && !p; i++)
            if (big_cache[i].map && big_cache[i].len >= len) {
                p = big_cache[i].map;
                len = big_cache[i].len;
                big_cache[i] = (big_block){NULL, 0};
                atomic_fetch_sub(&big_cached, 1);
            }
        pthread_mutex_unlock(&big_mu);
        if (!p) {
            big_release(len); /* too small for this traffic: let them go rather than hold more */
            /* A power of two: merged passes vary in size, and a block a little larger than this
             * one serves the next, somewhat larger pass too. Pages never touched cost nothing. */
            size_t pow2 = HUGE_PAGE;
            while (pow2 < len && pow2 <= SIZE_MAX / 2)
                pow2 *= 2;
            len = pow2 >= len ? pow2 : len;
            p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED)
                return NULL;
        }
        uintptr_t a = ((uintptr_t)p + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
#ifdef MADV_HUGEPAGE
        madvise((void *)a, len - (a - (uintptr_t)p), MADV_HUGEPAGE);
#endif
        pm->map = p;
        pm->map_len = len;
        return pm->mem = (float *)a;
    }
    if (atomic_load_explicit(&big_cached, memory_order_relaxed) &&
        now_ns() - atomic_load(&big_last_put) > BIG_IDLE_NS)
        big_release(SIZE_MAX);
    pthread_once(&scratch_once, scratch_init);
    scratch *s = pthread_getspecific(scratch_key);
    if (!s) {
        if (!(s = calloc(1, sizeof *s)))
            return NULL;
        if (pthread_setspecific(scratch_key, s) != 0) {
            free(s);
            return NULL;
        }
    }
    if (s->cap < bytes) {
        free(s->mem);
        s->cap = 0;
        if (!(s->mem = aligned_alloc(64, bytes)))
            return NULL;
        s->cap = bytes;
    }
    return pm->mem = s->mem;
}

static void scratch_put(pass_mem *pm)
{
    if (!pm->map)
        return;
    pthread_mutex_lock(&big_mu);
    int keep = 0;
    for (int i = 0; i < BIG_KEEP && !keep; i++)
        if (!big_cache[i].map) {
            big_cache[i] = (big_block){pm->map, pm->map_len};
            atomic_fetch_add(&big_cached, 1);
            keep = 1;
        }
    atomic_store(&big_last_put, now_ns());
    pthread_mutex_unlock(&big_mu);
    if (!keep)
        munmap(pm->map, pm->map_len);
}

/* ---------------------------------------------------------------------------------------------
 * One stage: a layer in one direction, possibly shared by several threads.
 *
 * The hidden units are cut into blocks (all of H on one thread; 64 units, four kernel panels,
 * when threads share the stage). The work of a phase - the input projection, then each step -
 * is one item per block, and the threads take items from an atomic counter: a thread whose core
 * is slower (a busy machine, a shared virtual core) simply takes fewer, where a fixed split
 * would make every step wait for it. A block's gate values are contiguous in its thread's R
 * (G blocks of (k, nu)), so every activation and cell operation of a block-step is one call
 * over k*nu values. The recurrent product starts from the step's projection rows (kernel
 * "init" rows), so R = P[row] + h W_hh^T comes out of the kernel ready for the activations. */

#define BLOCK_UNITS 64

typedef struct eng_stage {
    const rnn_info *in;
    const rnn_dir *w;
    cell_block_step step; /* the cell type's block step (cells.c's table) */
    int hh_bias_gate;     /* the gate whose recurrent product starts from zero, or -1 */
    const rnn_batch *b;
    const len_idx *order;
    const size_t *off;
    size_t B, N, maxT, d, row_state;
    const float *X; /* (N, I_l) layer input */
    float *P;       /* (N, G*H) input projection, biases included */
    /* Sequence q's output rows (D*H floats each, this direction's H at d*H) start at
     * seq_out[q]; NULL when nobody reads the layer's outputs. The steps then write their states
     * straight into those rows and read the last step's from there. */
    float *const *seq_out;
    float *h[2]; /* (B, H) state: h_0, and without seq_out the state double-buffered (step t
                  * reads h[t&1], writes the other) */
    float *R;    /* per thread G*B*wb: a block's gate values */
    float *c;    /* B*H: LSTM cell state, block by block ((B, nu) at c + B*u0) */
    const float **bias_rows; /* N pointers to bx: the projection's starting rows */
    const float **rows;      /* per thread B pointers: the projection rows of a step */
    const float **hp;        /* per thread B pointers: the active rows' states before a step */
    float **hn;              /* per thread B pointers: where their states after it go */
    float *gather;           /* per thread B*(H + block): the BLAS path's contiguous operands */
    rnn_result *res;
    int nt;                   /* threads */
    size_t wb, nblk;          /* units per block, blocks */
    atomic_size_t cnt[2];     /* work counters; phase p takes items from cnt[p & 1] */
    size_t done[MAX_THREADS]; /* items each thread took (to notice a core that is not there) */
    long long wait_ns;        /* thread 0's time at the barriers */
    atomic_int stopped;       /* the batch's stop callback asked to stop (set by thread 0) */
    spin_barrier bar;
} stage;

/* X (M, K) . W[g-th group, units u0..u1)^T into C, starting from init rows (or zero): the packed
 * kernels, or sgemm on the generic path for all but tiny products (OpenBLAS beats plain C
 * there). X and C may be row pointers (kern_rows); sgemm wants strided operands, so on that path
 * such rows go through GATHER (room for M*(K + u1-u0) floats), which only the recurrent steps
 * need. */
static void product(size_t M, kern_rows X, const kern_packed *pk, const float *W, size_t g,
                    size_t u0, size_t u1, const float *const *init, size_t init_off, kern_rows C,
                    float *gather)
{
    const size_t K = pk->k, nu = u1 - u0;
    if (kern_isa_active() != KERN_GENERIC || M < 4 || K == 0) {
        kern_gemm_packed_rows(M, X, pk, g, u0, u1, init, init_off, 0, C);
        return;
    }
    const float *x = X.base;
    size_t ldx = X.ld;
    if (X.rows) {
        for (size_t i = 0; i < M; i++)
            memcpy(gather + i * K, X.rows[i] + X.off, K * sizeof(float));
        x = gather;
        ldx = K;
    }
    float *c = (float *)C.base, *tmp = gather + M * K;
    size_t ldc = C.ld;
    if (C.rows) {
        c = tmp;
        ldc = nu;
    }
    for (size_t i = 0; i < M; i++)
        if (init)
            memcpy(c + i * ldc, init[i] + init_off, nu * sizeof(float));
    kern_gemm_xwt(M, nu, K, x, ldx, W + (g * pk->units + u0) * K, K, init ? 1.0f : 0.0f, c, ldc);
    if (C.rows)
        for (size_t i = 0; i < M; i++)
            memcpy((float *)C.rows[i] + C.off, c + i * ldc, nu * sizeof(float));
}

/* Phase 0 for units [u0, u1): P[:, g*H + u] = bx + X . W_ih^T for every step of every sequence,
 * and the initial state in packed order (row j belongs to sequence order[j].idx). */
static void block_project(stage *s, size_t u0, size_t u1)
{
    const rnn_info *in = s->in;
    const size_t H = (size_t)in->hidden_size, G = (size_t)in->gates, GH = G * H, B = s->B;
    const size_t LD = (size_t)(in->num_layers * in->num_directions), nu = u1 - u0;
    const rnn_batch *b = s->b;
    for (size_t g = 0; g < G; g++)
        product(s->N, KERN_ROWS_STRIDED(s->X, s->w->in), &s->w->ih, s->w->w_ih, g, u0, u1,
                s->bias_rows, g * H + u0, KERN_ROWS_STRIDED(s->P + g * H + u0, GH), NULL);
    float *ct = s->c ? s->c + B * u0 : NULL;
    for (size_t j = 0; j < B; j++) {
        size_t src = (s->order[j].idx * LD + s->row_state) * H + u0;
        if (b->h0)
            memcpy(s->h[0] + j * H + u0, b->h0 + src, nu * sizeof(float));
        else
            memset(s->h[0] + j * H + u0, 0, nu * sizeof(float));
        if (ct) {
            if (b->c0)
                memcpy(ct + j * nu, b->c0 + src, nu * sizeof(float));
            else
                memset(ct + j * nu, 0, nu * sizeof(float));
        }
    }
}

/* The block steps of the cell types (cells.c's table points here), each for units [u0, u1) of
 * the k active rows, whose projection rows are rows[0..k): row j's state before the step is at
 * hp[j] (H floats), its new units go to hn[j] + u0 (an output row, or the state buffer). A
 * block's gate values are G blocks of (k, nu) in its thread's R. */

/* Gate g's units [u0, u1) of the k rows' recurrent product into C: the step's projection rows
 * INIT (or zero) + hp[0..k) . W_hh^T, on thread TID (its part of the sgemm gather space). */
static void recurrent_product(stage *s, int tid, size_t k, size_t g, size_t u0, size_t u1,
                              const float *const *init, const float *const *hp, kern_rows C)
{
    const size_t H = (size_t)s->in->hidden_size;
    float *gather = s->gather ? s->gather + (size_t)tid * s->B * (H + s->wb) : NULL;
    product(k, KERN_ROWS_PTRS(hp, 0), &s->w->hh, s->w->w_hh, g, u0, u1, init, g * H + u0, C,
            gather);
}

/* R gate g (k, nu) = P[row] + h_t[0..k) . W_hh^T, except the table's hh_bias_gate (GRU's n),
 * whose product starts from zero. Returns the thread's R. */
static float *block_gates(stage *s, int tid, size_t k, size_t u0, size_t u1,
                          const float *const *rows, const float *const *hp)
{
    const size_t G = (size_t)s->in->gates, nu = u1 - u0;
    float *Rt = s->R + (size_t)tid * G * s->B * s->wb;
    for (size_t g = 0; g < G; g++)
        recurrent_product(s, tid, k, g, u0, u1, (int)g == s->hh_bias_gate ? NULL : rows, hp,
                          KERN_ROWS_STRIDED(Rt + g * k * nu, nu));
    return Rt;
}

/* Elman: h' = act(P + W_hh h). One gate: the kernel writes the new state's rows directly and
 * the activation runs in place. */
void eng_step_rnn(stage *s, int tid, size_t k, size_t u0, size_t u1, const float *const *rows,
                  const float *const *hp, float *const *hn)
{
    const rnn_info *in = s->in;
    const size_t nu = u1 - u0;
    recurrent_product(s, tid, k, 0, u0, u1, rows, hp, KERN_ROWS_PTRS(hn, u0));
    for (size_t j = 0; j < k; j++) {
        if (in->nonlinearity == RNN_RELU)
            kern_relu(hn[j] + u0, nu);
        else
            kern_tanh(hn[j] + u0, nu);
    }
}

/* LSTM, gates i, f, g, o: c' = f c + i g, h' = o tanh(c'), row by row into hn. */
void eng_step_lstm(stage *s, int tid, size_t k, size_t u0, size_t u1, const float *const *rows,
                   const float *const *hp, float *const *hn)
{
    const size_t nu = u1 - u0, kn = k * nu;
    float *Rt = block_gates(s, tid, k, u0, u1, rows, hp);
    float *ct = s->c + s->B * u0;
    float *ig = Rt, *fg = Rt + kn, *gg = Rt + 2 * kn, *og = Rt + 3 * kn;
    kern_sigmoid(ig, kn);
    kern_sigmoid(fg, kn);
    kern_tanh(gg, kn);
    kern_sigmoid(og, kn);
    for (size_t j = 0; j < k; j++) {
        float *h = hn[j] + u0;
        kern_lstm_c(ct + j * nu, h, ig + j * nu, fg + j * nu, gg + j * nu, nu); /* c, h = c */
        kern_tanh(h, nu);
        kern_mul(h, og + j * nu, nu);
    }
}

/* GRU, gates r, z, n: n = tanh(P_n + r * (W_hn h + b_hn)), h' = (1 - z) n + z h; b_hn stays
 * inside r * (...). */
void eng_step_gru(stage *s, int tid, size_t k, size_t u0, size_t u1, const float *const *rows,
                  const float *const *hp, float *const *hn)
{
    const size_t H = (size_t)s->in->hidden_size, nu = u1 - u0, kn = k * nu;
    float *Rt = block_gates(s, tid, k, u0, u1, rows, hp);
    float *rg = Rt, *zg = Rt + kn, *ng = Rt + 2 * kn;
    kern_sigmoid(rg, kn);
    kern_sigmoid(zg, kn);
    for (size_t j = 0; j < k; j++)
        kern_gru_n(ng + j * nu, rows[j] + 2 * H + u0, rg + j * nu, ng + j * nu, s->w->bhn + u0, nu);
    kern_tanh(ng, kn);
    for (size_t j = 0; j < k; j++)
        kern_gru_h(hn[j] + u0, ng + j * nu, zg + j * nu, hp[j] + u0, nu);
}

static void stage_run(void *arg, int tid)
{
    stage *s = arg;
    const rnn_info *in = s->in;
    const size_t H = (size_t)in->hidden_size, GH = (size_t)in->gates * H, B = s->B;
    const size_t LD = (size_t)(in->num_layers * in->num_directions), d = s->d;
    const size_t DH = (size_t)in->num_directions * H;
    const float **rows = s->rows + (size_t)tid * B;
    const float **hp = s->hp + (size_t)tid * B;
    float **hn = s->hn + (size_t)tid * B;
    size_t item;

    /* Phase 0: the projection and the initial state, block by block. Thread 0 clears the
     * counter of the phase after this one (its last use was two phases ago, behind a barrier). */
    if (tid == 0)
        atomic_store_explicit(&s->cnt[1], 0, memory_order_relaxed);
    size_t done = 0;
    while ((item = atomic_fetch_add_explicit(&s->cnt[0], 1, memory_order_relaxed)) < s->nblk) {
        block_project(s, item * s->wb, item * s->wb + s->wb < H ? item * s->wb + s->wb : H);
        done++;
    }
    if (s->nt > 1)
        barrier_wait(&s->bar); /* all of P and h_0 in place */

    size_t k = B; /* active rows: order[0..k) have length > t */
    for (size_t t = 0; t < s->maxT; t++) {
        const size_t phase = t + 1;
        if (tid == 0)
            atomic_store_explicit(&s->cnt[(phase + 1) & 1], 0, memory_order_relaxed);
        while (k > 0 && (size_t)s->order[k - 1].len <= t)
            k--;
        for (size_t j = 0; j < k; j++) {
            size_t q = s->order[j].idx, T = (size_t)s->order[j].len;
            /* the backward direction walks each sequence's own steps from its end */
            size_t at = d == 0 ? t : T - 1 - t;
            rows[j] = s->P + (s->off[q] + at) * GH;
            if (s->seq_out) { /* the state lives in the output rows: this one, the one before */
                hn[j] = s->seq_out[q] + at * DH + d * H;
                hp[j] = t == 0 ? s->h[0] + j * H : d == 0 ? hn[j] - DH : hn[j] + DH;
            } else {
                hn[j] = s->h[(t + 1) & 1] + j * H;
                hp[j] = s->h[t & 1] + j * H;
            }
        }
        while ((item = atomic_fetch_add_explicit(&s->cnt[phase & 1], 1, memory_order_relaxed)) <
               s->nblk) {
            s->step(s, tid, k, item * s->wb, item * s->wb + s->wb < H ? item * s->wb + s->wb : H,
                    rows, hp, hn);
            done++;
        }
        /* Thread 0 asks whether to go on before the barrier, so that every thread reads the
         * same answer after it and all leave at the same step. */
        if (tid == 0 && s->b->stop && s->b->stop(s->b->stop_ctx))
            atomic_store(&s->stopped, 1);
        if (s->nt > 1) {
            long long w0 = tid == 0 ? now_ns() : 0;
            barrier_wait(&s->bar); /* h_{t+1} complete before anyone reads it */
            if (tid == 0)
                s->wait_ns += now_ns() - w0;
        }
        if (atomic_load(&s->stopped))
            return; /* the results are partial; rnn_forward says so */
    }

    s->done[tid] = done;
    /* A sequence's state stopped changing after its own last step T: it is in its output row
     * of that step (the first row, backwards), or h[T & 1] without output rows (h_0 if T = 0). */
    if (tid != 0)
        return;
    for (size_t j = 0; j < B; j++) {
        size_t q = s->order[j].idx, T = (size_t)s->order[j].len;
        size_t dst = (q * LD + s->row_state) * H;
        const float *last = s->h[T & 1] + j * H;
        if (s->seq_out && T > 0)
            last = s->seq_out[q] + (d == 0 ? T - 1 : 0) * DH + d * H;
        else if (s->seq_out)
            last = s->h[0] + j * H;
        if (s->res->hidden)
            memcpy(s->res->hidden + dst, last, H * sizeof(float));
        if (s->c && s->res->cell)
            for (size_t u0 = 0; u0 < H; u0 += s->wb) {
                size_t nu = u0 + s->wb < H ? s->wb : H - u0;
                memcpy(s->res->cell + dst + u0, s->c + B * u0 + j * nu, nu * sizeof(float));
            }
    }
}

/* Whether a stage is worth splitting: each thread must keep at least 64 units, and a step's
 * recurrent product must be large enough (~1 MFLOP) that the barrier (~1 us) is small beside
 * it; the input projection alone would not pay for waking the helpers. */
static int stage_threads(const rnn_info *in, size_t N, size_t maxT, int want)
{
    const double H = in->hidden_size, G = in->gates;
    const int by_units = in->hidden_size / 64;
    if (want > by_units)
        want = by_units;
    if (want < 2 || maxT == 0)
        return 1;
    double avg_rows = (double)N / (double)maxT; /* mean active rows per step */
    double step_flops = 2.0 * avg_rows * H * G * H;
    return step_flops >= 1e6 ? want : 1;
}

/* ---------------------------------------------------------------------------------------------
 * A pass: the scratch layout, each stage on one thread or several, the layers in turn. */

/* The pieces of a pass's scratch block. */
enum {
    P_ORDER,  /* (B) len_idx: the packed order */
    P_OFF,    /* (B) size_t: each sequence's first row */
    P_P,      /* (N, G*H) the input projection */
    P_Y0,     /* (N, D*H) a layer's output ... */
    P_Y1,     /* ... and the next one's (layers alternate; the top one writes the caller's) */
    P_R,      /* per thread (G, B, block): a block's gate values */
    P_H0,     /* (B, H) the state, double-buffered */
    P_H1,     /* (B, H) */
    P_C,      /* (B, H) LSTM's cell state */
    P_GATHER, /* per thread (B, H + block): sgemm's operands (generic path only) */
    P_BIAS,   /* (N) pointers: the projection's starting rows */
    P_ROWS,   /* per thread (B) pointers: a step's projection rows */
    P_HP,     /* per thread (B) pointers: the active rows' states before a step */
    P_HN,     /* per thread (B) pointers: and after it */
    P_SEQOUT, /* (B) pointers: each sequence's first output row in the layer being run */
    N_PIECES
};

/* Sizes in floats of the pieces (each rounded up to 64 bytes) for B sequences of N steps in all
 * on up to MAXTH threads, and their total; -1 when a size overflows. */
static int scratch_layout(const rnn_info *in, size_t B, size_t N, int maxth, size_t sz[N_PIECES],
                          size_t *total)
{
    const size_t H = (size_t)in->hidden_size, G = (size_t)in->gates;
    const size_t L = (size_t)in->num_layers, D = (size_t)in->num_directions;
    const size_t GH = G * H, DH = D * H;
    size_t t1, t2;
    int overflow = 0;
#define FL(bytes) (((bytes) + sizeof(float) - 1) / sizeof(float))
    overflow |= __builtin_mul_overflow(N, GH, &t1);
    overflow |= __builtin_mul_overflow(N, DH, &t2);
    sz[P_ORDER] = FL(B * sizeof(len_idx));
    sz[P_OFF] = FL(B * sizeof(size_t));
    sz[P_P] = t1;
    sz[P_Y0] = t2;
    sz[P_Y1] = L > 2 ? t2 : 0; /* layers alternate Y0, Y1; the top one writes the caller's */
    /* per thread: a block's gates and scratch; one thread takes all H at once, several take
     * blocks of BLOCK_UNITS */
    const size_t wmax = H > (size_t)maxth * BLOCK_UNITS ? H : (size_t)maxth * BLOCK_UNITS;
    sz[P_R] = G * B * wmax;
    sz[P_GATHER] = kern_isa_active() == KERN_GENERIC ? B * ((size_t)maxth * H + wmax) : 0;
    sz[P_H0] = sz[P_H1] = B * H;
    sz[P_C] = rnn_cell_describe(in->type)->has_cell ? B * H : 0;
    sz[P_BIAS] = FL(N * sizeof(float *));
    sz[P_ROWS] = FL((size_t)maxth * B * sizeof(float *));
    sz[P_HP] = sz[P_HN] = FL((size_t)maxth * B * sizeof(float *));
    sz[P_SEQOUT] = FL(B * sizeof(float *));
#undef FL
    *total = 0;
    for (int i = 0; i < N_PIECES; i++) {
        sz[i] = (sz[i] + 15) / 16 * 16;
        overflow |= __builtin_add_overflow(*total, sz[i], total);
    }
    return overflow || *total > SIZE_MAX / sizeof(float) / 2 ? -1 : 0;
}

/* Runs stage S (filled in but for its threads) on the caller's thread, or shared with helpers
 * when stage_threads finds it worth it and the cores seem free. */
static void stage_dispatch(stage *s, int maxth)
{
    const size_t H = (size_t)s->in->hidden_size;
    /* Split only while this is the only pass in the process (checked per stage): passes
     * running concurrently each keep to their own thread, so they never oversubscribe the
     * cores between them. */
    int want = stage_threads(s->in, s->N, s->maxT, maxth);
    int helpers = 0;
    if (want > 1 && atomic_load(&passes) == 1 && now_ns() >= atomic_load(&split_off_until))
        helpers = team_acquire(want - 1);
    s->nt = helpers + 1;
    s->wb = helpers > 0 ? BLOCK_UNITS : H;
    s->nblk = H ? (H + s->wb - 1) / s->wb : 0;
    atomic_init(&s->cnt[0], 0);
    atomic_init(&s->cnt[1], 0);
    if (helpers == 0) {
        stage_run(s, 0);
        return;
    }
    s->bar.n = (unsigned)s->nt;
    long long t0 = now_ns();
    team_run(helpers, stage_run, s);
    team_release();
    long long spent = now_ns() - t0;
    /* The other cores are not really there (another process holds them, or a virtual core
     * shares its physical core): the helpers took well under their share of the blocks, or
     * thread 0 spent a quarter of the stage waiting for them at the barriers. Stay on one
     * thread for a while. */
    size_t all = 0, mine = s->done[0];
    for (int i = 0; i < s->nt; i++)
        all += s->done[i];
    if ((all && (double)(all - mine) < 0.6 * (double)all * helpers / s->nt) ||
        s->wait_ns > spent / 4)
        atomic_store(&split_off_until, now_ns() + 2000000000LL);
}

/* The step functions' part of the cell table (cells.def). */
static const rnn_cell_steps STEPS[RNN_N_CELLS] = {
#define CELL(type, name, gates, has_cell, nonlinearity, gate_names, hh_bias_gate, steps)           \
    [type] = {eng_step_##steps, eng_ref_##steps},
#include "cells.def"
#undef CELL
};

int rnn_forward(const rnn_model *m, const rnn_batch *b, rnn_result *res, char *err, size_t errlen)
{
    const rnn_info *in = &m->info;
    const size_t B = b->batch, H = (size_t)in->hidden_size, G = (size_t)in->gates;
    const size_t L = (size_t)in->num_layers, D = (size_t)in->num_directions;
    const size_t GH = G * H, DH = D * H;
    const rnn_cell_impl *cell = rnn_cell_impl_of(in->type);
    const int lstm = cell->desc.has_cell;
    const int maxth = atomic_load(&max_threads);
    size_t N = 0, maxT = 0;
    int rc = -1;
    float *mem = NULL;
    pass_mem pm = {0};

    if (batch_steps(b, &N, &maxT, err, errlen) < 0)
        return -1;
    atomic_fetch_add(&passes, 1);

    size_t sz[N_PIECES], total = 0;
    if (scratch_layout(in, B, N, maxth, sz, &total) < 0) {
        fail(err, errlen, "batch too large: %zu steps x %zu gate units", N, GH);
        goto done;
    }
    if (!(mem = scratch_get((total ? total : 1) * sizeof(float), &pm))) {
        fail(err, errlen, "out of memory for a batch of %zu steps (%zu MB of scratch)", N,
             (total * sizeof(float)) >> 20);
        goto done;
    }
    float *piece[N_PIECES];
    for (size_t i = 0, at = 0; i < N_PIECES; at += sz[i], i++)
        piece[i] = mem + at;
    len_idx *order = (len_idx *)piece[P_ORDER];
    size_t *off = (size_t *)piece[P_OFF];
    float *Y[2] = {piece[P_Y0], piece[P_Y1]};
    const float **bias_rows = (const float **)piece[P_BIAS];

    for (size_t i = 0, o = 0; i < B; i++) {
        off[i] = o;
        o += (size_t)b->lengths[i];
        order[i].len = b->lengths[i];
        order[i].idx = i;
    }
    qsort(order, B, sizeof *order, by_len_desc);

    const float *X = b->x; /* layer input, (N, I_l) */
    for (size_t l = 0; l < L; l++) {
        /* The top layer writes straight into the caller's outputs (packed, or each sequence's
         * rows where out_rows says), or nowhere if they are not wanted (the steps then keep the
         * state in h[], and the final states come from there). */
        float *out = l == L - 1 ? res->outputs : Y[l % 2];
        float **seq_out = (float **)piece[P_SEQOUT];
        int have_out = 1;
        for (size_t i = 0; i < B; i++)
            if (l == L - 1 && res->out_rows)
                seq_out[i] = res->out_rows[i];
            else if (out)
                seq_out[i] = out + off[i] * DH;
            else
                have_out = 0;
        for (size_t d = 0; d < D; d++) {
            const rnn_dir *w = &m->dirs[l * D + d];
            for (size_t n = 0; n < N; n++)
                bias_rows[n] = w->bx;
            stage s = {.in = in,
                       .w = w,
                       .step = STEPS[in->type].step,
                       .hh_bias_gate = cell->hh_bias_gate,
                       .b = b,
                       .order = order,
                       .off = off,
                       .B = B,
                       .N = N,
                       .maxT = maxT,
                       .d = d,
                       .row_state = l * D + d,
                       .X = X,
                       .P = piece[P_P],
                       .seq_out = have_out ? seq_out : NULL,
                       .h = {piece[P_H0], piece[P_H1]},
                       .R = piece[P_R],
                       .c = lstm ? piece[P_C] : NULL,
                       .gather = sz[P_GATHER] ? piece[P_GATHER] : NULL,
                       .bias_rows = bias_rows,
                       .rows = (const float **)piece[P_ROWS],
                       .hp = (const float **)piece[P_HP],
                       .hn = (float **)piece[P_HN],
                       .res = res};
            stage_dispatch(&s, maxth);
            if (atomic_load(&s.stopped)) {
                fail(err, errlen, "stopped by the caller before the end of the pass");
                rc = RNN_STOPPED;
                goto done;
            }
        }
        X = Y[l % 2]; /* the next layer's input (the top layer's outputs are nobody's) */
    }
    rc = 0;

done:
    scratch_put(&pm);
    atomic_fetch_sub(&passes, 1);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Reference: one sequence at a time, naive loops over PyTorch's raw tensors (b_ih and b_hh kept
 * apart, exactly the documented equations), double accumulation. */

static float act_ref(const rnn_info *in, double a)
{
    if (in->nonlinearity == RNN_RELU)
        return a > 0 ? (float)a : 0.0f;
    return (float)tanh(a);
}

static float sig_ref(double a)
{
    return (float)(1.0 / (1.0 + exp(-a)));
}

/* The reference steps of the cell types (cells.c's table points here), PyTorch's equations. */

void eng_ref_rnn(const rnn_info *in, size_t H, double *gx, const double *gh, float *h, float *c)
{
    (void)c;
    for (size_t u = 0; u < H; u++)
        h[u] = act_ref(in, gx[u] + gh[u]);
}

void eng_ref_lstm(const rnn_info *in, size_t H, double *gx, const double *gh, float *h, float *c)
{
    (void)in;
    for (size_t u = 0; u < H; u++) {
        float ig = sig_ref(gx[u] + gh[u]);
        float fg = sig_ref(gx[H + u] + gh[H + u]);
        float gg = (float)tanh(gx[2 * H + u] + gh[2 * H + u]);
        float og = sig_ref(gx[3 * H + u] + gh[3 * H + u]);
        c[u] = fg * c[u] + ig * gg;
        h[u] = og * (float)tanh(c[u]);
    }
}

void eng_ref_gru(const rnn_info *in, size_t H, double *gx, const double *gh, float *h, float *c)
{
    (void)in;
    (void)c;
    /* h is read by every unit's n gate, so update after all are computed */
    for (size_t u = 0; u < H; u++) {
        float rg = sig_ref(gx[u] + gh[u]);
        float zg = sig_ref(gx[H + u] + gh[H + u]);
        float ng = (float)tanh(gx[2 * H + u] + rg * gh[2 * H + u]);
        gx[u] = (1.0f - zg) * ng + zg * h[u];
    }
    for (size_t u = 0; u < H; u++)
        h[u] = (float)gx[u];
}

int rnn_forward_reference(const rnn_model *m, const rnn_batch *b, rnn_result *res, char *err,
                          size_t errlen)
{
    const rnn_info *in = &m->info;
    const rnn_cell_impl *cell = rnn_cell_impl_of(in->type);
    const size_t H = (size_t)in->hidden_size, G = (size_t)in->gates;
    const size_t L = (size_t)in->num_layers, D = (size_t)in->num_directions;
    const size_t LD = L * D, GH = G * H, DH = D * H;
    size_t N = 0, maxT = 0, off = 0;
    int rc = -1;
    float *cur = NULL, *nxt = NULL, *h = NULL, *c = NULL;
    double *gx = NULL, *gh = NULL;

    if (batch_steps(b, &N, &maxT, err, errlen) < 0)
        return -1;
    size_t width = DH > (size_t)in->input_size ? DH : (size_t)in->input_size;
    cur = malloc((maxT ? maxT : 1) * width * sizeof(float));
    nxt = malloc((maxT ? maxT : 1) * width * sizeof(float));
    h = malloc(H * sizeof(float));
    c = malloc(H * sizeof(float));
    gx = malloc(GH * sizeof(double));
    gh = malloc(GH * sizeof(double));
    if (!cur || !nxt || !h || !c || !gx || !gh) {
        fail(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t s = 0; s < b->batch; s++) {
        const size_t T = (size_t)b->lengths[s];
        size_t I = (size_t)in->input_size;
        memcpy(cur, b->x + off * I, T * I * sizeof(float));
        for (size_t l = 0; l < L; l++) {
            for (size_t d = 0; d < D; d++) {
                const rnn_dir *w = &m->dirs[l * D + d];
                const size_t srow = (s * LD + l * D + d) * H;
                for (size_t u = 0; u < H; u++) {
                    h[u] = b->h0 ? b->h0[srow + u] : 0.0f;
                    c[u] = b->c0 ? b->c0[srow + u] : 0.0f;
                }
                for (size_t step = 0; step < T; step++) {
                    size_t t = d == 0 ? step : T - 1 - step;
                    for (size_t g = 0; g < GH; g++) {
                        double ax = w->b_ih[g], ah = w->b_hh[g];
                        for (size_t k = 0; k < I; k++)
                            ax += (double)w->w_ih[g * I + k] * cur[t * I + k];
                        for (size_t k = 0; k < H; k++)
                            ah += (double)w->w_hh[g * H + k] * h[k];
                        gx[g] = ax;
                        gh[g] = ah;
                    }
                    STEPS[in->type].ref_step(in, H, gx, gh, h, c);
                    memcpy(nxt + t * DH + d * H, h, H * sizeof(float));
                }
                if (res->hidden)
                    memcpy(res->hidden + srow, h, H * sizeof(float));
                if (res->cell && cell->desc.has_cell)
                    memcpy(res->cell + srow, c, H * sizeof(float));
            }
            float *tmp = cur;
            cur = nxt;
            nxt = tmp;
            I = DH;
        }
        if (res->out_rows)
            memcpy(res->out_rows[s], cur, T * DH * sizeof(float));
        else if (res->outputs)
            memcpy(res->outputs + off * DH, cur, T * DH * sizeof(float));
        off += T;
    }
    rc = 0;
fail:
    free(cur);
    free(nxt);
    free(h);
    free(c);
    free(gx);
    free(gh);
    return rc;
}

void rnn_release_scratch(void)
{
    big_release(SIZE_MAX);
}
