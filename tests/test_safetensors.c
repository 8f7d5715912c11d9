/* test_safetensors.c - Check suite for src/safetensors.c: the reference test vectors, every
 * header rule a hostile file can break (each message must name file, tensor and rule), and the
 * F32/F64/F16/BF16 conversions read back bit for bit. Files are built here, in C, at test time. */
#include "rnnserve/safetensors.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ERRLEN 512

/* A safetensors image: 8-byte little-endian length, HDR, then DLEN bytes of DATA (zeros when
 * DATA is NULL). Caller frees. */
static unsigned char *image(const char *hdr, const void *data, size_t dlen, size_t *len)
{
    size_t hl = strlen(hdr);
    *len = 8 + hl + dlen;
    unsigned char *b = calloc(1, *len);
    ck_assert_ptr_nonnull(b);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, hdr, hl);
    if (data)
        memcpy(b + 8 + hl, data, dlen);
    return b;
}

/* Opening a file built from raw bytes; the test owns path and *f afterwards. */
static int open_bytes(const void *bytes, size_t len, char **path, st_file **f, char *err)
{
    *path = tu_write_tmp(".safetensors", bytes, len);
    ck_assert_ptr_nonnull(*path);
    return st_open(*path, f, err, ERRLEN);
}

static st_file *open_ok(const char *hdr, const void *data, size_t dlen, char **path)
{
    size_t len;
    unsigned char *b = image(hdr, data, dlen, &len);
    char err[ERRLEN] = "";
    st_file *f = NULL;
    int rc = open_bytes(b, len, path, &f, err);
    free(b);
    ck_assert_msg(rc == 0, "st_open failed: %s", err);
    ck_assert_ptr_nonnull(f);
    return f;
}

static void close_ok(st_file *f, char *path)
{
    st_close(f);
    unlink(path);
    free(path);
}

/* The checks every rejection must pass: -1, *out NULL, one line naming the file, the tensor
 * (when TENSOR is non-NULL) and the rule's WORD. */
static void expect_error_bytes(const void *bytes, size_t len, const char *tensor, const char *word)
{
    char err[ERRLEN] = "", *path;
    st_file *f = (st_file *)&f; /* not NULL, to see st_open clear it */
    int rc = open_bytes(bytes, len, &path, &f, err);
    ck_assert_int_eq(rc, -1);
    ck_assert_ptr_null(f);
    ck_assert_msg(strstr(err, path) == err, "message does not start with the path: %s", err);
    if (tensor)
        ck_assert_msg(strstr(err, tensor), "message lacks tensor %s: %s", tensor, err);
    ck_assert_msg(strstr(err, word), "message lacks \"%s\": %s", word, err);
    ck_assert_msg(!strchr(err, '\n'), "message is not one line: %s", err);
    unlink(path);
    free(path);
}

static void expect_error(const char *hdr, size_t dlen, const char *tensor, const char *word)
{
    size_t len;
    unsigned char *b = image(hdr, NULL, dlen, &len);
    expect_error_bytes(b, len, tensor, word);
    free(b);
}

/* The same as expect_error, but the whole message must be EXACT once "PATH: " is stripped. */
static void expect_message(const char *hdr, size_t dlen, const char *exact)
{
    size_t len;
    unsigned char *b = image(hdr, NULL, dlen, &len);
    char err[ERRLEN] = "", *path;
    st_file *f = NULL;
    ck_assert_int_eq(open_bytes(b, len, &path, &f, err), -1);
    size_t pl = strlen(path);
    ck_assert_msg(strncmp(err, path, pl) == 0 && strncmp(err + pl, ": ", 2) == 0, "%s", err);
    ck_assert_str_eq(err + pl + 2, exact);
    unlink(path);
    free(path);
    free(b);
}

