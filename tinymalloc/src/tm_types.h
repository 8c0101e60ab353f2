/* tinymalloc's shared types and constants: every struct that more than one file sees, and the
 * layout they describe. tm_internal.h adds the functions each module offers the others.
 *
 * Memory layout (tinymalloc/README.md maps the files):
 *   - All memory comes in chunks of TM_CHUNK_SIZE aligned to TM_CHUNK_SIZE. A byte map indexed
 *     by chunk number (tm_chunk_map) says which tier owns a chunk, or 0 for "not ours", so the
 *     owner of any pointer is found in O(1) and foreign pointers are recognised.
 *   - A slab chunk keeps its metadata out of band: page 0 holds the chunk header and one
 *     descriptor per 64 KiB slab page; pages 1..63 hold blocks of one size class each.
 *   - An arena chunk keeps its header and bitmaps in its first units; heap blocks and huge
 *     blocks keep a sealed header just below the user pointer.
 */
#ifndef TM_TYPES_H
#define TM_TYPES_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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

/* Chunk kinds in tm_chunk_map: who owns a chunk. ARENA: a chunk cut into units (arena.c);
 * HEAP: one of the chunks of a heap span (heap.c). */
enum {
    TM_KIND_NONE = 0,
    TM_KIND_SLAB = 1,
    TM_KIND_HUGE = 2,
    TM_KIND_META = 3,
    TM_KIND_ARENA = 4,
    TM_KIND_HEAP = 5,
};
/* Set on every chunk while profiling, so frees leave the fast path (profile.c). */
#define TM_KIND_PROFILED 0x80u

/* A lock; held only on slow paths (tm_internal.h and lock.c have its operations).
 * v: 0 free, 1 held, 2 held with possible sleepers. */
typedef struct {
    _Atomic int v;
} tm_lock_t;
/* A lock no thread sleeps on (0 free, 1 held), for a lock its owner takes on a fast path and
 * another thread only rarely: with no sleepers to wake, the unlock is a plain store instead of
 * an atomic exchange. */
typedef struct {
    _Atomic int v;
} tm_spin_t;
/* What fork does to every lock: take it before, give it back in the parent, make it free in
 * the child. */
typedef enum { TM_LOCK_TAKE, TM_LOCK_GIVE, TM_LOCK_RESET } tm_lock_op_t;

/* Some fields are written under a lock (or by their owner) and read without it where a stale
 * answer is safe: the free path's page checks, a pool's peek, an arena block's start bit and
 * length. Those reads and the writes they race with are relaxed atomics: plain moves on x86,
 * defined behaviour in C11, and seen as such by ThreadSanitizer. */
#define tm_rload(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define tm_rstore(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

/* ---- options (options.c) ---------------------------------------------------------------- */
typedef struct {
    uint32_t n, v[TM_MAX_CLASSES];
} tm_sizelist_t;

#define TM_MAX_ARENAS 64      /* per-CPU arenas (and heaps) beyond this share one */
#define TM_HEAP_RECENT_MAX 16 /* heap_recent's ceiling */

/* Every TINYMALLOC_CONF key is a field here, of the same name; options.c's table gives its
 * type, default and range. Written once at start-up, then only read. */
