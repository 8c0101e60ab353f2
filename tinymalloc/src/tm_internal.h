/* tinymalloc internals: the one header of shared types, constants and fast-path helpers.
 *
 * Memory layout (see DESIGN.md):
 *   - All memory comes in chunks of TM_CHUNK_SIZE aligned to TM_CHUNK_SIZE. A byte map indexed
 *     by chunk number (tm_chunk_map) says which tier owns a chunk, or 0 for "not ours", so the
 *     owner of any pointer is found in O(1) and foreign pointers are recognised.
 *   - A slab chunk keeps its metadata out of band: page 0 holds the chunk header and one
 *     descriptor per 64 KiB slab page; pages 1..63 hold blocks of one size class each.
 *   - A huge block is its own mapping, chunk aligned, with a checked header just below the
 *     user pointer.
 */
#ifndef TM_INTERNAL_H
#define TM_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <sys/types.h>

/* Everything declared below is internal: hidden, so the compiler addresses globals directly
 * (one RIP-relative operand) instead of through the GOT (a load, then the access). */
#pragma GCC visibility push(hidden)

#define TM_EXPORT __attribute__((visibility("default")))
#define tm_likely(x) __builtin_expect(!!(x), 1)
#define tm_unlikely(x) __builtin_expect(!!(x), 0)
#define tm_noinline __attribute__((noinline))
#define tm_cold __attribute__((cold, noinline))

#define TM_ALIGN 16 /* every block is at least 16-byte aligned, as glibc gives */
#define TM_OS_PAGE 4096UL

#define TM_CHUNK_SHIFT 22
#define TM_CHUNK_SIZE (1UL << TM_CHUNK_SHIFT) /* 4 MiB */
#define TM_CHUNK_MASK (TM_CHUNK_SIZE - 1)
#define TM_ADDR_BITS 47 /* user address space on x86_64 and aarch64 (4-level tables) */
#define TM_CHUNK_MAP_SIZE (1UL << (TM_ADDR_BITS - TM_CHUNK_SHIFT))

#define TM_PAGE_SHIFT 16
#define TM_PAGE_SIZE (1UL << TM_PAGE_SHIFT) /* slab page: 64 KiB */
#define TM_PAGES_PER_CHUNK (TM_CHUNK_SIZE / TM_PAGE_SIZE)

#define TM_MAX_CLASSES 64
#define TM_SMALL_MAX_LIMIT 16384 /* a slab page must hold at least 4 blocks */
#define TM_SIZE_TABLE_LEN (TM_SMALL_MAX_LIMIT / TM_ALIGN + 1)

/* Chunk kinds in tm_chunk_map. */
enum { TM_KIND_NONE = 0, TM_KIND_SLAB = 1, TM_KIND_HUGE = 2, TM_KIND_META = 3 };
/* Set on every chunk while profiling, so frees leave the fast path (profile.c). */
#define TM_KIND_PROFILED 0x80u

/* ---- locks: a test-and-set spin lock that yields; held only on slow paths ---------------- */
typedef struct {
    _Atomic int v;
} tm_lock_t;

void tm_lock_slow(tm_lock_t *l);
static inline void tm_lock(tm_lock_t *l) {
    if (tm_likely(atomic_exchange_explicit(&l->v, 1, memory_order_acquire) == 0)) return;
    tm_lock_slow(l);
}
static inline bool tm_trylock(tm_lock_t *l) {
    return atomic_load_explicit(&l->v, memory_order_relaxed) == 0 &&
           atomic_exchange_explicit(&l->v, 1, memory_order_acquire) == 0;
}
static inline void tm_unlock(tm_lock_t *l) {
    atomic_store_explicit(&l->v, 0, memory_order_release);
}
/* After fork() only the forking thread exists: every lock is made free again. */
static inline void tm_lock_reset(tm_lock_t *l) {
    atomic_store_explicit(&l->v, 0, memory_order_relaxed);
}

