/* The medium cache (mcache.c): class rounding, reuse without the arena, the per-thread and
 * process-wide byte caps, the flush at thread exit and before an arena grows, malloc_trim and
 * the decay reaching the caches of idle threads, drains racing with the owners, the one block of
 * exactly a class kept above medium_cache_max, and double frees of cached blocks from any
 * thread. */
#include "tm_test.h"
#include "tinymalloc.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

static void *(*volatile vmalloc)(size_t) = malloc;
static void (*volatile vfree)(void *) = free;
static void *(*volatile vrealloc)(void *, size_t) = realloc;

static struct tinymalloc_stats stats(void) {
    struct tinymalloc_stats s;
    tinymalloc_stats_get(&s, sizeof s);
    return s;
}

static void sizes_round_to_classes(void) {
    void *a = vmalloc(9000), *b = vmalloc(30000), *c = vmalloc(200000);
    CHECK(malloc_usable_size(a) == 12288); /* whole 4 KiB units, four classes per doubling */
    CHECK(malloc_usable_size(b) == 32768);
    CHECK(malloc_usable_size(c) == 229376);
    vfree(a);
    vfree(b);
    vfree(c);
}

static void freed_block_is_reused_without_the_arena(void) {
    void *p = vmalloc(30000);
    vfree(p);
    struct tinymalloc_stats s0 = stats();
    void *q = vmalloc(31000); /* same class */
    struct tinymalloc_stats s1 = stats();
    CHECK(q == p);
    CHECK(s1.arena_allocs == s0.arena_allocs);
    vfree(q);
}

static void cache_is_capped(void) {
    enum { N = 64 };
    void *ps[N];
    for (int i = 0; i < N; i++) ps[i] = vmalloc(256 << 10);
    struct tinymalloc_stats s0 = stats();
    for (int i = 0; i < N; i++) vfree(ps[i]);
    struct tinymalloc_stats s1 = stats();
    /* 16 MiB freed, at most 4 MiB (medium_cache) kept by this thread. */
    CHECK(s1.arena_frees - s0.arena_frees >= N - 16);
}

static void *medium_thread(void *arg) {
    void *ps[20];
    for (int i = 0; i < 20; i++) ps[i] = vmalloc(20000 + (size_t)i * 1000);
    for (int i = 0; i < 20; i++) vfree(ps[i]);
    return arg;
}

static void thread_exit_returns_its_cache(void) {
    struct tinymalloc_stats s0 = stats();
    pthread_t t;
    pthread_create(&t, NULL, medium_thread, NULL);
    pthread_join(t, NULL);
    struct tinymalloc_stats s1 = stats();
    CHECK(s1.arena_allocs - s0.arena_allocs == 20);
    CHECK(s1.arena_frees - s0.arena_frees == 20); /* cached, then flushed at exit */
}

/* Threads that cache medium blocks, then stay alive and idle until released. */
static pthread_barrier_t cached, release;
static size_t idle_block;
static int idle_count;
static void *cache_then_idle(void *arg) {
    void *ps[64];
    for (int i = 0; i < idle_count; i++) ps[i] = vmalloc(idle_block);
    for (int i = 0; i < idle_count; i++) vfree(ps[i]);
    pthread_barrier_wait(&cached);
    pthread_barrier_wait(&release);
    return arg;
}
static void start_idle(pthread_t *t, int n, size_t block, int count) {
    idle_block = block;
    idle_count = count;
    pthread_barrier_init(&cached, NULL, (unsigned)n + 1);
    pthread_barrier_init(&release, NULL, (unsigned)n + 1);
    for (int i = 0; i < n; i++) CHECK(pthread_create(&t[i], NULL, cache_then_idle, NULL) == 0);
    pthread_barrier_wait(&cached);
}
static void stop_idle(pthread_t *t, int n) {
    pthread_barrier_wait(&release);
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    pthread_barrier_destroy(&cached);
    pthread_barrier_destroy(&release);
}

