/* tm-probe: a tiny LD_PRELOAD library that records which shared object serves malloc.
 *
 * The bench harness preloads it in front of the allocator under test
 * (LD_PRELOAD="tm-probe.so <allocator.so>"; the probe defines no malloc, so its place changes
 * nothing for the program) and names a file in TMBENCH_PROBE_FILE. In its constructor and
 * destructor it looks malloc up in the global scope (dlsym(RTLD_DEFAULT)) and asks dladdr
 * which object holds it.
 *
 * One trap: a non-PIE executable that takes malloc's address (Debian's python3 does) gets a
 * "canonical PLT entry": its undefined malloc symbol carries the address of its own PLT stub,
 * and dlsym(RTLD_DEFAULT) returns that stub, inside the executable, while calls through it
 * reach the first real definition after the executable. So when the lookup lands in the main
 * program and the program does not really define malloc (no defined `malloc` symbol there),
 * the probe asks dlsym(RTLD_NEXT): the first definition after the probe, which is first in
 * LD_PRELOAD, is the one the dynamic linker bound. Then it appends one line to the file:
 *
 *     <pid> TAB <path of the object that serves malloc> [TAB fini] NEWLINE
 *
 * (the destructor's line carries the `fini` tag; a process that crashes writes none). A
 * process without a record was not preloaded (a static binary, or LD_PRELOAD was dropped).
 *
 * It allocates nothing itself: no stdio, no snprintf, only open(2)/write(2)/close(2) and a
 * line built in a stack buffer. One write(2) per line on an O_APPEND descriptor keeps lines
 * of concurrent processes whole. Errors are ignored: the probe must never change what the
 * program does.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h> /* dl_iterate_phdr, ElfW */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROBE_ENV "TMBENCH_PROBE_FILE"

static size_t put_str(char *buf, size_t at, size_t cap, const char *s) {
    while (*s && at < cap) buf[at++] = *s++;
    return at;
}

static size_t put_uint(char *buf, size_t at, size_t cap, unsigned long v) {
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < sizeof tmp);
    while (n && at < cap) buf[at++] = tmp[--n];
    return at;
}

struct exe_range {
    const void *addr;
    int inside;
};

/* dl_iterate_phdr reports the main program first: is addr in one of its PT_LOAD segments? */
static int in_main_program_cb(struct dl_phdr_info *pi, size_t size, void *data) {
    (void)size;
    struct exe_range *r = data;
    uintptr_t a = (uintptr_t)r->addr;
    for (int i = 0; i < pi->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &pi->dlpi_phdr[i];
        uintptr_t lo = (uintptr_t)pi->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && a >= lo && a < lo + ph->p_memsz) r->inside = 1;
    }
    return 1; /* stop after the first object */
}

static const char *defining_object(void *sym) {
    Dl_info info;
    const ElfW(Sym) *es = NULL;
    struct exe_range r = {sym, 0};
    dl_iterate_phdr(in_main_program_cb, &r);
    if (!r.inside) {
        if (dladdr(sym, &info) && info.dli_fname && *info.dli_fname) return info.dli_fname;
        return "?";
    }
    if (dladdr1(sym, &info, (void **)&es, RTLD_DL_SYMENT) && info.dli_sname && es &&
        es->st_shndx != SHN_UNDEF && strcmp(info.dli_sname, "malloc") == 0)
        return info.dli_fname && *info.dli_fname ? info.dli_fname : "(main program)";
    /* a canonical PLT entry: the calls reach the first definition after it */
    void *def = dlsym(RTLD_NEXT, "malloc");
    if (def && dladdr(def, &info) && info.dli_fname && *info.dli_fname) return info.dli_fname;
    return "?";
}

static void probe_record(const char *tag) {
    const char *file = getenv(PROBE_ENV); /* getenv does not allocate */
    if (!file || !*file) return;
    void *sym = dlsym(RTLD_DEFAULT, "malloc");
    const char *path = sym ? defining_object(sym) : "(unresolved)";

    char line[4096 + 64];
    size_t cap = sizeof line - 1, n = 0;
    n = put_uint(line, n, cap, (unsigned long)getpid());
    n = put_str(line, n, cap, "\t");
    n = put_str(line, n, cap, path);
    if (tag) {
        n = put_str(line, n, cap, "\t");
        n = put_str(line, n, cap, tag);
    }
    line[n++] = '\n';

    int fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;
    ssize_t w = write(fd, line, n);
    (void)w;
    close(fd);
}

__attribute__((constructor)) static void probe_init(void) { probe_record(NULL); }

__attribute__((destructor)) static void probe_fini(void) { probe_record("fini"); }
