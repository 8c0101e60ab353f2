/* The medium cache: per-thread bins of freed medium blocks (slab_max < size <= medium_max),
 * so that a program churning medium blocks takes no arena lock and searches no bitmap for
 * most of them, the way the slab tier's thread caches serve small ones.
 *
 * Medium requests whose class is at most medium_cache_max are rounded up to classes, four per
 * doubling and whole arena units, so a cached block fits every request of its class; larger ones
 * are not rounded, so that big blocks, which cost the arena's work least in proportion to their
 * use and hold the most memory, take no more than they ask. Above it, up to medium_cache_exact,
 * a thread keeps blocks whose size is exactly a class, up to medium_cache_exact_bytes of them
 * beside its medium_cache bytes: a program's power-of-two buffers (64 KiB, 128 KiB) are classes,
 * and one freed and asked for again is served from the bin instead of an arena's bitmaps; a
 * request there takes one when its size in whole units is the block's. Apart from medium_cache,
 * so that they do not push out the smaller blocks that budget is for. Several, of every such
 * class: with one block a thread, the bench's large-block case (random power-of-two sizes of 64
 * KiB to 8 MiB) took 1.25x tcmalloc's time (by hand), and went to the arenas for most of its
 * blocks of 64-256 KiB. And their malloc finds them from malloc's own way in
 * (tm_mcache_malloc_big), which sends the requests there that no bin serves straight to the
 * arenas: medium-mt, whose sizes from 32 to 256 KiB are exactly a class in whole units one time
 * in five, took 6.6 % fewer instructions in the library than with the one block. A free of a
 * block whose size is exactly a class up to medium_cache_max goes to the freeing thread's bin
 * while that thread's cache holds less than medium_cache bytes and all threads' caches less than
 * medium_cache_total; everything else goes back to its arena. Bins are intrusive lists whose
 * links carry the slab tier's secret-keyed check word (tm_block_link), so a double free of a
 * cached block is caught (from any thread) and a write after free cannot steer malloc. A block
 * leaving a bin gets its check word cleared.
 *
 * Cached memory is bounded in time as well as in bytes: each block records when it was
 * cached, and blocks cached longer than medium_cache_decay ms go back to their arenas. Any
 * thread's medium free notices when the oldest block of any cache is due (one shared due
 * time, as the tiers' purge clocks) and empties the old blocks of every live thread's cache,
 * so the cache of a thread that has gone idle drains too. malloc_trim and thread exit empty
 * caches whole.
 *
 * Invariants. A thread's bins, mcache_bytes, mcache_big and mcache_credit are changed by their
 * owner, at every cached malloc and free, and by other threads only to drain them (decay,
 * malloc_trim), to sum them (statistics) or for fork, each holding the cache's mlock, which orders
 * those drainers (lock order: tm_tcache_lock, then mlock, then arena locks). The owner takes no
 * locked instruction (one was 8 of a cached pair's 22 ns on the project's machine): it marks
 * itself busy (mbusy) with a plain store, then reads mstop. A drainer sets mstop, has every
 * thread of the process run a full barrier (tm_os_barrier: membarrier), and then waits until
 * the owner is not busy. Either the owner's mark was visible by that barrier, and the drainer
 * waits for the owner to finish, or the owner reads mstop after it and takes mlock instead,
 * behind the drainer: Dekker's exchange, with the fence on the rare side only. Where the
 * barrier is not available (TSan, an old kernel, a sandbox) the owner takes mlock every time
 * (`asym` false). A cache's mfast is asym for a thread's own cache, false for the empty and
 * the fallback ones: the fast paths' one test of all three.
 *
 * A cached block stays allocated in its arena (its units used, its start bit set), so the
 * arena never hands it out twice. Bins are newest first: a block is pushed at its caching
 * time, so each bin's ages increase along the list. A cache holds mcache_credit bytes of the
 * shared budget, taken from `reserved` in steps (so that threads do not contend on one
 * counter at every free) before its blocks exceed it and given back when it holds far less:
 * mcache_bytes <= mcache_credit, and reserved, the sum of all credits, never exceeds
 * medium_cache_total. mcache_big is the bytes of its blocks above tm_mcache_fast_max, which
 * mcache_bytes counts: mcache_bytes - mcache_big <= medium_cache, and mcache_big <=
 * medium_cache_exact_bytes. No cached block becomes due before decay_due (0: none is cached).
 */
