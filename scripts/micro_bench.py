#!/usr/bin/python3
"""Allocator micro-benchmark: malloc/free pair times under tinymalloc and its peers (issue 2).

Runs build/bench/micro/pairs (`make micro`) once per (mode, allocator, round) through the
bench's matrix runner (bench/run.py): each mode is a workload of a manifest made here, run
with no timed runs (`--runs 0`), one checked mem run per round (`--blocks REPS`), rounds
interleaved over every mode and allocator in a fresh shuffled order (`--interleave`), so slow
phases of a shared, noisy machine spread over all of them. The runner resolves the allocators
(the bench's registry: the default matrix, any built-in name, NAME=/path/lib.so, the variants
of --allocators-file with their environment), records the environment, pins the one-thread
modes to one CPU (`--pin`), proves with its preload probe that each run's malloc came from the
allocator, and keeps every run's record and output in OUT/RUN_ID/ (raw/micro-MODE/ALLOCATOR/
mem-R.{json,stdout,stderr}). This script checks that free came from it too (the program
prints dladdr() of dlsym(RTLD_DEFAULT, "free")) and turns the outputs into the table. A run
that crashes, times out, prints no result or used the wrong allocator is a FAIL, never a time.

Each run splits its ~75 ms into --samples timed samples (default 20, ~4 ms each) after a warm-up
and reports the fastest one: on a shared machine noise (preemption, interrupts) only ever adds
time, and a short sample is more likely to run undisturbed.

Writes a Markdown table to OUT/RUN_ID.md and stdout: one row per mode, one column per
allocator, each cell the median over the rounds of the runs' ns per malloc+free pair, and their
min-max, and how many of those runs were measured while the machine ran slow (*N slow*: the
runner's speed probes before and after the run, the bench report's rule) or busy. Then the
fastest allocator, a clear win only when the 95 % interval of every other allocator's ratio to
it lies above 1 (otherwise a tie, with the allocators it ties with), and tinymalloc's ratio to
the fastest peer (median / median) with its 95 % interval: the bench's own statistics
(bench/stats.py, a percentile bootstrap over the rounds). Target (issue 2): ratio <= 1.1 for
every `pair` size up to 1 KiB; it counts as met only when the whole interval is at or below 1.1
("unclear" when the median is but the interval reaches above). The per-run times and the
summary go to OUT/RUN_ID/micro.json.

Modes: pair:16 pair:32 ... pair:65536 (tight malloc(SIZE)/free loop, up to the medium sizes
that tinymalloc's medium cache and arenas serve; --modes takes any pair:N), lifo and fifo
(batches of 1000 mixed sizes 16..1024, freed newest-first or oldest-first), prodcons (one
thread mallocs 64 B blocks, another frees them; not pinned by the runner: the program puts its two threads on
two CPUs of their own), large (16 blocks of 64 KiB to 8 MiB replaced at random, first page
written), floor: the pair loop against a thread-local free list behind an indirect call,
with no allocator in it, and floor-lib: the same list in a shared library that the program
calls through the PLT, the path to any preloaded malloc (what of a pair is the call path, not
the allocator). The floors make no allocator call, so the runs of each under every preload are
pooled into one cell, and every allocator's pair time is also given as a ratio to each, with
its interval.

Targets of the performance issue, each shown when its allocators are in the run, each met only
when its whole interval is: tinymalloc's pair time from 16 B to 1 KiB at most 1.6x the floor
and below tcmalloc's; prodcons below mimalloc's; large below tcmalloc's.

--render RUN_DIR makes the table and micro.json of an earlier run again from its run folder,
with no new run: a table published before a change to the script (the slow marks, a verdict)
gets this version's. It says so in its header, and keeps the run's date, machine and command.

Exit status: 0 ok; 1 --check and a target not shown (MISS or unclear); 2 usage error; 3 a
selected allocator's library (or the pairs program) is missing; 4 a run failed (crash,
timeout, wrong allocator); 5 the machine stayed busy past --quiet-machine.
"""
import argparse
import datetime
import json
import os
import shutil
import statistics
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import allocators as registry  # noqa: E402
import benchlib  # noqa: E402
import run as runner  # noqa: E402
import stats as bstats  # noqa: E402

