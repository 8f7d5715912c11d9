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
#include "rnnserve/compress.h"
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
    char rid[129];        /* X-Request-Id: the client's when sane, else generated */
    char traceparent[56]; /* a well-formed W3C traceparent sent with it, else "" */
    const char *reason;   /* why an error was answered (the access line's reason=) */
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
    /* Content-Encoding: the body is inflated into zbody as it arrives (under max_body_bytes),
     * and a failure (400 corrupt, 413 inflated past the limit) kept for the route's answer */
    cz_inflater *inflater;
    buf zbody;
    int body_status;
    char body_err[160];
    cz_coding accept; /* the response's coding, from Accept-Encoding */
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
