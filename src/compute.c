/* compute.c - the compute hand-off: a FIFO of parked jobs and a bounded pool of threads that run
 * them through api_forward, and the rule that keeps cheap requests on the caller's thread.
 *
 * Why a pool: libmicrohttpd pins a connection to its epoll worker, so a worker must never sit in
 * a long forward pass; probes and small requests on other connections are served meanwhile. */
#include "rnnserve/compute.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rnnserve/cpus.h"
#include "rnnserve/engine.h"

/* Requests whose worst-case cost (body bytes / 2 steps, times the model's per-step FLOPs) is
 * under this many FLOPs run inline on the I/O thread: ~50 us at most, less than a hand-off. */
#define INLINE_FLOPS 2e6

struct compute {
    api_limits lim;
    pthread_t *th;
    int n; /* threads running */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    compute_job *head, *tail;
    int stop;
};

static void run(const compute *c, compute_job *j)
{
    j->status =
        api_forward(j->wire, j->model, j->body, j->len, &c->lim, &j->out, &j->outlen, &j->stats);
}

static void *pool_main(void *arg)
{
    compute *c = arg;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        while (!c->head && !c->stop)
            pthread_cond_wait(&c->cv, &c->mu);
        compute_job *j = c->head;
        if (!j) { /* stop requested and nothing left to do */
            pthread_mutex_unlock(&c->mu);
            return NULL;
        }
        c->head = j->next;
        if (!c->head)
            c->tail = NULL;
        pthread_mutex_unlock(&c->mu);
        run(c, j);
        j->resume(j);
    }
}

/* Forward passes run `threads` at a time, one BLAS thread each: never more busy threads than
 * cores. With the default (threads 0: one per core) a pass may also borrow the other cores, but
 * only while it is the only pass in flight (the engine checks at every layer): one large request
 * alone gets the whole machine, concurrent requests keep one core each (see rnn_set_threads). An
 * explicit `threads` keeps every pass on one core. */
compute *compute_new(int threads, const api_limits *lim, char *err, size_t errlen)
{
    rnn_set_blas_threads(1);
    rnn_set_threads(threads > 0 ? 1 : cpus_usable());
    if (threads <= 0)
        threads = cpus_usable();
    compute *c = calloc(1, sizeof *c);
    if (!c || !(c->th = calloc((size_t)threads, sizeof *c->th))) {
        free(c);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->lim = *lim;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    for (c->n = 0; c->n < threads; c->n++)
        if (pthread_create(&c->th[c->n], NULL, pool_main, c) != 0) {
            snprintf(err, errlen, "cannot start compute thread %d: %s", c->n, strerror(errno));
            compute_free(c);
            return NULL;
        }
    return c;
}

/* Per-step FLOPs of a model: an upper bound on the cost of one time step. */
static double step_flops(const rnn_model *m)
{
    const rnn_info *in = rnn_model_info(m);
    double gh = (double)in->gates * in->hidden_size;
    double per_layer =
        gh * (in->input_size + in->hidden_size) +
        (in->num_layers - 1) * gh * (in->num_directions * in->hidden_size + in->hidden_size);
    return 2.0 * per_layer * in->num_directions;
}

/* Parks and queues J in one critical section with the stop flag: once compute_stop() has begun
 * nothing more is queued (the job then runs inline), so no parked job is left without a thread
 * to resume it. Returns -1 when stopping. */
static int push(compute *c, compute_job *j)
{
    pthread_mutex_lock(&c->mu);
    if (c->stop || c->n == 0) {
        pthread_mutex_unlock(&c->mu);
        return -1;
    }
    /* No thread can pop (and resume) J before the mutex is released. */
    j->park(j);
    j->next = NULL;
    if (c->tail)
        c->tail->next = j;
    else
        c->head = j;
    c->tail = j;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

int compute_submit(compute *c, compute_job *j)
{
    if ((double)j->len / 2.0 * step_flops(j->model) > INLINE_FLOPS && push(c, j) == 0)
        return 0;
    run(c, j);
    return 1;
}

void compute_stop(compute *c)
{
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    for (int i = 0; i < c->n; i++)
        pthread_join(c->th[i], NULL);
    c->n = 0;
}

void compute_free(compute *c)
{
    if (!c)
        return;
    compute_stop(c);
    free(c->th);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}