typedef struct {
    uint32_t tiny_max, small_max;    /* the default classes' limits */
    tm_sizelist_t classes;           /* explicit class sizes (n == 0: derive them) */
    tm_sizelist_t prealloc;          /* blocks per class: none, one for all, or one per class */
    bool prefault;                   /* touch preallocated pages at start-up */
    uint32_t slab_retain;            /* free slab pages kept committed before purging */
    uint32_t slab_purge_delay;       /* ms a free slab page stays unused before purging */
    size_t slab_transfer;            /* bytes of freed blocks the transfer cache holds; 0: off */
    size_t reserve;                  /* bytes of address space reserved at a time */
    int stats;                       /* 0 off, 1 table on stderr, 2 json to stats_file */
    char stats_file[256];            /* "%p" is replaced by the pid */
    char profile[256];               /* where the allocation profile goes; empty: not profiling */
    size_t medium_max;               /* largest arena request, <= tm_arena_capacity(arena_unit) */
    size_t arena_unit;               /* bytes per bitmap bit: a power of two, 1 KiB to 64 KiB */
    uint32_t arena_retain;           /* wholly free chunks an arena keeps (purged) */
    uint32_t arena_purge_delay;      /* ms before a wholly free chunk's pages go back */
    uint32_t arena_dirty;            /* percent of chunks in use kept wholly free, committed */
    uint32_t arenas, heaps;          /* 0: one per CPU */
    size_t medium_cache;             /* bytes of freed medium blocks a thread keeps; 0: none */
    size_t medium_cache_max;         /* largest class requests round to (and it keeps) */
    size_t medium_cache_exact;       /* above that, largest block of exactly a class it keeps */
    size_t medium_cache_exact_bytes; /* ... and the bytes of such blocks a thread keeps */
    size_t medium_cache_total;       /* ... that all threads keep */
    uint32_t medium_cache_decay;     /* ms a block stays cached */
    uint32_t heap_growth;            /* percent: anticipation multiplies by this per extra miss */
    uint32_t heap_miss_threshold;    /* consecutive misses before growing by more than asked */
    uint32_t heap_decay;             /* percent of the anticipation dropped per hit */
    uint32_t heap_bound;             /* percent above the peak in use the heap may grow to */
    uint32_t heap_purge_delay;       /* ms a free block stays committed before madvise */
    uint32_t heap_recent;            /* freed blocks a heap keeps whole for their size's next */
    size_t heap_retain;              /* free heap bytes kept mapped; wholly free spans past it go */
    size_t heap_max;                 /* bytes; 0 = no limit (past it, blocks get own mappings) */
    size_t huge_threshold;           /* initial: a freed heap block this large goes back at once */
    size_t huge_threshold_max;       /* the adaptive threshold never rises past this */
    bool huge_dynamic;               /* raise it as huge blocks are freed and asked for again */
    bool purge_lazy;                 /* purge with MADV_FREE instead of MADV_DONTNEED */
    uint32_t commit_chunks;          /* reservations inaccessible, committed per chunk (2: auto) */
    bool purge_thread;               /* a background thread runs the purges that fall due */

    /* Derived at start-up from the above. */
    uint32_t nclasses;
    uint32_t class_size[TM_MAX_CLASSES];
    uint32_t class_prealloc[TM_MAX_CLASSES]; /* blocks preallocated per class */
    uint32_t slab_max;                       /* largest slab size; above goes to the arenas */
    /* The fast path's limit: slab_max, or 0 to send every request to the slow path
     * (profiling). A size_t, so that malloc compares n with it in place (no load first). */
    size_t fast_max;
} tm_options_t;

/* ---- output without malloc (stats.c) ---------------------------------------------------- */
typedef struct {
    char *buf;
    size_t len, cap;
    int fd;
} tm_out_t;

/* ---- OS layer (os.c) --------------------------------------------------------------------- */
typedef struct {
    _Atomic uint64_t mmap_calls, munmap_calls, madvise_calls, mremap_calls, mmap_failures;
    _Atomic uint64_t mapped_bytes, mapped_peak, purged_bytes;
} tm_os_stats_t;

/* ---- slab tier (slab.c) ----------------------------------------------------------------- */

/* A free block stores its link in word 0 and a check word in word 1: the link xor a
 * per-process secret. The allocator verifies the check before it follows a link, so a
 * use-after-free write cannot steer it (it aborts instead), and a block whose check matches
 * is taken to be free, which makes double frees cheap to detect. Keeping the link itself
 * plain keeps the xor off the malloc/free dependency chain, which shortens a malloc+free
 * pair (bench/micro measures it).
 * The free fast path reads word 1 only: a program often writes the first bytes of a block
 * just before freeing it, and a full-word load of them would stall on store forwarding.
 * Links are below 2^47, so a check word xor the secret has its top 17 bits clear; that tag
 * (a 1 in 2^17 chance for other data) sends the free to tm_slab_free_keyed, which tests the
 * whole check before it looks for the block on the lists. */
