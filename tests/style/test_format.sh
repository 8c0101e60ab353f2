#!/bin/bash
# Every C source and header git tracks is formatted as .clang-format says (`make format`
# fixes it). Prints PASS:/FAIL:/SKIP: for tests/run.py.
cd "$(dirname "$0")/../.." || exit 2
if ! command -v clang-format >/dev/null; then
    echo "SKIP: clang_format (clang-format is not installed)"
    exit 0
fi
mapfile -t files < <(git ls-files '*.c' '*.h' 2>/dev/null)
if [ ${#files[@]} -eq 0 ]; then
    echo "SKIP: clang_format (not a git checkout)"
    exit 0
fi
if out=$(clang-format --dry-run -Werror "${files[@]}" 2>&1); then
    echo "PASS: clang_format (${#files[@]} files)"
else
    echo "$out" | grep -- '-Wclang-format-violations' | cut -d: -f1 | sort | uniq -c
    echo "FAIL: clang_format (run make format)"
    exit 1
fi
