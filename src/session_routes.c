/* session_routes.c - sessions over HTTP: creating one (its optional initial state read strictly),
 * stepping it through the compute hand-off like any forward pass (so steps of many sessions merge
 * into one engine pass), reading and ending it, the Open Inference Protocol's sequence extension,
 * the sessions' metrics families, and which sessions a reload keeps.
 *
 * A step holds its session from before decoding until its pass is over: the computed hook
 * (compute.h) copies the final state back and hands the session back on the scheduler's thread,
 * before the response is encoded, so that the client's next step never finds it busy. */
#include "session_routes.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rnnserve/buf.h"
#include "rnnserve/floatfmt.h"
#include "rnnserve/rnn.h"

/* CLOCK_MONOTONIC in ns, for the access log's decode_ms. */
static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static const char *const JSON = "application/json";

/* The state a model's sessions carry. */
static sess_shape shape_of(const rnn_info *in)
{
    return (sess_shape){in->num_layers * in->num_directions, in->hidden_size,
                        rnn_cell_describe(in->type)->has_cell};
}

static int same_shape(const sess_shape *a, const sess_shape *b)
{
    return a->rows == b->rows && a->hidden == b->hidden && a->has_cell == b->has_cell;
}

/* The table's answer as an HTTP error in the request's format (sessions.h maps the statuses). */
static enum MHD_Result sess_fail(req *r, sess_status st, const char *why)
{
    const char *const retry[] = {"Retry-After", "1", NULL};
    const char *what = r->session ? r->session : "";
    switch (st) {
    case SESS_UNKNOWN:
        return http_respond_error(
            r, 404, NULL, "session %s: no such session (POST /v1/models/{name}/sessions makes one)",
            what);
    case SESS_ENDED:
        return http_respond_error(r, 410, NULL, "session %s has ended: %s", what, why);
    case SESS_BUSY:
        return http_respond_error(r, 409, NULL, "session %s: %s (send its steps one at a time)",
                                  what, why);
    case SESS_FULL:
        return http_respond_error(r, 503, retry, "%s", why);
    case SESS_INVALID:
        return http_respond_error(r, 400, NULL, "%s", why);
    default:
        return http_respond_error(r, 500, NULL, "%s", why);
    }
}

/* ---------------------------------------------------------------------------------------------
 * State as JSON */

/* ROWS rows of N floats: [[a,b],[c,d]] (null for a non-finite value, which a step never keeps). */
static void put_rows(buf *b, const float *v, int rows, int n)
{
    char num[FF_MAX_LEN];
    buf_putc(b, '[');
    for (int i = 0; i < rows; i++) {
        buf_puts(b, i ? ",[" : "[");
        for (int k = 0; k < n; k++) {
            const float x = v[(size_t)i * (size_t)n + (size_t)k];
            if (k)
                buf_putc(b, ',');
            if (isfinite(x))
                buf_append(b, num, ff_format_f32(x, num));
            else
                buf_puts(b, "null");
        }
        buf_putc(b, ']');
    }
    buf_putc(b, ']');
}

/* GET's and DELETE's body for the held session REF, whose id is ID: malloc'ed, NULL when out of
 * memory. EXPIRES_S: what the client is told is left. */
static char *state_body(sess_ref *ref, const char *id, double expires_s, size_t *len)
{
    const sess_shape *sh = sess_shape_of(ref);
    buf b = BUF_INIT;
    buf_puts(&b, "{\"session\":");
    buf_json_string(&b, id);
    buf_puts(&b, ",\"model\":");
    buf_json_string(&b, sess_model(ref));
    buf_printf(&b, ",\"steps\":%llu,\"hidden\":", (unsigned long long)sess_steps(ref));
    put_rows(&b, sess_state_h(ref), sh->rows, sh->hidden);
    if (sh->has_cell) {
        buf_puts(&b, ",\"cell\":");
        put_rows(&b, sess_state_c(ref), sh->rows, sh->hidden);
    }
    buf_printf(&b, ",\"idle_s\":%.3f,\"expires_in_s\":%.0f}", sess_idle_s(ref), expires_s);
    return buf_take(&b, len);
}

