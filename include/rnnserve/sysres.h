/* sysres.h - the system resources this process may really use: cores and memory.
 *
 * The host's numbers narrowed by what applies to this process: its CPU affinity (taskset, a
 * cpuset), a cgroup CPU quota (docker --cpus, a Kubernetes limit), a memory cgroup's limit and
 * its rlimits. A leaf: it reads /proc and /sys and knows nothing of models or servers. */
#ifndef RNNSERVE_SYSRES_H
#define RNNSERVE_SYSRES_H

#include <stddef.h>

/* Cores this process may use, 1..64: what the server's default thread counts start from. */
int sysres_cpus_usable(void);

/* A core's own cache (L2) in bytes, as the C library reports it (sysconf), else 1 MiB: the
 * scheduler's bound on merging passes whose activations would outgrow it. */
size_t sysres_cache_bytes(void);

/* The cgroup CPU quota under ROOT (normally "/sys/fs/cgroup"), rounded up to whole cores, as seen
 * by a process whose /proc/self/cgroup text is SELF_CGROUP (NULL: read it). Reads cgroup v2's
 * cpu.max, else v1's cpu.cfs_quota_us and cpu.cfs_period_us. Returns 0 when there is no quota or
 * nothing could be read. */
int sysres_cgroup_cpu_quota(const char *root, const char *self_cgroup);

/* Bytes this process can still allocate and touch without the kernel killing it: the least of
 * what /proc/meminfo says is available (MemAvailable + SwapFree), what its memory cgroup still
 * allows (v2 memory.max, v1 memory.limit_in_bytes, less current usage), and RLIMIT_AS and
 * RLIMIT_DATA less what is already mapped. SIZE_MAX when nothing can be read. This matters
 * because with overcommit calloc() succeeds far beyond all of these: the pages are only touched
 * when they are written, and then the answer is the OOM killer, not an error. WHY[whylen]
 * receives the binding limit's name ("MemAvailable + SwapFree", "RLIMIT_AS", ...). */
size_t sysres_memory_budget(char *why, size_t whylen);

/* The heap's policy for a process whose requests allocate and free megabytes each. By default
 * glibc hands a freed block of over ~128 KB (the threshold grows to 32 MB) back to the kernel,
 * and trims a heap's free top, so the next request pays page faults and zeroing for the same
 * memory again (about a tenth of the CPU of binary /v2 requests). sysres_heap_keep keeps freed
 * memory for reuse (blocks up to 32 MB from the heap, no trimming on free); sysres_heap_release
 * returns what is free to the system, for when the process goes quiet. Both do nothing where
 * the C library is not glibc. */
void sysres_heap_keep(void);
void sysres_heap_release(void);

#endif
