#!/usr/bin/env bash
# Smoke test of the allocator micro-benchmark (bench/micro/pairs.c, scripts/micro_bench.py):
# tiny iteration counts under the system malloc, jemalloc when installed, and tinymalloc when
# build/libtinymalloc.so exists. Prints PASS:/FAIL:/SKIP: lines; runs in a few seconds.
set -u
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="$ROOT/build/bench/micro/pairs"
PY=/usr/bin/python3
SCRIPT="$ROOT/scripts/micro_bench.py"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
failed=0

pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1${2:+ ($2)}"; failed=1; }
skip() { echo "SKIP: $1${2:+ ($2)}"; }

if [ ! -x "$BIN" ]; then
    make -s -C "$ROOT" micro >"$TMP/build.log" 2>&1 || { cat "$TMP/build.log"; }
fi
if [ -x "$BIN" ]; then pass "micro_build"; else fail "micro_build" "no $BIN"; exit 1; fi

# check_json NAME FILE MODE LIBREGEX: the last line is one JSON object with sane fields.
check_json() {
    "$PY" - "$2" "$3" "$4" <<'EOF'
import json, os, re, sys
path, mode, libre = sys.argv[1:4]
d = json.loads(open(path).read().strip().splitlines()[-1])
assert d["mode"] == mode, d
assert d["ns"] > 0 and d["iters"] > 0 and d["total_ns"] > 0, d
assert len(d["sample_ns"]) == d["samples"] >= 1, d
assert abs(d["ns"] - min(d["sample_ns"])) < 0.01 and d["ns"] <= d["ns_median"], d
if mode in ("pair", "floor", "floor-lib"):
    assert isinstance(d["size"], int), d
    assert d["ops"] == d["iters"], d
elif mode == "prodcons":
    assert d["size"] == 64 and d["ops"] == d["batch"] * d["iters"], d
    assert len(d["cpus"]) == 2, d
elif mode == "large":
    assert d["size"] is None and d["slots"] == 16 and d["ops"] == d["iters"], d
else:
    assert d["size"] is None and d["batch"] == 1000 and d["ops"] == 1000 * d["iters"], d
for k in ("malloc_lib", "free_lib"):
    assert re.search(libre, os.path.basename(d[k])), (k, d[k], libre)
EOF
}

# run_case NAME LIBREGEX PRELOAD ARGS...
run_case() {
    local name=$1 libre=$2 preload=$3; shift 3
    local mode=$1
    if LD_PRELOAD="$preload" timeout 10 "$BIN" --iters 200 "$@" >"$TMP/out" 2>"$TMP/err" \
        && check_json "$name" "$TMP/out" "$mode" "$libre" 2>>"$TMP/err"; then
        pass "$name"
    else
        fail "$name" "$(tail -c 300 "$TMP/err" | tr '\n' ' ')"
    fi
}

run_case system_pair16 '^libc\.so' "" pair 16
run_case system_pair8192 '^libc\.so' "" pair 8192
run_case system_lifo '^libc\.so' "" lifo
run_case system_fifo '^libc\.so' "" fifo
run_case system_floor '^libc\.so' "" floor 16
run_case system_floor_lib '^libc\.so' "" floor-lib 16
run_case system_prodcons '^libc\.so' "" prodcons
run_case system_large '^libc\.so' "" large

# The calibrated path (no --iters), with a tiny target.
if timeout 10 "$BIN" --target-ms 1 pair 64 >"$TMP/out" 2>"$TMP/err" \
    && check_json calibrated "$TMP/out" pair '^libc\.so' 2>>"$TMP/err"; then
    pass "system_calibrated"
else
    fail "system_calibrated" "$(tail -c 300 "$TMP/err" | tr '\n' ' ')"
fi