/* A create body's NAME ("h0" or "c0"): ROWS arrays of N numbers, each a float32, into a new
 * array in *OUT. 0, or -1 with the message (naming the JSON path) in msg[msglen]. */
static int read_rows(const json_t *v, const char *name, int rows, int n, float **out, char *msg,
                     size_t msglen)
{
    if (!json_is_array(v) || json_array_size(v) != (size_t)rows) {
        snprintf(msg, msglen,
                 "%s: expected %d rows (num_layers * num_directions) of %d numbers (hidden_size), "
                 "the layout of a /forward response's \"hidden\" for one sequence",
                 name, rows, n);
        return -1;
    }
    float *f = malloc((size_t)rows * (size_t)n * sizeof *f);
    if (!f) {
        snprintf(msg, msglen, "out of memory");
        return -1;
    }
    for (int i = 0; i < rows; i++) {
        const json_t *row = json_array_get(v, (size_t)i);
        if (!json_is_array(row) || json_array_size(row) != (size_t)n) {
            snprintf(msg, msglen, "%s[%d]: expected an array of %d numbers (hidden_size)", name, i,
                     n);
            goto fail;
        }
        for (int k = 0; k < n; k++) {
            const json_t *x = json_array_get(row, (size_t)k);
            const double d = json_number_value(x);
            if (!json_is_number(x)) {
                snprintf(msg, msglen, "%s[%d][%d]: expected a number", name, i, k);
                goto fail;
            }
            if (!(fabs(d) <= FLT_MAX)) {
                snprintf(msg, msglen, "%s[%d][%d]: %g is not representable as float32", name, i, k,
                         d);
                goto fail;
            }
            f[(size_t)i * (size_t)n + (size_t)k] = (float)d;
        }
    }
    *out = f;
    return 0;
fail:
    free(f);
    return -1;
}

/* A create body: empty, or {"h0": [...], "c0": [...]} for a model of INFO with state SH. 0 with
 * the states in *H0, *C0 (malloc'ed or NULL: zeros), or -1 with the message in msg[msglen]. */
static int read_create_body(const char *body, size_t len, const rnn_info *in, const sess_shape *sh,
                            float **h0, float **c0, char *msg, size_t msglen)
{
    size_t i = 0;
    *h0 = *c0 = NULL;
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
        i++;
    if (i == len)
        return 0;
    json_error_t err;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err), *v;
    const char *key;
    if (!root) {
        snprintf(msg, msglen, "malformed JSON at line %d, column %d: %s", err.line, err.column,
                 err.text);
        return -1;
    }
    if (!json_is_object(root)) {
        snprintf(msg, msglen,
                 "request body: expected a JSON object with optional \"h0\" and "
                 "\"c0\"");
        goto fail;
    }
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "h0") == 0) {
            if (read_rows(v, "h0", sh->rows, sh->hidden, h0, msg, msglen) < 0)
                goto fail;
        } else if (strcmp(key, "c0") == 0) {
            if (!sh->has_cell) {
                snprintf(msg, msglen, "c0: model \"%s\" is a %s: only an LSTM has a cell state",
                         in->name, rnn_cell_describe(in->type)->name);
                goto fail;
            }
            if (read_rows(v, "c0", sh->rows, sh->hidden, c0, msg, msglen) < 0)
                goto fail;
        } else {
            snprintf(msg, msglen, "\"%.64s\": unknown field (a new session takes \"h0\" and %s)",
                     key, sh->has_cell ? "\"c0\"" : "nothing else");
            goto fail;
        }
    }
    json_decref(root);
    return 0;
fail:
    json_decref(root);
    free(*h0);
    free(*c0);
    *h0 = *c0 = NULL;
    return -1;
}

/* ---------------------------------------------------------------------------------------------
 * Routes */

