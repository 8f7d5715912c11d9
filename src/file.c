/* file.c - whole-file reads that no path can hang or flood (see file.h).
 *
 * Owns the checks every reader of a named file needs: not a FIFO, a device or a directory, and
 * not larger than the caller's cap, whatever st_size claims. */
#include "rnnserve/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* "a FIFO", "a directory", ... for the message that refuses MODE. */
static const char *kind_of(mode_t mode)
{
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    if (S_ISSOCK(mode))
        return "a socket";
    return "not a file";
}

int file_read_all(const char *path, size_t max_bytes, char **out, size_t *len, char *err,
                  size_t errlen)
{
    char *data = NULL;
    size_t n = 0, cap = 0;
    struct stat st;
    *out = NULL;
    *len = 0;
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file (%s)", path, kind_of(st.st_mode));
        goto fail;
    }
    if ((unsigned long long)st.st_size > max_bytes) {
        snprintf(err, errlen, "%s: %llu bytes, more than the %zu allowed", path,
                 (unsigned long long)st.st_size, max_bytes);
        goto fail;
    }
    /* st_size is a hint only (0 for /proc files): read to EOF, one byte past the cap at most. */
    cap = (size_t)st.st_size + 1 < 4096 ? 4096 : (size_t)st.st_size + 1;
    for (;;) {
        if (n == cap || !data) {
            if (data)
                cap = cap > max_bytes / 2 ? max_bytes + 1 : cap * 2;
            char *nd = realloc(data, cap + 1);
            if (!nd) {
                snprintf(err, errlen, "%s: out of memory reading %zu bytes", path, cap);
                goto fail;
            }
            data = nd;
        }
        size_t want = cap - n;
        if (want > max_bytes + 1 - n)
            want = max_bytes + 1 - n;
        ssize_t got = read(fd, data + n, want);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            goto fail;
        }
        if (got == 0)
            break;
        n += (size_t)got;
        if (n > max_bytes) {
            snprintf(err, errlen, "%s: more than the %zu bytes allowed (it grew while read)", path,
                     max_bytes);
            goto fail;
        }
    }
    close(fd);
    data[n] = '\0';
    *out = data;
    *len = n;
    return 0;

fail:
    close(fd);
    free(data);
    return -1;
}
