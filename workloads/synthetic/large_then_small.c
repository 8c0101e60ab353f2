/* large-then-small: what a one-thread program keeps after it frees a large block and goes on
 * with small allocations only, as one that reads a whole file into a buffer, parses it into
 * small objects and frees the buffer does. It takes --set blocks (default 1) of --min-size to
 * --max-size (128 MiB), writes every page, frees them, and then fills a set of 16 B-1 KiB
 * blocks of about half --max-size in all and replaces random ones. No call after the free
 * asks for a large block, so memory the allocator keeps for one stays resident beside the
 * small blocks: peak RSS is about --max-size for an allocator that gives the freed block
 * back and about 1.5 times that for one that keeps it. Also reported: the RSS just after the
 * free (rss_freed_kb) and at the end of the small phase (rss_small_kb). ops = allocations. */
#include "wl.h"

static const struct wl_spec spec = {
    .name = "large-then-small",
    .summary = "one thread frees a 128 MiB block, then allocates only 16 B-1 KiB blocks",
    .threads = 1,
    .quick = 0.1,
    .tiny = 0.01,
    .latency = 0,
    .set = 1,
    .min_size = 128 << 20,
    .max_size = 128 << 20,
};

#define SMALL_MIN 16
#define SMALL_MAX 1024

static long rss_freed, rss_small;

static size_t small_size(struct wl_ctx *c) { return wl_log_uniform(&c->rng, SMALL_MIN, SMALL_MAX); }

static void *run(void *arg) {
    struct wl_worker *w = arg;
    struct wl_ctx *c = &w->c;
    size_t nl = (size_t)wl.set;
    struct wl_block *large = calloc(nl, sizeof *large);
    if (!large) wl_oom("calloc", nl * sizeof *large);
    for (size_t i = 0; i < nl; i++)
        wl_block_take(c, &large[i], wl_log_uniform(&c->rng, wl.min_size, wl.max_size));
    for (size_t i = 0; i < nl; i++) wl_block_drop(c, &large[i]);
    free(large);
    rss_freed = wl_rss_kb();

    /* The mean of log-uniform 16 B-1 KiB is about 242 B. */
    size_t ns = wl.max_size / 2 / 242;
    struct wl_block *set = calloc(ns, sizeof *set);
    if (!set) wl_oom("calloc", ns * sizeof *set);
    for (size_t i = 0; i < ns; i++) wl_block_take(c, &set[i], small_size(c));
    while (c->ops < w->allocs) {
        struct wl_block *b = &set[wl_below(&c->rng, ns)];
        wl_block_drop(c, b);
        wl_block_take(c, b, small_size(c));
    }
    rss_small = wl_rss_kb();
    for (size_t i = 0; i < ns; i++) wl_block_drop(c, &set[i]);
    free(set);
    return NULL;
}

int main(int argc, char **argv) {
    wl_init(&spec, argc, argv);
    uint64_t ops = 0;
    double secs = wl_run_workers(run, wl_scaled(1e7, 1), NULL, &ops);
    wl_set_rss(wl_peak_rss_kb(), wl_rss_kb());
    wl_extra("rss_freed_kb", (double)rss_freed);
    wl_extra("rss_small_kb", (double)rss_small);
    wl_report(ops, secs);
    return 0;
}