#include "tm_internal.h"

#include <sched.h>

#define TM_MCLASS_TABLE (TM_CHUNK_SIZE / 1024 + 1) /* medium_max / arena_unit: under 4m / 1k */

/* A cached block: the free link and check word, then when it was cached. */
typedef struct {
    tm_block_t b;
    uint64_t cached_ms;
} tm_mblock_t;

static uint32_t mclass_size[TM_MCLASSES];
static unsigned nmclasses;
static uint8_t mclass_of_units[TM_MCLASS_TABLE];
/* The class of a block of u units where u units are exactly a class the caches keep, else
 * TM_MCLASSES: a free's one test of whether its block may be cached. */
static uint8_t cached_class_of_units[TM_MCLASS_TABLE];
static _Atomic size_t reserved;
#define TM_MCREDIT_STEP (256u << 10)
static _Atomic uint64_t decay_due;
static bool asym; /* tm_os_barrier works here: owners take no lock (see Invariants) */

/* The owner's way in without mlock, where asym holds: true when it is in (busy, to leave by
 * owner_leave(tc, false)), false when a drainer is at work (not busy). */
static inline bool owner_try(tm_tcache_t *tc) {
    atomic_store_explicit(&tc->mbusy, 1, memory_order_relaxed);
    /* Keeps the compiler from reading mstop first; the CPU may still (its store buffer), and
     * that is what the drainer's barrier settles. */
    atomic_signal_fence(memory_order_seq_cst);
    if (tm_likely(!atomic_load_explicit(&tc->mstop, memory_order_acquire))) return true;
    atomic_store_explicit(&tc->mbusy, 0, memory_order_release);
    return false;
}

/* The owner's way in to its bins; true when it took mlock, as a drainer is at work. */
static inline bool owner_enter(tm_tcache_t *tc) {
    if (tm_likely(asym) && owner_try(tc)) return false;
    tm_spin_lock(&tc->mlock);
    return true;
}

static inline void owner_leave(tm_tcache_t *tc, bool locked) {
    if (locked)
        tm_spin_unlock(&tc->mlock);
    else
        atomic_store_explicit(&tc->mbusy, 0, memory_order_release);
}

/* With tm_tcache_lock held: after it, no owner changes its bins until owners_go. */
static void owners_stop(void) {
    for (tm_tcache_t *tc = tm_tcache_live_first(); tc; tc = tc->next_live) {
        tm_spin_lock(&tc->mlock);
        atomic_store_explicit(&tc->mstop, 1, memory_order_relaxed);
    }
    if (!asym) return;
    tm_os_barrier();
    for (tm_tcache_t *tc = tm_tcache_live_first(); tc; tc = tc->next_live)
        while (atomic_load_explicit(&tc->mbusy, memory_order_acquire)) sched_yield();
}

static void owners_go(void) {
    for (tm_tcache_t *tc = tm_tcache_live_first(); tc; tc = tc->next_live) {
        atomic_store_explicit(&tc->mstop, 0, memory_order_release);
        tm_spin_unlock(&tc->mlock);
    }
}

