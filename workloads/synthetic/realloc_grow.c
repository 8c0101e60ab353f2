/* realloc-grow: 64 live buffers grown and shrunk by realloc, in random turns. A "vector"
 * doubles from 16 B to its limit (1 KiB-1 MiB, log-uniform) and then halves back; a
 * "string" grows by appends of 1-64 bytes up to 256 B-64 KiB and is then cut back by
 * halves. At 16 B a buffer is freed and a new one starts. After every realloc the old
 * contents are verified at the new address. ops = malloc and realloc calls. */
#include "wl.h"

static const struct wl_spec spec = {
    .name = "realloc-grow",
    .summary = "realloc growth (vector doubling, string appends) and shrinking",
    .threads = 1,
    .quick = 0.1,
    .tiny = 0.01,
    .latency = 0,
};

#define BUFS 64

struct buf {
    void *p;
    size_t n, limit;
    uint64_t key; /* fixed per buffer: the contents move with realloc, the address not */
    int string, shrinking;
};

static void start(struct wl_ctx *c, struct buf *b) {
    b->string = (int)(wl_next(&c->rng) & 1);
    b->limit = b->string ? wl_log_uniform(&c->rng, 256, 64 << 10)
                         : wl_log_uniform(&c->rng, 1 << 10, 1 << 20);
    b->shrinking = 0;
    b->key = wl_next(&c->rng);
    b->n = 16;
    b->p = wl_malloc(c, b->n);
    wl_fill(b->p, b->n, b->key);
}

static void step(struct wl_ctx *c, struct buf *b) {
    size_t n;
    if (b->shrinking)
        n = b->n / 2;
    else if (b->string)
        n = b->n + wl_range(&c->rng, 1, 64);
    else
        n = b->n * 2;
    if (n < 16) {
        wl_check(b->p, b->n, b->key);
        free(b->p);
        start(c, b);
        return;
    }
    b->p = wl_realloc_filled(c, b->p, b->n, n, b->key);
    b->n = n;
    if (n >= b->limit) b->shrinking = 1;
}

static void *run(void *arg) {
    struct wl_worker *w = arg;
    struct wl_ctx *c = &w->c;
    struct buf bufs[BUFS];
    for (int i = 0; i < BUFS; i++) start(c, &bufs[i]);
    while (c->ops < w->allocs) step(c, &bufs[wl_below(&c->rng, BUFS)]);
    for (int i = 0; i < BUFS; i++) {
        wl_check(bufs[i].p, bufs[i].n, bufs[i].key);
        free(bufs[i].p);
    }
    return NULL;
}

int main(int argc, char **argv) {
    wl_init(&spec, argc, argv);
    uint64_t ops = 0;
    double secs = wl_run_workers(run, wl_scaled(6e6, 1), NULL, &ops);
    wl_report(ops, secs);
    return 0;
}
