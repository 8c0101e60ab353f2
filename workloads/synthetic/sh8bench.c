/* sh8bench: follows MicroQuill's SmartHeap stress test sh8bench (`sh8benchN` in
 * mimalloc-bench): sh6bench's batches on several threads, with some blocks freed by a thread
 * other than the one that allocated them. Each round a thread allocates a batch of --set
 * blocks of sizes stepping through --min-size..--max-size, frees its second half newest
 * first, and hands the first half to the next thread of a ring, which frees it oldest first.
 *
 * How it differs: written from that description, not from its source; the hand-off is a
 * mailbox of up to 4 halves per thread, and a thread that finds the next mailbox full frees
 * what waits in its own meanwhile (so the ring cannot deadlock). The array that carries a
 * half to the next thread comes from malloc too and is freed there; it is not counted in ops.
 * Blocks are filled and verified. ops = allocations of blocks. */
#include "wl.h"

#include <pthread.h>

static const struct wl_spec spec = {
    .name = "sh8bench",
    .summary = "sh6bench's batches on a ring of threads: half of each batch freed by the next "
               "thread",
    .threads = 2,
    .quick = 0.1,
    .tiny = 0.01,
    .latency = 1,
    .set = 2000,
    .min_size = 1,
    .max_size = 1000,
};

/* A thread's box holds up to BOX halves, so that a thread seldom waits for the next. */
#define BOX 4

struct ring {
    pthread_mutex_t m;
    pthread_cond_t cv;
    struct wl_block *
        *box;   /* box[i]: the halves waiting for thread i, linked through their last slot */
    int *count; /* count[i]: how many */
    char *left; /* left[i]: thread i has ended; nothing is put in its box */
};

/* Frees the halves of list h that another thread allocated, oldest block first, and the
 * arrays that carried them. */
static void drain(struct wl_ctx *c, struct wl_block *h, int half) {
    while (h) {
        struct wl_block *next = h[half].p;
        for (int i = 0; i < half; i++) wl_block_drop(c, &h[i]);
        free(h);
        h = next;
    }
}

/* Under r->m: empties my box; -> what was in it. */
static struct wl_block *empty_box(struct ring *r, int me) {
    struct wl_block *h = r->box[me];
    r->box[me] = NULL;
    r->count[me] = 0;
    if (h) pthread_cond_broadcast(&r->cv);
    return h;
}

/* Puts h into the next thread's box; while it is full, frees what arrives in mine. When the
 * next thread has ended, frees h here. */
static void give(struct ring *r, struct wl_ctx *c, int me, int next, struct wl_block *h, int half) {
    pthread_mutex_lock(&r->m);
    while (r->count[next] >= BOX && !r->left[next]) {
        struct wl_block *mine = empty_box(r, me);
        if (mine) {
            pthread_mutex_unlock(&r->m);
            drain(c, mine, half);
            pthread_mutex_lock(&r->m);
        } else {
            pthread_cond_wait(&r->cv, &r->m);
        }
    }
    if (r->left[next]) {
        pthread_mutex_unlock(&r->m);
        h[half].p = NULL;
        drain(c, h, half);
        return;
    }
    h[half].p = r->box[next];
    r->box[next] = h;
    r->count[next]++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->m);
}

/* Ends my part: what is in my box is freed, and nothing more is put there. */
static void leave(struct ring *r, struct wl_ctx *c, int me, int half) {
    pthread_mutex_lock(&r->m);
    struct wl_block *mine = empty_box(r, me);
    r->left[me] = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->m);
    drain(c, mine, half);
}

static void *run(void *arg) {
    struct wl_worker *w = arg;
    struct ring *r = w->shared;
    struct wl_ctx *c = &w->c;
    int n = wl.set, half = n / 2, me = c->id, next = (c->id + 1) % wl.threads;
    struct wl_block *batch = calloc((size_t)n, sizeof *batch);
    if (!batch) wl_oom("calloc", (size_t)n * sizeof *batch);
    size_t span = wl.max_size - wl.min_size + 1, step = (size_t)me * 131;
    while (c->ops < w->allocs) {
        for (int i = 0; i < n; i++) {
            step = (step + 97) % span;
            wl_block_take(c, &batch[i], wl.min_size + step);
        }
        for (int i = n - 1; i >= half; i--) wl_block_drop(c, &batch[i]);
        struct wl_block *h = malloc(((size_t)half + 1) * sizeof *h);
        if (!h) wl_oom("malloc", ((size_t)half + 1) * sizeof *h);
        for (int i = 0; i < half; i++) h[i] = batch[i];
        pthread_mutex_lock(&r->m);
        struct wl_block *mine = empty_box(r, me);
        pthread_mutex_unlock(&r->m);
        drain(c, mine, half);
        give(r, c, me, next, h, half);
    }
    leave(r, c, me, half);
    free(batch);
    return NULL;
}

int main(int argc, char **argv) {
    wl_init(&spec, argc, argv);
    struct ring r;
    pthread_mutex_init(&r.m, NULL);
    pthread_cond_init(&r.cv, NULL);
    r.box = calloc((size_t)wl.threads, sizeof *r.box);
    r.count = calloc((size_t)wl.threads, sizeof *r.count);
    r.left = calloc((size_t)wl.threads, 1);
    if (!r.box || !r.count || !r.left) wl_oom("calloc", (size_t)wl.threads * sizeof *r.box);
    uint64_t ops = 0;
    double secs = wl_run_workers(run, wl_scaled(25e6, 1), &r, &ops);
    for (int i = 0; i < wl.threads; i++)
        if (r.box[i]) wl_die("a half was left in box %d", i);
    free(r.box);
    free(r.count);
    free(r.left);
    wl_report(ops, secs);
    return 0;
}
