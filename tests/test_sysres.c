/* test_sysres.c - the core count (cgroup v1 and v2 quotas read from fake /sys/fs/cgroup trees)
 * and the memory budget (an rlimit lowered in the test's own process). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rnnserve/sysres.h"
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
    ck_assert_int_eq(sysres_cgroup_cpu_quota(root, "0::/\n"), 2);
    put("cpu.max", "100000 100000\n");
    ck_assert_int_eq(sysres_cgroup_cpu_quota(root, "0::/\n"), 1);
    put("cpu.max", "50000 100000\n"); /* a Kubernetes limit of 500m */
    ck_assert_int_eq(sysres_cgroup_cpu_quota(root, "0::/\n"), 1);
}
END_TEST

START_TEST(test_v2_no_quota_is_zero)
{
    put("cpu.max", "max 100000\n");
    ck_assert_int_eq(sysres_cgroup_cpu_quota(root, "0::/\n"), 0);
}
END_TEST

START_TEST(test_v2_quota_of_the_process_own_cgroup_on_a_host)
{
    put("cpu.max", "max 100000\n");
    put("system.slice/rnnserve.service/cpu.max", "300000 100000\n");
    ck_assert_int_eq(sysres_cgroup_cpu_quota(root, "0::/system.slice/rnnserve.service\n"), 3);
}
END_TEST

START_TEST(test_v1_quota_under_cpu_or_cpu_cpuacct)
{
    put("cpu/cpu.cfs_quota_us", "200000\n");
    put("cpu/cpu.cfs_period_us", "100000\n");
    const char *self = "12:pids:/\n4:cpu,cpuacct:/\n1:name=systemd:/\n";
    ck_assert_int_eq(sysres_cgroup_cpu_quota(root, self), 2);
    put("cpu/cpu.cfs_quota_us", "-1\n"); /* no limit */
    ck_assert_int_eq(sysres_cgroup_cpu_quota(root, self), 0);
}
END_TEST

START_TEST(test_v1_quota_of_a_nested_cgroup)
{
    put("cpu/docker/abc/cpu.cfs_quota_us", "100000\n");
    put("cpu/docker/abc/cpu.cfs_period_us", "100000\n");
    ck_assert_int_eq(sysres_cgroup_cpu_quota(root, "3:cpuacct,cpu:/docker/abc\n"), 1);
}
END_TEST

START_TEST(test_nothing_readable_is_no_quota)
{
    ck_assert_int_eq(sysres_cgroup_cpu_quota(root, ""), 0);
    put("cpu.max", "garbage\n");
    ck_assert_int_eq(sysres_cgroup_cpu_quota(root, "0::/\n"), 0);
}
END_TEST

START_TEST(test_usable_is_between_one_and_the_online_count)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int n = sysres_cpus_usable();
    ck_assert_int_ge(n, 1);
    ck_assert_int_le(n, online > 64 ? 64 : online);
}
END_TEST

/* Check runs each test in a child process, so the lowered limit dies with it. */
START_TEST(test_memory_budget_names_a_lowered_rlimit_data)
{
    char why[64];
    size_t before = sysres_memory_budget(why, sizeof why);
    ck_assert_uint_gt(before, 0);
    ck_assert_str_ne(why, "");
    unsigned long long size = 0, data = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fscanf(f, "%llu %*u %*u %*u %*u %llu", &size, &data), 2);
    fclose(f);
    const unsigned long long page = (unsigned long long)sysconf(_SC_PAGESIZE), room = 64u << 20;
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_DATA, &rl), 0);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < data * page + room)
        return; /* cannot raise it that far: nothing to compare */
    rl.rlim_cur = data * page + room;
    ck_assert_int_eq(setrlimit(RLIMIT_DATA, &rl), 0);
    size_t after = sysres_memory_budget(why, sizeof why);
    ck_assert_uint_le(after, room);
    if (before > room) /* the host has more than the room left: the rlimit binds */
        ck_assert_str_eq(why, "RLIMIT_DATA");
}
END_TEST

static Suite *sysres_suite(void)
{
    Suite *s = suite_create("sysres");
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
    TCase *mem = tcase_create("memory");
    tcase_add_test(mem, test_memory_budget_names_a_lowered_rlimit_data);
    suite_add_tcase(s, mem);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sysres_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
