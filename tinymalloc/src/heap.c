/* The heap tier: large blocks, best fit, in heap spans, and the heuristics it is named for.
 *
 * Layout. A heap is a set of spans; a span is a run of contiguous 4 MiB chunks marked
 * TM_KIND_HEAP. It starts with a span header (64 bytes), then blocks laid end to end, then an
 * end sentinel (a 64-byte header that is never free), so every block has a next block and
 * coalescing needs no bounds test. A block starts with a 64-byte header; the user pointer is
 * just after it, so the header of any pointer is p - 64. Headers are in band but sealed: the
 * seal mixes the per-process secret with the header's address and fields, and a header whose
 * seal does not match is never trusted (invalid pointer, or an overflow from the block below).
 *
 * Concurrency. There are `heaps` heaps (default one per CPU, at most TM_MAX_ARENAS), each
 * behind the lock of its tm_shard_t, which guards every field of the heap and every header of
 * its blocks. Every thread starts on heap 0, as glibc gives every thread its main arena until
 * it meets contention. When that heap's lock is taken a thread moves to the next free one
 * (trylock), or waits for its own when all are taken, and from then on keeps to the heap it got
 * (heap_home): contention spreads threads out once. Not a heap per CPU, as the arenas have:
 * large blocks are few and dear (a page fault per page touched), so threads that do not
 * collide lose little to a shared lock, while each CPU's heap grew to its own peak and held it
 * apart from the others' (thread-phases on two threads peaked at 104-122 MB with a heap per
 * CPU, 85-95 MB with this; glibc 92, tcmalloc 80). For the same reason a miss takes a fit from
 * another heap whose lock is free before its own heap grows. A free takes the lock of the heap
 * named in the block's header. Without a lock only what a live block's header never changes is
 * read (its heap, to know which lock to take), and it is checked again under the lock.
 *
 * Best fit. Free blocks sit in size bins, four per doubling, with a two-word bitmap of the
 * non-empty bins: the request's own bin is searched for the smallest block that fits, then the
 * next non-empty bin (found with ctz) for its smallest block; ties go to the lower address,
 * which keeps the heap compact. Each list scan is bounded (TM_HEAP_SCAN entries).
 *
 * Growth policy (the README's "How it works" states it too):
 *   - A hit (a free block fits) resets the consecutive-miss counter and decays the
 *     anticipation: ahead -= ahead * heap_decay / 100. Except a hit in the room the last
 *     growth made past its need, while no block was freed since: the anticipation served it,
 *     and the streak goes on. (Else a program that keeps growing alternates a miss and a hit,
 *     and its anticipation never grows: 28 growths for 48 new 3 MiB blocks.)
 *   - A miss grows the heap by what is needed. From heap_miss_threshold consecutive misses
 *     on, it also grows by `ahead`, which starts at the size asked for and is multiplied by
 *     heap_growth / 100 at each further consecutive miss: a program that keeps growing gets
 *     fewer, larger growths.
 *   - Bound: the extra never takes the heap above (peak in use, counting this request)
 *     * (100 + heap_bound) / 100; what is needed is always granted (up to heap_max).
 *   - Spans are whole chunks; a new span that lands right after the heap's last span is
 *     merged into it, so blocks coalesce across the old border.
 *   - Free blocks give their pages back (madvise) once they have been free heap_purge_delay
 *     ms; the check runs on heap operations at most every delay / 2. A heap's operations
 *     also check the other heaps once one of them is due (the tier's tm_clock_t): memory
 *     freed into a heap that no thread uses any more is still purged.
 *   - Wholly free spans are returned to the chunk layer once the heap holds more than
 *     heap_retain free bytes.
 *   - No system call runs under a heap's lock. A block whose pages go back is taken out of
 *     the bins (state PURGING, never merged) while madvise runs; a span comes from the chunk
 *     layer (which may map) with the lock released and is added when it is taken again.
 *
 * Recent blocks. A free keeps the block whole, out of the bins and unmerged (state RECENT), in
 * one of its heap's heap_recent slots, and a later malloc of the same block size (to within
 * what carving would not split off) takes it back with no search, split or merge: a program
 * that replaces buffers of a few sizes pays the bins' work only when its sizes change. The
 * bench's micro `large` case (random power-of-two sizes of 64 KiB to 8 MiB, 5 of 8 in the heap)
 * spent 938 instructions in heap.c per heap malloc and free with every free merged, 684 with 8
 * slots (callgrind; two requests in three take a recent block). When one more comes into a
 * full set of slots the oldest slot's block merges into the bins; all of them do before a request
 * that the bins cannot hold from committed pages (before the heap grows, looks in other heaps or
 * carves pages the OS has still to give), and at maintenance once their heap_purge_delay is over:
 * they never make the heap grow or touch fresh pages for a request that merged they would hold, and
 * are purged when a free block of the same age would be. A huge free merges them all first (its
 * span may then go back whole); frees that purge at once (heap_purge_delay 0) keep none.
 *
 * Off by default (heap_recent 0): they move peak RSS, both ways, by how the blocks they keep
 * apart lie. Eight slots took huge-blocks (two blocks of 32-128 MiB replaced in turn) to 1.067x
 * the peak RSS of every free merged and realloc-huge to 0.929x, for no time gain the recorded
 * runs could separate (results/20261208-quick-heap-recent); slots only for blocks under
 * huge_threshold, at most its bytes in all, brought huge-blocks back but took large-churn to
 * 1.111x and realloc-huge to 1.212x (results/20261208-quick-heap-recent-bounded), and weighing
 * recent blocks in best fit took huge-blocks to 1.17x (by hand). Their rule is still to find.
 *
 * Huge blocks. The heap takes every request it can hold; own mappings (huge.c) serve only
 * alignments above a chunk and what the heap cannot hold (past heap_max, or no span to be
 * had). What a mapping would give at free, the heap gives to a huge block: one of at least
 * the adaptive threshold tm_huge_threshold goes back to the OS at once (its span released when
 * the free leaves the span wholly free, else its pages purged), so a program that frees one
 * large buffer and goes on with small blocks does not keep it. And like glibc's dynamic mmap
 * threshold, each such free raises the threshold to just above the block's size (at most
 * huge_threshold_max): a program that churns blocks of that size keeps them in the heap from
 * then on, with no page faults to pay again. A huge request that misses within
 * heap_purge_delay of such a free shows the churn at once, and raises it to the maximum.
 */
#include "tm_internal.h"

#include <errno.h>
#include <sched.h>
#include <string.h>

#define TM_HEAP_HDR 64
/* Block sizes are multiples of the header, not of a page. With page multiples a block of 2^k
 * bytes took 2^k + 4 KiB, so block borders drifted by a page per block and a program that
 * replaces power-of-two buffers kept writing headers on pages it had never touched: the bench's
 * micro `large` case took 2,161 page faults and 9.9 MB in 32,000 replacements, against 360
 * faults and 2.6 MB with borders that drift by 64 bytes. A page may now hold the end of one
 * block and the header of the next: purging takes whole pages inside a block only (pages_lo,
 * pages_hi), and the known-zero part ends at the page floor of a block's end. */
#define TM_HEAP_GRAIN 64UL
#define TM_HEAP_SPLIT 4096UL /* smallest remainder split off as a free block */
#define TM_HEAP_BINS 128
#define TM_HEAP_SCAN 32

/* PURGING: free, out of the bins while its pages go back (no lock held), never merged.
 * RECENT: free, out of the bins in one of the heap's recent slots, never merged (as if used)
 * until it leaves them (recent_merge). */
