/* The slab tier (slab.c): class bounds, pointer checks, double-free detection, memory return. */
#include "tm_test.h"
#include "tinymalloc.h"

#include <malloc.h>
#include <pthread.h>
#include <stdint.h>

static void *(*volatile vmalloc)(size_t) = malloc;
static void (*volatile vfree)(void *) = free;
static void *(*volatile vrealloc)(void *, size_t) = realloc;

static void class_waste_is_bounded(void) {
    size_t prev = 0;
    for (size_t n = 1; n <= 8192; n++) {
        void *p = vmalloc(n);
        size_t u = malloc_usable_size(p);
        CHECK(u >= n && u <= n + n / 4 + 16); /* at most 25 % + one tiny step wasted */
        CHECK(u >= prev);
        prev = u;
        vfree(p);
    }
}

static void die_free_stack(void) {
    char buf[64];
    vfree(buf + 16);
}
static void die_free_interior(void) {
    char *p = vmalloc(64);
    vfree(p + 16);
}
static void die_free_unaligned(void) {
    char *p = vmalloc(64);
    vfree(p + 1);
}
static void die_double_free(void) {
    void *p = vmalloc(48);
    vfree(p);
    vfree(p);
}
static void die_double_free_delayed(void) {
    void *p = vmalloc(200), *q[100];
    vfree(p);
    for (int i = 0; i < 100; i++) q[i] = vmalloc(100);
    for (int i = 0; i < 100; i++) vfree(q[i]);
    vfree(p);
}
static void *free_it(void *p) {
    vfree(p);
    return NULL;
}
static void die_double_free_remote(void) {
    void *p = vmalloc(32);
    pthread_t t;
    pthread_create(&t, NULL, free_it, p);
    pthread_join(t, NULL);
    vfree(p);
}
static void die_double_free_huge(void) {
    void *p = vmalloc(10u << 20);
    vfree(p);
    vfree(p);
}
static void die_free_foreign(void) {
    static char not_heap[256];
    vfree(not_heap + 16);
}
static void die_usable_interior(void) {
    char *p = vmalloc(100);
    malloc_usable_size(p + 32);
}
static void die_realloc_interior(void) {
    char *p = vmalloc(100);
    vrealloc(p + 32, 10);
}
static void die_free_huge_interior(void) {
    char *p = vmalloc(10u << 20);
    vfree(p + 4096);
}

/* A write after free that redirects a free-list link is caught before the link is used. */
static void die_write_after_free(void) {
    static char target[64];
    char **p = vmalloc(64);
    vfree(p);
    p[0] = target; /* try to make a later malloc return target */
    vmalloc(64);
    vmalloc(64);
}

static void invalid_and_double_frees_abort(void) {
    CHECK(tm_expect_abort(die_write_after_free, "malloc(): corrupted free list"));
    CHECK(tm_expect_abort(die_free_stack, "free(): invalid pointer 0x"));
    CHECK(tm_expect_abort(die_free_interior, "free(): invalid pointer"));
    CHECK(tm_expect_abort(die_free_unaligned, "free(): invalid pointer"));
    CHECK(tm_expect_abort(die_free_foreign, "free(): invalid pointer"));
    CHECK(tm_expect_abort(die_double_free, "free(): double free of 0x"));
    CHECK(tm_expect_abort(die_double_free_delayed, "free(): double free"));
    CHECK(tm_expect_abort(die_double_free_remote, "free(): double free"));
    CHECK(tm_expect_abort(die_double_free_huge, "free(): invalid pointer"));
    CHECK(tm_expect_abort(die_free_huge_interior, "free(): invalid pointer"));
    CHECK(tm_expect_abort(die_usable_interior, "malloc_usable_size(): invalid pointer"));
    CHECK(tm_expect_abort(die_realloc_interior, "realloc(): invalid pointer"));
}

static long rss_kb(void) {
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f && fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
    if (f) fclose(f);
    return rss * 4;
}

/* Emptied slab pages go back to the OS past slab_retain: a program that frees everything sees
 * its resident size fall. A functional check, not a timing. */
static void rss_falls_after_free(void) {
    enum { N = 200000 };
    static void *ps[N];
    long before = rss_kb();
    for (int i = 0; i < N; i++) {
        ps[i] = vmalloc(1000);
        memset(ps[i], 1, 1000);
    }
    long peak = rss_kb();
    for (int i = 0; i < N; i++) vfree(ps[i]);
    long after = rss_kb();
    printf("  rss kB: before %ld, peak %ld, after free %ld\n", before, peak, after);
    CHECK(peak - before > 150000);
    CHECK(after - before < (peak - before) / 8);
}

static void freed_blocks_are_reused(void) {
    void *a = vmalloc(40);
    vfree(a);
    void *b = vmalloc(40);
    CHECK(a == b); /* LIFO within the page: the hot block comes back */
    vfree(b);
}

int main(void) {
    RUN(class_waste_is_bounded);
    RUN(invalid_and_double_frees_abort);
    RUN(rss_falls_after_free);
    RUN(freed_blocks_are_reused);
    TEST_EXIT();
}
