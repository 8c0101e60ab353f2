/* heap-probes: a set of heap errors, each run in its own child process, and what the allocator
 * in the process (whatever LD_PRELOAD puts there; linked against nothing but libc) did about it.
 *
 *   heap-probes [--list] [NAME...]      no NAME: every probe
 *   heap-probes --which                 the file of the library that serves malloc here
 *
 * One line per probe on stdout, tab-separated:  name  group  class  note
 * --list prints  name  group  description  instead, and runs nothing.
 *
 * Classes:
 *   detected  the process stopped with a diagnosis: SIGABRT (note: the first line of its stderr),
 *             or an exit status other than 0 with a message; for the size probes, a NULL return
 *             with errno ENOMEM (posix_memalign: ENOMEM returned; a bad alignment: EINVAL)
 *   wrong-errno  (size probes) NULL, but errno (or the return value) is not the expected one
 *   warned    the allocator printed a message on stderr but let the program go on
 *   silent    nothing noticed the error (exit 0, empty stderr); for the write-after-free probes
 *             the note says what the program then saw (a forged pointer handed out, overlapping
 *             blocks, dirty calloc memory, or no visible effect)
 *   crashed   killed by another signal (SIGSEGV, SIGBUS, ...) without a diagnosis; the note
 *             says whether the fault hit the program's own stray write or a later allocator call
 *   hung      still running after 10 s (killed)
 *
 * Exit status: 0 when every requested probe ran (whatever its class), 2 on a usage error. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* Called through volatile pointers so the compiler neither folds nor removes the calls. */
static void *(*volatile v_malloc)(size_t) = malloc;
static void *(*volatile v_calloc)(size_t, size_t) = calloc;
static void *(*volatile v_realloc)(void *, size_t) = realloc;
static void *(*volatile v_reallocarray)(void *, size_t, size_t) = reallocarray;
static int (*volatile v_posix_memalign)(void **, size_t, size_t) = posix_memalign;
static void *(*volatile v_aligned_alloc)(size_t, size_t) = aligned_alloc;
static void *(*volatile v_memalign)(size_t, size_t) = memalign;
static void *(*volatile v_valloc)(size_t) = valloc;
static void *(*volatile v_pvalloc)(size_t) = pvalloc;
static void (*volatile v_free)(void *) = free;

static int result_fd = -1; /* the child's report to the parent */
/* Where a fault hits: 1 the program's own stray write, 2 an allocator call after it, 4 the
 * program using a block the allocator returned after it; 0 anywhere else. */
static volatile sig_atomic_t phase;

/* A report line from the child: "class<TAB>note". No allocation (vsnprintf into the stack). */
static void report(const char *cls, const char *fmt, ...) {
    char buf[512];
    int n = snprintf(buf, sizeof buf, "%s\t", cls);
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof buf - 1) n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    if (write(result_fd, buf, (size_t)n) < 0) _exit(99);
}

