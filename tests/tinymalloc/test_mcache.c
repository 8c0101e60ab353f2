/* The medium cache (mcache.c): class rounding, reuse without the arena, the per-thread byte
 * cap, the flush at thread exit, and double frees of cached blocks from any thread. */
#include "tm_test.h"
#include "tinymalloc.h"

#include <malloc.h>
#include <pthread.h>

static void *(*volatile vmalloc)(size_t) = malloc;
static void (*volatile vfree)(void *) = free;

static struct tinymalloc_stats stats(void) {
    struct tinymalloc_stats s;
    tinymalloc_stats_get(&s, sizeof s);
    return s;
}

static void sizes_round_to_classes(void) {
    void *a = vmalloc(9000), *b = vmalloc(30000), *c = vmalloc(200000);
    CHECK(malloc_usable_size(a) == 12288); /* whole 4 KiB units, four classes per doubling */
    CHECK(malloc_usable_size(b) == 32768);
    CHECK(malloc_usable_size(c) == 229376);
    vfree(a);
    vfree(b);
    vfree(c);
}

static void freed_block_is_reused_without_the_arena(void) {
    void *p = vmalloc(30000);
    vfree(p);
    struct tinymalloc_stats s0 = stats();
    void *q = vmalloc(31000); /* same class */
    struct tinymalloc_stats s1 = stats();
    CHECK(q == p);
    CHECK(s1.arena_allocs == s0.arena_allocs);
    vfree(q);
}

static void cache_is_capped(void) {
    enum { N = 64 };
    void *ps[N];
    for (int i = 0; i < N; i++) ps[i] = vmalloc(256 << 10);
    struct tinymalloc_stats s0 = stats();
    for (int i = 0; i < N; i++) vfree(ps[i]);
    struct tinymalloc_stats s1 = stats();
    /* 16 MiB freed, at most 4 MiB (medium_cache) kept by this thread. */
    CHECK(s1.arena_frees - s0.arena_frees >= N - 16);
}

static void *medium_thread(void *arg) {
    void *ps[20];
    for (int i = 0; i < 20; i++) ps[i] = vmalloc(20000 + (size_t)i * 1000);
    for (int i = 0; i < 20; i++) vfree(ps[i]);
    return arg;
}

static void thread_exit_returns_its_cache(void) {
    struct tinymalloc_stats s0 = stats();
    pthread_t t;
    pthread_create(&t, NULL, medium_thread, NULL);
    pthread_join(t, NULL);
    struct tinymalloc_stats s1 = stats();
    CHECK(s1.arena_allocs - s0.arena_allocs == 20);
    CHECK(s1.arena_frees - s0.arena_frees == 20); /* cached, then flushed at exit */
}

static void die_double_free(void) {
    void *p = vmalloc(30000);
    vfree(p);
    vfree(p);
}
static void die_double_free_cache_full(void) {
    void *ps[40];
    for (int i = 0; i < 40; i++) ps[i] = vmalloc(200000);
    void *p = vmalloc(30000);
    vfree(p);
    for (int i = 0; i < 40; i++) vfree(ps[i]); /* fills the cache to its cap */
    vfree(p);
}
static void *free_in_thread(void *p) {
    vfree(p);
    return NULL;
}
static void die_double_free_other_thread(void) {
    void *p = vmalloc(30000);
    pthread_t t;
    pthread_create(&t, NULL, free_in_thread, p); /* cached by that thread... */
    pthread_join(t, NULL);                       /* ...and flushed at its exit */
    void *q = vmalloc(300000);
    vfree(q);
    vfree(p);
}
static void die_write_after_free(void) {
    void **p = vmalloc(30000);
    vfree(p);
    static char target[64];
    p[0] = target;
    vmalloc(30000);
    vmalloc(30000);
}

static void *(*volatile vrealloc)(void *, size_t) = realloc;
static void die_realloc_cached(void) {
    void *p = vmalloc(30000);
    vfree(p); /* in this thread's cache: still allocated in its arena */
    vrealloc(p, 31000);
}

static void cached_blocks_are_checked(void) {
    CHECK(tm_expect_abort(die_realloc_cached, "realloc(): invalid pointer (freed already) 0x"));
    CHECK(tm_expect_abort(die_double_free, "free(): double free of 0x"));
    CHECK(tm_expect_abort(die_double_free_cache_full, "free(): double free of 0x"));
    CHECK(tm_expect_abort(die_double_free_other_thread, "free(): "));
    CHECK(tm_expect_abort(die_write_after_free, "malloc(): corrupted free list"));
}

int main(void) {
    RUN(sizes_round_to_classes);
    RUN(freed_block_is_reused_without_the_arena);
    RUN(cache_is_capped);
    RUN(thread_exit_returns_its_cache);
    RUN(cached_blocks_are_checked);
    TEST_EXIT();
}
