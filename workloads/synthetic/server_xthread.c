/* server-xthread: a server's request pattern. Each thread serves a round on one of the
 * shared slot arrays, replacing random slots (free the old object, allocate a new one of
 * 16 B-1 KiB); between rounds the arrays rotate between threads, so most frees hit objects
 * another thread allocated. ops = allocations. */
#include "wl.h"

#include <pthread.h>

static const struct wl_spec spec = {
    .name = "server-xthread",
    .summary = "threads replace objects in rotating shared arrays: frees of other threads' "
               "objects, rounds of work",
    .threads = 2,
    .quick = 0.1,
    .tiny = 0.01,
    .latency = 1,
};

#define SLOTS 4096
#define PER_ROUND 20000

struct shared {
    struct wl_block (*arr)[SLOTS];
    pthread_barrier_t round;
    uint64_t rounds;
};

static void replace(struct wl_ctx *c, struct wl_block *b) {
    if (b->p) wl_block_drop(c, b);
    wl_block_take(c, b, wl_log_uniform(&c->rng, 16, 1024));
}

static void *run(void *arg) {
    struct wl_worker *w = arg;
    struct shared *sh = w->shared;
    struct wl_ctx *c = &w->c;
    int n = wl.threads;
    for (uint64_t r = 0; r < sh->rounds; r++) {
        struct wl_block *a = sh->arr[((uint64_t)c->id + r) % (uint64_t)n];
        for (int k = 0; k < PER_ROUND; k++) replace(c, &a[wl_below(&c->rng, SLOTS)]);
        pthread_barrier_wait(&sh->round);
    }
    /* Each thread frees the array it served last. */
    struct wl_block *a = sh->arr[((uint64_t)c->id + sh->rounds - 1) % (uint64_t)n];
    for (int i = 0; i < SLOTS; i++)
        if (a[i].p) wl_block_drop(c, &a[i]);
    return NULL;
}

int main(int argc, char **argv) {
    wl_init(&spec, argc, argv);
    struct shared sh;
    sh.arr = calloc((size_t)wl.threads, sizeof *sh.arr);
    if (!sh.arr) wl_oom("calloc", (size_t)wl.threads * sizeof *sh.arr);
    uint64_t allocs = wl_scaled(30e6, 2 * PER_ROUND);
    sh.rounds = allocs / PER_ROUND / (uint64_t)wl.threads;
    if (sh.rounds < 2) sh.rounds = 2;
    pthread_barrier_init(&sh.round, NULL, (unsigned)wl.threads);
    uint64_t ops = 0;
    double secs = wl_run_workers(run, sh.rounds * PER_ROUND * (uint64_t)wl.threads, &sh, &ops);
    wl_extra("rounds", (double)sh.rounds);
    wl_report(ops, secs);
    free(sh.arr);
    return 0;
}
