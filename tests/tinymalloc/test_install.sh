#!/usr/bin/env bash
# `make install PREFIX=...` gives a library, header and pkg-config file that a program can link
# against, shared (through pkg-config) or static, and that program's malloc is tinymalloc's.
set -u
root=${TM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! make -s -C "$root" install PREFIX="$work/prefix" >"$work/log" 2>&1; then
    cat "$work/log"; echo "FAIL: make install"; exit 1
fi
echo "PASS: make install"
cat > "$work/prog.c" <<'C'
#include <tinymalloc.h>
#include <stdio.h>
#include <stdlib.h>
int main(void) {
    void *p = malloc(100);
    struct tinymalloc_stats s;
    if (tinymalloc_stats_get(&s, sizeof s) != 0 || s.allocs == 0) return 1;
    free(p);
    puts("ok");
    return 0;
}
C
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig"
if gcc "$work/prog.c" $(pkg-config --cflags --libs tinymalloc) -Wl,-rpath,"$work/prefix/lib" \
       -o "$work/shared" && [ "$("$work/shared")" = ok ]; then
    echo "PASS: link with pkg-config"
else
    echo "FAIL: link with pkg-config"
fi
if gcc "$work/prog.c" -I"$work/prefix/include" "$work/prefix/lib/libtinymalloc.a" -pthread \
       -o "$work/static" && [ "$("$work/static")" = ok ]; then
    echo "PASS: link libtinymalloc.a"
else
    echo "FAIL: link libtinymalloc.a"
fi
if [ "$(readelf -d "$work/prefix/lib/libtinymalloc.so" | grep -o 'libtinymalloc.so.[0-9]*')" = libtinymalloc.so.0 ]; then
    echo "PASS: versioned soname"
else
    echo "FAIL: versioned soname"
fi
