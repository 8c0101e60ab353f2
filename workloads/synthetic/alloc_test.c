/* alloc-test: follows OLogN Technologies' alloc-test (`alloc-test1` and `alloc-testN` in
 * mimalloc-bench): intensive allocation with sizes from a Pareto distribution, objects up to
 * 1 KiB, in a working set whose blocks are replaced at random. --threads N runs N threads,
 * each on its own set; the manifest runs it on one thread and on two.
 *
 * How it differs: written from that description; the working set is --set blocks per thread
 * (65536), sizes follow a Pareto law of index 1 from --min-size (8 B) cut at --max-size
 * (1 KiB), and every block is filled and verified. ops = allocations. */
#include "wl.h"

static const struct wl_spec spec = {
    .name = "alloc-test",
    .summary = "random replacement in a working set, Pareto sizes 8 B-1 KiB",
    .threads = 1,
    .quick = 0.1,
    .tiny = 0.01,
    .latency = 1,
    .set = 65536,
    .min_size = 8,
    .max_size = 1024,
};

/* Pareto of index 1 from --min-size: P(size > x) = min / x, cut at --max-size. */
static size_t pareto(struct wl_ctx *c) {
    double x = (double)wl.min_size / (1.0 - wl_unit(&c->rng));
    return x >= (double)wl.max_size ? wl.max_size : (size_t)x;
}

int main(int argc, char **argv) {
    wl_init(&spec, argc, argv);
    uint64_t ops = 0;
    double secs = wl_run_wset((size_t)wl.set, pareto, wl_scaled(30e6, 1), &ops);
    wl_report(ops, secs);
    return 0;
}