static uint32_t bits_of(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

/* ---- valid files ------------------------------------------------------------------------- */

START_TEST(test_reference_vector_with_f32_opens)
{
    /* tensor.rs's valid vector, 60-byte header + 16 bytes, with I32 swapped for F32. */
    char *path;
    st_file *f = open_ok("{\"test\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}",
                         NULL, 16, &path);
    ck_assert_uint_eq(st_count(f), 1);
    const st_tensor *t = st_at(f, 0);
    ck_assert_str_eq(t->name, "test");
    ck_assert_int_eq(t->dtype, ST_F32);
    ck_assert_int_eq(t->ndim, 2);
    ck_assert_int_eq(t->shape[0], 2);
    ck_assert_int_eq(t->shape[1], 2);
    ck_assert_uint_eq(t->numel, 4);
    ck_assert_str_eq(st_path(f), path);
    close_ok(f, path);
}
END_TEST

START_TEST(test_whitespace_padded_headers_are_accepted)
{
    static const char *const hdrs[] = {"{}\r \t\n", "\t\n{}\r ", "  {}        "};
    for (size_t i = 0; i < sizeof hdrs / sizeof hdrs[0]; i++) {
        char *path;
        st_file *f = open_ok(hdrs[i], NULL, 0, &path);
        ck_assert_uint_eq(st_count(f), 0);
        ck_assert_ptr_null(st_find(f, "x"));
        close_ok(f, path);
    }
}
END_TEST

START_TEST(test_zero_tensor_file_is_valid)
{
    char *path;
    st_file *f = open_ok("{}", NULL, 0, &path);
    ck_assert_uint_eq(st_count(f), 0);
    close_ok(f, path);
}
END_TEST

START_TEST(test_empty_tensors_are_valid_and_read_nothing)
{
    char *path, err[ERRLEN] = "";
    st_file *f = open_ok("{\"e\":{\"dtype\":\"F32\",\"shape\":[2,0],\"data_offsets\":[0,0]},"
                         "\"x\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]},"
                         "\"z\":{\"dtype\":\"F64\",\"shape\":[0],\"data_offsets\":[2,2]}}",
                         "\x00\x3c", 2, &path);
    ck_assert_uint_eq(st_count(f), 3);
    const st_tensor *e = st_find(f, "e");
    ck_assert_ptr_nonnull(e);
    ck_assert_uint_eq(e->numel, 0);
    ck_assert_int_eq(st_read_f32(f, e, NULL, err, sizeof err), 0);
    ck_assert_int_eq(st_read_f32(f, st_find(f, "z"), NULL, err, sizeof err), 0);
    float one = 0;
    ck_assert_int_eq(st_read_f32(f, st_find(f, "x"), &one, err, sizeof err), 0);
    ck_assert(one == 1.0f);
    close_ok(f, path);
}
END_TEST

START_TEST(test_scalar_has_rank_zero_and_one_element)
{
    char *path, err[ERRLEN] = "";
    float v = -7.5f, out = 0;
    st_file *f =
        open_ok("{\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", &v, 4, &path);
    const st_tensor *t = st_find(f, "s");
    ck_assert_int_eq(t->ndim, 0);
    ck_assert_uint_eq(t->numel, 1);
    ck_assert_int_eq(st_read_f32(f, t, &out, err, sizeof err), 0);
    ck_assert(out == -7.5f);
    close_ok(f, path);
}
END_TEST

START_TEST(test_metadata_is_not_counted_as_a_tensor)
{
    char *path;
    st_file *f = open_ok("{\"__metadata__\":{\"format\":\"pt\",\"x\":\"\"},"
                         "\"w\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,6]}}",
                         NULL, 6, &path);
    ck_assert_uint_eq(st_count(f), 1);
    ck_assert_str_eq(st_at(f, 0)->name, "w");
    ck_assert_ptr_null(st_find(f, "__metadata__"));
    close_ok(f, path);
}
END_TEST

START_TEST(test_header_order_is_kept_and_st_find_hits_and_misses)
{
    /* Data order (b, a) differs from header order (a, b); extra keys are tolerated. */
    char *path;
    st_file *f = open_ok("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12],\"x\":1},"
                         "\"b\":{\"shape\":[2],\"data_offsets\":[0,8],\"dtype\":\"F32\"}}",
                         NULL, 12, &path);
    ck_assert_uint_eq(st_count(f), 2);
    ck_assert_str_eq(st_at(f, 0)->name, "a");
    ck_assert_str_eq(st_at(f, 1)->name, "b");
    ck_assert_ptr_eq(st_find(f, "b"), st_at(f, 1));
    ck_assert_uint_eq(st_find(f, "b")->numel, 2);
    ck_assert_ptr_null(st_find(f, "c"));
    ck_assert_ptr_null(st_find(f, "A"));
    ck_assert_ptr_null(st_find(f, ""));
    close_ok(f, path);
}
END_TEST

START_TEST(test_f32_reads_back_bit_exact)
{
    const float v[6] = {0.0f, -0.0f, 1.0f / 3.0f, -FLT_MAX, FLT_MIN / 8, INFINITY};
    char *path, err[ERRLEN] = "";
    st_file *f = open_ok("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", v,
                         sizeof v, &path);
    float out[6];
    ck_assert_int_eq(st_read_f32(f, st_find(f, "w"), out, err, sizeof err), 0);
    for (int i = 0; i < 6; i++)
        ck_assert_uint_eq(bits_of(out[i]), bits_of(v[i]));
    close_ok(f, path);
}
END_TEST

START_TEST(test_unaligned_tensors_read_correctly)
{
    /* A 3-byte F16 lead-in and an odd header length put the F32 and F64 data off alignment;
     * UBSan would flag any cast of the mapping. */
    unsigned char data[2 + 8 + 16];
    const float f32[2] = {1.25f, -3.5f};
    const double f64[2] = {0.1, -1e30};
    memcpy(data, "\x00\xc0", 2); /* F16 -2.0 */
    memcpy(data + 2, f32, 8);
    memcpy(data + 10, f64, 16);
    char *path, err[ERRLEN] = "";
    st_file *f = open_ok("{\"h\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]},"
                         "\"s\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[2,10]},"
                         "\"d\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[10,26]}} ",
                         data, sizeof data, &path);
    float out[2];
    ck_assert_int_eq(st_read_f32(f, st_find(f, "h"), out, err, sizeof err), 0);
    ck_assert(out[0] == -2.0f);
    ck_assert_int_eq(st_read_f32(f, st_find(f, "s"), out, err, sizeof err), 0);
    ck_assert(out[0] == 1.25f && out[1] == -3.5f);
    ck_assert_int_eq(st_read_f32(f, st_find(f, "d"), out, err, sizeof err), 0);
    ck_assert(out[0] == (float)0.1 && out[1] == (float)-1e30);
    close_ok(f, path);
}
END_TEST

START_TEST(test_f64_is_rounded_and_keeps_inf_and_nan)
{
    const double v[6] = {0.1, -2.5, FLT_MAX, -INFINITY, NAN, 1e-50};
    char *path, err[ERRLEN] = "";
    st_file *f = open_ok("{\"d\":{\"dtype\":\"F64\",\"shape\":[6],\"data_offsets\":[0,48]}}", v,
                         sizeof v, &path);
    float out[6];
    ck_assert_int_eq(st_read_f32(f, st_find(f, "d"), out, err, sizeof err), 0);
    ck_assert(out[0] == (float)0.1);
    ck_assert(out[1] == -2.5f);
    ck_assert(out[2] == FLT_MAX);
    ck_assert(isinf(out[3]) && out[3] < 0);
    ck_assert(isnan(out[4]));
    ck_assert(out[5] == 0.0f);
    close_ok(f, path);
}
END_TEST

START_TEST(test_f64_beyond_float32_is_an_error_naming_value_and_index)
{
    const double v[4] = {1, 2, 3, 1e300};
    char *path, err[ERRLEN] = "";
    st_file *f = open_ok("{\"big\":{\"dtype\":\"F64\",\"shape\":[4],\"data_offsets\":[0,32]}}", v,
                         sizeof v, &path);
    float out[4];
    ck_assert_int_eq(st_read_f32(f, st_find(f, "big"), out, err, sizeof err), -1);
    ck_assert_msg(strstr(err, path) == err, "%s", err);
    ck_assert_msg(strstr(err, "tensor \"big\": value 1e+300 at index 3 does not fit float32"), "%s",
                  err);
    close_ok(f, path);
}
END_TEST

/* Independent of the bit-twiddling under test: the half's value from its fields. */
static float half_reference(uint16_t h)
{
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    float s = (h & 0x8000) ? -1.0f : 1.0f;
    if (e == 31)
        return m ? NAN : s * INFINITY;
    if (e == 0)
        return s * ldexpf((float)m, -24);
    return s * ldexpf((float)(1024 + m), e - 25);
}

START_TEST(test_f16_converts_all_65536_halves_exactly)
{
    size_t n = 65536;
    uint16_t *h = malloc(n * 2);
    float *out = malloc(n * sizeof *out);
    ck_assert(h && out);
    for (size_t i = 0; i < n; i++)
        h[i] = (uint16_t)i;
    char *path, err[ERRLEN] = "";
    st_file *f = open_ok("{\"h\":{\"dtype\":\"F16\",\"shape\":[256,256],"
                         "\"data_offsets\":[0,131072]}}",
                         h, n * 2, &path);
    ck_assert_int_eq(st_read_f32(f, st_find(f, "h"), out, err, sizeof err), 0);
    for (size_t i = 0; i < n; i++) {
        float want = half_reference((uint16_t)i);
        if (isnan(want))
            ck_assert_msg(isnan(out[i]), "half 0x%04zx should be NaN", i);
        else
            ck_assert_msg(bits_of(out[i]) == bits_of(want), "half 0x%04zx: got %a want %a", i,
                          (double)out[i], (double)want);
    }
    /* The named corners, spelled out. */
    ck_assert(out[0x0001] == 0x1p-24f);        /* smallest subnormal */
    ck_assert(out[0x03ff] == 1023 * 0x1p-24f); /* largest subnormal */
    ck_assert(out[0x0400] == 0x1p-14f);        /* smallest normal */
    ck_assert(out[0x3c00] == 1.0f);
    ck_assert(out[0x7bff] == 65504.0f);
    ck_assert(isinf(out[0x7c00]) && out[0x7c00] > 0);
    ck_assert(isinf(out[0xfc00]) && out[0xfc00] < 0);
    ck_assert(isnan(out[0x7e00]) && isnan(out[0x7c01]));
    ck_assert(out[0x8000] == 0.0f && signbit(out[0x8000]));
    close_ok(f, path);
    free(h);
    free(out);
}
END_TEST

START_TEST(test_bf16_is_the_top_half_of_float32)
{
    const uint16_t v[6] = {0x3f80, 0xc000, 0x4049, 0x7f80, 0x0001, 0x8000};
    char *path, err[ERRLEN] = "";
    st_file *f = open_ok("{\"b\":{\"dtype\":\"BF16\",\"shape\":[6],\"data_offsets\":[0,12]}}", v,
                         sizeof v, &path);
    float out[6];
    ck_assert_int_eq(st_read_f32(f, st_find(f, "b"), out, err, sizeof err), 0);
    for (int i = 0; i < 6; i++)
        ck_assert_uint_eq(bits_of(out[i]), (uint32_t)v[i] << 16);
    ck_assert(out[0] == 1.0f && out[1] == -2.0f && out[2] == 3.140625f);
    ck_assert(isinf(out[3]));
    ck_assert(signbit(out[5]) && out[5] == 0.0f);
    close_ok(f, path);
}
END_TEST

START_TEST(test_dtype_names_match_the_format)
{
    ck_assert_str_eq(st_dtype_name(ST_F32), "F32");
    ck_assert_str_eq(st_dtype_name(ST_F64), "F64");
    ck_assert_str_eq(st_dtype_name(ST_F16), "F16");
    ck_assert_str_eq(st_dtype_name(ST_BF16), "BF16");
    st_close(NULL);
}
END_TEST

/* ---- files that cannot be opened ----------------------------------------------------------- */

START_TEST(test_missing_file_cannot_be_opened)
{
    char err[ERRLEN];
    st_file *f = NULL;
    const char *p = "/nonexistent-rnnserve/m.safetensors";
    ck_assert_int_eq(st_open(p, &f, err, sizeof err), -1);
    ck_assert_ptr_null(f);
    char want[ERRLEN];
    snprintf(want, sizeof want, "%s: cannot open: %s", p, strerror(ENOENT));
    ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(test_directory_cannot_be_opened)
{
    char dir[] = "/tmp/rnnserve-dir-XXXXXX", err[ERRLEN], want[ERRLEN];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    st_file *f = NULL;
    ck_assert_int_eq(st_open(dir, &f, err, sizeof err), -1);
    ck_assert_ptr_null(f);
    snprintf(want, sizeof want, "%s: cannot open: %s", dir, strerror(EISDIR));
    ck_assert_str_eq(err, want);
    rmdir(dir);
}
END_TEST

START_TEST(test_fifo_is_rejected_without_blocking)
{
    char *path = tu_write_tmp(".safetensors", "", 0), err[ERRLEN];
    ck_assert_ptr_nonnull(path);
    unlink(path);
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    st_file *f = NULL;
    ck_assert_int_eq(st_open(path, &f, err, sizeof err), -1);
    ck_assert_ptr_null(f);
    ck_assert_msg(strstr(err, path) && strstr(err, "cannot open"), "%s", err);
    unlink(path);
    free(path);
}
END_TEST

START_TEST(test_unreadable_file_cannot_be_opened)
{
    size_t len;
    unsigned char *b = image("{}", NULL, 0, &len);
    char *path = tu_write_tmp(".safetensors", b, len), err[ERRLEN];
    free(b);
    ck_assert_ptr_nonnull(path);
    ck_assert_int_eq(chmod(path, 0), 0);
    st_file *f = NULL;
    int rc = st_open(path, &f, err, sizeof err);
    if (geteuid() == 0) {
        /* root reads mode-0 files anyway, so there is no failure to observe here. */
        st_close(f);
    } else {
        ck_assert_int_eq(rc, -1);
        ck_assert_ptr_null(f);
        ck_assert_msg(strstr(err, path) && strstr(err, strerror(EACCES)), "%s", err);
    }
    unlink(path);
    free(path);
}
END_TEST

/* ---- the 8-byte length and the header's size ------------------------------------------------- */

START_TEST(test_empty_file_is_too_short)
{
    expect_error_bytes("", 0, NULL, "too short");
}
END_TEST

START_TEST(test_seven_bytes_are_too_short)
{
    expect_error_bytes("\x02\0\0\0\0\0\0", 7, NULL, "too short");
}
END_TEST

START_TEST(test_only_the_length_bytes_exceed_the_file)
{
    expect_error_bytes("<\0\0\0\0\0\0\0", 8, NULL, "header length 60 exceeds the file (8 bytes)");
}
END_TEST

START_TEST(test_huge_header_length_exceeds_the_file)
{
    unsigned char b[200];
    memset(b, ' ', sizeof b);
    memset(b, 0xff, 8);
    expect_error_bytes(b, sizeof b, NULL,
                       "header length 18446744073709551615 exceeds the file (200 bytes)");
    /* tensor.rs's HeaderTooLarge vector. */
    size_t len;
    unsigned char *img = image(
        "{\"test\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", NULL, 16, &len);
    memcpy(img, "<\0\0\0\0\xff\xff\xff", 8);
    expect_error_bytes(img, len, NULL, "exceeds the file");
    free(img);
}
END_TEST

START_TEST(test_header_over_100_mb_is_too_large)
{
    /* A sparse file big enough that only the 100,000,000-byte cap can refuse it. */
    const uint64_t n = 100000001;
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(n >> (8 * i));
    char *path = tu_write_tmp(".safetensors", b, 8), err[ERRLEN];
    ck_assert_ptr_nonnull(path);
    ck_assert_int_eq(truncate(path, (off_t)(8 + n)), 0);
    st_file *f = NULL;
    ck_assert_int_eq(st_open(path, &f, err, sizeof err), -1);
    ck_assert_ptr_null(f);
    ck_assert_msg(strstr(err, path) == err && strstr(err, "header too large: 100000001 bytes"),
                  "%s", err);
    unlink(path);
    free(path);
}
END_TEST

/* ---- the header's JSON --------------------------------------------------------------------- */

START_TEST(test_non_utf8_header_is_not_valid_json)
{
    expect_error_bytes("\x01\0\0\0\0\0\0\0\xff", 9, NULL, "not valid JSON");
}
END_TEST

START_TEST(test_unterminated_header_is_not_valid_json)
{
    expect_error_bytes("\x01\0\0\0\0\0\0\0{", 9, NULL, "not valid JSON");
    expect_error("{\"a\":{}} x", 0, NULL, "not valid JSON");
    expect_error("", 0, NULL, "not valid JSON");
}
END_TEST

START_TEST(test_header_must_be_an_object)
{
    expect_error("[]", 0, NULL, "header is an array, not a JSON object");
    expect_error("1", 0, NULL, "not a JSON object");
    expect_error("\"x\"", 0, NULL, "not a JSON object");
}
END_TEST

START_TEST(test_duplicate_tensor_names_are_rejected)
{
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                 "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                 8, "\"w\"", "duplicate object key");
}
END_TEST

START_TEST(test_metadata_with_a_non_string_value_is_rejected)
{
    expect_error("{\"__metadata__\":{\"format\":\"pt\",\"epochs\":3}}", 0, "epochs",
                 "__metadata__ \"epochs\" is an integer, but values must be strings");
    expect_error("{\"__metadata__\":[\"pt\"]}", 0, NULL, "__metadata__ is an array");
}
END_TEST

START_TEST(test_tensor_entry_must_be_an_object)
{
    expect_error("{\"w\":[0,4]}", 0, "tensor \"w\"", "must be an object");
}
END_TEST

/* ---- dtype --------------------------------------------------------------------------------- */

START_TEST(test_unsupported_dtype_is_rejected_by_name)
{
    /* tensor.rs's own valid vector: a fine file, but I32 is not something rnnserve serves. */
    expect_message("{\"test\":{\"dtype\":\"I32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16,
                   "tensor \"test\": unsupported dtype I32 (rnnserve reads F32, F64, F16, BF16)");
    expect_error("{\"q\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4,
                 "tensor \"q\"", "unsupported dtype F8_E4M3");
    expect_error("{\"m\":{\"dtype\":\"BOOL\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4,
                 "tensor \"m\"", "unsupported dtype BOOL");
}
END_TEST

START_TEST(test_unknown_dtype_is_rejected_by_name)
{
    expect_error("{\"w\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                 "tensor \"w\"", "unknown dtype \"f32\"");
}
END_TEST

START_TEST(test_missing_or_non_string_dtype_is_rejected)
{
    expect_error("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor \"w\"",
                 "\"dtype\" is missing");
    expect_error("{\"w\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor \"w\"",
                 "\"dtype\" is an integer");
}
END_TEST

/* ---- shape --------------------------------------------------------------------------------- */

START_TEST(test_missing_shape_is_rejected)
{
    expect_error("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "tensor \"w\"",
                 "\"shape\" is missing");
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,16]}}", 16,
                 "tensor \"w\"", "\"shape\" is an integer");
}
END_TEST

