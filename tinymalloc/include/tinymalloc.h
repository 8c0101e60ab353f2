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
    uint64_t allocs; /* every successful allocation, all tiers */
    uint64_t frees;  /* every free of a non-NULL pointer */
    uint64_t slab_allocs, slab_frees;
    uint64_t heap_allocs, heap_frees;                   /* the heap tier: large_* plus mapped_* */
    uint64_t live_bytes;                                /* blocks of every tier in use */
    uint64_t os_mmap, os_munmap, os_madvise, os_mremap; /* system calls made */
    uint64_t mapped_bytes, mapped_peak;
    /* Added with the arena and heap tiers (callers built before pass the older size). */
    uint64_t arena_allocs, arena_frees;   /* medium blocks */
    uint64_t large_allocs, large_frees;   /* heap blocks (counted in heap_* too) */
    uint64_t mapped_allocs, mapped_frees; /* huge blocks with their own mapping */
    uint64_t arenas;                      /* arenas (one per CPU) */
    /* Added with the bounded medium cache. */
    uint64_t medium_cached; /* bytes of freed medium blocks in all threads' caches */
    /* Added with the slab tier's transfer cache. */
    uint64_t slab_transferred; /* bytes of freed small blocks waiting there for any thread */
    /* Added with the dirty chunks. */
    uint64_t dirty_chunk_bytes; /* freed huge blocks' pages kept for slabs and arenas */
};

/* Fills *s (size: sizeof *s, or for callers built against an older header the size before the
 * arena fields, before medium_cached, before slab_transferred or before dirty_chunk_bytes).
 * Returns 0, or -1 if size is wrong. */
int tinymalloc_stats_get(struct tinymalloc_stats *s, size_t size);

/* The heap tier's figures, summed over its heaps (one per CPU). Invariants, at any quiet
 * moment: size == the sizes of all walked blocks + 128 bytes per span; peak_size >= size;
 * peak_in_use >= in_use. */
struct tinymalloc_heap_stats {
    uint64_t heaps;               /* heaps (each with its own lock) */
    uint64_t max_size;            /* heap_max from TINYMALLOC_CONF; 0: no limit */
    uint64_t size, peak_size;     /* bytes of heap spans, now and at most */
    uint64_t in_use, peak_in_use; /* bytes of blocks in use, now and at most */
    uint64_t blocks, free_blocks; /* blocks in the walkable list, and of those free */
    uint64_t consecutive_misses;  /* current run of misses (largest over the heaps) */
    uint64_t misses, hits, grows; /* requests no free block fitted, requests one did, growths */
    uint64_t purged_bytes, unmapped_bytes; /* given back to the OS (madvise), spans returned */
    uint64_t ahead;                        /* bytes the next growth may add beyond the request */
    uint64_t allocs, frees;                /* heap blocks */
    uint64_t huge_threshold;               /* adaptive: freed blocks this large go back at once */
};
int tinymalloc_heap_stats_get(struct tinymalloc_heap_stats *s, size_t size);

/* Walks every block of the heap tier: fn(user pointer, block bytes including its 64-byte
 * header, in use?, arg), called under the heap's lock, so fn must not allocate or free.
 * Returns the number of blocks. */
size_t tinymalloc_heap_walk(void (*fn)(void *p, size_t size, int used, void *arg), void *arg);

/* Allocations each arena has served: fills counts[0..n-1], returns the number of arenas. */
unsigned tinymalloc_arena_allocs(uint64_t *counts, unsigned n);

/* Writes the statistics to fd: a human table, or JSON when json is non-zero. */
void tinymalloc_stats_print(int fd, int json);

#ifdef __cplusplus
}
#endif
#endif
