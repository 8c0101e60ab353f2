/* Thread caches: each thread's current slab page per class, its page queues and counters.
 *
 * tm_tc starts as &tm_tcache_empty, whose current pages have no free blocks, so the malloc
 * fast path needs no "initialised?" test: the first allocation falls into the slow path, which
 * creates the thread's cache. A pthread key destructor hands a dying thread's pages to the
 * pools; anything the thread allocates after that is served by the fallback cache under a
 * lock, and its frees go to the owners' thread_free lists like any cross-thread free.
 */
#include "tm_internal.h"

#include <pthread.h>
#include <string.h>

enum { TM_THREAD_NEW = 0, TM_THREAD_LIVE = 1, TM_THREAD_DEAD = 2 };

#define TM_EMPTY_CACHE                                                                             \
    {                                                                                              \
        .cur = { [0 ... TM_MAX_CLASSES - 1] = &tm_page_empty }                                     \
    }

tm_tcache_t tm_tcache_empty = TM_EMPTY_CACHE;
tm_tcache_t tm_tcache_fallback = TM_EMPTY_CACHE;
tm_lock_t tm_fallback_lock;
tm_lock_t tm_tcache_lock; /* guards the live list and the free list of caches */

__thread tm_tcache_t *tm_tc __attribute__((tls_model("initial-exec"))) = &tm_tcache_empty;
static __thread int thread_state __attribute__((tls_model("initial-exec")));

#define TM_TCACHE_COLOR 0x9c0 /* an L1 set no slab page starts in */

static pthread_key_t tcache_key;
static tm_tcache_t *live_caches, *free_caches;
static _Atomic unsigned nthreads; /* threads that have had a cache (never decreases) */
static _Atomic unsigned nlive;    /* threads whose cache is live (LIVE state) */

tm_tcache_t *tm_tcache_live_first(void) { return live_caches; }
unsigned tm_tcache_threads(void) { return atomic_load_explicit(&nthreads, memory_order_relaxed); }
unsigned tm_tcache_live(void) { return atomic_load(&nlive); }

/* A forked child has the forking thread only: it counts as single-threaded until it starts
 * another (a child that unshares its user namespace, say, must stay so). */
void tm_tcache_fork_child(void) {
    atomic_store_explicit(&nthreads, thread_state == TM_THREAD_LIVE, memory_order_relaxed);
    atomic_store(&nlive, thread_state == TM_THREAD_LIVE);
}

static void tcache_destroy(void *arg) {
    tm_tcache_t *tc = arg;
    if (tc == NULL || tc != tm_tc) return;
    tm_tc = &tm_tcache_empty;
    thread_state = TM_THREAD_DEAD;
    tm_slab_abandon_all(tc);
    tm_mcache_flush(tc);
    tm_stats_flush(tc);
    tm_arena_thread_exit(); /* after the flush: a new thread finds the blocks it freed */
    tm_lock(&tm_tcache_lock);
    if (tc->prev_live)
        tc->prev_live->next_live = tc->next_live;
    else
        live_caches = tc->next_live;
    if (tc->next_live) tc->next_live->prev_live = tc->prev_live;
    tc->next_free = free_caches;
    free_caches = tc;
    tm_unlock(&tm_tcache_lock);
    /* The last thread with a cache is gone (the main thread may have called pthread_exit):
     * the purger must leave too, or it would keep the process alive after the program's
     * last thread ended. */
    if (atomic_fetch_sub(&nlive, 1) == 1) tm_purger_kick();
    tm_purger_poll(); /* its cached blocks went back: a purge may be due */
}

tm_tcache_t *tm_tcache_get_slow(void) {
    tm_init();
    if (thread_state == TM_THREAD_LIVE) return tm_tc;
    if (thread_state == TM_THREAD_DEAD) return &tm_tcache_fallback;
    tm_lock(&tm_tcache_lock);
    tm_tcache_t *tc = free_caches;
    if (tc) free_caches = tc->next_free;
    tm_unlock(&tm_tcache_lock);
    if (tc == NULL) {
        /* Not at the start of its metadata chunk: there its hot first lines would share an
         * L1 set with the first blocks of slab pages (all 64 KiB aligned), and on AMD cores
         * processes whose chunks landed at some addresses ran malloc/free pairs much slower
         * (the way predictor's hash of the two addresses collided). */
        char *m = tm_meta_alloc(sizeof *tc + TM_TCACHE_COLOR);
        tc = m ? (tm_tcache_t *)(m + TM_TCACHE_COLOR) : NULL;
    }
    if (tc == NULL) return NULL;
    memset(tc, 0, sizeof *tc);
    for (unsigned c = 0; c < TM_MAX_CLASSES; c++) {
        tc->cur[c] = &tm_page_empty;
        tc->bin_room[c] = tm_bin_max[c];
    }
    tc->mfast = tm_mcache_owner_fast();
    tm_lock(&tm_tcache_lock);
    tc->next_live = live_caches;
    if (live_caches) live_caches->prev_live = tc;
    live_caches = tc;
    tm_unlock(&tm_tcache_lock);
    tm_tc = tc;
    thread_state = TM_THREAD_LIVE;
    /* The second thread, or the first after the purger left with the last one: work already
     * due would wake no purger (only a due time set from none does), so this thread's next
     * call that may make work due starts it. */
    bool first_live = atomic_fetch_add(&nlive, 1) == 0;
    if (atomic_fetch_add_explicit(&nthreads, 1, memory_order_relaxed) == 1 || first_live)
        tm_purger_wanted = true;
    /* May allocate (glibc's second-level key storage): tm_tc is already usable. */
    pthread_setspecific(tcache_key, tc);
    return tc;
}

void tm_tcache_init(void) {
    tm_tcache_fallback.is_fallback = true;
    pthread_key_create(&tcache_key, tcache_destroy);
}

/* In a forked child only the forking thread runs: the caches of the others stay on the live
 * list (their counters still count), and their pages are never collected, which leaks but is
 * safe. */
void tm_tcache_locks(tm_lock_op_t op) {
    tm_lock_fork(&tm_fallback_lock, op);
    tm_lock_fork(&tm_tcache_lock, op);
}
