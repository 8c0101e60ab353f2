/* The slab tier: fixed-size blocks of the tiny and small classes in 64 KiB slab pages.
 *
 * A page belongs to one size class and, while in use, to one thread cache (its owner). The
 * owner frees its blocks into a bin per class, one list across all its pages, and allocates
 * from that bin first, then from its current page's free list, both with plain loads and
 * stores; a free that finds its bin full (tm_bin_max blocks) goes on its page's free list.
 * Another thread's free of a block of whole cache lines goes into that thread's own bin while
 * it has room, and past that into the transfer cache, where any thread's refill of the class
 * takes it; other remote frees are pushed onto the page's atomic thread_free list, a chain
 * per CAS, and the owner collects them when its free list runs dry. Pages without an owner sit in a
 * pool: per class (the preallocated cluster, pages abandoned by exited threads, recently emptied
 * pages) or the global free-page pool (unassigned; past slab_retain, pages unused for
 * slab_purge_delay ms are purged).
 *
 * Invariants. A page's descriptor belongs to its owner thread while it has one (free list,
 * used count, queues), and to the lock of the pool it sits in while it has none. A bin holds
 * blocks of pages its thread owns, linked with the free key, and blocks of other threads'
 * pages (foreign ones, still counted used on their page), linked with the pending key; only
 * its thread touches it; bin_room + the bin's length == tm_bin_max of the class (set when the cache
 * is made); a thread's bins are empty after its exit or its malloc_trim. Only thread_free is
 * shared, through atomics. The free fast path reads owner, divisor and carved_end without a lock,
 * as relaxed atomics (tm_rload), where a stale answer is safe: an owner seen stale sends the free
 * to the remote path. The used count is kept as stated at tm_page_t. Lock order: a class pool, then
 * the free-page pool, then the chunk layer's lock.
 */
#include "tm_internal.h"

#include <errno.h>
#include <string.h>

uint8_t tm_size_class[TM_SIZE_TABLE_LEN];
uintptr_t tm_secret;
tm_page_t tm_page_empty; /* free == NULL: the fast path falls through to the slow path */

/* Blocks a bin holds: 16 KiB of the class, from 4 to 64 blocks, so that the bins of one
 * thread hold a few hundred KiB at most. */
uint32_t tm_bin_max[TM_MAX_CLASSES];

void *tm_slab_bin_corrupt(const tm_block_t *b) { tm_slab_corrupt(b); }

static void remote_push(tm_page_t *pg, tm_block_t *head, tm_block_t *tail, uint32_t n);

/* ---- the transfer cache ------------------------------------------------------------------
 * A thread that frees blocks other threads allocated (a consumer) sends them back to their
 * pages, where only the owner can take them, and only once its current page has run dry and
 * it scans its full pages. An owner that allocates in bursts, or waits while its blocks are
 * freed, keeps freed memory on its pages while other threads take fresh pages (prodcons at
 * 8+8 threads: 2000 pages held with over 100 MiB of their blocks freed and not collected;
 * peak RSS 2.3x tcmalloc's). So past its full bin, a consumer gathers such blocks of whole
 * cache lines (as its bin takes: no line shared with the owner's live blocks) into chains of
 * a full bin's length (tm_bin_max), and hands each full chain to its class's stack here; a refill
 * that finds no block on its own pages takes a chain as its bin, before it takes a page from the
 * pools. A block keeps being counted used on its page while it travels, as binned foreign blocks
 * are, and keeps the pending key, so a second free of it is caught by whoever makes it.
 *
 * Bounds. All stacks together hold at most slab_transfer bytes (xfer_bytes, reserved before
 * the push); a chain past that goes back to its pages. A class whose stack nobody took from
 * during a whole slab_purge_delay (100 ms when that is 0) gives its chains back to their
 * pages at the next pass (the purger's, or an allocating thread's when no purger runs), so
 * memory is held only while some thread uses it. Each stack is guarded by its spin lock; a
 * chain's blocks are linked as a bin's, and the chains through their heads' third word. */
typedef struct {
    tm_block_t b;
    tm_block_t *next_chain;
} tm_xchain_t;

typedef struct {
    tm_spin_t lock;
    bool taken;         /* a refill took a chain since the last decay pass */
    tm_block_t *chains; /* heads of full chains, newest first; peeked without the lock */
} __attribute__((aligned(64))) tm_xfer_t;

static tm_xfer_t xfer[TM_MAX_CLASSES];
static _Atomic size_t xfer_bytes;
_Atomic uint64_t tm_xfer_due; /* the next decay pass (0: no chain held) */

static size_t chain_bytes(unsigned cls) { return (size_t)tm_bin_max[cls] * tm_opt.class_size[cls]; }

/* The slab tier's background period: slab_purge_delay, or 100 ms when that is 0. */
static uint64_t delay_base(void) { return tm_opt.slab_purge_delay ? tm_opt.slab_purge_delay : 100; }

/* Frees a chain's blocks to their pages, as the remote frees they were. */
static void chain_to_pages(tm_block_t *b) {
    while (b) {
        if (tm_unlikely(!tm_block_is_pending(b))) tm_slab_corrupt(b);
        tm_block_t *next = b->next;
        remote_push(tm_slab_page_of((uintptr_t)b), b, b, 1);
        b = next;
    }
}

