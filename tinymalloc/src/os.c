/* The OS layer: the only file that maps, unmaps, purges or remaps memory. Every call is counted
 * so the statistics (and the bench) can show how often tinymalloc asks the kernel. */
#include "tm_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

tm_os_stats_t tm_os_stats;

static void tm_os_count_mapped(int64_t delta) {
    tm_gauge_add(&tm_os_stats.mapped_bytes, &tm_os_stats.mapped_peak, delta);
}

/* Anonymous and MAP_NORESERVE, read-write or (prot 0) inaccessible: the kernel commits a page
 * on its first touch, so a large reservation costs address space, not memory. Under
 * vm.overcommit_memory=2 the kernel ignores MAP_NORESERVE and charges a writable private
 * mapping in full at once; an inaccessible one it charges only when tm_os_commit makes it
 * writable. errno is left as the caller had it, except that a failure leaves ENOMEM for
 * malloc to report. */
static void *map(size_t size, int prot) {
    int saved = errno;
    atomic_fetch_add_explicit(&tm_os_stats.mmap_calls, 1, memory_order_relaxed);
    void *p = mmap(NULL, size, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        atomic_fetch_add_explicit(&tm_os_stats.mmap_failures, 1, memory_order_relaxed);
        errno = ENOMEM;
        return NULL;
    }
    errno = saved;
    tm_os_count_mapped((int64_t)size);
    return p;
}

void *tm_os_map(size_t size) { return map(size, PROT_READ | PROT_WRITE); }

void tm_os_unmap(void *p, size_t size) {
    int saved = errno;
    atomic_fetch_add_explicit(&tm_os_stats.munmap_calls, 1, memory_order_relaxed);
    if (munmap(p, size) == 0) tm_os_count_mapped(-(int64_t)size);
    errno = saved;
}

/* Maps size bytes at an address aligned to align: first plainly (the kernel often hands out
 * aligned ranges when asked for aligned sizes), else over-map and trim the ends. */
static void *map_aligned(size_t size, size_t align, int prot) {
    void *p = map(size, prot);
    if (p == NULL) return NULL;
    if (((uintptr_t)p & (align - 1)) == 0) return p;
    tm_os_unmap(p, size);
    if (size + align < size) return NULL;
    char *raw = map(size + align, prot);
    if (raw == NULL) return NULL;
    uintptr_t start = tm_align_up((uintptr_t)raw, align);
    size_t head = start - (uintptr_t)raw;
    size_t tail = align - head;
    if (head) tm_os_unmap(raw, head);
    if (tail) tm_os_unmap((char *)start + size, tail);
    return (void *)start;
}

void *tm_os_map_aligned(size_t size, size_t align) {
    return map_aligned(size, align, PROT_READ | PROT_WRITE);
}

void *tm_os_reserve_aligned(size_t size, size_t align) { return map_aligned(size, align, 0); }

/* Makes a reserved range usable; false (ENOMEM) when the commit limit refuses it. */
bool tm_os_commit(void *p, size_t size) {
    int saved = errno;
    if (mprotect(p, size, PROT_READ | PROT_WRITE) != 0) {
        errno = ENOMEM;
        return false;
    }
    errno = saved;
    return true;
}

/* Replaces [p, p + size) (page aligned, all zero) with pages that read zero and cannot be
 * written, so that nothing in it is charged against the commit limit until tm_os_commit. A
 * MAP_FIXED mapping that fails may have unmapped the range already: it is mapped read-write
 * again then, and the caller keeps to it. */
bool tm_os_read_only_zero(void *p, size_t size) {
    int saved = errno;
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE;
    bool ok = mmap(p, size, PROT_READ, flags, -1, 0) == p;
    if (!ok) mmap(p, size, PROT_READ | PROT_WRITE, flags, -1, 0);
    errno = saved;
    return ok;
}

/* vm.overcommit_memory is 2: the kernel charges writable private memory when it is mapped. */
bool tm_os_overcommit_strict(void) {
    int saved = errno;
    char c = 0;
    int fd = open("/proc/sys/vm/overcommit_memory", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &c, 1) != 1) c = 0;
        close(fd);
    }
    errno = saved;
    return c == '2';
}

