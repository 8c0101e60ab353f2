#!/usr/bin/python3
"""Turn the raw records of a bench run into summary.json, summary.csv, report.md and plots/.

Usage: scripts/tabulate.py RUN_DIR [--no-plots]
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
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import benchlib  # noqa: E402
from benchlib import geomean, median, quantile  # noqa: E402

MIN_SAMPLES = 5
CSV_FIELDS = ["host", "run_id", "workload", "group", "allocator", "version", "status", "reason",
              "runs", "time_median_s", "time_q1_s", "time_q3_s", "time_min_s", "time_max_s", "spread_pct",
              "ratio_glibc", "ratio_best", "rss_max_kb", "rss_sum_kb", "rss_ratio_glibc", "rss_ratio_best",
              "minflt", "majflt", "mmap", "munmap", "mremap", "brk", "madvise", "ops_per_sec", "mem_runs",
              "user_s", "sys_s"]


def step_file(run_dir, st):
    tag = st["kind"] + (f"-{st['round']}" if st.get("round") else "")
    return os.path.join(run_dir, "raw", st["workload"], st["allocator"], f"{tag}.json")


def _med(xs):
    xs = [x for x in xs if isinstance(x, (int, float))]
    return median(xs) if xs else None


def cell_from_records(w, a, recs, missing):
    """w, a: plan entries; recs: step records of the cell in plan order; missing: steps not run."""
    c = {"workload": w["name"], "group": w.get("group", ""), "allocator": a["name"], "version": a.get("version"),
         "status": "ok", "reason": None}
    fails = [r for r in recs if r.get("status") == "fail"]
    if fails:
        c["status"], c["reason"] = "FAIL", f"{fails[0].get('kind')}: {fails[0].get('reason')}"
        return c
    if missing:
        c["status"], c["reason"] = "incomplete", f"{missing} step(s) not run yet"
    times = [t for r in recs if r.get("kind") == "time" for t in r.get("times") or []]
    if times:
        m = median(times)
        q1, q3 = quantile(times, 0.25), quantile(times, 0.75)
        c.update(runs=len(times), time_median_s=m, time_q1_s=q1, time_q3_s=q3, time_min_s=min(times),
                 time_max_s=max(times), spread_pct=100.0 * (q3 - q1) / m if m else None)
    mems = [r for r in recs if r.get("kind") == "mem" and r.get("run")]
    if mems:
        runs = [r["run"] for r in mems]
        # the sampled sum means something only when the run lasted several sampling periods
        sums = [r.get("tree_peak_sum_kb") for r in runs if len(r.get("rss_samples") or []) >= MIN_SAMPLES]
        c.update(mem_runs=len(mems), rss_max_kb=_med([r.get("max_rss_kb") for r in runs]),
                 rss_sum_kb=_med(sums) if len(sums) == len(runs) else None,
                 minflt=_med([r.get("minflt") for r in runs]), majflt=_med([r.get("majflt") for r in runs]),
                 user_s=_med([r.get("user_s") for r in runs]), sys_s=_med([r.get("sys_s") for r in runs]))
        tms = [r.get("tmbench") or {} for r in mems]
        c["ops_per_sec"] = _med([t.get("ops_per_sec") for t in tms])
        c["tm_peak_rss_kb"] = _med([t.get("peak_rss_kb") for t in tms])
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
    cells = []
    for w in plan["workloads"]:
        for a in plan["allocators"]:
            recs, missing = [], 0
            for st in by_cell.get((w["name"], a["name"]), []):
                p = step_file(run_dir, st)
                if os.path.exists(p):
                    recs.append(benchlib.read_json(p))
                else:
                    missing += 1
            c = cell_from_records(w, a, recs, missing)
            c.update(host=host, run_id=plan["run_id"])
            cells.append(c)
    meta = {"run_id": plan["run_id"], "host": host, "env": env, "options": plan["options"],
            "env_end": benchlib.read_json(env_end) if os.path.exists(env_end) else None,
            "workloads": [{k: w.get(k) for k in ("name", "group", "description", "argv", "manifest", "cwd")}
                          for w in plan["workloads"]],
            "allocators": plan["allocators"], "steps": len(plan["steps"])}
    return cells, meta


def add_ratios(cells):
    """Ratios within one (run, workload): to glibc and to the best passing allocator."""
    groups = {}
    for c in cells:
        groups.setdefault((c["run_id"], c["workload"]), []).append(c)
    for grp in groups.values():
        ok = [c for c in grp if c["status"] != "FAIL"]
        for key, out in (("time_median_s", "ratio"), ("rss_max_kb", "rss_ratio")):
            vals = [c[key] for c in ok if c.get(key)]
            best = min(vals) if vals else None
            ref = next((c.get(key) for c in ok if c["allocator"] == "glibc" and c.get(key)), None)
            for c in ok:
                if c.get(key):
                    c[f"{out}_best"] = c[key] / best
                    c[f"{out}_glibc"] = c[key] / ref if ref else None


def summarize(cells):
    out = []
    keys = []
    for c in cells:
        k = (c["host"], c["allocator"])
        if k not in keys:
            keys.append(k)
    for host, alloc in keys:
        cs = [c for c in cells if c["host"] == host and c["allocator"] == alloc]
        rg = [c["ratio_glibc"] for c in cs if c.get("ratio_glibc")]
        out.append({
            "host": host, "allocator": alloc, "version": cs[0].get("version"),
            "workloads": len(cs),
            "ok": sum(c["status"] == "ok" for c in cs),
            "fail": sum(c["status"] == "FAIL" for c in cs),
            "incomplete": sum(c["status"] == "incomplete" for c in cs),
            "geomean_ratio_glibc": geomean(rg), "n_ratio_glibc": len(rg),
            "geomean_ratio_best": geomean([c.get("ratio_best") for c in cs]),
            "geomean_rss_ratio_glibc": geomean([c.get("rss_ratio_glibc") for c in cs]),
            "geomean_rss_ratio_best": geomean([c.get("rss_ratio_best") for c in cs]),
            "best_time": sum(1 for c in cs if c.get("ratio_best") == 1.0),
            "best_rss": sum(1 for c in cs if c.get("rss_ratio_best") == 1.0),
        })
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


def f_ratio(r):
    return "-" if r is None else f"{r:.2f}x"


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


def summary_lines(summary):
    out = []
    for s in summary["allocators"]:
        host = f"{s['host']}: " if len({x['host'] for x in summary['allocators']}) > 1 else ""
        out.append(f"{host}{s['allocator']:<14} time vs glibc {f_ratio(s['geomean_ratio_glibc']):>7} "
                   f"(geomean of {s['n_ratio_glibc']}), peak RSS vs glibc {f_ratio(s['geomean_rss_ratio_glibc']):>7}, "
                   f"{s['ok']} ok, {s['fail']} FAIL" + (f", {s['incomplete']} incomplete" if s['incomplete'] else ""))
    return out


def render_report(cells, summary, metas, plots, title):
    multi = len({m["host"] for m in metas}) > 1
    L = [f"# {title}", ""]
    L.append("Every figure below comes from the raw records in `raw/` of this folder "
             "(hyperfine JSON, GNU time rusage, `strace -f -c`, the programs' TMBENCH lines). "
             "Ratios compare allocators within one run on one host; lower is better.")
    L.append("")
    # environment
    L.append("## Environment")
    L.append("")
    keys = [("host", "host"), ("date", "date (UTC)"), ("cpu_model", "CPU"), ("cpus_usable", "usable CPUs"),
            ("mem_total_kb", "memory"), ("kernel", "kernel"), ("os", "OS"), ("glibc", "glibc"),
            ("thp_enabled", "THP enabled"), ("thp_defrag", "THP defrag"), ("project_commit", "project commit"),
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
    L.append(md_table(hdr, rows))
    L.append("")
    L.append("Allocators:")
    L.append("")
    arows = []
    for m in metas:
        for a in m["allocators"]:
            arows.append(([m["host"]] if multi else []) +
                         [a["name"], a.get("version") or "-", f"`{a['lib']}`" if a.get("lib") else "system (no preload)"])
    L.append(md_table((["host"] if multi else []) + ["allocator", "version", "library"], arows))
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
    # summary
    L.append("## Summary")
    L.append("")
    srows = []
    for s in summary["allocators"]:
        srows.append(([s["host"]] if multi else []) + [
            s["allocator"], f_ratio(s["geomean_ratio_glibc"]), s["n_ratio_glibc"], f_ratio(s["geomean_ratio_best"]),
            f_ratio(s["geomean_rss_ratio_glibc"]), f_ratio(s["geomean_rss_ratio_best"]), s["best_time"],
            s["ok"], s["fail"] if not s["fail"] else f"**{s['fail']}**"] +
            ([s["incomplete"]] if any(x["incomplete"] for x in summary["allocators"]) else []))
    L.append(md_table((["host"] if multi else []) +
                      ["allocator", "time vs glibc (geomean)", "n", "time vs best (geomean)",
                       "peak RSS vs glibc (geomean)", "peak RSS vs best (geomean)", "fastest on", "ok", "FAIL"] +
                      (["incomplete"] if any(x["incomplete"] for x in summary["allocators"]) else []), srows))
    L.append("")
    L.append("Geometric means run over the workloads where both the allocator and the reference passed "
             "(`n` for glibc). `x` is a factor: 1.20x = 20 % slower (or larger) than the reference.")
    L.append("")
    for key, alt in (("time_ratio", "relative time"), ("rss_ratio", "relative peak RSS")):
        if key in plots:
            L.append(f"![{alt}]({plots[key]})")
            L.append("")
    if "error" in plots:
        L.append(f"(No plots: {plots['error']}.)")
        L.append("")
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
            argv = " ".join(os.path.relpath(x, ROOT) if x.startswith(ROOT + "/") else x for x in wm["argv"])
            L.append(f"`{argv}`" + (f" (group {wm['group']})" if wm.get("group") else ""))
            L.append("")
        rows = []
        for c in cs:
            lead = ([c["host"]] if multi else []) + [c["allocator"]]
            if c["status"] == "FAIL":
                rows.append(lead + [f"**FAIL**: {c['reason']}"] + ["-"] * 11)
                continue
            tm = f_time(c.get("time_median_s"))
            if c["status"] == "incomplete":
                tm += " (incomplete)"
            rows.append(lead + [tm, "-" if c.get("spread_pct") is None else f"{c['spread_pct']:.1f} % (n={c.get('runs')})",
                                f_ratio(c.get("ratio_glibc")), f_ratio(c.get("ratio_best")),
                                f_kb(c.get("rss_max_kb")), f_kb(c.get("rss_sum_kb")), f_num(c.get("minflt")),
                                *[f_num(c.get(k)) for k in benchlib.MEMORY_SYSCALLS], f_rate(c.get("ops_per_sec"))])
        L.append(md_table((["host"] if multi else []) +
                          ["allocator", "time (median)", "spread (IQR)", "vs glibc", "vs best", "peak RSS",
                           "RSS sum (sampled)", "minor faults", "mmap", "munmap", "mremap", "brk", "madvise",
                           "throughput"], rows))
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
                lrows.append(([c["host"]] if multi else []) + [c["allocator"]] +
                             [f_num((c["latency_ns"].get(op) or {}).get(p)) for op in ops for p in pcts])
            L.append("Latency (ns, from the program's latency run):")
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
    return "\n".join(L)


def clean_json(x):
    if isinstance(x, float) and (x != x or x in (float("inf"), float("-inf"))):
        return None
    if isinstance(x, dict):
        return {k: clean_json(v) for k, v in x.items()}
    if isinstance(x, list):
        return [clean_json(v) for v in x]
    return x


def write_outputs(out_dir, cells, metas, plots=True, title=None):
    add_ratios(cells)
    summ = {"runs": [{k: m[k] for k in ("run_id", "host", "env", "options", "allocators", "workloads")}
                     for m in metas],
            "allocators": summarize(cells), "cells": cells}
    plot_files = {}
    if plots:
        try:
            import importlib.util
            spec = importlib.util.spec_from_file_location("tm_plots", os.path.join(ROOT, "scripts", "plots.py"))
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
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
        f.write(render_report(cells, summ, metas, plot_files, title) + "\n")
    return summ


def tabulate(run_dir, plots=True):
    cells, meta = collect(run_dir)
    return write_outputs(run_dir, cells, [meta], plots=plots)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args(argv)
    try:
        s = tabulate(args.run_dir, plots=not args.no_plots)
    except benchlib.BenchError as e:
        print(f"tabulate: {e}", file=sys.stderr)
        return e.code
    for line in summary_lines(s):
        print(line)
    print(f"wrote {os.path.join(args.run_dir, 'report.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
