#!/usr/bin/env bash
# The heap-error probes (tests/probes/heap_probes.c) under LD_PRELOAD=libtinymalloc.so, for
# the release and the UBSan build. tinymalloc must
#   - stop every double free and invalid free with SIGABRT and a `tinymalloc: ...` message;
#   - refuse every impossible size with NULL and errno ENOMEM (posix_memalign: return value
#     ENOMEM; a non-power-of-two alignment: EINVAL), leaving a realloc'ed block intact;
#   - survive every write after free: silent (or detected) is fine, a crash in a later
#     allocator call or in using a block it returned is not. A fault at the stray write itself
#     (the freed memory went back to the OS) is the program's own and is accepted.
# One PASS/FAIL line per probe and build; the probe's class and note follow a failure.
set -u
root=${TM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
bin="$root/build/probes/heap-probes"
[ -x "$bin" ] || { echo "FAIL: probe program missing: $bin (make build/probes/heap-probes)"; exit 1; }

check() { # variant name group class note -> prints PASS/FAIL
    local v=$1 name=$2 group=$3 cls=$4 note=$5 ok=0
    case $group in
      double-free|invalid-free)
        [[ $cls == detected && $note == "SIGABRT: tinymalloc: "* ]] && ok=1 ;;
      size)
        case $name in
          posix_memalign-align24) [[ $cls == detected && $note == "returned EINVAL"* ]] && ok=1 ;;
          posix_memalign-*) [[ $cls == detected && $note == "returned ENOMEM"* ]] && ok=1 ;;
          realloc-*) [[ $cls == detected && $note == "NULL, ENOMEM, old block intact"* ]] && ok=1 ;;
          *) [[ $cls == detected && $note == "NULL, ENOMEM"* ]] && ok=1 ;;
        esac ;;
      write-after-free)
        case $cls in
          silent|detected|warned) ok=1 ;;
          crashed) [[ $note == *"at the stray write"* ]] && ok=1 ;;
        esac ;;
      *) echo "  unknown group $group" ;;
    esac
    if [ $ok = 1 ]; then
        echo "PASS: $v:$name"
    else
        echo "FAIL: $v:$name ($cls: $note)"
    fi
}

for v in release ubsan; do
    lib="$root/build/$v/libtinymalloc.so"
    if [ ! -f "$lib" ]; then
        echo "FAIL: $v: library missing: $lib"
        continue
    fi
    which=$(LD_PRELOAD="$lib" "$bin" --which)
    if [ "$(readlink -f "$which")" != "$(readlink -f "$lib")" ]; then
        echo "FAIL: $v: malloc is served by '$which', not $lib"
        continue
    fi
    n=0
    while IFS=$'\t' read -r name group cls note; do
        check "$v" "$name" "$group" "$cls" "$note"
        n=$((n + 1))
    done < <(LD_PRELOAD="$lib" "$bin")
    [ "$n" -gt 30 ] || echo "FAIL: $v: only $n probes reported"
done
