/* test_sched.c - the scheduler: merged passes give bit-identical results, admission refuses what
 * cannot be done in time, deadlines expire queued jobs uncomputed, gone requesters are dropped,
 * and every accepted job gets exactly one `done`.
 *
 * Deterministic by construction: sched_pause holds passes while a test queues jobs, so what is
 * queued together is known; nothing here asserts on timing. */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rnnserve/config.h"
#include "rnnserve/engine.h"
#include "rnnserve/sched.h"
#include "testutil.h"

/* One loaded fixture model. */
typedef struct {
    cfg_config *cfg;
    rnn_model *model;
} model_t;

static void model_load(model_t *m, const char *name)
{
    char path[512], err[1024];
    snprintf(path, sizeof path, "tests/fixtures/cases/%s/config.json", name);
    ck_assert_msg(cfg_load_file(path, &m->cfg, err, sizeof err) == 0, "%s: %s", name, err);
    ck_assert_msg(rnn_model_load(&m->cfg->models[0], &m->model, err, sizeof err) == 0, "%s: %s",
                  name, err);
}

static void model_free(model_t *m)
{
    rnn_model_free(m->model);
    cfg_free(m->cfg);
}

/* A job with its own random batch and result buffers, and what its done() saw. */
typedef struct {
    sched_job job;
    rnn_batch batch;
    rnn_result res;
    int32_t *lengths;
    float *x, *h0, *c0;
    size_t n_out, n_hid, n_cell;
    atomic_int done_calls;
    sched_outcome outcome;
    char msg[256];
    atomic_int gone;
    struct waiter *w;
} tjob;

/* Counts done() calls so a test can wait for N of them. */
typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
} waiter;

static void waiter_init(waiter *w)
{
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->n = 0;
}