START_TEST(test_negative_shape_entry_is_rejected)
{
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-2],\"data_offsets\":[0,16]}}", 16,
                 "tensor \"w\"", "shape[1] is negative (-2)");
}
END_TEST

START_TEST(test_non_integer_shape_entry_is_rejected)
{
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2.0,2],\"data_offsets\":[0,16]}}", 16,
                 "tensor \"w\"", "shape[0] is a real number");
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,\"2\"],\"data_offsets\":[0,16]}}", 16,
                 "tensor \"w\"", "shape[1] is a string");
}
END_TEST

START_TEST(test_too_many_dims_are_rejected)
{
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],"
                 "\"data_offsets\":[0,4]}}",
                 4, "tensor \"w\"", "shape has 9 dims, at most 8");
    /* ST_MAX_DIMS itself is fine. */
    char *path;
    st_file *f = open_ok("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,2],"
                         "\"data_offsets\":[0,8]}}",
                         NULL, 8, &path);
    ck_assert_int_eq(st_find(f, "w")->ndim, ST_MAX_DIMS);
    close_ok(f, path);
}
END_TEST

START_TEST(test_shape_overflow_is_rejected)
{
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,9223372036854775807],"
                 "\"data_offsets\":[0,4]}}",
                 4, "tensor \"w\"", "overflow");
    /* Element count fits, byte size does not. */
    expect_error("{\"w\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],"
                 "\"data_offsets\":[0,4]}}",
                 4, "tensor \"w\"", "overflow");
    /* Beyond int64: jansson refuses the integer before we see it. */
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,18446744073709551614],"
                 "\"data_offsets\":[0,4]}}",
                 4, NULL, "too big integer");
}
END_TEST

