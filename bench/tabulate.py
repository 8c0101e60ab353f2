#!/usr/bin/python3
"""Turn the raw records of a bench run into summary.json, summary.csv, report.md and plots/.

Usage: scripts/tabulate.py RUN_DIR [--no-plots] [--focus ALLOCATOR]
(bench/run.py calls it at the end of a run; run it again by hand after changing it.)

Per cell (workload x allocator): time = median of every timed run of every block, spread =
interquartile range / median; ratios to glibc and to the best allocator of that workload,
computed within the run (never across runs or hosts); peak RSS = median over the mem runs of
the largest process's ru_maxrss, and of the sampled sum over processes alive at once; page
faults; memory syscall counts from strace; the program's own throughput (TMBENCH ops_per_sec)
and latency percentiles. A cell with any failed step is FAIL with its reason and no figures.
Per allocator: geometric means of the ratios over the workloads where it and the reference
both passed.

Exit status: 0 ok (FAIL cells included), 2 RUN_DIR is not a bench run, 3 a missing
dependency (matplotlib is optional: without it the report has no plots and says so).
"""
import argparse
import csv
import math
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
import stats  # noqa: E402
from benchlib import geomean, median, quantile  # noqa: E402

MIN_SAMPLES = 5
# TMBENCH fields every program reports, tabulated in their own columns; any other numeric field
# is the program's own figure (wl_extra: idle-threads' rss_idle_kb, say), shown per workload.
TMBENCH_COMMON = {"workload", "ops", "seconds", "ops_per_sec", "threads", "seed", "scale", "malloc_from",
                  "peak_rss_kb", "rss_kb_samples", "latency_ns", "latency_samples", "latency_timer_ns"}
CSV_FIELDS = ["host", "run_id", "workload", "group", "allocator", "version", "status", "reason",
              "runs", "time_median_s", "time_q1_s", "time_q3_s", "time_min_s", "time_max_s", "spread_pct",
              "ratio_glibc", "ratio_best", "rss_max_kb", "rss_sum_kb", "rss_ratio_glibc", "rss_ratio_best",
              "minflt", "majflt", "mmap", "munmap", "mremap", "brk", "madvise", "ops_per_sec", "mem_runs",
              "user_s", "sys_s", "peer", "ratio_peer", "rss_peer", "rss_ratio_peer"]
# The allocator the report sets against its best peer in each workload (the project's own).
FOCUS = "tinymalloc"


def step_file(run_dir, st):
    tag = st["kind"] + (f"-{st['round']}" if st.get("round") else "")
    return os.path.join(run_dir, "raw", st["workload"], st["allocator"], f"{tag}.json")


def _med(xs):
    xs = [x for x in xs if isinstance(x, (int, float))]
    return median(xs) if xs else None


def cell_from_records(w, a, recs, missing, speed_ref=None):
    """w, a: plan entries; recs: step records of the cell in plan order; missing: steps not run;
    speed_ref: the run's fastest speed probe (benchlib.speed_ref), which slow steps are set against."""
    c = {"workload": w["name"], "group": w.get("group", ""), "allocator": a["name"], "version": a.get("version"),
         "status": "ok", "reason": None}
    if w.get("sweep"):
        c["sweep_base"], c["sweep_threads"] = w["sweep"]["base"], w["sweep"]["threads"]
    fails = [r for r in recs if r.get("status") == "fail"]
    if fails:
        c["status"], c["reason"] = "FAIL", f"{fails[0].get('kind')}: {fails[0].get('reason')}"
        return c
    if missing:
        c["status"], c["reason"] = "incomplete", f"{missing} step(s) not run yet"
    times = [t for r in recs if r.get("kind") == "time" for t in r.get("times") or []]
    noisy = [r["noise"] for r in recs if r.get("kind") in ("time", "mem") and (r.get("noise") or {}).get("busy")]
    if noisy:
        c["busy"] = True
        c["busy_other_share"] = max(n.get("other_share") or 0 for n in noisy)
    # Only timed steps: a machine running slow changes how long a program takes, not how much
    # memory it holds.
    slowed = [f for f in (benchlib.slowness(r, speed_ref) for r in recs if r.get("kind") == "time")
              if f is not None and f > benchlib.SLOW_FACTOR]
    if slowed:
        c["slow"] = True
        c["slow_factor"] = round(max(slowed), 2)
    spread = benchlib.block_spread(recs)
    if spread is not None and spread > benchlib.BLOCK_SPREAD:
        c["unstable"] = round(spread, 2)
    if times:
        c["times"] = times
        m = median(times)
        q1, q3 = quantile(times, 0.25), quantile(times, 0.75)
        c.update(runs=len(times), time_median_s=m, time_q1_s=q1, time_q3_s=q3, time_min_s=min(times),
                 time_max_s=max(times), spread_pct=100.0 * (q3 - q1) / m if m else None)
    mems = [r for r in recs if r.get("kind") == "mem" and r.get("run")]
    if mems:
        runs = [r["run"] for r in mems]
        # the sampled sum means something only when the run lasted several sampling periods
        sums = [r.get("tree_peak_sum_kb") for r in runs if len(r.get("rss_samples") or []) >= MIN_SAMPLES]
        c["rss_runs_kb"] = [r.get("max_rss_kb") for r in runs if isinstance(r.get("max_rss_kb"), (int, float))]
        c.update(mem_runs=len(mems), rss_max_kb=_med([r.get("max_rss_kb") for r in runs]),
                 rss_sum_kb=_med(sums) if len(sums) == len(runs) else None,
                 minflt=_med([r.get("minflt") for r in runs]), majflt=_med([r.get("majflt") for r in runs]),
                 user_s=_med([r.get("user_s") for r in runs]), sys_s=_med([r.get("sys_s") for r in runs]))
        tms = [r.get("tmbench") or {} for r in mems]
        c["ops_per_sec"] = _med([t.get("ops_per_sec") for t in tms])
        c["ops"] = _med([t.get("ops") for t in tms])
        c["tm_peak_rss_kb"] = _med([t.get("peak_rss_kb") for t in tms])
        keys = sorted({k for t in tms for k, v in t.items() if k not in TMBENCH_COMMON
                       and isinstance(v, (int, float)) and not isinstance(v, bool)})
        if keys:  # medians over the memory runs, and how many runs reported each
            c["extras"] = {k: _med([t.get(k) for t in tms]) for k in keys}
            c["extras_runs"] = {k: sum(isinstance(t.get(k), (int, float)) for t in tms) for k in keys}
        samples = next((t["rss_kb_samples"] for t in tms if isinstance(t.get("rss_kb_samples"), list)), None)
        if samples:
            c["rss_kb_samples"] = samples
    st = next((r for r in recs if r.get("kind") == "strace" and r.get("oscalls")), None)
    if st:
        c.update(st["oscalls"])
        c["oscalls_other"] = {k: v["calls"] for k, v in (st.get("strace") or {}).get("syscalls", {}).items()
                              if k not in benchlib.MEMORY_SYSCALLS}
    lat = next((r for r in recs if r.get("kind") == "latency" and r.get("latency_ns")), None)
    if lat:
        c["latency_ns"] = lat["latency_ns"]
        timer = (lat.get("tmbench") or {}).get("latency_timer_ns")
        if isinstance(timer, (int, float)):
            c["latency_timer_ns"] = timer
    return c


