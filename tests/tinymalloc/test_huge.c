/* Own mappings (huge.c): resized with mremap, given back on free. The heap takes every block
 * it can hold, so the test runs itself again with heap_max:4m, past which blocks get
 * mappings; alignments above a chunk get them whatever the heap's size. */
#include "tm_test.h"
#include "tinymalloc.h"

#include <malloc.h>
#include <stdint.h>

static void *(*volatile vmalloc)(size_t) = malloc;
static void *(*volatile vrealloc)(void *, size_t) = realloc;

static void realloc_uses_mremap_and_keeps_data(void) {
    struct tinymalloc_stats a, b;
    size_t n = 6u << 20;
    unsigned char *p = vmalloc(n);
    for (size_t i = 0; i < n; i += 4096) p[i] = (unsigned char)(i >> 12);
    tinymalloc_stats_get(&a, sizeof a);
    for (int k = 0; k < 8; k++) {
        size_t m = n + ((size_t)k + 1) * (5u << 20);
        p = vrealloc(p, m);
        CHECK(p != NULL);
        if (!p) return;
        for (size_t i = 0; i < n; i += 4096) CHECK(p[i] == (unsigned char)(i >> 12));
    }
    tinymalloc_stats_get(&b, sizeof b);
    CHECK(b.os_mremap > a.os_mremap);
    printf("  8 grows: %llu mremap, %llu mmap calls\n",
           (unsigned long long)(b.os_mremap - a.os_mremap),
           (unsigned long long)(b.os_mmap - a.os_mmap));
    /* No copy means no new block per grow: fewer mmaps than grows. */
    CHECK(b.os_mmap - a.os_mmap < 8);
    p = vrealloc(p, 5u << 20); /* shrink in place */
    for (size_t i = 0; i < (5u << 20); i += 4096) CHECK(p[i] == (unsigned char)(i >> 12));
    free(p);
}

static void free_unmaps(void) {
    struct tinymalloc_stats a, b;
    tinymalloc_stats_get(&a, sizeof a);
    void *p = vmalloc(40u << 20);
    memset(p, 1, 40u << 20);
    free(p);
    tinymalloc_stats_get(&b, sizeof b);
    CHECK(b.mapped_bytes <= a.mapped_bytes);
    CHECK(b.os_munmap > a.os_munmap);
}

static void large_alignments(void) {
    for (size_t align = 1u << 20; align <= (64u << 20); align <<= 1) {
        void *p = NULL;
        CHECK(posix_memalign(&p, align, 10u << 20) == 0);
        CHECK(((uintptr_t)p & (align - 1)) == 0);
        memset(p, 3, 10u << 20);
        p = vrealloc(p, 30u << 20); /* may move; contents stay */
        CHECK(p && ((unsigned char *)p)[(10u << 20) - 1] == 3);
        free(p);
    }
}

int main(int argc, char **argv) {
    (void)argc;
    if (getenv("TINYMALLOC_CONF") == NULL) {
        setenv("TINYMALLOC_CONF", "heap_max:4m", 1);
        execv("/proc/self/exe", argv);
        perror("execv");
        return 1;
    }
    RUN(realloc_uses_mremap_and_keeps_data);
    RUN(free_unmaps);
    RUN(large_alignments);
    TEST_EXIT();
}
