/* config.h - the rnnserve config file: server settings and model entries.
 *
 * Parses and validates the JSON config (docs/API.md), applies PyTorch's defaults, and rejects
 * unknown keys by name so that a typo cannot silently change a model. It does not read weight
 * files: a model entry carries either a resolved path or the inline tensors, already float32. */
#ifndef RNNSERVE_CONFIG_H
#define RNNSERVE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rnnserve/rnn.h"

/* One inline tensor ("weights": {"weight_ih_l0": [[...]]}): ndim 1 or 2, row-major float32. */
typedef struct {
    char *name;
    int ndim;
    int64_t shape[2];
    size_t numel;
    float *data;
} cfg_tensor;

typedef struct {
    char *name;
    rnn_cell_type type;
    int input_size;
    int hidden_size;
    int num_layers;
    rnn_nonlinearity nonlinearity;
    bool bias;
    bool bidirectional;
    char *prefix;        /* "" when absent */
    char *weights_path;  /* safetensors path resolved against the config's folder, or NULL */
    cfg_tensor *tensors; /* inline weights, or NULL when weights_path is set */
    size_t n_tensors;
    /* An optional linear head applied at every step (PyTorch's self.fc = nn.Linear(D*H, O)),
     * named by its state_dict keys; NULL head_weight: no head. */
    char *head_weight;
    char *head_bias; /* NULL: no bias */
    rnn_head_activation head_activation;
    /* An optional input embedding (PyTorch's nn.Embedding before the RNN), named by its
     * state_dict key; NULL: the model takes float inputs. */
    char *embedding;
} cfg_model;

typedef struct {
    char *host;
    int port;
    int threads; /* 0: one per core */
    size_t max_body_bytes;
    int max_batch;
    int max_steps;
    int timeout_s;
    int max_connections;
    /* the scheduler (docs/ARCHITECTURE.md, "The scheduler") */
    int batch_delay_us;     /* how long a pass may wait for company */
    int max_pass_sequences; /* sequences one merged pass may hold */
    int max_pass_ms;        /* estimated compute one merged pass may hold */
    int max_queue_ms;       /* estimated compute the queue may hold, per compute thread */
    int queue_timeout_ms;   /* the deadline of a request that brings none */
    /* sessions (docs/API.md, "Sessions") */
    int max_sessions;    /* live sessions at most; then the least recently used idle one goes */
    int session_ttl_s;   /* idle time before a session expires */
    char **cors_origins; /* "*" allows any origin */
    size_t n_cors_origins;
    bool playground;   /* serve the playground page at GET / */
    char *admin_token; /* enables POST /v1/admin/reload for this bearer token; NULL: off */
    char **api_keys;   /* bearer keys the model endpoints require; NULL: open */
    size_t n_api_keys;
    char *tls_cert; /* PEM paths (resolved against the config's folder): HTTPS when set */
    char *tls_key;
} cfg_server;

typedef struct {
    char *path; /* the file it was read from ("<string>" when parsed from memory) */
    cfg_server server;
    cfg_model *models; /* at least one; the first is the default model */
    size_t n_models;
} cfg_config;

/* Server defaults as docs/API.md states them. */
#define CFG_DEFAULT_HOST "0.0.0.0"
#define CFG_DEFAULT_PORT 8080
#define CFG_DEFAULT_MAX_BODY_BYTES 16777216u
#define CFG_DEFAULT_MAX_BATCH 1024
#define CFG_DEFAULT_MAX_STEPS 100000
#define CFG_DEFAULT_TIMEOUT_S 30
#define CFG_DEFAULT_MAX_CONNECTIONS 1024
#define CFG_DEFAULT_MAX_PASS_SEQUENCES 256
#define CFG_DEFAULT_MAX_PASS_MS 100
#define CFG_DEFAULT_MAX_QUEUE_MS 2000
#define CFG_DEFAULT_QUEUE_TIMEOUT_MS 5000
#define CFG_DEFAULT_MAX_SESSIONS 10000
#define CFG_DEFAULT_SESSION_TTL_S 300

/* Reads and validates the config file at PATH. On success returns 0 and stores a new config in
 * *out (free with cfg_free). On failure returns -1 and writes one message naming the file and
 * the key (e.g. `models[0]."hiden_size": unknown key`) into err[errlen]. */
int cfg_load_file(const char *path, cfg_config **out, char *err, size_t errlen);

/* As cfg_load_file, from a buffer; relative weight paths resolve against BASE_DIR. */
int cfg_load_buffer(const char *buf, size_t len, const char *base_dir, cfg_config **out, char *err,
                    size_t errlen);

void cfg_free(cfg_config *c);

/* The model called NAME, or NULL. */
const cfg_model *cfg_find_model(const cfg_config *c, const char *name);

#endif
