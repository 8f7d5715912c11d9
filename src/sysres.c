/* sysres.c - the cores and the memory rnnserve may use (see sysres.h).
 *
 * A container sees every core and every byte of its host in sysconf() and /proc/meminfo, but
 * docker --cpus=1 or --memory=1g lets it use only that much: one thread per visible core would
 * then queue behind the quota, and weights sized to the host's memory would meet the OOM killer. */
#include "rnnserve/sysres.h"

#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "rnnserve/file.h"

/* The text of the /proc or cgroup file PATH (a new string the caller frees), or NULL when it
 * cannot be read: a missing file means "no such limit" here, never an error. */
static char *read_text(const char *path)
{
    char *text = NULL, err[256];
    size_t len;
    return file_read_all(path, FILE_CAP_SYS, &text, &len, err, sizeof err) == 0 ? text : NULL;
}

/* Reads a small file into BUF (NUL-terminated, cut at CAP - 1 bytes); -1 when it cannot or it
 * is empty. */
static int read_small(const char *path, char *buf, size_t cap)
{
    char *text = read_text(path);
    if (!text)
        return -1;
    snprintf(buf, cap, "%s", text);
    free(text);
    return buf[0] ? 0 : -1;
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

int sysres_cgroup_cpu_quota(const char *root, const char *self_cgroup)
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

size_t sysres_cache_bytes(void)
{
#ifdef _SC_LEVEL2_CACHE_SIZE
    long n = sysconf(_SC_LEVEL2_CACHE_SIZE);
    if (n >= 65536)
        return (size_t)n;
#endif
    return (size_t)1 << 20;
}

int sysres_cpus_usable(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0 && CPU_COUNT(&set) < n)
        n = CPU_COUNT(&set);
    int quota = sysres_cgroup_cpu_quota("/sys/fs/cgroup", NULL);
    if (quota > 0 && quota < n)
        n = quota;
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

/* ---------------------------------------------------------------------------------------------
 * Memory */

/* The number at the start of PATH (a cgroup file), or ULLONG_MAX when it cannot be read or
 * says "max". */
static unsigned long long read_ull(const char *path)
{
    char *text = read_text(path);
    unsigned long long v = ULLONG_MAX;
    if (text && sscanf(text, "%llu", &v) != 1)
        v = ULLONG_MAX;
    free(text);
    return v;
}

/* Keeps the smaller of *budget and AVAIL, naming WHAT as the limit. */
static void lower(size_t *budget, unsigned long long avail, const char *what, char *why,
                  size_t whylen)
{
    if (avail < *budget) {
        *budget = avail > SIZE_MAX ? SIZE_MAX : (size_t)avail;
        snprintf(why, whylen, "%s", what);
    }
}

/* The next line of *AT (advanced past it) copied into LINE[cap], cut if longer; 0 at the end. */
static int next_line(const char **at, char *line, size_t cap)
{
    if (!*at || !**at)
        return 0;
    const char *eol = strchr(*at, '\n');
    size_t n = eol ? (size_t)(eol - *at) : strlen(*at);
    snprintf(line, cap, "%.*s", (int)(n < cap ? n : cap - 1), *at);
    *at = eol ? eol + 1 : *at + n;
    return 1;
}

/* MemAvailable + SwapFree from /proc/meminfo, or ULLONG_MAX without it. */
static unsigned long long meminfo_available(void)
{
    unsigned long long avail = ULLONG_MAX, swap = 0, kb;
    char line[512], key[64], *text = read_text("/proc/meminfo");
    for (const char *at = text; next_line(&at, line, sizeof line);)
        if (sscanf(line, "%63[^:]: %llu kB", key, &kb) == 2) {
            if (strcmp(key, "MemAvailable") == 0)
                avail = kb * 1024;
            else if (strcmp(key, "SwapFree") == 0)
                swap = kb * 1024;
        }
    free(text);
    return avail == ULLONG_MAX ? avail : avail + swap;
}

/* Lowers *budget to what the memory cgroup (v2 or v1) named in /proc/self/cgroup still allows.
 * Inside a container's own cgroup namespace the path is "/" and the mount is the container's. */
static void cgroup_memory_left(size_t *budget, char *why, size_t whylen)
{
    char line[512], path[700], *text = read_text("/proc/self/cgroup");
    for (const char *at = text; next_line(&at, line, sizeof line);) {
        char *p = strchr(line, ':'), *q = p ? strchr(p + 1, ':') : NULL;
        if (!q)
            continue;
        unsigned long long max = ULLONG_MAX, used = 0;
        if (strncmp(line, "0::", 3) == 0) {
            snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.max", q + 1);
            max = read_ull(path);
            snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.current", q + 1);
            used = read_ull(path);
        } else if (strncmp(p, ":memory:", 8) == 0) {
            snprintf(path, sizeof path, "/sys/fs/cgroup/memory%s/memory.limit_in_bytes", q + 1);
            max = read_ull(path);
            snprintf(path, sizeof path, "/sys/fs/cgroup/memory%s/memory.usage_in_bytes", q + 1);
            used = read_ull(path);
        }
        if (max != ULLONG_MAX && used != ULLONG_MAX)
            lower(budget, max > used ? max - used : 0, "the memory cgroup's limit", why, whylen);
    }
    free(text);
}

size_t sysres_memory_budget(char *why, size_t whylen)
{
    size_t budget = SIZE_MAX;
    snprintf(why, whylen, "no limit found");
    unsigned long long avail = meminfo_available();
    if (avail != ULLONG_MAX)
        lower(&budget, avail, "MemAvailable + SwapFree", why, whylen);
    cgroup_memory_left(&budget, why, whylen);

    /* statm: total and data+stack pages already mapped. */
    unsigned long long size = 0, data = 0, page = (unsigned long long)sysconf(_SC_PAGESIZE);
    char *statm = read_text("/proc/self/statm");
    if (!statm || sscanf(statm, "%llu %*u %*u %*u %*u %llu", &size, &data) != 2)
        size = data = 0;
    free(statm);
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        lower(&budget, rl.rlim_cur > size * page ? rl.rlim_cur - size * page : 0, "RLIMIT_AS", why,
              whylen);
    if (getrlimit(RLIMIT_DATA, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        lower(&budget, rl.rlim_cur > data * page ? rl.rlim_cur - data * page : 0, "RLIMIT_DATA",
              why, whylen);
    return budget;
}

void sysres_heap_keep(void)
{
#ifdef __GLIBC__
    /* 32 MB is glibc's largest mmap threshold on 64-bit; larger blocks are mapped each time,
     * which at that size costs little next to filling them. */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, INT_MAX);
#endif
}

void sysres_heap_release(void)
{
#ifdef __GLIBC__
    malloc_trim(0); /* every arena, free pages inside the heaps too */
#endif
}