/* ---- data_offsets -------------------------------------------------------------------------- */

START_TEST(test_data_offsets_need_exactly_two_entries)
{
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4,
                 "tensor \"w\"", "exactly 2 integers");
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 4,
                 "tensor \"w\"", "exactly 2 integers");
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "tensor \"w\"",
                 "exactly 2 integers");
}
END_TEST

START_TEST(test_reversed_data_offsets_are_rejected)
{
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4,
                 "tensor \"w\"", "[4,0] end before begin");
}
END_TEST

START_TEST(test_non_integer_or_negative_data_offsets_are_rejected)
{
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.0]}}", 4,
                 "tensor \"w\"", "data_offsets[1] is a real number");
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[null,4]}}", 4,
                 "tensor \"w\"", "data_offsets[0] is null");
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4,
                 "tensor \"w\"", "data_offsets[0] is negative");
}
END_TEST

START_TEST(test_byte_length_must_match_shape_and_dtype)
{
    expect_message("{\"weight_hh_l0\":{\"dtype\":\"F32\",\"shape\":[4,4],"
                   "\"data_offsets\":[0,12]}}",
                   12,
                   "tensor \"weight_hh_l0\": data_offsets [0,12] but shape [4,4] F32 needs "
                   "64 bytes");
    /* tensor.rs's TensorInvalidInfo vector. */
    expect_error("{\"test\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,4]}}", 4,
                 "tensor \"test\"", "needs 16 bytes");
    expect_error("{\"s\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[0,4]}}", 4,
                 "tensor \"s\"", "shape [] BF16 needs 2 bytes");
}
END_TEST

