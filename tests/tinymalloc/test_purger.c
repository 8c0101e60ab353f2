/* The purger (purger.c): threads that free their medium blocks and then stay alive, idle, get
 * their memory back to the OS within the delays although no thread calls the allocator
 * again; with purge_thread:0 (a re-run) it stays resident, which shows that the purger did
 * it. Slab pages that an exiting thread left with blocks out go back once those are freed. A
 * single-threaded process starts no purger, and its later small or medium calls run the
 * heap's due purge instead; a forked child starts its own; threads that use only the heap
 * tier start it too. */
#include "tm_test.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

static void *(*volatile vmalloc)(size_t) = malloc;
static void (*volatile vfree)(void *) = free;

#define NTHREADS 16
#define PER_THREAD (4u << 20)

/* RSS in kB, read with system calls only: the idle window must make no allocator call. */
static long rss_kb(void) {
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    char *p = strchr(buf, ' ');
    return p ? strtol(p + 1, NULL, 10) * (sysconf(_SC_PAGESIZE) / 1024) : -1;
}

static bool has_purger_thread(void) {
    DIR *d = opendir("/proc/self/task");
    bool found = false;
    struct dirent *e;
    while (d && !found && (e = readdir(d)) != NULL) {
        char path[300], name[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        int fd = open(path, O_RDONLY);
        if (fd < 0) continue;
        ssize_t n = read(fd, name, sizeof name - 1);
        close(fd);
        found = n > 0 && strncmp(name, "tm-purger", 9) == 0;
    }
    if (d) closedir(d);
    return found;
}

static pthread_barrier_t holding, idle, done;
/* kB of the held blocks' pages found resident, page by page (mincore), summed over the threads */
static _Atomic long held_resident_kb;

static long resident_kb(void *p, size_t n) {
    uintptr_t lo = (uintptr_t)p & ~(uintptr_t)4095,
              hi = ((uintptr_t)p + n + 4095) & ~(uintptr_t)4095;
    unsigned char vec[64];
    long kb = 0;
    for (uintptr_t a = lo; a < hi; a += sizeof vec * 4096) {
        size_t len = hi - a < sizeof vec * 4096 ? hi - a : sizeof vec * 4096;
        if (mincore((void *)a, len, vec) != 0) return -1;
        for (size_t i = 0; i < len / 4096; i++) kb += (vec[i] & 1) * 4;
    }
    return kb;
}
/* Block sizes: from block_min to block_min + block_span (the arena tier by default). */
static size_t block_min = 64u << 10, block_span = 26u << 10;

/* Takes PER_THREAD bytes of blocks of block_min and up (64-90 KiB: the arena tier), holds them
 * until every thread has taken its own (so that all are resident at once, whether freed blocks are
 * cached or reused at once), frees them, then waits, alive and quiet, until the main thread has
 * measured. */
static void *worker(void *arg) {
    unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u;
    void *ps[64];
    size_t held = 0;
    int n = 0;
    while (held < PER_THREAD && n < 64) {
        seed = seed * 1103515245u + 12345u;
        size_t sz = block_min + (seed >> 8) % block_span;
        ps[n] = vmalloc(sz);
        memset(ps[n], 1, sz);
        held_resident_kb += resident_kb(ps[n++], sz);
        held += sz;
    }
    pthread_barrier_wait(&holding);
    for (int i = 0; i < n; i++) vfree(ps[i]);
    pthread_barrier_wait(&idle);
    pthread_barrier_wait(&done);
    return NULL;
}

/* Returns the RSS above `before` after the threads have been idle for up to `wait_ms`, or as
 * soon as it is below `enough` kB; *peak is the RSS above `before` while they held their
 * blocks. */
static long idle_rss_above(long before, long enough, int wait_ms, long *peak, int *ms_taken) {
    pthread_t t[NTHREADS];
    held_resident_kb = 0;
    pthread_barrier_init(&holding, NULL, NTHREADS + 1);
    pthread_barrier_init(&idle, NULL, NTHREADS + 1);
    pthread_barrier_init(&done, NULL, NTHREADS + 1);
    for (int i = 0; i < NTHREADS; i++) pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i);
    pthread_barrier_wait(&holding);
    *peak = rss_kb() - before;
    pthread_barrier_wait(&idle);
    long above = rss_kb() - before;
    struct timespec step = {0, 50 * 1000 * 1000};
    int ms = 0;
    for (; ms < wait_ms && above >= enough; ms += 50) {
        nanosleep(&step, NULL);
        above = rss_kb() - before;
    }
    *ms_taken = ms;
    pthread_barrier_wait(&done);
    for (int i = 0; i < NTHREADS; i++) pthread_join(t[i], NULL);
    return above;
}