/* The {id} capture, NUL-terminated, as r->session (an id is 32 characters: longer is unknown
 * and cut here, only for the messages). */
static const char *take_id(req *r)
{
    size_t n = r->sid_len < SESS_ID_LEN ? r->sid_len : SESS_ID_LEN;
    memcpy(r->session_buf, r->sid, n);
    r->session_buf[n] = '\0';
    r->session = r->session_buf;
    return r->sid_len <= SESS_ID_LEN ? r->session_buf : "";
}

static int refuse_bidirectional(req *r, const rnn_info *in, enum MHD_Result *ret)
{
    if (in->num_directions == 1)
        return 0;
    *ret = http_respond_error(r, 400, NULL,
                              "model \"%s\" is bidirectional: it cannot be stepped (its backward "
                              "direction needs the future of the sequence); send the whole "
                              "sequence to /v1/models/%s/forward",
                              in->name, in->name);
    return 1;
}

enum MHD_Result sr_create(req *r)
{
    const rnn_info *in = rnn_model_info(r->model);
    const sess_shape sh = shape_of(in);
    float *h0, *c0;
    char msg[512], id[SESS_ID_LEN + 1];
    enum MHD_Result ret;
    if (r->too_big)
        return http_respond_error(r, 413, NULL, "request body exceeds max_body_bytes %zu",
                                  r->s->cfg->server.max_body_bytes);
    if (refuse_bidirectional(r, in, &ret))
        return ret;
    if (read_create_body(r->body, r->len, in, &sh, &h0, &c0, msg, sizeof msg) < 0)
        return http_respond_error(r, 400, NULL, "%s", msg);
    sess_status st = sess_create(r->s->sessions, in->name, &sh, h0, c0, id, NULL, msg, sizeof msg);
    free(h0);
    free(c0);
    if (st != SESS_OK)
        return sess_fail(r, st, msg);
    memcpy(r->session_buf, id, sizeof id);
    r->session = r->session_buf;
    buf b = BUF_INIT;
    buf_puts(&b, "{\"session\":");
    buf_json_string(&b, id);
    buf_puts(&b, ",\"model\":");
    buf_json_string(&b, in->name);
    buf_printf(&b, ",\"steps\":0,\"expires_in_s\":%.0f}", sess_ttl_s(r->s->sessions));
    size_t len;
    char *body = buf_take(&b, &len), location[64];
    if (!body)
        return MHD_NO;
    snprintf(location, sizeof location, "/v1/sessions/%s", id);
    const char *const extra[] = {"Location", location, NULL};
    return http_respond(r, 201, body, len, 1, JSON, extra);
}

static int all_finite(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return 0;
    return 1;
}

/* compute_job.computed, on the thread that ran the pass: the state advances only when the pass
 * succeeded with a state JSON can carry (a diverged model's NaN is answered 422 and the session
 * stays where it was). */
static void step_computed(compute_job *j, int ok)
{
    req *r = j->computed_ctx;
    sess_ref *ref = r->sess;
    const sess_shape *sh = sess_shape_of(ref);
    const size_t n = (size_t)sh->rows * (size_t)sh->hidden;
    const rnn_result *res = api_call_result(j->call);
    r->sess = NULL;
    ok = ok && all_finite(res->hidden, n) && (!sh->has_cell || all_finite(res->cell, n));
    if (ok) {
        memcpy(sess_state_h(ref), res->hidden, n * sizeof(float));
        if (sh->has_cell)
            memcpy(sess_state_c(ref), res->cell, n * sizeof(float));
    }
    sess_release(r->s->sessions, ref, ok ? r->sess_steps : 0, ok ? r->sess_how : SESS_KEEP);
}

/* Steps the held session REF with CALL (decoded for MODEL, one sequence, no h0/c0; owned from
 * here): its state in, the hook to carry it out, then the hand-off. EXTRA: members to append to
 * the response (NULL: none). Releases REF on every path. */
