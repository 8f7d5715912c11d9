/* fuzz_http.c - libFuzzer target: raw bytes from one client into a live rnnserve (srv_start in
 * this process, on a loopback socket), as a hostile peer would send them: request lines,
 * headers, chunked and pipelined bodies, for every route, the inline and compute-pool paths.
 *
 * Each input goes out on a fresh connection followed by a FIN; the harness reads what comes
 * back for a moment, then resets the connection. Checked on every input: whatever the server
 * sends is a sequence of HTTP/1.x responses with no server error, and no request outlives its
 * client. Every 1000 inputs a GET /healthz must still be answered. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fuzz.h"
#include "rnnserve/server.h"

/* How long the harness listens: for a first byte, and then for quiet after the last byte. A
 * response here takes well under a millisecond; what the harness gives up on, the server must
 * cope with anyway (a client that leaves). */
#define FZ_HTTP_FIRST_MS 50
#define FZ_HTTP_QUIET_MS 5
/* A request still in flight this long after its client reset the connection is a finding. */
#define FZ_HTTP_LEAK_MS 10000

static struct {
    cfg_config *cfg;
    srv *s;
    int port;
    unsigned long runs;
} fz_http;

static double fz_http_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The server under test: two models with inline weights ("sine" runs inline on the I/O thread,
 * "big" is costly enough per byte to go to the compute pool), small limits so that every limit
 * is within reach of a short input, an allow-listed CORS origin, and the admin route on. */
static void fz_http_start(void)
{
    if (fz_http.s)
        return;
    json_t *server =
        json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:[s], s:s}", "host", "127.0.0.1",
                  "port", 0, "threads", 2, "timeout_s", 1, "max_body_bytes", 65536, "max_batch", 16,
                  "max_steps", 256, "max_connections", 64, "cors_origins", "http://a.example",
                  "admin_token", "fuzz-admin-token-0123456789");
    json_t *models = json_pack("[o, o]", fz_model_json("sine", "rnn", 1, 4, 1, 0, 1),
                               fz_model_json("big", "gru", 8, 64, 1, 0, 1));
    fz_http.cfg = fz_config(json_pack("{s:o, s:o}", "server", server, "models", models));
    char err[1024];
    FZ_CHECK(srv_start(fz_http.cfg, &fz_http.s, err, sizeof err) == 0, "srv_start: %s", err);
    fz_http.port = srv_port(fz_http.s);
}

#ifdef FUZZ_NO_MAIN
/* Stops the server (the replay runner calls this; a fuzzing process just exits). */
static void fz_http_stop(void)
{
    srv_stop(fz_http.s);
    cfg_free(fz_http.cfg);
    memset(&fz_http, 0, sizeof fz_http);
}
#endif

