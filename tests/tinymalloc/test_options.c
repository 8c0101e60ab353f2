/* Configuration (options.c) and statistics output (stats.c): the test runs itself again with
 * TINYMALLOC_CONF set, because options are read once at start-up. */
#include "tm_test.h"
#include "tinymalloc.h"

#include <malloc.h>
#include <fcntl.h>

static void *(*volatile vmalloc)(size_t) = malloc;
static void (*volatile vfree)(void *) = free; /* the fills before a free are not dead stores */

/* Child mode: print usable sizes of a few requests. */
static int child(void) {
    size_t ns[] = {1, 33, 100, 2000};
    for (int i = 0; i < 4; i++) {
        void *p = vmalloc(ns[i]);
        printf("%zu=%zu\n", ns[i], malloc_usable_size(p));
        free(p);
    }
    return 0;
}

/* Child mode "medium SIZE": eight live blocks of SIZE bytes, each filled with its own byte,
 * must keep their contents and not overlap (medium_max above a chunk's capacity once gave
 * blocks 4 MiB apart: 7 of 8 were overwritten). */
static int child_medium(size_t n) {
    unsigned char *ps[8];
    for (int i = 0; i < 8; i++) {
        ps[i] = vmalloc(n);
        if (ps[i] == NULL) return printf("medium: malloc(%zu) failed\n", n), 1;
        memset(ps[i], 'a' + i, n);
    }
    int bad = 0;
    for (int i = 0; i < 8; i++) {
        for (size_t k = 0; k < n; k += 4096) bad += ps[i][k] != 'a' + i;
        bad += ps[i][n - 1] != 'a' + i;
        for (int j = 0; j < 8; j++)
            if (j != i && ps[i] < ps[j] + n && ps[j] < ps[i] + malloc_usable_size(ps[i])) bad++;
    }
    printf("medium %zu: %s\n", n, bad ? "CORRUPT" : "intact");
    for (int i = 0; i < 8; i++) free(ps[i]);
    return bad != 0;
}

static long lazyfree_kb(void) {
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "LazyFree: %ld kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb;
}

/* Child mode "purge": frees a heap block and arena blocks under purging at once, then checks
 * what must hold whichever way the pages went back: calloc still returns zeros over pages
 * MADV_FREE may have left as they were, and the arena chunks released and taken again (the
 * chunk layer counts on released chunks reading zero) give intact, disjoint blocks. Prints
 * the kernel's LazyFree figure after the frees. */
static int child_purge(void) {
    size_t big = 4u << 20;
    unsigned char *p = vmalloc(big);
    memset(p, 0xff, big);
    vfree(p); /* its span goes back to the chunk layer (heap_retain:0), for the arena to take */
    void *small[64];
    for (int i = 0; i < 64; i++) memset(small[i] = vmalloc(100000), 0xcd, 100000);
    fflush(stdout);
    tinymalloc_stats_print(1, 0); /* the arena's chunks, while the blocks live */
    for (int i = 0; i < 64; i++) vfree(small[i]);
    printf("lazyfree %ld\n", lazyfree_kb());
    unsigned char *z = calloc(1, big);
    size_t nonzero = 0;
    for (size_t i = 0; i < big; i++) nonzero += z[i] != 0;
    printf("calloc nonzero %zu\n", nonzero);
    free(z);
    return child_medium(100000);
}

/* Runs this program in child mode with conf; returns its stdout+stderr. */
static char *run_mode(const char *conf, const char *mode, const char *arg, char *out, size_t cap);
static char *run_with(const char *conf, char *out, size_t cap) {
    return run_mode(conf, "child", NULL, out, cap);
}
static char *run_mode(const char *conf, const char *mode, const char *arg, char *out, size_t cap) {
    int pfd[2];
    if (pipe(pfd)) return NULL;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 1);
        dup2(pfd[1], 2);
        char env[512];
        snprintf(env, sizeof env, "TINYMALLOC_CONF=%s", conf);
        char *envp[] = {env, NULL};
        char *argv[] = {"test_options", (char *)mode, (char *)arg, NULL};
        execve("/proc/self/exe", argv, envp);
        _exit(127);
    }
    close(pfd[1]);
    size_t len = 0;
    ssize_t r;
    while (len < cap - 1 && (r = read(pfd[0], out + len, cap - 1 - len)) > 0) len += (size_t)r;
    out[len] = 0;
    close(pfd[0]);
    int st;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) printf("  child failed: %#x\n%s", st, out);
    return out;
}