static enum MHD_Result run_step(req *r, sess_ref *ref, const rnn_model *model, api_call *call,
                                sess_end how, const char *extra, int64_t decode_ns)
{
    if (api_call_use_state(call, sess_state_h(ref), sess_state_c(ref)) < 0 ||
        (extra && api_call_extra_fields(call, extra) < 0)) {
        api_call_free(call);
        sess_release(r->s->sessions, ref, 0, SESS_KEEP);
        return http_respond_error(r, 503, NULL, "out of memory for a session step");
    }
    r->model = model;
    r->sess = ref;
    r->sess_how = how;
    r->sess_steps = (uint64_t)api_call_batch(call)->lengths[0];
    r->job = (compute_job){.wire = r->wire,
                           .model = model,
                           .body = r->body,
                           .len = r->len,
                           .arrival_ns = (int64_t)r->t0.tv_sec * 1000000000LL + r->t0.tv_nsec,
                           .computed = step_computed,
                           .computed_ctx = r,
                           .call = call,
                           .decode_ns = decode_ns};
    return http_submit(r);
}

/* What a step's body may not hold: more than one sequence, or a state of its own. 1 when it
 * answered the error (CALL freed, REF released). */
static int refuse_step_body(req *r, sess_ref *ref, api_call **call, const char *where,
                            enum MHD_Result *ret)
{
    const rnn_batch *b = api_call_batch(*call);
    if (b->batch == 1 && !b->h0 && !b->c0)
        return 0;
    const size_t n = b->batch;
    const int state = b->h0 || b->c0;
    api_call_free(*call);
    *call = NULL;
    sess_release(r->s->sessions, ref, 0, SESS_KEEP);
    if (state)
        *ret = http_respond_error(r, 400, NULL,
                                  "%s: a session's state is the server's: a step takes no h0 or "
                                  "c0 (start a new session from a state instead)",
                                  where);
    else
        *ret = http_respond_error(r, 400, NULL,
                                  "%s: a session steps one sequence, got %zu (send "
                                  "{\"inputs\": [[step, step, ...]]})",
                                  where, n);
    return 1;
}

/* The model of the held session REF in the request's model set, with the same state shape; NULL
 * when it answered the error (REF released). */
static const rnn_model *session_model(req *r, sess_ref *ref, enum MHD_Result *ret)
{
    const char *name = sess_model(ref);
    const rnn_model *m = modelset_find(r->set, name, strlen(name), NULL);
    if (!m) {
        sess_release(r->s->sessions, ref, 0, SESS_KEEP);
        *ret = http_respond_error(r, 410, NULL,
                                  "session %s: its model \"%s\" is no longer served (a reload "
                                  "removed it)",
                                  r->session, name);
        return NULL;
    }
    const sess_shape sh = shape_of(rnn_model_info(m));
    if (!same_shape(&sh, sess_shape_of(ref))) {
        /* this request began on the models before a reload, the session after it */
        sess_release(r->s->sessions, ref, 0, SESS_KEEP);
        const char *const retry[] = {"Retry-After", "1", NULL};
        *ret = http_respond_error(
            r, 503, retry, "model \"%s\" was reloaded while this request arrived; retry", name);
        return NULL;
    }
    return m;
}

