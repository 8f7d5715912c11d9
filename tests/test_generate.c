/* test_generate.c - generation and forecasting (issue 16, items 3 and 4): PyTorch's own greedy
 * loop on examples/char-lstm and its forecast rollout on a tiny LSTM (tests/fixtures/generate/,
 * made by tests/fixtures/gen_generate.py), the sampler's reproducibility and rules, the states
 * handed back, and the HTTP route with its streamed variant. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "httpc.h"
#include "rnnserve/config.h"
#include "rnnserve/embed.h"
#include "rnnserve/engine.h"
#include "rnnserve/generate.h"
#include "rnnserve/server.h"
#include "testutil.h"

#define CHAR_LSTM "examples/char-lstm/config.json"
#define FORECAST "tests/fixtures/generate/forecast/config.json"

typedef struct {
    cfg_config *cfg;
    rnn_model *m;
} loaded;

static loaded load(const char *config)
{
    loaded l;
    char err[1024];
    ck_assert_msg(cfg_load_file(config, &l.cfg, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(rnn_model_load(&l.cfg->models[0], &l.m, err, sizeof err) == 0, "%s", err);
    return l;
}

static void unload(loaded *l)
{
    rnn_model_free(l->m);
    cfg_free(l->cfg);
}

static json_t *fixture(const char *name)
{
    json_error_t je;
    json_t *j = json_load_file(tu_fixture(name), 0, &je);
    ck_assert_msg(j != NULL, "%s: %s", name, je.text);
    return j;
}

/* A ragged token prompt from a JSON array of id arrays: lengths and ids malloc'ed. */
static rnn_batch token_prompt(json_t *prompts, int32_t **lengths, int32_t **ids)
{
    size_t B = json_array_size(prompts), n = 0;
    *lengths = malloc(B * sizeof **lengths);
    for (size_t b = 0; b < B; b++)
        n += json_array_size(json_array_get(prompts, b));
    *ids = malloc((n ? n : 1) * sizeof **ids);
    n = 0;
    for (size_t b = 0; b < B; b++) {
        json_t *p = json_array_get(prompts, b);
        (*lengths)[b] = (int32_t)json_array_size(p);
        for (size_t t = 0; t < json_array_size(p); t++)
            (*ids)[n++] = (int32_t)json_integer_value(json_array_get(p, t));
    }
    return (rnn_batch){.batch = B, .lengths = *lengths};
}

typedef struct {
    int32_t *tokens;
    float *forecast, *hidden, *cell;
} owned_result;

static rnn_gen_result alloc_result(const rnn_model *m, size_t B, size_t steps, owned_result *o)
{
    size_t nt, nf, nh, nc;
    rnn_gen_sizes(m, B, steps, &nt, &nf, &nh, &nc);
    o->tokens = calloc(nt + 1, sizeof(int32_t));
    o->forecast = calloc(nf + 1, sizeof(float));
    o->hidden = calloc(nh + 1, sizeof(float));
    o->cell = calloc(nc + 1, sizeof(float));
    return (rnn_gen_result){o->tokens, o->forecast, o->hidden, o->cell};
}

static void free_result(owned_result *o)
{
    free(o->tokens);
    free(o->forecast);
    free(o->hidden);
    free(o->cell);
}

/* The target: PyTorch's greedy loop, 200 steps, the same ids except where its top-2
 * probability margin is under 1e-5 (after a legitimate flip the continuations part ways, so the
 * comparison of a sequence stops there). */
START_TEST(greedy_matches_pytorch)
{
    loaded l = load(CHAR_LSTM);
    json_t *fx = fixture("generate/greedy.json");
    int32_t *lengths, *ids;
    rnn_batch pb = token_prompt(json_object_get(fx, "prompts"), &lengths, &ids);
    const size_t steps = (size_t)json_integer_value(json_object_get(fx, "steps"));
    owned_result o;
    rnn_gen_result r = alloc_result(l.m, pb.batch, steps, &o);
    rnn_gen_params p = {.steps = steps, .temperature = 0.0};
    char err[512];
    ck_assert_msg(rnn_generate(l.m, &pb, ids, &p, &r, err, sizeof err) == 0, "%s", err);
    size_t compared = 0;
    for (size_t b = 0; b < pb.batch; b++) {
        json_t *want = json_array_get(json_object_get(fx, "tokens"), b);
        json_t *margin = json_array_get(json_object_get(fx, "margins"), b);
        for (size_t s = 0; s < steps; s++) {
            int32_t w = (int32_t)json_integer_value(json_array_get(want, s));
            double mg = json_number_value(json_array_get(margin, s));
            if (o.tokens[b * steps + s] != w) {
                ck_assert_msg(mg < 1e-5, "sequence %zu step %zu: id %d, PyTorch %d (margin %g)", b,
                              s, o.tokens[b * steps + s], w, mg);
                break;
            }
            compared++;
        }
    }
    ck_assert_msg(compared == pb.batch * steps, "compared %zu ids of %zu", compared,
                  pb.batch * steps);
    free_result(&o);
    free(lengths);
    free(ids);
    json_decref(fx);
    unload(&l);
}
END_TEST