/* ---- coverage of the data section ---------------------------------------------------------- */

START_TEST(test_overlapping_tensors_are_rejected)
{
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
                 24, "tensors \"a\" and \"b\"", "overlap");
    /* The amplification attack: two names on the same bytes. */
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
                 16, "\"b\"", "overlap");
    /* An empty tensor inside another's bytes. */
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                 "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]}}",
                 16, "tensors \"a\" and \"e\"", "overlap");
}
END_TEST

START_TEST(test_gap_between_tensors_is_rejected)
{
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                 12, "tensors \"a\" and \"b\"", "gap");
}
END_TEST

START_TEST(test_data_not_starting_at_zero_is_a_gap)
{
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
                 "tensor \"a\"", "gap");
}
END_TEST

START_TEST(test_trailing_bytes_are_rejected)
{
    /* tensor.rs's polyglot vector, with F32 for I32. */
    const char *hdr = "{\"test\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";
    const char *tail = "extra_bogus_data_for_polyglot_file";
    size_t len, tl = strlen(tail);
    unsigned char *b = image(hdr, NULL, 16 + tl, &len);
    memcpy(b + len - tl, tail, tl);
    expect_error_bytes(b, len, NULL,
                       "trailing bytes: header says 16 bytes of tensor data, file "
                       "has 50");
    free(b);
    expect_error("{}", 1, NULL, "trailing bytes: header says 0 bytes of tensor data, file has 1");
}
END_TEST