DEFAULT_BIN = os.path.join(ROOT, "build", "bench", "micro", "pairs")
PAIR_SIZES = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
ALL_MODES = tuple(f"pair:{s}" for s in PAIR_SIZES) + ("lifo", "fifo", "prodcons", "large", "floor",
                                                       "floor-lib")
MAX_PAIR_SIZE = 64 << 20  # --modes pair:N beyond the default sizes
TARGET_RATIO = 1.1
TARGET_MAX_SIZE = 1024
FLOOR = "floor"          # the mode, and the name its pooled cell goes by
FLOOR_LIB = "floor-lib"  # the same, in a shared library reached through the PLT
FLOORS = (FLOOR, FLOOR_LIB)
FLOOR_SIZE = "16"
FLOOR_TARGET = 1.6       # tinymalloc's pair time / the floor, sizes <= TARGET_MAX_SIZE
UNPINNED = ("prodcons",)  # two threads: pinned to one CPU they would time the scheduler
# (mode, peer): tinymalloc below the peer's time in that mode (the whole interval below 1)
PEER_TARGETS = [(f"pair:{s}", "tcmalloc") for s in PAIR_SIZES if s <= TARGET_MAX_SIZE] + \
    [("prodcons", "mimalloc"), ("large", "tcmalloc")]


def mode_args(mode):
    if mode.startswith("pair:"):
        return ["pair", mode.split(":", 1)[1]]
    if mode in FLOORS:
        return [mode, FLOOR_SIZE]
    return [mode]


def workload_name(mode):
    return "micro-" + mode.replace(":", "-")


def manifest(args):
    """One bench workload per mode: the runner runs each under every allocator, once per round
    (a checked mem run: exit status, output, preload probe), and keeps its output."""
    size = ["--iters", str(args.iters)] if args.iters else ["--target-ms", str(args.target_ms)]
    return {"workloads": [{
        "name": workload_name(m), "group": "micro", "threads": 2 if m in UNPINNED else 1,
        "description": f"bench/micro/pairs.c, mode {m}",
        "cmd": [os.path.abspath(args.bin)] + size + ["--samples", str(args.samples)] + mode_args(m),
        "env": {}, "timeout": args.timeout,
        "check": {"exit": 0, "stdout_regex": r'"ns": ?[0-9]'}} for m in args.modes]}


def parse_run(rec, out, alloc):
    """-> (ns, None) or (None, error) for one mem record and its stdout. The runner has checked
    the exit status and that malloc came from the allocator; free is checked here, from what
    the program reports."""
    if rec is None:
        return None, "not run"
    if rec.get("status") != "ok":
        return None, rec.get("reason") or rec.get("status")
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    try:
        data = json.loads(lines[-1])
    except (IndexError, ValueError):
        return None, f"no JSON result in output: {out.strip()[-300:]!r}"
    if not benchlib.served_by(data.get("free_lib"), alloc):
        return None, f"free_lib is {data.get('free_lib')!r}, expected {alloc.get('lib') or 'libc.so.6'}"
    if not isinstance(data.get("ns"), (int, float)) or data["ns"] <= 0:
        return None, f"bad ns value {data.get('ns')!r}"
    return float(data["ns"]), None


def read_runs(run_dir, modes):
    """Every (mode, allocator, round) of the run folder, as {mode, allocator, rep, ok, ns|error,
    nivcsw, pinned_cpu}."""
    plan = benchlib.read_json(os.path.join(run_dir, "plan.json"))
    runs = []
    for m in modes:
        for a in plan["allocators"]:
            d = os.path.join(run_dir, "raw", workload_name(m), a["name"])
            for r in range(1, plan["options"]["blocks"] + 1):
                path = os.path.join(d, f"mem-{r}.json")
                rec = benchlib.read_json(path) if os.path.exists(path) else None
                out = benchlib.read_text(os.path.join(d, f"mem-{r}.stdout")) if rec else ""
                ns, err = parse_run(rec, out, a)
                run = {"mode": m, "allocator": a["name"], "rep": r, "ok": err is None}
                run.update({"ns": ns} if err is None else {"error": err})
                if rec and isinstance((rec.get("run") or {}).get("nivcsw"), int):
                    run["nivcsw"] = rec["run"]["nivcsw"]
                if rec and "pinned_cpu" in rec:
                    run["pinned_cpu"] = rec["pinned_cpu"]
                if rec and rec.get("speed"):
                    run["speed"] = rec["speed"]
                if rec and (rec.get("noise") or {}).get("busy"):
                    run["busy"] = True
                runs.append(run)
    return plan, runs


