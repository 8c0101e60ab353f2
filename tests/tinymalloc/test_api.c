/* Conformance of the exported API (api.c) with glibc's semantics, error paths included. */
#include "tm_test.h"
#include "tinymalloc.h"

#include <errno.h>
#include <malloc.h>
#include <stddef.h>
#include <stdint.h>

void cfree(void *p);

/* Keep the compiler from reasoning about allocation results (it may fold NULL checks). */
static void *(*volatile vmalloc)(size_t) = malloc;
static void *(*volatile vrealloc)(void *, size_t) = realloc;
static void *(*volatile vcalloc)(size_t, size_t) = calloc;
static void *(*volatile vreallocarray)(void *, size_t, size_t) = reallocarray;

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(seed + i * 31);
}
static int check(const unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 31)) return 0;
    return 1;
}

static const size_t sizes[] = {0,     1,     8,     15,     16,     17,      100,     128,
                               129,   1000,  1024,  4095,   4096,   8191,    8192,    8193,
                               12000, 16384, 32768, 100000, 262144, 1 << 20, 5 << 20, 33 << 20};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static void malloc_zero_is_unique(void) {
    void *a = vmalloc(0), *b = vmalloc(0);
    CHECK(a != NULL && b != NULL && a != b);
    free(a);
    free(b);
}

static void every_block_is_16_aligned_and_usable(void) {
    for (size_t i = 0; i < NSIZES; i++) {
        unsigned char *p = vmalloc(sizes[i]);
        CHECK(p != NULL);
        if (!p) continue;
        CHECK(((uintptr_t)p & 15) == 0);
        size_t u = malloc_usable_size(p);
        CHECK(u >= sizes[i]);
        memset(p, 0xab, u); /* the whole usable size is writable */
        free(p);
    }
    for (size_t n = 1; n <= 20000; n += 7) {
        void *p = vmalloc(n);
        CHECK(p && ((uintptr_t)p & 15) == 0 && malloc_usable_size(p) >= n);
        free(p);
    }
}

static void free_null_and_usable_null(void) {
    free(NULL);
    cfree(NULL);
    CHECK(malloc_usable_size(NULL) == 0);
    void *p = vmalloc(10);
    cfree(p);
}

static void calloc_zeroes_reused_memory(void) {
    for (size_t i = 0; i < NSIZES; i++) {
        size_t n = sizes[i];
        unsigned char *p = vmalloc(n);
        if (p) memset(p, 0xff, n);
        free(p);
        unsigned char *q = vcalloc(1, n);
        CHECK(q != NULL);
        size_t bad = 0;
        for (size_t k = 0; q && k < n; k++) bad += q[k] != 0;
        CHECK(bad == 0);
        free(q);
    }
}

