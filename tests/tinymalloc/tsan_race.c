/* A deliberate data race on a block from the tsan library: test_tsan.py builds it to prove
 * that ThreadSanitizer sees tinymalloc's memory and that its reports fail a run. */
#include <pthread.h>
#include <stdlib.h>

static int *shared;

static void *writer(void *arg) {
    shared[0]++; /* unsynchronised with main's write */
    return arg;
}

int main(void) {
    shared = malloc(64); /* tinymalloc_malloc, through tests/tm_prefix.h */
    pthread_t t;
    pthread_create(&t, NULL, writer, NULL);
    shared[0]++;
    pthread_join(t, NULL);
    free(shared);
    return 0;
}