/* This thread's gathered chain of class cls, full, goes to the class's stack (or, past the
 * budget, back to its pages). No lock held. */
static tm_noinline void xfer_push(tm_tcache_t *tc, unsigned cls) {
    tm_block_t *h = tc->xhead[cls];
    tc->xhead[cls] = NULL;
    tc->xcount[cls] = 0;
    size_t bytes = chain_bytes(cls);
    if (atomic_fetch_add_explicit(&xfer_bytes, bytes, memory_order_relaxed) + bytes >
        tm_opt.slab_transfer) {
        atomic_fetch_sub_explicit(&xfer_bytes, bytes, memory_order_relaxed);
        chain_to_pages(h);
        return;
    }
    tm_xfer_t *x = &xfer[cls];
    tm_spin_lock(&x->lock);
    ((tm_xchain_t *)h)->next_chain = x->chains;
    tm_rstore(x->chains, h);
    tm_spin_unlock(&x->lock);
    tm_due_lower(&tm_xfer_due, tm_now_ms_lazy() + delay_base());
    tm_purger_poll();
}

/* A free gathered into this thread's chain of the class; b is of another thread's page. */
static inline void xfer_add(tm_tcache_t *tc, unsigned cls, tm_block_t *b) {
    tm_block_link_pending(b, tc->xhead[cls]);
    tc->xhead[cls] = b;
    if (++tc->xcount[cls] == tm_bin_max[cls]) xfer_push(tc, cls);
}

/* This thread's partial chains go back to their pages (thread exit, malloc_trim). */
static void xfer_flush_own(tm_tcache_t *tc) {
    if (tc == &tm_tcache_empty || tc->is_fallback) return; /* neither gathers any */
    for (unsigned c = 0; c < tm_opt.nclasses; c++) {
        chain_to_pages(tc->xhead[c]);
        tc->xhead[c] = NULL;
        tc->xcount[c] = 0;
    }
}

/* Makes a chain of the class tc's bin, which is empty (a refill); false when none waits. */
static bool xfer_take(tm_tcache_t *tc, unsigned cls) {
    tm_xfer_t *x = &xfer[cls];
    if (tm_rload(x->chains) == NULL || tc->is_fallback || tc->bin[cls] != NULL) return false;
    tm_spin_lock(&x->lock);
    tm_block_t *h = x->chains;
    if (h) {
        tm_rstore(x->chains, ((tm_xchain_t *)h)->next_chain);
        x->taken = true;
    }
    tm_spin_unlock(&x->lock);
    if (h == NULL) return false;
    atomic_fetch_sub_explicit(&xfer_bytes, chain_bytes(cls), memory_order_relaxed);
    tc->bin[cls] = h;
    tc->bin_room[cls] = 0; /* a chain fills the bin */
    return true;
}

/* Gives back the chains of every class nobody took from since the last pass (all: every
 * class's), then sets the next pass while some stay. */
static void xfer_release(uint64_t now, bool all) {
    bool left = false;
    for (unsigned c = 0; c < tm_opt.nclasses; c++) {
        tm_xfer_t *x = &xfer[c];
        if (tm_rload(x->chains) == NULL) continue;
        tm_block_t *out = NULL;
        tm_spin_lock(&x->lock);
        if (all || !x->taken) {
            out = x->chains;
            tm_rstore(x->chains, NULL);
        }
        x->taken = false;
        left |= x->chains != NULL;
        tm_spin_unlock(&x->lock);
        for (tm_block_t *next; out; out = next) {
            next = ((tm_xchain_t *)out)->next_chain;
            atomic_fetch_sub_explicit(&xfer_bytes, chain_bytes(c), memory_order_relaxed);
            chain_to_pages(out);
        }
    }
    if (left) tm_due_lower(&tm_xfer_due, now + delay_base());
}

size_t tm_slab_xfer_bytes(void) { return atomic_load_explicit(&xfer_bytes, memory_order_relaxed); }

/* The decay pass, when due; only the caller that takes the due time it saw runs it. */
void tm_slab_xfer_decay(uint64_t now) {
    uint64_t due = atomic_load_explicit(&tm_xfer_due, memory_order_relaxed);
    if (due == 0 || now < due ||
        !atomic_compare_exchange_strong_explicit(&tm_xfer_due, &due, 0, memory_order_relaxed,
                                                 memory_order_relaxed))
        return;
    xfer_release(now, false);
}

/* Gives every block of tc's bin of class cls back to its page, as the frees they were: a block
 * of a page tc owns goes on the page's list (a page they empty is retired, a full page goes
 * back on the avail list), another thread's block (a foreign one: tm_slab_free_remote) onto
 * its page's thread_free. Each block was checked to be a block of a slab page when it was
 * freed. */
