/* httpc.c - the suites' HTTP client: libcurl into growable buffers, bodies sent whole or
 * chunked, header lookup. */
#include "httpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Where curl writes a body or the headers: a NUL-terminated buffer grown by doubling (the big
 * model's answers run to megabytes). */
typedef struct {
    char **p;
    size_t *n;
    size_t cap;
} sink;

static size_t sink_write(char *data, size_t size, size_t nmemb, void *ud)
{
    sink *s = ud;
    size_t n = size * nmemb;
    if (*s->n + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < *s->n + n + 1)
            cap *= 2;
        char *nb = realloc(*s->p, cap);
        if (!nb)
            return 0;
        *s->p = nb;
        s->cap = cap;
    }
    memcpy(*s->p + *s->n, data, n);
    *s->n += n;
    (*s->p)[*s->n] = '\0';
    return n;
}

/* A request body handed out by a read callback (curl then sends it chunked). */
typedef struct {
    const char *p;
    size_t left;
} source;

static size_t source_read(char *dst, size_t size, size_t nmemb, void *ud)
{
    source *s = ud;
    size_t n = size * nmemb;
    if (n > s->left)
        n = s->left;
    if (n > 1000)
        n = 1000; /* several chunks */
    memcpy(dst, s->p, n);
    s->p += n;
    s->left -= n;
    return n;
}

CURLcode httpc_full(CURL *h, int port, const char *method, const char *path, const char *body,
                    size_t len, int chunked, const char *const *headers, httpc_resp *out)
{
    char url[512];
    memset(out, 0, sizeof *out);
    curl_easy_reset(h);
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    sink bs = {&out->body, &out->len, 0}, hs = {&out->headers, &out->hlen, 0};
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &bs);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, sink_write);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &hs);
    source src = {body, len};
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (body && chunked) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, source_read);
        curl_easy_setopt(h, CURLOPT_READDATA, &src);
    } else if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 &&
        !(strcmp(method, "POST") == 0 && body))
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    struct curl_slist *hl = NULL;
    if (chunked)
        hl = curl_slist_append(hl, "Transfer-Encoding: chunked");
    for (size_t i = 0; headers && headers[i]; i++)
        hl = curl_slist_append(hl, headers[i]);
    if (hl)
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &out->connects);
    curl_easy_getinfo(h, CURLINFO_LOCAL_PORT, &out->local_port);
    curl_easy_getinfo(h, CURLINFO_TOTAL_TIME, &out->seconds);
    curl_slist_free_all(hl);
    if (!out->body) {
        out->body = calloc(1, 1);
        out->len = 0;
    }
    if (!out->headers)
        out->headers = calloc(1, 1);
    return rc;
}

CURLcode httpc(int port, const char *method, const char *path, const char *body,
               const char *const *headers, httpc_resp *out)
{
    CURL *h = curl_easy_init();
    if (!h) {
        memset(out, 0, sizeof *out);
        return CURLE_FAILED_INIT;
    }
    CURLcode rc = httpc_full(h, port, method, path, body, body ? strlen(body) : 0, 0, headers, out);
    curl_easy_cleanup(h);
    return rc;
}

void httpc_resp_free(httpc_resp *r)
{
    free(r->body);
    free(r->headers);
    memset(r, 0, sizeof *r);
}

const char *httpc_header(const httpc_resp *r, const char *name, char *val, size_t vlen)
{
    const char *found = NULL;
    size_t nl = strlen(name);
    for (const char *line = r->headers; line && *line;) {
        const char *eol = strchr(line, '\n');
        size_t ll = eol ? (size_t)(eol - line) : strlen(line);
        if (ll > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            size_t n = (size_t)(line + ll - v);
            while (n && (v[n - 1] == '\r' || v[n - 1] == ' '))
                n--;
            if (n >= vlen)
                n = vlen - 1;
            memcpy(val, v, n);
            val[n] = '\0';
            found = val;
        }
        line = eol ? eol + 1 : line + ll;
    }
    return found;
}

double httpc_metric(int port, const char *series)
{
    httpc_resp r;
    double v = -1;
    if (httpc(port, "GET", "/metrics", NULL, NULL, &r) != CURLE_OK || r.status != 200) {
        httpc_resp_free(&r);
        return -1;
    }
    size_t n = strlen(series);
    for (const char *p = r.body; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ') {
            v = strtod(p + n + 1, NULL);
            break;
        }
    httpc_resp_free(&r);
    return v;
}

int httpc_wait_metric(int port, const char *series, double want, double timeout_s)
{
    struct timespec t0, t, nap = {0, 2 * 1000 * 1000};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (httpc_metric(port, series) == want)
            return 1;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9 > timeout_s)
            return 0;
        nanosleep(&nap, NULL);
    }
}
