#!/usr/bin/python3
"""Join bench runs of several machines (or shards) into one report with the host as a column.

Usage: scripts/merge.py RUN_DIR RUN_DIR... [--out DIR] [--drop RUN_ID:WORKLOAD]... [--no-plots] [--no-latest]

Each RUN_DIR is a results/<run-id>/ folder of bench/run.py. Ratios stay those computed
inside each run (an allocator is only ever compared with glibc of the same run on the same
host); the summary gives one geometric mean per host and allocator. The merged folder gets
summary.json, summary.csv, report.md, plots/ and sources.json (the runs it was made from);
the raw data stays in the source folders. results/latest then points at it.

--drop RUN_ID:WORKLOAD leaves that run's cells of the workload out (every allocator), for a
workload recorded again in another run; sources.json and the report name what was dropped.

Exit status: 0 ok; 2 usage error (not a bench run, the same workload x allocator x host in
two inputs, a --drop that matches nothing, output folder exists); 3 a missing dependency.
"""
import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
import tabulate  # noqa: E402
from benchlib import BenchError  # noqa: E402


def parse_drop(tokens):
    """["RUN_ID:WORKLOAD", ...] -> {(run_id, workload)}; a token without both parts is a usage error."""
    out = set()
    for t in tokens or []:
        run_id, sep, wl = t.partition(":")
        if not (sep and run_id and wl):
            raise BenchError(f"bad --drop {t!r}: expected RUN_ID:WORKLOAD")
        out.add((run_id, wl))
    return out


def merge(run_dirs, out_dir, plots=True, drop=(), not_run=(), title=None):
    """not_run: runs that were due but never came back ([{what, why, workloads}]): the report
    names them (bench/parallel.py)."""
    tab = tabulate
    if not run_dirs:
        raise BenchError("give the run folders to merge")
    drop, dropped = set(drop), set()
    cells, metas, seen = [], [], {}
    for d in run_dirs:
        cs, meta = tab.collect(d)
        rid = meta["run_id"]

        def hit(c, k):
            # a swept workload's cells are NAME@T: dropping NAME drops every count
            return k[0] == rid and k[1] in (c["workload"], c.get("sweep_base"))
        dropped |= {k for k in drop for c in cs if hit(c, k)}
        gone = {c["workload"] for c in cs if any(hit(c, k) for k in drop)}
        cs = [c for c in cs if c["workload"] not in gone]
        meta["workloads"] = [w for w in meta["workloads"] if w["name"] not in gone]
        meta["dropped"] = sorted(gone)
        for c in cs:
            key = (c["host"], c["workload"], c["allocator"])
            if key in seen:
                raise BenchError(f"{c['workload']} x {c['allocator']} on host {c['host']} is in both "
                                 f"{seen[key]} and {d}; merge runs of different hosts or shards, "
                                 "or --drop RUN_ID:WORKLOAD the one recorded again")
            seen[key] = d
        cells += cs
        metas.append(meta)
    if drop - dropped:
        raise BenchError("--drop matches no cell: " + ", ".join(f"{r}:{w}" for r, w in sorted(drop - dropped)))
    if os.path.exists(out_dir):
        raise BenchError(f"{out_dir} exists; choose another --out")
    os.makedirs(out_dir)
    benchlib.write_json(os.path.join(out_dir, "sources.json"),
                        {"merged": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                         "runs": [{"run_id": m["run_id"], "host": m["host"], "dropped": m["dropped"],
                                   "path": os.path.relpath(os.path.abspath(d), os.path.abspath(out_dir))}
                                  for m, d in zip(metas, run_dirs)],
                         "not_run": list(not_run)})
    hosts = sorted({m["host"] for m in metas})
    return tab.write_outputs(out_dir, cells, metas, plots=plots, not_run=not_run,
                             title=title or f"Bench runs merged: {', '.join(m['run_id'] for m in metas)} "
                                            f"(hosts: {', '.join(hosts)})")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    ap.add_argument("--out", help="output folder (default results/merged-DATE-TIME)")
    ap.add_argument("--drop", action="append", metavar="RUN_ID:WORKLOAD",
                    help="leave out that run's cells of the workload (repeatable)")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--no-latest", action="store_true")
    args = ap.parse_args(argv)
    out = args.out or os.path.join(ROOT, "results", "merged-" + time.strftime("%Y%m%d-%H%M%S"))
    try:
        s = merge(args.run_dirs, out, plots=not args.no_plots, drop=parse_drop(args.drop))
    except BenchError as e:
        print(f"merge: {e}", file=sys.stderr)
        return e.code
    if not args.no_latest:
        link = os.path.join(os.path.dirname(os.path.abspath(out)), "latest")
        tmp = f"{link}.tmp{os.getpid()}"
        os.symlink(os.path.basename(os.path.abspath(out)), tmp)
        os.replace(tmp, link)
    for line in tabulate.summary_lines(s):
        print(line)
    print(f"wrote {os.path.join(out, 'report.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