void tm_mcache_init(void) {
    size_t unit = tm_opt.arena_unit, max = tm_opt.medium_max;
    size_t s = tm_align_up(tm_opt.slab_max + 1, unit);
    unsigned n = 0;
    while (n < TM_MCLASSES) {
        if (s > max) s = tm_align_up(max, unit);
        mclass_size[n++] = (uint32_t)s;
        if (s >= max) break;
        size_t p2 = (size_t)1 << (63 - __builtin_clzl(s));
        s += p2 / 4 > unit ? p2 / 4 : unit;
    }
    nmclasses = n;
    asym = tm_opt.medium_cache && tm_os_barrier_init();
    /* The largest class the caches keep: requests above it are not rounded to a class. */
    tm_mcache_fast_max = 0;
    for (unsigned k = 0; tm_opt.medium_cache && k < n && mclass_size[k] <= tm_opt.medium_cache_max;
         k++)
        tm_mcache_fast_max = mclass_size[k];
    tm_mcache_keep_max = tm_mcache_fast_max;
    for (unsigned k = 0; tm_mcache_fast_max && k < n; k++)
        if (mclass_size[k] > tm_mcache_keep_max && mclass_size[k] <= tm_opt.medium_cache_exact &&
            mclass_size[k] <= tm_opt.medium_max)
            tm_mcache_keep_max = mclass_size[k];
    unsigned c = 0;
    for (size_t u = 0; u < TM_MCLASS_TABLE; u++) {
        while (c + 1 < n && mclass_size[c] < (u << tm_arena_shift)) c++;
        mclass_of_units[u] = (uint8_t)c;
        bool exact =
            mclass_size[c] == (u << tm_arena_shift) && mclass_size[c] <= tm_mcache_keep_max;
        cached_class_of_units[u] = (uint8_t)(exact ? c : TM_MCLASSES);
    }
}

/* Arena units in n bytes, rounded up: the index of the tables above. */
static inline size_t units_up(size_t n) {
    return (n + ((size_t)1 << tm_arena_shift) - 1) >> tm_arena_shift;
}

static inline unsigned mclass_of(size_t n) { return mclass_of_units[units_up(n)]; }

/* The class a freed block of `size` bytes is cached in, or TM_MCLASSES: not cached. */
static inline unsigned cached_class(size_t size) {
    return size <= tm_mcache_keep_max ? cached_class_of_units[size >> tm_arena_shift] : TM_MCLASSES;
}

/* A new thread cache's mfast (tm_tcache_get_slow, after start-up): owners go in without mlock. */
bool tm_mcache_owner_fast(void) { return asym; }

uint64_t tm_mcache_due(void) { return atomic_load_explicit(&decay_due, memory_order_relaxed); }

/* Under tc's mlock: gives back the credit beyond mcache_bytes + keep. */
static void credit_return(tm_tcache_t *tc, size_t keep) {
    size_t excess = tc->mcache_credit - tc->mcache_bytes;
    if (excess <= keep) return;
    tc->mcache_credit -= excess - keep;
    atomic_fetch_sub_explicit(&reserved, excess - keep, memory_order_relaxed);
}

/* Under tc's mlock: credit for `more` bytes beyond what tc holds, in a whole step when the
 * budget has one left, else exactly; false when the budget has not even that. */
static bool credit_take(tm_tcache_t *tc, size_t more) {
    size_t need = tc->mcache_bytes + more - tc->mcache_credit;
    size_t step = tm_align_up(need, TM_MCREDIT_STEP);
    size_t cap = tm_opt.medium_cache_total;
    for (size_t ask = step;; ask = need) {
        /* Added first, so that the sum never exceeds the budget, whoever races. */
        if (atomic_fetch_add_explicit(&reserved, ask, memory_order_relaxed) + ask <= cap) {
            tc->mcache_credit += ask;
            return true;
        }
        atomic_fetch_sub_explicit(&reserved, ask, memory_order_relaxed);
        if (ask == need) return false;
    }
}

/* The largest request the caches serve by class (0: none; also before start-up): the callers'
 * one test before tm_mcache_malloc. */
size_t tm_mcache_fast_max;
/* The largest block the caches keep: tm_mcache_fast_max, or above it the largest class up to
 * medium_cache_exact (blocks of exactly a class only); 0: none. malloc's test before
 * tm_mcache_malloc. */
size_t tm_mcache_keep_max;

