#!/usr/bin/env bash
# A library loaded with dlopen allocates and frees across threads under tinymalloc: blocks it
# allocates are freed by the program's threads and the other way round, from several threads,
# then the library is closed and the program goes on allocating.
set -u
root=${TM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
lib="$root/build/release/libtinymalloc.so"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
[ -f "$lib" ] || { echo "FAIL: library missing: $lib"; exit 1; }

cat > "$work/plugin.c" <<'C'
#include <stdlib.h>
#include <string.h>
/* Allocates blocks the caller frees, and frees blocks the caller allocated. */
void *plugin_make(size_t n) {
    unsigned char *p = malloc(n);
    if (p) memset(p, (int)(n & 0xff), n);
    return p;
}
int plugin_take(void *p, size_t n) {
    unsigned char *b = p;
    int ok = b[0] == (unsigned char)(n * 3) && b[n - 1] == (unsigned char)(n * 3);
    free(p);
    return ok;
}
C
cat > "$work/main.c" <<'C'
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static void *(*make)(size_t);
static int (*take)(void *, size_t);
static int bad;
static void *worker(void *arg) {
    unsigned x = (unsigned)(size_t)arg;
    for (int i = 0; i < 20000; i++) {
        x = x * 1664525 + 1013904223;
        size_t n = 16 + (x >> 8) % (i % 50 == 0 ? 400000 : 3000);
        unsigned char *p = make(n); /* the plugin's malloc, our free */
        if (!p || p[0] != (unsigned char)(n & 0xff) || p[n - 1] != (unsigned char)(n & 0xff)) bad = 1;
        free(p);
        unsigned char *q = malloc(n); /* our malloc, the plugin's free */
        memset(q, (int)((n * 3) & 0xff), n);
        if (!take(q, n)) bad = 1;
    }
    return NULL;
}
int main(int argc, char **argv) {
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) { printf("dlopen: %s\n", dlerror()); return 1; }
    make = (void *(*)(size_t))dlsym(h, "plugin_make");
    take = (int (*)(void *, size_t))dlsym(h, "plugin_take");
    if (!make || !take) return 1;
    pthread_t t[4];
    for (long i = 0; i < 4; i++) pthread_create(&t[i], NULL, worker, (void *)(i + 1));
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    dlclose(h);
    for (int i = 0; i < 1000; i++) free(malloc((size_t)i * 7 + 1));
    printf("%s\n", bad ? "corrupt" : "ok");
    return bad;
    (void)argc;
}
C
if ! cc -O1 -fPIC -shared "$work/plugin.c" -o "$work/libplugin.so" ||
   ! cc -O1 -pthread "$work/main.c" -o "$work/main" -ldl; then
    echo "FAIL: build"; exit 1
fi
# Linked against tinymalloc, and preloaded: both ways a program gets it.
out=$(cd "$work" && TINYMALLOC_CONF="stats:json,stats_file:$work/s.json" LD_PRELOAD="$lib" ./main "$work/libplugin.so" 2>&1)
if [ "$out" = ok ] && grep -q '"allocator": "tinymalloc"' "$work/s.json" 2>/dev/null; then
    echo "PASS: dlopened library allocates and frees across threads"
else
    echo "  $out"; echo "FAIL: dlopened library allocates and frees across threads"
fi