static int count_lines(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)) != NULL; p++) n++;
    return n;
}

static void defaults(void) {
    char out[4096];
    run_with("", out, sizeof out);
    CHECK(strstr(out, "1=16\n") && strstr(out, "33=48\n") && strstr(out, "100=112\n"));
    CHECK(strstr(out, "tinymalloc:") == NULL);
}

/* Four classes per doubling, and from 256 B one at an eighth past each power of two: a power
 * of two plus a header (sqlite's 4096 + 272-byte pages) no longer takes the next quarter step. */
static void default_classes_catch_a_power_of_two_plus_a_header(void) {
    static const size_t want[][2] = {
        {200, 224},   {256, 256},   {264, 288},   {300, 320},   {520, 576},
        {1024, 1024}, {1032, 1152}, {1153, 1280}, {1300, 1536}, {2056, 2304},
        {4096, 4096}, {4368, 4608}, {4609, 5120}, {8192, 8192},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        void *p = vmalloc(want[i][0]);
        size_t got = malloc_usable_size(p);
        if (got != want[i][1])
            printf("  malloc(%zu): %zu usable, want %zu\n", want[i][0], got, want[i][1]);
        CHECK(got == want[i][1]);
        vfree(p);
    }
}

static void bad_tokens_are_named_and_defaults_stand(void) {
    char out[4096];
    run_with(
        "bogus,stats:maybe,classes:16/8,tiny_max:7,reserve:3m,prealloc:1/2,slab_purge_delay:-1",
        out, sizeof out);
    CHECK(count_lines(out, "TINYMALLOC_CONF: ignoring 'bogus'") == 1);
    CHECK(count_lines(out, "ignoring 'stats:maybe'") == 1);
    CHECK(count_lines(out, "ignoring 'classes:16/8'") == 1);
    CHECK(count_lines(out, "ignoring 'tiny_max:7'") == 1);
    CHECK(count_lines(out, "ignoring 'reserve:3m'") == 1);
    CHECK(count_lines(out, "ignoring 'prealloc:1/2' (one count, or one per class: there are") == 1);
    CHECK(count_lines(out, "ignoring 'slab_purge_delay:-1'") == 1);
    CHECK(count_lines(out, "tinymalloc:") == 7); /* one line per bad token, nothing else */
    CHECK(strstr(out, "1=16\n") && strstr(out, "100=112\n")); /* the program ran on defaults */
}

static void explicit_classes(void) {
    char out[4096];
    run_with("classes:32/96/1024,prealloc:10/10/10,prefault:1", out, sizeof out);
    CHECK(strstr(out, "1=32\n") && strstr(out, "33=96\n") && strstr(out, "100=1024\n"));
    /* 2000 is above the largest class: served by the next tier. */
    CHECK(strstr(out, "2000=1024\n") == NULL && strstr(out, "tinymalloc:") == NULL);
}

static void small_max_and_tiny_max(void) {
    char out[4096];
    run_with("tiny_max:32,small_max:1024", out, sizeof out);
    CHECK(strstr(out, "1=16\n") && strstr(out, "33=48\n") && strstr(out, "100=112\n"));
    run_with("tiny_max:256", out, sizeof out);
    CHECK(strstr(out, "100=112\n") && strstr(out, "2000=2048\n"));
}

static void stats_table_and_json(void) {
    char out[16384];
    run_with("stats:1", out, sizeof out);
    CHECK(strstr(out, "tinymalloc statistics, pid") && strstr(out, " os: mmap "));
    char path[] = "/tmp/tm-test-stats-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    char conf[128];
    snprintf(conf, sizeof conf, "stats:json,stats_file:%s", path);
    run_with(conf, out, sizeof out);
    fd = open(path, O_RDONLY);
    char js[16384] = {0};
    ssize_t r = read(fd, js, sizeof js - 1);
    close(fd);
    unlink(path);
    CHECK(r > 0 && strncmp(js, "{\"allocator\": \"tinymalloc\"", 26) == 0);
    CHECK(strstr(js, "\"classes\": [{\"size\": 16, \"allocs\": ") &&
          strstr(js, "\"os\": {\"mmap\": "));
    /* %p in the path is the pid: one file per process. */
    run_with("stats:json,stats_file:/tmp/tm-test-%p.json", out, sizeof out);
    CHECK(strstr(out, "cannot open") == NULL);
}

