/* http.c - the libmicrohttpd glue: a request's life from its first callback to its completion
 * (body accumulation and its limits, the compute hand-off of a connection), its request id and
 * traceparent, the respond helpers with CORS, the metrics and access log line of its end, and the
 * daemon itself.
 *
 * Every request is answered once it is complete (answering earlier makes libmicrohttpd close the
 * connection, and keep-alive would be lost), but for the early 413 of a Content-Length over the
 * limit. What answers it is the route table's business (routes.c). */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <strings.h>
#include <sys/socket.h>

#include "http_impl.h"
#include "rnnserve/buf.h"

/* Body bytes past max_body_bytes that are still read (and dropped) so that a chunked upload
 * over the limit can get its 413 at the end; at least this many, or max_body_bytes if larger. */
#define DISCARD_MIN ((size_t)1 << 20)

/* ---------------------------------------------------------------------------------------------
 * Responses */

/* Access-Control-Allow-Origin VALUE, and the headers a page's script may read. */
static int allow_origin(struct MHD_Response *resp, const char *value)
{
    return MHD_add_response_header(resp, "Access-Control-Allow-Origin", value) == MHD_YES &&
           MHD_add_response_header(resp, "Access-Control-Expose-Headers",
                                   "X-Request-Id, Retry-After") == MHD_YES;
}

/* The Access-Control-Allow-Origin value ORIGIN (OLEN bytes, or NULL) earns, or NULL for none;
 * *vary is set when the answer depends on Origin (a list, not "*"). */
static const char *cors_allow(const cfg_server *cs, const char *origin, size_t olen, int *vary)
{
    *vary = 0;
    for (size_t i = 0; i < cs->n_cors_origins; i++)
        if (strcmp(cs->cors_origins[i], "*") == 0)
            return "*";
    *vary = 1;
    for (size_t i = 0; origin && i < cs->n_cors_origins; i++)
        if (strlen(cs->cors_origins[i]) == olen && memcmp(cs->cors_origins[i], origin, olen) == 0)
            return cs->cors_origins[i];
    return NULL;
}

/* Adds the CORS headers the request's Origin earns (none for a disallowed origin). */
static int add_cors(srv *s, struct MHD_Connection *c, struct MHD_Response *resp)
{
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    int vary;
    const char *allow = cors_allow(&s->cfg->server, origin, origin ? strlen(origin) : 0, &vary);
    /* With a list, the answer depends on Origin: say so to caches, whatever the origin. */
    if (vary && MHD_add_response_header(resp, "Vary", "Origin") != MHD_YES)
        return 0;
    return !allow || allow_origin(resp, allow);
}

/* The access line's reason= for an error a route answered, by its status (the scheduler's
 * outcomes name theirs in the job). */
static const char *status_reason(int status)
{
    switch (status) {
    case 400:
    case 422:
        return "invalid";
    case 401:
        return "auth";
    case 404:
        return "not_found";
    case 405:
        return "method";
    case 413:
        return "too_large";
    case 415:
        return "encoding";
    case 500:
        return "internal";
    case 503:
        return "unavailable";
    }
    return status >= 400 ? "error" : NULL;
}

/* Queues BODY, compressed as CODED says (CZ_IDENTITY: not yet, so compressed here when the
 * request's Accept-Encoding allows it and the body is worth it). */
static enum MHD_Result respond_coded(req *r, int status, char *body, size_t len, int owned,
                                     const char *ctype, const char *const *extra, cz_coding coded)
{
    if (coded == CZ_IDENTITY && r->accept != CZ_IDENTITY && cz_worth_compressing(len)) {
        char err[128];
        buf z = BUF_INIT;
        size_t zlen;
        char *zbody = cz_compress(r->accept, body, len, &z, err, sizeof err) == 0
                          ? buf_take(&z, &zlen)
                          : NULL;
        buf_free(&z);
        if (zbody) { /* out of memory sends it as it is */
            if (owned)
                free(body);
            body = zbody;
            len = zlen;
            owned = 1;
            coded = r->accept;
        }
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        if (owned)
            free(body);
        return MHD_NO;
    }
    int ok = add_cors(r->s, r->conn, resp) &&
             MHD_add_response_header(resp, "X-Request-Id", r->rid) == MHD_YES;
    if (ctype)
        ok = ok && MHD_add_response_header(resp, "Content-Type", ctype) == MHD_YES;
    for (; extra && extra[0]; extra += 2)
        ok = ok && MHD_add_response_header(resp, extra[0], extra[1]) == MHD_YES;
    /* every answer could have been compressed for another Accept-Encoding: caches must know,
     * in the one Vary header (CORS may have put Origin there) */
    char vary[64] = "Accept-Encoding";
    const char *v0 = MHD_get_response_header(resp, "Vary");
    if (v0) {
        snprintf(vary, sizeof vary, "%s, Accept-Encoding", v0);
        ok = ok && MHD_del_response_header(resp, "Vary", v0) == MHD_YES;
    }
    ok = ok && MHD_add_response_header(resp, "Vary", vary) == MHD_YES;
    if (coded != CZ_IDENTITY)
        ok = ok &&
             MHD_add_response_header(resp, "Content-Encoding", cz_coding_name(coded)) == MHD_YES;
    int closes = 0;
    for (const char *const *e = extra; e && e[0]; e += 2)
        closes |= strcmp(e[0], "Connection") == 0;
    if (!closes && atomic_load(&r->s->draining))
        ok = ok && MHD_add_response_header(resp, "Connection", "close") == MHD_YES;
    enum MHD_Result ret = ok ? MHD_queue_response(r->conn, (unsigned)status, resp) : MHD_NO;
    MHD_destroy_response(resp);
    if (ret == MHD_YES) {
        r->status = status;
        r->out_bytes = len;
        if (!r->reason)
            r->reason = status_reason(status);
    }
    return ret;
}

