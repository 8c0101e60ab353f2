/* The chunk layer (chunk.c) under a tight address-space limit, as `ulimit -v 262144` sets it:
 * a program that allocates until malloc fails gets NULL with ENOMEM (never a crash), keeps
 * every earlier block intact, and allocates again once it has freed some. Address space the
 * chunk layer holds unused (the rest of a reservation, released chunks) is given back before a
 * mapping of its own fails, so blocks of each tier fill most of the limit. Each size runs in
 * a fresh process (this program again), started under the limit as a shell's ulimit starts
 * one. With commit_chunks:1 the limits hold the same, the reservation is inaccessible
 * (PROT_NONE) but for the chunks in use, and the chunk map read-only but for its pages in use.
 * Chunks given back read zero when the program has locked its pages (mlockall), which madvise
 * cannot drop. */
#include "tm_test.h"
#include "tinymalloc.h"

#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

static void *(*volatile vmalloc)(size_t) = malloc;
static void (*volatile vfree)(void *) = free;
static void *(*volatile vcalloc)(size_t, size_t) = calloc;

#define LIMIT (256UL << 20)
#define MAXB 8192

/* In the child: 0 when all went as it must, else the number of the failed step. */
static int fill_the_limit(size_t size, size_t least) {
    static unsigned char *p[MAXB];
    int n = 0;
    errno = 0;
    while (n < MAXB && (p[n] = vmalloc(size)) != NULL) {
        p[n][0] = p[n][size / 2] = p[n][size - 1] = (unsigned char)n;
        n++;
    }
    if (n == MAXB) return 2; /* the limit did not bite */
    if (errno != ENOMEM) return 3;
    printf("  %zu-byte blocks: %d (%zu MiB) under a %lu MiB limit\n", size, n, n * size >> 20,
           LIMIT >> 20);
    fflush(stdout);
    if ((size_t)n * size < least) return 4;
    for (int i = 0; i < n; i++)
        if (p[i][0] != (unsigned char)i || p[i][size / 2] != (unsigned char)i ||
            p[i][size - 1] != (unsigned char)i)
            return 5;
    for (int i = 0; i < n; i += 2) vfree(p[i]);
    int again = 0;
    while (again < n / 2 && (p[again * 2] = vmalloc(size)) != NULL) again++;
    printf("  after freeing %d of them: %d more\n", (n + 1) / 2, again);
    fflush(stdout);
    if (again < n / 4) return 6;
    return 0;
}

static char *self;

static void run_in_child_conf(size_t size, size_t least, const char *conf) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (conf) setenv("TINYMALLOC_CONF", conf, 1);
        struct rlimit r = {LIMIT, LIMIT};
        char a[32], b[32];
        snprintf(a, sizeof a, "%zu", size);
        snprintf(b, sizeof b, "%zu", least);
        char *argv[] = {self, "fill", a, b, NULL};
        if (setrlimit(RLIMIT_AS, &r) == 0) execv("/proc/self/exe", argv);
        _exit(1);
    }
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
    if (!WIFEXITED(st)) printf("  %zu-byte blocks: the child died (status %#x)\n", size, st);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    if (WIFEXITED(st) && WEXITSTATUS(st)) printf("  failed step %d\n", WEXITSTATUS(st));
}

/* Arena, heap and own-mapping sizes; the least each must reach leaves room for the program,
 * its libraries and the chunk map's 32 MiB of .bss. */
static void run_in_child(size_t size, size_t least) { run_in_child_conf(size, least, NULL); }

static void arena_blocks_fill_the_limit(void) { run_in_child(100000, 150UL << 20); }
static void heap_blocks_fill_the_limit(void) { run_in_child(1000000, 150UL << 20); }
static void huge_blocks_fill_the_limit(void) { run_in_child(40000000, 120UL << 20); }

/* commit_chunks:1: the same limits, with the address space reserved inaccessible. */
static void committed_per_chunk_fills_the_limit(void) {
    run_in_child_conf(100000, 150UL << 20, "commit_chunks:1");
    run_in_child_conf(1000000, 150UL << 20, "commit_chunks:1");
}

/* The largest private anonymous mapping with permissions `want`, in MiB. */
static unsigned long largest_anon_mib(const char *want) {
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    unsigned long best = 0;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char perms[8];
        int n = 0;
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s%n", &lo, &hi, perms, &n) < 3) continue;
        while (line[n] == ' ') n++; /* no path: anonymous */
        if (strcmp(perms, want) == 0 && line[n] == '\n' && (hi - lo) >> 20 > best)
            best = (hi - lo) >> 20;
    }
    if (f) fclose(f);
    return best;
}

