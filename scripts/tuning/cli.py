"""scripts/tune-slabs: fit tinymalloc's slab classes and preallocated counts to a program."""
import argparse
import json
import os
import sys
import time

from . import classes as C
from . import profile as P
from . import report as R
from . import verify as V

DESCRIPTION = """\
Fit tinymalloc's slab classes and preallocated counts to one program, print the
TINYMALLOC_CONF string, and (with --verify) measure it against the default configuration.

  scripts/tune-slabs PROFILE...                 recommend from profile files (files, folders, globs)
  scripts/tune-slabs --workload NAME            profile a registered workload (bench/manifest), recommend
  scripts/tune-slabs --workload NAME --verify   ... then measure default vs tuned, write
                                                results/tuning/NAME.md (what `make tune WORKLOAD=NAME` does)

Profiles come from TINYMALLOC_CONF=profile:PATH (%p = pid; one JSON file per process, format
tinymalloc-profile-1). Several files (a build's processes) are merged: counts summed, peak
live blocks per size the MAXIMUM over processes. Each process gets the same configuration
and its own preallocated clusters, so the largest single process's need is what prealloc must
fit; the sum over processes (also kept) would reserve for processes that never run together.

THE RECOMMENDATION (exact, not a heuristic)
  Candidates are the requested sizes rounded up to 16, the default classes (fillers) and the
  largest class, small_max. Choosing at most K classes (--classes, default 32 = the default
  configuration's count) to minimise a cost that is a sum over classes of what each class
  costs for the contiguous range of sizes it serves is solved by dynamic programming over the
  sorted candidates: f[k][j] = min over i<j of f[k-1][i] + cost(sizes in (cand i, cand j]
  served by class cand j), O(K n^2) with O(1) range costs from prefix sums; ties go to fewer
  classes. Without the ratio constraint the optimum over candidates is the optimum over every
  class list (a class can always be lowered to the largest candidate it serves for free).

  --weight peak (default): cost = slab memory committed at the peak minus bytes requested at
    the peak. For a class c serving sizes s with peak live blocks p(s): the pages needed by
    sum p(s) blocks packed densely, whole pages as far as filled (64 KiB pages hold
    floor(65536/c) blocks; 65536 mod c is lost per page), the last page as far as carved
    (tinymalloc carves 8 KiB worth of blocks at a time, commits 4 KiB OS pages). So it counts
    page-level waste: a rare size gets no class of its own when its page would sit mostly
    empty. This is what a program's RSS pays, hence the default.
  --weight count: cost = sum over requests of (class - size), the bytes wasted per request
    over the whole run, no page term. It favours frequent sizes even when short-lived.
  Both figures are printed for the default and the tuned classes, whichever is optimised.

  --max-ratio R (default 2): each class at most R times the one below it, the first at most
    16*R. A size the profile never saw then wastes less than 1 - 1/R of its block (the default
    classes keep R = 2). 0 turns this off: pure fit, and an unseen size may land in a far
    larger class.
  --small-max auto (default): the largest class is 8192 as by default, or the largest requested
    size up to 16384 rounded up to 16 if that is larger, so that every profiled size up to the
    slab limit is served by a slab. (Chosen when the next tier was one mapping per block; since
    the arena tier, pass --small-max 8192 to keep the default boundary and compare.) Sizes
    above it are not counted in the fragmentation figures; their count is printed.

  Preallocation: per class, whole pages for the sum of the peak live blocks of the sizes it
  serves (an upper bound of the class's own peak, as sizes may peak at different times), so
  the peak fits the cluster and the class's emptied pages stay in its pool rather than going
  back to the OS (madvise past slab_retain, after slab_purge_delay). A class that serves no
  profiled size gets 0.
  Clusters are reserved address space, committed on first touch, so they cost RSS only as
  used; but retained pages are not returned after the peak. --prealloc-budget (default 64m)
  caps the total: over it, every class's pages shrink in proportion (one page kept per used
  class), and the output says CAPPED.

VERIFICATION (--verify)
  Runs the workload as the bench harness does (bench/manifest.py, bench/benchlib.py: same
  commands, checks, GNU time rusage, RSS sampling, `strace -f -c -e trace=%memory`) under
  build/libtinymalloc.so with the default and the tuned TINYMALLOC_CONF, --runs repetitions
  each, the two alternating in a shuffled order, then one strace run each (with stats:json
  for tinymalloc's own counts). The report gives medians, min-max and paired ratios
  tuned/default; a ratio range that straddles 1 is read as no consistent difference.

PROFILE MODE COST (--profile-overhead LIST)
  Runs each listed workload under tinymalloc with profiling off and on (--runs each, interleaved)
  and writes results/tuning/profile-overhead.md with the paired wall-time ratios.

EXIT STATUS
  0 ok; 1 a measured run (profiling or verification) failed; 2 usage error (bad option,
  unknown workload, infeasible constraints); 3 missing input or dependency (no profile file,
  a malformed profile, no build/libtinymalloc.so, no profile mode in it, no strace/GNU time).
"""


