/* prodcons: producer threads only allocate (16 B-4 KiB), consumer threads only free. Blocks
 * travel in batches of 128 through a bounded queue, so every free is remote and the
 * allocator must move memory back from the consumers to the producers. --threads N starts
 * N producers and N consumers. ops = allocations. */
#include "wl.h"

#include <pthread.h>
#include <string.h>

static const struct wl_spec spec = {
    .name = "prodcons",
    .summary = "N producer threads allocate, N consumer threads free (batches through a queue)",
    .threads = 2,
    .quick = 0.1,
    .tiny = 0.01,
    .latency = 1,
};

#define BATCH 128
#define DEPTH 64 /* batches in flight: bounds the memory held by the queue */

struct batch {
    struct batch *next;
    int n;
    struct wl_block b[BATCH];
};

/* A mutex+condvar list; batches (the queue's own memory) are preallocated, never malloc'd
 * while timing, so only the blocks go through the allocator. */
struct queue {
    pthread_mutex_t m;
    pthread_cond_t cv;
    struct batch *head;
    int producers_left;
};

struct shared {
    struct queue full, empty;
};

static void push(struct queue *q, struct batch *b) {
    pthread_mutex_lock(&q->m);
    b->next = q->head;
    q->head = b;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->m);
}

/* NULL once the queue is empty and every producer has finished. */
static struct batch *pop(struct queue *q) {
    pthread_mutex_lock(&q->m);
    while (!q->head && q->producers_left > 0) pthread_cond_wait(&q->cv, &q->m);
    struct batch *b = q->head;
    if (b) q->head = b->next;
    pthread_mutex_unlock(&q->m);
    return b;
}

static void *producer(struct wl_worker *w) {
    struct shared *sh = w->shared;
    struct wl_ctx *c = &w->c;
    while (c->ops < w->allocs) {
        struct batch *b = pop(&sh->empty);
        b->n = 0;
        while (b->n < BATCH && c->ops < w->allocs) {
            struct wl_block *k = &b->b[b->n++];
            k->n = wl_log_uniform(&c->rng, 16, 4096);
            k->p = wl_malloc(c, k->n);
            wl_fill_block(k->p, k->n);
        }
        push(&sh->full, b);
    }
    pthread_mutex_lock(&sh->full.m);
    sh->full.producers_left--;
    pthread_cond_broadcast(&sh->full.cv);
    pthread_mutex_unlock(&sh->full.m);
    return NULL;
}

static void *consumer(struct wl_worker *w) {
    struct shared *sh = w->shared;
    struct batch *b;
    while ((b = pop(&sh->full))) {
        for (int i = 0; i < b->n; i++) {
            wl_check_block(b->b[i].p, b->b[i].n);
            wl_free(&w->c, b->b[i].p);
        }
        push(&sh->empty, b);
    }
    return NULL;
}

/* Workers 0..N-1 produce, N..2N-1 consume. */
static void *run(void *arg) {
    struct wl_worker *w = arg;
    return w->c.id < wl.threads ? producer(w) : consumer(w);
}

int main(int argc, char **argv) {
    wl_init(&spec, argc, argv);
    int n = wl.threads;
    struct shared sh;
    memset(&sh, 0, sizeof sh);
    pthread_mutex_init(&sh.full.m, NULL);
    pthread_mutex_init(&sh.empty.m, NULL);
    pthread_cond_init(&sh.full.cv, NULL);
    pthread_cond_init(&sh.empty.cv, NULL);
    sh.full.producers_left = n;
    sh.empty.producers_left = 1; /* never reaches 0: producers wait for an empty batch */
    struct batch *pool = calloc((size_t)DEPTH * (size_t)n, sizeof *pool);
    if (!pool) wl_oom("calloc", (size_t)DEPTH * (size_t)n * sizeof *pool);
    for (int i = 0; i < DEPTH * n; i++) push(&sh.empty, &pool[i]);

    uint64_t ops = 0;
    double secs = wl_run_pairs(run, wl_scaled(16e6, 1000) / (uint64_t)n, &sh, &ops);
    wl_extra("producers", n);
    wl_extra("consumers", n);
    wl_report(ops, secs);
    free(pool);
    return 0;
}
