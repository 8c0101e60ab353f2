/* tinymalloc: a drop-in malloc. The standard API (malloc, free, calloc, realloc, reallocarray,
 * posix_memalign, aligned_alloc, memalign, valloc, pvalloc, malloc_usable_size) is exported
 * under its usual names; this header adds tinymalloc's own statistics calls. */
#ifndef TINYMALLOC_H
#define TINYMALLOC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Process-wide counters. Counts of the calling thread are exact; those of other running
 * threads are as of their last slow-path visit. */
struct tinymalloc_stats {
    uint64_t allocs;        /* every successful allocation, all tiers */
    uint64_t frees;         /* every free of a non-NULL pointer */
    uint64_t slab_allocs, slab_frees;
    uint64_t huge_allocs, huge_frees;
    uint64_t live_bytes;    /* slab blocks and huge mappings in use */
    uint64_t os_mmap, os_munmap, os_madvise, os_mremap; /* system calls made */
    uint64_t mapped_bytes, mapped_peak;
};

/* Fills *s (size: sizeof *s, for forward compatibility). Returns 0, or -1 if size is wrong. */
int tinymalloc_stats_get(struct tinymalloc_stats *s, size_t size);

/* Writes the statistics to fd: a human table, or JSON when json is non-zero. */
void tinymalloc_stats_print(int fd, int json);

#ifdef __cplusplus
}
#endif
#endif
