/* invsq-wset: a working set of 100000 objects under random free+malloc, sizes from 4 B to
 * 32 KiB with density falling as 1/size^2 (most objects tiny, a long tail of big ones), as
 * object sizes in many programs are. With --threads N, N independent sets share the work.
 * ops = allocations. */
#include "wl.h"

#include <math.h>

static const struct wl_spec spec = {
    .name = "invsq-wset",
    .summary = "working set with random free+malloc, 4 B-32 KiB sizes with 1/size^2 density",
    .threads = 1,
    .quick = 0.1,
    .tiny = 0.01,
    .latency = 1,
};

#define SET 100000
#define MIN 4.0
#define MAX 32768.0

/* Inverse of the CDF of a 1/x^2 density on [MIN, MAX]. */
static size_t invsq_size(struct wl_rng *r) {
    double u = wl_unit(r);
    size_t n = (size_t)(1.0 / (1.0 / MIN - u * (1.0 / MIN - 1.0 / MAX)));
    return n < (size_t)MIN ? (size_t)MIN : n > (size_t)MAX ? (size_t)MAX : n;
}

static void *run(void *arg) {
    struct wl_worker *w = arg;
    struct wl_ctx *c = &w->c;
    struct wl_block *set = calloc(SET, sizeof *set);
    if (!set) wl_oom("calloc", SET * sizeof *set);
    for (int i = 0; i < SET; i++) wl_block_take(c, &set[i], invsq_size(&c->rng));
    while (c->ops < w->allocs) {
        struct wl_block *b = &set[wl_below(&c->rng, SET)];
        wl_block_drop(c, b);
        wl_block_take(c, b, invsq_size(&c->rng));
    }
    for (int i = 0; i < SET; i++) wl_block_drop(c, &set[i]);
    free(set);
    return NULL;
}

int main(int argc, char **argv) {
    wl_init(&spec, argc, argv);
    uint64_t ops = 0;
    double secs = wl_run_workers(run, wl_scaled(30e6, 1), NULL, &ops);
    wl_report(ops, secs);
    return 0;
}
