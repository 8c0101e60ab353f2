/* idle-threads: what memory an allocator keeps for threads that have gone quiet. 256 threads
 * each take about 5 MiB in blocks of 64-90 KiB, free them all, and then stay alive doing
 * nothing (8 threads at a time take and free, see GATE). Once all are idle, the run waits 2 s (any
 * time-based purge can act, but only from a thread of its own: nobody calls the allocator) and
 * reads RSS, then calls malloc_trim(0) and reads it again. Reported as rss_idle_kb and
 * rss_trimmed_kb, with the RSS before any thread started (rss_start_kb). ops = allocations.
 *
 * At most GATE threads fill and free at a time. Without the gate the peak RSS measured the
 * scheduler, not the allocator: how many of the 256 threads the main thread had started
 * before the first ones finished, each holding part of its 5 MiB. Counted in a wrapper,
 * the bytes live at once ranged from 57 to 438 MiB over runs of one allocator and the peak
 * RSS followed them, so allocators differed by which schedule they drew. With the gate, live
 * memory stays under GATE x 5 MiB and the peak shows what an allocator keeps of the threads
 * that went idle before, which is what this workload is about. */
#include "wl.h"

#include <malloc.h>
#include <pthread.h>
#include <semaphore.h>
#include <time.h>

static const struct wl_spec spec = {
    .name = "idle-threads",
    .summary = "256 threads free 5 MiB of 64-90 KiB blocks each, 8 at a time, then idle: RSS after "
               "2 s and after malloc_trim",
    .threads = 256,
    .quick = 0.1,
    .tiny = 0.01,
    .latency = 0,
};

#define MAX_BLOCKS 128
#define GATE 8 /* threads filling and freeing at once */

static pthread_barrier_t idle, release;
static sem_t gate;
static long rss_idle, rss_trimmed;

static void *run(void *arg) {
    struct wl_worker *w = arg;
    struct wl_ctx *c = &w->c;
    struct wl_block set[MAX_BLOCKS];
    size_t want = wl_scaled(5 << 20, 90 << 10), held = 0;
    int n = 0;
    while (sem_wait(&gate) != 0) continue; /* EINTR only */
    while (held < want && n < MAX_BLOCKS) {
        wl_block_take(c, &set[n], wl_range(&c->rng, 64 << 10, 90 << 10));
        held += set[n++].n;
    }
    for (int i = 0; i < n; i++) wl_block_drop(c, &set[i]);
    sem_post(&gate);
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
    sem_init(&gate, 0, GATE);
    uint64_t ops = 0;
    double secs = wl_run_workers(run, 0, NULL, &ops);
    wl_set_rss(wl_peak_rss_kb(), wl_rss_kb());
    wl_extra("rss_start_kb", (double)rss_start);
    wl_extra("rss_idle_kb", (double)rss_idle);
    wl_extra("rss_trimmed_kb", (double)rss_trimmed);
    wl_report(ops, secs);
    return 0;
}
