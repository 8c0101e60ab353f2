/* Thread caches (tcache.c): cross-thread frees with verified contents, thread churn, frees
 * after a thread is gone, and allocation from a thread's late destructors. */
#include "tm_test.h"
#include "tinymalloc.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

static void *(*volatile vmalloc)(size_t) = malloc;

/* A block carries its size and a pattern derived from its address, checked before free. */
static void stamp(unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(((uintptr_t)p >> 4) + i * 7);
}
static int verify(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(((uintptr_t)p >> 4) + i * 7)) return 0;
    return 1;
}

enum { SLOTS = 4096, THREADS = 4, ROUNDS = 150000 };
static _Atomic(unsigned char *) slots[SLOTS]; /* a block's size is in its first word */
static atomic_int bad_blocks;

static int check_block(unsigned char *p) {
    size_t n;
    memcpy(&n, p, sizeof n);
    return n >= 16 && verify(p + 8, (n < 256 ? n : 256) - 8);
}

static size_t pick_size(unsigned *x) {
    *x = *x * 1664525 + 1013904223;
    unsigned r = *x >> 8;
    if (r % 1000 == 0) return 65536 + r % (6u << 20); /* rare large blocks */
    return 16 + r % (r % 8 == 0 ? 16384 : 512);
}

/* Each thread swaps its fresh block into a random slot, then checks and frees what was there,
 * which was usually allocated by another thread. */
static void *stress_thread(void *arg) {
    unsigned x = (unsigned)(uintptr_t)arg * 7919 + 1;
    for (int r = 0; r < ROUNDS; r++) {
        size_t n = pick_size(&x);
        unsigned char *p = vmalloc(n);
        if (!p) {
            atomic_fetch_add(&bad_blocks, 1);
            continue;
        }
        memcpy(p, &n, sizeof n);
        stamp(p + 8, (n < 256 ? n : 256) - 8);
        unsigned char *old = atomic_exchange(&slots[(x >> 4) % SLOTS], p);
        if (old && !check_block(old)) atomic_fetch_add(&bad_blocks, 1);
        free(old);
    }
    return NULL;
}

static void cross_thread_stress(void) {
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, stress_thread, (void *)i);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < SLOTS; i++) {
        unsigned char *p = atomic_load(&slots[i]);
        if (p && !check_block(p)) atomic_fetch_add(&bad_blocks, 1);
        free(p);
    }
    CHECK(atomic_load(&bad_blocks) == 0);
}

/* Thousands of short threads, each leaving blocks behind for the main thread to free. */
enum { CHURN = 3000, LEFT = 8 };
static unsigned char *left_behind[CHURN][LEFT];

static void *churn_thread(void *arg) {
    long id = (long)arg;
    void *tmp[32];
    for (int i = 0; i < 32; i++) tmp[i] = vmalloc(16 + (size_t)(i * 37 + id) % 3000);
    for (int i = 0; i < LEFT; i++) {
        size_t n = 16 + (size_t)(i * 131 + id) % 2000;
        left_behind[id][i] = vmalloc(n);
        stamp(left_behind[id][i], n);
    }
    for (int i = 0; i < 32; i++) free(tmp[i]);
    return NULL;
}

static void thread_churn_and_frees_after_exit(void) {
    for (long base = 0; base < CHURN; base += 2) {
        pthread_t a, b;
        pthread_create(&a, NULL, churn_thread, (void *)base);
        pthread_create(&b, NULL, churn_thread, (void *)(base + 1));
        pthread_join(a, NULL);
        pthread_join(b, NULL);
    }
    int bad = 0;
    for (long id = 0; id < CHURN; id++)
        for (int i = 0; i < LEFT; i++) {
            size_t n = 16 + (size_t)(i * 131 + id) % 2000;
            bad += !verify(left_behind[id][i], n);
            free(left_behind[id][i]);
        }
    CHECK(bad == 0);
    /* The caches of dead threads were recycled: the process did not grow without bound. */
    struct tinymalloc_stats s;
    tinymalloc_stats_get(&s, sizeof s);
    CHECK(s.mapped_bytes < (2ull << 30));
}

/* A destructor that runs after tinymalloc's own (keys run in creation order) still allocates. */
static pthread_key_t late_key;
static atomic_int late_ok;
static void late_destructor(void *arg) {
    free(arg);
    char *p = vmalloc(100);
    if (p) {
        memset(p, 1, 100);
        free(p);
        atomic_fetch_add(&late_ok, 1);
    }
}
static void *late_thread(void *arg) {
    (void)arg;
    pthread_setspecific(late_key, vmalloc(10));
    return NULL;
}

static void malloc_in_late_thread_destructor(void) {
    pthread_key_create(&late_key, late_destructor);
    for (int i = 0; i < 50; i++) {
        pthread_t t;
        pthread_create(&t, NULL, late_thread, NULL);
        pthread_join(t, NULL);
    }
    CHECK(atomic_load(&late_ok) == 50);
}

int main(void) {
    RUN(cross_thread_stress);
    RUN(thread_churn_and_frees_after_exit);
    RUN(malloc_in_late_thread_destructor);
    TEST_EXIT();
}
