#!/usr/bin/python3
"""Draw the PNG plots of a tabulated bench run (matplotlib, Debian python3-matplotlib).

Usage: scripts/plots.py RUN_DIR        (reads RUN_DIR/summary.json, writes RUN_DIR/plots/)

  plots/time_ratio.png   time per workload and allocator relative to glibc (or to the best
                         allocator when glibc is not in the run); FAIL cells are marked
  plots/rss_ratio.png    peak RSS (largest process) likewise
  plots/mem_NAME.png     RSS over time of workload NAME, one line per allocator, when the
                         program printed rss_kb_samples in its TMBENCH line
  plots/scaling_BASE.png the rate of a workload that sweeps its thread count, against the
                         count, one line per allocator

Exit status: 0 ok, 2 RUN_DIR has no summary.json (run scripts/tabulate.py), 3 matplotlib missing.
"""
import argparse
import json
import os
import sys


def _mpl():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _label(c, multi):
    return f"{c['workload']}@{c['host']}" if multi else c["workload"]


def whisker(c, key):
    """(below, above) the bar's ratio: its own 95 % interval, the one the verdicts use, not the
    spread of the runs, so two bars whose whiskers overlap are a tie. (0, 0) without one."""
    ci = c.get(key + "_ci")
    if not ci or len(ci) != 2 or ci[0] is None or ci[1] is None or not c.get(key):
        return 0.0, 0.0
    return max(0.0, c[key] - ci[0]), max(0.0, ci[1] - c[key])


def ratio_plot(plt, cells, allocs, key_glibc, key_best, ylabel, title, path, multi):
    groups = []
    for c in cells:
        lab = _label(c, multi)
        if lab not in groups:
            groups.append(lab)
    use_glibc = any(c.get(key_glibc) for c in cells)
    key = key_glibc if use_glibc else key_best
    ref = "glibc" if use_glibc else "the best allocator"
    n = len(allocs)
    width = 0.8 / max(n, 1)
    # Ratios on a log axis, bars drawn from 1: a 2x slower and a 2x faster allocator look alike
    # in size, and one outlier does not flatten the rest. Width capped for reading on a page.
    fig, ax = plt.subplots(figsize=(min(18.0, max(6.0, 1.2 + len(groups) * (0.25 + 0.12 * n))), 4.6))
    ax.set_yscale("log")
    cmap = plt.get_cmap("tab10")
    for i, a in enumerate(allocs):
        xs, ys, lo, hi = [], [], [], []
        for gi, g in enumerate(groups):
            c = next((c for c in cells if _label(c, multi) == g and c["allocator"] == a), None)
            x = gi - 0.4 + width * (i + 0.5)
            if c is None:
                continue
            if c["status"] == "FAIL":
                ax.text(x, 0.02, "FAIL", rotation=90, ha="center", va="bottom", fontsize=7, color="red",
                        transform=ax.get_xaxis_transform())
            elif c.get(key):
                xs.append(x)
                ys.append(c[key])
                w = whisker(c, key)
                lo.append(w[0])
                hi.append(w[1])
        ax.bar(xs, [y - 1.0 for y in ys], width, bottom=1.0, label=a, color=cmap(i % 10))
        if any(lo) or any(hi):
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="none", ecolor="black", capsize=2, linewidth=0.8)
    ax.axhline(1.0, color="black", linewidth=0.8)
    from matplotlib.ticker import FuncFormatter, LogLocator
    ax.yaxis.set_major_locator(LogLocator(base=2))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=30 if len(groups) > 3 else 0, ha="right" if len(groups) > 3 else "center",
                       fontsize=8)
    ax.set_ylabel(f"{ylabel} relative to {ref}")
    ax.set_title(f"{title} (lower is better; log scale; whiskers: 95 % interval of the ratio)",
                 fontsize=10)
    ax.legend(fontsize=8, ncol=min(n, 5))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _finish(plt, fig, ax, xlabel, ylabel, title, path):
    """Labels, legend and grid of a line plot, written to path."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def mem_plot(plt, wl, cells, path):
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for c in cells:
        s = c.get("rss_kb_samples")
        if not s:
            continue
        try:
            xs = [float(p[0]) for p in s]
            ys = [float(p[1]) / 1024 for p in s]
        except (TypeError, ValueError, IndexError):
            continue
        ax.plot(xs, ys, label=c["allocator"] + (f"@{c['host']}" if c.get("_multi") else ""), linewidth=1.2)
    _finish(plt, fig, ax, "seconds", "RSS (MiB)", f"{wl}: RSS over time (from the program's samples)", path)


def scaling_plot(plt, base, rows, path):
    """rows: the summary's scaling entries of one workload (and host)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    counts = sorted({t for r in rows for t, _ in r["points"]})
    for r in rows:
        pts = [(t, v / 1e6) for t, v in r["points"] if v]
        if pts:
            ax.plot([t for t, _ in pts], [v for _, v in pts], marker="o", linewidth=1.2, label=r["allocator"])
    ax.set_xscale("log", base=2)
    ax.set_xticks(counts)
    ax.set_xticklabels([str(t) for t in counts])
    _finish(plt, fig, ax, "threads", "M operations / s (higher is better)", f"{base}: thread scaling", path)