def mark_slow(runs):
    """Marks each run measured while the machine ran slow (run["slow"]: the factor), by the
    bench report's rule (benchlib.slowness): the runner's speed probes before and after the run
    both took over SLOW_FACTOR times the run's fastest probe. The runs of a mode are memory
    steps of the runner, which its report does not judge so; here they are the measurement.
    Returns the reference probe (seconds), or None without probes."""
    ref = benchlib.speed_ref(runs)
    for r in runs:
        f = benchlib.slowness(r, ref)
        if f and f > benchlib.SLOW_FACTOR:
            r["slow"] = round(f, 2)
    return ref


def summarize(values):
    values = sorted(values)
    s = {"n": len(values), "median": statistics.median(values), "min": values[0], "max": values[-1],
         "values": values}
    if len(values) >= 2:
        q = statistics.quantiles(values, n=4, method="inclusive")
        s["q1"], s["q3"] = q[0], q[2]
    else:
        s["q1"] = s["q3"] = values[0]
    return s


def verdict(cells):
    """The fastest of `cells` ({allocator: summary}): bold when a clear win, else the tie."""
    r = bstats.ranking({a: s["values"] for a, s in cells.items()})
    if r is None:
        return "-"
    if r["clear"]:
        return f"**{r['best']}**"
    return "tie: " + ", ".join([r["best"]] + r["ties"])


def target_status(ratio, ci):
    """ok: the whole interval is within the target; unclear: only the median; MISS: not even it.
    Without an interval (fewer than 2 repetitions) the median decides."""
    if ratio > TARGET_RATIO:
        return "MISS"
    if ci is None or ci[1] <= TARGET_RATIO:
        return "ok"
    return "unclear"


def fmt(x):
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def environment(args, run_dir, plan, runs, command):
    """The runner's environment record of the run (env.json), with what the table states of it;
    command: the micro_bench command that made the run."""
    env = benchlib.read_json(os.path.join(run_dir, "env.json"))
    end_path = os.path.join(run_dir, "env-end.json")
    for a in plan["allocators"]:
        env["allocators"][a["name"]]["env"] = a.get("env") or {}
    env["commit"] = env.get("project_commit") or "unknown"
    env["loadavg_start"] = float(env["loadavg"].split()[0])
    if os.path.exists(end_path):
        env["loadavg_end"] = float(benchlib.read_json(end_path)["loadavg"].split()[0])
    cpus = sorted({r["pinned_cpu"] for r in runs if "pinned_cpu" in r})
    env["pinned"] = (f"CPU {', '.join(map(str, cpus))} (taskset, by the bench runner; "
                     f"{', '.join(m for m in UNPINNED if m in args.modes) or 'no mode'} unpinned)"
                     if cpus else "no (--no-pin)")
    env["reps"] = plan["options"]["blocks"]
    env["iterations"] = (f"--iters {args.iters} per sample" if args.iters
                         else f"calibrated to ~{args.target_ms} ms per run")
    env["samples"] = args.samples
    env["command"] = command
    env["runs_total"] = len(runs)
    env["records"] = os.path.basename(run_dir)
    csw = [r["nivcsw"] for r in runs if "nivcsw" in r]
    env["nivcsw_median"] = statistics.median(csw) if csw else None
    env["nivcsw_max"] = max(csw) if csw else None
    return env


def cell_stats(runs, allocs, modes):
    """-> (stats {(mode, allocator): summary}, failures {(mode, allocator): [error]}). A floor
    is the same loop under every preload (no allocator call in it): its runs are pooled into
    one cell, (floor, floor) or (floor-lib, floor-lib)."""
    stats, failures = {}, {}
    for m in modes:
        for a in allocs:
            mine = [r for r in runs if r["mode"] == m and r["allocator"] == a]
            errs = [r["error"] for r in mine if not r["ok"]]
            if errs:
                failures[(m, a)] = errs
            good = [r for r in mine if r["ok"]]
            if good and m not in FLOORS:
                stats[(m, a)] = summarize_runs(good)
    for f in FLOORS:
        floor = [r for r in runs if r["mode"] == f and r["ok"]]
        if floor:
            stats[(f, f)] = summarize_runs(floor)
    return stats, failures