/* mcache_big is read without entering: by the owner, to pass by a cache that has no room for
 * one more block above tm_mcache_fast_max, and entering only when it may. A drainer may empty
 * the cache meanwhile, so the owner checks again once in (has_room). Written by whoever
 * changes the bins, inside them: `size` bytes above tm_mcache_fast_max came in, or went out. */
static inline size_t big_of(tm_tcache_t *tc) {
    return atomic_load_explicit(&tc->mcache_big, memory_order_relaxed);
}

static inline void big_add(tm_tcache_t *tc, size_t size) {
    atomic_store_explicit(&tc->mcache_big, big_of(tc) + size, memory_order_relaxed);
}

/* The owner, inside its bins: whether tc's own bound leaves room for a block of `size` bytes;
 * big: above tm_mcache_fast_max, whose blocks have medium_cache_exact_bytes of their own. The
 * shared budget is the caller's test (the credit). */
static inline bool has_room(tm_tcache_t *tc, size_t size, bool big) {
    return big ? big_of(tc) + size <= tm_opt.medium_cache_exact_bytes
               : tc->mcache_bytes + size <= tm_opt.medium_cache + big_of(tc);
}

/* The owner, inside its bins (owner_enter or the fast paths' own way in): takes b, the head
 * of class c's bin. */
static inline void bin_pop(tm_tcache_t *tc, unsigned c, tm_block_t *b) {
    if (tm_unlikely(!tm_block_is_free(b))) tm_slab_corrupt(b);
    tc->mbin[c].head = b->next;
    tc->mbin[c].count--;
    tc->mcache_bytes -= mclass_size[c];
    if (tm_unlikely(tc->mcache_credit - tc->mcache_bytes > 2 * TM_MCREDIT_STEP))
        credit_return(tc, TM_MCREDIT_STEP);
}

/* The same: b, of `size` bytes, becomes the head of class c's bin. */
static inline void bin_push(tm_tcache_t *tc, unsigned c, tm_block_t *b, size_t size) {
    tm_block_link(b, tc->mbin[c].head);
    tc->mbin[c].head = b;
    tc->mbin[c].count++;
    tc->mcache_bytes += size;
}

/* The class whose bin serves a request of n bytes: n's class up to tm_mcache_fast_max; above
 * it, the class a block of n's size in whole units is cached in (cached_class: exactly a class
 * the caches keep), else none (TM_MCLASSES): requests there are not rounded up. */
static inline unsigned serving_class(size_t n) {
    return n <= tm_mcache_fast_max ? mclass_of(n)
                                   : cached_class(tm_align_up(n, (size_t)1 << tm_arena_shift));
}

/* A block of n's class from the thread's bin, or NULL: the caller goes on to the arenas. */
static inline void *take(size_t n) {
    tm_tcache_t *tc = tm_tc;
    unsigned c = serving_class(n);
    if (tc == &tm_tcache_empty || c == TM_MCLASSES) return NULL;
    bool locked = owner_enter(tc);
    tm_block_t *b = tc->mbin[c].head;
    if (b == NULL) {
        owner_leave(tc, locked);
        return NULL;
    }
    bin_pop(tc, c, b);
    if (mclass_size[c] > tm_mcache_fast_max) big_add(tc, -(size_t)mclass_size[c]);
    owner_leave(tc, locked);
    b->check = 0;
    return b;
}

void *tm_mcache_alloc(size_t n, size_t align) {
    if (align > TM_ALIGN) return tm_arena_alloc(n);
    if (n > tm_mcache_fast_max) {
        /* Only blocks of exactly a class are kept there (take() serves n from one when its size
         * in whole units is one). A fallback cache, shared, keeps none: cache_free. */
        void *b = big_of(tm_tc) ? take(n) : NULL;
        return b ? b : tm_arena_alloc(n);
    }
    tm_tcache_t *tc = tm_tc;
    if (tc == &tm_tcache_empty && (tc = tm_tcache_get_slow()) == NULL) return NULL;
    if (tc->is_fallback) return tm_arena_alloc(mclass_size[mclass_of(n)]);
    void *b = take(n);
    /* Rounded up to its class, so that it can be cached when freed. */
    return b ? b : tm_arena_alloc(mclass_size[mclass_of(n)]);
}