static void bin_flush(tm_tcache_t *tc, unsigned cls) {
    tm_block_t *b = tc->bin[cls];
    tc->bin[cls] = NULL;
    tc->bin_room[cls] = tm_bin_max[cls];
    while (b) {
        if (tm_unlikely(!tm_block_is_freed(b))) tm_slab_corrupt(b);
        tm_block_t *next = b->next;
        tm_page_t *pg = tm_slab_page_of((uintptr_t)b);
        if (tm_rload(pg->owner) == tc)
            tm_slab_free_to_page(tc, pg, b);
        else
            remote_push(pg, b, b, 1);
        b = next;
    }
}

/* Empties every bin of this thread's cache back into its pages. */
static void bins_flush(tm_tcache_t *tc) {
    if (tc == &tm_tcache_empty || tc->is_fallback) return; /* neither ever fills a bin */
    for (unsigned c = 0; c < tm_opt.nclasses; c++) bin_flush(tc, c);
}

/* Pool of pages of one class without an owner. Lock order: class pool, then free pages,
 * then tm_chunk_lock. */
typedef struct {
    tm_lock_t lock;
    tm_page_t *pages;
    uint32_t count;
    uint32_t target; /* pages kept back for this class: its preallocated cluster */
} tm_pool_t;

static tm_pool_t class_pool[TM_MAX_CLASSES];
static tm_lock_t free_lock;
static tm_page_t *free_pages;   /* unassigned committed pages, newest on top */
static uint32_t free_committed; /* pages on free_pages */
static tm_page_t *free_purged;  /* unassigned pages whose memory went back */

/* ---- page lists (owner only) -------------------------------------------------------- */
static void list_push(tm_page_t **head, tm_page_t *pg) {
    pg->prev = NULL;
    pg->next = *head;
    if (*head) (*head)->prev = pg;
    *head = pg;
}

static void list_remove(tm_page_t **head, tm_page_t *pg) {
    if (pg->prev)
        pg->prev->next = pg->next;
    else
        *head = pg->next;
    if (pg->next) pg->next->prev = pg->prev;
    pg->next = pg->prev = NULL;
}

/* ---- page state ---------------------------------------------------------------------- */
static void page_assign(tm_page_t *pg, unsigned cls) {
    uint32_t bs = tm_opt.class_size[cls];
    tm_rstore(pg->block_size, bs);
    tm_rstore(pg->divisor, UINT64_MAX / bs + 1);
    pg->cls = (uint8_t)cls;
    tm_rstore(pg->carved_end, 0);
    pg->used = 0;
    pg->free = NULL;
    atomic_store_explicit(&pg->thread_free, 0, memory_order_relaxed);
}

/* thread_free packs a chain's head and length in one word (tm_page_t). */
#define TF_PTR(w) ((tm_block_t *)((w) & ((UINT64_C(1) << TM_ADDR_BITS) - 1)))
#define TF_COUNT(w) ((uint32_t)((w) >> TM_ADDR_BITS))
_Static_assert(TM_PAGE_SIZE / TM_ALIGN < (UINT64_C(1) << (64 - TM_ADDR_BITS)),
               "a page's blocks fit in thread_free's count bits");

/* Moves the blocks other threads freed onto the owner's list. When the list is empty (the
 * common case: the owner collects when it runs dry), the chain becomes the list as it is, its
 * blocks keeping their pending key: each was one cache miss in a walk here that malloc now
 * takes later, behind the prefetch of its pop. Otherwise the chain is walked to its tail and
 * checked. */
static void page_collect(tm_page_t *pg) {
    if (atomic_load_explicit(&pg->thread_free, memory_order_relaxed) == 0) return;
    uintptr_t w = atomic_exchange_explicit(&pg->thread_free, 0, memory_order_acquire);
    tm_block_t *head = TF_PTR(w);
    uint32_t n = TF_COUNT(w);
    if (tm_unlikely(n == 0 || n > (pg->used & TM_USED_MASK)))
        tm_fatal("free", "corrupted list of remote frees at", head);
    if (pg->free != NULL) {
        uintptr_t start = tm_page_start(pg);
        uint32_t seen = 1;
        tm_block_t *tail = head;
        for (;;) {
            if (!tm_block_is_freed(tail)) tm_slab_corrupt(tail);
            tm_block_t *nx = tail->next;
            if (nx == NULL) break;
            uintptr_t off = (uintptr_t)nx - start;
            if (off >= pg->carved_end || off * pg->divisor >= pg->divisor || ++seen > n)
                tm_fatal("free", "corrupted free list (write after free?) at", tail);
            tm_block_link(tail, nx); /* a pending block becomes an ordinary free one */
            tail = nx;
        }
        if (seen != n) tm_fatal("free", "corrupted list of remote frees at", head);
        tm_block_link(tail, pg->free);
    }
    pg->free = head;
    pg->used -= n;
}

/* Carves more blocks from the untouched end of the page: the blocks that start in the next OS
 * page, so that each carve commits one page (linking a block writes its first bytes). A page of
 * each class a thread uses is what a small program holds; carving 8 KiB at a time committed two,
 * some 4 KiB per class and thread more than it used (glibc's heap holds a program's few blocks of
 * every size together). */
