/* Common code of the synthetic workloads; see wl.h. */
#include "wl.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

struct wl_opts wl;

/* ---- options ------------------------------------------------------------------------- */

static void usage(FILE *f) {
    const struct wl_spec *s = wl.spec;
    fprintf(f,
            "usage: %s [--seed N] [--threads N] [--scale S|quick|tiny] [--migrate MS]%s%s "
            "[--help]\n"
            "  %s\n"
            "  --seed N       PRNG seed (default 42)\n"
            "  --threads N    threads (default %d)\n"
            "  --scale S      work multiplier: a number > 0 (default 1), `quick` (= %g) or "
            "`tiny` (= %g)\n"
            "  --migrate MS   every MS ms, move each worker thread to the next CPU it may run on,\n"
            "                 as the scheduler of a busy machine does (default 0: never)\n",
            s->name, s->latency ? " [--latency]" : "",
            s->set ? " [--set N] [--min-size N] [--max-size N]" : "", s->summary, s->threads,
            s->quick, s->tiny);
    if (s->latency)
        fprintf(f, "  --latency      also time sampled malloc and free calls (p50/p99/p999)\n");
    if (s->set)
        fprintf(f,
                "  --set N        blocks each thread keeps (default %d)\n"
                "  --min-size N   smallest block in bytes (default %zu)\n"
                "  --max-size N   largest block in bytes (default %zu)\n",
                s->set, s->min_size, s->max_size);
    fprintf(f, "Prints one line `TMBENCH {json}` on stdout; exits 1 if a block's pattern does not\n"
               "verify or an allocation fails, 2 on a bad option.\n");
}

static _Noreturn void bad_option(const char *fmt, const char *arg) {
    fprintf(stderr, "%s: ", wl.spec->name);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (try --help)\n");
    exit(2);
}

/* Accept `--opt value` and `--opt=value`; return the value or NULL if arg is not --opt. */
static const char *opt_value(const char *opt, int argc, char **argv, int *i) {
    size_t len = strlen(opt);
    const char *a = argv[*i];
    if (strncmp(a, opt, len) != 0) return NULL;
    if (a[len] == '=') return a + len + 1;
    if (a[len] != '\0') return NULL;
    if (*i + 1 >= argc) bad_option("option %s needs a value", opt);
    return argv[++*i];
}

static uint64_t parse_uint(const char *opt, const char *v, uint64_t max) {
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 0);
    if (errno || end == v || *end != '\0' || v[0] == '-' || x > max) {
        fprintf(stderr, "%s: bad value '%s' for %s (try --help)\n", wl.spec->name, v, opt);
        exit(2);
    }
    return x;
}

void wl_init(const struct wl_spec *spec, int argc, char **argv) {
    wl.spec = spec;
    wl.seed = 42;
    wl.threads = spec->threads;
    wl.scale = 1.0;
    wl.set = spec->set;
    wl.min_size = spec->min_size;
    wl.max_size = spec->max_size;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(argv[i], "--latency") == 0) {
            if (!spec->latency) bad_option("%s: this workload has no latency mode", argv[i]);
            wl.latency = 1;
        } else if ((v = opt_value("--seed", argc, argv, &i))) {
            wl.seed = parse_uint("--seed", v, UINT64_MAX);
        } else if ((v = opt_value("--threads", argc, argv, &i))) {
            wl.threads = (int)parse_uint("--threads", v, 256);
            if (wl.threads < 1) bad_option("--threads must be 1 to 256, not %s", v);
        } else if ((v = opt_value("--migrate", argc, argv, &i))) {
            wl.migrate_ms = (int)parse_uint("--migrate", v, 60000);
        } else if ((v = opt_value("--scale", argc, argv, &i))) {
            char *end;
            if (strcmp(v, "quick") == 0)
                wl.scale = spec->quick;
            else if (strcmp(v, "tiny") == 0)
                wl.scale = spec->tiny;
            else if ((wl.scale = strtod(v, &end)),
                     end == v || *end != '\0' || !(wl.scale > 0 && wl.scale < 1e6))
                bad_option("bad value '%s' for --scale (a number > 0, quick or tiny)", v);
        } else if (spec->set && (v = opt_value("--set", argc, argv, &i))) {
            wl.set = (int)parse_uint("--set", v, 1 << 20);
            if (wl.set < 1) bad_option("--set must be 1 or more, not %s", v);
        } else if (spec->set && (v = opt_value("--min-size", argc, argv, &i))) {
            wl.min_size = (size_t)parse_uint("--min-size", v, (uint64_t)1 << 40);
        } else if (spec->set && (v = opt_value("--max-size", argc, argv, &i))) {
            wl.max_size = (size_t)parse_uint("--max-size", v, (uint64_t)1 << 40);
        } else {
            bad_option("unknown option '%s'", argv[i]);
        }
    }
    if (spec->set && (wl.min_size < 1 || wl.min_size > wl.max_size)) {
        fprintf(stderr, "%s: --min-size %zu must be 1 or more and at most --max-size %zu\n",
                spec->name, wl.min_size, wl.max_size);
        exit(2);
    }
}