enum {
    TM_HB_USED = 0x55ed,
    TM_HB_FREE = 0xf4ee,
    TM_HB_END = 0xe4d0,
    TM_HB_PURGING = 0x9e6e,
    TM_HB_RECENT = 0x4ece
};

typedef struct tm_hblock {
    uintptr_t seal;       /* seal_of() the fields below */
    size_t size;          /* bytes from this header to the next one */
    size_t prev_size;     /* bytes of the block before it; 0 for the first of a span */
    uint32_t heap;        /* owning heap */
    uint32_t state;       /* TM_HB_* */
    size_t req;           /* used: bytes asked for; free: ms when freed */
    uintptr_t next, prev; /* free only: bin links, encoded */
    uint32_t purged;      /* free only: its pages went back to the OS */
    uint32_t zero;        /* offset of the block's known-zero part; 0: none (see below) */
} tm_hblock_t;

/* Known-zero memory, so that calloc need not clear (and commit) pages the OS gave zeroed.
 * Invariant: for a free block b with b->zero != 0, and for a used block from the moment it is
 * carved until calloc has read it, every byte in [b + b->zero, page floor of b + b->size) is
 * zero. Fresh spans start such a part (the chunk layer hands out zeroed chunks), and so does
 * a purge that dropped every page of a free block past its header's (not a lazy one: those
 * pages keep their contents until the kernel takes them); a split passes it on to the tail, a
 * merge or a free ends it. Any purge keeps it: a dropped page reads zero, and a lazily freed
 * one keeps its contents, zero included. */

typedef struct tm_hspan {
    uintptr_t seal;
    size_t size; /* bytes of the span, a chunk multiple */
    struct tm_hspan *next, *prev;
    uint32_t heap;
    uint32_t pad[7];
} tm_hspan_t;

_Static_assert(sizeof(tm_hblock_t) == TM_HEAP_HDR, "block header is 64 bytes");
_Static_assert(sizeof(tm_hspan_t) == TM_HEAP_HDR, "span header is 64 bytes");

typedef struct {
    tm_shard_t sh; /* the lock that guards every field below, and the next purge */
    uint32_t idx;
    tm_hspan_t *spans;
    uint64_t binmap[TM_HEAP_BINS / 64];
    tm_hblock_t *bins[TM_HEAP_BINS];
    /* Statistics: all under lock. Invariant: size == sum of block sizes + 128 per span
     * (span header and sentinel), in_use == sum of used block sizes, peaks >= currents. */
    size_t size, peak_size, in_use, peak_in_use, free_bytes;
    uint64_t blocks, free_blocks, consecutive_misses, misses, hits, grows;
    uint64_t purged_bytes, unmapped_bytes, nalloc, nfree;
    size_t ahead;
    size_t ahead_left;    /* what the last growth added past its need, less the hits since */
    size_t purging_bytes; /* the sizes of its PURGING blocks */
    /* Invariant: the RECENT blocks of the heap are exactly the non-NULL slots, nrecent of
     * them, recent_bytes their sizes; they count in free_blocks, not in free_bytes (the bins'
     * bytes). recent_size[i] is recent[i]'s size (0: empty), so that a request's search reads
     * no block header. recent_next: the slot the next free goes to, its block (if any) the
     * oldest but for the slots that hits emptied since. */
    size_t recent_size[TM_HEAP_RECENT_MAX];
    tm_hblock_t *recent[TM_HEAP_RECENT_MAX];
    unsigned nrecent, recent_next;
    size_t recent_bytes;
    _Atomic uint64_t purges_done; /* purges handed back (heap_purged); read without the lock */
} __attribute__((aligned(64))) tm_heap_t;

static tm_heap_t heaps[TM_MAX_ARENAS];
static unsigned nheaps = 1;
/* The heap this thread keeps to since it first found a heap's lock taken (-1: not yet). */
static __thread int heap_home __attribute__((tls_model("initial-exec"))) = -1;
tm_clock_t tm_heap_clock;
static _Atomic size_t tm_huge_threshold; /* see "Huge blocks" above */
static _Atomic uint64_t huge_back_ms;    /* when a huge block last went back at once */

/* ---- sealed headers ------------------------------------------------------------------- */
/* Sizes are below 2^47, so state and heap in the top bits keep every field apart. */
static uintptr_t seal_of(const tm_hblock_t *b) {
    return tm_seal(b, b->size ^ (uint64_t)b->state << 48, b->prev_size ^ (uint64_t)b->heap << 48);
}
static void seal(tm_hblock_t *b) { b->seal = seal_of(b); }
static bool sealed(const tm_hblock_t *b) { return b->seal == seal_of(b); }
static uintptr_t span_seal_of(const tm_hspan_t *s) { return tm_seal(s, TM_KIND_HEAP, s->size); }

static uintptr_t link_enc(const tm_hblock_t *to, const tm_hblock_t *at) {
    return (uintptr_t)to ^ tm_secret ^ ((uintptr_t)at >> 6);
}
static tm_hblock_t *link_dec(uintptr_t v, const tm_hblock_t *at) {
    return (tm_hblock_t *)(v ^ tm_secret ^ ((uintptr_t)at >> 6));
}

static tm_hblock_t *next_block(tm_hblock_t *b) { return (tm_hblock_t *)((char *)b + b->size); }
static tm_hblock_t *prev_block(tm_hblock_t *b) {
    return b->prev_size ? (tm_hblock_t *)((char *)b - b->prev_size) : NULL;
}

/* A neighbour read through a header's sizes must itself be sealed: else the heap is corrupt
 * (a write past the end of a block), and going on would spread the damage. */
static tm_hblock_t *checked(tm_hblock_t *b) {
    if (tm_unlikely(!sealed(b))) tm_fatal("free", "heap block header corrupted at", b);
    return b;
}

/* ---- bins ------------------------------------------------------------------------------ */
static unsigned bin_of(size_t size) {
    size_t units = size / TM_HEAP_GRAIN; /* 0 only for the lead of an aligned block */
    if (units < 4) return units ? (unsigned)units - 1 : 0; /* under 4 pages: bins 0..2 */
    unsigned lg = 63u - (unsigned)__builtin_clzl(units);
    unsigned sub = (unsigned)(units >> (lg - 2)) & 3;
    unsigned b = lg * 4 + sub - 5; /* lg 2: 3..6 */
    return b < TM_HEAP_BINS ? b : TM_HEAP_BINS - 1;
}

static void bin_insert(tm_heap_t *h, tm_hblock_t *b) {
    unsigned i = bin_of(b->size);
    tm_hblock_t *head = h->bins[i];
    b->next = link_enc(head, b);
    b->prev = link_enc(NULL, b);
    if (head) head->prev = link_enc(b, head);
    h->bins[i] = b;
    h->binmap[i / 64] |= 1ULL << (i % 64);
    h->free_blocks++;
    h->free_bytes += b->size;
}

static void bin_remove(tm_heap_t *h, tm_hblock_t *b) {
    unsigned i = bin_of(b->size);
    tm_hblock_t *nx = link_dec(b->next, b), *pv = link_dec(b->prev, b);
    if (pv)
        pv->next = link_enc(nx, pv);
    else
        h->bins[i] = nx;
    if (nx) nx->prev = link_enc(pv, nx);
    if (h->bins[i] == NULL) h->binmap[i / 64] &= ~(1ULL << (i % 64));
    h->free_blocks--;
    h->free_bytes -= b->size;
}

/* Bytes of a block of `size` carved from the front of free block b that would land on pages
 * not committed (purged, or fresh: past b's known-zero offset). */