enum MHD_Result http_respond(req *r, int status, char *body, size_t len, int owned,
                             const char *ctype, const char *const *extra)
{
    return respond_coded(r, status, body, len, owned, ctype, extra, CZ_IDENTITY);
}

enum MHD_Result http_respond_json(req *r, int status, char *body, size_t len)
{
    return http_respond(r, status, body, len, 1, "application/json", NULL);
}

enum MHD_Result http_respond_static(req *r, int status, const char *body, const char *ctype)
{
    return http_respond(r, status, (char *)body, strlen(body), 0, ctype, NULL);
}

enum MHD_Result http_respond_error(req *r, int status, const char *const *extra, const char *fmt,
                                   ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t len;
    char *body = api_error_body(r->wire, status, msg, &len);
    if (!body)
        return MHD_NO;
    return http_respond(r, status, body, len, 1, "application/json", extra);
}

/* ---------------------------------------------------------------------------------------------
 * A connection's first request head, before libmicrohttpd */

/* Whether a Content-Length value V (N bytes, trimmed) is one libmicrohttpd 0.9.75 would refuse
 * with its own page: 0 when fine, else the status it would give (413 for digits beyond 64 bits,
 * 400 for anything else). */
static int length_refusal(const char *v, size_t n)
{
    if (n == 0)
        return 400;
    unsigned long long x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return 400;
        unsigned d = (unsigned)(v[i] - '0');
        if (x > (ULLONG_MAX - d) / 10)
            return 413;
        x = x * 10 + d;
    }
    return 0;
}

char *http_vet(void *cls, const char *head, size_t len, size_t *alen)
{
    const srv *s = cls;
    const char *end = head + len, *eol = memchr(head, '\n', len);
    const char *target = eol ? memchr(head, ' ', (size_t)(eol - head)) : NULL;
    if (!target)
        return NULL; /* libmicrohttpd's to judge */
    const char *pe = ++target;
    while (pe < eol && *pe != ' ' && *pe != '?' && *pe != '\r')
        pe++;
    char path[256];
    snprintf(path, sizeof path, "%.*s", (int)(pe - target), target);
    const char *origin = NULL, *bad = NULL;
    size_t olen = 0, bad_len = 0;
    int status = 0;
    for (const char *line = eol + 1; line < end;) {
        const char *le = memchr(line, '\n', (size_t)(end - line));
        if (!le)
            break;
        size_t ll = (size_t)(le - line);
        if (ll && line[ll - 1] == '\r')
            ll--;
        const char *colon = ll ? memchr(line, ':', ll) : NULL;
        if (colon) {
            size_t nl = (size_t)(colon - line);
            const char *v = colon + 1, *ve = line + ll;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            if (nl == 14 && strncasecmp(line, "Content-Length", 14) == 0 && !status &&
                (status = length_refusal(v, (size_t)(ve - v)))) {
                bad = v;
                bad_len = (size_t)(ve - v);
            } else if (nl == 6 && strncasecmp(line, "Origin", 6) == 0) {
                origin = v;
                olen = (size_t)(ve - v);
            }
        }
        line = le + 1;
    }
    if (!status)
        return NULL;
    char msg[256]; /* quoting at most 64 bytes of the value; the error body escapes them */
    snprintf(msg, sizeof msg, "Content-Length \"%.*s%s\" %s", bad_len > 64 ? 64 : (int)bad_len, bad,
             bad_len > 64 ? "..." : "", status == 413 ? "exceeds 64 bits" : "is not a number");
    size_t blen;
    char *body = api_error_body(s->router.wire_of(s, path), status, msg, &blen);
    if (!body)
        return NULL;
    int vary;
    const char *allow = cors_allow(&s->cfg->server, origin, olen, &vary);
    buf b = BUF_INIT;
    buf_printf(&b,
               "HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Type: application/json\r\n"
               "Content-Length: %zu\r\n%s",
               status, status == 413 ? "Content Too Large" : "Bad Request", blen,
               vary ? "Vary: Origin\r\n" : "");
    if (allow)
        buf_printf(&b, "Access-Control-Allow-Origin: %s\r\n", allow);
    buf_puts(&b, "\r\n");
    buf_append(&b, body, blen);
    free(body);
    return buf_take(&b, alen);
}

