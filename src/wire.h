/* wire.h - what a wire format implements for the one forward path (forward.c), and the few
 * helpers the formats share (wire.c). Private to the api layer: the HTTP layer sees api.h only.
 *
 * A format decodes a body into its own request (which owns the engine's batch and knows what to
 * answer with), bounds and encodes the response, and writes its error and metadata bodies; the
 * forward path owns everything between: the result buffers, the forward pass and the head. */
#ifndef RNNSERVE_WIRE_H
#define RNNSERVE_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rnnserve/api.h"
#include "rnnserve/buf.h"
#include "rnnserve/engine.h"
#include "rnnserve/jsonscan.h"

#define WIRE_MSG_LEN 512

/* An error for the client: its HTTP status (400, 413, 422; 500/503 when out of memory) and a
 * message naming where (a JSON path). */
typedef struct {
    int status;
    char message[WIRE_MSG_LEN];
} wire_error;

/* Fills E and returns -1. */
int wire_fail(wire_error *e, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* wire_fail unless *SET says an earlier error of its kind is already there (then E is kept);
 * sets *SET. For decoders that find several problems in one pass and report the first. */
void wire_first(wire_error *e, bool *set, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Parts of the response a request asks for. */
enum { WIRE_OUTPUTS = 1, WIRE_HIDDEN = 2, WIRE_CELL = 4, WIRE_PREDICTIONS = 8 };

/* What a decoded request tells the forward path. */
typedef struct {
    const rnn_batch *batch; /* borrowed from the format's request; its x is NULL when tokens
                               are given (the forward path embeds them) */
    const int32_t *tokens;  /* a token model's ids, (steps), already checked against the
                               vocabulary; borrowed from the format's request; NULL: floats */
    unsigned parts;         /* WIRE_* bits the forward pass must produce */
    size_t steps;           /* sum of the batch's lengths */
    int64_t timeout_us;     /* the request's own deadline from its arrival; 0: none given */
    bool only_last;         /* outputs and predictions at each sequence's last step only */
    api_sequence seq;       /* v2's sequence parameters (strings borrowed from the request) */
} wire_decoded;

struct api_wire {
    const char *name; /* "v1", "v2" */
    /* Decodes BODY framed as F says (NULL: all JSON; a format without the binary tensor data
     * extension refuses binary framing) for a model described by INFO: 0 with a new request in
     * *req (free it with free_req) and *d filled, or -1 with E (and *req NULL). */
    int (*decode)(const char *body, size_t len, const api_framing *f, const rnn_info *info,
                  const api_limits *lim, void **req, wire_decoded *d, wire_error *e);
    void (*free_req)(void *req);
    /* An upper bound of what encode appends for REQ (every value at its longest). */
    size_t (*response_bytes)(const void *req, const rnn_info *info);
    /* Appends the response for REQ and RES (laid out as engine.h says; for an only_last
     * request, outputs (B, D*H) and predictions (B, O), one row per sequence at its last step,
     * zeros for an empty sequence) to OUT: 0, or -1 with E (422 for a value JSON cannot carry,
     * 500 out of memory). *HEADER_LEN (0 on entry) becomes the JSON header's length when binary
     * tensors follow it in OUT. */
    int (*encode)(const void *req, const rnn_info *info, const rnn_result *res, buf *out,
                  size_t *header_len, wire_error *e);
    /* The format's error body: malloc'ed, NUL-terminated, *len excludes the NUL; NULL when out
     * of memory. */
    char *(*encode_error)(int status, const char *message, size_t *len);
    /* One model's metadata; same ownership as encode_error. */
    char *(*metadata)(const rnn_info *info, int is_default, size_t *len);
};

/* ---- rnnserve's v1 JSON (wire_v1.c), open to the tests and tools that time or probe its
 * decoder and encoder on their own. */

typedef struct wire_v1_request wire_v1_request;

/* Decodes a forward request body: 0 with a new request in *out (free with wire_v1_free), or -1
 * with *out NULL and E filled (400 malformed or mis-shaped, 413 over a limit). */
int wire_v1_decode(const char *body, size_t len, const rnn_info *info, const api_limits *lim,
                   wire_v1_request **out, wire_error *e);
void wire_v1_free(wire_v1_request *r);
/* A route whose body is a forward body plus fields of its own (generate): FIELD(CTX, key, js)
 * sees every top-level key first, the cursor on its value (depth 2), and returns 1 when it read
 * the value (keeping its own errors), 0 to leave the key to the forward decoder, -1 when the
 * reader failed. NAMES lists, for the unknown-field message, what may follow "inputs"/"tokens",
 * "h0", "c0" (e.g. "\"steps\", \"seed\"" and the forward fields it keeps). */
typedef struct {
    int (*field)(void *ctx, const js_str *key, js_reader *js);
    void *ctx;
    const char *names;
} wire_v1_fields;
/* wire_v1_decode with MORE's fields (NULL: none). */
int wire_v1_decode_with(const char *body, size_t len, const rnn_info *info, const api_limits *lim,
                        const wire_v1_fields *more, wire_v1_request **out, wire_error *e);
/* "timeout_ms" in microseconds; 0 when not given. */
int64_t wire_v1_timeout_us(const wire_v1_request *r);
/* The decoded batch; borrowed, valid as long as the request. */
const rnn_batch *wire_v1_batch(const wire_v1_request *r);
/* WIRE_* bits of the parts to return; significant digits (1..9) to print; total steps. */
unsigned wire_v1_parts(const wire_v1_request *r);
int wire_v1_precision(const wire_v1_request *r);
size_t wire_v1_steps(const wire_v1_request *r);
/* A token model's ids (wire_v1_steps of them; the batch's x is then NULL), else NULL; borrowed. */
const int32_t *wire_v1_tokens(const wire_v1_request *r);
/* "only_last": true. */
bool wire_v1_only_last(const wire_v1_request *r);
/* The response for REQ and RES as a new malloc'ed buffer (*out, not NUL-terminated, *len bytes):
 * 0, or -1 with E (422 a non-finite value, 500 out of memory). */
int wire_v1_encode(const char *model_name, const rnn_info *info, const wire_v1_request *req,
                   const rnn_result *res, char **out, size_t *len, wire_error *e);

/* ---- shared by the formats (wire.c) */

/* Reads BODY in one strict pass (jsonscan.h) with READ_ROOT(CTX), which walks the top-level
 * value with JS, then checks that nothing follows. A number past a double is read as a value out
 * of range, so that it is named where it is, as 1e39 is (issue 15, item 14). 0, or -1 with E: an
 * empty body, malformed JSON (line and column), out of memory (500). The caller releases JS. */
int wire_scan(js_reader *js, const char *body, size_t len, int (*read_root)(void *ctx), void *ctx,
              wire_error *e);

/* The longest of B's lengths. */
size_t wire_max_len(const rnn_batch *b);

/* A padded layout's bound (issue 15, item 1): a per-step part of WIDTH values padded to the
 * longest sequence may hold at most max(4 x its unpadded values, WIRE_PAD_FLOOR) values, so that
 * a response costs about what the request's own steps produce. 0 when B's padding of WIDTH is
 * within it, else -1 with a 413 in E naming the padded size, the limit and what avoids it
 * (AVOID, e.g. "\"layout\": \"ragged\" avoids the padding"). */
#define WIRE_PAD_FLOOR ((size_t)1 << 20)
int wire_padding_check(const rnn_batch *b, size_t width, const char *avoid, wire_error *e);

/* The engine's states (B, L*D, H) as PyTorch's h_n/c_n [L*D][B][H], into DST (room for
 * B*LD*H). */
void wire_states_to_layers(const float *src, size_t B, size_t LD, size_t H, float *dst);
/* The reverse: [L*D][B][H] into the engine's (B, L*D, H). */
void wire_states_from_layers(const float *src, size_t B, size_t LD, size_t H, float *dst);

/* The number [TOK, END) for a message: %g of its value, or its own text (cut to CAP) when it is
 * beyond a double (1e400). Returns BUF. */
const char *wire_number_text(const char *tok, const char *end, char *buf, size_t cap);

/* Reads the JSON number at JS (at nesting DEPTH): 1 with *V when it is a whole number in
 * [0, MAX], 0 when it is not (read all the same), -1 when the text is broken (js holds the
 * error). */
int wire_read_whole(js_reader *js, int depth, double max, double *v);

/* "a number", "an array", ... for messages. */
const char *wire_kind_name(js_kind k);

/* The response parts MODEL can return, quoted and listed for a message in its format's words:
 * NAMES[i] is the name of WIRE bit 1 << i (NULL: the format has none such), e.g.
 * "\"outputs\", \"hidden\" or \"predictions\"". */
void wire_parts_list(const rnn_info *info, const char *const names[4], char *out, size_t cap);

/* The WIRE_* bits that exist for INFO's model. */
unsigned wire_parts_of(const rnn_info *info);

/* ---- the binary tensor data extension's byte layout (wire_v2bin.c): raw little-endian
 * elements, row-major, without padding, after the JSON header */

/* Bytes per element of DTYPE in binary ("FP32", "INT32": 4, "INT64": 8); 0 for a type the
 * models do not take in binary. */
size_t wire_bin_dtype_size(const char *dtype);

/* N elements of DTYPE (one wire_bin_dtype_size knows) at SRC, any alignment, as floats into
 * DST: FP32 copied as they are, integers converted (exact up to 2^24, larger ones still larger
 * than any length they are compared with). */
void wire_bin_to_f32(const char *src, const char *dtype, size_t n, float *dst);

/* Appends N floats as FP32 bytes to OUT; ZEROS more zero floats after them. */
void wire_bin_put_f32(buf *out, const float *v, size_t n, size_t zeros);

#endif
