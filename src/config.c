/* config.c - reads the rnnserve config file into cfg_config.
 *
 * Owns validation of every key: types, ranges, PyTorch's defaults, and unknown keys rejected by
 * name (a typo such as "hiden_size" must fail loudly, not silently fall back to a default).
 * Inline weights are converted to float32 here; weight files are only located, never opened. */
#include "rnnserve/config.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rnnserve/file.h"

/* Generous bounds that keep every size product far from overflow and reject obvious typos
 * (a hidden_size of 1e9 is a mistake, not a model). */
#define MAX_DIM 65536
#define MAX_LAYERS 64

/* Error context: the file name prefixes every message. */
typedef struct {
    const char *file;
    char *err;
    size_t errlen;
} ctx;

static int fail(ctx *c, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(c->err, c->errlen, "%s: ", c->file);
    if (n < 0 || (size_t)n >= c->errlen)
        return -1;
    va_start(ap, fmt);
    vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    /* One line, whatever a quoted name or value holds. */
    for (char *p = c->err; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    return -1;
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "a value";
}

/* Fails on the first key of OBJ not in ALLOWED (NULL-terminated), naming it and the choices. */
static int check_keys(ctx *c, const json_t *obj, const char *path, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(key, *a) == 0)
                ok = 1;
        if (!ok) {
            char list[512] = "";
            size_t n = 0;
            for (const char *const *a = allowed; *a && n < sizeof list; a++)
                n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "", *a);
            return fail(c, "%s%s\"%s\": unknown key (known keys: %s)", path, *path ? "." : "", key,
                        list);
        }
    }
    return 0;
}

/* Reads an optional integer KEY of OBJ into *out, within [lo, hi]. */
static int get_int(ctx *c, const json_t *obj, const char *path, const char *key, long long lo,
                   long long hi, long long *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_integer(v))
        return fail(c, "%s.%s: expected an integer, got %s", path, key, json_kind(v));
    long long x = json_integer_value(v);
    if (x < lo || x > hi)
        return fail(c, "%s.%s: %lld is out of range [%lld, %lld]", path, key, x, lo, hi);
    *out = x;
    return 0;
}

static int get_bool(ctx *c, const json_t *obj, const char *path, const char *key, bool *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return fail(c, "%s.%s: expected true or false, got %s", path, key, json_kind(v));
    *out = json_is_true(v);
    return 0;
}

/* Reads an optional string; *out becomes a new copy (the caller frees it). */
static int get_str(ctx *c, const json_t *obj, const char *path, const char *key, char **out)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_string(v))
        return fail(c, "%s.%s: expected a string, got %s", path, key, json_kind(v));
    char *s = strdup(json_string_value(v));
    if (!s)
        return fail(c, "%s.%s: out of memory", path, key);
    free(*out);
    *out = s;
    return 0;
}

/* Joins a relative path onto the config file's folder. Returns a new string. */
static char *resolve_path(const char *base_dir, const char *p)
{
    if (p[0] == '/' || !base_dir || !*base_dir)
        return strdup(p);
    size_t n = strlen(base_dir) + strlen(p) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s", base_dir, p);
    return s;
}

/* Appends KEY to the server's API keys (a new copy). */
static int add_api_key(ctx *c, cfg_server *s, const char *key, size_t len, const char *where)
{
    if (len == 0)
        return fail(c, "%s: empty API key", where);
    char **nk = realloc(s->api_keys, (s->n_api_keys + 1) * sizeof *nk);
    if (!nk)
        return fail(c, "%s: out of memory", where);
    s->api_keys = nk;
    if (!(nk[s->n_api_keys] = strndup(key, len)))
        return fail(c, "%s: out of memory", where);
    s->n_api_keys++;
    return 0;
}

/* The longest API key a key file may hold: longer is a mistake (a pasted file, a missing line
 * break), and is refused rather than cut into several keys. */
#define MAX_API_KEY 4096

/* Splits TEXT[len] into lines, without a fixed line buffer: one key per line, surrounding
 * blanks and a trailing \r dropped, blank lines and # comments skipped. WHERE names the file
 * (and each message the line number). */
