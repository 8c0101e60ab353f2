/* The allocation profile (profile.c): the test runs itself with TINYMALLOC_CONF=profile:PATH
 * and checks the written counts against the allocations it made. */
#include "tm_test.h"

#include <fcntl.h>
#include <pthread.h>

static void *(*volatile vmalloc)(size_t) = malloc;
static void *(*volatile vrealloc)(void *, size_t) = realloc;
static void (*volatile vfree)(void *) = free;

static void *thread_work(void *arg) {
    for (int i = 0; i < 1000; i++) vfree(vmalloc(1000));
    return arg;
}

/* Child mode: a known sequence of requests. Sizes are chosen so no libc call of this program
 * requests them (libc's own requests land in other rows). */
static int child(int do_fork) {
    void *keep[50];
    for (int i = 0; i < 50; i++) keep[i] = vmalloc(24 * 1000 + 8); /* 50 live at once */
    for (int i = 0; i < 50; i++) vfree(keep[i]);
    for (int i = 0; i < 7; i++) vfree(vmalloc(9000000)); /* above 65536: pooled as 2^24 */
    void *r = vmalloc(4000);
    r = vrealloc(r, 4090); /* in place: a free of 4000 and a request of 4090 */
    pthread_t t;
    pthread_create(&t, NULL, thread_work, NULL);
    pthread_join(t, NULL);
    vmalloc(3333); /* never freed */
    vfree(r);
    if (do_fork) {
        void *inherited = vmalloc(7777); /* the child frees it after its 5 requests */
        pid_t pid = fork();
        if (pid == 0) {
            for (int i = 0; i < 5; i++) vfree(vmalloc(5555));
            vfree(inherited);
            exit(0);
        }
        waitpid(pid, NULL, 0);
    }
    return 0;
}

static int read_file(const char *path, char *buf, size_t cap) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    ssize_t r = read(fd, buf, cap - 1);
    close(fd);
    buf[r > 0 ? r : 0] = 0;
    return r > 0;
}

/* Runs the child with profiling into dir; returns the child's pid. */
static pid_t run_profiled(const char *dir, const char *mode) {
    char env[300];
    snprintf(env, sizeof env, "TINYMALLOC_CONF=profile:%s/p.%%p.json", dir);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        char *envp[] = {env, NULL};
        char *argv[] = {"test_profile", (char *)mode, NULL};
        execve("/proc/self/exe", argv, envp);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return pid;
}

static void counts_match_known_allocations(void) {
    char dir[] = "/tmp/tm-profile-XXXXXX", path[300], js[65536];
    CHECK(mkdtemp(dir) != NULL);
    pid_t pid = run_profiled(dir, "child");
    snprintf(path, sizeof path, "%s/p.%d.json", dir, (int)pid);
    CHECK(read_file(path, js, sizeof js));
    unlink(path);
    rmdir(dir);
    CHECK(strncmp(js, "{\"format\": \"tinymalloc-profile-1\", \"pid\": ", 42) == 0);
    /* [size, count, peak_live, live_at_exit, lifetime_sum, short_lived(, pooled)] */
    CHECK(strstr(js, "[24008, 50, 50, 0, 1275, 50]") != NULL); /* lives: 50, 49, ... 1 */
    CHECK(strstr(js, "[16777216, 7, 1, 0, 7, 7, 1]") != NULL);
    CHECK(strstr(js, "[4000, 1, 1, 0, ") != NULL && strstr(js, "[4090, 1, 1, 0, ") != NULL);
    CHECK(strstr(js, "[1000, 1000, 1, 0, 1000, 1000]") != NULL); /* from another thread */
    CHECK(strstr(js, "[3333, 1, 1, 1, 0, 0]") != NULL);
    if (tm_test_case_failed) printf("  profile: %.2000s\n", js);
}

static void forked_child_writes_its_own_profile(void) {
    char dir[] = "/tmp/tm-profile-XXXXXX", path[300], js[65536];
    CHECK(mkdtemp(dir) != NULL);
    pid_t pid = run_profiled(dir, "fork");
    snprintf(path, sizeof path, "%s/p.%d.json", dir, (int)pid);
    CHECK(read_file(path, js, sizeof js));
    CHECK(strstr(js, "[5555, ") == NULL); /* the grandchild's requests are its own */
    unlink(path);
    /* The other file is the forked child's: only what it did after fork is counted. */
    int found = 0;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "cat %s/p.*.json", dir);
    FILE *f = popen(cmd, "r");
    size_t n = f ? fread(js, 1, sizeof js - 1, f) : 0;
    js[n] = 0;
    if (f) pclose(f);
    /* The leaked block it inherited is live, but was not requested by it. */
    found = strstr(js, "[5555, 5, 1, 0, ") != NULL && strstr(js, "[3333, 0, 1, 1, 0, 0]") != NULL &&
            strstr(js, "\"ticks\": 5,") != NULL;
    /* An inherited block freed in the child: requested by the parent (count 0 here), and its
     * lifetime counts the child's requests too, not a clock restarted at the fork. */
    unsigned long long life = 0, shorts = 0;
    const char *row = strstr(js, "[7777, 0, 1, 0, ");
    found = found && row && sscanf(row, "[7777, 0, 1, 0, %llu, %llu]", &life, &shorts) == 2 &&
            life >= 5 && life < 64 && shorts == 1;
    if (!found) printf("  profiles: %.3000s\n", js);
    CHECK(found);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

int main(int argc, char **argv) {
    if (argc > 1) return child(strcmp(argv[1], "fork") == 0);
    RUN(counts_match_known_allocations);
    RUN(forked_child_writes_its_own_profile);
    TEST_EXIT();
}