def collect(run_dir):
    """-> (cells, meta) of one run folder."""
    pp = os.path.join(run_dir, "plan.json")
    if not os.path.exists(pp):
        raise benchlib.BenchError(f"{run_dir} is not a bench run (no plan.json)")
    plan = benchlib.read_json(pp)
    env = benchlib.read_json(os.path.join(run_dir, "env.json")) if os.path.exists(
        os.path.join(run_dir, "env.json")) else {}
    env_end = os.path.join(run_dir, "env-end.json")
    host = env.get("host", "?")
    by_cell = {}
    for st in plan["steps"]:
        by_cell.setdefault((st["workload"], st["allocator"]), []).append(st)
    per_cell = []
    for w in plan["workloads"]:
        for a in plan["allocators"]:
            recs, missing = [], 0
            for st in by_cell.get((w["name"], a["name"]), []):
                p = step_file(run_dir, st)
                if os.path.exists(p):
                    recs.append(benchlib.read_json(p))
                else:
                    missing += 1
            per_cell.append((w, a, recs, missing))
    # The machine's speed is judged against its best over the whole run, known only now.
    speed_ref = benchlib.speed_ref([r for _, _, recs, _ in per_cell for r in recs])
    cells = []
    for w, a, recs, missing in per_cell:
        c = cell_from_records(w, a, recs, missing, speed_ref)
        c.update(host=host, run_id=plan["run_id"])
        cells.append(c)
    meta = {"run_id": plan["run_id"], "host": host, "env": env, "options": plan["options"],
            "speed_ref_s": speed_ref,
            "env_end": benchlib.read_json(env_end) if os.path.exists(env_end) else None,
            "workloads": [{k: w.get(k) for k in ("name", "group", "description", "argv", "manifest", "cwd", "sweep")}
                          for w in plan["workloads"]],
            "allocators": plan["allocators"], "steps": len(plan["steps"])}
    return cells, meta


# What is compared: (the cell's runs, their median, the prefix of the ratio fields, the cell's
# verdict field, the key of the workload's verdict).
METRICS = (("times", "time_median_s", "ratio", "time_verdict", "time"),
           ("rss_runs_kb", "rss_max_kb", "rss_ratio", "rss_verdict", "rss"))


def add_ratios(cells):
    """Within one (run, workload): each passing cell's ratio to glibc and to the best passing
    allocator, with 95 % intervals (bench/stats.py), and the workload's verdicts: who is lowest,
    and whether its interval clears every other allocator's (`clear`) or it ties.
    -> [{run_id, host, workload, time: ranking, rss: ranking}]"""
    # The host is part of the key: two machines may share a run id (--run-id), and a time is
    # never divided by one from another machine.
    groups = {}
    for c in cells:
        groups.setdefault((c["host"], c["run_id"], c["workload"]), []).append(c)
    verdicts = []
    for (host, run_id, wl), grp in groups.items():
        v = {"run_id": run_id, "host": host, "workload": wl}
        ok = [c for c in grp if c["status"] != "FAIL"]
        for runs, key, out, vkey, name in METRICS:
            vals = [c for c in ok if c.get(key)]
            if not vals:
                continue
            best = min(vals, key=lambda c: (c[key], c["allocator"]))
            ref = next((c for c in vals if c["allocator"] == "glibc"), None)
            for c in vals:
                c[f"{out}_best"] = c[key] / best[key]
                c[f"{out}_best_ci"] = stats.ratio_ci(c.get(runs), best.get(runs))
                c[f"{out}_glibc"] = c[key] / ref[key] if ref else None
                c[f"{out}_glibc_ci"] = stats.ratio_ci(c.get(runs), ref.get(runs)) if ref else None
                # Against the best *other* allocator: below 1 is a lead, which "vs best" (1.00x
                # for the best itself) cannot show.
                others = [o for o in vals if o is not c]
                if others:
                    peer = min(others, key=lambda o: (o[key], o["allocator"]))
                    c[f"{name}_peer" if name == "rss" else "peer"] = peer["allocator"]
                    c[f"{out}_peer"] = c[key] / peer[key]
                    c[f"{out}_peer_ci"] = stats.ratio_ci(c.get(runs), peer.get(runs))
            rk = stats.ranking({c["allocator"]: c.get(runs) or [c[key]] for c in vals})
            v[name] = rk
            for c in vals:
                if c["allocator"] == rk["best"]:
                    c[vkey] = "clear" if rk["clear"] else "tie"
                elif c["allocator"] in rk["ties"]:
                    c[vkey] = "tie"
        verdicts.append(v)
    return verdicts


