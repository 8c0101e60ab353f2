/* The slab tier (slab.c): class bounds, pointer checks, double-free detection, memory return. */
#include "tm_test.h"
#include "tinymalloc.h"

#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void *(*volatile vmalloc)(size_t) = malloc;
static void (*volatile vfree)(void *) = free;
static void *(*volatile vrealloc)(void *, size_t) = realloc;

static void class_waste_is_bounded(void) {
    size_t prev = 0;
    for (size_t n = 1; n <= 8192; n++) {
        void *p = vmalloc(n);
        size_t u = malloc_usable_size(p);
        CHECK(u >= n && u <= n + n / 4 + 16); /* at most 25 % + one tiny step wasted */
        CHECK(u >= prev);
        prev = u;
        vfree(p);
    }
}

/* The first block of a class commits the OS page it starts in and no more: a page's blocks are
 * carved an OS page at a time, so a program with a few blocks of many classes holds a page of
 * each, not two. Run first, while the class is new to the process. */
static void first_block_commits_one_page(void) {
    char *p = vmalloc(112); /* a class no earlier call of the process took */
    CHECK(p != NULL);
    uintptr_t next = ((uintptr_t)p & ~(uintptr_t)4095) + 4096;
    unsigned char v = 1;
    CHECK(mincore((void *)next, 4096, &v) == 0);
    CHECK((v & 1) == 0); /* 8 KiB at a time linked 73 blocks of 112 B: two pages */
    vfree(p);
}

static void die_free_stack(void) {
    char buf[64];
    vfree(buf + 16);
}
static void die_free_interior(void) {
    char *p = vmalloc(64);
    vfree(p + 16);
}
static void die_free_unaligned(void) {
    char *p = vmalloc(64);
    vfree(p + 1);
}
static void die_double_free(void) {
    void *p = vmalloc(48);
    vfree(p);
    vfree(p);
}
static void die_double_free_delayed(void) {
    void *p = vmalloc(200), *q[100];
    vfree(p);
    for (int i = 0; i < 100; i++) q[i] = vmalloc(100);
    for (int i = 0; i < 100; i++) vfree(q[i]);
    vfree(p);
}
/* Past its bin's bound a thread's frees go to their pages; a block in the bin freed again is
 * caught all the same. */
static void die_double_free_after_bin_flush(void) {
    enum { N = 300 };
    static void *ps[N];
    for (int i = 0; i < N; i++) ps[i] = vmalloc(256);
    for (int i = 0; i < N; i++) vfree(ps[i]); /* the bin holds 64 at most */
    vfree(ps[0]);
}
/* A signal from one thread to another: a pipe, a byte each time it is passed. */
struct gate {
    int fd[2];
};
static bool gate_open(struct gate *g) { return pipe(g->fd) == 0; }
static void gate_pass(struct gate *g) { (void)!write(g->fd[1], "x", 1); }
static void gate_wait(struct gate *g) {
    char x;
    (void)!read(g->fd[0], &x, 1);
}
static void gate_close(struct gate *g) {
    close(g->fd[0]);
    close(g->fd[1]);
}

static void in_thread(void *(*fn)(void *), void *arg) {
    pthread_t t;
    pthread_create(&t, NULL, fn, arg);
    pthread_join(t, NULL);
}
static void *free_it(void *p) {
    vfree(p);
    return NULL;
}
static void die_double_free_remote(void) {
    void *p = vmalloc(32);
    in_thread(free_it, p);
    vfree(p);
}
/* A thread gathers its frees to another thread's page into a chain before it hands them over
 * (slab.c): a block on that chain is freed already, whoever frees it again. */
