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
 *
 * Leaving. Once no thread with a cache is left (the main thread called pthread_exit after the
 * others ended, as a forked child of a worker thread does in CPython), the purger returns:
 * glibc ends a process when its last thread does, and a purger still asleep would keep the
 * process alive for ever. A thread that comes later starts a new one. Invariant: the purger
 * reads wake_seq before it looks at the live count, and the last thread drops the count
 * before it bumps wake_seq, so the purger either sees the count at 0 or is woken from its
 * sleep.
 */
#include "tm_internal.h"

#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

__thread bool tm_purger_wanted __attribute__((tls_model("initial-exec")));
_Atomic int tm_purger_state;
static _Atomic int sleeping;      /* 1: the purger waits with no deadline */
static _Atomic uint32_t wake_seq; /* the futex word: bumped to wake the purger */
static _Atomic uint32_t left_seq; /* bumped by a purger as it leaves */

/* A purger that left is joined, by the thread that kicked it out or by the next start():
 * joining is how a thread knows the purger has ended (glibc's count of threads included).
 * reap_lock guards the two; one left purger at most waits to be joined. */
static tm_lock_t reap_lock;
static pthread_t left_handle;
static bool left_pending;

/* Joins a purger that has left. It takes no lock on its way out, so the join is short. */
static void reap(void) {
    tm_lock(&reap_lock);
    if (left_pending) pthread_join(left_handle, NULL);
    left_pending = false;
    tm_unlock(&reap_lock);
}

/* Sleeps while *w is still `seen`, up to ms milliseconds (0: no limit). */
static void futex_wait(_Atomic uint32_t *w, uint32_t seen, uint64_t ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT_PRIVATE, seen, ms ? &ts : NULL, NULL, 0);
}

/* Bumps *w, then wakes up to n of the threads asleep on it. */
static void futex_bump(_Atomic uint32_t *w, int n) {
    atomic_fetch_add(w, 1);
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

/* One pass: everything due at now. Returns when the next work falls due (0: none waits). */
static uint64_t run_due(uint64_t now) {
    tm_mcache_drain(now); /* first: the blocks it returns may empty chunks due at once */
    uint64_t next = tm_arena_background(now);
    next = tm_earliest(next, tm_heap_background(now));
    next = tm_earliest(next, tm_slab_background(now));
    next = tm_earliest(next, tm_chunk_background(now)); /* after the heap: it may release */
    return tm_earliest(next, tm_mcache_due());
}

/* True when the purger should return: no thread with a cache is left, and no thread started
 * meanwhile to keep it (a thread whose cache comes after the state went to NONE starts a new
 * purger itself). */
static bool leave(void) {
    if (tm_tcache_live() != 0) return false;
    int running = TM_PURGER_RUNNING;
    if (!atomic_compare_exchange_strong(&tm_purger_state, &running, TM_PURGER_NONE)) return true;
    if (tm_tcache_live() == 0) return true;
    int none = TM_PURGER_NONE;
    return !atomic_compare_exchange_strong(&tm_purger_state, &none, TM_PURGER_RUNNING);
}

static void *purger_main(void *arg) {
    (void)arg;
    prctl(PR_SET_NAME, "tm-purger"); /* here: it may have left before start() could name it */
    for (;;) {
        uint32_t seen = atomic_load(&wake_seq);
        if (leave()) {
            reap(); /* a predecessor not yet joined */
            tm_lock(&reap_lock);
            left_handle = pthread_self();
            left_pending = true;
            tm_unlock(&reap_lock);
            futex_bump(&left_seq, INT32_MAX);
            return NULL;
        }
        uint64_t now = tm_now_ms();
        uint64_t next = run_due(now);
        if (next) {
            /* A due time already past (a busy shard, a full batch) is retried shortly. */
            futex_wait(&wake_seq, seen, next > now ? next - now : 10);
            continue;
        }
        atomic_store_explicit(&sleeping, 1, memory_order_relaxed);
        atomic_thread_fence(memory_order_seq_cst);
        if (tm_arena_due() || tm_heap_due() || tm_mcache_due() || tm_slab_xfer_due() ||
            tm_chunk_due()) {
            atomic_store_explicit(&sleeping, 0, memory_order_relaxed);
            continue;
        }
        futex_wait(&wake_seq, seen, 0);
        atomic_store_explicit(&sleeping, 0, memory_order_relaxed);
    }
    return NULL;
}

/* No lock held. Signals are blocked in the purger (it inherits the mask it is created with),
 * so none of the program's handlers ever runs on it. */
static void start(void) {
    int none = TM_PURGER_NONE;
    /* RUNNING before the thread exists, so that the purger's leave() always finds it so. */
    if (!atomic_compare_exchange_strong(&tm_purger_state, &none, TM_PURGER_RUNNING)) return;
    /* The last thread with a cache may have ended since the caller looked: its kick found no
     * purger, and one started now would leave at once with no one to join it (ThreadSanitizer
     * saw that leak). Invariant: the ending thread drops the live count before it reads the
     * state, and this one sets the state before it reads the count (both seq_cst), so either
     * that kick waits for the purger made here and joins it, or this sees the count at 0. A
     * kick that already waits is let go by the bump. */
    if (tm_tcache_live() == 0) {
        atomic_store(&tm_purger_state, TM_PURGER_NONE);
        futex_bump(&left_seq, INT32_MAX);
        return;
    }
    reap();
    pthread_attr_t attr;
    sigset_t all, old;
    pthread_t t;
    int ok = pthread_attr_init(&attr) == 0;
    if (ok) {
        pthread_attr_setstacksize(&attr, 256 << 10);
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        ok = pthread_create(&t, &attr, purger_main, NULL) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&attr);
    }
    if (!ok) atomic_store(&tm_purger_state, TM_PURGER_FAILED);
}