typedef struct tm_block {
    struct tm_block *next;
    uintptr_t check;
} tm_block_t;

struct tm_tcache;

/* Descriptor of one slab page. All fields but thread_free are written only by the owner thread,
 * or under a pool lock while the page has no owner.
 * Invariant: used & TM_USED_MASK == carved - len(free) + (1 if it is its owner's current page);
 * blocks on thread_free, or on a thread's chain of remote frees, count as used until the owner
 * collects them, and so do blocks in the owner's bins until a flush gives them back. So the current
 * page never reaches 0, and any other page at 0 is wholly free. Bit 31 (TM_FULL_BIT) marks a page
 * on its owner's full list, so the free fast path tests both cases with one signed compare. */
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
    uint8_t committed; /* pages not purged since last use */
    /* Frees from other threads, one CAS per chain: the head block's address, and in the bits
     * above TM_ADDR_BITS how many blocks hang from it, so the owner takes both at once and
     * need not walk the list to count it (a page holds at most 4096 blocks). */
    _Atomic uintptr_t thread_free;
    struct tm_page *next, *prev;
} tm_page_t; /* 64 bytes: the free path indexes descriptors with a shift */

typedef struct tm_chunk_hdr {
    tm_page_t pages[TM_PAGES_PER_CHUNK]; /* pages[0] describes the page this header is on */
} tm_chunk_hdr_t;

_Static_assert(sizeof(tm_page_t) == 64, "slab page descriptor is one cache line");

/* Per-class queues in a thread cache. */
typedef struct {
    tm_page_t *avail; /* pages that may have free blocks (not cur) */
    tm_page_t *fullq; /* pages that were found full */
    uint32_t nfull;
    uint32_t scan_skip; /* refills to skip before scanning full pages again */
} tm_classq_t;

/* The bytes of remote frees a thread gathers before it hands them to the page (slab.c). */
#define TM_REMOTE_BYTES 4096

/* A bin of the medium cache (mcache.c). */
#define TM_MCLASSES 64
typedef struct {
    tm_block_t *head;
    uint32_t count;
} tm_mbin_t;

typedef struct tm_tcache {
    tm_page_t *cur[TM_MAX_CLASSES];  /* allocation page per class, never NULL */
    tm_block_t *bin[TM_MAX_CLASSES]; /* blocks this thread freed, of any page (slab.c) */
    /* Frees the bin takes before it is full. 64-bit, as bin[] and nfree[] are: a free reaches
     * all three from one index. */
    uint64_t bin_room[TM_MAX_CLASSES];
    uint64_t nmalloc[TM_MAX_CLASSES]; /* counted by the owner, no atomics */
    uint64_t nfree[TM_MAX_CLASSES];   /* frees by this thread, local or remote */
    uint64_t flushed_malloc[TM_MAX_CLASSES], flushed_free[TM_MAX_CLASSES];
    tm_classq_t q[TM_MAX_CLASSES];
    tm_mbin_t mbin[TM_MCLASSES]; /* freed medium blocks, by medium class */
    size_t mcache_bytes;         /* bytes in mbin, at most medium_cache + mcache_big */
    _Atomic size_t mcache_big;   /* bytes of its blocks above medium_cache_max (mcache.c) */
    size_t mcache_credit;        /* bytes of medium_cache_total held, >= mcache_bytes */
    tm_spin_t mlock;             /* guards mbin and the mcache_ fields against other drainers */
    _Atomic uint8_t mbusy;       /* the owner works on its bins without mlock (mcache.c) */
    _Atomic uint8_t mstop;       /* a drainer holds mlock: the owner must take it too */
    /* The owner may take the medium cache's fast paths (mcache.c): a thread's own cache (not
     * the empty or the fallback one) where owners go in without mlock. Set once, when the
     * cache is made: one test on those paths instead of three. */
    bool mfast;
    struct tm_tcache *next_live, *prev_live; /* list of live caches, for statistics */
    struct tm_tcache *next_free;
    /* Frees to another thread's page, not yet on its thread_free (slab.c): head..tail, of
     * rcount blocks, all of page rpage (so of one size); rhead NULL when there are none. */
    tm_page_t *rpage;
    tm_block_t *rhead, *rtail;
    uint32_t rcount;
    uint32_t refills; /* slab refills: every 64th adds all classes' counts (stats.c) */
    /* Blocks of other threads' pages freed here past a full bin, gathered per class into a
     * chain for the transfer cache (slab.c): xcount blocks from xhead. */
    tm_block_t *xhead[TM_MAX_CLASSES];
    uint16_t xcount[TM_MAX_CLASSES];
    bool is_fallback;
} tm_tcache_t;

