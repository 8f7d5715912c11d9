/* testutil.h - small helpers shared by the Check suites: files, fixtures, float comparison. */
#ifndef RNNSERVE_TESTUTIL_H
#define RNNSERVE_TESTUTIL_H

#include <stddef.h>

/* Reads a whole file into a new NUL-terminated buffer (free() it); NULL on failure. */
char *tu_read_file(const char *path, size_t *len);

/* Writes LEN bytes to a new temporary file named ...SUFFIX and returns its path, malloc'ed:
 * the caller unlink()s the file and free()s the path. NULL on failure. */
char *tu_write_tmp(const char *suffix, const void *data, size_t len);

/* Largest |a[i] - b[i]| over n values (inf when either is non-finite where the other is not). */
double tu_max_abs_diff(const float *a, const float *b, size_t n);

/* Path of a file under tests/fixtures (static buffer, valid until the next call). */
const char *tu_fixture(const char *rel);

#endif
