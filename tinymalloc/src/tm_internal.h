/* tinymalloc internals: the functions each module offers the others, and the fast paths that
 * are inlined into the API (the slab tier's malloc and free). The types are in tm_types.h. */
#ifndef TM_INTERNAL_H
#define TM_INTERNAL_H

#include "tm_types.h"

#include <sys/rseq.h>
#include <sys/single_threaded.h>

/* Everything declared below is internal: hidden, so the compiler addresses globals directly
 * (one RIP-relative operand) instead of through the GOT (a load, then the access). */
#pragma GCC visibility push(hidden)

static inline size_t tm_align_up(size_t n, size_t a) { return (n + a - 1) & ~(a - 1); }
/* The earlier of two due times, where 0 means none. */
static inline uint64_t tm_earliest(uint64_t a, uint64_t b) {
    return !a ? b : !b ? a : a < b ? a : b;
}

/* ---- locks (lock.c): spin a little, then sleep on a futex; held only on slow paths, and
 * never across a system call (tm_defer_t) ----------------------------------------------------- */
void tm_lock_slow(tm_lock_t *l);
void tm_lock_wake(tm_lock_t *l);
/* While the process has one thread, a lock is taken and let go of with plain stores: nobody can
 * wait for it, and the locked instructions cost an uncontended arena or heap operation a
 * quarter of its time. glibc's __libc_single_threaded says so (its own malloc reads it for the
 * same purpose): glibc clears it before a second thread starts and never sets it again in the
 * process, so a lock taken with an atomic is never let go of with a plain store, and one taken
 * with a plain store by a thread that then started another (the purger) is let go of with the
 * exchange, which wakes any waiter. A program that starts threads with a raw clone() breaks
 * glibc's malloc in the same way. */
static inline bool tm_single_thread(void) { return __libc_single_threaded; }
static inline void tm_lock(tm_lock_t *l) {
    if (tm_single_thread()) {
        atomic_store_explicit(&l->v, 1, memory_order_relaxed);
        return;
    }
    int unheld = 0;
    if (tm_likely(atomic_compare_exchange_strong_explicit(&l->v, &unheld, 1, memory_order_acquire,
                                                          memory_order_relaxed)))
        return;
    tm_lock_slow(l);
}
static inline bool tm_trylock(tm_lock_t *l) {
    if (tm_single_thread()) {
        if (atomic_load_explicit(&l->v, memory_order_relaxed)) return false;
        atomic_store_explicit(&l->v, 1, memory_order_relaxed);
        return true;
    }
    int unheld = 0;
    return atomic_load_explicit(&l->v, memory_order_relaxed) == 0 &&
           atomic_compare_exchange_strong_explicit(&l->v, &unheld, 1, memory_order_acquire,
                                                   memory_order_relaxed);
}
static inline void tm_unlock(tm_lock_t *l) {
    if (tm_single_thread()) {
        atomic_store_explicit(&l->v, 0, memory_order_relaxed);
        return;
    }
    if (tm_unlikely(atomic_exchange_explicit(&l->v, 0, memory_order_release) == 2)) tm_lock_wake(l);
}
/* After fork() only the forking thread exists: every lock is made free again. */
static inline void tm_lock_reset(tm_lock_t *l) {
    atomic_store_explicit(&l->v, 0, memory_order_relaxed);
}
void tm_lock_fork(tm_lock_t *l, tm_lock_op_t op);

void tm_spin_slow(tm_spin_t *l); /* spins, yielding the CPU after a while */
static inline void tm_spin_lock(tm_spin_t *l) {
    int unheld = 0;
    if (tm_likely(atomic_compare_exchange_strong_explicit(&l->v, &unheld, 1, memory_order_acquire,
                                                          memory_order_relaxed)))
        return;
    tm_spin_slow(l);
}
static inline void tm_spin_unlock(tm_spin_t *l) {
    atomic_store_explicit(&l->v, 0, memory_order_release);
}
void tm_spin_fork(tm_spin_t *l, tm_lock_op_t op);

/* Fork holds every lock of the allocator (init.c). Each module that owns locks applies op to
 * each of them in its own lock order; init.c calls the modules in the global order:
 * tcache, mcache, slab, arena, heap, chunk. */
void tm_tcache_locks(tm_lock_op_t op);
void tm_slab_locks(tm_lock_op_t op);
void tm_arena_locks(tm_lock_op_t op);
void tm_heap_locks(tm_lock_op_t op);
void tm_chunk_locks(tm_lock_op_t op);