static void json_rows(json_t *a, float *dst, size_t width)
{
    for (size_t i = 0; i < json_array_size(a); i++)
        for (size_t k = 0; k < width; k++)
            dst[i * width + k] = (float)json_number_value(json_array_get(json_array_get(a, i), k));
}

/* The forecast rollout: 100 steps within 1e-4 of PyTorch's loop, and the states after the last
 * row was fed back equal PyTorch's h_n/c_n. */
START_TEST(forecast_matches_pytorch)
{
    loaded l = load(FORECAST);
    json_t *fx = fixture("generate/forecast.json");
    json_t *prompt = json_object_get(fx, "prompt");
    const size_t T = json_array_size(prompt), I = 2, steps = 100;
    ck_assert_int_eq(rnn_gen_mode_of(l.m, NULL, 0), RNN_GEN_FORECAST);
    float *x = malloc(T * I * sizeof(float)), *want = malloc(steps * I * sizeof(float));
    float wh[6], wc[6];
    json_rows(prompt, x, I);
    json_rows(json_object_get(fx, "forecast"), want, I);
    json_rows(json_object_get(fx, "hidden"), wh, 6);
    json_rows(json_object_get(fx, "cell"), wc, 6);
    int32_t len = (int32_t)T;
    rnn_batch pb = {.batch = 1, .lengths = &len, .x = x};
    owned_result o;
    rnn_gen_result r = alloc_result(l.m, 1, steps, &o);
    rnn_gen_params p = {.steps = steps};
    char err[512];
    ck_assert_msg(rnn_generate(l.m, &pb, NULL, &p, &r, err, sizeof err) == 0, "%s", err);
    double d = tu_max_abs_diff(o.forecast, want, steps * I);
    ck_assert_msg(d <= 1e-4, "forecast differs from PyTorch by %g", d);
    ck_assert_msg(tu_max_abs_diff(o.hidden, wh, 6) <= 1e-4, "hidden");
    ck_assert_msg(tu_max_abs_diff(o.cell, wc, 6) <= 1e-4, "cell");
    free_result(&o);
    free(x);
    free(want);
    json_decref(fx);
    unload(&l);
}
END_TEST

/* Runs the char model on two prompts with P; the ids into a new array (B * steps). */
static int32_t *run_tokens(const rnn_model *m, const rnn_gen_params *p, float *hidden)
{
    static const int32_t lengths[2] = {3, 1}, ids[4] = {35, 58, 52, 69};
    rnn_batch pb = {.batch = 2, .lengths = lengths};
    owned_result o;
    rnn_gen_result r = alloc_result(m, 2, p->steps, &o);
    char err[512];
    ck_assert_msg(rnn_generate(m, &pb, ids, p, &r, err, sizeof err) == 0, "%s", err);
    if (hidden) {
        size_t nt, nf, nh, nc;
        rnn_gen_sizes(m, 2, p->steps, &nt, &nf, &nh, &nc);
        memcpy(hidden, o.hidden, nh * sizeof(float));
    }
    int32_t *t = o.tokens;
    o.tokens = NULL;
    free_result(&o);
    return t;
}

/* Sampling with a seed: the same ids on every run; another seed gives another stream; ids stay
 * in the vocabulary. Across processes: the PRNG is pure arithmetic on the seed (no clock, no
 * address), and its first outputs are pinned to SplitMix64's reference values below. */
START_TEST(sampling_reproducible)
{
    loaded l = load(CHAR_LSTM);
    rnn_gen_params p = {.steps = 64, .temperature = 1.0, .top_k = 10, .seed = 42};
    int32_t *a = run_tokens(l.m, &p, NULL), *b = run_tokens(l.m, &p, NULL);
    ck_assert_mem_eq(a, b, 2 * 64 * sizeof(int32_t));
    p.seed = 43;
    int32_t *c = run_tokens(l.m, &p, NULL);
    ck_assert_msg(memcmp(a, c, 2 * 64 * sizeof(int32_t)) != 0, "seed 43 gave seed 42's ids");
    for (size_t i = 0; i < 2 * 64; i++)
        ck_assert_msg(a[i] >= 0 && a[i] < 76, "id %d", a[i]);
    free(a);
    free(b);
    free(c);
    /* SplitMix64 seeded with 1234567 (state as is) gives these first outputs (the published
     * reference implementation's). */
    rnn_gen_rng g = {1234567};
    ck_assert_uint_eq(rnn_gen_rng_next(&g), 6457827717110365317ULL);
    ck_assert_uint_eq(rnn_gen_rng_next(&g), 3203168211198807973ULL);
    unload(&l);
}
END_TEST

