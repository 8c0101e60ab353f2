/* medium-mt: medium sizes on several threads. Each thread replaces random blocks of 1 KiB
 * to 256 KiB (log-uniform) in its own set of 128, the range between the small-object fast
 * path and the large/huge tier. --set, --min-size and --max-size change the set; the manifest's
 * oversub-purge runs it with 16 threads on 9 KiB-3 MiB blocks, sets of 16: more threads than
 * CPUs, each free reaching a lock of the arena or heap tier (and under an allocator that
 * purges at once, a system call), and huge-blocks runs one thread on 32-128 MiB blocks in a set
 * of 2, the sizes that glibc maps one by one. ops = allocations. */
#include "wl.h"

static const struct wl_spec spec = {
    .name = "medium-mt",
    .summary = "multi-thread random replacement of 1 KiB-256 KiB blocks",
    .threads = 2,
    .quick = 0.1,
    .tiny = 0.01,
    .latency = 1,
    .set = 128,
    .min_size = 1 << 10,
    .max_size = 256 << 10,
};

static size_t size(struct wl_ctx *c) { return wl_log_uniform(&c->rng, wl.min_size, wl.max_size); }

int main(int argc, char **argv) {
    wl_init(&spec, argc, argv);
    uint64_t ops = 0;
    double secs = wl_run_wset((size_t)wl.set, size, wl_scaled(5e6, 1), &ops);
    wl_set_rss(wl_peak_rss_kb(), wl_rss_kb());
    wl_report(ops, secs);
    return 0;
}
