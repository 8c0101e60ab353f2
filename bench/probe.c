/* tm-probe: a tiny LD_PRELOAD library that records which shared object serves malloc.
 *
 * The bench harness preloads it after the allocator under test
 * (LD_PRELOAD="<allocator.so> tm-probe.so") and names a file in TMBENCH_PROBE_FILE. In its
 * constructor and destructor it looks malloc up in the global scope (dlsym(RTLD_DEFAULT)) and
 * asks dladdr which object holds it, then appends one line to that file:
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
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROBE_ENV "TMBENCH_PROBE_FILE"

static size_t put_str(char *buf, size_t at, size_t cap, const char *s)
{
    while (*s && at < cap)
        buf[at++] = *s++;
    return at;
}

static size_t put_uint(char *buf, size_t at, size_t cap, unsigned long v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < sizeof tmp);
    while (n && at < cap)
        buf[at++] = tmp[--n];
    return at;
}

static void probe_record(const char *tag)
{
    const char *file = getenv(PROBE_ENV); /* getenv does not allocate */
    if (!file || !*file)
        return;
    const char *path = "?";
    void *sym = dlsym(RTLD_DEFAULT, "malloc");
    Dl_info info;
    if (sym && dladdr(sym, &info) && info.dli_fname && *info.dli_fname)
        path = info.dli_fname;
    else if (!sym)
        path = "(unresolved)";

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
    if (fd < 0)
        return;
    ssize_t w = write(fd, line, n);
    (void)w;
    close(fd);
}

__attribute__((constructor)) static void probe_init(void)
{
    probe_record(NULL);
}

__attribute__((destructor)) static void probe_fini(void)
{
    probe_record("fini");
}
