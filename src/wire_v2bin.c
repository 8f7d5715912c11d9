/* wire_v2bin.c - the binary tensor data extension's byte layout (Triton's
 * docs/protocol/extension_binary_data.md): the Inference-Header-Content-Length value, element
 * sizes, and the moves between a tensor's raw little-endian bytes and the engine's float arrays.
 * Which input owns which bytes is the v2 decoder's business (wire_v2.c). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

/* The wire's tensors are little-endian; on a little-endian machine an FP32 tensor is the
 * engine's float array byte for byte, so it moves with memcpy and no per-element work. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "binary tensors are copied as they are: a big-endian host would need byte swaps");
_Static_assert(sizeof(float) == 4, "FP32 is a 4-byte IEEE 754 float");

int api_framing_parse(const char *value, api_framing *f, char *err, size_t errlen)
{
    *f = (api_framing){0, 0};
    if (!value)
        return 0;
    const char *p = value;
    while (*p == ' ' || *p == '\t')
        p++;
    const char *digits = p;
    while (*p >= '0' && *p <= '9')
        p++;
    const char *end = p;
    while (*p == ' ' || *p == '\t')
        p++;
    char *stop;
    errno = 0;
    const unsigned long long n = strtoull(digits, &stop, 10);
    if (end == digits || *p != '\0' || stop != end || errno != 0 || n > SIZE_MAX) {
        snprintf(err, errlen,
                 "Inference-Header-Content-Length: expected the JSON header's length in bytes, "
                 "got \"%.64s\"",
                 value);
        return -1;
    }
    f->binary = 1;
    f->header_len = (size_t)n;
    return 0;
}

size_t wire_bin_dtype_size(const char *dtype)
{
    if (strcmp(dtype, "FP32") == 0 || strcmp(dtype, "INT32") == 0)
        return 4;
    if (strcmp(dtype, "INT64") == 0)
        return 8;
    return 0;
}

void wire_bin_to_f32(const char *src, const char *dtype, size_t n, float *dst)
{
    if (strcmp(dtype, "FP32") == 0) {
        memcpy(dst, src, n * sizeof *dst);
    } else if (strcmp(dtype, "INT32") == 0) {
        for (size_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, src + 4 * i, sizeof v);
            dst[i] = (float)v;
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            int64_t v;
            memcpy(&v, src + 8 * i, sizeof v);
            dst[i] = (float)v;
        }
    }
}

void wire_bin_put_f32(buf *out, const float *v, size_t n, size_t zeros)
{
    const size_t bytes = (n + zeros) * sizeof *v;
    if (buf_reserve(out, bytes) < 0)
        return; /* out->oom is set */
    memcpy(out->data + out->len, v, n * sizeof *v);
    memset(out->data + out->len + n * sizeof *v, 0, zeros * sizeof *v);
    out->len += bytes;
}
