/* thread-churn: generations of short-lived threads. Each thread frees the objects a thread
 * of the previous generation left behind (that thread has exited: its cache is gone), then
 * allocates 2000 objects of 16 B-4 KiB, frees three in four and leaves the rest behind as
 * it exits. ops = allocations. */
#include "wl.h"

static const struct wl_spec spec = {
    .name = "thread-churn",
    .summary = "generations of threads that leave objects behind at exit for the next to free",
    .threads = 2,
    .quick = 0.1,
    .tiny = 0.01,
    .latency = 0,
};

#define PER_THREAD 2000
#define LEFT (PER_THREAD / 4)

struct shared {
    struct wl_block (*left)[LEFT]; /* per thread slot: what it leaves behind */
    int gen;
};

static void *run(void *arg) {
    struct wl_worker *w = arg;
    struct wl_ctx *c = &w->c;
    struct shared *sh = w->shared;
    int n = wl.threads, id = c->id;
    wl_rng_seed(&c->rng, (uint64_t)sh->gen << 16 | (uint64_t)id);
    /* The leftovers of another thread of the last generation. */
    struct wl_block *prev = sh->left[(sh->gen & 1) * n + (id + 1) % n];
    for (int i = 0; i < LEFT; i++) {
        if (prev[i].p) {
            wl_check_block(prev[i].p, prev[i].n);
            wl_free(c, prev[i].p);
            prev[i].p = NULL;
        }
    }
    struct wl_block *mine = sh->left[((sh->gen + 1) & 1) * n + id];
    struct wl_block tmp[PER_THREAD];
    for (int i = 0; i < PER_THREAD; i++) {
        tmp[i].n = wl_log_uniform(&c->rng, 16, 4096);
        tmp[i].p = wl_malloc(c, tmp[i].n);
        wl_fill_block(tmp[i].p, tmp[i].n);
    }
    for (int i = 0; i < PER_THREAD; i++) {
        if (i % 4 == 0) {
            mine[i / 4] = tmp[i];
        } else {
            wl_check_block(tmp[i].p, tmp[i].n);
            wl_free(c, tmp[i].p);
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    wl_init(&spec, argc, argv);
    int n = wl.threads;
    struct shared sh = {.left = calloc(2 * (size_t)n, sizeof *sh.left)};
    if (!sh.left) wl_oom("calloc", 2 * (size_t)n * sizeof *sh.left);
    int gens = (int)(wl_scaled(6000, 2) / (size_t)n);
    if (gens < 2) gens = 2;
    uint64_t ops = 0;
    double secs = 0;
    for (sh.gen = 0; sh.gen < gens; sh.gen++)
        secs += wl_run_workers(run, (uint64_t)n * PER_THREAD, &sh, &ops);
    struct wl_ctx c;
    wl_ctx_init(&c, 0, 0);
    for (int i = 0; i < 2 * n * LEFT; i++) {
        struct wl_block *b = &sh.left[0][0] + i;
        if (b->p) {
            wl_check_block(b->p, b->n);
            wl_free(&c, b->p);
        }
    }
    wl_extra("generations", gens);
    wl_report(ops, secs);
    free(sh.left);
    return 0;
}