/* ---- counters with a peak ------------------------------------------------------------------
 * Statistics counters are relaxed atomics: they order nothing, they only count. */
static inline void tm_peak_raise(_Atomic uint64_t *peak, uint64_t v) {
    uint64_t seen = atomic_load_explicit(peak, memory_order_relaxed);
    while (v > seen && !atomic_compare_exchange_weak_explicit(peak, &seen, v, memory_order_relaxed,
                                                              memory_order_relaxed)) {
    }
}
/* Adds delta to a gauge and raises its peak; returns the gauge's new value. */
static inline uint64_t tm_gauge_add(_Atomic uint64_t *cur, _Atomic uint64_t *peak, int64_t delta) {
    uint64_t now =
        atomic_fetch_add_explicit(cur, (uint64_t)delta, memory_order_relaxed) + (uint64_t)delta;
    if (delta > 0) tm_peak_raise(peak, now);
    return now;
}

/* ---- options (options.c) ---------------------------------------------------------------- */
extern tm_options_t tm_opt;
void tm_options_init(void);

/* ---- output without malloc (stats.c) ---------------------------------------------------- */
void tm_out_str(tm_out_t *o, const char *s);
void tm_out_u64(tm_out_t *o, uint64_t v, int width);
void tm_out_hex(tm_out_t *o, uintptr_t v);
void tm_out_flush(tm_out_t *o);
void tm_message(const char *a, const char *b, const char *c); /* one line on stderr */
__attribute__((noreturn, cold)) void tm_fatal(const char *func, const char *what, const void *p);

/* ---- OS layer (os.c): the only place that calls mmap/munmap/madvise/mremap --------------- */
extern tm_os_stats_t tm_os_stats;

void *tm_os_map(size_t size);                           /* read-write, lazily committed */
void *tm_os_map_aligned(size_t size, size_t align);     /* align: power of two >= page */
void *tm_os_reserve_aligned(size_t size, size_t align); /* inaccessible until committed */
bool tm_os_commit(void *p, size_t size);                /* reserved -> read-write */
bool tm_os_read_only_zero(void *p, size_t size);        /* -> zeros, read-only, charged to nobody */
bool tm_os_overcommit_strict(void);                     /* vm.overcommit_memory is 2 */
void tm_os_unmap(void *p, size_t size);
bool tm_os_purge(void *p, size_t size);      /* give pages back, keep the range; true: zero */
bool tm_os_purge_zero(void *p, size_t size); /* same, and true: the range reads zero after */
void tm_os_populate(void *p, size_t size);
bool tm_os_barrier_init(void); /* false: tm_os_barrier is not available here */
void tm_os_barrier(void);      /* every thread of the process has run a full barrier */
void *tm_os_remap(void *p, size_t old_size, size_t new_size, void *fixed);

/* Monotonic milliseconds from the vDSO clock (coarse: a few ms of resolution is enough). */
uint64_t tm_now_ms(void);
/* The clock as this thread last read it, read again on every TM_LAZY_CLOCK-th call: for the
 * stamps of freed memory (when a block was freed, cached or split off), where a read at each
 * call was a tenth of a heap block's malloc and free. A stamp may be early, never late, so
 * the memory seems to have waited longer than it has and goes back sooner: a thread that calls
 * often is a few calls early, one that calls seldom trades the purge delay for no clock read. */
#define TM_LAZY_CLOCK 16
extern __thread uint64_t tm_lazy_ms __attribute__((tls_model("initial-exec")));
extern __thread uint32_t tm_lazy_calls __attribute__((tls_model("initial-exec")));
static inline uint64_t tm_now_ms_lazy(void) {
    if (tm_lazy_calls++ % TM_LAZY_CLOCK == 0) tm_lazy_ms = tm_now_ms();
    return tm_lazy_ms;
}
/* The same, read now: for a stamp that sets a due time where none was, which the purger
 * would otherwise act on at once after a thread's idle spell. */
static inline uint64_t tm_now_ms_fresh(void) {
    tm_lazy_calls = 1;
    return tm_lazy_ms = tm_now_ms();
}
unsigned tm_cpu_index_slow(void); /* sched_getcpu: without glibc's rseq area */

/* The CPU this thread runs on (0 when unknown). glibc (2.35 on) registers each thread's rseq
 * area, whose cpu_id the kernel keeps current: two loads instead of a call to sched_getcpu,
 * which reads the same field, on every medium allocation. */
