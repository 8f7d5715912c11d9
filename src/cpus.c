/* cpus.c - the number of cores rnnserve may use (see cpus.h).
 *
 * A container sees every core of its host in sysconf(), but docker --cpus=1 or a Kubernetes CPU
 * limit lets it run only that much each period: one thread per visible core would then queue
 * behind the quota (and a forward pass split across threads waits for the slowest). */
#include "rnnserve/cpus.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reads a small file into BUF (NUL-terminated); -1 when it cannot. */
static int read_small(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n ? 0 : -1;
}

/* Whole cores for QUOTA microseconds per PERIOD; 0 for no quota. */
static int cores_for(long long quota, long long period)
{
    if (quota <= 0 || period <= 0)
        return 0;
    long long n = (quota + period - 1) / period;
    return n > 64 ? 64 : (int)n;
}

/* The cgroup path of controller CTRL ("" for v2's unified line "0::") in /proc/self/cgroup's
 * text, copied into OUT; -1 when absent. */
static int cgroup_path(const char *text, const char *ctrl, char *out, size_t cap)
{
    for (const char *line = text; line && *line;) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        const char *c1 = memchr(line, ':', len);
        const char *c2 = c1 ? memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - line)) : NULL;
        if (c1 && c2) {
            size_t cl = (size_t)(c2 - c1 - 1);
            int match = 0;
            if (!*ctrl) {
                match = cl == 0 && c1 - line == 1 && line[0] == '0';
            } else { /* "cpu,cpuacct": one of the comma-separated names */
                for (const char *p = c1 + 1; p < c2;) {
                    const char *q = memchr(p, ',', (size_t)(c2 - p));
                    size_t n = q ? (size_t)(q - p) : (size_t)(c2 - p);
                    if (n == strlen(ctrl) && memcmp(p, ctrl, n) == 0)
                        match = 1;
                    p = q ? q + 1 : c2;
                }
            }
            size_t pl = len - (size_t)(c2 + 1 - line);
            if (match && pl < cap) {
                memcpy(out, c2 + 1, pl);
                out[pl] = '\0';
                return 0;
            }
        }
        line = eol ? eol + 1 : NULL;
    }
    return -1;
}

int cpus_cgroup_quota(const char *root, const char *self_cgroup)
{
    char self[4096], sub[1024], path[1536], buf[128];
    if (!self_cgroup) {
        if (read_small("/proc/self/cgroup", self, sizeof self) < 0)
            self[0] = '\0';
        self_cgroup = self;
    }
    /* Inside a container with its own cgroup namespace the path is "/", and the files sit at
     * the root; on a host, under the process's own cgroup. Both are tried. */
    const char *v2dirs[2] = {NULL, ""};
    if (cgroup_path(self_cgroup, "", sub, sizeof sub) == 0 && strcmp(sub, "/") != 0)
        v2dirs[0] = sub;
    for (int i = 0; i < 2; i++) {
        if (!v2dirs[i])
            continue;
        snprintf(path, sizeof path, "%s%s/cpu.max", root, v2dirs[i]);
        if (read_small(path, buf, sizeof buf) == 0) {
            long long quota = 0, period = 0;
            if (strncmp(buf, "max", 3) == 0)
                return 0;
            if (sscanf(buf, "%lld %lld", &quota, &period) == 2)
                return cores_for(quota, period);
        }
    }
    const char *v1dirs[3] = {NULL, "/cpu", "/cpu,cpuacct"};
    char v1sub[1024 + 8];
    if (cgroup_path(self_cgroup, "cpu", sub, sizeof sub) == 0 && strcmp(sub, "/") != 0) {
        snprintf(v1sub, sizeof v1sub, "/cpu%s", sub);
        v1dirs[0] = v1sub;
    }
    for (int i = 0; i < 3; i++) {
        if (!v1dirs[i])
            continue;
        char qb[64], pb[64];
        snprintf(path, sizeof path, "%s%s/cpu.cfs_quota_us", root, v1dirs[i]);
        if (read_small(path, qb, sizeof qb) < 0)
            continue;
        snprintf(path, sizeof path, "%s%s/cpu.cfs_period_us", root, v1dirs[i]);
        if (read_small(path, pb, sizeof pb) < 0)
            continue;
        return cores_for(atoll(qb), atoll(pb));
    }
    return 0;
}

int cpus_usable(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0 && CPU_COUNT(&set) < n)
        n = CPU_COUNT(&set);
    int quota = cpus_cgroup_quota("/sys/fs/cgroup", NULL);
    if (quota > 0 && quota < n)
        n = quota;
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}