static bool page_extend(tm_page_t *pg) {
    uint32_t bs = pg->block_size;
    uint32_t left = (uint32_t)((TM_PAGE_SIZE - pg->carved_end) / bs);
    if (left == 0) return false;
    char *first = (char *)tm_page_start(pg) + pg->carved_end;
    /* Up to the end of the OS page that `first` lies in; at least one block. */
    uintptr_t room = TM_OS_PAGE - ((uintptr_t)first & (TM_OS_PAGE - 1));
    uint32_t n = (uint32_t)((room + bs - 1) / bs);
    if (n > left) n = left;
    tm_block_t *head = pg->free;
    for (uint32_t i = n; i-- > 0;) {
        tm_block_t *b = (tm_block_t *)(first + (size_t)i * bs);
        tm_block_link(b, head);
        head = b;
    }
    pg->free = head;
    tm_rstore(pg->carved_end, pg->carved_end + n * bs);
    return true;
}

/* Under free_lock: a new chunk's pages go on the committed stack, in address order. */
static void slab_chunk_init(tm_chunk_hdr_t *ch) {
    /* Page 0 holds this header; the rest go to the free pool. */
    for (size_t i = TM_PAGES_PER_CHUNK - 1; i >= 1; i--) {
        tm_page_t *pg = &ch->pages[i];
        pg->committed = 1; /* untouched, so it costs nothing until used */
        pg->next = free_pages;
        free_pages = pg;
        free_committed++;
    }
}

/* Purging past slab_retain is delayed: a program that empties and refills pages in waves
 * would otherwise pay an madvise and fresh page faults per wave. The committed stack has its
 * newest pages on top, so its bottom committed_low pages were not touched since the last decay
 * tick; at the next tick, slab_purge_delay ms later, those past slab_retain are purged. No
 * per-page timestamp is needed. The pages to purge leave the committed stack under the lock,
 * so no thread can take one while its madvise runs without the lock, and then join the purged
 * stack. */
static uint32_t committed_low; /* fewest committed free pages since the last tick */
static uint64_t next_decay_ms; /* 0: no tick yet */

/* Under free_lock: cuts the n oldest committed free pages off the stack; returns them. */
static tm_page_t *take_oldest_locked(uint32_t n) {
    if (n == 0) return NULL;
    tm_page_t **link = &free_pages;
    for (uint32_t keep = free_committed - n; keep > 0; keep--) link = &(*link)->next;
    tm_page_t *list = *link;
    *link = NULL;
    free_committed -= n;
    if (committed_low > free_committed) committed_low = free_committed;
    return list;
}

/* Without free_lock: purges the pages of list, one madvise per run of adjacent pages, then
 * puts them on the purged stack. */
static void purge_pages(tm_page_t *list) {
    uintptr_t lo = 0, hi = 0;
    tm_page_t *last = NULL;
    for (tm_page_t *pg = list; pg; last = pg, pg = pg->next) {
        uintptr_t s = tm_page_start(pg);
        pg->committed = 0;
        if (s == hi) {
            hi += TM_PAGE_SIZE;
            continue;
        }
        if (s + TM_PAGE_SIZE == lo) {
            lo = s;
            continue;
        }
        if (hi) tm_os_purge((void *)lo, hi - lo);
        lo = s;
        hi = s + TM_PAGE_SIZE;
    }
    if (hi) tm_os_purge((void *)lo, hi - lo);
    if (last == NULL) return;
    tm_lock(&free_lock);
    last->next = free_purged;
    free_purged = list;
    tm_unlock(&free_lock);
}

/* Under free_lock: the pages the decay tick says to purge now (NULL: none), for the caller to
 * hand to purge_pages once it has released the lock. */
static tm_page_t *decay_locked(void) {
    uint32_t retain = tm_opt.slab_retain;
    if (free_committed <= retain) return NULL;
    if (tm_opt.slab_purge_delay == 0) return take_oldest_locked(free_committed - retain);
    uint64_t now = tm_now_ms();
    if (now < next_decay_ms) return NULL;
    tm_page_t *list = NULL;
    if (next_decay_ms != 0 && committed_low > retain)
        list = take_oldest_locked(committed_low - retain);
    committed_low = free_committed;
    next_decay_ms = now + tm_opt.slab_purge_delay;
    return list;
}

/* An unassigned page from the free pool (committed ones first), or from a new chunk. */
static tm_page_t *page_fresh(unsigned cls) {
    tm_lock(&free_lock);
    if (free_pages == NULL && free_purged == NULL) {
        tm_unlock(&free_lock);
        tm_chunk_hdr_t *ch =
            tm_chunk_alloc(TM_KIND_SLAB, sizeof(tm_chunk_hdr_t), NULL); /* may map */
        if (ch == NULL) return NULL;
        tm_lock(&free_lock);
        slab_chunk_init(ch);
    }
    tm_page_t *pg = free_pages;
    if (pg) {
        free_pages = pg->next;
        free_committed--;
        if (committed_low > free_committed) committed_low = free_committed;
    } else {
        pg = free_purged;
        free_purged = pg->next;
    }
    tm_page_t *purge = decay_locked();
    tm_unlock(&free_lock);
    purge_pages(purge);
    pg->next = pg->prev = NULL;
    pg->committed = 1;
    page_assign(pg, cls);
    atomic_fetch_add_explicit(&tm_class_stats[cls].pages, 1, memory_order_relaxed);
    return pg;
}

