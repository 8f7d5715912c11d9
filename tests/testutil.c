/* testutil.c - helpers shared by the Check suites (see testutil.h). */
#include "testutil.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Parts of a long failure message that reach the report (Check's limit is 4096 bytes). */
#define TU_HEAD 1000
#define TU_TAIL 2000

void tu_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
    char cut[TU_HEAD + TU_TAIL + 128];
    char *full = NULL;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&full, fmt, ap) < 0)
            full = NULL;
        va_end(ap);
    }
    const char *m = full ? full : expr;
    size_t n = strlen(m);
    if (n < sizeof cut - 1) {
        memcpy(cut, m, n + 1);
    } else {
        fprintf(stderr, "%s:%d: the whole failure message (%zu bytes):\n%s\n", file, line, n, m);
        snprintf(cut, sizeof cut,
                 "%.*s\n[... %zu bytes cut: the whole message is on stderr ...]\n%s", TU_HEAD, m,
                 n - TU_HEAD - TU_TAIL, m + n - TU_TAIL);
    }
    free(full); /* before Check ends the test (no-fork mode jumps out of here) */
    _ck_assert_failed(file, line, expr, "%s", cut);
}

char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

char *tu_write_tmp(const char *suffix, const void *data, size_t len)
{
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir)
        dir = "/tmp";
    size_t plen = strlen(dir) + strlen(suffix) + 32;
    char *path = malloc(plen);
    if (!path)
        return NULL;
    snprintf(path, plen, "%s/rnnserve-XXXXXX%s", dir, suffix);
    int fd = mkstemps(path, (int)strlen(suffix));
    if (fd < 0) {
        free(path);
        return NULL;
    }
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w <= 0)
            break;
        p += w;
        len -= (size_t)w;
    }
    close(fd);
    return path;
}

double tu_max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        if (isfinite(a[i]) != isfinite(b[i]))
            return INFINITY;
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m)
            m = d;
    }
    return m;
}

const char *tu_fixture(const char *rel)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "tests/fixtures/%s", rel);
    return buf;
}

double tu_now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

void tu_sleep_ms(int ms)
{
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

int tu_under_valgrind(void)
{
    const char *pre = getenv("LD_PRELOAD");
    return pre && strstr(pre, "vgpreload");
}

double tu_slack(double asan, double valgrind)
{
    if (tu_under_valgrind())
        return valgrind;
    return TU_UNDER_ASAN ? asan : 1.0;
}

void tu_write_lstm(const char *path, int I, int H, int L)
{
    json_t *hdr = json_object();
    size_t off = 0;
    char name[64];
    for (int l = 0; l < L; l++) {
        const int rows = 4 * H, cols[4] = {l ? H : I, H, 0, 0};
        const char *fmt[4] = {"weight_ih_l%d", "weight_hh_l%d", "bias_ih_l%d", "bias_hh_l%d"};
        for (int k = 0; k < 4; k++) {
            size_t n = (size_t)rows * (size_t)(cols[k] ? cols[k] : 1);
            snprintf(name, sizeof name, fmt[k], l);
            json_t *shape = cols[k] ? json_pack("[ii]", rows, cols[k]) : json_pack("[i]", rows);
            json_object_set_new(hdr, name,
                                json_pack("{s:s,s:o,s:[II]}", "dtype", "F32", "shape", shape,
                                          "data_offsets", (json_int_t)off,
                                          (json_int_t)(off + n * 4)));
            off += n * 4;
        }
    }
    char *text = json_dumps(hdr, JSON_COMPACT);
    size_t hl = strlen(text), padded = (hl + 7) / 8 * 8;
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    uint64_t le = padded;
    fwrite(&le, 8, 1, fp);
    fwrite(text, 1, hl, fp);
    for (size_t i = hl; i < padded; i++)
        fputc(' ', fp);
    uint32_t x = 12345;
    for (size_t i = 0; i < off / 4; i++) {
        x = x * 1664525u + 1013904223u;
        float f = ((float)(x >> 8) / 16777216.0f - 0.5f) * 0.08f;
        fwrite(&f, 4, 1, fp);
    }
    fclose(fp);
    free(text);
    json_decref(hdr);
}
