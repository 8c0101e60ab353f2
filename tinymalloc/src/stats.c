/* Statistics: per-class counters (kept per thread, flushed to the globals on slow paths),
 * huge-block and OS-call counters, and their output as a table or JSON. Output goes through
 * write(2) from a stack buffer: printf may allocate, and this runs inside the allocator. */
#include "tm_internal.h"
#include "tinymalloc.h"

#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

tm_class_stats_t tm_class_stats[TM_MAX_CLASSES];

/* ---- output ------------------------------------------------------------------------- */
void tm_out_flush(tm_out_t *o) {
    size_t off = 0;
    while (off < o->len) {
        ssize_t w = write(o->fd, o->buf + off, o->len - off);
        if (w <= 0) break;
        off += (size_t)w;
    }
    o->len = 0;
}

void tm_out_str(tm_out_t *o, const char *s) {
    for (; *s; s++) {
        if (o->len == o->cap) tm_out_flush(o);
        o->buf[o->len++] = *s;
    }
}

void tm_out_u64(tm_out_t *o, uint64_t v, int width) {
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    char s[48];
    int k = 0;
    while (width-- > n && k < 24) s[k++] = ' ';
    while (n) s[k++] = tmp[--n];
    s[k] = 0;
    tm_out_str(o, s);
}

