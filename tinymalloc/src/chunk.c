/* Chunks: the address-space layer every tier draws from. Address space is reserved in large
 * regions (one mmap for many chunks) and handed out chunk by chunk; the chunk map records the
 * owner tier of every chunk so any pointer is classified in O(1). */
#include "tm_internal.h"

#include <errno.h>
#include <unistd.h>

#define TM_MAP_PAGE 4096UL
#define TM_MAP_PAGES (TM_CHUNK_MAP_SIZE / TM_MAP_PAGE)

/* One byte per 4 MiB of the 47-bit address space: 32 MiB of zero-filled .bss, of which only
 * the pages covering our chunks are ever touched. But vm.overcommit_memory=2 charges a
 * writable .bss in full, touched or not; so under commit_chunks, tm_chunk_init remaps it
 * read-only (it reads zero: every lookup still works) and the pages covering a range are made
 * writable when the range enters the map (in_map_range, tm_chunk_map_commit).
 * Invariant: a range is marked only after its map pages are writable. */
uint8_t tm_chunk_map[TM_CHUNK_MAP_SIZE] __attribute__((aligned(TM_MAP_PAGE)));
static bool map_lazy; /* the map was remapped read-only */
static _Atomic uint64_t map_writable[TM_MAP_PAGES / 64];

void tm_chunk_init(void) {
    if (tm_opt.commit_chunks && sysconf(_SC_PAGESIZE) == (long)TM_MAP_PAGE)
        map_lazy = tm_os_read_only_zero(tm_chunk_map, sizeof tm_chunk_map);
}

/* Two threads may commit one page together: mprotect is idempotent, and a page's bit is set
 * only once it is writable. */
bool tm_chunk_map_commit(uintptr_t start, size_t size) {
    if (!map_lazy || size == 0) return true;
    uintptr_t first = (start >> TM_CHUNK_SHIFT) / TM_MAP_PAGE;
    uintptr_t last = ((start + size - 1) >> TM_CHUNK_SHIFT) / TM_MAP_PAGE;
    for (uintptr_t pg = first; pg <= last && pg < TM_MAP_PAGES; pg++) {
        uint64_t bit = 1ULL << (pg % 64);
        if (atomic_load_explicit(&map_writable[pg / 64], memory_order_acquire) & bit) continue;
        if (!tm_os_commit(tm_chunk_map + pg * TM_MAP_PAGE, TM_MAP_PAGE)) return false;
        atomic_fetch_or_explicit(&map_writable[pg / 64], bit, memory_order_release);
    }
    return true;
}

static tm_lock_t tm_chunk_lock;

typedef struct {
    void *p;
    size_t size;
} tm_range_t;

void tm_chunk_locks(tm_lock_op_t op) { tm_lock_fork(&tm_chunk_lock, op); }

/* Invariant (under tm_chunk_lock): [region_next, region_end) is reserved, unused, chunk
 * aligned; free_chunks links wholly free chunks through their first word.
 * Spans (the heap's) are cut from the region's bottom, the other tiers' chunks from its top
 * (both after the free list), so that a heap's new span follows its last one and add_span merges
 * the two, however many chunks the other tiers took meanwhile. With those chunks between its spans,
 * the heap of thread-phases touched 44 MB for 32.5 MB in use at most: free blocks at the end of one
 * span cannot merge with the next span's (a simulation of the same requests on spans that
 * follow each other touches 34 MB). */
static uintptr_t region_next, region_end;
static void *free_chunks;
static size_t free_count; /* chunks on free_chunks */
static uintptr_t meta_next, meta_end;

void tm_chunk_mark(uintptr_t start, size_t size, unsigned kind) {
    if (kind != TM_KIND_NONE && tm_profiling) kind |= TM_KIND_PROFILED;
    for (uintptr_t c = start >> TM_CHUNK_SHIFT;
         c < (start + size + TM_CHUNK_MASK) >> TM_CHUNK_SHIFT; c++)
        atomic_store_explicit((_Atomic uint8_t *)&tm_chunk_map[c], (uint8_t)kind,
                              memory_order_release);
}

/* The chunk map covers user addresses below 2^47. A kernel with 5-level page tables maps
 * higher only when asked to, but a mapping that lay above would alias chunks below in every
 * lookup (and turn the invalid-free checks off): it is refused, with a message once, and the
 * allocation fails with ENOMEM. */
