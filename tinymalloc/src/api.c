/* The exported C allocation API: size -> tier dispatch, glibc's semantics for errno, zero
 * sizes and alignment, and the checks that turn a bad pointer into a clear abort. */
#include "tm_internal.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#define TM_MAX_ALIGN_SLAB TM_PAGE_SIZE

/* A TM_PREFIX build (make's tsan variant) exports tinymalloc_malloc, tinymalloc_free, ... and
 * leaves the standard names to libc, or to a sanitizer's runtime that must keep its own. */
#ifdef TM_PREFIX
#define TM_API(name) tinymalloc_##name
#else
#define TM_API(name) name
#endif

/* Everything the fast path does not serve: sizes above the slab tier, alignments above 16,
 * requests before start-up finished, and every request while profiling. */
static void *alloc_any(size_t n, size_t align, bool zero) {
    if (tm_unlikely(n > PTRDIFF_MAX)) {
        errno = ENOMEM;
        return NULL;
    }
    tm_init();
    if (n <= tm_opt.slab_max) {
        int cls = tm_slab_aligned_class(n, align);
        if (cls >= 0) return tm_slab_alloc(tm_tc, (unsigned)cls);
    }
    /* A thread that reaches the tiers above the slabs gets its thread state too (the slabs
     * get it on their slow path): that state counts it among the process's threads, so that
     * the purger starts for threads that free only medium or large blocks and go quiet. */
    if (tm_unlikely(tm_tc == &tm_tcache_empty)) tm_tcache_get_slow();
    /* Medium sizes (and small ones with an alignment no class has) go to the arenas, whose
     * runs are aligned to a unit; everything else to the heap, which sends huge requests to
     * their own mappings. */
    if (n <= tm_opt.medium_max && align <= tm_opt.arena_unit) return tm_mcache_alloc(n, align);
    return tm_heap_alloc(n, align, zero);
}

static size_t usable_size(void *p, const char *func);

/* While profiling, every request carries a trailer (profile.c). */
static tm_noinline void *malloc_profiled(size_t n, size_t align) {
    void *p = alloc_any(n <= PTRDIFF_MAX ? n + TM_PROF_TRAILER : n, align, false);
    if (p) tm_profile_alloc(p, n, usable_size(p, "malloc"));
    return p;
}

tm_noinline void *tm_malloc_large(size_t n, size_t align, bool zero) {
    if (tm_unlikely(tm_profiling)) return malloc_profiled(n, align);
    void *p = alloc_any(n, align, zero);
    tm_purger_poll();
    tm_purger_inline();
    return p;
}

/* zero: a calloc's request (see tm_heap_alloc). Requests the medium cache may hold go to it by
 * a tail call, which comes back to tm_malloc_large on a miss (above tm_mcache_fast_max, goes to
 * the arenas): malloc keeps no stack frame. */
static inline void *tm_alloc(size_t n, bool zero) {
    if (tm_likely(n <= tm_opt.fast_max)) return tm_slab_alloc(tm_tc, tm_class_of(n));
    if (n <= tm_mcache_fast_max && !tm_profiling) return tm_mcache_malloc(n, zero);
    if (n <= tm_mcache_keep_max && !tm_profiling) return tm_mcache_malloc_big(n, zero);
    return tm_malloc_large(n, TM_ALIGN, zero);
}

static inline void *tm_malloc(size_t n) { return tm_alloc(n, false); }

/* The page's own test, not a test of tm_slab_page_of's NULL: the compiler cannot tell that a
 * page's address is never NULL, and tested it on every free. */
static inline __attribute__((always_inline)) void free_slab(void *p, const char *func) {
    tm_page_t *pg = tm_slab_page_at((uintptr_t)p);
    if (tm_unlikely(!tm_slab_page_holds(pg, (uintptr_t)p))) tm_fatal(func, "invalid pointer", p);
    tm_slab_free(pg, (tm_block_t *)p);
}

static tm_noinline void free_other(void *p, unsigned kind, const char *func) {
    if (kind & TM_KIND_PROFILED) {
        tm_profile_free(p, usable_size(p, func));
        kind &= ~TM_KIND_PROFILED;
    }
    if (kind == TM_KIND_SLAB)
        free_slab(p, func);
    else if (kind == TM_KIND_ARENA)
        return tm_mcache_free(p, func);
    else if (kind == TM_KIND_HEAP)
        tm_heap_free(p, func);
    else if (kind == TM_KIND_HUGE)
        tm_huge_free(p, func);
    else if (p != NULL)
        tm_fatal(func, "invalid pointer", p);
    tm_purger_poll();
    tm_purger_inline();
}

/* Frees p, whatever its tier; func names the API call in error messages. */
static inline __attribute__((always_inline)) void tm_free(void *p, const char *func) {
    unsigned kind = tm_chunk_kind_raw((uintptr_t)p);
    if (tm_unlikely(kind != TM_KIND_SLAB)) {
        if (kind == TM_KIND_ARENA) return tm_mcache_free(p, func); /* not profiled: its bit */
        return free_other(p, kind, func);
    }
    free_slab(p, func);
}