/* The sampler's rules on hand-made logits. */
START_TEST(sampler_rules)
{
    rnn_gen_rng g;
    rnn_gen_rng_init(&g, 7, 0);
    const float tie[4] = {1.0f, 3.0f, 3.0f, 2.0f};
    ck_assert_int_eq(rnn_gen_sample(tie, 4, 0.0, 0, &g), 1); /* argmax: ties to the lowest id */
    /* top_k 1 is the argmax whatever the temperature; top_k 2 keeps ids 1 and 2 only */
    for (int i = 0; i < 200; i++) {
        ck_assert_int_eq(rnn_gen_sample(tie, 4, 5.0, 1, &g), 1);
        int32_t id = rnn_gen_sample(tie, 4, 5.0, 2, &g);
        ck_assert_msg(id == 1 || id == 2, "top_k 2 gave id %d", id);
    }
    /* a near-zero temperature is the argmax, a huge one nearly uniform: all ids appear */
    int seen[4] = {0};
    const float l4[4] = {0.0f, 1.0f, 0.5f, 0.2f};
    for (int i = 0; i < 400; i++) {
        ck_assert_int_eq(rnn_gen_sample(l4, 4, 1e-3, 0, &g), 1);
        seen[rnn_gen_sample(l4, 4, 1e6, 0, &g)]++;
    }
    for (int i = 0; i < 4; i++)
        ck_assert_msg(seen[i] > 50, "id %d drawn %d times in 400 at a huge temperature", i,
                      seen[i]);
    const float bad[3] = {0.0f, NAN, 1.0f};
    ck_assert_int_eq(rnn_gen_sample(bad, 3, 1.0, 0, &g), -1);
    /* a sequence's stream depends on its index, not on the batch */
    rnn_gen_rng a, b;
    rnn_gen_rng_init(&a, 9, 0);
    rnn_gen_rng_init(&b, 9, 1);
    ck_assert_msg(rnn_gen_rng_next(&a) != rnn_gen_rng_next(&b), "sequences share a stream");
    double u = rnn_gen_rng_uniform(&a);
    ck_assert_msg(u >= 0.0 && u < 1.0, "uniform %g", u);
}
END_TEST

/* The states handed back continue the generation: 10 steps then 10 more from the returned
 * hidden/cell (prompt: the last id) are the 20 steps of one call. */
START_TEST(states_continue)
{
    loaded l = load(CHAR_LSTM);
    const int32_t ids[3] = {35, 58, 52};
    int32_t len = 3;
    rnn_batch pb = {.batch = 1, .lengths = &len};
    char err[512];
    owned_result all, first, second;
    rnn_gen_params p = {.steps = 20};
    rnn_gen_result r = alloc_result(l.m, 1, 20, &all);
    ck_assert_msg(rnn_generate(l.m, &pb, ids, &p, &r, err, sizeof err) == 0, "%s", err);
    p.steps = 10;
    r = alloc_result(l.m, 1, 10, &first);
    ck_assert_msg(rnn_generate(l.m, &pb, ids, &p, &r, err, sizeof err) == 0, "%s", err);
    ck_assert_mem_eq(first.tokens, all.tokens, 10 * sizeof(int32_t));
    /* The returned state already has the 10th id fed back: continue from it with an empty
     * prompt, which predicts from h0's top layer. */
    int32_t zero = 0;
    rnn_batch cont = {.batch = 1, .lengths = &zero, .h0 = first.hidden, .c0 = first.cell};
    r = alloc_result(l.m, 1, 10, &second);
    const int32_t none = 0;
    ck_assert_msg(rnn_generate(l.m, &cont, &none, &p, &r, err, sizeof err) == 0, "%s", err);
    ck_assert_mem_eq(second.tokens, all.tokens + 10, 10 * sizeof(int32_t));
    ck_assert_msg(tu_max_abs_diff(second.hidden, all.hidden, 2 * 128) == 0.0, "final hidden");
    ck_assert_msg(tu_max_abs_diff(second.cell, all.cell, 2 * 128) == 0.0, "final cell");
    /* an empty prompt without h0 is refused */
    cont.h0 = cont.c0 = NULL;
    ck_assert_int_eq(rnn_gen_check(l.m, &cont, &none, &p, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "nothing to predict") != NULL, "%s", err);
    free_result(&all);
    free_result(&first);
    free_result(&second);
    unload(&l);
}
END_TEST