START_TEST(test_truncated_file_is_rejected_naming_file)
{
    expect_error("{\"test\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 14, NULL,
                 "truncated: header says 16 bytes of tensor data, file has 14");
}
END_TEST

/* ---- the messages themselves ----------------------------------------------------------------- */

START_TEST(test_message_never_exceeds_errlen)
{
    size_t len;
    unsigned char *b = image("{\"a_rather_long_tensor_name\":{\"dtype\":\"I32\",\"shape\":[1],"
                             "\"data_offsets\":[0,4]}}",
                             NULL, 4, &len);
    char *path = tu_write_tmp(".safetensors", b, len);
    free(b);
    char buf[64];
    memset(buf, '#', sizeof buf);
    st_file *f = NULL;
    ck_assert_int_eq(st_open(path, &f, buf, 16), -1);
    ck_assert_uint_eq(strlen(buf), 15);
    for (size_t i = 16; i < sizeof buf; i++)
        ck_assert_int_eq(buf[i], '#');
    /* No buffer at all is allowed too. */
    ck_assert_int_eq(st_open(path, &f, NULL, 0), -1);
    unlink(path);
    free(path);
}
END_TEST

START_TEST(test_hostile_names_stay_on_one_line)
{
    expect_error("{\"a\\nb\\\"c\":{\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
                 "tensor \"a\\x0ab\\\"c\"", "unsupported dtype I8");
    /* A 4 KB name is cut short, so the rule still fits. */
    char hdr[4200];
    int n = snprintf(hdr, sizeof hdr, "{\"");
    memset(hdr + n, 'n', 4000);
    snprintf(hdr + n + 4000, sizeof hdr - (size_t)n - 4000,
             "\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,3]}}");
    expect_error(hdr, 3, "tensor \"nnnn", "needs 4 bytes");
}
END_TEST

