/* test_file.c - file_read_all on every kind of path: a FIFO and /dev/zero fail at once, a
 * directory, a missing file and an over-cap file are named, empty and /proc files read. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rnnserve/file.h"
#include "testutil.h"

static char dir[256];

static void setup(void)
{
    snprintf(dir, sizeof dir, "%s/rnnserve-file-XXXXXX",
             getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[320];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* DIR/NAME into path[cap]. */
static const char *in_dir(char *path, size_t cap, const char *name)
{
    snprintf(path, cap, "%s/%s", dir, name);
    return path;
}

static void put(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

/* Expects file_read_all(PATH, CAP) to fail with a message that starts with PATH and holds WANT. */
static void expect_refused(const char *path, size_t cap, const char *want)
{
    char err[512], *out = (char *)&err;
    size_t len = 7;
    ck_assert_int_eq(file_read_all(path, cap, &out, &len, err, sizeof err), -1);
    ck_assert_ptr_null(out);
    ck_assert_uint_eq(len, 0);
    ck_assert_msg(strncmp(err, path, strlen(path)) == 0, "does not name %s: %s", path, err);
    ck_assert_msg(strstr(err, want) != NULL, "wanted \"%s\" in: %s", want, err);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

START_TEST(test_a_regular_file_reads_whole_and_nul_terminated)
{
    char path[320], err[256], *out = NULL;
    size_t len = 0;
    put(in_dir(path, sizeof path, "a.txt"), "ab\0cd", 5);
    ck_assert_int_eq(file_read_all(path, 5, &out, &len, err, sizeof err), 0);
    ck_assert_uint_eq(len, 5);
    ck_assert_int_eq(memcmp(out, "ab\0cd", 6), 0); /* the NUL after the data included */
    free(out);
}
END_TEST

START_TEST(test_an_empty_file_is_an_empty_string)
{
    char path[320], err[256], *out = NULL;
    size_t len = 9;
    put(in_dir(path, sizeof path, "empty"), "", 0);
    ck_assert_int_eq(file_read_all(path, 16, &out, &len, err, sizeof err), 0);
    ck_assert_uint_eq(len, 0);
    ck_assert_str_eq(out, "");
    free(out);
}
END_TEST

START_TEST(test_a_fifo_is_refused_at_once)
{
    char path[320];
    ck_assert_int_eq(mkfifo(in_dir(path, sizeof path, "fifo"), 0600), 0);
    double t0 = now_s();
    expect_refused(path, 1024, "not a regular file (a FIFO)");
    ck_assert_double_lt(now_s() - t0, 1.0); /* no writer ever comes: it must not wait */
}
END_TEST

START_TEST(test_dev_zero_is_refused_at_once)
{
    expect_refused("/dev/zero", FILE_CAP_CONFIG, "not a regular file (a character device)");
}
END_TEST

START_TEST(test_a_directory_is_refused)
{
    expect_refused(dir, 1024, "not a regular file (a directory)");
}
END_TEST

START_TEST(test_a_missing_file_names_the_error)
{
    char path[320];
    expect_refused(in_dir(path, sizeof path, "nope"), 1024, strerror(ENOENT));
}
END_TEST

START_TEST(test_a_file_over_the_cap_names_both_sizes)
{
    char path[320];
    put(in_dir(path, sizeof path, "big"), "0123456789", 10);
    expect_refused(path, 9, "10 bytes, more than the 9 allowed");
    char err[256], *out = NULL;
    size_t len = 0;
    ck_assert_int_eq(file_read_all(path, 10, &out, &len, err, sizeof err), 0); /* at the cap */
    ck_assert_uint_eq(len, 10);
    free(out);
}
END_TEST

START_TEST(test_a_proc_file_with_st_size_zero_reads)
{
    char err[256], *out = NULL;
    size_t len = 0;
    struct stat st;
    ck_assert_int_eq(stat("/proc/self/status", &st), 0);
    ck_assert_int_eq(st.st_size, 0); /* the case this is about */
    ck_assert_msg(file_read_all("/proc/self/status", FILE_CAP_SYS, &out, &len, err, sizeof err) ==
                      0,
                  "%s", err);
    ck_assert_uint_gt(len, 0);
    ck_assert_ptr_nonnull(strstr(out, "Name:"));
    free(out);
    /* and the cap holds even without a size to check up front */
    expect_refused("/proc/self/status", 8, "more than the 8 bytes allowed");
}
END_TEST

static Suite *file_suite(void)
{
    Suite *s = suite_create("file");
    TCase *tc = tcase_create("read_all");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_a_regular_file_reads_whole_and_nul_terminated);
    tcase_add_test(tc, test_an_empty_file_is_an_empty_string);
    tcase_add_test(tc, test_a_fifo_is_refused_at_once);
    tcase_add_test(tc, test_dev_zero_is_refused_at_once);
    tcase_add_test(tc, test_a_directory_is_refused);
    tcase_add_test(tc, test_a_missing_file_names_the_error);
    tcase_add_test(tc, test_a_file_over_the_cap_names_both_sizes);
    tcase_add_test(tc, test_a_proc_file_with_st_size_zero_reads);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(file_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