static inline unsigned tm_cpu_index(void) {
    if (tm_likely(__rseq_size != 0)) {
        const struct rseq *r =
            (const struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
        int32_t c = (int32_t)__atomic_load_n(&r->cpu_id, __ATOMIC_RELAXED);
        if (tm_likely(c >= 0)) return (unsigned)c;
    }
    return tm_cpu_index_slow();
}
unsigned tm_ncpus(void);
/* The shard (arena, heap) of the CPU this thread runs on, of n: with one shard per CPU (the
 * default) no division, tens of cycles, on the way in. */
static inline unsigned tm_cpu_shard(unsigned n) {
    unsigned cpu = tm_cpu_index();
    return tm_likely(cpu < n) ? cpu : cpu % n;
}

/* The shard a thread allocates from, of n, given the one it last allocated from, s. It stays there
 * while no other thread has allocated there since, wherever it runs: following the CPU at every
 * request left a thread that the scheduler moves with blocks, and a dirty chunk, in every CPU's
 * arena and heap (realloc-grow moved between two CPUs every 20 ms peaked at 13.3-13.6 MB,
 * against 8.4-8.6 with one of each; the moved-thread workload, 0.666x, in
 * results/20261204-quick-shards-final). Otherwise the CPU's: threads running at once on different
 * CPUs do not share a shard. `self` tells threads apart (the address of a thread-local variable).
 */
static inline unsigned tm_shard_home(int last, const tm_shard_t *s, unsigned n, uintptr_t self) {
    if (atomic_load_explicit(&s->last, memory_order_relaxed) == self) return (unsigned)last;
    return tm_cpu_shard(n);
}

/* A shard whose last thread exited has TM_SHARD_LEFT as its `last` (no thread-local address
 * is odd). A thread's first request in the arena tier takes such a shard, when there is one,
 * before its CPU's (tm_shard_adopt, clock.c), as glibc hands a new thread an exited thread's
 * arena: a program whose threads come and go keeps reusing the blocks they freed. Each new
 * thread of thread-phases on one thread took its CPU's heap, and the program's two CPUs'
 * heaps each grew to the peak (96 MB against glibc's 60); heaps are now shared until threads
 * contend (heap.c), so only the arenas adopt. */
#define TM_SHARD_LEFT ((uintptr_t)1)

/* Under s's lock: the calling thread allocated there. The line is the lock's: written only
 * when it changes hands, so that the check above reads a line that stays shared. */
static inline void tm_shard_mark(tm_shard_t *s, uintptr_t self) {
    if (atomic_load_explicit(&s->last, memory_order_relaxed) != self)
        atomic_store_explicit(&s->last, self, memory_order_relaxed);
}

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
void tm_chunk_init(void);
bool tm_chunk_map_commit(uintptr_t start, size_t size); /* before marking a range (commit_chunks) */
void tm_chunk_mark(uintptr_t start, size_t size, unsigned kind);
/* One chunk, or NULL. Its first `clear` bytes read zero; past them, a chunk that another tier
 * released dirty may hold old data (then *dirty is set), unless clear is TM_CHUNK_SIZE: a
 * chunk that reads zero throughout. clear is at least 16 (the dirty list's words). */
void *tm_chunk_alloc(unsigned kind, size_t clear, bool *dirty);
void *tm_meta_alloc(size_t size); /* zeroed metadata that is never freed (thread caches) */

void *tm_chunk_alloc_span(size_t size, unsigned kind); /* size: a multiple of TM_CHUNK_SIZE */
/* dirty: its pages may be committed (kept a while for the slabs and arenas), else purged and kept,
 * or unmapped. */
void tm_chunk_release(void *p, size_t size, bool dirty);
extern _Atomic uint64_t tm_dirty_due; /* when dirty chunks are next purged; 0: none (chunk.c) */
static inline uint64_t tm_chunk_due(void) {
    return atomic_load_explicit(&tm_dirty_due, memory_order_relaxed);
}
uint64_t tm_chunk_background(uint64_t now); /* purges those due; returns the next due time */
size_t tm_chunk_dirty_bytes(void);
/* A mapping of its own (huge blocks, spans past a region); when the address space is full,
 * retried after the chunk layer unmaps the space it holds unused. */
void *tm_chunk_map_aligned(size_t size, size_t align);

/* ---- free blocks and seals --------------------------------------------------------------- */
extern uintptr_t tm_secret;

static inline void tm_block_link(tm_block_t *b, tm_block_t *next) {
    b->next = next;
    b->check = (uintptr_t)next ^ tm_secret;
}
static inline bool tm_block_is_free(const tm_block_t *b) {
    return b->check == ((uintptr_t)b->next ^ tm_secret);
}
/* A slab block freed by another thread (slab.c) has its check word xor TM_PENDING_KEY: on a
 * thread's chain of remote frees, on its page's thread_free, and still on the free list when
 * the owner took thread_free whole (page_collect), so a free of it finds it out however the
 * free is routed, and a malloc accepts either key. */
#define TM_PENDING_KEY 1
static inline void tm_block_link_pending(tm_block_t *b, tm_block_t *next) {
    b->next = next;
    b->check = (uintptr_t)next ^ tm_secret ^ TM_PENDING_KEY;
}
static inline bool tm_block_is_pending(const tm_block_t *b) {
    return b->check == ((uintptr_t)b->next ^ tm_secret ^ TM_PENDING_KEY);
}
/* Free or pending. */
static inline bool tm_block_is_freed(const tm_block_t *b) {
    return ((b->check ^ (uintptr_t)b->next ^ tm_secret) & ~(uintptr_t)TM_PENDING_KEY) == 0;
}
static inline bool tm_block_may_be_free(const tm_block_t *b) {
    return ((b->check ^ tm_secret) >> TM_ADDR_BITS) == 0;
}
__attribute__((noreturn)) void tm_slab_corrupt(const tm_block_t *b);

/* The seal of an out-of-line header (arena chunk, heap block and span, huge block, profile
 * trailer): a keyed hash of where the header is and of two words of what it says. A header is
 * trusted only while its seal matches, so a stray or forged pointer, or a header the program
 * overwrote, is caught rather than followed; clearing the seal retires the header. */
static inline uintptr_t tm_seal(const void *at, uint64_t a, uint64_t b) {
    uint64_t x = (tm_secret ^ (uintptr_t)at ^ a) * 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 32) ^ b) * 0xbf58476d1ce4e5b9ULL;
    return x ^ (x >> 31);
}

