/* test_config.c - Check suites for src/config.c (every config error names the file and the key;
 * defaults; weight paths) and src/model.c (rnn_model_load against PyTorch's state_dict names and
 * shapes). Configs are written to temporary files and safetensors weights are built here, in C,
 * at test time, so nothing needs Python. */
#include "rnnserve/config.h"
#include "rnnserve/model.h"
#include "rnnserve/safetensors.h"
#include "testutil.h"

#include <check.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ERRLEN 1024

/* ---- helpers: configs ---------------------------------------------------------------------- */

/* TEXT with every ' turned into " (JSON in C strings reads better that way). New string. */
static char *dq(const char *text)
{
    char *s = strdup(text);
    ck_assert_ptr_nonnull(s);
    for (char *p = s; *p; p++)
        if (*p == '\'')
            *p = '"';
    return s;
}

/* A new empty temporary folder (the caller rmdir()s and free()s it). */
static char *tmpdir_new(void)
{
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    size_t n = strlen(base) + 32;
    char *dir = malloc(n);
    ck_assert_ptr_nonnull(dir);
    snprintf(dir, n, "%s/rnnserve-cfg-XXXXXX", base);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    return dir;
}

/* DIR/NAME as a new string. */
static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    ck_assert_ptr_nonnull(s);
    snprintf(s, n, "%s/%s", dir, name);
    return s;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(text, 1, strlen(text), f), strlen(text));
    ck_assert_int_eq(fclose(f), 0);
}

/* Writes TEXT (JSON with ' for ") to a new temporary config file and loads it with
 * cfg_load_file. The file is removed again; *path, when PATH is not NULL, receives its name
 * (the caller frees it). */
static int load_text(const char *text, cfg_config **cfg, char *err, char **path)
{
    char *json = dq(text);
    char *p = tu_write_tmp(".json", json, strlen(json));
    ck_assert_ptr_nonnull(p);
    err[0] = '\0';
    int rc = cfg_load_file(p, cfg, err, ERRLEN);
    unlink(p);
    free(json);
    if (path)
        *path = p;
    else
        free(p);
    return rc;
}

/* Asserts that TEXT fails to load, leaving *out NULL, with one line that starts with the file's
 * name and holds every NEEDLE (a NULL-terminated list). */
static void expect_error(const char *text, ...)
{
    char err[ERRLEN], *path;
    cfg_config *cfg = (cfg_config *)&cfg; /* not NULL, to see cfg_load_file clear it */
    int rc = load_text(text, &cfg, err, &path);
    ck_assert_msg(rc == -1, "config loaded but should not have: %s", text);
    ck_assert_ptr_null(cfg);
    ck_assert_msg(strncmp(err, path, strlen(path)) == 0, "message does not name the file %s: %s",
                  path, err);
    ck_assert_msg(!strchr(err, '\n'), "message is not one line: %s", err);
    va_list ap;
    va_start(ap, text);
    for (const char *needle; (needle = va_arg(ap, const char *));)
        ck_assert_msg(strstr(err, needle), "message lacks \"%s\": %s", needle, err);
    va_end(ap);
    free(path);
}

/* The model entry every config test starts from: the required keys with small valid values. */
static const char *const BASE_KEYS[] = {"name", "type", "input_size", "hidden_size", "weights"};
static const char *const BASE_VALUES[] = {"'m'", "'rnn'", "1", "1", "'w.safetensors'"};

/* A one-model config in which model key KEY is set to the JSON VALUE: replaced when it is one of
 * BASE_KEYS, added otherwise, and left out when VALUE is NULL. SERVER, when not NULL, is the JSON
 * of the "server" object. Returns a static buffer. */
static const char *one_model(const char *server, const char *key, const char *value)
{
    static char buf[4096];
    size_t n = 0;
    int replaced = 0;
    n += (size_t)snprintf(buf + n, sizeof buf - n, "{");
    if (server)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "'server': %s, ", server);
    n += (size_t)snprintf(buf + n, sizeof buf - n, "'models': [{");
    const char *sep = "";
    for (size_t i = 0; i < sizeof BASE_KEYS / sizeof BASE_KEYS[0]; i++) {
        const char *v = BASE_VALUES[i];
        if (key && strcmp(key, BASE_KEYS[i]) == 0) {
            replaced = 1;
            if (!value)
                continue;
            v = value;
        }
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s'%s': %s", sep, BASE_KEYS[i], v);
        sep = ", ";
    }
    if (key && !replaced && value)
        n += (size_t)snprintf(buf + n, sizeof buf - n, ", '%s': %s", key, value);
    snprintf(buf + n, sizeof buf - n, "}]}");
    return buf;
}

/* ---- config: what loads ---------------------------------------------------------------------- */

START_TEST(test_minimal_config_gets_pytorch_and_server_defaults)
{
    char err[ERRLEN], *path;
    cfg_config *cfg = NULL;
    ck_assert_msg(load_text(one_model(NULL, NULL, NULL), &cfg, err, &path) == 0, "%s", err);
    ck_assert_str_eq(cfg->path, path);
    ck_assert_uint_eq(cfg->n_models, 1);
    const cfg_model *m = &cfg->models[0];
    ck_assert_str_eq(m->name, "m");
    ck_assert_int_eq(m->type, RNN_CELL_RNN);
    ck_assert_int_eq(m->input_size, 1);
    ck_assert_int_eq(m->hidden_size, 1);
    ck_assert_int_eq(m->num_layers, 1);
    ck_assert_int_eq(m->nonlinearity, RNN_TANH);
    ck_assert(m->bias);
    ck_assert(!m->bidirectional);
    ck_assert_str_eq(m->prefix, "");
    ck_assert_ptr_nonnull(m->weights_path);
    ck_assert_ptr_null(m->tensors);
    ck_assert_uint_eq(m->n_tensors, 0);

    const cfg_server *s = &cfg->server;
    ck_assert_str_eq(s->host, CFG_DEFAULT_HOST);
    ck_assert_int_eq(s->port, CFG_DEFAULT_PORT);
    ck_assert_int_eq(s->threads, 0);
    ck_assert_uint_eq(s->max_body_bytes, CFG_DEFAULT_MAX_BODY_BYTES);
    ck_assert_int_eq(s->max_batch, CFG_DEFAULT_MAX_BATCH);
    ck_assert_int_eq(s->max_steps, CFG_DEFAULT_MAX_STEPS);
    ck_assert_int_eq(s->timeout_s, CFG_DEFAULT_TIMEOUT_S);
    ck_assert_int_eq(s->max_connections, CFG_DEFAULT_MAX_CONNECTIONS);
    ck_assert_int_eq(s->batch_delay_us, 0);
    ck_assert_int_eq(s->max_pass_sequences, CFG_DEFAULT_MAX_PASS_SEQUENCES);
    ck_assert_int_eq(s->max_pass_ms, CFG_DEFAULT_MAX_PASS_MS);
    ck_assert_int_eq(s->max_queue_ms, CFG_DEFAULT_MAX_QUEUE_MS);
    ck_assert_int_eq(s->queue_timeout_ms, CFG_DEFAULT_QUEUE_TIMEOUT_MS);
    ck_assert_int_eq(s->max_sessions, CFG_DEFAULT_MAX_SESSIONS);
    ck_assert_int_eq(s->session_ttl_s, CFG_DEFAULT_SESSION_TTL_S);
    ck_assert_uint_eq(s->n_cors_origins, 1);
    ck_assert_str_eq(s->cors_origins[0], "*");
    ck_assert(s->playground);
    ck_assert_ptr_eq(cfg_find_model(cfg, "m"), m);
    ck_assert_ptr_null(cfg_find_model(cfg, "n"));
    cfg_free(cfg);
    free(path);
}
END_TEST

START_TEST(test_defaults_match_the_spec)
{
    /* spec/API.md's config example states these values. */
    ck_assert_str_eq(CFG_DEFAULT_HOST, "0.0.0.0");
    ck_assert_int_eq(CFG_DEFAULT_PORT, 8080);
    ck_assert_uint_eq(CFG_DEFAULT_MAX_BODY_BYTES, 16777216u);
    ck_assert_int_eq(CFG_DEFAULT_MAX_BATCH, 1024);
    ck_assert_int_eq(CFG_DEFAULT_MAX_STEPS, 100000);
    ck_assert_int_eq(CFG_DEFAULT_TIMEOUT_S, 30);
    ck_assert_int_eq(CFG_DEFAULT_MAX_CONNECTIONS, 1024);
}
END_TEST