/* ---- arena chunks (arena.c; their header is here for the medium free's inline lookup) ---- */
#define TM_ARENA_MAX_UNITS (TM_CHUNK_SIZE / 1024) /* the smallest unit is 1 KiB */
#define TM_ARENA_WORDS (TM_ARENA_MAX_UNITS / 64)
#define TM_FITS 7 /* fit[] keeps a bound for runs of 1, 2, 4, ... 64 units or more */

typedef struct tm_achunk {
    uintptr_t seal; /* tm_seal of its address and arena: trusted only when it matches */
    uint32_t arena; /* owner */
    uint32_t first; /* first unit after the metadata */
    /* The fields above are read by every free, from any thread and without the lock; those
     * below are written by every lock holder. Apart, a free does not pull the line its arena's
     * current holder is writing. */
    _Alignas(64) uint32_t free_units;
    uint32_t max_run;      /* no free run is longer (a bound, kept by run_free and find_in) */
    uint64_t empty_since;  /* ms when it became wholly free; 0 while in use */
    uint64_t hasty_ms;     /* when it was purged at once, past the dirty share; 0: it was not */
    uint64_t age_ms;       /* the last pass over its free runs (or the free that needs one) */
    uint8_t purged;        /* wholly free and given back */
    uint8_t purging;       /* its pages are going back now: no block may be made in it */
    uint16_t runs_purging; /* purges of free runs under way (their units held as used) */
    struct tm_achunk *next, *prev;
    /* fit[b]: no free run of 2^b units or more starts below it. A search for n units starts
     * at fit[fit_of(n)] instead of at the lowest free unit, past the short runs that a
     * fragmented chunk keeps low: before, medium-mt's first fit scanned most of each chunk's
     * words for every block of 32 KiB and up. Never decreasing in b: a run of 2^(b + 1) units
     * is one of 2^b. */
    uint16_t fit[TM_FITS];
    uint64_t used[TM_ARENA_WORDS];
    uint64_t start[TM_ARENA_WORDS];
    /* Set where a free left its check word at the start of the run it freed and no block has
     * taken the unit since: the next block made there tests the word, so a write after free
     * into a freed block's first bytes is caught, as the slabs catch it in theirs. A bit is
     * cleared only with its word (drop_marks): a block made over the unit, or a purge (a lazy
     * one, or one of locked pages, keeps the contents), would leave a word that realloc and
     * the medium cache's free take for a freed block's once a block starts there again. */
    uint64_t freed[TM_ARENA_WORDS];
    uint64_t dirty[TM_ARENA_WORDS];   /* freed, and not purged since: its pages may be committed */
    uint64_t aged[TM_ARENA_WORDS];    /* free since the last pass: the next purges it */
    uint16_t len[TM_ARENA_MAX_UNITS]; /* units in the block starting here, while it is live */
} tm_achunk_t;

/* ---- huge blocks (huge.c) and statistics (stats.c) --------------------------------------- */
typedef struct {
    _Atomic uint64_t nalloc, nfree, cur_bytes, peak_bytes, nremap;
} tm_huge_stats_t;