static bool in_map_range(void *p, size_t size) {
    static _Atomic int told;
    if ((uintptr_t)p + size <= (uintptr_t)TM_CHUNK_MAP_SIZE << TM_CHUNK_SHIFT) {
        if (tm_chunk_map_commit((uintptr_t)p, size)) return true;
        tm_os_unmap(p, size); /* the commit limit refused the map's page */
        errno = ENOMEM;
        return false;
    }
    tm_os_unmap(p, size);
    if (!atomic_exchange_explicit(&told, 1, memory_order_relaxed))
        tm_message("the kernel mapped memory above the 47-bit range of the chunk map; ",
                   "such mappings are refused", " (allocations fail with ENOMEM)");
    errno = ENOMEM;
    return false;
}

/* Reserves address space for a new region, halving the request down to one chunk when the
 * address space is limited (RLIMIT_AS). With commit_chunks the region is inaccessible, and
 * each chunk or span is committed when it leaves it (commit_taken); chunks on the free list
 * have been committed. Without the lock: it maps. */
static bool region_reserve(uintptr_t *start, size_t *size) {
    for (size_t s = tm_opt.reserve; s >= TM_CHUNK_SIZE; s /= 2) {
        void *p = tm_opt.commit_chunks ? tm_os_reserve_aligned(s, TM_CHUNK_SIZE)
                                       : tm_os_map_aligned(s, TM_CHUNK_SIZE);
        if (p && !in_map_range(p, s)) return false;
        if (p) {
            *start = (uintptr_t)p;
            *size = s;
            return true;
        }
    }
    return false;
}

/* Under tm_chunk_lock: chunk c, unused, goes on the free list. */
static void free_push_locked(void *c) {
    *(void **)c = free_chunks;
    free_chunks = c;
    free_count++;
}

/* A region reserved without the lock becomes the current one (another thread may have
 * installed one meanwhile). The unused rest of the one it replaces goes on the free list, so a
 * span that did not fit there loses nothing; under commit_chunks that rest is inaccessible
 * (the free list's links live in the chunks), so it is handed back in *rest for the caller
 * to unmap once the lock is let go of. */
static void region_install_locked(uintptr_t start, size_t size, tm_range_t *rest) {
    rest->p = NULL;
    rest->size = 0;
    if (tm_opt.commit_chunks && region_next < region_end) {
        rest->p = (void *)region_next;
        rest->size = region_end - region_next;
    } else {
        for (; region_next < region_end; region_next += TM_CHUNK_SIZE)
            free_push_locked((void *)region_next);
    }
    region_next = start;
    region_end = start + size;
}

static void unmap_rest(tm_range_t rest) {
    if (rest.size) tm_os_unmap(rest.p, rest.size);
}

/* One chunk from the free list, or else from the current region: its bottom for a heap span,
 * its top for the other tiers. NULL when both are empty. */
static void *chunk_take_locked(bool span) {
    if (free_chunks) {
        void *c = free_chunks;
        free_chunks = *(void **)c;
        *(void **)c = NULL;
        free_count--;
        return c;
    }
    if (region_next == region_end) return NULL;
    if (span) {
        region_next += TM_CHUNK_SIZE;
        return (void *)(region_next - TM_CHUNK_SIZE);
    }
    region_end -= TM_CHUNK_SIZE;
    return (void *)region_end;
}

/* Without the lock: a chunk or span just taken from a region is made usable, under
 * commit_chunks. When the commit limit refuses it, its address space is unmapped (it cannot
 * go on the free list, whose links live in the chunks) and the caller gets NULL, ENOMEM. */
static void *commit_taken(void *c, size_t size, bool from_region) {
    if (c == NULL || !from_region || !tm_opt.commit_chunks || tm_os_commit(c, size)) return c;
    tm_os_unmap(c, size);
    return NULL;
}

static void *chunk_take(bool span) {
    tm_lock(&tm_chunk_lock);
    bool listed = free_chunks != NULL;
    void *c = chunk_take_locked(span);
    tm_unlock(&tm_chunk_lock);
    uintptr_t start = 0;
    size_t size = 0;
    if (c || !region_reserve(&start, &size)) return commit_taken(c, TM_CHUNK_SIZE, !listed);
    tm_range_t rest;
    tm_lock(&tm_chunk_lock);
    region_install_locked(start, size, &rest);
    listed = free_chunks != NULL;
    c = chunk_take_locked(span);
    tm_unlock(&tm_chunk_lock);
    unmap_rest(rest);
    return commit_taken(c, TM_CHUNK_SIZE, !listed);
}

void *tm_chunk_alloc(unsigned kind) {
    void *c = chunk_take(kind == TM_KIND_HEAP);
    if (c) tm_chunk_mark((uintptr_t)c, TM_CHUNK_SIZE, kind);
    return c;
}

