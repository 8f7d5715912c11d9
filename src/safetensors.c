/* safetensors.c - opens, validates and reads .safetensors files (see safetensors.h).
 * Owns the mapping, the header checks a hostile file could lie about, and the
 * F32/F64/F16/BF16 -> float32 conversion. Nothing here trusts an offset before it is checked. */
#include "rnnserve/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The reference reader's MAX_HEADER_SIZE: a bigger JSON header is a denial of service. */
#define MAX_HEADER_LEN 100000000ull

/* Tensor names and dtypes are quoted into messages through buffers this big (longer ones are
 * cut with "..."), so one hostile name cannot crowd the rule out of err. */
#define QUOTE_LEN 128

/* A tensor as the API shows it, plus where its bytes are. t comes first so that st_read_f32
 * can get from the caller's st_tensor* back to its entry. */
struct entry {
    st_tensor t;
    uint64_t begin, end; /* relative to the data section; checked against the file at open */
};

struct st_file {
    char *path;                /* owned copy, for messages */
    unsigned char *map;        /* the whole file, PROT_READ */
    size_t map_len;            /* > 0: empty files are never mapped */
    const unsigned char *data; /* map + 8 + N: where data_offsets start counting */
    size_t count;
    struct entry *entries; /* owned; one block that also holds the names */
};

/* Writes one line into err[errlen]. Control characters become spaces so that whatever the file
 * put into a name or into jansson's "near '...'" text cannot break the one-line rule. */
static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    for (char *p = err; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
}

/* Copies S into dst[QUOTE_LEN] with '"', '\\' and control characters escaped, so a name that
 * contains quotes still reads unambiguously inside tensor "...". */
static const char *quote(char dst[QUOTE_LEN], const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\')
            snprintf(esc, sizeof esc, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            snprintf(esc, sizeof esc, "\\x%02x", c);
        else
            snprintf(esc, sizeof esc, "%c", c);
        size_t el = strlen(esc);
        if (n + el + 4 > QUOTE_LEN) {
            memcpy(dst + n, "...", 4);
            return dst;
        }
        memcpy(dst + n, esc, el);
        n += el;
    }
    dst[n] = '\0';
    return dst;
}

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        break;
    }
    return "null";
}

/* "[4,4]" into dst[len]; "[]" for a scalar. */
static void format_shape(char *dst, size_t len, const st_tensor *t)
{
    size_t n = (size_t)snprintf(dst, len, "[");
    for (int i = 0; i < t->ndim && n < len; i++)
        n += (size_t)snprintf(dst + n, len - n, "%s%lld", i ? "," : "", (long long)t->shape[i]);
    if (n < len)
        snprintf(dst + n, len - n, "]");
}

/* Element size in bytes of each accepted dtype. */
static size_t dtype_size(st_dtype d)
{
    switch (d) {
    case ST_F32:
        return 4;
    case ST_F64:
        return 8;
    case ST_F16:
    case ST_BF16:
        return 2;
    }
    return 0;
}

const char *st_dtype_name(st_dtype d)
{
    switch (d) {
    case ST_F32:
        return "F32";
    case ST_F64:
        return "F64";
    case ST_F16:
        return "F16";
    case ST_BF16:
        return "BF16";
    }
    return "?";
}

/* Known-but-unsupported dtypes get their own message: "unsupported" tells the user the file is
 * fine and rnnserve is the limit, "unknown" that the file is wrong. */
static const char *const other_dtypes[] = {
    "BOOL",    "F4",      "F6_E2M3", "F6_E3M2",     "U8",          "I8",
    "F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "I16",
    "U16",     "I32",     "U32",     "C64",         "I64",         "U64",
};