size_t wl_scaled(double n, size_t min) {
    double x = n * wl.scale;
    return x < (double)min ? min : (size_t)x;
}

void wl_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", wl.spec ? wl.spec->name : "workload");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

void wl_oom(const char *call, size_t n) { wl_die("%s(%zu) returned NULL", call, n); }

size_t wl_log_uniform(struct wl_rng *r, size_t lo, size_t hi) {
    double x = exp(log((double)lo) + wl_unit(r) * (log((double)hi + 1) - log((double)lo)));
    size_t n = (size_t)x;
    return n < lo ? lo : n > hi ? hi : n;
}

/* The inverse of the distribution function 1/lo - 1/x, scaled to [0, 1). */
size_t wl_invsq(struct wl_rng *r, size_t lo, size_t hi) {
    double a = 1.0 / (double)lo, b = 1.0 / (double)hi;
    size_t n = (size_t)(1.0 / (a - wl_unit(r) * (a - b)));
    return n < lo ? lo : n > hi ? hi : n;
}

double wl_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- patterns ------------------------------------------------------------------------ */

static inline uint64_t pat(uint64_t key, size_t off) { return key ^ (off * 0x9e3779b97f4a7c15ULL); }

static inline void put(unsigned char *b, size_t off, uint64_t v, size_t len) {
    memcpy(b + off, &v, len);
}

void wl_fill(void *p, size_t n, uint64_t key) {
    unsigned char *b = p;
    if (n <= 256) {
        size_t w = n & ~(size_t)7;
        for (size_t off = 0; off < w; off += 8) put(b, off, pat(key, off), 8);
        if (n & 7) put(b, w, pat(key, w), n & 7);
        return;
    }
    for (size_t off = 0; off < 64; off += 8) put(b, off, pat(key, off), 8);
    size_t stride = n <= 16384 ? 256 : 4096;
    for (size_t off = stride; off + 16 <= n; off += stride) put(b, off, pat(key, off), 8);
    put(b, n - 8, pat(key, n - 8), 8);
}

static _Noreturn void mismatch(const unsigned char *b, size_t n, size_t off, unsigned char want) {
    wl_die("pattern mismatch in block %p (size %zu) at offset %zu: found 0x%02x, expected 0x%02x",
           (const void *)b, n, off, b[off], want);
}

/* Compare `len` bytes at `off` with the bytes of v, those below `limit` only. */
static inline void expect(const unsigned char *b, size_t n, size_t off, uint64_t v, size_t len,
                          size_t limit) {
    if (off + len <= limit) {
        uint64_t got = 0;
        memcpy(&got, b + off, len);
        uint64_t mask = len == 8 ? ~0ULL : (1ULL << (8 * len)) - 1;
        if (((got ^ v) & mask) == 0) return;
    }
    const unsigned char *want = (const unsigned char *)&v;
    for (size_t i = 0; i < len && off + i < limit; i++)
        if (b[off + i] != want[i]) mismatch(b, n, off + i, want[i]);
}

