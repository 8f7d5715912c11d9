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
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* File descriptors kept free of connections (see fit_limits). */
#define FD_RESERVE 32
/* The most of a first request head that is vetted; a longer one goes to libmicrohttpd as it is
 * (whose 128 KiB connection memory then decides). */
#define HEAD_CAP 16384
/* epoll's tag for the listening socket (the others are slot indexes). */
#define LISTENER UINT32_MAX

struct accept_pending {
    int fd; /* -1: free */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    time_t since; /* CLOCK_MONOTONIC seconds at accept */
};

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

static time_t mono_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec;
}

/* Hands FD to libmicrohttpd (which closes it itself if it cannot take it). */
static void hand_over(acceptor *a, int fd, struct sockaddr_storage *addr, socklen_t len)
{
    if (MHD_add_connection(a->d, fd, (struct sockaddr *)addr, len) != MHD_YES)
        atomic_fetch_sub(&a->conns, 1);
}

/* Closes a connection libmicrohttpd never saw. */
static void drop(acceptor *a, int fd)
{
    close(fd);
    atomic_fetch_sub(&a->conns, 1);
}

/* Sends the vetting's ANSWER and closes FD. The head and whatever else has arrived are read
 * first: closing a socket with unread bytes resets it, and a reset can destroy the answer
 * before the client reads it. */
static void refuse(acceptor *a, int fd, char *answer, size_t alen)
{
    char sink[4096];
    for (int i = 0; i < 64 && recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; i++)
        ;
    (void)!send(fd, answer, alen, MSG_NOSIGNAL | MSG_DONTWAIT);
    free(answer);
    shutdown(fd, SHUT_WR);
    drop(a, fd);
}

/* Slot I's connection has news: its head is vetted once complete (or HEAD_CAP long), and the
 * connection handed over or refused; it waits for more otherwise. */
static void pending_ready(acceptor *a, int ep, uint32_t i, int hup, char *head)
{
    accept_pending *p = &a->pend[i];
    ssize_t n = recv(p->fd, head, HEAD_CAP, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) && !hup)
        return;
    const char *end = n > 0 ? memmem(head, (size_t)n, "\r\n\r\n", 4) : NULL;
    if (n > 0 && !end && n < HEAD_CAP && !hup)
        return; /* more to come */
    int fd = p->fd;
    p->fd = -1;
    a->n_pend--;
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    if (n <= 0) { /* gone before a whole head, or nothing at all */
        drop(a, fd);
        return;
    }
    size_t alen = 0;
    char *answer = end ? a->vet(a->vet_cls, head, (size_t)(end + 4 - head), &alen) : NULL;
    if (answer)
        refuse(a, fd, answer, alen);
    else
        hand_over(a, fd, &p->addr, p->addr_len); /* incomplete heads: libmicrohttpd decides */
}

/* A new connection: straight to libmicrohttpd, or into a slot until its head is vetted. */
static void admit(acceptor *a, int ep, int fd, struct sockaddr_storage *addr, socklen_t len)
{
    if (!a->vet) {
        hand_over(a, fd, addr, len);
        return;
    }
    uint32_t i = 0;
    while (i < a->max_conns && a->pend[i].fd >= 0)
        i++;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.u32 = i};
    if (i == a->max_conns || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        hand_over(a, fd, addr, len); /* cannot watch it: unvetted rather than refused */
        return;
    }
    a->pend[i] = (accept_pending){.fd = fd, .addr = *addr, .addr_len = len, .since = mono_s()};
    a->n_pend++;
}

/* Heads not complete in time: closed, as libmicrohttpd would at timeout_s. */
static void expire(acceptor *a, int ep)
{
    time_t now = mono_s();
    for (uint32_t i = 0; a->n_pend && i < a->max_conns; i++)
        if (a->pend[i].fd >= 0 && now - a->pend[i].since >= a->head_timeout_s) {
            epoll_ctl(ep, EPOLL_CTL_DEL, a->pend[i].fd, NULL);
            drop(a, a->pend[i].fd);
            a->pend[i].fd = -1;
            a->n_pend--;
        }
}