static size_t fresh_cost(const tm_hblock_t *b, size_t size) {
    if (b->purged) return size;
    return b->zero && size > b->zero ? size - b->zero : 0;
}

/* The smallest block of bin i that is >= size (lowest address on ties), looking at no more
 * than TM_HEAP_SCAN of them; with warm, only those that hold size on committed pages. */
static tm_hblock_t *bin_best(tm_heap_t *h, unsigned i, size_t size, bool warm) {
    tm_hblock_t *best = NULL;
    unsigned n = 0;
    for (tm_hblock_t *b = h->bins[i]; b && n < TM_HEAP_SCAN; b = link_dec(b->next, b), n++) {
        if (tm_unlikely(b->state != TM_HB_FREE || !sealed(b)))
            tm_fatal("malloc", "heap free list corrupted at", b);
        if (b->size >= size && (!warm || fresh_cost(b, size) == 0) &&
            (!best || b->size < best->size || (b->size == best->size && b < best)))
            best = b;
    }
    return best;
}

/* The best of the first bin, from the request's up, that has a block bin_best takes. */
static tm_hblock_t *best_fit(tm_heap_t *h, size_t size, bool warm) {
    unsigned i = bin_of(size);
    tm_hblock_t *b = bin_best(h, i, size, warm);
    if (b) return b;
    for (unsigned w = (i + 1) / 64; w < TM_HEAP_BINS / 64; w++) {
        uint64_t m = h->binmap[w];
        if (w == (i + 1) / 64) m &= ~0ULL << ((i + 1) % 64);
        while (m) {
            unsigned j = w * 64 + (unsigned)__builtin_ctzll(m);
            if ((b = bin_best(h, j, size, warm)) != NULL) return b;
            m &= m - 1; /* only the last bin can hold blocks smaller than its floor */
        }
    }
    return NULL;
}

/* Best fit, but a warm request (a malloc: one that will write what it gets) takes committed
 * pages before pages the OS has still to give: best fit alone would carve a span's fresh tail
 * or a purged block while a larger freed block sits committed, and the peak holds both
 * (large-churn). A calloc keeps plain best fit: fresh pages read zero and need no clearing,
 * where a committed block must be cleared whole. Aligned requests keep it too (their search
 * size is not what they touch). */
static inline __attribute__((always_inline)) tm_hblock_t *find_fit(tm_heap_t *h, size_t size,
                                                                   bool warm) {
    tm_hblock_t *b = best_fit(h, size, false);
    if (!warm || b == NULL || fresh_cost(b, size) == 0) return b;
    tm_hblock_t *w = best_fit(h, size, true);
    return w ? w : b;
}

/* ---- freeing and purging ------------------------------------------------------------------ */
/* Makes b, which is in no bin, free: merges it with its free neighbours and puts the result in
 * its bin. The result counts as purged only when every part was, and as freed when the
 * latest part was. */
static tm_hblock_t *merge_free(tm_heap_t *h, tm_hblock_t *b) {
    tm_hblock_t *nx = checked(next_block(b));
    if (nx->state == TM_HB_FREE) {
        bin_remove(h, nx);
        b->size += nx->size;
        b->purged &= nx->purged;
        b->zero = 0; /* nx's header and b's tail lie inside it now */
        if (nx->req > b->req) b->req = nx->req;
        h->blocks--;
        nx = checked(next_block(nx));
    }
    tm_hblock_t *pv = b->prev_size ? checked(prev_block(b)) : NULL;
    if (pv && pv->state == TM_HB_FREE) {
        bin_remove(h, pv);
        pv->size += b->size;
        pv->purged &= b->purged;
        pv->zero = 0;
        if (b->req > pv->req) pv->req = b->req;
        b->seal = 0;
        b = pv;
        h->blocks--;
    }
    b->state = TM_HB_FREE;
    seal(b);
    nx->prev_size = b->size;
    seal(nx);
    bin_insert(h, b);
    return b;
}

/* ---- recent blocks ------------------------------------------------------------------------ */
static void recent_out(tm_heap_t *h, unsigned i) {
    h->recent_bytes -= h->recent_size[i];
    h->recent_size[i] = 0;
    h->recent[i] = NULL;
    h->nrecent--;
    h->free_blocks--;
}

/* The block of recent slot i into the bins, merged as its free would have merged it; the
 * result. */
static tm_hblock_t *recent_merge(tm_heap_t *h, unsigned i) {
    tm_hblock_t *b = h->recent[i];
    if (tm_unlikely(b->state != TM_HB_RECENT || !sealed(b)))
        tm_fatal("free", "heap block header corrupted at", b);
    recent_out(h, i);
    return merge_free(h, b);
}

/* Every recent block of h into the bins; false when it had none. */
static bool recent_flush(tm_heap_t *h) {
    if (h->nrecent == 0) return false;
    for (unsigned i = 0; i < tm_opt.heap_recent; i++)
        if (h->recent[i]) recent_merge(h, i);
    return true;
}

/* b, a used block just freed (purged and zero cleared, req its free time), into the next
 * slot; the block there, the oldest, merges. */
static void recent_keep(tm_heap_t *h, tm_hblock_t *b) {
    unsigned i = h->recent_next;
    if (h->recent[i]) recent_merge(h, i);
    h->recent_next = i + 1 < tm_opt.heap_recent ? i + 1 : 0;
    b->state = TM_HB_RECENT;
    seal(b);
    h->recent[i] = b;
    h->recent_size[i] = b->size;
    h->nrecent++;
    h->recent_bytes += b->size;
    h->free_blocks++;
}

/* A recent block that a block of `size` bytes takes whole (carving it would split nothing
 * off), out of its slot; NULL when none. */
static tm_hblock_t *recent_take(tm_heap_t *h, size_t size) {
    for (unsigned i = 0; i < tm_opt.heap_recent; i++) {
        if (h->recent_size[i] - size >= TM_HEAP_SPLIT) continue; /* smaller ones wrap, 0 too */
        tm_hblock_t *b = h->recent[i];
        if (tm_unlikely(b->size != h->recent_size[i] || b->state != TM_HB_RECENT || !sealed(b)))
            tm_fatal("malloc", "heap free list corrupted at", b);
        recent_out(h, i);
        return b;
    }
    return NULL;
}

/* b, a neighbour of a block realloc grows, as the bins would have it: merged, when it is a
 * recent block. */
static tm_hblock_t *settled(tm_heap_t *h, tm_hblock_t *b) {
    if (b->state != TM_HB_RECENT) return b;
    for (unsigned i = 0; i < tm_opt.heap_recent; i++)
        if (h->recent[i] == b) return recent_merge(h, i);
    tm_fatal("realloc", "heap block header corrupted at", b);
}

/* b->zero for a known-zero part that starts at `at` (0 when it does not fit the field). */
static uint32_t zero_offset(const tm_hblock_t *b, uintptr_t at) {
    uintptr_t off = at - (uintptr_t)b;
    return at > (uintptr_t)b && off <= UINT32_MAX ? (uint32_t)off : 0;
}

/* The whole pages of b past its header's page: what a purge can drop, and what calloc need
 * not clear when they are known zero. */
static uintptr_t pages_lo(const tm_hblock_t *b) {
    return tm_align_up((uintptr_t)b + TM_HEAP_HDR, TM_OS_PAGE);
}
static uintptr_t pages_hi(const tm_hblock_t *b) {
    return ((uintptr_t)b + b->size) & ~(TM_OS_PAGE - 1);
}