static Suite *safetensors_suite(void)
{
    Suite *s = suite_create("safetensors");
    TCase *ok = tcase_create("valid");
    tcase_add_test(ok, test_reference_vector_with_f32_opens);
    tcase_add_test(ok, test_whitespace_padded_headers_are_accepted);
    tcase_add_test(ok, test_zero_tensor_file_is_valid);
    tcase_add_test(ok, test_empty_tensors_are_valid_and_read_nothing);
    tcase_add_test(ok, test_scalar_has_rank_zero_and_one_element);
    tcase_add_test(ok, test_metadata_is_not_counted_as_a_tensor);
    tcase_add_test(ok, test_header_order_is_kept_and_st_find_hits_and_misses);
    tcase_add_test(ok, test_dtype_names_match_the_format);
    suite_add_tcase(s, ok);

    TCase *rd = tcase_create("read_f32");
    tcase_add_test(rd, test_f32_reads_back_bit_exact);
    tcase_add_test(rd, test_unaligned_tensors_read_correctly);
    tcase_add_test(rd, test_f64_is_rounded_and_keeps_inf_and_nan);
    tcase_add_test(rd, test_f64_beyond_float32_is_an_error_naming_value_and_index);
    tcase_add_test(rd, test_f16_converts_all_65536_halves_exactly);
    tcase_add_test(rd, test_bf16_is_the_top_half_of_float32);
    suite_add_tcase(s, rd);

    TCase *io = tcase_create("open");
    tcase_add_test(io, test_missing_file_cannot_be_opened);
    tcase_add_test(io, test_directory_cannot_be_opened);
    tcase_add_test(io, test_fifo_is_rejected_without_blocking);
    tcase_add_test(io, test_unreadable_file_cannot_be_opened);
    tcase_add_test(io, test_empty_file_is_too_short);
    tcase_add_test(io, test_seven_bytes_are_too_short);
    tcase_add_test(io, test_only_the_length_bytes_exceed_the_file);
    tcase_add_test(io, test_huge_header_length_exceeds_the_file);
    tcase_add_test(io, test_header_over_100_mb_is_too_large);
    suite_add_tcase(s, io);

    TCase *hd = tcase_create("header");
    tcase_add_test(hd, test_non_utf8_header_is_not_valid_json);
    tcase_add_test(hd, test_unterminated_header_is_not_valid_json);
    tcase_add_test(hd, test_header_must_be_an_object);
    tcase_add_test(hd, test_duplicate_tensor_names_are_rejected);
    tcase_add_test(hd, test_metadata_with_a_non_string_value_is_rejected);
    tcase_add_test(hd, test_tensor_entry_must_be_an_object);
    tcase_add_test(hd, test_unsupported_dtype_is_rejected_by_name);
    tcase_add_test(hd, test_unknown_dtype_is_rejected_by_name);
    tcase_add_test(hd, test_missing_or_non_string_dtype_is_rejected);
    tcase_add_test(hd, test_missing_shape_is_rejected);
    tcase_add_test(hd, test_negative_shape_entry_is_rejected);
    tcase_add_test(hd, test_non_integer_shape_entry_is_rejected);
    tcase_add_test(hd, test_too_many_dims_are_rejected);
    tcase_add_test(hd, test_shape_overflow_is_rejected);
    tcase_add_test(hd, test_data_offsets_need_exactly_two_entries);
    tcase_add_test(hd, test_reversed_data_offsets_are_rejected);
    tcase_add_test(hd, test_non_integer_or_negative_data_offsets_are_rejected);
    tcase_add_test(hd, test_byte_length_must_match_shape_and_dtype);
    suite_add_tcase(s, hd);

    TCase *cv = tcase_create("coverage");
    tcase_add_test(cv, test_overlapping_tensors_are_rejected);
    tcase_add_test(cv, test_gap_between_tensors_is_rejected);
    tcase_add_test(cv, test_data_not_starting_at_zero_is_a_gap);
    tcase_add_test(cv, test_trailing_bytes_are_rejected);
    tcase_add_test(cv, test_truncated_file_is_rejected_naming_file);
    suite_add_tcase(s, cv);

    TCase *ms = tcase_create("messages");
    tcase_add_test(ms, test_message_never_exceeds_errlen);
    tcase_add_test(ms, test_hostile_names_stay_on_one_line);
    suite_add_tcase(s, ms);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(safetensors_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