def size_arg(s):
    s = s.strip().lower()
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(s[-1:], 1)
    try:
        return int(s[:-1] if mult > 1 else s) * mult
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {s!r}")


def small_max_arg(s):
    if s == "auto":
        return s
    v = size_arg(s)
    if v % 16 or not 16 <= v <= C.SMALL_MAX_LIMIT:
        raise argparse.ArgumentTypeError("a multiple of 16 from 16 to 16384, or auto")
    return v


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="tune-slabs", description=DESCRIPTION,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("profiles", nargs="*", metavar="PROFILE", help="profile files, folders or globs")
    ap.add_argument("--workload", metavar="NAME", help="profile this workload of bench/manifest/*.json")
    ap.add_argument("--scale", default="quick", help="workload scale: default, quick (default), tiny")
    ap.add_argument("--exe", metavar="REGEX", help="use only the profiles of processes whose exe matches")
    ap.add_argument("--classes", type=int, metavar="K", help="at most K classes (default 32, max 64)")
    ap.add_argument("--weight", choices=("peak", "count"), default="peak", help="what to minimise (default peak)")
    ap.add_argument("--max-ratio", type=float, default=2.0, metavar="R",
                    help="consecutive classes within a factor R (default 2; 0 = off)")
    ap.add_argument("--small-max", type=small_max_arg, default="auto", metavar="N|auto",
                    help="largest class (default auto)")
    ap.add_argument("--prealloc-budget", type=size_arg, default=64 << 20, metavar="BYTES",
                    help="cap on preallocated pages, k/m/g suffixes (default 64m)")
    ap.add_argument("--no-prealloc", action="store_true",
                    help="propose classes only (prealloc stays one page per class), to separate the effects")
    ap.add_argument("--json", action="store_true", help="print the recommendation as JSON")
    ap.add_argument("--verify", action="store_true", help="measure default vs tuned (needs --workload)")
    ap.add_argument("--runs", type=int, default=5, help="repetitions per configuration (default 5)")
    ap.add_argument("--seed", type=int, help="seed of the run order (default: from the clock; recorded)")
    ap.add_argument("--no-strace", action="store_true", help="skip the strace runs")
    ap.add_argument("--no-build", action="store_true", help="do not run the workload's build command")
    ap.add_argument("--workdir", metavar="DIR", help="scratch folder (default build/tuning/NAME)")
    ap.add_argument("--out", metavar="FILE", help="report (default results/tuning/NAME.md)")
    ap.add_argument("--save-profile", metavar="FILE", help="write the merged profile here")
    ap.add_argument("--profile-overhead", metavar="LIST",
                    help="instead: measure the profile mode's cost on these workloads (comma list or "
                         "group:NAME), off vs on, and write results/tuning/profile-overhead.md")
    args = ap.parse_args(argv)
    if args.profile_overhead:
        if args.profiles or args.workload:
            ap.error("--profile-overhead takes no PROFILE or --workload")
        return args
    if not args.profiles and not args.workload:
        ap.error("give PROFILE files or --workload NAME")
    if args.profiles and args.workload:
        ap.error("PROFILE files and --workload exclude each other")
    if args.verify and not args.workload:
        ap.error("--verify needs --workload")
    if args.classes is not None and not 1 <= args.classes <= C.MAX_CLASSES:
        ap.error("--classes: 1 to 64")
    if args.runs < 1:
        ap.error("--runs: at least 1")
    if args.max_ratio != 0 and args.max_ratio < 1.0:
        ap.error("--max-ratio: 0 (off) or at least 1")
    return args


def jsonable(rec):
    out = dict(rec)
    for k in ("default", "tuned"):
        ev = dict(out[k])
        ev["per_class"] = {str(c): v for c, v in ev["per_class"].items()}
        out[k] = ev
    return out


def main(argv=None):
    try:
        args = parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    try:
        return run(args)
    except V.TuneError as e:
        print(f"tune-slabs: {e}", file=sys.stderr)
        return e.code
    except P.ProfileError as e:
        print(f"tune-slabs: {e}", file=sys.stderr)
        return 3
    except C.Infeasible as e:
        print(f"tune-slabs: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tune-slabs: interrupted", file=sys.stderr)
        return 130


