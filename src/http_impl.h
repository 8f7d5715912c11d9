/* http_impl.h - what the files of the HTTP layer share: the server instance, a request in
 * flight, the respond helpers (http.c) and the route table's dispatch (routes.c).
 *
 * Private to the HTTP layer's files (server.c, http.c, routes.c, reloader.c and the session and
 * generate routes); everything else goes through server.h. */
#ifndef RNNSERVE_HTTP_IMPL_H
#define RNNSERVE_HTTP_IMPL_H

#include <microhttpd.h>
#include <pthread.h>
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
#include "rnnserve/sessions.h"

/* Rows the route table may have (routes.c checks). */
#define ROUTES_MAX 32

typedef struct req req;
typedef struct srv srv;

/* What http.c asks of the route table, plugged in by server.c at start: http.c is the loop the
 * routes plug into (as redis's handlers plug into ae.c), so it never calls up into routes.c. */
typedef struct {
    void (*match)(req *r);                                      /* routes_match */
    int (*keeps_body)(const req *r);                            /* routes_keeps_body */
    int (*refuse_early)(req *r, enum MHD_Result *ret);          /* routes_refuse_early */
    enum MHD_Result (*answer)(req *r);                          /* routes_answer */
    enum MHD_Result (*reloaded)(req *r);                        /* routes_reloaded */
    const api_wire *(*wire_of)(const srv *s, const char *path); /* routes_wire_of */
} http_router;

/* The one server instance: everything mutable the process has lives here. */
struct srv {
    const cfg_config *cfg;            /* server settings; a reload replaces models only */
    uint64_t rid_seed[2];             /* from getrandom at start: generated X-Request-Ids */
    atomic_uint_fast64_t rid_counter; /* requests given an id */
    http_router router; /* the route table's answers to http.c (server.c plugs them in) */
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
    /* POST /v1/admin/reload: run one at a time on the reloader thread, off the I/O threads */
    pthread_t reloader;
    int reloader_running;
    pthread_mutex_t rl_mu;
    pthread_cond_t rl_cv;
    struct req *rl_head, *rl_tail; /* waiting reloads, oldest first */
    int rl_stop;
    sess_table *sessions; /* session states (session_routes.c) */
    pthread_t sweeper;    /* expires idle sessions every second, on an idle server too */
    pthread_mutex_t sweep_mu;
    pthread_cond_t sweep_cv;
    int sweep_stop, sweeping; /* guarded by sweep_mu; sweeping: the thread was started */
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
    const char *sid; /* the {id} capture (a session's id), into path; NULL when none */
    size_t sid_len;
    const rnn_model *model; /* the capture's model, or the default one */
    size_t model_idx;
    /* body */
    char *body;
    size_t len, cap;
    size_t received; /* body bytes so far, kept or not */
    int wants_body;  /* a POST to a route that takes a body */
    int too_big;
    int has_length; /* a Content-Length was sent: LENGTH */
    unsigned long long length;
    int has_body; /* a body follows the headers (a non-zero length, or chunked) */
    int eof_seen; /* the client shut down its sending side (check_half_close) */
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
    /* admin reload hand-off: the reloader writes the outcome, the I/O thread reads it resumed */
    int reloading;
    int reload_rc;    /* srv_reload's */
    char *reload_err; /* its message (malloc'ed, freed at completion), NULL on success */
    struct req *rl_next;
    /* a session step (session_routes.c): the session held until the pass is over */
    sess_ref *sess;
    sess_end sess_how;   /* how a successful step hands it back */
    uint64_t sess_steps; /* the steps this request advances it by */
    const char *session; /* its id for the access log; NULL: no session */
    char session_buf[SESS_ID_LEN + 1];
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
/* The acceptor's vetting of a connection's first request head (accept_vet_fn; CLS is the srv):
 * what libmicrohttpd 0.9.75 would answer itself in HTML without CORS headers, answered in JSON
 * with them. */
char *http_vet(void *cls, const char *head, size_t len, size_t *alen);
/* Starts libmicrohttpd on S (no listening socket: the acceptor feeds it) with IO_THREADS epoll
 * workers and MAX_CONN connections at most; TLS when s->tls_cert is set. Returns 0, or -1 with
 * the reason in err[errlen]. */
int http_start(srv *s, unsigned io_threads, unsigned max_conn, char *err, size_t errlen);
/* Hands the complete body of a request to the compute hand-off and answers it (at once when it
 * ran inline, after the pool resumes the connection otherwise). */
enum MHD_Result http_forward(req *r);
/* The body's framing from its Inference-Header-Content-Length (the binary tensor data
 * extension; none: all JSON) into *F: 0, or 1 when it answered a malformed value (400; *RET). */
int http_framing(req *r, api_framing *f, enum MHD_Result *ret);
/* As http_forward for r->job already filled in by the caller (a call it decoded, a computed
 * hook): adds the connection's hooks, submits, answers. */
enum MHD_Result http_submit(req *r);

/* --- reloader.c: hot reload and the admin reload's hand-off */

/* Reloads the config at CONFIG_PATH (modelset_slot_reload) and tells the sessions what changed
 * (sr_reload). Returns 0, or -1 with err while the old models keep serving. */
int reloader_reload(srv *s, const char *config_path, char *err, size_t errlen);
/* Starts and stops the reloader thread (srv_start, srv_stop). */
int reloader_start(srv *s, char *err, size_t errlen);
void reloader_stop(srv *s);
/* Suspends R's connection (on its I/O thread, from the handler) and queues the reload of the
 * config's models on the reloader thread, which sets r->reload_rc and r->reload_err and resumes
 * the connection; its handler then runs again (routes_reloaded answers). Reloads run one at a
 * time, in arrival order. Returns 0, or -1 (nothing suspended) when the server is stopping. */
int reloader_submit(srv *s, req *r);

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
/* The wire format of PATH's answers, as routes_match would choose it (for answers given before
 * there is a request: http_vet). */
const api_wire *routes_wire_of(const srv *s, const char *path);
/* Whether the matched route keeps a body for R's method. */
int routes_keeps_body(const req *r);
/* Answers R before its body when the route refuses it whatever the body says (a missing or
 * unknown API key: 401), so that a keyless client never has a body kept. Returns 1 when it
 * answered (*ret is the queueing result), 0 to read on. */
int routes_refuse_early(req *r, enum MHD_Result *ret);
/* Answers a complete request: preflight, 404, 401, 405 or the row's handler. */
enum MHD_Result routes_answer(req *r);
/* Answers an admin reload once the reloader has resumed its connection. */
enum MHD_Result routes_reloaded(req *r);
/* The metrics labels, the rows' (each once, in row order) then "preflight" and "unmatched":
 * at most CAP into NAMES; returns how many there are. Also sets S's label indexes, which
 * routing reads. */
size_t routes_labels(srv *s, const char **names, size_t cap);

#endif
