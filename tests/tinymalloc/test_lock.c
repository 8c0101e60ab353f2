/* Locks (lock.c), and the system calls kept out of them: eight threads per CPU replace medium
 * and large blocks, with the defaults and with every free purging at once (no medium cache).
 * A lock that spins while its holder is preempted, or one held across madvise, stalls such a
 * run for seconds; the run must finish within a bound far above its normal time, and every
 * block must keep its contents. First, the locks of a process that has one thread, taken with
 * plain stores, handed over to the threads it starts. */
#include "tm_test.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/single_threaded.h>
#include <time.h>

static void *(*volatile vmalloc)(size_t) = malloc;
static void (*volatile vfree)(void *) = free;

#define PURGE_NOW "arena_purge_delay:0,heap_purge_delay:0,medium_cache:0"
#define SET 8
#define OPS 250 /* replacements per thread */
#ifdef __SANITIZE_THREAD__
#define BOUND_S 300.0 /* ThreadSanitizer runs this some ten times slower */
#else
#define BOUND_S 30.0 /* far above the 6 s a 2-CPU VM takes to purge at once: page faults */
#endif

struct worker {
    uint64_t rng;
    int bad;
};

static uint64_t next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* 9 KiB to 3 MiB, about log-uniform: the arena tier, the heap, and (past the adaptive
 * threshold's start at 32 MiB, never) no huge mappings. */
static size_t pick(uint64_t *s) {
    static const size_t sizes[] = {9 << 10,   20 << 10, 60 << 10, 150 << 10,
                                   400 << 10, 1 << 20,  2 << 20,  3 << 20};
    return sizes[next(s) % 8] - (size_t)(next(s) % 4096);
}

/* One byte per page, and the last one: every page is touched (and faulted back in after a
 * purge), and a block that overlaps another or lost its pages shows. */
static void fill(unsigned char *p, size_t n, unsigned char tag) {
    for (size_t i = 0; i < n - 1; i += 4096) p[i] = (unsigned char)(tag + i / 4096);
    p[n - 1] = tag;
}
static bool intact(const unsigned char *p, size_t n, unsigned char tag) {
    for (size_t i = 0; i < n - 1; i += 4096)
        if (p[i] != (unsigned char)(tag + i / 4096)) return false;
    return p[n - 1] == tag;
}

static void *work(void *arg) {
    struct worker *w = arg;
    unsigned char *blk[SET];
    size_t len[SET];
    unsigned char tag[SET];
    for (int i = 0; i < SET; i++) {
        len[i] = pick(&w->rng);
        tag[i] = (unsigned char)next(&w->rng);
        blk[i] = vmalloc(len[i]);
        if (blk[i] == NULL) return w->bad++, NULL;
        fill(blk[i], len[i], tag[i]);
    }
    for (int op = 0; op < OPS; op++) {
        int k = (int)(next(&w->rng) % SET);
        w->bad += !intact(blk[k], len[k], tag[k]);
        vfree(blk[k]);
        len[k] = pick(&w->rng);
        tag[k] = (unsigned char)next(&w->rng);
        blk[k] = vmalloc(len[k]);
        if (blk[k] == NULL) return w->bad++, NULL;
        fill(blk[k], len[k], tag[k]);
    }
    for (int i = 0; i < SET; i++) {
        w->bad += !intact(blk[i], len[i], tag[i]);
        vfree(blk[i]);
    }
    return NULL;
}

/* While the process has one thread its locks are taken with plain stores (tm_single_thread).
 * Medium and large blocks made then are freed by threads started later, which take the same
 * arena and heap locks with atomics, while this thread goes on replacing blocks too: a lock word
 * a plain store left held hangs the run, and a block handed out twice loses its contents. */
#define EARLY 64
struct early {
    unsigned char **blk;
    size_t *len;
    int from;
    struct worker w;
};
static void *free_early_then_work(void *arg) {
    struct early *e = arg;
    for (int i = e->from; i < EARLY; i += 4) {
        e->w.bad += !intact(e->blk[i], e->len[i], (unsigned char)i);
        vfree(e->blk[i]);
    }
    return work(&e->w);
}
static void single_thread_then_threads(void) {
#ifndef __SANITIZE_THREAD__ /* its runtime has threads of its own */
    CHECK(__libc_single_threaded);
#endif
    unsigned char *blk[EARLY];
    size_t len[EARLY];
    struct worker me = {.rng = 42, .bad = 0};
    for (int i = 0; i < EARLY; i++) {
        len[i] = pick(&me.rng);
        blk[i] = vmalloc(len[i]);
        CHECK(blk[i] != NULL);
        if (blk[i] == NULL) return;
        fill(blk[i], len[i], (unsigned char)i);
    }
    work(&me); /* arena and heap operations under plain-store locks */
    pthread_t t[4];
    struct early e[4];
    for (int k = 0; k < 4; k++) {
        e[k] = (struct early){blk, len, k, {.rng = 7 + (uint64_t)k, .bad = 0}};
        CHECK(pthread_create(&t[k], NULL, free_early_then_work, &e[k]) == 0);
    }
    CHECK(!__libc_single_threaded);
    work(&me);
    for (int k = 0; k < 4; k++) {
        pthread_join(t[k], NULL);
        me.bad += e[k].w.bad;
    }
    CHECK(me.bad == 0);
}

static void oversubscribed(void) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int n = (int)(cpus > 2 ? 8 * cpus : 16);
    if (n > 256) n = 256;
    pthread_t t[256];
    struct worker w[256];
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < n; i++) {
        w[i].rng = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1);
        w[i].bad = 0;
        CHECK(pthread_create(&t[i], NULL, work, &w[i]) == 0);
    }
    int bad = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        bad += w[i].bad;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    printf("  %d threads on %ld CPUs, %d replacements, %s: %.2f s\n", n, cpus, n * OPS,
           getenv("TINYMALLOC_CONF") ? getenv("TINYMALLOC_CONF") : "defaults", secs);
    CHECK(bad == 0);
    CHECK(secs < BOUND_S);
}

static void oversubscribed_defaults(void) { oversubscribed(); }
static void oversubscribed_purging_at_once(void) { oversubscribed(); }

int main(int argc, char **argv) {
    (void)argc;
    if (getenv("TINYMALLOC_CONF") == NULL) {
        RUN(single_thread_then_threads); /* first: the process has one thread */
        RUN(oversubscribed_defaults);
        if (tm_test_failed_cases) return 1;
        fflush(stdout);
        return tm_test_rerun_with_conf(argv, PURGE_NOW); /* returns only when it failed */
    }
    RUN(oversubscribed_purging_at_once);
    TEST_EXIT();
}
