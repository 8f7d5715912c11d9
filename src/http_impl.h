/* http_impl.h - what the files of the HTTP layer share: the server instance, a request in
 * flight, the respond helpers (http.c) and the route table's dispatch (routes.c).
 *
 * Private to src/server.c, src/http.c and src/routes.c; everything else goes through server.h. */
#ifndef RNNSERVE_HTTP_IMPL_H
#define RNNSERVE_HTTP_IMPL_H

#include <microhttpd.h>
#include <stdatomic.h>
#include <stddef.h>
#include <time.h>

#include "rnnserve/accept.h"
#include "rnnserve/api.h"
#include "rnnserve/compute.h"
#include "rnnserve/config.h"
#include "rnnserve/metrics.h"
#include "rnnserve/modelset.h"
#include "rnnserve/routes.h"
#include "rnnserve/server.h"

/* Rows the route table may have (routes.c checks). */
#define ROUTES_MAX 32

/* The one server instance: everything mutable the process has lives here. */
struct srv {
    const cfg_config *cfg; /* server settings; a reload replaces models only */
    modelset_slot models;
    struct MHD_Daemon *d;
    acceptor acc;
    metrics *met; /* labels: routes_labels() */
    compute *compute;
    char *tls_cert, *tls_key; /* PEM text, kept for the daemon's life */
    atomic_int draining;
    atomic_long inflight;
    atomic_long started; /* requests ever begun (drain watches it move) */
    api_limits lim;
    /* metrics route indexes (routes_labels) */
    size_t row_label[ROUTES_MAX];
    size_t label_preflight, label_unmatched;
};

typedef struct route_row route_row;

/* One request in flight; freed in http.c's on_completed() whatever happens to it. */
typedef struct req {
    srv *s;
    modelset *set; /* held until completion: the request runs on the models it started with */
    struct MHD_Connection *conn;
    char method[16];
    char path[256];
    struct timespec t0;
    /* routing: set when the request is answered or its body is wanted */
    const route_row *row; /* NULL: unmatched */
    size_t label;         /* metrics route index */
    const api_wire *wire; /* error bodies' shape */
    const char *name;     /* the {name} capture, into path; NULL when none */
    size_t name_len;
    const rnn_model *model; /* the capture's model, or the default one */
    size_t model_idx;
    /* body */
    char *body;
    size_t len, cap;
    size_t received; /* body bytes so far, kept or not */
    int wants_body;  /* a POST to a route that takes a body */
    int too_big;
    /* outcome */
    int status; /* 0 until a response is queued */
    size_t out_bytes;
    api_stats stats;
    /* compute hand-off: the pool writes the job, the I/O thread reads it once resumed */
    compute_job job;
    int queued;
    int fd; /* the connection's socket, read when parked (for compute_job.gone) */
} req;

/* --- http.c: responses */

/* Queues BODY (LEN bytes; freed by MHD when OWNED) with STATUS and the common headers (CORS,
 * Connection: close while draining). EXTRA is a NULL-terminated list of name/value pairs. */
enum MHD_Result http_respond(req *r, int status, char *body, size_t len, int owned,
                             const char *ctype, const char *const *extra);
/* BODY, malloc'ed, as application/json; ownership passes to MHD. */
enum MHD_Result http_respond_json(req *r, int status, char *body, size_t len);
/* A static NUL-terminated BODY. */
enum MHD_Result http_respond_static(req *r, int status, const char *body, const char *ctype);
/* The error body of the request's wire format (r->wire). */
enum MHD_Result http_respond_error(req *r, int status, const char *const *extra, const char *fmt,
                                   ...) __attribute__((format(printf, 4, 5)));
/* Starts libmicrohttpd on S (no listening socket: the acceptor feeds it) with IO_THREADS epoll
 * workers and MAX_CONN connections at most; TLS when s->tls_cert is set. Returns 0, or -1 with
 * the reason in err[errlen]. */
int http_start(srv *s, unsigned io_threads, unsigned max_conn, char *err, size_t errlen);
/* Hands the complete body of a request to the compute hand-off and answers it (at once when it
 * ran inline, after the pool resumes the connection otherwise). */
enum MHD_Result http_forward(req *r);

/* --- http.c: a request that runs its own job (generate), and streamed responses */

/* Suspends R's connection until http_unpark: for a handler that hands R to a job of its own.
 * The job then answers through r->job (status, out, outlen, retry_after_s; out NULL: nobody to
 * answer) before calling http_unpark, from any thread; answer_job sends it. */
void http_park(req *r);
void http_unpark(req *r);
/* Whether the client of a parked R has left (safe from any thread while R is parked). */
int http_client_gone(req *r);

/* A response body written by another thread while it is being sent: a byte queue between the
 * producer (a compute thread) and libmicrohttpd's content reader, which suspends the connection
 * when the queue is empty and is resumed by the next push. Two references: the producer's
 * (dropped by http_stream_end) and the response's (dropped when libmicrohttpd destroys it). */
typedef struct http_stream http_stream;
/* A new stream, or NULL when out of memory. */
http_stream *http_stream_new(void);
/* Appends N bytes at DATA and wakes the connection. 0, or -1 when the client has gone (the
 * response was destroyed before its end) or memory ran out: the producer may stop. */
int http_stream_push(http_stream *st, const char *data, size_t n);
/* Whether the client has gone (any thread). */
int http_stream_closed(http_stream *st);
/* The end of the body: sent once what was pushed is. Drops the producer's reference. */
void http_stream_end(http_stream *st);
/* Queues STATUS with a chunked body read from ST as it is pushed (Content-Type CTYPE, EXTRA
 * headers as http_respond's). The response's reference is taken in every case: on failure
 * (MHD_NO) it is dropped, and the stream reads as closed. */
enum MHD_Result http_respond_stream(req *r, int status, http_stream *st, const char *ctype,
                                    const char *const *extra);

/* --- generate_routes.c */

/* POST /v1/models/{name}/generate (routes.c's row). */
enum MHD_Result generate_handle(req *r);

/* --- routes.c: dispatch */

/* Routes R by its path (sets row, label, wire, name): the first callback calls it so that the
 * body-keeping decision and an early 413 follow the row. */
void routes_match(req *r);
/* Whether the matched route keeps a body for R's method. */
int routes_keeps_body(const req *r);
/* Answers a complete request: preflight, 404, 401, 405 or the row's handler. */
enum MHD_Result routes_answer(req *r);
/* The metrics labels, the rows' (each once, in row order) then "preflight" and "unmatched":
 * at most CAP into NAMES; returns how many there are. Also sets S's label indexes, which
 * routing reads. */
size_t routes_labels(srv *s, const char **names, size_t cap);

#endif