void wl_check_prefix(const void *p, size_t n, size_t limit, uint64_t key) {
    const unsigned char *b = p;
    if (limit > n) limit = n;
    if (n <= 256) {
        size_t w = n & ~(size_t)7;
        for (size_t off = 0; off < w && off < limit; off += 8)
            expect(b, n, off, pat(key, off), 8, limit);
        if (n & 7) expect(b, n, w, pat(key, w), n & 7, limit);
        return;
    }
    for (size_t off = 0; off < 64; off += 8) expect(b, n, off, pat(key, off), 8, limit);
    size_t stride = n <= 16384 ? 256 : 4096;
    for (size_t off = stride; off + 16 <= n && off < limit; off += stride)
        expect(b, n, off, pat(key, off), 8, limit);
    expect(b, n, n - 8, pat(key, n - 8), 8, limit);
}

void *wl_realloc_filled(struct wl_ctx *c, void *p, size_t old, size_t n, uint64_t key) {
    void *q = realloc(p, n);
    if (!q) wl_oom("realloc", n);
    c->ops++;
    wl_check_prefix(q, old, n, key);
    wl_fill(q, n, key);
    return q;
}

/* ---- latency recording --------------------------------------------------------------- */

/* Each recorder keeps up to LAT_CAP samples per call kind in memory mapped outside the
 * allocator under test; calls are sampled at random with a mean period chosen from the
 * expected number of calls, so a whole run is covered, not only its start. */
#define LAT_CAP (1u << 18)
#define LAT_MAX_THREADS 256

struct lat_kind {
    uint32_t *ns;
    size_t n;
    uint64_t countdown;
};

struct wl_lat {
    struct lat_kind k[2]; /* 0: malloc, 1: free */
    uint64_t every;
    struct wl_rng rng;
};

static struct wl_lat *lat_all[LAT_MAX_THREADS];
static int lat_count;
static pthread_mutex_t lat_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t timer_stamps; /* median cost of an empty timed interval, subtracted */

static void *map(size_t n) {
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) wl_die("mmap(%zu) for the latency recorder failed", n);
    return p;
}