/* tm_mcache_malloc's way when the owner cannot go in without mlock, or has no cache yet. */
static tm_noinline void *malloc_slow(size_t n, bool zero) {
    void *b = take(n);
    return b ? b : tm_malloc_large(n, TM_ALIGN, zero);
}

/* A request of `size` bytes that the thread's cache could not serve, to the arenas, as
 * tm_malloc_large would send it (a medium request of a thread with a cache, so started up)
 * without a second look into the cache. */
static tm_noinline void *from_arena(size_t size) {
    void *b = tm_arena_alloc(size);
    tm_purger_poll();
    tm_purger_inline();
    return b;
}

/* tm_mcache_malloc_big's way when the owner cannot go in without mlock. */
static tm_noinline void *malloc_big_slow(size_t n) {
    void *b = take(n);
    return b ? b : from_arena(n);
}

/* malloc's way for tm_mcache_fast_max < n <= tm_mcache_keep_max, where only a request of
 * exactly a class is served, and only while the cache holds blocks there (a test before the
 * bins are entered: the empty and the fallback caches hold none), else from_arena. take()
 * written out, as in tm_mcache_malloc, for the owner that needs no lock: its generic way cost
 * a hit 95 library instructions of a 64 KiB pair's 259. */
void *tm_mcache_malloc_big(size_t n, bool zero) {
    tm_tcache_t *tc = tm_tc;
    if (!big_of(tc))
        return tc == &tm_tcache_empty ? tm_malloc_large(n, TM_ALIGN, zero) : from_arena(n);
    unsigned c = cached_class_of_units[units_up(n)]; /* n <= tm_mcache_keep_max: the caller's */
    if (c == TM_MCLASSES) return from_arena(n);
    if (tm_unlikely(!tc->mfast || !owner_try(tc))) return malloc_big_slow(n);
    tm_block_t *b = tc->mbin[c].head;
    if (b == NULL) {
        owner_leave(tc, false);
        return from_arena(n);
    }
    bin_pop(tc, c, b);
    big_add(tc, -(size_t)mclass_size[c]);
    owner_leave(tc, false);
    b->check = 0;
    return b;
}

/* malloc's way for n <= tm_mcache_fast_max: a hit changes no tier, so it leaves the maintenance
 * to the calls that do (the purger's inline pass costs as much as the hit). take() written out
 * for the owner that needs no lock, with every other way a tail call: the hit keeps no stack
 * frame (it called take() before; with the free's change below, a cached pair of 16 KiB took
 * 9.5 ns against 10.9 in results/micro/20261207-042540-33bcde53.md). */
void *tm_mcache_malloc(size_t n, bool zero) {
    tm_tcache_t *tc = tm_tc;
    if (tm_unlikely(!tc->mfast)) return malloc_slow(n, zero);
    unsigned c = mclass_of(n);
    if (tm_unlikely(!owner_try(tc))) return malloc_slow(n, zero);
    tm_block_t *b = tc->mbin[c].head;
    if (tm_unlikely(b == NULL)) {
        owner_leave(tc, false);
        return from_arena(mclass_size[c]); /* rounded up to its class: see tm_mcache_alloc */
    }
    bin_pop(tc, c, b);
    owner_leave(tc, false);
    b->check = 0;
    return b;
}

/* The same for a block tm_arena_usable has just validated. */
static tm_noinline bool valid_to_arena(void *p, const char *func) {
    tm_arena_free_valid(p, func, 0);
    return false;
}

/* Every medium free but tm_mcache_free's common case: p is a live block of `size` bytes
 * (checked by tm_arena_usable and for a double free), of cached_class c. */