static void overflow_and_impossible_sizes(void) {
    errno = 0;
    CHECK(vcalloc(SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(vmalloc((size_t)PTRDIFF_MAX + 1) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(vmalloc(SIZE_MAX) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(memalign(64, SIZE_MAX - 10) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(reallocarray(NULL, SIZE_MAX / 4, 8) == NULL && errno == ENOMEM);
    unsigned char *p = vmalloc(100);
    fill(p, 100, 7);
    errno = 0;
    CHECK(vrealloc(p, (size_t)PTRDIFF_MAX + 1) == NULL && errno == ENOMEM);
    CHECK(check(p, 100, 7)); /* a failed realloc leaves the block intact */
    errno = 0;
    CHECK(vreallocarray(p, SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
    CHECK(check(p, 100, 7));
    free(p);
    void *q = reallocarray(NULL, 10, 10);
    CHECK(q && malloc_usable_size(q) >= 100);
    free(q);
}

static void realloc_keeps_contents_across_tiers(void) {
    unsigned char *p = vrealloc(NULL, 1);
    CHECK(p != NULL);
    size_t cur = 1;
    fill(p, cur, 3);
    static const size_t path[] = {17,       100,     5000,  9000, 100000, 3 << 20, 50 << 20,
                                  60 << 20, 9 << 20, 70000, 8000, 300,    16,      1};
    for (size_t i = 0; i < sizeof path / sizeof path[0]; i++) {
        size_t n = path[i];
        p = vrealloc(p, n);
        CHECK(p != NULL);
        if (!p) return;
        size_t keep = cur < n ? cur : n;
        CHECK(check(p, keep, 3));
        fill(p, n, 3);
        cur = n;
    }
    CHECK(vrealloc(p, 0) == NULL); /* glibc: frees and returns NULL */
}

static void posix_memalign_errors_leave_pointer(void) {
    void *sentinel = (void *)0x1234, *p = sentinel;
    CHECK(posix_memalign(&p, 0, 10) == EINVAL && p == sentinel);
    CHECK(posix_memalign(&p, 4, 10) == EINVAL && p == sentinel);
    CHECK(posix_memalign(&p, 24, 10) == EINVAL && p == sentinel);
    CHECK(posix_memalign(&p, 64, SIZE_MAX / 2) == ENOMEM && p == sentinel);
    CHECK(posix_memalign(&p, 8, 10) == 0 && p != sentinel);
    free(p);
}

static void alignment_sweep(void) {
    for (size_t align = 16; align <= (64u << 20); align <<= 1) {
        size_t ns[] = {1, align / 2, align - 1, align, align + 1, 3 * align / 2, 100};
        for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
            size_t n = ns[k];
            void *a = NULL;
            CHECK(posix_memalign(&a, align, n) == 0);
            void *b = aligned_alloc(align, n);
            void *c = memalign(align, n);
            void *ps[3] = {a, b, c};
            for (int j = 0; j < 3; j++) {
                CHECK(ps[j] != NULL && ((uintptr_t)ps[j] & (align - 1)) == 0);
                if (!ps[j]) continue;
                CHECK(malloc_usable_size(ps[j]) >= n);
                memset(ps[j], 0x5a, n);
                free(ps[j]);
            }
        }
    }
}

static void memalign_rounds_odd_alignment(void) {
    void *p = memalign(48, 10);
    CHECK(p && ((uintptr_t)p & 63) == 0);
    free(p);
    errno = 0;
    CHECK(memalign(SIZE_MAX / 2 + 2, 10) == NULL && errno == EINVAL);
}

static void valloc_and_pvalloc(void) {
    void *p = valloc(100), *q = pvalloc(1);
    CHECK(p && ((uintptr_t)p & 4095) == 0);
    CHECK(q && ((uintptr_t)q & 4095) == 0 && malloc_usable_size(q) >= 4096);
    free(p);
    free(q);
    errno = 0;
    CHECK(pvalloc(SIZE_MAX - 100) == NULL && errno == ENOMEM);
}

static void blocks_do_not_overlap(void) {
    enum { N = 20000 };
    static unsigned char *ps[N];
    static size_t ns[N];
    unsigned x = 12345;
    for (int i = 0; i < N; i++) {
        x = x * 1103515245 + 12345;
        ns[i] = (x >> 8) % (i % 100 == 0 ? 200000 : 2000);
        ps[i] = vmalloc(ns[i]);
        CHECK(ps[i] != NULL);
        fill(ps[i], ns[i], (unsigned)i);
    }
    for (int i = 0; i < N; i++) CHECK(check(ps[i], ns[i], (unsigned)i));
    for (int i = 0; i < N; i += 2) free(ps[i]);
    for (int i = 0; i < N; i += 2) {
        ps[i] = vmalloc(ns[i] * 2 + 1);
        fill(ps[i], ns[i] * 2 + 1, (unsigned)i + 1);
    }
    for (int i = 0; i < N; i++) {
        int ok =
            i % 2 ? check(ps[i], ns[i], (unsigned)i) : check(ps[i], ns[i] * 2 + 1, (unsigned)i + 1);
        CHECK(ok);
        free(ps[i]);
    }
}

/* 512 MiB above what the process already has mapped (reservations included). The chunk
 * layer gives the unused part of its reservation back before a mapping of its own fails, so a
 * little under 1.5 GiB can be had at most. */
static int oom_child(void) {
    int bad = 0;
    errno = 0;
    void *big = vmalloc(2u << 30);
    bad |= (big != NULL || errno != ENOMEM) << 1;
    void *keep[64];
    int n = 0;
    while (n < 64 && (keep[n] = vmalloc(32u << 20)) != NULL) n++;
    bad |= (n == 64 || n == 0) << 2; /* 2 GiB cannot fit */
    errno = 0;
    void *more = vmalloc(32u << 20);
    bad |= (more != NULL || errno != ENOMEM) << 3;
    void *pm = (void *)1;
    bad |= (posix_memalign(&pm, 64, 64u << 20) != ENOMEM || pm != (void *)1) << 4;
    for (int i = 0; i < n; i++) free(keep[i]);
    void *again = vmalloc(32u << 20); /* works again once memory is freed */
    bad |= (again == NULL) << 5;
    for (int i = 0; i < 1000; i++) free(vmalloc(100)); /* small sizes still work */
    free(again);
    if (bad) printf("  %d blocks of 32 MiB; failed checks %#x\n", n, bad);
    return bad;
}

static void out_of_memory_returns_enomem_then_recovers(void) {
    CHECK(tm_test_capped(oom_child, 512u << 20));
}

static void statistics_count_calls(void) {
    struct tinymalloc_stats a, b;
    CHECK(tinymalloc_stats_get(&a, sizeof a) == 0);
    void *ps[100];
    for (int i = 0; i < 100; i++) ps[i] = vmalloc(24);
    void *h = vmalloc(8u << 20);
    CHECK(tinymalloc_stats_get(&b, sizeof b) == 0);
    CHECK(b.slab_allocs - a.slab_allocs == 100);
    CHECK(b.heap_allocs - a.heap_allocs == 1);
    CHECK(b.large_allocs - a.large_allocs == 1); /* 8 MiB: a heap block, no mapping of its own */
    CHECK(b.live_bytes >= a.live_bytes + 100 * 32 + (8u << 20));
    /* Aligned above a chunk (4 MiB), which the heap does not do: a mapping of its own, one
     * mmap. */
    struct tinymalloc_stats c;
    void *m = aligned_alloc(8u << 20, 16u << 20);
    CHECK(m != NULL && tinymalloc_stats_get(&c, sizeof c) == 0);
    CHECK(c.mapped_allocs - b.mapped_allocs == 1 && c.os_mmap > b.os_mmap);
    free(m);
    for (int i = 0; i < 100; i++) free(ps[i]);
    free(h);
    CHECK(tinymalloc_stats_get(&a, sizeof a) == 0);
    CHECK(a.slab_frees - b.slab_frees == 100 && a.heap_frees - b.heap_frees == 2);
    CHECK(tinymalloc_stats_get(&a, 3) == -1);
    /* A caller built before slab_transferred existed passes the size that ended before it. */
    CHECK(tinymalloc_stats_get(&a, offsetof(struct tinymalloc_stats, slab_transferred)) == 0);
}

int main(void) {
    RUN(malloc_zero_is_unique);
    RUN(every_block_is_16_aligned_and_usable);
    RUN(free_null_and_usable_null);
    RUN(calloc_zeroes_reused_memory);
    RUN(overflow_and_impossible_sizes);
    RUN(realloc_keeps_contents_across_tiers);
    RUN(posix_memalign_errors_leave_pointer);
    RUN(alignment_sweep);
    RUN(memalign_rounds_odd_alignment);
    RUN(valloc_and_pvalloc);
    RUN(blocks_do_not_overlap);
    RUN_CAPPED(out_of_memory_returns_enomem_then_recovers);
    RUN(statistics_count_calls);
    TEST_EXIT();
}