/* ---- options (options.c) ---------------------------------------------------------------- */
typedef struct {
    uint32_t nclasses;
    uint32_t class_size[TM_MAX_CLASSES];
    uint32_t prealloc[TM_MAX_CLASSES]; /* blocks preallocated per class */
    uint32_t slab_max;                 /* largest slab size; above goes to the next tier */
    uint32_t small_max;                /* the fast path's limit: slab_max, or 0 to send
                                          every request to the slow path (profiling) */
    bool prefault;                     /* touch preallocated pages at start-up */
    int stats;                         /* 0 off, 1 table on stderr, 2 json to stats_file */
    char stats_file[256];              /* "%p" is replaced by the pid */
    char profile_file[256];            /* profile:PATH; empty when not profiling */
    uint32_t slab_retain;              /* free slab pages kept committed before purging */
    uint32_t slab_purge_delay;         /* ms a free slab page stays unused before purging */
    size_t reserve;                    /* bytes of address space reserved at a time */
    bool verbose;
} tm_options_t;

extern tm_options_t tm_opt;
void tm_options_init(void);

/* ---- output without malloc (stats.c) ---------------------------------------------------- */
typedef struct {
    char *buf;
    size_t len, cap;
    int fd;
} tm_out_t;
void tm_out_str(tm_out_t *o, const char *s);
void tm_out_u64(tm_out_t *o, uint64_t v, int width);
void tm_out_hex(tm_out_t *o, uintptr_t v);
void tm_out_flush(tm_out_t *o);
void tm_message(const char *a, const char *b, const char *c); /* one line on stderr */
__attribute__((noreturn)) void tm_fatal(const char *func, const char *what, const void *p);

/* ---- OS layer (os.c): the only place that calls mmap/munmap/madvise/mremap --------------- */
typedef struct {
    _Atomic uint64_t mmap_calls, munmap_calls, madvise_calls, mremap_calls, mmap_failures;
    _Atomic uint64_t mapped_bytes, mapped_peak, purged_bytes;
} tm_os_stats_t;
extern tm_os_stats_t tm_os_stats;

void *tm_os_map(size_t size);                       /* read-write, lazily committed */
void *tm_os_map_aligned(size_t size, size_t align); /* align: power of two >= page */
void tm_os_unmap(void *p, size_t size);
void tm_os_purge(void *p, size_t size); /* give pages back, keep the range */
void tm_os_populate(void *p, size_t size);
void *tm_os_remap(void *p, size_t old_size, size_t new_size, void *fixed);

/* ---- chunks (chunk.c) ------------------------------------------------------------------- */
extern uint8_t tm_chunk_map[TM_CHUNK_MAP_SIZE];

/* Addresses above 2^47 are never user pointers on 4-level page tables; masking (rather than
 * testing) them keeps the lookup to one load. The raw kind includes TM_KIND_PROFILED. */
static inline unsigned tm_chunk_kind_raw(uintptr_t a) {
    return tm_chunk_map[(a >> TM_CHUNK_SHIFT) & (TM_CHUNK_MAP_SIZE - 1)];
}
static inline unsigned tm_chunk_kind(uintptr_t a) {
    return tm_chunk_kind_raw(a) & ~TM_KIND_PROFILED;
}
void tm_chunk_mark(uintptr_t start, size_t size, unsigned kind);
void *tm_chunk_alloc(unsigned kind); /* one chunk from the reserved region, or NULL */
void *tm_meta_alloc(size_t size);    /* zeroed metadata that is never freed (thread caches) */
extern tm_lock_t tm_chunk_lock;

/* ---- slab tier (slab.c) ----------------------------------------------------------------- */

/* A free block stores its link in word 0 and a check word in word 1: the link xor a
 * per-process secret. The allocator verifies the check before it follows a link, so a
 * use-after-free write cannot steer it (it aborts instead), and a block whose check matches
 * is taken to be free, which makes double frees cheap to detect. Keeping the link itself
 * plain keeps the xor off the malloc/free dependency chain (measured: 5.41 -> 5.14 ns per
 * malloc+free pair).
 * The free fast path reads word 1 only: a program often writes the first bytes of a block
 * just before freeing it, and a full-word load of them would stall on store forwarding.
 * Links are below 2^47, so a check word xor the secret has its top 17 bits clear; that tag
 * (a 1 in 2^17 chance for other data) sends the free to tm_slab_free_keyed, which tests the
 * whole check before it looks for the block on the lists. */
typedef struct tm_block {
    struct tm_block *next;
    uintptr_t check;
} tm_block_t;