/* ---- slab tier (slab.c) ----------------------------------------------------------------- */
static inline uint32_t tm_page_carved(const tm_page_t *pg) {
    return pg->block_size ? pg->carved_end / pg->block_size : 0;
}

static inline uintptr_t tm_page_start(const tm_page_t *pg) {
    uintptr_t chunk = (uintptr_t)pg & ~TM_CHUNK_MASK;
    size_t idx = (size_t)(pg - ((tm_chunk_hdr_t *)chunk)->pages);
    return chunk + (idx << TM_PAGE_SHIFT);
}

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
void tm_slab_remote_flush(tm_tcache_t *tc); /* this thread's gathered remote frees, to their page */
void tm_slab_abandon_all(tm_tcache_t *tc);
int tm_slab_aligned_class(size_t n, size_t align); /* -1 when no class fits */
uint64_t tm_slab_background(uint64_t now);         /* the purger's pass; -> next due (0: none) */
extern _Atomic uint64_t tm_xfer_due; /* the transfer cache's next decay pass (0: none) */
static inline uint64_t tm_slab_xfer_due(void) {
    return atomic_load_explicit(&tm_xfer_due, memory_order_relaxed);
}
void tm_slab_xfer_decay(uint64_t now); /* that pass, when due */
size_t tm_slab_xfer_bytes(void);       /* bytes the transfer cache holds */
void tm_slab_trim(void);               /* malloc_trim's part in each tier */

extern uint32_t tm_bin_max[TM_MAX_CLASSES];
/* Never returns; declared as returning, so that malloc reaches it by a tail call and keeps no
 * stack frame on its fast path. */
void *tm_slab_bin_corrupt(const tm_block_t *b);

/* A malloc takes the block this thread freed last in the class, whatever its page, and only
 * then the current page's: a program that frees and allocates at random reuses blocks still in
 * the cache, instead of switching pages every few blocks (thread-phases: 4.5 million page
 * switches in 12.5 million mallocs without the bins). The bin path prefetches the next block
 * only when there is one: a chain from the transfer cache arrives from another CPU's cache, a
 * miss per block without it (prodcons at 8+8 threads: 12 % more time), while in a malloc/free
 * pair the link is NULL, whose prefetch (a page walk that finds nothing) cost size-classes 4 %
 * of its time. */
