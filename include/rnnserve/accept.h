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

typedef struct {
    int lfd;  /* -1 when none */
    int port; /* the port bound (the kernel's pick when 0 was asked) */
    struct MHD_Daemon *d;
    pthread_t th;
    int running;
    atomic_long conns;  /* open connections, counted from accept() to MHD's CLOSED notice */
    unsigned max_conns; /* max_connections, lowered to fit RLIMIT_NOFILE */
} acceptor;

void accept_init(acceptor *a);

/* Binds and listens on HOST:PORT and fits MAX_CONNECTIONS to the process's descriptor limit.
 * *mhd_limit is the connection limit to give libmicrohttpd (a backstop above ours). Returns 0,
 * or -1 with the reason in err[errlen]. */
int accept_listen(acceptor *a, const char *host, int port, unsigned max_connections,
                  unsigned *mhd_limit, char *err, size_t errlen);

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
