/* Common code of the synthetic workloads: options, seeded PRNG, pattern fill/verify, timing,
 * latency recording, RSS sampling and the one `TMBENCH {json}` result line.
 *
 * Every workload fills each block it gets with a pattern derived from a key (usually the
 * block's address, size and the seed) and verifies it before it frees the block: a broken
 * allocator fails loudly (exit 1) instead of looking fast. `ops` in the result line counts
 * the allocations a workload makes (each one is freed again, or survives to the end); what
 * else counts is said in the workload's own comment. */
#ifndef WL_H
#define WL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* What a workload declares about itself. */
struct wl_spec {
    const char *name;    /* as in the manifest, e.g. "churn-small" */
    const char *summary; /* one line for --help */
    int threads;         /* default --threads */
    double quick, tiny;  /* the multipliers `--scale quick` and `--scale tiny` stand for */
    int latency;         /* 1 if the workload supports --latency */
    /* A workload that replaces blocks in a set of `set` (> 0) whose sizes run from min_size to
     * max_size lets --set, --min-size and --max-size change them (0: it has no such set). */
    int set;
    size_t min_size, max_size;
};

/* The parsed command line; set by wl_init, read-only afterwards. */
struct wl_opts {
    const struct wl_spec *spec;
    uint64_t seed;
    int threads;
    double scale;
    int latency;
    int set;
    size_t min_size, max_size;
    int migrate_ms; /* --migrate: every this many ms each worker moves to the next CPU (0: never) */
};
extern struct wl_opts wl;

/* Parse argv (exit 0 after --help, exit 2 on a bad option). */
void wl_init(const struct wl_spec *spec, int argc, char **argv);

/* n times the scale, at least `min`. */
size_t wl_scaled(double n, size_t min);

/* Print "<workload>: <message>" on stderr and exit 1. */
_Noreturn void wl_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- PRNG: splitmix64, one state per thread ------------------------------------------ */