def run(args):
    if args.profile_overhead:
        return run_overhead(args)
    w = None
    if args.workload:
        w = V.resolve_workload(args.workload, args.scale)
        workdir = args.workdir or os.path.join(V.ROOT, "build", "tuning", w["name"])
        os.makedirs(workdir, exist_ok=True)
        V.make_ready(w, workdir, args.no_build)
        files, prof_rec = V.profile_workload(w, workdir)
        paths = files
    else:
        paths = args.profiles
    prof, files = P.load(paths, args.exe)
    rec = C.recommend(prof, args.classes, args.weight, args.small_max, args.max_ratio, args.prealloc_budget,
                      prealloc=not args.no_prealloc)
    if args.save_profile:
        with open(args.save_profile, "w") as f:
            json.dump(prof.to_json(), f)
            f.write("\n")
    if args.json:
        print(json.dumps(jsonable(rec), indent=1))
    else:
        print(R.recommendation_text(rec, prof, files))
    if not args.verify:
        return 0

    seed = args.seed if args.seed is not None else int(time.time())
    env = V.benchlib.collect_env()
    V.log(f"verify {w['name']}: {args.runs} repetitions of default and tuned, interleaved (seed {seed})")
    meas = V.measure(w, [("default", ""), ("tuned", rec["conf"])], workdir, args.runs, seed,
                     strace=not args.no_strace)
    suffix = "-classes-only" if args.no_prealloc else ""
    out = args.out or os.path.join(V.ROOT, "results", "tuning", f"{w['name']}{suffix}.md")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    cmdline = "scripts/tune-slabs " + " ".join(sys.argv[1:]) if argv_is_cli() else None
    text = write_report(w, args, rec, prof, files, meas, env, cmdline)
    with open(out, "w") as f:
        f.write(text)
    raw = os.path.splitext(out)[0] + ".json"
    with open(raw, "w") as f:
        json.dump({"workload": w["name"], "scale": w["scale"], "environment": env, "library": V.RUN_LIB, "args": vars(args),
                   "profile_files": len(files), "recommendation": jsonable(rec), "measurement": meas}, f, indent=1)
        f.write("\n")
    with open(os.path.splitext(out)[0] + ".profile.json", "w") as f:
        json.dump(prof.to_json(), f)
        f.write("\n")
    print(f"\nwrote {os.path.relpath(out, V.ROOT)} (raw: {os.path.relpath(raw, V.ROOT)})")
    if meas["failures"]:
        print("tune-slabs: measured runs failed:\n  " + "\n  ".join(meas["failures"]), file=sys.stderr)
        return 1
    return 0


def argv_is_cli():
    return os.path.basename(sys.argv[0]) == "tune-slabs"


def write_report(w, args, rec, prof, files, meas, env, cmdline):
    L = [f"# Slab tuning: {w['name']} ({w['scale']} scale)", ""]
    L.append(f"Recorded {env.get('date')} on {env.get('host')} ({env.get('cpu_model')}, "
             f"{env.get('cpus_usable')} usable CPUs, load average at start {' '.join((env.get('loadavg') or '').split(' ')[:3])}), "
             f"kernel {env.get('kernel')}, {env.get('glibc')}, tinymalloc at {env.get('project_commit')} "
             f"(library copied at the start, sha256 {(V.RUN_LIB['sha256'] or '?')[:16]}).")
    if cmdline:
        L.append(f"Command: `{cmdline}`.")
    L.append(f"Workload: {w.get('description', '')} (`{' '.join(os.path.relpath(a, V.ROOT) if a.startswith(V.ROOT) else a for a in w['argv'])}`).")
    L += ["", "## Profile (one run with `TINYMALLOC_CONF=profile:...`)", ""]
    L += R.profile_summary(prof, files)
    L += ["", "Most requested sizes:", ""] + R.top_sizes(prof)
    L += ["", "## Recommendation", ""]
    L.append(f"Weight `{rec['weight']}`, at most {rec['budget']} classes, consecutive classes within "
             + (f"a factor {rec['max_ratio']:g}" if rec["max_ratio"] > 0 else "any ratio")
             + f", small_max {rec['small_max']}, preallocation budget {R.kib(rec['prealloc_budget'])}"
             + (" (capped: the peak does not fit the budget)" if rec["prealloc_capped"] else "")
             + ("; classes only (--no-prealloc): prealloc stays one page per class" if not rec["prealloc_fitted"]
                else "") + ".")
    L += ["", "```", f"TINYMALLOC_CONF={rec['conf']}", "```", ""]
    L += R.comparison_table(rec)
    L += ["", "Fragmentation figures are computed from the profile (exact for the requests it saw); the "
          "page-level row models committed slab memory at the peak with blocks packed densely.", ""]
    L += ["<details><summary>Tuned classes</summary>", ""] + R.class_table(rec) + ["", "</details>", ""]
    L += [f"## Measured: tinymalloc default vs tuned, {args.runs} interleaved repetitions (seed {meas['seed']})", ""]
    tbl, summ = R.measured_table(meas)
    L += tbl
    if meas["failures"]:
        L += ["", "FAILED runs:", ""] + [f"- {f}" for f in meas["failures"]]
    L += ["", "## Reading", ""] + reading(rec, summ, meas)
    return "\n".join(L) + "\n"


