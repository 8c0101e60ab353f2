/* false-share-passive: passive false sharing. The main thread allocates one small object
 * per thread (neighbours, likely in one cache line) and hands them out; each thread writes
 * its object, frees it, and then keeps allocating, writing and freeing small objects of its
 * own. An allocator that gives the freed neighbours back to the thread that freed them
 * keeps the threads writing into a shared cache line. ops = allocations, each followed by
 * 1000 word writes. */
#include "wl.h"

static const struct wl_spec spec = {
    .name = "false-share-passive",
    .summary = "objects allocated by one thread, written by others (passive false sharing)",
    .threads = 2,
    .quick = 0.1,
    .tiny = 0.01,
    .latency = 0,
};

#define OBJ 8
#define WRITES 1000

static void *run(void *arg) {
    struct wl_worker *w = arg;
    struct wl_ctx *c = &w->c;
    void *p = w->shared; /* the object main allocated for this thread */
    wl_hammer(p, OBJ, WRITES);
    wl_free(c, p);
    while (c->ops < w->allocs) {
        p = wl_malloc(c, OBJ);
        wl_hammer(p, OBJ, WRITES);
        wl_free(c, p);
    }
    return NULL;
}

int main(int argc, char **argv) {
    wl_init(&spec, argc, argv);
    struct wl_ctx main_ctx;
    wl_ctx_init(&main_ctx, 1000, 0);
    uint64_t allocs = wl_scaled(1.5e6, 100) / (uint64_t)wl.threads;
    struct wl_worker w[wl.threads];
    for (int i = 0; i < wl.threads; i++) {
        w[i].allocs = allocs;
        w[i].shared = wl_malloc(&main_ctx, OBJ);
        wl_ctx_init(&w[i].c, i, allocs);
    }
    double t0 = wl_now();
    wl_run_threads(wl.threads, run, w, sizeof w[0]);
    double secs = wl_now() - t0;
    uint64_t ops = main_ctx.ops;
    for (int i = 0; i < wl.threads; i++) ops += w[i].c.ops;
    wl_extra("writes_per_object", WRITES);
    wl_report(ops, secs);
    return 0;
}
