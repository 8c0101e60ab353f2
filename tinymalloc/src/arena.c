/* The arena tier: medium blocks (slab_max < n <= medium_max) as runs of fixed units.
 *
 * There are `arenas` arenas (default one per CPU, at most TM_MAX_ARENAS), each behind the lock
 * of its tm_shard_t, never a global one. A thread allocates from the arena of the CPU it runs on
 * (sched_getcpu, answered by rseq or the vDSO), or stays in the arena it last allocated from while
 * no other thread has allocated there since (tm_shard_home); its first request takes an arena
 * that an exited thread left, when there is one (tm_shard_adopt). A request moves on to the
 * next arena whose lock is free (trylock) when that one is busy; only when all are busy does it
 * wait for its own.
 *
 * An arena is a list of 4 MiB chunks marked TM_KIND_ARENA, each cut into units of
 * arena_unit bytes. Metadata is out of band, in the chunk's first units: the header and two
 * bitmaps, `used` (a bit per unit in use) and `start` (a bit per unit that starts a block),
 * and the length in units of each block at its start unit. The length is written under the
 * lock when a block is made or resized and stays put while the block is live, so the thread
 * that frees it can read its size without the lock (mcache.c does). A free whose unit has no
 * start bit is an invalid pointer or a double free, detected before anything is changed.
 *
 * Allocation is first fit over the arena's chunks from the highest address down (skipping those
 * with too few free units or no run long enough) and, within a chunk, over its bitmap words from
 * the lowest unit where a run of that length may start (fit[]), with whole-word operations: a
 * scan costs a few steps per word, never one per unit.
 *
 * A free, from any thread, takes the lock of the arena named in the chunk header. A chunk
 * that becomes wholly free stays in its arena; after arena_purge_delay ms (checked by any
 * arena's operations: the tier's tm_clock_t) its pages go back to the OS (madvise), and past
 * arena_retain such chunks the rest are returned to the chunk layer. In a chunk still in use,
 * the pages of free runs go back once the runs have stayed free from one pass to the next
 * (the passes come arena_purge_delay ms apart while the chunk has such runs: a run goes back
 * between one and two delays after it was freed, and never while a program keeps taking it
 * again); a chunk lightly used for good no longer keeps the pages of all its free runs. An
 * arena keeps at most
 * one such chunk committed plus arena_dirty percent of its chunks in use (and more where it
 * churns: chunk_reused): a chunk emptied past that share is purged at once, so memory a program
 * stops using goes back even when no later operation comes to run the delayed purge. Neither, nor
 * taking a new chunk (which may map), happens under the arena's lock: a chunk being purged is
 * marked `purging` and no block is made in it until it is back; the units of free runs being
 * purged are held as used meanwhile (runs_purging counts those purges: the chunk is not
 * released while any is under way).
 *
 * Invariants. The arena's lock guards its chunk list, its counters and every field of its chunks'
 * headers and bitmaps. Read without it: a chunk's seal and arena (set before the chunk is listed,
 * cleared only when it leaves), and a live block's start bit and length (relaxed atomics; written
 * under the lock, constant while the block is live). For every chunk, free_units == the zero bits
 * of `used` plus the units held for purges of free runs under way, and a unit has its start bit
 * iff it begins a live block, and the len[] units from it are all used; no run of zero bits of
 * `used` is longer than max_run, and none of 2^b units or more starts below fit[b]. ndirty counts
 * the chunks with empty_since set, purged and purging clear. A unit's `aged` bit is set only while
 * it stayed free since the last pass over its chunk (a free clears it: run_free); age_ms is set
 * whenever a free unit of a chunk in use is dirty. hasty_ms is set only while a chunk purged at
 * once past the share stays wholly free (cleared when a block is made in it, and by malloc_trim).
 */
#include "tm_internal.h"

#include <errno.h>
#include <string.h>
#if (defined(__x86_64__) || defined(__i386__)) && !defined(TM_NO_CPU_DISPATCH)
#include <cpuid.h>
#endif

typedef struct {
    tm_shard_t sh; /* the lock that guards every field below, and the next maintenance */
    uint32_t idx;
    tm_achunk_t *chunks;
    uint32_t nchunks, nempty;
    uint32_t ndirty;      /* wholly free chunks neither purged nor being purged */
    uint32_t dirty_extra; /* chunks the arena keeps past its dirty share: see chunk_reused() */
    uint64_t nalloc, nfree, used_units, purged, released;
    uint64_t run_bytes; /* bytes purged from free runs of chunks in use */
} __attribute__((aligned(64))) tm_arena_t;

static tm_arena_t arenas[TM_MAX_ARENAS];
unsigned tm_narenas = 1;
tm_clock_t tm_arena_clock;
unsigned tm_arena_shift = 12; /* set by tm_arena_init, before tm_mcache_init reads it */
static unsigned nunits = TM_CHUNK_SIZE >> 12, nwords = (TM_CHUNK_SIZE >> 12) / 64;
static _Atomic uint64_t chunks_peak, chunks_now;

/* ---- bitmaps: whole-word operations only ------------------------------------------------ */
/* First unit >= i whose bit in map is `bit`, or nunits. */
static inline unsigned next_bit(const uint64_t *map, unsigned i, bool bit) {
    if (i >= nunits) return nunits;
    unsigned w = i / 64;
    uint64_t x = (bit ? map[w] : ~map[w]) & (~0ULL << (i % 64));
    while (x == 0) {
        if (++w == nwords) return nunits;
        x = bit ? map[w] : ~map[w];
    }
    return w * 64 + (unsigned)__builtin_ctzll(x);
}

