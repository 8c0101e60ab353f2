/* A minimal test harness for the C tests: each CHECK that fails prints the expression and
 * location; each TEST case prints `PASS: name` or `FAIL: name`, which tests/run.py counts. */
#ifndef TM_TEST_H
#define TM_TEST_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static int tm_test_failed_cases;
static int tm_test_case_failed;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stdout, "  check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);            \
            fflush(stdout);                                                                        \
            tm_test_case_failed = 1;                                                               \
        }                                                                                          \
    } while (0)

/* Run one case: a function void name(void). */
#define RUN(fn)                                                                                    \
    do {                                                                                           \
        tm_test_case_failed = 0;                                                                   \
        fn();                                                                                      \
        printf("%s: %s\n", tm_test_case_failed ? "FAIL" : "PASS", #fn);                            \
        fflush(stdout);                                                                            \
        tm_test_failed_cases += tm_test_case_failed;                                               \
    } while (0)

/* Run a case that counts per-CPU heap or arena statistics, or expects blocks from one heap:
 * the thread stays on the CPU it starts on, or a move under load would send its requests to
 * another CPU's tier. Its CPU set is given back after. */
#define RUN_HERE(fn)                                                                               \
    do {                                                                                           \
        cpu_set_t tm_allowed_, tm_here_;                                                           \
        int tm_saved_ = sched_getaffinity(0, sizeof tm_allowed_, &tm_allowed_) == 0;               \
        CPU_ZERO(&tm_here_);                                                                       \
        CPU_SET(sched_getcpu(), &tm_here_);                                                        \
        if (tm_saved_) sched_setaffinity(0, sizeof tm_here_, &tm_here_);                           \
        RUN(fn);                                                                                   \
        if (tm_saved_) sched_setaffinity(0, sizeof tm_allowed_, &tm_allowed_);                     \
    } while (0)

/* Run a case that measures resident memory; skipped under ThreadSanitizer, whose shadow
 * memory is resident too. */
#ifdef __SANITIZE_THREAD__
#define RUN_RSS(fn)                                                                                \
    ((void)fn, printf("SKIP: %s (RSS includes ThreadSanitizer's shadow memory)\n", #fn))
#else
#define RUN_RSS(fn) RUN(fn)
#endif

/* Run a case that exhausts a capped address space (tm_test_capped); skipped under
 * ThreadSanitizer, whose runtime maps memory of its own as it goes and dies when it cannot. */
#ifdef __SANITIZE_THREAD__
#define RUN_CAPPED(fn)                                                                             \
    ((void)fn, printf("SKIP: %s (ThreadSanitizer's own mappings fail under the cap)\n", #fn))
#else
#define RUN_CAPPED(fn) RUN(fn)
#endif

/* Runs this test program again with TINYMALLOC_CONF=conf, unless it is set already (then 0:
 * go on). Returns only when the re-run could not start (1, after a FAIL line). */
static inline int tm_test_rerun_with_conf(char **argv, const char *conf) {
    if (getenv("TINYMALLOC_CONF") != NULL) return 0;
    setenv("TINYMALLOC_CONF", conf, 1);
    execv("/proc/self/exe", argv);
    printf("FAIL: cannot re-run with %s\n", conf);
    return 1;
}

/* Resident size of this process in KiB (0 when /proc cannot be read). */
static inline long tm_test_rss_kb(void) {
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f && fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
    if (f) fclose(f);
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Page faults this process has taken so far that needed no I/O (first touches included). */
static inline long tm_test_minor_faults(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

/* Pins the calling thread to the idx-th CPU it may run on; false when there is none. */
static inline bool tm_test_pin_to(int idx, cpu_set_t *allowed) {
    for (int c = 0, k = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, allowed) || k++ != idx) continue;
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(c, &one);
        return sched_setaffinity(0, sizeof one, &one) == 0;
    }
    return false;
}

/* Starts fn(arg) in a new thread pinned to the idx-th CPU of `allowed` (a small stack, for
 * the cases run capped); false when there is no such CPU or no thread could be started. A new
 * thread's first request goes to its CPU's arena and heap, unless a thread that exited left
 * one (then it takes that one: tm_shard_adopt); a case reaches another CPU's shard with a
 * thread started there while the threads before it still live (tm_test_hold_on_cpu). */
static inline bool tm_test_start_on_cpu(int idx, const cpu_set_t *allowed, void *(*fn)(void *),
                                        void *arg, pthread_t *t) {
    cpu_set_t one;
    CPU_ZERO(&one);
    for (int c = 0, k = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, allowed) && k++ == idx) CPU_SET(c, &one);
    if (CPU_COUNT(&one) == 0) return false;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 << 10);
    pthread_attr_setaffinity_np(&attr, sizeof one, &one);
    bool ok = pthread_create(t, &attr, fn, arg) == 0;
    pthread_attr_destroy(&attr);
    return ok;
}

/* Runs fn(arg) in a thread started on the idx-th CPU of `allowed` and waits for it, or here
 * when that thread could not be started. True when it ran there. */
static inline bool tm_test_on_cpu_or_here(int idx, const cpu_set_t *allowed, void *(*fn)(void *),
                                          void *arg) {
    pthread_t t;
    if (!tm_test_start_on_cpu(idx, allowed, fn, arg, &t)) {
        fn(arg);
        return false;
    }
    pthread_join(t, NULL);
    return true;
}

/* A thread that runs fn(arg) on a CPU and then waits, alive, until released: while it lives,
 * the arena and heap it allocated from are not left for the next new thread to take. */
typedef struct {
    pthread_t t;
    void *(*fn)(void *);
    void *arg;
    _Atomic int state; /* 0: running fn; 1: fn returned; 2: released */
    bool started;
} tm_test_held_t;

static inline void *tm_test_held_main(void *arg) {
    tm_test_held_t *h = arg;
    h->fn(h->arg);
    atomic_store(&h->state, 1);
    while (atomic_load(&h->state) != 2) usleep(1000);
    return NULL;
}

/* Runs fn(arg) in a thread held on the idx-th CPU of `allowed`, or here when it cannot be
 * started (false), and returns once fn has. tm_test_release ends the thread. */
static inline bool tm_test_hold_on_cpu(tm_test_held_t *h, int idx, const cpu_set_t *allowed,
                                       void *(*fn)(void *), void *arg) {
    h->fn = fn;
    h->arg = arg;
    atomic_store(&h->state, 0);
    h->started = tm_test_start_on_cpu(idx, allowed, tm_test_held_main, h, &h->t);
    if (!h->started) {
        fn(arg);
        return false;
    }
    while (atomic_load(&h->state) != 1) usleep(1000);
    return true;
}

static inline void tm_test_release(tm_test_held_t *h) {
    if (!h->started) return;
    atomic_store(&h->state, 2);
    pthread_join(h->t, NULL);
}

/* The exited-thread case of the sharded tiers: fn(a) in a thread A held on the first CPU, then
 * fn(b) in a thread B on the second, which exits, then fn(c) in a thread C on the first while A
 * lives. C should take the arena or heap B left, not its CPU's, which is A's. True when all
 * three ran where meant. */
static inline bool tm_test_left_shard(void *(*fn)(void *), void *a, void *b, void *c) {
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return false;
    tm_test_held_t held;
    bool ok = tm_test_hold_on_cpu(&held, 0, &allowed, fn, a);
    ok = tm_test_on_cpu_or_here(1, &allowed, fn, b) && ok;
    ok = tm_test_on_cpu_or_here(0, &allowed, fn, c) && ok;
    tm_test_release(&held);
    return ok;
}

#define TEST_EXIT() return tm_test_failed_cases ? 1 : 0

/* Runs fn in a child with stderr captured; returns 1 when the child died of SIGABRT and its
 * stderr contains `expect`. For the allocator's fatal errors (invalid and double frees). */
#include <signal.h>
#include <sys/wait.h>
__attribute__((unused)) static int tm_expect_abort(void (*fn)(void), const char *expect) {
    int pfd[2];
    if (pipe(pfd) != 0) return 0;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 2);
        close(pfd[0]);
        fn();
        _exit(0);
    }
    close(pfd[1]);
    char buf[4096];
    size_t len = 0;
    ssize_t r;
    while (len < sizeof buf - 1 && (r = read(pfd[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)r;
    buf[len] = 0;
    close(pfd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    int ok = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && strstr(buf, expect) != NULL;
    if (!ok) printf("  expected abort with '%s'; status %d, stderr: %s\n", expect, st, buf);
    return ok;
}

/* Keeps the calling thread on the CPU it runs on now, for good: for a child whose blocks must
 * come from one CPU's arena or heap (RUN_HERE does the same for a case, and gives the CPU set
 * back after it). */
__attribute__((unused)) static void tm_test_stay_here(void) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    sched_setaffinity(0, sizeof one, &one);
}

/* Runs fn in a child; returns its exit status (0: it ran clean), or 128 + the signal that
 * ended it. For cases that must not abort. */
__attribute__((unused)) static int tm_test_runs_clean(void (*fn)(void)) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        fn();
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Mallocs blocks of size until one lands at `at` (first fit takes the lower free runs first);
 * exits 3 when none does in 1000 tries. The others stay allocated: for a child of
 * tm_test_runs_clean or tm_expect_abort. */
__attribute__((unused)) static char *tm_test_take_at(char *at, size_t size) {
    static void *(*volatile alloc)(size_t) = malloc;
    for (int k = 0; k < 1000; k++) {
        char *q = alloc(size);
        if (q == at) return q;
    }
    _exit(3);
}

/* Replaces this process with a run of the same test program under TINYMALLOC_CONF=conf, once
 * this stage's cases have passed; returns 1 (for main to return) when they have not or the
 * exec fails. */
__attribute__((unused)) static int tm_test_next_stage(char **argv, const char *conf) {
    if (tm_test_failed_cases) return 1;
    fflush(stdout);
    setenv("TINYMALLOC_CONF", conf, 1);
    execv("/proc/self/exe", argv);
    printf("FAIL: cannot re-run with %s\n", conf);
    return 1;
}

/* Runs this test program again, as `<program> mode`, with TINYMALLOC_CONF=conf (set before
 * the allocator starts, which a fork alone cannot do). Returns its exit status, or 128 + the
 * signal that ended it. */
__attribute__((unused)) static int tm_test_rerun(const char *mode, const char *conf) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("TINYMALLOC_CONF", conf, 1);
        char *argv[] = {(char *)"/proc/self/exe", (char *)mode, NULL};
        execv("/proc/self/exe", argv);
        _exit(126);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Out-of-memory tests. In a forked child, fn runs with the address space (RLIMIT_AS) capped
 * at what the process has mapped then, reservations included, plus `extra` bytes; its return
 * value is the child's exit status. Returns 1 when the child exited with 0, else prints how it
 * ended. */
__attribute__((unused)) static int tm_test_capped(int (*fn)(void), size_t extra) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        unsigned long vm_pages = 0;
        FILE *f = fopen("/proc/self/statm", "r");
        if (!f || fscanf(f, "%lu", &vm_pages) != 1) _exit(100);
        fclose(f);
        rlim_t lim = vm_pages * (rlim_t)sysconf(_SC_PAGESIZE) + extra;
        struct rlimit rl = {lim, lim};
        if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(101);
        int code = fn();
        fflush(stdout);
        _exit(code);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (!ok) printf("  capped child: status %#x\n", st);
    return ok;
}

/* For the per-CPU tiers, run capped: blocks of tm_test_oom_size bytes are taken on the first
 * CPU until none fits, all freed, and as many taken again on the second, where they must be
 * found in the first CPU's arena or heap. 0 when they were. */
static size_t tm_test_oom_size;
#define TM_TEST_REFILL_MAX 65536 /* more blocks than the cap and its reservations hold */
static int tm_test_want, tm_test_again;
static _Atomic int tm_test_go;
__attribute__((unused)) static void *tm_test_take_first(void *ps) {
    void *(*volatile take)(size_t) = malloc;
    int n = 0;
    while (n < TM_TEST_REFILL_MAX && (((void **)ps)[n] = take(tm_test_oom_size)) != NULL) n++;
    for (int i = 0; i < n; i++) free(((void **)ps)[i]);
    tm_test_want = n;
    atomic_store(&tm_test_go, 1);
    return NULL;
}
__attribute__((unused)) static void *tm_test_take_again(void *ps) {
    void *(*volatile take)(size_t) = malloc;
    while (!atomic_load(&tm_test_go)) usleep(1000);
    while (tm_test_again < tm_test_want &&
           (((void **)ps)[tm_test_again] = take(tm_test_oom_size)) != NULL)
        tm_test_again++;
    return NULL;
}
/* Each CPU's requests come from a thread started there, both started before the first takes
 * the address space (a stack would not fit after). */
__attribute__((unused)) static int tm_test_refill_elsewhere(void) {
    static void *ps[TM_TEST_REFILL_MAX];
    cpu_set_t allowed;
    pthread_t first, again;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0 ||
        !tm_test_start_on_cpu(1, &allowed, tm_test_take_again, ps, &again))
        return 3;
    if (!tm_test_start_on_cpu(0, &allowed, tm_test_take_first, ps, &first))
        return 3; /* the waiting thread ends with the process */
    pthread_join(first, NULL);
    pthread_join(again, NULL);
    int n = tm_test_want;
    printf("  %d blocks of %zu KiB on the first CPU, %d again on the second\n", n,
           tm_test_oom_size >> 10, tm_test_again);
    return n == 0 || n == TM_TEST_REFILL_MAX ? 4 : tm_test_again < n ? 5 : 0;
}

/* The case of the per-CPU tiers: tm_test_refill_elsewhere for blocks of `size` bytes, run with
 * `extra` bytes of address space to spare. 1 when it passed, or when there is only one CPU
 * (one arena and one heap: nothing to find elsewhere). */
__attribute__((unused)) static int tm_test_oom_elsewhere(size_t size, size_t extra) {
    cpu_set_t cpus;
    if (sched_getaffinity(0, sizeof cpus, &cpus) == 0 && CPU_COUNT(&cpus) < 2) {
        printf("  one CPU: nothing to find elsewhere\n");
        return 1;
    }
    tm_test_oom_size = size;
    return tm_test_capped(tm_test_refill_elsewhere, extra);
}

/* Figures of the JSON statistics (tinymalloc_stats_print), all from one print: out[i] is the
 * number after the first `"keys[i]": ` that follows `from` (NULL: from the start), or
 * UINT64_MAX when there is none. For the tests that run with tinymalloc linked or preloaded. */
void tinymalloc_stats_print(int fd, int json);
__attribute__((unused)) static void tm_test_stats(const char *from, const char *const *keys,
                                                  unsigned long long *out, int n) {
    static char buf[1 << 16];
    ssize_t got = -1;
    FILE *f = tmpfile();
    if (f != NULL) {
        tinymalloc_stats_print(fileno(f), 1);
        got = pread(fileno(f), buf, sizeof buf - 1, 0);
        fclose(f);
    }
    buf[got > 0 ? got : 0] = 0;
    char *at = got <= 0 ? NULL : from ? strstr(buf, from) : buf;
    for (int i = 0; i < n; i++) {
        char k[64];
        snprintf(k, sizeof k, "\"%s\": ", keys[i]);
        char *v = at ? strstr(at, k) : NULL;
        out[i] = v ? strtoull(v + strlen(k), NULL, 10) : (unsigned long long)-1;
    }
}

/* One figure, as tm_test_stats. */
__attribute__((unused)) static unsigned long long tm_test_stat(const char *from, const char *key) {
    unsigned long long v;
    tm_test_stats(from, &key, &v, 1);
    return v;
}

#endif