# Usage errors exit 2.
rc=0; "$BIN" pair >/dev/null 2>&1 || rc=$?
rc2=0; "$BIN" bogus >/dev/null 2>&1 || rc2=$?
rc3=0; "$BIN" pair 0 >/dev/null 2>&1 || rc3=$?
rc4=0; "$BIN" floor 4 >/dev/null 2>&1 || rc4=$?      # smaller than the free list's link
rc5=0; "$BIN" floor 9000 >/dev/null 2>&1 || rc5=$?   # larger than the floor's blocks
rc6=0; "$BIN" floor-lib 9000 >/dev/null 2>&1 || rc6=$?  # larger than the library floor's blocks
if [ "$rc" = 2 ] && [ "$rc2" = 2 ] && [ "$rc3" = 2 ] && [ "$rc4" = 2 ] && [ "$rc5" = 2 ] && [ "$rc6" = 2 ]; then
    pass "usage_errors"
else
    fail "usage_errors" "rc=$rc,$rc2,$rc3,$rc4,$rc5,$rc6"
fi

# A preloaded allocator is reported as the owner of malloc (what the script verifies).
JE=$(ldconfig -p 2>/dev/null | awk '/libjemalloc\.so\.2 .*x86-64/{print $NF; exit}')
if [ -n "$JE" ] && [ -e "$JE" ]; then
    run_case jemalloc_pair64 '^libjemalloc' "$JE" pair 64
else
    skip "jemalloc_pair64" "libjemalloc2 not installed"
fi

if [ -e "$ROOT/build/libtinymalloc.so" ]; then
    run_case tinymalloc_pair16 '^libtinymalloc' "$ROOT/build/libtinymalloc.so" pair 16
    run_case tinymalloc_pair8192 '^libtinymalloc' "$ROOT/build/libtinymalloc.so" pair 8192
    run_case tinymalloc_lifo '^libtinymalloc' "$ROOT/build/libtinymalloc.so" lifo
    run_case tinymalloc_fifo '^libtinymalloc' "$ROOT/build/libtinymalloc.so" fifo
    run_case tinymalloc_prodcons '^libtinymalloc' "$ROOT/build/libtinymalloc.so" prodcons
    run_case tinymalloc_large '^libtinymalloc' "$ROOT/build/libtinymalloc.so" large
else
    skip "tinymalloc_pairs" "build/libtinymalloc.so not built"
fi

# The comparison script: help, usage errors, and one tiny round under glibc.
if "$PY" "$SCRIPT" --help >/dev/null 2>&1; then pass "script_help"; else fail "script_help"; fi
rc=0; "$PY" "$SCRIPT" --allocators nosuch >/dev/null 2>&1 || rc=$?
rc2=0; "$PY" "$SCRIPT" --allocators glibc --check >/dev/null 2>&1 || rc2=$?
# a pair size of 0, or past the largest, is no mode; the message names the token
rc3=0; "$PY" "$SCRIPT" --allocators glibc --modes pair:16384,pair:0 >/dev/null 2>"$TMP/modes" || rc3=$?
if [ "$rc" = 2 ] && [ "$rc2" = 2 ] && [ "$rc3" = 2 ] && grep -q 'unknown mode: pair:0;' "$TMP/modes"; then
    pass "script_usage_errors"
else
    fail "script_usage_errors" "rc=$rc,$rc2,$rc3"
fi
# One tiny run under glibc through the bench runner: the table on stdout and in OUT/ID.md, the
# runner's run folder OUT/ID/ with every round's checked mem run (interleaved over the modes)
# and its output, and micro.json.
rc=0
"$PY" "$SCRIPT" --allocators glibc --reps 2 --iters 100 --modes pair:16,pair:16384,lifo,fifo \
    --out "$TMP/m" --run-id r -q >"$TMP/table" 2>"$TMP/err" || rc=$?
if [ "$rc" = 0 ] && grep -q '^| pair 16 | [0-9]' "$TMP/table" && cmp -s "$TMP/table" "$TMP/m/r.md" \
    && grep -q '^- records: .*(r/)' "$TMP/table" \
    && "$PY" -c '