/* ---------------------------------------------------------------------------------------------
 * The compute hand-off of a connection */

static void park(compute_job *j)
{
    req *r = j->ctx;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    r->fd = ci ? ci->connect_fd : -1; /* read here, on the I/O thread: gone() runs elsewhere */
    r->queued = 1;
    MHD_suspend_connection(r->conn);
}

/* On a scheduler thread. MHD's resume takes its own lock, which orders the job's outputs before
 * the I/O thread reads them (answer_job), or on_completed does when the client has gone. */
static void resume(compute_job *j)
{
    req *r = j->ctx;
    r->stats = j->stats;
    MHD_resume_connection(r->conn);
}

/* Whether the client of a parked request has left: its socket reads end-of-file or an error. A
 * pipelined next request reads as data, so it is not mistaken for a leaving client; a client
 * that only shut down its sending side counts as gone, as nginx counts it. */
static int gone(compute_job *j)
{
    const req *r = j->ctx;
    char b;
    if (r->fd < 0)
        return 0;
    ssize_t n = recv(r->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static enum MHD_Result answer_job(req *r)
{
    char *body = r->job.out;
    r->job.out = NULL;
    r->stats = r->job.stats;
    if (!body)
        return MHD_NO; /* cancelled: nobody to answer, the connection closes */
    char retry[16], header_len[24];
    const char *extra[5], **x = extra;
    snprintf(retry, sizeof retry, "%d", r->job.retry_after_s);
    snprintf(header_len, sizeof header_len, "%zu", r->job.header_len);
    if (r->job.retry_after_s > 0) {
        *x++ = "Retry-After";
        *x++ = retry;
    }
    if (r->job.header_len) { /* binary tensors follow a JSON header this long */
        *x++ = "Inference-Header-Content-Length";
        *x++ = header_len;
    }
    *x = NULL;
    return respond_coded(r, r->job.status, body, r->job.outlen, 1,
                         r->job.ctype ? r->job.ctype : api_wire_content_type(r->wire), extra,
                         r->job.coded);
}

int http_framing(req *r, api_framing *f, enum MHD_Result *ret)
{
    char why[160];
    const char *ihcl =
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Inference-Header-Content-Length");
    if (api_framing_parse(ihcl, f, why, sizeof why) == 0)
        return 0;
    *ret = http_respond_error(r, 400, NULL, "%s", why);
    return 1;
}

enum MHD_Result http_forward(req *r)
{
    api_framing framing;
    enum MHD_Result ret;
    if (http_framing(r, &framing, &ret))
        return ret;
    r->job = (compute_job){.wire = r->wire,
                           .model = r->model,
                           .body = r->body,
                           .len = r->len,
                           .framing = framing,
                           .arrival_ns = (int64_t)r->t0.tv_sec * 1000000000LL + r->t0.tv_nsec};
    return http_submit(r);
}

enum MHD_Result http_submit(req *r)
{
    r->job.coding = r->accept; /* a queued answer is compressed where it is encoded */
    r->job.park = park;
    r->job.resume = resume;
    r->job.gone = gone;
    r->job.ctx = r;
    if (compute_submit(r->s->compute, &r->job) == 0)
        return MHD_YES; /* answered by answer_job once the scheduler resumes the connection */
    return answer_job(r);
}

void http_park(req *r)
{
    r->job.ctx = r;
    park(&r->job);
}

void http_unpark(req *r)
{
    resume(&r->job);
}

int http_client_gone(req *r)
{
    return gone(&r->job); /* r->job.ctx is R since http_park */
}

/* ---------------------------------------------------------------------------------------------
 * Streamed responses
 *
 * libmicrohttpd 0.9.75 asks a callback response for its bytes on the connection's I/O thread.
 * With no bytes yet, the reader suspends the connection (the one place besides the request
 * callback where that is allowed) and returns 0; the producer's next push resumes it. Both sides
 * hold the stream's lock around suspend and resume, so a push can never miss a suspension, and
 * the producer never resumes a connection the reader has not suspended. Once the response is
 * destroyed (sent, or the connection closed) nobody resumes anything: the producer only finds
 * the stream closed. */

struct http_stream {
    pthread_mutex_t mu;
    buf q;         /* pushed, from `sent` on not yet read */
    size_t sent;   /* bytes of q already handed to libmicrohttpd */
    int refs;      /* the producer's and the response's */
    int ended;     /* http_stream_end: no more pushes */
    int closed;    /* the response was destroyed */
    int suspended; /* the reader suspended conn, and nobody resumed it yet */
    struct MHD_Connection *conn;
};

http_stream *http_stream_new(void)
{
    http_stream *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    pthread_mutex_init(&st->mu, NULL);
    st->refs = 2;
    return st;
}

/* Drops a reference; the last one frees. Called with st->mu held, which it releases. */
static void stream_unref_locked(http_stream *st)
{
    int last = --st->refs == 0;
    pthread_mutex_unlock(&st->mu);
    if (last) {
        pthread_mutex_destroy(&st->mu);
        buf_free(&st->q);
        free(st);
    }
}

/* With st->mu held. */
static void stream_wake(http_stream *st)
{
    if (st->suspended && !st->closed) {
        st->suspended = 0;
        MHD_resume_connection(st->conn);
    }
}

int http_stream_push(http_stream *st, const char *data, size_t n)
{
    pthread_mutex_lock(&st->mu);
    int ok = !st->closed && !st->ended;
    if (ok) {
        buf_append(&st->q, data, n);
        ok = !st->q.oom;
        stream_wake(st);
    }
    pthread_mutex_unlock(&st->mu);
    return ok ? 0 : -1;
}

int http_stream_closed(http_stream *st)
{
    pthread_mutex_lock(&st->mu);
    int closed = st->closed || st->q.oom;
    pthread_mutex_unlock(&st->mu);
    return closed;
}

void http_stream_end(http_stream *st)
{
    pthread_mutex_lock(&st->mu);
    st->ended = 1;
    stream_wake(st);
    stream_unref_locked(st);
}

/* libmicrohttpd's content reader, on the connection's I/O thread. */
static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
    http_stream *st = cls;
    (void)pos;
    ssize_t n;
    pthread_mutex_lock(&st->mu);
    if (st->q.oom) {
        n = MHD_CONTENT_READER_END_WITH_ERROR;
    } else if (st->sent < st->q.len) {
        size_t k = st->q.len - st->sent < max ? st->q.len - st->sent : max;
        memcpy(out, st->q.data + st->sent, k);
        st->sent += k;
        if (st->sent == st->q.len) /* all read: start the queue over */
            st->sent = st->q.len = 0;
        n = (ssize_t)k;
    } else if (st->ended) {
        n = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        st->suspended = 1;
        MHD_suspend_connection(st->conn);
        n = 0;
    }
    pthread_mutex_unlock(&st->mu);
    return n;
}

static void stream_free(void *cls)
{
    http_stream *st = cls;
    pthread_mutex_lock(&st->mu);
    st->closed = 1;
    stream_unref_locked(st);
}

enum MHD_Result http_respond_stream(req *r, int status, http_stream *st, const char *ctype,
                                    const char *const *extra)
{
    pthread_mutex_lock(&st->mu);
    st->conn = r->conn; /* read by the producer only once the reader has suspended it */
    pthread_mutex_unlock(&st->mu);
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024,
                                                                  stream_read, st, stream_free);
    if (!resp) {
        stream_free(st);
        return MHD_NO;
    }
    int ok = add_cors(r->s, r->conn, resp) &&
             MHD_add_response_header(resp, "Content-Type", ctype) == MHD_YES;
    for (; extra && extra[0]; extra += 2)
        ok = ok && MHD_add_response_header(resp, extra[0], extra[1]) == MHD_YES;
    if (atomic_load(&r->s->draining))
        ok = ok && MHD_add_response_header(resp, "Connection", "close") == MHD_YES;
    enum MHD_Result ret = ok ? MHD_queue_response(r->conn, (unsigned)status, resp) : MHD_NO;
    MHD_destroy_response(resp); /* the connection holds it from here, or stream_free ran */
    if (ret == MHD_YES)
        r->status = status;
    return ret;
}

