/* Process-level state (init.c): fork from a multithreaded program while other threads
 * allocate leaves a working allocator in the child. */
#include "tm_test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

static void *(*volatile vmalloc)(size_t) = malloc;
static atomic_int stop;

static void *busy(void *arg) {
    unsigned x = (unsigned)(uintptr_t)arg;
    void *keep[64] = {0};
    while (!atomic_load(&stop)) {
        x = x * 1664525 + 1013904223;
        unsigned i = (x >> 8) % 64;
        free(keep[i]);
        /* Small, medium (the medium cache's sizes: its lock is a spin lock) and huge. */
        unsigned kind = (x >> 12) % 100;
        size_t n = kind == 0   ? (5u << 20)
                   : kind < 30 ? 9000 + (x >> 16) % 24000
                               : 16 + (x >> 16) % 4000;
        keep[i] = vmalloc(n);
        if (keep[i]) memset(keep[i], 1, n < 64 ? n : 64);
    }
    for (int i = 0; i < 64; i++) free(keep[i]);
    return NULL;
}

static void *child_thread(void *arg) {
    for (int i = 0; i < 10000; i++) free(vmalloc(16 + (size_t)i % 3000));
    return arg;
}

static int child_work(void) {
    /* Every size class and a huge block, from this thread and a new one. */
    for (size_t n = 1; n < 20000; n += 97) {
        char *p = vmalloc(n);
        if (!p) return 1;
        memset(p, 2, n);
        free(p);
    }
    void *h = vmalloc(9u << 20);
    if (!h) return 1;
    free(h);
#ifdef __SANITIZE_THREAD__
    return 0; /* ThreadSanitizer cannot start threads in the child of a threaded fork */
#endif
    pthread_t t;
    if (pthread_create(&t, NULL, child_thread, NULL)) return 1;
    pthread_join(t, NULL);
    return 0;
}

static void fork_while_threads_allocate(void) {
    pthread_t t[3];
    for (long i = 0; i < 3; i++) pthread_create(&t[i], NULL, busy, (void *)(i + 1));
    int failures = 0;
    for (int k = 0; k < 60; k++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) _exit(child_work());
        int st = 0;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) failures++;
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    CHECK(failures == 0);
}

int main(void) {
    RUN(fork_while_threads_allocate);
    TEST_EXIT();
}