extern uintptr_t tm_secret;

static inline void tm_block_link(tm_block_t *b, tm_block_t *next) {
    b->next = next;
    b->check = (uintptr_t)next ^ tm_secret;
}
static inline bool tm_block_is_free(const tm_block_t *b) {
    return b->check == ((uintptr_t)b->next ^ tm_secret);
}
static inline bool tm_block_may_be_free(const tm_block_t *b) {
    return ((b->check ^ tm_secret) >> TM_ADDR_BITS) == 0;
}
__attribute__((noreturn)) void tm_slab_corrupt(const tm_block_t *b);

struct tm_tcache;

/* Descriptor of one slab page. All fields but thread_free are written only by the owner thread,
 * or under a pool lock while the page has no owner.
 * Invariant: used & TM_USED_MASK == carved - len(free) + (1 if it is its owner's current page);
 * blocks on thread_free count as used until the owner collects them. So the current page never
 * reaches 0, and any other page at 0 is wholly free. Bit 31 (TM_FULL_BIT) marks a page on its
 * owner's full list, so the free fast path tests both cases with one signed compare. */
#define TM_FULL_BIT 0x80000000u
#define TM_USED_MASK 0x7fffffffu
typedef struct tm_page {
    tm_block_t *free;        /* owner's free list */
    struct tm_tcache *owner; /* owning thread cache; NULL while in a pool */
    uint32_t used;           /* blocks out (or on thread_free), plus TM_FULL_BIT */
    uint32_t carved_end;     /* blocks carved so far * block_size: offsets below hold blocks */
    uint64_t divisor;        /* UINT64_MAX / block_size + 1: off * divisor < divisor iff
                                block_size divides off (0 while unassigned) */
    uint32_t block_size;     /* 0 while the page is unassigned */
    uint8_t cls;
    uint8_t in_pool;                   /* in a class pool or the free-page pool */
    uint8_t committed;                 /* pages not purged since last use */
    _Atomic(tm_block_t *) thread_free; /* frees from other threads (one CAS each) */
    struct tm_page *next, *prev;
} tm_page_t; /* 64 bytes: the free path indexes descriptors with a shift */

typedef struct tm_chunk_hdr {
    uint32_t kind;
    uint32_t npages;
    tm_page_t pages[TM_PAGES_PER_CHUNK]; /* pages[0] is this header's page */
} tm_chunk_hdr_t;

_Static_assert(sizeof(tm_page_t) == 64, "slab page descriptor is one cache line");

/* Some fields are written under a lock (or by their owner) and read without it where a stale
 * answer is safe: the free path's page checks, a pool's peek, an arena block's start bit and
 * length. Those reads and the writes they race with are relaxed atomics: plain moves on x86,
 * defined behaviour in C11, and seen as such by ThreadSanitizer. */
#define tm_rload(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define tm_rstore(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

static inline uint32_t tm_page_carved(const tm_page_t *pg) {
    return pg->block_size ? pg->carved_end / pg->block_size : 0;
}

static inline uintptr_t tm_page_start(const tm_page_t *pg) {
    uintptr_t chunk = (uintptr_t)pg & ~TM_CHUNK_MASK;
    size_t idx = (size_t)(pg - ((tm_chunk_hdr_t *)chunk)->pages);
    return chunk + (idx << TM_PAGE_SHIFT);
}

/* Per-class queues in a thread cache. */
typedef struct {
    tm_page_t *avail; /* pages that may have free blocks (not cur) */
    tm_page_t *fullq; /* pages that were found full */
    uint32_t nfull;
    uint32_t scan_skip; /* refills to skip before scanning full pages again */
} tm_classq_t;

/* A bin of the medium cache (mcache.c). */
#define TM_MCLASSES 64
typedef struct {
    tm_block_t *head;
    uint32_t count;
} tm_mbin_t;