static void *free_it_twice(void *p) {
    vfree(p);
    vfree(p);
    return NULL;
}
static void die_double_free_remote_twice(void) { in_thread(free_it_twice, vmalloc(48)); }
static struct gate freed_gate;
static void *free_it_and_stay(void *p) {
    vfree(p);
    gate_pass(&freed_gate);
    pause(); /* alive, its chain not handed over */
    return NULL;
}
/* A block of 48 B that another thread has freed and still holds on its chain. */
static void *chained_block(void) {
    void *p = vmalloc(48);
    pthread_t t;
    if (!gate_open(&freed_gate)) return NULL;
    pthread_create(&t, NULL, free_it_and_stay, p);
    gate_wait(&freed_gate);
    return p;
}
static void die_double_free_while_chained(void) {
    vfree(chained_block()); /* the owner's free of a block on the other thread's chain */
}
static void die_realloc_while_chained(void) { vrealloc(chained_block(), 40); }
/* Blocks another thread freed become the owner's free list as they are when its list runs
 * dry (slab.c, page_collect), still keyed as pending: freeing one of them again is a double
 * free. The child exits normally, and the check fails, if no such block is found. */
enum { COLLECTED = 16, COLLECTED_SIZE = 1500 };
static void *free_all(void *arg) {
    void **p = arg;
    for (int i = 0; i < COLLECTED; i++) vfree(p[i]);
    return NULL;
}
static void die_double_free_collected(void) {
    void *p[COLLECTED];
    for (int i = 0; i < COLLECTED; i++) p[i] = vmalloc(COLLECTED_SIZE);
    in_thread(free_all, p);            /* its chains are handed over as it exits */
    char *r = vmalloc(COLLECTED_SIZE); /* the current page's list is empty: it collects */
    for (int i = 0; i < COLLECTED; i++)
        if (p[i] != r && (uintptr_t)p[i] >> 16 == (uintptr_t)r >> 16) vfree(p[i]);
}
static void die_double_free_huge(void) {
    void *p = vmalloc(10u << 20);
    vfree(p);
    vfree(p);
}
static void die_free_foreign(void) {
    static char not_heap[256];
    vfree(not_heap + 16);
}
static void die_usable_interior(void) {
    char *p = vmalloc(100);
    malloc_usable_size(p + 32);
}
static void die_realloc_interior(void) {
    char *p = vmalloc(100);
    vrealloc(p + 32, 10);
}
static void die_free_huge_interior(void) {
    char *p = vmalloc(10u << 20);
    vfree(p + 4096);
}

/* A write after free that redirects a free-list link is caught before the link is used. */
static void die_write_after_free(void) {
    static char target[64];
    char **p = vmalloc(64);
    vfree(p);
    p[0] = target; /* try to make a later malloc return target */
    vmalloc(64);
    vmalloc(64);
}

/* realloc of a freed block names realloc, whether the resize would stay in place or move. */
static void die_realloc_freed_same_class(void) {
    char *p = vmalloc(64);
    vfree(p);
    vrealloc(p, 60);
}
static void die_realloc_freed_grow(void) {
    char *p = vmalloc(64);
    vfree(p);
    vrealloc(p, 4000);
}

static void die_double_free_in_transfer(void); /* with the transfer cache's cases */
static void invalid_and_double_frees_abort(void) {
    CHECK(tm_expect_abort(die_write_after_free, "malloc(): corrupted free list"));
    CHECK(tm_expect_abort(die_free_stack, "free(): invalid pointer 0x"));
    CHECK(tm_expect_abort(die_free_interior, "free(): invalid pointer"));
    CHECK(tm_expect_abort(die_free_unaligned, "free(): invalid pointer"));
    CHECK(tm_expect_abort(die_free_foreign, "free(): invalid pointer"));
    CHECK(tm_expect_abort(die_double_free, "free(): double free of 0x"));
    CHECK(tm_expect_abort(die_double_free_delayed, "free(): double free"));
    CHECK(tm_expect_abort(die_double_free_after_bin_flush, "free(): double free of 0x"));
    CHECK(tm_expect_abort(die_double_free_remote, "free(): double free"));
    CHECK(tm_expect_abort(die_double_free_remote_twice, "free(): double free of 0x"));
    CHECK(tm_expect_abort(die_double_free_while_chained, "free(): double free of 0x"));
    CHECK(tm_expect_abort(die_double_free_collected, "free(): double free of 0x"));
    CHECK(tm_expect_abort(die_double_free_in_transfer, "free(): double free of 0x"));
    CHECK(tm_expect_abort(die_realloc_while_chained, "realloc(): invalid pointer (freed already)"));
    CHECK(tm_expect_abort(die_double_free_huge, "free(): invalid pointer"));
    CHECK(tm_expect_abort(die_free_huge_interior, "free(): invalid pointer"));
    CHECK(tm_expect_abort(die_usable_interior, "malloc_usable_size(): invalid pointer"));
    CHECK(tm_expect_abort(die_realloc_interior, "realloc(): invalid pointer"));
    CHECK(tm_expect_abort(die_realloc_freed_same_class,
                          "realloc(): invalid pointer (freed already) 0x"));
    CHECK(tm_expect_abort(die_realloc_freed_grow, "realloc(): invalid pointer (freed already) 0x"));
}