/* ---------------------------------------------------------------------------------------------
 * A request's callbacks */

/* 413 before reading a body the Content-Length already says is too large; MHD then skips the
 * body and closes the connection. Returns 1 when it answered. */
static int early_413(req *r, enum MHD_Result *ret)
{
    size_t max = r->s->cfg->server.max_body_bytes;
    if (!r->has_length || r->length <= max)
        return 0;
    *ret = http_respond_error(r, 413, NULL, "request body of %llu bytes exceeds max_body_bytes %zu",
                              r->length, max);
    return 1;
}

/* Whether the client has shut down its sending side with nothing more to read: the socket
 * reads end-of-file. Peeked, so nothing is taken from libmicrohttpd. */
static int peer_sent_eof(req *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    char b;
    return ci && recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/* libmicrohttpd 0.9.75 watches its sockets edge-triggered and without EPOLLRDHUP: when a FIN
 * arrives with the last bytes of an unfinished body, it reads the bytes, takes the socket as
 * drained and never reads the end-of-file, so the request waits for the idle timeout (and a
 * drain for it). Checked after every part of a body, and after the headers of a request that
 * has one: an unfinished Content-Length body behind an end-of-file can never finish, so the
 * connection closes at once (MHD_NO); elsewhere the rest may still sit in libmicrohttpd's
 * buffer, unseen from here, so the connection's timeout drops to one second instead. Returns
 * MHD_NO to close the connection. */
static enum MHD_Result check_half_close(req *r)
{
    /* A body complete by its Content-Length is answered now: nothing to wait for. */
    if (r->eof_seen || (r->has_length && r->received >= r->length) || !peer_sent_eof(r))
        return MHD_YES;
    r->eof_seen = 1;
    if (r->has_length && r->received < r->length && r->received > 0)
        return MHD_NO;
    MHD_set_connection_option(r->conn, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned int)1);
    return MHD_YES;
}

