/* The medium cache: per-thread bins of freed medium blocks (slab_max < size <= medium_max),
 * so that a program churning medium blocks takes no arena lock and searches no bitmap for
 * most of them, the way the slab tier's thread caches serve small ones.
 *
 * Medium requests are rounded up to classes, four per doubling and whole arena units, so a
 * cached block fits every request of its class. A free of a block whose size is exactly a
 * class goes to the freeing thread's bin while the thread's cache holds less than
 * medium_cache bytes; everything else goes back to its arena. Bins are intrusive lists whose
 * links carry the slab tier's secret-keyed check word (tm_block_link), so a double free of a
 * cached block is caught (from any thread) and a write after free cannot steer malloc. A
 * block leaving a bin gets its check word cleared. A dying thread's bins go back to the
 * arenas.
 *
 * Invariants. A thread's bins are its own: only it reads or writes them, so they take no lock
 * and no atomic. A cached block stays allocated in its arena (its units used, its start bit
 * set), so the arena never hands it out twice; mcache_bytes is the sum of the cached blocks'
 * sizes and never exceeds medium_cache.
 */
#include "tm_internal.h"

#define TM_MCLASS_TABLE (TM_CHUNK_SIZE / 1024 + 1) /* medium_max / arena_unit: under 4m / 1k */

static uint32_t mclass_size[TM_MCLASSES];
static unsigned nmclasses;
static uint8_t mclass_of_units[TM_MCLASS_TABLE];
static unsigned unit_shift;

void tm_mcache_init(void) {
    size_t unit = tm_opt.arena_unit, max = tm_opt.medium_max;
    unit_shift = (unsigned)__builtin_ctzl(unit);
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
    unsigned c = 0;
    for (size_t u = 0; u < TM_MCLASS_TABLE; u++) {
        while (c + 1 < n && mclass_size[c] < (u << unit_shift)) c++;
        mclass_of_units[u] = (uint8_t)c;
    }
}

static inline unsigned mclass_of(size_t n) {
    return mclass_of_units[(n + (1UL << unit_shift) - 1) >> unit_shift];
}

void *tm_mcache_alloc(size_t n, size_t align) {
    if (align > TM_ALIGN || tm_opt.medium_cache == 0 || n > tm_opt.medium_max)
        return tm_arena_alloc(n);
    unsigned c = mclass_of(n);
    tm_tcache_t *tc = tm_tc;
    if (tc == &tm_tcache_empty && (tc = tm_tcache_get_slow()) == NULL) return NULL;
    tm_mbin_t *bin = &tc->mbin[c];
    tm_block_t *b = bin->head;
    if (b == NULL || tc->is_fallback) return tm_arena_alloc(mclass_size[c]);
    if (tm_unlikely(!tm_block_is_free(b))) tm_slab_corrupt(b);
    bin->head = b->next;
    bin->count--;
    tc->mcache_bytes -= mclass_size[c];
    b->check = 0;
    return b;
}

void tm_mcache_free(void *p, const char *func) {
    size_t size = tm_arena_usable(p, func); /* validates p */
    tm_block_t *b = p;
    /* A block in some thread's bin is still allocated to its arena, so only its check word
     * tells a second free; tested before anything else, whoever frees it. The whole 64-bit
     * check must match: live data does so only if copied out of a freed block. */
    if (tm_unlikely(tm_block_is_free(b))) tm_fatal(func, "double free of", p);
    tm_tcache_t *tc = tm_tc;
    unsigned c = size <= tm_opt.medium_max ? mclass_of(size) : 0;
    if (tc == &tm_tcache_empty || tc->is_fallback || mclass_size[c] != size ||
        tc->mcache_bytes + size > tm_opt.medium_cache)
        return tm_arena_free(p, func);
    tm_mbin_t *bin = &tc->mbin[c];
    tm_block_link(b, bin->head);
    bin->head = b;
    bin->count++;
    tc->mcache_bytes += size;
}

/* A dying thread's cached blocks go back to their arenas. */
void tm_mcache_flush(tm_tcache_t *tc) {
    for (unsigned c = 0; c < nmclasses; c++) {
        tm_block_t *b = tc->mbin[c].head;
        while (b) {
            tm_block_t *next = b->next;
            b->check = 0;
            tm_arena_free(b, "free");
            b = next;
        }
        tc->mbin[c].head = NULL;
        tc->mbin[c].count = 0;
    }
    tc->mcache_bytes = 0;
}
