/* cpus.h - how many cores this process may really use: the online CPUs, narrowed by its CPU
 * affinity (taskset, a cpuset) and by a cgroup CPU quota (docker --cpus, a Kubernetes limit). */
#ifndef RNNSERVE_CPUS_H
#define RNNSERVE_CPUS_H

/* Cores this process may use, 1..64: what the server's default thread counts start from. */
int cpus_usable(void);

/* The cgroup CPU quota under ROOT (normally "/sys/fs/cgroup"), rounded up to whole cores, as seen
 * by a process whose /proc/self/cgroup text is SELF_CGROUP (NULL: read it). Reads cgroup v2's
 * cpu.max, else v1's cpu.cfs_quota_us and cpu.cfs_period_us. Returns 0 when there is no quota or
 * nothing could be read. */
int cpus_cgroup_quota(const char *root, const char *self_cgroup);

#endif
