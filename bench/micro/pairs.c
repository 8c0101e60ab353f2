/* pairs: the allocator micro-benchmark (issue 2).
 *
 * Times malloc/free under whatever allocator the process resolves `malloc` to (run it with
 * LD_PRELOAD=libX.so to pick one; scripts/micro_bench.py does that for every allocator).
 *
 *   pairs [--iters N] [--target-ms MS] pair SIZE   tight loop of p = malloc(SIZE); p[0] = x;
 * free(p) pairs [--iters N] [--target-ms MS] lifo        batches of 1000 mixed sizes in 16..1024,
 *   pairs [--iters N] [--target-ms MS] fifo        all allocated, then freed newest-first (lifo)
 *                                                  or oldest-first (fifo)
 *   pairs ... floor SIZE      the `pair` loop against a thread-local free list of SIZE blocks
 *                             behind an indirect call: what a pair costs with no allocator work
 *                             beyond a pop and a push (the floor the others are set against)
 *   pairs ... floor-lib SIZE  the same free list in a shared library (floor_lib.c), called
 *                             through the PLT as a preloaded malloc is: the least a pair can
 *                             cost any allocator that a program reaches that way
 *   pairs ... prodcons        one thread mallocs 64 B blocks and hands them, 64 at a time,
 *                             through a ring to a second thread, which frees them: ns per block
 *                             (each thread on a CPU of its own when two are allowed: "cpus")
 *   pairs ... large           a working set of 16 blocks of power-of-two sizes 64 KiB..8 MiB,
 *                             one replaced at random per iteration (free, malloc, first page
 *                             written): ns per replacement
 *
 * Prints one JSON line on stdout:
 *   {"mode":"pair","size":16,"iters":N,"ops":N,"samples":K,"total_ns":T,"ns":..,"ns_median":..,
 *    "sample_ns":[..],"malloc_lib":"/path/of/the/object/defining/malloc","free_lib":"..."}
 * The measurement is split into K samples (--samples, default 20) of `iters` iterations each;
 * `sample_ns` holds each sample's ns per malloc+free pair, `ns` is the fastest sample (noise on a
 * shared machine only ever adds time: preemption, interrupts) and `ns_median` their median.
 * `iters` counts loop iterations per sample (pairs for `pair`, batches for lifo/fifo); `ops` the
 * malloc+free pairs per sample; `total_ns` the time of all samples.  malloc_lib/free_lib come
 * from dladdr() of dlsym(RTLD_DEFAULT, "malloc"/"free"), so the caller can check that the
 * preload took effect.
 *
 * Without --iters the count is calibrated: the loop is run (this doubles as the warm-up) with a
 * doubling count until one run takes >= 5 ms, then scaled so all K samples together take about
 * --target-ms (default 75 ms).  Exit status: 0 ok, 1 allocation failure, 2 usage.
 *
 * Build with -fno-builtin-malloc -fno-builtin-free: gcc otherwise deletes a malloc/free pair
 * whose memory is not observably used.  The asm barriers below also make the pointer and the
 * stored byte opaque to the optimiser.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH 1000
#define BATCH_MIN 16
#define BATCH_MAX 1024
#define BATCH_SEED 0x9e3779b97f4a7c15ULL
#define MAX_SAMPLES 100

#define FLOOR_BLOCKS 64
#define RING 8      /* batches in the producer/consumer ring */
#define PC_BATCH 64 /* blocks handed over at once */
#define PC_SIZE 64
#define LARGE_SLOTS 16
#define LARGE_MIN_SHIFT 16 /* 64 KiB */
#define LARGE_MAX_SHIFT 23 /* 8 MiB */

enum mode {
    MODE_PAIR,
    MODE_LIFO,
    MODE_FIFO,
    MODE_FLOOR,
    MODE_FLOOR_LIB,
    MODE_PRODCONS,
    MODE_LARGE
};

static size_t batch_sizes[BATCH];
static void *batch_ptrs[BATCH];

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void die_oom(size_t size) {
    fprintf(stderr, "pairs: malloc(%zu) returned NULL\n", size);
    exit(1);
}

