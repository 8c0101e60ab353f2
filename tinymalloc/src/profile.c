/* Allocation profile (TINYMALLOC_CONF=profile:PATH): per requested size, how many requests,
 * the peak of live blocks, and a coarse lifetime, written as JSON at exit for slab tuning.
 *
 * Profiling costs nothing when off: at start-up it sends every allocation to the slow path
 * (api.c) and sets TM_KIND_PROFILED on every chunk it marks, so the free fast path's single
 * `kind == TM_KIND_SLAB` compare falls through to the slow path, which calls here.
 * While on, each block is TM_PROF_TRAILER bytes larger than asked, and its last 16 bytes hold
 * the requested size and the allocation tick; malloc_usable_size leaves them out, so a program
 * writing its whole usable size cannot touch them. No table, no lock: a few atomic counters
 * per request.
 */
#include "tm_internal.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define TM_PROF_EXACT 65536 /* sizes up to this are counted exactly; above, by power of two */
#define TM_PROF_ROWS (TM_PROF_EXACT + 1 + 64)
#define TM_PROF_SHORT 64 /* a block freed within this many allocations is short-lived */

bool tm_profiling;

typedef struct {
    _Atomic uint64_t count, live, peak_live, lifetime_sum, short_lived;
} tm_prof_row_t;

/* At the end of every block while profiling. check ties size and tick to the secret, so a
 * trailer a program overwrote is ignored rather than counted. */
typedef struct {
    uint64_t size, tick, check;
} tm_prof_trailer_t;
_Static_assert(sizeof(tm_prof_trailer_t) <= TM_PROF_TRAILER, "trailer fits its reserve");

static tm_prof_row_t *rows;
static _Atomic uint64_t ticks;
static uint64_t ticks_at_fork; /* the clock runs on in a child: inherited blocks age right */

static uint32_t row_of(size_t n) {
    if (n <= TM_PROF_EXACT) return (uint32_t)n;
    return TM_PROF_EXACT + 1 + (uint32_t)(64 - __builtin_clzl(n - 1));
}

static size_t row_size(uint32_t r) {
    return r <= TM_PROF_EXACT ? r : (size_t)1 << (r - TM_PROF_EXACT - 1);
}

void tm_profile_init(void) {
    rows = tm_os_map(sizeof(tm_prof_row_t) * TM_PROF_ROWS);
    if (rows == NULL) {
        tm_message("profile: ", "cannot map its tables", "; profiling is off");
        return;
    }
    tm_profiling = true;
}

static tm_prof_trailer_t *trailer_of(void *p, size_t usable) {
    return (tm_prof_trailer_t *)((char *)p + usable - TM_PROF_TRAILER);
}

static uint64_t trailer_check(const tm_prof_trailer_t *t, uint64_t size, uint64_t tick) {
    return tm_seal(t, size, tick);
}

void tm_profile_alloc(void *p, size_t n, size_t usable) {
    if (p == NULL || rows == NULL) return;
    uint64_t now = atomic_fetch_add_explicit(&ticks, 1, memory_order_relaxed);
    tm_prof_trailer_t *t = trailer_of(p, usable);
    t->size = n;
    t->tick = now;
    t->check = trailer_check(t, n, now);
    tm_prof_row_t *row = &rows[row_of(n)];
    atomic_fetch_add_explicit(&row->count, 1, memory_order_relaxed);
    tm_gauge_add(&row->live, &row->peak_live, 1);
}

size_t tm_profile_free(void *p, size_t usable) {
    if (p == NULL || rows == NULL || usable < TM_PROF_TRAILER) return SIZE_MAX;
    tm_prof_trailer_t *t = trailer_of(p, usable);
    if (t->check != trailer_check(t, t->size, t->tick) || t->size > usable - TM_PROF_TRAILER)
        return SIZE_MAX; /* overwritten by the program, or counted already */
    uint64_t life = atomic_load_explicit(&ticks, memory_order_relaxed) - t->tick;
    tm_prof_row_t *row = &rows[row_of(t->size)];
    t->check = 0; /* a second free of the block is not counted twice */
    atomic_fetch_sub_explicit(&row->live, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&row->lifetime_sum, life, memory_order_relaxed);
    if (life < TM_PROF_SHORT) atomic_fetch_add_explicit(&row->short_lived, 1, memory_order_relaxed);
    return t->size;
}

/* After fork the child starts its own profile: what the parent counted is the parent's. The
 * blocks it inherited stay live, so its peaks start from them. */
void tm_profile_fork_child(void) {
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
    int fd = tm_open_pid_path(tm_opt.profile);
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
