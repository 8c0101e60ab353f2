/* Fixture workload for the bench harness tests: a few thousand malloc/free calls, then a
 * TMBENCH line. Options: --n N (operations), --latency (adds latency_ns), --fail (verification
 * failure: exit 1), --crash (SIGSEGV via abort-like raise), --children K (forks K children that
 * allocate too), --sleep-ms MS (sleeps before exiting), --bad-json (prints a broken TMBENCH). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void churn(long n) {
    void **v = calloc(1024, sizeof *v);
    if (!v) exit(2);
    for (long i = 0; i < n; i++) {
        size_t k = (size_t)i % 1024;
        free(v[k]);
        v[k] = malloc(16 + (size_t)(i % 4096));
        if (!v[k]) exit(2);
        memset(v[k], (int)i, 16);
    }
    for (int k = 0; k < 1024; k++) free(v[k]);
    free(v);
}

int main(int argc, char **argv) {
    long n = 20000, sleep_ms = 0;
    int lat = 0, fail = 0, crash = 0, children = 0, bad_json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--n") && i + 1 < argc)
            n = atol(argv[++i]);
        else if (!strcmp(argv[i], "--sleep-ms") && i + 1 < argc)
            sleep_ms = atol(argv[++i]);
        else if (!strcmp(argv[i], "--children") && i + 1 < argc)
            children = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--latency"))
            lat = 1;
        else if (!strcmp(argv[i], "--fail"))
            fail = 1;
        else if (!strcmp(argv[i], "--crash"))
            crash = 1;
        else if (!strcmp(argv[i], "--bad-json"))
            bad_json = 1;
        else {
            fprintf(stderr, "fixture: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    for (int c = 0; c < children; c++) {
        pid_t p = fork();
        if (p == 0) {
            churn(n);
            _exit(0);
        }
    }
    churn(n);
    while (children-- > 0) wait(NULL);
    if (sleep_ms) {
        struct timespec ts = {sleep_ms / 1000, (sleep_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (crash) raise(SIGSEGV);
    if (fail) {
        fprintf(stderr, "fixture: verification failed\n");
        return 1;
    }
    if (bad_json) {
        printf("TMBENCH {\"ops\": \n");
        return 0;
    }
    printf("TMBENCH {\"ops\": %ld, \"seconds\": 0.001, \"ops_per_sec\": %ld, "
           "\"rss_kb_samples\": [[0, 1000], [0.001, 1200]]%s}\n",
           n, n * 1000,
           lat ? ", \"latency_ns\": {\"malloc\": {\"p50\": 20, \"p99\": 80, \"p999\": 400}, "
                 "\"free\": {\"p50\": 15, \"p99\": 60, \"p999\": 300}}"
               : "");
    return 0;
}