/* Last unit < i (i > 0) whose bit in map is set, or nunits when none is (in `used` there is
 * one: unit 0, metadata, is always used). */
static inline unsigned prev_set(const uint64_t *map, unsigned i) {
    unsigned w = (i - 1) / 64;
    uint64_t x = map[w] & (~0ULL >> (63 - (i - 1) % 64));
    while (x == 0) {
        if (w == 0) return nunits;
        x = map[--w];
    }
    return w * 64 + 63 - (unsigned)__builtin_clzll(x);
}

/* The words that units [i, i + n) reach (n > 0), one at a time: word w, and the mask m of the
 * units in it. The first and last masks come from the two ends' shifts and the words between
 * are whole, so a step costs one test of whether the word is the last (most runs lie in one or
 * two words). Allocation and free walk their run once, updating every bitmap at each word. */
typedef struct {
    unsigned w, last;
    uint64_t m, end;
} tm_span_t;

static inline tm_span_t span_of(unsigned i, unsigned n) {
    tm_span_t r = {i / 64, (i + n - 1) / 64, ~0ULL << (i % 64), ~0ULL >> (63 - (i + n - 1) % 64)};
    if (r.w == r.last) r.m &= r.end;
    return r;
}

static inline bool span_next(tm_span_t *r) {
    if (r->w == r->last) return false;
    r->w++;
    r->m = r->w == r->last ? r->end : ~0ULL;
    return true;
}

static inline void set_range(uint64_t *map, unsigned i, unsigned n, bool bit) {
    if (n == 0) return;
    tm_span_t r = span_of(i, n);
    do {
        if (bit)
            map[r.w] |= r.m;
        else
            map[r.w] &= ~r.m;
    } while (span_next(&r));
}

/* Clears the check word of each unit whose bit is set in x, the freed marks of word w of c. */
static void drop_word(tm_achunk_t *c, unsigned w, uint64_t x) {
    do {
        unsigned u = w * 64 + (unsigned)__builtin_ctzll(x);
        ((tm_block_t *)((char *)c + ((size_t)u << tm_arena_shift)))->check = 0;
    } while (x &= x - 1);
}

/* Clears the freed marks of units [i, i + n) of c (n > 0), and the check word each one marks;
 * with `take`, marks the units used in the same walk (a block is made over them). */
static inline void drop_marks_with(tm_achunk_t *c, unsigned i, unsigned n, bool take) {
    tm_span_t r = span_of(i, n);
    do {
        if (take) c->used[r.w] |= r.m;
        uint64_t x = c->freed[r.w] & r.m;
        if (x) {
            c->freed[r.w] &= ~r.m;
            drop_word(c, r.w, x);
        }
    } while (span_next(&r));
}

static inline void drop_marks(tm_achunk_t *c, unsigned i, unsigned n) {
    drop_marks_with(c, i, n, false);
}

/* The zero bits of a word. The baseline x86-64 ISA has no popcnt (libgcc's is a call), so the
 * generic build counts in SWAR; find_run's popcnt build, taken where the CPU has the
 * instruction, counts in one (the SWAR count was a third of find_run's instructions on
 * medium-mt). */
static inline __attribute__((always_inline)) unsigned free_count(uint64_t used, bool hw) {
    uint64_t x = ~used;
    if (hw) return (unsigned)__builtin_popcountll(x);
    x -= (x >> 1) & 0x5555555555555555ULL;
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
    return (unsigned)((x * 0x0101010101010101ULL) >> 56);
}

/* The bound of fit[] that holds for runs of n units: the longest length 2^b <= n. */
static inline unsigned fit_of(unsigned n) {
    unsigned b = 31 - (unsigned)__builtin_clz(n);
    return b < TM_FITS ? b : TM_FITS - 1;
}

/* Marks units [i, i + n) of c free in `used`, the one way they become free, so that fit[]
 * and max_run are kept wherever that happens: the run they join, of len units from s, is the
 * only one that grew, so max_run stays a bound with its length, and fit[] with s for the
 * lengths up to len (those still above s: fit[] does not decrease in b, so they end at the
 * first that is not). Where a free only lengthens runs, a chunk whose search failed is
 * skipped by longer requests until something there is freed next to enough free units
 * (medium-mt on 8 threads: each search passed over chunks that frees had re-opened to a full
 * scan). Called before free_units counts the n units: when they are the last used ones (no
 * purge holds any), the run is the whole chunk, without a scan of its words for its end (a
 * program that takes and frees one medium buffer at a time scanned them at every free).
 * `dirty`: the units were freed from a block, not from a purge, so their pages may be committed
 * and they are not idle (a unit taken and freed again between two passes over its chunk is
 * not purged; one taken and still in use at a pass is not free). */
