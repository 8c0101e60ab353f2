/* xmalloc-test: follows Lever and Boreham's xmalloc-test (USENIX 2000; `xmalloc-testN` in
 * mimalloc-bench): purely allocating threads and purely freeing threads, with objects of
 * various sizes migrating from the first to the second in batches through one shared,
 * bounded queue. A thread cache that keeps what a thread frees helps nothing here: the
 * freeing threads never allocate. --threads N starts N allocating and N freeing threads;
 * the manifest runs it with far more threads than CPUs.
 *
 * How it differs: written from that description; a fixed number of objects instead of a
 * fixed time, so that the bench's timed runs apply; sizes drawn from 8 B to 2 KiB
 * (log-uniform) instead of a fixed list; and every object is filled and verified. The batch
 * arrays (4096 pointers) come from malloc, as in the original, and are not counted in ops.
 * ops = allocations of objects. */
#include "wl.h"

#include <pthread.h>

static const struct wl_spec spec = {
    .name = "xmalloc-test",
    .summary = "N threads only allocate, N threads only free: objects of 8 B-2 KiB migrate in "
               "batches",
    .threads = 2,
    .quick = 0.1,
    .tiny = 0.01,
    .latency = 1,
};

#define BATCH 4096
#define QUEUE_MAX                                                                                  \
    32 /* batches in flight: bounds what the queue holds (1.5 MiB a batch on average) */

struct batch {
    struct batch *next;
    struct wl_block b[BATCH];
};

struct queue {
    pthread_mutex_t m;
    pthread_cond_t not_empty, not_full;
    struct batch *head;
    int count, allocators_left;
};

static void *allocator(struct wl_worker *w) {
    struct queue *q = w->shared;
    struct wl_ctx *c = &w->c;
    while (c->ops < w->allocs) {
        struct batch *b = malloc(sizeof *b);
        if (!b) wl_oom("malloc", sizeof *b);
        for (int i = 0; i < BATCH; i++)
            wl_block_take(c, &b->b[i], wl_log_uniform(&c->rng, 8, 2048));
        pthread_mutex_lock(&q->m);
        while (q->count >= QUEUE_MAX) pthread_cond_wait(&q->not_full, &q->m);
        b->next = q->head;
        q->head = b;
        q->count++;
        pthread_cond_signal(&q->not_empty);
        pthread_mutex_unlock(&q->m);
    }
    pthread_mutex_lock(&q->m);
    if (--q->allocators_left == 0) pthread_cond_broadcast(&q->not_empty);
    pthread_mutex_unlock(&q->m);
    return NULL;
}

static void *releaser(struct wl_worker *w) {
    struct queue *q = w->shared;
    for (;;) {
        pthread_mutex_lock(&q->m);
        while (!q->head && q->allocators_left > 0) pthread_cond_wait(&q->not_empty, &q->m);
        struct batch *b = q->head;
        if (b) {
            q->head = b->next;
            q->count--;
            pthread_cond_signal(&q->not_full);
        }
        pthread_mutex_unlock(&q->m);
        if (!b) return NULL;
        for (int i = 0; i < BATCH; i++) wl_block_drop(&w->c, &b->b[i]);
        free(b);
    }
}

/* Workers 0..N-1 allocate, N..2N-1 free. */
static void *run(void *arg) {
    struct wl_worker *w = arg;
    return w->c.id < wl.threads ? allocator(w) : releaser(w);
}

int main(int argc, char **argv) {
    wl_init(&spec, argc, argv);
    int n = wl.threads;
    struct queue q = {.head = NULL, .count = 0, .allocators_left = n};
    pthread_mutex_init(&q.m, NULL);
    pthread_cond_init(&q.not_empty, NULL);
    pthread_cond_init(&q.not_full, NULL);
    uint64_t ops = 0;
    double secs = wl_run_pairs(run, wl_scaled(16e6, BATCH) / (uint64_t)n, &q, &ops);
    wl_extra("allocating_threads", n);
    wl_extra("freeing_threads", n);
    wl_report(ops, secs);
    return 0;
}