def scaling(cells):
    """The thread sweeps run at two or more counts: [{host, base, allocator, points: [[threads,
    rate], ...]}]. The rate is the program's operations (its TMBENCH `ops`, fixed for a cell)
    per second of the timed runs' median wall time; None for a cell without one, whose status
    (FAIL, incomplete, or ok without a TMBENCH `ops`) is in `missing`: [[threads, status]]."""
    by = {}
    for c in cells:
        if not c.get("sweep_base"):
            continue
        ok = c["status"] == "ok" and c.get("ops") and c.get("time_median_s")
        row = by.setdefault((c["host"], c["sweep_base"]), {}).setdefault(c["allocator"], {"points": [], "missing": []})
        row["points"].append([c["sweep_threads"], c["ops"] / c["time_median_s"] if ok else None])
        if not ok:
            row["missing"].append([c["sweep_threads"], c["status"] if c["status"] != "ok" else "no ops"])
    out = []
    for (host, base), per in by.items():
        if len({t for row in per.values() for t, _ in row["points"]}) < 2:
            continue
        for alloc, row in per.items():
            out.append({"host": host, "base": base, "allocator": alloc, "points": sorted(row["points"]),
                        "missing": sorted(row["missing"])})
    return out


def summarize(cells):
    """Per host and allocator: geometric means of the ratios (to glibc, to the best, and to
    the best other allocator of each workload), with intervals, over the workloads where every
    allocator of that host passed (the others are listed), and the count of clear wins and
    ties."""
    out = []
    hosts = []
    for c in cells:
        if c["host"] not in hosts:
            hosts.append(c["host"])
    for host in hosts:
        hc = [c for c in cells if c["host"] == host]
        allocs, wls = [], []
        for c in hc:
            if c["allocator"] not in allocs:
                allocs.append(c["allocator"])
            if c["workload"] not in wls:
                wls.append(c["workload"])
        by = {(c["workload"], c["allocator"]): c for c in hc}
        passed = lambda w, a: (w, a) in by and by[(w, a)]["status"] == "ok" and by[(w, a)].get("time_median_s")  # noqa: E731
        # an allocator that passed nothing would empty the set: it has no geomean instead
        ranked = [a for a in allocs if any(passed(w, a) for w in wls)]
        common, left_out = [], []
        for w in wls:
            bad = [a for a in ranked if not passed(w, a)] if ranked else list(allocs)
            (left_out.append({"workload": w, "allocators": bad}) if bad else common.append(w))
        cis = {}
        for runs, key, out_key, _, _ in METRICS:
            table = {w: {a: by[(w, a)].get(runs) or [] for a in ranked} for w in common
                     if all(by[(w, a)].get(key) for a in ranked)}
            if len(table) < len(common):
                table = {}
            for ref in ("glibc", None, stats.PEER):
                if ref not in (None, stats.PEER) and ref not in ranked:
                    continue
                cis[(out_key, ref)] = stats.geomean_cis(table, ref) if table else {}
        for a in allocs:
            cs = [by[(w, a)] for w in wls if (w, a) in by]
            com = [by[(w, a)] for w in common] if a in ranked else []
            s = {"host": host, "allocator": a, "version": cs[0].get("version"), "workloads": len(cs),
                 "ok": sum(c["status"] == "ok" for c in cs),
                 "fail": sum(c["status"] == "FAIL" for c in cs),
                 "incomplete": sum(c["status"] == "incomplete" for c in cs),
                 "n_common": len(common), "left_out": left_out}
            for _, _, out_key, vkey, _ in METRICS:
                for ref, suffix in (("glibc", "glibc"), (None, "best"), (stats.PEER, "peer")):
                    s[f"geomean_{out_key}_{suffix}"] = geomean([c.get(f"{out_key}_{suffix}") for c in com]) \
                        if com and all(c.get(f"{out_key}_{suffix}") for c in com) else None
                    s[f"geomean_{out_key}_{suffix}_ci"] = cis.get((out_key, ref), {}).get(a)
                s[f"{vkey}_clear"] = sum(c.get(vkey) == "clear" for c in cs)
                s[f"{vkey}_tie"] = sum(c.get(vkey) == "tie" for c in cs)
            out.append(s)
    return out


# ---------------------------------------------------------------------------------------
# formatting

def f_time(s):
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 10:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def f_kb(kb):
    if kb is None:
        return "-"
    return f"{kb / 1024:.1f} MiB" if kb >= 1024 else f"{kb:.0f} KiB"


