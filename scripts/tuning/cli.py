"""scripts/tune-slabs: fit tinymalloc's slab classes and preallocated counts to a program."""
import argparse
import json
import os
import sys
import time

from . import classes as C
from . import profile as P
from . import report as R
from . import search as S
from . import verify as V

DESCRIPTION = """\
Fit tinymalloc's slab classes and preallocated counts to one program, print the
TINYMALLOC_CONF string, and (with --verify) measure it and its neighbours against the default
configuration: the answer is a measured gain, or "keep the defaults".

  scripts/tune-slabs PROFILE...                 recommend from profile files (files, folders, globs)
  scripts/tune-slabs --workload NAME            profile a registered workload (bench/manifest), recommend
  scripts/tune-slabs --workload NAME --verify   ... then measure the candidates against the default, write
                                                results/tuning/NAME.md (what `make tune WORKLOAD=NAME` does)
  scripts/tune-slabs --workloads A,B --verify   one configuration for a mix (group:NAME works too):
                                                no worse on any, better on their geometric mean

Profiles come from TINYMALLOC_CONF=profile:PATH (%p = pid; one JSON file per process, format
tinymalloc-profile-1). Several files (a build's processes) are merged: counts summed, peak
live blocks per size the MAXIMUM over processes. Each process gets the same configuration
and its own preallocated clusters, so the largest single process's need is what prealloc must
fit; the sum over processes (also kept) would reserve for processes that never run together.

THE RECOMMENDATION (exact, not a heuristic)
  Candidates are the requested sizes rounded up to 16, the default classes (fillers) and the
  largest class, small_max. Choosing at most K classes (--classes, default 37 = the default
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
  One bench run (bench/run.py) of the workload(s) under variants of one copy of
  build/libtinymalloc.so: tm-default and a tm-NAME per candidate (scripts/tuning/search.py:
  tuned, classes-only, fewer, more, small-8k, retain-more, retain-less), --runs timed runs
  each (hyperfine) in up to 5 shuffled blocks, a mem run per block (GNU time rusage, RSS
  sampling), one `strace -f -c -e trace=%memory` run each, the workloads' output checks and
  the preload probe. The profile before it is such a run too, with no timed runs.
  --objective time (default), rss or syscalls: a candidate wins only when its objective's
  ratio to the default has an interval below 1 (widened for the number of candidates) and no
  other objective is higher beyond its interval; the lowest ratio of those wins, RSS breaking
  ties. Otherwise, and without measuring when the profile has under 1000 slab-tier requests,
  the answer is "keep the defaults", with every candidate's figures. The report
  (results/tuning/NAME.md) links the run folder beside it; NAME.allocators holds the winner as
  `tinymalloc-tuned = tinymalloc TINYMALLOC_CONF=...` for `make bench ALLOCATORS_FILE=...`.

PROFILE MODE COST (--profile-overhead LIST)
  A bench run per listed workload under tinymalloc with profiling off and on (--runs each)
  and results/tuning/profile-overhead.md with the wall-time ratios and their intervals.

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
    ap.add_argument("--workloads", metavar="LIST", help="profile these workloads (comma list, group:NAME): one "
                                                        "configuration for the mix")
    ap.add_argument("--manifest", action="append", metavar="PATH", help="manifest file or folder (default "
                                                                         "bench/manifest)")
    ap.add_argument("--objective", choices=S.OBJECTIVES, default="time",
                    help="what --verify minimises (default time; RSS breaks ties)")
    ap.add_argument("--scale", default="quick", help="workload scale: default, quick (default), tiny")
    ap.add_argument("--exe", metavar="REGEX", help="use only the profiles of processes whose exe matches")
    ap.add_argument("--classes", type=int, metavar="K", help="at most K classes (default 37, the default configuration's count; max 64)")
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
    ap.add_argument("--verify", action="store_true", help="measure the candidates against the default "
                                                          "(needs --workload or --workloads)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per configuration (default 5)")
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
        if args.profiles or args.workload or args.workloads:
            ap.error("--profile-overhead takes no PROFILE, --workload or --workloads")
        return args
    if sum(map(bool, (args.profiles, args.workload, args.workloads))) != 1:
        ap.error("give one of: PROFILE files, --workload NAME, --workloads LIST")
    if args.verify and args.profiles:
        ap.error("--verify needs --workload or --workloads")
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
    ws = None
    if args.workload or args.workloads:
        ws = V.resolve_workloads(args.workload or args.workloads, args.scale, args.manifest, one=bool(args.workload))
        label = ws[0]["name"] if args.workload else "mix-" + args.workloads.replace(":", "-").replace(",", "+")
        workdir = args.workdir or os.path.join(V.ROOT, "build", "tuning", label)
        V.freeze_lib(workdir)
        paths = V.profile_workloads(ws, workdir, args.no_build, args.manifest)
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

    seed = args.seed = args.seed if args.seed is not None else int(time.time())
    suffix = "-classes-only" if args.no_prealloc else ""
    out = args.out or os.path.join(V.ROOT, "results", "tuning", f"{label}{suffix}.md")
    stem = os.path.splitext(out)[0]
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    run_rel, run_dir, decision = None, None, {"choice": None, "declined": S.too_few_requests(rec), "objective": args.objective}
    if not decision["declined"]:
        def fit(**kw):
            p = {"budget": args.classes, "weight": args.weight, "small_max": args.small_max,
                 "max_ratio": args.max_ratio, "prealloc_budget": args.prealloc_budget, "prealloc": not args.no_prealloc}
            p.update(kw)
            try:
                return C.recommend(prof, **p)["conf"]
            except C.Infeasible:
                return None
        cands = [(f"tm-{n}", c) for n, c in S.candidates(prof, rec, fit)]
        V.log(f"verify {label}: tm-default and {len(cands)} candidates, {args.runs} timed runs each (seed {seed})")
        run_dir = V.bench(ws, [(S.DEFAULT, "")] + cands, os.path.dirname(os.path.abspath(out)),
                          f"{os.path.basename(stem)}-{time.strftime('%Y%m%d-%H%M%S')}", args.runs, seed,
                          strace=not args.no_strace, no_build=args.no_build, manifest=args.manifest)
        run_rel = os.path.relpath(run_dir, os.path.dirname(os.path.abspath(out)))
        decision.update(S.decide(V.cells(run_dir), cands, args.objective))
        env = V.benchlib.read_json(os.path.join(run_dir, "env.json"))
    else:
        env = V.benchlib.collect_env()
    cmdline = "scripts/tune-slabs " + " ".join(sys.argv[1:]) if argv_is_cli() else None
    with open(out, "w") as f:
        f.write(write_report(ws, args, rec, prof, files, decision, env, cmdline, run_rel, run_dir))
    with open(stem + ".json", "w") as f:
        json.dump({"workloads": [w["name"] for w in ws], "scale": args.scale, "library": V.RUN_LIB,
                   "args": vars(args), "run": run_rel, "profile_files": len(files), "recommendation": jsonable(rec),
                   "decision": {k: v for k, v in decision.items() if k != "assessed"},
                   "candidates": [{"name": n, "conf": c, "assessment": a, "why_not": why}
                                  for n, c, a, why in decision.get("assessed", [])]}, f, indent=1)
        f.write("\n")
    with open(stem + ".profile.json", "w") as f:
        json.dump(prof.to_json(), f)
        f.write("\n")
    variant = stem + ".allocators"
    if decision["choice"]:
        # the winner as a variant of the bench registry (bench/allocators.py)
        with open(variant, "w") as f:
            f.write(f"# tune-slabs {label} ({args.scale} scale, objective {args.objective}): {decision['choice'][0]}\n"
                    f"tinymalloc-tuned = tinymalloc TINYMALLOC_CONF={decision['choice'][1]}\n")
        print(f"\nmeasured: {decision['choice'][0]} wins on {args.objective}\nTINYMALLOC_CONF={decision['choice'][1]}")
    else:
        if os.path.exists(variant):
            os.unlink(variant)
        why = decision["declined"] or "no candidate beat the default beyond its interval"
        print(f"\nmeasured: keep the defaults ({why})")
    print(f"wrote {os.path.relpath(out, V.ROOT)}" + (f" (run: {run_rel})" if run_rel else ""))
    failed = [f for _, _, a, _ in decision.get("assessed", []) for f in a.get("failures") or []]
    if failed:
        print("tune-slabs: measured runs failed:\n  " + "\n  ".join(sorted(set(failed))), file=sys.stderr)
        return 1
    return 0


def argv_is_cli():
    return os.path.basename(sys.argv[0]) == "tune-slabs"


def write_report(ws, args, rec, prof, files, decision, env, cmdline, run_rel, run_dir=None):
    names = ", ".join(w["name"] for w in ws)
    L = [f"# Slab tuning: {names} ({args.scale} scale, objective {args.objective})", ""]
    L.append(f"Recorded {env.get('date')} on {env.get('host')} ({env.get('cpu_model')}, "
             f"{env.get('cpus_usable')} usable CPUs, load average at start {' '.join((env.get('loadavg') or '').split(' ')[:3])}), "
             f"kernel {env.get('kernel')}, {env.get('glibc')}, tinymalloc at {env.get('project_commit')} "
             f"(library copied at the start, sha256 {(V.RUN_LIB['sha256'] or '?')[:16]}).")
    if cmdline:
        L.append(f"Command: `{cmdline}`.")
    for w in ws:
        argv = " ".join(os.path.relpath(a, V.ROOT) if a.startswith(V.ROOT) else a for a in w["argv"])
        L.append(f"Workload {w['name']}: {w.get('description', '')} (`{argv}`).")
    L += ["", "## Decision", ""] + R.decision_text(decision)
    L += ["", "## Profile (one run of each workload with `TINYMALLOC_CONF=profile:...`)", ""]
    L += R.profile_summary(prof, files)
    L += ["", "Most requested sizes:", ""] + R.top_sizes(prof)
    L += ["", "## The model's recommendation", ""]
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
    if decision.get("assessed"):
        L += [f"## Measured: tm-default and {len(decision['assessed'])} candidates, {args.runs} timed runs each "
              f"(seed {args.seed})", "",
              f"One bench run of every variant ([{run_rel}/]({run_rel}/report.md): its plan, environment, raw records "
              f"and the runner's own report). Ratios are candidate / default over "
              f"{'the workload' if len(ws) == 1 else 'the workloads (geometric mean)'}, with "
              f"{decision['level'] * 100:.1f} % bootstrap intervals (95 % widened for {len(decision['assessed'])} "
              "candidates); *lower* or *higher* only when the interval clears 1.", ""]
        L += R.candidates_table(decision)
        if len(ws) > 1:
            L += ["", f"Per workload, {args.objective}:", ""] + R.per_workload_table(decision, [w["name"] for w in ws])
        L += ["", "## The machine's noise in this run", ""] + V.noise_lines(run_dir)
    return "\n".join(L) + "\n"


def run_overhead(args):
    try:
        names = [w["name"] for w in V.mf.select(V.mf.load(), args.profile_overhead)]
    except V.benchlib.BenchError as e:
        raise V.TuneError(str(e), 2)
    seed = args.seed if args.seed is not None else int(time.time())
    out = args.out or os.path.join(V.ROOT, "results", "tuning", "profile-overhead.md")
    res = V.profile_overhead(names, args.scale, args.runs, seed, os.path.dirname(os.path.abspath(out)), args.no_build)
    env = next((V.benchlib.read_json(os.path.join(d, "env.json")) for _, d, _, _ in res if d), {})
    L = ["# Cost of the profile mode (`TINYMALLOC_CONF=profile:PATH`)", "",
         f"Recorded {env.get('date')} on {env.get('host')} ({env.get('cpu_model')}, {env.get('cpus_usable')} usable "
         f"CPUs, load average at start {' '.join((env.get('loadavg') or '').split(' ')[:3])}), tinymalloc at "
         f"{env.get('project_commit')}. Scale {args.scale}, {args.runs} timed runs per configuration, one bench run "
         f"per workload (seed {seed}). Command: `scripts/tune-slabs " + " ".join(sys.argv[1:]) + "`.", "",
         "| workload | profile / off, wall time (95 % interval) | reading | run |", "|---|---:|---|---|"]
    ratios, failed, saved = [], [], []
    for name, run_dir, by_wl, fails in res:
        rel = os.path.relpath(run_dir, os.path.dirname(out)) if run_dir else None
        link = f"[{rel}]({rel}/report.md)" if rel else "-"
        if fails:
            failed.append(f"{name}: {'; '.join(fails)}")
            L.append(f"| {name} | FAIL | - | {link} |")
            continue
        t = S.assess(by_wl, "tm-profile", S.stats.CONFIDENCE)["time"]
        ci = f" ({t['ci'][0]:.3f}-{t['ci'][1]:.3f})" if t["ci"] else ""
        L.append(f"| {name} | {t['ratio']:.3f}{ci} | {t['reading']} | {link} |")
        ratios.append((t["ratio"], name))
        saved.append({"workload": name, "run": rel, "time": t})
    if ratios:
        worst = max(ratios)
        L += ["", f"Geometric mean of the ratios over {len(ratios)} workloads: "
              f"{V.benchlib.geomean([x for x, _ in ratios]):.3f}; largest {worst[0]:.3f} ({worst[1]})."]
    if failed:
        L += ["", "Failed:", ""] + [f"- {f}" for f in failed]
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write("\n".join(L) + "\n")
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump({"seed": seed, "scale": args.scale, "runs": args.runs, "results": saved, "failed": failed}, f,
                  indent=1)
    print("\n".join(L))
    return 1 if failed else 0