static inline void run_free(tm_achunk_t *c, unsigned i, unsigned n, bool dirty) {
    tm_span_t r = span_of(i, n);
    do {
        c->used[r.w] &= ~r.m;
        if (dirty) {
            c->dirty[r.w] |= r.m;
            c->aged[r.w] &= ~r.m;
        }
    } while (span_next(&r));
    unsigned s = c->first, len = nunits - c->first;
    if (c->free_units + n != len || c->runs_purging) {
        s = prev_set(c->used, i) + 1;
        len = next_bit(c->used, i + n, true) - s;
    }
    if (len > c->max_run) c->max_run = len;
    for (int b = (int)fit_of(len); b >= 0 && c->fit[b] > s; b--) c->fit[b] = (uint16_t)s;
}

/* First fit: the lowest run of n free units, or nunits. For n <= 64 each word w is tested in
 * one go: a run that starts in w lies inside w, or is w's top run of free units going on into
 * word w + 1. Inside: only a word with n free units can hold one, and then `m &= m >> len` for
 * len = 1, 2, 4 ... up to n, and a last shift by the rest, leaves set exactly the positions
 * where n free units start (a word whose free units are scattered is done once none is left).
 * Crossing: the free units at the top of w and at the bottom of w + 1 add up to n. So a word
 * costs a count of its free units and two bit scans, and O(log n) word operations only where a
 * run may start, however fragmented the chunk. */
static inline __attribute__((always_inline)) unsigned find_run_with(const tm_achunk_t *c,
                                                                    unsigned n, bool hw) {
    unsigned from = c->fit[fit_of(n)];
    if (n <= 64) {
        for (unsigned w = from / 64; w < nwords; w++) {
            uint64_t used = c->used[w];
            if (used == ~0ULL) continue;
            if (free_count(used, hw) >= n) {
                uint64_t m = ~used;
                unsigned len = 1;
                for (; len * 2 <= n && m; len *= 2) m &= m >> len;
                if (len < n) m &= m >> (n - len); /* n - len < len: the two cover n units */
                if (m) return w * 64 + (unsigned)__builtin_ctzll(m);
            }
            unsigned top = used ? (unsigned)__builtin_clzll(used) : 64; /* < n here */
            if (top == 0 || w + 1 == nwords) continue;
            uint64_t next = c->used[w + 1];
            unsigned bottom = next ? (unsigned)__builtin_ctzll(next) : 64;
            if (top + bottom >= n) return w * 64 + 64 - top;
        }
        return nunits;
    }
    unsigned i = from;
    for (;;) {
        i = next_bit(c->used, i, false);
        if (i + n > nunits) return nunits;
        unsigned j = next_bit(c->used, i + 1, true);
        if (j - i >= n) return i;
        i = j;
    }
}

static unsigned find_run_generic(const tm_achunk_t *c, unsigned n) {
    return find_run_with(c, n, false);
}

#if (defined(__x86_64__) || defined(__i386__)) && !defined(TM_NO_CPU_DISPATCH)
static bool has_popcnt; /* set once by tm_arena_init, before any arena block is made */

static __attribute__((target("popcnt"))) unsigned find_run_popcnt(const tm_achunk_t *c,
                                                                  unsigned n) {
    return find_run_with(c, n, true);
}

static void find_run_setup(void) {
    unsigned eax, ebx, ecx = 0, edx;
    has_popcnt = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_POPCNT);
}

static inline unsigned find_run(const tm_achunk_t *c, unsigned n) {
    return tm_likely(has_popcnt) ? find_run_popcnt(c, n) : find_run_generic(c, n);
}
#else
/* Elsewhere, and in the ubsan build (so that the suite runs both): the generic build. */
static void find_run_setup(void) {}
static inline unsigned find_run(const tm_achunk_t *c, unsigned n) { return find_run_generic(c, n); }
#endif

/* ---- chunks ------------------------------------------------------------------------------- */
/* The chunk's first units hold its metadata; a block is a run of the units after them and
 * never spans two chunks, so no medium request may need more than tm_arena_capacity(). */
static size_t meta_bytes(size_t unit) { return (sizeof(tm_achunk_t) + unit - 1) / unit * unit; }
size_t tm_arena_capacity(size_t unit) { return TM_CHUNK_SIZE - meta_bytes(unit); }

static void runs_dirtied(tm_arena_t *a, tm_achunk_t *c);

/* Lists a chunk fresh from the chunk layer in arena a, under a's lock. */
static tm_achunk_t *chunk_new(tm_arena_t *a, tm_achunk_t *c, bool dirty) {
    /* The metadata is zero (fresh, purged, or cleared by the chunk layer): only non-zero
     * fields. */
    *(void **)c = NULL;
    c->arena = a->idx;
    c->seal = tm_arena_seal_of(c);
    c->first = (unsigned)(meta_bytes(1UL << tm_arena_shift) >> tm_arena_shift);
    set_range(c->used, 0, c->first, true); /* the metadata units are never free */
    c->free_units = nunits - c->first;
    c->max_run = nunits - c->first;
    for (unsigned b = 0; b < TM_FITS; b++) c->fit[b] = (uint16_t)c->first;
    if (dirty) {
        /* A freed huge block's pages, committed: what no block takes is purged as a free
         * run's pages are, a pass or two later. */
        set_range(c->dirty, c->first, nunits - c->first, true);
        runs_dirtied(a, c);
    }
    /* The list is kept in descending address order, and first fit walks it from the highest
     * chunk: the chunk layer hands the tiers' chunks out from a region's top down, so new
     * blocks fill the holes of the oldest chunks, live blocks gather there and the newest
     * chunks empty out, to be purged. (Newest first, a chunk added for one request that found
     * no run took every later block until it filled, and the holes in the others stayed:
     * steady-rss's peak RSS was 1.2x.) A new chunk is rare, the walk short. */
    tm_achunk_t **pp = &a->chunks, *prev = NULL;
    while (*pp && *pp > c) {
        prev = *pp;
        pp = &prev->next;
    }
    c->next = *pp;
    c->prev = prev;
    if (c->next) c->next->prev = c;
    *pp = c;
    a->nchunks++;
    tm_gauge_add(&chunks_now, &chunks_peak, 1);
    return c;
}