/* 0 and *out set, 1 for a known dtype rnnserve does not read, -1 for an unknown string. */
static int parse_dtype(const char *s, st_dtype *out)
{
    static const st_dtype ours[] = {ST_F32, ST_F64, ST_F16, ST_BF16};
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++) {
        if (strcmp(s, st_dtype_name(ours[i])) == 0) {
            *out = ours[i];
            return 0;
        }
    }
    for (size_t i = 0; i < sizeof other_dtypes / sizeof other_dtypes[0]; i++)
        if (strcmp(s, other_dtypes[i]) == 0)
            return 1;
    return -1;
}

/* Checks that __metadata__ is the string-to-string map the format promises. */
static int check_metadata(const char *path, const json_t *meta, char *err, size_t errlen)
{
    char q[QUOTE_LEN];
    if (!json_is_object(meta)) {
        set_err(err, errlen, "%s: __metadata__ is %s, but must be an object of strings", path,
                json_type_name(meta));
        return -1;
    }
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)meta, k, v)
    {
        if (!json_is_string(v)) {
            set_err(err, errlen, "%s: __metadata__ \"%s\" is %s, but values must be strings", path,
                    quote(q, k), json_type_name(v));
            return -1;
        }
    }
    return 0;
}

/* Fills E from the header entry V for tensor NAME (E->t.name is set by the caller), checking
 * dtype, shape, data_offsets and that the byte range is exactly what shape and dtype need. */
static int parse_entry(const char *path, const char *name, const json_t *v, struct entry *e,
                       char *err, size_t errlen)
{
    char q[QUOTE_LEN], q2[QUOTE_LEN], shp[256];
    quote(q, name);
    if (!json_is_object(v)) {
        set_err(err, errlen, "%s: tensor \"%s\": entry is %s, but must be an object", path, q,
                json_type_name(v));
        return -1;
    }

    const json_t *dt = json_object_get(v, "dtype");
    if (!json_is_string(dt)) {
        set_err(err, errlen, "%s: tensor \"%s\": \"dtype\" is %s, but must be a string", path, q,
                dt ? json_type_name(dt) : "missing");
        return -1;
    }
    int rc = parse_dtype(json_string_value(dt), &e->t.dtype);
    if (rc == 1) {
        set_err(err, errlen,
                "%s: tensor \"%s\": unsupported dtype %s (rnnserve reads F32, F64, F16, BF16)",
                path, q, json_string_value(dt));
        return -1;
    }
    if (rc < 0) {
        set_err(err, errlen, "%s: tensor \"%s\": unknown dtype \"%s\"", path, q,
                quote(q2, json_string_value(dt)));
        return -1;
    }

    const json_t *sh = json_object_get(v, "shape");
    if (!json_is_array(sh)) {
        set_err(err, errlen, "%s: tensor \"%s\": \"shape\" is %s, but must be an array of integers",
                path, q, sh ? json_type_name(sh) : "missing");
        return -1;
    }
    if (json_array_size(sh) > ST_MAX_DIMS) {
        set_err(err, errlen, "%s: tensor \"%s\": shape has %zu dims, at most %d are supported",
                path, q, json_array_size(sh), ST_MAX_DIMS);
        return -1;
    }
    e->t.ndim = (int)json_array_size(sh);
    size_t numel = 1;
    int overflow = 0;
    for (int i = 0; i < e->t.ndim; i++) {
        const json_t *d = json_array_get(sh, (size_t)i);
        if (!json_is_integer(d)) {
            set_err(err, errlen, "%s: tensor \"%s\": shape[%d] is %s, but must be an integer", path,
                    q, i, json_type_name(d));
            return -1;
        }
        json_int_t n = json_integer_value(d);
        if (n < 0) {
            set_err(err, errlen, "%s: tensor \"%s\": shape[%d] is negative (%lld)", path, q, i,
                    (long long)n);
            return -1;
        }
        e->t.shape[i] = n;
        overflow |= __builtin_mul_overflow(numel, (uint64_t)n, &numel);
    }
    e->t.numel = numel;
    format_shape(shp, sizeof shp, &e->t);
    size_t nbytes;
    if (overflow || __builtin_mul_overflow(numel, dtype_size(e->t.dtype), &nbytes)) {
        set_err(err, errlen, "%s: tensor \"%s\": shape %s %s overflows (too many bytes)", path, q,
                shp, st_dtype_name(e->t.dtype));
        return -1;
    }

    const json_t *off = json_object_get(v, "data_offsets");
    if (!json_is_array(off) || json_array_size(off) != 2) {
        set_err(err, errlen,
                "%s: tensor \"%s\": \"data_offsets\" must be an array of exactly 2 integers", path,
                q);
        return -1;
    }
    json_int_t be[2];
    for (size_t i = 0; i < 2; i++) {
        const json_t *o = json_array_get(off, i);
        if (!json_is_integer(o)) {
            set_err(err, errlen,
                    "%s: tensor \"%s\": data_offsets[%zu] is %s, but must be an integer", path, q,
                    i, json_type_name(o));
            return -1;
        }
        be[i] = json_integer_value(o);
        if (be[i] < 0) {
            set_err(err, errlen, "%s: tensor \"%s\": data_offsets[%zu] is negative (%lld)", path, q,
                    i, (long long)be[i]);
            return -1;
        }
    }
    if (be[1] < be[0]) {
        set_err(err, errlen, "%s: tensor \"%s\": data_offsets [%lld,%lld] end before begin", path,
                q, (long long)be[0], (long long)be[1]);
        return -1;
    }
    e->begin = (uint64_t)be[0];
    e->end = (uint64_t)be[1];
    if (e->end - e->begin != nbytes) {
        set_err(err, errlen,
                "%s: tensor \"%s\": data_offsets [%lld,%lld] but shape %s %s needs %zu bytes", path,
                q, (long long)be[0], (long long)be[1], shp, st_dtype_name(e->t.dtype), nbytes);
        return -1;
    }
    return 0;
}