/* Timestamps: the TSC on x86-64 (a few ns to read, cycle resolution; calibrated against
 * CLOCK_MONOTONIC), clock_gettime elsewhere. */
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
static inline uint64_t stamp(void) { return __rdtsc(); }
#else
static inline uint64_t stamp(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
#endif
static double ns_per_stamp = 1.0;

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static void calibrate_timer(void) {
    double t0 = wl_now();
    uint64_t s0 = stamp();
    while (wl_now() - t0 < 0.02)
        ;
    double t1 = wl_now();
    uint64_t s1 = stamp();
    ns_per_stamp = (t1 - t0) * 1e9 / (double)(s1 - s0);

    enum { N = 2001 };
    static uint32_t d[N];
    for (int i = 0; i < N; i++) {
        uint64_t a = stamp();
        uint64_t b = stamp();
        d[i] = (uint32_t)(b - a);
    }
    qsort(d, N, sizeof d[0], cmp_u32);
    timer_stamps = d[N / 2];
}

void wl_ctx_init(struct wl_ctx *c, int id, uint64_t expected_allocs) {
    c->id = id;
    c->ops = 0;
    c->lat = NULL;
    wl_rng_seed(&c->rng, (uint64_t)id);
    if (!wl.latency) return;
    struct wl_lat *l = map(sizeof *l);
    for (int k = 0; k < 2; k++) {
        l->k[k].ns = map(LAT_CAP * sizeof(uint32_t));
        l->k[k].countdown = 1;
    }
    l->every = expected_allocs / (LAT_CAP / 2) + 1;
    wl_rng_seed(&l->rng, 0x1a7e0000u + (uint64_t)id);
    pthread_mutex_lock(&lat_lock);
    if (lat_count == 0) calibrate_timer();
    if (lat_count < LAT_MAX_THREADS) {
        lat_all[lat_count++] = l;
        c->lat = l;
    }
    pthread_mutex_unlock(&lat_lock);
}

static inline int lat_due(struct wl_lat *l, struct lat_kind *k) {
    if (--k->countdown != 0) return 0;
    k->countdown = l->every == 1 ? 1 : 1 + wl_below(&l->rng, 2 * l->every - 1);
    return k->n < LAT_CAP;
}

/* Samples are kept in timestamp units and converted to ns when reported. */
static inline void lat_put(struct lat_kind *k, uint64_t a, uint64_t b) {
    uint64_t d = b - a;
    d = d > timer_stamps ? d - timer_stamps : 0;
    k->ns[k->n++] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

void *wl_malloc_timed(struct wl_ctx *c, size_t n) {
    struct lat_kind *k = &c->lat->k[0];
    if (!lat_due(c->lat, k)) return malloc(n);
    uint64_t a = stamp();
    void *p = malloc(n);
    uint64_t b = stamp();
    lat_put(k, a, b);
    return p;
}

void wl_free_timed(struct wl_ctx *c, void *p) {
    struct lat_kind *k = &c->lat->k[1];
    if (!lat_due(c->lat, k)) {
        free(p);
        return;
    }
    uint64_t a = stamp();
    free(p);
    uint64_t b = stamp();
    lat_put(k, a, b);
}

/* ---- threads ------------------------------------------------------------------------- */

/* --migrate: a mover thread sets each worker's affinity to the next usable CPU every
 * migrate_ms ms, until every worker has returned (joined only after the mover is). */
struct wl_moved {
    void *(*fn)(void *);
    void *arg;
};
static _Atomic int running;
static pthread_t moved_tid[LAT_MAX_THREADS];
static int moved_n;

static void *moved_run(void *arg) {
    struct wl_moved *m = arg;
    void *r = m->fn(m->arg);
    atomic_fetch_sub(&running, 1);
    return r;
}

static void *mover(void *arg) {
    cpu_set_t *allowed = arg;
    int cpus[CPU_SETSIZE], ncpu = 0;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, allowed)) cpus[ncpu++] = c;
    struct timespec ts = {wl.migrate_ms / 1000, (long)(wl.migrate_ms % 1000) * 1000000L};
    for (unsigned step = 1; ncpu > 1 && atomic_load(&running) > 0; step++) {
        nanosleep(&ts, NULL);
        for (int i = 0; i < moved_n; i++) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(cpus[((unsigned)i + step) % (unsigned)ncpu], &one);
            pthread_setaffinity_np(moved_tid[i], sizeof one, &one); /* ESRCH once it ended */
        }
    }
    return NULL;
}

void wl_run_threads(int n, void *(*fn)(void *), void *args, size_t arg_size) {
    pthread_t *tid = moved_tid, mover_tid;
    struct wl_moved m[LAT_MAX_THREADS];
    cpu_set_t allowed;
    if (n > LAT_MAX_THREADS) wl_die("too many threads (%d)", n);
    int move = wl.migrate_ms > 0 && sched_getaffinity(0, sizeof allowed, &allowed) == 0;
    atomic_store(&running, n);
    moved_n = n;
    for (int i = 0; i < n; i++) {
        m[i].fn = fn;
        m[i].arg = (char *)args + (size_t)i * arg_size;
        int e = pthread_create(&tid[i], NULL, moved_run, &m[i]);
        if (e) wl_die("pthread_create: %s", strerror(e));
    }
    if (move) {
        int e = pthread_create(&mover_tid, NULL, mover, &allowed);
        if (e) wl_die("pthread_create: %s", strerror(e));
        pthread_join(mover_tid, NULL);
    }
    for (int i = 0; i < n; i++) pthread_join(tid[i], NULL);
}