void tm_out_hex(tm_out_t *o, uintptr_t v) {
    char s[19] = "0x";
    int n = 2;
    for (int shift = 60; shift >= 0; shift -= 4) {
        unsigned d = (v >> shift) & 15;
        if (n > 2 || d || shift == 0) s[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
    }
    s[n] = 0;
    tm_out_str(o, s);
}

void tm_message(const char *a, const char *b, const char *c) {
    char buf[512];
    tm_out_t o = {buf, 0, sizeof buf, 2};
    tm_out_str(&o, "tinymalloc: ");
    tm_out_str(&o, a);
    tm_out_str(&o, b);
    tm_out_str(&o, c);
    tm_out_str(&o, "\n");
    tm_out_flush(&o);
}

void tm_fatal(const char *func, const char *what, const void *p) {
    char buf[256];
    tm_out_t o = {buf, 0, sizeof buf, 2};
    tm_out_str(&o, "tinymalloc: ");
    tm_out_str(&o, func);
    tm_out_str(&o, "(): ");
    tm_out_str(&o, what);
    tm_out_str(&o, " ");
    tm_out_hex(&o, (uintptr_t)p);
    tm_out_str(&o, "\n");
    tm_out_flush(&o);
    abort();
}

/* ---- counters ------------------------------------------------------------------------- */
static void update_peak(tm_class_stats_t *s) {
    uint64_t m = atomic_load_explicit(&s->nmalloc, memory_order_relaxed);
    uint64_t f = atomic_load_explicit(&s->nfree, memory_order_relaxed);
    tm_peak_raise(&s->peak_live, m > f ? m - f : 0);
}

static void flush_class(tm_tcache_t *tc, unsigned c, uint64_t dm, uint64_t df) {
    tc->flushed_malloc[c] = tc->nmalloc[c];
    tc->flushed_free[c] = tc->nfree[c];
    /* Frees first: a thread's frees of blocks others allocated must not lift the peak. */
    atomic_fetch_add_explicit(&tm_class_stats[c].nfree, df, memory_order_relaxed);
    atomic_fetch_add_explicit(&tm_class_stats[c].nmalloc, dm, memory_order_relaxed);
    update_peak(&tm_class_stats[c]);
}

/* Adds what tc counted since its last flush to the globals (at thread exit and for a
 * snapshot). */
void tm_stats_flush(tm_tcache_t *tc) {
    if (tc == &tm_tcache_empty) return;
    for (unsigned c = 0; c < tm_opt.nclasses; c++) {
        uint64_t dm = tc->nmalloc[c] - tc->flushed_malloc[c];
        uint64_t df = tc->nfree[c] - tc->flushed_free[c];
        if ((dm | df) != 0) flush_class(tc, c, dm, df);
    }
}

/* At a refill of class c, and at a free to another thread's page (a thread that only frees
 * what others allocate never refills): its counts, once they have moved by TM_STATS_BATCH
 * (and every class's at every 64th refill). Totals stay exact (a snapshot adds what live
 * threads have not flushed); peak live counts are exact to within that batch per thread.
 * Flushing every class at every refill showed in the profile of a many-class working set
 * (invsq-wset). */
void tm_stats_flush_class(tm_tcache_t *tc, unsigned c) {
    uint64_t dm = tc->nmalloc[c] - tc->flushed_malloc[c];
    uint64_t df = tc->nfree[c] - tc->flushed_free[c];
    if (dm + df >= TM_STATS_BATCH) flush_class(tc, c, dm, df);
}

typedef struct {
    uint64_t nmalloc, nfree, peak_live, pages;
} class_snap_t;

/* Globals plus what live threads have not flushed yet. */
static void snapshot(class_snap_t *out) {
    tm_stats_flush(tm_tc);
    for (unsigned c = 0; c < tm_opt.nclasses; c++) {
        out[c].nmalloc = atomic_load_explicit(&tm_class_stats[c].nmalloc, memory_order_relaxed);
        out[c].nfree = atomic_load_explicit(&tm_class_stats[c].nfree, memory_order_relaxed);
        out[c].peak_live = atomic_load_explicit(&tm_class_stats[c].peak_live, memory_order_relaxed);
        out[c].pages = atomic_load_explicit(&tm_class_stats[c].pages, memory_order_relaxed);
    }
    tm_lock(&tm_tcache_lock);
    for (tm_tcache_t *tc = tm_tcache_live_first(); tc; tc = tc->next_live) {
        for (unsigned c = 0; c < tm_opt.nclasses; c++) {
            out[c].nmalloc += *(volatile uint64_t *)&tc->nmalloc[c] - tc->flushed_malloc[c];
            out[c].nfree += *(volatile uint64_t *)&tc->nfree[c] - tc->flushed_free[c];
        }
    }
    tm_unlock(&tm_tcache_lock);
    for (unsigned c = 0; c < tm_opt.nclasses; c++) {
        uint64_t live = out[c].nmalloc > out[c].nfree ? out[c].nmalloc - out[c].nfree : 0;
        if (live > out[c].peak_live) out[c].peak_live = live;
    }
}

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

int tinymalloc_stats_get(struct tinymalloc_stats *s, size_t size) TM_EXPORT;
int tinymalloc_stats_get(struct tinymalloc_stats *s, size_t size) {
    /* Callers built against an older header pass the size that ended with its last field. */
    if (s == NULL ||
        (size != sizeof *s && size != offsetof(struct tinymalloc_stats, arena_allocs) &&
         size != offsetof(struct tinymalloc_stats, medium_cached) &&
         size != offsetof(struct tinymalloc_stats, slab_transferred) &&
         size != offsetof(struct tinymalloc_stats, dirty_chunk_bytes)))
        return -1;
    tm_init();
    struct tinymalloc_stats full;
    struct tinymalloc_stats *out = s;
    s = &full;
    class_snap_t cs[TM_MAX_CLASSES];
    snapshot(cs);
    memset(s, 0, sizeof *s);
    for (unsigned c = 0; c < tm_opt.nclasses; c++) {
        s->slab_allocs += cs[c].nmalloc;
        s->slab_frees += cs[c].nfree;
        if (cs[c].nmalloc > cs[c].nfree)
            s->live_bytes += (cs[c].nmalloc - cs[c].nfree) * tm_opt.class_size[c];
    }
    tm_arena_totals_t at;
    tm_heap_totals_t ht;
    tm_arena_totals(&at);
    tm_heap_totals(&ht);
    s->mapped_allocs = LOAD(tm_huge_stats.nalloc);
    s->mapped_frees = LOAD(tm_huge_stats.nfree);
    s->large_allocs = ht.nalloc;
    s->large_frees = ht.nfree;
    s->arena_allocs = at.nalloc;
    s->arena_frees = at.nfree;
    s->arenas = tm_arena_count();
    s->heap_allocs = s->mapped_allocs + s->large_allocs;
    s->heap_frees = s->mapped_frees + s->large_frees;
    s->live_bytes += LOAD(tm_huge_stats.cur_bytes) + ht.in_use + at.used_bytes;
    s->allocs = s->slab_allocs + s->heap_allocs + s->arena_allocs;
    s->frees = s->slab_frees + s->heap_frees + s->arena_frees;
    s->os_mmap = LOAD(tm_os_stats.mmap_calls);
    s->os_munmap = LOAD(tm_os_stats.munmap_calls);
    s->os_madvise = LOAD(tm_os_stats.madvise_calls);
    s->os_mremap = LOAD(tm_os_stats.mremap_calls);
    s->mapped_bytes = LOAD(tm_os_stats.mapped_bytes);
    s->mapped_peak = LOAD(tm_os_stats.mapped_peak);
    s->medium_cached = tm_mcache_total();
    s->slab_transferred = tm_slab_xfer_bytes();
    s->dirty_chunk_bytes = tm_chunk_dirty_bytes();
    memcpy(out, s, size);
    return 0;
}

int tinymalloc_heap_stats_get(struct tinymalloc_heap_stats *s, size_t size) TM_EXPORT;
int tinymalloc_heap_stats_get(struct tinymalloc_heap_stats *s, size_t size) {
    if (s == NULL || size != sizeof *s) return -1;
    tm_init();
    tm_heap_totals_t t;
    tm_heap_totals(&t);
    *s = (struct tinymalloc_heap_stats){.heaps = t.heaps,
                                        .max_size = t.max_size,
                                        .size = t.size,
                                        .peak_size = t.peak_size,
                                        .in_use = t.in_use,
                                        .peak_in_use = t.peak_in_use,
                                        .blocks = t.blocks,
                                        .free_blocks = t.free_blocks,
                                        .consecutive_misses = t.consecutive_misses,
                                        .misses = t.misses,
                                        .hits = t.hits,
                                        .grows = t.grows,
                                        .purged_bytes = t.purged_bytes,
                                        .unmapped_bytes = t.unmapped_bytes,
                                        .ahead = t.ahead,
                                        .allocs = t.nalloc,
                                        .frees = t.nfree,
                                        .huge_threshold = t.huge_threshold};
    return 0;
}

static void kv(tm_out_t *o, const char *key, uint64_t v, const char *sep) {
    tm_out_str(o, "\"");
    tm_out_str(o, key);
    tm_out_str(o, "\": ");
    tm_out_u64(o, v, 0);
    tm_out_str(o, sep);
}

/* One group of counters: `"name": {"key": value, ...}` and then `after` in JSON; in the table
 * a line ` name: key value, key value`. */
static void print_group(tm_out_t *o, bool json, const char *name, const char *const *keys,
                        const uint64_t *vals, size_t n, const char *after) {
    tm_out_str(o, json ? "\"" : " ");
    tm_out_str(o, name);
    tm_out_str(o, json ? "\": {" : ":");
    for (size_t i = 0; i < n; i++) {
        if (json) {
            kv(o, keys[i], vals[i], i + 1 < n ? ", " : "}");
            continue;
        }
        tm_out_str(o, i ? ", " : " ");
        tm_out_str(o, keys[i]);
        tm_out_str(o, " ");
        tm_out_u64(o, vals[i], 0);
    }
    tm_out_str(o, json ? after : "\n");
}

/* Own mappings (huge.c), the tiers above the slabs, and the OS layer: the same groups in both
 * formats. */
static void print_groups(tm_out_t *o, bool json) {
    static const char *const mn[] = {"allocs", "frees", "remaps", "current_bytes", "peak_bytes"};
    uint64_t mv[] = {LOAD(tm_huge_stats.nalloc), LOAD(tm_huge_stats.nfree),
                     LOAD(tm_huge_stats.nremap), LOAD(tm_huge_stats.cur_bytes),
                     LOAD(tm_huge_stats.peak_bytes)};
    print_group(o, json, "huge", mn, mv, sizeof mv / sizeof mv[0], ", ");
    tm_arena_totals_t a;
    tm_heap_totals_t h;
    tm_arena_totals(&a);
    tm_heap_totals(&h);
    static const char *const an[] = {"arenas",        "allocs",          "frees",
                                     "chunks",        "chunks_peak",     "used_bytes",
                                     "purged_chunks", "released_chunks", "dirty_chunks",
                                     "churn_chunks",  "purged_run_bytes"};
    uint64_t av[] = {tm_arena_count(), a.nalloc,       a.nfree,           a.chunks,
                     a.chunks_peak,    a.used_bytes,   a.purged_chunks,   a.released_chunks,
                     a.dirty_chunks,   a.churn_chunks, a.purged_run_bytes};
    static const char *const hn[] = {
        "heaps",       "max_size", "size",          "peak_size",          "in_use",
        "peak_in_use", "blocks",   "free_blocks",   "consecutive_misses", "misses",
        "hits",        "grows",    "purged_bytes",  "unmapped_bytes",     "ahead",
        "allocs",      "frees",    "huge_threshold"};
    uint64_t hv[] = {h.heaps,       h.max_size, h.size,          h.peak_size,          h.in_use,
                     h.peak_in_use, h.blocks,   h.free_blocks,   h.consecutive_misses, h.misses,
                     h.hits,        h.grows,    h.purged_bytes,  h.unmapped_bytes,     h.ahead,
                     h.nalloc,      h.nfree,    h.huge_threshold};
    print_group(o, json, "arena", an, av, sizeof av / sizeof av[0], ", ");
    print_group(o, json, "heap", hn, hv, sizeof hv / sizeof hv[0], ", ");
    static const char *const on[] = {"mmap",        "munmap",        "madvise",
                                     "mremap",      "mmap_failures", "mapped_bytes",
                                     "mapped_peak", "purged_bytes",  "dirty_chunk_bytes"};
    uint64_t ov[] = {LOAD(tm_os_stats.mmap_calls),    LOAD(tm_os_stats.munmap_calls),
                     LOAD(tm_os_stats.madvise_calls), LOAD(tm_os_stats.mremap_calls),
                     LOAD(tm_os_stats.mmap_failures), LOAD(tm_os_stats.mapped_bytes),
                     LOAD(tm_os_stats.mapped_peak),   LOAD(tm_os_stats.purged_bytes),
                     tm_chunk_dirty_bytes()};
    print_group(o, json, "os", on, ov, sizeof ov / sizeof ov[0], "}\n");
}

static void print_json(tm_out_t *o, const class_snap_t *cs) {
    tm_out_str(o, "{\"allocator\": \"tinymalloc\", ");
    kv(o, "pid", (uint64_t)getpid(), ", ");
    tm_out_str(o, "\"classes\": [");
    for (unsigned c = 0; c < tm_opt.nclasses; c++) {
        uint64_t sz = tm_opt.class_size[c];
        uint64_t live = cs[c].nmalloc > cs[c].nfree ? cs[c].nmalloc - cs[c].nfree : 0;
        tm_out_str(o, c ? ", {" : "{");
        kv(o, "size", sz, ", ");
        kv(o, "allocs", cs[c].nmalloc, ", ");
        kv(o, "frees", cs[c].nfree, ", ");
        kv(o, "live_blocks", live, ", ");
        kv(o, "live_bytes", live * sz, ", ");
        kv(o, "peak_bytes", cs[c].peak_live * sz, ", ");
        kv(o, "pages", cs[c].pages, ", ");
        kv(o, "prealloc", tm_opt.class_prealloc[c], "}");
    }
    tm_out_str(o, "], ");
    print_groups(o, true);
}

static void print_table(tm_out_t *o, const class_snap_t *cs) {
    tm_out_str(o, "tinymalloc statistics, pid ");
    tm_out_u64(o, (uint64_t)getpid(), 0);
    tm_out_str(o, "\n class size      allocs       frees  live bytes  peak bytes pages\n");
    uint64_t ta = 0, tf = 0;
    for (unsigned c = 0; c < tm_opt.nclasses; c++) {
        uint64_t sz = tm_opt.class_size[c];
        uint64_t live = cs[c].nmalloc > cs[c].nfree ? cs[c].nmalloc - cs[c].nfree : 0;
        ta += cs[c].nmalloc;
        tf += cs[c].nfree;
        if (cs[c].nmalloc == 0) continue; /* unused classes only hold their cluster */
        tm_out_u64(o, c, 6);
        tm_out_u64(o, sz, 5);
        tm_out_u64(o, cs[c].nmalloc, 12);
        tm_out_u64(o, cs[c].nfree, 12);
        tm_out_u64(o, live * sz, 12);
        tm_out_u64(o, cs[c].peak_live * sz, 12);
        tm_out_u64(o, cs[c].pages, 6);
        tm_out_str(o, "\n");
    }
    tm_out_str(o, " slab total ");
    tm_out_u64(o, ta, 12);
    tm_out_u64(o, tf, 12);
    tm_out_str(o, "\n");
    print_groups(o, false);
}

/* Per-arena allocation counts, for programs and tests that check which arenas served them.
 * Fills up to n counts; returns the number of arenas. */
unsigned tinymalloc_arena_allocs(uint64_t *counts, unsigned n) TM_EXPORT;
unsigned tinymalloc_arena_allocs(uint64_t *counts, unsigned n) {
    tm_init();
    unsigned narenas = tm_arena_count();
    for (unsigned i = 0; i < n && i < narenas; i++) counts[i] = tm_arena_allocs_of(i);
    return narenas;
}

size_t tinymalloc_heap_walk(void (*fn)(void *, size_t, int, void *), void *arg) TM_EXPORT;
size_t tinymalloc_heap_walk(void (*fn)(void *, size_t, int, void *), void *arg) {
    tm_init();
    return tm_heap_walk(fn, arg);
}

void tinymalloc_stats_print(int fd, int json) TM_EXPORT;
void tinymalloc_stats_print(int fd, int json) {
    tm_init();
    class_snap_t cs[TM_MAX_CLASSES];
    snapshot(cs);
    char buf[4096];
    tm_out_t o = {buf, 0, sizeof buf, fd};
    json ? print_json(&o, cs) : print_table(&o, cs);
    tm_out_flush(&o);
}

/* A file named by pattern with "%p" replaced by the pid, so each process of a build writes its
 * own. */
int tm_open_pid_path(const char *pattern) {
    char path[300];
    size_t n = 0;
    for (const char *s = pattern; *s && n < sizeof path - 24; s++) {
        if (s[0] == '%' && s[1] == 'p') {
            char num[24];
            tm_out_t o = {num, 0, sizeof num, -1};
            tm_out_u64(&o, (uint64_t)getpid(), 0);
            memcpy(path + n, num, o.len);
            n += o.len;
            s++;
        } else {
            path[n++] = *s;
        }
    }
    path[n] = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) tm_message("cannot open '", path, "' for writing");
    return fd;
}

/* Programs may close stderr before exit (coreutils does, in an atexit handler), so a copy of
 * it is taken at start-up when statistics are to go there. */
static int stderr_copy = -1;

void tm_stats_init(void) {
    if (tm_opt.stats && tm_opt.stats_file[0] == 0) stderr_copy = fcntl(2, F_DUPFD_CLOEXEC, 100);
}

void tm_stats_at_exit(void) {
    if (!tm_opt.stats) return;
    int fd = tm_opt.stats_file[0] ? tm_open_pid_path(tm_opt.stats_file)
             : stderr_copy >= 0   ? stderr_copy
                                  : 2;
    if (fd < 0) return;
    tinymalloc_stats_print(fd, tm_opt.stats == 2);
    if (fd != 2) close(fd);
}
