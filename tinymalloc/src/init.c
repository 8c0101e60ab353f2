/* Start-up, fork handling and exit: everything that runs once per process (or per fork). */
#include "tm_internal.h"

#include <pthread.h>
#include <sys/auxv.h>
#include <time.h>

_Atomic int tm_initialized;
static tm_lock_t init_lock;
static _Atomic int atfork_registered;

/* The secret that encodes free-list links and keys: the kernel's AT_RANDOM bytes, mixed with
 * addresses and time in case they are missing. */
static uintptr_t make_secret(void) {
    uintptr_t s = 0x2545f4914f6cdd1dULL;
    const uint64_t *r = (const uint64_t *)getauxval(AT_RANDOM);
    if (r) s ^= r[0] ^ (r[1] << 1);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    s ^= (uintptr_t)&ts ^ ((uintptr_t)ts.tv_nsec << 32) ^ (uintptr_t)&tm_initialized;
    s ^= s >> 31;
    s *= 0xbf58476d1ce4e5b9ULL;
    s ^= s >> 29;
    /* Bit 63 set: a cleared check word (0) never passes tm_block_may_be_free's tag test. */
    return s | 1 | (1ULL << 63);
}

/* The lock owners, in the order the allocator nests their locks (a thread holding a pool lock
 * may reach the chunk lock, never the reverse). Fork takes them all in this order and lets go
 * of them in the reverse one: the medium caches' locks are found on the list of live caches,
 * which may be read only while its lock is held. */
static void (*const lock_owners[])(tm_lock_op_t) = {
    tm_tcache_locks, tm_mcache_locks, tm_slab_locks, tm_arena_locks, tm_heap_locks, tm_chunk_locks,
};
#define NOWNERS (sizeof lock_owners / sizeof lock_owners[0])

static void fork_prepare(void) {
    tm_lock(&init_lock);
    for (size_t i = 0; i < NOWNERS; i++) lock_owners[i](TM_LOCK_TAKE);
}

static void fork_parent(void) {
    for (size_t i = NOWNERS; i-- > 0;) lock_owners[i](TM_LOCK_GIVE);
    tm_unlock(&init_lock);
}

static void fork_child(void) {
    for (size_t i = NOWNERS; i-- > 0;) lock_owners[i](TM_LOCK_RESET);
    tm_profile_fork_child();
    tm_purger_fork_child();
    tm_tcache_fork_child();
    tm_lock_reset(&init_lock);
}

void tm_init_slow(void) {
    tm_lock(&init_lock);
    if (!atomic_load_explicit(&tm_initialized, memory_order_relaxed)) {
        tm_secret = make_secret();
        tm_options_init();
        tm_chunk_init();                          /* before any chunk is marked */
        if (tm_opt.profile[0]) tm_profile_init(); /* before any chunk is marked */
        tm_tcache_init();
        tm_arena_init();
        tm_heap_init();
        tm_slab_init();
        tm_mcache_init(); /* its classes start above slab_max */
        tm_stats_init();
        atomic_store_explicit(&tm_initialized, 1, memory_order_release);
    }
    tm_unlock(&init_lock);
    /* Outside the lock: registering may allocate, which is fine now. */
    int expected = 0;
    if (atomic_compare_exchange_strong(&atfork_registered, &expected, 1))
        pthread_atfork(fork_prepare, fork_parent, fork_child);
}

__attribute__((constructor)) static void tm_constructor(void) { tm_init(); }

__attribute__((destructor)) static void tm_destructor(void) {
    if (!atomic_load_explicit(&tm_initialized, memory_order_acquire)) return;
    if (tm_opt.stats) tm_stats_at_exit();
    if (tm_profiling) tm_profile_write();
}