enum MHD_Result sr_forward(req *r)
{
    char why[512], *err;
    size_t errlen;
    sess_ref *ref;
    api_call *call;
    enum MHD_Result ret;
    const char *id = take_id(r);
    if (r->too_big)
        return http_respond_error(r, 413, NULL, "request body exceeds max_body_bytes %zu",
                                  r->s->cfg->server.max_body_bytes);
    sess_status st = sess_acquire(r->s->sessions, id, &ref, why, sizeof why);
    if (st != SESS_OK)
        return sess_fail(r, st, why);
    const rnn_model *m = session_model(r, ref, &ret);
    if (!m)
        return ret;
    const int64_t t0 = now_ns();
    int status = api_decode(r->wire, m, r->body, r->len, &r->s->lim, &call, &err, &errlen);
    const int64_t decode_ns = now_ns() - t0;
    if (status != 200) {
        sess_release(r->s->sessions, ref, 0, SESS_KEEP);
        return err ? http_respond(r, status, err, errlen, 1, JSON, NULL) : MHD_NO;
    }
    if (refuse_step_body(r, ref, &call, "inputs", &ret))
        return ret;
    char extra[96];
    snprintf(extra, sizeof extra, "\"session\":\"%s\",\"steps\":%llu", id,
             (unsigned long long)(sess_steps(ref) + (uint64_t)api_call_batch(call)->lengths[0]));
    return run_step(r, ref, m, call, SESS_KEEP, extra, decode_ns);
}

enum MHD_Result sr_state(req *r)
{
    char why[512];
    sess_ref *ref;
    const int deleting = strcmp(r->method, "DELETE") == 0;
    const char *id = take_id(r);
    sess_status st = sess_acquire(r->s->sessions, id, &ref, why, sizeof why);
    if (st != SESS_OK)
        return sess_fail(r, st, why);
    size_t len;
    char *body = state_body(ref, id, deleting ? 0 : sess_ttl_s(r->s->sessions), &len);
    sess_release(r->s->sessions, ref, 0, deleting ? SESS_DELETE : SESS_KEEP);
    if (!body)
        return MHD_NO;
    return http_respond_json(r, 200, body, len);
}

/* The keyed session's id for the access log and messages: seq:<number>, or seq:<string> with
 * anything but [A-Za-z0-9._-] as '_' (a log line stays one line of fields), cut to fit. */