static void on_fault(int sig) {
    char buf[64];
    static const char *const where[] = {"", "at the stray write", "in an allocator call after it",
                                        "", "using a block returned after it"};
    int n = snprintf(buf, sizeof buf, "fault\t%s\n", where[phase >= 0 && phase <= 4 ? phase : 0]);
    if (write(result_fd, buf, (size_t)n) < 0) _exit(99);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* ---- double frees --------------------------------------------------------------------- */
static void df_small(void) {
    void *p = v_malloc(32);
    v_free(p);
    v_free(p);
}
static void df_medium(void) {
    void *p = v_malloc(20000);
    v_free(p);
    v_free(p);
}
static void df_large(void) {
    void *p = v_malloc(256 << 10);
    v_free(p);
    v_free(p);
}
static void df_huge(void) {
    void *p = v_malloc(16 << 20);
    v_free(p);
    v_free(p);
}
static void df_delayed(void) {
    void *p = v_malloc(48), *q[1000];
    v_free(p);
    for (int i = 0; i < 1000; i++) q[i] = v_malloc((size_t)(16 + (i * 37) % 2000));
    for (int i = 0; i < 1000; i += 2) v_free(q[i]);
    for (int i = 1; i < 1000; i += 2) v_free(q[i]);
    v_free(p);
}
/* free(a), free(b), free(a): a is not the most recently freed block. */
static void df_interleaved(void) {
    void *a = v_malloc(48), *b = v_malloc(48);
    v_free(a);
    v_free(b);
    v_free(a);
}
/* The same after seven other frees of the size (glibc's tcache bin is full: fastbins). */
static void df_interleaved_full(void) {
    void *f[7], *a, *b;
    for (int i = 0; i < 7; i++) f[i] = v_malloc(48);
    a = v_malloc(48);
    b = v_malloc(48);
    for (int i = 0; i < 7; i++) v_free(f[i]);
    v_free(a);
    v_free(b);
    v_free(a);
}
static void *free_it(void *p) {
    v_free(p);
    return NULL;
}
static void df_remote(void) {
    void *p = v_malloc(64);
    pthread_t t;
    if (pthread_create(&t, NULL, free_it, p) != 0) _exit(98);
    pthread_join(t, NULL);
    v_free(p);
}
/* realloc moved the block (it freed the old one); the program frees the old pointer. */
static void df_after_realloc(void) {
    char *p = v_malloc(24), *q = v_malloc(24); /* q pins the space after p */
    char *r = v_realloc(p, 100000);
    if (r == p) {
        report("silent", "realloc did not move the block; probe not applicable");
        _exit(0);
    }
    v_free(p);
    v_free(q);
    v_free(r);
}

/* ---- invalid frees -------------------------------------------------------------------- */
static void inv_stack(void) {
    _Alignas(64) char buf[256];
    memset(buf, 0, sizeof buf);
    v_free(buf + 64);
}
static void inv_static(void) {
    static _Alignas(64) char not_heap[4096];
    v_free(not_heap + 64);
}
static void inv_mmap_page(void) {
    char *m = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) _exit(98);
    v_free(m + 4096); /* page aligned, zeros before it */
}
static void inv_mmap_start(void) {
    char *m = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) _exit(98);
    v_free(m); /* the first byte of a mapping */
}
static void inv_unaligned(void) {
    char *p = v_malloc(64);
    v_free(p + 1);
}
static void inv_interior(void) {
    char *p = v_malloc(64);
    v_free(p + 16);
}
static void inv_interior_large(void) {
    char *p = v_malloc(1 << 20);
    v_free(p + 4096);
}
static void inv_realloc_stack(void) {
    _Alignas(64) char buf[256];
    memset(buf, 0, sizeof buf);
    char *r = v_realloc(buf + 64, 1000);
    if (r) report("silent", "realloc returned %p", (void *)r);
}
static void inv_realloc_interior(void) {
    char *p = v_malloc(100);
    char *r = v_realloc(p + 32, 1000);
    if (r) report("silent", "realloc returned %p", (void *)r);
}

/* ---- writes after free ---------------------------------------------------------------- */
enum { NEIGH = 32, MORE = 200, SZ = 64 };
static _Alignas(4096) char target[8192]; /* a forged pointer's destination */

struct blk {
    char *p;
    size_t n;
};
static struct blk live[NEIGH + MORE];
static int nlive;

static int overlaps(const char *p, size_t n) {
    for (int i = 0; i < nlive; i++)
        if (p < live[i].p + live[i].n && live[i].p < p + n) return 1;
    return 0;
}

/* Allocate NEIGH blocks of `size`, free the last one, let `scribble` write into it, then
 * allocate MORE blocks of the same size (calloc, then fill) and report what came back. */