static int stop_after(void *ctx)
{
    int *n = ctx;
    return --*n < 0;
}

/* The stop callback is asked between steps: the loop returns RNN_STOPPED. */
START_TEST(stop_between_steps)
{
    loaded l = load(CHAR_LSTM);
    int budget = 40;
    rnn_gen_params p = {.steps = 1000, .stop = stop_after, .stop_ctx = &budget};
    static const int32_t lengths[1] = {2}, ids[2] = {35, 58};
    rnn_batch pb = {.batch = 1, .lengths = lengths};
    owned_result o;
    rnn_gen_result r = alloc_result(l.m, 1, 1000, &o);
    char err[512];
    ck_assert_int_eq(rnn_generate(l.m, &pb, ids, &p, &r, err, sizeof err), RNN_STOPPED);
    free_result(&o);
    unload(&l);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Over HTTP */

typedef struct {
    cfg_config *cfg;
    srv *s;
    int port;
} server;

/* A server on an ephemeral port for the char model and the forecast model (one config). */
static server serve(int threads)
{
    static const char conf[] =
        "{\"server\": {\"port\": 0, \"threads\": %d}, \"models\": ["
        "{\"name\": \"char-lstm\", \"type\": \"lstm\", \"input_size\": 32, \"hidden_size\": 128,"
        " \"num_layers\": 2, \"weights\": \"examples/char-lstm/model.safetensors\","
        " \"embedding\": \"embedding.weight\", \"head\": {\"weight\": \"fc.weight\","
        " \"bias\": \"fc.bias\", \"activation\": \"softmax\"}},"
        "{\"name\": \"forecast\", \"type\": \"lstm\", \"input_size\": 2, \"hidden_size\": 6,"
        " \"num_layers\": 1, \"weights\": \"tests/fixtures/generate/forecast/model.safetensors\","
        " \"head\": {\"weight\": \"fc.weight\", \"bias\": \"fc.bias\"}},"
        "{\"name\": \"sine-next\", \"type\": \"gru\", \"input_size\": 1, \"hidden_size\": 8,"
        " \"num_layers\": 1, \"weights\": \"examples/sine-next/model.safetensors\"}]}";
    char text[2048], err[1024];
    snprintf(text, sizeof text, conf, threads);
    server v;
    ck_assert_msg(cfg_load_buffer(text, strlen(text), ".", &v.cfg, err, sizeof err) == 0, "%s",
                  err);
    ck_assert_msg(srv_start(v.cfg, &v.s, err, sizeof err) == 0, "%s", err);
    v.port = srv_port(v.s);
    return v;
}

static void unserve(server *v)
{
    srv_stop(v->s);
    cfg_free(v->cfg);
}

static json_t *post(const server *v, const char *model, const char *body,
                    const char *const *headers, long want, httpc_resp *out)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/models/%s/generate", model);
    ck_assert_int_eq(httpc(v->port, "POST", path, body, headers, out), CURLE_OK);
    ck_assert_msg(out->status == want, "status %ld (want %ld): %s", out->status, want, out->body);
    json_error_t je;
    json_t *j = json_loads(out->body, 0, &je);
    return j;
}

/* The plain answer: the same ids as rnn_generate in process (greedy: PyTorch's), hidden and cell
 * per sequence as /forward answers them (and takes h0/c0): [B][L][H]. */
START_TEST(http_plain_tokens)
{
    server v = serve(1);
    httpc_resp r;
    json_t *j = post(&v, "char-lstm",
                     "{\"tokens\": [[35, 58, 52], [69]], \"steps\": 30, \"temperature\": 0}", NULL,
                     200, &r);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(json_string_value(json_object_get(j, "model")), "char-lstm");
    loaded l = load(CHAR_LSTM);
    static const int32_t lengths[2] = {3, 1}, ids[4] = {35, 58, 52, 69};
    rnn_batch pb = {.batch = 2, .lengths = lengths};
    owned_result o;
    rnn_gen_result res = alloc_result(l.m, 2, 30, &o);
    rnn_gen_params p = {.steps = 30};
    char err[512];
    ck_assert_msg(rnn_generate(l.m, &pb, ids, &p, &res, err, sizeof err) == 0, "%s", err);
    json_t *toks = json_object_get(j, "tokens");
    ck_assert_int_eq(json_array_size(toks), 2);
    for (size_t b = 0; b < 2; b++) {
        ck_assert_int_eq(json_array_size(json_array_get(toks, b)), 30);
        for (size_t s = 0; s < 30; s++)
            ck_assert_int_eq(json_integer_value(json_array_get(json_array_get(toks, b), s)),
                             o.tokens[b * 30 + s]);
    }
    json_t *h = json_object_get(j, "hidden"), *c = json_object_get(j, "cell");
    ck_assert_int_eq(json_array_size(h), 2);                    /* B */
    ck_assert_int_eq(json_array_size(json_array_get(h, 0)), 2); /* L */
    ck_assert_int_eq(json_array_size(json_array_get(json_array_get(h, 1), 1)), 128);
    /* [sequence 0][layer 1][unit 5] is the engine's (sequence 0, layer 1, unit 5) */
    double hv = json_number_value(json_array_get(json_array_get(json_array_get(h, 0), 1), 5));
    double cv = json_number_value(json_array_get(json_array_get(json_array_get(c, 0), 1), 5));
    ck_assert_float_eq_tol(hv, o.hidden[(0 * 2 + 1) * 128 + 5], 1e-6);
    ck_assert_float_eq_tol(cv, o.cell[(0 * 2 + 1) * 128 + 5], 1e-5);
    free_result(&o);
    unload(&l);
    json_decref(j);
    httpc_resp_free(&r);
    unserve(&v);
}
END_TEST