START_TEST(test_every_server_setting_is_read)
{
    char err[ERRLEN];
    cfg_config *cfg = NULL;
    const char *srv = "{'host': '127.0.0.1', 'port': 0, 'threads': 3, 'max_body_bytes': 1000, "
                      "'max_batch': 7, 'max_steps': 9, 'timeout_s': 5, 'max_connections': 11, "
                      "'batch_delay_us': 250, 'max_pass_sequences': 32, 'max_pass_ms': 40, "
                      "'max_queue_ms': 900, 'queue_timeout_ms': 1500, "
                      "'max_sessions': 12, 'session_ttl_s': 45, "
                      "'cors_origins': ['https://a.example', 'https://b.example'], "
                      "'playground': false}";
    ck_assert_msg(load_text(one_model(srv, NULL, NULL), &cfg, err, NULL) == 0, "%s", err);
    const cfg_server *s = &cfg->server;
    ck_assert_str_eq(s->host, "127.0.0.1");
    ck_assert_int_eq(s->port, 0);
    ck_assert_int_eq(s->threads, 3);
    ck_assert_uint_eq(s->max_body_bytes, 1000);
    ck_assert_int_eq(s->max_batch, 7);
    ck_assert_int_eq(s->max_steps, 9);
    ck_assert_int_eq(s->timeout_s, 5);
    ck_assert_int_eq(s->max_connections, 11);
    ck_assert_int_eq(s->batch_delay_us, 250);
    ck_assert_int_eq(s->max_pass_sequences, 32);
    ck_assert_int_eq(s->max_pass_ms, 40);
    ck_assert_int_eq(s->max_queue_ms, 900);
    ck_assert_int_eq(s->queue_timeout_ms, 1500);
    ck_assert_int_eq(s->max_sessions, 12);
    ck_assert_int_eq(s->session_ttl_s, 45);
    ck_assert_uint_eq(s->n_cors_origins, 2);
    ck_assert_str_eq(s->cors_origins[0], "https://a.example");
    ck_assert_str_eq(s->cors_origins[1], "https://b.example");
    ck_assert(!s->playground);
    cfg_free(cfg);
}
END_TEST

START_TEST(test_empty_cors_list_allows_no_origin)
{
    char err[ERRLEN];
    cfg_config *cfg = NULL;
    ck_assert_msg(load_text(one_model("{'cors_origins': []}", NULL, NULL), &cfg, err, NULL) == 0,
                  "%s", err);
    ck_assert_uint_eq(cfg->server.n_cors_origins, 0);
    cfg_free(cfg);
}
END_TEST

START_TEST(test_every_model_setting_is_read)
{
    char err[ERRLEN];
    cfg_config *cfg = NULL;
    const char *text =
        "{'models': ["
        "{'name': 'a-b_c.1', 'type': 'rnn', 'input_size': 3, 'hidden_size': 5, 'num_layers': 2,"
        " 'nonlinearity': 'relu', 'bias': false, 'bidirectional': true, 'prefix': 'rnn.',"
        " 'weights': 'a.safetensors'},"
        "{'name': 'l', 'type': 'lstm', 'input_size': 65536, 'hidden_size': 65536,"
        " 'num_layers': 64, 'weights': 'l.safetensors'},"
        "{'name': 'g', 'type': 'gru', 'input_size': 1, 'hidden_size': 1, 'weights': {}}]}";
    ck_assert_msg(load_text(text, &cfg, err, NULL) == 0, "%s", err);
    ck_assert_uint_eq(cfg->n_models, 3);
    const cfg_model *a = &cfg->models[0], *l = &cfg->models[1], *g = &cfg->models[2];
    ck_assert_str_eq(a->name, "a-b_c.1");
    ck_assert_int_eq(a->type, RNN_CELL_RNN);
    ck_assert_int_eq(a->input_size, 3);
    ck_assert_int_eq(a->hidden_size, 5);
    ck_assert_int_eq(a->num_layers, 2);
    ck_assert_int_eq(a->nonlinearity, RNN_RELU);
    ck_assert(!a->bias);
    ck_assert(a->bidirectional);
    ck_assert_str_eq(a->prefix, "rnn.");
    ck_assert_int_eq(l->type, RNN_CELL_LSTM);
    ck_assert_int_eq(l->input_size, 65536);
    ck_assert_int_eq(l->num_layers, 64);
    ck_assert_int_eq(g->type, RNN_CELL_GRU);
    ck_assert_ptr_null(g->weights_path);
    ck_assert_uint_eq(g->n_tensors, 0);
    ck_assert_ptr_eq(cfg_find_model(cfg, "g"), g);
    ck_assert_str_eq(rnn_cell_describe(RNN_CELL_RNN)->name, "rnn");
    ck_assert_str_eq(rnn_cell_describe(RNN_CELL_LSTM)->name, "lstm");
    ck_assert_str_eq(rnn_cell_describe(RNN_CELL_GRU)->name, "gru");
    ck_assert_str_eq(rnn_nonlinearity_name(RNN_TANH), "tanh");
    ck_assert_str_eq(rnn_nonlinearity_name(RNN_RELU), "relu");
    cfg_free(cfg);
}
END_TEST

START_TEST(test_inline_weights_become_float32_tensors)
{
    char err[ERRLEN];
    cfg_config *cfg = NULL;
    const char *w = "{'weight_ih_l0': [[1, -2.5], [3e-3, 4]], 'bias_ih_l0': [0.5, -0.25],"
                    " 'empty': [], 'big': [3.4028235e38, -3.40282347e38]}";
    ck_assert_msg(load_text(one_model(NULL, "weights", w), &cfg, err, NULL) == 0, "%s", err);
    const cfg_model *m = &cfg->models[0];
    ck_assert_ptr_null(m->weights_path);
    ck_assert_uint_eq(m->n_tensors, 4);
    const cfg_tensor *t = NULL, *b = NULL, *e = NULL, *big = NULL;
    for (size_t i = 0; i < m->n_tensors; i++) {
        if (strcmp(m->tensors[i].name, "weight_ih_l0") == 0)
            t = &m->tensors[i];
        else if (strcmp(m->tensors[i].name, "bias_ih_l0") == 0)
            b = &m->tensors[i];
        else if (strcmp(m->tensors[i].name, "empty") == 0)
            e = &m->tensors[i];
        else if (strcmp(m->tensors[i].name, "big") == 0)
            big = &m->tensors[i];
    }
    ck_assert_ptr_nonnull(t);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(t->ndim, 2);
    ck_assert_int_eq(t->shape[0], 2);
    ck_assert_int_eq(t->shape[1], 2);
    ck_assert_uint_eq(t->numel, 4);
    ck_assert(t->data[0] == 1.0f && t->data[1] == -2.5f && t->data[2] == 3e-3f &&
              t->data[3] == 4.0f);
    ck_assert_int_eq(b->ndim, 1);
    ck_assert_int_eq(b->shape[0], 2);
    ck_assert_uint_eq(b->numel, 2);
    ck_assert(b->data[0] == 0.5f && b->data[1] == -0.25f);
    ck_assert_int_eq(e->ndim, 1);
    ck_assert_uint_eq(e->numel, 0);
    /* the shortest decimals of +-FLT_MAX lie just above it, but still round to it */
    ck_assert_ptr_nonnull(big);
    ck_assert(big->data[0] == FLT_MAX && big->data[1] == -FLT_MAX);
    cfg_free(cfg);
}
END_TEST