/* Default delays are 1 s (cache decay, arena purge): within 3 s the memory is back. */
static void idle_threads_memory_goes_back(void) {
    long before = rss_kb(), peak;
    int ms;
    long above = idle_rss_above(before, 8 << 10, 3000, &peak, &ms);
    printf("  %d threads idle (blocks of %zu-%zu KiB): %ld kB resident in their blocks, %ld kB "
           "above the start while they held them, %ld kB after %d ms\n",
           NTHREADS, block_min >> 10, (block_min + block_span) >> 10, (long)held_resident_kb, peak,
           above, ms);
    /* The blocks were resident, counted page by page: the process's RSS figure (a sum of the
     * kernel's counters) once read 26 MB here while every block was written (about 68 MB). */
    CHECK(held_resident_kb > 32 << 10);
    CHECK(above < 8 << 10);
    CHECK(has_purger_thread());
}

/* The same with purge_thread:0: nothing purges while every thread is quiet. */
static void without_the_purger_it_stays(void) {
    long before = rss_kb(), peak;
    int ms;
    long above = idle_rss_above(before, 8 << 10, 3000, &peak, &ms);
    printf("  purge_thread:0: %ld kB above the start while held, %ld kB after %d ms\n", peak, above,
           ms);
    CHECK(above >= 8 << 10);
    CHECK(!has_purger_thread());
}

/* Child mode: the same with large blocks only (300-400 KiB: the heap tier), in a process where
 * no thread ever reaches the slab or arena tier, which start the purger too. Exit status 0
 * when every check passed. */
static int heap_only_child(void) {
    block_min = 300u << 10;
    block_span = 100u << 10;
    idle_threads_memory_goes_back();
    return tm_test_case_failed;
}

/* Child mode: one thread only; medium frees start no purger. */
static int single_threaded(void) {
    for (int i = 0; i < 100; i++) vfree(vmalloc(100000));
    struct timespec t = {0, 200 * 1000 * 1000};
    nanosleep(&t, NULL);
    for (int i = 0; i < 100; i++) vfree(vmalloc(100000));
    return has_purger_thread() ? 3 : 0;
}

#define NBLK 4096

static void *alloc_many(void *arg) {
    void **ps = arg;
    for (int i = 0; i < NBLK; i++) memset(ps[i] = vmalloc(1000), 7, 1000);
    return NULL;
}

/* Child mode: a thread allocates 4 MB of 1000-byte blocks and exits, leaving its slab pages
 * in the class pool with every block out; this thread frees them all and never allocates
 * that class again. Exit status 0 when RSS fell back (under 1 MiB above the start) within
 * 5 s, 1 when it did not. */
static int abandoned_child(void) {
    static void *ps[NBLK];
    long before = rss_kb();
    pthread_t t;
    pthread_create(&t, NULL, alloc_many, ps);
    pthread_join(t, NULL);
    for (int i = 0; i < NBLK; i++) vfree(ps[i]);
    long peak = rss_kb() - before, above = peak;
    struct timespec step = {0, 50 * 1000 * 1000};
    int ms = 0;
    for (; ms < 5000 && above >= 1024; ms += 50) {
        nanosleep(&step, NULL);
        above = rss_kb() - before;
    }
    printf("  %s: %ld kB above the start after the frees, %ld kB after %d ms\n",
           getenv("TINYMALLOC_CONF"), peak, above, ms);
    return peak > 2048 && above < 1024 ? 0 : 1;
}

/* Child mode: one thread frees a 64 MiB heap block, waits past heap_purge_delay without a
 * call, and then allocates only 16-byte blocks (about 3 MiB of them: many slab refills), or
 * (mode lonefree-medium) 100 blocks of 20 KB from the arenas. There is no purger; those calls
 * run the heap's pass that fell due. Exit status 0 when RSS is back under 16 MiB above the
 * start, 1 when the block's pages stayed, 3 if a purger thread started, 4 when the block went
 * back at the free already (nothing to check: on a loaded machine the memset outlasted the
 * delay, so the heap's pass fell due at the free itself). */