static bool chunk_empty(const tm_achunk_t *c) { return c->free_units == nunits - c->first; }

/* Where the pages of chunk c past its metadata start: a whole-chunk purge's. */
static void *whole_pages(const tm_achunk_t *c) {
    return (void *)tm_align_up((uintptr_t)c + ((size_t)c->first << tm_arena_shift), TM_OS_PAGE);
}

/* Hands the pages of wholly free chunk c to d, to purge once the lock is released
 * (arena_purged takes it back). The caller has checked that d is not full. */
static void purge_chunk(tm_arena_t *a, tm_achunk_t *c, tm_defer_t *d) {
    uintptr_t lo = (uintptr_t)whole_pages(c);
    c->purging = 1;
    drop_marks(c, 0, nunits);
    memset(c->dirty, 0, sizeof c->dirty);
    memset(c->aged, 0, sizeof c->aged);
    c->age_ms = 0;
    a->ndirty--;
    tm_defer_add(d, &a->sh, TM_DEFER_PURGE, c, (void *)lo, (uintptr_t)c + TM_CHUNK_SIZE - lo);
}

/* A purge of c's pages, whole or of free runs, is out in a system call: c must stay listed. */
static inline bool purge_under_way(const tm_achunk_t *c) { return c->purging || c->runs_purging; }

/* Under a's lock: wholly free chunk c leaves a's list for the chunk layer (the caller hands it
 * over once the lock is let go of); its cleared seal makes a stale pointer into it invalid.
 * Invariant: no purge of c is under way (purge_under_way). arena_purged writes c's bitmap under
 * the lock of the arena that started the purge: a chunk handed on before would have its new
 * owner's live units marked free. */
static void chunk_unlist(tm_arena_t *a, tm_achunk_t *c) {
    if (c->prev)
        c->prev->next = c->next;
    else
        a->chunks = c->next;
    if (c->next) c->next->prev = c->prev;
    a->nchunks--;
    a->nempty--;
    a->released++;
    c->seal = 0;
    atomic_fetch_sub_explicit(&chunks_now, 1, memory_order_relaxed);
}

/* Under a's lock: wholly free chunk c, past the arena's share, leaves it for the chunk layer's
 * dirty chunks with its pages committed, instead of being purged at once. Threads move between
 * CPUs and so between arenas: one arena's chunks empty while another's fill, and that one paid
 * a page fault for every page of a new chunk while this one purged its own (medium-mt on 8
 * threads: 16 to 85 such purges a run, 19,000 to 35,000 page faults). Any arena or the slabs
 * take a dirty chunk before a fresh one, and the chunk layer purges it heap_purge_delay later if
 * none does; only while the purger runs, so that this happens when no call comes (a program's
 * single thread gone quiet, the case the purge at once is for). Freed blocks' check words are
 * cleared first: a block made over one later would read as freed. */
static void chunk_leave_dirty(tm_arena_t *a, tm_achunk_t *c, tm_defer_t *d) {
    drop_marks(c, 0, nunits);
    chunk_unlist(a, c);
    a->ndirty--;
    tm_defer_add(d, &a->sh, TM_DEFER_RELEASE_DIRTY, c, c, TM_CHUNK_SIZE);
}

/* Under a's lock: wholly free chunk c is taken again. The dirty share bounds the free chunks
 * an arena keeps committed, but a program that empties chunks and fills them again within the
 * purge delay pays a page fault for every page of each chunk purged at once (medium-mt on 8
 * threads: 649 such purges, four times mimalloc's page faults). So the share adapts, as
 * glibc's mmap threshold does: a chunk purged at once and taken again within
 * arena_purge_delay lets the arena keep one chunk more (dirty_extra, at most its chunks in use),
 * and a chunk that the delay purges, kept free a whole delay for nothing, one fewer (malloc_trim:
 * none more). A program whose use falls away for good takes none back, so its chunks still go
 * back as they empty. */
static void chunk_reused(tm_arena_t *a, tm_achunk_t *c) {
    if (c->hasty_ms && tm_now_ms() - c->hasty_ms < tm_opt.arena_purge_delay &&
        a->dirty_extra < a->nchunks - a->nempty)
        a->dirty_extra++;
    c->hasty_ms = 0;
}

/* Under a's lock: chunk c, in use, has free units whose pages may be committed; its next pass
 * is due a delay after now (the first such free after a pass reads the clock). */
static void runs_dirtied(tm_arena_t *a, tm_achunk_t *c) {
    if (c->age_ms) return;
    c->age_ms = tm_now_ms();
    tm_clock_lower(&tm_arena_clock, &a->sh, c->age_ms + tm_opt.arena_purge_delay);
}