/* Takes free block b out of use and hands the pages inside it that meet [from, to) to d, to
 * purge once the lock is released (heap_purged puts it back, purged). The rest of b must be
 * purged already. False, b untouched, when d is full. */
static bool block_purge_part(tm_heap_t *h, tm_hblock_t *b, uintptr_t from, uintptr_t to,
                             tm_defer_t *d) {
    uintptr_t lo = pages_lo(b), hi = pages_hi(b);
    /* Pages the part shares with the rest of b are b's too, so they go with it. */
    from &= ~(TM_OS_PAGE - 1);
    to = tm_align_up(to, TM_OS_PAGE);
    if (from > lo) lo = from;
    if (to < hi) hi = to;
    if (hi <= lo) {
        b->purged = 1; /* nothing but its header's page */
        return true;
    }
    if (tm_defer_full(d)) return false;
    bin_remove(h, b);
    b->state = TM_HB_PURGING;
    seal(b);
    h->purging_bytes += b->size;
    tm_defer_add(d, &h->sh, TM_DEFER_PURGE, b, (void *)lo, hi - lo);
    return true;
}

static bool block_purge(tm_heap_t *h, tm_hblock_t *b, tm_defer_t *d) {
    return block_purge_part(h, b, (uintptr_t)b, (uintptr_t)b + b->size, d);
}

static void heap_purged(tm_shard_t *sh, void *obj, void *p, size_t bytes, bool zero) {
    (void)p; /* b's pages from pages_lo (or from the part freed last): bytes tells which */
    tm_heap_t *h = (tm_heap_t *)sh;
    tm_hblock_t *b = obj;
    /* Already back: a fork child's purges_lost took it, and this is the purge of the thread
     * that forked (from a signal handler that interrupted it here). */
    if (tm_unlikely(b->state != TM_HB_PURGING)) return;
    h->purged_bytes += bytes;
    h->purging_bytes -= b->size; /* a PURGING block keeps its size */
    atomic_fetch_add_explicit(&h->purges_done, 1, memory_order_release);
    b->purged = 1;
    /* Every page past the header's dropped: from there on b reads zero. */
    uintptr_t lo = pages_lo(b), hi = pages_hi(b);
    if (zero && hi > lo && bytes == hi - lo) b->zero = zero_offset(b, lo);
    merge_free(h, b);
}

static void span_unlink(tm_heap_t *h, tm_hspan_t *s) {
    if (s->prev)
        s->prev->next = s->next;
    else
        h->spans = s->next;
    if (s->next) s->next->prev = s->prev;
}

/* A free block that fills its span: first block (prev_size 0) followed by the sentinel. */
static bool whole_span(tm_hblock_t *b) {
    return b->prev_size == 0 && next_block(b)->state == TM_HB_END;
}

/* Takes the span of the free block b, which fills it, out of the heap; d gives it back to the
 * chunk layer once the lock is released. dirty: b is a huge block just freed; its pages go to
 * the chunk layer as they are, for the slabs and arenas, and are purged there a delay later. Spans
 * that maintenance returns are purged now: a merged block's free time is its newest part's, so what
 * a span holds that is older than the delay cannot be told from what is not. */
static void span_release(tm_heap_t *h, tm_hblock_t *b, bool dirty, tm_defer_t *d) {
    tm_hspan_t *s = (tm_hspan_t *)((char *)b - TM_HEAP_HDR);
    bin_remove(h, b);
    span_unlink(h, s);
    h->blocks--;
    h->size -= s->size;
    h->unmapped_bytes += s->size;
    s->seal = 0;
    tm_defer_add(d, &h->sh, dirty ? TM_DEFER_RELEASE_DIRTY : TM_DEFER_RELEASE, s, s, s->size);
}

/* Past heap_retain free bytes, returns spans that are wholly free; purges the other blocks
 * free for longer than the delay. Both through d, after the lock. Under the heap lock, at most
 * every delay / 2. */
static void heap_maintain(tm_shard_t *sh, uint64_t now, tm_defer_t *d) {
    tm_heap_t *h = (tm_heap_t *)sh;
    uint64_t delay = tm_opt.heap_purge_delay;
    uint64_t pending = 0;
    for (unsigned i = 0; i < tm_opt.heap_recent; i++) {
        tm_hblock_t *r = h->recent[i];
        if (r == NULL) continue;
        if (now == UINT64_MAX || r->req + delay <= now)
            recent_merge(h, i); /* its bin's walk below purges it */
        else
            pending = tm_earliest(pending, r->req + delay);
    }
    for (unsigned i = 0; i < TM_HEAP_BINS; i++) {
        tm_hblock_t *b = h->bins[i];
        while (b) {
            tm_hblock_t *nx = link_dec(b->next, b);
            if (whole_span(b) && h->free_bytes > tm_opt.heap_retain) {
                if (tm_defer_full(d))
                    pending = now; /* on the next operation */
                else
                    span_release(h, b, false, d);
            } else if (!b->purged) {
                if (b->req + delay > now) {
                    pending = tm_earliest(pending, b->req + delay);
                } else if (!block_purge(h, b, d)) {
                    pending = now;
                }
            }
            b = nx;
        }
    }
    tm_clock_set(&tm_heap_clock, &h->sh, pending);
}

/* ---- growth ----------------------------------------------------------------------------- */
static void stat_use(tm_heap_t *h, ssize_t delta) {
    h->in_use += (size_t)delta;
    if (h->in_use > h->peak_in_use) h->peak_in_use = h->in_use;
}

static void init_block(tm_hblock_t *b, size_t size, size_t prev_size, uint32_t heap,
                       uint32_t state) {
    b->size = size;
    b->prev_size = prev_size;
    b->heap = heap;
    b->state = state;
    seal(b);
}

/* After a miss: how many bytes of span to add for a free block of `need` bytes, by the policy
 * in the header comment (0: heap_max forbids it); *least is what the need alone takes. */
static size_t grow_size(tm_heap_t *h, size_t need, size_t *least) {
    h->consecutive_misses++;
    h->misses++;
    size_t extra = 0;
    if (h->consecutive_misses >= tm_opt.heap_miss_threshold) {
        /* Multiplied, then at least the need: requests that grow a little each time (48 of
         * 3 MiB, 3 MiB + 64 KiB, ...) were each a little above it, and reset it to the need
         * instead of multiplying it. */
        if (h->consecutive_misses > tm_opt.heap_miss_threshold && h->ahead < ((size_t)1 << 40))
            h->ahead = h->ahead / 100 * tm_opt.heap_growth;
        if (h->ahead < need) h->ahead = need;
        size_t peak = h->peak_in_use > h->in_use + need ? h->peak_in_use : h->in_use + need;
        size_t bound = peak / 100 * (100 + tm_opt.heap_bound);
        size_t after = h->size + need;
        extra = after >= bound ? 0 : bound - after;
        if (extra > h->ahead) extra = h->ahead;
    }
    size_t want = need + 2 * TM_HEAP_HDR;
    if (want < need) return 0;
    *least = tm_align_up(want, TM_CHUNK_SIZE);
    size_t span = tm_align_up(want + extra, TM_CHUNK_SIZE);
    if (tm_opt.heap_max && h->size + *least > tm_opt.heap_max) return 0;
    if (tm_opt.heap_max && h->size + span > tm_opt.heap_max) span = *least;
    h->ahead_left = span - want;
    return span;
}

/* Adds the span at base (span bytes, fresh from the chunk layer) to the heap; returns the
 * free block it makes, of at least the span less two headers. */