static void total_is_capped_and_trim_empties_idle_caches(void) {
    malloc_trim(0);
    pthread_t t[8];
    /* 8 threads free 4 MiB each: each could keep all of it, but all together 16 MiB. */
    start_idle(t, 8, 256 << 10, 16);
    struct tinymalloc_stats s0 = stats();
    CHECK(s0.medium_cached >= 8u << 20 && s0.medium_cached <= 16u << 20);
    malloc_trim(0); /* the threads are alive, and busy with nothing */
    struct tinymalloc_stats s1 = stats();
    CHECK(s1.medium_cached == 0);
    CHECK(s1.arena_frees - s0.arena_frees == s0.medium_cached / (256 << 10));
    stop_idle(t, 8);
    CHECK(stats().medium_cached == 0);
}

static void *free_one_and_count(void *arg) {
    (void)arg;
    vfree(vmalloc(30000));
    return (void *)(uintptr_t)stats().medium_cached; /* before the exit flushes its cache */
}

static void decay_empties_idle_caches(void) {
    pthread_t t[1];
    start_idle(t, 1, 30000, 4); /* four 32 KiB blocks in that thread's cache */
    CHECK(stats().medium_cached >= 4 * 32768);
    /* Past medium_cache_decay (1000 ms), the purger has run the decay, though no thread
     * called the allocator (purger.c; test_purger.c has the rest). */
    struct timespec pause = {1, 500 * 1000 * 1000};
    nanosleep(&pause, NULL);
    CHECK(stats().medium_cached == 0);
    /* This thread reads the clock only every few calls (tm_now_ms_lazy), so its last read may
     * be from before the sleep; the block it frees now, the first one cached anywhere, must
     * still get a fresh stamp. A new thread's free runs the decay if any block is due: it
     * would take that block back if its stamp were from before the sleep. */
    vfree(vmalloc(30000));
    pthread_t fresh;
    CHECK(pthread_create(&fresh, NULL, free_one_and_count, NULL) == 0);
    void *cached;
    pthread_join(fresh, &cached);
    CHECK((uintptr_t)cached == 2 * 32768); /* only the two blocks just freed */
    stop_idle(t, 1);
}

/* Owners work on their bins at every medium malloc and free (without a lock where membarrier
 * works, with their spin lock elsewhere) while another thread drains every cache (malloc_trim)
 * over and over: each side waits for the other, no block is lost or handed out twice (each
 * keeps its tag), and the run ends. A drain that skips the barrier or the wait for busy owners
 * fails it (a double free or a corrupted list within three runs). */
static atomic_int trim_stop;
static void *churn_medium(void *arg) {
    unsigned x = (unsigned)(uintptr_t)arg, bad = 0;
    unsigned char *keep[16] = {0};
    for (int op = 0; op < 200000 && !bad; op++) {
        x = x * 1664525 + 1013904223;
        unsigned i = (x >> 8) % 16;
        if (keep[i]) {
            bad += keep[i][0] != (unsigned char)i || keep[i][8999] != (unsigned char)i;
            vfree(keep[i]);
        }
        keep[i] = vmalloc(9000 + (x >> 12) % 24000); /* the cached classes */
        if (keep[i] == NULL) return (void *)1;
        keep[i][0] = keep[i][8999] = (unsigned char)i;
    }
    for (int i = 0; i < 16; i++) vfree(keep[i]);
    return (void *)(uintptr_t)bad;
}
static void *trim_loop(void *arg) {
    while (!atomic_load(&trim_stop)) malloc_trim(0);
    return arg;
}
static void trims_race_with_owners(void) {
    pthread_t owners[3], trimmer;
    atomic_store(&trim_stop, 0);
    CHECK(pthread_create(&trimmer, NULL, trim_loop, NULL) == 0);
    for (uintptr_t i = 0; i < 3; i++)
        CHECK(pthread_create(&owners[i], NULL, churn_medium, (void *)(i + 1)) == 0);
    uintptr_t bad = 0;
    for (int i = 0; i < 3; i++) {
        void *r;
        pthread_join(owners[i], &r);
        bad += (uintptr_t)r;
    }
    atomic_store(&trim_stop, 1);
    pthread_join(trimmer, NULL);
    CHECK(bad == 0);
    CHECK(stats().medium_cached <= 4u << 20); /* this thread's cap: the others have exited */
}

