/* test_fuzz.c - replays every seed and regression input of the fuzz targets (tests/fuzz/) through
 * their entry functions, without libFuzzer: `make test` runs it plain and under ASan+UBSan, and
 * `make valgrind` under memcheck, so a crash once found stays fixed.
 *
 * tests/fuzz/corpus/<target>/ holds the seeds (real requests, configs and weight files);
 * tests/fuzz/regress/<target>/ holds the inputs that once crashed or failed a check. The targets'
 * own checks abort on a violation, which Check reports as a failed test naming the target. */
#define FUZZ_NO_MAIN
#include "fuzz/fuzz_codec.c"
#include "fuzz/fuzz_config.c"
#include "fuzz/fuzz_deflate.c"
#include "fuzz/fuzz_http.c"
#include "fuzz/fuzz_inflate.c"
#include "fuzz/fuzz_safetensors.c"

#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include "testutil.h"

/* Feeds every regular file under DIR to ONE; returns how many there were. The name being fed is
 * printed first when RNNSERVE_FUZZ_VERBOSE is set, to find which input aborts. */
static size_t replay_dir(const char *dir, int (*one)(const uint8_t *, size_t))
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t len;
        char *data = tu_read_file(path, &len);
        ck_assert_msg(data != NULL, "cannot read %s", path);
        if (getenv("RNNSERVE_FUZZ_VERBOSE"))
            fprintf(fz_report ? fz_report : stderr, "replay %s\n", path);
        one((const uint8_t *)data, len);
        free(data);
        n++;
    }
    closedir(d);
    return n;
}

/* Replays both directories of TARGET and insists that the seed corpus is not empty (a missing
 * corpus would make this test pass without testing anything). */
static void replay(const char *target, int (*one)(const uint8_t *, size_t), size_t min_seeds)
{
    char dir[256];
    snprintf(dir, sizeof dir, "tests/fuzz/corpus/%s", target);
    size_t seeds = replay_dir(dir, one);
    ck_assert_msg(seeds >= min_seeds, "%s: %zu seed inputs, expected at least %zu", dir, seeds,
                  min_seeds);
    snprintf(dir, sizeof dir, "tests/fuzz/regress/%s", target);
    replay_dir(dir, one);
}

START_TEST(test_codec_seeds_and_regressions_replay_cleanly)
{
    replay("codec", fz_codec_one, 20);
}
END_TEST

START_TEST(test_config_seeds_and_regressions_replay_cleanly)
{
    replay("config", fz_config_one, 20);
}
END_TEST

START_TEST(test_deflate_seeds_and_regressions_replay_cleanly)
{
    replay("deflate", fz_deflate_one, 6);
}
END_TEST

START_TEST(test_inflate_seeds_and_regressions_replay_cleanly)
{
    replay("inflate", fz_inflate_one, 10);
}
END_TEST

START_TEST(test_safetensors_seeds_and_regressions_replay_cleanly)
{
    replay("safetensors", fz_safetensors_one, 20);
}
END_TEST

/* The server's access log would bury Check's output: stderr goes to /dev/null meanwhile, and the
 * targets' own reports to the real stderr. */
START_TEST(test_http_seeds_and_regressions_replay_cleanly)
{
    fflush(stderr);
    int saved = dup(2), null = open("/dev/null", O_WRONLY);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_ge(null, 0);
    fz_report = fdopen(dup(saved), "w");
    ck_assert_ptr_nonnull(fz_report);
    dup2(null, 2);
    close(null);
    replay("http", fz_http_one, 20);
    /* And the server still answers after all of it. */
    fz_http_health();
    fz_http_stop();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fclose(fz_report);
    fz_report = NULL;
}
END_TEST

static Suite *fuzz_suite(void)
{
    Suite *s = suite_create("fuzz");
    TCase *tc = tcase_create("replay");
    /* Generous: under valgrind every input costs tens of milliseconds. */
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_codec_seeds_and_regressions_replay_cleanly);
    tcase_add_test(tc, test_config_seeds_and_regressions_replay_cleanly);
    tcase_add_test(tc, test_safetensors_seeds_and_regressions_replay_cleanly);
    tcase_add_test(tc, test_inflate_seeds_and_regressions_replay_cleanly);
    tcase_add_test(tc, test_deflate_seeds_and_regressions_replay_cleanly);
    tcase_add_test(tc, test_http_seeds_and_regressions_replay_cleanly);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(fuzz_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