/* The answer's hidden/cell, sent back as h0/c0 with an empty prompt, continue the generation:
 * 10 steps, then 10 more from the states, are the 20 steps of one request. */
START_TEST(http_states_continue)
{
    server v = serve(1);
    httpc_resp r20, r10, rc;
    json_t *all =
        post(&v, "char-lstm", "{\"tokens\": [[35, 58, 52]], \"steps\": 20, \"temperature\": 0}",
             NULL, 200, &r20);
    json_t *first =
        post(&v, "char-lstm", "{\"tokens\": [[35, 58, 52]], \"steps\": 10, \"temperature\": 0}",
             NULL, 200, &r10);
    json_t *req =
        json_pack("{s:[[]],s:i,s:i,s:O,s:O}", "tokens", "steps", 10, "temperature", 0, "h0",
                  json_object_get(first, "hidden"), "c0", json_object_get(first, "cell"));
    char *body = json_dumps(req, JSON_COMPACT);
    json_t *cont = post(&v, "char-lstm", body, NULL, 200, &rc);
    json_t *a = json_array_get(json_object_get(all, "tokens"), 0);
    json_t *c = json_array_get(json_object_get(cont, "tokens"), 0);
    for (size_t s = 0; s < 10; s++)
        ck_assert_int_eq(json_integer_value(json_array_get(c, s)),
                         json_integer_value(json_array_get(a, 10 + s)));
    ck_assert_msg(json_equal(json_object_get(cont, "hidden"), json_object_get(all, "hidden")),
                  "the continued final state is not the 20-step one");
    free(body);
    json_decref(req);
    json_decref(all);
    json_decref(first);
    json_decref(cont);
    httpc_resp_free(&r20);
    httpc_resp_free(&r10);
    httpc_resp_free(&rc);
    unserve(&v);
}
END_TEST

/* The events of an SSE body: names into NAMES, data parsed into DATA (json_decref each). */
static size_t parse_sse(const char *body, const char **names, json_t **data, size_t cap)
{
    size_t n = 0;
    const char *p = body;
    while (*p && n < cap) {
        const char *end = strstr(p, "\n\n");
        ck_assert_msg(end != NULL, "an event without its blank line: %s", p);
        ck_assert_msg(strncmp(p, "event: ", 7) == 0, "not an event: %.40s", p);
        const char *nl = strchr(p, '\n');
        names[n] = strncmp(p + 7, "step\n", 5) == 0    ? "step"
                   : strncmp(p + 7, "done\n", 5) == 0  ? "done"
                   : strncmp(p + 7, "error\n", 6) == 0 ? "error"
                                                       : "?";
        ck_assert_msg(strncmp(nl + 1, "data: ", 6) == 0, "no data line: %.40s", nl + 1);
        json_error_t je;
        data[n] = json_loadb(nl + 7, (size_t)(end - nl - 7), 0, &je);
        ck_assert_msg(data[n] != NULL, "event %zu data: %s", n, je.text);
        n++;
        p = end + 2;
    }
    return n;
}

/* The stream: one step event per generated step with every sequence's id, then done with the
 * states and the whole answer, equal to the plain answer; asked by "stream" or by Accept. */