static int parse_api_key_lines(ctx *c, const char *text, size_t len, const char *where,
                               cfg_server *s)
{
    size_t lineno = 0;
    for (size_t at = 0; at < len;) {
        const char *line = text + at;
        const char *eol = memchr(line, '\n', len - at);
        size_t n = eol ? (size_t)(eol - line) : len - at;
        at += n + (eol ? 1 : 0);
        lineno++;
        while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
            n--;
        while (n && (*line == ' ' || *line == '\t'))
            line++, n--;
        if (n == 0 || *line == '#')
            continue;
        if (memchr(line, '\0', n))
            return fail(c, "server.api_keys: %s, line %zu: holds a NUL byte", where, lineno);
        if (n > MAX_API_KEY)
            return fail(c,
                        "server.api_keys: %s, line %zu: a key of %zu bytes, longer than the %d "
                        "allowed",
                        where, lineno, n, MAX_API_KEY);
        if (add_api_key(c, s, line, n, "server.api_keys") < 0)
            return -1;
    }
    return 0;
}

/* The keys of the file PATH (one per line), read whole: a FIFO or device fails at once. */
static int parse_api_key_file(ctx *c, const char *path, cfg_server *s)
{
    char *text = NULL, msg[512];
    size_t len = 0;
    if (file_read_all(path, FILE_CAP_KEYS, &text, &len, msg, sizeof msg) < 0)
        return fail(c, "server.api_keys: %s", msg);
    int rc = parse_api_key_lines(c, text, len, path, s);
    free(text);
    if (rc == 0 && s->n_api_keys == 0)
        rc = fail(c, "server.api_keys: %s holds no key", path);
    return rc;
}

/* "api_keys": ["k1", ...] or "keys.txt" (one key per line; blank lines and # comments
 * skipped), so that secrets can stay out of the config itself. */
static int parse_api_keys(ctx *c, const json_t *v, const char *base_dir, cfg_server *s)
{
    if (json_is_array(v)) {
        if (json_array_size(v) == 0)
            return fail(c, "server.api_keys: empty list (leave the key out to serve without keys)");
        for (size_t i = 0; i < json_array_size(v); i++) {
            const char *k = json_string_value(json_array_get(v, i));
            char where[64];
            snprintf(where, sizeof where, "server.api_keys[%zu]", i);
            if (!k)
                return fail(c, "%s: expected a string", where);
            if (add_api_key(c, s, k, strlen(k), where) < 0)
                return -1;
        }
        return 0;
    }
    if (!json_is_string(v))
        return fail(c,
                    "server.api_keys: expected a list of keys or the path of a file of keys, "
                    "got %s",
                    json_kind(v));
    char *path = resolve_path(base_dir, json_string_value(v));
    if (!path)
        return fail(c, "server.api_keys: out of memory");
    int rc = parse_api_key_file(c, path, s);
    free(path);
    return rc;
}

/* An optional file path KEY, resolved against the config's folder. */
static int get_path(ctx *c, const json_t *srv, const char *key, const char *base_dir, char **out)
{
    char *raw = NULL;
    if (get_str(c, srv, "server", key, &raw) < 0)
        return -1;
    if (!raw)
        return 0;
    *out = raw[0] ? resolve_path(base_dir, raw) : NULL;
    free(raw);
    if (!*out)
        return fail(c, "server.%s: empty path", key);
    return 0;
}

/* The scheduler's and the sessions' knobs: each an integer within a range a user could mean. */
static int parse_sched(ctx *c, const json_t *srv, cfg_server *s)
{
    static const struct {
        const char *key;
        size_t off;
        long long min, max;
    } knobs[] = {
        {"batch_delay_us", offsetof(cfg_server, batch_delay_us), 0, 1000000},
        {"max_pass_sequences", offsetof(cfg_server, max_pass_sequences), 1, 1 << 20},
        {"max_pass_ms", offsetof(cfg_server, max_pass_ms), 1, 3600000},
        {"max_queue_ms", offsetof(cfg_server, max_queue_ms), 1, 3600000},
        {"queue_timeout_ms", offsetof(cfg_server, queue_timeout_ms), 1, 3600000},
        {"max_sessions", offsetof(cfg_server, max_sessions), 1, 10000000},
        {"session_ttl_s", offsetof(cfg_server, session_ttl_s), 1, 7 * 86400},
    };
    for (size_t i = 0; i < sizeof knobs / sizeof *knobs; i++) {
        int *field = (int *)((char *)s + knobs[i].off);
        long long v = *field;
        if (get_int(c, srv, "server", knobs[i].key, knobs[i].min, knobs[i].max, &v) < 0)
            return -1;
        *field = (int)v;
    }
    return 0;
}