/* What the request's framing headers say, gathered in one pass over them (MHD's lookup sees
 * only the first of repeated headers, and the first is all it frames the body by). */
typedef struct {
    unsigned n_cl;
    const char *cl;      /* the first Content-Length */
    int cl_differ;       /* a later Content-Length is not the same text */
    unsigned n_codings;  /* transfer codings, over every Transfer-Encoding header */
    int last_is_chunked; /* the final one is "chunked" */
} framing;

/* Counts the comma-separated codings of one Transfer-Encoding VALUE and notes the last. */
static void framing_codings(framing *f, const char *value)
{
    const char *p = value;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *tok = p, *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n && (tok[n - 1] == ' ' || tok[n - 1] == '\t'))
            n--;
        if (n) {
            f->n_codings++;
            f->last_is_chunked = n == 7 && strncasecmp(tok, "chunked", 7) == 0;
        }
        if (!end)
            break;
        p = end + 1;
    }
}

static enum MHD_Result framing_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    framing *f = cls;
    (void)kind;
    if (!value)
        value = "";
    if (strcasecmp(key, "Content-Length") == 0) {
        if (f->n_cl++ == 0)
            f->cl = value;
        else if (strcmp(f->cl, value) != 0)
            f->cl_differ = 1;
    } else if (strcasecmp(key, "Transfer-Encoding") == 0) {
        unsigned before = f->n_codings;
        framing_codings(f, value);
        if (f->n_codings == before) { /* an empty value: a coding, and not chunked */
            f->n_codings++;
            f->last_is_chunked = 0;
        }
    }
    return MHD_YES;
}

/* Request smuggling (RFC 9112 section 6.3): libmicrohttpd 0.9.75 frames a body by the first
 * Content-Length and ignores the others, lets Transfer-Encoding override a Content-Length, and
 * reads any coding but exactly "chunked" as a body running to the close, so a proxy in front
 * that reads the headers otherwise would see a different request boundary. Any framing two
 * readers could disagree on is refused here, before the body, and the connection closed (what
 * follows on it cannot be trusted to be a request): both headers, or a final coding other than
 * chunked, 400 as RFC 9112 says; chunked after another coding, 501 (not implemented); a
 * repeated Content-Length, 400 even when the copies agree (no client needs to send one).
 * Returns 1 when it answered. */
static int bad_framing(req *r, enum MHD_Result *ret)
{
    framing f = {0};
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, framing_header, &f);
    const char *const closing[] = {"Connection", "close", NULL};
    if (f.n_codings && f.n_cl)
        *ret = http_respond_error(r, 400, closing,
                                  "Content-Length together with Transfer-Encoding is ambiguous "
                                  "framing: send one of them");
    else if (f.n_codings && !f.last_is_chunked)
        *ret = http_respond_error(r, 400, closing,
                                  "Transfer-Encoding must end in \"chunked\": the body's length "
                                  "cannot be known otherwise");
    else if (f.n_codings > 1)
        *ret = http_respond_error(r, 501, closing,
                                  "Transfer-Encoding other than a single \"chunked\" is not "
                                  "supported");
    else if (f.n_cl > 1)
        *ret = http_respond_error(r, 400, closing, "%s Content-Length headers: send one",
                                  f.cl_differ ? "conflicting" : "repeated");
    else
        return 0;
    return 1;
}

/* X-Request-Id: the client's when it is 1..128 printable ASCII bytes (a proxy's id then joins
 * the two logs), else 16 random bytes in hex. */
static void take_request_id(req *r)
{
    const char *v = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-Request-Id");
    size_t n = 0;
    while (v && n <= 128 && v[n] >= 0x20 && v[n] <= 0x7e)
        n++;
    if (v && n && n <= 128 && !v[n]) {
        memcpy(r->rid, v, n + 1);
        return;
    }
    /* Two SplitMix64 outputs of the server's random seed (getrandom at start) and a counter:
     * unique per request, unguessable without the seed, and no system call per request. */
    uint64_t n0 = atomic_fetch_add(&r->s->rid_counter, 1), w[2];
    for (int k = 0; k < 2; k++) {
        uint64_t z = r->s->rid_seed[k] + (n0 + 1) * 0x9e3779b97f4a7c15ULL;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        w[k] = z ^ (z >> 31);
    }
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++)
        r->rid[i] = hex[(w[i / 16] >> (4 * (15 - i % 16))) & 15];
    r->rid[32] = '\0';
}

static int lower_hex(const char *s, size_t n)
{
    int nonzero = 0;
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return -1;
        nonzero |= s[i] != '0';
    }
    return nonzero;
}

/* A W3C Trace Context traceparent, version-traceid-parentid-flags: 2, 32, 16 and 2 lowercase
 * hex digits; version ff and all-zero ids are invalid. Version 00 is exactly 55 bytes; a later
 * version may append "-..." fields, and its first four are kept. Anything else is ignored. */