#define NSMALL 200000
static int lone_thread_child(bool medium) {
    static void *ps[NSMALL];
    long before = rss_kb();
    char *p = vmalloc(64u << 20);
    memset(p, 1, 64u << 20);
    vfree(p);
    long freed = rss_kb() - before;
    if (freed < (48 << 10)) return 4;
    struct timespec t = {1, 200 * 1000 * 1000}; /* past heap_purge_delay (1 s) */
    nanosleep(&t, NULL);
    size_t each = medium ? 20000 : 16;
    int count = medium ? 100 : NSMALL;
    for (int i = 0; i < count; i++) ps[i] = vmalloc(each);
    long above = rss_kb() - before;
    for (int i = 0; i < count; i++) vfree(ps[i]);
    printf("  %s: %ld kB above the start after the free, %ld kB after the %s blocks\n",
           getenv("TINYMALLOC_CONF"), freed, above, medium ? "medium" : "small");
    if (has_purger_thread()) return 3;
    return above < (16 << 10) ? 0 : 1;
}

/* The process's exit status says that exit(0) ran the atexit handlers; it is 20 + where they
 * ran: 0 on a program thread, 1 on the purger. */
static void at_exit(void) {
    char name[32] = "";
    int fd = open("/proc/thread-self/comm", O_RDONLY);
    if (fd >= 0 && read(fd, name, sizeof name - 1) < 0) name[0] = 0;
    if (fd >= 0) close(fd);
    _exit(20 + (strncmp(name, "tm-purger", 9) == 0));
}

static void *churn(void *arg) {
    (void)arg;
    for (int i = 0; i < 200; i++) vfree(vmalloc(70000 + i * 64));
    return NULL;
}

static void start_purger_with_threads(void) {
    pthread_t t[2];
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, churn, NULL);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    vfree(vmalloc(100000)); /* this thread's call starts it */
}

/* Child mode: other threads start the purger and end; then the main thread calls pthread_exit.
 * glibc ends the process when its last thread ends, so the purger must not stay. */
static int main_thread_exits_last(void) {
    atexit(at_exit);
    start_purger_with_threads();
    if (!has_purger_thread()) return 3;
    pthread_exit(NULL);
}

static int status_of(int st) { return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st); }

static void *fork_and_return(void *arg) {
    (void)arg;
    pid_t pid = fork();
    if (pid != 0) {
        int st;
        waitpid(pid, &st, 0);
        _exit(status_of(st));
    }
    start_purger_with_threads(); /* in the child: the forking thread is its only one */
    return NULL;                 /* ends the child's last program thread */
}

/* Child mode: CPython's test_3_join_in_forked_from_thread. A worker forks; in the child, the
 * forking thread starts threads (and so a purger) and returns. */
static int forked_worker_returns(void) {
    atexit(at_exit);
    start_purger_with_threads();
    pthread_t t;
    pthread_create(&t, NULL, fork_and_return, NULL);
    pthread_join(t, NULL);
    return 4; /* not reached: the worker _exits with the child's status */
}

/* Starts this program again in child mode `mode`, in a process group of its own (so that a
 * deadline can kill whatever it forked, which would hold the test's output open). */
static pid_t spawn_child(char *self, const char *mode, const char *conf) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        if (conf) setenv("TINYMALLOC_CONF", conf, 1);
        char *argv[] = {self, (char *)mode, NULL};
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    return pid;
}