double wl_run_workers(void *(*fn)(void *), uint64_t allocs_total, void *shared, uint64_t *ops) {
    int n = wl.threads;
    struct wl_worker w[LAT_MAX_THREADS];
    for (int i = 0; i < n; i++) {
        w[i].allocs = allocs_total / (uint64_t)n + (i < (int)(allocs_total % (uint64_t)n));
        w[i].shared = shared;
        wl_ctx_init(&w[i].c, i, w[i].allocs);
    }
    double t0 = wl_now();
    wl_run_threads(n, fn, w, sizeof w[0]);
    double secs = wl_now() - t0;
    for (int i = 0; i < n; i++) *ops += w[i].c.ops;
    return secs;
}

struct wset {
    size_t n;
    size_t (*size)(struct wl_ctx *c);
};

static void *wset_run(void *arg) {
    struct wl_worker *w = arg;
    const struct wset *ws = w->shared;
    size_t n = ws->n;
    struct wl_ctx *c = &w->c;
    struct wl_block *set = calloc(n, sizeof *set);
    if (!set) wl_oom("calloc", n * sizeof *set);
    for (size_t i = 0; i < n; i++) wl_block_take(c, &set[i], ws->size(c));
    while (c->ops < w->allocs) {
        struct wl_block *b = &set[wl_below(&c->rng, n)];
        wl_block_drop(c, b);
        wl_block_take(c, b, ws->size(c));
    }
    for (size_t i = 0; i < n; i++) wl_block_drop(c, &set[i]);
    free(set);
    return NULL;
}

double wl_run_wset(size_t n, size_t (*size)(struct wl_ctx *c), uint64_t allocs_total,
                   uint64_t *ops) {
    struct wset ws = {n, size};
    return wl_run_workers(wset_run, allocs_total, &ws, ops);
}

double wl_run_pairs(void *(*fn)(void *), uint64_t allocs, void *shared, uint64_t *ops) {
    int n = wl.threads;
    struct wl_worker *w = calloc(2 * (size_t)n, sizeof *w);
    if (!w) wl_oom("calloc", 2 * (size_t)n * sizeof *w);
    for (int i = 0; i < 2 * n; i++) {
        w[i].allocs = i < n ? allocs : 0;
        w[i].shared = shared;
        wl_ctx_init(&w[i].c, i, allocs);
    }
    double t0 = wl_now();
    wl_run_threads(2 * n, fn, w, sizeof w[0]);
    double secs = wl_now() - t0;
    for (int i = 0; i < n; i++) *ops += w[i].c.ops;
    free(w);
    return secs;
}

/* ---- shared block table -------------------------------------------------------------- */

#define XT_LOCKS 64
struct wl_xtable {
    size_t n;
    struct {
        pthread_mutex_t m;
        char pad[64 - sizeof(pthread_mutex_t) % 64];
    } lock[XT_LOCKS];
    struct wl_block b[];
};

struct wl_xtable *wl_xtable_new(size_t slots) {
    struct wl_xtable *t = map(sizeof *t + slots * sizeof t->b[0]);
    t->n = slots;
    for (int i = 0; i < XT_LOCKS; i++) pthread_mutex_init(&t->lock[i].m, NULL);
    return t;
}

size_t wl_xtable_size(const struct wl_xtable *t) { return t->n; }

struct wl_block wl_xtable_swap(struct wl_xtable *t, size_t slot, struct wl_block b) {
    pthread_mutex_t *m = &t->lock[slot % XT_LOCKS].m;
    pthread_mutex_lock(m);
    struct wl_block old = t->b[slot];
    t->b[slot] = b;
    pthread_mutex_unlock(m);
    return old;
}

