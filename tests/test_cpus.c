/* test_cpus.c - the core count: cgroup v1 and v2 quotas read from fake /sys/fs/cgroup trees. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rnnserve/cpus.h"
#include "testutil.h"

static char root[256];

static void setup(void)
{
    snprintf(root, sizeof root, "%s/rnnserve-cpus-XXXXXX",
             getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(root));
}

static void teardown(void)
{
    char cmd[320];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    ck_assert_int_eq(system(cmd), 0);
}

/* Writes TEXT to ROOT/REL, making the directories on the way. */
static void put(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    for (char *p = path + strlen(root) + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        mkdir(path, 0755);
        *p = '/';
    }
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

START_TEST(test_v2_quota_in_a_container_rounds_up_to_whole_cores)
{
    put("cpu.max", "150000 100000\n"); /* docker --cpus=1.5 */
    ck_assert_int_eq(cpus_cgroup_quota(root, "0::/\n"), 2);
    put("cpu.max", "100000 100000\n");
    ck_assert_int_eq(cpus_cgroup_quota(root, "0::/\n"), 1);
    put("cpu.max", "50000 100000\n"); /* a Kubernetes limit of 500m */
    ck_assert_int_eq(cpus_cgroup_quota(root, "0::/\n"), 1);
}
END_TEST

START_TEST(test_v2_no_quota_is_zero)
{
    put("cpu.max", "max 100000\n");
    ck_assert_int_eq(cpus_cgroup_quota(root, "0::/\n"), 0);
}
END_TEST

START_TEST(test_v2_quota_of_the_process_own_cgroup_on_a_host)
{
    put("cpu.max", "max 100000\n");
    put("system.slice/rnnserve.service/cpu.max", "300000 100000\n");
    ck_assert_int_eq(cpus_cgroup_quota(root, "0::/system.slice/rnnserve.service\n"), 3);
}
END_TEST

START_TEST(test_v1_quota_under_cpu_or_cpu_cpuacct)
{
    put("cpu/cpu.cfs_quota_us", "200000\n");
    put("cpu/cpu.cfs_period_us", "100000\n");
    const char *self = "12:pids:/\n4:cpu,cpuacct:/\n1:name=systemd:/\n";
    ck_assert_int_eq(cpus_cgroup_quota(root, self), 2);
    put("cpu/cpu.cfs_quota_us", "-1\n"); /* no limit */
    ck_assert_int_eq(cpus_cgroup_quota(root, self), 0);
}
END_TEST

START_TEST(test_v1_quota_of_a_nested_cgroup)
{
    put("cpu/docker/abc/cpu.cfs_quota_us", "100000\n");
    put("cpu/docker/abc/cpu.cfs_period_us", "100000\n");
    ck_assert_int_eq(cpus_cgroup_quota(root, "3:cpuacct,cpu:/docker/abc\n"), 1);
}
END_TEST

START_TEST(test_nothing_readable_is_no_quota)
{
    ck_assert_int_eq(cpus_cgroup_quota(root, ""), 0);
    put("cpu.max", "garbage\n");
    ck_assert_int_eq(cpus_cgroup_quota(root, "0::/\n"), 0);
}
END_TEST

START_TEST(test_usable_is_between_one_and_the_online_count)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int n = cpus_usable();
    ck_assert_int_ge(n, 1);
    ck_assert_int_le(n, online > 64 ? 64 : online);
}
END_TEST

static Suite *cpus_suite(void)
{
    Suite *s = suite_create("cpus");
    TCase *tc = tcase_create("cgroup");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_v2_quota_in_a_container_rounds_up_to_whole_cores);
    tcase_add_test(tc, test_v2_no_quota_is_zero);
    tcase_add_test(tc, test_v2_quota_of_the_process_own_cgroup_on_a_host);
    tcase_add_test(tc, test_v1_quota_under_cpu_or_cpu_cpuacct);
    tcase_add_test(tc, test_v1_quota_of_a_nested_cgroup);
    tcase_add_test(tc, test_nothing_readable_is_no_quota);
    tcase_add_test(tc, test_usable_is_between_one_and_the_online_count);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cpus_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