def f_num(n):
    if n is None:
        return "-"
    if isinstance(n, float) and not n.is_integer():
        return f"{n:,.1f}" if n < 1000 else f"{n:,.0f}"
    return f"{int(n):,}"


def f_rate(n):
    if n is None:
        return "-"
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.2f} {unit}/s"
    return f"{n:.0f} /s"


def md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(str(x).replace("|", "\\|") for x in r) + " |")
    return "\n".join(lines)


def f_ci(r, ci):
    """A ratio with its 95 % interval: `0.52x (0.50-0.54)`; no interval: `0.52x (n/a)`."""
    if r is None:
        return "-"
    return f"{r:.2f}x ({ci[0]:.2f}-{ci[1]:.2f})" if ci else f"{r:.2f}x (n/a)"


def f_verdict(rk):
    """A workload's verdict: the clear winner, or the allocators that tie for it."""
    if not rk:
        return "-"
    if rk["clear"]:
        return f"**{rk['best']}**"
    return "tie: " + ", ".join([rk["best"]] + rk["ties"])


def f_latency(ns, timer):
    """A latency percentile; at or below the timer's resolution it is no number."""
    if ns is None:
        return "-"
    if timer and ns <= timer:
        return f"< {max(1, math.ceil(timer))} ns"
    return f_num(ns)


def summary_lines(summary):
    out = []
    multi = len({x["host"] for x in summary["allocators"]}) > 1
    for s in summary["allocators"]:
        host = f"{s['host']}: " if multi else ""
        out.append(f"{host}{s['allocator']:<14} time vs glibc "
                   f"{f_ci(s['geomean_ratio_glibc'], s['geomean_ratio_glibc_ci']):>20}, peak RSS vs glibc "
                   f"{f_ci(s['geomean_rss_ratio_glibc'], s['geomean_rss_ratio_glibc_ci']):>20} "
                   f"(geomeans of {s['n_common']}), fastest on {s['time_verdict_clear']} "
                   f"(+{s['time_verdict_tie']} tied), {s['ok']} ok, {s['fail']} FAIL"
                   + (f", {s['incomplete']} incomplete" if s['incomplete'] else ""))
    fails = [c for c in summary["cells"] if c["status"] == "FAIL"]
    for c in fails:
        out.append(f"FAIL {c['workload']} x {c['allocator']}" + (f" on {c['host']}" if multi else "") +
                   f": {c['reason']}")
    inc = [c for c in summary["cells"] if c["status"] == "incomplete"]
    for c in inc:
        out.append(f"NOT RUN {c['workload']} x {c['allocator']}" + (f" on {c['host']}" if multi else "") +
                   f": {c['reason']}")
    for m in summary.get("not_run") or []:
        out.append(f"NOT RUN {m['what']}: {m['why']}")
    return out


def warnings(cells, metas):
    """What a reader must know before trusting the figures: a tree with uncommitted changes,
    cells measured while other processes took CPU, too few runs for intervals."""
    out = []
    for m in metas:
        commit = m["env"].get("project_commit") or ""
        if commit.endswith("-dirty"):
            out.append(f"**Built from a tree with uncommitted changes** ({m['run_id']}: commit {commit}): "
                       "the figures cannot be reproduced from any commit.")
    thr = max((m["options"].get("busy_threshold") or 0) for m in metas)
    marks = (("busy", "were measured while the machine was busy",
              "other processes took more than " + (f"{thr * 100:.0f} % of" if thr else "a share of") +
              " the CPU time during a timed or memory run (marked *busy* below). Re-run them on a quiet "
              "machine before trusting them."),
             ("slow", "were measured while the machine ran slow",
              f"a fixed CPU-bound loop timed before and after their timed runs took both times over "
              f"{benchlib.SLOW_FACTOR}x as long as its fastest in the run (marked *slow* below, with the factor). "
              "Re-run them before trusting them."),
             ("unstable", "are unstable",
              f"the medians of their timed blocks differ by over {benchlib.BLOCK_SPREAD}x (marked *unstable* below, "
              "with the factor): the machine's speed changed under them. Their intervals are wide; re-run them "
              "before trusting them."))
    for key, what, why in marks:
        n = sum(1 for c in cells if c.get(key))
        if n:
            out.append(f"**{n} of {len(cells)} cells {what}**: {why}")
    few = sorted({m["options"].get("runs") for m in metas if (m["options"].get("runs") or 0) < 5})
    if few:
        out.append(f"Only {', '.join(map(str, few))} timed run(s) per cell: the intervals are wide or absent, "
                   "and most comparisons come out as ties. Publish runs of the default 10.")
    return out


def render_scaling(rows, plots, multi):
    """The thread-scaling section: per swept workload, each allocator's rate at each count and
    its gain from one thread to the most."""
    if not rows:
        return []
    L = ["## Thread scaling", "",
         "Workloads that sweep their thread count (`--threads`, `THREADS=`; each count is a cell of "
         "its own, NAME@T, with its intervals in its section below). A rate here is the program's "
         "operations per second of wall time, from the median of the timed runs; higher is better. "
         "*most vs 1* is the rate at the most threads over the rate at one.", ""]
    groups = {}
    for r in rows:
        groups.setdefault((r["host"], r["base"]), []).append(r)
    for (host, base), rs in groups.items():
        counts = sorted({t for r in rs for t, _ in r["points"]})
        L.append(f"### {base}" + (f" on {host}" if multi else ""))
        L.append("")
        trows = []
        for r in rs:
            rate = dict((t, v) for t, v in r["points"])
            lo, hi = rate.get(counts[0]), rate.get(counts[-1])
            gain = f"{hi / lo:.2f}x" if lo and hi and counts[0] == 1 else "-"
            why = dict((t, st) for t, st in r.get("missing") or [])
            trows.append([r["allocator"]] + [f_rate(rate.get(t)) if rate.get(t) else why.get(t, "-")
                                             for t in counts] + [gain])
        L.append(md_table(["allocator"] + [f"{t} thread{'s' if t > 1 else ''}" for t in counts] +
                          ["most vs 1"], trows))
        L.append("")
        key = f"scaling_{base}" + (f"_{host}" if multi else "")
        if key in plots:
            L.append(f"![thread scaling: {base}]({plots[key]})")
            L.append("")
    return L