static tm_hblock_t *add_span(tm_heap_t *h, char *base, size_t span) {
    h->grows++;
    h->size += span;
    if (h->size > h->peak_size) h->peak_size = h->size;

    /* Right after this heap's last span: extend it, turning its sentinel into free space. */
    for (tm_hspan_t *s = h->spans; s; s = s->next) {
        if ((char *)s + s->size != base) continue;
        tm_hblock_t *end = checked((tm_hblock_t *)(base - TM_HEAP_HDR));
        s->size += span;
        s->seal = span_seal_of(s);
        tm_hblock_t *last = end->prev_size ? checked(prev_block(end)) : NULL;
        tm_hblock_t *b = end;
        size_t bsize = span; /* old sentinel + new span - new sentinel */
        if (last && last->state == TM_HB_FREE) {
            bin_remove(h, last);
            bsize += last->size;
            b = last;
            h->blocks--;
        }
        init_block(b, bsize, b == last ? last->prev_size : end->prev_size, h->idx, TM_HB_FREE);
        b->purged = 0;
        b->zero = zero_offset(b, (uintptr_t)base); /* the new span is; the old sentinel not */
        b->req = tm_now_ms();
        tm_hblock_t *sent = next_block(b);
        init_block(sent, TM_HEAP_HDR, bsize, h->idx, TM_HB_END);
        h->blocks++;
        bin_insert(h, b);
        return b;
    }
    tm_hspan_t *s = (tm_hspan_t *)base;
    s->size = span;
    s->heap = h->idx;
    s->seal = span_seal_of(s);
    s->prev = NULL;
    s->next = h->spans;
    if (h->spans) h->spans->prev = s;
    h->spans = s;
    tm_hblock_t *b = (tm_hblock_t *)(base + TM_HEAP_HDR);
    size_t bsize = span - 2 * TM_HEAP_HDR;
    init_block(b, bsize, 0, h->idx, TM_HB_FREE);
    b->purged = 1;         /* fresh pages */
    b->zero = TM_HEAP_HDR; /* all of it: the chunk layer hands out zeroed chunks */
    b->req = tm_now_ms();
    init_block(next_block(b), TM_HEAP_HDR, bsize, h->idx, TM_HB_END);
    h->blocks++;
    bin_insert(h, b);
    return b;
}

/* ---- allocation ------------------------------------------------------------------------- */
static tm_heap_t *heap_acquire(void) {
    tm_heap_t *h = &heaps[heap_home >= 0 ? (unsigned)heap_home : 0];
    if (tm_unlikely(!tm_trylock(&h->sh.lock))) {
        unsigned k = 1, home = h->idx;
        for (; k < nheaps; k++) {
            tm_heap_t *o = &heaps[(home + k) % nheaps];
            if (tm_trylock(&o->sh.lock)) {
                h = o;
                break;
            }
        }
        if (k == nheaps) tm_lock(&h->sh.lock);
        heap_home = (int)h->idx; /* from now on: contention spreads threads out once */
    }
    return h;
}

/* Splits the tail of b off as a free block when at least TM_HEAP_SPLIT is left over, and then
 * seals b; true when it did. purged: the tail's pages were purged (it comes from a purged free
 * block and nothing wrote it), so a purge at once need not madvise them again. zero: where the
 * known-zero part of the block the tail comes from starts (0: none). */
static bool split_tail(tm_heap_t *h, tm_hblock_t *b, size_t keep, uint32_t purged, uintptr_t zero) {
    size_t rest = b->size - keep;
    if (rest < TM_HEAP_SPLIT) return false;
    tm_hblock_t *r = (tm_hblock_t *)((char *)b + keep);
    tm_hblock_t *nx = checked(next_block(b));
    b->size = keep;
    seal(b);
    if (nx->state == TM_HB_FREE) { /* only after a shrink in place */
        purged = 0;
        zero = 0;
        bin_remove(h, nx);
        rest += nx->size;
        h->blocks--;
        nx = next_block(nx);
    }
    init_block(r, rest, keep, h->idx, TM_HB_FREE);
    r->purged = purged;
    /* r's own header sits in the part, so it starts past r's header page at the earliest */
    uintptr_t past_header = pages_lo(r);
    r->zero = zero ? zero_offset(r, zero > past_header ? zero : past_header) : 0;
    r->req = tm_now_ms_lazy();
    nx->prev_size = rest;
    seal(nx);
    h->blocks++;
    bin_insert(h, r);
    if (h->sh.due_ms == 0) tm_clock_set(&tm_heap_clock, &h->sh, r->req + tm_opt.heap_purge_delay);
    return true;
}

/* Takes free block b (in its bin) for n bytes at the alignment; size is n plus the header,
 * rounded to the grain. */
static void *carve(tm_heap_t *h, tm_hblock_t *b, size_t n, size_t size, size_t align) {
    uint32_t purged = b->purged;
    uintptr_t zero = b->zero ? (uintptr_t)b + b->zero : 0;
    bin_remove(h, b);
    if (align > TM_HEAP_HDR) {
        /* Move the start up to the alignment; the lead becomes a free block of its own (a free
         * block below it cannot be: free neighbours are always merged). */
        uintptr_t user = tm_align_up((uintptr_t)b + TM_HEAP_HDR, align);
        size_t lead = user - TM_HEAP_HDR - (uintptr_t)b;
        if (lead) {
            tm_hblock_t *a = (tm_hblock_t *)(user - TM_HEAP_HDR);
            tm_hblock_t *nx = next_block(b);
            init_block(a, b->size - lead, lead, h->idx, TM_HB_FREE);
            a->zero = 0; /* aligned blocks are never calloc's */
            nx->prev_size = a->size;
            seal(nx);
            b->size = lead;
            seal(b);
            b->req = tm_now_ms_lazy();
            h->blocks++;
            bin_insert(h, b);
            b = a;
        }
    }
    b->state = TM_HB_USED;
    b->req = n;
    if (!split_tail(h, b, size, purged, zero)) seal(b); /* else sealed there */
    h->nalloc++;
    stat_use(h, (ssize_t)b->size);
    return (char *)b + TM_HEAP_HDR;
}

/* A request's block size (n plus the header, rounded to the grain) and the free size that
 * holds it at the alignment; false when they overflow. */
static bool block_sizes(size_t n, size_t align, size_t *size, size_t *search) {
    *size = tm_align_up(n + TM_HEAP_HDR, TM_HEAP_GRAIN);
    *search = align > TM_HEAP_HDR ? *size + align : *size;
    return *size >= n && *search >= *size;
}

