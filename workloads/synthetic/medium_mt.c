/* medium-mt: medium sizes on several threads. Each thread replaces random blocks of 1 KiB
 * to 256 KiB (log-uniform) in its own set of 128, the range between the small-object fast
 * path and the large/huge tier. ops = allocations. */
#include "wl.h"

static const struct wl_spec spec = {
    .name = "medium-mt",
    .summary = "multi-thread random replacement of 1 KiB-256 KiB blocks",
    .threads = 2,
    .quick = 0.1,
    .tiny = 0.01,
    .latency = 1,
};

#define SET 128

static void take(struct wl_ctx *c, struct wl_block *b) {
    wl_block_take(c, b, wl_log_uniform(&c->rng, 1 << 10, 256 << 10));
}

static void *run(void *arg) {
    struct wl_worker *w = arg;
    struct wl_ctx *c = &w->c;
    struct wl_block set[SET];
    for (int i = 0; i < SET; i++) take(c, &set[i]);
    while (c->ops < w->allocs) {
        struct wl_block *b = &set[wl_below(&c->rng, SET)];
        wl_block_drop(c, b);
        take(c, b);
    }
    for (int i = 0; i < SET; i++) wl_block_drop(c, &set[i]);
    return NULL;
}

int main(int argc, char **argv) {
    wl_init(&spec, argc, argv);
    uint64_t ops = 0;
    double secs = wl_run_workers(run, wl_scaled(5e6, 1), NULL, &ops);
    wl_set_rss(wl_peak_rss_kb(), wl_rss_kb());
    wl_report(ops, secs);
    return 0;
}
