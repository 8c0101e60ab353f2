#!/usr/bin/env bash
# Fuzz the allocator for FUZZ_SECONDS (default 60) with build/fuzz/fuzz_malloc (libFuzzer,
# tests/fuzz/fuzz_malloc.c; built by `make test` / `make fuzz-build`, see tests/fuzz/fuzz.mk).
# Seeds: tests/fuzz/corpus (committed, read only); new units go to build/fuzz/corpus, kept
# between runs. PASS with the number of executions; FAIL with the crashing input saved under
# build/fuzz/artifacts/ and the command that replays it; SKIP without clang.
set -u
root=${TM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
dir="$root/build/fuzz"
bin="$dir/fuzz_malloc"
seconds=${FUZZ_SECONDS:-60}

if [ -f "$dir/build-failed.log" ]; then
    tail -n 30 "$dir/build-failed.log"
    echo "FAIL: fuzz_malloc (build failed; log $dir/build-failed.log)"
    exit 1
fi
if [ ! -x "$bin" ]; then
    if ! command -v "${FUZZ_CC:-clang}" >/dev/null 2>&1; then
        echo "SKIP: fuzz_malloc (no clang: apt-get install clang)"
        exit 0
    fi
    echo "FAIL: fuzz_malloc (missing: $bin; run make fuzz-build)"
    exit 1
fi

mkdir -p "$dir/corpus" "$dir/artifacts"
log="$dir/fuzz.log"
# -rss_limit_mb: the target keeps at most 48 MiB live; -timeout: one input taking 30 s is a hang.
"$bin" -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=1024 -timeout=30 \
    -artifact_prefix="$dir/artifacts/" "$dir/corpus" "$root/tests/fuzz/corpus" >"$log" 2>&1
rc=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
if [ $rc -eq 0 ] && [ -n "$execs" ]; then
    echo "fuzz_malloc: $execs executions in $seconds s ($rate/s), $cov, corpus $(ls "$dir/corpus" | wc -l) units"
    echo "PASS: fuzz_malloc ($execs executions, ${seconds} s)"
else
    tail -n 40 "$log"
    art=$(grep -o "$dir/artifacts/[^ ]*" "$log" | tail -1)
    echo "fuzz_malloc: exit $rc${execs:+ after $execs executions}; log $log"
    [ -n "$art" ] && echo "replay: $bin $art"
    echo "FAIL: fuzz_malloc${art:+ (crash input $art)}"
    exit 1
fi
