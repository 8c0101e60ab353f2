/* fragmentation: allocate many small blocks (16-96 B), free every other one, then allocate
 * half as many larger blocks (128-512 B) that cannot use the holes; then free everything.
 * Two rounds. Reports peak RSS (VmHWM), RSS with the holes, at the peak of the larger
 * blocks, and after everything was freed, next to the bytes the program holds at its
 * peak (live_peak_kb): their ratio is the fragmentation cost. ops = allocations. */
#include "wl.h"

static const struct wl_spec spec = {
    .name = "fragmentation",
    .summary = "allocate many, free every other one, allocate larger; peak and final RSS",
    .threads = 1,
    .quick = 0.1,
    .tiny = 0.01,
    .latency = 0,
};

#define ROUNDS 2

int main(int argc, char **argv) {
    wl_init(&spec, argc, argv);
    size_t n = wl_scaled(2.5e6, 1000);
    struct wl_ctx c;
    wl_ctx_init(&c, 0, ROUNDS * (n + n / 2));
    struct wl_block *small = calloc(n, sizeof *small), *large = calloc(n / 2, sizeof *large);
    if (!small || !large) wl_oom("calloc", n * sizeof *small);
    long rss_holes = 0, rss_large = 0;
    size_t live = 0, live_peak = 0;

    double t0 = wl_now();
    for (int r = 0; r < ROUNDS; r++) {
        for (size_t i = 0; i < n; i++) {
            small[i].n = wl_range(&c.rng, 16, 96);
            small[i].p = wl_malloc(&c, small[i].n);
            wl_fill_block(small[i].p, small[i].n);
            live += small[i].n;
        }
        for (size_t i = 0; i < n; i += 2) {
            wl_check_block(small[i].p, small[i].n);
            wl_free(&c, small[i].p);
            live -= small[i].n;
        }
        if (r == 0) rss_holes = wl_rss_kb();
        for (size_t i = 0; i < n / 2; i++) {
            large[i].n = wl_range(&c.rng, 128, 512);
            large[i].p = wl_malloc(&c, large[i].n);
            wl_fill_block(large[i].p, large[i].n);
            live += large[i].n;
        }
        if (live > live_peak) live_peak = live;
        if (r == 0) rss_large = wl_rss_kb();
        for (size_t i = 1; i < n; i += 2) {
            wl_check_block(small[i].p, small[i].n);
            wl_free(&c, small[i].p);
            live -= small[i].n;
        }
        for (size_t i = 0; i < n / 2; i++) {
            wl_check_block(large[i].p, large[i].n);
            wl_free(&c, large[i].p);
            live -= large[i].n;
        }
    }
    double secs = wl_now() - t0;
    wl_set_rss(wl_peak_rss_kb(), wl_rss_kb());
    wl_extra("rss_holes_kb", (double)rss_holes);
    wl_extra("rss_larger_kb", (double)rss_large);
    wl_extra("live_peak_kb", (double)(live_peak / 1024));
    wl_report(c.ops, secs);
    free(small);
    free(large);
    return 0;
}