def reading(rec, summ, meas):
    d, t = rec["default"], rec["tuned"]
    out = []
    out.append(f"- Internal fragmentation by count {R.pct(d['frag_count'])} -> {R.pct(t['frag_count'])}, "
               f"by peak live {R.pct(d['frag_peak'])} -> {R.pct(t['frag_peak'])} (from the profile).")
    for key, name in (("wall_s", "Time"), ("max_rss_kb", "Peak RSS of the largest process"),
                      ("tree_peak_sum_kb", "Summed peak RSS")):
        r = summ[key]["ratio"]
        if r["median"] is not None:
            out.append(f"- {name}: tuned/default {r['median']:.3f} (paired, {r['n']} repetitions, range "
                       f"{r['min']:.3f} - {r['max']:.3f}): {V.verdict(r)}.")
    st = meas.get("strace") or {}
    if st.get("default", {}).get("oscalls") and st.get("tuned", {}).get("oscalls"):
        a, b = st["default"]["oscalls"], st["tuned"]["oscalls"]
        keys = ("mmap", "munmap", "madvise", "mremap")
        sa, sb = sum(a.get(k, 0) for k in keys), sum(b.get(k, 0) for k in keys)
        out.append(f"- OS calls (mmap+munmap+madvise+mremap, strace): {sa} -> {sb}.")
    return out


def run_overhead(args):
    import statistics
    try:
        names = [w["name"] for w in V.mf.select(V.mf.load(), args.profile_overhead)]
    except V.benchlib.BenchError as e:
        raise V.TuneError(str(e), 2)
    seed = args.seed if args.seed is not None else int(time.time())
    env = V.benchlib.collect_env()
    res = V.profile_overhead(names, args.scale, args.runs, seed, args.no_build)
    L = ["# Cost of the profile mode (`TINYMALLOC_CONF=profile:PATH`)", "",
         f"Recorded {env.get('date')} on {env.get('host')} ({env.get('cpu_model')}, {env.get('cpus_usable')} usable "
         f"CPUs, load average at start {' '.join((env.get('loadavg') or '').split(' ')[:3])}), tinymalloc at "
         f"{env.get('project_commit')}. Scale {args.scale}, {args.runs} repetitions per configuration, off and on "
         f"alternating in a shuffled order (seed {seed}). Command: `scripts/tune-slabs "
         + " ".join(sys.argv[1:]) + "`.", "",
         "| workload | off: wall s, median [min - max] | profile: wall s, median [min - max] | profile / off, paired: median [min - max] |",
         "|---|---:|---:|---:|"]
    meds, failed = [], []
    for name, summ, fails in res:
        if fails or summ is None:
            failed.append(f"{name}: {'; '.join(fails)}")
            L.append(f"| {name} | FAIL | FAIL | - |")
            continue
        s = summ["wall_s"]
        a, b, r = s["off"], s["profile"], s["ratio"]
        L.append(f"| {name} | {a['median']:.3f} [{a['min']:.3f} - {a['max']:.3f}] | {b['median']:.3f} "
                 f"[{b['min']:.3f} - {b['max']:.3f}] | {r['median']:.3f} [{r['min']:.3f} - {r['max']:.3f}] |")
        meds.append((r["median"], name))
    if meds:
        import math
        gm = math.exp(sum(math.log(x) for x, _ in meds) / len(meds))
        worst = max(meds)
        L += ["", f"Geometric mean of the median ratios over {len(meds)} workloads: {gm:.3f}; median "
              f"{statistics.median(x for x, _ in meds):.3f}; largest {worst[0]:.3f} ({worst[1]})."]
    if failed:
        L += ["", "Failed:", ""] + [f"- {f}" for f in failed]
    out = args.out or os.path.join(V.ROOT, "results", "tuning", "profile-overhead.md")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write("\n".join(L) + "\n")
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump({"environment": env, "seed": seed, "scale": args.scale, "runs": args.runs,
                   "results": [{"workload": n, "summary": s, "failures": fl} for n, s, fl in res]}, f, indent=1)
    print("\n".join(L))
    return 1 if failed else 0