static int parse_server(ctx *c, const json_t *srv, const char *base_dir, cfg_server *s)
{
    static const char *const keys[] = {"host",
                                       "port",
                                       "threads",
                                       "max_body_bytes",
                                       "max_batch",
                                       "max_steps",
                                       "timeout_s",
                                       "max_connections",
                                       "cors_origins",
                                       "playground",
                                       "admin_token",
                                       "api_keys",
                                       "tls_cert",
                                       "tls_key",
                                       "batch_delay_us",
                                       "max_pass_sequences",
                                       "max_pass_ms",
                                       "max_queue_ms",
                                       "queue_timeout_ms",
                                       "max_sessions",
                                       "session_ttl_s",
                                       NULL};
    long long v;
    if (!json_is_object(srv))
        return fail(c, "server: expected an object, got %s", json_kind(srv));
    if (check_keys(c, srv, "server", keys) < 0)
        return -1;
    if (get_str(c, srv, "server", "host", &s->host) < 0)
        return -1;
    if (s->host[0] == '\0')
        return fail(c, "server.host: must not be empty");
    v = s->port;
    if (get_int(c, srv, "server", "port", 0, 65535, &v) < 0)
        return -1;
    s->port = (int)v;
    v = s->threads;
    if (get_int(c, srv, "server", "threads", 0, 1024, &v) < 0)
        return -1;
    s->threads = (int)v;
    v = (long long)s->max_body_bytes;
    if (get_int(c, srv, "server", "max_body_bytes", 1, (long long)1 << 40, &v) < 0)
        return -1;
    s->max_body_bytes = (size_t)v;
    v = s->max_batch;
    if (get_int(c, srv, "server", "max_batch", 1, 1 << 24, &v) < 0)
        return -1;
    s->max_batch = (int)v;
    v = s->max_steps;
    if (get_int(c, srv, "server", "max_steps", 1, 1 << 30, &v) < 0)
        return -1;
    s->max_steps = (int)v;
    v = s->timeout_s;
    if (get_int(c, srv, "server", "timeout_s", 1, 86400, &v) < 0)
        return -1;
    s->timeout_s = (int)v;
    v = s->max_connections;
    if (get_int(c, srv, "server", "max_connections", 1, 1000000, &v) < 0)
        return -1;
    s->max_connections = (int)v;
    if (parse_sched(c, srv, s) < 0)
        return -1;
    if (get_bool(c, srv, "server", "playground", &s->playground) < 0)
        return -1;
    if (get_str(c, srv, "server", "admin_token", &s->admin_token) < 0)
        return -1;
    if (s->admin_token && strlen(s->admin_token) < 16)
        return fail(c, "server.admin_token: use at least 16 characters (it guards reloads)");
    json_t *keys_v = json_object_get(srv, "api_keys");
    if (keys_v && parse_api_keys(c, keys_v, base_dir, s) < 0)
        return -1;
    if (get_path(c, srv, "tls_cert", base_dir, &s->tls_cert) < 0 ||
        get_path(c, srv, "tls_key", base_dir, &s->tls_key) < 0)
        return -1;
    if (!s->tls_cert != !s->tls_key)
        return fail(c, "server.%s: tls_cert and tls_key go together (HTTPS needs both)",
                    s->tls_cert ? "tls_key" : "tls_cert");

    json_t *co = json_object_get(srv, "cors_origins");
    if (co) {
        if (!json_is_array(co))
            return fail(c, "server.cors_origins: expected an array of strings, got %s",
                        json_kind(co));
        for (size_t i = 0; i < s->n_cors_origins; i++)
            free(s->cors_origins[i]);
        free(s->cors_origins);
        s->n_cors_origins = 0;
        s->cors_origins = calloc(json_array_size(co) + 1, sizeof *s->cors_origins);
        if (!s->cors_origins)
            return fail(c, "server.cors_origins: out of memory");
        for (size_t i = 0; i < json_array_size(co); i++) {
            json_t *o = json_array_get(co, i);
            if (!json_is_string(o))
                return fail(c, "server.cors_origins[%zu]: expected a string, got %s", i,
                            json_kind(o));
            if (!(s->cors_origins[i] = strdup(json_string_value(o))))
                return fail(c, "server.cors_origins: out of memory");
            s->n_cors_origins = i + 1;
        }
    }
    return 0;
}