START_TEST(http_stream_tokens)
{
    server v = serve(1);
    const char *body =
        "{\"tokens\": [[35, 58, 52], [69]], \"steps\": 12, \"seed\": 5, \"top_k\": 8}";
    httpc_resp plain, sse;
    json_t *want = post(&v, "char-lstm", body, NULL, 200, &plain);
    const char *const accept[] = {"Accept: text/event-stream", NULL};
    ck_assert_ptr_null(post(&v, "char-lstm", body, accept, 200, &sse));
    char val[128];
    ck_assert_str_eq(httpc_header(&sse, "Content-Type", val, sizeof val), "text/event-stream");
    ck_assert_str_eq(httpc_header(&sse, "Cache-Control", val, sizeof val), "no-cache");
    const char *names[32];
    json_t *data[32];
    size_t n = parse_sse(sse.body, names, data, 32);
    ck_assert_int_eq(n, 13);
    json_t *wt = json_object_get(want, "tokens");
    for (size_t s = 0; s < 12; s++) {
        ck_assert_str_eq(names[s], "step");
        ck_assert_int_eq(json_integer_value(json_object_get(data[s], "step")), (json_int_t)s);
        json_t *ids = json_object_get(data[s], "tokens");
        ck_assert_int_eq(json_array_size(ids), 2);
        for (size_t b = 0; b < 2; b++)
            ck_assert_int_eq(json_integer_value(json_array_get(ids, b)),
                             json_integer_value(json_array_get(json_array_get(wt, b), s)));
    }
    ck_assert_str_eq(names[12], "done");
    ck_assert_msg(json_equal(data[12], want), "the done event is not the plain answer");
    for (size_t i = 0; i < n; i++)
        json_decref(data[i]);
    httpc_resp_free(&sse);
    /* "stream": true in the body does the same */
    char sbody[256];
    snprintf(sbody, sizeof sbody, "%.*s, \"stream\": true}", (int)strlen(body) - 1, body);
    ck_assert_ptr_null(post(&v, "char-lstm", sbody, NULL, 200, &sse));
    n = parse_sse(sse.body, names, data, 32);
    ck_assert_int_eq(n, 13);
    ck_assert_msg(json_equal(data[12], want), "stream: true: the done event differs");
    for (size_t i = 0; i < n; i++)
        json_decref(data[i]);
    httpc_resp_free(&sse);
    json_decref(want);
    httpc_resp_free(&plain);
    unserve(&v);
}
END_TEST

/* A forecast over HTTP: the fixture's rollout, plain and streamed (rows per sequence). */
START_TEST(http_forecast)
{
    server v = serve(1);
    json_t *fx = fixture("generate/forecast.json");
    json_t *req = json_pack("{s:[O],s:i}", "inputs", json_object_get(fx, "prompt"), "steps", 100);
    char *body = json_dumps(req, JSON_COMPACT);
    httpc_resp r;
    json_t *j = post(&v, "forecast", body, NULL, 200, &r);
    json_t *got = json_array_get(json_object_get(j, "forecast"), 0);
    json_t *want = json_object_get(fx, "forecast");
    ck_assert_int_eq(json_array_size(got), 100);
    for (size_t s = 0; s < 100; s++)
        for (size_t k = 0; k < 2; k++)
            ck_assert_float_eq_tol(json_number_value(json_array_get(json_array_get(got, s), k)),
                                   json_number_value(json_array_get(json_array_get(want, s), k)),
                                   1e-4);
    httpc_resp_free(&r);
    json_decref(j);
    const char *const accept[] = {"Accept: text/event-stream", NULL};
    ck_assert_ptr_null(post(&v, "forecast", body, accept, 200, &r));
    const char *names[128];
    json_t *data[128];
    size_t n = parse_sse(r.body, names, data, 128);
    ck_assert_int_eq(n, 101);
    json_t *row = json_array_get(json_object_get(data[99], "forecast"), 0);
    ck_assert_int_eq(json_array_size(row), 2);
    ck_assert_float_eq_tol(json_number_value(json_array_get(row, 1)),
                           json_number_value(json_array_get(json_array_get(want, 99), 1)), 1e-4);
    for (size_t i = 0; i < n; i++)
        json_decref(data[i]);
    httpc_resp_free(&r);
    free(body);
    json_decref(req);
    json_decref(fx);
    unserve(&v);
}
END_TEST