static void die_double_free(void) {
    void *p = vmalloc(30000);
    vfree(p);
    vfree(p);
}
static void die_double_free_cache_full(void) {
    void *ps[40];
    for (int i = 0; i < 40; i++) ps[i] = vmalloc(200000);
    void *p = vmalloc(30000);
    vfree(p);
    for (int i = 0; i < 40; i++) vfree(ps[i]); /* fills the cache to its cap */
    vfree(p);
}
static void *free_in_thread(void *p) {
    vfree(p);
    return NULL;
}
static void die_double_free_other_thread(void) {
    void *p = vmalloc(30000);
    pthread_t t;
    pthread_create(&t, NULL, free_in_thread, p); /* cached by that thread... */
    pthread_join(t, NULL);                       /* ...and flushed at its exit */
    void *q = vmalloc(300000);
    vfree(q);
    vfree(p);
}
static void die_write_after_free(void) {
    void **p = vmalloc(30000);
    vfree(p);
    static char target[64];
    p[0] = target;
    vmalloc(30000);
    vmalloc(30000);
}

static void die_realloc_cached(void) {
    void *p = vmalloc(30000);
    vfree(p); /* in this thread's cache: still allocated in its arena */
    vrealloc(p, 31000);
}

/* No false alarm: a block made where a run freed to the arena started, and then taken into a
 * larger block that was freed, carries no stale check word for the cache's free to take for
 * a second free. malloc_trim moves the cached blocks to the arena. */
static void reuse_where_a_merged_run_started(void) {
    tm_test_stay_here(); /* arenas are per CPU */
    char *a = vmalloc(40000), *b = vmalloc(40000), *guard = vmalloc(40000);
    if (b != a + 40960) _exit(3);
    vfree(b);
    vfree(a);
    malloc_trim(0); /* both to the arena, each with its word */
    char *c = vmalloc(80000);
    if (c != a) _exit(3);
    vfree(c);
    malloc_trim(0);
    tm_test_take_at(a, 40000);
    vfree(tm_test_take_at(b, 40000));
    (void)guard;
}
/* First: the blocks must all come from one chunk, as they do before other cases have spread
 * over more. */
static void no_false_alarm_where_a_merged_run_started(void) {
    CHECK(tm_test_runs_clean(reuse_where_a_merged_run_started) == 0);
}

/* A block that realloc moves goes back to its arena, not to the cache. */
static void moved_by_realloc_goes_to_the_arena(void) {
    char *p = vmalloc(30000);
    struct tinymalloc_stats s0 = stats();
    char *q = vrealloc(p, 1 << 20); /* a heap block: p must move */
    struct tinymalloc_stats s1 = stats();
    CHECK(q != p);
    CHECK(s1.medium_cached == s0.medium_cached);
    CHECK(s1.arena_frees == s0.arena_frees + 1);
    vfree(q);
}

static void cached_blocks_are_checked(void) {
    CHECK(tm_expect_abort(die_realloc_cached, "realloc(): invalid pointer (freed already) 0x"));
    CHECK(tm_expect_abort(die_double_free, "free(): double free of 0x"));
    CHECK(tm_expect_abort(die_double_free_cache_full, "free(): double free of 0x"));
    CHECK(tm_expect_abort(die_double_free_other_thread, "free(): "));
    CHECK(tm_expect_abort(die_write_after_free, "malloc(): corrupted free list"));
}

/* A thread whose own cache holds the space it asks for gets it back before an arena grows.
 * First in its stage to allocate, so that the arenas hold nothing else: 15 blocks of 256 KiB
 * fill a chunk, and 15 of 224 KiB (another class, which misses the cache) fit only where
 * those were. */
static void own_cache_goes_back_before_an_arena_grows(void) {
    enum { N = 15 };
    void *ps[N];
    for (int i = 0; i < N; i++) ps[i] = vmalloc(256 << 10);
    CHECK(tm_test_stat("\"arena\"", "chunks") == 1);
    struct tinymalloc_stats s0 = stats();
    for (int i = 0; i < N; i++) vfree(ps[i]);
    struct tinymalloc_stats s1 = stats();
    CHECK(s1.medium_cached == s0.medium_cached + N * (256 << 10));
    for (int i = 0; i < N; i++) ps[i] = vmalloc(224 << 10);
    struct tinymalloc_stats s2 = stats();
    CHECK(tm_test_stat("\"arena\"", "chunks") == 1);
    CHECK(s2.medium_cached == 0);
    CHECK(s2.arena_frees == s1.arena_frees + N);
    for (int i = 0; i < N; i++) vfree(ps[i]);
}

