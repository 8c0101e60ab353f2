/* thread-phases: random lifetimes over generations of threads. Each phase starts fresh
 * threads; each replaces random objects in a local set with blocks of power-of-two sizes
 * (8 B-8 KiB, and 1 in 8192 a giant 1-8 MiB block). One replaced object in 16 moves to a
 * global table instead of being freed, displacing an older one there, and at exit a thread
 * leaves a quarter of its set in that table: objects outlive the threads that allocated
 * them and are freed by later generations. ops = allocations. */
#include "wl.h"

static const struct wl_spec spec = {
    .name = "thread-phases",
    .summary = "random lifetimes, power-of-two sizes, rare giant blocks; threads recreated per "
               "phase, some objects survive them",
    .threads = 2,
    .quick = 0.1,
    .tiny = 0.01,
    .latency = 0,
};

#define LOCAL 2048
#define GLOBAL 16384
#define PHASES 40

struct shared {
    struct wl_xtable *g;
    int phase;
};

static size_t pick_size(struct wl_rng *r) {
    if (wl_below(r, 8192) == 0) return (size_t)1 << wl_range(r, 20, 23);
    return (size_t)1 << wl_range(r, 3, 13);
}

static void release(struct wl_ctx *c, struct wl_block b) {
    if (b.p) {
        wl_check_block(b.p, b.n);
        wl_free(c, b.p);
    }
}

/* Put b in a random slot of the global table, free the block it displaces. */
static void survive(struct wl_ctx *c, struct wl_xtable *g, struct wl_block b) {
    release(c, wl_xtable_swap(g, wl_below(&c->rng, GLOBAL), b));
}

static void *run(void *arg) {
    struct wl_worker *w = arg;
    struct wl_ctx *c = &w->c;
    struct shared *sh = w->shared;
    struct wl_xtable *g = sh->g;
    /* The threads of each phase are new: give them their own PRNG streams. */
    wl_rng_seed(&c->rng, (uint64_t)sh->phase << 16 | (uint64_t)c->id);
    struct wl_block *set = calloc(LOCAL, sizeof *set);
    if (!set) wl_oom("calloc", LOCAL * sizeof *set);
    while (c->ops < w->allocs) {
        struct wl_block *b = &set[wl_below(&c->rng, LOCAL)];
        if (b->p && wl_below(&c->rng, 16) == 0)
            survive(c, g, *b);
        else
            release(c, *b);
        b->n = pick_size(&c->rng);
        b->p = wl_malloc(c, b->n);
        wl_fill_block(b->p, b->n);
    }
    for (int i = 0; i < LOCAL; i++) {
        if (set[i].p && wl_below(&c->rng, 4) == 0)
            survive(c, g, set[i]);
        else
            release(c, set[i]);
    }
    free(set);
    return NULL;
}

int main(int argc, char **argv) {
    wl_init(&spec, argc, argv);
    struct shared sh = {.g = wl_xtable_new(GLOBAL)};
    struct wl_xtable *g = sh.g;
    uint64_t per_phase = wl_scaled(25e6, 10000) / PHASES;
    uint64_t ops = 0;
    double secs = 0;
    for (sh.phase = 0; sh.phase < PHASES; sh.phase++)
        secs += wl_run_workers(run, per_phase, &sh, &ops);
    struct wl_ctx c;
    wl_ctx_init(&c, 0, 0);
    double t0 = wl_now();
    for (size_t i = 0; i < GLOBAL; i++) release(&c, wl_xtable_swap(g, i, (struct wl_block){0}));
    secs += wl_now() - t0;
    wl_extra("phases", PHASES);
    wl_report(ops, secs);
    return 0;
}
