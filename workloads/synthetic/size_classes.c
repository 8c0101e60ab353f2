/* size-classes: malloc/free pairs for every size class from 16 B to 32 KiB, the fast path
 * an allocator is judged by. Classes: 16-byte steps to 128 B, then four per doubling.
 * Each round makes a run of pairs in every class (a block is filled, verified and freed
 * before the next malloc), in a shuffled class order per round. ops = allocations. */
#include "wl.h"

static const struct wl_spec spec = {
    .name = "size-classes",
    .summary = "malloc/free pairs per size class, 16 B to 32 KiB (the fast path)",
    .threads = 1,
    .quick = 0.1,
    .tiny = 0.01,
    .latency = 1,
};

#define MAX_CLASSES 64
#define RUN 256 /* pairs per class per round */

static size_t classes[MAX_CLASSES];
static int nclasses;

static void make_classes(void) {
    for (size_t s = 16; s <= 128; s += 16) classes[nclasses++] = s;
    for (size_t base = 128; base < 32768; base *= 2)
        for (size_t q = 1; q <= 4; q++) classes[nclasses++] = base + q * base / 4;
}

static void *run(void *arg) {
    struct wl_worker *w = arg;
    struct wl_ctx *c = &w->c;
    int order[MAX_CLASSES];
    for (int i = 0; i < nclasses; i++) order[i] = i;
    while (c->ops < w->allocs) {
        for (int i = nclasses - 1; i > 0; i--) {
            int j = (int)wl_below(&c->rng, (uint64_t)i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (int i = 0; i < nclasses; i++) {
            size_t n = classes[order[i]];
            for (int k = 0; k < RUN; k++) {
                void *p = wl_malloc(c, n);
                wl_fill_block(p, n);
                wl_check_block(p, n);
                wl_free(c, p);
            }
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    wl_init(&spec, argc, argv);
    make_classes();
    uint64_t ops = 0;
    double secs = wl_run_workers(run, wl_scaled(40e6, 20000), NULL, &ops);
    wl_extra("classes", nclasses);
    wl_report(ops, secs);
    return 0;
}