void tm_purger_wake(void) {
    tm_purger_wanted = false;
    if (!tm_opt.purge_thread) return;
    int s = atomic_load(&tm_purger_state);
    if (s == TM_PURGER_NONE) {
        if (tm_tcache_threads() >= 2 && tm_tcache_live() > 0) start();
        return;
    }
    if (s != TM_PURGER_RUNNING) return;
    atomic_thread_fence(memory_order_seq_cst);
    int one = 1;
    if (atomic_load_explicit(&sleeping, memory_order_relaxed) &&
        atomic_compare_exchange_strong(&sleeping, &one, 0)) {
        futex_bump(&wake_seq, 1);
    }
}

/* Called by the last thread with a cache as it ends. It waits for the purger to leave (a
 * bounded wait: a purger that stays because a thread came meanwhile is not waited for) and
 * joins it, so that this thread is the process's last and the one glibc's exit(0) runs the
 * atexit handlers on: not the purger, with its small stack and every signal blocked. */
void tm_purger_kick(void) {
    /* left_seq before the state: a purger that leaves, or a start() that backs out, after the
     * state was read bumps it after this read, so the wait below ends. */
    uint32_t left = atomic_load(&left_seq);
    if (atomic_load(&tm_purger_state) != TM_PURGER_RUNNING) {
        reap(); /* one that left on its own meanwhile */
        return;
    }
    futex_bump(&wake_seq, 1);
    /* In 10 ms slices, up to 1 s (a pass under way finishes first); a thread that comes
     * meanwhile keeps the purger, and ends the wait: this one is not the last any more. */
    for (int i = 0; i < 100 && atomic_load(&left_seq) == left && tm_tcache_live() == 0; i++)
        futex_wait(&left_seq, left, 10);
    if (atomic_load(&left_seq) != left) reap();
}

/* tm_purger_inline's passes, something being due at `due` (tm_internal.h). */
void tm_purger_inline_due(uint64_t due) {
    if (tm_clock_skipped()) return;
    uint64_t now = tm_now_ms();
    if (now < due) return;
    tm_slab_xfer_decay(now);
    tm_arena_background(now);
    tm_heap_background(now);
    tm_chunk_background(now);
}

/* The purger does not exist in a forked child: the child starts its own when it needs one. */
void tm_purger_fork_child(void) {
    atomic_store_explicit(&tm_purger_state, TM_PURGER_NONE, memory_order_relaxed);
    atomic_store_explicit(&sleeping, 0, memory_order_relaxed);
    tm_purger_wanted = false;
    tm_lock_reset(&reap_lock);
    left_pending = false; /* that thread was the parent's */
}