def summarize_runs(runs):
    """summarize() of the runs' times, with how many of them ran slow or busy (mark_slow)."""
    s = summarize([r["ns"] for r in runs])
    s["slow_runs"] = sum(1 for r in runs if r.get("slow"))
    s["busy_runs"] = sum(1 for r in runs if r.get("busy"))
    return s


def marks(s):
    """A cell's marks: its runs measured while the machine ran slow, or busy with other work."""
    m = [f"{s[k]} {w}" for k, w in (("slow_runs", "slow"), ("busy_runs", "busy")) if s.get(k)]
    return f" *{', '.join(m)}*" if m else ""


def render(env, allocs, modes, stats, failures):
    peers = [a for a in allocs if a != "tinymalloc"]
    have_tm = "tinymalloc" in allocs and peers
    out = []
    out.append("# Allocator micro-benchmark")
    out.append("")
    out.append(f"- date: {env['date']}, commit `{env['commit']}`")
    out.append(f"- command: `{env['command']}`")
    out.append(f"- machine: {env['cpu_model']}, {env['cpus_online']} CPUs, kernel {env['kernel']}, "
               f"{env['glibc']}, THP `{env['thp_enabled']}`, governor {env['cpu_governor']}, boost "
               f"{env['cpu_boost']}, 1-min load average {env['loadavg_start']:.2f} at start"
               + (f", {env['loadavg_end']:.2f} at end" if "loadavg_end" in env else ""))
    out.append(f"- pinned: {env['pinned']}; {env['reps']} repetitions (processes) per cell, "
               f"interleaved in shuffled order; {env['iterations']}, fastest of "
               f"{env['samples']} samples after a warm-up")
    if env.get("rendered"):
        out.append(f"- table: {env['rendered']}")
    if env.get("records"):
        out.append(f"- records: the bench runner's run folder [{env['records']}/]({env['records']}/) "
                   "(plan, environment, each run's record and output)")
    for a in allocs:
        info = env["allocators"][a]
        where = info["lib"] or "no preload (libc.so.6)"
        ver = f" ({info['package']} {info['version']})" if info["package"] else f" ({info['version']})"
        var = "".join(f" `{k}={v}`" for k, v in sorted((info.get("env") or {}).items()))
        out.append(f"- {a}: `{where}`{ver}{var}")
    if env.get("slow_runs") is not None:
        out.append(f"- slow machine: {env['slow_runs']} of {env['runs_total']} runs were measured while "
                   f"the machine ran slow (the runner's speed probe before and after the run both took "
                   f"over {benchlib.SLOW_FACTOR}x its fastest in this run, "
                   f"{env['speed_ref_s'] * 1000:.1f} ms); each cell says how many of its runs were "
                   f"(*N slow*), and how many ran beside other work (*N busy*)")
    if env.get("nivcsw_median") is not None:
        out.append(f"- involuntary context switches per run (another task took the CPU): median "
                   f"{env['nivcsw_median']:g}, max {env['nivcsw_max']} over {env['runs_total']} runs")
    out.append("")
    out.append("Cells: ns per malloc+free pair, median (min-max) over the repetitions. "
               "`pair N`: malloc(N)/free loop; `lifo`/`fifo`: batches of 1000 mixed sizes "
               "16..1024 freed newest-first / oldest-first.")
    out.append("Fastest: the lowest median, in bold when the 95 % interval of every other "
               "allocator's ratio to it lies above 1, otherwise *tie* with those whose interval "
               "does not.")
    if have_tm:
        out.append(f"Ratio: tinymalloc median / fastest peer median, with its 95 % interval; target "
                   f"<= {TARGET_RATIO} for `pair` sizes <= {TARGET_MAX_SIZE} B, met (ok) when the "
                   f"whole interval is, *unclear* when only the median is.")
    out.append("")
    head = ["mode"] + allocs + ["fastest"]
    if have_tm:
        head += ["fastest peer", "tinymalloc ratio (95 % CI)", "target"]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "|".join(["---"] + ["---:"] * len(allocs) + ["---"] * (len(head) - len(allocs) - 1)) + "|")
    misses = []
    for mode in modes:
        if mode in FLOORS:
            continue
        good = {a: stats[(mode, a)] for a in allocs
                if (mode, a) in stats and not failures.get((mode, a))}
        row = [mode.replace(":", " ")]
        for a in allocs:
            s = good.get(a)
            row.append(f"{fmt(s['median'])} ({fmt(s['min'])}-{fmt(s['max'])}){marks(s)}" if s else "FAIL")
        row.append(verdict(good))
        if have_tm:
            targeted = mode.startswith("pair:") and int(mode.split(":")[1]) <= TARGET_MAX_SIZE
            peer_meds = [(good[a]["median"], a) for a in peers if a in good]
            tm = good.get("tinymalloc")
            status = "MISS"
            if peer_meds:
                best, best_a = min(peer_meds)
                row.append(f"{best_a} {fmt(best)}")
            else:
                row.append("-")
            if tm and peer_meds:
                ratio = tm["median"] / best
                ci = bstats.ratio_ci(tm["values"], good[best_a]["values"])
                row.append(f"{ratio:.3f}x" + (f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci else " (n/a)"))
                status = target_status(ratio, ci)
            else:
                row.append("-")
            if targeted:
                row.append(status)
                if status != "ok":
                    misses.append(mode)
            else:
                row.append("")
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    if have_tm:
        targeted_modes = [m for m in modes if m.startswith("pair:") and int(m.split(":")[1]) <= TARGET_MAX_SIZE]
        if targeted_modes:
            out.append(f"Target: {len(targeted_modes) - len(misses)}/{len(targeted_modes)} pair sizes "
                       f"<= {TARGET_MAX_SIZE} B shown within {TARGET_RATIO}x of the fastest peer"
                       + (f"; not shown: {', '.join(misses)}" if misses else "") + ".")
    elif "tinymalloc" not in allocs:
        out.append("tinymalloc was not part of this run: no ratio or target.")
    out.extend(render_floor(allocs, modes, stats))
    out.extend(render_targets(allocs, modes, stats))
    if failures:
        out.append("")
        out.append("Failed runs:")
        for (mode, a), errs in sorted(failures.items()):
            out.append(f"- {mode} / {a}: {errs[0]}" + (f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""))
    return "\n".join(out) + "\n", misses