static bool cache_free(void *p, const char *func, size_t size, unsigned c) {
    tm_block_t *b = p;
    tm_tcache_t *tc = tm_tc;
    if (c == TM_MCLASSES || tc == &tm_tcache_empty || tc->is_fallback)
        return valid_to_arena(p, func);
    /* Early at worst: the block leaves sooner. But a block cached where none is (due 0, as
     * after the decay emptied the caches of threads gone idle) gets a fresh stamp: a stale one
     * would set a due time already past, and the purger would take the block back at once. */
    uint64_t due = atomic_load_explicit(&decay_due, memory_order_relaxed);
    uint64_t now = tm_likely(due) ? tm_now_ms_lazy() : tm_now_ms_fresh();
    if (tm_unlikely(due && now >= due)) tm_mcache_drain(now);
    ((tm_mblock_t *)b)->cached_ms = now;
    bool big = size > tm_mcache_fast_max;
    bool locked = owner_enter(tc);
    if (tm_unlikely(!has_room(tc, size, big) ||
                    (tc->mcache_bytes + size > tc->mcache_credit && !credit_take(tc, size)))) {
        owner_leave(tc, locked);
        return valid_to_arena(p, func);
    }
    bin_push(tc, c, b, size);
    if (big) big_add(tc, size);
    owner_leave(tc, locked);
    tm_due_lower(&decay_due, now + tm_opt.medium_cache_decay);
    return true;
}

/* Cached: no tier changed, but the first cached block sets the cache's due time, which wants
 * the purger; else the arena's free may have made work due. */
static tm_noinline void free_slow(void *p, const char *func, size_t size, unsigned c) {
    bool cached = cache_free(p, func, size, c);
    tm_purger_poll();
    if (!cached) tm_purger_inline();
}

/* A block no cache keeps (above tm_mcache_fast_max, and not exactly a class), p checked by
 * tm_arena_usable: to its arena, whose start bit tells a second free (no cache can hold it),
 * without the cache's tests and calls. */
static tm_noinline void free_to_arena(void *p, const char *func) {
    tm_arena_free_valid(p, func, 0);
    tm_purger_poll();
    tm_purger_inline();
}

/* With the cache off nothing is cached and nothing decays: the arena frees the block, checks
 * included, without the cache's clock read (a fifth of a medium free's time) or a second
 * lookup of the block. */
static tm_noinline void free_uncached(void *p, const char *func) {
    tm_arena_free(p, func);
    tm_purger_poll();
    tm_purger_inline();
}

/* A block in some thread's bin is still allocated to its arena, so only its check word tells a
 * second free; tested before anything else, whoever frees it. The whole 64-bit check must
 * match: live data does so only if copied out of a freed block. */
static inline void check_not_cached(tm_block_t *b, const char *func) {
    if (tm_unlikely(tm_block_is_free(b))) tm_fatal(func, "double free of", b);
}

/* A medium free's common case: a block b of `size` bytes and cached class c, freed by an owner
 * that needs no lock, while a due time is set and not yet reached, on a call that does not read
 * the clock, into a cache with room and credit for it; false, with nothing changed, for all
 * else. big: b is above tm_mcache_fast_max, and the caller (free_big) has checked that c is a
 * class and that the bytes there leave room for b, which holds once in: only the owner adds
 * to them (a drainer only takes away). Always inlined with big a constant, so the common case
 * of each size keeps only its tests. */