/* The pages of [u, u + n) units of c: whole pages only. */
static void run_pages(const tm_achunk_t *c, unsigned u, unsigned n, uintptr_t *lo, uintptr_t *hi) {
    *lo = tm_align_up((uintptr_t)c + ((size_t)u << tm_arena_shift), TM_OS_PAGE);
    *hi = ((uintptr_t)c + ((size_t)(u + n) << tm_arena_shift)) & ~(TM_OS_PAGE - 1);
}

/* The pass over the free runs of chunk c, in use, once its age_ms is a delay old: runs that
 * stayed free since the last pass (aged) go to d; then what is free and dirty now ages. Returns
 * the next due time for c (now when d filled up first, 0 when nothing is left to age). */
static uint64_t runs_pass(tm_arena_t *a, tm_achunk_t *c, uint64_t now, tm_defer_t *d) {
    /* Idle units: dirty, free, and free since the last pass. Runs of them are found with
     * next_bit, one step per run. */
    uint64_t idle[TM_ARENA_WORDS];
    for (unsigned w = 0; w < TM_ARENA_WORDS; w++) idle[w] = c->aged[w] & c->dirty[w] & ~c->used[w];
    for (unsigned u = next_bit(idle, 0, true), e; u < nunits; u = next_bit(idle, e, true)) {
        e = next_bit(idle, u + 1, false);
        uintptr_t lo, hi;
        run_pages(c, u, e - u, &lo, &hi);
        if (hi > lo) {
            if (tm_defer_full(d) || c->runs_purging == UINT16_MAX) return now;
            /* A purged word would read zero: a freed block's check word goes first. The units
             * of the pages are held as used until the purge is back (arena_purged): no block
             * is made over them meanwhile, and the rest of the chunk stays usable. */
            drop_marks(c, u, e - u);
            unsigned pu = (unsigned)((lo - (uintptr_t)c) >> tm_arena_shift);
            set_range(c->used, pu, (unsigned)((hi - lo) >> tm_arena_shift), true);
            c->runs_purging++;
            a->run_bytes += hi - lo;
            tm_defer_add(d, &a->sh, TM_DEFER_PURGE, c, (void *)lo, hi - lo);
        }
        set_range(c->dirty, u, e - u, false);
        set_range(c->aged, u, e - u, false);
    }
    bool any = false;
    for (unsigned w = 0; w < nwords; w++) {
        c->aged[w] = c->dirty[w] & ~c->used[w];
        any |= c->aged[w] != 0;
    }
    c->age_ms = any ? now : 0;
    return any ? now + tm_opt.arena_purge_delay : 0;
}

/* Purges wholly free chunks that have been so for the delay, and returns those past
 * arena_retain to the chunk layer; both through d, after the lock. Under the arena lock. */
static void arena_maintain(tm_shard_t *sh, uint64_t now, tm_defer_t *d) {
    tm_arena_t *a = (tm_arena_t *)sh;
    uint64_t pending = 0;
    uint32_t kept = 0;
    /* malloc_trim (now UINT64_MAX): the program means to hold nothing it does not use, so the
     * arena's share starts again from the bare one, and no chunk counts as purged at once. */
    if (now == UINT64_MAX) a->dirty_extra = 0;
    tm_achunk_t *c = a->chunks;
    while (c) {
        tm_achunk_t *nx = c->next;
        if (now == UINT64_MAX) c->hasty_ms = 0;
        if (!c->empty_since && c->age_ms) {
            if (now == UINT64_MAX) /* malloc_trim: every free run now, aged or not */
                memcpy(c->aged, c->dirty, sizeof c->aged);
            if (now == UINT64_MAX || c->age_ms + tm_opt.arena_purge_delay <= now)
                pending = tm_earliest(pending, runs_pass(a, c, now == UINT64_MAX ? 1 : now, d));
            else
                pending = tm_earliest(pending, c->age_ms + tm_opt.arena_purge_delay);
        }
        if (c->empty_since) {
            if (purge_under_way(c)) {
                kept++;
            } else if (c->empty_since + tm_opt.arena_purge_delay > now) {
                pending = tm_earliest(pending, c->empty_since + tm_opt.arena_purge_delay);
                kept++;
            } else if (kept < tm_opt.arena_retain) {
                kept++;
                if (!c->purged && tm_defer_full(d)) {
                    pending = now; /* on the next operation */
                } else if (!c->purged) {
                    purge_chunk(a, c, d);
                    if (a->dirty_extra) a->dirty_extra--; /* kept for nothing */
                }
            } else if (tm_defer_full(d)) {
                pending = now;
            } else {
                chunk_unlist(a, c);
                if (!c->purged) {
                    a->ndirty--;
                    if (a->dirty_extra) a->dirty_extra--; /* kept for nothing */
                }
                /* purged whole there: all zero again */
                tm_defer_add(d, sh, TM_DEFER_RELEASE, c, c, TM_CHUNK_SIZE);
            }
        }
        c = nx;
    }
    tm_clock_set(&tm_arena_clock, &a->sh, pending);
}

/* Whether units [u, u + n) of c are held for a purge of free runs: used, and in no block. */
static bool held(const tm_achunk_t *c, unsigned u, unsigned n) {
    if (u < c->first || u + n > nunits || next_bit(c->used, u, false) < u + n ||
        next_bit(c->start, u, true) < u + n)
        return false;
    unsigned s = prev_set(c->start, u); /* the last block that starts below u */
    return s == nunits || s + c->len[s] <= u;
}

