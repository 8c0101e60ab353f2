#!/usr/bin/python3
"""Compare two bench runs: does every ranking of one hold in the other?

Usage: scripts/compare.py RUN_A RUN_B [--out FILE] [--json FILE]
       (make bench-compare RUN_A=results/X RUN_B=results/Y)

For every workload both runs measured, every pair of allocators that passed it in both, and
both measures (time, peak RSS), it takes the order of the two medians in each run. A pair
whose order differs between the runs has *swapped*. Each swap is then judged by the 95 %
intervals of the ratio in each run (bench/stats.py): when both runs had intervals that clear
1.0, the runs really disagree; when either run had a tie, the swap is noise, a difference the
runs could not resolve. The output lists every swap with both ratios and intervals, and counts
the pairs: agreeing, swapped as noise, swapped while significant in both.

The runs should come from the same commit and host for a reproducibility check; the header
says when they do not (a cross-host comparison is still a comparison of rankings, never of
times).

Exit status: 0 no real disagreement (noise swaps allowed); 1 at least one pair swapped with
separated intervals in both runs; 2 usage error (not a bench run, nothing in common).
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
import stats  # noqa: E402
import tabulate  # noqa: E402

MEASURES = (("time", "times"), ("peak RSS", "rss_runs_kb"))


def sign(x):
    return (x > 0) - (x < 0)


def compare(run_a, run_b):
    """-> {"runs": [meta a, meta b], "pairs": [...], "counts": {measure: {...}}}"""
    (cells_a, meta_a), (cells_b, meta_b) = tabulate.collect(run_a), tabulate.collect(run_b)
    ok_a = {(c["workload"], c["allocator"]): c for c in cells_a if c["status"] == "ok"}
    ok_b = {(c["workload"], c["allocator"]): c for c in cells_b if c["status"] == "ok"}
    workloads = [w["name"] for w in meta_a["workloads"] if w["name"] in {x["name"] for x in meta_b["workloads"]}]
    allocs = [a["name"] for a in meta_a["allocators"] if a["name"] in {x["name"] for x in meta_b["allocators"]}]
    if not workloads or len(allocs) < 2:
        raise benchlib.BenchError(f"{run_a} and {run_b} share {len(workloads)} workloads and {len(allocs)} "
                                  "allocators: nothing to compare")
    pairs = []
    counts = {m: {"agree": 0, "agree_significant": 0, "swapped_noise": 0, "swapped_significant": 0}
              for m, _ in MEASURES}
    for w in workloads:
        for i, x in enumerate(allocs):
            for y in allocs[i + 1:]:
                cells = [ok.get((w, a)) for ok in (ok_a, ok_b) for a in (x, y)]
                if not all(cells):
                    continue
                xa, ya, xb, yb = cells
                for measure, key in MEASURES:
                    runs = [stats.usable(c.get(key)) for c in (xa, ya, xb, yb)]
                    if not all(runs):
                        continue
                    med = [benchlib.median(r) for r in runs]
                    ra, rb = med[0] / med[1], med[2] / med[3]
                    ca, cb = stats.ratio_ci(runs[0], runs[1]), stats.ratio_ci(runs[2], runs[3])
                    sa, sb = stats.separated(ca), stats.separated(cb)
                    swapped = sign(ra - 1) * sign(rb - 1) < 0
                    if not swapped:
                        verdict = "agree"
                        counts[measure]["agree"] += 1
                        counts[measure]["agree_significant"] += sa != 0 and sa == sb
                    else:
                        verdict = "swapped_significant" if sa and sb else "swapped_noise"
                        counts[measure][verdict] += 1
                    pairs.append({"workload": w, "measure": measure, "x": x, "y": y, "ratio_a": ra, "ci_a": ca,
                                  "ratio_b": rb, "ci_b": cb, "verdict": verdict})
    return {"runs": [meta_a, meta_b], "pairs": pairs, "counts": counts}


def render(res):
    a, b = res["runs"]
    L = [f"# Run comparison: {a['run_id']} vs {b['run_id']}", ""]
    rows = []
    for label, key in (("host", "host"), ("project commit", "project_commit"), ("date", "date"),
                       ("load average at start", "loadavg")):
        rows.append([label, a["env"].get(key, "-"), b["env"].get(key, "-")])
    o = [m["options"] for m in (a, b)]
    rows.append(["runs per cell", *[f"{x['runs']} in {x['blocks']} blocks, +{x['warmup']} warm-up" for x in o]])
    L.append(tabulate.md_table(["", "A", "B"], rows))
    L.append("")
    if a["host"] != b["host"]:
        L.append("> The runs come from different hosts: rankings are compared, never times.")
        L.append("")
    if a["env"].get("project_commit") != b["env"].get("project_commit"):
        L.append("> The runs come from different commits: a swap may be a change of the code, not noise.")
        L.append("")
    L.append("Each pair of allocators that passed a workload in both runs is ordered by its medians in each "
             "run. *Swapped*: the order differs. *Significant*: the run's 95 % interval of the ratio lies "
             "clear of 1.0. A swap with significant intervals in both runs is a real disagreement; a swap "
             "where either run had a tie is noise.")
    L.append("")
    crow = []
    for m, c in res["counts"].items():
        total = sum(c[k] for k in ("agree", "swapped_noise", "swapped_significant"))
        crow.append([m, total, c["agree"], c["agree_significant"], c["swapped_noise"],
                     f"**{c['swapped_significant']}**" if c["swapped_significant"] else 0])
    L.append(tabulate.md_table(["measure", "pairs", "agreeing", "of them significant in both",
                                "swapped (noise)", "swapped (significant in both)"], crow))
    L.append("")
    sw = [p for p in res["pairs"] if p["verdict"] != "agree"]
    if sw:
        L.append("## Swapped pairs")
        L.append("")
        L.append(tabulate.md_table(
            ["workload", "measure", "pair", "X/Y in A (95 % CI)", "X/Y in B (95 % CI)", "verdict"],
            [[p["workload"], p["measure"], f"{p['x']} / {p['y']}", tabulate.f_ci(p["ratio_a"], p["ci_a"]),
              tabulate.f_ci(p["ratio_b"], p["ci_b"]),
              "**real disagreement**" if p["verdict"] == "swapped_significant" else "noise"] for p in sw]))
        L.append("")
    return "\n".join(L)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_a")
    ap.add_argument("run_b")
    ap.add_argument("--out", metavar="FILE", help="write the comparison (Markdown) here as well")
    ap.add_argument("--json", metavar="FILE", help="write every pair and the counts as JSON")
    args = ap.parse_args(argv)
    try:
        res = compare(args.run_a, args.run_b)
    except benchlib.BenchError as e:
        print(f"compare: {e}", file=sys.stderr)
        return e.code
    text = render(res)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    if args.json:
        benchlib.write_json(args.json, tabulate.clean_json({"runs": [m["run_id"] for m in res["runs"]],
                                                            "counts": res["counts"], "pairs": res["pairs"]}))
    real = sum(c["swapped_significant"] for c in res["counts"].values())
    return benchlib.EXIT_FAILED if real else benchlib.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