static inline __attribute__((always_inline)) bool push_fast(tm_block_t *b, size_t size, unsigned c,
                                                            bool big) {
    tm_tcache_t *tc = tm_tc;
    uint64_t due = atomic_load_explicit(&decay_due, memory_order_relaxed);
    uint32_t calls = tm_lazy_calls;
    uint64_t now = tm_lazy_ms; /* tm_now_ms_lazy() on a call that reads no clock */
    if (tm_unlikely((!big && c == TM_MCLASSES) || !tc->mfast || calls % TM_LAZY_CLOCK == 0 ||
                    due == 0 || now >= due))
        return false;
    if (tm_unlikely(!owner_try(tc))) return false;
    /* mcache_bytes, mcache_big and mcache_credit are read only once in. */
    if (tm_unlikely((!big && !has_room(tc, size, false)) ||
                    tc->mcache_bytes + size > tc->mcache_credit)) {
        owner_leave(tc, false);
        return false;
    }
    tm_lazy_calls = calls + 1;
    ((tm_mblock_t *)b)->cached_ms = now;
    bin_push(tc, c, b, size);
    if (big) big_add(tc, size);
    owner_leave(tc, false);
    tm_due_lower(&decay_due, now + tm_opt.medium_cache_decay);
    return true;
}

/* A free of a block above tm_mcache_fast_max whose size is exactly class c, p checked by
 * tm_arena_usable: to the thread's bin while its blocks there have room, else as free_slow sees
 * fit. */
static tm_noinline void free_big(void *p, const char *func, size_t size, unsigned c) {
    check_not_cached(p, func);
    /* A cache that has no room left there: to the arena after this one read, without the
     * clock or the cache. */
    if (big_of(tm_tc) + size > tm_opt.medium_cache_exact_bytes) return free_to_arena(p, func);
    if (tm_unlikely(!push_fast(p, size, c, true))) return free_slow(p, func, size, c);
    tm_purger_poll();
}

/* A medium free. Its common case is push_fast's; all else goes to free_slow, free_big or
 * free_to_arena by a tail call, so the common case saves only the two registers
 * tm_arena_usable's call needs kept (it saved six, with a frame, before). */
void tm_mcache_free(void *p, const char *func) {
    if (tm_unlikely(tm_mcache_fast_max == 0)) return free_uncached(p, func);
    size_t size = tm_arena_usable(p, func); /* validates p */
    if (size > tm_mcache_fast_max) {
        unsigned c = cached_class(size);
        return c != TM_MCLASSES ? free_big(p, func, size, c) : free_to_arena(p, func);
    }
    check_not_cached(p, func);
    unsigned c = cached_class_of_units[size >> tm_arena_shift];
    if (tm_unlikely(!push_fast(p, size, c, false))) return free_slow(p, func, size, c);
    tm_purger_poll();
}

static uint64_t cached_ms(const tm_block_t *b) { return ((const tm_mblock_t *)b)->cached_ms; }

/* Under tc's mlock: moves the blocks of every bin of tc cached at or before `before`
 * (UINT64_MAX: all) onto *out; returns the earliest caching time of those it leaves (0:
 * none). */
static uint64_t take_old(tm_tcache_t *tc, uint64_t before, tm_block_t **out) {
    uint64_t oldest = 0;
    for (unsigned c = 0; c < nmclasses; c++) {
        tm_block_t *kept = NULL, *b = tc->mbin[c].head;
        for (; b && cached_ms(b) > before; kept = b, b = b->next)
            if (tm_unlikely(!tm_block_is_free(b))) tm_slab_corrupt(b);
        if (kept && (!oldest || cached_ms(kept) < oldest)) oldest = cached_ms(kept);
        if (b == NULL) continue;
        if (kept) /* newest first: the rest of the bin is older and goes */
            tm_block_link(kept, NULL);
        else
            tc->mbin[c].head = NULL;
        while (b) {
            if (tm_unlikely(!tm_block_is_free(b))) tm_slab_corrupt(b);
            tm_block_t *next = b->next;
            tc->mbin[c].count--;
            tc->mcache_bytes -= mclass_size[c];
            if (mclass_size[c] > tm_mcache_fast_max) big_add(tc, -(size_t)mclass_size[c]);
            b->next = *out;
            *out = b;
            b = next;
        }
    }
    credit_return(tc, 0);
    return oldest;
}

/* Gives blocks taken out of caches back to their arenas, as freed when they were cached; no
 * cache lock held. */