static void waf_run(size_t size, void (*scribble)(char *, size_t)) {
    nlive = 0;
    for (int i = 0; i < NEIGH; i++) {
        live[nlive].p = v_malloc(size);
        live[nlive].n = size;
        memset(live[nlive].p, 0x11, size);
        nlive++;
    }
    char *victim = live[--nlive].p;
    v_free(victim);
    phase = 1;
    scribble(victim, size);
    phase = 2;
    const char *seen = NULL;
    for (int i = 0; i < MORE && !seen; i++) {
        char *q = v_calloc(1, size);
        if (!q) {
            seen = "calloc returned NULL";
            break;
        }
        if (q >= target && q < target + sizeof target)
            seen = "handed out the forged pointer";
        else if (overlaps(q, size))
            seen = "handed out a block overlapping a live one";
        else {
            phase = 4;
            for (size_t k = 0; k < size; k++)
                if (q[k]) {
                    seen = "calloc returned non-zero memory";
                    break;
                }
            phase = 2;
        }
        phase = 4;
        memset(q, 0x22, size);
        phase = 2;
        live[nlive].p = q;
        live[nlive].n = size;
        nlive++;
    }
    for (int i = 0; i < nlive; i++) v_free(live[i].p);
    phase = 3;
    if (seen)
        report("silent", "%s", seen);
    else
        report("silent", "no visible effect");
}
static void scr_forge(char *p, size_t n) { /* every word: a pointer into `target` */
    for (size_t k = 0; k + sizeof(void *) <= n && k < 256; k += sizeof(void *)) {
        char *t = target + 2048;
        memcpy(p + k, &t, sizeof t);
    }
}
static void scr_ones(char *p, size_t n) { memset(p, 0x41, n < 4096 ? n : 4096); }
static void scr_flip(char *p, size_t n) { /* off by one block in the first link word */
    (void)n;
    p[0] ^= (char)0x40;
}
static void scr_zero(char *p, size_t n) { memset(p, 0, n < 4096 ? n : 4096); }
static void waf_small_forge(void) { waf_run(SZ, scr_forge); }
static void waf_small_ones(void) { waf_run(SZ, scr_ones); }
static void waf_small_flip(void) { waf_run(SZ, scr_flip); }
static void waf_small_zero(void) { waf_run(SZ, scr_zero); }
static void waf_medium_ones(void) { waf_run(4096, scr_ones); }
static void waf_large_ones(void) { waf_run(100000, scr_ones); }
static void waf_huge_ones(void) {
    /* fewer blocks: 32 + 200 x 8 MiB is too much */
    char *p = v_malloc(8 << 20);
    memset(p, 1, 8 << 20);
    v_free(p);
    phase = 1;
    scr_ones(p, 8 << 20);
    phase = 2;
    char *q = v_calloc(1, 8 << 20);
    const char *seen = "no visible effect";
    if (!q)
        seen = "calloc returned NULL";
    else {
        for (size_t k = 0; k < 4096; k++)
            if (q[k]) {
                seen = "calloc returned non-zero memory";
                break;
            }
    }
    v_free(q);
    phase = 3;
    report("silent", "%s", seen);
}

/* ---- impossible sizes ----------------------------------------------------------------- */
static size_t volatile SMAX = SIZE_MAX;

static const char *errname(int e) {
    switch (e) {
    case 0: return "errno 0";
    case ENOMEM: return "ENOMEM";
    case EINVAL: return "EINVAL";
    case EOVERFLOW: return "EOVERFLOW";
    default: return "other errno";
    }
}
/* NULL with errno ENOMEM is a clean refusal; a block is the error going unnoticed. */
static void size_result(void *r, int err) {
    if (r) {
        report("silent", "returned a block %p", r);
        return;
    }
    report(err == ENOMEM ? "detected" : "wrong-errno", "NULL, %s", errname(err));
}
#define SIZE_PROBE(name, expr)                                                                     \
    static void name(void) {                                                                       \
        errno = 0;                                                                                 \
        void *r = (expr);                                                                          \
        size_result(r, errno);                                                                     \
    }
SIZE_PROBE(sz_malloc_max, v_malloc(SMAX))             /* malloc(-1) */
SIZE_PROBE(sz_malloc_max_round, v_malloc(SMAX - 15))  /* rounds past 0 */
SIZE_PROBE(sz_malloc_max_page, v_malloc(SMAX - 4095)) /* page-rounds past 0 */
SIZE_PROBE(sz_malloc_ptrdiff, v_malloc(SMAX / 2 + 1)) /* PTRDIFF_MAX + 1 */
SIZE_PROBE(sz_malloc_2p62, v_malloc((size_t)1 << 62))
SIZE_PROBE(sz_calloc_overflow, v_calloc(SMAX / 2, 3))
SIZE_PROBE(sz_calloc_2p64, v_calloc((size_t)1 << 32, (size_t)1 << 32)) /* product is 0 mod 2^64 */
SIZE_PROBE(sz_calloc_max, v_calloc(1, SMAX))
SIZE_PROBE(sz_memalign_max, v_memalign(1 << 20, SMAX - 100))
SIZE_PROBE(sz_aligned_alloc_max, v_aligned_alloc(4096, SMAX - 4096))
SIZE_PROBE(sz_valloc_max, v_valloc(SMAX - 100))
SIZE_PROBE(sz_pvalloc_max, v_pvalloc(SMAX - 100))
SIZE_PROBE(sz_reallocarray_overflow, v_reallocarray(NULL, SMAX / 4, 8))