/* Usable size of a live block; aborts naming func for a pointer that is not one. */
static size_t usable_size(void *p, const char *func) {
    uintptr_t a = (uintptr_t)p;
    unsigned kind = tm_chunk_kind(a);
    if (kind == TM_KIND_SLAB) {
        tm_page_t *pg = tm_slab_page_of(a);
        if (pg == NULL) tm_fatal(func, "invalid pointer", p);
        return tm_rload(pg->block_size);
    }
    if (kind == TM_KIND_ARENA) return tm_arena_usable(p, func);
    if (kind == TM_KIND_HEAP) return tm_heap_usable(p, func);
    if (kind == TM_KIND_HUGE) return tm_huge_usable(p, func);
    tm_fatal(func, "invalid pointer", p);
}

static void *tm_memalign(size_t align, size_t n) {
    if (align <= TM_ALIGN) return tm_malloc(n);
    if (tm_unlikely(n > PTRDIFF_MAX - align)) {
        errno = ENOMEM;
        return NULL;
    }
    return tm_malloc_large(n, align, false);
}

/* malloc and free each start a cache line: else where they fall moves with every change to the
 * library, and with it the time of a malloc/free pair (bench-micro pair 64: 23 or 24 cycles as
 * they fell, 22 aligned). */
#define TM_HOT __attribute__((aligned(64)))

TM_EXPORT TM_HOT void *TM_API(malloc)(size_t n) { return tm_malloc(n); }

TM_EXPORT TM_HOT void TM_API(free)(void *p) { tm_free(p, "free"); }

TM_EXPORT void TM_API(cfree)(void *p) { tm_free(p, "free"); }

TM_EXPORT void *TM_API(calloc)(size_t count, size_t size) {
    size_t n;
    if (tm_unlikely(__builtin_mul_overflow(count, size, &n))) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = tm_alloc(n, true);
    if (p == NULL) return NULL;
    /* Huge blocks are fresh mappings, already zero; a heap block may be partly fresh; blocks
     * of the other tiers may be reused. */
    unsigned kind = tm_chunk_kind((uintptr_t)p);
    if (kind == TM_KIND_HEAP)
        tm_heap_clear(p, n);
    else if (kind != TM_KIND_HUGE)
        memset(p, 0, n);
    return p;
}

static void *realloc_any(void *p, size_t n);

/* A freed slab block, or a medium block in a thread's cache, still counts as live to its tier
 * (its page or its arena), so realloc tests the check word that a free leaves in it, as free
 * does, before it resizes or copies the block. */
static void realloc_check_live(void *p) {
    unsigned kind = tm_chunk_kind((uintptr_t)p);
    if ((kind == TM_KIND_SLAB && tm_block_is_freed((tm_block_t *)p)) ||
        (kind == TM_KIND_ARENA && tm_block_is_free((tm_block_t *)p)))
        tm_fatal("realloc", "invalid pointer (freed already)", p);
}

/* Resizes a block within its tier without copying it by hand (old: its usable size), or
 * returns NULL, the block intact. */
static void *resize_in_place(void *p, size_t n, size_t old) {
    unsigned kind = tm_chunk_kind((uintptr_t)p);
    if (kind == TM_KIND_SLAB) {
        /* Stay when the block is the right class, or shrinks by less than half. */
        if (n <= old && (n >= old / 2 || tm_opt.class_size[tm_class_of(n)] == old)) return p;
    } else if (kind == TM_KIND_ARENA) {
        /* In place while it stays medium: the tail is freed, or the next free units taken. */
        if (n > tm_opt.slab_max && n <= tm_opt.medium_max && tm_arena_resize(p, n)) return p;
    } else if (kind == TM_KIND_HEAP) {
        if (n > tm_opt.medium_max)
            return tm_heap_realloc(p, n); /* shrunk, grown into a free next
                                              block, or moved into a free one below */
    } else if (n > tm_opt.medium_max) {
        return tm_huge_realloc(p, n);
    }
    return NULL;
}

/* While profiling, a resize is a free and a new request to the profile, and the trailer
 * moves to the new end: it is read before the resize and written after it. */
static tm_noinline void *realloc_profiled(void *p, size_t n) {
    size_t whole = usable_size(p, "realloc"), old = whole - TM_PROF_TRAILER;
    realloc_check_live(p);
    size_t was = tm_profile_free(p, whole);
    void *q = resize_in_place(p, n + TM_PROF_TRAILER, whole);
    if (q) {
        tm_profile_alloc(q, n, usable_size(q, "realloc"));
        return q;
    }
    q = tm_malloc(n);
    if (q == NULL) { /* the old block stays valid, and in the profile */
        if (was != SIZE_MAX) tm_profile_alloc(p, was, whole);
        return NULL;
    }
    memcpy(q, p, old < n ? old : n);
    tm_free(p, "realloc"); /* its trailer was consumed above: not counted twice */
    return q;
}

TM_EXPORT void *TM_API(realloc)(void *p, size_t n) {
    if (tm_unlikely(tm_profiling) && p != NULL && n != 0 && n <= PTRDIFF_MAX)
        return realloc_profiled(p, n);
    return realloc_any(p, n);
}

