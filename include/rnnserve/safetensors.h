/* safetensors.h - read-only access to a .safetensors file.
 *
 * The file is mmap'ed and its header fully validated at open time (header length, JSON, dtypes,
 * shapes against byte lengths, offsets contiguous, non-overlapping and covering the buffer), so
 * that nothing read later can point outside the mapping. Tensors are converted to float32 on
 * request; the mapping itself is never cast to float*. */
#ifndef RNNSERVE_SAFETENSORS_H
#define RNNSERVE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8

typedef enum { ST_F32, ST_F64, ST_F16, ST_BF16 } st_dtype;

typedef struct st_file st_file;

/* One tensor's header entry. Borrowed from its st_file; valid until st_close(). */
typedef struct {
    const char *name;
    st_dtype dtype;
    int ndim; /* 0 (scalar) .. ST_MAX_DIMS */
    int64_t shape[ST_MAX_DIMS];
    size_t numel; /* product of shape (1 for a scalar) */
} st_tensor;

/* Opens and validates PATH. On success returns 0 and stores a new handle in *out (free with
 * st_close). On failure returns -1, leaves *out NULL and writes one message naming the file (and
 * the tensor, where there is one) into err[errlen]. */
int st_open(const char *path, st_file **out, char *err, size_t errlen);

/* Unmaps and frees. NULL is allowed. */
void st_close(st_file *f);

/* Number of tensors (the "__metadata__" entry is not a tensor). */
size_t st_count(const st_file *f);

/* The i-th tensor in header order, 0 <= i < st_count(). */
const st_tensor *st_at(const st_file *f, size_t i);

/* The tensor called NAME, or NULL. */
const st_tensor *st_find(const st_file *f, const char *name);

/* Name of a dtype as the format spells it ("F32", ...). */
const char *st_dtype_name(st_dtype d);

/* Converts tensor T to float32 into dst[t->numel]. Returns 0, or -1 with a message naming the
 * file and tensor when a value cannot be represented as float32 (an F64 beyond FLT_MAX).
 * NaN and infinities present in the file are copied as they are. */
int st_read_f32(const st_file *f, const st_tensor *t, float *dst, char *err, size_t errlen);

/* Path the file was opened with (for messages). */
const char *st_path(const st_file *f);

#endif
