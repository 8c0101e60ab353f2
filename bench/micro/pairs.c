/* pairs: the allocator micro-benchmark (issue 2).
 *
 * Times malloc/free under whatever allocator the process resolves `malloc` to (run it with
 * LD_PRELOAD=libX.so to pick one; scripts/micro_bench.py does that for every allocator).
 *
 *   pairs [--iters N] [--target-ms MS] pair SIZE   tight loop of p = malloc(SIZE); p[0] = x;
 * free(p) pairs [--iters N] [--target-ms MS] lifo        batches of 1000 mixed sizes in 16..1024,
 *   pairs [--iters N] [--target-ms MS] fifo        all allocated, then freed newest-first (lifo)
 *                                                  or oldest-first (fifo)
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

enum mode { MODE_PAIR, MODE_LIFO, MODE_FIFO };

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

static __attribute__((noinline)) void run_pair(size_t size, uint64_t iters) {
    for (uint64_t i = 0; i < iters; i++) {
        char *p = malloc(size);
        if (__builtin_expect(p == NULL, 0)) die_oom(size);
        OPAQUE(p);
        p[0] = (char)i;
        OPAQUE(p);
        free(p);
    }
}

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
    if (m == MODE_PAIR)
        run_pair(size, iters);
    else
        run_batch(m == MODE_FIFO, iters);
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
    fprintf(stderr, "usage: pairs [--iters N] [--samples K] [--target-ms MS] pair SIZE\n"
                    "       pairs [--iters N] [--samples K] [--target-ms MS] lifo|fifo\n");
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
    if (strcmp(mname, "pair") == 0) {
        m = MODE_PAIR;
        if (i >= argc || parse_u64(argv[i++], &size) || size > ((uint64_t)1 << 40)) usage();
    } else if (strcmp(mname, "lifo") == 0) {
        m = MODE_LIFO;
    } else if (strcmp(mname, "fifo") == 0) {
        m = MODE_FIFO;
    } else {
        usage();
    }
    if (i != argc) usage();
    make_batch_sizes();

    uint64_t ops_per_iter = m == MODE_PAIR ? 1 : BATCH;
    if (iters == 0) {
        /* Calibrate; this is also the warm-up (caches, page faults, allocator init). */
        uint64_t n = m == MODE_PAIR ? 1024 : 4, t;
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

    printf("{\"mode\":\"%s\",", mname);
    if (m == MODE_PAIR)
        printf("\"size\":%llu,", (unsigned long long)size);
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
