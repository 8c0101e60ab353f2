/* idle-threads: what memory an allocator keeps for threads that have gone quiet. 256 threads
 * each take about 5 MiB in blocks of 64-90 KiB, free them all, and then stay alive doing
 * nothing. Once all are idle, the run waits 2 s (any time-based purge can act, but only from
 * a thread of its own: nobody calls the allocator) and reads RSS, then calls malloc_trim(0)
 * and reads it again. Reported as rss_idle_kb and rss_trimmed_kb, with the RSS before any
 * thread started (rss_start_kb). ops = allocations. */
#include "wl.h"

#include <malloc.h>
#include <pthread.h>
#include <time.h>

static const struct wl_spec spec = {
    .name = "idle-threads",
    .summary = "256 threads free 5 MiB of 64-90 KiB blocks each, then idle: RSS after 2 s and "
               "after malloc_trim",
    .threads = 256,
    .quick = 0.1,
    .tiny = 0.01,
    .latency = 0,
};

#define MAX_BLOCKS 128

static pthread_barrier_t idle, release;
static long rss_idle, rss_trimmed;

static void *run(void *arg) {
    struct wl_worker *w = arg;
    struct wl_ctx *c = &w->c;
    struct wl_block set[MAX_BLOCKS];
    size_t want = wl_scaled(5 << 20, 90 << 10), held = 0;
    int n = 0;
    while (held < want && n < MAX_BLOCKS) {
        wl_block_take(c, &set[n], wl_range(&c->rng, 64 << 10, 90 << 10));
        held += set[n++].n;
    }
    for (int i = 0; i < n; i++) wl_block_drop(c, &set[i]);
    /* The last thread to go idle measures, while every thread is alive and quiet. */
    if (pthread_barrier_wait(&idle) == PTHREAD_BARRIER_SERIAL_THREAD) {
        struct timespec two = {2, 0};
        nanosleep(&two, NULL);
        rss_idle = wl_rss_kb();
        malloc_trim(0);
        rss_trimmed = wl_rss_kb();
    }
    pthread_barrier_wait(&release);
    return NULL;
}

int main(int argc, char **argv) {
    wl_init(&spec, argc, argv);
    long rss_start = wl_rss_kb();
    pthread_barrier_init(&idle, NULL, (unsigned)wl.threads);
    pthread_barrier_init(&release, NULL, (unsigned)wl.threads);
    uint64_t ops = 0;
    double secs = wl_run_workers(run, 0, NULL, &ops);
    wl_set_rss(wl_peak_rss_kb(), wl_rss_kb());
    wl_extra("rss_start_kb", (double)rss_start);
    wl_extra("rss_idle_kb", (double)rss_idle);
    wl_extra("rss_trimmed_kb", (double)rss_trimmed);
    wl_report(ops, secs);
    return 0;
}