void *tm_meta_alloc(size_t size) {
    size = tm_align_up(size, 64);
    tm_lock(&tm_chunk_lock);
    if (meta_end - meta_next < size) {
        tm_unlock(&tm_chunk_lock);
        void *c = chunk_take(false);
        if (c == NULL) return NULL;
        tm_chunk_mark((uintptr_t)c, TM_CHUNK_SIZE, TM_KIND_META);
        tm_lock(&tm_chunk_lock);
        /* A chunk another thread started meanwhile is used up first; this one waits. */
        if (meta_end - meta_next < size) {
            meta_next = (uintptr_t)c;
            meta_end = meta_next + TM_CHUNK_SIZE;
        } else {
            tm_chunk_mark((uintptr_t)c, TM_CHUNK_SIZE, TM_KIND_NONE);
            free_push_locked(c);
        }
    }
    void *p = (void *)meta_next;
    meta_next += size;
    tm_unlock(&tm_chunk_lock);
    return p;
}

/* Unmaps the address space held for later (the current region's unused rest and the free
 * chunks), for a mapping that did not fit beside it: under a tight RLIMIT_AS a request fails
 * only when no free address space of ours would have held it. Without any lock held. */
static bool space_give_back(void) {
    tm_lock(&tm_chunk_lock);
    uintptr_t rest = region_next, rest_end = region_end;
    void *list = free_chunks;
    region_next = region_end = 0;
    free_chunks = NULL;
    free_count = 0;
    tm_unlock(&tm_chunk_lock);
    bool any = rest < rest_end || list != NULL;
    if (rest < rest_end) tm_os_unmap((void *)rest, rest_end - rest);
    while (list) {
        void *next = *(void **)list;
        tm_os_unmap(list, TM_CHUNK_SIZE);
        list = next;
    }
    return any;
}

void *tm_chunk_map_aligned(size_t size, size_t align) {
    void *p = tm_os_map_aligned(size, align);
    if (p == NULL && space_give_back()) p = tm_os_map_aligned(size, align);
    return p && in_map_range(p, size) ? p : NULL;
}

/* size bytes of contiguous chunks (size a multiple of TM_CHUNK_SIZE): one chunk from the free
 * list, several from the bottom of the region, a new region when the rest is too short. A span
 * larger than a whole reservation gets its own aligned mapping. */
static void *span_take_locked(size_t size) {
    if (region_end - region_next < size) return NULL;
    void *c = (void *)region_next;
    region_next += size;
    return c;
}

void *tm_chunk_alloc_span(size_t size, unsigned kind) {
    if (size == TM_CHUNK_SIZE) return tm_chunk_alloc(kind);
    tm_lock(&tm_chunk_lock);
    void *c = span_take_locked(size);
    tm_unlock(&tm_chunk_lock);
    uintptr_t start = 0;
    size_t rsize = 0;
    if (c == NULL && size <= tm_opt.reserve / 2 && region_reserve(&start, &rsize)) {
        tm_range_t rest;
        tm_lock(&tm_chunk_lock);
        region_install_locked(start, rsize, &rest);
        c = span_take_locked(size);
        tm_unlock(&tm_chunk_lock);
        unmap_rest(rest);
    }
    c = commit_taken(c, size, true);
    if (c == NULL) c = tm_chunk_map_aligned(size, TM_CHUNK_SIZE);
    if (c) tm_chunk_mark((uintptr_t)c, size, kind);
    return c;
}

/* Returns chunks that a tier no longer uses. Their pages go back to the OS at once; the
 * address space is kept for reuse (one chunk at a time) up to 256 free chunks (1 GiB), past
 * which it is unmapped. The chunk map is cleared first, so a stale pointer into the range is
 * reported as invalid from now on. */
void tm_chunk_release(void *p, size_t size) {
    tm_chunk_mark((uintptr_t)p, size, TM_KIND_NONE);
    tm_lock(&tm_chunk_lock);
    bool keep = free_count + size / TM_CHUNK_SIZE <= 256; /* a hint: checked without the purge */
    tm_unlock(&tm_chunk_lock);
    /* Purged before it is listed: a chunk on the list is all zero but for its link word, as
     * a fresh one is, which the tiers' chunk set-up and the heap's calloc rely on. Locked
     * pages cannot be purged; such chunks are unmapped instead. */
    if (!keep || !tm_os_purge_zero(p, size)) {
        tm_os_unmap(p, size);
        return;
    }
    tm_lock(&tm_chunk_lock);
    for (uintptr_t c = (uintptr_t)p; c < (uintptr_t)p + size; c += TM_CHUNK_SIZE)
        free_push_locked((void *)c);
    tm_unlock(&tm_chunk_lock);
}