static void take_traceparent(req *r)
{
    const char *v = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "traceparent");
    r->traceparent[0] = '\0';
    if (!v || strlen(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-')
        return;
    if (lower_hex(v, 2) < 0 || strncmp(v, "ff", 2) == 0 || lower_hex(v + 3, 32) != 1 ||
        lower_hex(v + 36, 16) != 1 || lower_hex(v + 53, 2) < 0)
        return;
    if (strncmp(v, "00", 2) == 0 ? v[55] != '\0' : v[55] != '\0' && v[55] != '-')
        return;
    memcpy(r->traceparent, v, 55);
    r->traceparent[55] = '\0';
}

/* 503 before reading the body of a forward request when the scheduler would refuse any request
 * now (its queue is full, or it is stopping): under overload the refusals then cost no body
 * reads and no decoding, which would take the cores the queue is waiting for. MHD skips the body
 * and closes the connection, as for the early 413. Returns 1 when it answered. */
static int early_503(req *r, enum MHD_Result *ret)
{
    char why[512], retry[16];
    int after = 1;
    if (!compute_busy(r->s->compute, why, sizeof why, &after))
        return 0;
    snprintf(retry, sizeof retry, "%d", after);
    const char *const extra[] = {"Retry-After", retry, NULL};
    r->job.outcome = COMPUTE_REJECTED;
    r->job.reason = "rejected";
    *ret = http_respond_error(r, 503, extra, "%s", why);
    return 1;
}

/* 415 before reading a body in a coding rnnserve does not decode; else the inflater for a gzip
 * or deflate body. Returns 1 when it answered (*ret MHD_NO: out of memory, close). */
static int early_415(req *r, enum MHD_Result *ret)
{
    char why[160];
    cz_coding c;
    const char *ce = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Encoding");
    if (!ce)
        return 0;
    if (cz_parse_content_encoding(ce, &c, why, sizeof why) < 0) {
        *ret = http_respond_error(r, 415, NULL, "%s", why);
        return 1;
    }
    if (c != CZ_IDENTITY && !(r->inflater = cz_inflater_new(c, r->s->cfg->server.max_body_bytes))) {
        *ret = MHD_NO;
        return 1;
    }
    return 0;
}

/* The Content-Encoding body's end: its stream must be complete; the inflated bytes become the
 * body. */
static void finish_body(req *r)
{
    if (!r->inflater || r->body_status || r->too_big)
        return;
    if (cz_inflate_end(r->inflater, &r->body_status, r->body_err, sizeof r->body_err) < 0)
        return;
    free(r->body);
    if (!(r->body = buf_take(&r->zbody, &r->len))) {
        r->body_status = 500;
        snprintf(r->body_err, sizeof r->body_err, "out of memory inflating the body");
    }
    r->cap = r->len;
    cz_inflater_free(r->inflater); /* done: a resumed request finds the body as it is */
    r->inflater = NULL;
}

/* The first callback, headers in: a new request context (freed in on_completed), routed so that
 * the body-keeping decision follows the route's row. NULL when out of memory. */
static req *begin_request(srv *s, struct MHD_Connection *c, const char *url, const char *method)
{
    req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->s = s;
    r->set = modelset_slot_get(&s->models);
    r->conn = c;
    clock_gettime(CLOCK_MONOTONIC, &r->t0);
    snprintf(r->method, sizeof r->method, "%s", method);
    snprintf(r->path, sizeof r->path, "%s", url);
    take_request_id(r);
    take_traceparent(r);
    atomic_fetch_add(&s->inflight, 1);
    atomic_fetch_add(&s->started, 1);
    metrics_inflight_add(s->met, 1);
    s->router.match(r);
    r->wants_body = s->router.keeps_body(r);
    /* Already checked by libmicrohttpd: digits only, within 64 bits. */
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (cl) {
        r->has_length = 1;
        r->length = strtoull(cl, NULL, 10);
    }
    r->has_body = (r->has_length && r->length > 0) ||
                  MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Transfer-Encoding") != NULL;
    if (cz_choose_encoding(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept-Encoding"),
                           &r->accept) < 0)
        r->accept = CZ_IDENTITY; /* even identity refused: unencoded anyway, as RFC 9110 allows */
    return r;
}

/* Takes the N body bytes at DATA: kept while under max_body_bytes, else counted and dropped.
 * Returns MHD_NO to close the connection. */
static enum MHD_Result take_body(req *r, const char *data, size_t n)
{
    /* libmicrohttpd 0.9.75 refuses to queue a response before the request is complete, so a 413
     * for a chunked upload (or an answer to a body nobody wanted) waits for its end, and a
     * client that never stops sending would hold the connection forever. Past the limit plus a
     * margin, it is closed without an answer. */
    size_t max = r->s->cfg->server.max_body_bytes;
    r->received += n;
    if (r->received > max + (max > DISCARD_MIN ? max : DISCARD_MIN))
        return MHD_NO;
    if (!r->wants_body || r->too_big || r->body_status)
        return MHD_YES;
    if (r->inflater) { /* inflated as it arrives, the inflated bytes counted against max */
        if (cz_inflate(r->inflater, data, n, &r->zbody, &r->body_status, r->body_err,
                       sizeof r->body_err) < 0)
            buf_free(&r->zbody);
        return MHD_YES;
    }
    if (r->len + n > max) {
        /* chunked upload (no Content-Length): stop storing, answer 413 at the end */
        r->too_big = 1;
        free(r->body);
        r->body = NULL;
        return MHD_YES;
    }
    if (r->len + n > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + n)
            cap *= 2;
        if (cap > max)
            cap = max;
        char *nb = realloc(r->body, cap);
        if (!nb)
            return MHD_NO;
        r->body = nb;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    req *r = *con_cls;
    (void)version;
    if (!r) {
        if (!(r = begin_request(cls, c, url, method)))
            return MHD_NO;
        *con_cls = r;
        /* Answered before the body, which libmicrohttpd then skips: framing that could smuggle
         * a request, a missing API key (a keyless client never has its body kept), and a
         * declared length over the limit. */
        enum MHD_Result ret;
        if (bad_framing(r, &ret) || r->s->router.refuse_early(r, &ret) ||
            (r->wants_body && (early_413(r, &ret) || early_415(r, &ret) || early_503(r, &ret))))
            return ret;
        return r->has_body ? check_half_close(r) : MHD_YES;
    }
    if (r->status) { /* answered early (413): the rest is discarded */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0; /* always consume, or MHD stalls the connection */
        return take_body(r, upload, n) == MHD_YES ? check_half_close(r) : MHD_NO;
    }
    /* The request is complete. */
    if (r->queued) /* resumed by the compute pool */
        return answer_job(r);
    finish_body(r);
    if (r->body_status) /* its Content-Encoding failed: corrupt, cut short, or inflated too far */
        return http_respond_error(r, r->body_status, NULL, "%s", r->body_err);
    if (r->reloading) /* resumed by the reloader */
        return r->s->router.reloaded(r);
    return r->s->router.answer(r);
}

/* How a request ended, for the access log's end= field. */
static const char *termination_name(enum MHD_RequestTerminationCode code)
{
    switch (code) {
    case MHD_REQUEST_TERMINATED_COMPLETED_OK:
        return "ok";
    case MHD_REQUEST_TERMINATED_WITH_ERROR:
        return "error";
    case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED:
        return "timeout";
    case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN:
        return "shutdown";
    case MHD_REQUEST_TERMINATED_READ_ERROR:
        return "read_error";
    case MHD_REQUEST_TERMINATED_CLIENT_ABORT:
        return "client_abort";
    }
    return "unknown";
}

/* S into B with every byte outside printable ASCII, and the quote and backslash, as \xNN: one
 * request, one line, whatever its bytes. */
static void put_escaped(buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p > 0x20 && *p < 0x7f && *p != '"' && *p != '\\') {
            buf_putc(b, (char)*p);
        } else {
            char e[4] = {'\\', 'x', hex[*p >> 4], hex[*p & 15]};
            buf_append(b, e, 4);
        }
    }
}