void wl_hammer(void *p, size_t n, unsigned writes) {
    volatile uint64_t *w = p;
    size_t words = n / 8 ? n / 8 : 1;
    if (n < 8) wl_die("wl_hammer needs at least 8 bytes, not %zu", n);
    for (size_t i = 0; i < words; i++) w[i] = 0;
    for (unsigned k = 0; k < writes; k++) w[k % words]++;
    for (size_t i = 0; i < words; i++) {
        uint64_t want = writes / words + (i < writes % words);
        if (w[i] != want)
            wl_die("object %p (size %zu): word at offset %zu is %llu after %u writes, expected "
                   "%llu",
                   p, n, i * 8, (unsigned long long)w[i], writes, (unsigned long long)want);
    }
}

/* ---- RSS ----------------------------------------------------------------------------- */

/* Read a small /proc file with read(2): no stdio buffer, so no allocation while sampling. */
static ssize_t read_proc(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n >= 0) buf[n] = '\0';
    return n;
}

long wl_rss_kb(void) {
    char buf[128];
    long size, resident;
    if (read_proc("/proc/self/statm", buf, sizeof buf) <= 0 ||
        sscanf(buf, "%ld %ld", &size, &resident) != 2)
        return -1;
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

long wl_peak_rss_kb(void) {
    char buf[4096];
    if (read_proc("/proc/self/status", buf, sizeof buf) <= 0) return -1;
    const char *s = strstr(buf, "VmHWM:");
    return s ? strtol(s + 6, NULL, 10) : -1;
}

/* The sampler keeps at most SAMPLES_MAX points: when full it drops every other one and
 * doubles its period, so any run length ends with 100 to 200 evenly spaced samples. */
#define SAMPLES_MAX 200
static struct {
    pthread_t tid;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int stop, running;
    double t0, period;
    int n;
    double t[SAMPLES_MAX];
    long kb[SAMPLES_MAX];
} smp = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void sample_now(void) {
    if (smp.n == SAMPLES_MAX) {
        for (int i = 0; i < SAMPLES_MAX / 2; i++) {
            smp.t[i] = smp.t[2 * i];
            smp.kb[i] = smp.kb[2 * i];
        }
        smp.n = SAMPLES_MAX / 2;
        smp.period *= 2;
    }
    smp.t[smp.n] = wl_now() - smp.t0;
    smp.kb[smp.n] = wl_rss_kb();
    smp.n++;
}

static void *sampler(void *arg) {
    (void)arg;
    pthread_mutex_lock(&smp.lock);
    double next = smp.t0;
    while (!smp.stop) {
        sample_now();
        next += smp.period;
        double wake = next;
        struct timespec ts = {(time_t)wake, (long)((wake - (double)(time_t)wake) * 1e9)};
        while (!smp.stop && wl_now() < wake) pthread_cond_timedwait(&smp.cond, &smp.lock, &ts);
    }
    sample_now();
    pthread_mutex_unlock(&smp.lock);
    return NULL;
}

void wl_sampler_start(void) {
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&smp.cond, &ca);
    smp.t0 = wl_now();
    smp.period = 0.01;
    smp.running = 1;
    int e = pthread_create(&smp.tid, NULL, sampler, NULL);
    if (e) wl_die("pthread_create: %s", strerror(e));
}

void wl_sampler_stop(void) {
    pthread_mutex_lock(&smp.lock);
    smp.stop = 1;
    pthread_cond_signal(&smp.cond);
    pthread_mutex_unlock(&smp.lock);
    pthread_join(smp.tid, NULL);
}

/* ---- the result line ----------------------------------------------------------------- */

static long rss_peak = -1, rss_final = -1;
#define EXTRA_MAX 16
static const char *extra_key[EXTRA_MAX];
static double extra_val[EXTRA_MAX];
static int extra_n;

void wl_set_rss(long peak_kb, long final_kb) {
    rss_peak = peak_kb;
    rss_final = final_kb;
}

void wl_extra(const char *key, double value) {
    if (extra_n < EXTRA_MAX) {
        extra_key[extra_n] = key;
        extra_val[extra_n++] = value;
    }
}