/* A model name becomes part of a URL path (/v1/models/{name}/forward), so it is kept to
 * characters that need no escaping there. */
static int valid_name(const char *s)
{
    if (!*s || strlen(s) > 128)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return 0;
    return 1;
}

/* Reads one number of an inline weight tensor; PATH names it in messages. */
static int inline_number(ctx *c, const json_t *v, const char *path, float *out)
{
    if (!json_is_number(v))
        return fail(c, "%s: expected a number, got %s", path, json_kind(v));
    double d = json_number_value(v);
    /* Decimal forms of FLT_MAX ("3.4028235e38") lie a little above it and still round to it;
     * from halfway to the next power of two (2^128 - 2^103) on, float32 rounds to infinity. */
    if (!isfinite(d) || fabs(d) >= 0x1.ffffffp127)
        return fail(c, "%s: %g is not representable as float32", path, d);
    *out = d > FLT_MAX ? FLT_MAX : d < -FLT_MAX ? -FLT_MAX : (float)d;
    return 0;
}

/* "weights": {"weight_ih_l0": [[...], ...], "bias_ih_l0": [...]} -> cfg_tensor list. */
static int parse_inline(ctx *c, const json_t *w, const char *mpath, cfg_model *m)
{
    size_t n = json_object_size(w);
    m->tensors = calloc(n ? n : 1, sizeof *m->tensors);
    if (!m->tensors)
        return fail(c, "%s.weights: out of memory", mpath);
    const char *key;
    json_t *v;
    char path[512];
    json_object_foreach((json_t *)w, key, v)
    {
        cfg_tensor *t = &m->tensors[m->n_tensors++];
        if (!(t->name = strdup(key)))
            return fail(c, "%s.weights: out of memory", mpath);
        snprintf(path, sizeof path, "%s.weights.%s", mpath, key);
        if (!json_is_array(v))
            return fail(c, "%s: expected an array (1-D) or array of arrays (2-D), got %s", path,
                        json_kind(v));
        size_t rows = json_array_size(v);
        int two_d = rows > 0 && json_is_array(json_array_get(v, 0));
        size_t cols = two_d ? json_array_size(json_array_get(v, 0)) : 1;
        t->ndim = two_d ? 2 : 1;
        t->shape[0] = (int64_t)rows;
        t->shape[1] = two_d ? (int64_t)cols : 0;
        t->numel = rows * cols;
        t->data = malloc((t->numel ? t->numel : 1) * sizeof(float));
        if (!t->data)
            return fail(c, "%s: out of memory", path);
        for (size_t i = 0; i < rows; i++) {
            json_t *row = json_array_get(v, i);
            char ep[560];
            if (!two_d) {
                snprintf(ep, sizeof ep, "%s[%zu]", path, i);
                if (inline_number(c, row, ep, &t->data[i]) < 0)
                    return -1;
                continue;
            }
            if (!json_is_array(row))
                return fail(c, "%s[%zu]: expected an array of %zu numbers, got %s", path, i, cols,
                            json_kind(row));
            if (json_array_size(row) != cols)
                return fail(c, "%s[%zu]: expected %zu numbers (as row 0), got %zu", path, i, cols,
                            json_array_size(row));
            for (size_t j = 0; j < cols; j++) {
                snprintf(ep, sizeof ep, "%s[%zu][%zu]", path, i, j);
                if (inline_number(c, json_array_get(row, j), ep, &t->data[i * cols + j]) < 0)
                    return -1;
            }
        }
    }
    return 0;
}

/* "head": {"weight": "fc.weight", "bias": "fc.bias", "activation": "sigmoid"}: a linear layer
 * applied to the top layer's output at every step, named by its full state_dict keys. */
