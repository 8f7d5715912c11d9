/* file.h - reading a whole file into memory, safely whatever the path names.
 *
 * The one way rnnserve reads a config, a key file, a PEM file or a /proc or cgroup file: a FIFO
 * or a device never blocks or streams forever, and a file is never read past its cap. */
#ifndef RNNSERVE_FILE_H
#define RNNSERVE_FILE_H

#include <stddef.h>

/* Caps for the files rnnserve reads whole (callers pick one). */
#define FILE_CAP_CONFIG (64u << 20) /* a config: inline weights live there */
#define FILE_CAP_KEYS (1u << 20)    /* an api_keys file */
#define FILE_CAP_PEM (1u << 20)     /* a TLS certificate chain or key */
#define FILE_CAP_SYS (64u << 10)    /* a /proc or cgroup file */

/* Reads all of the regular file PATH. On success returns 0 and stores in *out a new buffer of
 * *len bytes plus a terminating NUL (the caller frees it; the file may itself hold NULs). On
 * failure returns -1, leaves *out NULL and writes one message naming PATH into err[errlen]:
 * "PATH: No such file or directory", "PATH: not a regular file (a FIFO)", "PATH: 70000000 bytes,
 * more than the 67108864 allowed". The file is opened non-blocking, so a FIFO is refused at once
 * instead of waiting for a writer; it is read until EOF (a /proc file says st_size 0) but never
 * beyond MAX_BYTES + 1 bytes, so a file that grows while read is refused too. */
int file_read_all(const char *path, size_t max_bytes, char **out, size_t *len, char *err,
                  size_t errlen);

#endif