static void waiter_wait(waiter *w, int n)
{
    pthread_mutex_lock(&w->mu);
    while (w->n < n)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

static void on_done(sched_job *j, sched_outcome o, const char *msg, void *ctx)
{
    tjob *t = ctx;
    ck_assert_msg(j == &t->job, "done() got another job");
    t->outcome = o;
    snprintf(t->msg, sizeof t->msg, "%s", msg);
    atomic_fetch_add(&t->done_calls, 1);
    pthread_mutex_lock(&t->w->mu);
    t->w->n++;
    pthread_cond_broadcast(&t->w->cv);
    pthread_mutex_unlock(&t->w->mu);
}

static int is_gone(void *ctx)
{
    return atomic_load(&((tjob *)ctx)->gone);
}

static unsigned rng_state = 12345;
static float rnd(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return (float)((rng_state >> 8) & 0xffff) / 32768.0f - 1.0f;
}

/* A job of B sequences of random lengths 0..MAXLEN (h0/c0 when asked), for model M. */
static tjob *tjob_new(const rnn_model *m, size_t B, int maxlen, int with_h0, waiter *w)
{
    const rnn_info *in = rnn_model_info(m);
    tjob *t = calloc(1, sizeof *t);
    ck_assert_ptr_nonnull(t);
    t->w = w;
    t->lengths = calloc(B ? B : 1, sizeof *t->lengths);
    size_t N = 0;
    for (size_t i = 0; i < B; i++) {
        rng_state = rng_state * 1103515245u + 12345u;
        t->lengths[i] = (int32_t)((rng_state >> 16) % (unsigned)(maxlen + 1));
        N += (size_t)t->lengths[i];
    }
    t->x = malloc((N ? N : 1) * (size_t)in->input_size * sizeof(float));
    for (size_t i = 0; i < N * (size_t)in->input_size; i++)
        t->x[i] = rnd();
    size_t LDH = (size_t)in->num_layers * (size_t)in->num_directions * (size_t)in->hidden_size;
    if (with_h0) {
        t->h0 = malloc((B ? B : 1) * LDH * sizeof(float));
        for (size_t i = 0; i < B * LDH; i++)
            t->h0[i] = rnd();
        if (rnn_cell_describe(in->type)->has_cell) {
            t->c0 = malloc((B ? B : 1) * LDH * sizeof(float));
            for (size_t i = 0; i < B * LDH; i++)
                t->c0[i] = rnd();
        }
    }
    t->batch = (rnn_batch){.batch = B, .lengths = t->lengths, .x = t->x, .h0 = t->h0, .c0 = t->c0};
    rnn_result_sizes(m, &t->batch, &t->n_out, &t->n_hid, &t->n_cell);
    t->res.outputs = calloc(t->n_out ? t->n_out : 1, sizeof(float));
    t->res.hidden = calloc(t->n_hid ? t->n_hid : 1, sizeof(float));
    t->res.cell = t->n_cell ? calloc(t->n_cell, sizeof(float)) : NULL;
    t->job = (sched_job){.model = m,
                         .batch = &t->batch,
                         .result = &t->res,
                         .flops = 1e3 * (double)(N + 1),
                         .gone = is_gone,
                         .done = on_done,
                         .ctx = t};
    return t;
}

static void tjob_free(tjob *t)
{
    free(t->lengths);
    free(t->x);
    free(t->h0);
    free(t->c0);
    free(t->res.outputs);
    free(t->res.hidden);
    free(t->res.cell);
    free(t);
}

static sched *start(int threads, size_t max_seqs, double max_queue_ms)
{
    sched_config c = {.threads = threads,
                      .max_pass_sequences = max_seqs,
                      .max_pass_ns = 60000000000LL,
                      .batch_delay_ns = 0,
                      .max_queue_ns = (int64_t)(max_queue_ms * 1e6),
                      .queue_timeout_ns = 60000000000LL};
    sched *s;
    char err[256];
    ck_assert_msg(sched_start(&c, &s, err, sizeof err) == 0, "%s", err);
    return s;
}

static void submit_ok(sched *s, tjob *t)
{
    char why[256];
    int retry;
    ck_assert_msg(sched_submit(s, &t->job, why, sizeof why, &retry) == 0, "refused: %s", why);
}

/* Runs 12 jobs of CASE merged (queued while paused), and checks each result against the same
 * batch run alone, bit for bit. Every fourth job wants only the final states (its sequences
 * still need rows in the merged pass: the engine keeps the state in them). */
static void check_merge_exact(const char *name)
{
    model_t m;
    model_load(&m, name);
    waiter w;
    waiter_init(&w);
    enum { K = 12 };
    tjob *t[K];
    for (int k = 0; k < K; k++) {
        t[k] = tjob_new(m.model, (size_t)(1 + k % 3), 9, k % 2, &w);
        if (k % 4 == 3) {
            free(t[k]->res.outputs);
            t[k]->res.outputs = NULL;
        }
    }
    sched *s = start(1, 1024, 60000);
    sched_pause(s, 1);
    for (int k = 0; k < K; k++)
        submit_ok(s, t[k]);
    sched_pause(s, 0);
    waiter_wait(&w, K);
    size_t merged = 0;
    for (int k = 0; k < K; k++) {
        ck_assert_msg(t[k]->outcome == SCHED_OK, "%s job %d: outcome %d %s", name, k, t[k]->outcome,
                      t[k]->msg);
        ck_assert_int_eq(atomic_load(&t[k]->done_calls), 1);
        merged += t[k]->job.pass_jobs > 1;
        rnn_result alone = {calloc(t[k]->n_out + 1, sizeof(float)),
                            calloc(t[k]->n_hid + 1, sizeof(float)),
                            t[k]->n_cell ? calloc(t[k]->n_cell, sizeof(float)) : NULL, NULL, NULL};
        char err[256];
        ck_assert_int_eq(rnn_forward(m.model, &t[k]->batch, &alone, err, sizeof err), 0);
        ck_assert_msg(!t[k]->res.outputs || memcmp(alone.outputs, t[k]->res.outputs,
                                                   t[k]->n_out * sizeof(float)) == 0,
                      "%s job %d: merged outputs differ from the job alone", name, k);
        ck_assert_msg(memcmp(alone.hidden, t[k]->res.hidden, t[k]->n_hid * sizeof(float)) == 0,
                      "%s job %d: merged hidden differs from the job alone", name, k);
        if (t[k]->n_cell)
            ck_assert_msg(memcmp(alone.cell, t[k]->res.cell, t[k]->n_cell * sizeof(float)) == 0,
                          "%s job %d: merged cell differs from the job alone", name, k);
        free(alone.outputs);
        free(alone.hidden);
        free(alone.cell);
    }
    /* Queued together for one model, the small jobs went in as few passes as the bound allows:
     * with only the first job's own cost bounding who joins, most were merged. */
    ck_assert_msg(merged >= K / 2, "%s: only %zu of %d jobs were merged", name, merged, K);
    sched_stop(s, 0);
    sched_free(s);
    for (int k = 0; k < K; k++)
        tjob_free(t[k]);
    model_free(&m);
}

START_TEST(test_merged_pass_is_bit_identical_rnn)
{
    check_merge_exact("rnn_bidir_2layer");
}
END_TEST

START_TEST(test_merged_pass_is_bit_identical_lstm)
{
    check_merge_exact("lstm_2layer_bidir");
    check_merge_exact("lstm_h0c0");
}
END_TEST

START_TEST(test_merged_pass_is_bit_identical_gru)
{
    check_merge_exact("gru_2layer_bidir");
}
END_TEST

START_TEST(test_queue_full_is_refused_with_reason_and_retry_after)
{
    model_t m;
    model_load(&m, "lstm_1layer");
    waiter w;
    waiter_init(&w);
    sched *s = start(1, 1024, 1.0); /* 1 ms of estimated work */
    sched_pause(s, 1);
    tjob *a = tjob_new(m.model, 2, 5, 0, &w), *b = tjob_new(m.model, 2, 5, 0, &w);
    a->job.flops = b->job.flops = 1e8; /* 5 ms each at the scheduler's first guess */
    submit_ok(s, a);                   /* an empty queue takes any one job, however large */
    char why[256];
    int retry = 0;
    ck_assert_int_eq(sched_submit(s, &b->job, why, sizeof why, &retry), -1);
    ck_assert_msg(strstr(why, "queue full") && strstr(why, "max_queue_ms"), "why: %s", why);
    ck_assert_int_ge(retry, 1);
    ck_assert_int_eq(atomic_load(&b->done_calls), 0);
    sched_pause(s, 0);
    waiter_wait(&w, 1);
    ck_assert_int_eq(a->outcome, SCHED_OK);
    sched_stop(s, 0);
    sched_free(s);
    ck_assert_int_eq(atomic_load(&b->done_calls), 0);
    tjob_free(a);
    tjob_free(b);
    model_free(&m);
}
END_TEST

START_TEST(test_deadline_shorter_than_queue_wait_is_refused_at_once)
{
    model_t m;
    model_load(&m, "lstm_1layer");
    waiter w;
    waiter_init(&w);
    sched *s = start(1, 1, 60000);
    sched_pause(s, 1);
    tjob *a = tjob_new(m.model, 1, 5, 0, &w), *b = tjob_new(m.model, 1, 5, 0, &w);
    a->job.flops = 2e10; /* about a second at the first guess */
    submit_ok(s, a);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    b->job.flops = 2e10;
    b->job.deadline_ns = (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec + 50000000LL;
    char why[256];
    int retry = 0;
    ck_assert_int_eq(sched_submit(s, &b->job, why, sizeof why, &retry), -1);
    ck_assert_msg(strstr(why, "deadline") && strstr(why, "estimated wait"), "why: %s", why);
    ck_assert_int_ge(retry, 1);
    sched_stop(s, 1);
    sched_free(s);
    ck_assert_int_eq(atomic_load(&a->done_calls), 1);
    ck_assert_int_eq(a->outcome, SCHED_STOPPED);
    tjob_free(a);
    tjob_free(b);
    model_free(&m);
}
END_TEST

START_TEST(test_deadline_passing_in_queue_expires_without_computing)
{
    model_t m;
    model_load(&m, "lstm_1layer");
    waiter w;
    waiter_init(&w);
    sched *s = start(1, 1024, 60000);
    sched_pause(s, 1);
    tjob *a = tjob_new(m.model, 2, 5, 0, &w);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    a->job.deadline_ns = (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec + 30000000LL;
    submit_ok(s, a);
    waiter_wait(&w, 1); /* still paused: only the deadline can end it */
    ck_assert_int_eq(a->outcome, SCHED_EXPIRED);
    ck_assert_msg(strstr(a->msg, "deadline"), "msg: %s", a->msg);
    for (size_t i = 0; i < a->n_hid; i++)
        ck_assert_msg(a->res.hidden[i] == 0.0f, "an expired job was computed");
    sched_stop(s, 0);
    sched_free(s);
    ck_assert_int_eq(atomic_load(&a->done_calls), 1);
    tjob_free(a);
    model_free(&m);
}
END_TEST

START_TEST(test_queued_job_of_a_gone_client_is_cancelled)
{
    model_t m;
    model_load(&m, "gru_1layer");
    waiter w;
    waiter_init(&w);
    sched *s = start(1, 1024, 60000);
    sched_pause(s, 1);
    tjob *a = tjob_new(m.model, 2, 5, 0, &w), *b = tjob_new(m.model, 2, 5, 0, &w);
    submit_ok(s, a);
    submit_ok(s, b);
    atomic_store(&a->gone, 1);
    waiter_wait(&w, 1); /* paused: only the timer's sweep ends A */
    ck_assert_int_eq(a->outcome, SCHED_CANCELLED);
    ck_assert_int_eq(atomic_load(&b->done_calls), 0);
    sched_pause(s, 0);
    waiter_wait(&w, 2);
    ck_assert_int_eq(b->outcome, SCHED_OK);
    sched_stop(s, 0);
    sched_free(s);
    ck_assert_int_eq(atomic_load(&a->done_calls), 1);
    ck_assert_int_eq(atomic_load(&b->done_calls), 1);
    tjob_free(a);
    tjob_free(b);
    model_free(&m);
}
END_TEST

START_TEST(test_huge_job_is_not_merged_into_a_pass_of_small_ones)
{
    model_t m;
    model_load(&m, "lstm_1layer");
    waiter w;
    waiter_init(&w);
    sched *s = start(1, 1024, 60000);
    sched_pause(s, 1);
    tjob *small1 = tjob_new(m.model, 1, 5, 0, &w), *huge = tjob_new(m.model, 8, 9, 0, &w),
         *small2 = tjob_new(m.model, 1, 5, 0, &w);
    small1->job.flops = small2->job.flops = 1e4;
    huge->job.flops = 1e6;
    submit_ok(s, small1);
    submit_ok(s, huge);
    submit_ok(s, small2);
    sched_pause(s, 0);
    waiter_wait(&w, 3);
    ck_assert_int_eq(small1->outcome, SCHED_OK);
    ck_assert_int_eq(huge->outcome, SCHED_OK);
    ck_assert_int_eq(small1->job.pass_jobs, 2); /* the two small ones together */
    ck_assert_int_eq(small2->job.pass_jobs, 2);
    ck_assert_int_eq(huge->job.pass_jobs, 1); /* the huge one alone */
    sched_stop(s, 0);
    sched_free(s);
    tjob_free(small1);
    tjob_free(huge);
    tjob_free(small2);
    model_free(&m);
}
END_TEST

/* The cache bound on merging (sched_config.merge_cache_bytes): a model whose weights fit the
 * cache merges jobs only while the pass's activations fit twice the cache, per take_pass's
 * rule ((G*H + 2*D*H) floats a step row); one whose weights do not fit merges them all. Eight
 * one-sequence jobs of T steps each, T past the weights' bytes in rows, the cache sized for
 * 3.5 jobs: passes of 3. */
static void check_merge_cache_bound(const char *name, int weights_fit)
{
    model_t m;
    model_load(&m, name);
    const rnn_info *in = rnn_model_info(m.model);
    const size_t H = (size_t)in->hidden_size, GH = (size_t)in->gates * H;
    const size_t DH = (size_t)in->num_directions * H;
    const size_t I = (size_t)in->input_size > DH ? (size_t)in->input_size : DH;
    const size_t weights = GH * (I + H) * sizeof(float), row = (GH + 2 * DH) * sizeof(float);
    const int T = (int)(weights / row) + 2;
    size_t cache = (size_t)T * 7 / 4 * row; /* 2 * cache = 3.5 jobs of rows */
    if (!weights_fit)
        cache = weights - 1;
    waiter w;
    waiter_init(&w);
    enum { K = 8 };
    tjob *t[K];
    sched_config c = {.threads = 1,
                      .max_pass_sequences = 1024,
                      .max_pass_ns = 60000000000LL,
                      .merge_cache_bytes = cache,
                      .max_queue_ns = 60000000000LL,
                      .queue_timeout_ns = 60000000000LL};
    sched *s;
    char err[256];
    ck_assert_msg(sched_start(&c, &s, err, sizeof err) == 0, "%s", err);
    sched_pause(s, 1);
    for (int k = 0; k < K; k++) {
        t[k] = tjob_new(m.model, 1, 0, 0, &w); /* one empty sequence, lengthened below */
        free(t[k]->x);
        t[k]->x = calloc((size_t)T * (size_t)in->input_size, sizeof(float));
        t[k]->lengths[0] = T;
        t[k]->batch.x = t[k]->x;
        rnn_result_sizes(m.model, &t[k]->batch, &t[k]->n_out, &t[k]->n_hid, &t[k]->n_cell);
        free(t[k]->res.outputs);
        t[k]->res.outputs = calloc(t[k]->n_out, sizeof(float));
        t[k]->job.flops = 1e3 * (double)(T + 1);
        submit_ok(s, t[k]);
    }
    sched_pause(s, 0);
    waiter_wait(&w, K);
    size_t most = 0;
    for (int k = 0; k < K; k++) {
        ck_assert_int_eq(t[k]->outcome, SCHED_OK);
        most = t[k]->job.pass_jobs > most ? t[k]->job.pass_jobs : most;
    }
    ck_assert_msg(most == (weights_fit ? 3u : (size_t)K),
                  "%s (weights %zu bytes, cache %zu, %d rows a job): passes of up to %zu jobs",
                  name, weights, cache, T, most);
    sched_stop(s, 0);
    sched_free(s);
    for (int k = 0; k < K; k++)
        tjob_free(t[k]);
    model_free(&m);
}

START_TEST(test_merging_stops_where_a_small_models_activations_outgrow_the_cache)
{
    check_merge_cache_bound("rnn_bidir_2layer", 1);
    check_merge_cache_bound("lstm_2layer_bidir", 1);
    check_merge_cache_bound("lstm_2layer_bidir", 0);
}
END_TEST

START_TEST(test_stop_computes_queued_jobs_and_abort_ends_them_stopped)
{
    model_t m;
    model_load(&m, "rnn_tanh_1layer");
    waiter w;
    waiter_init(&w);
    enum { K = 6 };
    tjob *t[K];
    sched *s = start(2, 1024, 60000);
    sched_pause(s, 1);
    for (int k = 0; k < K; k++)
        submit_ok(s, t[k] = tjob_new(m.model, 2, 5, 0, &w));
    sched_stop(s, 0);
    sched_free(s); /* a stop unpauses and computes everything queued */
    for (int k = 0; k < K; k++) {
        ck_assert_int_eq(atomic_load(&t[k]->done_calls), 1);
        ck_assert_int_eq(t[k]->outcome, SCHED_OK);
        tjob_free(t[k]);
    }
    waiter_init(&w);
    s = start(2, 1024, 60000);
    sched_pause(s, 1);
    for (int k = 0; k < K; k++)
        submit_ok(s, t[k] = tjob_new(m.model, 2, 5, 0, &w));
    sched_stop(s, 1);
    sched_free(s);
    for (int k = 0; k < K; k++) {
        ck_assert_int_eq(atomic_load(&t[k]->done_calls), 1);
        ck_assert_int_eq(t[k]->outcome, SCHED_STOPPED);
        tjob_free(t[k]);
    }
    model_free(&m);
}
END_TEST

/* Many submitters at once, some clients going away: every accepted job ends exactly once, and
 * every refused one never. */
typedef struct {
    sched *s;
    const rnn_model *m;
    waiter *w;
    tjob **jobs;
    int n;
    atomic_int *accepted;
} submitter;

static void *submit_main(void *arg)
{
    submitter *sb = arg;
    for (int k = 0; k < sb->n; k++) {
        tjob *t = sb->jobs[k];
        char why[256];
        int retry;
        if (k % 7 == 3)
            atomic_store(&t->gone, 1);
        if (sched_submit(sb->s, &t->job, why, sizeof why, &retry) == 0)
            atomic_fetch_add(sb->accepted, 1);
        else
            t->outcome = (sched_outcome)-1;
    }
    return NULL;
}

START_TEST(test_every_accepted_job_gets_exactly_one_done)
{
    model_t m;
    model_load(&m, "gru_2layer_bidir");
    waiter w;
    waiter_init(&w);
    enum { THREADS = 4, PER = 60 };
    tjob *t[THREADS * PER];
    for (int i = 0; i < THREADS * PER; i++)
        t[i] = tjob_new(m.model, (size_t)(1 + i % 4), 7, i % 2, &w);
    sched *s = start(2, 16, 50.0);
    atomic_int accepted = 0;
    pthread_t th[THREADS];
    submitter sb[THREADS];
    for (int i = 0; i < THREADS; i++) {
        sb[i] = (submitter){s, m.model, &w, t + i * PER, PER, &accepted};
        pthread_create(&th[i], NULL, submit_main, &sb[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    sched_stop(s, 0);
    sched_free(s);
    int done = 0;
    for (int i = 0; i < THREADS * PER; i++) {
        int calls = atomic_load(&t[i]->done_calls);
        if (t[i]->outcome == (sched_outcome)-1)
            ck_assert_msg(calls == 0, "a refused job got done()");
        else
            ck_assert_msg(calls == 1, "job %d: %d done() calls", i, calls);
        done += calls;
        tjob_free(t[i]);
    }
    ck_assert_int_eq(done, atomic_load(&accepted));
    model_free(&m);
}
END_TEST

/* The engine's stop callback: a pass asked to stop at its 5th step boundary says so, and one
 * never asked runs to the end. */
static int stop_at_5(void *ctx)
{
    return ++*(int *)ctx >= 5;
}

START_TEST(test_engine_pass_stops_at_a_step_boundary_when_asked)
{
    model_t m;
    model_load(&m, "lstm_2layer_bidir");
    waiter w;
    waiter_init(&w);
    tjob *t = tjob_new(m.model, 3, 40, 1, &w);
    int calls = 0;
    t->batch.stop = stop_at_5;
    t->batch.stop_ctx = &calls;
    char err[256];
    ck_assert_int_eq(rnn_forward(m.model, &t->batch, &t->res, err, sizeof err), RNN_STOPPED);
    ck_assert_int_eq(calls, 5);
    ck_assert_msg(strstr(err, "stopped"), "err: %s", err);
    t->batch.stop = NULL;
    ck_assert_int_eq(rnn_forward(m.model, &t->batch, &t->res, err, sizeof err), 0);
    tjob_free(t);
    model_free(&m);
}
END_TEST

START_TEST(test_job_of_a_client_gone_before_its_pass_is_never_delivered)
{
    model_t m;
    model_load(&m, "gru_2layer_bidir");
    waiter w;
    waiter_init(&w);
    sched *s = start(1, 1024, 60000);
    tjob *t = tjob_new(m.model, 4, 40, 0, &w);
    atomic_store(&t->gone, 1); /* dropped by the sweep, or its pass stops at the first step */
    submit_ok(s, t);
    waiter_wait(&w, 1);
    ck_assert_int_eq(t->outcome, SCHED_CANCELLED);
    sched_stop(s, 0);
    sched_free(s);
    ck_assert_int_eq(atomic_load(&t->done_calls), 1);
    tjob_free(t);
    model_free(&m);
}
END_TEST

/* A job with its own work (a generation loop) runs alone, never merged, and is stopped through
 * the callback it is given when its requester leaves. */
static atomic_int own_runs;
static int own_work(sched_job *j, int (*stop)(void *), void *stop_ctx, char *err, size_t errlen)
{
    (void)j;
    (void)err;
    (void)errlen;
    atomic_fetch_add(&own_runs, 1);
    for (int i = 0; i < 2000; i++) {
        if (stop(stop_ctx))
            return RNN_STOPPED;
        tu_sleep_ms(1);
    }
    return 0;
}

START_TEST(test_job_with_its_own_work_runs_alone_and_stops_when_its_client_leaves)
{
    model_t m;
    model_load(&m, "lstm_1layer");
    waiter w;
    waiter_init(&w);
    sched *s = start(1, 1024, 60000);
    sched_pause(s, 1);
    tjob *own = tjob_new(m.model, 1, 3, 0, &w), *a = tjob_new(m.model, 1, 3, 0, &w);
    own->job.run = own_work;
    own->job.flops = 1e9; /* the forward job goes first */
    a->job.flops = 1e3;
    submit_ok(s, own);
    submit_ok(s, a);
    sched_pause(s, 0);
    waiter_wait(&w, 1);
    /* the forward job was not merged into the other's own work */
    ck_assert_int_eq(a->outcome, SCHED_OK);
    ck_assert_int_eq(a->job.pass_jobs, 1);
    for (double end = tu_now_s() + 30; !atomic_load(&own_runs) && tu_now_s() < end;)
        tu_sleep_ms(1); /* its thread is on its way to it */
    ck_assert_int_eq(atomic_load(&own_runs), 1);
    atomic_store(&own->gone, 1); /* asked at most every 10 ms while it runs */
    waiter_wait(&w, 2);
    ck_assert_int_eq(own->outcome, SCHED_CANCELLED);
    ck_assert_int_eq(own->job.pass_jobs, 1);
    sched_stop(s, 0);
    sched_free(s);
    tjob_free(own);
    tjob_free(a);
    model_free(&m);
}
END_TEST

/* The express lane: a small job stuck behind larger queued work, with nothing to merge with, is
 * told to run at once; with company for it (or an empty queue) it is not. */
START_TEST(test_express_lane_is_for_small_jobs_behind_larger_ones_only)
{
    model_t m;
    model_load(&m, "lstm_1layer");
    waiter w;
    waiter_init(&w);
    sched *s = start(1, 1024, 600000);
    ck_assert_int_eq(sched_express(s, m.model, 1e4), 0); /* idle: it starts at once */
    tjob *running = tjob_new(m.model, 1, 3, 0, &w), *queued = tjob_new(m.model, 2, 5, 0, &w),
         *small = tjob_new(m.model, 1, 3, 0, &w);
    running->job.run = own_work; /* holds the one thread until its client leaves */
    running->job.flops = 4e11;   /* ~20 s at the first guess: still running as far as it knows */
    int runs = atomic_load(&own_runs);
    submit_ok(s, running);
    for (double end = tu_now_s() + 30; atomic_load(&own_runs) == runs && tu_now_s() < end;)
        tu_sleep_ms(1);
    ck_assert_int_eq(sched_express(s, m.model, 1e4), 0); /* nothing queued: next in line */
    queued->job.flops = 4e9;
    submit_ok(s, queued);
    ck_assert_int_eq(sched_express(s, m.model, 1e4), 1); /* tiny, behind larger work */
    ck_assert_int_eq(sched_express(s, m.model, 2e9), 0); /* not small */
    small->job.flops = 1e4;
    submit_ok(s, small);
    ck_assert_int_eq(sched_express(s, m.model, 1e4), 0); /* company to merge with */
    atomic_store(&running->gone, 1);
    waiter_wait(&w, 3);
    sched_stop(s, 0);
    sched_free(s);
    tjob_free(running);
    tjob_free(queued);
    tjob_free(small);
    model_free(&m);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("sched");
    TCase *tc = tcase_create("sched");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_merged_pass_is_bit_identical_rnn);
    tcase_add_test(tc, test_merged_pass_is_bit_identical_lstm);
    tcase_add_test(tc, test_merged_pass_is_bit_identical_gru);
    tcase_add_test(tc, test_queue_full_is_refused_with_reason_and_retry_after);
    tcase_add_test(tc, test_deadline_shorter_than_queue_wait_is_refused_at_once);
    tcase_add_test(tc, test_deadline_passing_in_queue_expires_without_computing);
    tcase_add_test(tc, test_queued_job_of_a_gone_client_is_cancelled);
    tcase_add_test(tc, test_huge_job_is_not_merged_into_a_pass_of_small_ones);
    tcase_add_test(tc, test_merging_stops_where_a_small_models_activations_outgrow_the_cache);
    tcase_add_test(tc, test_stop_computes_queued_jobs_and_abort_ends_them_stopped);
    tcase_add_test(tc, test_every_accepted_job_gets_exactly_one_done);
    tcase_add_test(tc, test_engine_pass_stops_at_a_step_boundary_when_asked);
    tcase_add_test(tc, test_job_of_a_client_gone_before_its_pass_is_never_delivered);
    tcase_add_test(tc, test_job_with_its_own_work_runs_alone_and_stops_when_its_client_leaves);
    tcase_add_test(tc, test_express_lane_is_for_small_jobs_behind_larger_ones_only);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
