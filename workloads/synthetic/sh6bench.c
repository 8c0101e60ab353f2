/* sh6bench: follows MicroQuill's SmartHeap stress test sh6bench (as run by mimalloc-bench):
 * batches of blocks whose sizes sweep a range, some freed last-allocated-first (LIFO) and
 * the others in the order they were allocated, which is the reverse of what a LIFO free list
 * expects. Each round allocates a batch of --set blocks of sizes stepping from --min-size to
 * --max-size and around again, frees its second half newest first at once, and keeps the
 * first half until the next round, which frees it oldest first. --threads N runs N
 * independent copies.
 *
 * How it differs: written from that description, not from its source; sizes step through
 * the range by a prime stride instead of the original's size schedule, and blocks are filled
 * and verified. ops = allocations. */
#include "wl.h"

static const struct wl_spec spec = {
    .name = "sh6bench",
    .summary = "batches of sweeping sizes, half freed newest-first, half kept a round and "
               "freed oldest-first",
    .threads = 1,
    .quick = 0.1,
    .tiny = 0.01,
    .latency = 1,
    .set = 2000,
    .min_size = 1,
    .max_size = 1000,
};

/* Frees the blocks b[0..n) oldest first. */
static void drop_fifo(struct wl_ctx *c, struct wl_block *b, int n) {
    for (int i = 0; i < n; i++) wl_block_drop(c, &b[i]);
}

static void *run(void *arg) {
    struct wl_worker *w = arg;
    struct wl_ctx *c = &w->c;
    int n = wl.set, half = n / 2;
    struct wl_block *batch = calloc((size_t)n, sizeof *batch);
    struct wl_block *kept = calloc((size_t)half + 1, sizeof *kept);
    if (!batch || !kept) wl_oom("calloc", (size_t)n * sizeof *batch);
    size_t span = wl.max_size - wl.min_size + 1, step = 0;
    int have_kept = 0;
    while (c->ops < w->allocs) {
        for (int i = 0; i < n; i++) {
            step = (step + 97) % span;
            wl_block_take(c, &batch[i], wl.min_size + step);
        }
        for (int i = n - 1; i >= half; i--) wl_block_drop(c, &batch[i]);
        if (have_kept) drop_fifo(c, kept, half);
        for (int i = 0; i < half; i++) kept[i] = batch[i];
        have_kept = 1;
    }
    if (have_kept) drop_fifo(c, kept, half);
    free(batch);
    free(kept);
    return NULL;
}

int main(int argc, char **argv) {
    wl_init(&spec, argc, argv);
    uint64_t ops = 0;
    double secs = wl_run_workers(run, wl_scaled(25e6, 1), NULL, &ops);
    wl_report(ops, secs);
    return 0;
}
