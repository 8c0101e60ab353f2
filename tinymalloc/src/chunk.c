/* Chunks: the address-space layer every tier draws from. Address space is reserved in large
 * regions (one mmap for many chunks) and handed out chunk by chunk; the chunk map records the
 * owner tier of every chunk so any pointer is classified in O(1). */
#include "tm_internal.h"

#include <errno.h>
#include <string.h>
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

/* Released chunks whose pages may still be committed (a huge heap block's span): the slabs
 * and arenas take them before any other, and their pages, written once already, cost no page
 * fault again. large-then-small (a 128 MiB block freed, then 64 MiB of small blocks) paid 52,590
 * faults with every released chunk purged at once, 39,472 with them, against tcmalloc's 34,096,
 * which builds its small objects in the freed block. Invariants (under tm_chunk_lock): the list is
 * in release order, newest first, and word 1 of each chunk holds its release time; at most
 * heap_retain bytes are listed (the heap's own allowance of free committed memory), and
 * tm_dirty_due is the oldest one's release time plus heap_purge_delay (0: empty), when it is
 * purged and goes on free_chunks, so that memory no tier takes goes back as the heap's own
 * free blocks do. */
static void *dirty_chunks;
static size_t dirty_count;
_Atomic uint64_t tm_dirty_due;
static uint64_t dirty_purge(uint64_t now, size_t drop);
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

/* One chunk: a dirty one when the caller takes one (*dirty set), else one from the free
 * list, else from the current region: its bottom for a heap span, its top for the other tiers.
 * NULL when all are empty. */