typedef struct {
    _Atomic uint64_t nmalloc, nfree, pages, peak_live;
} tm_class_stats_t;

#define TM_PROF_TRAILER 32 /* bytes added to every request while profiling (profile.c) */

/* ---- shards and their purge clock (clock.c) -------------------------------------------------
 * The arena and heap tiers are sharded per CPU: a thread works in the shard of the CPU it runs
 * on, or stays in the one it last allocated from while no other thread has allocated there
 * since (tm_shard_home); a new thread takes one that an exited thread left (tm_shard_adopt).
 * Each shard (tm_arena_t, tm_heap_t) begins with a tm_shard_t: its lock, the thread that last
 * allocated there (or TM_SHARD_LEFT), and when its delayed maintenance (purging what stayed
 * free past the tier's delay) is next due.
 * A thread that freed memory and moved to another CPU would leave the first shard's purge
 * waiting for an operation there that may never come. So each tier's clock also keeps the
 * earliest due time of all its shards: every operation reads it, and the one that finds it
 * past runs the other shards' due maintenance. */
typedef struct {
    tm_lock_t lock;         /* guards the whole shard */
    uint64_t due_ms;        /* its maintenance is due at this time; 0: nothing waits (under lock) */
    _Atomic uintptr_t last; /* `self` (tm_shard_home) of the thread that last allocated here */
} tm_shard_t;

/* System calls that a shard's maintenance decided on under the shard's lock and that run after
 * it is released: no lock is held across madvise or munmap, so a thread preempted in one
 * stalls no other. A PURGE item's object (an arena chunk, a heap block) is out of use while its
 * pages go back, so no thread can allocate from it; the tier's purged() hook, under the shard's
 * lock again, puts it back. A RELEASE item is a range already unlinked from its shard, for the
 * chunk layer. */
#define TM_DEFER_MAX 8
enum { TM_DEFER_PURGE = 1, TM_DEFER_RELEASE = 2, TM_DEFER_RELEASE_DIRTY = 3 };
typedef struct {
    unsigned n;
    struct {
        tm_shard_t *shard;
        void *obj;
        void *p;
        size_t size;
        unsigned op;
    } v[TM_DEFER_MAX];
} tm_defer_t;

/* Under s's lock: the due work, into d (which it stops filling when full, leaving s due at
 * once); sets s's next due time. */
typedef void (*tm_maintain_fn)(tm_shard_t *s, uint64_t now, tm_defer_t *d);
/* Under s's lock, after a PURGE item ran: obj is back in use, its pages [p, p + bytes) purged
 * (zero: and they read zero now). */
typedef void (*tm_purged_fn)(tm_shard_t *s, void *obj, void *p, size_t bytes, bool zero);

typedef struct {
    /* Invariant: no shard's due_ms is earlier than this (0: none is due). */
    _Atomic uint64_t due_ms;
    tm_shard_t *first; /* shards[i] at (char *)first + i * stride */
    size_t stride;
    unsigned n;
    const uint32_t *delay_ms; /* the tier's purge delay option */
    tm_maintain_fn maintain;
    tm_purged_fn purged;
} tm_clock_t;

/* ---- tier totals for statistics (arena.c, heap.c) ---------------------------------------- */
typedef struct {
    uint64_t nalloc, nfree, chunks, chunks_peak, used_bytes, purged_chunks, released_chunks;
    uint64_t dirty_chunks, churn_chunks; /* wholly free and committed; dirty_extra summed */
    uint64_t purged_run_bytes;           /* purged from free runs of chunks in use */
} tm_arena_totals_t;

typedef struct {
    uint64_t heaps, max_size, size, peak_size, in_use, peak_in_use, blocks, free_blocks;
    uint64_t consecutive_misses, misses, hits, grows, purged_bytes, unmapped_bytes, ahead;
    uint64_t nalloc, nfree, huge_threshold;
} tm_heap_totals_t;

#endif
