/* test_faults.c - the real binary under faults: SIGTERM in the middle of load (every request it
 * accepted is answered, then it exits 0), running out of file descriptors (new connections are
 * closed at once, the server recovers when load drops), weights that cannot fit in memory (a
 * clear error, not the OOM killer), and clients that never read their answers.
 *
 * Each test starts build/rnnserve (build/asan/rnnserve in the ASan runner, so leaks on the way
 * out count) on 127.0.0.1 port 0 with a config of its own, reads the port from its "listening
 * on" line, and talks to it over raw sockets from several threads. The server's stderr (one
 * access line per request) is the record of what it accepted and how each request ended. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define DEFAULT_BODY "{\"inputs\": [[[0.0],[0.1411],[-0.2794]]]}"

/* The binary is native or ASan; the runner may be under valgrind, which slows only the client
 * side. Bounds below are for native and are stretched by this. */
static double slack(void)
{
    return tu_slack(3.0, 3.0);
}

/* ---------------------------------------------------------------------------------------------
 * The server process */

typedef struct {
    pid_t pid;
    int port;
    char dir[256];
    char log[320];
} proc;

static proc P;

static void teardown(void)
{
    if (P.pid > 0) {
        kill(P.pid, SIGKILL);
        waitpid(P.pid, NULL, 0);
    }
    if (P.dir[0]) {
        char cmd[320];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", P.dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", P.dir);
    }
    memset(&P, 0, sizeof P);
}

static void setup(void)
{
    memset(&P, 0, sizeof P);
    snprintf(P.dir, sizeof P.dir, "%s/rnnserve-faults-XXXXXX",
             getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(P.dir));
    snprintf(P.log, sizeof P.log, "%s/server.log", P.dir);
}

static char *read_log(void)
{
    char *t = tu_read_file(P.log, NULL);
    ck_assert_ptr_nonnull(t);
    return t;
}

/* Starts the binary on CONFIG (JSON text, written to the test's folder) with RLIMIT_NOFILE and
 * RLIMIT_AS set when non-zero. Returns 1 once it listens (P.port set), 0 when it exited first
 * (P.pid is then 0 and *STATUS its wait status). */
static int spawn(const char *config, rlim_t nofile, rlim_t as_bytes, int asan, int *status)
{
    char path[320];
    snprintf(path, sizeof path, "%s/config.json", P.dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(config, f);
    fclose(f);
    const char *bin = asan ? "build/asan/rnnserve" : "build/rnnserve";
    ck_assert_msg(access(bin, X_OK) == 0, "%s is not built (make)", bin);
    int logfd = open(P.log, O_WRONLY | O_CREAT | O_TRUNC, 0644); /* there before we read it */
    ck_assert_int_ge(logfd, 0);
    close(logfd);
    P.pid = fork();
    ck_assert_int_ge(P.pid, 0);
    if (P.pid == 0) {
        int fd = open(P.log, O_WRONLY | O_APPEND);
        dup2(fd, 2);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        /* Limits are set by a shell: valgrind, when it runs this process, fakes setrlimit() for
         * descriptors instead of passing it on to the child. */
        char script[256];
        snprintf(script, sizeof script,
                 "%s%llu%s%llu%sexec \"$0\" --config \"$1\" --host 127.0.0.1 --port 0",
                 nofile ? "ulimit -n " : ": ", (unsigned long long)nofile,
                 as_bytes ? "; ulimit -v " : "; : ", (unsigned long long)(as_bytes / 1024), "; ");
        execl("/bin/sh", "sh", "-c", script, bin, path, (char *)NULL);
        _exit(127);
    }
    double end = tu_now_s() + 10.0 * slack();
    for (;;) {
        int st;
        if (waitpid(P.pid, &st, WNOHANG) == P.pid) {
            P.pid = 0;
            if (status)
                *status = st;
            return 0;
        }
        char *log = read_log();
        const char *l = strstr(log, "listening on http://127.0.0.1:");
        if (l) {
            P.port = atoi(l + strlen("listening on http://127.0.0.1:"));
            free(log);
            return 1;
        }
        free(log);
        ck_assert_msg(tu_now_s() < end, "the server did not start within 10 s");
        tu_sleep_ms(10);
    }
}

/* Waits up to TIMEOUT_S for the server to exit; returns its wait status. */
static int wait_exit(double timeout_s)
{
    double end = tu_now_s() + timeout_s;
    int st = 0;
    while (waitpid(P.pid, &st, WNOHANG) == 0) {
        if (tu_now_s() > end) {
            char *log = read_log();
            ck_abort_msg("the server is still running after %.1f s:\n%s", timeout_s, log);
        }
        tu_sleep_ms(10);
    }
    P.pid = 0;
    return st;
}

/* ---------------------------------------------------------------------------------------------
 * Raw HTTP */

/* Connects; returns the socket, or -1 with *ERR = errno (ECONNREFUSED when nobody listens). */
static int hc_connect(int *err)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)P.port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        *err = errno;
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

