/* larson: follows Larson and Krishnan's server benchmark (ISMM 1998; `larsonN` in
 * mimalloc-bench). Each thread owns a slice of a shared array of blocks and replaces random
 * blocks of it with new ones of 10-1000 B (uniform). After a number of replacements the
 * thread starts its successor on the same slice and ends, so every generation frees blocks
 * that an ended thread allocated, and threads come and go all the time.
 *
 * How it differs: the original runs for a fixed time and reports throughput; this one does a
 * fixed number of generations, so that the bench's timed runs and intervals apply
 * (ops_per_sec is in the result line too). The main thread fills the slices first and frees
 * the last generation's blocks at the end, both inside the timed section. --set, --min-size
 * and --max-size change the slice and the sizes. ops = allocations. */
#include "wl.h"

#include <pthread.h>
#include <string.h>

static const struct wl_spec spec = {
    .name = "larson",
    .summary = "server simulation: threads replace 10-1000 B blocks in their slice, then hand "
               "it to a new thread",
    .threads = 2,
    .quick = 0.1,
    .tiny = 0.01,
    .latency = 1,
    .set = 5000,
    .min_size = 10,
    .max_size = 1000,
};

/* Replacements per generation, in slices: each generation replaces a slice twice over. */
#define TURNS 2

struct slice {
    struct wl_ctx c; /* carried from each generation to the next: one stream of sizes */
    struct wl_block *b;
    uint64_t gens_left;
};

/* Chains still running; the main thread waits for 0. */
static pthread_mutex_t done_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;
static int chains;

static void start(struct slice *s);

static void *generation(void *arg) {
    struct slice *s = arg;
    struct wl_ctx *c = &s->c;
    for (uint64_t k = 0; k < (uint64_t)wl.set * TURNS; k++) {
        struct wl_block *b = &s->b[wl_below(&c->rng, (uint64_t)wl.set)];
        wl_block_drop(c, b);
        wl_block_take(c, b, wl_range(&c->rng, wl.min_size, wl.max_size));
    }
    if (--s->gens_left > 0) {
        start(s);
        return NULL;
    }
    pthread_mutex_lock(&done_m);
    if (--chains == 0) pthread_cond_signal(&done_cv);
    pthread_mutex_unlock(&done_m);
    return NULL;
}

/* Detached: nobody joins a generation, as nobody does in a server whose threads come and go. */
static void start(struct slice *s) {
    pthread_attr_t a;
    pthread_t t;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    int e = pthread_create(&t, &a, generation, s);
    if (e) wl_die("pthread_create: %s", strerror(e));
    pthread_attr_destroy(&a);
}

int main(int argc, char **argv) {
    wl_init(&spec, argc, argv);
    int n = wl.threads;
    uint64_t per_gen = (uint64_t)wl.set * TURNS;
    uint64_t gens = wl_scaled(20e6, 1) / ((uint64_t)n * per_gen);
    if (gens < 2) gens = 2;
    struct slice *s = calloc((size_t)n, sizeof *s);
    if (!s) wl_oom("calloc", (size_t)n * sizeof *s);
    for (int i = 0; i < n; i++) {
        wl_ctx_init(&s[i].c, i, gens * per_gen + (uint64_t)wl.set);
        s[i].b = calloc((size_t)wl.set, sizeof *s[i].b);
        if (!s[i].b) wl_oom("calloc", (size_t)wl.set * sizeof *s[i].b);
        s[i].gens_left = gens;
    }
    double t0 = wl_now();
    for (int i = 0; i < n; i++)
        for (int j = 0; j < wl.set; j++)
            wl_block_take(&s[i].c, &s[i].b[j], wl_range(&s[i].c.rng, wl.min_size, wl.max_size));
    chains = n;
    for (int i = 0; i < n; i++) start(&s[i]);
    pthread_mutex_lock(&done_m);
    while (chains > 0) pthread_cond_wait(&done_cv, &done_m);
    pthread_mutex_unlock(&done_m);
    uint64_t ops = 0;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < wl.set; j++) wl_block_drop(&s[i].c, &s[i].b[j]);
        ops += s[i].c.ops;
        free(s[i].b);
    }
    double secs = wl_now() - t0;
    free(s);
    wl_extra("generations", (double)gens);
    wl_extra("threads_started", (double)(gens * (uint64_t)n));
    wl_report(ops, secs);
    return 0;
}