/* The pointer goes through a register the compiler must assume is read and changed, and the
 * memory clobber keeps the store and the call ordered: nothing here can be elided. */
#define OPAQUE(p) __asm__ __volatile__("" : "+r"(p) : : "memory")

/* The pair loop, one function per way of reaching an allocator (its calls written out, so each
 * is made the way the mode measures: through the PLT, or through a function pointer). The
 * loops and the floor's functions start a cache line each: unaligned, the floor took from 2.8
 * to 4.9 ns as the code before it grew or shrank. */
#define PAIR_LOOP(name, alloc, release)                                                            \
    static __attribute__((noinline, aligned(64))) void name(size_t size, uint64_t iters) {         \
        for (uint64_t i = 0; i < iters; i++) {                                                     \
            char *p = alloc(size);                                                                 \
            if (__builtin_expect(p == NULL, 0)) die_oom(size);                                     \
            OPAQUE(p);                                                                             \
            p[0] = (char)i;                                                                        \
            OPAQUE(p);                                                                             \
            release(p);                                                                            \
        }                                                                                          \
    }

PAIR_LOOP(run_pair, malloc, free)

static __attribute__((noinline)) void run_batch(int fifo, uint64_t iters) {
    for (uint64_t it = 0; it < iters; it++) {
        for (int i = 0; i < BATCH; i++) {
            char *p = malloc(batch_sizes[i]);
            if (__builtin_expect(p == NULL, 0)) die_oom(batch_sizes[i]);
            OPAQUE(p);
            p[0] = (char)i;
            batch_ptrs[i] = p;
        }
        __asm__ __volatile__("" : : "r"(batch_ptrs) : "memory");
        if (fifo) {
            for (int i = 0; i < BATCH; i++) free(batch_ptrs[i]);
        } else {
            for (int i = BATCH - 1; i >= 0; i--) free(batch_ptrs[i]);
        }
    }
}

/* The floor: a free list of fixed blocks, thread-local, reached through function pointers the
 * compiler cannot see through (volatile), as a preloaded malloc is reached through the PLT. */
struct floor_block {
    struct floor_block *next;
};
static _Thread_local struct floor_block *floor_free_list;
static char floor_pool[FLOOR_BLOCKS][8192] __attribute__((aligned(64)));

static __attribute__((aligned(64))) void *floor_alloc(size_t size) {
    (void)size;
    struct floor_block *b = floor_free_list;
    if (__builtin_expect(b == NULL, 0)) return NULL;
    floor_free_list = b->next;
    return b;
}

static __attribute__((aligned(64))) void floor_release(void *p) {
    struct floor_block *b = p;
    b->next = floor_free_list;
    floor_free_list = b;
}

static void *(*volatile floor_alloc_fn)(size_t) = floor_alloc;
static void (*volatile floor_free_fn)(void *) = floor_release;

static void floor_init(void) {
    for (int i = FLOOR_BLOCKS - 1; i >= 0; i--) floor_release(floor_pool[i]);
}

/* floor_lib.c, linked as a shared library (libmicrofloor.so, found next to this program). */
size_t floor_lib_block_size(void);
void floor_lib_init(void);
void *floor_lib_alloc(size_t size);
void floor_lib_free(void *p);

PAIR_LOOP(run_floor_lib, floor_lib_alloc, floor_lib_free)
PAIR_LOOP(run_floor, floor_alloc_fn, floor_free_fn)

/* Producer/consumer: the main thread mallocs, a consumer thread frees. Blocks are handed over
 * in batches of PC_BATCH, so that the ring's own cache-line traffic is paid once per batch and
 * what is timed is the allocator's: a malloc, and a free by another thread of a block whose
 * line that thread must fetch (the remote-free path). The ring's two indices live on lines of
 * their own. A waiting side spins, then yields. */
