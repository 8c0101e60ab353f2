#!/usr/bin/env bash
# The configuration space, a fixed sample for `make test`: tests/fuzz/conf_space.py draws 24
# configurations (seed 1) from tinymalloc's option table and runs the fuzz target's corpus and
# six synthetic workloads under each (`make fuzz-config` runs more, and fuzzes under each).
# SKIP without clang (no fuzz target), like test_fuzz.sh.
set -u
root=${TM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
if [ ! -x "$root/build/fuzz/fuzz_malloc" ] && ! command -v "${FUZZ_CC:-clang}" >/dev/null 2>&1; then
    echo "SKIP: configuration space (no clang: apt-get install clang)"
    exit 0
fi
exec /usr/bin/python3 "$root/tests/fuzz/conf_space.py" --configs 24 --seed 1
