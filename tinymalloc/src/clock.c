/* The purge clock of a sharded tier (tm_clock_t in tm_types.h): the earliest due time of all
 * shards, lowered with one CAS, so that an operation on any CPU notices when some shard's
 * delayed purge is past due, and runs it; and the system calls that purge, made after the
 * shard's lock is released (tm_defer_t). */
#include "tm_internal.h"

__thread uint8_t tm_clock_skip __attribute__((tls_model("initial-exec")));

void tm_clock_init(tm_clock_t *c, tm_shard_t *first, size_t stride, unsigned n,
                   const uint32_t *delay_ms, tm_maintain_fn maintain, tm_purged_fn purged) {
    c->first = first;
    c->stride = stride;
    c->n = n;
    c->delay_ms = delay_ms;
    c->maintain = maintain;
    c->purged = purged;
}

void tm_clock_set(tm_clock_t *c, tm_shard_t *s, uint64_t due) {
    s->due_ms = due;
    if (due) tm_due_lower(&c->due_ms, due);
}

/* Runs the other shards' due maintenance; s is locked by the caller, the others are only
 * tried (a busy one is tried again half a delay later). Only the caller that takes the due
 * time it saw (one CAS to 0) does this; it then publishes again the time of every shard it
 * leaves waiting, which keeps the clock's invariant. */
tm_noinline void tm_clock_others(tm_clock_t *c, tm_shard_t *s, uint64_t due, uint64_t now,
                                 tm_defer_t *d) {
    if (!atomic_compare_exchange_strong_explicit(&c->due_ms, &due, 0, memory_order_relaxed,
                                                 memory_order_relaxed))
        return;
    tm_clock_set(c, s, s->due_ms);
    for (unsigned i = 0; i < c->n; i++) {
        tm_shard_t *o = (tm_shard_t *)((char *)c->first + i * c->stride);
        if (o == s) continue;
        if (!tm_trylock(&o->lock)) {
            tm_due_lower(&c->due_ms, now + *c->delay_ms / 2);
            continue;
        }
        if (o->due_ms && now >= o->due_ms)
            c->maintain(o, now, d);
        else
            tm_clock_set(c, o, o->due_ms);
        tm_unlock(&o->lock);
    }
}

void tm_defer_run(tm_clock_t *c, tm_defer_t *d) {
    for (unsigned i = 0; i < d->n; i++) {
        if (d->v[i].op != TM_DEFER_PURGE) {
            tm_chunk_release(d->v[i].p, d->v[i].size, d->v[i].op == TM_DEFER_RELEASE_DIRTY);
            continue;
        }
        bool zero = tm_os_purge(d->v[i].p, d->v[i].size);
        tm_shard_t *s = d->v[i].shard;
        tm_lock(&s->lock);
        c->purged(s, d->v[i].obj, d->v[i].p, d->v[i].size, zero);
        tm_unlock(&s->lock);
    }
    d->n = 0;
}

/* Every shard's maintenance due at now (now UINT64_MAX: all of it, as if every delay were
 * past), each shard locked in turn (the caller may wait), a batch of system calls at a time. A
 * shard with nothing due gets its time published again. */
static void run_shards(tm_clock_t *c, uint64_t now) {
    for (unsigned i = 0; i < c->n; i++) {
        tm_shard_t *s = (tm_shard_t *)((char *)c->first + i * c->stride);
        bool more;
        do {
            tm_defer_t d;
            d.n = 0;
            tm_lock(&s->lock);
            if (now == UINT64_MAX || (s->due_ms && now >= s->due_ms))
                c->maintain(s, now, &d);
            else
                tm_clock_set(c, s, s->due_ms);
            tm_unlock(&s->lock);
            more = tm_defer_full(&d);
            tm_defer_run(c, &d);
        } while (more);
    }
}

/* The purger's pass. Like tm_clock_others, it takes the due time with one CAS (every shard's
 * time is published again as it goes). Returns the clock's next due time (0: none). */
uint64_t tm_clock_run(tm_clock_t *c, uint64_t now) {
    uint64_t due = atomic_load_explicit(&c->due_ms, memory_order_relaxed);
    if (due && now >= due &&
        atomic_compare_exchange_strong_explicit(&c->due_ms, &due, 0, memory_order_relaxed,
                                                memory_order_relaxed))
        run_shards(c, now);
    return atomic_load_explicit(&c->due_ms, memory_order_relaxed);
}

/* malloc_trim: every shard's maintenance as if all its delays were past. */
void tm_clock_trim(tm_clock_t *c) { run_shards(c, UINT64_MAX); }

static tm_shard_t *shard_at(const tm_clock_t *c, unsigned i) {
    return (tm_shard_t *)((char *)c->first + i * c->stride);
}

/* The CPU's shard first, when it was left: threads that come and go on one CPU keep one. */
unsigned tm_shard_adopt(tm_clock_t *c, uintptr_t self) {
    unsigned home = tm_cpu_shard(c->n);
    for (unsigned k = 0; k < c->n; k++) {
        unsigned i = (home + k) % c->n;
        _Atomic uintptr_t *last = &shard_at(c, i)->last;
        uintptr_t left = TM_SHARD_LEFT;
        if (atomic_load_explicit(last, memory_order_relaxed) == left &&
            atomic_compare_exchange_strong_explicit(last, &left, self, memory_order_relaxed,
                                                    memory_order_relaxed))
            return i;
    }
    return home;
}

void tm_shard_leave(tm_clock_t *c, int last, uintptr_t self) {
    if (last < 0 || (unsigned)last >= c->n) return;
    uintptr_t mine = self;
    atomic_compare_exchange_strong_explicit(&shard_at(c, (unsigned)last)->last, &mine,
                                            TM_SHARD_LEFT, memory_order_relaxed,
                                            memory_order_relaxed);
}