static void sz_posix_memalign_max(void) {
    void *r = NULL;
    errno = 0;
    int e = v_posix_memalign(&r, 64, SMAX - 64);
    if (e == 0)
        report("silent", "returned a block %p", r);
    else
        report(e == ENOMEM ? "detected" : "wrong-errno", "returned %s", errname(e));
}
static void sz_posix_memalign_badalign(void) { /* 24 is not a power of two: EINVAL */
    void *r = NULL;
    int e = v_posix_memalign(&r, 24, 100);
    if (e == 0)
        report("silent", "returned a block %p", r);
    else
        report(e == EINVAL ? "detected" : "wrong-errno", "returned %s", errname(e));
}
/* realloc to an impossible size: NULL, errno, and the old block intact. */
static void realloc_big(size_t n) {
    char *p = v_malloc(100);
    memset(p, 0x5a, 100);
    errno = 0;
    char *r = v_realloc(p, n);
    int err = errno;
    if (r) {
        report("silent", "returned a block %p", (void *)r);
        return;
    }
    int intact = 1;
    for (int i = 0; i < 100; i++) intact &= p[i] == 0x5a;
    v_free(p);
    report(!intact         ? "silent"
           : err == ENOMEM ? "detected"
                           : "wrong-errno",
           "NULL, %s, old block %s", errname(err), intact ? "intact" : "CHANGED");
}
static void sz_realloc_max(void) { realloc_big(SMAX); }
static void sz_realloc_ptrdiff(void) { realloc_big(SMAX / 2 + 1); }
static void sz_realloc_max_round(void) { realloc_big(SMAX - 15); }