static inline void *tm_slab_alloc(tm_tcache_t *tc, size_t cls) {
    tm_block_t *h = tc->bin[cls];
    if (tm_likely(h != NULL)) {
        tm_block_t *next = h->next;
        if (tm_unlikely(!tm_block_is_freed(h))) return tm_slab_bin_corrupt(h); /* either key */
        tc->bin[cls] = next;
        if (next != NULL) __builtin_prefetch(next, 1);
        tc->bin_room[cls]++;
        h->check = 0;
        tc->nmalloc[cls]++;
        return h;
    }
    tm_page_t *pg = tc->cur[cls];
    tm_block_t *b = pg->free;
    if (tm_likely(b != NULL)) {
        tm_block_t *next = b->next;
        if (tm_unlikely(!tm_block_is_freed(b))) tm_slab_corrupt(b); /* either key */
        pg->free = next;
        __builtin_prefetch(next, 1); /* the class's next malloc reads its link, then writes it */
        b->check = 0;
        pg->used++;
        tc->nmalloc[cls]++;
        return b;
    }
    return tm_slab_alloc_slow(tc, cls);
}

/* The descriptor of the slab page that address a falls in (a in a slab chunk). */
static inline tm_page_t *tm_slab_page_at(uintptr_t a) {
    tm_chunk_hdr_t *ch = (tm_chunk_hdr_t *)(a & ~TM_CHUNK_MASK);
    return &ch->pages[(a & TM_CHUNK_MASK) >> TM_PAGE_SHIFT];
}
/* Whether a is the start of a block carved from page pg. The divisibility test is exact for
 * off < 2^32 (Lemire et al., "Faster remainder by direct computation"). */
static inline bool tm_slab_page_holds(const tm_page_t *pg, uintptr_t a) {
    uint64_t off = a & (TM_PAGE_SIZE - 1);
    uint64_t div = tm_rload(pg->divisor);
    return !(off * div >= div || off >= tm_rload(pg->carved_end));
}
/* The page owning a slab pointer, or NULL when the pointer is not the start of one of its
 * blocks. */
static inline tm_page_t *tm_slab_page_of(uintptr_t a) {
    tm_page_t *pg = tm_slab_page_at(a);
    return tm_likely(tm_slab_page_holds(pg, a)) ? pg : NULL;
}

/* An owner's free onto the block's page list: the path of a free that finds its bin full, and
 * of a bin's blocks when the bin is emptied. */
static inline void tm_slab_free_to_page(tm_tcache_t *tc, tm_page_t *pg, tm_block_t *b) {
    tm_block_link(b, pg->free);
    pg->free = b;
    if (tm_unlikely((int32_t)--pg->used <= 0)) return tm_slab_free_slow(tc, pg, b);
}

/* Every slow path is a tail call, so the fast path saves no registers. */
static inline void tm_slab_free(tm_page_t *pg, tm_block_t *b) {
    tm_tcache_t *tc = tm_tc;
    if (tm_unlikely(tm_rload(pg->owner) != tc)) return tm_slab_free_remote(tc, pg, b);
    if (tm_unlikely(tm_block_may_be_free(b))) return tm_slab_free_keyed(tc, pg, b);
    unsigned cls = pg->cls;
    tc->nfree[cls]++;
    if (tm_likely(tc->bin_room[cls] != 0)) {
        tc->bin_room[cls]--;
        tm_block_link(b, tc->bin[cls]);
        tc->bin[cls] = b;
        return;
    }
    /* A full bin: the block goes back on its page, so a burst of frees costs no more than
     * before the bins, and the bin keeps the blocks freed first until mallocs take them. */
    tm_slab_free_to_page(tc, pg, b);
}

/* ---- thread caches (tcache.c) ----------------------------------------------------------- */
tm_tcache_t *tm_tcache_get_slow(void); /* a usable cache for this thread, creating it */
void tm_tcache_init(void);
tm_tcache_t *tm_tcache_live_first(void);
unsigned tm_tcache_threads(void); /* threads that have had a cache, this one included */
unsigned tm_tcache_live(void);    /* threads whose cache is live now */
void tm_tcache_fork_child(void);
extern tm_lock_t tm_tcache_lock;
extern tm_tcache_t tm_tcache_fallback;
extern tm_lock_t tm_fallback_lock;

/* ---- huge blocks (huge.c) --------------------------------------------------------------- */
void *tm_huge_alloc(size_t n, size_t align); /* a fresh mapping: zero-filled */
void tm_huge_free(void *p, const char *func);
size_t tm_huge_usable(const void *p, const char *func);
void *tm_huge_realloc(void *p, size_t n);
extern tm_huge_stats_t tm_huge_stats;

