/* accept.c - our listening socket, the accept thread that feeds libmicrohttpd, and the
 * connection limit (max_connections fitted to RLIMIT_NOFILE, the excess closed at once).
 *
 * Why the socket is ours: MHD_quiesce_daemon on an epoll thread pool races with the workers
 * removing the same socket from their epoll sets, and MHD_PANIC()s (aborts) when it loses (3
 * aborts in 1,200 quiesces of a loaded two-worker daemon; a SIGTERM under load). With the socket
 * ours, draining is a shutdown() of it (accept_stop). */
#include "rnnserve/accept.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* File descriptors kept free of connections (see fit_limits). */
#define FD_RESERVE 32

void accept_init(acceptor *a)
{
    memset(a, 0, sizeof *a);
    a->lfd = -1;
    atomic_init(&a->conns, 0);
}

/* At its connection limit, or out of descriptors (accept() failing), libmicrohttpd stops
 * accepting, and new clients wait in the kernel's backlog, unanswered, until a connection ends.
 * So max_connections is enforced by the accept thread instead, which closes the excess at once;
 * libmicrohttpd's own limit (returned) is a backstop above it. Both stay below RLIMIT_NOFILE,
 * less FD_RESERVE for everything else (listening socket, epoll sets, files a reload opens). */
static unsigned fit_limits(acceptor *a, unsigned max_connections)
{
    a->max_conns = max_connections;
    unsigned mhd = 2 * a->max_conns;
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY) {
        unsigned room = nofile.rlim_cur > FD_RESERVE ? (unsigned)(nofile.rlim_cur - FD_RESERVE) : 1;
        if (a->max_conns > room) {
            fprintf(stderr,
                    "rnnserve: max_connections %u lowered to %u: the process may open only %llu "
                    "files (ulimit -n)\n",
                    a->max_conns, room, (unsigned long long)nofile.rlim_cur);
            a->max_conns = room;
        }
        if (mhd > room + FD_RESERVE / 2)
            mhd = room + FD_RESERVE / 2;
    }
    return mhd;
}

int accept_listen(acceptor *a, const char *host, int port, unsigned max_connections,
                  unsigned *mhd_limit, char *err, size_t errlen)
{
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    int gai = getaddrinfo(host, service, &hints, &ai);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve host \"%s\": %s", host, gai_strerror(gai));
        return -1;
    }
    a->lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_storage bound; /* the address bound, for the port when port 0 was asked */
    socklen_t bound_len = sizeof bound;
    /* As libmicrohttpd would: rebind at once after a restart; "::" means IPv6 only. */
    if (a->lfd < 0 || setsockopt(a->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        (ai->ai_family == AF_INET6 &&
         setsockopt(a->lfd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) ||
        bind(a->lfd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(a->lfd, 1024) != 0 ||
        getsockname(a->lfd, (struct sockaddr *)&bound, &bound_len) != 0) {
        snprintf(err, errlen, "cannot listen on %s:%d (%s)", host, port, strerror(errno));
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    a->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
    *mhd_limit = fit_limits(a, max_connections);
    return 0;
}

/* Accepts and hands each connection to MHD_add_connection. Past max_connections a new
 * connection is closed at once: the client learns right away and can retry or go elsewhere,
 * instead of waiting unaccepted in the backlog. */
static void *accept_main(void *arg)
{
    acceptor *a = arg;
    for (;;) {
        struct sockaddr_storage addr;
        socklen_t len = sizeof addr;
        int fd = accept4(a->lfd, (struct sockaddr *)&addr, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors or memory: the client waits in the backlog until a
                 * connection ends; retry soon rather than spin. */
                struct timespec nap = {0, 10 * 1000 * 1000};
                nanosleep(&nap, NULL);
                continue;
            }
            return NULL; /* EINVAL: accept_stop() shut the socket down */
        }
        if (atomic_load(&a->conns) >= (long)a->max_conns) {
            close(fd);
            continue;
        }
        /* Counted before MHD sees it, so that a burst of connects cannot overshoot the limit
         * while the workers pick them up. MHD closes the socket itself if it cannot take it. */
        atomic_fetch_add(&a->conns, 1);
        if (MHD_add_connection(a->d, fd, (struct sockaddr *)&addr, len) != MHD_YES)
            atomic_fetch_sub(&a->conns, 1);
    }
}

int accept_start(acceptor *a, struct MHD_Daemon *d, char *err, size_t errlen)
{
    a->d = d;
    if (pthread_create(&a->th, NULL, accept_main, a) != 0) {
        snprintf(err, errlen, "cannot start the accept thread: %s", strerror(errno));
        return -1;
    }
    a->running = 1;
    return 0;
}

void accept_stop(acceptor *a)
{
    if (a->lfd >= 0)
        shutdown(a->lfd, SHUT_RDWR);
    if (a->running) {
        pthread_join(a->th, NULL);
        a->running = 0;
    }
}

void accept_close(acceptor *a)
{
    if (a->lfd >= 0)
        close(a->lfd);
    a->lfd = -1;
}

void accept_closed(acceptor *a)
{
    atomic_fetch_sub(&a->conns, 1);
}

long accept_open(acceptor *a)
{
    return atomic_load(&a->conns);
}