static char out[32768];
static size_t out_len;

static void emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void emit(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + out_len, sizeof out - out_len, fmt, ap);
    va_end(ap);
    if (n > 0) out_len += (size_t)n < sizeof out - out_len ? (size_t)n : sizeof out - out_len - 1;
}

static void emit_num(double v) {
    if (!isfinite(v))
        emit("null");
    else if (v == (double)(int64_t)v && v < 1e15 && v > -1e15)
        emit("%lld", (long long)v);
    else
        emit("%.6g", v);
}

static void emit_str(const char *s) {
    emit("\"");
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            emit("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            emit("\\u%04x", *s);
        else
            emit("%c", *s);
    }
    emit("\"");
}

static const char *malloc_from(void) {
    Dl_info info;
    void *sym = dlsym(RTLD_DEFAULT, "malloc");
    if (sym && dladdr(sym, &info) && info.dli_fname) return info.dli_fname;
    return "unknown";
}

/* Merge one call kind over every recorder and emit its percentiles (nearest rank). */
static size_t emit_percentiles(int kind) {
    size_t total = 0;
    for (int i = 0; i < lat_count; i++) total += lat_all[i]->k[kind].n;
    if (total == 0) {
        emit("{}");
        return 0;
    }
    uint32_t *all = map(total * sizeof *all);
    size_t at = 0;
    for (int i = 0; i < lat_count; i++) {
        memcpy(all + at, lat_all[i]->k[kind].ns, lat_all[i]->k[kind].n * sizeof *all);
        at += lat_all[i]->k[kind].n;
    }
    qsort(all, total, sizeof *all, cmp_u32);
    static const double q[] = {0.50, 0.99, 0.999};
    static const char *name[] = {"p50", "p99", "p999"};
    emit("{");
    for (int j = 0; j < 3; j++) {
        size_t idx = (size_t)ceil(q[j] * (double)total);
        idx = idx ? idx - 1 : 0;
        emit("%s\"%s\": %.0f", j ? ", " : "", name[j], all[idx] * ns_per_stamp);
    }
    emit("}");
    munmap(all, total * sizeof *all);
    return total;
}

void wl_report(uint64_t ops, double seconds) {
    emit("TMBENCH {\"workload\": ");
    emit_str(wl.spec->name);
    emit(", \"ops\": %llu, \"seconds\": %.6f, \"ops_per_sec\": %.1f", (unsigned long long)ops,
         seconds, seconds > 0 ? (double)ops / seconds : 0.0);
    emit(", \"threads\": %d, \"seed\": %llu, \"scale\": ", wl.threads, (unsigned long long)wl.seed);
    emit_num(wl.scale);
    emit(", \"malloc_from\": ");
    emit_str(malloc_from());
    if (rss_peak >= 0) emit(", \"peak_rss_kb\": %ld", rss_peak);
    if (rss_final >= 0) emit(", \"final_rss_kb\": %ld", rss_final);
    if (smp.running) {
        emit(", \"rss_kb_samples\": [");
        for (int i = 0; i < smp.n; i++) emit("%s[%.3f, %ld]", i ? ", " : "", smp.t[i], smp.kb[i]);
        emit("]");
    }
    if (wl.latency) {
        emit(", \"latency_ns\": {\"malloc\": ");
        size_t nm = emit_percentiles(0);
        emit(", \"free\": ");
        size_t nf = emit_percentiles(1);
        emit("}, \"latency_samples\": {\"malloc\": %zu, \"free\": %zu}", nm, nf);
        emit(", \"latency_timer_ns\": %.1f", timer_stamps * ns_per_stamp);
    }
    for (int i = 0; i < extra_n; i++) {
        emit(", ");
        emit_str(extra_key[i]);
        emit(": ");
        emit_num(extra_val[i]);
    }
    emit("}\n");
    fputs(out, stdout);
    fflush(stdout);
}
