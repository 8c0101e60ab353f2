/* libFuzzer target: the input is a program of allocation calls (malloc, calloc, realloc,
 * posix_memalign, aligned_alloc, memalign, free) on up to 1024 slots, run against the malloc of
 * this process (tinymalloc, linked in statically: see tests/fuzz/fuzz.mk).
 *
 * Every block is filled with a pattern derived from its slot and a generation number, checked
 * whole before it is freed or reallocated (realloc: the kept prefix, afterwards), except the
 * blocks of op 1, which are left unwritten until a realloc fills them, as a program may free or
 * grow a block it never wrote: whatever a free left in that memory must not make the allocator
 * take it for a freed block. calloc's
 * zeroes are checked, every result's alignment and usable size are checked, and every new
 * block is checked against all live blocks for overlap. Any violation aborts with a message
 * (a libFuzzer crash, whose input is saved). Bounded: sizes up to 4 MiB, alignments up to
 * 1 MiB, 1024 live blocks and 48 MiB live in all; every input frees what it allocated.
 *
 * Input: a sequence of records, each one op byte and up to 5 argument bytes:
 *   op % 8: 0 malloc  1 malloc, unwritten  2 calloc  3 realloc  4 posix_memalign
 *           5 aligned_alloc  6 memalign  7 free
 *   slot   = 2 bytes (little endian) % 1024
 *   size   = a class byte (% 16: 0-7 up to 256 B, 8-11 16 KiB, 12-14 512 KiB, 15 4 MiB) and
 *            2 bytes scaled into that range
 *   align  = 1 << (byte % 21)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { SLOTS = 1024 };
#define MAX_LIVE_BYTES ((size_t)48 << 20)

struct slot {
    unsigned char *p;
    size_t size;
    uint32_t gen;
    int unwritten; /* never filled: not checked */
};
static struct slot slots[SLOTS];
static size_t live_bytes;
static uint32_t generation;

/* Called through volatile pointers: the compiler must not fold or drop an allocation. */
static void *(*volatile v_malloc)(size_t) = malloc;
static void *(*volatile v_calloc)(size_t, size_t) = calloc;
static void *(*volatile v_realloc)(void *, size_t) = realloc;
static int (*volatile v_posix_memalign)(void **, size_t, size_t) = posix_memalign;
static void *(*volatile v_aligned_alloc)(size_t, size_t) = aligned_alloc;
static void *(*volatile v_memalign)(size_t, size_t) = memalign;
static void (*volatile v_free)(void *) = free;

static void die(const char *what, int slot, const void *p, size_t size) {
    char buf[256];
    int n = snprintf(buf, sizeof buf, "fuzz_malloc: %s (slot %d, block %p, size %zu)\n", what, slot,
                     p, size);
    if (write(2, buf, (size_t)n) < 0) abort();
    abort();
}

/* The pattern of a block: 64-bit words that depend on slot, generation and position (blocks
 * are 16-byte aligned, which check_new verifies first), the tail bytes from one more word. */
static inline uint64_t pat(int slot, uint32_t gen, size_t word) {
    return ((uint64_t)(uint32_t)slot << 40 ^ (uint64_t)gen << 8 ^ word) * 0x9E3779B97F4A7C15ull;
}

static void fill(int s) {
    struct slot *b = &slots[s];
    b->unwritten = 0;
    uint64_t *w = (uint64_t *)(void *)b->p;
    size_t nw = b->size / 8;
    for (size_t i = 0; i < nw; i++) w[i] = pat(s, b->gen, i);
    uint64_t t = pat(s, b->gen, nw);
    memcpy(b->p + nw * 8, &t, b->size % 8);
}

static void check(int s, size_t upto) {
    struct slot *b = &slots[s];
    if (b->unwritten) return;
    size_t n = upto < b->size ? upto : b->size;
    const uint64_t *w = (const uint64_t *)(const void *)b->p;
    size_t nw = n / 8;
    for (size_t i = 0; i < nw; i++)
        if (w[i] != pat(s, b->gen, i)) die("block contents changed", s, b->p, b->size);
    uint64_t t = pat(s, b->gen, nw);
    if (memcmp(b->p + nw * 8, &t, n % 8)) die("block contents changed (tail)", s, b->p, b->size);
}

static void check_new(int s, const unsigned char *p, size_t size, size_t align) {
    if (align && ((uintptr_t)p & (align - 1))) die("misaligned block", s, p, size);
    if ((uintptr_t)p & 15) die("block not 16-byte aligned", s, p, size);
    size_t usable = malloc_usable_size((void *)p);
    if (usable < size) die("malloc_usable_size below the request", s, p, size);
    size_t len = size ? size : 1;
    for (int i = 0; i < SLOTS; i++) {
        const struct slot *o = &slots[i];
        if (!o->p || i == s) continue;
        size_t olen = o->size ? o->size : 1;
        if (p < o->p + olen && o->p < p + len) die("block overlaps a live block", s, p, size);
    }
}