/* Under medium_cache_max's default (32 KiB): larger blocks are not rounded up to a class, nor
 * cached when their size is no class (the next case has one that is). */
static void only_blocks_up_to_the_max_are_cached(void) {
    void *p = vmalloc(30000);
    CHECK(malloc_usable_size(p) == 32768); /* a class */
    struct tinymalloc_stats s0 = stats();
    vfree(p);
    struct tinymalloc_stats s1 = stats();
    CHECK(s1.medium_cached == s0.medium_cached + 32768);
    CHECK(s1.arena_frees == s0.arena_frees);
    void *q = vmalloc(70000);
    CHECK(malloc_usable_size(q) == 73728); /* 18 units of 4 KiB; its class would be 80 KiB */
    vfree(q);
    struct tinymalloc_stats s2 = stats();
    CHECK(s2.medium_cached == s1.medium_cached);
    CHECK(s2.arena_frees == s1.arena_frees + 1);
}

/* Above medium_cache_max, a block whose size is exactly a class (64 KiB) is cached all the
 * same, under medium_cache_exact's default (256 KiB), and a request of the same size in whole
 * units takes it back without its arena; requests there are not rounded up to a class. */
static void exact_classes_above_the_max_are_cached(void) {
    malloc_trim(0);
    void *p = vmalloc(65536);
    CHECK(malloc_usable_size(p) == 65536);
    struct tinymalloc_stats s0 = stats();
    vfree(p);
    struct tinymalloc_stats s1 = stats();
    CHECK(s1.medium_cached == s0.medium_cached + 65536);
    CHECK(s1.arena_frees == s0.arena_frees);
    void *q = vmalloc(65536 - 1000); /* 16 units of 4 KiB, as the cached block */
    struct tinymalloc_stats s2 = stats();
    CHECK(q == p);
    CHECK(s2.medium_cached == s0.medium_cached);
    CHECK(s2.arena_allocs == s1.arena_allocs);
    void *r = vmalloc(65536 + 1000); /* 17 units: no class, an arena's block of its own size */
    CHECK(malloc_usable_size(r) == 69632);
    vfree(r);
    CHECK(stats().arena_frees == s2.arena_frees + 1);
    vfree(q);
    malloc_trim(0);
}

/* A thread keeps such blocks, several of a class (newest first), up to
 * medium_cache_exact_bytes (1 MiB) of them beside medium_cache's bytes (4 MiB here, full of
 * 32 KiB blocks); past that they go to their arena. A request of a size none is kept of goes to
 * an arena, and malloc_trim takes them all, after which there is room again. */
static void exact_blocks_are_kept_beside_the_budget(void) {
    malloc_trim(0);
    enum { N = 128, BIG = 5 };
    void *small[N], *a = vmalloc(65536), *b = vmalloc(131072), *b2 = vmalloc(131072), *big[BIG];
    for (int i = 0; i < N; i++) small[i] = vmalloc(32768);
    for (int i = 0; i < BIG; i++) big[i] = vmalloc(262144);
    struct tinymalloc_stats s0 = stats();
    CHECK(s0.medium_cached == 0);
    for (int i = 0; i < N; i++) vfree(small[i]);
    struct tinymalloc_stats s1 = stats();
    CHECK(s1.medium_cached == N * 32768); /* the budget full */
    vfree(a);
    vfree(b);
    vfree(b2);
    struct tinymalloc_stats s2 = stats();
    CHECK(s2.medium_cached == N * 32768 + 65536 + 2 * 131072); /* all three beside it */
    CHECK(s2.arena_frees == s1.arena_frees);
    void *c = vmalloc(131072), *c2 = vmalloc(131072 - 100), *c3 = vmalloc(131072);
    struct tinymalloc_stats s3 = stats();
    CHECK(c == b2 && c2 == b); /* newest first, a request of the same size in whole units */
    CHECK(c3 != b && c3 != b2 && s3.arena_allocs == s2.arena_allocs + 1);
    CHECK(s3.medium_cached == N * 32768 + 65536);
    void *d = vmalloc(196608); /* 192 KiB, a class none is kept of: from an arena */
    CHECK(d != NULL && stats().arena_allocs == s3.arena_allocs + 1);
    vfree(d);
    struct tinymalloc_stats s4 = stats();
    CHECK(s4.medium_cached == N * 32768 + 65536 + 196608);
    /* 64 + 192 KiB kept: three blocks of 256 KiB fit in 1 MiB, the other two go back. */
    for (int i = 0; i < BIG; i++) vfree(big[i]);
    struct tinymalloc_stats s5 = stats();
    CHECK(s5.medium_cached == s4.medium_cached + 3 * 262144);
    CHECK(s5.arena_frees == s4.arena_frees + 2);
    malloc_trim(0);
    struct tinymalloc_stats s6 = stats();
    CHECK(s6.medium_cached == 0);
    CHECK(s6.arena_frees == s5.arena_frees + N + 5);
    vfree(c); /* room again */
    vfree(c2);
    vfree(c3);
    CHECK(stats().medium_cached == 3 * 131072);
    malloc_trim(0);
}