/* Runs a child mode under a deadline: -1 when it had to be killed after 10 s. */
static int run_child_within(char *self, const char *mode, const char *conf) {
    pid_t pid = spawn_child(self, mode, conf);
    int st;
    for (int ms = 0; waitpid(pid, &st, WNOHANG) == 0; ms += 20) {
        if (ms >= 10000) {
            kill(-pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        struct timespec step = {0, 20 * 1000 * 1000};
        nanosleep(&step, NULL);
    }
    return status_of(st);
}

static char *self_name;

/* A process whose program threads have all ended ends, with a purger running, and its
 * atexit handlers run on a program thread: the last one waits for the purger to leave. */
static void process_ends_with_its_last_thread(void) {
    int st = run_child_within(self_name, "mainexit", NULL);
    printf("  main thread's pthread_exit: exit status %d\n", st);
    CHECK(st == 20);
    st = run_child_within(self_name, "forkworker", NULL);
    printf("  forked worker returns: exit status %d\n", st);
    CHECK(st == 20);
}

static int run_child_with(char *self, const char *mode, const char *conf) {
    int st;
    waitpid(spawn_child(self, mode, conf), &st, 0);
    return status_of(st);
}

static int run_child(char *self, const char *mode) { return run_child_with(self, mode, NULL); }

/* slab_retain:0, so that the pages go on from the free-page pool to the OS. */
static void abandoned_pages_go_back(void) {
    CHECK(run_child_with(self_name, "abandon", "slab_retain:0") == 0);
    CHECK(run_child_with(self_name, "abandon", "slab_retain:0,purge_thread:0") == 1);
}

/* The heap keeps the block (below the huge threshold) and purges it after 1 s (the delay);
 * purge_thread:0 too, since the later calls run the pass whether or not a purger may start. */
static int lone_child(const char *mode, const char *conf) {
    int st = 4;
    for (int try = 0; try < 3 && st == 4; try++) st = run_child_with(self_name, mode, conf);
    return st;
}

static void lone_thread_later_calls_purge_the_heap(void) {
    const char *conf = "huge_threshold:1g,huge_threshold_max:1g,heap_purge_delay:1000";
    CHECK(lone_child("lonefree", conf) == 0);
    char with_off[128];
    snprintf(with_off, sizeof with_off, "%s,purge_thread:0", conf);
    CHECK(lone_child("lonefree", with_off) == 0);
    CHECK(lone_child("lonefree-medium", conf) == 0);
}

static void single_threaded_process_has_none(void) { CHECK(run_child(self_name, "single") == 0); }

static void idle_heap_only_threads_memory_goes_back(void) {
    CHECK(run_child(self_name, "heaponly") == 0);
}

/* After the purger started, a forked child (which has only the forking thread) starts its own
 * and gets idle memory back the same way. */
static void forked_child_gets_its_own(void) {
    CHECK(has_purger_thread());
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        bool none_at_first = !has_purger_thread();
        long before = rss_kb(), peak;
        int ms;
        long above = idle_rss_above(before, 8 << 10, 3000, &peak, &ms);
        _exit(none_at_first && above < (8 << 10) && has_purger_thread() ? 0 : 1);
    }
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int main(int argc, char **argv) {
    self_name = argv[0];
    if (argc > 1 && strcmp(argv[1], "single") == 0) return single_threaded();
    if (argc > 1 && strcmp(argv[1], "abandon") == 0) return abandoned_child();
    if (argc > 1 && strcmp(argv[1], "lonefree") == 0) return lone_thread_child(false);
    if (argc > 1 && strcmp(argv[1], "lonefree-medium") == 0) return lone_thread_child(true);
    if (argc > 1 && strcmp(argv[1], "heaponly") == 0) return heap_only_child();
    if (argc > 1 && strcmp(argv[1], "mainexit") == 0) return main_thread_exits_last();
    if (argc > 1 && strcmp(argv[1], "forkworker") == 0) return forked_worker_returns();
    const char *conf = getenv("TINYMALLOC_CONF");
    if (conf && strcmp(conf, "purge_thread:0") == 0) {
        RUN_RSS(without_the_purger_it_stays);
        TEST_EXIT();
    }
    RUN(single_threaded_process_has_none);
    RUN_RSS(idle_threads_memory_goes_back);
    RUN_RSS(forked_child_gets_its_own);
    RUN_RSS(idle_heap_only_threads_memory_goes_back);
    RUN_RSS(abandoned_pages_go_back);
    RUN_RSS(lone_thread_later_calls_purge_the_heap);
#ifdef __SANITIZE_THREAD__
    (void)process_ends_with_its_last_thread;
    printf("SKIP: process_ends_with_its_last_thread (ThreadSanitizer's own background thread "
           "keeps such a process alive)\n");
#else
    RUN(process_ends_with_its_last_thread);
#endif
    return tm_test_next_stage(argv, "purge_thread:0");
}
