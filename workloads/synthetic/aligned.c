/* aligned: posix_memalign and aligned_alloc in turn, alignments 16 B to 2 MiB (7 in 8 of
 * them 16 B-4 KiB, the rest 8 KiB-2 MiB), sizes from a quarter of the alignment to twice
 * it (at least 8 B; a multiple of the alignment for aligned_alloc, as C11 asks), in a
 * working set of 256 blocks with random replacement. A misaligned pointer is an error.
 * ops = allocations. */
#include "wl.h"

#include <string.h>

static const struct wl_spec spec = {
    .name = "aligned",
    .summary = "posix_memalign and aligned_alloc, 16 B to 2 MiB alignment",
    .threads = 1,
    .quick = 0.1,
    .tiny = 0.01,
    .latency = 0,
};

#define SET 256

static void take(struct wl_ctx *c, struct wl_block *b) {
    unsigned k = wl_below(&c->rng, 8) ? (unsigned)wl_range(&c->rng, 4, 12)
                                      : (unsigned)wl_range(&c->rng, 13, 21);
    size_t align = (size_t)1 << k;
    size_t n = wl_range(&c->rng, align / 4, align * 2);
    if (n < 8) n = 8;
    void *p;
    if (c->ops & 1) {
        n = (n + align - 1) & ~(align - 1);
        p = aligned_alloc(align, n);
        if (!p) wl_oom("aligned_alloc", n);
    } else {
        int e = posix_memalign(&p, align, n);
        if (e) wl_die("posix_memalign(%zu, %zu) failed: %s", align, n, strerror(e));
    }
    if ((uintptr_t)p & (align - 1))
        wl_die("%s(%zu, %zu) returned %p: not aligned",
               c->ops & 1 ? "aligned_alloc" : "posix_memalign", align, n, p);
    c->ops++;
    b->p = p;
    b->n = n;
    wl_fill_block(p, n);
}

static void *run(void *arg) {
    struct wl_worker *w = arg;
    struct wl_ctx *c = &w->c;
    struct wl_block set[SET];
    for (int i = 0; i < SET; i++) take(c, &set[i]);
    while (c->ops < w->allocs) {
        struct wl_block *b = &set[wl_below(&c->rng, SET)];
        wl_check_block(b->p, b->n);
        free(b->p);
        take(c, b);
    }
    for (int i = 0; i < SET; i++) {
        wl_check_block(set[i].p, set[i].n);
        free(set[i].p);
    }
    return NULL;
}

int main(int argc, char **argv) {
    wl_init(&spec, argc, argv);
    uint64_t ops = 0;
    double secs = wl_run_workers(run, wl_scaled(300000, 1), NULL, &ops);
    wl_report(ops, secs);
    return 0;
}