/* Returns an empty page to the top of the committed stack. */
static void page_release(tm_page_t *pg) {
    atomic_fetch_sub_explicit(&tm_class_stats[pg->cls].pages, 1, memory_order_relaxed);
    tm_rstore(pg->block_size, 0); /* from now on no pointer into it is valid */
    tm_rstore(pg->divisor, 0);
    tm_rstore(pg->carved_end, 0);
    tm_rstore(pg->owner, NULL);
    tm_lock(&free_lock);
    pg->committed = 1;
    free_committed++;
    pg->next = free_pages;
    free_pages = pg;
    tm_page_t *purge = decay_locked();
    tm_unlock(&free_lock);
    purge_pages(purge);
}

/* An empty page leaves its owner: kept in its class's pool up to the class target, else
 * released. */
static void pool_push_locked(tm_pool_t *pool, tm_page_t *pg) {
    pg->prev = NULL;
    pg->next = pool->pages;
    tm_rstore(pool->pages, pg);
    pool->count++;
}

static void page_retire(tm_page_t *pg) {
    tm_pool_t *pool = &class_pool[pg->cls];
    tm_rstore(pg->owner, NULL);
    pg->used = 0;
    tm_lock(&pool->lock);
    if (pool->count < pool->target) {
        pool_push_locked(pool, pg);
        tm_unlock(&pool->lock);
        return;
    }
    tm_unlock(&pool->lock);
    page_release(pg);
}

static tm_page_t *pool_take(unsigned cls) {
    tm_pool_t *pool = &class_pool[cls];
    if (tm_rload(pool->pages) == NULL) return NULL; /* racy peek; the lock decides */
    tm_lock(&pool->lock);
    tm_page_t *pg = pool->pages;
    if (pg) {
        tm_rstore(pool->pages, pg->next);
        pool->count--;
    }
    tm_unlock(&pool->lock);
    if (pg) {
        pg->next = pg->prev = NULL;
    }
    return pg;
}

/* ---- giving memory back ------------------------------------------------------------------
 * Pages that exiting threads leave in the class pools with blocks still out: the frees of
 * those blocks only go onto the page's thread_free, and nothing takes the page again unless
 * some thread allocates its class, so the page would stay resident. pools_reclaim collects
 * them. `abandoned` says a pool may hold such a page: abandon() sets it after the push, and
 * pools_reclaim clears it before it looks, so no page is missed. */
static _Atomic bool abandoned;
static uint64_t reclaim_due, reclaim_gap; /* the purger's alone */

/* No lock held. Pages of the class pools past their targets whose blocks have all been freed
 * go to the free-page pool (and, past slab_retain, back to the OS). Returns how many did. */
static unsigned pools_reclaim(void) {
    if (!atomic_exchange_explicit(&abandoned, false, memory_order_relaxed)) return 0;
    unsigned moved = 0;
    bool still = false;
    for (unsigned c = 0; c < tm_opt.nclasses; c++) {
        tm_pool_t *pool = &class_pool[c];
        if (tm_rload(pool->pages) == NULL) continue;
        tm_page_t *empty = NULL, *prev = NULL;
        tm_lock(&pool->lock);
        for (tm_page_t *pg = pool->pages, *next; pg; pg = next) {
            next = pg->next;
            page_collect(pg); /* a page in a pool is its lock's */
            if (pg->used == 0 && pool->count > pool->target) {
                if (prev)
                    prev->next = next;
                else
                    tm_rstore(pool->pages, next);
                pool->count--;
                pg->next = empty;
                empty = pg;
            } else {
                still |= pg->used != 0;
                prev = pg;
            }
        }
        tm_unlock(&pool->lock);
        for (tm_page_t *next; empty; empty = next, moved++) {
            next = empty->next;
            page_release(empty);
        }
    }
    if (still) atomic_store_explicit(&abandoned, true, memory_order_relaxed);
    return moved;
}

/* The purger's pass: abandoned pages whose blocks were freed (looked for again after
 * slab_purge_delay, backing off to 64 times that while none turns up), and the decay tick.
 * Returns when the next is due (0: nothing waits). */
uint64_t tm_slab_background(uint64_t now) {
    tm_slab_xfer_decay(now); /* first: the chains it gives back may empty pages */
    uint64_t base = delay_base(), next = 0;
    if (atomic_load_explicit(&abandoned, memory_order_relaxed)) {
        if (now >= reclaim_due) {
            reclaim_gap = pools_reclaim() || reclaim_gap == 0 ? base
                          : reclaim_gap < 64 * base           ? reclaim_gap * 2
                                                              : reclaim_gap;
            reclaim_due = now + reclaim_gap;
        }
        if (atomic_load_explicit(&abandoned, memory_order_relaxed)) next = reclaim_due;
    }
    tm_lock(&free_lock);
    tm_page_t *list = decay_locked();
    uint64_t tick = free_committed > tm_opt.slab_retain ? next_decay_ms : 0;
    tm_unlock(&free_lock);
    purge_pages(list);
    return tm_earliest(tm_earliest(next, tick), tm_slab_xfer_due());
}