/* What is refused, with a 400 saying why (and a 404 for a model that does not exist). */
START_TEST(http_errors)
{
    server v = serve(1);
    static const struct {
        const char *model, *body, *says;
        long status;
    } cases[] = {
        {"char-lstm", "{\"tokens\": [[1]]}", "steps: missing", 400},
        {"char-lstm", "{\"tokens\": [[1]], \"steps\": 0}", "steps: expected an integer", 400},
        {"char-lstm", "{\"tokens\": [[1]], \"steps\": 2.5}", "steps: expected an integer", 400},
        {"char-lstm", "{\"tokens\": [[1]], \"steps\": 1e9}", "max_steps", 400},
        {"char-lstm", "{\"tokens\": [[1]], \"steps\": 3, \"temperature\": -1}", "temperature", 400},
        {"char-lstm", "{\"tokens\": [[1]], \"steps\": 3, \"top_k\": -2}", "top_k", 400},
        {"char-lstm", "{\"tokens\": [[1]], \"steps\": 3, \"seed\": 1.5}", "seed", 400},
        {"char-lstm", "{\"tokens\": [[1]], \"steps\": 3, \"seed\": 18446744073709551616}", "seed",
         400},
        {"char-lstm", "{\"tokens\": [[1]], \"steps\": 3, \"stream\": 1}", "stream", 400},
        {"char-lstm", "{\"tokens\": [[1]], \"steps\": 3, \"return\": [\"outputs\"]}",
         "not a generate field", 400},
        {"char-lstm", "{\"tokens\": [[1]], \"steps\": 3, \"nope\": 1}", "unknown field", 400},
        {"char-lstm", "{\"tokens\": [[1], []], \"steps\": 3}", "tokens[1]: an empty prompt", 400},
        {"char-lstm", "{\"tokens\": [[99]], \"steps\": 3}", "tokens[0][0]", 400},
        {"char-lstm", "{\"inputs\": [[[1]]], \"steps\": 3}", "token ids", 400},
        {"sine-next", "{\"inputs\": [[[1]]], \"steps\": 3}", "cannot forecast", 400},
        {"nope", "{\"inputs\": [[[1]]], \"steps\": 3}", "not found", 404},
        {"char-lstm", NULL, "50 sequences x 90000 steps x 1 values is over", 413},
    };
    char big[512] = "{\"steps\": 90000, \"tokens\": [[1]"; /* 50 prompts */
    for (int i = 1; i < 50; i++)
        strcat(big, ",[1]");
    strcat(big, "]}");
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        httpc_resp r;
        json_t *j = post(&v, cases[i].model, cases[i].body ? cases[i].body : big, NULL,
                         cases[i].status, &r);
        ck_assert_msg(j != NULL, "case %zu: not JSON: %s", i, r.body);
        const char *msg =
            json_string_value(json_object_get(json_object_get(j, "error"), "message"));
        ck_assert_msg(msg && strstr(msg, cases[i].says), "case %zu: %s", i, r.body);
        json_decref(j);
        httpc_resp_free(&r);
    }
    /* an empty prompt with h0 continues from that state */
    char body[8192];
    int k = snprintf(body, sizeof body, "{\"tokens\": [[]], \"steps\": 2, \"h0\": [[");
    for (int row = 0; row < 2; row++) {
        k += snprintf(body + k, sizeof body - (size_t)k, "%s[", row ? "," : "");
        for (int u = 0; u < 128; u++)
            k += snprintf(body + k, sizeof body - (size_t)k, "%s0.1", u ? "," : "");
        k += snprintf(body + k, sizeof body - (size_t)k, "]");
    }
    snprintf(body + k, sizeof body - (size_t)k, "]]}");
    httpc_resp r;
    json_t *j = post(&v, "char-lstm", body, NULL, 200, &r);
    ck_assert_int_eq(json_array_size(json_array_get(json_object_get(j, "tokens"), 0)), 2);
    json_decref(j);
    httpc_resp_free(&r);
    unserve(&v);
}
END_TEST

/* A raw connection that sends REQ: the socket. */
static int raw_post(int port, const char *path, const char *body)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char head[512];
    int n = snprintf(head, sizeof head,
                     "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     path, strlen(body));
    ck_assert_int_eq(write(fd, head, (size_t)n), n);
    ck_assert_int_eq(write(fd, body, strlen(body)), (ssize_t)strlen(body));
    return fd;
}

/* A client that leaves mid-stream stops its generation: with one compute thread, the next
 * request is answered long before the abandoned one's 100,000 steps could have run. The bound is
 * measured in the same run (500 steps, times 25: an eighth of what 100,000 would take), so a slow
 * build or a loaded machine stretches both sides; it is never below 0.5 s x slack. */
START_TEST(http_stream_client_leaves)
{
    server v = serve(1);
    httpc_resp r;
    double t0 = tu_now_s();
    json_decref(post(&v, "char-lstm", "{\"tokens\": [[35]], \"steps\": 500}", NULL, 200, &r));
    httpc_resp_free(&r);
    double bound = 25 * (tu_now_s() - t0);
    if (bound < 0.5 * tu_slack(3, 10))
        bound = 0.5 * tu_slack(3, 10);
    int fd = raw_post(v.port, "/v1/models/char-lstm/generate",
                      "{\"tokens\": [[35]], \"steps\": 100000, \"stream\": true}");
    char got[4096];
    size_t have = 0;
    while (have < sizeof got - 1) {
        ssize_t n = read(fd, got + have, sizeof got - 1 - have);
        ck_assert_msg(n > 0, "the stream ended before its first event");
        have += (size_t)n;
        got[have] = '\0';
        if (strstr(got, "event: step"))
            break;
    }
    close(fd);
    t0 = tu_now_s();
    json_t *j = post(&v, "char-lstm", "{\"tokens\": [[35]], \"steps\": 5}", NULL, 200, &r);
    double secs = tu_now_s() - t0;
    ck_assert_msg(secs < bound, "the next request waited %.2f s (bound %.2f s)", secs, bound);
    json_decref(j);
    httpc_resp_free(&r);
    unserve(&v);
}
END_TEST

