/* glibc-thread: follows glibc's benchtests/bench-malloc-thread.c (`glibc-thread` in
 * mimalloc-bench). Each thread keeps its own working set of 1024 slots, all empty at the
 * start; it picks a slot at random, frees what is there and puts a new block in it, of a
 * size from 4 B to 32 KiB with density falling as 1/size^2, and writes every byte of it.
 *
 * How it differs: the original runs each thread for 2 s and reports iterations; this one
 * runs a fixed number of iterations, so that the bench's timed runs apply (ops_per_sec is in
 * the result line). Sizes and slots come from the seeded generator, not from precomputed
 * tables, and each block's pattern is verified before it is freed. ops = allocations. */
#include "wl.h"

#include <string.h>

static const struct wl_spec spec = {
    .name = "glibc-thread",
    .summary = "glibc's bench-malloc-thread: per-thread sets of 1024 slots, 4 B-32 KiB with "
               "1/size^2 density, every byte written",
    .threads = 2,
    .quick = 0.1,
    .tiny = 0.01,
    .latency = 1,
    .set = 1024,
    .min_size = 4,
    .max_size = 32768,
};

static void *run(void *arg) {
    struct wl_worker *w = arg;
    struct wl_ctx *c = &w->c;
    struct wl_block *set = calloc((size_t)wl.set, sizeof *set);
    if (!set) wl_oom("calloc", (size_t)wl.set * sizeof *set);
    while (c->ops < w->allocs) {
        struct wl_block *b = &set[wl_below(&c->rng, (uint64_t)wl.set)];
        if (b->p) wl_block_drop(c, b);
        b->n = wl_invsq(&c->rng, wl.min_size, wl.max_size);
        b->p = wl_malloc(c, b->n);
        memset(b->p, (int)(c->ops & 0xff), b->n); /* the original writes every byte */
        wl_fill_block(b->p, b->n);
    }
    for (int i = 0; i < wl.set; i++)
        if (set[i].p) wl_block_drop(c, &set[i]);
    free(set);
    return NULL;
}

int main(int argc, char **argv) {
    wl_init(&spec, argc, argv);
    uint64_t ops = 0;
    double secs = wl_run_workers(run, wl_scaled(20e6, 1), NULL, &ops);
    wl_report(ops, secs);
    return 0;
}