static void arena_purged(tm_shard_t *sh, void *obj, void *p, size_t bytes, bool zero) {
    (void)zero; /* a chunk's set-up does not count on it */
    tm_achunk_t *c = obj;
    bool whole = p == whole_pages(c) && bytes == (uintptr_t)c + TM_CHUNK_SIZE - (uintptr_t)p;
    if (!whole) {
        /* Free runs of a chunk in use: their units, held as used meanwhile, are free again.
         * Unless a fork child's purges_lost took them back already: a fork from a signal
         * handler that interrupted this thread's tm_defer_run, whose purges come back here. */
        unsigned u = (unsigned)(((uintptr_t)p - (uintptr_t)c) >> tm_arena_shift);
        unsigned n = (unsigned)(bytes >> tm_arena_shift);
        if (tm_unlikely(c->runs_purging == 0 || !held(c, u, n))) return;
        run_free(c, u, n, false);
        c->runs_purging--;
        return;
    }
    if (tm_unlikely(!c->purging)) return; /* the same, for a whole chunk */
    c->purging = 0;
    c->purged = 1;
    ((tm_arena_t *)sh)->purged++;
}

/* ---- allocation ------------------------------------------------------------------------- */
/* The arena this thread last allocated from (-1: none): see tm_shard_home. */
static __thread int arena_last __attribute__((tls_model("initial-exec"))) = -1;

static tm_arena_t *arena_acquire(void) {
    uintptr_t self = (uintptr_t)&arena_last;
    int last = arena_last;
    unsigned home = last >= 0 ? tm_shard_home(last, &arenas[last].sh, tm_narenas, self)
                              : tm_shard_adopt(&tm_arena_clock, self);
    tm_arena_t *a = &arenas[home];
    if (tm_likely(tm_trylock(&a->sh.lock))) {
        tm_shard_mark(&a->sh, self);
        arena_last = (int)home;
        return a;
    }
    /* Busy: this request goes elsewhere, but the thread does not move there. One busy lock
     * says nothing of where the thread runs, and moving on it mixes the blocks of threads
     * that run at once (the heap, whose requests are rarer, keeps its own rule: heap.c). */
    for (unsigned k = 1; k < tm_narenas; k++) {
        tm_arena_t *b = &arenas[(home + k) % tm_narenas];
        if (tm_trylock(&b->sh.lock)) return b;
    }
    tm_lock(&a->sh.lock);
    return a;
}

/* Under a's lock: a chunk of a with a free run of need units, which starts at *unit; NULL when
 * none has one. */
static tm_achunk_t *find_in(tm_arena_t *a, unsigned need, unsigned *unit) {
    for (tm_achunk_t *c = a->chunks; c; c = c->next) {
        if (c->free_units < need || need > c->max_run || c->purging) continue;
        unsigned i = find_run(c, need);
        if (i != nunits) {
            /* First fit: no run of need units or more starts below i, so none of 2^b >= need
             * units. */
            unsigned b = fit_of(need);
            for (b += need > 1u << b; b < TM_FITS && c->fit[b] < i; b++) c->fit[b] = (uint16_t)i;
            *unit = i;
            return c;
        }
        c->max_run = need - 1; /* find_run is exact: no run is this long */
    }
    return NULL;
}

/* Under a's lock, which it lets go of: the run of need units at unit i of c becomes a block. */
static void *take_run(tm_arena_t *a, tm_achunk_t *c, unsigned i, unsigned need) {
    tm_block_t *b = (tm_block_t *)((char *)c + ((size_t)i << tm_arena_shift));
    if (((c->freed[i / 64] >> (i % 64)) & 1) && tm_unlikely(!tm_block_is_free(b))) {
        tm_unlock(&a->sh.lock);
        tm_slab_corrupt(b);
    }
    /* free and realloc test the word: a live block must not carry it */
    drop_marks_with(c, i, need, true);
    tm_rstore(c->start[i / 64], c->start[i / 64] | 1ULL << (i % 64));
    tm_rstore(c->len[i], (uint16_t)need);
    if (c->empty_since) {
        if (!c->purged) a->ndirty--;
        chunk_reused(a, c);
        c->empty_since = 0;
        c->purged = 0;
        a->nempty--;
        runs_dirtied(a, c); /* kept committed while free: its free runs are dirty */
    }
    c->free_units -= need;
    a->used_units += need;
    a->nalloc++;
    tm_defer_t d;
    d.n = 0;
    tm_clock_tick(&tm_arena_clock, &a->sh, 0, &d);
    tm_unlock(&a->sh.lock);
    if (tm_unlikely(d.n)) tm_defer_run(&tm_arena_clock, &d);
    return b;
}

/* No chunk could be had (the address space is exhausted): a run freed into any arena will do,
 * as glibc retries in another arena. Arenas are per CPU and a thread mostly follows its CPU,
 * so the blocks it freed may all sit in an arena it no longer uses. */
static tm_noinline void *alloc_elsewhere(unsigned home, unsigned need) {
    for (unsigned k = 0; k < tm_narenas; k++) {
        tm_arena_t *a = &arenas[(home + k) % tm_narenas];
        unsigned i;
        tm_lock(&a->sh.lock);
        tm_achunk_t *c = find_in(a, need, &i);
        if (c) return take_run(a, c, i, need);
        tm_unlock(&a->sh.lock);
    }
    errno = ENOMEM;
    return NULL;
}

