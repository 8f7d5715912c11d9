/* accept.h - our listening socket and the thread that accepts on it for libmicrohttpd.
 *
 * The socket is ours, not libmicrohttpd's, so that draining is one shutdown() and so that
 * max_connections is enforced by closing the excess at once (see src/accept.c). */
#ifndef RNNSERVE_ACCEPT_H
#define RNNSERVE_ACCEPT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

struct MHD_Daemon;

/* Looks at the head (request line and headers, LEN bytes up to and with the blank line) of a
 * connection's first request, before libmicrohttpd reads it. Returns NULL to hand the
 * connection over, or a complete HTTP response (malloc'ed, *alen bytes; the acceptor frees it)
 * to send instead, after which the connection is closed. */
typedef char *(*accept_vet_fn)(void *cls, const char *head, size_t len, size_t *alen);

/* A connection accepted whose first request head is still arriving. */
typedef struct accept_pending accept_pending;

typedef struct {
    int lfd;  /* -1 when none */
    int port; /* the port bound (the kernel's pick when 0 was asked) */
    struct MHD_Daemon *d;
    pthread_t th;
    int running;
    atomic_long conns;  /* open connections, counted from accept() to MHD's CLOSED notice */
    unsigned max_conns; /* max_connections, lowered to fit RLIMIT_NOFILE */
    /* first-head vetting (accept_vet); off when vet is NULL */
    accept_vet_fn vet;
    void *vet_cls;
    int head_timeout_s;
    accept_pending *pend; /* max_conns slots */
    unsigned n_pend;
} acceptor;

void accept_init(acceptor *a);

/* Binds and listens on HOST:PORT and fits MAX_CONNECTIONS to the process's descriptor limit.
 * *mhd_limit is the connection limit to give libmicrohttpd (a backstop above ours). Returns 0,
 * or -1 with the reason in err[errlen]. */
int accept_listen(acceptor *a, const char *host, int port, unsigned max_connections,
                  unsigned *mhd_limit, char *err, size_t errlen);

/* Has the accept thread read each connection's first request head (peeked, so libmicrohttpd
 * still reads it all) and give it to VET before handing the connection to libmicrohttpd; a head
 * not complete within TIMEOUT_S closes the connection. Not for TLS (the head is encrypted).
 * Call before accept_start. */
void accept_vet(acceptor *a, accept_vet_fn vet, void *cls, int timeout_s);

/* Starts the accept thread, which hands every connection to D. */
int accept_start(acceptor *a, struct MHD_Daemon *d, char *err, size_t errlen);

/* Ends the listening (new connects are refused) and joins the thread; connections already
 * handed over are untouched. Idempotent. */
void accept_stop(acceptor *a);

/* Closes the socket (after accept_stop and after libmicrohttpd has stopped). */
void accept_close(acceptor *a);

/* libmicrohttpd closed one of the connections we handed it. */
void accept_closed(acceptor *a);

/* Connections open now. */
long accept_open(acceptor *a);

#endif