static int parse_head(ctx *c, const json_t *h, const char *mpath, cfg_model *m)
{
    static const char *const keys[] = {"weight", "bias", "activation", NULL};
    char path[96];
    snprintf(path, sizeof path, "%s.head", mpath);
    if (!json_is_object(h))
        return fail(c, "%s: expected {\"weight\": \"fc.weight\", \"bias\": \"fc.bias\"}, got %s",
                    path, json_kind(h));
    if (check_keys(c, h, path, keys) < 0)
        return -1;
    if (!json_object_get(h, "weight"))
        return fail(c, "%s.weight: missing (the state_dict key of the Linear's weight)", path);
    if (get_str(c, h, path, "weight", &m->head_weight) < 0 ||
        get_str(c, h, path, "bias", &m->head_bias) < 0)
        return -1;
    if (!m->head_weight[0] || (m->head_bias && !m->head_bias[0]))
        return fail(c, "%s: empty tensor name", path);
    json_t *a = json_object_get(h, "activation");
    if (a) {
        const char *s = json_string_value(a);
        if (s && strcmp(s, "none") == 0)
            m->head_activation = RNN_HEAD_NONE;
        else if (s && strcmp(s, "sigmoid") == 0)
            m->head_activation = RNN_HEAD_SIGMOID;
        else if (s && strcmp(s, "softmax") == 0)
            m->head_activation = RNN_HEAD_SOFTMAX;
        else
            return fail(c, "%s.activation: expected \"none\", \"sigmoid\" or \"softmax\"", path);
    }
    return 0;
}

/* PATH.type: a row of the cell table, by name. */
static int parse_type(ctx *c, const json_t *jm, const char *path, cfg_model *m)
{
    char *type = NULL;
    if (get_str(c, jm, path, "type", &type) < 0)
        return -1;
    int t = rnn_cell_by_name(type);
    if (t >= 0)
        m->type = (rnn_cell_type)t;
    else
        fail(c, "%s.type: \"%s\" is not a model type (expected \"rnn\", \"lstm\" or \"gru\")", path,
             type);
    free(type);
    return t >= 0 ? 0 : -1;
}

/* PATH.nonlinearity: "tanh" (PyTorch's default) or "relu", for a type that takes one. */
static int parse_nonlinearity(ctx *c, const json_t *jm, const char *path, cfg_model *m)
{
    json_t *nl = json_object_get(jm, "nonlinearity");
    if (!nl)
        return 0;
    if (!rnn_cell_describe(m->type)->nonlinearity)
        return fail(c, "%s.nonlinearity: applies to type \"rnn\" only (%s has fixed gates)", path,
                    rnn_cell_describe(m->type)->name);
    if (!json_is_string(nl))
        return fail(c, "%s.nonlinearity: expected \"tanh\" or \"relu\", got %s", path,
                    json_kind(nl));
    if (strcmp(json_string_value(nl), "tanh") == 0)
        m->nonlinearity = RNN_TANH;
    else if (strcmp(json_string_value(nl), "relu") == 0)
        m->nonlinearity = RNN_RELU;
    else
        return fail(c, "%s.nonlinearity: \"%s\" is not \"tanh\" or \"relu\"", path,
                    json_string_value(nl));
    return 0;
}

/* PATH.weights: a safetensors path (resolved against the config's folder) or inline tensors. */
static int parse_weights(ctx *c, const json_t *jm, const char *path, const char *base_dir,
                         cfg_model *m)
{
    json_t *w = json_object_get(jm, "weights");
    if (json_is_string(w)) {
        if (json_string_value(w)[0] == '\0')
            return fail(c, "%s.weights: empty path", path);
        if (!(m->weights_path = resolve_path(base_dir, json_string_value(w))))
            return fail(c, "%s.weights: out of memory", path);
    } else if (json_is_object(w)) {
        if (parse_inline(c, w, path, m) < 0)
            return -1;
    } else {
        return fail(c,
                    "%s.weights: expected a safetensors path (string) or inline tensors "
                    "(object), got %s",
                    path, json_kind(w));
    }
    return 0;
}

