/* A program whose allocations are known exactly, for the test of the profile mode
 * (test_profile_mode.py). It uses sizes nothing else in a process asks for. Prints
 * "pid N" and, for the children, "child N" / "exec-child N". Built by the test with
 * -O0 -fno-builtin (so no malloc/free pair is optimised away). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile sink;
static pthread_barrier_t barrier;

static void *thread_main(void *arg) {
    (void)arg;
    void *b[500];
    for (int i = 0; i < 500; i++) b[i] = malloc(4444); /* E: 2 x 500 live at once */
    pthread_barrier_wait(&barrier);
    for (int i = 0; i < 500; i++) free(b[i]);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "exec-child") == 0) {
        for (int i = 0; i < 7; i++) sink = malloc(6666); /* K: 7, never freed */
        printf("exec-child %d\n", (int)getpid());
        return 0;
    }
    printf("pid %d\n", (int)getpid());
    fflush(stdout);
    static void *a[1000];
    for (int i = 0; i < 1000; i++) a[i] = malloc(777); /* A: 1000 live at once */
    for (int i = 999; i >= 0; i--) free(a[i]);
    for (int i = 0; i < 10; i++) sink = malloc(1555); /* B: 10 never freed */
    for (int i = 0; i < 100; i++) free(malloc(2333)); /* C: 100 short-lived */
    void *d = malloc(3111);                           /* D: lives 200 ticks */
    static void *e[200];
    for (int i = 0; i < 200; i++) e[i] = malloc(3112);
    free(d);
    for (int i = 0; i < 200; i++) free(e[i]); /* lifetimes 200 - i */
    pthread_t t[2];
    pthread_barrier_init(&barrier, NULL, 2);
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, thread_main, NULL);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    free(calloc(3, 1000));  /* F: one 3000-byte request */
    void *g = malloc(5000); /* G: 5000, 5100, 6000 */
    g = realloc(g, 5100);
    g = realloc(g, 6000);
    free(g);
    void *h = NULL;
    if (posix_memalign(&h, 64, 7000)) return 1; /* H: one 7000 */
    free(h);
    void *big[5];
    for (int i = 0; i < 5; i++) big[i] = malloc(100000); /* I: pooled as 131072 */
    for (int i = 0; i < 5; i++) free(big[i]);
    fflush(stdout);
    pid_t c = fork(); /* J: fork, no exec */
    if (c == 0) {
        for (int i = 0; i < 42; i++) sink = malloc(5555);
        printf("child %d\n", (int)getpid());
        exit(0);
    }
    waitpid(c, NULL, 0);
    fflush(stdout);
    c = fork(); /* K: fork + exec */
    if (c == 0) {
        execl("/proc/self/exe", argv[0], "exec-child", (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(c, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