static void release(int s) {
    struct slot *b = &slots[s];
    if (!b->p) return;
    check(s, b->size);
    v_free(b->p);
    live_bytes -= b->size;
    b->p = NULL;
    b->size = 0;
}

static void place(int s, unsigned char *p, size_t size, size_t align, int unwritten) {
    check_new(s, p, size, align);
    slots[s].p = p;
    slots[s].size = size;
    slots[s].gen = ++generation;
    live_bytes += size;
    if (unwritten)
        slots[s].unwritten = 1;
    else
        fill(s);
}

struct input {
    const uint8_t *d;
    size_t n, i;
};
static unsigned get8(struct input *in) { return in->i < in->n ? in->d[in->i++] : 0; }
static unsigned get16(struct input *in) {
    unsigned lo = get8(in);
    return lo | get8(in) << 8;
}
static size_t get_size(struct input *in) {
    /* the class byte % 16: 0-7 up to 256 B, 8-11 16 KiB, 12-14 512 KiB, 15 4 MiB (rarer, as
     * each costs a mapping and its page faults) */
    unsigned c = get8(in) % 16;
    size_t lim = c < 8 ? 256 : c < 12 ? 16 << 10 : c < 15 ? 512 << 10 : 4 << 20;
    size_t v = get16(in);
    return lim <= 65536 ? v % (lim + 1) : (v * (lim / 65536) + (v & 0xff)) % (lim + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct input in = {data, size, 0};
    while (in.i < in.n) {
        unsigned op = get8(&in) % 8;
        int s = (int)(get16(&in) % SLOTS);
        if (op == 7) {
            release(s);
            continue;
        }
        size_t n = get_size(&in);
        if (op == 3) { /* realloc: keep the prefix; realloc(p, 0) frees and returns NULL */
            struct slot *b = &slots[s];
            if (b->p && live_bytes - b->size + n > MAX_LIVE_BYTES) continue;
            if (!b->p && live_bytes + n > MAX_LIVE_BYTES) continue;
            if (b->p) check(s, b->size);
            unsigned char *old = b->p;
            size_t oldsize = b->size;
            unsigned char *r = v_realloc(old, n);
            if (!r) {
                if (n == 0 && old) { /* freed */
                    live_bytes -= oldsize;
                    b->p = NULL;
                    b->size = 0;
                    continue;
                }
                die("realloc returned NULL", s, old, n);
            }
            b->p = NULL; /* not live while it is checked against the others */
            live_bytes -= oldsize;
            check_new(s, r, n, 16);
            b->p = r;
            b->size = n;
            live_bytes += n;
            check(s, oldsize < n ? oldsize : n); /* the kept prefix, still of the old generation */
            b->gen = ++generation;
            fill(s);
            continue;
        }
        release(s);
        if (live_bytes + n > MAX_LIVE_BYTES) continue;
        size_t align = 0;
        void *p = NULL;
        switch (op) {
        case 0:
        case 1: p = v_malloc(n); break;
        case 2: {
            size_t k = (get8(&in) % 8) + 1; /* calloc(n / k, k): n rounded down to k */
            n = n / k * k;
            p = v_calloc(n / k, k);
            if (p)
                for (size_t i = 0; i < n; i++)
                    if (((unsigned char *)p)[i]) die("calloc memory not zeroed", s, p, n);
            break;
        }
        case 4:
            align = (size_t)1 << (get8(&in) % 21);
            if (align < sizeof(void *)) align = sizeof(void *);
            if (v_posix_memalign(&p, align, n) != 0) p = NULL;
            break;
        case 5:
            align = (size_t)1 << (get8(&in) % 21);
            p = v_aligned_alloc(align, n);
            break;
        case 6:
            align = (size_t)1 << (get8(&in) % 21);
            p = v_memalign(align, n);
            break;
        }
        if (!p) die("allocation returned NULL", s, NULL, n);
        place(s, p, n, align, op == 1);
    }
    for (int s = 0; s < SLOTS; s++) release(s);
    if (live_bytes != 0) die("live byte count off", -1, NULL, live_bytes);
    return 0;
}

/* The whole process must use the malloc linked into it, not libc's. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    Dl_info self, m;
    void *f = dlsym(RTLD_DEFAULT, "malloc");
    if (!f || !dladdr(f, &m) || !dladdr((void *)LLVMFuzzerTestOneInput, &self) ||
        m.dli_fbase != self.dli_fbase) {
        fprintf(stderr, "fuzz_malloc: malloc is not the one linked into this program (%s)\n",
                f && dladdr(f, &m) ? m.dli_fname : "?");
        abort();
    }
    return 0;
}