/* ---- statistics (stats.c) --------------------------------------------------------------- */
extern tm_class_stats_t tm_class_stats[TM_MAX_CLASSES];
void tm_stats_flush(tm_tcache_t *tc);
void tm_stats_flush_class(tm_tcache_t *tc, unsigned cls); /* past TM_STATS_BATCH only */
#define TM_STATS_BATCH 256
void tm_stats_init(void);
int tm_open_pid_path(const char *pattern); /* "%p" -> pid; an fd, or -1 after a message */

/* ---- allocation profile (profile.c) ----------------------------------------------------- */
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

/* ---- purge clocks of the sharded tiers (clock.c; tm_clock_t in tm_types.h) --------------- */
/* The clock of a tier's n shards, shards[i] at (char *)first + i * stride. */
void tm_clock_init(tm_clock_t *c, tm_shard_t *first, size_t stride, unsigned n,
                   const uint32_t *delay_ms, tm_maintain_fn maintain, tm_purged_fn purged);
/* Under s's lock: s's maintenance is next due at due (0: never). */
void tm_clock_set(tm_clock_t *c, tm_shard_t *s, uint64_t due);
/* Under s's lock: s's maintenance is due at due (> 0) at the latest. */
static inline void tm_clock_lower(tm_clock_t *c, tm_shard_t *s, uint64_t due) {
    if (s->due_ms == 0 || due < s->due_ms) tm_clock_set(c, s, due);
}
void tm_clock_others(tm_clock_t *c, tm_shard_t *s, uint64_t due, uint64_t now, tm_defer_t *d);

/* A thread that has not read the clock for its call consults the purge clocks on one call in
 * TM_CLOCK_TICKS only: a clock read costs a medium or large call about a tenth of its time,
 * while maintenance past due (hundreds of ms of delay) can wait a few calls. */
#define TM_CLOCK_TICKS 8
extern __thread uint8_t tm_clock_skip __attribute__((tls_model("initial-exec")));
static inline bool tm_clock_skipped(void) {
    if (tm_clock_skip) {
        tm_clock_skip--;
        return true;
    }
    tm_clock_skip = TM_CLOCK_TICKS - 1;
    return false;
}

/* Under s's lock, at each allocation and free of the shard; now is 0 when not read yet. The
 * system calls the maintenance decides on go into d: the caller runs them (tm_defer_run) once
 * it has released the lock. A delay of 0 (purge at once) reads the clock every time. */
static inline void tm_clock_tick(tm_clock_t *c, tm_shard_t *s, uint64_t now, tm_defer_t *d) {
    uint64_t due = atomic_load_explicit(&c->due_ms, memory_order_relaxed);
    if (s->due_ms == 0 && due == 0) return;
    if (!now) {
        if (*c->delay_ms && tm_clock_skipped()) return;
        now = tm_now_ms();
    }
    if (s->due_ms && now >= s->due_ms) c->maintain(s, now, d);
    if (due && now >= due) tm_clock_others(c, s, due, now, d);
}

static inline bool tm_defer_full(const tm_defer_t *d) { return d->n == TM_DEFER_MAX; }
/* The caller has checked that d is not full. */
static inline void tm_defer_add(tm_defer_t *d, tm_shard_t *s, unsigned op, void *obj, void *p,
                                size_t size) {
    d->v[d->n].shard = s;
    d->v[d->n].op = op;
    d->v[d->n].obj = obj;
    d->v[d->n].p = p;
    d->v[d->n].size = size;
    d->n++;
}
/* Without any lock held: makes the system calls in d, and hands purged objects back. */
void tm_defer_run(tm_clock_t *c, tm_defer_t *d);
/* malloc_trim of a tier: all its due-later work now. No lock held. */
void tm_clock_trim(tm_clock_t *c);
uint64_t tm_clock_run(tm_clock_t *c, uint64_t now); /* the purger's pass; -> next due */
/* The shard of c's tier for a thread's first request there: one an exited thread left
 * (claimed for self), else its CPU's. */
unsigned tm_shard_adopt(tm_clock_t *c, uintptr_t self);
/* At a thread's exit: the shard of c's tier it last allocated from is left, if no other
 * thread has allocated there since. */
void tm_shard_leave(tm_clock_t *c, int last, uintptr_t self);
static inline uint64_t tm_clock_due(const tm_clock_t *c) {
    return atomic_load_explicit(&c->due_ms, memory_order_relaxed);
}