typedef struct {
    long status;
    int close; /* the server said Connection: close */
    char *body;
    size_t len;
} resp;

enum { HC_OK = 0, HC_NOTHING = -1, HC_PARTIAL = -2, HC_TIMEOUT = -3 };

/* Sends REQ and reads one Content-Length framed response within TIMEOUT_MS. HC_NOTHING: the
 * connection ended before a single byte of answer; HC_PARTIAL: it ended mid-answer. */
static int hc_exchange(int fd, const char *req, size_t len, int timeout_ms, resp *out)
{
    memset(out, 0, sizeof *out);
    for (size_t off = 0; off < len;) {
        ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (w <= 0)
            return HC_NOTHING;
        off += (size_t)w;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    ck_assert_ptr_nonnull(buf);
    double end = tu_now_s() + timeout_ms / 1e3;
    int rc;
    for (;;) {
        buf[n] = '\0';
        char *eoh = strstr(buf, "\r\n\r\n");
        if (eoh) {
            const char *cl = strcasestr(buf, "\r\nContent-Length:");
            size_t hl = (size_t)(eoh + 4 - buf), want = cl ? strtoul(cl + 17, NULL, 10) : 0;
            if (n >= hl + want) {
                sscanf(buf, "HTTP/1.%*d %ld", &out->status);
                out->close = strcasestr(buf, "\r\nConnection: close") != NULL;
                out->body = strndup(eoh + 4, want);
                out->len = want;
                rc = HC_OK;
                break;
            }
        }
        if (n == cap) {
            char *nb = realloc(buf, 2 * cap + 1);
            ck_assert_ptr_nonnull(nb);
            buf = nb;
            cap *= 2;
        }
        int left = (int)((end - tu_now_s()) * 1e3);
        struct pollfd p = {fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, left) <= 0) {
            rc = HC_TIMEOUT;
            break;
        }
        ssize_t r = recv(fd, buf + n, cap - n, 0);
        if (r <= 0) {
            rc = n ? HC_PARTIAL : HC_NOTHING;
            break;
        }
        n += (size_t)r;
    }
    free(buf);
    return rc;
}

/* A whole request on a new connection; asserts it worked and returns the status. */
static long hc_simple(const char *req, resp *out)
{
    int err = 0, fd = hc_connect(&err);
    ck_assert_msg(fd >= 0, "connect: %s", strerror(err));
    int rc = hc_exchange(fd, req, strlen(req), (int)(10000 * slack()), out);
    close(fd);
    ck_assert_msg(rc == HC_OK, "%.40s: no answer (%d)", req, rc);
    return out->status;
}