/* Orders by begin; ties by end so an empty tensor sits before the data it touches, then by
 * position so the order (and so which pair a message names) is deterministic. */
static int cmp_entry(const void *a, const void *b)
{
    const struct entry *x = *(const struct entry *const *)a, *y = *(const struct entry *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Requires the data section to be covered exactly once: sorted by begin, each tensor starts where
 * the previous one ended (the first at 0), and the last ends at DATA_LEN. Overlap lets a small
 * file claim the same bytes many times; gaps and trailing bytes make polyglot files. */
static int check_coverage(const char *path, struct entry *entries, size_t count, uint64_t data_len,
                          char *err, size_t errlen)
{
    char q[QUOTE_LEN], q2[QUOTE_LEN];
    int rc = -1;
    uint64_t covered = 0;
    /* Owned here, freed before returning. */
    struct entry **order = malloc((count ? count : 1) * sizeof *order);
    if (!order) {
        set_err(err, errlen, "%s: out of memory sorting %zu tensors", path, count);
        return -1;
    }
    for (size_t i = 0; i < count; i++)
        order[i] = &entries[i];
    qsort(order, count, sizeof *order, cmp_entry);
    for (size_t i = 0; i < count; i++) {
        const struct entry *e = order[i];
        if (e->begin == covered) {
            covered = e->end;
            continue;
        }
        if (i == 0) {
            set_err(err, errlen,
                    "%s: tensor \"%s\": data starts at offset %llu, leaving a gap (the first "
                    "tensor must start at 0)",
                    path, quote(q, e->t.name), (unsigned long long)e->begin);
        } else {
            const struct entry *p = order[i - 1];
            set_err(err, errlen,
                    "%s: tensors \"%s\" and \"%s\" %s (offsets [%llu,%llu] and [%llu,%llu])", path,
                    quote(q, p->t.name), quote(q2, e->t.name),
                    e->begin < covered ? "overlap" : "leave a gap between them",
                    (unsigned long long)p->begin, (unsigned long long)p->end,
                    (unsigned long long)e->begin, (unsigned long long)e->end);
        }
        goto out;
    }
    if (covered > data_len) {
        set_err(err, errlen, "%s: truncated: header says %llu bytes of tensor data, file has %llu",
                path, (unsigned long long)covered, (unsigned long long)data_len);
        goto out;
    }
    if (covered < data_len) {
        set_err(err, errlen,
                "%s: trailing bytes: header says %llu bytes of tensor data, file has %llu", path,
                (unsigned long long)covered, (unsigned long long)data_len);
        goto out;
    }
    rc = 0;
out:
    free(order);
    return rc;
}

/* Ownership: on success *out owns the mapping, the path copy and one block of entries+names, all
 * released by st_close. The fd and the parsed JSON never outlive this call. */
int st_open(const char *path, st_file **out, char *err, size_t errlen)
{
    st_file *f = NULL;
    json_t *root = NULL;
    int fd = -1;
    *out = NULL;

    /* O_NONBLOCK so a FIFO fails the regular-file check below instead of hanging the open. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        set_err(err, errlen, "%s: cannot open: %s", path,
                S_ISDIR(sb.st_mode) ? strerror(EISDIR) : "not a regular file");
        goto fail;
    }
    /* Checked before mmap, which rejects a length of 0. */
    if (sb.st_size < 8) {
        set_err(err, errlen,
                "%s: too short: %lld bytes, a safetensors file starts with an 8-byte header length",
                path, (long long)sb.st_size);
        goto fail;
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        set_err(err, errlen, "%s: too large to map (%lld bytes)", path, (long long)sb.st_size);
        goto fail;
    }

    f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        set_err(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    f->map_len = (size_t)sb.st_size;
    void *map = mmap(NULL, f->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        f->map_len = 0;
        set_err(err, errlen, "%s: cannot map: %s", path, strerror(errno));
        goto fail;
    }
    f->map = map;
    close(fd);
    fd = -1;

    /* Byte by byte: the format is little-endian whatever the host is. */
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | f->map[i];
    if (hlen > f->map_len - 8) {
        set_err(err, errlen, "%s: header length %llu exceeds the file (%zu bytes)", path,
                (unsigned long long)hlen, f->map_len);
        goto fail;
    }
    if (hlen > MAX_HEADER_LEN) {
        set_err(err, errlen, "%s: header too large: %llu bytes, the limit is %llu", path,
                (unsigned long long)hlen, MAX_HEADER_LEN);
        goto fail;
    }

    /* DECODE_ANY so that a scalar header gets "not an object" rather than a parse error;
     * REJECT_DUPLICATES because the format forbids repeated tensor names and jansson would
     * otherwise keep the last one silently. */
    json_error_t jerr;
    root = json_loadb((const char *)f->map + 8, (size_t)hlen,
                      JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!root) {
        if (json_error_code(&jerr) == json_error_duplicate_key)
            set_err(err, errlen, "%s: header: %s (header byte %d; tensor names must be unique)",
                    path, jerr.text, jerr.position);
        else
            set_err(err, errlen, "%s: header is not valid JSON: %s (header byte %d)", path,
                    jerr.text, jerr.position);
        goto fail;
    }
    if (!json_is_object(root)) {
        set_err(err, errlen, "%s: header is %s, not a JSON object", path, json_type_name(root));
        goto fail;
    }

    /* Count first so that entries and names come from one allocation. */
    size_t count = 0, name_bytes = 0;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        if (strcmp(key, "__metadata__") == 0) {
            if (check_metadata(path, val, err, errlen) != 0)
                goto fail;
            continue;
        }
        count++;
        name_bytes += strlen(key) + 1;
    }
    /* At least one byte so a zero-tensor file still gets a non-NULL block to free. */
    f->entries = calloc(1, count * sizeof *f->entries + name_bytes + 1);
    if (!f->entries) {
        set_err(err, errlen, "%s: out of memory for %zu tensors", path, count);
        goto fail;
    }
    char *names = (char *)(f->entries + count);
    json_object_foreach(root, key, val)
    {
        if (strcmp(key, "__metadata__") == 0)
            continue;
        struct entry *e = &f->entries[f->count];
        size_t kl = strlen(key) + 1;
        memcpy(names, key, kl);
        e->t.name = names;
        names += kl;
        if (parse_entry(path, key, val, e, err, errlen) != 0)
            goto fail;
        f->count++;
    }

    if (check_coverage(path, f->entries, f->count, f->map_len - 8 - hlen, err, errlen) != 0)
        goto fail;
    f->data = f->map + 8 + hlen;
    json_decref(root);
    *out = f;
    return 0;

fail:
    json_decref(root);
    if (fd >= 0)
        close(fd);
    st_close(f);
    return -1;
}

void st_close(st_file *f)
{
    if (!f)
        return;
    if (f->map)
        munmap(f->map, f->map_len);
    free(f->entries);
    free(f->path);
    free(f);
}

size_t st_count(const st_file *f)
{
    return f->count;
}

const st_tensor *st_at(const st_file *f, size_t i)
{
    return i < f->count ? &f->entries[i].t : NULL;
}

const st_tensor *st_find(const st_file *f, const char *name)
{
    for (size_t i = 0; i < f->count; i++)
        if (strcmp(f->entries[i].t.name, name) == 0)
            return &f->entries[i].t;
    return NULL;
}

const char *st_path(const st_file *f)
{
    return f->path;
}

/* IEEE binary16 -> binary32 by bit manipulation, exact for every input: the half's 5-bit
 * exponent (bias 15) is rebased to bias 127, subnormal halves become normal floats. */
static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13); /* inf, or NaN keeping its payload */
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign; /* keeps -0 */
    } else {
        /* mant * 2^-24: shift until the implicit bit (bit 10) is set, lowering the exponent. */
        uint32_t e = 113;
        while (!(mant & 0x400u)) {
            mant <<= 1;
            e--;
        }
        bits = sign | (e << 23) | ((mant & 0x3ffu) << 13);
    }
    float out;
    memcpy(&out, &bits, sizeof out);
    return out;
}