typedef struct tm_tcache {
    tm_page_t *cur[TM_MAX_CLASSES];   /* allocation page per class, never NULL */
    uint64_t nmalloc[TM_MAX_CLASSES]; /* counted by the owner, no atomics */
    uint64_t nfree[TM_MAX_CLASSES];   /* frees by this thread, local or remote */
    uint64_t flushed_malloc[TM_MAX_CLASSES], flushed_free[TM_MAX_CLASSES];
    tm_classq_t q[TM_MAX_CLASSES];
    tm_mbin_t mbin[TM_MCLASSES];             /* freed medium blocks, by medium class */
    size_t mcache_bytes;                     /* bytes in mbin, at most medium_cache */
    struct tm_tcache *next_live, *prev_live; /* list of live caches, for statistics */
    struct tm_tcache *next_free;
    uint32_t refills; /* slab refills: every 64th adds all classes' counts (stats.c) */
    bool is_fallback;
} tm_tcache_t;

extern tm_page_t tm_page_empty;
extern tm_tcache_t tm_tcache_empty;
extern __thread tm_tcache_t *tm_tc __attribute__((tls_model("initial-exec")));

extern uint8_t tm_size_class[TM_SIZE_TABLE_LEN];

static inline size_t tm_class_of(size_t n) { return tm_size_class[(n + TM_ALIGN - 1) / TM_ALIGN]; }

void tm_slab_init(void);
void *tm_slab_alloc_slow(tm_tcache_t *tc, unsigned cls); /* NULL with errno ENOMEM */
void tm_slab_free_slow(tm_tcache_t *tc, tm_page_t *pg, tm_block_t *b);
void tm_slab_free_remote(tm_tcache_t *tc, tm_page_t *pg, tm_block_t *b);
void tm_slab_free_keyed(tm_tcache_t *tc, tm_page_t *pg, tm_block_t *b);
void tm_slab_abandon_all(tm_tcache_t *tc);
int tm_slab_aligned_class(size_t n, size_t align); /* -1 when no class fits */
void tm_slab_trim(void);                           /* malloc_trim's part in each tier */
void tm_slab_fork_prepare(void);
void tm_slab_fork_parent(void);
void tm_slab_fork_child(void);

static inline void *tm_slab_alloc(tm_tcache_t *tc, size_t cls) {
    tm_page_t *pg = tc->cur[cls];
    tm_block_t *b = pg->free;
    if (tm_likely(b != NULL)) {
        tm_block_t *next = b->next;
        if (tm_unlikely(b->check != ((uintptr_t)next ^ tm_secret))) tm_slab_corrupt(b);
        pg->free = next;
        b->check = 0;
        pg->used++;
        tc->nmalloc[cls]++;
        return b;
    }
    return tm_slab_alloc_slow(tc, cls);
}

/* The page owning a slab pointer, or NULL when the pointer is not the start of a block that
 * was carved from the page. The divisibility test is exact for off < 2^32 (Lemire et al.,
 * "Faster remainder by direct computation"). */
static inline tm_page_t *tm_slab_page_of(uintptr_t a) {
    tm_chunk_hdr_t *ch = (tm_chunk_hdr_t *)(a & ~TM_CHUNK_MASK);
    tm_page_t *pg = &ch->pages[(a & TM_CHUNK_MASK) >> TM_PAGE_SHIFT];
    uint64_t off = a & (TM_PAGE_SIZE - 1);
    uint64_t div = tm_rload(pg->divisor);
    if (tm_unlikely(off * div >= div || off >= tm_rload(pg->carved_end))) return NULL;
    return pg;
}

/* Every slow path is a tail call, so the fast path saves no registers. */
static inline void tm_slab_free(tm_page_t *pg, tm_block_t *b) {
    tm_tcache_t *tc = tm_tc;
    if (tm_unlikely(tm_rload(pg->owner) != tc)) return tm_slab_free_remote(tc, pg, b);
    if (tm_unlikely(tm_block_may_be_free(b))) return tm_slab_free_keyed(tc, pg, b);
    tm_block_link(b, pg->free);
    pg->free = b;
    tc->nfree[pg->cls]++;
    if (tm_unlikely((int32_t)--pg->used <= 0)) return tm_slab_free_slow(tc, pg, b);
}

/* ---- thread caches (tcache.c) ----------------------------------------------------------- */
tm_tcache_t *tm_tcache_get_slow(void); /* a usable cache for this thread, creating it */
void tm_tcache_init(void);
void tm_tcache_fork_prepare(void);
void tm_tcache_fork_parent(void);
void tm_tcache_fork_child(void);
tm_tcache_t *tm_tcache_live_first(void);
extern tm_lock_t tm_tcache_lock;
extern tm_tcache_t tm_tcache_fallback;
extern tm_lock_t tm_fallback_lock;