static char *post_req(const char *path, const char *body)
{
    size_t n = strlen(body);
    char *req = malloc(n + 256);
    ck_assert_ptr_nonnull(req);
    sprintf(req, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s", path, n, body);
    return req;
}

/* The value of SERIES in GET /metrics. */
static double metric(const char *series)
{
    resp r;
    ck_assert_int_eq(hc_simple("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &r), 200);
    double v = NAN;
    for (const char *p = r.body; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, series, strlen(series)) == 0 && p[strlen(series)] == ' ')
            v = strtod(p + strlen(series) + 1, NULL);
    free(r.body);
    ck_assert_msg(!isnan(v), "no %s in /metrics", series);
    return v;
}

/* The next line of *P (its newline kept), malloc'ed, and *P moved past it; NULL at the end. */
static char *next_line(const char **p)
{
    if (!*p || !**p)
        return NULL;
    const char *eol = strchr(*p, '\n');
    size_t len = eol ? (size_t)(eol - *p) + 1 : strlen(*p);
    char *l = strndup(*p, len);
    ck_assert_ptr_nonnull(l);
    *p = eol ? eol + 1 : NULL;
    return l;
}

/* Lines of TEXT containing every one of up to three needles (NULL: unused). */
static int count_lines(const char *text, const char *a, const char *b, const char *c)
{
    int n = 0;
    char *l;
    for (const char *p = text; (l = next_line(&p)); free(l))
        if (strstr(l, a) && (!b || strstr(l, b)) && (!c || strstr(l, c)))
            n++;
    return n;
}

/* The lines of TEXT that contain A but not both B and C, at most ~3 KB of them (for a failure
 * message: the whole log would not help). Caller frees. */
static char *odd_lines(const char *text, const char *a, const char *b, const char *c)
{
    size_t cap = 3072, n = 0;
    char *out = calloc(cap + 1, 1), *l;
    ck_assert_ptr_nonnull(out);
    for (const char *p = text; (l = next_line(&p)); free(l)) {
        size_t len = strlen(l);
        if (strstr(l, a) && !(strstr(l, b) && strstr(l, c)) && n + len <= cap) {
            memcpy(out + n, l, len);
            n += len;
        }
    }
    return out;
}

/* ---------------------------------------------------------------------------------------------
 * A model whose forward passes take a while: LSTM, input 8, hidden 256, 2 layers (F32 file) */

#define BIG_I 8
#define BIG_H 256

static char *big_model_entry(void)
{
    static const char *const names[] = {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                                        "weight_ih_l1", "weight_hh_l1", "bias_ih_l1", "bias_hh_l1"};
    const size_t G = 4 * BIG_H;
    const size_t rows[] = {G, G, G, G, G, G, G, G};
    const size_t cols[] = {BIG_I, BIG_H, 0, 0, BIG_H, BIG_H, 0, 0};
    char header[2048];
    size_t hl = 0, at = 0;
    hl += (size_t)snprintf(header + hl, sizeof header - hl, "{");
    for (size_t i = 0; i < 8; i++) {
        size_t n = rows[i] * (cols[i] ? cols[i] : 1);
        char shape[64];
        if (cols[i])
            snprintf(shape, sizeof shape, "[%zu,%zu]", rows[i], cols[i]);
        else
            snprintf(shape, sizeof shape, "[%zu]", rows[i]);
        hl +=
            (size_t)snprintf(header + hl, sizeof header - hl,
                             "%s\"%s\":{\"dtype\":\"F32\",\"shape\":%s,\"data_offsets\":[%zu,%zu]}",
                             i ? "," : "", names[i], shape, at * 4, (at + n) * 4);
        at += n;
    }
    hl += (size_t)snprintf(header + hl, sizeof header - hl, "}");
    char path[320];
    snprintf(path, sizeof path, "%s/big.safetensors", P.dir);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(header, 1, hl, f);
    float *w = malloc(at * sizeof *w);
    ck_assert_ptr_nonnull(w);
    for (size_t i = 0; i < at; i++)
        w[i] = 0.05f * (float)((int)(i % 7) - 3) / 3.0f;
    ck_assert_uint_eq(fwrite(w, sizeof *w, at, f), at); /* little-endian host */
    free(w);
    fclose(f);
    char *entry = malloc(1024);
    ck_assert_ptr_nonnull(entry);
    snprintf(entry, 1024,
             "{\"name\": \"big\", \"type\": \"lstm\", \"input_size\": %d, \"hidden_size\": %d, "
             "\"num_layers\": 2, \"weights\": \"%s\"}",
             BIG_I, BIG_H, path);
    return entry;
}

static char *big_body(size_t steps)
{
    char *b = malloc(32 + steps * (BIG_I * 5 + 3)), *p = b;
    ck_assert_ptr_nonnull(b);
    p += sprintf(p, "{\"inputs\": [[");
    for (size_t t = 0; t < steps; t++)
        p += sprintf(p, "%s[0.1,0.2,0.3,0.4,-0.1,-0.2,-0.3,-0.4]", t ? "," : "");
    sprintf(p, "]]}");
    return b;
}

/* A config with the bundled sine model (the default) and the big one, SERVER as its server
 * section. */
static char *config_with_big(const char *server)
{
    char *sine = realpath("config/sine.safetensors", NULL);
    ck_assert_ptr_nonnull(sine);
    char *big = big_model_entry();
    char *text = malloc(4096);
    ck_assert_ptr_nonnull(text);
    snprintf(text, 4096,
             "{\"server\": %s, \"models\": [{\"name\": \"sine\", \"type\": \"rnn\", "
             "\"input_size\": 1, \"hidden_size\": 4, \"weights\": \"%s\"}, %s]}",
             server, sine, big);
    free(sine);
    free(big);
    return text;
}

/* ---------------------------------------------------------------------------------------------
 * SIGTERM under load */

/* While draining, the server closes kept-alive connections once no request has begun for 500 ms
 * (serve.c, DRAIN_QUIET_MS). A client that sent its next request within this long of its
 * previous one cannot have found its connection closed; one that dawdled longer may (valgrind
 * makes client threads that slow), which HTTP allows. */
#define DRAIN_LATE_S 0.3

typedef struct {
    const char *small, *big; /* requests */
    atomic_int *stop;
    double t_term; /* when SIGTERM was sent; 0 before */
    /* outcomes */
    int ok, other_status, refused, unanswered_new, unanswered_reused, partial, timeouts;
    int late_reused; /* dropped too, but sent DRAIN_LATE_S after the previous one: allowed */
    int connect_errors;
    double last_connect; /* last successful connect, seconds after SIGTERM (-inf before) */
    int id;
} client;

static void *client_main(void *arg)
{
    client *c = arg;
    c->last_connect = -1e9;
    for (int round = 0; !atomic_load(c->stop) && round < 100000; round++) {
        int err = 0, fd = hc_connect(&err);
        if (fd < 0) {
            if (err == ECONNREFUSED)
                c->refused++;
            else
                c->connect_errors++;
            if (atomic_load(c->stop) || err == ECONNREFUSED)
                break; /* the server is gone: that is the end of this client */
            continue;
        }
        double tc = tu_now_s();
        /* Connect times are compared with SIGTERM by the main thread afterwards. */
        if (tc > c->last_connect)
            c->last_connect = tc;
        /* A few requests per connection, keep-alive, until the server says close. */
        double t_prev = 0;
        for (int k = 0; k < 4; k++) {
            /* A third of the clients send small requests only (many, on kept-alive
             * connections); the others one big request in three. */
            const char *req = c->id % 3 != 0 && (c->id + round + k) % 3 == 0 ? c->big : c->small;
            resp r;
            double t_send = tu_now_s();
            int rc = hc_exchange(fd, req, strlen(req), (int)(30000 * slack()), &r);
            if (rc == HC_OK) {
                if (r.status == 200)
                    c->ok++;
                else
                    c->other_status++;
                int closing = r.close;
                free(r.body);
                if (closing)
                    break;
            } else {
                if (rc == HC_PARTIAL)
                    c->partial++;
                else if (rc == HC_TIMEOUT)
                    c->timeouts++;
                else if (k == 0)
                    c->unanswered_new++;
                else if (t_send - t_prev < DRAIN_LATE_S)
                    c->unanswered_reused++;
                else
                    c->late_reused++;
                break;
            }
            t_prev = t_send;
        }
        close(fd);
    }
    return NULL;
}

/* Steps of one big request that takes the server about TARGET seconds on this machine, timed
 * by the server itself (its access log's duration_ms), so that a slow client (valgrind) does not
 * shrink it. */
static size_t big_steps_for(double target)
{
    char *body = big_body(256);
    char *req = post_req("/v1/models/big/forward", body);
    for (int i = 0; i < 3; i++) {
        resp r;
        ck_assert_int_eq(hc_simple(req, &r), 200);
        free(r.body);
    }
    free(req);
    free(body);
    char *log = read_log();
    double best = 1e9;
    for (const char *p = log; (p = strstr(p, "path=/v1/models/big/forward status=200")); p++) {
        const char *d = strstr(p, "duration_ms=");
        double ms = d ? strtod(d + 12, NULL) : 1e9;
        if (ms < best)
            best = ms;
    }
    free(log);
    ck_assert_msg(best < 1e9, "no duration_ms for the calibration requests");
    double steps = 256.0 * target / (best > 0.01 ? best / 1e3 : 1e-5);
    return steps < 256 ? 256 : steps > 50000 ? 50000 : (size_t)steps;
}

START_TEST(test_sigterm_under_load_answers_every_accepted_request)
{
    /* Admission and queue expiry (503 past max_queue_ms of estimated wait, or queue_timeout_ms
     * of waiting) are not under test here: on a loaded machine, under ASan, the defaults refuse
     * a few of the clients' requests. */
    char *config = config_with_big("{\"threads\": 2, \"timeout_s\": 20, \"max_queue_ms\": "
                                   "60000, \"queue_timeout_ms\": 60000}");
    ck_assert(spawn(config, 0, 0, TU_UNDER_ASAN, NULL));
    free(config);
    size_t steps = big_steps_for(0.5);
    char *bbody = big_body(steps);
    char *big = post_req("/v1/models/big/forward", bbody);
    char *small = post_req("/forward", DEFAULT_BODY);
    free(bbody);

    enum { N = 12 };
    atomic_int stop = 0;
    client cs[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        memset(&cs[i], 0, sizeof cs[i]);
        cs[i].small = small;
        cs[i].big = big;
        cs[i].stop = &stop;
        cs[i].id = i;
        ck_assert_int_eq(pthread_create(&th[i], NULL, client_main, &cs[i]), 0);
    }
    /* SIGTERM once the load is real: several forward passes in flight (the gauge counts this
     * /metrics request too). */
    double end = tu_now_s() + 10.0 * slack();
    double inflight = 0;
    while ((inflight = metric("rnnserve_in_flight_requests")) < 4 && tu_now_s() < end)
        tu_sleep_ms(20);
    ck_assert_msg(inflight >= 4, "the load never reached 3 requests in flight");
    double t_term = tu_now_s();
    ck_assert_int_eq(kill(P.pid, SIGTERM), 0);
    int st = wait_exit(25.0 * slack());
    double took = tu_now_s() - t_term;
    atomic_store(&stop, 1);
    int ok = 0, other = 0, refused = 0, un_new = 0, un_reused = 0, partial = 0, timeouts = 0;
    int late = 0;
    double last_connect = -1e9;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        ok += cs[i].ok;
        other += cs[i].other_status;
        refused += cs[i].refused;
        un_new += cs[i].unanswered_new;
        un_reused += cs[i].unanswered_reused;
        late += cs[i].late_reused;
        partial += cs[i].partial;
        timeouts += cs[i].timeouts;
        if (cs[i].last_connect > last_connect)
            last_connect = cs[i].last_connect;
    }
    free(big);
    free(small);

    char *log = read_log();
    int accepted = count_lines(log, " access method=", NULL, NULL);
    int answered = count_lines(log, " access method=", "status=200", "end=ok");
    /* Forward requests the clients sent: every POST but the 3 that measured big_steps_for. */
    int forwarded = count_lines(log, " access method=POST", "status=200", "end=ok") - 3;
    int big_after = 0;
    const char *drain = strstr(log, "SIGTERM received");
    if (drain) {
        char needle[64];
        snprintf(needle, sizeof needle, "steps=%zu end=ok", steps);
        big_after = count_lines(drain, " access method=POST path=/v1/models/big/forward",
                                "status=200", needle);
    }
    fprintf(stderr,
            "sigterm: %.0f in flight at SIGTERM, exit after %.2f s; server: %d accepted, %d "
            "answered 200 (%d forwards, %d big ones after SIGTERM); clients: %d ok, %d other, "
            "%d refused, %d reset unanswered on new connections, %d on reused ones (and %d sent "
            "after a pause), %d partial, %d timeouts\n",
            inflight - 1, took, accepted, answered, forwarded, big_after, ok, other, refused,
            un_new, un_reused, late, partial, timeouts);
    /* The log's last lines say how the server ended; its odd access lines, what went wrong. */
    const char *tail = strlen(log) > 2048 ? log + strlen(log) - 2048 : log;
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d (signal %d):\n%s",
                  WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st) ? WTERMSIG(st) : 0, tail);
    ck_assert_msg(drain && strstr(log, "rnnserve: stopped"), "no drain in the log:\n%s", tail);
    /* Every request the server accepted was answered, 200, and the answer reached its client. */
    if (answered != accepted) {
        char *odd = odd_lines(log, " access method=", "status=200", "end=ok");
        ck_assert_msg(0, "%d of %d accepted requests not answered 200:\n%s", accepted - answered,
                      accepted, odd);
    }
    ck_assert_msg(ok == forwarded && other == 0 && partial == 0 && timeouts == 0,
                  "clients got %d 200s (server sent %d), %d other, %d partial, %d timeouts", ok,
                  forwarded, other, partial, timeouts);
    ck_assert_msg(un_reused == 0, "%d requests on open connections were dropped", un_reused);
    ck_assert_msg(big_after >= 1, "no long request was finished during the drain");
    /* New connections were refused from SIGTERM on (after at most the signal's delivery). */
    ck_assert_msg(refused >= 1, "no client saw the listening socket close");
    ck_assert_msg(last_connect - t_term < 0.5 * slack(),
                  "a connection was made %.3f s after SIGTERM", last_connect - t_term);
    free(log);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Out of file descriptors */

