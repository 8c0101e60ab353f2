/* random-linear: random sizes from 8 to 16000 bytes, small ones more likely (the density
 * falls linearly with size), memory touched, cross-thread frees. Each thread replaces random
 * objects in its own set; every other new object goes to a table shared by all threads
 * instead, displacing (and freeing) whatever some thread put there. ops = allocations. */
#include "wl.h"

static const struct wl_spec spec = {
    .name = "random-linear",
    .summary = "random 8-16000 B sizes (linearly falling density), memory touched, cross-thread "
               "frees",
    .threads = 2,
    .quick = 0.1,
    .tiny = 0.01,
    .latency = 1,
};

#define LOCAL 1024
#define SHARED 4096

/* The smaller of two uniform draws has a density falling linearly to 0 at the top. */
static size_t linear_size(struct wl_rng *r) {
    uint64_t a = wl_below(r, 16000 - 8 + 1), b = wl_below(r, 16000 - 8 + 1);
    return 8 + (size_t)(a < b ? a : b);
}

static void release(struct wl_ctx *c, struct wl_block b) {
    if (b.p) {
        wl_check_block(b.p, b.n);
        wl_free(c, b.p);
    }
}

static void *run(void *arg) {
    struct wl_worker *w = arg;
    struct wl_ctx *c = &w->c;
    struct wl_xtable *g = w->shared;
    struct wl_block set[LOCAL] = {{0}};
    while (c->ops < w->allocs) {
        struct wl_block b = {.n = linear_size(&c->rng)};
        b.p = wl_malloc(c, b.n);
        wl_fill_block(b.p, b.n);
        if (wl_next(&c->rng) & 1) {
            release(c, wl_xtable_swap(g, wl_below(&c->rng, SHARED), b));
        } else {
            struct wl_block *s = &set[wl_below(&c->rng, LOCAL)];
            release(c, *s);
            *s = b;
        }
    }
    for (int i = 0; i < LOCAL; i++) release(c, set[i]);
    return NULL;
}

int main(int argc, char **argv) {
    wl_init(&spec, argc, argv);
    struct wl_xtable *g = wl_xtable_new(SHARED);
    uint64_t ops = 0;
    double secs = wl_run_workers(run, wl_scaled(10e6, 1000), g, &ops);
    struct wl_ctx c;
    wl_ctx_init(&c, 0, 0);
    double t0 = wl_now();
    for (size_t i = 0; i < SHARED; i++) release(&c, wl_xtable_swap(g, i, (struct wl_block){0}));
    secs += wl_now() - t0;
    wl_report(ops, secs);
    return 0;
}