/* Emptied slab pages stay committed for slab_purge_delay (so a program refilling them in
 * waves pays no madvise and no page faults), then go back to the OS past slab_retain; a
 * program that frees everything sees its resident size fall. Functional checks, not timings:
 * main runs them with slab_purge_delay:50. */
enum { N = 200000 };
static void *ps[N];

static void fill(int n) {
    for (int i = 0; i < n; i++) {
        ps[i] = vmalloc(1000);
        memset(ps[i], 1, 1000);
    }
}

static void drain(int n) {
    for (int i = 0; i < n; i++) vfree(ps[i]);
}

/* Resident kB before N blocks of 1000 B, with them, and right after freeing them. */
static void fill_and_drain(long *before, long *peak, long *kept) {
    *before = tm_test_rss_kb();
    fill(N);
    *peak = tm_test_rss_kb();
    drain(N);
    *kept = tm_test_rss_kb();
}

static void rss_falls_after_the_purge_delay(void) {
    long before, peak, kept;
    fill_and_drain(&before, &peak, &kept);
    /* Each tick purges the pages that stayed unused since the one before: two ticks. */
    for (int tick = 0; tick < 2; tick++) {
        usleep(80 * 1000);
        vfree(vmalloc(1000)); /* the tier looks at the clock when pages come and go */
        fill(2000);           /* so make pages come and go */
        drain(2000);
    }
    long after = tm_test_rss_kb();
    printf("  rss kB: before %ld, peak %ld, right after free %ld, after the delay %ld\n", before,
           peak, kept, after);
    CHECK(peak - before > 150000);
    CHECK(kept - before > (peak - before) / 2);
    CHECK(after - before < (peak - before) / 8);
}

/* malloc_trim gives the free pages back at once, and says so. */
static void malloc_trim_purges_now(void) {
    long before, peak, kept;
    fill_and_drain(&before, &peak, &kept);
    CHECK(malloc_trim(0) == 1);
    long after = tm_test_rss_kb();
    printf("  rss kB: before %ld, peak %ld, after free %ld, after malloc_trim %ld\n", before, peak,
           kept, after);
    CHECK(kept - before > (peak - before) / 2);
    CHECK(after - before < (peak - before) / 8);
    CHECK(malloc_trim(0) == 0); /* nothing left to give back */
}

/* Blocks another thread freed come back to the owner while the freeing thread lives on, by
 * either way: blocks of whole cache lines past the freeing thread's full bin (16 blocks of
 * 1 KiB, which it fills first with its own) make a chain of 16 for the transfer cache, which
 * the owner's refill takes; blocks of 80 B go back to their page in chains of 4 KiB (52 of
 * them), which the owner collects once its current page has no other block left. A partial
 * chain of either kind is handed over when the thread calls malloc_trim or exits. */