static inline uint64_t wl_mix(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

struct wl_rng {
    uint64_t s;
};

static inline void wl_rng_seed(struct wl_rng *r, uint64_t stream) {
    r->s = wl_mix(wl.seed ^ wl_mix(stream + 0x632be59bd9b4e019ULL));
}

static inline uint64_t wl_next(struct wl_rng *r) {
    r->s += 0x9e3779b97f4a7c15ULL;
    return wl_mix(r->s);
}

/* Uniform in [0, n). */
static inline uint64_t wl_below(struct wl_rng *r, uint64_t n) {
    return (uint64_t)(((unsigned __int128)wl_next(r) * n) >> 64);
}

/* Uniform in [lo, hi]. */
static inline size_t wl_range(struct wl_rng *r, size_t lo, size_t hi) {
    return lo + (size_t)wl_below(r, (uint64_t)(hi - lo) + 1);
}

/* Uniform in [0, 1). */
static inline double wl_unit(struct wl_rng *r) { return (double)(wl_next(r) >> 11) * 0x1.0p-53; }

/* Log-uniform in [lo, hi]: as many blocks per doubling, as allocation sizes tend to be. */
size_t wl_log_uniform(struct wl_rng *r, size_t lo, size_t hi);

/* Density falling as 1/size^2 in [lo, hi]: most blocks small, a long tail of big ones, as
 * object sizes in many programs are (and as glibc's malloc benchtests draw them). */
size_t wl_invsq(struct wl_rng *r, size_t lo, size_t hi);

/* ---- per-thread context: PRNG, allocation counter, optional latency recorder ---------- */

struct wl_lat;
struct wl_ctx {
    struct wl_rng rng;
    struct wl_lat *lat; /* NULL unless --latency */
    uint64_t ops;
    int id;
};

/* `expected_allocs` sizes the latency sampling so the recording stays a small cost. */
void wl_ctx_init(struct wl_ctx *c, int id, uint64_t expected_allocs);

_Noreturn void wl_oom(const char *call, size_t n);
void *wl_malloc_timed(struct wl_ctx *c, size_t n);
void wl_free_timed(struct wl_ctx *c, void *p);

/* malloc that counts, optionally times, and treats NULL as a failure. */
static inline void *wl_malloc(struct wl_ctx *c, size_t n) {
    void *p = c->lat ? wl_malloc_timed(c, n) : malloc(n);
    if (p == NULL) wl_oom("malloc", n);
    c->ops++;
    return p;
}

static inline void wl_free(struct wl_ctx *c, void *p) {
    if (c->lat)
        wl_free_timed(c, p);
    else
        free(p);
}

/* ---- block patterns -------------------------------------------------------------------- */

/* The key of a block: distinct per address, size and seed. */
static inline uint64_t wl_key(const void *p, size_t n) {
    return wl_mix((uint64_t)(uintptr_t)p ^ (n * 0xd6e8feb86659fd93ULL) ^ wl.seed);
}

/* Write the pattern: every word of blocks up to 256 B; for larger ones the first 64 B, one
 * word per 256 B (per 4 KiB above 16 KiB, which still touches every page) and the last
 * bytes. */
void wl_fill(void *p, size_t n, uint64_t key);

/* Verify the pattern wl_fill(p, n, key) wrote, but only the bytes below `limit` (realloc
 * keeps a prefix). A mismatch names the workload, the block and the offset, and exits 1. */
void wl_check_prefix(const void *p, size_t n, size_t limit, uint64_t key);

static inline void wl_check(const void *p, size_t n, uint64_t key) {
    wl_check_prefix(p, n, n, key);
}

/* realloc of a block that wl_fill(p, old, key) wrote, to n bytes: counts the call in c->ops,
 * verifies the kept prefix at the new address and writes the pattern for n. NULL is a
 * failure (exit 1). */
void *wl_realloc_filled(struct wl_ctx *c, void *p, size_t old, size_t n, uint64_t key);

/* Shorthands for a block keyed by its own address and size. */
static inline void wl_fill_block(void *p, size_t n) { wl_fill(p, n, wl_key(p, n)); }
static inline void wl_check_block(const void *p, size_t n) { wl_check(p, n, wl_key(p, n)); }

/* ---- time, threads, memory ------------------------------------------------------------ */

double wl_now(void); /* CLOCK_MONOTONIC seconds */

/* Run fn(arg + i * arg_size) on n threads and join them all. */
void wl_run_threads(int n, void *(*fn)(void *), void *args, size_t arg_size);

/* The usual shape: wl.threads workers, each with its own context (ids 0..n-1) and a share
 * `allocs` of the work; fn gets a struct wl_worker *. Returns the wall time of the run and
 * adds the workers' allocations to *ops. */
struct wl_worker {
    struct wl_ctx c;
    uint64_t allocs;
    void *shared;
};
double wl_run_workers(void *(*fn)(void *), uint64_t allocs_total, void *shared, uint64_t *ops);

/* A table of blocks shared by all threads (striped locks): put a block in a slot and take
 * out the one that was there, so frees land on whatever thread allocated it. */
struct wl_block {
    void *p;
    size_t n;
};

/* A working-set slot: b gets n fresh bytes, filled; or its contents are checked and freed. */
static inline void wl_block_take(struct wl_ctx *c, struct wl_block *b, size_t n) {
    b->n = n;
    b->p = wl_malloc(c, n);
    wl_fill_block(b->p, n);
}
static inline void wl_block_drop(struct wl_ctx *c, struct wl_block *b) {
    wl_check_block(b->p, b->n);
    wl_free(c, b->p);
}
/* The working-set shape of several workloads: wl.threads workers share allocs_total; each
 * fills n slots with blocks of size(c) bytes, replaces random ones until it has made its
 * allocations, then frees them all. Returns the wall time and adds the allocations to *ops. */
double wl_run_wset(size_t n, size_t (*size)(struct wl_ctx *c), uint64_t allocs_total,
                   uint64_t *ops);

/* The producer/consumer shape: 2 x wl.threads workers, 0..N-1 given `allocs` allocations each,
 * N..2N-1 none (they only free). Returns the wall time and adds the first N's allocations to
 * *ops. */
double wl_run_pairs(void *(*fn)(void *), uint64_t allocs, void *shared, uint64_t *ops);

struct wl_xtable;
struct wl_xtable *wl_xtable_new(size_t slots);
struct wl_block wl_xtable_swap(struct wl_xtable *t, size_t slot, struct wl_block b);
size_t wl_xtable_size(const struct wl_xtable *t);

/* Zero the words of a small object, increment them `writes` times in turn, verify the
 * counts: the write traffic of the false-sharing workloads. */
void wl_hammer(void *p, size_t n, unsigned writes);

long wl_rss_kb(void);      /* resident set now, from /proc/self/statm */
long wl_peak_rss_kb(void); /* VmHWM from /proc/self/status */

/* A thread that samples RSS every few milliseconds into at most ~200 points. */
void wl_sampler_start(void);
void wl_sampler_stop(void);

/* ---- the result line ------------------------------------------------------------------ */

/* Optional keys, set before wl_report. A negative RSS is left out. */
void wl_set_rss(long peak_kb, long final_kb);
void wl_extra(const char *key, double value);

/* Print `TMBENCH {json}` on stdout: workload, ops, seconds, ops_per_sec, threads, seed,
 * scale, malloc_from, and whatever was set above (latency percentiles, RSS samples). */
void wl_report(uint64_t ops, double seconds);

#endif