static void give_back(tm_block_t *b) {
    while (b) {
        tm_block_t *next = b->next;
        uint64_t since = cached_ms(b);
        b->check = 0;
        tm_arena_free_valid(b, "free", since);
        b = next;
    }
}

/* Empties every live thread's cache of the blocks cached before now - medium_cache_decay
 * (now UINT64_MAX: of all blocks). Only the caller that takes the due time it saw does the
 * decay; it publishes again the due time of what stays. */
void tm_mcache_drain(uint64_t now) {
    uint64_t due = atomic_load_explicit(&decay_due, memory_order_relaxed);
    if (now != UINT64_MAX && (due == 0 || now < due ||
                              !atomic_compare_exchange_strong_explicit(
                                  &decay_due, &due, 0, memory_order_relaxed, memory_order_relaxed)))
        return;
    uint64_t decay = tm_opt.medium_cache_decay;
    uint64_t before = now == UINT64_MAX ? UINT64_MAX : now > decay ? now - decay : 0;
    uint64_t oldest = 0;
    tm_block_t *out = NULL;
    tm_lock(&tm_tcache_lock);
    owners_stop();
    for (tm_tcache_t *tc = tm_tcache_live_first(); tc; tc = tc->next_live) {
        uint64_t o = take_old(tc, before, &out);
        if (o && (!oldest || o < oldest)) oldest = o;
    }
    owners_go();
    tm_unlock(&tm_tcache_lock);
    give_back(out);
    if (oldest) tm_due_lower(&decay_due, oldest + decay);
}

/* The thread's cached blocks go back to their arenas (the thread is tc's owner); false when
 * it held none. */
static bool flush_own(tm_tcache_t *tc) {
    tm_block_t *out = NULL;
    bool locked = owner_enter(tc);
    take_old(tc, UINT64_MAX, &out);
    owner_leave(tc, locked);
    give_back(out);
    return out != NULL;
}

/* A dying thread's. */
void tm_mcache_flush(tm_tcache_t *tc) { flush_own(tc); }

/* Before an arena grows for this thread: its own cached blocks go back, so that a cache does
 * not make the arenas take memory that its blocks could give (medium-mt at 1 MiB a cache: a
 * fourth chunk, 4 MiB more peak RSS, without this). True when some went back: the caller looks
 * again before it grows. Other threads' caches stay: stopping them costs a barrier on every
 * thread, their blocks decay anyway, and draining them all before each growth did not bring
 * idle-threads' peak RSS at 1 MiB caches of blocks up to 128 KiB near the default's (15.1 MiB
 * against 7.7: the arenas touch fresh pages of the chunks they have long before they grow).
 * No lock held, the owner outside its bins. */
bool tm_mcache_reclaim(void) {
    tm_tcache_t *tc = tm_tc;
    if (tc == &tm_tcache_empty || tc->is_fallback) return false;
    return flush_own(tc);
}

/* The bytes all live caches hold, their owners stopped. */
size_t tm_mcache_total(void) {
    size_t sum = 0;
    tm_lock(&tm_tcache_lock);
    owners_stop();
    for (tm_tcache_t *tc = tm_tcache_live_first(); tc; tc = tc->next_live) sum += tc->mcache_bytes;
    owners_go();
    tm_unlock(&tm_tcache_lock);
    return sum;
}

/* For fork, after tm_tcache_lock (init.c): every owner stopped, as a drain stops them, so that
 * no bin is half changed in the child; the child, the only thread left, starts them all. */
void tm_mcache_locks(tm_lock_op_t op) {
    if (op == TM_LOCK_TAKE) return owners_stop();
    if (op == TM_LOCK_GIVE) return owners_go();
    for (tm_tcache_t *tc = tm_tcache_live_first(); tc; tc = tc->next_live) {
        tm_spin_fork(&tc->mlock, op);
        atomic_store_explicit(&tc->mstop, 0, memory_order_relaxed);
        atomic_store_explicit(&tc->mbusy, 0, memory_order_relaxed);
    }
}