enum { SOME = 64 };
struct chained {
    void **p;
    size_t size;
    int n, stay, trim;         /* trim: the thread calls malloc_trim after its frees */
    struct gate freed, looked; /* the thread has freed; the owner has looked */
};
static void *free_some(void *arg) {
    struct chained *c = arg;
    void *own[16];
    for (int i = 0; i < 16; i++) own[i] = vmalloc(c->size);
    for (int i = 0; i < 16; i++) vfree(own[i]); /* its bin of the class is full */
    for (int i = 0; i < c->n; i++) vfree(c->p[i]);
    if (c->trim) malloc_trim(0);
    if (!c->stay) return NULL;
    gate_pass(&c->freed);
    gate_wait(&c->looked);
    return NULL;
}
static bool remote_frees_come_back(size_t size, int n, int stay, int trim) {
    enum { MAX = 1000 }; /* more than a page of 80 B blocks */
    static void *got[MAX];
    void *p[SOME];
    struct chained c = {p, size, n, stay, trim, {{-1, -1}}, {{-1, -1}}};
    if (stay && (!gate_open(&c.freed) || !gate_open(&c.looked))) return false;
    for (int i = 0; i < n; i++) p[i] = vmalloc(size);
    pthread_t t;
    pthread_create(&t, NULL, free_some, &c);
    if (stay)
        gate_wait(&c.freed);
    else
        pthread_join(t, NULL);
    bool back = false;
    int k = 0;
    while (k < MAX && !back) {
        got[k] = vmalloc(size);
        for (int i = 0; i < n; i++) back |= got[k] == p[i];
        k++;
    }
    while (k > 0) vfree(got[--k]);
    if (stay) {
        gate_pass(&c.looked);
        pthread_join(t, NULL);
        gate_close(&c.freed);
        gate_close(&c.looked);
    }
    return back;
}
static void remote_frees_reach_the_owner(void) {
    CHECK(remote_frees_come_back(1024, 16, 1, 0)); /* a transfer chain, the thread alive */
    CHECK(remote_frees_come_back(80, SOME, 1, 0)); /* a page's chain, the thread alive */
    CHECK(remote_frees_come_back(1024, 1, 0, 0));  /* one block, handed over at exit */
    CHECK(remote_frees_come_back(1024, 1, 1, 1));  /* one block, handed over by malloc_trim */
    CHECK(remote_frees_come_back(80, 1, 1, 1));
}

/* The transfer cache: 64 blocks of 1 KiB that the main thread allocated and another thread
 * frees past its full bin (four chains) go to the next refills of the class in any thread, a
 * new one here, while their owner lives on and allocates nothing; the chains that no refill
 * takes go back to their pages after slab_purge_delay (50 ms in this test), and malloc_trim
 * sends them back at once. With slab_transfer:0 the new thread gets none of them. */