static struct {
    _Alignas(64) void *slot[RING][PC_BATCH];
    _Alignas(64) _Atomic uint64_t head; /* batches published, written by the producer */
    _Alignas(64) _Atomic uint64_t tail; /* batches freed, written by the consumer */
    _Alignas(64) _Atomic int quit;
} pc;
static pthread_t pc_thread;
static int pc_started;

static void spin_wait(unsigned *spins) {
    if (++*spins < 256)
        __builtin_ia32_pause();
    else
        sched_yield();
}

static void *pc_consumer(void *arg) {
    (void)arg;
    uint64_t t = 0;
    for (;;) {
        unsigned spins = 0;
        while (atomic_load_explicit(&pc.head, memory_order_acquire) == t) {
            if (atomic_load_explicit(&pc.quit, memory_order_relaxed)) return NULL;
            spin_wait(&spins);
        }
        void **batch = pc.slot[t % RING];
        for (int i = 0; i < PC_BATCH; i++) free(batch[i]);
        atomic_store_explicit(&pc.tail, ++t, memory_order_release);
    }
}

/* The producer and the consumer each get a CPU of their own when the process may use two: left
 * to the scheduler, they sometimes share one, and a run then times the scheduler (29 to 580 ns
 * per block across runs of one allocator). */
static int pc_cpus[2] = {-1, -1};

static void pin_to(pthread_t t, int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(t, sizeof set, &set);
}

static void prodcons_start(void) {
    if (pc_started) return;
    cpu_set_t avail;
    int n = 0;
    if (sched_getaffinity(0, sizeof avail, &avail) == 0)
        for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
            if (CPU_ISSET(c, &avail)) pc_cpus[n++] = c;
    if (n < 2) pc_cpus[0] = pc_cpus[1] = -1;
    if (pthread_create(&pc_thread, NULL, pc_consumer, NULL) != 0) {
        fprintf(stderr, "pairs: pthread_create failed\n");
        exit(1);
    }
    if (pc_cpus[1] >= 0) {
        pin_to(pthread_self(), pc_cpus[0]);
        pin_to(pc_thread, pc_cpus[1]);
    }
    pc_started = 1;
}

static __attribute__((noinline)) void run_prodcons(uint64_t iters) {
    uint64_t h = atomic_load_explicit(&pc.head, memory_order_relaxed);
    uint64_t end = h + iters;
    for (; h < end; h++) {
        unsigned spins = 0;
        while (h - atomic_load_explicit(&pc.tail, memory_order_acquire) >= RING) spin_wait(&spins);
        void **batch = pc.slot[h % RING];
        for (int i = 0; i < PC_BATCH; i++) {
            char *p = malloc(PC_SIZE);
            if (__builtin_expect(p == NULL, 0)) die_oom(PC_SIZE);
            p[0] = (char)i;
            batch[i] = p;
        }
        atomic_store_explicit(&pc.head, h + 1, memory_order_release);
    }
    /* the sample ends when the last block is freed */
    unsigned spins = 0;
    while (atomic_load_explicit(&pc.tail, memory_order_acquire) != end) spin_wait(&spins);
}

static void prodcons_stop(void) {
    if (!pc_started) return;
    atomic_store(&pc.quit, 1);
    pthread_join(pc_thread, NULL);
}

/* Large blocks: the working set is filled once (calibration doubles as the warm-up) and then
 * replaced one block at a time; only each new block's first page is written, as a program that
 * reserves big buffers and uses their heads would. */
static void *large_set[LARGE_SLOTS];
static uint64_t large_rng = BATCH_SEED;