def target_cell(ratio, ci, bound):
    """ok when the whole interval is at or below `bound`, unclear when only the median is."""
    if ratio > bound:
        return "MISS"
    return "ok" if ci is None or ci[1] <= bound else "unclear"


def floor_ratio(s, fl):
    """A cell's median over the floor's, with the interval of the ratio."""
    return s["median"] / fl["median"], bstats.ratio_ci(s["values"], fl["values"])


FLOOR_TEXT = {FLOOR: "a thread-local free list behind an indirect call",
              FLOOR_LIB: "the same free list in a shared library, called through the PLT as a "
                         "preloaded malloc is"}


def render_floor(allocs, modes, stats):
    """Each allocator's pair time as a ratio to each floor measured in the same run."""
    pairs = [m for m in modes if m.startswith("pair:")]
    out = []
    for f in FLOORS:
        fl = stats.get((f, f))
        if not fl or not pairs:
            continue
        out += ["", f"{'Floor' if f == FLOOR else 'Library floor'}: {fmt(fl['median'])} ns "
                    f"({fmt(fl['min'])}-{fmt(fl['max'])}){marks(fl)} per pair, {FLOOR_TEXT[f]}. Pair time / "
                    f"{'floor' if f == FLOOR else 'library floor'}, median with its 95 % interval:", ""]
        out.append("| mode | " + " | ".join(allocs) + " |")
        out.append("|---|" + "---:|" * len(allocs))
        for m in pairs:
            row = [m.replace(":", " ")]
            for a in allocs:
                s = stats.get((m, a))
                if not s:
                    row.append("FAIL")
                    continue
                ratio, ci = floor_ratio(s, fl)
                row.append(f"{ratio:.2f}x" + (f" ({ci[0]:.2f}-{ci[1]:.2f})" if ci else ""))
            out.append("| " + " | ".join(row) + " |")
    both = stats.get((FLOOR, FLOOR)), stats.get((FLOOR_LIB, FLOOR_LIB))
    if all(both):
        ratio, ci = floor_ratio(both[1], both[0])
        out += ["", f"The library floor is {ratio:.2f}x" + (f" ({ci[0]:.2f}-{ci[1]:.2f})" if ci else "")
                + " the floor: the share of a pair that is the call into a shared library, which "
                  "every preloaded allocator pays."]
    return out