/* The loads below memcpy raw bytes into host integers and floats, which is only a little-endian
 * read because the host is little-endian (x86_64); memcpy also makes unaligned data safe. */
int st_read_f32(const st_file *f, const st_tensor *t, float *dst, char *err, size_t errlen)
{
    /* t is the first member of its entry, handed out by st_at/st_find. */
    const struct entry *e = (const struct entry *)t;
    const unsigned char *src = f->data + e->begin;
    char q[QUOTE_LEN];
    if (t->numel == 0)
        return 0; /* dst may be NULL for an empty tensor, and memcpy must not see that */
    switch (t->dtype) {
    case ST_F32:
        memcpy(dst, src, t->numel * sizeof *dst);
        return 0;
    case ST_BF16:
        for (size_t i = 0; i < t->numel; i++) {
            uint16_t u;
            memcpy(&u, src + 2 * i, 2);
            uint32_t bits = (uint32_t)u << 16; /* bf16 is the top half of a float32 */
            memcpy(&dst[i], &bits, 4);
        }
        return 0;
    case ST_F16:
        for (size_t i = 0; i < t->numel; i++) {
            uint16_t u;
            memcpy(&u, src + 2 * i, 2);
            dst[i] = half_to_float(u);
        }
        return 0;
    case ST_F64:
        for (size_t i = 0; i < t->numel; i++) {
            double d;
            memcpy(&d, src + 8 * i, 8);
            /* NaN compares false and infinities pass through as the header promises; only a
             * finite value that would silently become inf is an error. */
            if (isfinite(d) && (d > FLT_MAX || d < -FLT_MAX)) {
                set_err(err, errlen,
                        "%s: tensor \"%s\": value %g at index %zu does not fit float32", f->path,
                        quote(q, t->name), d, i);
                return -1;
            }
            dst[i] = (float)d;
        }
        return 0;
    }
    set_err(err, errlen, "%s: tensor \"%s\": bad dtype", f->path, quote(q, t->name));
    return -1;
}