void *tm_arena_alloc(size_t n) {
    unsigned need = (unsigned)((n + (1UL << tm_arena_shift) - 1) >> tm_arena_shift);
    if (need == 0) need = 1;
    tm_arena_t *a = arena_acquire();
    unsigned i = nunits;
    tm_achunk_t *c = find_in(a, need, &i);
    if (c == NULL) {
        /* A new chunk may take a new reservation (mmap): not under the arena's lock. */
        tm_unlock(&a->sh.lock);
        /* Not while this thread's own cache holds blocks that may give the run (mcache.c). */
        if (tm_mcache_reclaim()) {
            tm_lock(&a->sh.lock);
            if ((c = find_in(a, need, &i)) != NULL) return take_run(a, c, i, need);
            tm_unlock(&a->sh.lock);
        }
        bool dirty = false;
        tm_achunk_t *fresh =
            tm_chunk_alloc(TM_KIND_ARENA, meta_bytes(1UL << tm_arena_shift), &dirty);
        if (fresh == NULL) return alloc_elsewhere(a->idx, need);
        tm_lock(&a->sh.lock);
        c = chunk_new(a, fresh, dirty);
        i = c->first;
    }
    return take_run(a, c, i, need);
}

static void free_in(tm_achunk_t *c, unsigned i, void *p, const char *func, uint64_t since);

void tm_arena_free(void *p, const char *func) {
    unsigned i;
    tm_achunk_t *c = tm_arena_chunk_of(p, &i, func);
    free_in(c, i, p, func, 0);
}

void tm_arena_free_valid(void *p, const char *func, uint64_t since) {
    uintptr_t a = (uintptr_t)p;
    tm_achunk_t *c = (tm_achunk_t *)(a & ~TM_CHUNK_MASK);
    /* Bounded still: a program racing two frees of p may have had the chunk leave since. */
    if (tm_unlikely(c->arena >= tm_narenas)) tm_fatal(func, "invalid pointer", p);
    free_in(c, (unsigned)((a & TM_CHUNK_MASK) >> tm_arena_shift), p, func, since);
}

/* Frees the block at unit i of chunk c, its arena's lock taken here. */
static void free_in(tm_achunk_t *c, unsigned i, void *p, const char *func, uint64_t since) {
    tm_arena_t *a = &arenas[c->arena];
    tm_lock(&a->sh.lock);
    if (tm_unlikely(!tm_arena_is_start(c, i))) {
        bool used = (c->used[i / 64] >> (i % 64)) & 1;
        tm_unlock(&a->sh.lock);
        tm_fatal(func, used ? "invalid pointer" : "double free of", p);
    }
    unsigned n = c->len[i];
    tm_rstore(c->start[i / 64], c->start[i / 64] & ~(1ULL << (i % 64)));
    run_free(c, i, n, true);
    tm_block_link((tm_block_t *)p, NULL);
    c->freed[i / 64] |= 1ULL << (i % 64);
    c->free_units += n;
    a->used_units -= n;
    a->nfree++;
    uint64_t now = 0;
    tm_defer_t d;
    d.n = 0;
    if (chunk_empty(c)) {
        now = tm_now_ms_lazy(); /* early at worst: the chunk is purged sooner */
        if (since == 0 || since > now) since = now ? now : 1;
        c->empty_since = since;
        a->nempty++;
        a->ndirty++;
        /* Past the share of committed free chunks the arena may keep, this one goes back at
         * once: the delay is for chunks about to be reused, and when use falls away (threads
         * gone idle, a phase ended) nothing else may come by to purge them. One with a purge
         * of its free runs still under way is purged here instead of leaving (see
         * chunk_unlist). */
        if (a->ndirty >
            1 + a->dirty_extra + (uint64_t)(a->nchunks - a->nempty) * tm_opt.arena_dirty / 100) {
            if (tm_opt.arena_purge_delay && tm_purger_running() && !purge_under_way(c)) {
                chunk_leave_dirty(a, c, &d);
            } else {
                c->hasty_ms = now ? now : 1;
                purge_chunk(a, c, &d);
            }
        } else {
            tm_clock_lower(&tm_arena_clock, &a->sh, since + tm_opt.arena_purge_delay);
        }
    } else {
        runs_dirtied(a, c);
    }
    tm_clock_tick(&tm_arena_clock, &a->sh, now, &d);
    tm_unlock(&a->sh.lock);
    if (tm_unlikely(d.n)) tm_defer_run(&tm_arena_clock, &d);
}

/* tm_arena_usable's verdict on a unit of a sealed chunk that starts no live block: a unit
 * in use inside a block is not a block's start; a free one was freed. */
void tm_arena_not_live(const tm_achunk_t *c, unsigned i, const void *p, const char *func) {
    bool used = (c->used[i / 64] >> (i % 64)) & 1;
    tm_fatal(func, used ? "invalid pointer" : "double free of", p);
}