import json, os, sys
d = json.load(open(os.path.join(sys.argv[1], "micro.json")))
assert len(d["runs"]) == 8 and all(r["ok"] for r in d["runs"]), d["runs"]
assert {s["mode"] for s in d["summary"]} == {"pair:16", "pair:16384", "lifo", "fifo"}
plan = json.load(open(os.path.join(sys.argv[1], "plan.json")))
o = plan["options"]
assert (o["runs"], o["blocks"], o["interleave"], o["pin"]) == (0, 2, True, True), o
assert [s["round"] for s in plan["steps"]] == [1] * 4 + [2] * 4, plan["steps"]
for r in (1, 2):
    rec = json.load(open(os.path.join(sys.argv[1], "raw", "micro-pair-16", "glibc", f"mem-{r}.json")))
    assert rec["status"] == "ok" and rec["probe"]["libs"] and "pinned_cpu" in rec, rec
    out = open(os.path.join(sys.argv[1], "raw", "micro-pair-16", "glibc", f"mem-{r}.stdout")).read()
    assert json.loads(out.strip().splitlines()[-1])["mode"] == "pair", out
' "$TMP/m/r" 2>>"$TMP/err"; then
    pass "script_glibc_round"
else
    fail "script_glibc_round" "rc=$rc $(tail -c 300 "$TMP/err" | tr '\n' ' ')"
fi

# --render makes the table of that run again from its folder, with no new run: the same rows,
# the run's own command, a line that says it was made again; usage errors exit 2.
cp "$TMP/m/r.md" "$TMP/r-first.md"
rc=0
"$PY" "$SCRIPT" --render "$TMP/m/r" >"$TMP/table" 2>"$TMP/err" || rc=$?
rc2=0; "$PY" "$SCRIPT" --render "$TMP/m/r" --modes pair:16 >/dev/null 2>&1 || rc2=$?
rc3=0; "$PY" "$SCRIPT" --render "$TMP/m/none" >/dev/null 2>"$TMP/err3" || rc3=$?
rc4=0; "$PY" "$SCRIPT" --render "$TMP/m/r" --out "$TMP/elsewhere" >/dev/null 2>&1 || rc4=$?
if [ "$rc" = 0 ] && [ "$rc2" = 2 ] && [ "$rc3" = 2 ] && [ "$rc4" = 2 ] \
    && grep -q 'no micro-benchmark run folder' "$TMP/err3" \
    && cmp -s "$TMP/table" "$TMP/m/r.md" \
    && grep -q '^- table: made again from the run folder on .* --render ' "$TMP/table" \
    && diff <(grep -v '^- table: ' "$TMP/table") "$TMP/r-first.md" >/dev/null \
    && [ "$(find "$TMP/m" -name 'mem-*.json' | wc -l)" = 8 ]; then
    pass "script_render"
else
    fail "script_render" "rc=$rc,$rc2,$rc3,$rc4 $(tail -c 300 "$TMP/err" | tr '\n' ' ')"
fi

# The floors make no allocator call: the runs of each under every preload are pooled into one
# cell, and every pair time gets its ratio to each.
rc=0
"$PY" "$SCRIPT" --allocators glibc,jemalloc --reps 2 --iters 100 \
    --modes pair:16,prodcons,large,floor,floor-lib --out "$TMP/m" --run-id f -q >"$TMP/table" 2>"$TMP/err" || rc=$?
if [ "$rc" = 0 ] && grep -q '^Floor: [0-9.]* ns' "$TMP/table" && grep -q '^| pair 16 | [0-9.]*x' "$TMP/table" \
    && grep -q '^Library floor: [0-9.]* ns' "$TMP/table" && grep -q '^The library floor is [0-9.]*x' "$TMP/table" \
    && grep -q '^| prodcons | [0-9]' "$TMP/table" && grep -q '^| large | [0-9]' "$TMP/table" \
    && "$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert len(d["runs"]) == 5 * 2 * 2, len(d["runs"])
