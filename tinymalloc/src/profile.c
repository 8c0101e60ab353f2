/* Allocation profile (TINYMALLOC_CONF=profile:PATH): per requested size, how many requests,
 * the peak of live blocks, and a coarse lifetime, written as JSON at exit for slab tuning.
 *
 * Profiling costs nothing when off: at start-up it sends every allocation to the slow path
 * (api.c) and sets TM_KIND_PROFILED on every chunk it marks, so the free fast path's single
 * `kind == TM_KIND_SLAB` compare falls through to the slow path, which calls here. Live
 * blocks are tracked in a side table keyed by address (block layout is unchanged), split in
 * stripes with a lock each so threads rarely contend.
 */
#include "tm_internal.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define TM_PROF_EXACT 65536 /* sizes up to this are counted exactly; above, by power of two */
#define TM_PROF_ROWS (TM_PROF_EXACT + 1 + 64)
#define TM_PROF_STRIPES 64
#define TM_PROF_SHORT 64 /* a block freed within this many allocations is short-lived */

bool tm_profiling;

typedef struct {
    _Atomic uint64_t count, live, peak_live, lifetime_sum, short_lived;
} tm_prof_row_t;

typedef struct {
    uintptr_t ptr; /* 0: empty, 1: deleted */
    uint32_t row;
    uint64_t tick;
} tm_prof_entry_t;

typedef struct {
    tm_lock_t lock;
    tm_prof_entry_t *slots;
    size_t cap, used, deleted; /* open addressing, linear probing; cap a power of two */
} tm_prof_stripe_t;

static tm_prof_row_t *rows;
static tm_prof_stripe_t stripes[TM_PROF_STRIPES];
static _Atomic uint64_t ticks;
static uint64_t ticks_at_fork; /* the clock runs on in a child: inherited blocks age right */

static uint32_t row_of(size_t n) {
    if (n <= TM_PROF_EXACT) return (uint32_t)n;
    return TM_PROF_EXACT + 1 + (uint32_t)(64 - __builtin_clzl(n - 1));
}

static size_t row_size(uint32_t r) {
    return r <= TM_PROF_EXACT ? r : (size_t)1 << (r - TM_PROF_EXACT - 1);
}

static inline size_t hash(uintptr_t p) { return (size_t)((p >> 4) * 0x9e3779b97f4a7c15ULL); }

void tm_profile_init(void) {
    rows = tm_os_map(sizeof(tm_prof_row_t) * TM_PROF_ROWS);
    if (rows == NULL) {
        tm_message("profile: ", "cannot map its tables", "; profiling is off");
        return;
    }
    tm_profiling = true;
}

/* Doubles a stripe's table (called with its lock held). */
static bool grow(tm_prof_stripe_t *s) {
    size_t cap = s->cap ? s->cap * 2 : 4096;
    if (s->used - s->deleted < s->cap / 4) cap = s->cap; /* mostly tombstones: rehash only */
    tm_prof_entry_t *slots = tm_os_map(cap * sizeof *slots);
    if (slots == NULL) return false;
    for (size_t i = 0; i < s->cap; i++) {
        tm_prof_entry_t *e = &s->slots[i];
        if (e->ptr <= 1) continue;
        size_t j = hash(e->ptr) & (cap - 1);
        while (slots[j].ptr) j = (j + 1) & (cap - 1);
        slots[j] = *e;
    }
    if (s->slots) tm_os_unmap(s->slots, s->cap * sizeof *slots);
    s->used -= s->deleted;
    s->deleted = 0;
    s->slots = slots;
    s->cap = cap;
    return true;
}

void tm_profile_alloc(void *p, size_t n) {
    if (p == NULL || rows == NULL) return;
    uint32_t r = row_of(n);
    uint64_t now = atomic_fetch_add_explicit(&ticks, 1, memory_order_relaxed);
    tm_prof_row_t *row = &rows[r];
    atomic_fetch_add_explicit(&row->count, 1, memory_order_relaxed);
    uint64_t live = atomic_fetch_add_explicit(&row->live, 1, memory_order_relaxed) + 1;
    uint64_t peak = atomic_load_explicit(&row->peak_live, memory_order_relaxed);
    while (live > peak && !atomic_compare_exchange_weak_explicit(&row->peak_live, &peak, live,
                                                                 memory_order_relaxed,
                                                                 memory_order_relaxed)) {
    }
    uintptr_t a = (uintptr_t)p;
    tm_prof_stripe_t *s = &stripes[(a >> 4) % TM_PROF_STRIPES];
    tm_lock(&s->lock);
    if ((s->used + 1) * 4 > s->cap * 3 && !grow(s)) {
        tm_unlock(&s->lock); /* out of memory for the table: this block goes unrecorded */
        atomic_fetch_sub_explicit(&row->live, 1, memory_order_relaxed);
        return;
    }
    size_t j = hash(a) & (s->cap - 1);
    while (s->slots[j].ptr > 1) j = (j + 1) & (s->cap - 1);
    if (s->slots[j].ptr == 0) s->used++;
    else s->deleted--;
    s->slots[j] = (tm_prof_entry_t){a, r, now};
    tm_unlock(&s->lock);
}