def render_focus(cells, focus, multi, summary):
    """Where `focus` stands against the best other allocator of each workload, for time and
    peak RSS: the ratio of medians with its 95 % interval. *ahead* only for a clear win of the
    workload (its interval clears every other allocator's, not only the best median's: a
    noisier peer with a higher median may still tie), *behind* when the interval against the
    best peer lies above 1, else a tie. Then, per host, the geometric means of those ratios
    with their intervals (summarize)."""
    mine = [c for c in cells if c["allocator"] == focus and c["status"] != "FAIL" and
            (c.get("ratio_peer") is not None or c.get("rss_ratio_peer") is not None)]
    if not mine:
        return []

    def part(c, out, peer, verdict):
        if c.get(f"{out}_peer") is None:
            return ["-", "-", "-"]
        ci = c.get(f"{out}_peer_ci")
        word = ("n/a" if not ci else "**ahead**" if c.get(verdict) == "clear" else
                "behind" if stats.separated(ci) > 0 else "tie")
        return [f_ci(c[f"{out}_peer"], ci), c[peer], word]

    rows = [([c["host"]] if multi else []) + [c["workload"], *part(c, "ratio", "peer", "time_verdict"),
                                              *part(c, "rss_ratio", "rss_peer", "rss_verdict")] for c in mine]
    L = [f"{focus} against the best other allocator of each workload (its median over theirs, "
         "with the 95 % interval; *ahead*: a clear win of the workload, *behind*: the interval "
         "against the best peer lies above 1.0, else a tie):", "",
         md_table((["host"] if multi else []) +
                  ["workload", "time vs best peer (95 % CI)", "peer", "time", "peak RSS vs best peer (95 % CI)",
                   "peer", "peak RSS"], rows), ""]
    for s in summary["allocators"]:
        if s["allocator"] != focus or s.get("geomean_ratio_peer") is None:
            continue
        n = s["n_common"]
        time = f_ci(s["geomean_ratio_peer"], s.get("geomean_ratio_peer_ci"))
        rss = s.get("geomean_rss_ratio_peer")
        rss = f", peak RSS {f_ci(rss, s.get('geomean_rss_ratio_peer_ci'))}" if rss is not None else ""
        L.append((f"On {s['host']}, over" if multi else "Over") +
                 f" the {n} workload{'s' if n != 1 else ''} where every allocator passed, the geometric "
                 f"mean of {focus}'s ratios to the best peer (95 % CI): time {time}{rss}.")
        L.append("")
    return L


def render_summary(summary, host, multi):
    """The summary of one host: geometric means, wins and verdicts of its own cells."""
    L = [f"## Summary on {host}" if multi else "## Summary", ""]
    allocs = [s for s in summary["allocators"] if s["host"] == host]
    srows = []
    anyinc = any(x["incomplete"] for x in allocs)
    for s in allocs:
        srows.append([
            s["allocator"],
            f_ci(s["geomean_ratio_glibc"], s["geomean_ratio_glibc_ci"]),
            f_ci(s["geomean_ratio_best"], s["geomean_ratio_best_ci"]),
            f_ci(s["geomean_rss_ratio_glibc"], s["geomean_rss_ratio_glibc_ci"]),
            f_ci(s["geomean_rss_ratio_best"], s["geomean_rss_ratio_best_ci"]),
            f"{s['time_verdict_clear']} (+{s['time_verdict_tie']} tied)",
            f"{s['rss_verdict_clear']} (+{s['rss_verdict_tie']} tied)",
            s["ok"], s["fail"] if not s["fail"] else f"**{s['fail']}**"] + ([s["incomplete"]] if anyinc else []))
    L.append(md_table(["allocator", "time vs glibc (geomean, 95 % CI)", "time vs best (geomean, 95 % CI)",
                       "peak RSS vs glibc (geomean, 95 % CI)", "peak RSS vs best (geomean, 95 % CI)",
                       "fastest on", "lowest peak RSS on", "ok", "FAIL"] + (["incomplete"] if anyinc else []), srows))
    L.append("")
    s0 = allocs[0]
    left = "; ".join(f"{x['workload']} ({', '.join(x['allocators'])} did not pass)" for x in s0["left_out"])
    none = [s["allocator"] for s in allocs if not s["ok"]]
    L.append(f"Geometric means run over the {s0['n_common']} workloads where every allocator passed" +
             (f"; left out: {left}." if left else " (all of them).") +
             (f" {', '.join(none)} passed no workload and {'has' if len(none) == 1 else 'have'} no geometric "
              "mean." if none else ""))
    L.append("")
    vrows = [[v["workload"], f_verdict(v.get("time")), f_verdict(v.get("rss"))]
             for v in summary.get("verdicts", []) if v["host"] == host and (v.get("time") or v.get("rss"))]
    if vrows:
        L.append("Verdicts per workload (bold: a clear win; *tie*: intervals overlap):")
        L.append("")
        L.append(md_table(["workload", "fastest", "lowest peak RSS"], vrows))
        L.append("")
    return L