/* Child mode: blocks of every tier work (contents kept), then the largest reserved range and
 * the largest read-only one (the chunk map, but for the pages it uses). */
static int reserve_mode(void) {
    static const size_t sizes[] = {100, 100000, 5000000, 40000000};
    unsigned char *p[4][8];
    for (int s = 0; s < 4; s++)
        for (int i = 0; i < 8; i++) memset(p[s][i] = vmalloc(sizes[s]), s * 8 + i, sizes[s]);
    for (int s = 0; s < 4; s++)
        for (int i = 0; i < 8; i++)
            if (p[s][i][0] != s * 8 + i || p[s][i][sizes[s] - 1] != s * 8 + i) return 2;
    printf("%lu %lu\n", largest_anon_mib("---p"), largest_anon_mib("r--p"));
    for (int s = 0; s < 4; s++)
        for (int i = 0; i < 8; i++) vfree(p[s][i]);
    return 0;
}

static unsigned long reserved_with(const char *conf, unsigned long *read_only) {
    int fd[2];
    if (pipe(fd)) return 0;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 1);
        setenv("TINYMALLOC_CONF", conf, 1);
        char *argv[] = {self, "reserve", NULL};
        execv("/proc/self/exe", argv);
        _exit(1);
    }
    close(fd[1]);
    char buf[64] = "";
    ssize_t n = read(fd[0], buf, sizeof buf - 1);
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(n > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    char *end = buf;
    unsigned long r = n > 0 ? strtoul(buf, &end, 10) : 0;
    *read_only = n > 0 ? strtoul(end, NULL, 10) : 0;
    return r;
}

/* With commit_chunks:1 the reservation is inaccessible but for the chunks in use, and the
 * chunk map's 32 MiB read-only but for the pages that map them, so under
 * vm.overcommit_memory=2 (a system-wide setting a test must not change) only those are
 * charged; with 0 both are read-write throughout. */
static void reservation_is_inaccessible_when_asked(void) {
    unsigned long ro_on, ro_off;
    unsigned long on = reserved_with("commit_chunks:1", &ro_on);
    unsigned long off = reserved_with("commit_chunks:0", &ro_off);
    printf("  largest inaccessible range: %lu MiB with commit_chunks:1, %lu MiB with 0\n", on, off);
    printf("  largest read-only anonymous range: %lu MiB with commit_chunks:1, %lu MiB with 0\n",
           ro_on, ro_off);
    CHECK(on >= 512);
    CHECK(off < 64);
    CHECK(ro_on >= 16); /* 32 MiB less the pages written, at most two 16 GiB stretches apart */
    CHECK(ro_off == 0);
}

/* Child mode: with every page locked, madvise cannot drop pages, so a chunk given back would
 * keep what it held. A 40 MiB heap block, written and freed, gives its span's chunks back;
 * 2 MiB callocs then get heap spans of one chunk each, which the heap takes to be zero (a
 * listed chunk must be, or not be listed). Exit 0 when every byte of every calloc is zero,
 * 1 when one is not, 77 when the pages cannot be locked here. */
static int locked_mode(void) {
    if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0) return 77;
    size_t big = 40u << 20, n = 2u << 20;
    char *p = vmalloc(big);
    if (p == NULL) return 77;
    memset(p, 0xaa, big);
    vfree(p);
    for (int k = 0; k < 8; k++) {
        unsigned char *q = vcalloc(1, n);
        if (q == NULL) return 77;
        for (size_t i = 0; i < n; i++) {
            if (q[i]) {
                printf("  calloc %d of 2 MiB: byte %zu is %#x\n", k, i, q[i]);
                return 1;
            }
        }
    }
    return 0;
}

/* commit_chunks:1 keeps the reservation inaccessible, so mlockall locks only what is used. */
static void chunks_given_back_read_zero_when_pages_are_locked(void) {
    int code = tm_test_rerun("locked", "commit_chunks:1");
    if (code == 77) printf("  mlockall is not allowed here: nothing to check\n");
    CHECK(code == 0 || code == 77);
}

/* In a fresh process (heap_purge_delay as given): a huge block freed, then 24 MiB of blocks of
 * `each` bytes. Returns 0 when the freed block's pages served them without page faults and went
 * back once the delay had passed (kept), or went back at once (!kept); else the number of the
 * failed step. */