/* ---- the table ------------------------------------------------------------------------ */
struct probe {
    const char *name, *group, *what;
    void (*fn)(void);
};
static const struct probe probes[] = {
    {"df-small", "double-free", "free(p); free(p), 32 B", df_small},
    {"df-medium", "double-free", "free(p); free(p), 20000 B", df_medium},
    {"df-large", "double-free", "free(p); free(p), 256 KiB", df_large},
    {"df-huge", "double-free", "free(p); free(p), 16 MiB", df_huge},
    {"df-delayed", "double-free", "free(p), 1000 other mallocs and frees, free(p)", df_delayed},
    {"df-interleaved", "double-free", "free(a); free(b); free(a)", df_interleaved},
    {"df-interleaved-7", "double-free", "seven frees of the size, then free(a); free(b); free(a)",
     df_interleaved_full},
    {"df-remote", "double-free", "freed by another thread, then by the owner", df_remote},
    {"df-after-realloc", "double-free", "free of the old pointer after realloc moved the block",
     df_after_realloc},
    {"free-stack", "invalid-free", "free of a stack buffer", inv_stack},
    {"free-static", "invalid-free", "free of a static array", inv_static},
    {"free-mmap", "invalid-free", "free of a page inside an mmap'd region", inv_mmap_page},
    {"free-mmap-start", "invalid-free", "free of the first byte of an mmap'd region",
     inv_mmap_start},
    {"free-unaligned", "invalid-free", "free(p + 1)", inv_unaligned},
    {"free-interior", "invalid-free", "free(p + 16), 64 B block", inv_interior},
    {"free-interior-large", "invalid-free", "free(p + 4096), 1 MiB block", inv_interior_large},
    {"realloc-stack", "invalid-free", "realloc of a stack buffer", inv_realloc_stack},
    {"realloc-interior", "invalid-free", "realloc(p + 32, 1000)", inv_realloc_interior},
    {"waf-small-forge", "write-after-free",
     "64 B: pointers to a static array written into a freed block", waf_small_forge},
    {"waf-small-ones", "write-after-free", "64 B: freed block overwritten with 0x41",
     waf_small_ones},
    {"waf-small-flip", "write-after-free", "64 B: bit 6 of the first byte of a freed block flipped",
     waf_small_flip},
    {"waf-small-zero", "write-after-free", "64 B: freed block zeroed", waf_small_zero},
    {"waf-medium-ones", "write-after-free", "4 KiB: freed block overwritten with 0x41",
     waf_medium_ones},
    {"waf-large-ones", "write-after-free", "100000 B: first 4 KiB of a freed block overwritten",
     waf_large_ones},
    {"waf-huge-ones", "write-after-free", "8 MiB: first 4 KiB of a freed block overwritten",
     waf_huge_ones},
    {"malloc-max", "size", "malloc(SIZE_MAX), i.e. malloc(-1)", sz_malloc_max},
    {"malloc-max-15", "size", "malloc(SIZE_MAX - 15): rounding wraps", sz_malloc_max_round},
    {"malloc-max-4095", "size", "malloc(SIZE_MAX - 4095): page rounding wraps", sz_malloc_max_page},
    {"malloc-ptrdiff", "size", "malloc(PTRDIFF_MAX + 1)", sz_malloc_ptrdiff},
    {"malloc-2^62", "size", "malloc(2^62)", sz_malloc_2p62},
    {"calloc-overflow", "size", "calloc(SIZE_MAX / 2, 3)", sz_calloc_overflow},
    {"calloc-2^64", "size", "calloc(2^32, 2^32): the product wraps to 0", sz_calloc_2p64},
    {"calloc-max", "size", "calloc(1, SIZE_MAX)", sz_calloc_max},
    {"reallocarray-overflow", "size", "reallocarray(NULL, SIZE_MAX / 4, 8)",
     sz_reallocarray_overflow},
    {"realloc-max", "size", "realloc(p, SIZE_MAX); p must stay intact", sz_realloc_max},
    {"realloc-max-15", "size", "realloc(p, SIZE_MAX - 15); p must stay intact",
     sz_realloc_max_round},
    {"realloc-ptrdiff", "size", "realloc(p, PTRDIFF_MAX + 1); p must stay intact",
     sz_realloc_ptrdiff},
    {"memalign-max", "size", "memalign(1 MiB, SIZE_MAX - 100)", sz_memalign_max},
    {"aligned_alloc-max", "size", "aligned_alloc(4096, SIZE_MAX - 4096)", sz_aligned_alloc_max},
    {"posix_memalign-max", "size", "posix_memalign(&p, 64, SIZE_MAX - 64): its return value",
     sz_posix_memalign_max},
    {"posix_memalign-align24", "size", "posix_memalign(&p, 24, 100): EINVAL expected",
     sz_posix_memalign_badalign},
    {"valloc-max", "size", "valloc(SIZE_MAX - 100)", sz_valloc_max},
    {"pvalloc-max", "size", "pvalloc(SIZE_MAX - 100): page rounding wraps", sz_pvalloc_max},
};
enum { NPROBES = sizeof probes / sizeof probes[0] };

static size_t read_all(int fd, char *buf, size_t cap) {
    size_t len = 0;
    ssize_t r;
    while (len < cap - 1 && (r = read(fd, buf + len, cap - 1 - len)) > 0) len += (size_t)r;
    /* drain the rest so the child never blocks on a full pipe */
    char sink[4096];
    while (read(fd, sink, sizeof sink) > 0) {
    }
    buf[len] = 0;
    return len;
}

/* The first non-empty line of s, tabs and control characters turned into spaces, at most 100
 * characters, hex addresses kept (they vary between runs, so the table script may mask them). */
static void first_line(const char *s, char *out, size_t cap) {
    while (*s == '\n' || *s == ' ') s++;
    size_t n = 0;
    for (; *s && *s != '\n' && n < cap - 1 && n < 100; s++) out[n++] = (*s < 32) ? ' ' : *s;
    while (n > 0 && out[n - 1] == ' ') n--;
    out[n] = 0;
}