static uint64_t xorshift(uint64_t *x) {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static size_t large_size(void) {
    return (size_t)1 << (LARGE_MIN_SHIFT +
                         xorshift(&large_rng) % (LARGE_MAX_SHIFT - LARGE_MIN_SHIFT + 1));
}

static __attribute__((noinline)) void run_large(uint64_t iters) {
    for (uint64_t i = 0; i < iters; i++) {
        unsigned j = (unsigned)(xorshift(&large_rng) % LARGE_SLOTS);
        free(large_set[j]);
        size_t size = large_size();
        char *p = malloc(size);
        if (__builtin_expect(p == NULL, 0)) die_oom(size);
        p[0] = (char)i;
        OPAQUE(p);
        large_set[j] = p;
    }
}

/* Fixed sequence of sizes in [16, 1024], spread evenly over the doublings (log-uniform):
 * pick a power of two 16..512, then a size in [2^k, 2^(k+1)].  xorshift64, fixed seed. */
static void make_batch_sizes(void) {
    uint64_t x = BATCH_SEED;
    for (int i = 0; i < BATCH; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        unsigned k = 4 + (unsigned)(x % 6); /* 16 .. 512 */
        size_t lo = (size_t)1 << k;
        size_t s = lo + (size_t)((x >> 8) % (lo + 1)); /* lo .. 2*lo */
        if (s > BATCH_MAX) s = BATCH_MAX;
        batch_sizes[i] = s;
    }
}

static void run(enum mode m, size_t size, uint64_t iters) {
    switch (m) {
    case MODE_PAIR: run_pair(size, iters); break;
    case MODE_FLOOR: run_floor(size, iters); break;
    case MODE_FLOOR_LIB: run_floor_lib(size, iters); break;
    case MODE_PRODCONS: run_prodcons(iters); break;
    case MODE_LARGE: run_large(iters); break;
    default: run_batch(m == MODE_FIFO, iters);
    }
}

static uint64_t timed(enum mode m, size_t size, uint64_t iters) {
    uint64_t t0 = now_ns();
    run(m, size, iters);
    return now_ns() - t0;
}

static const char *lib_of(const char *sym) {
    void *addr = dlsym(RTLD_DEFAULT, sym);
    Dl_info info;
    if (addr == NULL || dladdr(addr, &info) == 0 || info.dli_fname == NULL) return "?";
    return info.dli_fname;
}

static void json_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static __attribute__((noreturn)) void usage(void) {
    fprintf(stderr,
            "usage: pairs [--iters N] [--samples K] [--target-ms MS] pair|floor|floor-lib SIZE\n"
            "       pairs [--iters N] [--samples K] [--target-ms MS] "
            "lifo|fifo|prodcons|large\n");
    exit(2);
}

static int parse_u64(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v == 0) return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv) {
    uint64_t iters = 0, target_ms = 75, size = 0, samples = 20;
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc) {
            if (parse_u64(argv[++i], &iters)) usage();
        } else if (strcmp(argv[i], "--samples") == 0 && i + 1 < argc) {
            if (parse_u64(argv[++i], &samples) || samples > MAX_SAMPLES) usage();
        } else if (strcmp(argv[i], "--target-ms") == 0 && i + 1 < argc) {
            if (parse_u64(argv[++i], &target_ms)) usage();
        } else {
            usage();
        }
    }
    if (i >= argc) usage();
    enum mode m = MODE_PAIR;
    const char *mname = argv[i++];
    if (strcmp(mname, "pair") == 0 || strcmp(mname, "floor") == 0 ||
        strcmp(mname, "floor-lib") == 0) {
        m = mname[0] == 'p' ? MODE_PAIR : strcmp(mname, "floor") == 0 ? MODE_FLOOR : MODE_FLOOR_LIB;
        if (i >= argc || parse_u64(argv[i++], &size) || size > ((uint64_t)1 << 40)) usage();
        if (m == MODE_FLOOR && (size < sizeof(struct floor_block) || size > sizeof floor_pool[0]))
            usage();
        if (m == MODE_FLOOR_LIB && (size < sizeof(void *) || size > floor_lib_block_size()))
            usage();
    } else if (strcmp(mname, "prodcons") == 0) {
        m = MODE_PRODCONS;
    } else if (strcmp(mname, "large") == 0) {
        m = MODE_LARGE;
    } else if (strcmp(mname, "lifo") == 0) {
        m = MODE_LIFO;
    } else if (strcmp(mname, "fifo") == 0) {
        m = MODE_FIFO;
    } else {
        usage();
    }
    if (i != argc) usage();
    make_batch_sizes();
    if (m == MODE_FLOOR) floor_init();
    if (m == MODE_FLOOR_LIB) floor_lib_init();
    if (m == MODE_PRODCONS) prodcons_start();
    if (m == MODE_LARGE)
        for (int k = 0; k < LARGE_SLOTS; k++) {
            size_t sz = large_size();
            if ((large_set[k] = malloc(sz)) == NULL) die_oom(sz);
            *(char *)large_set[k] = 1;
        }

    int batched = m == MODE_LIFO || m == MODE_FIFO;
    uint64_t ops_per_iter = batched ? BATCH : m == MODE_PRODCONS ? PC_BATCH : 1;
    if (iters == 0) {
        /* Calibrate; this is also the warm-up (caches, page faults, allocator init). */
        uint64_t n = batched ? 4 : m == MODE_LARGE ? 16 : m == MODE_PRODCONS ? 16 : 1024, t;
        for (;;) {
            t = timed(m, (size_t)size, n);
            if (t >= 5000000ULL || n >= ((uint64_t)1 << 40)) break;
            n *= 2;
        }
        double scale = (double)target_ms * 1e6 / (double)samples / (double)(t ? t : 1);
        iters = (uint64_t)((double)n * scale);
        if (iters == 0) iters = 1;
    } else {
        run(m, (size_t)size, iters < 1000 ? iters : 1000); /* short warm-up */
    }

    uint64_t ops = iters * ops_per_iter, total = 0;
    double sample_ns[MAX_SAMPLES], sorted[MAX_SAMPLES];
    for (uint64_t k = 0; k < samples; k++) {
        uint64_t t = timed(m, (size_t)size, iters);
        total += t;
        sample_ns[k] = sorted[k] = (double)t / (double)ops;
    }
    for (uint64_t a = 1; a < samples; a++) /* insertion sort, K <= 100 */
        for (uint64_t b = a; b > 0 && sorted[b - 1] > sorted[b]; b--) {
            double tmp = sorted[b];
            sorted[b] = sorted[b - 1];
            sorted[b - 1] = tmp;
        }
    double median =
        samples % 2 ? sorted[samples / 2] : (sorted[samples / 2 - 1] + sorted[samples / 2]) / 2.0;

    prodcons_stop();
    printf("{\"mode\":\"%s\",", mname);
    if (m == MODE_PAIR || m == MODE_FLOOR || m == MODE_FLOOR_LIB)
        printf("\"size\":%llu,", (unsigned long long)size);
    else if (m == MODE_PRODCONS)
        printf("\"size\":%d,\"batch\":%d,\"cpus\":[%d,%d],", PC_SIZE, PC_BATCH, pc_cpus[0],
               pc_cpus[1]);
    else if (m == MODE_LARGE)
        printf("\"size\":null,\"slots\":%d,\"size_min\":%d,\"size_max\":%d,", LARGE_SLOTS,
               1 << LARGE_MIN_SHIFT, 1 << LARGE_MAX_SHIFT);
    else
        printf("\"size\":null,\"batch\":%d,\"size_min\":%d,\"size_max\":%d,", BATCH, BATCH_MIN,
               BATCH_MAX);
    printf("\"iters\":%llu,\"ops\":%llu,\"samples\":%llu,\"total_ns\":%llu,\"ns\":%.3f,"
           "\"ns_median\":%.3f,\"sample_ns\":[",
           (unsigned long long)iters, (unsigned long long)ops, (unsigned long long)samples,
           (unsigned long long)total, sorted[0], median);
    for (uint64_t k = 0; k < samples; k++) printf("%s%.3f", k ? "," : "", sample_ns[k]);
    printf("],\"malloc_lib\":");
    json_str(lib_of("malloc"));
    printf(",\"free_lib\":");
    json_str(lib_of("free"));
    printf("}\n");
    return fflush(stdout) == 0 ? 0 : 1;
}