/* ---- the purger (purger.c): a background thread for the purges that fall due -------------
 * A tier that makes work due where none was sets tm_purger_wanted; the thread, once out of
 * every lock, polls it (tm_purger_poll) and starts or wakes the purger. */
extern __thread bool tm_purger_wanted __attribute__((tls_model("initial-exec")));
void tm_purger_wake(void);
void tm_purger_kick(void); /* no thread with a cache is left: the purger leaves */
enum { TM_PURGER_NONE = 0, TM_PURGER_RUNNING, TM_PURGER_FAILED };
extern _Atomic int tm_purger_state;
/* Delayed work runs on time, whether or not a call comes. */
static inline bool tm_purger_running(void) {
    return atomic_load_explicit(&tm_purger_state, memory_order_relaxed) == TM_PURGER_RUNNING;
}
void tm_purger_inline_due(uint64_t due);
static inline void tm_purger_poll(void) {
    if (tm_unlikely(tm_purger_wanted)) tm_purger_wake();
}
/* Lowers the due time *due to t (not 0; a *due of 0 counts as never): one load when it is
 * already earlier. Work due where none was wants the purger. */
static inline void tm_due_lower(_Atomic uint64_t *due, uint64_t t) {
    uint64_t cur = atomic_load_explicit(due, memory_order_relaxed);
    if (tm_likely(cur != 0 && t >= cur)) return; /* the common case, laid out as the straight way */
    while ((cur == 0 || t < cur) && !atomic_compare_exchange_weak_explicit(
                                        due, &cur, t, memory_order_relaxed, memory_order_relaxed)) {
    }
    if (cur == 0) tm_purger_wanted = true;
}
void tm_purger_fork_child(void);

/* ---- arena tier (arena.c) --------------------------------------------------------------- */
void tm_arena_init(void);
size_t tm_arena_capacity(size_t unit); /* the largest block one chunk holds at this unit */
void *tm_arena_alloc(size_t n);        /* unit aligned; NULL (errno ENOMEM) on failure */
void tm_arena_free(void *p, const char *func);
/* The same for a block that tm_arena_usable took for a live block's start on this thread (its
 * chunk's seal is not checked again: the chunk cannot leave while the block lives; the start
 * bit is, under the lock), which the program freed at `since` (ms; 0: now) and a cache may
 * have held until now: a chunk it empties counts as free since then. */
void tm_arena_free_valid(void *p, const char *func, uint64_t since);
uint64_t tm_arena_background(uint64_t now); /* the purger's pass; -> next due (0: none) */
extern tm_clock_t tm_arena_clock; /* due: a wholly free chunk waits to be purged or released */
static inline uint64_t tm_arena_due(void) { return tm_clock_due(&tm_arena_clock); }
extern unsigned tm_arena_shift; /* log2 of arena_unit */
extern unsigned tm_narenas;

static inline uintptr_t tm_arena_seal_of(const tm_achunk_t *c) {
    return tm_seal(c, TM_KIND_ARENA, c->arena);
}
/* The chunk and unit of an arena pointer; fatal unless p is the start of a unit of a sealed
 * chunk, past its metadata. */
static inline __attribute__((always_inline)) tm_achunk_t *
tm_arena_chunk_of(const void *p, unsigned *unit, const char *func) {
    uintptr_t a = (uintptr_t)p;
    tm_achunk_t *c = (tm_achunk_t *)(a & ~TM_CHUNK_MASK);
    size_t off = a & TM_CHUNK_MASK;
    if ((off & ((1UL << tm_arena_shift) - 1)) || c->seal != tm_arena_seal_of(c) ||
        c->arena >= tm_narenas)
        tm_fatal(func, "invalid pointer", p);
    *unit = (unsigned)(off >> tm_arena_shift);
    if (*unit < c->first) tm_fatal(func, "invalid pointer", p);
    return c;
}
static inline bool tm_arena_is_start(const tm_achunk_t *c, unsigned i) {
    return (tm_rload(c->start[i / 64]) >> (i % 64)) & 1;
}
__attribute__((noreturn)) void tm_arena_not_live(const tm_achunk_t *c, unsigned i, const void *p,
                                                 const char *func);
/* Without the lock: the caller owns the live block, whose start bit and length stay put. For
 * a pointer that is not a live block the answer is a fatal error (or, racing with other
 * threads' changes to the same words, possibly a wrong one; never a write). Inline, so that the
 * medium free validates its block without a call (16 KiB pair: 9 instructions fewer). */