static int parse_model(ctx *c, const json_t *jm, size_t idx, const char *base_dir, cfg_model *m)
{
    static const char *const keys[] = {"name",       "type",         "input_size", "hidden_size",
                                       "num_layers", "nonlinearity", "bias",       "bidirectional",
                                       "weights",    "prefix",       "head",       "embedding",
                                       NULL};
    char path[64];
    long long v;
    snprintf(path, sizeof path, "models[%zu]", idx);
    if (!json_is_object(jm))
        return fail(c, "%s: expected an object, got %s", path, json_kind(jm));
    if (check_keys(c, jm, path, keys) < 0)
        return -1;

    /* PyTorch's defaults: num_layers 1, tanh, bias, unidirectional. */
    m->num_layers = 1;
    m->nonlinearity = RNN_TANH;
    m->bias = true;
    m->bidirectional = false;

    static const char *const required[] = {"name",        "type",    "input_size",
                                           "hidden_size", "weights", NULL};
    for (const char *const *r = required; *r; r++)
        if (!json_object_get(jm, *r))
            return fail(c, "%s.%s: missing (required)", path, *r);

    if (get_str(c, jm, path, "name", &m->name) < 0)
        return -1;
    if (!valid_name(m->name))
        return fail(c, "%s.name: \"%s\" must be 1-128 characters of A-Z a-z 0-9 . _ -", path,
                    m->name);
    if (parse_type(c, jm, path, m) < 0)
        return -1;

    if (get_int(c, jm, path, "input_size", 1, MAX_DIM, &v) < 0)
        return -1;
    m->input_size = (int)v;
    if (get_int(c, jm, path, "hidden_size", 1, MAX_DIM, &v) < 0)
        return -1;
    m->hidden_size = (int)v;
    v = m->num_layers;
    if (get_int(c, jm, path, "num_layers", 1, MAX_LAYERS, &v) < 0)
        return -1;
    m->num_layers = (int)v;

    if (parse_nonlinearity(c, jm, path, m) < 0)
        return -1;
    if (get_bool(c, jm, path, "bias", &m->bias) < 0 ||
        get_bool(c, jm, path, "bidirectional", &m->bidirectional) < 0)
        return -1;
    if (!(m->prefix = strdup("")))
        return fail(c, "%s: out of memory", path);
    if (get_str(c, jm, path, "prefix", &m->prefix) < 0)
        return -1;

    json_t *head = json_object_get(jm, "head");
    if (head && parse_head(c, head, path, m) < 0)
        return -1;
    /* "embedding": the state_dict key of an nn.Embedding's weight, full (no prefix), as the
     * head's are: the model then takes token ids. */
    if (get_str(c, jm, path, "embedding", &m->embedding) < 0)
        return -1;
    if (m->embedding && !m->embedding[0])
        return fail(c, "%s.embedding: empty tensor name", path);
    return parse_weights(c, jm, path, base_dir, m);
}

static void set_server_defaults(cfg_server *s)
{
    s->port = CFG_DEFAULT_PORT;
    s->threads = 0;
    s->max_body_bytes = CFG_DEFAULT_MAX_BODY_BYTES;
    s->max_batch = CFG_DEFAULT_MAX_BATCH;
    s->max_steps = CFG_DEFAULT_MAX_STEPS;
    s->timeout_s = CFG_DEFAULT_TIMEOUT_S;
    s->max_connections = CFG_DEFAULT_MAX_CONNECTIONS;
    s->batch_delay_us = 0;
    s->max_pass_sequences = CFG_DEFAULT_MAX_PASS_SEQUENCES;
    s->max_pass_ms = CFG_DEFAULT_MAX_PASS_MS;
    s->max_queue_ms = CFG_DEFAULT_MAX_QUEUE_MS;
    s->queue_timeout_ms = CFG_DEFAULT_QUEUE_TIMEOUT_MS;
    s->max_sessions = CFG_DEFAULT_MAX_SESSIONS;
    s->session_ttl_s = CFG_DEFAULT_SESSION_TTL_S;
    s->playground = true;
}

