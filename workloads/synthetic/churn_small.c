/* churn-small: one thread churning many short-lived small objects (8-256 B), as symbolic or
 * bignum code does: each step builds a burst of 1-64 temporaries, frees them LIFO or FIFO,
 * and keeps one in four results in a long-lived pool (replacing an older one). With
 * --threads N, N independent copies share the work. ops = allocations. */
#include "wl.h"

#include <string.h>

static const struct wl_spec spec = {
    .name = "churn-small",
    .summary = "single-thread churn of short-lived 8-256 B objects (bursts, LIFO/FIFO frees)",
    .threads = 1,
    .quick = 0.1,
    .tiny = 0.01,
    .latency = 1,
};

#define BURST 64
#define POOL 4096

struct worker {
    struct wl_ctx c;
    size_t allocs;
};

static void *run(void *arg) {
    struct worker *w = arg;
    struct wl_ctx *c = &w->c;
    void *tmp[BURST], *pool[POOL] = {0};
    size_t tmp_n[BURST], pool_n[POOL] = {0};

    while (c->ops < w->allocs) {
        size_t k = wl_range(&c->rng, 1, BURST);
        for (size_t i = 0; i < k; i++) {
            tmp_n[i] = wl_log_uniform(&c->rng, 8, 256);
            tmp[i] = wl_malloc(c, tmp_n[i]);
            wl_fill_block(tmp[i], tmp_n[i]);
        }
        /* One result outlives the burst. */
        size_t keep = (wl_next(&c->rng) & 3) == 0 ? wl_below(&c->rng, k) : BURST;
        int lifo = wl_next(&c->rng) & 1;
        for (size_t j = 0; j < k; j++) {
            size_t i = lifo ? k - 1 - j : j;
            if (i == keep) {
                size_t s = wl_below(&c->rng, POOL);
                if (pool[s]) {
                    wl_check_block(pool[s], pool_n[s]);
                    wl_free(c, pool[s]);
                }
                pool[s] = tmp[i];
                pool_n[s] = tmp_n[i];
                continue;
            }
            wl_check_block(tmp[i], tmp_n[i]);
            wl_free(c, tmp[i]);
        }
    }
    for (size_t s = 0; s < POOL; s++) {
        if (pool[s]) {
            wl_check_block(pool[s], pool_n[s]);
            wl_free(c, pool[s]);
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    wl_init(&spec, argc, argv);
    size_t total = wl_scaled(40e6, 1000);
    struct worker w[wl.threads];
    memset(w, 0, sizeof w);
    for (int i = 0; i < wl.threads; i++) {
        w[i].allocs = total / (size_t)wl.threads;
        wl_ctx_init(&w[i].c, i, w[i].allocs);
    }
    double t0 = wl_now();
    wl_run_threads(wl.threads, run, w, sizeof w[0]);
    double secs = wl_now() - t0;
    uint64_t ops = 0;
    for (int i = 0; i < wl.threads; i++) ops += w[i].c.ops;
    wl_report(ops, secs);
    return 0;
}