void tm_profile_free(void *p) {
    if (p == NULL || rows == NULL) return;
    uintptr_t a = (uintptr_t)p;
    tm_prof_stripe_t *s = &stripes[(a >> 4) % TM_PROF_STRIPES];
    tm_lock(&s->lock);
    if (s->cap == 0) {
        tm_unlock(&s->lock);
        return;
    }
    size_t j = hash(a) & (s->cap - 1);
    while (s->slots[j].ptr && s->slots[j].ptr != a) j = (j + 1) & (s->cap - 1);
    if (s->slots[j].ptr != a) { /* allocated before profiling began */
        tm_unlock(&s->lock);
        return;
    }
    tm_prof_entry_t e = s->slots[j];
    s->slots[j].ptr = 1;
    s->deleted++;
    tm_unlock(&s->lock);
    uint64_t life = atomic_load_explicit(&ticks, memory_order_relaxed) - e.tick;
    tm_prof_row_t *row = &rows[e.row];
    atomic_fetch_sub_explicit(&row->live, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&row->lifetime_sum, life, memory_order_relaxed);
    if (life < TM_PROF_SHORT) atomic_fetch_add_explicit(&row->short_lived, 1, memory_order_relaxed);
}

/* After fork the child starts its own profile: what the parent counted is the parent's. The
 * blocks it inherited stay live (and in the table), so its peaks start from them. */
void tm_profile_fork_prepare(void) {
    for (int i = 0; i < TM_PROF_STRIPES; i++) tm_lock(&stripes[i].lock);
}
void tm_profile_fork_parent(void) {
    for (int i = 0; i < TM_PROF_STRIPES; i++) tm_unlock(&stripes[i].lock);
}
void tm_profile_fork_child(void) {
    for (int i = 0; i < TM_PROF_STRIPES; i++) tm_lock_reset(&stripes[i].lock);
    if (rows == NULL) return;
    for (uint32_t r = 0; r < TM_PROF_ROWS; r++) {
        tm_prof_row_t *row = &rows[r];
        atomic_store(&row->count, 0);
        atomic_store(&row->lifetime_sum, 0);
        atomic_store(&row->short_lived, 0);
        atomic_store(&row->peak_live, atomic_load(&row->live));
    }
    ticks_at_fork = atomic_load(&ticks);
}

static void u64_field(tm_out_t *o, uint64_t v, const char *after) {
    tm_out_u64(o, v, 0);
    tm_out_str(o, after);
}

/* The exe path, for reading the profile of a build made of many processes. */
static void out_exe(tm_out_t *o) {
    char path[512];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    path[n > 0 ? n : 0] = 0;
    tm_out_str(o, "\"");
    for (char *c = path; *c; c++) {
        char one[3] = {*c, 0, 0};
        if (*c == '"' || *c == '\\') one[0] = '\\', one[1] = *c;
        if ((unsigned char)*c < 0x20) one[0] = '?';
        tm_out_str(o, one);
    }
    tm_out_str(o, "\"");
}

void tm_profile_write(void) {
    if (rows == NULL) return;
    int fd = tm_open_pid_path(tm_opt.profile_file);
    if (fd < 0) return;
    char buf[4096];
    tm_out_t o = {buf, 0, sizeof buf, fd};
    tm_out_str(&o, "{\"format\": \"tinymalloc-profile-1\", \"pid\": ");
    u64_field(&o, (uint64_t)getpid(), ", \"ppid\": ");
    u64_field(&o, (uint64_t)getppid(), ", \"exe\": ");
    out_exe(&o);
    tm_out_str(&o, ", \"ticks\": ");
    u64_field(&o, atomic_load(&ticks) - ticks_at_fork, ", \"sizes\": [");
    bool first = true;
    for (uint32_t r = 0; r < TM_PROF_ROWS; r++) {
        tm_prof_row_t *row = &rows[r];
        uint64_t count = atomic_load(&row->count), live = atomic_load(&row->live);
        if (count == 0 && atomic_load(&row->peak_live) == 0) continue; /* nothing ever */
        tm_out_str(&o, first ? "[" : ", [");
        first = false;
        u64_field(&o, row_size(r), ", ");
        u64_field(&o, count, ", ");
        u64_field(&o, atomic_load(&row->peak_live), ", ");
        u64_field(&o, live, ", ");
        u64_field(&o, atomic_load(&row->lifetime_sum), ", ");
        u64_field(&o, atomic_load(&row->short_lived), r > TM_PROF_EXACT ? ", 1]" : "]");
    }
    tm_out_str(&o, "]}\n");
    tm_out_flush(&o);
    close(fd);
}