/* ---- the huge threshold ------------------------------------------------------------------ */
/* Raises the adaptive threshold to t, at most huge_threshold_max; it never falls. */
static void threshold_raise(size_t t) {
    if (!tm_opt.huge_dynamic) return;
    if (t > tm_opt.huge_threshold_max) t = tm_opt.huge_threshold_max;
    size_t cur = atomic_load_explicit(&tm_huge_threshold, memory_order_relaxed);
    while (cur < t &&
           !atomic_compare_exchange_weak_explicit(&tm_huge_threshold, &cur, t, memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}

/* A huge request that misses within heap_purge_delay of a huge block's going back: the
 * program churns such blocks, and each one given back costs it its page faults again at the
 * next request. So every size up to huge_threshold_max stays from then on. */
static void huge_missed(size_t n, uint64_t now) {
    uint64_t back = atomic_load_explicit(&huge_back_ms, memory_order_relaxed);
    if (n >= tm_opt.huge_threshold && back && now - back < tm_opt.heap_purge_delay)
        threshold_raise(tm_opt.huge_threshold_max);
}

/* find_fit after the recent blocks of h merged (there were some); NULL when none was there. */
static tm_noinline tm_hblock_t *refit(tm_heap_t *h, size_t search, bool warm) {
    return recent_flush(h) ? find_fit(h, search, warm) : NULL;
}

/* A recent block taken whole for a request of n bytes. */
static void *reuse(tm_heap_t *h, tm_hblock_t *b, size_t n) {
    b->state = TM_HB_USED;
    b->req = n;
    seal(b);
    h->nalloc++;
    stat_use(h, (ssize_t)b->size);
    return (char *)b + TM_HEAP_HDR;
}

/* A hit: it ends the streak of misses and decays the anticipation, unless it fell in the room
 * the last growth made (see "Growth policy"). */
static inline void count_hit(tm_heap_t *h, size_t size) {
    h->hits++;
    if (h->ahead_left >= size) {
        h->ahead_left -= size;
    } else {
        h->ahead_left = 0;
        h->consecutive_misses = 0;
        h->ahead -= h->ahead / 100 * tm_opt.heap_decay;
    }
}

/* take_fit for a heap that holds recent blocks: a recent block of the size first, for a malloc
 * (calloc prefers pages the OS gave zeroed; an aligned request's search size is not its
 * block's); when the bins then hold no fit on committed pages, the recent blocks merge and the
 * bins are searched again. Out of line, so that the way without them keeps its registers (it
 * cost a heap malloc 12 instructions inline). */
static tm_noinline void *take_fit_recent(tm_heap_t *h, size_t n, size_t align, size_t size,
                                         size_t search, bool warm) {
    tm_hblock_t *b = warm ? recent_take(h, size) : NULL;
    if (b) {
        count_hit(h, size);
        return reuse(h, b, n);
    }
    b = find_fit(h, search, warm);
    if (b == NULL || (warm && fresh_cost(b, search))) {
        tm_hblock_t *m = refit(h, search, warm);
        if (m) b = m;
    }
    if (b == NULL) return NULL;
    count_hit(h, size);
    return carve(h, b, n, size, align);
}

/* Under h's lock: a free block of h that fits, carved (a hit), or NULL. */
static void *take_fit(tm_heap_t *h, size_t n, size_t align, size_t size, size_t search, bool zero) {
    bool warm = !zero && align <= TM_ALIGN;
    if (tm_unlikely(h->nrecent)) return take_fit_recent(h, n, align, size, search, warm);
    tm_hblock_t *b = find_fit(h, search, warm);
    if (b == NULL) return NULL;
    count_hit(h, size);
    return carve(h, b, n, size, align);
}

/* A fit in the heaps after `home` in turn, from home + first on: each heap's lock taken
 * (wait; the caller holds none), or only the heaps whose lock is free (trylock: the caller may
 * hold one, and a thread holding one heap's lock never waits for another's, so no lock order
 * is needed). The block carved (a hit of that heap), or NULL. */
static void *take_fit_in_heaps(unsigned home, unsigned first, bool wait, size_t n, size_t align,
                               size_t size, size_t search, bool zero) {
    for (unsigned k = first; k < nheaps; k++) {
        tm_heap_t *o = &heaps[(home + k) % nheaps];
        if (wait)
            tm_lock(&o->sh.lock);
        else if (!tm_trylock(&o->sh.lock))
            continue;
        void *p = o->free_bytes + o->recent_bytes >= search
                      ? take_fit(o, n, align, size, search, zero)
                      : NULL;
        tm_unlock(&o->sh.lock);
        if (p) return p;
    }
    return NULL;
}

/* A miss: grows h for a free block of need bytes, by the policy above. Called and returns with
 * h locked, dropped while the chunks are taken. The new free block (merged into the last span
 * when the chunks follow it), or NULL. */
static tm_hblock_t *heap_grow(tm_heap_t *h, size_t need) {
    size_t least = 0, span = grow_size(h, need, &least);
    if (span == 0) return NULL;
    tm_unlock(&h->sh.lock);
    char *base = tm_chunk_alloc_span(span, TM_KIND_HEAP);
    if (base == NULL && span > least) /* the extra is a wish, not a need */
        base = tm_chunk_alloc_span(span = least, TM_KIND_HEAP);
    tm_lock(&h->sh.lock);
    return base ? add_span(h, base, span) : NULL;
}

/* A miss while blocks of h are out of the bins to be purged, which may hold the request: waits
 * for those purges, h's lock released, and takes a fit once one is back. Growing instead added
 * a span and faulted it in while the block being purged, tens of MiB, still counted: huge-blocks
 * (two blocks of 32-128 MiB replaced in turn) peaked at 412 MiB against 306 in the runs where the
 * purger's delay went by (results/20261207-huge-blocks-purge-wait). The blocks come back as soon
 * as their madvise returns: whoever deferred a purge runs it right after releasing the lock, and
 * this thread's own maintenance runs after its request (tm_heap_alloc), so none is this thread's.
 * Bounded all the same (TM_HEAP_WAIT_MS), for a purge that cannot come back to this thread: its
 * own, when a signal handler's malloc interrupted it. A fork child gets its purges back at once
 * (purges_lost). */
#define TM_HEAP_WAIT_MS 100
static void *after_purges(tm_heap_t *h, size_t n, size_t align, size_t size, size_t search,
                          bool zero) {
    if (h->purging_bytes < search) return NULL;
    uint64_t until = tm_now_ms() + TM_HEAP_WAIT_MS;
    for (unsigned tries = 0; h->purging_bytes >= search && tries < TM_DEFER_MAX; tries++) {
        uint64_t seen = atomic_load_explicit(&h->purges_done, memory_order_relaxed);
        tm_unlock(&h->sh.lock);
        while (atomic_load_explicit(&h->purges_done, memory_order_acquire) == seen &&
               tm_now_ms() < until)
            sched_yield();
        tm_lock(&h->sh.lock);
        void *p = take_fit(h, n, align, size, search, zero);
        if (p || tm_now_ms() >= until) return p;
    }
    return NULL;
}

/* Under h's lock, which it releases while the chunk layer makes a span (that may map). */
static void *heap_alloc_in(tm_heap_t *h, size_t n, size_t align, bool zero) {
    size_t size, search;
    if (!block_sizes(n, align, &size, &search)) return NULL;
    void *p = take_fit(h, n, align, size, search, zero);
    /* A miss: a fit in another heap whose lock is free, before h grows. Threads that met
     * contention keep to different heaps, and each heap would otherwise grow to its own peak
     * while the others hold free blocks that fit (oversub-purge, 16 threads on 2 CPUs, peaked
     * at 262-302 MB with two heaps, 227-232 MB with one). A miss is rare and growing costs page
     * faults, so the search of the others costs little. */
    if (p == NULL) p = take_fit_in_heaps(h->idx, 1, false, n, align, size, search, zero);
    if (p == NULL) p = after_purges(h, n, align, size, search, zero);
    if (p) return p;
    huge_missed(n, tm_now_ms());
    tm_hblock_t *b = heap_grow(h, search);
    return b ? carve(h, b, n, size, align) : NULL;
}

/* Neither a span nor a mapping could be had (the address space is exhausted): a block freed
 * into any heap will do, as glibc retries in another arena. A thread that met contention
 * keeps to the heap it moved to, so the blocks it freed before may all sit in a heap it no
 * longer uses. errno stays ENOMEM when none fits. */
static tm_noinline void *alloc_elsewhere(unsigned home, size_t n, size_t align, bool zero) {
    size_t size, search;
    if (!block_sizes(n, align, &size, &search)) return NULL;
    return take_fit_in_heaps(home, 0, true, n, align, size, search, zero);
}

void *tm_heap_alloc(size_t n, size_t align, bool zero) {
    if (align < TM_ALIGN) align = TM_ALIGN;
    if (align > TM_CHUNK_SIZE || n > PTRDIFF_MAX / 2) return tm_huge_alloc(n, align);
    tm_heap_t *h = heap_acquire();
    tm_defer_t d;
    d.n = 0;
    void *p = heap_alloc_in(h, n, align, zero);
    /* After the request, so that no purge it waits for is its own (after_purges) and no block
     * it takes goes out to be purged first. */
    tm_clock_tick(&tm_heap_clock, &h->sh, 0, &d);
    tm_unlock(&h->sh.lock);
    if (tm_unlikely(d.n)) tm_defer_run(&tm_heap_clock, &d);
    if (p == NULL) p = tm_huge_alloc(n, align); /* heap_max, or no room for a span */
    if (p == NULL) p = alloc_elsewhere(h->idx, n, align, zero);
    return p;
}

/* The header of a heap pointer with its heap locked, or a fatal error naming func. The seal
 * is checked under the lock only: freeing the block before this one rewrites this header's
 * prev_size and then its seal, so without the lock a live block can look forged for a moment.
 * Without the lock only what a live header never changes is read (its heap), and bounded. */
static tm_hblock_t *lock_block(const void *p, const char *func, tm_heap_t **hp) {
    uintptr_t a = (uintptr_t)p;
    if ((a & (TM_ALIGN - 1)) || tm_chunk_kind(a - TM_HEAP_HDR) != TM_KIND_HEAP)
        tm_fatal(func, "invalid pointer", p);
    tm_hblock_t *b = (tm_hblock_t *)(a - TM_HEAP_HDR);
    uint32_t idx = b->heap;
    if (idx >= nheaps) tm_fatal(func, "invalid pointer", p);
    tm_heap_t *h = &heaps[idx];
    tm_lock(&h->sh.lock);
    if (!sealed(b) || b->heap != idx || b->state != TM_HB_USED) {
        bool was_free = sealed(b) && (b->state == TM_HB_FREE || b->state == TM_HB_PURGING ||
                                      b->state == TM_HB_RECENT);
        tm_unlock(&h->sh.lock);
        tm_fatal(func, was_free ? "invalid pointer: double free of" : "invalid pointer", p);
    }
    *hp = h;
    return b;
}

void tm_heap_free(void *p, const char *func) {
    tm_heap_t *h;
    tm_hblock_t *b = lock_block(p, func, &h);
    h->nfree++;
    h->ahead_left = 0; /* hits may take what this frees: no longer the anticipation's */
    stat_use(h, -(ssize_t)b->size);
    uint64_t now = tm_now_ms_lazy();
    b->req = now;
    b->purged = 0; /* the part just freed is committed, whatever a merged neighbour was */
    b->zero = 0;
    uintptr_t from = (uintptr_t)b, to = from + b->size;
    bool huge = to - from >= atomic_load_explicit(&tm_huge_threshold, memory_order_relaxed);
    /* Its span goes back whole when nothing else lives there: the recent blocks merge first,
     * as they would have at their own frees. */
    if (huge) recent_flush(h);
    tm_hblock_t *nx = checked(next_block(b)), *pv = b->prev_size ? prev_block(b) : NULL;
    bool rest_purged = (nx->state != TM_HB_FREE || nx->purged) &&
                       (pv == NULL || pv->state != TM_HB_FREE || pv->purged);
    if (tm_likely(tm_opt.heap_recent == 0) || huge || tm_opt.heap_purge_delay == 0)
        b = merge_free(h, b);
    else
        recent_keep(h, b); /* and on to the clock below: purge_delay is not 0 */
    tm_defer_t d;
    d.n = 0;
    if (huge || tm_opt.heap_purge_delay == 0) {
        /* Purge at once: b, which maintenance (at delay 0) purges too, or returns whole; a
         * huge block's span goes back whole when nothing else lives in it. The neighbours b
         * merged with were purged when they were freed, so only the part just freed needs the
         * madvise, not the whole merged block again. */
        if (huge && whole_span(b))
            span_release(h, b, true, &d);
        else if (tm_opt.heap_purge_delay == 0 && h->free_bytes > tm_opt.heap_retain)
            heap_maintain(&h->sh, now, &d);
        else if (rest_purged)
            block_purge_part(h, b, from, to, &d);
        else
            block_purge(h, b, &d);
    } else if (h->sh.due_ms == 0) {
        tm_clock_set(&tm_heap_clock, &h->sh, now + tm_opt.heap_purge_delay);
    } else {
        tm_clock_tick(&tm_heap_clock, &h->sh, now, &d);
    }
    tm_unlock(&h->sh.lock);
    if (tm_unlikely(d.n)) tm_defer_run(&tm_heap_clock, &d);
    if (huge) {
        atomic_store_explicit(&huge_back_ms, tm_now_ms(), memory_order_relaxed);
        threshold_raise(to - from + 1); /* glibc's rule: blocks of this size come and go */
    }
}

/* calloc's clearing of a block it has just been given: only what the block's known-zero part
 * does not cover, so pages fresh from the OS stay untouched (and uncommitted). The block is
 * the caller's, carved under the lock by this thread, so its header is read without it. */
void tm_heap_clear(void *p, size_t n) {
    const tm_hblock_t *b = (const tm_hblock_t *)((char *)p - TM_HEAP_HDR);
    uintptr_t a = (uintptr_t)p, end = a + n;
    uintptr_t lo = (uintptr_t)b + b->zero, hi = pages_hi(b);
    if (b->zero == 0 || lo >= hi || lo >= end) {
        memset(p, 0, n);
        return;
    }
    if (lo > a) memset(p, 0, lo - a);
    if (end > hi) memset((void *)hi, 0, end - hi);
}

size_t tm_heap_usable(const void *p, const char *func) {
    tm_heap_t *h;
    tm_hblock_t *b = lock_block(p, func, &h);
    size_t n = b->size - TM_HEAP_HDR;
    tm_unlock(&h->sh.lock);
    return n;
}

/* Grows used block *bp into the free block below it, and the free one above if any, when
 * together they hold size bytes; the contents move down by the lower block's size. A copy
 * either way, but into memory the heap holds already: a move to a new block holds the old and
 * the new one at once, so the peak in use, and with it the heap, grows by the old block
 * (realloc-huge: peak RSS 337 MiB, 301 MiB with this). Called and returns with h locked, which
 * it drops for the copy: the merged block is sealed as used first, so no other thread takes
 * or merges any of it meanwhile, and the old header is unsealed, so that a later free of the
 * old pointer is refused. *bp becomes the moved block; NULL when it cannot grow. */
static void *grow_down(tm_heap_t *h, tm_hblock_t **bp, size_t size) {
    tm_hblock_t *b = *bp, *nx = settled(h, checked(next_block(b)));
    if (b->prev_size == 0) return NULL; /* first of its span */
    tm_hblock_t *pv = settled(h, checked(prev_block(b)));
    size_t above = nx->state == TM_HB_FREE ? nx->size : 0;
    if (pv->state != TM_HB_FREE || pv->size + b->size + above < size) return NULL;
    size_t old = b->size, total = pv->size + old + above;
    if (above) {
        bin_remove(h, nx);
        h->blocks--;
    }
    bin_remove(h, pv);
    h->blocks--;
    tm_hblock_t *after = checked((tm_hblock_t *)((char *)pv + total));
    pv->size = total;
    pv->state = TM_HB_USED;
    pv->zero = 0; /* a used block's known-zero part is calloc's alone */
    seal(pv);
    after->prev_size = total;
    seal(after);
    b->seal = 0;
    tm_unlock(&h->sh.lock);
    memmove((char *)pv + TM_HEAP_HDR, (char *)b + TM_HEAP_HDR, old - TM_HEAP_HDR);
    tm_lock(&h->sh.lock);
    split_tail(h, pv, size, 0, 0);
    *bp = pv;
    return (char *)pv + TM_HEAP_HDR;
}

/* Grows used block b into the free block above it when the two hold size bytes. */
static bool grow_up(tm_heap_t *h, tm_hblock_t *b, size_t size) {
    tm_hblock_t *nx = settled(h, checked(next_block(b)));
    if (nx->state != TM_HB_FREE || b->size + nx->size < size) return false;
    uint32_t purged = nx->purged;
    uintptr_t zero = nx->zero ? (uintptr_t)nx + nx->zero : 0;
    bin_remove(h, nx);
    h->blocks--;
    tm_hblock_t *after = checked(next_block(nx));
    b->size += nx->size;
    seal(b);
    after->prev_size = b->size;
    seal(after);
    split_tail(h, b, size, purged, zero);
    return true;
}

/* b ends its span (but for a free block above it): grows the heap by what b lacks, as a miss
 * would (anticipation included). The chunk layer hands out address space in order, so the new
 * chunks mostly follow the span, and add_span merges them into it: b then grows up, with no
 * copy and without the old and the new block held at once. Called and returns with h locked,
 * dropped while the chunks are taken. False when b still cannot grow (the chunks landed
 * elsewhere: they stay the heap's, for the caller's new block). */
static bool grow_at_end(tm_heap_t *h, tm_hblock_t *b, size_t size) {
    tm_hblock_t *end = settled(h, checked(next_block(b)));
    size_t have = b->size;
    if (end->state == TM_HB_FREE) {
        have += end->size;
        end = checked(next_block(end));
    }
    if (end->state != TM_HB_END) return false;
    return heap_grow(h, size - have) && grow_up(h, b, size);
}

/* Resizes within the heap: shrinks by splitting the tail off, grows into a free next block,
 * or else down into a free block below (grow_down), or else at the heap's end (grow_at_end).
 * NULL when it cannot (the caller moves the block). */
void *tm_heap_realloc(void *p, size_t n) {
    tm_heap_t *h;
    tm_hblock_t *b = lock_block(p, "realloc", &h);
    if (n <= tm_opt.medium_max / 2) {
        tm_unlock(&h->sh.lock);
        return NULL; /* belongs to another tier now */
    }
    size_t size = tm_align_up(n + TM_HEAP_HDR, TM_HEAP_GRAIN);
    void *q = NULL;
    size_t old = b->size;
    if (size <= old) {
        split_tail(h, b, size, 0, 0);
        q = p;
    } else if (grow_up(h, b, size)) {
        q = p;
    } else {
        q = grow_down(h, &b, size);
        if (q == NULL && grow_at_end(h, b, size)) q = p;
    }
    if (q) {
        b->req = n;
        stat_use(h, (ssize_t)b->size - (ssize_t)old);
    }
    tm_unlock(&h->sh.lock);
    return q;
}

/* ---- set-up, fork, statistics ----------------------------------------------------------- */
void tm_heap_init(void) {
    unsigned n = tm_opt.heaps ? tm_opt.heaps : tm_ncpus();
    nheaps = n < TM_MAX_ARENAS ? n : TM_MAX_ARENAS;
    for (unsigned i = 0; i < nheaps; i++) heaps[i].idx = i;
    tm_clock_init(&tm_heap_clock, &heaps[0].sh, sizeof heaps[0], nheaps, &tm_opt.heap_purge_delay,
                  heap_maintain, heap_purged);
    atomic_store_explicit(&tm_huge_threshold, tm_opt.huge_threshold, memory_order_relaxed);
}

/* malloc_trim: purges every free block now, whatever its age. */
void tm_heap_trim(void) { tm_clock_trim(&tm_heap_clock); }
uint64_t tm_heap_background(uint64_t now) { return tm_clock_run(&tm_heap_clock, now); }

/* In a fork child: the purges that other threads of the parent had under way never come back,
 * so their blocks go back in the bins as they are, neither purged nor known zero (the madvise
 * may or may not have run), and due for a purge a delay from now (maintenance had left them
 * out of its due time). */
static void purges_lost(tm_heap_t *h) {
    if (h->purging_bytes == 0) return;
    tm_clock_lower(&tm_heap_clock, &h->sh, tm_now_ms() + tm_opt.heap_purge_delay);
    for (tm_hspan_t *s = h->spans; s; s = s->next) {
        tm_hblock_t *b = (tm_hblock_t *)((char *)s + TM_HEAP_HDR);
        for (; b->state != TM_HB_END; b = next_block(b)) {
            if (b->state != TM_HB_PURGING) continue;
            h->purging_bytes -= b->size;
            b->purged = 0;
            b->zero = 0;
            b = merge_free(h, b);
        }
    }
}

void tm_heap_locks(tm_lock_op_t op) {
    for (unsigned i = 0; i < nheaps; i++) {
        tm_lock_fork(&heaps[i].sh.lock, op);
        if (op == TM_LOCK_RESET) purges_lost(&heaps[i]);
    }
}

/* Sums of all heaps, each read under its lock. */
void tm_heap_totals(tm_heap_totals_t *t) {
    memset(t, 0, sizeof *t);
    t->heaps = nheaps;
    t->max_size = tm_opt.heap_max;
    t->huge_threshold = atomic_load_explicit(&tm_huge_threshold, memory_order_relaxed);
    for (unsigned i = 0; i < nheaps; i++) {
        tm_heap_t *h = &heaps[i];
        tm_lock(&h->sh.lock);
        t->size += h->size;
        t->peak_size += h->peak_size;
        t->in_use += h->in_use;
        t->peak_in_use += h->peak_in_use;
        t->blocks += h->blocks;
        t->free_blocks += h->free_blocks;
        if (h->consecutive_misses > t->consecutive_misses)
            t->consecutive_misses = h->consecutive_misses;
        t->misses += h->misses;
        t->hits += h->hits;
        t->grows += h->grows;
        t->purged_bytes += h->purged_bytes;
        t->unmapped_bytes += h->unmapped_bytes;
        t->ahead += h->ahead;
        t->nalloc += h->nalloc;
        t->nfree += h->nfree;
        tm_unlock(&h->sh.lock);
    }
}

/* Calls fn for every block of every heap, under that heap's lock (fn must not allocate).
 * Returns the number of blocks visited. */
size_t tm_heap_walk(void (*fn)(void *, size_t, int, void *), void *arg) {
    size_t count = 0;
    for (unsigned i = 0; i < nheaps; i++) {
        tm_heap_t *h = &heaps[i];
        tm_lock(&h->sh.lock);
        for (tm_hspan_t *s = h->spans; s; s = s->next) {
            tm_hblock_t *b = (tm_hblock_t *)((char *)s + TM_HEAP_HDR);
            while (b->state != TM_HB_END) {
                if (!sealed(b))
                    tm_fatal("tinymalloc_heap_walk", "heap block header corrupted at", b);
                if (fn) fn((char *)b + TM_HEAP_HDR, b->size, b->state == TM_HB_USED, arg);
                count++;
                b = next_block(b);
            }
        }
        tm_unlock(&h->sh.lock);
    }
    return count;
}