/* medium_max past what one arena chunk holds is refused with one line naming it, the default
 * stands, and blocks of that size stay intact; at the capacity itself it is taken. */
static void medium_max_fits_one_chunk(void) {
    char out[4096];
    static const char *too_big[] = {"medium_max:8m", "medium_max:16m", "medium_max:4m",
                                    "arena_unit:64k,medium_max:4033k"};
    for (int i = 0; i < 4; i++) {
        run_mode(too_big[i], "medium", "5242880", out, sizeof out);
        const char *tok = strstr(too_big[i], "medium_max");
        char want[64];
        snprintf(want, sizeof want, "ignoring '%s'", tok);
        CHECK(count_lines(out, want) == 1);
        CHECK(count_lines(out, "tinymalloc:") == 1);
        CHECK(strstr(out, "medium 5242880: intact\n") != NULL);
    }
    /* 4 MiB chunks of 64 KiB units: one unit of metadata, 63 for blocks */
    run_mode("arena_unit:64k,medium_max:4032k", "medium", "4128768", out, sizeof out);
    CHECK(strstr(out, "tinymalloc:") == NULL && strstr(out, "medium 4128768: intact\n"));
    run_mode("medium_max:4m", "medium", "4000000", out, sizeof out);
    CHECK(strstr(out, "ignoring 'medium_max:4m' (16k to 4084k: one arena chunk at arena_unit 4k)"));
}

/* purge_lazy:1 purges with MADV_FREE (the kernel counts the pages as LazyFree until it takes
 * them); the default, MADV_DONTNEED, leaves none. Either way nothing reads stale bytes. With
 * heap_retain:64m the freed heap block is purged in place (lazily when asked); with 0 its span
 * goes back to the chunk layer, which always zeroes, and the arena builds chunks on it. */
static void purge_lazy(void) {
    char out[4096];
    long lazy[2] = {-2, -2};
    for (int l = 0; l < 2; l++) {
        for (int retain = 0; retain < 2; retain++) {
            char conf[160];
            snprintf(conf, sizeof conf,
                     "purge_lazy:%d,heap_retain:%s,heap_purge_delay:0,arena_purge_delay:0,"
                     "arena_dirty:0,arena_retain:0,medium_cache:0,arenas:1",
                     l, retain ? "64m" : "0");
            run_mode(conf, "purge", NULL, out, sizeof out);
            const char *lf = strstr(out, "lazyfree ");
            if (retain) lazy[l] = lf ? strtol(lf + 9, NULL, 10) : -2;
            printf("  purge_lazy:%d heap_retain:%s: lazyfree %ld kB\n", l, retain ? "64m" : "0",
                   lf ? strtol(lf + 9, NULL, 10) : -2);
            CHECK(strstr(out, "calloc nonzero 0\n") != NULL);
            CHECK(strstr(out, "medium 100000: intact\n") != NULL);
            CHECK(strstr(out, "tinymalloc:") == NULL);
            /* 64 blocks of 25 units fill two chunks of 1019. A released chunk that kept its
             * old bytes would give the arena stale metadata (a chunk marked in use or
             * purging), and the arena would take more. One arena (arenas:1): with one per
             * CPU, a child that migrates between CPUs mid-loop fills a second arena's chunk
             * too (CI-like load made it 3 once). */
            const char *ar = strstr(out, " arena: ");
            const char *ch = ar ? strstr(ar, " chunks ") : NULL;
            CHECK(ch && strtol(ch + 8, NULL, 10) == 2);
        }
    }
    CHECK(lazy[0] == 0);
    CHECK(lazy[1] >= 1024); /* most of the heap block's 4 MiB, in kB */
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "child") == 0) return child();
    if (argc > 1 && strcmp(argv[1], "purge") == 0) return child_purge();
    if (argc > 2 && strcmp(argv[1], "medium") == 0) return child_medium(strtoul(argv[2], NULL, 10));
    RUN(defaults);
    RUN(default_classes_catch_a_power_of_two_plus_a_header);
    RUN(bad_tokens_are_named_and_defaults_stand);
    RUN(explicit_classes);
    RUN(small_max_and_tiny_max);
    RUN(stats_table_and_json);
    RUN(medium_max_fits_one_chunk);
    RUN(purge_lazy);
    TEST_EXIT();
}