static int dirty_mode(bool kept, size_t each) {
    enum { FILL = 24 << 20 };
    size_t n = 48UL << 20; /* past huge_threshold (32 MiB) */
    char *p = vmalloc(n);
    if (p == NULL) return 2;
    for (size_t i = 0; i < n; i += 4096) p[i] = 1;
    long held = tm_test_rss_kb();
    vfree(p);
    struct tinymalloc_stats s;
    tinymalloc_stats_get(&s, sizeof s);
    long freed = tm_test_rss_kb();
    long faults = tm_test_minor_faults();
    static void *ps[FILL / 64];
    size_t count = FILL / each;
    for (size_t i = 0; i < count; i++) {
        ps[i] = vmalloc(each);
        memset(ps[i], 2, each);
    }
    faults = tm_test_minor_faults() - faults;
    printf("  %s: rss %ld kB held, %ld kB after the free (dirty chunks %zu KiB); %ld faults "
           "for %d MiB of %zu-byte blocks\n",
           getenv("TINYMALLOC_CONF"), held, freed, (size_t)(s.dirty_chunk_bytes >> 10), faults,
           FILL >> 20, each);
    if (!kept) return s.dirty_chunk_bytes == 0 && held - freed > (long)(n >> 11) ? 0 : 3;
    /* 48 MiB and the header: 13 chunks, all kept (heap_retain: 64 MiB). */
    if (s.dirty_chunk_bytes != 13UL << 22 || held - freed > (long)(n >> 12)) return 4;
    if (faults > (FILL >> 12) / 4) return 5;    /* without them: one per page, 6144 */
    struct timespec t = {1, 200 * 1000 * 1000}; /* past heap_purge_delay (1 s) */
    nanosleep(&t, NULL);
    /* The slab tier's slow path runs the purges due: a call that carves a page of blocks. */
    uint64_t madvise_before = s.os_madvise;
    for (size_t i = 0; i < count; i++) vfree(ps[i]);
    for (int i = 0; i < 4096; i++) ps[i] = vmalloc(64);
    tinymalloc_stats_get(&s, sizeof s);
    long after = tm_test_rss_kb();
    printf("  a delay later: rss %ld kB, dirty chunks %zu KiB, %llu madvise calls\n", after,
           (size_t)(s.dirty_chunk_bytes >> 10),
           (unsigned long long)(s.os_madvise - madvise_before));
    if (s.dirty_chunk_bytes != 0) return 6;
    /* The chunks no tier took lie next to each other: one purge for all of them (it was one
     * per chunk, 6 or 7). The slabs purge nothing yet, their pages emptied a moment ago. */
    if (each == 64 && s.os_madvise - madvise_before > 2) return 8;
    /* The tier took 6 or 7 of the 13 chunks, whose pages it keeps until its own delay has
     * passed; the rest, 24 MiB, went back. */
    return after < held - (16L << 10) ? 0 : 7;
}

/* A huge block's span goes to the chunk layer with its pages committed (up to heap_retain), the
 * slabs and the arenas take those chunks first and pay no page fault on them, and what no tier
 * takes is purged a heap_purge_delay later; with heap_purge_delay:0 it goes back at once. */
static void freed_huge_pages_serve_the_slabs(void) {
    CHECK(tm_test_rerun("dirty", "heap_purge_delay:1000") == 0);
    CHECK(tm_test_rerun("clean", "heap_purge_delay:0") == 0);
}

static void freed_huge_pages_serve_the_arenas(void) {
    CHECK(tm_test_rerun("dirty-medium", "heap_purge_delay:1000,medium_cache:0") == 0);
}

int main(int argc, char **argv) {
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
    puts("SKIP: address-space limits (the sanitizer's shadow memory needs the address space)");
    return 0;
#endif
    if (argc == 2 && strcmp(argv[1], "reserve") == 0) return reserve_mode();
    if (argc == 2 && strcmp(argv[1], "locked") == 0) return locked_mode();
    if (argc == 2 && strcmp(argv[1], "dirty") == 0) return dirty_mode(true, 64);
    if (argc == 2 && strcmp(argv[1], "clean") == 0) return dirty_mode(false, 64);
    if (argc == 2 && strcmp(argv[1], "dirty-medium") == 0) return dirty_mode(true, 100000);
    if (argc == 4 && strcmp(argv[1], "fill") == 0)
        return fill_the_limit(strtoul(argv[2], NULL, 10), strtoul(argv[3], NULL, 10));
    self = argv[0];
    RUN(arena_blocks_fill_the_limit);
    RUN(heap_blocks_fill_the_limit);
    RUN(huge_blocks_fill_the_limit);
    RUN(committed_per_chunk_fills_the_limit);
    RUN(reservation_is_inaccessible_when_asked);
    RUN(chunks_given_back_read_zero_when_pages_are_locked);
    RUN_RSS(freed_huge_pages_serve_the_slabs);
    RUN_RSS(freed_huge_pages_serve_the_arenas);
    TEST_EXIT();
}
