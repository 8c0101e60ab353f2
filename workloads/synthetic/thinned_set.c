/* thinned-set: a program that drops most of a medium working set and goes on lightly. One
 * thread takes about 48 MiB in blocks of 40-96 KiB, frees 7 in 8 of them at random (what is
 * left keeps every chunk, page or span of the allocator in use), then for 3 s takes and frees
 * 4 blocks every 20 ms. An allocator that gives back only wholly free chunks keeps the pages
 * of the holes for good. Reported: rss_full_kb (the set taken), rss_thinned_kb (right after
 * the thinning) and rss_after_kb (after the light phase). ops = allocations. */
#include "wl.h"

#include <time.h>

static const struct wl_spec spec = {
    .name = "thinned-set",
    .summary = "48 MiB of 40-96 KiB blocks, 7 in 8 freed, then 3 s of light use: RSS after",
    .threads = 1,
    .quick = 0.5,
    .tiny = 0.05,
    .latency = 0,
};

#define LIGHT_STEP_MS 20
#define LIGHT_BLOCKS 4

static long rss_full, rss_thinned, rss_after;

static size_t pick(struct wl_ctx *c) { return wl_range(&c->rng, 40 << 10, 96 << 10); }

static void *run(void *arg) {
    struct wl_worker *w = arg;
    struct wl_ctx *c = &w->c;
    size_t want = wl_scaled(48 << 20, 1 << 20), held = 0, n = 0, cap = want / (40 << 10) + 1;
    struct wl_block *set = calloc(cap, sizeof *set);
    if (!set) wl_oom("calloc", cap * sizeof *set);
    while (held < want && n < cap) {
        wl_block_take(c, &set[n], pick(c));
        held += set[n++].n;
    }
    if (c->id == 0) rss_full = wl_rss_kb();
    for (size_t i = 0; i < n; i++)
        if (wl_below(&c->rng, 8) != 0) {
            wl_block_drop(c, &set[i]);
            set[i].p = NULL;
        }
    if (c->id == 0) rss_thinned = wl_rss_kb();
    /* Light use for 3 s (0.3 s at the tiny scale): the program keeps calling the allocator, so
     * a purge that waits for a later call gets one. */
    int steps = (wl.scale <= spec.tiny ? 300 : 3000) / LIGHT_STEP_MS;
    struct timespec step = {0, LIGHT_STEP_MS * 1000000L};
    for (int s = 0; s < steps; s++) {
        struct wl_block b[LIGHT_BLOCKS];
        for (int k = 0; k < LIGHT_BLOCKS; k++) wl_block_take(c, &b[k], pick(c));
        for (int k = 0; k < LIGHT_BLOCKS; k++) wl_block_drop(c, &b[k]);
        nanosleep(&step, NULL);
    }
    if (c->id == 0) rss_after = wl_rss_kb();
    for (size_t i = 0; i < n; i++)
        if (set[i].p) wl_block_drop(c, &set[i]);
    free(set);
    return NULL;
}

int main(int argc, char **argv) {
    wl_init(&spec, argc, argv);
    uint64_t ops = 0;
    double secs = wl_run_workers(run, 0, NULL, &ops);
    wl_set_rss(wl_peak_rss_kb(), wl_rss_kb());
    wl_extra("rss_full_kb", (double)rss_full);
    wl_extra("rss_thinned_kb", (double)rss_thinned);
    wl_extra("rss_after_kb", (double)rss_after);
    wl_report(ops, secs);
    return 0;
}