def render_targets(allocs, modes, stats):
    """The performance issue's targets for tinymalloc, those this run can show."""
    tm = "tinymalloc"
    if tm not in allocs:
        return []
    rows = []
    fl = stats.get((FLOOR, FLOOR))
    for m in modes:
        if fl and m.startswith("pair:") and int(m.split(":")[1]) <= TARGET_MAX_SIZE and (m, tm) in stats:
            ratio, ci = floor_ratio(stats[(m, tm)], fl)
            rows.append([m.replace(":", " "), f"<= {FLOOR_TARGET}x the floor", f"{ratio:.2f}x" +
                         (f" ({ci[0]:.2f}-{ci[1]:.2f})" if ci else ""), target_cell(ratio, ci, FLOOR_TARGET)])
    for m, peer in PEER_TARGETS:
        if m in modes and (m, tm) in stats and (m, peer) in stats:
            s, p = stats[(m, tm)], stats[(m, peer)]
            ratio, ci = s["median"] / p["median"], bstats.ratio_ci(s["values"], p["values"])
            rows.append([m.replace(":", " "), f"below {peer}", f"{ratio:.3f}x" +
                         (f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci else ""),
                         "ok" if ci and ci[1] < 1 else ("unclear" if ratio < 1 else "MISS")])
    if not rows:
        return []
    met = sum(r[3] == "ok" for r in rows)
    return ["", f"Performance targets for tinymalloc ({met} of {len(rows)} met; met only when the whole "
                "interval is, *unclear* when only the median is):", ""] + \
        [f"- {r[0]}, {r[1]}: {r[2]}, **{r[3]}**" for r in rows]


def known_mode(mode):
    """A default mode, or pair:N for any size N from 1 B to MAX_PAIR_SIZE (e.g. the medium
    sizes of the arenas, which the default list leaves out)."""
    if mode in ALL_MODES:
        return True
    size = mode[len("pair:"):] if mode.startswith("pair:") else ""
    return size.isdigit() and 1 <= int(size) <= MAX_PAIR_SIZE


def parse_modes(text):
    items = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in items if not known_mode(x)]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"unknown mode: {', '.join(bad) or '(empty)'}; choose from "
                                         f"{', '.join(ALL_MODES)}, or pair:N (N up to {MAX_PAIR_SIZE})")
    return list(dict.fromkeys(items))


def run_options(plan):
    """The modes of a run folder (in the order they were given) and the options its runs had:
    (modes, iters, target_ms, samples), from the commands of its plan's workloads (manifest())."""
    modes, opts = [], {"--iters": 0, "--target-ms": 75, "--samples": 20}
    for w in plan["workloads"]:
        cmd, i = w["cmd"], 1
        while i + 1 < len(cmd) and cmd[i] in opts:
            opts[cmd[i]] = int(cmd[i + 1])
            i += 2
        rest = cmd[i:]
        modes.append(f"pair:{rest[1]}" if rest[:1] == ["pair"] else rest[0])
    return modes, opts["--iters"], opts["--target-ms"], opts["--samples"]


def recorded_command(md):
    """The command line a table states (its `- command:` line), or None."""
    if not os.path.exists(md):
        return None
    for ln in benchlib.read_text(md).splitlines():
        if ln.startswith("- command: `") and ln.endswith("`"):
            return ln[len("- command: `"):-1]
    return None


