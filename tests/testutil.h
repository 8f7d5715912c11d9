/* testutil.h - small helpers shared by the Check suites: files, fixtures, float comparison, and
 * failure messages that always reach the report. */
#ifndef RNNSERVE_TESTUTIL_H
#define RNNSERVE_TESTUTIL_H

#include <check.h>
#include <stddef.h>

/* Check carries a failure message to the report through a 4 KB channel, and a longer one (a server
 * log quoted in a message) kills the test with a bare "exit 2" that hides what failed. So the
 * suites' ck_assert_msg and ck_abort_msg go through tu_fail, which prints the whole message to
 * stderr and hands Check its first and last lines, about 3 KB. */
void tu_fail(const char *file, int line, const char *expr, const char *fmt,
             ...) CK_ATTRIBUTE_NORETURN CK_ATTRIBUTE_FORMAT(printf, 4, 5);
/* Check records every passing assertion (a write and a flush to its message file), so that a
 * crash can be reported "after this point". An assertion in a loop over a million inputs made
 * that most of a suite's time; repeats of the line a thread marked last are skipped. */
static inline void tu_mark(const char *file, int line)
{
    static _Thread_local const char *last_file;
    static _Thread_local int last_line;
    if (line != last_line || file != last_file) {
        last_file = file;
        last_line = line;
        _mark_point(file, line);
    }
}
#undef ck_assert_msg
#define ck_assert_msg(expr, ...)                                                                   \
    ((expr) ? tu_mark(__FILE__, __LINE__)                                                          \
            : tu_fail(__FILE__, __LINE__, "Assertion '" #expr "' failed", ##__VA_ARGS__))
#undef ck_abort_msg
#define ck_abort_msg(...) tu_fail(__FILE__, __LINE__, "Failed", ##__VA_ARGS__)

/* Reads a whole file into a new NUL-terminated buffer (free() it); NULL on failure. */
char *tu_read_file(const char *path, size_t *len);

/* Writes LEN bytes to a new temporary file named ...SUFFIX and returns its path, malloc'ed:
 * the caller unlink()s the file and free()s the path. NULL on failure. */
char *tu_write_tmp(const char *suffix, const void *data, size_t len);

/* Largest |a[i] - b[i]| over n values (inf when either is non-finite where the other is not). */
double tu_max_abs_diff(const float *a, const float *b, size_t n);

/* Writes an nn.LSTM(I, H, L) with small pseudo-random weights (a fixed generator: the same bytes
 * every time) as a safetensors file at PATH: a model big enough to keep a pass running. */
void tu_write_lstm(const char *path, int I, int H, int L);

/* Path of a file under tests/fixtures (static buffer, valid until the next call). */
const char *tu_fixture(const char *rel);

/* Seconds on the monotonic clock. */
double tu_now_s(void);

/* Sleeps MS milliseconds. */
void tu_sleep_ms(int ms);

/* 1 when this runner runs under valgrind (make valgrind), which slows only the test's side:
 * suites sweep less there and stretch their time bounds. */
int tu_under_valgrind(void);

/* How much to stretch a time bound stated for a native build: VALGRIND under valgrind, ASAN in
 * the ASan+UBSan build, else 1. */
double tu_slack(double asan, double valgrind);

/* 1 in the ASan+UBSan build, which spawns build/asan/rnnserve and is slower too. */
#if defined(__SANITIZE_ADDRESS__)
#define TU_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TU_UNDER_ASAN 1
#endif
#endif
#ifndef TU_UNDER_ASAN
#define TU_UNDER_ASAN 0
#endif

#endif
