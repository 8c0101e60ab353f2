/* calloc-zero: calloc-heavy work on fresh and reused memory. A working set of 1024 blocks
 * is replaced at random by calloc(count, size) blocks of 16 B-64 KiB (1 in 256 of them
 * 256 KiB-4 MiB); each new block is checked to be zero (every word up to 64 KiB, one word
 * per 64 B above) and then dirtied with the pattern, so reused memory really must be
 * cleared. Also checks once that an overflowing count*size fails. ops = allocations. */
#include "wl.h"

#include <errno.h>
#include <string.h>

static const struct wl_spec spec = {
    .name = "calloc-zero",
    .summary = "calloc of fresh and reused memory, zeroing verified",
    .threads = 1,
    .quick = 0.1,
    .tiny = 0.01,
    .latency = 0,
};

#define SET 1024

static void check_zero(const void *p, size_t n) {
    const unsigned char *b = p;
    size_t step = n <= (64 << 10) ? 8 : 64;
    for (size_t off = 0; off + 8 <= n; off += step) {
        uint64_t v;
        memcpy(&v, b + off, 8);
        if (v) wl_die("calloc block %p (size %zu) not zero at offset %zu", p, n, off);
    }
    for (size_t off = n & ~(size_t)7; off < n; off++)
        if (b[off]) wl_die("calloc block %p (size %zu) not zero at offset %zu", p, n, off);
}

static void take(struct wl_ctx *c, struct wl_block *b) {
    size_t n = wl_below(&c->rng, 256) ? wl_log_uniform(&c->rng, 16, 64 << 10)
                                      : wl_log_uniform(&c->rng, 256 << 10, 4 << 20);
    /* count * size with a size of 1, 8, 16 or 24 bytes, as arrays of small structs. */
    static const size_t elem[] = {1, 8, 16, 24};
    size_t e = elem[wl_below(&c->rng, 4)], count = (n + e - 1) / e;
    b->n = count * e;
    b->p = calloc(count, e);
    if (!b->p) wl_oom("calloc", b->n);
    c->ops++;
    check_zero(b->p, b->n);
    wl_fill_block(b->p, b->n);
}

static void *run(void *arg) {
    struct wl_worker *w = arg;
    struct wl_ctx *c = &w->c;
    struct wl_block *set = calloc(SET, sizeof *set);
    if (!set) wl_oom("calloc", SET * sizeof *set);
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
    free(set);
    return NULL;
}

int main(int argc, char **argv) {
    wl_init(&spec, argc, argv);
    /* An overflowing count*size must fail: a block smaller than asked for is a memory
     * error waiting to happen. POSIX also wants errno = ENOMEM, which some allocators skip;
     * that is reported (calloc_overflow_enomem), not failed. volatile: the compiler would
     * reject the constant overflow. */
    volatile size_t huge = SIZE_MAX / 8 + 1;
    errno = 0;
    void *bad = calloc(huge, 16);
    if (bad) wl_die("calloc(SIZE_MAX/8+1, 16) returned %p: an overflowing calloc must fail", bad);
    wl_extra("calloc_overflow_enomem", errno == ENOMEM);
    uint64_t ops = 0;
    double secs = wl_run_workers(run, wl_scaled(1.5e6, 1), NULL, &ops);
    wl_report(ops, secs);
    return 0;
}