static inline size_t tm_arena_usable(const void *p, const char *func) {
    unsigned i;
    const tm_achunk_t *c = tm_arena_chunk_of(p, &i, func);
    if (tm_unlikely(!tm_arena_is_start(c, i))) tm_arena_not_live(c, i, p, func);
    return (size_t)tm_rload(c->len[i]) << tm_arena_shift;
}
bool tm_arena_resize(void *p, size_t n); /* in place, or false */
void tm_arena_trim(void);
void tm_arena_thread_exit(void); /* the arena the thread used is left (tm_shard_leave) */
unsigned tm_arena_count(void);
void tm_arena_totals(tm_arena_totals_t *t);
uint64_t tm_arena_allocs_of(unsigned idx);

/* ---- medium cache (mcache.c): per-thread bins in front of the arenas -------------------- */
void tm_mcache_init(void);
extern size_t tm_mcache_fast_max; /* the largest request the caches serve by class; 0: off */
extern size_t tm_mcache_keep_max; /* the largest block they keep (exact classes above that) */
void *tm_mcache_malloc(size_t n, bool zero);     /* n <= tm_mcache_fast_max; else tm_malloc_large */
void *tm_mcache_malloc_big(size_t n, bool zero); /* n <= tm_mcache_keep_max */
void *tm_mcache_alloc(size_t n, size_t align);
void tm_mcache_free(void *p, const char *func); /* to the thread's cache or the arena */
/* malloc past the slabs and the medium cache (api.c). */
void *tm_malloc_large(size_t n, size_t align, bool zero);
void tm_mcache_flush(tm_tcache_t *tc);
bool tm_mcache_reclaim(void); /* the thread's cached blocks back to the arenas; false: none */
/* Empties all live threads' caches of blocks older than medium_cache_decay at now, when that
 * is due (now UINT64_MAX: of every block, at once: malloc_trim). No lock held. */
void tm_mcache_drain(uint64_t now);
size_t tm_mcache_total(void);    /* bytes in all threads' caches */
uint64_t tm_mcache_due(void);    /* when the oldest cached block decays (0: none cached) */
bool tm_mcache_owner_fast(void); /* a new thread cache's mfast (tm_tcache_t) */
void tm_mcache_locks(tm_lock_op_t op);

/* ---- heap tier (heap.c): large blocks, and the huge threshold --------------------------- */
void tm_heap_init(void);
/* zero: for calloc, which fresh pages serve best; else committed ones go first. Or an own
 * mapping: align > chunk, past heap_max. */
void *tm_heap_alloc(size_t n, size_t align, bool zero);
void tm_heap_free(void *p, const char *func);
size_t tm_heap_usable(const void *p, const char *func);
void tm_heap_clear(void *p, size_t n);    /* calloc: zero a block just allocated, fresh pages not */
void *tm_heap_realloc(void *p, size_t n); /* in place or NULL; the block stays valid */
void tm_heap_trim(void);
uint64_t tm_heap_background(uint64_t now); /* the purger's pass; -> next due (0: none) */
extern tm_clock_t tm_heap_clock;           /* due: a free block waits to be purged */
static inline uint64_t tm_heap_due(void) { return tm_clock_due(&tm_heap_clock); }
void tm_heap_totals(tm_heap_totals_t *t);
size_t tm_heap_walk(void (*fn)(void *, size_t, int, void *), void *arg);

/* ---- the passes past due, run by a caller where no purger runs (purger.c) ----------------
 * Without a running purger (one thread so far, purge_thread:0, or a start that failed), a
 * delayed purge runs only when some call reaches its tier again, and a program may never
 * call that tier again: one thread that frees a large block and then asks only for small
 * or medium ones would keep the block's pages for good. The slab tier's slow path, taken
 * about once per page of small blocks, and every call above the slabs run the arena and heap
 * passes and the slab transfer cache's decay that are past due here; their clocks are built
 * for callers on any thread, and purge the chunk layer's dirty chunks. Inline: five loads, and
 * no call, when nothing is due. The clock-tick skip counts only calls with something due:
 * counting every call, to skip the loads too (55cdeead), made huge-blocks pay 139,000 page
 * faults and 375 MB against 85,000 and 266 MB (not looked into further). */
static inline void tm_purger_inline(void) {
    if (tm_purger_running()) return;
    uint64_t due = tm_earliest(tm_earliest(tm_arena_due(), tm_heap_due()),
                               tm_earliest(tm_slab_xfer_due(), tm_chunk_due()));
    if (due) tm_purger_inline_due(due);
}

#pragma GCC visibility pop

#endif