enum { HANDED = 64, HANDED_SIZE = 1024 };
struct handed {
    void *p[HANDED];
    struct gate freed, done;
};
static void *free_past_bin(void *arg) {
    struct handed *h = arg;
    void *own[16];
    for (int i = 0; i < 16; i++) own[i] = vmalloc(HANDED_SIZE);
    for (int i = 0; i < 16; i++) vfree(own[i]);
    for (int i = 0; i < HANDED; i++) vfree(h->p[i]);
    gate_pass(&h->freed);
    gate_wait(&h->done);
    return NULL;
}
static void *count_handed(void *arg) {
    struct handed *h = arg;
    void *q[HANDED];
    uintptr_t found = 0;
    for (int k = 0; k < HANDED; k++) {
        q[k] = vmalloc(HANDED_SIZE);
        for (int i = 0; i < HANDED; i++) found += q[k] == h->p[i];
    }
    for (int k = 0; k < HANDED; k++) vfree(q[k]);
    return (void *)found;
}
enum { RIGHT_AFTER, AFTER_TRIM, AFTER_DELAY };
static uint64_t transferred(void) {
    struct tinymalloc_stats st;
    return tinymalloc_stats_get(&st, sizeof st) == 0 ? st.slab_transferred : UINT64_MAX;
}
static int handed_to_a_new_thread(int when, uint64_t *held) {
    struct handed h;
    if (!gate_open(&h.freed) || !gate_open(&h.done)) return -1;
    malloc_trim(0); /* no chain of earlier cases in the stacks */
    for (int i = 0; i < HANDED; i++) h.p[i] = vmalloc(HANDED_SIZE);
    pthread_t freer, taker;
    pthread_create(&freer, NULL, free_past_bin, &h);
    gate_wait(&h.freed);
    if (when == AFTER_TRIM) malloc_trim(0);
    if (when == AFTER_DELAY) usleep(400 * 1000); /* the purger's passes, 50 ms apart */
    *held = transferred();
    void *found;
    pthread_create(&taker, NULL, count_handed, &h);
    pthread_join(taker, &found);
    gate_pass(&h.done);
    pthread_join(freer, NULL);
    gate_close(&h.freed);
    gate_close(&h.done);
    return (int)(uintptr_t)found;
}
static void transfer_cache_serves_any_thread(void) {
    uint64_t held[3];
    int right_after = handed_to_a_new_thread(RIGHT_AFTER, &held[0]);
    int after_trim = handed_to_a_new_thread(AFTER_TRIM, &held[1]);
    int after_delay = handed_to_a_new_thread(AFTER_DELAY, &held[2]);
    printf("  of %d blocks handed over, a new thread got %d right after, %d after malloc_trim, "
           "%d after the delay; the cache held %llu, %llu and %llu bytes before it looked\n",
           HANDED, right_after, after_trim, after_delay, (unsigned long long)held[0],
           (unsigned long long)held[1], (unsigned long long)held[2]);
    CHECK(right_after == HANDED);
    CHECK(after_trim == 0);
    CHECK(after_delay == 0);
    CHECK(held[0] == HANDED * HANDED_SIZE); /* four chains of 16 */
    CHECK(held[1] == 0);
    CHECK(held[2] == 0);
    CHECK(transferred() == 0); /* the new thread took them all */
}

/* A block is still counted freed while it waits in the transfer cache: its owner's second
 * free of it is caught. */
static void *free_chain_of(void *arg) {
    void **p = arg;
    void *own[16];
    for (int i = 0; i < 16; i++) own[i] = vmalloc(HANDED_SIZE);
    for (int i = 0; i < 16; i++) vfree(own[i]);
    for (int i = 0; i < 16; i++) vfree(p[i]);
    return NULL;
}
static void die_double_free_in_transfer(void) {
    void *p[16];
    for (int i = 0; i < 16; i++) p[i] = vmalloc(HANDED_SIZE);
    in_thread(free_chain_of, p);
    vfree(p[3]);
}

/* A page whose owner exits with blocks freed both by itself (on its list) and by another
 * thread (on thread_free) is collected by walking the remote chain onto the list: every block
 * comes back to a later malloc, none is lost or taken twice. */
struct mixed {
    void *p[COLLECTED];
    struct gate freed, go;
};
static void *free_half_and_wait(void *arg) {
    struct mixed *m = arg;
    for (int i = 0; i < COLLECTED; i++) m->p[i] = vmalloc(COLLECTED_SIZE);
    for (int i = 0; i < COLLECTED; i += 2) vfree(m->p[i]);
    gate_pass(&m->freed);
    gate_wait(&m->go);
    return NULL; /* exits: its pages are collected and left to the pools */
}
static void mixed_frees_are_collected(void) {
    struct mixed m;
    CHECK(gate_open(&m.freed) && gate_open(&m.go));
    pthread_t t;
    pthread_create(&t, NULL, free_half_and_wait, &m);
    gate_wait(&m.freed);
    for (int i = 1; i < COLLECTED; i += 2) vfree(m.p[i]);
    malloc_trim(0); /* hands this thread's chain to the page */
    gate_pass(&m.go);
    pthread_join(t, NULL);
    enum { MAX = 600 };
    static void *got[MAX];
    int back = 0, k = 0;
    for (; k < MAX && back < COLLECTED; k++) {
        got[k] = vmalloc(COLLECTED_SIZE);
        for (int j = 0; j < k; j++) CHECK(got[j] != got[k]);
        for (int i = 0; i < COLLECTED; i++) back += got[k] == m.p[i];
    }
    CHECK(back == COLLECTED);
    while (k > 0) vfree(got[--k]);
    gate_close(&m.freed);
    gate_close(&m.go);
}

