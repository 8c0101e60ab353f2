/* realloc-huge: buffers grown by realloc far past the sizes glibc maps one by one, as a
 * program reading a large file or building a large array into one growing buffer does. Each
 * of --set buffers (default 2, grown in random turns) starts at --min-size (1 MiB) and grows
 * by half its size at each realloc up to a limit drawn log-uniform between a quarter of
 * --max-size and --max-size (128 MiB); then it is freed and a new one starts. After every
 * realloc the old contents are verified at the new address and the new part written. An
 * allocator that can grow a block where it lies (mremap of a mapping, a free neighbour)
 * touches only the new pages; one that copies writes the whole block again into pages it
 * faults in. ops = malloc and realloc calls. */
#include "wl.h"

static const struct wl_spec spec = {
    .name = "realloc-huge",
    .summary = "buffers grown by realloc by half their size each time, 1 MiB to 32-128 MiB",
    .threads = 1,
    .quick = 0.1,
    .tiny = 0.01,
    .latency = 0,
    .set = 2,
    .min_size = 1 << 20,
    .max_size = 128 << 20,
};

struct buf {
    void *p;
    size_t n, limit;
    uint64_t key; /* fixed per buffer: the contents move with realloc, the address not */
};

static void start(struct wl_ctx *c, struct buf *b) {
    size_t lo = wl.max_size / 4 > wl.min_size ? wl.max_size / 4 : wl.min_size;
    b->limit = wl_log_uniform(&c->rng, lo, wl.max_size);
    b->key = wl_next(&c->rng);
    b->n = wl.min_size;
    b->p = wl_malloc(c, b->n);
    wl_fill(b->p, b->n, b->key);
}

static void step(struct wl_ctx *c, struct buf *b) {
    if (b->n >= b->limit) {
        wl_check(b->p, b->n, b->key);
        free(b->p);
        start(c, b);
        return;
    }
    size_t n = b->n + b->n / 2;
    if (n > b->limit) n = b->limit;
    b->p = wl_realloc_filled(c, b->p, b->n, n, b->key);
    b->n = n;
}

static void *run(void *arg) {
    struct wl_worker *w = arg;
    struct wl_ctx *c = &w->c;
    size_t nb = (size_t)wl.set;
    struct buf *bufs = calloc(nb, sizeof *bufs);
    if (!bufs) wl_oom("calloc", nb * sizeof *bufs);
    for (size_t i = 0; i < nb; i++) start(c, &bufs[i]);
    while (c->ops < w->allocs) step(c, &bufs[wl_below(&c->rng, nb)]);
    for (size_t i = 0; i < nb; i++) {
        wl_check(bufs[i].p, bufs[i].n, bufs[i].key);
        free(bufs[i].p);
    }
    free(bufs);
    return NULL;
}

int main(int argc, char **argv) {
    wl_init(&spec, argc, argv);
    uint64_t ops = 0;
    double secs = wl_run_workers(run, wl_scaled(800, 8), NULL, &ops);
    wl_set_rss(wl_peak_rss_kb(), wl_rss_kb());
    wl_report(ops, secs);
    return 0;
}