/* ---- huge blocks (huge.c) --------------------------------------------------------------- */
void *tm_huge_alloc(size_t n, size_t align, bool zero);
void tm_huge_free(void *p, const char *func);
size_t tm_huge_usable(const void *p, const char *func);
void *tm_huge_realloc(void *p, size_t n);
typedef struct {
    _Atomic uint64_t nalloc, nfree, cur_bytes, peak_bytes, nremap;
} tm_huge_stats_t;
extern tm_huge_stats_t tm_huge_stats;

/* ---- statistics (stats.c) --------------------------------------------------------------- */
typedef struct {
    _Atomic uint64_t nmalloc, nfree, pages, peak_live;
} tm_class_stats_t;
extern tm_class_stats_t tm_class_stats[TM_MAX_CLASSES];
void tm_stats_flush(tm_tcache_t *tc);
void tm_stats_flush_class(tm_tcache_t *tc, unsigned cls);
void tm_stats_init(void);
int tm_open_pid_path(const char *pattern); /* "%p" -> pid; an fd, or -1 after a message */

/* ---- allocation profile (profile.c) ----------------------------------------------------- */
#define TM_PROF_TRAILER 32 /* bytes added to every request while profiling */
extern bool tm_profiling;
void tm_profile_init(void);
void tm_profile_alloc(void *p, size_t n, size_t usable); /* usable: the tier's, whole */
size_t tm_profile_free(void *p, size_t usable); /* the size it was asked for, or SIZE_MAX */
void tm_profile_write(void);
void tm_profile_fork_child(void);
void tm_stats_at_exit(void);

/* ---- start-up (init.c) ------------------------------------------------------------------ */
extern _Atomic int tm_initialized;
void tm_init_slow(void);
static inline void tm_init(void) {
    if (tm_unlikely(!atomic_load_explicit(&tm_initialized, memory_order_acquire))) tm_init_slow();
}

static inline size_t tm_align_up(size_t n, size_t a) { return (n + a - 1) & ~(a - 1); }

/* ==== arena and heap tiers (arena.c, heap.c): medium and large blocks =====================
 * Kept apart from the slab declarations above. Chunk kinds used here: TM_KIND_ARENA for a
 * chunk cut into units, TM_KIND_HEAP for the chunks of a heap span. */
enum { TM_KIND_ARENA = 4, TM_KIND_HEAP = 5 };

#define TM_MAX_ARENAS 64 /* per-CPU arenas (and heaps) beyond this share one */

#define TM_MEDIUM_MAX_DEFAULT (256UL << 10)

/* Knobs of the two tiers, set from TINYMALLOC_CONF by options.c. */
typedef struct {
    size_t medium_max;            /* largest arena request, <= tm_arena_capacity(arena_unit) */
    size_t arena_unit;            /* bytes per bitmap bit: a power of two, 1 KiB to 64 KiB */
    uint32_t arena_retain;        /* wholly free chunks an arena keeps (purged) */
    uint32_t arena_purge_delay;   /* ms before a wholly free chunk's pages go back */
    uint32_t arenas;              /* 0: one per CPU */
    uint32_t heap_growth;         /* percent: anticipation multiplies by this per extra miss */
    uint32_t heap_miss_threshold; /* consecutive misses before growing by more than asked */
    uint32_t heap_decay;          /* percent of the anticipation dropped per hit */
    uint32_t heap_bound;          /* percent above the peak in use the heap may grow to */
    uint32_t heap_purge_delay;    /* ms a free block stays committed before madvise */
    size_t heap_retain;           /* free heap bytes kept mapped; wholly free spans past it go */
    size_t heap_max;              /* bytes; 0 = no limit (past it, blocks get own mappings) */
    size_t huge_threshold;        /* initial: requests of this size or more get own mappings */
    size_t huge_threshold_max;    /* the adaptive threshold never rises past this */
    bool huge_dynamic;            /* raise the threshold when huge blocks are freed */
    size_t medium_cache;          /* bytes of freed medium blocks a thread keeps; 0: none */
} tm_tier_options_t;
extern tm_tier_options_t tm_topt;
void tm_tier_options_defaults(void);
/* Returns 1 when key is a tier option (applied, or reported as bad), 0 when unknown. */
int tm_tier_option(const char *key, size_t klen, const char *val, size_t vlen, const char *tok,
                   size_t toklen);