/* A thread whose blocks other threads free (it never frees one itself) gives back the pages
 * they emptied when its next refill scans its full pages (slab.c, scan_full), for any class
 * to take: here a page of another class that the thread takes afterwards is one of them. */
enum { EMPTIED = 64, EMPTIED_SIZE = 4000, OTHER_SIZE = 200, OTHERS = 2000 };
struct emptied {
    void *p[EMPTIED];
    struct gate freed, go;
    bool reused;
};
static void *allocate_around_frees(void *arg) {
    struct emptied *e = arg;
    for (int i = 0; i < EMPTIED; i++) e->p[i] = vmalloc(EMPTIED_SIZE);
    gate_pass(&e->freed);
    gate_wait(&e->go);
    /* The current page's blocks come back first; the refill after them scans the others. */
    size_t per_page = 65536 / malloc_usable_size(e->p[0]) + 1;
    void *mine[EMPTIED];
    for (size_t k = 0; k < per_page; k++) mine[k] = vmalloc(EMPTIED_SIZE);
    static void *other[OTHERS];
    int n = 0;
    while (n < OTHERS && !e->reused) {
        other[n] = vmalloc(OTHER_SIZE);
        for (int i = 0; i < EMPTIED; i++)
            e->reused |= (uintptr_t)other[n] >> 16 == (uintptr_t)e->p[i] >> 16;
        n++;
    }
    while (n > 0) vfree(other[--n]);
    for (size_t k = 0; k < per_page; k++) vfree(mine[k]);
    return NULL;
}
static void remotely_emptied_pages_go_back(void) {
    struct emptied e = {.reused = false};
    CHECK(gate_open(&e.freed) && gate_open(&e.go));
    pthread_t t;
    pthread_create(&t, NULL, allocate_around_frees, &e);
    gate_wait(&e.freed);
    for (int i = 0; i < EMPTIED; i++) vfree(e.p[i]);
    malloc_trim(0); /* hands this thread's chain to the page */
    gate_pass(&e.go);
    pthread_join(t, NULL);
    CHECK(e.reused);
    gate_close(&e.freed);
    gate_close(&e.go);
}

/* A thread that only frees what other threads allocate never refills, where a thread's
 * counts reach the statistics: its frees go in batches from the remote path, so a class's
 * peak live count stays near the most blocks ever live at once, not the sum of every round. */
enum {
    PRODUCED = 2000,
    PRODUCER_ROUNDS = 20,
    PRODUCED_SIZE = 2200
};                          /* a class no other case uses */
enum { STATS_BATCH = 256 }; /* TM_STATS_BATCH: the counts a thread may hold back per class */
static void *produced[PRODUCED];
static void *produce(void *arg) {
    (void)arg;
    for (int i = 0; i < PRODUCED; i++) produced[i] = vmalloc(PRODUCED_SIZE);
    return NULL; /* its counts are flushed as it exits */
}
/* The peak_bytes of the class of `size` in the JSON statistics, or 0. */
static uint64_t class_peak_bytes(size_t size) {
    char cls[64];
    snprintf(cls, sizeof cls, "{\"size\": %zu, ", size);
    unsigned long long v = tm_test_stat(cls, "peak_bytes");
    return v == (unsigned long long)-1 ? 0 : v;
}
static void consumer_frees_reach_the_peak(void) {
    size_t size = 0;
    for (int r = 0; r < PRODUCER_ROUNDS; r++) {
        pthread_t t;
        pthread_create(&t, NULL, produce, NULL);
        pthread_join(t, NULL);
        size = malloc_usable_size(produced[0]);
        for (int i = 0; i < PRODUCED; i++) vfree(produced[i]); /* all remote */
    }
    uint64_t peak = class_peak_bytes(size) / size;
    CHECK(peak >= PRODUCED);
    CHECK(peak <= PRODUCED + 2 * STATS_BATCH);
}

