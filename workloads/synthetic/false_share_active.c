/* false-share-active: active false sharing. Every thread allocates small objects and writes
 * them at once; an allocator that carves the threads' objects from one shared region
 * places them in the same cache lines and the writes bounce those lines between cores.
 * ops = allocations, each followed by 1000 word writes. */
#include "wl.h"

static const struct wl_spec spec = {
    .name = "false-share-active",
    .summary = "threads allocate small objects and write them at once (active false sharing)",
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
    while (c->ops < w->allocs) {
        void *p = wl_malloc(c, OBJ);
        wl_hammer(p, OBJ, WRITES);
        wl_free(c, p);
    }
    return NULL;
}

int main(int argc, char **argv) {
    wl_init(&spec, argc, argv);
    uint64_t ops = 0;
    double secs = wl_run_workers(run, wl_scaled(1.5e6, 100), NULL, &ops);
    wl_extra("writes_per_object", WRITES);
    wl_report(ops, secs);
    return 0;
}