/* Opens N connections; returns how many the server closed within WAIT_MS (fds[i] = -1 for
 * those, the rest stay open). */
static int open_many(int *fds, int n, int wait_ms)
{
    for (int i = 0; i < n; i++) {
        int err = 0;
        fds[i] = hc_connect(&err);
        ck_assert_msg(fds[i] >= 0, "connect %d: %s", i, strerror(err));
    }
    tu_sleep_ms(wait_ms);
    int closed = 0;
    for (int i = 0; i < n; i++) {
        struct pollfd p = {fds[i], POLLIN, 0};
        char b;
        if (poll(&p, 1, 0) == 1 && recv(fds[i], &b, 1, MSG_DONTWAIT) <= 0) {
            close(fds[i]);
            fds[i] = -1;
            closed++;
        }
    }
    return closed;
}

START_TEST(test_out_of_file_descriptors_refuses_then_recovers)
{
    /* ulimit -n 64 and the default max_connections 1024: the server lowers its limit to fit. */
    char *config = config_with_big("{\"timeout_s\": 30}");
    ck_assert(spawn(config, 64, 0, TU_UNDER_ASAN, NULL));
    free(config);
    char *log = read_log();
    ck_assert_msg(strstr(log, "max_connections 1024 lowered to 32"), "%s", log);
    free(log);
    char *fwd = post_req("/forward", DEFAULT_BODY);
    for (int round = 0; round < 2; round++) {
        enum { N = 80 };
        int fds[N];
        /* The server counts a connection until it has seen the client close it: let it see the
         * previous round's last ones go, or this round would find a slot or two still taken. */
        tu_sleep_ms((int)(300 * slack()));
        int closed = open_many(fds, N, (int)(500 * slack()));
        double t_refused = 0, t_back = 0;
        ck_assert_msg(closed >= N - 32 && closed <= N - 30,
                      "round %d: %d of %d connections closed at once, expected %d", round, closed,
                      N, N - 32);
        /* A connection the server holds is served as usual. */
        int kept = -1;
        for (int i = 0; i < N && kept < 0; i++)
            if (fds[i] >= 0)
                kept = fds[i];
        resp r;
        ck_assert_int_eq(hc_exchange(kept, fwd, strlen(fwd), (int)(5000 * slack()), &r), HC_OK);
        ck_assert_msg(r.status == 200, "held connection: %ld", r.status);
        free(r.body);
        /* A new one is closed at once: no answer, but no hang either. */
        int err = 0, fd = hc_connect(&err);
        ck_assert_int_ge(fd, 0);
        double t0 = tu_now_s();
        int rc = hc_exchange(fd, fwd, strlen(fwd), (int)(5000 * slack()), &r);
        t_refused = tu_now_s() - t0;
        ck_assert_msg(rc == HC_NOTHING && t_refused < 1.0 * slack(),
                      "a connection past the limit got %d after %.3f s", rc, t_refused);
        close(fd);
        /* Load drops: served again at once. */
        for (int i = 0; i < N; i++)
            if (fds[i] >= 0)
                close(fds[i]);
        double t_drop = tu_now_s(), end = t_drop + 5.0 * slack();
        for (;;) {
            fd = hc_connect(&err);
            rc = fd >= 0 ? hc_exchange(fd, fwd, strlen(fwd), (int)(5000 * slack()), &r) : -9;
            if (fd >= 0)
                close(fd);
            if (rc == HC_OK)
                break;
            ck_assert_msg(tu_now_s() < end, "not serving again 5 s after the load dropped");
            tu_sleep_ms(20);
        }
        t_back = tu_now_s() - t_drop;
        ck_assert_msg(r.status == 200 && strstr(r.body, "\"model\":\"sine\""), "%ld %s", r.status,
                      r.body);
        free(r.body);
        fprintf(stderr,
                "fds: ulimit -n 64 (limit lowered to 32): %d of %d connections closed at once, a "
                "held one served, a new one closed after %.1f ms, served again %.1f ms after the "
                "load dropped\n",
                closed, N, t_refused * 1e3, t_back * 1e3);
    }
    free(fwd);
    /* No "Too many open files" on the way: the limit kept accept() working. */
    log = read_log();
    ck_assert_msg(!strstr(log, "Too many open files"), "%s", log);
    free(log);
}
END_TEST