static int load(const char *buf, size_t len, const char *file, const char *base_dir,
                cfg_config **out, char *err, size_t errlen)
{
    ctx c = {file, err, errlen};
    json_error_t jerr;
    json_t *root = NULL;
    cfg_config *cfg = NULL;
    *out = NULL;

    root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        fail(&c, "invalid JSON at line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
        goto fail;
    }
    if (!(cfg = calloc(1, sizeof *cfg)) || !(cfg->path = strdup(file))) {
        fail(&c, "out of memory");
        goto fail;
    }
    set_server_defaults(&cfg->server);
    cfg->server.host = strdup(CFG_DEFAULT_HOST);
    cfg->server.cors_origins = calloc(2, sizeof(char *));
    if (!cfg->server.host || !cfg->server.cors_origins ||
        !(cfg->server.cors_origins[0] = strdup("*"))) {
        fail(&c, "out of memory");
        goto fail;
    }
    cfg->server.n_cors_origins = 1;

    if (!json_is_object(root)) {
        fail(&c, "expected a JSON object with \"server\" and \"models\", got %s", json_kind(root));
        goto fail;
    }
    static const char *const top[] = {"server", "models", NULL};
    if (check_keys(&c, root, "", top) < 0)
        goto fail;
    json_t *srv = json_object_get(root, "server");
    if (srv && parse_server(&c, srv, base_dir, &cfg->server) < 0)
        goto fail;

    json_t *models = json_object_get(root, "models");
    if (!models) {
        fail(&c, "models: missing (a list of at least one model)");
        goto fail;
    }
    if (!json_is_array(models) || json_array_size(models) == 0) {
        fail(&c, "models: expected a non-empty array, got %s",
             json_is_array(models) ? "an empty array" : json_kind(models));
        goto fail;
    }
    cfg->models = calloc(json_array_size(models), sizeof *cfg->models);
    if (!cfg->models) {
        fail(&c, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < json_array_size(models); i++) {
        cfg->n_models = i + 1;
        if (parse_model(&c, json_array_get(models, i), i, base_dir, &cfg->models[i]) < 0)
            goto fail;
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->models[j].name, cfg->models[i].name) == 0) {
                fail(&c, "models[%zu].name: \"%s\" is already the name of models[%zu]", i,
                     cfg->models[i].name, j);
                goto fail;
            }
    }
    json_decref(root);
    *out = cfg;
    return 0;

fail:
    json_decref(root);
    cfg_free(cfg);
    return -1;
}

int cfg_load_buffer(const char *buf, size_t len, const char *base_dir, cfg_config **out, char *err,
                    size_t errlen)
{
    return load(buf, len, "<config>", base_dir, out, err, errlen);
}

int cfg_load_file(const char *path, cfg_config **out, char *err, size_t errlen)
{
    char *buf = NULL, *dir = NULL, msg[512];
    size_t len = 0, plen = strlen(path);
    int rc = -1;
    *out = NULL;
    if (file_read_all(path, FILE_CAP_CONFIG, &buf, &len, msg, sizeof msg) < 0) {
        /* msg is "PATH: why"; keep README's "PATH: cannot open config: why" */
        const char *why = strncmp(msg, path, plen) == 0 && msg[plen] == ':' ? msg + plen + 2 : msg;
        snprintf(err, errlen, "%s: cannot open config: %s", path, why);
        return -1;
    }
    if (!(dir = strdup(path))) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    else
        dir[0] = '\0';
    rc = load(buf, len, path, dir, out, err, errlen);
fail:
    free(buf);
    free(dir);
    return rc;
}

static void free_model(cfg_model *m)
{
    free(m->name);
    free(m->prefix);
    free(m->weights_path);
    free(m->head_weight);
    free(m->head_bias);
    free(m->embedding);
    for (size_t i = 0; i < m->n_tensors; i++) {
        free(m->tensors[i].name);
        free(m->tensors[i].data);
    }
    free(m->tensors);
}

void cfg_free(cfg_config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_models; i++)
        free_model(&c->models[i]);
    free(c->models);
    free(c->server.host);
    for (size_t i = 0; i < c->server.n_cors_origins; i++)
        free(c->server.cors_origins[i]);
    free(c->server.cors_origins);
    free(c->server.admin_token);
    for (size_t i = 0; i < c->server.n_api_keys; i++)
        free(c->server.api_keys[i]);
    free(c->server.api_keys);
    free(c->server.tls_cert);
    free(c->server.tls_key);
    free(c->path);
    free(c);
}

const cfg_model *cfg_find_model(const cfg_config *c, const char *name)
{
    for (size_t i = 0; i < c->n_models; i++)
        if (strcmp(c->models[i].name, name) == 0)
            return &c->models[i];
    return NULL;
}