static int fz_http_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FZ_CHECK(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)fz_http.port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    if (rc != 0 && errno == EINTR) {
        /* libFuzzer's timers interrupt us; the connection goes on being set up meanwhile. */
        struct pollfd p = {fd, POLLOUT, 0};
        socklen_t len = sizeof rc;
        while (poll(&p, 1, 5000) < 0 && errno == EINTR)
            ;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &rc, &len) == 0 && rc != 0)
            errno = rc;
    }
    FZ_CHECK(rc == 0, "connect: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* An abortive close: no TIME_WAIT left behind (thousands of connections a second), and the
 * server sees a reset, which it must handle at any point of a request. */
static void fz_http_reset(int fd)
{
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

typedef struct {
    char *p;
    size_t n, cap;
    int eof;
} fz_buf;

/* Reads what is available into B. Returns 1 when something came, 0 when nothing did, -1 at EOF
 * or reset. */
static int fz_http_read(int fd, fz_buf *b)
{
    if (b->cap - b->n < 4096) {
        size_t cap = b->cap ? 2 * b->cap : 65536;
        char *p = realloc(b->p, cap);
        FZ_CHECK(p != NULL, "out of memory");
        b->p = p;
        b->cap = cap;
    }
    ssize_t r = recv(fd, b->p + b->n, b->cap - b->n - 1, 0);
    if (r > 0) {
        b->n += (size_t)r;
        b->p[b->n] = '\0';
        return 1;
    }
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    b->eof = 1;
    return -1;
}

/* Sends DATA (reading meanwhile, so that a server answering early cannot deadlock us), then the
 * FIN, then reads until EOF or until the server has been quiet for a while. */
static void fz_http_exchange(int fd, const uint8_t *data, size_t size, fz_buf *b)
{
    size_t off = 0;
    double last = fz_http_now();
    while (off < size && !b->eof) {
        struct pollfd p = {fd, POLLIN | POLLOUT, 0};
        int n = poll(&p, 1, 1000);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* the server stopped reading: it may, so give up on the rest */
        if (p.revents & POLLIN)
            fz_http_read(fd, b);
        if (p.revents & POLLOUT) {
            ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
            if (w < 0 && errno != EAGAIN && errno != EINTR)
                break; /* reset by the server: fine, it owes us nothing more */
            if (w > 0)
                off += (size_t)w;
        }
        if (p.revents & (POLLERR | POLLHUP))
            break;
    }
    shutdown(fd, SHUT_WR);
    last = fz_http_now();
    while (!b->eof) {
        int wait_ms = b->n ? FZ_HTTP_QUIET_MS : FZ_HTTP_FIRST_MS;
        struct pollfd p = {fd, POLLIN, 0};
        int left = wait_ms - (int)((fz_http_now() - last) * 1e3);
        if (left <= 0)
            break;
        int n = poll(&p, 1, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (fz_http_read(fd, b) > 0)
            last = fz_http_now();
    }
}

/* Every response the server sent is HTTP/1.x with a 1xx-4xx status, or one of the few 5xx that
 * are not server faults: 505 (libmicrohttpd: unsupported version), 501 for a transfer coding
 * other than chunked, and the admin reload's 500 (this config is not a file, so a reload cannot
 * succeed). Responses are found at the start and
 * after each CRLF: JSON bodies never hold a raw CRLF, nor do libmicrohttpd's HTML ones. */
static void fz_http_check_responses(const fz_buf *b, size_t size)
{
    if (b->n == 0)
        return;
    FZ_CHECK(b->n >= 8 && memcmp(b->p, "HTTP/1.", 7) == 0, "not an HTTP response: %.100s", b->p);
    for (const char *r = b->p; r; r = strstr(r + 1, "\r\nHTTP/1.")) {
        const char *line = r[0] == '\r' ? r + 2 : r;
        int status = 0;
        if (sscanf(line, "HTTP/1.%*1[01] %3d", &status) != 1)
            continue; /* cut short by our reset */
        FZ_CHECK(status >= 100 && status < 600, "status %d", status);
        if (status < 500 || status == 505)
            continue;
        const char *body = strstr(line, "\r\n\r\n");
        if (status == 501 && body && strstr(body, "Transfer-Encoding other than"))
            continue;
        FZ_CHECK(status == 500 && body && strstr(body, "reload failed"),
                 "server error %d for %zu input bytes: %.300s", status, size, line);
    }
}

/* No request may stay in flight once its client is gone. */
static void fz_http_wait_idle(void)
{
    double end = fz_http_now() + FZ_HTTP_LEAK_MS / 1e3;
    long left;
    while ((left = srv_wait_idle(fz_http.s, 0)) > 0) {
        FZ_CHECK(fz_http_now() < end,
                 "%ld request(s) still in flight %d ms after their client left", left,
                 FZ_HTTP_LEAK_MS);
        struct timespec nap = {0, 200 * 1000};
        nanosleep(&nap, NULL);
    }
}

/* The server still answers: GET /healthz gets its 200. */
static void fz_http_health(void)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: fuzz\r\n\r\n";
    int fd = fz_http_connect();
    fz_buf b = {0};
    double end = fz_http_now() + 5.0;
    fz_http_exchange(fd, (const uint8_t *)req, sizeof req - 1, &b);
    while (!b.eof && !(b.n && strstr(b.p, "\"ok\"")) && fz_http_now() < end) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) > 0)
            fz_http_read(fd, &b);
    }
    FZ_CHECK(b.n && strncmp(b.p, "HTTP/1.1 200", 12) == 0, "GET /healthz: %.200s",
             b.n ? b.p : "(nothing)");
    fz_http_reset(fd);
    free(b.p);
}

int fz_http_one(const uint8_t *data, size_t size)
{
    fz_http_start();
    int fd = fz_http_connect();
    fz_buf b = {0};
    fz_http_exchange(fd, data, size, &b);
    fz_http_reset(fd);
    fz_http_check_responses(&b, size);
    free(b.p);
    fz_http_wait_idle();
    if (++fz_http.runs % 1000 == 0)
        fz_http_health();
    return 0;
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fz_http_one(data, size);
}
#endif