/* A thread's frees of another thread's blocks go into its own bin while it has room, and its
 * next mallocs of the class take them back (slab.c, tm_slab_free_remote): a server thread that
 * frees what others allocated reuses those blocks with no atomic write to their page.
 * Only blocks of whole cache lines: a 48 B block shares a line with its owner's neighbours,
 * so it goes back to its owner (false sharing). */
enum { FOREIGN = 8 };
struct foreign {
    void *p[FOREIGN];
    size_t size;
};
static void *free_then_allocate(void *arg) {
    struct foreign *f = arg;
    for (int i = 0; i < FOREIGN; i++) vfree(f->p[i]);
    int again = 0;
    void *q[FOREIGN];
    for (int k = 0; k < FOREIGN; k++) {
        q[k] = vmalloc(f->size);
        for (int i = 0; i < FOREIGN; i++) again += q[k] == f->p[i];
    }
    for (int k = 0; k < FOREIGN; k++) vfree(q[k]);
    return (void *)(uintptr_t)again;
}
static uintptr_t reused_by_the_freer(size_t size) {
    struct foreign f = {.size = size};
    for (int i = 0; i < FOREIGN; i++) f.p[i] = vmalloc(size);
    pthread_t t;
    void *again;
    pthread_create(&t, NULL, free_then_allocate, &f);
    pthread_join(t, &again);
    return (uintptr_t)again;
}
static void foreign_frees_are_reused_by_the_freer(void) {
    CHECK(reused_by_the_freer(1024) == FOREIGN);
    CHECK(reused_by_the_freer(48) == 0);
}

static void freed_blocks_are_reused(void) {
    void *a = vmalloc(40);
    vfree(a);
    void *b = vmalloc(40);
    CHECK(a == b); /* LIFO: the hot block comes back */
    vfree(b);
}

/* The blocks a thread frees come back to it newest first whatever their page, before its
 * current page's: 200 blocks of 1 KiB fill three pages of 64 and start a fourth, the current
 * one, which still has blocks to carve. */
static void freed_blocks_are_reused_across_pages(void) {
    enum { N = 200 };
    static char *ps[N];
    for (int i = 0; i < N; i++) ps[i] = vmalloc(1024);
    char *x = ps[10], *y = ps[100]; /* on two pages other than the current one */
    CHECK(((uintptr_t)x >> 16) != ((uintptr_t)y >> 16));
    vfree(x);
    vfree(y);
    char *first = vmalloc(1024), *second = vmalloc(1024);
    printf("  freed %p then %p; malloc gave %p then %p\n", (void *)x, (void *)y, (void *)first,
           (void *)second);
    CHECK(first == y);
    CHECK(second == x);
    ps[10] = second;
    ps[100] = first;
    for (int i = 0; i < N; i++) vfree(ps[i]);
}

int main(int argc, char **argv) {
    (void)argc;
    if (tm_test_rerun_with_conf(argv, "slab_purge_delay:50")) return 1; /* a short test */
    RUN_RSS(first_block_commits_one_page);
    RUN(class_waste_is_bounded);
    RUN(invalid_and_double_frees_abort);
    RUN_RSS(rss_falls_after_the_purge_delay);
    RUN_RSS(malloc_trim_purges_now);
    RUN(freed_blocks_are_reused);
    RUN(freed_blocks_are_reused_across_pages);
    RUN(foreign_frees_are_reused_by_the_freer);
    RUN(remote_frees_reach_the_owner);
    RUN(transfer_cache_serves_any_thread);
    RUN(mixed_frees_are_collected);
    RUN(remotely_emptied_pages_go_back);
    RUN(consumer_frees_reach_the_peak);
    TEST_EXIT();
}
