/* Locks: the slow paths of tm_lock and tm_unlock (tm_internal.h), the spin lock of the medium
 * caches, and what fork does to each.
 *
 * A lock word is 0 (free), 1 (held) or 2 (held, and a thread may be asleep on it), after
 * Drepper's "Futexes are tricky". A thread that finds the lock held spins briefly, for a holder
 * running on another CPU, then sleeps in the kernel: a holder that was preempted (more threads
 * than CPUs) no longer has every waiter burning the CPU it needs to finish. Whoever takes the
 * lock after sleeping takes it at 2, not knowing whether others still sleep, so its unlock
 * wakes the next one; an uncontended lock never makes a system call. */
#include "tm_internal.h"

#include <errno.h>
#include <sched.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#define TM_LOCK_SPINS 100 /* about a microsecond: longer than a typical slow-path hold */

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* syscall() sets errno on EAGAIN and EINTR, which a successful malloc or a free must not. */
static void futex(tm_lock_t *l, int op, int val) {
    int saved = errno;
    syscall(SYS_futex, (int *)&l->v, op, val, NULL, NULL, 0);
    errno = saved;
}

/* A waiter's attempt: read first, so that spinning waiters do not take the line from the
 * holder with failed exchanges. */
static bool take_if_free(_Atomic int *v) {
    int unheld = 0;
    return atomic_load_explicit(v, memory_order_relaxed) == 0 &&
           atomic_compare_exchange_weak_explicit(v, &unheld, 1, memory_order_acquire,
                                                 memory_order_relaxed);
}

void tm_lock_slow(tm_lock_t *l) {
    for (unsigned i = 0; i < TM_LOCK_SPINS; i++) {
        cpu_relax();
        if (take_if_free(&l->v)) return;
    }
    while (atomic_exchange_explicit(&l->v, 2, memory_order_acquire) != 0)
        futex(l, FUTEX_WAIT_PRIVATE, 2); /* returns at once if the word is no longer 2 */
}

void tm_lock_wake(tm_lock_t *l) { futex(l, FUTEX_WAKE_PRIVATE, 1); }

void tm_lock_fork(tm_lock_t *l, tm_lock_op_t op) {
    if (op == TM_LOCK_TAKE)
        tm_lock(l);
    else if (op == TM_LOCK_GIVE)
        tm_unlock(l);
    else
        tm_lock_reset(l);
}

/* Nobody sleeps on a spin lock, so its unlock wakes nobody: a waiter spins for a holder that
 * runs, then yields the CPU to one that was preempted. Its holders keep it briefly: a cache
 * operation, or a drain of one cache (at most medium_cache bytes of blocks). */
void tm_spin_slow(tm_spin_t *l) {
    for (unsigned i = 0;; i++) {
        if (i >= TM_LOCK_SPINS) {
            sched_yield();
            i = 0;
        } else {
            cpu_relax();
        }
        if (take_if_free(&l->v)) return;
    }
}

void tm_spin_fork(tm_spin_t *l, tm_lock_op_t op) {
    if (op == TM_LOCK_TAKE)
        tm_spin_lock(l);
    else if (op == TM_LOCK_GIVE)
        tm_spin_unlock(l);
    else
        atomic_store_explicit(&l->v, 0, memory_order_relaxed);
}