def render_host_ranks(summary, hosts):
    """Side by side, each host's ranking of the allocators by its own geometric means: how the
    ranking moves from one machine to another, without a ratio across machines."""
    L = ["## Rankings per host", "",
         "Each column is one host's ranking by its own geometric mean of time vs glibc (the figure in "
         "brackets); no figure of one host is divided by another's.", ""]
    per = {h: sorted((s for s in summary["allocators"] if s["host"] == h and s["geomean_ratio_glibc"]),
                     key=lambda s: s["geomean_ratio_glibc"]) for h in hosts}
    rows = []
    for k in range(max((len(v) for v in per.values()), default=0)):
        rows.append([str(k + 1)] + [f"{per[h][k]['allocator']} ({per[h][k]['geomean_ratio_glibc']:.2f}x)"
                                    if k < len(per[h]) else "-" for h in hosts])
    L.append(md_table(["rank", *hosts], rows))
    L.append("")
    return L


def render_report(cells, summary, metas, plots, title, focus=FOCUS):
    multi = len({m["host"] for m in metas}) > 1
    L = [f"# {title}", ""]
    where = "`raw/` of this folder" if len(metas) == 1 else \
        "`raw/` of the runs merged here (`sources.json` lists their folders)"
    L.append(f"Every figure below comes from the raw records in {where} "
             "(hyperfine JSON, GNU time rusage, `strace -f -c`, the programs' TMBENCH lines). "
             "Ratios compare allocators within one run on one host; lower is better.")
    L.append("")
    for wtext in warnings(cells, metas):
        L.append("> " + wtext)
        L.append("")
    # environment
    L.append("## Environment")
    L.append("")
    keys = [("host", "host"), ("hostname", "host name"), ("date", "date (UTC)"), ("cpu_model", "CPU"), ("cpus_usable", "usable CPUs"),
            ("mem_total_kb", "memory"), ("kernel", "kernel"), ("os", "OS"), ("glibc", "glibc"),
            ("thp_enabled", "THP enabled"), ("thp_defrag", "THP defrag"), ("project_commit", "project commit"),
            ("cpu_governor", "CPU frequency governor"), ("cpu_boost", "CPU boost"),
            ("loadavg", "load average at start"), ("hyperfine", "hyperfine"), ("strace", "strace")]
    hdr = ["", *[m["run_id"] for m in metas]]
    rows = []
    for k, label in keys:
        vals = []
        for m in metas:
            v = m["env"].get(k)
            if k == "mem_total_kb" and v:
                v = f_kb(v)
            vals.append(v if v not in (None, "") else "-")
        rows.append([label, *vals])
    rows.append(["load average at end", *[(m.get("env_end") or {}).get("loadavg", "-") for m in metas]])
    o = [m["options"] for m in metas]
    rows.append(["scale, runs", *[f"{x['scale']}, {x['runs']} timed runs in {x['blocks']} blocks "
                                  f"(+{x['warmup']} warm-up per block), shuffle seed {x['seed']}, shard {x['shard']}"
                                  for x in o]])
    rows.append(["noise control", *[", ".join(filter(None, [
        f"busy above {x['busy_threshold'] * 100:.0f} % of CPU time taken by others" if x.get("busy_threshold")
        else "not recorded (run made before noise recording)",
        f"waited for a quiet machine ({x['quiet_machine']:.0f} s limit)" if x.get("quiet_machine") else None,
        "single-threaded workloads pinned to one CPU" if x.get("pin") else None])) for x in o]])
    rows.append(["speed probe", *[f"fastest {m['speed_ref_s'] * 1000:.1f} ms; a step is slow above "
                                  f"{benchlib.SLOW_FACTOR}x that" if m.get("speed_ref_s")
                                  else "not recorded (run made before speed probes)" for m in metas]])
    if any(m.get("dropped") for m in metas):
        rows.append(["left out of this merge", *[", ".join(m.get("dropped") or []) or "-" for m in metas]])
    L.append(md_table(hdr, rows))
    L.append("")
    L.append("Allocators:")
    L.append("")
    arows = []
    any_env = any(a.get("env") for m in metas for a in m["allocators"])
    for m in metas:
        for a in m["allocators"]:
            env = " ".join(f"`{k}={v}`" for k, v in (a.get("env") or {}).items()) or "-"
            row = ([m["host"]] if multi else []) + \
                [a["name"], a.get("version") or "-", f"`{a['lib']}`" if a.get("lib") else "system (no preload)"] + \
                ([env] if any_env else [])
            if row not in arows:  # the shards of one host list the same allocators
                arows.append(row)
    L.append(md_table((["host"] if multi else []) + ["allocator", "version", "library"] +
                      (["environment"] if any_env else []), arows))
    L.append("")
    L.append("How it was measured: per cell, each round runs the program once untimed under GNU time "
             "(rusage: peak RSS of the largest process, page faults; the RSS of the whole process tree is "
             "sampled too; exit status and output are checked) and then hyperfine (`-N`, warm-up, timed runs "
             "through `/usr/bin/env LD_PRELOAD=...`, the same for every allocator); the allocator order is "
             "shuffled in each round. One more untimed run under `strace -f -c` counts memory syscalls. A "
             "probe preloaded after the allocator proves in every run which library served malloc. "
             f"\"RSS sum (sampled)\" is the peak of the summed RSS of all processes alive at once, sampled "
             f"every few ms; shown only for runs that lasted {MIN_SAMPLES} samples or more.")
    L.append("")
    # summary: one section per host, for nothing is compared across machines
    hosts = list(dict.fromkeys(s["host"] for s in summary["allocators"]))
    for host in hosts:
        L.extend(render_summary(summary, host, multi))
    L.append("`x` is a factor: 1.20x = 20 % slower (or larger) than the reference. In brackets, the 95 % "
             "confidence interval (percentile bootstrap over the recorded runs, both sides resampled; for a "
             "geometric mean, every cell resampled at once). *Fastest on* counts the workloads where the "
             "allocator's interval against every other allocator lies below 1.0: a clear win. Where it does "
             "not, the workload is a tie among the allocators whose intervals overlap the fastest's, counted "
             "in brackets. The same rule makes *lowest peak RSS on*.")
    L.append("")
    if multi:
        L.extend(render_host_ranks(summary, hosts))
    L.extend(render_focus(cells, focus, multi, summary))
    for key, alt in (("time_ratio", "relative time"), ("rss_ratio", "relative peak RSS")):
        if key in plots:
            L.append(f"![{alt}]({plots[key]})")
            L.append("")
    if "error" in plots:
        L.append(f"(No plots: {plots['error']}.)")
        L.append("")
    L.extend(render_scaling(summary.get("scaling") or [], plots, multi))
    # per workload
    wls = []
    for c in cells:
        k = (c["workload"])
        if k not in wls:
            wls.append(k)
    wmeta = {}
    for m in metas:
        for w in m["workloads"]:
            wmeta.setdefault(w["name"], w)
    for wname in wls:
        cs = [c for c in cells if c["workload"] == wname]
        wm = wmeta.get(wname, {})
        L.append(f"## {wname}")
        L.append("")
        if wm.get("description"):
            L.append(wm["description"])
            L.append("")
        if wm.get("argv"):
            # Relative to the checkout the run was recorded in (the workload's cwd), so that a
            # run re-tabulated elsewhere reads as it did where it ran.
            root = (wm.get("cwd") or ROOT).rstrip("/")
            argv = " ".join(os.path.relpath(x, root) if x.startswith(root + "/") else x for x in wm["argv"])
            L.append(f"`{argv}`" + (f" (group {wm['group']})" if wm.get("group") else ""))
            L.append("")
        rows = []
        for c in cs:
            lead = ([c["host"]] if multi else []) + [c["allocator"]]
            if c["status"] == "FAIL":
                rows.append(lead + [f"**FAIL**: {c['reason']}"] + ["-"] * 13)
                continue
            tm = f_time(c.get("time_median_s"))
            if c["status"] == "incomplete":
                tm += " (incomplete)"
            if c.get("busy"):
                tm += f" *busy* ({c['busy_other_share'] * 100:.0f} %)"
            if c.get("slow"):
                tm += f" *slow* ({c['slow_factor']:.2f}x)"
            if c.get("unstable"):
                tm += f" *unstable* ({c['unstable']:.2f}x)"
            if c.get("time_verdict"):
                tm = f"**{tm}**" if c["time_verdict"] == "clear" else f"{tm} (tie)"
            rss = f_kb(c.get("rss_max_kb"))
            if c.get("rss_verdict"):
                rss = f"**{rss}**" if c["rss_verdict"] == "clear" else f"{rss} (tie)"
            rows.append(lead + [tm, "-" if c.get("spread_pct") is None else f"{c['spread_pct']:.1f} % (n={c.get('runs')})",
                                f_ci(c.get("ratio_glibc"), c.get("ratio_glibc_ci")),
                                f_ci(c.get("ratio_best"), c.get("ratio_best_ci")),
                                rss, f_ci(c.get("rss_ratio_best"), c.get("rss_ratio_best_ci")),
                                f_kb(c.get("rss_sum_kb")), f_num(c.get("minflt")),
                                *[f_num(c.get(k)) for k in benchlib.MEMORY_SYSCALLS], f_rate(c.get("ops_per_sec"))])
        L.append(md_table((["host"] if multi else []) +
                          ["allocator", "time (median)", "spread (IQR)", "vs glibc (95 % CI)", "vs best (95 % CI)",
                           "peak RSS", "RSS vs best (95 % CI)", "RSS sum (sampled)", "minor faults", "mmap", "munmap",
                           "mremap", "brk", "madvise", "throughput"], rows))
        L.append("")
        vs = [v for v in summary.get("verdicts", []) if v["workload"] == wname]
        for v in vs:
            if not v.get("time") and not v.get("rss"):
                continue
            where = f" on {v['host']}" if multi else ""
            L.append(f"Fastest{where}: {f_verdict(v.get('time'))}. "
                     f"Lowest peak RSS{where}: {f_verdict(v.get('rss'))}.")
            L.append("")
        ext = [c for c in cs if c.get("extras")]
        if ext:
            keys = sorted({k for c in ext for k in c["extras"]})
            L.append("The program's own figures (its TMBENCH line), median over the memory runs (n: fewer "
                     "runs reported it):")
            L.append("")
            L.append(md_table((["host"] if multi else []) + ["allocator"] + [f"`{k}`" for k in keys],
                              [([c["host"]] if multi else []) + [c["allocator"]] +
                               [(f_kb if k.endswith("_kb") else f_num)(c["extras"].get(k)) +
                                (f" (n={c['extras_runs'][k]})"
                                 if c["extras_runs"].get(k, c["mem_runs"]) != c["mem_runs"] else "")
                                for k in keys]
                               for c in ext]))
            L.append("")
        lat = [c for c in cs if c.get("latency_ns")]
        if lat:
            ops = []
            for c in lat:
                for op, v in c["latency_ns"].items():
                    if isinstance(v, dict) and op not in ops:
                        ops.append(op)
            pcts = []
            for c in lat:
                for op in ops:
                    for p in (c["latency_ns"].get(op) or {}):
                        if p not in pcts:
                            pcts.append(p)
            pcts.sort(key=lambda p: float(p[1:].replace("_", ".")) if p[1:].replace("_", "").isdigit() else 1e9)
            hdr = (["host"] if multi else []) + ["allocator"] + [f"{op} {p}" for op in ops for p in pcts]
            lrows = []
            for c in lat:
                timer = c.get("latency_timer_ns")
                lrows.append(([c["host"]] if multi else []) + [c["allocator"]] +
                             [f_latency((c["latency_ns"].get(op) or {}).get(p), timer) for op in ops for p in pcts] +
                             ["-" if timer is None else f"{timer:.1f} ns"])
            hdr.append("timer resolution")
            L.append("Latency (ns, from the program's latency run). The timer resolution is what reading the "
                     "timer twice costs, measured by the program and subtracted from every sample; a percentile "
                     "at or below it is no measurement and is shown as `< N ns`.")
            L.append("")
            L.append(md_table(hdr, lrows))
            L.append("")
        pk = f"mem_{wname}"
        if pk in plots:
            L.append(f"![memory over time: {wname}]({plots[pk]})")
            L.append("")
    fails = [c for c in cells if c["status"] == "FAIL"]
    if fails:
        L.append("## Failures")
        L.append("")
        for c in fails:
            L.append(f"- {c['workload']} x {c['allocator']}" + (f" on {c['host']}" if multi else "") +
                     f": {c['reason']}")
        L.append("")
    L.extend(render_not_run(cells, summary.get("not_run") or [], multi))
    return "\n".join(L)