static void access_log(const req *r, double secs, enum MHD_RequestTerminationCode code)
{
    time_t now = time(NULL);
    struct tm tm;
    char ts[32];
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    const compute_job *j = &r->job;
    const char *end = j->outcome == COMPUTE_CANCELLED ? "cancelled" : termination_name(code);
    const char *reason = j->outcome == COMPUTE_CANCELLED ? NULL : j->reason ? j->reason : r->reason;
    /* The line is built first and written by one call: stderr is unbuffered, so writing it in
     * pieces cost a system call each and made the threads queue on the stream's lock. */
    buf b = BUF_INIT;
    buf_puts(&b, ts);
    buf_puts(&b, " access method=");
    put_escaped(&b, r->method);
    buf_puts(&b, " path=");
    put_escaped(&b, r->path);
    buf_printf(&b, " status=%d bytes=%zu duration_ms=%.3f batch=%zu steps=%zu end=%s%s%s",
               r->status, r->out_bytes, secs * 1e3, r->stats.sequences, r->stats.steps, end,
               reason ? " reason=" : "", reason ? reason : "");
    buf_puts(&b, " rid=");
    put_escaped(&b, r->rid);
    if (r->traceparent[0]) {
        buf_puts(&b, " traceparent="); /* checked: hex and dashes only */
        buf_puts(&b, r->traceparent);
    }
    if (r->session) {
        buf_puts(&b, " session=");
        put_escaped(&b, r->session);
    }
    if (j->pass_jobs)
        buf_printf(&b, " decode_ms=%.3f wait_ms=%.3f compute_ms=%.3f encode_ms=%.3f pass=%zux%zu",
                   (double)j->decode_ns / 1e6, (double)j->wait_ns / 1e6,
                   (double)j->compute_ns / 1e6, (double)j->encode_ns / 1e6, j->pass_jobs,
                   j->pass_sequences);
    buf_putc(&b, '\n');
    if (!b.oom)
        fwrite(b.data, 1, b.len, stderr);
    buf_free(&b);
}

