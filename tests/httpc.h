/* httpc.h - the suites' HTTP client (libcurl) for a server under test on 127.0.0.1: one request
 * with its status, body, headers and connection facts, and header lookup.
 *
 * One copy for every suite that talks HTTP; each suite keeps only its own thin wrappers. */
#ifndef RNNSERVE_TEST_HTTPC_H
#define RNNSERVE_TEST_HTTPC_H

#include <curl/curl.h>
#include <stddef.h>

typedef struct {
    long status;
    char *body; /* NUL-terminated; never NULL after httpc_full */
    size_t len;
    char *headers; /* every header line received, NUL-terminated; never NULL after httpc_full */
    size_t hlen;
    long connects; /* CURLINFO_NUM_CONNECTS: 0 when an existing connection was reused */
    long local_port;
    double seconds;
} httpc_resp;

/* METHOD PATH at 127.0.0.1:PORT on handle H (reset first; its connection cache is kept, so
 * keep-alive works). BODY (LEN bytes) is sent when non-NULL; CHUNKED sends it with a read
 * callback and no length. HEADERS is a NULL-terminated list of "Name: value" lines, or NULL.
 * *OUT is overwritten (httpc_resp_free it). Thread-safe. */
CURLcode httpc_full(CURL *h, int port, const char *method, const char *path, const char *body,
                    size_t len, int chunked, const char *const *headers, httpc_resp *out);

/* One request on a fresh connection; BODY is a string (or NULL). */
CURLcode httpc(int port, const char *method, const char *path, const char *body,
               const char *const *headers, httpc_resp *out);

void httpc_resp_free(httpc_resp *r);

/* The value of the last header NAME in R (case-insensitive name), copied to val[vlen]; NULL
 * when absent. */
const char *httpc_header(const httpc_resp *r, const char *name, char *val, size_t vlen);

/* The value of SERIES (a metric's name and labels, as /metrics prints them) on the server at
 * PORT; -1 when absent or unreadable. */
double httpc_metric(int port, const char *series);

/* Polls httpc_metric until SERIES is WANT or TIMEOUT_S pass: 1 when it got there. A bound on a
 * failure only; the state it waits for must come, whatever the machine's speed. */
int httpc_wait_metric(int port, const char *series, double want, double timeout_s);

#endif