/* Accepts what the listening socket has. Past max_connections a new connection is closed at
 * once: the client learns right away and can retry or go elsewhere, instead of waiting
 * unaccepted in the backlog. Returns -1 once accept_stop() shut the socket down. */
static int accept_all(acceptor *a, int ep)
{
    for (;;) {
        struct sockaddr_storage addr;
        socklen_t len = sizeof addr;
        int fd = accept4(a->lfd, (struct sockaddr *)&addr, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors or memory: the client waits in the backlog until a
                 * connection ends; retry soon rather than spin. */
                struct timespec nap = {0, 10 * 1000 * 1000};
                nanosleep(&nap, NULL);
                return 0;
            }
            return -1; /* EINVAL: accept_stop() shut the socket down */
        }
        if (atomic_load(&a->conns) >= (long)a->max_conns) {
            close(fd);
            continue;
        }
        /* Counted before MHD sees it, so that a burst of connects cannot overshoot the limit
         * while the workers pick them up. */
        atomic_fetch_add(&a->conns, 1);
        admit(a, ep, fd, &addr, len);
    }
}

/* The accept thread: one epoll set for the listening socket and the connections whose first
 * head is being vetted. At the end, those still pending are handed over: every connection
 * accepted is served. */
static void *accept_main(void *arg)
{
    acceptor *a = arg;
    char head[HEAD_CAP]; /* a first head, peeked */
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.u32 = LISTENER};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, a->lfd, &lev) != 0) {
        fprintf(stderr, "rnnserve: cannot watch the listening socket: %s\n", strerror(errno));
        if (ep >= 0)
            close(ep);
        return NULL;
    }
    int stop = 0;
    while (!stop) {
        struct epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, a->n_pend ? 1000 : -1);
        for (int k = 0; k < n && !stop; k++) {
            if (evs[k].data.u32 == LISTENER)
                stop = accept_all(a, ep) < 0;
            else if (a->pend[evs[k].data.u32].fd >= 0)
                pending_ready(a, ep, evs[k].data.u32,
                              (evs[k].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0, head);
        }
        if (a->n_pend)
            expire(a, ep);
    }
    for (uint32_t i = 0; a->n_pend && i < a->max_conns; i++)
        if (a->pend[i].fd >= 0) {
            epoll_ctl(ep, EPOLL_CTL_DEL, a->pend[i].fd, NULL);
            hand_over(a, a->pend[i].fd, &a->pend[i].addr, a->pend[i].addr_len);
            a->pend[i].fd = -1;
            a->n_pend--;
        }
    close(ep);
    return NULL;
}

void accept_vet(acceptor *a, accept_vet_fn vet, void *cls, int timeout_s)
{
    a->vet = vet;
    a->vet_cls = cls;
    a->head_timeout_s = timeout_s > 0 ? timeout_s : 1;
}

int accept_start(acceptor *a, struct MHD_Daemon *d, char *err, size_t errlen)
{
    a->d = d;
    int fl = fcntl(a->lfd, F_GETFL);
    if (fl < 0 || fcntl(a->lfd, F_SETFL, fl | O_NONBLOCK) != 0) {
        snprintf(err, errlen, "cannot make the listening socket non-blocking: %s", strerror(errno));
        return -1;
    }
    if (a->vet) {
        if (!(a->pend = calloc(a->max_conns ? a->max_conns : 1, sizeof *a->pend))) {
            snprintf(err, errlen, "out of memory for %u connections", a->max_conns);
            return -1;
        }
        for (unsigned i = 0; i < a->max_conns; i++)
            a->pend[i].fd = -1;
    }
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
    free(a->pend);
    a->pend = NULL;
}

void accept_closed(acceptor *a)
{
    atomic_fetch_sub(&a->conns, 1);
}

long accept_open(acceptor *a)
{
    return atomic_load(&a->conns);
}