def render_not_run(cells, not_run, multi):
    """The cells this report lacks: steps of a run that did not finish, and runs that never
    came back (`not_run`, from bench/parallel.py: [{what, why, workloads}])."""
    inc = [c for c in cells if c["status"] == "incomplete"]
    if not inc and not not_run:
        return []
    L = ["## Not run", "",
         "These cells have no result (or only part of one) in this report; their workloads are left out of "
         "the geometric means. Running the same command again completes them (bench/run.py --resume, or "
         "bench/parallel.py with the same --name).", ""]
    for c in inc:
        L.append(f"- {c['workload']} x {c['allocator']}" + (f" on {c['host']}" if multi else "") +
                 f" (run {c['run_id']}): {c['reason']}")
    for m in not_run:
        L.append(f"- {m['what']}: {m['why']}; every allocator of " +
                 (", ".join(m["workloads"]) if m.get("workloads") else "its workloads"))
    L.append("")
    return L


def clean_json(x):
    if isinstance(x, float) and (x != x or x in (float("inf"), float("-inf"))):
        return None
    if isinstance(x, dict):
        return {k: clean_json(v) for k, v in x.items()}
    if isinstance(x, list):
        return [clean_json(v) for v in x]
    return x


def write_outputs(out_dir, cells, metas, plots=True, title=None, focus=FOCUS, not_run=()):
    """not_run: runs that never came back, [{what, why, workloads}] (named in the report)."""
    verdicts = add_ratios(cells)
    summ = {"runs": [{k: m[k] for k in ("run_id", "host", "env", "options", "speed_ref_s", "allocators", "workloads")}
                     for m in metas],
            "allocators": summarize(cells), "verdicts": verdicts, "scaling": scaling(cells), "cells": cells,
            "not_run": list(not_run)}
    plot_files = {}
    if plots:
        try:
            import plots as mod
            plot_files = mod.make_plots(summ, out_dir)
        except ImportError as e:
            plot_files = {"error": f"matplotlib is missing ({e}); install python3-matplotlib"}
    benchlib.write_json(os.path.join(out_dir, "summary.json"), clean_json(summ))
    with open(os.path.join(out_dir, "summary.csv"), "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        wr.writeheader()
        for c in cells:
            wr.writerow({k: ("" if c.get(k) is None else
                             (f"{c[k]:.6g}" if isinstance(c.get(k), float) else c[k])) for k in CSV_FIELDS})
    title = title or f"Bench run {', '.join(m['run_id'] for m in metas)}"
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(render_report(cells, summ, metas, plot_files, title, focus) + "\n")
    return summ


def tabulate(run_dir, plots=True, focus=FOCUS):
    cells, meta = collect(run_dir)
    return write_outputs(run_dir, cells, [meta], plots=plots, focus=focus)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--focus", default=FOCUS, metavar="ALLOCATOR",
                    help=f"the allocator set against its best peer per workload (default {FOCUS})")
    args = ap.parse_args(argv)
    try:
        s = tabulate(args.run_dir, plots=not args.no_plots, focus=args.focus)
    except benchlib.BenchError as e:
        print(f"tabulate: {e}", file=sys.stderr)
        return e.code
    for line in summary_lines(s):
        print(line)
    print(f"wrote {os.path.join(args.run_dir, 'report.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