static void *chunk_take_locked(bool span, bool *dirty) {
    if (dirty && dirty_chunks) {
        void *c = dirty_chunks;
        dirty_chunks = *(void **)c;
        if (--dirty_count == 0) atomic_store_explicit(&tm_dirty_due, 0, memory_order_relaxed);
        *dirty = true;
        return c;
    }
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

/* dirty: NULL for a chunk that reads zero throughout, else where to say that it may not. */
static void *chunk_take(bool span, bool *dirty) {
    tm_lock(&tm_chunk_lock);
    bool listed = free_chunks != NULL || (dirty && dirty_chunks);
    void *c = chunk_take_locked(span, dirty);
    tm_unlock(&tm_chunk_lock);
    uintptr_t start = 0;
    size_t size = 0;
    if (c || !region_reserve(&start, &size)) return commit_taken(c, TM_CHUNK_SIZE, !listed);
    tm_range_t rest;
    tm_lock(&tm_chunk_lock);
    region_install_locked(start, size, &rest);
    listed = free_chunks != NULL || (dirty && dirty_chunks);
    c = chunk_take_locked(span, dirty);
    tm_unlock(&tm_chunk_lock);
    unmap_rest(rest);
    return commit_taken(c, TM_CHUNK_SIZE, !listed);
}

void *tm_chunk_alloc(unsigned kind, size_t clear, bool *dirty) {
    bool was_dirty = false;
    bool any = clear < TM_CHUNK_SIZE && kind != TM_KIND_HEAP;
    void *c = chunk_take(kind == TM_KIND_HEAP, any ? &was_dirty : NULL);
    if (c == NULL) return NULL;
    if (was_dirty) memset(c, 0, clear); /* the link and time words too */
    if (dirty) *dirty = was_dirty;
    tm_chunk_mark((uintptr_t)c, TM_CHUNK_SIZE, kind);
    return c;
}

void *tm_meta_alloc(size_t size) {
    size = tm_align_up(size, 64);
    tm_lock(&tm_chunk_lock);
    if (meta_end - meta_next < size) {
        tm_unlock(&tm_chunk_lock);
        void *c = tm_chunk_alloc(TM_KIND_META, TM_CHUNK_SIZE, NULL);
        if (c == NULL) return NULL;
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
    void *lists[2] = {free_chunks, dirty_chunks};
    region_next = region_end = 0;
    free_chunks = dirty_chunks = NULL;
    free_count = dirty_count = 0;
    atomic_store_explicit(&tm_dirty_due, 0, memory_order_relaxed);
    tm_unlock(&tm_chunk_lock);
    bool any = rest < rest_end || lists[0] != NULL || lists[1] != NULL;
    if (rest < rest_end) tm_os_unmap((void *)rest, rest_end - rest);
    for (int i = 0; i < 2; i++) {
        for (void *c = lists[i], *next; c; c = next) {
            next = *(void **)c;
            tm_os_unmap(c, TM_CHUNK_SIZE);
        }
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
    /* The heap grows into pages that read zero (its calloc counts on it), never dirty chunks.
     * Beside the new span they would raise RSS past what it was while the huge block they came
     * from lived (a huge block freed and a larger one taken would hold both); so as many of
     * them as the span has chunks, the oldest, are purged now. */
    if (tm_chunk_due()) dirty_purge(0, size / TM_CHUNK_SIZE);
    if (size == TM_CHUNK_SIZE) return tm_chunk_alloc(kind, TM_CHUNK_SIZE, NULL);
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

/* Chunks [p, p + size) purged and listed free, or unmapped past 256 free chunks (1 GiB).
 * Purged before it is listed: a chunk on the list is all zero but for its link word, as a fresh
 * one is, which the tiers' chunk set-up and the heap's calloc rely on. Locked pages cannot be
 * purged; such chunks are unmapped instead. */
static void release_clean(void *p, size_t size) {
    tm_lock(&tm_chunk_lock);
    bool keep = free_count + size / TM_CHUNK_SIZE <= 256; /* a hint: checked without the purge */
    tm_unlock(&tm_chunk_lock);
    if (!keep || !tm_os_purge_zero(p, size)) {
        tm_os_unmap(p, size);
        return;
    }
    tm_lock(&tm_chunk_lock);
    for (uintptr_t c = (uintptr_t)p; c < (uintptr_t)p + size; c += TM_CHUNK_SIZE)
        free_push_locked((void *)c);
    tm_unlock(&tm_chunk_lock);
}

/* Returns chunks that a tier no longer uses. Dirty ones (their pages may be committed) are
 * listed as such while the allowance lasts; the rest are purged now, their address space kept
 * for reuse. The chunk map is cleared first, so a stale pointer into the range is reported as
 * invalid from now on. */
void tm_chunk_release(void *p, size_t size, bool dirty) {
    tm_chunk_mark((uintptr_t)p, size, TM_KIND_NONE);
    size_t cap = dirty && tm_opt.heap_purge_delay ? tm_opt.heap_retain / TM_CHUNK_SIZE : 0;
    size_t kept = 0;
    if (cap) {
        uint64_t now = tm_now_ms();
        tm_lock(&tm_chunk_lock);
        /* The range's top chunks: the rest, purged, stays one range for one madvise. */
        for (; kept < size / TM_CHUNK_SIZE && dirty_count < cap; kept++) {
            void **c = (void **)((char *)p + size - (kept + 1) * TM_CHUNK_SIZE);
            c[0] = dirty_chunks;
            c[1] = (void *)(uintptr_t)now;
            dirty_chunks = c;
            dirty_count++;
        }
        if (kept && atomic_load_explicit(&tm_dirty_due, memory_order_relaxed) == 0)
            tm_due_lower(&tm_dirty_due, now + tm_opt.heap_purge_delay);
        tm_unlock(&tm_chunk_lock);
    }
    if (size > kept * TM_CHUNK_SIZE) release_clean(p, size - kept * TM_CHUNK_SIZE);
}

size_t tm_chunk_dirty_bytes(void) {
    tm_lock(&tm_chunk_lock);
    size_t n = dirty_count;
    tm_unlock(&tm_chunk_lock);
    return n * TM_CHUNK_SIZE;
}

/* Purges the dirty chunks released a heap_purge_delay before now (now UINT64_MAX: all), and
 * the `drop` oldest of the others too, and lists them free. Returns the next due time (0: none
 * is left). */
static uint64_t dirty_purge(uint64_t now, size_t drop) {
    uint64_t delay = tm_opt.heap_purge_delay;
    tm_lock(&tm_chunk_lock);
    size_t keep = dirty_count > drop ? dirty_count - drop : 0;
    void **pp = &dirty_chunks, *last = NULL;
    size_t left = 0;
    while (*pp && left < keep && now != UINT64_MAX && ((uintptr_t *)*pp)[1] + delay > now) {
        last = *pp;
        pp = (void **)*pp;
        left++;
    }
    void *old = *pp; /* these and the ones after them, older still */
    *pp = NULL;
    dirty_count = left;
    uint64_t due = last ? ((uintptr_t *)last)[1] + delay : 0;
    atomic_store_explicit(&tm_dirty_due, due, memory_order_relaxed);
    tm_unlock(&tm_chunk_lock);
    /* One release's chunks follow each other on the list in ascending addresses (listed from
     * the range's top down, newest first): each such run goes back in one purge, which clears
     * the link and time words. */
    for (void *c = old, *next; c; c = next) {
        size_t n = 1;
        for (next = *(void **)c; next == (char *)c + n * TM_CHUNK_SIZE; next = *(void **)next) n++;
        release_clean(c, n * TM_CHUNK_SIZE);
    }
    return due;
}

uint64_t tm_chunk_background(uint64_t now) {
    uint64_t due = tm_chunk_due();
    return due == 0 || now < due ? due : dirty_purge(now, 0);
}