/* Chunk spans (chunk.c): n contiguous chunks, and their return. */
void *tm_chunk_alloc_span(size_t size, unsigned kind); /* size: a multiple of TM_CHUNK_SIZE */
void tm_chunk_release(void *p, size_t size);           /* purged and kept, or unmapped */

/* Monotonic milliseconds from the vDSO clock (coarse: a few ms of resolution is enough). */
uint64_t tm_now_ms(void);
unsigned tm_cpu_index(void); /* the CPU this thread runs on (0 when unknown) */

/* Delayed purges of the per-CPU arenas and heaps. A thread works in the arena and heap of the
 * CPU it runs on, so one that freed memory and moved to another CPU would leave the first
 * one's purge waiting for an operation there that may never come. Each tier therefore keeps
 * the earliest time any of its structures is due (0: none): every operation reads it, and
 * the one that finds it past runs the other structures' due purges. */
static inline void tm_due_publish(_Atomic uint64_t *due_ms, uint64_t t) {
    uint64_t cur = atomic_load_explicit(due_ms, memory_order_relaxed);
    while (t && (cur == 0 || t < cur) &&
           !atomic_compare_exchange_weak_explicit(due_ms, &cur, t, memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}
/* True for the one caller that takes a due time seen past; it must then publish again the
 * times of every structure it leaves waiting. */
static inline bool tm_due_claim(_Atomic uint64_t *due_ms, uint64_t seen) {
    return atomic_compare_exchange_strong_explicit(due_ms, &seen, 0, memory_order_relaxed,
                                                   memory_order_relaxed);
}
unsigned tm_ncpus(void);

/* Arena tier. */
void tm_arena_init(void);
size_t tm_arena_capacity(size_t unit);        /* the largest block one chunk holds at this unit */
void *tm_arena_alloc(size_t n, size_t align); /* NULL (errno ENOMEM) on failure */
void tm_arena_free(void *p, const char *func);
size_t tm_arena_usable(const void *p, const char *func);
bool tm_arena_resize(void *p, size_t n); /* in place, or false */

/* Medium cache (mcache.c): per-thread bins in front of the arenas. */
void tm_mcache_init(void);
void *tm_mcache_alloc(size_t n, size_t align);
void tm_mcache_free(void *p, const char *func);
void tm_mcache_flush(tm_tcache_t *tc);
void tm_arena_trim(void);
void tm_arena_fork_prepare(void);
void tm_arena_fork_parent(void);
void tm_arena_fork_child(void);
typedef struct {
    uint64_t nalloc, nfree, chunks, chunks_peak, used_bytes, purged_chunks, released_chunks;
} tm_arena_totals_t;
unsigned tm_arena_count(void);
void tm_arena_totals(tm_arena_totals_t *t);
uint64_t tm_arena_allocs_of(unsigned idx);

/* Heap tier (large blocks, and the huge threshold). */
void tm_heap_init(void);
void *tm_heap_alloc(size_t n, size_t align); /* also decides large vs huge */
void tm_heap_free(void *p, const char *func);
size_t tm_heap_usable(const void *p, const char *func);
void *tm_heap_realloc(void *p, size_t n); /* in place or NULL; the block stays valid */
void tm_heap_trim(void);
void tm_heap_fork_prepare(void);
void tm_heap_fork_parent(void);
void tm_heap_fork_child(void);
void tm_huge_freed(size_t size); /* huge.c tells the adaptive threshold */
extern _Atomic size_t tm_huge_threshold;
typedef struct {
    uint64_t heaps, max_size, size, peak_size, in_use, peak_in_use, blocks, free_blocks;
    uint64_t consecutive_misses, misses, hits, grows, purged_bytes, unmapped_bytes, ahead;
    uint64_t nalloc, nfree, huge_threshold;
} tm_heap_totals_t;
void tm_heap_totals(tm_heap_totals_t *t);
void tm_tiers_print(tm_out_t *o, bool json);

#pragma GCC visibility pop

#endif
