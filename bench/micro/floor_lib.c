/* The library floor (pairs mode floor-lib): the floor's thread-local free list, in a shared
 * library of its own. pairs calls it through the PLT with initial-exec TLS, the path by which
 * a program reaches a preloaded or linked malloc, so its time is the least any such allocator
 * can take: the part of a pair that is the call path and not the allocator. */
#include <stddef.h>

#define FLOOR_LIB_BLOCKS 16
#define FLOOR_LIB_BLOCK 8192

struct floor_lib_block {
    struct floor_lib_block *next;
};
static __thread struct floor_lib_block *head __attribute__((tls_model("initial-exec")));
static char pool[FLOOR_LIB_BLOCKS][FLOOR_LIB_BLOCK] __attribute__((aligned(64)));

size_t floor_lib_block_size(void) { return FLOOR_LIB_BLOCK; }

void floor_lib_init(void) {
    for (int i = FLOOR_LIB_BLOCKS - 1; i >= 0; i--) {
        struct floor_lib_block *b = (struct floor_lib_block *)pool[i];
        b->next = head;
        head = b;
    }
}

__attribute__((aligned(64))) void *floor_lib_alloc(size_t size) {
    (void)size;
    struct floor_lib_block *b = head;
    if (__builtin_expect(b == NULL, 0)) return NULL;
    head = b->next;
    return b;
}

__attribute__((aligned(64))) void floor_lib_free(void *p) {
    struct floor_lib_block *b = p;
    b->next = head;
    head = b;
}