START_TEST(test_weights_path_resolves_against_the_config_folder)
{
    char err[ERRLEN];
    char *dir = tmpdir_new();
    char *cfg_path = join(dir, "c.json");
    char *want_plain = join(dir, "w.safetensors");
    char *want_sub = join(dir, "sub/w.safetensors");
    const char *cases[][2] = {
        {"'w.safetensors'", want_plain},
        {"'sub/w.safetensors'", want_sub},
        {"'/abs/w.safetensors'", "/abs/w.safetensors"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *json = dq(one_model(NULL, "weights", cases[i][0]));
        write_file(cfg_path, json);
        free(json);
        cfg_config *cfg = NULL;
        ck_assert_msg(cfg_load_file(cfg_path, &cfg, err, sizeof err) == 0, "%s", err);
        ck_assert_str_eq(cfg->models[0].weights_path, cases[i][1]);
        cfg_free(cfg);
    }
    unlink(cfg_path);
    rmdir(dir);
    free(want_sub);
    free(want_plain);
    free(cfg_path);
    free(dir);
}
END_TEST

START_TEST(test_weights_path_resolves_against_a_relative_config_folder)
{
    char err[ERRLEN] = "", err2[ERRLEN] = "", cwd[PATH_MAX];
    char *dir = tmpdir_new();
    char *sub = join(dir, "sub");
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    char *json = dq(one_model(NULL, NULL, NULL));
    char *top_cfg = join(dir, "c.json"), *sub_cfg = join(sub, "c.json");
    write_file(top_cfg, json);
    write_file(sub_cfg, json);
    free(json);

    /* Loaded by relative names from DIR; the old folder is restored before any assertion. */
    cfg_config *top = NULL, *nested = NULL;
    ck_assert_int_eq(chdir(dir), 0);
    int rc_top = cfg_load_file("c.json", &top, err, sizeof err);
    int rc_sub = cfg_load_file("sub/c.json", &nested, err2, sizeof err2);
    ck_assert_int_eq(chdir(cwd), 0);

    ck_assert_msg(rc_top == 0, "%s", err);
    ck_assert_msg(rc_sub == 0, "%s", err2);
    ck_assert_str_eq(top->models[0].weights_path, "w.safetensors");
    ck_assert_str_eq(nested->models[0].weights_path, "sub/w.safetensors");
    cfg_free(top);
    cfg_free(nested);
    unlink(top_cfg);
    unlink(sub_cfg);
    rmdir(sub);
    rmdir(dir);
    free(top_cfg);
    free(sub_cfg);
    free(sub);
    free(dir);
}
END_TEST

START_TEST(test_buffer_config_resolves_against_base_dir_and_names_itself)
{
    char err[ERRLEN];
    char *json = dq(one_model(NULL, NULL, NULL));
    cfg_config *cfg = NULL;
    ck_assert_msg(cfg_load_buffer(json, strlen(json), "some/dir", &cfg, err, sizeof err) == 0, "%s",
                  err);
    ck_assert_str_eq(cfg->models[0].weights_path, "some/dir/w.safetensors");
    cfg_free(cfg);
    ck_assert_msg(cfg_load_buffer(json, strlen(json), NULL, &cfg, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(cfg->models[0].weights_path, "w.safetensors");
    cfg_free(cfg);
    free(json);

    cfg = (cfg_config *)&cfg;
    ck_assert_int_eq(cfg_load_buffer("[]", 2, NULL, &cfg, err, sizeof err), -1);
    ck_assert_ptr_null(cfg);
    ck_assert_msg(strstr(err, "<config>"), "message does not name the buffer: %s", err);
}
END_TEST

/* ---- config: what is rejected, by name ----------------------------------------------------- */

START_TEST(test_missing_config_file_is_named)
{
    char err[ERRLEN];
    cfg_config *cfg = (cfg_config *)&cfg;
    const char *path = "/nonexistent-rnnserve/config.json";
    ck_assert_int_eq(cfg_load_file(path, &cfg, err, sizeof err), -1);
    ck_assert_ptr_null(cfg);
    ck_assert_msg(strstr(err, path) == err, "message does not name the file: %s", err);
    ck_assert_msg(strstr(err, "cannot open"), "%s", err);
}
END_TEST

/* A device or a FIFO as the config fails at once, saying what it is (a reload of a config that
 * became a FIFO takes the same path): no endless read of /dev/zero, no wait for a writer. */
START_TEST(test_a_device_or_fifo_config_fails_at_once)
{
    char err[ERRLEN], fifo[256];
    cfg_config *cfg = (cfg_config *)&cfg;
    double t0 = tu_now_s();
    ck_assert_int_eq(cfg_load_file("/dev/zero", &cfg, err, sizeof err), -1);
    ck_assert_ptr_null(cfg);
    ck_assert_msg(strstr(err, "/dev/zero: cannot open config: not a regular file (a character "
                              "device)") == err,
                  "%s", err);
    snprintf(fifo, sizeof fifo, "%s/rnnserve-config-fifo-%d.json",
             getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    unlink(fifo);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    int rc = cfg_load_file(fifo, &cfg, err, sizeof err);
    unlink(fifo);
    ck_assert_int_eq(rc, -1);
    ck_assert_msg(strstr(err, fifo) == err && strstr(err, "not a regular file (a FIFO)"), "%s",
                  err);
    ck_assert_double_lt(tu_now_s() - t0, 1.0);
}
END_TEST

START_TEST(test_invalid_json_names_line_and_column)
{
    expect_error("{\n  'models': [\n    {'name': }\n  ]\n}", "invalid JSON", "line 3, column ",
                 NULL);
    expect_error("", "invalid JSON", NULL);
    expect_error("{'models': [", "invalid JSON", NULL);
}
END_TEST

START_TEST(test_duplicate_keys_are_rejected)
{
    expect_error("{'models': [{'name': 'a', 'name': 'b', 'type': 'rnn', 'input_size': 1,"
                 " 'hidden_size': 1, 'weights': 'w'}]}",
                 "duplicate", "name", NULL);
}
END_TEST

START_TEST(test_top_level_must_be_an_object)
{
    expect_error("[]", "expected a JSON object", "an array", NULL);
    expect_error("[{'models': []}]", "expected a JSON object", NULL);
}
END_TEST

START_TEST(test_unknown_top_level_key_is_named)
{
    expect_error("{'modles': []}", "\"modles\"", "unknown key", NULL);
    expect_error("{'server': {}, 'models': [], 'extra': 1}", "\"extra\"", "unknown key", NULL);
}
END_TEST

START_TEST(test_unknown_server_key_is_named)
{
    expect_error(one_model("{'port': 80, 'prot': 81}", NULL, NULL), "server.", "\"prot\"",
                 "unknown key", NULL);
}
END_TEST

START_TEST(test_unknown_model_key_is_named)
{
    expect_error(one_model(NULL, "hiden_size", "4"), "models[0].", "\"hiden_size\"", "unknown key",
                 NULL);
    expect_error(one_model(NULL, "proj_size", "2"), "models[0].", "\"proj_size\"", "unknown key",
                 NULL);
}
END_TEST

START_TEST(test_typo_in_second_model_names_its_index)
{
    expect_error("{'models': [{'name': 'a', 'type': 'rnn', 'input_size': 1, 'hidden_size': 1,"
                 " 'weights': 'w'}, {'name': 'b', 'type': 'rnn', 'input_size': 1,"
                 " 'hidden_size': 1, 'weights': 'w', 'bidirectinal': true}]}",
                 "models[1].", "\"bidirectinal\"", NULL);
}
END_TEST

static const char *const REQUIRED[] = {"name", "type", "input_size", "hidden_size", "weights"};

START_TEST(test_missing_required_key_is_named)
{
    char want[64];
    snprintf(want, sizeof want, "models[0].%s: missing", REQUIRED[_i]);
    expect_error(one_model(NULL, REQUIRED[_i], NULL), want, NULL);
}
END_TEST

START_TEST(test_missing_or_empty_models_list_is_rejected)
{
    expect_error("{}", "models", "missing", NULL);
    expect_error("{'server': {}}", "models", "missing", NULL);
    expect_error("{'models': []}", "models", "empty", NULL);
    expect_error("{'models': {}}", "models", "an object", NULL);
    expect_error("{'models': 'm'}", "models", "a string", NULL);
}
END_TEST

/* A value of the wrong JSON type: WHERE is "server" or "model", KEY gets VALUE, and the message
 * must hold PATH and WORD. */
typedef struct {
    const char *where, *key, *value, *path, *word;
} bad_value;

static const bad_value WRONG_TYPES[] = {
    {"model", "name", "5", "models[0].name", "string"},
    {"model", "type", "['rnn']", "models[0].type", "string"},
    {"model", "input_size", "'3'", "models[0].input_size", "integer"},
    {"model", "hidden_size", "2.5", "models[0].hidden_size", "integer"},
    {"model", "hidden_size", "null", "models[0].hidden_size", "integer"},
    {"model", "num_layers", "true", "models[0].num_layers", "integer"},
    {"model", "bias", "'yes'", "models[0].bias", "true or false"},
    {"model", "bias", "1", "models[0].bias", "true or false"},
    {"model", "bidirectional", "0", "models[0].bidirectional", "true or false"},
    {"model", "nonlinearity", "1", "models[0].nonlinearity", "tanh"},
    {"model", "prefix", "3", "models[0].prefix", "string"},
    {"server", "host", "1", "server.host", "string"},
    {"server", "port", "'8080'", "server.port", "integer"},
    {"server", "threads", "1.5", "server.threads", "integer"},
    {"server", "max_body_bytes", "'1M'", "server.max_body_bytes", "integer"},
    {"server", "max_batch", "[]", "server.max_batch", "integer"},
    {"server", "max_steps", "{}", "server.max_steps", "integer"},
    {"server", "timeout_s", "false", "server.timeout_s", "integer"},
    {"server", "max_connections", "1e3", "server.max_connections", "integer"},
    {"server", "queue_timeout_ms", "'5s'", "server.queue_timeout_ms", "integer"},
    {"server", "cors_origins", "'*'", "server.cors_origins", "array"},
    {"server", "playground", "'off'", "server.playground", "true or false"},
    {"server", "playground", "0", "server.playground", "true or false"},
};

static const bad_value OUT_OF_RANGE[] = {
    {"model", "input_size", "0", "models[0].input_size", "out of range"},
    {"model", "input_size", "65537", "models[0].input_size", "out of range"},
    {"model", "hidden_size", "0", "models[0].hidden_size", "out of range"},
    {"model", "hidden_size", "-4", "models[0].hidden_size", "out of range"},
    {"model", "num_layers", "0", "models[0].num_layers", "out of range"},
    {"model", "num_layers", "65", "models[0].num_layers", "out of range"},
    {"server", "port", "70000", "server.port", "out of range"},
    {"server", "port", "-1", "server.port", "out of range"},
    {"server", "threads", "-1", "server.threads", "out of range"},
    {"server", "max_body_bytes", "0", "server.max_body_bytes", "out of range"},
    {"server", "max_batch", "0", "server.max_batch", "out of range"},
    {"server", "max_steps", "0", "server.max_steps", "out of range"},
    {"server", "timeout_s", "0", "server.timeout_s", "out of range"},
    {"server", "max_connections", "0", "server.max_connections", "out of range"},
    {"server", "batch_delay_us", "-1", "server.batch_delay_us", "out of range"},
    {"server", "batch_delay_us", "1000001", "server.batch_delay_us", "out of range"},
    {"server", "max_pass_sequences", "0", "server.max_pass_sequences", "out of range"},
    {"server", "max_pass_ms", "0", "server.max_pass_ms", "out of range"},
    {"server", "max_queue_ms", "0", "server.max_queue_ms", "out of range"},
    {"server", "queue_timeout_ms", "0", "server.queue_timeout_ms", "out of range"},
    {"server", "max_sessions", "0", "server.max_sessions", "out of range"},
    {"server", "max_sessions", "10000001", "server.max_sessions", "out of range"},
    {"server", "session_ttl_s", "0", "server.session_ttl_s", "out of range"},
    {"server", "session_ttl_s", "604801", "server.session_ttl_s", "out of range"},
};

static void expect_bad_value(const bad_value *b)
{
    char srv[256];
    const char *text;
    if (strcmp(b->where, "server") == 0) {
        snprintf(srv, sizeof srv, "{'%s': %s}", b->key, b->value);
        text = one_model(srv, NULL, NULL);
    } else {
        text = one_model(NULL, b->key, b->value);
    }
    expect_error(text, b->path, b->word, NULL);
}

START_TEST(test_wrong_type_is_named_with_its_key)
{
    expect_bad_value(&WRONG_TYPES[_i]);
}
END_TEST

START_TEST(test_out_of_range_integer_is_named_with_its_key)
{
    expect_bad_value(&OUT_OF_RANGE[_i]);
}
END_TEST

START_TEST(test_integer_bounds_are_inclusive)
{
    char err[ERRLEN];
    cfg_config *cfg = NULL;
    ck_assert_msg(
        load_text(one_model("{'port': 65535, 'threads': 0}", NULL, NULL), &cfg, err, NULL) == 0,
        "%s", err);
    ck_assert_int_eq(cfg->server.port, 65535);
    cfg_free(cfg);
    ck_assert_msg(load_text(one_model(NULL, "num_layers", "64"), &cfg, err, NULL) == 0, "%s", err);
    ck_assert_int_eq(cfg->models[0].num_layers, 64);
    cfg_free(cfg);
}
END_TEST

START_TEST(test_server_and_model_entry_must_be_objects)
{
    expect_error(one_model("[]", NULL, NULL), "server", "expected an object", NULL);
    expect_error("{'models': [1]}", "models[0]", "expected an object", NULL);
    expect_error(one_model("{'host': ''}", NULL, NULL), "server.host", "empty", NULL);
}
END_TEST

START_TEST(test_bad_type_string_is_named)
{
    expect_error(one_model(NULL, "type", "'transformer'"), "models[0].type", "transformer", NULL);
    expect_error(one_model(NULL, "type", "''"), "models[0].type", NULL);
}
END_TEST

START_TEST(test_nonlinearity_on_lstm_or_gru_is_rejected)
{
    const char *text = "{'models': [{'name': 'm', 'type': 'lstm', 'input_size': 1,"
                       " 'hidden_size': 1, 'nonlinearity': 'tanh', 'weights': 'w'}]}";
    expect_error(text, "models[0].nonlinearity", "rnn", NULL);
    text = "{'models': [{'name': 'm', 'type': 'gru', 'input_size': 1,"
           " 'hidden_size': 1, 'nonlinearity': 'relu', 'weights': 'w'}]}";
    expect_error(text, "models[0].nonlinearity", NULL);
}
END_TEST

START_TEST(test_bad_nonlinearity_is_named)
{
    expect_error(one_model(NULL, "nonlinearity", "'sigmoid'"), "models[0].nonlinearity", "sigmoid",
                 NULL);
    expect_error(one_model(NULL, "nonlinearity", "'Tanh'"), "models[0].nonlinearity", "Tanh", NULL);
}
END_TEST

START_TEST(test_duplicate_model_names_are_rejected)
{
    expect_error("{'models': [{'name': 'a', 'type': 'rnn', 'input_size': 1, 'hidden_size': 1,"
                 " 'weights': 'w'}, {'name': 'b', 'type': 'rnn', 'input_size': 1,"
                 " 'hidden_size': 1, 'weights': 'w'}, {'name': 'a', 'type': 'gru',"
                 " 'input_size': 1, 'hidden_size': 1, 'weights': 'w'}]}",
                 "models[2].name", "\"a\"", "models[0]", NULL);
}
END_TEST

static const char *const BAD_NAMES[] = {
    "''",           "'a/b'",   "'a b'", "'sine?x'", "'%2e'",
    "'caf\\u00e9'", "'a\\nb'", "'..%'", "'x#y'",    "'a:b'",
};

START_TEST(test_bad_model_name_characters_are_rejected)
{
    expect_error(one_model(NULL, "name", BAD_NAMES[_i]), "models[0].name", NULL);
}
END_TEST

START_TEST(test_model_name_longer_than_128_is_rejected)
{
    char name[140 + 3];
    name[0] = '\'';
    memset(name + 1, 'a', 129);
    strcpy(name + 130, "'");
    expect_error(one_model(NULL, "name", name), "models[0].name", NULL);
    strcpy(name + 129, "'"); /* 128 characters: fine */
    char err[ERRLEN];
    cfg_config *cfg = NULL;
    ck_assert_msg(load_text(one_model(NULL, "name", name), &cfg, err, NULL) == 0, "%s", err);
    ck_assert_uint_eq(strlen(cfg->models[0].name), 128);
    cfg_free(cfg);
}
END_TEST

START_TEST(test_cors_origins_must_be_strings)
{
    expect_error(one_model("{'cors_origins': [1]}", NULL, NULL), "server.cors_origins[0]", "string",
                 NULL);
    expect_error(one_model("{'cors_origins': ['*', null]}", NULL, NULL), "server.cors_origins[1]",
                 "string", NULL);
    expect_error(one_model("{'cors_origins': {'a': 1}}", NULL, NULL), "server.cors_origins",
                 "array", NULL);
}
END_TEST

START_TEST(test_weights_must_be_a_path_or_an_object)
{
    expect_error(one_model(NULL, "weights", "5"), "models[0].weights", "path", NULL);
    expect_error(one_model(NULL, "weights", "['w']"), "models[0].weights", "an array", NULL);
    expect_error(one_model(NULL, "weights", "null"), "models[0].weights", NULL);
    expect_error(one_model(NULL, "weights", "true"), "models[0].weights", NULL);
    expect_error(one_model(NULL, "weights", "''"), "models[0].weights", "empty", NULL);
}
END_TEST

START_TEST(test_bad_inline_weights_are_named_by_tensor_and_index)
{
    expect_error(one_model(NULL, "weights", "{'weight_ih_l0': 'x'}"),
                 "models[0].weights.weight_ih_l0", NULL);
    expect_error(one_model(NULL, "weights", "{'weight_ih_l0': [[1, 2], [3]]}"),
                 "models[0].weights.weight_ih_l0[1]", NULL);
    expect_error(one_model(NULL, "weights", "{'weight_ih_l0': [[1, 'a']]}"),
                 "models[0].weights.weight_ih_l0[0][1]", "number", NULL);
    expect_error(one_model(NULL, "weights", "{'bias_ih_l0': [1, [2]]}"),
                 "models[0].weights.bias_ih_l0[1]", "number", NULL);
    expect_error(one_model(NULL, "weights", "{'weight_ih_l0': [[1], 2]}"),
                 "models[0].weights.weight_ih_l0[1]", NULL);
    expect_error(one_model(NULL, "weights", "{'bias_hh_l0': [1e39]}"),
                 "models[0].weights.bias_hh_l0[0]", "float32", NULL);
    expect_error(one_model(NULL, "weights", "{'bias_hh_l0': [0, -3.4028235677973366e38]}"),
                 "models[0].weights.bias_hh_l0[1]", "float32", NULL);
}
END_TEST

/* ---- helpers: safetensors weights built at test time ---------------------------------------- */

#define MAX_TENSORS 64

typedef struct {
    char name[96];
    int f64; /* 0: F32, 1: F64 */
    int ndim;
    int64_t shape[2];
    size_t numel;
    double *vals;
} tensor;

typedef struct {
    tensor t[MAX_TENSORS];
    size_t n;
} tset;

static int gates_of(rnn_cell_type type)
{
    return type == RNN_CELL_LSTM ? 4 : type == RNN_CELL_GRU ? 3 : 1;
}

/* Adds tensor NAME of shape (d0) or (d0, d1) with small deterministic values; returns it. */
static tensor *tset_add(tset *s, const char *name, int ndim, int64_t d0, int64_t d1)
{
    ck_assert_uint_lt(s->n, MAX_TENSORS);
    tensor *t = &s->t[s->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->numel = (size_t)d0 * (ndim == 2 ? (size_t)d1 : 1);
    t->vals = calloc(t->numel ? t->numel : 1, sizeof *t->vals);
    ck_assert_ptr_nonnull(t->vals);
    for (size_t i = 0; i < t->numel; i++)
        t->vals[i] = 0.25 * sin(0.7 * (double)(i + 1) + (double)s->n);
    return t;
}

static tensor *tset_find(tset *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->t[i].name, name) == 0)
            return &s->t[i];
    return NULL;
}

static void tset_remove(tset *s, const char *name)
{
    tensor *t = tset_find(s, name);
    ck_assert_msg(t != NULL, "no tensor %s to remove", name);
    free(t->vals);
    size_t i = (size_t)(t - s->t);
    memmove(&s->t[i], &s->t[i + 1], (s->n - i - 1) * sizeof *t);
    s->n--;
}

static void tset_free(tset *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->t[i].vals);
    s->n = 0;
}

/* The tensors PyTorch's state_dict holds for this model shape, names under PREFIX. */
static void tset_pytorch(tset *s, const char *prefix, rnn_cell_type type, int I, int H, int L,
                         int bidir, int bias)
{
    const int G = gates_of(type), D = bidir ? 2 : 1;
    char name[96];
    for (int l = 0; l < L; l++)
        for (int d = 0; d < D; d++) {
            const char *sfx = d ? "_reverse" : "";
            int in = l ? D * H : I;
            snprintf(name, sizeof name, "%sweight_ih_l%d%s", prefix, l, sfx);
            tset_add(s, name, 2, G * H, in);
            snprintf(name, sizeof name, "%sweight_hh_l%d%s", prefix, l, sfx);
            tset_add(s, name, 2, G * H, H);
            if (bias) {
                snprintf(name, sizeof name, "%sbias_ih_l%d%s", prefix, l, sfx);
                tset_add(s, name, 1, G * H, 0);
                snprintf(name, sizeof name, "%sbias_hh_l%d%s", prefix, l, sfx);
                tset_add(s, name, 1, G * H, 0);
            }
        }
}

static void put_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Writes S as a safetensors file (header padded to 8 bytes, tensors back to back in order) and
 * returns its path: the caller unlink()s and free()s it. */
static char *tset_write(const tset *s)
{
    size_t cap = 256 + s->n * 256, hl = 0, dl = 0;
    char *hdr = malloc(cap);
    ck_assert_ptr_nonnull(hdr);
    hl += (size_t)snprintf(hdr + hl, cap - hl, "{");
    for (size_t i = 0; i < s->n; i++) {
        const tensor *t = &s->t[i];
        size_t bytes = t->numel * (t->f64 ? 8 : 4);
        hl += (size_t)snprintf(hdr + hl, cap - hl, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[",
                               i ? "," : "", t->name, t->f64 ? "F64" : "F32");
        for (int k = 0; k < t->ndim; k++)
            hl += (size_t)snprintf(hdr + hl, cap - hl, "%s%lld", k ? "," : "",
                                   (long long)t->shape[k]);
        hl += (size_t)snprintf(hdr + hl, cap - hl, "],\"data_offsets\":[%zu,%zu]}", dl, dl + bytes);
        dl += bytes;
    }
    hl += (size_t)snprintf(hdr + hl, cap - hl, "}");
    while (hl % 8)
        hdr[hl++] = ' ';
    ck_assert_uint_lt(hl, cap);

    size_t len = 8 + hl + dl;
    unsigned char *img = malloc(len), *p = img + 8 + hl;
    ck_assert_ptr_nonnull(img);
    put_le(img, hl, 8);
    memcpy(img + 8, hdr, hl);
    for (size_t i = 0; i < s->n; i++) {
        const tensor *t = &s->t[i];
        for (size_t k = 0; k < t->numel; k++) {
            if (t->f64) {
                uint64_t u;
                memcpy(&u, &t->vals[k], 8);
                put_le(p, u, 8);
                p += 8;
            } else {
                float f = (float)t->vals[k];
                uint32_t u;
                memcpy(&u, &f, 4);
                put_le(p, u, 4);
                p += 4;
            }
        }
    }
    char *path = tu_write_tmp(".safetensors", img, len);
    ck_assert_ptr_nonnull(path);
    free(img);
    free(hdr);
    return path;
}

/* A config entry built by hand (no JSON): model.c is tested apart from config.c. */
typedef struct {
    char name[16];
    char prefix[32];
    cfg_model m;
} spec;

static void spec_init(spec *sp, rnn_cell_type type, int I, int H, int L, int bidir, int bias,
                      const char *prefix)
{
    memset(sp, 0, sizeof *sp);
    strcpy(sp->name, "m");
    snprintf(sp->prefix, sizeof sp->prefix, "%s", prefix);
    sp->m.name = sp->name;
    sp->m.prefix = sp->prefix;
    sp->m.type = type;
    sp->m.input_size = I;
    sp->m.hidden_size = H;
    sp->m.num_layers = L;
    sp->m.nonlinearity = RNN_TANH;
    sp->m.bias = bias;
    sp->m.bidirectional = bidir;
}

/* Writes S to a file and loads it as SP says. *path receives the file's name, already
 * removed (the caller frees it). */
static int load_st(spec *sp, const tset *s, rnn_model **m, char *err, char **path)
{
    char *p = tset_write(s);
    sp->m.weights_path = p;
    err[0] = '\0';
    *m = (rnn_model *)m; /* not NULL, to see rnn_model_load clear it */
    int rc = rnn_model_load(&sp->m, m, err, ERRLEN);
    sp->m.weights_path = NULL;
    unlink(p);
    *path = p;
    return rc;
}

/* Asserts that S fails to load as SP says, with a message naming the file and holding every
 * NEEDLE (NULL-terminated). */
static void expect_load_error(spec *sp, const tset *s, ...)
{
    char err[ERRLEN], *path;
    rnn_model *m;
    ck_assert_int_eq(load_st(sp, s, &m, err, &path), -1);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(err, path), "message does not name the file %s: %s", path, err);
    ck_assert_msg(!strchr(err, '\n'), "message is not one line: %s", err);
    va_list ap;
    va_start(ap, s);
    for (const char *needle; (needle = va_arg(ap, const char *));)
        ck_assert_msg(strstr(err, needle), "message lacks \"%s\": %s", needle, err);
    va_end(ap);
    free(path);
}

static rnn_model *expect_load_ok(spec *sp, const tset *s)
{
    char err[ERRLEN], *path;
    rnn_model *m;
    int rc = load_st(sp, s, &m, err, &path);
    free(path);
    ck_assert_msg(rc == 0, "load failed: %s", err);
    ck_assert_ptr_nonnull(m);
    return m;
}

/* ---- model: what loads ---------------------------------------------------------------------- */

START_TEST(test_safetensors_model_loads_with_its_info)
{
    spec sp;
    tset s = {0};
    spec_init(&sp, RNN_CELL_LSTM, 3, 4, 2, 1, 1, "");
    tset_pytorch(&s, "", RNN_CELL_LSTM, 3, 4, 2, 1, 1);
    rnn_model *m = expect_load_ok(&sp, &s);
    const rnn_info *in = rnn_model_info(m);
    ck_assert_str_eq(in->name, "m");
    ck_assert_int_eq(in->type, RNN_CELL_LSTM);
    ck_assert_int_eq(in->input_size, 3);
    ck_assert_int_eq(in->hidden_size, 4);
    ck_assert_int_eq(in->num_layers, 2);
    ck_assert_int_eq(in->num_directions, 2);
    ck_assert_int_eq(in->gates, 4);
    ck_assert(in->bias);
    ck_assert_uint_eq(in->parameters, 736); /* sum(p.numel()) of nn.LSTM(3, 4, 2, bidir.) */
    rnn_model_free(m);
    rnn_model_free(NULL);
    tset_free(&s);
}
END_TEST

START_TEST(test_inline_weights_model_loads)
{
    char err[ERRLEN];
    const char *text =
        "{'models': [{'name': 'g', 'type': 'gru', 'input_size': 1,"
        " 'hidden_size': 1, 'bias': false, 'weights': {"
        " 'weight_ih_l0': [[0.1], [0.2], [0.3]], 'weight_hh_l0': [[1], [2], [3]]}}]}";
    char *json = dq(text);
    cfg_config *cfg = NULL;
    ck_assert_msg(cfg_load_buffer(json, strlen(json), NULL, &cfg, err, sizeof err) == 0, "%s", err);
    rnn_model *m = NULL;
    ck_assert_msg(rnn_model_load(&cfg->models[0], &m, err, sizeof err) == 0, "%s", err);
    const rnn_info *in = rnn_model_info(m);
    ck_assert_str_eq(in->name, "g");
    ck_assert_int_eq(in->gates, 3);
    ck_assert(!in->bias);
    ck_assert_uint_eq(in->parameters, 6);
    rnn_model_free(m);
    cfg_free(cfg);
    free(json);
}
END_TEST

START_TEST(test_relative_weights_file_loads_from_the_config_folder)
{
    char err[ERRLEN];
    tset s = {0};
    tset_pytorch(&s, "", RNN_CELL_RNN, 1, 2, 1, 0, 1);
    char *tmp = tset_write(&s);
    char *dir = tmpdir_new();
    char *st_path = join(dir, "w.safetensors"), *cfg_path = join(dir, "c.json");
    ck_assert_int_eq(rename(tmp, st_path), 0);
    char *json = dq("{'models': [{'name': 'm', 'type': 'rnn', 'input_size': 1,"
                    " 'hidden_size': 2, 'weights': 'w.safetensors'}]}");
    write_file(cfg_path, json);
    cfg_config *cfg = NULL;
    rnn_model *m = NULL;
    ck_assert_msg(cfg_load_file(cfg_path, &cfg, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(rnn_model_load(&cfg->models[0], &m, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(rnn_model_info(m)->parameters, 2 * 1 + 2 * 2 + 2 + 2);
    rnn_model_free(m);
    cfg_free(cfg);
    unlink(st_path);
    unlink(cfg_path);
    rmdir(dir);
    free(json);
    free(cfg_path);
    free(st_path);
    free(dir);
    free(tmp);
    tset_free(&s);
}
END_TEST

START_TEST(test_tensors_outside_the_prefix_are_ignored)
{
    spec sp;
    tset s = {0};
    spec_init(&sp, RNN_CELL_GRU, 2, 3, 1, 0, 1, "rnn.");
    tset_add(&s, "fc.weight", 2, 1, 3);
    tset_pytorch(&s, "rnn.", RNN_CELL_GRU, 2, 3, 1, 0, 1);
    tset_add(&s, "fc.bias", 1, 1, 0);
    tset_add(&s, "rnnx.weight_ih_l0", 2, 9, 2); /* "rnnx." does not start with "rnn." */
    rnn_model *m = expect_load_ok(&sp, &s);
    ck_assert_uint_eq(rnn_model_info(m)->parameters, 3 * 3 * (2 + 3) + 2 * 3 * 3);
    rnn_model_free(m);
    tset_free(&s);
}
END_TEST

/* PyTorch 1.13's sum(p.numel() for p in nn.<TYPE>(3, 5, num_layers=L, bidirectional=BIDIR,
 * bias=BIAS).parameters()). */
static const struct {
    rnn_cell_type type;
    int L, bidir, bias;
    size_t parameters;
} PYTORCH_PARAMS[] = {
    {RNN_CELL_RNN, 1, 0, 1, 50},    {RNN_CELL_RNN, 1, 0, 0, 40},   {RNN_CELL_RNN, 1, 1, 1, 100},
    {RNN_CELL_RNN, 1, 1, 0, 80},    {RNN_CELL_RNN, 3, 0, 1, 170},  {RNN_CELL_RNN, 3, 0, 0, 140},
    {RNN_CELL_RNN, 3, 1, 1, 440},   {RNN_CELL_RNN, 3, 1, 0, 380},  {RNN_CELL_LSTM, 1, 0, 1, 200},
    {RNN_CELL_LSTM, 1, 0, 0, 160},  {RNN_CELL_LSTM, 1, 1, 1, 400}, {RNN_CELL_LSTM, 1, 1, 0, 320},
    {RNN_CELL_LSTM, 3, 0, 1, 680},  {RNN_CELL_LSTM, 3, 0, 0, 560}, {RNN_CELL_LSTM, 3, 1, 1, 1760},
    {RNN_CELL_LSTM, 3, 1, 0, 1520}, {RNN_CELL_GRU, 1, 0, 1, 150},  {RNN_CELL_GRU, 1, 0, 0, 120},
    {RNN_CELL_GRU, 1, 1, 1, 300},   {RNN_CELL_GRU, 1, 1, 0, 240},  {RNN_CELL_GRU, 3, 0, 1, 510},
    {RNN_CELL_GRU, 3, 0, 0, 420},   {RNN_CELL_GRU, 3, 1, 1, 1320}, {RNN_CELL_GRU, 3, 1, 0, 1140},
};

START_TEST(test_parameter_count_matches_pytorch)
{
    const int I = 3, H = 5;
    spec sp;
    tset s = {0};
    rnn_cell_type type = PYTORCH_PARAMS[_i].type;
    int L = PYTORCH_PARAMS[_i].L, bidir = PYTORCH_PARAMS[_i].bidir, bias = PYTORCH_PARAMS[_i].bias;
    spec_init(&sp, type, I, H, L, bidir, bias, "");
    tset_pytorch(&s, "", type, I, H, L, bidir, bias);
    rnn_model *m = expect_load_ok(&sp, &s);

    /* PyTorch's formula, per layer and direction: G*H*(in + H) weights and 2*G*H biases, where
     * in is input_size for layer 0 and D*H above. */
    const size_t G = (size_t)gates_of(type), D = bidir ? 2 : 1;
    size_t formula = 0, numel = 0;
    for (int l = 0; l < L; l++) {
        size_t in = l ? D * H : (size_t)I;
        formula += D * (G * H * (in + H) + (bias ? 2 * G * H : 0));
    }
    for (size_t i = 0; i < s.n; i++)
        numel += s.t[i].numel;
    ck_assert_uint_eq(rnn_model_info(m)->parameters, PYTORCH_PARAMS[_i].parameters);
    ck_assert_uint_eq(formula, PYTORCH_PARAMS[_i].parameters);
    ck_assert_uint_eq(numel, PYTORCH_PARAMS[_i].parameters);
    rnn_model_free(m);
    tset_free(&s);
}
END_TEST

/* ---- model: what is rejected, in PyTorch's words ----------------------------------------------
 */

START_TEST(test_missing_tensor_is_listed)
{
    spec sp;
    tset s = {0};
    spec_init(&sp, RNN_CELL_RNN, 3, 4, 2, 0, 1, "");
    tset_pytorch(&s, "", RNN_CELL_RNN, 3, 4, 2, 0, 1);
    tset_remove(&s, "weight_hh_l1");
    expect_load_error(&sp, &s, "missing key(s)", "\"weight_hh_l1\"", NULL);
    tset_remove(&s, "weight_ih_l0");
    expect_load_error(&sp, &s, "missing key(s)", "\"weight_ih_l0\"", "\"weight_hh_l1\"", NULL);
    tset_free(&s);
}
END_TEST

START_TEST(test_empty_weights_file_lists_every_tensor_missing)
{
    spec sp;
    tset s = {0};
    spec_init(&sp, RNN_CELL_GRU, 1, 1, 1, 0, 1, "");
    expect_load_error(&sp, &s, "missing key(s)", "\"weight_ih_l0\"", "\"weight_hh_l0\"",
                      "\"bias_ih_l0\"", "\"bias_hh_l0\"", NULL);
}
END_TEST

START_TEST(test_unexpected_tensor_is_named)
{
    spec sp;
    tset s = {0};
    spec_init(&sp, RNN_CELL_RNN, 3, 4, 1, 0, 1, "");
    tset_pytorch(&s, "", RNN_CELL_RNN, 3, 4, 1, 0, 1);
    tset_add(&s, "extra", 1, 2, 0);
    expect_load_error(&sp, &s, "unexpected key(s)", "\"extra\"", NULL);
    tset_free(&s);
}
END_TEST

START_TEST(test_module_state_dict_without_prefix_hints_at_prefix)
{
    spec sp;
    tset s = {0};
    spec_init(&sp, RNN_CELL_LSTM, 2, 2, 1, 0, 1, "");
    tset_pytorch(&s, "rnn.", RNN_CELL_LSTM, 2, 2, 1, 0, 1);
    expect_load_error(&sp, &s, "missing key(s)", "\"weight_ih_l0\"", "prefix", NULL);
    tset_free(&s);
}
END_TEST

START_TEST(test_extra_layer_is_unexpected)
{
    spec sp;
    tset s = {0};
    spec_init(&sp, RNN_CELL_GRU, 2, 2, 1, 0, 1, "");
    tset_pytorch(&s, "", RNN_CELL_GRU, 2, 2, 2, 0, 1);
    expect_load_error(&sp, &s, "unexpected key(s)", "\"weight_ih_l1\"", "\"bias_hh_l1\"",
                      "num_layers", NULL);
    tset_free(&s);
}
END_TEST

START_TEST(test_bidirectional_weights_for_unidirectional_config_hint_bidirectional)
{
    spec sp;
    tset s = {0};
    spec_init(&sp, RNN_CELL_LSTM, 3, 4, 1, 0, 1, "");
    tset_pytorch(&s, "", RNN_CELL_LSTM, 3, 4, 1, 1, 1);
    expect_load_error(&sp, &s, "unexpected key(s)", "\"weight_ih_l0_reverse\"",
                      "\"bidirectional\": true", NULL);
    tset_free(&s);
}
END_TEST

START_TEST(test_unidirectional_weights_for_bidirectional_config_list_reverse_tensors)
{
    spec sp;
    tset s = {0};
    spec_init(&sp, RNN_CELL_RNN, 3, 4, 1, 1, 1, "");
    tset_pytorch(&s, "", RNN_CELL_RNN, 3, 4, 1, 0, 1);
    expect_load_error(&sp, &s, "missing key(s)", "\"weight_ih_l0_reverse\"", "bidirectional", NULL);
    tset_free(&s);
}
END_TEST

START_TEST(test_bias_tensors_with_bias_false_are_unexpected)
{
    spec sp;
    tset s = {0};
    spec_init(&sp, RNN_CELL_GRU, 3, 4, 1, 0, 0, "");
    tset_pytorch(&s, "", RNN_CELL_GRU, 3, 4, 1, 0, 1);
    expect_load_error(&sp, &s, "unexpected key(s)", "\"bias_ih_l0\"", "\"bias_hh_l0\"",
                      "\"bias\": true", NULL);
    tset_free(&s);
}
END_TEST

START_TEST(test_missing_biases_with_bias_true_hint_bias_false)
{
    spec sp;
    tset s = {0};
    spec_init(&sp, RNN_CELL_GRU, 3, 4, 1, 0, 1, "");
    tset_pytorch(&s, "", RNN_CELL_GRU, 3, 4, 1, 0, 0);
    expect_load_error(&sp, &s, "missing key(s)", "\"bias_ih_l0\"", "\"bias\": false", NULL);
    tset_free(&s);
}
END_TEST

START_TEST(test_shape_mismatch_names_tensor_and_both_shapes)
{
    spec sp;
    tset s = {0};
    spec_init(&sp, RNN_CELL_LSTM, 3, 4, 1, 0, 1, "");
    tset_pytorch(&s, "", RNN_CELL_LSTM, 3, 4, 1, 0, 1);
    tset_find(&s, "weight_ih_l0")->shape[1] = 2; /* same bytes per row, fewer columns: */
    tset_find(&s, "weight_ih_l0")->numel = 16 * 2;
    expect_load_error(&sp, &s, "\"weight_ih_l0\"", "[16, 2]", "[16, 3]", NULL);
    tset_free(&s);

    /* a rank mismatch: a bias given as a (1, G*H) matrix */
    tset_pytorch(&s, "", RNN_CELL_LSTM, 3, 4, 1, 0, 1);
    tensor *b = tset_find(&s, "bias_hh_l0");
    b->ndim = 2;
    b->shape[0] = 1;
    b->shape[1] = 16;
    expect_load_error(&sp, &s, "\"bias_hh_l0\"", "[1, 16]", "[16]", NULL);
    tset_free(&s);

    /* hidden_size wrong in the config: the recurrent weights do not fit */
    spec_init(&sp, RNN_CELL_RNN, 3, 5, 1, 0, 1, "");
    tset_pytorch(&s, "", RNN_CELL_RNN, 3, 4, 1, 0, 1);
    expect_load_error(&sp, &s, "size mismatch", "[4, 3]", "[5, 3]", NULL);
    tset_free(&s);
}
END_TEST

START_TEST(test_unexpected_tensor_under_the_prefix_is_rejected)
{
    spec sp;
    tset s = {0};
    spec_init(&sp, RNN_CELL_RNN, 2, 3, 1, 0, 1, "rnn.");
    tset_pytorch(&s, "rnn.", RNN_CELL_RNN, 2, 3, 1, 0, 1);
    tset_add(&s, "fc.weight", 2, 1, 3);
    tset_add(&s, "rnn.weight_ih_l1", 2, 3, 3);
    expect_load_error(&sp, &s, "unexpected key(s)", "\"rnn.weight_ih_l1\"", NULL);
    tset_free(&s);
}
END_TEST

START_TEST(test_missing_tensor_under_the_prefix_names_the_full_key)
{
    spec sp;
    tset s = {0};
    spec_init(&sp, RNN_CELL_RNN, 2, 3, 1, 0, 1, "rnn.");
    tset_pytorch(&s, "rnn.", RNN_CELL_RNN, 2, 3, 1, 0, 1);
    tset_remove(&s, "rnn.bias_hh_l0");
    expect_load_error(&sp, &s, "missing key(s)", "\"rnn.bias_hh_l0\"", NULL);
    tset_free(&s);
}
END_TEST

START_TEST(test_lstm_projection_weights_are_rejected_with_a_hint)
{
    spec sp;
    tset s = {0};
    spec_init(&sp, RNN_CELL_LSTM, 2, 2, 1, 0, 1, "");
    tset_pytorch(&s, "", RNN_CELL_LSTM, 2, 2, 1, 0, 1);
    tset_add(&s, "weight_hr_l0", 2, 1, 2);
    expect_load_error(&sp, &s, "unexpected key(s)", "\"weight_hr_l0\"", "proj_size", NULL);
    tset_free(&s);
}
END_TEST

START_TEST(test_non_finite_weight_is_rejected)
{
    const double bad[] = {NAN, INFINITY, -INFINITY};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        spec sp;
        tset s = {0};
        spec_init(&sp, RNN_CELL_GRU, 2, 2, 1, 0, 1, "");
        tset_pytorch(&s, "", RNN_CELL_GRU, 2, 2, 1, 0, 1);
        tset_find(&s, "weight_hh_l0")->vals[5] = bad[k];
        expect_load_error(&sp, &s, "\"weight_hh_l0\"", "non-finite", "index 5", NULL);
        tset_free(&s);
    }
}
END_TEST

START_TEST(test_f64_weight_beyond_float32_is_rejected)
{
    spec sp;
    tset s = {0};
    spec_init(&sp, RNN_CELL_RNN, 1, 2, 1, 0, 1, "");
    tset_pytorch(&s, "", RNN_CELL_RNN, 1, 2, 1, 0, 1);
    tensor *t = tset_find(&s, "bias_ih_l0");
    t->f64 = 1;
    t->vals[1] = 1e300;
    expect_load_error(&sp, &s, "\"bias_ih_l0\"", "float32", NULL);
    tset_free(&s);
}
END_TEST

START_TEST(test_f64_weights_load)
{
    spec sp;
    tset s = {0};
    spec_init(&sp, RNN_CELL_RNN, 1, 2, 1, 0, 1, "");
    tset_pytorch(&s, "", RNN_CELL_RNN, 1, 2, 1, 0, 1);
    for (size_t i = 0; i < s.n; i++)
        s.t[i].f64 = 1;
    rnn_model *m = expect_load_ok(&sp, &s);
    ck_assert_uint_eq(rnn_model_info(m)->parameters, 10);
    rnn_model_free(m);
    tset_free(&s);
}
END_TEST

START_TEST(test_inline_unexpected_tensor_is_named)
{
    char err[ERRLEN];
    char *json = dq("{'models': [{'name': 'm', 'type': 'rnn', 'input_size': 1, 'hidden_size': 1,"
                    " 'bias': false, 'weights': {'weight_ih_l0': [[1]], 'weight_hh_l0': [[1]],"
                    " 'weight_ih_l0_reverse': [[1]]}}]}");
    cfg_config *cfg = NULL;
    ck_assert_msg(cfg_load_buffer(json, strlen(json), NULL, &cfg, err, sizeof err) == 0, "%s", err);
    rnn_model *m = (rnn_model *)&m;
    ck_assert_int_eq(rnn_model_load(&cfg->models[0], &m, err, sizeof err), -1);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(err, "unexpected key(s)") && strstr(err, "\"weight_ih_l0_reverse\"") &&
                      strstr(err, "bidirectional"),
                  "%s", err);
    cfg_free(cfg);
    free(json);
}
END_TEST

START_TEST(test_inline_shape_mismatch_is_named)
{
    char err[ERRLEN];
    char *json = dq("{'models': [{'name': 'm', 'type': 'rnn', 'input_size': 2, 'hidden_size': 1,"
                    " 'bias': false, 'weights': {'weight_ih_l0': [[1]], 'weight_hh_l0': [[1]]}}]}");
    cfg_config *cfg = NULL;
    ck_assert_msg(cfg_load_buffer(json, strlen(json), NULL, &cfg, err, sizeof err) == 0, "%s", err);
    rnn_model *m = NULL;
    ck_assert_int_eq(rnn_model_load(&cfg->models[0], &m, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "\"weight_ih_l0\"") && strstr(err, "[1, 1]") && strstr(err, "[1, 2]"),
                  "%s", err);
    cfg_free(cfg);
    free(json);
}
END_TEST

START_TEST(test_missing_weights_file_is_named)
{
    spec sp;
    char err[ERRLEN];
    char path[] = "/nonexistent-rnnserve/model.safetensors";
    spec_init(&sp, RNN_CELL_RNN, 1, 1, 1, 0, 1, "");
    sp.m.weights_path = path;
    rnn_model *m = (rnn_model *)&m;
    ck_assert_int_eq(rnn_model_load(&sp.m, &m, err, sizeof err), -1);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(err, path), "message does not name the file: %s", err);
}
END_TEST

/* Corrupt files: rnn_model_load must pass st_open's own message on. */
static void expect_st_message(const void *bytes, size_t len)
{
    char want[ERRLEN] = "", err[ERRLEN] = "";
    char *path = tu_write_tmp(".safetensors", bytes, len);
    ck_assert_ptr_nonnull(path);
    st_file *f = NULL;
    ck_assert_int_eq(st_open(path, &f, want, sizeof want), -1);
    ck_assert_uint_gt(strlen(want), 0);
    spec sp;
    spec_init(&sp, RNN_CELL_RNN, 1, 1, 1, 0, 1, "");
    sp.m.weights_path = path;
    rnn_model *m = (rnn_model *)&m;
    ck_assert_int_eq(rnn_model_load(&sp.m, &m, err, sizeof err), -1);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(err, want), "safetensors message \"%s\" not passed on: %s", want, err);
    ck_assert_msg(strstr(err, path), "message does not name the file: %s", err);
    unlink(path);
    free(path);
}

START_TEST(test_corrupt_safetensors_file_surfaces_its_message)
{
    static const unsigned char huge_header[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
    expect_st_message(huge_header, sizeof huge_header);
    expect_st_message("abc", 3);
    static const char not_json[] = "\x08\0\0\0\0\0\0\0{'x':12 ";
    expect_st_message(not_json, sizeof not_json - 1);
    /* a header promising 16 bytes of data where the file has 4 */
    const char *hdr = "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";
    size_t hl = strlen(hdr);
    unsigned char img[128] = {0};
    put_le(img, hl, 8);
    memcpy(img + 8, hdr, hl);
    expect_st_message(img, 8 + hl + 4);
}
END_TEST

/* ---- suites -------------------------------------------------------------------------------- */

#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *ok = tcase_create("loads");
    tcase_add_test(ok, test_minimal_config_gets_pytorch_and_server_defaults);
    tcase_add_test(ok, test_defaults_match_the_spec);
    tcase_add_test(ok, test_every_server_setting_is_read);
    tcase_add_test(ok, test_empty_cors_list_allows_no_origin);
    tcase_add_test(ok, test_every_model_setting_is_read);
    tcase_add_test(ok, test_inline_weights_become_float32_tensors);
    tcase_add_test(ok, test_weights_path_resolves_against_the_config_folder);
    tcase_add_test(ok, test_weights_path_resolves_against_a_relative_config_folder);
    tcase_add_test(ok, test_buffer_config_resolves_against_base_dir_and_names_itself);
    tcase_add_test(ok, test_integer_bounds_are_inclusive);
    suite_add_tcase(s, ok);

    TCase *bad = tcase_create("rejects");
    tcase_add_test(bad, test_missing_config_file_is_named);
    tcase_add_test(bad, test_a_device_or_fifo_config_fails_at_once);
    tcase_add_test(bad, test_invalid_json_names_line_and_column);
    tcase_add_test(bad, test_duplicate_keys_are_rejected);
    tcase_add_test(bad, test_top_level_must_be_an_object);
    tcase_add_test(bad, test_unknown_top_level_key_is_named);
    tcase_add_test(bad, test_unknown_server_key_is_named);
    tcase_add_test(bad, test_unknown_model_key_is_named);
    tcase_add_test(bad, test_typo_in_second_model_names_its_index);
    tcase_add_loop_test(bad, test_missing_required_key_is_named, 0, N_OF(REQUIRED));
    tcase_add_test(bad, test_missing_or_empty_models_list_is_rejected);
    tcase_add_loop_test(bad, test_wrong_type_is_named_with_its_key, 0, N_OF(WRONG_TYPES));
    tcase_add_loop_test(bad, test_out_of_range_integer_is_named_with_its_key, 0,
                        N_OF(OUT_OF_RANGE));
    tcase_add_test(bad, test_server_and_model_entry_must_be_objects);
    tcase_add_test(bad, test_bad_type_string_is_named);
    tcase_add_test(bad, test_nonlinearity_on_lstm_or_gru_is_rejected);
    tcase_add_test(bad, test_bad_nonlinearity_is_named);
    tcase_add_test(bad, test_duplicate_model_names_are_rejected);
    tcase_add_loop_test(bad, test_bad_model_name_characters_are_rejected, 0, N_OF(BAD_NAMES));
    tcase_add_test(bad, test_model_name_longer_than_128_is_rejected);
    tcase_add_test(bad, test_cors_origins_must_be_strings);
    tcase_add_test(bad, test_weights_must_be_a_path_or_an_object);
    tcase_add_test(bad, test_bad_inline_weights_are_named_by_tensor_and_index);
    suite_add_tcase(s, bad);
    return s;
}

static Suite *model_suite(void)
{
    Suite *s = suite_create("model");
    TCase *ok = tcase_create("loads");
    tcase_add_test(ok, test_safetensors_model_loads_with_its_info);
    tcase_add_test(ok, test_inline_weights_model_loads);
    tcase_add_test(ok, test_relative_weights_file_loads_from_the_config_folder);
    tcase_add_test(ok, test_tensors_outside_the_prefix_are_ignored);
    tcase_add_test(ok, test_f64_weights_load);
    tcase_add_loop_test(ok, test_parameter_count_matches_pytorch, 0, N_OF(PYTORCH_PARAMS));
    suite_add_tcase(s, ok);

    TCase *bad = tcase_create("rejects");
    tcase_add_test(bad, test_missing_tensor_is_listed);
    tcase_add_test(bad, test_empty_weights_file_lists_every_tensor_missing);
    tcase_add_test(bad, test_unexpected_tensor_is_named);
    tcase_add_test(bad, test_module_state_dict_without_prefix_hints_at_prefix);
    tcase_add_test(bad, test_extra_layer_is_unexpected);
    tcase_add_test(bad, test_bidirectional_weights_for_unidirectional_config_hint_bidirectional);
    tcase_add_test(bad, test_unidirectional_weights_for_bidirectional_config_list_reverse_tensors);
    tcase_add_test(bad, test_bias_tensors_with_bias_false_are_unexpected);
    tcase_add_test(bad, test_missing_biases_with_bias_true_hint_bias_false);
    tcase_add_test(bad, test_shape_mismatch_names_tensor_and_both_shapes);
    tcase_add_test(bad, test_unexpected_tensor_under_the_prefix_is_rejected);
    tcase_add_test(bad, test_missing_tensor_under_the_prefix_names_the_full_key);
    tcase_add_test(bad, test_lstm_projection_weights_are_rejected_with_a_hint);
    tcase_add_test(bad, test_non_finite_weight_is_rejected);
    tcase_add_test(bad, test_f64_weight_beyond_float32_is_rejected);
    tcase_add_test(bad, test_inline_unexpected_tensor_is_named);
    tcase_add_test(bad, test_inline_shape_mismatch_is_named);
    tcase_add_test(bad, test_missing_weights_file_is_named);
    tcase_add_test(bad, test_corrupt_safetensors_file_surfaces_its_message);
    suite_add_tcase(s, bad);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_add_suite(sr, model_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
