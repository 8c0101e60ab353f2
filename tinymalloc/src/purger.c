/* The purger: a background thread that runs the tiers' delayed purges and the medium cache's
 * decay when they fall due, so that memory freed by threads that then go quiet goes back to
 * the OS without waiting for some later allocator call that may never come.
 *
 * It starts (once, purge_thread:1) on the first allocator call that leaves work due in a
 * process that has had two threads with caches: a single-threaded program calls in again or
 * exits, and some (unshare, seccomp set-up) need to stay single-threaded. It sleeps on a futex
 * until the earliest due time; with nothing due it sleeps until woken.
 *
 * Waking. A tier that makes some work due where none was (a due time set from 0) marks the
 * calling thread (tm_purger_wanted); that thread, once out of every lock, calls
 * tm_purger_wake, which starts the purger or wakes it if it sleeps with no deadline. Invariant
 * against a lost wake-up: the purger sets `sleeping` before its last look at the due times and
 * the waker publishes its due time before it looks at `sleeping`, each with a full fence
 * between, so one of them sees the other.
 */
#include "tm_internal.h"

#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { TM_PURGER_NONE = 0, TM_PURGER_STARTING, TM_PURGER_RUNNING, TM_PURGER_FAILED };

__thread bool tm_purger_wanted __attribute__((tls_model("initial-exec")));
static _Atomic int state;
static _Atomic int sleeping;      /* 1: the purger waits with no deadline */
static _Atomic uint32_t wake_seq; /* the futex word: bumped to wake the purger */

static void futex_wait(uint32_t seen, uint64_t ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    syscall(SYS_futex, (uint32_t *)&wake_seq, FUTEX_WAIT_PRIVATE, seen, ms ? &ts : NULL, NULL, 0);
}

/* One pass: everything due at now. Returns when the next work falls due (0: none waits). */
static uint64_t run_due(uint64_t now) {
    tm_mcache_drain(now); /* first: the blocks it returns may empty chunks due at once */
    uint64_t next = tm_arena_background(now);
    next = tm_earliest(next, tm_heap_background(now));
    next = tm_earliest(next, tm_slab_background(now));
    return tm_earliest(next, tm_mcache_due());
}

static void *purger_main(void *arg) {
    (void)arg;
    for (;;) {
        uint64_t now = tm_now_ms();
        uint64_t next = run_due(now);
        uint32_t seen = atomic_load_explicit(&wake_seq, memory_order_relaxed);
        if (next) {
            /* A due time already past (a busy shard, a full batch) is retried shortly. */
            futex_wait(seen, next > now ? next - now : 10);
            continue;
        }
        atomic_store_explicit(&sleeping, 1, memory_order_relaxed);
        atomic_thread_fence(memory_order_seq_cst);
        if (tm_arena_due() || tm_heap_due() || tm_mcache_due()) {
            atomic_store_explicit(&sleeping, 0, memory_order_relaxed);
            continue;
        }
        futex_wait(seen, 0);
        atomic_store_explicit(&sleeping, 0, memory_order_relaxed);
    }
    return NULL;
}

/* No lock held. Signals are blocked in the purger (it inherits the mask it is created with),
 * so none of the program's handlers ever runs on it. */
static void start(void) {
    int none = TM_PURGER_NONE;
    if (!atomic_compare_exchange_strong(&state, &none, TM_PURGER_STARTING)) return;
    pthread_attr_t attr;
    sigset_t all, old;
    pthread_t t;
    int ok = pthread_attr_init(&attr) == 0;
    if (ok) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 256 << 10);
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        ok = pthread_create(&t, &attr, purger_main, NULL) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&attr);
    }
    if (ok) pthread_setname_np(t, "tm-purger");
    atomic_store(&state, ok ? TM_PURGER_RUNNING : TM_PURGER_FAILED);
}

void tm_purger_wake(void) {
    tm_purger_wanted = false;
    if (!tm_opt.purge_thread) return;
    int s = atomic_load_explicit(&state, memory_order_relaxed);
    if (s == TM_PURGER_NONE) {
        if (tm_tcache_threads() >= 2) start();
        return;
    }
    if (s != TM_PURGER_RUNNING) return;
    atomic_thread_fence(memory_order_seq_cst);
    int one = 1;
    if (atomic_load_explicit(&sleeping, memory_order_relaxed) &&
        atomic_compare_exchange_strong(&sleeping, &one, 0)) {
        atomic_fetch_add_explicit(&wake_seq, 1, memory_order_relaxed);
        syscall(SYS_futex, (uint32_t *)&wake_seq, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
}

/* The purger does not exist in a forked child: the child starts its own when it needs one. */
void tm_purger_fork_child(void) {
    atomic_store_explicit(&state, TM_PURGER_NONE, memory_order_relaxed);
    atomic_store_explicit(&sleeping, 0, memory_order_relaxed);
    tm_purger_wanted = false;
}
