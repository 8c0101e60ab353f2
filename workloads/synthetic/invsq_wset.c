/* invsq-wset: a working set of 100000 objects under random free+malloc, sizes from 4 B to
 * 32 KiB with density falling as 1/size^2 (most objects tiny, a long tail of big ones), as
 * object sizes in many programs are. With --threads N, N independent sets share the work.
 * ops = allocations. */
#include "wl.h"

static const struct wl_spec spec = {
    .name = "invsq-wset",
    .summary = "working set with random free+malloc, 4 B-32 KiB sizes with 1/size^2 density",
    .threads = 1,
    .quick = 0.1,
    .tiny = 0.01,
    .latency = 1,
};

#define SET 100000
#define MIN 4
#define MAX 32768

static size_t invsq(struct wl_ctx *c) { return wl_invsq(&c->rng, MIN, MAX); }

int main(int argc, char **argv) {
    wl_init(&spec, argc, argv);
    uint64_t ops = 0;
    double secs = wl_run_wset(SET, invsq, wl_scaled(30e6, 1), &ops);
    wl_report(ops, secs);
    return 0;
}