/* With medium_cache_exact_bytes:0 no block above medium_cache_max is kept: each goes back to
 * its arena, and a request of the same size comes from one. Exit 0 when so. */
static int none_kept_without_exact_bytes(void) {
    void *p = vmalloc(65536);
    struct tinymalloc_stats s0 = stats();
    vfree(p);
    struct tinymalloc_stats s1 = stats();
    void *q = vmalloc(65536);
    struct tinymalloc_stats s2 = stats();
    vfree(q);
    return !(s1.medium_cached == s0.medium_cached && s1.arena_frees == s0.arena_frees + 1 &&
             s2.arena_allocs == s1.arena_allocs + 1);
}

static void exact_bytes_zero_keeps_none(void) {
    CHECK(tm_test_rerun("no-exact", "medium_cache:4m,medium_cache_exact_bytes:0") == 0);
}

static void die_double_free_exact(void) {
    void *p = vmalloc(65536);
    vfree(p); /* kept by this thread: still allocated in its arena */
    vfree(p);
}

static void die_realloc_exact(void) {
    void *p = vmalloc(131072);
    vfree(p);
    vrealloc(p, 140000);
}

static void kept_exact_blocks_are_checked(void) {
    CHECK(tm_expect_abort(die_double_free_exact, "free(): double free of 0x"));
    CHECK(tm_expect_abort(die_realloc_exact, "realloc(): invalid pointer (freed already) 0x"));
}

#define MAX_CONF "medium_cache:4m"

int main(int argc, char **argv) {
    /* These cases set the cache at 4 MiB a thread (the default is 256 KiB), the figure their
     * caps assume, under the default process-wide 16 MiB, for blocks up to 256 KiB (the
     * default medium_max); a last re-run checks medium_cache_max's default. */
    if (argc > 1 && strcmp(argv[1], "no-exact") == 0) return none_kept_without_exact_bytes();
    if (tm_test_rerun_with_conf(argv, "medium_cache:4m,medium_cache_max:256k")) return 1;
    if (strcmp(getenv("TINYMALLOC_CONF"), MAX_CONF) == 0) {
        RUN(only_blocks_up_to_the_max_are_cached);
        RUN(exact_classes_above_the_max_are_cached);
        RUN(exact_blocks_are_kept_beside_the_budget);
        RUN(exact_bytes_zero_keeps_none);
        RUN(kept_exact_blocks_are_checked);
        TEST_EXIT();
    }
    RUN(no_false_alarm_where_a_merged_run_started); /* in a child: this process stays fresh */
    RUN(own_cache_goes_back_before_an_arena_grows);
    RUN(sizes_round_to_classes);
    RUN(freed_block_is_reused_without_the_arena);
    RUN(cache_is_capped);
    RUN(thread_exit_returns_its_cache);
    RUN(total_is_capped_and_trim_empties_idle_caches);
    RUN(decay_empties_idle_caches);
    RUN(trims_race_with_owners);
    RUN(moved_by_realloc_goes_to_the_arena);
    RUN(cached_blocks_are_checked);
    return tm_test_next_stage(argv, MAX_CONF);
}