def make_plots(summary, out_dir):
    """-> {"time_ratio": relpath, "rss_ratio": relpath, "mem_NAME": relpath, ...}; raises ImportError
    without matplotlib."""
    plt = _mpl()
    cells = summary["cells"]
    multi = len({c["host"] for c in cells}) > 1
    allocs = []
    for c in cells:
        if c["allocator"] not in allocs:
            allocs.append(c["allocator"])
    pdir = os.path.join(out_dir, "plots")
    os.makedirs(pdir, exist_ok=True)
    out = {}
    if any(c.get("time_median_s") for c in cells):
        ratio_plot(plt, cells, allocs, "ratio_glibc", "ratio_best", "time", "Time per workload",
                   os.path.join(pdir, "time_ratio.png"), multi)
        out["time_ratio"] = "plots/time_ratio.png"
    if any(c.get("rss_max_kb") for c in cells):
        ratio_plot(plt, cells, allocs, "rss_ratio_glibc", "rss_ratio_best", "peak RSS", "Peak RSS per workload",
                   os.path.join(pdir, "rss_ratio.png"), multi)
        out["rss_ratio"] = "plots/rss_ratio.png"
    wls = []
    for c in cells:
        if c.get("rss_kb_samples") and c["workload"] not in wls:
            wls.append(c["workload"])
    for wl in wls:
        cs = [dict(c, _multi=multi) for c in cells if c["workload"] == wl and c["status"] != "FAIL"]
        fn = f"mem_{wl}.png"
        mem_plot(plt, wl, cs, os.path.join(pdir, fn))
        out[f"mem_{wl}"] = f"plots/{fn}"
    groups = {}
    for r in summary.get("scaling") or []:
        groups.setdefault((r["host"], r["base"]), []).append(r)
    for (host, base), rows in groups.items():
        key = f"scaling_{base}" + (f"_{host}" if multi else "")
        scaling_plot(plt, base + (f" on {host}" if multi else ""), rows, os.path.join(pdir, key + ".png"))
        out[key] = f"plots/{key}.png"
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    args = ap.parse_args(argv)
    sp = os.path.join(args.run_dir, "summary.json")
    if not os.path.exists(sp):
        print(f"plots: {sp} not found; run scripts/tabulate.py {args.run_dir} first", file=sys.stderr)
        return 2
    try:
        out = make_plots(json.load(open(sp)), args.run_dir)
    except ImportError as e:
        print(f"plots: matplotlib missing ({e}); apt-get install python3-matplotlib", file=sys.stderr)
        return 3
    for v in out.values():
        print(os.path.join(args.run_dir, v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