/* malloc_trim: collects the abandoned pages whose blocks were freed, then purges every
 * committed free page now (the class pools' preallocated clusters stay, as they are kept on
 * purpose). */
void tm_slab_trim(void) {
    /* This thread's remote frees and bins go to their pages (other threads' stay theirs). */
    tm_slab_remote_flush(tm_tc); /* nothing for an empty or fallback cache: they chain none */
    xfer_flush_own(tm_tc);
    bins_flush(tm_tc);
    xfer_release(tm_now_ms(), true); /* every thread's chains: the pages can then empty */
    pools_reclaim();
    tm_lock(&free_lock);
    tm_page_t *purge = take_oldest_locked(free_committed);
    tm_unlock(&free_lock);
    purge_pages(purge);
}

/* ---- allocation slow path ------------------------------------------------------------- */

/* Remote frees wait while the page has blocks of its own: those were freed here and are
 * likelier in this CPU's cache, and the collect, when the list is empty, needs no walk. */
static bool page_has_free(tm_page_t *pg) {
    if (pg->free != NULL) return true;
    page_collect(pg);
    return pg->free != NULL || page_extend(pg);
}

/* Makes pg the current page of its class if it has (or can carve) a free block. The current
 * page carries one extra count in used, so frees that empty it never take the slow path. */
static bool page_try_current(tm_tcache_t *tc, tm_page_t *pg) {
    if (!page_has_free(pg)) return false;
    pg->used++;
    tc->cur[pg->cls] = pg;
    return true;
}

static void page_to_full(tm_tcache_t *tc, tm_page_t *pg) {
    tm_classq_t *q = &tc->q[pg->cls];
    pg->used |= TM_FULL_BIT;
    list_push(&q->fullq, pg);
    q->nfull++;
}

/* Looks through the full pages for blocks other threads have freed, and collects every page
 * that has some (no walk: a full page's own list is empty). A page they emptied is retired, so
 * a thread whose blocks other threads free (a producer never frees one itself) gives back what
 * it no longer needs in this class, for other threads and classes, instead of keeping each
 * class's high-water mark on its lists; the rest go on the avail list, which the next refills
 * use before they scan again. A partly used page becomes current before an empty one.
 * After a scan that found nothing, the next scans are skipped for a while, so a thread with
 * many full pages does not rescan them on every refill (amortised O(1) per refill). */
static tm_page_t *scan_full(tm_tcache_t *tc, tm_classq_t *q) {
    if (q->nfull == 0) return NULL;
    if (q->scan_skip) {
        q->scan_skip--;
        return NULL;
    }
    tm_page_t *spare = NULL, *pg;
    for (tm_page_t *p = q->fullq, *next; p; p = next) {
        next = p->next;
        if (atomic_load_explicit(&p->thread_free, memory_order_relaxed) == 0) continue;
        list_remove(&q->fullq, p);
        q->nfull--;
        p->used &= TM_USED_MASK;
        page_collect(p);
        if (p->used != 0)
            list_push(&q->avail, p);
        else if (spare == NULL)
            spare = p;
        else
            page_retire(p);
    }
    if ((pg = q->avail) != NULL) {
        list_remove(&q->avail, pg);
        if (spare) page_retire(spare);
    } else if ((pg = spare) == NULL) {
        q->scan_skip = q->nfull / 8 < 64 ? q->nfull / 8 : 64;
        return NULL;
    }
    page_try_current(tc, pg); /* it has the blocks just collected */
    return pg;
}

static void *refill(tm_tcache_t *tc, unsigned cls) {
    tm_classq_t *q = &tc->q[cls];
    tm_page_t *pg = tc->cur[cls];
    if (pg != &tm_page_empty) {
        if (page_has_free(pg)) goto done;
        tc->cur[cls] = &tm_page_empty;
        pg->used--; /* drop the current-page count; all its blocks are out, so used > 0 */
        page_to_full(tc, pg);
    }
    while ((pg = q->avail) != NULL) {
        list_remove(&q->avail, pg);
        if (page_try_current(tc, pg)) goto done;
        page_to_full(tc, pg);
    }
    if (scan_full(tc, q)) goto done;
    if (xfer_take(tc, cls)) goto done;
    while ((pg = pool_take(cls)) != NULL) {
        tm_rstore(pg->owner, tc);
        if (page_try_current(tc, pg)) goto done;
        page_to_full(tc, pg); /* an abandoned page still wholly in use */
    }
    pg = page_fresh(cls);
    if (pg == NULL) return NULL;
    tm_rstore(pg->owner, tc);
    page_try_current(tc, pg); /* a fresh page always has blocks to carve */
done:
    if (++tc->refills % 64 == 0)
        tm_stats_flush(tc); /* so the frees of classes this thread no longer allocates count */
    else
        tm_stats_flush_class(tc, cls);
    return tm_slab_alloc(tc, cls);
}