static void sequence_name(req *r, const api_sequence *q)
{
    if (!q->is_string) {
        snprintf(r->session_buf, sizeof r->session_buf, "seq:%llu", (unsigned long long)q->num);
    } else {
        size_t n = 0;
        memcpy(r->session_buf, "seq:", 4);
        for (; n < q->len && n + 5 < sizeof r->session_buf; n++) {
            const char c = q->str[n];
            r->session_buf[4 + n] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                            (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                                            c == '-'
                                        ? c
                                        : '_';
        }
        r->session_buf[4 + n] = '\0';
    }
    r->session = r->session_buf;
}

enum MHD_Result sr_v2_infer(req *r)
{
    char why[512], *err;
    size_t errlen;
    api_call *call;
    sess_ref *ref;
    enum MHD_Result ret;
    if (r->too_big)
        return http_respond_error(r, 413, NULL, "request body exceeds max_body_bytes %zu",
                                  r->s->cfg->server.max_body_bytes);
    const int64_t t0 = now_ns();
    int status = api_decode(r->wire, r->model, r->body, r->len, &r->s->lim, &call, &err, &errlen);
    const int64_t decode_ns = now_ns() - t0;
    if (status != 200)
        return err ? http_respond(r, status, err, errlen, 1, JSON, NULL) : MHD_NO;
    const api_sequence *q = api_call_sequence(call);
    if (!q->given) {
        r->job = (compute_job){.wire = r->wire,
                               .model = r->model,
                               .body = r->body,
                               .len = r->len,
                               .arrival_ns = (int64_t)r->t0.tv_sec * 1000000000LL + r->t0.tv_nsec,
                               .call = call,
                               .decode_ns = decode_ns};
        return http_submit(r);
    }
    const rnn_info *in = rnn_model_info(r->model);
    const sess_shape sh = shape_of(in);
    sequence_name(r, q);
    if (refuse_bidirectional(r, in, &ret)) {
        api_call_free(call);
        return ret;
    }
    const sess_key key = {q->is_string ? q->str : NULL, q->len, q->num};
    const sess_end how = q->end ? SESS_END_SEQUENCE : SESS_KEEP;
    sess_status st =
        q->start ? sess_create_keyed(r->s->sessions, in->name, &key, &sh, NULL, NULL, &ref, why,
                                     sizeof why)
                 : sess_acquire_keyed(r->s->sessions, in->name, &key, &ref, why, sizeof why);
    if (st == SESS_UNKNOWN) {
        api_call_free(call);
        return http_respond_error(r, 400, NULL,
                                  "parameters.sequence_id: sequence %s of model \"%s\" was not "
                                  "started (send \"sequence_start\": true with its first request)",
                                  r->session + 4, in->name);
    }
    if (st != SESS_OK) {
        api_call_free(call);
        return sess_fail(r, st, why);
    }
    /* A session kept over a reload has the shape of the models this request holds, or the
     * request began before a reload that changed it. */
    if (!same_shape(&sh, sess_shape_of(ref))) {
        api_call_free(call);
        sess_release(r->s->sessions, ref, 0, SESS_KEEP);
        const char *const retry[] = {"Retry-After", "1", NULL};
        return http_respond_error(
            r, 503, retry, "model \"%s\" was reloaded while this request arrived; retry", in->name);
    }
    if (refuse_step_body(r, ref, &call, "inputs[input]", &ret))
        return ret;
    return run_step(r, ref, r->model, call, how, NULL, decode_ns);
}

/* ---------------------------------------------------------------------------------------------
 * Metrics and reload */

char *sr_metrics_append(srv *s, char *text, size_t *len)
{
    sess_stats st;
    sess_get_stats(s->sessions, &st);
    buf b = BUF_INIT;
    buf_append(&b, text, *len);
    free(text);
    buf_printf(&b,
               "# HELP rnnserve_sessions_active Sessions alive now (idle or stepping).\n"
               "# TYPE rnnserve_sessions_active gauge\n"
               "rnnserve_sessions_active %zu\n"
               "# HELP rnnserve_sessions_created_total Sessions created (a v2 sequence_start "
               "on a live sequence counts as an end and a creation).\n"
               "# TYPE rnnserve_sessions_created_total counter\n"
               "rnnserve_sessions_created_total %llu\n"
               "# HELP rnnserve_sessions_ended_total Sessions ended, whatever the cause.\n"
               "# TYPE rnnserve_sessions_ended_total counter\n"
               "rnnserve_sessions_ended_total %llu\n"
               "# HELP rnnserve_sessions_expired_total Sessions ended by server.session_ttl_s.\n"
               "# TYPE rnnserve_sessions_expired_total counter\n"
               "rnnserve_sessions_expired_total %llu\n"
               "# HELP rnnserve_sessions_evicted_total Idle sessions ended to make room "
               "(server.max_sessions).\n"
               "# TYPE rnnserve_sessions_evicted_total counter\n"
               "rnnserve_sessions_evicted_total %llu\n",
               st.active, (unsigned long long)st.created, (unsigned long long)st.ended,
               (unsigned long long)st.expired, (unsigned long long)st.evicted);
    return buf_take(&b, len);
}

/* sess_reload's question: whether the model of a session (MODEL, its state SH) is still served
 * by the set CTX with that state shape; if not, WHY says what changed. */
static bool keep_session(const char *model, const sess_shape *sh, char *why, size_t whylen,
                         void *ctx)
{
    const modelset *set = ctx;
    const rnn_model *m = modelset_find(set, model, strlen(model), NULL);
    if (!m) {
        snprintf(why, whylen, "ended by a reload that removed model \"%s\"", model);
        return false;
    }
    const sess_shape now = shape_of(rnn_model_info(m));
    if (same_shape(&now, sh))
        return true;
    snprintf(why, whylen,
             "ended by a reload that changed model \"%s\"'s state from %d x %d%s to %d x %d%s",
             model, sh->rows, sh->hidden, sh->has_cell ? " (with a cell)" : "", now.rows,
             now.hidden, now.has_cell ? " (with a cell)" : "");
    return false;
}

size_t sr_reload(srv *s, const modelset *set)
{
    return sess_reload(s->sessions, keep_session, (void *)set);
}
