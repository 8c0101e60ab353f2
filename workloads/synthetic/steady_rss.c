/* steady-rss: a long run whose RSS is sampled over time (from /proc/self/statm) for a
 * memory-over-time plot. Each thread holds a set of blocks (16 B-16 KiB log-uniform, 1 in
 * 512 of them 64 KiB-1 MiB) and goes through: fill the set; steady random replacement;
 * free three quarters; steady replacement in the remaining quarter; refill; steady
 * replacement; free all. The plot shows whether freed memory goes back to the system and
 * whether a steady state stays flat. ops = allocations. */
#include "wl.h"

#include <pthread.h>

static const struct wl_spec spec = {
    .name = "steady-rss",
    .summary = "long steady state with phases of growth and release; RSS sampled over time",
    .threads = 2,
    .quick = 0.1,
    .tiny = 0.01,
    .latency = 0,
};

struct shared {
    size_t slots;    /* per thread */
    uint64_t steady; /* replacements per steady phase, per thread */
};

static void take(struct wl_ctx *c, struct wl_block *b) {
    b->n = wl_below(&c->rng, 512) ? wl_log_uniform(&c->rng, 16, 16 << 10)
                                  : wl_log_uniform(&c->rng, 64 << 10, 1 << 20);
    b->p = wl_malloc(c, b->n);
    wl_fill_block(b->p, b->n);
}

static void drop(struct wl_ctx *c, struct wl_block *b) {
    wl_check_block(b->p, b->n);
    wl_free(c, b->p);
    b->p = NULL;
}

/* Replace random blocks among those with index % stride == 0. */
static void steady(struct wl_ctx *c, struct wl_block *set, size_t slots, size_t stride,
                   uint64_t count) {
    size_t n = (slots + stride - 1) / stride;
    for (uint64_t k = 0; k < count; k++) {
        struct wl_block *b = &set[wl_below(&c->rng, n) * stride];
        drop(c, b);
        take(c, b);
    }
}

static void *run(void *arg) {
    struct wl_worker *w = arg;
    struct shared *sh = w->shared;
    struct wl_ctx *c = &w->c;
    size_t s = sh->slots;
    struct wl_block *set = calloc(s, sizeof *set);
    if (!set) wl_oom("calloc", s * sizeof *set);
    for (size_t i = 0; i < s; i++) take(c, &set[i]);
    steady(c, set, s, 1, sh->steady);
    for (size_t i = 0; i < s; i++)
        if (i % 4) drop(c, &set[i]);
    steady(c, set, s, 4, sh->steady);
    for (size_t i = 0; i < s; i++)
        if (i % 4) take(c, &set[i]);
    steady(c, set, s, 1, sh->steady);
    for (size_t i = 0; i < s; i++) drop(c, &set[i]);
    free(set);
    return NULL;
}

int main(int argc, char **argv) {
    wl_init(&spec, argc, argv);
    struct shared sh = {
        .slots = wl_scaled(40000.0 / wl.threads, 100),
        .steady = wl_scaled(6e6 / wl.threads, 1000),
    };
    uint64_t ops = 0;
    wl_sampler_start();
    double secs = wl_run_workers(run, 0, &sh, &ops);
    wl_sampler_stop();
    wl_set_rss(wl_peak_rss_kb(), wl_rss_kb());
    wl_report(ops, secs);
    return 0;
}