def report(args, names, run_dir, command, rendered=None):
    """Reads the run folder, writes its table (next to it, RUN_ID.md, and on stdout) and its
    micro.json; returns the exit status."""
    out_dir, run_id = os.path.split(os.path.normpath(run_dir))
    plan, runs = read_runs(run_dir, args.modes)
    ref = mark_slow(runs)
    env = environment(args, run_dir, plan, runs, command)
    if rendered:
        env["rendered"] = rendered
    if ref:
        env["speed_ref_s"] = ref
        env["slow_runs"] = sum(1 for r in runs if r.get("slow"))
    stats, failures = cell_stats(runs, names, args.modes)
    table, misses = render(env, names, args.modes, stats, failures)
    sys.stdout.write(table)
    md = os.path.join(out_dir, run_id + ".md")
    with open(md, "w") as f:
        f.write(table)
    summary = [{"mode": m, "allocator": a, **s, "failed_runs": len(failures.get((m, a), []))}
               for (m, a), s in stats.items()]
    benchlib.write_json(os.path.join(run_dir, "micro.json"),
                        {"modes": args.modes, "allocators": names,
                         "target": {"ratio": TARGET_RATIO, "max_size": TARGET_MAX_SIZE},
                         "misses": misses, "summary": summary, "runs": runs})
    print(f"micro_bench: wrote {shown(md)} and {shown(run_dir)}/",
          file=sys.stderr)
    if args.check and misses:
        return 1
    if failures:
        return 4
    return 0


# Options that choose or make runs, or place them: --render takes the run folder's own instead
# (the table goes next to it).
RUN_OPTIONS = ("allocators", "allocators_file", "modes", "reps", "target_ms", "samples", "iters",
               "out", "run_id", "no_pin", "quiet_machine", "seed", "timeout", "tinymalloc", "bin",
               "quiet")


def rerender(ap, args):
    """--render RUN_DIR: the table and micro.json of an earlier run, made again from its folder
    by this version of the script (no run is made)."""
    default = {o: ap.get_default(o) for o in RUN_OPTIONS}
    default["modes"] = parse_modes(default["modes"])  # parsed as the option is
    given = [o for o in RUN_OPTIONS if getattr(args, o) != default[o]]
    if given:
        ap.error(f"--render makes no runs: --{given[0].replace('_', '-')} does not go with it")
    run_dir = os.path.normpath(args.render)
    plan_path = os.path.join(run_dir, "plan.json")
    if not os.path.exists(plan_path):
        print(f"micro_bench: {args.render} is no micro-benchmark run folder (no plan.json)",
              file=sys.stderr)
        return 2
    plan = benchlib.read_json(plan_path)
    try:
        args.modes, args.iters, args.target_ms, args.samples = run_options(plan)
        for m in args.modes:
            if not known_mode(m):
                raise ValueError(m)
    except (KeyError, IndexError, ValueError) as e:
        print(f"micro_bench: {args.render}: its plan's workloads are not this script's modes ({e})",
              file=sys.stderr)
        return 2
    names = [a["name"] for a in plan["allocators"]]
    md = os.path.normpath(run_dir) + ".md"
    command = recorded_command(md) or "not recorded"
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    rendered = (f"made again from the run folder on {when} by "
                f"`scripts/micro_bench.py --render {shown(run_dir)}` (the runs are those of the date above)")
    return report(args, names, run_dir, command, rendered)