for f in ("floor", "floor-lib"):
    floor = [s for s in d["summary"] if s["mode"] == f]
    assert len(floor) == 1 and floor[0]["allocator"] == f and floor[0]["n"] == 4, floor
' "$TMP/m/f/micro.json" 2>>"$TMP/err"; then
    pass "script_floor_prodcons_large"
else
    fail "script_floor_prodcons_large" "rc=$rc $(tail -c 300 "$TMP/err" "$TMP/table" | tr '\n' ' ')"
fi

# A run that did not use the allocator it preloaded is a FAIL (the runner's preload probe):
# an "allocator" that is really libm leaves malloc to libc, so every run of it must FAIL and
# the script exit 4. The glibc cell may carry a *N slow* or *N busy* mark on a loaded machine
# (as in a CI run), hence the [^|]* after its interval.
LIBM=$(ldconfig -p 2>/dev/null | awk '/libm\.so\.6 .*x86-64/{print $NF; exit}')
if [ -n "$LIBM" ] && [ -e "$LIBM" ]; then
    rc=0
    "$PY" "$SCRIPT" --allocators "glibc,notmalloc=$LIBM" --reps 1 --iters 100 --modes pair:16 \
        --out "$TMP/m" --run-id v -q >"$TMP/table" 2>"$TMP/err" || rc=$?
    if [ "$rc" = 4 ] && grep -q '^| pair 16 | [0-9.]* ([0-9.-]*)[^|]* | FAIL |' "$TMP/table" \
        && grep -q "notmalloc: .*served by .*libc" "$TMP/table"; then
        pass "script_allocator_verification"
    else
        fail "script_allocator_verification" "rc=$rc $(tail -c 300 "$TMP/table" | tr '\n' ' ')"
    fi
else
    skip "script_allocator_verification" "libm.so.6 not found by ldconfig"
fi

# The table's verdicts come from the bench's intervals: a win is bold only when every other
# allocator's interval clears it, a tie names who it ties with, and the target counts as met
# only when tinymalloc's whole interval is at or below 1.1x the fastest peer.
if "$PY" -c '
import os, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
import micro_bench as mb
cell = lambda *v: mb.summarize(list(v))
fast = cell(5.0, 5.1, 5.0, 5.2, 5.1, 5.0, 5.1)
slow = cell(9.0, 9.2, 9.1, 9.0, 9.3, 9.1, 9.2)
noisy = cell(4.0, 9.0, 5.5, 12.0, 5.0, 3.9, 8.0)
assert mb.verdict({"glibc": slow, "tcmalloc": fast}) == "**tcmalloc**"
assert mb.verdict({"glibc": slow, "tcmalloc": fast, "mimalloc": noisy}).startswith("tie: ")
assert "tcmalloc" in mb.verdict({"glibc": slow, "tcmalloc": fast, "mimalloc": noisy})
assert mb.target_status(1.05, (1.01, 1.09)) == "ok"
assert mb.target_status(1.05, (0.90, 1.30)) == "unclear"
assert mb.target_status(1.20, (1.15, 1.25)) == "MISS"
assert mb.target_status(1.05, None) == "ok"
stats = {("pair:16", "tinymalloc"): cell(5.3, 5.4, 5.3, 5.5, 5.4, 5.3, 5.4),
         ("pair:16", "tcmalloc"): fast, ("pair:16", "glibc"): slow,
         ("pair:32", "tinymalloc"): slow, ("pair:32", "tcmalloc"): fast, ("pair:32", "glibc"): slow}
env = {"date": "d", "commit": "c", "command": "x", "cpu_model": "cpu", "cpus_online": 2, "kernel": "k",
       "glibc": "g", "thp_enabled": "t", "cpu_governor": "-", "cpu_boost": "-", "loadavg_start": 0.1,
       "pinned": "no", "reps": 7, "iterations": "i", "samples": 20,
       "allocators": {a: {"lib": None, "package": None, "version": None}
                      for a in ("tinymalloc", "tcmalloc", "glibc")}}