START_TEST(test_max_connections_refuses_the_excess_at_once)
{
    char *config = config_with_big("{\"timeout_s\": 30, \"max_connections\": 10}");
    ck_assert(spawn(config, 0, 0, TU_UNDER_ASAN, NULL));
    free(config);
    int fds[25];
    int closed = open_many(fds, 25, (int)(500 * slack()));
    ck_assert_msg(closed == 15, "%d of 25 closed, expected 15 past max_connections 10", closed);
    for (int i = 0; i < 25; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    tu_sleep_ms(200);
    resp r;
    ck_assert_int_eq(hc_simple("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", &r), 200);
    free(r.body);
}
END_TEST

/* Clients that send part of a body and then shut down their sending side (issue 15, item 7):
 * libmicrohttpd 0.9.75 could miss the end-of-file and hold them until timeout_s, and a SIGTERM
 * waited for them. Now they are let go at once, and the drain with them. */
START_TEST(test_sigterm_with_half_closed_uploads_exits_at_once)
{
    char *config = config_with_big("{\"timeout_s\": 30}");
    ck_assert(spawn(config, 0, 0, TU_UNDER_ASAN, NULL));
    free(config);
    static const char *const parts[] = {
        "POST /forward HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"inputs\": [[",
        "POST /forward HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"in",
        "POST /forward HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"};
    int fds[12];
    for (int i = 0; i < 12; i++) {
        int err = 0;
        ck_assert_int_ge(fds[i] = hc_connect(&err), 0);
        const char *p = parts[i % 3];
        ck_assert_int_eq(send(fds[i], p, strlen(p), MSG_NOSIGNAL), (ssize_t)strlen(p));
        shutdown(fds[i], SHUT_WR);
    }
    tu_sleep_ms(100);
    double t0 = tu_now_s();
    kill(P.pid, SIGTERM);
    int st = wait_exit(2.5 * slack());
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
    ck_assert_msg(tu_now_s() - t0 < 2.5 * slack(), "exit took %.1f s", tu_now_s() - t0);
    for (int i = 0; i < 12; i++)
        close(fds[i]);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Weights that cannot fit */

START_TEST(test_weights_beyond_the_address_space_limit_are_refused_clearly)
{
    /* ulimit -v 1 GB: the bundled model starts and serves; a 4 GiB LSTM is refused by name
     * before any allocation. (Native binary: ASan cannot run under an address-space limit.) */
    char *sine = realpath("config/sine.safetensors", NULL);
    ck_assert_ptr_nonnull(sine);
    char config[1024];
    snprintf(config, sizeof config,
             "{\"models\": [{\"name\": \"sine\", \"type\": \"rnn\", \"input_size\": 1, "
             "\"hidden_size\": 4, \"weights\": \"%s\"}]}",
             sine);
    ck_assert(spawn(config, 0, (rlim_t)1 << 30, 0, NULL));
    resp r;
    char *fwd = post_req("/forward", DEFAULT_BODY);
    ck_assert_int_eq(hc_simple(fwd, &r), 200);
    free(r.body);
    free(fwd);
    kill(P.pid, SIGTERM);
    wait_exit(10.0);
    snprintf(config, sizeof config,
             "{\"models\": [{\"name\": \"sine\", \"type\": \"rnn\", \"input_size\": 1, "
             "\"hidden_size\": 4, \"weights\": \"%s\"}, {\"name\": \"huge\", \"type\": \"lstm\", "
             "\"input_size\": 8192, \"hidden_size\": 8192, \"num_layers\": 2, \"weights\": "
             "\"%s\"}]}",
             sine, sine);
    free(sine);
    int st = 0;
    double t0 = tu_now_s();
    ck_assert_msg(!spawn(config, 0, (rlim_t)1 << 30, 0, &st), "a 4 GiB model started");
    double took = tu_now_s() - t0;
    char *log = read_log();
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 1, "exit %d: %s",
                  WIFEXITED(st) ? WEXITSTATUS(st) : -1, log);
    ck_assert_msg(strstr(log, "model \"huge\"") && strstr(log, "its weights need 4") &&
                      strstr(log, "RLIMIT_AS"),
                  "%s", log);
    ck_assert_msg(took < 1.0 * slack(), "refusing took %.2f s", took);
    fprintf(stderr, "memory: ulimit -v 1 GB: sine served; a 4 GiB model refused in %.0f ms: %s",
            took * 1e3,
            strstr(log, "rnnserve: model \"huge\"") ? strstr(log, "rnnserve: model \"huge\"")
                                                    : log);
    free(log);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Clients that never read */

START_TEST(test_clients_that_never_read_are_cut_off_at_timeout_s)
{
    char *config = config_with_big("{\"timeout_s\": 2, \"max_steps\": 100000}");
    ck_assert(spawn(config, 0, 0, TU_UNDER_ASAN, NULL));
    free(config);
    /* A: one 2.6 MB answer (60,000 steps of the sine model) into a 4 KB receive buffer. */
    char *body = malloc(60000 * 4 + 32), *p = body;
    ck_assert_ptr_nonnull(body);
    p += sprintf(p, "{\"inputs\": [[");
    for (int t = 0; t < 60000; t++)
        p += sprintf(p, "%s0.5", t ? "," : "");
    sprintf(p, "]]}");
    char *req = post_req("/forward", body);
    free(body);
    int a = socket(AF_INET, SOCK_STREAM, 0), small = 4096;
    setsockopt(a, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)P.port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(a, (struct sockaddr *)&addr, sizeof addr), 0);
    ck_assert_int_eq(send(a, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    free(req);
    /* B: 2,000 pipelined GET /metrics, never reading a byte of the ~10 MB of answers. */
    const char *one = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    size_t ol = strlen(one);
    char *pipe = malloc(2000 * ol);
    ck_assert_ptr_nonnull(pipe);
    for (int i = 0; i < 2000; i++)
        memcpy(pipe + (size_t)i * ol, one, ol);
    int err = 0, b = hc_connect(&err);
    ck_assert_int_ge(b, 0);
    fcntl(b, F_SETFL, O_NONBLOCK);
    ssize_t pushed = send(b, pipe, 2000 * ol, MSG_NOSIGNAL); /* as much as fits */
    ck_assert_msg(pushed > 0, "send: %s", strerror(errno));
    free(pipe);
    /* Meanwhile everyone else is served promptly. */
    char *fwd = post_req("/forward", DEFAULT_BODY);
    double worst = 0;
    for (int i = 0; i < 20; i++) {
        resp r;
        double t0 = tu_now_s();
        ck_assert_int_eq(hc_simple(i % 2 ? fwd : "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", &r),
                         200);
        free(r.body);
        if (tu_now_s() - t0 > worst)
            worst = tu_now_s() - t0;
    }
    free(fwd);
    ck_assert_msg(worst < 0.5 * slack(), "a request beside the stuck clients took %.3f s", worst);
    /* Both stuck connections are closed once they made no progress for timeout_s (2 s): nothing
     * is left in flight but this /metrics request. */
    double t0 = tu_now_s(), end = t0 + 8.0 * slack();
    while (metric("rnnserve_in_flight_requests") > 1) {
        ck_assert_msg(tu_now_s() < end,
                      "a client that never reads is still being served after %.1f s",
                      tu_now_s() - t0);
        tu_sleep_ms(100);
    }
    double cut = tu_now_s() - t0;
    char *log = read_log();
    ck_assert_msg(count_lines(log, "path=/forward", "steps=60000", "end=timeout") == 1,
                  "the 2.6 MB answer did not end by timeout:\n%.3000s", log);
    fprintf(stderr,
            "never-read: 20 requests beside two stuck clients, worst %.1f ms; both cut off %.1f s "
            "after the others were done (timeout_s 2)\n",
            worst * 1e3, cut);
    free(log);
    close(a);
    close(b);
}
END_TEST

/* SIGTERM past timeout_s with passes still computing (issue 15, item 6): the drain deadline ends
 * the queued requests and stops the running pass at its next step, each answered 503, so the
 * process exits soon after timeout_s rather than when the passes would have ended. */
typedef struct {
    const char *req;
    int status;
    char body[512];
} long_call;

static void *long_call_main(void *arg)
{
    long_call *c = arg;
    resp r;
    int err = 0, fd = hc_connect(&err);
    c->status = -1;
    if (fd < 0)
        return NULL;
    if (hc_exchange(fd, c->req, strlen(c->req), (int)(60000 * slack()), &r) == HC_OK) {
        c->status = (int)r.status;
        snprintf(c->body, sizeof c->body, "%s", r.body ? r.body : "");
        free(r.body);
    }
    close(fd);
    return NULL;
}

START_TEST(test_sigterm_past_timeout_s_stops_running_passes)
{
    char *config = config_with_big("{\"timeout_s\": 2, \"threads\": 1, \"max_queue_ms\": 600000, "
                                   "\"queue_timeout_ms\": 600000}");
    ck_assert(spawn(config, 0, 0, TU_UNDER_ASAN, NULL));
    free(config);
    /* Three requests of ~4 s each on one compute thread: 12 s of work, far past timeout_s. */
    char *body = big_body(big_steps_for(4.0));
    char *req = post_req("/v1/models/big/forward", body);
    free(body);
    enum { N = 3 };
    long_call calls[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        calls[i] = (long_call){.req = req};
        ck_assert_int_eq(pthread_create(&th[i], NULL, long_call_main, &calls[i]), 0);
    }
    /* All three are in: one running, two queued. */
    double end = tu_now_s() + 20 * slack();
    while (metric("rnnserve_queue_requests") + metric("rnnserve_running_passes") < N &&
           tu_now_s() < end)
        tu_sleep_ms(20);
    ck_assert_msg(metric("rnnserve_running_passes") >= 1, "no pass is running");
    double t0 = tu_now_s();
    kill(P.pid, SIGTERM);
    int st = wait_exit(6.0 * slack());
    double took = tu_now_s() - t0;
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
    /* timeout_s, then one step of the pass and the answers: well under the ~12 s of work. */
    ck_assert_msg(took < 2.0 + 3.0 * slack(), "exit took %.1f s with timeout_s 2", took);
    int stopped = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        /* an answer for every accepted request: 503 from the abort (or 200 if one finished) */
        ck_assert_msg(calls[i].status == 503 || calls[i].status == 200 || calls[i].status == -1,
                      "request %d: %d %s", i, calls[i].status, calls[i].body);
        stopped += calls[i].status == 503 && strstr(calls[i].body, "shutting down") != NULL;
    }
    ck_assert_msg(stopped >= 1, "no request was answered 503 by the drain deadline");
    free(req);
}
END_TEST

static Suite *faults_suite(void)
{
    Suite *s = suite_create("faults");
    TCase *tc = tcase_create("faults");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_sigterm_under_load_answers_every_accepted_request);
    tcase_add_test(tc, test_out_of_file_descriptors_refuses_then_recovers);
    tcase_add_test(tc, test_max_connections_refuses_the_excess_at_once);
    tcase_add_test(tc, test_sigterm_with_half_closed_uploads_exits_at_once);
    tcase_add_test(tc, test_sigterm_past_timeout_s_stops_running_passes);
    tcase_add_test(tc, test_weights_beyond_the_address_space_limit_are_refused_clearly);
    tcase_add_test(tc, test_clients_that_never_read_are_cut_off_at_timeout_s);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(faults_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