static void run_probe(const struct probe *pr) {
    int errp[2], resp[2];
    if (pipe(errp) != 0 || pipe(resp) != 0) {
        perror("pipe");
        exit(1);
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        close(errp[0]);
        close(resp[0]);
        dup2(errp[1], 2);
        close(errp[1]);
        result_fd = resp[1];
        signal(SIGSEGV, on_fault);
        signal(SIGBUS, on_fault);
        alarm(10);
        pr->fn();
        phase = 3;
        report("silent", "");
        _exit(0);
    }
    close(errp[1]);
    close(resp[1]);
    /* Read both pipes; the child writes little to either, so sequential reads cannot deadlock
     * as long as the stderr pipe is drained first (a chatty allocator fills only that one). */
    char err[8192], res[2048];
    read_all(errp[0], err, sizeof err);
    read_all(resp[0], res, sizeof res);
    close(errp[0]);
    close(resp[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }

    char msg[128], cls[32] = "", note[400] = "";
    first_line(err, msg, sizeof msg);
    /* the child's first report line wins; a "fault" line tells where a signal hit */
    const char *fault = strstr(res, "fault\t");
    char faultwhere[64] = "";
    if (fault) sscanf(fault + 6, "%63[^\n]", faultwhere);
    if (res[0] && strncmp(res, "fault\t", 6) != 0) {
        sscanf(res, "%31[^\t]\t%399[^\n]", cls, note);
    }
    const char *out_cls;
    char out_note[600];
    if (WIFSIGNALED(st)) {
        int sig = WTERMSIG(st);
        if (sig == SIGABRT) {
            out_cls = "detected";
            snprintf(out_note, sizeof out_note, "SIGABRT: %s", msg[0] ? msg : "(no message)");
        } else if (sig == SIGALRM) {
            out_cls = "hung";
            snprintf(out_note, sizeof out_note, "no end after 10 s%s%s", msg[0] ? "; " : "", msg);
        } else {
            out_cls = "crashed";
            snprintf(out_note, sizeof out_note, "%s%s%s%s%s", sigabbrev_np(sig) ? "SIG" : "signal ",
                     sigabbrev_np(sig) ? sigabbrev_np(sig) : "?", faultwhere[0] ? " " : "",
                     faultwhere, msg[0] ? "; stderr: " : "");
            strncat(out_note, msg, sizeof out_note - strlen(out_note) - 1);
        }
    } else {
        int code = WEXITSTATUS(st);
        if (code != 0) {
            out_cls = "detected";
            snprintf(out_note, sizeof out_note, "exit %d: %s", code, msg[0] ? msg : "(no message)");
        } else if (!strcmp(cls, "detected") || !strcmp(cls, "wrong-errno")) {
            out_cls = !strcmp(cls, "detected") ? "detected" : "wrong-errno";
            snprintf(out_note, sizeof out_note, "%s%s%s", note, msg[0] ? "; stderr: " : "", msg);
        } else if (msg[0]) {
            out_cls = "warned";
            snprintf(out_note, sizeof out_note, "%s%s%s", msg, note[0] ? "; then " : "", note);
        } else {
            out_cls = "silent";
            snprintf(out_note, sizeof out_note, "%s", note);
        }
    }
    printf("%s\t%s\t%s\t%s\n", pr->name, pr->group, out_cls, out_note);
    fflush(stdout);
}

int main(int argc, char **argv) {
    int list = 0, first = 1;
    if (argc > 1 && !strcmp(argv[1], "--list")) {
        list = 1;
        first = 2;
    }
    if (argc > 1 && !strcmp(argv[1], "--which")) {
        Dl_info info;
        void *m = dlsym(RTLD_DEFAULT, "malloc");
        if (!m || !dladdr(m, &info) || !info.dli_fname) return 1;
        printf("%s\n", info.dli_fname);
        return 0;
    }
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: %s [--list] [NAME...] | --which\n", argv[0]);
        return 0;
    }
    for (int i = first; i < argc; i++) {
        int found = 0;
        for (int k = 0; k < NPROBES; k++) found |= !strcmp(argv[i], probes[k].name);
        if (!found) {
            fprintf(stderr, "heap-probes: unknown probe '%s' (--list names them)\n", argv[i]);
            return 2;
        }
    }
    for (int k = 0; k < NPROBES; k++) {
        int want = first >= argc;
        for (int i = first; i < argc; i++) want |= !strcmp(argv[i], probes[k].name);
        if (!want) continue;
        if (list)
            printf("%s\t%s\t%s\n", probes[k].name, probes[k].group, probes[k].what);
        else
            run_probe(&probes[k]);
    }
    return 0;
}
