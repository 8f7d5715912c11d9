/* test_embed.c - token models (issue 16, items 1 and 2): the config's "embedding" checked at load,
 * "tokens" decoded with errors at their JSON path on v1 and v2, a token request run bit for bit as
 * the same request sent as the embedded floats, "only_last" rows equal to the full answer's last
 * rows (the head's too), metadata showing the vocabulary, and the PyTorch token fixtures
 * (tests/fixtures/tokens/, made by tests/fixtures/gen.py). */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rnnserve/api.h"
#include "rnnserve/buf.h"
#include "rnnserve/config.h"
#include "rnnserve/embed.h"
#include "rnnserve/engine.h"
#include "testutil.h"

static const api_limits LIM = {1024, 100000};

#define GRU "tests/fixtures/tokens/embed_gru_bidir" /* V 7, gru 4 -> 3 bidir, sigmoid head 2 */
#define LSTM "tests/fixtures/tokens/embed_lstm"     /* V 11, lstm 3 -> 5 x2, softmax head 11 */

typedef struct {
    cfg_config *cfg;
    rnn_model *m;
} loaded;

static loaded load_file(const char *config)
{
    loaded l;
    char err[1024];
    ck_assert_msg(cfg_load_file(config, &l.cfg, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(rnn_model_load(&l.cfg->models[0], &l.m, err, sizeof err) == 0, "%s", err);
    return l;
}

static loaded load_case(const char *dir)
{
    char path[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    return load_file(path);
}

/* The config of DIR's model with its "embedding" key replaced by EMBEDDING (a JSON value, or
 * NULL: none), as a string: for loading the same weights as a float model or a broken one. */
static int load_variant(const char *dir, const char *embedding, loaded *l, char *err, size_t len)
{
    char path[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *j = json_load_file(path, 0, NULL);
    ck_assert_ptr_nonnull(j);
    json_t *m = json_array_get(json_object_get(j, "models"), 0);
    if (embedding)
        json_object_set_new(m, "embedding", json_loads(embedding, JSON_DECODE_ANY, NULL));
    else
        json_object_del(m, "embedding");
    char *text = json_dumps(j, 0);
    json_decref(j);
    l->m = NULL;
    int rc = cfg_load_buffer(text, strlen(text), dir, &l->cfg, err, len);
    free(text);
    if (rc < 0) {
        l->cfg = NULL;
        return -1;
    }
    rc = rnn_model_load(&l->cfg->models[0], &l->m, err, len);
    if (rc < 0) {
        cfg_free(l->cfg);
        l->cfg = NULL;
    }
    return rc;
}

static void unload(loaded *l)
{
    rnn_model_free(l->m);
    cfg_free(l->cfg);
}

static const char *message_of(const char *body, size_t len)
{
    static char msg[1024];
    json_t *j = json_loadb(body, len, 0, NULL);
    ck_assert_msg(j != NULL, "not JSON: %.*s", (int)len, body);
    json_t *e = json_object_get(j, "error");
    snprintf(msg, sizeof msg, "%s",
             json_is_string(e) ? json_string_value(e)
                               : json_string_value(json_object_get(e, "message")));
    json_decref(j);
    return msg;
}

/* BODY through api_forward: the status, the body in *out (malloc'ed) */
static int run(const api_wire *w, const rnn_model *m, const char *body, char **out, size_t *len)
{
    const int st = api_forward(w, m, body, strlen(body), &LIM, out, len, NULL);
    ck_assert_ptr_nonnull(*out);
    return st;
}

static json_t *run_json(const api_wire *w, const rnn_model *m, const char *body)
{
    char *out;
    size_t len;
    const int st = run(w, m, body, &out, &len);
    ck_assert_msg(st == 200, "%d: %.*s for %s", st, (int)len, out, body);
    json_t *j = json_loadb(out, len, 0, NULL);
    ck_assert_ptr_nonnull(j);
    free(out);
    return j;
}

/* The status and message BODY gets. */
static void expect_error(const api_wire *w, const rnn_model *m, const char *body, int status,
                         const char *message)
{
    char *out;
    size_t len;
    const int st = run(w, m, body, &out, &len);
    ck_assert_msg(st == status, "%s: status %d, want %d (%.*s)", body, st, status, (int)len, out);
    ck_assert_msg(strcmp(message_of(out, len), message) == 0, "%s:\n  got  %s\n  want %s", body,
                  message_of(out, len), message);
    free(out);
}

/* ---- the config */

START_TEST(test_bad_embedding_is_refused_at_load_naming_file_and_key)
{
    const struct {
        const char *value;
        const char *message; /* a part of it */
    } cases[] = {
        {"\"nope.weight\"", "model.safetensors: embedding \"nope.weight\" is not in the weights"},
        /* fc.weight is [2, 6]: 2-D, but 6 wide where input_size is 4 */
        {"\"fc.weight\"",
         "model.safetensors: embedding \"fc.weight\" must be [num_embeddings, 4] "
         "(num_embeddings 1 to 16777216, embedding_dim == input_size), got [2, 6]"},
        /* fc.bias is 1-D */
        {"\"fc.bias\"", "embedding \"fc.bias\" must be [num_embeddings, 4] (num_embeddings 1 to "
                        "16777216, embedding_dim == input_size), got [2]"},
        {"\"\"", "models[0].embedding: empty tensor name"},
        {"3", "models[0].embedding: expected a string, got"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        loaded l;
        char err[1024] = "";
        ck_assert_msg(load_variant(GRU, cases[i].value, &l, err, sizeof err) < 0,
                      "embedding %s loaded", cases[i].value);
        ck_assert_msg(strstr(err, cases[i].message) != NULL, "embedding %s:\n  got  %s\n  want %s",
                      cases[i].value, err, cases[i].message);
    }
}
END_TEST

/* Inline weights: a non-finite value is named with the tensor and index, and a 2-D tensor of the
 * wrong width by its shape. */
START_TEST(test_inline_embedding_is_checked_like_any_tensor)
{
    const char *fmt =
        "{\"models\": [{\"name\": \"t\", \"type\": \"rnn\", \"input_size\": 2, \"hidden_size\": 1, "
        "\"bias\": false, \"embedding\": \"emb.weight\", \"weights\": {\"weight_ih_l0\": [[0.5, "
        "-0.5]], \"weight_hh_l0\": [[0.25]], \"emb.weight\": %s}}]}";
    const struct {
        const char *emb, *message;
    } cases[] = {
        {"[[1, 2, 3], [4, 5, 6]]", "inline weights: embedding \"emb.weight\" must be "
                                   "[num_embeddings, 2] (num_embeddings 1 to 16777216, "
                                   "embedding_dim == input_size), got [2, 3]"},
        {"[1, 2]", "got [2]"},
        {"[[1, 2], [3, 4], [5, 6]]", NULL}, /* fits: 3 tokens */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[1024], err[1024] = "";
        snprintf(text, sizeof text, fmt, cases[i].emb);
        cfg_config *cfg;
        rnn_model *m = NULL;
        ck_assert_msg(cfg_load_buffer(text, strlen(text), ".", &cfg, err, sizeof err) == 0, "%s",
                      err);
        const int rc = rnn_model_load(&cfg->models[0], &m, err, sizeof err);
        if (cases[i].message) {
            ck_assert_msg(rc < 0, "%s loaded", cases[i].emb);
            ck_assert_msg(strstr(err, cases[i].message) != NULL, "got %s\nwant %s", err,
                          cases[i].message);
        } else {
            ck_assert_msg(rc == 0, "%s", err);
            ck_assert_int_eq(rnn_model_info(m)->vocab_size, 3);
            ck_assert_uint_eq(rnn_model_info(m)->parameters, 2 + 1 + 6);
            const float *row = rnn_embed_row(m, 2);
            ck_assert(row && row[0] == 5.0f && row[1] == 6.0f);
            ck_assert_ptr_null(rnn_embed_row(m, 3));
            ck_assert_ptr_null(rnn_embed_row(m, -1));
        }
        rnn_model_free(m);
        cfg_free(cfg);
    }
}
END_TEST

/* A safetensors file of an rnn 2 -> 1 without bias and an embedding "emb" [2, 2] holding EMB:
 * its path (malloc'ed; the caller unlinks and frees it). */
static char *write_model(const float emb[4])
{
    const char *hdr =
        "{\"weight_ih_l0\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0,8]},"
        "\"weight_hh_l0\":{\"dtype\":\"F32\",\"shape\":[1,1],\"data_offsets\":[8,12]},"
        "\"emb\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[12,28]}}";
    const size_t hl = strlen(hdr);
    unsigned char file[512];
    for (int k = 0; k < 8; k++)
        file[k] = (unsigned char)((uint64_t)hl >> (8 * k));
    memcpy(file + 8, hdr, hl);
    const float w[3] = {0.5f, -0.5f, 0.25f};
    memcpy(file + 8 + hl, w, sizeof w);
    memcpy(file + 8 + hl + sizeof w, emb, 4 * sizeof *emb);
    return tu_write_tmp(".safetensors", file, 8 + hl + sizeof w + 4 * sizeof *emb);
}

START_TEST(test_non_finite_embedding_is_named_by_file_key_and_index)
{
    const float bad[4] = {1, 2, 3, NAN}, good[4] = {1, 2, 3, 4};
    const float *embs[2] = {bad, good};
    for (int k = 0; k < 2; k++) {
        char *path = write_model(embs[k]);
        ck_assert_ptr_nonnull(path);
        char text[1024], err[1024] = "";
        snprintf(text, sizeof text,
                 "{\"models\": [{\"name\": \"t\", \"type\": \"rnn\", \"input_size\": 2, "
                 "\"hidden_size\": 1, \"bias\": false, \"embedding\": \"emb\", \"weights\": "
                 "\"%s\"}]}",
                 path);
        cfg_config *cfg;
        rnn_model *m = NULL;
        ck_assert_msg(cfg_load_buffer(text, strlen(text), ".", &cfg, err, sizeof err) == 0, "%s",
                      err);
        const int rc = rnn_model_load(&cfg->models[0], &m, err, sizeof err);
        if (k == 0) {
            char want[512];
            snprintf(want, sizeof want,
                     "%s: embedding \"emb\" holds a non-finite value (nan) at index 3", path);
            ck_assert_msg(rc < 0 && strcmp(err, want) == 0, "got %s\nwant %s", err, want);
        } else {
            ck_assert_msg(rc == 0, "%s", err);
            ck_assert_int_eq(rnn_model_info(m)->vocab_size, 2);
            ck_assert(rnn_embed_row(m, 1)[1] == 4.0f);
        }
        rnn_model_free(m);
        cfg_free(cfg);
        unlink(path);
        free(path);
    }
}
END_TEST

/* ---- decoding */

START_TEST(test_token_errors_name_their_json_path)
{
    loaded l = load_case(GRU);
    const api_wire *v1 = api_wire_v1();
    const struct {
        const char *body, *message;
    } cases[] = {
        {"{\"tokens\": [[0, 1], [2, 1.5]]}",
         "tokens[1][1]: 1.5 is not a token id (an integer in [0, 7))"},
        {"{\"tokens\": [[0, 1, 2, 3, 4, \"a\"]]}",
         "tokens[0][5]: expected an integer token id in [0, 7), got a string"},
        {"{\"tokens\": [[0], [1], [2, 3, 4, 5, 6, 1e400]]}",
         "tokens[2][5]: 1e400 is not a token id (an integer in [0, 7))"},
        {"{\"tokens\": [[-1]]}", "tokens[0][0]: -1 is not a token id (an integer in [0, 7))"},
        {"{\"tokens\": [[6, 7]]}", "tokens[0][1]: 7 is not a token id (an integer in [0, 7))"},
        {"{\"tokens\": [[0, [1]]]}",
         "tokens[0][1]: expected an integer token id in [0, 7), got an array"},
        {"{\"tokens\": [0]}", "tokens[0]: expected an array of token ids, got a number"},
        {"{\"tokens\": []}", "tokens: expected at least one sequence, got an empty array"},
        {"{\"inputs\": [[[1, 2, 3, 4]]]}",
         "inputs: this model takes token ids (an embedding of 7 tokens): send \"tokens\": [[id, "
         "...], ...] instead"},
        {"{\"tokens\": [[1]], \"inputs\": [[[1, 2, 3, 4]]]}",
         "tokens, inputs: send one of them, not both (this model takes \"tokens\")"},
        {"{}", "tokens: missing (expected an array of sequences of token ids in [0, 7))"},
        {"{\"tokens\": [[1]], \"h0\": [[[0, 0, 0], [0, 0, 0]], []]}",
         "h0: expected 1 entries (one per sequence in tokens), got 2"},
        {"{\"tokens\": [[1]], \"only_last\": \"yes\"}",
         "only_last: expected true or false, got a string"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_error(v1, l.m, cases[i].body, 400, cases[i].message);
    /* 7.0 is 7 as an integer; 3.0 an id like 3 */
    json_t *a = run_json(v1, l.m, "{\"tokens\": [[3.0, 0]], \"return\": [\"hidden\"]}");
    json_t *b = run_json(v1, l.m, "{\"tokens\": [[3, 0]], \"return\": [\"hidden\"]}");
    ck_assert(json_equal(a, b));
    json_decref(a);
    json_decref(b);
    const api_limits small = {2, 3};
    char *out;
    size_t len;
    const char *over = "{\"tokens\": [[1, 2, 3, 4]]}";
    ck_assert_int_eq(api_forward(v1, l.m, over, strlen(over), &small, &out, &len, NULL), 413);
    ck_assert_str_eq(message_of(out, len), "tokens[0]: 4 steps exceed max_steps 3");
    free(out);
    unload(&l);

    /* a float model told of tokens */
    loaded f;
    char err[1024];
    ck_assert_msg(load_variant(GRU, NULL, &f, err, sizeof err) == 0, "%s", err);
    expect_error(v1, f.m, "{\"tokens\": [[1]]}", 400,
                 "tokens: this model has no embedding: send \"inputs\" (4 numbers per step) "
                 "instead");
    expect_error(api_wire_v2(), f.m,
                 "{\"inputs\": [{\"name\": \"tokens\", \"datatype\": \"INT64\", \"shape\": [1, 1], "
                 "\"data\": [1]}]}",
                 400, "inputs[0]: unknown input \"tokens\" (this model takes input, lengths, h0)");
    unload(&f);
}
END_TEST

START_TEST(test_v2_token_errors_name_their_path)
{
    loaded l = load_case(GRU);
    const api_wire *v2 = api_wire_v2();
    const struct {
        const char *body, *message;
    } cases[] = {
        {"{\"inputs\": [{\"name\": \"tokens\", \"datatype\": \"FP32\", \"shape\": [1, 2], "
         "\"data\": [1, 2]}]}",
         "inputs[tokens].datatype: \"FP32\" is not accepted (expected INT64 or INT32)"},
        {"{\"inputs\": [{\"name\": \"tokens\", \"datatype\": \"INT64\", \"shape\": [2, 2], "
         "\"data\": [1, 2, 3, 7]}]}",
         "inputs[tokens].data[3]: 7 is not a token id (an integer in [0, 7))"},
        {"{\"inputs\": [{\"name\": \"tokens\", \"datatype\": \"INT64\", \"shape\": [1, 2], "
         "\"data\": [1, -1]}]}",
         "inputs[tokens].data[1]: -1 is not a token id (an integer in [0, 7))"},
        {"{\"inputs\": [{\"name\": \"tokens\", \"datatype\": \"INT64\", \"shape\": [1, 2], "
         "\"data\": [1, 1e400]}]}",
         "inputs[tokens].data[1]: 1e400 is not a token id (an integer in [0, 7))"},
        {"{\"inputs\": [{\"name\": \"tokens\", \"datatype\": \"INT64\", \"shape\": [1, 2], "
         "\"data\": [1, 2.5]}]}",
         "inputs[tokens].data[1]: expected an integer, got 2.5"},
        {"{\"inputs\": [{\"name\": \"tokens\", \"datatype\": \"INT64\", \"shape\": [1, 2, 1], "
         "\"data\": [1, 2]}]}",
         "inputs[tokens].shape: expected 2 dimensions"},
        {"{\"inputs\": [{\"name\": \"input\", \"datatype\": \"FP32\", \"shape\": [1, 1, 4], "
         "\"data\": [1, 2, 3, 4]}]}",
         "inputs[0]: this model takes token ids (an embedding of 7 tokens): send \"tokens\" "
         "(INT64 [batch, max_len]) instead of \"input\""},
        {"{\"inputs\": [{\"name\": \"lengths\", \"datatype\": \"INT64\", \"shape\": [1], "
         "\"data\": [1]}]}",
         "inputs: the tensor \"tokens\" [batch, max_len] (INT64 ids in [0, 7)) is required"},
        {"{\"inputs\": [{\"name\": \"tokens\", \"datatype\": \"INT64\", \"shape\": [1, 1], "
         "\"data\": [1]}], \"parameters\": {\"only_last\": 1}}",
         "parameters.only_last: expected true or false"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_error(v2, l.m, cases[i].body, 400, cases[i].message);
    /* past a sequence's length the ids are padding: never looked at, even out of range */
    json_t *j = run_json(v2, l.m,
                         "{\"inputs\": [{\"name\": \"tokens\", \"datatype\": \"INT64\", \"shape\": "
                         "[2, 2], \"data\": [1, 2, 3, 99]}, {\"name\": \"lengths\", \"datatype\": "
                         "\"INT64\", \"shape\": [2], \"data\": [2, 1]}]}");
    json_decref(j);
    unload(&l);
}
END_TEST

/* ---- tokens == the embedded floats */

/* The v1 body sending SEQS's ids (NUL-separated rows of ids, -1 ending each) as "tokens", or as
 * the embedding's rows printed exactly ("inputs"). */
static char *body_of(const rnn_model *m, const int (*seqs)[8], size_t n, int floats,
                     const char *extra)
{
    buf b = BUF_INIT;
    const int I = rnn_model_info(m)->input_size;
    buf_puts(&b, floats ? "{\"inputs\": [" : "{\"tokens\": [");
    for (size_t i = 0; i < n; i++) {
        buf_puts(&b, i ? ", [" : "[");
        for (int t = 0; seqs[i][t] >= 0; t++) {
            if (t)
                buf_puts(&b, ", ");
            if (!floats) {
                buf_printf(&b, "%d", seqs[i][t]);
                continue;
            }
            const float *row = rnn_embed_row(m, seqs[i][t]);
            ck_assert_ptr_nonnull(row);
            buf_putc(&b, '[');
            for (int k = 0; k < I; k++)
                buf_printf(&b, "%s%.9g", k ? ", " : "", (double)row[k]);
            buf_putc(&b, ']');
        }
        buf_putc(&b, ']');
    }
    buf_printf(&b, "]%s}", extra);
    size_t len;
    return buf_take(&b, &len);
}

static const int SEQS[][8] = {{0, 6, 2, 2, 5, -1}, {-1}, {3, -1}, {1, 4, 0, -1}};
#define NSEQ (sizeof SEQS / sizeof SEQS[0])

START_TEST(test_tokens_run_bit_for_bit_as_the_embedded_floats)
{
    loaded tok = load_case(GRU), flt;
    char err[1024];
    ck_assert_msg(load_variant(GRU, NULL, &flt, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(rnn_model_info(tok.m)->vocab_size, 7);
    ck_assert_int_eq(rnn_model_info(flt.m)->vocab_size, 0);
    /* the token model's embedding becomes part of its parameters */
    ck_assert_uint_eq(rnn_model_info(tok.m)->parameters, rnn_model_info(flt.m)->parameters + 7 * 4);
    const char *extras[] = {"", ", \"only_last\": true", ", \"layout\": \"padded\""};
    for (size_t e = 0; e < sizeof extras / sizeof extras[0]; e++) {
        char *tb = body_of(tok.m, SEQS, NSEQ, 0, extras[e]);
        char *fb = body_of(tok.m, SEQS, NSEQ, 1, extras[e]);
        char *a, *b;
        size_t alen, blen;
        ck_assert_int_eq(run(api_wire_v1(), tok.m, tb, &a, &alen), 200);
        ck_assert_int_eq(run(api_wire_v1(), flt.m, fb, &b, &blen), 200);
        ck_assert_msg(alen == blen && memcmp(a, b, alen) == 0, "tokens %.*s\nfloats %.*s",
                      (int)alen, a, (int)blen, b);
        free(a);
        free(b);
        free(tb);
        free(fb);
    }

    /* the engine sees exactly the embedding's rows in the batch's x */
    char *tb = body_of(tok.m, SEQS, NSEQ, 0, "");
    api_call *c;
    char *eb;
    size_t elen;
    ck_assert_int_eq(api_decode(api_wire_v1(), tok.m, tb, strlen(tb), &LIM, &c, &eb, &elen), 200);
    const rnn_batch *bt = api_call_batch(c);
    ck_assert_uint_eq(bt->batch, NSEQ);
    size_t row = 0;
    for (size_t i = 0; i < NSEQ; i++)
        for (int t = 0; SEQS[i][t] >= 0; t++, row++)
            ck_assert(
                memcmp(bt->x + row * 4, rnn_embed_row(tok.m, SEQS[i][t]), 4 * sizeof(float)) == 0);
    ck_assert_uint_eq(row, 9);
    api_call_free(c);
    free(tb);

    /* v2: INT64 and INT32 tokens, and the floats as FP32 input, give the same bytes */
    const char *v2_tokens =
        "{\"inputs\": [{\"name\": \"tokens\", \"datatype\": \"%s\", \"shape\": [2, 3], \"data\": "
        "[[5, 1, 0], [2, 0, 0]]}, {\"name\": \"lengths\", \"datatype\": \"INT64\", \"shape\": [2], "
        "\"data\": [3, 1]}]%s}";
    buf fl = BUF_INIT;
    const int ids[2][3] = {{5, 1, 0}, {2, 0, 0}};
    buf_puts(&fl, "{\"inputs\": [{\"name\": \"input\", \"datatype\": \"FP32\", \"shape\": [2, 3, "
                  "4], \"data\": [");
    for (int i = 0; i < 2; i++)
        for (int t = 0; t < 3; t++)
            for (int k = 0; k < 4; k++)
                buf_printf(&fl, "%s%.9g", i + t + k ? ", " : "",
                           (double)rnn_embed_row(tok.m, ids[i][t])[k]);
    buf_puts(&fl, "]}, {\"name\": \"lengths\", \"datatype\": \"INT64\", \"shape\": [2], \"data\": "
                  "[3, 1]}]}");
    char *want;
    size_t want_len;
    ck_assert_int_eq(run(api_wire_v2(), flt.m, fl.data, &want, &want_len), 200);
    const char *types[] = {"INT64", "INT32"};
    for (int k = 0; k < 2; k++) {
        char body[1024], *got;
        size_t got_len;
        snprintf(body, sizeof body, v2_tokens, types[k], "");
        ck_assert_int_eq(run(api_wire_v2(), tok.m, body, &got, &got_len), 200);
        ck_assert_msg(got_len == want_len && memcmp(got, want, want_len) == 0,
                      "%s tokens %.*s\nfloats %.*s", types[k], (int)got_len, got, (int)want_len,
                      want);
        free(got);
    }
    free(want);
    buf_free(&fl);
    unload(&tok);
    unload(&flt);
}
END_TEST

/* ---- only_last */

/* FULL's per-step part NAME (ragged: per sequence, its rows) against LAST's (a row per sequence,
 * null for an empty one): every row the same number for number. */
static void expect_last_rows(json_t *full, json_t *last, const char *name)
{
    json_t *f = json_object_get(full, name), *l = json_object_get(last, name);
    ck_assert_msg(json_is_array(f) && json_is_array(l), "%s missing", name);
    ck_assert_uint_eq(json_array_size(f), json_array_size(l));
    for (size_t i = 0; i < json_array_size(f); i++) {
        json_t *rows = json_array_get(f, i), *row = json_array_get(l, i);
        const size_t T = json_array_size(rows);
        if (T == 0) {
            ck_assert_msg(json_is_null(row), "%s[%zu]: an empty sequence gets null", name, i);
            continue;
        }
        ck_assert_msg(json_equal(json_array_get(rows, T - 1), row),
                      "%s[%zu]: only_last's row is not the last row of the full answer", name, i);
    }
}

START_TEST(test_only_last_rows_are_the_last_rows_of_the_full_answer)
{
    const char *cases[] = {GRU, LSTM};
    for (size_t k = 0; k < 2; k++) {
        loaded l = load_case(cases[k]);
        char *full_body =
            body_of(l.m, SEQS, NSEQ, 0, ", \"return\": [\"outputs\", \"predictions\"]");
        char *last_body = body_of(
            l.m, SEQS, NSEQ, 0,
            ", \"return\": [\"outputs\", \"hidden\", \"predictions\"], \"only_last\": true");
        json_t *full = run_json(api_wire_v1(), l.m, full_body);
        json_t *last = run_json(api_wire_v1(), l.m, last_body);
        expect_last_rows(full, last, "outputs");
        expect_last_rows(full, last, "predictions");
        ck_assert_uint_eq(json_array_size(json_object_get(last, "hidden")), NSEQ);
        json_decref(full);
        json_decref(last);

        /* only predictions asked: the head still runs on the last rows */
        free(last_body);
        last_body =
            body_of(l.m, SEQS, NSEQ, 0, ", \"return\": [\"predictions\"], \"only_last\": true");
        full = run_json(api_wire_v1(), l.m, full_body);
        last = run_json(api_wire_v1(), l.m, last_body);
        expect_last_rows(full, last, "predictions");
        ck_assert_ptr_null(json_object_get(last, "outputs"));
        json_decref(full);
        json_decref(last);

        /* the head's cost is counted on one row per sequence */
        api_call *c;
        char *eb;
        size_t elen;
        ck_assert_int_eq(
            api_decode(api_wire_v1(), l.m, full_body, strlen(full_body), &LIM, &c, &eb, &elen),
            200);
        const double f_full = api_call_flops(c);
        const size_t bytes_full = api_call_response_bytes(c);
        api_call_free(c);
        ck_assert_int_eq(
            api_decode(api_wire_v1(), l.m, last_body, strlen(last_body), &LIM, &c, &eb, &elen),
            200);
        const rnn_info *in = rnn_model_info(l.m);
        const double head_row = 2.0 * in->num_directions * in->hidden_size * in->head_size;
        ck_assert_msg(fabs(f_full - api_call_flops(c) - head_row * (9 - NSEQ)) < 1e-6 * f_full,
                      "flops %g vs %g", f_full, api_call_flops(c));
        ck_assert_uint_lt(api_call_response_bytes(c), bytes_full);
        char *out;
        size_t len;
        char msg[256];
        ck_assert_int_eq(rnn_forward(l.m, api_call_batch(c), api_call_result(c), msg, sizeof msg),
                         0);
        ck_assert_int_eq(api_finish(c, &out, &len, NULL), 200);
        ck_assert_uint_le(len, api_call_response_bytes(c));
        free(out);
        api_call_free(c);
        free(full_body);
        free(last_body);
        unload(&l);
    }
}
END_TEST

/* v2's only_last: output [B, D*H] and predictions [B, O], the rows of the padded full answer at
 * each length - 1, zeros for an empty sequence. */
START_TEST(test_v2_only_last_is_one_row_per_sequence)
{
    loaded l = load_case(GRU);
    const char *fmt =
        "{\"inputs\": [{\"name\": \"tokens\", \"datatype\": \"INT32\", \"shape\": [3, "
        "3], \"data\": [5, 1, 0, 2, 0, 0, 4, 4, 4]}, {\"name\": \"lengths\", "
        "\"datatype\": \"INT64\", \"shape\": [3], \"data\": [3, 1, 0]}], \"outputs\": "
        "[{\"name\": \"output\"}, {\"name\": \"predictions\"}]%s}";
    char body[1024];
    snprintf(body, sizeof body, fmt, "");
    json_t *full = run_json(api_wire_v2(), l.m, body);
    snprintf(body, sizeof body, fmt, ", \"parameters\": {\"only_last\": true}");
    json_t *last = run_json(api_wire_v2(), l.m, body);
    const int lengths[3] = {3, 1, 0};
    for (size_t p = 0; p < 2; p++) {
        json_t *ft = json_array_get(json_object_get(full, "outputs"), p);
        json_t *lt = json_array_get(json_object_get(last, "outputs"), p);
        const size_t w = p ? 2 : 6;
        ck_assert_str_eq(json_string_value(json_object_get(lt, "name")),
                         p ? "predictions" : "output");
        json_t *shape = json_object_get(lt, "shape");
        ck_assert_uint_eq(json_array_size(shape), 2);
        ck_assert_int_eq(json_integer_value(json_array_get(shape, 0)), 3);
        ck_assert_int_eq(json_integer_value(json_array_get(shape, 1)), (json_int_t)w);
        json_t *fd = json_object_get(ft, "data"), *ld = json_object_get(lt, "data");
        ck_assert_uint_eq(json_array_size(ld), 3 * w);
        for (size_t i = 0; i < 3; i++)
            for (size_t k = 0; k < w; k++) {
                json_t *v = json_array_get(ld, i * w + k);
                if (lengths[i] == 0)
                    ck_assert(json_number_value(v) == 0);
                else
                    ck_assert(json_equal(
                        v, json_array_get(fd, (i * 3 + (size_t)lengths[i] - 1) * w + k)));
            }
    }
    json_decref(full);
    json_decref(last);
    unload(&l);
}
END_TEST

/* ---- against PyTorch */

static void expect_close(json_t *got, json_t *want, const char *where)
{
    if (json_is_array(want)) {
        ck_assert_msg(json_is_array(got) && json_array_size(got) == json_array_size(want),
                      "%s: shape differs", where);
        for (size_t i = 0; i < json_array_size(want); i++)
            expect_close(json_array_get(got, i), json_array_get(want, i), where);
    } else if (json_is_null(want)) {
        ck_assert_msg(json_is_null(got), "%s: expected null", where);
    } else {
        const double d = fabs(json_number_value(got) - json_number_value(want));
        ck_assert_msg(json_is_number(got) && d <= 1e-5, "%s: %g vs PyTorch %g", where,
                      json_number_value(got), json_number_value(want));
    }
}

START_TEST(test_token_fixtures_match_pytorch)
{
    const char *cases[] = {GRU, LSTM};
    for (size_t k = 0; k < 2; k++) {
        loaded l = load_case(cases[k]);
        char path[256];
        snprintf(path, sizeof path, "%s/request.json", cases[k]);
        char *req = tu_read_file(path, NULL);
        ck_assert_ptr_nonnull(req);
        json_t *jr = json_loads(req, 0, NULL);
        const int lstm = rnn_model_info(l.m)->type == RNN_CELL_LSTM;
        json_object_set_new(
            jr, "return",
            json_pack(lstm ? "[ssss]" : "[sss]", "outputs", "hidden", "predictions", "cell"));
        char *body = json_dumps(jr, 0);
        json_t *got = run_json(api_wire_v1(), l.m, body);
        snprintf(path, sizeof path, "%s/expected.json", cases[k]);
        json_t *want = json_load_file(path, 0, NULL);
        ck_assert_ptr_nonnull(want);
        const char *parts[] = {"outputs", "hidden", "predictions", "cell"};
        for (int p = 0; p < 3 + lstm; p++)
            expect_close(json_object_get(got, parts[p]), json_object_get(want, parts[p]), parts[p]);
        json_decref(got);
        json_decref(want);
        free(body);

        json_object_set_new(jr, "only_last", json_true());
        json_object_set_new(jr, "return", json_pack("[ss]", "outputs", "predictions"));
        body = json_dumps(jr, 0);
        got = run_json(api_wire_v1(), l.m, body);
        snprintf(path, sizeof path, "%s/expected_last.json", cases[k]);
        want = json_load_file(path, 0, NULL);
        ck_assert_ptr_nonnull(want);
        expect_close(json_object_get(got, "outputs"), json_object_get(want, "outputs"),
                     "only_last outputs");
        expect_close(json_object_get(got, "predictions"), json_object_get(want, "predictions"),
                     "only_last predictions");
        json_decref(got);
        json_decref(want);
        json_decref(jr);
        free(body);
        free(req);
        unload(&l);
    }
}
END_TEST

/* ---- metadata */

START_TEST(test_metadata_shows_the_vocabulary)
{
    loaded tok = load_case(LSTM), flt;
    char err[1024];
    ck_assert_msg(load_variant(LSTM, NULL, &flt, err, sizeof err) == 0, "%s", err);
    size_t len;
    char *v1 = api_model_metadata(api_wire_v1(), rnn_model_info(tok.m), 1, &len);
    json_t *j = json_loadb(v1, len, 0, NULL);
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_object_get(j, "embedding"), "num_embeddings")), 11);
    json_decref(j);
    free(v1);
    v1 = api_model_metadata(api_wire_v1(), rnn_model_info(flt.m), 1, &len);
    j = json_loadb(v1, len, 0, NULL);
    ck_assert(json_is_null(json_object_get(j, "embedding")));
    json_decref(j);
    free(v1);

    char *v2 = api_model_metadata(api_wire_v2(), rnn_model_info(tok.m), 1, &len);
    j = json_loadb(v2, len, 0, NULL);
    ck_assert_msg(j != NULL, "%.*s", (int)len, v2);
    json_t *in0 = json_array_get(json_object_get(j, "inputs"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(in0, "name")), "tokens");
    ck_assert_str_eq(json_string_value(json_object_get(in0, "datatype")), "INT64");
    json_t *shape = json_object_get(in0, "shape");
    ck_assert_uint_eq(json_array_size(shape), 2);
    ck_assert_int_eq(json_integer_value(json_array_get(shape, 0)), -1);
    ck_assert_int_eq(json_integer_value(json_array_get(shape, 1)), -1);
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_object_get(j, "embedding"), "num_embeddings")), 11);
    json_decref(j);
    free(v2);
    v2 = api_model_metadata(api_wire_v2(), rnn_model_info(flt.m), 1, &len);
    j = json_loadb(v2, len, 0, NULL);
    in0 = json_array_get(json_object_get(j, "inputs"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(in0, "name")), "input");
    ck_assert_ptr_null(json_object_get(j, "embedding"));
    json_decref(j);
    free(v2);

    char summary[256];
    rnn_info_summary(rnn_model_info(tok.m), summary, sizeof summary);
    ck_assert_msg(strstr(summary, ", embedding of 11 tokens") != NULL, "%s", summary);
    unload(&tok);
    unload(&flt);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("embed");
    TCase *tc = tcase_create("embed");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_bad_embedding_is_refused_at_load_naming_file_and_key);
    tcase_add_test(tc, test_inline_embedding_is_checked_like_any_tensor);
    tcase_add_test(tc, test_non_finite_embedding_is_named_by_file_key_and_index);
    tcase_add_test(tc, test_token_errors_name_their_json_path);
    tcase_add_test(tc, test_v2_token_errors_name_their_path);
    tcase_add_test(tc, test_tokens_run_bit_for_bit_as_the_embedded_floats);
    tcase_add_test(tc, test_only_last_rows_are_the_last_rows_of_the_full_answer);
    tcase_add_test(tc, test_v2_only_last_is_one_row_per_sequence);
    tcase_add_test(tc, test_token_fixtures_match_pytorch);
    tcase_add_test(tc, test_metadata_shows_the_vocabulary);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
