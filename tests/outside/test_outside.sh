#!/usr/bin/env bash
# Other projects' test suites under LD_PRELOAD=libtinymalloc.so (tests/outside/outside.py):
# mimalloc's stress test and a few minutes of CPython's regression tests, each compared with
# glibc. SKIPs a suite whose Debian source or test-suite package cannot be fetched here.
# The bigger run: make test-outside-full.
root=${TM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
exec /usr/bin/python3 "$root/tests/outside/outside.py" "$@"