table, misses = mb.render(env, ["tinymalloc", "tcmalloc", "glibc"], ["pair:16", "pair:32"], stats, {})
rows = {ln.split(" | ")[0]: ln for ln in table.splitlines() if ln.startswith("| pair")}
assert "**tcmalloc**" in rows["| pair 16"] and "| ok |" in rows["| pair 16"], rows
assert "x (1.0" in rows["| pair 16"], rows
assert "| MISS |" in rows["| pair 32"] and misses == ["pair:32"], (rows, misses)
# the performance targets: pair <= 1.6x the floor and below tcmalloc, prodcons below mimalloc
stats[("floor", "floor")] = cell(3.1, 3.1, 3.2, 3.1, 3.1, 3.2, 3.1)
stats[("prodcons", "tinymalloc")] = cell(50, 51, 52, 50, 49, 51, 50)
stats[("prodcons", "mimalloc")] = cell(80, 82, 79, 81, 80, 83, 80)
tgt = mb.render_targets(["tinymalloc", "tcmalloc", "glibc", "mimalloc"], ["pair:16", "prodcons", "floor"], stats)
lines = [ln for ln in tgt if ln.startswith("- ")]
assert any("pair 16, <= 1.6x the floor" in ln and "**MISS**" in ln for ln in lines), lines   # 5.4 / 3.1
assert any("pair 16, below tcmalloc" in ln and "**MISS**" in ln for ln in lines), lines
assert any("prodcons, below mimalloc" in ln and "**ok**" in ln for ln in lines), lines
assert "1 of 3 met" in tgt[1], tgt
fl = mb.render_floor(["tinymalloc", "tcmalloc"], ["pair:16", "floor"], stats)
assert any(ln.startswith("| pair 16 | 1.7") for ln in fl), fl
assert not any("ibrary floor" in ln for ln in fl), fl
# with the library floor too: a second table, and the one floor as a ratio to the other
stats[("floor-lib", "floor-lib")] = cell(6.2, 6.2, 6.3, 6.2, 6.1, 6.2, 6.2)
fl = mb.render_floor(["tinymalloc", "tcmalloc"], ["pair:16", "floor", "floor-lib"], stats)
assert sum(ln.startswith("| pair 16 | ") for ln in fl) == 2, fl
assert any(ln.startswith("| pair 16 | 0.8") for ln in fl), fl   # 5.4 / 6.2
assert any(ln.startswith("The library floor is 2.00x (") for ln in fl), fl
# runs measured while the machine ran slow (both probes over 1.3x the fastest) are counted per cell
runs = [{"mode": "pair:16", "allocator": "glibc", "ok": True, "ns": 9.0, "speed": {"before_s": 0.02, "after_s": 0.021}},
        {"mode": "pair:16", "allocator": "glibc", "ok": True, "ns": 9.1, "speed": {"before_s": 0.01, "after_s": 0.05}},
        {"mode": "pair:16", "allocator": "glibc", "ok": True, "ns": 9.2, "speed": {"before_s": 0.03, "after_s": 0.03},
         "busy": True}]
assert mb.mark_slow(runs) == 0.01
assert [r.get("slow") for r in runs] == [2.0, None, 3.0], runs
st, _ = mb.cell_stats(runs, ["glibc"], ["pair:16"])
assert (st[("pair:16", "glibc")]["slow_runs"], st[("pair:16", "glibc")]["busy_runs"]) == (2, 1), st
table, _ = mb.render(env, ["glibc"], ["pair:16"], st, {})
assert "*2 slow, 1 busy*" in table, table
' "$SCRIPT" 2>"$TMP/err"; then
    pass "script_intervals"
else
    fail "script_intervals" "$(tail -c 300 "$TMP/err" | tr '\n' ' ')"
fi

exit $failed
