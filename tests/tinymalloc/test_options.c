/* Configuration (options.c) and statistics output (stats.c): the test runs itself again with
 * TINYMALLOC_CONF set, because options are read once at start-up. */
#include "tm_test.h"

#include <malloc.h>
#include <fcntl.h>

static void *(*volatile vmalloc)(size_t) = malloc;

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

/* Runs this program in child mode with conf; returns its stdout+stderr. */
static char *run_with(const char *conf, char *out, size_t cap) {
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
        char *argv[] = {"test_options", "child", NULL};
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
    CHECK(count_lines(out, "ignoring prealloc") == 1);
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

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "child") == 0) return child();
    RUN(defaults);
    RUN(bad_tokens_are_named_and_defaults_stand);
    RUN(explicit_classes);
    RUN(small_max_and_tiny_max);
    RUN(stats_table_and_json);
    TEST_EXIT();
}