static void *realloc_any(void *p, size_t n) {
    if (p == NULL) return tm_malloc(n);
    size_t old = usable_size(p, "realloc");
    realloc_check_live(p);
    if (n == 0) { /* glibc frees and returns NULL */
        tm_free(p, "realloc");
        return NULL;
    }
    if (tm_unlikely(n > PTRDIFF_MAX)) {
        errno = ENOMEM;
        return NULL;
    }
    void *q = resize_in_place(p, n, old);
    if (q) return q;
    q = tm_malloc(n);
    if (q == NULL) return NULL; /* the old block stays valid */
    memcpy(q, p, old < n ? old : n);
    /* A medium block that realloc moves goes back to its arena, not to the medium cache: a
     * buffer that outgrew it is not asked for again at its size soon, and in the arena its
     * run merges with the free units around it, where the blocks next to it can grow in place
     * (realloc-grow's peak RSS rose by an eighth with a 256 KiB cache that kept them). */
    if (tm_chunk_kind((uintptr_t)p) == TM_KIND_ARENA)
        tm_arena_free(p, "realloc");
    else
        tm_free(p, "realloc");
    return q;
}

TM_EXPORT void *TM_API(reallocarray)(void *p, size_t count, size_t size) {
    size_t n;
    if (__builtin_mul_overflow(count, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    return TM_API(realloc)(p, n);
}

TM_EXPORT int TM_API(posix_memalign)(void **out, size_t align, size_t n) {
    if (align < sizeof(void *) || (align & (align - 1))) return EINVAL;
    int saved = errno;
    void *p = tm_memalign(align, n);
    if (p == NULL) {
        errno = saved;
        return ENOMEM;
    }
    *out = p;
    return 0;
}

/* glibc's memalign: a non-power-of-two alignment is rounded up, a huge one is EINVAL. */
TM_EXPORT void *TM_API(memalign)(size_t align, size_t n) {
    if (align > SIZE_MAX / 2 + 1) {
        errno = EINVAL;
        return NULL;
    }
    if (align & (align - 1)) align = (size_t)1 << (64 - __builtin_clzl(align));
    return tm_memalign(align, n);
}

/* As in glibc 2.36, aligned_alloc is memalign. */
TM_EXPORT void *TM_API(aligned_alloc)(size_t align, size_t n) { return TM_API(memalign)(align, n); }

TM_EXPORT void *TM_API(valloc)(size_t n) { return tm_memalign(TM_OS_PAGE, n); }

TM_EXPORT void *TM_API(pvalloc)(size_t n) {
    if (n > PTRDIFF_MAX - TM_OS_PAGE) {
        errno = ENOMEM;
        return NULL;
    }
    return tm_memalign(TM_OS_PAGE, tm_align_up(n ? n : 1, TM_OS_PAGE));
}

TM_EXPORT size_t TM_API(malloc_usable_size)(void *p) {
    if (p == NULL) return 0;
    size_t n = usable_size(p, "malloc_usable_size");
    return tm_unlikely(tm_profiling) ? n - TM_PROF_TRAILER : n;
}

/* glibc calls these names internally (and some programs do too). */
/* glibc's malloc_trim: gives free memory back to the OS now instead of after the tiers' purge
 * delays. pad is ignored (nothing is trimmed off a heap top here). 1 when memory went back. */
TM_EXPORT int TM_API(malloc_trim)(size_t pad) {
    (void)pad;
    tm_init();
    uint64_t before = atomic_load_explicit(&tm_os_stats.purged_bytes, memory_order_relaxed);
    uint64_t unmapped = atomic_load_explicit(&tm_os_stats.munmap_calls, memory_order_relaxed);
    tm_mcache_drain(UINT64_MAX); /* before the arenas: its blocks keep chunks in use */
    tm_slab_trim();
    tm_arena_trim();
    tm_heap_trim();
    tm_chunk_background(UINT64_MAX); /* last: the heap may have released dirty spans */
    return atomic_load_explicit(&tm_os_stats.purged_bytes, memory_order_relaxed) != before ||
           atomic_load_explicit(&tm_os_stats.munmap_calls, memory_order_relaxed) != unmapped;
}

#ifndef TM_PREFIX
TM_EXPORT void *__libc_malloc(size_t n) __attribute__((alias("malloc")));
TM_EXPORT void __libc_free(void *p) __attribute__((alias("free")));
TM_EXPORT void *__libc_calloc(size_t c, size_t n) __attribute__((alias("calloc")));
TM_EXPORT void *__libc_realloc(void *p, size_t n) __attribute__((alias("realloc")));
TM_EXPORT void *__libc_memalign(size_t a, size_t n) __attribute__((alias("memalign")));
TM_EXPORT void *__libc_valloc(size_t n) __attribute__((alias("valloc")));
TM_EXPORT void *__libc_pvalloc(size_t n) __attribute__((alias("pvalloc")));
TM_EXPORT int __posix_memalign(void **o, size_t a, size_t n)
    __attribute__((alias("posix_memalign")));
#endif