/* MADV_DONTNEED drops the pages at once, and the next touch of each faults in a zeroed one.
 * MADV_FREE (purge_lazy) leaves them mapped until the kernel is short of memory, so a block
 * reused soon costs no faults, but until then they keep their contents: only the tiers' own
 * purges, which never count on zeroed pages, may be lazy. Where the kernel lacks MADV_FREE
 * (before 4.5), DONTNEED does. Neither drops locked pages (mlock, mlockall): DONTNEED fails
 * with EINVAL and the range keeps its contents. True: the range reads zero now (DONTNEED
 * worked); false: it may not. */
static bool purge(void *p, size_t size, bool lazy) {
    int saved = errno;
    atomic_fetch_add_explicit(&tm_os_stats.madvise_calls, 1, memory_order_relaxed);
    int r = lazy ? madvise(p, size, MADV_FREE) : -1;
    bool zero = false;
    if (r != 0) zero = (r = madvise(p, size, MADV_DONTNEED)) == 0;
    if (r == 0) atomic_fetch_add_explicit(&tm_os_stats.purged_bytes, size, memory_order_relaxed);
    errno = saved;
    return zero;
}

bool tm_os_purge(void *p, size_t size) { return purge(p, size, tm_opt.purge_lazy); }

bool tm_os_purge_zero(void *p, size_t size) { return purge(p, size, false); }

void tm_os_populate(void *p, size_t size) {
    int saved = errno;
    atomic_fetch_add_explicit(&tm_os_stats.madvise_calls, 1, memory_order_relaxed);
    if (madvise(p, size, MADV_POPULATE_WRITE) != 0) {
        /* Older kernels: touch each page instead. */
        for (size_t off = 0; off < size; off += TM_OS_PAGE) ((volatile char *)p)[off] = 0;
    }
    errno = saved;
}

/* Resizes a mapping. With fixed, moves it onto that address, where the caller reserved exactly
 * new_size bytes; without, only in place. Returns the new address or NULL, the old mapping intact
 * on failure. */
void *tm_os_remap(void *p, size_t old_size, size_t new_size, void *fixed) {
    int saved = errno;
    atomic_fetch_add_explicit(&tm_os_stats.mremap_calls, 1, memory_order_relaxed);
    void *q = fixed ? mremap(p, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, fixed)
                    : mremap(p, old_size, new_size, 0);
    errno = saved;
    if (q == MAP_FAILED) return NULL;
    /* A move replaces a reservation of new_size that was already counted. */
    tm_os_count_mapped(fixed ? -(int64_t)old_size : (int64_t)new_size - (int64_t)old_size);
    return q;
}

/* ---- time and CPU, for the arena and heap tiers ------------------------------------------ */
#include <sched.h>
#include <time.h>

__thread uint64_t tm_lazy_ms __attribute__((tls_model("initial-exec")));
__thread uint32_t tm_lazy_calls __attribute__((tls_model("initial-exec")));

uint64_t tm_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* glibc answers from the vDSO, without a system call, when no rseq area is registered. */
unsigned tm_cpu_index_slow(void) {
    int c = sched_getcpu();
    return c < 0 ? 0 : (unsigned)c;
}

unsigned tm_ncpus(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    /* The CPUs this process may run on; sched_getcpu's answers are below the highest one. */
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
    unsigned hi = 0;
    for (unsigned i = 0; i < CPU_SETSIZE; i++)
        if (CPU_ISSET(i, &set)) hi = i + 1;
    return hi ? hi : 1;
}

/* ---- a memory barrier on every thread of the process ------------------------------------- */
#include <linux/membarrier.h>
#include <sys/syscall.h>

/* membarrier's private expedited command: the kernel makes every running thread of the
 * process execute a full barrier (an interrupt) and counts a switch as one for the others.
 * The process registers once; a forked child inherits the registration with the address
 * space. TSan cannot see the order it gives, so under TSan it is not used. */
bool tm_os_barrier_init(void) {
#if defined(__SANITIZE_THREAD__)
    return false;
#else
    int saved = errno;
    long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    bool ok = cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
              syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
    errno = saved;
    return ok;
#endif
}

void tm_os_barrier(void) {
    int saved = errno;
    if (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0 &&
        (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) != 0 ||
         syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0))
        tm_fatal("membarrier", "failed after it registered", NULL);
    errno = saved;
}