static metrics_outcome outcome_of(compute_outcome o)
{
    switch (o) {
    case COMPUTE_DONE:
        return METRICS_DONE;
    case COMPUTE_REJECTED:
        return METRICS_REJECTED;
    case COMPUTE_EXPIRED:
        return METRICS_EXPIRED;
    case COMPUTE_CANCELLED:
        return METRICS_CANCELLED;
    case COMPUTE_STOPPED:
        return METRICS_STOPPED;
    case COMPUTE_FAILED:
        return METRICS_FAILED;
    }
    return METRICS_DONE;
}

/* The per-model series of a forward request: one that went through the compute hand-off
 * (job.model is set by http_forward), or was refused before its body was read (early_503, which
 * runs before the route's model is looked up: found here by name). Its model is alive while the
 * request holds r->set. */
static void observe_forward(srv *s, const req *r, double secs)
{
    const compute_job *j = &r->job;
    const rnn_model *model = j->model;
    if (!model && j->outcome != COMPUTE_REJECTED)
        return;
    if (!model)
        model = r->name ? modelset_find(r->set, r->name, r->name_len, NULL) : r->set->models[0];
    int computed = j->pass_jobs > 0;
    metrics_forward f = {
        .status = r->status,
        .seconds = secs,
        .outcome = outcome_of(j->outcome),
        .decode_ns = j->decode_ns,
        .wait_ns = r->queued ? j->wait_ns : -1,
        .compute_ns = computed ? j->compute_ns : -1,
        .encode_ns = r->queued && computed && j->outcome == COMPUTE_DONE ? j->encode_ns : -1,
        .pass_sequences = j->pass_sequences,
        .pass_jobs = j->pass_jobs};
    metrics_observe_forward(
        s->met, model ? metrics_model(s->met, rnn_model_info(model)->name) : METRICS_NO_MODEL, &f);
}

/* The one place a request ends: metrics, the access log line, and freeing. */
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
    srv *s = cls;
    req *r = *con_cls;
    (void)c;
    if (!r)
        return;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - r->t0.tv_sec) + (double)(t1.tv_nsec - r->t0.tv_nsec) / 1e9;
    if (r->status)
        metrics_observe(s->met, r->label, r->status, secs, r->stats.sequences, r->stats.steps);
    observe_forward(s, r, secs);
    access_log(r, secs, code);
    metrics_inflight_add(s->met, -1);
    atomic_fetch_sub(&s->inflight, 1);
    modelset_release(r->set);
    cz_inflater_free(r->inflater);
    buf_free(&r->zbody);
    free(r->body);
    free(r->job.out);
    free(r->reload_err);
    free(r);
    *con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    srv *s = cls;
    (void)c;
    (void)socket_context;
    /* STARTED was counted by the accept thread already. */
    if (code == MHD_CONNECTION_NOTIFY_CLOSED)
        accept_closed(&s->acc);
}

/* Called by libmicrohttpd 0.9.75 with the request line's URI, before it splits the query into
 * arguments. Each argument takes a record from the connection's memory pool, and when the pool
 * runs out (a couple of thousand "a&a&..." in 8 KB) it queues its 431 and then carries on
 * parsing over it (parse_initial_message_line resets the state), so nothing is ever sent and
 * the connection, and any request pipelined behind it, waits for timeout_s. No route reads a
 * query argument, so the query is emptied here, where the URI is still libmicrohttpd's writable
 * request buffer: its arguments are never parsed, and the path (before the '?') is unchanged.
 * Returns no request context (begin_request makes it). */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    (void)cls;
    (void)c;
    char *q = uri ? strchr(uri, '?') : NULL;
    if (q && q[1])
        q[1] = '\0';
    return NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    fprintf(stderr, "rnnserve: libmicrohttpd: %s\n", msg);
}

/* ---------------------------------------------------------------------------------------------
 * The daemon */

int http_start(srv *s, unsigned io_threads, unsigned max_conn, char *err, size_t errlen)
{
    const cfg_server *cs = &s->cfg->server;
    /* No listening socket for MHD (accept.c feeds it); ITC wakes a worker for each new
     * connection. */
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                     MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC;
    struct MHD_OptionItem tls[3] = {{MHD_OPTION_END, 0, NULL}};
    if (s->tls_cert) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            snprintf(err, errlen, "server.tls_cert: this libmicrohttpd has no TLS support");
            return -1;
        }
        flags |= MHD_USE_TLS;
        tls[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key};
        tls[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, s->tls_cert};
        tls[2] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    }
    s->d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_ARRAY, tls,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cs->timeout_s, MHD_OPTION_CONNECTION_LIMIT,
        max_conn, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(128 * 1024),
        io_threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, io_threads, MHD_OPTION_END);
    if (!s->d) {
        snprintf(err, errlen, "cannot listen on %s:%d (%s)", cs->host, cs->port,
                 errno ? strerror(errno) : "see the libmicrohttpd message above");
        return -1;
    }
    return 0;
}
