/* Own mappings, for what the heap does not take: alignments above a chunk, and requests past
 * heap_max or when the heap can get no span. One mapping each, chunk aligned and a whole number of
 * chunks long, so every chunk marked TM_KIND_HUGE is wholly ours. The header sits just below the
 * user pointer and is trusted only when its seal (tm_seal of the user pointer) matches. Growing
 * uses mremap: in place when the neighbouring range is free, else moved to a new reservation
 * without copying. */
#include "tm_internal.h"

#include <errno.h>
#include <string.h>

#define TM_HUGE_HDR 64

typedef struct {
    uintptr_t seal; /* tm_seal of the user pointer: the header is trusted only when it matches */
    uintptr_t base;
    size_t map_size;
    size_t offset; /* user pointer - base */
    size_t size;   /* requested size */
} tm_huge_hdr_t;

tm_huge_stats_t tm_huge_stats;

static tm_huge_hdr_t *hdr_of(const void *p) {
    return (tm_huge_hdr_t *)((uintptr_t)p - TM_HUGE_HDR);
}

static uintptr_t seal_of(const void *p) { return tm_seal(p, TM_KIND_HUGE, 0); }

static void count_bytes(int64_t delta) {
    tm_gauge_add(&tm_huge_stats.cur_bytes, &tm_huge_stats.peak_bytes, delta);
}

void *tm_huge_alloc(size_t n, size_t align) {
    if (align < TM_ALIGN) align = TM_ALIGN;
    size_t offset = align > TM_HUGE_HDR ? align : TM_HUGE_HDR;
    if (n > PTRDIFF_MAX - offset - TM_CHUNK_SIZE) {
        errno = ENOMEM;
        return NULL;
    }
    size_t map_size = tm_align_up(offset + n, TM_CHUNK_SIZE);
    char *base = tm_chunk_map_aligned(map_size, align > TM_CHUNK_SIZE ? align : TM_CHUNK_SIZE);
    if (base == NULL) return NULL;
    char *p = base + offset;
    tm_huge_hdr_t *h = hdr_of(p);
    h->base = (uintptr_t)base;
    h->map_size = map_size;
    h->offset = offset;
    h->size = n;
    h->seal = seal_of(p);
    tm_chunk_mark((uintptr_t)base, map_size, TM_KIND_HUGE);
    atomic_fetch_add_explicit(&tm_huge_stats.nalloc, 1, memory_order_relaxed);
    count_bytes((int64_t)map_size);
    return p;
}

/* The header of a huge pointer, or a fatal error naming func. */
static tm_huge_hdr_t *checked_hdr(const void *p, const char *func) {
    uintptr_t a = (uintptr_t)p;
    if ((a & (TM_ALIGN - 1)) || tm_chunk_kind(a - TM_HUGE_HDR) != TM_KIND_HUGE)
        tm_fatal(func, "invalid pointer", p);
    tm_huge_hdr_t *h = hdr_of(p);
    if (h->seal != seal_of(p)) tm_fatal(func, "invalid pointer", p);
    return h;
}

void tm_huge_free(void *p, const char *func) {
    tm_huge_hdr_t *h = checked_hdr(p, func);
    uintptr_t base = h->base;
    size_t map_size = h->map_size;
    h->seal = 0;
    /* Unmark before unmapping: once unmapped, the range may be mapped again by another thread,
     * which marks it after its own mmap returns. */
    tm_chunk_mark(base, map_size, TM_KIND_NONE);
    tm_os_unmap((void *)base, map_size);
    atomic_fetch_add_explicit(&tm_huge_stats.nfree, 1, memory_order_relaxed);
    count_bytes(-(int64_t)map_size);
}

size_t tm_huge_usable(const void *p, const char *func) {
    tm_huge_hdr_t *h = checked_hdr(p, func);
    return h->map_size - h->offset;
}

/* Resizes a huge block without copying, or returns NULL (block intact) so the caller copies. */
void *tm_huge_realloc(void *p, size_t n) {
    tm_huge_hdr_t *h = checked_hdr(p, "realloc");
    size_t offset = h->offset; /* h moves with the pages */
    if (n > PTRDIFF_MAX - offset - TM_CHUNK_SIZE) return NULL;
    size_t old = h->map_size;
    size_t want = tm_align_up(offset + n, TM_CHUNK_SIZE);
    uintptr_t base = h->base;
    if (want == old) {
        h->size = n;
        return p;
    }
    if (want < old) {
        tm_chunk_mark(base + want, old - want, TM_KIND_NONE);
        tm_os_unmap((void *)(base + want), old - want);
    } else if (tm_chunk_map_commit(base, want) &&
               tm_os_remap((void *)base, old, want, NULL) != NULL) {
        tm_chunk_mark(base, want, TM_KIND_HUGE);
    } else {
        /* Reserve an aligned range and move the pages there. Only huge blocks with the
         * default alignment move; a stricter one would need the new base aligned too. */
        if (offset != TM_HUGE_HDR) return NULL;
        void *dst = tm_chunk_map_aligned(want, TM_CHUNK_SIZE);
        if (dst == NULL) return NULL;
        tm_chunk_mark(base, old, TM_KIND_NONE);
        if (tm_os_remap((void *)base, old, want, dst) == NULL) {
            tm_chunk_mark(base, old, TM_KIND_HUGE);
            tm_os_unmap(dst, want);
            return NULL;
        }
        base = (uintptr_t)dst;
        tm_chunk_mark(base, want, TM_KIND_HUGE);
        p = (char *)dst + offset;
        h = hdr_of(p);
    }
    atomic_fetch_add_explicit(&tm_huge_stats.nremap, 1, memory_order_relaxed);
    count_bytes((int64_t)want - (int64_t)old);
    h->base = base;
    h->map_size = want;
    h->size = n;
    h->seal = seal_of(p);
    return p;
}
