/* large-churn: large blocks, 64 KiB to 32 MiB (log-uniform). Each round allocates a working
 * set of 16 blocks, replaces random ones 48 times, then frees them all, so the allocator
 * sees the whole set freed and asked for again (munmap/mmap, or reuse of what it kept).
 * Every page of every block is written. ops = allocations. */
#include "wl.h"

static const struct wl_spec spec = {
    .name = "large-churn",
    .summary = "large blocks 64 KiB-32 MiB: a working set freed and reallocated",
    .threads = 1,
    .quick = 0.01,
    .tiny = 0.002,
    .latency = 1,
};

#define SET 16 /* blocks in the working set; fewer when the whole run makes under 64 */

static void take(struct wl_ctx *c, struct wl_block *b) {
    wl_block_take(c, b, wl_log_uniform(&c->rng, 64 << 10, 32 << 20));
}

static void *run(void *arg) {
    struct wl_worker *w = arg;
    struct wl_ctx *c = &w->c;
    struct wl_block set[SET];
    int n = w->allocs >= 4 * SET ? SET : w->allocs >= 8 ? (int)(w->allocs / 4) : 2;
    while (c->ops < w->allocs) {
        for (int i = 0; i < n; i++) take(c, &set[i]);
        for (int k = 0; k < 3 * n; k++) {
            struct wl_block *b = &set[wl_below(&c->rng, (uint64_t)n)];
            wl_block_drop(c, b);
            take(c, b);
        }
        for (int i = 0; i < n; i++) wl_block_drop(c, &set[i]);
    }
    return NULL;
}

int main(int argc, char **argv) {
    wl_init(&spec, argc, argv);
    uint64_t ops = 0;
    double secs = wl_run_workers(run, wl_scaled(6000, 1), NULL, &ops);
    wl_set_rss(wl_peak_rss_kb(), wl_rss_kb());
    wl_report(ops, secs);
    return 0;
}