void *tm_slab_alloc_slow(tm_tcache_t *tc, unsigned cls) {
    void *p;
    if (tc != &tm_tcache_empty) {
        tm_slab_remote_flush(tc);
        p = refill(tc, cls);
        if (!tc->is_fallback) tm_purger_inline(); /* not under tm_fallback_lock */
    } else if ((tc = tm_tcache_get_slow()) == NULL) {
        p = NULL;
    } else if (tc->is_fallback) {
        tm_lock(&tm_fallback_lock);
        p = tm_slab_alloc(tc, cls);
        tm_unlock(&tm_fallback_lock);
    } else {
        p = tm_slab_alloc(tc, cls);
    }
    if (p == NULL) errno = ENOMEM;
    return p;
}

/* ---- free slow paths -------------------------------------------------------------------- */

/* Called by the owner when a free made its page empty or hit a page on the full list. */
void tm_slab_free_slow(tm_tcache_t *tc, tm_page_t *pg, tm_block_t *b) {
    (void)b;
    tm_classq_t *q = &tc->q[pg->cls];
    if (pg->used & TM_FULL_BIT) {
        list_remove(&q->fullq, pg);
        q->nfull--;
        pg->used &= TM_USED_MASK;
        if (pg->used != 0) {
            list_push(&q->avail, pg);
            return;
        }
    } else {
        list_remove(&q->avail, pg); /* not the current page: that one never reaches 0 */
    }
    page_retire(pg);
}

/* Pushes the chain head..tail of n blocks onto pg's thread_free, one CAS for all of it; its
 * blocks stay pending until the owner collects them (page_collect). */
static void remote_push(tm_page_t *pg, tm_block_t *head, tm_block_t *tail, uint32_t n) {
    uintptr_t old = atomic_load_explicit(&pg->thread_free, memory_order_relaxed), w;
    do {
        tm_block_link_pending(tail, TF_PTR(old));
        w = (uintptr_t)head | ((uintptr_t)(TF_COUNT(old) + n) << TM_ADDR_BITS);
    } while (!atomic_compare_exchange_weak_explicit(&pg->thread_free, &old, w, memory_order_release,
                                                    memory_order_relaxed));
}

void tm_slab_remote_flush(tm_tcache_t *tc) {
    if (tc->rhead == NULL) return;
    remote_push(tc->rpage, tc->rhead, tc->rtail, tc->rcount);
    tc->rhead = tc->rtail = NULL;
    tc->rpage = NULL;
    tc->rcount = 0;
}

/* A thread with a cache gathers its frees to another thread's page into a chain of its own and
 * hands the chain over with one CAS when the next such free is to another page, or the chain
 * holds TM_REMOTE_BYTES: a consumer freeing what a producer allocated (blocks of one page,
 * mostly) then writes the page's shared line once per chain instead of once per block. The
 * chain is bounded, and the thread hands it over on its slow paths, in malloc_trim and at exit;
 * until then its blocks count as used, as on thread_free. */
void tm_slab_free_remote(tm_tcache_t *tc, tm_page_t *pg, tm_block_t *b) {
    /* The owner's lists cannot be read from here, so a block that looks free is taken as a
     * double free: its check word is keyed by a 64-bit per-process secret, which user data
     * matches only by copying freed memory. A block on a thread's chain is freed too. */
    if (tm_unlikely(tm_block_is_freed(b))) tm_fatal("free", "double free of", b);
    if (tc == &tm_tcache_empty && (tc = tm_tcache_get_slow()) == NULL) tc = &tm_tcache_empty;
    if (tm_unlikely(tc == &tm_tcache_empty || tc->is_fallback)) {
        remote_push(pg, b, b, 1);
        atomic_fetch_add_explicit(&tm_class_stats[pg->cls].nfree, 1, memory_order_relaxed);
        return;
    }
    /* A consumer's frees reach the totals here, or the class's peak live count would climb
     * with every block its producers allocate. */
    unsigned cls = pg->cls;
    if (++tc->nfree[cls] - tc->flushed_free[cls] >= TM_STATS_BATCH) tm_stats_flush_class(tc, cls);
    /* A bin with room takes the block as its own frees, for this thread's next malloc of the
     * class: no atomic write to the owner's page, and the block is reused while it is still
     * in this thread's cache (a thread that frees what others allocated, and allocates, as
     * servers do). The block stays used on its page, as every binned block does, and carries
     * the pending key, so that its owner's free of it is a double free too. Only blocks of
     * whole cache lines (a class a multiple of 64 B): a smaller block shares its line with
     * neighbours its owner may still write, and this thread's reuse of it would make the two
     * threads write one line (false-share-passive: 4.07x the time with every class). */
    if (pg->block_size % 64 == 0) {
        if (tc->bin_room[cls] != 0) {
            tc->bin_room[cls]--;
            tm_block_link_pending(b, tc->bin[cls]);
            tc->bin[cls] = b;
            return;
        }
        if (tm_opt.slab_transfer != 0) return xfer_add(tc, cls, b);
    }
    if (pg != tc->rpage) {
        tm_slab_remote_flush(tc);
        tm_block_link_pending(b, NULL);
        tc->rpage = pg;
        tc->rtail = b;
    } else {
        tm_block_link_pending(b, tc->rhead);
    }
    tc->rhead = b;
    if (++tc->rcount * pg->block_size >= TM_REMOTE_BYTES) tm_slab_remote_flush(tc);
}