/* Shrinks by freeing the tail units, grows into the free units that follow. */
bool tm_arena_resize(void *p, size_t n) {
    unsigned i;
    tm_achunk_t *c = tm_arena_chunk_of(p, &i, "realloc");
    tm_arena_t *a = &arenas[c->arena];
    unsigned need = (unsigned)((n + (1UL << tm_arena_shift) - 1) >> tm_arena_shift);
    tm_lock(&a->sh.lock);
    if (!tm_arena_is_start(c, i)) {
        tm_unlock(&a->sh.lock);
        tm_fatal("realloc", "invalid pointer", p);
    }
    unsigned have = c->len[i];
    bool ok = true;
    if (need < have) {
        run_free(c, i + need, have - need, true);
        runs_dirtied(a, c);
        c->free_units += have - need;
        a->used_units -= have - need;
    } else if (need > have) {
        unsigned e = i + have;
        ok = e + (need - have) <= nunits && next_bit(c->used, e, true) >= i + need;
        if (ok) {
            drop_marks_with(c, e, need - have, true);
            c->free_units -= need - have;
            a->used_units += need - have;
        }
    }
    if (ok) tm_rstore(c->len[i], (uint16_t)need);
    tm_unlock(&a->sh.lock);
    return ok;
}

/* ---- set-up, fork, statistics --------------------------------------------------------- */
void tm_arena_init(void) {
    unsigned n = tm_opt.arenas ? tm_opt.arenas : tm_ncpus();
    tm_narenas = n < TM_MAX_ARENAS ? n : TM_MAX_ARENAS;
    tm_arena_shift = (unsigned)__builtin_ctzl(tm_opt.arena_unit);
    nunits = (unsigned)(TM_CHUNK_SIZE >> tm_arena_shift);
    nwords = nunits / 64;
    find_run_setup();
    for (unsigned i = 0; i < tm_narenas; i++) arenas[i].idx = i;
    tm_clock_init(&tm_arena_clock, &arenas[0].sh, sizeof arenas[0], tm_narenas,
                  &tm_opt.arena_purge_delay, arena_maintain, arena_purged);
}

/* malloc_trim: purges every wholly free chunk now, whatever its age. */
void tm_arena_trim(void) { tm_clock_trim(&tm_arena_clock); }
uint64_t tm_arena_background(uint64_t now) { return tm_clock_run(&tm_arena_clock, now); }

/* In a fork child: the purges that other threads had under way never come back (their system
 * calls run in the parent), so the chunks and units they hold would stay out of use for good.
 * They are taken back as if the purges had not run: committed, and purged a delay later. The
 * units held for purges of free runs are those used but in no block (nor the metadata). */
static void purges_lost(tm_arena_t *a) {
    uint64_t now = 0;
    for (tm_achunk_t *c = a->chunks; c; c = c->next) {
        if (!purge_under_way(c)) continue;
        now = now ? now : tm_now_ms();
        if (c->purging) { /* wholly free: a dirty free chunk again */
            c->purging = 0;
            a->ndirty++;
            set_range(c->dirty, c->first, nunits - c->first, true);
        }
        if (c->runs_purging) {
            /* First the units of the metadata and of the blocks, then the used ones outside. */
            uint64_t held_units[TM_ARENA_WORDS] = {0};
            set_range(held_units, 0, c->first, true);
            for (unsigned u = next_bit(c->start, 0, true); u < nunits;
                 u = next_bit(c->start, u + 1, true))
                set_range(held_units, u, c->len[u], true);
            for (unsigned w = 0; w < nwords; w++) held_units[w] = c->used[w] & ~held_units[w];
            for (unsigned u = next_bit(held_units, 0, true), e; u < nunits;
                 u = next_bit(held_units, e, true)) {
                e = next_bit(held_units, u + 1, false);
                run_free(c, u, e - u, true);
            }
            c->runs_purging = 0;
            if (!c->empty_since) runs_dirtied(a, c);
        }
    }
    if (now) tm_clock_lower(&tm_arena_clock, &a->sh, now + tm_opt.arena_purge_delay);
}

void tm_arena_locks(tm_lock_op_t op) {
    for (unsigned i = 0; i < tm_narenas; i++) {
        tm_lock_fork(&arenas[i].sh.lock, op);
        if (op == TM_LOCK_RESET) purges_lost(&arenas[i]);
    }
}

void tm_arena_thread_exit(void) {
    tm_shard_leave(&tm_arena_clock, arena_last, (uintptr_t)&arena_last);
}

unsigned tm_arena_count(void) { return tm_narenas; }

uint64_t tm_arena_allocs_of(unsigned idx) {
    return idx < tm_narenas
               ? atomic_load_explicit((_Atomic uint64_t *)&arenas[idx].nalloc, memory_order_relaxed)
               : 0;
}

void tm_arena_totals(tm_arena_totals_t *t) {
    memset(t, 0, sizeof *t);
    for (unsigned i = 0; i < tm_narenas; i++) {
        tm_arena_t *a = &arenas[i];
        tm_lock(&a->sh.lock);
        t->nalloc += a->nalloc;
        t->nfree += a->nfree;
        t->chunks += a->nchunks;
        t->used_bytes += a->used_units << tm_arena_shift;
        t->purged_chunks += a->purged;
        t->released_chunks += a->released;
        t->dirty_chunks += a->ndirty;
        t->churn_chunks += a->dirty_extra;
        t->purged_run_bytes += a->run_bytes;
        tm_unlock(&a->sh.lock);
    }
    t->chunks_peak = atomic_load_explicit(&chunks_peak, memory_order_relaxed);
}