def shown(path):
    """path relative to the working directory when it lies below it, else absolute."""
    rel = os.path.relpath(path)
    return os.path.abspath(path) if rel.startswith("..") else rel


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--allocators", metavar="LIST", default=None,
                    help="the bench's allocator list: built-in names, NAME=/path/lib.so, and names "
                         "of --allocators-file (default: the bench's default matrix, "
                         f"{','.join(registry.DEFAULT)})")
    ap.add_argument("--allocators-file", action="append", default=[], metavar="FILE",
                    help="allocator variants and extra libraries, as for bench/run.py")
    ap.add_argument("--modes", default=",".join(ALL_MODES),
                    type=parse_modes,
                    help="comma-separated modes (default %(default)s); any pair:N up to "
                         f"{MAX_PAIR_SIZE} too")
    ap.add_argument("--reps", type=int, default=7, help="repetitions (rounds) per cell (default 7)")
    ap.add_argument("--target-ms", type=int, default=75,
                    help="calibrate each run to about this many ms (default 75)")
    ap.add_argument("--samples", type=int, default=20,
                    help="timed samples per run, the fastest is the run's time (default 20)")
    ap.add_argument("--iters", type=int, default=0,
                    help="fixed iteration count instead of calibration (for tests)")
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "micro"), metavar="DIR",
                    help="where the table (RUN_ID.md) and the runner's run folder (RUN_ID/) go "
                         "(default results/micro)")
    ap.add_argument("--run-id", metavar="ID", help="name of the table and run folder (default DATE-TIME-COMMIT)")
    ap.add_argument("--check", action="store_true",
                    help=f"exit 1 unless tinymalloc's pair time is shown (its whole 95 %% interval) "
                         f"within {TARGET_RATIO}x the fastest peer for every size <= {TARGET_MAX_SIZE}")
    ap.add_argument("--no-pin", action="store_true", help="do not pin the one-thread modes with taskset")
    ap.add_argument("--quiet-machine", type=float, metavar="SECONDS",
                    help="wait for a quiet machine first, as bench/run.py does (exit 5 when it stays busy)")
    ap.add_argument("--seed", type=int, default=None, help="seed for the run order shuffle")
    ap.add_argument("--timeout", type=int, default=60, help="seconds per run (default 60)")
    ap.add_argument("--tinymalloc", metavar="PATH",
                    help="tinymalloc library to preload (default build/libtinymalloc.so)")
    ap.add_argument("--bin", default=DEFAULT_BIN, help="the pairs program (default %(default)s)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress lines from the runner")
    ap.add_argument("--render", metavar="RUN_DIR",
                    help="make the table (RUN_DIR.md) and micro.json of an earlier run again from its "
                         "run folder, with this version's marks and verdicts; no run is made, and the "
                         "run's own modes, allocators and options are used")
    args = ap.parse_args(argv)
    if args.render:
        return rerender(ap, args)
    if args.reps < 1:
        ap.error("--reps must be >= 1")
    if args.target_ms < 1 or args.iters < 0 or args.timeout < 1 or not 1 <= args.samples <= 100:
        ap.error("--target-ms, --timeout must be >= 1, --samples 1..100, --iters >= 0")
    spec = args.allocators or ",".join(registry.DEFAULT)
    if args.tinymalloc:
        spec = ",".join(f"tinymalloc={os.path.abspath(args.tinymalloc)}" if tok.strip() == "tinymalloc" else tok
                        for tok in spec.split(","))
    try:
        names = [a["name"] for a in registry.resolve(spec, args.allocators_file)]
    except benchlib.BenchError as e:
        print(f"micro_bench: {e}", file=sys.stderr)
        return e.code
    if args.check and ("tinymalloc" not in names or len(names) < 2):
        ap.error("--check needs tinymalloc and at least one peer in --allocators")
    if not os.access(args.bin, os.X_OK):
        print(f"micro_bench: {args.bin} not found (run `make micro`)", file=sys.stderr)
        return benchlib.EXIT_MISSING

    run_id = args.run_id or f"{datetime.datetime.now():%Y%m%d-%H%M%S}-{(benchlib.git_commit(ROOT) or 'nogit')[:8]}"
    tmp = tempfile.mkdtemp(prefix="tm-micro-")
    try:
        # The manifest is made here (iterations and samples are options); the runner copies it
        # into plan.json, so the run folder keeps it.
        with open(os.path.join(tmp, "micro.json"), "w") as f:
            json.dump(manifest(args), f)
        argv = ["--manifest", tmp, "--allocators", spec, "--runs", "0", "--blocks", str(args.reps), "--interleave",
                "--sample-ms", "0", "--no-strace", "--no-latency", "--no-plots", "--no-latest",
                "--results-dir", args.out, "--run-id", run_id]
        argv += [] if args.no_pin else ["--pin"]
        argv += ["-q"] if args.quiet else []
        argv += ["--seed", str(args.seed)] if args.seed is not None else []
        argv += ["--quiet-machine", str(args.quiet_machine)] if args.quiet_machine is not None else []
        argv += [x for f in args.allocators_file for x in ("--allocators-file", f)]
        rc = runner.main(argv)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    run_dir = os.path.join(args.out, run_id)
    if rc != benchlib.EXIT_OK or not os.path.exists(os.path.join(run_dir, "plan.json")):
        print(f"micro_bench: the bench runner stopped (exit {rc})", file=sys.stderr)
        return 5 if rc == benchlib.EXIT_BUSY else (rc or 1)

    command = " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])
    return report(args, names, run_dir, command)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