/* Reads FD until it holds NEEDLE or ends; what came, malloc'ed. */
static char *read_until(int fd, const char *needle)
{
    size_t cap = 1 << 16, have = 0;
    char *got = malloc(cap);
    got[0] = '\0';
    while (!strstr(got, needle)) {
        if (have + 4096 + 1 > cap)
            got = realloc(got, cap *= 2);
        ssize_t n = read(fd, got + have, 4096);
        if (n <= 0)
            break;
        have += (size_t)n;
        got[have] = '\0';
    }
    return got;
}

/* Shutdown's abort stops a running generation: its stream ends with an error event carrying
 * the v1 error body (503), after the step events already sent. */
START_TEST(http_stream_error_event)
{
    server v = serve(1);
    int fd = raw_post(v.port, "/v1/models/char-lstm/generate",
                      "{\"tokens\": [[35]], \"steps\": 100000, \"stream\": true}");
    free(read_until(fd, "event: step"));
    srv_drain(v.s);
    srv_abort(v.s);
    char *rest = read_until(fd, "event: error\ndata: {\"error\":{\"status\":503");
    ck_assert_msg(strstr(rest, "event: error\ndata: {\"error\":{\"status\":503") != NULL,
                  "no error event: ...%s", strlen(rest) > 300 ? rest + strlen(rest) - 300 : rest);
    ck_assert_msg(strstr(rest, "event: done") == NULL, "a done event after the abort");
    free(rest);
    close(fd);
    unserve(&v);
}
END_TEST

/* Sampling with a seed is the same in another process (a fork computing it from scratch). */
START_TEST(sampling_same_across_processes)
{
    rnn_gen_params p = {.steps = 40, .temperature = 0.8, .top_k = 0, .seed = 1234567890123ULL};
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        loaded l = load(CHAR_LSTM);
        int32_t *t = run_tokens(l.m, &p, NULL);
        ssize_t w = write(fds[1], t, 2 * 40 * sizeof(int32_t));
        free(t);
        unload(&l);
        _exit(w == (ssize_t)(2 * 40 * sizeof(int32_t)) ? 0 : 1);
    }
    close(fds[1]);
    int32_t child[80];
    size_t have = 0;
    while (have < sizeof child) {
        ssize_t n = read(fds[0], (char *)child + have, sizeof child - have);
        ck_assert_msg(n > 0, "the child wrote %zu bytes", have);
        have += (size_t)n;
    }
    close(fds[0]);
    int st;
    waitpid(pid, &st, 0);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed");
    loaded l = load(CHAR_LSTM);
    int32_t *mine = run_tokens(l.m, &p, NULL);
    ck_assert_mem_eq(mine, child, sizeof child);
    free(mine);
    unload(&l);
}
END_TEST

Suite *generate_suite(void);
Suite *generate_suite(void)
{
    Suite *s = suite_create("generate");
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, greedy_matches_pytorch);
    tcase_add_test(tc, forecast_matches_pytorch);
    tcase_add_test(tc, sampling_reproducible);
    tcase_add_test(tc, sampler_rules);
    tcase_add_test(tc, states_continue);
    tcase_add_test(tc, stop_between_steps);
    tcase_add_test(tc, sampling_same_across_processes);
    suite_add_tcase(s, tc);
    TCase *th = tcase_create("http");
    tcase_set_timeout(th, 120);
    tcase_add_test(th, http_plain_tokens);
    tcase_add_test(th, http_states_continue);
    tcase_add_test(th, http_stream_tokens);
    tcase_add_test(th, http_forecast);
    tcase_add_test(th, http_errors);
    tcase_add_test(th, http_stream_error_event);
    suite_add_tcase(s, th);
    /* Needs a generation running while its client leaves: valgrind runs the test's threads one
     * at a time and can starve libmicrohttpd's (seen: the abandoned stream ran all its 50,000
     * steps, 338 s), so `make valgrind` leaves it out (CK_EXCLUDE_TAGS=timing); it runs plain
     * and under ASan. */
    TCase *tt = tcase_create("timing");
    tcase_set_timeout(tt, 120);
    tcase_set_tags(tt, "timing");
    tcase_add_test(tt, http_stream_client_leaves);
    suite_add_tcase(s, tt);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(generate_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
