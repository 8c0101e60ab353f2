/* A deliberately broken allocator for tests/workloads: an LD_PRELOAD shim over the real
 * malloc. BROKEN_MALLOC=corrupt flips a byte of the previous block every 1000th call;
 * BROKEN_MALLOC=null fails every call after the 1000th. The workloads must notice. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static void *(*real_malloc)(size_t);
static unsigned long calls;
static unsigned char *prev;
static int mode = -1; /* 0 off, 1 corrupt, 2 null */

void *malloc(size_t n) {
    if (!real_malloc) real_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    if (mode < 0) {
        const char *m = getenv("BROKEN_MALLOC");
        mode = !m ? 0 : strcmp(m, "corrupt") == 0 ? 1 : strcmp(m, "null") == 0 ? 2 : 0;
    }
    calls++;
    if (mode == 2 && calls > 1000) return NULL;
    if (mode == 1 && calls % 1000 == 0 && prev) prev[0] ^= 0xff;
    void *p = real_malloc(n);
    prev = p;
    return p;
}