/* A local free of a block that looks free: a double free if the block is in the thread's bin
 * or on the page's lists, else user data that happened to match its check word, and the free
 * goes on. */
void tm_slab_free_keyed(tm_tcache_t *tc, tm_page_t *pg, tm_block_t *b) {
    if (tm_block_is_pending(b)) tm_fatal("free", "double free of", b); /* on a remote chain */
    if (!tm_block_is_free(b)) goto not_free;
    for (tm_block_t *x = tc->bin[pg->cls]; x; x = x->next)
        if (x == b) tm_fatal("free", "double free of", b);
    page_collect(pg);
    uint32_t n = 0, carved = tm_page_carved(pg);
    for (tm_block_t *x = pg->free; x && n <= carved; x = x->next, n++)
        if (x == b) tm_fatal("free", "double free of", b);
not_free:
    b->check = 0; /* no longer looks free, so the free goes on */
    tm_slab_free(pg, b);
}

void tm_slab_corrupt(const tm_block_t *b) {
    tm_fatal("malloc", "corrupted free list (write after free?) at", b);
}

/* ---- thread exit ------------------------------------------------------------------------ */
static void abandon(tm_page_t *pg) {
    page_collect(pg);
    pg->used &= TM_USED_MASK;
    if (pg->used == 0) {
        page_retire(pg);
        return;
    }
    tm_pool_t *pool = &class_pool[pg->cls];
    tm_rstore(pg->owner, NULL);
    tm_lock(&pool->lock);
    pool_push_locked(pool, pg);
    tm_unlock(&pool->lock);
    atomic_store_explicit(&abandoned, true, memory_order_relaxed);
    tm_purger_wanted = true; /* the exiting thread polls once its cache is gone */
}

static void abandon_list(tm_page_t *pg) {
    while (pg) {
        tm_page_t *next = pg->next;
        abandon(pg);
        pg = next;
    }
}

/* A dying thread hands every page it owns to the pools; later frees of its blocks go through
 * thread_free and are collected by whichever thread adopts the page. */
void tm_slab_abandon_all(tm_tcache_t *tc) {
    tm_slab_remote_flush(tc);
    xfer_flush_own(tc);
    bins_flush(tc);
    for (unsigned c = 0; c < tm_opt.nclasses; c++) {
        if (tc->cur[c] != &tm_page_empty) {
            tc->cur[c]->used--;
            abandon(tc->cur[c]);
        }
        tc->cur[c] = &tm_page_empty;
        abandon_list(tc->q[c].avail);
        abandon_list(tc->q[c].fullq);
        memset(&tc->q[c], 0, sizeof tc->q[c]);
    }
}

/* ---- set-up ----------------------------------------------------------------------------- */
int tm_slab_aligned_class(size_t n, size_t align) {
    if (n > tm_opt.slab_max || align > TM_PAGE_SIZE) return -1;
    for (unsigned c = tm_class_of(n); c < tm_opt.nclasses; c++)
        if (tm_opt.class_size[c] % align == 0) return (int)c;
    return -1;
}

/* Builds the size -> class table and the preallocated cluster of each class. */
void tm_slab_init(void) {
    unsigned c = 0;
    for (size_t i = 0; i < TM_SIZE_TABLE_LEN; i++) {
        size_t n = i * TM_ALIGN;
        while (c + 1 < tm_opt.nclasses && tm_opt.class_size[c] < n) c++;
        tm_size_class[i] = (uint8_t)c;
    }
    for (c = 0; c < tm_opt.nclasses; c++) {
        uint32_t fit = (uint32_t)(16384 / tm_opt.class_size[c]);
        tm_bin_max[c] = fit < 4 ? 4 : fit > 64 ? 64 : fit;
        uint32_t per_page = (uint32_t)(TM_PAGE_SIZE / tm_opt.class_size[c]);
        uint32_t pages = (tm_opt.class_prealloc[c] + per_page - 1) / per_page;
        class_pool[c].target = pages;
        for (uint32_t i = 0; i < pages; i++) {
            tm_page_t *pg = page_fresh(c);
            if (pg == NULL) break;
            if (tm_opt.prefault) tm_os_populate((void *)tm_page_start(pg), TM_PAGE_SIZE);
            pool_push_locked(&class_pool[c], pg); /* start-up: no other thread yet */
        }
    }
    /* Last: a non-zero fast_max lets the fast path use the table built above. */
    tm_opt.slab_max = tm_opt.class_size[tm_opt.nclasses - 1];
    atomic_thread_fence(memory_order_release);
    tm_opt.fast_max = tm_profiling ? 0 : tm_opt.slab_max;
}

void tm_slab_locks(tm_lock_op_t op) {
    for (unsigned c = 0; c < TM_MAX_CLASSES; c++) tm_lock_fork(&class_pool[c].lock, op);
    for (unsigned c = 0; c < TM_MAX_CLASSES; c++) tm_spin_fork(&xfer[c].lock, op);
    tm_lock_fork(&free_lock, op);
}
